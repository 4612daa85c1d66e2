// retry: the schedule math of a job's retry policy (v1::RetryPolicy).
//
// A run whose attempt fails with a TRANSIENT error is tried again after a
// backoff that grows by `multiplier` from `initial_backoff` up to
// `max_backoff`, at most `max_attempts` tries in all, and never past the
// run's retry bound: half the schedule's interval (for cron and calendar
// schedules, half the gap to the job's next slot), at most 45 minutes
// (kMaxRetryWindow, as Globus Timers does), counted from the run's first
// attempt, and never at or after the job's next slot. A retry that would
// land past the bound is not made: the run ends FAILED with its last
// attempt's error.
//
// Pure functions; thread-safe.
#pragma once

#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "timer/v1/timer.pb.h"

namespace timer::domain {

// The longest a run is retried after its first attempt started.
inline constexpr absl::Duration kMaxRetryWindow = absl::Minutes(45);
// Limits of a policy's fields (validation).
inline constexpr int kMaxRetryAttempts = 10;
inline constexpr double kMaxRetryMultiplier = 10;
// Defaults for the fields a policy leaves unset.
inline constexpr absl::Duration kDefaultInitialBackoff = absl::Seconds(10);
inline constexpr double kDefaultMultiplier = 2;
inline constexpr absl::Duration kDefaultMaxBackoff = absl::Minutes(10);

// A policy with every default filled in.
struct RetrySettings {
  int max_attempts = 1;  // 1: no retry
  absl::Duration initial_backoff = kDefaultInitialBackoff;
  double multiplier = kDefaultMultiplier;
  absl::Duration max_backoff = kDefaultMaxBackoff;
};

// The job's policy, or `server_default` when the job sets none
// (max_attempts 0), with the unset fields defaulted.
RetrySettings EffectiveRetry(const v1::Job& job, const v1::RetryPolicy& server_default);

// The wait after the `failed`-th attempt failed (1 for the first):
// initial_backoff * multiplier^(failed-1), at most max_backoff.
absl::Duration Backoff(const RetrySettings& s, int failed);

// The latest time a retry of `run` may start: see the header comment.
// `first_start` is when the run's first attempt started.
absl::Time RetryDeadline(const v1::Job& job, const v1::JobResult& run,
                         absl::Time first_start);

// When the run's next attempt is due after its attempt number `failed`
// failed transiently at `now`; nullopt when no retry is made (attempts used
// up, or it would land past the bound).
std::optional<absl::Time> NextAttemptTime(const RetrySettings& s, const v1::Job& job,
                                          const v1::JobResult& run,
                                          absl::Time first_start, int failed,
                                          absl::Time now);

// Checks a job's retry policy and pause_after_failures, naming the field
// ("job.retry_policy.max_attempts: ..."). Needs the job's schedule (an
// initial backoff past half an interval schedule's interval is refused).
absl::Status ValidateRetry(const v1::Job& job);

// The same for the server's default policy (`[retry]` in timerd's config),
// naming `prefix` fields (e.g. "retry.").
absl::Status ValidateRetryPolicy(const v1::RetryPolicy& p, absl::string_view prefix);

// The half-interval part of the bound, for an interval schedule (nullopt
// for other kinds, whose gap is known only per slot).
std::optional<absl::Duration> IntervalWindow(const v1::Schedule& s);

}  // namespace timer::domain
