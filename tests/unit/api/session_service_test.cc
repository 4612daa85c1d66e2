// Tests of the gRPC handlers of timer.v1.SessionService
// (api/session_service.h): WhoAmI reports who the credentials say the caller
// is; RevokeSession revokes the issued token a call was made with, and
// refuses what timerd cannot revoke. The service runs in a gRPC server of its
// own on 127.0.0.1:0, over a TokenStore in a temp dir, a JWT verifier with a
// key made for the test, and a FakeClock.

#include "api/session_service.h"

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "auth/authenticator.h"
#include "auth/jwt.h"
#include "auth/token.h"
#include "domain/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jwt_testing.h"
#include "store/sqlite_store.h"
#include "store/sqlite_token_store.h"
#include "timer/v1/session.grpc.pb.h"

namespace timer::api {
namespace {

using ::testing::HasSubstr;

constexpr std::chrono::seconds kRpcTimeout(20);
constexpr char kIssuer[] = "https://idp.example.org";
constexpr char kAudience[] = "timer";

MATCHER(IsOk, "is OK") {
  *result_listener << "whose status is " << arg.error_code() << ": "
                   << arg.error_message();
  return arg.ok();
}

MATCHER_P(HasCode, code, absl::StrCat("has status code ", code)) {
  *result_listener << "whose status is " << arg.error_code() << ": "
                   << arg.error_message();
  return arg.error_code() == code;
}

MATCHER_P2(HasCode, code, message_matcher, absl::StrCat("has status code ", code)) {
  *result_listener << "whose status is " << arg.error_code() << ": "
                   << arg.error_message();
  return arg.error_code() == code &&
         ::testing::ExplainMatchResult(message_matcher, arg.error_message(),
                                       result_listener);
}

std::string MakeTempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "session_service_test.XXXXXX").string();
  const char* made = ::mkdtemp(tmpl.data());
  return made == nullptr ? std::string() : std::string(made);
}

class SessionServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    const std::string db = dir_ + "/timer.db";
    // The SqliteStore creates the tokens table; the TokenStore reads it.
    auto store = store::SqliteStore::Open(
        {.path = db, .checkpoint_interval = absl::InfiniteDuration()});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto tokens = store::SqliteTokenStore::Open(db);
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = *std::move(tokens);

    jwt_key_ = testing::NewEcKey();
    auto jwt = auth::JwtVerifier::Create(testing::PublicPem(jwt_key_.get()), "test key",
                                         {.issuer = kIssuer, .audience = kAudience});
    ASSERT_TRUE(jwt.ok()) << jwt.status();
    jwt_ = *std::move(jwt);
    authenticator_ =
        std::make_unique<auth::Authenticator>(tokens_.get(), jwt_.get(), &clock_);
    service_ = std::make_unique<SessionServiceImpl>(authenticator_.get());

    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    stub_ = v1::SessionService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
      server_->Wait();
    }
    if (store_ != nullptr) store_->Close();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  std::string Issue(const std::string& identity,
                    std::optional<absl::Time> expires = std::nullopt) {
    absl::StatusOr<auth::IssuedToken> issued =
        auth::IssueToken(*tokens_, identity, expires, "test", clock_.Now());
    EXPECT_TRUE(issued.ok()) << issued.status();
    return issued.ok() ? issued->token : std::string();
  }

  std::string Jwt(const std::string& sub, absl::Time exp) {
    return testing::SignJwt(jwt_key_.get(), {{"iss", kIssuer},
                                             {"aud", kAudience},
                                             {"sub", sub},
                                             {"iat", absl::ToUnixSeconds(clock_.Now())},
                                             {"exp", absl::ToUnixSeconds(exp)}});
  }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& bearer) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
    if (!bearer.empty())
      ctx->AddMetadata("authorization", absl::StrCat("Bearer ", bearer));
    return ctx;
  }

  grpc::Status WhoAmI(const std::string& bearer, v1::WhoAmIResponse* response) {
    return stub_->WhoAmI(Context(bearer).get(), v1::WhoAmIRequest(), response);
  }

  grpc::Status Revoke(const std::string& bearer) {
    v1::RevokeSessionResponse response;
    return stub_->RevokeSession(Context(bearer).get(), v1::RevokeSessionRequest(),
                                &response);
  }

  std::string dir_;
  domain::FakeClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<store::TokenStore> tokens_;
  testing::TestKey jwt_key_;
  std::unique_ptr<auth::JwtVerifier> jwt_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<SessionServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::SessionService::Stub> stub_;
};

TEST_F(SessionServiceTest, WhoAmIWithAnIssuedTokenNamesItsIdentity) {
  v1::WhoAmIResponse response;
  ASSERT_THAT(WhoAmI(Issue("alice"), &response), IsOk());
  EXPECT_EQ(response.identity(), "alice");
  EXPECT_EQ(response.auth_method(), "token");
  EXPECT_FALSE(response.has_expire_time());  // This token never expires.
}

TEST_F(SessionServiceTest, WhoAmIReportsWhenAnIssuedTokenExpires) {
  const absl::Time expires = clock_.Now() + absl::Hours(2) + absl::Microseconds(250);
  v1::WhoAmIResponse response;
  ASSERT_THAT(WhoAmI(Issue("alice", expires), &response), IsOk());
  ASSERT_TRUE(response.has_expire_time());
  EXPECT_EQ(absl::FromUnixSeconds(response.expire_time().seconds()) +
                absl::Nanoseconds(response.expire_time().nanos()),
            absl::FromUnixMicros(absl::ToUnixMicros(expires)));
}

TEST_F(SessionServiceTest, WhoAmIWithAJwtNamesItsSubject) {
  const absl::Time exp = clock_.Now() + absl::Minutes(10);
  v1::WhoAmIResponse response;
  ASSERT_THAT(WhoAmI(Jwt("carol@example.org", exp), &response), IsOk());
  EXPECT_EQ(response.identity(), "carol@example.org");
  EXPECT_EQ(response.auth_method(), "jwt");
  EXPECT_EQ(response.expire_time().seconds(), absl::ToUnixSeconds(exp));
  EXPECT_EQ(response.expire_time().nanos(), 0);
}

TEST_F(SessionServiceTest, WhoAmIWithoutCredentialsIsUnauthenticated) {
  v1::WhoAmIResponse response;
  EXPECT_THAT(WhoAmI("", &response),
              HasCode(grpc::StatusCode::UNAUTHENTICATED, HasSubstr("no credentials")));
  EXPECT_EQ(response.identity(), "");
}

TEST_F(SessionServiceTest, WhoAmIWithAnExpiredTokenIsUnauthenticated) {
  const std::string token = Issue("alice", clock_.Now() + absl::Minutes(1));
  v1::WhoAmIResponse response;
  ASSERT_THAT(WhoAmI(token, &response), IsOk());
  clock_.Advance(absl::Minutes(2));
  EXPECT_THAT(WhoAmI(token, &response), HasCode(grpc::StatusCode::UNAUTHENTICATED));
}

TEST_F(SessionServiceTest, WhoAmIWithAJwtSignedByAnotherKeyIsUnauthenticated) {
  jwt_key_ = testing::NewEcKey();  // Not the one the verifier knows.
  v1::WhoAmIResponse response;
  EXPECT_THAT(WhoAmI(Jwt("mallory", clock_.Now() + absl::Minutes(10)), &response),
              HasCode(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_EQ(response.identity(), "");
}

TEST_F(SessionServiceTest, RevokeSessionEndsThatTokenOnly) {
  const std::string revoked = Issue("alice");
  const std::string kept = Issue("alice");
  ASSERT_THAT(Revoke(revoked), IsOk());
  v1::WhoAmIResponse response;
  EXPECT_THAT(WhoAmI(revoked, &response),
              HasCode(grpc::StatusCode::UNAUTHENTICATED, HasSubstr("revoked")));
  EXPECT_THAT(WhoAmI(kept, &response), IsOk());
  EXPECT_EQ(response.identity(), "alice");
}

TEST_F(SessionServiceTest, RevokeSessionTwiceIsUnauthenticatedTheSecondTime) {
  const std::string token = Issue("alice");
  ASSERT_THAT(Revoke(token), IsOk());
  EXPECT_THAT(Revoke(token), HasCode(grpc::StatusCode::UNAUTHENTICATED));
}

TEST_F(SessionServiceTest, RevokeSessionWithAJwtIsFailedPrecondition) {
  const std::string jwt = Jwt("carol@example.org", clock_.Now() + absl::Minutes(10));
  EXPECT_THAT(Revoke(jwt), HasCode(grpc::StatusCode::FAILED_PRECONDITION));
  v1::WhoAmIResponse response;
  EXPECT_THAT(WhoAmI(jwt, &response), IsOk());  // Still accepted.
}

TEST_F(SessionServiceTest, RevokeSessionWithoutCredentialsIsUnauthenticated) {
  EXPECT_THAT(Revoke(""), HasCode(grpc::StatusCode::UNAUTHENTICATED));
}

}  // namespace
}  // namespace timer::api
