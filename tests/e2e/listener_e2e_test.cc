// The installed timerd against connection-level abuse that needs a process
// of its own: a file-descriptor limit lowered for it alone (so running out
// of descriptors is cheap), its open-files limit as started, and its
// resident memory while an unauthenticated client tries to park request
// bodies in it. docs/RELIABILITY.md, "Abuse", quotes the figures.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli_fixture.h"
#include "grpc/health/v1/health_probe.grpc.pb.h"
#include "h2_testing.h"

namespace timer::testing {
namespace {

class ListenerE2eTest : public CliTest {
 protected:
  // Starts timerd under `ulimit_args` (e.g. "-n 64"), with `extra` flags.
  std::unique_ptr<Daemon> StartLimited(const std::string& ulimit_args,
                                       std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {
        "/bin/sh",
        "-c",
        absl::StrCat("ulimit ", ulimit_args, " && exec \"$0\" \"$@\""),
        timerd_,
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto daemon = std::make_unique<Daemon>(argv);
    std::string address;
    EXPECT_TRUE(daemon->WaitForLog("listening on ", absl::Seconds(20), &address))
        << daemon->log();
    address_ = address;
    return daemon;
  }

  int Port() const {
    int port = 0;
    EXPECT_TRUE(absl::SimpleAtoi(address_.substr(address_.rfind(':') + 1), &port));
    return port;
  }

  // Health.Check over a fresh channel, with a short deadline.
  bool Healthy() {
    auto stub = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    grpc::health::v1::HealthCheckResponse resp;
    return stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp).ok() &&
           resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  }

  static int OpenFiles(pid_t pid) {
    int n = 0;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ec)) {
      (void)e;
      ++n;
    }
    return n;
  }

  // A line of /proc/PID/<file> starting with `key`, split on blanks.
  static std::vector<std::string> ProcLine(pid_t pid, const std::string& file,
                                           const std::string& key) {
    std::ifstream in(absl::StrCat("/proc/", pid, "/", file));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(key, 0) != 0) continue;
      std::istringstream words(line.substr(key.size()));
      std::vector<std::string> out;
      for (std::string w; words >> w;) out.push_back(w);
      return out;
    }
    return {};
  }

  static int64_t RssKib(pid_t pid) {
    const std::vector<std::string> v = ProcLine(pid, "status", "VmRSS:");
    int64_t kib = 0;
    if (v.empty() || !absl::SimpleAtoi(v[0], &kib)) return -1;
    return kib;
  }
};

TEST_F(ListenerE2eTest, TheListenerSurvivesRunningOutOfFileDescriptors) {
  // How many descriptors timerd holds when idle, to leave it a few more.
  int idle_files = 0;
  {
    auto probe = StartTimerd();
    ASSERT_TRUE(Healthy());
    idle_files = OpenFiles(probe->pid());
    ASSERT_GT(idle_files, 0);
    probe->Stop(SIGTERM);
  }
  const int limit = idle_files + 16;
  auto daemon = StartLimited(absl::StrCat("-n ", limit));
  ASSERT_TRUE(Healthy()) << daemon->log();
  // Far more connections than descriptors left: accept4 fails with EMFILE.
  std::vector<std::unique_ptr<RawH2Connection>> flood;
  for (int i = 0; i < limit; ++i) {
    flood.push_back(std::make_unique<RawH2Connection>(Port()));
    if (flood.back()->connected()) flood.back()->SendPreface();
  }
  // Once they are gone, timerd answers again: its listener lived through it.
  flood.clear();
  const absl::Time closed_at = absl::Now();
  const absl::Time give_up = closed_at + absl::Seconds(20);
  bool healthy = false;
  while (!(healthy = Healthy()) && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(100));  // Polling the server's state.
  }
  std::cout << limit << " preface-only connections under RLIMIT_NOFILE " << limit
            << ": healthy " << absl::FormatDuration(absl::Now() - closed_at)
            << " after they closed\n";
  EXPECT_TRUE(healthy) << "timerd stopped accepting after running out of descriptors\n"
                       << daemon->log();
  EXPECT_EQ(daemon->Stop(SIGTERM), 0) << daemon->log();
}

TEST_F(ListenerE2eTest, TheSoftOpenFilesLimitIsRaisedToTheHardLimit) {
  auto daemon = StartLimited("-S -n 256");
  // Max open files  SOFT  HARD  files
  const std::vector<std::string> limits =
      ProcLine(daemon->pid(), "limits", "Max open files");
  ASSERT_GE(limits.size(), 2u);
  if (limits[1] == "256") GTEST_SKIP() << "the hard limit is 256 here";
  int64_t hard = 0;
  ASSERT_TRUE(absl::SimpleAtoi(limits[1], &hard)) << limits[1];
  EXPECT_EQ(limits[0], absl::StrCat(std::min<int64_t>(hard, int64_t{1} << 20)))
      << "the soft limit stayed at " << limits[0];
}

TEST_F(ListenerE2eTest, AnUnauthenticatedClientCannotParkRequestBodies) {
  auto daemon = StartTimerd();
  ASSERT_TRUE(Healthy());
  const int64_t rss_before = RssKib(daemon->pid());
  RawH2Connection c(Port());
  ASSERT_TRUE(c.connected() && c.SendPreface());
  ASSERT_TRUE(c.ReadUntil([&c] { return c.HasSettings(); }, absl::Seconds(5)));
  // 20 calls without credentials, each announcing a 4 MiB request (just
  // under max_message_bytes) and sending as much of it as the server lets
  // it, within 5 s in all.
  constexpr int kCalls = 20;
  constexpr uint32_t kRequest = (4 << 20) - 64;
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  size_t taken = 0;
  for (int i = 0; i < kCalls; ++i) {
    const uint32_t stream = c.StartCall("/timer.v1.TimerService/CreateJob");
    ASSERT_NE(stream, 0u);
    c.ReadUntil([&] { return c.Ended(stream); }, absl::Milliseconds(200));
    if (c.Ended(stream)) continue;
    const absl::Duration left = give_up - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    taken += c.SendData(
        stream, RawH2Connection::MessagePrefix(kRequest) + std::string(kRequest - 1, 'x'),
        left);
  }
  const int64_t rss_under_load = RssKib(daemon->pid());
  std::cout << "request bytes taken without credentials: " << taken << "; timerd RSS "
            << rss_before << " KiB before, " << rss_under_load << " KiB under the load\n";
  EXPECT_LT(taken, size_t{1} << 20);
  EXPECT_LT(rss_under_load - rss_before, 32 * 1024) << "KiB";
  EXPECT_TRUE(Healthy());
}

}  // namespace
}  // namespace timer::testing
