#include "domain/shard_lease.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "domain/ids.h"
#include "util/escape.h"
#include "util/thread_name.h"

namespace timer::domain {

absl::Status ShardLeases::Validate(const Options& options) {
  if (options.ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lease_ttl_ms: must be > 0");
  }
  if (options.margin <= absl::ZeroDuration() || options.margin * 2 >= options.ttl) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease_margin_ms: must be > 0 and below half of lease_ttl_ms (",
                     absl::ToInt64Milliseconds(options.ttl), ")"));
  }
  return absl::OkStatus();
}

ShardLeases::ShardLeases(store::LeaseStore* store, const Clock* monotonic,
                         Options options)
    : store_(store), clock_(monotonic), options_(std::move(options)) {
  if (options_.replica_id.empty()) options_.replica_id = NewUuid();
}

ShardLeases::~ShardLeases() { Stop(); }

int ShardLeases::held() const {
  int n = 0;
  for (const auto& epoch : epochs_) n += epoch.load(std::memory_order_relaxed) != 0;
  return n;
}

absl::Status ShardLeases::Renew() {
  if (stopped_) return absl::FailedPreconditionError("leases were released");
  store::LeaseRenewal renewal;
  renewal.replica_id = options_.replica_id;
  renewal.host = options_.host;
  renewal.ttl = options_.ttl;
  // Shards drained since the last renewal: nothing of them starts any more.
  store::ShardSet released;
  for (int shard = 0; shard < store::kShards; ++shard) {
    if (!draining_.test(shard)) continue;
    renewal.release.push_back(shard);
    if (epochs_[shard].exchange(0, std::memory_order_acq_rel) != 0) released.set(shard);
  }
  draining_.reset();
  if (released.any() && listener_ != nullptr) listener_->ShardsLost(released);

  const absl::Time t0 = clock_->Now();
  absl::StatusOr<store::LeaseGrant> grant = store_->RenewLeases(renewal);
  if (!grant.ok()) {
    spdlog::warn("shard leases: renewal failed: {}",
                 util::Escaped(grant.status().message()));
    return grant.status();
  }
  deadline_ns_.store(absl::ToUnixNanos(t0 + options_.ttl - options_.margin),
                     std::memory_order_release);
  const int live_before = live_.exchange(grant->live_replicas, std::memory_order_relaxed);

  std::array<int64_t, store::kShards> now_held{};
  for (const store::HeldShard& h : grant->held) {
    if (h.shard >= 0 && h.shard < store::kShards) now_held[h.shard] = h.epoch;
  }
  store::ShardSet lost;
  std::vector<store::HeldShard> gained;
  int held = 0;
  for (int shard = 0; shard < store::kShards; ++shard) {
    const int64_t before = epochs_[shard].load(std::memory_order_acquire);
    const int64_t after = now_held[shard];
    held += after != 0;
    if (before == after) continue;
    if (before != 0) lost.set(shard);
    if (after != 0) gained.push_back(store::HeldShard{shard, after});
  }
  // Unpublish what is lost before telling anyone; publish what is gained
  // before the listener scans it.
  for (int shard = 0; shard < store::kShards; ++shard) {
    if (lost.test(shard)) epochs_[shard].store(0, std::memory_order_release);
  }
  if (lost.any() && listener_ != nullptr) listener_->ShardsLost(lost);
  for (const store::HeldShard& h : gained) {
    epochs_[h.shard].store(h.epoch, std::memory_order_release);
  }
  if (!gained.empty() && listener_ != nullptr) listener_->ShardsGained(gained);
  // Above the fair share: the highest shards are drained, released next time.
  for (int shard = store::kShards - 1; shard >= 0 && held > grant->fair_share; --shard) {
    if (now_held[shard] == 0) continue;
    draining_.set(shard);
    --held;
  }
  if (draining_.any() && listener_ != nullptr) listener_->ShardsDraining(draining_);
  if (live_before != grant->live_replicas || lost.any() || !gained.empty() ||
      released.any()) {
    settle_until_ = t0 + 2 * options_.ttl;
  }
  settling_.store(draining_.any() || (held < grant->fair_share && t0 < settle_until_),
                  std::memory_order_relaxed);
  // A release counts as a change: without it the last line an operator saw
  // still showed the released shards held.
  if (!lost.none() || !gained.empty() || draining_.any() || released.any()) {
    spdlog::info(
        "shard leases: replica {} ({}) holds {} shards ({} gained, {} lost, {} released, "
        "{} to release) of {} live replicas",
        util::Escaped(options_.replica_id), util::Escaped(options_.host),
        grant->held.size(), gained.size(), lost.count(), released.count(),
        draining_.count(), grant->live_replicas);
  }
  if (listener_ != nullptr) listener_->LeasesRenewed();
  return absl::OkStatus();
}

void ShardLeases::Forget(const store::ShardSet& shards) {
  for (int shard = 0; shard < store::kShards; ++shard) {
    if (shards.test(shard)) epochs_[shard].store(0, std::memory_order_release);
  }
}

void ShardLeases::Start() {
  if (!options_.background || thread_.joinable()) return;
  thread_ = std::thread([this] {
    util::SetThreadName("shard-leases");
    Loop();
  });
}

void ShardLeases::Loop() {
  for (;;) {
    const absl::Time t0 = clock_->Now();
    Renew().IgnoreError();  // Logged; the deadline passes if it keeps failing.
    absl::MutexLock lock(&mu_);
    const absl::Duration period = settling()
                                      ? std::min(options_.ttl / kRenewals, kSettleEvery)
                                      : options_.ttl / kRenewals;
    const absl::Duration wait = t0 + period - clock_->Now();
    mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                         std::max(absl::ZeroDuration(), wait));
    if (stopping_) return;
  }
}

void ShardLeases::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (stopped_) return;
  stopped_ = true;
  store::ShardSet lost;
  for (int shard = 0; shard < store::kShards; ++shard) {
    if (epochs_[shard].exchange(0, std::memory_order_acq_rel) != 0) lost.set(shard);
  }
  deadline_ns_.store(INT64_MIN, std::memory_order_release);
  if (lost.any() && listener_ != nullptr) listener_->ShardsLost(lost);
  absl::Status released = store_->ReleaseLeases(options_.replica_id);
  if (!released.ok()) {
    spdlog::warn("shard leases: releasing failed (they expire instead): {}",
                 util::Escaped(released.message()));
  }
}

}  // namespace timer::domain
