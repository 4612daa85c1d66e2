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
// One call, RenewLeases, made by each replica every lease_ttl/6, does in one
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

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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

// A RunJobNow that reached a replica which does not schedule the job's
// shard, handed to the one that does (domain/run_now_relay.h).
struct RelayedRun {
  std::string id;  // Random, made by the asking replica.
  std::string owner;
  std::string job_id;
  std::string request_id;  // The caller's idempotency key; may be empty.
};

// An outcome's message as a RelayStore keeps it: at most 1 KiB, cut at a
// UTF-8 character boundary.
inline std::string RelayedRunMessage(absl::string_view message) {
  constexpr size_t kMax = 1024;
  if (message.size() <= kMax) return std::string(message);
  size_t n = kMax;
  while (n > 0 && (static_cast<unsigned char>(message[n]) & 0xC0) == 0x80) --n;
  return std::string(message.substr(0, n));
}

// A finished RelayedRun: the status its RunJobNow ended with.
struct RelayedRunOutcome {
  std::string id;
  absl::Status status;
};

// RunJobNow calls relayed between the replicas sharing a store. Each request is claimed
// by at most one replica, and only while it is unexpired on the store's
// clock and the claimer holds its job's shard; the asker polls for the
// outcome. Thread-safe; calls are synchronous.
class RelayStore {
 public:
  virtual ~RelayStore() = default;

  // Records `request`; claimable until `ttl` passes. ALREADY_EXISTS if its
  // id is taken.
  virtual absl::Status AddRelayedRun(const RelayedRun& request, absl::Duration ttl) = 0;

  // Claims for `replica_id` up to `limit` unclaimed, unexpired requests
  // whose job's shard `replica_id` holds now, oldest first. Each request is
  // returned by one call only, ever.
  virtual absl::StatusOr<std::vector<RelayedRun>> ClaimRelayedRuns(
      const std::string& replica_id, int limit) = 0;

  // The outcome of a request claimed by this replica (its code and message;
  // the message is cut to 1 KiB).
  virtual absl::Status FinishRelayedRun(const std::string& id,
                                        const absl::Status& outcome) = 0;

  // The outcomes of those of `ids` that are finished.
  virtual absl::StatusOr<std::vector<RelayedRunOutcome>> RelayedRunOutcomes(
      const std::vector<std::string>& ids) = 0;

  // Forgets the requests that expired more than `keep` ago; returns how many.
  virtual absl::StatusOr<int64_t> PruneRelayedRuns(absl::Duration keep) = 0;
};

}  // namespace timer::store
