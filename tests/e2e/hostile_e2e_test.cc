// Malformed and hostile requests over the wire: each gets a clear status
// (naming the field where it is ours to name), nothing is written, and
// timerd keeps serving.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli_fixture.h"
#include "event_stream.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

struct Case {
  std::string what;
  std::function<void(v1::Job&)> edit;
  grpc::StatusCode code;
  std::string message_prefix;  // Empty: any message.
};

class HostileE2eTest : public CliTest {
 protected:
  std::shared_ptr<grpc::Channel> Channel() {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
  }
  void Prepare(grpc::ClientContext* ctx) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    ctx->AddMetadata("authorization", "Bearer " + token_);
  }
  static v1::CreateJobRequest ValidCreate() {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name("valid");
    job->mutable_schedule()->set_interval_seconds(60);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body("{}");
    return req;
  }
  int64_t CountJobs(v1::TimerService::Stub& stub) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ListJobsRequest req;
    req.set_show_deleted(true);
    req.set_page_size(1000);
    v1::ListJobsResponse resp;
    EXPECT_TRUE(stub.ListJobs(&ctx, req, &resp).ok());
    return resp.jobs_size();
  }
};

std::string Nested(int depth) {
  return absl::StrCat("{\"a\":", std::string(depth, '['), std::string(depth, ']'), "}");
}

TEST_F(HostileE2eTest, EveryHostileCreateGetsAClearStatusAndNothingIsWritten) {
  auto daemon = StartTimerd();
  auto stub = v1::TimerService::NewStub(Channel());
  const grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::vector<Case> cases = {
      {"body over 1 MiB",
       [](v1::Job& j) {
         j.mutable_action()->set_body(
             absl::StrCat("{\"x\":\"", std::string(2 << 20, 'a'), "\"}"));
       },
       kInvalid, "job.action.body"},
      {"request over max_message_bytes",
       [](v1::Job& j) { j.set_label(std::string(8 << 20, 'l')); },
       grpc::StatusCode::RESOURCE_EXHAUSTED, ""},
      {"JSON nested 100,000 deep",
       [](v1::Job& j) { j.mutable_action()->set_body(Nested(100000)); }, kInvalid,
       "job.action.body"},
      {"JSON nested 100,000 deep to transfer",
       [](v1::Job& j) {
         j.mutable_action()->set_provider("transfer");
         j.mutable_action()->set_body(Nested(100000));
       },
       kInvalid, "job.action.body"},
      {"name of 100 KB", [](v1::Job& j) { j.set_name(std::string(100000, 'n')); },
       kInvalid, "job.name"},
      {"interval 0", [](v1::Job& j) { j.mutable_schedule()->set_interval_seconds(0); },
       kInvalid, "job.schedule.interval_seconds"},
      {"interval negative",
       [](v1::Job& j) { j.mutable_schedule()->set_interval_seconds(-5); }, kInvalid,
       "job.schedule.interval_seconds"},
      {"interval int64 max",
       [=](v1::Job& j) { j.mutable_schedule()->set_interval_seconds(kMax); }, kInvalid,
       "job.schedule.interval_seconds"},
      {"stop_after_runs negative",
       [](v1::Job& j) { j.mutable_schedule()->set_stop_after_runs(-1); }, kInvalid,
       "job.schedule.stop_after_runs"},
      {"start before 1970",
       [](v1::Job& j) { j.mutable_schedule()->mutable_start()->set_seconds(-86400); },
       kInvalid, "job.schedule.start"},
      {"start beyond year 9999",
       [](v1::Job& j) {
         j.mutable_schedule()->mutable_start()->set_seconds(253402300800);
       },
       kInvalid, "job.schedule.start"},
      {"start nanos out of range",
       [](v1::Job& j) { j.mutable_schedule()->mutable_start()->set_nanos(2000000000); },
       kInvalid, "job.schedule.start"},
      {"stop_after_date before 1970",
       [](v1::Job& j) {
         j.mutable_schedule()->mutable_stop_after_date()->set_seconds(-1);
       },
       kInvalid, "job.schedule.stop_after_date"},
      {"unknown overlap policy",
       [](v1::Job& j) { j.set_overlap_policy(static_cast<v1::OverlapPolicy>(99)); },
       kInvalid, "job.overlap_policy"},
      {"unknown missed-run policy",
       [](v1::Job& j) { j.set_missed_run_policy(static_cast<v1::MissedRunPolicy>(-7)); },
       kInvalid, "job.missed_run_policy"},
      {"max_concurrent huge",
       [](v1::Job& j) {
         j.set_overlap_policy(v1::ALLOW);
         j.set_max_concurrent(std::numeric_limits<int32_t>::max());
       },
       kInvalid, "job.max_concurrent"},
      {"unknown provider",
       [](v1::Job& j) { j.mutable_action()->set_provider("../../bin/sh"); }, kInvalid,
       "job.action.provider"},
      {"transfer path escape",
       [](v1::Job& j) {
         j.mutable_action()->set_provider("transfer");
         j.mutable_action()->set_body(
             R"({"source_endpoint":"a","destination_endpoint":"b",)"
             R"("items":[{"source_path":"../../etc/passwd","destination_path":"x"}]})");
       },
       kInvalid, "job.action.body"},
  };
  for (const Case& c : cases) {
    v1::CreateJobRequest req = ValidCreate();
    c.edit(*req.mutable_job());
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::Job out;
    const grpc::Status s = stub->CreateJob(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), c.code) << c.what << ": " << s.error_message();
    if (!c.message_prefix.empty()) {
      EXPECT_EQ(s.error_message().rfind(c.message_prefix, 0), 0u)
          << c.what << ": " << s.error_message().substr(0, 300);
    }
    EXPECT_LT(s.error_message().size(), 1000u)
        << c.what << ": the message echoes the input";
  }
  EXPECT_EQ(CountJobs(*stub), 0);

  // Still serving, and a valid job still goes in.
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::Job created;
  ASSERT_TRUE(stub->CreateJob(&ctx, ValidCreate(), &created).ok());
  EXPECT_EQ(CountJobs(*stub), 1);
}

TEST_F(HostileE2eTest, HostileReadsAndListsGetClearStatuses) {
  auto daemon = StartTimerd();
  std::shared_ptr<grpc::Channel> channel = Channel();
  auto stub = v1::TimerService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::Job created;
    ASSERT_TRUE(stub->CreateJob(&ctx, ValidCreate(), &created).ok());
  }
  for (const std::string& id :
       {std::string(""), std::string("not-a-uuid"), std::string(10000, 'f'),
        std::string("../../etc/passwd"), std::string("\xff\xfe", 2)}) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job out;
    const grpc::Status s = stub->GetJob(&ctx, req, &out);
    if (id == std::string("\xff\xfe", 2)) {
      // Invalid UTF-8 never reaches our code: gRPC 1.51's callback server
      // fails to parse the request and answers it (UNIMPLEMENTED, no message).
      EXPECT_FALSE(s.ok());
    } else {
      EXPECT_TRUE(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                  s.error_code() == grpc::StatusCode::NOT_FOUND)
          << "[" << id.substr(0, 20) << "] " << s.error_code() << " "
          << s.error_message();
      EXPECT_EQ(s.error_message().rfind("job_id", 0), 0u) << s.error_message();
    }
    EXPECT_LT(s.error_message().size(), 300u);
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ListJobsRequest req;
    req.set_page_size(std::numeric_limits<int32_t>::max());
    v1::ListJobsResponse out;
    const grpc::Status s = stub->ListJobs(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();  // Capped at 1000.
    EXPECT_EQ(out.jobs_size(), 1);
  }
  for (const std::string& token :
       {std::string("garbage"), std::string(100000, 'A'), std::string("\x01\x02\x03")}) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ListJobsRequest req;
    req.set_page_token(token);
    v1::ListJobsResponse out;
    const grpc::Status s = stub->ListJobs(&ctx, req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_EQ(s.error_message().rfind("page_token", 0), 0u) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ListJobsRequest req;
    req.set_page_size(-1);
    v1::ListJobsResponse out;
    EXPECT_EQ(stub->ListJobs(&ctx, req, &out).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::WatchJobsRequest req;
    req.add_statuses(static_cast<v1::Job::Status>(1234));
    auto stream = e2e::Events(stub->WatchJobs(&ctx, req));
    v1::JobEvent e;
    EXPECT_FALSE(stream->Read(&e));
    const grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message().rfind("statuses", 0), 0u) << s.error_message();
  }
  // The watch methods parse their own requests (they are served raw): bytes
  // that are no message are refused, not half-read.
  for (const char* method :
       {"/timer.v1.TimerService/WatchJobs", "/timer.v1.TimerService/WatchJob"}) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    const std::string garbage = "\xff\xff\xff\xff";
    grpc::Slice slice(garbage);
    grpc::ByteBuffer request(&slice, 1);
    std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> stream(
        grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
            channel.get(),
            grpc::internal::RpcMethod(method,
                                      grpc::internal::RpcMethod::SERVER_STREAMING),
            &ctx, request));
    grpc::ByteBuffer message;
    EXPECT_FALSE(stream->Read(&message)) << method;
    const grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method;
    EXPECT_EQ(s.error_message().rfind("request", 0), 0u) << s.error_message();
  }
  // Still serving.
  grpc::ClientContext ctx;
  Prepare(&ctx);
  v1::ListJobsResponse out;
  EXPECT_TRUE(stub->ListJobs(&ctx, v1::ListJobsRequest(), &out).ok());
  EXPECT_TRUE(daemon->WaitExit(absl::ZeroDuration()) == -1) << "timerd exited";
}

}  // namespace
}  // namespace timer::testing
