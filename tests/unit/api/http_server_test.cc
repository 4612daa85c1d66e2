// HttpServer (services/timerd/api/http/http_server.h) on 127.0.0.1:0 with
// the real transcoder, handlers and authenticator over a token store whose
// reads can be held: authentication waiting on the store stalls no other
// connection (it runs on a worker, not on the io thread), and Stop() closes
// kept-alive connections itself.
#include "api/http/http_server.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/http/http_handlers.h"
#include "api/http/transcoder.h"
#include "auth/authenticator.h"
#include "auth/token.h"
#include "domain/clock.h"
#include "gtest/gtest.h"
#include "sse_client.h"
#include "store/token_store.h"
#include "timer/v1/session.pb.h"
#include "timer/v1/timer.pb.h"

namespace timer::api::http {
namespace {

// Tokens in memory; Find() waits while the gate is closed.
class GatedTokens : public store::TokenStore {
 public:
  absl::Status Insert(const store::TokenRecord& token) override {
    absl::MutexLock lock(&mu_);
    tokens_[token.token_id] = token;
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<store::TokenRecord>> Find(
      const std::string& token_id) override {
    absl::MutexLock lock(&mu_);
    ++waiting_;
    mu_.Await(absl::Condition(&open_));
    --waiting_;
    auto it = tokens_.find(token_id);
    if (it == tokens_.end()) return std::optional<store::TokenRecord>();
    return std::optional<store::TokenRecord>(it->second);
  }
  absl::StatusOr<std::vector<store::TokenRecord>> List(const std::string&) override {
    return std::vector<store::TokenRecord>();
  }
  absl::Status Revoke(const std::string&, int64_t) override { return absl::OkStatus(); }

  void SetOpen(bool open) {
    absl::MutexLock lock(&mu_);
    open_ = open;
  }
  // Waits until `n` reads wait at the gate (at most 10 s).
  bool AwaitWaiting(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [&] { return waiting_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(10));
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, store::TokenRecord> tokens_ ABSL_GUARDED_BY(mu_);
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

using timer::testing::HttpResponse;
using timer::testing::RawHttpConnection;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<auth::IssuedToken> issued =
        auth::IssueToken(tokens_, "alice@example.org", std::nullopt, "", absl::Now());
    ASSERT_TRUE(issued.ok()) << issued.status();
    token_ = issued->token;
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    absl::StatusOr<Transcoder> routes =
        Transcoder::FromServices({pool->FindServiceByName("timer.v1.TimerService"),
                                  pool->FindServiceByName("timer.v1.SessionService")});
    ASSERT_TRUE(routes.ok()) << routes.status();
    routes_ = std::make_unique<Transcoder>(*std::move(routes));
    HttpOptions options;
    options.listen = "127.0.0.1:0";
    options.io_threads = 1;  // One io thread: any blocking would stall all.
    options.workers = 2;
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Start(options, HttpHooks{}, routes_.get(), &handlers_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void TearDown() override {
    tokens_.SetOpen(true);
    if (server_ != nullptr) server_->Stop(absl::ZeroDuration());
  }

  std::string WhoAmI() const {
    return absl::StrCat("GET /v1/session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ",
                        token_, "\r\n\r\n");
  }

  GatedTokens tokens_;
  domain::SystemClock clock_;
  auth::Authenticator auth_{&tokens_, nullptr, &clock_};
  // No JobService: only the session routes are called here.
  HttpHandlers handlers_{nullptr, &auth_, nullptr};
  std::unique_ptr<Transcoder> routes_;
  std::unique_ptr<HttpServer> server_;
  std::string token_;
};

TEST_F(HttpServerTest, AuthenticationWaitingOnTheStoreStallsNoOtherConnection) {
  tokens_.SetOpen(false);
  RawHttpConnection held(server_->port());
  ASSERT_TRUE(held.connected());
  ASSERT_TRUE(held.Send(WhoAmI()));
  ASSERT_TRUE(tokens_.AwaitWaiting(1));

  // The one io thread still serves everyone else meanwhile.
  for (const char* path : {"/healthz", "/metrics", "/readyz"}) {
    RawHttpConnection probe(server_->port());
    ASSERT_TRUE(probe.Send(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n")));
    EXPECT_EQ(probe.ReadResponse(absl::Seconds(10)).code, 200) << path;
  }
  // And another caller's authentication, on the other worker.
  RawHttpConnection other(server_->port());
  ASSERT_TRUE(other.Send(WhoAmI()));
  ASSERT_TRUE(tokens_.AwaitWaiting(2));
  // No answer for the held ones yet.
  EXPECT_EQ(held.ReadResponse(absl::Milliseconds(100)).code, 0);

  tokens_.SetOpen(true);
  const HttpResponse answer = held.ReadResponse(absl::Seconds(10));
  EXPECT_EQ(answer.code, 200);
  EXPECT_TRUE(absl::StrContains(answer.body, "alice@example.org")) << answer.body;
  EXPECT_EQ(other.ReadResponse(absl::Seconds(10)).code, 200);
}

TEST_F(HttpServerTest, StopClosesKeptAliveConnections) {
  RawHttpConnection kept(server_->port());
  ASSERT_TRUE(kept.Send(WhoAmI()));
  ASSERT_EQ(kept.ReadResponse(absl::Seconds(10)).code, 200);
  // Idle between requests, kept alive: Stop() ends it (a FIN), while the
  // server object still exists.
  server_->Stop(absl::Seconds(1));
  EXPECT_TRUE(kept.Closed(absl::Seconds(5)));
}

}  // namespace
}  // namespace timer::api::http
