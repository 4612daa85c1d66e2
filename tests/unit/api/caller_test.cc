// Tests of api/caller.h: CallerOf reads a call's credentials from its server
// context (the authorization metadata; the verified client certificate's
// subject over mutual TLS) and refuses a call whose deadline has already
// passed. Driven by a probe service (SessionService.WhoAmI, answered with
// CallerOf alone) in a gRPC server on 127.0.0.1:0, so the contexts are the
// ones gRPC makes; the TLS certificates are made at test time.

#include "api/caller.h"

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/status.h"
#include "auth/authenticator.h"
#include "auth/token.h"
#include "domain/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/sqlite_store.h"
#include "store/token_store.h"
#include "timer/v1/session.grpc.pb.h"

namespace timer::api {
namespace {

using ::testing::HasSubstr;

constexpr std::chrono::seconds kRpcTimeout(20);
constexpr absl::Duration kWait = absl::Seconds(20);

// Answers WhoAmI with what CallerOf made of the call and keeps it. With
// `late` set, answers on a thread of its own once the call's deadline has
// passed, as a server too busy to get to it in time would.
class ProbeService final : public v1::SessionService::CallbackService {
 public:
  explicit ProbeService(const auth::Authenticator* auth) : auth_(auth) {}
  ~ProbeService() override { JoinAll(); }

  void set_late(bool late) { late_ = late; }

  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* ctx, const v1::WhoAmIRequest*,
                                   v1::WhoAmIResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!late_) {
      Answer(ctx, reactor, response);
      return reactor;
    }
    absl::MutexLock lock(&mu_);
    threads_.emplace_back([this, ctx, reactor, response] {
      // Waits for the deadline itself: the condition this case is about.
      absl::Notification never;
      never.WaitForNotificationWithDeadline(absl::FromChrono(ctx->deadline()) +
                                            absl::Milliseconds(1));
      Answer(ctx, reactor, response);
    });
    return reactor;
  }

  // What CallerOf returned for the next call, once it has been answered.
  std::optional<absl::StatusOr<auth::Principal>> AwaitAnswer() {
    absl::MutexLock lock(&mu_);
    const auto answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !answers_.empty();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&answered), kWait)) return std::nullopt;
    absl::StatusOr<auth::Principal> first = answers_.front();
    answers_.erase(answers_.begin());
    return first;
  }

  void JoinAll() {
    std::vector<std::thread> threads;
    {
      absl::MutexLock lock(&mu_);
      threads.swap(threads_);
    }
    for (std::thread& t : threads) t.join();
  }

 private:
  void Answer(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
              v1::WhoAmIResponse* response) {
    absl::StatusOr<auth::Principal> caller = CallerOf(*auth_, ctx);
    if (caller.ok()) {
      response->set_identity(caller->identity.name);
      response->set_auth_method(caller->identity.auth_method);
    }
    {
      absl::MutexLock lock(&mu_);
      answers_.push_back(caller);
    }
    reactor->Finish(ToGrpcStatus(caller.status()));
  }

  const auth::Authenticator* const auth_;
  std::atomic<bool> late_{false};  // Set by the test, read on gRPC's threads.
  absl::Mutex mu_;
  std::vector<absl::StatusOr<auth::Principal>> answers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

std::string MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "caller_test.XXXXXX").string();
  const char* made = ::mkdtemp(tmpl.data());
  return made == nullptr ? std::string() : std::string(made);
}

class CallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    const std::string db = dir_ + "/timer.db";
    auto store = store::SqliteStore::Open(
        {.path = db, .checkpoint_interval = absl::InfiniteDuration()});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto tokens = store::TokenStore::Open(db);
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = *std::move(tokens);
    auto issued = auth::IssueToken(*tokens_, "alice", std::nullopt, "test", clock_.Now());
    ASSERT_TRUE(issued.ok()) << issued.status();
    token_ = issued->token;
    authenticator_ = std::make_unique<auth::Authenticator>(tokens_.get(), nullptr, &clock_);
    probe_ = std::make_unique<ProbeService>(authenticator_.get());

    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", ServerCredentials(), &port);
    builder.RegisterService(probe_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    port_ = port;
    stub_ = v1::SessionService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (probe_ != nullptr) probe_->JoinAll();
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
      server_->Wait();
    }
    if (store_ != nullptr) store_->Close();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // Calls the probe with `authorization` (none if nullopt) and returns what
  // the client saw.
  // Plaintext, unless a fixture says otherwise.
  virtual std::shared_ptr<grpc::ServerCredentials> ServerCredentials() {
    return grpc::InsecureServerCredentials();
  }

  grpc::Status Call(std::optional<std::string> authorization,
                    std::chrono::milliseconds timeout = kRpcTimeout) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    if (authorization) ctx.AddMetadata("authorization", *authorization);
    v1::WhoAmIResponse response;
    return stub_->WhoAmI(&ctx, v1::WhoAmIRequest(), &response);
  }

  std::string dir_;
  domain::FakeClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<store::TokenStore> tokens_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<ProbeService> probe_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::SessionService::Stub> stub_;
  int port_ = 0;
  std::string token_;
};

TEST_F(CallerTest, TheAuthorizationMetadataIdentifiesTheCaller) {
  EXPECT_TRUE(Call(absl::StrCat("Bearer ", token_)).ok());
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->identity.name, "alice");
  EXPECT_EQ((*answer)->identity.auth_method, "token");
  EXPECT_FALSE((*answer)->token_id.empty());
}

TEST_F(CallerTest, TheBearerSchemeIsCaseInsensitive) {
  EXPECT_TRUE(Call(absl::StrCat("bearer ", token_)).ok());
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->identity.name, "alice");
}

TEST_F(CallerTest, NoAuthorizationOnAPlaintextConnectionIsUnauthenticated) {
  const grpc::Status status = Call(std::nullopt);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  EXPECT_TRUE(absl::IsUnauthenticated(answer->status())) << answer->status();
  EXPECT_THAT(std::string(answer->status().message()), HasSubstr("no credentials"));
}

TEST_F(CallerTest, AnAuthorizationValueIsPassedOnAsSent) {
  // Not the bearer scheme: the authenticator sees the value and says why.
  const grpc::Status status = Call("Token abc");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("Bearer"));
}

TEST_F(CallerTest, ACallWhoseDeadlinePassedBeforeItWasHandledIsDeadlineExceeded) {
  probe_->set_late(true);
  const grpc::Status status =
      Call(absl::StrCat("Bearer ", token_), std::chrono::milliseconds(200));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  // Refused before the credentials were looked at, valid as they are.
  EXPECT_TRUE(absl::IsDeadlineExceeded(answer->status())) << answer->status();
  EXPECT_THAT(std::string(answer->status().message()), HasSubstr("deadline"));
}


// ---------------------------------------------------------------------------
// Mutual TLS: the subject of a client certificate the server's CA verified.

struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertDeleter {
  void operator()(X509* c) const { X509_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using Cert = std::unique_ptr<X509, CertDeleter>;

// A P-256 key and a certificate for it, made at test time.
struct KeyAndCert {
  Key key;
  Cert cert;
  std::string cert_pem;
  std::string key_pem;
};

std::string Pem(const std::function<int(BIO*)>& write) {
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
KeyAndCert MakeCert(const std::string& o, const std::string& cn, const KeyAndCert* issuer,
                      const std::vector<std::pair<int, std::string>>& extensions) {
  static long serial = 1;
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
                             reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
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
  id.cert_pem = Pem([x](BIO* b) { return PEM_write_bio_X509(b, x); });
  EVP_PKEY* key = id.key.get();
  id.key_pem = Pem([key](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
  return id;
}

KeyAndCert MakeCa(const std::string& cn) {
  return MakeCert("Example", cn, nullptr,
                      {{NID_basic_constraints, "critical,CA:TRUE"},
                       {NID_key_usage, "critical,keyCertSign,cRLSign"}});
}

class CallerMutualTlsTest : public CallerTest {
 protected:
  void SetUp() override {
    ca_ = MakeCa("test-ca");
    server_id_ = MakeCert("Example", "localhost", &ca_,
                              {{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                               {NID_ext_key_usage, "serverAuth"}});
    client_id_ = MakeCert("Example", "backup-svc", &ca_,
                              {{NID_ext_key_usage, "clientAuth"}});
    CallerTest::SetUp();
  }

  // TLS; a client certificate is optional, and verified against the CA when
  // one is presented (as timerd with tls_client_ca).
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() override {
    grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = ca_.cert_pem;
    options.pem_key_cert_pairs.push_back({server_id_.key_pem, server_id_.cert_pem});
    return grpc::SslServerCredentials(options);
  }

  // Calls the probe over TLS, presenting `client` unless it is null.
  grpc::Status CallOverTls(const KeyAndCert* client, std::optional<std::string> authorization) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ca_.cert_pem;
    if (client != nullptr) {
      options.pem_private_key = client->key_pem;
      options.pem_cert_chain = client->cert_pem;
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    auto stub = v1::SessionService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::SslCredentials(options), args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
    if (authorization) ctx.AddMetadata("authorization", *authorization);
    v1::WhoAmIResponse response;
    return stub->WhoAmI(&ctx, v1::WhoAmIRequest(), &response);
  }

  KeyAndCert ca_;
  KeyAndCert server_id_;
  KeyAndCert client_id_;
};

TEST_F(CallerMutualTlsTest, AVerifiedClientCertificatesSubjectIsTheCaller) {
  const grpc::Status status = CallOverTls(&client_id_, std::nullopt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->identity.name, "CN=backup-svc,O=Example");  // RFC 2253.
  EXPECT_EQ((*answer)->identity.auth_method, "mtls");
  EXPECT_EQ((*answer)->token_id, "");
}

TEST_F(CallerMutualTlsTest, AnAuthorizationHeaderWinsOverTheCertificate) {
  const grpc::Status status = CallOverTls(&client_id_, absl::StrCat("Bearer ", token_));
  ASSERT_TRUE(status.ok()) << status.error_message();
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  ASSERT_TRUE(answer->ok()) << answer->status();
  EXPECT_EQ((*answer)->identity.name, "alice");
  EXPECT_EQ((*answer)->identity.auth_method, "token");
}

TEST_F(CallerMutualTlsTest, TlsWithoutAClientCertificateOrAuthorizationIsUnauthenticated) {
  EXPECT_EQ(CallOverTls(nullptr, std::nullopt).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto answer = probe_->AwaitAnswer();
  ASSERT_TRUE(answer.has_value());
  EXPECT_THAT(std::string(answer->status().message()), HasSubstr("no credentials"));
}

TEST_F(CallerMutualTlsTest, ACertificateFromAnotherCaIsRefusedAtTheHandshake) {
  const KeyAndCert other_ca = MakeCa("other-ca");
  const KeyAndCert rogue = MakeCert("Example", "backup-svc", &other_ca,
                                      {{NID_ext_key_usage, "clientAuth"}});
  EXPECT_EQ(CallOverTls(&rogue, std::nullopt).error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace timer::api
