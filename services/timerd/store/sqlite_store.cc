#include "store/sqlite_store.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/str_cat.h"
#include "util/status_macros.h"
#include "util/thread_name.h"

namespace timer::store {
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
    // 3: bearer tokens (store/token_store.h). Only a SHA-256 of each token's
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
};

// A job row's columns: version, job, last_result (the head of its results'
// links; 0 when none), rowid.
constexpr char kGetJob[] =
    "SELECT version, job, last_result, rowid FROM jobs WHERE job_id = ?1 AND owner = ?2";
constexpr char kLoadJob[] =
    "SELECT version, job, last_result, rowid FROM jobs WHERE job_id = ?1";
// One link of a job's results: the one before it, its run and job, the result.
constexpr char kResultById[] =
    "SELECT prev, run_number, job_id, result FROM results WHERE id = ?1";
constexpr char kListLive[] =
    "SELECT version, job, last_result FROM jobs WHERE owner = ?1 AND deleted = 0 AND "
    "(create_us, job_id) > (?2, ?3) ORDER BY create_us, job_id LIMIT ?4";
constexpr char kListAll[] =
    "SELECT version, job, last_result FROM jobs WHERE owner = ?1 AND "
    "(create_us, job_id) > (?2, ?3) ORDER BY create_us, job_id LIMIT ?4";

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

absl::StatusOr<v1::Job> DecodeJob(const Stmt& stmt) {
  v1::Job job;
  std::string_view blob = stmt.ColumnBlob(1);
  if (!job.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return absl::DataLossError("store: a stored job could not be decoded");
  }
  // Stores written before results moved to their own table kept a copy.
  job.clear_results();
  job.set_etag(absl::StrCat(stmt.ColumnInt(0)));
  return job;
}

// Unix microseconds of job.next_run; nullopt when unset.
std::optional<int64_t> NextRunMicros(const v1::Job& job);

// The stored form: without etag and results (their home is the results
// table). Both are set aside and put back rather than copying the job.
std::string EncodeJob(v1::Job& job) {
  std::string etag;
  etag.swap(*job.mutable_etag());
  google::protobuf::RepeatedPtrField<v1::JobResult> results;
  results.Swap(job.mutable_results());
  std::string out;
  job.SerializeToString(&out);
  job.mutable_results()->Swap(&results);
  job.mutable_etag()->swap(etag);
  return out;
}

absl::StatusOr<v1::JobResult> DecodeResult(std::string_view blob) {
  v1::JobResult r;
  if (!r.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return absl::DataLossError("store: a stored result could not be decoded");
  }
  return r;
}

// One link of a job's results, read through a prepared kResultById.
struct Link {
  int64_t prev = 0;  // 0: the job's oldest result.
  int64_t run_number = 0;
};

// Reads result `id` of `job_id`; nullopt when there is no such row or it
// belongs to another job (the links end there). With `result`, also decodes
// the result into it.
absl::StatusOr<std::optional<Link>> ReadLink(Stmt& by_id, int64_t id,
                                             std::string_view job_id,
                                             v1::JobResult* result = nullptr) {
  by_id.Reset().Bind(1, id);
  absl::StatusOr<bool> row = by_id.Step();
  std::optional<Link> link;
  absl::Status status = row.status();
  if (row.ok() && *row && by_id.ColumnText(2) == job_id) {
    link = Link{by_id.ColumnInt(0), by_id.ColumnInt(1)};
    if (result != nullptr) {
      absl::StatusOr<v1::JobResult> r = DecodeResult(by_id.ColumnBlob(3));
      if (r.ok()) {
        *result = *std::move(r);
      } else {
        status = r.status();
      }
    }
  }
  by_id.Reset();
  RETURN_IF_ERROR(status);
  return link;
}

// Calls `fn` with the job's results newest first, from `head`, until it
// returns false or the links end.
absl::Status WalkResults(Stmt& by_id, int64_t head, std::string_view job_id,
                         absl::FunctionRef<bool(const v1::JobResult&)> fn) {
  v1::JobResult r;
  for (int64_t id = head; id != 0;) {
    ASSIGN_OR_RETURN(std::optional<Link> link, ReadLink(by_id, id, job_id, &r));
    if (!link || !fn(r)) break;
    id = link->prev;
  }
  return absl::OkStatus();
}

// Sets job.results to its newest kJobResults results, from `head` (see
// kLoadJob), and last_run to the newest start among them if that is later.
// `by_id` is a prepared kResultById.
absl::Status FillResults(Stmt& by_id, int64_t head, v1::Job& job) {
  job.clear_results();
  RETURN_IF_ERROR(WalkResults(by_id, head, job.job_id(), [&](const v1::JobResult& r) {
    *job.add_results() = r;
    return job.results_size() < kJobResults;
  }));
  for (const v1::JobResult& r : job.results()) {
    if (!r.has_start_time()) continue;
    if (!job.has_last_run() || ToMicros(r.start_time()) > ToMicros(job.last_run())) {
      *job.mutable_last_run() = r.start_time();
    }
    break;  // Newest first.
  }
  return absl::OkStatus();
}

std::optional<int64_t> NextRunMicros(const v1::Job& job) {
  if (!job.has_next_run()) return std::nullopt;
  return ToMicros(job.next_run());
}

}  // namespace

int64_t ToMicros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}

// The writer connection and its prepared statements.
struct SqliteStore::Writer {
  Db db;
  Stmt get_job, load_job, insert_job, update_job, update_job_state, insert_result,
      update_result, set_prev, find_head, set_head, delete_result, find_request,
      insert_request, result_by_id;
  // Rowids of the open (PENDING, ACTIVE) results this writer inserted, by
  // "job_id/run_number": a run's progress and outcome update its row
  // directly instead of walking the job's links. A hint only: the update
  // also checks job_id and run_number, and falls back to the walk when the
  // row is not there (a rolled-back insert).
  absl::flat_hash_map<std::string, int64_t> open_rows;
  // Prepared once: a write's savepoint costs no SQL parsing.
  Stmt savepoint, release, rollback_to;
};

// One read connection and its prepared statements.
struct SqliteStore::Reader {
  Db db;
  Stmt get_job, load_job, list_live, list_all, result_by_id;
  // Each use of a reader is one read transaction: a job and its results'
  // links are read from the same snapshot.
  Stmt begin, commit;
};

int SqliteStore::LatestSchemaVersion() {
  return static_cast<int>(std::size(kMigrations));
}

SqliteStore::SqliteStore(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(Options options) {
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(options)));
  RETURN_IF_ERROR(store->Init());
  store->writer_thread_ = std::thread([s = store.get()] {
    util::SetThreadName("store-writer");
    s->WriterLoop();
  });
  store->callback_thread_ = std::thread([s = store.get()] {
    util::SetThreadName("store-callback");
    s->CallbackLoop();
  });
  store->checkpoint_thread_ = std::thread([s = store.get()] {
    util::SetThreadName("store-checkpoint");
    s->CheckpointLoop();
  });
  return store;
}

absl::Status SqliteStore::Init() {
  ASSIGN_OR_RETURN(Db db, Db::Open(options_.path));
  // Only takes effect on a new, empty file; must precede the switch to WAL.
  RETURN_IF_ERROR(
      db.Exec(absl::StrCat("PRAGMA page_size = ", options_.page_size, ";").c_str()));
  RETURN_IF_ERROR(Configure(db));

  ASSIGN_OR_RETURN(int64_t version, db.QueryInt("PRAGMA user_version"));
  const int64_t latest = LatestSchemaVersion();
  if (version > latest) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store: ", options_.path, " has schema version ", version,
        ", newer than this timerd understands (", latest,
        "); run a newer timerd"));
  }
  for (int64_t v = version; v < latest; ++v) {
    RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
    absl::Status s = db.Exec(kMigrations[v]);
    if (s.ok()) {
      s = db.Exec(absl::StrCat("PRAGMA user_version = ", v + 1).c_str());
    }
    if (s.ok()) s = db.Exec("COMMIT");
    if (!s.ok()) {
      db.Exec("ROLLBACK").IgnoreError();
      return absl::Status(s.code(), absl::StrCat("store: migration to schema ",
                                                 v + 1, " failed: ", s.message()));
    }
  }

  auto w = std::make_unique<Writer>();
  w->db = std::move(db);
  sqlite3* raw = w->db.get();
  ASSIGN_OR_RETURN(w->get_job, Stmt::Prepare(raw, kGetJob));
  ASSIGN_OR_RETURN(w->load_job, Stmt::Prepare(raw, kLoadJob));
  ASSIGN_OR_RETURN(w->result_by_id, Stmt::Prepare(raw, kResultById));
  ASSIGN_OR_RETURN(w->insert_job,
                   Stmt::Prepare(raw,
                                 "INSERT INTO jobs (job_id, owner, create_us, "
                                 "deleted, status, next_run_us, version, job) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  // By rowid, as read in the same transaction: no second search by job_id.
  ASSIGN_OR_RETURN(w->update_job,
                   Stmt::Prepare(raw,
                                 "UPDATE jobs SET deleted = ?2, status = ?3, "
                                 "next_run_us = ?4, version = ?5, job = ?6, "
                                 "last_result = ?7 WHERE rowid = ?1"));
  // Leaves the owner-listing indexes alone: a fire changes neither column.
  ASSIGN_OR_RETURN(w->update_job_state,
                   Stmt::Prepare(raw,
                                 "UPDATE jobs SET next_run_us = ?4, version = ?5, "
                                 "job = ?6, last_result = ?7 WHERE rowid = ?1"));
  ASSIGN_OR_RETURN(w->insert_result,
                   Stmt::Prepare(raw,
                                 "INSERT INTO results (job_id, run_number, status, "
                                 "end_us, result, prev) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  ASSIGN_OR_RETURN(w->set_prev,
                   Stmt::Prepare(raw, "UPDATE results SET prev = ?2 WHERE id = ?1"));
  ASSIGN_OR_RETURN(w->find_head,
                   Stmt::Prepare(raw, "SELECT rowid, last_result FROM jobs WHERE job_id = ?1"));
  ASSIGN_OR_RETURN(w->set_head,
                   Stmt::Prepare(raw, "UPDATE jobs SET last_result = ?2 WHERE rowid = ?1"));
  ASSIGN_OR_RETURN(w->delete_result,
                   Stmt::Prepare(raw, "DELETE FROM results WHERE id = ?1"));
  ASSIGN_OR_RETURN(w->update_result,
                   Stmt::Prepare(raw,
                                 "UPDATE results SET status = ?4, end_us = ?5, "
                                 "result = ?6 WHERE id = ?1 AND job_id = ?2 AND "
                                 "run_number = ?3"));
  ASSIGN_OR_RETURN(w->find_request,
                   Stmt::Prepare(raw,
                                 "SELECT fingerprint, job_id FROM request_ids "
                                 "WHERE owner = ?1 AND request_id = ?2"));
  ASSIGN_OR_RETURN(w->insert_request,
                   Stmt::Prepare(raw,
                                 "INSERT INTO request_ids (owner, request_id, "
                                 "fingerprint, job_id, create_us) VALUES (?1, "
                                 "?2, ?3, ?4, ?5)"));
  // No automatic checkpoint inside a commit (it would stall every write
  // queued behind it): CheckpointLoop copies the WAL on its own connection,
  // and the writer only ends a checkpoint for the WAL to start over
  // (MaybeFinishCheckpoint).
  RETURN_IF_ERROR(w->db.Exec("PRAGMA wal_autocheckpoint = 0;"));
  // Replaces the (now off) autocheckpoint hook: after each commit, the
  // number of frames in the WAL, for MaybeFinishCheckpoint.
  sqlite3_wal_hook(
      raw,
      +[](void* arg, sqlite3*, const char*, int frames) {
        static_cast<SqliteStore*>(arg)->wal_frames_.store(frames,
                                                           std::memory_order_relaxed);
        return SQLITE_OK;
      },
      this);
  // A WAL that grew past this (a reader held an old snapshot while the
  // writer went on) is cut back when it next starts over.
  // The file's own page size: an older file keeps its 4 KiB pages.
  ASSIGN_OR_RETURN(const int64_t page_bytes, w->db.QueryInt("PRAGMA page_size"));
  const int64_t frame_bytes = page_bytes + 24;
  RETURN_IF_ERROR(w->db.Exec(
      absl::StrCat("PRAGMA journal_size_limit = ",
                   4 * static_cast<int64_t>(options_.wal_restart_frames) * frame_bytes, ";")
          .c_str()));
  ASSIGN_OR_RETURN(w->savepoint, Stmt::Prepare(raw, "SAVEPOINT w"));
  ASSIGN_OR_RETURN(w->release, Stmt::Prepare(raw, "RELEASE w"));
  ASSIGN_OR_RETURN(w->rollback_to, Stmt::Prepare(raw, "ROLLBACK TO w"));
  writer_ = std::move(w);
  return absl::OkStatus();
}

SqliteStore::~SqliteStore() { Close(); }

void SqliteStore::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (closing_) {
      // Someone else is closing: wait until they are done.
      mu_.Await(absl::Condition(&closed_));
      return;
    }
    closing_ = true;
  }
  if (writer_thread_.joinable()) writer_thread_.join();
  {
    absl::MutexLock lock(&callbacks_mu_);
    writer_done_ = true;
  }
  if (callback_thread_.joinable()) callback_thread_.join();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
  writer_.reset();
  {
    absl::MutexLock lock(&readers_mu_);
    open_readers_ -= static_cast<int>(idle_readers_.size());
    idle_readers_.clear();
  }
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

int64_t SqliteStore::commits() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

int64_t SqliteStore::wal_checkpoints() const {
  return wal_checkpoints_.load(std::memory_order_relaxed);
}

void SqliteStore::Enqueue(WriteOp op) {
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      queue_.push_back(std::move(op));
      return;
    }
  }
  std::move(op.done)(absl::UnavailableError("store: closed"));
}

void SqliteStore::CheckpointLoop() {
  absl::StatusOr<Db> db = Db::Open(options_.path);
  if (!db.ok()) return;
  db->Exec("PRAGMA busy_timeout = 5000;").IgnoreError();
  // A connection opens the WAL when it first reads; until then a checkpoint
  // through it does nothing (it reports a log of -1).
  db->QueryInt("SELECT count(*) FROM sqlite_schema").IgnoreError();
  int copied = 0;  // Frames the last pass found in the WAL.
  bool again = false;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      // Every checkpoint_interval (at once while catching up for a
      // restart), or at once when closing.
      mu_.AwaitWithTimeout(absl::Condition(&closing_),
                           again ? absl::ZeroDuration() : options_.checkpoint_interval);
      if (closing_) break;
    }
    again = false;
    // Nothing committed since the last pass: nothing to copy.
    const int frames = wal_frames_.load(std::memory_order_relaxed);
    if (frames == 0 || frames == copied) continue;
    int log = 0, done = 0;
    {
      // PASSIVE: copies what it can without blocking the writer or readers.
      absl::MutexLock lock(&checkpoint_mu_);
      sqlite3_wal_checkpoint_v2(db->get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log,
                                &done);
    }
    copied = log;
    if (log < options_.wal_restart_frames || done < 0) continue;
    // Time for the WAL to start over. Each pass leaves what was committed
    // while it ran; passes back to back shrink that until the writer can
    // copy the rest in a moment, between two commits.
    const int behind = wal_frames_.load(std::memory_order_relaxed) - done;
    if (behind <= kFinishFrames) {
      finish_wanted_.store(true, std::memory_order_relaxed);
    } else {
      again = true;
    }
  }
}

void SqliteStore::MaybeFinishCheckpoint() {
  const int frames = wal_frames_.load(std::memory_order_relaxed);
  if (frames < options_.wal_restart_frames) return;
  // Normally the background passes first bring the copy close to the WAL's
  // end; the writer finishes alone when there are none, or when they fall
  // far behind (the WAL's size stays bounded either way).
  const bool alone = options_.checkpoint_interval == absl::InfiniteDuration() ||
                     frames >= 4 * options_.wal_restart_frames;
  if (!alone && !finish_wanted_.load(std::memory_order_relaxed)) return;
  // A background pass is running: try again after the next commit.
  if (!checkpoint_mu_.TryLock()) return;
  // No commit can happen meanwhile (this is the writer), so the checkpoint
  // reaches the WAL's end unless a reader still uses an older snapshot;
  // then the next write transaction starts the WAL over.
  int log = 0, done = 0;
  const int rc = sqlite3_wal_checkpoint_v2(writer_->db.get(), nullptr,
                                           SQLITE_CHECKPOINT_PASSIVE, &log, &done);
  finish_wanted_.store(false, std::memory_order_relaxed);
  checkpoint_mu_.Unlock();
  if (rc == SQLITE_OK) wal_checkpoints_.fetch_add(1, std::memory_order_relaxed);
}

void SqliteStore::WriterLoop() {
  std::vector<WriteOp> batch;
  absl::Time last_commit = absl::InfinitePast();
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SqliteStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
            return !s->queue_.empty() || s->closing_;
          },
          this));
      // Under load, commits are spaced at least min_commit_interval apart so
      // that each fsync carries more writes; an idle store commits at once.
      const absl::Duration since = absl::Now() - last_commit;
      if (since < options_.min_commit_interval && !closing_) {
        mu_.AwaitWithTimeout(
            absl::Condition(
                +[](SqliteStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) {
                  return static_cast<int>(s->queue_.size()) >= s->options_.max_batch ||
                         s->closing_;
                },
                this),
            options_.min_commit_interval - since);
      }
      if (queue_.empty()) return;  // Closing and drained.
      while (!queue_.empty() &&
             static_cast<int>(batch.size()) < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    RunBatch(std::move(batch));
    batch.clear();
    last_commit = absl::Now();
  }
}

void SqliteStore::CallbackLoop() {
  for (;;) {
    Committed next;
    {
      absl::MutexLock lock(&callbacks_mu_);
      callbacks_mu_.Await(absl::Condition(
          +[](SqliteStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->callbacks_mu_) {
            return !s->committed_.empty() || s->writer_done_;
          },
          this));
      if (committed_.empty()) return;  // The writer has stopped: nothing more.
      next = std::move(committed_.front());
      committed_.pop_front();
    }
    for (size_t i = 0; i < next.ops.size(); ++i) {
      std::move(next.ops[i].done)(std::move(next.results[i]));
    }
  }
}

void SqliteStore::RunBatch(std::vector<WriteOp> batch) {
  Db& db = writer_->db;
  std::vector<absl::StatusOr<v1::Job>> results;
  results.reserve(batch.size());

  absl::Status txn = db.Exec("BEGIN IMMEDIATE");
  if (txn.ok()) {
    for (WriteOp& op : batch) {
      // A savepoint per write: a failed write is undone alone.
      absl::Status sp = writer_->savepoint.Reset().Run();
      if (!sp.ok()) {
        results.push_back(sp);
        continue;
      }
      absl::StatusOr<v1::Job> r = op.apply(*writer_);
      if (!r.ok()) writer_->rollback_to.Reset().Run().IgnoreError();
      writer_->release.Reset().Run().IgnoreError();
      results.push_back(std::move(r));
    }
    txn = db.Exec("COMMIT");
    if (!txn.ok()) db.Exec("ROLLBACK").IgnoreError();
  }
  if (!txn.ok()) {
    // Nothing of this batch is durable: fail every write in it.
    results.assign(batch.size(),
                   absl::UnavailableError(absl::StrCat(
                       "store: write not committed: ", txn.message())));
  } else {
    absl::MutexLock lock(&mu_);
    ++commits_;
  }
  {
    absl::MutexLock lock(&callbacks_mu_);
    committed_.push_back(Committed{std::move(batch), std::move(results)});
  }
  MaybeFinishCheckpoint();
}

absl::StatusOr<v1::Job> SqliteStore::CreateInTxn(Writer& w, v1::Job& job,
                                                 const std::string& request_id,
                                                 const std::string& fingerprint) {
  if (!request_id.empty()) {
    Stmt& find = w.find_request.Reset();
    find.BindText(1, job.owner()).BindText(2, request_id);
    ASSIGN_OR_RETURN(bool found, find.Step());
    if (found) {
      if (find.ColumnText(0) != fingerprint) {
        return absl::AlreadyExistsError(
            "request_id: already used for a different request");
      }
      std::string existing(find.ColumnText(1));
      Stmt& get = w.get_job.Reset();
      get.BindText(1, existing).BindText(2, job.owner());
      ASSIGN_OR_RETURN(bool row, get.Step());
      if (!row) return absl::InternalError("store: request_id names a missing job");
      const int64_t head = get.ColumnInt(2);
      ASSIGN_OR_RETURN(v1::Job job, DecodeJob(get));
      get.Reset();
      RETURN_IF_ERROR(FillResults(w.result_by_id, head, job));
      return job;
    }
  }
  const int64_t create_us = ToMicros(job.create_time());
  const std::string blob = EncodeJob(job);
  Stmt& insert = w.insert_job.Reset();
  insert.BindText(1, job.job_id())
      .BindText(2, job.owner())
      .Bind(3, create_us)
      .Bind(4, job.status() == v1::Job::DELETED ? 1 : 0)
      .Bind(5, job.status())
      .Bind(7, 1)
      .BindBlob(8, blob);
  if (auto next = NextRunMicros(job)) insert.Bind(6, *next);
  RETURN_IF_ERROR(insert.Run());
  if (!request_id.empty()) {
    Stmt& ins = w.insert_request.Reset();
    ins.BindText(1, job.owner())
        .BindText(2, request_id)
        .BindText(3, fingerprint)
        .BindText(4, job.job_id())
        .Bind(5, create_us);
    RETURN_IF_ERROR(ins.Run());
  }
  job.set_etag("1");
  return job;
}

void SqliteStore::CreateJob(v1::Job job, std::string request_id,
                            std::string fingerprint, JobCallback done) {
  Enqueue(WriteOp{
      [job = std::move(job), request_id = std::move(request_id),
       fingerprint = std::move(fingerprint)](Writer& w) mutable {
        return CreateInTxn(w, job, request_id, fingerprint);
      },
      std::move(done)});
}

absl::StatusOr<v1::Job> SqliteStore::UpdateInTxn(Writer& w,
                                                 const std::string& owner,
                                                 const std::string& job_id,
                                                 JobRunMutation& mutate,
                                                 bool with_results) {
  Stmt& get = owner.empty() ? w.load_job.Reset() : w.get_job.Reset();
  get.BindText(1, job_id);
  if (!owner.empty()) get.BindText(2, owner);
  ASSIGN_OR_RETURN(bool row, get.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  const int64_t version = get.ColumnInt(0);
  int64_t head = get.ColumnInt(2);
  const int64_t rowid = get.ColumnInt(3);
  ASSIGN_OR_RETURN(v1::Job job, DecodeJob(get));
  get.Reset();
  const v1::Job::Status old_status = job.status();
  if (with_results) RETURN_IF_ERROR(FillResults(w.result_by_id, head, job));
  std::vector<v1::JobResult> results;
  RETURN_IF_ERROR(mutate(job, results));
  // First the results, which may move the job's link to its newest one.
  for (const v1::JobResult& r : results) {
    RETURN_IF_ERROR(PutResultInTxn(w, job_id, r, &head));
  }
  const std::string blob = EncodeJob(job);
  // SQLite rewrites every index on a column named in SET, changed or not.
  const bool same_status = job.status() == old_status;
  Stmt& update = same_status ? w.update_job_state.Reset() : w.update_job.Reset();
  update.Bind(1, rowid).Bind(5, version + 1).BindBlob(6, blob);
  if (!same_status) {
    update.Bind(2, job.status() == v1::Job::DELETED ? 1 : 0).Bind(3, job.status());
  }
  if (auto next = NextRunMicros(job)) update.Bind(4, *next);
  if (head != 0) update.Bind(7, head);
  RETURN_IF_ERROR(update.Run());
  job.set_etag(absl::StrCat(version + 1));
  if (with_results) {
    RETURN_IF_ERROR(FillResults(w.result_by_id, head, job));
  } else {
    job.clear_results();
  }
  return job;
}

absl::Status SqliteStore::PutResultInTxn(Writer& w, const std::string& job_id,
                                         const v1::JobResult& r, int64_t* head) {
  const std::string data = r.SerializeAsString();
  const bool open =
      r.status() == v1::JobResult::PENDING || r.status() == v1::JobResult::ACTIVE;
  // Rewrites row `id` if it still holds this run of this job.
  const auto update_row = [&](int64_t id) -> absl::StatusOr<bool> {
    Stmt& up = w.update_result.Reset();
    up.Bind(1, id)
        .BindText(2, job_id)
        .Bind(3, r.run_number())
        .Bind(4, r.status())
        .BindBlob(6, data);
    if (r.has_end_time()) up.Bind(5, ToMicros(r.end_time()));
    RETURN_IF_ERROR(up.Run());
    return sqlite3_changes(w.db.get()) == 1;
  };
  std::string key = absl::StrCat(job_id, "/", r.run_number());
  auto known = w.open_rows.find(key);
  if (known != w.open_rows.end()) {
    ASSIGN_OR_RETURN(const bool updated, update_row(known->second));
    if (!open || !updated) w.open_rows.erase(known);
    if (updated) return absl::OkStatus();
  }
  // The job's newest result, if the caller did not read it with the job.
  int64_t job_rowid = 0, own_head = 0;
  if (head == nullptr) {
    Stmt& find = w.find_head.Reset();
    find.BindText(1, job_id);
    ASSIGN_OR_RETURN(const bool row, find.Step());
    if (row) {
      job_rowid = find.ColumnInt(0);
      own_head = find.ColumnInt(1);
    }
    find.Reset();
    if (!row) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  int64_t& first = head != nullptr ? *head : own_head;
  // Down the links (newest first) to this run's row, or to the place between
  // `newer` and `older` where it goes. A new run goes first: one step.
  int64_t newer = 0, older = first;
  while (older != 0) {
    ASSIGN_OR_RETURN(std::optional<Link> link, ReadLink(w.result_by_id, older, job_id));
    if (!link) {
      older = 0;  // The links end early (never written so): this run ends them.
      break;
    }
    if (link->run_number == r.run_number()) {
      ASSIGN_OR_RETURN(const bool updated, update_row(older));
      if (!updated) return absl::InternalError("store: a result row changed under its writer");
      if (open) w.open_rows[std::move(key)] = older;
      return absl::OkStatus();
    }
    if (link->run_number < r.run_number()) break;
    newer = older;
    older = link->prev;
  }
  Stmt& insert = w.insert_result.Reset();
  insert.BindText(1, job_id).Bind(2, r.run_number()).Bind(3, r.status()).BindBlob(5, data);
  if (r.has_end_time()) insert.Bind(4, ToMicros(r.end_time()));
  if (older != 0) insert.Bind(6, older);
  RETURN_IF_ERROR(insert.Run());
  const int64_t id = sqlite3_last_insert_rowid(w.db.get());
  if (open) w.open_rows[std::move(key)] = id;
  if (newer != 0) return w.set_prev.Reset().Bind(1, newer).Bind(2, id).Run();
  first = id;
  if (head == nullptr) return w.set_head.Reset().Bind(1, job_rowid).Bind(2, id).Run();
  return absl::OkStatus();
}

void SqliteStore::WriteJob(std::string owner, std::string job_id,
                           JobRunMutation mutate, JobCallback done) {
  Enqueue(WriteOp{
      [owner = std::move(owner), job_id = std::move(job_id),
       mutate = std::move(mutate)](Writer& w) mutable {
        return UpdateInTxn(w, owner, job_id, mutate, /*with_results=*/true);
      },
      std::move(done)});
}

void SqliteStore::WriteJobState(std::string job_id, JobRunMutation mutate,
                                JobCallback done) {
  Enqueue(WriteOp{
      [job_id = std::move(job_id), mutate = std::move(mutate)](Writer& w) mutable {
        return UpdateInTxn(w, "", job_id, mutate, /*with_results=*/false);
      },
      std::move(done)});
}

void SqliteStore::WriteResult(std::string job_id, v1::JobResult result,
                              StatusCallback done) {
  Enqueue(WriteOp{
      [job_id = std::move(job_id), result = std::move(result)](
          Writer& w) -> absl::StatusOr<v1::Job> {
        RETURN_IF_ERROR(PutResultInTxn(w, job_id, result, /*head=*/nullptr));
        return v1::Job();
      },
      [done = std::move(done)](absl::StatusOr<v1::Job> r) mutable {
        std::move(done)(r.status());
      }});
}

absl::StatusOr<std::unique_ptr<SqliteStore::Reader>> SqliteStore::AcquireReader() {
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return absl::UnavailableError("store: closed");
  }
  {
    absl::MutexLock lock(&readers_mu_);
    readers_mu_.Await(absl::Condition(
        +[](SqliteStore* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->readers_mu_) {
          return !s->idle_readers_.empty() ||
                 s->open_readers_ < s->options_.max_readers;
        },
        this));
    if (!idle_readers_.empty()) {
      auto r = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return r;
    }
    ++open_readers_;
  }
  auto opened = [&]() -> absl::StatusOr<std::unique_ptr<Reader>> {
    auto r = std::make_unique<Reader>();
    ASSIGN_OR_RETURN(r->db, Db::Open(options_.path));
    RETURN_IF_ERROR(r->db.Exec(
        "PRAGMA busy_timeout = 5000; PRAGMA query_only = 1; "
        "PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;"));
    sqlite3* raw = r->db.get();
    ASSIGN_OR_RETURN(r->get_job, Stmt::Prepare(raw, kGetJob));
    ASSIGN_OR_RETURN(r->list_live, Stmt::Prepare(raw, kListLive));
    ASSIGN_OR_RETURN(r->list_all, Stmt::Prepare(raw, kListAll));
    ASSIGN_OR_RETURN(r->load_job, Stmt::Prepare(raw, kLoadJob));
    ASSIGN_OR_RETURN(r->result_by_id, Stmt::Prepare(raw, kResultById));
    ASSIGN_OR_RETURN(r->begin, Stmt::Prepare(raw, "BEGIN"));
    ASSIGN_OR_RETURN(r->commit, Stmt::Prepare(raw, "COMMIT"));
    return r;
  }();
  if (!opened.ok()) {
    absl::MutexLock lock(&readers_mu_);
    --open_readers_;
  }
  return opened;
}

void SqliteStore::ReleaseReader(std::unique_ptr<Reader> reader) {
  absl::MutexLock lock(&readers_mu_);
  idle_readers_.push_back(std::move(reader));
}

template <typename T>
absl::StatusOr<T> SqliteStore::WithReader(
    absl::FunctionRef<absl::StatusOr<T>(Reader&)> fn) {
  ASSIGN_OR_RETURN(std::unique_ptr<Reader> r, AcquireReader());
  const absl::Status begun = r->begin.Reset().Run();
  if (!begun.ok()) {
    ReleaseReader(std::move(r));
    return begun;
  }
  absl::StatusOr<T> result = fn(*r);
  // Only reads happened: ending the transaction cannot lose anything. A
  // connection that could not end it is closed rather than reused.
  if (r->commit.Reset().Run().ok()) {
    ReleaseReader(std::move(r));
  } else {
    r.reset();
    absl::MutexLock lock(&readers_mu_);
    --open_readers_;
  }
  return result;
}

namespace {

// Steps `stmt` (kGetJob, kLoadJob) to its single row and decodes the job
// there, and its newest result's id into `head`; NOT_FOUND if none.
absl::StatusOr<v1::Job> ReadOneJob(Stmt& stmt, const std::string& job_id,
                                   int64_t& head) {
  absl::StatusOr<bool> row = stmt.Step();
  absl::StatusOr<v1::Job> result;
  if (!row.ok()) {
    result = row.status();
  } else if (!*row) {
    result = absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  } else {
    head = stmt.ColumnInt(2);
    result = DecodeJob(stmt);
  }
  stmt.Reset();
  return result;
}

// Steps `stmt` to the end, calling `fn` on each row, then resets it.
absl::Status ForEachRow(Stmt& stmt, absl::FunctionRef<absl::Status(const Stmt&)> fn) {
  absl::Status status;
  for (;;) {
    absl::StatusOr<bool> row = stmt.Step();
    if (!row.ok()) {
      status = row.status();
      break;
    }
    if (!*row) break;
    status = fn(stmt);
    if (!status.ok()) break;
  }
  stmt.Reset();
  return status;
}

}  // namespace

absl::StatusOr<v1::Job> SqliteStore::GetJob(const std::string& owner,
                                            const std::string& job_id) {
  return WithReader<v1::Job>([&](Reader& r) -> absl::StatusOr<v1::Job> {
    Stmt& get = r.get_job.Reset();
    get.BindText(1, job_id).BindText(2, owner);
    int64_t head = 0;
    ASSIGN_OR_RETURN(v1::Job job, ReadOneJob(get, job_id, head));
    RETURN_IF_ERROR(FillResults(r.result_by_id, head, job));
    return job;
  });
}

absl::StatusOr<v1::Job> SqliteStore::LoadJob(const std::string& job_id) {
  return WithReader<v1::Job>([&](Reader& r) -> absl::StatusOr<v1::Job> {
    Stmt& get = r.load_job.Reset();
    get.BindText(1, job_id);
    int64_t head = 0;
    ASSIGN_OR_RETURN(v1::Job job, ReadOneJob(get, job_id, head));
    RETURN_IF_ERROR(FillResults(r.result_by_id, head, job));
    return job;
  });
}

absl::StatusOr<ListJobsPage> SqliteStore::ListJobs(const ListJobsQuery& query) {
  return WithReader<ListJobsPage>([&](Reader& r) -> absl::StatusOr<ListJobsPage> {
    Stmt& list = (query.show_deleted ? r.list_all : r.list_live).Reset();
    const int64_t after_us = query.after ? query.after->create_micros : INT64_MIN;
    const std::string after_id = query.after ? query.after->job_id : std::string();
    // One extra row tells whether another page exists.
    list.BindText(1, query.owner)
        .Bind(2, after_us)
        .BindText(3, after_id)
        .Bind(4, query.page_size + 1);
    ListJobsPage page;
    std::vector<int64_t> heads;
    RETURN_IF_ERROR(ForEachRow(list, [&](const Stmt& row) -> absl::Status {
      if (static_cast<int>(page.jobs.size()) == query.page_size) {
        page.has_more = true;
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(v1::Job job, DecodeJob(row));
      page.jobs.push_back(std::move(job));
      heads.push_back(row.ColumnInt(2));
      return absl::OkStatus();
    }));
    for (size_t i = 0; i < page.jobs.size(); ++i) {
      RETURN_IF_ERROR(FillResults(r.result_by_id, heads[i], page.jobs[i]));
    }
    return page;
  });
}

absl::Status SqliteStore::ScanDue(
    absl::FunctionRef<void(const std::string&, int64_t)> fn) {
  return WithReader<bool>([&](Reader& r) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(Stmt scan,
                     Stmt::Prepare(r.db.get(),
                                   "SELECT job_id, next_run_us FROM jobs "
                                   "WHERE next_run_us IS NOT NULL"));
    std::string id;
    RETURN_IF_ERROR(ForEachRow(scan, [&](const Stmt& row) {
      id.assign(row.ColumnText(0));
      fn(id, row.ColumnInt(1));
      return absl::OkStatus();
    }));
    return true;
  }).status();
}

absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>>
SqliteStore::ListOpenResults() {
  using Open = std::vector<std::pair<std::string, v1::JobResult>>;
  return WithReader<Open>([&](Reader& r) -> absl::StatusOr<Open> {
    ASSIGN_OR_RETURN(Stmt scan, Stmt::Prepare(r.db.get(),
                                              "SELECT job_id, result FROM results "
                                              "WHERE status IN (1, 2)"));
    Open open;
    RETURN_IF_ERROR(ForEachRow(scan, [&](const Stmt& row) -> absl::Status {
      ASSIGN_OR_RETURN(v1::JobResult result, DecodeResult(row.ColumnBlob(1)));
      open.emplace_back(std::string(row.ColumnText(0)), std::move(result));
      return absl::OkStatus();
    }));
    return open;
  });
}

absl::StatusOr<std::vector<v1::JobResult>> SqliteStore::ListResults(
    const std::string& owner, const std::string& job_id, int64_t before_run_number,
    int page_size) {
  using Results = std::vector<v1::JobResult>;
  return WithReader<Results>([&](Reader& r) -> absl::StatusOr<Results> {
    // Reading the job first scopes the results to its owner.
    Stmt& get = r.get_job.Reset();
    get.BindText(1, job_id).BindText(2, owner);
    int64_t head = 0;
    RETURN_IF_ERROR(ReadOneJob(get, job_id, head).status());
    Results results;
    if (page_size <= 0) return results;
    // Down the links from the newest; a later page walks past the earlier
    // ones (at most the results kept per job, see PruneResults).
    RETURN_IF_ERROR(WalkResults(r.result_by_id, head, job_id, [&](const v1::JobResult& res) {
      if (before_run_number <= 0 || res.run_number() < before_run_number) {
        results.push_back(res);
      }
      return static_cast<int>(results.size()) < page_size;
    }));
    return results;
  });
}

absl::StatusOr<SqliteStore::PruneCount> SqliteStore::PruneJobInTxn(Writer& w, Stmt& link,
                                                   const std::string& job_id, int keep,
                                                   int64_t ended_before_us) {
  Stmt& find = w.find_head.Reset();
  find.BindText(1, job_id);
  ASSIGN_OR_RETURN(const bool found, find.Step());
  const int64_t job_rowid = found ? find.ColumnInt(0) : 0;
  const int64_t head = found ? find.ColumnInt(1) : 0;
  find.Reset();
  // Down the links, newest first. `kept` is the last result kept (0: the job
  // itself) and `kept_link` where its link points now: when rows after it
  // are dropped, it is linked to the next one kept instead.
  int64_t kept = 0, kept_link = head, dropped = 0;
  int64_t position = 0;
  const auto relink = [&](int64_t to) -> absl::Status {
    Stmt& set = kept == 0 ? w.set_head.Reset().Bind(1, job_rowid)
                          : w.set_prev.Reset().Bind(1, kept);
    if (to != 0) set.Bind(2, to);
    return set.Run();
  };
  for (int64_t id = head; id != 0;) {
    link.Reset().Bind(1, id);
    ASSIGN_OR_RETURN(const bool row, link.Step());
    if (!row || link.ColumnText(1) != job_id) break;
    const int64_t prev = link.ColumnInt(0);
    const bool finished = link.ColumnInt(2) != 0;
    const int64_t end_us = link.ColumnInt(3);
    link.Reset();
    ++position;
    if (finished && (end_us < ended_before_us || position > keep)) {
      RETURN_IF_ERROR(w.delete_result.Reset().Bind(1, id).Run());
      ++dropped;
    } else {
      if (kept_link != id) RETURN_IF_ERROR(relink(id));
      kept = id;
      kept_link = prev;
    }
    id = prev;
  }
  link.Reset();
  // The last one kept pointed at rows now gone.
  if (dropped > 0 && kept_link != 0) RETURN_IF_ERROR(relink(0));
  return PruneCount{position, dropped};
}

absl::StatusOr<int64_t> SqliteStore::PruneResults(int keep_per_job,
                                                  int64_t ended_before_us) {
  // The jobs with results, then their links walked and cut on the writer.
  std::vector<std::string> ids;
  RETURN_IF_ERROR(WithReader<bool>([&](Reader& r) -> absl::StatusOr<bool> {
                    ASSIGN_OR_RETURN(Stmt scan,
                                     Stmt::Prepare(r.db.get(),
                                                   "SELECT job_id FROM jobs WHERE "
                                                   "last_result IS NOT NULL"));
                    RETURN_IF_ERROR(ForEachRow(scan, [&](const Stmt& row) {
                      ids.emplace_back(row.ColumnText(0));
                      return absl::OkStatus();
                    }));
                    return true;
                  }).status());
  // One write at a time, each walking at most about kLinksPerWrite links
  // (a few milliseconds), so a fire never waits long behind a prune.
  constexpr int64_t kLinksPerWrite = 4096;
  int64_t deleted = 0;
  size_t next = 0;
  while (next < ids.size()) {
    struct Step {
      size_t next = 0;
      int64_t deleted = 0;
    };
    auto step = std::make_shared<Step>();
    step->next = next;
    absl::Notification committed;
    absl::Status status;
    Enqueue(WriteOp{
        [&ids, step, keep_per_job, ended_before_us](Writer& w) -> absl::StatusOr<v1::Job> {
          ASSIGN_OR_RETURN(Stmt link,
                           Stmt::Prepare(w.db.get(),
                                         "SELECT prev, job_id, end_us IS NOT NULL, "
                                         "coalesce(end_us, 0) FROM results WHERE id = ?1"));
          int64_t links = 0;
          while (step->next < ids.size() && links < kLinksPerWrite) {
            ASSIGN_OR_RETURN(const PruneCount n,
                             PruneJobInTxn(w, link, ids[step->next], keep_per_job,
                                           ended_before_us));
            step->deleted += n.dropped;
            links += n.visited + 1;
            ++step->next;
          }
          return v1::Job();
        },
        [&](absl::StatusOr<v1::Job> r) {
          status = r.status();
          committed.Notify();
        }});
    committed.WaitForNotification();
    if (!status.ok()) return status;
    deleted += step->deleted;
    next = step->next;
  }
  return deleted;
}

absl::StatusOr<int64_t> SqliteStore::CountLiveJobs(const std::string& owner) {
  return WithReader<int64_t>([&](Reader& r) -> absl::StatusOr<int64_t> {
    ASSIGN_OR_RETURN(Stmt count,
                     Stmt::Prepare(r.db.get(),
                                   "SELECT count(*) FROM jobs WHERE owner = ?1 AND "
                                   "deleted = 0"));
    count.BindText(1, owner);
    ASSIGN_OR_RETURN(bool row, count.Step());
    return row ? count.ColumnInt(0) : 0;
  });
}

}  // namespace timer::store
