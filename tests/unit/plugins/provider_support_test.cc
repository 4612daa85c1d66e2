// ActionRunner (plugins/common/provider_support.h) in-process: actions run
// on a bounded pool with a bounded queue, a full queue refuses a start with
// a retryable error, queued actions cancel and release without running, a
// delayed outcome needs no thread, and destruction waits for stuck work a
// bounded time only. And ReadSecretFile (plugins/common/secret_file.h), the
// one rule every provider reads a secret file by.
#include "provider_support.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "secret_file.h"

namespace timer::plugins {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

// A gate the test opens; work waits on it, ignoring cancellation (as work
// stuck in a system call would).
class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

ActionRunner::Options Opts(int threads, int max_queued, milliseconds stop_timeout) {
  ActionRunner::Options o;
  o.config_prefix = "plugins.test";
  o.threads = threads;
  o.max_queued = max_queued;
  o.stop_timeout = stop_timeout;
  return o;
}

struct Started {
  Err err;
  ActionSnapshot snap;
};

Started StartOn(ActionRunner& r, const std::string& request_id, Work work,
                bool run_inline = false) {
  Started s;
  bool created = false;
  s.err = r.Start(request_id, std::move(work), nullptr, &s.snap, &created, run_inline);
  return s;
}

// Polls until `pred` holds or `timeout` passes.
template <typename Pred>
bool WaitUntil(Pred pred, milliseconds timeout = seconds(10)) {
  const auto deadline = steady_clock::now() + timeout;
  while (!pred()) {
    if (steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

timer_ap_state StateOf(ActionRunner& r, const std::string& id) {
  ActionSnapshot s;
  Err e = r.Status(id, &s);
  EXPECT_TRUE(e.ok()) << e.message;
  return s.state;
}

TEST(ActionRunnerTest, RunsOnABoundedPoolAndRefusesBeyondTheQueueRetryably) {
  auto gate = std::make_shared<Gate>();
  ActionRunner r(Opts(2, 3, seconds(10)));
  auto blocked = [gate](ActionContext&) {
    gate->Wait();
    return Outcome{};
  };
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    Started s = StartOn(r, "job/" + std::to_string(i), blocked);
    ASSERT_TRUE(s.err.ok()) << s.err.message;
    EXPECT_EQ(s.snap.state, TIMER_AP_STATE_ACTIVE);
    ids.push_back(s.snap.action_id);
  }
  ASSERT_TRUE(WaitUntil([&] { return r.running() == 2; }));
  EXPECT_EQ(r.queued(), 3);
  EXPECT_EQ(r.threads(), 2);  // not one per action

  // Two running and three waiting: the sixth is refused, naming the limit,
  // and nothing of it is remembered.
  Started full = StartOn(r, "job/5", blocked);
  EXPECT_EQ(full.err.code, TIMER_AP_RESOURCE_EXHAUSTED);
  EXPECT_NE(full.err.message.find("plugins.test.max_queued_actions (3) reached"),
            std::string::npos)
      << full.err.message;
  EXPECT_NE(full.err.message.find("retry later"), std::string::npos) << full.err.message;
  ActionSnapshot none;
  EXPECT_FALSE(r.FindRequest("job/5", &none));

  gate->Open();
  for (const std::string& id : ids) {
    ASSERT_TRUE(WaitUntil([&] { return StateOf(r, id) != TIMER_AP_STATE_ACTIVE; }));
    EXPECT_EQ(StateOf(r, id), TIMER_AP_STATE_SUCCEEDED);
  }
  // The same start, retried once there is room, runs.
  Started retry = StartOn(r, "job/5", [](ActionContext&) { return Outcome{}; });
  ASSERT_TRUE(retry.err.ok()) << retry.err.message;
  ASSERT_TRUE(WaitUntil(
      [&] { return StateOf(r, retry.snap.action_id) == TIMER_AP_STATE_SUCCEEDED; }));
  EXPECT_EQ(r.threads(), 2);
}

TEST(ActionRunnerTest, QueuedActionsCancelAndReleaseWithoutRunning) {
  auto gate = std::make_shared<Gate>();
  auto ran = std::make_shared<std::atomic<int>>(0);
  ActionRunner r(Opts(1, 10, seconds(10)));
  Started first = StartOn(r, "a/1", [gate](ActionContext&) {
    gate->Wait();
    return Outcome{};
  });
  ASSERT_TRUE(first.err.ok());
  ASSERT_TRUE(WaitUntil([&] { return r.running() == 1; }));
  auto counting = [ran](ActionContext&) {
    ++*ran;
    return Outcome{};
  };
  Started second = StartOn(r, "a/2", counting);
  Started third = StartOn(r, "a/3", counting);
  ASSERT_TRUE(second.err.ok() && third.err.ok());
  EXPECT_EQ(r.queued(), 2);

  ASSERT_TRUE(r.Cancel(second.snap.action_id).ok());
  EXPECT_EQ(StateOf(r, second.snap.action_id), TIMER_AP_STATE_CANCELLED);  // at once
  ASSERT_TRUE(r.Release(third.snap.action_id).ok());
  ActionSnapshot gone;
  EXPECT_EQ(r.Status(third.snap.action_id, &gone).code, TIMER_AP_NOT_FOUND);
  EXPECT_EQ(r.queued(), 0);

  gate->Open();
  ASSERT_TRUE(WaitUntil(
      [&] { return StateOf(r, first.snap.action_id) == TIMER_AP_STATE_SUCCEEDED; }));
  EXPECT_EQ(ran->load(), 0);
}

// The work sees the request id it was started with (the http provider's
// Idempotency-Key), on a pool thread and inline; a repeated start of the
// same request id runs nothing again.
TEST(ActionRunnerTest, TheWorkSeesItsRequestId) {
  ActionRunner r(Opts(2, 10, seconds(10)));
  auto seen = std::make_shared<std::mutex>();
  auto ids = std::make_shared<std::vector<std::string>>();
  auto record = [seen, ids](ActionContext& ctx) {
    std::lock_guard<std::mutex> lock(*seen);
    ids->push_back(ctx.request_id());
    return Outcome::Failed(Transient(Unavailable("try again")));
  };
  Started pooled = StartOn(r, "job-a/7", record);
  ASSERT_TRUE(pooled.err.ok());
  ASSERT_TRUE(WaitUntil(
      [&] { return StateOf(r, pooled.snap.action_id) == TIMER_AP_STATE_FAILED; }));
  Started inlined = StartOn(r, "job-a/8", record, /*run_inline=*/true);
  ASSERT_TRUE(inlined.err.ok());
  Started again = StartOn(r, "job-a/7", record);
  ASSERT_TRUE(again.err.ok());
  EXPECT_EQ(again.snap.action_id, pooled.snap.action_id);
  ActionSnapshot end;
  ASSERT_TRUE(r.Status(pooled.snap.action_id, &end).ok());
  EXPECT_EQ(end.error_class, TIMER_AP_ERROR_CLASS_TRANSIENT);
  std::lock_guard<std::mutex> lock(*seen);
  EXPECT_EQ(*ids, (std::vector<std::string>{"job-a/7", "job-a/8"}));
}

TEST(ActionRunnerTest, ADelayedOutcomeNeedsNoThreadAndCanBeCancelled) {
  ActionRunner r(Opts(4, 10, seconds(10)));
  auto delayed = [](milliseconds d) {
    return [d](ActionContext&) {
      Outcome o{TIMER_AP_STATE_FAILED, "on purpose"};
      o.delay = d;
      return o;
    };
  };
  const auto t0 = steady_clock::now();
  Started s = StartOn(r, "d/1", delayed(milliseconds(100)), /*run_inline=*/true);
  ASSERT_TRUE(s.err.ok());
  EXPECT_EQ(s.snap.state, TIMER_AP_STATE_ACTIVE);
  ASSERT_TRUE(
      WaitUntil([&] { return StateOf(r, s.snap.action_id) != TIMER_AP_STATE_ACTIVE; }));
  EXPECT_GE(steady_clock::now() - t0, milliseconds(100));
  ActionSnapshot end;
  ASSERT_TRUE(r.Status(s.snap.action_id, &end).ok());
  EXPECT_EQ(end.state, TIMER_AP_STATE_FAILED);
  EXPECT_EQ(end.error, "on purpose");

  Started long_one = StartOn(r, "d/2", delayed(seconds(600)), true);
  ASSERT_TRUE(r.Cancel(long_one.snap.action_id).ok());
  EXPECT_EQ(StateOf(r, long_one.snap.action_id), TIMER_AP_STATE_CANCELLED);
  EXPECT_EQ(r.threads(), 0);
}

// M1: a stopping provider waits for stuck work a bounded time, then leaves
// it (logged) instead of hanging timerd's shutdown.
TEST(ActionRunnerTest, DestructionWaitsForStuckWorkOnlyUntilTheStopTimeout) {
  auto gate = std::make_shared<Gate>();
  auto finished = std::make_shared<std::promise<void>>();
  auto runner = std::make_unique<ActionRunner>(Opts(2, 10, milliseconds(200)));
  // One action ignores cancellation; one honours it; one waits in the queue.
  Started stuck = StartOn(*runner, "s/1", [gate, finished](ActionContext&) {
    gate->Wait();
    finished->set_value();
    return Outcome{};
  });
  Started polite = StartOn(*runner, "s/2", [](ActionContext& ctx) {
    ctx.WaitCancelledFor(seconds(600));
    return Outcome{TIMER_AP_STATE_CANCELLED, "cancelled"};
  });
  ASSERT_TRUE(stuck.err.ok() && polite.err.ok());
  ASSERT_TRUE(WaitUntil([&] { return runner->running() == 2; }));

  auto destroyed = std::async(std::launch::async, [&runner] { runner.reset(); });
  const auto t0 = steady_clock::now();
  const bool in_time = destroyed.wait_for(seconds(5)) == std::future_status::ready;
  const auto took = steady_clock::now() - t0;
  gate->Open();  // lets the stuck work end either way (and an old runner join)
  destroyed.wait();
  EXPECT_TRUE(in_time) << "destruction waited for work that ignores cancel";
  EXPECT_LT(took, seconds(3));
  // The work left behind still runs to its end on state kept alive for it.
  EXPECT_EQ(finished->get_future().wait_for(seconds(5)), std::future_status::ready);
}

TEST(ActionRunnerTest, ReadRunnerOptionsReadsAndBoundsTheKeys) {
  nlohmann::json config = {
      {"action_threads", 3}, {"max_queued_actions", 7}, {"stop_timeout_seconds", 2}};
  FieldReader r(config, "plugins.x");
  ActionRunner::Options o = ReadRunnerOptions(r);
  ASSERT_TRUE(r.Finish().ok());
  EXPECT_EQ(o.config_prefix, "plugins.x");
  EXPECT_EQ(o.threads, 3);
  EXPECT_EQ(o.max_queued, 7);
  EXPECT_EQ(o.stop_timeout, seconds(2));

  nlohmann::json bad = {{"action_threads", 0}};
  FieldReader rb(bad, "plugins.x");
  ReadRunnerOptions(rb);
  Err e = rb.Finish();
  EXPECT_EQ(e.code, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_NE(e.message.find("plugins.x.action_threads"), std::string::npos) << e.message;
}

// ---- ReadSecretFile ----

class SecretFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "timer-secret-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& content, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }
  std::string dir_;
};

TEST_F(SecretFileTest, APrivateFileIsReadExactly) {
  const std::string path = Write("key", "s3cr3t\n", 0600);
  std::string content = "left over";
  Err e = ReadSecretFile("x.key_file", path, &content);
  ASSERT_TRUE(e.ok()) << e.message;
  EXPECT_EQ(content, "s3cr3t\n");  // the caller trims if it wants to
  EXPECT_TRUE(ReadSecretFile("x.key_file", path, nullptr).ok());  // check only
  const std::string empty = Write("empty", "", 0400);
  ASSERT_TRUE(ReadSecretFile("x.key_file", empty, &content).ok());
  EXPECT_EQ(content, "");
}

TEST_F(SecretFileTest, AFileOthersMayReadOrWriteIsRefusedWithoutItsContent) {
  for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0610}) {
    const std::string path = Write("open", "top-secret", mode);
    std::string content;
    Err e = ReadSecretFile("x.key_file", path, &content);
    EXPECT_EQ(e.code, TIMER_AP_PERMISSION_DENIED) << std::oct << mode;
    EXPECT_NE(e.message.find("x.key_file"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("chmod 600"), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find("top-secret"), std::string::npos) << e.message;
    EXPECT_EQ(content, "");
  }
}

TEST_F(SecretFileTest, ASymbolicLinkIsRefusedEvenToAPrivateFile) {
  const std::string target = Write("real", "top-secret", 0600);
  const std::string link = dir_ + "/link";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  Err e = ReadSecretFile("x.key_file", link, nullptr);
  EXPECT_EQ(e.code, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_NE(e.message.find("symbolic link"), std::string::npos) << e.message;
}

TEST_F(SecretFileTest, WhatIsNoRegularFileIsRefusedWithoutWaiting) {
  // A FIFO nobody writes to: opening it must not block.
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Err e = ReadSecretFile("x.key_file", fifo, nullptr);
  EXPECT_EQ(e.code, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_NE(e.message.find("not a regular file"), std::string::npos) << e.message;
  ::chmod(dir_.c_str(), 0700);
  e = ReadSecretFile("x.key_file", dir_, nullptr);
  EXPECT_EQ(e.code, TIMER_AP_INVALID_ARGUMENT);
  e = ReadSecretFile("x.key_file", dir_ + "/missing", nullptr);
  EXPECT_EQ(e.code, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_NE(e.message.find("x.key_file: cannot open"), std::string::npos) << e.message;
}

TEST_F(SecretFileTest, AFileOver64KiBIsRefused) {
  const std::string at = Write("at", std::string(kMaxSecretFileBytes, 'k'), 0600);
  std::string content;
  ASSERT_TRUE(ReadSecretFile("x.key_file", at, &content).ok());
  EXPECT_EQ(content.size(), kMaxSecretFileBytes);
  const std::string over = Write("over", std::string(kMaxSecretFileBytes + 1, 'k'), 0600);
  Err e = ReadSecretFile("x.key_file", over, &content);
  EXPECT_EQ(e.code, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_NE(e.message.find("larger than 64 KiB"), std::string::npos) << e.message;
}

}  // namespace
}  // namespace timer::plugins
