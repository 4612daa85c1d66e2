// Schedule math: where a job's slots fall, and what to do when a slot comes
// due (DecideFire) and when its run would overlap runs still active
// (DecideOverlap). Pure: no clock reads, no I/O; thread-safe.
//
// A schedule is a sequence of nominal slots, by kind:
//   interval  start + k * interval (k = 0, 1, ...), on a UTC grid;
//   once      start alone;
//   cron, calendar  the times the compiled rule (schedule_rule.h) gives, in
//             the schedule's time zone, none before start.
// Lateness of one run never moves the next: every due time is computed from
// the slots, never from when the previous run actually started, so a job
// never drifts. A run starts at its slot plus the slot's jitter
// (JitterFor), and keeps the nominal slot as its scheduled_time; the job's
// next_run is the jittered time, next_scheduled_time the nominal slot.
//
// Cron and calendar rules are compiled once per distinct (expression or
// calendar, zone, DST policies) and shared by every job that uses them
// (RuleFor's bounded cache): a job holds no compiled state of its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "domain/schedule_rule.h"
#include "timer/v1/timer.pb.h"

namespace timer::domain {

// The compiled rule of a cron or calendar schedule, from a process-wide
// cache of at most kRuleCacheSize rules (a rule still held by a caller
// outlives its eviction). Null for interval and once. An error is
// INVALID_ARGUMENT naming the field ("schedule.cron: field 2 (hours) ...",
// "schedule.time_zone: unknown zone ..."). Thread-safe.
inline constexpr size_t kRuleCacheSize = 4096;
absl::StatusOr<std::shared_ptr<const ScheduleRule>> RuleFor(const v1::Schedule& s);

// The time zone a schedule is evaluated in: "UTC" when empty.
std::string ZoneOf(const v1::Schedule& s);

// The schedule in words, for previews: "every 3600s", "once at
// 2026-12-06T02:00:00Z", "cron '0 2 * * *' in Europe/Berlin" (the shared
// rendering of timer/v1/schedule_text.h, which the CLI uses too).
std::string DescribeSchedule(const v1::Schedule& s);

// The first slot of `s` strictly after `after`, never before s.start();
// nullopt when there is none (a once job's time passed, a rule that never
// fires again). `rule` is RuleFor(s) (null for interval and once).
std::optional<absl::Time> NextSlotAfter(const v1::Schedule& s, const ScheduleRule* rule,
                                        absl::Time after);

// The delay of the run of `slot` of job `job_id`: in [0, jitter_seconds),
// a function of (job_id, slot) alone so a restart never rerolls it, and
// shorter than the gap to `next_slot` (when there is one).
absl::Duration JitterFor(const std::string& job_id, const v1::Schedule& s,
                         absl::Time slot, std::optional<absl::Time> next_slot);

// Missed slots are counted up to this many for cron and calendar schedules
// (bounded work after a long outage); a count that reached it means "at
// least".
inline constexpr int64_t kMissedCountCap = 10000;

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
  // The next slot (nominal) and when it fires (`next` plus its jitter);
  // nullopt when the job ends after this.
  std::optional<absl::Time> next;
  std::optional<absl::Time> next_fire;
  // When the run starts: `scheduled` plus its jitter (or now, if later).
  absl::Time start_at;
  // `missed` reached kMissedCountCap: at least that many were missed.
  bool missed_at_least = false;
  // Slots recorded as missed because they were older than the catch-up
  // window (part of `missed`, or the scheduled one for kSkipMissed).
  bool outside_window = false;
  // Why the job ends (kEnd, or after this run when `next` is nullopt).
  v1::Job::EndReason end_reason = v1::Job::END_REASON_UNSPECIFIED;
};

// Decides a scheduled fire: `due` is job.next_run() (the jittered time) and
// its slot job.next_scheduled_time() (`due` itself without jitter, or when
// next_scheduled_time is unset or not within the jitter before `due`, as
// for jobs whose next_run was written by a version that knew no jitter). A slot fired
// before the next slot has passed runs as is, unless it is older than the catch-up window
// (schedule.catch_up_window_seconds > 0): then it is recorded as missed. A
// slot so late that the next one has passed too (timerd was down or
// overloaded) follows job.missed_run_policy(): SKIP_MISSED records the missed
// slots and runs nothing; RUN_ONCE runs once now for the latest missed slot
// inside the catch-up window (none inside it: all are missed). Either way the
// next run is the first slot not in the past. Stop conditions
// (`stop_after_runs` against job.n_runs(), `stop_after_date` against slot
// times) win over everything; a schedule with no slot left (a once job that
// ran, a rule that never fires again) ends with SCHEDULE_COMPLETE, and one
// whose rule no longer compiles (its zone left the tz database) with
// SCHEDULE_INVALID.
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

// A slot and when its run fires (the slot plus its jitter).
struct NextRun {
  absl::Time slot;
  absl::Time fire;
};

// The next slot of `job` at or after `earliest`, or nullopt with
// `end_reason` set if a stop condition forbids any or the schedule has no
// slot left. Used at create, resume and update.
std::optional<NextRun> NextRunAtOrAfter(const v1::Job& job, absl::Time earliest,
                                        v1::Job::EndReason* end_reason);

}  // namespace timer::domain

namespace timer::domain {

// The next `count` slots of `job` after `from` (at or after it), as
// PreviewSchedule returns them: each with its fire time (plus jitter, when
// the job has an id), why it was chosen, and what removes it (stop
// conditions, pause, the catch-up window for slots before `now`). Stops
// after the first slot a stop condition removes, or when the schedule has
// no slot left (`ended`). Bounded work: `count` rule steps. The job's
// schedule must be valid (ValidateSchedule).
v1::PreviewScheduleResponse PreviewSlots(const v1::Job& job, absl::Time from,
                                         absl::Time now, int count);

}  // namespace timer::domain
