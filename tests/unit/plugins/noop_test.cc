// noop provider, driven through the plugin host as timerd drives it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "plugin_host/plugin_host.h"
#include "plugin_test_util.h"

namespace timer::plugin_host {
namespace {

using domain::ActionStatus;
using domain::LocalIdentity;
using State = domain::ActionStatus::State;
using testing::ReadFile;
using testing::TempDir;
using testing::WaitForEnd;

class NoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    record_ = dir_.path() / "runs.log";
    auto p = LoadPlugin(TIMER_NOOP_SO, {{"noop", {{"record_file", record_.string()}}}});
    ASSERT_TRUE(p.ok()) << p.status();
    noop_ = *std::move(p);
  }
  std::vector<std::string> RecordLines() {
    std::vector<std::string> lines =
        absl::StrSplit(ReadFile(record_), '\n', absl::SkipEmpty());
    return lines;
  }

  TempDir dir_;
  std::filesystem::path record_;
  std::unique_ptr<Plugin> noop_;
};

TEST_F(NoopTest, Info) {
  EXPECT_EQ(noop_->info().name(), "noop");
  EXPECT_EQ(noop_->info().abi_version(), "1.2");
  auto schema = nlohmann::json::parse(noop_->info().input_schema());
  EXPECT_TRUE(schema["properties"].contains("delay_ms"));
}

TEST_F(NoopTest, SucceedsAndRecordsOneLinePerStart) {
  auto st = noop_->Start("job1/1", LocalIdentity(), "{}");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_FALSE(st->action_id.empty());
  auto end = WaitForEnd(noop_.get(), st->action_id);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->state, State::kSucceeded);
  EXPECT_EQ(end->error, "");
  auto lines = RecordLines();
  ASSERT_EQ(lines.size(), 1u);
  std::vector<std::string> fields = absl::StrSplit(lines[0], ' ');
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[0], "job1/1");
  auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  EXPECT_NEAR(std::stoll(fields[1]), now_ms, 10000);
}

TEST_F(NoopTest, FailsTransientlyForTheFirstAttemptsOfARequestIdThenSucceeds) {
  const char* body = R"({"fail": true, "fail_class": "transient", "fail_attempts": 2})";
  for (int attempt = 1; attempt <= 3; ++attempt) {
    SCOPED_TRACE(attempt);
    auto st = noop_->Start("job1/9", LocalIdentity(), body);
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->state, attempt <= 2 ? State::kFailed : State::kSucceeded);
    EXPECT_EQ(st->error_class,
              attempt <= 2 ? v1::ERROR_CLASS_TRANSIENT : v1::ERROR_CLASS_PERMANENT);
    // Until released, the same request id is the same action.
    auto again = noop_->Start("job1/9", LocalIdentity(), body);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->action_id, st->action_id);
    ASSERT_TRUE(noop_->Release(st->action_id).ok());
  }
  EXPECT_EQ(noop_->Validate(LocalIdentity(), R"({"fail_class": "sometimes"})").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(NoopTest, StaysActiveForDelayThenSucceeds) {
  auto t0 = std::chrono::steady_clock::now();
  auto st = noop_->Start("job1/2", LocalIdentity(), R"({"delay_ms": 150})");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->state, State::kActive);
  auto end = WaitForEnd(noop_.get(), st->action_id);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->state, State::kSucceeded);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));
  EXPECT_EQ(nlohmann::json::parse(end->details)["delay_ms"], 150);
}

TEST_F(NoopTest, FailsOnRequest) {
  auto st = noop_->Start("job1/3", LocalIdentity(),
                         R"({"fail": true, "fail_message": "boom"})");
  ASSERT_TRUE(st.ok()) << st.status();
  auto end = WaitForEnd(noop_.get(), st->action_id);
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->state, State::kFailed);
  EXPECT_EQ(end->error, "boom");
  EXPECT_EQ(RecordLines().size(), 1u);  // a failed action was still started
}

TEST_F(NoopTest, ValidateRefusesBadBodiesNamingTheField) {
  EXPECT_TRUE(noop_->Validate(LocalIdentity(), R"({"delay_ms": 5, "fail": false})").ok());
  struct Case {
    const char* body;
    const char* needle;
  } cases[] = {
      {R"({"fail_validation": true})", "fail_validation"},
      {R"({"delay_ms": -1})", "delay_ms"},
      {R"({"delay_ms": "5"})", "delay_ms"},
      {R"({"fail": 1})", "fail"},
      {R"({"dealy_ms": 5})", "dealy_ms: unknown field"},
      {R"([1])", "body: must be a JSON object"},
      {R"({nope)", "body: not valid JSON"},
  };
  for (const auto& c : cases) {
    absl::Status s = noop_->Validate(LocalIdentity(), c.body);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_NE(s.message().find(c.needle), absl::string_view::npos) << s;
    // start() refuses the same bodies and starts nothing.
    EXPECT_EQ(noop_->Start("bad", LocalIdentity(), c.body).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(RecordLines().size(), 0u);
}

TEST_F(NoopTest, StartIsIdempotentOnRequestIdEvenConcurrently) {
  constexpr int kThreads = 8;
  std::vector<std::string> ids(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      auto st = noop_->Start("job2/1", LocalIdentity(), R"({"delay_ms": 50})");
      if (!st.ok()) {
        ++failures;
        return;
      }
      ids[i] = st->action_id;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (const auto& id : ids) EXPECT_EQ(id, ids[0]);
  ASSERT_TRUE(WaitForEnd(noop_.get(), ids[0]).ok());
  // Once ended, a repeat still answers with the same action, now ended.
  auto again = noop_->Start("job2/1", LocalIdentity(), R"({"fail": true})");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->action_id, ids[0]);
  EXPECT_EQ(again->state, State::kSucceeded);
  auto lines = RecordLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("job2/1 ", 0), 0u);
  // A different run is a different action.
  auto other = noop_->Start("job2/2", LocalIdentity(), "{}");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->action_id, ids[0]);
  EXPECT_EQ(RecordLines().size(), 2u);
}

TEST_F(NoopTest, CancelEndsALongActionPromptly) {
  auto st = noop_->Start("job3/1", LocalIdentity(), R"({"delay_ms": 600000})");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(noop_->Cancel(st->action_id).ok());
  auto end = WaitForEnd(noop_.get(), st->action_id, std::chrono::seconds(2));
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->state, State::kCancelled);
  EXPECT_TRUE(noop_->Cancel(st->action_id).ok());  // no-op once ended
}

TEST_F(NoopTest, ReleaseForgetsTheAction) {
  auto st = noop_->Start("job4/1", LocalIdentity(), "{}");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(WaitForEnd(noop_.get(), st->action_id).ok());
  ASSERT_TRUE(noop_->Release(st->action_id).ok());
  EXPECT_EQ(noop_->Status(st->action_id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(noop_->Release(st->action_id).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(noop_->Cancel("no-such-action").code(), absl::StatusCode::kNotFound);
}

TEST_F(NoopTest, ReleasingAnActiveActionCancelsAndForgetsIt) {
  auto st = noop_->Start("job4/2", LocalIdentity(), R"({"delay_ms": 600000})");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(noop_->Release(st->action_id).ok());
  EXPECT_EQ(noop_->Status(st->action_id).status().code(), absl::StatusCode::kNotFound);
  // The request id is forgotten too: a new start is a new action.
  auto again = noop_->Start("job4/2", LocalIdentity(), "{}");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->action_id, st->action_id);
  EXPECT_EQ(RecordLines().size(), 2u);
  auto t0 = std::chrono::steady_clock::now();
  noop_.reset();  // the released action was cancelled: nothing to wait for
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

TEST_F(NoopTest, DestroyWithActionsRunningCancelsAndJoins) {
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(noop_
                    ->Start("job5/" + std::to_string(i), LocalIdentity(),
                            R"({"delay_ms": 600000})")
                    .ok());
  }
  auto t0 = std::chrono::steady_clock::now();
  noop_.reset();  // destroy() then dlclose(): must not hang or crash
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

// H6: an action waiting out its delay holds no thread (300 RunJobNow calls
// once made 300 threads).
TEST_F(NoopTest, DelayedActionsTakeNoThreads) {
  auto threads = [] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
      (void)e;
      ++n;
    }
    return n;
  };
  const int before = threads();
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    auto st = noop_->Start("job6/" + std::to_string(i), LocalIdentity(),
                           R"({"delay_ms": 600000})");
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(st->state, State::kActive);
    ids.push_back(st->action_id);
  }
  EXPECT_EQ(threads(), before);
  for (const std::string& id : ids) ASSERT_TRUE(noop_->Cancel(id).ok());
  for (const std::string& id : ids) {
    auto end = noop_->Status(id);
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_EQ(end->state, State::kCancelled);
  }
  EXPECT_EQ(RecordLines().size(), 300u);
}

TEST(NoopConfig, BadConfigFailsCreate) {
  auto unknown = LoadPlugin(TIMER_NOOP_SO, {{"noop", {{"recordfile", "/tmp/x"}}}});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("plugins.noop.recordfile"),
            absl::string_view::npos)
      << unknown.status();
  auto unwritable = LoadPlugin(
      TIMER_NOOP_SO, {{"noop", {{"record_file", "/nonexistent/dir/runs.log"}}}});
  EXPECT_EQ(unwritable.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace timer::plugin_host
