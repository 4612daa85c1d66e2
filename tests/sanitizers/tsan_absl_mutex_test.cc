// Checks sanitizers/tsan_absl_mutex.c, in -DTIMER_SANITIZE=thread builds only:
// data handed between threads with each absl::Mutex, CondVar and
// Notification entry point we use must carry no ThreadSanitizer report.
// Without the interposer (or if Debian's Abseil changes the symbols it
// interposes on), every test here fails with a data race report, which
// scripts/sanitize-test.sh counts as a failure.
#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace timer {
namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 2000;

TEST(TsanAbslMutexTest, LockAndUnlockOrderGuardedWrites) {
  absl::Mutex mu;
  int counter = 0;  // Guarded by mu; plain int so TSan checks every access.
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        absl::MutexLock lock(&mu);
        ++counter;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(counter, kThreads * kRounds);
}

TEST(TsanAbslMutexTest, ReaderLocksSeeWhatTheWriterWrote) {
  absl::Mutex mu;
  int value = 0;
  std::thread writer([&] {
    for (int i = 1; i <= kRounds; ++i) {
      absl::WriterMutexLock lock(&mu);
      value = i;
    }
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < kThreads; ++t) {
    readers.emplace_back([&] {
      int last = 0;
      for (int i = 0; i < kRounds; ++i) {
        absl::ReaderMutexLock lock(&mu);
        EXPECT_GE(value, last);
        last = value;
      }
    });
  }
  writer.join();
  for (std::thread& t : readers) t.join();
}

TEST(TsanAbslMutexTest, TryLockOrdersLikeLock) {
  absl::Mutex mu;
  int counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int done = 0; done < kRounds;) {
        if (mu.TryLock()) {
          ++counter;
          ++done;
          mu.Unlock();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(counter, kThreads * kRounds);
}

// One slot handed back and forth: Await and LockWhen (plain and timed) each
// wait for the other side's write.
TEST(TsanAbslMutexTest, AwaitAndLockWhenSeeTheOtherSidesWrite) {
  absl::Mutex mu;
  int slot = 0;  // Odd: the consumer's turn; even: the producer's.
  std::thread consumer([&] {
    for (int i = 0; i < kRounds; ++i) {
      auto odd = [&] { return slot % 2 == 1; };
      if (i % 2 == 0) {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(&odd));
        ++slot;
      } else {
        mu.LockWhenWithTimeout(absl::Condition(&odd), absl::Seconds(60));
        ++slot;
        mu.Unlock();
      }
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    auto even = [&] { return slot % 2 == 0; };
    if (i % 2 == 0) {
      absl::MutexLock lock(&mu, absl::Condition(&even));
      ++slot;
    } else {
      absl::MutexLock lock(&mu);
      ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&even), absl::Seconds(60)));
      ++slot;
    }
  }
  consumer.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(slot, 2 * kRounds);
}

TEST(TsanAbslMutexTest, CondVarWaitSeesTheSignallersWrite) {
  absl::Mutex mu;
  absl::CondVar cv;
  std::vector<int> items;  // A heap buffer: reallocations are checked too.
  std::thread producer([&] {
    for (int i = 0; i < kRounds; ++i) {
      absl::MutexLock lock(&mu);
      items.push_back(i);
      cv.Signal();
    }
  });
  size_t seen = 0;
  while (seen < static_cast<size_t>(kRounds)) {
    absl::MutexLock lock(&mu);
    while (items.size() == seen) cv.WaitWithTimeout(&mu, absl::Seconds(60));
    EXPECT_EQ(items[seen], static_cast<int>(seen));
    seen = items.size();
  }
  producer.join();
}

TEST(TsanAbslMutexTest, NotificationPublishesDataOnBothWaitPaths) {
  for (int i = 0; i < 200; ++i) {
    auto data = std::make_unique<int>(0);
    absl::Notification ready;
    absl::Notification release;
    std::thread t([&] {
      *data = i;
      ready.Notify();
      release.WaitForNotification();
    });
    if (i % 2 == 0) {
      // Already notified: the library returns without touching its mutex.
      while (!ready.HasBeenNotified()) std::this_thread::yield();
      ready.WaitForNotification();
    } else {
      ASSERT_TRUE(ready.WaitForNotificationWithTimeout(absl::Seconds(60)));
    }
    EXPECT_EQ(*data, i);
    release.Notify();
    t.join();
  }
}

}  // namespace
}  // namespace timer
