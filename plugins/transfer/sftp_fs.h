// sftp_fs: SFTP endpoints of the transfer provider, on libssh (Debian's
// libssh-dev, 0.10). An endpoint table with type = "sftp" (ParseSftpEndpoint)
// becomes an SftpEndpoint; each run opens it once (Open): one SSH session
// and one SFTP channel, used for every file of the run, closed at its end.
//
// Trust: the server's host key must match the pinned one (`host_key`: a
// public key line "ssh-ed25519 AAAA..." or its "SHA256:..." fingerprint) or
// the operator's `known_hosts_file`; anything else (unknown, changed,
// another type) refuses the connection, naming the host and the
// fingerprint the server presented. The client authenticates with
// `private_key_file` only (no agent, no ~/.ssh, no ssh_config): the file
// must belong to timerd's user and be readable by nobody else; it is read
// through one descriptor and its content never leaves this file.
//
// Bounds: connecting and every SFTP request are bounded by
// `timeout_seconds` (libssh's session timeout, and a watchdog thread per
// session that shuts the socket down when a request gets no answer for that
// long). A request in flight when the run is cancelled, or a connection
// being set up (TCP and the SSH handshake; not the host name's lookup), is
// cut the same way within half a second and fails CANCELLED (the session is
// then unusable; the run stops); a writer's removal of its temporary file
// is not cut by a cancel, only by the timeout. Reads keep at most
// kSftpReadWindow bytes of requests in flight, and as much in the answer
// buffer and libssh's channel window (SftpReader in sftp_fs.cc).
//
// Confinement on the server: paths are `root` + "/" + components (never
// "..": SplitPath). Each directory on the way is checked with LSTAT before
// it is first used in a run, and refused if it is a symbolic link or not a
// directory; a file is LSTATed (a link is refused) before it is opened. The
// run remembers the directories it checked (and forgets those it removes).
// Chosen over REALPATH-and-compare because it costs one request per
// directory per run rather than one per file, and it refuses a link even
// when it points inside the root (as local endpoints do). SFTP has no
// openat(): a link swapped in by someone who can write the remote tree
// between the check and the use is not caught; the SSH account's own
// permissions (or a ChrootDirectory) are the boundary against that user.
//
// Publishing: a file is written to ".timer-part-<pid>-<random>" in its
// directory and renamed over its name. libssh 0.10 sends SSH_FXP_RENAME
// only (no posix-rename@openssh.com), which OpenSSH refuses when the name
// exists: the writer then removes the old file and renames again, so for
// that instant the name is absent; it never holds a partial file.
//
// A full disk: SFTP version 3 has no status for it (OpenSSH answers
// SSH_FX_FAILURE); after a failed write, close, create or rename the writer
// asks statvfs@openssh.com and, when no space (or inode) is left for the
// user or less than was being written, fails with RESOURCE_EXHAUSTED naming
// ENOSPC (fail_on_quota_errors stops the run on it).
//
// Thread-safety: as EndpointFs (one run's thread). SftpEndpoint is
// immutable and thread-safe.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "copier.h"
#include "endpoint_fs.h"
#include "provider_support.h"

namespace timer::plugins::transfer {

constexpr size_t kSftpReadWindow = 2 << 20;

struct SftpConfig {
  std::string endpoint_id;  // for messages
  std::string host;
  int port = 22;
  std::string user;
  std::string private_key_file;
  std::string known_hosts_file;  // one of these two
  std::string host_key;
  std::string root;  // absolute directory on the server
  int timeout_seconds = 30;
};

class SftpEndpoint : public RemoteEndpoint {
 public:
  explicit SftpEndpoint(SftpConfig config) : config_(std::move(config)) {}
  std::string type() const override { return "sftp"; }
  bool Encrypted() const override { return true; }  // SSH always encrypts
  bool HoldsSymlinks() const override { return true; }
  Err Open(const CancelCheck& cancelled, std::unique_ptr<EndpointFs>* out) const override;
  nlohmann::json Describe() const override;
  const SftpConfig& config() const { return config_; }

 private:
  const SftpConfig config_;
};

// Reads the SFTP keys of an endpoint table through `r` (its prefix names
// them; the caller read id, root, allowed_identities, ... and calls
// r.Finish() after): host, port, user, private_key_file, known_hosts_file
// or host_key, timeout_seconds. Sets ep->remote. `ep->root` is the remote
// root. Refuses a private key file others may read or timerd's user does
// not own.
Err ParseSftpEndpoint(FieldReader& r, Endpoint* ep);

}  // namespace timer::plugins::transfer
