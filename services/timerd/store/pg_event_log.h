// PgEventLog: the EventLog in the PostgreSQL database the replicas share
// (tables `event_counter` and `events`, schema migration 3).
//
// Numbering at commit. An append is one statement and a COMMIT: it adds n
// to the one row of `event_counter` (UPDATE ... RETURNING), inserts its n
// events numbered last-n+1..last, and NOTIFYs `timer_events`. The counter
// row stays locked until the COMMIT, so appenders of every replica take
// turns: the order of the numbers is the order of the commits. A reader
// that read every event up to N therefore never misses one that commits
// later with a number at or below N (a bigserial would allow it: its value
// is taken at INSERT, and a transaction that took 7 may commit after one
// that took 8 was read). PostgreSQL makes a transaction visible before it
// releases its row locks, so the next appender's events are never seen
// without the previous one's.
//
// `events` is UNLOGGED (its rows skip the WAL, which halves an append's
// cost), so a PostgreSQL crash or a failover to a standby empties it; the
// counter is an ordinary table, so numbers never go back. Readers see the
// loss as a gap and make their watchers start over (RESET).
//
// Connections: one for appends and pruning, one for reading, which LISTENs
// and waits for notifications on its socket; each is opened again after it
// broke (a PostgreSQL restart), LISTENing again, and reads cover what was
// missed meanwhile. Calls on each connection are serialized.
//
// Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "store/event_log.h"
#include "store/pg_conn.h"

namespace timer::store {

class PgEventLog final : public EventLog {
 public:
  struct Options {
    std::string uri;  // As PostgresStore::Options::uri.
    // Bounds a connect and each statement.
    absl::Duration timeout = absl::Seconds(5);
  };

  // Connects nothing yet (the first call does); the schema must be
  // migrated (PostgresStore::Open does it).
  explicit PgEventLog(Options options);
  ~PgEventLog() override;

  absl::StatusOr<int64_t> AppendEvents(const std::vector<LoggedEvent>& events) override;
  absl::StatusOr<std::vector<LoggedEvent>> ReadEventsAfter(int64_t after,
                                                           int limit) override;
  absl::Status WaitForEvents(int64_t after, absl::Duration timeout) override;
  absl::StatusOr<EventLogBounds> EventBounds() override;
  absl::StatusOr<int64_t> PruneEvents(int64_t keep) override;

 private:
  // The connection in `slot`, opened (and, for the reader, LISTENing) if
  // it is missing or broke.
  absl::StatusOr<PgConn*> Writer() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  absl::StatusOr<PgConn*> Reader() ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_);

  PgConnector connector_;
  absl::Mutex write_mu_;
  std::unique_ptr<PgConn> writer_ ABSL_GUARDED_BY(write_mu_);
  absl::Mutex read_mu_;
  std::unique_ptr<PgConn> reader_ ABSL_GUARDED_BY(read_mu_);
};

}  // namespace timer::store
