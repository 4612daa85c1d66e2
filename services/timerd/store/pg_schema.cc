#include "store/pg_schema.h"

#include <iterator>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace timer::store::pg_schema {
namespace {

// Migration i (1-based) brings the schema from version i-1 to i. Append only;
// never edit a migration that has shipped.
constexpr const char* kMigrations[] = {
    // 1: jobs (with the shard each belongs to: store::ShardOf), their
    // results, create and manual-run request ids, bearer tokens. Ids compare
    // as bytes (COLLATE "C"), as in the other stores, whatever the
    // database's locale.
    R"sql(
      CREATE TABLE jobs (
        job_id      text COLLATE "C" PRIMARY KEY,
        owner       text COLLATE "C" NOT NULL,
        shard       integer NOT NULL,   -- store::ShardOf(job_id), fixed forever
        create_us   bigint NOT NULL,
        deleted     boolean NOT NULL,
        delete_us   bigint,             -- set while deleted: retention start
        status      integer NOT NULL,   -- timer.v1.Job.Status
        next_run_us bigint,             -- NULL when no run is due
        version     bigint NOT NULL,    -- the etag
        job         bytea NOT NULL      -- serialized timer.v1.Job, no etag/results
      );
      CREATE INDEX jobs_by_owner_live ON jobs (owner, create_us, job_id) WHERE NOT deleted;
      CREATE INDEX jobs_by_owner_all ON jobs (owner, create_us, job_id);
      CREATE INDEX jobs_due ON jobs (shard, next_run_us) WHERE next_run_us IS NOT NULL;
      CREATE INDEX jobs_deleted ON jobs (delete_us, job_id) WHERE deleted;
      CREATE TABLE results (
        job_id     text COLLATE "C" NOT NULL,
        run_number bigint NOT NULL,
        status     integer NOT NULL,    -- timer.v1.JobResult.Status
        end_us     bigint,              -- NULL while the run is open
        result     bytea NOT NULL,      -- serialized timer.v1.JobResult
        PRIMARY KEY (job_id, run_number)
      );
      CREATE INDEX results_open ON results (job_id) WHERE status IN (1, 2);
      CREATE TABLE request_ids (
        owner       text NOT NULL,
        request_id  text NOT NULL,
        fingerprint text NOT NULL,
        job_id      text NOT NULL,
        create_us   bigint NOT NULL,
        PRIMARY KEY (owner, request_id)
      );
      CREATE INDEX request_ids_by_job ON request_ids (job_id);
      CREATE TABLE run_request_ids (
        job_id     text NOT NULL,
        request_id text NOT NULL,
        run_number bigint NOT NULL,
        create_us  bigint NOT NULL,
        PRIMARY KEY (job_id, request_id)
      );
      CREATE INDEX run_request_ids_by_age ON run_request_ids (create_us);
      CREATE TABLE tokens (
        token_id      text PRIMARY KEY,
        identity      text NOT NULL,
        secret_sha256 bytea NOT NULL,
        create_us     bigint NOT NULL,
        expire_us     bigint,           -- NULL: never expires
        revoke_us     bigint,           -- NULL: not revoked
        description   text NOT NULL DEFAULT ''
      );
      CREATE INDEX tokens_by_identity ON tokens (identity, create_us);
    )sql",
    // 2: shard leases of the replicas sharing this database (LeaseStore):
    // one row per shard, its holder and epoch (the fencing token), expiry on
    // PostgreSQL's clock; and the replicas' heartbeats.
    R"sql(
      CREATE TABLE shard_leases (
        shard      integer PRIMARY KEY,
        holder     text COLLATE "C",    -- a replica id; NULL: free
        epoch      bigint NOT NULL DEFAULT 0,
        expires_at timestamptz
      );
      INSERT INTO shard_leases (shard) SELECT generate_series(0, 255);
      CREATE INDEX shard_leases_by_holder ON shard_leases (holder);
      CREATE TABLE replicas (
        replica_id   text COLLATE "C" PRIMARY KEY,
        host         text NOT NULL,
        heartbeat_at timestamptz NOT NULL
      );
    )sql",
    // 3: the shared event log (store/pg_event_log.h): a logged counter, so
    // sequence numbers never go back, and the events themselves UNLOGGED
    // (not in the WAL: cheap to write; emptied by a crash recovery or lost
    // by a failover to a standby, which watchers see as a RESET).
    R"sql(
      CREATE TABLE event_counter (
        one  boolean PRIMARY KEY DEFAULT true CHECK (one),
        last bigint NOT NULL
      );
      INSERT INTO event_counter (last) VALUES (0);
      CREATE UNLOGGED TABLE events (
        seq    bigint PRIMARY KEY,
        at_us  bigint NOT NULL,
        origin text COLLATE "C" NOT NULL,  -- the appending replica's id
        owner  text COLLATE "C" NOT NULL,  -- empty: a marker of lost events
        job_id text COLLATE "C" NOT NULL,
        body   bytea NOT NULL              -- timer.v1.JobEvent, no sequence
      );
    )sql",
    // 4: a fire updates its job in place (a HOT update: no new entry in
    // any index): the shard index no longer holds next_run_us, which every
    // fire changes (a shard's due jobs are read from the heap by shard, a
    // few thousand rows at a million jobs), and jobs pages keep room for
    // the new row versions.
    R"sql(
      CREATE INDEX jobs_by_shard ON jobs (shard);
      DROP INDEX jobs_due;
      ALTER TABLE jobs SET (fillfactor = 70);
    )sql",
    // 5: RunJobNow calls relayed to the replica that schedules the job
    // (RelayStore); rows live for a minute past their expiry. No sequence:
    // a role with table grants only (DEPLOYMENT.md) must be able to insert.
    R"sql(
      CREATE TABLE relayed_runs (
        id          text COLLATE "C" PRIMARY KEY,
        shard       integer NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
        owner       text NOT NULL,
        job_id      text NOT NULL,
        request_id  text NOT NULL,
        expires_at  timestamptz NOT NULL,
        claimed_by  text COLLATE "C",   -- a replica id; NULL: not claimed
        code        integer,            -- the outcome; NULL: not finished
        message     text
      );
      CREATE INDEX relayed_runs_unclaimed ON relayed_runs (shard, created_at)
        WHERE claimed_by IS NULL;
      CREATE INDEX relayed_runs_by_expiry ON relayed_runs (expires_at);
    )sql",
    // 6: a shard's due jobs are read in job_id order a page at a time
    // (scan_due_shard); with an index on the shard alone PostgreSQL
    // intersected it with a scan of the whole primary key for
    // "job_id > $2" (10 ms a shard at 10,000 jobs, every shard at each
    // rescan). Neither column changes on a fire, so fires stay HOT.
    R"sql(
      CREATE INDEX jobs_by_shard_id ON jobs (shard, job_id);
      DROP INDEX jobs_by_shard;
    )sql",
};

constexpr PgStatement kVersion = {"schema_version",
                                  "SELECT max(version) FROM timer_schema"};

constexpr PgStatement kHasVersion = {"schema_exists",
                                     "SELECT to_regclass('timer_schema') IS NOT NULL"};

absl::Status MigrateLocked(PgConn& conn) {
  // Created only when missing: a role without CREATE (least privilege)
  // opens an up-to-date database without any DDL.
  ASSIGN_OR_RETURN(PgResult exists, conn.Run(kHasVersion, {}));
  if (exists.Int(0, 0) == 0) {
    RETURN_IF_ERROR(conn.Exec("CREATE TABLE timer_schema (version integer NOT NULL)"));
  }
  ASSIGN_OR_RETURN(PgResult row, conn.Run(kVersion, {}));
  const int64_t version = row.rows() == 1 ? row.Int(0, 0) : 0;
  const int64_t latest = LatestVersion();
  if (version > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store: the PostgreSQL database has schema version ", version,
        ", newer than this timerd understands (", latest, "); run a newer timerd"));
  }
  for (int64_t v = version; v < latest; ++v) {
    RETURN_IF_ERROR(conn.Exec("BEGIN"));
    absl::Status s = conn.Exec(kMigrations[v]);
    if (s.ok()) {
      s = conn.Exec(absl::StrCat("DELETE FROM timer_schema; INSERT INTO timer_schema "
                                 "VALUES (",
                                 v + 1, ")")
                        .c_str());
    }
    if (s.ok()) s = conn.Commit();
    if (!s.ok()) {
      conn.Exec("ROLLBACK").IgnoreError();
      return absl::Status(s.code(), absl::StrCat("store: migration to schema ", v + 1,
                                                 " failed: ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int LatestVersion() { return static_cast<int>(std::size(kMigrations)); }

absl::Status Migrate(PgConn& conn) {
  // Session-level: held across the migrations' own transactions, released
  // below (or with the connection, if that breaks).
  RETURN_IF_ERROR(
      conn.Exec(absl::StrCat("SELECT pg_advisory_lock(", kMigrationLock, ")").c_str()));
  absl::Status s = MigrateLocked(conn);
  conn.Exec(absl::StrCat("SELECT pg_advisory_unlock(", kMigrationLock, ")").c_str())
      .IgnoreError();
  if (absl::IsPermissionDenied(s)) {
    // A role with data grants only (least privilege) on a database that is
    // new or older than this timerd: say who may migrate it.
    return absl::PermissionDeniedError(absl::StrCat(
        s.message(),
        "; creating or upgrading the tables needs a role allowed to (their owner): "
        "run this timerd once as that role, e.g. `timerd token list --store "
        "postgres://OWNER@...`, then start it as this one (docs/DEPLOYMENT.md, "
        "\"Roles and grants\")"));
  }
  return s;
}

}  // namespace timer::store::pg_schema
