// JobService: the domain rules for jobs: validation, defaults, ownership,
// soft delete, idempotent create and paging. The only layer that decides
// what a request means; it persists through a Store and reads time from a
// Clock.
//
// Every method is scoped to `caller`: another identity's job is NOT_FOUND.
// Errors name the offending field ("schedule.interval_seconds: must be > 0").
// A request that fails validation writes nothing.
//
// Thread-safe. Write methods call `done` exactly once, possibly on a store
// thread, once the write is durable; `done` must not block.
#pragma once

#include "absl/status/statusor.h"
#include "domain/clock.h"
#include "domain/identity.h"
#include "store/store.h"
#include "timer/v1/timer.pb.h"

namespace timer::domain {

class JobService {
 public:
  // Neither pointer is owned; both must outlive the service.
  JobService(store::Store* store, const Clock* clock)
      : store_(store), clock_(clock) {}

  void CreateJob(const Identity& caller, const v1::CreateJobRequest& request,
                 store::JobCallback done);
  absl::StatusOr<v1::Job> GetJob(const Identity& caller,
                                 const v1::GetJobRequest& request);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const Identity& caller,
                                                const v1::ListJobsRequest& request);
  void DeleteJob(const Identity& caller, const v1::DeleteJobRequest& request,
                 store::JobCallback done);

  // Limits, exposed for tests and documentation.
  static constexpr int kMaxNameLength = 256;
  static constexpr int kMaxLabelLength = 256;
  static constexpr size_t kMaxBodyBytes = 1 << 20;
  static constexpr int64_t kMaxIntervalSeconds = 10LL * 366 * 24 * 3600;
  static constexpr int kDefaultPageSize = 50;
  static constexpr int kMaxPageSize = 1000;
  static constexpr size_t kMaxRequestIdLength = 128;

 private:
  store::Store* const store_;
  const Clock* const clock_;
};

// Checks a job as given to CreateJob. Exposed for tests.
absl::Status ValidateNewJob(const v1::Job& job);

}  // namespace timer::domain
