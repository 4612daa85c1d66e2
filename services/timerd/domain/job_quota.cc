#include "domain/job_quota.h"

#include "absl/strings/str_cat.h"

namespace timer::domain {

absl::Status JobQuota::Reserve(const std::string& owner) {
  mu_.Lock();
  while (!counts_.contains(owner)) {
    // The first count of an owner reads the store outside the lock. A delete
    // of that owner committed meanwhile may or may not be in what it read, so
    // a count that saw a delete arrive is not kept: it counts again (only the
    // owner's own deletes can cause that, and they end with its jobs).
    Counting& counting = counting_[owner];
    ++counting.counts;
    const int64_t deletes_before = counting.deletes;
    mu_.Unlock();
    absl::StatusOr<int64_t> live = store_->CountLiveJobs(owner);
    mu_.Lock();
    auto it = counting_.find(owner);
    const bool raced = it->second.deletes != deletes_before;
    if (--it->second.counts == 0) counting_.erase(it);
    if (!live.ok()) {
      mu_.Unlock();
      return live.status();
    }
    // Concurrent first counts of one owner read the same committed state:
    // whichever lands first is kept.
    if (!raced) counts_.try_emplace(owner, Count{*live, 0});
  }
  Count& c = counts_[owner];
  if (c.live + c.pending >= max_) {
    const int64_t live = c.live;
    mu_.Unlock();
    return absl::ResourceExhaustedError(
        absl::StrCat("max_jobs_per_identity: ", owner, " already has ", live,
                     " jobs, the most allowed is ", max_, "; delete some first"));
  }
  ++c.pending;
  mu_.Unlock();
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
  if (it != counts_.end()) {
    if (it->second.live > 0) --it->second.live;
    return;
  }
  // Not counted yet: a count under way must not be kept (see Reserve).
  auto counting = counting_.find(owner);
  if (counting != counting_.end()) ++counting->second.deletes;
}

}  // namespace timer::domain
