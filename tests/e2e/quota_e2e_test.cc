// Per-identity bounds against the installed timerd (issue 18, H5 and H6):
// a create-and-delete loop of big jobs stops at the stored-bytes limit and
// the purge of deleted jobs frees the room again; a RunJobNow flood stops
// at the identity's share of active runs, and deleting the job cancels
// them. Each prints what it measured (docs/RELIABILITY.md, "Abuse").
// Bounded: a few dozen 1 MB writes and a few hundred small calls.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cli_fixture.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

// A field of /proc/PID/status ("Threads", "VmRSS"), as a number.
int64_t ProcStatus(pid_t pid, const std::string& field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    std::string value(absl::StripAsciiWhitespace(line.substr(field.size() + 1)));
    if (absl::EndsWith(value, " kB")) value.resize(value.size() - 3);
    int64_t n = 0;
    (void)absl::SimpleAtoi(value, &n);
    return n;
  }
  return 0;
}

int64_t FileSize(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(size);
}

class QuotaE2eTest : public CliTest {
 protected:
  void Prepare(grpc::ClientContext* ctx) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    ctx->AddMetadata("authorization", "Bearer " + token_);
  }
  std::unique_ptr<v1::TimerService::Stub> Stub() {
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(8 << 20);
    return v1::TimerService::NewStub(
        grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args));
  }
  std::unique_ptr<Daemon> StartWith(const std::string& config) {
    const std::string path = tmp_.path() + "/timerd.toml";
    std::ofstream(path) << config;
    return StartTimerd({"--config", path});
  }
  static v1::CreateJobRequest NoopJob(const std::string& body) {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name("quota");
    job->mutable_schedule()->set_interval_seconds(86400);
    // First slot a day away: only manual runs happen.
    job->mutable_schedule()->mutable_start()->set_seconds(
        absl::ToUnixSeconds(absl::Now()) + 86400);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body(body);
    return req;
  }
  grpc::Status Create(v1::TimerService::Stub& stub, const v1::CreateJobRequest& req,
                      v1::Job* out) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    return stub.CreateJob(&ctx, req, out);
  }
  grpc::Status Delete(v1::TimerService::Stub& stub, const std::string& id) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::DeleteJobRequest req;
    req.set_job_id(id);
    v1::Job out;
    return stub.DeleteJob(&ctx, req, &out);
  }
};

TEST_F(QuotaE2eTest, ACreateDeleteLoopOfBigJobsStopsAtTheStoredBytesLimitUntilPurged) {
  // 16 jobs of a quarter megabyte fill 4 MiB: the same count as with bigger
  // jobs and a bigger limit, at a quarter of the bytes (the test runs under
  // AddressSanitizer too, where every byte copied costs).
  constexpr int64_t kLimit = 4 << 20;
  constexpr int kRounds = 24;
  auto daemon = StartWith(absl::StrCat("max_stored_bytes_per_identity = ", kLimit, "\n"));
  auto stub = Stub();
  // About 250 KB as stored: a body the noop provider accepts.
  const v1::CreateJobRequest big =
      NoopJob(absl::StrCat(R"({"fail_message":")", std::string(250'000, 'x'), R"("})"));
  int made = 0, refused = 0;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kRounds; ++i) {
    v1::Job job;
    const grpc::Status created = Create(*stub, big, &job);
    if (!created.ok()) {
      EXPECT_EQ(created.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << created.error_message();
      EXPECT_TRUE(
          absl::StrContains(created.error_message(), "max_stored_bytes_per_identity"))
          << created.error_message();
      ++refused;
      continue;
    }
    ++made;
    ASSERT_TRUE(Delete(*stub, job.job_id()).ok());
  }
  const absl::Duration took = absl::Now() - start;
  const int64_t db = FileSize(data_dir_ + "/timer.db");
  const int64_t wal = FileSize(data_dir_ + "/timer.db-wal");
  std::printf(
      "[quota] %d create+delete rounds of 250 KB jobs in %.1f s: %d made, %d refused; "
      "timer.db %.1f MB, WAL %.1f MB; timerd RSS %ld MB\n",
      kRounds, absl::ToDoubleSeconds(took), made, refused, db / 1e6, wal / 1e6,
      static_cast<long>(ProcStatus(daemon->pid(), "VmRSS") / 1024));
  // 16 jobs of a little over 250,000 bytes fit in 4 MiB, a 17th does not.
  EXPECT_EQ(made, 16);
  EXPECT_EQ(refused, kRounds - 16);
  EXPECT_LT(db, 2 * kLimit + (2 << 20));

  // Deleted jobs purged at start (retention 0 days): there is room again.
  ASSERT_EQ(daemon->Stop(SIGTERM), 0) << daemon->log();
  daemon = StartWith(absl::StrCat("max_stored_bytes_per_identity = ", kLimit,
                                  "\ndeleted_jobs_retention_days = 0\n"));
  EXPECT_TRUE(daemon->WaitForLog("purged 16 deleted jobs", absl::Seconds(20)))
      << daemon->log();
  stub = Stub();
  v1::Job job;
  const grpc::Status again = Create(*stub, big, &job);
  EXPECT_TRUE(again.ok()) << again.error_message();
}

TEST_F(QuotaE2eTest, ARunNowFloodStopsAtTheIdentitysShareAndADeleteCancelsItsRuns) {
  constexpr int kShare = 20;
  constexpr int kCalls = 300;
  auto daemon = StartWith(absl::StrCat("max_active_runs_per_identity = ", kShare,
                                       "\nrun_now_burst_per_identity = 1000\n"));
  auto stub = Stub();
  v1::CreateJobRequest req = NoopJob(R"({"delay_ms": 600000})");
  req.mutable_job()->set_overlap_policy(v1::ALLOW);
  req.mutable_job()->set_max_concurrent(100);
  v1::Job job;
  ASSERT_TRUE(Create(*stub, req, &job).ok());
  const int64_t threads_before = ProcStatus(daemon->pid(), "Threads");

  int ran = 0, refused = 0;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kCalls; ++i) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::RunJobNowRequest now;
    now.set_job_id(job.job_id());
    v1::Job out;
    const grpc::Status s = stub->RunJobNow(&ctx, now, &out);
    if (s.ok()) {
      ++ran;
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << s.error_message();
      EXPECT_TRUE(absl::StrContains(s.error_message(), "max_active_runs_per_identity"))
          << s.error_message();
      ++refused;
    }
  }
  const absl::Duration took = absl::Now() - start;
  const int64_t threads_after = ProcStatus(daemon->pid(), "Threads");
  EXPECT_EQ(ran, kShare);
  EXPECT_EQ(refused, kCalls - kShare);
  // The noop provider holds a thread per active action: at most the share.
  EXPECT_LE(threads_after - threads_before, kShare + 4);

  // The listener still answers, and a delete cancels the runs.
  ASSERT_TRUE(Delete(*stub, job.job_id()).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  int cancelled = 0;
  while (absl::Now() < deadline) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ListJobResultsRequest list;
    list.set_job_id(job.job_id());
    list.set_page_size(100);
    v1::ListJobResultsResponse results;
    ASSERT_TRUE(stub->ListJobResults(&ctx, list, &results).ok());
    cancelled = 0;
    for (const v1::JobResult& r : results.results()) {
      cancelled += r.status() == v1::JobResult::CANCELLED;
    }
    if (cancelled == kShare) break;
    absl::SleepFor(absl::Milliseconds(100));  // Polling the server's state.
  }
  EXPECT_EQ(cancelled, kShare);
  std::printf(
      "[quota] %d RunJobNow calls in %.2f s: %d ran, %d refused; timerd threads "
      "%ld before, %ld after, %ld once the delete cancelled them\n",
      kCalls, absl::ToDoubleSeconds(took), ran, refused,
      static_cast<long>(threads_before), static_cast<long>(threads_after),
      static_cast<long>(ProcStatus(daemon->pid(), "Threads")));
}

}  // namespace
}  // namespace timer::testing
