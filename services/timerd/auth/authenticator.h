// Authenticator: turns a call's credentials into the caller's identity.
//
// Three ways in, tried in this order:
//   1. `authorization: Bearer tmr_...`: a token issued by `timerd token
//      issue`, looked up in the TokenStore on every call (so a revocation by
//      any process takes effect at the next call) and checked for expiry.
//   2. `authorization: Bearer <JWT>`: verified by the JwtVerifier, when one
//      is configured.
//   3. No authorization header, on a TLS connection whose client presented a
//      certificate the configured client CA verified (mutual TLS): the
//      certificate's subject (RFC 2253, e.g. "CN=backup,O=Example") is the
//      identity.
// Anything else is UNAUTHENTICATED, with a reason when a credential was
// recognised but is expired or revoked. Messages never quote a credential.
//
// Knows nothing of gRPC: api/caller.h extracts Credentials from a call.
// Thread-safe; the store, verifier and clock must outlive it.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "auth/jwt.h"
#include "domain/clock.h"
#include "domain/identity.h"
#include "store/token_store.h"

namespace timer::auth {

// What a call presented, as received.
struct Credentials {
  // The `authorization` metadata value; nullopt if absent.
  std::optional<std::string> authorization;
  // The verified client certificate's subject; empty without mutual TLS.
  std::string peer_subject;
};

// Who the caller is, and by which credential.
struct Principal {
  domain::Identity identity;
  std::optional<absl::Time> expire_time;  // Unset: the credential does not expire.
  std::string token_id;                   // Set for issued tokens only.
};

class Authenticator {
 public:
  // `jwt` may be null (JWTs are then refused).
  Authenticator(store::TokenStore* tokens, const JwtVerifier* jwt,
                const domain::Clock* clock)
      : tokens_(tokens), jwt_(jwt), clock_(clock) {}

  absl::StatusOr<Principal> Authenticate(const Credentials& credentials) const;

  // Revokes the issued token `principal` authenticated with.
  // FAILED_PRECONDITION for a JWT or a certificate, which timerd cannot revoke.
  absl::Status Revoke(const Principal& principal) const;

 private:
  absl::StatusOr<Principal> FromToken(const std::string& bearer) const;

  store::TokenStore* const tokens_;
  const JwtVerifier* const jwt_;
  const domain::Clock* const clock_;
};

}  // namespace timer::auth
