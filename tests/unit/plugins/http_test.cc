// http provider, through its C API (dlopen, timer_ap_get_api), against
// tests/support/http_echo_server.py on 127.0.0.1.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http_echo_server.h"
#include "plugin_test_util.h"
#include "timer/action_provider.h"

namespace {

using timer::plugin_host::testing::TempDir;
using timer::plugin_host::testing::WriteFile;
using timer::testing::HttpEchoServer;

constexpr char kSecret[] = "Bearer s3cr3t-t0ken-value";

std::mutex g_log_mu;
std::string g_log;
void LogFn(void*, timer_ap_log_level, timer_ap_str m) {
  std::lock_guard<std::mutex> lock(g_log_mu);
  g_log.append(m.data, m.size);
  g_log += "\n";
}

struct Result {
  timer_ap_code code = TIMER_AP_OK;  // of start()
  std::string message;
  timer_ap_state state = TIMER_AP_STATE_ACTIVE;
  std::string error;
  nlohmann::json details;
  timer_ap_error_class error_class = TIMER_AP_ERROR_CLASS_UNSPECIFIED;
};

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    so_ = dlopen(TIMER_HTTP_SO, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(so_, nullptr) << dlerror();
    auto get = reinterpret_cast<timer_ap_get_api_fn>(dlsym(so_, TIMER_AP_ENTRY_SYMBOL));
    ASSERT_NE(get, nullptr);
    api_ = get(TIMER_AP_ABI_MAJOR, TIMER_AP_ABI_MINOR);
    ASSERT_NE(api_, nullptr);
    server_ = std::make_unique<HttpEchoServer>(TIMER_HTTP_ECHO_SERVER_PY,
                                               dir_.str() + "/requests.jsonl");
    ASSERT_GT(server_->port(), 0);
    secret_file_ = dir_.str() + "/token";
    WriteFile(secret_file_, std::string(kSecret) + "\n");
    chmod(secret_file_.c_str(), 0600);
  }
  void TearDown() override {
    if (provider_ != nullptr) api_->destroy(provider_);
    // Left loaded: libcurl/OpenSSL keep process-wide state.
  }

  nlohmann::json BaseConfig() {
    return {{"allow", {"127.0.0.1:" + std::to_string(server_->port())}},
            {"credentials",
             {{"svc",
               {{"header", "Authorization"},
                {"value_file", secret_file_},
                {"allowed_identities", {"alice"}}}}}}};
  }

  // Creates the provider; returns the error code (OK on success).
  timer_ap_code Create(const nlohmann::json& config, std::string* message = nullptr) {
    host_.struct_size = sizeof(host_);
    host_.context = nullptr;
    host_.log = &LogFn;
    std::string c = config.dump();
    timer_ap_error* e = api_->create({c.data(), c.size()}, &host_, &provider_);
    if (e == nullptr) return TIMER_AP_OK;
    timer_ap_code code = api_->error_code(e);
    timer_ap_str m = api_->error_message(e);
    if (message != nullptr) message->assign(m.data, m.size);
    api_->error_destroy(e);
    return code;
  }

  // `name` must outlive the identity: a literal, or a string of the caller's
  // (a std::string parameter would bind a literal to a temporary).
  static timer_ap_identity Owner(std::string_view name) {
    timer_ap_identity id{};
    id.struct_size = sizeof(id);
    id.name = {name.data(), name.size()};
    id.auth_method = {"none", 4};
    return id;
  }

  std::pair<timer_ap_code, std::string> Validate(const nlohmann::json& body,
                                                 const std::string& owner = "alice") {
    std::string b = body.dump();
    timer_ap_identity id = Owner(owner);
    timer_ap_error* e = api_->validate(provider_, &id, {b.data(), b.size()});
    if (e == nullptr) return {TIMER_AP_OK, ""};
    auto r = std::make_pair(
        api_->error_code(e),
        std::string(api_->error_message(e).data, api_->error_message(e).size));
    api_->error_destroy(e);
    return r;
  }

  // Starts and waits for the end.
  Result Run(const std::string& request_id, const nlohmann::json& body,
             const std::string& owner = "alice") {
    Result r;
    std::string b = body.dump();
    timer_ap_identity id = Owner(owner);
    timer_ap_status* st = nullptr;
    timer_ap_error* e = api_->start(provider_, {request_id.data(), request_id.size()},
                                    &id, {b.data(), b.size()}, &st);
    if (e != nullptr) {
      r.code = api_->error_code(e);
      r.message.assign(api_->error_message(e).data, api_->error_message(e).size);
      api_->error_destroy(e);
      return r;
    }
    std::string action(st->action_id.data, st->action_id.size);
    api_->status_destroy(st);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      timer_ap_status* s = nullptr;
      timer_ap_error* se = api_->status(provider_, {action.data(), action.size()}, &s);
      if (se != nullptr) {
        api_->error_destroy(se);
        ADD_FAILURE() << "status failed";
        return r;
      }
      if (s->state != TIMER_AP_STATE_ACTIVE ||
          std::chrono::steady_clock::now() > deadline) {
        r.state = s->state;
        r.error.assign(s->error.data, s->error.size);
        r.details = nlohmann::json::parse(std::string(s->details.data, s->details.size));
        r.error_class = s->error_class;
        api_->status_destroy(s);
        break;
      }
      api_->status_destroy(s);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    timer_ap_error* re = api_->release(provider_, {action.data(), action.size()});
    if (re != nullptr) api_->error_destroy(re);
    return r;
  }

  std::string Url(const std::string& path) { return server_->base() + path; }

  TempDir dir_;
  std::string secret_file_;
  std::unique_ptr<HttpEchoServer> server_;
  void* so_ = nullptr;
  const timer_ap_api* api_ = nullptr;
  timer_ap_host host_{};
  timer_ap_provider* provider_ = nullptr;
};

TEST_F(HttpTest, SucceedsOn2xxWithDetails) {
  ASSERT_EQ(Create(BaseConfig()), TIMER_AP_OK);
  Result r = Run("job-a/1", {{"url", Url("/echo")}, {"json", {{"x", 1}}}});
  ASSERT_EQ(r.code, TIMER_AP_OK) << r.message;
  EXPECT_EQ(r.state, TIMER_AP_STATE_SUCCEEDED) << r.error;
  EXPECT_EQ(r.details["status"], 200);
  EXPECT_EQ(r.details["method"], "POST");
  EXPECT_TRUE(r.details["timing"].contains("total_ms"));
  EXPECT_TRUE(r.details["timing"].contains("connect_ms"));
  EXPECT_TRUE(r.details["timing"].contains("first_byte_ms"));
  EXPECT_EQ(r.details["response"]["content_type"], "application/json");
  EXPECT_EQ(r.error_class, TIMER_AP_ERROR_CLASS_UNSPECIFIED);
  auto reqs = server_->Requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0]["method"], "POST");
  EXPECT_EQ(reqs[0]["body"], R"({"x":1})");
  EXPECT_EQ(reqs[0]["headers"]["Content-Type"], "application/json");
}

TEST_F(HttpTest, NotFoundFailsPermanent) {
  ASSERT_EQ(Create(BaseConfig()), TIMER_AP_OK);
  Result r = Run("job-a/2", {{"method", "GET"}, {"url", Url("/status/404")}});
  EXPECT_EQ(r.state, TIMER_AP_STATE_FAILED);
  EXPECT_EQ(r.error_class, TIMER_AP_ERROR_CLASS_PERMANENT);
  EXPECT_EQ(r.details["status"], 404);
  EXPECT_NE(r.error.find("404"), std::string::npos);
  EXPECT_EQ(server_->Requests().size(), 1u);
}

TEST_F(HttpTest, ServerErrorAndTooManyRequestsAreTransient) {
  ASSERT_EQ(Create(BaseConfig()), TIMER_AP_OK);
  Result r = Run("job-a/3", {{"url", Url("/status/500")}});
  EXPECT_EQ(r.state, TIMER_AP_STATE_FAILED);
  EXPECT_EQ(r.error_class, TIMER_AP_ERROR_CLASS_TRANSIENT);
  r = Run("job-a/4", {{"url", Url("/status/429")}});
  EXPECT_EQ(r.error_class, TIMER_AP_ERROR_CLASS_TRANSIENT);
  r = Run("job-a/5", {{"url", Url("/status/401")}});
  EXPECT_EQ(r.error_class, TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION);
  r = Run("job-a/6", {{"url", Url("/status/403")}});
  EXPECT_EQ(r.error_class, TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION);
}

TEST_F(HttpTest, SlowServerHitsTheTimeout) {
  ASSERT_EQ(Create(BaseConfig()), TIMER_AP_OK);
  auto t0 = std::chrono::steady_clock::now();
  Result r =
      Run("job-a/7", {{"url", Url("/delay/5000/status/200")}, {"timeout_seconds", 1}});
  EXPECT_EQ(r.state, TIMER_AP_STATE_FAILED);
  EXPECT_EQ(r.error_class, TIMER_AP_ERROR_CLASS_TRANSIENT);
  EXPECT_NE(r.error.find("timed out"), std::string::npos) << r.error;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));
}

TEST_F(HttpTest, TimeoutAboveTheMaxIsRefused) {
  auto c = BaseConfig();
  c["max_timeout_seconds"] = 10;
  ASSERT_EQ(Create(c), TIMER_AP_OK);
  auto [code, msg] = Validate({{"url", Url("/")}, {"timeout_seconds", 11}});
  EXPECT_EQ(code, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("timeout_seconds"), std::string::npos);
}

TEST_F(HttpTest, ConnectRefusedIsTransient) {
  auto c = BaseConfig();
  c["allow"] = {"127.0.0.1"};
  ASSERT_EQ(Create(c), TIMER_AP_OK);
  // Port 1 on loopback: nothing listens there.
  Result r = Run("job-a/8", {{"url", "http://127.0.0.1:1/"}});
  EXPECT_EQ(r.state, TIMER_AP_STATE_FAILED);
  EXPECT_EQ(r.error_class, TIMER_AP_ERROR_CLASS_TRANSIENT);
}

TEST_F(HttpTest, LoopbackRefusedAtValidateUnlessListed) {
  auto c = BaseConfig();
  c["allow"] = {"*"};
  ASSERT_EQ(Create(c), TIMER_AP_OK);
  auto [code, msg] = Validate({{"url", Url("/")}});
  EXPECT_EQ(code, TIMER_AP_PERMISSION_DENIED);
  EXPECT_EQ(msg.rfind("url: ", 0), 0u) << msg;
  Result r = Run("job-b/1", {{"url", Url("/")}});
  EXPECT_EQ(r.code, TIMER_AP_PERMISSION_DENIED);
  EXPECT_TRUE(server_->Requests().empty());
}

TEST_F(HttpTest, PrivateAndSpecialRangesRefused) {
  auto c = BaseConfig();
  c["allow"] = {"*"};
  ASSERT_EQ(Create(c), TIMER_AP_OK);
  for (const char* u :
       {"http://10.1.2.3/", "http://192.168.0.1/", "http://172.16.5.5/",
        "http://169.254.169.254/", "http://100.64.0.1/", "http://0.0.0.0/",
        "http://[::1]/", "http://[fd00::1]/", "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/", "http://224.0.0.1/", "http://2130706433/",
        "http://0x7f000001/"}) {
    auto [code, msg] = Validate({{"url", u}});
    EXPECT_NE(code, TIMER_AP_OK) << u;
    EXPECT_EQ(msg.rfind("url: ", 0), 0u) << u << ": " << msg;
  }
  // A public address under "*" passes validation (nothing is sent).
  EXPECT_EQ(Validate({{"url", "https://93.184.216.34/"}}).first, TIMER_AP_OK);
}

TEST_F(HttpTest, NotOnTheListRefused) {
  ASSERT_EQ(Create(BaseConfig()), TIMER_AP_OK);
  auto [code, msg] = Validate({{"url", "https://example.org/"}});
  EXPECT_EQ(code, TIMER_AP_PERMISSION_DENIED);
  EXPECT_NE(msg.find("allowlist"), std::string::npos);
  EXPECT_EQ(Validate({{"url", "ftp://127.0.0.1/"}}).first, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(Validate({{"url", "http://u:p@127.0.0.1/"}}).first,
            TIMER_AP_INVALID_ARGUMENT);
}

TEST_F(HttpTest, NameResolvingToLoopbackRefusedAtConnect) {
  auto c = BaseConfig();
  // "localhost" matches "*", but the address it resolves to is loopback and
  // only 127.0.0.1 on another port is listed.
  c["allow"] = {"*", "127.0.0.1:1"};
  ASSERT_EQ(Create(c), TIMER_AP_OK);
  std::string url = "http://localhost:" + std::to_string(server_->port()) + "/";
  EXPECT_EQ(Validate({{"url", url}}).first, TIMER_AP_OK);
  Result r = Run("job-c/1", {{"url", url}});
  EXPECT_EQ(r.state, TIMER_AP_STATE_FAILED);
  EXPECT_EQ(r.error_class, TIMER_AP_ERROR_CLASS_PERMANENT);
  EXPECT_NE(r.error.find("does not cover"), std::string::npos) << r.error;
  EXPECT_TRUE(server_->Requests().empty());
}

TEST_F(HttpTest, RedirectsNotFollowedByDefault) {
  ASSERT_EQ(Create(BaseConfig()), TIMER_AP_OK);
  Result r = Run("job-d/1", {{"url", Url("/redirect?to=" + Url("/status/200"))}});
  EXPECT_EQ(r.state, TIMER_AP_STATE_FAILED);
  EXPECT_EQ(r.details["status"], 302);
  EXPECT_EQ(server_->Requests().size(), 1u);
}

TEST_F(HttpTest, RedirectFollowedOnlyWithinTheList) {
  auto c = BaseConfig();
  c["follow_redirects"] = 3;
  ASSERT_EQ(Create(c), TIMER_AP_OK);
  Result r = Run("job-d/2", {{"url", Url("/redirect?to=" + Url("/status/204"))}});
  EXPECT_EQ(r.state, TIMER_AP_STATE_SUCCEEDED) << r.error;
  EXPECT_EQ(r.details["status"], 204);
  EXPECT_EQ(r.details["redirects"], 1);
  // Elsewhere on loopback (not listed) and to a private address: refused
  // before any request is made there.
  r = Run("job-d/3", {{"url", Url("/redirect?to=http://127.0.0.2:9/")}});
  EXPECT_EQ(r.state, TIMER_AP_STATE_FAILED);
  EXPECT_EQ(r.error_class, TIMER_AP_ERROR_CLASS_PERMANENT);
  EXPECT_NE(r.error.find("not on the allowlist"), std::string::npos) << r.error;
  r = Run("job-d/4", {{"url", Url("/redirect?to=http://169.254.169.254/latest")}});
  EXPECT_EQ(r.state, TIMER_AP_STATE_FAILED);
  EXPECT_NE(r.error.find("not on the allowlist"), std::string::npos) << r.error;
}

TEST_F(HttpTest, IdempotencyKeyIsTheRequestId) {
  ASSERT_EQ(Create(BaseConfig()), TIMER_AP_OK);
  Run("job-e/7", {{"url", Url("/a")}});
  Run("job-e/7", {{"url", Url("/a")}});  // released in between: a new attempt
  Run("job-e/8", {{"url", Url("/a")}});
  auto reqs = server_->Requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0]["headers"]["Idempotency-Key"], "job-e/7");
  EXPECT_EQ(reqs[1]["headers"]["Idempotency-Key"], "job-e/7");
  EXPECT_EQ(reqs[2]["headers"]["Idempotency-Key"], "job-e/8");
}

TEST_F(HttpTest, CredentialSentButNeverShown) {
  ASSERT_EQ(Create(BaseConfig()), TIMER_AP_OK);
  // /echo sends the request's headers back: the excerpt must not show it.
  Result r = Run("job-f/1", {{"url", Url("/echo")}, {"credential", "svc"}});
  ASSERT_EQ(r.state, TIMER_AP_STATE_SUCCEEDED) << r.error;
  auto reqs = server_->Requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0]["headers"]["Authorization"], kSecret);
  EXPECT_EQ(r.details.dump().find("s3cr3t"), std::string::npos) << r.details.dump();
  EXPECT_NE(r.details.dump().find("[redacted]"), std::string::npos);
  // A failing run's error neither.
  r = Run("job-f/2", {{"url", Url("/status/500")}, {"credential", "svc"}});
  EXPECT_EQ(r.error.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(r.details.dump().find("s3cr3t"), std::string::npos);
  // Describe names it, without its value or file.
  timer_ap_identity id = Owner("alice");
  timer_ap_description* d = nullptr;
  ASSERT_EQ(api_->describe(provider_, &id, &d), nullptr);
  std::string desc(d->json.data, d->json.size);
  api_->description_destroy(d);
  EXPECT_NE(desc.find("\"svc\""), std::string::npos);
  EXPECT_EQ(desc.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(desc.find(secret_file_), std::string::npos);
  std::lock_guard<std::mutex> lock(g_log_mu);
  EXPECT_EQ(g_log.find("s3cr3t"), std::string::npos);
}

TEST_F(HttpTest, CredentialOnlyForItsIdentitiesAndNotFromTheBody) {
  ASSERT_EQ(Create(BaseConfig()), TIMER_AP_OK);
  auto [code, msg] = Validate({{"url", Url("/")}, {"credential", "svc"}}, "mallory");
  EXPECT_EQ(code, TIMER_AP_PERMISSION_DENIED);
  EXPECT_EQ(msg.rfind("credential: ", 0), 0u);
  EXPECT_EQ(Validate({{"url", Url("/")}, {"credential", "nope"}}).first,
            TIMER_AP_PERMISSION_DENIED);
  auto [c2, m2] = Validate({{"url", Url("/")}, {"headers", {{"Authorization", "x"}}}});
  EXPECT_EQ(c2, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_NE(m2.find("headers.Authorization"), std::string::npos);
  EXPECT_EQ(Validate({{"url", Url("/")}, {"headers", {{"X-A", "a\r\nB: c"}}}}).first,
            TIMER_AP_INVALID_ARGUMENT);
  timer_ap_identity id = Owner("mallory");
  timer_ap_description* d = nullptr;
  ASSERT_EQ(api_->describe(provider_, &id, &d), nullptr);
  std::string desc(d->json.data, d->json.size);
  api_->description_destroy(d);
  EXPECT_EQ(desc.find("svc"), std::string::npos);
}

TEST_F(HttpTest, CredentialFileMustBePrivate) {
  chmod(secret_file_.c_str(), 0644);
  std::string msg;
  EXPECT_EQ(Create(BaseConfig(), &msg), TIMER_AP_PERMISSION_DENIED);
  EXPECT_NE(msg.find("plugins.http.credentials.svc.value_file"), std::string::npos);
  EXPECT_EQ(msg.find("s3cr3t"), std::string::npos);
}

TEST_F(HttpTest, ResponseExcerptBounded) {
  ASSERT_EQ(Create(BaseConfig()), TIMER_AP_OK);
  Result r = Run("job-g/1", {{"method", "GET"}, {"url", Url("/big/100000")}});
  ASSERT_EQ(r.state, TIMER_AP_STATE_SUCCEEDED) << r.error;
  EXPECT_LE(r.details["response"]["excerpt"].get<std::string>().size(), 4096u);
  EXPECT_EQ(r.details["response"]["bytes"], 100000);
  EXPECT_EQ(r.details["response"]["truncated"], true);
}

TEST_F(HttpTest, BodyBounds) {
  auto c = BaseConfig();
  c["max_body_bytes"] = 16;
  c["max_headers"] = 2;
  ASSERT_EQ(Create(c), TIMER_AP_OK);
  EXPECT_EQ(Validate({{"url", Url("/")}, {"body", std::string(17, 'a')}}).first,
            TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(
      Validate({{"url", Url("/")}, {"headers", {{"A", "1"}, {"B", "2"}, {"C", "3"}}}})
          .first,
      TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(Validate({{"url", Url("/")}, {"body", "x"}, {"json", 1}}).first,
            TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(Validate({{"url", Url("/")}, {"bogus", 1}}).first, TIMER_AP_INVALID_ARGUMENT);
}

TEST_F(HttpTest, BadConfigRefused) {
  std::string msg;
  EXPECT_EQ(Create({{"allow", {"http://[::1"}}}, &msg), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("plugins.http.allow[0]"), std::string::npos) << msg;
  EXPECT_EQ(Create({{"allow", {"10.0.0.0/33"}}}, &msg), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(Create({{"bogus", 1}}, &msg), TIMER_AP_INVALID_ARGUMENT);
}

}  // namespace
