// Resolves the caller of an RPC from its server context: the
// `authorization` metadata and, on a mutual-TLS connection, the verified
// client certificate's subject, handed to the server's Authenticator.
// CallerOf also refuses a call whose deadline has already passed, before
// any work.
//
// CallGate checks the same credentials earlier: as each call's headers
// arrive, before gRPC reads its request message (an auth metadata processor
// on the server's credentials; GatedCredentials makes them). A call without
// valid credentials is refused there, so it cannot park a request body in
// the server's memory first. Health checking and reflection stay open to
// all. CallerOf remains the authority: the gate remembers a credential it
// verified for at most a second (so a token revoked meanwhile may pass the
// gate, never CallerOf), which keeps a call from paying for two
// verifications.
//
// Thread-safe; the Authenticator and clock must outlive every call.
#pragma once

#include <grpc/grpc_security.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "auth/authenticator.h"
#include "domain/clock.h"

namespace timer::api {

// Told which connections made an authenticated call (server/listener.h
// closes a TCP connection that makes none in time). Thread-safe.
class AuthenticatedPeers {
 public:
  virtual ~AuthenticatedPeers() = default;
  // Whether any connection still waits for its first authenticated call.
  // When none does (the usual case), a call's peer is not even looked up.
  virtual bool AnyWaiting() const = 0;
  // `peer` (grpc::ServerContext::peer()) made an authenticated call.
  virtual void Authenticated(absl::string_view peer) = 0;
};

// `peers`, when set, is told of the call once it authenticated.
absl::StatusOr<auth::Principal> CallerOf(const auth::Authenticator& auth,
                                         const grpc::CallbackServerContext* ctx,
                                         AuthenticatedPeers* peers = nullptr);

class CallGate {
 public:
  CallGate(const auth::Authenticator* auth, const domain::Clock* clock)
      : auth_(auth), clock_(clock) {}

  // The methods anyone may call: gRPC health checking and server reflection.
  static bool IsOpenMethod(absl::string_view path);

  // OK, or the status refusing a call of `path` with `credentials`.
  absl::Status Check(absl::string_view path, const auth::Credentials& credentials) const;

 private:
  const auth::Authenticator* const auth_;
  const domain::Clock* const clock_;
  mutable absl::Mutex mu_;
  // SHA-256 of a verified authorization value -> until when it passes.
  mutable absl::flat_hash_map<std::string, absl::Time> verified_ ABSL_GUARDED_BY(mu_);
};

// Server credentials that run `gate` on every call, from the C core's
// `core` credentials (plaintext or TLS), which they take ownership of.
std::shared_ptr<grpc::ServerCredentials> GatedCredentials(
    grpc_server_credentials* core, std::shared_ptr<const CallGate> gate);

}  // namespace timer::api
