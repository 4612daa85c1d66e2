// The PostgreSQL store's tables (jobs, results, request ids, tokens) and
// their versioned migrations, as store/sqlite_schema.h is for SQLite.
//
// The version is the one row of `timer_schema`. Migrate takes a session
// advisory lock first, so replicas starting together run each migration
// once, one after the other; each migration commits with its version in one
// transaction. A database whose version is newer than this build's is
// refused (FAILED_PRECONDITION), as the SQLite store refuses a newer file.
#pragma once

#include "absl/status/status.h"
#include "store/pg_conn.h"

namespace timer::store::pg_schema {

// The version this build writes.
int LatestVersion();

// Brings the database behind `conn` to LatestVersion(). `conn` must not be
// inside a transaction.
absl::Status Migrate(PgConn& conn);

// The advisory lock key Migrate holds (for tests that hold it themselves).
inline constexpr int64_t kMigrationLock = 0x74696d6572640001;  // "timerd\0\1"

}  // namespace timer::store::pg_schema
