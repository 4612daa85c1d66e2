#include "store/group_commit_writer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "util/metrics.h"
#include "util/thread_name.h"

namespace timer::store {

GroupCommitWriter::GroupCommitWriter(Transaction* txn, Options options)
    : txn_(txn), options_(std::move(options)) {
  writer_thread_ = std::thread([this] {
    util::SetThreadName(options_.name + "-writer");
    WriterLoop();
  });
  callback_thread_ = std::thread([this] {
    util::SetThreadName(options_.name + "-callback");
    CallbackLoop();
  });
}

GroupCommitWriter::~GroupCommitWriter() { Close(); }

void GroupCommitWriter::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (closing_) {
      // Someone else is closing: wait until they are done.
      mu_.Await(absl::Condition(&closed_));
      return;
    }
    closing_ = true;
  }
  if (writer_thread_.joinable()) writer_thread_.join();
  {
    absl::MutexLock lock(&callbacks_mu_);
    writer_done_ = true;
  }
  if (callback_thread_.joinable()) callback_thread_.join();
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

int64_t GroupCommitWriter::commits() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

void GroupCommitWriter::Enqueue(std::unique_ptr<Op> op) {
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      queue_.push_back(std::move(op));
      ++enqueued_;
      return;
    }
  }
  op->Fail(absl::UnavailableError("store: closed"));
  std::move(*op).Finish();
}

size_t GroupCommitWriter::AwaitBatch(size_t last_batch, absl::Time last_commit) {
  mu_.Await(absl::Condition(
      +[](GroupCommitWriter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
        return !w->queue_.empty() || w->closing_;
      },
      this));
  const size_t max_batch = static_cast<size_t>(options_.max_batch);
  // A lone write (the previous batch had one, or the writer has been idle
  // for max_gather) commits at once: waiting would only add latency.
  if (last_batch > 1 && !closing_) {
    const size_t target = std::min(max_batch, 2 * last_batch);
    const absl::Time deadline = last_commit + options_.max_gather;
    auto gathered = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return queue_.size() >= target || closing_;
    };
    // Slices of gather_gap: wakes the writer a few thousand times a second
    // at most, not once per write; a slice in which nothing arrived ends it.
    for (absl::Time now = absl::Now(); now < deadline && !gathered(); now = absl::Now()) {
      const int64_t before = enqueued_;
      mu_.AwaitWithTimeout(absl::Condition(&gathered),
                           std::min(options_.gather_gap, deadline - now));
      if (enqueued_ == before) break;
    }
  }
  return std::min(queue_.size(), max_batch);
}

void GroupCommitWriter::WriterLoop() {
  absl::Time last_commit = absl::InfinitePast();
  size_t last_batch = 0;
  for (;;) {
    std::vector<std::unique_ptr<Op>> batch;
    {
      absl::MutexLock lock(&mu_);
      const size_t n = AwaitBatch(last_batch, last_commit);
      if (n == 0) break;  // Closing and drained.
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    last_batch = batch.size();
    RunBatch(std::move(batch));
    last_commit = absl::Now();
  }
}

void GroupCommitWriter::RunBatch(std::vector<std::unique_ptr<Op>> batch) {
  const absl::Time began = absl::Now();
  absl::Status txn = txn_->Begin();
  if (txn.ok()) {
    for (std::unique_ptr<Op>& op : batch) {
      // A savepoint per operation: a failed one is undone alone.
      if (absl::Status sp = txn_->Savepoint(); !sp.ok()) {
        op->Fail(std::move(sp));
        continue;
      }
      if (!op->Apply().ok()) txn_->RollbackToSavepoint();
      txn_->ReleaseSavepoint();
    }
    txn = txn_->Commit();
    if (!txn.ok()) txn_->Rollback();
  }
  metrics::ObserveStoreCommit(batch.size(), absl::Now() - began, txn.ok());
  if (!txn.ok()) {
    // Nothing of this batch is durable: fail every operation in it.
    const absl::Status failed = absl::UnavailableError(
        absl::StrCat("store: write not committed: ", txn.message()));
    for (std::unique_ptr<Op>& op : batch) op->Fail(failed);
  } else {
    absl::MutexLock lock(&mu_);
    ++commits_;
  }
  bool run_here = false;
  {
    absl::MutexLock lock(&callbacks_mu_);
    if (batch.size() == 1 && committed_.empty() && !callbacks_running_) {
      callbacks_running_ = true;  // Our turn: nothing earlier is pending.
      run_here = true;
    } else {
      committed_.push_back(std::move(batch));
    }
  }
  if (run_here) {
    std::move(*batch.front()).Finish();
    absl::MutexLock lock(&callbacks_mu_);
    callbacks_running_ = false;
  }
  txn_->AfterBatch();
}

void GroupCommitWriter::CallbackLoop() {
  for (;;) {
    std::vector<std::unique_ptr<Op>> next;
    {
      absl::MutexLock lock(&callbacks_mu_);
      callbacks_mu_.Await(absl::Condition(
          +[](GroupCommitWriter* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->callbacks_mu_) {
            return !w->callbacks_running_ && (!w->committed_.empty() || w->writer_done_);
          },
          this));
      if (committed_.empty()) return;  // The writer has stopped: nothing more.
      next = std::move(committed_.front());
      committed_.pop_front();
      callbacks_running_ = true;
    }
    for (std::unique_ptr<Op>& op : next) std::move(*op).Finish();
    absl::MutexLock lock(&callbacks_mu_);
    callbacks_running_ = false;
  }
}

}  // namespace timer::store
