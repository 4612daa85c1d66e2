// Helpers shared by the store tests: synchronous wrappers over the
// asynchronous write API, matchers, a temporary directory, and the list of
// stores the conformance suite runs against. Header-only; each test binary
// includes it once.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "domain/ids.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "timer/v1/timer.pb.h"

namespace timer::store {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// Longest a test waits for anything; only reached when something is broken.
constexpr absl::Duration kWait = absl::Seconds(30);

MATCHER_P(EqualsProto, expected, absl::StrCat("equals ", expected.ShortDebugString())) {
  if (google::protobuf::util::MessageDifferencer::Equals(arg, expected)) return true;
  *result_listener << "which is " << arg.ShortDebugString();
  return false;
}

MATCHER_P(StatusIs, code,
          absl::StrCat("has status code ", absl::StatusCodeToString(code))) {
  const absl::Status status = [&] {
    if constexpr (std::is_same_v<std::decay_t<arg_type>, absl::Status>) {
      return arg;
    } else {
      return arg.status();
    }
  }();
  *result_listener << "whose status is " << status;
  return status.code() == code;
}

MATCHER(IsOk, "is OK") {
  if (arg.ok()) return true;
  if constexpr (std::is_same_v<std::decay_t<arg_type>, absl::Status>) {
    *result_listener << "whose status is " << arg;
  } else {
    *result_listener << "whose status is " << arg.status();
  }
  return false;
}

// ---------------------------------------------------------------------------
// Helpers: synchronous wrappers over the asynchronous write API.

// One write's result, shared with its callback so a timed-out wait never
// leaves the callback writing into a dead stack frame.
struct Outcome {
  absl::Notification done;
  absl::StatusOr<v1::Job> result = absl::UnknownError("callback not run");
};

inline JobCallback Into(std::shared_ptr<Outcome> outcome) {
  return [outcome](absl::StatusOr<v1::Job> r) {
    outcome->result = std::move(r);
    outcome->done.Notify();
  };
}

inline absl::StatusOr<v1::Job> Await(const std::shared_ptr<Outcome>& outcome) {
  if (!outcome->done.WaitForNotificationWithTimeout(kWait)) {
    return absl::DeadlineExceededError("test: write callback never ran");
  }
  return outcome->result;
}

inline std::shared_ptr<Outcome> StartCreate(Store& store, v1::Job job,
                                            std::string request_id = "",
                                            std::string fingerprint = "") {
  auto outcome = std::make_shared<Outcome>();
  store.CreateJob(std::move(job), std::move(request_id), std::move(fingerprint),
                  Into(outcome));
  return outcome;
}

inline std::shared_ptr<Outcome> StartUpdate(Store& store, std::string owner,
                                            std::string job_id, JobMutation mutate) {
  auto outcome = std::make_shared<Outcome>();
  store.UpdateJob(std::move(owner), std::move(job_id), std::move(mutate), Into(outcome));
  return outcome;
}

inline absl::StatusOr<v1::Job> Create(Store& store, v1::Job job,
                                      std::string request_id = "",
                                      std::string fingerprint = "") {
  return Await(
      StartCreate(store, std::move(job), std::move(request_id), std::move(fingerprint)));
}

inline absl::StatusOr<v1::Job> Update(Store& store, std::string owner, std::string job_id,
                                      JobMutation mutate) {
  return Await(
      StartUpdate(store, std::move(owner), std::move(job_id), std::move(mutate)));
}

inline JobMutation Rename(std::string name) {
  return [name = std::move(name)](v1::Job& job) {
    job.set_name(name);
    return absl::OkStatus();
  };
}

inline JobMutation SetStatus(v1::Job::Status status) {
  return [status](v1::Job& job) {
    job.set_status(status);
    return absl::OkStatus();
  };
}

// A job as the domain would hand it to the store.
inline v1::Job MakeJob(const std::string& owner, int64_t create_seconds = 1700000000,
                       std::string job_id = domain::NewUuid()) {
  v1::Job job;
  job.set_job_id(std::move(job_id));
  job.set_owner(owner);
  job.set_name("nightly");
  job.mutable_schedule()->mutable_start()->set_seconds(create_seconds);
  job.mutable_schedule()->set_interval_seconds(60);
  job.mutable_action()->set_provider("noop");
  job.mutable_action()->set_body(R"({"k":1})");
  job.set_status(v1::Job::NEW);
  job.mutable_create_time()->set_seconds(create_seconds);
  job.mutable_update_time()->set_seconds(create_seconds);
  return job;
}

// A job id that sorts where the test wants it: "00000000-0000-4000-8000-<n>".
inline std::string OrderedId(int n) {
  std::string tail = absl::StrCat(n);
  return absl::StrCat("00000000-0000-4000-8000-", std::string(12 - tail.size(), '0'),
                      tail);
}

inline std::vector<std::string> Ids(const std::vector<v1::Job>& jobs) {
  std::vector<std::string> ids;
  for (const v1::Job& job : jobs) ids.push_back(job.job_id());
  return ids;
}

// Every job of `owner`, deleted ones too, in listing order.
inline std::vector<v1::Job> ListAll(Store& store, const std::string& owner) {
  ListJobsQuery query;
  query.owner = owner;
  query.show_deleted = true;
  query.page_size = 100000;
  absl::StatusOr<ListJobsPage> page = store.ListJobs(query);
  EXPECT_THAT(page, IsOk());
  return page.ok() ? page->jobs : std::vector<v1::Job>{};
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "timerd_store_test.XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace
}  // namespace timer::store
