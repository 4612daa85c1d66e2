// End-to-end tests: the installed timerd and timer binaries, driven the way a
// user drives them. The install prefix comes from TIMER_INSTALL_PREFIX (ctest
// installs the build there first). Every server listens on a free loopback
// port and a temporary data directory, and is stopped by the test.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli_fixture.h"
#include "grpc/health/v1/health_probe.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection_probe.grpc.pb.h"
#include "process.h"
#include "timer/v1/session.grpc.pb.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

using nlohmann::json;

class E2eTest : public CliTest {
 protected:
  json Submit(const std::string& name) {
    return CliJson({"job", "submit", "--name", name, "--interval", "1h", "--start",
                    "2030-01-01T00:00:00Z", "--action-provider", "noop", "--action-body",
                    R"({"delay_ms": 5})"});
  }

  // Starts timerd with the noop provider recording every start in a file.
  std::unique_ptr<Daemon> StartTimerdWithRecord() {
    config_ = tmp_.path() + "/timerd.toml";
    record_ = tmp_.path() + "/noop-runs.log";
    std::ofstream(config_) << "[plugins.noop]\nrecord_file = \"" << record_ << "\"\n";
    return StartTimerd({"--config", config_});
  }

  // request_ids the noop provider started, in order.
  std::vector<std::string> RecordedStarts() {
    std::vector<std::string> ids;
    std::ifstream in(record_);
    std::string line;
    while (std::getline(in, line)) ids.push_back(line.substr(0, line.find(' ')));
    return ids;
  }

  static std::vector<std::string> Ids(const json& list) {
    std::vector<std::string> ids;
    for (const json& job : list["jobs"]) ids.push_back(job["job_id"]);
    return ids;
  }

  std::shared_ptr<grpc::Channel> Channel() {
    return grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }

  // A deadline and the fixture's token.
  void Deadline(grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx->AddMetadata("authorization", "Bearer " + token_);
  }

  std::string config_, record_;
};

TEST_F(E2eTest, JobLifecycleThroughCliSurvivesRestart) {
  auto daemon = StartTimerd();

  json a = Submit("backup-a");
  json b = Submit("backup-b");
  const std::string id_a = a["job_id"], id_b = b["job_id"];
  EXPECT_EQ(a["name"], "backup-a");
  EXPECT_EQ(a["status"], "NEW");
  EXPECT_EQ(a["owner"], kIdentity);
  EXPECT_EQ(a["schedule"]["interval_seconds"], "3600");
  EXPECT_EQ(a["schedule"]["start"], "2030-01-01T00:00:00Z");
  EXPECT_EQ(a["next_run"], "2030-01-01T00:00:00Z");
  EXPECT_EQ(a["action"]["provider"], "noop");
  EXPECT_NE(id_a, id_b);

  json status = CliJson({"job", "status", id_a});
  EXPECT_EQ(status["job_id"], id_a);
  EXPECT_EQ(status["name"], "backup-a");

  // The human table names the job and its status.
  RunResult table = Cli({"job", "status", id_a});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("backup-a"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("new"), std::string::npos) << table.out;

  EXPECT_EQ(Ids(CliJson({"job", "list"})), (std::vector<std::string>{id_a, id_b}));

  json deleted = CliJson({"job", "delete", id_a});
  EXPECT_EQ(deleted["status"], "DELETED");
  EXPECT_TRUE(deleted.contains("delete_time"));

  EXPECT_EQ(Ids(CliJson({"job", "list"})), (std::vector<std::string>{id_b}));
  EXPECT_EQ(Ids(CliJson({"job", "list", "--show-deleted"})),
            (std::vector<std::string>{id_a, id_b}));
  RunResult hidden = Cli({"job", "status", id_a});
  EXPECT_EQ(hidden.exit_code, 3) << hidden.err;
  EXPECT_NE(hidden.err.find("deleted"), std::string::npos) << hidden.err;
  EXPECT_EQ(CliJson({"job", "status", "--show-deleted", id_a})["status"], "DELETED");
  RunResult again = Cli({"job", "delete", id_a});
  EXPECT_EQ(again.exit_code, 3) << again.err;

  json before = CliJson({"job", "list", "--show-deleted"});

  // A clean stop, then a new process on the same data dir (and a new port).
  EXPECT_EQ(daemon->Stop(SIGTERM), 0) << daemon->log();
  EXPECT_NE(daemon->log().find("stopped"), std::string::npos) << daemon->log();
  daemon = StartTimerd();

  EXPECT_EQ(CliJson({"job", "list", "--show-deleted"}), before);
  EXPECT_EQ(Ids(CliJson({"job", "list"})), (std::vector<std::string>{id_b}));
  EXPECT_EQ(CliJson({"job", "status", id_b})["name"], "backup-b");
}

TEST_F(E2eTest, AcknowledgedCreateSurvivesKill9) {
  auto daemon = StartTimerd();
  json a = Submit("durable");
  // No graceful shutdown: whatever was acknowledged must be on disk.
  EXPECT_EQ(daemon->Stop(SIGKILL), -1);
  daemon = StartTimerd();
  EXPECT_EQ(CliJson({"job", "status", a["job_id"]})["name"], "durable");
}

TEST_F(E2eTest, BadInputThroughCliNamesTheFieldAndWritesNothing) {
  auto daemon = StartTimerd();
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"job", "submit", "--interval", "60", "--action-provider", "noop", "--action-body",
        "[1, 2]"},
       2,
       "job.action.body"},
      {{"job", "submit", "--interval", "60", "--action-provider", "noop", "--action-body",
        "{not json"},
       2,
       "job.action.body"},
      {{"job", "submit", "--interval", "60", "--action-provider", "", "--action-body",
        "{}"},
       2,
       "--action-provider"},
      {{"job", "submit", "--interval", "60", "--action-provider", "nope", "--action-body",
        "{}"},
       2,
       "job.action.provider"},
      {{"job", "submit", "--interval", "60", "--action-provider", "noop", "--action-body",
        R"({"delay_ms": "soon"})"},
       2,
       "job.action.body"},
      {{"job", "submit", "--interval", "-5", "--action-provider", "noop", "--action-body",
        "{}"},
       2,
       "--interval"},
      {{"job", "submit", "--interval", "60", "--start", "yesterday", "--action-provider",
        "noop", "--action-body", "{}"},
       2,
       "--start"},
      {{"job", "status", "not-a-uuid"}, 2, "job_id"},
      {{"job", "status", "00000000-0000-4000-8000-000000000000"}, 3, "not found"},
      {{"job", "delete", "00000000-0000-4000-8000-000000000000"}, 3, "not found"},
  };
  for (const Case& c : cases) {
    RunResult r = Cli(c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.args.back() << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    // One line, no stack trace.
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_TRUE(CliJson({"job", "list", "--show-deleted"})["jobs"].empty());
}

TEST_F(E2eTest, UnreachableServerFailsFastWithExitCode5) {
  address_ = "127.0.0.1:1";  // Nothing listens on port 1 here.
  RunResult r = Cli({"job", "list"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("cannot reach timerd at 127.0.0.1:1"), std::string::npos) << r.err;
}

TEST_F(E2eTest, GrpcBadInputGetsInvalidArgumentAndWritesNothing) {
  auto daemon = StartTimerd();
  auto stub = v1::TimerService::NewStub(Channel());
  const auto create = [&](const std::function<void(v1::Job&)>& edit) {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->mutable_schedule()->set_interval_seconds(60);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body("{}");
    edit(*job);
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::Job out;
    return stub->CreateJob(&ctx, req, &out);
  };
  const std::vector<std::pair<std::function<void(v1::Job&)>, std::string>> cases = {
      {[](v1::Job& j) { j.mutable_schedule()->set_interval_seconds(0); },
       "job.schedule.interval_seconds"},
      {[](v1::Job& j) { j.mutable_schedule()->set_interval_seconds(-1); },
       "job.schedule.interval_seconds"},
      {[](v1::Job& j) { j.mutable_action()->set_provider(""); }, "job.action.provider"},
      {[](v1::Job& j) { j.mutable_action()->set_body("\"text\""); }, "job.action.body"},
      {[](v1::Job& j) { j.mutable_action()->set_body(""); }, "job.action.body"},
      {[](v1::Job& j) { j.mutable_schedule()->set_stop_after_runs(0); },
       "job.schedule.stop_after_runs"},
  };
  for (const auto& [edit, field] : cases) {
    grpc::Status s = create(edit);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_EQ(s.error_message().rfind(field + ":", 0), 0u) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::GetJobRequest req;
    req.set_job_id("00000000-0000-4000-8000-000000000000");
    v1::Job out;
    EXPECT_EQ(stub->GetJob(&ctx, req, &out).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::ListJobsRequest req;
  req.set_show_deleted(true);
  v1::ListJobsResponse resp;
  ASSERT_TRUE(stub->ListJobs(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.jobs_size(), 0);
}

TEST_F(E2eTest, CreateIsIdempotentOnRequestId) {
  auto daemon = StartTimerd();
  const std::vector<std::string> args = {"job",
                                         "submit",
                                         "--name",
                                         "once",
                                         "--interval",
                                         "60",
                                         "--action-provider",
                                         "noop",
                                         "--action-body",
                                         "{}",
                                         "--request-id",
                                         "retry-key-1"};
  json first = CliJson(args);
  json second = CliJson(args);
  EXPECT_EQ(first["job_id"], second["job_id"]);
  EXPECT_EQ(CliJson({"job", "list"})["jobs"].size(), 1u);
  // The same key with a different request is refused, not silently merged.
  std::vector<std::string> changed = args;
  changed[3] = "other";
  RunResult r = Cli(changed);
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("request_id"), std::string::npos) << r.err;
}

TEST_F(E2eTest, HealthServesAndReflectionListsServices) {
  auto daemon = StartTimerd();
  auto health = grpc::health::v1::Health::NewStub(Channel());
  for (const std::string service :
       {"", "timer.v1.TimerService", "timer.v1.SessionService"}) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok()) << service;
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }

  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(Channel());
  grpc::ClientContext ctx;
  Deadline(&ctx);
  auto stream = reflection->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::vector<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
  EXPECT_NE(std::find(names.begin(), names.end(), "timer.v1.TimerService"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "timer.v1.SessionService"),
            names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "grpc.health.v1.Health"), names.end());
  while (stream->Read(&resp)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(E2eTest, WhoAmIIsTheTokensIdentity) {
  auto daemon = StartTimerd();
  auto session = v1::SessionService::NewStub(Channel());
  grpc::ClientContext ctx2;
  Deadline(&ctx2);
  v1::WhoAmIResponse who;
  ASSERT_TRUE(session->WhoAmI(&ctx2, v1::WhoAmIRequest(), &who).ok());
  EXPECT_EQ(who.identity(), kIdentity);
  EXPECT_EQ(who.auth_method(), "token");
}

TEST_F(E2eTest, SecondTimerdOnSameDataDirIsRefused) {
  auto first = StartTimerd();
  Daemon second({timerd_, "--listen", "127.0.0.1:0", "--data-dir", data_dir_});
  EXPECT_EQ(second.WaitExit(absl::Seconds(20)), 1);
  EXPECT_NE(second.log().find("in use by another timerd"), std::string::npos)
      << second.log();
  // The first one is unharmed.
  EXPECT_TRUE(CliJson({"job", "list"})["jobs"].empty());
}

TEST_F(E2eTest, DataDirIsPrivate) {
  auto daemon = StartTimerd();
  Submit("private");
  struct stat st;
  ASSERT_EQ(stat(data_dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat((data_dir_ + "/timer.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);
}

TEST_F(E2eTest, PlaintextOnNonLoopbackAddressIsRefused) {
  Daemon d({timerd_, "--listen", "0.0.0.0:0", "--data-dir", data_dir_});
  EXPECT_EQ(d.WaitExit(absl::Seconds(20)), 1);
  EXPECT_NE(d.log().find("not a loopback address"), std::string::npos) << d.log();
}

int64_t Seconds(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << rfc3339;
  return absl::ToUnixSeconds(t);
}

TEST_F(E2eTest, OneSecondJobRunsOnTheGridAndStopsAfterThreeRuns) {
  auto daemon = StartTimerdWithRecord();
  json job =
      CliJson({"job", "submit", "--name", "tick", "--interval", "1", "--stop-after-runs",
               "3", "--action-provider", "noop", "--action-body", "{}"});
  const std::string id = job["job_id"];
  const int64_t start = Seconds(job["schedule"]["start"]);
  // Ended, and its last run finished too.
  job = WaitForJob(id, [](const json& j) {
    return j["status"] == "ENDED" && j["results"].size() == 3 &&
           j["results"][0]["status"] == "SUCCEEDED";
  });
  EXPECT_EQ(job["end_reason"], "STOP_AFTER_RUNS");
  EXPECT_EQ(job["n_runs"], "3");
  json results = CliJson({"job", "results", id})["results"];
  ASSERT_EQ(results.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const json& r = results[2 - i];  // Newest first.
    EXPECT_EQ(r["run_number"], std::to_string(i + 1));
    EXPECT_EQ(r["status"], "SUCCEEDED");
    // Exactly on the grid: start + k seconds, whatever the lateness.
    EXPECT_EQ(Seconds(r["scheduled_time"]), start + i);
    EXPECT_EQ(r["scheduled_time"].get<std::string>().find('.'), std::string::npos);
  }
  EXPECT_EQ(RecordedStarts(),
            (std::vector<std::string>{id + "/1", id + "/2", id + "/3"}));
}

TEST_F(E2eTest, Kill9AndRestartContinuesTheGridWithoutRepeatingARun) {
  auto daemon = StartTimerdWithRecord();
  json job = CliJson({"job", "submit", "--interval", "1", "--action-provider", "noop",
                      "--action-body", "{}"});
  const std::string id = job["job_id"];
  const int64_t start = Seconds(job["schedule"]["start"]);
  WaitForJob(
      id, [](const json& j) { return std::stoi(j["n_runs"].get<std::string>()) >= 2; });
  EXPECT_EQ(daemon->Stop(SIGKILL), -1);
  daemon = StartTimerd({"--config", config_});
  const int64_t before = static_cast<int64_t>(RecordedStarts().size());
  WaitForJob(id, [&](const json& j) {
    return std::stoi(j["n_runs"].get<std::string>()) >= before + 2;
  });
  json results = CliJson({"job", "results", id})["results"];
  std::set<int64_t> numbers, slots;
  for (const json& r : results) {
    EXPECT_TRUE(numbers.insert(std::stoll(r["run_number"].get<std::string>())).second)
        << "run_number repeated: " << r.dump();
    const int64_t slot = Seconds(r["scheduled_time"]);
    EXPECT_TRUE(slots.insert(slot).second) << "slot run twice: " << r.dump();
    EXPECT_GE(slot, start);
  }
  // The provider saw each run once: no request id twice.
  std::vector<std::string> starts = RecordedStarts();
  std::set<std::string> unique(starts.begin(), starts.end());
  EXPECT_EQ(unique.size(), starts.size());
}

TEST_F(E2eTest, PauseResumeAndRunNowThroughTheCli) {
  auto daemon = StartTimerdWithRecord();
  json job =
      CliJson({"job", "submit", "--interval", "1h", "--start", "2030-01-01T00:00:00Z",
               "--action-provider", "noop", "--action-body", "{}"});
  const std::string id = job["job_id"];
  json paused = CliJson({"job", "pause", id});
  EXPECT_EQ(paused["status"], "PAUSED");
  EXPECT_FALSE(paused.contains("next_run"));
  json resumed = CliJson({"job", "resume", id});
  EXPECT_EQ(resumed["status"], "NEW");
  EXPECT_EQ(resumed["next_run"], "2030-01-01T00:00:00Z");
  json ran = CliJson({"job", "run-now", id});
  EXPECT_EQ(ran["n_runs"], "1");
  EXPECT_EQ(ran["next_run"], "2030-01-01T00:00:00Z");  // The grid did not move.
  job = WaitForJob(id, [](const json& j) {
    return !j["results"].empty() && j["results"][0]["status"] == "SUCCEEDED";
  });
  EXPECT_TRUE(job["results"][0]["manual"].get<bool>());
  EXPECT_EQ(RecordedStarts(), (std::vector<std::string>{id + "/1"}));

  RunResult table = Cli({"job", "status", id});
  EXPECT_NE(table.out.find("Next run:     2030-01-01T00:00:00Z"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("Last result:  SUCCEEDED (run 1)"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("Runs:         1 (0 errors)"), std::string::npos) << table.out;
}

TEST_F(E2eTest, ProvidersAreListedWithTheirSchema) {
  auto daemon = StartTimerd();
  json list = CliJson({"provider", "list"});
  std::vector<std::string> names;
  for (const json& p : list["action_providers"]) names.push_back(p["name"]);
  EXPECT_NE(std::find(names.begin(), names.end(), "noop"), names.end());
  json noop = CliJson({"provider", "show", "noop"});
  EXPECT_NE(noop["input_schema"].get<std::string>().find("delay_ms"), std::string::npos);
  RunResult missing = Cli({"provider", "show", "nope"});
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
}

}  // namespace
}  // namespace timer::testing
