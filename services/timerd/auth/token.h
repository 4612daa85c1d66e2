// Bearer tokens issued by timerd: their format, generation and verification.
//
// A token is `tmr_<token_id>_<secret>`: 16 hex digits of public id (what
// `timerd token list|revoke` show) and 64 hex digits (32 random bytes from
// OpenSSL's RAND_bytes) of secret. The store keeps the SHA-256 of the secret,
// found by token_id and compared in constant time (CRYPTO_memcmp), so neither
// a copy of the database nor the timing of a comparison reveals a usable
// token. Nothing here logs; callers must not log a token or a secret either.
//
// Plain functions, thread-safe.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "store/token_store.h"

namespace timer::auth {

struct ParsedToken {
  std::string token_id;
  std::string secret;
};

// nullopt unless `token` has exactly the format above.
std::optional<ParsedToken> ParseToken(absl::string_view token);

// SHA-256 of `data`, 32 raw bytes (OpenSSL EVP).
std::string Sha256(absl::string_view data);

// true iff the secret's SHA-256 equals `stored_sha256`, in constant time.
bool SecretMatches(const ParsedToken& token, absl::string_view stored_sha256);

// Checks an identity name given to `timerd token issue`: 1 to 256 printable
// ASCII characters, no spaces.
absl::Status ValidateIdentityName(absl::string_view name);

struct IssuedToken {
  std::string token;  // The bearer token: shown once, never stored.
  store::TokenRecord record;
};

// Creates a token for `identity` and stores its hash. `expires` unset: the
// token never expires.
absl::StatusOr<IssuedToken> IssueToken(store::TokenStore& tokens,
                                       const std::string& identity,
                                       std::optional<absl::Time> expires,
                                       const std::string& description, absl::Time now);

}  // namespace timer::auth
