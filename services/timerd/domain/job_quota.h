// JobQuota: what one identity may keep in the store and how fast it may
// write. Each limit is a configuration key, named in the RESOURCE_EXHAUSTED
// it gives:
//   - max_jobs_per_identity: live (not deleted) jobs;
//   - max_stored_jobs_per_identity: jobs kept, deleted ones included until
//     they are purged (a create-and-delete loop must not fill the disk);
//   - max_stored_bytes_per_identity: the bytes of those jobs as stored
//     (store::StoredBytes: mostly the action body), deleted ones included;
//   - write_rate_per_identity / write_burst_per_identity: a token bucket of
//     writes (create, update, delete, pause, resume);
//   - run_now_rate_per_identity / run_now_burst_per_identity: a token bucket
//     of RunJobNow calls.
//
// Counts are kept in memory per owner: the first reservation of an owner in
// this process counts its jobs in the store once (Store::CountJobs), then
// creates, updates, deletes and purges keep the count. Reservations count
// writes still being committed too, so concurrent writes by one owner cannot
// overshoot. Only JobService writes jobs and only the run engine's purge
// removes them, and both report here, so the counts stay exact while timerd
// runs (the bytes to within the few bytes a fire changes in a job).
//
// Token buckets refill continuously from the injected clock; an owner's
// bucket is forgotten once full (it would behave the same fresh), so idle
// identities cost no memory.
//
// Thread-safe. The store and clock must outlive the quota.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/clock.h"
#include "store/store.h"

namespace timer::domain {

// A token bucket per key: `rate` tokens a second, at most `burst` saved up.
// Thread-safe.
class RateLimiter {
 public:
  // `name` names the limit in errors ("write_rate_per_identity"); `burst_name`
  // its burst. rate <= 0: no limit.
  RateLimiter(const Clock* clock, std::string name, std::string burst_name, double rate,
              int64_t burst)
      : clock_(clock),
        name_(std::move(name)),
        burst_name_(std::move(burst_name)),
        rate_(rate),
        burst_(burst) {}

  // Takes one token of `key`, or RESOURCE_EXHAUSTED naming the limit and when
  // to retry.
  absl::Status Take(const std::string& key);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time at;
  };
  const Clock* const clock_;
  const std::string name_;
  const std::string burst_name_;
  const double rate_;
  const int64_t burst_;
  absl::Mutex mu_;
  static constexpr size_t kFirstSweep = 4096;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  size_t sweep_at_ ABSL_GUARDED_BY(mu_) = kFirstSweep;
};

class JobQuota {
 public:
  static constexpr int64_t kUnlimited = std::numeric_limits<int64_t>::max();

  struct Limits {
    int64_t max_jobs = kUnlimited;
    int64_t max_stored_jobs = kUnlimited;
    int64_t max_stored_bytes = kUnlimited;
    // Per second; 0: no limit.
    double write_rate = 0;
    int64_t write_burst = 1;
    double run_now_rate = 0;
    int64_t run_now_burst = 1;
    // The store checks max_jobs and max_stored_jobs in each create's
    // transaction (a store several replicas share: a count kept in one
    // process sees only that process's creates and deletes, so it lets an
    // owner alternating replicas past the limit, and refuses a create after
    // deletes made through another replica). Reserve then checks only the
    // bytes, which stay counted per process.
    bool jobs_counted_by_store = false;
  };

  // All limits; `clock` may be null when no rate is limited.
  JobQuota(store::Store* store, const Clock* clock, Limits limits);
  // Only the live-jobs limit.
  JobQuota(store::Store* store, int64_t max_jobs_per_owner)
      : JobQuota(store, nullptr, Limits{.max_jobs = max_jobs_per_owner}) {}

  int64_t max_jobs_per_owner() const { return limits_.max_jobs; }
  const Limits& limits() const { return limits_; }

  // Holds room for one more job of `owner`, of `bytes` stored bytes, until
  // Release(). RESOURCE_EXHAUSTED naming the limit when there is no room.
  absl::Status Reserve(const std::string& owner, int64_t bytes = 0);
  // Ends a reservation; `created` says whether a new job was written.
  void Release(const std::string& owner, bool created, int64_t bytes = 0);
  // Holds room for `bytes` more stored bytes of `owner` (a job growing by an
  // update) until ReleaseBytes(). Nothing to hold when bytes <= 0.
  absl::Status ReserveBytes(const std::string& owner, int64_t bytes);
  // Ends it; `written`: the job grew (or shrank, for bytes < 0) by `bytes`.
  void ReleaseBytes(const std::string& owner, int64_t bytes, bool written);
  // A job of `owner` was deleted: no longer live, still stored.
  void Deleted(const std::string& owner);
  // A deleted job of `owner`, of `bytes`, was purged.
  void Purged(const std::string& owner, int64_t bytes);

  // One write by `owner`, or RESOURCE_EXHAUSTED naming
  // write_rate_per_identity.
  absl::Status TakeWrite(const std::string& owner) { return writes_.Take(owner); }
  // One RunJobNow by `owner`, or RESOURCE_EXHAUSTED naming
  // run_now_rate_per_identity.
  absl::Status TakeRunNow(const std::string& owner) { return run_now_.Take(owner); }

 private:
  struct Count {
    int64_t live = 0;
    int64_t stored = 0;
    int64_t bytes = 0;
    int64_t pending_jobs = 0;
    int64_t pending_bytes = 0;
  };
  // Owners whose first count is under way: how many counts, and how many of
  // the owner's deletes and purges arrived meanwhile.
  struct Counting {
    int counts = 0;
    int64_t changes = 0;
  };
  // The owner's count, counting it in the store first if needed (which
  // releases mu_ while reading).
  absl::StatusOr<Count*> Counted(const std::string& owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A delete or purge of an owner not counted yet.
  void ChangedWhileCounting(const std::string& owner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  store::Store* const store_;
  const Limits limits_;
  RateLimiter writes_;
  RateLimiter run_now_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Count> counts_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Counting> counting_ ABSL_GUARDED_BY(mu_);
};

}  // namespace timer::domain
