#include "domain/timer_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "domain/ids.h"

namespace timer::domain {
namespace {

JobKey Key(int i) { return JobKey{0, static_cast<uint64_t>(i)}; }
absl::Time T(int64_t s) { return absl::FromUnixSeconds(s); }

TEST(JobKeyTest, RoundTripsCanonicalUuids) {
  for (int i = 0; i < 100; ++i) {
    const std::string id = NewUuid();
    auto key = JobKey::Parse(id);
    ASSERT_TRUE(key.has_value()) << id;
    EXPECT_EQ(key->ToString(), id);
  }
  EXPECT_FALSE(JobKey::Parse("not-a-uuid").has_value());
  EXPECT_EQ(JobKey::Parse("ABCDEF01-2345-4678-9abc-def012345678")->ToString(),
            "abcdef01-2345-4678-9abc-def012345678");
}

TEST(TimerQueueTest, PopsDueJobsEarliestFirstAndLeavesTheRest) {
  TimerQueue q;
  q.Set(Key(1), T(30));
  q.Set(Key(2), T(10));
  q.Set(Key(3), T(20));
  EXPECT_EQ(q.NextDue(), T(10));
  auto due = q.PopDue(T(25), 100);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].first, Key(2));
  EXPECT_EQ(due[1].first, Key(3));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.NextDue(), T(30));
}

TEST(TimerQueueTest, SetMovesAJobInsteadOfAddingASecondEntry) {
  TimerQueue q;
  q.Set(Key(1), T(10));
  q.Set(Key(1), T(50));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_TRUE(q.PopDue(T(40), 100).empty());
  auto due = q.PopDue(T(50), 100);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].second, T(50));
}

TEST(TimerQueueTest, RemovedJobsNeverFire) {
  TimerQueue q;
  q.Set(Key(1), T(10));
  q.Set(Key(2), T(11));
  q.Remove(Key(1));
  q.Remove(Key(7));  // Absent: a no-op.
  auto due = q.PopDue(T(100), 100);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].first, Key(2));
  EXPECT_FALSE(q.NextDue().has_value());
}

TEST(TimerQueueTest, PopDueRespectsMax) {
  TimerQueue q;
  for (int i = 0; i < 10; ++i) q.Set(Key(i), T(i));
  EXPECT_EQ(q.PopDue(T(100), 3).size(), 3u);
  EXPECT_EQ(q.size(), 7u);
}

TEST(TimerQueueTest, ManyRandomMovesStayOrderedAndCompact) {
  TimerQueue q;
  std::mt19937 rng(7);
  std::vector<int64_t> due(20000);
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 20000; ++i) {
      due[i] = rng() % 1000000;
      q.Set(Key(i), T(due[i]));
    }
  }
  for (int i = 0; i < 20000; i += 2) q.Remove(Key(i));
  auto popped = q.PopDue(T(2000000), 1000000);
  ASSERT_EQ(popped.size(), 10000u);
  for (size_t i = 0; i < popped.size(); ++i) {
    EXPECT_EQ(popped[i].first.lo % 2, 1u);
    EXPECT_EQ(popped[i].second, T(due[popped[i].first.lo]));
    if (i > 0) {
      EXPECT_LE(popped[i - 1].second, popped[i].second);
    }
  }
  EXPECT_EQ(q.size(), 0u);
}

// SetAll, the load at start: the same queue as one Set per job, also over
// jobs already queued (moved, not doubled) and with a job named twice (the
// later due time wins, as two Sets).
TEST(TimerQueueTest, SetAllQueuesAsOneSetEachWould) {
  TimerQueue q;
  q.Set(Key(1), T(500));
  q.Set(Key(2), T(5));
  std::mt19937 rng(11);
  std::vector<std::pair<JobKey, int64_t>> jobs;
  std::vector<int64_t> due(5000);
  for (int i = 0; i < 5000; ++i) {
    due[i] = rng() % 100000;
    jobs.emplace_back(Key(i), absl::ToUnixMicros(T(due[i])));
  }
  jobs.emplace_back(Key(7), absl::ToUnixMicros(T(3)));
  due[7] = 3;
  q.SetAll(jobs);
  EXPECT_EQ(q.size(), 5000u);
  EXPECT_EQ(q.DueTime(Key(1)), T(due[1]));
  EXPECT_EQ(q.DueTime(Key(2)), T(due[2]));
  EXPECT_EQ(q.DueTime(Key(7)), T(3));
  auto popped = q.PopDue(T(1000000), 1000000);
  ASSERT_EQ(popped.size(), 5000u);
  for (size_t i = 0; i < popped.size(); ++i) {
    EXPECT_EQ(popped[i].second, T(due[popped[i].first.lo])) << i;
    if (i > 0) {
      EXPECT_LE(popped[i - 1].second, popped[i].second);
    }
  }
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.NextDue(), std::nullopt);
}

}  // namespace
}  // namespace timer::domain
