// Listener: timerd's listening sockets and accept loop, in front of gRPC.
//
// gRPC 1.51's own listener has no connection limit, sets SO_REUSEPORT (a
// second server could bind the same port and the kernel would split the
// calls between them), and stops accepting for good once accept4 fails with
// EMFILE. So timerd owns its sockets: Bind() binds every address `listen`
// names, without SO_REUSEPORT, so a port in use is an error at start; the
// accept loop admits each connection within max_connections in total and
// max_connections_per_peer per peer (an IPv4 address, an IPv6 /64, or the
// local user of a unix-socket client), then hands it to gRPC (an
// ExternalConnectionAcceptor, which speaks plaintext or TLS as the server's
// credentials say). A refused connection is closed at once; EMFILE costs one
// connection (closed through a reserve descriptor), never the listener.
//
// Per admitted connection the loop keeps a duplicate of its descriptor: it
// learns from it when gRPC has shut the connection down (then closes the
// duplicate and frees the slot), and shuts down through it a TCP connection
// that made no authenticated call (MarkAuthenticated) within
// unauthenticated_timeout. A unix-socket connection is exempt from that
// timeout: gRPC names every unix peer alike, and only timerd's own user can
// connect to the socket. Each connection thus costs two descriptors.
//
// Thread-safe. Start, StopAccepting and Stop are called by the owner, in that
// order; MarkAuthenticated and connections() from any thread.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/caller.h"

namespace timer::server {

class Listener final : public api::AuthenticatedPeers {
 public:
  struct Options {
    int max_connections = 2048;
    int max_connections_per_peer = 256;
    absl::Duration unauthenticated_timeout = absl::Seconds(10);
  };
  // Takes an admitted connection: `fd` is the caller's to own and close.
  using Handoff = std::function<void(int listener_fd, int fd)>;

  // Binds and listens on `listen` ("HOST:PORT", "[V6]:PORT" or "unix:PATH";
  // every address HOST resolves to, on one port). UNAVAILABLE naming
  // `listen` if an address is in use or none can be bound.
  static absl::StatusOr<std::unique_ptr<Listener>> Bind(const std::string& listen,
                                                        const Options& options);
  ~Listener();

  // The port bound (the one chosen when 0 was asked); 0 for a unix socket.
  int port() const { return port_; }

  // Starts the accept loop, handing each admitted connection to `handoff`
  // (on the loop's thread).
  void Start(Handoff handoff);

  // `peer`, as gRPC names a call's peer ("ipv4:127.0.0.1:5555"), made an
  // authenticated call: its connection is no longer closed for want of one.
  void MarkAuthenticated(absl::string_view peer);

  // api::AuthenticatedPeers, for the handlers: AnyWaiting() is one atomic
  // load, so a call pays for MarkAuthenticated only while some TCP
  // connection has made no authenticated call yet.
  bool AnyWaiting() const override {
    return waiting_.load(std::memory_order_relaxed) > 0;
  }
  void Authenticated(absl::string_view peer) override { MarkAuthenticated(peer); }

  // Closes the listening sockets; when it returns, `handoff` is not called
  // again. Admitted connections stay.
  void StopAccepting();
  // StopAccepting, then ends the loop and lets go of every connection.
  void Stop();

  // Connections admitted and not yet closed.
  int connections() const;

 private:
  struct Socket {
    int fd = -1;
    bool unix_socket = false;
  };
  struct Connection {
    int grpc_fd = -1;  // The descriptor handed to gRPC (not ours to close).
    int own_fd = -1;   // Our duplicate.
    dev_t dev = 0;     // The socket's identity, to tell when gRPC closed grpc_fd.
    ino_t ino = 0;
    std::string endpoint;  // Peer address and port (Key()); empty for unix.
    std::string peer;      // The per-peer bucket.
    bool authenticated = false;
    bool waiting = false;  // TCP, and no authenticated call yet: in waiting_.
    bool read_hangup = false;
  };

  Listener(Options options, std::vector<Socket> sockets, int port, std::string unix_path);

  void Loop();
  void AcceptFrom(size_t index);
  void Admit(const Socket& socket, int fd, const sockaddr_storage& addr,
             socklen_t addr_len);
  void Refuse(int fd, const std::string& reason);
  void ShedOne(int listen_fd);
  void OnConnectionEvent(uint64_t id, uint32_t events);
  void Forget(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireUnauthenticated();
  void SweepClosed();
  void SetListening(bool on);
  void CloseListeningSockets();
  int NextTimeoutMs() const;
  void Wake();

  const Options options_;
  std::vector<Socket> sockets_;
  const int port_;
  const std::string unix_path_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int reserve_fd_ = -1;  // Closed to accept (and drop) one connection on EMFILE.
  Handoff handoff_;
  std::thread thread_;
  bool started_ = false;

  // Loop thread only.
  absl::Time paused_until_ = absl::InfinitePast();
  bool paused_ = false;
  absl::Time next_sweep_ = absl::InfinitePast();
  absl::Time next_refusal_log_ = absl::InfinitePast();
  int refusals_unlogged_ = 0;

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, Connection> connections_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> by_endpoint_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> per_peer_ ABSL_GUARDED_BY(mu_);
  // (deadline, id) of TCP connections, in deadline order.
  std::deque<std::pair<absl::Time, uint64_t>> deadlines_ ABSL_GUARDED_BY(mu_);
  bool stop_accepting_ ABSL_GUARDED_BY(mu_) = false;
  bool accepting_stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Connections with `waiting` set; changed under mu_, read without it.
  std::atomic<int> waiting_{0};
};

// Raises this process's soft RLIMIT_NOFILE to its hard limit (at most
// 1,048,576); returns the soft limit in force afterwards.
uint64_t RaiseOpenFileLimit();
// The soft RLIMIT_NOFILE.
uint64_t OpenFileLimit();

}  // namespace timer::server
