// MemoryStore: an in-memory Store for tests (a fake, not a mock).
//
// Same contract as SqliteStore minus durability: callbacks run synchronously
// on the calling thread, before the write method returns. Thread-safe.
#pragma once

#include <map>
#include <string>
#include <tuple>

#include "absl/synchronization/mutex.h"
#include "store/store.h"

namespace timer::store {

class MemoryStore final : public Store {
 public:
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
                                 const std::string& fingerprint);
  absl::StatusOr<v1::Job> Update(const std::string& owner,
                                 const std::string& job_id, JobRunMutation& mutate,
                                 bool with_results);
  // A copy of a stored job with its newest results and last_run filled in.
  v1::Job Filled(const v1::Job& stored) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Row> jobs_ ABSL_GUARDED_BY(mu_);  // by job_id
  // (owner, create_us, job_id) -> present; the listing order.
  std::map<std::tuple<std::string, int64_t, std::string>, bool> order_
      ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, Request> requests_
      ABSL_GUARDED_BY(mu_);
  // (job_id, run_number) -> result.
  std::map<std::pair<std::string, int64_t>, v1::JobResult> results_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace timer::store
