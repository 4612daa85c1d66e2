// Tests that give a file to another user: whether this process can.
//
// Root can, outside a user namespace; root inside one that maps only
// itself (Bazel's linux-sandbox) cannot, and neither can anyone else. Tests
// that need it skip, saying why, where it is impossible; CI runs them as
// root in a plain process, where they run.
#pragma once

#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include <string>

namespace timer::testing {

// The other user files are given to (nobody).
inline constexpr uid_t kOtherUid = 65534;

// Whether chown to kOtherUid works here (probed once on a temporary file).
inline bool CanGiveFilesAway() {
  static const bool can = [] {
    std::string path = "/tmp/other_user.XXXXXX";
    const int fd = ::mkstemp(path.data());
    if (fd < 0) return false;
    const bool ok = ::fchown(fd, kOtherUid, kOtherUid) == 0;
    ::close(fd);
    ::unlink(path.c_str());
    return ok;
  }();
  return can;
}

// The reason a test gives when it cannot.
inline constexpr char kCannotGiveFilesAway[] =
    "giving a file to another user needs root outside a user namespace";

}  // namespace timer::testing
