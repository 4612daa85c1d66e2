// Tests of server/server.h: TimerServer::Start wires a store, the domain and
// a gRPC server from a Config; Shutdown stops it. Each case starts timerd in
// this process on 127.0.0.1:0 with a data directory of its own and the noop
// provider from the build, and talks to it as a client would, every call
// with a deadline.

#include "server/server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "auth/token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "h2_testing.h"
#include "other_user.h"
#include "server/config.h"
#include "store/sqlite_token_store.h"
#include "timer/v1/session.grpc.pb.h"
#include "timer/v1/timer.grpc.pb.h"
#include "tls_testing.h"
#include "util/metrics.h"

#ifndef TIMER_NOOP_SO
#error "TIMER_NOOP_SO must name the noop provider built with the tests"
#endif

namespace timer::server {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr std::chrono::seconds kRpcTimeout(20);
constexpr absl::Duration kWait = absl::Seconds(20);

MATCHER_P2(StatusIs, code, message_matcher,
           absl::StrCat("has status code ", absl::StatusCodeToString(code))) {
  *result_listener << "whose status is " << arg.status();
  return arg.status().code() == code &&
         ::testing::ExplainMatchResult(
             message_matcher, std::string(arg.status().message()), result_listener);
}

// Waits, polling, until `done` holds or `timeout` passes; true if it held.
bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout = kWait) {
  const absl::Time give_up = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= give_up) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// gRPC's health and reflection services are spoken here as raw bytes through
// a GenericStub: the reflection messages are already compiled into
// grpc++_reflection, which timerd links, and a second copy of them in this
// process would clash. The messages are small enough to write by hand.

std::string Dump(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// grpc.health.v1.HealthCheckRequest{service}: field 1, length-delimited.
std::string HealthCheckRequest(const std::string& service) {
  std::string out;
  if (service.empty()) return out;
  out.push_back('\x0a');
  out.push_back(static_cast<char>(service.size()));  // Names here are < 128 bytes.
  out += service;
  return out;
}
// A HealthCheckResponse with status SERVING (1) in field 1.
const std::string kServing("\x08\x01", 2);

// Health.Check for `service`: the call's status and the response's bytes.
std::pair<grpc::Status, std::string> CheckHealth(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
    std::chrono::seconds timeout = kRpcTimeout) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  const grpc::ByteBuffer request = Buffer(HealthCheckRequest(service));
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  if (!cq.Next(&tag, &ok))
    status = grpc::Status(grpc::StatusCode::INTERNAL, "queue shut down");
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return {status, status.ok() ? Dump(response) : std::string()};
}

// ServerReflectionInfo with one list_services request: the raw bytes of the
// responses, or an empty string if the stream failed.
std::string ListServicesByReflection(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  const auto deadline = std::chrono::system_clock::now() + kRpcTimeout;
  ctx.set_deadline(deadline);
  // Each step waits for its own completion: one operation in flight at a time.
  const auto step = [&cq, deadline] {
    void* tag = nullptr;
    bool ok = false;
    return cq.AsyncNext(&tag, &ok, deadline) == grpc::CompletionQueue::GOT_EVENT && ok;
  };
  std::string out;
  auto call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  bool ok = false;
  call->StartCall(nullptr);
  ok = step();
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  if (ok) {
    call->Write(Buffer(std::string("\x3a\x00", 2)), nullptr);
    ok = step();
  }
  if (ok) {
    call->WritesDone(nullptr);
    ok = step();
  }
  while (ok) {
    grpc::ByteBuffer response;
    call->Read(&response, nullptr);
    if (!step()) break;
    out += Dump(response);
  }
  grpc::Status status;
  call->Finish(&status, nullptr);
  step();
  cq.Shutdown();
  void* tag = nullptr;
  while (cq.Next(&tag, &ok)) {
  }
  return status.ok() ? out : std::string();
}

std::string MakeTempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "server_test.XXXXXX").string();
  const char* made = ::mkdtemp(tmpl.data());
  return made == nullptr ? std::string() : std::string(made);
}

class TimerServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
  }

  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // A config that starts: loopback port 0, a data dir under the temp dir,
  // the noop provider from the build.
  Config TestConfig(const std::string& data = "data") const {
    Config config;
    config.listen = "127.0.0.1:0";
    config.data_dir = absl::StrCat(dir_, "/", data);
    config.plugin_dir = std::filesystem::path(TIMER_NOOP_SO).parent_path().string();
    config.load_plugins = {"noop"};
    config.log_level = "warn";
    config.workers = 1;
    return config;
  }

  std::unique_ptr<TimerServer> StartOk(const Config& config) {
    absl::StatusOr<std::unique_ptr<TimerServer>> server = TimerServer::Start(config);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  // A bearer token for `identity`, issued into `config`'s database as
  // `timerd token issue` does.
  static std::string Token(const Config& config, const std::string& identity = "alice") {
    auto tokens = store::SqliteTokenStore::Open(config.data_dir + "/timer.db");
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    if (!tokens.ok()) return "";
    auto issued = auth::IssueToken(**tokens, identity, std::nullopt, "test", absl::Now());
    EXPECT_TRUE(issued.ok()) << issued.status();
    return issued.ok() ? issued->token : "";
  }

  static std::shared_ptr<grpc::Channel> Channel(const TimerServer& server) {
    return grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& token = "") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
    if (!token.empty()) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    return ctx;
  }

  static v1::CreateJobRequest NoopJob(const std::string& body = "{}") {
    v1::CreateJobRequest request;
    request.mutable_job()->set_name("noop");
    request.mutable_job()->mutable_schedule()->set_interval_seconds(3600);
    // Far enough ahead that no scheduled run interferes.
    request.mutable_job()->mutable_schedule()->mutable_start()->set_seconds(
        absl::ToUnixSeconds(absl::Now() + absl::Hours(24)));
    request.mutable_job()->mutable_action()->set_provider("noop");
    request.mutable_job()->mutable_action()->set_body(body);
    return request;
  }

  std::string dir_;
};

// ---------------------------------------------------------------------------
// Starting

TEST_F(TimerServerTest, StartsOnPortZeroAndReportsTheBoundAddress) {
  auto server = StartOk(TestConfig());
  ASSERT_NE(server, nullptr);
  EXPECT_GT(server->port(), 0);
  EXPECT_EQ(server->address(), absl::StrCat("127.0.0.1:", server->port()));
  // Something answers there.
  auto channel = Channel(*server);
  EXPECT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + kRpcTimeout));
}

TEST_F(TimerServerTest, ServesOnAUnixSocket) {
  Config config = TestConfig();
  config.listen = absl::StrCat("unix:", dir_, "/timerd.sock");
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  // The address reported (and logged as "listening on ...") is the socket's.
  EXPECT_EQ(server->address(), config.listen);
  auto channel =
      grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  const auto [status, response] = CheckHealth(channel, "");
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response, kServing);
}

TEST_F(TimerServerTest, CreatesThePrivateDataDirectoryWithItsDatabase) {
  const Config config = TestConfig("nested/deeper/data");
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  struct stat st;
  ASSERT_EQ(::stat(config.data_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
  EXPECT_TRUE(std::filesystem::exists(config.data_dir + "/timer.db"));
  EXPECT_TRUE(std::filesystem::exists(config.data_dir + "/LOCK"));
}

TEST_F(TimerServerTest, HealthIsServingForTheServerAndEachService) {
  auto server = StartOk(TestConfig());
  ASSERT_NE(server, nullptr);
  auto channel = Channel(*server);
  for (const std::string service :
       {"", "timer.v1.TimerService", "timer.v1.SessionService"}) {
    const auto [status, response] = CheckHealth(channel, service);
    ASSERT_TRUE(status.ok()) << "service \"" << service
                             << "\": " << status.error_message();
    EXPECT_EQ(response, kServing) << "service \"" << service << "\"";
  }
}

TEST_F(TimerServerTest, HealthOfAServiceItDoesNotServeIsNotFound) {
  auto server = StartOk(TestConfig());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(CheckHealth(Channel(*server), "no.such.Service").first.error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(TimerServerTest, ReflectionListsTheServices) {
  auto server = StartOk(TestConfig());
  ASSERT_NE(server, nullptr);
  const std::string listed = ListServicesByReflection(Channel(*server));
  EXPECT_THAT(listed, HasSubstr("timer.v1.TimerService"));
  EXPECT_THAT(listed, HasSubstr("timer.v1.SessionService"));
  EXPECT_THAT(listed, HasSubstr("grpc.health.v1.Health"));
}

TEST_F(TimerServerTest, CallsAreAuthenticatedWithTokensFromTheDataDirectory) {
  const Config config = TestConfig();
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  auto session = v1::SessionService::NewStub(Channel(*server));
  v1::WhoAmIResponse who;
  EXPECT_EQ(session->WhoAmI(Context().get(), v1::WhoAmIRequest(), &who).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(
      session->WhoAmI(Context(Token(config, "alice")).get(), v1::WhoAmIRequest(), &who)
          .ok());
  EXPECT_EQ(who.identity(), "alice");
  EXPECT_EQ(who.auth_method(), "token");
}

TEST_F(TimerServerTest, ServesTheProvidersOfThePluginDirectory) {
  const Config config = TestConfig();
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  auto timer = v1::TimerService::NewStub(Channel(*server));
  v1::GetActionProviderRequest request;
  request.set_name("noop");
  v1::ActionProvider provider;
  ASSERT_TRUE(
      timer->GetActionProvider(Context(Token(config)).get(), request, &provider).ok());
  EXPECT_EQ(provider.name(), "noop");
}

TEST_F(TimerServerTest, ARunRequestedThroughTheApiIsRunByTheEngine) {
  const Config config = TestConfig();
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  const std::string token = Token(config);
  auto timer = v1::TimerService::NewStub(Channel(*server));
  v1::Job job;
  ASSERT_TRUE(timer->CreateJob(Context(token).get(), NoopJob(), &job).ok());
  v1::RunJobNowRequest run;
  run.set_job_id(job.job_id());
  v1::Job ran;
  ASSERT_TRUE(timer->RunJobNow(Context(token).get(), run, &ran).ok());

  v1::ListJobResultsRequest list;
  list.set_job_id(job.job_id());
  v1::ListJobResultsResponse results;
  EXPECT_TRUE(WaitUntil([&] {
    return timer->ListJobResults(Context(token).get(), list, &results).ok() &&
           results.results_size() == 1 &&
           results.results(0).status() == v1::JobResult::SUCCEEDED;
  })) << results.DebugString();
}

TEST_F(TimerServerTest, ServesItsMetricsWhileRunningAndDropsThemAtShutdown) {
  using ::testing::HasSubstr;
  using ::testing::Not;
  const Config config = TestConfig();
  {
    auto first = StartOk(config);
    ASSERT_NE(first, nullptr);
    auto timer = v1::TimerService::NewStub(Channel(*first));
    v1::Job job;
    ASSERT_TRUE(timer->CreateJob(Context(Token(config)).get(), NoopJob(), &job).ok());
  }
  // The jobs by status are counted in the background at start: this
  // server's count holds the job the first one created.
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  std::string text;
  EXPECT_TRUE(WaitUntil([&] {
    text = metrics::Render();
    return text.find("\ntimer_jobs{status=\"new\"} 1\n") != std::string::npos;
  })) << text;
  EXPECT_THAT(text, HasSubstr("\ntimer_runs_active 0\n"));
  EXPECT_THAT(text, HasSubstr("\ntimer_jobs_scheduled 1\n"));
  EXPECT_THAT(text, HasSubstr("\ntimer_scheduler_due_lag_seconds 0\n"));
  EXPECT_THAT(text, HasSubstr("\nprocess_open_fds "));
  EXPECT_THAT(text,
              HasSubstr("timer_grpc_requests_total{method=\"CreateJob\",code=\"OK\"}"));
  server->Shutdown(absl::Seconds(5));
  // Nothing reads the stopped server's engine or store at a scrape.
  EXPECT_THAT(metrics::Render(), Not(HasSubstr("timer_runs_active")));
}

TEST_F(TimerServerTest, TheJobQuotaOfTheConfigApplies) {
  Config config = TestConfig();
  config.max_jobs_per_identity = 1;
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  const std::string token = Token(config);
  auto timer = v1::TimerService::NewStub(Channel(*server));
  v1::Job job;
  ASSERT_TRUE(timer->CreateJob(Context(token).get(), NoopJob(), &job).ok());
  const grpc::Status second = timer->CreateJob(Context(token).get(), NoopJob(), &job);
  EXPECT_EQ(second.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(second.error_message(), HasSubstr("max_jobs_per_identity"));
}

TEST_F(TimerServerTest, ARequestLargerThanMaxMessageBytesIsRefused) {
  Config config = TestConfig();
  config.max_message_bytes = 4096;
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  const std::string token = Token(config);
  auto timer = v1::TimerService::NewStub(Channel(*server));
  v1::Job job;
  const std::string big =
      absl::StrCat(R"({"fail_message":")", std::string(8192, 'x'), R"("})");
  EXPECT_EQ(timer->CreateJob(Context(token).get(), NoopJob(big), &job).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A small one still goes through.
  EXPECT_TRUE(timer->CreateJob(Context(token).get(), NoopJob(), &job).ok());
}

// ---------------------------------------------------------------------------
// Refusing to start

TEST_F(TimerServerTest, ASecondServerOnTheSameDataDirectoryIsRefused) {
  const Config config = TestConfig();
  auto first = StartOk(config);
  ASSERT_NE(first, nullptr);
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("data_dir"), HasSubstr("in use"))));
}

TEST_F(TimerServerTest, TheDataDirectoryIsFreeAgainOnceTheServerIsGoneAndKeepsItsJobs) {
  const Config config = TestConfig();
  std::string token, job_id;
  {
    auto first = StartOk(config);
    ASSERT_NE(first, nullptr);
    token = Token(config);
    auto timer = v1::TimerService::NewStub(Channel(*first));
    v1::Job job;
    ASSERT_TRUE(timer->CreateJob(Context(token).get(), NoopJob(), &job).ok());
    job_id = job.job_id();
  }
  auto second = StartOk(config);
  ASSERT_NE(second, nullptr);
  auto timer = v1::TimerService::NewStub(Channel(*second));
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  v1::Job job;
  ASSERT_TRUE(timer->GetJob(Context(token).get(), get, &job).ok());
  EXPECT_EQ(job.name(), "noop");
}

TEST_F(TimerServerTest, ADataDirectoryThatCannotBeCreatedIsFailedPrecondition) {
  const std::string file = dir_ + "/a-file";
  std::ofstream(file) << "not a directory";
  Config config = TestConfig();
  config.data_dir = file + "/data";
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("data_dir")));
}

TEST_F(TimerServerTest, AListenAddressWithoutAPortIsInvalidArgument) {
  Config config = TestConfig();
  config.listen = "localhost";
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listen")));
  EXPECT_FALSE(std::filesystem::exists(config.data_dir)) << "checked before any work";
}

TEST_F(TimerServerTest, PlaintextOnANonLoopbackAddressIsInvalidArgument) {
  Config config = TestConfig();
  config.listen = "0.0.0.0:0";
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("listen"), HasSubstr("loopback"))));
}

TEST_F(TimerServerTest, AnAddressThatCannotBeBoundIsUnavailableAndFreesTheDataDirectory) {
  Config config = TestConfig();
  // TEST-NET-1 (RFC 5737): never an address of this machine, so not bindable.
  config.listen = "192.0.2.1:0";
  config.allow_insecure_remote = true;
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("listen")));
  // The failed start released its lock on the data directory.
  config.listen = "127.0.0.1:0";
  config.allow_insecure_remote = false;
  EXPECT_NE(StartOk(config), nullptr);
}

TEST_F(TimerServerTest, TlsCertificateWithoutItsKeyIsInvalidArgument) {
  Config config = TestConfig();
  config.tls_cert = dir_ + "/server.crt";
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tls_key")));
}

TEST_F(TimerServerTest, ATlsFileThatCannotBeReadIsFailedPrecondition) {
  Config config = TestConfig();
  config.tls_cert = dir_ + "/missing.crt";
  config.tls_key = dir_ + "/missing.key";
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("tls_cert")));
}

TEST_F(TimerServerTest, AJwtKeysFileThatCannotBeReadIsFailedPrecondition) {
  Config config = TestConfig();
  config.jwt_keys_file = dir_ + "/missing-jwks.json";
  config.jwt_issuer = "https://idp.example.org";
  config.jwt_audience = "timer";
  EXPECT_THAT(TimerServer::Start(config), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                   HasSubstr("auth.jwt.keys_file")));
}

TEST_F(TimerServerTest, AJwtKeysFileWithNoKeyIsInvalidArgument) {
  Config config = TestConfig();
  config.jwt_keys_file = dir_ + "/empty-jwks.json";
  std::ofstream(config.jwt_keys_file) << R"({"keys": []})";
  config.jwt_issuer = "https://idp.example.org";
  config.jwt_audience = "timer";
  EXPECT_THAT(TimerServer::Start(config), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("auth.jwt.keys_file")));
}

// ---------------------------------------------------------------------------
// Abuse: ports, connections and requests (docs/RELIABILITY.md, "Abuse"),
// driven with raw sockets speaking HTTP/2 by hand (h2_testing.h).

constexpr absl::Duration kAbuseWait = absl::Seconds(5);

// Opens a connection that sends the HTTP/2 preface and then nothing; true if
// the server admitted it (answered with its SETTINGS).
bool Admitted(testing::RawH2Connection& c) {
  if (!c.connected() || !c.SendPreface()) return false;
  c.ReadUntil([&c] { return c.HasSettings() || c.Closed(); }, kAbuseWait);
  return c.HasSettings() && !c.Closed();
}

// True once the server closed `c` (within kAbuseWait).
bool ClosedByServer(testing::RawH2Connection& c) {
  return c.ReadUntil([&c] { return c.Closed(); }, kAbuseWait);
}

TEST_F(TimerServerTest, ASecondServerOnTheSamePortFailsToStartNamingIt) {
  auto first = StartOk(TestConfig());
  ASSERT_NE(first, nullptr);
  Config second = TestConfig("other-data");
  second.listen = first->address();
  EXPECT_THAT(TimerServer::Start(second),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("listen"), HasSubstr(first->address()),
                             HasSubstr("in use"))));
  // The first one still has every call: a fresh channel reaches it.
  EXPECT_TRUE(CheckHealth(Channel(*first), "").first.ok());
}

TEST_F(TimerServerTest, AUnixSocketInUseIsRefusedAndAStaleOneReplaced) {
  Config config = TestConfig();
  config.listen = absl::StrCat("unix:", dir_, "/timerd.sock");
  {
    auto first = StartOk(config);
    ASSERT_NE(first, nullptr);
    Config second = TestConfig("other-data");
    second.listen = config.listen;
    EXPECT_THAT(TimerServer::Start(second),
                StatusIs(absl::StatusCode::kUnavailable, HasSubstr("in use")));
  }
  // A socket file nobody answers on is left from an earlier run: replaced.
  const int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  const std::string path = dir_ + "/timerd.sock";
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(stale);
  auto again = StartOk(config);
  ASSERT_NE(again, nullptr);
  EXPECT_TRUE(
      CheckHealth(grpc::CreateChannel(config.listen, grpc::InsecureChannelCredentials()),
                  "")
          .first.ok());
}

TEST_F(TimerServerTest, AConnectionWithNoAuthenticatedCallIsClosedAfterTheTimeout) {
  Config config = TestConfig();
  config.unauthenticated_connection_timeout_ms = 300;
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  testing::RawH2Connection idle(server->port());
  ASSERT_TRUE(Admitted(idle));
  EXPECT_TRUE(ClosedByServer(idle)) << "a preface-only connection was kept open";
  // So is one that only asks for its health.
  auto channel = Channel(*server);
  ASSERT_TRUE(CheckHealth(channel, "").first.ok());
  EXPECT_TRUE(channel->WaitForStateChange(GRPC_CHANNEL_READY,
                                          absl::ToChronoTime(absl::Now() + kAbuseWait)));
}

TEST_F(TimerServerTest, AConnectionThatMadeAnAuthenticatedCallIsKept) {
  Config config = TestConfig();
  config.unauthenticated_connection_timeout_ms = 300;
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  auto channel = Channel(*server);
  v1::WhoAmIResponse who;
  ASSERT_TRUE(v1::SessionService::NewStub(channel)
                  ->WhoAmI(Context(Token(config)).get(), v1::WhoAmIRequest(), &who)
                  .ok());
  ASSERT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // Three timeouts later the connection is still the same, still ready.
  EXPECT_FALSE(channel->WaitForStateChange(
      GRPC_CHANNEL_READY, absl::ToChronoTime(absl::Now() + absl::Milliseconds(900))));
}

TEST_F(TimerServerTest, ConnectionsBeyondMaxConnectionsPerPeerAreClosed) {
  Config config = TestConfig();
  config.max_connections_per_peer = 3;
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<testing::RawH2Connection>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<testing::RawH2Connection>(server->port()));
    ASSERT_TRUE(Admitted(*held.back())) << "connection " << i;
  }
  testing::RawH2Connection fourth(server->port());
  EXPECT_FALSE(Admitted(fourth));
  // Another peer is not held back by this one's connections.
  testing::RawH2Connection other(server->port(), "127.0.0.2");
  EXPECT_TRUE(Admitted(other));
  // Once one of the three is gone, the peer may connect again.
  held.pop_back();
  EXPECT_TRUE(WaitUntil([&] {
    testing::RawH2Connection again(server->port());
    return Admitted(again);
  })) << "the slot of a closed connection was not freed";
}

TEST_F(TimerServerTest, ConnectionsBeyondMaxConnectionsAreClosed) {
  Config config = TestConfig();
  config.max_connections = 3;
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<testing::RawH2Connection>> held;
  for (const char* source : {"127.0.0.1", "127.0.0.2", "127.0.0.3"}) {
    held.push_back(std::make_unique<testing::RawH2Connection>(server->port(), source));
    ASSERT_TRUE(Admitted(*held.back())) << source;
  }
  testing::RawH2Connection fourth(server->port(), "127.0.0.4");
  EXPECT_FALSE(Admitted(fourth));
  held.clear();
  // Once they are gone, calls are served again.
  EXPECT_TRUE(WaitUntil([&] { return CheckHealth(Channel(*server), "").first.ok(); }));
}

TEST_F(TimerServerTest, TheServerAdvertisesMaxStreamsPerConnection) {
  Config config = TestConfig();
  config.max_streams_per_connection = 7;
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  testing::RawH2Connection c(server->port());
  ASSERT_TRUE(Admitted(c));
  ASSERT_EQ(c.settings().count(testing::RawH2Connection::kMaxConcurrentStreams), 1u)
      << "no SETTINGS_MAX_CONCURRENT_STREAMS: calls on one connection are unbounded";
  EXPECT_EQ(c.settings().at(testing::RawH2Connection::kMaxConcurrentStreams), 7u);
}

TEST_F(TimerServerTest, CallsWithoutCredentialsAreRefusedBeforeTheirRequestArrives) {
  auto server = StartOk(TestConfig());
  ASSERT_NE(server, nullptr);
  testing::RawH2Connection c(server->port());
  ASSERT_TRUE(Admitted(c));
  // Each call announces a 1 MiB request, sends 1 KiB of it and stops: the
  // server must not wait (holding what came) for the rest.
  const std::vector<std::pair<std::string, std::string>> no_credentials;
  const std::vector<std::pair<std::string, std::string>> bad_token = {
      {"authorization", "Bearer tmr_0000000000000000_not-a-secret"}};
  std::vector<uint32_t> streams;
  for (const auto* metadata : {&no_credentials, &bad_token}) {
    for (int i = 0; i < 5; ++i) {
      const uint32_t stream = c.StartCall("/timer.v1.TimerService/CreateJob", *metadata);
      ASSERT_NE(stream, 0u);
      c.SendData(
          stream,
          testing::RawH2Connection::MessagePrefix(1 << 20) + std::string(1024, 'x'),
          kAbuseWait);
      streams.push_back(stream);
    }
  }
  for (uint32_t stream : streams) {
    EXPECT_TRUE(c.ReadUntil([&] { return c.Ended(stream); }, kAbuseWait))
        << "stream " << stream << " was left open, its request half-read";
  }
}

TEST_F(TimerServerTest, HealthAndReflectionNeedNoCredentialsBehindTheGate) {
  auto server = StartOk(TestConfig());
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(CheckHealth(Channel(*server), "").first.ok());
  EXPECT_THAT(ListServicesByReflection(Channel(*server)),
              HasSubstr("timer.v1.TimerService"));
  // Any other method needs them, including one that does not exist.
  grpc::GenericStub stub(Channel(*server));
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
  auto call =
      stub.PrepareUnaryCall(&ctx, "/timer.v1.TimerService/NoSuchMethod", Buffer(""), &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  ASSERT_TRUE(cq.Next(&tag, &ok));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// ---------------------------------------------------------------------------
// Shutting down

TEST_F(TimerServerTest, ShutdownStopsServingWithinItsGracePeriod) {
  auto server = StartOk(TestConfig());
  ASSERT_NE(server, nullptr);
  auto channel = Channel(*server);
  ASSERT_TRUE(CheckHealth(channel, "").first.ok());

  const absl::Time start = absl::Now();
  server->Shutdown(absl::Seconds(5));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // Nothing answers any more.
  EXPECT_FALSE(CheckHealth(channel, "", std::chrono::seconds(2)).first.ok());
}

TEST_F(TimerServerTest, ShutdownTwiceAndThenTheDestructorAreHarmless) {
  auto server = StartOk(TestConfig());
  ASSERT_NE(server, nullptr);
  server->Shutdown(absl::Seconds(1));
  const absl::Time start = absl::Now();
  server->Shutdown(absl::Seconds(1));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  server.reset();
}

TEST_F(TimerServerTest, ShutdownFromSeveralThreadsAtOnceReturnsInEach) {
  auto server = StartOk(TestConfig());
  ASSERT_NE(server, nullptr);
  auto channel = Channel(*server);
  ASSERT_TRUE(CheckHealth(channel, "").first.ok());
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&server] { server->Shutdown(absl::Seconds(5)); });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_FALSE(CheckHealth(channel, "", std::chrono::seconds(2)).first.ok());
}

TEST_F(TimerServerTest, WritesAcceptedBeforeShutdownAreDurable) {
  const Config config = TestConfig();
  std::string token;
  std::vector<std::string> ids;
  {
    auto server = StartOk(config);
    ASSERT_NE(server, nullptr);
    token = Token(config);
    auto timer = v1::TimerService::NewStub(Channel(*server));
    for (int i = 0; i < 5; ++i) {
      v1::Job job;
      ASSERT_TRUE(timer->CreateJob(Context(token).get(), NoopJob(), &job).ok());
      ids.push_back(job.job_id());
    }
    server->Shutdown(absl::Seconds(5));
  }
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  auto timer = v1::TimerService::NewStub(Channel(*server));
  v1::ListJobsResponse list;
  ASSERT_TRUE(timer->ListJobs(Context(token).get(), v1::ListJobsRequest(), &list).ok());
  std::vector<std::string> listed;
  for (const v1::Job& job : list.jobs()) listed.push_back(job.job_id());
  EXPECT_THAT(listed, ::testing::UnorderedElementsAreArray(ids));
}

// ---------------------------------------------------------------------------
// TLS, and mutual TLS with tls_client_ca, from certificates made for the test.

class TimerServerTlsTest : public TimerServerTest {
 protected:
  void SetUp() override {
    TimerServerTest::SetUp();
    ca_ = testing::MakeCa("test-ca");
    server_cert_ = testing::MakeServerCert(ca_);
    client_cert_ = testing::MakeClientCert(ca_, "Example", "backup-svc");
    std::ofstream(dir_ + "/ca.crt") << ca_.cert_pem;
    std::ofstream(dir_ + "/server.crt") << server_cert_.cert_pem;
    std::ofstream(dir_ + "/server.key") << server_cert_.key_pem;
  }

  Config TlsConfig(bool client_ca) const {
    Config config = TestConfig();
    config.tls_cert = dir_ + "/server.crt";
    config.tls_key = dir_ + "/server.key";
    if (client_ca) config.tls_client_ca = dir_ + "/ca.crt";
    return config;
  }

  // A TLS channel to `port` on loopback that trusts the test CA, presenting
  // `client` unless it is null.
  std::shared_ptr<grpc::Channel> TlsChannel(int port,
                                            const testing::KeyAndCert* client) const {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ca_.cert_pem;
    if (client != nullptr) {
      options.pem_private_key = client->key_pem;
      options.pem_cert_chain = client->cert_pem;
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::SslCredentials(options), args);
  }

  static grpc::Status WhoAmI(const std::shared_ptr<grpc::Channel>& channel,
                             const std::string& token, v1::WhoAmIResponse* who) {
    return v1::SessionService::NewStub(channel)->WhoAmI(Context(token).get(),
                                                        v1::WhoAmIRequest(), who);
  }

  testing::KeyAndCert ca_;
  testing::KeyAndCert server_cert_;
  testing::KeyAndCert client_cert_;
};

TEST_F(TimerServerTlsTest, ServesTlsFromTheConfiguredFilesAndRefusesPlaintext) {
  const Config config = TlsConfig(/*client_ca=*/false);
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  v1::WhoAmIResponse who;
  const grpc::Status status =
      WhoAmI(TlsChannel(server->port(), nullptr), Token(config), &who);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(who.identity(), "alice");

  auto plain = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  auto ctx = Context(Token(config));
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  EXPECT_FALSE(v1::SessionService::NewStub(plain)
                   ->WhoAmI(ctx.get(), v1::WhoAmIRequest(), &who)
                   .ok());
}

TEST_F(TimerServerTlsTest, WithAClientCaTheVerifiedCertificatesSubjectIsTheCaller) {
  auto server = StartOk(TlsConfig(/*client_ca=*/true));
  ASSERT_NE(server, nullptr);
  v1::WhoAmIResponse who;
  const grpc::Status status = WhoAmI(TlsChannel(server->port(), &client_cert_), "", &who);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(who.identity(), "CN=backup-svc,O=Example");
  EXPECT_EQ(who.auth_method(), "mtls");
}

TEST_F(TimerServerTlsTest, WithAClientCaACertificateFromAnotherCaIsRefused) {
  auto server = StartOk(TlsConfig(/*client_ca=*/true));
  ASSERT_NE(server, nullptr);
  const testing::KeyAndCert other_ca = testing::MakeCa("other-ca");
  const testing::KeyAndCert rogue =
      testing::MakeClientCert(other_ca, "Example", "backup-svc");
  v1::WhoAmIResponse who;
  EXPECT_EQ(WhoAmI(TlsChannel(server->port(), &rogue), "", &who).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TimerServerTlsTest, WithoutAClientCaAClientCertificateIsNoIdentity) {
  auto server = StartOk(TlsConfig(/*client_ca=*/false));
  ASSERT_NE(server, nullptr);
  v1::WhoAmIResponse who;
  EXPECT_EQ(WhoAmI(TlsChannel(server->port(), &client_cert_), "", &who).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(TimerServerTlsTest, TlsMayListenBeyondLoopback) {
  Config config = TlsConfig(/*client_ca=*/false);
  config.listen = "0.0.0.0:0";
  auto server = StartOk(config);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->address(), absl::StrCat("0.0.0.0:", server->port()));
  v1::WhoAmIResponse who;
  EXPECT_TRUE(WhoAmI(TlsChannel(server->port(), nullptr), Token(config), &who).ok());
}

TEST_F(TimerServerTlsTest, ATlsKeyThatIsNotAKeyIsRefusedAndFreesTheDataDirectory) {
  Config config = TlsConfig(/*client_ca=*/false);
  std::ofstream(config.tls_key) << "not a key\n";
  EXPECT_FALSE(TimerServer::Start(config).ok());
  std::ofstream(config.tls_key) << server_cert_.key_pem;
  EXPECT_NE(StartOk(config), nullptr);
}

// ---------------------------------------------------------------------------
// Trust: what timerd reads at start must not be another local user's to
// change (data directory, store, key files), and a provider's table it
// cannot use stops the start.

// Mode bits of `path` (with the sticky bit), or -1.
int ModeOf(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

TEST_F(TimerServerTest, AnExistingDataDirectoryWritableByOthersIsRefusedAndLeftAsItIs) {
  Config config = TestConfig();
  ASSERT_EQ(::mkdir(config.data_dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(config.data_dir.c_str(), 01777), 0);  // Like /tmp.
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("data_dir"), HasSubstr(config.data_dir),
                             HasSubstr("writable by others"))));
  EXPECT_EQ(ModeOf(config.data_dir), 01777) << "never chmod what timerd did not create";
  EXPECT_FALSE(std::filesystem::exists(config.data_dir + "/timer.db"));
  ASSERT_EQ(::chmod(config.data_dir.c_str(), 0770), 0);
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("its group")));
  // Readable by others is the owner's choice: accepted, and kept.
  ASSERT_EQ(::chmod(config.data_dir.c_str(), 0755), 0);
  EXPECT_NE(StartOk(config), nullptr);
  EXPECT_EQ(ModeOf(config.data_dir), 0755);
}

TEST_F(TimerServerTest, AStoreFileWritableByOthersIsRefused) {
  Config config = TestConfig();
  StartOk(config).reset();  // Creates the store.
  for (const char* name : {"timer.db", "LOCK"}) {
    const std::string path = absl::StrCat(config.data_dir, "/", name);
    ASSERT_EQ(::chmod(path.c_str(), 0666), 0) << path;
    EXPECT_THAT(TimerServer::Start(config),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         AllOf(HasSubstr("data_dir"), HasSubstr(path))));
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  }
  EXPECT_NE(StartOk(config), nullptr);
}

TEST_F(TimerServerTest, ADataDirectoryOrStoreOfAnotherUserIsRefused) {
  if (!timer::testing::CanGiveFilesAway())
    GTEST_SKIP() << timer::testing::kCannotGiveFilesAway;
  Config config = TestConfig();
  StartOk(config).reset();
  // Another user moved the store away and planted theirs (its tokens would
  // authenticate as anyone they like).
  const std::string db = config.data_dir + "/timer.db";
  ASSERT_EQ(::chown(db.c_str(), 65534, 65534), 0);
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr(db), HasSubstr("owned by uid 65534"))));
  ASSERT_EQ(::chown(db.c_str(), 0, 0), 0);
  ASSERT_EQ(::chown(config.data_dir.c_str(), 65534, 65534), 0);
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("owned by uid")));
}

TEST_F(TimerServerTest, AKeyFileOthersMayWriteIsRefused) {
  Config config = TestConfig();
  config.jwt_keys_file = dir_ + "/jwks.json";
  std::ofstream(config.jwt_keys_file) << R"({"keys": []})";
  config.jwt_issuer = "https://idp.example.org";
  config.jwt_audience = "timer";
  ASSERT_EQ(::chmod(config.jwt_keys_file.c_str(), 0666), 0);
  EXPECT_THAT(
      TimerServer::Start(config),
      StatusIs(absl::StatusCode::kPermissionDenied,
               AllOf(HasSubstr("auth.jwt.keys_file"), HasSubstr("writable by others"))));
  EXPECT_FALSE(std::filesystem::exists(config.data_dir)) << "checked before any work";
}

TEST_F(TimerServerTest, AProviderRefusingItsTableStopsTheStart) {
  Config config = TestConfig();
  config.plugins = {{"noop", {{"recordfile", dir_ + "/runs.log"}}}};  // record_file
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("plugins.noop"), HasSubstr("recordfile"))));
  config.plugins = {{"nopp", nlohmann::json::object()}};  // A typo of the name.
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("plugins.nopp")));
  // The failed starts released the data directory.
  config.plugins = nlohmann::json::object();
  EXPECT_NE(StartOk(config), nullptr);
}

TEST_F(TimerServerTest, AnUntrustedPluginDirectoryStopsTheStart) {
  Config config = TestConfig();
  config.plugin_dir = dir_ + "/plugins";
  std::filesystem::create_directory(config.plugin_dir);
  std::filesystem::copy_file(TIMER_NOOP_SO, config.plugin_dir + "/noop.so");
  ASSERT_EQ(::chmod(config.plugin_dir.c_str(), 0777), 0);
  EXPECT_THAT(TimerServer::Start(config),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("plugin_dir"), HasSubstr("writable by others"))));
  ASSERT_EQ(::chmod(config.plugin_dir.c_str(), 0755), 0);
  EXPECT_NE(StartOk(config), nullptr);
}

}  // namespace
}  // namespace timer::server
