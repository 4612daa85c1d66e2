// Tests of server/data_dir.h: the data directory is created private when
// missing, checked (never changed) when it exists, and locked.
#include "server/data_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "other_user.h"

namespace timer::server {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

int ModeOf(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "data_dir.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
  std::string tmp_;
  const uid_t me_ = ::geteuid();
};

TEST_F(DataDirTest, AMissingDirectoryAndItsParentsAreCreatedPrivate) {
  const mode_t old = ::umask(0);  // Even a permissive umask gives 0700.
  const std::string dir = tmp_ + "/a/b/data";
  absl::Status s = PrepareDataDir(dir, me_);
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(ModeOf(tmp_ + "/a"), 0700);
  EXPECT_EQ(ModeOf(tmp_ + "/a/b"), 0700);
  EXPECT_EQ(ModeOf(dir), 0700);
  EXPECT_TRUE(PrepareDataDir(tmp_ + "/slash/", me_).ok());
  EXPECT_EQ(ModeOf(tmp_ + "/slash"), 0700);
}

TEST_F(DataDirTest, AnExistingDirectoryIsCheckedAndNeverChanged) {
  const std::string dir = tmp_ + "/data";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  EXPECT_TRUE(PrepareDataDir(dir, me_).ok());
  EXPECT_EQ(ModeOf(dir), 0755);
  for (int mode : {01777, 0777, 0770, 0722}) {
    ASSERT_EQ(::chmod(dir.c_str(), mode), 0);
    absl::Status s = PrepareDataDir(dir, me_);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
    EXPECT_THAT(std::string(s.message()),
                AllOf(StartsWith("data_dir: " + dir + ": "), HasSubstr("writable by")));
    EXPECT_EQ(ModeOf(dir), mode);
  }
}

TEST_F(DataDirTest, StoreFilesAndTheLockMustBeTheUsersAndPrivateToWrite) {
  const std::string dir = tmp_ + "/data";
  ASSERT_TRUE(PrepareDataDir(dir, me_).ok());
  for (const char* name : {"timer.db", "timer.db-wal", "timer.db-shm", "LOCK"}) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << "x";
    ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
    EXPECT_TRUE(PrepareDataDir(dir, me_).ok()) << name;
    ASSERT_EQ(::chmod(path.c_str(), 0646), 0);
    absl::Status s = PrepareDataDir(dir, me_);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << name;
    EXPECT_THAT(std::string(s.message()), HasSubstr(path));
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  }
  // Other files (the demo's config, folders) are the owner's business.
  std::ofstream(dir + "/timerd.toml") << "";
  ASSERT_EQ(::chmod((dir + "/timerd.toml").c_str(), 0666), 0);
  EXPECT_TRUE(PrepareDataDir(dir, me_).ok());
}

TEST_F(DataDirTest, AnotherUsersDirectoryOrStoreIsRefused) {
  const std::string dir = tmp_ + "/data";
  ASSERT_TRUE(PrepareDataDir(dir, me_).ok());
  if (!timer::testing::CanGiveFilesAway()) {
    // As another user would see this directory.
    EXPECT_THAT(std::string(PrepareDataDir(dir, me_ + 1).message()),
                HasSubstr("owned by uid"));
    GTEST_SKIP() << timer::testing::kCannotGiveFilesAway;
  }
  // Root's files are not "trusted" here: the store must be the user's own.
  EXPECT_EQ(PrepareDataDir(dir, 65534).code(), absl::StatusCode::kPermissionDenied);
  const std::string db = dir + "/timer.db";
  std::ofstream(db) << "planted";
  ASSERT_EQ(::chmod(db.c_str(), 0600), 0);
  ASSERT_EQ(::chown(db.c_str(), 65534, 65534), 0);
  absl::Status s = PrepareDataDir(dir, me_);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr(db), HasSubstr("owned by uid 65534")));
}

TEST_F(DataDirTest, TheLockIsExclusiveAndChecked) {
  const std::string dir = tmp_ + "/data";
  ASSERT_TRUE(PrepareDataDir(dir, me_).ok());
  absl::StatusOr<int> first = LockDataDir(dir, me_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(ModeOf(dir + "/LOCK") & 077, 0);
  absl::StatusOr<int> second = LockDataDir(dir, me_);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("in use by another"));
  ::close(*first);
  // A LOCK that is a symbolic link (to a file another user chose) is refused.
  fs::remove(dir + "/LOCK");
  fs::create_symlink(tmp_ + "/elsewhere", dir + "/LOCK");
  EXPECT_FALSE(LockDataDir(dir, me_).ok());
  EXPECT_FALSE(fs::exists(tmp_ + "/elsewhere"));
}

}  // namespace
}  // namespace timer::server
