// scheduler_bench: how well the run engine fires on time, durably.
//
// Fire mode (default): N jobs with a 1 s interval, their first due times
// spread evenly over one second, run for --seconds with the real SQLite store
// (WAL, synchronous=FULL) and the real noop plugin. Reports fired/expected,
// lateness (provider start minus scheduled time) p50/p99/max, drift (median
// lateness of the first 5 s vs the last 5 s), CPU and peak RSS.
//
// Load mode (--load N): creates N jobs, then restarts (a fresh process over
// the same store) and reports the engine's memory per loaded job and the time
// from start to the first fire.
//
// Cron against interval (--cron EXPR, an expression that fires every second
// such as '* * * * * *'): each --jobs case runs twice in the same process,
// once with 1 s interval jobs and once with cron jobs on EXPR, both with a
// 1 s jitter and starting together (so the load has the same shape: the
// jitter spreads the runs over each second, and a run is missed once the
// next slot has passed), alternately for --rounds rounds, and prints the
// ratios of fires/s and of CPU per fire, cron over interval, of each round. With
// --load, --cron EXPR (and --tz ZONE) makes the million jobs cron jobs
// instead.
//
//   timer_bench_scheduler --jobs 1000,10000,100000 --seconds 30
//   timer_bench_scheduler --load 1000000
//   timer_bench_scheduler --jobs 20000 --seconds 20 --cron '* * * * * *' --rounds 3
//   timer_bench_scheduler --load 1000000 --cron '0 2 * * *' --tz Europe/Berlin
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "domain/ids.h"
#include "domain/jobs.h"
#include "domain/run_engine.h"
#include "domain/schedule.h"
#include "domain/time_util.h"
#include "plugin_host/plugin_host.h"
#include "store/sqlite_store.h"

extern char** environ;

namespace timer::bench {
namespace {

using domain::ActionProvider;
using domain::ActionStatus;

// Wraps the noop provider: notes when each run reached it (job, run number,
// time); the time each run was due is computed after the window
// (FireMode), from the job's schedule.
class MeasuringProvider final : public ActionProvider {
 public:
  explicit MeasuringProvider(ActionProvider* inner) : inner_(inner) {}
  const v1::ActionProvider& info() const override { return inner_->info(); }
  absl::Status Validate(const domain::Identity& o, absl::string_view b) override {
    return inner_->Validate(o, b);
  }
  absl::StatusOr<ActionStatus> Start(absl::string_view request_id,
                                     const domain::Identity& owner,
                                     absl::string_view body) override {
    const absl::Time now = absl::Now();
    const size_t slash = request_id.find('/');
    int64_t run = 0;
    if (slash != absl::string_view::npos &&
        absl::SimpleAtoi(request_id.substr(slash + 1), &run)) {
      const std::string job_id(request_id.substr(0, slash));
      absl::MutexLock lock(&mu_);
      auto it = jobs_.find(job_id);
      if (it != jobs_.end()) samples_.push_back({it->second, run, now});
      if (first_fire_ == absl::InfinitePast()) first_fire_ = now;
    }
    return inner_->Start(request_id, owner, body);
  }
  absl::StatusOr<ActionStatus> Status(absl::string_view id) override {
    return inner_->Status(id);
  }
  absl::Status Cancel(absl::string_view id) override { return inner_->Cancel(id); }
  absl::Status Release(absl::string_view id) override { return inner_->Release(id); }

  // Measure the runs of `job_id`, the job numbered `index` by the caller.
  void Expect(const std::string& job_id, size_t index) {
    absl::MutexLock lock(&mu_);
    jobs_[job_id] = index;
  }
  struct Sample {
    size_t job;
    int64_t run;
    absl::Time started;
  };
  std::vector<Sample> samples() {
    absl::MutexLock lock(&mu_);
    return samples_;
  }
  absl::Time first_fire() {
    absl::MutexLock lock(&mu_);
    return first_fire_;
  }

 private:
  ActionProvider* const inner_;
  absl::Mutex mu_;
  std::map<std::string, size_t> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<Sample> samples_ ABSL_GUARDED_BY(mu_);
  absl::Time first_fire_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

int64_t RssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return 0;
}

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

// Bytes this process has written so far (/proc/self/io wchar: every
// write(2), before the page cache).
int64_t BytesWritten() {
  std::ifstream io("/proc/self/io");
  std::string key;
  int64_t value = 0;
  while (io >> key >> value) {
    if (key == "wchar:") return value;
  }
  return 0;
}

// CPU seconds so far of this process's threads, summed by thread name.
std::map<std::string, double> ThreadCpuSeconds() {
  std::map<std::string, double> by_name;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
    const size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    const std::string name = stat.substr(open + 1, close - open - 1);
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    double utime = 0, stime = 0;
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    by_name[name] += (utime + stime) / tick;
  }
  return by_name;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

struct Rig {
  std::filesystem::path dir;
  std::unique_ptr<store::SqliteStore> store;
  std::unique_ptr<plugin_host::PluginRegistry> plugins;
  std::unique_ptr<MeasuringProvider> measure;
  std::unique_ptr<domain::StaticRegistry> registry;
  domain::SystemClock clock;
  std::unique_ptr<domain::JobService> jobs;

  // The store's page size for a new database; 0: the store's default.
  static inline int page_size = 0;
  // Frames at which the writer finishes a checkpoint; 0: the store's default.
  static inline int wal_restart_frames = 0;
  // Print lateness for each second of the window (where a tail comes from).
  static inline bool timeline = false;
  // --cron EXPR and --tz ZONE (load mode): the jobs' cron expression and
  // time zone instead of a 1 s interval.
  static inline std::string cron;
  static inline std::string tz;

  // The schedule of the jobs Create makes (its start set per job): a 1 s
  // interval, or the cron expression `cron_expr` in `tz`, with a jitter of
  // `jitter_seconds`.
  static v1::Schedule ScheduleFor(const std::string& cron_expr, int64_t jitter_seconds) {
    v1::Schedule s;
    if (cron_expr.empty()) {
      s.set_interval_seconds(1);
    } else {
      s.set_cron(cron_expr);
      if (!tz.empty()) s.set_time_zone(tz);
    }
    s.set_jitter_seconds(jitter_seconds);
    return s;
  }

  Rig(const std::filesystem::path& d, const std::string& plugin_dir) : dir(d) {
    std::filesystem::create_directories(dir);
    store::SqliteStore::Options options{.path = (dir / "timer.db").string()};
    if (page_size > 0) options.page_size = page_size;
    if (wal_restart_frames > 0) options.wal_restart_frames = wal_restart_frames;
    store = store::SqliteStore::Open(std::move(options)).value();
    plugins = plugin_host::LoadPlugins(plugin_dir, {"noop"}, nlohmann::json::object(),
                                       ::geteuid())
                  .value();
    ActionProvider* noop = plugins->Find("noop");
    if (noop == nullptr) {
      std::fprintf(stderr, "no noop plugin in %s\n", plugin_dir.c_str());
      std::exit(1);
    }
    measure = std::make_unique<MeasuringProvider>(noop);
    registry = std::make_unique<domain::StaticRegistry>(
        std::vector<ActionProvider*>{measure.get()});
    jobs = std::make_unique<domain::JobService>(store.get(), &clock, registry.get());
  }

  // Creates jobs with the given starts, `window` at a time; returns their ids.
  // Job 0 gets `first_missed` and, when given, `first_schedule` instead.
  std::vector<std::string> Create(const std::vector<absl::Time>& starts,
                                  const v1::Schedule& schedule,
                                  v1::MissedRunPolicy first_missed = v1::SKIP_MISSED,
                                  const v1::Schedule* first_schedule = nullptr) {
    std::vector<std::string> ids(starts.size());
    const size_t window = 4096;
    for (size_t from = 0; from < starts.size(); from += window) {
      const size_t to = std::min(starts.size(), from + window);
      absl::Mutex mu;
      size_t left = to - from;
      for (size_t i = from; i < to; ++i) {
        v1::CreateJobRequest req;
        v1::Job* job = req.mutable_job();
        *job->mutable_schedule() =
            i == 0 && first_schedule != nullptr ? *first_schedule : schedule;
        *job->mutable_schedule()->mutable_start() = domain::ToProto(starts[i]);
        job->mutable_action()->set_provider("noop");
        job->mutable_action()->set_body("{}");
        if (i == 0) job->set_missed_run_policy(first_missed);
        jobs->CreateJob({"bench", "none"}, req, [&, i](absl::StatusOr<v1::Job> j) {
          if (!j.ok()) {
            std::fprintf(stderr, "create: %s\n",
                         std::string(j.status().message()).c_str());
            std::exit(1);
          }
          ids[i] = j->job_id();
          absl::MutexLock lock(&mu);
          --left;
        });
      }
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          +[](size_t* n) { return *n == 0; }, &left));
    }
    return ids;
  }
};

// What one fire-mode case measured.
struct FireFigures {
  double fires_per_second = 0;  // Runs started in the window, per second.
  double fired_ratio = 0;       // ... over the slots in the window.
  double cpu_us_per_fire = 0;   // The whole process's CPU per run started.
  double p99_ms = 0;
};

// N jobs on `schedule` for `seconds`: without a jitter, their starts spread
// evenly over one second; with one, all starting together (their jitter
// spreads them). A cron schedule must fire every second (checked): run r of
// a job is due at its first slot plus r - 1 seconds, plus the slot's jitter
// (domain::JitterFor, as the engine computes it).
FireFigures FireMode(int64_t n, int seconds, const std::string& plugin_dir,
                     const v1::Schedule& schedule) {
  FireFigures figures;
  const bool is_cron = schedule.has_cron();
  const bool jittered = schedule.jitter_seconds() > 0;
  const auto dir =
      std::filesystem::temp_directory_path() / ("timer-bench-" + domain::NewUuid());
  {
    Rig rig(dir, plugin_dir);
    // Room to create the jobs before the first is due.
    const absl::Time base = absl::Ceil(absl::Now() - absl::UnixEpoch() +
                                           absl::Seconds(2) + absl::Milliseconds(n / 5),
                                       absl::Seconds(1)) +
                            absl::UnixEpoch();
    // Spread over the first second, or all at `base` (their first slot) and
    // spread by their jitter.
    std::vector<absl::Time> starts(n, base);
    if (!jittered) {
      for (int64_t i = 0; i < n; ++i) starts[i] = base + absl::Seconds(1) * i / n;
    }
    std::vector<std::string> ids = rig.Create(starts, schedule);
    // When each job's run 1 is due, before its jitter.
    std::vector<absl::Time> first_slot(starts);
    std::shared_ptr<const domain::ScheduleRule> rule;
    if (is_cron) {
      rule = domain::RuleFor(schedule).value();
      for (int64_t i = 0; i < n; ++i) {
        v1::Schedule s = schedule;
        *s.mutable_start() = domain::ToProto(starts[i]);
        const std::optional<absl::Time> first =
            domain::NextSlotAfter(s, rule.get(), starts[i] - absl::Nanoseconds(1));
        const std::optional<absl::Time> second =
            first ? domain::NextSlotAfter(s, rule.get(), *first) : std::nullopt;
        if (!second || *second - *first != absl::Seconds(1)) {
          std::fprintf(stderr, "--cron %s: must fire every second\n",
                       schedule.cron().c_str());
          std::exit(2);
        }
        first_slot[i] = *first;
      }
    }
    for (int64_t i = 0; i < n; ++i) rig.measure->Expect(ids[i], i);
    if (absl::Now() > base) {
      // Slots that passed meanwhile are missed (and skipped): say so with the figures.
      std::printf("warning: creating the jobs overran the first slot by %.0f ms\n",
                  absl::ToDoubleMilliseconds(absl::Now() - base));
    }

    domain::RunEngine engine(rig.store.get(), &rig.clock, rig.registry.get(), {});
    rig.jobs->set_observer(&engine);
    if (!engine.Start().ok()) std::exit(1);
    absl::SleepFor(base - absl::Now());
    const double cpu0 = CpuSeconds();
    const int64_t commits0 = rig.store->commits();
    const int64_t written0 = BytesWritten();
    const auto threads0 = ThreadCpuSeconds();
    const absl::Time end = base + absl::Seconds(seconds);
    absl::SleepFor(end - absl::Now());
    const double cpu = CpuSeconds() - cpu0;
    const int64_t commits = rig.store->commits() - commits0;
    const int64_t written = BytesWritten() - written0;
    auto threads = ThreadCpuSeconds();
    for (auto& [name, sec] : threads) sec -= threads0.count(name) ? threads0.at(name) : 0;
    engine.Stop();
    // Slots recorded as missed (a SKIPPED result each, or one for several):
    // writes that are not runs.
    int64_t skipped = 0;
    for (const std::string& id : ids) {
      absl::StatusOr<v1::Job> job = rig.store->LoadJob(id);
      if (job.ok()) skipped += job->n_skipped();
    }

    std::vector<double> all, first, last;
    std::vector<std::vector<double>> by_second(seconds);
    int64_t fired = 0;
    for (const auto& sample : rig.measure->samples()) {
      const absl::Time slot = first_slot[sample.job] + absl::Seconds(sample.run - 1);
      if (slot >= end) continue;
      absl::Time scheduled = slot;
      if (jittered) {
        v1::Schedule s = schedule;
        *s.mutable_start() = domain::ToProto(starts[sample.job]);
        scheduled += domain::JitterFor(ids[sample.job], s, slot, slot + absl::Seconds(1));
      }
      ++fired;
      const double ms = absl::ToDoubleMilliseconds(sample.started - scheduled);
      all.push_back(ms);
      const int64_t second = absl::ToInt64Seconds(slot - base);
      if (second >= 0 && second < seconds) by_second[second].push_back(ms);
      if (slot < base + absl::Seconds(5)) first.push_back(ms);
      if (slot >= end - absl::Seconds(5)) last.push_back(ms);
    }
    const int64_t expected = n * seconds;
    if (Rig::timeline) {
      for (int i = 0; i < seconds; ++i) {
        const auto& v = by_second[i];
        std::printf("  second %2d  fired %6zu  lateness ms p50 %.2f p99 %.2f max %.2f\n",
                    i, v.size(), Percentile(v, 0.5), Percentile(v, 0.99),
                    v.empty() ? 0 : *std::max_element(v.begin(), v.end()));
      }
    }
    figures.fires_per_second = static_cast<double>(fired) / seconds;
    figures.fired_ratio = static_cast<double>(fired) / expected;
    figures.cpu_us_per_fire = fired > 0 ? 1e6 * cpu / fired : 0;
    figures.p99_ms = Percentile(all, 0.99);
    std::printf(
        "%8lld %s%s jobs  %6lld fires/s offered, %.0f fired/s  fired/expected %.4f  "
        "slots missed %lld  lateness ms p50 %.2f p99 %.2f max %.2f  drift ms %.3f  "
        "CPU %.0f%% (%.1f us/fire)  peak RSS %lld MB\n",
        static_cast<long long>(n), is_cron ? "cron" : "interval",
        jittered ? " +jitter" : "", static_cast<long long>(n), figures.fires_per_second,
        figures.fired_ratio, static_cast<long long>(skipped), Percentile(all, 0.5),
        figures.p99_ms, all.empty() ? 0 : *std::max_element(all.begin(), all.end()),
        Percentile(last, 0.5) - Percentile(first, 0.5), 100.0 * cpu / seconds,
        figures.cpu_us_per_fire, static_cast<long long>(RssKb() / 1024));
    // Where the CPU went, per thread name: the store writer is the serial part.
    std::printf("          CPU by thread:");
    for (const auto& [name, sec] : threads) {
      if (sec > 0.005 * seconds)
        std::printf("  %s %.0f%%", name.c_str(), 100.0 * sec / seconds);
    }
    // The WAL file keeps its largest size: a WAL that never starts over
    // grows by every byte written.
    std::error_code ec;
    const auto wal_bytes = std::filesystem::file_size(dir / "timer.db-wal", ec);
    std::printf(
        "  | store-writer %.1f us/fire, %lld commits/s, %.1f KB written/fire, WAL file "
        "%.0f MB, %lld WAL checkpoints by the writer\n",
        fired > 0 ? 1e6 * threads["store-writer"] / fired : 0.0,
        static_cast<long long>(commits / seconds),
        fired > 0 ? written / 1024.0 / fired : 0.0, ec ? 0.0 : wal_bytes / 1048576.0,
        static_cast<long long>(rig.store->wal_checkpoints()));
    std::fflush(stdout);
  }
  std::filesystem::remove_all(dir);
  return figures;
}

// Interval jobs, then cron jobs on `cron`, both with a 1 s jitter and all
// starting at the same second (the same shape of load: each run at its slot
// plus its jitter, missed once the next slot has passed), `rounds` times,
// the same N; after each pair, the ratios cron / interval, and their
// medians.
void CompareMode(int64_t n, int seconds, int rounds, const std::string& plugin_dir,
                 const std::string& cron) {
  std::vector<double> fires, cpu;
  for (int r = 0; r < rounds; ++r) {
    const FireFigures interval =
        FireMode(n, seconds, plugin_dir, Rig::ScheduleFor("", 1));
    const FireFigures crons = FireMode(n, seconds, plugin_dir, Rig::ScheduleFor(cron, 1));
    fires.push_back(crons.fires_per_second / std::max(interval.fires_per_second, 1.0));
    cpu.push_back(crons.cpu_us_per_fire / std::max(interval.cpu_us_per_fire, 1e-9));
    std::printf(
        "  round %d: cron/interval fired/s %.0f/%.0f = %.3f, CPU per fire %.1f/%.1f us "
        "= %.3f, p99 %.1f/%.1f ms\n",
        r + 1, crons.fires_per_second, interval.fires_per_second, fires.back(),
        crons.cpu_us_per_fire, interval.cpu_us_per_fire, cpu.back(), crons.p99_ms,
        interval.p99_ms);
    std::fflush(stdout);
  }
  std::printf(
      "%8lld jobs, %d rounds: cron/interval durable fires/s median %.3f (min %.3f), CPU "
      "per fire median %.3f\n",
      static_cast<long long>(n), rounds, Percentile(fires, 0.5),
      *std::min_element(fires.begin(), fires.end()), Percentile(cpu, 0.5));
  std::fflush(stdout);
}

// Phase 2 of load mode, in a fresh process: open the store, start the engine.
void RestartMode(const std::string& dir, const std::string& plugin_dir) {
  Rig rig(dir, plugin_dir);
  const int64_t rss0 = RssKb();
  domain::RunEngine engine(rig.store.get(), &rig.clock, rig.registry.get(), {});
  const absl::Time t0 = absl::Now();
  if (!engine.Start().ok()) std::exit(1);
  const absl::Time loaded = absl::Now();
  const int64_t rss1 = RssKb();
  while (rig.measure->first_fire() == absl::InfinitePast() &&
         absl::Now() - t0 < absl::Seconds(60)) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  const size_t n = engine.queued_jobs();
  std::printf(
      "%8zu jobs loaded in %.0f ms; engine memory %.0f B/job; first fire %.0f ms after "
      "start\n",
      n, absl::ToDoubleMilliseconds(loaded - t0),
      1024.0 * (rss1 - rss0) / std::max<size_t>(n, 1),
      absl::ToDoubleMilliseconds(rig.measure->first_fire() - t0));
  engine.Stop();
}

void LoadMode(int64_t n, const std::string& plugin_dir, const char* self) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("timer-bench-" + domain::NewUuid());
  {
    Rig rig(dir, plugin_dir);
    // All due in an hour, but the first one created, whose slot has passed by
    // the restart and whose policy is to catch up: it fires as soon as the
    // restarted engine can.
    // With --cron, job 0 is a cron job that fires every second (so that its
    // slot has passed by the restart whatever the expression).
    std::vector<absl::Time> starts(n, absl::Now() + absl::Hours(1));
    starts.front() = absl::Now() - absl::Hours(1);
    const v1::Schedule schedule = Rig::ScheduleFor(Rig::cron, 0);
    const v1::Schedule first =
        Rig::ScheduleFor(Rig::cron.empty() ? "" : "* * * * * *", 0);
    const absl::Time t0 = absl::Now();
    rig.Create(starts, schedule, v1::RUN_ONCE, &first);
    std::printf(
        "%8lld %s jobs created in %.1f s (%.0f creates/s, durable)\n",
        static_cast<long long>(n),
        Rig::cron.empty()
            ? "interval"
            : ("cron '" + Rig::cron + "' " + (Rig::tz.empty() ? "UTC" : Rig::tz)).c_str(),
        absl::ToDoubleSeconds(absl::Now() - t0),
        n / absl::ToDoubleSeconds(absl::Now() - t0));
    std::fflush(stdout);
  }
  std::string dir_s = dir.string();
  std::vector<char*> argv = {const_cast<char*>(self),
                             const_cast<char*>("--restart-dir"),
                             dir_s.data(),
                             const_cast<char*>("--plugin-dir"),
                             const_cast<char*>(plugin_dir.c_str()),
                             nullptr};
  pid_t pid;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) == 0) {
    int status;
    waitpid(pid, &status, 0);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace timer::bench

int main(int argc, char** argv) {
  CLI::App app{"scheduler_bench: run-engine firing accuracy and load"};
  std::string jobs = "1000,10000,100000", plugin_dir = TIMER_BENCH_PLUGIN_DIR,
              restart_dir;
  int seconds = 30;
  int64_t load = 0;
  app.add_option("--jobs", jobs, "comma-separated job counts (fire mode)");
  app.add_option("--seconds", seconds, "measuring window per case");
  app.add_option("--load", load, "load mode: create this many jobs, then restart");
  app.add_option("--plugin-dir", plugin_dir, "where noop.so is");
  app.add_option("--page-size", timer::bench::Rig::page_size,
                 "SQLite page size of the bench's new store (default: the store's)");
  app.add_option("--wal-restart-frames", timer::bench::Rig::wal_restart_frames,
                 "WAL frames at which the store's writer finishes a checkpoint "
                 "(default: the store's)");
  app.add_option("--cron", timer::bench::Rig::cron,
                 "fire mode: also cron jobs on this expression (which must fire every "
                 "second, e.g. '* * * * * *') with a 1 s jitter, alternately with the "
                 "interval jobs, and their ratio; load mode: the jobs' cron expression");
  app.add_option("--tz", timer::bench::Rig::tz, "the cron jobs' time zone (default UTC)");
  int rounds = 1;
  app.add_option("--rounds", rounds, "with --cron in fire mode: pairs of cases per N");
  app.add_flag("--timeline", timer::bench::Rig::timeline,
               "also print lateness for each second of the window");
  app.add_option("--restart-dir", restart_dir, "(internal) phase 2 of load mode");
  bool deadlock_detection = false;
  app.add_option("--absl-deadlock-detection", deadlock_detection,
                 "keep Abseil's Mutex deadlock detection on (Debian's build has it on; "
                 "timerd turns it off)");
  CLI11_PARSE(app, argc, argv);
  if (!deadlock_detection)
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  spdlog::set_level(spdlog::level::warn);
  if (!restart_dir.empty()) {
    timer::bench::RestartMode(restart_dir, plugin_dir);
  } else if (load > 0) {
    timer::bench::LoadMode(load, plugin_dir, argv[0]);
  } else {
    for (absl::string_view n : absl::StrSplit(jobs, ',')) {
      int64_t count = 0;
      if (!absl::SimpleAtoi(n, &count)) continue;
      if (timer::bench::Rig::cron.empty()) {
        timer::bench::FireMode(count, seconds, plugin_dir,
                               timer::bench::Rig::ScheduleFor("", 0));
      } else {
        timer::bench::CompareMode(count, seconds, std::max(1, rounds), plugin_dir,
                                  timer::bench::Rig::cron);
      }
    }
  }
  return 0;
}
