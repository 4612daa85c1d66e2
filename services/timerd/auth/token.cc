#include "auth/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace timer::auth {
namespace {

constexpr absl::string_view kPrefix = "tmr_";
constexpr size_t kIdBytes = 8;
constexpr size_t kSecretBytes = 32;

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<std::string> RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) !=
      1) {
    return absl::InternalError("token: the random number generator failed");
  }
  return absl::BytesToHexString(raw);
}

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

}  // namespace

std::optional<ParsedToken> ParseToken(absl::string_view token) {
  if (!absl::StartsWith(token, kPrefix)) return std::nullopt;
  token.remove_prefix(kPrefix.size());
  if (token.size() != 2 * kIdBytes + 1 + 2 * kSecretBytes || token[2 * kIdBytes] != '_') {
    return std::nullopt;
  }
  absl::string_view id = token.substr(0, 2 * kIdBytes);
  absl::string_view secret = token.substr(2 * kIdBytes + 1);
  if (!IsLowerHex(id) || !IsLowerHex(secret)) return std::nullopt;
  return ParsedToken{std::string(id), std::string(secret)};
}

std::string Sha256(absl::string_view data) {
  // Fetched once: OpenSSL 3 otherwise looks the implementation up (under a
  // lock) on every digest, which every authenticated call makes.
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len,
             kSha256 != nullptr ? kSha256 : EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

bool SecretMatches(const ParsedToken& token, absl::string_view stored_sha256) {
  const std::string digest = Sha256(token.secret);
  if (stored_sha256.size() != digest.size()) return false;
  return CRYPTO_memcmp(digest.data(), stored_sha256.data(), digest.size()) == 0;
}

absl::Status ValidateIdentityName(absl::string_view name) {
  if (name.empty() || name.size() > 256) {
    return absl::InvalidArgumentError("identity: must be 1 to 256 characters");
  }
  for (char c : name) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          "identity: only printable ASCII characters without spaces");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<IssuedToken> IssueToken(store::TokenStore& tokens,
                                       const std::string& identity,
                                       std::optional<absl::Time> expires,
                                       const std::string& description, absl::Time now) {
  if (absl::Status s = ValidateIdentityName(identity); !s.ok()) return s;
  if (expires && *expires <= now) {
    return absl::InvalidArgumentError("expires: must be in the future");
  }
  absl::StatusOr<std::string> id = RandomHex(kIdBytes);
  if (!id.ok()) return id.status();
  absl::StatusOr<std::string> secret = RandomHex(kSecretBytes);
  if (!secret.ok()) return secret.status();
  IssuedToken out;
  out.token = absl::StrCat(kPrefix, *id, "_", *secret);
  out.record.token_id = *id;
  out.record.identity = identity;
  out.record.secret_sha256 = Sha256(*secret);
  out.record.create_us = Micros(now);
  if (expires) out.record.expire_us = Micros(*expires);
  out.record.description = description;
  if (absl::Status s = tokens.Insert(out.record); !s.ok()) return s;
  OPENSSL_cleanse(secret->data(), secret->size());
  return out;
}

}  // namespace timer::auth
