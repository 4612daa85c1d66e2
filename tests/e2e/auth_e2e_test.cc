// End-to-end tests of authentication and isolation through the installed
// timerd and timer: two identities through every RPC and every CLI job
// command, revoked and expired tokens, JWTs, TLS and mutual TLS with a CA
// made at test time (the openssl command), the CLI's token cache, the job
// limit, and that no credential ever reaches timerd's log.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "cli_fixture.h"
#include "event_stream.h"
#include "jwt_testing.h"
#include "process.h"
#include "timer/v1/session.grpc.pb.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

using nlohmann::json;

constexpr char kMissingJob[] = "00000000-0000-4000-8000-00000000abcd";
constexpr char kAliceEndpoint[] = "6f1d3c2a-0b7e-4c11-9a55-1c2d3e4f5a03";

class AuthE2eTest : public CliTest {
 protected:
  // Starts timerd with `config` (TOML) plus `extra` flags.
  std::unique_ptr<Daemon> StartWithConfig(const std::string& config,
                                          std::vector<std::string> extra = {}) {
    const std::string path = tmp_.path() + "/timerd.toml";
    std::ofstream(path) << config;
    extra.insert(extra.begin(), {"--config", path});
    return StartTimerd(extra);
  }

  json SubmitAs(const std::string& token, const std::string& name) {
    RunResult r = CliAs(token, {"--format", "json", "job", "submit", "--name", name,
                                "--interval", "1h", "--start", "2030-01-01T00:00:00Z",
                                "--action-provider", "noop", "--action-body", "{}"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  std::string TokenId(const std::string& token) { return token.substr(4, 16); }

  // Runs `openssl ARGS...` in the test directory; fails the test on error.
  void Openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/bin/openssl");
    RunResult r = timer::testing::Run(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // A CA (NAME.crt/.key) and a certificate it signs for `subject`.
  void MakeCa(const std::string& name) {
    const std::string d = tmp_.path() + "/" + name;
    Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", d + ".key", "-out", d + ".crt", "-days", "1", "-subj",
             "/CN=" + name});
  }
  void MakeCert(const std::string& ca, const std::string& name,
                const std::string& subject, const std::string& ext) {
    const std::string d = tmp_.path() + "/" + name;
    const std::string c = tmp_.path() + "/" + ca;
    std::ofstream(d + ".ext") << ext << "\n";
    Openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", d + ".key", "-out", d + ".csr", "-subj", subject});
    Openssl({"x509", "-req", "-in", d + ".csr", "-CA", c + ".crt", "-CAkey", c + ".key",
             "-CAcreateserial", "-out", d + ".crt", "-days", "1", "-extfile",
             d + ".ext"});
  }
  void MakeServerCert(const std::string& ca) {
    MakeCert(ca, "server", "/CN=localhost",
             "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth");
  }
  std::string File(const std::string& name) { return tmp_.path() + "/" + name; }

  std::shared_ptr<grpc::Channel> Plain() {
    return grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  }
  static void Prepare(grpc::ClientContext* ctx, const std::string& token) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  }
};

// What bob sees of alice's job must be exactly what he sees of a job that
// does not exist: the same exit code and the same message, id aside.
TEST_F(AuthE2eTest, AlicesJobIsInvisibleToBobThroughEveryCliCommand) {
  auto daemon = StartTimerd();
  const std::string alice = IssueToken("alice@example.org");
  const std::string bob = IssueToken("bob@example.org");
  json job = SubmitAs(alice, "alice-private");
  const std::string id = job["job_id"];
  EXPECT_EQ(job["owner"], "alice@example.org");

  const std::vector<std::vector<std::string>> commands = {
      {"job", "status", "ID"},  {"job", "status", "--show-deleted", "-v", "ID"},
      {"job", "results", "ID"}, {"job", "update", "ID", "--interval", "2h"},
      {"job", "pause", "ID"},   {"job", "resume", "ID"},
      {"job", "run-now", "ID"}, {"job", "delete", "ID"},
  };
  for (const auto& command : commands) {
    std::vector<std::string> on_alices = command, on_missing = command;
    for (auto& a : on_alices)
      if (a == "ID") a = id;
    for (auto& a : on_missing)
      if (a == "ID") a = kMissingJob;
    RunResult theirs = CliAs(bob, on_alices);
    RunResult none = CliAs(bob, on_missing);
    EXPECT_EQ(theirs.exit_code, 3) << command[1] << ": " << theirs.err;
    EXPECT_EQ(none.exit_code, 3) << command[1] << ": " << none.err;
    EXPECT_EQ(absl::StrReplaceAll(theirs.err, {{id, "ID"}}),
              absl::StrReplaceAll(none.err, {{kMissingJob, "ID"}}))
        << command[1];
  }
  RunResult list = CliAs(bob, {"--format", "json", "job", "list", "--show-deleted"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(json::parse(list.out)["jobs"].empty()) << list.out;
  RunResult table = CliAs(bob, {"job", "list"});
  EXPECT_EQ(table.out, "No jobs.\n");

  // Alice's job is untouched by all of that, and hers to see.
  RunResult mine = CliAs(alice, {"--format", "json", "job", "status", id});
  ASSERT_EQ(mine.exit_code, 0) << mine.err;
  json after = json::parse(mine.out);
  EXPECT_EQ(after["status"], "NEW");
  EXPECT_EQ(after["schedule"]["interval_seconds"], "3600");
  EXPECT_EQ(after.value("n_runs", "0"), "0");
  RunResult alices = CliAs(alice, {"--format", "json", "job", "list"});
  EXPECT_EQ(json::parse(alices.out)["jobs"].size(), 1u);
}

TEST_F(AuthE2eTest, AlicesJobIsNotFoundToBobThroughEveryRpc) {
  auto daemon = StartTimerd();
  const std::string alice = IssueToken("alice@example.org");
  const std::string bob = IssueToken("bob@example.org");
  const std::string id = SubmitAs(alice, "alice-private")["job_id"];
  auto stub = v1::TimerService::NewStub(Plain());

  const auto expect_not_found = [&](const char* rpc, auto call) {
    for (const std::string& target : {id, std::string(kMissingJob)}) {
      grpc::ClientContext ctx;
      Prepare(&ctx, bob);
      grpc::Status s = call(&ctx, target);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << rpc << " " << target;
    }
  };
  expect_not_found("GetJob", [&](grpc::ClientContext* ctx, const std::string& job_id) {
    v1::GetJobRequest r;
    r.set_job_id(job_id);
    r.set_show_deleted(true);
    v1::Job out;
    return stub->GetJob(ctx, r, &out);
  });
  expect_not_found("UpdateJob", [&](grpc::ClientContext* ctx, const std::string& job_id) {
    v1::UpdateJobRequest r;
    r.mutable_job()->set_job_id(job_id);
    r.mutable_job()->set_name("bobs-now");
    r.mutable_update_mask()->add_paths("name");
    v1::Job out;
    return stub->UpdateJob(ctx, r, &out);
  });
  expect_not_found("DeleteJob", [&](grpc::ClientContext* ctx, const std::string& job_id) {
    v1::DeleteJobRequest r;
    r.set_job_id(job_id);
    v1::Job out;
    return stub->DeleteJob(ctx, r, &out);
  });
  expect_not_found("PauseJob", [&](grpc::ClientContext* ctx, const std::string& job_id) {
    v1::PauseJobRequest r;
    r.set_job_id(job_id);
    v1::Job out;
    return stub->PauseJob(ctx, r, &out);
  });
  expect_not_found("ResumeJob", [&](grpc::ClientContext* ctx, const std::string& job_id) {
    v1::ResumeJobRequest r;
    r.set_job_id(job_id);
    v1::Job out;
    return stub->ResumeJob(ctx, r, &out);
  });
  expect_not_found("RunJobNow", [&](grpc::ClientContext* ctx, const std::string& job_id) {
    v1::RunJobNowRequest r;
    r.set_job_id(job_id);
    v1::Job out;
    return stub->RunJobNow(ctx, r, &out);
  });
  expect_not_found("ListJobResults",
                   [&](grpc::ClientContext* ctx, const std::string& job_id) {
                     v1::ListJobResultsRequest r;
                     r.set_job_id(job_id);
                     v1::ListJobResultsResponse out;
                     return stub->ListJobResults(ctx, r, &out);
                   });
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, bob);
    v1::ListJobsRequest r;
    r.set_show_deleted(true);
    v1::ListJobsResponse out;
    ASSERT_TRUE(stub->ListJobs(&ctx, r, &out).ok());
    EXPECT_EQ(out.jobs_size(), 0);
  }
  // Watching it: the same NOT_FOUND as a job that does not exist.
  std::string messages[2];
  int i = 0;
  for (const std::string& target : {id, std::string(kMissingJob)}) {
    grpc::ClientContext ctx;
    Prepare(&ctx, bob);
    v1::WatchJobRequest r;
    r.set_job_id(target);
    auto stream = e2e::Events(stub->WatchJob(&ctx, r));
    v1::JobEvent event;
    EXPECT_FALSE(stream->Read(&event));
    const grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    messages[i++] = absl::StrReplaceAll(s.error_message(), {{target, "ID"}});
  }
  EXPECT_EQ(messages[0], messages[1]);
  {
    // Watching all of his jobs: bob's snapshot is empty, and alice's changes
    // never reach him; his own next change is the first thing he sees.
    grpc::ClientContext ctx;
    Prepare(&ctx, bob);
    auto stream = e2e::Events(stub->WatchJobs(&ctx, v1::WatchJobsRequest()));
    grpc::ClientContext pause_ctx;
    Prepare(&pause_ctx, alice);
    v1::PauseJobRequest pause;
    pause.set_job_id(id);
    v1::Job paused;
    ASSERT_TRUE(stub->PauseJob(&pause_ctx, pause, &paused).ok());
    grpc::ClientContext create_ctx;
    Prepare(&create_ctx, bob);
    v1::CreateJobRequest create;
    create.mutable_job()->set_name("bobs");
    create.mutable_job()->mutable_schedule()->set_interval_seconds(3600);
    create.mutable_job()->mutable_action()->set_provider("noop");
    create.mutable_job()->mutable_action()->set_body("{}");
    v1::Job bobs;
    ASSERT_TRUE(stub->CreateJob(&create_ctx, create, &bobs).ok());
    v1::JobEvent event;
    ASSERT_TRUE(stream->Read(&event));
    EXPECT_EQ(event.type(), v1::JobEvent::CREATED);
    EXPECT_EQ(event.job().job_id(), bobs.job_id());
    ctx.TryCancel();
    while (stream->Read(&event)) {
    }
    stream->Finish();
    grpc::ClientContext resume_ctx;
    Prepare(&resume_ctx, alice);
    v1::ResumeJobRequest resume;
    resume.set_job_id(id);
    v1::Job resumed;
    ASSERT_TRUE(stub->ResumeJob(&resume_ctx, resume, &resumed).ok());
  }
  // Alice's job kept its name: bob's update never applied.
  grpc::ClientContext ctx;
  Prepare(&ctx, alice);
  v1::GetJobRequest r;
  r.set_job_id(id);
  v1::Job job;
  ASSERT_TRUE(stub->GetJob(&ctx, r, &job).ok());
  EXPECT_EQ(job.name(), "alice-private");
  EXPECT_EQ(job.status(), v1::Job::NEW);
}

TEST_F(AuthE2eTest, EveryRpcWithoutValidCredentialsIsUnauthenticated) {
  auto daemon = StartTimerd();
  auto stub = v1::TimerService::NewStub(Plain());
  auto session = v1::SessionService::NewStub(Plain());
  for (const std::string& token :
       {std::string(), std::string("not-a-token"),
        "tmr_" + std::string(16, '0') + "_" + std::string(64, '0')}) {
    std::vector<grpc::Status> statuses;
    {
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      v1::ListJobsResponse out;
      statuses.push_back(stub->ListJobs(&ctx, v1::ListJobsRequest(), &out));
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      v1::CreateJobRequest r;
      r.mutable_job()->mutable_schedule()->set_interval_seconds(60);
      r.mutable_job()->mutable_action()->set_provider("noop");
      r.mutable_job()->mutable_action()->set_body("{}");
      v1::Job out;
      statuses.push_back(stub->CreateJob(&ctx, r, &out));
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      v1::GetJobRequest r;
      r.set_job_id(kMissingJob);
      v1::Job out;
      statuses.push_back(stub->GetJob(&ctx, r, &out));
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      v1::ListActionProvidersResponse out;
      statuses.push_back(
          stub->ListActionProviders(&ctx, v1::ListActionProvidersRequest(), &out));
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      v1::WhoAmIResponse out;
      statuses.push_back(session->WhoAmI(&ctx, v1::WhoAmIRequest(), &out));
    }
    {
      grpc::ClientContext ctx;
      Prepare(&ctx, token);
      v1::RevokeSessionResponse out;
      statuses.push_back(session->RevokeSession(&ctx, v1::RevokeSessionRequest(), &out));
    }
    for (const grpc::Status& s : statuses) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << "token \"" << token << "\": " << s.error_message();
    }
  }
  // Nothing was created by anyone.
  EXPECT_TRUE(CliJson({"job", "list", "--show-deleted"})["jobs"].empty());

  RunResult none = CliAs("", {"job", "list"});
  EXPECT_EQ(none.exit_code, 4) << none.err;
  EXPECT_NE(none.err.find("timer session login"), std::string::npos) << none.err;
}

TEST_F(AuthE2eTest, RevokedTokenFailsAtOnceInTheRunningTimerd) {
  auto daemon = StartTimerd();
  const std::string alice = IssueToken("alice@example.org");
  ASSERT_EQ(CliAs(alice, {"job", "list"}).exit_code, 0);
  RunResult revoke = TokenCommand({"revoke", TokenId(alice)});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.err;
  // The very next call, no waiting.
  RunResult after = CliAs(alice, {"job", "list"});
  EXPECT_EQ(after.exit_code, 4) << after.err;
  EXPECT_NE(after.err.find("token: revoked at"), std::string::npos) << after.err;
  // The fixture's token of another identity is unaffected.
  EXPECT_EQ(Cli({"job", "list"}).exit_code, 0);

  RunResult unknown = TokenCommand({"revoke", "0123456789abcdef"});
  EXPECT_EQ(unknown.exit_code, 3) << unknown.err;
}

TEST_F(AuthE2eTest, ExpiredTokenFails) {
  auto daemon = StartTimerd();
  const std::string brief = IssueToken("alice@example.org", {"--expires", "1s"});
  RunResult r;
  // The token expires one second after it was issued; wait for that (bounded).
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  do {
    r = CliAs(brief, {"job", "list"});
    if (r.exit_code != 0) break;
    absl::SleepFor(absl::Milliseconds(100));  // Waiting for a wall-clock expiry.
  } while (absl::Now() < deadline);
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("token: expired at"), std::string::npos) << r.err;
  RunResult list = TokenCommand({"list", "--format", "json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  bool seen = false;
  const json tokens = json::parse(list.out);
  for (const json& t : tokens["tokens"]) {
    if (t["token_id"] == TokenId(brief)) {
      seen = true;
      EXPECT_EQ(t["state"], "expired");
    }
  }
  EXPECT_TRUE(seen) << list.out;
}

TEST_F(AuthE2eTest, TokenListShowsIdsNeverSecrets) {
  auto daemon = StartTimerd();
  const std::string alice = IssueToken("alice@example.org", {"--description", "laptop"});
  RunResult table = TokenCommand({"list"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find(TokenId(alice)), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("alice@example.org (laptop)"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find(alice.substr(21)), std::string::npos) << table.out;
  RunResult only = TokenCommand({"list", "--identity", "nobody@example.org"});
  EXPECT_EQ(only.out, "No tokens.\n");
  RunResult bad = TokenCommand({"issue", "--identity", "x", "--expires", "soon"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

TEST_F(AuthE2eTest, SessionLoginWhoamiLogoutAndRevoke) {
  auto daemon = StartTimerd();
  const std::string alice = IssueToken("alice@example.org");
  const std::string cache = tmp_.path() + "/config/timer/tokens.json";
  const std::vector<std::string> env = {"TIMER_TOKEN=",
                                        "XDG_CONFIG_HOME=" + tmp_.path() + "/config"};
  const auto cli = [&](std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {timer_, "--server", address_});
    return RunWithInput(args, env, input);
  };

  RunResult bad = cli({"session", "login"}, "tmr_wrong\n");
  EXPECT_EQ(bad.exit_code, 4) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(cache));

  RunResult login = cli({"session", "login"}, alice + "\n");
  ASSERT_EQ(login.exit_code, 0) << login.err;
  EXPECT_NE(login.out.find("as alice@example.org"), std::string::npos) << login.out;
  EXPECT_EQ(login.out.find(alice), std::string::npos) << "the token is never echoed";
  struct stat st;
  ASSERT_EQ(stat(cache.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  RunResult who = cli({"--format", "json", "session", "whoami"});
  ASSERT_EQ(who.exit_code, 0) << who.err;
  EXPECT_EQ(json::parse(who.out)["identity"], "alice@example.org");
  EXPECT_EQ(json::parse(who.out)["auth_method"], "token");
  EXPECT_EQ(cli({"job", "list"}).exit_code, 0);

  // A cache others can read is refused, with the fix in the message.
  ASSERT_EQ(chmod(cache.c_str(), 0644), 0);
  RunResult exposed = cli({"session", "whoami"});
  EXPECT_EQ(exposed.exit_code, 4) << exposed.err;
  EXPECT_NE(exposed.err.find("chmod 600 " + cache), std::string::npos) << exposed.err;
  EXPECT_EQ(cli({"job", "list"}).exit_code, 4);
  ASSERT_EQ(chmod(cache.c_str(), 0600), 0);

  RunResult logout = cli({"session", "logout"});
  ASSERT_EQ(logout.exit_code, 0) << logout.err;
  EXPECT_EQ(cli({"session", "whoami"}).exit_code, 4);
  // The token itself still works until revoked.
  EXPECT_EQ(CliAs(alice, {"session", "whoami"}).exit_code, 0);

  ASSERT_EQ(cli({"session", "login", "--token", alice}).exit_code, 0);
  RunResult revoked = cli({"session", "revoke"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  RunResult dead = CliAs(alice, {"session", "whoami"});
  EXPECT_EQ(dead.exit_code, 4);
  EXPECT_NE(dead.err.find("revoked"), std::string::npos) << dead.err;
  std::ifstream in(cache);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str().find(alice), std::string::npos) << "revoke also logs out";
}

TEST_F(AuthE2eTest, JobLimitPerIdentityIsResourceExhausted) {
  auto daemon = StartWithConfig("max_jobs_per_identity = 2\n");
  const std::string bob = IssueToken("bob@example.org");
  SubmitAs(token_, "one");
  SubmitAs(token_, "two");
  RunResult third = Cli({"job", "submit", "--interval", "1h", "--action-provider", "noop",
                         "--action-body", "{}"});
  EXPECT_EQ(third.exit_code, 1) << third.err;
  EXPECT_NE(third.err.find("max_jobs_per_identity"), std::string::npos) << third.err;
  SubmitAs(bob, "bobs");  // Per identity.
}

TEST_F(AuthE2eTest, TransferEndpointAccessFollowsTheJobsOwner) {
  const std::string root = tmp_.path() + "/alice-endpoint";
  std::filesystem::create_directories(root + "/data");
  std::ofstream(root + "/data/f.txt") << "hello\n";
  auto daemon = StartWithConfig(
      absl::StrCat("[[plugins.transfer.endpoints]]\nid = \"", kAliceEndpoint,
                   "\"\ndisplay_name = \"alice\"\nroot = \"", root,
                   "\"\nallowed_identities = [\"alice@example.org\"]\n"));
  const std::string alice = IssueToken("alice@example.org");
  const std::string bob = IssueToken("bob@example.org");
  const std::vector<std::string> args = {"job",
                                         "transfer",
                                         "--interval",
                                         "1h",
                                         "--start",
                                         "2030-01-01T00:00:00Z",
                                         "--source-endpoint",
                                         kAliceEndpoint,
                                         "--dest-endpoint",
                                         kAliceEndpoint,
                                         "--item",
                                         "data/f.txt",
                                         "copy/f.txt",
                                         "false"};
  RunResult bobs = CliAs(bob, args);
  EXPECT_EQ(bobs.exit_code, 4) << bobs.err;
  EXPECT_NE(bobs.err.find("bob@example.org"), std::string::npos) << bobs.err;
  RunResult alices = CliAs(alice, args);
  EXPECT_EQ(alices.exit_code, 0) << alices.err;
}

TEST_F(AuthE2eTest, JwtSignedByTheConfiguredKeyWorksOthersFail) {
  auto key = NewEcKey();
  auto other = NewEcKey();
  const std::string jwks = File("jwks.json");
  std::ofstream(jwks) << json{{"keys", {Jwk(key.get(), "k1")}}}.dump();
  auto daemon = StartWithConfig(
      absl::StrCat("[auth.jwt]\nkeys_file = \"", jwks,
                   "\"\nissuer = \"https://idp.example.org\"\naudience = \"timer\"\n"));
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  const json claims = {{"iss", "https://idp.example.org"},
                       {"aud", "timer"},
                       {"sub", "carol@example.org"},
                       {"exp", now + 600}};
  const std::string good = SignJwt(key.get(), claims, "k1");
  RunResult who = CliAs(good, {"--format", "json", "session", "whoami"});
  ASSERT_EQ(who.exit_code, 0) << who.err;
  EXPECT_EQ(json::parse(who.out)["identity"], "carol@example.org");
  EXPECT_EQ(json::parse(who.out)["auth_method"], "jwt");
  EXPECT_EQ(SubmitAs(good, "carols")["owner"], "carol@example.org");

  json expired = claims, wrong_aud = claims;
  expired["exp"] = now - 3600;
  wrong_aud["aud"] = "another-service";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {SignJwt(other.get(), claims, "k1"), "signature"},
      {SignJwt(key.get(), expired, "k1"), "expired"},
      {SignJwt(key.get(), wrong_aud, "k1"), "aud"},
  };
  for (const auto& [jwt, reason] : bad) {
    RunResult r = CliAs(jwt, {"job", "list"});
    EXPECT_EQ(r.exit_code, 4) << r.err;
    EXPECT_NE(r.err.find(reason), std::string::npos) << r.err;
  }
  // A JWT session cannot be revoked by timerd.
  RunResult revoke = CliAs(good, {"session", "revoke"});
  EXPECT_EQ(revoke.exit_code, 6) << revoke.err;
}

TEST_F(AuthE2eTest, TlsWithATestCa) {
  MakeCa("ca");
  MakeCa("other-ca");
  MakeServerCert("ca");
  auto daemon =
      StartTimerd({"--tls-cert", File("server.crt"), "--tls-key", File("server.key")});
  RunResult ok =
      Cli({"--tls-ca", File("ca.crt"), "--format", "json", "session", "whoami"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err << daemon->log();
  EXPECT_EQ(json::parse(ok.out)["identity"], kIdentity);
  // Plaintext to a TLS port, and a CA that did not sign the server: no.
  EXPECT_EQ(Cli({"--timeout", "3", "session", "whoami"}).exit_code, 5);
  EXPECT_EQ(Cli({"--timeout", "3", "--tls-ca", File("other-ca.crt"), "session", "whoami"})
                .exit_code,
            5);
  // TLS does not replace credentials.
  EXPECT_EQ(CliAs("", {"--tls-ca", File("ca.crt"), "job", "list"}).exit_code, 4);
}

TEST_F(AuthE2eTest, MutualTlsSubjectIsTheIdentity) {
  MakeCa("ca");
  MakeCa("other-ca");
  MakeServerCert("ca");
  MakeCert("ca", "client", "/O=Example/CN=backup-svc", "extendedKeyUsage=clientAuth");
  MakeCert("other-ca", "rogue", "/O=Example/CN=backup-svc",
           "extendedKeyUsage=clientAuth");
  auto daemon = StartTimerd({"--tls-cert", File("server.crt"), "--tls-key",
                             File("server.key"), "--tls-client-ca", File("ca.crt")});
  const std::vector<std::string> tls = {"--tls-ca",   File("ca.crt"),
                                        "--tls-cert", File("client.crt"),
                                        "--tls-key",  File("client.key")};
  const auto as_service = [&](std::vector<std::string> args) {
    args.insert(args.begin(), tls.begin(), tls.end());
    return CliAs("", args);
  };
  RunResult who = as_service({"--format", "json", "session", "whoami"});
  ASSERT_EQ(who.exit_code, 0) << who.err << daemon->log();
  const std::string subject = json::parse(who.out)["identity"];
  EXPECT_EQ(subject, "CN=backup-svc,O=Example");
  EXPECT_EQ(json::parse(who.out)["auth_method"], "mtls");
  RunResult submit = as_service({"--format", "json", "job", "submit", "--interval", "1h",
                                 "--start", "2030-01-01T00:00:00Z", "--action-provider",
                                 "noop", "--action-body", "{}"});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  EXPECT_EQ(json::parse(submit.out)["owner"], subject);
  // A token holder on the same server does not see the service's job.
  RunResult theirs = Cli({"--tls-ca", File("ca.crt"), "--format", "json", "job", "list"});
  ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
  EXPECT_TRUE(json::parse(theirs.out)["jobs"].empty());
  // A certificate from another CA, same subject: the handshake fails.
  RunResult rogue =
      CliAs("", {"--timeout", "3", "--tls-ca", File("ca.crt"), "--tls-cert",
                 File("rogue.crt"), "--tls-key", File("rogue.key"), "session", "whoami"});
  EXPECT_NE(rogue.exit_code, 0) << rogue.out;
}

// Every credential this test uses, and each one's secret part, must be
// absent from timerd's log at the most verbose levels.
TEST_F(AuthE2eTest, NoTokenOrSecretInTheLogAtAnyLevel) {
  auto key = NewRsaKey();
  const std::string jwks = File("jwks.json");
  std::ofstream(jwks) << json{{"keys", {Jwk(key.get(), "k1")}}}.dump();
  for (const std::string level : {"trace", "debug", "info"}) {
    std::filesystem::remove_all(data_dir_);
    token_.clear();
    auto daemon = StartWithConfig(
        absl::StrCat("log_level = \"", level, "\"\n[auth.jwt]\nkeys_file = \"", jwks,
                     "\"\nissuer = \"https://idp.example.org\"\naudience = \"timer\"\n"));
    std::vector<std::string> secrets = {token_};
    const std::string alice = IssueToken("alice@example.org");
    const std::string revoked = IssueToken("alice@example.org");
    secrets.push_back(alice);
    secrets.push_back(revoked);
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    const std::string jwt = SignJwt(key.get(), {{"iss", "https://idp.example.org"},
                                                {"aud", "timer"},
                                                {"sub", "dave"},
                                                {"exp", now + 600}});
    const std::string bad_jwt = SignJwt(key.get(), {{"iss", "https://idp.example.org"},
                                                    {"aud", "other"},
                                                    {"sub", "dave"},
                                                    {"exp", now + 600}});
    secrets.push_back(jwt);
    secrets.push_back(bad_jwt);
    std::string wrong = alice;
    wrong.back() = wrong.back() == '0' ? '1' : '0';
    secrets.push_back(wrong);

    SubmitAs(alice, "a");
    EXPECT_EQ(CliAs(wrong, {"job", "list"}).exit_code, 4);
    EXPECT_EQ(CliAs(jwt, {"job", "list"}).exit_code, 0);
    EXPECT_EQ(CliAs(bad_jwt, {"job", "list"}).exit_code, 4);
    EXPECT_EQ(CliAs("", {"job", "list"}).exit_code, 4);
    EXPECT_EQ(CliAs(revoked, {"session", "revoke"}).exit_code, 0);
    EXPECT_EQ(CliAs(revoked, {"job", "list"}).exit_code, 4);
    ASSERT_EQ(daemon->Stop(SIGTERM), 0);

    const std::string log = daemon->log();
    if (level != "info") {
      // The refusals were logged (so the check below looked at real lines).
      EXPECT_NE(log.find("call refused: token: not recognised"), std::string::npos)
          << log;
    }
    for (const std::string& s : secrets) {
      ASSERT_GT(s.size(), 40u);
      EXPECT_EQ(log.find(s), std::string::npos)
          << level << ": a credential is in the log";
      // The secret half of a token, or a JWT's signature.
      const std::string tail = s.substr(s.size() - 32);
      EXPECT_EQ(log.find(tail), std::string::npos) << level << ": a secret is in the log";
    }
  }
}

}  // namespace
}  // namespace timer::testing
