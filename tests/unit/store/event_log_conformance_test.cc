// The EventLog contract (store/event_log.h), on every implementation:
// MemoryEventLog and PgEventLog (on the process's throwaway PostgreSQL
// cluster, pg_cluster.h). Numbering, order, what a reader sees while
// several appenders (on their own connections) race, pruning, the wake-up
// of a waiting reader, numbers that never go back after the kept events are
// lost; and, on PostgreSQL, a restart in the middle of use.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "pg_cluster.h"
#include "store/memory_event_log.h"
#include "store/pg_conn.h"
#include "store/pg_event_log.h"
#include "store/postgres_store.h"
#include "store_test_support.h"

namespace timer::store {
namespace {

// `n` handles on one new log: for PostgreSQL, each its own PgEventLog (its
// own connections), as replicas have.
struct LogFactory {
  std::string name;
  std::function<absl::StatusOr<std::vector<std::shared_ptr<EventLog>>>(int n)> make;
  // Drops every kept event as a PostgreSQL crash does to the UNLOGGED table.
  std::function<absl::Status(EventLog&)> forget;
};

void PrintTo(const LogFactory& factory, std::ostream* os) { *os << factory.name; }

// The URI of each PgEventLog made, for `forget`.
std::string& LastPgUri() {
  static auto* uri = new std::string;
  return *uri;
}

const std::vector<LogFactory>& Logs() {
  static const auto* logs = new std::vector<LogFactory>{
      {"memory",
       [](int n) -> absl::StatusOr<std::vector<std::shared_ptr<EventLog>>> {
         auto log = std::make_shared<MemoryEventLog>();
         return std::vector<std::shared_ptr<EventLog>>(n, log);
       },
       [](EventLog& log) {
         static_cast<MemoryEventLog&>(log).Forget();
         return absl::OkStatus();
       }},
      {"postgres",
       [](int n) -> absl::StatusOr<std::vector<std::shared_ptr<EventLog>>> {
         absl::StatusOr<testing::PgCluster*> pg = testing::PgCluster::Get();
         absl::StatusOr<std::string> uri = pg.ok() ? (*pg)->NewDatabase() : pg.status();
         if (!uri.ok()) return uri.status();
         // Migrates the new database.
         absl::StatusOr<std::unique_ptr<PostgresStore>> store =
             PostgresStore::Open({.uri = *uri});
         if (!store.ok()) return store.status();
         LastPgUri() = *uri;
         std::vector<std::shared_ptr<EventLog>> logs;
         for (int i = 0; i < n; ++i) {
           logs.push_back(std::make_shared<PgEventLog>(PgEventLog::Options{.uri = *uri}));
         }
         return logs;
       },
       [](EventLog&) -> absl::Status {
         PgConnector connector({.uri = LastPgUri()});
         absl::StatusOr<std::unique_ptr<PgConn>> conn = connector.Connect();
         if (!conn.ok()) return conn.status();
         return (*conn)->Exec("TRUNCATE events");
       }},
  };
  return *logs;
}

LoggedEvent Event(const std::string& owner, const std::string& job_id,
                  std::string body = "") {
  LoggedEvent e;
  e.at_us = 1'800'000'000'000'000;
  e.origin = "replica-a";
  e.owner = owner;
  e.job_id = job_id;
  e.body = body.empty() ? absl::StrCat("body of ", job_id) : std::move(body);
  return e;
}

std::vector<int64_t> Seqs(const std::vector<LoggedEvent>& events) {
  std::vector<int64_t> out;
  for (const LoggedEvent& e : events) out.push_back(e.seq);
  return out;
}

class EventLogTest : public ::testing::TestWithParam<LogFactory> {
 protected:
  void SetUp() override {
    auto made = GetParam().make(2);
    ASSERT_THAT(made, IsOk());
    logs_ = *std::move(made);
  }
  EventLog& log() { return *logs_[0]; }

  std::vector<std::shared_ptr<EventLog>> logs_;
};

TEST_P(EventLogTest, NumbersConsecutivelyAtAppendAndKeepsEveryField) {
  EXPECT_THAT(log().EventBounds(), IsOk());
  EXPECT_EQ(log().EventBounds()->head, 0);
  const std::string binary("\0\xff\x01 body", 8);
  ASSERT_THAT(log().AppendEvents({Event("alice", "j1", binary), Event("bob", "j2")}),
              IsOk());
  absl::StatusOr<int64_t> next = logs_[1]->AppendEvents({Event("alice", "j3")});
  ASSERT_THAT(next, IsOk());
  EXPECT_EQ(*next, 3);
  absl::StatusOr<std::vector<LoggedEvent>> read = log().ReadEventsAfter(0, 100);
  ASSERT_THAT(read, IsOk());
  EXPECT_THAT(Seqs(*read), ElementsAreArray({1, 2, 3}));
  const LoggedEvent& first = (*read)[0];
  EXPECT_EQ(first.owner, "alice");
  EXPECT_EQ(first.job_id, "j1");
  EXPECT_EQ(first.origin, "replica-a");
  EXPECT_EQ(first.at_us, 1'800'000'000'000'000);
  EXPECT_EQ(first.body, binary);
  EXPECT_FALSE(first.IsLostMarker());
  EXPECT_EQ(log().EventBounds()->head, 3);
  EXPECT_EQ(log().EventBounds()->oldest, 1);
}

TEST_P(EventLogTest, ReadsAfterAPointUpToALimit) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(log().AppendEvents({Event("alice", absl::StrCat("j", i))}), IsOk());
  }
  EXPECT_THAT(Seqs(*log().ReadEventsAfter(1, 2)), ElementsAreArray({2, 3}));
  EXPECT_THAT(Seqs(*log().ReadEventsAfter(3, 100)), ElementsAreArray({4, 5}));
  EXPECT_THAT(*log().ReadEventsAfter(5, 100), IsEmpty());
}

TEST_P(EventLogTest, AMarkerOfLostEventsIsNumberedLikeAnyEvent) {
  LoggedEvent marker;
  marker.origin = "replica-b";
  ASSERT_THAT(log().AppendEvents({marker, Event("alice", "j1")}), IsOk());
  absl::StatusOr<std::vector<LoggedEvent>> read = log().ReadEventsAfter(0, 10);
  ASSERT_THAT(read, IsOk());
  ASSERT_EQ(read->size(), 2u);
  EXPECT_TRUE((*read)[0].IsLostMarker());
  EXPECT_EQ((*read)[0].seq, 1);
  EXPECT_FALSE((*read)[1].IsLostMarker());
}

TEST_P(EventLogTest, PruningKeepsTheNewest) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_THAT(log().AppendEvents({Event("alice", absl::StrCat("j", i))}), IsOk());
  }
  absl::StatusOr<int64_t> dropped = logs_[1]->PruneEvents(4);
  ASSERT_THAT(dropped, IsOk());
  EXPECT_EQ(*dropped, 6);
  EXPECT_EQ(*log().PruneEvents(4), 0);
  absl::StatusOr<EventLogBounds> bounds = log().EventBounds();
  ASSERT_THAT(bounds, IsOk());
  EXPECT_EQ(bounds->oldest, 7);
  EXPECT_EQ(bounds->head, 10);
  EXPECT_THAT(Seqs(*log().ReadEventsAfter(0, 100)), ElementsAreArray({7, 8, 9, 10}));
}

TEST_P(EventLogTest, NumbersNeverGoBackWhenTheKeptEventsAreLost) {
  ASSERT_THAT(log().AppendEvents({Event("alice", "j1"), Event("alice", "j2")}), IsOk());
  ASSERT_TRUE(GetParam().forget(log()).ok());
  absl::StatusOr<EventLogBounds> bounds = log().EventBounds();
  ASSERT_THAT(bounds, IsOk());
  EXPECT_EQ(bounds->head, 2);
  EXPECT_EQ(bounds->oldest, 3);  // None kept.
  // A reader that had 1 sees the gap: the next it gets is 3.
  ASSERT_THAT(log().AppendEvents({Event("alice", "j3")}), IsOk());
  EXPECT_THAT(Seqs(*log().ReadEventsAfter(1, 10)), ElementsAreArray({3}));
}

TEST_P(EventLogTest, AWaitingReaderIsWokenByAnotherHandlesAppend) {
  // Nothing to wait for: returns after its timeout, OK.
  const absl::Time before = absl::Now();
  EXPECT_TRUE(log().WaitForEvents(0, absl::Milliseconds(50)).ok());
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(40));

  absl::Notification woken;
  absl::Duration waited;
  std::thread reader([&] {
    const absl::Time start = absl::Now();
    EXPECT_TRUE(log().WaitForEvents(0, kWait).ok());
    waited = absl::Now() - start;
    woken.Notify();
  });
  // Appended once the reader is (most likely) waiting; if it is not yet,
  // its wait returns at once, which passes too.
  absl::SleepFor(absl::Milliseconds(100));
  ASSERT_THAT(logs_[1]->AppendEvents({Event("alice", "j1")}), IsOk());
  EXPECT_TRUE(woken.WaitForNotificationWithTimeout(absl::Seconds(10)));
  reader.join();
  EXPECT_LT(waited, absl::Seconds(10));
  EXPECT_THAT(Seqs(*log().ReadEventsAfter(0, 10)), ElementsAreArray({1}));
}

// Two appenders (their own connections) race; a reader that always reads
// after the last number it got must get every number, each once, in order:
// no event may commit with a number below one already read.
TEST_P(EventLogTest, ConcurrentAppendersNeverLetAReaderSkip) {
  constexpr int kBatches = 300;
  std::atomic<int> appenders_done{0};
  std::vector<std::thread> appenders;
  for (int a = 0; a < 2; ++a) {
    appenders.emplace_back([&, a] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<LoggedEvent> batch;
        for (int i = 0; i <= b % 4; ++i) {
          batch.push_back(Event("alice", absl::StrCat("a", a, "-", b, "-", i)));
        }
        EXPECT_THAT(logs_[a]->AppendEvents(batch), IsOk());
      }
      ++appenders_done;
    });
  }
  int64_t total = 0;
  for (int b = 0; b < kBatches; ++b) total += 2 * (b % 4 + 1);
  // Each appender's events, in the order it appended them.
  std::vector<std::string> last(2);
  int64_t head = 0;
  EventLog& read_log = log();
  const absl::Time deadline = absl::Now() + kWait;
  while (head < total && absl::Now() < deadline) {
    const bool done = appenders_done == 2;
    absl::StatusOr<std::vector<LoggedEvent>> read = read_log.ReadEventsAfter(head, 64);
    ASSERT_THAT(read, IsOk());
    for (const LoggedEvent& e : *read) {
      ASSERT_EQ(e.seq, head + 1) << "a reader skipped an event";
      head = e.seq;
    }
    if (read->empty() && !done) {
      ASSERT_TRUE(read_log.WaitForEvents(head, absl::Milliseconds(20)).ok());
    }
  }
  for (std::thread& t : appenders) t.join();
  EXPECT_EQ(head, total);
  // And nothing beyond.
  EXPECT_THAT(*read_log.ReadEventsAfter(head, 10), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(AllLogs, EventLogTest, ::testing::ValuesIn(Logs()),
                         [](const ::testing::TestParamInfo<LogFactory>& info) {
                           return info.param.name;
                         });

// PostgreSQL only: calls fail with UNAVAILABLE while it is down, and work
// again once it is back, on new connections, LISTENing again.
TEST(PostgresEventLogTest, SurvivesAPostgresRestart) {
  absl::StatusOr<std::vector<std::shared_ptr<EventLog>>> logs = Logs()[1].make(2);
  ASSERT_THAT(logs, IsOk());
  EventLog& writer = *(*logs)[0];
  EventLog& reader = *(*logs)[1];
  ASSERT_THAT(writer.AppendEvents({Event("alice", "j1")}), IsOk());
  ASSERT_TRUE(reader.WaitForEvents(1, absl::Milliseconds(10)).ok());  // LISTENing.
  absl::StatusOr<testing::PgCluster*> pg = testing::PgCluster::Get();
  ASSERT_THAT(pg, IsOk());
  ASSERT_TRUE((*pg)->Stop().ok());
  EXPECT_THAT(writer.AppendEvents({Event("alice", "j2")}),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(reader.ReadEventsAfter(0, 10), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_TRUE((*pg)->Start().ok());
  // The connector refuses for a moment after a failed connect.
  absl::StatusOr<int64_t> appended = absl::UnavailableError("");
  for (const absl::Time deadline = absl::Now() + kWait;
       !appended.ok() && absl::Now() < deadline;) {
    appended = writer.AppendEvents({Event("alice", "j3")});
    if (!appended.ok()) absl::SleepFor(absl::Milliseconds(50));  // Back-off.
  }
  ASSERT_THAT(appended, IsOk());
  // The events table is UNLOGGED, but a clean stop keeps it.
  absl::StatusOr<std::vector<LoggedEvent>> read = absl::UnavailableError("");
  for (const absl::Time deadline = absl::Now() + kWait;
       !read.ok() && absl::Now() < deadline;) {
    read = reader.ReadEventsAfter(0, 10);
    if (!read.ok()) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_THAT(read, IsOk());
  EXPECT_THAT(Seqs(*read), ElementsAreArray({int64_t{1}, *appended}));
  // The new connection LISTENs: another append wakes it.
  std::thread append([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_THAT(writer.AppendEvents({Event("alice", "j4")}), IsOk());
  });
  const absl::Time start = absl::Now();
  EXPECT_TRUE(reader.WaitForEvents(*appended, absl::Seconds(20)).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  append.join();
}

}  // namespace
}  // namespace timer::store
