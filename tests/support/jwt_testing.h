// Test helpers for JWTs: key pairs made at test time with OpenSSL, their
// public halves as PEM or JWKS, and compact JWS tokens signed with them.
// Header-only; used by the unit and the end-to-end tests. Not thread-safe
// per key (OpenSSL keys are, but tests use one thread).
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace timer::testing {

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using TestKey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

inline std::string B64Url(const std::string& in) {
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

// A fresh RSA-2048 key pair.
inline TestKey NewRsaKey() {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  if (k == nullptr) throw std::runtime_error("RSA keygen failed");
  return TestKey(k);
}

// A fresh EC P-256 key pair.
inline TestKey NewEcKey() {
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (k == nullptr) throw std::runtime_error("EC keygen failed");
  return TestKey(k);
}

inline std::string PublicPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

inline std::string BnBytes(EVP_PKEY* key, const char* param, int pad_to = 0) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &bn) != 1) throw std::runtime_error(param);
  std::string out(pad_to > 0 ? pad_to : BN_num_bytes(bn), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()),
               static_cast<int>(out.size()));
  BN_free(bn);
  return out;
}

// The public key as one JWK.
inline nlohmann::json Jwk(EVP_PKEY* key, const std::string& kid) {
  if (EVP_PKEY_is_a(key, "RSA")) {
    return {{"kty", "RSA"},
            {"kid", kid},
            {"use", "sig"},
            {"alg", "RS256"},
            {"n", B64Url(BnBytes(key, OSSL_PKEY_PARAM_RSA_N))},
            {"e", B64Url(BnBytes(key, OSSL_PKEY_PARAM_RSA_E))}};
  }
  return {{"kty", "EC"},
          {"kid", kid},
          {"crv", "P-256"},
          {"alg", "ES256"},
          {"x", B64Url(BnBytes(key, OSSL_PKEY_PARAM_EC_PUB_X, 32))},
          {"y", B64Url(BnBytes(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
}

// A compact JWS over header and claims given as text (any bytes, for
// fuzzing): RS256 for an RSA key, ES256 for an EC key.
inline std::string SignJwtText(EVP_PKEY* key, const std::string& header,
                               const std::string& claims) {
  const bool rsa = EVP_PKEY_is_a(key, "RSA");
  const std::string input = B64Url(header) + "." + B64Url(claims);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  size_t len = 0;
  std::string sig;
  if (EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestSign(md, nullptr, &len,
                     reinterpret_cast<const unsigned char*>(input.data()),
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
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32,
                 32);
    ECDSA_SIG_free(es);
    sig = raw;
  }
  return input + "." + B64Url(sig);
}

// A compact JWS: RS256 for an RSA key, ES256 for an EC key.
inline std::string SignJwt(EVP_PKEY* key, const nlohmann::json& claims,
                           const std::string& kid = "") {
  nlohmann::json header = {{"alg", EVP_PKEY_is_a(key, "RSA") ? "RS256" : "ES256"},
                           {"typ", "JWT"}};
  if (!kid.empty()) header["kid"] = kid;
  return SignJwtText(key, header.dump(), claims.dump());
}

}  // namespace timer::testing
