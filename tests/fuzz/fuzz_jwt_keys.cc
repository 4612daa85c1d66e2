// Fuzzes the JWT key file ([auth.jwt] keys_file): a JWKS document or PEM
// public keys, through timer::auth::JwtVerifier::Create, then checks one
// fixed token against whatever keys were loaded.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "auth/jwt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // {"alg":"ES256","kid":"k1"} . {"sub":"alice","exp":1800000000} . 64 zero bytes
  static const char kToken[] =
      "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MTgwMDAwMDAwMH0."
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
      "AAAA";
  timer::auth::JwtOptions options;
  options.issuer = "https://idp.example.org";
  options.audience = "timer";
  auto verifier = timer::auth::JwtVerifier::Create(
      absl::string_view(reinterpret_cast<const char*>(data), size), "keys_file", options);
  if (!verifier.ok()) return 0;
  (void)(*verifier)->Verify(kToken, absl::FromUnixSeconds(1790000000));
  return 0;
}
