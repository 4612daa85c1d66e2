// SharedEvents and EventHub in shared mode: replicas (a hub and its
// SharedEvents each) on one MemoryEventLog. A watcher on one replica sees
// every replica's events in one order with the same numbers; it resumes on
// another with the `since` it got; too old a `since` gets a snapshot; a
// `since` ahead of a replica's tail is waited for; events lost (a full
// outbox, a gap in the log) make every watcher start over; another
// replica's changes reach the run engine's hook.
#include "domain/shared_events.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "domain/clock.h"
#include "domain/events.h"
#include "store/memory_event_log.h"

namespace timer::domain {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kWait = absl::Seconds(20);
const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

v1::Job MakeJob(const std::string& owner, const std::string& id) {
  v1::Job job;
  job.set_owner(owner);
  job.set_job_id(id);
  job.set_status(v1::Job::LOADED);
  return job;
}

std::vector<int64_t> Sequences(const std::vector<EventPtr>& events) {
  std::vector<int64_t> out;
  for (const EventPtr& e : events) out.push_back(e->message.sequence());
  return out;
}

std::vector<std::string> JobIds(const std::vector<EventPtr>& events) {
  std::vector<std::string> out;
  for (const EventPtr& e : events) out.push_back(e->message.job().job_id());
  return out;
}

// Polls `done` (every 2 ms) until it holds or kWait passed.
template <typename F>
bool Eventually(F done) {
  for (const absl::Time deadline = absl::Now() + kWait; absl::Now() < deadline;) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return done();
}

// One replica: its hub in shared mode, and what connects it to the log.
struct Replica {
  Replica(store::EventLog* log, const std::string& id, const Clock* clock,
          EventHub::Options hub_options = {}, SharedEvents::Options options = {})
      : hub(clock,
            [&] {
              hub_options.shared = true;
              return hub_options;
            }()),
        shared(log, &hub, clock, [&] {
          options.replica_id = id;
          options.poll = absl::Milliseconds(20);
          options.retry_min = absl::Milliseconds(5);
          options.retry_max = absl::Milliseconds(20);
          return options;
        }()) {
    hub.set_outbox(&shared);
  }
  ~Replica() { shared.Stop(); }

  EventHub hub;
  SharedEvents shared;
};

// A watcher's subscription and what it took so far.
class Watcher {
 public:
  Watcher(EventHub& hub, int64_t since, const std::string& owner = "alice") {
    opened_ = hub.Subscribe({.owner = owner}, since, [this] {
      absl::MutexLock lock(&mu_);
      ++wakes_;
    });
    got_ = opened_.replay;
  }
  // The hub's dispatcher may be waking it right now: wait for that to end.
  ~Watcher() {
    if (opened_.subscription != nullptr) opened_.subscription->Detach();
  }
  const EventHub::Opened& opened() const { return opened_; }
  // Takes until it holds `n` events (replay included), or kWait passed.
  const std::vector<EventPtr>& WaitFor(size_t n) {
    const absl::Time deadline = absl::Now() + kWait;
    for (;;) {
      int seen;
      {
        absl::MutexLock lock(&mu_);
        seen = wakes_;
      }
      opened_.subscription->Take(1 << 20, got_);
      if (got_.size() >= n || absl::Now() >= deadline) return got_;
      absl::MutexLock lock(&mu_);
      auto woken = [this, seen]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wakes_ != seen; };
      mu_.AwaitWithDeadline(absl::Condition(&woken), deadline);
    }
  }
  // Waits until its stream is closed and drained; returns that status.
  absl::Status WaitClosed() {
    const absl::Time deadline = absl::Now() + kWait;
    for (;;) {
      int seen;
      {
        absl::MutexLock lock(&mu_);
        seen = wakes_;
      }
      opened_.subscription->Take(1 << 20, got_);
      absl::Status closed = opened_.subscription->closed();
      if (!closed.ok() || absl::Now() >= deadline) return closed;
      absl::MutexLock lock(&mu_);
      auto woken = [this, seen]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wakes_ != seen; };
      mu_.AwaitWithDeadline(absl::Condition(&woken), deadline);
    }
  }
  const std::vector<EventPtr>& got() const { return got_; }

 private:
  EventHub::Opened opened_;
  absl::Mutex mu_;
  int wakes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<EventPtr> got_;
};

class SharedEventsTest : public ::testing::Test {
 protected:
  SharedEventsTest() : clock_(kStart) {}
  FakeClock clock_;
  store::MemoryEventLog log_;
};

TEST_F(SharedEventsTest, AWatcherOnOneReplicaSeesEveryReplicasEventsWithTheSameNumbers) {
  Replica a(&log_, "a", &clock_), b(&log_, "b", &clock_);
  ASSERT_TRUE(a.shared.Start().ok());
  ASSERT_TRUE(b.shared.Start().ok());
  Watcher on_a(a.hub, 0), on_b(b.hub, 0);
  b.hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", "b1"), nullptr);
  a.hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", "a1"), nullptr);
  b.hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", "b1"), nullptr);
  b.hub.Publish(v1::JobEvent::CREATED, MakeJob("bob", "b2"), nullptr);  // Not alice's.
  const std::vector<EventPtr>& seen_a = on_a.WaitFor(3);
  const std::vector<EventPtr>& seen_b = on_b.WaitFor(3);
  ASSERT_EQ(seen_a.size(), 3u);
  ASSERT_EQ(seen_b.size(), 3u);
  // One order, one numbering, on both; each replica's own events in the
  // order it published them.
  EXPECT_EQ(Sequences(seen_a), Sequences(seen_b));
  EXPECT_EQ(JobIds(seen_a), JobIds(seen_b));
  EXPECT_EQ(seen_a[0]->wire, seen_b[0]->wire);
  std::vector<std::string> from_b;
  for (const EventPtr& e : seen_a) {
    if (e->message.job().job_id() == "b1")
      from_b.push_back(v1::JobEvent::Type_Name(e->message.type()));
  }
  EXPECT_THAT(from_b, ElementsAre("CREATED", "UPDATED"));
  // Numbered from the log: 1..4 in all, alice's three among them.
  for (int64_t seq : Sequences(seen_a)) {
    EXPECT_GE(seq, 1);
    EXPECT_LE(seq, 4);
  }
  EXPECT_TRUE(Eventually([&] { return a.hub.head() == 4 && b.hub.head() == 4; }));
  // The wire form carries the number.
  v1::JobEvent parsed;
  ASSERT_TRUE(parsed.ParseFromString(seen_a[1]->wire));
  EXPECT_EQ(parsed.sequence(), seen_a[1]->message.sequence());
}

TEST_F(SharedEventsTest, AWatcherResumesOnAnotherReplicaWithExactlyTheEventsItMissed) {
  Replica a(&log_, "a", &clock_), b(&log_, "b", &clock_);
  ASSERT_TRUE(a.shared.Start().ok());
  ASSERT_TRUE(b.shared.Start().ok());
  Watcher on_a(a.hub, 0);
  for (int i = 0; i < 3; ++i) {
    a.hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", absl::StrCat("j", i)), nullptr);
  }
  ASSERT_EQ(on_a.WaitFor(3).size(), 3u);
  const int64_t since = on_a.got().back()->message.sequence();
  // The watcher goes; more happens, through both replicas.
  a.hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", "j0"), nullptr);
  b.hub.Publish(v1::JobEvent::PAUSED, MakeJob("alice", "j1"), nullptr);
  ASSERT_TRUE(Eventually([&] { return b.hub.head() >= since + 2; }));
  Watcher on_b(b.hub, since);
  EXPECT_FALSE(on_b.opened().needs_snapshot);
  EXPECT_THAT(Sequences(on_b.opened().replay), ElementsAre(since + 1, since + 2));
  // Appended by two replicas at once: either may be first.
  EXPECT_THAT(JobIds(on_b.opened().replay), UnorderedElementsAre("j0", "j1"));
}

TEST_F(SharedEventsTest, ASinceOlderThanTheReplicaKeepsNeedsASnapshot) {
  Replica a(&log_, "a", &clock_, {.keep_events = 2});
  ASSERT_TRUE(a.shared.Start().ok());
  for (int i = 0; i < 5; ++i) {
    a.hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", absl::StrCat("j", i)), nullptr);
  }
  ASSERT_TRUE(Eventually([&] { return a.hub.head() == 5; }));
  Watcher old(a.hub, 2);
  EXPECT_TRUE(old.opened().needs_snapshot);
  Watcher kept(a.hub, 3);
  EXPECT_FALSE(kept.opened().needs_snapshot);
  EXPECT_THAT(Sequences(kept.opened().replay), ElementsAre(4, 5));
}

TEST_F(SharedEventsTest, AReplicaStartingLoadsTheNewestKeptEvents) {
  {
    Replica a(&log_, "a", &clock_);
    ASSERT_TRUE(a.shared.Start().ok());
    for (int i = 0; i < 6; ++i) {
      a.hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", absl::StrCat("j", i)),
                    nullptr);
    }
    ASSERT_TRUE(Eventually([&] { return a.hub.head() == 6; }));
  }
  // Keeps 4: since=2 is resumable at once, since=1 is not.
  Replica c(&log_, "c", &clock_, {}, {.load_events = 4});
  ASSERT_TRUE(c.shared.Start().ok());
  EXPECT_EQ(c.hub.head(), 6);
  Watcher resumed(c.hub, 2);
  EXPECT_FALSE(resumed.opened().needs_snapshot);
  EXPECT_THAT(Sequences(resumed.opened().replay), ElementsAre(3, 4, 5, 6));
  Watcher too_old(c.hub, 1);
  EXPECT_TRUE(too_old.opened().needs_snapshot);
}

TEST_F(SharedEventsTest, ASinceAheadOfTheReplicasTailIsWaitedFor) {
  store::LoggedEvent e;
  e.origin = "elsewhere";
  e.owner = "alice";
  e.job_id = "j";
  v1::JobEvent m;
  m.set_type(v1::JobEvent::CREATED);
  *m.mutable_job() = MakeJob("alice", "j");
  e.body = m.SerializeAsString();
  // A hub fed by hand: its tail is wherever the test says.
  EventHub hub(&clock_, {.shared = true, .since_wait = kWait});
  hub.StartAt(0);
  std::unique_ptr<Watcher> w;
  std::thread subscriber([&] { w = std::make_unique<Watcher>(hub, 2); });
  // The watcher saw 2 on another replica; this one has not read it yet.
  e.seq = 1;
  hub.Ingest({e});
  e.seq = 2;
  hub.Ingest({e});
  subscriber.join();
  EXPECT_FALSE(w->opened().needs_snapshot);
  EXPECT_THAT(w->opened().replay, IsEmpty());
  EXPECT_EQ(w->opened().head, 2);

  // Never caught up within since_wait: starts over.
  EventHub impatient(&clock_, {.shared = true, .since_wait = absl::Milliseconds(20)});
  impatient.StartAt(0);
  Watcher ahead(impatient, 5);
  EXPECT_TRUE(ahead.opened().needs_snapshot);
}

// A `since` no replica could have handed out yet (made up, or from a
// single-node timerd's wall-clock numbers) holds no starter thread.
TEST_F(SharedEventsTest, ASinceFarAheadOfTheReplicaStartsOverAtOnce) {
  EventHub hub(&clock_, {.keep_events = 100, .shared = true, .since_wait = kWait});
  hub.StartAt(10);
  const absl::Time before = absl::Now();
  Watcher far(hub, 10 + 101);
  EXPECT_TRUE(far.opened().needs_snapshot);
  Watcher wall_clock(hub, absl::ToUnixMicros(kStart));
  EXPECT_TRUE(wall_clock.opened().needs_snapshot);
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
}

TEST_F(SharedEventsTest, EventsDroppedFromAFullOutboxMakeEveryWatcherStartOver) {
  Replica a(&log_, "a", &clock_, {}, {.outbox_events = 2});
  Replica b(&log_, "b", &clock_);
  ASSERT_TRUE(a.shared.Start().ok());
  ASSERT_TRUE(b.shared.Start().ok());
  Watcher on_b(b.hub, 0);
  b.hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", "before"), nullptr);
  ASSERT_EQ(on_b.WaitFor(1).size(), 1u);
  const int64_t since = on_b.got().back()->message.sequence();
  log_.set_available(false);  // PostgreSQL unreachable.
  for (int i = 0; i < 5; ++i) {
    a.hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", absl::StrCat("j", i)), nullptr);
  }
  EXPECT_GE(a.shared.dropped(), 3);
  log_.set_available(true);
  // The marker closes b's stream: never a silent gap.
  absl::Status closed = on_b.WaitClosed();
  EXPECT_EQ(closed.code(), absl::StatusCode::kUnavailable) << closed;
  EXPECT_THAT(closed.message(), HasSubstr("start over"));
  // Resuming from what it had: a RESET and a snapshot, on either replica.
  Watcher again(b.hub, since);
  EXPECT_TRUE(again.opened().needs_snapshot);
  ASSERT_TRUE(Eventually([&] { return a.hub.head() == b.hub.head(); }));
  Watcher on_a(a.hub, since);
  EXPECT_TRUE(on_a.opened().needs_snapshot);
  // What came after the marker resumes normally.
  Watcher fresh(b.hub, b.hub.head());
  EXPECT_FALSE(fresh.opened().needs_snapshot);
}

TEST_F(SharedEventsTest, AGapInTheLogMakesEveryWatcherStartOver) {
  Replica a(&log_, "a", &clock_);
  ASSERT_TRUE(a.shared.Start().ok());
  Watcher w(a.hub, 0);
  a.hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", "j1"), nullptr);
  ASSERT_EQ(w.WaitFor(1).size(), 1u);
  // Appended and lost before this replica read them (a PostgreSQL crash
  // empties the UNLOGGED table).
  log_.Lose(2);
  a.hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", "j2"), nullptr);
  EXPECT_EQ(w.WaitClosed().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(JobIds(w.got()), ElementsAre("j1"));
  Watcher resumed(a.hub, 1);
  EXPECT_TRUE(resumed.opened().needs_snapshot);
}

TEST_F(SharedEventsTest, AnotherReplicasChangesReachTheRemoteChangeHook) {
  Replica a(&log_, "a", &clock_), b(&log_, "b", &clock_);
  absl::Mutex mu;
  std::vector<std::string> changed;
  a.shared.set_on_remote_change([&](const std::string& job_id) {
    absl::MutexLock lock(&mu);
    changed.push_back(job_id);
  });
  ASSERT_TRUE(a.shared.Start().ok());
  ASSERT_TRUE(b.shared.Start().ok());
  a.hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", "mine"), nullptr);  // Own.
  v1::JobResult result;
  b.hub.Publish(v1::JobEvent::RUN_STARTED, MakeJob("alice", "run"), &result);  // A run.
  b.hub.Publish(v1::JobEvent::PAUSED, MakeJob("alice", "paused"), nullptr);
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return !changed.empty();
  }));
  ASSERT_TRUE(Eventually([&] { return a.hub.head() == 3; }));
  a.shared.Stop();
  absl::MutexLock lock(&mu);
  EXPECT_THAT(changed, ElementsAre("paused"));
}

TEST_F(SharedEventsTest, PublishingWhileTheLogIsDownLosesNothingWithinTheOutbox) {
  Replica a(&log_, "a", &clock_), b(&log_, "b", &clock_);
  ASSERT_TRUE(a.shared.Start().ok());
  ASSERT_TRUE(b.shared.Start().ok());
  Watcher on_b(b.hub, 0);
  log_.set_available(false);
  for (int i = 0; i < 4; ++i) {
    a.hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", absl::StrCat("j", i)), nullptr);
  }
  log_.set_available(true);
  EXPECT_THAT(JobIds(on_b.WaitFor(4)), ElementsAre("j0", "j1", "j2", "j3"));
  EXPECT_EQ(a.shared.dropped(), 0);
  EXPECT_TRUE(on_b.opened().subscription->closed().ok());
}

}  // namespace
}  // namespace timer::domain
