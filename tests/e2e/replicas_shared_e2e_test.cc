// State that two installed timerd replicas share through PostgreSQL
// (replica_cluster.h): tokens issued and revoked with `timerd token
// --store`, request ids retried against the other replica, and the
// per-identity job limit, which must bound what an identity keeps in total,
// whichever replicas it calls.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "replica_cluster.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

class ReplicasSharedE2eTest : public ::testing::Test {
 protected:
  void StartReplicas(const std::string& extra_config = "") {
    absl::StatusOr<std::unique_ptr<ReplicaCluster>> made = ReplicaCluster::Create(
        {.replicas = 2, .lease_ttl_ms = 3000, .extra_config = extra_config});
    ASSERT_TRUE(made.ok()) << made.status();  // No PostgreSQL: fail, never skip.
    c_ = std::move(*made);
    ASSERT_TRUE(c_->StartAll().ok());
    ASSERT_TRUE(c_->WaitForBalance(absl::Seconds(15))) << c_->log(0) << c_->log(1);
    stubs_.push_back(c_->Stub(0));
    stubs_.push_back(c_->Stub(1));
  }

  std::string Token(const std::string& identity) {
    absl::StatusOr<std::string> token = c_->IssueToken(identity);
    EXPECT_TRUE(token.ok()) << token.status();
    return token.value_or("");
  }

  grpc::Status List(int replica, const std::string& token) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, token);
    v1::ListJobsRequest req;
    v1::ListJobsResponse out;
    return stubs_[replica]->ListJobs(&ctx, req, &out);
  }

  int CountJobs(int replica, const std::string& token) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, token);
    v1::ListJobsRequest req;
    req.set_page_size(1000);
    v1::ListJobsResponse out;
    grpc::Status s = stubs_[replica]->ListJobs(&ctx, req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.jobs_size();
  }

  static v1::CreateJobRequest NewJob(const std::string& name,
                                     const std::string& request_id = "") {
    v1::CreateJobRequest req;
    req.set_request_id(request_id);
    v1::Job* job = req.mutable_job();
    job->set_name(name);
    // Far in the future: these jobs never fire by themselves.
    job->mutable_schedule()->mutable_start()->set_seconds(
        absl::ToUnixSeconds(absl::Now()) + 86400);
    job->mutable_schedule()->set_interval_seconds(3600);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body("{}");
    return req;
  }

  grpc::Status Create(int replica, const std::string& token,
                      const v1::CreateJobRequest& req, v1::Job* out) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, token);
    return stubs_[replica]->CreateJob(&ctx, req, out);
  }

  std::unique_ptr<ReplicaCluster> c_;
  std::vector<std::unique_ptr<v1::TimerService::Stub>> stubs_;
};

TEST_F(ReplicasSharedE2eTest, ATokenIssuedOrRevokedInPostgresHoldsOnEveryReplica) {
  StartReplicas();
  // Issued while both run: accepted by both at once.
  const std::string token = Token("alice@example.org");
  for (int i = 0; i < 2; ++i) {
    grpc::Status s = List(i, token);
    EXPECT_TRUE(s.ok()) << "replica " << i << ": " << s.error_message();
  }
  const std::string other = Token("bob@example.org");
  ASSERT_TRUE(c_->RevokeToken(token).ok());
  // Refused by every replica from its next call; the other token still works.
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(List(i, token).error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << "replica " << i;
    EXPECT_TRUE(List(i, other).ok()) << "replica " << i;
  }
}

TEST_F(ReplicasSharedE2eTest, ARequestIdRetriedOnTheOtherReplicaReturnsTheSameJob) {
  StartReplicas();
  const std::string token = Token("alice@example.org");
  const v1::CreateJobRequest req = NewJob("once", "create-once-1");
  v1::Job first, again;
  ASSERT_TRUE(Create(0, token, req, &first).ok());
  grpc::Status s = Create(1, token, req, &again);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(again.job_id(), first.job_id());
  EXPECT_EQ(CountJobs(0, token), 1);
  EXPECT_EQ(CountJobs(1, token), 1);
  // The same id for a different request is refused on either replica.
  v1::CreateJobRequest changed = NewJob("twice", "create-once-1");
  v1::Job refused;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(Create(i, token, changed, &refused).error_code(),
              grpc::StatusCode::ALREADY_EXISTS)
        << "replica " << i;
  }

  // RunJobNow with a request id: recorded by the replica that holds the
  // job's shard (the other answers UNAVAILABLE for now, and a client
  // retries). Retried on both replicas, it is one run, started once.
  v1::RunJobNowRequest now;
  now.set_job_id(first.job_id());
  now.set_request_id("run-now-1");
  int holder = -1;
  int64_t run_number = 0;
  for (int i = 0; i < 2 && holder < 0; ++i) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, token);
    v1::Job result;
    grpc::Status st = stubs_[i]->RunJobNow(&ctx, now, &result);
    if (st.ok()) {
      holder = i;
      run_number = result.last_run_number();
    } else {
      EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    }
  }
  ASSERT_GE(holder, 0) << "neither replica took RunJobNow";
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, token);
    v1::Job result;
    grpc::Status st = stubs_[i]->RunJobNow(&ctx, now, &result);
    if (st.ok()) {
      EXPECT_EQ(result.last_run_number(), run_number) << "replica " << i;
    } else {
      // The replica without the shard (see above): never a second run.
      EXPECT_NE(i, holder) << st.error_message();
      EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    }
  }
  // Started once, by the holder: wait for its start, then count them all.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (c_->Records(holder).empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));  // Polling the record file.
  }
  std::vector<ReplicaCluster::Record> all = c_->AllRecords();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].job_id, first.job_id());
  EXPECT_EQ(all[0].run_number, run_number);
}

// A hostile tenant alternating replicas, or calling both at once, keeps no
// more than max_jobs_per_identity live jobs in all; a delete through one
// replica makes room on the other.
TEST_F(ReplicasSharedE2eTest, TheJobLimitPerIdentityHoldsAcrossReplicas) {
  StartReplicas("max_jobs_per_identity = 5\n");
  const std::string token = Token("mallory@example.org");
  int ok = 0;
  std::vector<std::string> ids;
  for (int n = 0; n < 12; ++n) {
    v1::Job out;
    grpc::Status s = Create(n % 2, token, NewJob(absl::StrCat("alt-", n)), &out);
    if (s.ok()) {
      ++ok;
      ids.push_back(out.job_id());
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << s.error_message();
      EXPECT_NE(s.error_message().find("max_jobs_per_identity"), std::string::npos)
          << s.error_message();
    }
  }
  EXPECT_EQ(ok, 5);
  EXPECT_EQ(CountJobs(0, token), 5);

  // Both replicas at once, from several threads.
  const std::string token2 = Token("trudy@example.org");
  std::atomic<int> ok2{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto stub = c_->Stub(t % 2);  // Channels made above: shared, thread-safe.
      for (int n = 0; n < 6; ++n) {
        grpc::ClientContext ctx;
        PrepareContext(&ctx, token2);
        v1::Job out;
        if (stub->CreateJob(&ctx, NewJob(absl::StrCat("par-", t, "-", n)), &out).ok()) {
          ++ok2;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LE(ok2.load(), 5);
  EXPECT_LE(CountJobs(1, token2), 5);

  // Two deletes through replica 1 make room for two creates through 0.
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, token);
    v1::DeleteJobRequest del;
    del.set_job_id(ids[i]);
    v1::Job out;
    ASSERT_TRUE(stubs_[1]->DeleteJob(&ctx, del, &out).ok());
  }
  for (int n = 0; n < 3; ++n) {
    v1::Job out;
    grpc::Status s = Create(0, token, NewJob(absl::StrCat("after-", n)), &out);
    if (n < 2) {
      EXPECT_TRUE(s.ok()) << n << ": " << s.error_message();
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << s.error_message();
    }
  }
  EXPECT_EQ(CountJobs(1, token), 5);
  std::printf(
      "shared: alternating replicas, %d of 12 creates accepted (limit 5); "
      "four threads on both replicas, %d of 24 accepted\n",
      ok, ok2.load());
}

}  // namespace
}  // namespace timer::testing
