// JobService: the domain rules for jobs: validation, defaults, ownership,
// soft delete, idempotent create and paging. The only layer that decides
// what a request means; it persists through a Store and reads time from a
// Clock.
//
// Every method is scoped to `caller`: another identity's job is NOT_FOUND.
// Errors name the offending field ("schedule.interval_seconds: must be > 0").
// A request that fails validation writes nothing.
//
// Thread-safe. Write methods call `done` exactly once, possibly on a store
// thread, once the write is durable; `done` must not block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "domain/action_provider.h"
#include "domain/clock.h"
#include "domain/events.h"
#include "domain/identity.h"
#include "domain/job_quota.h"
#include "domain/schedule.h"
#include "store/store.h"
#include "timer/v1/timer.pb.h"

namespace timer::domain {

// A manual run let in by JobObserver::AdmitManualRun: it counts against the
// active-run limits from then on, until ManualRunRecorded or
// ManualRunDropped.
struct ManualRunSlot {
  std::string owner;
  std::string job_id;
  // What the job's overlap policy decides on: its runs active (or admitted)
  // before this one, and whether a BUFFER_ONE run already waits.
  int active = 0;
  bool buffered = false;
  // With several replicas: the fence the run's write carries (the job's
  // shard as this replica holds it).
  std::optional<store::Fence> fence;
};

// Room for the runs of one BackfillJob call, held by JobObserver::AdmitBackfill
// until BackfillRecorded or BackfillDropped.
struct BackfillSlot {
  std::string owner;
  std::string job_id;
  int runs = 0;  // How many the call may record.
  // With several replicas: the fence the write carries (as ManualRunSlot's).
  std::optional<store::Fence> fence;
};

// Told about every durable change JobService makes, in commit order, so the
// run engine can (re)schedule; and asked to let manual runs in. Called on
// store threads (AdmitManualRun on the caller's); must not block.
class Notifier;  // domain/notifier.h

class JobObserver {
 public:
  virtual ~JobObserver() = default;
  // The job as written (its next_run decides whether and when it is due).
  virtual void JobChanged(const v1::Job& job) = 0;
  // A run was recorded PENDING and must be started.
  virtual void RunRecorded(const v1::Job& job, const v1::JobResult& result) = 0;
  // Lets a manual run of `owner`'s job in, or RESOURCE_EXHAUSTED naming the
  // active-run limit it would pass. The default admits every run, with
  // nothing active.
  virtual absl::StatusOr<ManualRunSlot> AdmitManualRun(const std::string& owner,
                                                       const std::string& job_id) {
    return ManualRunSlot{owner, job_id, 0, false, std::nullopt};
  }
  // The admitted run was recorded PENDING: start it as `overlap` says
  // (kStart, kCancelPrevious or kBuffer).
  virtual void ManualRunRecorded(const ManualRunSlot& slot, const v1::Job& job,
                                 const v1::JobResult& result,
                                 OverlapDecision::Kind overlap) {
    RunRecorded(job, result);
  }
  // The admitted run was not recorded (refused, failed, or a retry).
  virtual void ManualRunDropped(const ManualRunSlot& slot) {}
  // Holds room for `runs` backfill runs of `owner`'s job waiting to start,
  // or RESOURCE_EXHAUSTED naming the bound they would pass (UNAVAILABLE when
  // another replica schedules the job). The default admits them.
  virtual absl::StatusOr<BackfillSlot> AdmitBackfill(const std::string& owner,
                                                     const std::string& job_id,
                                                     int runs) {
    return BackfillSlot{owner, job_id, runs, std::nullopt};
  }
  // The admitted runs were recorded PENDING, `runs` oldest slot first: start
  // them one after another as the job's overlap policy allows. The default
  // starts them all (RunRecorded).
  virtual void BackfillRecorded(const BackfillSlot& slot, const v1::Job& job,
                                const std::vector<v1::JobResult>& runs) {
    for (const v1::JobResult& r : runs) RunRecorded(job, r);
  }
  // The admitted runs were not recorded (refused, failed, or a retry).
  virtual void BackfillDropped(const BackfillSlot& slot) {}
  // Whether this process schedules `job_id` now (with several replicas, only
  // the one holding its shard does; the default: always).
  virtual bool SchedulesHere(const std::string& job_id) { return true; }
};

// Where a RunJobNow goes when this replica does not schedule the job: to the
// one that does (domain/run_now_relay.h). `done` gets what RunJobNow there
// returned, or UNAVAILABLE if no answer came in time.
class RunRelay {
 public:
  virtual ~RunRelay() = default;
  virtual void Relay(const Identity& caller, const v1::RunJobNowRequest& request,
                     store::JobCallback done) = 0;
};

class JobService {
 public:
  // No pointer is owned; all must outlive the service. `providers` may be
  // null (no provider checks, for tests of the rules alone).
  JobService(store::Store* store, const Clock* clock,
             const ProviderRegistry* providers = nullptr)
      : store_(store), clock_(clock), providers_(providers) {}

  // Set once, before the first call: who hears of changes.
  void set_observer(JobObserver* observer) { observer_ = observer; }
  // Set once, before the first call: where change events go (may be null).
  void set_events(EventSink* events) { events_ = events; }
  // Set once, before the first call: what an owner may keep and how fast it
  // may write (domain/job_quota.h). Null: no limit.
  void set_quota(JobQuota* quota) { quota_ = quota; }
  // Set once, before the first call: a ListJobs page ends before the job
  // that would bring its jobs' encoded size over this (it always holds one).
  void set_list_page_bytes(size_t bytes) { list_page_bytes_ = bytes; }
  // Set once, before the first call, with several replicas: where RunJobNow
  // of a job another replica schedules goes. Null: it is refused with
  // UNAVAILABLE.
  void set_relay(RunRelay* relay) { relay_ = relay; }
  // Set once, before the first call: checks job.notification at create and
  // update (domain/notifier.h). Null: a job with a notification is refused
  // (FAILED_PRECONDITION: notifications are not configured).
  void set_notifier(const Notifier* notifier) { notifier_ = notifier; }

  void CreateJob(const Identity& caller, const v1::CreateJobRequest& request,
                 store::JobCallback done);
  absl::StatusOr<v1::Job> GetJob(const Identity& caller,
                                 const v1::GetJobRequest& request);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const Identity& caller,
                                                const v1::ListJobsRequest& request);
  void DeleteJob(const Identity& caller, const v1::DeleteJobRequest& request,
                 store::JobCallback done);
  void UpdateJob(const Identity& caller, const v1::UpdateJobRequest& request,
                 store::JobCallback done);
  void PauseJob(const Identity& caller, const v1::PauseJobRequest& request,
                store::JobCallback done);
  void ResumeJob(const Identity& caller, const v1::ResumeJobRequest& request,
                 store::JobCallback done);
  void RunJobNow(const Identity& caller, const v1::RunJobNowRequest& request,
                 store::JobCallback done);
  // RunJobNow relayed from another replica (its caller's quota was taken
  // there): never relayed again.
  void RunJobNowRelayed(const Identity& caller, const v1::RunJobNowRequest& request,
                        store::JobCallback done);
  absl::StatusOr<v1::ListJobResultsResponse> ListJobResults(
      const Identity& caller, const v1::ListJobResultsRequest& request);
  // Watches: the filter a request means, scoped to `caller`. WatchJob of a
  // job that is not the caller's live job is NOT_FOUND.
  absl::StatusOr<WatchFilter> WatchJobFilter(const Identity& caller,
                                             const v1::WatchJobRequest& request);
  absl::StatusOr<WatchFilter> WatchJobsFilter(const Identity& caller,
                                              const v1::WatchJobsRequest& request);
  // One page of a watch stream's starting snapshot: of at most `page_size`
  // live jobs read after `after` (nullopt: from the first), those that match
  // `filter` now, shown as its view says (full: with body and results). The
  // page ends early after the job that brings the jobs' encoded size to
  // `max_bytes`. `next` is where the following page starts: nullopt after
  // the last.
  struct SnapshotPage {
    std::vector<v1::Job> jobs;
    std::optional<store::ListCursor> next;
  };
  absl::StatusOr<SnapshotPage> Snapshot(const WatchFilter& filter,
                                        const std::optional<store::ListCursor>& after,
                                        int page_size, size_t max_bytes = SIZE_MAX);
  // The next fire times of the caller's job (NOT_FOUND for another's or a
  // deleted one) or of a schedule not yet submitted, with why (schedule.h,
  // PreviewSlots). At most kMaxPreviewCount entries.
  absl::StatusOr<v1::PreviewScheduleResponse> PreviewSchedule(
      const Identity& caller, const v1::PreviewScheduleRequest& request);
  // Records runs for the slots of a past range of the caller's job (see
  // timer.proto, BackfillJob); `done` gets the job and the runs recorded,
  // oldest slot first. The runs are recorded PENDING in one write, with
  // `backfill` set, their nominal slot as scheduled_time and the call's
  // request_id, on run numbers following the job's last; they change
  // neither n_runs (stop_after_runs) nor next_run. The observer starts them
  // (BackfillRecorded). A retry of a request_id answers with the runs its
  // first call recorded, as they are now, and records nothing.
  void BackfillJob(
      const Identity& caller, const v1::BackfillJobRequest& request,
      absl::AnyInvocable<void(absl::StatusOr<v1::BackfillJobResponse>)> done);
  absl::StatusOr<v1::ListActionProvidersResponse> ListActionProviders(
      const v1::ListActionProvidersRequest& request);
  // With `configuration`: what the provider tells `caller` of its
  // configuration (ActionProvider::Describe).
  absl::StatusOr<v1::ActionProvider> GetActionProvider(
      const Identity& caller, const v1::GetActionProviderRequest& request);

  // Limits, exposed for tests and documentation.
  static constexpr int kMaxNameLength = 256;
  static constexpr int kMaxLabelLength = 256;
  static constexpr size_t kMaxBodyBytes = 1 << 20;
  static constexpr int64_t kMaxIntervalSeconds = 10LL * 366 * 24 * 3600;
  static constexpr size_t kMaxCronLength = 256;
  static constexpr int kDefaultPreviewCount = 10;
  static constexpr int kMaxPreviewCount = 1000;
  static constexpr int64_t kMaxJitterSeconds = 86400;
  static constexpr int kDefaultPageSize = 50;
  static constexpr int kMaxPageSize = 1000;
  static constexpr size_t kMaxRequestIdLength = 128;
  static constexpr size_t kDefaultListPageBytes = 1 << 20;
  // BackfillJob: runs per call (max_runs' default and maximum), and the
  // longest range.
  static constexpr int kMaxBackfillRuns = 100;
  static constexpr absl::Duration kMaxBackfillRange = absl::Hours(366 * 24);

 private:
  // One write of `caller` under write_rate_per_identity (no quota: OK).
  absl::Status TakeWrite(const Identity& caller);
  // Checks the provider exists and accepts the body, when providers are known.
  absl::Status CheckAction(const Identity& caller, const v1::Action& action) const;
  // job.notification, through notifier_ (issue 24).
  absl::Status CheckNotification(const v1::Job& job) const;
  // Applies `mutate` to the caller's job unless it is deleted (NOT_FOUND).
  void MutateLiveJob(const Identity& caller, const std::string& job_id,
                     v1::JobEvent::Type event, store::JobMutation mutate,
                     store::JobCallback done);
  // Wraps `done` so the observer hears of the written job first.
  // ... and the event sink, of an event of `type`.
  store::JobCallback Notify(v1::JobEvent::Type type, store::JobCallback done);

  store::Store* const store_;
  const Clock* const clock_;
  const ProviderRegistry* const providers_;
  JobObserver* observer_ = nullptr;
  EventSink* events_ = nullptr;
  JobQuota* quota_ = nullptr;
  RunRelay* relay_ = nullptr;
  const Notifier* notifier_ = nullptr;  // not owned; may be null
  size_t list_page_bytes_ = kDefaultListPageBytes;
};

// Checks a job as given to CreateJob. Exposed for tests.
absl::Status ValidateNewJob(const v1::Job& job);

// Checks a schedule (kind, zone, DST policies, jitter, catch-up window; the
// cron expression or calendar compiles). Errors name the field after
// `prefix`: "job.schedule.cron: field 2 (hours) at position 7: ...".
inline constexpr int kMaxCalendarSpecs = 16;
inline constexpr size_t kMaxCalendarFieldLength = 128;
absl::Status ValidateSchedule(const v1::Schedule& s, absl::string_view prefix);

}  // namespace timer::domain
