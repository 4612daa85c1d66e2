#include "util/file_trust.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace timer::util {
namespace {

std::string Mode(mode_t mode) { return absl::StrFormat("%04o", mode & 07777); }

std::string Owner(const TrustOptions& options) {
  if (options.uid == 0) return "root";
  return options.root_may_own
             ? absl::StrCat("root or uid ", options.uid, " (the user timerd runs as)")
             : absl::StrCat("uid ", options.uid, " (the user timerd runs as)");
}

}  // namespace

absl::Status CheckTrustedStat(const struct stat& st, const std::string& path,
                              const TrustOptions& options) {
  const bool owner_ok =
      st.st_uid == options.uid || (options.root_may_own && st.st_uid == 0);
  if (!owner_ok) {
    return absl::PermissionDeniedError(absl::StrCat(path, ": owned by uid ", st.st_uid,
                                                    ", not by ", Owner(options),
                                                    "; refusing to trust it"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        path, ": writable by ", (st.st_mode & S_IWOTH) != 0 ? "others" : "its group",
        " (mode ", Mode(st.st_mode), "); refusing to trust it (chmod go-w ", path, ")"));
  }
  if (options.kind == TrustOptions::Kind::kFile && !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
  }
  if (options.kind == TrustOptions::Kind::kDirectory && !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": not a directory"));
  }
  return absl::OkStatus();
}

absl::Status CheckTrustedFd(int fd, const std::string& path_for_messages,
                            const TrustOptions& options) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_for_messages, ": ", std::strerror(errno)));
  }
  return CheckTrustedStat(st, path_for_messages, options);
}

absl::Status CheckTrusted(const std::string& path, const TrustOptions& options) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": does not exist"));
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", std::strerror(e)));
  }
  if (absl::Status s = CheckTrustedStat(st, path, options); !s.ok()) return s;
  if (!options.check_parents) return absl::OkStatus();
  std::error_code ec;
  const std::filesystem::path real = std::filesystem::canonical(path, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", ec.message()));
  }
  TrustOptions parent_options = options;
  parent_options.kind = TrustOptions::Kind::kDirectory;
  for (std::filesystem::path dir = real.parent_path();; dir = dir.parent_path()) {
    struct stat ds;
    if (::stat(dir.c_str(), &ds) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir.string(), ": ", std::strerror(errno)));
    }
    // A sticky directory writable by others (/tmp) lets nobody but the
    // entry's owner rename or remove what is in it. A directory above that
    // is writable by its group is accepted: many systems give each user a
    // group of their own, and a checkout under such a home is 0775.
    struct stat checked = ds;
    checked.st_mode &= ~S_IWGRP;
    if ((ds.st_mode & S_ISVTX) != 0) checked.st_mode &= ~S_IWOTH;
    if (absl::Status s = CheckTrustedStat(checked, dir.string(), parent_options);
        !s.ok()) {
      if (absl::IsPermissionDenied(s)) {
        return absl::PermissionDeniedError(
            absl::StrCat(path, ": in an untrusted directory: ", s.message()));
      }
      return s;
    }
    if (dir == dir.parent_path()) break;
  }
  return absl::OkStatus();
}

}  // namespace timer::util
