// The installed timerd on the PostgreSQL store (`--store postgres://...`),
// on a throwaway cluster (tests/support/pg_cluster.h): a token issued with
// `timerd token issue --store` authenticates, jobs are created, read and
// listed over gRPC, a job fires and its result is kept in PostgreSQL.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_fixture.h"
#include "pg_cluster.h"
#include "process.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

class PostgresE2eTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    absl::StatusOr<PgCluster*> pg = PgCluster::Get();
    ASSERT_TRUE(pg.ok()) << pg.status();  // No cluster: fail, never skip.
    absl::StatusOr<std::string> uri = (*pg)->NewDatabase();
    ASSERT_TRUE(uri.ok()) << uri.status();
    uri_ = *uri;
  }

  void Deadline(grpc::ClientContext* ctx, const std::string& token) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx->AddMetadata("authorization", "Bearer " + token);
  }

  std::string uri_;
};

TEST_F(PostgresE2eTest, TimerdServesJobsAndTokensFromPostgres) {
  // Issued into PostgreSQL (a new database: the command migrates it).
  token_ = IssueToken(kIdentity, {"--store", uri_});
  ASSERT_EQ(token_.rfind("tmr_", 0), 0u) << token_;
  auto daemon = StartTimerd({"--store", uri_});
  ASSERT_FALSE(address_.empty()) << daemon->log();
  EXPECT_TRUE(daemon->WaitForLog("store: PostgreSQL postgresql://postgres@127.0.0.1:",
                                 absl::Seconds(1)))
      << daemon->log();

  auto stub = v1::TimerService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name("pg-" + std::to_string(i));
    job->mutable_schedule()->set_interval_seconds(1);
    if (i == 0) job->mutable_schedule()->set_stop_after_runs(1);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body("{}");
    grpc::ClientContext ctx;
    Deadline(&ctx, token_);
    v1::Job out;
    grpc::Status s = stub->CreateJob(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(out.owner(), kIdentity);
    ids.push_back(out.job_id());
  }
  {
    v1::ListJobsRequest req;
    grpc::ClientContext ctx;
    Deadline(&ctx, token_);
    v1::ListJobsResponse out;
    grpc::Status s = stub->ListJobs(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> listed;
    for (const v1::Job& j : out.jobs()) listed.push_back(j.job_id());
    EXPECT_EQ(listed, ids);
  }
  // The first job fires once; its result is read back from PostgreSQL.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  v1::Job got;
  for (;;) {
    v1::GetJobRequest req;
    req.set_job_id(ids[0]);
    grpc::ClientContext ctx;
    Deadline(&ctx, token_);
    grpc::Status s = stub->GetJob(&ctx, req, &got);
    ASSERT_TRUE(s.ok()) << s.error_message();
    if (got.status() == v1::Job::ENDED && got.results_size() == 1 &&
        got.results(0).status() == v1::JobResult::SUCCEEDED) {
      break;
    }
    ASSERT_LT(absl::Now(), deadline) << got.ShortDebugString() << "\n" << daemon->log();
    absl::SleepFor(absl::Milliseconds(50));  // Polling the server's state.
  }
  EXPECT_EQ(got.results(0).run_number(), 1);

  // A token issued while timerd runs works at once; revoked, it is refused.
  const std::string second = IssueToken("bob@example.org", {"--store", uri_});
  {
    v1::ListJobsRequest req;
    grpc::ClientContext ctx;
    Deadline(&ctx, second);
    v1::ListJobsResponse out;
    grpc::Status s = stub->ListJobs(&ctx, req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(out.jobs_size(), 0);  // Bob's jobs: none.
  }
  const std::string id = second.substr(4, second.find('_', 4) - 4);
  RunResult revoked =
      timer::testing::Run({timerd_, "token", "revoke", id, "--store", uri_});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  {
    v1::ListJobsRequest req;
    grpc::ClientContext ctx;
    Deadline(&ctx, second);
    v1::ListJobsResponse out;
    EXPECT_EQ(stub->ListJobs(&ctx, req, &out).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // The SQLite store in the data directory was never made.
  EXPECT_FALSE(std::filesystem::exists(data_dir_ + "/timer.db"));
  EXPECT_EQ(daemon->Stop(SIGTERM), 0) << daemon->log();
}

}  // namespace
}  // namespace timer::testing
