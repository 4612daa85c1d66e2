#include "auth/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "auth/token.h"

namespace timer::auth {
namespace {

using json = nlohmann::json;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

absl::Status Unauthenticated(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("jwt: ", why));
}

std::string UtcString(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// A public key from PEM text; the whole text may hold several.
std::vector<Pkey> ReadPemKeys(absl::string_view text) {
  std::vector<Pkey> keys;
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  if (bio == nullptr) return keys;
  while (EVP_PKEY* k = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr)) {
    keys.emplace_back(k);
  }
  BIO_free(bio);
  return keys;
}

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};

// An EVP_PKEY from OSSL_PARAMs built by `build`.
template <typename Build>
Pkey FromParams(const char* type, Build build) {
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (bld == nullptr) return nullptr;
  Pkey out;
  if (build(bld)) {
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
    EVP_PKEY* pkey = nullptr;
    if (params != nullptr && ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
      out.reset(pkey);
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
  }
  OSSL_PARAM_BLD_free(bld);
  return out;
}

std::string JsonString(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool IsEc(EVP_PKEY* k) { return EVP_PKEY_is_a(k, "EC") == 1; }
bool IsRsa(EVP_PKEY* k) { return EVP_PKEY_is_a(k, "RSA") == 1; }

bool IsP256(EVP_PKEY* k) {
  char group[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(k, group, sizeof(group), &len) != 1) return false;
  const std::string g(group, len);
  return g == "prime256v1" || g == "P-256" || g == "secp256r1";
}

// A JWS ES256 signature is r||s, 32 bytes each; OpenSSL wants DER.
std::optional<std::string> EcdsaRawToDer(absl::string_view raw) {
  if (raw.size() != 64) return std::nullopt;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (sig == nullptr) return std::nullopt;
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s =
      BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  if (r == nullptr || s == nullptr || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (len <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), len);
  OPENSSL_free(der);
  return out;
}

bool VerifySha256(EVP_PKEY* key, absl::string_view data, absl::string_view sig) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  if (md == nullptr) return false;
  const bool ok =
      EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(data.data()),
                       data.size()) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

// The largest NumericDate magnitude taken: 9999-12-31T23:59:59Z. Beyond it
// no clock will ever get, and from about 9.2e12 s the conversion to int64
// microseconds below would overflow (undefined behaviour).
constexpr double kMaxNumericDate = 253402300799.0;

// A NumericDate claim (seconds since the epoch, possibly fractional):
// nullopt when absent (or not a number), UNAUTHENTICATED when out of range.
absl::StatusOr<std::optional<absl::Time>> NumericDate(const json& claims,
                                                      const char* key) {
  auto it = claims.find(key);
  if (it == claims.end() || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  if (!(std::fabs(v) <= kMaxNumericDate)) {
    return Unauthenticated(absl::StrCat(key, ": out of range"));
  }
  return absl::FromUnixMicros(static_cast<int64_t>(v * 1e6));
}

}  // namespace

struct JwtVerifier::Key {
  std::string kid;  // Empty for PEM keys.
  std::string alg;  // The JWK's "alg", if it named one.
  Pkey pkey;
};

JwtVerifier::JwtVerifier(JwtOptions options) : options_(std::move(options)) {}
JwtVerifier::~JwtVerifier() = default;

std::optional<std::string> JwtVerifier::Base64UrlDecode(absl::string_view in) {
  std::string b64;
  b64.reserve(in.size() + 3);
  for (char c : in) {
    if (c == '-') {
      b64.push_back('+');
    } else if (c == '_') {
      b64.push_back('/');
    } else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
               (c >= '0' && c <= '9')) {
      b64.push_back(c);
    } else {
      return std::nullopt;  // Padding, '+' and '/' are not base64url.
    }
  }
  if (b64.size() % 4 == 1) return std::nullopt;
  size_t pad = 0;
  while (b64.size() % 4 != 0) b64.push_back('='), ++pad;
  std::string out(b64.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string JwtVerifier::Base64UrlEncode(absl::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(n);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

bool JwtVerifier::LooksLikeJwt(absl::string_view bearer) {
  return std::count(bearer.begin(), bearer.end(), '.') == 2;
}

absl::StatusOr<std::unique_ptr<JwtVerifier>> JwtVerifier::Create(absl::string_view text,
                                                                 absl::string_view origin,
                                                                 JwtOptions options) {
  if (options.issuer.empty() || options.audience.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": issuer and audience are both required"));
  }
  if (options.identity_claim.empty()) options.identity_claim = "sub";
  std::unique_ptr<JwtVerifier> v(new JwtVerifier(std::move(options)));
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", why));
  };
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != absl::string_view::npos && text[first] == '{') {
    json jwks =
        json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (!jwks.is_object() || !jwks.contains("keys") || !jwks["keys"].is_array()) {
      return bad("not a JWKS document (an object with a \"keys\" array)");
    }
    for (const json& jwk : jwks["keys"]) {
      if (!jwk.is_object()) return bad("keys: every key must be an object");
      const std::string kty = JsonString(jwk, "kty");
      const std::string use = JsonString(jwk, "use");
      if (!use.empty() && use != "sig") continue;  // Encryption keys are not ours.
      auto key = std::make_unique<Key>();
      key->kid = JsonString(jwk, "kid");
      key->alg = JsonString(jwk, "alg");
      if (kty == "RSA") {
        auto n = Base64UrlDecode(JsonString(jwk, "n"));
        auto e = Base64UrlDecode(JsonString(jwk, "e"));
        if (!n || !e || n->empty() || e->empty()) return bad("an RSA key needs n and e");
        // The builder refers to the numbers until FromParams has made the key.
        std::unique_ptr<BIGNUM, BnFree> bn(BN_bin2bn(
            reinterpret_cast<const unsigned char*>(n->data()), n->size(), nullptr));
        std::unique_ptr<BIGNUM, BnFree> be(BN_bin2bn(
            reinterpret_cast<const unsigned char*>(e->data()), e->size(), nullptr));
        if (bn && be) {
          key->pkey = FromParams("RSA", [&](OSSL_PARAM_BLD* bld) {
            return OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn.get()) &&
                   OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be.get());
          });
        }
      } else if (kty == "EC") {
        if (JsonString(jwk, "crv") != "P-256") continue;  // Only ES256 is accepted.
        auto x = Base64UrlDecode(JsonString(jwk, "x"));
        auto y = Base64UrlDecode(JsonString(jwk, "y"));
        if (!x || !y || x->size() != 32 || y->size() != 32) {
          return bad("an EC P-256 key needs 32-byte x and y");
        }
        const std::string point = absl::StrCat("\x04", *x, *y);
        key->pkey = FromParams("EC", [&](OSSL_PARAM_BLD* bld) {
          return OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                                 "prime256v1", 0) &&
                 OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                                  point.data(), point.size());
        });
      } else {
        continue;  // Other key types cannot verify RS256 or ES256.
      }
      if (key->pkey == nullptr) {
        return bad(absl::StrCat("key \"", key->kid, "\" could not be loaded"));
      }
      v->keys_.push_back(std::move(key));
    }
  } else {
    for (Pkey& pkey : ReadPemKeys(text)) {
      if (!IsRsa(pkey.get()) && !(IsEc(pkey.get()) && IsP256(pkey.get()))) continue;
      auto key = std::make_unique<Key>();
      key->pkey = std::move(pkey);
      v->keys_.push_back(std::move(key));
    }
  }
  if (v->keys_.empty()) {
    return bad(
        "no RSA or EC P-256 public key found (expected a JWKS document or "
        "PEM public keys)");
  }
  return v;
}

absl::StatusOr<JwtClaims> JwtVerifier::Verify(absl::string_view jwt,
                                              absl::Time now) const {
  std::vector<absl::string_view> parts = absl::StrSplit(jwt, '.');
  if (parts.size() != 3) return Unauthenticated("malformed token");
  auto header_text = Base64UrlDecode(parts[0]);
  auto payload_text = Base64UrlDecode(parts[1]);
  auto signature = Base64UrlDecode(parts[2]);
  if (!header_text || !payload_text || !signature)
    return Unauthenticated("malformed token");
  json header = json::parse(*header_text, nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return Unauthenticated("malformed header");
  const std::string alg = JsonString(header, "alg");
  if (alg != "RS256" && alg != "ES256") {
    return Unauthenticated("alg must be RS256 or ES256");
  }
  if (header.contains("crit"))
    return Unauthenticated("critical header extensions are not supported");
  const std::string kid = JsonString(header, "kid");

  std::string der;
  absl::string_view sig = *signature;
  if (alg == "ES256") {
    auto converted = EcdsaRawToDer(*signature);
    if (!converted) return Unauthenticated("signature does not verify");
    der = *std::move(converted);
    sig = der;
  }
  const absl::string_view signed_part =
      jwt.substr(0, parts[0].size() + 1 + parts[1].size());
  bool verified = false;
  for (const auto& key : keys_) {
    if (!kid.empty() && !key->kid.empty() && key->kid != kid) continue;
    if (!key->alg.empty() && key->alg != alg) continue;
    if (alg == "RS256" ? !IsRsa(key->pkey.get()) : !IsEc(key->pkey.get())) continue;
    if (VerifySha256(key->pkey.get(), signed_part, sig)) {
      verified = true;
      break;
    }
  }
  if (!verified)
    return Unauthenticated("signature does not verify with any configured key");

  json claims = json::parse(*payload_text, nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) return Unauthenticated("malformed claims");
  const absl::StatusOr<std::optional<absl::Time>> exp_claim = NumericDate(claims, "exp");
  if (!exp_claim.ok()) return exp_claim.status();
  const std::optional<absl::Time> exp = *exp_claim;
  if (!exp) return Unauthenticated("exp: required");
  if (now >= *exp + options_.leeway) {
    return Unauthenticated(absl::StrCat("expired at ", UtcString(*exp)));
  }
  const absl::StatusOr<std::optional<absl::Time>> iat = NumericDate(claims, "iat");
  if (!iat.ok()) return iat.status();
  // Without iat, what is left of it from now.
  const absl::Time issued = *iat ? std::min(**iat, now) : now;
  if (*exp - issued > options_.max_lifetime) {
    return Unauthenticated(
        absl::StrCat("valid for longer than auth.jwt.max_lifetime_seconds (",
                     absl::ToInt64Seconds(options_.max_lifetime), ")"));
  }
  const absl::StatusOr<std::optional<absl::Time>> nbf = NumericDate(claims, "nbf");
  if (!nbf.ok()) return nbf.status();
  if (*nbf && now + options_.leeway < **nbf) {
    return Unauthenticated(absl::StrCat("not valid before ", UtcString(**nbf)));
  }
  if (JsonString(claims, "iss") != options_.issuer) {
    return Unauthenticated("iss: not the configured issuer");
  }
  bool audience_ok = false;
  if (auto aud = claims.find("aud"); aud != claims.end()) {
    if (aud->is_string()) audience_ok = aud->get<std::string>() == options_.audience;
    if (aud->is_array()) {
      for (const json& a : *aud) {
        if (a.is_string() && a.get<std::string>() == options_.audience)
          audience_ok = true;
      }
    }
  }
  if (!audience_ok)
    return Unauthenticated("aud: does not include this service's audience");
  const std::string identity = JsonString(claims, options_.identity_claim.c_str());
  if (identity.empty()) {
    return Unauthenticated(
        absl::StrCat(options_.identity_claim, ": required (a string)"));
  }
  // The identity of an issued token obeys this rule; a JWT's must too, since
  // it is logged and shown like one. The message never quotes the value.
  if (absl::Status valid = ValidateIdentityName(identity); !valid.ok()) {
    return Unauthenticated(
        absl::StrCat(options_.identity_claim,
                     ": not a valid identity (1 to 256 printable ASCII characters "
                     "without spaces)"));
  }
  return JwtClaims{identity, *exp};
}

}  // namespace timer::auth
