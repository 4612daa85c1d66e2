#include "domain/run_now_relay.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "domain/ids.h"
#include "spdlog/spdlog.h"
#include "util/thread_name.h"

namespace timer::domain {
namespace {

// Requests at most claimed per round, and claimed but not yet answered.
constexpr int kClaimBatch = 64;
constexpr int kMaxRunning = 256;
// Rows are kept this long past their expiry, then pruned (every 10 s).
constexpr absl::Duration kKeepExpired = absl::Minutes(1);
constexpr absl::Duration kPruneEvery = absl::Seconds(10);

}  // namespace

RunNowRelay::RunNowRelay(store::RelayStore* store, JobService* jobs,
                         std::string replica_id, Options options)
    : store_(store),
      jobs_(jobs),
      replica_id_(std::move(replica_id)),
      options_(std::move(options)) {}

RunNowRelay::~RunNowRelay() { Stop(); }

void RunNowRelay::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  loop_ = std::thread([this] { Loop(); });
}

void RunNowRelay::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !loop_.joinable()) return;
    stopping_ = true;
  }
  if (loop_.joinable()) loop_.join();
  std::vector<Waiter> left;
  {
    absl::MutexLock lock(&mu_);
    // Relayed runs this replica is recording: their callbacks touch this.
    mu_.Await(absl::Condition(
        +[](int* running) { return *running == 0; }, &running_));
    for (auto& [id, waiter] : waiting_) left.push_back(std::move(waiter));
    waiting_.clear();
    waiting_by_owner_.clear();
  }
  for (Waiter& w : left) {
    std::move(w.done)(absl::UnavailableError(
        "timerd is stopping; the run may or may not have been recorded: retry with "
        "the same request_id"));
  }
}

size_t RunNowRelay::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_.size();
}

void RunNowRelay::Relay(const Identity& caller, const v1::RunJobNowRequest& request,
                        store::JobCallback done) {
  const std::string id = NewUuid();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      std::move(done)(absl::UnavailableError("timerd is stopping; try again later"));
      return;
    }
    if (static_cast<int>(waiting_.size()) >= options_.max_waiting) {
      std::move(done)(absl::ResourceExhaustedError(absl::StrCat(
          "max_relayed_runs (", options_.max_waiting,
          ") reached: that many RunJobNow calls wait for another replica; try again "
          "later")));
      return;
    }
    int& mine = waiting_by_owner_[caller.name];
    if (mine >= options_.max_waiting_per_identity) {
      std::move(done)(absl::ResourceExhaustedError(
          absl::StrCat("max_relayed_runs_per_identity (",
                       options_.max_waiting_per_identity, ") reached: ", caller.name,
                       " has that many RunJobNow calls waiting for another replica")));
      return;
    }
    ++mine;  // Reserved before the store call, so a burst cannot pass the bound.
  }
  absl::Status added = store_->AddRelayedRun(
      store::RelayedRun{id, caller.name, request.job_id(), request.request_id()},
      options_.timeout / 2);
  {
    absl::MutexLock lock(&mu_);
    if (added.ok() && !stopping_) {
      waiting_.emplace(id, Waiter{caller, request.job_id(),
                                  absl::Now() + options_.timeout, std::move(done)});
      wake_ = true;
      return;
    }
    auto it = waiting_by_owner_.find(caller.name);
    if (it != waiting_by_owner_.end() && --it->second <= 0) waiting_by_owner_.erase(it);
  }
  if (added.ok()) {
    added = absl::UnavailableError(
        "timerd is stopping; the run may or may not have been recorded: retry with the "
        "same request_id");
  }
  std::move(done)(std::move(added));
}

RunNowRelay::Waiter RunNowRelay::TakeWaiter(const std::string& id) {
  auto it = waiting_.find(id);
  Waiter w = std::move(it->second);
  waiting_.erase(it);
  auto owner = waiting_by_owner_.find(w.caller.name);
  if (owner != waiting_by_owner_.end() && --owner->second <= 0) {
    waiting_by_owner_.erase(owner);
  }
  return w;
}

void RunNowRelay::Loop() {
  util::SetThreadName("run-relay");
  absl::Time next_claim = absl::Now();
  absl::Time next_prune = absl::Now() + kPruneEvery;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      const absl::Time until =
          waiting_.empty() ? next_claim
                           : std::min(next_claim, absl::Now() + options_.answer_every);
      mu_.AwaitWithDeadline(absl::Condition(
                                +[](RunNowRelay* r) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                  return r->stopping_ || r->wake_ || !r->answers_.empty();
                                },
                                this),
                            until);
      if (stopping_) break;
      wake_ = false;
    }
    Answer();
    const absl::Time now = absl::Now();
    if (now >= next_claim) {
      Claim();
      next_claim = now + options_.claim_every;
    }
    Collect();
    if (now >= next_prune) {
      absl::StatusOr<int64_t> pruned = store_->PruneRelayedRuns(kKeepExpired);
      if (!pruned.ok()) {
        spdlog::warn("run relay: pruning expired requests failed: {}",
                     std::string(pruned.status().message()));
      }
      next_prune = now + kPruneEvery;
    }
  }
  // Answers of runs recorded here still reach their askers.
  Answer();
}

void RunNowRelay::Claim() {
  int room = 0;
  {
    absl::MutexLock lock(&mu_);
    room = std::min(kClaimBatch, kMaxRunning - running_);
  }
  if (room <= 0) return;
  absl::StatusOr<std::vector<store::RelayedRun>> claimed =
      store_->ClaimRelayedRuns(replica_id_, room);
  if (!claimed.ok()) {
    spdlog::warn("run relay: looking for relayed RunJobNow calls failed: {}",
                 std::string(claimed.status().message()));
    return;
  }
  if (claimed->empty()) return;
  {
    absl::MutexLock lock(&mu_);
    running_ += static_cast<int>(claimed->size());
  }
  for (store::RelayedRun& run : *claimed) {
    v1::RunJobNowRequest request;
    request.set_job_id(run.job_id);
    request.set_request_id(run.request_id);
    jobs_->RunJobNowRelayed(Identity{run.owner, "relayed"}, request,
                            [this, id = run.id](absl::StatusOr<v1::Job> written) {
                              absl::MutexLock lock(&mu_);
                              answers_.emplace_back(id, written.status());
                              --running_;
                            });
  }
}

void RunNowRelay::Answer() {
  std::vector<std::pair<std::string, absl::Status>> answers;
  {
    absl::MutexLock lock(&mu_);
    answers.swap(answers_);
  }
  for (const auto& [id, status] : answers) {
    const absl::Status written = store_->FinishRelayedRun(id, status);
    if (!written.ok()) {
      // The asker times out, saying the run may have been recorded.
      spdlog::warn("run relay: answering a relayed RunJobNow failed: {}",
                   std::string(written.message()));
    }
  }
}

void RunNowRelay::Collect() {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    if (waiting_.empty()) return;
    ids.reserve(waiting_.size());
    for (const auto& [id, waiter] : waiting_) ids.push_back(id);
  }
  absl::StatusOr<std::vector<store::RelayedRunOutcome>> outcomes =
      store_->RelayedRunOutcomes(ids);
  std::vector<std::pair<Waiter, absl::Status>> ready;
  {
    absl::MutexLock lock(&mu_);
    if (outcomes.ok()) {
      for (store::RelayedRunOutcome& o : *outcomes) {
        if (!waiting_.contains(o.id)) continue;
        ready.emplace_back(TakeWaiter(o.id), std::move(o.status));
      }
    }
    const absl::Time now = absl::Now();
    std::vector<std::string> expired;
    for (const auto& [id, waiter] : waiting_) {
      if (waiter.give_up <= now) expired.push_back(id);
    }
    for (const std::string& id : expired) {
      ready.emplace_back(
          TakeWaiter(id),
          absl::UnavailableError(absl::StrCat(
              "the replica scheduling this job did not answer within ",
              absl::FormatDuration(options_.timeout),
              "; the run may or may not have been recorded: retry with the same "
              "request_id")));
    }
  }
  for (auto& [waiter, status] : ready) {
    if (!status.ok()) {
      std::move(waiter.done)(std::move(status));
      continue;
    }
    v1::GetJobRequest get;
    get.set_job_id(waiter.job_id);
    std::move(waiter.done)(jobs_->GetJob(waiter.caller, get));
  }
}

}  // namespace timer::domain
