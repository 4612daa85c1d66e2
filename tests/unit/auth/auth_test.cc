// Tests of authentication (services/timerd/auth/): issued tokens (the token
// store itself: tests/unit/store/token_store_test.cc), JWT verification with keys
// generated at test time, and the Authenticator that turns credentials into an identity.
// Time is a FakeClock; nothing sleeps.
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
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

namespace timer::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);  // 2023-11-14T22:13:20Z

MATCHER_P2(StatusIs, code, substring, "") {
  *result_listener << "whose status is " << arg.status();
  return arg.status().code() == code &&
         std::string(arg.status().message()).find(substring) != std::string::npos;
}

class TempDb {
 public:
  TempDb() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "timer-auth-XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
  }
  ~TempDb() { std::filesystem::remove_all(dir_); }
  std::string path() const { return dir_ + "/timer.db"; }

 private:
  std::string dir_;
};

// A migrated store's tokens table.
std::unique_ptr<store::TokenStore> OpenTokens(const std::string& path) {
  auto s = store::SqliteStore::Open({.path = path});
  EXPECT_TRUE(s.ok()) << s.status();
  (*s)->Close();
  auto tokens = store::SqliteTokenStore::Open(path);
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  return *std::move(tokens);
}

Credentials Bearer(const std::string& token) {
  return Credentials{"Bearer " + token, ""};
}

TEST(TokenFormatTest, ParsesOnlyWellFormedTokens) {
  const std::string id(16, 'a'), secret(64, '0');
  auto ok = ParseToken("tmr_" + id + "_" + secret);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->token_id, id);
  EXPECT_EQ(ok->secret, secret);
  EXPECT_FALSE(ParseToken("tmr_" + id + "_" + secret.substr(1)).has_value());
  EXPECT_FALSE(ParseToken("tmr_" + id + "-" + secret).has_value());
  EXPECT_FALSE(ParseToken("tmx_" + id + "_" + secret).has_value());
  EXPECT_FALSE(ParseToken("tmr_" + id + "_" + std::string(63, '0') + "G").has_value());
  EXPECT_FALSE(ParseToken("").has_value());
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

// ---- JWT ----

constexpr char kIssuer[] = "https://idp.example.org";
constexpr char kAudience[] = "timer";

json Claims(absl::Time now, const std::string& sub = "alice@example.org") {
  return {{"iss", kIssuer},
          {"aud", kAudience},
          {"sub", sub},
          {"iat", absl::ToUnixSeconds(now)},
          {"exp", absl::ToUnixSeconds(now + absl::Minutes(10))}};
}

std::unique_ptr<JwtVerifier> Verifier(const std::string& keys, JwtOptions options = {}) {
  if (options.issuer.empty()) options.issuer = kIssuer;
  if (options.audience.empty()) options.audience = kAudience;
  auto v = JwtVerifier::Create(keys, "test keys", options);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *std::move(v) : nullptr;
}

class JwtTest : public ::testing::TestWithParam<bool> {
 protected:
  // RS256 or ES256, per the parameter.
  testing::TestKey NewKey() {
    return GetParam() ? testing::NewRsaKey() : testing::NewEcKey();
  }
};

TEST_P(JwtTest, ValidTokenFromPemKeyWorks) {
  auto key = NewKey();
  auto v = Verifier(testing::PublicPem(key.get()));
  ASSERT_NE(v, nullptr);
  auto claims = v->Verify(testing::SignJwt(key.get(), Claims(kNow)), kNow);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->identity, "alice@example.org");
  EXPECT_EQ(claims->expire_time, kNow + absl::Minutes(10));
}

TEST_P(JwtTest, ValidTokenFromJwksWorksAndKidSelectsTheKey) {
  auto key = NewKey();
  auto other = NewKey();
  json jwks = {
      {"keys", {testing::Jwk(other.get(), "old"), testing::Jwk(key.get(), "k1")}}};
  auto v = Verifier(jwks.dump());
  ASSERT_NE(v, nullptr);
  EXPECT_TRUE(v->Verify(testing::SignJwt(key.get(), Claims(kNow), "k1"), kNow).ok());
  EXPECT_TRUE(v->Verify(testing::SignJwt(key.get(), Claims(kNow)), kNow).ok());
  // Signed by `key` but naming the other key's kid: no match.
  EXPECT_THAT(v->Verify(testing::SignJwt(key.get(), Claims(kNow), "old"), kNow),
              StatusIs(absl::StatusCode::kUnauthenticated, "signature"));
}

TEST_P(JwtTest, WrongKeyFails) {
  auto key = NewKey();
  auto attacker = NewKey();
  auto v = Verifier(testing::PublicPem(key.get()));
  ASSERT_NE(v, nullptr);
  EXPECT_THAT(
      v->Verify(testing::SignJwt(attacker.get(), Claims(kNow)), kNow),
      StatusIs(absl::StatusCode::kUnauthenticated, "jwt: signature does not verify"));
}

TEST_P(JwtTest, TamperedClaimsFail) {
  auto key = NewKey();
  auto v = Verifier(testing::PublicPem(key.get()));
  ASSERT_NE(v, nullptr);
  const std::string jwt = testing::SignJwt(key.get(), Claims(kNow));
  const size_t dot1 = jwt.find('.'), dot2 = jwt.rfind('.');
  const std::string forged = jwt.substr(0, dot1 + 1) +
                             testing::B64Url(Claims(kNow, "mallory").dump()) +
                             jwt.substr(dot2);
  EXPECT_THAT(v->Verify(forged, kNow),
              StatusIs(absl::StatusCode::kUnauthenticated, "signature"));
}

TEST_P(JwtTest, ExpiredNotYetValidWrongAudienceOrIssuerFail) {
  auto key = NewKey();
  auto v = Verifier(testing::PublicPem(key.get()));
  ASSERT_NE(v, nullptr);
  const auto verify = [&](json claims) {
    return v->Verify(testing::SignJwt(key.get(), claims), kNow);
  };
  json expired = Claims(kNow - absl::Hours(2));
  EXPECT_THAT(verify(expired),
              StatusIs(absl::StatusCode::kUnauthenticated, "jwt: expired at"));
  // Within the 60 s leeway it still works; beyond it, not.
  json edge = Claims(kNow);
  edge["exp"] = absl::ToUnixSeconds(kNow - absl::Seconds(30));
  EXPECT_TRUE(verify(edge).ok());
  json future = Claims(kNow);
  future["nbf"] = absl::ToUnixSeconds(kNow + absl::Minutes(5));
  EXPECT_THAT(verify(future),
              StatusIs(absl::StatusCode::kUnauthenticated, "not valid before"));
  json wrong_aud = Claims(kNow);
  wrong_aud["aud"] = "some-other-service";
  EXPECT_THAT(verify(wrong_aud), StatusIs(absl::StatusCode::kUnauthenticated, "aud"));
  json aud_list = Claims(kNow);
  aud_list["aud"] = {"other", kAudience};
  EXPECT_TRUE(verify(aud_list).ok());
  json wrong_iss = Claims(kNow);
  wrong_iss["iss"] = "https://evil.example.org";
  EXPECT_THAT(verify(wrong_iss), StatusIs(absl::StatusCode::kUnauthenticated, "iss"));
  json no_exp = Claims(kNow);
  no_exp.erase("exp");
  EXPECT_THAT(verify(no_exp),
              StatusIs(absl::StatusCode::kUnauthenticated, "exp: required"));
  json no_sub = Claims(kNow);
  no_sub.erase("sub");
  EXPECT_THAT(verify(no_sub),
              StatusIs(absl::StatusCode::kUnauthenticated, "sub: required"));
}

// Found by fuzz_jwt (tests/fuzz/regressions/fuzz_jwt/): a signed exp or nbf
// far beyond any real date overflowed the conversion to microseconds
// (undefined behaviour). Such a date is refused.
TEST_P(JwtTest, OutOfRangeDatesAreRefused) {
  auto key = NewKey();
  auto v = Verifier(testing::PublicPem(key.get()));
  ASSERT_NE(v, nullptr);
  const auto verify = [&](json claims) {
    return v->Verify(testing::SignJwt(key.get(), claims), kNow);
  };
  for (double date : {1e300, -1e300, 9.3e12, -9.3e12, 253402300800.0}) {
    json exp = Claims(kNow);
    exp["exp"] = date;
    EXPECT_THAT(verify(exp),
                StatusIs(absl::StatusCode::kUnauthenticated, "exp: out of range"))
        << date;
    json nbf = Claims(kNow);
    nbf["nbf"] = date;
    EXPECT_THAT(verify(nbf),
                StatusIs(absl::StatusCode::kUnauthenticated, "nbf: out of range"))
        << date;
  }
  // The last second of year 9999 is still a date.
  json far = Claims(kNow);
  far["exp"] = 253402300799.0;
  EXPECT_TRUE(verify(far).ok());
}

TEST_P(JwtTest, IdentityClaimIsConfigurable) {
  auto key = NewKey();
  auto v = Verifier(testing::PublicPem(key.get()), {.identity_claim = "email"});
  ASSERT_NE(v, nullptr);
  json claims = Claims(kNow, "00u1abcd");
  claims["email"] = "alice@example.org";
  auto c = v->Verify(testing::SignJwt(key.get(), claims), kNow);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->identity, "alice@example.org");
}

INSTANTIATE_TEST_SUITE_P(Rs256AndEs256, JwtTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "RS256" : "ES256"; });

TEST(JwtAlgTest, UnsignedAndHmacTokensAreRefused) {
  auto key = testing::NewRsaKey();
  auto v = Verifier(testing::PublicPem(key.get()));
  ASSERT_NE(v, nullptr);
  const std::string payload = testing::B64Url(Claims(kNow).dump());
  for (const char* alg : {"none", "HS256"}) {
    const std::string jwt =
        testing::B64Url(json{{"alg", alg}}.dump()) + "." + payload + ".c2ln";
    EXPECT_THAT(v->Verify(jwt, kNow), StatusIs(absl::StatusCode::kUnauthenticated, "alg"))
        << alg;
  }
  // An ES256 header over an RSA-only key set verifies with nothing.
  auto ec = testing::NewEcKey();
  EXPECT_THAT(v->Verify(testing::SignJwt(ec.get(), Claims(kNow)), kNow),
              StatusIs(absl::StatusCode::kUnauthenticated, "signature"));
}

TEST(JwtKeysTest, BadKeyFilesAreRefusedWithTheirOrigin) {
  EXPECT_THAT(JwtVerifier::Create("not a key", "keys.pem", {kIssuer, kAudience}),
              StatusIs(absl::StatusCode::kInvalidArgument, "keys.pem: no RSA or EC"));
  EXPECT_THAT(JwtVerifier::Create("{\"keys\": 3}", "jwks.json", {kIssuer, kAudience}),
              StatusIs(absl::StatusCode::kInvalidArgument, "jwks.json"));
  auto key = testing::NewRsaKey();
  EXPECT_THAT(JwtVerifier::Create(testing::PublicPem(key.get()), "k", {kIssuer, ""}),
              StatusIs(absl::StatusCode::kInvalidArgument, "audience"));
}

TEST(JwtBase64Test, DecodesUrlAlphabetWithoutPadding) {
  EXPECT_EQ(JwtVerifier::Base64UrlDecode("aGk"), "hi");
  EXPECT_EQ(JwtVerifier::Base64UrlDecode("-_8"), std::string("\xfb\xff", 2));
  EXPECT_FALSE(JwtVerifier::Base64UrlDecode("aGk=").has_value());
  EXPECT_FALSE(JwtVerifier::Base64UrlDecode("a+b/").has_value());
  EXPECT_FALSE(JwtVerifier::Base64UrlDecode("a").has_value());
  EXPECT_EQ(JwtVerifier::Base64UrlEncode("\xfb\xff"), "-_8");
}

TEST_F(AuthenticatorTest, ConfiguredJwtAuthenticates) {
  auto key = testing::NewEcKey();
  auto v = Verifier(testing::PublicPem(key.get()));
  ASSERT_NE(v, nullptr);
  Authenticator with_jwt(tokens_.get(), v.get(), &clock_);
  auto p = with_jwt.Authenticate(Bearer(testing::SignJwt(key.get(), Claims(kNow))));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->identity.name, "alice@example.org");
  EXPECT_EQ(p->identity.auth_method, "jwt");
  EXPECT_THAT(
      with_jwt.Revoke(*p),
      ::testing::Property(&absl::Status::code, absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace timer::auth
