// The web view in a real browser: the installed timerd with an HTTP
// listener, two identities' tokens, and tests/web/web_test.mjs driving
// Debian's headless Chromium through puppeteer-core (scripts/deps.sh
// installs chromium, and the pinned node modules with `npm ci` in
// tests/web/). The script prints its checks as JSON; each must hold.
//
// With TIMER_WEB_SCREENSHOT=PATH the script also writes a PNG of the job
// page there (docs/images/web-job.png is made so: README, "Web view").
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli_fixture.h"

namespace timer::testing {
namespace {

using nlohmann::json;

constexpr char kOther[] = "other@example.org";

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

class WebE2eTest : public CliTest {};

TEST_F(WebE2eTest, TheViewWorksInHeadlessChromium) {
  const std::string node = EnvOr("TIMER_NODE", "/usr/bin/node");
  const std::string chromium = EnvOr("TIMER_CHROMIUM", "/usr/bin/chromium");
  // Where the script really is (under Bazel, its runfile is a symlink to
  // the source tree, whose tests/web/node_modules `npm ci` filled).
  std::error_code ec;
  const std::string dir =
      std::filesystem::canonical(std::string(TIMER_WEB_TEST_DIR) + "/web_test.mjs", ec)
          .parent_path()
          .string();
  ASSERT_FALSE(ec) << TIMER_WEB_TEST_DIR << "/web_test.mjs: " << ec.message();
  ASSERT_TRUE(std::filesystem::exists(node)) << node << ": run scripts/deps.sh";
  ASSERT_TRUE(std::filesystem::exists(chromium)) << chromium << ": run scripts/deps.sh";
  ASSERT_TRUE(std::filesystem::exists(dir + "/node_modules/puppeteer-core/package.json"))
      << dir << "/node_modules: run scripts/deps.sh (npm ci in tests/web)";

  auto daemon = StartTimerdWithHttp();
  ASSERT_GT(http_port_, 0) << daemon->log();
  const std::string url = absl::StrCat("http://127.0.0.1:", http_port_);
  const std::string other = IssueToken(kOther);

  std::vector<std::string> env = {
      "TIMER_WEB_URL=" + url,
      "TIMER_WEB_TOKEN=" + token_,
      std::string("TIMER_WEB_IDENTITY=") + kIdentity,
      "TIMER_WEB_OTHER_TOKEN=" + other,
      "TIMER_CHROMIUM=" + chromium,
      "HOME=" + tmp_.path(),
      "TMPDIR=" + tmp_.path(),
      "TZ=Europe/Berlin",  // Times are shown in the browser's zone, not UTC.
  };
  if (const char* shot = std::getenv("TIMER_WEB_SCREENSHOT")) {
    env.push_back(std::string("TIMER_WEB_SCREENSHOT=") + shot);
  }
  RunResult r =
      timer::testing::Run({node, dir + "/web_test.mjs"}, env, absl::Seconds(240));
  json out = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(out.is_object()) << "exit " << r.exit_code << "\nstdout: " << r.out
                               << "\nstderr: " << r.err;
  const json& checks = out["checks"];
  // Every scenario of the issue's acceptance ran (a step that throws skips
  // the rest; its check says why).
  EXPECT_GE(checks.size(), 31u) << checks.dump(2);
  for (const json& c : checks) {
    EXPECT_TRUE(c.value("ok", false))
        << c.value("name", "?") << ": " << c.value("detail", "");
    std::cout << (c.value("ok", false) ? "[ok] " : "[FAILED] ") << c.value("name", "?")
              << "\n";
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(daemon->Stop(SIGTERM), 0) << daemon->log();
}

}  // namespace
}  // namespace timer::testing
