// Watch streams across two installed timerd replicas on one PostgreSQL
// (tests/support/pg_cluster.h): a watcher on replica A sees the runs B
// starts (B's noop record_file is the proof from outside the store), in
// order, with numbers that mean the same on B, so a watcher that moves to B
// with `since` gets exactly the events it missed; a pause and a resume made
// through B take effect on A, the replica that fires the job, at once (not
// at A's periodic rescan). Prints the delivery latency of B's events to A's
// watcher.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "cli_fixture.h"
#include "event_stream.h"
#include "pg_cluster.h"
#include "process.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

constexpr int kJobs = 16;

struct Replica {
  std::unique_ptr<Daemon> daemon;
  std::string address;
  std::string record;  // The noop provider's record_file.
  std::unique_ptr<v1::TimerService::Stub> stub;
};

// A start recorded by a replica's noop provider.
struct Start {
  std::string job_id;
  int64_t run_number = 0;
  int64_t millis = 0;
};

std::vector<Start> ReadStarts(const std::string& path) {
  std::vector<Start> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() != 2) continue;
    const size_t slash = f[0].rfind('/');
    Start s;
    if (slash == std::string::npos ||
        !absl::SimpleAtoi(f[0].substr(slash + 1), &s.run_number) ||
        !absl::SimpleAtoi(f[1], &s.millis)) {
      continue;
    }
    s.job_id = f[0].substr(0, slash);
    out.push_back(s);
  }
  return out;
}

int64_t NowMillis() { return absl::ToUnixMillis(absl::Now()); }

// An event as a watcher got it, and when.
struct Seen {
  v1::JobEvent event;
  absl::Time at;
};

// Reads a stream on its own thread into a list, until cancelled.
class Watch {
 public:
  Watch(v1::TimerService::Stub* stub, const std::string& token, int64_t since) {
    ctx_.AddMetadata("authorization", "Bearer " + token);
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::WatchJobsRequest req;
    req.set_since(since);
    stream_ = e2e::Events(stub->WatchJobs(&ctx_, req));
    reader_ = std::thread([this] {
      v1::JobEvent e;
      while (stream_->Read(&e)) {
        absl::MutexLock lock(&mu_);
        seen_.push_back({e, absl::Now()});
      }
      absl::MutexLock lock(&mu_);
      ended_ = true;
    });
  }
  ~Watch() { Cancel(); }
  void Cancel() {
    ctx_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }
  std::vector<Seen> seen() const {
    absl::MutexLock lock(&mu_);
    return seen_;
  }
  // Waits until `done(seen)` holds; false after `timeout`.
  template <typename F>
  bool WaitUntil(F done, absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_ || done(seen_); };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return done(seen_);
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<e2e::EventStream> stream_;
  std::thread reader_;
  mutable absl::Mutex mu_;
  std::vector<Seen> seen_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

bool IsLive(const v1::JobEvent& e) {
  return e.type() != v1::JobEvent::SNAPSHOT && e.type() != v1::JobEvent::RESET;
}

// What must be the same about one event wherever it is watched.
std::string Key(const v1::JobEvent& e) {
  return absl::StrCat(e.sequence(), " ", v1::JobEvent::Type_Name(e.type()), " ",
                      e.job().job_id(), " ", e.result().run_number());
}

class ReplicaWatchE2eTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    absl::StatusOr<PgCluster*> pg = PgCluster::Get();
    ASSERT_TRUE(pg.ok()) << pg.status();  // No cluster: fail, never skip.
    absl::StatusOr<std::string> uri = (*pg)->NewDatabase();
    ASSERT_TRUE(uri.ok()) << uri.status();
    uri_ = *uri;
    token_ = IssueToken(kIdentity, {"--store", uri_});
  }

  Replica StartReplica(const std::string& name) {
    Replica r;
    const std::string dir = tmp_.path() + "/" + name;
    std::filesystem::create_directories(dir);
    r.record = dir + "/record";
    const std::string config = dir + "/timerd.toml";
    std::ofstream(config) << "[plugins.noop]\nrecord_file = \"" << r.record << "\"\n";
    r.daemon = std::make_unique<Daemon>(
        std::vector<std::string>{timerd_, "--listen", "127.0.0.1:0", "--data-dir",
                                 dir + "/data", "--config", config, "--store", uri_});
    EXPECT_TRUE(r.daemon->WaitForLog("listening on ", absl::Seconds(20), &r.address))
        << r.daemon->log();
    r.stub = v1::TimerService::NewStub(
        grpc::CreateChannel(r.address, grpc::InsecureChannelCredentials()));
    return r;
  }

  void Context(grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx->AddMetadata("authorization", "Bearer " + token_);
  }

  // SIGTERM to both at once (each shutdown may take its grace period).
  static void StopBoth(Replica& a, Replica& b) {
    int a_exit = -1;
    std::thread stop_a([&] { a_exit = a.daemon->Stop(SIGTERM); });
    EXPECT_EQ(b.daemon->Stop(SIGTERM), 0) << b.daemon->log();
    stop_a.join();
    EXPECT_EQ(a_exit, 0) << a.daemon->log();
  }

  std::string uri_;
};

TEST_F(ReplicaWatchE2eTest, WatchersSeeEveryReplicasRunsAndResumeOnAnotherReplica) {
  Replica a = StartReplica("a");
  Replica b = StartReplica("b");
  ASSERT_NE(a.stub, nullptr);
  ASSERT_NE(b.stub, nullptr);
  Watch reference(a.stub.get(), token_, 0);  // On A, from the start to the end.

  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name(absl::StrCat("r-", i));
    job->mutable_schedule()->set_interval_seconds(1);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body("{}");
    grpc::ClientContext ctx;
    Context(&ctx);
    v1::Job out;
    Replica& via = i % 2 == 0 ? a : b;
    grpc::Status s = via.stub->CreateJob(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ids.push_back(out.job_id());
  }

  // Both replicas fire (once they divided the shards between them).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while ((ReadStarts(a.record).size() < 5 || ReadStarts(b.record).size() < 5) &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));  // Polling files another process writes.
  }
  const std::vector<Start> b_starts = ReadStarts(b.record);
  ASSERT_GE(b_starts.size(), 5u) << b.daemon->log();
  ASSERT_GE(ReadStarts(a.record).size(), 5u) << a.daemon->log();

  // Every run B started reaches A's watcher as RUN_STARTED.
  std::set<std::pair<std::string, int64_t>> wanted;
  for (const Start& s : b_starts) wanted.insert({s.job_id, s.run_number});
  auto covers = [&](const std::vector<Seen>& seen) {
    std::set<std::pair<std::string, int64_t>> got;
    for (const Seen& s : seen) {
      if (s.event.type() == v1::JobEvent::RUN_STARTED) {
        got.insert({s.event.job().job_id(), s.event.result().run_number()});
      }
    }
    return std::includes(got.begin(), got.end(), wanted.begin(), wanted.end());
  };
  ASSERT_TRUE(reference.WaitUntil(covers)) << "A's watcher misses runs B started";

  // In order: numbers strictly increasing; each job's runs in order.
  {
    std::vector<Seen> seen = reference.seen();
    int64_t last = 0;
    std::map<std::string, int64_t> last_run;
    for (const Seen& s : seen) {
      if (!IsLive(s.event)) continue;
      EXPECT_GT(s.event.sequence(), last) << Key(s.event);
      last = s.event.sequence();
      if (s.event.type() == v1::JobEvent::RUN_STARTED) {
        int64_t& prev = last_run[s.event.job().job_id()];
        EXPECT_GT(s.event.result().run_number(), prev) << Key(s.event);
        prev = s.event.result().run_number();
      }
    }
    // How long B's run events took to reach A's watcher (one host, one
    // clock: event_time is when B published).
    std::set<std::string> b_jobs;
    for (const Start& s : b_starts) b_jobs.insert(s.job_id);
    std::vector<double> ms;
    for (const Seen& s : seen) {
      if (s.event.type() != v1::JobEvent::RUN_STARTED ||
          !b_jobs.contains(s.event.job().job_id())) {
        continue;
      }
      const absl::Time published = absl::FromUnixSeconds(s.event.event_time().seconds()) +
                                   absl::Nanoseconds(s.event.event_time().nanos());
      ms.push_back(absl::ToDoubleMilliseconds(s.at - published));
    }
    ASSERT_FALSE(ms.empty());
    std::sort(ms.begin(), ms.end());
    std::cout << "B's RUN_STARTED events to A's watcher: n=" << ms.size()
              << " p50=" << ms[ms.size() / 2]
              << " ms p99=" << ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]
              << " ms max=" << ms.back() << " ms\n";
  }

  // A watcher on A leaves at some number; later it resumes on B with it.
  int64_t since = 0;
  {
    Watch first(a.stub.get(), token_, 0);
    ASSERT_TRUE(first.WaitUntil([](const std::vector<Seen>& seen) {
      return std::count_if(seen.begin(), seen.end(),
                           [](const Seen& s) { return IsLive(s.event); }) >= 3;
    }));
    first.Cancel();
    for (const Seen& s : first.seen()) since = std::max(since, s.event.sequence());
  }
  absl::SleepFor(absl::Milliseconds(1500));  // Runs go on meanwhile.
  const std::vector<Seen> upto = reference.seen();
  const int64_t target = upto.back().event.sequence();
  ASSERT_GT(target, since + 3);  // It did miss some.
  Watch resumed(b.stub.get(), token_, since);
  ASSERT_TRUE(resumed.WaitUntil([&](const std::vector<Seen>& seen) {
    return !seen.empty() && seen.back().event.sequence() >= target;
  })) << b.daemon->log();
  std::vector<std::string> expected, got;
  for (const Seen& s : upto) {
    if (IsLive(s.event) && s.event.sequence() > since) expected.push_back(Key(s.event));
  }
  for (const Seen& s : resumed.seen()) {
    if (s.event.sequence() <= target) got.push_back(Key(s.event));
  }
  ASSERT_FALSE(got.empty());
  EXPECT_NE(resumed.seen().front().event.type(), v1::JobEvent::RESET);
  EXPECT_EQ(got, expected);
  resumed.Cancel();
  reference.Cancel();
  StopBoth(a, b);
}

TEST_F(ReplicaWatchE2eTest, APauseAndAResumeThroughOneReplicaTakeEffectOnTheOtherAtOnce) {
  Replica a = StartReplica("a");
  Replica b = StartReplica("b");
  ASSERT_NE(a.stub, nullptr);
  ASSERT_NE(b.stub, nullptr);
  std::vector<std::string> ids;
  for (int i = 0; i < kJobs; ++i) {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name(absl::StrCat("p-", i));
    job->mutable_schedule()->set_interval_seconds(1);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body("{}");
    grpc::ClientContext ctx;
    Context(&ctx);
    v1::Job out;
    grpc::Status s = a.stub->CreateJob(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ids.push_back(out.job_id());
  }
  // A job that A fires, and B does not (the shards settled).
  std::string job_id;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (job_id.empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));  // Polling files another process writes.
    if (ReadStarts(b.record).size() < 3) continue;
    const int64_t recent = NowMillis() - 1500;
    std::set<std::string> on_b;
    for (const Start& s : ReadStarts(b.record)) on_b.insert(s.job_id);
    std::map<std::string, int> on_a;
    for (const Start& s : ReadStarts(a.record)) {
      if (s.millis >= recent) ++on_a[s.job_id];
    }
    for (const auto& [id, n] : on_a) {
      if (!on_b.contains(id)) job_id = id;
    }
  }
  ASSERT_FALSE(job_id.empty()) << a.daemon->log() << b.daemon->log();
  auto starts_after = [&](int64_t millis) {
    int n = 0;
    for (const Start& s : ReadStarts(a.record))
      n += s.job_id == job_id && s.millis > millis;
    return n;
  };

  // Paused through B: A starts it no more. Runs A recorded ahead of their
  // slot (lookahead, 500 ms) before it heard are halted too.
  {
    v1::PauseJobRequest req;
    req.set_job_id(job_id);
    grpc::ClientContext ctx;
    Context(&ctx);
    v1::Job out;
    ASSERT_TRUE(b.stub->PauseJob(&ctx, req, &out).ok());
  }
  const int64_t paused = NowMillis();
  absl::SleepFor(absl::Milliseconds(2500));  // Slots pass that would have fired.
  EXPECT_EQ(starts_after(paused + 300), 0) << "A fired a job paused through B";

  // Resumed through B: A fires it at its next slot (1 s), not at its
  // rescan (every 5 lease_ttl_ms: 15 s).
  {
    v1::ResumeJobRequest req;
    req.set_job_id(job_id);
    grpc::ClientContext ctx;
    Context(&ctx);
    v1::Job out;
    ASSERT_TRUE(b.stub->ResumeJob(&ctx, req, &out).ok());
  }
  const int64_t resumed = NowMillis();
  const absl::Time bound = absl::Now() + absl::Seconds(4);
  while (starts_after(resumed) == 0 && absl::Now() < bound) {
    absl::SleepFor(absl::Milliseconds(50));  // Polling files another process writes.
  }
  int64_t first = 0;
  for (const Start& s : ReadStarts(a.record)) {
    if (s.job_id == job_id && s.millis > resumed) {
      first = s.millis;
      break;
    }
  }
  ASSERT_GT(first, 0) << "A did not fire a job resumed through B within 4 s";
  std::cout << "resumed through B, first fire on A after " << first - resumed << " ms\n";
  StopBoth(a, b);
}

}  // namespace
}  // namespace timer::testing
