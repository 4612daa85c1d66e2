// TokenStore: the `tokens` table of timer.db, where bearer tokens are kept.
//
// A token is `tmr_<token_id>_<secret>` (auth/token.h); the table keeps its
// id, owner identity, timestamps and the SHA-256 of its secret, never the
// secret itself. The table is created by SqliteStore's migrations: open the
// SqliteStore on the same file first (timerd does; `timerd token` does when
// the file is new).
//
// The store uses its own SQLite connections, so it works beside a running
// timerd (WAL: readers never block; a write waits for the server's writer
// for at most busy_timeout). Every lookup reads the table, so a revocation
// committed by any process is seen by the next call.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "store/sqlite_util.h"

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
  // Opens the tokens table of the database at `path`. FAILED_PRECONDITION if
  // the file has no such table (not migrated yet).
  static absl::StatusOr<std::unique_ptr<TokenStore>> Open(const std::string& path);
  ~TokenStore();

  // ALREADY_EXISTS if the token_id is taken.
  absl::Status Insert(const TokenRecord& token);
  // nullopt if there is no such token.
  absl::StatusOr<std::optional<TokenRecord>> Find(const std::string& token_id);
  // Every token, or only `identity`'s when it is non-empty, oldest first.
  absl::StatusOr<std::vector<TokenRecord>> List(const std::string& identity);
  // Marks the token revoked at `now_us`. NOT_FOUND if there is no such token;
  // revoking a revoked token keeps its first revocation time.
  absl::Status Revoke(const std::string& token_id, int64_t now_us);

 private:
  struct Conn;
  explicit TokenStore(std::string path);
  absl::StatusOr<std::unique_ptr<Conn>> Acquire();
  void Release(std::unique_ptr<Conn> conn);

  const std::string path_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace timer::store
