// Tests of JobService (domain/jobs.h): validation, defaults, ownership, soft
// delete, idempotent create and paging. Runs on the MemoryStore fake and a
// FakeClock, so time only moves when a test moves it. The per-identity job
// limit is tested in job_quota_test.cc.

#include "domain/jobs.h"

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "domain/clock.h"
#include "domain/identity.h"
#include "domain/ids.h"
#include "domain/notifier.h"
#include "domain/time_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/memory_store.h"
#include "timer/v1/timer.pb.h"

namespace timer::domain {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr absl::Duration kWait = absl::Seconds(30);
const absl::Time kNow = absl::FromUnixSeconds(1700000000);  // 2023-11-14T22:13:20Z

MATCHER_P(StatusIs, code,
          absl::StrCat("has status code ", absl::StatusCodeToString(code))) {
  *result_listener << "whose status is " << arg.status();
  return arg.status().code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           absl::StrCat("has status code ", absl::StatusCodeToString(code))) {
  *result_listener << "whose status is " << arg.status();
  return arg.status().code() == code &&
         ::testing::ExplainMatchResult(
             message_matcher, std::string(arg.status().message()), result_listener);
}

MATCHER(IsOk, "is OK") {
  if (arg.ok()) return true;
  *result_listener << "whose status is " << arg.status();
  return false;
}

const Identity kAlice{"alice", "token"};
const Identity kBob{"bob", "token"};

// A request that passes validation.
v1::CreateJobRequest ValidRequest() {
  v1::CreateJobRequest request;
  v1::Job* job = request.mutable_job();
  job->set_name("nightly backup");
  job->mutable_schedule()->set_interval_seconds(3600);
  job->mutable_action()->set_provider("transfer");
  job->mutable_action()->set_body(R"({"source":"a","destination":"b"})");
  return request;
}

class JobServiceTest : public ::testing::Test {
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

  absl::StatusOr<v1::Job> Create(const v1::CreateJobRequest& request,
                                 const Identity& caller = kAlice) {
    return Wait([&](store::JobCallback done) {
      service_.CreateJob(caller, request, std::move(done));
    });
  }

  absl::StatusOr<v1::Job> Delete(const std::string& job_id, const std::string& etag = "",
                                 const Identity& caller = kAlice) {
    v1::DeleteJobRequest request;
    request.set_job_id(job_id);
    request.set_etag(etag);
    return Wait([&](store::JobCallback done) {
      service_.DeleteJob(caller, request, std::move(done));
    });
  }

  absl::StatusOr<v1::Job> Get(const std::string& job_id, bool show_deleted = false,
                              const Identity& caller = kAlice) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    request.set_show_deleted(show_deleted);
    return service_.GetJob(caller, request);
  }

  absl::StatusOr<v1::ListJobsResponse> List(int page_size = 0,
                                            std::string page_token = "",
                                            bool show_deleted = false,
                                            const Identity& caller = kAlice) {
    v1::ListJobsRequest request;
    request.set_page_size(page_size);
    request.set_page_token(std::move(page_token));
    request.set_show_deleted(show_deleted);
    return service_.ListJobs(caller, request);
  }

  // Ids of every job `caller` can list, following page tokens.
  std::vector<std::string> ListAllIds(bool show_deleted = false,
                                      const Identity& caller = kAlice) {
    std::vector<std::string> ids;
    std::string token;
    for (int pages = 0; pages < 100; ++pages) {
      absl::StatusOr<v1::ListJobsResponse> page = List(1000, token, show_deleted, caller);
      EXPECT_THAT(page, IsOk());
      if (!page.ok()) break;
      for (const v1::Job& job : page->jobs()) ids.push_back(job.job_id());
      token = page->next_page_token();
      if (token.empty()) break;
    }
    return ids;
  }

  // Creates a valid job and returns it (failing the test otherwise).
  v1::Job CreateOk(const Identity& caller = kAlice) {
    absl::StatusOr<v1::Job> job = Create(ValidRequest(), caller);
    EXPECT_THAT(job, IsOk());
    return job.ok() ? *job : v1::Job();
  }

  // Creates a job whose body is about `body_bytes`, with one result.
  v1::Job CreateBig(size_t body_bytes) {
    v1::CreateJobRequest request = ValidRequest();
    request.mutable_job()->mutable_action()->set_body(
        absl::StrCat(R"({"pad":")", std::string(body_bytes, 'x'), R"("})"));
    absl::StatusOr<v1::Job> job = Create(request);
    EXPECT_THAT(job, IsOk());
    if (!job.ok()) return v1::Job();
    v1::JobResult result;
    result.set_run_number(1);
    result.set_status(v1::JobResult::SUCCEEDED);
    result.set_details(R"({"copied":1})");
    absl::Notification written;
    store_.WriteResult(job->job_id(), result, [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      written.Notify();
    });
    written.WaitForNotification();
    clock_.Advance(absl::Milliseconds(1));  // Listed in creation order.
    return *job;
  }

  absl::StatusOr<v1::ListJobsResponse> ListView(v1::JobView view, int page_size = 0,
                                                std::string page_token = "") {
    v1::ListJobsRequest request;
    request.set_page_size(page_size);
    request.set_page_token(std::move(page_token));
    request.set_view(view);
    return service_.ListJobs(kAlice, request);
  }

  store::MemoryStore store_;
  FakeClock clock_{kNow};
  JobService service_{&store_, &clock_};
};

// ---------------------------------------------------------------------------
// Create: defaults and scheduling.

TEST_F(JobServiceTest, CreateAppliesDefaults) {
  absl::StatusOr<v1::Job> job = Create(ValidRequest());

  ASSERT_THAT(job, IsOk());
  EXPECT_TRUE(IsUuid(job->job_id())) << job->job_id();
  EXPECT_EQ(job->owner(), "alice");
  EXPECT_EQ(job->name(), "nightly backup");
  EXPECT_EQ(job->status(), v1::Job::NEW);
  EXPECT_EQ(FromProto(job->schedule().start()), kNow);
  EXPECT_EQ(FromProto(job->next_run()), kNow);
  EXPECT_EQ(FromProto(job->create_time()), kNow);
  EXPECT_EQ(FromProto(job->update_time()), kNow);
  EXPECT_EQ(job->overlap_policy(), v1::SKIP);
  EXPECT_EQ(job->missed_run_policy(), v1::SKIP_MISSED);
  EXPECT_EQ(job->max_concurrent(), 1);
  EXPECT_EQ(job->n_runs(), 0);
  EXPECT_FALSE(job->has_delete_time());
  EXPECT_THAT(job->etag(), Not(IsEmpty()));
  EXPECT_EQ(store_.size(), 1u);
}

TEST_F(JobServiceTest, CreatedJobCanBeReadBack) {
  absl::StatusOr<v1::Job> created = Create(ValidRequest());
  ASSERT_THAT(created, IsOk());

  absl::StatusOr<v1::Job> got = Get(created->job_id());

  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->SerializeAsString(), created->SerializeAsString());
}

TEST_F(JobServiceTest, EachCreateGetsItsOwnUuid) {
  std::set<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.insert(CreateOk().job_id());

  EXPECT_THAT(ids, SizeIs(20));
}

TEST_F(JobServiceTest, CreateKeepsExplicitPolicies) {
  v1::CreateJobRequest request = ValidRequest();
  request.mutable_job()->set_overlap_policy(v1::ALLOW);
  request.mutable_job()->set_max_concurrent(5);
  request.mutable_job()->set_missed_run_policy(v1::RUN_ONCE);
  request.mutable_job()->set_label("label-1");

  absl::StatusOr<v1::Job> job = Create(request);

  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->overlap_policy(), v1::ALLOW);
  EXPECT_EQ(job->max_concurrent(), 5);
  EXPECT_EQ(job->missed_run_policy(), v1::RUN_ONCE);
  EXPECT_EQ(job->label(), "label-1");
}

TEST_F(JobServiceTest, CreateKeepsTheRetryPolicyAndPauseAfterFailures) {
  v1::CreateJobRequest request = ValidRequest();
  v1::RetryPolicy* p = request.mutable_job()->mutable_retry_policy();
  p->set_max_attempts(4);
  p->mutable_initial_backoff()->set_seconds(30);
  p->set_multiplier(3);
  p->mutable_max_backoff()->set_seconds(600);
  request.mutable_job()->set_pause_after_failures(3);
  // Output only: ignored.
  request.mutable_job()->set_consecutive_failures(7);
  request.mutable_job()->mutable_inactive_reason()->set_detail("no");

  absl::StatusOr<v1::Job> job = Create(request);

  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->retry_policy().max_attempts(), 4);
  EXPECT_EQ(job->retry_policy().initial_backoff().seconds(), 30);
  EXPECT_EQ(job->retry_policy().multiplier(), 3);
  EXPECT_EQ(job->retry_policy().max_backoff().seconds(), 600);
  EXPECT_EQ(job->pause_after_failures(), 3);
  EXPECT_EQ(job->consecutive_failures(), 0);
  EXPECT_FALSE(job->has_inactive_reason());
}

TEST_F(JobServiceTest, UpdateChangesTheRetryPolicyByPathAndValidatesIt) {
  absl::StatusOr<v1::Job> job = Create(ValidRequest());
  ASSERT_THAT(job, IsOk());
  const auto update = [&](const std::function<void(v1::Job&)>& edit,
                          std::vector<std::string> paths) {
    v1::UpdateJobRequest request;
    request.mutable_job()->set_job_id(job->job_id());
    edit(*request.mutable_job());
    for (std::string& path : paths)
      request.mutable_update_mask()->add_paths(std::move(path));
    return Wait([&](store::JobCallback done) {
      service_.UpdateJob(kAlice, request, std::move(done));
    });
  };
  absl::StatusOr<v1::Job> updated = update(
      [](v1::Job& j) {
        j.mutable_retry_policy()->set_max_attempts(3);
        j.set_pause_after_failures(5);
      },
      {"retry_policy.max_attempts", "pause_after_failures"});
  ASSERT_THAT(updated, IsOk());
  EXPECT_EQ(updated->retry_policy().max_attempts(), 3);
  EXPECT_EQ(updated->pause_after_failures(), 5);

  EXPECT_THAT(update([](v1::Job& j) { j.mutable_retry_policy()->set_multiplier(0.5); },
                     {"retry_policy.multiplier"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("job.retry_policy.multiplier")));
  EXPECT_EQ(Get(job->job_id())->retry_policy().has_multiplier(), false);

  updated = update([](v1::Job&) {}, {"retry_policy"});  // Cleared.
  ASSERT_THAT(updated, IsOk());
  EXPECT_FALSE(updated->has_retry_policy());
}

TEST_F(JobServiceTest, PauseSaysTheUserPausedAndResumeClearsTheReason) {
  absl::StatusOr<v1::Job> job = Create(ValidRequest());
  ASSERT_THAT(job, IsOk());
  v1::PauseJobRequest pause;
  pause.set_job_id(job->job_id());
  absl::StatusOr<v1::Job> paused = Wait([&](store::JobCallback done) {
    service_.PauseJob(kAlice, pause, std::move(done));
  });
  ASSERT_THAT(paused, IsOk());
  EXPECT_EQ(paused->inactive_reason().cause(), v1::InactiveReason::USER);
  EXPECT_THAT(paused->inactive_reason().detail(), HasSubstr(kAlice.name));
  EXPECT_TRUE(paused->inactive_reason().has_time());

  v1::ResumeJobRequest resume;
  resume.set_job_id(job->job_id());
  absl::StatusOr<v1::Job> resumed = Wait([&](store::JobCallback done) {
    service_.ResumeJob(kAlice, resume, std::move(done));
  });
  ASSERT_THAT(resumed, IsOk());
  EXPECT_FALSE(resumed->has_inactive_reason());
  EXPECT_EQ(resumed->consecutive_failures(), 0);
}

TEST_F(JobServiceTest, CreateIgnoresOutputOnlyFields) {
  v1::CreateJobRequest request = ValidRequest();
  v1::Job* in = request.mutable_job();
  const std::string chosen_id = NewUuid();
  in->set_job_id(chosen_id);
  in->set_owner("mallory");
  in->set_status(v1::Job::DELETED);
  in->set_n_runs(7);
  in->set_n_errors(3);
  in->set_etag("42");
  *in->mutable_create_time() = ToProto(kNow - absl::Hours(100));
  *in->mutable_next_run() = ToProto(kNow + absl::Hours(100));

  absl::StatusOr<v1::Job> job = Create(request);

  ASSERT_THAT(job, IsOk());
  EXPECT_NE(job->job_id(), chosen_id);
  EXPECT_EQ(job->owner(), "alice");
  EXPECT_EQ(job->status(), v1::Job::NEW);
  EXPECT_EQ(job->n_runs(), 0);
  EXPECT_EQ(job->n_errors(), 0);
  EXPECT_EQ(FromProto(job->create_time()), kNow);
  EXPECT_EQ(FromProto(job->next_run()), kNow);
  EXPECT_THAT(store_.GetJob("mallory", chosen_id), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(JobServiceTest, FutureStartIsTheFirstRun) {
  v1::CreateJobRequest request = ValidRequest();
  const absl::Time start = kNow + absl::Hours(24) + absl::Milliseconds(500);
  *request.mutable_job()->mutable_schedule()->mutable_start() = ToProto(start);

  absl::StatusOr<v1::Job> job = Create(request);

  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(FromProto(job->schedule().start()), start);
  EXPECT_EQ(FromProto(job->next_run()), start);
  EXPECT_EQ(job->status(), v1::Job::NEW);
}

TEST_F(JobServiceTest, PastStartRunsAtTheFirstGridSlotAfterNow) {
  v1::CreateJobRequest request = ValidRequest();
  request.mutable_job()->mutable_schedule()->set_interval_seconds(60);
  const absl::Time start = kNow - absl::Seconds(125);
  *request.mutable_job()->mutable_schedule()->mutable_start() = ToProto(start);

  absl::StatusOr<v1::Job> job = Create(request);

  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(FromProto(job->schedule().start()), start);  // The grid is kept.
  EXPECT_EQ(FromProto(job->next_run()), start + absl::Seconds(180));
  EXPECT_EQ(job->status(), v1::Job::NEW);
}

TEST_F(JobServiceTest, PastStartOnTheGridRunsNow) {
  v1::CreateJobRequest request = ValidRequest();
  request.mutable_job()->mutable_schedule()->set_interval_seconds(60);
  *request.mutable_job()->mutable_schedule()->mutable_start() =
      ToProto(kNow - absl::Minutes(3));

  absl::StatusOr<v1::Job> job = Create(request);

  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(FromProto(job->next_run()), kNow);
}

TEST_F(JobServiceTest, StopDateBeforeTheFirstRunCreatesAnEndedJob) {
  v1::CreateJobRequest request = ValidRequest();
  v1::Schedule* schedule = request.mutable_job()->mutable_schedule();
  schedule->set_interval_seconds(3600);
  *schedule->mutable_start() = ToProto(kNow - absl::Minutes(90));
  // The next slot would be kNow + 30 min, after the stop date.
  *schedule->mutable_stop_after_date() = ToProto(kNow + absl::Minutes(10));

  absl::StatusOr<v1::Job> job = Create(request);

  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->status(), v1::Job::ENDED);
  EXPECT_EQ(job->end_reason(), v1::Job::STOP_AFTER_DATE);
  EXPECT_FALSE(job->has_next_run());
}

TEST_F(JobServiceTest, StopDateAfterTheFirstRunKeepsTheJobNew) {
  v1::CreateJobRequest request = ValidRequest();
  v1::Schedule* schedule = request.mutable_job()->mutable_schedule();
  const absl::Time start = kNow + absl::Hours(1);
  *schedule->mutable_start() = ToProto(start);
  *schedule->mutable_stop_after_date() = ToProto(start + absl::Seconds(1));
  schedule->set_stop_after_runs(3);

  absl::StatusOr<v1::Job> job = Create(request);

  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->status(), v1::Job::NEW);
  EXPECT_EQ(FromProto(job->next_run()), start);
  EXPECT_EQ(job->schedule().stop_after_runs(), 3);
}

TEST_F(JobServiceTest, LimitsAreInclusive) {
  v1::CreateJobRequest request = ValidRequest();
  request.mutable_job()->set_name(std::string(JobService::kMaxNameLength, 'n'));
  request.mutable_job()->set_label(std::string(JobService::kMaxLabelLength, 'l'));
  request.mutable_job()->mutable_schedule()->set_interval_seconds(
      JobService::kMaxIntervalSeconds);
  request.set_request_id(std::string(JobService::kMaxRequestIdLength, 'r'));

  EXPECT_THAT(Create(request), IsOk());
}

// ---------------------------------------------------------------------------
// Create: every invalid input is INVALID_ARGUMENT naming the field, and
// writes nothing.

struct InvalidCase {
  std::string test_name;
  void (*mutate)(v1::CreateJobRequest&);
  std::string field;  // Must appear in the error message.
};

// Keeps gtest (and ctest's test names) from dumping the struct's bytes.
void PrintTo(const InvalidCase& c, std::ostream* os) { *os << c.test_name; }

class CreateValidationTest : public JobServiceTest,
                             public ::testing::WithParamInterface<InvalidCase> {};

TEST_P(CreateValidationTest, IsInvalidArgumentNamingTheFieldAndWritesNothing) {
  v1::CreateJobRequest request = ValidRequest();
  GetParam().mutate(request);

  absl::StatusOr<v1::Job> job = Create(request);

  EXPECT_THAT(job,
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().field)));
  EXPECT_EQ(store_.size(), 0u);
}

v1::Schedule& Sched(v1::CreateJobRequest& r) {
  return *r.mutable_job()->mutable_schedule();
}
v1::Action& Act(v1::CreateJobRequest& r) { return *r.mutable_job()->mutable_action(); }

INSTANTIATE_TEST_SUITE_P(BadInputs, CreateValidationTest,
                         ::testing::
                             ValuesIn(std::
                                          vector<InvalidCase>{
                                              {"IntervalMissing",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).clear_interval_seconds();
                                               },
                                               "schedule.interval_seconds"},
                                              {"IntervalNegative",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_interval_seconds(-5);
                                               },
                                               "schedule.interval_seconds"},
                                              {"IntervalTooLong",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_interval_seconds(
                                                     JobService::kMaxIntervalSeconds + 1);
                                               },
                                               "schedule.interval_seconds"},
                                              {"StartNotATimestamp",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).mutable_start()->set_nanos(-1);
                                               },
                                               "schedule.start"},
                                              {"StopAfterRunsZero",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_stop_after_runs(0);
                                               },
                                               "schedule.stop_after_runs"},
                                              {"StopAfterRunsNegative",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_stop_after_runs(-1);
                                               },
                                               "schedule.stop_after_runs"},
                                              {"StopDateBeforeStart",
                                               [](v1::CreateJobRequest& r) {
                                                 *Sched(r).mutable_start() =
                                                     ToProto(kNow + absl::Hours(2));
                                                 *Sched(r).mutable_stop_after_date() =
                                                     ToProto(kNow + absl::Hours(1));
                                               },
                                               "schedule.stop_after_date"},
                                              {"StopDateEqualsStart",
                                               [](v1::CreateJobRequest& r) {
                                                 *Sched(r).mutable_start() =
                                                     ToProto(kNow + absl::Hours(2));
                                                 *Sched(r).mutable_stop_after_date() =
                                                     ToProto(kNow + absl::Hours(2));
                                               },
                                               "schedule.stop_after_date"},
                                              {"ProviderEmpty",
                                               [](v1::CreateJobRequest& r) {
                                                 Act(r).clear_provider();
                                               },
                                               "action.provider"},
                                              {"ProviderNotAName",
                                               [](v1::CreateJobRequest& r) {
                                                 Act(r).set_provider("Trans fer");
                                               },
                                               "action.provider"},
                                              {"BodyEmpty",
                                               [](v1::CreateJobRequest& r) {
                                                 Act(r).clear_body();
                                               },
                                               "action.body"},
                                              {"BodyNotJson",
                                               [](v1::CreateJobRequest& r) {
                                                 Act(r).set_body("{not json");
                                               },
                                               "action.body"},
                                              {"BodyJsonArray",
                                               [](v1::CreateJobRequest& r) {
                                                 Act(r).set_body(R"([1, 2])");
                                               },
                                               "action.body"},
                                              {"BodyJsonString",
                                               [](v1::CreateJobRequest& r) {
                                                 Act(r).set_body(R"("text")");
                                               },
                                               "action.body"},
                                              {"BodyTooLarge",
                                               [](v1::CreateJobRequest& r) {
                                                 Act(r).set_body(absl::StrCat(
                                                     R"({"pad":")",
                                                     std::string(
                                                         JobService::kMaxBodyBytes, 'x'),
                                                     R"("})"));
                                               },
                                               "action.body"},
                                              {"NameTooLong",
                                               [](v1::CreateJobRequest& r) {
                                                 r.mutable_job()->set_name(std::string(
                                                     JobService::kMaxNameLength + 1,
                                                     'n'));
                                               },
                                               "name"},
                                              {"LabelTooLong",
                                               [](v1::CreateJobRequest& r) {
                                                 r.mutable_job()->set_label(std::string(
                                                     JobService::kMaxLabelLength + 1,
                                                     'l'));
                                               },
                                               "label"},
                                              {"OverlapPolicyUnknown",
                                               [](v1::CreateJobRequest& r) {
                                                 r.mutable_job()->set_overlap_policy(
                                                     static_cast<v1::OverlapPolicy>(99));
                                               },
                                               "overlap_policy"},
                                              {"MissedRunPolicyUnknown",
                                               [](v1::CreateJobRequest& r) {
                                                 r.mutable_job()->set_missed_run_policy(
                                                     static_cast<v1::MissedRunPolicy>(
                                                         99));
                                               },
                                               "missed_run_policy"},
                                              {"MaxConcurrentTooHigh",
                                               [](v1::CreateJobRequest& r) {
                                                 r.mutable_job()->set_overlap_policy(
                                                     v1::ALLOW);
                                                 r.mutable_job()->set_max_concurrent(101);
                                               },
                                               "max_concurrent"},
                                              {"MaxConcurrentWithoutAllow",
                                               [](v1::CreateJobRequest& r) {
                                                 r.mutable_job()->set_max_concurrent(2);
                                               },
                                               "max_concurrent"},
                                              {"RequestIdTooLong",
                                               [](v1::CreateJobRequest& r) {
                                                 r.set_request_id(std::string(
                                                     JobService::kMaxRequestIdLength + 1,
                                                     'r'));
                                               },
                                               "request_id"},
                                              {"RequestIdWithSpace",
                                               [](v1::CreateJobRequest& r) {
                                                 r.set_request_id("my request");
                                               },
                                               "request_id"},
                                              {"RequestIdNotAscii",
                                               [](v1::CreateJobRequest& r) {
                                                 r.set_request_id("r\xc3\xa9q");
                                               },
                                               "request_id"},
                                              {"RetryNegativeAttempts",
                                               [](v1::CreateJobRequest& r) {
                                                 r.mutable_job()
                                                     ->mutable_retry_policy()
                                                     ->set_max_attempts(-1);
                                               },
                                               "job.retry_policy.max_attempts: must be "
                                               "between 1 and 10"},
                                              {"RetryTooManyAttempts",
                                               [](v1::CreateJobRequest& r) {
                                                 r.mutable_job()
                                                     ->mutable_retry_policy()
                                                     ->set_max_attempts(11);
                                               },
                                               "job.retry_policy.max_attempts"},
                                              {"RetryZeroMultiplier",
                                               [](v1::CreateJobRequest& r) {
                                                 auto* p = r.mutable_job()
                                                               ->mutable_retry_policy();
                                                 p->set_max_attempts(3);
                                                 p->set_multiplier(0);
                                               },
                                               "job.retry_policy.multiplier: must be "
                                               "between 1 and 10"},
                                              {"RetryZeroBackoff",
                                               [](v1::CreateJobRequest& r) {
                                                 auto* p = r.mutable_job()
                                                               ->mutable_retry_policy();
                                                 p->set_max_attempts(3);
                                                 p->mutable_initial_backoff();
                                               },
                                               "job.retry_policy.initial_backoff: must "
                                               "be "
                                               "> 0"},
                                              {"RetryBackoffPastTheBound",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_interval_seconds(60);
                                                 auto* p = r.mutable_job()
                                                               ->mutable_retry_policy();
                                                 p->set_max_attempts(3);
                                                 p->mutable_initial_backoff()
                                                     ->set_seconds(31);
                                               },
                                               "job.retry_policy.initial_backoff: must "
                                               "be "
                                               "at most half the interval"},
                                              {"RetryBackoffPast45Minutes",
                                               [](v1::CreateJobRequest& r) {
                                                 auto* p = r.mutable_job()
                                                               ->mutable_retry_policy();
                                                 p->set_max_attempts(3);
                                                 p->mutable_max_backoff()->set_seconds(
                                                     3600);
                                               },
                                               "job.retry_policy.max_backoff: must be at "
                                               "most 45m"},
                                              {"RetryMaxBelowInitial",
                                               [](v1::CreateJobRequest& r) {
                                                 auto* p = r.mutable_job()
                                                               ->mutable_retry_policy();
                                                 p->set_max_attempts(3);
                                                 p->mutable_initial_backoff()
                                                     ->set_seconds(20);
                                                 p->mutable_max_backoff()->set_seconds(
                                                     10);
                                               },
                                               "job.retry_policy.max_backoff: must be at "
                                               "least initial_backoff"},
                                              {"PauseAfterNegative",
                                               [](v1::CreateJobRequest& r) {
                                                 r.mutable_job()
                                                     ->set_pause_after_failures(-1);
                                               },
                                               "job.pause_after_failures"},
                                              {"CronBadHours",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_cron("0 0 25 * * *");
                                               },
                                               "job.schedule.cron: field 3 (hours) at "
                                               "position"},
                                              {"CronEmpty",
                                               [](v1::CreateJobRequest&
                                                      r) { Sched(r).set_cron(""); },
                                               "job.schedule.cron: required"},
                                              {"CronTooLong",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_cron(std::string(300, '*'));
                                               },
                                               "job.schedule.cron: at most 256"},
                                              {"UnknownZone",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_cron("0 2 * * *");
                                                 Sched(r).set_time_zone("Mars/Base");
                                               },
                                               "job.schedule.time_zone: unknown zone "
                                               "\"Mars/Base\""},
                                              {"ZoneThatIsAPath",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_cron("0 2 * * *");
                                                 Sched(r).set_time_zone(
                                                     "../../../etc/passwd");
                                               },
                                               "job.schedule.time_zone: unknown zone"},
                                              {"ZoneOnAnIntervalJob",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_time_zone("Europe/Berlin");
                                               },
                                               "job.schedule.time_zone: only for cron "
                                               "and calendar"},
                                              {"DstPolicyOnAnIntervalJob",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_dst_gap(v1::DST_GAP_SKIP);
                                               },
                                               "job.schedule.dst_gap"},
                                              {"DstGapUnknown",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_cron("0 2 * * *");
                                                 Sched(r).set_dst_gap(
                                                     static_cast<v1::DstGapPolicy>(42));
                                               },
                                               "job.schedule.dst_gap: unknown value"},
                                              {"OnceFalse",
                                               [](v1::CreateJobRequest&
                                                      r) { Sched(r).set_once(false); },
                                               "job.schedule.once"},
                                              {"CalendarWithoutInclude",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).mutable_calendar();
                                               },
                                               "job.schedule.calendar.include"},
                                              {"CalendarBadField",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r)
                                                     .mutable_calendar()
                                                     ->add_include()
                                                     ->set_minutes("61");
                                               },
                                               "job.schedule.calendar.include[0]."
                                               "minutes"},
                                              {"CalendarTooManySpecs",
                                               [](v1::CreateJobRequest& r) {
                                                 for (int i = 0; i < 17; ++i)
                                                   Sched(r)
                                                       .mutable_calendar()
                                                       ->add_include();
                                               },
                                               "job.schedule.calendar: at most 16"},
                                              {"JitterNegative",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_jitter_seconds(-1);
                                               },
                                               "job.schedule.jitter_seconds"},
                                              {"JitterOverADay",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_jitter_seconds(86401);
                                               },
                                               "job.schedule.jitter_seconds"},
                                              {"CatchUpWindowNegative",
                                               [](v1::CreateJobRequest& r) {
                                                 Sched(r).set_catch_up_window_seconds(-1);
                                               },
                                               "job.schedule.catch_up_window_seconds"},
                                          }),
                         [](const ::testing::TestParamInfo<InvalidCase>& info) {
                           return info.param.test_name;
                         });

// ---------------------------------------------------------------------------
// Create: idempotency on request_id.

TEST_F(JobServiceTest, SameRequestIdTwiceReturnsTheSameJob) {
  v1::CreateJobRequest request = ValidRequest();
  request.set_request_id("6f1c1a4e-9a43-4a33-9c1c-2f3b0d2d0c11");
  absl::StatusOr<v1::Job> first = Create(request);
  ASSERT_THAT(first, IsOk());
  clock_.Advance(absl::Minutes(5));  // A retry comes later; start still defaults.

  absl::StatusOr<v1::Job> second = Create(request);

  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(second->job_id(), first->job_id());
  EXPECT_EQ(FromProto(second->create_time()), kNow);
  EXPECT_EQ(store_.size(), 1u);
}

TEST_F(JobServiceTest, SameRequestIdWithADifferentJobIsAlreadyExists) {
  v1::CreateJobRequest request = ValidRequest();
  request.set_request_id("req-1");
  ASSERT_THAT(Create(request), IsOk());
  request.mutable_job()->set_name("something else");

  EXPECT_THAT(Create(request),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("request_id")));
  EXPECT_EQ(store_.size(), 1u);
}

TEST_F(JobServiceTest, RequestIdsBelongToOneCaller) {
  v1::CreateJobRequest request = ValidRequest();
  request.set_request_id("req-1");
  absl::StatusOr<v1::Job> alices = Create(request, kAlice);
  ASSERT_THAT(alices, IsOk());

  absl::StatusOr<v1::Job> bobs = Create(request, kBob);

  ASSERT_THAT(bobs, IsOk());
  EXPECT_NE(bobs->job_id(), alices->job_id());
  EXPECT_EQ(bobs->owner(), "bob");
  EXPECT_EQ(store_.size(), 2u);
}

TEST_F(JobServiceTest, NoRequestIdMeansEveryCreateIsNew) {
  ASSERT_THAT(Create(ValidRequest()), IsOk());
  ASSERT_THAT(Create(ValidRequest()), IsOk());

  EXPECT_EQ(store_.size(), 2u);
}

// ---------------------------------------------------------------------------
// Get.

TEST_F(JobServiceTest, GetWithABadJobIdIsInvalidArgument) {
  for (const char* bad :
       {"", "not-a-uuid", "0000000-0000-4000-8000-000000000000",
        "00000000-0000-4000-8000-00000000000g", "00000000_0000_4000_8000_000000000000"}) {
    EXPECT_THAT(Get(bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("job_id")))
        << "job_id \"" << bad << "\"";
  }
}

TEST_F(JobServiceTest, GetOfAnUnknownJobIsNotFound) {
  CreateOk();

  EXPECT_THAT(Get(NewUuid()), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(JobServiceTest, GetOfAnotherCallersJobIsNotFound) {
  const v1::Job job = CreateOk(kAlice);

  EXPECT_THAT(Get(job.job_id(), /*show_deleted=*/true, kBob),
              StatusIs(absl::StatusCode::kNotFound));
}

// ---------------------------------------------------------------------------
// Delete.

TEST_F(JobServiceTest, DeleteSoftDeletesTheJob) {
  const v1::Job job = CreateOk();
  clock_.Advance(absl::Hours(1));

  absl::StatusOr<v1::Job> deleted = Delete(job.job_id());

  ASSERT_THAT(deleted, IsOk());
  EXPECT_EQ(deleted->job_id(), job.job_id());
  EXPECT_EQ(deleted->status(), v1::Job::DELETED);
  EXPECT_EQ(FromProto(deleted->delete_time()), kNow + absl::Hours(1));
  EXPECT_EQ(FromProto(deleted->update_time()), kNow + absl::Hours(1));
  EXPECT_FALSE(deleted->has_next_run());
  EXPECT_NE(deleted->etag(), job.etag());
  EXPECT_EQ(store_.size(), 1u);  // Soft: still stored.
}

TEST_F(JobServiceTest, DeletedJobIsNotFoundUnlessShowDeleted) {
  const v1::Job job = CreateOk();
  ASSERT_THAT(Delete(job.job_id()), IsOk());

  EXPECT_THAT(Get(job.job_id()), StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<v1::Job> shown = Get(job.job_id(), /*show_deleted=*/true);
  ASSERT_THAT(shown, IsOk());
  EXPECT_EQ(shown->status(), v1::Job::DELETED);
}

TEST_F(JobServiceTest, DeletedJobIsHiddenFromListUnlessShowDeleted) {
  const v1::Job kept = CreateOk();
  clock_.Advance(absl::Seconds(1));
  const v1::Job gone = CreateOk();
  ASSERT_THAT(Delete(gone.job_id()), IsOk());

  EXPECT_THAT(ListAllIds(), ::testing::ElementsAre(kept.job_id()));
  EXPECT_THAT(ListAllIds(/*show_deleted=*/true),
              ::testing::ElementsAre(kept.job_id(), gone.job_id()));
}

TEST_F(JobServiceTest, DeleteTwiceIsNotFound) {
  const v1::Job job = CreateOk();
  absl::StatusOr<v1::Job> first = Delete(job.job_id());
  ASSERT_THAT(first, IsOk());

  EXPECT_THAT(Delete(job.job_id()), StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<v1::Job> after = Get(job.job_id(), /*show_deleted=*/true);
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->etag(), first->etag());  // The second delete wrote nothing.
}

TEST_F(JobServiceTest, DeleteWithAStaleEtagIsAbortedAndKeepsTheJob) {
  const v1::Job job = CreateOk();
  // Someone else changes the job after we read it.
  absl::Notification touched;
  store_.UpdateJob(
      "alice", job.job_id(), [](v1::Job&) { return absl::OkStatus(); },
      [&touched](absl::StatusOr<v1::Job> r) {
        EXPECT_TRUE(r.ok()) << r.status();
        touched.Notify();
      });
  ASSERT_TRUE(touched.WaitForNotificationWithTimeout(kWait));

  EXPECT_THAT(Delete(job.job_id(), job.etag()),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("etag")));
  EXPECT_THAT(Delete(job.job_id(), "no-such-etag"), StatusIs(absl::StatusCode::kAborted));
  absl::StatusOr<v1::Job> still = Get(job.job_id());
  ASSERT_THAT(still, IsOk());
  EXPECT_NE(still->status(), v1::Job::DELETED);
}

TEST_F(JobServiceTest, DeleteWithTheCurrentEtagSucceeds) {
  const v1::Job job = CreateOk();

  absl::StatusOr<v1::Job> deleted = Delete(job.job_id(), job.etag());

  ASSERT_THAT(deleted, IsOk());
  EXPECT_EQ(deleted->status(), v1::Job::DELETED);
}

TEST_F(JobServiceTest, DeleteWithABadJobIdIsInvalidArgument) {
  CreateOk();

  EXPECT_THAT(Delete(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("job_id")));
  EXPECT_THAT(Delete("nope"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("job_id")));
}

TEST_F(JobServiceTest, DeleteOfAnUnknownJobIsNotFound) {
  EXPECT_THAT(Delete(NewUuid()), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(JobServiceTest, DeleteOfAnotherCallersJobIsNotFoundAndKeepsIt) {
  const v1::Job job = CreateOk(kAlice);

  EXPECT_THAT(Delete(job.job_id(), "", kBob), StatusIs(absl::StatusCode::kNotFound));
  absl::StatusOr<v1::Job> still = Get(job.job_id());
  ASSERT_THAT(still, IsOk());
  EXPECT_EQ(still->status(), v1::Job::NEW);
  EXPECT_EQ(still->etag(), job.etag());
}

// ---------------------------------------------------------------------------
// List.

TEST_F(JobServiceTest, ListShowsOnlyTheCallersJobsOldestFirst) {
  std::vector<std::string> alices;
  for (int i = 0; i < 3; ++i) {
    alices.push_back(CreateOk(kAlice).job_id());
    CreateOk(kBob);
    clock_.Advance(absl::Seconds(1));
  }

  absl::StatusOr<v1::ListJobsResponse> page = List();

  ASSERT_THAT(page, IsOk());
  std::vector<std::string> ids;
  for (const v1::Job& job : page->jobs()) ids.push_back(job.job_id());
  EXPECT_EQ(ids, alices);
  EXPECT_THAT(page->next_page_token(), IsEmpty());
}

// Pages through 7 jobs, 3 at a time.
void ExpectPagesOf3_3_1(
    const std::function<absl::StatusOr<v1::ListJobsResponse>(const std::string&)>& list,
    const std::vector<std::string>& created) {
  std::vector<int> sizes;
  std::vector<std::string> seen;
  std::string token;
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<v1::ListJobsResponse> page = list(token);
    ASSERT_THAT(page, IsOk());
    sizes.push_back(page->jobs_size());
    for (const v1::Job& job : page->jobs()) seen.push_back(job.job_id());
    token = page->next_page_token();
    if (token.empty()) break;
  }
  EXPECT_THAT(sizes, ::testing::ElementsAre(3, 3, 1));
  EXPECT_THAT(std::set<std::string>(seen.begin(), seen.end()), SizeIs(7));
  EXPECT_EQ(seen, created);
}

TEST_F(JobServiceTest, PagesThroughSevenJobsThreeAtATime) {
  std::vector<std::string> created;
  for (int i = 0; i < 7; ++i) {
    created.push_back(CreateOk().job_id());
    clock_.Advance(absl::Seconds(1));
  }

  ExpectPagesOf3_3_1([this](const std::string& token) { return List(3, token); },
                     created);
}

TEST_F(JobServiceTest, PagesThroughJobsCreatedAtTheSameInstant) {
  for (int i = 0; i < 7; ++i) CreateOk();  // The clock does not move.
  std::vector<std::string> created = ListAllIds();
  ASSERT_THAT(created, SizeIs(7));

  ExpectPagesOf3_3_1([this](const std::string& token) { return List(3, token); },
                     created);
}

TEST_F(JobServiceTest, PagesWithShowDeletedIncludeDeletedJobs) {
  std::vector<std::string> created;
  for (int i = 0; i < 7; ++i) {
    created.push_back(CreateOk().job_id());
    clock_.Advance(absl::Seconds(1));
  }
  for (int i : {0, 3, 6}) ASSERT_THAT(Delete(created[i]), IsOk());

  ExpectPagesOf3_3_1(
      [this](const std::string& token) { return List(3, token, /*show_deleted=*/true); },
      created);
}

TEST_F(JobServiceTest, PageSizeZeroMeansTheDefault) {
  for (int i = 0; i < JobService::kDefaultPageSize + 1; ++i) CreateOk();

  absl::StatusOr<v1::ListJobsResponse> page = List(0);

  ASSERT_THAT(page, IsOk());
  EXPECT_EQ(page->jobs_size(), JobService::kDefaultPageSize);
  EXPECT_THAT(page->next_page_token(), Not(IsEmpty()));
}

TEST_F(JobServiceTest, NegativePageSizeIsInvalidArgument) {
  EXPECT_THAT(List(-1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_size")));
}

TEST_F(JobServiceTest, PageTokenWithADifferentShowDeletedIsInvalidArgument) {
  for (int i = 0; i < 3; ++i) CreateOk();
  absl::StatusOr<v1::ListJobsResponse> first = List(1, "", /*show_deleted=*/false);
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(first->next_page_token(), Not(IsEmpty()));

  EXPECT_THAT(List(1, first->next_page_token(), /*show_deleted=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));

  absl::StatusOr<v1::ListJobsResponse> all = List(1, "", /*show_deleted=*/true);
  ASSERT_THAT(all, IsOk());
  EXPECT_THAT(List(1, all->next_page_token(), /*show_deleted=*/false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
}

TEST_F(JobServiceTest, GarbagePageTokenIsInvalidArgument) {
  CreateOk();
  const std::string uuid = NewUuid();
  for (const std::string& bad : {
           std::string("garbage!!"),
           std::string("*"),
           absl::WebSafeBase64Escape("hello"),
           absl::WebSafeBase64Escape(absl::StrCat("1|0|not-a-number|", uuid)),
           absl::WebSafeBase64Escape("1|0|12345|not-a-uuid"),
           absl::WebSafeBase64Escape(absl::StrCat("2|0|12345|", uuid)),
           absl::WebSafeBase64Escape(absl::StrCat("1|0|12345|", uuid, "|extra")),
       }) {
    EXPECT_THAT(List(10, bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")))
        << "page_token \"" << bad << "\"";
  }
}

// ---------------------------------------------------------------------------
// Errors echo a bounded, escaped part of what the caller sent.

TEST_F(JobServiceTest, AnErrorEchoesABoundedEscapedPartOfTheInput) {
  const std::string huge = "\x1b[2J" + std::string(1 << 20, 'p');
  v1::GetActionProviderRequest get;
  get.set_name(huge);
  absl::StatusOr<v1::ActionProvider> provider = service_.GetActionProvider(kAlice, get);
  ASSERT_EQ(provider.status().code(), absl::StatusCode::kNotFound);
  EXPECT_LT(provider.status().message().size(), 512u);
  EXPECT_THAT(std::string(provider.status().message()),
              AllOf(HasSubstr("\\x1b[2Jppp"), HasSubstr("(1048580 bytes)")));

  v1::UpdateJobRequest update;
  *update.mutable_job() = CreateOk();
  update.mutable_update_mask()->add_paths(huge);
  absl::StatusOr<v1::Job> updated = Wait([&](store::JobCallback done) {
    service_.UpdateJob(kAlice, update, std::move(done));
  });
  ASSERT_EQ(updated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(updated.status().message().size(), 512u);
  EXPECT_THAT(std::string(updated.status().message()),
              AllOf(HasSubstr("update_mask"), Not(HasSubstr("\x1b"))));
}

// ---------------------------------------------------------------------------
// Views, the page byte bound and watch filters (issue 18, H7 and M6).

// A listing is BASIC unless FULL is asked for: no bodies, no results.
TEST_F(JobServiceTest, ListLeavesBodiesAndResultsOutByDefault) {
  const v1::Job created = CreateBig(100 << 10);
  absl::StatusOr<v1::Job> full = Get(created.job_id());
  ASSERT_THAT(full, IsOk());
  ASSERT_EQ(full->results_size(), 1);

  absl::StatusOr<v1::ListJobsResponse> page = List();
  ASSERT_THAT(page, IsOk());
  ASSERT_EQ(page->jobs_size(), 1);
  const v1::Job& listed = page->jobs(0);
  EXPECT_TRUE(listed.action().body().empty());
  EXPECT_EQ(listed.results_size(), 0);
  EXPECT_EQ(listed.action().provider(), "transfer");
  EXPECT_EQ(listed.etag(), full->etag());
  EXPECT_EQ(listed.last_run_number(), full->last_run_number());
  EXPECT_LT(page->ByteSizeLong(), 1024u);

  ASSERT_THAT(ListView(v1::JOB_VIEW_BASIC), IsOk());
  EXPECT_EQ(ListView(v1::JOB_VIEW_BASIC)->SerializeAsString(), page->SerializeAsString());
  absl::StatusOr<v1::ListJobsResponse> with_all = ListView(v1::JOB_VIEW_FULL);
  ASSERT_THAT(with_all, IsOk());
  ASSERT_EQ(with_all->jobs_size(), 1);
  EXPECT_EQ(with_all->jobs(0).SerializeAsString(), full->SerializeAsString());
}

TEST_F(JobServiceTest, AnUnknownViewIsInvalidArgument) {
  EXPECT_THAT(ListView(static_cast<v1::JobView>(7)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("view")));
  v1::WatchJobsRequest watch;
  watch.set_view(static_cast<v1::JobView>(-1));
  EXPECT_THAT(service_.WatchJobsFilter(kAlice, watch),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("view")));
}

// A page ends before the job that would bring it over the bound, with a
// token for the rest; paging through still lists every job once, in order
// (issue 18, H7: page_size=1000 built a 105 MB response).
TEST_F(JobServiceTest, AListPageEndsBeforeItsByteBound) {
  constexpr size_t kBound = 1 << 20;
  service_.set_list_page_bytes(kBound);
  std::vector<std::string> created;
  for (int i = 0; i < 12; ++i) created.push_back(CreateBig(300 << 10).job_id());

  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  for (; pages < 20; ++pages) {
    absl::StatusOr<v1::ListJobsResponse> page = ListView(v1::JOB_VIEW_FULL, 1000, token);
    ASSERT_THAT(page, IsOk());
    EXPECT_GE(page->jobs_size(), 1);
    EXPECT_LE(page->ByteSizeLong(), kBound + 200);  // The token is extra.
    for (const v1::Job& job : page->jobs()) {
      EXPECT_EQ(job.results_size(), 1);
      seen.push_back(job.job_id());
    }
    token = page->next_page_token();
    if (token.empty()) break;
  }
  EXPECT_EQ(seen, created);
  EXPECT_GE(pages, 3);  // 12 jobs of 300 KiB: at most 3 a page.

  // Without bodies they all fit in one page.
  absl::StatusOr<v1::ListJobsResponse> basic = ListView(v1::JOB_VIEW_BASIC, 1000);
  ASSERT_THAT(basic, IsOk());
  EXPECT_EQ(basic->jobs_size(), 12);
  EXPECT_THAT(basic->next_page_token(), IsEmpty());

  // A job larger than the bound alone still makes a page.
  service_.set_list_page_bytes(1024);
  absl::StatusOr<v1::ListJobsResponse> one = ListView(v1::JOB_VIEW_FULL, 1000);
  ASSERT_THAT(one, IsOk());
  EXPECT_EQ(one->jobs_size(), 1);
  EXPECT_THAT(one->next_page_token(), Not(IsEmpty()));
}

// Paging still honours page_size and show_deleted when the store is read in
// several pieces.
TEST_F(JobServiceTest, ListReadsTheStoreInPiecesWithoutLosingJobs) {
  std::vector<std::string> created;
  for (int i = 0; i < 40; ++i) {
    created.push_back(CreateOk().job_id());
    clock_.Advance(absl::Milliseconds(1));
  }
  for (int i = 0; i < 40; i += 5) ASSERT_THAT(Delete(created[i]), IsOk());
  std::vector<std::string> live;
  for (int i = 0; i < 40; ++i) {
    if (i % 5 != 0) live.push_back(created[i]);
  }
  EXPECT_EQ(ListAllIds(), live);
  EXPECT_EQ(ListAllIds(/*show_deleted=*/true), created);
  absl::StatusOr<v1::ListJobsResponse> page = List(25);
  ASSERT_THAT(page, IsOk());
  EXPECT_EQ(page->jobs_size(), 25);
  EXPECT_THAT(page->next_page_token(), Not(IsEmpty()));
}

// A statuses list longer than there are statuses is refused before any
// watcher holds it (issue 18, M6: a million-entry list slowed every tenant);
// within the bound, repeats are harmless.
TEST_F(JobServiceTest, AStatusesListLongerThanTheStatusesIsInvalidArgument) {
  v1::WatchJobsRequest huge;
  for (int i = 0; i < 1'000'000; ++i) huge.add_statuses(v1::Job::PAUSED);
  EXPECT_THAT(service_.WatchJobsFilter(kAlice, huge),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("statuses")));
  v1::WatchJobsRequest seven;
  for (int i = 0; i < 7; ++i) seven.add_statuses(v1::Job::PAUSED);
  EXPECT_THAT(service_.WatchJobsFilter(kAlice, seven),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("statuses")));

  v1::WatchJobsRequest every;
  for (int s = v1::Job::NEW; s <= v1::Job::DELETED; ++s)
    every.add_statuses(static_cast<v1::Job::Status>(s));
  absl::StatusOr<WatchFilter> all = service_.WatchJobsFilter(kAlice, every);
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->statuses, 0b1111110u);
  v1::WatchJobsRequest twice;
  twice.add_statuses(v1::Job::PAUSED);
  twice.add_statuses(v1::Job::PAUSED);
  absl::StatusOr<WatchFilter> paused = service_.WatchJobsFilter(kAlice, twice);
  ASSERT_THAT(paused, IsOk());
  EXPECT_EQ(paused->statuses, StatusBit(v1::Job::PAUSED));
  EXPECT_FALSE(paused->full_view);
}

// ---------------------------------------------------------------------------
// Calendar schedules: create, update, preview.

v1::CreateJobRequest CronRequest(const std::string& expr, const std::string& zone) {
  v1::CreateJobRequest r = ValidRequest();
  r.mutable_job()->mutable_schedule()->set_cron(expr);
  r.mutable_job()->mutable_schedule()->set_time_zone(zone);
  return r;
}

TEST_F(JobServiceTest, CronJobWithoutAZoneIsInUtcAndFirstRunsAtItsNextSlot) {
  absl::StatusOr<v1::Job> job = Create(CronRequest("0 2 * * *", ""));
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->schedule().time_zone(), "UTC");
  // kNow is 2023-11-14T22:13:20Z.
  EXPECT_EQ(FromProto(job->next_run()),
            absl::FromUnixSeconds(1700013600));  // 15th 02:00Z
  EXPECT_EQ(job->next_run().seconds(), job->next_scheduled_time().seconds());
}

TEST_F(JobServiceTest, CronJobInBerlinRunsAtLocalTime) {
  absl::StatusOr<v1::Job> job = Create(CronRequest("0 2 * * *", "Europe/Berlin"));
  ASSERT_THAT(job, IsOk());
  // 2023-11-15 02:00 CET = 01:00Z.
  EXPECT_EQ(FromProto(job->next_run()), absl::FromUnixSeconds(1700010000));
}

TEST_F(JobServiceTest, OnceJobInThePastEndsAtCreate) {
  v1::CreateJobRequest r = ValidRequest();
  r.mutable_job()->mutable_schedule()->set_once(true);
  *r.mutable_job()->mutable_schedule()->mutable_start() = ToProto(kNow - absl::Hours(1));
  absl::StatusOr<v1::Job> job = Create(r);
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->status(), v1::Job::ENDED);
  EXPECT_EQ(job->end_reason(), v1::Job::SCHEDULE_COMPLETE);
}

TEST_F(JobServiceTest, JitteredJobKeepsTheNominalSlotBesideNextRun) {
  v1::CreateJobRequest r = CronRequest("0 * * * *", "UTC");
  r.mutable_job()->mutable_schedule()->set_jitter_seconds(1200);
  absl::StatusOr<v1::Job> job = Create(r);
  ASSERT_THAT(job, IsOk());
  const absl::Time slot = FromProto(job->next_scheduled_time());
  EXPECT_EQ(slot, absl::FromUnixSeconds(1700002800));  // 23:00Z
  EXPECT_EQ(FromProto(job->next_run()) - slot,
            JitterFor(job->job_id(), job->schedule(), slot, slot + absl::Hours(1)));
}

TEST_F(JobServiceTest, UpdateChangesTheKindCoherently) {
  v1::Job job = CreateOk();
  ASSERT_TRUE(job.schedule().has_interval_seconds());
  const auto update = [&](const v1::Job& in, std::vector<std::string> paths) {
    v1::UpdateJobRequest request;
    *request.mutable_job() = in;
    request.mutable_job()->set_job_id(job.job_id());
    for (auto& p : paths) request.mutable_update_mask()->add_paths(p);
    return Wait([&](store::JobCallback done) {
      service_.UpdateJob(kAlice, request, std::move(done));
    });
  };
  v1::Job in;
  in.mutable_schedule()->set_cron("0 2 * * *");
  in.mutable_schedule()->set_time_zone("Europe/Berlin");
  absl::StatusOr<v1::Job> cron = update(in, {"schedule.cron", "schedule.time_zone"});
  ASSERT_THAT(cron, IsOk());
  EXPECT_EQ(cron->schedule().cron(), "0 2 * * *");
  EXPECT_FALSE(cron->schedule().has_interval_seconds());
  EXPECT_EQ(FromProto(cron->next_run()), absl::FromUnixSeconds(1700010000));
  // Back to an interval: the zone goes with the cron kind.
  in.mutable_schedule()->set_interval_seconds(600);
  absl::StatusOr<v1::Job> interval = update(in, {"schedule.interval_seconds"});
  ASSERT_THAT(interval, IsOk());
  EXPECT_EQ(interval->schedule().interval_seconds(), 600);
  EXPECT_EQ(interval->schedule().time_zone(), "");
  // A bad expression names the field and changes nothing.
  in.mutable_schedule()->set_cron("0 61 * * *");
  EXPECT_THAT(update(in, {"schedule.cron"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("job.schedule.cron: field 2 (hours)")));
  // A zone on an interval job is refused.
  in.mutable_schedule()->set_time_zone("Europe/Berlin");
  EXPECT_THAT(
      update(in, {"schedule.time_zone"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("job.schedule.time_zone")));
  EXPECT_EQ(Get(job.job_id())->schedule().interval_seconds(), 600);
}

TEST_F(JobServiceTest, PreviewOfAJobIsTheCallersOnly) {
  v1::Job job = *Create(CronRequest("0 2 * * *", "Europe/Berlin"));
  v1::PreviewScheduleRequest request;
  request.set_job_id(job.job_id());
  request.set_count(3);
  absl::StatusOr<v1::PreviewScheduleResponse> mine =
      service_.PreviewSchedule(kAlice, request);
  ASSERT_THAT(mine, IsOk());
  ASSERT_EQ(mine->entries_size(), 3);
  EXPECT_EQ(FromProto(mine->entries(0).fire_time()), FromProto(job.next_run()));
  EXPECT_THAT(service_.PreviewSchedule(kBob, request),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(JobServiceTest, PreviewOfAScheduleFromThePastStartsThere) {
  v1::PreviewScheduleRequest request;
  request.mutable_schedule()->set_cron("0 2 * * *");
  *request.mutable_from() = ToProto(kNow - absl::Hours(24 * 30));
  request.set_count(1);
  absl::StatusOr<v1::PreviewScheduleResponse> p =
      service_.PreviewSchedule(kAlice, request);
  ASSERT_THAT(p, IsOk());
  ASSERT_EQ(p->entries_size(), 1);
  EXPECT_LT(FromProto(p->entries(0).fire_time()), kNow - absl::Hours(24 * 29));
}

TEST_F(JobServiceTest, PreviewOfASchedulePlainAndBounded) {
  v1::PreviewScheduleRequest request;
  request.mutable_schedule()->set_cron("*/15 * * * *");
  absl::StatusOr<v1::PreviewScheduleResponse> p =
      service_.PreviewSchedule(kAlice, request);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->entries_size(), JobService::kDefaultPreviewCount);
  EXPECT_EQ(p->description(), "cron '*/15 * * * *' in UTC");
  request.set_count(JobService::kMaxPreviewCount + 1);
  EXPECT_THAT(service_.PreviewSchedule(kAlice, request),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("count")));
  request.set_count(5);
  request.mutable_schedule()->set_cron("0 0 31 2 *");  // never
  p = service_.PreviewSchedule(kAlice, request);
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->entries_size(), 0);
  EXPECT_TRUE(p->ended());
  request.mutable_schedule()->set_time_zone("Mars/Base");
  EXPECT_THAT(service_.PreviewSchedule(kAlice, request),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("schedule.time_zone: unknown zone \"Mars/Base\"")));
}

// ---------------------------------------------------------------------------
// BackfillJob: validation, idempotency, the runs it records.

class BackfillTest : public JobServiceTest {
 protected:
  // A job of `edit`'s schedule (default: hourly from 10 h ago).
  v1::Job CreateWith(const std::function<void(v1::Schedule&)>& edit = {},
                     const Identity& caller = kAlice) {
    v1::CreateJobRequest request = ValidRequest();
    v1::Schedule* s = request.mutable_job()->mutable_schedule();
    s->set_interval_seconds(3600);
    *s->mutable_start() = ToProto(kNow - absl::Hours(10));
    if (edit) edit(*s);
    absl::StatusOr<v1::Job> job = Create(request, caller);
    EXPECT_THAT(job, IsOk());
    return job.value_or(v1::Job());
  }

  absl::StatusOr<v1::BackfillJobResponse> Backfill(const v1::BackfillJobRequest& request,
                                                   const Identity& caller = kAlice) {
    absl::Notification done;
    absl::StatusOr<v1::BackfillJobResponse> out = absl::UnknownError("not called");
    service_.BackfillJob(caller, request, [&](absl::StatusOr<v1::BackfillJobResponse> r) {
      out = std::move(r);
      done.Notify();
    });
    if (!done.WaitForNotificationWithTimeout(kWait)) {
      return absl::DeadlineExceededError("test: callback never ran");
    }
    return out;
  }

  static v1::BackfillJobRequest Range(const std::string& job_id, absl::Time from,
                                      absl::Time to, int max_runs = 0,
                                      const std::string& request_id = "") {
    v1::BackfillJobRequest request;
    request.set_job_id(job_id);
    *request.mutable_start_time() = ToProto(from);
    *request.mutable_end_time() = ToProto(to);
    request.set_max_runs(max_runs);
    request.set_request_id(request_id);
    return request;
  }

  std::vector<v1::JobResult> Results(const std::string& job_id) {
    v1::ListJobResultsRequest request;
    request.set_job_id(job_id);
    request.set_page_size(1000);
    absl::StatusOr<v1::ListJobResultsResponse> r =
        service_.ListJobResults(kAlice, request);
    EXPECT_THAT(r, IsOk());
    if (!r.ok()) return {};
    return {r->results().begin(), r->results().end()};
  }
};

TEST_F(BackfillTest, EachBadFieldIsNamedAndNothingIsWritten) {
  const v1::Job job = CreateWith();
  const std::string id = job.job_id();
  const absl::Time from = kNow - absl::Hours(10);
  const absl::Time to = kNow - absl::Hours(7);
  const auto invalid = [](absl::string_view text) {
    return StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(text));
  };
  EXPECT_THAT(Backfill(Range("", from, to)), invalid("job_id: required"));
  EXPECT_THAT(Backfill(Range("not-a-uuid", from, to)), invalid("job_id: must be a UUID"));
  v1::BackfillJobRequest no_start = Range(id, from, to);
  no_start.clear_start_time();
  EXPECT_THAT(Backfill(no_start), invalid("start_time: required"));
  v1::BackfillJobRequest no_end = Range(id, from, to);
  no_end.clear_end_time();
  EXPECT_THAT(Backfill(no_end), invalid("end_time: required"));
  EXPECT_THAT(Backfill(Range(id, to, from)),
              invalid("end_time: must be after start_time"));
  EXPECT_THAT(Backfill(Range(id, from, from)),
              invalid("end_time: must be after start_time"));
  EXPECT_THAT(Backfill(Range(id, from, kNow + absl::Seconds(1))),
              invalid("end_time: must not be after now"));
  EXPECT_THAT(Backfill(Range(id, kNow - absl::Hours(24 * 367), kNow - absl::Hours(23))),
              invalid("end_time: at most 366 days after start_time"));
  EXPECT_THAT(Backfill(Range(id, from, to, -1)), invalid("max_runs: must be between 0"));
  EXPECT_THAT(Backfill(Range(id, from, to, JobService::kMaxBackfillRuns + 1)),
              invalid("max_runs: must be between 0"));
  EXPECT_THAT(Backfill(Range(id, from, to, 0, std::string(129, 'x'))),
              invalid("request_id"));
  // Three slots where two are allowed: the count is named.
  EXPECT_THAT(Backfill(Range(id, from, to, 2)),
              invalid("max_runs: the range holds 3 slots of the job's schedule, more "
                      "than 2"));
  // Ten hours of a per-minute schedule: more than the default 100.
  const v1::Job minutely =
      CreateWith([](v1::Schedule& s) { s.set_interval_seconds(60); });
  EXPECT_THAT(Backfill(Range(minutely.job_id(), from, kNow)),
              invalid("the range holds 600 slots of the job's schedule, more than 100"));
  const v1::Job cron = CreateWith([](v1::Schedule& s) { s.set_cron("* * * * *"); });
  EXPECT_THAT(Backfill(Range(cron.job_id(), from, from + absl::Minutes(101))),
              invalid("the range holds 101 slots"));
  EXPECT_THAT(Results(id), IsEmpty());
  absl::StatusOr<v1::Job> after = Get(id);
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->last_run_number(), 0);
}

TEST_F(BackfillTest, AnotherOwnersJobIsNotFoundAndAnEndedOrPausedOneIsRefused) {
  const v1::Job bobs = CreateWith({}, kBob);
  const absl::Time from = kNow - absl::Hours(10);
  EXPECT_THAT(Backfill(Range(bobs.job_id(), from, kNow)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Backfill(Range(NewUuid(), from, kNow)),
              StatusIs(absl::StatusCode::kNotFound));

  // Its next slot would come after the stop date: created ENDED.
  const v1::Job ended = CreateWith([](v1::Schedule& s) {
    *s.mutable_start() = ToProto(kNow - absl::Minutes(90));
    *s.mutable_stop_after_date() = ToProto(kNow + absl::Minutes(10));
  });
  ASSERT_EQ(ended.status(), v1::Job::ENDED);
  EXPECT_THAT(Backfill(Range(ended.job_id(), kNow - absl::Minutes(90), kNow)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ended")));

  const v1::Job paused = CreateWith();
  v1::PauseJobRequest pause;
  pause.set_job_id(paused.job_id());
  ASSERT_THAT(Wait([&](store::JobCallback done) {
                service_.PauseJob(kAlice, pause, std::move(done));
              }),
              IsOk());
  EXPECT_THAT(Backfill(Range(paused.job_id(), from, kNow)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("paused")));

  ASSERT_THAT(Delete(paused.job_id()), IsOk());
  EXPECT_THAT(Backfill(Range(paused.job_id(), from, kNow)),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Results(ended.job_id()), IsEmpty());
}

TEST_F(BackfillTest, RecordsIntervalSlotsPendingWithNominalTimesOldestFirst) {
  const v1::Job job = CreateWith([](v1::Schedule& s) { s.set_jitter_seconds(600); });
  // From between two slots: the first slot at or after it, up to (not
  // including) the end.
  absl::StatusOr<v1::BackfillJobResponse> r =
      Backfill(Range(job.job_id(), kNow - absl::Hours(10) + absl::Minutes(1),
                     kNow - absl::Hours(6), 0, "fill-1"));
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->results_size(), 3);
  for (int i = 0; i < 3; ++i) {
    const v1::JobResult& run = r->results(i);
    EXPECT_EQ(run.run_number(), i + 1);
    EXPECT_TRUE(run.backfill());
    EXPECT_FALSE(run.manual());
    EXPECT_EQ(run.status(), v1::JobResult::PENDING);
    EXPECT_EQ(run.request_id(), "fill-1");
    // The nominal slot, without the job's jitter.
    EXPECT_EQ(FromProto(run.scheduled_time()), kNow - absl::Hours(9 - i));
  }
  EXPECT_EQ(r->job().last_run_number(), 3);
  // Not a run of the grid: stop_after_runs and next_run are untouched.
  EXPECT_EQ(r->job().n_runs(), 0);
  EXPECT_EQ(r->job().next_run().seconds(), job.next_run().seconds());
  EXPECT_EQ(Results(job.job_id()).size(), 3u);
}

TEST_F(BackfillTest, RecordsCronSlotsInTheRange) {
  // kNow is 2023-11-14T22:13:20Z; every six hours from three days before.
  const v1::Job job = CreateWith([](v1::Schedule& s) {
    s.set_cron("0 */6 * * *");
    *s.mutable_start() = ToProto(kNow - absl::Hours(72));
  });
  absl::StatusOr<v1::BackfillJobResponse> r =
      Backfill(Range(job.job_id(), kNow - absl::Hours(48), kNow - absl::Hours(24)));
  ASSERT_THAT(r, IsOk());
  std::vector<std::string> times;
  for (const v1::JobResult& run : r->results()) {
    EXPECT_TRUE(run.backfill());
    times.push_back(absl::FormatTime(
        "%Y-%m-%dT%H:%M:%SZ", FromProto(run.scheduled_time()), absl::UTCTimeZone()));
  }
  EXPECT_THAT(times,
              ::testing::ElementsAre("2023-11-13T00:00:00Z", "2023-11-13T06:00:00Z",
                                     "2023-11-13T12:00:00Z", "2023-11-13T18:00:00Z"));
  // Nothing before the schedule's start, nothing in a range with no slot.
  r = Backfill(Range(job.job_id(), kNow - absl::Hours(100), kNow - absl::Hours(72)));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->results_size(), 0);
  EXPECT_EQ(Results(job.job_id()).size(), 4u);
}

TEST_F(BackfillTest, ARetryWithTheSameRequestIdRecordsNothingNew) {
  const v1::Job job = CreateWith();
  const v1::BackfillJobRequest request =
      Range(job.job_id(), kNow - absl::Hours(10), kNow - absl::Hours(8), 0, "again");
  absl::StatusOr<v1::BackfillJobResponse> first = Backfill(request);
  ASSERT_THAT(first, IsOk());
  ASSERT_EQ(first->results_size(), 2);
  // A run of its own in between: the retry still finds its first call's.
  v1::RunJobNowRequest now;
  now.set_job_id(job.job_id());
  ASSERT_THAT(Wait([&](store::JobCallback done) {
                service_.RunJobNow(kAlice, now, std::move(done));
              }),
              IsOk());
  absl::StatusOr<v1::BackfillJobResponse> retry = Backfill(request);
  ASSERT_THAT(retry, IsOk());
  ASSERT_EQ(retry->results_size(), 2);
  EXPECT_EQ(retry->results(0).run_number(), 1);
  EXPECT_EQ(retry->results(1).run_number(), 2);
  EXPECT_EQ(retry->job().last_run_number(), 3);
  EXPECT_EQ(Results(job.job_id()).size(), 3u);
  // The same id for another range is not a retry.
  EXPECT_THAT(Backfill(Range(job.job_id(), kNow - absl::Hours(6), kNow - absl::Hours(5),
                             0, "again")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("request_id")));
  // Without an id, every call records anew.
  v1::BackfillJobRequest plain = request;
  plain.clear_request_id();
  ASSERT_THAT(Backfill(plain), IsOk());
  ASSERT_THAT(Backfill(plain), IsOk());
  EXPECT_EQ(Results(job.job_id()).size(), 7u);
}

// ---------------------------------------------------------------------------
// Notifications (issue 24): checked by the notifier at create and update.

TEST_F(JobServiceTest, NotificationRefusedWithoutANotifier) {
  v1::CreateJobRequest request = ValidRequest();
  request.mutable_job()->mutable_notification()->set_url("https://hooks.example.org/x");
  absl::StatusOr<v1::Job> job = Create(request);
  ASSERT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(job.status().message()), HasSubstr("job.notification"));
}

TEST_F(JobServiceTest, NotificationCheckedStoredAndUpdated) {
  Notifier::Options options;
  options.allow = {"hooks.example.org"};
  options.key = "k";
  absl::StatusOr<std::unique_ptr<Notifier>> notifier =
      Notifier::Create(options, &clock_, nullptr);
  ASSERT_THAT(notifier, IsOk());
  service_.set_notifier(notifier->get());

  v1::CreateJobRequest request = ValidRequest();
  request.mutable_job()->mutable_notification()->set_url("http://127.0.0.1:9/");
  absl::StatusOr<v1::Job> refused = Create(request);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("job.notification.url"));

  request.mutable_job()->mutable_notification()->set_url("https://hooks.example.org/x");
  request.mutable_job()->mutable_notification()->add_on(v1::Notification::END);
  absl::StatusOr<v1::Job> job = Create(request);
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->notification().url(), "https://hooks.example.org/x");
  ASSERT_EQ(job->notification().on_size(), 1);

  v1::UpdateJobRequest update;
  update.mutable_job()->set_job_id(job->job_id());
  update.mutable_job()->mutable_notification()->add_on(v1::Notification::FAILURE);
  update.mutable_job()->mutable_notification()->add_on(v1::Notification::RECOVERY);
  update.mutable_update_mask()->add_paths("notification.on");
  absl::StatusOr<v1::Job> updated = Wait([&](store::JobCallback done) {
    service_.UpdateJob(kAlice, update, std::move(done));
  });
  ASSERT_THAT(updated, IsOk());
  EXPECT_EQ(updated->notification().url(), "https://hooks.example.org/x");
  EXPECT_EQ(updated->notification().on_size(), 2);

  // Removing it: the whole field, empty.
  update.mutable_job()->clear_notification();
  update.mutable_update_mask()->Clear();
  update.mutable_update_mask()->add_paths("notification");
  updated = Wait([&](store::JobCallback done) {
    service_.UpdateJob(kAlice, update, std::move(done));
  });
  ASSERT_THAT(updated, IsOk());
  EXPECT_FALSE(updated->has_notification());
  EXPECT_FALSE(Get(job->job_id())->has_notification());
}

}  // namespace
}  // namespace timer::domain
