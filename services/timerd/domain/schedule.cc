#include "domain/schedule.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "domain/time_util.h"

namespace timer::domain {
namespace {

bool RunsExhausted(const v1::Job& job, int64_t runs) {
  return job.schedule().has_stop_after_runs() && runs >= job.schedule().stop_after_runs();
}

bool PastStopDate(const v1::Job& job, absl::Time slot) {
  return job.schedule().has_stop_after_date() &&
         slot >= FromProto(job.schedule().stop_after_date());
}

}  // namespace

FireDecision DecideFire(const v1::Job& job, absl::Time due, absl::Time now) {
  const absl::Time start = FromProto(job.schedule().start());
  const absl::Duration interval = absl::Seconds(job.schedule().interval_seconds());
  FireDecision d;
  d.scheduled = due;
  if (RunsExhausted(job, job.n_runs())) {
    d.kind = FireDecision::Kind::kEnd;
    d.end_reason = v1::Job::STOP_AFTER_RUNS;
    return d;
  }
  if (PastStopDate(job, due)) {
    d.kind = FireDecision::Kind::kEnd;
    d.end_reason = v1::Job::STOP_AFTER_DATE;
    return d;
  }
  const int64_t k_due = FirstSlotAtOrAfter(start, interval, due);
  int64_t k_next = k_due + 1;
  if (now - due >= interval) {
    // The following slot has passed too: slots were missed.
    k_next = FirstSlotAtOrAfter(start, interval, now);
    if (job.missed_run_policy() == v1::RUN_ONCE) {
      // One catch-up run, for the latest missed slot still before the stop date.
      int64_t k_run = k_next - 1;
      while (k_run > k_due && PastStopDate(job, SlotTime(start, interval, k_run)))
        --k_run;
      d.scheduled = SlotTime(start, interval, k_run);
      d.missed = k_run - k_due;
    } else {
      d.kind = FireDecision::Kind::kSkipMissed;
      d.missed = k_next - k_due - 1;
    }
  }
  const int64_t runs_after = job.n_runs() + (d.kind == FireDecision::Kind::kRun ? 1 : 0);
  const absl::Time next = SlotTime(start, interval, k_next);
  if (RunsExhausted(job, runs_after)) {
    d.end_reason = v1::Job::STOP_AFTER_RUNS;
  } else if (PastStopDate(job, next)) {
    d.end_reason = v1::Job::STOP_AFTER_DATE;
  } else {
    d.next = next;
  }
  return d;
}

OverlapDecision DecideOverlap(const v1::Job& job, int active, bool buffered) {
  OverlapDecision d;
  const auto skip = [&d](std::string reason) {
    d.kind = OverlapDecision::Kind::kSkip;
    d.reason = std::move(reason);
  };
  switch (job.overlap_policy()) {
    case v1::ALLOW: {
      const int max_concurrent = std::max(1, job.max_concurrent());
      if (active >= max_concurrent) {
        skip(absl::StrCat("max_concurrent (", max_concurrent,
                          ") runs are already active"));
      }
      break;
    }
    case v1::BUFFER_ONE:
      if (active > 0) {
        if (buffered) {
          skip("a run is already waiting for the active one to end");
        } else {
          d.kind = OverlapDecision::Kind::kBuffer;
        }
      }
      break;
    case v1::CANCEL_PREVIOUS:
      if (active > 0) d.kind = OverlapDecision::Kind::kCancelPrevious;
      break;
    default:
      if (active > 0) skip("the previous run is still active");
  }
  return d;
}

std::optional<absl::Time> NextRunAtOrAfter(const v1::Job& job, absl::Time earliest,
                                           v1::Job::EndReason* end_reason) {
  const absl::Time start = FromProto(job.schedule().start());
  const absl::Duration interval = absl::Seconds(job.schedule().interval_seconds());
  const absl::Time next =
      SlotTime(start, interval, FirstSlotAtOrAfter(start, interval, earliest));
  if (RunsExhausted(job, job.n_runs())) {
    *end_reason = v1::Job::STOP_AFTER_RUNS;
    return std::nullopt;
  }
  if (PastStopDate(job, next)) {
    *end_reason = v1::Job::STOP_AFTER_DATE;
    return std::nullopt;
  }
  return next;
}

}  // namespace timer::domain
