// Notifier (domain/notifier.h) against tests/support/http_echo_server.py on
// 127.0.0.1: which events are notified, their signatures, retries, bounds,
// and that an unreachable receiver never holds up the publisher.
#include "domain/notifier.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_split.h"
#include "domain/clock.h"
#include "http_echo_server.h"
#include "plugin_test_util.h"

namespace timer::domain {
namespace {

using plugin_host::testing::TempDir;
using testing::HttpEchoServer;

constexpr char kKey[] = "test-notification-key";

// True if `header` ("t=...,v1=...") signs `body` with kKey.
bool SignatureValid(const std::string& header, const std::string& body) {
  return timer::testing::TimerSignatureValid(kKey, header, body);
}

// A TCP socket on 127.0.0.1 that listens but never accepts: a connection
// is made and then nothing ever answers.
class Blackhole {
 public:
  Blackhole() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 64);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~Blackhole() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<HttpEchoServer>(TIMER_HTTP_ECHO_SERVER_PY,
                                               dir_.str() + "/requests.jsonl");
    ASSERT_GT(server_->port(), 0);
  }

  std::unique_ptr<Notifier> Make(Notifier::Options o = {}) {
    if (o.allow.empty()) o.allow = {"127.0.0.1"};
    o.key = kKey;
    if (o.initial_backoff == absl::Seconds(1)) o.initial_backoff = absl::Milliseconds(20);
    auto n =
        Notifier::Create(std::move(o), &clock_,
                         [this](const v1::Job& job, int64_t run) -> absl::StatusOr<bool> {
                           std::lock_guard<std::mutex> lock(mu_);
                           return failed_before_[run];
                         });
    EXPECT_TRUE(n.ok()) << n.status();
    (*n)->Start();
    return *std::move(n);
  }

  v1::Job Job(const std::string& url, std::vector<v1::Notification::Event> on,
              const std::string& owner = "alice") {
    v1::Job job;
    job.set_job_id("job-1");
    job.set_name("nightly");
    job.set_owner(owner);
    job.set_status(v1::Job::LOADED);
    job.mutable_notification()->set_url(url);
    for (auto e : on) job.mutable_notification()->add_on(e);
    return job;
  }

  static v1::JobResult Result(int64_t n, v1::JobResult::Status s,
                              std::string error = "") {
    v1::JobResult r;
    r.set_run_number(n);
    r.set_status(s);
    r.set_error(std::move(error));
    r.mutable_start_time()->set_seconds(1700000000 + n);
    r.mutable_end_time()->set_seconds(1700000001 + n);
    return r;
  }

  std::vector<nlohmann::json> Bodies() {
    std::vector<nlohmann::json> out;
    for (const auto& r : server_->Requests()) {
      out.push_back(nlohmann::json::parse(r["body"].get<std::string>()));
    }
    return out;
  }

  TempDir dir_;
  SystemClock clock_;
  std::unique_ptr<HttpEchoServer> server_;
  std::mutex mu_;
  std::map<int64_t, bool> failed_before_;
};

TEST_F(NotifierTest, OneFailureOneRecoveryOneEndWithValidSignatures) {
  auto n = Make();
  v1::Job job =
      Job(server_->base() + "/hook?token=abc",
          {v1::Notification::FAILURE, v1::Notification::RECOVERY, v1::Notification::END});
  {
    std::lock_guard<std::mutex> lock(mu_);
    failed_before_[2] = true;   // run 2 follows the failed run 1
    failed_before_[3] = false;  // run 3 follows a success: no recovery
  }
  v1::JobResult r1 = Result(1, v1::JobResult::FAILED, "http: answered 500");
  v1::JobResult r2 = Result(2, v1::JobResult::SUCCEEDED);
  v1::JobResult r3 = Result(3, v1::JobResult::SUCCEEDED);
  n->Publish(v1::JobEvent::RUN_STARTED, job, &r1);
  n->Publish(v1::JobEvent::RUN_FINISHED, job, &r1);
  n->Publish(v1::JobEvent::RUN_FINISHED, job, &r2);
  n->Publish(v1::JobEvent::RUN_FINISHED, job, &r3);
  n->Publish(v1::JobEvent::UPDATED, job, nullptr);
  job.set_status(v1::Job::ENDED);
  n->Publish(v1::JobEvent::ENDED, job, nullptr);
  ASSERT_TRUE(server_->WaitFor([](const auto& r) { return r.size() >= 3; }));
  // Everything queued has been handled: nothing more will come.
  for (int i = 0; i < 500 && n->queued() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(n->queued(), 0u);
  auto reqs = server_->Requests();
  ASSERT_EQ(reqs.size(), 3u);
  std::map<std::string, int> events;
  for (const auto& r : reqs) {
    EXPECT_EQ(r["method"], "POST");
    EXPECT_EQ(r["path"], "/hook?token=abc");
    EXPECT_EQ(r["headers"]["Content-Type"], "application/json");
    EXPECT_TRUE(SignatureValid(r["headers"]["Timer-Signature"], r["body"]))
        << r["headers"]["Timer-Signature"];
    EXPECT_FALSE(SignatureValid(r["headers"]["Timer-Signature"],
                                r["body"].get<std::string>() + " "));
    auto body = nlohmann::json::parse(r["body"].get<std::string>());
    events[body["event"]]++;
    EXPECT_EQ(body["job"]["id"], "job-1");
    EXPECT_EQ(body["job"]["name"], "nightly");
    EXPECT_EQ(body["job"]["owner"], "alice");
    EXPECT_EQ(r["headers"]["Idempotency-Key"], body["id"]);
    if (body["event"] == "failure") {
      EXPECT_EQ(body["run"]["number"], 1);
      EXPECT_EQ(body["run"]["status"], "FAILED");
      EXPECT_EQ(body["run"]["error"], "http: answered 500");
      EXPECT_TRUE(body["run"].contains("start_time"));
    }
    if (body["event"] == "recovery") {
      EXPECT_EQ(body["run"]["number"], 2);
    }
    if (body["event"] == "end") {
      EXPECT_EQ(body["job"]["status"], "ENDED");
    }
  }
  EXPECT_EQ(events,
            (std::map<std::string, int>{{"failure", 1}, {"recovery", 1}, {"end", 1}}));
}

// PAUSE: a pause after consecutive failures is notified once (a user's
// pause, a repeat of the same pause and a job not asking for PAUSE are
// not); after a resume the next such pause is notified again.
TEST_F(NotifierTest, PauseAfterFailuresNotifiedOncePerPause) {
  auto n = Make();
  v1::Job job = Job(server_->base() + "/hook", {v1::Notification::PAUSE});
  auto paused = [&job](v1::InactiveReason::Cause cause, int64_t at) {
    v1::Job j = job;
    j.set_status(v1::Job::PAUSED);
    j.mutable_inactive_reason()->set_cause(cause);
    j.mutable_inactive_reason()->set_detail(
        cause == v1::InactiveReason::USER ? "paused by alice"
                                          : "3 consecutive runs failed; last: http: 404");
    j.mutable_inactive_reason()->mutable_time()->set_seconds(at);
    return j;
  };
  // A user's pause, then resume: nothing.
  n->Publish(v1::JobEvent::PAUSED, paused(v1::InactiveReason::USER, 1700000000), nullptr);
  n->Publish(v1::JobEvent::RESUMED, job, nullptr);
  // The pause after failures, published again by a user pausing the
  // paused job: one notice.
  const v1::Job first = paused(v1::InactiveReason::CONSECUTIVE_FAILURES, 1700000100);
  n->Publish(v1::JobEvent::PAUSED, first, nullptr);
  n->Publish(v1::JobEvent::PAUSED, first, nullptr);
  // A job that does not ask for PAUSE: nothing.
  v1::Job other = first;
  other.set_job_id("job-2");
  other.mutable_notification()->clear_on();
  other.mutable_notification()->add_on(v1::Notification::FAILURE);
  n->Publish(v1::JobEvent::PAUSED, other, nullptr);
  // Resumed, failing again: a new pause, a new notice.
  n->Publish(v1::JobEvent::RESUMED, job, nullptr);
  n->Publish(v1::JobEvent::PAUSED,
             paused(v1::InactiveReason::CONSECUTIVE_FAILURES, 1700000200), nullptr);
  ASSERT_TRUE(server_->WaitFor([](const auto& r) { return r.size() >= 2; }));
  for (int i = 0; i < 500 && n->queued() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(n->queued(), 0u);
  auto reqs = server_->Requests();
  ASSERT_EQ(reqs.size(), 2u);
  std::vector<std::string> times;
  for (const auto& r : reqs) {
    EXPECT_TRUE(SignatureValid(r["headers"]["Timer-Signature"], r["body"]));
    auto body = nlohmann::json::parse(r["body"].get<std::string>());
    EXPECT_EQ(body["event"], "pause");
    EXPECT_EQ(body["job"]["id"], "job-1");
    EXPECT_EQ(body["job"]["status"], "PAUSED");
    EXPECT_FALSE(body.contains("run"));
    EXPECT_EQ(body["inactive_reason"]["cause"], "CONSECUTIVE_FAILURES");
    EXPECT_EQ(body["inactive_reason"]["detail"],
              "3 consecutive runs failed; last: http: 404");
    times.push_back(body["inactive_reason"]["time"].get<std::string>());
  }
  std::sort(times.begin(), times.end());
  EXPECT_EQ(times,
            (std::vector<std::string>{"2023-11-14T22:15:00Z", "2023-11-14T22:16:40Z"}));
}

TEST_F(NotifierTest, DefaultIsFailureOnly) {
  auto n = Make();
  v1::Job job = Job(server_->base() + "/hook", {});
  v1::JobResult ok = Result(1, v1::JobResult::SUCCEEDED);
  v1::JobResult bad = Result(2, v1::JobResult::UNKNOWN);
  n->Publish(v1::JobEvent::RUN_FINISHED, job, &ok);
  n->Publish(v1::JobEvent::ENDED, job, nullptr);
  n->Publish(v1::JobEvent::RUN_FINISHED, job, &bad);
  ASSERT_TRUE(server_->WaitFor([](const auto& r) { return !r.empty(); }));
  for (int i = 0; i < 500 && n->queued() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto bodies = Bodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(bodies[0]["event"], "failure");
  EXPECT_EQ(bodies[0]["run"]["status"], "UNKNOWN");
}

TEST_F(NotifierTest, RetriesUntilDelivered) {
  auto n = Make();
  v1::Job job = Job(server_->base() + "/seq/500,503,200", {v1::Notification::FAILURE});
  v1::JobResult bad = Result(1, v1::JobResult::FAILED);
  n->Publish(v1::JobEvent::RUN_FINISHED, job, &bad);
  ASSERT_TRUE(server_->WaitFor([](const auto& r) { return r.size() >= 3; }));
  for (int i = 0; i < 500 && n->queued() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(n->queued(), 0u);
  auto reqs = server_->Requests();
  ASSERT_EQ(reqs.size(), 3u);
  // The same document (and id) on every attempt.
  EXPECT_EQ(reqs[0]["body"], reqs[2]["body"]);
  EXPECT_EQ(reqs[0]["headers"]["Idempotency-Key"], reqs[2]["headers"]["Idempotency-Key"]);
}

TEST_F(NotifierTest, GivesUpAfterMaxAttempts) {
  Notifier::Options o;
  o.max_attempts = 2;
  auto n = Make(o);
  v1::Job job = Job(server_->base() + "/status/500", {v1::Notification::FAILURE});
  v1::JobResult bad = Result(1, v1::JobResult::FAILED);
  n->Publish(v1::JobEvent::RUN_FINISHED, job, &bad);
  ASSERT_TRUE(server_->WaitFor([](const auto& r) { return r.size() >= 2; }));
  for (int i = 0; i < 500 && n->queued() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(n->queued(), 0u);
  EXPECT_EQ(server_->Requests().size(), 2u);
}

TEST_F(NotifierTest, UnreachableReceiverNeverHoldsThePublisher) {
  Blackhole hole;
  Notifier::Options o;
  o.threads = 1;
  o.timeout = absl::Seconds(30);
  o.max_queued = 100;
  o.max_queued_per_owner = 100;
  auto n = Make(o);
  v1::Job silent = Job("http://127.0.0.1:" + std::to_string(hole.port()) + "/",
                       {v1::Notification::FAILURE});
  v1::JobResult bad = Result(1, v1::JobResult::FAILED);
  n->Publish(v1::JobEvent::RUN_FINISHED, silent, &bad);
  // The one delivery thread now waits on the blackhole (up to 30 s); every
  // further Publish still returns at once, queueing.
  for (int i = 0; i < 50; ++i) n->Publish(v1::JobEvent::RUN_FINISHED, silent, &bad);
  EXPECT_EQ(n->queued(), 51u);
  // A closed port: refused at once, retried with backoff, also without
  // holding anyone.
  v1::Job closed = Job("http://127.0.0.1:1/", {v1::Notification::FAILURE}, "bob");
  n->Publish(v1::JobEvent::RUN_FINISHED, closed, &bad);
  EXPECT_EQ(n->queued(), 52u);
  n->Stop();  // drops the queue; the attempt in flight is abandoned
  EXPECT_EQ(n->queued(), 0u);
}

TEST_F(NotifierTest, QueueBoundedPerOwnerAndInTotal) {
  Blackhole hole;
  Notifier::Options o;
  o.threads = 1;
  o.timeout = absl::Seconds(30);
  o.max_queued = 5;
  o.max_queued_per_owner = 3;
  auto n = Make(o);
  v1::JobResult bad = Result(1, v1::JobResult::FAILED);
  v1::Job a = Job("http://127.0.0.1:" + std::to_string(hole.port()) + "/",
                  {v1::Notification::FAILURE}, "alice");
  v1::Job b = a;
  b.set_owner("bob");
  for (int i = 0; i < 10; ++i) n->Publish(v1::JobEvent::RUN_FINISHED, a, &bad);
  EXPECT_EQ(n->queued(), 3u);
  for (int i = 0; i < 10; ++i) n->Publish(v1::JobEvent::RUN_FINISHED, b, &bad);
  EXPECT_EQ(n->queued(), 5u);
}

TEST_F(NotifierTest, ValidateUsesTheAllowlist) {
  Notifier::Options o;
  o.allow = {"hooks.example.org", "127.0.0.1:8080"};
  auto n = Make(o);
  v1::Notification ok;
  ok.set_url("https://hooks.example.org/x?token=1");
  ok.add_on(v1::Notification::FAILURE);
  EXPECT_TRUE(n->Validate(ok).ok());
  v1::Notification loop;
  loop.set_url("http://127.0.0.1:9/");
  absl::Status s = n->Validate(loop);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("job.notification.url"), absl::string_view::npos);
  loop.set_url("http://127.0.0.1:8080/");
  EXPECT_TRUE(n->Validate(loop).ok());
  v1::Notification meta;
  meta.set_url("http://169.254.169.254/");
  EXPECT_FALSE(n->Validate(meta).ok());
  v1::Notification bad;
  bad.set_url("ftp://hooks.example.org/");
  EXPECT_EQ(n->Validate(bad).code(), absl::StatusCode::kInvalidArgument);
  v1::Notification twice = ok;
  twice.add_on(v1::Notification::FAILURE);
  EXPECT_EQ(n->Validate(twice).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(NotifierTest, SignMatchesHmacOfTimestampDotBody) {
  EXPECT_EQ(Notifier::Sign(kKey, 1700000000, "{}"),
            "t=1700000000,v1=" + timer::testing::HmacSha256Hex(kKey, "1700000000.{}"));
}

}  // namespace
}  // namespace timer::domain
