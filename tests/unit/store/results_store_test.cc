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

TEST_P(ResultsStoreTest, PruneKeepsAnOpenRunAmongDroppedOnesListed) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 10, v1::JobResult::SUCCEEDED);
  AddResults(id, 3, 3, v1::JobResult::ACTIVE);  // Still open: never dropped.
  EXPECT_EQ(store_->PruneResults(2, 0).value(), 7);  // 1, 2 and 4..8.
  const auto runs = [&] {
    std::vector<int64_t> out;
    const std::vector<v1::JobResult> results = store_->ListResults("alice", id, 0, 100).value();
    for (const auto& r : results) out.push_back(r.run_number());
    return out;
  };
  EXPECT_EQ(runs(), (std::vector<int64_t>{10, 9, 3}));
  AddResults(id, 11, 11, v1::JobResult::SUCCEEDED);
  EXPECT_EQ(runs(), (std::vector<int64_t>{11, 10, 9, 3}));
  EXPECT_EQ(store_->GetJob("alice", id)->results_size(), 4);
  // The open run ends; now it goes too, and the newest one by age.
  AddResults(id, 3, 3, v1::JobResult::SUCCEEDED);
  EXPECT_EQ(store_->PruneResults(100, 4'000'000).value(), 1);  // Ended at second 3.
  EXPECT_EQ(runs(), (std::vector<int64_t>{11, 10, 9}));
}

TEST_P(ResultsStoreTest, PruneCoversEveryJobWhenItTakesSeveralWrites) {
  // More results than one of the SQLite store's prune writes walks.
  std::vector<std::string> ids;
  for (int j = 0; j < 3; ++j) {
    ids.push_back(NewJob("alice", std::nullopt));
    AddResults(ids.back(), 1, 2000, v1::JobResult::SUCCEEDED);
  }
  EXPECT_EQ(store_->PruneResults(10, 0).value(), 3 * 1990);
  for (const std::string& id : ids) {
    const auto left = store_->ListResults("alice", id, 0, 100).value();
    ASSERT_EQ(left.size(), 10u);
    EXPECT_EQ(left.front().run_number(), 2000);
    EXPECT_EQ(left.back().run_number(), 1991);
  }
}

TEST_P(ResultsStoreTest, PruneByAgeDropsTheNewestRunWhenItEndedFirst) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 5, v1::JobResult::SUCCEEDED);
  auto r = Sync([&](JobCallback cb) {
    store_->WriteJob("", id,
                     [&](v1::Job&, std::vector<v1::JobResult>& table) {
                       v1::JobResult r;
                       r.set_run_number(6);
                       r.set_status(v1::JobResult::FAILED);
                       r.mutable_end_time()->set_seconds(1);  // Before run 5 ended.
                       table.push_back(r);
                       return absl::OkStatus();
                     },
                     std::move(cb));
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(store_->PruneResults(100, 2'000'000).value(), 2);  // Runs 1 and 6.
  const auto left = store_->ListResults("alice", id, 0, 100).value();
  ASSERT_EQ(left.size(), 4u);
  EXPECT_EQ(left[0].run_number(), 5);
  EXPECT_EQ(left[3].run_number(), 2);
  EXPECT_EQ(store_->GetJob("alice", id)->results(0).run_number(), 5);
}

TEST_P(ResultsStoreTest, AnOlderRunWrittenLaterIsListedInRunOrder) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 2, v1::JobResult::SUCCEEDED);
  for (int run : {5, 4, 3}) {
    v1::JobResult r;
    r.set_run_number(run);
    r.set_status(v1::JobResult::SUCCEEDED);
    absl::Notification done;
    store_->WriteResult(id, r, [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      done.Notify();
    });
    done.WaitForNotification();
  }
  std::vector<int64_t> runs;
  const std::vector<v1::JobResult> results = store_->ListResults("alice", id, 0, 100).value();
  for (const auto& r : results) runs.push_back(r.run_number());
  EXPECT_EQ(runs, (std::vector<int64_t>{5, 4, 3, 2, 1}));
  const auto page = store_->ListResults("alice", id, 4, 2).value();
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].run_number(), 3);
  EXPECT_EQ(page[1].run_number(), 2);
}

TEST_P(ResultsStoreTest, AResultOfAnUnknownJobIsNotFoundAndNotStored) {
  v1::JobResult r;
  r.set_run_number(1);
  r.set_status(v1::JobResult::PENDING);
  absl::Notification done;
  absl::Status status;
  store_->WriteResult("no-such-job", r, [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->ListOpenResults()->empty());
}

TEST_P(ResultsStoreTest, JobsCarryTheNewestTenResultsNewestFirstOnEveryRead) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 12, v1::JobResult::SUCCEEDED);

  const auto numbers = [](const v1::Job& job) {
    std::vector<int64_t> n;
    for (const auto& r : job.results()) n.push_back(r.run_number());
    return n;
  };
  const std::vector<int64_t> newest = {12, 11, 10, 9, 8, 7, 6, 5, 4, 3};
  EXPECT_EQ(numbers(store_->GetJob("alice", id).value()), newest);
  EXPECT_EQ(numbers(store_->LoadJob(id).value()), newest);
  ListJobsQuery query;
  query.owner = "alice";
  auto page = store_->ListJobs(query).value();
  ASSERT_EQ(page.jobs.size(), 1u);
  EXPECT_EQ(numbers(page.jobs[0]), newest);
  // A mutation sees them, and the written job has them, new ones included.
  std::vector<int64_t> seen;
  auto written = Sync([&](JobCallback cb) {
    store_->WriteJob("alice", id,
                     [&](v1::Job& job, std::vector<v1::JobResult>& table) {
                       seen = numbers(job);
                       v1::JobResult r;
                       r.set_run_number(13);
                       table.push_back(r);
                       return absl::OkStatus();
                     },
                     std::move(cb));
  });
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(seen, newest);
  EXPECT_EQ(numbers(*written), (std::vector<int64_t>{13, 12, 11, 10, 9, 8, 7, 6, 5, 4}));
}

TEST_P(ResultsStoreTest, ResultsSetOnTheJobItselfAreNotStored) {
  const std::string id = NewJob("alice", std::nullopt);
  auto written = Sync([&](JobCallback cb) {
    store_->WriteJob("alice", id,
                     [](v1::Job& job, std::vector<v1::JobResult>&) {
                       job.add_results()->set_run_number(99);
                       return absl::OkStatus();
                     },
                     std::move(cb));
  });
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->results_size(), 0);
  EXPECT_EQ(store_->GetJob("alice", id)->results_size(), 0);
}

TEST_P(ResultsStoreTest, LastRunIsTheNewestResultsStartWhenLater) {
  const std::string id = NewJob("alice", std::nullopt);
  auto written = Sync([&](JobCallback cb) {
    store_->WriteJob("alice", id,
                     [](v1::Job& job, std::vector<v1::JobResult>& table) {
                       job.mutable_last_run()->set_seconds(50);
                       v1::JobResult r;
                       r.set_run_number(1);
                       r.mutable_start_time()->set_seconds(40);
                       table.push_back(r);
                       return absl::OkStatus();
                     },
                     std::move(cb));
  });
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(store_->GetJob("alice", id)->last_run().seconds(), 50);  // Stored is later.

  v1::JobResult r;
  r.set_run_number(2);
  r.mutable_start_time()->set_seconds(60);
  absl::Notification done;
  store_->WriteResult(id, r, [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(store_->GetJob("alice", id)->last_run().seconds(), 60);
}

TEST_P(ResultsStoreTest, WriteResultAddsOrReplacesAResultAndLeavesTheJobAlone) {
  const std::string id = NewJob("alice", std::nullopt);
  const std::string etag = store_->GetJob("alice", id)->etag();
  for (auto status : {v1::JobResult::ACTIVE, v1::JobResult::SUCCEEDED}) {
    v1::JobResult r;
    r.set_run_number(1);
    r.set_status(status);
    absl::Notification done;
    store_->WriteResult(id, r, [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      done.Notify();
    });
    done.WaitForNotification();
  }
  const v1::Job job = store_->GetJob("alice", id).value();
  EXPECT_EQ(job.etag(), etag);
  ASSERT_EQ(job.results_size(), 1);
  EXPECT_EQ(job.results(0).status(), v1::JobResult::SUCCEEDED);
  EXPECT_TRUE(store_->ListOpenResults()->empty());
}

TEST_P(ResultsStoreTest, WriteJobStateSkipsResultsButKeepsThem) {
  const std::string id = NewJob("alice", std::nullopt);
  AddResults(id, 1, 3, v1::JobResult::SUCCEEDED);
  int seen = -1;
  auto written = Sync([&](JobCallback cb) {
    store_->WriteJobState(id,
                          [&](v1::Job& job, std::vector<v1::JobResult>& table) {
                            seen = job.results_size();
                            job.set_name("renamed");
                            v1::JobResult r;
                            r.set_run_number(4);
                            table.push_back(r);
                            return absl::OkStatus();
                          },
                          std::move(cb));
  });
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(seen, 0);
  EXPECT_EQ(written->results_size(), 0);
  const v1::Job job = store_->GetJob("alice", id).value();
  EXPECT_EQ(job.name(), "renamed");
  EXPECT_EQ(job.results_size(), 4);
}

INSTANTIATE_TEST_SUITE_P(Stores, ResultsStoreTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Sqlite" : "Memory"; });

}  // namespace
}  // namespace timer::store
