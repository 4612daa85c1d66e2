// PostgresTokenStore: the TokenStore in the `tokens` table of the
// PostgreSQL store's database (store/pg_schema.h), shared by every replica:
// a token issued by `timerd token issue --store postgres://...` works on
// each, and a revocation is seen by each from its next lookup.
//
// Open migrates the schema if needed (under the same advisory lock as
// PostgresStore::Open), so `timerd token` works on a new database. Its own
// small connection pool; every call is bounded as pg_conn.h says, and fails
// with UNAVAILABLE while PostgreSQL is unreachable.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/pg_conn.h"
#include "store/token_store.h"

namespace timer::store {

class PostgresTokenStore final : public TokenStore {
 public:
  struct Options {
    std::string uri;
    int connections = 2;
    absl::Duration timeout = absl::Seconds(5);
  };
  static absl::StatusOr<std::unique_ptr<PostgresTokenStore>> Open(Options options);

  absl::Status Insert(const TokenRecord& token) override;
  absl::StatusOr<std::optional<TokenRecord>> Find(const std::string& token_id) override;
  absl::StatusOr<std::vector<TokenRecord>> List(const std::string& identity) override;
  absl::Status Revoke(const std::string& token_id, int64_t now_us) override;

 private:
  explicit PostgresTokenStore(Options options);

  PgConnector connector_;
  PgPool pool_;
};

}  // namespace timer::store
