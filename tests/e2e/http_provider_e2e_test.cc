// End-to-end tests of the http provider and job notifications: the
// installed timerd (with its plugin directory) and timer binaries, against
// tests/support/http_echo_server.py on 127.0.0.1, allowlisted in timerd's
// TOML file. Jobs are made with `timer job http`; what the server received
// (requests and signed notifications) is read from its record file.
//
// Retries: "500 then 200" is one run of two attempts with the same
// Idempotency-Key; a 404 fails at once; an always-500 server is retried only
// within half the interval; a SIGKILL of timerd between attempts neither
// loses nor repeats one. pause_after_failures: an always-404 job pauses
// after its third failed run, with its reason in `timer job status` and
// GET /v1/jobs/{id}, and one signed PAUSE notification.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>

#include <csignal>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli_fixture.h"
#include "http_echo_server.h"
#include "process.h"

namespace timer::testing {
namespace {

using nlohmann::json;

constexpr char kKey[] = "e2e-notification-key";

// True if `header` ("t=...,v1=...") signs `body` with kKey.
bool SignatureValid(const std::string& header, const std::string& body) {
  return timer::testing::TimerSignatureValid(kKey, header, body);
}

class HttpProviderE2eTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    server_ = std::make_unique<HttpEchoServer>(TIMER_HTTP_ECHO_SERVER_PY,
                                               tmp_.path() + "/requests.jsonl");
    ASSERT_GT(server_->port(), 0);
  }

  // timerd allowing the echo server (or, if not `allow_server`, only
  // api.example.org) to the http provider and to notifications; with
  // `http_listen`, also serving the JSON API (its port in http_port_).
  std::unique_ptr<Daemon> StartWithConfig(bool allow_server = true,
                                          bool http_listen = false) {
    const std::string key = tmp_.path() + "/notify.key";
    std::ofstream(key) << kKey;
    chmod(key.c_str(), 0600);
    const std::string entry =
        allow_server ? "\"127.0.0.1:" + std::to_string(server_->port()) + "\""
                     : "\"api.example.org\"";
    const std::string config = absl::StrCat(
        "[plugins.http]\nallow = [", entry, "]\n\n", "[notifications]\nkey_file = \"",
        key, "\"\nallow = [", entry, "]\ninitial_backoff_ms = 50\n");
    return http_listen ? StartTimerdWithHttp(config) : StartTimerdWithConfig(config);
  }

  // The Idempotency-Key of each request to paths starting with `prefix`.
  std::vector<std::string> Keys(const std::string& prefix) {
    std::vector<std::string> keys;
    for (const json& q : To(prefix))
      keys.push_back(q["headers"].value("Idempotency-Key", ""));
    return keys;
  }

  // Requests to paths starting with `prefix`.
  std::vector<json> To(const std::string& prefix) {
    std::vector<json> r;
    for (const json& q : server_->Requests()) {
      if (q["path"].get<std::string>().rfind(prefix, 0) == 0) r.push_back(q);
    }
    return r;
  }

  std::unique_ptr<HttpEchoServer> server_;
};

absl::Time ParseTime(const json& t) {
  absl::Time at;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, t.get<std::string>(), &at, &err))
      << t.dump() << ": " << err;
  return at;
}

TEST_F(HttpProviderE2eTest, JobHttpRunsAndNotifiesTheEnd) {
  auto daemon = StartWithConfig();
  json job = CliJson({"job",
                      "http",
                      "--name",
                      "ping",
                      "--interval",
                      "1h",
                      "--stop-after-runs",
                      "1",
                      "--url",
                      server_->base() + "/echo",
                      "--method",
                      "PUT",
                      "--header",
                      "X-Team: ops",
                      "--json",
                      R"({"check": true})",
                      "--timeout",
                      "10s",
                      "--notify-url",
                      server_->base() + "/hook?token=t0k3n",
                      "--notify-on",
                      "failure,recovery,end"});
  const std::string id = job["job_id"];
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(job["notification"]["url"], server_->base() + "/hook?token=t0k3n");
  // The job ends as its one run starts (stop_after_runs counts starts);
  // the run's result follows.
  WaitForJob(id, [](const json& j) { return j["status"] == "ENDED"; });
  json results;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (;;) {
    results = CliJson({"job", "results", id})["results"];
    if (results.size() == 1 && results[0]["status"] != "PENDING" &&
        results[0]["status"] != "ACTIVE") {
      break;
    }
    ASSERT_LT(absl::Now(), deadline) << results.dump();
    absl::SleepFor(absl::Milliseconds(50));  // polling the server's state
  }
  EXPECT_EQ(results[0]["status"], "SUCCEEDED") << results.dump();
  json details = json::parse(results[0]["details"].get<std::string>());
  EXPECT_EQ(details["status"], 200);
  EXPECT_EQ(details["method"], "PUT");
  auto calls = To("/echo");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["method"], "PUT");
  EXPECT_EQ(calls[0]["headers"]["X-Team"], "ops");
  EXPECT_EQ(calls[0]["headers"]["Idempotency-Key"], id + "/1");
  EXPECT_EQ(calls[0]["body"], R"({"check":true})");
  // One "end" notification, signed; no failure, no recovery.
  ASSERT_TRUE(server_->WaitFor([&](const auto&) { return To("/hook").size() >= 1; }));
  auto hooks = To("/hook");
  ASSERT_EQ(hooks.size(), 1u);
  json doc = json::parse(hooks[0]["body"].get<std::string>());
  EXPECT_EQ(doc["event"], "end");
  EXPECT_EQ(doc["job"]["id"], id);
  EXPECT_EQ(doc["job"]["owner"], kIdentity);
  EXPECT_TRUE(SignatureValid(hooks[0]["headers"]["Timer-Signature"], hooks[0]["body"]));
  // `job status` shows the notification.
  RunResult shown = Cli({"job", "status", id});
  EXPECT_NE(shown.out.find("Notify:"), std::string::npos) << shown.out;
}

TEST_F(HttpProviderE2eTest, FailureThenRecoveryEachNotifiedOnce) {
  auto daemon = StartWithConfig();
  json job = CliJson({"job", "http", "--name", "flaky", "--interval", "1h", "--url",
                      server_->base() + "/seq/404,200", "--notify-url",
                      server_->base() + "/hook", "--notify-on", "failure,recovery"});
  const std::string id = job["job_id"];
  WaitForJob(id, [](const json& j) { return j.value("n_errors", "0") == "1"; });
  ASSERT_TRUE(server_->WaitFor([&](const auto&) { return To("/hook").size() >= 1; }));
  RunResult run = Cli({"job", "run-now", id});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_TRUE(server_->WaitFor([&](const auto&) { return To("/hook").size() >= 2; }));
  // A third run (succeeding again) is no recovery.
  run = Cli({"job", "run-now", id});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_TRUE(server_->WaitFor([&](const auto&) { return To("/seq/").size() >= 3; }));
  // Three finished results; then a notification for the third would follow
  // within moments: give it a second to (wrongly) arrive.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (;;) {
    json results = CliJson({"job", "results", id})["results"];
    int finished = 0;
    for (const json& r : results)
      finished += r["status"] == "SUCCEEDED" || r["status"] == "FAILED";
    if (finished == 3) break;
    ASSERT_LT(absl::Now(), deadline) << results.dump();
    absl::SleepFor(absl::Milliseconds(50));  // polling the server's state
  }
  EXPECT_FALSE(server_->WaitFor([&](const auto&) { return To("/hook").size() >= 3; },
                                std::chrono::seconds(1)));
  auto hooks = To("/hook");
  ASSERT_EQ(hooks.size(), 2u);
  std::vector<std::string> events;
  for (const json& h : hooks) {
    EXPECT_TRUE(SignatureValid(h["headers"]["Timer-Signature"], h["body"]));
    events.push_back(json::parse(h["body"].get<std::string>())["event"]);
  }
  EXPECT_EQ(events, (std::vector<std::string>{"failure", "recovery"}));
}

TEST_F(HttpProviderE2eTest, DestinationsOffTheListRefusedAtCreate) {
  auto daemon = StartWithConfig(/*allow_server=*/false);
  RunResult r = Cli(
      {"job", "http", "--name", "x", "--interval", "1h", "--url", server_->base() + "/"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("url"), std::string::npos) << r.err;
  r = Cli({"job", "http", "--name", "x", "--interval", "1h", "--url",
           "https://api.example.org/", "--notify-url", server_->base() + "/hook"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("notification.url"), std::string::npos) << r.err;
  EXPECT_TRUE(server_->Requests().empty());
  // The provider is shown with its allowlist.
  RunResult shown = Cli({"provider", "show", "http"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("api.example.org"), std::string::npos) << shown.out;
}

TEST_F(HttpProviderE2eTest, FiveHundredThenTwoHundredIsOneRunOfTwoAttempts) {
  auto daemon = StartWithConfig();
  json job = CliJson({"job", "http", "--name", "flaky", "--interval", "1h", "--url",
                      server_->base() + "/seq/500,200", "--retry-max-attempts", "3",
                      "--retry-backoff", "1s"});
  const std::string id = job["job_id"];
  json run = WaitForRun(id, [](const json& r) {
    return r["status"] == "SUCCEEDED" || r["status"] == "FAILED";
  });
  EXPECT_EQ(run["status"], "SUCCEEDED") << run.dump();
  EXPECT_EQ(run["run_number"], "1") << run.dump();
  ASSERT_EQ(run["attempts"].size(), 2u) << run.dump();
  EXPECT_EQ(run["attempts"][0]["error_class"], "ERROR_CLASS_TRANSIENT") << run.dump();
  EXPECT_NE(run["attempts"][0]["error"].get<std::string>().find("answered 500"),
            std::string::npos)
      << run.dump();
  EXPECT_EQ(json::parse(run["details"].get<std::string>())["status"], 200);
  // Both requests of the run carry its key.
  EXPECT_EQ(Keys("/seq/"), (std::vector<std::string>{id + "/1", id + "/1"}));
  RunResult table = Cli({"job", "results", "-v", id});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("attempt 1: "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("failed (transient)"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("attempt 2: "), std::string::npos) << table.out;
}

TEST_F(HttpProviderE2eTest, NotFoundFailsAtOnceWithoutRetry) {
  auto daemon = StartWithConfig();
  json job = CliJson({"job", "http", "--name", "gone", "--interval", "1h", "--url",
                      server_->base() + "/status/404", "--retry-max-attempts", "3",
                      "--retry-backoff", "1s"});
  const std::string id = job["job_id"];
  json run = WaitForRun(id, [](const json& r) { return r["status"] == "FAILED"; });
  EXPECT_EQ(run["error_class"], "ERROR_CLASS_PERMANENT") << run.dump();
  EXPECT_EQ(run["attempts"].size(), 1u) << run.dump();
  EXPECT_FALSE(run.contains("next_attempt_time")) << run.dump();
  EXPECT_EQ(Keys("/status/404"), (std::vector<std::string>{id + "/1"}));
}

// Every 10 s, up to 10 attempts 1 s, 2 s, 4 s, ... apart: the retry bound
// (half the interval, 5 s) allows the attempts at 0, 1 and 3 s only.
TEST_F(HttpProviderE2eTest, RetriesStopAtTheSchedulesBound) {
  auto daemon = StartWithConfig();
  json job = CliJson({"job", "http", "--name", "down", "--interval", "10s", "--url",
                      server_->base() + "/status/500", "--retry-max-attempts", "10",
                      "--retry-backoff", "1s"});
  const std::string id = job["job_id"];
  json run = WaitForRun(id, [](const json& r) {
    return r["run_number"] == "1" && r["status"] == "FAILED";
  });
  EXPECT_EQ(run["error_class"], "ERROR_CLASS_TRANSIENT") << run.dump();
  const json& attempts = run["attempts"];
  ASSERT_GE(attempts.size(), 2u) << run.dump();
  EXPECT_LT(attempts.size(), 10u) << run.dump();
  EXPECT_FALSE(run.contains("next_attempt_time")) << run.dump();
  const absl::Time first = ParseTime(attempts[0]["start_time"]);
  const absl::Time last = ParseTime(attempts[attempts.size() - 1]["start_time"]);
  EXPECT_LT(last - first, absl::Seconds(5)) << run.dump();
  // One request per attempt, all with run 1's key.
  std::vector<std::string> keys;
  for (const std::string& k : Keys("/status/500"))
    if (k == id + "/1") keys.push_back(k);
  EXPECT_EQ(keys.size(), attempts.size());
}

TEST_F(HttpProviderE2eTest, SigkillBetweenAttemptsNeitherLosesNorRepeatsOne) {
  auto daemon = StartWithConfig();
  json job = CliJson({"job", "http", "--name", "flaky", "--interval", "1h", "--url",
                      server_->base() + "/seq/500,200", "--retry-max-attempts", "3",
                      "--retry-backoff", "5s"});
  const std::string id = job["job_id"];
  json waiting = WaitForRun(id, [](const json& r) {
    return r["status"] == "PENDING" && r.contains("next_attempt_time");
  });
  ASSERT_EQ(waiting["attempts"].size(), 1u) << waiting.dump();
  // Killed while the run waits for its second attempt.
  EXPECT_EQ(daemon->Stop(SIGKILL), -1);
  EXPECT_EQ(To("/seq/").size(), 1u);

  daemon = StartWithConfig();
  json run = WaitForRun(id, [](const json& r) {
    return r["status"] == "SUCCEEDED" || r["status"] == "FAILED";
  });
  EXPECT_EQ(run["status"], "SUCCEEDED") << run.dump();
  ASSERT_EQ(run["attempts"].size(), 2u) << run.dump();
  EXPECT_EQ(Keys("/seq/"), (std::vector<std::string>{id + "/1", id + "/1"}));
}

TEST_F(HttpProviderE2eTest, PausesAfterThreeFailedRunsWithReasonAndOnePauseNotice) {
  auto daemon = StartWithConfig(/*allow_server=*/true, /*http_listen=*/true);
  // Every 2 s: the pause, written with the third failure, comes well before
  // a fourth slot even on a loaded machine.
  json job = CliJson({"job", "http", "--name", "broken", "--interval", "2s", "--url",
                      server_->base() + "/status/404", "--pause-after-failures", "3",
                      "--notify-url", server_->base() + "/hook", "--notify-on",
                      "failure,pause"});
  const std::string id = job["job_id"];
  json paused = WaitForJob(id, [](const json& j) { return j["status"] == "PAUSED"; });
  EXPECT_EQ(paused["inactive_reason"]["cause"], "CONSECUTIVE_FAILURES") << paused.dump();
  EXPECT_NE(paused["inactive_reason"]["detail"].get<std::string>().find(
                "3 consecutive runs failed"),
            std::string::npos)
      << paused.dump();
  // Three runs, all failed; no fourth request.
  json results = CliJson({"job", "results", id})["results"];
  ASSERT_EQ(results.size(), 3u) << results.dump();
  for (const json& r : results) EXPECT_EQ(r["status"], "FAILED") << results.dump();
  EXPECT_EQ(To("/status/404").size(), 3u);

  RunResult shown = Cli({"job", "status", id});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("after failures: 3 consecutive runs failed"),
            std::string::npos)
      << shown.out;
  RunResult got = timer::testing::Run(
      {"/usr/bin/curl", "-sS", "--max-time", "20", "-H",
       "Authorization: Bearer " + token_,
       absl::StrCat("http://127.0.0.1:", http_port_, "/v1/jobs/", id)});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  json api = json::parse(got.out, nullptr, false);
  ASSERT_FALSE(api.is_discarded()) << got.out;
  EXPECT_EQ(api["status"], "PAUSED") << got.out;
  EXPECT_EQ(api["inactive_reason"]["cause"], "CONSECUTIVE_FAILURES") << got.out;

  // Three failure notices and one pause notice, all signed.
  ASSERT_TRUE(server_->WaitFor([&](const auto&) { return To("/hook").size() >= 4; }))
      << json(To("/hook")).dump();
  std::map<std::string, int> events;
  json pause;
  for (const json& h : To("/hook")) {
    EXPECT_TRUE(SignatureValid(h["headers"]["Timer-Signature"], h["body"]));
    json doc = json::parse(h["body"].get<std::string>());
    events[doc["event"]]++;
    if (doc["event"] == "pause") pause = doc;
  }
  EXPECT_EQ(events, (std::map<std::string, int>{{"failure", 3}, {"pause", 1}}));
  EXPECT_EQ(pause["job"]["id"], id);
  EXPECT_EQ(pause["job"]["status"], "PAUSED");
  EXPECT_EQ(pause["inactive_reason"]["cause"], "CONSECUTIVE_FAILURES") << pause.dump();
  // Pausing the paused job again (a user's pause) sends no second notice.
  RunResult again = Cli({"job", "pause", id});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_FALSE(server_->WaitFor([&](const auto&) { return To("/hook").size() >= 5; },
                                std::chrono::milliseconds(500)));
}

}  // namespace
}  // namespace timer::testing
