// Tests of WorkerPool (domain/worker_pool.h): a fixed number of threads
// running queued tasks in order; Submit never blocks; the destructor finishes
// every queued task, then joins. Every wait is on a condition, with a timeout.

#include "domain/worker_pool.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timer::domain {
namespace {

using ::testing::Contains;
using ::testing::ElementsAreArray;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(30);
// How long a case gives a thing that must not happen to happen anyway.
constexpr absl::Duration kGrace = absl::Milliseconds(100);

// What the tasks of a case did, and a way to wait for it.
class Record {
 public:
  void Ran(int i) {
    absl::MutexLock lock(&mu_);
    order_.push_back(i);
    threads_.push_back(std::this_thread::get_id());
  }
  void Started() {
    absl::MutexLock lock(&mu_);
    ++running_;
  }
  // Until `n` tasks have run (or Started), or the timeout.
  bool AwaitRan(size_t n, absl::Duration timeout = kWait) {
    absl::MutexLock lock(&mu_);
    const auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return order_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  bool AwaitStarted(int n, absl::Duration timeout = kWait) {
    absl::MutexLock lock(&mu_);
    const auto done = [this, n]()
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  std::vector<int> order() const {
    absl::MutexLock lock(&mu_);
    return order_;
  }
  std::vector<std::thread::id> threads() const {
    absl::MutexLock lock(&mu_);
    return threads_;
  }
  int started() const {
    absl::MutexLock lock(&mu_);
    return running_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<int> order_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread::id> threads_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

std::vector<int> Iota(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i);
  return v;
}

TEST(WorkerPoolTest, RunsEverySubmittedTask) {
  Record record;
  WorkerPool pool(4);
  for (int i = 0; i < 1000; ++i) pool.Submit([&record, i] { record.Ran(i); });
  ASSERT_TRUE(record.AwaitRan(1000));
  std::vector<int> order = record.order();
  std::sort(order.begin(), order.end());
  EXPECT_THAT(order, ElementsAreArray(Iota(1000)));  // Each exactly once.
}

TEST(WorkerPoolTest, OneThreadRunsTasksInTheOrderTheyWereSubmitted) {
  Record record;
  WorkerPool pool(1);
  for (int i = 0; i < 200; ++i) pool.Submit([&record, i] { record.Ran(i); });
  ASSERT_TRUE(record.AwaitRan(200));
  EXPECT_THAT(record.order(), ElementsAreArray(Iota(200)));
}

TEST(WorkerPoolTest, TasksRunOnThePoolsThreadsNotTheSubmitters) {
  Record record;
  WorkerPool pool(2);
  for (int i = 0; i < 20; ++i) pool.Submit([&record, i] { record.Ran(i); });
  ASSERT_TRUE(record.AwaitRan(20));
  EXPECT_THAT(record.threads(), Not(Contains(std::this_thread::get_id())));
}

TEST(WorkerPoolTest, RunsAsManyTasksAtOnceAsItHasThreads) {
  constexpr int kThreads = 3;
  Record record;
  absl::Notification release;
  WorkerPool pool(kThreads);
  for (int i = 0; i < kThreads + 1; ++i) {
    pool.Submit([&record, &release, i] {
      record.Started();
      release.WaitForNotificationWithTimeout(kWait);
      record.Ran(i);
    });
  }
  // All threads are busy at once: each task waits for the others' release.
  ASSERT_TRUE(record.AwaitStarted(kThreads));
  // ... and no more than that: the last task waits for a free thread.
  EXPECT_FALSE(record.AwaitStarted(kThreads + 1, kGrace));
  EXPECT_EQ(record.started(), kThreads);
  release.Notify();
  ASSERT_TRUE(record.AwaitRan(kThreads + 1));
}

TEST(WorkerPoolTest, SubmitDoesNotBlockWhileEveryThreadIsBusy) {
  Record record;
  absl::Notification release;
  WorkerPool pool(1);
  pool.Submit([&record, &release] {
    record.Started();
    release.WaitForNotificationWithTimeout(kWait);
  });
  ASSERT_TRUE(record.AwaitStarted(1));
  // The only thread is held: these are queued, and Submit returns.
  for (int i = 0; i < 10000; ++i) pool.Submit([&record, i] { record.Ran(i); });
  EXPECT_THAT(record.order(), ::testing::IsEmpty());
  release.Notify();
  ASSERT_TRUE(record.AwaitRan(10000));
}

TEST(WorkerPoolTest, ATaskMaySubmitMoreTasks) {
  Record record;
  WorkerPool pool(1);  // One thread: a Submit that blocked would deadlock.
  pool.Submit([&record, &pool] {
    record.Ran(0);
    pool.Submit([&record] { record.Ran(1); });
  });
  ASSERT_TRUE(record.AwaitRan(2));
  EXPECT_THAT(record.order(), ElementsAreArray({0, 1}));
}

// Notifies when destroyed (unless moved from): tells when a task is gone.
class NotifyOnDestroy {
 public:
  explicit NotifyOnDestroy(absl::Notification* gone) : gone_(gone) {}
  NotifyOnDestroy(NotifyOnDestroy&& other) noexcept : gone_(other.gone_) {
    other.gone_ = nullptr;
  }
  NotifyOnDestroy& operator=(NotifyOnDestroy&&) = delete;
  ~NotifyOnDestroy() {
    if (gone_ != nullptr) gone_->Notify();
  }

 private:
  absl::Notification* gone_;
};

TEST(WorkerPoolTest, TakesMoveOnlyTasksAndReleasesThemOnceRun) {
  Record record;
  absl::Notification gone;
  WorkerPool pool(1);
  auto payload = std::make_unique<int>(42);
  pool.Submit([&record, payload = std::move(payload), guard = NotifyOnDestroy(&gone)] {
    record.Ran(*payload);
  });
  ASSERT_TRUE(record.AwaitRan(1));
  EXPECT_THAT(record.order(), ElementsAreArray({42}));
  // What the task captured is freed after it ran, while the pool lives on,
  // not kept until the pool goes.
  EXPECT_TRUE(gone.WaitForNotificationWithTimeout(kWait));
}

TEST(WorkerPoolTest, TheDestructorFinishesEveryQueuedTask) {
  Record record;
  {
    WorkerPool pool(2);
    for (int i = 0; i < 500; ++i) pool.Submit([&record, i] { record.Ran(i); });
  }  // No wait before the destructor: it must drain the queue itself.
  EXPECT_EQ(record.order().size(), 500u);
}

TEST(WorkerPoolTest, TheDestructorWaitsForTasksStillRunningAndQueuedBehindThem) {
  Record record;
  absl::Notification release;
  auto pool = std::make_unique<WorkerPool>(1);
  pool->Submit([&record, &release] {
    record.Started();
    release.WaitForNotificationWithTimeout(kWait);
    record.Ran(0);
  });
  for (int i = 1; i <= 50; ++i) pool->Submit([&record, i] { record.Ran(i); });
  ASSERT_TRUE(record.AwaitStarted(1));

  absl::Notification destroyed;
  std::thread destroyer([&] {
    pool.reset();
    destroyed.Notify();
  });
  // Still held by the running task.
  EXPECT_FALSE(destroyed.WaitForNotificationWithTimeout(kGrace));
  release.Notify();
  ASSERT_TRUE(destroyed.WaitForNotificationWithTimeout(kWait));
  destroyer.join();
  EXPECT_THAT(record.order(), ElementsAreArray(Iota(51)));
}

TEST(WorkerPoolTest, TasksSubmittedWhileTheDestructorDrainsStillRun) {
  Record record;
  {
    WorkerPool pool(1);
    // Each task queues the next, so the queue is never empty until the
    // chain ends, whenever the destructor starts.
    struct Chain {
      static void Link(WorkerPool* pool, Record* record, int i) {
        record->Ran(i);
        if (i < 99) pool->Submit([pool, record, i] { Link(pool, record, i + 1); });
      }
    };
    WorkerPool* p = &pool;
    pool.Submit([p, &record] { Chain::Link(p, &record, 0); });
  }
  EXPECT_THAT(record.order(), ElementsAreArray(Iota(100)));
}

TEST(WorkerPoolTest, ManySubmittersAtOnceLoseNothing) {
  constexpr int kSubmitters = 4;
  constexpr int kEach = 500;
  Record record;
  WorkerPool pool(3);
  absl::Notification go;
  std::vector<std::thread> submitters;
  for (int s = 0; s < kSubmitters; ++s) {
    submitters.emplace_back([&, s] {
      go.WaitForNotification();
      for (int i = 0; i < kEach; ++i) {
        pool.Submit([&record, n = s * kEach + i] { record.Ran(n); });
      }
    });
  }
  go.Notify();
  for (std::thread& t : submitters) t.join();
  ASSERT_TRUE(record.AwaitRan(kSubmitters * kEach));
  std::vector<int> order = record.order();
  std::sort(order.begin(), order.end());
  EXPECT_THAT(order, ElementsAreArray(Iota(kSubmitters * kEach)));
}

TEST(WorkerPoolTest, EachSubmittersTasksStartInItsOrderOnOneThread) {
  // FIFO per submitter, seen with one worker thread.
  constexpr int kSubmitters = 3;
  constexpr int kEach = 300;
  Record record;
  WorkerPool pool(1);
  absl::Notification go;
  std::vector<std::thread> submitters;
  for (int s = 0; s < kSubmitters; ++s) {
    submitters.emplace_back([&, s] {
      go.WaitForNotification();
      for (int i = 0; i < kEach; ++i) {
        pool.Submit([&record, n = s * kEach + i] { record.Ran(n); });
      }
    });
  }
  go.Notify();
  for (std::thread& t : submitters) t.join();
  ASSERT_TRUE(record.AwaitRan(kSubmitters * kEach));
  std::vector<int> last(kSubmitters, -1);
  for (int n : record.order()) {
    const int s = n / kEach;
    EXPECT_LT(last[s], n) << "submitter " << s << " ran out of order";
    last[s] = n;
  }
}

}  // namespace
}  // namespace timer::domain
