#include "store/sqlite_wal.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"
#include "util/thread_name.h"

namespace timer::store {

WalCheckpointer::WalCheckpointer(Db& writer, Options options)
    : writer_(writer), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<WalCheckpointer>> WalCheckpointer::Start(Db& writer,
                                                                        Options options) {
  std::unique_ptr<WalCheckpointer> wal(new WalCheckpointer(writer, std::move(options)));
  // No automatic checkpoint inside a commit (it would stall every write
  // queued behind it): Loop copies the WAL on its own connection, and the
  // writer only ends a checkpoint for the WAL to start over (AfterCommit).
  RETURN_IF_ERROR(writer.Exec("PRAGMA wal_autocheckpoint = 0;"));
  // Replaces the (now off) autocheckpoint hook: after each commit, the
  // number of frames in the WAL, for AfterCommit.
  sqlite3_wal_hook(
      writer.get(),
      +[](void* arg, sqlite3*, const char*, int frames) {
        static_cast<WalCheckpointer*>(arg)->wal_frames_.store(frames,
                                                              std::memory_order_relaxed);
        return SQLITE_OK;
      },
      wal.get());
  // A WAL that grew past this (a reader held an old snapshot while the
  // writer went on) is cut back when it next starts over.
  // The file's own page size: an older file keeps its 4 KiB pages.
  ASSIGN_OR_RETURN(const int64_t page_bytes, writer.QueryInt("PRAGMA page_size"));
  const int64_t frame_bytes = page_bytes + 24;
  RETURN_IF_ERROR(writer.Exec(
      absl::StrCat("PRAGMA journal_size_limit = ",
                   4 * static_cast<int64_t>(wal->options_.restart_frames) * frame_bytes,
                   ";")
          .c_str()));
  if (wal->options_.interval != absl::InfiniteDuration()) {
    wal->thread_ = std::thread([w = wal.get()] {
      util::SetThreadName("store-checkpoint");
      w->Loop();
    });
  }
  return wal;
}

WalCheckpointer::~WalCheckpointer() {
  Stop();
  sqlite3_wal_hook(writer_.get(), nullptr, nullptr);
}

void WalCheckpointer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void WalCheckpointer::Loop() {
  absl::StatusOr<Db> db = Db::Open(options_.path);
  if (!db.ok()) return;
  db->Exec("PRAGMA busy_timeout = 5000;").IgnoreError();
  // A connection opens the WAL when it first reads; until then a checkpoint
  // through it does nothing (it reports a log of -1).
  db->QueryInt("SELECT count(*) FROM sqlite_schema").IgnoreError();
  int copied = 0;  // Frames the last pass found in the WAL.
  bool again = false;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      // Every interval (at once while catching up for a restart), or at
      // once when stopping.
      mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                           again ? absl::ZeroDuration() : options_.interval);
      if (stopping_) break;
    }
    again = false;
    // Nothing committed since the last pass: nothing to copy.
    const int frames = wal_frames_.load(std::memory_order_relaxed);
    if (frames == 0 || frames == copied) continue;
    int log = 0, done = 0;
    {
      // PASSIVE: copies what it can without blocking the writer or readers.
      absl::MutexLock lock(&checkpoint_mu_);
      sqlite3_wal_checkpoint_v2(db->get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log,
                                &done);
    }
    copied = log;
    if (log < options_.restart_frames || done < 0) continue;
    // Time for the WAL to start over. Each pass leaves what was committed
    // while it ran; passes back to back shrink that until the writer can
    // copy the rest in a moment, between two commits.
    const int behind = wal_frames_.load(std::memory_order_relaxed) - done;
    if (behind <= kFinishFrames) {
      finish_wanted_.store(true, std::memory_order_relaxed);
    } else {
      again = true;
    }
  }
}

void WalCheckpointer::AfterCommit() {
  const int frames = wal_frames_.load(std::memory_order_relaxed);
  if (frames < options_.restart_frames) return;
  // Normally the background passes first bring the copy close to the WAL's
  // end; the writer finishes alone when there are none, or when they fall
  // far behind (the WAL's size stays bounded either way).
  const bool alone = options_.interval == absl::InfiniteDuration() ||
                     frames >= 4 * options_.restart_frames;
  if (!alone && !finish_wanted_.load(std::memory_order_relaxed)) return;
  // A background pass is running: try again after the next commit.
  if (!checkpoint_mu_.TryLock()) return;
  // No commit can happen meanwhile (this is the writer), so the checkpoint
  // reaches the WAL's end unless a reader still uses an older snapshot;
  // then the next write transaction starts the WAL over.
  int log = 0, done = 0;
  const int rc = sqlite3_wal_checkpoint_v2(writer_.get(), nullptr,
                                           SQLITE_CHECKPOINT_PASSIVE, &log, &done);
  finish_wanted_.store(false, std::memory_order_relaxed);
  checkpoint_mu_.Unlock();
  if (rc == SQLITE_OK) checkpoints_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace timer::store
