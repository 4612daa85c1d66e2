// End-to-end test of scripts/cluster.sh, as a new user drives it, on the
// installed timerd and timer (TIMER_INSTALL_PREFIX): `start` makes a
// throwaway PostgreSQL and three replicas and logs the CLI in to each; any
// replica serves a job created through another; `start` again is refused;
// `status` shows every replica serving; after one replica is killed and
// another frozen (a crash, a stall), `stop` still stops everything and
// leaves no process, no directory and no saved session behind.
//
// The script's path comes from the build (TIMER_CLUSTER_SH); its link and the
// CLI's token cache live in the test's directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "process.h"

namespace timer::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  std::string out = s.str();
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// The process exists and is not a zombie (the replicas outlive the script
// that started them, so nobody here reaps them).
bool Alive(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

pid_t PidIn(const std::string& path) {
  std::string text = ReadFile(path);
  text = text.substr(0, text.find('\n'));
  int pid = 0;
  return absl::SimpleAtoi(text, &pid) ? pid : -1;
}

class ClusterScriptE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* prefix = std::getenv("TIMER_INSTALL_PREFIX");
    ASSERT_NE(prefix, nullptr) << "TIMER_INSTALL_PREFIX must name the install prefix";
    timer_ = std::string(prefix) + "/bin/timer";
    link_ = tmp_.path() + "/cluster";
    env_ = {"TIMER_CLUSTER_LINK=" + link_, "XDG_CONFIG_HOME=" + tmp_.path() + "/config",
            "TIMER_TOKEN="};
  }

  // Whatever happened, nothing keeps running.
  void TearDown() override {
    if (fs::is_symlink(link_)) Script("stop");
  }

  RunResult Script(const std::string& command) {
    return timer::testing::Run({"/bin/bash", TIMER_CLUSTER_SH, command}, env_,
                               absl::Seconds(90));
  }

  // The CLI against replica n (1-based), with the session `start` saved.
  RunResult Cli(int n, std::vector<std::string> args) {
    args.insert(args.begin(), {timer_, "--server", address_[n - 1], "--timeout", "10"});
    return timer::testing::Run(args, env_);
  }

  TempDir tmp_;
  std::string timer_;
  std::string link_;
  std::vector<std::string> env_;
  std::vector<std::string> address_;
};

TEST_F(ClusterScriptE2eTest, StartServesOnEveryReplicaAndStopLeavesNothingRunning) {
  const absl::Time started = absl::Now();
  RunResult start = Script("start");
  ASSERT_EQ(start.exit_code, 0) << start.out << start.err;
  const absl::Duration start_took = absl::Now() - started;
  const std::string dir = fs::read_symlink(link_);
  ASSERT_TRUE(absl::StartsWith(dir, "/tmp/timer-cluster-")) << dir;

  std::vector<pid_t> pids;
  for (int n = 1; n <= 3; ++n) {
    const std::string r = absl::StrCat(dir, "/replica", n);
    address_.push_back(ReadFile(r + "/address"));
    pids.push_back(PidIn(r + "/pid"));
    ASSERT_TRUE(Alive(pids.back())) << "replica " << n;
    // Where it listens and logs is printed.
    EXPECT_TRUE(absl::StrContains(start.out, address_.back())) << start.out;
    EXPECT_TRUE(absl::StrContains(start.out,
                                  link_ + "/replica" + std::to_string(n) + "/timerd.log"))
        << start.out;
  }
  const pid_t postmaster = PidIn(dir + "/pg/data/postmaster.pid");
  ASSERT_TRUE(Alive(postmaster));
  // The replicas connect as the role without DDL rights, and no password is
  // in their config (it is in pgpass).
  EXPECT_TRUE(absl::StrContains(ReadFile(dir + "/replica1/timerd.toml"),
                                "store = \"postgres://timerd@127.0.0.1:"));

  // Any replica serves any call: created through replica 1, read through
  // each, with the session start saved for every replica.
  RunResult created = Cli(1, {"job", "submit", "--name", "tick", "--interval", "1h",
                              "--start", "2030-01-01T00:00Z", "--action-provider", "noop",
                              "--action-body", "{}", "--format", "json"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const size_t at = created.out.find("\"job_id\": \"");
  ASSERT_NE(at, std::string::npos) << created.out;
  const std::string job_id = created.out.substr(at + 11, 36);
  for (int n = 1; n <= 3; ++n) {
    RunResult got = Cli(n, {"job", "status", job_id});
    EXPECT_EQ(got.exit_code, 0) << "replica " << n << ": " << got.err;
    EXPECT_TRUE(absl::StrContains(got.out, "tick")) << got.out;
  }
  // RunJobNow through each replica, as the least-privilege role: two of the
  // three relay it to the one scheduling the job; three runs in all.
  for (int n = 1; n <= 3; ++n) {
    RunResult ran = Cli(n, {"job", "run-now", job_id, "--format", "json"});
    EXPECT_EQ(ran.exit_code, 0) << "replica " << n << ": " << ran.err;
    EXPECT_TRUE(absl::StrContains(ran.out, absl::StrCat("\"last_run_number\": \"", n)) ||
                absl::StrContains(ran.out, absl::StrCat("\"last_run_number\": ", n)))
        << ran.out;
  }

  // Twice: refused, and the running cluster is left alone.
  RunResult again = Script("start");
  EXPECT_NE(again.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(again.err, "already running")) << again.err;
  EXPECT_EQ(fs::read_symlink(link_), dir);

  RunResult status = Script("status");
  ASSERT_EQ(status.exit_code, 0) << status.err;
  size_t serving = 0;
  for (size_t p = status.out.find(" serving "); p != std::string::npos;
       p = status.out.find(" serving ", p + 1)) {
    ++serving;
  }
  EXPECT_EQ(serving, 3u) << status.out;

  // A crash and a stall: stop must cope with both.
  ASSERT_EQ(kill(pids[1], SIGKILL), 0);
  ASSERT_EQ(kill(pids[2], SIGSTOP), 0);
  RunResult stop = Script("stop");
  EXPECT_EQ(stop.exit_code, 0) << stop.out << stop.err;
  for (pid_t pid : pids) EXPECT_FALSE(Alive(pid)) << pid;
  EXPECT_FALSE(Alive(postmaster));
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(fs::is_symlink(link_));
  // The CLI forgot the replicas' addresses.
  const std::string cache = ReadFile(tmp_.path() + "/config/timer/tokens.json");
  for (const std::string& address : address_) {
    EXPECT_FALSE(absl::StrContains(cache, address)) << cache;
  }
  // Stopping again is harmless.
  RunResult twice = Script("stop");
  EXPECT_EQ(twice.exit_code, 0) << twice.err;
  std::printf("cluster.sh: start took %s, whole test %s\n",
              absl::FormatDuration(start_took).c_str(),
              absl::FormatDuration(absl::Now() - started).c_str());
}

}  // namespace
}  // namespace timer::testing
