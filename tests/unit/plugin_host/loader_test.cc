// Loader tests: good plugins load; each broken one is refused with one warn
// line naming it, and the rest still load.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

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

TEST(LoadPlugins, LoadsTheGoodAndRefusesEachBrokenOneWithAWarning) {
  TempDir dir;
  fs::copy_file(TIMER_NOOP_SO, dir.path() / "noop.so");
  for (const char* f : {"fake_good", "fake_v2", "fake_refuse", "fake_nosym", "fake_small",
                        "fake_initfail", "fake_badname"}) {
    fs::copy_file(Fake(f), dir.path() / (std::string(f) + ".so"));
  }
  // Sorts after noop.so, so the real noop is loaded first and this one is
  // the duplicate.
  fs::copy_file(Fake("fake_dup"), dir.path() / "zz_dup_noop.so");
  WriteFile(dir.path() / "x.so", "this is not an ELF file\n");
  WriteFile(dir.path() / "README.txt", "ignored: not *.so\n");

  LogCapture log;
  nlohmann::json configs = {{"fake_c", {{"greeting", "hello"}}},
                            {"ghost", nlohmann::json::object()}};
  auto registry = LoadPlugins(
      {dir.str(), dir.str() + "/../" + dir.path().filename().string()}, configs);
  ASSERT_TRUE(registry.ok()) << registry.status();
  EXPECT_EQ(Names(**registry), (std::vector<std::string>{"fake_c", "noop"}));

  for (const char* f :
       {"fake_v2.so", "fake_refuse.so", "fake_nosym.so", "fake_small.so",
        "fake_initfail.so", "fake_badname.so", "zz_dup_noop.so", "x.so"}) {
    EXPECT_EQ(log.WarnLinesWith(std::string("/") + f + ":"), 1) << f;
  }
  EXPECT_EQ(log.WarnLinesWith("README"), 0);
  EXPECT_EQ(log.WarnLinesWith("plugins.ghost"), 1);

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

TEST(LoadPlugins, MissingDirectoryIsSkippedAndConfigMustBeAnObject) {
  auto empty = LoadPlugins({"/nonexistent/timer/plugins"}, nlohmann::json::object());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ((*empty)->size(), 0u);
  EXPECT_EQ(LoadPlugins({}, nlohmann::json::array()).status().code(),
            absl::StatusCode::kInvalidArgument);
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

}  // namespace
}  // namespace timer::plugin_host
