// EventLog: the job events of every replica sharing one store, in one
// numbered sequence (domain/shared_events.h feeds it and tails it).
//
// AppendEvents numbers a batch with consecutive sequence numbers, taken when
// the batch commits: a batch that commits after another gets larger numbers,
// so a reader that has read every event up to N and then reads the events
// after N never skips one that commits later. Numbers never go back, not
// even after the kept events are lost (PostgreSQL keeps them in an UNLOGGED
// table, emptied by its crash recovery; the counter is logged): a gap in the
// numbers a reader gets is the sign that events were lost or pruned.
//
// The log keeps the newest events; PruneEvents drops older ones. A record
// with an empty owner is a marker (kLostMarker) that the appending replica
// dropped events it could not append: readers treat it as a gap.
//
// Implemented by MemoryEventLog (store/memory_store.h: shared by every hub
// of a test) and PgEventLog (store/pg_event_log.h). Stores one process owns
// (SQLite) have none: their EventHub numbers events itself.
//
// Thread-safe. Calls are synchronous and bounded (a PostgreSQL call by the
// connection's timeouts).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace timer::store {

struct LoggedEvent {
  int64_t seq = 0;    // Assigned by AppendEvents; ignored in its input.
  int64_t at_us = 0;  // When it was published (Unix µs), for people.
  // The replica that appended it (its lease replica id), so a replica can
  // tell its own events from others'.
  std::string origin;
  std::string owner;   // Empty: a marker of lost events (IsLostMarker).
  std::string job_id;  // Empty for a marker.
  // A serialized timer.v1.JobEvent without its sequence (empty for a marker).
  std::string body;

  bool IsLostMarker() const { return owner.empty(); }
};

struct EventLogBounds {
  // The oldest event kept, or head + 1 when none is.
  int64_t oldest = 1;
  // The last number handed out (0 before the first append).
  int64_t head = 0;
};

class EventLog {
 public:
  virtual ~EventLog() = default;

  // Appends `events` (their seq ignored) in one transaction; returns the
  // number of the first (the others follow it, consecutively). An error may
  // leave the outcome unknown (a connection lost during COMMIT): the caller
  // may append again, and readers may then see the events twice.
  virtual absl::StatusOr<int64_t> AppendEvents(
      const std::vector<LoggedEvent>& events) = 0;

  // The kept events numbered after `after`, oldest first, at most `limit`.
  virtual absl::StatusOr<std::vector<LoggedEvent>> ReadEventsAfter(int64_t after,
                                                                   int limit) = 0;

  // Returns once an event numbered after `after` may be there, or after
  // `timeout` (OK either way: the caller reads to find out). An error when
  // the log cannot be reached.
  virtual absl::Status WaitForEvents(int64_t after, absl::Duration timeout) = 0;

  virtual absl::StatusOr<EventLogBounds> EventBounds() = 0;

  // Drops all but the newest `keep` events (by number); returns how many
  // it dropped.
  virtual absl::StatusOr<int64_t> PruneEvents(int64_t keep) = 0;
};

}  // namespace timer::store
