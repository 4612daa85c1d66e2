// Watch streams as Server-Sent Events over HTTP, against the installed
// timerd, with a real HTTP client on a socket: a job's events read, the
// connection dropped, resumed with Last-Event-ID getting exactly the missed
// events; WatchJobs scoped to the caller; the per-identity stream bound
// (429); a stalled reader dropped with its resume point while runs and the
// other watchers stay on time; heartbeats; SIGTERM ending streams with a
// final event and closing kept-alive connections.
#include <signal.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cli_fixture.h"
#include "sanitizers.h"
#include "sse_client.h"

namespace timer::testing {
namespace {

using nlohmann::json;

class SseE2eTest : public CliTest {
 protected:
  // A job of the CLI's caller (token_); returns its id.
  std::string CreateJob(const std::string& name, const std::string& token = "") {
    RunResult r = CliAs(token.empty() ? token_ : token,
                        {"--format", "json", "job", "submit", "--name", name,
                         "--interval", "1h", "--start", "2030-01-01T00:00:00Z",
                         "--action-provider", "noop", "--action-body", "{}"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out, nullptr, false);
    return j.is_object() ? j.value("job_id", "") : "";
  }
  void Rename(const std::string& id, const std::string& name) {
    RunResult r = Cli({"job", "update", id, "--name", name});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }

  // Renames `id` `n` times over one kept-alive HTTP connection (fast, so
  // events come faster than a stalled reader takes them).
  void RenameMany(const std::string& id, int n, const std::string& prefix) {
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.connected());
    for (int i = 0; i < n; ++i) {
      const std::string body = json{{"name", absl::StrCat(prefix, i)}}.dump();
      ASSERT_TRUE(c.Send(absl::StrCat(
          "PATCH /v1/jobs/", id, "?update_mask=name HTTP/1.1\r\nHost: localhost\r\n",
          "Authorization: Bearer ", token_, "\r\nContent-Type: application/json\r\n",
          "Content-Length: ", body.size(), "\r\n\r\n", body)));
      // One response: its head, then Content-Length bytes.
      const HttpResponse r = c.ReadResponse();
      ASSERT_EQ(r.code, 200) << r.body;
      ASSERT_EQ(r.headers.count("content-length"), 1u);
    }
  }

  // GET `target` on a connection of its own (Connection: close): the
  // whole response, head and body; empty on failure.
  std::string HttpGet(const std::string& target, const std::string& token = "") {
    RawHttpConnection c(http_port_);
    std::string req = absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: localhost\r\n");
    if (!token.empty()) absl::StrAppend(&req, "Authorization: Bearer ", token, "\r\n");
    req += "Connection: close\r\n\r\n";
    std::string out;
    if (c.connected() && c.Send(req)) (void)c.ReadToEnd(&out, absl::Seconds(10));
    return out;
  }

  // A sample's value in /metrics (its full name with labels); -1 if absent.
  double Metric(const std::string& sample) {
    const std::string text = HttpGet("/metrics");
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (!absl::ConsumePrefix(&line, sample + " ")) continue;
      double v = 0;
      if (absl::SimpleAtod(line, &v)) return v;
    }
    return -1;
  }
};

// A Timestamp's JSON form as a time (InfinitePast if it does not parse).
absl::Time JsonTime(const json& v) {
  absl::Time t;
  std::string err;
  if (!v.is_string() ||
      !absl::ParseTime(absl::RFC3339_full, v.get<std::string>(), &t, &err))
    return absl::InfinitePast();
  return t;
}

TEST_F(SseE2eTest, ResumeWithLastEventIdGetsExactlyTheMissedEvents) {
  auto daemon = StartTimerdWithHttp("http_sse_heartbeat_ms = 200\n");
  const std::string id = CreateJob("first");
  ASSERT_FALSE(id.empty());
  const std::string target = "/v1/jobs/" + id + ":watch";

  std::string last_id;
  {
    SseStream s(http_port_, target, token_);
    ASSERT_EQ(s.ReadHead(), 200) << s.head();
    EXPECT_TRUE(absl::StrContains(s.head(), "Content-Type: text/event-stream"))
        << s.head();
    EXPECT_TRUE(absl::StrContains(s.head(), "X-Accel-Buffering: no")) << s.head();
    std::optional<SseEvent> snap = s.Next();
    ASSERT_TRUE(snap.has_value());
    EXPECT_EQ(snap->event, "SNAPSHOT");
    ASSERT_EQ(snap->data_lines.size(), 1u);
    EXPECT_EQ(snap->Json()["job"]["job_id"], id) << snap->data;
    Rename(id, "second");
    std::optional<SseEvent> upd = s.Next();
    ASSERT_TRUE(upd.has_value());
    EXPECT_EQ(upd->event, "UPDATED");
    EXPECT_EQ(upd->Json()["job"]["name"], "second") << upd->data;
    EXPECT_EQ(upd->Json()["sequence"], upd->id) << upd->data;
    last_id = upd->id;
    // Heartbeats come while nothing happens.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (s.comments() == 0 && absl::Now() < deadline)
      (void)s.Next(absl::Milliseconds(300));
    EXPECT_GT(s.comments(), 0);
  }  // Dropped.

  // Missed while away.
  Rename(id, "third");
  Rename(id, "fourth");
  RunResult paused = Cli({"job", "pause", id});
  EXPECT_EQ(paused.exit_code, 0) << paused.err;

  SseStream s(http_port_, target, token_, "Last-Event-ID: " + last_id + "\r\n");
  ASSERT_EQ(s.ReadHead(), 200) << s.head();
  std::vector<std::string> names;
  std::vector<int64_t> ids;
  for (int i = 0; i < 3; ++i) {
    std::optional<SseEvent> e = s.Next();
    ASSERT_TRUE(e.has_value()) << i;
    int64_t n = 0;
    ASSERT_TRUE(absl::SimpleAtoi(e->id, &n)) << e->id;
    ids.push_back(n);
    names.push_back(e->Json()["job"].value("name", ""));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"third", "fourth", "fourth"}));
  int64_t last = 0;
  ASSERT_TRUE(absl::SimpleAtoi(last_id, &last));
  EXPECT_GT(ids[0], last);
  EXPECT_LT(ids[0], ids[1]);
  EXPECT_LT(ids[1], ids[2]);
  // Nothing more than the missed ones (no duplicate of "second").
  std::optional<SseEvent> more = s.Next(absl::Milliseconds(500));
  EXPECT_FALSE(more.has_value()) << more->data;

  // A resume point from before this process: RESET, then a snapshot.
  SseStream stale(http_port_, target, token_, "Last-Event-ID: 1\r\n");
  ASSERT_EQ(stale.ReadHead(), 200);
  std::optional<SseEvent> reset = stale.Next();
  ASSERT_TRUE(reset.has_value());
  EXPECT_EQ(reset->event, "RESET");
  std::optional<SseEvent> snap = stale.Next();
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(snap->event, "SNAPSHOT");

  // A malformed Last-Event-ID is refused.
  SseStream bad(http_port_, target, token_, "Last-Event-ID: x\r\n");
  EXPECT_EQ(bad.ReadHead(), 400);
}

TEST_F(SseE2eTest, WatchJobsIsTheCallersJobsOnly) {
  auto daemon = StartTimerdWithHttp();
  const std::string other_token = IssueToken("other@example.org");
  const std::string mine = CreateJob("mine");
  const std::string theirs = CreateJob("theirs", other_token);
  ASSERT_FALSE(mine.empty());
  ASSERT_FALSE(theirs.empty());
  SseStream s(http_port_, "/v1/jobs:watch", token_);
  ASSERT_EQ(s.ReadHead(), 200);
  std::optional<SseEvent> snap = s.Next();
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(snap->Json()["job"]["job_id"], mine);
  const std::string mine2 = CreateJob("mine2");
  (void)CreateJob("theirs2", other_token);
  std::optional<SseEvent> created = s.Next();
  ASSERT_TRUE(created.has_value());
  EXPECT_EQ(created->event, "CREATED");
  EXPECT_EQ(created->Json()["job"]["job_id"], mine2);
  std::optional<SseEvent> more = s.Next(absl::Milliseconds(500));
  EXPECT_FALSE(more.has_value()) << more->data;
}

TEST_F(SseE2eTest, StreamsOverThePerIdentityBoundAreRefused) {
  auto daemon = StartTimerdWithHttp("max_watch_streams_per_identity = 2\n");
  SseStream a(http_port_, "/v1/jobs:watch", token_);
  SseStream b(http_port_, "/v1/jobs:watch", token_);
  ASSERT_EQ(a.ReadHead(), 200);
  ASSERT_EQ(b.ReadHead(), 200);
  SseStream c(http_port_, "/v1/jobs:watch", token_);
  // The refusal is a whole response (Content-Length framed), read as one.
  const HttpResponse refusal = c.ReadResponse();
  EXPECT_EQ(refusal.code, 429) << refusal.body;
  EXPECT_TRUE(absl::StrContains(refusal.body, "max_watch_streams_per_identity"))
      << refusal.body;
  // Another identity is not held by this one's streams.
  SseStream other(http_port_, "/v1/jobs:watch", IssueToken("other@example.org"));
  EXPECT_EQ(other.ReadHead(), 200);
  // A dropped stream frees its place.
  a.Drop();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int code = 0;
  while (absl::Now() < deadline) {
    SseStream d(http_port_, "/v1/jobs:watch", token_);
    code = d.ReadHead();
    if (code == 200) break;
    absl::SleepFor(absl::Milliseconds(50));  // Polling the server's state.
  }
  EXPECT_EQ(code, 200);
}

TEST_F(SseE2eTest, SigtermEndsStreamsWithAFinalEvent) {
  auto daemon = StartTimerdWithHttp();
  SseStream s(http_port_, "/v1/jobs:watch", token_);
  ASSERT_EQ(s.ReadHead(), 200);
  const std::string id = CreateJob("one");
  std::optional<SseEvent> created = s.Next();
  ASSERT_TRUE(created.has_value());
  // A kept-alive connection, authenticated and idle between requests.
  SseStream kept(http_port_, "/v1/session", token_);
  ASSERT_EQ(kept.ReadHead(), 200) << kept.head();
  ASSERT_TRUE(absl::StrContains(kept.head(), "Connection: keep-alive") ||
              !absl::StrContains(kept.head(), "Connection: close"))
      << kept.head();

  // The stream is read while timerd stops, as a watcher does.
  std::optional<SseEvent> end;
  bool closed = false;
  std::thread reader([&] {
    std::optional<SseEvent> e;
    while ((e = s.Next(absl::Seconds(15)))) end = e;
    closed = s.Closed(absl::Seconds(1));
  });
  const absl::Time stopping = absl::Now();
  EXPECT_EQ(daemon->Stop(SIGTERM), 0) << daemon->log();
  // Within its grace (main.cc: 10 s), not at its end.
  EXPECT_LT(absl::Now() - stopping, absl::Seconds(10)) << daemon->log();
  reader.join();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->event, "error");
  EXPECT_EQ(end->Json()["code"], 14) << end->data;
  EXPECT_TRUE(absl::StrContains(end->data, "resume with since=")) << end->data;
  EXPECT_TRUE(closed);
  // The kept-alive connection got its end too (EOF, nothing else).
  EXPECT_TRUE(kept.Closed(absl::Seconds(5)));
}

TEST_F(SseE2eTest, AStalledReaderIsDroppedWithItsResumePointAndRunsStayOnTime) {
  // A write not taken never times out here: the stream can only end by
  // falling watch_buffer_events behind (the bound under test).
  // Renames as fast as they commit (no write rate in the way).
  auto daemon = StartTimerdWithHttp(
      "watch_buffer_events = 64\nhttp_body_timeout_ms = 600000\n"
      "write_rate_per_identity = 1000000\nwrite_burst_per_identity = 1000000\n");
  // Each of this job's events is ~100 KB (its action body), so few renames
  // fill any socket buffer.
  RunResult big =
      Cli({"--format", "json", "job", "submit", "--name", "big", "--interval", "1h",
           "--start", "2030-01-01T00:00:00Z", "--action-provider", "noop",
           "--action-body", json{{"fail_message", std::string(100000, 'x')}}.dump()});
  ASSERT_EQ(big.exit_code, 0) << big.err;
  const std::string big_id = json::parse(big.out, nullptr, false).value("job_id", "");
  ASSERT_FALSE(big_id.empty()) << big.out;

  // Jobs firing every second meanwhile.
  std::string tick_id;
  for (int i = 0; i < 3; ++i) {
    json tick =
        CliJson({"job", "submit", "--name", absl::StrCat("tick-", i), "--interval", "1",
                 "--action-provider", "noop", "--action-body", "{}"});
    tick_id = tick.value("job_id", "");
    ASSERT_FALSE(tick_id.empty()) << tick.dump();
  }

  // Another watcher, of one firing job (its stream carries none of the big
  // job's events), reading on its own thread: how late each run started, by
  // its RUN_STARTED events.
  SseStream live(http_port_, "/v1/jobs/" + tick_id + ":watch", token_);
  ASSERT_EQ(live.ReadHead(), 200);
  absl::Mutex mu;
  int runs_seen = 0;
  absl::Duration worst = absl::ZeroDuration();
  std::optional<SseEvent> live_end;
  std::atomic<bool> stop{false};
  std::thread live_reader([&] {
    while (!stop.load()) {
      std::optional<SseEvent> e = live.Next(absl::Milliseconds(200));
      if (!e && live.Closed(absl::ZeroDuration())) break;
      if (!e) continue;
      absl::MutexLock lock(&mu);
      if (e->event == "error") live_end = e;
      if (e->event != "RUN_STARTED") continue;
      const json j = e->Json();
      const absl::Duration late =
          JsonTime(j["result"]["start_time"]) - JsonTime(j["result"]["scheduled_time"]);
      worst = std::max(worst, late);
      ++runs_seen;
    }
  });

  // The stalled one takes nothing (a small receive buffer, never read).
  SseStream stalled(http_port_, "/v1/jobs:watch", token_, "", 4096);
  ASSERT_EQ(stalled.ReadHead(), 200);

  // Renames until timerd drops the stalled stream (awaited on its counter,
  // however large the kernel's buffers are).
  const std::string dropped =
      "timer_watch_streams_dropped_total{reason=\"slow_consumer\"}";
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  int renames = 0;
  while (Metric(dropped) < 1 && absl::Now() < deadline) {
    RenameMany(big_id, 10, absl::StrCat("big-", renames, "-"));
    renames += 10;
  }
  ASSERT_GE(Metric(dropped), 1) << renames << " renames";
  // Memory stays bounded: the stalled stream held at most its 64 events
  // (shared with the others) and one write. Under AddressSanitizer the
  // freed copies of the ~100 KB events wait in its quarantine too
  // (tests/support/sanitizers.h): 558 MB was seen there.
  EXPECT_LT(
      Metric("process_resident_memory_bytes"),
      512.0 * (1 << 20) +
          (timer::testing::kAddressSanitizer ? timer::testing::kAsanQuarantineBytes : 0))
      << renames << " renames";

  // Runs stayed on time, and the other watcher still gets its events:
  // awaited, three more runs.
  int seen_at_drop = 0;
  {
    absl::MutexLock lock(&mu);
    seen_at_drop = runs_seen;
  }
  {
    absl::MutexLock lock(&mu);
    auto three_more = [&] { return runs_seen >= seen_at_drop + 3; };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&three_more), absl::Seconds(20)))
        << runs_seen;
    EXPECT_LT(worst, absl::Seconds(1));
    EXPECT_FALSE(live_end.has_value()) << live_end->data;
  }
  stop.store(true);
  live_reader.join();

  // Reading again: what was in transit, then the end naming the resume
  // point (RESOURCE_EXHAUSTED, as a slow gRPC watcher), then EOF.
  std::optional<SseEvent> e;
  std::optional<SseEvent> last;
  int read = 0;
  while ((e = stalled.Next(absl::Seconds(10)))) {
    last = e;
    ++read;
  }
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->event, "error") << last->data;
  EXPECT_EQ(last->Json()["code"], 8) << last->data;
  EXPECT_TRUE(absl::StrContains(last->data, "resume with since=")) << last->data;
  EXPECT_TRUE(stalled.Closed(absl::Seconds(5)));
  EXPECT_GT(read, 0);
}

}  // namespace
}  // namespace timer::testing
