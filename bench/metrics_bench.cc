// metrics_bench: the cost of timerd's metrics.
//
// Render: `GET /metrics`'s body (metrics::Render()) with the global registry
// as a busy timerd fills it (every family declared, every outcome, three
// providers, every gRPC method and HTTP route with several codes, the
// process_* series) and ServerMetrics' callbacks over a real RunEngine and
// store: first with no jobs, then with --jobs jobs (default 1,000,000)
// loaded into the in-memory store and the engine's queue, in the same run.
// Nothing in the registry is per job, so the two should match.
//
// Count: what the background count of jobs by status (timer_jobs) costs on
// the SQLite store holding --jobs jobs: one CountJobsByStatus, timed three
// times (it runs every 15 s, or 20 times its own duration if longer).
//
// Observe: the per-observation cost on the hot path, on one thread and on
// two threads hitting the same series, against a plain relaxed atomic add
// measured in the same run: Counter::Inc (a series resolved once),
// Family::With + Inc (found by label values), Histogram::Observe, and
// metrics::CountFire / ObserveFireLateness as the run engine calls them.
//
//   timer_bench_metrics [--jobs N] [--renders R] [--ops K] [--sqlite-jobs N]
//   timer_bench_metrics --print   # the filled registry's text, then exit
//                                 # (for `promtool check metrics`)
#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "domain/action_provider.h"
#include "domain/clock.h"
#include "domain/ids.h"
#include "domain/run_engine.h"
#include "domain/time_util.h"
#include "server/server_metrics.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"
#include "util/metrics.h"

namespace timer::bench {
namespace {

// The series a busy timerd has made: every label value it can produce.
void FillRegistry() {
  metrics::RegisterTimerdMetrics();
  for (int o = 0; o <= static_cast<int>(metrics::FireOutcome::kWriteFailed); ++o) {
    metrics::CountFire(static_cast<metrics::FireOutcome>(o));
  }
  metrics::ObserveFireLateness(absl::Milliseconds(2));
  for (const char* provider : {"noop", "transfer", "other_provider"}) {
    for (const char* status : {"succeeded", "failed", "cancelled", "unknown"}) {
      metrics::ObserveRunFinished(provider, status, absl::Seconds(3));
    }
    for (const char* call : {"start", "status"}) {
      for (absl::StatusCode code :
           {absl::StatusCode::kUnavailable, absl::StatusCode::kInvalidArgument,
            absl::StatusCode::kPermissionDenied}) {
        metrics::CountProviderError(provider, call, code);
      }
    }
  }
  metrics::ObserveStoreCommit(12, absl::Microseconds(800), true);
  metrics::CountWatchStreamDropped("slow_consumer");
  for (const char* method :
       {"CreateJob", "GetJob", "ListJobs", "DeleteJob", "UpdateJob", "PauseJob",
        "ResumeJob", "RunJobNow", "ListJobResults", "PreviewSchedule", "BackfillJob",
        "WatchJob", "WatchJobs", "ListActionProviders", "GetActionProvider", "WhoAmI",
        "RevokeSession"}) {
    for (absl::StatusCode code :
         {absl::StatusCode::kOk, absl::StatusCode::kInvalidArgument,
          absl::StatusCode::kNotFound, absl::StatusCode::kUnauthenticated,
          absl::StatusCode::kResourceExhausted}) {
      metrics::CountGrpcRequest(method, code);
    }
  }
  for (const char* route :
       {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}:pause",
        "/v1/jobs/{job_id}:resume", "/v1/jobs/{job_id}:run", "/v1/jobs/{job_id}/results",
        "/v1/jobs:watch", "/v1/jobs/{job_id}:watch", "/v1/providers",
        "/v1/providers/{name}", "/v1/session", "/metrics", "/healthz", "/readyz",
        "other"}) {
    for (int code : {200, 400, 401, 404, 429}) {
      metrics::ObserveHttpRequest(route, code, absl::Milliseconds(1));
    }
  }
}

// Loads `n` jobs straight into the store: hourly, due within the hour (so
// the engine queues them all and fires none during the run), one in ten
// paused.
void LoadJobs(store::Store& store, int64_t n) {
  const absl::Time now = absl::Now();
  absl::Mutex mu;
  int64_t left = n;
  for (int64_t i = 0; i < n; ++i) {
    v1::Job job;
    job.set_job_id(domain::NewUuid());
    job.set_owner(absl::StrCat("owner-", i % 1000));
    job.set_name("bench");
    job.mutable_schedule()->set_interval_seconds(3600);
    *job.mutable_schedule()->mutable_start() = domain::ToProto(now);
    job.mutable_action()->set_provider("noop");
    job.mutable_action()->set_body("{}");
    *job.mutable_create_time() = domain::ToProto(now);
    if (i % 10 == 0) {
      job.set_status(v1::Job::PAUSED);
    } else {
      job.set_status(v1::Job::LOADED);
      const absl::Time next = now + absl::Minutes(10) + absl::Seconds(i % 3000);
      *job.mutable_next_run() = domain::ToProto(next);
      *job.mutable_next_scheduled_time() = domain::ToProto(next);
    }
    store.CreateJob(std::move(job), "", "", [&](absl::StatusOr<v1::Job> j) {
      if (!j.ok()) {
        std::fprintf(stderr, "create: %s\n", std::string(j.status().message()).c_str());
        std::exit(1);
      }
      absl::MutexLock lock(&mu);
      --left;
    });
    if (i % 8192 == 8191) {  // At most a window of writes queued at once.
      absl::MutexLock lock(&mu);
      std::pair<int64_t*, int64_t> wait{&left, n - i - 1};
      mu.Await(absl::Condition(
          +[](std::pair<int64_t*, int64_t>* w) { return *w->first <= w->second; },
          &wait));
    }
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](int64_t* l) { return *l == 0; }, &left));
}

struct RenderStats {
  size_t bytes = 0, series = 0;
  absl::Duration median, p99, max;
  absl::Duration cpu_median;  // This thread's CPU time: what the noise cannot inflate.
};

absl::Duration ThreadCpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

RenderStats MeasureRender(int renders) {
  RenderStats s;
  std::vector<absl::Duration> took, cpu;
  for (int i = 0; i < renders; ++i) {
    const absl::Time t0 = absl::Now();
    const absl::Duration c0 = ThreadCpu();
    const std::string text = metrics::Render();
    cpu.push_back(ThreadCpu() - c0);
    took.push_back(absl::Now() - t0);
    s.bytes = text.size();
    s.series = 0;
    for (size_t at = 0; at < text.size();) {
      const size_t end = text.find('\n', at);
      if (text[at] != '#') ++s.series;
      at = end == std::string::npos ? text.size() : end + 1;
    }
  }
  std::sort(took.begin(), took.end());
  std::sort(cpu.begin(), cpu.end());
  s.cpu_median = cpu[cpu.size() / 2];
  s.median = took[took.size() / 2];
  s.p99 = took[std::min(took.size() - 1, took.size() * 99 / 100)];
  s.max = took.back();
  return s;
}

// One case of the store, engine and ServerMetrics, as timerd wires them.
RenderStats RenderWith(int64_t jobs, int renders) {
  store::MemoryStore store;
  if (jobs > 0) LoadJobs(store, jobs);
  domain::SystemClock clock;
  domain::StaticRegistry providers({});
  domain::RunEngine::Options options;
  options.background = false;
  domain::RunEngine engine(&store, &clock, &providers, options);
  if (absl::Status s = engine.Start(); !s.ok()) {
    std::fprintf(stderr, "engine: %s\n", std::string(s.message()).c_str());
    std::exit(1);
  }
  server::ServerMetrics server_metrics(&engine, &store);
  // Until the background count of jobs by status has landed.
  const std::string counted =
      jobs > 0 ? absl::StrCat("timer_jobs{status=\"loaded\"} ", jobs - (jobs + 9) / 10)
               : "";
  while (!counted.empty() && metrics::Render().find(counted) == std::string::npos) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  std::printf("  %-9lld queued %-8zu", static_cast<long long>(jobs),
              engine.queued_jobs());
  RenderStats s = MeasureRender(renders);
  std::printf("%6zu %8zu  %8.3f %8.3f %8.3f %8.3f\n", s.series, s.bytes,
              absl::ToDoubleMilliseconds(s.median), absl::ToDoubleMilliseconds(s.p99),
              absl::ToDoubleMilliseconds(s.max),
              absl::ToDoubleMilliseconds(s.cpu_median));
  server_metrics.Stop();
  engine.Stop();
  return s;
}

void MeasureSqliteCount(int64_t jobs) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("timer-metrics-bench-" + domain::NewUuid());
  std::filesystem::create_directories(dir);
  {
    absl::StatusOr<std::unique_ptr<store::SqliteStore>> store =
        store::SqliteStore::Open({.path = (dir / "timer.db").string()});
    if (!store.ok()) {
      std::fprintf(stderr, "sqlite: %s\n", std::string(store.status().message()).c_str());
      std::exit(1);
    }
    const absl::Time t0 = absl::Now();
    LoadJobs(**store, jobs);
    std::printf("\njobs by status on SQLite (%lld jobs, loaded in %.1f s):\n",
                static_cast<long long>(jobs), absl::ToDoubleSeconds(absl::Now() - t0));
    for (int i = 0; i < 3; ++i) {
      const absl::Time c0 = absl::Now();
      absl::StatusOr<std::map<int, int64_t>> counted = (*store)->CountJobsByStatus();
      const absl::Duration took = absl::Now() - c0;
      int64_t total = 0;
      if (counted.ok()) {
        for (const auto& [status, n] : *counted) total += n;
      }
      std::printf("  CountJobsByStatus %d: %8.1f ms (%lld jobs counted)\n", i + 1,
                  absl::ToDoubleMilliseconds(took), static_cast<long long>(total));
    }
    (*store)->Close();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// ns per operation of `op` run `ops` times on each of `threads` threads.
template <typename Op>
double NsPerOp(int threads, int64_t ops, Op op) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  std::vector<absl::Duration> took(threads);
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) {
      }
      const absl::Time t0 = absl::Now();
      for (int64_t i = 0; i < ops; ++i) op(i);
      took[t] = absl::Now() - t0;
    });
  }
  while (ready.load() < threads) {
  }
  go.store(true);
  for (std::thread& t : ts) t.join();
  absl::Duration longest = *std::max_element(took.begin(), took.end());
  return absl::ToDoubleNanoseconds(longest) / static_cast<double>(ops);
}

void MeasureObserve(int64_t ops) {
  metrics::Registry r;
  metrics::Counter& counter = r.AddCounter("bench_counter_total", "C.").Get();
  metrics::Family<metrics::Counter>& family =
      r.AddCounter("bench_family_total", "F.", {"method", "code"});
  for (int m = 0; m < 60; ++m) family.With({absl::StrCat("Method", m), "OK"});
  metrics::Histogram& histogram =
      r.AddHistogram("bench_seconds", "H.", metrics::ExponentialBuckets(0.001, 2.5, 17))
          .Get();
  std::atomic<uint64_t> plain{0};
  std::printf(
      "\nper observation, ns (%lld each, best of 3 rounds; 2 threads: the same "
      "series):\n",
      static_cast<long long>(ops));
  std::printf("  %-44s %8s %9s\n", "operation", "1 thread", "2 threads");
  // Rounds interleave the cases, so a noisy minute hits all of them alike.
  struct Row {
    const char* name;
    std::function<void(int64_t)> op;
    double one = 1e30, two = 1e30;
  };
  std::vector<Row> rows;
  const auto row = [&rows](const char* name, auto op) { rows.push_back(Row{name, op}); };
  row("std::atomic fetch_add relaxed (baseline)",
      [&](int64_t) { plain.fetch_add(1, std::memory_order_relaxed); });
  row("Counter::Inc", [&](int64_t) { counter.Inc(); });
  row("Family::With({method, code}).Inc, 60 series", [&](int64_t) {
    family.With({"Method59", "OK"}).Inc();
  });
  row("Histogram::Observe, 17 buckets",
      [&](int64_t i) { histogram.Observe(0.001 * static_cast<double>(i & 1023)); });
  row("metrics::CountFire(kStarted)",
      [](int64_t) { metrics::CountFire(metrics::FireOutcome::kStarted); });
  row("metrics::ObserveFireLateness",
      [](int64_t i) { metrics::ObserveFireLateness(absl::Microseconds(i & 4095)); });
  for (int round = 0; round < 3; ++round) {
    for (Row& r : rows) {
      r.one = std::min(r.one, NsPerOp(1, ops, r.op));
      r.two = std::min(r.two, NsPerOp(2, ops, r.op));
    }
  }
  for (const Row& r : rows) std::printf("  %-44s %8.2f %9.2f\n", r.name, r.one, r.two);
  if (plain.load() == 0) std::printf("(never)\n");
}

}  // namespace
}  // namespace timer::bench

int main(int argc, char** argv) {
  CLI::App app{"metrics_bench: the cost of timerd's metrics"};
  int64_t jobs = 1000000;
  int renders = 200;
  int64_t ops = 20000000;
  int64_t sqlite_jobs = -1;
  bool print = false;
  app.add_option("--jobs", jobs, "jobs loaded for the second render case");
  app.add_option("--renders", renders, "renders per case");
  app.add_option("--ops", ops, "observations per thread per case");
  app.add_option("--sqlite-jobs", sqlite_jobs,
                 "jobs in the SQLite store for the count (default: --jobs; 0: skip)");
  app.add_flag("--print", print, "print the filled registry's text and exit");
  CLI11_PARSE(app, argc, argv);

  timer::bench::FillRegistry();
  if (print) {
    timer::metrics::RegisterProcessMetrics();
    std::fputs(timer::metrics::Render().c_str(), stdout);
    return 0;
  }
  std::printf("render (metrics::Render(), %d each):\n", renders);
  std::printf("  %-9s %-15s %6s %8s  %8s %8s %8s %8s\n", "jobs", "", "series", "bytes",
              "p50 ms", "p99 ms", "max ms", "cpu p50");
  timer::bench::RenderWith(0, renders);
  timer::bench::RenderWith(jobs, renders);
  timer::bench::MeasureObserve(ops);
  if (sqlite_jobs < 0) sqlite_jobs = jobs;
  if (sqlite_jobs > 0) timer::bench::MeasureSqliteCount(sqlite_jobs);
  return 0;
}
