// The data directory: where the store (timer.db, with its -wal and -shm
// files while open) and the LOCK file live.
//
// PrepareDataDir() creates the directory, private (0700), when it is
// missing. When it exists, timerd did not necessarily create it, so nothing
// is changed: it is checked instead. It, and timer.db, timer.db-wal,
// timer.db-shm and LOCK where present, must be owned by the user timerd runs
// as and not writable by group or others; otherwise another local user could
// have moved the store away and planted one of their own (whose tokens would
// then authenticate as anyone). A directory that fails the check is refused
// (PERMISSION_DENIED, naming the path and the problem), never chmod'ed.
//
// LockDataDir() then takes an exclusive advisory lock on dir/LOCK, so two
// timerds never share a store, and returns its descriptor (the caller closes
// it).
//
// Plain functions, for start-up (one thread).
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace timer::server {

absl::Status PrepareDataDir(const std::string& dir, uid_t uid);
absl::StatusOr<int> LockDataDir(const std::string& dir, uid_t uid);

}  // namespace timer::server
