#include "store/sqlite_token_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace timer::store {
namespace {

constexpr char kColumns[] =
    "token_id, identity, secret_sha256, create_us, expire_us, revoke_us, "
    "description";
// kColumns, and whether each nullable one is set (Stmt reads NULL as 0).
constexpr char kSelect[] =
    "SELECT token_id, identity, secret_sha256, create_us, expire_us, revoke_us, "
    "description, expire_us IS NOT NULL, revoke_us IS NOT NULL FROM tokens";
// Idle connections kept for reuse; more are opened under load and closed.
constexpr size_t kMaxIdle = 4;

TokenRecord Decode(const Stmt& stmt) {
  TokenRecord t;
  t.token_id = std::string(stmt.ColumnText(0));
  t.identity = std::string(stmt.ColumnText(1));
  t.secret_sha256 = std::string(stmt.ColumnBlob(2));
  t.create_us = stmt.ColumnInt(3);
  if (stmt.ColumnInt(7) != 0) t.expire_us = stmt.ColumnInt(4);
  if (stmt.ColumnInt(8) != 0) t.revoke_us = stmt.ColumnInt(5);
  t.description = std::string(stmt.ColumnText(6));
  return t;
}

}  // namespace

struct SqliteTokenStore::Conn {
  Db db;
  Stmt find;
};

SqliteTokenStore::SqliteTokenStore(std::string path) : path_(std::move(path)) {}
SqliteTokenStore::~SqliteTokenStore() = default;

absl::StatusOr<std::unique_ptr<SqliteTokenStore>> SqliteTokenStore::Open(
    const std::string& path) {
  std::unique_ptr<SqliteTokenStore> store(new SqliteTokenStore(path));
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> conn, store->Acquire());
  store->Release(std::move(conn));
  return store;
}

absl::StatusOr<std::unique_ptr<SqliteTokenStore::Conn>> SqliteTokenStore::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Conn> c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<Conn>();
  ASSIGN_OR_RETURN(c->db, Db::Open(path_));
  RETURN_IF_ERROR(c->db.Exec("PRAGMA busy_timeout = 5000;"));
  ASSIGN_OR_RETURN(int64_t has_table,
                   c->db.QueryInt("SELECT count(*) FROM sqlite_master WHERE "
                                  "type = 'table' AND name = 'tokens'"));
  if (has_table == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store: ", path_, " has no tokens table; start timerd once to upgrade it"));
  }
  ASSIGN_OR_RETURN(
      c->find, Stmt::Prepare(c->db.get(), absl::StrCat(kSelect, " WHERE token_id = ?1")));
  return c;
}

void SqliteTokenStore::Release(std::unique_ptr<Conn> conn) {
  absl::MutexLock lock(&mu_);
  if (idle_.size() < kMaxIdle) idle_.push_back(std::move(conn));
}

absl::Status SqliteTokenStore::Insert(const TokenRecord& t) {
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> c, Acquire());
  ASSIGN_OR_RETURN(
      Stmt insert,
      Stmt::Prepare(c->db.get(), absl::StrCat("INSERT INTO tokens (", kColumns,
                                              ") VALUES (?1, ?2, ?3, ?4, ?5, "
                                              "?6, ?7)")));
  insert.BindText(1, t.token_id)
      .BindText(2, t.identity)
      .BindBlob(3, t.secret_sha256)
      .Bind(4, t.create_us)
      .BindText(7, t.description);
  if (t.expire_us) insert.Bind(5, *t.expire_us);
  if (t.revoke_us) insert.Bind(6, *t.revoke_us);
  absl::Status s = insert.Run();
  insert = Stmt();
  Release(std::move(c));
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(
        absl::StrCat("token ", t.token_id, " already exists"));
  }
  return s;
}

absl::StatusOr<std::optional<TokenRecord>> SqliteTokenStore::Find(
    const std::string& token_id) {
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> c, Acquire());
  Stmt& find = c->find.Reset();
  find.BindText(1, token_id);
  absl::StatusOr<bool> row = find.Step();
  std::optional<TokenRecord> out;
  if (row.ok() && *row) out = Decode(find);
  find.Reset();
  if (!row.ok()) return row.status();
  Release(std::move(c));
  return out;
}

absl::StatusOr<std::vector<TokenRecord>> SqliteTokenStore::List(
    const std::string& identity) {
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> c, Acquire());
  std::vector<TokenRecord> out;
  {
    ASSIGN_OR_RETURN(
        Stmt list,
        Stmt::Prepare(c->db.get(), absl::StrCat(kSelect,
                                                " WHERE ?1 = '' OR identity = ?1 "
                                                "ORDER BY create_us, token_id")));
    list.BindText(1, identity);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, list.Step());
      if (!row) break;
      out.push_back(Decode(list));
    }
  }
  Release(std::move(c));
  return out;
}

absl::Status SqliteTokenStore::Revoke(const std::string& token_id, int64_t now_us) {
  ASSIGN_OR_RETURN(std::unique_ptr<Conn> c, Acquire());
  {
    ASSIGN_OR_RETURN(
        Stmt revoke,
        Stmt::Prepare(c->db.get(),
                      "UPDATE tokens SET revoke_us = coalesce(revoke_us, ?2) "
                      "WHERE token_id = ?1"));
    revoke.BindText(1, token_id).Bind(2, now_us);
    RETURN_IF_ERROR(revoke.Run());
    if (sqlite3_changes(c->db.get()) == 0) {
      return absl::NotFoundError(absl::StrCat("token ", token_id, " not found"));
    }
  }
  Release(std::move(c));
  return absl::OkStatus();
}

}  // namespace timer::store
