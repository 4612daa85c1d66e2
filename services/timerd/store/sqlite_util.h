// Thin RAII wrappers over the SQLite C API: a connection (Db) and a prepared
// statement (Stmt), both returning absl::Status.
//
// Neither is thread-safe: a Db and its Stmts are used by one thread at a time
// (connections are opened with SQLITE_OPEN_NOMUTEX). A Stmt must be destroyed
// before its Db. Bound strings must outlive the Step() calls that use them
// (they are bound with SQLITE_STATIC, no copy).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace timer::store {

// Maps a SQLite result code to a status: BUSY/LOCKED/IOERR/FULL ->
// UNAVAILABLE, CONSTRAINT -> ALREADY_EXISTS, the rest -> INTERNAL.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what);

class Db {
 public:
  Db() = default;
  ~Db();
  Db(Db&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Db& operator=(Db&& other) noexcept;
  Db(const Db&) = delete;

  // Opens (creating if needed) the database file at `path`.
  static absl::StatusOr<Db> Open(const std::string& path);

  // Runs one or more statements that return no rows of interest.
  absl::Status Exec(const char* sql);
  // Runs a single-value query such as "PRAGMA user_version".
  absl::StatusOr<int64_t> QueryInt(const char* sql);

  sqlite3* get() const { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

class Stmt {
 public:
  Stmt() = default;
  ~Stmt();
  Stmt(Stmt&& other) noexcept : stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Stmt& operator=(Stmt&& other) noexcept;
  Stmt(const Stmt&) = delete;

  static absl::StatusOr<Stmt> Prepare(sqlite3* db, std::string_view sql);

  // Resets the statement for another run and clears its bindings.
  Stmt& Reset();
  Stmt& Bind(int index, int64_t value);
  Stmt& BindText(int index, std::string_view value);
  Stmt& BindBlob(int index, std::string_view value);

  // true: a row is ready; false: done.
  absl::StatusOr<bool> Step();
  // Steps a statement that must not return rows.
  absl::Status Run();

  int64_t ColumnInt(int col) const;
  std::string_view ColumnText(int col) const;
  std::string_view ColumnBlob(int col) const;

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace timer::store
