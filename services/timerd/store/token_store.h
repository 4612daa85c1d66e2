// TokenStore: where bearer tokens are kept, behind one interface.
//
// A token is `tmr_<token_id>_<secret>` (auth/token.h); a store keeps its id,
// owner identity, timestamps and the SHA-256 of its secret, never the
// secret itself. Every lookup reads the store, so a revocation committed by
// any process sharing it is seen by the next call.
//
// Implementations: SqliteTokenStore (store/sqlite_token_store.h), the
// `tokens` table of timer.db. Tokens are not part of Store: a store of jobs
// and a store of tokens may live in the same database, whose schema then has
// one owner (for SQLite, store/sqlite_schema.h).
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace timer::store {

struct TokenRecord {
  std::string token_id;
  std::string identity;
  std::string secret_sha256;  // 32 raw bytes.
  int64_t create_us = 0;
  std::optional<int64_t> expire_us;  // Unset: never expires.
  std::optional<int64_t> revoke_us;  // Unset: not revoked.
  std::string description;
};

class TokenStore {
 public:
  virtual ~TokenStore() = default;

  // ALREADY_EXISTS if the token_id is taken.
  virtual absl::Status Insert(const TokenRecord& token) = 0;
  // nullopt if there is no such token.
  virtual absl::StatusOr<std::optional<TokenRecord>> Find(
      const std::string& token_id) = 0;
  // Every token, or only `identity`'s when it is non-empty, oldest first.
  virtual absl::StatusOr<std::vector<TokenRecord>> List(const std::string& identity) = 0;
  // Marks the token revoked at `now_us`. NOT_FOUND if there is no such token;
  // revoking a revoked token keeps its first revocation time.
  virtual absl::Status Revoke(const std::string& token_id, int64_t now_us) = 0;
};

}  // namespace timer::store
