// Tests of the gRPC handlers of timer.v1.TimerService (api/timer_service.h):
// one case per status each RPC can end with, seen by a real client over
// loopback. The service runs in a gRPC server of its own on 127.0.0.1:0 in
// front of a JobService over a SqliteStore in a temp dir (writes finish
// their reactor from the store's commit thread, as in timerd), a
// FakeActionProvider, a job quota of three, and issued bearer tokens for
// "alice" and "bob". No run engine: nothing fires, RunJobNow only records.
// Watch RPCs are tested with api/watch.

#include "api/timer_service.h"

#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "auth/authenticator.h"
#include "auth/token.h"
#include "domain/action_provider.h"
#include "domain/clock.h"
#include "domain/ids.h"
#include "domain/job_quota.h"
#include "domain/jobs.h"
#include "domain/time_util.h"
#include "fake_action_provider.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics_testing.h"
#include "store/sqlite_store.h"
#include "store/sqlite_token_store.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::api {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// Every RPC's deadline: generous, since only a hung server reaches it.
constexpr std::chrono::seconds kRpcTimeout(20);
constexpr int kQuota = 3;

MATCHER(IsOk, "is OK") {
  *result_listener << "whose status is " << arg.error_code() << ": "
                   << arg.error_message();
  return arg.ok();
}

MATCHER_P(HasCode, code, absl::StrCat("has status code ", code)) {
  *result_listener << "whose status is " << arg.error_code() << ": "
                   << arg.error_message();
  return arg.error_code() == code;
}

MATCHER_P2(HasCode, code, message_matcher, absl::StrCat("has status code ", code)) {
  *result_listener << "whose status is " << arg.error_code() << ": "
                   << arg.error_message();
  return arg.error_code() == code &&
         ::testing::ExplainMatchResult(message_matcher, arg.error_message(),
                                       result_listener);
}

template <typename Response>
struct Reply {
  grpc::Status status;
  Response response;
};

// A request that passes validation, for the fake provider.
v1::CreateJobRequest ValidCreate(const std::string& name = "nightly backup") {
  v1::CreateJobRequest request;
  v1::Job* job = request.mutable_job();
  job->set_name(name);
  job->mutable_schedule()->set_interval_seconds(3600);
  job->mutable_action()->set_provider("fake");
  job->mutable_action()->set_body(R"({"source":"a"})");
  return request;
}

std::string MakeTempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "timer_service_test.XXXXXX").string();
  const char* made = ::mkdtemp(tmpl.data());
  return made == nullptr ? std::string() : std::string(made);
}

class TimerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    const std::string db = dir_ + "/timer.db";
    auto store = store::SqliteStore::Open(
        {.path = db, .checkpoint_interval = absl::InfiniteDuration()});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto tokens = store::SqliteTokenStore::Open(db);
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = *std::move(tokens);
    alice_ = Issue("alice");
    bob_ = Issue("bob");

    authenticator_ =
        std::make_unique<auth::Authenticator>(tokens_.get(), nullptr, &clock_);
    quota_ = std::make_unique<domain::JobQuota>(store_.get(), kQuota);
    jobs_ = std::make_unique<domain::JobService>(store_.get(), &clock_, &registry_);
    jobs_->set_quota(quota_.get());
    service_ =
        std::make_unique<TimerServiceImpl>(jobs_.get(), authenticator_.get(), nullptr);

    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    stub_ = v1::TimerService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
      server_->Wait();
    }
    if (store_ != nullptr) store_->Close();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  std::string Issue(const std::string& identity,
                    std::optional<absl::Time> expires = std::nullopt) {
    absl::StatusOr<auth::IssuedToken> issued =
        auth::IssueToken(*tokens_, identity, expires, "test", clock_.Now());
    EXPECT_TRUE(issued.ok()) << issued.status();
    return issued.ok() ? issued->token : std::string();
  }

  // A context with a deadline and, unless `token` is empty, a bearer token.
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
    if (!token.empty()) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    return ctx;
  }

  template <typename Request, typename Response>
  Reply<Response> Call(grpc::Status (v1::TimerService::Stub::*method)(
                           grpc::ClientContext*, const Request&, Response*),
                       const Request& request, const std::string& token) {
    Reply<Response> reply;
    auto ctx = Context(token);
    reply.status = ((*stub_).*method)(ctx.get(), request, &reply.response);
    return reply;
  }

  Reply<v1::Job> Create(const v1::CreateJobRequest& request, const std::string& token) {
    return Call(&v1::TimerService::Stub::CreateJob, request, token);
  }
  Reply<v1::Job> Get(const std::string& job_id, const std::string& token,
                     bool show_deleted = false) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    request.set_show_deleted(show_deleted);
    return Call(&v1::TimerService::Stub::GetJob, request, token);
  }
  Reply<v1::ListJobsResponse> List(const v1::ListJobsRequest& request,
                                   const std::string& token) {
    return Call(&v1::TimerService::Stub::ListJobs, request, token);
  }
  Reply<v1::Job> Update(const v1::UpdateJobRequest& request, const std::string& token) {
    return Call(&v1::TimerService::Stub::UpdateJob, request, token);
  }
  Reply<v1::Job> Delete(const std::string& job_id, const std::string& token,
                        const std::string& etag = "") {
    v1::DeleteJobRequest request;
    request.set_job_id(job_id);
    request.set_etag(etag);
    return Call(&v1::TimerService::Stub::DeleteJob, request, token);
  }
  Reply<v1::Job> Pause(const std::string& job_id, const std::string& token) {
    v1::PauseJobRequest request;
    request.set_job_id(job_id);
    return Call(&v1::TimerService::Stub::PauseJob, request, token);
  }
  Reply<v1::Job> Resume(const std::string& job_id, const std::string& token) {
    v1::ResumeJobRequest request;
    request.set_job_id(job_id);
    return Call(&v1::TimerService::Stub::ResumeJob, request, token);
  }
  Reply<v1::Job> RunNow(const std::string& job_id, const std::string& token,
                        const std::string& request_id = "") {
    v1::RunJobNowRequest request;
    request.set_job_id(job_id);
    request.set_request_id(request_id);
    return Call(&v1::TimerService::Stub::RunJobNow, request, token);
  }
  Reply<v1::ListJobResultsResponse> Results(const v1::ListJobResultsRequest& request,
                                            const std::string& token) {
    return Call(&v1::TimerService::Stub::ListJobResults, request, token);
  }

  // Creates a valid job as `token`'s owner, failing the test otherwise.
  v1::Job CreateOk(const std::string& token, const std::string& name = "nightly backup") {
    Reply<v1::Job> reply = Create(ValidCreate(name), token);
    EXPECT_THAT(reply.status, IsOk());
    return reply.response;
  }

  // The ids of the live jobs `token`'s owner can list (one page).
  std::vector<std::string> ListIds(const std::string& token) {
    Reply<v1::ListJobsResponse> reply = List(v1::ListJobsRequest(), token);
    EXPECT_THAT(reply.status, IsOk());
    std::vector<std::string> ids;
    for (const v1::Job& job : reply.response.jobs()) ids.push_back(job.job_id());
    return ids;
  }

  std::string dir_;
  domain::FakeClock clock_{absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  testing::FakeActionProvider fake_{"fake"};
  testing::FakeActionProvider other_{"other"};
  domain::StaticRegistry registry_{{&fake_, &other_}};
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<store::TokenStore> tokens_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<domain::JobQuota> quota_;
  std::unique_ptr<domain::JobService> jobs_;
  std::unique_ptr<TimerServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::TimerService::Stub> stub_;
  std::string alice_;
  std::string bob_;
};

// ---------------------------------------------------------------------------
// Credentials: every unary RPC refuses a call it cannot attribute, before
// reading or writing anything.

struct RpcCase {
  std::string name;
  std::function<grpc::Status(v1::TimerService::Stub&, grpc::ClientContext*)> call;
};

// Test names say which case it is; gtest would print the bytes otherwise.
void PrintTo(const RpcCase& c, std::ostream* os) { *os << c.name; }

std::vector<RpcCase> UnaryRpcs() {
  const std::string id = domain::NewUuid();
  return {
      {"CreateJob",
       [](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::Job out;
         return s.CreateJob(c, ValidCreate(), &out);
       }},
      {"GetJob",
       [id](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::GetJobRequest r;
         r.set_job_id(id);
         v1::Job out;
         return s.GetJob(c, r, &out);
       }},
      {"ListJobs",
       [](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::ListJobsResponse out;
         return s.ListJobs(c, v1::ListJobsRequest(), &out);
       }},
      {"UpdateJob",
       [id](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::UpdateJobRequest r;
         r.mutable_job()->set_job_id(id);
         r.mutable_job()->set_name("renamed");
         r.mutable_update_mask()->add_paths("name");
         v1::Job out;
         return s.UpdateJob(c, r, &out);
       }},
      {"DeleteJob",
       [id](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::DeleteJobRequest r;
         r.set_job_id(id);
         v1::Job out;
         return s.DeleteJob(c, r, &out);
       }},
      {"PauseJob",
       [id](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::PauseJobRequest r;
         r.set_job_id(id);
         v1::Job out;
         return s.PauseJob(c, r, &out);
       }},
      {"ResumeJob",
       [id](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::ResumeJobRequest r;
         r.set_job_id(id);
         v1::Job out;
         return s.ResumeJob(c, r, &out);
       }},
      {"RunJobNow",
       [id](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::RunJobNowRequest r;
         r.set_job_id(id);
         v1::Job out;
         return s.RunJobNow(c, r, &out);
       }},
      {"ListJobResults",
       [id](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::ListJobResultsRequest r;
         r.set_job_id(id);
         v1::ListJobResultsResponse out;
         return s.ListJobResults(c, r, &out);
       }},
      {"ListActionProviders",
       [](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::ListActionProvidersResponse out;
         return s.ListActionProviders(c, v1::ListActionProvidersRequest(), &out);
       }},
      {"GetActionProvider",
       [](v1::TimerService::Stub& s, grpc::ClientContext* c) {
         v1::GetActionProviderRequest r;
         r.set_name("fake");
         v1::ActionProvider out;
         return s.GetActionProvider(c, r, &out);
       }},
  };
}

class TimerServiceAuthTest : public TimerServiceTest,
                             public ::testing::WithParamInterface<RpcCase> {
 protected:
  grpc::Status CallWith(std::unique_ptr<grpc::ClientContext> ctx) {
    return GetParam().call(*stub_, ctx.get());
  }

  // Nothing was written for anyone on the way.
  void ExpectNothingWritten() {
    EXPECT_THAT(ListIds(alice_), IsEmpty());
    EXPECT_THAT(ListIds(bob_), IsEmpty());
  }
};

TEST_P(TimerServiceAuthTest, NoCredentialsIsUnauthenticated) {
  EXPECT_THAT(CallWith(Context("")),
              HasCode(grpc::StatusCode::UNAUTHENTICATED, HasSubstr("no credentials")));
  ExpectNothingWritten();
}

TEST_P(TimerServiceAuthTest, AnAuthorizationThatIsNotBearerIsUnauthenticated) {
  auto ctx = Context("");
  ctx->AddMetadata("authorization", "Basic YWxpY2U6c2VjcmV0");
  EXPECT_THAT(CallWith(std::move(ctx)),
              HasCode(grpc::StatusCode::UNAUTHENTICATED, HasSubstr("Bearer")));
  ExpectNothingWritten();
}

TEST_P(TimerServiceAuthTest, AWrongSecretIsUnauthenticatedWithoutQuotingIt) {
  // alice's token id with another secret.
  std::string forged = alice_;
  forged.back() = forged.back() == '0' ? '1' : '0';
  auto status = CallWith(Context(forged));
  EXPECT_THAT(status, HasCode(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_THAT(status.error_message(), Not(HasSubstr(forged)));
  ExpectNothingWritten();
}

TEST_P(TimerServiceAuthTest, ARevokedTokenIsUnauthenticated) {
  const std::string token = Issue("carol");
  ASSERT_THAT(CallWith(Context(token)), Not(HasCode(grpc::StatusCode::UNAUTHENTICATED)));
  const std::optional<auth::ParsedToken> parsed = auth::ParseToken(token);
  ASSERT_TRUE(parsed.has_value());
  ASSERT_TRUE(tokens_->Revoke(parsed->token_id, absl::ToUnixMicros(clock_.Now())).ok());
  EXPECT_THAT(CallWith(Context(token)), HasCode(grpc::StatusCode::UNAUTHENTICATED));
}

TEST_P(TimerServiceAuthTest, AJwtIsUnauthenticatedWhenJwtsAreNotConfigured) {
  EXPECT_THAT(CallWith(Context("aaa.bbb.ccc")),
              HasCode(grpc::StatusCode::UNAUTHENTICATED, HasSubstr("jwt")));
  ExpectNothingWritten();
}

INSTANTIATE_TEST_SUITE_P(EveryUnaryRpc, TimerServiceAuthTest,
                         ::testing::ValuesIn(UnaryRpcs()),
                         [](const ::testing::TestParamInfo<RpcCase>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------
// CreateJob

TEST_F(TimerServiceTest, CreateJobReturnsTheStoredJobOwnedByTheCaller) {
  const Reply<v1::Job> created = Create(ValidCreate("backup"), alice_);
  ASSERT_THAT(created.status, IsOk());
  const v1::Job& job = created.response;
  EXPECT_TRUE(domain::IsUuid(job.job_id())) << job.job_id();
  EXPECT_EQ(job.owner(), "alice");
  EXPECT_EQ(job.name(), "backup");
  EXPECT_EQ(job.status(), v1::Job::NEW);
  EXPECT_EQ(job.overlap_policy(), v1::SKIP);  // The defaults are applied.
  EXPECT_EQ(job.max_concurrent(), 1);
  EXPECT_FALSE(job.etag().empty());
  EXPECT_TRUE(job.has_next_run());

  const Reply<v1::Job> read = Get(job.job_id(), alice_);
  ASSERT_THAT(read.status, IsOk());
  EXPECT_EQ(read.response.job_id(), job.job_id());
  EXPECT_EQ(read.response.etag(), job.etag());
}

TEST_F(TimerServiceTest, CreateJobKeepsTheRetryPolicyAndPauseAfterFailures) {
  v1::CreateJobRequest request = ValidCreate("flaky");
  request.mutable_job()->mutable_retry_policy()->set_max_attempts(3);
  request.mutable_job()->mutable_retry_policy()->mutable_initial_backoff()->set_seconds(
      20);
  request.mutable_job()->set_pause_after_failures(4);
  const Reply<v1::Job> created = Create(request, alice_);
  ASSERT_THAT(created.status, IsOk());
  const Reply<v1::Job> read = Get(created.response.job_id(), alice_);
  ASSERT_THAT(read.status, IsOk());
  EXPECT_EQ(read.response.retry_policy().max_attempts(), 3);
  EXPECT_EQ(read.response.retry_policy().initial_backoff().seconds(), 20);
  EXPECT_FALSE(read.response.retry_policy().has_multiplier());
  EXPECT_EQ(read.response.pause_after_failures(), 4);
  EXPECT_EQ(read.response.consecutive_failures(), 0);
}

struct InvalidCreate {
  std::string name;
  std::function<void(v1::CreateJobRequest&)> mutate;
  std::string field;  // What the message must name.
};

void PrintTo(const InvalidCreate& c, std::ostream* os) { *os << c.name; }

class CreateJobInvalidTest : public TimerServiceTest,
                             public ::testing::WithParamInterface<InvalidCreate> {};

TEST_P(CreateJobInvalidTest, IsInvalidArgumentNamingTheFieldAndWritesNothing) {
  v1::CreateJobRequest request = ValidCreate();
  GetParam().mutate(request);
  EXPECT_THAT(Create(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr(GetParam().field)));
  EXPECT_THAT(ListIds(alice_), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    Fields, CreateJobInvalidTest,
    ::testing::Values(
        InvalidCreate{"IntervalZero",
                      [](v1::CreateJobRequest& r) {
                        r.mutable_job()->mutable_schedule()->set_interval_seconds(0);
                      },
                      "job.schedule.interval_seconds"},
        InvalidCreate{"NoProvider",
                      [](v1::CreateJobRequest& r) {
                        r.mutable_job()->mutable_action()->clear_provider();
                      },
                      "job.action.provider"},
        InvalidCreate{"ProviderNotLoaded",
                      [](v1::CreateJobRequest& r) {
                        r.mutable_job()->mutable_action()->set_provider("missing");
                      },
                      "job.action.provider"},
        InvalidCreate{"BodyNotJson",
                      [](v1::CreateJobRequest& r) {
                        r.mutable_job()->mutable_action()->set_body("{");
                      },
                      "job.action.body"},
        InvalidCreate{"BodyRefusedByTheProvider",
                      [](v1::CreateJobRequest& r) {
                        r.mutable_job()->mutable_action()->set_body(R"({"bad":1})");
                      },
                      "job.action.body"},
        InvalidCreate{"NameTooLong",
                      [](v1::CreateJobRequest& r) {
                        r.mutable_job()->set_name(std::string(257, 'n'));
                      },
                      "job.name"},
        InvalidCreate{"RequestIdWithASpace",
                      [](v1::CreateJobRequest& r) { r.set_request_id("two words"); },
                      "request_id"},
        InvalidCreate{"RetryNegativeAttempts",
                      [](v1::CreateJobRequest& r) {
                        r.mutable_job()->mutable_retry_policy()->set_max_attempts(-2);
                      },
                      "job.retry_policy.max_attempts"},
        InvalidCreate{"RetryZeroMultiplier",
                      [](v1::CreateJobRequest& r) {
                        r.mutable_job()->mutable_retry_policy()->set_max_attempts(3);
                        r.mutable_job()->mutable_retry_policy()->set_multiplier(0);
                      },
                      "job.retry_policy.multiplier"},
        InvalidCreate{"RetryBackoffPastTheBound",
                      [](v1::CreateJobRequest& r) {
                        r.mutable_job()->mutable_schedule()->set_interval_seconds(600);
                        r.mutable_job()
                            ->mutable_retry_policy()
                            ->mutable_initial_backoff()
                            ->set_seconds(301);
                      },
                      "job.retry_policy.initial_backoff: must be at most half the "
                      "interval"},
        InvalidCreate{"PauseAfterFailuresNegative",
                      [](v1::CreateJobRequest& r) {
                        r.mutable_job()->set_pause_after_failures(-1);
                      },
                      "job.pause_after_failures"}),
    [](const ::testing::TestParamInfo<InvalidCreate>& info) { return info.param.name; });

TEST_F(TimerServiceTest, CreateJobRetriedWithTheSameRequestIdReturnsTheSameJob) {
  v1::CreateJobRequest request = ValidCreate();
  request.set_request_id("create-1");
  const Reply<v1::Job> first = Create(request, alice_);
  ASSERT_THAT(first.status, IsOk());
  const Reply<v1::Job> again = Create(request, alice_);
  ASSERT_THAT(again.status, IsOk());
  EXPECT_EQ(again.response.job_id(), first.response.job_id());
  EXPECT_THAT(ListIds(alice_), ElementsAre(first.response.job_id()));
}

TEST_F(TimerServiceTest, CreateJobReusingARequestIdWithADifferentJobIsAlreadyExists) {
  v1::CreateJobRequest request = ValidCreate("first");
  request.set_request_id("create-1");
  const Reply<v1::Job> first = Create(request, alice_);
  ASSERT_THAT(first.status, IsOk());
  request.mutable_job()->set_name("second");
  EXPECT_THAT(Create(request, alice_).status,
              HasCode(grpc::StatusCode::ALREADY_EXISTS, HasSubstr("request_id")));
  EXPECT_THAT(ListIds(alice_), ElementsAre(first.response.job_id()));
}

TEST_F(TimerServiceTest, CreateJobBeyondTheQuotaIsResourceExhaustedPerIdentity) {
  for (int i = 0; i < kQuota; ++i) CreateOk(alice_, absl::StrCat("job ", i));
  EXPECT_THAT(Create(ValidCreate(), alice_).status,
              HasCode(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      AllOf(HasSubstr("max_jobs_per_identity"),
                            HasSubstr(absl::StrCat(kQuota)))));
  EXPECT_THAT(ListIds(alice_), SizeIs(kQuota));
  // bob has room of his own.
  CreateOk(bob_);
}

TEST_F(TimerServiceTest, DeletingAJobMakesRoomUnderTheQuota) {
  std::vector<v1::Job> made;
  for (int i = 0; i < kQuota; ++i) made.push_back(CreateOk(alice_));
  ASSERT_THAT(Create(ValidCreate(), alice_).status,
              HasCode(grpc::StatusCode::RESOURCE_EXHAUSTED));
  ASSERT_THAT(Delete(made[0].job_id(), alice_).status, IsOk());
  EXPECT_THAT(Create(ValidCreate(), alice_).status, IsOk());
}

// ---------------------------------------------------------------------------
// GetJob

TEST_F(TimerServiceTest, CallsAreCountedByMethodAndCodeAndWritesByCommit) {
  using ::timer::testing::MetricValue;
  const auto calls = [](const char* method, const char* code) {
    return MetricValue(absl::StrCat("timer_grpc_requests_total{method=\"", method,
                                    "\",code=\"", code, "\"}"));
  };
  const double created = calls("CreateJob", "OK");
  const double found = calls("GetJob", "OK");
  const double missing = calls("GetJob", "NOT_FOUND");
  const double anonymous = calls("GetJob", "UNAUTHENTICATED");
  const double commits = MetricValue("timer_store_commit_duration_seconds_count");
  const v1::Job job = CreateOk(alice_);
  EXPECT_THAT(Get(job.job_id(), alice_).status, IsOk());
  EXPECT_THAT(Get(job.job_id(), bob_).status, HasCode(grpc::StatusCode::NOT_FOUND));
  EXPECT_THAT(Get(job.job_id(), "").status, HasCode(grpc::StatusCode::UNAUTHENTICATED));
  EXPECT_EQ(calls("CreateJob", "OK"), created + 1);
  EXPECT_EQ(calls("GetJob", "OK"), found + 1);
  EXPECT_EQ(calls("GetJob", "NOT_FOUND"), missing + 1);
  EXPECT_EQ(calls("GetJob", "UNAUTHENTICATED"), anonymous + 1);
  // The create was one group commit of the SQLite store (at least).
  EXPECT_GE(MetricValue("timer_store_commit_duration_seconds_count"), commits + 1);
  EXPECT_GE(MetricValue("timer_store_commit_batch_size_count"), 1);
}

TEST_F(TimerServiceTest, GetJobWithoutAJobIdIsInvalidArgument) {
  EXPECT_THAT(Get("", alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT,
                      AllOf(HasSubstr("job_id"), HasSubstr("required"))));
}

TEST_F(TimerServiceTest, GetJobWithAJobIdThatIsNotAUuidIsInvalidArgument) {
  EXPECT_THAT(Get("not-a-uuid", alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("job_id")));
}

TEST_F(TimerServiceTest, GetJobOfAnUnknownJobIsNotFound) {
  EXPECT_THAT(Get(domain::NewUuid(), alice_).status,
              HasCode(grpc::StatusCode::NOT_FOUND));
}

TEST_F(TimerServiceTest, GetJobOfAnotherIdentitysJobIsNotFound) {
  const v1::Job job = CreateOk(alice_);
  EXPECT_THAT(Get(job.job_id(), bob_).status, HasCode(grpc::StatusCode::NOT_FOUND));
  EXPECT_THAT(Get(job.job_id(), bob_, /*show_deleted=*/true).status,
              HasCode(grpc::StatusCode::NOT_FOUND));
}

TEST_F(TimerServiceTest, GetJobOfADeletedJobIsNotFoundUnlessShowDeleted) {
  const v1::Job job = CreateOk(alice_);
  ASSERT_THAT(Delete(job.job_id(), alice_).status, IsOk());
  EXPECT_THAT(Get(job.job_id(), alice_).status,
              HasCode(grpc::StatusCode::NOT_FOUND, HasSubstr("show_deleted")));
  const Reply<v1::Job> shown = Get(job.job_id(), alice_, /*show_deleted=*/true);
  ASSERT_THAT(shown.status, IsOk());
  EXPECT_EQ(shown.response.status(), v1::Job::DELETED);
}

// ---------------------------------------------------------------------------
// ListJobs

TEST_F(TimerServiceTest, ListJobsShowsOnlyTheCallersJobsAndPages) {
  // Listed by (create_time, job_id): the clock moves between creates so that
  // creation order is listing order.
  const v1::Job a1 = CreateOk(alice_, "a1");
  clock_.Advance(absl::Seconds(1));
  const v1::Job b1 = CreateOk(bob_, "b1");
  clock_.Advance(absl::Seconds(1));
  const v1::Job a2 = CreateOk(alice_, "a2");

  v1::ListJobsRequest request;
  request.set_page_size(1);
  std::vector<std::string> seen;
  for (int page = 0; page < 5; ++page) {
    const Reply<v1::ListJobsResponse> reply = List(request, alice_);
    ASSERT_THAT(reply.status, IsOk());
    ASSERT_THAT(reply.response.jobs(), SizeIs(1));
    seen.push_back(reply.response.jobs(0).job_id());
    if (reply.response.next_page_token().empty()) break;
    request.set_page_token(reply.response.next_page_token());
  }
  EXPECT_THAT(seen, ElementsAre(a1.job_id(), a2.job_id()));
  EXPECT_THAT(ListIds(bob_), ElementsAre(b1.job_id()));
}

TEST_F(TimerServiceTest, ListJobsWithANegativePageSizeIsInvalidArgument) {
  v1::ListJobsRequest request;
  request.set_page_size(-1);
  EXPECT_THAT(List(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("page_size")));
}

TEST_F(TimerServiceTest, ListJobsWithAForeignPageTokenIsInvalidArgument) {
  v1::ListJobsRequest request;
  request.set_page_token("not-a-token");
  EXPECT_THAT(List(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("page_token")));
}

// ---------------------------------------------------------------------------
// UpdateJob

v1::UpdateJobRequest Rename(const v1::Job& job, const std::string& name,
                            const std::string& etag) {
  v1::UpdateJobRequest request;
  request.mutable_job()->set_job_id(job.job_id());
  request.mutable_job()->set_name(name);
  request.mutable_job()->set_etag(etag);
  request.mutable_update_mask()->add_paths("name");
  return request;
}

TEST_F(TimerServiceTest, UpdateJobChangesTheMaskedFieldsAndTheEtag) {
  const v1::Job job = CreateOk(alice_, "before");
  const Reply<v1::Job> updated = Update(Rename(job, "after", job.etag()), alice_);
  ASSERT_THAT(updated.status, IsOk());
  EXPECT_EQ(updated.response.name(), "after");
  EXPECT_EQ(updated.response.status(), v1::Job::UPDATED);
  EXPECT_NE(updated.response.etag(), job.etag());
  EXPECT_EQ(Get(job.job_id(), alice_).response.name(), "after");
}

TEST_F(TimerServiceTest, UpdateJobWithAStaleEtagIsAbortedAndChangesNothing) {
  const v1::Job job = CreateOk(alice_, "before");
  ASSERT_THAT(Update(Rename(job, "first", job.etag()), alice_).status, IsOk());
  EXPECT_THAT(Update(Rename(job, "second", job.etag()), alice_).status,
              HasCode(grpc::StatusCode::ABORTED, HasSubstr("etag")));
  EXPECT_EQ(Get(job.job_id(), alice_).response.name(), "first");
}

TEST_F(TimerServiceTest, UpdateJobWithoutAnUpdateMaskIsInvalidArgument) {
  const v1::Job job = CreateOk(alice_);
  v1::UpdateJobRequest request = Rename(job, "after", "");
  request.clear_update_mask();
  EXPECT_THAT(Update(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("update_mask")));
}

TEST_F(TimerServiceTest, UpdateJobOfAFieldThatCannotChangeIsInvalidArgument) {
  const v1::Job job = CreateOk(alice_);
  v1::UpdateJobRequest request = Rename(job, "after", "");
  request.mutable_update_mask()->add_paths("owner");
  EXPECT_THAT(Update(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT,
                      AllOf(HasSubstr("update_mask"), HasSubstr("owner"))));
  EXPECT_EQ(Get(job.job_id(), alice_).response.name(), job.name());
}

TEST_F(TimerServiceTest, UpdateJobToAnInvalidJobIsInvalidArgumentNamingTheField) {
  const v1::Job job = CreateOk(alice_);
  v1::UpdateJobRequest request;
  request.mutable_job()->set_job_id(job.job_id());
  request.mutable_job()->mutable_schedule()->set_interval_seconds(-5);
  request.mutable_update_mask()->add_paths("schedule.interval_seconds");
  EXPECT_THAT(Update(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT,
                      HasSubstr("job.schedule.interval_seconds")));
}

TEST_F(TimerServiceTest, UpdateJobWithABadJobIdIsInvalidArgument) {
  v1::UpdateJobRequest request;
  request.mutable_job()->set_job_id("nope");
  request.mutable_update_mask()->add_paths("name");
  EXPECT_THAT(Update(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("job_id")));
}

TEST_F(TimerServiceTest, UpdateJobOfAnotherIdentitysJobIsNotFoundAndChangesNothing) {
  const v1::Job job = CreateOk(alice_, "mine");
  EXPECT_THAT(Update(Rename(job, "stolen", ""), bob_).status,
              HasCode(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(Get(job.job_id(), alice_).response.name(), "mine");
}

TEST_F(TimerServiceTest, UpdateJobOfADeletedJobIsNotFound) {
  const v1::Job job = CreateOk(alice_);
  ASSERT_THAT(Delete(job.job_id(), alice_).status, IsOk());
  EXPECT_THAT(Update(Rename(job, "after", ""), alice_).status,
              HasCode(grpc::StatusCode::NOT_FOUND));
}

// ---------------------------------------------------------------------------
// DeleteJob

TEST_F(TimerServiceTest, DeleteJobReturnsTheDeletedJob) {
  const v1::Job job = CreateOk(alice_);
  const Reply<v1::Job> deleted = Delete(job.job_id(), alice_, job.etag());
  ASSERT_THAT(deleted.status, IsOk());
  EXPECT_EQ(deleted.response.status(), v1::Job::DELETED);
  EXPECT_TRUE(deleted.response.has_delete_time());
  EXPECT_FALSE(deleted.response.has_next_run());
  EXPECT_THAT(ListIds(alice_), IsEmpty());
}

TEST_F(TimerServiceTest, DeleteJobWithAStaleEtagIsAbortedAndKeepsTheJob) {
  const v1::Job job = CreateOk(alice_);
  ASSERT_THAT(Update(Rename(job, "renamed", ""), alice_).status, IsOk());
  EXPECT_THAT(Delete(job.job_id(), alice_, job.etag()).status,
              HasCode(grpc::StatusCode::ABORTED, HasSubstr("etag")));
  EXPECT_THAT(ListIds(alice_), ElementsAre(job.job_id()));
}

TEST_F(TimerServiceTest, DeleteJobTwiceIsNotFound) {
  const v1::Job job = CreateOk(alice_);
  ASSERT_THAT(Delete(job.job_id(), alice_).status, IsOk());
  EXPECT_THAT(Delete(job.job_id(), alice_).status, HasCode(grpc::StatusCode::NOT_FOUND));
}

TEST_F(TimerServiceTest, DeleteJobOfAnotherIdentitysJobIsNotFoundAndKeepsIt) {
  const v1::Job job = CreateOk(alice_);
  EXPECT_THAT(Delete(job.job_id(), bob_).status, HasCode(grpc::StatusCode::NOT_FOUND));
  EXPECT_THAT(ListIds(alice_), ElementsAre(job.job_id()));
}

TEST_F(TimerServiceTest, DeleteJobWithABadJobIdIsInvalidArgument) {
  EXPECT_THAT(Delete("", alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("job_id")));
}

// ---------------------------------------------------------------------------
// PauseJob and ResumeJob

TEST_F(TimerServiceTest, PauseJobThenResumeJobPutsTheJobBackOnItsSchedule) {
  const v1::Job job = CreateOk(alice_);
  const Reply<v1::Job> paused = Pause(job.job_id(), alice_);
  ASSERT_THAT(paused.status, IsOk());
  EXPECT_EQ(paused.response.status(), v1::Job::PAUSED);
  EXPECT_FALSE(paused.response.has_next_run());

  const Reply<v1::Job> resumed = Resume(job.job_id(), alice_);
  ASSERT_THAT(resumed.status, IsOk());
  EXPECT_EQ(resumed.response.status(), v1::Job::NEW);
  EXPECT_TRUE(resumed.response.has_next_run());
}

// A job that has ended: stop_after_runs 1, run once by hand.
v1::CreateJobRequest OneRunOnly() {
  v1::CreateJobRequest request = ValidCreate("once");
  request.mutable_job()->mutable_schedule()->set_stop_after_runs(1);
  return request;
}

TEST_F(TimerServiceTest, PauseJobAndResumeJobOfAnEndedJobAreFailedPrecondition) {
  const Reply<v1::Job> created = Create(OneRunOnly(), alice_);
  ASSERT_THAT(created.status, IsOk());
  const Reply<v1::Job> ran = RunNow(created.response.job_id(), alice_);
  ASSERT_THAT(ran.status, IsOk());
  ASSERT_EQ(ran.response.status(), v1::Job::ENDED);

  EXPECT_THAT(Pause(created.response.job_id(), alice_).status,
              HasCode(grpc::StatusCode::FAILED_PRECONDITION, HasSubstr("ended")));
  EXPECT_THAT(Resume(created.response.job_id(), alice_).status,
              HasCode(grpc::StatusCode::FAILED_PRECONDITION, HasSubstr("ended")));
}

TEST_F(TimerServiceTest, PauseJobAndResumeJobOfAnotherIdentitysJobAreNotFound) {
  const v1::Job job = CreateOk(alice_);
  EXPECT_THAT(Pause(job.job_id(), bob_).status, HasCode(grpc::StatusCode::NOT_FOUND));
  EXPECT_THAT(Resume(job.job_id(), bob_).status, HasCode(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(Get(job.job_id(), alice_).response.status(), v1::Job::NEW);
}

TEST_F(TimerServiceTest, PauseJobAndResumeJobOfADeletedJobAreNotFound) {
  const v1::Job job = CreateOk(alice_);
  ASSERT_THAT(Delete(job.job_id(), alice_).status, IsOk());
  EXPECT_THAT(Pause(job.job_id(), alice_).status, HasCode(grpc::StatusCode::NOT_FOUND));
  EXPECT_THAT(Resume(job.job_id(), alice_).status, HasCode(grpc::StatusCode::NOT_FOUND));
}

TEST_F(TimerServiceTest, PauseJobAndResumeJobWithABadJobIdAreInvalidArgument) {
  EXPECT_THAT(Pause("x", alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("job_id")));
  EXPECT_THAT(Resume("x", alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("job_id")));
}

// ---------------------------------------------------------------------------
// RunJobNow

TEST_F(TimerServiceTest, RunJobNowRecordsAPendingManualRun) {
  const v1::Job job = CreateOk(alice_);
  const Reply<v1::Job> ran = RunNow(job.job_id(), alice_, "run-1");
  ASSERT_THAT(ran.status, IsOk());
  EXPECT_EQ(ran.response.n_runs(), 1);
  EXPECT_EQ(ran.response.last_run_number(), 1);

  v1::ListJobResultsRequest request;
  request.set_job_id(job.job_id());
  const Reply<v1::ListJobResultsResponse> results = Results(request, alice_);
  ASSERT_THAT(results.status, IsOk());
  ASSERT_THAT(results.response.results(), SizeIs(1));
  EXPECT_EQ(results.response.results(0).run_number(), 1);
  EXPECT_TRUE(results.response.results(0).manual());
  EXPECT_EQ(results.response.results(0).request_id(), "run-1");
  EXPECT_EQ(results.response.results(0).status(), v1::JobResult::PENDING);
}

TEST_F(TimerServiceTest, RunJobNowRetriedWithTheSameRequestIdRecordsOneRun) {
  const v1::Job job = CreateOk(alice_);
  ASSERT_THAT(RunNow(job.job_id(), alice_, "run-1").status, IsOk());
  const Reply<v1::Job> again = RunNow(job.job_id(), alice_, "run-1");
  ASSERT_THAT(again.status, IsOk());
  EXPECT_EQ(again.response.n_runs(), 1);
}

TEST_F(TimerServiceTest, RunJobNowWithABadRequestIdIsInvalidArgument) {
  const v1::Job job = CreateOk(alice_);
  EXPECT_THAT(RunNow(job.job_id(), alice_, std::string(129, 'r')).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("request_id")));
  EXPECT_EQ(Get(job.job_id(), alice_).response.n_runs(), 0);
}

TEST_F(TimerServiceTest, RunJobNowWithABadJobIdIsInvalidArgument) {
  EXPECT_THAT(RunNow("", alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("job_id")));
}

TEST_F(TimerServiceTest, RunJobNowOfAnotherIdentitysJobIsNotFoundAndRecordsNothing) {
  const v1::Job job = CreateOk(alice_);
  EXPECT_THAT(RunNow(job.job_id(), bob_).status, HasCode(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(Get(job.job_id(), alice_).response.n_runs(), 0);
}

TEST_F(TimerServiceTest, RunJobNowOfADeletedJobIsNotFound) {
  const v1::Job job = CreateOk(alice_);
  ASSERT_THAT(Delete(job.job_id(), alice_).status, IsOk());
  EXPECT_THAT(RunNow(job.job_id(), alice_).status, HasCode(grpc::StatusCode::NOT_FOUND));
}

TEST_F(TimerServiceTest, RunJobNowOfAnEndedJobIsFailedPreconditionAndRecordsNothing) {
  const Reply<v1::Job> created = Create(OneRunOnly(), alice_);
  ASSERT_THAT(created.status, IsOk());
  ASSERT_EQ(RunNow(created.response.job_id(), alice_, "last").response.status(),
            v1::Job::ENDED);
  EXPECT_THAT(RunNow(created.response.job_id(), alice_).status,
              HasCode(grpc::StatusCode::FAILED_PRECONDITION, HasSubstr("ended")));
  // A retry of the run that ended it is still that run.
  EXPECT_THAT(RunNow(created.response.job_id(), alice_, "last").status, IsOk());
  EXPECT_EQ(Get(created.response.job_id(), alice_).response.n_runs(), 1);
}

// ---------------------------------------------------------------------------
// ListJobResults

TEST_F(TimerServiceTest, ListJobResultsPagesNewestFirst) {
  const v1::Job job = CreateOk(alice_);
  for (int i = 0; i < 3; ++i) ASSERT_THAT(RunNow(job.job_id(), alice_).status, IsOk());
  v1::ListJobResultsRequest request;
  request.set_job_id(job.job_id());
  request.set_page_size(2);
  const Reply<v1::ListJobResultsResponse> first = Results(request, alice_);
  ASSERT_THAT(first.status, IsOk());
  ASSERT_THAT(first.response.results(), SizeIs(2));
  EXPECT_EQ(first.response.results(0).run_number(), 3);
  EXPECT_EQ(first.response.results(1).run_number(), 2);
  ASSERT_FALSE(first.response.next_page_token().empty());

  request.set_page_token(first.response.next_page_token());
  const Reply<v1::ListJobResultsResponse> second = Results(request, alice_);
  ASSERT_THAT(second.status, IsOk());
  ASSERT_THAT(second.response.results(), SizeIs(1));
  EXPECT_EQ(second.response.results(0).run_number(), 1);
  EXPECT_TRUE(second.response.next_page_token().empty());
}

TEST_F(TimerServiceTest, ListJobResultsOfAnotherIdentitysJobIsNotFound) {
  const v1::Job job = CreateOk(alice_);
  ASSERT_THAT(RunNow(job.job_id(), alice_).status, IsOk());
  v1::ListJobResultsRequest request;
  request.set_job_id(job.job_id());
  EXPECT_THAT(Results(request, bob_).status, HasCode(grpc::StatusCode::NOT_FOUND));
}

TEST_F(TimerServiceTest, ListJobResultsOfAnUnknownJobIsNotFound) {
  v1::ListJobResultsRequest request;
  request.set_job_id(domain::NewUuid());
  EXPECT_THAT(Results(request, alice_).status, HasCode(grpc::StatusCode::NOT_FOUND));
}

TEST_F(TimerServiceTest, ListJobResultsWithBadArgumentsIsInvalidArgumentNamingThem) {
  const v1::Job job = CreateOk(alice_);
  v1::ListJobResultsRequest request;
  EXPECT_THAT(Results(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("job_id")));
  request.set_job_id(job.job_id());
  request.set_page_size(-1);
  EXPECT_THAT(Results(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("page_size")));
  request.set_page_size(0);
  request.set_page_token("garbage");
  EXPECT_THAT(Results(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("page_token")));
}

// ---------------------------------------------------------------------------
// ListActionProviders and GetActionProvider

TEST_F(TimerServiceTest, ListActionProvidersPagesByName) {
  v1::ListActionProvidersRequest request;
  request.set_page_size(1);
  Reply<v1::ListActionProvidersResponse> first =
      Call(&v1::TimerService::Stub::ListActionProviders, request, alice_);
  ASSERT_THAT(first.status, IsOk());
  ASSERT_THAT(first.response.action_providers(), SizeIs(1));
  EXPECT_EQ(first.response.action_providers(0).name(), "fake");
  ASSERT_FALSE(first.response.next_page_token().empty());

  request.set_page_token(first.response.next_page_token());
  Reply<v1::ListActionProvidersResponse> second =
      Call(&v1::TimerService::Stub::ListActionProviders, request, alice_);
  ASSERT_THAT(second.status, IsOk());
  ASSERT_THAT(second.response.action_providers(), SizeIs(1));
  EXPECT_EQ(second.response.action_providers(0).name(), "other");
  EXPECT_TRUE(second.response.next_page_token().empty());
}

TEST_F(TimerServiceTest, ListActionProvidersWithANegativePageSizeIsInvalidArgument) {
  v1::ListActionProvidersRequest request;
  request.set_page_size(-1);
  EXPECT_THAT(Call(&v1::TimerService::Stub::ListActionProviders, request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("page_size")));
}

TEST_F(TimerServiceTest, GetActionProviderReturnsItsDescription) {
  v1::GetActionProviderRequest request;
  request.set_name("fake");
  const Reply<v1::ActionProvider> reply =
      Call(&v1::TimerService::Stub::GetActionProvider, request, alice_);
  ASSERT_THAT(reply.status, IsOk());
  EXPECT_EQ(reply.response.name(), "fake");
  EXPECT_EQ(reply.response.version(), "1.0.0");
}

TEST_F(TimerServiceTest, GetActionProviderWithoutANameIsInvalidArgument) {
  EXPECT_THAT(Call(&v1::TimerService::Stub::GetActionProvider,
                   v1::GetActionProviderRequest(), alice_)
                  .status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("name")));
}

TEST_F(TimerServiceTest, GetActionProviderOfAnUnknownProviderIsNotFound) {
  v1::GetActionProviderRequest request;
  request.set_name("missing");
  EXPECT_THAT(Call(&v1::TimerService::Stub::GetActionProvider, request, alice_).status,
              HasCode(grpc::StatusCode::NOT_FOUND, HasSubstr("missing")));
}

// ---------------------------------------------------------------------------
// BackfillJob

class BackfillJobTest : public TimerServiceTest {
 protected:
  // An hourly job of alice's that started ten hours ago.
  v1::Job CreatePast() {
    v1::CreateJobRequest request = ValidCreate();
    *request.mutable_job()->mutable_schedule()->mutable_start() =
        domain::ToProto(clock_.Now() - absl::Hours(10));
    Reply<v1::Job> reply = Create(request, alice_);
    EXPECT_THAT(reply.status, IsOk());
    return reply.response;
  }

  Reply<v1::BackfillJobResponse> Backfill(const std::string& job_id, absl::Time from,
                                          absl::Time to, const std::string& token) {
    v1::BackfillJobRequest request;
    request.set_job_id(job_id);
    *request.mutable_start_time() = domain::ToProto(from);
    *request.mutable_end_time() = domain::ToProto(to);
    request.set_request_id("fill");
    return Call(&v1::TimerService::Stub::BackfillJob, request, token);
  }
};

TEST_F(BackfillJobTest, RecordsTheRangesSlotsAsPendingBackfillRuns) {
  const v1::Job job = CreatePast();
  const absl::Time start = domain::FromProto(job.schedule().start());
  const Reply<v1::BackfillJobResponse> reply =
      Backfill(job.job_id(), start, start + absl::Hours(3), alice_);
  ASSERT_THAT(reply.status, IsOk());
  EXPECT_EQ(reply.response.job().job_id(), job.job_id());
  EXPECT_EQ(reply.response.job().last_run_number(), 3);
  ASSERT_THAT(reply.response.results(), SizeIs(3));
  for (int i = 0; i < 3; ++i) {
    const v1::JobResult& run = reply.response.results(i);
    EXPECT_EQ(run.run_number(), i + 1);
    EXPECT_TRUE(run.backfill());
    EXPECT_EQ(run.status(), v1::JobResult::PENDING);
    EXPECT_EQ(domain::FromProto(run.scheduled_time()), start + absl::Hours(i));
  }
  // Retried: the same runs, nothing new.
  const Reply<v1::BackfillJobResponse> again =
      Backfill(job.job_id(), start, start + absl::Hours(3), alice_);
  ASSERT_THAT(again.status, IsOk());
  ASSERT_THAT(again.response.results(), SizeIs(3));
  EXPECT_EQ(again.response.results(2).run_number(), 3);
  EXPECT_EQ(Get(job.job_id(), alice_).response.last_run_number(), 3);
}

TEST_F(BackfillJobTest, ARangeEndingInTheFutureIsInvalidArgumentNamingTheField) {
  const v1::Job job = CreatePast();
  EXPECT_THAT(Backfill(job.job_id(), clock_.Now() - absl::Hours(1),
                       clock_.Now() + absl::Hours(1), alice_)
                  .status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT,
                      HasSubstr("end_time: must not be after now")));
  EXPECT_EQ(Get(job.job_id(), alice_).response.last_run_number(), 0);
}

TEST_F(BackfillJobTest, AnotherIdentitysJobIsNotFoundAndRecordsNothing) {
  const v1::Job job = CreatePast();
  EXPECT_THAT(
      Backfill(job.job_id(), clock_.Now() - absl::Hours(5), clock_.Now(), bob_).status,
      HasCode(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(Get(job.job_id(), alice_).response.last_run_number(), 0);
}

// PreviewSchedule

// 2026-03-28T00:00:00Z + h hours + m minutes.
google::protobuf::Timestamp March2026(int day, int h, int m) {
  google::protobuf::Timestamp t;
  t.set_seconds(absl::ToUnixSeconds(
      absl::FromCivil(absl::CivilMinute(2026, 3, day, h, m), absl::UTCTimeZone())));
  return t;
}

v1::Schedule BerlinCron(const std::string& expr) {
  v1::Schedule s;
  s.set_cron(expr);
  s.set_time_zone("Europe/Berlin");
  return s;
}

std::vector<int64_t> NominalSeconds(const v1::PreviewScheduleResponse& r) {
  std::vector<int64_t> out;
  for (const v1::PreviewEntry& e : r.entries()) out.push_back(e.nominal_time().seconds());
  return out;
}

class PreviewScheduleTest : public TimerServiceTest {
 protected:
  Reply<v1::PreviewScheduleResponse> Preview(const v1::PreviewScheduleRequest& request,
                                             const std::string& token) {
    return Call(&v1::TimerService::Stub::PreviewSchedule, request, token);
  }
  // A cron job of alice's, `0 2 * * *` in Europe/Berlin from 2026-03-27.
  v1::Job CreateCronJob() {
    v1::CreateJobRequest request = ValidCreate("nightly");
    *request.mutable_job()->mutable_schedule() = BerlinCron("0 2 * * *");
    *request.mutable_job()->mutable_schedule()->mutable_start() = March2026(27, 0, 0);
    Reply<v1::Job> created = Create(request, alice_);
    EXPECT_THAT(created.status, IsOk());
    return created.response;
  }
};

TEST_F(PreviewScheduleTest, ByJobIdListsItsSlotsAndIsNotFoundForAnotherOwner) {
  const v1::Job job = CreateCronJob();
  v1::PreviewScheduleRequest request;
  request.set_job_id(job.job_id());
  *request.mutable_from() = March2026(28, 0, 0);
  request.set_count(3);
  const Reply<v1::PreviewScheduleResponse> reply = Preview(request, alice_);
  ASSERT_THAT(reply.status, IsOk());
  EXPECT_EQ(reply.response.description(), "cron '0 2 * * *' in Europe/Berlin");
  // 02:00 CET (01:00Z); on the 29th 02:00 does not exist: 03:00 CEST, 01:00Z;
  // then 02:00 CEST (00:00Z).
  EXPECT_EQ(
      NominalSeconds(reply.response),
      (std::vector<int64_t>{March2026(28, 1, 0).seconds(), March2026(29, 1, 0).seconds(),
                            March2026(30, 0, 0).seconds()}));
  for (const v1::PreviewEntry& e : reply.response.entries()) {
    EXPECT_EQ(e.disposition(), v1::PreviewEntry::FIRES);
    EXPECT_EQ(e.fire_time().seconds(), e.nominal_time().seconds());
  }
  EXPECT_THAT(
      reply.response.entries(1).why(),
      AllOf(HasSubstr("does not exist"), HasSubstr("first instant after the gap")));
  EXPECT_FALSE(reply.response.ended());

  // Another identity's job, an unknown job and a deleted one are not found,
  // and a job_id that is not a UUID is refused.
  EXPECT_THAT(Preview(request, bob_).status, HasCode(grpc::StatusCode::NOT_FOUND));
  v1::PreviewScheduleRequest unknown = request;
  unknown.set_job_id(domain::NewUuid());
  EXPECT_THAT(Preview(unknown, alice_).status, HasCode(grpc::StatusCode::NOT_FOUND));
  v1::PreviewScheduleRequest bad = request;
  bad.set_job_id("not-a-uuid");
  EXPECT_THAT(Preview(bad, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("job_id")));
  ASSERT_THAT(Delete(job.job_id(), alice_).status, IsOk());
  EXPECT_THAT(Preview(request, alice_).status, HasCode(grpc::StatusCode::NOT_FOUND));
}

TEST_F(PreviewScheduleTest, OfAnUnsubmittedScheduleWritesNothing) {
  v1::PreviewScheduleRequest request;
  *request.mutable_schedule() = BerlinCron("30 2 * * *");
  request.mutable_schedule()->set_dst_gap(v1::DST_GAP_SHIFT);
  *request.mutable_from() = March2026(28, 0, 0);
  request.set_count(3);
  const Reply<v1::PreviewScheduleResponse> reply = Preview(request, alice_);
  ASSERT_THAT(reply.status, IsOk());
  // 02:30 CET (01:30Z); on the 29th shifted by the gap to 03:30 CEST (01:30Z);
  // then 02:30 CEST (00:30Z).
  EXPECT_EQ(NominalSeconds(reply.response),
            (std::vector<int64_t>{March2026(28, 1, 30).seconds(),
                                  March2026(29, 1, 30).seconds(),
                                  March2026(30, 0, 30).seconds()}));
  EXPECT_THAT(reply.response.entries(1).why(), HasSubstr("shifted by the gap"));
  EXPECT_EQ(reply.response.description(), "cron '30 2 * * *' in Europe/Berlin");
  EXPECT_THAT(ListIds(alice_), IsEmpty());

  // A once schedule lists its one slot, then says it ended.
  v1::PreviewScheduleRequest once;
  once.mutable_schedule()->set_once(true);
  *once.mutable_schedule()->mutable_start() = March2026(28, 18, 0);
  *once.mutable_from() = March2026(28, 0, 0);
  const Reply<v1::PreviewScheduleResponse> one = Preview(once, alice_);
  ASSERT_THAT(one.status, IsOk());
  EXPECT_EQ(NominalSeconds(one.response),
            std::vector<int64_t>{March2026(28, 18, 0).seconds()});
  EXPECT_TRUE(one.response.ended());
  EXPECT_EQ(one.response.description(), "once at 2026-03-28T18:00:00Z");
}

TEST_F(PreviewScheduleTest, CountDefaultsToTenAndIsBounded) {
  v1::PreviewScheduleRequest request;
  *request.mutable_schedule() = BerlinCron("*/5 * * * *");
  *request.mutable_from() = March2026(28, 0, 0);
  Reply<v1::PreviewScheduleResponse> reply = Preview(request, alice_);
  ASSERT_THAT(reply.status, IsOk());
  EXPECT_THAT(reply.response.entries(), SizeIs(10));

  request.set_count(1000);
  reply = Preview(request, alice_);
  ASSERT_THAT(reply.status, IsOk());
  EXPECT_THAT(reply.response.entries(), SizeIs(1000));

  for (int count : {1001, -1, 1 << 30}) {
    request.set_count(count);
    EXPECT_THAT(Preview(request, alice_).status,
                HasCode(grpc::StatusCode::INVALID_ARGUMENT,
                        AllOf(HasSubstr("count"), HasSubstr("1000"))))
        << count;
  }
}

TEST_F(PreviewScheduleTest, ABadScheduleIsInvalidArgumentNamingTheFieldAndPosition) {
  v1::PreviewScheduleRequest request;
  *request.mutable_schedule() = BerlinCron("0 25 * * *");
  EXPECT_THAT(Preview(request, alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT,
                      AllOf(HasSubstr("schedule.cron"), HasSubstr("field 2 (hours)"),
                            HasSubstr("position 3"))));
  *request.mutable_schedule() = BerlinCron("0 2 * * *");
  request.mutable_schedule()->set_time_zone("Europe/Atlantis");
  EXPECT_THAT(Preview(request, alice_).status, HasCode(grpc::StatusCode::INVALID_ARGUMENT,
                                                       HasSubstr("schedule.time_zone")));
  // Neither a job nor a schedule.
  EXPECT_THAT(Preview(v1::PreviewScheduleRequest(), alice_).status,
              HasCode(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("job_id")));
  // Without credentials, nothing is looked at.
  EXPECT_THAT(Preview(request, "").status, HasCode(grpc::StatusCode::UNAUTHENTICATED));
}

TEST_F(PreviewScheduleTest, OfAnEndedJobListsNothingAndSaysWhy) {
  const Reply<v1::Job> created = Create(OneRunOnly(), alice_);
  ASSERT_THAT(created.status, IsOk());
  ASSERT_EQ(RunNow(created.response.job_id(), alice_).response.status(), v1::Job::ENDED);
  v1::PreviewScheduleRequest request;
  request.set_job_id(created.response.job_id());
  const Reply<v1::PreviewScheduleResponse> reply = Preview(request, alice_);
  ASSERT_THAT(reply.status, IsOk());
  EXPECT_THAT(reply.response.entries(), IsEmpty());
  EXPECT_TRUE(reply.response.ended());
  EXPECT_THAT(reply.response.end_reason(),
              AllOf(HasSubstr("ended"), HasSubstr("STOP_AFTER_RUNS")));
  EXPECT_EQ(reply.response.description(), "every 3600s");
}

}  // namespace
}  // namespace timer::api
