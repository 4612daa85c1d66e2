// timer_bench_http: timerd's HTTP listener against its gRPC server, both in
// one real timerd, in the same run (issue 22's HTTP targets):
//
//   get   GetJob over HTTP/1.1 with keep-alive against gRPC GetJob, at
//         --callers callers (default 64) each keeping one request in flight
//         on a connection of its own, the same jobs, the same identity, the
//         same order of job ids. --rounds rounds (default 5), each a gRPC
//         window and an HTTP window of --seconds s after --warmup s, the
//         order alternating from round to round so the machine's noise hits
//         both; the ratio HTTP/gRPC of each round and their median.
//         Per window: requests/s, p50/p99 latency, timerd's CPU (from
//         /proc/PID/stat) per request and in all, this process's CPU (the
//         client), the load average. The HTTP client is Beast over Asio on
//         --http-client-threads threads (default 1); the gRPC client is the
//         callback API on gRPC's own threads.
//   sse   --watchers (default 1,000) Server-Sent Events streams on
//         GET /v1/jobs:watch, all on one client thread (Asio), each its own
//         connection, of an owner with one idle job (so each opens with one
//         SNAPSHOT). Memory: timerd's VmRSS before the watchers connect and
//         once each has its snapshot, per watcher. Then --jobs noop jobs are
//         created firing every second from the next whole second
//         (RUN_STARTED and RUN_FINISHED each: 2 x jobs events/s published,
//         x watchers offered, in one burst a second); events received by all
//         watchers are counted for --seconds s after --warmup s, VmRSS read
//         again at the window's end, the jobs deleted, the watchers closed
//         and checked (gaps in their ids, dropped, a final error event).
//         Then the same with as many gRPC WatchJobs streams over
//         --grpc-channels channels (the baseline, as bench/watch_bench.cc
//         opens them; --no-grpc-watch leaves it out); --sse-rounds rounds,
//         alternating which goes first. Memory per watcher is reported for
//         each kind's first opening in the run (later ones reuse the heap
//         the other kind freed, so the second kind's figure is low). Then
//         the one-watcher baseline: a second, fresh timerd set up the same
//         way, one SSE watcher, the same jobs, warm-up and window; its RSS
//         growth by the window's end is the process's own under that load.
//         The net figure per watcher: (growth with --watchers watchers in
//         the first window - growth with one) / watchers.
//
// Each run starts a fresh timerd from the build tree as a child process
// (gRPC and HTTP on loopback, port 0, a temp data dir, the noop provider),
// issues two bearer tokens with `timerd token issue` (the get case's jobs
// and the watchers' are different identities, so the watchers' snapshots
// hold one job), and lifts the bounds the bench would otherwise hit (per
// peer connections, watch streams per identity, write rate) in its config.
// timerd is stopped (SIGTERM, then SIGKILL) and the directory removed at the
// end; timerd also gets SIGKILL if this process dies.
//
// Usage:
//   timer_bench_http [--cases get,sse] [--callers 64] [--rounds 5]
//       [--seconds 5] [--warmup 1] [--get-jobs 1000] [--http-client-threads 1]
//       [--watchers 1000] [--jobs 100] [--sse-rounds 2] [--grpc-channels 16]
//       [--no-grpc-watch]
//       [--timerd PATH] [--plugin-dir DIR] [--tmp DIR]
//
// Exits 1 if a case could not run, a request failed, or a watcher was
// dropped or saw a gap.
//
// Threading: main() drives everything. gRPC reactors run on gRPC's threads,
// the HTTP clients on their io threads; main() reads only their atomics
// while they run and everything else once they have stopped.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "bench_support.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::bench {
namespace {

namespace v1 = timer::v1;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

// Issue 22's targets, on the 2-core reference machine.
constexpr double kTargetGetRatio = 0.8;         // HTTP GetJob/s over gRPC's.
constexpr double kTargetEventsPerSec = 100000;  // Across 1,000 SSE watchers.
constexpr double kTargetKbPerWatcher = 25;

struct Options {
  std::vector<std::string> cases = {"get", "sse"};
  int callers = 64;
  int rounds = 5;
  int seconds = 5;
  int warmup = 1;
  int get_jobs = 1000;
  int http_client_threads = 1;
  int watchers = 1000;
  int jobs = 100;
  int sse_rounds = 2;
  bool grpc_watch = true;  // The gRPC baseline of the sse case.
  int grpc_channels = 16;
  std::string timerd = TIMER_BENCH_TIMERD;
  std::string plugin_dir = TIMER_BENCH_PLUGIN_DIR;
  std::string tmp;
};

// timerd's config. One identity per case opens every connection and stream
// from one address: the per-peer and per-identity bounds are lifted, and the
// write rate (the jobs are created as fast as they are answered).
constexpr char kTimerdConfig[] =
    "load_plugins = [\"noop\"]\n"
    "max_watch_streams = 10000000\n"
    "max_watch_streams_per_identity = 10000000\n"
    "max_connections = 4096\n"
    "max_connections_per_peer = 4096\n"
    "write_rate_per_identity = 1000000\n"
    "write_burst_per_identity = 1000000\n"
    "http_max_connections = 4096\n"
    "http_max_connections_per_peer = 4096\n"
    "http_idle_timeout_ms = 3600000\n";

std::string Describe(const grpc::Status& s) {
  return s.error_message().empty()
             ? absl::StrCat("code ", s.error_code())
             : absl::StrCat("code ", s.error_code(), ": ", s.error_message());
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  // Each channel its own subchannel, so its own TCP connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel =
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::seconds(10))) {
    return nullptr;
  }
  return channel;
}

// Creates `n` noop jobs firing every second from the next whole second, or
// idle ones (first run an hour away); their ids.
std::vector<std::string> CreateJobs(v1::TimerService::Stub* stub,
                                    const std::string& bearer, const std::string& prefix,
                                    int n, bool idle, std::string* error) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", bearer);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name(absl::StrCat(prefix, "-", i));
    job->mutable_schedule()->set_interval_seconds(idle ? 3600 : 1);
    if (idle) {
      job->mutable_schedule()->mutable_start()->set_seconds(WallMicros() / 1000000 +
                                                            3600);
    }
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body("{}");
    req.set_request_id(absl::StrCat(prefix, "-", i, "-", WallMicros()));
    v1::Job out;
    grpc::Status s = stub->CreateJob(&ctx, req, &out);
    if (!s.ok()) {
      *error = "CreateJob: " + Describe(s);
      return ids;
    }
    ids.push_back(out.job_id());
  }
  return ids;
}

bool DeleteJobs(v1::TimerService::Stub* stub, const std::string& bearer,
                const std::vector<std::string>& ids, std::string* error) {
  for (const std::string& id : ids) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", bearer);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::DeleteJobRequest req;
    req.set_job_id(id);
    v1::Job out;
    grpc::Status s = stub->DeleteJob(&ctx, req, &out);
    if (!s.ok()) {
      *error = "DeleteJob: " + Describe(s);
      return false;
    }
  }
  return true;
}

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

// ---- get: the load of one window ----

enum Phase : int { kWarmup = 0, kMeasure = 1, kStop = 2 };

// What one caller saw in the measured window.
struct CallerResult {
  std::vector<double> latency_us;
  int64_t errors = 0;
  std::string first_error;
};

struct WindowResult {
  double requests_per_s = 0;
  double p50_ms = 0, p99_ms = 0;
  double server_cpu_pct = 0, client_cpu_pct = 0;
  double server_cpu_us_per_request = 0, client_cpu_us_per_request = 0;
  double load1 = 0;
  int64_t errors = 0;
  std::string first_error;
};

// Runs the window: `start(t)` starts caller t's loop (it stops itself once
// phase is kStop and then decrements `active`).
template <typename Start>
WindowResult RunWindow(const Options& opt, const Timerd& timerd, std::atomic<int>& phase,
                       std::atomic<int>& active, std::atomic<int64_t>& completed,
                       std::vector<CallerResult>& results, Start start) {
  phase = kWarmup;
  active = opt.callers;
  for (int t = 0; t < opt.callers; ++t) start(t);
  SleepMs(opt.warmup * 1000);
  const double server0 = timerd.CpuSeconds(), client0 = SelfCpuSeconds();
  const int64_t done0 = completed.load();
  const auto t0 = SteadyClock::now();
  phase = kMeasure;
  SleepMs(opt.seconds * 1000);
  phase = kStop;
  const auto t1 = SteadyClock::now();
  const int64_t done1 = completed.load();
  const double server1 = timerd.CpuSeconds(), client1 = SelfCpuSeconds();
  WindowResult w;
  w.load1 = LoadAverage1();
  if (!WaitFor([&] { return active.load() == 0; }, 30)) {
    w.errors = 1;
    w.first_error = "callers did not stop within 30 s";
  }
  const double secs = std::chrono::duration<double>(t1 - t0).count();
  const double n = static_cast<double>(done1 - done0);
  std::vector<double> lat;
  for (CallerResult& r : results) {
    lat.insert(lat.end(), r.latency_us.begin(), r.latency_us.end());
    w.errors += r.errors;
    if (w.first_error.empty()) w.first_error = r.first_error;
    r = CallerResult();
  }
  w.requests_per_s = n / secs;
  w.p50_ms = Percentile(lat, 0.5) / 1000;
  w.p99_ms = Percentile(lat, 0.99) / 1000;
  w.server_cpu_pct = 100 * (server1 - server0) / secs;
  w.client_cpu_pct = 100 * (client1 - client0) / secs;
  w.server_cpu_us_per_request = n > 0 ? 1e6 * (server1 - server0) / n : 0;
  w.client_cpu_us_per_request = n > 0 ? 1e6 * (client1 - client0) / n : 0;
  return w;
}

// gRPC GetJob callers: the callback API, one call in flight per caller, each
// on a channel (TCP connection) of its own.
class GrpcGetLoad {
 public:
  GrpcGetLoad(const Options& opt, std::vector<std::shared_ptr<grpc::Channel>> channels,
              std::string bearer, const std::vector<std::string>& ids)
      : opt_(opt), bearer_(std::move(bearer)), ids_(ids), slots_(opt.callers) {
    for (int t = 0; t < opt.callers; ++t) {
      slots_[t].stub = v1::TimerService::NewStub(channels[t]);
      slots_[t].next = static_cast<size_t>(t);
    }
    results_.resize(opt.callers);
  }

  WindowResult Window(const Timerd& timerd) {
    return RunWindow(opt_, timerd, phase_, active_, completed_, results_,
                     [this](int t) { Issue(t); });
  }

 private:
  struct Slot {
    std::unique_ptr<v1::TimerService::Stub> stub;
    std::unique_ptr<grpc::ClientContext> ctx;
    v1::GetJobRequest request;
    v1::Job response;
    size_t next = 0;
    int start_phase = kWarmup;
    SteadyClock::time_point start;
  };

  void Issue(int t) {
    Slot& s = slots_[t];
    s.start_phase = phase_.load(std::memory_order_relaxed);
    if (s.start_phase == kStop) {
      active_.fetch_sub(1);
      return;
    }
    // Replaced inside the previous call's callback: gRPC holds its own
    // reference to the finished call.
    s.ctx = std::make_unique<grpc::ClientContext>();
    s.ctx->AddMetadata("authorization", bearer_);
    s.ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    s.request.set_job_id(ids_[s.next % ids_.size()]);
    s.next += static_cast<size_t>(opt_.callers);
    s.start = SteadyClock::now();
    s.stub->async()->GetJob(s.ctx.get(), &s.request, &s.response,
                            [this, t](grpc::Status status) { Done(t, status); });
  }

  void Done(int t, const grpc::Status& status) {
    Slot& s = slots_[t];
    if (s.start_phase == kMeasure && phase_.load(std::memory_order_relaxed) == kMeasure) {
      CallerResult& r = results_[t];
      if (status.ok()) {
        r.latency_us.push_back(
            std::chrono::duration<double, std::micro>(SteadyClock::now() - s.start)
                .count());
        completed_.fetch_add(1, std::memory_order_relaxed);
      } else if (r.errors++ == 0) {
        r.first_error = "gRPC GetJob: " + Describe(status);
      }
    }
    Issue(t);
  }

  const Options& opt_;
  const std::string bearer_;
  const std::vector<std::string>& ids_;
  std::vector<Slot> slots_;
  std::vector<CallerResult> results_;
  std::atomic<int> phase_{kStop};
  std::atomic<int> active_{0};
  std::atomic<int64_t> completed_{0};
};

// HTTP GetJob callers: Beast over Asio on --http-client-threads threads, one
// keep-alive connection per caller, one request in flight on each. The
// requests are prepared once (one text per job id); a response is parsed
// by Beast into a reused message.
class HttpGetLoad {
 public:
  HttpGetLoad(const Options& opt, int port, const std::string& bearer,
              const std::vector<std::string>& ids)
      : opt_(opt), slots_(opt.callers) {
    for (const std::string& id : ids) {
      requests_.push_back(absl::StrCat("GET /v1/jobs/", id,
                                       " HTTP/1.1\r\n"
                                       "Host: 127.0.0.1:",
                                       port,
                                       "\r\n"
                                       "Authorization: ",
                                       bearer, "\r\n\r\n"));
    }
    results_.resize(opt.callers);
    work_.emplace(ioc_.get_executor());
    for (int i = 0; i < std::max(1, opt.http_client_threads); ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
  }
  ~HttpGetLoad() {
    for (auto& s : slots_) {
      if (s.socket) {
        beast::error_code ignored;
        s.socket->close(ignored);
      }
    }
    work_.reset();
    ioc_.stop();
    for (std::thread& t : threads_) t.join();
  }

  bool Connect(int port, std::string* error) {
    const tcp::endpoint server(net::ip::make_address("127.0.0.1"),
                               static_cast<uint16_t>(port));
    for (int t = 0; t < opt_.callers; ++t) {
      Slot& s = slots_[t];
      s.socket.emplace(ioc_);
      beast::error_code ec;
      s.socket->connect(server, ec);
      if (!ec) s.socket->set_option(tcp::no_delay(true), ec);
      if (ec) {
        *error = "HTTP connect: " + ec.message();
        return false;
      }
      s.next = static_cast<size_t>(t);
      // One request now: a connection's first request must come within
      // http_header_timeout_ms of its start, and the connections may wait
      // longer for their window (a kept-alive one, http_idle_timeout_ms).
      net::write(*s.socket, net::buffer(requests_[t % requests_.size()]), ec);
      bhttp::response<bhttp::string_body> response;
      if (!ec) bhttp::read(*s.socket, s.buffer, response, ec);
      if (ec || response.result_int() != 200) {
        *error = absl::StrCat("HTTP GetJob: ", ec ? ec.message() : response.body());
        return false;
      }
    }
    return true;
  }

  WindowResult Window(const Timerd& timerd) {
    return RunWindow(opt_, timerd, phase_, active_, completed_, results_,
                     [this](int t) { net::post(ioc_, [this, t] { Issue(t); }); });
  }

 private:
  struct Slot {
    std::optional<tcp::socket> socket;
    beast::flat_buffer buffer;
    bhttp::response<bhttp::string_body> response;
    size_t next = 0;
    int start_phase = kWarmup;
    SteadyClock::time_point start;
    bool broken = false;
  };

  void Issue(int t) {
    Slot& s = slots_[t];
    s.start_phase = phase_.load(std::memory_order_relaxed);
    if (s.start_phase == kStop || s.broken) {
      active_.fetch_sub(1);
      return;
    }
    const std::string& request = requests_[s.next % requests_.size()];
    s.next += static_cast<size_t>(opt_.callers);
    s.start = SteadyClock::now();
    net::async_write(*s.socket, net::buffer(request),
                     [this, t](beast::error_code ec, size_t) {
                       if (ec) return Fail(t, "HTTP write: " + ec.message());
                       Slot& s = slots_[t];
                       s.response = {};
                       bhttp::async_read(*s.socket, s.buffer, s.response,
                                         [this, t](beast::error_code ec, size_t) {
                                           if (ec)
                                             return Fail(t, "HTTP read: " + ec.message());
                                           Done(t);
                                         });
                     });
  }

  void Fail(int t, const std::string& why) {
    CallerResult& r = results_[t];
    if (r.errors++ == 0) r.first_error = why;
    slots_[t].broken = true;
    active_.fetch_sub(1);
  }

  void Done(int t) {
    Slot& s = slots_[t];
    const bool ok = s.response.result_int() == 200;
    if (s.start_phase == kMeasure && phase_.load(std::memory_order_relaxed) == kMeasure) {
      CallerResult& r = results_[t];
      if (ok) {
        r.latency_us.push_back(
            std::chrono::duration<double, std::micro>(SteadyClock::now() - s.start)
                .count());
        completed_.fetch_add(1, std::memory_order_relaxed);
      } else if (r.errors++ == 0) {
        r.first_error = absl::StrCat("HTTP GetJob: ", s.response.result_int(), " ",
                                     s.response.body());
      }
    }
    if (!s.response.keep_alive())
      return Fail(t, "HTTP: the server closed the connection");
    Issue(t);
  }

  const Options& opt_;
  std::vector<std::string> requests_;
  net::io_context ioc_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  std::vector<Slot> slots_;
  std::vector<CallerResult> results_;
  std::atomic<int> phase_{kStop};
  std::atomic<int> active_{0};
  std::atomic<int64_t> completed_{0};
};

void AddWindow(Figures& fig, const std::string& key, const WindowResult& w) {
  fig.Add(key + "requests_per_s", w.requests_per_s);
  fig.Add(key + "p50_ms", w.p50_ms);
  fig.Add(key + "p99_ms", w.p99_ms);
  fig.Add(key + "server_cpu_pct", w.server_cpu_pct);
  fig.Add(key + "server_cpu_us_per_request", w.server_cpu_us_per_request);
  fig.Add(key + "client_cpu_pct", w.client_cpu_pct);
  fig.Add(key + "client_cpu_us_per_request", w.client_cpu_us_per_request);
  fig.Add(key + "load1", w.load1);
}

void GetCase(const Options& opt, const Timerd& timerd, v1::TimerService::Stub* admin,
             const std::string& bearer, Figures& fig) {
  std::string error;
  const std::vector<std::string> ids =
      CreateJobs(admin, bearer, "get", opt.get_jobs, /*idle=*/true, &error);
  if (!error.empty()) return fig.Fail("get: " + error);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int t = 0; t < opt.callers; ++t) {
    channels.push_back(NewChannel(timerd.address()));
    if (channels.back() == nullptr)
      return fig.Fail("get: a gRPC channel did not connect");
  }
  GrpcGetLoad grpc_load(opt, channels, bearer, ids);
  HttpGetLoad http_load(opt, timerd.http_port(), bearer, ids);
  if (!http_load.Connect(timerd.http_port(), &error)) return fig.Fail("get: " + error);

  std::vector<double> ratios, cpu_ratios;
  for (int r = 1; r <= opt.rounds; ++r) {
    WindowResult g, h;
    // Alternating order: ABBA over rounds.
    if (r % 2 == 1) {
      g = grpc_load.Window(timerd);
      h = http_load.Window(timerd);
    } else {
      h = http_load.Window(timerd);
      g = grpc_load.Window(timerd);
    }
    const std::string key = absl::StrCat("get.round", r, ".");
    AddWindow(fig, key + "grpc.", g);
    AddWindow(fig, key + "http.", h);
    const double ratio = g.requests_per_s > 0 ? h.requests_per_s / g.requests_per_s : 0;
    const double cpu_ratio =
        h.server_cpu_us_per_request > 0
            ? g.server_cpu_us_per_request / h.server_cpu_us_per_request
            : 0;
    fig.Add(key + "http/grpc", ratio);
    fig.Add(key + "server_cpu_per_request_grpc/http", cpu_ratio);
    ratios.push_back(ratio);
    cpu_ratios.push_back(cpu_ratio);
    std::printf(
        "  get round %d: gRPC %.0f/s (timerd %.0f%%, client %.0f%%, %.1f us timerd CPU "
        "a call), HTTP %.0f/s (timerd %.0f%%, client %.0f%%, %.1f us), HTTP/gRPC %.3f, "
        "load %.2f\n",
        r, g.requests_per_s, g.server_cpu_pct, g.client_cpu_pct,
        g.server_cpu_us_per_request, h.requests_per_s, h.server_cpu_pct, h.client_cpu_pct,
        h.server_cpu_us_per_request, ratio, h.load1);
    std::fflush(stdout);
    for (const WindowResult* w : {&g, &h}) {
      if (w->errors > 0) {
        fig.Fail(
            absl::StrCat("get round ", r, ": ", w->errors, " errors: ", w->first_error));
      }
    }
  }
  fig.Add("get.median_http/grpc", Median(ratios));
  fig.Add("get.median_server_cpu_per_request_grpc/http", Median(cpu_ratios));
}

// ---- sse ----

// One SSE watcher on its own connection: reads the response's headers with
// Beast, then the event stream, counting events. All watchers run on one
// thread (the SseClient's), so nothing here is shared but the atomics main()
// reads.
struct SseWatcher {
  explicit SseWatcher(net::io_context& ioc) : socket(ioc) {}
  tcp::socket socket;
  beast::flat_buffer header_buffer;
  std::optional<bhttp::response_parser<bhttp::empty_body>> parser;
  std::vector<char> buffer = std::vector<char>(32 << 10);
  // The line being read: its first bytes (enough for "id:" and "event:"
  // lines) and its length; data lines are skipped past.
  std::string line;
  size_t line_length = 0;
  // The event being read.
  int64_t event_id = -1;
  bool event_snapshot = false, event_error = false;
  // What it saw.
  int64_t head = 0;  // The snapshot's id: events follow from head + 1.
  int64_t last_id = 0;
  int64_t gaps = 0;
  std::atomic<int64_t> live{0};
  std::atomic<bool> opened{false};
  std::atomic<bool> ended{false};
  bool error_event = false;
  bool closing = false;
  std::string end_reason;
};

class SseClient {
 public:
  SseClient(int port, std::string bearer) : port_(port), bearer_(std::move(bearer)) {
    work_.emplace(ioc_.get_executor());
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~SseClient() {
    CloseAll();
    work_.reset();
    ioc_.stop();
    thread_.join();
  }

  // Opens n watchers of GET /v1/jobs:watch (connecting on the client
  // thread, asynchronously).
  void Open(int n) {
    for (int i = 0; i < n; ++i) watchers_.push_back(std::make_unique<SseWatcher>(ioc_));
    request_ = absl::StrCat("GET /v1/jobs:watch HTTP/1.1\r\nHost: 127.0.0.1:", port_,
                            "\r\nAuthorization: ", bearer_,
                            "\r\nAccept: text/event-stream\r\n\r\n");
    net::post(ioc_, [this] {
      const tcp::endpoint server(net::ip::make_address("127.0.0.1"),
                                 static_cast<uint16_t>(port_));
      for (auto& w : watchers_) {
        SseWatcher* raw = w.get();
        raw->socket.async_connect(server, [this, raw](beast::error_code ec) {
          if (ec) return End(raw, "connect: " + ec.message());
          net::async_write(raw->socket, net::buffer(request_),
                           [this, raw](beast::error_code ec, size_t) {
                             if (ec) return End(raw, "write: " + ec.message());
                             ReadHeader(raw);
                           });
        });
      }
    });
  }

  // Closes every watcher's connection and waits until the client thread
  // has seen them all end.
  void CloseAll() {
    absl::Notification done;
    net::post(ioc_, [this, &done] {
      for (auto& w : watchers_) {
        w->closing = true;
        beast::error_code ignored;
        w->socket.close(ignored);
      }
      done.Notify();
    });
    done.WaitForNotificationWithTimeout(absl::Seconds(30));
    WaitFor([&] { return Ended() == static_cast<int>(watchers_.size()); }, 30);
  }

  int Opened() const {
    int n = 0;
    for (const auto& w : watchers_) n += w->opened.load() ? 1 : 0;
    return n;
  }
  int Ended() const {
    int n = 0;
    for (const auto& w : watchers_) n += w->ended.load() ? 1 : 0;
    return n;
  }
  int64_t Live() const {
    int64_t n = 0;
    for (const auto& w : watchers_) n += w->live.load(std::memory_order_relaxed);
    return n;
  }
  // After CloseAll().
  const std::vector<std::unique_ptr<SseWatcher>>& watchers() const { return watchers_; }

 private:
  void End(SseWatcher* w, const std::string& why) {
    if (w->ended.load()) return;
    if (!w->closing && w->end_reason.empty()) w->end_reason = why;
    beast::error_code ignored;
    w->socket.close(ignored);
    w->ended = true;
  }

  void ReadHeader(SseWatcher* w) {
    w->parser.emplace();
    bhttp::async_read_header(
        w->socket, w->header_buffer, *w->parser, [this, w](beast::error_code ec, size_t) {
          if (ec) return End(w, "reading the headers: " + ec.message());
          if (w->parser->get().result_int() != 200) {
            return End(w, absl::StrCat("HTTP ", w->parser->get().result_int()));
          }
          // What was read past the headers is the stream's start.
          const auto data = w->header_buffer.data();
          Consume(w, static_cast<const char*>(data.data()), data.size());
          w->header_buffer = beast::flat_buffer();
          ReadMore(w);
        });
  }

  void ReadMore(SseWatcher* w) {
    w->socket.async_read_some(net::buffer(w->buffer),
                              [this, w](beast::error_code ec, size_t n) {
                                if (n > 0) Consume(w, w->buffer.data(), n);
                                if (ec) return End(w, "read: " + ec.message());
                                ReadMore(w);
                              });
  }

  static void Consume(SseWatcher* w, const char* p, size_t n) {
    constexpr size_t kKeep = 40;  // "event: RUN_FINISHED", "id: " + 19 digits.
    while (n > 0) {
      const char* nl = static_cast<const char*>(::memchr(p, '\n', n));
      const size_t len = nl == nullptr ? n : static_cast<size_t>(nl - p);
      if (w->line.size() < kKeep)
        w->line.append(p, std::min(len, kKeep - w->line.size()));
      w->line_length += len;
      if (nl == nullptr) return;
      Line(w);
      w->line.clear();
      w->line_length = 0;
      p = nl + 1;
      n -= len + 1;
    }
  }

  static void Line(SseWatcher* w) {
    const std::string& l = w->line;
    if (w->line_length == 0) {  // The event's end.
      if (w->event_error) w->error_event = true;
      if (w->event_id >= 0) {
        if (w->event_snapshot) {
          w->head = w->event_id;
          w->opened = true;
        } else {
          const int64_t expect = w->last_id > 0 ? w->last_id + 1 : w->head + 1;
          if (w->head > 0 && w->event_id != expect) ++w->gaps;
          w->last_id = w->event_id;
          w->live.fetch_add(1, std::memory_order_relaxed);
        }
      }
      w->event_id = -1;
      w->event_snapshot = w->event_error = false;
      return;
    }
    if (l.rfind("id: ", 0) == 0) {
      int64_t id = 0;
      if (absl::SimpleAtoi(absl::string_view(l).substr(4), &id)) w->event_id = id;
    } else if (l.rfind("event: ", 0) == 0) {
      const absl::string_view type = absl::string_view(l).substr(7);
      w->event_snapshot = type == "SNAPSHOT" || type == "RESET";
      w->event_error = type == "error";
    }
  }

  const int port_;
  const std::string bearer_;
  std::string request_;
  net::io_context ioc_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::thread thread_;
  std::vector<std::unique_ptr<SseWatcher>> watchers_;
};

// One gRPC WatchJobs stream (callback API), counting events.
class GrpcWatcher final : public grpc::ClientReadReactor<v1::WatchJobsResponse> {
 public:
  void Start(v1::TimerService::Stub* stub, const std::string& bearer) {
    ctx_.AddMetadata("authorization", bearer);
    stub->async()->WatchJobs(&ctx_, &request_, this);
    StartRead(&message_);
    StartCall();
  }
  void Cancel() { ctx_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    for (const v1::JobEvent& event : message_.events()) {
      if (event.type() == v1::JobEvent::SNAPSHOT || event.type() == v1::JobEvent::RESET) {
        head_ = event.sequence();
        opened_ = true;
        continue;
      }
      const int64_t expect = last_ > 0 ? last_ + 1 : head_ + 1;
      if (head_ > 0 && event.sequence() != expect) ++gaps_;
      last_ = event.sequence();
      live_.fetch_add(1, std::memory_order_relaxed);
    }
    StartRead(&message_);
  }
  void OnDone(const grpc::Status& s) override {
    status_ = s;
    done_.store(true, std::memory_order_release);
  }

  bool opened() const { return opened_.load(); }
  bool done() const { return done_.load(std::memory_order_acquire); }
  int64_t live() const { return live_.load(std::memory_order_relaxed); }
  // After done().
  int64_t gaps() const { return gaps_; }
  const grpc::Status& status() const { return status_; }

 private:
  grpc::ClientContext ctx_;
  v1::WatchJobsRequest request_;
  v1::WatchJobsResponse message_;
  int64_t head_ = 0, last_ = 0, gaps_ = 0;
  std::atomic<int64_t> live_{0};
  std::atomic<bool> opened_{false};
  std::atomic<bool> done_{false};
  grpc::Status status_;
};

struct DeliveryResult {
  double open_s = 0;
  double kb_per_watcher_open = 0, kb_per_watcher_window_end = 0;
  double delivered_per_s = 0;
  double server_cpu_pct = 0, client_cpu_pct = 0, server_cpu_us_per_event = 0;
  double load1 = 0;
  int64_t gaps = 0;
  int dropped = 0;
  int opened = 0;
  std::string first_drop;
  std::string error;  // Creating or deleting the firing jobs.
};

// Opens the watchers with `open()`, waits for `opened()` to reach n, then
// counts `live()` for the window.
template <typename Open, typename Opened, typename Live>
DeliveryResult MeasureDelivery(const Options& opt, const Timerd& timerd,
                               v1::TimerService::Stub* admin, const std::string& bearer,
                               Open open, Opened opened, Live live) {
  DeliveryResult d;
  const int64_t rss0 = timerd.RssKb();
  const auto t0 = SteadyClock::now();
  open();
  WaitFor([&] { return opened() >= opt.watchers; }, 120);
  d.open_s = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  d.opened = opened();
  SleepMs(1000);
  const int64_t rss1 = timerd.RssKb();
  // The firing jobs only now: each stream opened with one snapshot (the
  // idle job's), as a watcher of an owner with one job would.
  std::string error;
  const std::vector<std::string> ids =
      CreateJobs(admin, bearer, "fire", opt.jobs, /*idle=*/false, &error);
  if (!error.empty()) d.error = error;
  SleepMs(opt.warmup * 1000);
  const double server0 = timerd.CpuSeconds(), client0 = SelfCpuSeconds();
  const int64_t n0 = live();
  const auto w0 = SteadyClock::now();
  SleepMs(opt.seconds * 1000);
  const int64_t n1 = live();
  const auto w1 = SteadyClock::now();
  const double server1 = timerd.CpuSeconds(), client1 = SelfCpuSeconds();
  const int64_t rss2 = timerd.RssKb();
  d.load1 = LoadAverage1();
  if (!DeleteJobs(admin, bearer, ids, &error)) d.error = error;
  const double secs = std::chrono::duration<double>(w1 - w0).count();
  const double n = static_cast<double>(n1 - n0);
  d.kb_per_watcher_open = static_cast<double>(rss1 - rss0) / opt.watchers;
  d.kb_per_watcher_window_end = static_cast<double>(rss2 - rss0) / opt.watchers;
  d.delivered_per_s = n / secs;
  d.server_cpu_pct = 100 * (server1 - server0) / secs;
  d.client_cpu_pct = 100 * (client1 - client0) / secs;
  d.server_cpu_us_per_event = n > 0 ? 1e6 * (server1 - server0) / n : 0;
  return d;
}

DeliveryResult SseDelivery(const Options& opt, const Timerd& timerd,
                           v1::TimerService::Stub* admin, const std::string& bearer) {
  SseClient client(timerd.http_port(), bearer);
  DeliveryResult d = MeasureDelivery(
      opt, timerd, admin, bearer, [&] { client.Open(opt.watchers); },
      [&] { return client.Opened(); }, [&] { return client.Live(); });
  const int ended_early = client.Ended();
  client.CloseAll();
  for (const auto& w : client.watchers()) {
    d.gaps += w->gaps;
    if (!w->end_reason.empty() || w->error_event) {
      ++d.dropped;
      if (d.first_drop.empty()) {
        d.first_drop = w->error_event ? "a final error event" : w->end_reason;
      }
    }
  }
  if (ended_early > 0 && d.first_drop.empty()) d.first_drop = "ended early";
  return d;
}

DeliveryResult GrpcDelivery(
    const Options& opt, const Timerd& timerd,
    const std::vector<std::unique_ptr<v1::TimerService::Stub>>& stubs,
    v1::TimerService::Stub* admin, const std::string& bearer) {
  std::vector<std::unique_ptr<GrpcWatcher>> watchers;
  DeliveryResult d = MeasureDelivery(
      opt, timerd, admin, bearer,
      [&] {
        for (int i = 0; i < opt.watchers; ++i) {
          watchers.push_back(std::make_unique<GrpcWatcher>());
          watchers.back()->Start(stubs[i % stubs.size()].get(), bearer);
        }
      },
      [&] {
        int n = 0;
        for (const auto& w : watchers) n += w->opened() ? 1 : 0;
        return n;
      },
      [&] {
        int64_t n = 0;
        for (const auto& w : watchers) n += w->live();
        return n;
      });
  int done_early = 0;
  for (const auto& w : watchers) done_early += w->done() ? 1 : 0;
  for (auto& w : watchers) w->Cancel();
  WaitFor(
      [&] {
        return std::all_of(watchers.begin(), watchers.end(),
                           [](const auto& w) { return w->done(); });
      },
      30);
  for (auto& w : watchers) {
    if (!w->done()) {
      (void)w.release();  // gRPC may still call it.
      continue;
    }
    d.gaps += w->gaps();
    if (w->status().error_code() != grpc::StatusCode::CANCELLED) {
      ++d.dropped;
      if (d.first_drop.empty()) d.first_drop = Describe(w->status());
    }
  }
  (void)done_early;
  return d;
}

void AddDelivery(Figures& fig, const std::string& key, const DeliveryResult& d) {
  fig.Add(key + "opened", d.opened);
  fig.Add(key + "open_seconds", d.open_s);
  fig.Add(key + "KB_per_watcher_open", d.kb_per_watcher_open);
  fig.Add(key + "KB_per_watcher_window_end", d.kb_per_watcher_window_end);
  fig.Add(key + "delivered_per_s", d.delivered_per_s);
  fig.Add(key + "server_cpu_pct", d.server_cpu_pct);
  fig.Add(key + "server_cpu_us_per_event", d.server_cpu_us_per_event);
  fig.Add(key + "client_cpu_pct", d.client_cpu_pct);
  fig.Add(key + "load1", d.load1);
  fig.Add(key + "dropped", d.dropped);
  fig.Add(key + "gaps", static_cast<double>(d.gaps));
}

// Issues a bearer token for `identity` on the data dir dir/data: "Bearer
// TOKEN", or "" with *error.
std::string IssueBearer(const Options& opt, const std::string& dir,
                        const std::string& identity, std::string* error) {
  std::string out;
  if (RunToEnd({opt.timerd, "token", "issue", "--data-dir", dir + "/data", "--identity",
                identity},
               dir, &out) != 0) {
    *error = "timerd token issue: " + out;
    return "";
  }
  return "Bearer " + LastLine(out);
}

constexpr char kWatchIdentity[] = "watch-bench@example.org";

// The baseline of the net memory figure: a fresh timerd in `dir`, set up as
// the sse case's is (the watchers' identity, one idle job), one SSE watcher,
// then the same firing jobs, warm-up and window as a round. Its RSS growth
// over that first window is the process's own under the firing load (the
// store, the event hub and the frame cache warming up), which the 1,000
// watchers' first window on a fresh timerd holds too.
DeliveryResult OneWatcherBaseline(const Options& opt, const std::string& dir) {
  DeliveryResult d;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string bearer = IssueBearer(opt, dir, kWatchIdentity, &d.error);
  if (bearer.empty()) return d;
  Timerd timerd(opt.timerd, opt.plugin_dir);
  if (!timerd.Start(dir, kTimerdConfig, /*http=*/true, &d.error)) return d;
  std::printf("  sse one-watcher baseline: a fresh timerd, pid %d\n", timerd.pid());
  std::fflush(stdout);
  auto channel = NewChannel(timerd.address());
  if (channel == nullptr) {
    d.error = "the gRPC channel did not connect";
    return d;
  }
  auto admin = v1::TimerService::NewStub(channel);
  CreateJobs(admin.get(), bearer, "idle", 1, /*idle=*/true, &d.error);
  if (!d.error.empty()) return d;
  Options one = opt;
  one.watchers = 1;
  d = SseDelivery(one, timerd, admin.get(), bearer);
  if (!timerd.Stop() && d.error.empty()) d.error = "its timerd needed SIGKILL";
  return d;
}

void SseCase(const Options& opt, const Timerd& timerd, v1::TimerService::Stub* admin,
             const std::string& bearer, const std::string& dir, Figures& fig) {
  std::string error;
  // One idle job, so each stream opens with one SNAPSHOT, then the firing
  // ones.
  CreateJobs(admin, bearer, "idle", 1, /*idle=*/true, &error);
  if (!error.empty()) return fig.Fail("sse: " + error);
  std::vector<std::unique_ptr<v1::TimerService::Stub>> stubs;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < opt.grpc_channels; ++i) {
    channels.push_back(NewChannel(timerd.address()));
    if (channels.back() == nullptr)
      return fig.Fail("sse: a gRPC channel did not connect");
    stubs.push_back(v1::TimerService::NewStub(channels.back()));
  }
  const double offered = 2.0 * opt.jobs * opt.watchers;
  fig.Add("sse.offered_events_per_s", offered);
  std::vector<double> sse_rates, grpc_rates, ratios;
  // Memory per watcher at each kind's first opening in the run.
  std::optional<double> sse_kb, grpc_kb, sse_kb_end, grpc_kb_end;
  for (int r = 1; r <= opt.sse_rounds; ++r) {
    DeliveryResult s, g;
    g.opened = opt.grpc_watch ? 0 : opt.watchers;
    if (r % 2 == 1) {
      s = SseDelivery(opt, timerd, admin, bearer);
      if (opt.grpc_watch) g = GrpcDelivery(opt, timerd, stubs, admin, bearer);
    } else {
      if (opt.grpc_watch) g = GrpcDelivery(opt, timerd, stubs, admin, bearer);
      s = SseDelivery(opt, timerd, admin, bearer);
    }
    const std::string key = absl::StrCat("sse.round", r, ".");
    AddDelivery(fig, key + "sse.", s);
    AddDelivery(fig, key + "grpc.", g);
    if (!sse_kb) {
      sse_kb = s.kb_per_watcher_open;
      sse_kb_end = s.kb_per_watcher_window_end;
    }
    if (!grpc_kb && opt.grpc_watch) {
      grpc_kb = g.kb_per_watcher_open;
      grpc_kb_end = g.kb_per_watcher_window_end;
    }
    sse_rates.push_back(s.delivered_per_s);
    grpc_rates.push_back(g.delivered_per_s);
    ratios.push_back(g.delivered_per_s > 0 ? s.delivered_per_s / g.delivered_per_s : 0);
    std::printf(
        "  sse round %d: SSE %.0f events/s (%.3f of offered; timerd %.0f%%, client "
        "%.0f%%, "
        "%.2f us timerd CPU an event), %.1f KB a watcher open, %.1f at the window's end; "
        "gRPC %.0f events/s (%.3f; timerd %.0f%%, client %.0f%%, %.2f us), %.1f KB, "
        "%.1f KB; load %.2f\n",
        r, s.delivered_per_s, s.delivered_per_s / offered, s.server_cpu_pct,
        s.client_cpu_pct, s.server_cpu_us_per_event, s.kb_per_watcher_open,
        s.kb_per_watcher_window_end, g.delivered_per_s, g.delivered_per_s / offered,
        g.server_cpu_pct, g.client_cpu_pct, g.server_cpu_us_per_event,
        g.kb_per_watcher_open, g.kb_per_watcher_window_end, s.load1);
    std::fflush(stdout);
    const std::pair<const char*, const DeliveryResult*> kinds[] = {{"SSE", &s},
                                                                   {"gRPC", &g}};
    for (const auto& [name, d] : kinds) {
      if (d->opened < opt.watchers) {
        fig.Fail(absl::StrCat("sse round ", r, ": ", d->opened, " of ", opt.watchers, " ",
                              name, " watchers opened"));
      }
      if (!d->error.empty()) fig.Fail(absl::StrCat("sse round ", r, ": ", d->error));
      if (d->dropped > 0) {
        fig.Fail(absl::StrCat("sse round ", r, ": ", d->dropped, " ", name,
                              " watchers ended: ", d->first_drop));
      }
      if (d->gaps > 0) {
        fig.Fail(
            absl::StrCat("sse round ", r, ": ", d->gaps, " gaps in ", name, " streams"));
      }
    }
  }
  // The same first window with one watcher on a fresh timerd: what of the
  // growth is not the watchers'.
  const DeliveryResult one = OneWatcherBaseline(opt, dir + "/one-watcher");
  AddDelivery(fig, "sse.one_watcher.", one);
  std::printf(
      "  sse one-watcher baseline: %.0f events/s, timerd grew %.0f KB by the window's "
      "end (%.1f KB a watcher of %d)\n",
      one.delivered_per_s, one.kb_per_watcher_window_end,
      one.kb_per_watcher_window_end / opt.watchers, opt.watchers);
  std::fflush(stdout);
  if (!one.error.empty()) fig.Fail("sse one-watcher baseline: " + one.error);
  if (one.opened < 1) fig.Fail("sse one-watcher baseline: the watcher did not open");
  if (one.dropped > 0) fig.Fail("sse one-watcher baseline: ended: " + one.first_drop);
  if (one.gaps > 0) fig.Fail("sse one-watcher baseline: gaps in its stream");
  fig.Add("sse.median_sse_events_per_s", Median(sse_rates));
  fig.Add("sse.median_grpc_events_per_s", Median(grpc_rates));
  fig.Add("sse.median_sse/grpc", Median(ratios));
  fig.Add("sse.sse_KB_per_watcher_first_open", sse_kb.value_or(0));
  fig.Add("sse.sse_KB_per_watcher_first_window_end", sse_kb_end.value_or(0));
  // (RSS growth with the watchers - growth with one, same load) / watchers.
  fig.Add("sse.sse_KB_per_watcher_first_window_end_net",
          sse_kb_end.value_or(0) - one.kb_per_watcher_window_end / opt.watchers);
  fig.Add("sse.grpc_KB_per_watcher_first_open", grpc_kb.value_or(0));
  fig.Add("sse.grpc_KB_per_watcher_first_window_end", grpc_kb_end.value_or(0));
}

// ---- A run ----

Figures RunOnce(const Options& opt) {
  Figures fig;
  const std::string base =
      opt.tmp.empty() ? std::filesystem::temp_directory_path().string() : opt.tmp;
  std::string templ = base + "/timer-bench-http-XXXXXX";
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

  std::string bearers[2];
  const char* identities[2] = {"get-bench@example.org", kWatchIdentity};
  std::string error;
  for (int i = 0; i < 2; ++i) {
    bearers[i] = IssueBearer(opt, dir, identities[i], &error);
    if (bearers[i].empty()) {
      fig.Fail(error);
      return fig;
    }
  }

  Timerd timerd(opt.timerd, opt.plugin_dir);
  if (!timerd.Start(dir, kTimerdConfig, /*http=*/true, &error)) {
    fig.Fail(error);
    return fig;
  }
  std::printf("timerd pid %d: gRPC on %s, HTTP on 127.0.0.1:%d\n", timerd.pid(),
              timerd.address().c_str(), timerd.http_port());
  std::fflush(stdout);
  auto admin_channel = NewChannel(timerd.address());
  if (admin_channel == nullptr) {
    fig.Fail("the gRPC channel did not connect");
    return fig;
  }
  auto admin = v1::TimerService::NewStub(admin_channel);
  auto wants = [&](const std::string& c) {
    return std::find(opt.cases.begin(), opt.cases.end(), c) != opt.cases.end();
  };
  if (wants("get")) GetCase(opt, timerd, admin.get(), bearers[0], fig);
  if (wants("sse")) SseCase(opt, timerd, admin.get(), bearers[1], dir, fig);
  fig.Add("server_peak_rss_MB", ProcStatusKb(timerd.pid(), "VmHWM") / 1024.0);
  if (!timerd.Stop()) fig.notes.push_back("timerd needed SIGKILL");
  return fig;
}

double Find(const Figures& fig, const std::string& name) {
  for (const auto& row : fig.rows) {
    if (row.first == name) return row.second;
  }
  return -1;
}

}  // namespace

int Main(int argc, char** argv) {
  Options opt;
  std::string cases = "get,sse";
  CLI::App app{
      "timerd's HTTP listener against its gRPC server in one timerd: GetJob at 64 "
      "callers, 1,000 SSE watchers (events/s, memory)"};
  app.add_option("--cases", cases, "comma-separated: get, sse");
  app.add_option("--callers", opt.callers, "get: concurrent callers")
      ->check(CLI::PositiveNumber);
  app.add_option("--rounds", opt.rounds, "get: rounds (a gRPC and an HTTP window each)")
      ->check(CLI::PositiveNumber);
  app.add_option("--seconds", opt.seconds, "measured window")->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "seconds before each window");
  app.add_option("--get-jobs", opt.get_jobs, "get: idle jobs the callers read in turn")
      ->check(CLI::PositiveNumber);
  app.add_option("--http-client-threads", opt.http_client_threads,
                 "get: threads running the HTTP client's connections")
      ->check(CLI::PositiveNumber);
  app.add_option("--watchers", opt.watchers, "sse: watchers of each kind")
      ->check(CLI::PositiveNumber);
  app.add_option("--jobs", opt.jobs, "sse: 1 s jobs firing (2 events a fire)")
      ->check(CLI::PositiveNumber);
  app.add_flag("!--no-grpc-watch", opt.grpc_watch,
               "sse: SSE watchers only (no gRPC baseline; a diagnostic)");
  app.add_option("--sse-rounds", opt.sse_rounds,
                 "sse: rounds (an SSE and a gRPC window each)")
      ->check(CLI::PositiveNumber);
  app.add_option("--grpc-channels", opt.grpc_channels,
                 "sse: channels the gRPC watchers spread over")
      ->check(CLI::PositiveNumber);
  app.add_option("--timerd", opt.timerd, "the timerd binary")->capture_default_str();
  app.add_option("--plugin-dir", opt.plugin_dir, "directory holding noop.so")
      ->capture_default_str();
  app.add_option("--tmp", opt.tmp, "where the temp directory goes");
  CLI11_PARSE(app, argc, argv);
  opt.cases = absl::StrSplit(cases, ',', absl::SkipEmpty());
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  ::signal(SIGPIPE, SIG_IGN);
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);

  std::printf(
      "timer_bench_http: cases %s; get: %d callers, %d rounds of %d s (+%d s warmup), "
      "%d jobs, %d HTTP client thread(s); sse: %d watchers, %d jobs firing each second, "
      "%d rounds, gRPC over %d channels; load average %.2f\n",
      cases.c_str(), opt.callers, opt.rounds, opt.seconds, opt.warmup, opt.get_jobs,
      opt.http_client_threads, opt.watchers, opt.jobs, opt.sse_rounds, opt.grpc_channels,
      LoadAverage1());
  std::fflush(stdout);
  const Figures fig = RunOnce(opt);
  std::printf("\n%-56s %14s\n", "figure", "value");
  for (const auto& [name, value] : fig.rows) {
    std::printf("%-56s %14.3f\n", name.c_str(), value);
  }
  for (const std::string& n : fig.notes) std::printf("%s\n", n.c_str());

  std::printf("\nagainst the targets:\n");
  const double ratio = Find(fig, "get.median_http/grpc");
  if (ratio >= 0) {
    std::printf(
        "  GetJob at %d callers, HTTP/gRPC requests/s: %.3f (median of %d rounds; "
        "target >= %.1f): %s\n",
        opt.callers, ratio, opt.rounds, kTargetGetRatio,
        ratio >= kTargetGetRatio ? "met" : "MISSED");
  }
  const double rate = Find(fig, "sse.median_sse_events_per_s");
  if (rate >= 0) {
    std::printf(
        "  %d SSE watchers: %.0f events/s received (median; gRPC %.0f; target >= "
        "%.0f): %s\n",
        opt.watchers, rate, Find(fig, "sse.median_grpc_events_per_s"),
        kTargetEventsPerSec, rate >= kTargetEventsPerSec ? "met" : "MISSED");
    const double kb = std::max(Find(fig, "sse.sse_KB_per_watcher_first_open"),
                               Find(fig, "sse.sse_KB_per_watcher_first_window_end"));
    std::printf(
        "  server memory per SSE watcher: %.1f KB (the larger of open and window "
        "end; gRPC %.1f; target <= %.0f KB): %s\n",
        kb, Find(fig, "sse.grpc_KB_per_watcher_first_open"), kTargetKbPerWatcher,
        kb <= kTargetKbPerWatcher ? "met" : "MISSED");
    const double net = std::max(Find(fig, "sse.sse_KB_per_watcher_first_open"),
                                Find(fig, "sse.sse_KB_per_watcher_first_window_end_net"));
    std::printf(
        "  the same net of one watcher's growth under the same load: %.1f KB (the "
        "larger of open and window end net; target <= %.0f KB): %s\n",
        net, kTargetKbPerWatcher, net <= kTargetKbPerWatcher ? "met" : "MISSED");
  }
  return fig.failed ? 1 : 0;
}

}  // namespace timer::bench

int main(int argc, char** argv) { return timer::bench::Main(argc, argv); }
