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
  const nlohmann::json jwks = {
      {"keys",
       {timer::testing::Jwk(k->rsa.get(), "rsa-1"), timer::testing::Jwk(k->ec.get(), "ec-1")}}};
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

// Signs `header`.`claims` as given (not re-serialized), like SignJwt.
std::string Sign(EVP_PKEY* key, bool rsa, const std::string& header, const std::string& claims) {
  using timer::testing::B64Url;
  const std::string input = B64Url(header) + "." + B64Url(claims);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  size_t len = 0;
  std::string sig;
  if (EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestSign(md, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) == 1) {
    sig.resize(len);
    EVP_DigestSign(md, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(len);
  }
  EVP_MD_CTX_free(md);
  if (!rsa) {
    // DER ECDSA-Sig-Value -> JWS r||s.
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(es);
    sig = raw;
  }
  return input + "." + B64Url(sig);
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
    token = Sign(rsa ? keys->rsa.get() : keys->ec.get(), rsa, header, text.substr(newline + 1));
  }
  (void)timer::auth::JwtVerifier::LooksLikeJwt(token);
  absl::StatusOr<timer::auth::JwtClaims> claims = keys->verifier->Verify(token, kNow);
  if (claims.ok() && claims->identity.empty()) {
    std::fprintf(stderr, "Verify accepted a token without an identity\n");
    std::abort();
  }
  return 0;
}
