#include "store/sqlite_store.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "store/sqlite_jobs.h"
#include "store/sqlite_results.h"
#include "store/sqlite_schema.h"
#include "util/status_macros.h"

namespace timer::store {
using sqlite_jobs::ForEachRow;
using sqlite_jobs::ReadOneJob;
using sqlite_results::FillResults;

// The writer connection, its prepared statements, and the transaction the
// group-commit writer drives through it. Used only on the writer thread.
struct SqliteStore::Writer final : GroupCommitWriter::Transaction {
  Db db;
  sqlite_jobs::JobRows jobs;
  sqlite_results::ResultLinks links;
  // Prepared once: a write's savepoint costs no SQL parsing.
  Stmt savepoint, release, rollback_to;
  WalCheckpointer* wal = nullptr;  // Set once it is started.

  absl::Status Prepare() {
    RETURN_IF_ERROR(links.Prepare(db));
    RETURN_IF_ERROR(jobs.Prepare(db, links));
    ASSIGN_OR_RETURN(savepoint, Stmt::Prepare(db.get(), "SAVEPOINT w"));
    ASSIGN_OR_RETURN(release, Stmt::Prepare(db.get(), "RELEASE w"));
    ASSIGN_OR_RETURN(rollback_to, Stmt::Prepare(db.get(), "ROLLBACK TO w"));
    return absl::OkStatus();
  }

  absl::Status Begin() override { return db.Exec("BEGIN IMMEDIATE"); }
  absl::Status Savepoint() override { return savepoint.Reset().Run(); }
  void RollbackToSavepoint() override { rollback_to.Reset().Run().IgnoreError(); }
  void ReleaseSavepoint() override { release.Reset().Run().IgnoreError(); }
  absl::Status Commit() override { return db.Exec("COMMIT"); }
  void Rollback() override { db.Exec("ROLLBACK").IgnoreError(); }
  void AfterBatch() override {
    if (wal != nullptr) wal->AfterCommit();
  }
};

// One read connection and its prepared statements.
struct SqliteStore::Reader {
  Db db;
  Stmt get_job, load_job, list_live, list_all, result_by_id;
  // Each use of a reader is one read transaction: a job and its results'
  // links are read from the same snapshot.
  Stmt begin, commit;
};

int SqliteStore::LatestSchemaVersion() { return sqlite_schema::LatestVersion(); }

SqliteStore::SqliteStore(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(Options options) {
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(options)));
  RETURN_IF_ERROR(store->Init());
  return store;
}

absl::Status SqliteStore::Init() {
  auto w = std::make_unique<Writer>();
  ASSIGN_OR_RETURN(w->db, Db::Open(options_.path));
  // Only takes effect on a new, empty file; must precede the switch to WAL.
  RETURN_IF_ERROR(
      w->db.Exec(absl::StrCat("PRAGMA page_size = ", options_.page_size, ";").c_str()));
  RETURN_IF_ERROR(sqlite_schema::Configure(w->db));
  RETURN_IF_ERROR(sqlite_schema::Migrate(w->db, options_.path));
  RETURN_IF_ERROR(w->Prepare());
  ASSIGN_OR_RETURN(wal_, WalCheckpointer::Start(
                             w->db, {.path = options_.path,
                                     .interval = options_.checkpoint_interval,
                                     .restart_frames = options_.wal_restart_frames}));
  w->wal = wal_.get();
  writer_ = std::move(w);
  group_ = std::make_unique<GroupCommitWriter>(writer_.get(),
                                               GroupCommitWriter::Options{
                                                   .max_batch = options_.max_batch,
                                                   .max_gather = options_.max_gather,
                                                   .gather_gap = options_.gather_gap,
                                               });
  return absl::OkStatus();
}

SqliteStore::~SqliteStore() {
  Close();
  group_.reset();
  wal_.reset();
}

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
  if (group_ != nullptr) group_->Close();
  if (wal_ != nullptr) wal_->Stop();
  {
    absl::MutexLock lock(&readers_mu_);
    open_readers_ -= static_cast<int>(idle_readers_.size());
    idle_readers_.clear();
  }
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

int64_t SqliteStore::commits() const { return group_->commits(); }

int64_t SqliteStore::wal_checkpoints() const { return wal_->checkpoints(); }

void SqliteStore::CreateJob(v1::Job job, std::string request_id, std::string fingerprint,
                            JobCallback done) {
  group_->Submit<v1::Job>(
      [w = writer_.get(), job = std::move(job), request_id = std::move(request_id),
       fingerprint = std::move(fingerprint)]() mutable {
        return w->jobs.Create(job, request_id, fingerprint);
      },
      std::move(done));
}

void SqliteStore::WriteJob(std::string owner, std::string job_id, JobRunMutation mutate,
                           JobCallback done) {
  group_->Submit<v1::Job>(
      [w = writer_.get(), owner = std::optional<std::string>(std::move(owner)),
       job_id = std::move(job_id), mutate = std::move(mutate)]() mutable {
        return w->jobs.Update(owner, job_id, mutate, /*with_results=*/true);
      },
      std::move(done));
}

void SqliteStore::WriteJobState(std::string job_id, std::optional<Fence> fence,
                                JobRunMutation mutate, JobCallback done) {
  group_->Submit<v1::Job>(
      [this, w = writer_.get(), job_id = std::move(job_id), fence = std::move(fence),
       mutate = std::move(mutate)]() mutable -> absl::StatusOr<v1::Job> {
        RETURN_IF_ERROR(CheckFence(fence));
        return w->jobs.Update(std::nullopt, job_id, mutate, /*with_results=*/false);
      },
      std::move(done));
}

absl::Status SqliteStore::CheckFence(const std::optional<Fence>& fence) const {
  if (!fence) return absl::OkStatus();
  absl::MutexLock lock(&lease_mu_);
  if (fence->shard < 0 || fence->shard >= kShards) {
    return absl::InvalidArgumentError(absl::StrCat("fence: no shard ", fence->shard));
  }
  if (lease_holder_.empty() || fence->holder != lease_holder_ ||
      fence->epoch != lease_epoch_) {
    return absl::FailedPreconditionError(
        absl::StrCat("fence: this replica no longer holds shard ", fence->shard,
                     " at epoch ", fence->epoch));
  }
  return absl::OkStatus();
}

absl::StatusOr<LeaseGrant> SqliteStore::RenewLeases(const LeaseRenewal& renewal) {
  absl::MutexLock lock(&lease_mu_);
  if (lease_holder_.empty()) {
    lease_holder_ = renewal.replica_id;
    ++lease_epoch_;
  }
  LeaseGrant grant;
  grant.live_replicas = 1;
  grant.fair_share = kShards;
  if (lease_holder_ == renewal.replica_id) {
    for (int shard = 0; shard < kShards; ++shard) {
      grant.held.push_back(HeldShard{shard, lease_epoch_});
    }
  }
  return grant;
}

absl::Status SqliteStore::ReleaseLeases(const std::string& replica_id) {
  absl::MutexLock lock(&lease_mu_);
  if (lease_holder_ == replica_id) lease_holder_.clear();
  return absl::OkStatus();
}

void SqliteStore::WriteResult(std::string job_id, v1::JobResult result,
                              StatusCallback done) {
  group_->Submit(
      [w = writer_.get(), job_id = std::move(job_id), result = std::move(result)] {
        return w->links.Put(job_id, result, /*head=*/nullptr);
      },
      std::move(done));
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
          return !s->idle_readers_.empty() || s->open_readers_ < s->options_.max_readers;
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
    RETURN_IF_ERROR(
        r->db.Exec("PRAGMA busy_timeout = 5000; PRAGMA query_only = 1; "
                   "PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;"));
    sqlite3* raw = r->db.get();
    ASSIGN_OR_RETURN(r->get_job, Stmt::Prepare(raw, sqlite_jobs::kGetJob));
    ASSIGN_OR_RETURN(r->list_live, Stmt::Prepare(raw, sqlite_jobs::kListLive));
    ASSIGN_OR_RETURN(r->list_all, Stmt::Prepare(raw, sqlite_jobs::kListAll));
    ASSIGN_OR_RETURN(r->load_job, Stmt::Prepare(raw, sqlite_jobs::kLoadJob));
    ASSIGN_OR_RETURN(r->result_by_id, Stmt::Prepare(raw, sqlite_results::kResultById));
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
      ASSIGN_OR_RETURN(v1::Job job, sqlite_jobs::DecodeJob(row));
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
         })
      .status();
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
      ASSIGN_OR_RETURN(v1::JobResult result,
                       sqlite_results::DecodeResult(row.ColumnBlob(1)));
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
    RETURN_IF_ERROR(sqlite_results::WalkResults(
        r.result_by_id, head, job_id, [&](const v1::JobResult& res) {
          if (before_run_number <= 0 || res.run_number() < before_run_number) {
            results.push_back(res);
          }
          return static_cast<int>(results.size()) < page_size;
        }));
    return results;
  });
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
    absl::Notification committed;
    absl::StatusOr<Step> outcome;
    group_->Submit<Step>(
        [w = writer_.get(), &ids, next, keep_per_job,
         ended_before_us]() -> absl::StatusOr<Step> {
          Step step{next, 0};
          int64_t links = 0;
          while (step.next < ids.size() && links < kLinksPerWrite) {
            ASSIGN_OR_RETURN(
                const sqlite_results::ResultLinks::PruneCount n,
                w->links.Prune(ids[step.next], keep_per_job, ended_before_us));
            step.deleted += n.dropped;
            links += n.visited + 1;
            ++step.next;
          }
          return step;
        },
        [&](absl::StatusOr<Step> r) {
          outcome = std::move(r);
          committed.Notify();
        });
    committed.WaitForNotification();
    if (!outcome.ok()) return outcome.status();
    deleted += outcome->deleted;
    next = outcome->next;
  }
  // Manual-run request ids as old as the results dropped by age, a bounded
  // batch per write.
  for (;;) {
    constexpr int kRequestsPerWrite = 4096;
    absl::Notification committed;
    absl::StatusOr<int64_t> dropped;
    group_->Submit<int64_t>(
        [w = writer_.get(), ended_before_us] {
          return w->jobs.PruneRunRequests(ended_before_us, kRequestsPerWrite);
        },
        [&](absl::StatusOr<int64_t> r) {
          dropped = std::move(r);
          committed.Notify();
        });
    committed.WaitForNotification();
    if (!dropped.ok()) return dropped.status();
    if (*dropped < kRequestsPerWrite) break;
  }
  return deleted;
}

absl::StatusOr<OwnerUsage> SqliteStore::CountJobs(const std::string& owner) {
  return WithReader<OwnerUsage>([&](Reader& r) -> absl::StatusOr<OwnerUsage> {
    ASSIGN_OR_RETURN(Stmt count,
                     Stmt::Prepare(r.db.get(),
                                   "SELECT coalesce(sum(deleted = 0), 0), count(*), "
                                   "coalesce(sum(length(job)), 0) FROM jobs "
                                   "WHERE owner = ?1"));
    count.BindText(1, owner);
    ASSIGN_OR_RETURN(bool row, count.Step());
    OwnerUsage usage;
    if (row) {
      usage.live_jobs = count.ColumnInt(0);
      usage.stored_jobs = count.ColumnInt(1);
      usage.stored_bytes = count.ColumnInt(2);
    }
    return usage;
  });
}

absl::StatusOr<std::map<int, int64_t>> SqliteStore::CountJobsByStatus() {
  return WithReader<std::map<int, int64_t>>(
      [&](Reader& r) -> absl::StatusOr<std::map<int, int64_t>> {
        ASSIGN_OR_RETURN(
            Stmt count,
            Stmt::Prepare(r.db.get(),
                          "SELECT status, count(*) FROM jobs GROUP BY status"));
        std::map<int, int64_t> out;
        for (;;) {
          ASSIGN_OR_RETURN(bool row, count.Step());
          if (!row) return out;
          out[static_cast<int>(count.ColumnInt(0))] = count.ColumnInt(1);
        }
      });
}

void SqliteStore::WriteManualRun(std::string owner, std::string job_id,
                                 std::string request_id, std::optional<Fence> fence,
                                 ManualRunMutation mutate, JobCallback done) {
  group_->Submit<v1::Job>(
      [this, w = writer_.get(), owner = std::move(owner), job_id = std::move(job_id),
       request_id = std::move(request_id), fence = std::move(fence),
       mutate = std::move(mutate)]() mutable -> absl::StatusOr<v1::Job> {
        RETURN_IF_ERROR(CheckFence(fence));
        return w->jobs.UpdateManualRun(owner, job_id, request_id, mutate);
      },
      std::move(done));
}

namespace {
constexpr int kPurgeJobsPerWrite = 64;
constexpr int64_t kLinksPerWrite = 4096;
}  // namespace

absl::StatusOr<std::vector<PurgedJob>> SqliteStore::PurgeDeletedJobs(
    int64_t deleted_before_us, int max_jobs) {
  std::vector<PurgedJob> purged;
  for (;;) {
    const int want =
        std::min(kPurgeJobsPerWrite, max_jobs - static_cast<int>(purged.size()));
    if (want <= 0) return purged;
    struct Step {
      std::vector<PurgedJob> purged;
      bool more = false;  // Deleted jobs were left for the next write.
    };
    absl::Notification committed;
    absl::StatusOr<Step> outcome;
    group_->Submit<Step>(
        [w = writer_.get(), deleted_before_us, want]() -> absl::StatusOr<Step> {
          Step step;
          ASSIGN_OR_RETURN(std::vector<sqlite_jobs::JobRows::Deleted> due,
                           w->jobs.DeletedBefore(deleted_before_us, want));
          step.more = static_cast<int>(due.size()) == want;
          int64_t links = 0;
          for (const sqlite_jobs::JobRows::Deleted& d : due) {
            if (links >= kLinksPerWrite) {
              step.more = true;
              break;
            }
            ASSIGN_OR_RETURN(std::optional<PurgedJob> p, w->jobs.Purge(d, links));
            if (p) step.purged.push_back(*std::move(p));
          }
          return step;
        },
        [&](absl::StatusOr<Step> r) {
          outcome = std::move(r);
          committed.Notify();
        });
    committed.WaitForNotification();
    if (!outcome.ok()) return outcome.status();
    for (PurgedJob& p : outcome->purged) purged.push_back(std::move(p));
    if (!outcome->more) return purged;
  }
}

}  // namespace timer::store
