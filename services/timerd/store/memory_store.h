// MemoryStore: an in-memory Store for tests (a fake, not a mock).
//
// The Store contract minus durability. A write is applied under the store's
// lock, which also fixes its place in commit order; its callback then runs
// on the calling thread before the write method returns, unless another
// thread is running callbacks at that moment (or this one is: a write made
// from a callback), in which case that thread runs it, in order, after the
// ones before it. Without concurrent or nested writes, callbacks are thus
// synchronous.
//
// Also a LeaseStore, shared by every replica a test makes on it: expiry is
// judged on the clock given at construction (absl::Now by default), so a
// fake clock expires leases. Thread-safe.
#pragma once

#include <array>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "store/lease_store.h"
#include "store/store.h"

namespace timer::store {

class MemoryStore final : public Store, public LeaseStore, public RelayStore {
 public:
  // `now`: the store's clock, for leases and fences.
  explicit MemoryStore(std::function<absl::Time()> now = [] { return absl::Now(); })
      : now_(std::move(now)) {}

  using Store::WriteJobState;
  using Store::WriteManualRun;
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
  absl::StatusOr<std::map<int, int64_t>> CountJobsByStatus() override;
  absl::StatusOr<std::vector<PurgedJob>> PurgeDeletedJobs(int64_t deleted_before_us,
                                                          int max_jobs) override;

  // LeaseStore.
  absl::StatusOr<LeaseGrant> RenewLeases(const LeaseRenewal& renewal) override;
  absl::Status ReleaseLeases(const std::string& replica_id) override;

  // RelayStore.
  absl::Status AddRelayedRun(const RelayedRun& request, absl::Duration ttl) override;
  absl::StatusOr<std::vector<RelayedRun>> ClaimRelayedRuns(const std::string& replica_id,
                                                           int limit) override;
  absl::Status FinishRelayedRun(const std::string& id,
                                const absl::Status& outcome) override;
  absl::StatusOr<std::vector<RelayedRunOutcome>> RelayedRunOutcomes(
      const std::vector<std::string>& ids) override;
  absl::StatusOr<int64_t> PruneRelayedRuns(absl::Duration keep) override;

  // Number of jobs stored, deleted ones included.
  size_t size() const;

 private:
  struct Row {
    v1::Job job;  // etag holds the version.
    int64_t version = 0;
  };
  struct Request {
    std::string fingerprint;
    std::string job_id;
  };
  absl::StatusOr<v1::Job> Create(v1::Job job, const std::string& request_id,
                                 const std::string& fingerprint)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the callback of a write just applied, in commit order: called
  // under mu_, so the order of callbacks_ is the order of writes.
  void Applied(absl::AnyInvocable<void() &&> callback) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs queued callbacks until none is left, unless another thread is
  // already doing so. Called without mu_.
  void RunCallbacks() ABSL_LOCKS_EXCLUDED(mu_, callbacks_mu_);
  // `owner` nullopt: any owner's job.
  absl::StatusOr<v1::Job> Update(const std::optional<std::string>& owner,
                                 const std::string& job_id, JobRunMutation& mutate,
                                 bool with_results) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A copy of a stored job with its newest results and last_run filled in.
  v1::Job Filled(const v1::Job& stored) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // OK if `fence` (if any) holds now; else FAILED_PRECONDITION.
  absl::Status CheckFence(const std::optional<Fence>& fence) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<absl::Time()> now_;
  mutable absl::Mutex mu_;
  struct Lease {
    std::string holder;  // Empty: never taken, or released.
    int64_t epoch = 0;
    absl::Time expires = absl::InfinitePast();
  };
  std::array<Lease, kShards> leases_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> heartbeats_ ABSL_GUARDED_BY(mu_);  // by replica
  struct Relayed {
    RelayedRun run;
    int64_t seq = 0;  // Claims take the oldest first.
    absl::Time expires;
    std::string claimed_by;
    std::optional<absl::Status> outcome;
  };
  std::map<std::string, Relayed> relayed_ ABSL_GUARDED_BY(mu_);  // by id
  int64_t relayed_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Row> jobs_ ABSL_GUARDED_BY(mu_);  // by job_id
  // (owner, create_us, job_id) -> present; the listing order.
  std::map<std::tuple<std::string, int64_t, std::string>, bool> order_
      ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, Request> requests_ ABSL_GUARDED_BY(mu_);
  // (job_id, request_id) -> the manual run it recorded, and when.
  struct RunRequest {
    int64_t run_number = 0;
    int64_t create_us = 0;
  };
  std::map<std::pair<std::string, std::string>, RunRequest> run_requests_
      ABSL_GUARDED_BY(mu_);
  // (job_id, run_number) -> result.
  std::map<std::pair<std::string, int64_t>, v1::JobResult> results_ ABSL_GUARDED_BY(mu_);

  // Acquired after mu_, never before.
  absl::Mutex callbacks_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::deque<absl::AnyInvocable<void() &&>> callbacks_ ABSL_GUARDED_BY(callbacks_mu_);
  bool running_callbacks_ ABSL_GUARDED_BY(callbacks_mu_) = false;
};

}  // namespace timer::store
