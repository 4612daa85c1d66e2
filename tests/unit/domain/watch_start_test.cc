// WatchStarter / WatchFeed: what a watch stream sends, in order (RESET,
// snapshot or replay, then live events), the snapshot read a bounded page at
// a time off the caller's thread and stamped with the injected clock, and
// how feeds end (Stop, the starter's Stop). The in-memory store, a fake
// clock, and no gRPC: the reactor that pumps a feed is api/watch.cc's.
#include "domain/watch_start.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "domain/clock.h"
#include "domain/events.h"
#include "domain/jobs.h"
#include "domain/time_util.h"
#include "store/memory_store.h"

namespace timer::domain {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Type = v1::JobEvent::Type;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);
const Identity kAlice{"alice", "token"};
const Identity kBob{"bob", "token"};

// Counts a feed's on_ready calls, and lets a test wait for the next one.
class Wakes {
 public:
  absl::AnyInvocable<void()> Callback() {
    return [this] {
      absl::MutexLock lock(&mu_);
      ++count_;
      if (std::this_thread::get_id() == caller_) on_caller_ = true;
    };
  }
  int count() const {
    absl::MutexLock lock(&mu_);
    return count_;
  }
  // Waits until on_ready has run more than `seen` times; false after 10 s.
  bool WaitPast(int seen) const {
    absl::MutexLock lock(&mu_);
    auto past = [this, seen]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ > seen; };
    return mu_.AwaitWithTimeout(absl::Condition(&past), absl::Seconds(10));
  }
  // Whether on_ready ever ran on the thread that made this.
  bool ran_on_caller() const {
    absl::MutexLock lock(&mu_);
    return on_caller_;
  }

 private:
  mutable absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
  const std::thread::id caller_ = std::this_thread::get_id();
  bool on_caller_ ABSL_GUARDED_BY(mu_) = false;
};

// Takes events until `count` have come or the feed has closed, failing the
// test after 10 s without progress. `takes`, if given, gets each batch's size.
std::vector<EventPtr> TakeUntil(WatchFeed& feed, const Wakes& wakes, size_t count,
                                std::vector<size_t>* takes = nullptr) {
  std::vector<EventPtr> out;
  for (;;) {
    const int seen = wakes.count();
    const size_t n = feed.Take(SIZE_MAX, out);
    if (n > 0 && takes != nullptr) takes->push_back(n);
    if (out.size() >= count || !feed.closed().ok()) return out;
    if (n == 0 && !wakes.WaitPast(seen)) {
      ADD_FAILURE() << "no event for 10 s; " << out.size() << " of " << count;
      return out;
    }
  }
}

std::vector<Type> Types(const std::vector<EventPtr>& events) {
  std::vector<Type> out;
  for (const EventPtr& e : events) out.push_back(e->message.type());
  return out;
}

std::vector<std::string> Names(const std::vector<EventPtr>& events) {
  std::vector<std::string> out;
  for (const EventPtr& e : events) out.push_back(e->message.job().name());
  return out;
}

class WatchStartTest : public ::testing::Test {
 protected:
  WatchStartTest() : clock_(kStart), hub_(&clock_, {}), jobs_(&store_, &clock_) {
    jobs_.set_events(&hub_);
  }

  void MakeStarter(WatchStarter::Options options = {}) {
    starter_ = std::make_unique<WatchStarter>(&jobs_, &hub_, &clock_, options);
  }

  v1::Job Create(const Identity& who, const std::string& name) {
    v1::CreateJobRequest req;
    v1::Job* job = req.mutable_job();
    job->set_name(name);
    *job->mutable_schedule()->mutable_start() = ToProto(kStart + absl::Hours(1));
    job->mutable_schedule()->set_interval_seconds(60);
    job->mutable_action()->set_provider("fake");
    job->mutable_action()->set_body("{}");
    absl::Notification done;
    absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
    jobs_.CreateJob(who, req, [&](absl::StatusOr<v1::Job> j) {
      out = std::move(j);
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_TRUE(out.ok()) << out.status();
    // Snapshots list jobs in creation order: one at a time.
    clock_.Advance(absl::Milliseconds(1));
    return out.value_or(v1::Job());
  }

  v1::Job Pause(const std::string& id) {
    v1::PauseJobRequest req;
    req.set_job_id(id);
    absl::Notification done;
    absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
    jobs_.PauseJob(kAlice, req, [&](absl::StatusOr<v1::Job> j) {
      out = std::move(j);
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_TRUE(out.ok()) << out.status();
    return out.value_or(v1::Job());
  }

  FakeClock clock_;
  store::MemoryStore store_;
  EventHub hub_;
  JobService jobs_;
  std::unique_ptr<WatchStarter> starter_;
};

TEST_F(WatchStartTest, AFreshWatchGetsTheSnapshotThenLiveEvents) {
  MakeStarter();
  Create(kAlice, "a");
  Create(kAlice, "b");
  Create(kBob, "not alice's");
  hub_.Flush();
  const int64_t head = hub_.head();
  // The snapshot is stamped with the injected clock, not the wall clock.
  clock_.Advance(absl::Minutes(5));
  const absl::Time opened_at = clock_.Now();
  Wakes wakes;
  auto feed = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  std::vector<EventPtr> got = TakeUntil(*feed, wakes, 2);
  EXPECT_THAT(Types(got), ElementsAre(v1::JobEvent::SNAPSHOT, v1::JobEvent::SNAPSHOT));
  EXPECT_THAT(Names(got), ElementsAre("a", "b"));
  for (const EventPtr& e : got) {
    EXPECT_EQ(e->message.sequence(), head);
    EXPECT_EQ(FromProto(e->message.event_time()), opened_at);
    v1::JobEvent parsed;
    ASSERT_TRUE(parsed.ParseFromString(e->wire));
    EXPECT_EQ(parsed.SerializeAsString(), e->message.SerializeAsString());
  }

  Create(kAlice, "c");
  got = TakeUntil(*feed, wakes, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->message.type(), v1::JobEvent::CREATED);
  EXPECT_EQ(got[0]->message.sequence(), head + 1);
  EXPECT_TRUE(feed->closed().ok());
  // The work ran on the starter's thread, never the caller's.
  EXPECT_FALSE(wakes.ran_on_caller());
  feed->Stop();
}

TEST_F(WatchStartTest, ResumingReplaysTheEventsAfterSinceWithoutASnapshot) {
  MakeStarter();
  Create(kAlice, "a");
  hub_.Flush();
  const int64_t since = hub_.head();
  Create(kAlice, "b");
  Create(kBob, "not alice's");
  Create(kAlice, "c");
  hub_.Flush();
  Wakes wakes;
  auto feed = starter_->Open({.owner = "alice"}, since, wakes.Callback());
  std::vector<EventPtr> got = TakeUntil(*feed, wakes, 2);
  EXPECT_THAT(Types(got), ElementsAre(v1::JobEvent::CREATED, v1::JobEvent::CREATED));
  EXPECT_THAT(Names(got), ElementsAre("b", "c"));
  EXPECT_EQ(got[0]->message.sequence(), since + 1);
  EXPECT_EQ(got[1]->message.sequence(), since + 3);
  feed->Stop();
}

TEST_F(WatchStartTest, ASinceNoLongerKeptGetsAResetThenTheSnapshot) {
  MakeStarter();
  Create(kAlice, "a");
  hub_.Flush();
  const int64_t head = hub_.head();
  const absl::Time opened_at = clock_.Now();
  Wakes wakes;
  // A number from the future: this process never handed it out.
  auto feed = starter_->Open({.owner = "alice"}, head + 100, wakes.Callback());
  std::vector<EventPtr> got = TakeUntil(*feed, wakes, 2);
  ASSERT_THAT(Types(got), ElementsAre(v1::JobEvent::RESET, v1::JobEvent::SNAPSHOT));
  EXPECT_EQ(got[0]->message.sequence(), head);
  EXPECT_EQ(FromProto(got[0]->message.event_time()), opened_at);
  EXPECT_EQ(got[1]->message.event_time().SerializeAsString(),
            got[0]->message.event_time().SerializeAsString());
  EXPECT_FALSE(got[0]->message.has_job());
  EXPECT_EQ(got[1]->message.job().name(), "a");
  feed->Stop();
}

TEST_F(WatchStartTest, TheSnapshotComesAPageAtATimeInOrder) {
  MakeStarter({.snapshot_page_jobs = 4});
  std::vector<std::string> names;
  for (int i = 0; i < 18; ++i) {
    names.push_back(absl::StrCat("job-", i));
    Create(kAlice, names.back());
  }
  Wakes wakes;
  auto feed = starter_->Open({.owner = "alice"}, 1, wakes.Callback());  // RESET first.
  std::vector<size_t> takes;
  std::vector<EventPtr> got = TakeUntil(*feed, wakes, 19, &takes);
  ASSERT_EQ(got.size(), 19u);
  EXPECT_EQ(got[0]->message.type(), v1::JobEvent::RESET);
  got.erase(got.begin());
  EXPECT_EQ(Names(got), names);
  // Never more than a page (and the RESET) ready at once.
  ASSERT_FALSE(takes.empty());
  EXPECT_LE(takes[0], 5u);
  for (size_t i = 1; i < takes.size(); ++i) EXPECT_LE(takes[i], 4u) << i;
  EXPECT_GE(takes.size(), 5u);
  feed->Stop();
}

TEST_F(WatchStartTest, APageEndsAtItsByteBound) {
  MakeStarter({.snapshot_page_jobs = 100, .snapshot_page_bytes = 1});
  for (int i = 0; i < 5; ++i) Create(kAlice, absl::StrCat("job-", i));
  Wakes wakes;
  auto feed = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  std::vector<size_t> takes;
  std::vector<EventPtr> got = TakeUntil(*feed, wakes, 5, &takes);
  EXPECT_THAT(Names(got), ElementsAre("job-0", "job-1", "job-2", "job-3", "job-4"));
  // Each event is over the bound: one a page, and none lost or repeated.
  EXPECT_THAT(takes, Each(1u));
  feed->Stop();
}

TEST_F(WatchStartTest, TheSnapshotHoldsOnlyMatchingLiveJobsAcrossPagesOfNone) {
  MakeStarter({.snapshot_page_jobs = 2});
  const v1::Job first = Create(kAlice, "nightly first");
  for (int i = 0; i < 7; ++i) Create(kAlice, absl::StrCat("hourly-", i));
  const v1::Job paused = Create(kAlice, "nightly paused");
  Pause(paused.job_id());
  Create(kAlice, "nightly last");
  Wakes wakes;
  auto feed =
      starter_->Open({.owner = "alice", .name_contains = "nightly"}, 0, wakes.Callback());
  std::vector<EventPtr> got = TakeUntil(*feed, wakes, 3);
  EXPECT_THAT(Names(got), ElementsAre("nightly first", "nightly paused", "nightly last"));
  EXPECT_THAT(Types(got), Each(v1::JobEvent::SNAPSHOT));

  Wakes paused_wakes;
  auto only_paused =
      starter_->Open({.owner = "alice", .statuses = StatusBit(v1::Job::PAUSED)}, 0,
                     paused_wakes.Callback());
  got = TakeUntil(*only_paused, paused_wakes, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->message.job().job_id(), paused.job_id());
  EXPECT_EQ(got[0]->message.job().status(), v1::Job::PAUSED);
  // Nothing else comes: every page was read, none matched.
  hub_.Flush();
  std::vector<EventPtr> more;
  EXPECT_EQ(only_paused->Take(SIZE_MAX, more), 0u);
  feed->Stop();
  only_paused->Stop();
}

TEST_F(WatchStartTest, AOneJobWatchSnapshotsThatJob) {
  MakeStarter();
  Create(kAlice, "other");
  const v1::Job job = Create(kAlice, "watched");
  Wakes wakes;
  auto feed =
      starter_->Open({.owner = "alice", .job_id = job.job_id()}, 0, wakes.Callback());
  std::vector<EventPtr> got = TakeUntil(*feed, wakes, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->message.type(), v1::JobEvent::SNAPSHOT);
  EXPECT_EQ(got[0]->message.job().job_id(), job.job_id());
  Pause(job.job_id());
  got = TakeUntil(*feed, wakes, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->message.type(), v1::JobEvent::PAUSED);
  feed->Stop();
}

TEST_F(WatchStartTest, TakeKeepsToItsBoundsAcrossTheSnapshotAndLiveEvents) {
  MakeStarter();
  for (int i = 0; i < 3; ++i) Create(kAlice, absl::StrCat("job-", i));
  Wakes wakes;
  auto feed = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  std::vector<EventPtr> first = TakeUntil(*feed, wakes, 1);
  ASSERT_FALSE(first.empty());
  std::vector<EventPtr> out = first;
  // The rest of the snapshot, then live events, two at a time.
  Create(kAlice, "live-0");
  Create(kAlice, "live-1");
  hub_.Flush();
  while (out.size() < 5) {
    const size_t before = out.size();
    const size_t n = feed->Take(2, out);
    EXPECT_LE(n, 2u);
    ASSERT_GT(n, 0u) << "snapshot and events are all ready by now";
    ASSERT_EQ(out.size(), before + n);
  }
  EXPECT_THAT(Names(out), ElementsAre("job-0", "job-1", "job-2", "live-0", "live-1"));
  EXPECT_THAT(Types(out), ElementsAre(v1::JobEvent::SNAPSHOT, v1::JobEvent::SNAPSHOT,
                                      v1::JobEvent::SNAPSHOT, v1::JobEvent::CREATED,
                                      v1::JobEvent::CREATED));
  // One event, though over the byte bound.
  Create(kAlice, "live-2");
  hub_.Flush();
  std::vector<EventPtr> one;
  EXPECT_EQ(feed->Take(SIZE_MAX, one, 1), 1u);
  feed->Stop();
}

TEST_F(WatchStartTest, AStoppedFeedIsNeverWokenAndLeavesTheHub) {
  MakeStarter();
  Wakes wakes;
  auto feed = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  // Started: subscribed, the (empty) snapshot read.
  ASSERT_TRUE(wakes.WaitPast(0));
  EXPECT_EQ(hub_.subscriptions(), 1u);
  feed->Stop();
  EXPECT_EQ(hub_.subscriptions(), 0u);
  const int woken = wakes.count();
  Create(kAlice, "after");
  hub_.Flush();
  EXPECT_EQ(wakes.count(), woken);
  std::vector<EventPtr> out;
  EXPECT_EQ(feed->Take(SIZE_MAX, out), 0u);
}

// Stopped before, during or after its start: no subscription is left.
TEST_F(WatchStartTest, AFeedStoppedWhileStartingLeavesNoSubscription) {
  MakeStarter();
  Wakes wakes;
  auto feed = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  feed->Stop();
  starter_->Stop();  // Runs whatever was queued.
  EXPECT_EQ(hub_.subscriptions(), 0u);
}

TEST_F(WatchStartTest, HubShutdownEndsAFeedAfterItsSnapshot) {
  MakeStarter();
  Create(kAlice, "a");
  Wakes wakes;
  auto feed = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  std::vector<EventPtr> got = TakeUntil(*feed, wakes, 1);
  ASSERT_EQ(got.size(), 1u);
  hub_.Shutdown();
  got = TakeUntil(*feed, wakes, 1);
  EXPECT_TRUE(got.empty());
  const absl::Status closed = feed->closed();
  EXPECT_EQ(closed.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(closed.message()), HasSubstr("since="));
  feed->Stop();
}

TEST_F(WatchStartTest, AfterTheStarterStopsFeedsEndUnavailable) {
  MakeStarter({.snapshot_page_jobs = 1});
  Create(kAlice, "a");
  Create(kAlice, "b");
  Create(kAlice, "c");
  Wakes wakes;
  auto mid_snapshot = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  std::vector<EventPtr> got = TakeUntil(*mid_snapshot, wakes, 1);
  ASSERT_EQ(got.size(), 1u);
  // Taking "a" queued the read of "b": it may have run. No later page is
  // read: the feed ends instead.
  starter_->Stop();
  got = TakeUntil(*mid_snapshot, wakes, 10);
  EXPECT_LE(got.size(), 1u);
  if (!got.empty()) {
    EXPECT_EQ(got[0]->message.job().name(), "b");
  }
  EXPECT_EQ(mid_snapshot->closed().code(), absl::StatusCode::kUnavailable);
  mid_snapshot->Stop();

  Wakes late_wakes;
  auto late = starter_->Open({.owner = "alice"}, 0, late_wakes.Callback());
  EXPECT_EQ(late->closed().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(late_wakes.count(), 0);
  late->Stop();
}

// Snapshots leave bodies and results out unless the filter asks for the full
// view (issue 18, H7: a never-read stream pinned ~140 MB of snapshot).
TEST_F(WatchStartTest, SnapshotsLeaveBodiesAndResultsOutUnlessFull) {
  MakeStarter();
  const v1::Job job = Create(kAlice, "a");
  v1::JobResult result;
  result.set_run_number(1);
  result.set_status(v1::JobResult::SUCCEEDED);
  absl::Notification written;
  store_.WriteResult(job.job_id(), result, [&](absl::Status) { written.Notify(); });
  written.WaitForNotification();

  for (const WatchFilter& filter :
       {WatchFilter{.owner = "alice"},
        WatchFilter{.owner = "alice", .job_id = job.job_id()}}) {
    Wakes wakes;
    auto feed = starter_->Open(filter, 0, wakes.Callback());
    std::vector<EventPtr> got = TakeUntil(*feed, wakes, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0]->message.type(), v1::JobEvent::SNAPSHOT);
    EXPECT_EQ(got[0]->message.job().action().provider(), "fake");
    EXPECT_TRUE(got[0]->message.job().action().body().empty());
    EXPECT_EQ(got[0]->message.job().results_size(), 0);
    feed->Stop();

    WatchFilter full = filter;
    full.full_view = true;
    Wakes full_wakes;
    feed = starter_->Open(full, 0, full_wakes.Callback());
    got = TakeUntil(*feed, full_wakes, 1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0]->message.job().action().body(), "{}");
    EXPECT_EQ(got[0]->message.job().results_size(), 1);
    feed->Stop();
  }
}

// Open feeds are counted, per owner and in all; one beyond either bound ends
// at once with RESOURCE_EXHAUSTED naming it (issue 18, H7: one identity
// opened 3,000 streams), and a stopped feed makes room again.
TEST_F(WatchStartTest, FeedsBeyondTheStreamBoundsEndResourceExhausted) {
  MakeStarter({.max_streams = 3, .max_streams_per_identity = 2});
  Wakes wakes;
  auto a1 = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  auto a2 = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  auto a3 = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  EXPECT_TRUE(a1->closed().ok());
  EXPECT_TRUE(a2->closed().ok());
  EXPECT_EQ(a3->closed().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(a3->closed().message()),
              HasSubstr("max_watch_streams_per_identity (2)"));
  std::vector<EventPtr> out;
  EXPECT_EQ(a3->Take(SIZE_MAX, out), 0u);
  a3->Stop();  // Was never counted: frees nothing.

  auto b1 = starter_->Open({.owner = "bob"}, 0, wakes.Callback());
  auto b2 = starter_->Open({.owner = "bob"}, 0, wakes.Callback());
  EXPECT_TRUE(b1->closed().ok());
  EXPECT_EQ(b2->closed().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(b2->closed().message()), HasSubstr("max_watch_streams (3)"));
  b2->Stop();

  a1->Stop();
  auto a4 = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  EXPECT_TRUE(a4->closed().ok());
  auto a5 = starter_->Open({.owner = "alice"}, 0, wakes.Callback());
  EXPECT_EQ(a5->closed().code(), absl::StatusCode::kResourceExhausted);
  for (auto* f : {&a2, &a4, &a5, &b1}) (*f)->Stop();
  // All gone: the full bound is free again.
  std::vector<std::shared_ptr<WatchFeed>> again;
  for (int i = 0; i < 2; ++i) {
    again.push_back(starter_->Open({.owner = "carol"}, 0, wakes.Callback()));
    EXPECT_TRUE(again.back()->closed().ok());
  }
  for (auto& f : again) f->Stop();
}

}  // namespace
}  // namespace timer::domain
