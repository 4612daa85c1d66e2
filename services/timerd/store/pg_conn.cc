#include "store/pg_conn.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "util/escape.h"

namespace timer::store {
namespace {

// SQLSTATE classes and codes a retry (later, or on another connection) may
// cure: connection exceptions, statement timeout and cancel, the server
// shutting down or starting, insufficient resources, serialization and
// deadlock failures.
bool Transient(absl::string_view state) {
  return absl::StartsWith(state, "08") || absl::StartsWith(state, "53") ||
         absl::StartsWith(state, "57") || state == "40001" || state == "40P01";
}

std::string Trimmed(const char* message) {
  return util::Escaped(absl::StripTrailingAsciiWhitespace(message ? message : ""));
}

}  // namespace

bool IsPgUri(absl::string_view uri) {
  return absl::StartsWith(uri, "postgres://") || absl::StartsWith(uri, "postgresql://");
}

std::string RedactPgUri(absl::string_view uri) {
  absl::string_view scheme_end = "://";
  const size_t s = uri.find(scheme_end);
  if (s == absl::string_view::npos) return "(not a postgres:// URI)";
  const size_t start = s + scheme_end.size();
  std::string out(uri.substr(0, start));
  absl::string_view rest = uri.substr(start);
  // [user[:password]@]hosts[/db][?params]. Where the userinfo ends: libpq
  // takes the first '@' before any '/', and a malformed password may hold
  // '/' or '@' too, so the later of that and the last '@' before the query
  // (cutting more, never less).
  size_t at = absl::string_view::npos;
  if (const size_t p = rest.find_first_of("@/");
      p != absl::string_view::npos && rest[p] == '@') {
    at = p;
  }
  const size_t last = rest.substr(0, rest.find('?')).rfind('@');
  if (last != absl::string_view::npos && (at == absl::string_view::npos || last > at)) {
    at = last;
  }
  if (at != absl::string_view::npos) {
    const absl::string_view userinfo = rest.substr(0, at);
    absl::StrAppend(&out, userinfo.substr(0, userinfo.find(':')));
    rest = rest.substr(at);
  }
  const size_t q = rest.find('?');
  absl::StrAppend(&out, rest.substr(0, q));
  if (q == absl::string_view::npos) return out;
  // Parameters: every *password= one dropped (password, sslpassword).
  std::vector<absl::string_view> kept;
  for (absl::string_view kv : absl::StrSplit(rest.substr(q + 1), '&')) {
    if (absl::EndsWithIgnoreCase(kv.substr(0, kv.find('=')), "password")) continue;
    kept.push_back(kv);
  }
  if (!kept.empty()) absl::StrAppend(&out, "?", absl::StrJoin(kept, "&"));
  return out;
}

PgParam::PgParam(int64_t value) {
  char* end = std::to_chars(buf_, buf_ + sizeof(buf_) - 1, value).ptr;
  *end = '\0';  // Text parameters are read up to a NUL.
  own_ = static_cast<int>(end - buf_);
}

PgParam PgParam::Bytes(absl::string_view bytes) {
  PgParam p;
  p.view_ = bytes;
  p.binary_ = true;
  return p;
}

PgParam PgParam::Null() {
  PgParam p;
  p.null_ = true;
  return p;
}

namespace {

void PutBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
}

}  // namespace

PgArray::PgArray(uint32_t element_type) {
  buf_.reserve(4096);
  PutBigEndian(buf_, 1, 4);  // ndim
  PutBigEndian(buf_, 0, 4);  // flags: has nulls, set in bytes()
  PutBigEndian(buf_, element_type, 4);
  PutBigEndian(buf_, 0, 4);  // size, set in bytes()
  PutBigEndian(buf_, 1, 4);  // lower bound
}

void PgArray::Element(const char* data, int32_t length) {
  PutBigEndian(buf_, static_cast<uint32_t>(length), 4);
  if (length > 0) buf_.append(data, static_cast<size_t>(length));
  ++count_;
}

void PgArray::Add(absl::string_view bytes) {
  Element(bytes.data(), static_cast<int32_t>(bytes.size()));
}

void PgArray::AddInt64(int64_t value) {
  PutBigEndian(buf_, 8, 4);
  PutBigEndian(buf_, static_cast<uint64_t>(value), 8);
  ++count_;
}

void PgArray::AddInt32(int32_t value) {
  PutBigEndian(buf_, 4, 4);
  PutBigEndian(buf_, static_cast<uint32_t>(value), 4);
  ++count_;
}

void PgArray::AddBool(bool value) {
  PutBigEndian(buf_, 1, 4);
  buf_.push_back(value ? 1 : 0);
  ++count_;
}

void PgArray::AddNull() {
  PutBigEndian(buf_, 0xffffffffu, 4);  // Length -1.
  has_null_ = true;
  ++count_;
}

const std::string& PgArray::bytes() {
  // The header: ndim (0), flags (4), element type (8), size (12), lower
  // bound (16).
  std::string head;
  PutBigEndian(head, has_null_ ? 1 : 0, 4);
  buf_.replace(4, 4, head);
  head.clear();
  PutBigEndian(head, static_cast<uint32_t>(count_), 4);
  buf_.replace(12, 4, head);
  return buf_;
}

int64_t PgResult::affected() const {
  int64_t n = 0;
  if (res_ == nullptr || !absl::SimpleAtoi(PQcmdTuples(res_.get()), &n)) return 0;
  return n;
}

int64_t PgResult::Int(int row, int col) const {
  if (IsNull(row, col)) return 0;
  const auto* p =
      reinterpret_cast<const unsigned char*>(PQgetvalue(res_.get(), row, col));
  const int len = PQgetlength(res_.get(), row, col);
  uint64_t v = 0;
  for (int i = 0; i < len; ++i) v = (v << 8) | p[i];
  switch (len) {  // Network order, two's complement.
    case 1:
      return static_cast<int8_t>(v);
    case 2:
      return static_cast<int16_t>(v);
    case 4:
      return static_cast<int32_t>(v);
    default:
      return static_cast<int64_t>(v);
  }
}

absl::string_view PgResult::Bytes(int row, int col) const {
  return absl::string_view(PQgetvalue(res_.get(), row, col),
                           static_cast<size_t>(PQgetlength(res_.get(), row, col)));
}

PgConn::~PgConn() {
  if (conn_ != nullptr) PQfinish(conn_);
}

bool PgConn::broken() const {
  return conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK;
}

bool PgConn::idle() const { return PQtransactionStatus(conn_) == PQTRANS_IDLE; }

absl::Status PgConn::Error(const PGresult* res, absl::string_view what) const {
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  if (state == nullptr || broken()) {
    return absl::UnavailableError(absl::StrCat("store: PostgreSQL unavailable (", what,
                                               "): ", Trimmed(PQerrorMessage(conn_))));
  }
  const std::string message = absl::StrCat(
      "store: PostgreSQL ", what, ": ",
      Trimmed(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)), " (", state, ")");
  if (Transient(state)) return absl::UnavailableError(message);
  if (absl::string_view(state) == "42501") return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

absl::Status PgConn::Exec(const char* sql) {
  if (broken()) return Error(nullptr, "not connected");
  PgResult res(PQexec(conn_, sql));
  const ExecStatusType st = res.get() ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return Error(res.get(), sql);
  return absl::OkStatus();
}

absl::Status PgConn::Commit() {
  if (broken()) return Error(nullptr, "commit");
  PgResult res(PQexec(conn_, "COMMIT"));
  const ExecStatusType st = res.get() ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK) {
    const absl::Status s = Error(res.get(), "commit");
    // Sent, but no answer: it may or may not have committed.
    return absl::UnavailableError(absl::StrCat(s.message(), "; outcome unknown"));
  }
  if (std::strcmp(PQcmdStatus(const_cast<PGresult*>(res.get())), "COMMIT") != 0) {
    return absl::UnavailableError(
        "store: PostgreSQL rolled the transaction back (a statement in it failed)");
  }
  return absl::OkStatus();
}

absl::StatusOr<PgResult> PgConn::Run(const PgStatement& stmt,
                                     const std::vector<PgParam>& params) {
  if (broken()) return Error(nullptr, stmt.name);
  if (!prepared_.contains(stmt.name)) {
    PgResult prep(PQprepare(conn_, stmt.name, stmt.sql, 0, nullptr));
    if (prep.get() == nullptr || PQresultStatus(prep.get()) != PGRES_COMMAND_OK) {
      return Error(prep.get(), absl::StrCat("prepare ", stmt.name));
    }
    prepared_.insert(stmt.name);
  }
  constexpr size_t kMaxParams = 16;
  const char* values[kMaxParams];
  int lengths[kMaxParams];
  int formats[kMaxParams];
  const size_t n = std::min(params.size(), kMaxParams);
  for (size_t i = 0; i < n; ++i) {
    values[i] = params[i].data();
    lengths[i] = params[i].length();
    formats[i] = params[i].format();
  }
  PgResult res(PQexecPrepared(conn_, stmt.name, static_cast<int>(n), values, lengths,
                              formats, /*resultFormat=*/1));
  const ExecStatusType st = res.get() ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return Error(res.get(), stmt.name);
  return res;
}

absl::StatusOr<std::unique_ptr<PgConn>> PgConnector::Connect() {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Now() < retry_at_) return last_error_;
  }
  const int64_t timeout_ms = absl::ToInt64Milliseconds(options_.timeout);
  const std::string connect_timeout =
      absl::StrCat(std::max<int64_t>(2, timeout_ms / 1000));
  const std::string user_timeout = absl::StrCat(timeout_ms);
  // Ours first: the URI (expanded from dbname) may override any of them.
  const char* keys[] = {"connect_timeout",
                        "tcp_user_timeout",
                        "keepalives",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "application_name",
                        "dbname",
                        nullptr};
  const char* values[] = {connect_timeout.c_str(),
                          user_timeout.c_str(),
                          "1",
                          "5",
                          "2",
                          "3",
                          "timerd",
                          options_.uri.c_str(),
                          nullptr};
  auto conn = std::unique_ptr<PgConn>(
      new PgConn(PQconnectdbParams(keys, values, /*expand_dbname=*/1)));
  absl::Status status;
  if (conn->conn_ == nullptr) {
    status = absl::ResourceExhaustedError("store: out of memory opening a connection");
  } else if (PQstatus(conn->conn_) != CONNECTION_OK) {
    status = absl::UnavailableError(
        absl::StrCat("store: cannot connect to PostgreSQL at ", RedactPgUri(options_.uri),
                     ": ", Trimmed(PQerrorMessage(conn->conn_))));
  } else {
    // Server notices would go to stderr unformatted: dropped (errors come
    // back as statuses).
    PQsetNoticeProcessor(
        conn->conn_, [](void*, const char*) {}, nullptr);
    // Every session: durable commits whatever the server's default, no
    // statement outlives the bound, and a transaction left idle (its
    // process stalled) is ended after 2 s, so the lease rows it locked
    // (FOR KEY SHARE, by a fenced write) are free again well within a lease.
    status = conn->Exec(
        absl::StrCat("SET synchronous_commit = on; SET client_min_messages = warning; "
                     "SET statement_timeout = ",
                     options_.statement_timeout ? timeout_ms : 0,
                     "; SET idle_in_transaction_session_timeout = ",
                     options_.statement_timeout ? 2000 : 0, ";")
            .c_str());
  }
  absl::MutexLock lock(&mu_);
  if (!status.ok()) {
    retry_at_ = absl::Now() + options_.retry_after;
    last_error_ = status;
    return status;
  }
  retry_at_ = absl::InfinitePast();
  return conn;
}

absl::StatusOr<std::unique_ptr<PgConn>> PgPool::Acquire(bool& reused) {
  {
    absl::MutexLock lock(&mu_);
    auto free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < size_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&free), connector_->options().timeout)) {
      return absl::UnavailableError(
          absl::StrCat("store: no PostgreSQL connection free within ",
                       absl::FormatDuration(connector_->options().timeout)));
    }
    while (!idle_.empty()) {
      std::unique_ptr<PgConn> c = std::move(idle_.back());
      idle_.pop_back();
      if (!c->broken()) {
        reused = true;
        return c;
      }
      --open_;
    }
    ++open_;
  }
  reused = false;
  absl::StatusOr<std::unique_ptr<PgConn>> c = connector_->Connect();
  if (!c.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
  }
  return c;
}

void PgPool::Release(std::unique_ptr<PgConn> conn) {
  // A connection left inside a transaction is rolled back or dropped.
  if (!conn->broken() && !conn->idle()) conn->Exec("ROLLBACK").IgnoreError();
  absl::MutexLock lock(&mu_);
  if (conn->broken() || !conn->idle()) {
    --open_;
    return;
  }
  idle_.push_back(std::move(conn));
}

absl::Status PgPool::With(absl::FunctionRef<absl::Status(PgConn&)> fn, bool retry) {
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    absl::StatusOr<std::unique_ptr<PgConn>> c = Acquire(reused);
    if (!c.ok()) return c.status();
    absl::Status s = fn(**c);
    const bool again = !s.ok() && retry && reused && attempt == 0 && (*c)->broken();
    Release(*std::move(c));
    if (!again) return s;
  }
}

}  // namespace timer::store
