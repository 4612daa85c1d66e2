// PostgresStore: the Store in a PostgreSQL database, which several timerd
// replicas may share (store = "postgres://..." in the config).
//
// Its parts:
//   - pg_conn.h: libpq connections with bounded connects and statements,
//     re-established after PostgreSQL restarts, and a bounded reader pool;
//   - pg_schema.h: the tables and their versioned migrations, run by Open
//     under an advisory lock (a database from a newer timerd is refused);
//   - group_commit_writer.h: writes are queued to one writer connection and
//     applied in batches, one transaction each, callbacks in commit order
//     (synchronous_commit on: a callback's OK means committed and flushed).
//
// Creates and the run engine's writes (WriteJobState, WriteResult) are
// deferred within a batch and applied together in multi-row statements over
// unnest() of binary arrays (PgArray): per batch, one statement for the
// fences, one reading the jobs, one writing them, one or two for results,
// whatever its size (the per-write statements cost a round trip and a
// statement each). A group holds one write per job; any other write
// flushes the group first, so writes apply in submission order. A fire's
// job is read without a lock and written only if still at the version read
// (else ABORTED: changed meanwhile through another replica), which spares a
// row lock per fire.
//
// A batch's writes share one transaction without savepoints (a savepoint
// per write would be a subtransaction each, which PostgreSQL handles badly
// past 64 in one transaction): every write checks what could make it fail
// (a missing job, a conflicting request id, its mutation's error) before it
// changes anything, so a refused write leaves nothing to undo and the others
// of its batch commit. A write that fails after changing something (only an
// SQL error: a lost connection, a statement timeout) fails its whole batch
// with UNAVAILABLE; nothing of it is applied. So does a COMMIT whose outcome
// is unknown (the connection lost during COMMIT): never reported OK.
//
// While PostgreSQL is unreachable every read and write fails fast with
// UNAVAILABLE (a refused connection at once; an unanswered one within
// `timeout`); the next call after it is back reconnects.
//
// Replicas: the store is its own LeaseStore (store/lease_store.h): shard
// leases live in the `shard_leases` table, expire on PostgreSQL's clock
// (clock_timestamp()), and a write's Fence is checked in its transaction
// with a FOR KEY SHARE lock on the lease row, so a takeover (which takes
// rows FOR UPDATE SKIP LOCKED) cannot commit between the check and the
// write's commit, while the holder's own renewal is not held up by it. Sessions end a
// transaction left idle for lease_idle_timeout, so a stalled replica cannot keep a lease
// row locked.
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
#include "store/pg_conn.h"
#include "store/store.h"

namespace timer::store {

class PostgresStore final : public Store, public LeaseStore, public RelayStore {
 public:
  struct Options {
    // postgres://USER@HOST:PORT/DB?sslmode=... (libpq's URI; its
    // parameters, sslmode included, pass through).
    std::string uri;
    // Most concurrent read connections (the writers have their own).
    int readers = 4;
    // Writer connections, each with its own group commit: a job's writes
    // all go to one (chosen by its id; a create by its owner, so one
    // owner's creates and their job limits are counted on one), so they
    // take effect in order, and writes to different jobs commit side by
    // side. Writes not of one job (pruning, purging) go to the first.
    int writers = 1;
    // Bounds a connect, each statement and a wait for a free reader.
    absl::Duration timeout = absl::Seconds(5);
    // After a failed connect, calls fail at once for this long.
    absl::Duration retry_after = absl::Milliseconds(200);
    // Per-owner bounds on jobs, live and kept (max_jobs_per_identity and
    // max_stored_jobs_per_identity; 0: none), checked by a create in its
    // own transaction: replicas each count only what they write, so the
    // bound on what an owner keeps in total is the database's. A create
    // over one fails RESOURCE_EXHAUSTED naming it.
    int64_t max_live_jobs_per_owner = 0;
    int64_t max_stored_jobs_per_owner = 0;
    // Group commit, as SqliteStore::Options.
    int max_batch = 1024;
    absl::Duration max_gather = absl::Milliseconds(2);
    absl::Duration gather_gap = absl::Microseconds(200);
  };

  // The schema version this build writes.
  static int LatestSchemaVersion();

  // Connects, migrates the schema, and starts the writer. UNAVAILABLE if
  // PostgreSQL cannot be reached; FAILED_PRECONDITION for a newer schema.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(Options options);

  ~PostgresStore() override;

  void Close() override;

  void CreateJob(v1::Job job, std::string request_id, std::string fingerprint,
                 JobCallback done) override;
  absl::StatusOr<v1::Job> GetJob(const std::string& owner,
                                 const std::string& job_id) override;
  absl::StatusOr<ListJobsPage> ListJobs(const ListJobsQuery& query) override;
  void WriteJob(std::string owner, std::string job_id, JobRunMutation mutate,
                JobCallback done) override;
  using Store::WriteJobState;
  using Store::WriteManualRun;
  void WriteJobState(std::string job_id, std::optional<Fence> fence,
                     JobRunMutation mutate, JobCallback done) override;
  void WriteResult(std::string job_id, v1::JobResult result,
                   StatusCallback done) override;
  absl::Status ScanDue(absl::FunctionRef<void(const std::string&, int64_t)> fn) override;
  // By the shard column: the rows of the shard index, shard by shard.
  absl::Status ScanDueInShards(
      const ShardSet& shards,
      absl::FunctionRef<void(const std::string&, int64_t)> fn) override;
  absl::StatusOr<v1::Job> LoadJob(const std::string& job_id) override;
  // In one statement per 1,000 ids.
  absl::StatusOr<std::vector<v1::Job>> LoadJobs(
      const std::vector<std::string>& job_ids) override;
  absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>> ListOpenResults()
      override;
  // The open results (a partial index) joined to their jobs' shard.
  absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>>
  ListOpenResultsInShards(const ShardSet& shards) override;
  absl::StatusOr<std::vector<v1::JobResult>> ListResults(const std::string& owner,
                                                         const std::string& job_id,
                                                         int64_t before_run_number,
                                                         int page_size) override;
  // Each write prunes the results of at most kPruneJobsPerWrite jobs.
  absl::StatusOr<int64_t> PruneResults(int keep_per_job,
                                       int64_t ended_before_us) override;
  void WriteManualRun(std::string owner, std::string job_id, std::string request_id,
                      std::optional<Fence> fence, ManualRunMutation mutate,
                      JobCallback done) override;
  LeaseStore* shared_leases() override { return this; }

  // LeaseStore.
  absl::StatusOr<LeaseGrant> RenewLeases(const LeaseRenewal& renewal) override;
  absl::Status ReleaseLeases(const std::string& replica_id) override;
  // RelayStore (pg_relay.cc).
  RelayStore* shared_relay() override { return this; }
  absl::Status AddRelayedRun(const RelayedRun& request, absl::Duration ttl) override;
  absl::StatusOr<std::vector<RelayedRun>> ClaimRelayedRuns(const std::string& replica_id,
                                                           int limit) override;
  absl::Status FinishRelayedRun(const std::string& id,
                                const absl::Status& outcome) override;
  absl::StatusOr<std::vector<RelayedRunOutcome>> RelayedRunOutcomes(
      const std::vector<std::string>& ids) override;
  absl::StatusOr<int64_t> PruneRelayedRuns(absl::Duration keep) override;
  absl::StatusOr<OwnerUsage> CountJobs(const std::string& owner) override;
  absl::StatusOr<std::map<int, int64_t>> CountJobsByStatus() override;
  // Each write purges at most 64 jobs.
  absl::StatusOr<std::vector<PurgedJob>> PurgeDeletedJobs(int64_t deleted_before_us,
                                                          int max_jobs) override;

  // Transactions committed so far (for tests and benchmarks of batching).
  int64_t commits() const;

 private:
  struct Writer;

  explicit PostgresStore(Options options);
  absl::Status Init();
  // Runs `fn` on a pooled reader; UNAVAILABLE once closing.
  absl::Status Read(absl::FunctionRef<absl::Status(PgConn&)> fn, bool retry = true);
  // ScanDue of every job (`shards` null) or of `shards`' jobs, in one snapshot.
  absl::Status ScanDueIn(const ShardSet* shards,
                         absl::FunctionRef<void(const std::string&, int64_t)> fn);
  // The open results `stmt` selects (job_id, result), on a reader.
  absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>> OpenResults(
      const PgStatement& stmt, const std::vector<PgParam>& params);
  struct Lane;
  // The lane that writes `key`'s rows (a job id; an owner for creates).
  Lane& LaneOf(std::string_view key);
  // Submits `apply` to the first lane and waits for its commit.
  template <typename T>
  absl::StatusOr<T> WriteSync(absl::AnyInvocable<absl::StatusOr<T>(Writer*)> apply);

  const Options options_;
  PgConnector connector_;
  PgPool readers_;
  std::vector<Lane> lanes_;

  mutable absl::Mutex mu_;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace timer::store
