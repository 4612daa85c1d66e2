// Clock: the domain's only source of "now".
//
// Injected everywhere the domain needs the time so tests can drive days of
// schedule without sleeping. SystemClock is thread-safe; FakeClock is
// thread-safe too (a mutex guards its time).
#pragma once

#include <chrono>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace timer::domain {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

// std::chrono::steady_clock as a Clock: its Now() means nothing as a date,
// only differences between two readings do; it never jumps (for lease
// deadlines, domain/shard_lease.h).
class MonotonicClock final : public Clock {
 public:
  absl::Time Now() const override {
    return absl::FromUnixNanos(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
  }
};

// A clock that only moves when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace timer::domain
