// The Store contract (store/store.h), run against every implementation: one
// suite, parameterised by named store factories (kStores). A new store
// joins with one entry there; its tests then read `.../<name>`.
//
// No test sleeps: writes are awaited through their callbacks with a timeout.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "pg_cluster.h"
#include "store/lease_store.h"
#include "store/memory_store.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"
#include "store_test_support.h"

namespace timer::store {
namespace {

// How to make one store of a kind, in a fresh directory `dir` of its own.
struct StoreFactory {
  std::string name;  // Test-name suffix: letters, digits, underscores.
  std::function<absl::StatusOr<std::unique_ptr<Store>>(const std::string& dir)> make;
};

void PrintTo(const StoreFactory& factory, std::ostream* os) { *os << factory.name; }

const std::vector<StoreFactory>& Stores() {
  static const auto* stores = new std::vector<StoreFactory>{
      {"sqlite",
       [](const std::string& dir) -> absl::StatusOr<std::unique_ptr<Store>> {
         return SqliteStore::Open({.path = dir + "/timer.db"});
       }},
      {"memory",
       [](const std::string&) -> absl::StatusOr<std::unique_ptr<Store>> {
         return std::make_unique<MemoryStore>();
       }},
      // A fresh database of the process's cluster (pg_cluster.h).
      {"postgres",
       [](const std::string&) -> absl::StatusOr<std::unique_ptr<Store>> {
         absl::StatusOr<testing::PgCluster*> pg = testing::PgCluster::Get();
         absl::StatusOr<std::string> uri = pg.ok() ? (*pg)->NewDatabase() : pg.status();
         if (!uri.ok()) return uri.status();
         return PostgresStore::Open({.uri = *uri});
       }},
  };
  return *stores;
}

class StoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "could not create a temp dir";
    absl::StatusOr<std::unique_ptr<Store>> made = GetParam().make(dir_.path());
    ASSERT_THAT(made, IsOk());
    store_ = *std::move(made);
  }
  void TearDown() override { store_.reset(); }

  Store& store() { return *store_; }

  absl::StatusOr<v1::Job> Sync(const std::function<void(JobCallback)>& call) {
    absl::Notification done;
    absl::StatusOr<v1::Job> out = absl::UnknownError("");
    call([&](absl::StatusOr<v1::Job> j) {
      out = std::move(j);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }

  std::string NewJob(const std::string& owner, std::optional<int64_t> next_us) {
    v1::Job job;
    job.set_job_id(domain::NewUuid());
    job.set_owner(owner);
    job.mutable_create_time()->set_seconds(1);
    if (next_us) {
      job.mutable_next_run()->set_seconds(*next_us / 1000000);
      job.mutable_next_run()->set_nanos((*next_us % 1000000) * 1000);
    }
    EXPECT_TRUE(Sync([&](JobCallback cb) {
                  store_->CreateJob(job, "", "", std::move(cb));
                }).ok());
    return job.job_id();
  }

  // Writes results run_numbers [from, to] with `status`, ended at second = run.
  void AddResults(const std::string& id, int from, int to, v1::JobResult::Status status) {
    auto r = Sync([&](JobCallback cb) {
      store_->WriteJobState(
          id,
          [&](v1::Job&, std::vector<v1::JobResult>& table) {
            for (int n = from; n <= to; ++n) {
              v1::JobResult r;
              r.set_run_number(n);
              r.set_status(status);
              if (status != v1::JobResult::PENDING && status != v1::JobResult::ACTIVE) {
                r.mutable_end_time()->set_seconds(n);
              }
              table.push_back(r);
            }
            return absl::OkStatus();
          },
          std::move(cb));
    });
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // A WriteManualRun that adds the job's next run, manual, under
  // `request_id` at second `at`, unless the store reports an earlier one:
  // then nothing is added and `*earlier` is its run number.
  absl::StatusOr<v1::Job> RunNow(const std::string& owner, const std::string& id,
                                 const std::string& request_id, int64_t* earlier,
                                 int64_t at = 1) {
    return Sync([&](JobCallback cb) {
      store_->WriteManualRun(
          owner, id, request_id,
          [&, request_id, at](v1::Job& job, std::vector<v1::JobResult>& table,
                              int64_t existing) {
            *earlier = existing;
            if (existing != 0) return absl::OkStatus();
            v1::JobResult r;
            r.set_run_number(job.last_run_number() + 1);
            r.set_manual(true);
            r.set_request_id(request_id);
            r.set_status(v1::JobResult::SUCCEEDED);
            r.mutable_end_time()->set_seconds(at);
            job.set_last_run_number(r.run_number());
            job.mutable_update_time()->set_seconds(at);
            table.push_back(r);
            return absl::OkStatus();
          },
          std::move(cb));
    });
  }

  // Deletes the job as the domain does, at second `at`.
  void DeleteAt(const std::string& owner, const std::string& id, int64_t at) {
    ASSERT_THAT(Update(store(), owner, id,
                       [at](v1::Job& job) {
                         job.set_status(v1::Job::DELETED);
                         job.mutable_delete_time()->set_seconds(at);
                         job.mutable_update_time()->set_seconds(at);
                         return absl::OkStatus();
                       }),
                IsOk());
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreConformanceTest, CreateThenGetReturnsTheStoredJob) {
  const v1::Job job = MakeJob("alice");

  absl::StatusOr<v1::Job> created = Create(store(), job);
  ASSERT_THAT(created, IsOk());
  EXPECT_THAT(created->etag(), Not(IsEmpty()));
  v1::Job expected = job;
  expected.set_etag(created->etag());
  EXPECT_THAT(*created, EqualsProto(expected));

  absl::StatusOr<v1::Job> got = store().GetJob("alice", job.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(*got, EqualsProto(expected));
}

// Calendar schedules (cron, calendar, zone, DST policies, jitter, catch-up
// window, the nominal next slot) are part of the job: they round-trip, also
// after an update, and the due scan sees the (jittered) next_run.
TEST_P(StoreConformanceTest, CalendarSchedulesRoundTrip) {
  v1::Job cron = MakeJob("alice");
  v1::Schedule* s = cron.mutable_schedule();
  s->set_cron("0 30 2 * * MON-FRI");
  s->set_time_zone("Europe/Berlin");
  s->set_dst_gap(v1::DST_GAP_SHIFT);
  s->set_dst_repeat(v1::DST_REPEAT_BOTH);
  s->set_jitter_seconds(90);
  s->set_catch_up_window_seconds(3600);
  cron.mutable_next_run()->set_seconds(1'900'000'042);
  cron.mutable_next_scheduled_time()->set_seconds(1'900'000'000);
  ASSERT_THAT(Create(store(), cron), IsOk());
  absl::StatusOr<v1::Job> got = store().GetJob("alice", cron.job_id());
  ASSERT_THAT(got, IsOk());
  got->clear_etag();
  EXPECT_THAT(*got, EqualsProto(cron));

  ASSERT_THAT(Update(store(), "alice", cron.job_id(),
                     [](v1::Job& job) {
                       v1::Schedule* s = job.mutable_schedule();
                       v1::CalendarSpec* in = s->mutable_calendar()->add_include();
                       in->set_hours("2");
                       in->set_days_of_week("MON-FRI");
                       v1::CalendarSpec* out = s->mutable_calendar()->add_exclude();
                       out->set_months("12");
                       out->set_days_of_month("24-26");
                       return absl::OkStatus();
                     }),
              IsOk());
  got = store().GetJob("alice", cron.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_FALSE(got->schedule().has_cron());
  ASSERT_EQ(got->schedule().calendar().include_size(), 1);
  EXPECT_EQ(got->schedule().calendar().exclude(0).days_of_month(), "24-26");
  EXPECT_EQ(got->schedule().time_zone(), "Europe/Berlin");
  EXPECT_EQ(got->next_scheduled_time().seconds(), 1'900'000'000);

  v1::Job once = MakeJob("alice");
  once.mutable_schedule()->set_once(true);
  ASSERT_THAT(Create(store(), once), IsOk());
  got = store().GetJob("alice", once.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_TRUE(got->schedule().has_once());
}

TEST_P(StoreConformanceTest, GetUnknownJobIsNotFound) {
  EXPECT_THAT(store().GetJob("alice", domain::NewUuid()),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreConformanceTest, CreateWithAnExistingJobIdFailsAndKeepsTheFirstJob) {
  v1::Job first = MakeJob("alice");
  ASSERT_THAT(Create(store(), first), IsOk());
  v1::Job second = MakeJob("alice", 1700000100, first.job_id());
  second.set_name("impostor");

  EXPECT_THAT(Create(store(), second), Not(IsOk()));

  absl::StatusOr<v1::Job> got = store().GetJob("alice", first.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->name(), "nightly");
  EXPECT_THAT(ListAll(store(), "alice"), SizeIs(1));
}

TEST_P(StoreConformanceTest, AnotherOwnersJobIsNotFoundOnGet) {
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(store(), job), IsOk());

  EXPECT_THAT(store().GetJob("bob", job.job_id()), StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreConformanceTest, AnotherOwnersJobIsNotFoundOnUpdateAndUnchanged) {
  const v1::Job job = MakeJob("alice");
  absl::StatusOr<v1::Job> created = Create(store(), job);
  ASSERT_THAT(created, IsOk());
  bool mutation_ran = false;

  absl::StatusOr<v1::Job> updated =
      Update(store(), "bob", job.job_id(), [&mutation_ran](v1::Job& j) {
        mutation_ran = true;
        j.set_name("stolen");
        return absl::OkStatus();
      });

  EXPECT_THAT(updated, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(mutation_ran);
  absl::StatusOr<v1::Job> got = store().GetJob("alice", job.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(*got, EqualsProto(*created));
}

TEST_P(StoreConformanceTest, AnotherOwnersJobsAreAbsentFromList) {
  const v1::Job alices = MakeJob("alice", 1700000000);
  const v1::Job bobs = MakeJob("bob", 1700000001);
  ASSERT_THAT(Create(store(), alices), IsOk());
  ASSERT_THAT(Create(store(), bobs), IsOk());

  EXPECT_THAT(Ids(ListAll(store(), "alice")), ElementsAreArray({alices.job_id()}));
  EXPECT_THAT(Ids(ListAll(store(), "bob")), ElementsAreArray({bobs.job_id()}));
  EXPECT_THAT(ListAll(store(), "carol"), IsEmpty());
}

TEST_P(StoreConformanceTest, UpdateUnknownJobIsNotFound) {
  EXPECT_THAT(Update(store(), "alice", domain::NewUuid(), Rename("x")),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(StoreConformanceTest, RepeatedRequestIdWithSameFingerprintReturnsTheFirstJob) {
  const v1::Job first = MakeJob("alice", 1700000000);
  absl::StatusOr<v1::Job> created = Create(store(), first, "req-1", "fp-A");
  ASSERT_THAT(created, IsOk());
  v1::Job retry = MakeJob("alice", 1700000050);  // A fresh id, as a retry gets.

  absl::StatusOr<v1::Job> replayed = Create(store(), retry, "req-1", "fp-A");

  ASSERT_THAT(replayed, IsOk());
  EXPECT_THAT(*replayed, EqualsProto(*created));
  EXPECT_THAT(store().GetJob("alice", retry.job_id()),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Ids(ListAll(store(), "alice")), ElementsAreArray({first.job_id()}));
}

TEST_P(StoreConformanceTest, RepeatedRequestIdReturnsTheJobAsItIsNow) {
  const v1::Job first = MakeJob("alice");
  ASSERT_THAT(Create(store(), first, "req-1", "fp-A"), IsOk());
  absl::StatusOr<v1::Job> renamed =
      Update(store(), "alice", first.job_id(), Rename("renamed"));
  ASSERT_THAT(renamed, IsOk());

  absl::StatusOr<v1::Job> replayed = Create(store(), MakeJob("alice"), "req-1", "fp-A");

  ASSERT_THAT(replayed, IsOk());
  EXPECT_THAT(*replayed, EqualsProto(*renamed));
}

TEST_P(StoreConformanceTest, RepeatedRequestIdWithOtherFingerprintIsAlreadyExists) {
  const v1::Job first = MakeJob("alice", 1700000000);
  ASSERT_THAT(Create(store(), first, "req-1", "fp-A"), IsOk());
  const v1::Job other = MakeJob("alice", 1700000050);

  EXPECT_THAT(Create(store(), other, "req-1", "fp-B"),
              StatusIs(absl::StatusCode::kAlreadyExists));

  EXPECT_THAT(store().GetJob("alice", other.job_id()),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Ids(ListAll(store(), "alice")), ElementsAreArray({first.job_id()}));
}

TEST_P(StoreConformanceTest, RequestIdsAreScopedToTheOwner) {
  const v1::Job alices = MakeJob("alice", 1700000000);
  const v1::Job bobs = MakeJob("bob", 1700000001);
  ASSERT_THAT(Create(store(), alices, "req-1", "fp-A"), IsOk());

  absl::StatusOr<v1::Job> created = Create(store(), bobs, "req-1", "fp-B");

  ASSERT_THAT(created, IsOk());
  EXPECT_EQ(created->job_id(), bobs.job_id());
  EXPECT_THAT(Ids(ListAll(store(), "bob")), ElementsAreArray({bobs.job_id()}));
}

TEST_P(StoreConformanceTest, EmptyRequestIdNeverDeduplicates) {
  ASSERT_THAT(Create(store(), MakeJob("alice", 1700000000)), IsOk());
  ASSERT_THAT(Create(store(), MakeJob("alice", 1700000001)), IsOk());

  EXPECT_THAT(ListAll(store(), "alice"), SizeIs(2));
}

TEST_P(StoreConformanceTest, UpdateAppliesTheMutation) {
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(store(), job), IsOk());

  absl::StatusOr<v1::Job> updated =
      Update(store(), "alice", job.job_id(), Rename("weekly"));

  ASSERT_THAT(updated, IsOk());
  EXPECT_EQ(updated->name(), "weekly");
  absl::StatusOr<v1::Job> got = store().GetJob("alice", job.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(*got, EqualsProto(*updated));
}

TEST_P(StoreConformanceTest, UpdateMutationSeesTheCurrentJobAndEtag) {
  const v1::Job job = MakeJob("alice");
  absl::StatusOr<v1::Job> created = Create(store(), job);
  ASSERT_THAT(created, IsOk());
  v1::Job seen;

  ASSERT_THAT(Update(store(), "alice", job.job_id(),
                     [&seen](v1::Job& j) {
                       seen = j;
                       return absl::OkStatus();
                     }),
              IsOk());

  EXPECT_THAT(seen, EqualsProto(*created));
}

TEST_P(StoreConformanceTest, UpdateMutationErrorIsReturnedAndWritesNothing) {
  const v1::Job job = MakeJob("alice");
  absl::StatusOr<v1::Job> created = Create(store(), job);
  ASSERT_THAT(created, IsOk());

  absl::StatusOr<v1::Job> updated =
      Update(store(), "alice", job.job_id(), [](v1::Job& j) {
        j.set_name("half-done");
        j.set_status(v1::Job::DELETED);
        return absl::FailedPreconditionError("no, thanks");
      });

  EXPECT_THAT(updated, StatusIs(absl::StatusCode::kFailedPrecondition));
  absl::StatusOr<v1::Job> got = store().GetJob("alice", job.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(*got, EqualsProto(*created));
  ListJobsQuery live;
  live.owner = "alice";
  absl::StatusOr<ListJobsPage> page = store().ListJobs(live);
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(Ids(page->jobs), ElementsAreArray({job.job_id()}));
}

TEST_P(StoreConformanceTest, EtagChangesOnEveryWrite) {
  const v1::Job job = MakeJob("alice");
  absl::StatusOr<v1::Job> created = Create(store(), job);
  ASSERT_THAT(created, IsOk());
  std::set<std::string> etags = {created->etag()};
  std::string last = created->etag();

  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<v1::Job> updated =
        Update(store(), "alice", job.job_id(), Rename(absl::StrCat("n", i)));
    ASSERT_THAT(updated, IsOk());
    etags.insert(updated->etag());
    last = updated->etag();
  }
  // Even a write that changes nothing is a new version.
  absl::StatusOr<v1::Job> noop =
      Update(store(), "alice", job.job_id(), [](v1::Job&) { return absl::OkStatus(); });
  ASSERT_THAT(noop, IsOk());
  etags.insert(noop->etag());
  last = noop->etag();

  EXPECT_THAT(etags, SizeIs(5));
  absl::StatusOr<v1::Job> got = store().GetJob("alice", job.job_id());
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->etag(), last);
}

TEST_P(StoreConformanceTest, ListIsOrderedByCreateTimeThenJobId) {
  // Created out of order; two pairs share a create time.
  const std::vector<v1::Job> jobs = {
      MakeJob("alice", 300, OrderedId(1)), MakeJob("alice", 100, OrderedId(5)),
      MakeJob("alice", 200, OrderedId(9)), MakeJob("alice", 100, OrderedId(2)),
      MakeJob("alice", 300, OrderedId(0)),
  };
  for (const v1::Job& job : jobs) ASSERT_THAT(Create(store(), job), IsOk());

  EXPECT_THAT(Ids(ListAll(store(), "alice")),
              ElementsAreArray({OrderedId(2), OrderedId(5), OrderedId(9), OrderedId(0),
                                OrderedId(1)}));
}

TEST_P(StoreConformanceTest, ListOrdersBySubSecondCreateTime) {
  v1::Job later = MakeJob("alice", 100, OrderedId(1));
  later.mutable_create_time()->set_nanos(2000);
  v1::Job earlier = MakeJob("alice", 100, OrderedId(2));
  earlier.mutable_create_time()->set_nanos(1000);
  ASSERT_THAT(Create(store(), later), IsOk());
  ASSERT_THAT(Create(store(), earlier), IsOk());

  EXPECT_THAT(Ids(ListAll(store(), "alice")),
              ElementsAreArray({OrderedId(2), OrderedId(1)}));
}

TEST_P(StoreConformanceTest, ListPagesWithCursorsAndHasMore) {
  std::vector<std::string> want;
  for (int i = 0; i < 7; ++i) {
    // Ties on create time, so the job id must break them across pages too.
    v1::Job job = MakeJob("alice", 1000 + i / 2, OrderedId(100 - i));
    ASSERT_THAT(Create(store(), job), IsOk());
  }
  for (const v1::Job& job : ListAll(store(), "alice")) want.push_back(job.job_id());
  ASSERT_THAT(want, SizeIs(7));

  ListJobsQuery query;
  query.owner = "alice";
  query.page_size = 3;
  std::vector<std::string> got;
  std::vector<size_t> sizes;
  std::vector<bool> more;
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<ListJobsPage> page = store().ListJobs(query);
    ASSERT_THAT(page, IsOk());
    sizes.push_back(page->jobs.size());
    more.push_back(page->has_more);
    for (const v1::Job& job : page->jobs) got.push_back(job.job_id());
    if (!page->has_more) break;
    ASSERT_FALSE(page->jobs.empty());
    const v1::Job& last = page->jobs.back();
    query.after = ListCursor{ToMicros(last.create_time()), last.job_id()};
  }

  EXPECT_THAT(sizes, ElementsAreArray({3u, 3u, 1u}));
  EXPECT_THAT(more, ElementsAreArray({true, true, false}));
  EXPECT_EQ(got, want);
}

TEST_P(StoreConformanceTest, HasMoreIsFalseWhenTheLastPageIsExactlyFull) {
  for (int i = 0; i < 4; ++i) {
    ASSERT_THAT(Create(store(), MakeJob("alice", 1000 + i)), IsOk());
  }
  ListJobsQuery query;
  query.owner = "alice";
  query.page_size = 2;

  absl::StatusOr<ListJobsPage> first = store().ListJobs(query);
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(first->jobs, SizeIs(2));
  EXPECT_TRUE(first->has_more);
  const v1::Job& last = first->jobs.back();
  query.after = ListCursor{ToMicros(last.create_time()), last.job_id()};
  absl::StatusOr<ListJobsPage> second = store().ListJobs(query);
  ASSERT_THAT(second, IsOk());
  EXPECT_THAT(second->jobs, SizeIs(2));
  EXPECT_FALSE(second->has_more);
}

TEST_P(StoreConformanceTest, ListHidesDeletedJobsUnlessShowDeleted) {
  const v1::Job a = MakeJob("alice", 100, OrderedId(1));
  const v1::Job b = MakeJob("alice", 200, OrderedId(2));
  v1::Job c = MakeJob("alice", 300, OrderedId(3));
  c.set_status(v1::Job::DELETED);  // Stored already deleted.
  const v1::Job d = MakeJob("alice", 400, OrderedId(4));
  for (const v1::Job& job : {a, b, c, d}) ASSERT_THAT(Create(store(), job), IsOk());
  ASSERT_THAT(Update(store(), "alice", b.job_id(), SetStatus(v1::Job::DELETED)), IsOk());

  ListJobsQuery live;
  live.owner = "alice";
  absl::StatusOr<ListJobsPage> shown = store().ListJobs(live);
  ListJobsQuery all = live;
  all.show_deleted = true;
  absl::StatusOr<ListJobsPage> everything = store().ListJobs(all);

  ASSERT_THAT(shown, IsOk());
  EXPECT_THAT(Ids(shown->jobs), ElementsAreArray({a.job_id(), d.job_id()}));
  EXPECT_FALSE(shown->has_more);
  ASSERT_THAT(everything, IsOk());
  EXPECT_THAT(Ids(everything->jobs),
              ElementsAreArray({a.job_id(), b.job_id(), c.job_id(), d.job_id()}));
}

TEST_P(StoreConformanceTest, PagingSkipsDeletedJobsWithoutShortPages) {
  std::vector<v1::Job> jobs;
  for (int i = 0; i < 6; ++i) {
    jobs.push_back(MakeJob("alice", 100 + i, OrderedId(i)));
    ASSERT_THAT(Create(store(), jobs.back()), IsOk());
  }
  for (int i : {1, 2, 4}) {
    ASSERT_THAT(Update(store(), "alice", jobs[i].job_id(), SetStatus(v1::Job::DELETED)),
                IsOk());
  }
  ListJobsQuery query;
  query.owner = "alice";
  query.page_size = 2;

  absl::StatusOr<ListJobsPage> first = store().ListJobs(query);
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(Ids(first->jobs), ElementsAreArray({OrderedId(0), OrderedId(3)}));
  EXPECT_TRUE(first->has_more);
  query.after = ListCursor{ToMicros(jobs[3].create_time()), jobs[3].job_id()};
  absl::StatusOr<ListJobsPage> second = store().ListJobs(query);
  ASSERT_THAT(second, IsOk());
  EXPECT_THAT(Ids(second->jobs), ElementsAreArray({OrderedId(5)}));
  EXPECT_FALSE(second->has_more);
}

TEST_P(StoreConformanceTest, HasMoreIgnoresOnlyDeletedJobsBeyondThePage) {
  const v1::Job a = MakeJob("alice", 100, OrderedId(1));
  const v1::Job b = MakeJob("alice", 200, OrderedId(2));
  ASSERT_THAT(Create(store(), a), IsOk());
  ASSERT_THAT(Create(store(), b), IsOk());
  ASSERT_THAT(Update(store(), "alice", b.job_id(), SetStatus(v1::Job::DELETED)), IsOk());
  ListJobsQuery query;
  query.owner = "alice";
  query.page_size = 1;

  absl::StatusOr<ListJobsPage> page = store().ListJobs(query);

  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(Ids(page->jobs), ElementsAreArray({a.job_id()}));
  EXPECT_FALSE(page->has_more);
}

TEST_P(StoreConformanceTest, UndeletingAJobShowsItInListsAgain) {
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(store(), job), IsOk());
  ASSERT_THAT(Update(store(), "alice", job.job_id(), SetStatus(v1::Job::DELETED)),
              IsOk());
  ASSERT_THAT(Update(store(), "alice", job.job_id(), SetStatus(v1::Job::PAUSED)), IsOk());

  ListJobsQuery live;
  live.owner = "alice";
  absl::StatusOr<ListJobsPage> page = store().ListJobs(live);

  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(Ids(page->jobs), ElementsAreArray({job.job_id()}));
}

TEST_P(StoreConformanceTest, GetReturnsSoftDeletedJobs) {
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(store(), job), IsOk());
  ASSERT_THAT(Update(store(), "alice", job.job_id(), SetStatus(v1::Job::DELETED)),
              IsOk());

  absl::StatusOr<v1::Job> got = store().GetJob("alice", job.job_id());

  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->status(), v1::Job::DELETED);
}

TEST_P(StoreConformanceTest, ListResultsIsNewestFirstPagedAndOwnerScoped) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 7, v1::JobResult::SUCCEEDED);
  auto page = store_->ListResults("alice", id, 0, 3).value();
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(page[0].run_number(), 7);
  EXPECT_EQ(page[2].run_number(), 5);
  page = store_->ListResults("alice", id, 5, 10).value();
  ASSERT_EQ(page.size(), 4u);
  EXPECT_EQ(page[0].run_number(), 4);
  EXPECT_EQ(store_->ListResults("bob", id, 0, 10).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, AResultWrittenAgainIsReplaced) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 1, v1::JobResult::ACTIVE);
  AddResults(id, 1, 1, v1::JobResult::SUCCEEDED);
  auto all = store_->ListResults("alice", id, 0, 10).value();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].status(), v1::JobResult::SUCCEEDED);
}

TEST_P(StoreConformanceTest, OpenResultsAreThePendingAndActiveOnes) {
  const std::string a = NewJob("alice", std::nullopt);
  const std::string b = NewJob("bob", std::nullopt);
  AddResults(a, 1, 2, v1::JobResult::SUCCEEDED);
  AddResults(a, 3, 3, v1::JobResult::PENDING);
  AddResults(b, 1, 1, v1::JobResult::ACTIVE);
  auto open = store_->ListOpenResults().value();
  ASSERT_EQ(open.size(), 2u);
  std::set<std::pair<std::string, int64_t>> got;
  for (const auto& [id, r] : open) got.emplace(id, r.run_number());
  EXPECT_EQ(got, (std::set<std::pair<std::string, int64_t>>{{a, 3}, {b, 1}}));
}

TEST_P(StoreConformanceTest, ScanDueSeesOnlyJobsWithANextRun) {
  const std::string due = NewJob("alice", 5'000'000);
  NewJob("alice", std::nullopt);
  std::vector<std::pair<std::string, int64_t>> seen;
  ASSERT_TRUE(
      store_
          ->ScanDue([&](const std::string& id, int64_t us) { seen.emplace_back(id, us); })
          .ok());
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, int64_t>>{{due, 5'000'000}}));
}

TEST_P(StoreConformanceTest, PruneKeepsTheNewestAndDropsTheOldButNeverOpenRuns) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 10, v1::JobResult::SUCCEEDED);
  AddResults(id, 11, 11, v1::JobResult::ACTIVE);
  EXPECT_EQ(store_->PruneResults(6, 0).value(), 5);  // Runs 1..5 beyond 6 newest.
  auto left = store_->ListResults("alice", id, 0, 100).value();
  ASSERT_EQ(left.size(), 6u);
  EXPECT_EQ(left[0].run_number(), 11);  // Open: kept.
  // Ended before second 8 (runs 6, 7) go.
  EXPECT_EQ(store_->PruneResults(100, 8'000'000).value(), 2);
  EXPECT_EQ(store_->ListResults("alice", id, 0, 100).value().size(), 4u);
}

TEST_P(StoreConformanceTest, PruneKeepsAnOpenRunAmongDroppedOnesListed) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 10, v1::JobResult::SUCCEEDED);
  AddResults(id, 3, 3, v1::JobResult::ACTIVE);       // Still open: never dropped.
  EXPECT_EQ(store_->PruneResults(2, 0).value(), 7);  // 1, 2 and 4..8.
  const auto runs = [&] {
    std::vector<int64_t> out;
    const std::vector<v1::JobResult> results =
        store_->ListResults("alice", id, 0, 100).value();
    for (const auto& r : results) out.push_back(r.run_number());
    return out;
  };
  EXPECT_EQ(runs(), (std::vector<int64_t>{10, 9, 3}));
  AddResults(id, 11, 11, v1::JobResult::SUCCEEDED);
  EXPECT_EQ(runs(), (std::vector<int64_t>{11, 10, 9, 3}));
  EXPECT_EQ(store_->GetJob("alice", id)->results_size(), 4);
  // The open run ends; now it goes too, and the newest one by age.
  AddResults(id, 3, 3, v1::JobResult::SUCCEEDED);
  EXPECT_EQ(store_->PruneResults(100, 4'000'000).value(), 1);  // Ended at second 3.
  EXPECT_EQ(runs(), (std::vector<int64_t>{11, 10, 9}));
}

TEST_P(StoreConformanceTest, PruneCoversEveryJobWhenItTakesSeveralWrites) {
  // More results than one of the SQLite store's prune writes walks.
  std::vector<std::string> ids;
  for (int j = 0; j < 3; ++j) {
    ids.push_back(NewJob("alice", std::nullopt));
    AddResults(ids.back(), 1, 2000, v1::JobResult::SUCCEEDED);
  }
  EXPECT_EQ(store_->PruneResults(10, 0).value(), 3 * 1990);
  for (const std::string& id : ids) {
    const auto left = store_->ListResults("alice", id, 0, 100).value();
    ASSERT_EQ(left.size(), 10u);
    EXPECT_EQ(left.front().run_number(), 2000);
    EXPECT_EQ(left.back().run_number(), 1991);
  }
}

TEST_P(StoreConformanceTest, PruneByAgeDropsTheNewestRunWhenItEndedFirst) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 5, v1::JobResult::SUCCEEDED);
  auto r = Sync([&](JobCallback cb) {
    store_->WriteJobState(
        id,
        [&](v1::Job&, std::vector<v1::JobResult>& table) {
          v1::JobResult r;
          r.set_run_number(6);
          r.set_status(v1::JobResult::FAILED);
          r.mutable_end_time()->set_seconds(1);  // Before run 5 ended.
          table.push_back(r);
          return absl::OkStatus();
        },
        std::move(cb));
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(store_->PruneResults(100, 2'000'000).value(), 2);  // Runs 1 and 6.
  const auto left = store_->ListResults("alice", id, 0, 100).value();
  ASSERT_EQ(left.size(), 4u);
  EXPECT_EQ(left[0].run_number(), 5);
  EXPECT_EQ(left[3].run_number(), 2);
  EXPECT_EQ(store_->GetJob("alice", id)->results(0).run_number(), 5);
}

TEST_P(StoreConformanceTest, AnOlderRunWrittenLaterIsListedInRunOrder) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 2, v1::JobResult::SUCCEEDED);
  for (int run : {5, 4, 3}) {
    v1::JobResult r;
    r.set_run_number(run);
    r.set_status(v1::JobResult::SUCCEEDED);
    absl::Notification done;
    store_->WriteResult(id, r, [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      done.Notify();
    });
    done.WaitForNotification();
  }
  std::vector<int64_t> runs;
  const std::vector<v1::JobResult> results =
      store_->ListResults("alice", id, 0, 100).value();
  for (const auto& r : results) runs.push_back(r.run_number());
  EXPECT_EQ(runs, (std::vector<int64_t>{5, 4, 3, 2, 1}));
  const auto page = store_->ListResults("alice", id, 4, 2).value();
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].run_number(), 3);
  EXPECT_EQ(page[1].run_number(), 2);
}

TEST_P(StoreConformanceTest, AResultOfAnUnknownJobIsNotFoundAndNotStored) {
  v1::JobResult r;
  r.set_run_number(1);
  r.set_status(v1::JobResult::PENDING);
  absl::Notification done;
  absl::Status status;
  store_->WriteResult("no-such-job", r, [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListOpenResults()->empty());
}

TEST_P(StoreConformanceTest, LoadJobsReadsEveryOwnersJobsThatExistWithoutResults) {
  const std::string a = NewJob("alice", std::nullopt);
  const std::string b = NewJob("bob", std::nullopt);
  AddResults(a, 1, 3, v1::JobResult::SUCCEEDED);
  absl::StatusOr<std::vector<v1::Job>> jobs = store_->LoadJobs({b, "no-such-job", a});
  ASSERT_THAT(jobs, IsOk());
  std::map<std::string, v1::Job> by_id;
  for (const v1::Job& job : *jobs) by_id[job.job_id()] = job;
  ASSERT_EQ(by_id.size(), 2u);
  EXPECT_EQ(by_id[a].owner(), "alice");
  EXPECT_EQ(by_id[b].owner(), "bob");
  EXPECT_EQ(by_id[a].results_size(), 0);
  EXPECT_EQ(by_id[a].etag(), store_->LoadJob(a)->etag());
  EXPECT_THAT(store_->LoadJobs({}), IsOk());
}

TEST_P(StoreConformanceTest, JobsCarryTheNewestTenResultsNewestFirstOnEveryRead) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 12, v1::JobResult::SUCCEEDED);

  const auto numbers = [](const v1::Job& job) {
    std::vector<int64_t> n;
    for (const auto& r : job.results()) n.push_back(r.run_number());
    return n;
  };
  const std::vector<int64_t> newest = {12, 11, 10, 9, 8, 7, 6, 5, 4, 3};
  EXPECT_EQ(numbers(store_->GetJob("alice", id).value()), newest);
  EXPECT_EQ(numbers(store_->LoadJob(id).value()), newest);
  ListJobsQuery query;
  query.owner = "alice";
  auto page = store_->ListJobs(query).value();
  ASSERT_EQ(page.jobs.size(), 1u);
  EXPECT_EQ(numbers(page.jobs[0]), newest);
  // A mutation sees them, and the written job has them, new ones included.
  std::vector<int64_t> seen;
  auto written = Sync([&](JobCallback cb) {
    store_->WriteJob(
        "alice", id,
        [&](v1::Job& job, std::vector<v1::JobResult>& table) {
          seen = numbers(job);
          v1::JobResult r;
          r.set_run_number(13);
          table.push_back(r);
          return absl::OkStatus();
        },
        std::move(cb));
  });
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(seen, newest);
  EXPECT_EQ(numbers(*written), (std::vector<int64_t>{13, 12, 11, 10, 9, 8, 7, 6, 5, 4}));
}

TEST_P(StoreConformanceTest, ResultsSetOnTheJobItselfAreNotStored) {
  const std::string id = NewJob("alice", std::nullopt);
  auto written = Sync([&](JobCallback cb) {
    store_->WriteJob(
        "alice", id,
        [](v1::Job& job, std::vector<v1::JobResult>&) {
          job.add_results()->set_run_number(99);
          return absl::OkStatus();
        },
        std::move(cb));
  });
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->results_size(), 0);
  EXPECT_EQ(store_->GetJob("alice", id)->results_size(), 0);
}

TEST_P(StoreConformanceTest, LastRunIsTheNewestResultsStartWhenLater) {
  const std::string id = NewJob("alice", std::nullopt);
  auto written = Sync([&](JobCallback cb) {
    store_->WriteJob(
        "alice", id,
        [](v1::Job& job, std::vector<v1::JobResult>& table) {
          job.mutable_last_run()->set_seconds(50);
          v1::JobResult r;
          r.set_run_number(1);
          r.mutable_start_time()->set_seconds(40);
          table.push_back(r);
          return absl::OkStatus();
        },
        std::move(cb));
  });
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(store_->GetJob("alice", id)->last_run().seconds(), 50);  // Stored is later.

  v1::JobResult r;
  r.set_run_number(2);
  r.mutable_start_time()->set_seconds(60);
  absl::Notification done;
  store_->WriteResult(id, r, [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(store_->GetJob("alice", id)->last_run().seconds(), 60);
}

TEST_P(StoreConformanceTest, WriteResultAddsOrReplacesAResultAndLeavesTheJobAlone) {
  const std::string id = NewJob("alice", std::nullopt);
  const std::string etag = store_->GetJob("alice", id)->etag();
  for (auto status : {v1::JobResult::ACTIVE, v1::JobResult::SUCCEEDED}) {
    v1::JobResult r;
    r.set_run_number(1);
    r.set_status(status);
    absl::Notification done;
    store_->WriteResult(id, r, [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      done.Notify();
    });
    done.WaitForNotification();
  }
  const v1::Job job = store_->GetJob("alice", id).value();
  EXPECT_EQ(job.etag(), etag);
  ASSERT_EQ(job.results_size(), 1);
  EXPECT_EQ(job.results(0).status(), v1::JobResult::SUCCEEDED);
  EXPECT_TRUE(store_->ListOpenResults()->empty());
}

// Retries (domain/run_engine.h): between attempts a run is PENDING with its
// attempts and next_attempt_time, and must come back from ListOpenResults
// with both after a restart; once it ends it is no longer open.
TEST_P(StoreConformanceTest, ARunWaitingForARetryStaysOpenWithItsAttemptsAndDueTime) {
  const std::string id = NewJob("alice", std::nullopt);
  const auto write = [&](const v1::JobResult& r) {
    absl::Notification done;
    store_->WriteResult(id, r, [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      done.Notify();
    });
    done.WaitForNotification();
  };
  v1::JobResult r;
  r.set_run_number(1);
  r.set_status(v1::JobResult::ACTIVE);
  r.set_action_id("a-1");
  write(r);
  r.set_status(v1::JobResult::PENDING);
  r.set_error("connection refused");
  r.set_error_class(v1::ERROR_CLASS_TRANSIENT);
  v1::RunAttempt* a = r.add_attempts();
  a->set_attempt(1);
  a->mutable_start_time()->set_seconds(10);
  a->mutable_end_time()->set_seconds(11);
  a->set_error("connection refused");
  a->set_error_class(v1::ERROR_CLASS_TRANSIENT);
  r.mutable_next_attempt_time()->set_seconds(21);
  write(r);

  auto open = store_->ListOpenResults().value();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].first, id);
  const v1::JobResult& got = open[0].second;
  EXPECT_EQ(got.status(), v1::JobResult::PENDING);
  EXPECT_EQ(got.next_attempt_time().seconds(), 21);
  ASSERT_EQ(got.attempts_size(), 1);
  EXPECT_EQ(got.attempts(0).error_class(), v1::ERROR_CLASS_TRANSIENT);
  EXPECT_EQ(got.error_class(), v1::ERROR_CLASS_TRANSIENT);

  r.clear_next_attempt_time();
  r.set_status(v1::JobResult::SUCCEEDED);
  r.mutable_end_time()->set_seconds(30);
  a = r.add_attempts();
  a->set_attempt(2);
  write(r);
  EXPECT_TRUE(store_->ListOpenResults()->empty());
  const v1::Job job = store_->GetJob("alice", id).value();
  ASSERT_EQ(job.results_size(), 1);
  EXPECT_EQ(job.results(0).attempts_size(), 2);
}

// The job's retry and pause fields are kept by every write of its state.
TEST_P(StoreConformanceTest, RetryPolicyAndPauseStateRoundTrip) {
  const std::string id = NewJob("alice", std::nullopt);
  auto written = Sync([&](JobCallback cb) {
    store_->WriteJobState(
        id,
        [](v1::Job& job, std::vector<v1::JobResult>&) {
          job.mutable_retry_policy()->set_max_attempts(3);
          job.mutable_retry_policy()->mutable_initial_backoff()->set_seconds(30);
          job.mutable_retry_policy()->set_multiplier(1.5);
          job.set_pause_after_failures(3);
          job.set_consecutive_failures(3);
          job.set_status(v1::Job::PAUSED);
          job.mutable_inactive_reason()->set_cause(
              v1::InactiveReason::CONSECUTIVE_FAILURES);
          job.mutable_inactive_reason()->set_detail("3 consecutive runs failed");
          return absl::OkStatus();
        },
        std::move(cb));
  });
  ASSERT_TRUE(written.ok()) << written.status();
  for (const v1::Job& job :
       {store_->GetJob("alice", id).value(), store_->LoadJob(id).value()}) {
    EXPECT_EQ(job.retry_policy().max_attempts(), 3);
    EXPECT_EQ(job.retry_policy().initial_backoff().seconds(), 30);
    EXPECT_TRUE(job.retry_policy().has_multiplier());
    EXPECT_EQ(job.retry_policy().multiplier(), 1.5);
    EXPECT_EQ(job.pause_after_failures(), 3);
    EXPECT_EQ(job.consecutive_failures(), 3);
    EXPECT_EQ(job.inactive_reason().cause(), v1::InactiveReason::CONSECUTIVE_FAILURES);
    EXPECT_EQ(job.inactive_reason().detail(), "3 consecutive runs failed");
  }
}

TEST_P(StoreConformanceTest, WriteJobStateSkipsResultsButKeepsThem) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 3, v1::JobResult::SUCCEEDED);
  int seen = -1;
  auto written = Sync([&](JobCallback cb) {
    store_->WriteJobState(
        id,
        [&](v1::Job& job, std::vector<v1::JobResult>& table) {
          seen = job.results_size();
          job.set_name("renamed");
          v1::JobResult r;
          r.set_run_number(4);
          table.push_back(r);
          return absl::OkStatus();
        },
        std::move(cb));
  });
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(seen, 0);
  EXPECT_EQ(written->results_size(), 0);
  const v1::Job job = store_->GetJob("alice", id).value();
  EXPECT_EQ(job.name(), "renamed");
  EXPECT_EQ(job.results_size(), 4);
}

// ---------------------------------------------------------------------------
// Callbacks: one at a time, in commit order.

// Writers on many threads bump one counter in the job; the mutation runs in
// commit order, so the counter each callback sees is its write's place in
// that order. Callbacks must see 1, 2, 3... never two at once, and each its
// own write already visible to reads.
TEST_P(StoreConformanceTest, ConcurrentWritersCallbacksRunOneAtATimeInCommitOrder) {
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(store(), job), IsOk());
  constexpr int kThreads = 8;
  constexpr int kWritesEach = 50;
  constexpr int kWrites = kThreads * kWritesEach;

  absl::Mutex mu;
  std::vector<int64_t> order;  // Counter per callback, in callback order.
  int visible_too_early = 0;
  std::atomic<int> inside{0};
  std::atomic<int> overlapped{0};
  absl::Notification all_done;
  const auto callback = [&](absl::StatusOr<v1::Job> r) {
    if (inside.fetch_add(1) != 0) overlapped.fetch_add(1);
    const int64_t n = r.ok() ? r->n_runs() : -1;
    // A read takes a while: an overlapping callback would be caught here.
    absl::StatusOr<v1::Job> now = store().GetJob("alice", job.job_id());
    inside.fetch_sub(1);
    absl::MutexLock lock(&mu);
    if (!now.ok() || now->n_runs() < n) ++visible_too_early;
    order.push_back(n);
    if (static_cast<int>(order.size()) == kWrites) all_done.Notify();
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kWritesEach; ++i) {
        store().UpdateJob(
            "alice", job.job_id(),
            [](v1::Job& j) {
              j.set_n_runs(j.n_runs() + 1);
              return absl::OkStatus();
            },
            callback);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(kWait));

  absl::MutexLock lock(&mu);
  std::vector<int64_t> expected(kWrites);
  for (int i = 0; i < kWrites; ++i) expected[i] = i + 1;
  EXPECT_EQ(order, expected);
  EXPECT_EQ(overlapped.load(), 0);
  EXPECT_EQ(visible_too_early, 0);
}

// A callback may write; that write's callback runs after it returns, still
// in commit order.
TEST_P(StoreConformanceTest, AWriteFromACallbackCompletesAfterIt) {
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(store(), job), IsOk());
  absl::Mutex mu;
  std::vector<std::string> events;
  absl::Notification inner_done;
  store().UpdateJob("alice", job.job_id(), Rename("outer"),
                    [&](absl::StatusOr<v1::Job> r) {
                      EXPECT_THAT(r, IsOk());
                      store().UpdateJob("alice", job.job_id(), Rename("inner"),
                                        [&](absl::StatusOr<v1::Job> r2) {
                                          EXPECT_THAT(r2, IsOk());
                                          absl::MutexLock lock(&mu);
                                          events.push_back("inner");
                                          inner_done.Notify();
                                        });
                      absl::MutexLock lock(&mu);
                      events.push_back("outer");
                    });
  ASSERT_TRUE(inner_done.WaitForNotificationWithTimeout(kWait));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(events, (std::vector<std::string>{"outer", "inner"}));
  EXPECT_EQ(store().GetJob("alice", job.job_id())->name(), "inner");
}

// ---------------------------------------------------------------------------
// RunJobNow's request ids (WriteManualRun), per-owner usage (CountJobs) and
// the purge of deleted jobs (PurgeDeletedJobs).

TEST_P(StoreConformanceTest, AManualRunRequestIdIsRememberedBeyondTheNewestResults) {
  const std::string id = NewJob("alice", std::nullopt);
  int64_t earlier = -1;
  // More runs than a job carries (kJobResults): the first is still found.
  for (int i = 1; i <= kJobResults + 2; ++i) {
    ASSERT_THAT(RunNow("alice", id, absl::StrCat("click-", i), &earlier), IsOk());
    ASSERT_EQ(earlier, 0) << i;
  }
  absl::StatusOr<v1::Job> again = RunNow("alice", id, "click-1", &earlier);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(earlier, 1);
  EXPECT_EQ(again->last_run_number(), kJobResults + 2);  // Nothing added.
  // Another job's request ids are its own.
  const std::string other = NewJob("alice", std::nullopt);
  ASSERT_THAT(RunNow("alice", other, "click-1", &earlier), IsOk());
  EXPECT_EQ(earlier, 0);
  // An empty request id never deduplicates.
  ASSERT_THAT(RunNow("alice", id, "", &earlier), IsOk());
  ASSERT_THAT(RunNow("alice", id, "", &earlier), IsOk());
  EXPECT_EQ(earlier, 0);
  EXPECT_EQ(store().GetJob("alice", id)->last_run_number(), kJobResults + 4);
}

TEST_P(StoreConformanceTest, AManualRunOfAnotherOwnersJobIsNotFoundAndRemembersNothing) {
  const std::string id = NewJob("alice", std::nullopt);
  int64_t earlier = -1;
  EXPECT_THAT(RunNow("bob", id, "click", &earlier),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(RunNow("alice", id, "click", &earlier), IsOk());
  EXPECT_EQ(earlier, 0);
}

TEST_P(StoreConformanceTest, AFailedManualRunRemembersNothing) {
  const std::string id = NewJob("alice", std::nullopt);
  absl::StatusOr<v1::Job> failed = Sync([&](JobCallback cb) {
    store_->WriteManualRun(
        "alice", id, "click",
        [](v1::Job& job, std::vector<v1::JobResult>& table, int64_t) {
          v1::JobResult r;
          r.set_run_number(1);
          r.set_manual(true);
          r.set_request_id("click");
          table.push_back(r);
          return absl::FailedPreconditionError("refused");
        },
        std::move(cb));
  });
  EXPECT_THAT(failed, StatusIs(absl::StatusCode::kFailedPrecondition));
  int64_t earlier = -1;
  ASSERT_THAT(RunNow("alice", id, "click", &earlier), IsOk());
  EXPECT_EQ(earlier, 0);
  EXPECT_EQ(store().ListResults("alice", id, 0, 10)->size(), 1u);
}

TEST_P(StoreConformanceTest, PruneForgetsManualRunRequestIdsOlderThanItsCutoff) {
  const std::string id = NewJob("alice", std::nullopt);
  int64_t earlier = -1;
  ASSERT_THAT(RunNow("alice", id, "old", &earlier, /*at=*/10), IsOk());
  ASSERT_THAT(RunNow("alice", id, "new", &earlier, /*at=*/30), IsOk());
  ASSERT_THAT(store().PruneResults(1000, 20'000'000), IsOk());
  ASSERT_THAT(RunNow("alice", id, "new", &earlier, 40), IsOk());
  EXPECT_EQ(earlier, 2);
  ASSERT_THAT(RunNow("alice", id, "old", &earlier, 40), IsOk());
  EXPECT_EQ(earlier, 0);  // Forgotten: a new run.
}

TEST_P(StoreConformanceTest, CountJobsCountsDeletedJobsAndTheirBytesUntilPurged) {
  v1::Job small = MakeJob("alice", 100, OrderedId(1));
  v1::Job big = MakeJob("alice", 200, OrderedId(2));
  big.mutable_action()->set_body(
      absl::StrCat(R"({"k":")", std::string(5000, 'x'), "\"}"));
  ASSERT_THAT(Create(store(), small), IsOk());
  ASSERT_THAT(Create(store(), big), IsOk());
  ASSERT_THAT(Create(store(), MakeJob("bob")), IsOk());
  DeleteAt("alice", big.job_id(), 300);
  const int64_t small_bytes = StoredBytes(*store().GetJob("alice", small.job_id()));
  const int64_t big_bytes = StoredBytes(*store().GetJob("alice", big.job_id()));
  EXPECT_GT(big_bytes, 5000);

  absl::StatusOr<OwnerUsage> usage = store().CountJobs("alice");
  ASSERT_THAT(usage, IsOk());
  EXPECT_EQ(usage->live_jobs, 1);
  EXPECT_EQ(usage->stored_jobs, 2);
  EXPECT_EQ(usage->stored_bytes, small_bytes + big_bytes);

  absl::StatusOr<std::vector<PurgedJob>> purged =
      store().PurgeDeletedJobs(INT64_MAX, 100);
  ASSERT_THAT(purged, IsOk());
  ASSERT_EQ(purged->size(), 1u);
  EXPECT_EQ((*purged)[0].owner, "alice");
  EXPECT_EQ((*purged)[0].job_id, big.job_id());
  EXPECT_EQ((*purged)[0].bytes, big_bytes);
  usage = store().CountJobs("alice");
  ASSERT_THAT(usage, IsOk());
  EXPECT_EQ(usage->live_jobs, 1);
  EXPECT_EQ(usage->stored_jobs, 1);
  EXPECT_EQ(usage->stored_bytes, small_bytes);
}

TEST_P(StoreConformanceTest, CountJobsByStatusCountsEveryOwnersJobsUntilPurged) {
  absl::StatusOr<std::map<int, int64_t>> none = store().CountJobsByStatus();
  ASSERT_THAT(none, IsOk());
  EXPECT_TRUE(none->empty());
  const v1::Job fresh = MakeJob("alice");
  const v1::Job paused = MakeJob("alice");
  const v1::Job gone = MakeJob("bob");
  for (const v1::Job& job : {fresh, paused, gone}) {
    ASSERT_THAT(Create(store(), job), IsOk());
  }
  ASSERT_THAT(Update(store(), "alice", paused.job_id(),
                     [](v1::Job& job) {
                       job.set_status(v1::Job::PAUSED);
                       return absl::OkStatus();
                     }),
              IsOk());
  DeleteAt("bob", gone.job_id(), 300);
  absl::StatusOr<std::map<int, int64_t>> counted = store().CountJobsByStatus();
  ASSERT_THAT(counted, IsOk());
  EXPECT_EQ(*counted,
            (std::map<int, int64_t>{
                {v1::Job::NEW, 1}, {v1::Job::PAUSED, 1}, {v1::Job::DELETED, 1}}));
  ASSERT_THAT(store().PurgeDeletedJobs(INT64_MAX, 100), IsOk());
  counted = store().CountJobsByStatus();
  ASSERT_THAT(counted, IsOk());
  EXPECT_EQ(*counted, (std::map<int, int64_t>{{v1::Job::NEW, 1}, {v1::Job::PAUSED, 1}}));
}

TEST_P(StoreConformanceTest, PurgeRemovesJobsDeletedBeforeTheCutoffWithAllTheyKept) {
  const v1::Job doomed = MakeJob("alice", 100, OrderedId(1));
  const v1::Job later = MakeJob("alice", 200, OrderedId(2));
  const v1::Job live = MakeJob("alice", 300, OrderedId(3));
  ASSERT_THAT(Create(store(), doomed, "create-1", "fp"), IsOk());
  ASSERT_THAT(Create(store(), later), IsOk());
  ASSERT_THAT(Create(store(), live), IsOk());
  int64_t earlier = -1;
  ASSERT_THAT(RunNow("alice", doomed.job_id(), "click", &earlier), IsOk());  // Run 1.
  AddResults(doomed.job_id(), 2, 4, v1::JobResult::SUCCEEDED);
  AddResults(doomed.job_id(), 5, 5, v1::JobResult::ACTIVE);
  DeleteAt("alice", doomed.job_id(), 1000);
  DeleteAt("alice", later.job_id(), 3000);

  // Strictly before the cutoff; results stay readable until then.
  ASSERT_THAT(store().PurgeDeletedJobs(1000'000'000, 100), IsOk());
  EXPECT_THAT(store().GetJob("alice", doomed.job_id()), IsOk());
  EXPECT_EQ(store().ListResults("alice", doomed.job_id(), 0, 10)->size(), 5u);

  absl::StatusOr<std::vector<PurgedJob>> purged =
      store().PurgeDeletedJobs(2000'000'000, 100);
  ASSERT_THAT(purged, IsOk());
  ASSERT_EQ(purged->size(), 1u);
  EXPECT_EQ((*purged)[0].job_id, doomed.job_id());
  EXPECT_THAT(store().GetJob("alice", doomed.job_id()),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store().ListResults("alice", doomed.job_id(), 0, 10),
              StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>> open =
      store().ListOpenResults();
  ASSERT_THAT(open, IsOk());
  for (const auto& [job_id, result] : *open) EXPECT_NE(job_id, doomed.job_id());
  // Its create request id is forgotten: the same request makes a new job.
  const v1::Job retry = MakeJob("alice", 400, OrderedId(4));
  absl::StatusOr<v1::Job> recreated = Create(store(), retry, "create-1", "fp");
  ASSERT_THAT(recreated, IsOk());
  EXPECT_EQ(recreated->job_id(), retry.job_id());
  EXPECT_THAT(Ids(ListAll(store(), "alice")),
              ElementsAreArray({later.job_id(), live.job_id(), retry.job_id()}));

  // Each job once.
  purged = store().PurgeDeletedJobs(INT64_MAX, 100);
  ASSERT_THAT(purged, IsOk());
  ASSERT_EQ(purged->size(), 1u);
  EXPECT_EQ((*purged)[0].job_id, later.job_id());
  EXPECT_THAT(store().PurgeDeletedJobs(INT64_MAX, 100), IsOk());
  EXPECT_TRUE(store().PurgeDeletedJobs(INT64_MAX, 100)->empty());
}

TEST_P(StoreConformanceTest, PurgeTakesTheOldestDeletesFirstAndAtMostMaxJobs) {
  // More than one of the SQLite store's purge writes takes.
  std::vector<std::string> ids;
  for (int i = 0; i < 70; ++i) {
    ids.push_back(OrderedId(i));
    ASSERT_THAT(Create(store(), MakeJob("alice", 100 + i, ids.back())), IsOk());
    AddResults(ids.back(), 1, 3, v1::JobResult::SUCCEEDED);
  }
  for (int i = 0; i < 70; ++i) DeleteAt("alice", ids[i], 10'000 - i);  // Last first.
  absl::StatusOr<std::vector<PurgedJob>> first = store().PurgeDeletedJobs(INT64_MAX, 5);
  ASSERT_THAT(first, IsOk());
  std::vector<std::string> got;
  for (const PurgedJob& p : *first) got.push_back(p.job_id);
  EXPECT_THAT(got, ElementsAreArray({ids[69], ids[68], ids[67], ids[66], ids[65]}));
  absl::StatusOr<std::vector<PurgedJob>> rest = store().PurgeDeletedJobs(INT64_MAX, 1000);
  ASSERT_THAT(rest, IsOk());
  EXPECT_EQ(rest->size(), 65u);
  EXPECT_TRUE(ListAll(store(), "alice").empty());
}

TEST_P(StoreConformanceTest, AJobUndeletedIsNotPurged) {
  const v1::Job job = MakeJob("alice");
  ASSERT_THAT(Create(store(), job), IsOk());
  DeleteAt("alice", job.job_id(), 10);
  ASSERT_THAT(Update(store(), "alice", job.job_id(), SetStatus(v1::Job::PAUSED)), IsOk());
  absl::StatusOr<std::vector<PurgedJob>> purged =
      store().PurgeDeletedJobs(INT64_MAX, 100);
  ASSERT_THAT(purged, IsOk());
  EXPECT_TRUE(purged->empty());
  EXPECT_THAT(store().GetJob("alice", job.job_id()), IsOk());
}

// --- Shards, leases and fences (store/lease_store.h) ---

TEST(ShardOfTest, IsFnv1a64OfTheIdModulo256ForEver) {
  EXPECT_EQ(ShardOf(""), 37);  // 0xcbf29ce484222325 % 256
  EXPECT_EQ(ShardOf("00000000-0000-0000-0000-000000000000"), 241);
  EXPECT_EQ(ShardOf("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"), 151);
}

// A lone replica: every store holds all shards for it.
LeaseRenewal Renewal(const std::string& replica, std::vector<int> release = {}) {
  LeaseRenewal r;
  r.replica_id = replica;
  r.host = "test";
  r.ttl = absl::Minutes(10);
  r.release = std::move(release);
  return r;
}

int64_t EpochIn(const LeaseGrant& grant, int shard) {
  for (const HeldShard& h : grant.held) {
    if (h.shard == shard) return h.epoch;
  }
  return 0;
}

TEST_P(StoreConformanceTest, ALoneReplicaHoldsEveryShardAtAStableEpoch) {
  auto* leases = dynamic_cast<LeaseStore*>(&store());
  ASSERT_NE(leases, nullptr);
  absl::StatusOr<LeaseGrant> first = leases->RenewLeases(Renewal("r1"));
  ASSERT_THAT(first, IsOk());
  ASSERT_EQ(first->held.size(), static_cast<size_t>(kShards));
  EXPECT_EQ(first->live_replicas, 1);
  EXPECT_EQ(first->fair_share, kShards);
  for (int shard = 0; shard < kShards; ++shard) {
    EXPECT_EQ(first->held[shard].shard, shard);
    EXPECT_GT(first->held[shard].epoch, 0);
  }
  absl::StatusOr<LeaseGrant> again = leases->RenewLeases(Renewal("r1"));
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->held, first->held);
}

TEST_P(StoreConformanceTest, AFenceThatDoesNotHoldFailsTheWriteAndAppliesNothing) {
  auto* leases = dynamic_cast<LeaseStore*>(&store());
  ASSERT_NE(leases, nullptr);
  const std::string id = NewJob("alice", 5'000'000);
  const int shard = ShardOf(id);
  // Before any renewal nobody holds anything.
  const auto write = [&](std::optional<Fence> fence, bool* called) {
    return Sync([&](JobCallback cb) {
      store().WriteJobState(
          id, std::move(fence),
          [called](v1::Job& job, std::vector<v1::JobResult>& table) {
            *called = true;
            job.set_n_runs(job.n_runs() + 1);
            v1::JobResult r;
            r.set_run_number(job.n_runs());
            r.set_status(v1::JobResult::PENDING);
            table.push_back(r);
            return absl::OkStatus();
          },
          std::move(cb));
    });
  };
  bool called = false;
  EXPECT_THAT(write(Fence{shard, "r1", 1}, &called),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(called);

  absl::StatusOr<LeaseGrant> grant = leases->RenewLeases(Renewal("r1"));
  ASSERT_THAT(grant, IsOk());
  const int64_t epoch = EpochIn(*grant, shard);
  ASSERT_GT(epoch, 0);
  const std::string etag = store().GetJob("alice", id)->etag();
  for (const Fence& bad : {Fence{shard, "r1", epoch + 1}, Fence{shard, "r2", epoch},
                           Fence{shard, "", epoch}}) {
    called = false;
    EXPECT_THAT(write(bad, &called), StatusIs(absl::StatusCode::kFailedPrecondition))
        << bad.holder << "@" << bad.epoch;
    EXPECT_FALSE(called);
  }
  EXPECT_EQ(store().GetJob("alice", id)->etag(), etag);
  EXPECT_TRUE(store().ListOpenResults()->empty());

  absl::StatusOr<v1::Job> ok = write(Fence{shard, "r1", epoch}, &called);
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ(ok->n_runs(), 1);
  EXPECT_EQ(store().ListOpenResults()->size(), 1u);
  // Unfenced writes are not checked.
  EXPECT_THAT(write(std::nullopt, &called), IsOk());

  // Released: the fence no longer holds.
  ASSERT_TRUE(leases->ReleaseLeases("r1").ok());
  EXPECT_THAT(write(Fence{shard, "r1", epoch}, &called),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(store().GetJob("alice", id)->n_runs(), 2);
}

TEST_P(StoreConformanceTest, AFencedOffManualRunRemembersNothing) {
  auto* leases = dynamic_cast<LeaseStore*>(&store());
  ASSERT_NE(leases, nullptr);
  const std::string id = NewJob("alice", std::nullopt);
  const int shard = ShardOf(id);
  absl::StatusOr<LeaseGrant> grant = leases->RenewLeases(Renewal("r1"));
  ASSERT_THAT(grant, IsOk());
  const int64_t epoch = EpochIn(*grant, shard);
  const auto run_now = [&](std::optional<Fence> fence, int64_t* existing) {
    return Sync([&](JobCallback cb) {
      store().WriteManualRun(
          "alice", id, "click", std::move(fence),
          [existing](v1::Job& job, std::vector<v1::JobResult>& table, int64_t earlier) {
            *existing = earlier;
            if (earlier != 0) return absl::OkStatus();
            v1::JobResult r;
            r.set_run_number(job.last_run_number() + 1);
            r.set_manual(true);
            r.set_request_id("click");
            r.set_status(v1::JobResult::PENDING);
            job.set_last_run_number(r.run_number());
            table.push_back(r);
            return absl::OkStatus();
          },
          std::move(cb));
    });
  };
  int64_t existing = -1;
  EXPECT_THAT(run_now(Fence{shard, "r1", epoch + 1}, &existing),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(existing, -1);  // Not even asked.
  EXPECT_EQ(store().GetJob("alice", id)->last_run_number(), 0);
  ASSERT_THAT(run_now(Fence{shard, "r1", epoch}, &existing), IsOk());
  EXPECT_EQ(existing, 0);  // The refused attempt was not remembered.
  ASSERT_THAT(run_now(Fence{shard, "r1", epoch}, &existing), IsOk());
  EXPECT_EQ(existing, 1);
}

TEST_P(StoreConformanceTest, ShardScopedReadsSeeOnlyTheirShards) {
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    ids.push_back(NewJob("alice", 1'000'000 + i));
    AddResults(ids.back(), 1, 1, v1::JobResult::PENDING);
  }
  ShardSet some;
  for (int i = 0; i < 40; i += 3) some.set(ShardOf(ids[i]));
  std::set<std::string> want;
  for (const std::string& id : ids) {
    if (some.test(ShardOf(id))) want.insert(id);
  }
  std::set<std::string> due;
  ASSERT_TRUE(
      store()
          .ScanDueInShards(some, [&](const std::string& id, int64_t) { due.insert(id); })
          .ok());
  EXPECT_EQ(due, want);
  absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>> open =
      store().ListOpenResultsInShards(some);
  ASSERT_THAT(open, IsOk());
  std::set<std::string> open_ids;
  for (const auto& [id, r] : *open) open_ids.insert(id);
  EXPECT_EQ(open_ids, want);
}

// Several replicas on one shared store: the stores several processes can
// share (not SQLite), each with a way to let time pass on its clock (a fake
// clock here; a real store sleeps).
struct SharedStoreFactory {
  std::string name;
  // The lease ttl the tests use: short where `advance` really waits.
  absl::Duration ttl;
  std::function<absl::StatusOr<std::unique_ptr<Store>>(
      const std::string& dir, std::function<void(absl::Duration)>* advance)>
      make;
};

void PrintTo(const SharedStoreFactory& factory, std::ostream* os) { *os << factory.name; }

const std::vector<SharedStoreFactory>& SharedStores() {
  static const auto* stores = new std::vector<SharedStoreFactory>{
      {"memory", absl::Seconds(3),
       [](const std::string&, std::function<void(absl::Duration)>* advance)
           -> absl::StatusOr<std::unique_ptr<Store>> {
         auto now = std::make_shared<absl::Time>(absl::FromUnixSeconds(1'800'000'000));
         *advance = [now](absl::Duration d) { *now += d; };
         return std::make_unique<MemoryStore>([now] { return *now; });
       }},
      // Expiry on PostgreSQL's clock: the tests really wait, so a short ttl.
      {"postgres", absl::Milliseconds(400),
       [](const std::string&, std::function<void(absl::Duration)>* advance)
           -> absl::StatusOr<std::unique_ptr<Store>> {
         *advance = [](absl::Duration d) { absl::SleepFor(d); };
         absl::StatusOr<testing::PgCluster*> pg = testing::PgCluster::Get();
         absl::StatusOr<std::string> uri = pg.ok() ? (*pg)->NewDatabase() : pg.status();
         if (!uri.ok()) return uri.status();
         return PostgresStore::Open({.uri = *uri});
       }},
  };
  return *stores;
}

class SharedLeaseTest : public ::testing::TestWithParam<SharedStoreFactory> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "could not create a temp dir";
    absl::StatusOr<std::unique_ptr<Store>> made = GetParam().make(dir_.path(), &advance_);
    ASSERT_THAT(made, IsOk());
    store_ = *std::move(made);
    leases_ = dynamic_cast<LeaseStore*>(store_.get());
    ASSERT_NE(leases_, nullptr);
  }

  LeaseGrant Renew(const std::string& replica, std::vector<int> release = {}) {
    LeaseRenewal r = Renewal(replica, std::move(release));
    r.ttl = GetParam().ttl;
    absl::StatusOr<LeaseGrant> grant = leases_->RenewLeases(r);
    EXPECT_THAT(grant, IsOk());
    return grant.value_or(LeaseGrant{});
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  LeaseStore* leases_ = nullptr;
  std::function<void(absl::Duration)> advance_;
};

std::vector<int> Shards(const LeaseGrant& grant) {
  std::vector<int> out;
  for (const HeldShard& h : grant.held) out.push_back(h.shard);
  return out;
}

TEST_P(SharedLeaseTest, AReplicaTakesFreeShardsUpToItsFairShareOnly) {
  EXPECT_EQ(Renew("a").held.size(), static_cast<size_t>(kShards));
  const LeaseGrant b = Renew("b");  // Nothing is free.
  EXPECT_TRUE(b.held.empty());
  EXPECT_EQ(b.live_replicas, 2);
  EXPECT_EQ(b.fair_share, kShards / 2);
  // "a" is told its share and gives back the surplus (the highest) when
  // it asks; "b" takes it at its next renewal, each shard at a new epoch.
  LeaseGrant a = Renew("a");
  EXPECT_EQ(a.fair_share, kShards / 2);
  EXPECT_EQ(a.held.size(), static_cast<size_t>(kShards));
  std::vector<int> surplus;
  for (int shard = kShards / 2; shard < kShards; ++shard) surplus.push_back(shard);
  const int64_t old_epoch = EpochIn(a, kShards - 1);
  a = Renew("a", surplus);
  EXPECT_EQ(a.held.size(), static_cast<size_t>(kShards / 2));
  EXPECT_EQ(Shards(a).back(), kShards / 2 - 1);
  const LeaseGrant b2 = Renew("b");
  EXPECT_EQ(Shards(b2), surplus);
  EXPECT_GT(EpochIn(b2, kShards - 1), old_epoch);
  // A third replica: fair share ceil(256/3) = 86.
  EXPECT_EQ(Renew("c").fair_share, 86);
}

TEST_P(SharedLeaseTest, AnExpiredLeaseIsTakenAtANewEpochAndItsFenceFails) {
  const std::string id = domain::NewUuid();
  v1::Job job;
  job.set_job_id(id);
  job.set_owner("alice");
  job.mutable_create_time()->set_seconds(1);
  ASSERT_THAT(Create(*store_, job), IsOk());
  const int shard = ShardOf(id);
  const int64_t first = EpochIn(Renew("a"), shard);
  ASSERT_GT(first, 0);
  const absl::Duration ttl = GetParam().ttl;
  advance_(ttl / 2);
  EXPECT_EQ(EpochIn(Renew("a"), shard), first);  // Renewed in time: same epoch.
  EXPECT_TRUE(Renew("b").held.empty());
  advance_(ttl + absl::Milliseconds(1));  // Neither renewed: both expired.
  const LeaseGrant b = Renew("b");
  EXPECT_EQ(b.live_replicas, 1);
  EXPECT_EQ(b.held.size(), static_cast<size_t>(kShards));
  EXPECT_GT(EpochIn(b, shard), first);
  // "a" wakes: its fence fails; its renewal finds nothing free.
  absl::StatusOr<v1::Job> fenced = absl::UnknownError("not called");
  absl::Notification done;
  store_->WriteJobState(
      id, Fence{shard, "a", first},
      [](v1::Job& j, std::vector<v1::JobResult>&) {
        j.set_n_runs(7);
        return absl::OkStatus();
      },
      [&](absl::StatusOr<v1::Job> j) {
        fenced = std::move(j);
        done.Notify();
      });
  done.WaitForNotification();
  EXPECT_THAT(fenced, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(store_->GetJob("alice", id)->n_runs(), 0);
  EXPECT_TRUE(Renew("a").held.empty());
  // Its own lease, expired and retaken by itself, has a new epoch too.
  advance_(ttl + absl::Milliseconds(1));
  EXPECT_GT(EpochIn(Renew("a"), shard), EpochIn(b, shard));
}

TEST_P(SharedLeaseTest, ReleasedLeasesAreFreeAtOnce) {
  Renew("a");
  EXPECT_TRUE(Renew("b").held.empty());
  ASSERT_TRUE(leases_->ReleaseLeases("a").ok());
  const LeaseGrant b = Renew("b");
  EXPECT_EQ(b.live_replicas, 1);  // Its heartbeat went with it.
  EXPECT_EQ(b.held.size(), static_cast<size_t>(kShards));
}

// RelayStore: RunJobNow calls handed to the replica holding the job's shard.
class SharedRelayTest : public SharedLeaseTest {
 protected:
  void SetUp() override {
    SharedLeaseTest::SetUp();
    relay_ = dynamic_cast<RelayStore*>(store_.get());
    ASSERT_NE(relay_, nullptr);
    if (store_->shared_leases() != nullptr) {
      ASSERT_EQ(store_->shared_relay(), relay_);
    }
  }
  RelayedRun Request(const std::string& job_id, std::string request_id = "") {
    return RelayedRun{domain::NewUuid(), "alice", job_id, std::move(request_id)};
  }
  std::vector<std::string> Claim(const std::string& replica, int limit = 100) {
    absl::StatusOr<std::vector<RelayedRun>> claimed =
        relay_->ClaimRelayedRuns(replica, limit);
    EXPECT_THAT(claimed, IsOk());
    std::vector<std::string> ids;
    for (const RelayedRun& r : claimed.value_or(std::vector<RelayedRun>{})) {
      ids.push_back(r.id);
    }
    return ids;
  }
  RelayStore* relay_ = nullptr;
};

TEST_P(SharedRelayTest, ARequestIsClaimedOnceAndOnlyByItsShardsHolder) {
  Renew("a");  // Holds every shard.
  const RelayedRun request = Request(domain::NewUuid(), "req-1");
  ASSERT_THAT(relay_->AddRelayedRun(request, GetParam().ttl), IsOk());
  EXPECT_THAT(relay_->AddRelayedRun(request, GetParam().ttl),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_TRUE(Claim("b").empty());  // Holds nothing.
  absl::StatusOr<std::vector<RelayedRun>> claimed = relay_->ClaimRelayedRuns("a", 10);
  ASSERT_THAT(claimed, IsOk());
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ((*claimed)[0].id, request.id);
  EXPECT_EQ((*claimed)[0].owner, "alice");
  EXPECT_EQ((*claimed)[0].job_id, request.job_id);
  EXPECT_EQ((*claimed)[0].request_id, "req-1");
  EXPECT_TRUE(Claim("a").empty());  // Never twice.
  // No outcome until it is finished; then its code and message.
  absl::StatusOr<std::vector<RelayedRunOutcome>> outcomes =
      relay_->RelayedRunOutcomes({request.id, "no-such-id"});
  ASSERT_THAT(outcomes, IsOk());
  EXPECT_TRUE(outcomes->empty());
  ASSERT_THAT(relay_->FinishRelayedRun(
                  request.id, absl::FailedPreconditionError("overlap_policy SKIP: busy")),
              IsOk());
  outcomes = relay_->RelayedRunOutcomes({request.id, "no-such-id"});
  ASSERT_THAT(outcomes, IsOk());
  ASSERT_EQ(outcomes->size(), 1u);
  EXPECT_EQ((*outcomes)[0].id, request.id);
  EXPECT_EQ((*outcomes)[0].status,
            absl::FailedPreconditionError("overlap_policy SKIP: busy"));
  EXPECT_THAT(relay_->FinishRelayedRun("no-such-id", absl::OkStatus()),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_P(SharedRelayTest, ClaimsTakeTheOldestFirstUpToTheLimit) {
  Renew("a");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    const RelayedRun request = Request(domain::NewUuid());
    ASSERT_THAT(relay_->AddRelayedRun(request, GetParam().ttl * 10), IsOk());
    ids.push_back(request.id);
  }
  EXPECT_EQ(Claim("a", 2), std::vector<std::string>(ids.begin(), ids.begin() + 2));
  EXPECT_EQ(Claim("a", 10), std::vector<std::string>(ids.begin() + 2, ids.end()));
}

TEST_P(SharedRelayTest, AnExpiredRequestIsNeverClaimedAndIsPruned) {
  Renew("a");
  const RelayedRun request = Request(domain::NewUuid());
  ASSERT_THAT(relay_->AddRelayedRun(request, GetParam().ttl / 4), IsOk());
  advance_(GetParam().ttl / 2);
  Renew("a");
  EXPECT_TRUE(Claim("a").empty());
  EXPECT_EQ(relay_->PruneRelayedRuns(GetParam().ttl * 10).value_or(-1), 0);
  EXPECT_EQ(relay_->PruneRelayedRuns(absl::ZeroDuration()).value_or(-1), 1);
}

TEST_P(SharedRelayTest, ARequestOfAShardWhoseLeaseExpiredIsNotClaimed) {
  Renew("a");
  const RelayedRun request = Request(domain::NewUuid());
  ASSERT_THAT(relay_->AddRelayedRun(request, GetParam().ttl * 10), IsOk());
  advance_(GetParam().ttl + absl::Milliseconds(1));  // a's leases expired.
  EXPECT_TRUE(Claim("a").empty());
  Renew("b");  // b takes every shard, and the request with it.
  EXPECT_EQ(Claim("b"), std::vector<std::string>{request.id});
}

TEST_P(SharedRelayTest, AnOutcomesMessageIsCutAtACharacterBoundary) {
  Renew("a");
  const RelayedRun request = Request(domain::NewUuid());
  ASSERT_THAT(relay_->AddRelayedRun(request, GetParam().ttl * 10), IsOk());
  ASSERT_EQ(Claim("a").size(), 1u);
  // 1023 ASCII bytes, then two-byte characters: byte 1024 is mid-character.
  std::string utf8 = std::string(1023, 'x');
  for (int i = 0; i < 20; ++i) utf8 += "\xC3\xA9";  // "é"
  ASSERT_THAT(relay_->FinishRelayedRun(request.id, absl::InternalError(utf8)), IsOk());
  absl::StatusOr<std::vector<RelayedRunOutcome>> outcomes =
      relay_->RelayedRunOutcomes({request.id});
  ASSERT_THAT(outcomes, IsOk());
  ASSERT_EQ(outcomes->size(), 1u);
  EXPECT_EQ((*outcomes)[0].status.message(), std::string(1023, 'x'));
}

INSTANTIATE_TEST_SUITE_P(SharedStores, SharedRelayTest,
                         ::testing::ValuesIn(SharedStores()),
                         [](const ::testing::TestParamInfo<SharedStoreFactory>& info) {
                           return info.param.name;
                         });

INSTANTIATE_TEST_SUITE_P(SharedStores, SharedLeaseTest,
                         ::testing::ValuesIn(SharedStores()),
                         [](const ::testing::TestParamInfo<SharedStoreFactory>& info) {
                           return info.param.name;
                         });

INSTANTIATE_TEST_SUITE_P(AllStores, StoreConformanceTest, ::testing::ValuesIn(Stores()),
                         [](const ::testing::TestParamInfo<StoreFactory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace timer::store
