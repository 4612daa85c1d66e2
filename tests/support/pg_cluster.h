// A throwaway PostgreSQL cluster for tests, one per test process: started
// on first use (initdb and pg_ctl from /usr/lib/postgresql/15/bin, as the
// `postgres` user when running as root, which initdb refuses), in a temp dir
// under /tmp, listening on 127.0.0.1 at a free port and on a Unix socket in
// that dir, fsync left on. Stopped (pg_ctl stop -m fast) and removed at exit,
// also when a test fails; a watcher process does it if this one dies without
// exiting (a crash, SIGKILL).
//
// Each test takes a fresh database (NewDatabase), so tests do not see each
// other. If the cluster cannot be started, Get() returns the error: tests
// must then FAIL (ASSERT on it), never skip.
//
// Thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace timer::testing {

class PgCluster {
 public:
  // The process's cluster, started on the first call.
  static absl::StatusOr<PgCluster*> Get();

  // CREATE DATABASE with a new name; returns its postgresql:// URI (TCP on
  // 127.0.0.1, user postgres, trust authentication).
  absl::StatusOr<std::string> NewDatabase();

  // Stops the server (pg_ctl stop -m fast; `immediate`: -m immediate, a
  // crash: no checkpoint, its next start recovers from the WAL), and starts
  // it again on the same port and data: a PostgreSQL restart, or a primary
  // replaced behind the same address, as clients see it.
  absl::Status Stop(bool immediate = false);
  absl::Status Start();

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }

 private:
  PgCluster() = default;
  absl::Status Init();
  // Runs a PostgreSQL tool `bin` (as postgres when root) with `args`,
  // output into the log; its exit status must be 0.
  absl::Status Tool(const std::string& bin, const std::string& args);

  std::string dir_;  // Holds data/ and the socket; removed at exit.
  int port_ = 0;
  absl::Mutex mu_;
  int databases_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace timer::testing
