// Schedule math: where runs fall on a job's fixed grid, and what to do when
// a slot comes due (DecideFire) and when its run would overlap runs still
// active (DecideOverlap). Pure: no clock reads, no I/O; thread-safe.
//
// Run k is due at start + k * interval (k = 0, 1, ...). Lateness of one run
// never moves the next: every due time is computed from the grid, never from
// when the previous run actually started, so a job never drifts and never
// runs more often than its interval.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "timer/v1/timer.pb.h"

namespace timer::domain {

// Whether a job in status `s` fires when due (paused, ended and deleted
// jobs do not).
inline bool IsSchedulable(v1::Job::Status s) {
  return s == v1::Job::NEW || s == v1::Job::LOADED || s == v1::Job::UPDATED;
}

// Due time of run k.
inline absl::Time SlotTime(absl::Time start, absl::Duration interval, int64_t k) {
  return start + interval * k;
}

// Index of the first slot at or after `t` (0 if t <= start).
inline int64_t FirstSlotAtOrAfter(absl::Time start, absl::Duration interval,
                                  absl::Time t) {
  if (t <= start) return 0;
  absl::Duration rem;
  const int64_t k = absl::IDivDuration(t - start, interval, &rem);
  return SlotTime(start, interval, k) >= t ? k : k + 1;
}

// What the run engine does when `job`'s slot `due` fires at `now`.
struct FireDecision {
  enum class Kind {
    kRun,         // Run the slot `scheduled`.
    kSkipMissed,  // Record that `missed` slots were skipped; run nothing.
    kEnd,         // A stop condition holds: end the job, run nothing.
  };
  Kind kind = Kind::kRun;
  // The slot a run (or the skip record) is for.
  absl::Time scheduled;
  // Slots passed over without a run, besides `scheduled`.
  int64_t missed = 0;
  // The next due time; nullopt when the job ends after this.
  std::optional<absl::Time> next;
  // Why the job ends (kEnd, or after this run when `next` is nullopt).
  v1::Job::EndReason end_reason = v1::Job::END_REASON_UNSPECIFIED;
};

// Decides a scheduled fire. A slot fired less than one interval late runs as
// is. A slot so late that the next one has passed too (timerd was down or
// overloaded) follows job.missed_run_policy(): SKIP_MISSED records the missed
// slots and runs nothing; RUN_ONCE runs once now for the latest missed slot.
// Either way the next run is the first slot not in the past. Stop
// conditions (`stop_after_runs` against job.n_runs(), `stop_after_date`
// against slot times) win over everything.
FireDecision DecideFire(const v1::Job& job, absl::Time due, absl::Time now);

// What the run engine does with a run DecideFire chose to run, given the
// job's runs already active.
struct OverlapDecision {
  enum class Kind {
    kStart,           // Start the run at its slot.
    kCancelPrevious,  // Ask the provider to cancel the active runs, and start this one.
    kBuffer,          // Record it now; start it once the active run ends.
    kSkip,            // Record the slot SKIPPED, for `reason`.
  };
  Kind kind = Kind::kStart;
  // Why the slot is skipped (kSkip only): the result's error.
  std::string reason;
};

// Applies job.overlap_policy() to a run due while `active` of the job's runs
// are active in this process; `buffered` says a BUFFER_ONE run already
// waits for them. ALLOW starts up to max(1, job.max_concurrent()) at once;
// BUFFER_ONE keeps one run waiting and skips any more; CANCEL_PREVIOUS
// cancels the active runs; SKIP (and any other policy) skips while one is
// active. With nothing active every policy starts the run.
OverlapDecision DecideOverlap(const v1::Job& job, int active, bool buffered);

// The next run of `job` on its grid at or after `earliest`, or nullopt with
// `end_reason` set if a stop condition forbids any. Used at create, resume
// and update.
std::optional<absl::Time> NextRunAtOrAfter(const v1::Job& job, absl::Time earliest,
                                           v1::Job::EndReason* end_reason);

}  // namespace timer::domain
