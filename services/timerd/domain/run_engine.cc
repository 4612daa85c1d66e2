#include "domain/run_engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "domain/job_results.h"
#include "domain/retry.h"
#include "domain/schedule.h"
#include "domain/time_util.h"
#include "util/metrics.h"
#include "util/status_macros.h"
#include "util/thread_name.h"

namespace timer::domain {
namespace {

v1::JobResult::Status ToResultStatus(ActionStatus::State s) {
  switch (s) {
    case ActionStatus::State::kActive:
      return v1::JobResult::ACTIVE;
    case ActionStatus::State::kSucceeded:
      return v1::JobResult::SUCCEEDED;
    case ActionStatus::State::kFailed:
      return v1::JobResult::FAILED;
    case ActionStatus::State::kCancelled:
      return v1::JobResult::CANCELLED;
  }
  return v1::JobResult::UNKNOWN;
}

// Copies what the provider said into the result.
void Apply(const ActionStatus& st, v1::JobResult& r) {
  r.set_status(ToResultStatus(st.state));
  if (!st.action_id.empty()) r.set_action_id(st.action_id);
  r.set_details(st.details);
  r.set_error(st.error);
  r.set_error_class(st.state == ActionStatus::State::kFailed
                        ? st.error_class
                        : v1::ERROR_CLASS_UNSPECIFIED);
}

// Ends the run's open attempt (its last, without an end time) as the run
// ended.
void CloseAttempt(v1::JobResult& r, absl::Time now) {
  if (r.attempts_size() == 0) return;
  v1::RunAttempt& a = *r.mutable_attempts(r.attempts_size() - 1);
  if (a.has_end_time()) return;
  *a.mutable_end_time() = r.has_end_time() ? r.end_time() : ToProto(now);
  if (r.status() != v1::JobResult::SUCCEEDED) a.set_error(r.error());
  if (r.status() == v1::JobResult::FAILED) a.set_error_class(r.error_class());
}

// An ActiveRun's attempts, from the result it polls.
void CarryAttempts(const v1::JobResult& r, std::vector<v1::RunAttempt>& attempts,
                   absl::Time& attempt_started) {
  attempts.assign(r.attempts().begin(), r.attempts().end());
  attempt_started = attempts.empty() || !attempts.back().has_start_time()
                        ? FromProto(r.start_time())
                        : FromProto(attempts.back().start_time());
}

std::string RequestId(const std::string& job_id, int64_t run_number) {
  return absl::StrCat(job_id, "/", run_number);
}

std::string_view StatusLabel(v1::JobResult::Status s) {
  switch (s) {
    case v1::JobResult::SUCCEEDED:
      return "succeeded";
    case v1::JobResult::FAILED:
      return "failed";
    case v1::JobResult::CANCELLED:
      return "cancelled";
    case v1::JobResult::SKIPPED:
      return "skipped";
    default:
      return "unknown";
  }
}

}  // namespace

RunEngine::RunEngine(store::Store* store, const Clock* clock,
                     const ProviderRegistry* providers, Options options)
    : store_(store),
      clock_(clock),
      providers_(providers),
      options_(options),
      workers_(std::make_unique<WorkerPool>(options.workers)) {}

RunEngine::~RunEngine() { Stop(); }

absl::Status RunEngine::Start() {
  if (leases_ != nullptr) {
    // Shards come with the leases (ShardsGained): nothing is ours yet.
    spdlog::info("run engine: replica {} schedules the shards it leases",
                 leases_->replica_id());
  } else {
    auto open = store_->ListOpenResults();
    if (!open.ok()) return open.status();
    for (auto& [job_id, result] : *open) Reconcile(job_id, std::move(result));
    {
      // Read first, then queued all at once (TimerQueue::SetAll); under the
      // lock throughout, so no JobChanged lands between the two.
      absl::MutexLock lock(&mu_);
      std::vector<std::pair<JobKey, int64_t>> due;
      absl::Status scan = store_->ScanDue([&due](const std::string& id, int64_t us) {
        if (auto key = JobKey::Parse(id)) due.emplace_back(*key, us);
      });
      if (!scan.ok()) return scan;
      queue_.SetAll(due);
      spdlog::info("run engine: {} jobs scheduled, {} open runs reconciled",
                   queue_.size(), open->size());
    }
  }
  if (options_.background) {
    {
      // The first tick at once: due jobs, and the pruning and purge at start.
      absl::MutexLock lock(&mu_);
      wake_ = true;
    }
    thread_ = std::thread([this] {
      util::SetThreadName("run-engine");
      Loop();
    });
  }
  return absl::OkStatus();
}

void RunEngine::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && workers_ == nullptr) return;
    stopping_ = true;
    deferred_.clear();
  }
  if (thread_.joinable()) thread_.join();
  // Runs already recorded for a slot within the lookahead still start at
  // their slot: at most `lookahead` of waiting.
  std::vector<std::pair<PendingStart, InFlight>> pending;
  {
    absl::MutexLock lock(&mu_);
    for (PendingStart& p : starts_) {
      // A run waiting to be tried again stays so in the store (PENDING with
      // its next_attempt_time): the next start makes the attempt.
      if (p.retry) continue;
      pending.emplace_back(std::move(p), BeginWorkLocked());
    }
    starts_.clear();
    retry_waiting_ = 0;
    owner_retry_.clear();
  }
  std::sort(pending.begin(), pending.end(),
            [](const auto& a, const auto& b) { return a.first.at < b.first.at; });
  for (auto& [p, in_flight] : pending) {
    const absl::Duration wait = p.at - clock_->Now();
    if (wait > absl::ZeroDuration()) absl::SleepFor(std::min(wait, options_.lookahead));
    DispatchPending(std::move(p), std::move(in_flight));
  }
  WaitIdle();
  workers_.reset();
}

RunEngine::InFlight RunEngine::BeginWork() {
  absl::MutexLock lock(&mu_);
  return BeginWorkLocked();
}

RunEngine::InFlight RunEngine::BeginWorkLocked() {
  ++in_flight_;
  return InFlight(this);
}

void RunEngine::EndWork() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

void RunEngine::WaitIdle() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &in_flight_));
}

size_t RunEngine::queued_jobs() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

int RunEngine::active_runs() const {
  absl::MutexLock lock(&mu_);
  return active_runs_;
}

int RunEngine::retry_waiting() const {
  absl::MutexLock lock(&mu_);
  return retry_waiting_;
}

absl::Duration RunEngine::due_lag() {
  absl::MutexLock lock(&mu_);
  const std::optional<absl::Time> due = queue_.NextDue();
  return due ? std::max(absl::ZeroDuration(), clock_->Now() - *due)
             : absl::ZeroDuration();
}

void RunEngine::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      std::optional<absl::Time> next;
      // Past the local deadline nothing fires; a renewal wakes the thread.
      if (InFlightRuns() < options_.max_active_runs &&
          (leases_ == nullptr || leases_->BeforeDeadline())) {
        if (auto due = queue_.NextDue()) next = *due - options_.lookahead;
        if (!deferred_.empty() && (!next || deferred_.front().first < *next))
          next = deferred_.front().first;
      }
      if (!polls_.empty() && (!next || polls_.front().at < *next))
        next = polls_.front().at;
      if (!starts_.empty() && (!next || starts_.front().at < *next))
        next = starts_.front().at;
      const absl::Time now = clock_->Now();
      // Ticks are at least `resolution` apart: due work is taken in batches
      // rather than one wakeup per run.
      wake_at_ =
          next ? std::max(*next, last_tick_ + options_.resolution) : now + absl::Hours(1);
      if (!wake_) {
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](RunEngine* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
                                   return e->stopping_ || e->wake_;
                                 },
                                 this),
                             std::max(absl::ZeroDuration(), wake_at_ - now));
      }
      wake_ = false;
      wake_at_ = absl::InfinitePast();
      last_tick_ = clock_->Now();
      if (stopping_) return;
    }
    Tick();
  }
}

absl::StatusOr<int64_t> RunEngine::PruneResults() {
  const absl::Time cutoff = clock_->Now() - options_.keep_results_for;
  return store_->PruneResults(options_.keep_results, absl::ToUnixMicros(cutoff));
}

absl::StatusOr<int64_t> RunEngine::PurgeDeleted() {
  if (options_.purge_deleted_after == absl::InfiniteDuration()) return 0;
  const int64_t cutoff = absl::ToUnixMicros(clock_->Now() - options_.purge_deleted_after);
  constexpr int kBatch = 1024;  // The store bounds each write itself.
  int64_t n = 0;
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<store::PurgedJob> purged,
                     store_->PurgeDeletedJobs(cutoff, kBatch));
    for (const store::PurgedJob& p : purged) {
      if (quota_ != nullptr) quota_->Purged(p.owner, p.bytes);
    }
    n += static_cast<int64_t>(purged.size());
    if (static_cast<int>(purged.size()) < kBatch) return n;
  }
}

int RunEngine::Tick() {
  const absl::Time now = clock_->Now();
  InFlight prune;  // Empty unless a prune is due.
  std::vector<std::pair<JobKey, absl::Time>> due;
  std::vector<std::pair<Poll, InFlight>> polls;
  std::vector<std::pair<PendingStart, InFlight>> ready;
  std::vector<RunStart> backfill_starts;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && workers_ == nullptr) return 0;
    int room = std::max(0, options_.max_active_runs - InFlightRuns());
    if (leases_ != nullptr && !leases_->BeforeDeadline()) room = 0;
    size_t fires = std::min<size_t>(room, options_.max_fires_per_tick);
    // Deferred fires first (their slot has come), within the same room.
    const auto due_later = [](const std::pair<absl::Time, JobKey>& a,
                              const std::pair<absl::Time, JobKey>& b) {
      return a.first > b.first;
    };
    while (fires > 0 && !deferred_.empty() && deferred_.front().first <= now) {
      std::pop_heap(deferred_.begin(), deferred_.end(), due_later);
      const auto [at, key] = deferred_.back();
      deferred_.pop_back();
      // A shard lost or draining meanwhile: its next holder fires the job.
      if (leases_ != nullptr && !firing_.test(store::ShardOf(key.ToString()))) {
        fires_in_flight_.erase(key);
        continue;
      }
      due.emplace_back(key, at);
      --fires;
    }
    std::vector<std::pair<JobKey, absl::Time>> popped =
        queue_.PopDue(now + options_.lookahead, fires);
    if (leases_ != nullptr) {
      for (const auto& [key, at] : popped) fires_in_flight_.insert(key);
    }
    due.insert(due.end(), popped.begin(), popped.end());
    const auto start_later = [](const PendingStart& a, const PendingStart& b) {
      return a.at > b.at;
    };
    while (!starts_.empty() && starts_.front().at <= now) {
      std::pop_heap(starts_.begin(), starts_.end(), start_later);
      ready.emplace_back(std::move(starts_.back()), BeginWorkLocked());
      starts_.pop_back();
    }
    const auto later = [](const Poll& a, const Poll& b) { return a.at > b.at; };
    while (!polls_.empty() && polls_.front().at <= now) {
      std::pop_heap(polls_.begin(), polls_.end(), later);
      polls.emplace_back(std::move(polls_.back()), BeginWorkLocked());
      polls_.pop_back();
    }
    if (backfill_blocked_) {
      // Room may have opened under the limits: every waiting job tries once.
      backfill_blocked_ = false;
      const std::vector<std::string> waiting(backfill_jobs_.begin(),
                                             backfill_jobs_.end());
      for (const std::string& id : waiting) PumpBackfill(id, backfill_starts);
    }
    if (options_.background && now >= next_prune_) {
      next_prune_ = now + absl::Hours(1);
      prune = BeginWorkLocked();  // Replaces an empty one: ends nothing.
    }
  }
  if (prune) {
    workers_->Submit([this, in_flight = std::move(prune)]() mutable {
      absl::StatusOr<int64_t> pruned = PruneResults();
      if (!pruned.ok()) {
        spdlog::warn("run engine: pruning results failed: {}",
                     std::string(pruned.status().message()));
      } else if (*pruned > 0) {
        spdlog::info("run engine: pruned {} old results", *pruned);
      }
      absl::StatusOr<int64_t> purged = PurgeDeleted();
      if (!purged.ok()) {
        spdlog::warn("run engine: purging deleted jobs failed: {}",
                     std::string(purged.status().message()));
      } else if (*purged > 0) {
        spdlog::info("run engine: purged {} deleted jobs", *purged);
      }
      in_flight.Reset();
    });
  }
  for (auto& [p, in_flight] : ready) DispatchPending(std::move(p), std::move(in_flight));
  DispatchAll(std::move(backfill_starts));
  for (const auto& [key, at] : due) Fire(key, at, now);
  for (auto& [p, in_flight] : polls) {
    workers_->Submit(
        [this, run = std::move(p.run), in_flight = std::move(in_flight)]() mutable {
          PollRun(std::move(run));
          in_flight.Reset();
        });
  }
  return static_cast<int>(due.size());
}

void RunEngine::WakeFor(absl::Time at) {
  if (std::max(at, last_tick_ + options_.resolution) < wake_at_) wake_ = true;
}

void RunEngine::JobChanged(const v1::Job& job) {
  auto key = JobKey::Parse(job.job_id());
  if (!key) return;
  if (job.status() == v1::Job::DELETED) {
    // Delete cancels: the provider is asked to stop the job's active runs
    // (a run starting meanwhile is cancelled once started), and a run
    // waiting for them (BUFFER_ONE) is recorded SKIPPED instead.
    std::unique_ptr<std::pair<v1::Job, v1::JobResult>> waiting;
    {
      absl::MutexLock lock(&mu_);
      auto it = runs_.find(job.job_id());
      if (it != runs_.end()) {
        it->second.deleted = true;
        waiting = std::move(it->second.buffered);
      }
    }
    CancelActive(job.job_id());
    if (waiting) {
      const absl::Time now = clock_->Now();
      DispatchPending(
          PendingStart{now, std::make_shared<const v1::Job>(std::move(waiting->first)),
                       std::move(waiting->second), v1::Job::DELETED},
          BeginWork());
    }
  }
  std::deque<v1::JobResult> halted;
  std::shared_ptr<const v1::Job> shared;
  std::vector<RunStart> starts;
  {
    absl::MutexLock lock(&mu_);
    // A run recorded ahead of its slot does not start once its job is paused
    // or deleted (JobChanged comes in commit order, after the fire's own).
    if (job.status() == v1::Job::PAUSED || job.status() == v1::Job::DELETED) {
      bool moved = false;
      const absl::Time now = clock_->Now();
      for (PendingStart& p : starts_) {
        if (p.job->job_id() != job.job_id()) continue;
        p.halted = job.status();
        // A run waiting to be tried again ends now, not at its retry time.
        if (p.retry && p.at > now) {
          p.at = now;
          moved = true;
        }
      }
      if (moved) {
        std::make_heap(
            starts_.begin(), starts_.end(),
            [](const PendingStart& a, const PendingStart& b) { return a.at > b.at; });
        WakeFor(now);
      }
    }
    if (auto it = runs_.find(job.job_id()); it != runs_.end()) {
      it->second.halted =
          job.status() == v1::Job::PAUSED || job.status() == v1::Job::DELETED
              ? job.status()
              : v1::Job::STATUS_UNSPECIFIED;
    }
    if (IsSchedulable(job.status()) && job.has_next_run() &&
        (leases_ == nullptr || firing_.test(store::ShardOf(job.job_id())))) {
      const absl::Time due = FromProto(job.next_run());
      queue_.Set(*key, due);
      WakeFor(due - options_.lookahead);
    } else {
      queue_.Remove(*key);
    }
    // Backfill runs waiting to start: cancelled by a pause or a delete;
    // otherwise started as the job now says (its overlap policy or its
    // action may have changed). Under the same lock as the above: this is
    // every fire's commit path.
    auto it = runs_.find(job.job_id());
    if (it != runs_.end() && !it->second.backfill.empty()) {
      shared = std::make_shared<const v1::Job>(job);
      if (job.status() == v1::Job::PAUSED || job.status() == v1::Job::DELETED) {
        halted = TakeBackfill(it->second);
        backfill_jobs_.erase(job.job_id());
        if (Idle(it->second)) runs_.erase(it);
      } else {
        it->second.backfill_job = shared;
        PumpBackfill(job.job_id(), starts);
      }
    }
  }
  DispatchAll(std::move(starts));
  if (!halted.empty()) SkipBackfill(std::move(shared), std::move(halted), job.status());
}

void RunEngine::Fire(const JobKey& key, absl::Time due, absl::Time now) {
  const std::string job_id = key.ToString();
  std::optional<store::Fence> fence;
  if (leases_ != nullptr) {
    fence = leases_->FenceFor(store::ShardOf(job_id));
    if (!fence) {  // Lost meanwhile: its next holder fires it.
      absl::MutexLock lock(&mu_);
      fires_in_flight_.erase(key);
      return;
    }
  }
  const int64_t epoch = fence ? fence->epoch : 0;
  int active = 0;
  bool has_buffered = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(job_id);
    if (it != runs_.end()) {
      active = it->second.active;
      has_buffered = it->second.buffered != nullptr;
    }
    if (active > 0 && due > now) {
      // Ahead of its slot with a run active: that run may well end before
      // the slot (a late start's, its end still being written), and every
      // overlap policy would act on it now. Judged at the slot instead.
      deferred_.emplace_back(due, key);
      std::push_heap(
          deferred_.begin(), deferred_.end(),
          [](const std::pair<absl::Time, JobKey>& a,
             const std::pair<absl::Time, JobKey>& b) { return a.first > b.first; });
      WakeFor(due);
      return;
    }
  }
  // What the mutation decided, for the commit callback.
  struct Outcome {
    std::optional<v1::JobResult> run;  // A run to start ...
    // ... at once (kStart), after cancelling the active ones
    // (kCancelPrevious), or once they end (kBuffer).
    OverlapDecision::Kind overlap = OverlapDecision::Kind::kStart;
    std::optional<v1::JobResult> skipped;  // A slot recorded SKIPPED.
    // When the run starts: its slot plus the slot's jitter.
    absl::Time start_at = absl::InfinitePast();
    // For the metrics: the skip was for missed slots (else for overlap), and
    // how many slots were missed besides the one recorded.
    bool skipped_missed = false;
    int64_t missed = 0;
  };
  auto outcome = std::make_shared<Outcome>();
  InFlight in_flight = BeginWork();
  store_->WriteJobState(
      job_id, std::move(fence),
      [=](v1::Job& job, std::vector<v1::JobResult>& table) -> absl::Status {
        // The queue keeps microseconds; so does the schedule (see jobs.cc).
        if (!IsSchedulable(job.status()) || !job.has_next_run() ||
            absl::ToUnixMicros(FromProto(job.next_run())) != absl::ToUnixMicros(due)) {
          return absl::AbortedError("fire is stale: the job changed");
        }
        const FireDecision d = DecideFire(job, due, now);
        *job.mutable_update_time() = ToProto(now);
        job.set_status(v1::Job::LOADED);
        if (d.kind == FireDecision::Kind::kEnd) {
          job.set_status(v1::Job::ENDED);
          job.set_end_reason(d.end_reason);
          job.clear_next_run();
          job.clear_next_scheduled_time();
          return absl::OkStatus();
        }
        v1::JobResult r;
        r.set_run_number(job.last_run_number() + 1);
        job.set_last_run_number(r.run_number());
        *r.mutable_scheduled_time() = ToProto(d.scheduled);
        job.set_n_skipped(job.n_skipped() + d.missed);
        outcome->missed = d.missed;
        outcome->skipped_missed = d.kind == FireDecision::Kind::kSkipMissed;
        std::string skip;
        if (d.kind == FireDecision::Kind::kSkipMissed) {
          // With replicas (a fence), "timerd was down" would mislead: the
          // others were up, and the job's shard was moving, or its holder
          // had not seen the job yet.
          skip = absl::StrCat(
              d.missed_at_least ? "at least " : "", d.missed + 1, " run(s) missed: ",
              epoch != 0 ? "no replica was scheduling this job at their "
                           "time (a replica was lost or too busy, or the "
                           "job was just created or changed through "
                           "another replica)"
                         : "timerd was down or too busy at their time",
              d.outside_window ? " (older than the catch-up window)" : "");
        } else {
          OverlapDecision o = DecideOverlap(job, active, has_buffered);
          if (o.kind == OverlapDecision::Kind::kSkip) {
            skip = std::move(o.reason);
          } else {
            outcome->overlap = o.kind;
          }
        }
        if (!skip.empty()) {
          r.set_status(v1::JobResult::SKIPPED);
          r.set_error(skip);
          *r.mutable_end_time() = ToProto(now);
          job.set_n_skipped(job.n_skipped() + 1);
          outcome->skipped = r;
        } else {
          r.set_status(v1::JobResult::PENDING);
          job.set_n_runs(job.n_runs() + 1);
          outcome->run = r;
        }
        outcome->start_at = d.start_at;
        if (d.next) {
          *job.mutable_next_run() = ToProto(*d.next_fire);
          *job.mutable_next_scheduled_time() = ToProto(*d.next);
        } else {
          job.clear_next_run();
          job.clear_next_scheduled_time();
          job.set_status(v1::Job::ENDED);
          job.set_end_reason(d.end_reason);
        }
        PutResult(job, r, table);
        return absl::OkStatus();
      },
      [this, key, due, job_id, outcome, epoch,
       in_flight = std::move(in_flight)](absl::StatusOr<v1::Job> written) mutable {
        if (leases_ != nullptr) {
          absl::MutexLock lock(&mu_);
          fires_in_flight_.erase(key);
        }
        if (written.ok()) {
          JobChanged(*written);
          metrics::CountSkippedSlots(metrics::SkipReason::kMissed, outcome->missed);
          if (outcome->skipped) {
            metrics::CountFire(outcome->skipped_missed
                                   ? metrics::FireOutcome::kSkippedMissed
                                   : metrics::FireOutcome::kSkippedOverlap);
            metrics::CountSkippedSlots(outcome->skipped_missed
                                           ? metrics::SkipReason::kMissed
                                           : metrics::SkipReason::kOverlap,
                                       1);
          } else if (!outcome->run) {
            metrics::CountFire(metrics::FireOutcome::kEnded);
          }
          if (events_ != nullptr) {
            if (outcome->skipped) {
              events_->Publish(v1::JobEvent::RUN_FINISHED, *written, &*outcome->skipped);
            }
            if (written->status() == v1::Job::ENDED) {
              events_->Publish(v1::JobEvent::ENDED, *written, nullptr);
            }
          }
          if (outcome->run) {
            if (outcome->overlap == OverlapDecision::Kind::kCancelPrevious) {
              CancelActive(job_id);
            }
            bool buffered = false;
            if (outcome->overlap == OverlapDecision::Kind::kBuffer) {
              absl::MutexLock lock(&mu_);
              JobRuns& jr = runs_[job_id];
              // The active run may have ended meanwhile: then start it now.
              if (jr.active > 0) {
                jr.buffered = std::make_unique<std::pair<v1::Job, v1::JobResult>>(
                    *written, *outcome->run);
                buffered = true;
              }
            }
            if (!buffered) {
              // The job is not needed here any more: no copy.
              RunRecorded(std::make_shared<const v1::Job>(*std::move(written)),
                          *outcome->run, epoch, outcome->start_at);
            }
          }
        } else if (absl::IsAborted(written.status()) && epoch != 0) {
          // Changed through another replica, whose JobChanged this one
          // never hears: queued again as it is now.
          Requeue(job_id);
        } else if (absl::IsFailedPrecondition(written.status()) && epoch != 0) {
          // The fence: another replica holds the shard now and fires the job.
          metrics::CountFire(metrics::FireOutcome::kNotStarted);
          spdlog::warn("run engine: a fire of job {} was refused: {}", job_id,
                       std::string(written.status().message()));
        } else if (!absl::IsAborted(written.status()) &&
                   !absl::IsNotFound(written.status())) {
          // Nothing was recorded: try this slot again shortly.
          metrics::CountFire(metrics::FireOutcome::kWriteFailed);
          spdlog::warn("run engine: recording a fire of job {} failed: {}", job_id,
                       std::string(written.status().message()));
          absl::MutexLock lock(&mu_);
          const absl::Time retry = std::max(due, clock_->Now() + absl::Seconds(1));
          queue_.Set(key, retry);
          WakeFor(retry - options_.lookahead);
        }
        in_flight.Reset();
      });
}

void RunEngine::CancelActive(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(job_id);
  if (it == runs_.end()) return;
  ActionProvider* provider = providers_->Find(it->second.provider);
  if (provider == nullptr) return;
  for (const auto& [run_number, action_id] : it->second.runs) {
    if (action_id.empty()) continue;  // Not started yet.
    workers_->Submit(
        [provider, action_id = action_id, in_flight = BeginWorkLocked()]() mutable {
          provider->Cancel(action_id).IgnoreError();
          in_flight.Reset();
        });
  }
}

void RunEngine::RunRecorded(const v1::Job& job, const v1::JobResult& result) {
  RunRecorded(std::make_shared<const v1::Job>(job), result);
}

void RunEngine::RunRecorded(std::shared_ptr<const v1::Job> job,
                            const v1::JobResult& result) {
  const int64_t epoch = EpochOf(job->job_id());
  RunRecorded(std::move(job), result, epoch);
}

int64_t RunEngine::EpochOf(const std::string& job_id) const {
  return leases_ == nullptr ? 0 : leases_->Epoch(store::ShardOf(job_id));
}

bool RunEngine::MayStart(const std::string& job_id, int64_t epoch) const {
  return leases_ == nullptr || leases_->MayStart(store::ShardOf(job_id), epoch);
}

void RunEngine::LeavePending(const std::string& job_id, int64_t run_number) {
  spdlog::warn(
      "run engine: run {} of job {} is not started: its shard is no longer held "
      "here (or the lease deadline passed); its next holder reconciles it",
      run_number, job_id);
  RunEnded(job_id, run_number);
}

void RunEngine::AddOwnerRun(const std::string& owner) { ++owner_runs_[owner]; }

void RunEngine::CountActiveRun(const v1::Job& job, const v1::JobResult& result) {
  JobRuns& jr = runs_[job.job_id()];
  ++jr.active;
  jr.runs[result.run_number()] = result.action_id();
  jr.provider = job.action().provider();
  jr.owner = job.owner();
  ++active_runs_;
  AddOwnerRun(job.owner());
}

void RunEngine::DropOwnerRun(const std::string& owner) {
  auto it = owner_runs_.find(owner);
  if (it != owner_runs_.end() && --it->second <= 0) owner_runs_.erase(it);
}

bool RunEngine::SchedulesHere(const std::string& job_id) {
  if (leases_ == nullptr) return true;
  absl::MutexLock lock(&mu_);
  return firing_.test(store::ShardOf(job_id));
}

absl::StatusOr<std::optional<store::Fence>> RunEngine::AdmissionFence(
    const std::string& job_id, absl::string_view elsewhere) {
  if (stopping_) return absl::UnavailableError("timerd is stopping; try again later");
  std::optional<store::Fence> fence;
  if (leases_ == nullptr) return fence;
  const int shard = store::ShardOf(job_id);
  if (firing_.test(shard)) fence = leases_->FenceFor(shard);
  if (!fence) {
    return absl::UnavailableError(
        absl::StrCat("this job's shard (", shard,
                     ") is scheduled by another replica right now", elsewhere));
  }
  return fence;
}

absl::StatusOr<ManualRunSlot> RunEngine::AdmitManualRun(const std::string& owner,
                                                        const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::optional<store::Fence>> fence =
      AdmissionFence(job_id, "; try again");
  if (!fence.ok()) return fence.status();
  if (InFlightRuns() >= options_.max_active_runs) {
    return absl::ResourceExhaustedError(
        absl::StrCat("max_active_runs: ", options_.max_active_runs,
                     " runs are in flight, the most timerd allows; try again later"));
  }
  auto mine = owner_runs_.find(owner);
  const int owned = mine == owner_runs_.end() ? 0 : mine->second;
  if (owned >= options_.max_active_runs_per_identity) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_active_runs_per_identity: ", owner, " has ", owned,
        " runs in flight, the most one identity may have; try again once some end"));
  }
  JobRuns& jr = runs_[job_id];
  ManualRunSlot slot{owner, job_id, jr.active + jr.admitted, jr.buffered != nullptr,
                     *std::move(fence)};
  ++jr.admitted;
  ++admitted_runs_;
  AddOwnerRun(owner);
  return slot;
}

void RunEngine::Unadmit(const ManualRunSlot& slot) {
  if (InFlightRuns() == options_.max_active_runs) wake_ = true;  // Room for due jobs.
  --admitted_runs_;
  DropOwnerRun(slot.owner);
  auto it = runs_.find(slot.job_id);
  if (it == runs_.end()) return;
  JobRuns& jr = it->second;
  --jr.admitted;
  if (Idle(jr)) runs_.erase(it);
}

void RunEngine::ManualRunDropped(const ManualRunSlot& slot) {
  std::vector<RunStart> starts;
  {
    absl::MutexLock lock(&mu_);
    Unadmit(slot);
    // Backfill runs that waited for this admission may start now.
    PumpBackfill(slot.job_id, starts);
  }
  DispatchAll(std::move(starts));
}

void RunEngine::ManualRunRecorded(const ManualRunSlot& slot, const v1::Job& job,
                                  const v1::JobResult& result,
                                  OverlapDecision::Kind overlap) {
  {
    absl::MutexLock lock(&mu_);
    Unadmit(slot);
    if (overlap == OverlapDecision::Kind::kBuffer) {
      // Waits for the active run, unless it ended meanwhile.
      auto it = runs_.find(job.job_id());
      if (it != runs_.end() && it->second.active > 0) {
        it->second.buffered =
            std::make_unique<std::pair<v1::Job, v1::JobResult>>(job, result);
        return;
      }
    }
  }
  if (overlap == OverlapDecision::Kind::kCancelPrevious) CancelActive(job.job_id());
  RunRecorded(std::make_shared<const v1::Job>(job), result,
              slot.fence ? slot.fence->epoch : 0);
}

int RunEngine::backfill_waiting() const {
  absl::MutexLock lock(&mu_);
  return backfill_waiting_;
}

absl::StatusOr<BackfillSlot> RunEngine::AdmitBackfill(const std::string& owner,
                                                      const std::string& job_id,
                                                      int runs) {
  absl::MutexLock lock(&mu_);
  // Not relayed (unlike RunJobNow): the replica scheduling the job's shard
  // must be asked.
  absl::StatusOr<std::optional<store::Fence>> fence = AdmissionFence(
      job_id,
      ", and BackfillJob is served only by the replica that schedules it; try again "
      "(another connection may reach that replica)");
  if (!fence.ok()) return fence.status();
  if (backfill_waiting_ + runs > options_.max_backfill_waiting) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_backfill_waiting: ", backfill_waiting_,
        " backfill runs are waiting to start, and ", runs, " more would pass the ",
        options_.max_backfill_waiting, " timerd holds; try again once some started"));
  }
  auto mine = owner_backfill_.find(owner);
  const int owned = mine == owner_backfill_.end() ? 0 : mine->second;
  if (owned + runs > options_.max_backfill_waiting_per_identity) {
    return absl::ResourceExhaustedError(
        absl::StrCat("max_backfill_waiting_per_identity: ", owner, " has ", owned,
                     " backfill runs waiting to start, and ", runs,
                     " more would pass the ", options_.max_backfill_waiting_per_identity,
                     " one identity may have waiting; try again once some started"));
  }
  backfill_waiting_ += runs;
  owner_backfill_[owner] += runs;
  runs_[job_id].backfill_admitted += runs;
  return BackfillSlot{owner, job_id, runs, *std::move(fence)};
}

void RunEngine::ReleaseBackfill(const std::string& owner, int runs) {
  if (runs <= 0) return;
  backfill_waiting_ -= runs;
  auto it = owner_backfill_.find(owner);
  if (it != owner_backfill_.end() && (it->second -= runs) <= 0) owner_backfill_.erase(it);
}

void RunEngine::BackfillDropped(const BackfillSlot& slot) {
  absl::MutexLock lock(&mu_);
  ReleaseBackfill(slot.owner, slot.runs);
  auto it = runs_.find(slot.job_id);
  if (it == runs_.end()) return;
  it->second.backfill_admitted -= slot.runs;
  if (Idle(it->second)) runs_.erase(it);
}

void RunEngine::BackfillRecorded(const BackfillSlot& slot, const v1::Job& job,
                                 const std::vector<v1::JobResult>& runs) {
  std::vector<RunStart> starts;
  {
    absl::MutexLock lock(&mu_);
    JobRuns& jr = runs_[slot.job_id];
    jr.backfill_admitted -= slot.runs;
    const int recorded = std::min(slot.runs, static_cast<int>(runs.size()));
    ReleaseBackfill(slot.owner, slot.runs - recorded);
    if (stopping_) {
      // They stay PENDING: reconciled (UNKNOWN) at the next start.
      ReleaseBackfill(slot.owner, recorded);
      if (Idle(jr)) runs_.erase(slot.job_id);
      return;
    }
    jr.backfill.insert(jr.backfill.end(), runs.begin(), runs.begin() + recorded);
    jr.backfill_job = std::make_shared<const v1::Job>(job);
    jr.backfill_epoch = slot.fence ? slot.fence->epoch : 0;
    jr.owner = job.owner();
    backfill_jobs_.insert(slot.job_id);
    PumpBackfill(slot.job_id, starts);
  }
  DispatchAll(std::move(starts));
}

void RunEngine::PumpBackfill(const std::string& job_id, std::vector<RunStart>& out) {
  auto it = runs_.find(job_id);
  if (it == runs_.end()) return;
  JobRuns& jr = it->second;
  if (jr.backfill.empty() || stopping_) return;
  const v1::Job& job = *jr.backfill_job;
  // ALLOW: up to max_concurrent of the job's runs at once; every other
  // policy: one at a time, after the previous ended (a waiting BUFFER_ONE
  // run goes first).
  const int limit =
      job.overlap_policy() == v1::ALLOW ? std::max(1, job.max_concurrent()) : 1;
  while (!jr.backfill.empty() && jr.active + jr.admitted < limit &&
         jr.buffered == nullptr) {
    auto mine = owner_runs_.find(jr.owner);
    const int owned = mine == owner_runs_.end() ? 0 : mine->second;
    if (InFlightRuns() >= options_.max_active_runs ||
        owned >= options_.max_active_runs_per_identity) {
      backfill_blocked_ = true;  // Tried again at the next Tick.
      return;
    }
    v1::JobResult result = std::move(jr.backfill.front());
    jr.backfill.pop_front();
    ReleaseBackfill(jr.owner, 1);
    ++jr.active;
    jr.runs[result.run_number()];
    jr.provider = job.action().provider();
    ++active_runs_;
    AddOwnerRun(jr.owner);
    out.push_back(RunStart{jr.backfill_job, std::move(result), BeginWorkLocked(),
                           jr.backfill_epoch});
  }
  if (jr.backfill.empty()) {
    backfill_jobs_.erase(job_id);
    jr.backfill_job.reset();
  }
}

void RunEngine::DispatchAll(std::vector<RunStart> starts) {
  for (RunStart& start : starts) Dispatch(std::move(start));
}

std::deque<v1::JobResult> RunEngine::TakeBackfill(JobRuns& jr) {
  std::deque<v1::JobResult> taken;
  taken.swap(jr.backfill);
  ReleaseBackfill(jr.owner, static_cast<int>(taken.size()));
  jr.backfill_job.reset();
  return taken;
}

void RunEngine::SkipBackfill(std::shared_ptr<const v1::Job> job,
                             std::deque<v1::JobResult> runs, v1::Job::Status halted) {
  const std::string job_id = job->job_id();
  std::optional<store::Fence> fence;
  if (leases_ != nullptr) {
    fence = leases_->FenceFor(store::ShardOf(job_id));
    if (!fence) {
      spdlog::warn(
          "run engine: {} backfill runs of job {} are left PENDING: its shard is no "
          "longer held here; its next holder reconciles them",
          runs.size(), job_id);
      return;
    }
  }
  const absl::Time now = clock_->Now();
  auto skipped = std::make_shared<std::vector<v1::JobResult>>();
  for (v1::JobResult& r : runs) {
    r.set_status(v1::JobResult::SKIPPED);
    r.set_error(halted == v1::Job::PAUSED
                    ? "the job was paused before this backfill run started"
                    : "the job was deleted before this backfill run started");
    *r.mutable_end_time() = ToProto(now);
    skipped->push_back(std::move(r));
  }
  // One write for all of them; the job's counts are left alone (a backfill
  // run is not a slot of its grid).
  store_->WriteJobState(
      job_id, std::move(fence),
      [skipped](v1::Job&, std::vector<v1::JobResult>& table) {
        table.insert(table.end(), skipped->begin(), skipped->end());
        return absl::OkStatus();
      },
      [this, job_id, skipped, job = std::move(job),
       in_flight = BeginWork()](absl::StatusOr<v1::Job> written) mutable {
        if (!written.ok()) {
          spdlog::warn(
              "run engine: recording {} skipped backfill runs of job {} failed: {}",
              skipped->size(), job_id, std::string(written.status().message()));
        } else if (events_ != nullptr) {
          for (const v1::JobResult& r : *skipped) PublishFinished(job_id, job, r);
        }
        in_flight.Reset();
      });
}

void RunEngine::RunRecorded(std::shared_ptr<const v1::Job> shared,
                            const v1::JobResult& result, int64_t epoch,
                            absl::Time start_at) {
  const v1::Job& job = *shared;
  InFlight in_flight;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;  // Stays PENDING; reconciled (UNKNOWN) at next start.
    JobRuns& jr = runs_[job.job_id()];
    ++jr.active;
    jr.runs[result.run_number()];
    jr.provider = job.action().provider();
    jr.owner = job.owner();
    ++active_runs_;
    AddOwnerRun(job.owner());
    // A run recorded ahead of its slot waits for it (not counted in flight:
    // WaitIdle() does not wait for time to pass).
    const absl::Time at = std::max(FromProto(result.scheduled_time()), start_at);
    if (!result.manual() && at > clock_->Now()) {
      starts_.push_back(PendingStart{at, std::move(shared), result,
                                     v1::Job::STATUS_UNSPECIFIED, epoch});
      std::push_heap(
          starts_.begin(), starts_.end(),
          [](const PendingStart& a, const PendingStart& b) { return a.at > b.at; });
      WakeFor(at);
      return;
    }
    in_flight = BeginWorkLocked();  // Replaces an empty one: ends nothing.
  }
  // Lateness is measured for scheduled fires (which pass their start time).
  const absl::Time due = result.manual() || start_at == absl::InfinitePast()
                             ? absl::InfinitePast()
                             : std::max(FromProto(result.scheduled_time()), start_at);
  Dispatch(RunStart{std::move(shared), result, std::move(in_flight), epoch, due});
}

void RunEngine::DispatchPending(PendingStart start, InFlight in_flight) {
  if (start.retry) {
    {
      absl::MutexLock lock(&mu_);
      ReleaseRetry(start.job->owner());
    }
    if (start.halted != v1::Job::STATUS_UNSPECIFIED) {
      // Paused or deleted while it waited: it ends with its last error.
      v1::JobResult& result = start.result;
      result.clear_next_attempt_time();
      result.set_status(v1::JobResult::FAILED);
      result.set_error(
          absl::StrCat(result.error(), " (not tried again: the job was ",
                       start.halted == v1::Job::PAUSED ? "paused" : "deleted", ")"));
      Finish(start.job->job_id(), std::move(result), start.job);
      return;
    }
    // Lateness is not measured for retries: they are not fires.
    Dispatch(RunStart{std::move(start.job), std::move(start.result), std::move(in_flight),
                      start.epoch, absl::InfinitePast()});
    return;
  }
  if (start.halted == v1::Job::STATUS_UNSPECIFIED) {
    const absl::Time due = start.result.manual() ? absl::InfinitePast() : start.at;
    Dispatch(RunStart{std::move(start.job), std::move(start.result), std::move(in_flight),
                      start.epoch, due});
    return;
  }
  std::optional<store::Fence> fence;
  if (leases_ != nullptr) {
    if (!MayStart(start.job->job_id(), start.epoch)) {
      if (!start.result.manual()) metrics::CountFire(metrics::FireOutcome::kNotStarted);
      LeavePending(start.job->job_id(), start.result.run_number());
      return;
    }
    fence = store::Fence{store::ShardOf(start.job->job_id()), leases_->replica_id(),
                         start.epoch};
  }
  // Counted as a run when it was recorded: now a skipped slot instead.
  v1::JobResult& result = start.result;
  if (!result.manual()) {
    const bool paused = start.halted == v1::Job::PAUSED;
    metrics::CountFire(paused ? metrics::FireOutcome::kSkippedPaused
                              : metrics::FireOutcome::kSkippedDeleted);
    metrics::CountSkippedSlots(
        paused ? metrics::SkipReason::kPaused : metrics::SkipReason::kDeleted, 1);
  }
  result.set_status(v1::JobResult::SKIPPED);
  result.set_error(
      start.halted == v1::Job::PAUSED
          ? "the job was paused after this run was recorded, before its slot"
          : "the job was deleted after this run was recorded, before its slot");
  *result.mutable_end_time() = ToProto(clock_->Now());
  const std::string job_id = start.job->job_id();
  const int64_t run_number = result.run_number();
  std::shared_ptr<const v1::JobResult> event;
  if (events_ != nullptr) event = std::make_shared<const v1::JobResult>(result);
  store_->WriteJobState(
      job_id, std::move(fence),
      [result = std::move(result)](v1::Job& job,
                                   std::vector<v1::JobResult>& table) mutable {
        job.set_n_runs(std::max<int64_t>(0, job.n_runs() - 1));
        job.set_n_skipped(job.n_skipped() + 1);
        table.push_back(std::move(result));
        return absl::OkStatus();
      },
      [this, job_id, run_number, event, job = std::move(start.job),
       in_flight = std::move(in_flight)](absl::StatusOr<v1::Job> written) mutable {
        if (!written.ok()) {
          spdlog::warn("run engine: recording skipped run {} of job {} failed: {}",
                       run_number, job_id, std::string(written.status().message()));
        } else if (event != nullptr) {
          PublishFinished(job_id, job, *event);
        }
        RunEnded(job_id, run_number);
        in_flight.Reset();  // The dispatch's count (Tick or Stop took it).
      });
}

void RunEngine::Dispatch(RunStart start) {
  std::string provider = start.job->action().provider();
  {
    absl::MutexLock lock(&mu_);
    Lane& lane = lanes_[provider];
    // One provider's calls (a hung one, say) never hold every worker.
    const int limit = std::max(1, options_.workers / 2);
    if (lane.starting >= limit) {
      lane.waiting.push_back(std::move(start));
      return;
    }
    ++lane.starting;
  }
  workers_->Submit(
      [this, provider = std::move(provider), start = std::move(start)]() mutable {
        for (;;) {
          StartRun(std::move(start.job), std::move(start.result), start.epoch, start.due);
          start.in_flight.Reset();
          absl::MutexLock lock(&mu_);
          Lane& lane = lanes_[provider];
          if (lane.waiting.empty()) {
            --lane.starting;
            return;
          }
          start = std::move(lane.waiting.front());  // `start` counts nothing now.
          lane.waiting.pop_front();
        }
      });
}

void RunEngine::StartRun(std::shared_ptr<const v1::Job> shared, v1::JobResult result,
                         int64_t epoch, absl::Time due) {
  const v1::Job& job = *shared;
  // A run waiting to be tried again (its next attempt is due now).
  const bool retry = result.has_next_attempt_time();
  // Fires of the schedule only: manual and backfill runs, and retries, are
  // not fires.
  const bool scheduled = !result.manual() && !result.backfill() && !retry;
  // The last moment to find the shard gone: the provider is called next.
  if (!MayStart(job.job_id(), epoch)) {
    if (scheduled) metrics::CountFire(metrics::FireOutcome::kNotStarted);
    LeavePending(job.job_id(), result.run_number());
    return;
  }
  const absl::Time now = clock_->Now();
  // start_time is the run's first attempt's; each attempt has its own.
  if (!retry) *result.mutable_start_time() = ToProto(now);
  if (due != absl::InfinitePast()) metrics::ObserveFireLateness(now - due);
  // Attempts are recorded for jobs that may retry (and every retried run).
  if (retry || EffectiveRetry(job, options_.default_retry).max_attempts > 1) {
    v1::RunAttempt* attempt = result.add_attempts();
    attempt->set_attempt(result.attempts_size());
    *attempt->mutable_start_time() = ToProto(now);
  }
  if (retry) {
    // Recorded before the provider is called: a crash from here on finds the
    // run PENDING with no retry due, which is reconciled UNKNOWN like any
    // PENDING run (never twice), rather than made again at restart.
    result.clear_next_attempt_time();
    absl::Notification written;
    absl::Status write_status;
    store_->WriteResult(job.job_id(), result, [&](absl::Status st) {
      write_status = std::move(st);
      written.Notify();
    });
    written.WaitForNotification();
    if (!write_status.ok()) {
      spdlog::warn("run engine: recording attempt {} of run {} of job {} failed: {}",
                   result.attempts_size(), result.run_number(), job.job_id(),
                   std::string(write_status.message()));
      result.set_status(v1::JobResult::FAILED);
      result.set_error_class(v1::ERROR_CLASS_PERMANENT);
      result.set_error(absl::StrCat("not tried again: recording the attempt failed: ",
                                    write_status.message()));
      Finish(job.job_id(), std::move(result), shared);
      return;
    }
  }
  ActionProvider* provider = providers_->Find(job.action().provider());
  if (provider == nullptr) {
    if (scheduled) metrics::CountFire(metrics::FireOutcome::kFailed);
    metrics::CountProviderError(job.action().provider(), "start",
                                absl::StatusCode::kNotFound);
    result.set_status(v1::JobResult::FAILED);
    result.set_error_class(v1::ERROR_CLASS_PERMANENT);
    result.set_error(
        absl::StrCat("action provider \"", job.action().provider(), "\" is not loaded"));
    Finish(job.job_id(), std::move(result), shared);
    return;
  }
  absl::StatusOr<ActionStatus> st =
      provider->Start(RequestId(job.job_id(), result.run_number()),
                      Identity{job.owner(), ""}, job.action().body());
  if (!st.ok()) {
    if (scheduled) metrics::CountFire(metrics::FireOutcome::kFailed);
    metrics::CountProviderError(job.action().provider(), "start", st.status().code());
    result.set_status(v1::JobResult::FAILED);
    result.set_error(std::string(st.status().message()));
    result.set_error_class(ErrorClassOf(st.status()));
    Finish(job.job_id(), std::move(result), shared);
    return;
  }
  if (scheduled) metrics::CountFire(metrics::FireOutcome::kStarted);
  Apply(*st, result);
  if (events_ != nullptr) events_->Publish(v1::JobEvent::RUN_STARTED, job, &result);
  const bool active = result.status() == v1::JobResult::ACTIVE;
  bool deleted = false;
  if (active) {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(job.job_id());
    if (it != runs_.end()) {
      // Unless it was ended meanwhile (reconciled when its shard came back).
      auto run = it->second.runs.find(result.run_number());
      if (run != it->second.runs.end()) run->second = st->action_id;
      deleted = it->second.deleted;
    }
  }
  // Deleted while it was starting: it stops now (polled to its end as usual).
  if (deleted) provider->Cancel(st->action_id).IgnoreError();
  // Released before the outcome is recorded: a retry's start() with the
  // same request id must find the failed action forgotten.
  if (!active) provider->Release(st->action_id).IgnoreError();
  if (active) {
    ActiveRun run{job.job_id(),
                  result.run_number(),
                  st->action_id,
                  job.action().provider(),
                  FromProto(result.start_time()),
                  options_.poll_min,
                  result.scheduled_time(),
                  result.manual(),
                  result.request_id(),
                  shared,
                  result.backfill(),
                  {},
                  now};
    run.attempts.assign(result.attempts().begin(), result.attempts().end());
    Finish(job.job_id(), result, shared);
    SchedulePoll(std::move(run), clock_->Now() + options_.poll_min);
  } else {
    Finish(job.job_id(), result, shared);
  }
}

void RunEngine::SchedulePoll(ActiveRun run, absl::Time at) {
  absl::MutexLock lock(&mu_);
  polls_.push_back(Poll{at, std::move(run)});
  std::push_heap(polls_.begin(), polls_.end(),
                 [](const Poll& a, const Poll& b) { return a.at > b.at; });
  WakeFor(at);
}

void RunEngine::PollRun(ActiveRun run) {
  ActionProvider* provider = providers_->Find(run.provider);
  v1::JobResult result;
  result.set_run_number(run.run_number);
  result.set_action_id(run.action_id);
  *result.mutable_start_time() = ToProto(run.started);
  *result.mutable_scheduled_time() = run.scheduled_time;
  result.set_manual(run.manual);
  result.set_request_id(run.request_id);
  result.set_backfill(run.backfill);
  for (const v1::RunAttempt& a : run.attempts) *result.add_attempts() = a;
  const absl::Time now = clock_->Now();
  const absl::Time attempt_started =
      run.attempt_started == absl::InfinitePast() ? run.started : run.attempt_started;
  absl::StatusOr<ActionStatus> st =
      provider ? provider->Status(run.action_id)
               : absl::StatusOr<ActionStatus>(absl::NotFoundError(absl::StrCat(
                     "action provider \"", run.provider, "\" is not loaded")));
  if (!st.ok()) metrics::CountProviderError(run.provider, "status", st.status().code());
  if (st.ok() && st->state != ActionStatus::State::kActive) {
    Apply(*st, result);
    provider->Release(run.action_id).IgnoreError();
  } else if (!st.ok() && !absl::IsUnavailable(st.status())) {
    result.set_status(v1::JobResult::UNKNOWN);
    result.set_error(
        absl::StrCat("the run's outcome could not be learned: ", st.status().message()));
  } else if (now - attempt_started >= options_.run_timeout) {
    provider->Cancel(run.action_id).IgnoreError();
    provider->Release(run.action_id).IgnoreError();
    if (st.ok()) Apply(*st, result);
    result.set_status(v1::JobResult::FAILED);
    result.set_error_class(v1::ERROR_CLASS_PERMANENT);
    result.set_error(absl::StrCat("timed out after ",
                                  absl::FormatDuration(options_.run_timeout),
                                  " and was cancelled"));
  } else {
    // Still running (or the provider is briefly unavailable): look again later.
    if (st.ok()) {
      Apply(*st, result);
      Finish(run.job_id, result, run.job);  // Progress in the details.
    }
    run.poll_every = std::min(run.poll_every * 2, options_.poll_max);
    const absl::Time at = now + run.poll_every;
    SchedulePoll(std::move(run), at);
    return;
  }
  Finish(run.job_id, std::move(result), run.job);
}

void RunEngine::Finish(const std::string& job_id, v1::JobResult result,
                       std::shared_ptr<const v1::Job> job) {
  const absl::Time now = clock_->Now();
  const bool final = IsFinal(result.status());
  if (final) {
    if (result.status() == v1::JobResult::FAILED &&
        result.error_class() == v1::ERROR_CLASS_UNSPECIFIED) {
      result.set_error_class(v1::ERROR_CLASS_PERMANENT);
    }
    CloseAttempt(result, now);
    // A transient failure may be tried again: then the run goes on.
    if (result.status() == v1::JobResult::FAILED &&
        result.error_class() == v1::ERROR_CLASS_TRANSIENT && job != nullptr &&
        MaybeRetry(job_id, result, job, now)) {
      return;
    }
  }
  if (final && !result.has_end_time()) *result.mutable_end_time() = ToProto(now);
  if (final) {
    metrics::ObserveRunFinished(
        job != nullptr ? std::string_view(job->action().provider()) : "unknown",
        StatusLabel(result.status()),
        result.has_start_time()
            ? FromProto(result.end_time()) - FromProto(result.start_time())
            : absl::Seconds(-1));
  }
  const int64_t run_number = result.run_number();
  std::shared_ptr<const v1::JobResult> event;
  if (final && events_ != nullptr) event = std::make_shared<const v1::JobResult>(result);
  // Whether the job's write paused it (pause_after_failures).
  auto paused = std::make_shared<bool>(false);
  const std::shared_ptr<const v1::Job> job_snapshot = job;
  auto written = [this, job_id, run_number, final, event, paused, job = std::move(job),
                  in_flight = BeginWork()](absl::StatusOr<v1::Job> status) mutable {
    if (!status.ok()) {
      spdlog::warn("run engine: recording run {} of job {} failed: {}", run_number,
                   job_id, std::string(status.status().message()));
    } else if (event != nullptr) {
      PublishFinished(job_id, job, *event);
    }
    if (status.ok() && *paused) {
      spdlog::info("run engine: job {} paused: {}", job_id,
                   status->inactive_reason().detail());
      JobChanged(*status);
      if (events_ != nullptr) events_->Publish(v1::JobEvent::PAUSED, *status, nullptr);
    }
    if (final) RunEnded(job_id, run_number);
    in_flight.Reset();
  };
  const bool error = final && (result.status() == v1::JobResult::FAILED ||
                               result.status() == v1::JobResult::UNKNOWN);
  // A success resets the job's consecutive_failures: the job is read and
  // written only for jobs that pause after failures or had failed (as of
  // the run's fire), so the common case stays one result write.
  const bool reset =
      final && result.status() == v1::JobResult::SUCCEEDED &&
      (job_snapshot == nullptr || job_snapshot->pause_after_failures() > 0 ||
       job_snapshot->consecutive_failures() > 0 || job_snapshot->n_errors() > 0);
  if (!error && !reset) {
    // Progress or success changes only the result: no read of the job.
    store_->WriteResult(job_id, std::move(result),
                        [written = std::move(written)](absl::Status status) mutable {
                          std::move(written)(status.ok()
                                                 ? absl::StatusOr<v1::Job>(v1::Job())
                                                 : absl::StatusOr<v1::Job>(status));
                        });
    return;
  }
  store_->WriteJobState(
      job_id,
      [result = std::move(result), error, paused, now](
          v1::Job& job, std::vector<v1::JobResult>& table) mutable {
        if (!error) {
          job.set_consecutive_failures(0);
          table.push_back(std::move(result));
          return absl::OkStatus();
        }
        if (result.has_start_time() &&
            (!job.has_last_run() ||
             FromProto(job.last_run()) < FromProto(result.start_time()))) {
          *job.mutable_last_run() = result.start_time();
        }
        job.set_n_errors(job.n_errors() + 1);
        job.set_consecutive_failures(job.consecutive_failures() + 1);
        if (job.pause_after_failures() > 0 &&
            job.consecutive_failures() >= job.pause_after_failures() &&
            IsSchedulable(job.status())) {
          job.set_status(v1::Job::PAUSED);
          job.clear_next_run();
          *job.mutable_update_time() = ToProto(now);
          v1::InactiveReason* why = job.mutable_inactive_reason();
          why->set_cause(v1::InactiveReason::CONSECUTIVE_FAILURES);
          why->set_detail(absl::StrCat(
              job.consecutive_failures(),
              " consecutive runs failed; last: ", result.error().substr(0, 512)));
          *why->mutable_time() = ToProto(now);
          *paused = true;
        }
        table.push_back(std::move(result));
        return absl::OkStatus();
      },
      std::move(written));
}

void RunEngine::PublishFinished(const std::string& job_id,
                                const std::shared_ptr<const v1::Job>& job,
                                const v1::JobResult& result) {
  if (job != nullptr) {
    events_->Publish(v1::JobEvent::RUN_FINISHED, *job, &result);
    return;
  }
  // Runs reconciled after a restart: read the job once.
  absl::StatusOr<v1::Job> loaded = store_->LoadJob(job_id);
  if (loaded.ok()) events_->Publish(v1::JobEvent::RUN_FINISHED, *loaded, &result);
}

void RunEngine::RunEnded(const std::string& job_id, int64_t run_number) {
  std::unique_ptr<std::pair<v1::Job, v1::JobResult>> next;
  {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(job_id);
    if (it == runs_.end()) return;
    JobRuns& jr = it->second;
    if (jr.runs.erase(run_number) == 0) return;  // Not one this process started.
    --jr.active;
    // Due jobs wait while max_active_runs are active: a slot opened.
    if (InFlightRuns() == options_.max_active_runs) wake_ = true;
    --active_runs_;
    DropOwnerRun(jr.owner);
    if (jr.active == 0) next = std::move(jr.buffered);
    // A backfill run waiting for room under the limits may start now.
    if (backfill_blocked_) wake_ = true;
    if (Idle(jr)) runs_.erase(it);
  }
  // The waiting BUFFER_ONE run first: it was the schedule's.
  if (next) RunRecorded(next->first, next->second);
  std::vector<RunStart> starts;
  {
    absl::MutexLock lock(&mu_);
    PumpBackfill(job_id, starts);
  }
  DispatchAll(std::move(starts));
}

void RunEngine::Reconcile(const std::string& job_id, v1::JobResult result) {
  const absl::Time now = clock_->Now();
  if (result.status() == v1::JobResult::PENDING && result.has_next_attempt_time()) {
    // Waiting to be tried again when timerd stopped.
    absl::StatusOr<v1::Job> job = store_->LoadJob(job_id);
    ResumeRetry(job_id, std::move(result),
                job.ok() ? std::make_shared<const v1::Job>(*std::move(job)) : nullptr);
    return;
  }
  if (result.status() == v1::JobResult::ACTIVE && !result.action_id().empty()) {
    absl::StatusOr<v1::Job> job = store_->LoadJob(job_id);
    ActionProvider* provider =
        job.ok() ? providers_->Find(job->action().provider()) : nullptr;
    if (provider != nullptr) {
      // The job as it is now: a transient failure may still be retried.
      auto shared = std::make_shared<const v1::Job>(*job);
      absl::StatusOr<ActionStatus> st = provider->Status(result.action_id());
      if (st.ok() && st->state == ActionStatus::State::kActive) {
        {
          absl::MutexLock lock(&mu_);
          CountActiveRun(*job, result);
        }
        ActiveRun run{job_id,
                      result.run_number(),
                      result.action_id(),
                      job->action().provider(),
                      FromProto(result.start_time()),
                      options_.poll_min,
                      result.scheduled_time(),
                      result.manual(),
                      result.request_id(),
                      shared,
                      result.backfill(),
                      {},
                      absl::InfinitePast()};
        CarryAttempts(result, run.attempts, run.attempt_started);
        SchedulePoll(std::move(run), now);
        return;
      }
      if (st.ok()) {
        {
          // Counted as this process's run, so a retry of it is too.
          absl::MutexLock lock(&mu_);
          CountActiveRun(*job, result);
        }
        Apply(*st, result);
        provider->Release(result.action_id()).IgnoreError();
        Finish(job_id, std::move(result), shared);
        return;
      }
    }
  }
  result.set_status(v1::JobResult::UNKNOWN);
  result.set_error(
      result.action_id().empty()
          ? "timerd stopped before it learned whether this run reached its provider; "
            "it is not retried, so it never runs twice"
          : "timerd restarted and the provider no longer knows this run's outcome");
  Finish(job_id, std::move(result));
}

bool RunEngine::MaybeRetry(const std::string& job_id, v1::JobResult& result,
                           const std::shared_ptr<const v1::Job>& job, absl::Time now) {
  const RetrySettings settings = EffectiveRetry(*job, options_.default_retry);
  if (settings.max_attempts <= 1 || result.attempts_size() == 0) return false;
  const v1::RunAttempt& last = result.attempts(result.attempts_size() - 1);
  const absl::Time first = result.attempts(0).has_start_time()
                               ? FromProto(result.attempts(0).start_time())
                               : FromProto(result.start_time());
  const std::optional<absl::Time> at =
      NextAttemptTime(settings, *job, result, first, last.attempt(), now);
  if (!at) {
    // Attempts used up, or the next one would start past the bound: say
    // which when the policy had attempts left.
    if (last.attempt() < settings.max_attempts &&
        last.error_class() == v1::ERROR_CLASS_TRANSIENT) {
      result.set_error(absl::StrCat(
          result.error(), " (not tried again: attempt ", last.attempt() + 1, " of ",
          settings.max_attempts,
          " would start past the schedule's bound: half the interval, at most 45m, "
          "before the next run)"));
    }
    return false;
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = runs_.find(job_id);
    // Not a run this process counts (cannot happen), or the job was paused
    // or deleted: it ends here.
    if (it == runs_.end() || !it->second.runs.contains(result.run_number()) ||
        it->second.deleted || it->second.halted != v1::Job::STATUS_UNSPECIFIED) {
      return false;
    }
    auto mine = owner_retry_.find(job->owner());
    const int owned = mine == owner_retry_.end() ? 0 : mine->second;
    if (retry_waiting_ >= options_.max_retry_waiting ||
        owned >= options_.max_retry_waiting_per_identity) {
      result.set_error(absl::StrCat(
          result.error(), " (not tried again: ",
          retry_waiting_ >= options_.max_retry_waiting
              ? absl::StrCat("max_retry_waiting: ", options_.max_retry_waiting,
                             " runs wait to be tried again, the most timerd holds")
              : absl::StrCat("max_retry_waiting_per_identity: ", job->owner(), " has ",
                             owned, " runs waiting to be tried again"),
          ")"));
      return false;
    }
    ++retry_waiting_;
    ++owner_retry_[job->owner()];
    // Released at the provider: nothing to cancel while it waits.
    it->second.runs[result.run_number()].clear();
  }
  result.set_status(v1::JobResult::PENDING);
  result.clear_end_time();
  *result.mutable_next_attempt_time() = ToProto(*at);
  const int64_t epoch = EpochOf(job_id);
  // Durable before the wait: a restart finds the run waiting and makes the
  // attempt at its time (Reconcile).
  store_->WriteResult(
      job_id, result,
      [this, job_id, job, result, epoch,
       in_flight = BeginWork()](absl::Status st) mutable {
        if (!st.ok()) {
          // The run stays as last recorded (ACTIVE): reconciled at the next
          // start. Here it ends.
          spdlog::warn("run engine: recording the retry of run {} of job {} failed: {}",
                       result.run_number(), job_id, std::string(st.message()));
          {
            absl::MutexLock lock(&mu_);
            ReleaseRetry(job->owner());
          }
          RunEnded(job_id, result.run_number());
          in_flight.Reset();
          return;
        }
        if (events_ != nullptr)
          events_->Publish(v1::JobEvent::RUN_RETRYING, *job, &result);
        {
          absl::MutexLock lock(&mu_);
          if (stopping_) {
            ReleaseRetry(job->owner());
          } else {
            QueueRetry(std::move(job), std::move(result), epoch);
          }
        }
        in_flight.Reset();
      });
  return true;
}

void RunEngine::QueueRetry(std::shared_ptr<const v1::Job> job, v1::JobResult result,
                           int64_t epoch) {
  const absl::Time at = FromProto(result.next_attempt_time());
  PendingStart p{at,
                 std::move(job),
                 std::move(result),
                 v1::Job::STATUS_UNSPECIFIED,
                 epoch,
                 /*retry=*/true};
  // Paused or deleted before it was queued: it ends at once.
  if (auto it = runs_.find(p.job->job_id()); it != runs_.end()) {
    if (it->second.deleted) p.halted = v1::Job::DELETED;
    if (it->second.halted != v1::Job::STATUS_UNSPECIFIED) p.halted = it->second.halted;
  }
  if (p.halted != v1::Job::STATUS_UNSPECIFIED) p.at = std::min(p.at, clock_->Now());
  const absl::Time wake = p.at;
  starts_.push_back(std::move(p));
  std::push_heap(
      starts_.begin(), starts_.end(),
      [](const PendingStart& a, const PendingStart& b) { return a.at > b.at; });
  WakeFor(wake);
}

void RunEngine::ReleaseRetry(const std::string& owner) {
  if (retry_waiting_ > 0) --retry_waiting_;
  auto it = owner_retry_.find(owner);
  if (it != owner_retry_.end() && --it->second <= 0) owner_retry_.erase(it);
}

void RunEngine::ResumeRetry(const std::string& job_id, v1::JobResult result,
                            std::shared_ptr<const v1::Job> job) {
  const absl::Time now = clock_->Now();
  std::string why;
  if (job == nullptr) {
    why = "the job is gone";
  } else if (job->status() == v1::Job::PAUSED || job->status() == v1::Job::DELETED) {
    why = job->status() == v1::Job::PAUSED ? "the job was paused" : "the job was deleted";
  } else {
    const absl::Time first =
        result.attempts_size() > 0 && result.attempts(0).has_start_time()
            ? FromProto(result.attempts(0).start_time())
            : FromProto(result.start_time());
    const absl::Time at = FromProto(result.next_attempt_time());
    // Down past the retry's bound (e.g. into the job's next slot): not made.
    if (std::max(at, now) > RetryDeadline(*job, result, first)) {
      why = "timerd was down past the bound of this run's retries";
    }
  }
  if (!why.empty()) {
    result.clear_next_attempt_time();
    result.set_status(v1::JobResult::FAILED);
    if (result.error_class() == v1::ERROR_CLASS_UNSPECIFIED) {
      result.set_error_class(v1::ERROR_CLASS_TRANSIENT);
    }
    result.set_error(absl::StrCat(result.error(), " (not tried again: ", why, ")"));
    Finish(job_id, std::move(result), nullptr);
    return;
  }
  absl::MutexLock lock(&mu_);
  CountActiveRun(*job, result);
  runs_[job_id].runs[result.run_number()].clear();
  ++retry_waiting_;
  ++owner_retry_[job->owner()];
  QueueRetry(std::move(job), std::move(result), EpochOf(job_id));
}

}  // namespace timer::domain

namespace timer::domain {

void RunEngine::ShardsGained(const std::vector<store::HeldShard>& gained) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;  // Its leases are about to be released.
  }
  store::ShardSet shards;
  for (const store::HeldShard& h : gained) shards.set(h.shard);
  // Runs another holder (or this one, at an earlier epoch) left open, read
  // after the takeover committed: every fire recorded before it is seen.
  // Before the shard fires here, so none of its new runs is among them.
  auto open = store_->ListOpenResultsInShards(shards);
  if (!open.ok()) {
    spdlog::warn("run engine: reading the open runs of {} gained shards failed: {}",
                 shards.count(), std::string(open.status().message()));
    // Not scheduled here: the next renewal offers them again.
    leases_->Forget(shards);
    return;
  }
  // The jobs of the runs still ACTIVE (polled here from now on), in one
  // read: one by one, the 823 open runs of a replica killed at 10,000
  // fires/s held this renewal thread, and the shards' first fires, for a
  // second.
  absl::flat_hash_set<std::string> active_ids;
  for (const auto& [job_id, result] : *open) {
    if (result.status() == v1::JobResult::ACTIVE && !result.action_id().empty()) {
      active_ids.insert(job_id);
    }
  }
  absl::flat_hash_map<std::string, std::shared_ptr<const v1::Job>> jobs;
  if (!active_ids.empty()) {
    auto loaded =
        store_->LoadJobs(std::vector<std::string>(active_ids.begin(), active_ids.end()));
    if (!loaded.ok()) {
      spdlog::warn(
          "run engine: loading the jobs of {} open runs of {} gained shards failed: {}",
          active_ids.size(), shards.count(), std::string(loaded.status().message()));
      leases_->Forget(shards);
      return;
    }
    for (v1::Job& job : *loaded) {
      std::string id = job.job_id();
      jobs.emplace(std::move(id), std::make_shared<const v1::Job>(std::move(job)));
    }
  }
  for (auto& [job_id, result] : *open) {
    auto job = jobs.find(job_id);
    ReconcileGained(job_id, std::move(result), job == jobs.end() ? nullptr : job->second);
  }
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  firing_ |= shards;
  const size_t before = queue_.size();
  std::vector<std::pair<JobKey, int64_t>> due;
  absl::Status scan =
      store_->ScanDueInShards(shards, [&due](const std::string& id, int64_t us) {
        if (auto key = JobKey::Parse(id)) due.emplace_back(*key, us);
      });
  if (scan.ok()) queue_.SetAll(due);
  if (!scan.ok()) {
    spdlog::warn("run engine: loading the jobs of {} gained shards failed: {}",
                 shards.count(), std::string(scan.message()));
    firing_ &= ~shards;
    queue_.RemoveIf([&shards](const JobKey& key) {
      return shards.test(store::ShardOf(key.ToString()));
    });
    leases_->Forget(shards);
    return;
  }
  spdlog::info("run engine: {} shards gained: {} jobs scheduled, {} open runs reconciled",
               shards.count(), queue_.size() - before, open->size());
  wake_ = true;
}

void RunEngine::ShardsDraining(const store::ShardSet& draining) {
  absl::MutexLock lock(&mu_);
  firing_ &= ~draining;
  queue_.RemoveIf([&draining](const JobKey& key) {
    return draining.test(store::ShardOf(key.ToString()));
  });
}

void RunEngine::ShardsLost(const store::ShardSet& lost) {
  absl::MutexLock lock(&mu_);
  firing_ &= ~lost;
  queue_.RemoveIf(
      [&lost](const JobKey& key) { return lost.test(store::ShardOf(key.ToString())); });
  // A run waiting for its job's active one (BUFFER_ONE) stays PENDING for
  // the next holder. Runs recorded ahead of their slot are dropped when
  // they come up (StartRun); active runs are polled to their end.
  // So do backfill runs waiting to start.
  for (auto it = runs_.begin(); it != runs_.end();) {
    JobRuns& jr = it->second;
    if (jr.buffered != nullptr && lost.test(store::ShardOf(it->first))) {
      jr.buffered.reset();
    }
    if (!jr.backfill.empty() && lost.test(store::ShardOf(it->first))) {
      TakeBackfill(jr);
      backfill_jobs_.erase(it->first);
    }
    if (Idle(jr)) {
      runs_.erase(it++);
    } else {
      ++it;
    }
  }
}

void RunEngine::LeasesRenewed() {
  bool rescan = false;
  {
    absl::MutexLock lock(&mu_);
    wake_ = true;  // The deadline moved on: due jobs may fire again.
    const absl::Time now = clock_->Now();
    if (next_rescan_ == absl::InfinitePast()) {
      next_rescan_ = now + options_.rescan_every;  // Gains scanned just now.
    } else if (now >= next_rescan_ && !stopping_) {
      next_rescan_ = now + options_.rescan_every;
      rescan = true;
    }
  }
  if (rescan) Rescan();
}

void RunEngine::Rescan() {
  store::ShardSet shards;
  {
    absl::MutexLock lock(&mu_);
    shards = firing_;
  }
  if (shards.none()) return;
  // Read without the engine's lock (the scheduler keeps going), merged
  // after: a job fired meanwhile may come back with its old due time; its
  // fire then finds it changed and queues it as it is (Requeue).
  std::vector<std::pair<JobKey, int64_t>> due;
  absl::Status scan =
      store_->ScanDueInShards(shards, [&due](const std::string& id, int64_t us) {
        if (auto key = JobKey::Parse(id)) due.emplace_back(*key, us);
      });
  if (!scan.ok()) {
    spdlog::warn("run engine: rescanning the held shards failed: {}",
                 std::string(scan.message()));
    return;
  }
  absl::MutexLock lock(&mu_);
  size_t added = 0;
  for (const auto& [key, us] : due) {
    // A job being fired is out of the queue until its fire commits: added
    // again with the due time read, its fire would find it changed and
    // read it again (Requeue), on the writer's callback thread.
    if (!firing_.test(store::ShardOf(key.ToString())) || queue_.DueTime(key) ||
        fires_in_flight_.contains(key)) {
      continue;
    }
    queue_.Set(key, absl::FromUnixMicros(us));
    ++added;
  }
  if (added > 0) {
    spdlog::info("run engine: rescan found {} due jobs not queued here", added);
    wake_ = true;
  }
}

void RunEngine::ChangedElsewhere(const std::string& job_id) {
  if (leases_ == nullptr) return;
  {
    absl::MutexLock lock(&mu_);
    if (!firing_.test(store::ShardOf(job_id))) return;
  }
  Requeue(job_id);
}

void RunEngine::Requeue(const std::string& job_id) {
  absl::StatusOr<v1::Job> job = store_->LoadJob(job_id);
  if (job.ok()) JobChanged(*job);  // Queued again only if due and its shard held.
}

void RunEngine::ReconcileGained(const std::string& job_id, v1::JobResult result,
                                std::shared_ptr<const v1::Job> job) {
  if (result.status() == v1::JobResult::PENDING && result.has_next_attempt_time()) {
    if (job == nullptr) {
      absl::StatusOr<v1::Job> loaded = store_->LoadJob(job_id);
      if (loaded.ok()) job = std::make_shared<const v1::Job>(*std::move(loaded));
    }
    {
      absl::MutexLock lock(&mu_);
      auto it = runs_.find(job_id);
      // Queued here already (the shard moved and came back).
      if (it != runs_.end() && it->second.runs.contains(result.run_number())) return;
    }
    ResumeRetry(job_id, std::move(result), std::move(job));
    return;
  }
  if (result.status() == v1::JobResult::ACTIVE && !result.action_id().empty()) {
    if (job != nullptr) {
      {
        absl::MutexLock lock(&mu_);
        JobRuns& jr = runs_[job_id];
        // Started here (before the shard moved and came back): already polled.
        if (jr.runs.contains(result.run_number())) return;
        CountActiveRun(*job, result);
      }
      // Polled on a worker, not here on the renewal thread.
      ActiveRun run{job_id,
                    result.run_number(),
                    result.action_id(),
                    job->action().provider(),
                    FromProto(result.start_time()),
                    options_.poll_min,
                    result.scheduled_time(),
                    result.manual(),
                    result.request_id(),
                    std::move(job),
                    result.backfill(),
                    {},
                    absl::InfinitePast()};
      CarryAttempts(result, run.attempts, run.attempt_started);
      SchedulePoll(std::move(run), clock_->Now());
      return;
    }
  }
  // PENDING (recorded here at an earlier epoch too: that start is refused
  // by MayStart, or, if it just began, its outcome overwrites this).
  result.set_status(v1::JobResult::UNKNOWN);
  result.set_error(
      result.action_id().empty()
          ? "the replica that recorded this run lost its shard before it learned "
            "whether the run reached its provider; it is not retried, so it never "
            "runs twice"
          : "the provider no longer knows this run's outcome");
  Finish(job_id, std::move(result));
}

}  // namespace timer::domain
