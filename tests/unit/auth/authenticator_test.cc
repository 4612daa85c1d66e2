// Tests of the Authenticator (services/timerd/auth/authenticator.cc): issued
// tokens, client certificates and JWTs turned into an identity, revocation.
// Time is a FakeClock; nothing sleeps.
#include "auth/authenticator.h"

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "auth/jwt.h"
#include "auth/token.h"
#include "domain/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jwt_testing.h"
#include "store/sqlite_store.h"
#include "store/sqlite_token_store.h"
#include "token_testing.h"

namespace timer::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);  // 2023-11-14T22:13:20Z

MATCHER_P2(StatusIs, code, substring, "") {
  *result_listener << "whose status is " << arg.status();
  return arg.status().code() == code &&
         std::string(arg.status().message()).find(substring) != std::string::npos;
}

using ::timer::testing::OpenTokens;
using ::timer::testing::TempDb;

Credentials Bearer(const std::string& token) {
  return Credentials{"Bearer " + token, ""};
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override { tokens_ = OpenTokens(db_.path()); }

  std::string Issue(const std::string& identity,
                    std::optional<absl::Time> expires = std::nullopt) {
    auto issued = IssueToken(*tokens_, identity, expires, "", clock_.Now());
    EXPECT_TRUE(issued.ok()) << issued.status();
    return issued.ok() ? issued->token : "";
  }

  TempDb db_;
  std::unique_ptr<store::TokenStore> tokens_;
  domain::FakeClock clock_{kNow};
  Authenticator& auth() {
    auth_with_tokens_.emplace(tokens_.get(), nullptr, &clock_);
    return *auth_with_tokens_;
  }
  std::optional<Authenticator> auth_with_tokens_;
};

TEST_F(AuthenticatorTest, ValidTokenIsItsIdentity) {
  const std::string token = Issue("alice@example.org", kNow + absl::Hours(2));
  auto p = auth().Authenticate(Bearer(token));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->identity.name, "alice@example.org");
  EXPECT_EQ(p->identity.auth_method, "token");
  EXPECT_EQ(p->expire_time, kNow + absl::Hours(2));
  EXPECT_EQ(p->token_id, ParseToken(token)->token_id);
  // The scheme is case-insensitive (RFC 6750).
  EXPECT_TRUE(auth().Authenticate({"bearer " + token, ""}).ok());
}

TEST_F(AuthenticatorTest, MissingOrMalformedCredentialsAreUnauthenticated) {
  EXPECT_THAT(auth().Authenticate({}),
              StatusIs(absl::StatusCode::kUnauthenticated, "no credentials"));
  EXPECT_THAT(auth().Authenticate({"Basic dXNlcjpwYXNz", ""}),
              StatusIs(absl::StatusCode::kUnauthenticated, "Bearer"));
  EXPECT_THAT(auth().Authenticate(Bearer("tmr_short")),
              StatusIs(absl::StatusCode::kUnauthenticated, "malformed"));
  EXPECT_THAT(auth().Authenticate(Bearer("hunter2")),
              StatusIs(absl::StatusCode::kUnauthenticated, "not a timerd token"));
}

TEST_F(AuthenticatorTest, WrongSecretAndUnknownIdLookTheSame) {
  const std::string token = Issue("alice");
  std::string wrong = token;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  auto bad_secret = auth().Authenticate(Bearer(wrong));
  EXPECT_THAT(bad_secret, StatusIs(absl::StatusCode::kUnauthenticated, "not recognised"));
  std::string unknown = token;
  unknown[4] = unknown[4] == 'a' ? 'b' : 'a';
  auto bad_id = auth().Authenticate(Bearer(unknown));
  EXPECT_EQ(bad_id.status(), bad_secret.status());
  // No message quotes the credential.
  EXPECT_THAT(std::string(bad_secret.status().message()),
              Not(HasSubstr(wrong.substr(4))));
}

TEST_F(AuthenticatorTest, RevokedTokenFailsAtOnceEvenFromAnotherConnection) {
  const std::string token = Issue("alice");
  ASSERT_TRUE(auth().Authenticate(Bearer(token)).ok());
  // `timerd token revoke` runs in another process: another connection.
  auto other = store::SqliteTokenStore::Open(db_.path());
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(
      (*other)->Revoke(ParseToken(token)->token_id, absl::ToUnixMicros(kNow)).ok());
  EXPECT_THAT(auth().Authenticate(Bearer(token)),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       "token: revoked at 2023-11-14T22:13:20Z"));
}

TEST_F(AuthenticatorTest, RevokeEndsTheCallersOwnToken) {
  const std::string token = Issue("alice");
  auto p = auth().Authenticate(Bearer(token));
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(auth().Revoke(*p).ok());
  EXPECT_THAT(auth().Authenticate(Bearer(token)),
              StatusIs(absl::StatusCode::kUnauthenticated, "revoked"));
  // Another token of the same identity still works.
  EXPECT_TRUE(auth().Authenticate(Bearer(Issue("alice"))).ok());
}

TEST_F(AuthenticatorTest, ExpiredTokenFails) {
  const std::string token = Issue("alice", kNow + absl::Hours(1));
  ASSERT_TRUE(auth().Authenticate(Bearer(token)).ok());
  clock_.Advance(absl::Hours(1));
  EXPECT_THAT(auth().Authenticate(Bearer(token)),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       "token: expired at 2023-11-14T23:13:20Z"));
}

TEST_F(AuthenticatorTest, ClientCertificateSubjectIsTheIdentityWithoutAToken) {
  auto p = auth().Authenticate({std::nullopt, "CN=backup-svc,O=Example"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->identity.name, "CN=backup-svc,O=Example");
  EXPECT_EQ(p->identity.auth_method, "mtls");
  EXPECT_THAT(
      auth().Revoke(*p),
      ::testing::Property(&absl::Status::code, absl::StatusCode::kFailedPrecondition));
  // A bearer token, when sent, decides.
  const std::string token = Issue("alice");
  EXPECT_EQ(auth().Authenticate({"Bearer " + token, "CN=backup-svc"})->identity.name,
            "alice");
}

TEST_F(AuthenticatorTest, JwtIsRefusedWhenNotConfigured) {
  auto key = testing::NewRsaKey();
  const std::string jwt = testing::SignJwt(key.get(), {{"sub", "alice"}});
  EXPECT_THAT(auth().Authenticate(Bearer(jwt)),
              StatusIs(absl::StatusCode::kUnauthenticated, "not configured"));
}

TEST_F(AuthenticatorTest, ConfiguredJwtAuthenticates) {
  auto key = testing::NewEcKey();
  JwtOptions options;
  options.issuer = "https://idp.example.org";
  options.audience = "timer";
  auto v = *JwtVerifier::Create(testing::PublicPem(key.get()), "test keys", options);
  ASSERT_NE(v, nullptr);
  Authenticator with_jwt(tokens_.get(), v.get(), &clock_);
  const nlohmann::json claims = {{"iss", "https://idp.example.org"},
                                 {"aud", "timer"},
                                 {"sub", "alice@example.org"},
                                 {"iat", absl::ToUnixSeconds(kNow)},
                                 {"exp", absl::ToUnixSeconds(kNow + absl::Minutes(10))}};
  auto p = with_jwt.Authenticate(Bearer(testing::SignJwt(key.get(), claims)));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->identity.name, "alice@example.org");
  EXPECT_EQ(p->identity.auth_method, "jwt");
  EXPECT_THAT(
      with_jwt.Revoke(*p),
      ::testing::Property(&absl::Status::code, absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace timer::auth
