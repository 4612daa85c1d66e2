// Tests of the CLI's token cache (clients/timer/token_cache.h): private
// file modes, atomic round trips, and refusal of a cache others can read.
#include "token_cache.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timer::cli {
namespace {

using ::testing::HasSubstr;

class TokenCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "timer-cache-XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
    path_ = dir_ + "/config/timer/tokens.json";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static mode_t Mode(const std::string& path) {
    struct stat st;
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

  std::string dir_, path_;
};

TEST_F(TokenCacheTest, CreatedPrivateAndRoundTrips) {
  TokenCache cache(path_);
  ASSERT_TRUE(cache.Load().ok());  // Missing: empty.
  EXPECT_FALSE(cache.Get("127.0.0.1:1").has_value());
  cache.Put("127.0.0.1:1", {"tmr_secret", "alice"});
  cache.Put("[::1]:2", {"tmr_other", "bob"});
  ASSERT_TRUE(cache.Save().ok());
  EXPECT_EQ(Mode(path_), 0600u);
  EXPECT_EQ(Mode(dir_ + "/config/timer"), 0700u);

  TokenCache again(path_);
  ASSERT_TRUE(again.Load().ok());
  ASSERT_TRUE(again.Get("127.0.0.1:1").has_value());
  EXPECT_EQ(again.Get("127.0.0.1:1")->token, "tmr_secret");
  EXPECT_EQ(again.Get("[::1]:2")->identity, "bob");
  EXPECT_TRUE(again.Remove("127.0.0.1:1"));
  EXPECT_FALSE(again.Remove("127.0.0.1:1"));
  ASSERT_TRUE(again.Save().ok());
  EXPECT_EQ(Mode(path_), 0600u);
  TokenCache third(path_);
  ASSERT_TRUE(third.Load().ok());
  EXPECT_FALSE(third.Get("127.0.0.1:1").has_value());
  EXPECT_TRUE(third.Get("[::1]:2").has_value());
}

TEST_F(TokenCacheTest, ReadableByOthersIsRefusedWithHowToFixIt) {
  TokenCache cache(path_);
  cache.Put("s", {"tmr_secret", "alice"});
  ASSERT_TRUE(cache.Save().ok());
  for (mode_t mode : {0644, 0640, 0604, 0620}) {
    ASSERT_EQ(::chmod(path_.c_str(), mode), 0);
    TokenCache loaded(path_);
    absl::Status s = loaded.Load();
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << mode;
    EXPECT_THAT(std::string(s.message()), HasSubstr("chmod 600 " + path_));
    EXPECT_FALSE(loaded.Get("s").has_value());
  }
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  TokenCache fixed(path_);
  EXPECT_TRUE(fixed.Load().ok());
}

TEST_F(TokenCacheTest, SymlinkAndGarbageAreRefused) {
  TokenCache cache(path_);
  cache.Put("s", {"t", "i"});
  ASSERT_TRUE(cache.Save().ok());
  const std::string link = dir_ + "/link.json";
  std::filesystem::create_symlink(path_, link);
  EXPECT_EQ(TokenCache(link).Load().code(), absl::StatusCode::kPermissionDenied);
  std::ofstream(path_) << "not json";
  EXPECT_EQ(TokenCache(path_).Load().code(), absl::StatusCode::kDataLoss);
}

TEST_F(TokenCacheTest, DefaultPathFollowsXdgConfigHome) {
  ::setenv("XDG_CONFIG_HOME", "/x/cfg", 1);
  EXPECT_EQ(TokenCache::DefaultPath(), "/x/cfg/timer/tokens.json");
  ::unsetenv("XDG_CONFIG_HOME");
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(TokenCache::DefaultPath(), "/home/someone/.config/timer/tokens.json");
}

}  // namespace
}  // namespace timer::cli
