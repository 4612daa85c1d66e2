// Providers that misbehave, in a real timerd: one that hangs in start, one
// that returns garbage, one that aborts the process. What the in-process
// plugin model contains and what it cannot:
//   - a hang holds at most half of the worker threads: other providers' jobs
//     keep running on time, and the hung job's overlapping slots are SKIPPED;
//   - garbage becomes a FAILED run with the reason, and oversized details are
//     cut, while timerd keeps serving;
//   - an abort() takes timerd down with it (a plugin runs in its process);
//     after a restart the run is UNKNOWN and never retried, and other jobs go
//     on. Supervise timerd (systemd Restart=always, see DEPLOYMENT.md) and
//     remove or fix a provider that aborts.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "cli_fixture.h"
#include "timer/v1/timer.grpc.pb.h"

#ifndef TIMER_FAULTS_DIR
#error "TIMER_FAULTS_DIR must name the directory of the fault_* providers"
#endif

namespace timer::testing {
namespace {

class PluginFaultsE2eTest : public CliTest {
 protected:
  // timerd with a plugin directory of the fault providers, each under its
  // provider's name, and the installed noop; the config names them all.
  std::unique_ptr<Daemon> Start() {
    namespace fs = std::filesystem;
    const std::string dir = tmp_.path() + "/plugins";
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms(0755));
    fs::copy_file(fs::path(timerd_).parent_path().parent_path() / "lib" / "timer" /
                      "plugins" / "noop.so",
                  dir + "/noop.so", fs::copy_options::overwrite_existing);
    for (const char* name : {"hang", "garbage", "abort"}) {
      fs::copy_file(std::string(TIMER_FAULTS_DIR) + "/fault_" + name + ".so",
                    dir + "/" + name + ".so", fs::copy_options::overwrite_existing);
    }
    const std::string config = tmp_.path() + "/faults.toml";
    std::ofstream(config, std::ios::trunc)
        << "load_plugins = [\"noop\", \"hang\", \"garbage\", \"abort\"]\n";
    return StartTimerd({"--plugin-dir", dir, "--config", config});
  }
  void Prepare(grpc::ClientContext* ctx) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    ctx->AddMetadata("authorization", "Bearer " + token_);
  }
  std::unique_ptr<v1::TimerService::Stub> Stub() {
    return v1::TimerService::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  }
  // A job every second from the next whole second.
  std::string Create(v1::TimerService::Stub& stub, const std::string& provider) {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name(provider);
    job->mutable_schedule()->mutable_start()->set_seconds(
        absl::ToUnixSeconds(absl::Now()) + 1);
    job->mutable_schedule()->set_interval_seconds(1);
    job->mutable_action()->set_provider(provider);
    job->mutable_action()->set_body("{}");
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::Job out;
    const grpc::Status s = stub.CreateJob(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << provider << ": " << s.error_message();
    return out.job_id();
  }
  std::vector<v1::JobResult> Results(v1::TimerService::Stub& stub,
                                     const std::string& id) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ListJobResultsRequest req;
    req.set_job_id(id);
    req.set_page_size(1000);
    v1::ListJobResultsResponse out;
    EXPECT_TRUE(stub.ListJobResults(&ctx, req, &out).ok());
    return {out.results().begin(), out.results().end()};
  }
  // Waits (polling the server's state) until `id` has `n` finished results.
  std::vector<v1::JobResult> WaitForFinished(v1::TimerService::Stub& stub,
                                             const std::string& id, size_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    std::vector<v1::JobResult> done;
    while (absl::Now() < deadline) {
      done.clear();
      for (v1::JobResult& r : Results(stub, id)) {
        if (r.status() != v1::JobResult::PENDING && r.status() != v1::JobResult::ACTIVE) {
          done.push_back(std::move(r));
        }
      }
      if (done.size() >= n) return done;
      absl::SleepFor(absl::Milliseconds(100));  // Polling the server's state.
    }
    ADD_FAILURE() << "job " << id << " has " << done.size()
                  << " finished results, wanted " << n;
    return done;
  }
};

TEST_F(PluginFaultsE2eTest, AHangingProviderDoesNotStopOtherJobs) {
  auto daemon = Start();
  auto stub = Stub();
  // Four jobs whose starts block 4 s each: as many as there are workers.
  std::vector<std::string> hung;
  for (int i = 0; i < 4; ++i) hung.push_back(Create(*stub, "hang"));
  const std::string healthy = Create(*stub, "noop");  // The real noop provider.
  // Five seconds of the healthy job, all on time, while the hung one blocks.
  std::vector<v1::JobResult> runs = WaitForFinished(*stub, healthy, 5);
  for (const v1::JobResult& r : runs) {
    EXPECT_EQ(r.status(), v1::JobResult::SUCCEEDED);
    const absl::Duration late =
        absl::Seconds(r.start_time().seconds() - r.scheduled_time().seconds()) +
        absl::Nanoseconds(r.start_time().nanos() - r.scheduled_time().nanos());
    EXPECT_LT(late, absl::Milliseconds(500)) << "run " << r.run_number();
  }
  // The hung job's slots while its run is still in start() are skipped.
  bool skipped = false;
  for (const v1::JobResult& r : Results(*stub, hung[0])) {
    skipped = skipped || r.status() == v1::JobResult::SKIPPED;
  }
  EXPECT_TRUE(skipped);
}

TEST_F(PluginFaultsE2eTest, GarbageFromAProviderFailsTheRunAndIsBounded) {
  auto daemon = Start();
  auto stub = Stub();
  const std::string id = Create(*stub, "garbage");
  std::vector<v1::JobResult> runs = WaitForFinished(*stub, id, 2);
  for (const v1::JobResult& r : runs) {
    EXPECT_EQ(r.status(), v1::JobResult::FAILED);
    EXPECT_NE(r.error().find("invalid action state 77"), std::string::npos) << r.error();
    EXPECT_LT(r.details().size(), 64u << 10);
  }
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::GetJobRequest get;
  get.set_job_id(id);
  v1::Job job;
  ASSERT_TRUE(stub->GetJob(&ctx, get, &job).ok());
  EXPECT_GE(job.n_errors(), 2);
}

TEST_F(PluginFaultsE2eTest, AnAbortingProviderTakesTimerdDownButNoRunRepeats) {
  auto daemon = Start();
  auto stub = Stub();
  const std::string healthy = Create(*stub, "noop");
  const std::string aborting = Create(*stub, "abort");
  // The first slot's abort() ends the process.
  EXPECT_EQ(daemon->WaitExit(absl::Seconds(20)), -1) << daemon->log();

  // After a restart (as a supervisor would, here with the faulty plugin
  // removed), the aborted run is UNKNOWN, not retried, and the rest goes on.
  daemon = std::make_unique<Daemon>(
      std::vector<std::string>{timerd_, "--listen", address_, "--data-dir", data_dir_});
  ASSERT_TRUE(daemon->WaitForLog("listening on ", absl::Seconds(20))) << daemon->log();
  stub = Stub();  // A fresh channel: the old one backs off after the crash.
  // Reconciling the open run is written just after timerd starts listening.
  std::vector<v1::JobResult> aborted;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(20);
       absl::Now() < deadline;) {
    aborted = Results(*stub, aborting);
    if (!aborted.empty() && aborted.back().status() != v1::JobResult::PENDING) break;
    absl::SleepFor(absl::Milliseconds(100));  // Polling the server's state.
  }
  ASSERT_FALSE(aborted.empty());
  // Newest first: the run that was in start() when the process died is the
  // oldest; later slots fail because the provider is no longer loaded.
  EXPECT_EQ(aborted.back().run_number(), 1);
  EXPECT_EQ(aborted.back().status(), v1::JobResult::UNKNOWN);
  for (const v1::JobResult& r : aborted) {
    EXPECT_NE(r.status(), v1::JobResult::SUCCEEDED) << "run " << r.run_number();
  }
  const size_t before = WaitForFinished(*stub, healthy, 1).size();
  WaitForFinished(*stub, healthy, before + 2);
}

}  // namespace
}  // namespace timer::testing
