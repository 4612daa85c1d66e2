// TimerServer: one running timerd: its store, domain services and gRPC
// server, wired together. Owns everything it creates.
//
// Start() opens (or creates) the data directory, takes an exclusive lock on
// it so two timerds never share one store, binds the listen address (a port
// in use is an error: two timerds never share one port either), opens the
// SQLite store, and starts serving with gRPC health checking and server
// reflection enabled. Connections come through timerd's own Listener
// (server/listener.h), calls through the CallGate (api/caller.h).
// Shutdown() stops accepting calls, lets in-flight calls finish (up to a
// grace period), then closes the store cleanly.
//
// Thread-safe: Shutdown() may be called from any thread, more than once.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/config.h"

namespace timer::server {

class TimerServer {
 public:
  static absl::StatusOr<std::unique_ptr<TimerServer>> Start(const Config& config);
  ~TimerServer();

  // The address actually bound, e.g. "127.0.0.1:43127" when port 0 was asked;
  // a "unix:PATH" listen address as it was given.
  const std::string& address() const;
  // The port bound; 0 for a unix socket.
  int port() const;
  // The HTTP listener's address as bound ("127.0.0.1:8080"); empty when
  // http_listen is not set.
  const std::string& http_address() const;

  void Shutdown(absl::Duration grace);

 private:
  struct Impl;
  explicit TimerServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace timer::server
