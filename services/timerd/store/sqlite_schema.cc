#include "store/sqlite_schema.h"

#include <iterator>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace timer::store::sqlite_schema {
namespace {

// Migration i (1-based) brings the schema from version i-1 to i. Append only;
// never edit a migration that has shipped.
constexpr const char* kMigrations[] = {
    // 1: jobs, their results, and create-request idempotency keys.
    R"sql(
      CREATE TABLE jobs (
        job_id      TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        create_us   INTEGER NOT NULL,
        deleted     INTEGER NOT NULL DEFAULT 0,
        status      INTEGER NOT NULL,
        next_run_us INTEGER,       -- NULL when no run is due (paused, ended...)
        version     INTEGER NOT NULL,
        job         BLOB NOT NULL  -- serialized timer.v1.Job, etag cleared
      );
      CREATE INDEX jobs_by_owner_live ON jobs (owner, deleted, create_us, job_id);
      CREATE INDEX jobs_by_owner_all ON jobs (owner, create_us, job_id);
      CREATE INDEX jobs_due ON jobs (next_run_us, job_id) WHERE next_run_us IS NOT NULL;
      CREATE TABLE results (
        job_id     TEXT NOT NULL,
        run_number INTEGER NOT NULL,
        status     INTEGER NOT NULL,  -- timer.v1.JobResult.Status
        end_us     INTEGER,           -- NULL while the run is open
        result     BLOB NOT NULL,     -- serialized timer.v1.JobResult
        PRIMARY KEY (job_id, run_number)
      ) WITHOUT ROWID;
      CREATE INDEX results_open ON results (status) WHERE status IN (1, 2);
      CREATE TABLE request_ids (
        owner       TEXT NOT NULL,
        request_id  TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        job_id      TEXT NOT NULL,
        create_us   INTEGER NOT NULL,
        PRIMARY KEY (owner, request_id)
      ) WITHOUT ROWID;
    )sql",
    // 2: results kept in the order they are written (rowid), so the writes of
    // one commit land on a few pages at the table's end instead of one page
    // per job; found by (job_id, run_number) through a unique index.
    R"sql(
      CREATE TABLE results_v2 (
        id         INTEGER PRIMARY KEY,
        job_id     TEXT NOT NULL,
        run_number INTEGER NOT NULL,
        status     INTEGER NOT NULL,  -- timer.v1.JobResult.Status
        end_us     INTEGER,           -- NULL while the run is open
        result     BLOB NOT NULL      -- serialized timer.v1.JobResult
      );
      INSERT INTO results_v2 (job_id, run_number, status, end_us, result)
        SELECT job_id, run_number, status, end_us, result FROM results
        ORDER BY job_id, run_number;
      DROP TABLE results;
      ALTER TABLE results_v2 RENAME TO results;
      CREATE UNIQUE INDEX results_by_run ON results (job_id, run_number);
      CREATE INDEX results_open ON results (status) WHERE status IN (1, 2);
    )sql",
    // 3: bearer tokens (store/sqlite_token_store.h). Only a SHA-256 of each token's
    // secret is kept.
    R"sql(
      CREATE TABLE tokens (
        token_id      TEXT PRIMARY KEY,
        identity      TEXT NOT NULL,
        secret_sha256 BLOB NOT NULL,
        create_us     INTEGER NOT NULL,
        expire_us     INTEGER,       -- NULL: never expires
        revoke_us     INTEGER,       -- NULL: not revoked
        description   TEXT NOT NULL DEFAULT ''
      ) WITHOUT ROWID;
      CREATE INDEX tokens_by_identity ON tokens (identity, create_us);
    )sql",
    // 4: a job's results are reached through links, newest first: the job
    // names its newest result and each result the one before it. This
    // replaces the (job_id, run_number) index, a leaf of which every fire
    // rewrote at a random place in the file (docs/PERFORMANCE-HISTORY.md,
    // "Fifth round: results reached through links").
    R"sql(
      ALTER TABLE jobs ADD COLUMN last_result INTEGER;  -- results.id; NULL: none
      ALTER TABLE results ADD COLUMN prev INTEGER;      -- results.id; NULL: none
      UPDATE results SET prev = (
        SELECT r.id FROM results r WHERE r.job_id = results.job_id AND
          r.run_number < results.run_number ORDER BY r.run_number DESC LIMIT 1);
      UPDATE jobs SET last_result = (
        SELECT r.id FROM results r WHERE r.job_id = jobs.job_id
        ORDER BY r.run_number DESC LIMIT 1);
      DROP INDEX results_by_run;
    )sql",
    // 5: deleted jobs are purged after a retention period, in the order they
    // were deleted (purge_queue: no job row is rewritten to add a column;
    // jobs deleted before this migration count their retention from it), with
    // their create request ids (found by job) and the request ids of their
    // manual runs (RunJobNow's idempotency, by (job_id, request_id)).
    R"sql(
      CREATE TABLE purge_queue (
        delete_us INTEGER NOT NULL,
        job_id    TEXT NOT NULL,
        PRIMARY KEY (delete_us, job_id)
      ) WITHOUT ROWID;
      INSERT INTO purge_queue (delete_us, job_id)
        SELECT CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER), job_id
        FROM jobs WHERE deleted = 1;
      CREATE INDEX request_ids_by_job ON request_ids (job_id);
      CREATE TABLE run_request_ids (
        job_id     TEXT NOT NULL,
        request_id TEXT NOT NULL,
        run_number INTEGER NOT NULL,
        create_us  INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX run_request_ids_by_key ON run_request_ids (job_id, request_id);
      CREATE INDEX run_request_ids_by_age ON run_request_ids (create_us);
    )sql",
};

}  // namespace

int LatestVersion() { return static_cast<int>(std::size(kMigrations)); }

absl::Status Configure(Db& db) {
  // busy_timeout covers the short window in which a checkpoint holds a lock.
  return db.Exec(
      "PRAGMA journal_mode = WAL;"
      "PRAGMA synchronous = FULL;"
      "PRAGMA busy_timeout = 5000;"
      "PRAGMA foreign_keys = ON;"
      // Pages stay in memory instead of being re-read from the OS on every
      // write (a 2 MB default cache thrashes with many jobs).
      "PRAGMA cache_size = -65536;"
      "PRAGMA mmap_size = 268435456;");
}

absl::Status Migrate(Db& db, const std::string& path) {
  ASSIGN_OR_RETURN(int64_t version, db.QueryInt("PRAGMA user_version"));
  const int64_t latest = LatestVersion();
  if (version > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store: ", path, " has schema version ", version,
        ", newer than this timerd understands (", latest, "); run a newer timerd"));
  }
  for (int64_t v = version; v < latest; ++v) {
    RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    absl::Status s = db.Exec(kMigrations[v]);
    if (s.ok()) s = db.Exec(absl::StrCat("PRAGMA user_version = ", v + 1).c_str());
    if (s.ok()) s = db.Exec("COMMIT");
    if (!s.ok()) {
      db.Exec("ROLLBACK").IgnoreError();
      return absl::Status(s.code(), absl::StrCat("store: migration to schema ", v + 1,
                                                 " failed: ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace timer::store::sqlite_schema
