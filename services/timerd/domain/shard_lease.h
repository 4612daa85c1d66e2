// ShardLeases: the shards this replica schedules, leased from a shared store
// (store/lease_store.h), and its local deadline.
//
// Every `ttl/6` the renewal thread notes the monotonic clock `t0`, then makes
// one RenewLeases call. Once it returns, the replica may start runs of the
// shards it holds until its local deadline `t0 + ttl - margin`; past it,
// renewed or not, it starts nothing (MayStart is false). Since `t0` is
// earlier than the store's clock reading of the renewal, the deadline passes
// before the lease expires on the store's clock, as long as the two clocks'
// rates differ by less than margin/ttl; their offsets do not matter.
//
// After each renewal the listener hears, on the renewal thread, which shards
// changed: gained (held now, and not at this epoch before), lost (held
// before at an epoch not held now: taken by another replica, expired, or
// released) and draining (held above the fair share: the replica stops
// scheduling them, and releases them at its next renewal, so that runs it
// already recorded start before another replica may take the shard). The
// published epochs change before the listener is told: a lost shard's
// MayStart is already false, a gained shard's FenceFor already set.
//
// A shard held again after a gap (a renewal that came too late) has a new
// epoch: it is lost and gained, so the listener reconciles it afresh.
//
// Thread-safety: Epoch, MayStart, FenceFor, replica_id may be called from
// any thread, without locks (atomics; the scheduler's hot path reads them).
// Renew, Start and Stop from one thread at a time. The store, clock and
// listener must outlive this.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/clock.h"
#include "store/lease_store.h"
#include "store/store.h"

namespace timer::domain {

class ShardLeases {
 public:
  struct Options {
    // This process's id as the leases' holder: random, made at start (empty:
    // a new UUID).
    std::string replica_id;
    // For people (logs); not an identity.
    std::string host;
    // How long a renewal holds a lease, on the store's clock (lease_ttl_ms).
    absl::Duration ttl = absl::Milliseconds(2500);
    // The local deadline is ttl - margin after a renewal was sent
    // (lease_margin_ms). Must be below ttl/2.
    absl::Duration margin = absl::Seconds(1);
    // false: no renewal thread; the owner calls Renew() (tests).
    bool background = true;
  };

  // Told of changes after each renewal, on the renewal thread. Must not
  // call back into Renew/Stop.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void ShardsGained(const std::vector<store::HeldShard>& gained) = 0;
    virtual void ShardsDraining(const store::ShardSet& draining) = 0;
    virtual void ShardsLost(const store::ShardSet& lost) = 0;
    // Every successful renewal, after the changes (the deadline moved on).
    virtual void LeasesRenewed() {}
  };

  // InvalidArgument naming lease_ttl_ms / lease_margin_ms if they do not fit
  // (ttl > 0, 0 < margin < ttl/2).
  static absl::Status Validate(const Options& options);

  // `monotonic`: the clock of the local deadline (MonotonicClock in timerd).
  ShardLeases(store::LeaseStore* store, const Clock* monotonic, Options options);
  ~ShardLeases();

  // Set once, before the first renewal.
  void set_listener(Listener* listener) { listener_ = listener; }

  // One renewal (see above). On error the leases stay as they were
  // published, and the deadline does not move.
  absl::Status Renew();
  // With `background`: renews at once, then every ttl/6 on a thread
  // (kRenewals a ttl: a lost replica's leases are seen expired within ttl/6
  // of their expiry, and a renewal may come up to ttl - margin - ttl/6 late
  // before this replica stops starting runs).
  void Start();
  // Stops renewing, unpublishes every shard (the listener hears them lost)
  // and releases the leases in the store, so others take them at once.
  // Idempotent.
  void Stop();

  // Unpublishes `shards` without releasing them (a listener that could not
  // take them up): the next renewal reports them gained again. Renewal
  // thread only (from the listener).
  void Forget(const store::ShardSet& shards);

  const std::string& replica_id() const { return options_.replica_id; }
  const Options& options() const { return options_; }

  // The epoch at which this replica holds `shard` (0: not held).
  int64_t Epoch(int shard) const {
    return epochs_[shard].load(std::memory_order_acquire);
  }
  // Whether a run recorded under (shard, epoch) may be started now: the
  // shard is still held at that epoch and the local deadline has not passed.
  bool MayStart(int shard, int64_t epoch) const {
    return epoch != 0 && Epoch(shard) == epoch && BeforeDeadline();
  }
  // Whether the local deadline has not passed.
  bool BeforeDeadline() const {
    return absl::ToUnixNanos(clock_->Now()) <
           deadline_ns_.load(std::memory_order_acquire);
  }
  // The fence of a write of `shard`'s jobs; nullopt if not held.
  std::optional<store::Fence> FenceFor(int shard) const {
    const int64_t epoch = Epoch(shard);
    if (epoch == 0) return std::nullopt;
    return store::Fence{shard, options_.replica_id, epoch};
  }
  // Shards held now (draining ones included), and the last renewal's live
  // replica count (for logs and tests).
  int held() const;
  int live_replicas() const { return live_.load(std::memory_order_relaxed); }
  // Whether the shards are being divided anew (a replica came or went):
  // this replica has shards to release, or holds fewer than its share while
  // the division changed within the last 2 ttl. The background thread then
  // renews every kSettleEvery instead of every ttl/6, so shards handed over
  // go unscheduled for a fraction of a second, not up to two renewals.
  bool settling() const { return settling_.load(std::memory_order_relaxed); }
  static constexpr absl::Duration kSettleEvery = absl::Milliseconds(200);
  static constexpr int kRenewals = 6;

 private:
  void Loop();

  store::LeaseStore* const store_;
  const Clock* const clock_;
  Options options_;
  Listener* listener_ = nullptr;

  std::array<std::atomic<int64_t>, store::kShards> epochs_{};
  std::atomic<int64_t> deadline_ns_{INT64_MIN};
  std::atomic<int> live_{0};
  std::atomic<bool> settling_{false};
  absl::Time settle_until_ = absl::InfinitePast();  // Renewing thread only.
  // Held above the fair share: released at the next renewal. Renewal thread
  // only.
  store::ShardSet draining_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ = false;  // Renew/Start/Stop's thread only.
  std::thread thread_;
};

}  // namespace timer::domain
