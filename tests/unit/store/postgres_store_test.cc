// PostgreSQL-only tests of PostgresStore (store/postgres_store.h) and its
// connections (store/pg_conn.h), on the process's throwaway cluster
// (pg_cluster.h): migrations when several stores open one new database at
// once, a newer schema refused, a PostgreSQL restart in the middle of use.
// The Store contract itself is store_conformance_test's.
#include "store/postgres_store.h"

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "pg_cluster.h"
#include "store/pg_conn.h"
#include "store/pg_schema.h"
#include "store/postgres_token_store.h"
#include "store_test_support.h"

namespace timer::store {
namespace {

using testing::PgCluster;

PgCluster& Cluster() {
  absl::StatusOr<PgCluster*> pg = PgCluster::Get();
  // No cluster: every test here fails (never skips).
  EXPECT_TRUE(pg.ok()) << pg.status();
  if (!pg.ok()) std::abort();
  return **pg;
}

std::string NewDatabase() {
  absl::StatusOr<std::string> uri = Cluster().NewDatabase();
  EXPECT_TRUE(uri.ok()) << uri.status();
  return uri.value_or("");
}

// Runs `sql` on the database at `uri` directly.
absl::Status Sql(const std::string& uri, const char* sql) {
  PgConnector connector({.uri = uri});
  absl::StatusOr<std::unique_ptr<PgConn>> conn = connector.Connect();
  if (!conn.ok()) return conn.status();
  return (*conn)->Exec(sql);
}

TEST(PostgresStoreTest, StoresOpeningANewDatabaseTogetherMigrateItOnce) {
  const std::string uri = NewDatabase();
  constexpr int kStores = 6;
  std::vector<absl::StatusOr<std::unique_ptr<PostgresStore>>> stores(kStores);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kStores; ++i) {
      threads.emplace_back([&, i] { stores[i] = PostgresStore::Open({.uri = uri}); });
    }
    for (std::thread& t : threads) t.join();
  }
  for (auto& s : stores) ASSERT_THAT(s, IsOk());
  // One version row; every store sees what another wrote.
  PgConnector connector({.uri = uri});
  auto conn = connector.Connect();
  ASSERT_THAT(conn, IsOk());
  static constexpr PgStatement kRows = {
      "rows", "SELECT count(*), max(version) FROM timer_schema"};
  absl::StatusOr<PgResult> rows = (*conn)->Run(kRows, {});
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ(rows->Int(0, 0), 1);
  EXPECT_EQ(rows->Int(0, 1), PostgresStore::LatestSchemaVersion());
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(**stores[0], job), IsOk());
  for (auto& s : stores) EXPECT_THAT((*s)->GetJob("alice", job.job_id()), IsOk());
}

TEST(PostgresStoreTest, ADatabaseWithANewerSchemaIsRefused) {
  const std::string uri = NewDatabase();
  ASSERT_THAT(PostgresStore::Open({.uri = uri}), IsOk());
  ASSERT_TRUE(Sql(uri, absl::StrCat("UPDATE timer_schema SET version = ",
                                    PostgresStore::LatestSchemaVersion() + 1)
                           .c_str())
                  .ok());
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open({.uri = uri});
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(store.status().message(), HasSubstr("newer than this timerd"));
  EXPECT_THAT(PostgresTokenStore::Open({.uri = uri}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

// The least-privilege setup of docs/DEPLOYMENT.md: a role with only DML
// grants runs on a database another role migrated, and cannot migrate one.
TEST(PostgresStoreTest, ARoleWithOnlyDataGrantsRunsOnAMigratedDatabase) {
  const std::string uri = NewDatabase();
  ASSERT_THAT(PostgresStore::Open({.uri = uri}), IsOk());  // As postgres: migrates.
  ASSERT_TRUE(Sql(uri,
                  "DO $$ BEGIN CREATE ROLE timer_dml LOGIN; EXCEPTION WHEN "
                  "duplicate_object THEN NULL; END $$; "
                  "REVOKE CREATE ON SCHEMA public FROM PUBLIC; "
                  "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                  "TO timer_dml")
                  .ok());
  const std::string as_dml = absl::StrCat(
      "postgresql://timer_dml@127.0.0.1:", Cluster().port(), uri.substr(uri.rfind('/')));
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open({.uri = as_dml});
  ASSERT_THAT(store, IsOk());
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(**store, job), IsOk());
  EXPECT_THAT((*store)->GetJob("alice", job.job_id()), IsOk());
  EXPECT_THAT(PostgresTokenStore::Open({.uri = as_dml}), IsOk());
  // Leases and relayed runs too (a relayed run's table once had a sequence,
  // which table grants do not cover: "permission denied for sequence").
  EXPECT_THAT((*store)->RenewLeases({.replica_id = "r1", .host = "test"}), IsOk());
  const RelayedRun relayed{"relay-1", "alice", job.job_id(), ""};
  ASSERT_THAT((*store)->AddRelayedRun(relayed, absl::Seconds(30)), IsOk());
  absl::StatusOr<std::vector<RelayedRun>> claimed = (*store)->ClaimRelayedRuns("r1", 8);
  ASSERT_THAT(claimed, IsOk());
  EXPECT_EQ(claimed->size(), 1u);
  EXPECT_THAT((*store)->FinishRelayedRun("relay-1", absl::OkStatus()), IsOk());
  absl::StatusOr<std::vector<RelayedRunOutcome>> outcomes =
      (*store)->RelayedRunOutcomes({"relay-1"});
  ASSERT_THAT(outcomes, IsOk());
  EXPECT_EQ(outcomes->size(), 1u);
  EXPECT_THAT((*store)->PruneRelayedRuns(absl::Minutes(1)), IsOk());
  // A new database: the role may not create the tables.
  const std::string fresh = NewDatabase();
  ASSERT_TRUE(Sql(fresh, "REVOKE CREATE ON SCHEMA public FROM PUBLIC").ok());
  absl::StatusOr<std::unique_ptr<PostgresStore>> refused = PostgresStore::Open(
      {.uri = absl::StrCat("postgresql://timer_dml@127.0.0.1:", Cluster().port(),
                           fresh.substr(fresh.rfind('/')))});
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied));
  // The error says what to do: migrate once as the tables' owner.
  EXPECT_THAT(refused.status().message(),
              HasSubstr("needs a role allowed to (their owner)"));
}

TEST(PostgresStoreTest, AnUnreachableServerFailsOpenAtOnceWithUnavailable) {
  // A port nothing listens on: the cluster's, while it is stopped, would
  // race with other tests; a closed port of our own instead.
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open({.uri = "postgresql://postgres:hunter2@127.0.0.1:1/none"});
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // The password never appears in the error.
  EXPECT_THAT(store.status().message(), Not(HasSubstr("hunter2")));
  EXPECT_THAT(store.status().message(),
              HasSubstr("postgresql://postgres@127.0.0.1:1/none"));
}

// PostgreSQL stopped and started again behind the same address while a
// writer keeps writing: calls during the outage fail with UNAVAILABLE
// within the bound, the same store works again afterwards, and every write
// that was acknowledged is there.
TEST(PostgresStoreTest, SurvivesAPostgresRestartWithoutLosingAcknowledgedWrites) {
  const std::string uri = NewDatabase();
  absl::StatusOr<std::unique_ptr<PostgresStore>> opened = PostgresStore::Open(
      {.uri = uri, .timeout = absl::Seconds(2), .retry_after = absl::ZeroDuration()});
  ASSERT_THAT(opened, IsOk());
  PostgresStore& store = **opened;

  absl::Mutex mu;
  std::vector<std::string> acked;  // Guarded by mu.
  int64_t failed = 0;              // Guarded by mu.
  absl::Duration slowest_failure;  // Guarded by mu.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) {
      const v1::Job job = MakeJob("alice");
      const absl::Time start = absl::Now();
      absl::StatusOr<v1::Job> r = Create(store, job);
      const absl::Duration took = absl::Now() - start;
      absl::MutexLock lock(&mu);
      if (r.ok()) {
        acked.push_back(job.job_id());
      } else {
        EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
        ++failed;
        slowest_failure = std::max(slowest_failure, took);
      }
    }
  });
  const auto acked_count = [&] {
    absl::MutexLock lock(&mu);
    return acked.size();
  };
  {
    // Some writes before the outage.
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](std::vector<std::string>* a) { return a->size() >= 20; }, &acked));
  }
  ASSERT_TRUE(Cluster().Stop().ok());
  // During the outage: reads and writes fail fast with UNAVAILABLE.
  const absl::Time start = absl::Now();
  EXPECT_THAT(store.GetJob("alice", "nope"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(Create(store, MakeJob("alice")), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store.CountJobs("alice"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  const size_t before_restart = acked_count();
  ASSERT_TRUE(Cluster().Start().ok());
  // Back: the same store works at once, no reopening.
  const v1::Job after = MakeJob("alice");
  EXPECT_THAT(Create(store, after), IsOk());
  EXPECT_THAT(store.GetJob("alice", after.job_id()), IsOk());
  {
    absl::MutexLock lock(&mu);
    std::pair<std::vector<std::string>*, size_t> want(&acked, before_restart + 20);
    mu.Await(absl::Condition(
        +[](std::pair<std::vector<std::string>*, size_t>* a) {
          return a->first->size() >= a->second;
        },
        &want));
  }
  stop = true;
  writer.join();
  {
    absl::MutexLock lock(&mu);
    EXPECT_GT(failed, 0);
    EXPECT_LT(slowest_failure, absl::Seconds(3));
    std::printf("restart: %zu writes acknowledged, %lld failed (slowest failure %s)\n",
                acked.size(), static_cast<long long>(failed),
                absl::FormatDuration(slowest_failure).c_str());
  }
  // Every acknowledged write survived.
  for (const std::string& id : acked) {
    EXPECT_THAT(store.GetJob("alice", id), IsOk()) << id;
  }
  absl::StatusOr<OwnerUsage> usage = store.CountJobs("alice");
  ASSERT_THAT(usage, IsOk());
  EXPECT_GE(usage->stored_jobs, static_cast<int64_t>(acked.size()) + 1);
}

// A write stuck behind a lock held elsewhere (another replica, an operator's
// session) fails with UNAVAILABLE once the statement timeout passes, and
// the writer goes on with the next writes.
TEST(PostgresStoreTest, AWriteBlockedPastTheTimeoutFailsUnavailableAndOthersGoOn) {
  const std::string uri = NewDatabase();
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open({.uri = uri, .timeout = absl::Milliseconds(500)});
  ASSERT_THAT(store, IsOk());
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(**store, job), IsOk());
  PgConnector other({.uri = uri});
  absl::StatusOr<std::unique_ptr<PgConn>> locker = other.Connect();
  ASSERT_THAT(locker, IsOk());
  ASSERT_TRUE((*locker)->Exec("BEGIN").ok());
  ASSERT_TRUE((*locker)
                  ->Exec(absl::StrCat("SELECT 1 FROM jobs WHERE job_id = '", job.job_id(),
                                      "' FOR UPDATE")
                             .c_str())
                  .ok());
  const absl::Time start = absl::Now();
  EXPECT_THAT(Update(**store, "alice", job.job_id(), Rename("blocked")),
              StatusIs(absl::StatusCode::kUnavailable));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(400));
  EXPECT_LT(took, absl::Seconds(3));
  // Nothing of it applied; the store writes on.
  EXPECT_EQ((*store)->GetJob("alice", job.job_id())->name(), job.name());
  EXPECT_THAT(Create(**store, MakeJob("alice")), IsOk());
  ASSERT_TRUE((*locker)->Exec("ROLLBACK").ok());
  EXPECT_THAT(Update(**store, "alice", job.job_id(), Rename("free")), IsOk());
}

// Two stores on one database are two replicas. Each used to bound an
// owner's jobs by its own count (domain/job_quota.h), so an owner
// alternating replicas kept twice the limit; the bound is now checked in
// each create's transaction, against what the database holds.
TEST(PostgresStoreTest, AnOwnersJobLimitsHoldAcrossStoresOnOneDatabase) {
  const std::string uri = NewDatabase();
  const PostgresStore::Options options{
      .uri = uri, .max_live_jobs_per_owner = 3, .max_stored_jobs_per_owner = 4};
  absl::StatusOr<std::unique_ptr<PostgresStore>> a = PostgresStore::Open(options);
  absl::StatusOr<std::unique_ptr<PostgresStore>> b = PostgresStore::Open(options);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  std::vector<std::string> ids;
  for (int n = 0; n < 8; ++n) {
    const v1::Job job = MakeJob("mallory");
    absl::StatusOr<v1::Job> r = Create(n % 2 == 0 ? **a : **b, job);
    if (r.ok()) {
      ids.push_back(job.job_id());
    } else {
      EXPECT_THAT(r, StatusIs(absl::StatusCode::kResourceExhausted));
      EXPECT_THAT(r.status().message(), HasSubstr("max_jobs_per_identity"));
    }
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_THAT(Create(**b, MakeJob("alice")), IsOk());  // Another owner's room.
  // A create retried with its request id at the limit returns its job.
  const v1::Job retried = MakeJob("alice");
  ASSERT_THAT(Create(**a, retried, "req-1", "fp"), IsOk());
  ASSERT_THAT(Create(**a, MakeJob("alice")), IsOk());  // Alice's third: the limit.
  absl::StatusOr<v1::Job> again = Create(**b, retried, "req-1", "fp");
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->job_id(), retried.job_id());
  // A delete through one store makes room through the other; a deleted job
  // is still kept (max_stored_jobs) until it is purged.
  ASSERT_THAT(Update(**b, "mallory", ids[0], SetStatus(v1::Job::DELETED)), IsOk());
  EXPECT_THAT(Create(**a, MakeJob("mallory")), IsOk());  // 3 live, 4 kept.
  ASSERT_THAT(Update(**a, "mallory", ids[1], SetStatus(v1::Job::DELETED)), IsOk());
  absl::StatusOr<v1::Job> full = Create(**b, MakeJob("mallory"));
  EXPECT_THAT(full, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(full.status().message(), HasSubstr("max_stored_jobs_per_identity"));
}

// Writes queued behind a busy writer commit as one batch, in which creates,
// fires and results are applied in multi-row statements: each still gets
// its own outcome, and they take effect in the order they were submitted.
TEST(PostgresStoreTest, WritesQueuedTogetherApplyInOrderEachWithItsOwnOutcome) {
  absl::StatusOr<std::unique_ptr<PostgresStore>> opened =
      PostgresStore::Open({.uri = NewDatabase()});
  ASSERT_THAT(opened, IsOk());
  PostgresStore& store = **opened;
  const v1::Job a = MakeJob("alice");
  const v1::Job b = MakeJob("alice");
  ASSERT_THAT(Create(store, a), IsOk());
  ASSERT_THAT(Create(store, b), IsOk());

  // The writer is held inside a batch (a mutation runs on its thread) while
  // the rest queue up.
  absl::Notification release;
  auto gate = StartUpdate(store, "alice", a.job_id(), [&](v1::Job&) {
    release.WaitForNotification();
    return absl::OkStatus();
  });
  const int64_t commits_before = store.commits();
  const v1::Job first = MakeJob("alice");
  auto created = StartCreate(store, first, "req-1", "print");
  auto retried = StartCreate(store, MakeJob("alice"), "req-1", "print");
  auto reused = StartCreate(store, MakeJob("alice"), "req-1", "other print");
  auto taken = StartCreate(store, first);  // Its job id exists by then.
  struct StatusOutcome {
    absl::Notification done;
    absl::Status status = absl::UnknownError("callback not run");
  };
  auto write_result = [&](const std::string& job_id, v1::JobResult::Status status) {
    auto out = std::make_shared<StatusOutcome>();
    v1::JobResult r;
    r.set_run_number(1);
    r.set_status(status);
    store.WriteResult(job_id, r, [out](absl::Status s) {
      out->status = std::move(s);
      out->done.Notify();
    });
    return out;
  };
  auto write_state = [&](const std::string& job_id, std::optional<Fence> fence) {
    auto out = std::make_shared<Outcome>();
    store.WriteJobState(
        job_id, std::move(fence),
        [](v1::Job& job, std::vector<v1::JobResult>& table) {
          v1::JobResult r;
          r.set_run_number(1);
          r.set_status(v1::JobResult::FAILED);
          table.push_back(r);
          job.set_n_errors(job.n_errors() + 1);
          return absl::OkStatus();
        },
        Into(out));
    return out;
  };
  auto active = write_result(b.job_id(), v1::JobResult::ACTIVE);
  auto failed = write_state(b.job_id(), std::nullopt);
  auto succeeded = write_result(b.job_id(), v1::JobResult::SUCCEEDED);
  auto no_job_result = write_result("no-such-job", v1::JobResult::SUCCEEDED);
  auto no_job_state = write_state("no-such-job", std::nullopt);
  auto fenced_out = write_state(a.job_id(), Fence{ShardOf(a.job_id()), "nobody", 1});
  release.Notify();

  ASSERT_THAT(Await(gate), IsOk());
  ASSERT_THAT(Await(created), IsOk());
  EXPECT_EQ(created->result->job_id(), first.job_id());
  ASSERT_THAT(Await(retried), IsOk());
  EXPECT_EQ(retried->result->job_id(), first.job_id());  // The first request's job.
  EXPECT_THAT(Await(reused), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(Await(taken), StatusIs(absl::StatusCode::kAlreadyExists));
  for (auto* out : {active.get(), succeeded.get(), no_job_result.get()}) {
    ASSERT_TRUE(out->done.WaitForNotificationWithTimeout(kWait));
  }
  EXPECT_TRUE(active->status.ok()) << active->status;
  EXPECT_TRUE(succeeded->status.ok()) << succeeded->status;
  EXPECT_EQ(no_job_result->status.code(), absl::StatusCode::kNotFound);
  ASSERT_THAT(Await(failed), IsOk());
  EXPECT_EQ(failed->result->n_errors(), 1);
  EXPECT_THAT(Await(no_job_state), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Await(fenced_out), StatusIs(absl::StatusCode::kFailedPrecondition));
  // The queued writes shared one commit (besides the gate's).
  EXPECT_LE(store.commits() - commits_before, 2);

  // The last write of run 1 won; the fenced-out write changed nothing.
  absl::StatusOr<v1::Job> got = store.GetJob("alice", b.job_id());
  ASSERT_THAT(got, IsOk());
  ASSERT_EQ(got->results_size(), 1);
  EXPECT_EQ(got->results(0).status(), v1::JobResult::SUCCEEDED);
  EXPECT_EQ(got->n_errors(), 1);
  EXPECT_EQ(store.GetJob("alice", a.job_id())->n_errors(), 0);
}

// A fire reads its job without a lock and writes it only if unchanged: a
// change committed through another replica in between (here from inside
// the fire's mutation, between the two) wins, and the fire is ABORTED with
// nothing of it written.
TEST(PostgresStoreTest, AFireWhoseJobChangedThroughAnotherReplicaIsNotWritten) {
  const std::string uri = NewDatabase();
  absl::StatusOr<std::unique_ptr<PostgresStore>> one = PostgresStore::Open({.uri = uri});
  absl::StatusOr<std::unique_ptr<PostgresStore>> two = PostgresStore::Open({.uri = uri});
  ASSERT_THAT(one, IsOk());
  ASSERT_THAT(two, IsOk());
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(**one, job), IsOk());

  absl::StatusOr<v1::Job> renamed = absl::UnknownError("not run");
  auto fired = std::make_shared<Outcome>();
  (*one)->WriteJobState(
      job.job_id(),
      [&](v1::Job& j, std::vector<v1::JobResult>& table) {
        renamed = Update(**two, "alice", job.job_id(), Rename("renamed"));
        j.set_n_runs(j.n_runs() + 1);
        v1::JobResult r;
        r.set_run_number(1);
        r.set_status(v1::JobResult::PENDING);
        table.push_back(r);
        return absl::OkStatus();
      },
      Into(fired));
  EXPECT_THAT(Await(fired), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(renamed, IsOk());
  absl::StatusOr<v1::Job> got = (*one)->GetJob("alice", job.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->name(), "renamed");
  EXPECT_EQ(got->n_runs(), 0);
  EXPECT_EQ(got->results_size(), 0);
}

// With several writer connections (Options::writers) a job's writes all
// go to one, so they still take effect in order; a writer held inside a
// batch holds up only its own jobs' writes, the others commit meanwhile.
TEST(PostgresStoreTest, SeveralWritersCommitSideBySideAndKeepEachJobsWritesInOrder) {
  absl::StatusOr<std::unique_ptr<PostgresStore>> opened =
      PostgresStore::Open({.uri = NewDatabase(), .writers = 4});
  ASSERT_THAT(opened, IsOk());
  PostgresStore& store = **opened;
  // 32 jobs: with 4 writers, some are another writer's than the first's
  // (all on one would take odds of 4^-31).
  std::vector<v1::Job> jobs;
  for (int i = 0; i < 32; ++i) {
    jobs.push_back(MakeJob(i % 2 == 0 ? "alice" : "bob"));
    ASSERT_THAT(Create(store, jobs.back()), IsOk());
  }
  absl::Notification release;
  auto gate = StartUpdate(store, "alice", jobs[0].job_id(), [&](v1::Job&) {
    release.WaitForNotification();
    return absl::OkStatus();
  });
  // Each job's run 1: ACTIVE, then the fire's state, then SUCCEEDED, all
  // queued at once.
  struct StatusOutcome {
    absl::Notification done;
    absl::Status status = absl::UnknownError("callback not run");
  };
  auto write_result = [&](const std::string& job_id, v1::JobResult::Status status) {
    auto out = std::make_shared<StatusOutcome>();
    v1::JobResult r;
    r.set_run_number(1);
    r.set_status(status);
    store.WriteResult(job_id, r, [out](absl::Status s) {
      out->status = std::move(s);
      out->done.Notify();
    });
    return out;
  };
  std::vector<std::shared_ptr<StatusOutcome>> results;
  std::vector<std::shared_ptr<Outcome>> states;
  absl::Mutex mu;
  int done_while_held = 0;  // Guarded by mu: fires committed before release.
  for (const v1::Job& job : jobs) {
    results.push_back(write_result(job.job_id(), v1::JobResult::ACTIVE));
    auto state = std::make_shared<Outcome>();
    store.WriteJobState(
        job.job_id(), std::nullopt,
        [](v1::Job& j, std::vector<v1::JobResult>&) {
          j.set_n_runs(j.n_runs() + 1);
          return absl::OkStatus();
        },
        [&, done = Into(state)](absl::StatusOr<v1::Job> r) mutable {
          {
            absl::MutexLock lock(&mu);
            if (!release.HasBeenNotified()) ++done_while_held;
          }
          std::move(done)(std::move(r));
        });
    states.push_back(state);
    results.push_back(write_result(job.job_id(), v1::JobResult::SUCCEEDED));
  }
  // While the first job's writer is held, another writer's jobs commit.
  {
    absl::MutexLock lock(&mu);
    mu.AwaitWithTimeout(absl::Condition(
                            +[](int* n) { return *n > 0; }, &done_while_held),
                        absl::Seconds(10));
  }
  EXPECT_FALSE(states[0]->done.HasBeenNotified());  // Behind the gate.
  release.Notify();
  {
    absl::MutexLock lock(&mu);
    EXPECT_GT(done_while_held, 0);
  }
  ASSERT_THAT(Await(gate), IsOk());
  for (size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_THAT(Await(states[i]), IsOk());
    ASSERT_TRUE(results[2 * i]->done.WaitForNotificationWithTimeout(kWait));
    ASSERT_TRUE(results[2 * i + 1]->done.WaitForNotificationWithTimeout(kWait));
    EXPECT_TRUE(results[2 * i]->status.ok()) << results[2 * i]->status;
    EXPECT_TRUE(results[2 * i + 1]->status.ok()) << results[2 * i + 1]->status;
    absl::StatusOr<v1::Job> got = store.GetJob(jobs[i].owner(), jobs[i].job_id());
    ASSERT_THAT(got, IsOk());
    EXPECT_EQ(got->n_runs(), 1);
    ASSERT_EQ(got->results_size(), 1);
    EXPECT_EQ(got->results(0).status(), v1::JobResult::SUCCEEDED);  // The last.
  }
}

TEST(RedactPgUriTest, DropsThePasswordAndKeepsTheRest) {
  EXPECT_EQ(RedactPgUri("postgres://u:secret@db.example:5432/timer?sslmode=verify-full"),
            "postgres://u@db.example:5432/timer?sslmode=verify-full");
  EXPECT_EQ(RedactPgUri("postgresql://db/timer?user=u&password=secret&sslmode=require"),
            "postgresql://db/timer?user=u&sslmode=require");
  EXPECT_EQ(RedactPgUri("postgresql://u@h/d"), "postgresql://u@h/d");
  EXPECT_EQ(RedactPgUri("postgresql://u:p%40ss@h"), "postgresql://u@h");
  // Unencoded '/', '@' or '?' in a password: cut whole all the same.
  EXPECT_EQ(RedactPgUri("postgresql://u:pa?ss@h/d?user=a@b"),
            "postgresql://u@h/d?user=a@b");
  EXPECT_EQ(RedactPgUri("postgresql://u:pa/s@s@h/d"), "postgresql://u@h/d");
  EXPECT_EQ(RedactPgUri("postgresql://u:a@b@h:5432/d?sslmode=require"),
            "postgresql://u@h:5432/d?sslmode=require");
  EXPECT_EQ(RedactPgUri("postgresql://h/d?sslpassword=k&PASSWORD=x&user=u"),
            "postgresql://h/d?user=u");
  EXPECT_EQ(RedactPgUri("host=h password=x"), "(not a postgres:// URI)");
  EXPECT_TRUE(IsPgUri("postgres://h/d"));
  EXPECT_TRUE(IsPgUri("postgresql://h/d"));
  EXPECT_FALSE(IsPgUri("mysql://h/d"));
}

}  // namespace
}  // namespace timer::store
