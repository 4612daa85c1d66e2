// The watch reactor (api/watch.cc) over a real in-process gRPC server bound
// to port 0: the messages a client reads (snapshot, live events, batches
// within bounds), how streams end (a watched job's deletion, hub shutdown,
// a filter error), with the domain behind it (in-memory store, fake clock).
// Authentication is TimerServiceImpl's; this service calls the watch entry
// points for one fixed caller.
#include "api/watch.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "api/timer_service.h"
#include "domain/clock.h"
#include "domain/events.h"
#include "domain/jobs.h"
#include "domain/time_util.h"
#include "domain/watch_start.h"
#include "store/memory_store.h"

namespace timer::api {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);
const domain::Identity kAlice{"alice", "token"};
// Streams alice may have open at once here.
constexpr size_t kStreams = 4;

// WatchJob / WatchJobs for alice; every other method UNIMPLEMENTED.
class WatchOnlyService final : public TimerServiceBase {
 public:
  WatchOnlyService(domain::JobService* jobs, domain::WatchStarter* watches)
      : jobs_(jobs), watches_(watches) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchJob(
      grpc::CallbackServerContext*, const grpc::ByteBuffer* raw) override {
    v1::WatchJobRequest request;
    absl::Status parsed = ParseWatchRequest(*raw, request);
    if (!parsed.ok()) return FinishedStream(grpc::Status(grpc::INVALID_ARGUMENT, ""));
    return OpenWatchJob(jobs_, watches_, kAlice, request);
  }
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchJobs(
      grpc::CallbackServerContext*, const grpc::ByteBuffer* raw) override {
    v1::WatchJobsRequest request;
    absl::Status parsed = ParseWatchRequest(*raw, request);
    if (!parsed.ok()) return FinishedStream(grpc::Status(grpc::INVALID_ARGUMENT, ""));
    return OpenWatchJobs(jobs_, watches_, kAlice, request);
  }

 private:
  domain::JobService* const jobs_;
  domain::WatchStarter* const watches_;
};

// Reads messages until `count` events have come (true) or the stream ends
// (false). `sizes`, if given, gets each message's number of events.
template <typename Response>
bool ReadEvents(grpc::ClientReader<Response>& reader, size_t count,
                std::vector<v1::JobEvent>& out, std::vector<int>* sizes = nullptr) {
  Response message;
  while (out.size() < count) {
    if (!reader.Read(&message)) return false;
    if (sizes != nullptr) sizes->push_back(message.events_size());
    for (const v1::JobEvent& e : message.events()) out.push_back(e);
  }
  return true;
}

// Reads what is left, then the status the stream ended with.
template <typename Response>
grpc::Status FinishStream(grpc::ClientReader<Response>& reader) {
  Response message;
  while (reader.Read(&message)) {
  }
  return reader.Finish();
}

class WatchTest : public ::testing::Test {
 protected:
  WatchTest()
      : clock_(kStart),
        hub_(&clock_, {}),
        jobs_(&store_, &clock_),
        watches_(&jobs_, &hub_, &clock_,
                 {.snapshot_page_jobs = 100, .max_streams_per_identity = kStreams}),
        service_(&jobs_, &watches_) {
    jobs_.set_events(&hub_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    stub_ = v1::TimerService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }

  ~WatchTest() override {
    hub_.Shutdown();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    server_->Wait();
    watches_.Stop();
  }

  void Prepare(grpc::ClientContext& ctx) {
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  }

  v1::Job Create(const std::string& name) {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name(name);
    *job->mutable_schedule()->mutable_start() = domain::ToProto(kStart + absl::Hours(1));
    job->mutable_schedule()->set_interval_seconds(60);
    job->mutable_action()->set_provider("fake");
    job->mutable_action()->set_body("{}");
    return Write(&domain::JobService::CreateJob, req);
  }

  template <typename Method, typename Request>
  v1::Job Write(Method method, const Request& req) {
    absl::Notification done;
    absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
    (jobs_.*method)(kAlice, req, [&](absl::StatusOr<v1::Job> j) {
      out = std::move(j);
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_TRUE(out.ok()) << out.status();
    // Snapshots list jobs in creation order: one at a time.
    clock_.Advance(absl::Milliseconds(1));
    return out.value_or(v1::Job());
  }

  domain::FakeClock clock_;
  store::MemoryStore store_;
  domain::EventHub hub_;
  domain::JobService jobs_;
  domain::WatchStarter watches_;
  WatchOnlyService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::TimerService::Stub> stub_;
};

TEST_F(WatchTest, WatchJobsSendsTheSnapshotThenLiveEvents) {
  Create("a");
  Create("b");
  hub_.Flush();
  const int64_t head = hub_.head();
  grpc::ClientContext ctx;
  Prepare(ctx);
  auto reader = stub_->WatchJobs(&ctx, v1::WatchJobsRequest());
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(ReadEvents(*reader, 2, events));
  ASSERT_EQ(events.size(), 2u);
  for (const v1::JobEvent& e : events) {
    EXPECT_EQ(e.type(), v1::JobEvent::SNAPSHOT);
    EXPECT_EQ(e.sequence(), head);
  }
  EXPECT_EQ(events[0].job().name(), "a");
  EXPECT_EQ(events[1].job().name(), "b");

  Create("c");
  events.clear();
  ASSERT_TRUE(ReadEvents(*reader, 1, events));
  EXPECT_EQ(events[0].type(), v1::JobEvent::CREATED);
  EXPECT_EQ(events[0].job().name(), "c");
  EXPECT_EQ(events[0].sequence(), head + 1);
  ctx.TryCancel();
  EXPECT_EQ(FinishStream(*reader).error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(WatchTest, ALargeSnapshotComesInBoundedMessagesInOrder) {
  std::vector<std::string> names;
  for (int i = 0; i < 600; ++i) {
    names.push_back(absl::StrCat("job-", i));
    Create(names.back());
  }
  grpc::ClientContext ctx;
  Prepare(ctx);
  auto reader = stub_->WatchJobs(&ctx, v1::WatchJobsRequest());
  std::vector<v1::JobEvent> events;
  std::vector<int> sizes;
  ASSERT_TRUE(ReadEvents(*reader, 600, events, &sizes));
  std::vector<std::string> got;
  for (const v1::JobEvent& e : events) {
    EXPECT_EQ(e.type(), v1::JobEvent::SNAPSHOT);
    got.push_back(e.job().name());
  }
  EXPECT_EQ(got, names);
  // At most 256 events a message: at least three messages.
  EXPECT_GE(sizes.size(), 3u);
  for (int n : sizes) EXPECT_LE(n, 256);
  ctx.TryCancel();
  FinishStream(*reader);
}

TEST_F(WatchTest, ResumingSendsTheMissedEventsAndAnOldSinceAResetFirst) {
  Create("a");
  hub_.Flush();
  const int64_t since = hub_.head();
  Create("b");
  hub_.Flush();
  {
    grpc::ClientContext ctx;
    Prepare(ctx);
    v1::WatchJobsRequest req;
    req.set_since(since);
    auto reader = stub_->WatchJobs(&ctx, req);
    std::vector<v1::JobEvent> events;
    ASSERT_TRUE(ReadEvents(*reader, 1, events));
    EXPECT_EQ(events[0].type(), v1::JobEvent::CREATED);
    EXPECT_EQ(events[0].job().name(), "b");
    EXPECT_EQ(events[0].sequence(), since + 1);
    ctx.TryCancel();
    FinishStream(*reader);
  }
  grpc::ClientContext ctx;
  Prepare(ctx);
  v1::WatchJobsRequest req;
  req.set_since(1);  // Older than anything this process kept.
  auto reader = stub_->WatchJobs(&ctx, req);
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(ReadEvents(*reader, 3, events));
  EXPECT_EQ(events[0].type(), v1::JobEvent::RESET);
  EXPECT_EQ(events[0].sequence(), since + 1);
  EXPECT_EQ(domain::FromProto(events[0].event_time()), clock_.Now());
  EXPECT_EQ(events[1].type(), v1::JobEvent::SNAPSHOT);
  EXPECT_EQ(events[2].type(), v1::JobEvent::SNAPSHOT);
  ctx.TryCancel();
  FinishStream(*reader);
}

TEST_F(WatchTest, AWatchedJobsDeletionEndsItsStreamOk) {
  const v1::Job job = Create("watched");
  grpc::ClientContext ctx;
  Prepare(ctx);
  v1::WatchJobRequest req;
  req.set_job_id(job.job_id());
  auto reader = stub_->WatchJob(&ctx, req);
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(ReadEvents(*reader, 1, events));
  EXPECT_EQ(events[0].type(), v1::JobEvent::SNAPSHOT);
  v1::DeleteJobRequest del;
  del.set_job_id(job.job_id());
  Write(&domain::JobService::DeleteJob, del);
  events.clear();
  ASSERT_TRUE(ReadEvents(*reader, 1, events));
  EXPECT_EQ(events[0].type(), v1::JobEvent::DELETED);
  const grpc::Status s = FinishStream(*reader);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(WatchTest, WatchingAnUnknownJobIsNotFound) {
  grpc::ClientContext ctx;
  Prepare(ctx);
  v1::WatchJobRequest req;
  req.set_job_id("00000000-0000-4000-8000-000000000000");
  auto reader = stub_->WatchJob(&ctx, req);
  EXPECT_EQ(FinishStream(*reader).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(WatchTest, HubShutdownEndsStreamsUnavailableWithTheResumePoint) {
  Create("a");
  grpc::ClientContext ctx;
  Prepare(ctx);
  auto reader = stub_->WatchJobs(&ctx, v1::WatchJobsRequest());
  std::vector<v1::JobEvent> events;
  ASSERT_TRUE(ReadEvents(*reader, 1, events));
  hub_.Shutdown();
  const grpc::Status s = FinishStream(*reader);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(s.error_message().find(absl::StrCat("since=", events[0].sequence())),
            std::string::npos)
      << s.error_message();
}

// Issue 18, H7: one identity opened 3,000 streams. The one beyond the bound
// ends RESOURCE_EXHAUSTED naming it.
TEST_F(WatchTest, AStreamBeyondTheCallersBoundEndsResourceExhausted) {
  Create("a");
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::WatchJobsResponse>>> readers;
  for (size_t i = 0; i < kStreams; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    Prepare(*contexts.back());
    readers.push_back(stub_->WatchJobs(contexts.back().get(), v1::WatchJobsRequest()));
    std::vector<v1::JobEvent> events;
    ASSERT_TRUE(ReadEvents(*readers.back(), 1, events));  // Open on the server.
  }
  {
    grpc::ClientContext ctx;
    Prepare(ctx);
    auto reader = stub_->WatchJobs(&ctx, v1::WatchJobsRequest());
    const grpc::Status s = FinishStream(*reader);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(s.error_message().find(
                  absl::StrCat("max_watch_streams_per_identity (", kStreams, ")")),
              std::string::npos)
        << s.error_message();
  }
  // (That closing one makes room again is watch_start_test's.)
  for (size_t i = 0; i < kStreams; ++i) {
    contexts[i]->TryCancel();
    FinishStream(*readers[i]);
  }
}

// Issue 18, M6: a million-entry statuses list is refused, naming the field.
TEST_F(WatchTest, AHugeStatusesListIsInvalidArgument) {
  grpc::ClientContext ctx;
  Prepare(ctx);
  v1::WatchJobsRequest req;
  for (int i = 0; i < 1'000'000; ++i) req.add_statuses(v1::Job::PAUSED);
  auto reader = stub_->WatchJobs(&ctx, req);
  const grpc::Status s = FinishStream(*reader);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("statuses", 0), 0u) << s.error_message();
}

// Snapshots and events over the wire carry no body unless FULL is asked for,
// and then only the snapshot does.
TEST_F(WatchTest, OnlyAFullSnapshotCarriesTheBody) {
  const v1::Job job = Create("a");
  for (v1::JobView view :
       {v1::JOB_VIEW_UNSPECIFIED, v1::JOB_VIEW_BASIC, v1::JOB_VIEW_FULL}) {
    grpc::ClientContext ctx;
    Prepare(ctx);
    v1::WatchJobRequest req;
    req.set_job_id(job.job_id());
    req.set_view(view);
    auto reader = stub_->WatchJob(&ctx, req);
    std::vector<v1::JobEvent> events;
    ASSERT_TRUE(ReadEvents(*reader, 1, events));
    EXPECT_EQ(events[0].type(), v1::JobEvent::SNAPSHOT);
    EXPECT_EQ(events[0].job().action().body(), view == v1::JOB_VIEW_FULL ? "{}" : "")
        << v1::JobView_Name(view);
    v1::PauseJobRequest pause;
    pause.set_job_id(job.job_id());
    Write(&domain::JobService::PauseJob, pause);
    v1::ResumeJobRequest resume;
    resume.set_job_id(job.job_id());
    Write(&domain::JobService::ResumeJob, resume);
    events.clear();
    ASSERT_TRUE(ReadEvents(*reader, 2, events));
    for (const v1::JobEvent& e : events) {
      EXPECT_TRUE(e.job().action().body().empty()) << v1::JobEvent::Type_Name(e.type());
      EXPECT_EQ(e.job().action().provider(), "fake");
    }
    ctx.TryCancel();
    FinishStream(*reader);
  }
}

}  // namespace
}  // namespace timer::api
