// GroupCommitWriter: applies queued write operations in batches, one
// database transaction per batch, a savepoint per operation, and runs their
// callbacks one at a time in commit order.
//
// The database is behind `Transaction` (begin, savepoint, commit...), so any
// store with transactions and savepoints can use it: SqliteStore does; a
// PostgreSQL store would pass a connection of its own. An operation is a
// function applied inside the batch's transaction, on the writer thread,
// returning absl::StatusOr<T> (or absl::Status); its callback gets that
// result once the transaction committed, or UNAVAILABLE when the commit
// failed (then nothing of the batch is durable). A failing operation is
// rolled back to its savepoint alone: the others of its batch commit.
//
// Pacing (group commit): a write that finds the writer idle is committed at
// once. Under load (the previous batch held more than one operation) the
// writer gathers before committing, so that more writes share each commit:
// until twice the previous batch is queued, no write has arrived for
// `gather_gap`, `max_gather` has passed since the previous commit, or
// `max_batch` are queued, whichever comes first. A lone write thus pays no
// wait, a fixed set of callers stops gathering once all of them are queued,
// and a steady stream grows its batches up to `max_gather` worth.
//
// Threads: the writer thread applies and commits batches; a callback thread
// runs the callbacks, in commit order, one at a time, while the writer goes
// on with the next batch. A lone write (a batch of one) whose turn has come
// (no callback running or waiting) has its callback run by the writer
// itself, which saves a thread hand-off on the idle path. Callbacks must not
// block (they may Submit).
//
// Thread-safety: Submit, Close and the counters may be called from any
// thread. `Transaction` and every operation's function are used only on the
// writer thread. The Transaction must outlive the writer (Close()).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace timer::store {

class GroupCommitWriter {
 public:
  // The database side of a batch, called on the writer thread only.
  class Transaction {
   public:
    virtual ~Transaction() = default;
    virtual absl::Status Begin() = 0;
    // Marks where RollbackToSavepoint returns to; one at a time.
    virtual absl::Status Savepoint() = 0;
    virtual void RollbackToSavepoint() = 0;
    virtual void ReleaseSavepoint() = 0;
    virtual absl::Status Commit() = 0;
    // After a failed Begin-to-Commit: undo whatever is open.
    virtual void Rollback() = 0;
    // After every batch (committed or not), outside any transaction: room
    // for upkeep between two commits (SqliteStore finishes WAL checkpoints).
    virtual void AfterBatch() {}
  };

  struct Options {
    // Most operations in one transaction.
    int max_batch = 1024;
    // Longest gathering under load, counted from the end of the previous
    // commit; zero: never gather (commit whatever is queued).
    absl::Duration max_gather = absl::Milliseconds(2);
    // Gathering stops when no write arrived for this long.
    absl::Duration gather_gap = absl::Microseconds(200);
    // Thread names get "-writer" and "-callback" appended (15 chars kept).
    std::string name = "store";
  };

  // Starts the writer and callback threads.
  GroupCommitWriter(Transaction* txn, Options options);
  // Close()s.
  ~GroupCommitWriter();
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  // Queues `apply`; `done` later gets its result (see the header comment).
  // After Close() began, `done` gets UNAVAILABLE at once, on this thread.
  template <typename T>
  void Submit(absl::AnyInvocable<absl::StatusOr<T>()> apply,
              absl::AnyInvocable<void(absl::StatusOr<T>) &&> done) {
    Enqueue(
        std::make_unique<TypedOp<absl::StatusOr<T>>>(std::move(apply), std::move(done)));
  }
  void Submit(absl::AnyInvocable<absl::Status()> apply,
              absl::AnyInvocable<void(absl::Status) &&> done) {
    Enqueue(std::make_unique<TypedOp<absl::Status>>(std::move(apply), std::move(done)));
  }

  // Commits every queued operation, runs every callback, and stops both
  // threads. Later Submits fail with UNAVAILABLE. Idempotent; concurrent
  // callers all return once it is done. Not from a callback.
  void Close();

  // Transactions committed so far.
  int64_t commits() const;

 private:
  // A type-erased operation: applied on the writer thread, finished (its
  // callback run) on the callback thread.
  class Op {
   public:
    virtual ~Op() = default;
    // Applies the operation; its status decides the savepoint's fate.
    virtual absl::Status Apply() = 0;
    // The batch did not commit: the operation fails with `status`.
    virtual void Fail(absl::Status status) = 0;
    virtual void Finish() && = 0;
  };

  template <typename R>  // absl::Status or absl::StatusOr<T>.
  class TypedOp final : public Op {
   public:
    TypedOp(absl::AnyInvocable<R()> apply, absl::AnyInvocable<void(R) &&> done)
        : apply_(std::move(apply)), done_(std::move(done)) {}
    absl::Status Apply() override {
      result_ = apply_();
      if constexpr (std::is_same_v<R, absl::Status>) {
        return result_;
      } else {
        return result_.status();
      }
    }
    void Fail(absl::Status status) override { result_ = std::move(status); }
    void Finish() && override { std::move(done_)(std::move(result_)); }

   private:
    absl::AnyInvocable<R()> apply_;
    absl::AnyInvocable<void(R) &&> done_;
    R result_ = absl::UnknownError("store: write not applied");
  };

  void Enqueue(std::unique_ptr<Op> op);
  void WriterLoop();
  void CallbackLoop();
  // Applies and commits `batch`, then hands it to the callback thread.
  void RunBatch(std::vector<std::unique_ptr<Op>> batch);
  // How many operations to take now (after waiting as the pacing says).
  size_t AwaitBatch(size_t last_batch, absl::Time last_commit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Transaction* const txn_;
  const Options options_;

  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<Op>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;  // Ever, for the gather gap.
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int64_t commits_ ABSL_GUARDED_BY(mu_) = 0;

  // Batches applied whose callbacks are still to run, oldest first.
  absl::Mutex callbacks_mu_;
  std::deque<std::vector<std::unique_ptr<Op>>> committed_ ABSL_GUARDED_BY(callbacks_mu_);
  bool writer_done_ ABSL_GUARDED_BY(callbacks_mu_) = false;
  // Some thread (the callback thread, or the writer for a lone write) is
  // running callbacks: the one-at-a-time, commit-order token.
  bool callbacks_running_ ABSL_GUARDED_BY(callbacks_mu_) = false;

  std::thread writer_thread_;
  std::thread callback_thread_;
};

}  // namespace timer::store
