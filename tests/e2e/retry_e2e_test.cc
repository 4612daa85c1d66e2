// End to end, the installed timerd and timer: a run failing with a
// transient error is retried as the same run (same idempotency key), its
// attempts shown by `timer job results -v`; a SIGKILL of timerd while a run
// waits for its retry neither loses nor repeats the attempt. The noop
// provider fails transiently on demand (fail_class, fail_attempts) and
// records every action it starts (record_file).
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli_fixture.h"

namespace timer::testing {
namespace {

constexpr char kFailOnce[] =
    R"json({"fail": true, "fail_class": "transient", "fail_attempts": 1,
            "fail_message": "connection refused (on purpose)"})json";

class RetryE2eTest : public CliTest {
 protected:
  // timerd with noop recording its starts in record_.
  std::unique_ptr<Daemon> Start() {
    record_ = tmp_.path() + "/starts.txt";
    return StartTimerdWithConfig(absl::StrCat(
        "load_plugins = [\"noop\"]\n[plugins.noop]\nrecord_file = \"", record_, "\"\n"));
  }

  // The request ids noop started actions for, in order.
  std::vector<std::string> Starts() {
    std::ifstream in(record_);
    std::vector<std::string> ids;
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (!f.empty()) ids.push_back(f[0]);
    }
    return ids;
  }

  std::string record_;
};

TEST_F(RetryE2eTest, ATransientFailureIsRetriedAsTheSameRunWithTwoAttempts) {
  auto timerd = Start();
  json job = CliJson({"job", "submit", "--name", "flaky", "--interval", "1h",
                      "--action-provider", "noop", "--action-body", kFailOnce,
                      "--retry-max-attempts", "3", "--retry-backoff", "1s"});
  const std::string id = job["job_id"];
  EXPECT_EQ(job["retry_policy"]["max_attempts"], 3) << job.dump();
  json run = WaitForRun(id, [](const json& r) { return r["status"] == "SUCCEEDED"; });
  EXPECT_EQ(run["run_number"], "1") << run.dump();
  ASSERT_EQ(run["attempts"].size(), 2u) << run.dump();
  EXPECT_EQ(run["attempts"][0]["error_class"], "ERROR_CLASS_TRANSIENT") << run.dump();
  EXPECT_EQ(run["attempts"][0]["error"], "connection refused (on purpose)");
  // The same idempotency key for both attempts.
  EXPECT_EQ(Starts(), (std::vector<std::string>{id + "/1", id + "/1"}));

  RunResult table = Cli({"job", "results", "-v", id});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("attempt 1: "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("failed (transient): connection refused (on purpose)"),
            std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("attempt 2: "), std::string::npos) << table.out;
  RunResult show = Cli({"job", "status", id});
  EXPECT_NE(show.out.find("up to 3 attempts on transient errors"), std::string::npos)
      << show.out;
}

TEST_F(RetryE2eTest, APermanentFailureIsNotRetried) {
  auto timerd = Start();
  json job = CliJson({"job", "submit", "--name", "broken", "--interval", "1h",
                      "--action-provider", "noop", "--action-body",
                      R"({"fail": true, "fail_class": "permanent"})",
                      "--retry-max-attempts", "3", "--retry-backoff", "1s"});
  const std::string id = job["job_id"];
  json run = WaitForRun(id, [](const json& r) { return r["status"] == "FAILED"; });
  EXPECT_EQ(run["error_class"], "ERROR_CLASS_PERMANENT") << run.dump();
  EXPECT_EQ(run["attempts"].size(), 1u) << run.dump();
  absl::SleepFor(absl::Seconds(2));  // Longer than the backoff: no retry comes.
  EXPECT_EQ(Starts().size(), 1u);
}

TEST_F(RetryE2eTest, ASigkillBetweenAttemptsNeitherLosesNorRepeatsOne) {
  auto timerd = Start();
  json job = CliJson({"job", "submit", "--name", "flaky", "--interval", "1h",
                      "--action-provider", "noop", "--action-body", kFailOnce,
                      "--retry-max-attempts", "3", "--retry-backoff", "5s"});
  const std::string id = job["job_id"];
  json waiting = WaitForRun(id, [](const json& r) {
    return r["status"] == "PENDING" && r.contains("next_attempt_time");
  });
  ASSERT_EQ(waiting["attempts"].size(), 1u) << waiting.dump();
  const std::string due = waiting["next_attempt_time"];
  // Killed while the run waits for its second attempt.
  EXPECT_EQ(timerd->Stop(SIGKILL), -1);
  EXPECT_EQ(Starts().size(), 1u);

  timerd = Start();
  json run = WaitForRun(id, [](const json& r) { return r["status"] == "SUCCEEDED"; });
  ASSERT_EQ(run["attempts"].size(), 2u) << run.dump();
  // Made at its time, not before (RFC 3339 UTC strings compare in order).
  EXPECT_GE(run["attempts"][1]["start_time"].get<std::string>(), due) << run.dump();
  // Exactly one more start, with the same key.
  EXPECT_EQ(Starts(), (std::vector<std::string>{id + "/1", id + "/1"}));
  // And nothing more after another restart.
  EXPECT_EQ(timerd->Stop(SIGKILL), -1);
  timerd = Start();
  absl::SleepFor(absl::Seconds(1));  // Time for a wrongly kept retry to run.
  EXPECT_EQ(Starts().size(), 2u);
}

}  // namespace
}  // namespace timer::testing
