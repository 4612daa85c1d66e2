// ReplicaCluster: N installed timerd replicas sharing one throwaway
// PostgreSQL database, for end-to-end tests of several replicas.
//
// The database is a fresh one on the test process's cluster
// (tests/support/pg_cluster.h); the binaries are the installed ones
// (TIMER_INSTALL_PREFIX, as CliTest). Each replica has its own directory
// with a config file (store, lease_ttl_ms, the caller's extra keys, and the
// noop provider's record_file), its own data directory and its own record
// file, so the runs it started can be read from outside the store. A
// replica listens on a free loopback port at its first start and on the same
// address after a restart, so its channel (and clients) reconnect.
//
// Tokens are issued into the database with `timerd token issue --store`,
// as an operator would; every replica reads them from there.
//
// The destructor stops every replica that still runs (a paused one is
// continued first), so a failing test leaves no process behind.
//
// Not thread-safe: one test thread drives it. Records() and HeldShards()
// only read files and logs, and may be called from other threads while the
// driving thread does not start, stop or restart replicas.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "process.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {

class ReplicaCluster {
 public:
  struct Options {
    int replicas = 3;
    // Every replica's lease_ttl_ms (timerd's default: 3000).
    int lease_ttl_ms = 3000;
    // More top-level config keys for every replica, TOML lines
    // (e.g. "max_jobs_per_identity = 5\n").
    std::string extra_config;
  };

  // One line of a record file: the noop provider started run `run_number`
  // of `job_id` at `unix_ms` (wall clock).
  struct Record {
    std::string job_id;
    int64_t run_number = 0;
    int64_t unix_ms = 0;
  };

  // A new database and the replicas' directories and configs; none started.
  // Fails (never skips) when there is no PostgreSQL or no installed build.
  static absl::StatusOr<std::unique_ptr<ReplicaCluster>> Create(Options options);
  ~ReplicaCluster();

  int size() const { return static_cast<int>(replicas_.size()); }
  // The database's postgresql:// URI (trust authentication: no secret).
  const std::string& uri() const { return uri_; }
  const std::string& timerd() const { return timerd_; }
  const Options& options() const { return options_; }

  // `timerd token issue --store URI --identity IDENTITY`: the token.
  absl::StatusOr<std::string> IssueToken(const std::string& identity);
  // `timerd token revoke ID --store URI` for `token` (tmr_ID_SECRET).
  absl::Status RevokeToken(const std::string& token);

  // Starts replica `i` (again, on its address, once it has one) and waits
  // until it listens.
  absl::Status Start(int i);
  absl::Status StartAll();
  // SIGKILL, and waits for it to die.
  void Kill(int i);
  // SIGSTOP / SIGCONT.
  void Pause(int i);
  void Resume(int i);
  // SIGTERM; its exit code (-1: killed after the grace period).
  int Stop(int i);
  bool running(int i) const { return replicas_[i].daemon != nullptr; }
  bool paused(int i) const { return replicas_[i].paused; }
  // The running process (null when not running); its log is stderr.
  Daemon* daemon(int i) const { return replicas_[i].daemon.get(); }
  // What its log said so far, the logs of its earlier runs included.
  std::string log(int i) const;

  // host:port; empty before its first start.
  const std::string& address(int i) const { return replicas_[i].address; }
  // A channel to replica `i` that reconnects quickly after a restart (made
  // on first use: call from the driving thread first).
  std::shared_ptr<grpc::Channel> Channel(int i);
  std::unique_ptr<v1::TimerService::Stub> Stub(int i);

  const std::string& record_file(int i) const { return replicas_[i].record_file; }
  // Every start recorded by replica `i` so far, in file order.
  std::vector<Record> Records(int i) const;
  // Of every replica.
  std::vector<Record> AllRecords() const;

  // The replica id of the running replica `i` (from its log); empty if not
  // running or not known yet.
  std::string ReplicaId(int i) const;
  // Unexpired shard leases replica `i` holds, read from the database; -1
  // if it does not run or the database cannot be read.
  int HeldShards(int i) const;
  // Waits until each running, unpaused replica holds at least one shard and
  // they hold all 256 between them (a paused one's leases left to expire).
  bool WaitForBalance(absl::Duration timeout) const;

  // The replica's directory (config, data, record file).
  const std::string& dir(int i) const { return replicas_[i].dir; }

 private:
  struct Replica {
    std::string dir, config, data_dir, record_file, address;
    std::unique_ptr<Daemon> daemon;
    std::string earlier_logs;  // Of the runs before the current one.
    bool paused = false;
    std::shared_ptr<grpc::Channel> channel;
  };

  ReplicaCluster() = default;
  int Stop(int i, int sig);

  Options options_;
  std::string uri_, timerd_;
  TempDir tmp_;
  std::vector<Replica> replicas_;
};

// "Bearer TOKEN" metadata and a deadline `timeout` from now.
void PrepareContext(grpc::ClientContext* ctx, const std::string& token,
                    absl::Duration timeout = absl::Seconds(5));

}  // namespace timer::testing
