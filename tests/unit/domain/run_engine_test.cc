// RunEngine with a fake clock, the in-memory store and an in-process fake
// provider: days of schedule in milliseconds, no sleeps. Each step moves the
// clock, fires what is due (Tick) and waits for the engine to settle.
#include "domain/run_engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "domain/job_quota.h"
#include "domain/jobs.h"
#include "domain/retry.h"
#include "domain/time_util.h"
#include "fake_action_provider.h"
#include "metrics_testing.h"
#include "store/memory_store.h"

namespace timer::domain {
namespace {

using ::testing::ElementsAre;
using ::timer::testing::FakeActionProvider;
using ::timer::testing::MetricValue;
using State = ActionStatus::State;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);
const Identity kAlice{"alice", "token"};

class RunEngineTest : public ::testing::Test {
 protected:
  RunEngineTest()
      : clock_(kStart - absl::Seconds(1)),
        registry_({&fake_}),
        jobs_(&store_, &clock_, &registry_) {}

  ~RunEngineTest() override {
    if (engine_) engine_->Stop();
  }

  void StartEngine(const std::function<void(RunEngine::Options&)>& edit = {}) {
    RunEngine::Options options;
    options.background = false;
    options.workers = 2;
    options.poll_min = absl::Seconds(1);
    options.poll_max = absl::Seconds(1);
    options.run_timeout = absl::Minutes(10);
    if (edit) edit(options);
    engine_ = std::make_unique<RunEngine>(&store_, &clock_, &registry_, options);
    jobs_.set_observer(engine_.get());
    ASSERT_TRUE(engine_->Start().ok());
  }

  // A job starting at kStart every `interval` seconds, edited by `edit`.
  v1::Job Create(int64_t interval, const std::function<void(v1::Job&)>& edit = {}) {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    *job->mutable_schedule()->mutable_start() = ToProto(kStart);
    job->mutable_schedule()->set_interval_seconds(interval);
    job->mutable_action()->set_provider("fake");
    job->mutable_action()->set_body("{}");
    if (edit) edit(*job);
    absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
    jobs_.CreateJob(kAlice, req, [&](absl::StatusOr<v1::Job> j) { out = std::move(j); });
    EXPECT_TRUE(out.ok()) << out.status();
    return out.value_or(v1::Job());
  }

  v1::Job Get(const std::string& id) {
    v1::GetJobRequest req;
    req.set_job_id(id);
    req.set_show_deleted(true);
    return jobs_.GetJob(kAlice, req).value();
  }

  // Sets the clock, fires what is due and waits for the engine to settle.
  void At(absl::Time t) {
    clock_.Set(t);
    engine_->Tick();
    engine_->WaitIdle();
  }
  absl::Time Slot(int64_t k, int64_t interval) {
    return kStart + absl::Seconds(interval) * k;
  }

  template <typename Method, typename Req>
  absl::StatusOr<v1::Job> Call(Method method, Req req) {
    absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
    (jobs_.*method)(kAlice, req, [&](absl::StatusOr<v1::Job> j) { out = std::move(j); });
    engine_->WaitIdle();
    return out;
  }

  template <typename Method, typename Req>
  absl::StatusOr<v1::Job> CallAs(const Identity& caller, Method method, Req req) {
    absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
    (jobs_.*method)(caller, req, [&](absl::StatusOr<v1::Job> j) { out = std::move(j); });
    engine_->WaitIdle();
    return out;
  }

  absl::StatusOr<v1::Job> RunNow(const std::string& job_id,
                                 const std::string& request_id = "",
                                 const Identity& caller = kAlice) {
    v1::RunJobNowRequest now;
    now.set_job_id(job_id);
    now.set_request_id(request_id);
    return CallAs(caller, &JobService::RunJobNow, now);
  }

  // Polls active runs once (poll_min and poll_max are 1 s here).
  void Poll() { At(clock_.Now() + absl::Seconds(1)); }

  std::vector<v1::JobResult> AllResults(const std::string& id) {
    v1::ListJobResultsRequest req;
    req.set_job_id(id);
    req.set_page_size(1000);
    auto resp = jobs_.ListJobResults(kAlice, req).value();
    return {resp.results().begin(), resp.results().end()};
  }

  FakeClock clock_;
  FakeActionProvider fake_;
  StaticRegistry registry_;
  store::MemoryStore store_;
  JobService jobs_;
  std::unique_ptr<RunEngine> engine_;
};

TEST_F(RunEngineTest, RunsOnTheGridWithStableIdempotencyKeys) {
  StartEngine();
  v1::Job job = Create(10);
  EXPECT_EQ(Get(job.job_id()).status(), v1::Job::NEW);
  for (int k = 0; k < 5; ++k) At(Slot(k, 10) + absl::Milliseconds(300 * k));

  v1::Job after = Get(job.job_id());
  EXPECT_EQ(after.status(), v1::Job::LOADED);
  EXPECT_EQ(after.n_runs(), 5);
  EXPECT_EQ(FromProto(after.next_run()), Slot(5, 10));
  ASSERT_EQ(after.results_size(), 5);
  for (int i = 0; i < 5; ++i) {
    const v1::JobResult& r = after.results(4 - i);  // Newest first.
    EXPECT_EQ(r.run_number(), i + 1);
    EXPECT_EQ(FromProto(r.scheduled_time()), Slot(i, 10));
    EXPECT_EQ(r.status(), v1::JobResult::SUCCEEDED);
  }
  const std::string id = job.job_id();
  EXPECT_THAT(fake_.starts(),
              ElementsAre(id + "/1", id + "/2", id + "/3", id + "/4", id + "/5"));
  EXPECT_THAT(fake_.owners(), ::testing::Each("alice"));
}

TEST_F(RunEngineTest, AStartWithNanosecondsStillFires) {
  StartEngine();
  const absl::Time start = kStart + absl::Nanoseconds(123456789);
  v1::Job job = Create(
      10, [&](v1::Job& j) { *j.mutable_schedule()->mutable_start() = ToProto(start); });
  // Kept to the microsecond, the resolution of the timer queue.
  EXPECT_EQ(FromProto(job.schedule().start()), kStart + absl::Microseconds(123456));
  At(start);
  At(start + absl::Seconds(10));
  EXPECT_EQ(fake_.starts().size(), 2u);
}

TEST_F(RunEngineTest, NothingFiresBeforeItIsDue) {
  StartEngine();
  v1::Job job = Create(60);
  At(kStart - absl::Milliseconds(1));
  EXPECT_TRUE(fake_.starts().empty());
  At(kStart);
  EXPECT_EQ(fake_.starts().size(), 1u);
  At(kStart + absl::Seconds(59));
  EXPECT_EQ(fake_.starts().size(), 1u);
}

TEST_F(RunEngineTest, StopAfterRunsGivesExactlyThatManyAndEnds) {
  StartEngine();
  v1::Job job =
      Create(1, [](v1::Job& j) { j.mutable_schedule()->set_stop_after_runs(3); });
  for (int k = 0; k < 10; ++k) At(Slot(k, 1));
  v1::Job after = Get(job.job_id());
  EXPECT_EQ(after.status(), v1::Job::ENDED);
  EXPECT_EQ(after.end_reason(), v1::Job::STOP_AFTER_RUNS);
  EXPECT_FALSE(after.has_next_run());
  EXPECT_EQ(AllResults(job.job_id()).size(), 3u);
  EXPECT_EQ(fake_.starts().size(), 3u);

  // Raising the limit makes it run again until the new limit.
  v1::UpdateJobRequest update;
  update.mutable_job()->set_job_id(job.job_id());
  update.mutable_job()->mutable_schedule()->set_stop_after_runs(5);
  update.mutable_update_mask()->add_paths("schedule.stop_after_runs");
  absl::StatusOr<v1::Job> updated = Call(&JobService::UpdateJob, update);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->status(), v1::Job::UPDATED);
  for (int k = 9; k < 20; ++k) At(Slot(k, 1));
  after = Get(job.job_id());
  EXPECT_EQ(after.status(), v1::Job::ENDED);
  EXPECT_EQ(after.n_runs(), 5);
}

TEST_F(RunEngineTest, StopAfterDateEnds) {
  StartEngine();
  v1::Job job = Create(10, [](v1::Job& j) {
    *j.mutable_schedule()->mutable_stop_after_date() =
        ToProto(kStart + absl::Seconds(25));
  });
  for (int k = 0; k < 6; ++k) At(Slot(k, 10));
  v1::Job after = Get(job.job_id());
  EXPECT_EQ(after.n_runs(), 3);  // 0, 10 and 20 s.
  EXPECT_EQ(after.status(), v1::Job::ENDED);
  EXPECT_EQ(after.end_reason(), v1::Job::STOP_AFTER_DATE);
}

TEST_F(RunEngineTest, SkipOverlapRecordsSkippedWhileARunIsActive) {
  fake_.set_instant(false);
  StartEngine();
  v1::Job job = Create(10);
  At(Slot(0, 10));
  At(Slot(1, 10));  // Run 1 still active.
  fake_.EndAll(State::kSucceeded);
  At(Slot(1, 10) + absl::Seconds(2));  // The poll learns it ended.
  At(Slot(2, 10));
  std::vector<v1::JobResult> results = AllResults(job.job_id());
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[2].status(), v1::JobResult::SUCCEEDED);
  EXPECT_EQ(results[1].status(), v1::JobResult::SKIPPED);
  EXPECT_THAT(results[1].error(), ::testing::HasSubstr("still active"));
  EXPECT_EQ(results[0].status(), v1::JobResult::ACTIVE);
  EXPECT_EQ(Get(job.job_id()).n_skipped(), 1);
  EXPECT_EQ(fake_.starts().size(), 2u);
}

// A run that started late (after a takeover or a busy moment) and ended
// before the next slot must not make that slot SKIPPED: the next fire comes
// up `lookahead` ahead of its slot, when the late run may still be active,
// so with a run active the overlap policy is applied at the slot itself.
// Seen with three replicas: the first fire after a takeover is late, and
// the slot after it was skipped for "the previous run is still active".
TEST_F(RunEngineTest, ARunActiveAheadOfTheNextSlotButEndedByItDoesNotSkipIt) {
  fake_.set_instant(false);
  StartEngine([](RunEngine::Options& o) {
    o.lookahead = absl::Milliseconds(500);
    o.poll_min = absl::Milliseconds(100);
    o.poll_max = absl::Milliseconds(100);
  });
  v1::Job job = Create(1);
  At(Slot(0, 1) + absl::Milliseconds(700));  // Slot 0 starts 700 ms late.
  ASSERT_EQ(fake_.starts().size(), 1u);
  At(Slot(1, 1) - absl::Milliseconds(250));  // Slot 1 within the lookahead.
  fake_.EndAll(State::kSucceeded);
  At(Slot(1, 1) - absl::Milliseconds(100));  // The poll learns it ended.
  At(Slot(1, 1));
  std::vector<v1::JobResult> results = AllResults(job.job_id());
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].status(), v1::JobResult::SUCCEEDED);
  EXPECT_NE(results[0].status(), v1::JobResult::SKIPPED) << results[0].error();
  EXPECT_EQ(FromProto(results[0].scheduled_time()), Slot(1, 1));
  EXPECT_EQ(fake_.starts().size(), 2u);
  EXPECT_EQ(Get(job.job_id()).n_skipped(), 0);

  // A run still active at the slot itself is still skipped (SKIP).
  At(Slot(2, 1));
  results = AllResults(job.job_id());
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].status(), v1::JobResult::SKIPPED);
  EXPECT_THAT(results[0].error(), ::testing::HasSubstr("still active"));
}

TEST_F(RunEngineTest, AllowOverlapRunsUpToMaxConcurrent) {
  fake_.set_instant(false);
  StartEngine();
  v1::Job job = Create(10, [](v1::Job& j) {
    j.set_overlap_policy(v1::ALLOW);
    j.set_max_concurrent(2);
  });
  for (int k = 0; k < 3; ++k) At(Slot(k, 10));
  EXPECT_EQ(fake_.starts().size(), 2u);
  EXPECT_EQ(AllResults(job.job_id())[0].status(), v1::JobResult::SKIPPED);
  EXPECT_EQ(engine_->active_runs(), 2);
}

TEST_F(RunEngineTest, BufferOneStartsTheWaitingRunWhenTheActiveOneEnds) {
  fake_.set_instant(false);
  StartEngine();
  v1::Job job = Create(10, [](v1::Job& j) { j.set_overlap_policy(v1::BUFFER_ONE); });
  At(Slot(0, 10));
  At(Slot(1, 10));  // Buffered.
  At(Slot(2, 10));  // One is already waiting: skipped.
  EXPECT_EQ(fake_.starts().size(), 1u);
  fake_.EndAll(State::kSucceeded);
  At(Slot(2, 10) + absl::Seconds(2));
  EXPECT_EQ(fake_.starts().size(), 2u);
  EXPECT_EQ(fake_.starts()[1], job.job_id() + "/2");
}

TEST_F(RunEngineTest, CancelPreviousCancelsTheActiveRun) {
  fake_.set_instant(false);
  StartEngine();
  v1::Job job = Create(10, [](v1::Job& j) { j.set_overlap_policy(v1::CANCEL_PREVIOUS); });
  At(Slot(0, 10));
  At(Slot(0, 10) + absl::Seconds(1));  // First poll: the run is known active.
  At(Slot(1, 10));
  EXPECT_EQ(fake_.starts().size(), 2u);
  EXPECT_THAT(fake_.cancels(), ElementsAre("a-1"));
  At(Slot(1, 10) + absl::Seconds(2));
  std::vector<v1::JobResult> results = AllResults(job.job_id());
  EXPECT_EQ(results[1].status(), v1::JobResult::CANCELLED);
}

TEST_F(RunEngineTest, PauseAndResumeKeepTheOriginalGrid) {
  StartEngine();
  v1::Job job = Create(10);
  At(Slot(0, 10));
  v1::PauseJobRequest pause;
  pause.set_job_id(job.job_id());
  ASSERT_EQ(Call(&JobService::PauseJob, pause)->status(), v1::Job::PAUSED);
  for (int k = 1; k < 5; ++k) At(Slot(k, 10));
  EXPECT_EQ(fake_.starts().size(), 1u);

  clock_.Set(Slot(4, 10) + absl::Seconds(3));
  v1::ResumeJobRequest resume;
  resume.set_job_id(job.job_id());
  absl::StatusOr<v1::Job> resumed = Call(&JobService::ResumeJob, resume);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->status(), v1::Job::LOADED);
  EXPECT_EQ(FromProto(resumed->next_run()), Slot(5, 10));  // Not now + 10 s.
  At(Slot(5, 10));
  EXPECT_EQ(fake_.starts().size(), 2u);
  EXPECT_EQ(FromProto(AllResults(job.job_id())[0].scheduled_time()), Slot(5, 10));
}

TEST_F(RunEngineTest, RunNowIsOneExtraRunThatDoesNotShiftTheGrid) {
  StartEngine();
  v1::Job job = Create(10);
  At(Slot(0, 10));
  clock_.Set(Slot(0, 10) + absl::Seconds(4));
  v1::RunJobNowRequest now;
  now.set_job_id(job.job_id());
  now.set_request_id("click-1");
  ASSERT_TRUE(Call(&JobService::RunJobNow, now).ok());
  ASSERT_TRUE(Call(&JobService::RunJobNow, now).ok());  // A retry: no second run.
  EXPECT_EQ(fake_.starts().size(), 2u);
  v1::Job after = Get(job.job_id());
  EXPECT_EQ(FromProto(after.next_run()), Slot(1, 10));
  EXPECT_TRUE(after.results(0).manual());
  At(Slot(1, 10));
  EXPECT_EQ(fake_.starts().size(), 3u);
}

TEST_F(RunEngineTest, ARunNowThatReachesStopAfterRunsEndsTheJobAtOnce) {
  StartEngine();
  v1::Job job =
      Create(10, [](v1::Job& j) { j.mutable_schedule()->set_stop_after_runs(1); });
  v1::RunJobNowRequest now;
  now.set_job_id(job.job_id());
  absl::StatusOr<v1::Job> ran = Call(&JobService::RunJobNow, now);
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_EQ(ran->status(), v1::Job::ENDED);
  EXPECT_EQ(ran->end_reason(), v1::Job::STOP_AFTER_RUNS);
  EXPECT_FALSE(ran->has_next_run());
  EXPECT_EQ(fake_.starts().size(), 1u);  // The run itself still happens.
  At(Slot(0, 10));
  At(Slot(1, 10));
  EXPECT_EQ(fake_.starts().size(), 1u);
  EXPECT_EQ(Get(job.job_id()).n_runs(), 1);
}

TEST_F(RunEngineTest, MissedSlotsAfterDowntimeAreSkippedByDefault) {
  v1::Job job = Create(10);
  // The engine starts 35 s after the first slot: slots 0..3 passed.
  clock_.Set(Slot(3, 10) + absl::Seconds(5));
  StartEngine();
  At(clock_.Now());
  v1::Job after = Get(job.job_id());
  EXPECT_TRUE(fake_.starts().empty());
  EXPECT_EQ(after.n_skipped(), 4);
  EXPECT_EQ(FromProto(after.next_run()), Slot(4, 10));
  ASSERT_EQ(after.results_size(), 1);
  EXPECT_EQ(after.results(0).status(), v1::JobResult::SKIPPED);
  EXPECT_THAT(after.results(0).error(), ::testing::HasSubstr("4 run(s) missed"));
}

TEST_F(RunEngineTest, MissedSlotsWithRunOnceCatchUpOnce) {
  v1::Job job = Create(10, [](v1::Job& j) { j.set_missed_run_policy(v1::RUN_ONCE); });
  clock_.Set(Slot(3, 10) + absl::Seconds(5));
  StartEngine();
  At(clock_.Now());
  v1::Job after = Get(job.job_id());
  EXPECT_EQ(fake_.starts().size(), 1u);
  EXPECT_EQ(FromProto(after.results(0).scheduled_time()), Slot(3, 10));
  EXPECT_EQ(after.n_skipped(), 3);
  EXPECT_EQ(FromProto(after.next_run()), Slot(4, 10));
}

TEST_F(RunEngineTest, AfterACrashPendingRunsBecomeUnknownAndAreNotRetried) {
  v1::Job job = Create(10);
  // What a crash between recording a run and starting it leaves behind.
  store_.WriteJobState(
      job.job_id(),
      [](v1::Job& j, std::vector<v1::JobResult>& table) {
        v1::JobResult r;
        r.set_run_number(1);
        r.set_status(v1::JobResult::PENDING);
        *r.mutable_scheduled_time() = ToProto(kStart);
        j.set_last_run_number(1);
        j.set_n_runs(1);
        *j.mutable_next_run() = ToProto(kStart + absl::Seconds(10));
        *j.add_results() = r;
        table.push_back(r);
        return absl::OkStatus();
      },
      [](absl::StatusOr<v1::Job>) {});
  clock_.Set(kStart + absl::Seconds(2));
  StartEngine();
  engine_->WaitIdle();
  v1::Job after = Get(job.job_id());
  EXPECT_EQ(after.results(0).status(), v1::JobResult::UNKNOWN);
  EXPECT_EQ(after.n_errors(), 1);
  EXPECT_TRUE(fake_.starts().empty());
  At(kStart + absl::Seconds(10));  // The grid goes on, with a new run number.
  EXPECT_THAT(fake_.starts(), ElementsAre(job.job_id() + "/2"));
}

TEST_F(RunEngineTest, AfterACrashActiveRunsArePolledToTheirEnd) {
  fake_.set_instant(false);
  StartEngine();
  v1::Job job = Create(100);
  At(kStart);
  ASSERT_EQ(Get(job.job_id()).results(0).status(), v1::JobResult::ACTIVE);
  // A new engine over the same store and provider (the provider survived).
  engine_->Stop();
  StartEngine();
  fake_.EndAll(State::kSucceeded);
  At(kStart + absl::Seconds(1));
  v1::Job after = Get(job.job_id());
  EXPECT_EQ(after.results(0).status(), v1::JobResult::SUCCEEDED);
  EXPECT_EQ(fake_.starts().size(), 1u);
}

TEST_F(RunEngineTest, AfterACrashARunTheProviderForgotIsUnknown) {
  fake_.set_instant(false);
  StartEngine();
  v1::Job job = Create(100);
  At(kStart);
  engine_->Stop();
  fake_.ForgetAll();
  StartEngine();
  engine_->WaitIdle();
  EXPECT_EQ(Get(job.job_id()).results(0).status(), v1::JobResult::UNKNOWN);
}

TEST_F(RunEngineTest, ARunPastItsTimeoutIsCancelledAndFails) {
  fake_.set_instant(false);
  StartEngine();
  v1::Job job = Create(3600);
  At(kStart);
  for (int s = 1; s <= 11 * 60; s += 60) At(kStart + absl::Seconds(s));
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::FAILED);
  EXPECT_THAT(r.error(), ::testing::HasSubstr("timed out"));
  EXPECT_THAT(fake_.cancels(), ElementsAre("a-1"));
}

TEST_F(RunEngineTest, FailedRunsCountAsErrors) {
  fake_.set_instant(false);
  StartEngine();
  v1::Job job = Create(10);
  At(kStart);
  fake_.EndAll(State::kFailed);
  At(kStart + absl::Seconds(1));
  v1::Job after = Get(job.job_id());
  EXPECT_EQ(after.n_errors(), 1);
  EXPECT_EQ(after.results(0).status(), v1::JobResult::FAILED);
  EXPECT_EQ(after.results(0).error(), "it broke");
}

// --- Retries (domain/retry.h) and pause_after_failures -------------------

void SetRetry(v1::Job& j, int attempts, int64_t initial_s, double multiplier = 2,
              int64_t max_s = 0) {
  v1::RetryPolicy* p = j.mutable_retry_policy();
  p->set_max_attempts(attempts);
  p->mutable_initial_backoff()->set_seconds(initial_s);
  p->set_multiplier(multiplier);
  if (max_s > 0) p->mutable_max_backoff()->set_seconds(max_s);
}

TEST_F(RunEngineTest, ATransientFailureThenSuccessIsOneRunWithTwoAttempts) {
  StartEngine();
  v1::Job job = Create(600, [](v1::Job& j) { SetRetry(j, 3, 10); });
  fake_.FailNext(1, v1::ERROR_CLASS_TRANSIENT);
  At(kStart);
  v1::JobResult waiting = Get(job.job_id()).results(0);
  EXPECT_EQ(waiting.status(), v1::JobResult::PENDING);
  ASSERT_EQ(waiting.attempts_size(), 1);
  EXPECT_EQ(waiting.attempts(0).error_class(), v1::ERROR_CLASS_TRANSIENT);
  EXPECT_EQ(FromProto(waiting.next_attempt_time()), kStart + absl::Seconds(10));
  EXPECT_EQ(engine_->retry_waiting(), 1);
  EXPECT_EQ(engine_->active_runs(), 1);  // Still the job's run.

  At(kStart + absl::Seconds(9));
  EXPECT_EQ(fake_.starts().size(), 1u);
  At(kStart + absl::Seconds(10));
  // The same idempotency key, after the failed action was released.
  EXPECT_THAT(fake_.starts(), ElementsAre(job.job_id() + "/1", job.job_id() + "/1"));
  EXPECT_THAT(fake_.releases(), ::testing::Contains("a-1"));
  v1::Job after = Get(job.job_id());
  ASSERT_EQ(after.results_size(), 1);
  const v1::JobResult& r = after.results(0);
  EXPECT_EQ(r.status(), v1::JobResult::SUCCEEDED);
  EXPECT_EQ(r.run_number(), 1);
  ASSERT_EQ(r.attempts_size(), 2);
  EXPECT_EQ(r.attempts(0).attempt(), 1);
  EXPECT_EQ(r.attempts(0).error(), "it broke (attempt 1)");
  EXPECT_EQ(FromProto(r.attempts(1).start_time()), kStart + absl::Seconds(10));
  EXPECT_EQ(r.attempts(1).attempt(), 2);
  EXPECT_TRUE(r.attempts(1).error().empty());
  EXPECT_TRUE(r.attempts(1).has_end_time());
  EXPECT_EQ(FromProto(r.start_time()), kStart);
  EXPECT_FALSE(r.has_next_attempt_time());
  EXPECT_EQ(after.n_runs(), 1);
  EXPECT_EQ(after.n_errors(), 0);
  EXPECT_EQ(engine_->retry_waiting(), 0);
  EXPECT_EQ(engine_->active_runs(), 0);
}

TEST_F(RunEngineTest, APermanentFailureIsTriedOnce) {
  StartEngine();
  v1::Job job = Create(600, [](v1::Job& j) { SetRetry(j, 3, 10); });
  fake_.FailNext(1, v1::ERROR_CLASS_PERMANENT);
  At(kStart);
  At(kStart + absl::Seconds(60));
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::FAILED);
  EXPECT_EQ(r.error_class(), v1::ERROR_CLASS_PERMANENT);
  ASSERT_EQ(r.attempts_size(), 1);
  EXPECT_EQ(fake_.starts().size(), 1u);
}

TEST_F(RunEngineTest, NeedsAttentionAndUnclassedStartErrorsAreNotRetried) {
  StartEngine();
  v1::Job job = Create(600, [](v1::Job& j) { SetRetry(j, 3, 10); });
  // A start() error without a class (a 1.0 provider's) reads as PERMANENT.
  fake_.FailNextStartCalls({absl::UnavailableError("down")});
  At(kStart);
  At(kStart + absl::Seconds(60));
  EXPECT_EQ(Get(job.job_id()).results(0).status(), v1::JobResult::FAILED);
  EXPECT_EQ(Get(job.job_id()).results(0).error_class(), v1::ERROR_CLASS_PERMANENT);
  fake_.FailNext(1, v1::ERROR_CLASS_NEEDS_ATTENTION);
  At(kStart + absl::Seconds(600));
  At(kStart + absl::Seconds(660));
  EXPECT_EQ(Get(job.job_id()).results(0).error_class(), v1::ERROR_CLASS_NEEDS_ATTENTION);
  EXPECT_EQ(fake_.starts().size(), 2u);
}

TEST_F(RunEngineTest, ATransientStartErrorIsRetried) {
  StartEngine();
  v1::Job job = Create(600, [](v1::Job& j) { SetRetry(j, 2, 5); });
  fake_.FailNextStartCalls(
      {WithErrorClass(absl::UnavailableError("refused"), v1::ERROR_CLASS_TRANSIENT)});
  At(kStart);
  EXPECT_EQ(Get(job.job_id()).results(0).status(), v1::JobResult::PENDING);
  At(kStart + absl::Seconds(5));
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::SUCCEEDED);
  ASSERT_EQ(r.attempts_size(), 2);
  EXPECT_EQ(r.attempts(0).error(), "refused");
}

TEST_F(RunEngineTest, RetriesBackOffAndStopAtHalfTheInterval) {
  StartEngine();
  // Half of 60 s is the bound: tries at 0, 10 and 30 s; the next (70 s)
  // would pass it.
  v1::Job job = Create(60, [](v1::Job& j) { SetRetry(j, 10, 10); });
  fake_.FailNext(10, v1::ERROR_CLASS_TRANSIENT);
  At(kStart);
  EXPECT_EQ(FromProto(Get(job.job_id()).results(0).next_attempt_time()),
            kStart + absl::Seconds(10));
  At(kStart + absl::Seconds(10));
  EXPECT_EQ(FromProto(Get(job.job_id()).results(0).next_attempt_time()),
            kStart + absl::Seconds(30));
  At(kStart + absl::Seconds(30));
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::FAILED);
  // The last attempt's error, and why no fourth.
  EXPECT_EQ(r.error(),
            "it broke (attempt 3) (not tried again: attempt 4 of 10 would start past the "
            "schedule's bound: half the interval, at most 45m, before the next run)");
  EXPECT_EQ(r.error_class(), v1::ERROR_CLASS_TRANSIENT);
  EXPECT_EQ(r.attempts_size(), 3);
  EXPECT_EQ(Get(job.job_id()).n_errors(), 1);
  EXPECT_EQ(fake_.starts().size(), 3u);
  At(kStart + absl::Seconds(59));
  EXPECT_EQ(fake_.starts().size(), 3u);
  At(kStart + absl::Seconds(60));  // The grid goes on: run 2.
  EXPECT_EQ(fake_.starts().back(), job.job_id() + "/2");
}

TEST_F(RunEngineTest, AnUnchosenFirstWaitFitsAShortInterval) {
  StartEngine();
  // Every 6 s, 3 attempts, no backoff given: 10 s would pass the 3 s bound
  // and leave no retry; the first wait is 3 s / (2 x 3) = 500 ms instead,
  // the second 1 s: both attempts fit.
  v1::Job job =
      Create(6, [](v1::Job& j) { j.mutable_retry_policy()->set_max_attempts(3); });
  fake_.FailNext(2, v1::ERROR_CLASS_TRANSIENT);
  At(kStart);
  EXPECT_EQ(FromProto(Get(job.job_id()).results(0).next_attempt_time()),
            kStart + absl::Milliseconds(500));
  At(kStart + absl::Milliseconds(500));
  EXPECT_EQ(FromProto(Get(job.job_id()).results(0).next_attempt_time()),
            kStart + absl::Milliseconds(1500));
  At(kStart + absl::Milliseconds(1500));
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::SUCCEEDED);
  EXPECT_EQ(r.attempts_size(), 3);
  // A chosen first wait is kept (validation refuses one past the bound).
  EXPECT_EQ(EffectiveRetry(Get(job.job_id()), v1::RetryPolicy()).initial_backoff,
            absl::Milliseconds(500));
  v1::Job chosen = Get(job.job_id());
  chosen.mutable_retry_policy()->mutable_initial_backoff()->set_seconds(2);
  EXPECT_EQ(EffectiveRetry(chosen, v1::RetryPolicy()).initial_backoff, absl::Seconds(2));
}

TEST_F(RunEngineTest, RetriesStopAt45MinutesForLongIntervals) {
  StartEngine();
  // Every 10 minutes (multiplier 1): 0, 10, 20, 30, 40; 50 is past 45.
  v1::Job job = Create(86400, [](v1::Job& j) { SetRetry(j, 10, 600, 1); });
  fake_.FailNext(10, v1::ERROR_CLASS_TRANSIENT);
  for (int m = 0; m <= 60; m += 10) At(kStart + absl::Minutes(m));
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::FAILED);
  EXPECT_EQ(r.attempts_size(), 5);
  EXPECT_EQ(fake_.starts().size(), 5u);
}

TEST_F(RunEngineTest, CronRetriesStopAtHalfTheGapToTheNextSlot) {
  StartEngine();
  // Every 10 minutes: the bound is 5 minutes; tries at 0, 2 and 4.
  v1::Job job = Create(60, [](v1::Job& j) {
    j.mutable_schedule()->set_cron("*/10 * * * *");
    SetRetry(j, 10, 120, 1);
  });
  fake_.FailNext(10, v1::ERROR_CLASS_TRANSIENT);
  for (int m = 0; m <= 8; m += 2) At(kStart + absl::Minutes(m));
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::FAILED);
  EXPECT_EQ(r.attempts_size(), 3);
}

TEST_F(RunEngineTest, BackoffGrowsByTheMultiplierUpToItsMaximum) {
  RetrySettings s;
  s.max_attempts = 10;
  s.initial_backoff = absl::Seconds(10);
  s.multiplier = 2;
  s.max_backoff = absl::Seconds(35);
  EXPECT_EQ(Backoff(s, 1), absl::Seconds(10));
  EXPECT_EQ(Backoff(s, 2), absl::Seconds(20));
  EXPECT_EQ(Backoff(s, 3), absl::Seconds(35));
  EXPECT_EQ(Backoff(s, 9), absl::Seconds(35));
  // Unset fields take the defaults; a job without a policy takes the
  // server's default, which is none unless set.
  v1::Job job;
  EXPECT_EQ(EffectiveRetry(job, v1::RetryPolicy()).max_attempts, 1);
  v1::RetryPolicy server;
  server.set_max_attempts(3);
  RetrySettings d = EffectiveRetry(job, server);
  EXPECT_EQ(d.max_attempts, 3);
  EXPECT_EQ(d.initial_backoff, kDefaultInitialBackoff);
  EXPECT_EQ(d.multiplier, kDefaultMultiplier);
  EXPECT_EQ(d.max_backoff, kDefaultMaxBackoff);
}

TEST_F(RunEngineTest, TheServersDefaultPolicyAppliesToJobsWithoutOne) {
  StartEngine([](RunEngine::Options& o) {
    o.default_retry.set_max_attempts(2);
    o.default_retry.mutable_initial_backoff()->set_seconds(5);
  });
  v1::Job job = Create(600);
  fake_.FailNext(1, v1::ERROR_CLASS_TRANSIENT);
  At(kStart);
  At(kStart + absl::Seconds(5));
  EXPECT_EQ(Get(job.job_id()).results(0).status(), v1::JobResult::SUCCEEDED);
  EXPECT_EQ(fake_.starts().size(), 2u);
}

TEST_F(RunEngineTest, ARetryOfAPolledRunUsesTheSameKeyAndTheTimeoutPerAttempt) {
  fake_.set_instant(false);
  StartEngine();
  v1::Job job = Create(3600, [](v1::Job& j) { SetRetry(j, 2, 30); });
  At(kStart);
  fake_.FailAllAs(v1::ERROR_CLASS_TRANSIENT);
  Poll();
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::PENDING);
  EXPECT_EQ(FromProto(r.next_attempt_time()), kStart + absl::Seconds(31));
  At(kStart + absl::Seconds(31));
  EXPECT_EQ(Get(job.job_id()).results(0).status(), v1::JobResult::ACTIVE);
  EXPECT_EQ(Get(job.job_id()).results(0).attempts_size(), 2);
  fake_.EndAll(State::kSucceeded);
  Poll();
  r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::SUCCEEDED);
  EXPECT_EQ(r.attempts_size(), 2);
  EXPECT_THAT(fake_.starts(), ElementsAre(job.job_id() + "/1", job.job_id() + "/1"));
}

TEST_F(RunEngineTest, ACrashBetweenAttemptsNeitherLosesNorRepeatsOne) {
  StartEngine();
  v1::Job job = Create(600, [](v1::Job& j) { SetRetry(j, 3, 10); });
  fake_.FailNext(1, v1::ERROR_CLASS_TRANSIENT);
  At(kStart + absl::Seconds(1));  // Started at 1 s: the retry is due at 11 s.
  ASSERT_EQ(Get(job.job_id()).results(0).status(), v1::JobResult::PENDING);
  // A new engine on the same store (the old one's waiting retry stays in
  // the store only).
  engine_->Stop();
  clock_.Set(kStart + absl::Seconds(5));
  StartEngine();
  engine_->WaitIdle();
  EXPECT_EQ(engine_->retry_waiting(), 1);
  EXPECT_EQ(fake_.starts().size(), 1u);
  At(kStart + absl::Seconds(10));
  EXPECT_EQ(fake_.starts().size(), 1u);
  At(kStart + absl::Seconds(11));
  EXPECT_EQ(fake_.starts().size(), 2u);
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::SUCCEEDED);
  EXPECT_EQ(r.attempts_size(), 2);
  // Once more: nothing is left to make.
  engine_->Stop();
  StartEngine();
  At(kStart + absl::Seconds(30));
  EXPECT_EQ(fake_.starts().size(), 2u);
}

TEST_F(RunEngineTest, ACrashDuringARetryAttemptFollowsThePendingRule) {
  v1::Job job = Create(600, [](v1::Job& j) { SetRetry(j, 3, 10); });
  // What a crash after a retry's attempt was recorded, before its provider
  // answered, leaves behind: PENDING, no retry due.
  store_.WriteJobState(
      job.job_id(),
      [](v1::Job& j, std::vector<v1::JobResult>& table) {
        v1::JobResult r;
        r.set_run_number(1);
        r.set_status(v1::JobResult::PENDING);
        *r.mutable_scheduled_time() = ToProto(kStart);
        *r.mutable_start_time() = ToProto(kStart);
        v1::RunAttempt* a = r.add_attempts();
        a->set_attempt(1);
        *a->mutable_start_time() = ToProto(kStart);
        *a->mutable_end_time() = ToProto(kStart);
        a->set_error_class(v1::ERROR_CLASS_TRANSIENT);
        a = r.add_attempts();
        a->set_attempt(2);
        *a->mutable_start_time() = ToProto(kStart + absl::Seconds(10));
        j.set_last_run_number(1);
        j.set_n_runs(1);
        *j.mutable_next_run() = ToProto(kStart + absl::Seconds(600));
        table.push_back(r);
        return absl::OkStatus();
      },
      [](absl::StatusOr<v1::Job>) {});
  clock_.Set(kStart + absl::Seconds(12));
  StartEngine();
  engine_->WaitIdle();
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::UNKNOWN);
  EXPECT_TRUE(fake_.starts().empty());
}

TEST_F(RunEngineTest, AWaitingRetryPastItsBoundAfterDowntimeIsNotMade) {
  StartEngine();
  v1::Job job = Create(60, [](v1::Job& j) { SetRetry(j, 3, 10); });
  fake_.FailNext(1, v1::ERROR_CLASS_TRANSIENT);
  At(kStart);
  engine_->Stop();
  clock_.Set(kStart + absl::Seconds(45));  // Past the 30 s bound.
  StartEngine();
  engine_->WaitIdle();
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::FAILED);
  EXPECT_THAT(r.error(), ::testing::HasSubstr("not tried again"));
  EXPECT_EQ(fake_.starts().size(), 1u);
}

TEST_F(RunEngineTest, AWaitingRetryCountsAsTheJobsActiveRun) {
  StartEngine();
  v1::Job job = Create(600, [](v1::Job& j) { SetRetry(j, 3, 10); });
  fake_.FailNext(1, v1::ERROR_CLASS_TRANSIENT);
  At(kStart);
  // Under SKIP a run-now finds the waiting run active.
  EXPECT_EQ(RunNow(job.job_id()).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RunEngineTest, PausingEndsAWaitingRetryFailed) {
  StartEngine();
  v1::Job job = Create(600, [](v1::Job& j) { SetRetry(j, 3, 10); });
  fake_.FailNext(1, v1::ERROR_CLASS_TRANSIENT);
  At(kStart);
  v1::PauseJobRequest pause;
  pause.set_job_id(job.job_id());
  ASSERT_TRUE(Call(&JobService::PauseJob, pause).ok());
  At(kStart + absl::Seconds(1));
  v1::JobResult r = Get(job.job_id()).results(0);
  EXPECT_EQ(r.status(), v1::JobResult::FAILED);
  EXPECT_THAT(r.error(), ::testing::HasSubstr("the job was paused"));
  At(kStart + absl::Seconds(20));
  EXPECT_EQ(fake_.starts().size(), 1u);
  EXPECT_EQ(engine_->retry_waiting(), 0);
  EXPECT_EQ(engine_->active_runs(), 0);
}

TEST_F(RunEngineTest, WaitingRetriesAreBoundedPerIdentity) {
  StartEngine([](RunEngine::Options& o) { o.max_retry_waiting_per_identity = 1; });
  v1::Job a = Create(600, [](v1::Job& j) { SetRetry(j, 3, 10); });
  v1::Job b = Create(600, [](v1::Job& j) { SetRetry(j, 3, 10); });
  fake_.FailNext(2, v1::ERROR_CLASS_TRANSIENT);
  At(kStart);
  EXPECT_EQ(engine_->retry_waiting(), 1);
  std::vector<v1::JobResult::Status> statuses = {Get(a.job_id()).results(0).status(),
                                                 Get(b.job_id()).results(0).status()};
  EXPECT_THAT(statuses, ::testing::UnorderedElementsAre(v1::JobResult::PENDING,
                                                        v1::JobResult::FAILED));
  const v1::JobResult failed = statuses[0] == v1::JobResult::FAILED
                                   ? Get(a.job_id()).results(0)
                                   : Get(b.job_id()).results(0);
  EXPECT_THAT(failed.error(), ::testing::HasSubstr("max_retry_waiting_per_identity"));
}

// What watchers see: RUN_RETRYING with the attempts and the next attempt's
// time, then RUN_FINISHED; a pause after failures is a PAUSED event with
// the job's inactive_reason.
class RecordingSink : public EventSink {
 public:
  void Publish(v1::JobEvent::Type type, const v1::Job& job,
               const v1::JobResult* result) override {
    absl::MutexLock lock(&mu_);
    v1::JobEvent e;
    e.set_type(type);
    *e.mutable_job() = job;
    if (result != nullptr) *e.mutable_result() = *result;
    events_.push_back(std::move(e));
  }
  std::vector<v1::JobEvent> events() const {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<v1::JobEvent> events_ ABSL_GUARDED_BY(mu_);
};

TEST_F(RunEngineTest, WatchersSeeRetryingThenFinishedAndAPauseWithItsReason) {
  RecordingSink sink;
  engine_ = std::make_unique<RunEngine>(&store_, &clock_, &registry_, [] {
    RunEngine::Options o;
    o.background = false;
    o.workers = 2;
    o.poll_min = o.poll_max = absl::Seconds(1);
    return o;
  }());
  engine_->set_events(&sink);
  jobs_.set_observer(engine_.get());
  ASSERT_TRUE(engine_->Start().ok());
  v1::Job job = Create(600, [](v1::Job& j) {
    SetRetry(j, 2, 10);
    j.set_pause_after_failures(1);
  });
  fake_.FailNext(2, v1::ERROR_CLASS_TRANSIENT);
  At(kStart);
  At(kStart + absl::Seconds(10));
  std::vector<v1::JobEvent::Type> types;
  const v1::JobEvent* retrying = nullptr;
  const v1::JobEvent* paused = nullptr;
  const std::vector<v1::JobEvent> events = sink.events();
  for (const v1::JobEvent& e : events) {
    types.push_back(e.type());
    if (e.type() == v1::JobEvent::RUN_RETRYING) retrying = &e;
    if (e.type() == v1::JobEvent::PAUSED) paused = &e;
  }
  EXPECT_THAT(types, ElementsAre(v1::JobEvent::RUN_STARTED, v1::JobEvent::RUN_RETRYING,
                                 v1::JobEvent::RUN_STARTED, v1::JobEvent::RUN_FINISHED,
                                 v1::JobEvent::PAUSED));
  ASSERT_NE(retrying, nullptr);
  EXPECT_EQ(retrying->result().attempts_size(), 1);
  EXPECT_EQ(FromProto(retrying->result().next_attempt_time()),
            kStart + absl::Seconds(10));
  ASSERT_NE(paused, nullptr);
  EXPECT_EQ(paused->job().inactive_reason().cause(),
            v1::InactiveReason::CONSECUTIVE_FAILURES);
  EXPECT_EQ(Get(job.job_id()).status(), v1::Job::PAUSED);
}

TEST_F(RunEngineTest, ThreeConsecutiveFailuresPauseTheJobWithItsReason) {
  StartEngine();
  v1::Job job = Create(10, [](v1::Job& j) { j.set_pause_after_failures(3); });
  fake_.FailNext(2, v1::ERROR_CLASS_PERMANENT);
  At(kStart);
  At(kStart + absl::Seconds(10));
  EXPECT_EQ(Get(job.job_id()).consecutive_failures(), 2);
  At(kStart + absl::Seconds(20));  // A success resets the count.
  EXPECT_EQ(Get(job.job_id()).consecutive_failures(), 0);
  fake_.FailNext(3, v1::ERROR_CLASS_PERMANENT);
  At(kStart + absl::Seconds(30));
  At(kStart + absl::Seconds(40));
  EXPECT_EQ(Get(job.job_id()).status(), v1::Job::LOADED);
  At(kStart + absl::Seconds(50));
  v1::Job paused = Get(job.job_id());
  EXPECT_EQ(paused.status(), v1::Job::PAUSED);
  EXPECT_EQ(paused.consecutive_failures(), 3);
  EXPECT_EQ(paused.inactive_reason().cause(), v1::InactiveReason::CONSECUTIVE_FAILURES);
  EXPECT_EQ(paused.inactive_reason().detail(),
            "3 consecutive runs failed; last: it broke (attempt 6)");
  EXPECT_FALSE(paused.has_next_run());
  At(kStart + absl::Seconds(60));
  At(kStart + absl::Seconds(70));
  EXPECT_EQ(fake_.starts().size(), 6u);

  clock_.Set(kStart + absl::Seconds(73));
  v1::ResumeJobRequest resume;
  resume.set_job_id(job.job_id());
  absl::StatusOr<v1::Job> resumed = Call(&JobService::ResumeJob, resume);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->consecutive_failures(), 0);
  EXPECT_FALSE(resumed->has_inactive_reason());
  At(kStart + absl::Seconds(80));
  EXPECT_EQ(fake_.starts().size(), 7u);
}

TEST_F(RunEngineTest, APauseAfterARunWasRecordedSkipsItAtItsSlot) {
  StartEngine([](RunEngine::Options& o) { o.lookahead = absl::Milliseconds(500); });
  v1::Job paused = Create(10);
  v1::Job deleted = Create(10);
  At(Slot(0, 10) - absl::Milliseconds(200));  // Both runs recorded ahead.
  ASSERT_EQ(AllResults(paused.job_id()).size(), 1u);
  EXPECT_EQ(AllResults(paused.job_id())[0].status(), v1::JobResult::PENDING);
  v1::PauseJobRequest pause;
  pause.set_job_id(paused.job_id());
  ASSERT_TRUE(Call(&JobService::PauseJob, pause).ok());
  v1::DeleteJobRequest del;
  del.set_job_id(deleted.job_id());
  ASSERT_TRUE(Call(&JobService::DeleteJob, del).ok());

  At(Slot(0, 10));
  EXPECT_TRUE(fake_.starts().empty());
  for (const v1::Job& job : {paused, deleted}) {
    std::vector<v1::JobResult> results = AllResults(job.job_id());
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].status(), v1::JobResult::SKIPPED);
    EXPECT_EQ(FromProto(results[0].scheduled_time()), Slot(0, 10));
    const v1::Job now = Get(job.job_id());
    EXPECT_EQ(now.n_runs(), 0);
    EXPECT_EQ(now.n_skipped(), 1);
  }
  EXPECT_NE(AllResults(paused.job_id())[0].error().find("paused"), std::string::npos);
  EXPECT_NE(AllResults(deleted.job_id())[0].error().find("deleted"), std::string::npos);
  EXPECT_EQ(engine_->active_runs(), 0);
}

TEST_F(RunEngineTest, ARunRecordedAheadStartsAtItsSlotNotBefore) {
  StartEngine([](RunEngine::Options& o) { o.lookahead = absl::Milliseconds(500); });
  v1::Job job = Create(10);
  At(Slot(0, 10) - absl::Milliseconds(200));
  EXPECT_TRUE(fake_.starts().empty());
  At(Slot(0, 10));
  EXPECT_EQ(fake_.starts().size(), 1u);
  EXPECT_EQ(Get(job.job_id()).n_runs(), 1);
}

TEST_F(RunEngineTest, DeletedAndPausedJobsDoNotFire) {
  StartEngine();
  v1::Job a = Create(10);
  v1::Job b = Create(10);
  v1::DeleteJobRequest del;
  del.set_job_id(a.job_id());
  ASSERT_TRUE(Call(&JobService::DeleteJob, del).ok());
  v1::PauseJobRequest pause;
  pause.set_job_id(b.job_id());
  ASSERT_TRUE(Call(&JobService::PauseJob, pause).ok());
  for (int k = 0; k < 3; ++k) At(Slot(k, 10));
  EXPECT_TRUE(fake_.starts().empty());
  EXPECT_EQ(engine_->queued_jobs(), 0u);
}

TEST_F(RunEngineTest, UpdatingTheIntervalMovesTheNextRunOntoTheNewGrid) {
  StartEngine();
  v1::Job job = Create(10);
  At(Slot(0, 10));
  clock_.Set(kStart + absl::Seconds(3));
  v1::UpdateJobRequest update;
  update.mutable_job()->set_job_id(job.job_id());
  update.mutable_job()->mutable_schedule()->set_interval_seconds(60);
  update.mutable_update_mask()->add_paths("schedule.interval_seconds");
  absl::StatusOr<v1::Job> updated = Call(&JobService::UpdateJob, update);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(FromProto(updated->next_run()), kStart + absl::Seconds(60));
  At(kStart + absl::Seconds(10));
  EXPECT_EQ(fake_.starts().size(), 1u);
  At(kStart + absl::Seconds(60));
  EXPECT_EQ(fake_.starts().size(), 2u);
  EXPECT_EQ(Get(job.job_id()).status(), v1::Job::LOADED);
}

TEST_F(RunEngineTest, UpdateRejectsBadInputAndUnknownPathsWithoutWriting) {
  StartEngine();
  v1::Job job = Create(10);
  const std::string etag = Get(job.job_id()).etag();
  v1::UpdateJobRequest update;
  update.mutable_job()->set_job_id(job.job_id());
  update.mutable_job()->mutable_schedule()->set_interval_seconds(0);
  update.mutable_update_mask()->add_paths("schedule.interval_seconds");
  absl::StatusOr<v1::Job> r = Call(&JobService::UpdateJob, update);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::StartsWith("job.schedule.interval_seconds"));

  update.mutable_update_mask()->set_paths(0, "owner");
  r = Call(&JobService::UpdateJob, update);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), ::testing::StartsWith("update_mask"));

  update.mutable_update_mask()->set_paths(0, "action.body");
  update.mutable_job()->mutable_action()->set_body(R"({"bad": 1})");
  r = Call(&JobService::UpdateJob, update);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              ::testing::StartsWith("job.action.body"));

  update.mutable_job()->mutable_action()->set_body(R"({"good": 1})");
  update.mutable_job()->set_etag("stale");
  r = Call(&JobService::UpdateJob, update);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Get(job.job_id()).etag(), etag);  // Nothing was written.
}

TEST_F(RunEngineTest, UnknownProviderOrBadBodyNeverBecomesAJob) {
  StartEngine();
  v1::CreateJobRequest req;
  req.mutable_job()->mutable_schedule()->set_interval_seconds(10);
  req.mutable_job()->mutable_action()->set_provider("nope");
  req.mutable_job()->mutable_action()->set_body("{}");
  absl::Status status;
  jobs_.CreateJob(kAlice, req, [&](absl::StatusOr<v1::Job> j) { status = j.status(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              ::testing::StartsWith("job.action.provider"));
  req.mutable_job()->mutable_action()->set_provider("fake");
  req.mutable_job()->mutable_action()->set_body(R"({"bad": true})");
  jobs_.CreateJob(kAlice, req, [&](absl::StatusOr<v1::Job> j) { status = j.status(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), ::testing::StartsWith("job.action.body"));
  EXPECT_EQ(store_.size(), 0u);
}

TEST_F(RunEngineTest, ResultsPageNewestFirst) {
  StartEngine();
  v1::Job job = Create(1);
  for (int k = 0; k < 25; ++k) At(Slot(k, 1));
  v1::ListJobResultsRequest req;
  req.set_job_id(job.job_id());
  req.set_page_size(10);
  std::vector<int64_t> numbers;
  do {
    auto page = jobs_.ListJobResults(kAlice, req).value();
    for (const auto& r : page.results()) numbers.push_back(r.run_number());
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  ASSERT_EQ(numbers.size(), 25u);
  for (int i = 0; i < 25; ++i) EXPECT_EQ(numbers[i], 25 - i);
  EXPECT_EQ(Get(job.job_id()).results_size(), 10);  // The last 10 inline.
}

TEST_F(RunEngineTest, RetentionKeepsTheNewestResultsAndDropsOldOnes) {
  StartEngine([](RunEngine::Options& o) {
    o.keep_results = 5;
    o.keep_results_for = absl::Hours(1);
  });
  v1::Job job = Create(1);
  for (int k = 0; k < 12; ++k) At(Slot(k, 1));
  ASSERT_EQ(AllResults(job.job_id()).size(), 12u);
  EXPECT_EQ(engine_->PruneResults().value(), 7);
  std::vector<v1::JobResult> kept = AllResults(job.job_id());
  ASSERT_EQ(kept.size(), 5u);
  EXPECT_EQ(kept[0].run_number(), 12);
  EXPECT_EQ(kept[4].run_number(), 8);
  clock_.Set(kStart + absl::Hours(2));
  EXPECT_EQ(engine_->PruneResults().value(), 5);
  EXPECT_TRUE(AllResults(job.job_id()).empty());
  EXPECT_EQ(Get(job.job_id()).n_runs(), 12);  // The counts stay.
}

// ---------------------------------------------------------------------------
// Manual runs (RunJobNow): the job's state, its overlap policy, the
// active-run limits; delete and pause of a job with active runs; the purge of
// deleted jobs.

absl::StatusCode CodeOf(const absl::StatusOr<v1::Job>& r) { return r.status().code(); }

// A job whose first slot is a day away: only manual runs happen in the test.
void Idle(v1::Job& job) {
  *job.mutable_schedule()->mutable_start() = ToProto(kStart + absl::Hours(24));
}

TEST_F(RunEngineTest, RunNowOfAnEndedJobIsFailedPrecondition) {
  StartEngine();
  v1::Job job =
      Create(10, [](v1::Job& j) { j.mutable_schedule()->set_stop_after_runs(1); });
  At(Slot(0, 10));
  ASSERT_EQ(Get(job.job_id()).status(), v1::Job::ENDED);
  absl::StatusOr<v1::Job> ran = RunNow(job.job_id());
  EXPECT_EQ(CodeOf(ran), absl::StatusCode::kFailedPrecondition) << ran.status();
  EXPECT_THAT(ran.status().message(), ::testing::HasSubstr("ended"));
  EXPECT_EQ(fake_.starts().size(), 1u);
  EXPECT_EQ(Get(job.job_id()).n_runs(), 1);
}

TEST_F(RunEngineTest, RunNowOfAPausedJobRunsOnceAndTheJobStaysPaused) {
  StartEngine();
  v1::Job job = Create(10);
  v1::PauseJobRequest pause;
  pause.set_job_id(job.job_id());
  ASSERT_TRUE(Call(&JobService::PauseJob, pause).ok());
  ASSERT_TRUE(RunNow(job.job_id()).ok());
  EXPECT_EQ(fake_.starts().size(), 1u);
  At(Slot(0, 10));
  At(Slot(1, 10));
  EXPECT_EQ(fake_.starts().size(), 1u);
  EXPECT_EQ(Get(job.job_id()).status(), v1::Job::PAUSED);
}

TEST_F(RunEngineTest, RunNowWhileARunIsActiveIsRefusedUnderSkip) {
  StartEngine();
  fake_.set_instant(false);
  v1::Job job = Create(3600, Idle);  // overlap_policy SKIP by default.
  ASSERT_TRUE(RunNow(job.job_id()).ok());
  absl::StatusOr<v1::Job> again = RunNow(job.job_id());
  EXPECT_EQ(CodeOf(again), absl::StatusCode::kFailedPrecondition) << again.status();
  EXPECT_THAT(again.status().message(), ::testing::HasSubstr("overlap_policy SKIP"));
  EXPECT_EQ(fake_.starts().size(), 1u);
  EXPECT_EQ(Get(job.job_id()).n_runs(), 1);  // Nothing recorded for it.
  fake_.EndAll(State::kSucceeded);
  Poll();
  EXPECT_TRUE(RunNow(job.job_id()).ok());
  EXPECT_EQ(fake_.starts().size(), 2u);
}

TEST_F(RunEngineTest, RunNowBeyondMaxConcurrentIsResourceExhaustedNamingIt) {
  StartEngine();
  fake_.set_instant(false);
  v1::Job job = Create(3600, [](v1::Job& j) {
    Idle(j);
    j.set_overlap_policy(v1::ALLOW);
    j.set_max_concurrent(2);
  });
  ASSERT_TRUE(RunNow(job.job_id()).ok());
  ASSERT_TRUE(RunNow(job.job_id()).ok());
  absl::StatusOr<v1::Job> third = RunNow(job.job_id());
  EXPECT_EQ(CodeOf(third), absl::StatusCode::kResourceExhausted) << third.status();
  EXPECT_THAT(third.status().message(), ::testing::HasSubstr("max_concurrent (2)"));
  EXPECT_EQ(fake_.starts().size(), 2u);
}

TEST_F(RunEngineTest, RunNowUnderBufferOneWaitsForTheActiveRunAndOneMoreIsRefused) {
  StartEngine();
  fake_.set_instant(false);
  v1::Job job = Create(3600, [](v1::Job& j) {
    Idle(j);
    j.set_overlap_policy(v1::BUFFER_ONE);
  });
  ASSERT_TRUE(RunNow(job.job_id()).ok());
  ASSERT_TRUE(RunNow(job.job_id()).ok());  // Recorded, waiting.
  EXPECT_EQ(CodeOf(RunNow(job.job_id())), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(fake_.starts().size(), 1u);
  fake_.EndAll(State::kSucceeded);
  Poll();
  EXPECT_EQ(fake_.starts().size(), 2u);  // The waiting one started.
}

TEST_F(RunEngineTest, RunNowUnderCancelPreviousCancelsTheActiveRun) {
  StartEngine();
  fake_.set_instant(false);
  v1::Job job = Create(3600, [](v1::Job& j) {
    Idle(j);
    j.set_overlap_policy(v1::CANCEL_PREVIOUS);
  });
  ASSERT_TRUE(RunNow(job.job_id()).ok());
  ASSERT_TRUE(RunNow(job.job_id()).ok());
  EXPECT_THAT(fake_.cancels(), ElementsAre("a-1"));
  EXPECT_EQ(fake_.starts().size(), 2u);
}

// H6: manual runs were not counted against max_active_runs: a flood of them
// held every slot and stopped every tenant's scheduled jobs.
TEST_F(RunEngineTest, ManualRunsStopAtTheIdentitysShareAndScheduledJobsStillFire) {
  StartEngine([](RunEngine::Options& o) {
    o.max_active_runs = 10;
    o.max_active_runs_per_identity = 4;
  });
  fake_.set_instant(false);
  v1::Job flood = Create(3600, [](v1::Job& j) {
    Idle(j);
    j.set_overlap_policy(v1::ALLOW);
    j.set_max_concurrent(100);
  });
  int started = 0;
  absl::Status refused;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<v1::Job> r = RunNow(flood.job_id());
    if (r.ok()) {
      ++started;
    } else {
      refused = r.status();
    }
  }
  EXPECT_EQ(started, 4);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("max_active_runs_per_identity"));
  EXPECT_EQ(engine_->active_runs(), 4);

  // Another tenant's scheduled job fires on time.
  const Identity bob{"bob", "token"};
  v1::CreateJobRequest req;
  *req.mutable_job()->mutable_schedule()->mutable_start() = ToProto(Slot(1, 10));
  req.mutable_job()->mutable_schedule()->set_interval_seconds(10);
  req.mutable_job()->mutable_action()->set_provider("fake");
  req.mutable_job()->mutable_action()->set_body("{}");
  absl::StatusOr<v1::Job> bobs = CallAs(bob, &JobService::CreateJob, req);
  ASSERT_TRUE(bobs.ok()) << bobs.status();
  At(Slot(1, 10));
  EXPECT_EQ(fake_.starts().size(), 5u);
  EXPECT_EQ(fake_.owners().back(), "bob");
}

TEST_F(RunEngineTest, RunNowBeyondMaxActiveRunsIsResourceExhaustedNamingIt) {
  StartEngine([](RunEngine::Options& o) {
    o.max_active_runs = 3;
    o.max_active_runs_per_identity = 2;
  });
  fake_.set_instant(false);
  const auto allow = [](v1::Job& j) {
    Idle(j);
    j.set_overlap_policy(v1::ALLOW);
    j.set_max_concurrent(10);
  };
  v1::Job mine = Create(3600, allow);
  ASSERT_TRUE(RunNow(mine.job_id()).ok());
  ASSERT_TRUE(RunNow(mine.job_id()).ok());
  const Identity bob{"bob", "token"};
  v1::CreateJobRequest req;
  Idle(*req.mutable_job());
  req.mutable_job()->mutable_schedule()->set_interval_seconds(3600);
  req.mutable_job()->set_overlap_policy(v1::ALLOW);
  req.mutable_job()->set_max_concurrent(10);
  req.mutable_job()->mutable_action()->set_provider("fake");
  req.mutable_job()->mutable_action()->set_body("{}");
  absl::StatusOr<v1::Job> bobs = CallAs(bob, &JobService::CreateJob, req);
  ASSERT_TRUE(bobs.ok());
  ASSERT_TRUE(RunNow(bobs->job_id(), "", bob).ok());
  absl::StatusOr<v1::Job> full = RunNow(bobs->job_id(), "", bob);
  EXPECT_EQ(CodeOf(full), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), ::testing::HasSubstr("max_active_runs: 3"));
  // Once runs end there is room again.
  fake_.EndAll(State::kSucceeded);
  Poll();
  EXPECT_TRUE(RunNow(bobs->job_id(), "", bob).ok());
}

TEST_F(RunEngineTest, RunNowBeyondTheRunNowRateIsResourceExhaustedNamingIt) {
  JobQuota quota(&store_, &clock_, {.run_now_rate = 1, .run_now_burst = 2});
  jobs_.set_quota(&quota);
  StartEngine();
  v1::Job job = Create(3600, Idle);
  ASSERT_TRUE(RunNow(job.job_id()).ok());
  ASSERT_TRUE(RunNow(job.job_id()).ok());
  absl::StatusOr<v1::Job> third = RunNow(job.job_id());
  EXPECT_EQ(CodeOf(third), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(),
              ::testing::HasSubstr("run_now_rate_per_identity"));
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(RunNow(job.job_id()).ok());
  EXPECT_EQ(fake_.starts().size(), 3u);
}

// M5: the request id was looked for among the newest 10 results only.
TEST_F(RunEngineTest, RunNowRetriedAfterElevenMoreRunsReturnsTheSameRun) {
  StartEngine();
  v1::Job job = Create(3600, Idle);
  ASSERT_TRUE(RunNow(job.job_id(), "click-0").ok());
  for (int i = 1; i <= 11; ++i) {
    ASSERT_TRUE(RunNow(job.job_id(), absl::StrCat("click-", i)).ok()) << i;
  }
  ASSERT_EQ(fake_.starts().size(), 12u);
  absl::StatusOr<v1::Job> retried = RunNow(job.job_id(), "click-0");
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(fake_.starts().size(), 12u);
  EXPECT_EQ(retried->last_run_number(), 12);
  EXPECT_EQ(AllResults(job.job_id()).size(), 12u);
}

TEST_F(RunEngineTest, ARetriedRunNowIsNotRefusedByItsOwnActiveRun) {
  StartEngine();
  fake_.set_instant(false);
  v1::Job job = Create(3600, Idle);  // SKIP: a second run would be refused.
  ASSERT_TRUE(RunNow(job.job_id(), "click").ok());
  EXPECT_TRUE(RunNow(job.job_id(), "click").ok());
  EXPECT_EQ(fake_.starts().size(), 1u);
}

TEST_F(RunEngineTest, DeletingAJobCancelsItsActiveRunsAndPausingLetsThemFinish) {
  StartEngine();
  fake_.set_instant(false);
  v1::Job paused = Create(3600, Idle);
  ASSERT_TRUE(RunNow(paused.job_id()).ok());  // a-1
  v1::PauseJobRequest pause;
  pause.set_job_id(paused.job_id());
  ASSERT_TRUE(Call(&JobService::PauseJob, pause).ok());
  EXPECT_TRUE(fake_.cancels().empty());

  v1::Job deleted = Create(3600, Idle);
  ASSERT_TRUE(RunNow(deleted.job_id()).ok());  // a-2
  v1::DeleteJobRequest del;
  del.set_job_id(deleted.job_id());
  ASSERT_TRUE(Call(&JobService::DeleteJob, del).ok());
  EXPECT_THAT(fake_.cancels(), ElementsAre("a-2"));
  Poll();
  EXPECT_EQ(AllResults(deleted.job_id())[0].status(), v1::JobResult::CANCELLED);
  EXPECT_EQ(AllResults(paused.job_id())[0].status(), v1::JobResult::ACTIVE);
  fake_.EndAll(State::kSucceeded);
  Poll();
  EXPECT_EQ(AllResults(paused.job_id())[0].status(), v1::JobResult::SUCCEEDED);
}

TEST_F(RunEngineTest, ARunWaitingUnderBufferOneIsSkippedWhenItsJobIsDeleted) {
  StartEngine();
  fake_.set_instant(false);
  v1::Job job = Create(3600, [](v1::Job& j) {
    Idle(j);
    j.set_overlap_policy(v1::BUFFER_ONE);
  });
  ASSERT_TRUE(RunNow(job.job_id()).ok());
  ASSERT_TRUE(RunNow(job.job_id()).ok());  // Waits.
  v1::DeleteJobRequest del;
  del.set_job_id(job.job_id());
  ASSERT_TRUE(Call(&JobService::DeleteJob, del).ok());
  fake_.EndAll(State::kSucceeded);
  Poll();
  EXPECT_EQ(fake_.starts().size(), 1u);
  const std::vector<v1::JobResult> results = AllResults(job.job_id());
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status(), v1::JobResult::SKIPPED);
  EXPECT_THAT(results[0].error(), ::testing::HasSubstr("deleted"));
}

// H5: deleted jobs were kept for ever.
TEST_F(RunEngineTest, ADeletedJobIsPurgedAfterTheRetentionAndItsRoomFreed) {
  JobQuota quota(&store_, &clock_, {.max_stored_jobs = 1});
  jobs_.set_quota(&quota);
  StartEngine(
      [](RunEngine::Options& o) { o.purge_deleted_after = absl::Hours(24 * 30); });
  engine_->set_quota(&quota);
  v1::Job job = Create(10);
  At(Slot(0, 10));
  v1::DeleteJobRequest del;
  del.set_job_id(job.job_id());
  ASSERT_TRUE(Call(&JobService::DeleteJob, del).ok());
  v1::CreateJobRequest another;
  another.mutable_job()->mutable_schedule()->set_interval_seconds(10);
  another.mutable_job()->mutable_action()->set_provider("fake");
  another.mutable_job()->mutable_action()->set_body("{}");
  EXPECT_EQ(CodeOf(CallAs(kAlice, &JobService::CreateJob, another)),
            absl::StatusCode::kResourceExhausted);

  // Results stay readable until the retention has passed.
  clock_.Set(Slot(0, 10) + absl::Hours(24 * 30) - absl::Seconds(1));
  EXPECT_EQ(engine_->PurgeDeleted().value(), 0);
  EXPECT_EQ(AllResults(job.job_id()).size(), 1u);
  EXPECT_EQ(Get(job.job_id()).status(), v1::Job::DELETED);

  clock_.Set(Slot(0, 10) + absl::Hours(24 * 30) + absl::Seconds(1));
  EXPECT_EQ(engine_->PurgeDeleted().value(), 1);
  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  get.set_show_deleted(true);
  EXPECT_TRUE(absl::IsNotFound(jobs_.GetJob(kAlice, get).status()));
  v1::ListJobResultsRequest results;
  results.set_job_id(job.job_id());
  EXPECT_TRUE(absl::IsNotFound(jobs_.ListJobResults(kAlice, results).status()));
  EXPECT_TRUE(CallAs(kAlice, &JobService::CreateJob, another).ok());
}

// ---------------------------------------------------------------------------
// BackfillJob: the runs of past slots wait in the engine and start as the
// job's overlap policy allows.

class BackfillEngineTest : public RunEngineTest {
 protected:
  // A daily job whose slots fall at noon-offset days before kStart (the
  // next one 12 h after it: no scheduled fire during a test).
  v1::Job CreatePast(const std::function<void(v1::Job&)>& edit = {}) {
    return Create(86400, [&](v1::Job& j) {
      *j.mutable_schedule()->mutable_start() =
          ToProto(kStart - absl::Hours(24 * 5) + absl::Hours(12));
      if (edit) edit(j);
    });
  }

  // Backfills [kStart - 4 d, kStart - 1 d): its slots at 3.5, 2.5 and 1.5
  // days before kStart.
  absl::StatusOr<v1::BackfillJobResponse> Backfill(const std::string& job_id,
                                                   int days = 3) {
    v1::BackfillJobRequest request;
    request.set_job_id(job_id);
    *request.mutable_start_time() = ToProto(kStart - absl::Hours(24 * 4));
    *request.mutable_end_time() = ToProto(kStart - absl::Hours(24 * (4 - days)));
    absl::StatusOr<v1::BackfillJobResponse> out = absl::UnknownError("not called");
    jobs_.BackfillJob(kAlice, request, [&](absl::StatusOr<v1::BackfillJobResponse> r) {
      out = std::move(r);
    });
    if (engine_) engine_->WaitIdle();
    return out;
  }

  static absl::Time BackfillSlot(int i) {
    return kStart - absl::Hours(24 * 4) + absl::Hours(12) + absl::Hours(24) * i;
  }
};

TEST_F(BackfillEngineTest, UnderSkipEachRunStartsOnlyAfterThePreviousEnded) {
  fake_.set_instant(false);
  StartEngine();
  const v1::Job job = CreatePast();
  absl::StatusOr<v1::BackfillJobResponse> r = Backfill(job.job_id());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->results_size(), 3);
  EXPECT_THAT(fake_.starts(), ElementsAre(job.job_id() + "/1"));
  EXPECT_EQ(engine_->backfill_waiting(), 2);
  Poll();  // Still active: the next waits.
  EXPECT_EQ(fake_.starts().size(), 1u);
  for (int run = 2; run <= 3; ++run) {
    fake_.EndAll(State::kSucceeded);
    Poll();  // The poll learns it ended; the next starts.
    EXPECT_EQ(fake_.starts().size(), static_cast<size_t>(run));
    EXPECT_EQ(fake_.starts().back(), absl::StrCat(job.job_id(), "/", run));
    EXPECT_EQ(engine_->active_runs(), 1);
  }
  fake_.EndAll(State::kSucceeded);
  Poll();
  EXPECT_EQ(engine_->active_runs(), 0);
  EXPECT_EQ(engine_->backfill_waiting(), 0);
  const std::vector<v1::JobResult> results = AllResults(job.job_id());
  ASSERT_EQ(results.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const v1::JobResult& run = results[2 - i];  // Newest first.
    EXPECT_EQ(run.status(), v1::JobResult::SUCCEEDED);
    EXPECT_TRUE(run.backfill());
    EXPECT_EQ(FromProto(run.scheduled_time()), BackfillSlot(i));
  }
  EXPECT_EQ(Get(job.job_id()).n_runs(), 0);  // Not runs of the grid.
}

TEST_F(BackfillEngineTest, UnderAllowUpToMaxConcurrentRunAtOnce) {
  fake_.set_instant(false);
  StartEngine();
  const v1::Job job = CreatePast([](v1::Job& j) {
    j.set_overlap_policy(v1::ALLOW);
    j.set_max_concurrent(2);
  });
  ASSERT_TRUE(Backfill(job.job_id()).ok());
  EXPECT_EQ(fake_.starts().size(), 2u);
  EXPECT_EQ(engine_->active_runs(), 2);
  fake_.EndAll(State::kSucceeded);
  Poll();
  EXPECT_EQ(fake_.starts().size(), 3u);
  EXPECT_EQ(fake_.starts().back(), job.job_id() + "/3");
  fake_.EndAll(State::kSucceeded);
  Poll();
  for (const v1::JobResult& run : AllResults(job.job_id())) {
    EXPECT_EQ(run.status(), v1::JobResult::SUCCEEDED);
  }
}

TEST_F(BackfillEngineTest, PausingRecordsTheRunsNotYetStartedSkipped) {
  fake_.set_instant(false);
  StartEngine();
  const v1::Job job = CreatePast();
  ASSERT_TRUE(Backfill(job.job_id()).ok());
  v1::PauseJobRequest pause;
  pause.set_job_id(job.job_id());
  ASSERT_TRUE(Call(&JobService::PauseJob, pause).ok());
  EXPECT_EQ(engine_->backfill_waiting(), 0);
  fake_.EndAll(State::kSucceeded);  // The one started finishes.
  Poll();
  EXPECT_EQ(fake_.starts().size(), 1u);
  EXPECT_TRUE(fake_.cancels().empty());
  const std::vector<v1::JobResult> results = AllResults(job.job_id());
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[2].status(), v1::JobResult::SUCCEEDED);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(results[i].status(), v1::JobResult::SKIPPED);
    EXPECT_TRUE(results[i].backfill());
    EXPECT_EQ(results[i].error(), "the job was paused before this backfill run started");
  }
}

TEST_F(BackfillEngineTest, DeletingCancelsTheActiveRunAndSkipsTheRest) {
  fake_.set_instant(false);
  StartEngine();
  const v1::Job job = CreatePast();
  ASSERT_TRUE(Backfill(job.job_id()).ok());
  v1::DeleteJobRequest del;
  del.set_job_id(job.job_id());
  ASSERT_TRUE(Call(&JobService::DeleteJob, del).ok());
  EXPECT_THAT(fake_.cancels(), ElementsAre("a-1"));
  Poll();
  EXPECT_EQ(fake_.starts().size(), 1u);
  const std::vector<v1::JobResult> results = AllResults(job.job_id());
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[2].status(), v1::JobResult::CANCELLED);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(results[i].status(), v1::JobResult::SKIPPED);
    EXPECT_THAT(results[i].error(), ::testing::HasSubstr("deleted before this backfill"));
  }
  EXPECT_EQ(engine_->active_runs(), 0);
  EXPECT_EQ(engine_->backfill_waiting(), 0);
}

TEST_F(BackfillEngineTest, AScheduledSlotWhileABackfillRunIsActiveIsSkippedUnderSkip) {
  fake_.set_instant(false);
  StartEngine();
  const v1::Job job = CreatePast();
  ASSERT_TRUE(Backfill(job.job_id(), 1).ok());
  At(kStart + absl::Hours(12));  // The grid's slot: the backfill run is active.
  const std::vector<v1::JobResult> results = AllResults(job.job_id());
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status(), v1::JobResult::SKIPPED);
  EXPECT_THAT(results[0].error(), ::testing::HasSubstr("still active"));
  EXPECT_EQ(fake_.starts().size(), 1u);
}

TEST_F(BackfillEngineTest, WaitingRunsAreBoundedAndMoreAreRefusedBeforeAnyWrite) {
  fake_.set_instant(false);
  StartEngine([](RunEngine::Options& o) { o.max_backfill_waiting = 4; });
  const v1::Job first = CreatePast();
  ASSERT_TRUE(Backfill(first.job_id()).ok());  // One starts, two wait.
  const v1::Job second = CreatePast();
  absl::StatusOr<v1::BackfillJobResponse> r = Backfill(second.job_id());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(), ::testing::HasSubstr("max_backfill_waiting: 2"));
  EXPECT_TRUE(AllResults(second.job_id()).empty());
  EXPECT_TRUE(Backfill(second.job_id(), 2).ok());  // 2 + 2 fit.
  EXPECT_EQ(engine_->backfill_waiting(), 3);       // Its first started.
}

TEST_F(BackfillEngineTest, RunsWaitingAtACrashBecomeUnknownAndNeverStart) {
  const v1::Job job = CreatePast();
  // No engine listening: the runs are recorded and nothing starts them,
  // as after a crash right after the write.
  ASSERT_TRUE(Backfill(job.job_id()).ok());
  StartEngine();
  engine_->WaitIdle();
  const std::vector<v1::JobResult> results = AllResults(job.job_id());
  ASSERT_EQ(results.size(), 3u);
  for (const v1::JobResult& run : results) {
    EXPECT_EQ(run.status(), v1::JobResult::UNKNOWN);
    EXPECT_TRUE(run.backfill());
  }
  EXPECT_TRUE(fake_.starts().empty());
}

}  // namespace
}  // namespace timer::domain

namespace timer::domain {
namespace {

TEST_F(RunEngineTest, FiresAreCountedByOutcomeWithTheirLateness) {
  StartEngine([](RunEngine::Options& o) { o.lookahead = absl::Milliseconds(500); });
  const auto started = [] {
    return MetricValue("timer_fires_total{outcome=\"started\"}");
  };
  const auto late = [](const char* le) {
    return MetricValue(
        absl::StrCat("timer_fire_lateness_seconds_bucket{le=\"", le, "\"}"));
  };
  const auto count = [] { return MetricValue("timer_fire_lateness_seconds_count"); };
  const double started0 = started(), count0 = count();
  const double ms0 = late("0.001"), s1 = late("1"), s2_5 = late("2.5");
  Create(10);
  At(Slot(0, 10) - absl::Milliseconds(200));  // Recorded ahead ...
  EXPECT_EQ(started(), started0);
  At(Slot(0, 10));                     // ... and started at its slot: on time.
  At(Slot(1, 10) + absl::Seconds(2));  // Fired 2 s late.
  EXPECT_EQ(fake_.starts().size(), 2u);
  EXPECT_EQ(started(), started0 + 2);
  EXPECT_EQ(count(), count0 + 2);
  EXPECT_EQ(late("0.001"), ms0 + 1);
  EXPECT_EQ(late("1"), s1 + 1);
  EXPECT_EQ(late("2.5"), s2_5 + 2);
  // Runs ended, by provider and status, with their duration.
  EXPECT_GE(
      MetricValue("timer_runs_finished_total{provider=\"fake\",status=\"succeeded\"}"),
      2);
  EXPECT_GE(MetricValue("timer_run_duration_seconds_count{provider=\"fake\"}"), 2);
}

TEST_F(RunEngineTest, SkippedSlotsAreCountedByReason) {
  const auto fires = [](const char* outcome) {
    return MetricValue(absl::StrCat("timer_fires_total{outcome=\"", outcome, "\"}"));
  };
  const auto skipped = [](const char* reason) {
    return MetricValue(
        absl::StrCat("timer_skipped_slots_total{reason=\"", reason, "\"}"));
  };
  const double missed_fires = fires("skipped_missed"), missed = skipped("missed");
  const double overlap_fires = fires("skipped_overlap"), overlap = skipped("overlap");
  v1::Job job = Create(10);
  // The engine starts 35 s after the first slot: slots 0..3 passed.
  clock_.Set(Slot(3, 10) + absl::Seconds(5));
  fake_.set_instant(false);
  StartEngine();
  At(clock_.Now());
  EXPECT_EQ(Get(job.job_id()).n_skipped(), 4);
  EXPECT_EQ(fires("skipped_missed"), missed_fires + 1);
  EXPECT_EQ(skipped("missed"), missed + 4);
  At(Slot(4, 10));  // Runs, and stays active ...
  At(Slot(5, 10));  // ... so this slot is skipped for overlap.
  EXPECT_EQ(fires("skipped_overlap"), overlap_fires + 1);
  EXPECT_EQ(skipped("overlap"), overlap + 1);
  // The engine's queue: one job, due now and fired.
  EXPECT_EQ(engine_->due_lag(), absl::ZeroDuration());
}

TEST_F(RunEngineTest, DueLagGrowsWhileFiresWait) {
  StartEngine([](RunEngine::Options& o) { o.max_active_runs = 1; });
  fake_.set_instant(false);
  Create(10);
  Create(10);
  At(Slot(0, 10));  // One run fills max_active_runs; the other job waits.
  clock_.Set(Slot(0, 10) + absl::Seconds(30));
  EXPECT_EQ(engine_->due_lag(), absl::Seconds(30));
}

// Calendar schedules through the engine: cron jobs across real daylight-saving
// transitions, driven by the fake clock in 5-minute steps (every slot below
// falls on a step), and a once job. Each run's scheduled_time is checked to
// the second, with its start (the clock at the step it fired on), and that
// no slot was skipped or recorded twice.
namespace dst {

absl::Time Utc(int y, int mo, int d, int h, int mi) {
  return absl::FromCivil(absl::CivilMinute(y, mo, d, h, mi), absl::UTCTimeZone());
}

void CronIn(v1::Job& j, const std::string& expr, const std::string& zone,
            absl::Time start) {
  j.mutable_schedule()->set_cron(expr);
  j.mutable_schedule()->set_time_zone(zone);
  *j.mutable_schedule()->mutable_start() = ToProto(start);
}

}  // namespace dst

class RunEngineDstTest : public RunEngineTest {
 protected:
  // Moves the clock from its time to `to` in `step`s, firing at each.
  void StepTo(absl::Time to, absl::Duration step = absl::Minutes(5)) {
    for (absl::Time t = clock_.Now() + step; t <= to; t += step) At(t);
  }

  // The scheduled times of the job's runs, oldest first, checking that each
  // succeeded and started at its scheduled time (no run started early or
  // late) and that nothing was skipped.
  std::vector<absl::Time> RunTimes(const std::string& job_id) {
    std::vector<absl::Time> times;
    const std::vector<v1::JobResult> results = AllResults(job_id);
    for (auto it = results.rbegin(); it != results.rend(); ++it) {
      const absl::Time scheduled = FromProto(it->scheduled_time());
      EXPECT_EQ(it->status(), v1::JobResult::SUCCEEDED) << scheduled;
      EXPECT_EQ(FromProto(it->start_time()), scheduled);
      times.push_back(scheduled);
    }
    const v1::Job job = Get(job_id);
    EXPECT_EQ(job.n_skipped(), 0);
    EXPECT_EQ(job.n_runs(), static_cast<int64_t>(times.size()));
    return times;
  }
};

// Europe/Berlin, 2026-03-29: at 02:00 CET (01:00Z) the clocks go to 03:00
// CEST, so 02:30 does not exist that day. The day before, 02:30 CET is
// 01:30Z; the day after, 02:30 CEST is 00:30Z.
TEST_F(RunEngineDstTest, BerlinSpringForwardFollowsEachGapPolicy) {
  using dst::Utc;
  const absl::Time from = Utc(2026, 3, 28, 0, 0);
  clock_.Set(from);
  StartEngine();
  const auto job = [&](v1::DstGapPolicy gap) {
    return Create(60,
                  [&](v1::Job& j) {
                    dst::CronIn(j, "30 2 * * *", "Europe/Berlin", from);
                    j.mutable_schedule()->set_dst_gap(gap);
                  })
        .job_id();
  };
  const std::string unspecified = job(v1::DST_GAP_POLICY_UNSPECIFIED);
  const std::string run_after = job(v1::DST_GAP_RUN_AFTER);
  const std::string skip = job(v1::DST_GAP_SKIP);
  const std::string shift = job(v1::DST_GAP_SHIFT);
  EXPECT_EQ(FromProto(Get(skip).next_run()), Utc(2026, 3, 28, 1, 30));

  StepTo(Utc(2026, 3, 31, 0, 0));

  // Run after the gap (the default): at 03:00 CEST, the first valid instant.
  const std::vector<absl::Time> after_gap = {
      Utc(2026, 3, 28, 1, 30), Utc(2026, 3, 29, 1, 0), Utc(2026, 3, 30, 0, 30)};
  EXPECT_EQ(RunTimes(unspecified), after_gap);
  EXPECT_EQ(RunTimes(run_after), after_gap);
  // Skip: no run that day.
  EXPECT_EQ(RunTimes(skip),
            (std::vector<absl::Time>{Utc(2026, 3, 28, 1, 30), Utc(2026, 3, 30, 0, 30)}));
  // Shift by the gap's length (1 h): 03:30 CEST, 01:30Z.
  EXPECT_EQ(RunTimes(shift),
            (std::vector<absl::Time>{Utc(2026, 3, 28, 1, 30), Utc(2026, 3, 29, 1, 30),
                                     Utc(2026, 3, 30, 0, 30)}));
  for (const std::string& id : {unspecified, run_after, skip, shift}) {
    EXPECT_EQ(FromProto(Get(id).next_run()), Utc(2026, 3, 31, 0, 30)) << id;
  }
}

// Europe/Berlin, 2026-10-25: at 03:00 CEST (01:00Z) the clocks go back to
// 02:00 CET, so 02:30 happens twice: 00:30Z (CEST) and 01:30Z (CET).
TEST_F(RunEngineDstTest, BerlinFallBackFollowsEachRepeatPolicy) {
  using dst::Utc;
  const absl::Time from = Utc(2026, 10, 24, 0, 0);
  clock_.Set(from);
  StartEngine();
  const auto job = [&](v1::DstRepeatPolicy repeat) {
    return Create(60,
                  [&](v1::Job& j) {
                    dst::CronIn(j, "30 2 * * *", "Europe/Berlin", from);
                    j.mutable_schedule()->set_dst_repeat(repeat);
                  })
        .job_id();
  };
  const std::string unspecified = job(v1::DST_REPEAT_POLICY_UNSPECIFIED);
  const std::string first = job(v1::DST_REPEAT_FIRST);
  const std::string last = job(v1::DST_REPEAT_LAST);
  const std::string both = job(v1::DST_REPEAT_BOTH);

  StepTo(Utc(2026, 10, 27, 0, 0));

  // The first occurrence (the default): once, in summer time.
  const std::vector<absl::Time> once_first = {
      Utc(2026, 10, 24, 0, 30), Utc(2026, 10, 25, 0, 30), Utc(2026, 10, 26, 1, 30)};
  EXPECT_EQ(RunTimes(unspecified), once_first);
  EXPECT_EQ(RunTimes(first), once_first);
  // The last: once, in standard time.
  EXPECT_EQ(RunTimes(last),
            (std::vector<absl::Time>{Utc(2026, 10, 24, 0, 30), Utc(2026, 10, 25, 1, 30),
                                     Utc(2026, 10, 26, 1, 30)}));
  // Both: twice that day, an hour apart.
  EXPECT_EQ(RunTimes(both), (std::vector<absl::Time>{
                                Utc(2026, 10, 24, 0, 30), Utc(2026, 10, 25, 0, 30),
                                Utc(2026, 10, 25, 1, 30), Utc(2026, 10, 26, 1, 30)}));
  for (const std::string& id : {unspecified, first, last, both}) {
    EXPECT_EQ(FromProto(Get(id).next_run()), Utc(2026, 10, 27, 1, 30)) << id;
  }
}

// America/New_York, 2026: 02:00 EST -> 03:00 EDT on 8 March (07:00Z), 02:00
// EDT -> 01:00 EST on 1 November (06:00Z), with the default policies and a
// job that runs at both 01:30s.
TEST_F(RunEngineDstTest, NewYorkTransitionsWithTheDefaultsAndBoth) {
  using dst::Utc;
  const absl::Time spring = Utc(2026, 3, 7, 0, 0);
  clock_.Set(spring);
  StartEngine();
  const std::string gap = Create(60, [&](v1::Job& j) {
                            dst::CronIn(j, "30 2 * * *", "America/New_York", spring);
                          }).job_id();
  StepTo(Utc(2026, 3, 10, 0, 0));
  EXPECT_EQ(RunTimes(gap),
            (std::vector<absl::Time>{Utc(2026, 3, 7, 7, 30), Utc(2026, 3, 8, 7, 0),
                                     Utc(2026, 3, 9, 6, 30)}));

  const absl::Time fall = Utc(2026, 10, 31, 0, 0);
  clock_.Set(fall);
  const auto job = [&](v1::DstRepeatPolicy repeat) {
    return Create(60,
                  [&](v1::Job& j) {
                    dst::CronIn(j, "30 1 * * *", "America/New_York", fall);
                    j.mutable_schedule()->set_dst_repeat(repeat);
                  })
        .job_id();
  };
  const std::string first = job(v1::DST_REPEAT_POLICY_UNSPECIFIED);
  const std::string both = job(v1::DST_REPEAT_BOTH);
  StepTo(Utc(2026, 11, 3, 0, 0));
  EXPECT_EQ(RunTimes(first),
            (std::vector<absl::Time>{Utc(2026, 10, 31, 5, 30), Utc(2026, 11, 1, 5, 30),
                                     Utc(2026, 11, 2, 6, 30)}));
  EXPECT_EQ(RunTimes(both),
            (std::vector<absl::Time>{Utc(2026, 10, 31, 5, 30), Utc(2026, 11, 1, 5, 30),
                                     Utc(2026, 11, 1, 6, 30), Utc(2026, 11, 2, 6, 30)}));
}

TEST_F(RunEngineDstTest, AOnceJobRunsExactlyOnceThenEndsComplete) {
  using dst::Utc;
  const absl::Time at = Utc(2026, 12, 24, 18, 0);
  clock_.Set(at - absl::Hours(1));
  StartEngine();
  const std::string id = Create(60, [&](v1::Job& j) {
                           j.mutable_schedule()->set_once(true);
                           *j.mutable_schedule()->mutable_start() = ToProto(at);
                         }).job_id();
  EXPECT_EQ(FromProto(Get(id).next_run()), at);
  At(at - absl::Seconds(1));
  EXPECT_TRUE(fake_.starts().empty());
  At(at);
  StepTo(at + absl::Hours(2));
  EXPECT_EQ(RunTimes(id), std::vector<absl::Time>{at});
  EXPECT_THAT(fake_.starts(), ElementsAre(id + "/1"));
  const v1::Job after = Get(id);
  EXPECT_EQ(after.status(), v1::Job::ENDED);
  EXPECT_EQ(after.end_reason(), v1::Job::SCHEDULE_COMPLETE);
  EXPECT_FALSE(after.has_next_run());
}

}  // namespace
}  // namespace timer::domain
