// DecideFire / NextRunAtOrAfter / DecideOverlap: the grid, lateness, missed
// slots, stop conditions and overlap policies, with no clock and no store.
#include <gtest/gtest.h>

#include <random>

#include "domain/schedule.h"
#include "domain/time_util.h"

namespace timer::domain {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

v1::Job MakeJob(int64_t interval_seconds) {
  v1::Job job;
  *job.mutable_schedule()->mutable_start() = ToProto(kStart);
  job.mutable_schedule()->set_interval_seconds(interval_seconds);
  return job;
}

absl::Time Slot(int64_t k, int64_t interval = 10) {
  return kStart + absl::Seconds(interval) * k;
}

TEST(DecideFireTest, NoDriftAcross10000RunsWithRandomLateness) {
  v1::Job job = MakeJob(10);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> lateness_us(0, 9'999'999);  // < interval
  absl::Time due = kStart;
  absl::Time previous_scheduled = absl::InfinitePast();
  for (int64_t k = 0; k < 10000; ++k) {
    const absl::Time now = due + absl::Microseconds(lateness_us(rng));
    const FireDecision d = DecideFire(job, due, now);
    ASSERT_EQ(d.kind, FireDecision::Kind::kRun) << k;
    ASSERT_EQ(d.scheduled, Slot(k)) << k;
    ASSERT_EQ(d.missed, 0) << k;
    ASSERT_TRUE(d.next.has_value());
    ASSERT_EQ(*d.next, Slot(k + 1)) << "lateness leaked into the grid at run " << k;
    // Never two scheduled runs closer than the interval.
    ASSERT_GE(d.scheduled - previous_scheduled, absl::Seconds(10));
    previous_scheduled = d.scheduled;
    job.set_n_runs(job.n_runs() + 1);
    due = *d.next;
  }
}

// Globus Timer's promise that a late run does not delay the next ("the job
// will stay on schedule and not drift"): a 10 s job whose runs each start a
// second late stays at :21, :31, ..., not :22, :33.
TEST(DecideFireTest, GlobusTimerExampleRunsAt11_21_31NotAt11_22_33) {
  v1::Job job = MakeJob(10);
  // Every run starts a second late; the next is still due on the grid.
  std::vector<absl::Time> due_times;
  absl::Time due = Slot(1);
  for (int i = 0; i < 3; ++i) {
    const FireDecision d = DecideFire(job, due, due + absl::Seconds(1));
    due_times.push_back(*d.next);
    due = *d.next;
  }
  EXPECT_EQ(due_times, (std::vector<absl::Time>{Slot(2), Slot(3), Slot(4)}));
}

TEST(DecideFireTest, FarLateWithSkipMissedRunsNothingAndJumpsToTheNextFutureSlot) {
  v1::Job job = MakeJob(10);
  job.set_missed_run_policy(v1::SKIP_MISSED);
  const FireDecision d = DecideFire(job, Slot(0), Slot(3) + absl::Seconds(5));
  EXPECT_EQ(d.kind, FireDecision::Kind::kSkipMissed);
  EXPECT_EQ(d.scheduled, Slot(0));
  EXPECT_EQ(d.missed, 3);  // Slots 1, 2 and 3 besides slot 0.
  EXPECT_EQ(d.next, Slot(4));
}

TEST(DecideFireTest, FarLateWithRunOnceRunsTheLatestMissedSlotOnce) {
  v1::Job job = MakeJob(10);
  job.set_missed_run_policy(v1::RUN_ONCE);
  const FireDecision d = DecideFire(job, Slot(0), Slot(3) + absl::Seconds(5));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_EQ(d.scheduled, Slot(3));
  EXPECT_EQ(d.missed, 3);  // Slots 0, 1 and 2.
  EXPECT_EQ(d.next, Slot(4));
}

TEST(DecideFireTest, ExactlyOneIntervalLateCountsAsMissed) {
  v1::Job job = MakeJob(10);
  const FireDecision d = DecideFire(job, Slot(0), Slot(1));
  EXPECT_EQ(d.kind, FireDecision::Kind::kSkipMissed);
  EXPECT_EQ(d.next, Slot(1));
}

TEST(DecideFireTest, StopAfterRunsEndsAfterTheLastRun) {
  v1::Job job = MakeJob(10);
  job.mutable_schedule()->set_stop_after_runs(3);
  job.set_n_runs(2);
  FireDecision d = DecideFire(job, Slot(2), Slot(2));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_FALSE(d.next.has_value());
  EXPECT_EQ(d.end_reason, v1::Job::STOP_AFTER_RUNS);

  job.set_n_runs(3);
  d = DecideFire(job, Slot(3), Slot(3));
  EXPECT_EQ(d.kind, FireDecision::Kind::kEnd);
  EXPECT_EQ(d.end_reason, v1::Job::STOP_AFTER_RUNS);
}

TEST(DecideFireTest, StopAfterDateEndsBeforeTheFirstSlotAtOrAfterIt) {
  v1::Job job = MakeJob(10);
  *job.mutable_schedule()->mutable_stop_after_date() = ToProto(Slot(2));
  FireDecision d = DecideFire(job, Slot(1), Slot(1));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_FALSE(d.next.has_value());
  EXPECT_EQ(d.end_reason, v1::Job::STOP_AFTER_DATE);

  d = DecideFire(job, Slot(2), Slot(2));
  EXPECT_EQ(d.kind, FireDecision::Kind::kEnd);
}

TEST(DecideFireTest, RunOnceNeverCatchesUpPastTheStopDate) {
  v1::Job job = MakeJob(10);
  job.set_missed_run_policy(v1::RUN_ONCE);
  *job.mutable_schedule()->mutable_stop_after_date() =
      ToProto(Slot(2) + absl::Seconds(1));
  const FireDecision d = DecideFire(job, Slot(0), Slot(5));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_EQ(d.scheduled, Slot(2));  // The latest slot before the stop date.
  EXPECT_FALSE(d.next.has_value());
  EXPECT_EQ(d.end_reason, v1::Job::STOP_AFTER_DATE);
}

TEST(NextRunAtOrAfterTest, IsTheNextGridSlot) {
  v1::Job job = MakeJob(10);
  v1::Job::EndReason reason = v1::Job::END_REASON_UNSPECIFIED;
  EXPECT_EQ(NextRunAtOrAfter(job, kStart - absl::Hours(1), &reason)->slot, Slot(0));
  EXPECT_EQ(NextRunAtOrAfter(job, Slot(4) + absl::Milliseconds(1), &reason)->slot,
            Slot(5));
  EXPECT_EQ(NextRunAtOrAfter(job, Slot(7), &reason)->slot, Slot(7));
}

TEST(NextRunAtOrAfterTest, NoneWhenAStopConditionHolds) {
  v1::Job job = MakeJob(10);
  job.mutable_schedule()->set_stop_after_runs(2);
  job.set_n_runs(2);
  v1::Job::EndReason reason = v1::Job::END_REASON_UNSPECIFIED;
  EXPECT_FALSE(NextRunAtOrAfter(job, kStart, &reason).has_value());
  EXPECT_EQ(reason, v1::Job::STOP_AFTER_RUNS);

  v1::Job dated = MakeJob(10);
  *dated.mutable_schedule()->mutable_stop_after_date() = ToProto(Slot(3));
  EXPECT_FALSE(NextRunAtOrAfter(dated, Slot(2) + absl::Seconds(1), &reason).has_value());
  EXPECT_EQ(reason, v1::Job::STOP_AFTER_DATE);
}

v1::Job WithOverlap(v1::OverlapPolicy policy, int max_concurrent = 0) {
  v1::Job job = MakeJob(10);
  job.set_overlap_policy(policy);
  job.set_max_concurrent(max_concurrent);
  return job;
}

using OverlapKind = OverlapDecision::Kind;

TEST(DecideOverlapTest, WithNothingActiveEveryPolicyStarts) {
  for (v1::OverlapPolicy policy : {v1::OVERLAP_POLICY_UNSPECIFIED, v1::SKIP,
                                   v1::BUFFER_ONE, v1::CANCEL_PREVIOUS, v1::ALLOW}) {
    const OverlapDecision d = DecideOverlap(WithOverlap(policy), 0, false);
    EXPECT_EQ(d.kind, OverlapKind::kStart) << v1::OverlapPolicy_Name(policy);
    EXPECT_TRUE(d.reason.empty()) << v1::OverlapPolicy_Name(policy);
  }
}

TEST(DecideOverlapTest, SkipAndUnspecifiedSkipWhileARunIsActive) {
  for (v1::OverlapPolicy policy : {v1::OVERLAP_POLICY_UNSPECIFIED, v1::SKIP}) {
    const OverlapDecision d = DecideOverlap(WithOverlap(policy), 1, false);
    EXPECT_EQ(d.kind, OverlapKind::kSkip);
    EXPECT_EQ(d.reason, "the previous run is still active");
  }
}

TEST(DecideOverlapTest, BufferOneKeepsOneWaitingAndSkipsTheNext) {
  const v1::Job job = WithOverlap(v1::BUFFER_ONE);
  EXPECT_EQ(DecideOverlap(job, 1, false).kind, OverlapKind::kBuffer);
  EXPECT_EQ(DecideOverlap(job, 3, false).kind, OverlapKind::kBuffer);
  const OverlapDecision full = DecideOverlap(job, 1, true);
  EXPECT_EQ(full.kind, OverlapKind::kSkip);
  EXPECT_EQ(full.reason, "a run is already waiting for the active one to end");
  // A waiting run with nothing active any more does not hold the next one.
  EXPECT_EQ(DecideOverlap(job, 0, true).kind, OverlapKind::kStart);
}

TEST(DecideOverlapTest, CancelPreviousCancelsOnlyWhenSomethingIsActive) {
  const v1::Job job = WithOverlap(v1::CANCEL_PREVIOUS);
  EXPECT_EQ(DecideOverlap(job, 1, false).kind, OverlapKind::kCancelPrevious);
  EXPECT_EQ(DecideOverlap(job, 2, true).kind, OverlapKind::kCancelPrevious);
  EXPECT_TRUE(DecideOverlap(job, 1, false).reason.empty());
}

TEST(DecideOverlapTest, AllowStartsUpToMaxConcurrentThenSkips) {
  const v1::Job three = WithOverlap(v1::ALLOW, 3);
  EXPECT_EQ(DecideOverlap(three, 2, false).kind, OverlapKind::kStart);
  const OverlapDecision d = DecideOverlap(three, 3, false);
  EXPECT_EQ(d.kind, OverlapKind::kSkip);
  EXPECT_EQ(d.reason, "max_concurrent (3) runs are already active");
  EXPECT_EQ(DecideOverlap(three, 7, false).kind, OverlapKind::kSkip);
}

TEST(DecideOverlapTest, AllowWithoutMaxConcurrentMeansOneAtATime) {
  for (int max_concurrent : {0, -5}) {
    const v1::Job job = WithOverlap(v1::ALLOW, max_concurrent);
    EXPECT_EQ(DecideOverlap(job, 0, false).kind, OverlapKind::kStart);
    const OverlapDecision d = DecideOverlap(job, 1, false);
    EXPECT_EQ(d.kind, OverlapKind::kSkip);
    EXPECT_EQ(d.reason, "max_concurrent (1) runs are already active");
  }
}

TEST(IsSchedulableTest, OnlyNewLoadedAndUpdatedJobsFire) {
  for (int s = v1::Job::Status_MIN; s <= v1::Job::Status_MAX; ++s) {
    if (!v1::Job::Status_IsValid(s)) continue;
    const auto status = static_cast<v1::Job::Status>(s);
    const bool expected =
        status == v1::Job::NEW || status == v1::Job::LOADED || status == v1::Job::UPDATED;
    EXPECT_EQ(IsSchedulable(status), expected) << v1::Job::Status_Name(status);
  }
}

}  // namespace
}  // namespace timer::domain
