// CliTest: the base of end-to-end tests that drive the installed timerd and
// timer binaries. The install prefix comes from TIMER_INSTALL_PREFIX (ctest
// installs the build there first). Each test gets a temporary directory; every
// timerd listens on a free loopback port and is stopped when its Daemon is
// destroyed.
//
// timerd requires credentials, so the first StartTimerd() issues a token for
// kIdentity with `timerd token issue` and Cli() sends it (TIMER_TOKEN). The
// CLI's token cache lives in the test's directory (XDG_CONFIG_HOME).
//
// StartTimerdWithConfig() writes a TOML file (timerd.toml in the test's
// directory) first; StartTimerdWithHttp() adds an HTTP listener on a free
// loopback port and leaves that port in http_port_.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "process.h"

namespace timer::testing {

class CliTest : public ::testing::Test {
 protected:
  using json = nlohmann::json;

  void SetUp() override {
    const char* prefix = std::getenv("TIMER_INSTALL_PREFIX");
    ASSERT_NE(prefix, nullptr) << "TIMER_INSTALL_PREFIX must name the install prefix";
    timerd_ = std::string(prefix) + "/bin/timerd";
    timer_ = std::string(prefix) + "/bin/timer";
    ASSERT_TRUE(std::filesystem::exists(timerd_)) << timerd_;
    ASSERT_TRUE(std::filesystem::exists(timer_)) << timer_;
    data_dir_ = tmp_.path() + "/data";
  }

  static constexpr char kIdentity[] = "e2e@example.org";

  // Issues a token with the installed `timerd token issue` over data_dir_
  // (timerd may or may not be running); returns it (the last line printed).
  std::string IssueToken(const std::string& identity,
                         std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {timerd_,   "token",      "issue", "--data-dir",
                                     data_dir_, "--identity", identity};
    argv.insert(argv.end(), extra.begin(), extra.end());
    RunResult r = timer::testing::Run(argv);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    const size_t nl = out.rfind('\n');
    return nl == std::string::npos ? out : out.substr(nl + 1);
  }

  // Runs `timerd token ARGS... --data-dir data_dir_`.
  RunResult TokenCommand(std::vector<std::string> args) {
    std::vector<std::string> argv = {timerd_, "token"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--data-dir", data_dir_});
    return timer::testing::Run(argv);
  }

  // Starts timerd on a free port over data_dir_ and waits until it listens.
  std::unique_ptr<Daemon> StartTimerd(std::vector<std::string> extra = {}) {
    if (token_.empty()) token_ = IssueToken(kIdentity);
    std::vector<std::string> argv = {timerd_, "--listen", "127.0.0.1:0", "--data-dir",
                                     data_dir_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto daemon = std::make_unique<Daemon>(argv);
    std::string address;
    EXPECT_TRUE(daemon->WaitForLog("listening on ", absl::Seconds(20), &address))
        << daemon->log();
    address_ = address;
    return daemon;
  }

  // Writes `config` (TOML) to the test's timerd.toml and starts timerd with
  // it (--config, then `extra`).
  std::unique_ptr<Daemon> StartTimerdWithConfig(const std::string& config,
                                                std::vector<std::string> extra = {}) {
    const std::string path = tmp_.path() + "/timerd.toml";
    std::ofstream(path) << config;
    extra.insert(extra.begin(), {"--config", path});
    return StartTimerd(std::move(extra));
  }

  // As StartTimerdWithConfig, with `http_listen = "127.0.0.1:0"` before
  // `config`; waits until the listener serves (`scheme`: "https" when
  // `config` names a certificate) and sets http_port_ to its port.
  std::unique_ptr<Daemon> StartTimerdWithHttp(const std::string& config = "",
                                              std::vector<std::string> extra = {},
                                              const std::string& scheme = "http") {
    auto daemon = StartTimerdWithConfig("http_listen = \"127.0.0.1:0\"\n" + config,
                                        std::move(extra));
    std::string rest;  // "127.0.0.1:PORT"
    EXPECT_TRUE(daemon->WaitForLog("http: serving on " + scheme + "://",
                                   absl::Seconds(10), &rest))
        << daemon->log();
    http_port_ = 0;
    const size_t colon = rest.rfind(':');
    for (size_t i = colon == std::string::npos ? rest.size() : colon + 1;
         i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i])); ++i) {
      http_port_ = http_port_ * 10 + (rest[i] - '0');
    }
    EXPECT_GT(http_port_, 0) << rest;
    return daemon;
  }

  // Runs the CLI against address_ with token_ (TIMER_TOKEN).
  RunResult Cli(std::vector<std::string> args) { return CliAs(token_, std::move(args)); }

  // Runs the CLI with `token` in TIMER_TOKEN (none if empty) and the token
  // cache under the test's directory.
  RunResult CliAs(const std::string& token, std::vector<std::string> args,
                  std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {timer_, "--server", address_};
    argv.insert(argv.end(), args.begin(), args.end());
    env.push_back("TIMER_TOKEN=" + token);
    env.push_back("XDG_CONFIG_HOME=" + tmp_.path() + "/config");
    return timer::testing::Run(argv, env);
  }

  // Runs a command with --format json that must succeed; returns its output.
  json CliJson(std::vector<std::string> args) {
    args.insert(args.begin(), {"--format", "json"});
    RunResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json parsed = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(parsed.is_discarded()) << r.out;
    return parsed;
  }

  // Polls `timer job status` until `done` holds (at most `timeout`).
  json WaitForJob(const std::string& id, const std::function<bool(const json&)>& done,
                  absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    json job;
    do {
      job = CliJson({"job", "status", "--show-deleted", id});
      if (done(job)) return job;
      absl::SleepFor(absl::Milliseconds(50));  // Polling the server's state.
    } while (absl::Now() < deadline);
    ADD_FAILURE() << "timed out waiting for job " << id << ": " << job.dump();
    return job;
  }

  // Polls `timer job results` until the newest result satisfies `done` (at
  // most `timeout`).
  json WaitForRun(const std::string& id, const std::function<bool(const json&)>& done,
                  absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    json run;
    do {
      json results = CliJson({"job", "results", id});
      if (results.contains("results") && !results["results"].empty()) {
        run = results["results"][0];
        if (done(run)) return run;
      }
      absl::SleepFor(absl::Milliseconds(50));  // Polling the server's state.
    } while (absl::Now() < deadline);
    ADD_FAILURE() << "timed out waiting for a run of job " << id << ": " << run.dump();
    return run;
  }

  TempDir tmp_;
  std::string timerd_, timer_, data_dir_, address_;
  std::string token_;  // kIdentity's, issued by the first StartTimerd().
  int http_port_ = 0;  // The HTTP listener's, set by StartTimerdWithHttp().
};

}  // namespace timer::testing
