// SqliteStore: the embedded, durable Store (the default).
//
// One file, WAL journal, synchronous=FULL: a write's callback runs only after
// its transaction is fsynced. A façade over its parts, each with its own
// contract:
//   - sqlite_schema.h: the file's tables and their versioned migrations
//     (run by Open; a database from a newer timerd is refused);
//   - group_commit_writer.h: writes are queued to one writer thread that
//     applies them in batches, one transaction each, a savepoint per write,
//     and runs their callbacks in commit order on a thread of its own. This
//     turns SQLite's few-thousand-commits-per-second ceiling into tens of
//     thousands of durable writes per second under concurrency, while a
//     lone write still commits at once;
//   - sqlite_wal.h: the WAL is checkpointed off the writer's path and
//     started over before it grows without end;
//   - sqlite_results.h: a job's results, linked newest first.
// Reads use a small pool of separate connections and never wait for the
// writer (WAL readers see the last committed state).
//
// Leases (LeaseStore): the file is locked by one process, so no table: the
// first replica id that asks holds every shard, at epoch 1, until it
// releases them (kept in memory; a restart starts over). Fences are checked
// against that on the writer thread, in the write's transaction.
//
// Thread-safe. Callbacks run as store.h says: one at a time, in commit
// order, on the writer's callback thread; they must not block.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/group_commit_writer.h"
#include "store/lease_store.h"
#include "store/sqlite_wal.h"
#include "store/store.h"

namespace timer::store {

class SqliteStore final : public Store, public LeaseStore {
 public:
  using Store::WriteJobState;
  using Store::WriteManualRun;

  struct Options {
    // Database file; created with its directory's permissions as they are.
    std::string path;
    // Most writes applied in one transaction.
    int max_batch = 1024;
    // Group commit (group_commit_writer.h): a lone write commits at once;
    // under load the writer gathers writes for at most `max_gather` after
    // the previous commit, and stops early when none arrived for
    // `gather_gap` or twice the previous batch is queued.
    absl::Duration max_gather = absl::Milliseconds(2);
    absl::Duration gather_gap = absl::Microseconds(200);
    // Most concurrent read connections.
    int max_readers = 8;
    // Page size of a database this store creates (an existing file keeps
    // its own). Every write rewrites whole pages, and a fire rewrites the
    // page of its job's row, somewhere in the file, so smaller pages mean
    // fewer bytes per fire: see docs/PERFORMANCE-HISTORY.md, "Third round:
    // smaller pages, callbacks off the writer" and "Fifth round".
    int page_size = 2048;
    // WalCheckpointer's (sqlite_wal.h): the WAL is checkpointed every
    // `checkpoint_interval` (InfiniteDuration: by the writer alone, tests)
    // and started over once it holds `wal_restart_frames` frames.
    absl::Duration checkpoint_interval = absl::Milliseconds(50);
    int wal_restart_frames = 32768;
  };

  // The schema version this build writes.
  static int LatestSchemaVersion();

  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(Options options);

  // Closes the store (see Close()).
  ~SqliteStore() override;

  // Finishes every queued write, stops the writer and closes the database.
  // Later writes fail with UNAVAILABLE. Idempotent.
  void Close() override;

  void CreateJob(v1::Job job, std::string request_id, std::string fingerprint,
                 JobCallback done) override;
  absl::StatusOr<v1::Job> GetJob(const std::string& owner,
                                 const std::string& job_id) override;
  absl::StatusOr<ListJobsPage> ListJobs(const ListJobsQuery& query) override;
  void WriteJob(std::string owner, std::string job_id, JobRunMutation mutate,
                JobCallback done) override;
  void WriteJobState(std::string job_id, std::optional<Fence> fence,
                     JobRunMutation mutate, JobCallback done) override;
  void WriteResult(std::string job_id, v1::JobResult result,
                   StatusCallback done) override;
  absl::Status ScanDue(absl::FunctionRef<void(const std::string&, int64_t)> fn) override;
  absl::StatusOr<v1::Job> LoadJob(const std::string& job_id) override;
  absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>> ListOpenResults()
      override;
  absl::StatusOr<std::vector<v1::JobResult>> ListResults(const std::string& owner,
                                                         const std::string& job_id,
                                                         int64_t before_run_number,
                                                         int page_size) override;
  absl::StatusOr<int64_t> PruneResults(int keep_per_job,
                                       int64_t ended_before_us) override;

  void WriteManualRun(std::string owner, std::string job_id, std::string request_id,
                      std::optional<Fence> fence, ManualRunMutation mutate,
                      JobCallback done) override;
  absl::StatusOr<LeaseGrant> RenewLeases(const LeaseRenewal& renewal) override;
  absl::Status ReleaseLeases(const std::string& replica_id) override;
  // One indexed aggregate instead of paging through the jobs (length() of a
  // job reads its row's header, not the whole body).
  absl::StatusOr<OwnerUsage> CountJobs(const std::string& owner) override;
  absl::StatusOr<std::map<int, int64_t>> CountJobsByStatus() override;
  // Each write purges at most kPurgeJobsPerWrite jobs, and stops after the
  // job that took it past kLinksPerWrite result links, so a fire never waits
  // long behind a purge.
  absl::StatusOr<std::vector<PurgedJob>> PurgeDeletedJobs(int64_t deleted_before_us,
                                                          int max_jobs) override;

  // Transactions committed so far (for tests and benchmarks of batching).
  int64_t commits() const;

  // Checkpoints the writer finished so that the WAL could start over (for
  // tests and benchmarks).
  int64_t wal_checkpoints() const;

 private:
  struct Writer;
  struct Reader;

  explicit SqliteStore(Options options);
  absl::Status Init();

  absl::StatusOr<std::unique_ptr<Reader>> AcquireReader();
  void ReleaseReader(std::unique_ptr<Reader> reader);
  // Runs `fn` with a pooled read connection, in one read transaction.
  template <typename T>
  absl::StatusOr<T> WithReader(absl::FunctionRef<absl::StatusOr<T>(Reader&)> fn);

  const Options options_;
  // The writer connection and its statements: used only on the writer
  // thread. Destroyed after wal_ and group_, which use it.
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<WalCheckpointer> wal_;
  std::unique_ptr<GroupCommitWriter> group_;

  mutable absl::Mutex mu_;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;

  // OK if `fence` (if any) holds; else FAILED_PRECONDITION.
  absl::Status CheckFence(const std::optional<Fence>& fence) const
      ABSL_LOCKS_EXCLUDED(lease_mu_);

  mutable absl::Mutex lease_mu_;
  std::string lease_holder_ ABSL_GUARDED_BY(lease_mu_);  // Empty: none.
  int64_t lease_epoch_ ABSL_GUARDED_BY(lease_mu_) = 0;

  absl::Mutex readers_mu_;
  std::vector<std::unique_ptr<Reader>> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
  int open_readers_ ABSL_GUARDED_BY(readers_mu_) = 0;
};

}  // namespace timer::store
