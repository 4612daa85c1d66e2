#include "domain/job_quota.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace timer::domain {

absl::Status RateLimiter::Take(const std::string& key) {
  if (rate_ <= 0) return absl::OkStatus();
  const absl::Time now = clock_->Now();
  const double burst = static_cast<double>(std::max<int64_t>(1, burst_));
  absl::MutexLock lock(&mu_);
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst, now});
  Bucket& b = it->second;
  if (!fresh && now > b.at) {
    b.tokens = std::min(burst, b.tokens + absl::ToDoubleSeconds(now - b.at) * rate_);
    b.at = now;
  }
  if (b.tokens < 1) {
    const double wait = (1 - b.tokens) / rate_;
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s: %s made more than %g calls a second (%s %d at once); retry in %.3g s", name_,
        key, rate_, burst_name_, static_cast<int64_t>(burst), wait));
  }
  b.tokens -= 1;
  // A bucket that has refilled is the same as none: forget idle keys, in one
  // sweep each time the map has doubled.
  if (buckets_.size() >= sweep_at_) {
    for (auto e = buckets_.begin(); e != buckets_.end();) {
      const Bucket& old = e->second;
      if (old.tokens + absl::ToDoubleSeconds(now - old.at) * rate_ >= burst) {
        buckets_.erase(e++);
      } else {
        ++e;
      }
    }
    sweep_at_ = std::max<size_t>(kFirstSweep, 2 * buckets_.size());
  }
  return absl::OkStatus();
}

JobQuota::JobQuota(store::Store* store, const Clock* clock, Limits limits)
    : store_(store),
      limits_(limits),
      writes_(clock, "write_rate_per_identity", "write_burst_per_identity",
              limits.write_rate, limits.write_burst),
      run_now_(clock, "run_now_rate_per_identity", "run_now_burst_per_identity",
               limits.run_now_rate, limits.run_now_burst) {}

absl::StatusOr<JobQuota::Count*> JobQuota::Counted(const std::string& owner) {
  while (!counts_.contains(owner)) {
    // The first count of an owner reads the store outside the lock. A delete
    // or purge of that owner committed meanwhile may or may not be in what it
    // read, so a count that saw one arrive is not kept: it counts again (only
    // the owner's own deletes and purges can cause that, and they end).
    Counting& counting = counting_[owner];
    ++counting.counts;
    const int64_t changes_before = counting.changes;
    mu_.Unlock();
    absl::StatusOr<store::OwnerUsage> usage = store_->CountJobs(owner);
    mu_.Lock();
    auto it = counting_.find(owner);
    const bool raced = it->second.changes != changes_before;
    if (--it->second.counts == 0) counting_.erase(it);
    if (!usage.ok()) return usage.status();
    // Concurrent first counts of one owner read the same committed state:
    // whichever lands first is kept.
    if (!raced) {
      counts_.try_emplace(
          owner, Count{usage->live_jobs, usage->stored_jobs, usage->stored_bytes, 0, 0});
    }
  }
  return &counts_.find(owner)->second;
}

void JobQuota::ChangedWhileCounting(const std::string& owner) {
  auto counting = counting_.find(owner);
  if (counting != counting_.end()) ++counting->second.changes;
}

absl::Status JobQuota::Reserve(const std::string& owner, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Count*> counted = Counted(owner);
  if (!counted.ok()) return counted.status();
  Count& c = **counted;
  if (!limits_.jobs_counted_by_store && c.live + c.pending_jobs >= limits_.max_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_jobs_per_identity: ", owner, " already has ", c.live,
        " jobs, the most allowed is ", limits_.max_jobs, "; delete some first"));
  }
  if (!limits_.jobs_counted_by_store &&
      c.stored + c.pending_jobs >= limits_.max_stored_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_stored_jobs_per_identity: ", owner, " keeps ", c.stored,
        " jobs, deleted ones included until they are purged; the most allowed is ",
        limits_.max_stored_jobs));
  }
  if (bytes > limits_.max_stored_bytes - c.bytes - c.pending_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_stored_bytes_per_identity: ", owner, "'s jobs take ", c.bytes,
        " bytes, deleted ones included until they are purged; this one needs ", bytes,
        " more, the most allowed is ", limits_.max_stored_bytes));
  }
  ++c.pending_jobs;
  c.pending_bytes += bytes;
  return absl::OkStatus();
}

void JobQuota::Release(const std::string& owner, bool created, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  Count& c = counts_[owner];
  --c.pending_jobs;
  c.pending_bytes -= bytes;
  if (created) {
    ++c.live;
    ++c.stored;
    c.bytes += bytes;
  }
}

absl::Status JobQuota::ReserveBytes(const std::string& owner, int64_t bytes) {
  if (bytes <= 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Count*> counted = Counted(owner);
  if (!counted.ok()) return counted.status();
  Count& c = **counted;
  if (bytes > limits_.max_stored_bytes - c.bytes - c.pending_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_stored_bytes_per_identity: ", owner, "'s jobs take ", c.bytes,
        " bytes, deleted ones included until they are purged; this change needs ", bytes,
        " more, the most allowed is ", limits_.max_stored_bytes));
  }
  c.pending_bytes += bytes;
  return absl::OkStatus();
}

void JobQuota::ReleaseBytes(const std::string& owner, int64_t bytes, bool written) {
  absl::MutexLock lock(&mu_);
  auto it = counts_.find(owner);
  if (it == counts_.end()) return;  // Never counted: nothing was held.
  Count& c = it->second;
  if (bytes > 0) c.pending_bytes -= bytes;
  if (written) c.bytes = std::max<int64_t>(0, c.bytes + bytes);
}

void JobQuota::Deleted(const std::string& owner) {
  absl::MutexLock lock(&mu_);
  auto it = counts_.find(owner);
  if (it != counts_.end()) {
    if (it->second.live > 0) --it->second.live;
    return;
  }
  // Not counted yet: a count under way must not be kept (see Counted).
  ChangedWhileCounting(owner);
}

void JobQuota::Purged(const std::string& owner, int64_t bytes) {
  absl::MutexLock lock(&mu_);
  auto it = counts_.find(owner);
  if (it != counts_.end()) {
    Count& c = it->second;
    if (c.stored > 0) --c.stored;
    c.bytes = std::max<int64_t>(0, c.bytes - bytes);
    return;
  }
  ChangedWhileCounting(owner);
}

}  // namespace timer::domain
