// Test helpers for TLS: a CA, and certificates it signs for servers and
// clients, made at test time with OpenSSL, as PEM for gRPC's credentials.
// Header-only; used by the unit tests (caller_test, server_test). Not
// thread-safe (serial numbers come from a plain counter); tests make their
// certificates on one thread.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace timer::testing {

struct TlsKeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct TlsCertDeleter {
  void operator()(X509* c) const { X509_free(c); }
};
using TlsKey = std::unique_ptr<EVP_PKEY, TlsKeyDeleter>;
using TlsCert = std::unique_ptr<X509, TlsCertDeleter>;

// A P-256 key and a certificate for it, made at test time.
struct KeyAndCert {
  TlsKey key;
  TlsCert cert;
  std::string cert_pem;
  std::string key_pem;
};

inline std::string ToPem(const std::function<int(BIO*)>& write) {
  BIO* bio = BIO_new(BIO_s_mem());
  write(bio);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

// Subject O=<o>,CN=<cn>, signed by `issuer` (self-signed when null), with
// the given X.509v3 extensions (nid, value).
inline KeyAndCert MakeCert(const std::string& o, const std::string& cn,
                           const KeyAndCert* issuer,
                           const std::vector<std::pair<int, std::string>>& extensions) {
  static long serial = 1;  // Unique per process: one CA may sign several.
  KeyAndCert id;
  id.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  id.cert.reset(X509_new());
  X509* x = id.cert.get();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, id.key.get());
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1,
                             0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert.get()) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer->cert.get() : x, x, nullptr, nullptr, 0);
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext != nullptr) {
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
  }
  X509_sign(x, issuer ? issuer->key.get() : id.key.get(), EVP_sha256());
  id.cert_pem = ToPem([x](BIO* b) { return PEM_write_bio_X509(b, x); });
  EVP_PKEY* key = id.key.get();
  id.key_pem = ToPem([key](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
  return id;
}

inline KeyAndCert MakeCa(const std::string& cn) {
  return MakeCert("Example", cn, nullptr,
                  {{NID_basic_constraints, "critical,CA:TRUE"},
                   {NID_key_usage, "critical,keyCertSign,cRLSign"}});
}

// A certificate `ca` signs for a server at localhost and 127.0.0.1.
inline KeyAndCert MakeServerCert(const KeyAndCert& ca) {
  return MakeCert("Example", "localhost", &ca,
                  {{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                   {NID_ext_key_usage, "serverAuth"}});
}

// A client certificate `ca` signs for O=<o>,CN=<cn>.
inline KeyAndCert MakeClientCert(const KeyAndCert& ca, const std::string& o,
                                 const std::string& cn) {
  return MakeCert(o, cn, &ca, {{NID_ext_key_usage, "clientAuth"}});
}

}  // namespace timer::testing
