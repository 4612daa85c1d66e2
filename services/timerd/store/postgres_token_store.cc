#include "store/postgres_token_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "store/pg_schema.h"
#include "util/status_macros.h"

namespace timer::store {
namespace {

#define TOKEN_COLUMNS \
  "token_id, identity, secret_sha256, create_us, expire_us, revoke_us, description"

constexpr PgStatement kInsert = {
    "token_insert",
    "INSERT INTO tokens (" TOKEN_COLUMNS
    ") VALUES ($1::text, $2::text, $3::bytea, $4::bigint, $5::bigint, $6::bigint, "
    "$7::text) ON CONFLICT (token_id) DO NOTHING"};
constexpr PgStatement kFind = {
    "token_find", "SELECT " TOKEN_COLUMNS " FROM tokens WHERE token_id = $1::text"};
constexpr PgStatement kList = {"token_list", "SELECT " TOKEN_COLUMNS
                                             " FROM tokens WHERE $1::text = '' OR "
                                             "identity = $1::text ORDER BY create_us, "
                                             "token_id"};
constexpr PgStatement kRevoke = {
    "token_revoke",
    "UPDATE tokens SET revoke_us = coalesce(revoke_us, $2::bigint) WHERE token_id = "
    "$1::text"};

#undef TOKEN_COLUMNS

TokenRecord Decode(const PgResult& res, int row) {
  TokenRecord t;
  t.token_id = std::string(res.Bytes(row, 0));
  t.identity = std::string(res.Bytes(row, 1));
  t.secret_sha256 = std::string(res.Bytes(row, 2));
  t.create_us = res.Int(row, 3);
  if (!res.IsNull(row, 4)) t.expire_us = res.Int(row, 4);
  if (!res.IsNull(row, 5)) t.revoke_us = res.Int(row, 5);
  t.description = std::string(res.Bytes(row, 6));
  return t;
}

PgParam Optional(const std::optional<int64_t>& v) {
  return v ? PgParam(*v) : PgParam::Null();
}

}  // namespace

PostgresTokenStore::PostgresTokenStore(Options options)
    : connector_({.uri = options.uri, .timeout = options.timeout}),
      pool_(&connector_, options.connections) {}

absl::StatusOr<std::unique_ptr<PostgresTokenStore>> PostgresTokenStore::Open(
    Options options) {
  {
    PgConnector migrator(
        {.uri = options.uri, .timeout = options.timeout, .statement_timeout = false});
    ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, migrator.Connect());
    RETURN_IF_ERROR(pg_schema::Migrate(*conn));
  }
  return std::unique_ptr<PostgresTokenStore>(new PostgresTokenStore(std::move(options)));
}

absl::Status PostgresTokenStore::Insert(const TokenRecord& t) {
  int64_t added = 0;
  // Not retried: an insert that reached the server must not be sent twice.
  RETURN_IF_ERROR(pool_.With(
      [&](PgConn& c) -> absl::Status {
        ASSIGN_OR_RETURN(
            PgResult res,
            c.Run(kInsert,
                  {t.token_id, t.identity, PgParam::Bytes(t.secret_sha256), t.create_us,
                   Optional(t.expire_us), Optional(t.revoke_us), t.description}));
        added = res.affected();
        return absl::OkStatus();
      },
      /*retry=*/false));
  if (added == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("token ", t.token_id, " already exists"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<TokenRecord>> PostgresTokenStore::Find(
    const std::string& token_id) {
  std::optional<TokenRecord> out;
  RETURN_IF_ERROR(pool_.With([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult res, c.Run(kFind, {token_id}));
    if (res.rows() > 0) out = Decode(res, 0);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<TokenRecord>> PostgresTokenStore::List(
    const std::string& identity) {
  std::vector<TokenRecord> out;
  RETURN_IF_ERROR(pool_.With([&](PgConn& c) -> absl::Status {
    out.clear();
    ASSIGN_OR_RETURN(PgResult res, c.Run(kList, {identity}));
    for (int i = 0; i < res.rows(); ++i) out.push_back(Decode(res, i));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PostgresTokenStore::Revoke(const std::string& token_id, int64_t now_us) {
  int64_t changed = 0;
  // Repeatable: revoking twice keeps the first time.
  RETURN_IF_ERROR(pool_.With([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult res, c.Run(kRevoke, {token_id, now_us}));
    changed = res.affected();
    return absl::OkStatus();
  }));
  if (changed == 0)
    return absl::NotFoundError(absl::StrCat("token ", token_id, " not found"));
  return absl::OkStatus();
}

}  // namespace timer::store
