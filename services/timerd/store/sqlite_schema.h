// The schema of timer.db, SQLite: its one owner.
//
// Every table of the file (jobs, results, request_ids, run_request_ids,
// purge_queue, tokens) is created and changed here, by versioned migrations
// tracked in PRAGMA user_version, so that the stores sharing the file (SqliteStore,
// SqliteTokenStore) never each bring their own. A database written by a newer timerd is
// refused rather than misread. SqliteStore migrates on Open; SqliteTokenStore only reads
// what is there.
//
// Free functions over a Db the caller owns and uses on one thread.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "store/sqlite_util.h"

namespace timer::store::sqlite_schema {

// The schema version this build writes.
int LatestVersion();

// The connection settings every connection that writes uses: WAL,
// synchronous=FULL, busy_timeout, cache sizes.
absl::Status Configure(Db& db);

// Brings the database to LatestVersion(), one transaction per migration.
// FAILED_PRECONDITION if it is newer than this build; `path` names it in
// messages.
absl::Status Migrate(Db& db, const std::string& path);

}  // namespace timer::store::sqlite_schema
