// Tests of the generic group-commit writer (store/group_commit_writer.h) on
// its own, over a fake Transaction that records what the writer asks of the
// database: batching, a savepoint per operation, commit failure, typed
// results, callbacks in commit order, and pacing.
//
// No test sleeps: the writer is held inside a batch by an operation that
// blocks until released, and callbacks are awaited with a timeout.
#include "store/group_commit_writer.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timer::store {
namespace {

using ::testing::ElementsAre;

constexpr absl::Duration kWait = absl::Seconds(30);

// Records every call; Commit fails while `fail_commit` is set.
class FakeTransaction final : public GroupCommitWriter::Transaction {
 public:
  absl::Status Begin() override { return Log("begin"); }
  absl::Status Savepoint() override { return Log("savepoint"); }
  void RollbackToSavepoint() override { Log("rollback_to").IgnoreError(); }
  void ReleaseSavepoint() override { Log("release").IgnoreError(); }
  absl::Status Commit() override {
    Log("commit").IgnoreError();
    absl::MutexLock lock(&mu_);
    return fail_commit_ ? absl::InternalError("disk on fire") : absl::OkStatus();
  }
  void Rollback() override { Log("rollback").IgnoreError(); }

  void FailCommits() {
    absl::MutexLock lock(&mu_);
    fail_commit_ = true;
  }
  std::vector<std::string> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  int count(const std::string& call) const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(std::count(calls_.begin(), calls_.end(), call));
  }

 private:
  absl::Status Log(std::string call) {
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
    return absl::OkStatus();
  }
  mutable absl::Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  bool fail_commit_ ABSL_GUARDED_BY(mu_) = false;
};

// Callback results in the order the callbacks ran.
class Results {
 public:
  absl::AnyInvocable<void(absl::StatusOr<int>) &&> Callback() {
    return [this](absl::StatusOr<int> r) {
      absl::MutexLock lock(&mu_);
      seen_.push_back(r.ok() ? absl::StrCat(*r)
                             : absl::StatusCodeToString(r.status().code()));
    };
  }
  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return seen_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kWait);
  }
  std::vector<std::string> seen() const {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> seen_ ABSL_GUARDED_BY(mu_);
};

// Holds the writer inside a batch until Release().
struct Gate {
  absl::Notification held, release;
  absl::AnyInvocable<absl::StatusOr<int>()> Op() {
    return [this]() -> absl::StatusOr<int> {
      held.Notify();
      release.WaitForNotificationWithTimeout(kWait);
      return 0;
    };
  }
};

absl::AnyInvocable<absl::StatusOr<int>()> Value(int v) {
  return [v]() -> absl::StatusOr<int> { return v; };
}

TEST(GroupCommitWriterTest, OperationsQueuedDuringABatchShareTheNextInOrder) {
  FakeTransaction txn;
  GroupCommitWriter writer(&txn, {});
  Results results;
  Gate gate;
  writer.Submit<int>(gate.Op(), results.Callback());
  ASSERT_TRUE(gate.held.WaitForNotificationWithTimeout(kWait));
  for (int v = 1; v <= 3; ++v) writer.Submit<int>(Value(v), results.Callback());
  gate.release.Notify();
  ASSERT_TRUE(results.WaitFor(4));
  EXPECT_THAT(results.seen(), ElementsAre("0", "1", "2", "3"));
  writer.Close();
  EXPECT_EQ(writer.commits(), 2);
  EXPECT_EQ(txn.count("savepoint"), 4);
  EXPECT_EQ(txn.count("release"), 4);
}

TEST(GroupCommitWriterTest, AFailingOperationIsRolledBackAloneAndReportsItsError) {
  FakeTransaction txn;
  GroupCommitWriter writer(&txn, {});
  Results results;
  Gate gate;
  writer.Submit<int>(gate.Op(), results.Callback());
  ASSERT_TRUE(gate.held.WaitForNotificationWithTimeout(kWait));
  writer.Submit<int>([]() -> absl::StatusOr<int> { return absl::NotFoundError("no"); },
                     results.Callback());
  writer.Submit<int>(Value(7), results.Callback());
  gate.release.Notify();
  ASSERT_TRUE(results.WaitFor(3));
  EXPECT_THAT(results.seen(), ElementsAre("0", "NOT_FOUND", "7"));
  writer.Close();
  EXPECT_EQ(txn.count("rollback_to"), 1);
  EXPECT_EQ(txn.count("rollback"), 0);
  EXPECT_EQ(writer.commits(), 2);
}

TEST(GroupCommitWriterTest, AFailedCommitFailsEveryOperationOfItsBatch) {
  FakeTransaction txn;
  txn.FailCommits();
  GroupCommitWriter writer(&txn, {});
  Results results;
  writer.Submit<int>(Value(1), results.Callback());
  ASSERT_TRUE(results.WaitFor(1));
  EXPECT_THAT(results.seen(), ElementsAre("UNAVAILABLE"));
  writer.Close();
  EXPECT_EQ(txn.count("rollback"), 1);
  EXPECT_EQ(writer.commits(), 0);
}

TEST(GroupCommitWriterTest, StatusOperationsGetTheirStatus) {
  FakeTransaction txn;
  GroupCommitWriter writer(&txn, {});
  absl::Notification done;
  absl::Status got = absl::UnknownError("not run");
  writer.Submit([] { return absl::InvalidArgumentError("bad"); },
                [&](absl::Status s) {
                  got = s;
                  done.Notify();
                });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(got.code(), absl::StatusCode::kInvalidArgument);
}

TEST(GroupCommitWriterTest, CloseFinishesQueuedOperationsAndRefusesLaterOnes) {
  FakeTransaction txn;
  GroupCommitWriter writer(&txn, {});
  Results results;
  Gate gate;
  writer.Submit<int>(gate.Op(), results.Callback());
  ASSERT_TRUE(gate.held.WaitForNotificationWithTimeout(kWait));
  writer.Submit<int>(Value(1), results.Callback());
  gate.release.Notify();
  writer.Close();
  EXPECT_THAT(results.seen(), ElementsAre("0", "1"));
  writer.Submit<int>(Value(2), results.Callback());
  EXPECT_THAT(results.seen(), ElementsAre("0", "1", "UNAVAILABLE"));
}

// Pacing: a write that follows a lone write commits at once, however long
// the writer may gather under load.
TEST(GroupCommitWriterTest, ALoneWriteCommitsAtOnceEvenRightAfterAnother) {
  FakeTransaction txn;
  GroupCommitWriter writer(&txn, {.max_gather = absl::Hours(1)});
  Results results;
  for (int v = 1; v <= 5; ++v) {
    writer.Submit<int>(Value(v), results.Callback());
    ASSERT_TRUE(results.WaitFor(v));
  }
  EXPECT_THAT(results.seen(), ElementsAre("1", "2", "3", "4", "5"));
  EXPECT_EQ(writer.commits(), 5);
}

// Under load (the previous batch held several), the writer gathers: a batch
// of three is followed by one that waits for twice as many, here reached at
// once because they are already queued.
TEST(GroupCommitWriterTest, UnderLoadTheNextBatchGathersUpToTwiceTheLast) {
  FakeTransaction txn;
  GroupCommitWriter writer(&txn, {.max_gather = absl::Hours(1)});
  Results results;
  Gate first;
  writer.Submit<int>(first.Op(), results.Callback());
  ASSERT_TRUE(first.held.WaitForNotificationWithTimeout(kWait));
  // Queued behind the gate: the next batch, of 3 (gate 2 holds it open).
  Gate second;
  writer.Submit<int>(second.Op(), results.Callback());
  writer.Submit<int>(Value(1), results.Callback());
  writer.Submit<int>(Value(2), results.Callback());
  first.release.Notify();
  ASSERT_TRUE(second.held.WaitForNotificationWithTimeout(kWait));
  for (int v = 3; v <= 8; ++v) writer.Submit<int>(Value(v), results.Callback());
  second.release.Notify();
  ASSERT_TRUE(results.WaitFor(10));
  writer.Close();
  // 1 + 3 + 6: the third batch took all six without waiting for more.
  EXPECT_EQ(writer.commits(), 3);
}

}  // namespace
}  // namespace timer::store
