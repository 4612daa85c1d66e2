// MemoryEventLog: an EventLog in memory, shared by every hub (replica) a
// test makes on it; the fake of PgEventLog, as MemoryStore is of
// PostgresStore. A test can make it refuse calls (set_available(false)) as
// an unreachable PostgreSQL would, with UNAVAILABLE.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "store/event_log.h"

namespace timer::store {

class MemoryEventLog final : public EventLog {
 public:
  absl::StatusOr<int64_t> AppendEvents(const std::vector<LoggedEvent>& events) override;
  absl::StatusOr<std::vector<LoggedEvent>> ReadEventsAfter(int64_t after,
                                                           int limit) override;
  absl::Status WaitForEvents(int64_t after, absl::Duration timeout) override;
  absl::StatusOr<EventLogBounds> EventBounds() override;
  absl::StatusOr<int64_t> PruneEvents(int64_t keep) override;

  // false: every call fails with UNAVAILABLE (a wait returns at once).
  void set_available(bool available);
  // Drops every kept event, keeping the numbering: PostgreSQL's crash
  // recovery emptying its UNLOGGED table.
  void Forget();
  // Numbers `n` events that are never kept: appended, then lost before any
  // reader saw them (Forget() right after an append, with no reader between).
  void Lose(int64_t n);

 private:
  absl::Status Check() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::deque<LoggedEvent> events_ ABSL_GUARDED_BY(mu_);
  int64_t head_ ABSL_GUARDED_BY(mu_) = 0;
  bool available_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace timer::store
