// Fuzzes JWT verification (timer::auth::JwtVerifier::Verify) with a
// verifier holding an RSA and an EC P-256 key made at start-up.
//
// Two kinds of input:
//   - one line (no '\n'): the bearer token itself, as a client sends it;
//     parsing stops at the signature, which a mutated token never has;
//   - "HEADER\nCLAIMS": two JSON texts that the target encodes and signs
//     with the RSA key when HEADER mentions RS256, else with the EC key, so
//     the fuzzer reaches everything after the signature (claims, exp, nbf,
//     iss, aud, the identity claim).
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "auth/jwt.h"
#include "jwt_testing.h"

namespace {

struct Keys {
  timer::testing::TestKey rsa = timer::testing::NewRsaKey();
  timer::testing::TestKey ec = timer::testing::NewEcKey();
  std::unique_ptr<timer::auth::JwtVerifier> verifier;
};

Keys* MakeKeys() {
  auto* k = new Keys;
  const nlohmann::json jwks = {{"keys",
                                {timer::testing::Jwk(k->rsa.get(), "rsa-1"),
                                 timer::testing::Jwk(k->ec.get(), "ec-1")}}};
  timer::auth::JwtOptions options;
  options.issuer = "https://idp.example.org";
  options.audience = "timer";
  auto v = timer::auth::JwtVerifier::Create(jwks.dump(), "jwks.json", options);
  if (!v.ok()) {
    std::fprintf(stderr, "%s\n", std::string(v.status().message()).c_str());
    std::abort();
  }
  k->verifier = *std::move(v);
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Keys* keys = MakeKeys();
  static const absl::Time kNow = absl::FromUnixSeconds(1790000000);
  const std::string text(reinterpret_cast<const char*>(data), size);
  const size_t newline = text.find('\n');
  std::string token;
  if (newline == std::string::npos) {
    token = text;
  } else {
    const std::string header = text.substr(0, newline);
    const bool rsa = header.find("RS256") != std::string::npos;
    token = timer::testing::SignJwtText(rsa ? keys->rsa.get() : keys->ec.get(), header,
                                        text.substr(newline + 1));
  }
  (void)timer::auth::JwtVerifier::LooksLikeJwt(token);
  absl::StatusOr<timer::auth::JwtClaims> claims = keys->verifier->Verify(token, kNow);
  if (claims.ok() && claims->identity.empty()) {
    std::fprintf(stderr, "Verify accepted a token without an identity\n");
    std::abort();
  }
  return 0;
}
