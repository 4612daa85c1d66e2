// SqliteTokenStore: the TokenStore in the `tokens` table of timer.db.
//
// The table belongs to the file's schema (store/sqlite_schema.h), which
// SqliteStore migrates when it opens the file: open the SqliteStore on the
// same file first (timerd does; `timerd token` does when the file is new).
// This store never changes the schema.
//
// It uses its own SQLite connections, so it works beside a running timerd
// (WAL: readers never block; a write waits for the server's writer for at
// most busy_timeout).
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
#include "store/token_store.h"

namespace timer::store {

class SqliteTokenStore final : public TokenStore {
 public:
  // Opens the tokens table of the database at `path`. FAILED_PRECONDITION if
  // the file has no such table (not migrated yet).
  static absl::StatusOr<std::unique_ptr<SqliteTokenStore>> Open(const std::string& path);
  ~SqliteTokenStore() override;

  absl::Status Insert(const TokenRecord& token) override;
  absl::StatusOr<std::optional<TokenRecord>> Find(const std::string& token_id) override;
  absl::StatusOr<std::vector<TokenRecord>> List(const std::string& identity) override;
  absl::Status Revoke(const std::string& token_id, int64_t now_us) override;

 private:
  struct Conn;
  explicit SqliteTokenStore(std::string path);
  absl::StatusOr<std::unique_ptr<Conn>> Acquire();
  void Release(std::unique_ptr<Conn> conn);

  const std::string path_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Conn>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace timer::store
