// SqliteStore: the embedded, durable Store (the default).
//
// One file, WAL journal, synchronous=FULL: a write's callback runs only after
// its transaction is fsynced. Writes go through a single writer thread that
// does group commit: every write queued while the previous batch was being
// committed is applied in the next transaction (each in its own savepoint,
// so one failing write never affects another), then the whole batch is
// committed with one fsync and every callback is called. This turns SQLite's
// few-thousand-commits-per-second ceiling into tens of thousands of durable
// writes per second under concurrency, while a lone write still commits at
// once.
//
// Reads use a small pool of separate connections and never wait for the
// writer (WAL readers see the last committed state).
//
// Schema changes are versioned migrations tracked in PRAGMA user_version; a
// database from a newer timerd is refused rather than misread.
//
// Thread-safe. Callbacks run, in commit order, on a thread of their own (so
// the writer goes on to the next transaction meanwhile) and must not block.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/sqlite_util.h"
#include "store/store.h"

namespace timer::store {

class SqliteStore final : public Store {
 public:
  struct Options {
    // Database file; created with its directory's permissions as they are.
    std::string path;
    // Most writes applied in one transaction.
    int max_batch = 1024;
    // Least time between the ends of two commits while writes keep coming
    // (group commit): more writes share each fsync. An idle store commits at
    // once; a full batch (max_batch) does not wait.
    absl::Duration min_commit_interval = absl::Milliseconds(2);
    // Most concurrent read connections.
    int max_readers = 8;
    // Page size of a database this store creates (an existing file keeps
    // its own). Every write rewrites whole pages, and a fire rewrites the
    // page of its job's row, somewhere in the file, so smaller pages mean
    // fewer bytes per fire: see docs/PERFORMANCE-HISTORY.md, "Third round:
    // smaller pages, callbacks off the writer" and "Fifth round".
    int page_size = 2048;
    // The WAL is copied back into the database file (checkpointed) by a
    // thread of its own, every `checkpoint_interval`; InfiniteDuration turns
    // that thread off (tests). SQLite starts a WAL over only when all of it
    // is in the database file, which a checkpoint running beside a busy
    // writer never reaches: so once the WAL holds `wal_restart_frames`
    // frames, the thread runs passes back to back until little is left,
    // the writer copies the rest between two commits (a short pause), and
    // the next commit starts the WAL over instead of growing the file
    // without end.
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
  void Close();

  void CreateJob(v1::Job job, std::string request_id, std::string fingerprint,
                 JobCallback done) override;
  absl::StatusOr<v1::Job> GetJob(const std::string& owner,
                                 const std::string& job_id) override;
  absl::StatusOr<ListJobsPage> ListJobs(const ListJobsQuery& query) override;
  void WriteJob(std::string owner, std::string job_id, JobRunMutation mutate,
                JobCallback done) override;
  void WriteJobState(std::string job_id, JobRunMutation mutate,
                     JobCallback done) override;
  void WriteResult(std::string job_id, v1::JobResult result,
                   StatusCallback done) override;
  absl::Status ScanDue(
      absl::FunctionRef<void(const std::string&, int64_t)> fn) override;
  absl::StatusOr<v1::Job> LoadJob(const std::string& job_id) override;
  absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>>
  ListOpenResults() override;
  absl::StatusOr<std::vector<v1::JobResult>> ListResults(
      const std::string& owner, const std::string& job_id, int64_t before_run_number,
      int page_size) override;
  absl::StatusOr<int64_t> PruneResults(int keep_per_job,
                                       int64_t ended_before_us) override;

  // One indexed COUNT instead of paging through the jobs.
  absl::StatusOr<int64_t> CountLiveJobs(const std::string& owner) override;

  // Transactions committed so far (for tests and benchmarks of batching).
  int64_t commits() const;

  // Checkpoints the writer finished so that the WAL could start over (for
  // tests and benchmarks).
  int64_t wal_checkpoints() const;

 private:
  struct Writer;
  struct Reader;
  struct WriteOp {
    absl::AnyInvocable<absl::StatusOr<v1::Job>(Writer&)> apply;
    JobCallback done;
  };

  explicit SqliteStore(Options options);
  absl::Status Init();
  void Enqueue(WriteOp op);
  void WriterLoop();
  // Applies and commits `batch`, then hands it with its outcomes to the
  // callback thread.
  void RunBatch(std::vector<WriteOp> batch);
  void CallbackLoop();

  absl::StatusOr<std::unique_ptr<Reader>> AcquireReader();
  void ReleaseReader(std::unique_ptr<Reader> reader);

  static absl::StatusOr<v1::Job> CreateInTxn(Writer& w, v1::Job& job,
                                             const std::string& request_id,
                                             const std::string& fingerprint);
  static absl::StatusOr<v1::Job> UpdateInTxn(Writer& w, const std::string& owner,
                                             const std::string& job_id,
                                             JobRunMutation& mutate, bool with_results);
  // Adds or replaces `result` (by run_number) in the job's links. `head` is
  // the job's newest result as read in this transaction, which the caller
  // writes back; nullptr: read and written here.
  static absl::Status PutResultInTxn(Writer& w, const std::string& job_id,
                                     const v1::JobResult& result, int64_t* head);
  // Drops the job's finished results beyond the newest `keep` and those that
  // ended before `ended_before_us`, and links the rest past them.
  struct PruneCount {
    int64_t visited = 0;  // Links walked.
    int64_t dropped = 0;  // Results deleted.
  };
  static absl::StatusOr<PruneCount> PruneJobInTxn(Writer& w, Stmt& link,
                                               const std::string& job_id, int keep,
                                               int64_t ended_before_us);
  // Runs `fn` with a pooled read connection.
  template <typename T>
  absl::StatusOr<T> WithReader(absl::FunctionRef<absl::StatusOr<T>(Reader&)> fn);

  const Options options_;
  std::unique_ptr<Writer> writer_;  // Used only by the writer thread.
  std::thread writer_thread_;
  // Checkpoints the WAL into the database file off the writer's path.
  std::thread checkpoint_thread_;
  void CheckpointLoop();
  // On the writer thread after a commit: see Options::wal_restart_frames.
  void MaybeFinishCheckpoint();
  // Frames in the WAL after the last commit (set by SQLite's WAL hook).
  std::atomic<int> wal_frames_{0};
  // Held by whichever connection is checkpointing: SQLite allows one
  // checkpoint at a time, and the writer must never wait for one.
  absl::Mutex checkpoint_mu_;
  std::atomic<int64_t> wal_checkpoints_{0};
  // Set by the background thread when so little of the WAL is left to copy
  // that the writer can finish the checkpoint without a long pause.
  std::atomic<bool> finish_wanted_{false};
  static constexpr int kFinishFrames = 512;

  // Committed batches whose callbacks are still to run, oldest first.
  struct Committed {
    std::vector<WriteOp> ops;
    std::vector<absl::StatusOr<v1::Job>> results;
  };
  std::thread callback_thread_;
  absl::Mutex callbacks_mu_;
  std::deque<Committed> committed_ ABSL_GUARDED_BY(callbacks_mu_);
  bool writer_done_ ABSL_GUARDED_BY(callbacks_mu_) = false;

  mutable absl::Mutex mu_;
  std::deque<WriteOp> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int64_t commits_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex readers_mu_;
  std::vector<std::unique_ptr<Reader>> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
  int open_readers_ ABSL_GUARDED_BY(readers_mu_) = 0;
};

}  // namespace timer::store
