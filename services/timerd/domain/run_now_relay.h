// RunNowRelay: RunJobNow on any replica. With several replicas only the one
// holding a job's shard may record and start its runs (the fence), and only
// it knows the job's active runs (its overlap policy). A RunJobNow that
// reaches another replica is handed to that one through the store:
//
//   asking replica                         holding replica
//   Relay(): AddRelayedRun (claimable
//     for `timeout` / 2) ------------->   its loop, every 50 ms:
//                                          ClaimRelayedRuns (only rows of
//                                          shards it holds, each row once)
//                                          -> JobService::RunJobNowRelayed
//   its loop, every 20 ms while            -> FinishRelayedRun(code, message)
//   someone waits: RelayedRunOutcomes <--
//   -> OK: the job as GetJob shows it now; else that status.
//
// A request nobody claims in time (no live holder, PostgreSQL unreachable)
// ends UNAVAILABLE for the caller once `timeout` passes; since a request is
// claimable only for half of that, a claim made at the last moment still
// has time to answer. If the answer is lost anyway (the holder died between
// its claim and its answer), the caller gets UNAVAILABLE saying the run may
// have been recorded: a retry with the same request_id returns that run
// rather than starting another. Each request is claimed once: never two
// runs for one relayed call.
//
// Bounds: callers waiting at once, in total (max_waiting) and per identity
// (max_waiting_per_identity): beyond them RESOURCE_EXHAUSTED naming the key.
// Rows are pruned a minute after they expire, so the table holds at most
// about (max_waiting x replicas) rows a timeout plus a minute's.
//
// Thread-safe. Start() before the first Relay(); Stop() answers every
// waiting caller (UNAVAILABLE) and stops the loop.
#pragma once

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/jobs.h"
#include "store/lease_store.h"

namespace timer::domain {

class RunNowRelay final : public RunRelay {
 public:
  struct Options {
    // How long a relayed RunJobNow waits for the replica scheduling the job
    // (run_now_relay_timeout_ms).
    absl::Duration timeout = absl::Seconds(5);
    // Callers waiting at once (max_relayed_runs, ..._per_identity).
    int max_waiting = 1024;
    int max_waiting_per_identity = 64;
    // How often the holder looks for requests, and the asker for answers.
    absl::Duration claim_every = absl::Milliseconds(50);
    absl::Duration answer_every = absl::Milliseconds(20);
  };

  // `replica_id`: this replica's, as its shard leases name it. No pointer
  // is owned.
  RunNowRelay(store::RelayStore* store, JobService* jobs, std::string replica_id,
              Options options);
  ~RunNowRelay() override;
  RunNowRelay(const RunNowRelay&) = delete;
  RunNowRelay& operator=(const RunNowRelay&) = delete;

  void Start();
  void Stop();

  void Relay(const Identity& caller, const v1::RunJobNowRequest& request,
             store::JobCallback done) override;

  // Callers waiting now (for tests).
  size_t waiting() const;

 private:
  struct Waiter {
    Identity caller;
    std::string job_id;
    absl::Time give_up;
    store::JobCallback done;
  };
  void Loop();
  // One round: claim and run requests, write answers, collect outcomes.
  void Claim();
  void Answer();
  void Collect();
  // Removes `id` from waiting_ (under mu_); its Waiter.
  Waiter TakeWaiter(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  store::RelayStore* const store_;
  JobService* const jobs_;
  const std::string replica_id_;
  const Options options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // By request id.
  absl::flat_hash_map<std::string, Waiter> waiting_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> waiting_by_owner_ ABSL_GUARDED_BY(mu_);
  // Claimed here, answered by JobService, to be written (id, outcome).
  std::vector<std::pair<std::string, absl::Status>> answers_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // Claimed, not yet answered.
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loop_;
};

}  // namespace timer::domain
