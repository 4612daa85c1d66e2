// Three installed timerd replicas on one PostgreSQL (replica_cluster.h):
// 500 jobs at a 1 s interval for about 30 s; midway one replica is
// SIGKILLed, later another is SIGSTOPped for twice the lease and then
// SIGCONTed, and at the end the killed one is started again. Checked from
// outside the store, from the noop provider's record file of every replica
// (one line "JOB_ID/RUN_NUMBER UNIX_MS" per started run):
//   - no (job, run_number) was started twice, by one replica or two;
//   - every slot of every job has one start (a run starts less than one
//     interval after its slot, plus its write), except slots inside a
//     measured window (below), and no slot has two;
//   - every job still fires at the end;
//   - the failover times (and the lateness outside the windows) are
//     printed, and the failovers are bounded;
//   - the restarted replica takes shards again, and runs, without a restart
//     of the others.
//
// The jobs use the default missed-run policy, SKIP_MISSED: a slot whose
// time passed by a whole interval before its fire is recorded SKIPPED, not
// run, so slots that pass while nobody schedules the job are missing from
// the record files. The windows, measured from the record files:
//   - a failover (SIGKILL at t, or SIGSTOP at t): the victim's jobs are those
//     it started in the 2 s before t; F is the time from t until the last of
//     them was started again by another replica. Window: [t - 1.5 s,
//     t + F + 1 s] (a slot just before t may have been recorded, not
//     started, when the victim stopped: it is UNKNOWN, never run twice; the
//     second after F is the new holder's catch-up, see kCatchUpMs).
//   - a rejoin (SIGCONT, or a restart, at t): the surviving replicas hand
//     shards to the newcomer (drain, release, take: up to two renewals,
//     2/3 of the lease). R is the time from t until the newcomer started the
//     last of the jobs it took over; window [t, t + R].
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "replica_cluster.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::testing {
namespace {

constexpr int kJobs = 500;
// A failover window opens this long before its event: the victim may have
// recorded, and not started, the slot before it.
constexpr int64_t kLeadMs = 1500;
// A failover window closes one interval after the last of the victim's jobs
// ran again: the new holder fires all of them at once, late, and on a
// loaded machine that burst can push its own jobs' next slot past an
// interval too (seen once, under a load average of 9 on 2 cores).
constexpr int64_t kCatchUpMs = 1000;
// A run starts less than one interval (1 s) after its slot, plus at most
// this (its write and start): a start this close after a slot's time may be
// the late start of the slot before.
constexpr int64_t kStartMs = 100;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

// Sleeps until `unix_ms`: the test's timeline, not a wait for a condition.
void SleepUntilMs(int64_t unix_ms) {
  const int64_t wait = unix_ms - NowMs();
  if (wait > 0) absl::SleepFor(absl::Milliseconds(wait));
}

struct Window {
  std::string what;
  int64_t from_ms = 0, to_ms = 0;
  int64_t missed = 0;  // Slots missed inside it.
};

double Percentile(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return static_cast<double>(v[static_cast<size_t>(p * (v.size() - 1))]);
}

// The jobs `victim` started in [from_ms, to_ms).
std::set<std::string> StartedBy(const ReplicaCluster& c, int victim, int64_t from_ms,
                                int64_t to_ms) {
  std::set<std::string> jobs;
  for (const auto& r : c.Records(victim)) {
    if (r.unix_ms >= from_ms && r.unix_ms < to_ms) jobs.insert(r.job_id);
  }
  return jobs;
}

// Waits (at most `timeout`) until each of `jobs` has a start after `t_ms`
// recorded by a replica in `by`; returns the time from t_ms to the last
// such first start, or -1 on timeout. `missing` gets the jobs not seen.
int64_t AwaitStarts(const ReplicaCluster& c, const std::set<std::string>& jobs,
                    const std::vector<int>& by, int64_t t_ms, absl::Duration timeout,
                    std::set<std::string>* missing) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    std::map<std::string, int64_t> first;
    for (int i : by) {
      for (const auto& r : c.Records(i)) {
        if (r.unix_ms <= t_ms || !jobs.count(r.job_id)) continue;
        auto [it, added] = first.emplace(r.job_id, r.unix_ms);
        if (!added) it->second = std::min(it->second, r.unix_ms);
      }
    }
    if (first.size() == jobs.size()) {
      int64_t last = t_ms;
      for (const auto& [job, ms] : first) last = std::max(last, ms);
      return last - t_ms;
    }
    if (absl::Now() >= deadline) {
      missing->clear();
      for (const std::string& j : jobs) {
        if (!first.count(j)) missing->insert(j);
      }
      return -1;
    }
    absl::SleepFor(absl::Milliseconds(100));  // Polling the record files.
  }
}

TEST(ReplicasE2eTest, EveryRunOnceAcrossKillPauseAndRejoinWithMeasuredFailover) {
  const absl::Time test_start = absl::Now();
  absl::StatusOr<std::unique_ptr<ReplicaCluster>> made =
      ReplicaCluster::Create({.replicas = 3, .lease_ttl_ms = 3000, .extra_config = ""});
  ASSERT_TRUE(made.ok()) << made.status();  // No PostgreSQL: fail, never skip.
  ReplicaCluster& c = **made;
  absl::StatusOr<std::string> token = c.IssueToken("e2e@example.org");
  ASSERT_TRUE(token.ok()) << token.status();

  // The jobs are created through replica 0 while it runs alone, so it has
  // every job queued; the others get theirs with the shards they take (a
  // job created through a replica that does not hold its shard reaches the
  // holder by its rescan, every 5 leases: not what this test measures).
  ASSERT_TRUE(c.Start(0).ok());
  ASSERT_TRUE(c.WaitForBalance(absl::Seconds(15))) << c.log(0);
  const int64_t t0_ms = (NowMs() / 1000 + 10) * 1000;  // Slot 0: whole seconds.
  {
    std::vector<std::thread> creators;
    std::atomic<int> created{0};
    auto stub = c.Stub(0);  // One channel, made before the threads share it.
    for (int w = 0; w < 4; ++w) {
      creators.emplace_back([&, w] {
        for (int n = w; n < kJobs; n += 4) {
          v1::CreateJobRequest req;
          // A retry (after a timeout on a loaded machine) makes no second job.
          req.set_request_id(absl::StrCat("create-", n));
          v1::Job* job = req.mutable_job();
          job->set_name(absl::StrCat("r-", n));
          job->mutable_schedule()->mutable_start()->set_seconds(t0_ms / 1000);
          job->mutable_schedule()->set_interval_seconds(1);
          job->set_missed_run_policy(v1::SKIP_MISSED);
          job->mutable_action()->set_provider("noop");
          job->mutable_action()->set_body("{}");
          grpc::Status s;
          for (int attempt = 0; attempt < 5; ++attempt) {
            grpc::ClientContext ctx;
            PrepareContext(&ctx, *token);
            v1::Job out;
            s = stub->CreateJob(&ctx, req, &out);
            if (s.ok()) break;
          }
          if (s.ok()) {
            ++created;
          } else {
            ADD_FAILURE() << "create " << n << ": " << s.error_message();
          }
        }
      });
    }
    for (std::thread& t : creators) t.join();
    ASSERT_EQ(created.load(), kJobs);
  }
  ASSERT_TRUE(c.Start(1).ok());
  ASSERT_TRUE(c.Start(2).ok());
  ASSERT_TRUE(c.WaitForBalance(absl::Seconds(15))) << c.log(0) << c.log(1) << c.log(2);
  ASSERT_LT(NowMs(), t0_ms) << "setup took too long: the first slot passed";
  std::printf("replicas: 3 replicas up, %d jobs created, first slot in %lld ms\n", kJobs,
              static_cast<long long>(t0_ms - NowMs()));

  std::vector<Window> windows;
  // SIGKILL replica 0 after 8 s of firing.
  SleepUntilMs(t0_ms + 8000 + 300);
  const int64_t t_kill = NowMs();
  const std::set<std::string> killed_jobs = StartedBy(c, 0, t_kill - 2000, t_kill);
  c.Kill(0);
  std::set<std::string> missing;
  const int64_t f_kill =
      AwaitStarts(c, killed_jobs, {1, 2}, t_kill, absl::Seconds(20), &missing);
  ASSERT_GE(f_kill, 0) << missing.size() << " of the killed replica's "
                       << killed_jobs.size() << " jobs never fired again";
  windows.push_back({"SIGKILL", t_kill - kLeadMs, t_kill + f_kill + kCatchUpMs});

  // SIGSTOP replica 1 for twice the lease, then SIGCONT.
  SleepUntilMs(t0_ms + 16000 + 300);
  const int64_t t_stop = NowMs();
  const std::set<std::string> paused_jobs = StartedBy(c, 1, t_stop - 2000, t_stop);
  c.Pause(1);
  const int64_t f_stop =
      AwaitStarts(c, paused_jobs, {2}, t_stop, absl::Seconds(20), &missing);
  ASSERT_GE(f_stop, 0) << missing.size() << " of the paused replica's "
                       << paused_jobs.size() << " jobs never fired again";
  windows.push_back({"SIGSTOP", t_stop - kLeadMs, t_stop + f_stop + kCatchUpMs});
  SleepUntilMs(t_stop + 2 * c.options().lease_ttl_ms);
  const int64_t t_cont = NowMs();
  c.Resume(1);
  // It gets its share back without any restart.
  ASSERT_TRUE(c.WaitForBalance(absl::Seconds(15))) << c.log(1) << c.log(2);
  const int64_t t_cont_balanced = NowMs();

  // Start the killed replica again: it takes shards, the others keep going.
  SleepUntilMs(t0_ms + 27000);
  const int64_t t_restart = NowMs();
  ASSERT_TRUE(c.Start(0).ok());
  ASSERT_TRUE(c.WaitForBalance(absl::Seconds(15))) << c.log(0) << c.log(1) << c.log(2);
  const int64_t t_restart_balanced = NowMs();
  EXPECT_GT(c.HeldShards(0), 0);
  EXPECT_TRUE(c.running(1) && c.running(2));  // Never restarted.

  SleepUntilMs(std::max(t0_ms + 34000, NowMs() + 4000));
  const int64_t t_end = NowMs();

  // The rejoin windows, from the record files: until the newcomer started
  // the last of the jobs it took over.
  auto rejoin = [&](int replica, int64_t from_ms, int64_t to_ms, size_t* jobs) {
    std::map<std::string, int64_t> first;
    for (const auto& r : c.Records(replica)) {
      if (r.unix_ms < from_ms || r.unix_ms >= to_ms) continue;
      first.emplace(r.job_id, r.unix_ms);  // Lines are in start order.
    }
    int64_t last = from_ms;
    for (const auto& [job, ms] : first) last = std::max(last, ms);
    *jobs = first.size();
    return last - from_ms;
  };
  size_t cont_jobs = 0, restart_jobs = 0;
  const int64_t r_cont = rejoin(1, t_cont, t_restart, &cont_jobs);
  const int64_t r_restart = rejoin(0, t_restart, t_end, &restart_jobs);
  EXPECT_GT(cont_jobs, 0u) << "the resumed replica started nothing";
  EXPECT_GT(restart_jobs, 0u) << "the restarted replica started nothing";
  windows.push_back({"SIGCONT rejoin", t_cont, t_cont + r_cont});
  windows.push_back({"restart rejoin", t_restart, t_restart + r_restart});

  // --- Checks, from the record files ---
  std::map<std::string, std::vector<int64_t>> starts;  // job -> start times
  std::set<std::string> keys;
  int64_t repeats = 0, total = 0;
  for (int i = 0; i < c.size(); ++i) {
    for (const auto& r : c.Records(i)) {
      ++total;
      if (!keys.insert(absl::StrCat(r.job_id, "/", r.run_number)).second) {
        ++repeats;
        ADD_FAILURE() << "run started twice: " << r.job_id << "/" << r.run_number
                      << " (again by replica " << i << ")";
      }
      starts[r.job_id].push_back(r.unix_ms);
    }
  }
  EXPECT_EQ(repeats, 0);
  EXPECT_EQ(starts.size(), static_cast<size_t>(kJobs));

  // Every slot from the first to the last one 2 s before the end has a
  // start, or lies in a window.
  const int64_t last_slot = (t_end - 2000 - t0_ms) / 1000;
  std::vector<int64_t> lateness;
  int64_t slots = 0, missed_outside = 0, still_firing = 0, extra = 0;
  auto window_of = [&](int64_t slot) -> Window* {
    for (Window& w : windows) {
      if (slot >= w.from_ms && slot <= w.to_ms) return &w;
    }
    return nullptr;
  };
  for (auto& [job, ms] : starts) {
    std::sort(ms.begin(), ms.end());
    // A start belongs to the slot it follows: a run is started only if its
    // fire came less than one interval after its slot, so within 1 s plus
    // the write and the start. One just past the next slot's time is the
    // late start of the slot before when that slot has another start.
    std::map<int64_t, int64_t> slot_start;  // slot index -> start ms
    for (const int64_t m : ms) {
      int64_t k = (m - t0_ms) / 1000;
      if (slot_start.count(k)) {
        const int64_t prev = slot_start[k];
        if (prev - (t0_ms + k * 1000) < kStartMs && !slot_start.count(k - 1)) {
          slot_start[k - 1] = prev;  // The earlier one was the late start.
          slot_start[k] = m;
          continue;
        }
        ++extra;
        ADD_FAILURE() << "job " << job << " started twice in slot " << k << " (t0 + "
                      << prev - t0_ms << " and " << m - t0_ms << " ms)";
        continue;
      }
      slot_start[k] = m;
    }
    for (int64_t k = 0; k <= last_slot; ++k) {
      const int64_t slot = t0_ms + k * 1000;
      ++slots;
      auto it = slot_start.find(k);
      if (it != slot_start.end()) {
        if (window_of(slot) == nullptr) lateness.push_back(it->second - slot);
        continue;
      }
      if (Window* w = window_of(slot)) {
        ++w->missed;
      } else if (++missed_outside <= 20) {
        if (missed_outside <= 2) {
          // What the store says of the slot (the results around it).
          auto stub = c.Stub(2);
          grpc::ClientContext ctx;
          PrepareContext(&ctx, *token);
          v1::ListJobResultsRequest req;
          req.set_job_id(job);
          req.set_page_size(20);
          v1::ListJobResultsResponse page;
          grpc::Status st = stub->ListJobResults(&ctx, req, &page);
          std::printf("results of %s: %s %s\n", job.c_str(), st.error_message().c_str(),
                      page.ShortDebugString().c_str());
        }
        ADD_FAILURE() << "slot " << k << " of job " << job << " (t0 + " << slot - t0_ms
                      << " ms) not started; kill at t0 + " << t_kill - t0_ms
                      << ", stop at t0 + " << t_stop - t0_ms << ", cont at t0 + "
                      << t_cont - t0_ms << ", restart at t0 + " << t_restart - t0_ms;
      }
    }
    if (!ms.empty() && ms.back() >= t_end - 3000) ++still_firing;
  }
  EXPECT_EQ(extra, 0);
  EXPECT_EQ(missed_outside, 0);
  EXPECT_EQ(still_firing, kJobs) << "jobs that stopped firing";

  std::printf(
      "replicas: %lld starts recorded, %zu distinct runs, 0 repeated expected (%lld); "
      "%lld slots checked, %lld missed outside the windows\n",
      static_cast<long long>(total), keys.size(), static_cast<long long>(repeats),
      static_cast<long long>(slots), static_cast<long long>(missed_outside));
  std::printf("replicas: failover after SIGKILL: %lld ms (%zu jobs moved)\n",
              static_cast<long long>(f_kill), killed_jobs.size());
  std::printf("replicas: failover after SIGSTOP: %lld ms (%zu jobs moved)\n",
              static_cast<long long>(f_stop), paused_jobs.size());
  std::printf(
      "replicas: rejoin after SIGCONT: balanced after %lld ms, its %zu jobs all ran "
      "after %lld ms\n",
      static_cast<long long>(t_cont_balanced - t_cont), cont_jobs,
      static_cast<long long>(r_cont));
  std::printf(
      "replicas: rejoin after restart: balanced after %lld ms, its %zu jobs all ran "
      "after %lld ms\n",
      static_cast<long long>(t_restart_balanced - t_restart), restart_jobs,
      static_cast<long long>(r_restart));
  for (const Window& w : windows) {
    std::printf("replicas: window %-15s %6lld ms, %lld slots missed in it\n",
                w.what.c_str(), static_cast<long long>(w.to_ms - w.from_ms),
                static_cast<long long>(w.missed));
  }
  std::printf(
      "replicas: lateness outside windows p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
      Percentile(lateness, 0.5), Percentile(lateness, 0.99), Percentile(lateness, 1.0));
  std::printf("replicas: test took %.1f s\n",
              absl::ToDoubleSeconds(absl::Now() - test_start));
  for (int i = 0; i < c.size(); ++i) EXPECT_EQ(c.Stop(i), 0) << c.log(i);
  if (::testing::Test::HasFailure()) {
    // Starts per second after t0, per replica.
    for (int i = 0; i < c.size(); ++i) {
      std::map<int64_t, int> per_second;
      for (const auto& r : c.Records(i)) ++per_second[(r.unix_ms - t0_ms) / 1000];
      std::string line = absl::StrCat("replica ", i, " starts per second:");
      for (const auto& [sec, n] : per_second) absl::StrAppend(&line, " ", sec, ":", n);
      std::printf("%s\n", line.c_str());
    }
    for (int i = 0; i < c.size(); ++i) {
      std::printf("--- replica %d (t0 = %lld) ---\n%s", i, static_cast<long long>(t0_ms),
                  c.log(i).c_str());
    }
  }
  // The issue's target is 5 s; allow for a loaded CI machine.
  EXPECT_LE(f_kill, 10000);
  EXPECT_LE(f_stop, 10000);
}

}  // namespace
}  // namespace timer::testing
