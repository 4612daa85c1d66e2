// Tests of JWT verification (services/timerd/auth/jwt.cc) with RS256 and
// ES256 keys generated at test time: signatures, claims, dates, key files.
#include "auth/jwt.h"

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "jwt_testing.h"

namespace timer::auth {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);  // 2023-11-14T22:13:20Z

MATCHER_P2(StatusIs, code, substring, "") {
  *result_listener << "whose status is " << arg.status();
  return arg.status().code() == code &&
         std::string(arg.status().message()).find(substring) != std::string::npos;
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
  // No lifetime bound here: the dates themselves are under test.
  auto v =
      Verifier(testing::PublicPem(key.get()), {.max_lifetime = absl::InfiniteDuration()});
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

// An identity from a JWT obeys the rule of issued tokens' identities: a
// newline in `sub` once produced a forged line in timerd's log.
TEST_P(JwtTest, AnIdentityThatIsNotAValidIdentityNameIsRefused) {
  auto key = NewKey();
  auto v = Verifier(testing::PublicPem(key.get()));
  ASSERT_NE(v, nullptr);
  for (const std::string& sub :
       {std::string("mallory\n2026-12-05T11:00:00.000Z timerd info: token of root"),
        std::string("\x1b]0;pwned\x07"), std::string("two words"),
        std::string("caf\xc3\xa9"), std::string(257, 'a')}) {
    auto c = v->Verify(testing::SignJwt(key.get(), Claims(kNow, sub)), kNow);
    EXPECT_THAT(c,
                StatusIs(absl::StatusCode::kUnauthenticated, "sub: not a valid identity"))
        << sub;
    EXPECT_EQ(c.status().message().find(sub), absl::string_view::npos)
        << "the message must not quote the value";
  }
  EXPECT_TRUE(
      v->Verify(testing::SignJwt(key.get(), Claims(kNow, std::string(256, 'a'))), kNow)
          .ok());
}

// timerd cannot revoke a JWT: one valid for longer than the configured
// lifetime (auth.jwt.max_lifetime_seconds) is refused.
TEST_P(JwtTest, ATokenValidForLongerThanTheMaximumLifetimeIsRefused) {
  auto key = NewKey();
  auto v = Verifier(testing::PublicPem(key.get()), {.max_lifetime = absl::Hours(1)});
  ASSERT_NE(v, nullptr);
  const auto verify = [&](absl::Duration exp_after, std::optional<absl::Duration> iat) {
    json claims = Claims(kNow);
    claims["exp"] = absl::ToUnixSeconds(kNow + exp_after);
    if (iat) {
      claims["iat"] = absl::ToUnixSeconds(kNow + *iat);
    } else {
      claims.erase("iat");
    }
    return v->Verify(testing::SignJwt(key.get(), claims), kNow);
  };
  EXPECT_TRUE(verify(absl::Minutes(59), absl::ZeroDuration()).ok());
  EXPECT_TRUE(verify(absl::Minutes(30), -absl::Minutes(30)).ok());
  EXPECT_THAT(verify(absl::Hours(2), absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       "valid for longer than auth.jwt.max_lifetime_seconds (3600)"));
  // Issued long ago and still valid: its lifetime counts from iat.
  EXPECT_THAT(verify(absl::Minutes(10), -absl::Hours(3)),
              StatusIs(absl::StatusCode::kUnauthenticated, "max_lifetime_seconds"));
  // Without iat, from now; an iat in the future does not stretch it.
  EXPECT_TRUE(verify(absl::Minutes(50), std::nullopt).ok());
  EXPECT_THAT(verify(absl::Hours(2), std::nullopt),
              StatusIs(absl::StatusCode::kUnauthenticated, "max_lifetime_seconds"));
  EXPECT_THAT(verify(absl::Hours(2), absl::Hours(1) + absl::Minutes(30)),
              StatusIs(absl::StatusCode::kUnauthenticated, "max_lifetime_seconds"));
  // The default bound is a day.
  auto by_default = Verifier(testing::PublicPem(key.get()));
  json month = Claims(kNow);
  month["exp"] = absl::ToUnixSeconds(kNow + absl::Hours(24 * 30));
  EXPECT_THAT(by_default->Verify(testing::SignJwt(key.get(), month), kNow),
              StatusIs(absl::StatusCode::kUnauthenticated, "max_lifetime_seconds"));
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

}  // namespace
}  // namespace timer::auth
