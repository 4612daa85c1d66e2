// RunEngine: fires every active job on its grid and carries each run through
// its action provider, durably.
//
// The life of a run:
//   1. A job's due time comes up in the TimerQueue (`lookahead` early). The engine
//   decides the
//      fire (schedule.h: run, skip for overlap or missed slots, or end) inside
//      the store transaction that records it: the result is written PENDING
//      and the job's next_run advanced, *before* the provider is called.
//      Fires due together commit together (the store's group commit).
//   2. At the slot's time, a worker thread calls ActionProvider::Start with the run's
//   idempotency
//      key "<job_id>/<run_number>" and records ACTIVE (or the outcome).
//   3. Active runs are polled with backoff until they end or time out
//      (then cancelled), and the outcome is recorded.
// Provider calls never run on the timer thread; at most
// `max_active_runs` runs are in flight, and due jobs wait (late) beyond that.
//
// Manual runs (RunJobNow) are let in by AdmitManualRun: refused
// (RESOURCE_EXHAUSTED) when `max_active_runs` runs are in flight or their
// owner's runs hold `max_active_runs_per_identity` of them, and told what
// the job's overlap policy decides on. Deleting a job asks the provider to
// cancel its active runs (and one that starts after the delete); a waiting
// BUFFER_ONE run is recorded SKIPPED. Pausing lets active runs finish.
//
// Backfill runs (BackfillJob) wait in a queue per job and start one after
// another, oldest slot first, as the job's overlap policy allows: under
// ALLOW while fewer than max(1, max_concurrent) of the job's runs are
// active, under every other policy only when none is (and no BUFFER_ONE run
// waits); scheduled fires and manual runs count those active backfill runs
// as their own. A started backfill run counts against `max_active_runs` and
// `max_active_runs_per_identity` like any run, and waits while either is
// full. Pausing or deleting the job records the runs still waiting SKIPPED
// ("the job was paused before this backfill run started"). Bounded:
// `max_backfill_waiting` runs wait in all and
// `max_backfill_waiting_per_identity` per owner (AdmitBackfill refuses more
// with RESOURCE_EXHAUSTED before anything is written). Waiting runs are
// PENDING in the store: after a crash (or on Stop, or when their shard is
// lost) they are reconciled like any PENDING run, UNKNOWN, never run twice.
//
// Retries (domain/retry.h): a run whose attempt fails with a TRANSIENT
// error is tried again under the job's retry policy (or the server's
// default, `default_retry`), within the schedule's bound. Between attempts
// the run stays PENDING in the store with its attempts and
// `next_attempt_time`, written before the engine waits; the wait is an
// entry in the same timer heap as runs recorded ahead of their slot, so no
// thread sleeps and other jobs are not held up. The waiting run still
// counts as the job's active run (overlap, max_concurrent, max_active_runs)
// and keeps its run_number, so every attempt uses the same idempotency key
// "<job_id>/<run_number>" (the previous action is released first). Before a
// retry calls its provider, the attempt is recorded (next_attempt_time
// cleared): a crash after that finds the run PENDING without a due retry
// and marks it UNKNOWN like any PENDING run (never twice); a crash while it
// waits finds next_attempt_time and makes the attempt at that time (or ends
// the run FAILED if its bound has passed meanwhile). Pausing or deleting the
// job ends a waiting run FAILED at once. Bounded: `max_retry_waiting` runs
// wait in all and `max_retry_waiting_per_identity` per owner; beyond that a
// transient failure is not retried and the run ends FAILED, saying so.
//
// Pausing after failures: every FAILED or UNKNOWN end counts into the job's
// consecutive_failures (reset by a SUCCEEDED one); once it reaches
// pause_after_failures, the same write pauses the job with inactive_reason
// CONSECUTIVE_FAILURES and a PAUSED event follows.
//
// Deleted jobs are purged, with their results and request ids, once
// `purge_deleted_after` has passed since their delete, with the hourly
// pruning of results.
//
// After a crash, Start() reconciles open runs before firing anything: a run
// still PENDING may or may not have reached its provider, so it is marked
// UNKNOWN and never retried (never twice beats maybe twice); an ACTIVE run
// is polled by its action_id, and marked UNKNOWN if the provider no longer
// knows it. The grid is unchanged: next_run is durable.
//
// Several replicas on one shared store (set_leases): the engine schedules
// only the jobs of the shards its ShardLeases hold (domain/shard_lease.h).
// Gaining a shard, it reconciles the shard's open runs as Start() does (a
// PENDING run was recorded by a replica that lost the shard: UNKNOWN; an
// ACTIVE one is polled) and then loads its due jobs. Losing or draining one,
// it drops its jobs from the queue. Every fire and manual run carries its
// shard's fence, so the store refuses it once the shard was lost; a
// recorded run is started only while its shard is still held at the epoch
// it was recorded under and the local deadline has not passed, else it is
// left PENDING for the shard's next holder (who marks it UNKNOWN: never
// twice). Past the local deadline nothing is fired either. A manual run of
// a job whose shard this replica does not schedule is UNAVAILABLE. Runs it
// started are polled to their end even after their shard moved on. Without
// leases (one process owns the store) every shard is scheduled, unfenced.
//
// Thread-safe. The store, clock and registry must outlive the engine.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/action_provider.h"
#include "domain/clock.h"
#include "domain/events.h"
#include "domain/jobs.h"
#include "domain/shard_lease.h"
#include "domain/timer_queue.h"
#include "domain/worker_pool.h"
#include "store/store.h"

namespace timer::domain {

class RunEngine final : public JobObserver, public ShardLeases::Listener {
 public:
  struct Options {
    // Threads calling providers.
    int workers = 4;
    // Runs in flight (recorded, not yet ended) before due jobs wait. Runs
    // recorded ahead of their slot count: `lookahead` of fires (10,000 at
    // 20,000 fires/s) must fit with room to spare.
    int max_active_runs = 50000;
    // Most fires decided per tick.
    size_t max_fires_per_tick = 20000;
    // Runs are recorded this far ahead of their slot, so the durable commit
    // (an fsync, which a shared disk can stretch to a few hundred ms) is not
    // part of their lateness: the provider is called at the slot. A job
    // paused or deleted meanwhile has such a run recorded SKIPPED instead.
    absl::Duration lookahead = absl::Milliseconds(500);
    // Least time between two ticks of the scheduler thread: runs due within
    // it start together, at most this late, instead of one wakeup each.
    absl::Duration resolution = absl::Milliseconds(1);
    // A run still active this long after it started is cancelled and FAILED.
    absl::Duration run_timeout = absl::Hours(6);
    // Polling of active runs backs off from poll_min to poll_max.
    absl::Duration poll_min = absl::Milliseconds(100);
    absl::Duration poll_max = absl::Seconds(30);
    // Results kept: the newest `keep_results` of each job, none older than
    // `keep_results_for` (finished runs only); pruned at start and hourly.
    int keep_results = 1000;
    absl::Duration keep_results_for = absl::Hours(24 * 90);
    // Of max_active_runs, the most one identity's runs may hold before its
    // manual runs are refused.
    int max_active_runs_per_identity = 1000;
    // Backfill runs waiting to start, in all and of one identity: more are
    // refused (RESOURCE_EXHAUSTED). Each waiting run holds a JobResult of a
    // few hundred bytes: 10,000 are a few MB.
    int max_backfill_waiting = 10000;
    int max_backfill_waiting_per_identity = 1000;
    // Deleted jobs are purged this long after their delete (InfiniteDuration:
    // never), at the pruning of results.
    absl::Duration purge_deleted_after = absl::Hours(24 * 90);
    // The retry policy of jobs that set none (retry_policy.max_attempts 0):
    // `[retry]` in timerd's config; by default none (1 attempt).
    v1::RetryPolicy default_retry;
    // Runs waiting to be tried again, in all and of one identity. Each holds
    // its JobResult (a few hundred bytes) and shares its job's snapshot.
    int max_retry_waiting = 10000;
    int max_retry_waiting_per_identity = 1000;
    // With leases: how often the due jobs of the held shards are read again,
    // the safety net for changes made through other replicas (a job missing
    // from the queue is added; a stale entry is corrected when it fires).
    absl::Duration rescan_every = absl::Seconds(15);
    // false: no scheduler thread; the owner calls Tick() (tests, fake clock).
    bool background = true;
  };

  RunEngine(store::Store* store, const Clock* clock, const ProviderRegistry* providers,
            Options options);
  ~RunEngine() override;

  // Reconciles runs left open by a previous process, loads every due job and
  // (with `background`) starts the scheduler thread.
  absl::Status Start();
  // Stops firing and waits for in-flight work to settle. Runs still active at
  // the provider stay ACTIVE in the store and are reconciled at next Start().
  void Stop();

  // JobObserver: called by JobService after each durable change.
  void JobChanged(const v1::Job& job) override;
  // With leases: another replica changed `job_id` (its event came through
  // the shared log, domain/shared_events.h). If this replica schedules the
  // job's shard, reads the job and takes it as JobChanged does, so a pause
  // or an update through any replica takes effect here at once, not at the
  // next rescan. Reads the store: not on the scheduler's threads.
  void ChangedElsewhere(const std::string& job_id);
  // Set once, before Start(): where run events go (may be null).
  void set_events(EventSink* events) { events_ = events; }
  // Set once, before Start(): told of every job purged (may be null).
  void set_quota(JobQuota* quota) { quota_ = quota; }
  // Set once, before Start() (null: this process owns every shard). The
  // engine must also be `leases`' listener; Start() then schedules nothing
  // until shards are gained.
  void set_leases(ShardLeases* leases) { leases_ = leases; }
  // ShardLeases::Listener.
  void ShardsGained(const std::vector<store::HeldShard>& gained) override;
  void ShardsDraining(const store::ShardSet& draining) override;
  void ShardsLost(const store::ShardSet& lost) override;
  void LeasesRenewed() override;
  bool SchedulesHere(const std::string& job_id) override;
  absl::StatusOr<ManualRunSlot> AdmitManualRun(const std::string& owner,
                                               const std::string& job_id) override;
  void ManualRunRecorded(const ManualRunSlot& slot, const v1::Job& job,
                         const v1::JobResult& result,
                         OverlapDecision::Kind overlap) override;
  void ManualRunDropped(const ManualRunSlot& slot) override;
  absl::StatusOr<BackfillSlot> AdmitBackfill(const std::string& owner,
                                             const std::string& job_id,
                                             int runs) override;
  void BackfillRecorded(const BackfillSlot& slot, const v1::Job& job,
                        const std::vector<v1::JobResult>& runs) override;
  void BackfillDropped(const BackfillSlot& slot) override;
  void RunRecorded(const v1::Job& job, const v1::JobResult& result) override;
  void RunRecorded(std::shared_ptr<const v1::Job> job, const v1::JobResult& result);

  // Fires every job due at clock->Now() and starts due polls. Returns how many
  // jobs it fired. Called by the scheduler thread, or by tests.
  int Tick();
  // Deletes results beyond the retention limits; returns how many.
  absl::StatusOr<int64_t> PruneResults();
  // Purges jobs deleted more than `purge_deleted_after` ago; returns how
  // many.
  absl::StatusOr<int64_t> PurgeDeleted();
  // Waits until no write, start or poll is in flight (polls waiting for a
  // later time do not count). For tests.
  void WaitIdle();

  size_t queued_jobs() const;
  int active_runs() const;
  // Backfill runs waiting to start (admitted ones included).
  int backfill_waiting() const;
  // Runs waiting to be tried again.
  int retry_waiting() const;
  // How long the earliest queued job has been due (zero when none is): the
  // queue's head, for the metrics (timer_scheduler_due_lag_seconds).
  absl::Duration due_lag();

 private:
  // One unit of in-flight work (a write, start, poll, cancel or prune), as
  // WaitIdle() counts it: counted when made, ended by Reset() or when
  // destroyed, so no path can leave it counted. Move-only; an empty one
  // (default or moved from) counts nothing. Ending takes mu_: never Reset,
  // destroy or assign over a non-empty one while holding it.
  class InFlight {
   public:
    InFlight() = default;
    InFlight(InFlight&& other) noexcept
        : engine_(std::exchange(other.engine_, nullptr)) {}
    InFlight& operator=(InFlight&& other) noexcept {
      if (this != &other) {
        Reset();
        engine_ = std::exchange(other.engine_, nullptr);
      }
      return *this;
    }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    ~InFlight() { Reset(); }

    // Whether it still counts.
    explicit operator bool() const { return engine_ != nullptr; }
    // Ends it now rather than at destruction.
    void Reset() {
      if (RunEngine* e = std::exchange(engine_, nullptr)) e->EndWork();
    }

   private:
    friend class RunEngine;
    explicit InFlight(RunEngine* engine) : engine_(engine) {}
    RunEngine* engine_ = nullptr;
  };

  struct ActiveRun {
    std::string job_id;
    int64_t run_number = 0;
    std::string action_id;
    std::string provider;
    absl::Time started;
    absl::Duration poll_every;
    // As the fire recorded them: every write of the result repeats them.
    google::protobuf::Timestamp scheduled_time;
    bool manual = false;
    std::string request_id;
    // The job as of the run's fire, for events.
    std::shared_ptr<const v1::Job> job;
    bool backfill = false;
    // The run's attempts so far (the last one open: this one), and when this
    // attempt started (run_timeout counts from it).
    std::vector<v1::RunAttempt> attempts;
    absl::Time attempt_started = absl::InfinitePast();
  };
  struct JobRuns {
    std::string owner;
    int active = 0;
    // Manual runs admitted, not yet recorded or dropped.
    int admitted = 0;
    // The job was deleted: a run that starts now is cancelled at once.
    bool deleted = false;
    // run_number -> the provider's action id (empty until it started).
    std::map<int64_t, std::string> runs;
    std::string provider;
    // BUFFER_ONE: a recorded run waiting for the active one to end.
    std::unique_ptr<std::pair<v1::Job, v1::JobResult>> buffered;
    // Backfill runs recorded and waiting to start, oldest slot first, with
    // the job as last heard of and the epoch they were recorded under; and
    // how many more are admitted, not yet recorded or dropped.
    std::deque<v1::JobResult> backfill;
    std::shared_ptr<const v1::Job> backfill_job;
    int64_t backfill_epoch = 0;
    int backfill_admitted = 0;
    // PAUSED or DELETED once the job was (JobChanged): a failed attempt is
    // then not retried.
    v1::Job::Status halted = v1::Job::STATUS_UNSPECIFIED;
  };
  // Whether a job's entry in runs_ holds nothing any more.
  static bool Idle(const JobRuns& jr) {
    return jr.active == 0 && jr.admitted == 0 && jr.buffered == nullptr &&
           jr.backfill.empty() && jr.backfill_admitted == 0;
  }
  struct Poll {
    absl::Time at;
    ActiveRun run;
  };
  // A recorded run on its way to ActionProvider::Start, counted in flight.
  struct RunStart {
    std::shared_ptr<const v1::Job> job;
    v1::JobResult result;
    InFlight in_flight;
    // With leases: the epoch of the job's shard it was recorded under.
    int64_t epoch = 0;
    // A scheduled run's due time (its slot plus jitter), from which its
    // lateness is measured; InfinitePast for runs not measured (manual runs,
    // runs that waited for an active one).
    absl::Time due = absl::InfinitePast();
  };
  // Starts of one provider: at most workers/2 at once, the rest in line.
  struct Lane {
    int starting = 0;
    std::deque<RunStart> waiting;
  };
  // A recorded run waiting for its slot.
  struct PendingStart {
    absl::Time at;
    std::shared_ptr<const v1::Job> job;
    v1::JobResult result;
    // PAUSED or DELETED when the job was paused or deleted after this run
    // was recorded: it is then recorded SKIPPED at its slot, not started.
    v1::Job::Status halted = v1::Job::STATUS_UNSPECIFIED;
    int64_t epoch = 0;  // As RunStart's.
    // A run waiting to be tried again (counted in retry_waiting_), not a
    // run recorded ahead of its slot.
    bool retry = false;
  };

  // Starts the backfill runs of `job_id` its overlap policy and the
  // active-run limits let start now: counted as runs here, handed back to
  // be dispatched once mu_ is released.
  void PumpBackfill(const std::string& job_id, std::vector<RunStart>& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchAll(std::vector<RunStart> starts) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes the backfill runs waiting for `job_id` out of the queue (for a
  // pause, a delete or a lost shard), uncounted.
  std::deque<v1::JobResult> TakeBackfill(JobRuns& jr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records waiting backfill runs SKIPPED because their job was paused or
  // deleted (`halted`).
  void SkipBackfill(std::shared_ptr<const v1::Job> job, std::deque<v1::JobResult> runs,
                    v1::Job::Status halted);
  // What a run admitted now for `job_id` is fenced with: nothing without
  // replicas, else this replica's fence of the job's shard. UNAVAILABLE while
  // stopping, or when another replica schedules that shard (the message names
  // the shard, and ends with `elsewhere`, e.g. "; try again").
  absl::StatusOr<std::optional<store::Fence>> AdmissionFence(const std::string& job_id,
                                                             absl::string_view elsewhere)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseBackfill(const std::string& owner, int runs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Loop();
  void Fire(const JobKey& key, absl::Time due, absl::Time now);
  // Hands a recorded run to a worker.
  void Dispatch(RunStart start);
  // Dispatch, or for a halted start, records it SKIPPED.
  void DispatchPending(PendingStart start, InFlight in_flight);
  void StartRun(std::shared_ptr<const v1::Job> job, v1::JobResult result, int64_t epoch,
                absl::Time due);
  // RunRecorded of a run recorded under `epoch` (see RunStart), started at
  // its scheduled_time or `start_at` (its jittered time), whichever is later.
  void RunRecorded(std::shared_ptr<const v1::Job> job, const v1::JobResult& result,
                   int64_t epoch, absl::Time start_at = absl::InfinitePast());
  // With leases: whether a run of `job_id` recorded under `epoch` may start
  // now (else it is left PENDING and forgotten here). Always true without.
  bool MayStart(const std::string& job_id, int64_t epoch) const;
  // A run that may not start (MayStart): forgotten here, left PENDING.
  void LeavePending(const std::string& job_id, int64_t run_number);
  // The epoch of the job's shard now (0 without leases or if not held).
  int64_t EpochOf(const std::string& job_id) const;
  // Reconciles a run found open in a shard just gained; `job` is its job
  // (null if not found).
  void ReconcileGained(const std::string& job_id, v1::JobResult result,
                       std::shared_ptr<const v1::Job> job);
  // With leases: queues the held shards' due jobs missing from the queue.
  void Rescan();
  // With leases: a fire found its job changed (by another replica, maybe):
  // queues the job again as it is now, if it is still due here.
  void Requeue(const std::string& job_id);
  void PollRun(ActiveRun run);
  // After a TRANSIENT failure of `result`'s attempt: if the job's retry
  // policy and its bound allow another, records the run PENDING with its
  // next_attempt_time and queues the attempt; true if so (the run goes on).
  bool MaybeRetry(const std::string& job_id, v1::JobResult& result,
                  const std::shared_ptr<const v1::Job>& job, absl::Time now);
  // A run found waiting for a retry after a restart or on gaining its shard.
  void ResumeRetry(const std::string& job_id, v1::JobResult result,
                   std::shared_ptr<const v1::Job> job);
  // Queues a waiting run's next attempt (already counted in retry_waiting_).
  void QueueRetry(std::shared_ptr<const v1::Job> job, v1::JobResult result, int64_t epoch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseRetry(const std::string& owner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a result (and, for an error, counts it into the job). `job`, the
  // job as of the run's fire, goes with the RUN_FINISHED event.
  void Finish(const std::string& job_id, v1::JobResult result,
              std::shared_ptr<const v1::Job> job = nullptr);
  void PublishFinished(const std::string& job_id,
                       const std::shared_ptr<const v1::Job>& job,
                       const v1::JobResult& result);
  void RunEnded(const std::string& job_id, int64_t run_number);
  // Asks the provider to cancel the job's runs that are active now.
  void CancelActive(const std::string& job_id);
  void SchedulePoll(ActiveRun run, absl::Time at);
  // Wakes the scheduler thread if it sleeps past `at`.
  void WakeFor(absl::Time at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Reconcile(const std::string& job_id, v1::JobResult result);
  // Counts a run of `owner` in flight, or no longer.
  // Counts an ACTIVE run found in the store (after a restart or on gaining
  // its shard) as this process's, to be polled.
  void CountActiveRun(const v1::Job& job, const v1::JobResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddOwnerRun(const std::string& owner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropOwnerRun(const std::string& owner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends an admission (the run was recorded or dropped).
  void Unadmit(const ManualRunSlot& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Due jobs wait while this many runs are in flight or admitted.
  int InFlightRuns() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return active_runs_ + admitted_runs_;
  }

  // Bookkeeping of in-flight work, for WaitIdle().
  InFlight BeginWork() ABSL_LOCKS_EXCLUDED(mu_);
  InFlight BeginWorkLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndWork() ABSL_LOCKS_EXCLUDED(mu_);

  store::Store* const store_;
  const Clock* const clock_;
  const ProviderRegistry* const providers_;
  const Options options_;
  EventSink* events_ = nullptr;
  JobQuota* quota_ = nullptr;
  ShardLeases* leases_ = nullptr;
  std::unique_ptr<WorkerPool> workers_;

  mutable absl::Mutex mu_;
  TimerQueue queue_ ABSL_GUARDED_BY(mu_);
  // With leases: the shards whose jobs are queued (held and not draining).
  store::ShardSet firing_ ABSL_GUARDED_BY(mu_);
  // With leases: jobs popped from the queue whose fire has not committed
  // yet, which a rescan must not queue again (bounded by the queue).
  absl::flat_hash_set<JobKey> fires_in_flight_ ABSL_GUARDED_BY(mu_);
  std::vector<Poll> polls_ ABSL_GUARDED_BY(mu_);           // Min-heap on `at`.
  std::vector<PendingStart> starts_ ABSL_GUARDED_BY(mu_);  // Min-heap on `at`.
  // Fires that came up ahead of their slot (the lookahead) while a run of
  // their job was active: fired again at the slot itself, so the overlap
  // policy judges the runs active then. Min-heap on the due time.
  std::vector<std::pair<absl::Time, JobKey>> deferred_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, JobRuns> runs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Lane> lanes_ ABSL_GUARDED_BY(mu_);
  int active_runs_ ABSL_GUARDED_BY(mu_) = 0;
  int admitted_runs_ ABSL_GUARDED_BY(mu_) = 0;
  // Backfill runs waiting or admitted, in all and per owner (no entry:
  // none); the jobs with backfill runs waiting; and whether one waits for
  // room under max_active_runs or an identity's share (then every Tick, and
  // every run's end, tries them again: at most one try per such job).
  int backfill_waiting_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int> owner_backfill_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> backfill_jobs_ ABSL_GUARDED_BY(mu_);
  bool backfill_blocked_ ABSL_GUARDED_BY(mu_) = false;
  // Runs waiting to be tried again, in all and per owner (no entry: none).
  int retry_waiting_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int> owner_retry_ ABSL_GUARDED_BY(mu_);
  // Runs in flight or admitted, per owner (no entry: none).
  absl::flat_hash_map<std::string, int> owner_runs_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  // When the scheduler thread will wake by itself (InfinitePast while it is
  // not sleeping), and when its last tick began.
  absl::Time wake_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_tick_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time next_prune_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time next_rescan_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread thread_;
};

}  // namespace timer::domain
