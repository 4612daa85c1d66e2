// FakeActionProvider: an in-process ActionProvider for run-engine tests.
//
// Each started action is ACTIVE until the test ends it (Complete/FailAll),
// unless `instant` is set, in which case Start() returns SUCCEEDED at once.
// Records every Start() request id, so tests can check exactly-once
// execution. Thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "domain/action_provider.h"

namespace timer::testing {

class FakeActionProvider final : public domain::ActionProvider {
 public:
  explicit FakeActionProvider(std::string name = "fake", bool instant = true) {
    info_.set_name(std::move(name));
    info_.set_version("1.0.0");
    info_.set_input_schema("{}");
    instant_ = instant;
  }

  const v1::ActionProvider& info() const override { return info_; }

  absl::Status Validate(const domain::Identity&, absl::string_view body) override {
    if (body.find("\"bad\"") != absl::string_view::npos) {
      return absl::InvalidArgumentError("bad: not allowed");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<domain::ActionStatus> Start(absl::string_view request_id,
                                             const domain::Identity& owner,
                                             absl::string_view) override {
    absl::MutexLock lock(&mu_);
    starts_.emplace_back(request_id);
    owners_.emplace_back(owner.name);
    if (!start_errors_.empty()) {
      absl::Status error = start_errors_.front();
      start_errors_.erase(start_errors_.begin());
      return error;
    }
    domain::ActionStatus st;
    st.action_id = absl::StrCat("a-", starts_.size());
    st.state = instant_ ? domain::ActionStatus::State::kSucceeded
                        : domain::ActionStatus::State::kActive;
    if (fail_next_ > 0) {
      --fail_next_;
      st.state = domain::ActionStatus::State::kFailed;
      st.error = absl::StrCat("it broke (attempt ", starts_.size(), ")");
      st.error_class = fail_class_;
    }
    st.details = "{}";
    actions_[st.action_id] = st.state;
    return st;
  }

  absl::StatusOr<domain::ActionStatus> Status(absl::string_view action_id) override {
    absl::MutexLock lock(&mu_);
    auto it = actions_.find(std::string(action_id));
    if (it == actions_.end()) return absl::NotFoundError("no such action");
    domain::ActionStatus st;
    st.action_id = std::string(action_id);
    st.state = it->second;
    if (st.state == domain::ActionStatus::State::kFailed) {
      st.error = "it broke";
      auto c = classes_.find(st.action_id);
      st.error_class = c == classes_.end() ? v1::ERROR_CLASS_PERMANENT : c->second;
    }
    return st;
  }

  absl::Status Cancel(absl::string_view action_id) override {
    absl::MutexLock lock(&mu_);
    cancels_.emplace_back(action_id);
    auto it = actions_.find(std::string(action_id));
    if (it != actions_.end() && it->second == domain::ActionStatus::State::kActive) {
      it->second = domain::ActionStatus::State::kCancelled;
    }
    return absl::OkStatus();
  }

  absl::Status Release(absl::string_view action_id) override {
    absl::MutexLock lock(&mu_);
    releases_.emplace_back(action_id);
    return absl::OkStatus();
  }

  // The next `n` starts end FAILED at once, with error class `c`.
  void FailNext(int n, v1::ErrorClass c) {
    absl::MutexLock lock(&mu_);
    fail_next_ = n;
    fail_class_ = c;
  }
  // The next start() calls return these errors, in order (nothing started).
  void FailNextStartCalls(std::vector<absl::Status> errors) {
    absl::MutexLock lock(&mu_);
    start_errors_ = std::move(errors);
  }
  // Ends every active action FAILED with error class `c`.
  void FailAllAs(v1::ErrorClass c) {
    absl::MutexLock lock(&mu_);
    for (auto& [id, s] : actions_) {
      if (s == domain::ActionStatus::State::kActive) {
        s = domain::ActionStatus::State::kFailed;
        classes_[id] = c;
      }
    }
  }
  std::vector<std::string> releases() const {
    absl::MutexLock lock(&mu_);
    return releases_;
  }

  // Ends every active action with `state`.
  void EndAll(domain::ActionStatus::State state) {
    absl::MutexLock lock(&mu_);
    for (auto& [id, s] : actions_) {
      if (s == domain::ActionStatus::State::kActive) s = state;
    }
  }
  // Forgets every action (as a provider that restarted would).
  void ForgetAll() {
    absl::MutexLock lock(&mu_);
    actions_.clear();
  }
  // Starts actions ACTIVE from now on (false) or SUCCEEDED at once (true).
  void set_instant(bool instant) {
    absl::MutexLock lock(&mu_);
    instant_ = instant;
  }
  std::vector<std::string> starts() const {
    absl::MutexLock lock(&mu_);
    return starts_;
  }
  std::vector<std::string> owners() const {
    absl::MutexLock lock(&mu_);
    return owners_;
  }
  std::vector<std::string> cancels() const {
    absl::MutexLock lock(&mu_);
    return cancels_;
  }

 private:
  v1::ActionProvider info_;
  mutable absl::Mutex mu_;
  bool instant_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> starts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> owners_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> cancels_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> releases_ ABSL_GUARDED_BY(mu_);
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  v1::ErrorClass fail_class_ ABSL_GUARDED_BY(mu_) = v1::ERROR_CLASS_PERMANENT;
  std::vector<absl::Status> start_errors_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::ErrorClass> classes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, domain::ActionStatus::State> actions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace timer::testing
