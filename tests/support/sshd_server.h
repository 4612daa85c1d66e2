// A throwaway OpenSSH sshd for tests, one per test process: started on
// first use (Get) from /usr/sbin/sshd with a generated sshd_config (-f),
// in the foreground (-D) logging to stderr (-e), listening on 127.0.0.1 at
// a free port. Its host key and a user key are made at start with
// ssh-keygen (ed25519) in a temp dir under /tmp; the user key is the only
// authorized key, for the user running the test (root included: CI runs
// as root; sshd then needs its privilege separation directory /run/sshd,
// which is created if missing). SFTP is served by internal-sftp.
//
// Readiness is sshd's "Server listening" line on its stderr, awaited with a
// timeout; its log is kept in dir()/sshd.log. It is stopped (SIGTERM) and
// its directory removed at exit; it dies with the test process
// (PR_SET_PDEATHSIG) if that one crashes. If it cannot be started, Get()
// returns the error: tests must then FAIL, never skip.
//
// Thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace timer::testing {

class SshdServer {
 public:
  static absl::StatusOr<SshdServer*> Get();

  int port() const { return port_; }
  // The directory holding keys, config and log; removed at exit.
  const std::string& dir() const { return dir_; }
  const std::string& user() const { return user_; }
  // The user key's private half (mode 0600), for private_key_file.
  std::string user_key() const { return dir_ + "/user_key"; }
  // The host key line "ssh-ed25519 AAAA..." (host_key) and a known_hosts
  // file naming it for [127.0.0.1]:port.
  const std::string& host_key_line() const { return host_key_line_; }
  std::string known_hosts() const { return dir_ + "/known_hosts"; }
  // Another key of the same type, which the server does not have.
  const std::string& other_key_line() const { return other_key_line_; }
  // A fresh directory for an endpoint root (below dir(), readable by sshd).
  std::string NewRoot();
  // The listening sshd (its connections are its descendants).
  int pid() const { return pid_; }

 private:
  SshdServer() = default;
  absl::Status Init();
  // Writes known_hosts and sshd_config for port_, starts sshd and awaits it.
  absl::Status Start();

  std::string dir_;
  std::string user_;
  std::string host_key_line_;
  std::string other_key_line_;
  int port_ = 0;
  int pid_ = -1;
  int roots_ = 0;
};

}  // namespace timer::testing
