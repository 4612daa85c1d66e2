// Tests of JobQuota (domain/job_quota.h): the most live jobs one identity may
// have. First on its own over the MemoryStore fake (counts, reservations,
// releases, deletes, concurrent reservations), then as JobService uses it
// (CreateJob is RESOURCE_EXHAUSTED beyond the limit).

#include "domain/job_quota.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "domain/clock.h"
#include "domain/identity.h"
#include "domain/jobs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/memory_store.h"
#include "timer/v1/timer.pb.h"

namespace timer::domain {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(30);
const absl::Time kNow = absl::FromUnixSeconds(1700000000);

const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}

MATCHER_P(StatusIs, code,
          absl::StrCat("has status code ", absl::StatusCodeToString(code))) {
  *result_listener << "whose status is " << StatusOf(arg);
  return StatusOf(arg).code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           absl::StrCat("has status code ", absl::StatusCodeToString(code))) {
  const absl::Status& status = StatusOf(arg);
  *result_listener << "whose status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

MATCHER(IsOk, "is OK") {
  *result_listener << "whose status is " << StatusOf(arg);
  return StatusOf(arg).ok();
}

const Identity kAlice{"alice", "token"};
const Identity kBob{"bob", "token"};

// A request that passes validation (no providers are checked).
v1::CreateJobRequest ValidRequest() {
  v1::CreateJobRequest request;
  v1::Job* job = request.mutable_job();
  job->set_name("nightly backup");
  job->mutable_schedule()->set_interval_seconds(3600);
  job->mutable_action()->set_provider("transfer");
  job->mutable_action()->set_body(R"({"source":"a","destination":"b"})");
  return request;
}

// A MemoryStore, a FakeClock and a JobService without a quota to put jobs in
// the store as if before this process (or this quota) started.
class JobQuotaFixture : public ::testing::Test {
 protected:
  // Calls `start` with a callback and waits for it.
  template <typename Start>
  absl::StatusOr<v1::Job> Wait(Start start) {
    struct Outcome {
      absl::Notification done;
      absl::StatusOr<v1::Job> result = absl::UnknownError("callback not run");
    };
    auto outcome = std::make_shared<Outcome>();
    start([outcome](absl::StatusOr<v1::Job> r) {
      outcome->result = std::move(r);
      outcome->done.Notify();
    });
    if (!outcome->done.WaitForNotificationWithTimeout(kWait)) {
      return absl::DeadlineExceededError("test: callback never ran");
    }
    return outcome->result;
  }

  absl::StatusOr<v1::Job> CreateVia(
      JobService& service, const Identity& caller,
      const v1::CreateJobRequest& request = ValidRequest()) {
    return Wait([&](store::JobCallback done) {
      service.CreateJob(caller, request, std::move(done));
    });
  }

  absl::StatusOr<v1::Job> DeleteVia(JobService& service, const Identity& caller,
                                    const std::string& job_id) {
    v1::DeleteJobRequest request;
    request.set_job_id(job_id);
    return Wait([&](store::JobCallback done) {
      service.DeleteJob(caller, request, std::move(done));
    });
  }

  // Writes `n` jobs of `caller` behind the quota's back.
  void StoreJobs(const Identity& caller, int n) {
    for (int i = 0; i < n; ++i) ASSERT_THAT(CreateVia(unlimited_, caller), IsOk());
  }

  store::MemoryStore store_;
  FakeClock clock_{kNow};
  JobService unlimited_{&store_, &clock_};
};

// A Store over another one that can fail CountJobs, or hold it after it
// has counted (to let something happen between the count and its use).
class GatedStore final : public store::Store {
 public:
  using store::Store::WriteJobState;
  using store::Store::WriteManualRun;
  explicit GatedStore(store::Store* inner) : inner_(inner) {}

  // The next CountJobs calls fail with `error`, `times` times.
  void FailCounts(absl::Status error, int times) {
    absl::MutexLock lock(&mu_);
    error_ = std::move(error);
    failures_ = times;
  }
  // The next CountJobs waits, once it has counted, until Open().
  void HoldNextCount() {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  bool AwaitHeld() {
    absl::MutexLock lock(&mu_);
    const auto held = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_; };
    return mu_.AwaitWithTimeout(absl::Condition(&held), kWait);
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    hold_ = false;
  }
  int counts() const {
    absl::MutexLock lock(&mu_);
    return counts_;
  }

  absl::StatusOr<store::OwnerUsage> CountJobs(const std::string& owner) override {
    {
      absl::MutexLock lock(&mu_);
      ++counts_;
      if (failures_ > 0) {
        --failures_;
        return error_;
      }
    }
    absl::StatusOr<store::OwnerUsage> n = inner_->CountJobs(owner);
    absl::MutexLock lock(&mu_);
    if (hold_) {
      held_ = true;
      const auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !hold_; };
      mu_.AwaitWithTimeout(absl::Condition(&open), kWait);
      held_ = false;
    }
    return n;
  }

  void CreateJob(v1::Job job, std::string request_id, std::string fingerprint,
                 store::JobCallback done) override {
    inner_->CreateJob(std::move(job), std::move(request_id), std::move(fingerprint),
                      std::move(done));
  }
  absl::StatusOr<v1::Job> GetJob(const std::string& owner,
                                 const std::string& job_id) override {
    return inner_->GetJob(owner, job_id);
  }
  absl::StatusOr<store::ListJobsPage> ListJobs(
      const store::ListJobsQuery& query) override {
    return inner_->ListJobs(query);
  }
  void WriteJob(std::string owner, std::string job_id, store::JobRunMutation mutate,
                store::JobCallback done) override {
    inner_->WriteJob(std::move(owner), std::move(job_id), std::move(mutate),
                     std::move(done));
  }
  void WriteJobState(std::string job_id, std::optional<store::Fence> fence,
                     store::JobRunMutation mutate, store::JobCallback done) override {
    inner_->WriteJobState(std::move(job_id), std::move(fence), std::move(mutate),
                          std::move(done));
  }
  void WriteResult(std::string job_id, v1::JobResult result,
                   store::StatusCallback done) override {
    inner_->WriteResult(std::move(job_id), std::move(result), std::move(done));
  }
  absl::Status ScanDue(absl::FunctionRef<void(const std::string&, int64_t)> fn) override {
    return inner_->ScanDue(fn);
  }
  absl::StatusOr<v1::Job> LoadJob(const std::string& job_id) override {
    return inner_->LoadJob(job_id);
  }
  absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>> ListOpenResults()
      override {
    return inner_->ListOpenResults();
  }
  absl::StatusOr<std::vector<v1::JobResult>> ListResults(const std::string& owner,
                                                         const std::string& job_id,
                                                         int64_t before_run_number,
                                                         int page_size) override {
    return inner_->ListResults(owner, job_id, before_run_number, page_size);
  }
  absl::StatusOr<int64_t> PruneResults(int keep_per_job,
                                       int64_t ended_before_us) override {
    return inner_->PruneResults(keep_per_job, ended_before_us);
  }
  void WriteManualRun(std::string owner, std::string job_id, std::string request_id,
                      std::optional<store::Fence> fence, store::ManualRunMutation mutate,
                      store::JobCallback done) override {
    inner_->WriteManualRun(std::move(owner), std::move(job_id), std::move(request_id),
                           std::move(fence), std::move(mutate), std::move(done));
  }
  absl::StatusOr<std::vector<store::PurgedJob>> PurgeDeletedJobs(
      int64_t deleted_before_us, int max_jobs) override {
    return inner_->PurgeDeletedJobs(deleted_before_us, max_jobs);
  }

 private:
  store::Store* const inner_;
  mutable absl::Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  int counts_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
};

// ---------------------------------------------------------------------------
// JobQuota alone.

using JobQuotaUnitTest = JobQuotaFixture;

TEST_F(JobQuotaUnitTest, ReportsItsLimit) {
  JobQuota quota(&store_, 7);
  EXPECT_EQ(quota.max_jobs_per_owner(), 7);
}

TEST_F(JobQuotaUnitTest, ReservesUpToTheLimitThenIsResourceExhaustedNamingIt) {
  JobQuota quota(&store_, 2);
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  quota.Release("alice", /*created=*/true);
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  quota.Release("alice", /*created=*/true);
  EXPECT_THAT(
      quota.Reserve("alice"),
      StatusIs(absl::StatusCode::kResourceExhausted,
               AllOf(HasSubstr("max_jobs_per_identity"), HasSubstr("alice"),
                     HasSubstr("already has 2 jobs"), HasSubstr("most allowed is 2"))));
}

// On a store several replicas share, the job counts are the store's (each
// create checks them in its transaction); the bytes stay counted here.
TEST_F(JobQuotaUnitTest, JobsCountedByTheStoreAreNotCountedHereButBytesAre) {
  JobQuota quota(&store_, nullptr,
                 {.max_jobs = 1,
                  .max_stored_jobs = 1,
                  .max_stored_bytes = 100,
                  .jobs_counted_by_store = true});
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(quota.Reserve("alice", 30), IsOk());
    quota.Release("alice", /*created=*/true, 30);
  }
  EXPECT_THAT(quota.Reserve("alice", 30),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("max_stored_bytes_per_identity")));
}

TEST_F(JobQuotaUnitTest, OpenReservationsCountAgainstTheLimit) {
  // Two creates still committing: a third must not overshoot.
  JobQuota quota(&store_, 2);
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  EXPECT_THAT(quota.Reserve("alice"), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(JobQuotaUnitTest, AReservationReleasedWithoutACreateFreesItsRoom) {
  JobQuota quota(&store_, 1);
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  quota.Release("alice", /*created=*/false);
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  quota.Release("alice", /*created=*/true);
  EXPECT_THAT(quota.Reserve("alice"), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(JobQuotaUnitTest, ADeletedJobFreesItsRoom) {
  JobQuota quota(&store_, 1);
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  quota.Release("alice", /*created=*/true);
  ASSERT_THAT(quota.Reserve("alice"), StatusIs(absl::StatusCode::kResourceExhausted));
  quota.Deleted("alice");
  EXPECT_THAT(quota.Reserve("alice"), IsOk());
}

TEST_F(JobQuotaUnitTest, MoreDeletesThanJobsNeverMakeExtraRoom) {
  JobQuota quota(&store_, 1);
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  quota.Release("alice", /*created=*/true);
  quota.Deleted("alice");
  quota.Deleted("alice");  // The count stays at zero, not -1.
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  quota.Release("alice", /*created=*/true);
  EXPECT_THAT(quota.Reserve("alice"), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(JobQuotaUnitTest, ADeleteOfAnOwnerNotYetCountedIsIgnored) {
  StoreJobs(kAlice, 1);
  JobQuota quota(&store_, 1);
  // Before alice's first Reserve: her stored job is not known yet, and the
  // delete must not make the first count one short.
  quota.Deleted("alice");
  EXPECT_THAT(quota.Reserve("alice"), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(JobQuotaUnitTest, EachOwnerHasRoomOfItsOwn) {
  JobQuota quota(&store_, 1);
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  quota.Release("alice", /*created=*/true);
  EXPECT_THAT(quota.Reserve("bob"), IsOk());
  EXPECT_THAT(quota.Reserve("alice"), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(JobQuotaUnitTest, TheFirstReserveCountsTheOwnersLiveJobsInTheStore) {
  StoreJobs(kAlice, 2);
  absl::StatusOr<v1::Job> deleted = CreateVia(unlimited_, kAlice);
  ASSERT_THAT(deleted, IsOk());
  ASSERT_THAT(DeleteVia(unlimited_, kAlice, deleted->job_id()), IsOk());
  StoreJobs(kBob, 5);

  JobQuota quota(&store_, 3);
  // alice has two live jobs (the deleted one and bob's do not count).
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  quota.Release("alice", /*created=*/true);
  EXPECT_THAT(quota.Reserve("alice"),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("already has 3")));
}

TEST_F(JobQuotaUnitTest, TheStoreIsCountedOnceAndTheCountKeptInMemory) {
  JobQuota quota(&store_, 2);
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  quota.Release("alice", /*created=*/false);
  // Written behind the quota's back: not seen, since only JobService writes
  // jobs while timerd runs and it tells the quota.
  StoreJobs(kAlice, 5);
  EXPECT_THAT(quota.Reserve("alice"), IsOk());
}

TEST_F(JobQuotaUnitTest, CountsEachOwnerInTheStoreOnlyOnce) {
  GatedStore gated(&store_);
  JobQuota quota(&gated, 10);
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(quota.Reserve("alice"), IsOk());
    quota.Release("alice", /*created=*/true);
  }
  quota.Deleted("alice");
  ASSERT_THAT(quota.Reserve("alice"), IsOk());
  EXPECT_EQ(gated.counts(), 1);
  ASSERT_THAT(quota.Reserve("bob"), IsOk());
  EXPECT_EQ(gated.counts(), 2);
}

TEST_F(JobQuotaUnitTest, AStoreErrorWhileCountingIsReturnedAndTheCountRetried) {
  StoreJobs(kAlice, 1);
  GatedStore gated(&store_);
  JobQuota quota(&gated, 1);
  gated.FailCounts(absl::UnavailableError("disk on fire"), 1);
  EXPECT_THAT(quota.Reserve("alice"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("disk on fire")));
  // Nothing was kept from the failed count: the next one reads the store.
  EXPECT_THAT(quota.Reserve("alice"), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(gated.counts(), 2);
}

// A delete that commits while the owner's first count is reading the store
// may or may not be in that count: the count is taken again, not kept short
// of room for the rest of the process's life.
TEST_F(JobQuotaUnitTest, ADeleteDuringTheFirstCountIsNotLost) {
  StoreJobs(kAlice, 2);
  store::ListJobsQuery query;
  query.owner = "alice";
  absl::StatusOr<store::ListJobsPage> page = store_.ListJobs(query);
  ASSERT_THAT(page, IsOk());
  const std::string doomed = page->jobs.at(0).job_id();
  GatedStore gated(&store_);
  JobQuota quota(&gated, 2);
  JobService service(&gated, &clock_);
  service.set_quota(&quota);
  gated.HoldNextCount();
  absl::Status first;
  std::thread create([&] { first = quota.Reserve("alice"); });
  ASSERT_TRUE(gated.AwaitHeld());                           // counted 2
  ASSERT_THAT(DeleteVia(service, kAlice, doomed), IsOk());  // now 1
  gated.Open();
  create.join();
  EXPECT_THAT(first, IsOk());
  EXPECT_EQ(gated.counts(), 2);  // counted again after the delete
  quota.Release("alice", /*created=*/true);
  EXPECT_THAT(quota.Reserve("alice"), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(JobQuotaUnitTest, ConcurrentReservationsOfOneOwnerNeverOvershoot) {
  constexpr int kLimit = 5;
  constexpr int kThreads = 16;
  StoreJobs(kAlice, 2);  // Counted by whichever thread is first.
  JobQuota quota(&store_, kLimit);
  std::atomic<int> granted{0};
  std::atomic<int> refused{0};
  absl::Notification go;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      go.WaitForNotification();
      const absl::Status room = quota.Reserve("alice");
      if (room.ok()) {
        ++granted;
      } else if (absl::IsResourceExhausted(room)) {
        ++refused;
      }
    });
  }
  go.Notify();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(granted.load(), kLimit - 2);
  EXPECT_EQ(refused.load(), kThreads - (kLimit - 2));
}

TEST_F(JobQuotaUnitTest, ConcurrentCreatesAndDeletesKeepTheCountExact) {
  constexpr int kLimit = 4;
  JobQuota quota(&store_, kLimit);
  // Each thread takes a slot, creates, deletes, many times over: at the end
  // every slot is free again.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&quota] {
      for (int i = 0; i < 200; ++i) {
        if (!quota.Reserve("alice").ok()) continue;
        quota.Release("alice", /*created=*/true);
        quota.Deleted("alice");
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kLimit; ++i) ASSERT_THAT(quota.Reserve("alice"), IsOk()) << i;
  EXPECT_THAT(quota.Reserve("alice"), StatusIs(absl::StatusCode::kResourceExhausted));
}

// ---------------------------------------------------------------------------
// JobQuota as JobService applies it to CreateJob and DeleteJob (moved from
// jobs_test.cc).

class JobQuotaTest : public JobQuotaFixture {
 protected:
  void SetUp() override { service_.set_quota(&quota_); }

  absl::StatusOr<v1::Job> Create(const v1::CreateJobRequest& request,
                                 const Identity& caller = kAlice) {
    return CreateVia(service_, caller, request);
  }
  absl::StatusOr<v1::Job> Delete(const std::string& job_id,
                                 const Identity& caller = kAlice) {
    return DeleteVia(service_, caller, job_id);
  }
  v1::Job CreateOk(const Identity& caller = kAlice) {
    absl::StatusOr<v1::Job> job = Create(ValidRequest(), caller);
    EXPECT_THAT(job, IsOk());
    return job.ok() ? *job : v1::Job();
  }

  JobService service_{&store_, &clock_};
  JobQuota quota_{&store_, 2};
};

TEST_F(JobQuotaTest, CreateBeyondTheLimitIsResourceExhaustedNamingIt) {
  const v1::Job first = CreateOk();
  CreateOk();
  EXPECT_THAT(Create(ValidRequest()),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("max_jobs_per_identity"), HasSubstr("2"))));
  // Another identity has its own room.
  CreateOk(Identity{"bob", "token"});
  // A deleted job no longer counts.
  ASSERT_THAT(Delete(first.job_id()), IsOk());
  CreateOk();
  EXPECT_THAT(Create(ValidRequest()), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(JobQuotaTest, JobsAlreadyStoredCountFromTheStart) {
  // Written before this quota existed (as after a restart).
  StoreJobs(kAlice, 2);
  EXPECT_THAT(Create(ValidRequest()), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(JobQuotaTest, RetriedCreateDoesNotCountTwice) {
  v1::CreateJobRequest request = ValidRequest();
  request.set_request_id("retry-1");
  const absl::StatusOr<v1::Job> first = Create(request);
  ASSERT_THAT(first, IsOk());
  const absl::StatusOr<v1::Job> again = Create(request);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->job_id(), first->job_id());
  CreateOk();  // The second slot is still free.
  EXPECT_THAT(Create(ValidRequest()), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST_F(JobQuotaTest, AnInvalidCreateTakesNoRoom) {
  v1::CreateJobRequest invalid = ValidRequest();
  invalid.mutable_job()->mutable_schedule()->set_interval_seconds(0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(Create(invalid), StatusIs(absl::StatusCode::kInvalidArgument));
  }
  CreateOk();
  CreateOk();
}

TEST_F(JobQuotaTest, ARequestIdReusedWithADifferentJobTakesNoRoom) {
  v1::CreateJobRequest request = ValidRequest();
  request.set_request_id("once");
  ASSERT_THAT(Create(request), IsOk());
  request.mutable_job()->set_name("something else");
  ASSERT_THAT(Create(request), StatusIs(absl::StatusCode::kAlreadyExists));
  CreateOk();  // The refused create released its reservation.
}

TEST_F(JobQuotaTest, AFailedDeleteFreesNoRoom) {
  CreateOk();
  const v1::Job second = CreateOk();
  ASSERT_THAT(Delete(second.job_id(), kBob), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(Delete(second.job_id()), IsOk());
  ASSERT_THAT(Delete(second.job_id()), StatusIs(absl::StatusCode::kNotFound));  // Twice.
  CreateOk();
  EXPECT_THAT(Create(ValidRequest()), StatusIs(absl::StatusCode::kResourceExhausted));
}

// ---------------------------------------------------------------------------
// What an identity keeps, deleted jobs included, and how fast it writes.

// A create request whose action body is about `bytes` long.
v1::CreateJobRequest BigRequest(size_t bytes) {
  v1::CreateJobRequest request = ValidRequest();
  request.mutable_job()->mutable_action()->set_body(
      absl::StrCat(R"({"pad":")", std::string(bytes, 'x'), R"("})"));
  return request;
}

class StoredLimitsTest : public JobQuotaFixture {
 protected:
  void Use(JobQuota::Limits limits) {
    quota_ = std::make_unique<JobQuota>(&store_, &clock_, limits);
    service_.set_quota(quota_.get());
  }
  absl::StatusOr<v1::Job> Create(const v1::CreateJobRequest& request = ValidRequest(),
                                 const Identity& caller = kAlice) {
    return CreateVia(service_, caller, request);
  }
  absl::StatusOr<v1::Job> Delete(const std::string& job_id,
                                 const Identity& caller = kAlice) {
    return DeleteVia(service_, caller, job_id);
  }
  // Creates and deletes until a create fails; returns how many succeeded
  // and (in `refused`) the failure. At most `rounds`.
  int CreateDeleteLoop(const v1::CreateJobRequest& request, int rounds,
                       absl::Status* refused) {
    for (int i = 0; i < rounds; ++i) {
      absl::StatusOr<v1::Job> job = Create(request);
      if (!job.ok()) {
        *refused = job.status();
        return i;
      }
      EXPECT_THAT(Delete(job->job_id()), IsOk());
    }
    return rounds;
  }

  JobService service_{&store_, &clock_};
  std::unique_ptr<JobQuota> quota_;
};

// H5: create+delete of big jobs used to grow the store without bound, since
// only live jobs were counted.
TEST_F(StoredLimitsTest, ACreateAndDeleteLoopStopsAtTheStoredBytesLimit) {
  Use({.max_jobs = 10, .max_stored_bytes = 1 << 20});
  absl::Status refused;
  const int made = CreateDeleteLoop(BigRequest(200 << 10), 50, &refused);
  EXPECT_EQ(made, 5);  // 5 x 200 KiB (and a few bytes each) fit in 1 MiB.
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted,
                                AllOf(HasSubstr("max_stored_bytes_per_identity"),
                                      HasSubstr("deleted ones included"))));
  // Another identity has room of its own; a small job of alice's still fits.
  EXPECT_THAT(Create(BigRequest(200 << 10), kBob), IsOk());
  EXPECT_THAT(Create(), IsOk());
}

TEST_F(StoredLimitsTest, ACreateAndDeleteLoopStopsAtTheStoredJobsLimit) {
  Use({.max_jobs = 100, .max_stored_jobs = 5});
  absl::Status refused;
  EXPECT_EQ(CreateDeleteLoop(ValidRequest(), 50, &refused), 5);
  EXPECT_THAT(refused,
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("max_stored_jobs_per_identity"), HasSubstr("5"))));
}

TEST_F(StoredLimitsTest, APurgedJobFreesItsRoom) {
  Use({.max_stored_jobs = 2, .max_stored_bytes = 1 << 20});
  absl::StatusOr<v1::Job> first = Create(BigRequest(600 << 10));
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(Delete(first->job_id()), IsOk());
  ASSERT_THAT(Create(BigRequest(600 << 10)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("max_stored_bytes_per_identity")));
  absl::StatusOr<std::vector<store::PurgedJob>> purged =
      store_.PurgeDeletedJobs(INT64_MAX, 10);
  ASSERT_THAT(purged, IsOk());
  ASSERT_EQ(purged->size(), 1u);
  quota_->Purged(purged->at(0).owner, purged->at(0).bytes);
  EXPECT_THAT(Create(BigRequest(600 << 10)), IsOk());
}

TEST_F(StoredLimitsTest, DeletedJobsAlreadyStoredCountFromTheStart) {
  // Written before this quota existed (as after a restart).
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<v1::Job> job = CreateVia(unlimited_, kAlice, BigRequest(300 << 10));
    ASSERT_THAT(job, IsOk());
    ASSERT_THAT(DeleteVia(unlimited_, kAlice, job->job_id()), IsOk());
  }
  Use({.max_stored_jobs = 4, .max_stored_bytes = 1 << 20});
  EXPECT_THAT(Create(BigRequest(300 << 10)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("max_stored_bytes_per_identity")));
  ASSERT_THAT(Create(), IsOk());
  EXPECT_THAT(Create(), StatusIs(absl::StatusCode::kResourceExhausted,
                                 HasSubstr("max_stored_jobs_per_identity")));
}

TEST_F(StoredLimitsTest, AnUpdateThatGrowsTheBodyBeyondTheLimitWritesNothing) {
  Use({.max_stored_bytes = 1 << 20});
  absl::StatusOr<v1::Job> job = Create(BigRequest(400 << 10));
  ASSERT_THAT(job, IsOk());
  ASSERT_THAT(Create(BigRequest(400 << 10)), IsOk());
  v1::UpdateJobRequest grow;
  grow.mutable_job()->set_job_id(job->job_id());
  *grow.mutable_job()->mutable_action() = BigRequest(700 << 10).job().action();
  grow.mutable_update_mask()->add_paths("action.body");
  const auto update = [&](const v1::UpdateJobRequest& request) {
    return Wait([&](store::JobCallback done) {
      service_.UpdateJob(kAlice, request, std::move(done));
    });
  };
  EXPECT_THAT(update(grow), StatusIs(absl::StatusCode::kResourceExhausted,
                                     HasSubstr("max_stored_bytes_per_identity")));
  v1::GetJobRequest get;
  get.set_job_id(job->job_id());
  EXPECT_EQ(service_.GetJob(kAlice, get)->etag(), job->etag());
  // Shrinking frees room.
  ASSERT_THAT(Create(BigRequest(600 << 10)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  v1::UpdateJobRequest shrink = grow;
  *shrink.mutable_job()->mutable_action() = BigRequest(10).job().action();
  ASSERT_THAT(update(shrink), IsOk());
  EXPECT_THAT(Create(BigRequest(600 << 10)), IsOk());
}

TEST_F(StoredLimitsTest, WritesBeyondTheBurstAreRefusedUntilTheRateRefills) {
  Use({.write_rate = 2, .write_burst = 3});
  absl::StatusOr<v1::Job> job = Create();
  ASSERT_THAT(job, IsOk());
  v1::PauseJobRequest pause;
  pause.set_job_id(job->job_id());
  ASSERT_THAT(Wait([&](store::JobCallback done) {
                service_.PauseJob(kAlice, pause, std::move(done));
              }),
              IsOk());
  ASSERT_THAT(Create(), IsOk());
  // The burst is spent: create, delete, update, pause and resume all wait.
  EXPECT_THAT(Create(), StatusIs(absl::StatusCode::kResourceExhausted,
                                 AllOf(HasSubstr("write_rate_per_identity"),
                                       HasSubstr("write_burst_per_identity 3"))));
  EXPECT_THAT(Delete(job->job_id()), StatusIs(absl::StatusCode::kResourceExhausted));
  v1::ResumeJobRequest resume;
  resume.set_job_id(job->job_id());
  EXPECT_THAT(Wait([&](store::JobCallback done) {
                service_.ResumeJob(kAlice, resume, std::move(done));
              }),
              StatusIs(absl::StatusCode::kResourceExhausted));
  // Another identity has its own bucket.
  EXPECT_THAT(Create(ValidRequest(), kBob), IsOk());
  // Two a second: half a second brings one more write.
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_THAT(Delete(job->job_id()), IsOk());
  EXPECT_THAT(Create(), StatusIs(absl::StatusCode::kResourceExhausted));
  // A long pause refills no more than the burst.
  clock_.Advance(absl::Hours(1));
  for (int i = 0; i < 3; ++i) EXPECT_THAT(Create(), IsOk()) << i;
  EXPECT_THAT(Create(), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(RateLimiterTest, ForgetsIdleKeysAndStillLimitsBusyOnes) {
  FakeClock clock(kNow);
  RateLimiter limiter(&clock, "some_rate", "some_burst", 1, 2);
  ASSERT_THAT(limiter.Take("busy"), IsOk());
  ASSERT_THAT(limiter.Take("busy"), IsOk());
  // Enough idle keys to sweep, each refilled by the time of the next.
  for (int i = 0; i < 10000; ++i) {
    clock.Advance(absl::Milliseconds(1));
    ASSERT_THAT(limiter.Take(absl::StrCat("idle-", i)), IsOk()) << i;
  }
  // 10 s passed: busy refilled to its burst of 2, no more.
  EXPECT_THAT(limiter.Take("busy"), IsOk());
  EXPECT_THAT(limiter.Take("busy"), IsOk());
  EXPECT_THAT(limiter.Take("busy"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("some_rate"), HasSubstr("some_burst 2"))));
}

}  // namespace
}  // namespace timer::domain
