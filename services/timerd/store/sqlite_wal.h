// WalCheckpointer: keeps SQLite's write-ahead log of one database short.
//
// SQLite's own checkpoint runs inside a commit and stalls every write queued
// behind it, so it is turned off: a thread of this class copies the WAL into
// the database file (PASSIVE checkpoints, on its own connection) every
// `interval`. SQLite starts a WAL over only when all of it is in the file,
// which a checkpoint running beside a busy writer never reaches: so once the
// WAL holds `restart_frames` frames, the thread runs passes back to back
// until little is left, and the writer copies the rest between two commits
// (AfterCommit, a short pause); the next commit then starts the WAL over
// instead of growing the file without end.
//
// Ownership: borrows the writer's connection, which must outlive this
// object; Stop() (or the destructor) before closing it.
// Thread-safety: AfterCommit only on the thread that commits through the
// writer connection, between commits; checkpoints() and Stop() from any
// thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/sqlite_util.h"

namespace timer::store {

class WalCheckpointer {
 public:
  struct Options {
    std::string path;  // The database file, for the thread's connection.
    // Between two background passes; InfiniteDuration: no thread (the
    // writer then checkpoints alone at restart_frames).
    absl::Duration interval = absl::Milliseconds(50);
    int restart_frames = 32768;
  };

  // Turns `writer`'s automatic checkpoints off, hooks its commits, bounds
  // the WAL file's size, and starts the background thread.
  static absl::StatusOr<std::unique_ptr<WalCheckpointer>> Start(Db& writer,
                                                                Options options);
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Stops the background thread. Idempotent.
  void Stop();

  // After each commit, on the writer's thread: finishes a checkpoint when
  // the WAL is due to start over.
  void AfterCommit();

  // Checkpoints the writer finished so that the WAL could start over.
  int64_t checkpoints() const { return checkpoints_.load(std::memory_order_relaxed); }

 private:
  WalCheckpointer(Db& writer, Options options);
  void Loop();

  // Left to copy when the writer may finish a checkpoint without a long
  // pause.
  static constexpr int kFinishFrames = 512;

  Db& writer_;
  const Options options_;
  // Frames in the WAL after the last commit (set by SQLite's WAL hook).
  std::atomic<int> wal_frames_{0};
  // Held by whichever connection is checkpointing: SQLite allows one
  // checkpoint at a time, and the writer must never wait for one.
  absl::Mutex checkpoint_mu_;
  std::atomic<int64_t> checkpoints_{0};
  // Set by the background thread when so little of the WAL is left to copy
  // that the writer can finish the checkpoint without a long pause.
  std::atomic<bool> finish_wanted_{false};

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace timer::store
