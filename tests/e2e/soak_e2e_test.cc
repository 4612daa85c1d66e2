// Load and soak, bounded: 10,000 jobs firing (every 10 s: ~1,000 runs a
// second) while 64 clients do mixed CRUD for a fixed time and 8 watchers
// follow the jobs of 8 of the clients. Asserts zero unexpected errors, bounded memory
// growth of timerd, watchers never dropped and their sequences increasing, and counts
// consistent at the end: every job a client created and did not delete is listed, every
// deleted one is DELETED, and every firing job has one result per passed slot (one more
// may be in flight).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli_fixture.h"
#include "event_stream.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

constexpr int kJobs = 10000;
constexpr int kClients = 64;
constexpr int kWatchers = 8;
constexpr int64_t kInterval = 10;

int64_t RssKb(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kb = 0;
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)),
                             &kb);
      return kb;
    }
  }
  return 0;
}

class SoakE2eTest : public CliTest {
 protected:
  std::shared_ptr<grpc::Channel> NewChannel() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
  }
  void Prepare(grpc::ClientContext* ctx, absl::Duration d = absl::Seconds(20)) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
    ctx->AddMetadata("authorization", "Bearer " + token_);
  }
  static v1::CreateJobRequest NewJob(const std::string& name, int64_t start_s,
                                     int64_t interval) {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name(name);
    job->mutable_schedule()->mutable_start()->set_seconds(start_s);
    job->mutable_schedule()->set_interval_seconds(interval);
    job->mutable_action()->set_provider("noop");
    job->mutable_action()->set_body("{}");
    return req;
  }

  absl::Mutex mu_;
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
  void Error(std::string what) {
    absl::MutexLock lock(&mu_);
    if (errors_.size() < 20) errors_.push_back(std::move(what));
  }
};

TEST_F(SoakE2eTest, MixedLoadWhileTenThousandJobsFire) {
  const std::string config = tmp_.path() + "/timerd.toml";
  // One identity makes every call, thousands a second.
  std::ofstream(config) << "max_jobs_per_identity = 100000\n"
                           "max_stored_jobs_per_identity = 1000000\n"
                           "write_rate_per_identity = 1000000\n"
                           "write_burst_per_identity = 10000000\n";
  auto daemon = StartTimerd({"--config", config});

  // 10,000 jobs, starts spread over one interval, created by 16 threads.
  const int64_t base = absl::ToUnixSeconds(absl::Now()) + 2;
  std::vector<std::string> firing(kJobs);
  {
    std::vector<std::thread> creators;
    for (int t = 0; t < 16; ++t) {
      creators.emplace_back([&, t] {
        auto stub = v1::TimerService::NewStub(NewChannel());
        for (int i = t; i < kJobs; i += 16) {
          grpc::ClientContext ctx;
          Prepare(&ctx);
          v1::Job out;
          const grpc::Status s = stub->CreateJob(
              &ctx, NewJob(absl::StrCat("firing-", i), base + i % kInterval, kInterval),
              &out);
          if (!s.ok()) Error(absl::StrCat("create firing: ", s.error_message()));
          firing[i] = out.job_id();
        }
      });
    }
    for (std::thread& t : creators) t.join();
  }
  const int64_t rss_loaded = RssKb(daemon->pid());

  // Watchers of everything, from now on.
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<grpc::ClientContext>> watch_ctx(kWatchers);
  std::vector<std::thread> watchers;
  std::atomic<int64_t> events{0};
  for (int w = 0; w < kWatchers; ++w) {
    watch_ctx[w] = std::make_unique<grpc::ClientContext>();
    Prepare(watch_ctx[w].get(), absl::Minutes(5));
    watchers.emplace_back([&, w] {
      auto stub = v1::TimerService::NewStub(NewChannel());
      // Each watcher follows one client's jobs (the firing ones' runs would
      // be ~2,000 events a second per watcher: the watch benchmark's job).
      v1::WatchJobsRequest req;
      req.set_name_contains(absl::StrCat("c", w, "-"));
      auto stream = e2e::Events(stub->WatchJobs(watch_ctx[w].get(), req));
      v1::JobEvent e;
      int64_t last = 0;
      while (stream->Read(&e)) {
        if (e.type() != v1::JobEvent::SNAPSHOT && e.type() != v1::JobEvent::RESET) {
          if (e.sequence() <= last)
            Error(absl::StrCat("watcher ", w, ": sequence went back"));
          ++events;
        }
        last = e.sequence();
      }
      const grpc::Status s = stream->Finish();
      if (!stop.load() || s.error_code() != grpc::StatusCode::CANCELLED) {
        Error(absl::StrCat("watcher ", w, " ended early (", s.error_code(),
                           "): ", s.error_message()));
      }
    });
  }

  // 64 clients, mixed CRUD on their own jobs, for a fixed time.
  absl::Mutex mine_mu;
  std::map<std::string, bool> mine;  // job_id -> deleted
  std::atomic<int64_t> calls{0};
  std::vector<std::thread> clients;
  const absl::Time end = absl::Now() + absl::Seconds(20);
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto stub = v1::TimerService::NewStub(NewChannel());
      std::mt19937 rng(c);
      std::vector<std::string> live;
      int n = 0;
      while (absl::Now() < end) {
        const int op = std::uniform_int_distribution<int>(0, 9)(rng);
        grpc::ClientContext ctx;
        Prepare(&ctx);
        grpc::Status s;
        if (live.empty() || op < 3) {
          v1::Job out;
          s = stub->CreateJob(
              &ctx, NewJob(absl::StrCat("c", c, "-", n++), base + 3600, 3600), &out);
          if (s.ok()) {
            live.push_back(out.job_id());
            absl::MutexLock lock(&mine_mu);
            mine[out.job_id()] = false;
          }
        } else if (op < 5) {
          v1::GetJobRequest req;
          req.set_job_id(live[n++ % live.size()]);
          v1::Job out;
          s = stub->GetJob(&ctx, req, &out);
        } else if (op < 6) {
          v1::ListJobsRequest req;
          req.set_page_size(100);
          v1::ListJobsResponse out;
          s = stub->ListJobs(&ctx, req, &out);
        } else if (op < 8) {
          v1::UpdateJobRequest req;
          req.mutable_job()->set_job_id(live[n++ % live.size()]);
          req.mutable_job()->set_name(absl::StrCat("renamed-", c, "-", n));
          req.mutable_update_mask()->add_paths("name");
          v1::Job out;
          s = stub->UpdateJob(&ctx, req, &out);
        } else {
          const size_t i = n++ % live.size();
          v1::DeleteJobRequest req;
          req.set_job_id(live[i]);
          v1::Job out;
          s = stub->DeleteJob(&ctx, req, &out);
          if (s.ok()) {
            absl::MutexLock lock(&mine_mu);
            mine[live[i]] = true;
            live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
          }
        }
        ++calls;
        if (!s.ok())
          Error(absl::StrCat("client ", c, " op ", op, ": ", s.error_message()));
      }
    });
  }
  for (std::thread& t : clients) t.join();
  const int64_t rss_end = RssKb(daemon->pid());
  stop.store(true);
  for (auto& ctx : watch_ctx) ctx->TryCancel();
  for (std::thread& t : watchers) t.join();

  // Counts: every client job listed as the clients left it.
  auto stub = v1::TimerService::NewStub(NewChannel());
  std::map<std::string, v1::Job> listed;
  std::string token;
  do {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::ListJobsRequest req;
    req.set_show_deleted(true);
    req.set_page_size(1000);
    req.set_page_token(token);
    v1::ListJobsResponse page;
    ASSERT_TRUE(stub->ListJobs(&ctx, req, &page).ok());
    for (v1::Job& j : *page.mutable_jobs()) listed[j.job_id()] = std::move(j);
    token = page.next_page_token();
  } while (!token.empty());
  EXPECT_EQ(listed.size(), kJobs + mine.size());
  for (const auto& [id, deleted] : mine) {
    auto it = listed.find(id);
    ASSERT_NE(it, listed.end()) << id;
    EXPECT_EQ(it->second.status() == v1::Job::DELETED, deleted) << id;
  }
  // Every firing job: one run per slot passed since it was created, give or
  // take the one firing right now (each job's run count read with its
  // next_run, together). A job created after its start (creating 10,000 on a
  // busy machine can take longer than the 2 s head start) begins at its first
  // slot at or after its creation, as CreateJob promises.
  int64_t runs = 0;
  for (const std::string& id : firing) {
    const v1::Job& job = listed[id];
    const int64_t start_us = job.schedule().start().seconds() * 1000000;
    const int64_t created_us =
        job.create_time().seconds() * 1000000 + job.create_time().nanos() / 1000;
    const int64_t interval_us = kInterval * 1000000;
    const int64_t first_slot =
        created_us <= start_us ? 0
                               : (created_us - start_us + interval_us - 1) / interval_us;
    const int64_t next_slot =
        (job.next_run().seconds() - job.schedule().start().seconds()) / kInterval;
    const int64_t slots = next_slot - first_slot;
    EXPECT_NEAR(static_cast<double>(job.n_runs() + job.n_skipped()),
                static_cast<double>(slots), 1.0)
        << id;
    runs += job.n_runs();
  }

  {
    absl::MutexLock lock(&mu_);
    for (const std::string& e : errors_) ADD_FAILURE() << e;
    EXPECT_TRUE(errors_.empty());
  }
  // Memory: the clients' own jobs and results add some; a leak per call
  // (about a million calls would be needed to notice 100 MB) would not fit.
  const int64_t growth_mb = (rss_end - rss_loaded) / 1024;
  EXPECT_LT(growth_mb, 200) << "timerd RSS " << rss_loaded / 1024 << " MB -> "
                            << rss_end / 1024 << " MB";
  std::printf(
      "soak: %d firing jobs, %lld runs; %d clients made %lld calls; %d watchers got %lld "
      "events; timerd RSS %lld MB after loading, %lld MB at the end\n",
      kJobs, static_cast<long long>(runs), kClients, static_cast<long long>(calls.load()),
      kWatchers, static_cast<long long>(events.load()),
      static_cast<long long>(rss_loaded / 1024), static_cast<long long>(rss_end / 1024));
}

}  // namespace
}  // namespace timer::testing
