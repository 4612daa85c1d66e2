// A throwaway S3-compatible server for tests, one per test process: s3rver
// (npm, pinned by tests/support/s3/package-lock.json, installed there by
// scripts/deps.sh with `npm ci`) run by node, started on first use in a temp
// dir under /tmp, listening on 127.0.0.1 at a port it picks (-p 0; the port
// is read from its "listening" line, so no other process can take it
// between a probe and the bind), with the buckets kBucketA and kBucketB.
// GetTls() starts another one with TLS. Each is stopped (SIGTERM, then waited for) and
// its dir removed at exit; it also gets SIGTERM if this process dies first
// (PR_SET_PDEATHSIG).
//
// s3rver checks that the access key id exists (S3RVER) but not V4
// signatures: a wrong secret is not detected by it.
//
// If the server cannot be started, Get() returns the error: tests must then
// FAIL (ASSERT on it), never skip. Thread-safe.
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"

namespace timer::testing {

class S3Server {
 public:
  static constexpr char kBucketA[] = "timer-a";
  static constexpr char kBucketB[] = "timer-b";
  static constexpr char kAccessKeyId[] = "S3RVER";
  static constexpr char kSecretAccessKey[] = "S3RVER";

  // The process's server, started on the first call.
  static absl::StatusOr<S3Server*> Get();
  // A second one serving https with a certificate for 127.0.0.1 that a CA
  // made at start signs (its PEM file: ca_file()).
  static absl::StatusOr<S3Server*> GetTls();

  // http(s)://127.0.0.1:<port>
  std::string endpoint() const;
  const std::string& ca_file() const { return ca_file_; }
  int port() const { return port_; }
  // Where s3rver keeps the buckets' objects (tests look at it to check
  // that nothing was written outside a prefix).
  std::string data_dir() const { return dir_ + "/data"; }

 private:
  S3Server() = default;
  absl::Status Start(bool tls);

  std::string dir_;
  std::string ca_file_;
  bool tls_ = false;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace timer::testing
