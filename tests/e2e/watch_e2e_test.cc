// WatchJob / WatchJobs end to end, against the installed timerd: order and
// gaps, resuming with `since`, a stalled watcher, shutdown, the CLI's
// `timer job watch` across a server restart, and the bounds that keep
// watching cheap (events without bodies, streams per identity).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli_fixture.h"
#include "event_stream.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

using Type = v1::JobEvent::Type;

class WatchE2eTest : public CliTest {
 protected:
  std::shared_ptr<grpc::Channel> Channel(grpc::ChannelArguments args = {}) {
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
  }

  // The token, and a deadline that bounds even a stream.
  void Prepare(grpc::ClientContext* ctx, absl::Duration deadline = absl::Seconds(60)) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    ctx->AddMetadata("authorization", "Bearer " + token_);
  }

  // A noop job every second from the next whole second + `delay`.
  v1::Job CreateJob(int64_t stop_after_runs, absl::Duration delay = absl::Seconds(1),
                    const std::string& name = "watched",
                    absl::Duration offset = absl::ZeroDuration()) {
    auto stub = v1::TimerService::NewStub(Channel());
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name(name);
    const absl::Time start =
        absl::Ceil(absl::Now() - absl::UnixEpoch(), absl::Seconds(1)) +
        absl::UnixEpoch() + delay;
    job->mutable_schedule()->mutable_start()->set_seconds(absl::ToUnixSeconds(start));
    job->mutable_schedule()->mutable_start()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(offset)));
    job->mutable_schedule()->set_interval_seconds(1);
    if (stop_after_runs > 0)
      job->mutable_schedule()->set_stop_after_runs(stop_after_runs);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body("{}");
    v1::Job created;
    grpc::Status s = stub->CreateJob(&ctx, req, &created);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return created;
  }

  // Reads events until `done` holds for one (included); false on stream end.
  static bool ReadUntil(e2e::EventStream& stream, std::vector<v1::JobEvent>& out,
                        const std::function<bool(const v1::JobEvent&)>& done) {
    v1::JobEvent e;
    while (stream.Read(&e)) {
      out.push_back(e);
      if (done(e)) return true;
    }
    return false;
  }

  static std::function<bool(const v1::JobEvent&)> RunFinished(int64_t run) {
    return [run](const v1::JobEvent& e) {
      return e.type() == v1::JobEvent::RUN_FINISHED && e.result().run_number() == run;
    };
  }
};

TEST_F(WatchE2eTest, AJobsEventsArriveInOrderWithNoGaps) {
  auto daemon = StartTimerd();
  const v1::Job job = CreateJob(3);
  auto stub = v1::TimerService::NewStub(Channel());
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::WatchJobRequest req;
  req.set_job_id(job.job_id());
  auto stream = e2e::Events(stub->WatchJob(&ctx, req));

  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(ReadUntil(*stream, events, RunFinished(3)))
      << stream->Finish().error_message();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0].type(), v1::JobEvent::SNAPSHOT);
  EXPECT_EQ(events[0].job().job_id(), job.job_id());
  std::vector<Type> types;
  for (size_t i = 1; i < events.size(); ++i) {
    types.push_back(events[i].type());
    // One job, nothing else going on: every number, none skipped.
    EXPECT_EQ(events[i].sequence(), events[i - 1].sequence() + 1) << i;
  }
  EXPECT_EQ(types,
            (std::vector<Type>{v1::JobEvent::RUN_STARTED, v1::JobEvent::RUN_FINISHED,
                               v1::JobEvent::RUN_STARTED, v1::JobEvent::RUN_FINISHED,
                               v1::JobEvent::ENDED, v1::JobEvent::RUN_STARTED,
                               v1::JobEvent::RUN_FINISHED}));
  int64_t run = 0;
  for (const v1::JobEvent& e : events) {
    if (e.type() != v1::JobEvent::RUN_FINISHED) continue;
    ++run;
    EXPECT_EQ(e.result().run_number(), run);
    EXPECT_EQ(e.result().status(), v1::JobResult::SUCCEEDED);
    EXPECT_EQ(e.result().scheduled_time().seconds(),
              job.schedule().start().seconds() + (run - 1));
  }
  ctx.TryCancel();
}

TEST_F(WatchE2eTest, ResumingWithSinceReplaysExactlyTheMissedEvents) {
  auto daemon = StartTimerd();
  const v1::Job job = CreateJob(4);
  auto stub = v1::TimerService::NewStub(Channel());
  v1::WatchJobRequest req;
  req.set_job_id(job.job_id());

  // The reference: one watcher that sees everything.
  grpc::ClientContext full_ctx;
  Prepare(&full_ctx);
  auto full = e2e::Events(stub->WatchJob(&full_ctx, req));
  // Another that leaves after the snapshot and the first run's start.
  int64_t last_seen = 0;
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    auto early = e2e::Events(stub->WatchJob(&ctx, req));
    std::vector<v1::JobEvent> seen;
    ASSERT_TRUE(ReadUntil(*early, seen, [](const v1::JobEvent& e) {
      return e.type() == v1::JobEvent::RUN_STARTED;
    }));
    last_seen = seen.back().sequence();
    ctx.TryCancel();
    v1::JobEvent ignored;
    while (early->Read(&ignored)) {
    }
    early->Finish();
  }
  std::vector<v1::JobEvent> all;
  ASSERT_TRUE(ReadUntil(*full, all, RunFinished(4)));
  full_ctx.TryCancel();

  std::vector<int64_t> missed;
  for (const v1::JobEvent& e : all) {
    if (e.type() != v1::JobEvent::SNAPSHOT && e.sequence() > last_seen) {
      missed.push_back(e.sequence());
    }
  }
  ASSERT_FALSE(missed.empty());
  grpc::ClientContext ctx;
  Prepare(&ctx);
  req.set_since(last_seen);
  auto resumed = e2e::Events(stub->WatchJob(&ctx, req));
  std::vector<int64_t> replayed;
  v1::JobEvent e;
  while (replayed.size() < missed.size() && resumed->Read(&e)) {
    EXPECT_NE(e.type(), v1::JobEvent::SNAPSHOT);
    EXPECT_NE(e.type(), v1::JobEvent::RESET);
    replayed.push_back(e.sequence());
  }
  EXPECT_EQ(replayed, missed);
  ctx.TryCancel();
}

TEST_F(WatchE2eTest, AStalledWatcherIsDroppedWithAResumePointAndRunsStayOnTime) {
  const std::string config = tmp_.path() + "/timerd.toml";
  std::ofstream(config) << "watch_buffer_events = 64\n";
  auto daemon = StartTimerd({"--config", config});
  // 100 jobs a second, spread evenly over it: ~200 events a second.
  for (int i = 0; i < 100; ++i) {
    CreateJob(0, absl::Seconds(2), absl::StrCat("busy-", i), absl::Milliseconds(10) * i);
  }

  // The stalled one never reads, and lets little wait in transit for it.
  grpc::ChannelArguments small;
  small.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  small.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  auto stalled_stub = v1::TimerService::NewStub(Channel(small));
  grpc::ClientContext stalled_ctx;
  Prepare(&stalled_ctx);
  auto stalled =
      e2e::Events(stalled_stub->WatchJobs(&stalled_ctx, v1::WatchJobsRequest()));

  auto stub = v1::TimerService::NewStub(Channel());
  grpc::ClientContext ctx;
  Prepare(&ctx);
  auto stream = e2e::Events(stub->WatchJobs(&ctx, v1::WatchJobsRequest()));
  // By 1,200 events the stalled stream's 64 KB window and its 64-event
  // buffer are long full.
  std::vector<v1::JobEvent> events;
  size_t count = 0;
  absl::Duration worst = absl::ZeroDuration();
  ASSERT_TRUE(ReadUntil(*stream, events, [&](const v1::JobEvent& e) {
    if (e.type() == v1::JobEvent::RUN_STARTED) {
      const absl::Duration late = absl::Seconds(e.result().start_time().seconds() -
                                                e.result().scheduled_time().seconds()) +
                                  absl::Nanoseconds(e.result().start_time().nanos() -
                                                    e.result().scheduled_time().nanos());
      worst = std::max(worst, late);
    }
    return ++count >= 1200;
  }));
  // The watcher that kept up was never dropped, and no run waited for the
  // one that did not (a generous bound: runs start within milliseconds).
  EXPECT_LT(worst, absl::Seconds(1));

  v1::JobEvent e;
  size_t drained = 0;
  while (stalled->Read(&e)) ++drained;
  const grpc::Status s = stalled->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("since="), std::string::npos) << s.error_message();
  EXPECT_LT(drained, count);
  // What waited for it came many events to a message, not one by one.
  EXPECT_LT(stalled->messages(), static_cast<int>(drained) / 2)
      << drained << " events in " << stalled->messages() << " messages";
  ctx.TryCancel();
}

TEST_F(WatchE2eTest, ShutdownEndsStreamsWithUnavailableAndAResumePoint) {
  auto daemon = StartTimerd();
  auto stub = v1::TimerService::NewStub(Channel());
  grpc::ClientContext ctx;
  Prepare(&ctx);
  auto stream = e2e::Events(stub->WatchJobs(&ctx, v1::WatchJobsRequest()));
  // Open once the created job's first event arrives: CREATED, or SNAPSHOT
  // when the job was committed before timerd registered the stream (the
  // call returns to the client before the server has seen it).
  CreateJob(0, absl::Hours(1));
  v1::JobEvent e;
  ASSERT_TRUE(stream->Read(&e));
  EXPECT_TRUE(e.type() == v1::JobEvent::CREATED || e.type() == v1::JobEvent::SNAPSHOT)
      << e.type();

  // The client keeps reading, as a watcher does, while timerd stops.
  absl::Time ended;
  grpc::Status s;
  std::thread reader([&] {
    v1::JobEvent more;
    while (stream->Read(&more)) {
    }
    ended = absl::Now();
    s = stream->Finish();
  });
  const absl::Time stopping = absl::Now();
  EXPECT_EQ(daemon->Stop(SIGTERM), 0) << daemon->log();
  reader.join();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_NE(s.error_message().find(absl::StrCat("since=", e.sequence())),
            std::string::npos)
      << s.error_message();
  // Streams end at once rather than holding shutdown for its grace period.
  EXPECT_LT(ended - stopping, absl::Seconds(3));
}

TEST_F(WatchE2eTest, CliWatchPrintsEventsAndCarriesOnAcrossARestart) {
  auto daemon = StartTimerd();
  const std::string address = address_;
  const v1::Job job = CreateJob(0);
  Daemon watch(
      {timer_, "--server", address, "--format", "json", "job", "watch", job.job_id()},
      {"TIMER_TOKEN=" + token_}, /*with_stdout=*/true);
  ASSERT_TRUE(watch.WaitForLog(R"("type":"SNAPSHOT")", absl::Seconds(20))) << watch.log();
  ASSERT_TRUE(watch.WaitForLog(R"("type":"RUN_FINISHED")", absl::Seconds(20)))
      << watch.log();

  EXPECT_EQ(daemon->Stop(SIGTERM), 0);
  ASSERT_TRUE(watch.WaitForLog("reconnecting with --since", absl::Seconds(20)))
      << watch.log();
  daemon = std::make_unique<Daemon>(
      std::vector<std::string>{timerd_, "--listen", address, "--data-dir", data_dir_});
  ASSERT_TRUE(daemon->WaitForLog("listening on ", absl::Seconds(20))) << daemon->log();
  // The new timerd does not know the old numbers: RESET, fresh snapshot, and
  // the job's runs go on.
  ASSERT_TRUE(watch.WaitForLog(R"("type":"RESET")", absl::Seconds(30))) << watch.log();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  bool ran_after = false;
  while (!ran_after && absl::Now() < deadline) {
    const std::string log = watch.log();
    const size_t reset = log.find(R"("type":"RESET")");
    ran_after = log.find(R"("type":"RUN_FINISHED")", reset) != std::string::npos;
    if (!ran_after)
      absl::SleepFor(absl::Milliseconds(50));  // Polling the client's output.
  }
  EXPECT_TRUE(ran_after) << watch.log();
}

TEST_F(WatchE2eTest, CliWatchRefusesBadInputAndStopsAfterLimit) {
  auto daemon = StartTimerd();
  const v1::Job job = CreateJob(0, absl::Hours(1));
  RunResult neither = Cli({"job", "watch"});
  EXPECT_EQ(neither.exit_code, 2);
  EXPECT_NE(neither.err.find("JOB_ID or --all"), std::string::npos) << neither.err;
  EXPECT_EQ(Cli({"job", "watch", "--all", job.job_id()}).exit_code, 2);
  RunResult status = Cli({"job", "watch", "--all", "--status", "sleeping"});
  EXPECT_EQ(status.exit_code, 2);
  EXPECT_NE(status.err.find("--status"), std::string::npos) << status.err;
  RunResult missing = Cli({"job", "watch", "00000000-0000-4000-8000-000000000000"});
  EXPECT_EQ(missing.exit_code, 3) << missing.err;

  RunResult one = Cli({"--format", "json", "job", "watch", "--all", "--limit", "1"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  const json line = json::parse(one.out, nullptr, false);
  ASSERT_FALSE(line.is_discarded()) << one.out;
  EXPECT_EQ(line["type"], "SNAPSHOT");
  EXPECT_EQ(line["job"]["job_id"], job.job_id());
  RunResult human = Cli({"job", "watch", job.job_id(), "--limit", "1"});
  EXPECT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("SNAPSHOT"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("(watched)"), std::string::npos) << human.out;
}

// timerd's resident memory in KB, from /proc; -1 if unreadable.
int64_t RssKb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// Issue 18, H1: ten jobs with 1 MB bodies firing every second grew timerd by
// ~45 MB/s, every event holding a copy of the body. Events carry no body
// now: 40 more runs (80 events) leave the server's size alone.
TEST_F(WatchE2eTest, JobsWithLargeBodiesFiringDoNotGrowTheServer) {
  auto daemon = StartTimerd();
  auto stub = v1::TimerService::NewStub(Channel());
  grpc::ClientContext watch_ctx;
  Prepare(&watch_ctx);
  auto stream = e2e::Events(stub->WatchJobs(&watch_ctx, v1::WatchJobsRequest()));
  const std::string body =
      absl::StrCat(R"({"fail_message":")", std::string(1000000, 'x'), R"("})");
  const absl::Time start = absl::Ceil(absl::Now() - absl::UnixEpoch(), absl::Seconds(1)) +
                           absl::UnixEpoch() + absl::Seconds(1);
  for (int i = 0; i < 10; ++i) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name(absl::StrCat("big-", i));
    job->mutable_schedule()->mutable_start()->set_seconds(absl::ToUnixSeconds(start));
    job->mutable_schedule()->set_interval_seconds(1);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body(body);
    v1::Job created;
    const grpc::Status s = stub->CreateJob(&ctx, req, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  // Counts RUN_FINISHED events as they come; every event is small.
  int finished = 0;
  auto await_runs = [&](int runs) {
    v1::JobEvent e;
    while (finished < runs && stream->Read(&e)) {
      EXPECT_TRUE(e.job().action().body().empty()) << v1::JobEvent::Type_Name(e.type());
      EXPECT_LT(e.ByteSizeLong(), 4096u) << v1::JobEvent::Type_Name(e.type());
      if (e.type() == v1::JobEvent::RUN_FINISHED) ++finished;
    }
    return finished >= runs;
  };
  ASSERT_TRUE(await_runs(20)) << stream->Finish().error_message();  // Warmed up.
  const int64_t before = RssKb(daemon->pid());
  ASSERT_TRUE(await_runs(60)) << stream->Finish().error_message();
  const int64_t after = RssKb(daemon->pid());
  ASSERT_GT(before, 0);
  // Before the fix: ~2 MB an event, 80 events, ~160 MB more.
  EXPECT_LT(after - before, 48 * 1024) << "RSS " << before << " KB -> " << after << " KB";
  watch_ctx.TryCancel();
}

// Issue 18, H7: one identity could open any number of streams. The one over
// max_watch_streams_per_identity ends RESOURCE_EXHAUSTED naming it, and the
// CLI reports that rather than reconnecting forever.
TEST_F(WatchE2eTest, AStreamOverTheIdentitysBoundIsRefusedAndTheCliSaysWhy) {
  const std::string config = tmp_.path() + "/timerd.toml";
  std::ofstream(config) << "max_watch_streams_per_identity = 2\n";
  auto daemon = StartTimerd({"--config", config});
  CreateJob(0, absl::Hours(1));
  auto stub = v1::TimerService::NewStub(Channel());
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<e2e::EventStream>> streams;
  for (int i = 0; i < 2; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    Prepare(contexts.back().get());
    streams.push_back(
        e2e::Events(stub->WatchJobs(contexts.back().get(), v1::WatchJobsRequest())));
    v1::JobEvent e;
    ASSERT_TRUE(streams.back()->Read(&e));  // Open on the server.
  }
  grpc::ClientContext ctx;
  Prepare(&ctx);
  auto third = e2e::Events(stub->WatchJobs(&ctx, v1::WatchJobsRequest()));
  v1::JobEvent e;
  EXPECT_FALSE(third->Read(&e));
  const grpc::Status s = third->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("max_watch_streams_per_identity (2)"),
            std::string::npos)
      << s.error_message();

  RunResult cli = timer::testing::Run(
      {timer_, "--server", address_, "job", "watch", "--all"},
      {"TIMER_TOKEN=" + token_, "XDG_CONFIG_HOME=" + tmp_.path() + "/config"},
      absl::Seconds(15));
  EXPECT_GT(cli.exit_code, 0) << cli.err;  // Not killed by the timeout: it gave up.
  EXPECT_NE(cli.err.find("max_watch_streams_per_identity (2)"), std::string::npos)
      << cli.err;
  for (auto& c : contexts) c->TryCancel();
}

}  // namespace
}  // namespace timer::testing
