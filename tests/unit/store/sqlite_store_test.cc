// What only SqliteStore promises beyond the Store contract (the conformance
// suite, store_conformance_test.cc, covers that): durability across
// Close()/Open(), group commit, the writer queue, the reader pool, WAL
// checkpoints and schema versioning.
//
// No test sleeps: writes are awaited through their callbacks with a timeout,
// and SqliteStore's writer is held at a known point with a WriterGate (a
// mutation that blocks inside the writer's transaction until released).

#include "store/sqlite_store.h"

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/synchronization/mutex.h"
#include "store/sqlite_util.h"
#include "store_test_support.h"

namespace timer::store {
namespace {

// Holds SqliteStore's writer inside a transaction: it starts an update whose
// mutation blocks until Release(). Writes enqueued meanwhile wait in the
// queue, so the test knows exactly which writes share the next batch.
class WriterGate {
 public:
  WriterGate(Store& store, const v1::Job& job) : state_(std::make_shared<State>()) {
    outcome_ =
        StartUpdate(store, job.owner(), job.job_id(), [state = state_](v1::Job& j) {
          state->held.Notify();
          state->release.WaitForNotificationWithTimeout(kWait);
          return absl::OkStatus();
        });
  }
  ~WriterGate() { Release(); }
  WriterGate(const WriterGate&) = delete;

  // True once the writer is blocked inside the gate.
  bool WaitUntilHeld() { return state_->held.WaitForNotificationWithTimeout(kWait); }
  void Release() {
    if (!state_->release.HasBeenNotified()) state_->release.Notify();
  }
  absl::StatusOr<v1::Job> ReleaseAndWait() {
    Release();
    return Await(outcome_);
  }

 private:
  struct State {
    absl::Notification held;
    absl::Notification release;
  };
  std::shared_ptr<State> state_;
  std::shared_ptr<Outcome> outcome_;
};

// Counts write callbacks from many threads.
class Tally {
 public:
  JobCallback Callback() {
    return [this](absl::StatusOr<v1::Job> r) {
      absl::MutexLock lock(&mu_);
      if (r.ok()) {
        ids_.insert(r->job_id());
      } else {
        ++failed_;
        if (first_error_.ok()) first_error_ = r.status();
      }
      ++done_;
    };
  }
  // Waits until `n` callbacks have run; false on timeout.
  bool WaitFor(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kWait);
  }
  int failed() const {
    absl::MutexLock lock(&mu_);
    return failed_;
  }
  absl::Status first_error() const {
    absl::MutexLock lock(&mu_);
    return first_error_;
  }
  std::set<std::string> ids() const {
    absl::MutexLock lock(&mu_);
    return ids_;
  }

 private:
  mutable absl::Mutex mu_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> ids_ ABSL_GUARDED_BY(mu_);
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

  std::string db_path() const { return dir_.path() + "/timer.db"; }

  std::unique_ptr<SqliteStore> OpenStore(int max_batch = 1024, int max_readers = 8) {
    absl::StatusOr<std::unique_ptr<SqliteStore>> opened = SqliteStore::Open(
        {.path = db_path(), .max_batch = max_batch, .max_readers = max_readers});
    EXPECT_THAT(opened, IsOk());
    return opened.ok() ? *std::move(opened) : nullptr;
  }

  TempDir dir_;
};

TEST_F(SqliteStoreTest, JobSurvivesCloseAndReopen) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(*store, job, "req-1", "fp-A"), IsOk());
  absl::StatusOr<v1::Job> updated =
      Update(*store, "alice", job.job_id(), Rename("after-update"));
  ASSERT_THAT(updated, IsOk());
  store->Close();
  store.reset();

  std::unique_ptr<SqliteStore> reopened = OpenStore();
  ASSERT_NE(reopened, nullptr);

  absl::StatusOr<v1::Job> got = reopened->GetJob("alice", job.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(*got, EqualsProto(*updated));
  EXPECT_THAT(Ids(ListAll(*reopened, "alice")), ElementsAreArray({job.job_id()}));
  // The request id is durable too: a retry after a restart is still a replay.
  absl::StatusOr<v1::Job> replayed = Create(*reopened, MakeJob("alice"), "req-1", "fp-A");
  ASSERT_THAT(replayed, IsOk());
  EXPECT_EQ(replayed->job_id(), job.job_id());
  EXPECT_THAT(Create(*reopened, MakeJob("alice"), "req-1", "fp-B"),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(SqliteStoreTest, EtagsKeepIncreasingAfterReopen) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Job job = MakeJob("alice");
  absl::StatusOr<v1::Job> created = Create(*store, job);
  ASSERT_THAT(created, IsOk());
  store.reset();  // The destructor closes.
  std::unique_ptr<SqliteStore> reopened = OpenStore();
  ASSERT_NE(reopened, nullptr);

  absl::StatusOr<v1::Job> updated = Update(*reopened, "alice", job.job_id(), Rename("x"));

  ASSERT_THAT(updated, IsOk());
  EXPECT_NE(updated->etag(), created->etag());
}

TEST_F(SqliteStoreTest, WritesAfterCloseFailWithUnavailable) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(*store, job), IsOk());
  store->Close();

  EXPECT_THAT(Create(*store, MakeJob("alice")), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(Update(*store, "alice", job.job_id(), Rename("late")),
              StatusIs(absl::StatusCode::kUnavailable));
  store->Close();  // Idempotent.
  EXPECT_THAT(Create(*store, MakeJob("alice")), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(SqliteStoreTest, CloseFinishesEveryQueuedWrite) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Job gate_job = MakeJob("alice", 1);
  ASSERT_THAT(Create(*store, gate_job), IsOk());
  WriterGate gate(*store, gate_job);
  ASSERT_TRUE(gate.WaitUntilHeld());
  constexpr int kWrites = 50;
  Tally tally;
  for (int i = 0; i < kWrites; ++i) {
    store->CreateJob(MakeJob("alice", 100 + i), "", "", tally.Callback());
  }

  std::thread closer([&store] { store->Close(); });
  ASSERT_THAT(gate.ReleaseAndWait(), IsOk());
  closer.join();

  ASSERT_TRUE(tally.WaitFor(kWrites));
  EXPECT_EQ(tally.failed(), 0) << tally.first_error();
  store.reset();
  std::unique_ptr<SqliteStore> reopened = OpenStore();
  ASSERT_NE(reopened, nullptr);
  EXPECT_THAT(ListAll(*reopened, "alice"), SizeIs(kWrites + 1));
}

TEST_F(SqliteStoreTest, WritesQueuedDuringACommitShareTheNextOne) {
  std::unique_ptr<SqliteStore> store = OpenStore(/*max_batch=*/4096);
  ASSERT_NE(store, nullptr);
  const v1::Job gate_job = MakeJob("gate", 1);
  ASSERT_THAT(Create(*store, gate_job), IsOk());
  const int64_t commits_before = store->commits();
  WriterGate gate(*store, gate_job);
  ASSERT_TRUE(gate.WaitUntilHeld());

  // 8 threads x 200 creates, all enqueued while the gate's batch is in flight.
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  constexpr int kWrites = kThreads * kPerThread;
  Tally tally;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, &tally, t] {
      for (int i = 0; i < kPerThread; ++i) {
        store->CreateJob(MakeJob("alice", 1000 + t * kPerThread + i),
                         absl::StrCat("req-", t, "-", i), "fp", tally.Callback());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_THAT(gate.ReleaseAndWait(), IsOk());
  ASSERT_TRUE(tally.WaitFor(kWrites));

  EXPECT_EQ(tally.failed(), 0) << tally.first_error();
  EXPECT_THAT(tally.ids(), SizeIs(kWrites));
  EXPECT_THAT(ListAll(*store, "alice"), SizeIs(kWrites));
  // The gate's own transaction, then one for everything queued behind it.
  EXPECT_EQ(store->commits() - commits_before, 2);
}

TEST_F(SqliteStoreTest, ABatchHoldsAtMostMaxBatchWrites) {
  std::unique_ptr<SqliteStore> store = OpenStore(/*max_batch=*/10);
  ASSERT_NE(store, nullptr);
  const v1::Job gate_job = MakeJob("gate", 1);
  ASSERT_THAT(Create(*store, gate_job), IsOk());
  const int64_t commits_before = store->commits();
  WriterGate gate(*store, gate_job);
  ASSERT_TRUE(gate.WaitUntilHeld());
  Tally tally;
  for (int i = 0; i < 25; ++i) {
    store->CreateJob(MakeJob("alice", 1000 + i), "", "", tally.Callback());
  }

  ASSERT_THAT(gate.ReleaseAndWait(), IsOk());
  ASSERT_TRUE(tally.WaitFor(25));

  EXPECT_EQ(tally.failed(), 0) << tally.first_error();
  EXPECT_EQ(store->commits() - commits_before, 1 + 3);  // Gate, then 10 + 10 + 5.
}

// Under a steady stream of commits the WAL must start over rather than grow
// by every byte ever written: SQLite reuses a WAL only once all of it is in
// the database file. Here the background checkpoint is off, so only the
// writer's own checkpoint can make that happen.
TEST_F(SqliteStoreTest, TheWalStartsOverUnderASteadyStreamOfWrites) {
  constexpr int kRestartFrames = 64;
  constexpr int kPageSize = 2048;
  absl::StatusOr<std::unique_ptr<SqliteStore>> opened =
      SqliteStore::Open({.path = db_path(),
                         .page_size = kPageSize,
                         .checkpoint_interval = absl::InfiniteDuration(),
                         .wal_restart_frames = kRestartFrames});
  ASSERT_THAT(opened, IsOk());
  std::unique_ptr<SqliteStore> store = *std::move(opened);
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(*store, job), IsOk());
  // One commit each: about 600 commits of a few frames, some eight times
  // the WAL a checkpoint lets it reach.
  constexpr int kUpdates = 600;
  for (int i = 0; i < kUpdates; ++i) {
    ASSERT_THAT(Update(*store, "alice", job.job_id(), Rename(absl::StrCat("name-", i))),
                IsOk());
  }

  EXPECT_GT(store->wal_checkpoints(), 0);
  // At most the frames that reach the threshold plus one commit's worth.
  const std::uintmax_t frame = kPageSize + 24;
  EXPECT_LE(std::filesystem::file_size(db_path() + "-wal"),
            32 + (kRestartFrames + 16) * frame);
  store.reset();
  std::unique_ptr<SqliteStore> reopened = OpenStore();
  ASSERT_NE(reopened, nullptr);
  absl::StatusOr<v1::Job> got = reopened->GetJob("alice", job.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->name(), absl::StrCat("name-", kUpdates - 1));
}

// The background checkpoint copies committed pages into the database file
// while the writer is idle, without the writer's help.
TEST_F(SqliteStoreTest, TheBackgroundCheckpointFillsTheDatabaseFile) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> opened =
      SqliteStore::Open({.path = db_path(),
                         .checkpoint_interval = absl::Milliseconds(5),
                         .wal_restart_frames = 1 << 30});
  ASSERT_THAT(opened, IsOk());
  std::unique_ptr<SqliteStore> store = *std::move(opened);
  const std::uintmax_t empty = std::filesystem::file_size(db_path());
  Tally tally;
  constexpr int kJobs = 300;
  for (int i = 0; i < kJobs; ++i) {
    store->CreateJob(MakeJob("alice", 1000 + i), "", "", tally.Callback());
  }
  ASSERT_TRUE(tally.WaitFor(kJobs));
  ASSERT_EQ(tally.failed(), 0) << tally.first_error();

  const absl::Time deadline = absl::Now() + kWait;
  while (std::filesystem::file_size(db_path()) <= empty && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_GT(std::filesystem::file_size(db_path()), empty);
  EXPECT_EQ(store->wal_checkpoints(), 0);
}

TEST_F(SqliteStoreTest, ConcurrentCreatesFromManyThreadsAllSucceed) {
  // No gate: threads wait for each write, as handlers would. Batching here
  // depends on timing, so only correctness is asserted.
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  const int64_t commits_before = store->commits();
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, &failures, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!Create(*store, MakeJob(absl::StrCat("owner-", t), 1000 + i)).ok()) {
          ++failures[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[t], 0) << "thread " << t;
    EXPECT_THAT(ListAll(*store, absl::StrCat("owner-", t)), SizeIs(kPerThread));
  }
  EXPECT_LE(store->commits() - commits_before, kThreads * kPerThread);
}

TEST_F(SqliteStoreTest, OneFailingWriteDoesNotAffectOthersInItsBatch) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Job gate_job = MakeJob("gate", 1);
  const v1::Job existing = MakeJob("alice", 50);
  ASSERT_THAT(Create(*store, gate_job), IsOk());
  absl::StatusOr<v1::Job> existing_stored = Create(*store, existing);
  ASSERT_THAT(existing_stored, IsOk());
  const int64_t commits_before = store->commits();
  WriterGate gate(*store, gate_job);
  ASSERT_TRUE(gate.WaitUntilHeld());

  const v1::Job a = MakeJob("alice", 100);
  v1::Job duplicate = MakeJob("alice", 150, existing.job_id());
  duplicate.set_name("duplicate");
  const v1::Job b = MakeJob("alice", 200);
  auto created_a = StartCreate(*store, a);
  auto failed_update = StartUpdate(*store, "alice", existing.job_id(), [](v1::Job& j) {
    j.set_name("never");
    return absl::AbortedError("refused");
  });
  auto failed_insert = StartCreate(*store, duplicate, "req-dup", "fp");
  auto created_b = StartCreate(*store, b);
  ASSERT_THAT(gate.ReleaseAndWait(), IsOk());

  EXPECT_THAT(Await(created_a), IsOk());
  EXPECT_THAT(Await(failed_update), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(Await(failed_insert), Not(IsOk()));
  EXPECT_THAT(Await(created_b), IsOk());
  EXPECT_EQ(store->commits() - commits_before, 2);
  absl::StatusOr<v1::Job> got = store->GetJob("alice", existing.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(*got, EqualsProto(*existing_stored));
  EXPECT_THAT(Ids(ListAll(*store, "alice")),
              ElementsAreArray({existing.job_id(), a.job_id(), b.job_id()}));
  // The failed insert's request id was rolled back with it.
  const v1::Job c = MakeJob("alice", 300);
  absl::StatusOr<v1::Job> reused = Create(*store, c, "req-dup", "other-fp");
  ASSERT_THAT(reused, IsOk());
  EXPECT_EQ(reused->job_id(), c.job_id());
}

TEST_F(SqliteStoreTest, RequestIdReplaysWithinOneBatch) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Job gate_job = MakeJob("gate", 1);
  ASSERT_THAT(Create(*store, gate_job), IsOk());
  WriterGate gate(*store, gate_job);
  ASSERT_TRUE(gate.WaitUntilHeld());

  const v1::Job first = MakeJob("alice", 100);
  auto original = StartCreate(*store, first, "req-1", "fp-A");
  auto retry = StartCreate(*store, MakeJob("alice", 101), "req-1", "fp-A");
  auto conflict = StartCreate(*store, MakeJob("alice", 102), "req-1", "fp-B");
  const v1::Job after = MakeJob("alice", 103);
  auto unrelated = StartCreate(*store, after, "req-2", "fp-C");
  ASSERT_THAT(gate.ReleaseAndWait(), IsOk());

  absl::StatusOr<v1::Job> original_result = Await(original);
  absl::StatusOr<v1::Job> retry_result = Await(retry);
  ASSERT_THAT(original_result, IsOk());
  ASSERT_THAT(retry_result, IsOk());
  EXPECT_THAT(*retry_result, EqualsProto(*original_result));
  EXPECT_THAT(Await(conflict), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(Await(unrelated), IsOk());
  EXPECT_THAT(Ids(ListAll(*store, "alice")),
              ElementsAreArray({first.job_id(), after.job_id()}));
  // Later writes on the same writer connection still work.
  EXPECT_THAT(Update(*store, "alice", first.job_id(), Rename("later")), IsOk());
  EXPECT_THAT(Create(*store, MakeJob("alice", 104), "req-1", "fp-A"), IsOk());
}

TEST_F(SqliteStoreTest, ReadsSeeCommittedStateWithoutWaitingForTheWriter) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);
  const v1::Job gate_job = MakeJob("gate", 1);
  ASSERT_THAT(Create(*store, gate_job), IsOk());
  const v1::Job committed = MakeJob("alice", 100);
  ASSERT_THAT(Create(*store, committed), IsOk());

  // The first gate holds the writer so that the pending create and the second
  // gate land in one batch: the create is applied but not committed while
  // the second gate holds the transaction open.
  auto first_gate = std::make_unique<WriterGate>(*store, gate_job);
  ASSERT_TRUE(first_gate->WaitUntilHeld());
  const v1::Job pending = MakeJob("alice", 200);
  auto pending_create = StartCreate(*store, pending);
  WriterGate second_gate(*store, gate_job);
  ASSERT_THAT(first_gate->ReleaseAndWait(), IsOk());
  ASSERT_TRUE(second_gate.WaitUntilHeld());

  absl::Notification read_done;
  absl::StatusOr<v1::Job> got_committed, got_pending;
  std::vector<std::string> listed;
  std::thread reader([&] {
    got_committed = store->GetJob("alice", committed.job_id());
    got_pending = store->GetJob("alice", pending.job_id());
    ListJobsQuery query;
    query.owner = "alice";
    absl::StatusOr<ListJobsPage> page = store->ListJobs(query);
    if (page.ok()) listed = Ids(page->jobs);
    read_done.Notify();
  });
  const bool read_in_time = read_done.WaitForNotificationWithTimeout(absl::Seconds(10));
  second_gate.Release();  // Unblocks a stuck reader too.
  reader.join();

  EXPECT_TRUE(read_in_time) << "reads waited for the writer's transaction";
  EXPECT_THAT(got_committed, IsOk());
  EXPECT_THAT(got_pending, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(listed, ElementsAreArray({committed.job_id()}));
  ASSERT_THAT(Await(pending_create), IsOk());
  EXPECT_THAT(store->GetJob("alice", pending.job_id()), IsOk());
}

TEST_F(SqliteStoreTest, ManyConcurrentReadersShareABoundedPool) {
  std::unique_ptr<SqliteStore> store = OpenStore(/*max_batch=*/1024, /*max_readers=*/2);
  ASSERT_NE(store, nullptr);
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(*store, job), IsOk());
  std::vector<std::thread> threads;
  std::vector<int> failures(8, 0);

  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        if (!store->GetJob("alice", job.job_id()).ok()) ++failures[t];
        ListJobsQuery query;
        query.owner = "alice";
        absl::StatusOr<ListJobsPage> page = store->ListJobs(query);
        if (!page.ok() || page->jobs.size() != 1) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  for (int t = 0; t < 8; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

TEST_F(SqliteStoreTest, ReadAfterCloseReturnsInsteadOfHanging) {
  // Close() discards the idle read connections; a later read must still
  // answer (with data or an error), not wait forever for a free connection.
  auto* store = OpenStore(/*max_batch=*/1024, /*max_readers=*/1).release();
  ASSERT_NE(store, nullptr);
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(*store, job), IsOk());
  ASSERT_THAT(store->GetJob("alice", job.job_id()), IsOk());  // Opens the one reader.
  store->Close();

  auto answered = std::make_shared<absl::Notification>();
  std::thread reader([store, answered, id = job.job_id()] {
    store->GetJob("alice", id).IgnoreError();
    answered->Notify();
  });
  if (answered->WaitForNotificationWithTimeout(absl::Seconds(10))) {
    reader.join();
    delete store;
  } else {
    // The reader is stuck inside the store: leak both rather than crash.
    reader.detach();
    ADD_FAILURE() << "GetJob after Close() never returned";
  }
}

TEST_F(SqliteStoreTest, OpenCreatesTheLatestSchema) {
  ASSERT_NE(OpenStore(), nullptr);

  absl::StatusOr<Db> db = Db::Open(db_path());
  ASSERT_THAT(db, IsOk());
  absl::StatusOr<int64_t> version = db->QueryInt("PRAGMA user_version");
  ASSERT_THAT(version, IsOk());
  EXPECT_EQ(*version, SqliteStore::LatestSchemaVersion());
}

TEST_F(SqliteStoreTest, OpeningADatabaseFromANewerVersionFails) {
  const int newer = SqliteStore::LatestSchemaVersion() + 1;
  {
    absl::StatusOr<Db> db = Db::Open(db_path());
    ASSERT_THAT(db, IsOk());
    ASSERT_TRUE(db->Exec(absl::StrCat("PRAGMA user_version = ", newer).c_str()).ok());
  }

  absl::StatusOr<std::unique_ptr<SqliteStore>> opened =
      SqliteStore::Open({.path = db_path()});

  EXPECT_THAT(opened, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(opened.status().message(), HasSubstr(absl::StrCat(newer)));
  // The database is left as it was.
  absl::StatusOr<Db> db = Db::Open(db_path());
  ASSERT_THAT(db, IsOk());
  absl::StatusOr<int64_t> version = db->QueryInt("PRAGMA user_version");
  ASSERT_THAT(version, IsOk());
  EXPECT_EQ(*version, newer);
}

// Schema 1 as it shipped: results keyed by (job_id, run_number), and kept
// inline in the job as well.
constexpr char kSchema1[] = R"sql(
  CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY, owner TEXT NOT NULL, create_us INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, status INTEGER NOT NULL,
    next_run_us INTEGER, version INTEGER NOT NULL, job BLOB NOT NULL);
  CREATE INDEX jobs_by_owner_live ON jobs (owner, deleted, create_us, job_id);
  CREATE INDEX jobs_by_owner_all ON jobs (owner, create_us, job_id);
  CREATE INDEX jobs_due ON jobs (next_run_us, job_id) WHERE next_run_us IS NOT NULL;
  CREATE TABLE results (
    job_id TEXT NOT NULL, run_number INTEGER NOT NULL, status INTEGER NOT NULL,
    end_us INTEGER, result BLOB NOT NULL, PRIMARY KEY (job_id, run_number)) WITHOUT ROWID;
  CREATE INDEX results_open ON results (status) WHERE status IN (1, 2);
  CREATE TABLE request_ids (
    owner TEXT NOT NULL, request_id TEXT NOT NULL, fingerprint TEXT NOT NULL,
    job_id TEXT NOT NULL, create_us INTEGER NOT NULL,
    PRIMARY KEY (owner, request_id)) WITHOUT ROWID;
  PRAGMA user_version = 1;
)sql";

TEST_F(SqliteStoreTest, ASchema1DatabaseKeepsItsJobsAndResultsAfterUpgrade) {
  const std::string id = domain::NewUuid();
  {
    absl::StatusOr<Db> db = Db::Open(db_path());
    ASSERT_THAT(db, IsOk());
    ASSERT_TRUE(db->Exec(kSchema1).ok());
    v1::Job job;
    job.set_job_id(id);
    job.set_owner("alice");
    job.set_name("old");
    for (int run : {3, 2, 1}) {  // Inline copies, newest first, as schema 1 kept them.
      v1::JobResult* r = job.add_results();
      r->set_run_number(run);
      r->set_status(run == 3 ? v1::JobResult::PENDING : v1::JobResult::SUCCEEDED);
    }
    ASSERT_TRUE(
        db->Exec(absl::StrCat("INSERT INTO jobs VALUES ('", id,
                              "', 'alice', 1, 0, 2, NULL, 4, X'",
                              absl::BytesToHexString(job.SerializeAsString()), "')")
                     .c_str())
            .ok());
    for (const v1::JobResult& r : job.results()) {
      ASSERT_TRUE(
          db->Exec(absl::StrCat("INSERT INTO results VALUES ('", id, "', ",
                                r.run_number(), ", ", r.status(), ", NULL, X'",
                                absl::BytesToHexString(r.SerializeAsString()), "')")
                       .c_str())
              .ok());
    }
  }

  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);

  absl::StatusOr<v1::Job> job = store->GetJob("alice", id);
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->name(), "old");
  EXPECT_EQ(job->etag(), "4");
  ASSERT_EQ(job->results_size(), 3);
  EXPECT_EQ(job->results(0).run_number(), 3);
  EXPECT_EQ(job->results(2).run_number(), 1);
  absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>> open =
      store->ListOpenResults();
  ASSERT_THAT(open, IsOk());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].second.run_number(), 3);
  // A rewrite of run 3 replaces it rather than adding a second row.
  absl::Notification done;
  v1::JobResult r3 = job->results(0);
  r3.set_status(v1::JobResult::SUCCEEDED);
  store->WriteResult(id, r3, [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  absl::StatusOr<std::vector<v1::JobResult>> all = store->ListResults("alice", id, 0, 10);
  ASSERT_THAT(all, IsOk());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].status(), v1::JobResult::SUCCEEDED);
}

TEST_F(SqliteStoreTest, OpeningAnUnwritablePathFails) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> opened =
      SqliteStore::Open({.path = dir_.path() + "/no/such/dir/timer.db"});

  EXPECT_THAT(opened, Not(IsOk()));
}

}  // namespace
}  // namespace timer::store
