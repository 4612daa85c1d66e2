#include "auth/authenticator.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "auth/token.h"

namespace timer::auth {
namespace {

std::string UtcString(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<Principal> Authenticator::Authenticate(
    const Credentials& credentials) const {
  if (credentials.authorization) {
    absl::string_view value = *credentials.authorization;
    // RFC 6750: the scheme is case-insensitive.
    if (value.size() < 7 || !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) {
      return absl::UnauthenticatedError("authorization: expected \"Bearer TOKEN\"");
    }
    const std::string bearer(absl::StripAsciiWhitespace(value.substr(7)));
    if (absl::StartsWith(bearer, "tmr_")) return FromToken(bearer);
    if (JwtVerifier::LooksLikeJwt(bearer)) {
      if (jwt_ == nullptr) {
        return absl::UnauthenticatedError(
            "jwt: this timerd is not configured to accept JWTs ([auth.jwt])");
      }
      absl::StatusOr<JwtClaims> claims = jwt_->Verify(bearer, clock_->Now());
      if (!claims.ok()) return claims.status();
      return Principal{{claims->identity, "jwt"}, claims->expire_time, ""};
    }
    return absl::UnauthenticatedError("token: not a timerd token or a JWT");
  }
  if (!credentials.peer_subject.empty()) {
    return Principal{{credentials.peer_subject, "mtls"}, std::nullopt, ""};
  }
  return absl::UnauthenticatedError(
      "no credentials: send \"authorization: Bearer TOKEN\" (timer session login) "
      "or a client certificate");
}

absl::StatusOr<Principal> Authenticator::FromToken(const std::string& bearer) const {
  const std::optional<ParsedToken> parsed = ParseToken(bearer);
  if (!parsed) return absl::UnauthenticatedError("token: malformed");
  absl::StatusOr<std::optional<store::TokenRecord>> found =
      tokens_->Find(parsed->token_id);
  if (!found.ok()) {
    return absl::UnavailableError("token: the token store cannot be read");
  }
  // An unknown id and a wrong secret look the same to the caller.
  if (!*found || !SecretMatches(*parsed, (*found)->secret_sha256)) {
    return absl::UnauthenticatedError("token: not recognised");
  }
  const store::TokenRecord& t = **found;
  if (t.revoke_us) {
    return absl::UnauthenticatedError(absl::StrCat(
        "token: revoked at ", UtcString(absl::FromUnixMicros(*t.revoke_us))));
  }
  std::optional<absl::Time> expires;
  if (t.expire_us) {
    expires = absl::FromUnixMicros(*t.expire_us);
    if (clock_->Now() >= *expires) {
      return absl::UnauthenticatedError(
          absl::StrCat("token: expired at ", UtcString(*expires)));
    }
  }
  return Principal{{t.identity, "token"}, expires, t.token_id};
}

absl::Status Authenticator::Revoke(const Principal& principal) const {
  if (principal.token_id.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("this session uses ",
                     principal.identity.auth_method == "jwt"
                         ? "a JWT, which its identity provider must revoke"
                         : "a client certificate, which its CA must revoke",
                     "; timerd can only revoke the tokens it issued"));
  }
  return tokens_->Revoke(principal.token_id, absl::ToUnixMicros(clock_->Now()));
}

}  // namespace timer::auth
