#include "replica_cluster.h"

#include <postgresql/libpq-fe.h>  // Debian: /usr/include/postgresql
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "pg_cluster.h"

namespace timer::testing {

absl::StatusOr<std::unique_ptr<ReplicaCluster>> ReplicaCluster::Create(Options options) {
  const char* prefix = std::getenv("TIMER_INSTALL_PREFIX");
  if (prefix == nullptr) {
    return absl::FailedPreconditionError(
        "TIMER_INSTALL_PREFIX must name the install prefix");
  }
  std::unique_ptr<ReplicaCluster> c(new ReplicaCluster());
  c->options_ = options;
  c->timerd_ = std::string(prefix) + "/bin/timerd";
  if (!std::filesystem::exists(c->timerd_)) {
    return absl::NotFoundError(c->timerd_ + ": not installed");
  }
  absl::StatusOr<PgCluster*> pg = PgCluster::Get();
  if (!pg.ok()) return pg.status();
  absl::StatusOr<std::string> uri = (*pg)->NewDatabase();
  if (!uri.ok()) return uri.status();
  c->uri_ = *uri;
  c->replicas_.resize(options.replicas);
  for (int i = 0; i < options.replicas; ++i) {
    Replica& r = c->replicas_[i];
    r.dir = absl::StrCat(c->tmp_.path(), "/replica", i);
    r.config = r.dir + "/timerd.toml";
    r.data_dir = r.dir + "/data";
    r.record_file = r.dir + "/noop-runs.log";
    std::filesystem::create_directories(r.dir);
    std::ofstream(r.config) << "store = \"" << c->uri_ << "\"\n"
                            << "lease_ttl_ms = " << options.lease_ttl_ms << "\n"
                            << options.extra_config
                            << "\n[plugins.noop]\nrecord_file = \"" << r.record_file
                            << "\"\n";
  }
  return c;
}

ReplicaCluster::~ReplicaCluster() {
  for (Replica& r : replicas_) {
    if (r.daemon == nullptr) continue;
    if (r.paused) kill(r.daemon->pid(), SIGCONT);
    r.daemon->Stop(SIGTERM, absl::Seconds(10));
  }
}

absl::StatusOr<std::string> ReplicaCluster::IssueToken(const std::string& identity) {
  RunResult r = Run({timerd_, "token", "issue", "--data-dir", tmp_.path() + "/tokens",
                     "--identity", identity, "--store", uri_});
  if (r.exit_code != 0) return absl::InternalError("token issue: " + r.err);
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  const size_t nl = out.rfind('\n');
  return nl == std::string::npos ? out : out.substr(nl + 1);
}

absl::Status ReplicaCluster::RevokeToken(const std::string& token) {
  // tmr_<id>_<secret>
  const std::string id = token.substr(4, token.find('_', 4) - 4);
  RunResult r = Run({timerd_, "token", "revoke", id, "--data-dir",
                     tmp_.path() + "/tokens", "--store", uri_});
  if (r.exit_code != 0) return absl::InternalError("token revoke: " + r.err);
  return absl::OkStatus();
}

absl::Status ReplicaCluster::Start(int i) {
  Replica& r = replicas_[i];
  if (r.daemon != nullptr) return absl::FailedPreconditionError("already running");
  const std::string listen = r.address.empty() ? "127.0.0.1:0" : r.address;
  r.daemon = std::make_unique<Daemon>(std::vector<std::string>{
      timerd_, "--listen", listen, "--data-dir", r.data_dir, "--config", r.config});
  std::string address;
  if (!r.daemon->WaitForLog("listening on ", absl::Seconds(30), &address)) {
    const std::string log = r.daemon->log();
    r.daemon->Stop(SIGKILL);
    r.earlier_logs += log;
    r.daemon.reset();
    return absl::UnavailableError(absl::StrCat("replica ", i, " did not start: ", log));
  }
  r.address = address;
  return absl::OkStatus();
}

absl::Status ReplicaCluster::StartAll() {
  for (int i = 0; i < size(); ++i) {
    if (absl::Status s = Start(i); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void ReplicaCluster::Kill(int i) { Stop(i, SIGKILL); }

void ReplicaCluster::Pause(int i) {
  Replica& r = replicas_[i];
  if (r.daemon == nullptr || r.paused) return;
  kill(r.daemon->pid(), SIGSTOP);
  r.paused = true;
}

void ReplicaCluster::Resume(int i) {
  Replica& r = replicas_[i];
  if (r.daemon == nullptr || !r.paused) return;
  kill(r.daemon->pid(), SIGCONT);
  r.paused = false;
}

int ReplicaCluster::Stop(int i) { return Stop(i, SIGTERM); }

int ReplicaCluster::Stop(int i, int sig) {
  Replica& r = replicas_[i];
  if (r.daemon == nullptr) return -1;
  if (r.paused && sig != SIGKILL) kill(r.daemon->pid(), SIGCONT);
  r.paused = false;
  const int code = r.daemon->Stop(sig);
  r.earlier_logs += r.daemon->log();
  r.daemon.reset();
  return code;
}

std::string ReplicaCluster::log(int i) const {
  const Replica& r = replicas_[i];
  return r.earlier_logs + (r.daemon != nullptr ? r.daemon->log() : std::string());
}

std::shared_ptr<grpc::Channel> ReplicaCluster::Channel(int i) {
  Replica& r = replicas_[i];
  if (r.channel == nullptr) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // Reconnect quickly after a restart.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 300);
    r.channel =
        grpc::CreateCustomChannel(r.address, grpc::InsecureChannelCredentials(), args);
  }
  return r.channel;
}

std::unique_ptr<v1::TimerService::Stub> ReplicaCluster::Stub(int i) {
  return v1::TimerService::NewStub(Channel(i));
}

std::vector<ReplicaCluster::Record> ReplicaCluster::Records(int i) const {
  std::vector<Record> out;
  std::ifstream in(replicas_[i].record_file);
  std::string line;
  while (std::getline(in, line)) {
    // "JOB_ID/RUN_NUMBER UNIX_MS"; a line being written may be incomplete.
    const size_t slash = line.find('/');
    const size_t space = line.find(' ');
    if (slash == std::string::npos || space == std::string::npos || space < slash)
      continue;
    Record rec;
    rec.job_id = line.substr(0, slash);
    if (!absl::SimpleAtoi(line.substr(slash + 1, space - slash - 1), &rec.run_number) ||
        !absl::SimpleAtoi(line.substr(space + 1), &rec.unix_ms)) {
      continue;
    }
    out.push_back(std::move(rec));
  }
  return out;
}

std::vector<ReplicaCluster::Record> ReplicaCluster::AllRecords() const {
  std::vector<Record> all;
  for (int i = 0; i < size(); ++i) {
    std::vector<Record> some = Records(i);
    all.insert(all.end(), some.begin(), some.end());
  }
  return all;
}

std::string ReplicaCluster::ReplicaId(int i) const {
  const Replica& r = replicas_[i];
  if (r.daemon == nullptr) return "";
  const std::string log = r.daemon->log();
  static constexpr char kNeedle[] = "run engine: replica ";
  const size_t at = log.rfind(kNeedle);
  if (at == std::string::npos) return "";
  const size_t from = at + sizeof(kNeedle) - 1;
  const size_t end = log.find(' ', from);
  return end == std::string::npos ? "" : log.substr(from, end - from);
}

int ReplicaCluster::HeldShards(int i) const {
  const std::string id = ReplicaId(i);
  if (id.empty()) return -1;
  PGconn* conn = PQconnectdb(uri_.c_str());
  int held = -1;
  if (PQstatus(conn) == CONNECTION_OK) {
    const char* params[] = {id.c_str()};
    PGresult* res = PQexecParams(conn,
                                 "SELECT count(*) FROM shard_leases WHERE holder = $1 "
                                 "AND expires_at > clock_timestamp()",
                                 1, nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
      held = std::atoi(PQgetvalue(res, 0, 0));
    }
    PQclear(res);
  }
  PQfinish(conn);
  return held;
}

bool ReplicaCluster::WaitForBalance(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int total = 0;
    bool each = true;
    for (int i = 0; i < size(); ++i) {
      if (replicas_[i].daemon == nullptr || replicas_[i].paused) continue;
      const int held = HeldShards(i);
      each = each && held > 0;
      total += std::max(held, 0);
    }
    if (each && total == 256) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));  // Polling the replicas' logs.
  }
}

void PrepareContext(grpc::ClientContext* ctx, const std::string& token,
                    absl::Duration timeout) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  ctx->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace timer::testing
