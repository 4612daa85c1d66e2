// Loader tests: only the providers asked for are opened, from a trusted
// directory; each broken or untrusted one fails the load, naming its key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "other_user.h"
#include "plugin_host/plugin_host.h"
#include "plugin_test_util.h"

namespace timer::plugin_host {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::WriteFile;

std::string Fake(const std::string& name) {
  return std::string(TIMER_FAKES_DIR) + "/" + name + ".so";
}

// Collects what spdlog's default logger writes while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  // Lines at warn level or above containing `needle`.
  int WarnLinesWith(const std::string& needle) const {
    int n = 0;
    for (const auto& msg : sink_->last_raw()) {
      if (msg.level >= spdlog::level::warn &&
          std::string(msg.payload.data(), msg.payload.size()).find(needle) !=
              std::string::npos) {
        ++n;
      }
    }
    return n;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

std::vector<std::string> Names(const PluginRegistry& r) {
  std::vector<std::string> names;
  for (auto* p : r.List()) names.push_back(p->info().name());
  return names;
}

// Sets TIMER_FAKE_LOADED_MARKER (tests/support/fake_plugin.c) while it
// lives: every fake plugin's constructor appends its name to the file, so a
// test sees which files were opened at all.
class LoadedMarker {
 public:
  explicit LoadedMarker(const TempDir& dir) : path_(dir.path() / "loaded.txt") {
    ::setenv("TIMER_FAKE_LOADED_MARKER", path_.c_str(), 1);
  }
  ~LoadedMarker() { ::unsetenv("TIMER_FAKE_LOADED_MARKER"); }
  std::string Loaded() const { return fs::exists(path_) ? testing::ReadFile(path_) : ""; }

 private:
  fs::path path_;
};

// A plugin directory of its own (0755 inside a private temp dir).
fs::path PluginDir(const TempDir& tmp) {
  const fs::path dir = tmp.path() / "plugins";
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms(0755));
  return dir;
}

TEST(LoadPlugins, LoadsOnlyTheProvidersAskedForAndOpensNoOtherFile) {
  TempDir tmp;
  LoadedMarker marker(tmp);
  const fs::path dir = PluginDir(tmp);
  fs::copy_file(TIMER_NOOP_SO, dir / "noop.so");
  fs::copy_file(Fake("fake_good"), dir / "fake_c.so");
  // Nobody asked for these: they are never opened, so their constructors
  // never run as timerd.
  for (const char* f : {"fake_v2", "fake_refuse", "fake_nosym", "fake_small",
                        "fake_initfail", "fake_badname", "fake_dup"}) {
    fs::copy_file(Fake(f), dir / (std::string(f) + ".so"));
  }
  WriteFile(dir / "x.so", "this is not an ELF file\n");

  LogCapture log;
  nlohmann::json configs = {{"fake_c", {{"greeting", "hello"}}}};
  auto registry = LoadPlugins(dir.string(), {"noop"}, configs, ::geteuid());
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_EQ(Names(**registry), (std::vector<std::string>{"fake_c", "noop"}));
  EXPECT_EQ(marker.Loaded(), "fake_c\n");
  EXPECT_EQ(log.WarnLinesWith(""), 0);

  // The good C plugin got its own config table and works through the host.
  domain::ActionProvider* fake = (*registry)->Find("fake_c");
  ASSERT_NE(fake, nullptr);
  EXPECT_EQ(fake->info().abi_version(), "1.7");  // newer minor, larger table: accepted
  EXPECT_EQ(fake->info().input_schema(), R"({"type":"object"})");
  auto st = fake->Start("job/1", domain::LocalIdentity(), "{}");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->state, domain::ActionStatus::State::kSucceeded);
  EXPECT_EQ(nlohmann::json::parse(st->details), configs["fake_c"]);
  EXPECT_EQ(fake->Release("job/1").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(fake->Validate(domain::LocalIdentity(), "[]").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*registry)->Find("nope"), nullptr);

  // ABI 1.1's describe(): a table that leaves it NULL describes nothing;
  // noop (provider_support) describes an empty object.
  auto described = fake->Describe(domain::LocalIdentity());
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(*described, "");
  described = (*registry)->Find("noop")->Describe(domain::LocalIdentity());
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_EQ(*described, "{}");
  EXPECT_EQ((*registry)->Find("noop")->info().abi_version(), "1.2");
}

TEST(LoadPlugins, AProviderThatCannotBeLoadedFailsTheLoadNamingItsKey) {
  TempDir tmp;
  const fs::path dir = PluginDir(tmp);
  fs::copy_file(TIMER_NOOP_SO, dir / "noop.so");
  fs::copy_file(Fake("fake_initfail"), dir / "initfail.so");
  fs::copy_file(Fake("fake_v2"), dir / "v2.so");
  fs::copy_file(Fake("fake_dup"), dir / "other.so");  // Holds a provider "noop".
  WriteFile(dir / "junk.so", "not ELF");
  const nlohmann::json none = nlohmann::json::object();
  struct Case {
    std::vector<std::string> names;
    nlohmann::json configs;
    absl::StatusCode code;
    std::string prefix, needle;
  };
  const std::vector<Case> cases = {
      // A typo in a table's name: no such provider.
      {{},
       {{"nopp", none}},
       absl::StatusCode::kNotFound,
       "plugins.nopp: ",
       "no provider nopp is installed"},
      {{"nopp"},
       none,
       absl::StatusCode::kNotFound,
       "load_plugins: nopp: ",
       "no provider nopp is installed"},
      // A provider refusing its table.
      {{},
       {{"initfail", none}},
       absl::StatusCode::kInvalidArgument,
       "plugins.initfail: ",
       "refused on purpose"},
      {{"v2"},
       none,
       absl::StatusCode::kFailedPrecondition,
       "load_plugins: v2: ",
       "built for ABI 2.7"},
      {{"junk"},
       none,
       absl::StatusCode::kFailedPrecondition,
       "load_plugins: junk: ",
       "not a loadable"},
      {{"other"},
       none,
       absl::StatusCode::kFailedPrecondition,
       "load_plugins: other: ",
       "holds provider \"noop\", not \"other\""},
      // Not a name: never turned into a path.
      {{},
       {{"../noop", none}},
       absl::StatusCode::kInvalidArgument,
       "plugins.../noop: ",
       "not a provider name"},
  };
  for (const Case& c : cases) {
    auto r = LoadPlugins(dir.string(), c.names, c.configs, ::geteuid());
    ASSERT_FALSE(r.ok()) << c.prefix;
    EXPECT_EQ(r.status().code(), c.code) << r.status();
    EXPECT_EQ(r.status().message().find(c.prefix), 0u) << r.status();
    EXPECT_NE(r.status().message().find(c.needle), absl::string_view::npos) << r.status();
  }
  EXPECT_EQ(
      LoadPlugins(dir.string(), {}, nlohmann::json::array(), ::geteuid()).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(LoadPlugins, NothingAskedForLoadsNothingAndNeedsNoDirectory) {
  auto empty = LoadPlugins("/nonexistent/timer/plugins", {}, nlohmann::json::object(),
                           ::geteuid());
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ((*empty)->size(), 0u);
  auto missing = LoadPlugins("/nonexistent/timer/plugins", {"noop"},
                             nlohmann::json::object(), ::geteuid());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
}

TEST(LoadPlugins, AnUntrustedDirectoryOrFileIsRefusedBeforeAnythingIsOpened) {
  TempDir tmp;
  LoadedMarker marker(tmp);
  const fs::path dir = PluginDir(tmp);
  fs::copy_file(Fake("fake_good"), dir / "fake_c.so");
  const auto load = [&] {
    return LoadPlugins(dir.string(), {"fake_c"}, nlohmann::json::object(), ::geteuid());
  };
  ASSERT_TRUE(load().ok());
  EXPECT_EQ(marker.Loaded(), "fake_c\n");
  fs::remove(tmp.path() / "loaded.txt");
  // Each problem in turn, each refused before dlopen: the marker stays empty.
  fs::permissions(dir, fs::perms(0777));
  auto r = load();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::AllOf(::testing::StartsWith("plugin_dir: "),
                               ::testing::HasSubstr("writable by others")));
  fs::permissions(dir, fs::perms(0775));
  r = load();
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("its group"));
  fs::permissions(dir, fs::perms(0755));
  fs::permissions(dir / "fake_c.so", fs::perms(0666));
  r = load();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::AllOf(::testing::StartsWith("load_plugins: fake_c: "),
                               ::testing::HasSubstr("fake_c.so: writable by others")));
  fs::permissions(dir / "fake_c.so", fs::perms(0755));
  // A directory above that others may write (and that is not sticky).
  fs::permissions(tmp.path(), fs::perms(0777));
  r = load();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::HasSubstr("in an untrusted directory"));
  fs::permissions(tmp.path(), fs::perms(0700));
  if (timer::testing::CanGiveFilesAway()) {
    // Owned by another user (nobody): refused even though root could read it.
    ASSERT_EQ(::chown((dir / "fake_c.so").c_str(), 65534, 65534), 0);
    r = load();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
    EXPECT_THAT(std::string(r.status().message()),
                ::testing::HasSubstr("owned by uid 65534"));
  }
  EXPECT_EQ(marker.Loaded(), "");
}

TEST(LoadPlugin, ReportsWhyEachBrokenPluginIsRefused) {
  TempDir dir;
  WriteFile(dir.path() / "x.so", "not ELF");
  struct Case {
    std::string path;
    absl::StatusCode code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {(dir.path() / "x.so").string(), absl::StatusCode::kFailedPrecondition,
       "not a loadable"},
      {(dir.path() / "missing.so").string(), absl::StatusCode::kFailedPrecondition,
       "not a loadable"},
      {Fake("fake_nosym"), absl::StatusCode::kFailedPrecondition,
       "no timer_ap_get_api symbol"},
      {Fake("fake_v2"), absl::StatusCode::kFailedPrecondition, "built for ABI 2.7"},
      {Fake("fake_refuse"), absl::StatusCode::kFailedPrecondition, "refused this host"},
      {Fake("fake_small"), absl::StatusCode::kFailedPrecondition,
       "function table too small"},
      {Fake("fake_badname"), absl::StatusCode::kFailedPrecondition,
       "invalid provider name"},
      {Fake("fake_initfail"), absl::StatusCode::kInvalidArgument, "refused on purpose"},
  };
  for (const Case& c : cases) {
    auto p = LoadPlugin(c.path, nlohmann::json::object());
    ASSERT_FALSE(p.ok()) << c.path;
    EXPECT_EQ(p.status().code(), c.code) << p.status();
    EXPECT_NE(p.status().message().find(c.needle), absl::string_view::npos) << p.status();
    EXPECT_EQ(p.status().message().find(c.path), 0u) << p.status();
  }
}

TEST(LoadPlugin, DuplicateNameIsRefusedBeforeCreate) {
  PluginRegistry registry;
  auto noop = LoadPlugin(TIMER_NOOP_SO, nlohmann::json::object());
  ASSERT_TRUE(noop.ok()) << noop.status();
  ASSERT_TRUE(registry.Add(*std::move(noop)).ok());
  auto dup = LoadPlugin(Fake("fake_dup"), nlohmann::json::object(), &registry);
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.size(), 1u);
}

TEST(LoadPlugin, LoadingTwiceGivesIndependentInstances) {
  // dlopen returns the same handle; each Plugin holds its own reference and
  // provider instance, so destroying one leaves the other working.
  auto a = LoadPlugin(TIMER_NOOP_SO, nlohmann::json::object());
  auto b = LoadPlugin(TIMER_NOOP_SO, nlohmann::json::object());
  ASSERT_TRUE(a.ok() && b.ok());
  a->reset();
  auto st = (*b)->Start("r", domain::LocalIdentity(), "{}");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_TRUE(testing::WaitForEnd(b->get(), st->action_id).ok());
}

// ABI 1.2's error class: read from a FAILED status and from an error a call
// returns; providers built against 1.0 and 1.1 still load, and every one of
// their failures reads PERMANENT (even where the memory past their structs
// says otherwise), as does an UNSPECIFIED class or a NULL error_class.
TEST(LoadPlugin, ErrorClassesReadAsEachMinorSaysThem) {
  struct Case {
    std::string file;
    std::string abi;
    v1::ErrorClass want;
  };
  const std::vector<Case> cases = {
      {"fake_fail_v10", "1.0", v1::ERROR_CLASS_PERMANENT},
      {"fake_fail_v11", "1.1", v1::ERROR_CLASS_PERMANENT},
      {"fake_fail_unspecified", "1.2", v1::ERROR_CLASS_PERMANENT},
      {"fake_fail_transient", "1.2", v1::ERROR_CLASS_TRANSIENT},
      {"fake_fail_attention", "1.2", v1::ERROR_CLASS_NEEDS_ATTENTION},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    auto plugin = LoadPlugin(Fake(c.file), nlohmann::json::object());
    ASSERT_TRUE(plugin.ok()) << plugin.status();
    EXPECT_EQ((*plugin)->info().abi_version(), c.abi);
    // A FAILED action.
    auto st = (*plugin)->Start("job/1", domain::LocalIdentity(), "{}");
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->state, domain::ActionStatus::State::kFailed);
    EXPECT_EQ(st->error, "it broke");
    EXPECT_EQ(st->error_class, c.want);
    // An error start() returns.
    auto refused =
        (*plugin)->Start("job/2", domain::LocalIdentity(), R"({"start_error":1})");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(domain::ErrorClassOf(refused.status()), c.want);
  }
  // noop (provider_support) fills the table's error_class; its failures say
  // nothing, so they read PERMANENT.
  auto noop = LoadPlugin(TIMER_NOOP_SO, nlohmann::json::object());
  ASSERT_TRUE(noop.ok()) << noop.status();
  auto st = (*noop)->Start("r", domain::LocalIdentity(), R"({"fail":true})");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->error_class, v1::ERROR_CLASS_PERMANENT);
}

}  // namespace
}  // namespace timer::plugin_host
