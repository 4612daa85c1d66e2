#include "domain/job_quota.h"

#include "absl/strings/str_cat.h"

namespace timer::domain {

absl::Status JobQuota::Reserve(const std::string& owner) {
  bool known;
  {
    absl::MutexLock lock(&mu_);
    known = counts_.contains(owner);
  }
  if (!known) {
    // Counted outside the lock; a concurrent first count of the same owner
    // reads the same committed state, and only one of them is kept.
    absl::StatusOr<int64_t> live = store_->CountLiveJobs(owner);
    if (!live.ok()) return live.status();
    absl::MutexLock lock(&mu_);
    counts_.try_emplace(owner, Count{*live, 0});
  }
  absl::MutexLock lock(&mu_);
  Count& c = counts_[owner];
  if (c.live + c.pending >= max_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_jobs_per_identity: ", owner, " already has ", c.live,
        " jobs, the most allowed is ", max_, "; delete some first"));
  }
  ++c.pending;
  return absl::OkStatus();
}

void JobQuota::Release(const std::string& owner, bool created) {
  absl::MutexLock lock(&mu_);
  Count& c = counts_[owner];
  --c.pending;
  if (created) ++c.live;
}

void JobQuota::Deleted(const std::string& owner) {
  absl::MutexLock lock(&mu_);
  auto it = counts_.find(owner);
  if (it != counts_.end() && it->second.live > 0) --it->second.live;
}

}  // namespace timer::domain
