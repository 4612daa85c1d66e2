#include "store/pg_event_log.h"

#include <poll.h>

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace timer::store {
namespace {

constexpr char kChannel[] = "timer_events";

// Type oids of the array elements (pg_type.dat; fixed).
constexpr uint32_t kInt8Oid = 20;
constexpr uint32_t kTextOid = 25;
constexpr uint32_t kByteaOid = 17;

// A one-dimensional array in PostgreSQL's binary form (array_recv), built
// element by element.
class BinaryArray {
 public:
  BinaryArray(uint32_t element_oid, size_t n) {
    Put32(1);  // Dimensions.
    Put32(0);  // No NULLs.
    Put32(element_oid);
    Put32(static_cast<uint32_t>(n));  // Length of the dimension...
    Put32(1);                         // ... and its lower bound.
  }
  void Add(int64_t v) {
    Put32(8);
    for (int shift = 56; shift >= 0; shift -= 8) {
      out_.push_back(static_cast<char>((static_cast<uint64_t>(v) >> shift) & 0xff));
    }
  }
  void Add(const std::string& bytes) {
    Put32(static_cast<uint32_t>(bytes.size()));
    out_.append(bytes);
  }
  const std::string& bytes() const { return out_; }

 private:
  void Put32(uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      out_.push_back(static_cast<char>((v >> shift) & 0xff));
    }
  }
  std::string out_;
};

// One statement: takes the numbers (the counter row's lock, held to the
// COMMIT, is what orders appenders), inserts the rows, notifies readers.
constexpr PgStatement kAppend = {
    "events_append",
    "WITH c AS (UPDATE event_counter SET last = last + $1::bigint RETURNING last), "
    "i AS (INSERT INTO events (seq, at_us, origin, owner, job_id, body) "
    "  SELECT c.last - $1::bigint + u.ord, u.at_us, u.origin, u.owner, u.job_id, u.body "
    "  FROM c, unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[]) "
    "  WITH ORDINALITY AS u(at_us, origin, owner, job_id, body, ord)) "
    "SELECT last - $1::bigint + 1, pg_notify('timer_events', '') FROM c"};

constexpr PgStatement kRead = {
    "events_read",
    "SELECT seq, at_us, origin, owner, job_id, body FROM events "
    "WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint"};

constexpr PgStatement kBounds = {
    "events_bounds",
    "SELECT (SELECT min(seq) FROM events), (SELECT last FROM event_counter)"};

constexpr PgStatement kPrune = {
    "events_prune",
    "DELETE FROM events WHERE seq <= (SELECT last FROM event_counter) - $1::bigint"};

}  // namespace

PgEventLog::PgEventLog(Options options)
    : connector_(PgConnector::Options{.uri = std::move(options.uri),
                                      .timeout = options.timeout}) {}

PgEventLog::~PgEventLog() = default;

absl::StatusOr<PgConn*> PgEventLog::Writer() {
  if (writer_ == nullptr || writer_->broken()) {
    writer_.reset();
    ASSIGN_OR_RETURN(writer_, connector_.Connect());
  }
  return writer_.get();
}

absl::StatusOr<PgConn*> PgEventLog::Reader() {
  if (reader_ == nullptr || reader_->broken()) {
    reader_.reset();
    ASSIGN_OR_RETURN(std::unique_ptr<PgConn> conn, connector_.Connect());
    RETURN_IF_ERROR(conn->Exec(absl::StrCat("LISTEN ", kChannel).c_str()));
    reader_ = std::move(conn);
  }
  return reader_.get();
}

absl::StatusOr<int64_t> PgEventLog::AppendEvents(const std::vector<LoggedEvent>& events) {
  if (events.empty()) return absl::InvalidArgumentError("event log: nothing to append");
  BinaryArray at(kInt8Oid, events.size()), origin(kTextOid, events.size()),
      owner(kTextOid, events.size()), job_id(kTextOid, events.size()),
      body(kByteaOid, events.size());
  for (const LoggedEvent& e : events) {
    at.Add(e.at_us);
    origin.Add(e.origin);
    owner.Add(e.owner);
    job_id.Add(e.job_id);
    body.Add(e.body);
  }
  const int64_t n = static_cast<int64_t>(events.size());
  absl::MutexLock lock(&write_mu_);
  ASSIGN_OR_RETURN(PgConn * conn, Writer());
  absl::Status s = conn->Exec("BEGIN");
  absl::StatusOr<PgResult> res = absl::UnknownError("");
  if (s.ok()) {
    res = conn->Run(kAppend, {n, at.bytes(), origin.bytes(), owner.bytes(),
                              job_id.bytes(), body.bytes()});
    s = res.status();
  }
  if (s.ok() && res->rows() != 1) {
    s = absl::InternalError("event log: the event_counter row is missing");
  }
  if (s.ok()) s = conn->Commit();
  if (!s.ok()) {
    if (!conn->broken() && !conn->idle()) conn->Exec("ROLLBACK").IgnoreError();
    return s;
  }
  return res->Int(0, 0);
}

absl::StatusOr<std::vector<LoggedEvent>> PgEventLog::ReadEventsAfter(int64_t after,
                                                                     int limit) {
  absl::MutexLock lock(&read_mu_);
  ASSIGN_OR_RETURN(PgConn * conn, Reader());
  ASSIGN_OR_RETURN(PgResult res, conn->Run(kRead, {after, int64_t{limit}}));
  std::vector<LoggedEvent> out;
  out.reserve(res.rows());
  for (int r = 0; r < res.rows(); ++r) {
    LoggedEvent& e = out.emplace_back();
    e.seq = res.Int(r, 0);
    e.at_us = res.Int(r, 1);
    e.origin = std::string(res.Bytes(r, 2));
    e.owner = std::string(res.Bytes(r, 3));
    e.job_id = std::string(res.Bytes(r, 4));
    e.body = std::string(res.Bytes(r, 5));
  }
  return out;
}

absl::Status PgEventLog::WaitForEvents(int64_t /*after*/, absl::Duration timeout) {
  absl::MutexLock lock(&read_mu_);
  ASSIGN_OR_RETURN(PgConn * conn, Reader());
  PGconn* pg = conn->native();
  // A notification that came in with an earlier result (libpq keeps them)
  // or since: an append committed after the caller's last read may be
  // unread. Either way the caller reads; it never misses one.
  const auto drained = [pg] {
    bool any = false;
    while (PGnotify* n = PQnotifies(pg)) {
      PQfreemem(n);
      any = true;
    }
    return any;
  };
  const auto unavailable = [pg] {
    return absl::UnavailableError(
        absl::StrCat("event log: PostgreSQL connection lost: ", PQerrorMessage(pg)));
  };
  if (PQconsumeInput(pg) == 0) return unavailable();
  if (drained()) return absl::OkStatus();
  pollfd fd = {PQsocket(pg), POLLIN, 0};
  if (fd.fd < 0) return unavailable();
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  if (::poll(&fd, 1, ms) > 0) {
    if (PQconsumeInput(pg) == 0) return unavailable();
    drained();
  }
  return absl::OkStatus();
}

absl::StatusOr<EventLogBounds> PgEventLog::EventBounds() {
  absl::MutexLock lock(&read_mu_);
  ASSIGN_OR_RETURN(PgConn * conn, Reader());
  ASSIGN_OR_RETURN(PgResult res, conn->Run(kBounds, {}));
  EventLogBounds b;
  b.head = res.Int(0, 1);
  b.oldest = res.IsNull(0, 0) ? b.head + 1 : res.Int(0, 0);
  return b;
}

absl::StatusOr<int64_t> PgEventLog::PruneEvents(int64_t keep) {
  absl::MutexLock lock(&write_mu_);
  ASSIGN_OR_RETURN(PgConn * conn, Writer());
  ASSIGN_OR_RETURN(PgResult res, conn->Run(kPrune, {keep}));
  return res.affected();
}

}  // namespace timer::store
