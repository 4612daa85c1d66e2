// What the installed timerd believes at start, and from whom: only the
// providers its config names are opened, from a plugin directory no other
// user can write; its config file and data directory must be no other
// user's to change either; a provider table it cannot use stops it. Each
// refusal is an exit status of 1 with one line naming the path (or the
// config key) and the problem.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cli_fixture.h"
#include "other_user.h"

#ifndef TIMER_FAULTS_DIR
#error "TIMER_FAULTS_DIR must name the directory of the fault_* providers"
#endif

namespace timer::testing {
namespace {

namespace fs = std::filesystem;

int ModeOf(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

class TrustE2eTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    // A plugin directory of the test's own with the installed providers.
    plugin_dir_ = tmp_.path() + "/plugins";
    fs::create_directory(plugin_dir_);
    fs::permissions(plugin_dir_, fs::perms(0755));
    const fs::path installed =
        fs::path(timerd_).parent_path().parent_path() / "lib" / "timer" / "plugins";
    for (const char* so : {"noop.so", "transfer.so"}) {
      fs::copy_file(installed / so, plugin_dir_ + "/" + so);
    }
    marker_ = tmp_.path() + "/loaded.txt";
  }

  // Runs timerd to completion (a refused start exits at once; one that
  // starts is killed after 10 s and reports -1).
  RunResult RunTimerd(std::vector<std::string> extra) {
    std::vector<std::string> argv = {timerd_,      "--listen", "127.0.0.1:0",
                                     "--data-dir", data_dir_,  "--plugin-dir",
                                     plugin_dir_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return timer::testing::Run(argv, {"TIMER_FAKE_LOADED_MARKER=" + marker_},
                               absl::Seconds(10));
  }

  std::string WriteConfig(const std::string& toml) {
    const std::string path = tmp_.path() + "/timerd.toml";
    std::ofstream(path, std::ios::trunc) << toml;
    fs::permissions(path, fs::perms(0600));
    return path;
  }

  std::string plugin_dir_, marker_;
};

TEST_F(TrustE2eTest, AFileInThePluginDirectoryThatNobodyNamedIsNeverOpened) {
  // A shared object whose constructor would run as timerd the moment it is
  // opened (it records that it was), under a name no config asks for.
  fs::copy_file(std::string(TIMER_FAULTS_DIR) + "/fault_garbage.so",
                plugin_dir_ + "/evil.so");
  Daemon timerd({timerd_, "--listen", "127.0.0.1:0", "--data-dir", data_dir_,
                 "--plugin-dir", plugin_dir_},
                {"TIMER_FAKE_LOADED_MARKER=" + marker_}, /*with_stdout=*/false);
  ASSERT_TRUE(timerd.WaitForLog("listening on ", absl::Seconds(20))) << timerd.log();
  EXPECT_FALSE(fs::exists(marker_)) << "evil.so was opened";
  EXPECT_EQ(timerd.log().find("evil"), std::string::npos) << timerd.log();
  EXPECT_NE(timerd.log().find("plugin loaded: provider noop"), std::string::npos);
}

TEST_F(TrustE2eTest, APluginDirectoryOthersMayWriteIsRefused) {
  fs::permissions(plugin_dir_, fs::perms(0777));
  RunResult r = RunTimerd({});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("plugin_dir: " + plugin_dir_ + ": writable by others"),
            std::string::npos)
      << r.err;
  fs::permissions(plugin_dir_, fs::perms(0755));
  fs::permissions(plugin_dir_ + "/noop.so", fs::perms(0666));
  r = RunTimerd({});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("load_plugins: noop: " + plugin_dir_ + "/noop.so: writable by"),
            std::string::npos)
      << r.err;
}

TEST_F(TrustE2eTest, APluginOfAnotherUserIsRefused) {
  if (!timer::testing::CanGiveFilesAway())
    GTEST_SKIP() << timer::testing::kCannotGiveFilesAway;
  ASSERT_EQ(::chown((plugin_dir_ + "/transfer.so").c_str(), 65534, 65534), 0);
  RunResult r = RunTimerd({});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("transfer.so: owned by uid 65534"), std::string::npos) << r.err;
}

TEST_F(TrustE2eTest, AConfigFileOthersMayWriteIsRefused) {
  const std::string config = WriteConfig("workers = 2\n");
  fs::permissions(config, fs::perms(0666));
  RunResult r = RunTimerd({"--config", config});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("config file: " + config + ": writable by others"),
            std::string::npos)
      << r.err;
  RunResult check = timer::testing::Run({timerd_, "config", "check", "--config", config});
  EXPECT_EQ(check.exit_code, 1) << check.err;
  EXPECT_NE(check.err.find("writable by others"), std::string::npos) << check.err;
}

TEST_F(TrustE2eTest, ADataDirectoryOthersMayWriteIsRefusedAndLeftAsItIs) {
  fs::create_directory(data_dir_);
  ASSERT_EQ(::chmod(data_dir_.c_str(), 01777), 0);  // As /tmp.
  RunResult r = RunTimerd({});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("data_dir: " + data_dir_ + ": writable by others"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(ModeOf(data_dir_), 01777);
  EXPECT_FALSE(fs::exists(data_dir_ + "/timer.db"));
  // Neither may `timerd token` put a token there.
  RunResult token = TokenCommand({"issue", "--identity", "alice"});
  EXPECT_EQ(token.exit_code, 1) << token.err;
  EXPECT_FALSE(fs::exists(data_dir_ + "/timer.db"));
}

TEST_F(TrustE2eTest, AStorePlantedByAnotherUserIsRefused) {
  if (!timer::testing::CanGiveFilesAway())
    GTEST_SKIP() << timer::testing::kCannotGiveFilesAway;
  IssueToken("alice");  // Creates the data directory and its store.
  ASSERT_EQ(::chown((data_dir_ + "/timer.db").c_str(), 65534, 65534), 0);
  RunResult r = RunTimerd({});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(data_dir_ + "/timer.db: owned by uid 65534"), std::string::npos)
      << r.err;
  EXPECT_EQ(TokenCommand({"list"}).exit_code, 1);
}

TEST_F(TrustE2eTest, AProviderTableTimerdCannotUseStopsIt) {
  // A key the provider does not know, and a provider name with a typo: each
  // used to leave timerd running (and healthy) without the provider.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[plugins.noop]\nrecordfile = \"/tmp/x\"\n", "plugins.noop.recordfile"},
      {"[plugins.tranfser]\n", "plugins.tranfser: no provider tranfser is installed"},
      {"load_plugins = [\"noop\", \"nope\"]\n", "load_plugins: nope: no provider"},
  };
  for (const auto& [toml, message] : cases) {
    RunResult r = RunTimerd({"--config", WriteConfig(toml)});
    EXPECT_EQ(r.exit_code, 1) << toml << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << toml << r.err;
  }
}

}  // namespace
}  // namespace timer::testing
