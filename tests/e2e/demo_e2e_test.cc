// End-to-end test of the demo scripts/run.sh sets up for a new user: the same
// scripts/demo-config.sh writes the config and the demo folders, the
// installed timerd starts with that config, and the `timer job transfer`
// command the script prints (run.sh prints it as "what to do next") copies
// hello.txt from the demo source endpoint to the destination.
//
// The script's path comes from the build (TIMER_DEMO_CONFIG_SH); the install
// prefix from TIMER_INSTALL_PREFIX, as for every e2e test.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli_fixture.h"
#include "process.h"

namespace timer::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Chomp(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

class DemoE2eTest : public CliTest {
 protected:
  // Runs scripts/demo-config.sh with `args`.
  RunResult DemoConfig(std::vector<std::string> args) {
    args.insert(args.begin(), {"/bin/bash", TIMER_DEMO_CONFIG_SH});
    return timer::testing::Run(args);
  }

  // As run.sh: the config for the user the CLI acts as.
  std::string WriteDemoConfig() {
    RunResult r = DemoConfig({data_dir_, kIdentity});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Chomp(r.out);
  }

  // The command run.sh prints, as words; empty if it prints none.
  std::vector<std::string> Example() {
    RunResult r = DemoConfig({"--example", data_dir_});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return absl::StrSplit(Chomp(r.out), ' ', absl::SkipEmpty());
  }
};

TEST_F(DemoE2eTest, ThePrintedTransferCopiesHelloTxtBetweenTheDemoEndpoints) {
  const std::string config = WriteDemoConfig();
  EXPECT_EQ(config, data_dir_ + "/timerd.toml");
  const std::string source = data_dir_ + "/demo/source/hello.txt";
  const std::string dest = data_dir_ + "/demo/dest/hello.txt";
  ASSERT_TRUE(fs::is_regular_file(source));
  const std::string hello = ReadFile(source);
  EXPECT_FALSE(hello.empty());
  ASSERT_TRUE(fs::is_directory(data_dir_ + "/demo/dest"));
  EXPECT_FALSE(fs::exists(dest));
  // The data directory stays private, as timerd makes it.
  EXPECT_EQ(fs::status(data_dir_).permissions() & fs::perms::all, fs::perms::owner_all);

  auto daemon = StartTimerd({"--config", config});
  ASSERT_FALSE(address_.empty()) << daemon->log();

  // The example is a plain command line (no quoting), run as printed.
  std::vector<std::string> example = Example();
  ASSERT_GE(example.size(), 3u);
  ASSERT_EQ(example[0], "timer");
  ASSERT_EQ(example[1], "job");
  ASSERT_EQ(example[2], "transfer");
  example.erase(example.begin());
  RunResult submitted = Cli(example);
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err << "\n" << daemon->log();

  // The job runs at once and its one run copies the file.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!(fs::exists(dest) && ReadFile(dest) == hello) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));  // Polling the filesystem.
  }
  ASSERT_TRUE(fs::exists(dest)) << daemon->log();
  EXPECT_EQ(ReadFile(dest), hello);

  // `timer job status JOB_ID`, as the next step says: one run, SUCCEEDED.
  json jobs = CliJson({"job", "list"});
  ASSERT_TRUE(jobs.contains("jobs")) << jobs.dump();
  ASSERT_EQ(jobs["jobs"].size(), 1u) << jobs.dump();
  const std::string id = jobs["jobs"][0]["job_id"];
  EXPECT_TRUE(absl::StrContains(submitted.out, id)) << submitted.out;
  json job = WaitForJob(id, [](const json& j) {
    return j.contains("results") && !j["results"].empty() &&
           j["results"][0].value("status", "") == "SUCCEEDED";
  });
  const json details =
      json::parse(job["results"][0].value("details", "{}"), nullptr, false);
  EXPECT_EQ(details.value("files_transferred", -1), 1) << job.dump();

  // The endpoints are the demo user's only: another identity's job naming
  // them is refused (an endpoint lists who may use it).
  RunResult other = CliAs(IssueToken("mallory@example.org"), example);
  EXPECT_NE(other.exit_code, 0) << other.out;
  EXPECT_TRUE(absl::StrContains(other.err, "may not use endpoint")) << other.err;
}

TEST_F(DemoE2eTest, ASecondRunKeepsTheUsersConfigAndFiles) {
  WriteDemoConfig();
  const std::string config = data_dir_ + "/timerd.toml";
  const std::string hello = data_dir_ + "/demo/source/hello.txt";
  // The user edits both; a later run.sh must not undo that.
  { std::ofstream(config, std::ios::app) << "workers = 2\n"; }
  { std::ofstream(hello, std::ios::trunc) << "mine\n"; }
  const std::string edited = ReadFile(config);

  EXPECT_EQ(WriteDemoConfig(), config);
  EXPECT_EQ(ReadFile(config), edited);
  EXPECT_EQ(ReadFile(hello), "mine\n");
  EXPECT_FALSE(Example().empty());
}

TEST_F(DemoE2eTest, NoExampleWithoutTheDemoEndpoints) {
  // A config of the user's own, there before run.sh's first run.
  fs::create_directories(data_dir_);
  { std::ofstream(data_dir_ + "/timerd.toml") << "workers = 2\n"; }
  WriteDemoConfig();
  EXPECT_EQ(ReadFile(data_dir_ + "/timerd.toml"), "workers = 2\n");
  EXPECT_TRUE(Example().empty());
}

TEST_F(DemoE2eTest, TimerdConfigCheckAcceptsTheDemoAndTheSampleAndNamesWhatIsWrong) {
  const auto check = [&](const std::string& config) {
    return timer::testing::Run({timerd_, "config", "check", "--config", config});
  };
  // The demo config, its transfer table checked by the installed provider.
  RunResult demo = check(WriteDemoConfig());
  EXPECT_EQ(demo.exit_code, 0) << demo.err;

  // `timerd config sample`: every key at its default.
  RunResult sample = timer::testing::Run({timerd_, "config", "sample"});
  ASSERT_EQ(sample.exit_code, 0) << sample.err;
  const std::string sample_path = tmp_.path() + "/sample.toml";
  { std::ofstream(sample_path) << sample.out; }
  RunResult sample_check = check(sample_path);
  EXPECT_EQ(sample_check.exit_code, 0) << sample_check.err << "\n" << sample.out;

  // A key out of range, a provider refusing its table, a provider not there.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"workers = 0\n", "workers: must be a whole number from 1 to 256 (got 0)"},
      {"[[plugins.transfer.endpoints]]\nid = \"x\"\nroot = \"/tmp\"\n"
       "max_bytes_per_second = 1\n",
       "plugins.transfer.endpoints[0].max_bytes_per_second: unknown field"},
      {"[plugins.nosuch]\n", "plugins.nosuch: no provider nosuch is installed"},
  };
  for (const auto& [toml, message] : bad) {
    const std::string path = tmp_.path() + "/bad.toml";
    { std::ofstream(path, std::ios::trunc) << toml; }
    RunResult r = check(path);
    EXPECT_EQ(r.exit_code, 1) << toml;
    EXPECT_TRUE(absl::StrContains(r.err, message)) << r.err;
  }
}

TEST_F(DemoE2eTest, RefusesAnIdentityThatWouldBreakTheToml) {
  RunResult r = DemoConfig({data_dir_, "eve\"]\nworkers = 1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(fs::exists(data_dir_ + "/timerd.toml"));
}

}  // namespace
}  // namespace timer::testing
