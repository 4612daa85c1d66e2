// Several replicas on one store: two or three RunEngines, each with its own
// ShardLeases, on ONE MemoryStore whose clock is a fake. The test drives
// every replica's renewals and ticks itself (no threads of their own, no
// sleeps) and can stall one: a replica that stops renewing but keeps
// ticking (cut off from the store), or one frozen whole, its monotonic clock
// too (a paused VM: CLOCK_MONOTONIC does not count the pause). Each replica
// has its own provider recording every start; the assertions are on those
// starts: every (job, run_number) started once, by the replica that held the
// job's shard, and every slot either run or recorded missed.
#include "domain/shard_lease.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "domain/jobs.h"
#include "domain/run_engine.h"
#include "domain/run_now_relay.h"
#include "domain/time_util.h"
#include "store/memory_store.h"

namespace timer::domain {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);
const Identity kAlice{"alice", "token"};
constexpr absl::Duration kTtl = absl::Seconds(3);
constexpr absl::Duration kMargin = absl::Seconds(1);
constexpr absl::Duration kStep = absl::Seconds(1);  // ttl/3: one renewal a step.

// Records every start (instant success), with the time it was called.
class RecordingProvider final : public ActionProvider {
 public:
  explicit RecordingProvider(const Clock* clock) : clock_(clock) {
    info_.set_name("fake");
    info_.set_version("1.0.0");
    info_.set_input_schema("{}");
  }
  const v1::ActionProvider& info() const override { return info_; }
  absl::Status Validate(const Identity&, absl::string_view) override {
    return absl::OkStatus();
  }
  absl::StatusOr<ActionStatus> Start(absl::string_view request_id, const Identity&,
                                     absl::string_view) override {
    absl::MutexLock lock(&mu_);
    starts_.emplace_back(std::string(request_id), clock_->Now());
    ActionStatus st;
    st.action_id = absl::StrCat("a-", request_id);
    st.state = ActionStatus::State::kSucceeded;
    return st;
  }
  absl::StatusOr<ActionStatus> Status(absl::string_view action_id) override {
    ActionStatus st;
    st.action_id = std::string(action_id);
    st.state = ActionStatus::State::kSucceeded;
    return st;
  }
  absl::Status Cancel(absl::string_view) override { return absl::OkStatus(); }
  absl::Status Release(absl::string_view) override { return absl::OkStatus(); }

  // (request id "<job_id>/<run_number>", when started).
  std::vector<std::pair<std::string, absl::Time>> starts() const {
    absl::MutexLock lock(&mu_);
    return starts_;
  }

 private:
  const Clock* const clock_;
  v1::ActionProvider info_;
  mutable absl::Mutex mu_;
  std::vector<std::pair<std::string, absl::Time>> starts_ ABSL_GUARDED_BY(mu_);
};

struct Replica {
  Replica(store::MemoryStore* store, FakeClock* clock, int index)
      : monotonic(clock->Now()), provider(clock), registry({&provider}) {
    ShardLeases::Options lo;
    lo.replica_id = absl::StrCat("replica-", index);
    lo.host = "test";
    lo.ttl = kTtl;
    lo.margin = kMargin;
    lo.background = false;
    leases = std::make_unique<ShardLeases>(store, &monotonic, lo);
    RunEngine::Options eo;
    eo.background = false;
    eo.workers = 2;
    engine = std::make_unique<RunEngine>(store, clock, &registry, eo);
    leases->set_listener(engine.get());
    engine->set_leases(leases.get());
    jobs = std::make_unique<JobService>(store, clock, &registry);
    jobs->set_observer(engine.get());
  }
  ~Replica() {
    engine->Stop();
    leases->Stop();
  }

  FakeClock monotonic;  // This replica's own: frozen while it is.
  RecordingProvider provider;
  StaticRegistry registry;
  std::unique_ptr<ShardLeases> leases;
  std::unique_ptr<RunEngine> engine;
  std::unique_ptr<JobService> jobs;
  bool renews = true;   // false: cut off from the store (renewals lost).
  bool frozen = false;  // Nothing runs, its monotonic clock stands still.
  bool stopped = false;
};

class ShardLeaseTest : public ::testing::Test {
 protected:
  ShardLeaseTest()
      : clock_(kStart - absl::Seconds(5)), store_([this] { return clock_.Now(); }) {}

  void AddReplicas(int n) {
    for (int i = 0; i < n; ++i) {
      replicas_.push_back(std::make_unique<Replica>(&store_, &clock_,
                                                    static_cast<int>(replicas_.size())));
      ASSERT_TRUE(replicas_.back()->engine->Start().ok());
    }
  }

  // `n` jobs every `interval` seconds from kStart, created through replica 0
  // (before its leases: the replicas find them when they gain their shards).
  void CreateJobs(int n, int64_t interval, v1::MissedRunPolicy missed = v1::SKIP_MISSED) {
    for (int i = 0; i < n; ++i) {
      v1::CreateJobRequest req;
      v1::Job* job = req.mutable_job();
      *job->mutable_schedule()->mutable_start() = ToProto(kStart);
      job->mutable_schedule()->set_interval_seconds(interval);
      job->set_missed_run_policy(missed);
      job->mutable_action()->set_provider("fake");
      job->mutable_action()->set_body("{}");
      absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
      replicas_[0]->jobs->CreateJob(
          kAlice, req, [&](absl::StatusOr<v1::Job> j) { out = std::move(j); });
      ASSERT_TRUE(out.ok()) << out.status();
      job_ids_.push_back(out->job_id());
    }
  }

  // One step of time: every running replica renews (if it can), then ticks
  // and settles.
  void Step() {
    clock_.Advance(kStep);
    for (auto& r : replicas_) {
      if (!r->frozen && !r->stopped) r->monotonic.Advance(kStep);
    }
    for (auto& r : replicas_) {
      if (r->frozen || r->stopped || !r->renews) continue;
      ASSERT_TRUE(r->leases->Renew().ok());
    }
    for (auto& r : replicas_) {
      if (r->frozen || r->stopped) continue;
      // As the scheduler thread would: again while a tick fired something
      // (a fire can make its job due at once, e.g. after missed slots).
      for (int i = 0; i < 3; ++i) {
        const int fired = r->engine->Tick();
        r->engine->WaitIdle();
        if (fired == 0) break;
      }
    }
  }
  void Steps(int n) {
    for (int i = 0; i < n; ++i) Step();
  }

  std::vector<int> Held() const {
    std::vector<int> held;
    for (const auto& r : replicas_) held.push_back(r->leases->held());
    return held;
  }

  // Every start of every replica: request id -> (replica, time), failing on
  // any request id started twice.
  std::map<std::string, std::pair<int, absl::Time>> AllStarts() {
    std::map<std::string, std::pair<int, absl::Time>> all;
    for (size_t i = 0; i < replicas_.size(); ++i) {
      for (const auto& [id, at] : replicas_[i]->provider.starts()) {
        auto [it, fresh] = all.emplace(id, std::make_pair(static_cast<int>(i), at));
        EXPECT_TRUE(fresh) << id << " started by replica " << it->second.first
                           << " and again by replica " << i;
      }
    }
    return all;
  }

  // Run numbers started per job.
  static std::map<std::string, std::set<int64_t>> RunsByJob(
      const std::map<std::string, std::pair<int, absl::Time>>& starts) {
    std::map<std::string, std::set<int64_t>> runs;
    for (const auto& [id, who] : starts) {
      std::vector<std::string> parts = absl::StrSplit(id, '/');
      int64_t n = 0;
      EXPECT_TRUE(absl::SimpleAtoi(parts.at(1), &n));
      runs[parts[0]].insert(n);
    }
    return runs;
  }

  // The job's results from the store, by run number.
  std::map<int64_t, v1::JobResult> Results(const std::string& job_id) {
    std::map<int64_t, v1::JobResult> out;
    const std::vector<v1::JobResult> results =
        store_.ListResults("alice", job_id, 0, 1000).value();
    for (const v1::JobResult& r : results) out[r.run_number()] = r;
    return out;
  }

  FakeClock clock_;
  store::MemoryStore store_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::vector<std::string> job_ids_;
};

TEST_F(ShardLeaseTest, OptionsAreValidated) {
  ShardLeases::Options o;
  EXPECT_TRUE(ShardLeases::Validate(o).ok());
  o.margin = absl::Milliseconds(1500);  // Not below ttl/2.
  EXPECT_THAT(std::string(ShardLeases::Validate(o).message()),
              ::testing::HasSubstr("lease_margin_ms"));
  o.ttl = absl::ZeroDuration();
  EXPECT_THAT(std::string(ShardLeases::Validate(o).message()),
              ::testing::HasSubstr("lease_ttl_ms"));
}

TEST_F(ShardLeaseTest, ShardsDivideEvenlyAndEveryJobFiresOncePerSlot) {
  AddReplicas(3);
  CreateJobs(60, 10);
  Steps(4);  // Before kStart: the first replica takes all, then gives back.
  EXPECT_THAT(Held(), ::testing::ElementsAre(86, 86, 84));
  for (const auto& r : replicas_) EXPECT_EQ(r->leases->live_replicas(), 3);

  Steps(60);  // Six slots of every job.
  const auto starts = AllStarts();
  const auto runs = RunsByJob(starts);
  ASSERT_EQ(runs.size(), job_ids_.size());
  for (const auto& [job, numbers] : runs) {
    EXPECT_THAT(numbers, ::testing::ElementsAre(1, 2, 3, 4, 5, 6)) << job;
  }
  // Each by the replica holding its shard, all three at work.
  std::set<int> who;
  for (const auto& [id, by] : starts) {
    who.insert(by.first);
    const int shard = store::ShardOf(id.substr(0, id.find('/')));
    EXPECT_NE(replicas_[by.first]->leases->Epoch(shard), 0) << id;
  }
  EXPECT_EQ(who.size(), 3u);
}

TEST_F(ShardLeaseTest, AReplicaCutOffStartsNothingPastItsDeadlineAndOthersTakeOver) {
  AddReplicas(3);
  CreateJobs(60, 1);
  Steps(4);
  ASSERT_THAT(Held(), ::testing::ElementsAre(86, 86, 84));
  Steps(4);  // kStart-1s .. kStart+3s: running on every replica.

  // Replica 1 loses the store: its renewals stop, it keeps ticking.
  Replica& cut = *replicas_[1];
  std::set<std::string> its_jobs;
  for (const std::string& id : job_ids_) {
    if (cut.leases->Epoch(store::ShardOf(id)) != 0) its_jobs.insert(id);
  }
  ASSERT_FALSE(its_jobs.empty());
  cut.renews = false;
  const absl::Time last_renewal = clock_.Now();
  const absl::Time deadline = last_renewal + kTtl - kMargin;
  Steps(10);

  const auto starts = AllStarts();
  for (const auto& [id, at] : cut.provider.starts()) {
    EXPECT_LT(at, deadline) << id << " started past the local deadline";
  }
  // The others took its shards once the leases expired (ttl after the last
  // renewal, seen at the next renewal), and its jobs fired again.
  EXPECT_EQ(replicas_[0]->leases->held() + replicas_[2]->leases->held(), store::kShards);
  for (const std::string& id : its_jobs) {
    std::set<absl::Time> late;
    for (const auto& [req, by] : starts) {
      if (req.rfind(id, 0) == 0 && by.first != 1) late.insert(by.second);
    }
    ASSERT_FALSE(late.empty()) << id << " never fired again: "
                               << store_.LoadJob(id)->DebugString();
    EXPECT_LE(*late.begin(), last_renewal + kTtl + kStep + absl::Seconds(2)) << id;
  }
  // Slots missed meanwhile follow the missed-run policy (SKIP_MISSED): the
  // run after the gap records them missed; nothing ran twice (AllStarts) and
  // no run number was left behind PENDING but the ones the cut replica
  // recorded and did not start, which the new holder marked UNKNOWN.
  for (const std::string& id : its_jobs) {
    const v1::Job job = store_.LoadJob(id).value();
    EXPECT_GT(job.n_skipped(), 0) << id;
    for (const auto& [n, r] : Results(id)) {
      EXPECT_NE(r.status(), v1::JobResult::PENDING) << id << "/" << n;
      // Its reason names what happened: not "timerd was down".
      if (r.status() == v1::JobResult::SKIPPED) {
        EXPECT_THAT(r.error(), ::testing::HasSubstr("no replica was scheduling this job"))
            << id << "/" << n;
      }
      if (r.status() == v1::JobResult::UNKNOWN) {
        EXPECT_EQ(starts.count(absl::StrCat(id, "/", n)), 0u) << id << "/" << n;
      }
    }
  }
}

TEST_F(ShardLeaseTest, AFrozenReplicaThatWakesIsFencedOffThenGetsItsShareAgain) {
  AddReplicas(3);
  CreateJobs(60, 10);
  Steps(4);
  ASSERT_THAT(Held(), ::testing::ElementsAre(86, 86, 84));
  Steps(3);  // To kStart+2s: every job ran once.
  Replica& frozen = *replicas_[1];
  const size_t before = frozen.provider.starts().size();
  ASSERT_GT(before, 0u);

  // Frozen whole, its monotonic clock too, from kStart+2s (its last
  // renewal) to kStart+9.5s: its leases expire at kStart+5s and the others
  // take them then, and load its jobs, due at kStart+10s.
  frozen.frozen = true;
  Steps(7);
  ASSERT_EQ(replicas_[0]->leases->held() + replicas_[2]->leases->held(), store::kShards);

  // It wakes first. By its own clock its deadline has not passed, and its
  // jobs' kStart+10s slot is within its lookahead: it fires them before it
  // renews. The store refuses every one (the fence): nothing starts here.
  clock_.Advance(absl::Milliseconds(500));
  frozen.frozen = false;
  frozen.engine->Tick();
  frozen.engine->WaitIdle();
  clock_.Advance(absl::Milliseconds(500));
  frozen.engine->Tick();
  frozen.engine->WaitIdle();
  EXPECT_EQ(frozen.provider.starts().size(), before);
  // Its first renewal finds its leases taken.
  ASSERT_TRUE(frozen.leases->Renew().ok());
  EXPECT_EQ(frozen.leases->held(), 0);

  // The slot runs on the new holders; later renewals give it a share again.
  Steps(5);
  EXPECT_THAT(Held(), ::testing::UnorderedElementsAre(86, 86, 84));
  Steps(20);
  EXPECT_GT(frozen.provider.starts().size(), before);
  const auto starts = AllStarts();
  // Every job ran each of its slots kStart .. kStart+30s once.
  for (const auto& [job, numbers] : RunsByJob(starts)) {
    EXPECT_THAT(numbers, ::testing::ElementsAre(1, 2, 3, 4)) << job;
  }
  EXPECT_EQ(RunsByJob(starts).size(), job_ids_.size());
}

TEST_F(ShardLeaseTest, AReplicaThatStopsReleasesItsShardsAndOthersTakeThemAtOnce) {
  AddReplicas(3);
  CreateJobs(60, 2);
  Steps(4);
  ASSERT_THAT(Held(), ::testing::ElementsAre(86, 86, 84));
  Steps(4);
  Replica& leaving = *replicas_[2];
  leaving.engine->Stop();
  leaving.leases->Stop();
  leaving.stopped = true;
  EXPECT_EQ(leaving.leases->held(), 0);
  Step();  // One renewal each: the free shards are taken at once.
  EXPECT_EQ(replicas_[0]->leases->held() + replicas_[1]->leases->held(), store::kShards);
  EXPECT_EQ(replicas_[0]->leases->live_replicas(), 2);
  Steps(10);
  // No slot missed, none twice: every job ran every 2 s slot up to now.
  const auto runs = RunsByJob(AllStarts());
  ASSERT_EQ(runs.size(), job_ids_.size());
  for (const std::string& id : job_ids_) {
    EXPECT_EQ(store_.LoadJob(id)->n_skipped(), 0) << id;
    EXPECT_EQ(runs.at(id).size(), 8u) << id;  // kStart .. kStart+14s.
  }
}

TEST_F(ShardLeaseTest, ReplicasSettleQuicklyWhileShardsAreDividedAnewThenRenewAsUsual) {
  AddReplicas(1);
  Step();
  ASSERT_EQ(replicas_[0]->leases->held(), store::kShards);
  Steps(7);  // More than 2 ttl since the division last changed.
  EXPECT_FALSE(replicas_[0]->leases->settling());
  AddReplicas(1);
  Replica& a = *replicas_[0];
  Replica& b = *replicas_[1];
  // b joins: nothing is free, it holds less than its share.
  ASSERT_TRUE(b.leases->Renew().ok());
  EXPECT_EQ(b.leases->held(), 0);
  EXPECT_TRUE(b.leases->settling());
  // a sees two replicas: drains half, to release at its next renewal.
  ASSERT_TRUE(a.leases->Renew().ok());
  EXPECT_TRUE(a.leases->settling());
  ASSERT_TRUE(a.leases->Renew().ok());  // Released: a holds its share.
  EXPECT_EQ(a.leases->held(), store::kShards / 2);
  EXPECT_FALSE(a.leases->settling());
  ASSERT_TRUE(b.leases->Renew().ok());  // b takes them.
  EXPECT_EQ(b.leases->held(), store::kShards / 2);
  EXPECT_FALSE(b.leases->settling());
  // A third: 86/86/84. The one below its share settles for 2 ttl at most.
  AddReplicas(1);
  Steps(4);
  EXPECT_THAT(Held(), ::testing::ElementsAre(86, 86, 84));
  Steps(7);
  for (const auto& r : replicas_) EXPECT_FALSE(r->leases->settling());
}

TEST_F(ShardLeaseTest, AJobCreatedThroughAnotherReplicaFiresOnItsShardsHolder) {
  AddReplicas(2);
  Steps(4);
  ASSERT_THAT(Held(), ::testing::ElementsAre(128, 128));
  // Created through replica 0 once the shards are divided: replica 1 hears
  // nothing of the jobs in its shards (no events across replicas here)
  // until its rescan reads them, 15 s after its leases began.
  CreateJobs(20, 10, v1::RUN_ONCE);
  std::set<std::string> elsewhere;
  for (const std::string& id : job_ids_) {
    if (replicas_[1]->leases->Epoch(store::ShardOf(id)) != 0) elsewhere.insert(id);
  }
  ASSERT_FALSE(elsewhere.empty());
  Steps(14);  // To kStart+13s: the rescan at kStart+11s, a catch-up run.
  const auto starts = AllStarts();
  const auto runs = RunsByJob(starts);
  for (const std::string& id : job_ids_) {
    ASSERT_TRUE(runs.contains(id)) << id << " never fired";
    const int by = starts.at(absl::StrCat(id, "/1")).first;
    EXPECT_EQ(by, elsewhere.contains(id) ? 1 : 0) << id;
  }
}

// With events across replicas (domain/shared_events.h), the holder hears of
// a job created through another replica as the event arrives: it fires the
// job's first slot, not at its rescan.
TEST_F(ShardLeaseTest, AJobChangedElsewhereIsTakenByItsShardsHolderAtOnce) {
  AddReplicas(2);
  Steps(4);
  ASSERT_THAT(Held(), ::testing::ElementsAre(128, 128));
  CreateJobs(20, 1);  // Through replica 0, first slot at kStart (1 s away).
  std::set<std::string> elsewhere;
  for (const std::string& id : job_ids_) {
    if (replicas_[1]->leases->Epoch(store::ShardOf(id)) != 0) elsewhere.insert(id);
    // As its tail would: every job's event reaches replica 1, which takes
    // only those of its own shards.
    replicas_[1]->engine->ChangedElsewhere(id);
  }
  ASSERT_FALSE(elsewhere.empty());
  Steps(2);  // To kStart + 1 s: long before the rescan (kStart + 11 s).
  const auto starts = AllStarts();
  for (const std::string& id : job_ids_) {
    auto it = starts.find(absl::StrCat(id, "/1"));
    ASSERT_NE(it, starts.end()) << id << " did not fire its first slot";
    EXPECT_EQ(it->second.first, elsewhere.contains(id) ? 1 : 0) << id;
    EXPECT_LE(it->second.second, kStart + absl::Milliseconds(1)) << id;
  }
}

TEST_F(ShardLeaseTest, AManualRunOfAJobAnotherReplicaSchedulesIsUnavailable) {
  AddReplicas(2);
  CreateJobs(20, 10);
  Steps(4);
  int tried = 0;
  for (const std::string& id : job_ids_) {
    for (auto& r : replicas_) {
      v1::RunJobNowRequest req;
      req.set_job_id(id);
      absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
      r->jobs->RunJobNow(kAlice, req,
                         [&](absl::StatusOr<v1::Job> j) { out = std::move(j); });
      r->engine->WaitIdle();
      if (r->leases->Epoch(store::ShardOf(id)) != 0) {
        EXPECT_TRUE(out.ok()) << out.status();
      } else {
        EXPECT_EQ(out.status().code(), absl::StatusCode::kUnavailable);
      }
      ++tried;
    }
  }
  EXPECT_EQ(tried, 40);
  const auto runs = RunsByJob(AllStarts());
  EXPECT_EQ(runs.size(), job_ids_.size());  // One manual run each.
}

// RunJobNow through any replica: relayed (RunNowRelay, on the store) to the
// one holding the job's shard. The relays poll on their own threads, in
// real time; the leases stay as the fake clock left them.
class RunNowRelayTest : public ShardLeaseTest {
 protected:
  void AddRelays(RunNowRelay::Options options = {}) {
    options.claim_every = absl::Milliseconds(5);
    options.answer_every = absl::Milliseconds(5);
    for (auto& r : replicas_) {
      relays_.push_back(std::make_unique<RunNowRelay>(&store_, r->jobs.get(),
                                                      r->leases->replica_id(), options));
      r->jobs->set_relay(relays_.back().get());
    }
  }
  void TearDown() override {
    for (auto& relay : relays_) relay->Stop();
  }
  // RunJobNow through replica `i`, waiting (at most 10 s) for its answer.
  absl::StatusOr<v1::Job> RunNow(int i, const std::string& job_id,
                                 const std::string& request_id = "",
                                 const Identity& caller = kAlice) {
    v1::RunJobNowRequest req;
    req.set_job_id(job_id);
    req.set_request_id(request_id);
    auto out = std::make_shared<absl::StatusOr<v1::Job>>(absl::UnknownError("no answer"));
    auto done = std::make_shared<absl::Notification>();
    replicas_[i]->jobs->RunJobNow(caller, req, [out, done](absl::StatusOr<v1::Job> j) {
      *out = std::move(j);
      done->Notify();
    });
    EXPECT_TRUE(done->WaitForNotificationWithTimeout(absl::Seconds(10)));
    for (auto& r : replicas_) r->engine->WaitIdle();
    return *out;
  }
  int HolderOf(const std::string& job_id) {
    for (size_t i = 0; i < replicas_.size(); ++i) {
      if (replicas_[i]->leases->Epoch(store::ShardOf(job_id)) != 0) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  std::vector<std::unique_ptr<RunNowRelay>> relays_;
};

TEST_F(RunNowRelayTest, ARunNowThroughAnyReplicaIsStartedOnceByTheHolder) {
  AddReplicas(3);
  CreateJobs(12, 100);  // No slot falls within the test.
  Steps(4);
  // Every replica holds one of the jobs, so each is asked to relay one and
  // answers one relayed to it: more jobs while one holds none (12 random
  // ids all missed a third of the shards in about 2% of runs).
  auto holders = [&] {
    std::set<int> h;
    for (const std::string& id : job_ids_) h.insert(HolderOf(id));
    return h;
  };
  for (int extra = 0; holders().size() < 3 && extra < 100; ++extra) {
    CreateJobs(1, 100);  // No Step: time moving on would reach a slot.
  }
  ASSERT_EQ(holders(), (std::set<int>{0, 1, 2}));
  AddRelays();
  for (auto& relay : relays_) relay->Start();
  std::set<int> asked;
  for (const std::string& id : job_ids_) {
    const int holder = HolderOf(id);
    ASSERT_GE(holder, 0);
    const int other = (holder + 1) % 3;
    asked.insert(other);
    const std::string request_id = absl::StrCat("req-", id);
    absl::StatusOr<v1::Job> first = RunNow(other, id, request_id);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(first->last_run_number(), 1) << id;
    // The same request_id through the third replica, then the holder: the
    // same run, not another.
    absl::StatusOr<v1::Job> again = RunNow((holder + 2) % 3, id, request_id);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->last_run_number(), 1) << id;
    again = RunNow(holder, id, request_id);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->last_run_number(), 1) << id;
  }
  EXPECT_EQ(asked.size(), 3u);
  const auto starts = AllStarts();  // Fails on any run started twice.
  ASSERT_EQ(starts.size(), job_ids_.size());
  for (const std::string& id : job_ids_) {
    const auto it = starts.find(absl::StrCat(id, "/1"));
    ASSERT_NE(it, starts.end()) << id;
    EXPECT_EQ(it->second.first, HolderOf(id)) << id;
    EXPECT_TRUE(Results(id).at(1).manual());
  }
  for (auto& relay : relays_) EXPECT_EQ(relay->waiting(), 0u);
}

TEST_F(RunNowRelayTest, TheHoldersRefusalReachesTheCaller) {
  AddReplicas(2);
  CreateJobs(4, 100);
  Steps(4);
  AddRelays();
  for (auto& relay : relays_) relay->Start();
  for (const std::string& id : job_ids_) {
    const int other = 1 - HolderOf(id);
    // Another identity's job: NOT_FOUND, as on the holder.
    EXPECT_EQ(RunNow(other, id, "", Identity{"mallory", "token"}).status().code(),
              absl::StatusCode::kNotFound);
  }
  EXPECT_TRUE(AllStarts().empty());
}

TEST_F(RunNowRelayTest, UnansweredIsUnavailableAfterTheTimeoutAndWaitersAreBounded) {
  AddReplicas(2);
  CreateJobs(20, 100);
  Steps(4);
  AddRelays({.timeout = absl::Milliseconds(300), .max_waiting_per_identity = 1});
  relays_[0]->Start();  // Replica 1 never answers.
  std::string theirs;
  for (const std::string& id : job_ids_) {
    if (HolderOf(id) == 1) theirs = id;
  }
  ASSERT_FALSE(theirs.empty());
  // A second call while the first waits: over max_relayed_runs_per_identity.
  v1::RunJobNowRequest req;
  req.set_job_id(theirs);
  absl::Notification first_done;
  absl::StatusOr<v1::Job> first = absl::UnknownError("no answer");
  replicas_[0]->jobs->RunJobNow(kAlice, req, [&](absl::StatusOr<v1::Job> j) {
    first = std::move(j);
    first_done.Notify();
  });
  absl::StatusOr<v1::Job> second = RunNow(0, theirs);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(second.status().message()),
              ::testing::HasSubstr("max_relayed_runs_per_identity (1)"));
  // Another identity is not held back by alice's waiting call.
  EXPECT_EQ(RunNow(0, theirs, "", Identity{"bob", "token"}).status().code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(first.status().message()),
              ::testing::HasSubstr("did not answer within 300ms"));
  EXPECT_EQ(relays_[0]->waiting(), 0u);
  // The request expired unclaimed (claimable for half the timeout, on the
  // store's clock): replica 1, late, finds nothing to run.
  clock_.Advance(absl::Milliseconds(150));
  absl::StatusOr<std::vector<store::RelayedRun>> left =
      store_.ClaimRelayedRuns(replicas_[1]->leases->replica_id(), 100);
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty());
  EXPECT_TRUE(AllStarts().empty());
}

}  // namespace
}  // namespace timer::domain
