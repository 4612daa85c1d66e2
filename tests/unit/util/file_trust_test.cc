// Tests of util/file_trust.h: who may own, and who may write, what timerd
// trusts. Modes are set by the test; a file of another user (nobody, uid
// 65534) needs root, so those cases run only as root (as in CI).
#include "util/file_trust.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "other_user.h"

namespace timer::util {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr uid_t kNobody = 65534;

class FileTrustTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "file_trust.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    file_ = dir_ + "/file";
    std::ofstream(file_) << "x";
    ASSERT_EQ(::chmod(file_.c_str(), 0644), 0);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms(0700), ec);
    fs::remove_all(dir_, ec);
  }
  static TrustOptions Me() { return {.uid = ::geteuid()}; }

  std::string dir_, file_;
};

TEST_F(FileTrustTest, AFileOfTheUserNotWritableByOthersIsTrusted) {
  EXPECT_TRUE(CheckTrusted(file_, Me()).ok());
  EXPECT_TRUE(CheckTrusted(dir_, Me()).ok());
  ASSERT_EQ(::chmod(file_.c_str(), 0444), 0);
  EXPECT_TRUE(CheckTrusted(file_, Me()).ok());
}

TEST_F(FileTrustTest, WritableByGroupOrOthersIsPermissionDeniedNamingTheMode) {
  ASSERT_EQ(::chmod(file_.c_str(), 0666), 0);
  absl::Status s = CheckTrusted(file_, Me());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()),
              AllOf(StartsWith(file_ + ": "), HasSubstr("writable by others"),
                    HasSubstr("mode 0666"), HasSubstr("chmod go-w")));
  ASSERT_EQ(::chmod(file_.c_str(), 0664), 0);
  EXPECT_THAT(std::string(CheckTrusted(file_, Me()).message()),
              HasSubstr("writable by its group"));
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  EXPECT_EQ(CheckTrusted(dir_, Me()).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(FileTrustTest, ADirectoryAboveWritableByOthersIsRefusedUnlessSticky) {
  const TrustOptions parents = {.uid = ::geteuid(), .check_parents = true};
  ASSERT_EQ(::chmod(file_.c_str(), 0600), 0);
  EXPECT_TRUE(CheckTrusted(file_, parents).ok()) << CheckTrusted(file_, parents);
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  EXPECT_TRUE(CheckTrusted(file_, Me()).ok()) << "only asked for the file";
  absl::Status s = CheckTrusted(file_, parents);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()),
              AllOf(StartsWith(file_ + ": in an untrusted directory: "),
                    HasSubstr(fs::canonical(dir_).string())));
  // Sticky, as /tmp: others cannot rename or remove the file.
  ASSERT_EQ(::chmod(dir_.c_str(), 01777), 0);
  EXPECT_TRUE(CheckTrusted(file_, parents).ok()) << CheckTrusted(file_, parents);
  // Writable by its group only: a user's private group, as often.
  ASSERT_EQ(::chmod(dir_.c_str(), 0775), 0);
  EXPECT_TRUE(CheckTrusted(file_, parents).ok()) << CheckTrusted(file_, parents);
}

TEST_F(FileTrustTest, ASymbolicLinkIsJudgedByWhatItPointsTo) {
  const std::string link = dir_ + "/link";
  fs::create_symlink(file_, link);
  EXPECT_TRUE(CheckTrusted(link, Me()).ok());
  ASSERT_EQ(::chmod(file_.c_str(), 0646), 0);
  EXPECT_EQ(CheckTrusted(link, Me()).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(FileTrustTest, KindAndExistenceAreChecked) {
  EXPECT_EQ(CheckTrusted(dir_ + "/missing", Me()).code(), absl::StatusCode::kNotFound);
  TrustOptions file = Me();
  file.kind = TrustOptions::Kind::kFile;
  EXPECT_TRUE(CheckTrusted(file_, file).ok());
  EXPECT_EQ(CheckTrusted(dir_, file).code(), absl::StatusCode::kFailedPrecondition);
  TrustOptions directory = Me();
  directory.kind = TrustOptions::Kind::kDirectory;
  EXPECT_TRUE(CheckTrusted(dir_, directory).ok());
  EXPECT_THAT(std::string(CheckTrusted(file_, directory).message()),
              HasSubstr("not a directory"));
}

TEST_F(FileTrustTest, AnotherUsersFileIsRefusedRootsOnlyWhenAllowed) {
  if (!timer::testing::CanGiveFilesAway()) {
    if (::geteuid() != 0) {
      // Not root: root's own files are the other owner at hand.
      TrustOptions mine = Me();
      EXPECT_TRUE(CheckTrusted("/", mine).ok());
      mine.root_may_own = false;
      EXPECT_THAT(std::string(CheckTrusted("/", mine).message()),
                  HasSubstr("owned by uid 0"));
    }
    GTEST_SKIP() << timer::testing::kCannotGiveFilesAway;
  }
  ASSERT_EQ(::chown(file_.c_str(), kNobody, kNobody), 0);
  absl::Status s = CheckTrusted(file_, Me());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()),
              AllOf(StartsWith(file_ + ": "), HasSubstr("owned by uid 65534")));
  // Timerd running as nobody trusts nobody's file, and root's, unless told not to.
  EXPECT_TRUE(CheckTrusted(file_, {.uid = kNobody}).ok());
  ASSERT_EQ(::chown(file_.c_str(), 0, 0), 0);
  EXPECT_TRUE(CheckTrusted(file_, {.uid = kNobody}).ok());
  EXPECT_EQ(CheckTrusted(file_, {.uid = kNobody, .root_may_own = false}).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(FileTrustTest, AnOpenFileIsCheckedWithoutARace) {
  const int fd = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(CheckTrustedFd(fd, file_, Me()).ok());
  ASSERT_EQ(::fchmod(fd, 0606), 0);
  EXPECT_EQ(CheckTrustedFd(fd, file_, Me()).code(), absl::StatusCode::kPermissionDenied);
  ::close(fd);
}

}  // namespace
}  // namespace timer::util
