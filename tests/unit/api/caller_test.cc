// Tests of api/caller.h: CallerOf reads a call's credentials from its server
// context (the authorization metadata; the verified client certificate's
// subject over mutual TLS) and refuses a call whose deadline has already
// passed. Driven by a probe service (SessionService.WhoAmI, answered with
// CallerOf alone) in a gRPC server on 127.0.0.1:0, so the contexts are the
// ones gRPC makes; the TLS certificates are made at test time.

#include "api/caller.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/status.h"
#include "auth/authenticator.h"
#include "auth/token.h"
#include "domain/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/sqlite_store.h"
#include "store/sqlite_token_store.h"
#include "timer/v1/session.grpc.pb.h"
#include "tls_testing.h"

namespace timer::api {
namespace {

using ::testing::HasSubstr;

constexpr std::chrono::seconds kRpcTimeout(20);
constexpr absl::Duration kWait = absl::Seconds(20);

// Answers WhoAmI with what CallerOf made of the call and keeps it. With
// `late` set, answers on a thread of its own once the call's deadline has
// passed, as a server too busy to get to it in time would.
class ProbeService final : public v1::SessionService::CallbackService {
 public:
  explicit ProbeService(const auth::Authenticator* auth) : auth_(auth) {}
  ~ProbeService() override { JoinAll(); }

  void set_late(bool late) { late_ = late; }

  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* ctx,
                                   const v1::WhoAmIRequest*,
                                   v1::WhoAmIResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!late_) {
      Answer(ctx, reactor, response);
      return reactor;
    }
    absl::MutexLock lock(&mu_);
    threads_.emplace_back([this, ctx, reactor, response] {
      // Waits for the deadline itself: the condition this case is about.
      absl::Notification never;
      never.WaitForNotificationWithDeadline(absl::FromChrono(ctx->deadline()) +
                                            absl::Milliseconds(1));
      Answer(ctx, reactor, response);
    });
    return reactor;
  }

  // What CallerOf returned for the next call, once it has been answered.
  std::optional<absl::StatusOr<auth::Principal>> AwaitAnswer() {
    absl::MutexLock lock(&mu_);
    const auto answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !answers_.empty();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&answered), kWait)) return std::nullopt;
    absl::StatusOr<auth::Principal> first = answers_.front();
    answers_.erase(answers_.begin());
    return first;
  }

  // How many calls reached the service.
  size_t answered() {
    absl::MutexLock lock(&mu_);
    return answered_;
  }

  void JoinAll() {
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  void Answer(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
              v1::WhoAmIResponse* response) {
    absl::StatusOr<auth::Principal> caller = CallerOf(*auth_, ctx);
    if (caller.ok()) {
      response->set_identity(caller->identity.name);
      response->set_auth_method(caller->identity.auth_method);
    }
    {
      absl::MutexLock lock(&mu_);
      answers_.push_back(caller);
      ++answered_;
    }
    reactor->Finish(ToGrpcStatus(caller.status()));
  }

  const auth::Authenticator* const auth_;
  std::atomic<bool> late_{false};  // Set by the test, read on gRPC's threads.
  absl::Mutex mu_;
  std::vector<absl::StatusOr<auth::Principal>> answers_ ABSL_GUARDED_BY(mu_);
  size_t answered_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

std::string MakeTempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "caller_test.XXXXXX").string();
  const char* made = ::mkdtemp(tmpl.data());
  return made == nullptr ? std::string() : std::string(made);
}

class CallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    const std::string db = dir_ + "/timer.db";
    auto store = store::SqliteStore::Open(
        {.path = db, .checkpoint_interval = absl::InfiniteDuration()});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto tokens = store::SqliteTokenStore::Open(db);
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = *std::move(tokens);
    auto issued = auth::IssueToken(*tokens_, "alice", std::nullopt, "test", clock_.Now());
    ASSERT_TRUE(issued.ok()) << issued.status();
    token_ = issued->token;
    authenticator_ =
        std::make_unique<auth::Authenticator>(tokens_.get(), nullptr, &clock_);
    probe_ = std::make_unique<ProbeService>(authenticator_.get());

    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", ServerCredentials(), &port);
    builder.RegisterService(probe_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    port_ = port;
    stub_ = v1::SessionService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (probe_ != nullptr) probe_->JoinAll();
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
      server_->Wait();
    }
    if (store_ != nullptr) store_->Close();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // Calls the probe with `authorization` (none if nullopt) and returns what
  // the client saw.
  // Plaintext, unless a fixture says otherwise.
  virtual std::shared_ptr<grpc::ServerCredentials> ServerCredentials() {
    return grpc::InsecureServerCredentials();
  }

  grpc::Status Call(std::optional<std::string> authorization,
                    std::chrono::milliseconds timeout = kRpcTimeout) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    if (authorization) ctx.AddMetadata("authorization", *authorization);
    v1::WhoAmIResponse response;
    return stub_->WhoAmI(&ctx, v1::WhoAmIRequest(), &response);
  }

  std::string dir_;
  domain::FakeClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<store::TokenStore> tokens_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<ProbeService> probe_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::SessionService::Stub> stub_;
  int port_ = 0;
  std::string token_;
};

TEST_F(CallerTest, TheAuthorizationMetadataIdentifiesTheCaller) {
  EXPECT_TRUE(Call(absl::StrCat("Bearer ", token_)).ok());
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->identity.name, "alice");
  EXPECT_EQ((*answer)->identity.auth_method, "token");
  EXPECT_FALSE((*answer)->token_id.empty());
}

TEST_F(CallerTest, TheBearerSchemeIsCaseInsensitive) {
  EXPECT_TRUE(Call(absl::StrCat("bearer ", token_)).ok());
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->identity.name, "alice");
}

TEST_F(CallerTest, NoAuthorizationOnAPlaintextConnectionIsUnauthenticated) {
  const grpc::Status status = Call(std::nullopt);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  EXPECT_TRUE(absl::IsUnauthenticated(answer->status())) << answer->status();
  EXPECT_THAT(std::string(answer->status().message()), HasSubstr("no credentials"));
}

TEST_F(CallerTest, AnAuthorizationValueIsPassedOnAsSent) {
  // Not the bearer scheme: the authenticator sees the value and says why.
  const grpc::Status status = Call("Token abc");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("Bearer"));
}

TEST_F(CallerTest, ACallWhoseDeadlinePassedBeforeItWasHandledIsDeadlineExceeded) {
  probe_->set_late(true);
  const grpc::Status status =
      Call(absl::StrCat("Bearer ", token_), std::chrono::milliseconds(200));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  // Refused before the credentials were looked at, valid as they are.
  EXPECT_TRUE(absl::IsDeadlineExceeded(answer->status())) << answer->status();
  EXPECT_THAT(std::string(answer->status().message()), HasSubstr("deadline"));
}

// ---------------------------------------------------------------------------
// Mutual TLS: the subject of a client certificate the server's CA verified.

class CallerMutualTlsTest : public CallerTest {
 protected:
  void SetUp() override {
    ca_ = testing::MakeCa("test-ca");
    server_id_ = testing::MakeServerCert(ca_);
    client_id_ = testing::MakeClientCert(ca_, "Example", "backup-svc");
    CallerTest::SetUp();
  }

  // TLS; a client certificate is optional, and verified against the CA when
  // one is presented (as timerd with tls_client_ca).
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() override {
    grpc::SslServerCredentialsOptions options(
        GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = ca_.cert_pem;
    options.pem_key_cert_pairs.push_back({server_id_.key_pem, server_id_.cert_pem});
    return grpc::SslServerCredentials(options);
  }

  // Calls the probe over TLS, presenting `client` unless it is null.
  grpc::Status CallOverTls(const testing::KeyAndCert* client,
                           std::optional<std::string> authorization) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ca_.cert_pem;
    if (client != nullptr) {
      options.pem_private_key = client->key_pem;
      options.pem_cert_chain = client->cert_pem;
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    auto stub = v1::SessionService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::SslCredentials(options), args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
    if (authorization) ctx.AddMetadata("authorization", *authorization);
    v1::WhoAmIResponse response;
    return stub->WhoAmI(&ctx, v1::WhoAmIRequest(), &response);
  }

  testing::KeyAndCert ca_;
  testing::KeyAndCert server_id_;
  testing::KeyAndCert client_id_;
};

TEST_F(CallerMutualTlsTest, AVerifiedClientCertificatesSubjectIsTheCaller) {
  const grpc::Status status = CallOverTls(&client_id_, std::nullopt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->identity.name, "CN=backup-svc,O=Example");  // RFC 2253.
  EXPECT_EQ((*answer)->identity.auth_method, "mtls");
  EXPECT_EQ((*answer)->token_id, "");
}

TEST_F(CallerMutualTlsTest, AnAuthorizationHeaderWinsOverTheCertificate) {
  const grpc::Status status = CallOverTls(&client_id_, absl::StrCat("Bearer ", token_));
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->identity.name, "alice");
  EXPECT_EQ((*answer)->identity.auth_method, "token");
}

TEST_F(CallerMutualTlsTest,
       TlsWithoutAClientCertificateOrAuthorizationIsUnauthenticated) {
  EXPECT_EQ(CallOverTls(nullptr, std::nullopt).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  EXPECT_THAT(std::string(answer->status().message()), HasSubstr("no credentials"));
}

TEST_F(CallerMutualTlsTest, ACertificateFromAnotherCaIsRefusedAtTheHandshake) {
  const testing::KeyAndCert other_ca = testing::MakeCa("other-ca");
  const testing::KeyAndCert rogue =
      testing::MakeClientCert(other_ca, "Example", "backup-svc");
  EXPECT_EQ(CallOverTls(&rogue, std::nullopt).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

// ---------------------------------------------------------------------------
// CallGate: the credentials checked as a call's headers arrive, before its
// request is read, through GatedCredentials on a real server.

TEST(CallGateMethodsTest, HealthAndReflectionAreOpenAndNothingElse) {
  EXPECT_TRUE(CallGate::IsOpenMethod("/grpc.health.v1.Health/Check"));
  EXPECT_TRUE(CallGate::IsOpenMethod("/grpc.health.v1.Health/Watch"));
  EXPECT_TRUE(CallGate::IsOpenMethod(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
  EXPECT_TRUE(CallGate::IsOpenMethod(
      "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
  EXPECT_FALSE(CallGate::IsOpenMethod("/timer.v1.TimerService/CreateJob"));
  EXPECT_FALSE(CallGate::IsOpenMethod("/timer.v1.SessionService/WhoAmI"));
  EXPECT_FALSE(CallGate::IsOpenMethod("/grpc.health.v1.HealthX/Check"));
  EXPECT_FALSE(CallGate::IsOpenMethod(""));
}

class CallGateTest : public CallerTest {
 protected:
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() override {
    gate_ = std::make_shared<const CallGate>(authenticator_.get(), &clock_);
    return GatedCredentials(grpc_insecure_server_credentials_create(), gate_);
  }

  void Revoke() {
    const auto parsed = auth::ParseToken(token_);
    ASSERT_TRUE(parsed.has_value());
    ASSERT_TRUE(tokens_->Revoke(parsed->token_id, absl::ToUnixMicros(clock_.Now())).ok());
  }

  std::shared_ptr<const CallGate> gate_;
};

TEST_F(CallGateTest, ACallWithoutValidCredentialsNeverReachesTheService) {
  const grpc::Status none = Call(std::nullopt);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(none.error_message(), HasSubstr("no credentials"));
  const grpc::Status wrong = Call("Bearer tmr_0000000000000000_wrong");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(probe_->answered(), 0u) << "the gate let a call through";
}

TEST_F(CallGateTest, AValidTokenPassesAndTheServiceStillSeesTheCaller) {
  ASSERT_TRUE(Call(absl::StrCat("Bearer ", token_)).ok());
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->identity.name, "alice");
}

TEST_F(CallGateTest, ATokenRevokedWithinTheGatesMemoryIsStillRefusedByTheService) {
  ASSERT_TRUE(Call(absl::StrCat("Bearer ", token_)).ok());
  Revoke();
  const grpc::Status status = Call(absl::StrCat("Bearer ", token_));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("revoked"));
}

TEST_F(CallGateTest, TheGateForgetsAVerifiedTokenAfterASecond) {
  ASSERT_TRUE(Call(absl::StrCat("Bearer ", token_)).ok());
  Revoke();
  clock_.Advance(absl::Seconds(2));
  const grpc::Status status = Call(absl::StrCat("Bearer ", token_));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("revoked"));
  EXPECT_EQ(probe_->answered(), 1u) << "the refused call reached the service";
}

}  // namespace
}  // namespace timer::api
