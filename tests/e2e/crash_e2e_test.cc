// Crash consistency: timerd under a client load (creates, updates, deletes,
// jobs firing every 1-3 s) is killed with SIGKILL at random moments, at
// least 100 times (TIMER_CRASH_KILLS to change), and restarted each time on
// the same port and data. At the end:
//   - every job whose create was acknowledged exists, with the acknowledged
//     schedule and a name some update could have left (acknowledged, or in
//     flight at a kill);
//   - no acknowledged delete is undone, and no job is deleted that was never
//     asked to be;
//   - no run is executed twice: the noop provider's record of every start
//     (one line per JOB_ID/RUN_NUMBER) has no repeat;
//   - the grid has not moved: every scheduled run is at start + k * interval;
//   - the store passes PRAGMA integrity_check.
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli_fixture.h"
#include "store/sqlite_util.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

// What the clients were told, per job.
struct Acked {
  int64_t start_s = 0;
  int64_t interval_s = 0;
  // Names the job may have now: the acknowledged one, plus any whose update
  // was in flight when timerd died (it may or may not have committed).
  std::set<std::string> names;
  bool delete_acked = false;
  bool delete_maybe = false;
};

class CrashE2eTest : public CliTest {
 protected:
  std::shared_ptr<grpc::Channel> NewChannel() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // Reconnect quickly after each restart.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 300);
    return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
  }

  void Prepare(grpc::ClientContext* ctx) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    ctx->AddMetadata("authorization", "Bearer " + token_);
  }

  // One client: creates jobs, renames and deletes some of its own.
  void ClientLoop(int worker, const std::atomic<bool>& stop) {
    auto stub = v1::TimerService::NewStub(NewChannel());
    std::mt19937 rng(1234 + worker);
    std::vector<std::string> mine;
    int n = 0;
    while (!stop.load()) {
      const int action = std::uniform_int_distribution<int>(0, 9)(rng);
      // At most 100 live jobs per client (~400 jobs, ~200 fires a second).
      if (mine.size() < 20 || (action < 5 && mine.size() < 100)) {
        v1::CreateJobRequest req;
        v1::Job* job = req.mutable_job();
        job->set_name(absl::StrCat("w", worker, "-", n++));
        const int64_t interval = std::uniform_int_distribution<int64_t>(1, 3)(rng);
        const int64_t start = absl::ToUnixSeconds(absl::Now()) +
                              std::uniform_int_distribution<int64_t>(0, 2)(rng);
        job->mutable_schedule()->mutable_start()->set_seconds(start);
        job->mutable_schedule()->set_interval_seconds(interval);
        job->mutable_action()->set_provider("noop");
        job->mutable_action()->set_body("{}");
        grpc::ClientContext ctx;
        Prepare(&ctx);
        v1::Job created;
        if (stub->CreateJob(&ctx, req, &created).ok()) {
          absl::MutexLock lock(&mu_);
          acked_[created.job_id()] = Acked{start, interval, {job->name()}};
          ++creates_;
          mine.push_back(created.job_id());
        }
      } else if (action < 8) {
        const std::string& id =
            mine[std::uniform_int_distribution<size_t>(0, mine.size() - 1)(rng)];
        v1::UpdateJobRequest req;
        req.mutable_job()->set_job_id(id);
        const std::string name = absl::StrCat("renamed-", worker, "-", n++);
        req.mutable_job()->set_name(name);
        req.mutable_update_mask()->add_paths("name");
        {
          absl::MutexLock lock(&mu_);
          acked_[id].names.insert(name);  // Maybe, until acknowledged.
        }
        grpc::ClientContext ctx;
        Prepare(&ctx);
        v1::Job updated;
        const grpc::Status s = stub->UpdateJob(&ctx, req, &updated);
        absl::MutexLock lock(&mu_);
        if (s.ok()) {
          acked_[id].names = {name};
          ++updates_;
        }
      } else {
        const size_t i = std::uniform_int_distribution<size_t>(0, mine.size() - 1)(rng);
        const std::string id = mine[i];
        {
          absl::MutexLock lock(&mu_);
          acked_[id].delete_maybe = true;
        }
        v1::DeleteJobRequest req;
        req.set_job_id(id);
        grpc::ClientContext ctx;
        Prepare(&ctx);
        v1::Job deleted;
        const grpc::Status s = stub->DeleteJob(&ctx, req, &deleted);
        if (s.ok()) {
          absl::MutexLock lock(&mu_);
          acked_[id].delete_acked = true;
          ++deletes_;
        }
        // Acknowledged or not, this client leaves the job alone from now on.
        mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(i));
      }
      // A steady rate (~50 operations a second per client), not a wait.
      absl::SleepFor(absl::Milliseconds(up_.load() ? 20 : 50));
    }
  }

  absl::Mutex mu_;
  std::map<std::string, Acked> acked_ ABSL_GUARDED_BY(mu_);
  int64_t creates_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t updates_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t deletes_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> up_{true};
};

TEST_F(CrashE2eTest, NothingAcknowledgedIsLostAndNoRunRepeatsAcrossKills) {
  int kills = 100;
  if (const char* env = std::getenv("TIMER_CRASH_KILLS")) {
    ASSERT_TRUE(absl::SimpleAtoi(env, &kills)) << env;
  }
  const std::string record = tmp_.path() + "/noop-runs.log";
  const std::string config = tmp_.path() + "/timerd.toml";
  std::ofstream(config) << "[plugins.noop]\nrecord_file = \"" << record << "\"\n";
  auto daemon = StartTimerd({"--config", config});
  const std::string address = address_;

  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int w = 0; w < 4; ++w)
    clients.emplace_back([this, w, &stop] { ClientLoop(w, stop); });

  std::mt19937 rng(42);
  int survived = 0;
  for (int k = 0; k < kills; ++k) {
    // A random moment: the point of the test, not a wait for a condition.
    absl::SleepFor(
        absl::Milliseconds(std::uniform_int_distribution<int>(500, 3000)(rng)));
    up_.store(false);
    daemon->Stop(SIGKILL);
    daemon = std::make_unique<Daemon>(std::vector<std::string>{
        timerd_, "--listen", address, "--data-dir", data_dir_, "--config", config});
    ASSERT_TRUE(daemon->WaitForLog("listening on ", absl::Seconds(30)))
        << "restart " << k << ": " << daemon->log();
    up_.store(true);
    ++survived;
  }
  // A last stretch without kills, so runs fired after the last restart count.
  absl::SleepFor(absl::Seconds(2));
  stop.store(true);
  for (std::thread& t : clients) t.join();

  auto stub = v1::TimerService::NewStub(NewChannel());
  absl::MutexLock lock(&mu_);
  int64_t results_checked = 0;
  for (const auto& [id, want] : acked_) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::GetJobRequest get;
    get.set_job_id(id);
    get.set_show_deleted(true);
    v1::Job job;
    const grpc::Status s = stub->GetJob(&ctx, get, &job);
    ASSERT_TRUE(s.ok()) << "acknowledged job " << id << " is gone: " << s.error_message();
    EXPECT_EQ(job.schedule().start().seconds(), want.start_s) << id;
    EXPECT_EQ(job.schedule().interval_seconds(), want.interval_s) << id;
    EXPECT_TRUE(want.names.count(job.name())) << id << " is named " << job.name();
    if (want.delete_acked) {
      EXPECT_EQ(job.status(), v1::Job::DELETED) << id;
    }
    if (!want.delete_maybe) {
      EXPECT_NE(job.status(), v1::Job::DELETED) << id;
    }

    // Every kept result of the job: unique run numbers, all on the grid.
    std::set<int64_t> runs;
    std::string token;
    do {
      grpc::ClientContext rctx;
      Prepare(&rctx);
      v1::ListJobResultsRequest list;
      list.set_job_id(id);
      list.set_page_size(1000);
      list.set_page_token(token);
      v1::ListJobResultsResponse page;
      ASSERT_TRUE(stub->ListJobResults(&rctx, list, &page).ok()) << id;
      for (const v1::JobResult& r : page.results()) {
        EXPECT_TRUE(runs.insert(r.run_number()).second)
            << id << " run " << r.run_number();
        if (!r.manual()) {
          const int64_t offset = r.scheduled_time().seconds() - want.start_s;
          EXPECT_EQ(r.scheduled_time().nanos(), 0) << id;
          EXPECT_EQ(offset % want.interval_s, 0) << id << " run " << r.run_number();
        }
        ++results_checked;
      }
      token = page.next_page_token();
    } while (!token.empty());
  }

  // No start twice: one line per JOB_ID/RUN_NUMBER the provider was given.
  std::ifstream in(record);
  std::string line;
  std::set<std::string> started;
  int64_t repeats = 0;
  while (std::getline(in, line)) {
    const std::string key = line.substr(0, line.find(' '));
    if (!started.insert(key).second) {
      ++repeats;
      ADD_FAILURE() << "run started twice: " << key;
    }
  }
  EXPECT_EQ(repeats, 0);

  EXPECT_EQ(daemon->Stop(SIGTERM), 0) << daemon->log();
  absl::StatusOr<store::Db> db = store::Db::Open(data_dir_ + "/timer.db");
  ASSERT_TRUE(db.ok()) << db.status();
  absl::StatusOr<store::Stmt> check =
      store::Stmt::Prepare(db->get(), "PRAGMA integrity_check");
  ASSERT_TRUE(check.ok()) << check.status();
  absl::StatusOr<bool> row = check->Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(check->ColumnText(0), "ok");

  std::printf(
      "crash test: %d kills survived; %lld creates, %lld updates, %lld deletes "
      "acknowledged; "
      "%zu runs started, %lld results checked, 0 repeated\n",
      survived, static_cast<long long>(creates_), static_cast<long long>(updates_),
      static_cast<long long>(deletes_), started.size(),
      static_cast<long long>(results_checked));
  EXPECT_EQ(survived, kills);
  EXPECT_GT(started.size(), 0u);
}

}  // namespace
}  // namespace timer::testing
