// JobQuota: the most live (not deleted) jobs one identity may have.
//
// Counts are kept in memory per owner: the first create of an owner in this
// process counts its jobs in the store once, then creates and deletes keep
// the count. Reserve() counts creates still being committed too, so
// concurrent creates by one owner cannot overshoot. Only JobService creates
// and deletes jobs, so the counts stay exact while timerd runs.
//
// Thread-safe. The store must outlive the quota.
#pragma once

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "store/store.h"

namespace timer::domain {

class JobQuota {
 public:
  JobQuota(store::Store* store, int64_t max_jobs_per_owner)
      : store_(store), max_(max_jobs_per_owner) {}

  int64_t max_jobs_per_owner() const { return max_; }

  // Holds room for one more job of `owner` until Release(). RESOURCE_EXHAUSTED
  // naming the limit when the owner has no room left.
  absl::Status Reserve(const std::string& owner);
  // Ends a reservation; `created` says whether a new job was written.
  void Release(const std::string& owner, bool created);
  // A job of `owner` was deleted.
  void Deleted(const std::string& owner);

 private:
  struct Count {
    int64_t live = 0;
    int64_t pending = 0;
  };
  store::Store* const store_;
  const int64_t max_;
  absl::Mutex mu_;
  // Owners whose first count is under way: how many counts, and how many of
  // the owner's deletes arrived meanwhile.
  struct Counting {
    int counts = 0;
    int64_t deletes = 0;
  };
  absl::flat_hash_map<std::string, Count> counts_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Counting> counting_ ABSL_GUARDED_BY(mu_);
};

}  // namespace timer::domain
