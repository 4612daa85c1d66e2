// JwtVerifier: checks JSON Web Tokens (RFC 7519) from an OpenID Connect
// identity provider, so timerd can sit behind one.
//
// Accepts compact JWS tokens signed with RS256 (RSA PKCS#1 v1.5 + SHA-256)
// or ES256 (ECDSA P-256 + SHA-256) by one of the configured public keys: a
// JWKS document (`{"keys": [...]}`, RSA `n`/`e` or EC P-256 `x`/`y`, matched
// by `kid` when the token names one) or PEM public keys. OpenSSL's EVP API
// does every cryptographic step. After the signature, the claims: `exp` is
// required and `nbf` honoured (both with `leeway`), `iss` must equal
// `issuer` and `aud` (a string or an array) must contain `audience`. A
// token valid for longer than `max_lifetime` (exp - iat, or exp - now
// without iat) is refused: timerd cannot revoke a JWT, so its lifetime must
// be short. The identity is the string claim `identity_claim` (default
// `sub`) and must obey the rule of issued tokens' identities
// (ValidateIdentityName in auth/token.h: 1 to 256 printable ASCII
// characters, no spaces), so no newline or escape sequence reaches a log
// line or a terminal through it.
//
// Errors are UNAUTHENTICATED and never quote the token. Immutable after
// creation; thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace timer::auth {

struct JwtOptions {
  std::string issuer;    // Required.
  std::string audience;  // Required.
  std::string identity_claim = "sub";
  absl::Duration leeway = absl::Seconds(60);
  absl::Duration max_lifetime = absl::Hours(24);
};

struct JwtClaims {
  std::string identity;
  absl::Time expire_time;
};

class JwtVerifier {
 public:
  // `keys` is the text of a JWKS document or of one or more PEM public keys;
  // `origin` names it in errors. INVALID_ARGUMENT if no usable key is found.
  static absl::StatusOr<std::unique_ptr<JwtVerifier>> Create(absl::string_view keys,
                                                             absl::string_view origin,
                                                             JwtOptions options);
  ~JwtVerifier();

  absl::StatusOr<JwtClaims> Verify(absl::string_view jwt, absl::Time now) const;

  // true if `bearer` has the shape of a compact JWS (three dot-separated parts).
  static bool LooksLikeJwt(absl::string_view bearer);

  // base64url without padding (RFC 7515 section 2), exposed for tests.
  static std::optional<std::string> Base64UrlDecode(absl::string_view in);
  static std::string Base64UrlEncode(absl::string_view in);

 private:
  struct Key;
  explicit JwtVerifier(JwtOptions options);
  JwtOptions options_;
  std::vector<std::unique_ptr<Key>> keys_;
};

}  // namespace timer::auth
