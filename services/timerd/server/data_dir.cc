#include "server/data_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "util/file_trust.h"

namespace timer::server {
namespace {

namespace fs = std::filesystem;

util::TrustOptions Private(uid_t uid) { return {.uid = uid, .root_may_own = false}; }

absl::Status Refused(const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("data_dir: ", s.message()));
}

// mkdir -p, private: each missing directory is made 0700 (and, because the
// umask may have taken bits away, chmod'ed to exactly that: it is ours).
absl::Status CreatePrivate(const fs::path& dir) {
  std::vector<fs::path> missing;
  for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) break;
    if (errno != ENOENT) {
      return absl::FailedPreconditionError(absl::StrCat("data_dir: cannot create ",
                                                        dir.string(), ": ", p.string(),
                                                        ": ", std::strerror(errno)));
    }
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0700) != 0) {
      if (errno == EEXIST) continue;  // Made meanwhile by someone else: checked later.
      return absl::FailedPreconditionError(absl::StrCat(
          "data_dir: cannot create ", dir.string(), ": ", std::strerror(errno)));
    }
    ::chmod(it->c_str(), 0700);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PrepareDataDir(const std::string& dir, uid_t uid) {
  if (dir.empty()) return absl::InvalidArgumentError("data_dir: must not be empty");
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return absl::FailedPreconditionError(
          absl::StrCat("data_dir: ", dir, ": ", std::strerror(errno)));
    }
    fs::path path(dir);
    // "a/b/" names "a/b": create that, not an empty last component.
    if (path.filename().empty()) path = path.parent_path();
    if (absl::Status s = CreatePrivate(path); !s.ok()) return s;
  }
  util::TrustOptions directory = Private(uid);
  directory.kind = util::TrustOptions::Kind::kDirectory;
  if (absl::Status s = util::CheckTrusted(dir, directory); !s.ok()) return Refused(s);
  util::TrustOptions file = Private(uid);
  file.kind = util::TrustOptions::Kind::kFile;
  for (const char* name : {"timer.db", "timer.db-wal", "timer.db-shm", "LOCK"}) {
    const std::string path = absl::StrCat(dir, "/", name);
    absl::Status s = util::CheckTrusted(path, file);
    if (absl::IsNotFound(s)) continue;
    if (!s.ok()) return Refused(s);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> LockDataDir(const std::string& dir, uid_t uid) {
  const std::string lock_path = dir + "/LOCK";
  const int fd =
      ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir: cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  util::TrustOptions file = Private(uid);
  file.kind = util::TrustOptions::Kind::kFile;
  if (absl::Status s = util::CheckTrustedFd(fd, lock_path, file); !s.ok()) {
    ::close(fd);
    return Refused(s);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir: ", dir, " is in use by another timerd"));
  }
  return fd;
}

}  // namespace timer::server
