// timer_bench_watch: WatchJobs streams against one real timerd: server memory
// per open stream, event delivery rate across many active streams, and the
// effect of a stalled consumer on run lateness.
//
// Each run starts a fresh timerd from the build tree as a child process
// (loopback, port 0, a temp data dir, --plugin-dir with the noop provider),
// issues a bearer token with `timerd token issue`, creates one idle job
// (first run an hour away, so every stream opens with one SNAPSHOT event),
// then runs the cases --cases asks for (default memory,delivery,stall):
//
//   memory    Opens --streams WatchJobs streams (default 10,000) spread over
//             --channels channels, each its own TCP connection
//             (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL). timerd's VmRSS is read
//             (/proc/PID/status) once the channels are connected and before
//             any stream opens, then again once every stream has received
//             its snapshot: KB per stream = (after - before) / streams. RSS
//             is read again after all streams are cancelled.
//   delivery  For each J in --jobs: opens --active-streams streams (default
//             1,000) of the same owner, creates J jobs with a 1 s interval
//             and the noop provider (each run publishes RUN_STARTED and
//             RUN_FINISHED), lets them fire --warmup s, then counts events
//             received by all streams during --seconds s. Expected = events
//             the server published in that window (those whose event_time
//             falls in it, as one stream saw them) x streams. Afterwards the
//             jobs are deleted, the streams drained, and each stream checked:
//             gaps in its sequence numbers, whether it got every event, and
//             whether the server ended it (dropped).
//   stall     --stall-jobs jobs fire (1 s interval); one normal stream
//             records every RUN_STARTED (lateness = result.start_time -
//             result.scheduled_time). Window A: --seconds s with no stalled
//             consumer. Then --stalled-streams streams open on a channel of
//             their own with a small receive window (BDP probing off,
//             GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES --stall-window-bytes) and
//             never read; window B: --seconds s more. Lateness of runs due in
//             A and in B is compared (same server, same minutes). Then the
//             stalled streams start reading: how many events each drains and
//             the status it ends with (RESOURCE_EXHAUSTED expected, with the
//             resume point), and when (sequence) its buffer overflowed.
//
// Everything is loopback. timerd is stopped (SIGTERM, then SIGKILL after 10 s;
// it also gets SIGKILL if this process dies first) and the temp directory is
// removed at the end of each run. The client raises its open-files limit to
// the hard limit and prints both.
//
// Usage:
//   timer_bench_watch [--cases memory,delivery,stall] [--runs 1]
//       [--streams 10000] [--channels 16] [--active-streams 1000]
//       [--jobs 50,100] [--seconds 10] [--warmup 3] [--stall-jobs 100]
//       [--stalled-streams 1] [--stall-window-bytes 1024]
//       [--timerd PATH] [--plugin-dir DIR] [--tmp DIR] [--help]
//
// With --runs > 1 each run's figures are printed, then every figure's
// median over the runs. Exits 1 if a case could not run or a stream saw a
// gap or was dropped in the delivery case.
//
// Threading: main() drives everything. Stream reactors run on gRPC's
// threads; main() reads only their atomics while they run, and everything
// else after their OnDone.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "bench_support.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::bench {
namespace {

namespace v1 = timer::v1;
using SteadyClock = std::chrono::steady_clock;

// Targets from issue #8, on the 2-core reference machine.
constexpr double kTargetKbPerStream = 25;
constexpr double kTargetEventsPerSec = 100000;  // Across 1,000 active streams.

struct Options {
  std::vector<std::string> cases = {"memory", "delivery", "stall"};
  int runs = 1;
  int streams = 10000;
  int channels = 16;
  int active_streams = 1000;
  std::vector<int> jobs = {50, 100};
  int seconds = 10;
  int warmup = 3;
  int stall_jobs = 100;
  int stalled_streams = 1;
  int stall_window_bytes = 1024;
  std::string timerd = TIMER_BENCH_TIMERD;
  std::string plugin_dir = TIMER_BENCH_PLUGIN_DIR;
  std::string tmp;
};

int64_t Micros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}

// How busy the whole (shared) machine is, besides the load average: the
// share of the last 10 s in which some task waited for a CPU (PSI).
double CpuPressureSome10() {
  std::ifstream in("/proc/pressure/cpu");
  std::string word;
  while (in >> word) {
    double v = 0;
    if (word.rfind("avg10=", 0) == 0 && absl::SimpleAtod(word.substr(6), &v)) return v;
  }
  return -1;
}

// All of this bench's streams are one identity's: timerd's config lifts the
// per-identity (and total) stream bounds, which are far below --streams by
// default.
constexpr char kTimerdConfig[] =
    "max_watch_streams = 10000000\n"
    "max_watch_streams_per_identity = 10000000\n";

// ---- Client side ----

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                          grpc::ChannelArguments args) {
  // Each channel its own subchannel, so its own TCP connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

bool WaitConnected(const std::shared_ptr<grpc::Channel>& channel) {
  return channel->WaitForConnected(std::chrono::system_clock::now() +
                                   std::chrono::seconds(10));
}

// What one stream recorded of an event (kept only by streams asked to).
struct Seen {
  int64_t sequence;
  int type;
  int64_t event_us;                // event_time
  int64_t receive_us;              // this process's wall clock on arrival
  int64_t scheduled_us, start_us;  // RUN_STARTED only
};

// Shared switches the main thread flips.
struct Shared {
  std::atomic<bool> sample_latency{false};  // Record delivery latency now.
  std::atomic<int> opened{0};               // Streams that got their first event.
  std::atomic<int> done{0};                 // Streams whose OnDone ran.
};

// One WatchJobs stream, callback API. Owns nothing it does not need: events
// are only counted unless keep_events.
class Watcher final : public grpc::ClientReadReactor<v1::WatchJobsResponse> {
 public:
  Watcher(Shared* shared, bool keep_events)
      : shared_(shared), keep_events_(keep_events) {}

  // Opens the stream. A stalled watcher does not read until Resume().
  void Start(v1::TimerService::Stub* stub, const std::string& bearer, bool stalled) {
    ctx_.AddMetadata("authorization", bearer);
    stub->async()->WatchJobs(&ctx_, &request_, this);
    if (!stalled) StartRead(&message_);
    StartCall();
  }
  void Resume() { StartRead(&message_); }
  void Cancel() { ctx_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows.
    const int64_t now = WallMicros();
    if (!opened_) {
      opened_ = true;
      shared_->opened.fetch_add(1, std::memory_order_relaxed);
    }
    messages_.fetch_add(1, std::memory_order_relaxed);
    for (const v1::JobEvent& event : message_.events()) {
      const int64_t seq = event.sequence();
      if (event.type() == v1::JobEvent::SNAPSHOT || event.type() == v1::JobEvent::RESET) {
        ++snapshots_;
        open_head_ = seq;
      } else {
        const int64_t last = last_seq_.load(std::memory_order_relaxed);
        const int64_t expect = last > 0 ? last + 1 : open_head_ + 1;
        if (open_head_ > 0 && seq != expect) ++gaps_;
        last_seq_.store(seq, std::memory_order_relaxed);
        live_.fetch_add(1, std::memory_order_relaxed);
        if (shared_->sample_latency.load(std::memory_order_relaxed) && (live_ & 7) == 0) {
          latency_us_.push_back(static_cast<float>(now - Micros(event.event_time())));
        }
        if (keep_events_) {
          Seen s{seq, event.type(), Micros(event.event_time()), now, 0, 0};
          if (event.type() == v1::JobEvent::RUN_STARTED) {
            s.scheduled_us = Micros(event.result().scheduled_time());
            s.start_us = Micros(event.result().start_time());
          }
          seen_.push_back(s);
        }
      }
    }
    StartRead(&message_);
  }

  // The last callback: once done() is true the watcher may be destroyed, so
  // setting it is the last thing done here.
  void OnDone(const grpc::Status& s) override {
    status_ = s;
    shared_->done.fetch_add(1, std::memory_order_relaxed);
    done_.store(true, std::memory_order_release);
  }

  // While running (atomics).
  int64_t live() const { return live_.load(std::memory_order_relaxed); }
  int64_t messages() const { return messages_.load(std::memory_order_relaxed); }
  int64_t last_seq() const { return last_seq_.load(std::memory_order_relaxed); }
  bool done() const { return done_.load(std::memory_order_acquire); }
  // After done().
  const grpc::Status& status() const { return status_; }
  int64_t gaps() const { return gaps_; }
  int64_t snapshots() const { return snapshots_; }
  int64_t open_head() const { return open_head_; }
  const std::vector<Seen>& seen() const { return seen_; }
  const std::vector<float>& latency_us() const { return latency_us_; }

 private:
  Shared* const shared_;
  const bool keep_events_;
  grpc::ClientContext ctx_;
  v1::WatchJobsRequest request_;
  v1::WatchJobsResponse message_;
  std::atomic<int64_t> messages_{0};
  bool opened_ = false;
  int64_t open_head_ = 0;
  int64_t snapshots_ = 0;
  int64_t gaps_ = 0;
  std::atomic<int64_t> live_{0};
  std::atomic<int64_t> last_seq_{0};
  std::atomic<bool> done_{false};
  grpc::Status status_;
  std::vector<Seen> seen_;
  std::vector<float> latency_us_;
};

// Cancels every watcher and waits for all their OnDone (at most 30 s).
bool CancelAll(std::vector<std::unique_ptr<Watcher>>& watchers) {
  for (auto& w : watchers) w->Cancel();
  return WaitFor(
      [&] {
        return std::all_of(watchers.begin(), watchers.end(),
                           [](const auto& w) { return w->done(); });
      },
      30);
}

// Destroys watchers whose OnDone ran; any other (a cancel not yet
// acknowledged) is kept alive until exit, as gRPC may still call it.
void Retire(std::vector<std::unique_ptr<Watcher>>& watchers) {
  static auto* const leaked = new std::vector<std::unique_ptr<Watcher>>();
  for (auto& w : watchers) {
    if (w != nullptr && !w->done()) leaked->push_back(std::move(w));
  }
  watchers.clear();
}

std::string Describe(const grpc::Status& s) {
  const std::string name =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code()));
  return s.error_message().empty() ? name : absl::StrCat(name, ": ", s.error_message());
}

// The unary calls the cases need, on one channel.
class Api {
 public:
  Api(std::shared_ptr<grpc::Channel> channel, std::string bearer)
      : stub_(v1::TimerService::NewStub(channel)), bearer_(std::move(bearer)) {}

  // Creates `n` jobs named prefix-i, every `interval` s from the next whole
  // second (or from an hour from now if `idle`); returns their ids.
  std::vector<std::string> CreateJobs(const std::string& prefix, int n, bool idle,
                                      std::string* error) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      grpc::ClientContext ctx;
      Prepare(ctx);
      v1::CreateJobRequest req;
      v1::Job* job = req.mutable_job();
      job->set_name(absl::StrCat(prefix, "-", i));
      job->mutable_schedule()->set_interval_seconds(idle ? 3600 : 1);
      if (idle)
        job->mutable_schedule()->mutable_start()->set_seconds(WallMicros() / 1000000 +
                                                              3600);
      job->mutable_action()->set_provider("noop");
      job->mutable_action()->set_body("{}");
      req.set_request_id(absl::StrCat(prefix, "-", i, "-", WallMicros()));
      v1::Job out;
      grpc::Status s = stub_->CreateJob(&ctx, req, &out);
      if (!s.ok()) {
        *error = "CreateJob: " + Describe(s);
        return ids;
      }
      ids.push_back(out.job_id());
    }
    return ids;
  }

  bool DeleteJobs(const std::vector<std::string>& ids, std::string* error) {
    for (const std::string& id : ids) {
      grpc::ClientContext ctx;
      Prepare(ctx);
      v1::DeleteJobRequest req;
      req.set_job_id(id);
      v1::Job out;
      grpc::Status s = stub_->DeleteJob(&ctx, req, &out);
      if (!s.ok()) {
        *error = "DeleteJob: " + Describe(s);
        return false;
      }
    }
    return true;
  }

  v1::TimerService::Stub* stub() { return stub_.get(); }

 private:
  void Prepare(grpc::ClientContext& ctx) {
    ctx.AddMetadata("authorization", bearer_);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }
  std::unique_ptr<v1::TimerService::Stub> stub_;
  std::string bearer_;
};

// Figures of one run, by name, in print order.
struct Figures {
  std::vector<std::pair<std::string, double>> rows;
  std::vector<std::string> notes;
  bool failed = false;
  void Add(const std::string& name, double v) { rows.emplace_back(name, v); }
  void Fail(const std::string& why) {
    failed = true;
    notes.push_back("FAILED: " + why);
  }
};

struct Env {
  const Options* opt;
  Timerd* timerd;
  std::string bearer;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::TimerService::Stub>> stubs;
  Api* api;
};

// ---- memory ----

void MemoryCase(Env& env, Figures& fig) {
  const Options& opt = *env.opt;
  SleepMs(1000);  // Let the server settle after connecting.
  const int64_t before = env.timerd->RssKb();
  const int64_t threads_before = env.timerd->Threads();
  Shared shared;
  std::vector<std::unique_ptr<Watcher>> watchers;
  watchers.reserve(opt.streams);
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < opt.streams; ++i) {
    watchers.push_back(std::make_unique<Watcher>(&shared, false));
    watchers.back()->Start(env.stubs[i % env.stubs.size()].get(), env.bearer, false);
  }
  const bool all = WaitFor(
      [&] { return shared.opened.load() >= opt.streams || shared.done.load() > 0; }, 120);
  const double open_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  SleepMs(2000);
  const int opened = shared.opened.load();
  const int64_t after = env.timerd->RssKb();
  const int64_t threads_after = env.timerd->Threads();
  const int ended_early = shared.done.load();
  CancelAll(watchers);
  SleepMs(2000);
  const int64_t closed = env.timerd->RssKb();
  if (!all || opened < opt.streams || ended_early > 0) {
    std::string first;
    for (auto& w : watchers) {
      if (w->done() && !w->status().ok()) {
        first = Describe(w->status());
        break;
      }
    }
    fig.Fail(absl::StrCat("memory: ", opened, " of ", opt.streams, " streams opened, ",
                          ended_early, " ended early",
                          first.empty() ? "" : ": " + first));
  }
  fig.Add("memory.streams_open", opened);
  fig.Add("memory.open_seconds", open_s);
  fig.Add("memory.rss_before_MB", before / 1024.0);
  fig.Add("memory.rss_open_MB", after / 1024.0);
  fig.Add("memory.rss_after_close_MB", closed / 1024.0);
  fig.Add("memory.server_threads_before", threads_before);
  fig.Add("memory.server_threads_open", threads_after);
  fig.Add("memory.KB_per_stream",
          opened > 0 ? static_cast<double>(after - before) / opened : 0);
  Retire(watchers);
}

// ---- delivery ----

// Waits until every still-open watcher has the same last sequence number
// and none moved for `quiet_ms` (at most `seconds`).
bool WaitQuiet(const std::vector<std::unique_ptr<Watcher>>& watchers, int quiet_ms,
               double seconds) {
  const auto deadline = SteadyClock::now() + std::chrono::duration<double>(seconds);
  int64_t last_sum = -1;
  auto still_since = SteadyClock::now();
  while (SteadyClock::now() < deadline) {
    int64_t sum = 0, lo = INT64_MAX, hi = 0;
    int open = 0;
    for (const auto& w : watchers) {
      if (w->done()) continue;
      ++open;
      const int64_t s = w->last_seq();
      sum += w->live();
      lo = std::min(lo, s);
      hi = std::max(hi, s);
    }
    if (open == 0) return true;
    if (sum != last_sum || lo != hi) {
      last_sum = sum;
      still_since = SteadyClock::now();
    } else if (SteadyClock::now() - still_since >= std::chrono::milliseconds(quiet_ms)) {
      return true;
    }
    SleepMs(50);
  }
  return false;
}

void DeliveryCase(Env& env, int jobs, Figures& fig) {
  const Options& opt = *env.opt;
  const std::string key = absl::StrCat("delivery.", jobs, "jobs.");
  Shared shared;
  std::vector<std::unique_ptr<Watcher>> watchers;
  for (int i = 0; i < opt.active_streams; ++i) {
    watchers.push_back(std::make_unique<Watcher>(&shared, /*keep_events=*/i == 0));
    watchers.back()->Start(env.stubs[i % env.stubs.size()].get(), env.bearer, false);
  }
  if (!WaitFor([&] { return shared.opened.load() >= opt.active_streams; }, 60)) {
    fig.Fail(absl::StrCat(key, "only ", shared.opened.load(), " streams opened"));
    CancelAll(watchers);
    Retire(watchers);
    return;
  }
  std::string error;
  const std::vector<std::string> ids =
      env.api->CreateJobs(absl::StrCat("deliver", jobs), jobs, false, &error);
  if (!error.empty()) fig.Fail(key + error);
  SleepMs(opt.warmup * 1000);

  auto total = [&] {
    int64_t sum = 0;
    for (const auto& w : watchers) sum += w->live();
    return sum;
  };
  auto total_messages = [&] {
    int64_t sum = 0;
    for (const auto& w : watchers) sum += w->messages();
    return sum;
  };
  const double server_cpu0 = env.timerd->CpuSeconds();
  const double client_cpu0 = SelfCpuSeconds();
  const int64_t wall0 = WallMicros();
  const auto t0 = SteadyClock::now();
  const int64_t count0 = total();
  const int64_t messages0 = total_messages();
  shared.sample_latency = true;
  SleepMs(opt.seconds * 1000);
  shared.sample_latency = false;
  const int64_t count1 = total();
  const int64_t messages = total_messages() - messages0;
  const auto t1 = SteadyClock::now();
  const int64_t wall1 = WallMicros();
  const double server_cpu = env.timerd->CpuSeconds() - server_cpu0;
  const double client_cpu = SelfCpuSeconds() - client_cpu0;
  const int64_t rss = env.timerd->RssKb();
  const double secs = std::chrono::duration<double>(t1 - t0).count();

  if (!env.api->DeleteJobs(ids, &error)) fig.Fail(key + error);
  const bool quiet = WaitQuiet(watchers, 1000, 60);
  int dropped = 0;
  for (const auto& w : watchers) dropped += w->done() ? 1 : 0;
  CancelAll(watchers);

  // Events the server published in the window, as the reference stream saw
  // them (it is checked for completeness below like every other).
  const Watcher& ref = *watchers[0];
  int64_t published = 0;
  std::vector<double> lateness_ms;
  for (const Seen& s : ref.seen()) {
    if (s.event_us >= wall0 && s.event_us < wall1) ++published;
    if (s.type == v1::JobEvent::RUN_STARTED && s.scheduled_us >= wall0 &&
        s.scheduled_us < wall1) {
      lateness_ms.push_back((s.start_us - s.scheduled_us) / 1000.0);
    }
  }
  int64_t max_live = 0, gaps = 0, incomplete = 0;
  std::string first_drop;
  std::vector<double> latency_ms;
  for (const auto& w : watchers) {
    max_live = std::max(max_live, w->live());
    gaps += w->gaps();
    for (float us : w->latency_us()) latency_ms.push_back(us / 1000.0);
    const bool ours = w->status().error_code() == grpc::StatusCode::CANCELLED;
    if (!ours && first_drop.empty()) first_drop = Describe(w->status());
  }
  for (const auto& w : watchers) incomplete += w->live() < max_live ? 1 : 0;
  // Each job runs once a second, each run publishes RUN_STARTED and
  // RUN_FINISHED. The reference stream's count is the check (when it was
  // not dropped itself).
  const double nominal = 2.0 * jobs * secs;
  const double expected = nominal * opt.active_streams;
  const double delivered = static_cast<double>(count1 - count0);

  fig.Add(key + "streams", opt.active_streams);
  fig.Add(key + "published_per_s(nominal)", nominal / secs);
  fig.Add(
      key + "published_per_s(seen)",
      ref.status().error_code() == grpc::StatusCode::CANCELLED ? published / secs : 0);
  fig.Add(key + "expected_per_s", expected / secs);
  fig.Add(key + "delivered_per_s", delivered / secs);
  fig.Add(key + "delivered/expected", expected > 0 ? delivered / expected : 0);
  fig.Add(key + "events_per_message", messages > 0 ? delivered / messages : 0);
  fig.Add(key + "latency_p50_ms", Percentile(latency_ms, 0.50));
  fig.Add(key + "latency_p99_ms", Percentile(latency_ms, 0.99));
  fig.Add(key + "latency_max_ms", Percentile(latency_ms, 1.0));
  fig.Add(key + "run_lateness_p50_ms", Percentile(lateness_ms, 0.50));
  fig.Add(key + "run_lateness_p99_ms", Percentile(lateness_ms, 0.99));
  fig.Add(key + "server_cpu_pct", 100 * server_cpu / secs);
  fig.Add(key + "client_cpu_pct", 100 * client_cpu / secs);
  fig.Add(key + "server_cpu_us_per_event",
          delivered > 0 ? 1e6 * server_cpu / delivered : 0);
  fig.Add(key + "client_cpu_us_per_event",
          delivered > 0 ? 1e6 * client_cpu / delivered : 0);
  fig.Add(key + "server_rss_MB", rss / 1024.0);
  fig.Add(key + "machine_load1", LoadAverage1());
  fig.Add(key + "machine_cpu_pressure_pct", CpuPressureSome10());
  fig.Add(key + "streams_dropped", dropped);
  fig.Add(key + "streams_incomplete", incomplete);
  fig.Add(key + "gaps", gaps);
  fig.Add(key + "events_per_stream", max_live);
  if (dropped > 0) fig.Fail(absl::StrCat(key, dropped, " streams dropped: ", first_drop));
  if (gaps > 0) fig.Fail(absl::StrCat(key, gaps, " sequence gaps"));
  if (!quiet) fig.notes.push_back(key + "streams did not drain within 60 s");
  Retire(watchers);
}

// ---- stall ----

void StallCase(Env& env, Figures& fig) {
  const Options& opt = *env.opt;
  Shared shared;
  auto normal = std::make_unique<Watcher>(&shared, /*keep_events=*/true);
  normal->Start(env.stubs[0].get(), env.bearer, false);
  if (!WaitFor([&] { return shared.opened.load() >= 1; }, 20)) {
    fig.Fail("stall: the normal stream did not open");
    normal->Cancel();
    WaitFor([&] { return normal->done(); }, 20);
    if (!normal->done()) (void)normal.release();
    return;
  }
  std::string error;
  const std::vector<std::string> ids =
      env.api->CreateJobs("stall", opt.stall_jobs, false, &error);
  if (!error.empty()) fig.Fail("stall: " + error);
  SleepMs(opt.warmup * 1000);

  const int64_t a0 = WallMicros();
  SleepMs(opt.seconds * 1000);
  const int64_t a1 = WallMicros();

  // Stalled consumers: their own connection, a small receive window, no
  // reads.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, opt.stall_window_bytes);
  auto stalled_channel = NewChannel(env.timerd->address(), args);
  if (!WaitConnected(stalled_channel)) fig.Fail("stall: stalled channel did not connect");
  auto stalled_stub = v1::TimerService::NewStub(stalled_channel);
  Shared stalled_shared;
  std::vector<std::unique_ptr<Watcher>> stalled;
  for (int i = 0; i < opt.stalled_streams; ++i) {
    stalled.push_back(std::make_unique<Watcher>(&stalled_shared, /*keep_events=*/true));
    stalled.back()->Start(stalled_stub.get(), env.bearer, /*stalled=*/true);
  }
  const int64_t b0 = WallMicros();
  SleepMs(opt.seconds * 1000);
  const int64_t b1 = WallMicros();
  const int64_t head_at_resume = normal->last_seq();

  // Now read: what was buffered for them, and how they end.
  const auto r0 = SteadyClock::now();
  for (auto& w : stalled) w->Resume();
  // Until each has ended, or has caught up with the normal stream (its
  // buffer never overflowed).
  const bool ended = WaitFor(
      [&] {
        for (const auto& w : stalled) {
          if (!w->done() && w->last_seq() < normal->last_seq()) return false;
        }
        return true;
      },
      20);
  int caught_up = 0;
  for (const auto& w : stalled) caught_up += w->done() ? 0 : 1;
  const double drain_s = std::chrono::duration<double>(SteadyClock::now() - r0).count();
  CancelAll(stalled);

  if (!env.api->DeleteJobs(ids, &error)) fig.Fail("stall: " + error);
  SleepMs(1000);
  normal->Cancel();
  WaitFor([&] { return normal->done(); }, 20);
  if (normal->status().error_code() != grpc::StatusCode::CANCELLED) {
    fig.Fail("stall: the normal stream ended: " + Describe(normal->status()));
  }

  std::vector<double> late_a, late_b;
  std::map<int64_t, int64_t> event_time_by_seq;
  for (const Seen& s : normal->seen()) {
    event_time_by_seq[s.sequence] = s.event_us;
    if (s.type != v1::JobEvent::RUN_STARTED) continue;
    const double ms = (s.start_us - s.scheduled_us) / 1000.0;
    if (s.scheduled_us >= a0 && s.scheduled_us < a1) late_a.push_back(ms);
    if (s.scheduled_us >= b0 && s.scheduled_us < b1) late_b.push_back(ms);
  }
  int exhausted = 0;
  std::vector<double> drained, overflow_after_s;
  std::string status_text;
  for (const auto& w : stalled) {
    drained.push_back(static_cast<double>(w->live()));
    if (w->status().error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++exhausted;
    if (status_text.empty()) status_text = Describe(w->status());
    // "resume with since=N": when the buffer overflowed.
    const std::string& msg = w->status().error_message();
    const size_t at = msg.rfind("since=");
    int64_t since = 0;
    if (at != std::string::npos && absl::SimpleAtoi(msg.substr(at + 6), &since)) {
      auto it = event_time_by_seq.upper_bound(since);
      if (it != event_time_by_seq.end()) {
        overflow_after_s.push_back((it->second - b0) / 1e6);
      }
    }
  }
  fig.Add("stall.jobs", opt.stall_jobs);
  fig.Add("stall.machine_load1", LoadAverage1());
  int64_t events_in_a = 0;
  for (const Seen& s : normal->seen()) events_in_a += s.event_us >= a0 && s.event_us < a1;
  fig.Add("stall.events_per_s", events_in_a / ((a1 - a0) / 1e6));
  fig.Add("stall.A_runs", static_cast<double>(late_a.size()));
  fig.Add("stall.A_lateness_p50_ms", Percentile(late_a, 0.50));
  fig.Add("stall.A_lateness_p99_ms", Percentile(late_a, 0.99));
  fig.Add("stall.A_lateness_max_ms", Percentile(late_a, 1.0));
  fig.Add("stall.B_runs", static_cast<double>(late_b.size()));
  fig.Add("stall.B_lateness_p50_ms", Percentile(late_b, 0.50));
  fig.Add("stall.B_lateness_p99_ms", Percentile(late_b, 0.99));
  fig.Add("stall.B_lateness_max_ms", Percentile(late_b, 1.0));
  fig.Add("stall.B/A_p50", Percentile(late_a, 0.5) > 0
                               ? Percentile(late_b, 0.5) / Percentile(late_a, 0.5)
                               : 0);
  fig.Add("stall.B/A_p99", Percentile(late_a, 0.99) > 0
                               ? Percentile(late_b, 0.99) / Percentile(late_a, 0.99)
                               : 0);
  fig.Add("stall.stalled_streams", opt.stalled_streams);
  fig.Add("stall.stalled_resource_exhausted", exhausted);
  fig.Add("stall.stalled_caught_up_unharmed", caught_up);
  fig.Add("stall.stalled_overflow_after_s", Median(overflow_after_s));
  fig.Add("stall.stalled_drained_events", Median(drained));
  fig.Add("stall.events_published_while_stalled",
          static_cast<double>(head_at_resume -
                              (stalled.empty() ? 0 : stalled[0]->open_head())));
  fig.Add("stall.stalled_drain_seconds", drain_s);
  fig.notes.push_back("stall: first stalled stream ended: " + status_text);
  if (!ended)
    fig.notes.push_back("stall: stalled streams neither ended nor caught up in 20 s");
  Retire(stalled);
  if (!normal->done()) (void)normal.release();  // gRPC may still call it.
}

// ---- A run ----

Figures RunOnce(const Options& opt, int run) {
  Figures fig;
  std::error_code ec;
  const std::string base =
      opt.tmp.empty() ? std::filesystem::temp_directory_path().string() : opt.tmp;
  std::string templ = base + "/timer-bench-watch-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    fig.Fail("mkdtemp under " + base);
    return fig;
  }
  const std::string dir = templ;
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_dir{dir};

  std::string out;
  if (RunToEnd({opt.timerd, "token", "issue", "--data-dir", dir + "/data", "--identity",
                "watch-bench@example.org"},
               dir, &out) != 0) {
    fig.Fail("timerd token issue: " + out);
    return fig;
  }
  const std::string token = LastLine(out);

  Timerd timerd(opt.timerd, opt.plugin_dir);
  std::string error;
  if (!timerd.Start(dir, kTimerdConfig, /*http=*/false, &error)) {
    fig.Fail(error);
    return fig;
  }
  std::printf("run %d: timerd pid %d on %s\n", run, timerd.pid(),
              timerd.address().c_str());
  std::fflush(stdout);

  Env env;
  env.opt = &opt;
  env.timerd = &timerd;
  env.bearer = "Bearer " + token;
  for (int i = 0; i < opt.channels; ++i) {
    env.channels.push_back(NewChannel(timerd.address(), {}));
    if (!WaitConnected(env.channels.back())) {
      fig.Fail("channel did not connect");
      return fig;
    }
    env.stubs.push_back(v1::TimerService::NewStub(env.channels.back()));
  }
  Api api(env.channels[0], env.bearer);
  env.api = &api;
  api.CreateJobs("idle", 1, /*idle=*/true, &error);
  if (!error.empty()) {
    fig.Fail(error);
    return fig;
  }
  auto wants = [&](const std::string& c) {
    return std::find(opt.cases.begin(), opt.cases.end(), c) != opt.cases.end();
  };
  if (wants("memory")) MemoryCase(env, fig);
  if (wants("delivery")) {
    for (int j : opt.jobs) DeliveryCase(env, j, fig);
  }
  if (wants("stall")) StallCase(env, fig);
  fig.Add("server_peak_rss_MB", ProcStatusKb(timerd.pid(), "VmHWM") / 1024.0);
  env.stubs.clear();
  env.channels.clear();
  if (!timerd.Stop()) fig.notes.push_back("timerd needed SIGKILL");
  return fig;
}

void PrintRuns(const std::vector<Figures>& runs) {
  std::printf("\n%-44s", "figure");
  for (size_t r = 0; r < runs.size(); ++r)
    std::printf(" %12s", absl::StrCat("run ", r + 1).c_str());
  if (runs.size() > 1) std::printf(" %12s", "median");
  std::printf("\n");
  for (size_t i = 0; i < runs.front().rows.size(); ++i) {
    const std::string& name = runs.front().rows[i].first;
    std::printf("%-44s", name.c_str());
    std::vector<double> values;
    for (const Figures& f : runs) {
      auto it = std::find_if(f.rows.begin(), f.rows.end(),
                             [&](const auto& row) { return row.first == name; });
      if (it == f.rows.end()) {
        std::printf(" %12s", "-");
        continue;
      }
      values.push_back(it->second);
      std::printf(" %12.3f", it->second);
    }
    if (runs.size() > 1) std::printf(" %12.3f", Median(values));
    std::printf("\n");
  }
  for (size_t r = 0; r < runs.size(); ++r) {
    for (const std::string& n : runs[r].notes)
      std::printf("run %zu: %s\n", r + 1, n.c_str());
  }
}

double MedianOf(const std::vector<Figures>& runs, const std::string& name) {
  std::vector<double> v;
  for (const Figures& f : runs) {
    for (const auto& row : f.rows) {
      if (row.first == name) v.push_back(row.second);
    }
  }
  return Median(v);
}

}  // namespace

int Main(int argc, char** argv) {
  Options opt;
  std::string cases = "memory,delivery,stall", jobs = "50,100";
  CLI::App app{
      "WatchJobs streams against a real timerd: server memory per stream, event "
      "delivery rate, stalled consumers and run lateness"};
  app.add_option("--cases", cases, "comma-separated: memory, delivery, stall");
  app.add_option("--runs", opt.runs,
                 "repeat everything (fresh timerd each); medians printed")
      ->check(CLI::PositiveNumber);
  app.add_option("--streams", opt.streams, "streams the memory case opens")
      ->check(CLI::PositiveNumber);
  app.add_option("--channels", opt.channels,
                 "channels (TCP connections) streams spread over")
      ->check(CLI::PositiveNumber);
  app.add_option("--active-streams", opt.active_streams, "streams of the delivery case")
      ->check(CLI::PositiveNumber);
  app.add_option("--jobs", jobs, "comma-separated 1 s jobs firing in the delivery case");
  app.add_option("--seconds", opt.seconds,
                 "measured window (delivery, and each stall window)")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "seconds jobs fire before a window starts");
  app.add_option("--stall-jobs", opt.stall_jobs, "1 s jobs firing in the stall case")
      ->check(CLI::PositiveNumber);
  app.add_option("--stalled-streams", opt.stalled_streams, "streams that never read")
      ->check(CLI::PositiveNumber);
  app.add_option("--stall-window-bytes", opt.stall_window_bytes,
                 "HTTP/2 stream receive window of the stalled streams");
  app.add_option("--timerd", opt.timerd, "the timerd binary")->capture_default_str();
  app.add_option("--plugin-dir", opt.plugin_dir, "directory holding noop.so")
      ->capture_default_str();
  app.add_option("--tmp", opt.tmp,
                 "where the temp directory goes (default: the temp dir)");
  CLI11_PARSE(app, argc, argv);
  opt.cases = absl::StrSplit(cases, ',', absl::SkipEmpty());
  opt.jobs.clear();
  for (absl::string_view j : absl::StrSplit(jobs, ',', absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(j, &n) || n <= 0) {
      std::fprintf(stderr, "--jobs: not a positive number: %s\n", std::string(j).c_str());
      return 2;
    }
    opt.jobs.push_back(n);
  }
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  ::signal(SIGPIPE, SIG_IGN);

  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  const rlim_t soft_before = files.rlim_cur;
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);
  ::getrlimit(RLIMIT_NOFILE, &files);
  std::printf(
      "timer_bench_watch: %d run(s), cases %s; streams %d over %d channels; "
      "active streams %d, jobs %s; window %d s, warmup %d s; stall jobs %d, "
      "stalled streams %d, stalled window %d B\n",
      opt.runs, cases.c_str(), opt.streams, opt.channels, opt.active_streams,
      jobs.c_str(), opt.seconds, opt.warmup, opt.stall_jobs, opt.stalled_streams,
      opt.stall_window_bytes);
  std::printf("client open-files limit: soft %llu -> %llu (hard %llu)\n",
              static_cast<unsigned long long>(soft_before),
              static_cast<unsigned long long>(files.rlim_cur),
              static_cast<unsigned long long>(files.rlim_max));
  std::fflush(stdout);

  std::vector<Figures> runs;
  bool failed = false;
  for (int r = 1; r <= opt.runs; ++r) {
    runs.push_back(RunOnce(opt, r));
    failed = failed || runs.back().failed;
  }
  PrintRuns(runs);

  std::printf("\nagainst the targets (medians):\n");
  const bool memory =
      std::find(opt.cases.begin(), opt.cases.end(), "memory") != opt.cases.end();
  if (memory) {
    const double kb = MedianOf(runs, "memory.KB_per_stream");
    std::printf("  server memory per open stream: %.1f KB (target <= %.0f KB): %s\n", kb,
                kTargetKbPerStream, kb <= kTargetKbPerStream ? "met" : "MISSED");
  }
  for (int j : opt.jobs) {
    const std::string key = absl::StrCat("delivery.", j, "jobs.");
    const double rate = MedianOf(runs, key + "delivered_per_s");
    if (rate <= 0) continue;
    const double ratio = MedianOf(runs, key + "delivered/expected");
    std::printf(
        "  %d jobs: %.0f events/s delivered across %d streams, %.3f of expected "
        "(target >= %.0f): %s\n",
        j, rate, opt.active_streams, ratio, kTargetEventsPerSec,
        rate >= kTargetEventsPerSec ? "met" : "MISSED");
  }
  const double a = MedianOf(runs, "stall.A_lateness_p99_ms");
  if (a > 0) {
    std::printf(
        "  run lateness p50/p99 without a stalled consumer %.2f / %.2f ms, with %.2f / "
        "%.2f ms\n",
        MedianOf(runs, "stall.A_lateness_p50_ms"), a,
        MedianOf(runs, "stall.B_lateness_p50_ms"),
        MedianOf(runs, "stall.B_lateness_p99_ms"));
  }
  return failed ? 1 : 0;
}

}  // namespace timer::bench

int main(int argc, char** argv) { return timer::bench::Main(argc, argv); }
