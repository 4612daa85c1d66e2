// LeaseStore: which replica schedules which shards, when several timerd
// processes ("replicas") share one store. Implemented by the stores that
// also implement Store (the fences of Store's writes are checked against
// these leases, in the write's transaction).
//
// A replica holds a shard while the shard's lease names it and has not
// expired on the *store's* clock. Every change of holder gives the shard a
// new, larger epoch: (shard, holder, epoch) is the fencing token
// (store::Fence). A lease that expired, even one nobody else took, is taken
// again with a new epoch, so a gap in holding always shows as a new epoch.
//
// One call, RenewLeases, made by each replica every lease_ttl/3, does in one
// transaction: the replica's heartbeat; the release of the shards it names;
// the renewal of every unexpired lease it holds (expiry = now + ttl); the
// count of live replicas (heartbeat within ttl); and the taking of free or
// expired shards, lowest first, until it holds its fair share
// ceil(kShards / live). It never takes a shard another replica holds, and
// never releases one it was not told to: a replica holding more than its
// share is told so (fair_share) and gives the surplus back at its next call,
// once it stopped scheduling it (domain/shard_lease.h).
//
// A store only one process can open (SQLite, locked by flock) holds every
// shard for the first replica that asks, at epoch 1, forever (until it
// releases them); any other replica id gets none.
//
// Thread-safe. Calls are synchronous (a renewal thread makes them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace timer::store {

struct HeldShard {
  int shard = 0;
  int64_t epoch = 0;
  friend bool operator==(const HeldShard& a, const HeldShard& b) {
    return a.shard == b.shard && a.epoch == b.epoch;
  }
};

struct LeaseRenewal {
  std::string replica_id;  // Random, made at start; the leases' holder.
  std::string host;        // For people (logs); not an identity.
  absl::Duration ttl = absl::Seconds(3);
  // Shards to give up now (they must be held by this replica; others are
  // ignored). Released before the fair share is counted.
  std::vector<int> release;
};

struct LeaseGrant {
  // Every shard the replica holds after the call, by shard, with its epoch.
  std::vector<HeldShard> held;
  // Replicas with a heartbeat within ttl, this one included.
  int live_replicas = 0;
  // ceil(kShards / live_replicas): what each should hold.
  int fair_share = 0;
};

class LeaseStore {
 public:
  virtual ~LeaseStore() = default;

  // See above. An error applies nothing (the replica then holds what it
  // held, until those leases expire).
  virtual absl::StatusOr<LeaseGrant> RenewLeases(const LeaseRenewal& renewal) = 0;

  // A clean shutdown: releases every lease of `replica_id` and forgets its
  // heartbeat, so the others take its shards at their next renewal.
  virtual absl::Status ReleaseLeases(const std::string& replica_id) = 0;
};

}  // namespace timer::store
