// Tests of the Store contract (store/store.h), run against every
// implementation (StoreConformanceTest), plus what only SqliteStore promises:
// durability across Close()/Open(), group commit, the writer queue and
// schema versioning (SqliteStoreTest).
//
// No test sleeps: writes are awaited through their callbacks with a timeout,
// and SqliteStore's writer is held at a known point with a WriterGate (a
// mutation that blocks inside the writer's transaction until released).

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "domain/ids.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"
#include "store/sqlite_util.h"
#include "store/store.h"
#include "timer/v1/timer.pb.h"

namespace timer::store {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// Longest a test waits for anything; only reached when something is broken.
constexpr absl::Duration kWait = absl::Seconds(30);

MATCHER_P(EqualsProto, expected,
          absl::StrCat("equals ", expected.ShortDebugString())) {
  if (google::protobuf::util::MessageDifferencer::Equals(arg, expected)) return true;
  *result_listener << "which is " << arg.ShortDebugString();
  return false;
}

MATCHER_P(StatusIs, code, absl::StrCat("has status code ", absl::StatusCodeToString(code))) {
  const absl::Status status = [&] {
    if constexpr (std::is_same_v<std::decay_t<arg_type>, absl::Status>) {
      return arg;
    } else {
      return arg.status();
    }
  }();
  *result_listener << "whose status is " << status;
  return status.code() == code;
}

MATCHER(IsOk, "is OK") {
  if (arg.ok()) return true;
  *result_listener << "whose status is " << arg.status();
  return false;
}

// ---------------------------------------------------------------------------
// Helpers: synchronous wrappers over the asynchronous write API.

// One write's result, shared with its callback so a timed-out wait never
// leaves the callback writing into a dead stack frame.
struct Outcome {
  absl::Notification done;
  absl::StatusOr<v1::Job> result = absl::UnknownError("callback not run");
};

JobCallback Into(std::shared_ptr<Outcome> outcome) {
  return [outcome](absl::StatusOr<v1::Job> r) {
    outcome->result = std::move(r);
    outcome->done.Notify();
  };
}

absl::StatusOr<v1::Job> Await(const std::shared_ptr<Outcome>& outcome) {
  if (!outcome->done.WaitForNotificationWithTimeout(kWait)) {
    return absl::DeadlineExceededError("test: write callback never ran");
  }
  return outcome->result;
}

std::shared_ptr<Outcome> StartCreate(Store& store, v1::Job job,
                                     std::string request_id = "",
                                     std::string fingerprint = "") {
  auto outcome = std::make_shared<Outcome>();
  store.CreateJob(std::move(job), std::move(request_id), std::move(fingerprint),
                  Into(outcome));
  return outcome;
}

std::shared_ptr<Outcome> StartUpdate(Store& store, std::string owner,
                                     std::string job_id, JobMutation mutate) {
  auto outcome = std::make_shared<Outcome>();
  store.UpdateJob(std::move(owner), std::move(job_id), std::move(mutate),
                  Into(outcome));
  return outcome;
}

absl::StatusOr<v1::Job> Create(Store& store, v1::Job job, std::string request_id = "",
                               std::string fingerprint = "") {
  return Await(StartCreate(store, std::move(job), std::move(request_id),
                           std::move(fingerprint)));
}

absl::StatusOr<v1::Job> Update(Store& store, std::string owner, std::string job_id,
                               JobMutation mutate) {
  return Await(StartUpdate(store, std::move(owner), std::move(job_id),
                           std::move(mutate)));
}

JobMutation Rename(std::string name) {
  return [name = std::move(name)](v1::Job& job) {
    job.set_name(name);
    return absl::OkStatus();
  };
}

JobMutation SetStatus(v1::Job::Status status) {
  return [status](v1::Job& job) {
    job.set_status(status);
    return absl::OkStatus();
  };
}

// A job as the domain would hand it to the store.
v1::Job MakeJob(const std::string& owner, int64_t create_seconds = 1700000000,
                std::string job_id = domain::NewUuid()) {
  v1::Job job;
  job.set_job_id(std::move(job_id));
  job.set_owner(owner);
  job.set_name("nightly");
  job.mutable_schedule()->mutable_start()->set_seconds(create_seconds);
  job.mutable_schedule()->set_interval_seconds(60);
  job.mutable_action()->set_provider("noop");
  job.mutable_action()->set_body(R"({"k":1})");
  job.set_status(v1::Job::NEW);
  job.mutable_create_time()->set_seconds(create_seconds);
  job.mutable_update_time()->set_seconds(create_seconds);
  return job;
}

// A job id that sorts where the test wants it: "00000000-0000-4000-8000-<n>".
std::string OrderedId(int n) {
  std::string tail = absl::StrCat(n);
  return absl::StrCat("00000000-0000-4000-8000-", std::string(12 - tail.size(), '0'),
                      tail);
}

std::vector<std::string> Ids(const std::vector<v1::Job>& jobs) {
  std::vector<std::string> ids;
  for (const v1::Job& job : jobs) ids.push_back(job.job_id());
  return ids;
}

// Every job of `owner`, deleted ones too, in listing order.
std::vector<v1::Job> ListAll(Store& store, const std::string& owner) {
  ListJobsQuery query;
  query.owner = owner;
  query.show_deleted = true;
  query.page_size = 100000;
  absl::StatusOr<ListJobsPage> page = store.ListJobs(query);
  EXPECT_THAT(page, IsOk());
  return page.ok() ? page->jobs : std::vector<v1::Job>{};
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "timerd_store_test.XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------
// Conformance suite: every Store implementation must pass these.

enum class Kind { kMemory, kSqlite };

void PrintTo(Kind kind, std::ostream* os) {
  *os << (kind == Kind::kMemory ? "MemoryStore" : "SqliteStore");
}

class StoreConformanceTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::kMemory) {
      store_ = std::make_unique<MemoryStore>();
      return;
    }
    ASSERT_FALSE(dir_.path().empty()) << "could not create a temp dir";
    absl::StatusOr<std::unique_ptr<SqliteStore>> opened =
        SqliteStore::Open({.path = dir_.path() + "/timer.db"});
    ASSERT_THAT(opened, IsOk());
    store_ = *std::move(opened);
  }

  Store& store() { return *store_; }

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

  EXPECT_THAT(store().GetJob("bob", job.job_id()),
              StatusIs(absl::StatusCode::kNotFound));
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
  absl::StatusOr<v1::Job> noop = Update(store(), "alice", job.job_id(),
                                        [](v1::Job&) { return absl::OkStatus(); });
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

INSTANTIATE_TEST_SUITE_P(AllStores, StoreConformanceTest,
                         ::testing::Values(Kind::kMemory, Kind::kSqlite),
                         [](const ::testing::TestParamInfo<Kind>& info) {
                           return info.param == Kind::kMemory ? "Memory" : "Sqlite";
                         });

// ---------------------------------------------------------------------------
// SqliteStore only.

// Holds SqliteStore's writer inside a transaction: it starts an update whose
// mutation blocks until Release(). Writes enqueued meanwhile wait in the
// queue, so the test knows exactly which writes share the next batch.
class WriterGate {
 public:
  WriterGate(Store& store, const v1::Job& job) : state_(std::make_shared<State>()) {
    outcome_ = StartUpdate(store, job.owner(), job.job_id(),
                           [state = state_](v1::Job& j) {
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
    ASSERT_TRUE(db->Exec(absl::StrCat(
                             "INSERT INTO jobs VALUES ('", id, "', 'alice', 1, 0, 2, NULL, 4, X'",
                             absl::BytesToHexString(job.SerializeAsString()), "')")
                             .c_str())
                    .ok());
    for (const v1::JobResult& r : job.results()) {
      ASSERT_TRUE(db->Exec(absl::StrCat("INSERT INTO results VALUES ('", id, "', ",
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
