// The configs the documentation shows are configs timerd accepts: every
// ```toml block of README.md and docs/*.md parses (server/config.h), passes
// the checks timerd makes at start, and hands each [plugins.NAME] table to
// the real provider NAME, which must accept it too. And docs/DEPLOYMENT.md's
// reference table is `timerd config reference`, so it lists every key.
//
// A block that is deliberately not a whole config (a fragment that needs
// another, a refused example) is skipped when the line before its fence is
// `<!-- config: fragment -->`; use it sparingly.
//
// The paths come from the build: TIMER_README_MD, TIMER_DOCS_DIR and the
// providers' TIMER_NOOP_SO and TIMER_TRANSFER_SO.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin_host/plugin_host.h"
#include "server/config.h"

namespace timer::server {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct TomlBlock {
  std::string file;
  int line = 0;  // Of the opening fence, 1-based.
  std::string text;
};

constexpr char kFragmentMarker[] = "<!-- config: fragment -->";

// The ```toml blocks of a Markdown text, each with its fence's indentation
// removed from its lines (blocks inside list items are indented).
std::vector<TomlBlock> TomlBlocks(const std::string& file, const std::string& markdown) {
  std::vector<TomlBlock> blocks;
  std::istringstream in(markdown);
  std::string line, previous;
  int number = 0;
  TomlBlock* open = nullptr;
  size_t indent = 0;
  while (std::getline(in, line)) {
    ++number;
    const size_t first = line.find_first_not_of(' ');
    const std::string trimmed = first == std::string::npos ? "" : line.substr(first);
    if (open == nullptr) {
      if (trimmed == "```toml") {
        if (previous == kFragmentMarker) {
          // Skip to the closing fence.
          while (std::getline(in, line)) {
            ++number;
            const size_t f = line.find_first_not_of(' ');
            if (f != std::string::npos && line.substr(f) == "```") break;
          }
          previous = "```";
          continue;
        }
        blocks.push_back({file, number, ""});
        open = &blocks.back();  // Valid until the next push_back, after its fence.
        indent = first;
      }
      if (!trimmed.empty()) previous = trimmed;
      continue;
    }
    if (trimmed == "```") {
      open = nullptr;
      previous = trimmed;
      continue;
    }
    const size_t cut = std::min(indent, first == std::string::npos ? line.size() : first);
    absl::StrAppend(&open->text, line.substr(cut), "\n");
  }
  EXPECT_EQ(open, nullptr) << file << ": a ```toml block is not closed";
  return blocks;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// README.md and docs/*.md, by the name they are reported under.
std::map<std::string, std::string> Docs() {
  std::map<std::string, std::string> docs = {{"README.md", ReadFile(TIMER_README_MD)}};
  for (const fs::directory_entry& e : fs::directory_iterator(TIMER_DOCS_DIR)) {
    if (e.path().extension() == ".md") {
      docs["docs/" + e.path().filename().string()] = ReadFile(e.path().string());
    }
  }
  return docs;
}

const std::map<std::string, std::string> kProviderSo = {
    {"noop", TIMER_NOOP_SO},
    {"transfer", TIMER_TRANSFER_SO},
};

TEST(TomlBlocksTest, FindsIndentedBlocksAndSkipsMarkedFragments) {
  const std::vector<TomlBlock> blocks = TomlBlocks("t.md",
                                                   "text\n"
                                                   "```toml\n"
                                                   "workers = 2\n"
                                                   "```\n"
                                                   "```sh\n"
                                                   "not = toml\n"
                                                   "```\n"
                                                   "1. item:\n"
                                                   "\n"
                                                   "   ```toml\n"
                                                   "   [auth.jwt]\n"
                                                   "     leeway_seconds = 5\n"
                                                   "   ```\n"
                                                   "<!-- config: fragment -->\n"
                                                   "```toml\n"
                                                   "bogus = 1\n"
                                                   "```\n"
                                                   "```toml\n"
                                                   "listen = \"localhost:1\"\n"
                                                   "```\n");
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[0].line, 2);
  EXPECT_EQ(blocks[0].text, "workers = 2\n");
  EXPECT_EQ(blocks[1].line, 10);
  EXPECT_EQ(blocks[1].text, "[auth.jwt]\n  leeway_seconds = 5\n");
  EXPECT_EQ(blocks[2].line, 18);
  EXPECT_EQ(blocks[2].text, "listen = \"localhost:1\"\n");
}

TEST(ConfigDocsTest, EveryTomlBlockIsAConfigTimerdAccepts) {
  int checked = 0;
  std::map<std::string, int> per_file;
  for (const auto& [file, text] : Docs()) {
    for (const TomlBlock& block : TomlBlocks(file, text)) {
      const std::string where = absl::StrCat(block.file, ":", block.line);
      SCOPED_TRACE(where + ":\n" + block.text);
      ++checked;
      ++per_file[file];
      absl::StatusOr<Config> config = ParseConfig(block.text, where);
      ASSERT_TRUE(config.ok()) << config.status();
      // What TimerServer::Start checks before serving.
      EXPECT_TRUE(ValidateConfig(*config).ok()) << ValidateConfig(*config);
      const absl::Status listen = ValidateListenAddress(
          config->listen, config->allow_insecure_remote || !config->tls_cert.empty());
      EXPECT_TRUE(listen.ok()) << listen;
      // Each provider's table, given to that provider as timerd would.
      for (const auto& [name, provider_config] : config->plugins.items()) {
        ASSERT_EQ(kProviderSo.count(name), 1u) << "no provider named " << name;
        auto plugin = plugin_host::LoadPlugin(kProviderSo.at(name), config->plugins);
        EXPECT_TRUE(plugin.ok()) << "[plugins." << name << "]: " << plugin.status();
      }
    }
  }
  // The extraction found the blocks it should (README's and DEPLOYMENT's).
  EXPECT_GE(per_file["README.md"], 1);
  EXPECT_GE(per_file["docs/DEPLOYMENT.md"], 3);
  EXPECT_GE(checked, 4);
}

TEST(ConfigDocsTest, DeploymentHasTheReferenceOfEveryKey) {
  const std::string deployment = ReadFile(absl::StrCat(TIMER_DOCS_DIR, "/DEPLOYMENT.md"));
  // Verbatim, so a key added to the table fails here until the doc has it:
  // paste the output of `timerd config reference`.
  EXPECT_THAT(deployment, HasSubstr(ConfigReference()))
      << "docs/DEPLOYMENT.md lacks the output of `timerd config reference`:\n"
      << ConfigReference();
}

}  // namespace
}  // namespace timer::server
