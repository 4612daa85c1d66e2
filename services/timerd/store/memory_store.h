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
  void UpdateJob(std::string owner, std::string job_id, JobMutation mutate,
                 JobCallback done) override;

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
                                 const std::string& job_id, JobMutation& mutate);

  mutable absl::Mutex mu_;
  std::map<std::string, Row> jobs_ ABSL_GUARDED_BY(mu_);  // by job_id
  // (owner, create_us, job_id) -> present; the listing order.
  std::map<std::tuple<std::string, int64_t, std::string>, bool> order_
      ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, Request> requests_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace timer::store
