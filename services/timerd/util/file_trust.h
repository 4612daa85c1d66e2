// CheckTrusted: may timerd trust what it reads from this path? The rule of
// sshd's StrictModes: the path (and, if asked, every directory above it) must
// be owned by root or by the user timerd runs as, and must not be writable by
// its group or by others. For the directories above, two exceptions: one
// writable by others but with the sticky bit (/tmp) is accepted, since only
// its owner and the owner of an entry may rename or remove that entry; and
// one writable by its group is accepted, since many systems give each user
// a group of their own (a home directory is then often 0775).
//
// Used for what timerd executes or believes at start: the plugin directory
// and its plugins, the config file, TLS and JWT key files, and (with
// root_may_own = false) the data directory and its store files.
//
//   RETURN_IF_ERROR(util::CheckTrusted(path, {.uid = ::geteuid()}));
//
// Errors: NOT_FOUND (the path does not exist), FAILED_PRECONDITION (not the
// kind of file asked for), PERMISSION_DENIED (owner or mode); each message
// starts with the path and names the problem and its fix. Plain functions;
// thread-safe.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace timer::util {

struct TrustOptions {
  uid_t uid = 0;               // The user timerd runs as (geteuid()).
  bool root_may_own = true;    // Root's files are trusted too.
  bool check_parents = false;  // Check every directory above the path too.
  enum class Kind { kAny, kFile, kDirectory };
  Kind kind = Kind::kAny;
};

// Checks `path` (following symbolic links; with check_parents, the
// directories above its real path).
absl::Status CheckTrusted(const std::string& path, const TrustOptions& options);

// The same test for a file already open (no race between check and use).
absl::Status CheckTrustedFd(int fd, const std::string& path_for_messages,
                            const TrustOptions& options);

// The owner and mode check alone, for a stat result.
absl::Status CheckTrustedStat(const struct stat& st, const std::string& path,
                              const TrustOptions& options);

}  // namespace timer::util
