#include "store/postgres_store.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "store/pg_schema.h"
#include "util/status_macros.h"

namespace timer::store {
namespace {

static_assert(kJobResults == 10, "the statements below read 10 results per job");

// A job row with its newest results, one row per result (NULL: none),
// newest first: one statement, so one snapshot.
// Shard leases (LeaseStore) and fences. Expiry is judged on PostgreSQL's
// clock, clock_timestamp() (not the transaction's start: a renewal's
// statements see time pass).
constexpr PgStatement kCheckFence = {
    "check_fence",
    "SELECT 1 FROM shard_leases WHERE shard = $1::integer AND holder = $2::text "
    "AND epoch = $3::bigint AND expires_at > clock_timestamp() FOR KEY SHARE"};
constexpr PgStatement kHeartbeat = {
    "heartbeat",
    "INSERT INTO replicas (replica_id, host, heartbeat_at) "
    "VALUES ($1::text, $2::text, clock_timestamp()) ON CONFLICT (replica_id) DO UPDATE "
    "SET host = EXCLUDED.host, heartbeat_at = EXCLUDED.heartbeat_at"};
constexpr PgStatement kReleaseSome = {
    "release_some",
    "UPDATE shard_leases SET holder = NULL, expires_at = NULL "
    "WHERE holder = $1::text AND shard = ANY($2::integer[])"};
constexpr PgStatement kRenewHeld = {
    "renew_held",
    "UPDATE shard_leases SET expires_at = clock_timestamp() + $2::bigint * "
    "interval '1 microsecond' WHERE holder = $1::text AND expires_at > "
    "clock_timestamp()"};
constexpr PgStatement kLiveReplicas = {
    "live_replicas",
    "SELECT count(*) FROM replicas WHERE heartbeat_at > clock_timestamp() - "
    "$1::bigint * interval '1 microsecond'"};
constexpr PgStatement kHeldCount = {
    "held_count",
    "SELECT count(*) FROM shard_leases WHERE holder = $1::text "
    "AND expires_at > clock_timestamp()"};
// Free or expired shards, lowest first; rows another transaction holds
// locked (a fire's FOR KEY SHARE, another replica's renewal) are skipped, never
// waited for. A lease that expired gets a new epoch even if its last holder
// takes it again.
constexpr PgStatement kTakeShards = {
    "take_shards",
    "WITH free AS (SELECT shard FROM shard_leases WHERE holder IS NULL "
    "OR expires_at IS NULL OR expires_at <= clock_timestamp() ORDER BY shard "
    "LIMIT $3::bigint FOR UPDATE SKIP LOCKED) "
    "UPDATE shard_leases l SET holder = $1::text, epoch = l.epoch + 1, "
    "expires_at = clock_timestamp() + $2::bigint * interval '1 microsecond' "
    "FROM free WHERE l.shard = free.shard"};
constexpr PgStatement kHeldShards = {
    "held_shards",
    "SELECT shard::bigint, epoch FROM shard_leases WHERE holder = $1::text "
    "AND expires_at > clock_timestamp() ORDER BY shard"};
constexpr PgStatement kReleaseAll = {
    "release_all",
    "UPDATE shard_leases SET holder = NULL, expires_at = NULL WHERE holder = $1::text"};
constexpr PgStatement kForgetReplica = {
    "forget_replica", "DELETE FROM replicas WHERE replica_id = $1::text"};
// Replicas gone for a day are forgotten (bounded table).
constexpr PgStatement kForgetGone = {
    "forget_gone",
    "DELETE FROM replicas WHERE heartbeat_at < clock_timestamp() - interval '1 day'"};

constexpr PgStatement kGetJob = {
    "get_job",
    "SELECT j.version, j.job, r.result FROM jobs j LEFT JOIN LATERAL ("
    "SELECT run_number, result FROM results WHERE job_id = j.job_id "
    "ORDER BY run_number DESC LIMIT 10) r ON true "
    "WHERE j.job_id = $1::text AND j.owner = $2::text ORDER BY r.run_number DESC"};
constexpr PgStatement kLoadJob = {
    "load_job",
    "SELECT j.version, j.job, r.result FROM jobs j LEFT JOIN LATERAL ("
    "SELECT run_number, result FROM results WHERE job_id = j.job_id "
    "ORDER BY run_number DESC LIMIT 10) r ON true "
    "WHERE j.job_id = $1::text ORDER BY r.run_number DESC"};
// Owner $1's jobs after (create_us $2, job_id $3), at most $4, each with its
// newest results: job_id, version, job, result.
constexpr PgStatement kListLive = {
    "list_live",
    "WITH page AS (SELECT job_id, create_us, version, job FROM jobs "
    "WHERE owner = $1::text AND NOT deleted AND (create_us, job_id) > ($2::bigint, "
    "$3::text) ORDER BY create_us, job_id LIMIT $4::bigint) "
    "SELECT p.job_id, p.version, p.job, r.result FROM page p LEFT JOIN LATERAL ("
    "SELECT run_number, result FROM results WHERE job_id = p.job_id "
    "ORDER BY run_number DESC LIMIT 10) r ON true "
    "ORDER BY p.create_us, p.job_id, r.run_number DESC"};
constexpr PgStatement kListAll = {
    "list_all",
    "WITH page AS (SELECT job_id, create_us, version, job FROM jobs "
    "WHERE owner = $1::text AND (create_us, job_id) > ($2::bigint, "
    "$3::text) ORDER BY create_us, job_id LIMIT $4::bigint) "
    "SELECT p.job_id, p.version, p.job, r.result FROM page p LEFT JOIN LATERAL ("
    "SELECT run_number, result FROM results WHERE job_id = p.job_id "
    "ORDER BY run_number DESC LIMIT 10) r ON true "
    "ORDER BY p.create_us, p.job_id, r.run_number DESC"};
// Results of job $1 of owner $2 older than run $3 (<= 0: all), at most $4:
// no row if no such job, one NULL result if it has none.
constexpr PgStatement kListResults = {
    "list_results",
    "SELECT r.result FROM jobs j LEFT JOIN LATERAL ("
    "SELECT run_number, result FROM results WHERE job_id = j.job_id AND "
    "($3::bigint <= 0 OR run_number < $3::bigint) ORDER BY run_number DESC "
    "LIMIT $4::bigint) r ON true WHERE j.job_id = $1::text AND j.owner = $2::text "
    "ORDER BY r.run_number DESC"};
constexpr PgStatement kScanDue = {
    "scan_due",
    "SELECT job_id, next_run_us FROM jobs WHERE next_run_us IS NOT NULL AND "
    "job_id > $1::text ORDER BY job_id LIMIT $2::bigint"};
// One shard's due jobs after job_id $2, at most $3: the rows of
// jobs_by_shard_id, in order.
constexpr PgStatement kScanDueShard = {
    "scan_due_shard",
    "SELECT job_id, next_run_us FROM jobs WHERE shard = $1::integer AND "
    "next_run_us IS NOT NULL AND job_id > $2::text ORDER BY job_id LIMIT $3::bigint"};
constexpr PgStatement kOpenResults = {
    "open_results", "SELECT job_id, result FROM results WHERE status IN (1, 2)"};
// The open results (results_open: few rows) of the jobs in shards $1.
constexpr PgStatement kOpenResultsInShards = {
    "open_results_in_shards",
    "SELECT r.job_id, r.result FROM results r JOIN jobs j ON j.job_id = r.job_id "
    "WHERE r.status IN (1, 2) AND j.shard = ANY($1::integer[])"};
constexpr PgStatement kCount = {
    "count_jobs",
    "SELECT count(*) FILTER (WHERE NOT deleted), count(*), "
    "coalesce(sum(octet_length(job)), 0)::bigint FROM jobs WHERE owner = $1::text"};
constexpr PgStatement kCountByStatus = {
    "count_jobs_by_status", "SELECT status, count(*) FROM jobs GROUP BY status"};
constexpr PgStatement kJobIdsAfter = {
    "job_ids_after",
    "SELECT job_id FROM jobs WHERE job_id > $1::text ORDER BY job_id LIMIT $2::bigint"};

// The writer's multi-row statements, one each per group of deferred fires
// and results (Writer::Flush); arrays in binary (PgArray).
// The lease rows of shards $1 that holder $2 holds now, locked as kCheckFence.
constexpr PgStatement kCheckFences = {
    "check_fences",
    "SELECT shard, epoch FROM shard_leases WHERE shard = ANY($1::integer[]) AND "
    "holder = $2::text AND expires_at > clock_timestamp() ORDER BY shard "
    "FOR KEY SHARE"};
// Read without a lock: kUpdateJobs writes only the rows still at the
// version read (a row lock per job here cost as much as its update).
constexpr PgStatement kReadJobs = {
    "read_jobs", "SELECT job_id, version, job FROM jobs WHERE job_id = ANY($1::text[])"};
constexpr PgStatement kPutResults = {
    "put_results",
    "INSERT INTO results (job_id, run_number, status, end_us, result) SELECT * FROM "
    "unnest($1::text[], $2::bigint[], $3::integer[], $4::bigint[], $5::bytea[]) "
    "ON CONFLICT (job_id, run_number) DO UPDATE SET status = EXCLUDED.status, "
    "end_us = EXCLUDED.end_us, result = EXCLUDED.result"};
// Replaces existing results (distinct job ids); returns the job ids
// written. Most of a run's writes after its first find its row: this needs
// no lock on the job (a result row exists only while its job does).
constexpr PgStatement kUpdateResults = {
    "update_results",
    "UPDATE results r SET status = u.status, end_us = u.end_us, result = u.result "
    "FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::bigint[], $5::bytea[]) "
    "AS u(job_id, run_number, status, end_us, result) WHERE r.job_id = u.job_id AND "
    "r.run_number = u.run_number RETURNING r.job_id"};
// kPutResults of the jobs that exist (distinct job ids); returns the job ids
// written.
constexpr PgStatement kPutResultsChecked = {
    "put_results_checked",
    "INSERT INTO results (job_id, run_number, status, end_us, result) SELECT u.* FROM "
    "unnest($1::text[], $2::bigint[], $3::integer[], $4::bigint[], $5::bytea[]) AS "
    "u(job_id, run_number, status, end_us, result) WHERE EXISTS (SELECT 1 FROM jobs "
    "WHERE jobs.job_id = u.job_id FOR KEY SHARE) ON CONFLICT (job_id, run_number) DO "
    "UPDATE SET status = EXCLUDED.status, end_us = EXCLUDED.end_us, result = "
    "EXCLUDED.result RETURNING job_id"};
constexpr PgStatement kUpdateJobs = {
    "update_jobs",
    "UPDATE jobs j SET deleted = u.deleted, delete_us = u.delete_us, status = "
    "u.status, next_run_us = u.next_run_us, version = u.version, job = u.job FROM "
    "unnest($1::text[], $2::boolean[], $3::bigint[], $4::integer[], $5::bigint[], "
    "$6::bigint[], $7::bytea[]) AS u(job_id, deleted, delete_us, status, next_run_us, "
    "version, job) WHERE j.job_id = u.job_id AND j.version = u.version - 1 "
    "RETURNING j.job_id"};

// Creates: the request ids of ($1 owner, $2 request id) already used, by
// position (1-based) in the arrays; the new request ids (those inserted:
// their job ids); the new jobs (those inserted: their job ids).
constexpr PgStatement kFindRequests = {
    "find_requests",
    "SELECT u.i, r.fingerprint, r.job_id FROM unnest($1::text[], $2::text[]) WITH "
    "ORDINALITY AS u(owner, request_id, i) JOIN request_ids r ON r.owner = u.owner "
    "AND r.request_id = u.request_id"};
constexpr PgStatement kInsertRequests = {
    "insert_requests",
    "INSERT INTO request_ids (owner, request_id, fingerprint, job_id, create_us) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::bigint[]) ON CONFLICT DO NOTHING RETURNING job_id"};
constexpr PgStatement kInsertJobs = {
    "insert_jobs",
    "INSERT INTO jobs (job_id, owner, shard, create_us, deleted, delete_us, status, "
    "next_run_us, version, job) SELECT j, o, s, c, d, du, st, n, 1, b FROM "
    "unnest($1::text[], $2::text[], $3::integer[], $4::bigint[], $5::boolean[], "
    "$6::bigint[], $7::integer[], $8::bigint[], $9::bytea[]) AS u(j, o, s, c, d, du, "
    "st, n, b) ON CONFLICT (job_id) DO NOTHING RETURNING job_id"};

// The writer's.
constexpr PgStatement kLockJob = {
    "lock_job",
    "SELECT version, job FROM jobs WHERE job_id = $1::text AND owner = $2::text "
    "FOR UPDATE"};
constexpr PgStatement kLockAnyJob = {
    "lock_any_job", "SELECT version, job FROM jobs WHERE job_id = $1::text FOR UPDATE"};
constexpr PgStatement kNewestResults = {
    "newest_results",
    "SELECT result FROM results WHERE job_id = $1::text ORDER BY run_number DESC "
    "LIMIT 10"};
constexpr PgStatement kUpdateJob = {
    "update_job",
    "UPDATE jobs SET deleted = $2::boolean, delete_us = $3::bigint, status = "
    "$4::integer, next_run_us = $5::bigint, version = $6::bigint, job = $7::bytea "
    "WHERE job_id = $1::text"};
// The per-owner job limits (Options::max_live_jobs_per_owner): a batch
// with creates takes each creating owner's lock for the rest of its
// transaction, without waiting (another replica's writer holding it fails
// that owner's creates UNAVAILABLE: a wait could deadlock two writers'
// batches), then counts the owner's jobs. Class 0x74696d72 ("timr"), apart
// from the migrations' lock.
constexpr PgStatement kLockOwner = {
    "lock_owner",
    "SELECT pg_try_advisory_xact_lock(1953066354, hashtext($1::text))::integer"};
constexpr PgStatement kOwnerCounts = {
    "owner_counts",
    "SELECT (SELECT count(*) FROM jobs WHERE owner = $1::text AND NOT deleted), "
    "(SELECT count(*) FROM jobs WHERE owner = $1::text)"};
constexpr PgStatement kPutResult = {
    "put_result",
    "INSERT INTO results (job_id, run_number, status, end_us, result) VALUES "
    "($1::text, $2::bigint, $3::integer, $4::bigint, $5::bytea) "
    "ON CONFLICT (job_id, run_number) DO UPDATE SET status = EXCLUDED.status, "
    "end_us = EXCLUDED.end_us, result = EXCLUDED.result"};
constexpr PgStatement kFindRunRequest = {
    "find_run_request",
    "SELECT run_number FROM run_request_ids WHERE job_id = $1::text AND "
    "request_id = $2::text"};
constexpr PgStatement kInsertRunRequest = {
    "insert_run_request",
    "INSERT INTO run_request_ids (job_id, request_id, run_number, create_us) VALUES "
    "($1::text, $2::text, $3::bigint, $4::bigint) ON CONFLICT DO NOTHING"};
// Finished results of the jobs in ($1, $2] beyond the newest $3 of each, or
// ended before $4.
constexpr PgStatement kPruneResults = {
    "prune_results",
    "DELETE FROM results r USING (SELECT job_id, run_number, end_us, row_number() "
    "OVER (PARTITION BY job_id ORDER BY run_number DESC) AS rank FROM results "
    "WHERE job_id > $1::text AND job_id <= $2::text) x WHERE r.job_id = x.job_id "
    "AND r.run_number = x.run_number AND x.end_us IS NOT NULL AND "
    "(x.rank > $3::bigint OR x.end_us < $4::bigint)"};
constexpr PgStatement kPruneRunRequests = {
    "prune_run_requests",
    "DELETE FROM run_request_ids WHERE ctid IN (SELECT ctid FROM run_request_ids "
    "WHERE create_us < $1::bigint LIMIT $2::bigint)"};
// Up to $2 jobs deleted before $1, oldest deletes first, removed with all
// they kept; returns owner, job_id, stored bytes of each.
constexpr PgStatement kPurge = {
    "purge",
    "WITH doomed AS (SELECT job_id, owner, octet_length(job) AS bytes, delete_us "
    "FROM jobs WHERE deleted AND delete_us < $1::bigint ORDER BY delete_us, job_id "
    "LIMIT $2::bigint FOR UPDATE), "
    "r AS (DELETE FROM results WHERE job_id IN (SELECT job_id FROM doomed)), "
    "q AS (DELETE FROM request_ids WHERE job_id IN (SELECT job_id FROM doomed)), "
    "m AS (DELETE FROM run_request_ids WHERE job_id IN (SELECT job_id FROM doomed)), "
    "j AS (DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM doomed)) "
    "SELECT owner, job_id, bytes FROM doomed ORDER BY delete_us, job_id"};

constexpr int kPruneJobsPerWrite = 1000;
constexpr int kPurgeJobsPerWrite = 64;
constexpr int kScanPage = 10000;

absl::StatusOr<v1::Job> DecodeJob(absl::string_view bytes, int64_t version) {
  v1::Job job;
  if (!job.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("store: a stored job could not be decoded");
  }
  job.clear_results();
  job.set_etag(absl::StrCat(version));
  return job;
}

absl::StatusOr<v1::JobResult> DecodeResult(absl::string_view bytes) {
  v1::JobResult r;
  if (!r.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("store: a stored result could not be decoded");
  }
  return r;
}

// Sets `job`'s results view from `newest_first`.
void SetView(v1::Job& job, const std::vector<v1::JobResult>& newest_first) {
  FillResultsView(job, [&](absl::FunctionRef<bool(const v1::JobResult&)> fn) {
    for (const v1::JobResult& r : newest_first) {
      if (!fn(r)) break;
    }
    return absl::OkStatus();
  }).IgnoreError();  // Cannot fail.
}

// Rows [begin, end) of `res` whose column `col` holds a result (or NULL).
absl::Status DecodeResults(const PgResult& res, int begin, int end, int col,
                           std::vector<v1::JobResult>& out) {
  for (int i = begin; i < end; ++i) {
    if (res.IsNull(i, col)) continue;
    ASSIGN_OR_RETURN(v1::JobResult r, DecodeResult(res.Bytes(i, col)));
    out.push_back(std::move(r));
  }
  return absl::OkStatus();
}

// The job of a kGetJob/kLoadJob answer with its results view.
absl::StatusOr<v1::Job> JobFromRows(const PgResult& res, const std::string& job_id) {
  if (res.rows() == 0)
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  ASSIGN_OR_RETURN(v1::Job job, DecodeJob(res.Bytes(0, 1), res.Int(0, 0)));
  std::vector<v1::JobResult> results;
  RETURN_IF_ERROR(DecodeResults(res, 0, res.rows(), 2, results));
  SetView(job, results);
  return job;
}

std::optional<int64_t> NextRunMicros(const v1::Job& job) {
  if (!job.has_next_run()) return std::nullopt;
  return ToMicros(job.next_run());
}

PgParam OptionalMicros(std::optional<int64_t> us) {
  return us ? PgParam(*us) : PgParam::Null();
}

}  // namespace

// The writer connection and the transaction the group-commit writer drives
// through it (see the header on failed writes). Writer thread only.
// Results as the columns of one multi-row statement (kPutResults and the
// like: job ids, run numbers, statuses, end times, encoded results).
struct ResultColumns {
  PgArray job{PgArray::kText}, run{PgArray::kInt8}, status{PgArray::kInt4},
      end{PgArray::kInt8}, bytes{PgArray::kBytea};
  std::string blob;

  void Add(const std::string& job_id, const v1::JobResult& r) {
    job.Add(job_id);
    run.AddInt64(r.run_number());
    status.AddInt32(static_cast<int32_t>(r.status()));
    if (r.has_end_time()) {
      end.AddInt64(ToMicros(r.end_time()));
    } else {
      end.AddNull();
    }
    blob.clear();
    r.SerializeToString(&blob);
    bytes.Add(blob);
  }
  int size() const { return job.size(); }
  // Valid until the next Add.
  std::vector<PgParam> Params() {
    return {PgParam::Bytes(job.bytes()), PgParam::Bytes(run.bytes()),
            PgParam::Bytes(status.bytes()), PgParam::Bytes(end.bytes()),
            PgParam::Bytes(bytes.bytes())};
  }
};

struct PostgresStore::Writer final : GroupCommitWriter::Transaction {
  // Creates and the run engine's writes (a fire's WriteJobState, a run's
  // WriteResult) are deferred: queued here by their operation, which
  // returns at once, and applied together by Flush in a few multi-row
  // statements (a round trip and a statement per group instead of up to
  // four per write). Their callbacks take the outcome from here. A group
  // holds at most one write per job (and per create request id), and any
  // other write flushes the group first, so writes take effect in the
  // order they were submitted.
  struct DeferredCreate {
    v1::Job job;
    std::string request_id;
    std::string fingerprint;
    absl::StatusOr<v1::Job> outcome = absl::UnknownError("store: write not applied");
  };
  struct DeferredFire {
    std::string job_id;
    std::optional<Fence> fence;
    JobRunMutation mutate;
    absl::StatusOr<v1::Job> outcome = absl::UnknownError("store: write not applied");
  };
  struct DeferredResult {
    std::string job_id;
    v1::JobResult result;
    absl::Status outcome = absl::UnknownError("store: write not applied");
  };

  PgConnector* connector = nullptr;
  std::unique_ptr<PgConn> conn;
  int64_t max_live_jobs = 0;    // Options::max_live_jobs_per_owner
  int64_t max_stored_jobs = 0;  // Options::max_stored_jobs_per_owner
  bool dirty = false;           // The current write changed something.
  bool poisoned = false;        // A failed write changed something: no commit.
  std::vector<std::shared_ptr<DeferredCreate>> creates;
  std::vector<std::shared_ptr<DeferredFire>> fires;
  std::vector<std::shared_ptr<DeferredResult>> results;
  absl::flat_hash_set<std::string> deferred_jobs;  // Of fires and results.

  absl::Status Begin() override {
    poisoned = false;
    DropDeferred();
    for (int attempt = 0;; ++attempt) {
      if (conn == nullptr || conn->broken()) {
        conn.reset();
        ASSIGN_OR_RETURN(conn, connector->Connect());
      }
      absl::Status s = conn->Exec("BEGIN");
      // A connection that died while idle (a PostgreSQL restart) is only
      // found out now: nothing was sent that counts, so once more anew.
      if (s.ok() || !conn->broken() || attempt > 0) return s;
    }
  }
  absl::Status Savepoint() override {
    dirty = false;
    return absl::OkStatus();
  }
  void RollbackToSavepoint() override {
    if (dirty) poisoned = true;
  }
  void ReleaseSavepoint() override {}
  absl::Status Commit() override {
    Flush().IgnoreError();  // A failure poisons the batch.
    if (poisoned) {
      return absl::UnavailableError(
          "store: a write failed after changing rows; its batch was rolled back");
    }
    return conn->Commit();
  }
  void Rollback() override {
    DropDeferred();
    if (conn != nullptr && !conn->broken()) {
      if (!conn->Exec("ROLLBACK").ok()) conn.reset();
    }
  }

  // A statement that changes rows.
  absl::StatusOr<PgResult> Write(const PgStatement& stmt,
                                 const std::vector<PgParam>& params) {
    dirty = true;
    return conn->Run(stmt, params);
  }

  void Defer(std::shared_ptr<DeferredCreate> create) {
    // Keys of request ids start with \x01, which no job id holds.
    std::string request_key;
    if (!create->request_id.empty()) {
      request_key = absl::StrCat("\x01", create->job.owner(), std::string(1, '\0'),
                                 create->request_id);
    }
    if (deferred_jobs.contains(create->job.job_id()) ||
        (!request_key.empty() && deferred_jobs.contains(request_key))) {
      Flush().IgnoreError();
    }
    deferred_jobs.insert(create->job.job_id());
    if (!request_key.empty()) deferred_jobs.insert(std::move(request_key));
    creates.push_back(std::move(create));
  }
  void Defer(std::shared_ptr<DeferredFire> fire) {
    if (!deferred_jobs.insert(fire->job_id).second) {
      Flush().IgnoreError();
      deferred_jobs.insert(fire->job_id);
    }
    fires.push_back(std::move(fire));
  }
  void Defer(std::shared_ptr<DeferredResult> result) {
    if (!deferred_jobs.insert(result->job_id).second) {
      Flush().IgnoreError();
      deferred_jobs.insert(result->job_id);
    }
    results.push_back(std::move(result));
  }
  void DropDeferred() {
    creates.clear();
    fires.clear();
    results.clear();
    deferred_jobs.clear();
  }

  // Applies the deferred writes: every check (fences, jobs found,
  // mutations) before any change, then one statement per kind of change.
  // An SQL error fails the whole batch (poisoned); a write refused by its
  // checks gets its error and changes nothing. UNAVAILABLE once the batch
  // is poisoned (the caller's own write cannot commit either).
  absl::Status Flush() {
    if (!creates.empty() || !fires.empty() || !results.empty()) {
      absl::Status s = FlushCreates();
      if (s.ok()) s = FlushFires();
      if (s.ok()) s = FlushResults();
      if (!s.ok()) {
        poisoned = true;
        for (auto& c : creates) c->outcome = s;
        for (auto& f : fires) f->outcome = s;
        for (auto& r : results) r->outcome = s;
      }
      DropDeferred();
    }
    if (poisoned) {
      return absl::UnavailableError(
          "store: a write failed after changing rows; its batch was rolled back");
    }
    return absl::OkStatus();
  }

  // Those of `creates` their owners' job limits let in, in order, counted
  // in this transaction under each owner's lock, so creates through every
  // replica add up to at most the limits; the others get their error
  // (RESOURCE_EXHAUSTED naming the limit, or UNAVAILABLE while another
  // replica's batch holds the owner's lock). Changes nothing.
  absl::StatusOr<std::vector<DeferredCreate*>> WithinOwnerLimits(
      std::vector<DeferredCreate*> creates) {
    if (max_live_jobs <= 0 && max_stored_jobs <= 0) return creates;
    struct Count {
      absl::Status refused;  // Lock not taken.
      int64_t live = 0;
      int64_t stored = 0;
    };
    absl::flat_hash_map<std::string, Count> counts;
    std::vector<DeferredCreate*> admitted;
    for (DeferredCreate* c : creates) {
      const std::string& owner = c->job.owner();
      auto it = counts.find(owner);
      if (it == counts.end()) {
        Count n;
        ASSIGN_OR_RETURN(PgResult locked, conn->Run(kLockOwner, {owner}));
        if (locked.Int(0, 0) != 1) {
          n.refused = absl::UnavailableError(
              "store: another replica is creating a job of this owner right now; retry");
        } else {
          ASSIGN_OR_RETURN(PgResult rows, conn->Run(kOwnerCounts, {owner}));
          n.live = rows.Int(0, 0);
          n.stored = rows.Int(0, 1);
        }
        it = counts.emplace(owner, std::move(n)).first;
      }
      Count& n = it->second;
      if (!n.refused.ok()) {
        c->outcome = n.refused;
        continue;
      }
      if (max_live_jobs > 0 && n.live >= max_live_jobs) {
        c->outcome = absl::ResourceExhaustedError(absl::StrCat(
            "max_jobs_per_identity: ", owner, " already has ", n.live,
            " jobs, the most allowed is ", max_live_jobs, "; delete some first"));
        continue;
      }
      if (max_stored_jobs > 0 && n.stored >= max_stored_jobs) {
        c->outcome = absl::ResourceExhaustedError(absl::StrCat(
            "max_stored_jobs_per_identity: ", owner, " keeps ", n.stored,
            " jobs, deleted ones included until they are purged; the most allowed is ",
            max_stored_jobs));
        continue;
      }
      ++n.live;
      ++n.stored;
      admitted.push_back(c);
    }
    return admitted;
  }

  // The deferred creates. With a request id: one used before returns the
  // first request's job (the same fingerprint) or ALREADY_EXISTS; a new one
  // is written with the job, in the same transaction; one another replica
  // wrote meanwhile fails UNAVAILABLE (retry), nothing of it written.
  absl::Status FlushCreates() {
    if (creates.empty()) return absl::OkStatus();
    std::vector<DeferredCreate*> pending;
    // Request ids used before: the first request's job, or ALREADY_EXISTS.
    {
      PgArray owners(PgArray::kText), ids(PgArray::kText);
      std::vector<DeferredCreate*> asked;
      for (auto& c : creates) {
        if (c->request_id.empty()) continue;
        owners.Add(c->job.owner());
        ids.Add(c->request_id);
        asked.push_back(c.get());
      }
      absl::flat_hash_set<DeferredCreate*> answered;
      if (!asked.empty()) {
        ASSIGN_OR_RETURN(PgResult found,
                         conn->Run(kFindRequests, {PgParam::Bytes(owners.bytes()),
                                                   PgParam::Bytes(ids.bytes())}));
        for (int i = 0; i < found.rows(); ++i) {
          const int64_t at = found.Int(i, 0) - 1;
          if (at < 0 || at >= static_cast<int64_t>(asked.size())) continue;
          DeferredCreate* c = asked[static_cast<size_t>(at)];
          answered.insert(c);
          if (found.Bytes(i, 1) != c->fingerprint) {
            c->outcome = absl::AlreadyExistsError(
                "request_id: already used for a different request");
            continue;
          }
          const std::string existing(found.Bytes(i, 2));
          ASSIGN_OR_RETURN(PgResult rows, conn->Run(kGetJob, {existing, c->job.owner()}));
          c->outcome = rows.rows() == 0 ? absl::StatusOr<v1::Job>(absl::InternalError(
                                              "store: request_id names a missing job"))
                                        : JobFromRows(rows, existing);
        }
      }
      for (auto& c : creates) {
        if (!answered.contains(c.get())) pending.push_back(c.get());
      }
    }
    ASSIGN_OR_RETURN(pending, WithinOwnerLimits(std::move(pending)));
    // New request ids: one another replica took meanwhile fails its create
    // (nothing of it written).
    absl::flat_hash_set<std::string> requested;  // Job ids of those inserted.
    {
      PgArray owners(PgArray::kText), ids(PgArray::kText), prints(PgArray::kText),
          jobs(PgArray::kText), at(PgArray::kInt8);
      for (DeferredCreate* c : pending) {
        if (c->request_id.empty()) continue;
        owners.Add(c->job.owner());
        ids.Add(c->request_id);
        prints.Add(c->fingerprint);
        jobs.Add(c->job.job_id());
        at.AddInt64(ToMicros(c->job.create_time()));
      }
      if (owners.size() > 0) {
        ASSIGN_OR_RETURN(
            PgResult added,
            conn->Run(kInsertRequests,
                      {PgParam::Bytes(owners.bytes()), PgParam::Bytes(ids.bytes()),
                       PgParam::Bytes(prints.bytes()), PgParam::Bytes(jobs.bytes()),
                       PgParam::Bytes(at.bytes())}));
        for (int i = 0; i < added.rows(); ++i)
          requested.insert(std::string(added.Bytes(i, 0)));
      }
    }
    PgArray j_id(PgArray::kText), j_owner(PgArray::kText), j_shard(PgArray::kInt4),
        j_create(PgArray::kInt8), j_deleted(PgArray::kBool), j_delete_us(PgArray::kInt8),
        j_status(PgArray::kInt4), j_next(PgArray::kInt8), j_bytes(PgArray::kBytea);
    std::vector<DeferredCreate*> inserting;
    for (DeferredCreate* c : pending) {
      if (!c->request_id.empty() && !requested.contains(c->job.job_id())) {
        c->outcome =
            absl::UnavailableError("store: request_id being used concurrently; retry");
        continue;
      }
      v1::Job& job = c->job;
      const bool deleted = job.status() == v1::Job::DELETED;
      j_id.Add(job.job_id());
      j_owner.Add(job.owner());
      j_shard.AddInt32(ShardOf(job.job_id()));
      j_create.AddInt64(ToMicros(job.create_time()));
      j_deleted.AddBool(deleted);
      if (deleted) {
        j_delete_us.AddInt64(DeleteMicros(job));
      } else {
        j_delete_us.AddNull();
      }
      j_status.AddInt32(static_cast<int32_t>(job.status()));
      if (job.has_next_run()) {
        j_next.AddInt64(ToMicros(job.next_run()));
      } else {
        j_next.AddNull();
      }
      j_bytes.Add(EncodeJob(job));
      inserting.push_back(c);
    }
    if (inserting.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(
        PgResult inserted,
        conn->Run(kInsertJobs,
                  {PgParam::Bytes(j_id.bytes()), PgParam::Bytes(j_owner.bytes()),
                   PgParam::Bytes(j_shard.bytes()), PgParam::Bytes(j_create.bytes()),
                   PgParam::Bytes(j_deleted.bytes()), PgParam::Bytes(j_delete_us.bytes()),
                   PgParam::Bytes(j_status.bytes()), PgParam::Bytes(j_next.bytes()),
                   PgParam::Bytes(j_bytes.bytes())}));
    absl::flat_hash_set<std::string> created;
    for (int i = 0; i < inserted.rows(); ++i)
      created.insert(std::string(inserted.Bytes(i, 0)));
    for (DeferredCreate* c : inserting) {
      if (!created.contains(c->job.job_id())) {
        // Its request id is written already: the batch cannot commit.
        if (!c->request_id.empty()) {
          return absl::UnavailableError(
              "store: a create failed after its request id was written; retry");
        }
        c->outcome =
            absl::AlreadyExistsError(absl::StrCat("job ", c->job.job_id(), " exists"));
        continue;
      }
      c->job.set_etag("1");
      c->job.clear_results();
      c->outcome = std::move(c->job);
    }
    return absl::OkStatus();
  }

  absl::Status FlushFires() {
    if (fires.empty()) return absl::OkStatus();
    // Fences, by holder (one, normally: this replica).
    absl::flat_hash_map<std::string, std::vector<int>> shards_of;
    for (auto& f : fires) {
      if (!f->fence) continue;
      if (f->fence->shard < 0 || f->fence->shard >= kShards) {
        f->outcome =
            absl::InvalidArgumentError(absl::StrCat("fence: no shard ", f->fence->shard));
        continue;
      }
      shards_of[f->fence->holder].push_back(f->fence->shard);
    }
    // holder -> shard -> epoch, for the leases held now.
    absl::flat_hash_map<std::string, absl::flat_hash_map<int, int64_t>> held;
    for (auto& [holder, shards] : shards_of) {
      std::sort(shards.begin(), shards.end());
      shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
      PgArray array(PgArray::kInt4);
      for (int shard : shards) array.AddInt32(shard);
      ASSIGN_OR_RETURN(PgResult rows,
                       conn->Run(kCheckFences, {PgParam::Bytes(array.bytes()), holder}));
      auto& epochs = held[holder];
      for (int i = 0; i < rows.rows(); ++i) {
        epochs[static_cast<int>(rows.Int(i, 0))] = rows.Int(i, 1);
      }
    }
    std::vector<DeferredFire*> live;
    PgArray ids(PgArray::kText);
    for (auto& f : fires) {
      if (f->fence) {
        if (f->fence->shard < 0 || f->fence->shard >= kShards) continue;  // Refused.
        bool holds = false;
        if (auto h = held.find(f->fence->holder); h != held.end()) {
          auto e = h->second.find(f->fence->shard);
          holds = e != h->second.end() && e->second == f->fence->epoch;
        }
        if (!holds) {
          f->outcome = absl::FailedPreconditionError(
              absl::StrCat("fence: this replica no longer holds shard ", f->fence->shard,
                           " at epoch ", f->fence->epoch));
          continue;
        }
      }
      live.push_back(f.get());
      ids.Add(f->job_id);
    }
    if (live.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(PgResult rows, conn->Run(kReadJobs, {PgParam::Bytes(ids.bytes())}));
    absl::flat_hash_map<absl::string_view, int> row_of;
    for (int i = 0; i < rows.rows(); ++i) row_of[rows.Bytes(i, 0)] = i;
    // Checked and mutated, in memory: nothing is written before all are.
    std::vector<std::pair<DeferredFire*, std::vector<v1::JobResult>>> mutated;
    PgArray j_id(PgArray::kText), j_deleted(PgArray::kBool), j_delete_us(PgArray::kInt8),
        j_status(PgArray::kInt4), j_next(PgArray::kInt8), j_version(PgArray::kInt8),
        j_bytes(PgArray::kBytea);
    for (DeferredFire* f : live) {
      auto row = row_of.find(f->job_id);
      if (row == row_of.end()) {
        f->outcome = absl::NotFoundError(absl::StrCat("job ", f->job_id, " not found"));
        continue;
      }
      const int64_t version = rows.Int(row->second, 1);
      absl::StatusOr<v1::Job> job = DecodeJob(rows.Bytes(row->second, 2), version);
      if (!job.ok()) {
        f->outcome = job.status();
        continue;
      }
      std::vector<v1::JobResult> table;
      if (absl::Status m = f->mutate(*job, table); !m.ok()) {
        f->outcome = m;
        continue;
      }
      const bool deleted = job->status() == v1::Job::DELETED;
      j_id.Add(f->job_id);
      j_deleted.AddBool(deleted);
      if (deleted) {
        j_delete_us.AddInt64(DeleteMicros(*job));
      } else {
        j_delete_us.AddNull();
      }
      j_status.AddInt32(static_cast<int32_t>(job->status()));
      if (job->has_next_run()) {
        j_next.AddInt64(ToMicros(job->next_run()));
      } else {
        j_next.AddNull();
      }
      j_version.AddInt64(version + 1);
      j_bytes.Add(EncodeJob(*job));
      job->set_etag(absl::StrCat(version + 1));
      job->clear_results();
      f->outcome = *std::move(job);
      mutated.emplace_back(f, std::move(table));
    }
    if (mutated.empty()) return absl::OkStatus();
    // The jobs first: one changed since it was read (through another
    // replica) is not written, nor are its results.
    ASSIGN_OR_RETURN(
        PgResult updated,
        conn->Run(kUpdateJobs,
                  {PgParam::Bytes(j_id.bytes()), PgParam::Bytes(j_deleted.bytes()),
                   PgParam::Bytes(j_delete_us.bytes()), PgParam::Bytes(j_status.bytes()),
                   PgParam::Bytes(j_next.bytes()), PgParam::Bytes(j_version.bytes()),
                   PgParam::Bytes(j_bytes.bytes())}));
    absl::flat_hash_set<absl::string_view> written;
    for (int i = 0; i < updated.rows(); ++i) written.insert(updated.Bytes(i, 0));
    ResultColumns columns;
    for (auto& [f, table] : mutated) {
      if (!written.contains(f->job_id)) {
        f->outcome = absl::AbortedError(
            absl::StrCat("job ", f->job_id, " changed meanwhile; not written"));
        continue;
      }
      // One row per run number (the last written wins, as one upsert each
      // would): a statement may not change a row twice.
      for (size_t i = 0; i < table.size(); ++i) {
        const v1::JobResult& r = table[i];
        bool later = false;
        for (size_t k = i + 1; k < table.size(); ++k) {
          later = later || table[k].run_number() == r.run_number();
        }
        if (!later) columns.Add(f->job_id, r);
      }
    }
    if (columns.size() > 0) {
      RETURN_IF_ERROR(conn->Run(kPutResults, columns.Params()).status());
    }
    return absl::OkStatus();
  }

  absl::Status FlushResults() {
    if (results.empty()) return absl::OkStatus();
    // Existing rows replaced first; the others inserted if their job exists.
    absl::flat_hash_set<std::string> written;
    for (const PgStatement* stmt : {&kUpdateResults, &kPutResultsChecked}) {
      ResultColumns columns;
      for (auto& d : results) {
        if (!written.contains(d->job_id)) columns.Add(d->job_id, d->result);
      }
      if (columns.size() == 0) break;
      ASSIGN_OR_RETURN(PgResult rows, conn->Run(*stmt, columns.Params()));
      for (int i = 0; i < rows.rows(); ++i) written.insert(std::string(rows.Bytes(i, 0)));
    }
    for (auto& d : results) {
      d->outcome =
          written.contains(d->job_id)
              ? absl::OkStatus()
              : absl::NotFoundError(absl::StrCat("job ", d->job_id, " not found"));
    }
    return absl::OkStatus();
  }

  // FAILED_PRECONDITION unless `fence` holds now; the lease row stays
  // locked until this batch commits. FOR KEY SHARE: it blocks a takeover
  // (which locks FOR UPDATE, SKIP LOCKED) but not this replica's own
  // renewal, whose plain UPDATEs lock FOR NO KEY UPDATE; a FOR SHARE lock
  // made the two deadlock (the writer's batch and the renewal each waiting
  // for a lease row the other had locked). Changes nothing.
  absl::Status CheckFence(const std::optional<Fence>& fence) {
    if (!fence) return absl::OkStatus();
    if (fence->shard < 0 || fence->shard >= kShards) {
      return absl::InvalidArgumentError(absl::StrCat("fence: no shard ", fence->shard));
    }
    ASSIGN_OR_RETURN(PgResult res,
                     conn->Run(kCheckFence, {fence->shard, fence->holder, fence->epoch}));
    if (res.rows() == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("fence: this replica no longer holds shard ", fence->shard,
                       " at epoch ", fence->epoch));
    }
    return absl::OkStatus();
  }

  absl::Status NewestResults(const std::string& job_id, std::vector<v1::JobResult>& out) {
    ASSIGN_OR_RETURN(PgResult res, conn->Run(kNewestResults, {job_id}));
    return DecodeResults(res, 0, res.rows(), 0, out);
  }

  absl::Status PutResult(const std::string& job_id, const v1::JobResult& r,
                         const PgStatement& stmt, int64_t* changed) {
    const std::string bytes = r.SerializeAsString();
    ASSIGN_OR_RETURN(
        PgResult res,
        Write(stmt, {job_id, r.run_number(), static_cast<int64_t>(r.status()),
                     OptionalMicros(r.has_end_time()
                                        ? std::optional<int64_t>(ToMicros(r.end_time()))
                                        : std::nullopt),
                     PgParam::Bytes(bytes)}));
    if (changed != nullptr) *changed = res.affected();
    return absl::OkStatus();
  }

  absl::StatusOr<v1::Job> Update(const std::optional<std::string>& owner,
                                 const std::string& job_id, JobRunMutation& mutate,
                                 bool with_results) {
    ASSIGN_OR_RETURN(PgResult row, owner ? conn->Run(kLockJob, {job_id, *owner})
                                         : conn->Run(kLockAnyJob, {job_id}));
    if (row.rows() == 0)
      return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    const int64_t version = row.Int(0, 0);
    ASSIGN_OR_RETURN(v1::Job job, DecodeJob(row.Bytes(0, 1), version));
    std::vector<v1::JobResult> newest;
    if (with_results) {
      RETURN_IF_ERROR(NewestResults(job_id, newest));
      SetView(job, newest);
    }
    std::vector<v1::JobResult> results;
    RETURN_IF_ERROR(mutate(job, results));
    // Checked and mutated: from here on rows change.
    for (const v1::JobResult& r : results) {
      RETURN_IF_ERROR(PutResult(job_id, r, kPutResult, nullptr));
    }
    const std::string blob = EncodeJob(job);
    const bool deleted = job.status() == v1::Job::DELETED;
    RETURN_IF_ERROR(
        Write(kUpdateJob,
              {job_id, deleted ? "true" : "false",
               deleted ? PgParam(DeleteMicros(job)) : PgParam::Null(),
               static_cast<int64_t>(job.status()), OptionalMicros(NextRunMicros(job)),
               version + 1, PgParam::Bytes(blob)})
            .status());
    job.set_etag(absl::StrCat(version + 1));
    if (!with_results) {
      job.clear_results();
      return job;
    }
    // The view as stored now: the newest read before, with the ones
    // written added or replaced.
    for (const v1::JobResult& r : results) {
      auto same = std::find_if(newest.begin(), newest.end(), [&](const v1::JobResult& n) {
        return n.run_number() == r.run_number();
      });
      if (same != newest.end()) {
        *same = r;
      } else {
        newest.push_back(r);
      }
    }
    std::sort(newest.begin(), newest.end(),
              [](const v1::JobResult& a, const v1::JobResult& b) {
                return a.run_number() > b.run_number();
              });
    SetView(job, newest);
    return job;
  }

  absl::StatusOr<v1::Job> UpdateManualRun(const std::string& owner,
                                          const std::string& job_id,
                                          const std::string& request_id,
                                          ManualRunMutation& mutate) {
    int64_t existing = 0;
    if (!request_id.empty()) {
      ASSIGN_OR_RETURN(PgResult found, conn->Run(kFindRunRequest, {job_id, request_id}));
      if (found.rows() > 0) existing = found.Int(0, 0);
    }
    int64_t added = 0;
    JobRunMutation wrapped = ManualRunWrapper(mutate, request_id, existing, &added);
    ASSIGN_OR_RETURN(v1::Job job, Update(owner, job_id, wrapped, /*with_results=*/true));
    if (existing == 0 && added != 0) {
      RETURN_IF_ERROR(Write(kInsertRunRequest,
                            {job_id, request_id, added, ToMicros(job.update_time())})
                          .status());
    }
    return job;
  }
};

struct PostgresStore::Lane {
  std::unique_ptr<Writer> writer;  // Used on its group's thread only.
  std::unique_ptr<GroupCommitWriter> group;
};

int PostgresStore::LatestSchemaVersion() { return pg_schema::LatestVersion(); }

PostgresStore::PostgresStore(Options options)
    : options_(std::move(options)),
      connector_({.uri = options_.uri,
                  .timeout = options_.timeout,
                  .retry_after = options_.retry_after}),
      readers_(&connector_, options_.readers) {}

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(Options options) {
  std::unique_ptr<PostgresStore> store(new PostgresStore(std::move(options)));
  RETURN_IF_ERROR(store->Init());
  return store;
}

absl::Status PostgresStore::Init() {
  {
    // Migrations may take long (and wait for another replica's): no
    // statement timeout on their connection.
    PgConnector migrator(
        {.uri = options_.uri, .timeout = options_.timeout, .statement_timeout = false});
    ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, migrator.Connect());
    RETURN_IF_ERROR(pg_schema::Migrate(*conn));
  }
  const int writers = std::max(1, options_.writers);
  lanes_.resize(static_cast<size_t>(writers));
  for (int i = 0; i < writers; ++i) {
    Lane& lane = lanes_[static_cast<size_t>(i)];
    lane.writer = std::make_unique<Writer>();
    lane.writer->connector = &connector_;
    lane.writer->max_live_jobs = options_.max_live_jobs_per_owner;
    lane.writer->max_stored_jobs = options_.max_stored_jobs_per_owner;
    lane.group = std::make_unique<GroupCommitWriter>(
        lane.writer.get(), GroupCommitWriter::Options{
                               .max_batch = options_.max_batch,
                               .max_gather = options_.max_gather,
                               .gather_gap = options_.gather_gap,
                               .name = absl::StrCat("pgstore", i),
                           });
  }
  return absl::OkStatus();
}

PostgresStore::~PostgresStore() {
  Close();
  lanes_.clear();
}

void PostgresStore::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (closing_) {
      mu_.Await(absl::Condition(&closed_));
      return;
    }
    closing_ = true;
  }
  for (Lane& lane : lanes_) lane.group->Close();
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

int64_t PostgresStore::commits() const {
  int64_t n = 0;
  for (const Lane& lane : lanes_) n += lane.group->commits();
  return n;
}

PostgresStore::Lane& PostgresStore::LaneOf(std::string_view key) {
  if (lanes_.size() == 1) return lanes_[0];
  return lanes_[std::hash<std::string_view>{}(key) % lanes_.size()];
}

absl::Status PostgresStore::Read(absl::FunctionRef<absl::Status(PgConn&)> fn,
                                 bool retry) {
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return absl::UnavailableError("store: closed");
  }
  return readers_.With(fn, retry);
}

template <typename T>
absl::StatusOr<T> PostgresStore::WriteSync(
    absl::AnyInvocable<absl::StatusOr<T>(Writer*)> apply) {
  absl::Notification committed;
  absl::StatusOr<T> outcome = absl::UnknownError("store: write not applied");
  Lane& lane = lanes_[0];
  lane.group->Submit<T>(
      [w = lane.writer.get(), apply = std::move(apply)]() mutable { return apply(w); },
      [&](absl::StatusOr<T> r) {
        outcome = std::move(r);
        committed.Notify();
      });
  committed.WaitForNotification();
  return outcome;
}

void PostgresStore::CreateJob(v1::Job job, std::string request_id,
                              std::string fingerprint, JobCallback done) {
  // Deferred, as WriteJobState.
  auto create = std::make_shared<Writer::DeferredCreate>();
  create->job = std::move(job);
  create->request_id = std::move(request_id);
  create->fingerprint = std::move(fingerprint);
  Lane& lane = LaneOf(create->job.owner());
  lane.group->Submit<v1::Job>(
      [w = lane.writer.get(), create]() -> absl::StatusOr<v1::Job> {
        w->Defer(create);
        return v1::Job();
      },
      [create, done = std::move(done)](absl::StatusOr<v1::Job> committed) mutable {
        if (committed.ok()) committed = std::move(create->outcome);
        std::move(done)(std::move(committed));
      });
}

void PostgresStore::WriteJob(std::string owner, std::string job_id, JobRunMutation mutate,
                             JobCallback done) {
  Lane& lane = LaneOf(job_id);
  lane.group->Submit<v1::Job>(
      [w = lane.writer.get(), owner = std::optional<std::string>(std::move(owner)),
       job_id = std::move(job_id),
       mutate = std::move(mutate)]() mutable -> absl::StatusOr<v1::Job> {
        RETURN_IF_ERROR(w->Flush());
        return w->Update(owner, job_id, mutate, /*with_results=*/true);
      },
      std::move(done));
}

void PostgresStore::WriteJobState(std::string job_id, std::optional<Fence> fence,
                                  JobRunMutation mutate, JobCallback done) {
  // Deferred (Writer::Flush): the operation only queues it; its outcome is
  // the deferred one once the batch committed.
  auto fire = std::make_shared<Writer::DeferredFire>();
  fire->job_id = std::move(job_id);
  fire->fence = std::move(fence);
  fire->mutate = std::move(mutate);
  Lane& lane = LaneOf(fire->job_id);
  lane.group->Submit<v1::Job>(
      [w = lane.writer.get(), fire]() -> absl::StatusOr<v1::Job> {
        w->Defer(fire);
        return v1::Job();
      },
      [fire, done = std::move(done)](absl::StatusOr<v1::Job> committed) mutable {
        if (committed.ok()) committed = std::move(fire->outcome);
        std::move(done)(std::move(committed));
      });
}

void PostgresStore::WriteResult(std::string job_id, v1::JobResult result,
                                StatusCallback done) {
  auto deferred = std::make_shared<Writer::DeferredResult>();
  deferred->job_id = std::move(job_id);
  deferred->result = std::move(result);
  Lane& lane = LaneOf(deferred->job_id);
  lane.group->Submit(
      [w = lane.writer.get(), deferred]() -> absl::Status {
        w->Defer(deferred);
        return absl::OkStatus();
      },
      [deferred, done = std::move(done)](absl::Status committed) mutable {
        if (committed.ok()) committed = std::move(deferred->outcome);
        std::move(done)(std::move(committed));
      });
}

void PostgresStore::WriteManualRun(std::string owner, std::string job_id,
                                   std::string request_id, std::optional<Fence> fence,
                                   ManualRunMutation mutate, JobCallback done) {
  Lane& lane = LaneOf(job_id);
  lane.group->Submit<v1::Job>(
      [w = lane.writer.get(), owner = std::move(owner), job_id = std::move(job_id),
       request_id = std::move(request_id), fence = std::move(fence),
       mutate = std::move(mutate)]() mutable -> absl::StatusOr<v1::Job> {
        RETURN_IF_ERROR(w->Flush());
        RETURN_IF_ERROR(w->CheckFence(fence));
        return w->UpdateManualRun(owner, job_id, request_id, mutate);
      },
      std::move(done));
}

absl::StatusOr<LeaseGrant> PostgresStore::RenewLeases(const LeaseRenewal& renewal) {
  const int64_t ttl_us = absl::ToInt64Microseconds(renewal.ttl);
  std::string release = "{";
  for (size_t i = 0; i < renewal.release.size(); ++i) {
    absl::StrAppend(&release, i == 0 ? "" : ",", renewal.release[i]);
  }
  release += "}";
  LeaseGrant grant;
  // One transaction on a reader connection; not retried on another (the
  // outcome of a lost COMMIT is unknown: the next renewal settles it).
  RETURN_IF_ERROR(Read(
      [&](PgConn& c) -> absl::Status {
        grant = LeaseGrant{};
        RETURN_IF_ERROR(c.Exec("BEGIN"));
        absl::Status s = [&]() -> absl::Status {
          RETURN_IF_ERROR(c.Run(kHeartbeat, {renewal.replica_id, renewal.host}).status());
          if (!renewal.release.empty()) {
            RETURN_IF_ERROR(
                c.Run(kReleaseSome, {renewal.replica_id, release.c_str()}).status());
          }
          RETURN_IF_ERROR(c.Run(kRenewHeld, {renewal.replica_id, ttl_us}).status());
          ASSIGN_OR_RETURN(PgResult live, c.Run(kLiveReplicas, {ttl_us}));
          grant.live_replicas = std::max<int>(1, static_cast<int>(live.Int(0, 0)));
          grant.fair_share = (kShards + grant.live_replicas - 1) / grant.live_replicas;
          ASSIGN_OR_RETURN(PgResult held, c.Run(kHeldCount, {renewal.replica_id}));
          const int64_t want = grant.fair_share - held.Int(0, 0);
          if (want > 0) {
            RETURN_IF_ERROR(
                c.Run(kTakeShards, {renewal.replica_id, ttl_us, want}).status());
          }
          ASSIGN_OR_RETURN(PgResult rows, c.Run(kHeldShards, {renewal.replica_id}));
          for (int i = 0; i < rows.rows(); ++i) {
            grant.held.push_back(
                HeldShard{static_cast<int>(rows.Int(i, 0)), rows.Int(i, 1)});
          }
          RETURN_IF_ERROR(c.Run(kForgetGone, {}).status());
          return c.Commit();
        }();
        if (!s.ok() && !c.broken()) c.Exec("ROLLBACK").IgnoreError();
        return s;
      },
      /*retry=*/false));
  return grant;
}

absl::Status PostgresStore::ReleaseLeases(const std::string& replica_id) {
  return Read(
      [&](PgConn& c) -> absl::Status {
        RETURN_IF_ERROR(c.Exec("BEGIN"));
        absl::Status s = [&]() -> absl::Status {
          RETURN_IF_ERROR(c.Run(kReleaseAll, {replica_id}).status());
          RETURN_IF_ERROR(c.Run(kForgetReplica, {replica_id}).status());
          return c.Commit();
        }();
        if (!s.ok() && !c.broken()) c.Exec("ROLLBACK").IgnoreError();
        return s;
      },
      /*retry=*/false);
}

absl::StatusOr<v1::Job> PostgresStore::GetJob(const std::string& owner,
                                              const std::string& job_id) {
  absl::StatusOr<v1::Job> job;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult res, c.Run(kGetJob, {job_id, owner}));
    job = JobFromRows(res, job_id);
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<v1::Job> PostgresStore::LoadJob(const std::string& job_id) {
  absl::StatusOr<v1::Job> job;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult res, c.Run(kLoadJob, {job_id}));
    job = JobFromRows(res, job_id);
    return absl::OkStatus();
  }));
  return job;
}

absl::StatusOr<std::vector<v1::Job>> PostgresStore::LoadJobs(
    const std::vector<std::string>& job_ids) {
  constexpr size_t kPerRead = 1000;
  std::vector<v1::Job> out;
  for (size_t begin = 0; begin < job_ids.size(); begin += kPerRead) {
    PgArray ids(PgArray::kText);
    for (size_t i = begin; i < std::min(job_ids.size(), begin + kPerRead); ++i) {
      ids.Add(job_ids[i]);
    }
    RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
      ASSIGN_OR_RETURN(PgResult res, c.Run(kReadJobs, {PgParam::Bytes(ids.bytes())}));
      for (int r = 0; r < res.rows(); ++r) {
        ASSIGN_OR_RETURN(v1::Job job, DecodeJob(res.Bytes(r, 2), res.Int(r, 1)));
        out.push_back(std::move(job));
      }
      return absl::OkStatus();
    }));
  }
  return out;
}

absl::StatusOr<ListJobsPage> PostgresStore::ListJobs(const ListJobsQuery& query) {
  ListJobsPage page;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    page = ListJobsPage();
    const int64_t after_us = query.after ? query.after->create_micros : INT64_MIN;
    const std::string after_id = query.after ? query.after->job_id : std::string();
    // One extra job tells whether another page exists.
    ASSIGN_OR_RETURN(PgResult res, c.Run(query.show_deleted ? kListAll : kListLive,
                                         {query.owner, after_us, after_id,
                                          static_cast<int64_t>(query.page_size) + 1}));
    for (int i = 0; i < res.rows();) {
      int end = i + 1;
      while (end < res.rows() && res.Bytes(end, 0) == res.Bytes(i, 0)) ++end;
      if (static_cast<int>(page.jobs.size()) == query.page_size) {
        page.has_more = true;
        break;
      }
      ASSIGN_OR_RETURN(v1::Job job, DecodeJob(res.Bytes(i, 2), res.Int(i, 1)));
      std::vector<v1::JobResult> results;
      RETURN_IF_ERROR(DecodeResults(res, i, end, 3, results));
      SetView(job, results);
      page.jobs.push_back(std::move(job));
      i = end;
    }
    return absl::OkStatus();
  }));
  return page;
}

absl::Status PostgresStore::ScanDue(
    absl::FunctionRef<void(const std::string&, int64_t)> fn) {
  return ScanDueIn(nullptr, fn);
}

absl::Status PostgresStore::ScanDueInShards(
    const ShardSet& shards, absl::FunctionRef<void(const std::string&, int64_t)> fn) {
  return ScanDueIn(&shards, fn);
}

absl::Status PostgresStore::ScanDueIn(
    const ShardSet* shards, absl::FunctionRef<void(const std::string&, int64_t)> fn) {
  bool delivered = false;
  // The pages of one shard (or of every job, without one), by job id.
  auto pages = [&](PgConn& c, std::optional<int> shard) -> absl::Status {
    std::string after;
    for (;;) {
      const int64_t limit = kScanPage;
      ASSIGN_OR_RETURN(PgResult res, shard ? c.Run(kScanDueShard, {*shard, after, limit})
                                           : c.Run(kScanDue, {after, limit}));
      for (int i = 0; i < res.rows(); ++i) {
        after = std::string(res.Bytes(i, 0));
        delivered = true;
        fn(after, res.Int(i, 1));
      }
      if (res.rows() < kScanPage) return absl::OkStatus();
    }
  };
  // One snapshot for every page; shard by shard, each an index range.
  auto scan = [&](PgConn& c) -> absl::Status {
    RETURN_IF_ERROR(c.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    if (shards == nullptr) {
      RETURN_IF_ERROR(pages(c, std::nullopt));
    } else {
      for (int shard = 0; shard < kShards; ++shard) {
        if (shards->test(shard)) RETURN_IF_ERROR(pages(c, shard));
      }
    }
    return c.Exec("COMMIT");
  };
  absl::Status s = Read(scan, /*retry=*/false);
  // A connection found dead before anything was delivered: once more.
  if (absl::IsUnavailable(s) && !delivered) s = Read(scan, /*retry=*/false);
  return s;
}

absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>>
PostgresStore::ListOpenResultsInShards(const ShardSet& shards) {
  std::string list = "{";
  for (int shard = 0; shard < kShards; ++shard) {
    if (!shards.test(shard)) continue;
    absl::StrAppend(&list, list.size() > 1 ? "," : "", shard);
  }
  list += "}";
  return OpenResults(kOpenResultsInShards, {list.c_str()});
}

absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>>
PostgresStore::ListOpenResults() {
  return OpenResults(kOpenResults, {});
}

absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>>
PostgresStore::OpenResults(const PgStatement& stmt, const std::vector<PgParam>& params) {
  std::vector<std::pair<std::string, v1::JobResult>> open;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    open.clear();
    ASSIGN_OR_RETURN(PgResult res, c.Run(stmt, params));
    for (int i = 0; i < res.rows(); ++i) {
      ASSIGN_OR_RETURN(v1::JobResult r, DecodeResult(res.Bytes(i, 1)));
      open.emplace_back(std::string(res.Bytes(i, 0)), std::move(r));
    }
    return absl::OkStatus();
  }));
  return open;
}

absl::StatusOr<std::vector<v1::JobResult>> PostgresStore::ListResults(
    const std::string& owner, const std::string& job_id, int64_t before_run_number,
    int page_size) {
  std::vector<v1::JobResult> results;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    results.clear();
    ASSIGN_OR_RETURN(PgResult res,
                     c.Run(kListResults, {job_id, owner, before_run_number,
                                          static_cast<int64_t>(std::max(page_size, 0))}));
    if (res.rows() == 0)
      return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    return DecodeResults(res, 0, res.rows(), 0, results);
  }));
  return results;
}

absl::StatusOr<int64_t> PostgresStore::PruneResults(int keep_per_job,
                                                    int64_t ended_before_us) {
  // The jobs in ranges of job ids, each range's results pruned in one write.
  int64_t deleted = 0;
  std::string low;
  for (bool more = true; more;) {
    std::string high;
    RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
      ASSIGN_OR_RETURN(
          PgResult res,
          c.Run(kJobIdsAfter, {low, static_cast<int64_t>(kPruneJobsPerWrite)}));
      more = res.rows() == kPruneJobsPerWrite;
      if (res.rows() > 0) high = std::string(res.Bytes(res.rows() - 1, 0));
      return absl::OkStatus();
    }));
    if (high.empty()) break;
    ASSIGN_OR_RETURN(
        const int64_t n, WriteSync<int64_t>([low, high, keep_per_job, ended_before_us](
                                                Writer* w) -> absl::StatusOr<int64_t> {
          RETURN_IF_ERROR(w->Flush());
          ASSIGN_OR_RETURN(
              PgResult res,
              w->Write(kPruneResults,
                       {low, high, static_cast<int64_t>(keep_per_job), ended_before_us}));
          return res.affected();
        }));
    deleted += n;
    low = high;
  }
  // Manual-run request ids as old as the results dropped by age.
  for (;;) {
    constexpr int64_t kRequestsPerWrite = 4096;
    ASSIGN_OR_RETURN(
        const int64_t n,
        WriteSync<int64_t>([ended_before_us](Writer* w) -> absl::StatusOr<int64_t> {
          RETURN_IF_ERROR(w->Flush());
          ASSIGN_OR_RETURN(PgResult res, w->Write(kPruneRunRequests,
                                                  {ended_before_us, kRequestsPerWrite}));
          return res.affected();
        }));
    if (n < kRequestsPerWrite) break;
  }
  return deleted;
}

absl::StatusOr<OwnerUsage> PostgresStore::CountJobs(const std::string& owner) {
  OwnerUsage usage;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult res, c.Run(kCount, {owner}));
    if (res.rows() == 1) {
      usage.live_jobs = res.Int(0, 0);
      usage.stored_jobs = res.Int(0, 1);
      usage.stored_bytes = res.Int(0, 2);
    }
    return absl::OkStatus();
  }));
  return usage;
}

absl::StatusOr<std::map<int, int64_t>> PostgresStore::CountJobsByStatus() {
  std::map<int, int64_t> out;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult res, c.Run(kCountByStatus, {}));
    for (int i = 0; i < res.rows(); ++i) {
      out[static_cast<int>(res.Int(i, 0))] = res.Int(i, 1);
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<PurgedJob>> PostgresStore::PurgeDeletedJobs(
    int64_t deleted_before_us, int max_jobs) {
  std::vector<PurgedJob> purged;
  for (;;) {
    const int want =
        std::min(kPurgeJobsPerWrite, max_jobs - static_cast<int>(purged.size()));
    if (want <= 0) return purged;
    ASSIGN_OR_RETURN(
        std::vector<PurgedJob> step,
        WriteSync<std::vector<PurgedJob>>([deleted_before_us, want](Writer* w)
                                              -> absl::StatusOr<std::vector<PurgedJob>> {
          RETURN_IF_ERROR(w->Flush());
          ASSIGN_OR_RETURN(PgResult res, w->Write(kPurge, {deleted_before_us,
                                                           static_cast<int64_t>(want)}));
          std::vector<PurgedJob> out;
          for (int i = 0; i < res.rows(); ++i) {
            out.push_back(PurgedJob{std::string(res.Bytes(i, 0)),
                                    std::string(res.Bytes(i, 1)), res.Int(i, 2)});
          }
          return out;
        }));
    const bool more = static_cast<int>(step.size()) == want;
    for (PurgedJob& p : step) purged.push_back(std::move(p));
    if (!more) return purged;
  }
}

}  // namespace timer::store
