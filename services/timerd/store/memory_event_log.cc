#include "store/memory_event_log.h"

#include <algorithm>

namespace timer::store {

absl::Status MemoryEventLog::Check() const {
  if (!available_) return absl::UnavailableError("event log: unavailable (test)");
  return absl::OkStatus();
}

absl::StatusOr<int64_t> MemoryEventLog::AppendEvents(
    const std::vector<LoggedEvent>& events) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Check(); !s.ok()) return s;
  const int64_t first = head_ + 1;
  for (const LoggedEvent& e : events) {
    events_.push_back(e);
    events_.back().seq = ++head_;
  }
  return first;
}

absl::StatusOr<std::vector<LoggedEvent>> MemoryEventLog::ReadEventsAfter(int64_t after,
                                                                         int limit) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Check(); !s.ok()) return s;
  std::vector<LoggedEvent> out;
  auto it =
      std::upper_bound(events_.begin(), events_.end(), after,
                       [](int64_t seq, const LoggedEvent& e) { return seq < e.seq; });
  for (; it != events_.end() && static_cast<int>(out.size()) < limit; ++it) {
    out.push_back(*it);
  }
  return out;
}

absl::Status MemoryEventLog::WaitForEvents(int64_t after, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, after]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !available_ || head_ > after;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return Check();
}

absl::StatusOr<EventLogBounds> MemoryEventLog::EventBounds() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Check(); !s.ok()) return s;
  return EventLogBounds{events_.empty() ? head_ + 1 : events_.front().seq, head_};
}

absl::StatusOr<int64_t> MemoryEventLog::PruneEvents(int64_t keep) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Check(); !s.ok()) return s;
  int64_t dropped = 0;
  while (static_cast<int64_t>(events_.size()) > std::max<int64_t>(0, keep)) {
    events_.pop_front();
    ++dropped;
  }
  return dropped;
}

void MemoryEventLog::set_available(bool available) {
  absl::MutexLock lock(&mu_);
  available_ = available;
}

void MemoryEventLog::Lose(int64_t n) {
  absl::MutexLock lock(&mu_);
  events_.clear();
  head_ += n;
}

void MemoryEventLog::Forget() {
  absl::MutexLock lock(&mu_);
  events_.clear();
}

}  // namespace timer::store
