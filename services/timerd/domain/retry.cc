#include "domain/retry.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "domain/time_util.h"

namespace timer::domain {
namespace {

absl::Duration FromDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// A Duration field a client set: whole, positive and at most 45 minutes.
absl::Status CheckBackoff(const google::protobuf::Duration& d, absl::string_view field) {
  if (d.nanos() < 0 || d.nanos() >= 1'000'000'000 || d.seconds() < 0) {
    return Invalid(field, "must be a positive duration");
  }
  const absl::Duration v = FromDuration(d);
  if (v <= absl::ZeroDuration()) return Invalid(field, "must be > 0");
  if (v > kMaxRetryWindow) {
    return Invalid(field, "must be at most 45m (the longest a run is retried)");
  }
  return absl::OkStatus();
}

}  // namespace

RetrySettings EffectiveRetry(const v1::Job& job, const v1::RetryPolicy& server_default) {
  const v1::RetryPolicy& p =
      job.retry_policy().max_attempts() > 0 ? job.retry_policy() : server_default;
  RetrySettings s;
  s.max_attempts = std::max(1, p.max_attempts());
  if (p.has_initial_backoff()) s.initial_backoff = FromDuration(p.initial_backoff());
  if (p.has_multiplier() && p.multiplier() >= 1) s.multiplier = p.multiplier();
  if (p.has_max_backoff()) s.max_backoff = FromDuration(p.max_backoff());
  // A policy that sets only a longer initial backoff waits at least that.
  if (!p.has_max_backoff()) s.max_backoff = std::max(s.max_backoff, s.initial_backoff);
  if (s.initial_backoff <= absl::ZeroDuration())
    s.initial_backoff = kDefaultInitialBackoff;
  // A first wait nobody chose fits the schedule: on an interval job, at most
  // half its bound shared among the attempts (10 s would leave a job every
  // 5 s, bound 2.5 s, with no retry at all), and at least 100 ms.
  if (!p.has_initial_backoff() && s.max_attempts > 1) {
    if (std::optional<absl::Duration> window = IntervalWindow(job.schedule())) {
      const absl::Duration fit =
          std::max(absl::Milliseconds(100), *window / (2 * s.max_attempts));
      s.initial_backoff = std::min(s.initial_backoff, fit);
    }
  }
  return s;
}

absl::Duration Backoff(const RetrySettings& s, int failed) {
  absl::Duration d = s.initial_backoff;
  for (int i = 1; i < failed && d < s.max_backoff; ++i) d = d * s.multiplier;
  return std::min(d, s.max_backoff);
}

std::optional<absl::Duration> IntervalWindow(const v1::Schedule& s) {
  if (s.kind_case() != v1::Schedule::kIntervalSeconds || s.interval_seconds() <= 0) {
    return std::nullopt;
  }
  return absl::Seconds(s.interval_seconds()) / 2;
}

absl::Time RetryDeadline(const v1::Job& job, const v1::JobResult& run,
                         absl::Time first_start) {
  absl::Duration window = kMaxRetryWindow;
  if (std::optional<absl::Duration> half = IntervalWindow(job.schedule())) {
    window = std::min(window, *half);
  } else if (!run.manual() && !run.backfill() && run.has_scheduled_time() &&
             job.has_next_scheduled_time()) {
    // Cron and calendar: half the gap between this slot and the next.
    const absl::Duration gap =
        FromProto(job.next_scheduled_time()) - FromProto(run.scheduled_time());
    if (gap > absl::ZeroDuration()) window = std::min(window, gap / 2);
  }
  absl::Time deadline = first_start + window;
  // Never into the next slot, whatever the kind (a manual run's too).
  if (job.has_next_run()) deadline = std::min(deadline, FromProto(job.next_run()));
  return deadline;
}

std::optional<absl::Time> NextAttemptTime(const RetrySettings& s, const v1::Job& job,
                                          const v1::JobResult& run,
                                          absl::Time first_start, int failed,
                                          absl::Time now) {
  if (failed >= s.max_attempts) return std::nullopt;
  const absl::Time at = now + Backoff(s, failed);
  const absl::Time deadline = RetryDeadline(job, run, first_start);
  // "Never into the next slot": strictly before it.
  if (at > deadline || (job.has_next_run() && at >= FromProto(job.next_run()))) {
    return std::nullopt;
  }
  return at;
}

absl::Status ValidateRetryPolicy(const v1::RetryPolicy& p, absl::string_view prefix) {
  const auto field = [prefix](absl::string_view name) {
    return absl::StrCat(prefix, name);
  };
  if (p.max_attempts() < 0 || p.max_attempts() > kMaxRetryAttempts) {
    return Invalid(field("max_attempts"),
                   absl::StrCat("must be between 1 and ", kMaxRetryAttempts,
                                " (tries in all; 0: the server's default)"));
  }
  if (p.has_initial_backoff()) {
    absl::Status s = CheckBackoff(p.initial_backoff(), field("initial_backoff"));
    if (!s.ok()) return s;
  }
  if (p.has_multiplier() &&
      !(p.multiplier() >= 1 && p.multiplier() <= kMaxRetryMultiplier)) {
    return Invalid(field("multiplier"), "must be between 1 and 10");
  }
  if (p.has_max_backoff()) {
    absl::Status s = CheckBackoff(p.max_backoff(), field("max_backoff"));
    if (!s.ok()) return s;
    const absl::Duration initial = p.has_initial_backoff()
                                       ? FromDuration(p.initial_backoff())
                                       : kDefaultInitialBackoff;
    if (FromDuration(p.max_backoff()) < initial) {
      return Invalid(field("max_backoff"), "must be at least initial_backoff");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRetry(const v1::Job& job) {
  if (job.pause_after_failures() < 0 || job.pause_after_failures() > 1000) {
    return Invalid("job.pause_after_failures", "must be between 0 (never) and 1000");
  }
  if (!job.has_retry_policy()) return absl::OkStatus();
  const v1::RetryPolicy& p = job.retry_policy();
  absl::Status s = ValidateRetryPolicy(p, "job.retry_policy.");
  if (!s.ok()) return s;
  if (std::optional<absl::Duration> half = IntervalWindow(job.schedule())) {
    if (p.has_initial_backoff() && FromDuration(p.initial_backoff()) > *half) {
      return Invalid(
          "job.retry_policy.initial_backoff",
          absl::StrCat("must be at most half the interval (", absl::FormatDuration(*half),
                       "): a retry never runs past that bound"));
    }
  }
  return absl::OkStatus();
}

}  // namespace timer::domain
