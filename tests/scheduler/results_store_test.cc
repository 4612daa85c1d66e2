// The run engine's store surface (WriteJob with results, ListResults,
// ListOpenResults, ScanDue, PruneResults) on both stores.
#include <filesystem>
#include <functional>
#include <memory>
#include <set>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "domain/ids.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"

namespace timer::store {
namespace {

class ResultsStoreTest : public ::testing::TestWithParam<bool /*sqlite*/> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      dir_ = std::filesystem::temp_directory_path() / ("timer-results-" + domain::NewUuid());
      std::filesystem::create_directories(dir_);
      store_ = SqliteStore::Open({.path = (dir_ / "t.db").string()}).value();
    } else {
      store_ = std::make_unique<MemoryStore>();
    }
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  absl::StatusOr<v1::Job> Sync(const std::function<void(JobCallback)>& call) {
    absl::Notification done;
    absl::StatusOr<v1::Job> out = absl::UnknownError("");
    call([&](absl::StatusOr<v1::Job> j) {
      out = std::move(j);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }

  std::string NewJob(const std::string& owner, std::optional<int64_t> next_us) {
    v1::Job job;
    job.set_job_id(domain::NewUuid());
    job.set_owner(owner);
    job.mutable_create_time()->set_seconds(1);
    if (next_us) {
      job.mutable_next_run()->set_seconds(*next_us / 1000000);
      job.mutable_next_run()->set_nanos((*next_us % 1000000) * 1000);
    }
    EXPECT_TRUE(Sync([&](JobCallback cb) { store_->CreateJob(job, "", "", std::move(cb)); }).ok());
    return job.job_id();
  }

  // Writes results run_numbers [from, to] with `status`, ended at second = run.
  void AddResults(const std::string& id, int from, int to, v1::JobResult::Status status) {
    auto r = Sync([&](JobCallback cb) {
      store_->WriteJob("", id,
                       [&](v1::Job&, std::vector<v1::JobResult>& table) {
                         for (int n = from; n <= to; ++n) {
                           v1::JobResult r;
                           r.set_run_number(n);
                           r.set_status(status);
                           if (status != v1::JobResult::PENDING &&
                               status != v1::JobResult::ACTIVE) {
                             r.mutable_end_time()->set_seconds(n);
                           }
                           table.push_back(r);
                         }
                         return absl::OkStatus();
                       },
                       std::move(cb));
    });
    ASSERT_TRUE(r.ok()) << r.status();
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(ResultsStoreTest, ListResultsIsNewestFirstPagedAndOwnerScoped) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 7, v1::JobResult::SUCCEEDED);
  auto page = store_->ListResults("alice", id, 0, 3).value();
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(page[0].run_number(), 7);
  EXPECT_EQ(page[2].run_number(), 5);
  page = store_->ListResults("alice", id, 5, 10).value();
  ASSERT_EQ(page.size(), 4u);
  EXPECT_EQ(page[0].run_number(), 4);
  EXPECT_EQ(store_->ListResults("bob", id, 0, 10).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(ResultsStoreTest, AResultWrittenAgainIsReplaced) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 1, v1::JobResult::ACTIVE);
  AddResults(id, 1, 1, v1::JobResult::SUCCEEDED);
  auto all = store_->ListResults("alice", id, 0, 10).value();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].status(), v1::JobResult::SUCCEEDED);
}

TEST_P(ResultsStoreTest, OpenResultsAreThePendingAndActiveOnes) {
  const std::string a = NewJob("alice", std::nullopt);
  const std::string b = NewJob("bob", std::nullopt);
  AddResults(a, 1, 2, v1::JobResult::SUCCEEDED);
  AddResults(a, 3, 3, v1::JobResult::PENDING);
  AddResults(b, 1, 1, v1::JobResult::ACTIVE);
  auto open = store_->ListOpenResults().value();
  ASSERT_EQ(open.size(), 2u);
  std::set<std::pair<std::string, int64_t>> got;
  for (const auto& [id, r] : open) got.emplace(id, r.run_number());
  EXPECT_EQ(got, (std::set<std::pair<std::string, int64_t>>{{a, 3}, {b, 1}}));
}

TEST_P(ResultsStoreTest, ScanDueSeesOnlyJobsWithANextRun) {
  const std::string due = NewJob("alice", 5'000'000);
  NewJob("alice", std::nullopt);
  std::vector<std::pair<std::string, int64_t>> seen;
  ASSERT_TRUE(store_->ScanDue([&](const std::string& id, int64_t us) {
    seen.emplace_back(id, us);
  }).ok());
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, int64_t>>{{due, 5'000'000}}));
}

TEST_P(ResultsStoreTest, PruneKeepsTheNewestAndDropsTheOldButNeverOpenRuns) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 10, v1::JobResult::SUCCEEDED);
  AddResults(id, 11, 11, v1::JobResult::ACTIVE);
  EXPECT_EQ(store_->PruneResults(6, 0).value(), 5);  // Runs 1..5 beyond 6 newest.
  auto left = store_->ListResults("alice", id, 0, 100).value();
  ASSERT_EQ(left.size(), 6u);
  EXPECT_EQ(left[0].run_number(), 11);  // Open: kept.
  // Ended before second 8 (runs 6, 7) go.
  EXPECT_EQ(store_->PruneResults(100, 8'000'000).value(), 2);
  EXPECT_EQ(store_->ListResults("alice", id, 0, 100).value().size(), 4u);
}

INSTANTIATE_TEST_SUITE_P(Stores, ResultsStoreTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Sqlite" : "Memory"; });

}  // namespace
}  // namespace timer::store
