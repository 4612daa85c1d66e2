// timer_bench_replicas: timerd replicas on one PostgreSQL against one timerd
// on SQLite, measured in the same run.
//
// A throwaway PostgreSQL cluster (tests/support/pg_cluster.h: initdb in a temp
// dir, loopback, fsync on) is started once; each case takes a fresh database
// and starts real timerd processes (the built binary, the noop provider with
// a `record_file` per process, loopback, port 0), in this order:
//
//   create   CreateJob/s over gRPC: --callers callers (default 64), each its
//            own channel and TCP connection with one call in flight, 1 s of
//            warm-up then a --create-seconds window (jobs an hour ahead, so
//            none fires); on SQLite, then on PostgreSQL with one replica.
//   fire     --jobs jobs (default 10,000) with a 1 s interval, first slots
//            spread evenly over one second, created through the first
//            replica; after the creates and 2 s more, a --seconds window
//            (default 10). From the record files (one line per provider
//            start: "<job_id>/<run_number> <unix ms>"): fired = distinct runs
//            whose slot falls in the window over the slots in it (run n's
//            slot: start + (n - 1 + k) s, k the slots the job skipped before
//            it, estimated from the start times); lateness = start minus slot
//            (ms resolution),
//            p50/p99/max; runs started twice (must be 0). On SQLite (the
//            baseline), then 1, 2 and 3 replicas (--replicas).
//   failover With 3 replicas, after the fire window: SIGKILL of the last
//            replica, then 10 s more. Its jobs are those it started in the
//            second before the kill; for each, the gap between its last start
//            there and its next start on another replica. Printed: the most
//            and the median gap, and when the last of them fired again after
//            the kill (lease_ttl_ms is 3000 by default: about 4 s expected).
//
// Everything is loopback; the per-identity limits are lifted in each timerd's
// config (one identity creates every job). Each timerd is stopped (SIGTERM,
// SIGKILL after 10 s; SIGKILL too if this process dies) and its directory
// removed; the cluster is stopped at exit.
//
//   timer_bench_replicas [--jobs 10000] [--seconds 10] [--replicas 1,2,3]
//       [--callers 64] [--create-seconds 5] [--cases create,fire,failover]
//
// Threading: main() drives everything; the create load runs on gRPC's
// callback threads and reports through atomics.
#include <grpcpp/grpcpp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench_support.h"
#include "pg_cluster.h"
#include "postgresql/libpq-fe.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::bench {
namespace {

namespace v1 = timer::v1;

// Targets of issue #19 on the 2-core reference machine.
constexpr double kTargetFiresPerSec = 10000;  // On 2 replicas, all fired ...
constexpr double kTargetP99Ms = 50;           // ... with this p99 lateness.
constexpr double kTargetFailoverSec = 5;

struct Options {
  int jobs = 10000;
  int seconds = 10;
  std::vector<int> replicas = {1, 2, 3};
  int callers = 64;
  int create_seconds = 5;
  std::vector<std::string> cases = {"create", "fire", "failover"};
  // postgresql://USER@HOST:PORT: a server to use instead of a throwaway
  // cluster (each case CREATEs a database of its own there).
  std::string pg;
  bool keep = false;                      // Keep the temp dir (logs, record files).
  std::vector<std::string> config_lines;  // Added to every timerd's config.
  std::string timerd = TIMER_BENCH_TIMERD;
  std::string plugin_dir = TIMER_BENCH_PLUGIN_DIR;
};

// Sleeps until the wall clock reads `us` (a window's edge).
void SleepUntil(int64_t us) {
  const int64_t left = us - WallMicros();
  if (left > 0) absl::SleepFor(absl::Microseconds(left));
}

// CPU seconds of every process of the `postgres` user (the server and its
// backends; a server run by another user is not counted: -1).
double PostgresCpuSeconds() {
  const passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) return -1;
  double total = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    pid_t pid = 0;
    if (!absl::SimpleAtoi(name, &pid)) continue;
    struct stat st;
    if (::stat(entry.path().c_str(), &st) != 0 || st.st_uid != pw->pw_uid) continue;
    total += ProcCpuSeconds(pid);
  }
  return total;
}

// Where a replica's noop provider records its starts ("<job_id>/<run> <unix
// ms>" a line): in the replica's directory.
std::string RecordFile(const std::string& dir) { return dir + "/record.txt"; }

// Launches a timerd replica in `dir` on `store` (empty: SQLite in dir/data)
// with the per-identity limits lifted (one identity creates every job) and
// the noop provider recording its starts; returns at once (WaitListening
// waits for it).
std::unique_ptr<Timerd> LaunchReplica(const Options& opt, const std::string& dir,
                                      const std::string& store, std::string* error) {
  const std::string config = absl::StrCat(
      "max_jobs_per_identity = 10000000\n"
      "max_stored_jobs_per_identity = 10000000\n"
      "max_stored_bytes_per_identity = 1099511627776\n"
      "write_rate_per_identity = 1000000\n"
      "write_burst_per_identity = 10000000\n"
      "max_active_runs_per_identity = 10000000\n",
      absl::StrJoin(opt.config_lines, "\n"), "\n",
      "load_plugins = [\"noop\"]\n"
      "[plugins.noop]\n"
      "record_file = \"",
      RecordFile(dir), "\"\n");
  std::vector<std::string> args;
  if (!store.empty()) args = {"--store", store};
  auto timerd = std::make_unique<Timerd>(opt.timerd, opt.plugin_dir);
  if (!timerd->Launch(dir, config, /*http=*/false, args, error)) return nullptr;
  return timerd;
}

// The shards a replica said it keeps last (held and not to be released), and
// of how many live replicas (-1: none said yet).
std::pair<int, int> Holding(const Timerd& timerd) {
  static const std::regex re(
      "holds (\\d+) shards \\(\\d+ gained, \\d+ lost, (?:\\d+ released, )?(\\d+) to "
      "release\\) of (\\d+) "
      "live replicas");
  const std::string log = ReadFile(timerd.log_path());
  std::pair<int, int> last = {-1, -1};
  for (auto it = std::sregex_iterator(log.begin(), log.end(), re);
       it != std::sregex_iterator(); ++it) {
    last = {std::stoi((*it)[1]) - std::stoi((*it)[2]), std::stoi((*it)[3])};
  }
  return last;
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // Its own connection.
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// `callers` callers, one CreateJob in flight each, until `total` were sent
// (0: until stopped). Jobs: a 1 s interval, the noop provider, first slot
// from `start_of(i)` for the i-th job sent.
class CreateLoad {
 public:
  struct Caller;

  CreateLoad(const std::string& address, const std::string& token, int callers,
             int64_t total, std::function<int64_t(int64_t)> start_of)
      : token_(token), total_(total), start_of_(std::move(start_of)) {
    for (int i = 0; i < callers; ++i) {
      stubs_.push_back(v1::TimerService::NewStub(NewChannel(address)));
    }
  }

  // Starts every caller; returns at once.
  void Start() {
    {
      absl::MutexLock lock(&mu_);
      running_ = static_cast<int>(stubs_.size());
    }
    for (size_t i = 0; i < stubs_.size(); ++i) Next(stubs_[i].get());
  }

  // Waits until every caller stopped (total reached, or Stop()).
  void Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](CreateLoad* l)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(l->mu_) { return l->running_ == 0; },
        this));
  }
  void Stop() { stop_.store(true); }

  // OK calls that ended at or after `from_us` (and before `to_us`).
  void CountFrom(int64_t from_us, int64_t to_us) {
    from_us_.store(from_us);
    to_us_.store(to_us);
  }
  int64_t counted() const { return counted_.load(); }
  int64_t ok() const { return ok_.load(); }
  int64_t failed() const { return failed_.load(); }
  std::string first_error() {
    absl::MutexLock lock(&mu_);
    return first_error_;
  }
  // job_id -> first slot (Unix µs) of every job created.
  absl::flat_hash_map<std::string, int64_t> TakeJobs() {
    absl::MutexLock lock(&mu_);
    return std::move(jobs_);
  }

 private:
  struct Call {
    grpc::ClientContext ctx;
    v1::CreateJobRequest req;
    v1::Job resp;
    int64_t start_us = 0;
  };

  void Next(v1::TimerService::Stub* stub) {
    const int64_t i = sent_.fetch_add(1);
    if (stop_.load() || (total_ > 0 && i >= total_)) {
      absl::MutexLock lock(&mu_);
      --running_;
      return;
    }
    auto call = std::make_shared<Call>();
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    call->ctx.AddMetadata("authorization", "Bearer " + token_);
    v1::Job* job = call->req.mutable_job();
    job->set_name(absl::StrCat("bench-", i));
    job->mutable_schedule()->set_interval_seconds(1);
    const int64_t start_us = start_of_(i);
    job->mutable_schedule()->mutable_start()->set_seconds(start_us / 1000000);
    job->mutable_schedule()->mutable_start()->set_nanos(
        static_cast<int32_t>(start_us % 1000000) * 1000);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body("{}");
    call->start_us = WallMicros();
    stub->async()->CreateJob(
        &call->ctx, &call->req, &call->resp,
        [this, stub, call, start_us](grpc::Status s) {
          const int64_t end_us = WallMicros();
          if (s.ok()) {
            ok_.fetch_add(1);
            if (call->start_us >= from_us_.load() && end_us < to_us_.load()) {
              counted_.fetch_add(1);
            }
            absl::MutexLock lock(&mu_);
            jobs_[call->resp.job_id()] = start_us;
          } else {
            failed_.fetch_add(1);
            absl::MutexLock lock(&mu_);
            if (first_error_.empty()) first_error_ = s.error_message();
          }
          Next(stub);
        });
  }

  const std::string token_;
  const int64_t total_;
  const std::function<int64_t(int64_t)> start_of_;
  std::vector<std::unique_ptr<v1::TimerService::Stub>> stubs_;
  std::atomic<int64_t> sent_{0}, ok_{0}, failed_{0}, counted_{0};
  std::atomic<int64_t> from_us_{INT64_MAX}, to_us_{INT64_MAX};
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> jobs_ ABSL_GUARDED_BY(mu_);
};

// One provider start, from a record file.
struct Start {
  int64_t run = 0;
  int64_t ms = 0;
  int replica = 0;
};

// job_id -> its starts, in file order, from every replica's record file.
absl::flat_hash_map<std::string, std::vector<Start>> ReadStarts(
    const std::vector<std::string>& files) {
  absl::flat_hash_map<std::string, std::vector<Start>> starts;
  for (size_t f = 0; f < files.size(); ++f) {
    std::ifstream in(files[f]);
    std::string line;
    while (std::getline(in, line)) {
      const size_t slash = line.rfind('/');
      const size_t space = line.rfind(' ');
      if (slash == std::string::npos || space == std::string::npos || space < slash) {
        continue;
      }
      Start s;
      s.replica = static_cast<int>(f);
      if (!absl::SimpleAtoi(line.substr(slash + 1, space - slash - 1), &s.run) ||
          !absl::SimpleAtoi(line.substr(space + 1), &s.ms)) {
        continue;
      }
      starts[line.substr(0, slash)].push_back(s);
    }
  }
  return starts;
}

// A new database on the server at `base` (postgresql://USER@HOST:PORT).
absl::StatusOr<std::string> NewDatabaseAt(const std::string& base) {
  static int n = 0;
  const std::string name = absl::StrCat("replica_bench_", ::getpid(), "_", ++n);
  PGconn* conn = PQconnectdb((base + "/postgres").c_str());
  absl::Status status;
  if (PQstatus(conn) != CONNECTION_OK) {
    status = absl::UnavailableError(PQerrorMessage(conn));
  } else {
    PGresult* res = PQexec(conn, ("CREATE DATABASE " + name).c_str());
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      status = absl::InternalError(PQerrorMessage(conn));
    }
    PQclear(res);
  }
  PQfinish(conn);
  if (!status.ok()) return status;
  return base + "/" + name;
}

struct FireFigures {
  std::string name;
  int64_t expected = 0, fired = 0, twice = 0;
  double p50 = 0, p99 = 0, max = 0;
  double cpu_percent = 0;     // timerd processes, of one core, over the window.
  double pg_cpu_percent = 0;  // PostgreSQL's processes, likewise.
  std::string error;
};

struct Cluster {
  timer::testing::PgCluster* pg = nullptr;
  std::string tmp;
};

// Issues a token on `store` (empty: SQLite in dir/r0/data).
bool IssueToken(const Options& opt, const std::string& dir, const std::string& store,
                std::string* token, std::string* error) {
  std::filesystem::create_directories(dir + "/r0/data");
  std::vector<std::string> argv = {opt.timerd, "token", "issue", "--identity",
                                   "bench@example.org"};
  if (store.empty()) {
    argv.insert(argv.end(), {"--data-dir", dir + "/r0/data"});
  } else {
    argv.insert(argv.end(), {"--store", store});
  }
  std::string out;
  if (RunToEnd(argv, dir, &out) != 0) {
    *error = "timerd token issue failed: " + out;
    return false;
  }
  *token = LastLine(out);
  return true;
}

// Starts timerds on `store` (empty: SQLite, one process) until there are
// `replicas`, and waits until they listen and their leases are balanced.
bool AddReplicas(const Options& opt, const std::string& dir, const std::string& store,
                 int replicas, std::vector<std::unique_ptr<Timerd>>* timerds,
                 std::string* error) {
  const size_t before = timerds->size();
  for (int r = static_cast<int>(before); r < replicas; ++r) {
    std::unique_ptr<Timerd> timerd =
        LaunchReplica(opt, absl::StrCat(dir, "/r", r), store, error);
    if (timerd == nullptr) return false;
    timerds->push_back(std::move(timerd));
  }
  for (size_t r = before; r < timerds->size(); ++r) {
    if (!(*timerds)[r]->WaitListening(30, error)) return false;
  }
  if (store.empty()) return true;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (;;) {
    int sum = 0;
    bool all = true;
    for (auto& t : *timerds) {
      const auto [kept, live] = Holding(*t);
      all = all && live == replicas;
      sum += std::max(kept, 0);
    }
    if (all && sum == 256) return true;
    if (absl::Now() > deadline) {
      *error = "the replicas' shard leases did not settle within 30 s";
      return false;
    }
    absl::SleepFor(absl::Milliseconds(50));  // Polling the replicas' logs.
  }
}

// The create case on one timerd (the first of `timerds`).
std::string MeasureCreates(const Options& opt, const Timerd& timerd,
                           const std::string& token, double* per_sec) {
  const int64_t hour_ahead = WallMicros() + 3600LL * 1000000;
  CreateLoad load(timerd.address(), token, opt.callers, 0,
                  [hour_ahead](int64_t) { return hour_ahead; });
  const int64_t from = WallMicros() + 1000000;
  const int64_t to = from + opt.create_seconds * 1000000LL;
  load.CountFrom(from, to);
  load.Start();
  SleepUntil(to);
  load.Stop();
  load.Wait();
  *per_sec = static_cast<double>(load.counted()) / opt.create_seconds;
  if (load.failed() > 0) {
    return absl::StrCat(load.failed(), " creates failed: ", load.first_error());
  }
  return "";
}

// The fire case on running timerds; with `kill_last`, then the failover.
// The jobs are created through the one timerd running; then the others
// start (`add_replicas`) and take their shards from it (reading their due
// jobs as they gain them: a job created through another replica would reach
// its shard's holder only at its next rescan).
FireFigures MeasureFires(const Options& opt, const std::string& name,
                         std::vector<std::unique_ptr<Timerd>>& timerds,
                         const std::string& token,
                         const std::function<bool(std::string*)>& add_replicas,
                         bool kill_last, double* failover_max, double* failover_median,
                         double* refired_after_kill) {
  FireFigures fig;
  fig.name = name;
  // First slots spread over one second, far enough ahead for the creates
  // (at 1,500/s) and the other replicas' start: a job created after its
  // first slot would start off the grid this bench assumes.
  const int64_t t0 = (WallMicros() / 1000000 + 4 + opt.jobs / 1500) * 1000000;
  const int64_t n = opt.jobs;
  CreateLoad load(timerds[0]->address(), token, opt.callers, n,
                  [t0, n](int64_t i) { return t0 + i * 1000000 / n; });
  load.Start();
  load.Wait();
  if (load.failed() > 0) {
    fig.error = absl::StrCat(load.failed(), " creates failed: ", load.first_error());
    return fig;
  }
  absl::flat_hash_map<std::string, int64_t> jobs = load.TakeJobs();
  if (WallMicros() > t0) {
    std::printf("  WARNING: creating the jobs overran their first slots by %.1f s\n",
                static_cast<double>(WallMicros() - t0) / 1e6);
  }
  if (!add_replicas(&fig.error)) return fig;
  const int64_t w0 = std::max(WallMicros(), t0) / 1000000 * 1000000 + 3000000;
  const int64_t w1 = w0 + opt.seconds * 1000000LL;
  SleepUntil(w0);
  double cpu0 = 0;
  for (auto& t : timerds) cpu0 += t->CpuSeconds();
  const double pg0 = PostgresCpuSeconds();
  SleepUntil(w1);
  double cpu1 = 0;
  for (auto& t : timerds) cpu1 += t->CpuSeconds();
  fig.cpu_percent = 100.0 * (cpu1 - cpu0) / opt.seconds;
  fig.pg_cpu_percent = 100.0 * (PostgresCpuSeconds() - pg0) / opt.seconds;
  int64_t kill_ms = 0;
  if (kill_last) {
    kill_ms = WallMicros() / 1000;
    timerds.back()->Stop(SIGKILL);
    absl::SleepFor(absl::Seconds(10));
  } else {
    absl::SleepFor(absl::Seconds(1));  // The window's last starts recorded.
  }
  std::vector<std::string> files;
  for (auto& t : timerds) files.push_back(RecordFile(t->dir()));
  const absl::flat_hash_map<std::string, std::vector<Start>> starts = ReadStarts(files);

  std::vector<double> lateness;
  for (const auto& [id, first_us] : jobs) {
    // Slots in [w0, w1).
    for (int64_t slot = first_us; slot < w1; slot += 1000000) {
      if (slot >= w0) ++fig.expected;
    }
  }
  std::vector<double> gaps;
  double last_refire = 0;
  for (const auto& [id, list] : starts) {
    auto job = jobs.find(id);
    if (job == jobs.end()) continue;
    // Run n is for slot n + k, k the slots the job skipped before it (a
    // missed slot takes no run number: missed_run_policy SKIP_MISSED). k is
    // estimated from the start times, assuming some run after n and before
    // the next skip started less than 0.5 s late: the least of the
    // estimates of runs n, n+1, ... (lateness only adds to an estimate).
    std::map<int64_t, int64_t> first_start;  // run -> earliest start (ms)
    std::map<int64_t, int> seen;
    for (const Start& s : list) {
      if (++seen[s.run] > 1) ++fig.twice;
      auto [it, added] = first_start.emplace(s.run, s.ms);
      if (!added) it->second = std::min(it->second, s.ms);
    }
    std::map<int64_t, int64_t> skipped;  // run -> slots skipped before it
    int64_t least = INT64_MAX;
    for (auto it = first_start.rbegin(); it != first_start.rend(); ++it) {
      const int64_t since_ms = it->second - job->second / 1000;
      const int64_t estimate = (since_ms + 500) / 1000 - (it->first - 1);
      least = std::min(least, std::max<int64_t>(estimate, 0));
      skipped[it->first] = least;
    }
    for (const auto& [run, ms] : first_start) {
      const int64_t slot_us = job->second + (run - 1 + skipped[run]) * 1000000;
      if (slot_us < w0 || slot_us >= w1) continue;
      ++fig.fired;
      lateness.push_back(static_cast<double>(ms) - static_cast<double>(slot_us) / 1000);
    }
    if (kill_last) {
      // A job of the killed replica: started there in the second before.
      const int victim = static_cast<int>(timerds.size()) - 1;
      int64_t last_there = 0, next_elsewhere = 0;
      for (const Start& s : list) {
        if (s.replica == victim && s.ms <= kill_ms)
          last_there = std::max(last_there, s.ms);
      }
      if (last_there < kill_ms - 1000) continue;
      for (const Start& s : list) {
        if (s.replica != victim && s.ms > last_there &&
            (next_elsewhere == 0 || s.ms < next_elsewhere)) {
          next_elsewhere = s.ms;
        }
      }
      if (next_elsewhere == 0) {
        gaps.push_back(1e9);  // Never fired again.
        continue;
      }
      gaps.push_back(static_cast<double>(next_elsewhere - last_there) / 1000);
      last_refire =
          std::max(last_refire, static_cast<double>(next_elsewhere - kill_ms) / 1000);
    }
  }
  fig.p50 = Percentile(lateness, 0.5);
  fig.p99 = Percentile(lateness, 0.99);
  fig.max = lateness.empty() ? 0 : *std::max_element(lateness.begin(), lateness.end());
  if (kill_last) {
    *failover_max = gaps.empty() ? -1 : *std::max_element(gaps.begin(), gaps.end());
    *failover_median = Percentile(gaps, 0.5);
    *refired_after_kill = last_refire;
  }
  return fig;
}

int Main(const Options& opt) {
  absl::StatusOr<timer::testing::PgCluster*> pg = nullptr;
  if (opt.pg.empty()) pg = timer::testing::PgCluster::Get();
  if (!pg.ok()) {
    std::fprintf(stderr, "replica bench: no PostgreSQL cluster: %s\n",
                 std::string(pg.status().message()).c_str());
    return 1;
  }
  char tmpl[] = "/tmp/timer-replica-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::string tmp = tmpl;
  auto want = [&](const std::string& c) {
    return std::find(opt.cases.begin(), opt.cases.end(), c) != opt.cases.end();
  };
  std::printf(
      "replica bench: %d jobs at a 1 s interval, %d s windows, %d callers; "
      "load average %s\n",
      opt.jobs, opt.seconds, opt.callers, LoadAverage().c_str());
  std::fflush(stdout);
  int failures = 0;
  int case_no = 0;
  // Each case: a fresh database (or data dir) and fresh processes.
  auto run_case = [&](int replicas, bool sqlite, auto&& body) {
    const std::string dir = absl::StrCat(tmp, "/case", ++case_no);
    std::string store;
    if (!sqlite) {
      absl::StatusOr<std::string> uri =
          opt.pg.empty() ? (*pg)->NewDatabase() : NewDatabaseAt(opt.pg);
      if (!uri.ok()) {
        std::printf("  FAILED: no database: %s\n",
                    std::string(uri.status().message()).c_str());
        ++failures;
        return;
      }
      store = *uri;
    }
    std::vector<std::unique_ptr<Timerd>> timerds;
    std::string token, error;
    if (!IssueToken(opt, dir, store, &token, &error) ||
        !AddReplicas(opt, dir, store, 1, &timerds, &error)) {
      std::printf("  FAILED: %s\n", error.c_str());
      ++failures;
      return;
    }
    const std::function<bool(std::string*)> add = [&](std::string* err) {
      return AddReplicas(opt, dir, store, replicas, &timerds, err);
    };
    body(timerds, token, add);
    timerds.clear();
    if (!opt.keep) std::filesystem::remove_all(dir);
  };

  double sqlite_creates = 0, pg_creates = 0;
  if (want("create")) {
    std::printf("\ncreate: CreateJob/s, %d callers, %d s window\n", opt.callers,
                opt.create_seconds);
    for (bool sqlite : {true, false}) {
      run_case(1, sqlite, [&](auto& timerds, const std::string& token, auto&) {
        double rate = 0;
        const std::string err = MeasureCreates(opt, *timerds[0], token, &rate);
        (sqlite ? sqlite_creates : pg_creates) = rate;
        std::printf("  %-22s %8.0f creates/s%s%s\n",
                    sqlite ? "SQLite (one timerd)" : "PostgreSQL (1 replica)", rate,
                    err.empty() ? "" : "  ERROR: ", err.c_str());
        if (!err.empty()) ++failures;
        std::fflush(stdout);
      });
    }
    if (sqlite_creates > 0) {
      std::printf("  PostgreSQL / SQLite: %.2f\n", pg_creates / sqlite_creates);
    }
  }

  std::vector<FireFigures> fires;
  double failover_max = -1, failover_median = -1, refired = -1;
  if (want("fire") || want("failover")) {
    std::printf("\nfire: %d jobs at a 1 s interval (%d fires/s), %d s window\n", opt.jobs,
                opt.jobs, opt.seconds);
    std::printf("  %-22s %8s %7s %7s %7s %5s %7s %7s %s\n", "store", "fired", "p50 ms",
                "p99 ms", "max ms", "twice", "timerd%", "pg%", "load");
    auto print = [&](const FireFigures& f) {
      if (!f.error.empty()) {
        std::printf("  %-22s ERROR: %s\n", f.name.c_str(), f.error.c_str());
        ++failures;
        return;
      }
      std::printf("  %-22s %8.4f %7.1f %7.1f %7.1f %5lld %7.0f %7.0f %s\n",
                  f.name.c_str(),
                  f.expected > 0 ? static_cast<double>(f.fired) / f.expected : 0, f.p50,
                  f.p99, f.max, static_cast<long long>(f.twice), f.cpu_percent,
                  f.pg_cpu_percent, LoadAverage().c_str());
      if (f.twice > 0) ++failures;
      std::fflush(stdout);
    };
    if (want("fire")) {
      run_case(1, true, [&](auto& timerds, const std::string& token, auto& add) {
        fires.push_back(MeasureFires(opt, "SQLite (one timerd)", timerds, token, add,
                                     false, nullptr, nullptr, nullptr));
        print(fires.back());
      });
    }
    for (int replicas : opt.replicas) {
      const bool kill = replicas == 3 && want("failover");
      if (!want("fire") && !kill) continue;
      run_case(replicas, false, [&](auto& timerds, const std::string& token, auto& add) {
        fires.push_back(MeasureFires(
            opt,
            absl::StrCat("PostgreSQL, ", replicas,
                         replicas == 1 ? " replica" : " replicas"),
            timerds, token, add, kill, &failover_max, &failover_median, &refired));
        print(fires.back());
      });
    }
    for (const FireFigures& f : fires) {
      if (f.name != "PostgreSQL, 2 replicas" || !f.error.empty()) continue;
      const double ratio = f.expected > 0 ? static_cast<double>(f.fired) / f.expected : 0;
      const bool met =
          opt.jobs >= kTargetFiresPerSec && ratio >= 1.0 && f.p99 <= kTargetP99Ms;
      std::printf(
          "  target (2 replicas): >= %.0f fires/s all fired, p99 <= %.0f ms: %s\n",
          kTargetFiresPerSec, kTargetP99Ms, met ? "met" : "MISSED");
    }
  }
  if (want("failover") && failover_max >= 0) {
    std::printf("\nfailover: SIGKILL of one of 3 replicas\n");
    std::printf(
        "  its jobs' gap (last start there, next on another): max %.2f s, "
        "median %.2f s; all fired again %.2f s after the kill; target <= %.0f s: "
        "%s\n",
        failover_max, failover_median, refired, kTargetFailoverSec,
        refired <= kTargetFailoverSec ? "met" : "MISSED");
  }
  if (opt.keep) {
    std::printf("kept: %s\n", tmp.c_str());
  } else {
    std::filesystem::remove_all(tmp);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int Main(int argc, char** argv) {
  Options opt;
  CLI::App app{"timerd replicas on PostgreSQL against one timerd on SQLite"};
  app.add_option("--jobs", opt.jobs, "jobs at a 1 s interval (fires/s)");
  app.add_option("--seconds", opt.seconds, "the fire window");
  app.add_option("--replicas", opt.replicas, "replica counts to measure")->delimiter(',');
  app.add_option("--callers", opt.callers, "concurrent CreateJob callers");
  app.add_option("--create-seconds", opt.create_seconds, "the create window");
  app.add_option("--cases", opt.cases, "create,fire,failover")->delimiter(',');
  app.add_option("--pg", opt.pg,
                 "postgresql://USER@HOST:PORT to use instead of a throwaway cluster");
  app.add_option(
      "--config-line", opt.config_lines,
      "a line added to every timerd's config, e.g. store_writers=1 (repeatable)");
  app.add_flag("--keep", opt.keep, "keep the temp dir: timerd logs and record files");
  app.add_option("--timerd", opt.timerd, "the timerd binary");
  app.add_option("--plugin-dir", opt.plugin_dir, "directory of noop.so");
  CLI11_PARSE(app, argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  return Main(opt);
}

}  // namespace timer::bench

int main(int argc, char** argv) { return timer::bench::Main(argc, argv); }
