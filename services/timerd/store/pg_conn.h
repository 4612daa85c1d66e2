// Thin wrappers over libpq for the PostgreSQL store: a connection (PgConn)
// whose named statements are prepared on first use, its results (PgResult),
// how connections are opened (PgConnector: timeouts, session settings, a
// short back-off after a failed attempt) and a bounded pool (PgPool).
//
// Every call is bounded: connect_timeout and tcp_user_timeout/keepalives on
// the socket, statement_timeout in the session. A connection that broke
// (PQstatus) is never reused; the next use opens a new one, so a store
// outlives a PostgreSQL restart. Errors: a lost or refused connection, a
// statement timeout, a server shutting down or out of resources ->
// UNAVAILABLE; a missing privilege -> PERMISSION_DENIED; everything else ->
// INTERNAL. Messages carry the server's
// primary message only (never DETAIL, which may echo row values), escaped.
//
// Results are read in binary: integers by their width, text and bytea as
// raw bytes. Parameters: strings go in binary (raw bytes, for text and
// bytea parameters), integers and C string literals as text; every
// statement casts its parameters ($1::bigint) so none is left untyped.
//
// PgConn and PgResult are used by one thread at a time; PgConnector and
// PgPool are thread-safe.
#pragma once

#include <postgresql/libpq-fe.h>  // Debian: /usr/include/postgresql

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace timer::store {

// `uri` with its password removed (userinfo `user:secret@` -> `user@`, a
// `password=` parameter dropped): what may be logged.
std::string RedactPgUri(absl::string_view uri);

// True for a postgres:// or postgresql:// URI.
bool IsPgUri(absl::string_view uri);

// A named statement; prepared on a connection the first time it runs there.
struct PgStatement {
  const char* name;
  const char* sql;
};

// One parameter value; a string is not copied and must outlive the call.
class PgParam {
 public:
  // For a text (or bytea) parameter.
  PgParam(absl::string_view bytes) : view_(bytes), binary_(true) {}   // NOLINT: implicit.
  PgParam(const std::string& bytes) : view_(bytes), binary_(true) {}  // NOLINT
  // A literal in PostgreSQL's text form ("true").
  PgParam(const char* text) : view_(text) {}                    // NOLINT
  PgParam(int64_t value);                                       // NOLINT
  PgParam(int value) : PgParam(static_cast<int64_t>(value)) {}  // NOLINT
  static PgParam Bytes(absl::string_view bytes);
  static PgParam Null();

  const char* data() const { return null_ ? nullptr : own_ > 0 ? buf_ : view_.data(); }
  int length() const { return own_ > 0 ? own_ : static_cast<int>(view_.size()); }
  int format() const { return binary_ ? 1 : 0; }

 private:
  PgParam() = default;
  // An integer's text lives in buf_ (own_ bytes and a NUL), so a copy
  // stays valid.
  char buf_[24];
  int own_ = 0;
  absl::string_view view_;
  bool binary_ = false;
  bool null_ = false;
};

// A one-dimensional array parameter in PostgreSQL's binary array format
// (what array_recv reads), for multi-row statements over unnest($1::T[]).
// Its element type must be the one the statement casts to: PostgreSQL
// refuses any other ("wrong element type"). Pass it as PgParam::Bytes(
// builder.bytes()) once every element is added.
class PgArray {
 public:
  // Element type OIDs (pg_type.h).
  static constexpr uint32_t kBool = 16, kBytea = 17, kInt8 = 20, kInt4 = 23, kText = 25;

  explicit PgArray(uint32_t element_type);

  void Add(absl::string_view bytes);  // text or bytea.
  void AddInt64(int64_t value);       // int8.
  void AddInt32(int32_t value);       // int4.
  void AddBool(bool value);           // bool.
  void AddNull();
  int size() const { return count_; }
  // The encoded array; valid until the next Add.
  const std::string& bytes();

 private:
  void Element(const char* data, int32_t length);
  std::string buf_;
  int count_ = 0;
  bool has_null_ = false;
};

class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* res) : res_(res, &PQclear) {}

  int rows() const { return res_ ? PQntuples(res_.get()) : 0; }
  // Rows a write changed (INSERT, UPDATE, DELETE).
  int64_t affected() const;
  bool IsNull(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
  // A binary int2/int4/int8 or bool; 0 when NULL.
  int64_t Int(int row, int col) const;
  // Text or bytea, raw; empty when NULL. Valid while this result lives.
  absl::string_view Bytes(int row, int col) const;
  const PGresult* get() const { return res_.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> res_{nullptr, &PQclear};
};

class PgConn {
 public:
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Runs `sql` (one or more statements, no parameters) with the simple
  // protocol.
  absl::Status Exec(const char* sql);
  // Runs a named statement with `params`, results in binary.
  absl::StatusOr<PgResult> Run(const PgStatement& stmt,
                               const std::vector<PgParam>& params);
  // COMMIT that succeeds only if the server says it committed (COMMIT of a
  // failed transaction answers ROLLBACK). A lost connection makes the
  // outcome unknown: UNAVAILABLE, never OK.
  absl::Status Commit();

  // The connection is gone (or never was); it must not be used again.
  bool broken() const;
  // Not inside a transaction block.
  bool idle() const;
  // libpq's connection, for what this wrapper does not cover (LISTEN's
  // notifications: PQsocket, PQconsumeInput, PQnotifies). Owned here.
  PGconn* native() { return conn_; }

 private:
  friend class PgConnector;
  explicit PgConn(PGconn* conn) : conn_(conn) {}
  absl::Status Error(const PGresult* res, absl::string_view what) const;

  PGconn* conn_;
  absl::flat_hash_set<std::string> prepared_;
};

class PgConnector {
 public:
  struct Options {
    std::string uri;  // postgres://... (passed to libpq as is).
    // Bounds connecting (connect_timeout, at least 2 s in libpq), each
    // statement (statement_timeout) and unacknowledged sends
    // (tcp_user_timeout).
    absl::Duration timeout = absl::Seconds(5);
    // After a failed connect, others fail at once for this long.
    absl::Duration retry_after = absl::Milliseconds(200);
    // Zero: statement_timeout off (migrations).
    bool statement_timeout = true;
  };
  explicit PgConnector(Options options) : options_(std::move(options)) {}

  // A new connection, its session set up (synchronous_commit on,
  // statement_timeout). UNAVAILABLE if PostgreSQL cannot be reached.
  absl::StatusOr<std::unique_ptr<PgConn>> Connect();

  const Options& options() const { return options_; }

 private:
  const Options options_;
  absl::Mutex mu_;
  absl::Time retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
};

// At most `size` connections, opened on demand and kept while healthy.
class PgPool {
 public:
  PgPool(PgConnector* connector, int size) : connector_(connector), size_(size) {}

  // Runs `fn` on a connection. A connection found broken is replaced; when
  // `retry` (reads and other repeatable calls) and `fn` failed on a reused
  // connection that turned out broken, `fn` runs once more on a new one.
  // UNAVAILABLE when none frees up within the connector's timeout.
  absl::Status With(absl::FunctionRef<absl::Status(PgConn&)> fn, bool retry = true);

 private:
  absl::StatusOr<std::unique_ptr<PgConn>> Acquire(bool& reused);
  void Release(std::unique_ptr<PgConn> conn);

  PgConnector* const connector_;
  const int size_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<PgConn>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace timer::store
