// timer_bench_create_get: durable CreateJob and GetJob throughput and latency
// through a real timerd over loopback, against the raw SQLite single-commit
// rate measured in the same run on the same filesystem.
//
// Each run makes a fresh directory under the temp dir and, in this order,
// runs the cases --cases asks for (default sqlite,create,get):
//   sqlite  sqlite-commit: one connection, WAL, synchronous=FULL, one small
//           INSERT per transaction, as many as fit in the window: the
//           single-commit ceiling that group commit is compared with. Run
//           again at the end (sqlite-again); ratios use the mean of both.
//   store   store-create (diagnostic): domain::JobService over a SqliteStore
//           (with --store URI: a PostgresStore on that database), no gRPC,
//           N threads each waiting until its write is durable.
//           Shows writes per commit (SqliteStore::commits), which the server
//           hides.
//   floor   WhoAmI-floor (diagnostic): SessionService.WhoAmI on the same
//           server, answered inline without the job store (only the bearer
//           token's lookup, as every call makes): the most any unary RPC
//           reaches with this client on this machine.
//   create  CreateJob through a TimerServer started in-process on
//           127.0.0.1:0 with a temp data dir and the noop provider (with
//           --store URI: on that PostgreSQL database).
//   get     GetJob: --get-jobs jobs are created first, then every caller
//           fetches random ones of them.
// For each N in --callers, N callers each own a channel (and so a TCP
// connection) and keep one RPC in flight: a thread each on the sync stub
// (default), or with --client callback, the callback API on gRPC's threads.
// Every RPC has a deadline. Only OK responses that start and end inside the
// measuring window count; errors are counted and the first one printed.
// cpu% is this process's CPU time (load generator and server together) over
// the window, out of 100% per core. The temp directory is removed at the end.
//
// Usage:
//   timer_bench_create_get [--seconds 5] [--warmup 1] [--callers 1,64]
//       [--runs 3] [--cases sqlite,store,floor,create,get] [--client callback]
//       [--get-jobs 10000] [--deadline-ms 10000] [--tmp DIR]
//       [--store postgres://...] [--help]
//
// With --runs > 1 every run's table is printed, then the median of each
// figure over the runs (ratios are taken within a run, then their median).
// Exits 1 if any operation failed.
//
// Threading: main() drives everything; load threads share only atomics and
// their own result slots, which are read after the threads are joined (or,
// for the callback client, after every caller has stopped).
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "auth/token.h"
#include "bench_support.h"
#include "domain/clock.h"
#include "domain/identity.h"
#include "domain/jobs.h"
#include "server/config.h"
#include "server/server.h"
#include "server/store_open.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"
#include "store/sqlite_token_store.h"
#include "timer/v1/session.grpc.pb.h"
#include "timer/v1/timer.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

// Targets from the issue, on the 2-core reference machine.
constexpr double kTargetCreatesPerSec = 10000;  // With 64 callers.
constexpr double kTargetGetsPerSec = 20000;
constexpr int kTargetCallers = 64;

struct Options {
  int seconds = 5;
  int warmup = 1;
  std::vector<int> callers = {1, 64};
  int runs = 1;
  std::vector<std::string> cases = {"sqlite", "create", "get"};
  int get_jobs = 10000;
  int deadline_ms = 10000;
  std::string tmp;
  // "sync": a thread per caller blocking on a sync stub. "callback": each
  // caller keeps one call in flight with the callback API, on gRPC's threads.
  std::string client = "sync";
  std::string target;  // Drive this timerd instead of an in-process one.
  int channels = 0;    // 0: one channel per caller.
  std::string plugin_dir = TIMER_BENCH_PLUGIN_DIR;  // Holds noop.so.
  // Created jobs start this far in the future, so none fires during the run
  // and CreateJob is measured alone. 0: leave start unset (the server's
  // default, the next whole second: every job then also runs once).
  int start_in_seconds = 3600;
  // A postgres:// URI: the store and create cases use PostgreSQL there.
  std::string store;
};

// One row of the table.
struct CaseResult {
  std::string name;
  int callers = 0;
  int64_t ops = 0;  // OK operations completed inside the window.
  double seconds = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  int64_t errors = 0;
  std::string first_error;
  double ops_per_sec = 0;
  double cpu_seconds = 0;        // Process CPU time in the window.
  double vs_sqlite = 0;          // ops_per_sec / the same run's sqlite-commit.
  double writes_per_commit = 0;  // store-create only.
};

// What one worker thread measured.
struct WorkerResult {
  std::vector<int64_t> latencies_ns;
  int64_t errors = 0;
  std::string first_error;
};

CaseResult Failed(std::string name, int callers, std::string error) {
  CaseResult c;
  c.name = std::move(name);
  c.callers = callers;
  c.errors = 1;
  c.first_error = std::move(error);
  return c;
}

double PercentileMs(std::vector<int64_t>& v, double q) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(q * (v.size() - 1));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k] / 1e6;
}

enum Phase { kWarmup, kMeasure, kStop };

double ProcessCpuSeconds() {
  rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(ru.ru_utime) + seconds(ru.ru_stime);
}

// The measuring window: wall time, and CPU time of this whole process (load
// generator and in-process server together, every thread).
struct Window {
  Clock::time_point wall_start, wall_end;
  double cpu_start = 0, cpu_end = 0;
  void Start() {
    wall_start = Clock::now();
    cpu_start = ProcessCpuSeconds();
  }
  void Stop() {
    wall_end = Clock::now();
    cpu_end = ProcessCpuSeconds();
  }
};

// Merges what the callers measured in a window of `window`.
CaseResult Summarize(const std::string& name, int callers, const Window& window,
                     std::vector<WorkerResult>& results) {
  CaseResult c;
  c.name = name;
  c.callers = callers;
  c.seconds = std::chrono::duration<double>(window.wall_end - window.wall_start).count();
  c.cpu_seconds = window.cpu_end - window.cpu_start;
  std::vector<int64_t> all;
  for (WorkerResult& r : results) {
    all.insert(all.end(), r.latencies_ns.begin(), r.latencies_ns.end());
    c.errors += r.errors;
    if (c.first_error.empty()) c.first_error = r.first_error;
  }
  c.ops = static_cast<int64_t>(all.size());
  c.ops_per_sec = c.seconds > 0 ? c.ops / c.seconds : 0;
  c.p50_ms = PercentileMs(all, 0.50);
  c.p99_ms = PercentileMs(all, 0.99);
  c.max_ms = all.empty() ? 0 : *std::max_element(all.begin(), all.end()) / 1e6;
  return c;
}

// Runs `op` in a loop on `threads` threads: `warmup` unmeasured, then
// `seconds` measured. `op(thread_index, error)` returns true on success and
// otherwise describes the failure in *error.
CaseResult RunLoad(const std::string& name, int threads, const Options& opt,
                   std::function<bool(int, std::string*)> op) {
  std::atomic<int> phase{kWarmup};
  std::vector<WorkerResult> results(threads);
  std::vector<std::thread> workers;
  workers.reserve(threads);
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      WorkerResult& r = results[t];
      r.latencies_ns.reserve(1 << 16);
      std::string error;
      for (;;) {
        const int before = phase.load(std::memory_order_relaxed);
        if (before == kStop) break;
        const Clock::time_point start = Clock::now();
        const bool ok = op(t, &error);
        const int64_t ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start)
                .count();
        // Counted when it both started and ended inside the window.
        if (before != kMeasure || phase.load(std::memory_order_relaxed) != kMeasure) {
          continue;
        }
        if (ok) {
          r.latencies_ns.push_back(ns);
        } else {
          if (r.errors++ == 0) r.first_error = error;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(opt.warmup));
  Window window;
  window.Start();
  phase = kMeasure;
  std::this_thread::sleep_for(std::chrono::seconds(opt.seconds));
  phase = kStop;
  window.Stop();
  for (std::thread& w : workers) w.join();
  return Summarize(name, threads, window, results);
}

// ---- 1. The raw SQLite single-commit baseline ----

bool Check(sqlite3* db, int rc, const char* what, std::string* error) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return true;
  *error = absl::StrCat(what, ": ", sqlite3_errmsg(db));
  return false;
}

CaseResult SqliteBaseline(const std::string& dir, const Options& opt) {
  const std::string path = dir + "/baseline.db";
  sqlite3* db = nullptr;
  std::string error;
  if (!Check(db, sqlite3_open(path.c_str(), &db), "open", &error) ||
      !Check(db,
             sqlite3_exec(db,
                          "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                          "CREATE TABLE t (id TEXT PRIMARY KEY, create_us INTEGER, "
                          "v BLOB);",
                          nullptr, nullptr, nullptr),
             "configure", &error)) {
    sqlite3_close(db);
    return Failed("sqlite-commit", 1, error);
  }
  sqlite3_stmt* insert = nullptr;
  if (!Check(
          db,
          sqlite3_prepare_v2(db, "INSERT INTO t (id, create_us, v) VALUES (?1, ?2, ?3)",
                             -1, &insert, nullptr),
          "prepare", &error)) {
    sqlite3_close(db);
    return Failed("sqlite-commit", 1, error);
  }
  // A row about the size of a stored job: a UUID-like key and ~150 bytes.
  const std::string blob(150, 'x');
  int64_t n = 0;
  CaseResult c = RunLoad("sqlite-commit", 1, opt, [&](int, std::string* err) {
    const std::string id = absl::StrCat("00000000-0000-4000-8000-", 100000000000 + n++);
    sqlite3_reset(insert);
    sqlite3_bind_text(insert, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    sqlite3_bind_int64(insert, 2, n);
    sqlite3_bind_blob(insert, 3, blob.data(), static_cast<int>(blob.size()),
                      SQLITE_STATIC);
    // Autocommit: this INSERT is its own transaction, fsynced on commit.
    return Check(db, sqlite3_step(insert), "insert", err);
  });
  sqlite3_finalize(insert);
  sqlite3_close(db);
  return c;
}

// ---- 2. The domain + store without gRPC (diagnostic) ----

timer::v1::CreateJobRequest NewCreateRequest(int thread, int64_t n, const Options& opt) {
  timer::v1::CreateJobRequest request;
  timer::v1::Job* job = request.mutable_job();
  job->set_name(absl::StrCat("bench-", thread, "-", n));
  job->mutable_schedule()->set_interval_seconds(3600);
  if (opt.start_in_seconds > 0) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    job->mutable_schedule()->mutable_start()->set_seconds(now + opt.start_in_seconds);
  }
  job->mutable_action()->set_provider("noop");
  job->mutable_action()->set_body("{}");
  return request;
}

// The store the store case writes to, with its commits() counter.
struct BenchStore {
  std::unique_ptr<timer::store::Store> store;
  std::function<int64_t()> commits;
};

absl::StatusOr<BenchStore> OpenBenchStore(const std::string& dir, const Options& opt) {
  BenchStore b;
  if (!opt.store.empty()) {
    auto pg = timer::store::PostgresStore::Open({.uri = opt.store});
    if (!pg.ok()) return pg.status();
    auto* raw = pg->get();
    b.commits = [raw] { return raw->commits(); };
    b.store = *std::move(pg);
    return b;
  }
  auto sqlite = timer::store::SqliteStore::Open({.path = dir + "/store.db"});
  if (!sqlite.ok()) return sqlite.status();
  auto* raw = sqlite->get();
  b.commits = [raw] { return raw->commits(); };
  b.store = *std::move(sqlite);
  return b;
}

CaseResult StoreCreate(const std::string& dir, int threads, const Options& opt) {
  auto store = OpenBenchStore(dir, opt);
  if (!store.ok()) {
    return Failed("store-create", threads, std::string(store.status().message()));
  }
  timer::domain::SystemClock clock;
  timer::domain::JobService jobs(store->store.get(), &clock);
  const timer::domain::Identity caller = timer::domain::LocalIdentity();
  std::vector<int64_t> counters(threads, 0);
  std::atomic<int64_t> writes{0};
  CaseResult c = RunLoad("store-create", threads, opt, [&](int t, std::string* err) {
    absl::Notification done;
    absl::Status status;
    jobs.CreateJob(caller, NewCreateRequest(t, counters[t]++, opt),
                   [&](absl::StatusOr<timer::v1::Job> result) {
                     status = result.status();
                     done.Notify();
                   });
    done.WaitForNotification();
    writes.fetch_add(1, std::memory_order_relaxed);
    if (!status.ok()) *err = status.ToString();
    return status.ok();
  });
  const int64_t commits = store->commits();
  store->store->Close();
  // Over the whole case, warmup included: writes per fsynced transaction.
  c.writes_per_commit = commits > 0 ? static_cast<double>(writes.load()) / commits : 0;
  return c;
}

// ---- 3 and 4. Through the real server ----

std::string Describe(const grpc::Status& s) {
  return absl::StrCat("code ", static_cast<int>(s.error_code()), ": ", s.error_message());
}

// The bearer token every call carries: issued for the in-process timerd, or
// TIMER_TOKEN with --target. Set before any channel is made.
std::string g_bearer;

// Adds `authorization: Bearer g_bearer` to every call of a channel.
class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", header_});
    }
    methods->Proceed();
  }

 private:
  const std::string header_ = "Bearer " + g_bearer;
};

class BearerInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerInterceptor();
  }
};

// One channel per caller, each with its own TCP connection; with
// --channels K, caller i uses channel i % K instead (a diagnostic).
std::vector<std::shared_ptr<grpc::Channel>> Connect(const std::string& address,
                                                    int callers, const Options& opt,
                                                    std::string* error) {
  const int n = opt.channels > 0 ? std::min(opt.channels, callers) : callers;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    // Without this, channels to one target share one TCP connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(std::make_unique<BearerInterceptorFactory>());
    auto channel = grpc::experimental::CreateCustomChannelWithInterceptors(
        address, grpc::InsecureChannelCredentials(), args, std::move(interceptors));
    if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::seconds(10))) {
      *error = absl::StrCat("channel ", i, " to ", address, " did not connect");
      return {};
    }
    channels.push_back(std::move(channel));
  }
  std::vector<std::shared_ptr<grpc::Channel>> per_caller;
  for (int i = 0; i < callers; ++i) per_caller.push_back(channels[i % n]);
  return per_caller;
}

template <typename Service>
std::vector<std::unique_ptr<typename Service::Stub>> MakeStubs(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  std::vector<std::unique_ptr<typename Service::Stub>> stubs;
  for (const auto& channel : channels) stubs.push_back(Service::NewStub(channel));
  return stubs;
}

using Stubs = std::vector<std::unique_ptr<timer::v1::TimerService::Stub>>;
// Makes caller t's next call with the sync stub.
using SyncCall = std::function<grpc::Status(int t, grpc::ClientContext* ctx)>;
// Starts caller t's next call with the callback API; `done` runs once.
using AsyncCall = std::function<void(int t, grpc::ClientContext* ctx,
                                     std::function<void(grpc::Status)> done)>;

// The callback-API load: each caller keeps exactly one call in flight and
// starts its next one from the previous one's completion (never blocking).
CaseResult RunLoadAsync(const std::string& name, int callers, const Options& opt,
                        const AsyncCall& call) {
  struct Caller {
    std::unique_ptr<grpc::ClientContext> ctx;
    Clock::time_point start;
    int start_phase = kWarmup;
    WorkerResult result;
  };
  std::atomic<int> phase{kWarmup};
  std::vector<Caller> slots(callers);
  absl::Mutex mu;
  int active = callers;
  std::function<void(int)> issue = [&](int t) {
    Caller& c = slots[t];
    c.start_phase = phase.load(std::memory_order_relaxed);
    if (c.start_phase == kStop) {
      absl::MutexLock lock(&mu);
      --active;
      return;
    }
    // Safe to replace inside the previous call's callback: the callback
    // holds its own reference to the call.
    c.ctx = std::make_unique<grpc::ClientContext>();
    c.ctx->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(opt.deadline_ms));
    c.start = Clock::now();
    call(t, c.ctx.get(), [&, t](grpc::Status s) {
      Caller& c = slots[t];
      const int64_t ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - c.start)
              .count();
      if (c.start_phase == kMeasure &&
          phase.load(std::memory_order_relaxed) == kMeasure) {
        if (s.ok()) {
          c.result.latencies_ns.push_back(ns);
        } else if (c.result.errors++ == 0) {
          c.result.first_error = Describe(s);
        }
      }
      issue(t);
    });
  };
  for (int t = 0; t < callers; ++t) {
    slots[t].result.latencies_ns.reserve(1 << 16);
    issue(t);
  }
  std::this_thread::sleep_for(std::chrono::seconds(opt.warmup));
  Window window;
  window.Start();
  phase = kMeasure;
  std::this_thread::sleep_for(std::chrono::seconds(opt.seconds));
  phase = kStop;
  window.Stop();
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* active) { return *active == 0; }, &active));
  }
  std::vector<WorkerResult> results;
  for (Caller& c : slots) results.push_back(std::move(c.result));
  return Summarize(name, callers, window, results);
}

// Runs one RPC case with the client kind --client chose.
CaseResult RunRpcLoad(const std::string& name, int callers, const Options& opt,
                      const SyncCall& sync_call, const AsyncCall& async_call) {
  if (opt.client == "callback") return RunLoadAsync(name, callers, opt, async_call);
  return RunLoad(name, callers, opt, [&](int t, std::string* err) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(opt.deadline_ms));
    grpc::Status s = sync_call(t, &ctx);
    if (!s.ok()) *err = Describe(s);
    return s.ok();
  });
}

CaseResult CreateJobs(const std::string& address, int callers, const Options& opt) {
  std::string error;
  Stubs stubs =
      MakeStubs<timer::v1::TimerService>(Connect(address, callers, opt, &error));
  if (stubs.empty()) return Failed("CreateJob", callers, error);
  struct Slot {
    int64_t n = 0;
    timer::v1::CreateJobRequest request;
    timer::v1::Job job;
  };
  std::vector<Slot> slots(callers);
  return RunRpcLoad(
      "CreateJob", callers, opt,
      [&](int t, grpc::ClientContext* ctx) {
        Slot& s = slots[t];
        s.request = NewCreateRequest(t, s.n++, opt);
        return stubs[t]->CreateJob(ctx, s.request, &s.job);
      },
      [&](int t, grpc::ClientContext* ctx, std::function<void(grpc::Status)> done) {
        Slot& s = slots[t];
        s.request = NewCreateRequest(t, s.n++, opt);
        stubs[t]->async()->CreateJob(ctx, &s.request, &s.job, std::move(done));
      });
}

// The gRPC floor of this setup: SessionService.WhoAmI on the same server,
// answered inline by its handler, no store: what any unary RPC costs here.
CaseResult WhoAmIs(const std::string& address, int callers, const Options& opt) {
  std::string error;
  auto stubs =
      MakeStubs<timer::v1::SessionService>(Connect(address, callers, opt, &error));
  if (stubs.empty()) return Failed("WhoAmI-floor", callers, error);
  struct Slot {
    timer::v1::WhoAmIRequest request;
    timer::v1::WhoAmIResponse response;
  };
  std::vector<Slot> slots(callers);
  return RunRpcLoad(
      "WhoAmI-floor", callers, opt,
      [&](int t, grpc::ClientContext* ctx) {
        return stubs[t]->WhoAmI(ctx, slots[t].request, &slots[t].response);
      },
      [&](int t, grpc::ClientContext* ctx, std::function<void(grpc::Status)> done) {
        stubs[t]->async()->WhoAmI(ctx, &slots[t].request, &slots[t].response,
                                  std::move(done));
      });
}

// Creates `n` jobs with `callers` threads and returns their ids.
std::vector<std::string> SeedJobs(const std::string& address, int n, int callers,
                                  const Options& opt, std::string* error) {
  Stubs stubs = MakeStubs<timer::v1::TimerService>(Connect(address, callers, opt, error));
  if (stubs.empty()) return {};
  std::atomic<int> next{0};
  std::vector<std::vector<std::string>> ids(callers);
  std::vector<std::string> errors(callers);
  std::vector<std::thread> workers;
  for (int t = 0; t < callers; ++t) {
    workers.emplace_back([&, t] {
      for (int i; (i = next.fetch_add(1)) < n;) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(opt.deadline_ms));
        timer::v1::Job job;
        grpc::Status s = stubs[t]->CreateJob(&ctx, NewCreateRequest(t, i, opt), &job);
        if (s.ok()) {
          ids[t].push_back(job.job_id());
        } else if (errors[t].empty()) {
          errors[t] = Describe(s);
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  std::vector<std::string> all;
  for (int t = 0; t < callers; ++t) {
    all.insert(all.end(), ids[t].begin(), ids[t].end());
    if (error->empty() && !errors[t].empty()) *error = errors[t];
  }
  return all;
}

CaseResult GetJobs(const std::string& address, int callers,
                   const std::vector<std::string>& ids, const Options& opt) {
  std::string error;
  Stubs stubs =
      MakeStubs<timer::v1::TimerService>(Connect(address, callers, opt, &error));
  if (stubs.empty() || ids.empty()) {
    return Failed("GetJob", callers, ids.empty() ? "no jobs to get" : error);
  }
  struct Slot {
    std::mt19937_64 rng;
    timer::v1::GetJobRequest request;
    timer::v1::Job job;
  };
  std::vector<Slot> slots(callers);
  for (int t = 0; t < callers; ++t) slots[t].rng.seed(0x5eed + t);
  return RunRpcLoad(
      "GetJob", callers, opt,
      [&](int t, grpc::ClientContext* ctx) {
        Slot& s = slots[t];
        s.request.set_job_id(ids[s.rng() % ids.size()]);
        return stubs[t]->GetJob(ctx, s.request, &s.job);
      },
      [&](int t, grpc::ClientContext* ctx, std::function<void(grpc::Status)> done) {
        Slot& s = slots[t];
        s.request.set_job_id(ids[s.rng() % ids.size()]);
        stubs[t]->async()->GetJob(ctx, &s.request, &s.job, std::move(done));
      });
}

// ---- Reporting ----

bool Wants(const Options& opt, const std::string& name) {
  return std::find(opt.cases.begin(), opt.cases.end(), name) != opt.cases.end();
}

const CaseResult* Find(const std::vector<CaseResult>& rows, const std::string& name,
                       int callers) {
  for (const CaseResult& r : rows) {
    if (r.name == name && (callers < 0 || r.callers == callers)) return &r;
  }
  return nullptr;
}

// The run's SQLite single-commit rate: the mean of its measurements (before
// and, when there were other cases, after them).
double Baseline(const std::vector<CaseResult>& rows, double* spread) {
  double sum = 0, lo = 0, hi = 0;
  int n = 0;
  for (const CaseResult& r : rows) {
    if (r.name != "sqlite-commit" && r.name != "sqlite-again") continue;
    if (r.ops_per_sec <= 0) continue;
    lo = n == 0 ? r.ops_per_sec : std::min(lo, r.ops_per_sec);
    hi = n == 0 ? r.ops_per_sec : std::max(hi, r.ops_per_sec);
    sum += r.ops_per_sec;
    ++n;
  }
  if (spread != nullptr) *spread = n > 1 && lo > 0 ? hi / lo - 1 : 0;
  return n > 0 ? sum / n : 0;
}

// Sets every write row's ratio to the run's own SQLite single-commit rate.
void SetRatios(std::vector<CaseResult>& rows) {
  const double baseline = Baseline(rows, nullptr);
  if (baseline <= 0) return;
  for (CaseResult& r : rows) {
    if (r.name == "sqlite-commit" || r.name == "sqlite-again" ||
        r.name == "store-create" || r.name == "CreateJob") {
      r.vs_sqlite = r.ops_per_sec / baseline;
    }
  }
}

using timer::bench::Median;

void PrintRun(const std::vector<CaseResult>& rows) {
  std::printf("%-14s %7s %9s %9s %8s %8s %8s %6s %5s %6s %9s\n", "case", "callers", "ops",
              "ops/s", "p50 ms", "p99 ms", "max ms", "errors", "cpu%", "us/op",
              "vs sqlite");
  for (const CaseResult& r : rows) {
    const std::string ratio =
        r.vs_sqlite > 0 ? absl::StrFormat("%.2fx", r.vs_sqlite) : std::string("-");
    const double cpu_pct = r.seconds > 0 ? 100 * r.cpu_seconds / r.seconds : 0;
    const double cpu_us = r.ops > 0 ? 1e6 * r.cpu_seconds / r.ops : 0;
    std::printf("%-14s %7d %9lld %9.0f %8.3f %8.3f %8.3f %6lld %5.0f %6.0f %9s",
                r.name.c_str(), r.callers, static_cast<long long>(r.ops), r.ops_per_sec,
                r.p50_ms, r.p99_ms, r.max_ms, static_cast<long long>(r.errors), cpu_pct,
                cpu_us, ratio.c_str());
    if (r.writes_per_commit > 0) {
      std::printf("  %.1f writes/commit", r.writes_per_commit);
    }
    std::printf("\n");
    if (r.errors > 0 && !r.first_error.empty()) {
      std::printf("    first error: %s\n", r.first_error.c_str());
    }
  }
}

// One row per case: the median of each figure over the runs. Ratios are the
// median of the per-run ratios, so each compares figures of the same minutes.
std::vector<CaseResult> Medians(const std::vector<std::vector<CaseResult>>& runs) {
  std::vector<CaseResult> out;
  for (const CaseResult& first : runs.front()) {
    std::vector<double> ops, rate, p50, p99, mx, ratio, wpc, secs, cpu;
    CaseResult m = first;
    m.errors = 0;
    for (const auto& run : runs) {
      const CaseResult* r = Find(run, first.name, first.callers);
      if (r == nullptr) continue;
      ops.push_back(static_cast<double>(r->ops));
      rate.push_back(r->ops_per_sec);
      p50.push_back(r->p50_ms);
      p99.push_back(r->p99_ms);
      mx.push_back(r->max_ms);
      ratio.push_back(r->vs_sqlite);
      wpc.push_back(r->writes_per_commit);
      secs.push_back(r->seconds);
      cpu.push_back(r->cpu_seconds);
      m.errors += r->errors;
    }
    m.ops = static_cast<int64_t>(Median(ops));
    m.ops_per_sec = Median(rate);
    m.p50_ms = Median(p50);
    m.p99_ms = Median(p99);
    m.max_ms = Median(mx);
    m.vs_sqlite = Median(ratio);
    m.writes_per_commit = Median(wpc);
    m.seconds = Median(secs);
    m.cpu_seconds = Median(cpu);
    out.push_back(m);
  }
  return out;
}

void PrintTargets(const std::vector<CaseResult>& rows) {
  const CaseResult* create = Find(rows, "CreateJob", kTargetCallers);
  const CaseResult* get = Find(rows, "GetJob", kTargetCallers);
  if (create == nullptr && get == nullptr) return;
  std::printf("\ntargets (2-core machine):\n");
  if (create != nullptr) {
    const double rate = create->ops_per_sec;
    std::printf("  CreateJob, %d callers >= %.0f/s: %.0f/s %s", kTargetCallers,
                kTargetCreatesPerSec, rate,
                rate >= kTargetCreatesPerSec ? "MET" : "MISSED");
    if (rate < kTargetCreatesPerSec) {
      std::printf(" (%.0f%% of target)", 100 * rate / kTargetCreatesPerSec);
    }
    if (create->vs_sqlite > 0) {
      std::printf(
          "; %.2fx the SQLite single-commit rate of the same run (target about 2x)",
          create->vs_sqlite);
    }
    std::printf("\n");
  }
  if (get != nullptr) {
    const double rate = get->ops_per_sec;
    std::printf("  GetJob, %d callers >= %.0f/s: %.0f/s %s", kTargetCallers,
                kTargetGetsPerSec, rate, rate >= kTargetGetsPerSec ? "MET" : "MISSED");
    if (rate < kTargetGetsPerSec) {
      std::printf(" (%.0f%% of target)", 100 * rate / kTargetGetsPerSec);
    }
    std::printf("\n");
  }
}

// ---- One run ----

void RunRpcCases(const std::string& address, const Options& opt,
                 std::vector<CaseResult>& rows) {
  if (Wants(opt, "floor")) {
    for (int n : opt.callers) rows.push_back(WhoAmIs(address, n, opt));
  }
  if (Wants(opt, "create")) {
    for (int n : opt.callers) rows.push_back(CreateJobs(address, n, opt));
  }
  if (Wants(opt, "get")) {
    std::string error;
    const int seed_callers = std::min(64, opt.get_jobs);
    std::vector<std::string> ids =
        SeedJobs(address, opt.get_jobs, seed_callers, opt, &error);
    if (!error.empty()) std::fprintf(stderr, "seeding GetJob: %s\n", error.c_str());
    for (int n : opt.callers) rows.push_back(GetJobs(address, n, ids, opt));
  }
}

// The baseline once more at the end: a shared machine can change under a
// run, and the two figures show by how much.
void AgainBaseline(const std::string& dir, const Options& opt,
                   std::vector<CaseResult>& rows) {
  if (!Wants(opt, "sqlite")) return;
  const std::string again = dir + "/baseline-again";
  std::filesystem::create_directories(again);
  rows.push_back(SqliteBaseline(again, opt));
  rows.back().name = "sqlite-again";
}

std::vector<CaseResult> RunOnce(const std::string& dir, const Options& opt) {
  std::vector<CaseResult> rows;
  if (Wants(opt, "sqlite")) {
    std::filesystem::create_directories(dir + "/baseline");
    rows.push_back(SqliteBaseline(dir + "/baseline", opt));
    std::fflush(stdout);
  }
  if (Wants(opt, "store")) {
    for (int n : opt.callers) {
      const std::string sdir = absl::StrCat(dir, "/store-", n);
      std::filesystem::create_directories(sdir);
      rows.push_back(StoreCreate(sdir, n, opt));
    }
  }
  if (!Wants(opt, "create") && !Wants(opt, "get") && !Wants(opt, "floor")) return rows;

  if (!opt.target.empty()) {
    if (const char* token = std::getenv("TIMER_TOKEN")) g_bearer = token;
    RunRpcCases(opt.target, opt, rows);
    AgainBaseline(dir, opt, rows);
    return rows;
  }
  timer::server::Config config;
  config.listen = "127.0.0.1:0";
  config.data_dir = dir + "/timerd";
  config.plugin_dir = opt.plugin_dir;
  config.load_plugins = {"noop"};  // The directory need hold no other.
  config.log_level = "warn";
  config.store = opt.store;
  // The bench creates many, as fast as it can, as one identity.
  config.max_jobs_per_identity = int64_t{1} << 40;
  config.max_stored_jobs_per_identity = int64_t{1} << 40;
  config.max_stored_bytes_per_identity = int64_t{1} << 40;
  config.write_rate_per_identity = 1'000'000;
  config.write_burst_per_identity = 10'000'000;
  auto server = timer::server::TimerServer::Start(config);
  if (!server.ok()) {
    rows.push_back(Failed("timerd-start", 0, std::string(server.status().message())));
    return rows;
  }
  {
    absl::StatusOr<std::unique_ptr<timer::store::TokenStore>> tokens =
        opt.store.empty()
            ? absl::StatusOr<std::unique_ptr<timer::store::TokenStore>>(
                  timer::store::SqliteTokenStore::Open(config.data_dir + "/timer.db"))
            : timer::server::OpenPostgresTokens(config);
    absl::StatusOr<timer::auth::IssuedToken> issued =
        tokens.ok() ? timer::auth::IssueToken(**tokens, "bench", std::nullopt, "bench",
                                              absl::Now())
                    : absl::StatusOr<timer::auth::IssuedToken>(tokens.status());
    if (!issued.ok()) {
      rows.push_back(Failed("token", 0, std::string(issued.status().message())));
      return rows;
    }
    g_bearer = issued->token;
  }
  RunRpcCases((*server)->address(), opt, rows);
  (*server)->Shutdown(absl::Seconds(5));
  AgainBaseline(dir, opt, rows);
  return rows;
}

// Removes the temp directory however main() returns.
struct TempDir {
  std::string path;
  ~TempDir() {
    if (path.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::string callers = "1,64", cases = "sqlite,create,get";
  CLI::App app{
      "Durable CreateJob / GetJob throughput and latency through an "
      "in-process timerd, against the SQLite single-commit rate",
      "timer_bench_create_get"};
  app.add_option("--seconds", opt.seconds, "measured seconds per case")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "unmeasured seconds before each case");
  app.add_option("--callers", callers, "comma-separated concurrent callers");
  app.add_option("--runs", opt.runs, "repeat everything; medians are printed")
      ->check(CLI::PositiveNumber);
  app.add_option("--cases", cases,
                 "comma-separated: sqlite, store (diagnostic: no gRPC), floor "
                 "(diagnostic: WhoAmI, no store), create, get");
  app.add_option("--get-jobs", opt.get_jobs, "jobs created for GetJob to fetch")
      ->check(CLI::PositiveNumber);
  app.add_option("--deadline-ms", opt.deadline_ms, "deadline of every RPC")
      ->check(CLI::PositiveNumber);
  app.add_option("--client", opt.client,
                 "sync: a thread per caller on a sync stub; callback: one call in "
                 "flight per caller with the callback API")
      ->check(CLI::IsMember({"sync", "callback"}));
  app.add_option("--channels", opt.channels,
                 "diagnostic: share this many channels among the callers (default: "
                 "one each)");
  app.add_option("--target", opt.target,
                 "host:port of a running timerd to drive instead of an in-process "
                 "one (create and get cases; its token from TIMER_TOKEN)");
  // timerd's main() turns Abseil's Mutex deadlock detection off (Debian
  // builds Abseil with it on); the in-process server does not run that
  // main(), so the benchmark does the same here unless asked not to.
  bool deadlock_detection = false;
  app.add_option("--absl-deadlock-detection", deadlock_detection,
                 "true: leave Abseil's Mutex deadlock detection as Debian builds it "
                 "(on); default false, as timerd's main() sets it")
      ->default_str("false");
  app.add_option("--plugin-dir", opt.plugin_dir,
                 "where the in-process timerd loads noop.so from")
      ->default_str(TIMER_BENCH_PLUGIN_DIR);
  app.add_option("--start-in-seconds", opt.start_in_seconds,
                 "created jobs start this far ahead so none fires during the run; "
                 "0: the server's default (next second: every job also runs once)");
  app.add_option("--store", opt.store,
                 "postgres:// URI: run the store and create cases on PostgreSQL there");
  app.add_option("--tmp", opt.tmp,
                 "parent of the temp directory (default $TMPDIR or /tmp)");
  CLI11_PARSE(app, argc, argv);

  opt.callers.clear();
  for (absl::string_view s : absl::StrSplit(callers, ',', absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(s, &n) || n <= 0) {
      std::fprintf(stderr, "--callers: not a positive number: %s\n",
                   std::string(s).c_str());
      return 2;
    }
    opt.callers.push_back(n);
  }
  opt.cases.clear();
  for (absl::string_view s : absl::StrSplit(cases, ',', absl::SkipEmpty())) {
    opt.cases.emplace_back(s);
  }
  for (const std::string& c : opt.cases) {
    if (c != "sqlite" && c != "store" && c != "floor" && c != "create" && c != "get") {
      std::fprintf(stderr, "--cases: unknown case %s\n", c.c_str());
      return 2;
    }
  }
  if (opt.tmp.empty()) {
    const char* env = std::getenv("TMPDIR");
    opt.tmp = env != nullptr && *env != '\0' ? env : "/tmp";
  }

  spdlog::set_level(spdlog::level::warn);  // The server's startup lines.
  if (!deadlock_detection) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }

  std::string pattern = opt.tmp + "/timer-bench-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::perror(("mkdtemp " + pattern).c_str());
    return 1;
  }
  TempDir temp{pattern};

  std::printf(
      "timer_bench_create_get: %d s per case after %d s warmup, callers %s, "
      "%d run(s), %s client, absl deadlock detection %s, server %s, %u cores, "
      "temp dir %s\n",
      opt.seconds, opt.warmup, callers.c_str(), opt.runs, opt.client.c_str(),
      deadlock_detection ? "on" : "off",
      opt.target.empty() ? "in-process" : opt.target.c_str(),
      std::thread::hardware_concurrency(), temp.path.c_str());
  std::vector<std::vector<CaseResult>> runs;
  for (int i = 0; i < opt.runs; ++i) {
    const std::string dir = absl::StrCat(temp.path, "/run-", i + 1);
    std::filesystem::create_directories(dir);
    std::printf("\nrun %d of %d\n", i + 1, opt.runs);
    std::fflush(stdout);
    runs.push_back(RunOnce(dir, opt));
    SetRatios(runs.back());
    PrintRun(runs.back());
    double spread = 0;
    const double baseline = Baseline(runs.back(), &spread);
    if (baseline > 0) {
      std::printf(
          "SQLite single-commit baseline of this run: %.0f commits/s%s\n", baseline,
          spread > 0
              ? absl::StrFormat(" (mean of 2; they differ by %.0f%%%s)", 100 * spread,
                                spread > 0.25 ? ": NOISY, rerun" : "")
                    .c_str()
              : "");
    }
    std::fflush(stdout);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::vector<CaseResult> summary = runs.front();
  if (opt.runs > 1) {
    summary = Medians(runs);
    std::printf("\nmedian of %d runs (ops/s and latencies each the median)\n", opt.runs);
    PrintRun(summary);
  }
  PrintTargets(summary);

  int64_t errors = 0;
  for (const auto& run : runs) {
    for (const CaseResult& r : run) errors += r.errors;
  }
  return errors > 0 ? 1 : 0;
}
