// EventHub: sequence numbers, the kept log and resuming with `since`,
// filters and owner isolation, bounded subscriber buffers, shutdown. And the
// events JobService and RunEngine publish for a job's life.
#include "domain/events.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "domain/clock.h"
#include "domain/ids.h"
#include "domain/jobs.h"
#include "domain/run_engine.h"
#include "domain/time_util.h"
#include "fake_action_provider.h"
#include "metrics_testing.h"
#include "store/memory_store.h"

namespace timer::domain {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Type = v1::JobEvent::Type;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

v1::Job MakeJob(const std::string& owner, const std::string& id,
                const std::string& name = "", v1::Job::Status status = v1::Job::LOADED) {
  v1::Job job;
  job.set_owner(owner);
  job.set_job_id(id);
  job.set_name(name);
  job.set_status(status);
  return job;
}

// Waits for the hub's dispatcher, then takes everything buffered.
std::vector<EventPtr> TakeAll(EventHub& hub, EventHub::Subscription& s) {
  hub.Flush();
  std::vector<EventPtr> out;
  s.Take(1 << 20, out);
  return out;
}

std::vector<int64_t> Sequences(const std::vector<EventPtr>& events) {
  std::vector<int64_t> out;
  for (const EventPtr& e : events) out.push_back(e->message.sequence());
  return out;
}

class EventHubTest : public ::testing::Test {
 protected:
  EventHubTest() : clock_(kStart) {}
  FakeClock clock_;
};

TEST_F(EventHubTest, SequencesStartAboveTheClockAndIncreaseByOne) {
  EventHub hub(&clock_, {});
  const int64_t head = hub.head();
  EXPECT_GE(head, absl::ToUnixMicros(kStart));
  auto sub = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;
  hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", "a"), nullptr);
  hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", "a"), nullptr);
  EXPECT_THAT(Sequences(TakeAll(hub, *sub)), ElementsAre(head + 1, head + 2));
}

TEST_F(EventHubTest, AnotherOwnersEventsNeverReachAWatcher) {
  EventHub hub(&clock_, {});
  auto alice = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;
  auto bob = hub.Subscribe({.owner = "bob"}, 0, [] {}).subscription;
  hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", "a"), nullptr);
  EXPECT_EQ(TakeAll(hub, *alice).size(), 1u);
  EXPECT_TRUE(TakeAll(hub, *bob).empty());
  // Nor through a replay.
  EventHub::Opened resumed = hub.Subscribe({.owner = "bob"}, hub.head() - 1, [] {});
  EXPECT_FALSE(resumed.needs_snapshot);
  EXPECT_TRUE(resumed.replay.empty());
}

TEST_F(EventHubTest, FiltersByJobStatusAndName) {
  EventHub hub(&clock_, {});
  auto one = hub.Subscribe({.owner = "alice", .job_id = "a"}, 0, [] {}).subscription;
  auto paused =
      hub.Subscribe({.owner = "alice", .statuses = StatusBit(v1::Job::PAUSED)}, 0, [] {})
          .subscription;
  auto nightly = hub.Subscribe({.owner = "alice", .name_contains = "nightly"}, 0, [] {})
                     .subscription;
  hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", "a", "nightly backup"), nullptr);
  hub.Publish(v1::JobEvent::PAUSED, MakeJob("alice", "b", "hourly", v1::Job::PAUSED),
              nullptr);
  EXPECT_EQ(TakeAll(hub, *one).size(), 1u);
  std::vector<EventPtr> p = TakeAll(hub, *paused);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0]->message.job().job_id(), "b");
  std::vector<EventPtr> n = TakeAll(hub, *nightly);
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0]->message.job().job_id(), "a");
}

TEST_F(EventHubTest, ResumingReplaysExactlyTheEventsAfterSince) {
  EventHub hub(&clock_, {});
  for (int i = 0; i < 5; ++i)
    hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", "a"), nullptr);
  const int64_t head = hub.head();
  EventHub::Opened opened = hub.Subscribe({.owner = "alice"}, head - 2, [] {});
  EXPECT_FALSE(opened.needs_snapshot);
  EXPECT_EQ(opened.head, head);
  EXPECT_THAT(Sequences(opened.replay), ElementsAre(head - 1, head));
  // Up to date: nothing to replay, and no snapshot either.
  EventHub::Opened current = hub.Subscribe({.owner = "alice"}, head, [] {});
  EXPECT_FALSE(current.needs_snapshot);
  EXPECT_TRUE(current.replay.empty());
}

TEST_F(EventHubTest, SinceOlderThanTheLogOrFromAnotherProcessNeedsASnapshot) {
  EventHub hub(&clock_, {.keep_events = 3});
  for (int i = 0; i < 10; ++i)
    hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", "a"), nullptr);
  const int64_t head = hub.head();
  EXPECT_FALSE(hub.Subscribe({.owner = "alice"}, head - 3, [] {}).needs_snapshot);
  EXPECT_TRUE(hub.Subscribe({.owner = "alice"}, head - 4, [] {}).needs_snapshot);
  EXPECT_TRUE(hub.Subscribe({.owner = "alice"}, 0, [] {}).needs_snapshot);
  // From the future: a number this process never handed out.
  EXPECT_TRUE(hub.Subscribe({.owner = "alice"}, head + 1, [] {}).needs_snapshot);

  // A process started later: every earlier number is behind its log.
  clock_.Advance(absl::Seconds(1));
  EventHub restarted(&clock_, {});
  EXPECT_GT(restarted.head(), head);
  EXPECT_TRUE(restarted.Subscribe({.owner = "alice"}, head, [] {}).needs_snapshot);
}

TEST_F(EventHubTest, AFullBufferClosesTheSubscriptionWithTheResumePoint) {
  EventHub hub(&clock_, {.buffer_events = 3});
  int woken = 0;
  auto slow = hub.Subscribe({.owner = "alice"}, 0, [&] { ++woken; }).subscription;
  auto fast = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;
  for (int i = 0; i < 5; ++i) {
    hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", "a"), nullptr);
    TakeAll(hub, *fast);  // The fast one keeps up and is never dropped.
  }
  hub.Flush();
  EXPECT_TRUE(fast->closed().ok());
  // The three that fit are still delivered, then the stream ends.
  std::vector<EventPtr> got = TakeAll(hub, *slow);
  ASSERT_EQ(got.size(), 3u);
  const absl::Status closed = slow->closed();
  EXPECT_EQ(closed.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(closed.message()),
              HasSubstr(absl::StrCat("since=", got.back()->message.sequence())));
  EXPECT_EQ(woken, 2);  // Once for the first event, once for the overflow.
}

TEST_F(EventHubTest, OpenAndDroppedStreamsAreCounted) {
  using ::timer::testing::MetricValue;
  const double open = MetricValue("timer_watch_streams_open");
  const double dropped =
      MetricValue("timer_watch_streams_dropped_total{reason=\"slow_consumer\"}");
  EventHub hub(&clock_, {.buffer_events = 1});
  auto slow = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;
  auto other = hub.Subscribe({.owner = "bob"}, 0, [] {}).subscription;
  EXPECT_EQ(MetricValue("timer_watch_streams_open"), open + 2);
  for (int i = 0; i < 3; ++i) {
    hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", "a"), nullptr);
  }
  hub.Flush();
  EXPECT_EQ(MetricValue("timer_watch_streams_dropped_total{reason=\"slow_consumer\"}"),
            dropped + 1);  // Once, however many events it missed.
  hub.Unsubscribe(slow);
  hub.Unsubscribe(other);
  EXPECT_EQ(MetricValue("timer_watch_streams_open"), open);
}

TEST_F(EventHubTest, ShutdownClosesEveryStreamWithUnavailable) {
  EventHub hub(&clock_, {});
  auto sub = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;
  hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", "a"), nullptr);
  hub.Flush();
  hub.Shutdown();
  EXPECT_TRUE(sub->closed().ok());  // Not before its events are taken.
  ASSERT_EQ(TakeAll(hub, *sub).size(), 1u);
  EXPECT_EQ(sub->closed().code(), absl::StatusCode::kUnavailable);
  auto late = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;
  EXPECT_EQ(late->closed().code(), absl::StatusCode::kUnavailable);
}

TEST_F(EventHubTest, UnsubscribedWatchersAreNotWokenAndNotCounted) {
  EventHub hub(&clock_, {});
  int woken = 0;
  auto sub = hub.Subscribe({.owner = "alice"}, 0, [&] { ++woken; }).subscription;
  EXPECT_EQ(hub.subscriptions(), 1u);
  hub.Unsubscribe(sub);
  EXPECT_EQ(hub.subscriptions(), 0u);
  hub.Publish(v1::JobEvent::CREATED, MakeJob("alice", "a"), nullptr);
  hub.Flush();
  EXPECT_EQ(woken, 0);
}

TEST_F(EventHubTest, EventsCarryNoInlineResults) {
  EventHub hub(&clock_, {});
  auto sub = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;
  v1::Job job = MakeJob("alice", "a");
  job.add_results()->set_run_number(1);
  v1::JobResult result;
  result.set_run_number(2);
  hub.Publish(v1::JobEvent::RUN_FINISHED, job, &result);
  std::vector<EventPtr> got = TakeAll(hub, *sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->message.job().results_size(), 0);
  EXPECT_EQ(got[0]->message.result().run_number(), 2);
  EXPECT_EQ(FromProto(got[0]->message.event_time()), kStart);
}

// A job's body never reaches the log: however large the jobs, the events
// kept stay small (issue 18, H1: 10 jobs with 1 MiB bodies firing every
// second grew the server by ~45 MB/s).
TEST_F(EventHubTest, EventsCarryNoActionBody) {
  EventHub hub(&clock_, {});
  const int64_t before = hub.head();
  v1::Job job = MakeJob("alice", "a");
  job.mutable_action()->set_provider("noop");
  job.mutable_action()->set_body(std::string(1 << 20, 'x'));
  for (int i = 0; i < 64; ++i) hub.Publish(v1::JobEvent::RUN_STARTED, job, nullptr);
  EventHub::Opened opened = hub.Subscribe({.owner = "alice"}, before, [] {});
  ASSERT_FALSE(opened.needs_snapshot);
  ASSERT_EQ(opened.replay.size(), 64u);
  size_t bytes = 0;
  for (const EventPtr& e : opened.replay) {
    EXPECT_EQ(e->message.job().action().provider(), "noop");
    EXPECT_TRUE(e->message.job().action().body().empty());
    // Nor is the body's memory held: an emptied string keeps its buffer.
    EXPECT_LT(e->message.SpaceUsedLong(), 16u * 1024);
    bytes += e->wire.size();
  }
  EXPECT_LT(bytes, 64u * 1024);
}

// Results a job carries are left out of its events, memory included (a
// cleared repeated field keeps its elements).
TEST_F(EventHubTest, EventsHoldNoMemoryOfTheJobsResults) {
  EventHub hub(&clock_, {});
  auto sub = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;
  v1::Job job = MakeJob("alice", "a");
  for (int i = 0; i < 10; ++i) {
    v1::JobResult* r = job.add_results();
    r->set_run_number(10 - i);
    r->set_details(std::string(60 << 10, 'd'));
  }
  hub.Publish(v1::JobEvent::UPDATED, job, nullptr);
  std::vector<EventPtr> got = TakeAll(hub, *sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]->message.job().results_size(), 0);
  EXPECT_LT(got[0]->message.SpaceUsedLong(), 16u * 1024);
}

// ClearToBasic, as listings use it: the two large fields go, memory and all,
// and nothing else changes.
TEST(ClearToBasicTest, LeavesEverythingButBodyAndResults) {
  v1::Job job = MakeJob("alice", "a", "nightly");
  job.mutable_action()->set_provider("noop");
  job.mutable_action()->set_body(std::string(1 << 20, 'x'));
  job.add_results()->set_details(std::string(60 << 10, 'd'));
  job.set_n_runs(3);
  v1::Job expected = job;
  expected.mutable_action()->clear_body();
  expected.clear_results();
  ClearToBasic(job);
  EXPECT_EQ(job.SerializeAsString(), expected.SerializeAsString());
  EXPECT_LT(job.SpaceUsedLong(), 16u * 1024);
}

// The log keeps the newest events within its byte bound, whatever their
// count bound says: here run events with the largest details a provider
// may report (64 KiB).
TEST_F(EventHubTest, TheLogIsBoundedInBytes) {
  constexpr size_t kBound = 1 << 20;
  EventHub hub(&clock_, {.keep_events = 20000, .keep_bytes = kBound});
  const int64_t first = hub.head() + 1;
  v1::JobResult result;
  result.set_run_number(1);
  result.set_details(std::string(64 << 10, 'd'));
  for (int i = 0; i < 200; ++i) {
    hub.Publish(v1::JobEvent::RUN_FINISHED, MakeJob("alice", "a"), &result);
    ASSERT_LE(hub.kept_bytes(), kBound);
  }
  EXPECT_GT(hub.kept_events(), 0u);
  EXPECT_LT(hub.kept_events(), 200u);
  // What is kept is the newest, and resuming from before it is a RESET.
  const int64_t head = hub.head();
  EXPECT_FALSE(hub.Subscribe({.owner = "alice"}, head - 1, [] {}).needs_snapshot);
  EXPECT_TRUE(hub.Subscribe({.owner = "alice"}, first, [] {}).needs_snapshot);
  // One event over the bound alone is still kept (the newest always is).
  EventHub tiny(&clock_, {.keep_bytes = 1});
  tiny.Publish(v1::JobEvent::RUN_FINISHED, MakeJob("alice", "a"), &result);
  EXPECT_EQ(tiny.kept_events(), 1u);
  EXPECT_FALSE(tiny.Subscribe({.owner = "alice"}, tiny.head() - 1, [] {}).needs_snapshot);
}

// Statuses are a mask: any of them matches, and an out-of-range status
// value matches no filter that names statuses.
TEST_F(EventHubTest, StatusFilterIsAMask) {
  WatchFilter filter{.owner = "alice",
                     .statuses = StatusBit(v1::Job::PAUSED) | StatusBit(v1::Job::ENDED)};
  EXPECT_TRUE(filter.Matches(MakeJob("alice", "a", "", v1::Job::PAUSED)));
  EXPECT_TRUE(filter.Matches(MakeJob("alice", "a", "", v1::Job::ENDED)));
  EXPECT_FALSE(filter.Matches(MakeJob("alice", "a", "", v1::Job::LOADED)));
  EXPECT_FALSE(
      filter.Matches(MakeJob("alice", "a", "", static_cast<v1::Job::Status>(40))));
  EXPECT_TRUE(WatchFilter{.owner = "alice"}.Matches(
      MakeJob("alice", "a", "", static_cast<v1::Job::Status>(40))));
}

// Subscribing and unsubscribing while events are being handed out: every
// subscription gets exactly the events published after it began, in order.
TEST_F(EventHubTest, SubscribersComingAndGoingDuringDispatchMissNothing) {
  EventHub hub(&clock_, {.buffer_events = 100000});
  std::atomic<bool> done{false};
  std::thread publisher([&] {
    for (int i = 0; i < 5000; ++i)
      hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", "a"), nullptr);
    done = true;
  });
  std::vector<std::pair<int64_t, std::shared_ptr<EventHub::Subscription>>> subs;
  while (!done && subs.size() < 400) {
    EventHub::Opened opened = hub.Subscribe({.owner = "alice"}, 0, [] {});
    subs.emplace_back(opened.head, opened.subscription);
    // Every other one leaves again at once.
    if (subs.size() % 2 == 0) hub.Unsubscribe(opened.subscription);
  }
  publisher.join();
  const int64_t head = hub.head();
  for (size_t i = 0; i < subs.size(); i += 2) {
    std::vector<int64_t> got = Sequences(TakeAll(hub, *subs[i].second));
    ASSERT_EQ(got.size(), static_cast<size_t>(head - subs[i].first)) << i;
    for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k], subs[i].first + 1 + k);
  }
}

// Watchers get the serialized form made once at publication: it must be
// exactly the message, sequence included.
TEST_F(EventHubTest, WireFormIsTheMessage) {
  EventHub hub(&clock_, {});
  auto sub = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;
  v1::JobResult result;
  result.set_run_number(7);
  result.set_status(v1::JobResult::SUCCEEDED);
  hub.Publish(v1::JobEvent::RUN_FINISHED, MakeJob("alice", "a"), &result);
  hub.Publish(v1::JobEvent::PAUSED, MakeJob("alice", "a"), nullptr);
  std::vector<EventPtr> got = TakeAll(hub, *sub);
  ASSERT_EQ(got.size(), 2u);
  for (const EventPtr& e : got) {
    v1::JobEvent parsed;
    ASSERT_TRUE(parsed.ParseFromString(e->wire));
    EXPECT_GT(parsed.sequence(), 0);
    EXPECT_EQ(parsed.SerializeAsString(), e->message.SerializeAsString());
  }
  EXPECT_EQ(got[1]->message.sequence(), got[0]->message.sequence() + 1);

  v1::JobEvent m;
  m.set_sequence(42);
  m.set_type(v1::JobEvent::RESET);
  EventPtr made = MakeEvent(m);
  EXPECT_EQ(made->wire, m.SerializeAsString());
}

// Take stops before the bytes bound, but always takes one event.
TEST_F(EventHubTest, TakeBoundsBytesButTakesAtLeastOne) {
  EventHub hub(&clock_, {});
  auto sub = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;
  for (int i = 0; i < 5; ++i)
    hub.Publish(v1::JobEvent::UPDATED, MakeJob("alice", "a"), nullptr);
  hub.Flush();
  std::vector<EventPtr> out;
  ASSERT_EQ(sub->Take(100, out, 1), 1u);  // One, though over the bound.
  const size_t size = out[0]->wire.size();
  out.clear();
  EXPECT_EQ(sub->Take(100, out, 2 * size + size / 2), 2u);
  out.clear();
  EXPECT_EQ(sub->Take(1, out), 1u);  // The count bound.
  out.clear();
  EXPECT_EQ(sub->Take(100, out), 1u);  // What is left.
}

// A job's life through JobService and the run engine, as a watcher sees it.
TEST(JobEventsTest, AJobsLifeArrivesInOrderWithNoGaps) {
  FakeClock clock(kStart);
  store::MemoryStore store;
  testing::FakeActionProvider provider("fake");
  StaticRegistry registry({&provider});
  EventHub hub(&clock, {});
  JobService jobs(&store, &clock, &registry);
  RunEngine::Options options;
  options.background = false;
  options.workers = 1;
  RunEngine engine(&store, &clock, &registry, options);
  jobs.set_observer(&engine);
  jobs.set_events(&hub);
  engine.set_events(&hub);
  ASSERT_TRUE(engine.Start().ok());
  auto sub = hub.Subscribe({.owner = "alice"}, 0, [] {}).subscription;

  v1::CreateJobRequest create;
  v1::Job* job = create.mutable_job();
  job->set_name("every ten seconds, twice");
  *job->mutable_schedule()->mutable_start() = ToProto(kStart + absl::Seconds(10));
  job->mutable_schedule()->set_interval_seconds(10);
  job->mutable_schedule()->set_stop_after_runs(2);
  job->mutable_action()->set_provider("fake");
  job->mutable_action()->set_body("{}");
  absl::Notification created;
  std::string id;
  jobs.CreateJob({"alice", "test"}, create, [&](absl::StatusOr<v1::Job> j) {
    ASSERT_TRUE(j.ok()) << j.status();
    id = j->job_id();
    created.Notify();
  });
  created.WaitForNotification();
  for (int i = 0; i < 3; ++i) {
    clock.Advance(absl::Seconds(10));
    engine.Tick();
    engine.WaitIdle();
    clock.Advance(absl::Milliseconds(1));
    engine.Tick();
    engine.WaitIdle();
  }

  std::vector<EventPtr> events = TakeAll(hub, *sub);
  std::vector<Type> types;
  for (const EventPtr& e : events) {
    EXPECT_EQ(e->message.job().job_id(), id);
    types.push_back(e->message.type());
  }
  EXPECT_THAT(types, ElementsAre(v1::JobEvent::CREATED, v1::JobEvent::RUN_STARTED,
                                 v1::JobEvent::RUN_FINISHED, v1::JobEvent::ENDED,
                                 v1::JobEvent::RUN_STARTED, v1::JobEvent::RUN_FINISHED));
  // One job, nothing else happening: consecutive numbers.
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ(events[i]->message.sequence(), events[i - 1]->message.sequence() + 1);
  }
  EXPECT_EQ(events[2]->message.result().run_number(), 1);
  EXPECT_EQ(events[2]->message.result().status(), v1::JobResult::SUCCEEDED);
  EXPECT_EQ(events[5]->message.result().run_number(), 2);
  engine.Stop();
}

}  // namespace
}  // namespace timer::domain
