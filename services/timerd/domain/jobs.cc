#include "domain/jobs.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "domain/ids.h"
#include "domain/job_results.h"
#include "domain/notifier.h"
#include "domain/retry.h"
#include "domain/schedule.h"
#include "domain/time_util.h"
#include "domain/zoned_rule.h"
#include "google/protobuf/util/message_differencer.h"
#include "util/escape.h"
#include "util/status_macros.h"

namespace timer::domain {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

bool IsProviderName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  if (!(s[0] >= 'a' && s[0] <= 'z')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

absl::Status ValidateJobId(std::string_view job_id) {
  if (job_id.empty()) return Invalid("job_id", "required");
  if (!IsUuid(job_id)) return Invalid("job_id", "must be a UUID");
  return absl::OkStatus();
}

absl::Status ValidateRequestId(absl::string_view id) {
  if (id.size() > JobService::kMaxRequestIdLength) {
    return Invalid("request_id", "at most 128 characters");
  }
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) {
      return Invalid("request_id", "only printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

// Page tokens are opaque to clients: base64url("1|<show_deleted>|<create
// micros>|<job_id>"). The flag is checked so a token cannot be replayed
// with different list parameters (AIP-158).
std::string EncodePageToken(bool show_deleted, const v1::Job& last) {
  return absl::WebSafeBase64Escape(absl::StrCat("1|", show_deleted ? 1 : 0, "|",
                                                store::ToMicros(last.create_time()), "|",
                                                last.job_id()));
}

absl::StatusOr<store::ListCursor> DecodePageToken(absl::string_view token,
                                                  bool show_deleted) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) {
    return Invalid("page_token", "not a token this server issued");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, '|');
  store::ListCursor cursor;
  if (parts.size() != 4 || parts[0] != "1" ||
      !absl::SimpleAtoi(parts[2], &cursor.create_micros) || !IsUuid(parts[3])) {
    return Invalid("page_token", "not a token this server issued");
  }
  if (parts[1] != (show_deleted ? "1" : "0")) {
    return Invalid("page_token", "show_deleted differs from the first request");
  }
  cursor.job_id = parts[3];
  return cursor;
}

// Result page tokens: base64url("r1|<run_number to continue below>").
std::string EncodeResultsToken(int64_t before) {
  return absl::WebSafeBase64Escape(absl::StrCat("r1|", before));
}

absl::StatusOr<int64_t> DecodeResultsToken(absl::string_view token) {
  std::string raw;
  int64_t before = 0;
  if (!absl::WebSafeBase64Unescape(token, &raw) || raw.rfind("r1|", 0) != 0 ||
      !absl::SimpleAtoi(raw.substr(3), &before) || before <= 0) {
    return Invalid("page_token", "not a token this server issued");
  }
  return before;
}

int PageSize(int requested) {
  return requested == 0 ? JobService::kDefaultPageSize
                        : std::min(requested, JobService::kMaxPageSize);
}

// Whether `view` asks for jobs in full; BASIC when unspecified.
absl::StatusOr<bool> FullView(int view) {
  if (!v1::JobView_IsValid(view)) {
    return Invalid("view", absl::StrCat(view, " is not a job view"));
  }
  return view == v1::JOB_VIEW_FULL;
}

store::ListCursor CursorOf(const v1::Job& job) {
  return store::ListCursor{store::ToMicros(job.create_time()), job.job_id()};
}

// The size of `job` as one element of a repeated field: the job, its tag and
// (at most) its length's five bytes.
size_t EncodedSize(const v1::Job& job) { return job.ByteSizeLong() + 6; }

// Reads the jobs of `query` after query.after, oldest first, at most
// `limit`, handing each to `take` until it returns false (that job does not
// count as read). Returns whether jobs follow the last one taken. The store
// is asked for a few jobs first, then for as many as the sizes seen so far
// say fit in kReadBytes: a listing never holds hundreds of jobs with large
// bodies at once only to leave most of them out of its page.
absl::StatusOr<bool> ReadJobs(store::Store& store, store::ListJobsQuery query, int limit,
                              absl::FunctionRef<bool(v1::Job&)> take) {
  constexpr int kFirstRead = 8;
  constexpr size_t kReadBytes = 4 << 20;
  int taken = 0;
  size_t seen_bytes = 0;
  query.page_size = std::min(limit, kFirstRead);
  for (;;) {
    ASSIGN_OR_RETURN(store::ListJobsPage page, store.ListJobs(query));
    for (v1::Job& job : page.jobs) {
      seen_bytes += job.ByteSizeLong();
      store::ListCursor cursor = CursorOf(job);
      if (!take(job)) return true;
      ++taken;
      query.after = std::move(cursor);
    }
    if (!page.has_more || page.jobs.empty()) return false;
    if (taken >= limit) return true;
    const size_t average = std::max<size_t>(1, seen_bytes / taken);
    query.page_size = static_cast<int>(
        std::clamp<size_t>(kReadBytes / average, 1, static_cast<size_t>(limit - taken)));
  }
}

// Schedules live between the Unix epoch and the end of year 9999.
constexpr char kScheduleTimeRange[] =
    "must be a valid time from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z";
bool IsScheduleTime(const google::protobuf::Timestamp& t) {
  return IsValidTimestamp(t) && t.seconds() >= 0;
}

absl::Status NotFoundIfDeleted(const v1::Job& job) {
  if (job.status() == v1::Job::DELETED) {
    return absl::NotFoundError(absl::StrCat("job ", job.job_id(), " was deleted"));
  }
  return absl::OkStatus();
}

// The earliest a newly computed next run may be: now, and never a slot
// already scheduled: for an interval job never sooner than one interval
// after the last scheduled slot (a job never runs more often than its
// interval); for the other kinds strictly after it (a once job that ran has
// no slot left).
absl::Time EarliestNextRun(const v1::Job& job, absl::Time now) {
  absl::Time earliest = now;
  for (const v1::JobResult& r : job.results()) {
    if (r.manual() || r.backfill()) continue;
    const absl::Time last = FromProto(r.scheduled_time());
    earliest =
        std::max(earliest, job.schedule().has_interval_seconds()
                               ? last + absl::Seconds(job.schedule().interval_seconds())
                               : last + absl::Nanoseconds(1));
    break;  // Newest first: the first scheduled one is the last slot.
  }
  return earliest;
}

void SetNextRun(v1::Job& job, const NextRun& next) {
  *job.mutable_next_run() = ToProto(next.fire);
  *job.mutable_next_scheduled_time() = ToProto(next.slot);
}

// A cron or calendar schedule without a zone is in "UTC", and says so.
// Interval and once schedules have none: a kind changed to them by an update
// loses the zone and DST policies unless `mask` names them.
void NormalizeZone(v1::Schedule& s, const google::protobuf::FieldMask& mask) {
  if (s.has_cron() || s.has_calendar()) {
    if (s.time_zone().empty()) s.set_time_zone("UTC");
    return;
  }
  const auto named = [&mask](absl::string_view path) {
    return std::find(mask.paths().begin(), mask.paths().end(), path) !=
           mask.paths().end();
  };
  if (!named("schedule") && !named("schedule.time_zone")) s.clear_time_zone();
  if (!named("schedule") && !named("schedule.dst_gap")) s.clear_dst_gap();
  if (!named("schedule") && !named("schedule.dst_repeat")) s.clear_dst_repeat();
}

void TruncateToMicros(google::protobuf::Timestamp* t) {
  t->set_nanos(t->nanos() / 1000 * 1000);
}

void TruncateToMicros(v1::Schedule* s) {
  if (s->has_start()) TruncateToMicros(s->mutable_start());
  if (s->has_stop_after_date()) TruncateToMicros(s->mutable_stop_after_date());
}

// Puts the job back on its grid from `now`, or ends it if a stop condition
// forbids any further run.
void Reschedule(v1::Job& job, absl::Time now, v1::Job::Status running_status) {
  v1::Job::EndReason reason = v1::Job::END_REASON_UNSPECIFIED;
  if (auto next = NextRunAtOrAfter(job, EarliestNextRun(job, now), &reason)) {
    SetNextRun(job, *next);
    job.set_status(running_status);
    job.clear_end_reason();
  } else {
    job.clear_next_run();
    job.clear_next_scheduled_time();
    job.set_status(v1::Job::ENDED);
    job.set_end_reason(reason);
  }
}

absl::Status ValidateCalendarSpecs(const v1::CalendarSchedule& cal,
                                   absl::string_view prefix) {
  if (cal.include_size() == 0) {
    return Invalid(absl::StrCat(prefix, "schedule.calendar.include"),
                   "at least one spec");
  }
  if (cal.include_size() > kMaxCalendarSpecs || cal.exclude_size() > kMaxCalendarSpecs) {
    return Invalid(absl::StrCat(prefix, "schedule.calendar"),
                   absl::StrCat("at most ", kMaxCalendarSpecs, " include and ",
                                kMaxCalendarSpecs, " exclude specs"));
  }
  const auto check = [&](const char* list, int i, const v1::CalendarSpec& c) {
    for (const std::string* f :
         {&c.seconds(), &c.minutes(), &c.hours(), &c.days_of_month(), &c.months(),
          &c.days_of_week(), &c.years()}) {
      if (f->size() > kMaxCalendarFieldLength) {
        return Invalid(
            absl::StrCat(prefix, "schedule.calendar.", list, "[", i, "]"),
            absl::StrCat("each field at most ", kMaxCalendarFieldLength, " characters"));
      }
    }
    return absl::OkStatus();
  };
  for (int i = 0; i < cal.include_size(); ++i)
    RETURN_IF_ERROR(check("include", i, cal.include(i)));
  for (int i = 0; i < cal.exclude_size(); ++i)
    RETURN_IF_ERROR(check("exclude", i, cal.exclude(i)));
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSchedule(const v1::Schedule& s, absl::string_view prefix) {
  const auto field = [prefix](absl::string_view name) {
    return absl::StrCat(prefix, "schedule.", name);
  };
  const bool zoned = s.has_cron() || s.has_calendar();
  switch (s.kind_case()) {
    case v1::Schedule::kIntervalSeconds:
      if (s.interval_seconds() <= 0)
        return Invalid(field("interval_seconds"), "must be > 0");
      if (s.interval_seconds() > JobService::kMaxIntervalSeconds) {
        return Invalid(field("interval_seconds"), "must be at most 10 years");
      }
      break;
    case v1::Schedule::kOnce:
      if (!s.once()) return Invalid(field("once"), "must be true when set");
      break;
    case v1::Schedule::kCron:
      if (s.cron().empty()) return Invalid(field("cron"), "required (an expression)");
      if (s.cron().size() > JobService::kMaxCronLength) {
        return Invalid(field("cron"), absl::StrCat("at most ", JobService::kMaxCronLength,
                                                   " characters"));
      }
      break;
    case v1::Schedule::kCalendar:
      RETURN_IF_ERROR(ValidateCalendarSpecs(s.calendar(), prefix));
      break;
    default:
      return Invalid(
          field("interval_seconds"),
          "a schedule kind is required: interval_seconds, once, cron or calendar");
  }
  if (!zoned) {
    if (!s.time_zone().empty()) {
      return Invalid(field("time_zone"), "only for cron and calendar schedules");
    }
    if (s.dst_gap() != v1::DST_GAP_POLICY_UNSPECIFIED ||
        s.dst_repeat() != v1::DST_REPEAT_POLICY_UNSPECIFIED) {
      return Invalid(
          field(s.dst_gap() != v1::DST_GAP_POLICY_UNSPECIFIED ? "dst_gap" : "dst_repeat"),
          "only for cron and calendar schedules");
    }
  }
  if (!v1::DstGapPolicy_IsValid(s.dst_gap()))
    return Invalid(field("dst_gap"), "unknown value");
  if (!v1::DstRepeatPolicy_IsValid(s.dst_repeat())) {
    return Invalid(field("dst_repeat"), "unknown value");
  }
  if (s.jitter_seconds() < 0 || s.jitter_seconds() > JobService::kMaxJitterSeconds) {
    return Invalid(field("jitter_seconds"),
                   absl::StrCat("must be between 0 and ", JobService::kMaxJitterSeconds));
  }
  if (s.catch_up_window_seconds() < 0 ||
      s.catch_up_window_seconds() > JobService::kMaxIntervalSeconds) {
    return Invalid(field("catch_up_window_seconds"), "must be between 0 and 10 years");
  }
  if (zoned) {
    if (!s.time_zone().empty()) {
      // Names only, as the tz database spells them: nothing that could name
      // a file outside it.
      if (!LoadRuleTimeZone(s.time_zone()).ok()) {
        return Invalid(field("time_zone"),
                       absl::StrCat("unknown zone \"", util::Escaped(s.time_zone()),
                                    "\" (an IANA name such as \"Europe/Berlin\")"));
      }
    }
    absl::StatusOr<std::shared_ptr<const ScheduleRule>> rule = RuleFor(s);
    if (!rule.ok()) {
      return absl::Status(rule.status().code(),
                          absl::StrCat(prefix, rule.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNewJob(const v1::Job& job) {
  if (job.name().size() > JobService::kMaxNameLength) {
    return Invalid("job.name", "at most 256 characters");
  }
  if (job.label().size() > JobService::kMaxLabelLength) {
    return Invalid("job.label", "at most 256 characters");
  }
  RETURN_IF_ERROR(ValidateSchedule(job.schedule(), "job."));
  const v1::Schedule& s = job.schedule();
  if (s.has_start() && !IsScheduleTime(s.start())) {
    return Invalid("job.schedule.start", kScheduleTimeRange);
  }
  if (s.has_stop_after_runs() && s.stop_after_runs() <= 0) {
    return Invalid("job.schedule.stop_after_runs", "must be > 0");
  }
  if (s.has_stop_after_date()) {
    if (!IsScheduleTime(s.stop_after_date())) {
      return Invalid("job.schedule.stop_after_date", kScheduleTimeRange);
    }
    if (s.has_start() && FromProto(s.stop_after_date()) <= FromProto(s.start())) {
      return Invalid("job.schedule.stop_after_date", "must be after schedule.start");
    }
  }
  if (job.action().provider().empty()) {
    return Invalid("job.action.provider", "required");
  }
  if (!IsProviderName(job.action().provider())) {
    return Invalid("job.action.provider",
                   "lowercase letters, digits, '_' and '-', starting with a letter");
  }
  if (job.action().body().empty()) {
    return Invalid("job.action.body", "required (a JSON object)");
  }
  if (job.action().body().size() > JobService::kMaxBodyBytes) {
    return Invalid("job.action.body", "at most 1 MiB");
  }
  nlohmann::json body = nlohmann::json::parse(job.action().body(), nullptr,
                                              /*allow_exceptions=*/false);
  if (body.is_discarded()) return Invalid("job.action.body", "not valid JSON");
  if (!body.is_object()) return Invalid("job.action.body", "must be a JSON object");
  if (!v1::OverlapPolicy_IsValid(job.overlap_policy())) {
    return Invalid("job.overlap_policy", "unknown value");
  }
  if (!v1::MissedRunPolicy_IsValid(job.missed_run_policy())) {
    return Invalid("job.missed_run_policy", "unknown value");
  }
  if (job.max_concurrent() < 0 || job.max_concurrent() > 100) {
    return Invalid("job.max_concurrent", "must be between 1 and 100");
  }
  if (job.max_concurrent() > 1 && job.overlap_policy() != v1::ALLOW) {
    return Invalid("job.max_concurrent", "only applies with overlap_policy ALLOW");
  }
  RETURN_IF_ERROR(ValidateRetry(job));
  return absl::OkStatus();
}

void JobService::CreateJob(const Identity& caller, const v1::CreateJobRequest& request,
                           store::JobCallback done) {
  // The rate first: it bounds the work (a 1 MiB body parsed) too.
  absl::Status valid = TakeWrite(caller);
  if (valid.ok()) valid = ValidateRequestId(request.request_id());
  if (valid.ok()) valid = ValidateNewJob(request.job());
  if (valid.ok()) valid = CheckAction(caller, request.job().action());
  if (valid.ok()) valid = CheckNotification(request.job());  // notifications (issue 24)
  if (!valid.ok()) {
    std::move(done)(valid);
    return;
  }
  // The fingerprint covers what the client sent, so a retry that leaves
  // `start` to default still matches its first attempt.
  std::string fingerprint;
  if (!request.request_id().empty()) {
    std::string wire;
    request.job().SerializeToString(&wire);
    fingerprint = Sha256Hex(wire);
  }

  const absl::Time now = clock_->Now();
  const v1::Job& in = request.job();
  v1::Job job;
  job.set_job_id(NewUuid());
  job.set_name(in.name());
  job.set_owner(caller.name);
  job.set_label(in.label());
  *job.mutable_action() = in.action();
  if (in.has_notification()) *job.mutable_notification() = in.notification();
  *job.mutable_schedule() = in.schedule();
  NormalizeZone(*job.mutable_schedule(), google::protobuf::FieldMask());
  // Schedules are kept to the microsecond (the timer queue's resolution), so
  // every due time computed from them is exact.
  TruncateToMicros(job.mutable_schedule());
  if (!in.schedule().has_start()) {
    // "Now", rounded up to a whole second so the grid is readable and the
    // first run is never in the past.
    *job.mutable_schedule()->mutable_start() = ToProto(
        absl::Ceil(now - absl::UnixEpoch(), absl::Seconds(1)) + absl::UnixEpoch());
  }
  job.set_overlap_policy(in.overlap_policy() == v1::OVERLAP_POLICY_UNSPECIFIED
                             ? v1::SKIP
                             : in.overlap_policy());
  job.set_max_concurrent(in.max_concurrent() == 0 ? 1 : in.max_concurrent());
  job.set_missed_run_policy(in.missed_run_policy() == v1::MISSED_RUN_POLICY_UNSPECIFIED
                                ? v1::SKIP_MISSED
                                : in.missed_run_policy());
  // Retries and pausing (retry.h); the counters are the engine's.
  if (in.has_retry_policy()) *job.mutable_retry_policy() = in.retry_policy();
  job.set_pause_after_failures(in.pause_after_failures());
  job.set_status(v1::Job::NEW);
  *job.mutable_create_time() = ToProto(now);
  *job.mutable_update_time() = ToProto(now);

  // The first run is the first grid slot that is not in the past.
  v1::Job::EndReason reason = v1::Job::END_REASON_UNSPECIFIED;
  if (auto first = NextRunAtOrAfter(job, now, &reason)) {
    SetNextRun(job, *first);
  } else {
    job.set_status(v1::Job::ENDED);
    job.set_end_reason(reason);
  }

  if (quota_ != nullptr) {
    const int64_t bytes = store::StoredBytes(job);
    absl::Status room = quota_->Reserve(caller.name, bytes);
    if (!room.ok()) {
      std::move(done)(room);
      return;
    }
    // A retried request returns the job its first attempt made: not a new one.
    done = [quota = quota_, owner = caller.name, id = job.job_id(), bytes,
            done = std::move(done)](absl::StatusOr<v1::Job> r) mutable {
      quota->Release(owner, r.ok() && r->job_id() == id, bytes);
      std::move(done)(std::move(r));
    };
  }
  store_->CreateJob(std::move(job), request.request_id(), std::move(fingerprint),
                    Notify(v1::JobEvent::CREATED, std::move(done)));
}

absl::StatusOr<v1::Job> JobService::GetJob(const Identity& caller,
                                           const v1::GetJobRequest& request) {
  RETURN_IF_ERROR(ValidateJobId(request.job_id()));
  ASSIGN_OR_RETURN(v1::Job job, store_->GetJob(caller.name, request.job_id()));
  if (job.status() == v1::Job::DELETED && !request.show_deleted()) {
    return absl::NotFoundError(absl::StrCat("job ", request.job_id(),
                                            " was deleted (use show_deleted to see it)"));
  }
  return job;
}

absl::StatusOr<v1::ListJobsResponse> JobService::ListJobs(
    const Identity& caller, const v1::ListJobsRequest& request) {
  if (request.page_size() < 0) return Invalid("page_size", "must be >= 0");
  ASSIGN_OR_RETURN(const bool full, FullView(request.view()));
  store::ListJobsQuery query;
  query.owner = caller.name;
  query.show_deleted = request.show_deleted();
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(query.after,
                     DecodePageToken(request.page_token(), request.show_deleted()));
  }
  v1::ListJobsResponse response;
  size_t bytes = 0;
  ASSIGN_OR_RETURN(
      const bool more,
      ReadJobs(*store_, std::move(query), PageSize(request.page_size()),
               [&](v1::Job& job) {
                 if (!full) ClearToBasic(job);
                 const size_t size = EncodedSize(job);
                 // The page ends before the job that would bring it over the
                 // bound, and always holds one.
                 if (response.jobs_size() > 0 && bytes + size > list_page_bytes_) {
                   return false;
                 }
                 bytes += size;
                 *response.add_jobs() = std::move(job);
                 return true;
               }));
  if (more && response.jobs_size() > 0) {
    response.set_next_page_token(
        EncodePageToken(request.show_deleted(), *response.jobs().rbegin()));
  }
  return response;
}

void JobService::DeleteJob(const Identity& caller, const v1::DeleteJobRequest& request,
                           store::JobCallback done) {
  absl::Status valid = TakeWrite(caller);
  if (valid.ok()) valid = ValidateJobId(request.job_id());
  if (!valid.ok()) {
    std::move(done)(valid);
    return;
  }
  store_->UpdateJob(
      caller.name, request.job_id(),
      [this, etag = request.etag()](v1::Job& job) -> absl::Status {
        if (job.status() == v1::Job::DELETED) {
          return absl::NotFoundError(
              absl::StrCat("job ", job.job_id(), " is already deleted"));
        }
        if (!etag.empty() && etag != job.etag()) {
          return absl::AbortedError(absl::StrCat(
              "etag: the job changed since it was read (current etag ", job.etag(), ")"));
        }
        const absl::Time now = clock_->Now();
        job.set_status(v1::Job::DELETED);
        *job.mutable_delete_time() = ToProto(now);
        *job.mutable_update_time() = ToProto(now);
        job.clear_next_run();
        job.clear_next_scheduled_time();
        return absl::OkStatus();
      },
      Notify(v1::JobEvent::DELETED, [this, owner = caller.name, done = std::move(done)](
                                        absl::StatusOr<v1::Job> r) mutable {
        if (r.ok() && quota_ != nullptr) quota_->Deleted(owner);
        std::move(done)(std::move(r));
      }));
}

store::JobCallback JobService::Notify(v1::JobEvent::Type type, store::JobCallback done) {
  return [this, type, done = std::move(done)](absl::StatusOr<v1::Job> written) mutable {
    if (written.ok()) {
      if (observer_ != nullptr) observer_->JobChanged(*written);
      if (events_ != nullptr) events_->Publish(type, *written, nullptr);
    }
    std::move(done)(std::move(written));
  };
}

absl::Status JobService::CheckAction(const Identity& caller,
                                     const v1::Action& action) const {
  if (providers_ == nullptr) return absl::OkStatus();
  ActionProvider* provider = providers_->Find(action.provider());
  if (provider == nullptr) {
    return Invalid(
        "job.action.provider",
        absl::StrCat("no action provider named \"", action.provider(), "\" is loaded"));
  }
  absl::Status valid = provider->Validate(caller, action.body());
  if (!valid.ok()) {
    return absl::Status(valid.code(), absl::StrCat("job.action.body: ", valid.message()));
  }
  return absl::OkStatus();
}

absl::Status JobService::CheckNotification(const v1::Job& job) const {
  if (!job.has_notification()) return absl::OkStatus();
  const v1::Notification& n = job.notification();
  if (n.url().empty() && n.on_size() == 0) return absl::OkStatus();
  if (notifier_ == nullptr) {
    return absl::FailedPreconditionError(
        "job.notification: notifications are not configured on this server "
        "([notifications] key_file)");
  }
  return notifier_->Validate(n);
}

void JobService::UpdateJob(const Identity& caller, const v1::UpdateJobRequest& request,
                           store::JobCallback done) {
  static const absl::flat_hash_set<std::string> kSchedulePaths = {
      "schedule",
      "schedule.start",
      "schedule.interval_seconds",
      "schedule.once",
      "schedule.cron",
      "schedule.calendar",
      "schedule.time_zone",
      "schedule.dst_gap",
      "schedule.dst_repeat",
      "schedule.jitter_seconds",
      "schedule.catch_up_window_seconds",
      "schedule.stop_after_runs",
      "schedule.stop_after_date"};
  static const absl::flat_hash_set<std::string> kOtherPaths = {
      "name", "label", "action", "action.provider", "action.body", "overlap_policy",
      "max_concurrent", "missed_run_policy",
      // notifications (issue 24)
      "notification", "notification.url", "notification.on",
      // Retries and pausing (retry.h).
      "retry_policy", "retry_policy.max_attempts", "retry_policy.initial_backoff",
      "retry_policy.multiplier", "retry_policy.max_backoff", "pause_after_failures"};
  const v1::Job& in = request.job();
  absl::Status valid = TakeWrite(caller);
  if (valid.ok()) valid = ValidateJobId(in.job_id());
  if (valid.ok() && request.update_mask().paths_size() == 0) {
    valid = Invalid("update_mask", "required: name the fields to change");
  }
  bool schedule_changed = false, action_changed = false, notification_changed = false;
  for (const std::string& path : request.update_mask().paths()) {
    if (!valid.ok()) break;
    if (kSchedulePaths.contains(path)) {
      schedule_changed = true;
    } else if (kOtherPaths.contains(path)) {
      action_changed |= path.rfind("action", 0) == 0;
      notification_changed |= path.rfind("notification", 0) == 0;
    } else {
      valid = Invalid("update_mask",
                      absl::StrCat("\"", util::Escaped(path), "\" cannot be updated"));
    }
  }
  // The merged job is validated before the write; the write then checks that
  // nothing changed in between (etag), so what was validated is what is stored.
  absl::StatusOr<v1::Job> current = valid.ok() ? store_->GetJob(caller.name, in.job_id())
                                               : absl::StatusOr<v1::Job>(valid);
  if (current.ok()) valid = NotFoundIfDeleted(*current);
  if (valid.ok() && current.ok() && !in.etag().empty() && in.etag() != current->etag()) {
    valid = absl::AbortedError(absl::StrCat(
        "etag: the job changed since it was read (current etag ", current->etag(), ")"));
  }
  v1::Job merged;
  if (valid.ok() && current.ok()) {
    merged = *current;
    for (const std::string& path : request.update_mask().paths()) {
      if (path == "name") merged.set_name(in.name());
      if (path == "label") merged.set_label(in.label());
      if (path == "action") *merged.mutable_action() = in.action();
      if (path == "action.provider")
        merged.mutable_action()->set_provider(in.action().provider());
      if (path == "action.body") merged.mutable_action()->set_body(in.action().body());
      if (path == "overlap_policy") merged.set_overlap_policy(in.overlap_policy());
      if (path == "max_concurrent") merged.set_max_concurrent(in.max_concurrent());
      if (path == "missed_run_policy")
        merged.set_missed_run_policy(in.missed_run_policy());
      // notifications (issue 24)
      if (path == "notification") *merged.mutable_notification() = in.notification();
      if (path == "notification.url")
        merged.mutable_notification()->set_url(in.notification().url());
      if (path == "notification.on")
        *merged.mutable_notification()->mutable_on() = in.notification().on();
      if (path == "retry_policy") {
        if (in.has_retry_policy())
          *merged.mutable_retry_policy() = in.retry_policy();
        else
          merged.clear_retry_policy();
      }
      const v1::RetryPolicy& rp = in.retry_policy();
      if (path == "retry_policy.max_attempts")
        merged.mutable_retry_policy()->set_max_attempts(rp.max_attempts());
      if (path == "retry_policy.initial_backoff") {
        if (rp.has_initial_backoff())
          *merged.mutable_retry_policy()->mutable_initial_backoff() =
              rp.initial_backoff();
        else
          merged.mutable_retry_policy()->clear_initial_backoff();
      }
      if (path == "retry_policy.multiplier") {
        if (rp.has_multiplier())
          merged.mutable_retry_policy()->set_multiplier(rp.multiplier());
        else
          merged.mutable_retry_policy()->clear_multiplier();
      }
      if (path == "retry_policy.max_backoff") {
        if (rp.has_max_backoff())
          *merged.mutable_retry_policy()->mutable_max_backoff() = rp.max_backoff();
        else
          merged.mutable_retry_policy()->clear_max_backoff();
      }
      if (path == "pause_after_failures")
        merged.set_pause_after_failures(in.pause_after_failures());
      v1::Schedule* s = merged.mutable_schedule();
      const v1::Schedule& n = in.schedule();
      if (path == "schedule") *s = n;
      if (path == "schedule.start") *s->mutable_start() = n.start();
      // A kind path switches the schedule to that kind (the oneof keeps one).
      if (path == "schedule.interval_seconds")
        s->set_interval_seconds(n.interval_seconds());
      if (path == "schedule.once") s->set_once(n.once());
      if (path == "schedule.cron") s->set_cron(n.cron());
      if (path == "schedule.calendar") *s->mutable_calendar() = n.calendar();
      if (path == "schedule.time_zone") s->set_time_zone(n.time_zone());
      if (path == "schedule.dst_gap") s->set_dst_gap(n.dst_gap());
      if (path == "schedule.dst_repeat") s->set_dst_repeat(n.dst_repeat());
      if (path == "schedule.jitter_seconds") s->set_jitter_seconds(n.jitter_seconds());
      if (path == "schedule.catch_up_window_seconds")
        s->set_catch_up_window_seconds(n.catch_up_window_seconds());
      if (path == "schedule.stop_after_runs") {
        if (n.has_stop_after_runs())
          s->set_stop_after_runs(n.stop_after_runs());
        else
          s->clear_stop_after_runs();
      }
      if (path == "schedule.stop_after_date") {
        if (n.has_stop_after_date())
          *s->mutable_stop_after_date() = n.stop_after_date();
        else
          s->clear_stop_after_date();
      }
    }
    if (!merged.schedule().has_start())
      *merged.mutable_schedule()->mutable_start() = current->schedule().start();
    // Changing the kind to interval or once drops the zone and DST policies
    // the old cron or calendar kind had, unless the mask sets them (then
    // validation refuses them); a new cron or calendar kind without a zone
    // gets "UTC".
    NormalizeZone(*merged.mutable_schedule(), request.update_mask());
    if (merged.max_concurrent() == 0) merged.set_max_concurrent(1);
    valid = ValidateNewJob(merged);
    if (valid.ok() && action_changed) valid = CheckAction(caller, merged.action());
    if (valid.ok() && notification_changed) valid = CheckNotification(merged);
  }
  // A bigger body takes room under max_stored_bytes_per_identity first.
  int64_t grows = 0;
  if (valid.ok() && current.ok()) {
    grows = store::StoredBytes(merged) - store::StoredBytes(*current);
    if (quota_ != nullptr) valid = quota_->ReserveBytes(caller.name, grows);
  }
  if (!valid.ok() || !current.ok()) {
    std::move(done)(valid.ok() ? current.status() : valid);
    return;
  }
  if (quota_ != nullptr) {
    done = [quota = quota_, owner = caller.name, grows,
            done = std::move(done)](absl::StatusOr<v1::Job> r) mutable {
      quota->ReleaseBytes(owner, grows, r.ok());
      std::move(done)(std::move(r));
    };
  }
  store_->UpdateJob(
      caller.name, in.job_id(),
      [this, merged = std::move(merged), etag = current->etag(),
       schedule_changed](v1::Job& job) -> absl::Status {
        if (job.etag() != etag) {
          return absl::AbortedError("the job changed while it was being updated; retry");
        }
        const absl::Time now = clock_->Now();
        const bool was_ended = job.status() == v1::Job::ENDED;
        job.set_name(merged.name());
        job.set_label(merged.label());
        *job.mutable_action() = merged.action();
        *job.mutable_schedule() = merged.schedule();
        TruncateToMicros(job.mutable_schedule());
        job.set_overlap_policy(merged.overlap_policy());
        job.set_max_concurrent(merged.max_concurrent());
        job.set_missed_run_policy(merged.missed_run_policy());
        if (merged.has_notification() && !merged.notification().url().empty()) {
          *job.mutable_notification() = merged.notification();
        } else {
          job.clear_notification();
        }
        if (merged.has_retry_policy()) {
          *job.mutable_retry_policy() = merged.retry_policy();
        } else {
          job.clear_retry_policy();
        }
        job.set_pause_after_failures(merged.pause_after_failures());
        *job.mutable_update_time() = ToProto(now);
        if (job.status() != v1::Job::PAUSED) {
          if (schedule_changed || was_ended) {
            Reschedule(job, now, v1::Job::UPDATED);
          } else {
            job.set_status(v1::Job::UPDATED);
          }
        }
        return absl::OkStatus();
      },
      Notify(v1::JobEvent::UPDATED, std::move(done)));
}

void JobService::MutateLiveJob(const Identity& caller, const std::string& job_id,
                               v1::JobEvent::Type event, store::JobMutation mutate,
                               store::JobCallback done) {
  absl::Status valid = TakeWrite(caller);
  if (valid.ok()) valid = ValidateJobId(job_id);
  if (!valid.ok()) {
    std::move(done)(valid);
    return;
  }
  store_->UpdateJob(
      caller.name, job_id,
      [mutate = std::move(mutate)](v1::Job& job) mutable -> absl::Status {
        RETURN_IF_ERROR(NotFoundIfDeleted(job));
        return mutate(job);
      },
      Notify(event, std::move(done)));
}

namespace {
absl::Status EndedError() {
  return absl::FailedPreconditionError(
      "job has ended; change its stop conditions to run it again");
}
}  // namespace

void JobService::PauseJob(const Identity& caller, const v1::PauseJobRequest& request,
                          store::JobCallback done) {
  MutateLiveJob(
      caller, request.job_id(), v1::JobEvent::PAUSED,
      [this, caller_name = caller.name](v1::Job& job) -> absl::Status {
        if (job.status() == v1::Job::PAUSED) return absl::OkStatus();
        if (job.status() == v1::Job::ENDED) return EndedError();
        job.set_status(v1::Job::PAUSED);
        job.clear_next_run();
        const absl::Time now = clock_->Now();
        *job.mutable_update_time() = ToProto(now);
        v1::InactiveReason* why = job.mutable_inactive_reason();
        why->set_cause(v1::InactiveReason::USER);
        why->set_detail("paused by " + caller_name);
        *why->mutable_time() = ToProto(now);
        return absl::OkStatus();
      },
      std::move(done));
}

void JobService::ResumeJob(const Identity& caller, const v1::ResumeJobRequest& request,
                           store::JobCallback done) {
  MutateLiveJob(
      caller, request.job_id(), v1::JobEvent::RESUMED,
      [this](v1::Job& job) -> absl::Status {
        if (IsSchedulable(job.status())) return absl::OkStatus();
        if (job.status() == v1::Job::ENDED) return EndedError();
        // Back on the original grid: the next slot, not "now + interval".
        const absl::Time now = clock_->Now();
        Reschedule(job, now, job.n_runs() > 0 ? v1::Job::LOADED : v1::Job::NEW);
        *job.mutable_update_time() = ToProto(now);
        // A resumed job starts counting failures afresh.
        job.clear_inactive_reason();
        job.set_consecutive_failures(0);
        return absl::OkStatus();
      },
      std::move(done));
}

void JobService::RunJobNow(const Identity& caller, const v1::RunJobNowRequest& request,
                           store::JobCallback done) {
  absl::Status valid = ValidateJobId(request.job_id());
  if (valid.ok()) valid = ValidateRequestId(request.request_id());
  if (valid.ok() && quota_ != nullptr) valid = quota_->TakeRunNow(caller.name);
  if (!valid.ok()) {
    std::move(done)(valid);
    return;
  }
  // With several replicas, only the one scheduling the job knows its active
  // runs and holds the fence its run's record needs.
  if (relay_ != nullptr && observer_ != nullptr &&
      !observer_->SchedulesHere(request.job_id())) {
    relay_->Relay(caller, request, std::move(done));
    return;
  }
  RunJobNowRelayed(caller, request, std::move(done));
}

void JobService::RunJobNowRelayed(const Identity& caller,
                                  const v1::RunJobNowRequest& request,
                                  store::JobCallback done) {
  absl::Status valid = ValidateJobId(request.job_id());
  if (valid.ok()) valid = ValidateRequestId(request.request_id());
  // Counted against the active-run limits from here on (a manual run is an
  // action like any other), and told what its overlap policy decides on.
  std::optional<ManualRunSlot> slot;
  if (valid.ok() && observer_ != nullptr) {
    absl::StatusOr<ManualRunSlot> admitted =
        observer_->AdmitManualRun(caller.name, request.job_id());
    if (admitted.ok()) {
      slot = *std::move(admitted);
    } else {
      valid = admitted.status();
    }
  }
  if (!valid.ok()) {
    std::move(done)(valid);
    return;
  }
  struct Outcome {
    std::optional<v1::JobResult> recorded;
    OverlapDecision::Kind overlap = OverlapDecision::Kind::kStart;
  };
  auto outcome = std::make_shared<Outcome>();
  const int active = slot ? slot->active : 0;
  const bool buffered = slot ? slot->buffered : false;
  std::optional<store::Fence> fence = slot ? slot->fence : std::nullopt;
  store_->WriteManualRun(
      caller.name, request.job_id(), request.request_id(), std::move(fence),
      [this, outcome, active, buffered, request_id = request.request_id()](
          v1::Job& job, std::vector<v1::JobResult>& table,
          int64_t existing_run) -> absl::Status {
        RETURN_IF_ERROR(NotFoundIfDeleted(job));
        // A retry: the run its first attempt recorded, whatever happened since.
        if (existing_run != 0) return absl::OkStatus();
        if (job.status() == v1::Job::ENDED) {
          return absl::FailedPreconditionError(
              "job has ended; change its stop conditions (UpdateJob) to run it again");
        }
        // A paused job runs: pausing stops its schedule, and asking for a run
        // of it now means that run. Its overlap policy applies as to a slot.
        const OverlapDecision o = DecideOverlap(job, active, buffered);
        if (o.kind == OverlapDecision::Kind::kSkip) {
          if (job.overlap_policy() == v1::ALLOW) {
            return absl::ResourceExhaustedError(
                absl::StrCat("max_concurrent: ", o.reason, "; try again once one ends"));
          }
          return absl::FailedPreconditionError(absl::StrCat(
              "overlap_policy ", v1::OverlapPolicy_Name(job.overlap_policy()), ": ",
              o.reason, "; try again once it ends"));
        }
        outcome->overlap = o.kind;
        const absl::Time now = clock_->Now();
        v1::JobResult r;
        r.set_run_number(job.last_run_number() + 1);
        r.set_manual(true);
        r.set_request_id(request_id);
        r.set_status(v1::JobResult::PENDING);
        *r.mutable_scheduled_time() = ToProto(now);
        job.set_last_run_number(r.run_number());
        job.set_n_runs(job.n_runs() + 1);
        *job.mutable_update_time() = ToProto(now);
        // Run-now runs count towards stop_after_runs: this may be the last.
        if (job.schedule().has_stop_after_runs() &&
            job.n_runs() >= job.schedule().stop_after_runs()) {
          job.set_status(v1::Job::ENDED);
          job.set_end_reason(v1::Job::STOP_AFTER_RUNS);
          job.clear_next_run();
          job.clear_next_scheduled_time();
        }
        PutResult(job, r, table);
        outcome->recorded = r;
        return absl::OkStatus();
      },
      [this, outcome, slot = std::move(slot),
       done = std::move(done)](absl::StatusOr<v1::Job> written) mutable {
        if (written.ok() && observer_ != nullptr) observer_->JobChanged(*written);
        if (slot) {
          if (written.ok() && outcome->recorded) {
            observer_->ManualRunRecorded(*slot, *written, *outcome->recorded,
                                         outcome->overlap);
          } else {
            observer_->ManualRunDropped(*slot);
          }
        }
        std::move(done)(std::move(written));
      });
}

absl::Status JobService::TakeWrite(const Identity& caller) {
  return quota_ == nullptr ? absl::OkStatus() : quota_->TakeWrite(caller.name);
}

absl::StatusOr<WatchFilter> JobService::WatchJobFilter(
    const Identity& caller, const v1::WatchJobRequest& request) {
  RETURN_IF_ERROR(ValidateJobId(request.job_id()));
  if (request.since() < 0) return Invalid("since", "must be >= 0");
  v1::GetJobRequest get;
  get.set_job_id(request.job_id());
  RETURN_IF_ERROR(GetJob(caller, get).status());
  WatchFilter filter;
  filter.owner = caller.name;
  filter.job_id = request.job_id();
  ASSIGN_OR_RETURN(filter.full_view, FullView(request.view()));
  return filter;
}

absl::StatusOr<WatchFilter> JobService::WatchJobsFilter(
    const Identity& caller, const v1::WatchJobsRequest& request) {
  if (request.since() < 0) return Invalid("since", "must be >= 0");
  if (request.name_contains().size() > kMaxNameLength) {
    return Invalid("name_contains",
                   absl::StrCat("at most ", kMaxNameLength, " characters"));
  }
  // Each status at most once: a longer list can only repeat one.
  constexpr int kStatuses = v1::Job::Status_MAX;  // Less STATUS_UNSPECIFIED.
  if (request.statuses_size() > kStatuses) {
    return Invalid("statuses", absl::StrCat("at most ", kStatuses,
                                            " (there are no more job statuses)"));
  }
  WatchFilter filter;
  filter.owner = caller.name;
  filter.name_contains = request.name_contains();
  ASSIGN_OR_RETURN(filter.full_view, FullView(request.view()));
  for (int s : request.statuses()) {
    if (!v1::Job::Status_IsValid(s) || s == v1::Job::STATUS_UNSPECIFIED) {
      return Invalid("statuses", absl::StrCat(s, " is not a job status"));
    }
    filter.statuses |= StatusBit(s);
  }
  return filter;
}

absl::StatusOr<JobService::SnapshotPage> JobService::Snapshot(
    const WatchFilter& filter, const std::optional<store::ListCursor>& after,
    int page_size, size_t max_bytes) {
  SnapshotPage out;
  if (!filter.job_id.empty()) {
    if (after) return out;  // The one job was the first page.
    absl::StatusOr<v1::Job> job = store_->GetJob(filter.owner, filter.job_id);
    if (absl::IsNotFound(job.status())) return out;
    RETURN_IF_ERROR(job.status());
    if (job->status() != v1::Job::DELETED && filter.Matches(*job)) {
      if (!filter.full_view) ClearToBasic(*job);
      out.jobs.push_back(*std::move(job));
    }
    return out;
  }
  store::ListJobsQuery query;
  query.owner = filter.owner;
  query.after = after;
  size_t bytes = 0;
  std::optional<store::ListCursor> last;
  ASSIGN_OR_RETURN(const bool more,
                   ReadJobs(*store_, std::move(query),
                            std::clamp(page_size, 1, kMaxPageSize), [&](v1::Job& job) {
                              if (bytes >= max_bytes) return false;
                              last = CursorOf(job);
                              if (filter.Matches(job)) {
                                if (!filter.full_view) ClearToBasic(job);
                                bytes += EncodedSize(job);
                                out.jobs.push_back(std::move(job));
                              }
                              return true;
                            }));
  if (more && last) out.next = std::move(last);
  return out;
}

absl::StatusOr<v1::ListJobResultsResponse> JobService::ListJobResults(
    const Identity& caller, const v1::ListJobResultsRequest& request) {
  RETURN_IF_ERROR(ValidateJobId(request.job_id()));
  if (request.page_size() < 0) return Invalid("page_size", "must be >= 0");
  int64_t before = 0;
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(before, DecodeResultsToken(request.page_token()));
  }
  const int page_size = PageSize(request.page_size());
  ASSIGN_OR_RETURN(
      std::vector<v1::JobResult> results,
      store_->ListResults(caller.name, request.job_id(), before, page_size + 1));
  v1::ListJobResultsResponse response;
  for (size_t i = 0; i < results.size() && static_cast<int>(i) < page_size; ++i) {
    *response.add_results() = std::move(results[i]);
  }
  if (static_cast<int>(results.size()) > page_size) {
    response.set_next_page_token(
        EncodeResultsToken(response.results(page_size - 1).run_number()));
  }
  return response;
}

absl::StatusOr<v1::PreviewScheduleResponse> JobService::PreviewSchedule(
    const Identity& caller, const v1::PreviewScheduleRequest& request) {
  if (request.count() < 0 || request.count() > kMaxPreviewCount) {
    return Invalid("count", absl::StrCat("must be between 0 and ", kMaxPreviewCount,
                                         " (0: ", kDefaultPreviewCount, ")"));
  }
  if (request.has_from() && !IsScheduleTime(request.from())) {
    return Invalid("from", kScheduleTimeRange);
  }
  const absl::Time now = clock_->Now();
  v1::Job job;
  switch (request.target_case()) {
    case v1::PreviewScheduleRequest::kJobId: {
      RETURN_IF_ERROR(ValidateJobId(request.job_id()));
      ASSIGN_OR_RETURN(job, store_->GetJob(caller.name, request.job_id()));
      RETURN_IF_ERROR(NotFoundIfDeleted(job));
      break;
    }
    case v1::PreviewScheduleRequest::kSchedule: {
      *job.mutable_schedule() = request.schedule();
      NormalizeZone(*job.mutable_schedule(), google::protobuf::FieldMask());
      RETURN_IF_ERROR(ValidateSchedule(job.schedule(), ""));
      const v1::Schedule& s = job.schedule();
      if (s.has_start() && !IsScheduleTime(s.start())) {
        return Invalid("schedule.start", kScheduleTimeRange);
      }
      if (s.has_stop_after_runs() && s.stop_after_runs() <= 0) {
        return Invalid("schedule.stop_after_runs", "must be > 0");
      }
      if (s.has_stop_after_date() && !IsScheduleTime(s.stop_after_date())) {
        return Invalid("schedule.stop_after_date", kScheduleTimeRange);
      }
      if (!s.has_start()) {
        // Now, as CreateJob would; or `from`, when the preview starts earlier.
        absl::Time start =
            absl::Ceil(now - absl::UnixEpoch(), absl::Seconds(1)) + absl::UnixEpoch();
        if (request.has_from()) start = std::min(start, FromProto(request.from()));
        *job.mutable_schedule()->mutable_start() = ToProto(start);
      }
      TruncateToMicros(job.mutable_schedule());
      job.set_status(v1::Job::NEW);
      break;
    }
    default:
      return Invalid("job_id", "required: a job_id or a schedule");
  }
  const int count = request.count() == 0 ? kDefaultPreviewCount : request.count();
  const absl::Time from = request.has_from() ? FromProto(request.from()) : now;
  return PreviewSlots(job, from, now, count);
}

namespace {

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

// Checks a BackfillJob request against `now`, before anything is read.
absl::Status ValidateBackfill(const v1::BackfillJobRequest& request, absl::Time now) {
  RETURN_IF_ERROR(ValidateJobId(request.job_id()));
  if (!request.has_start_time()) return Invalid("start_time", "required");
  if (!IsScheduleTime(request.start_time())) {
    return Invalid("start_time", kScheduleTimeRange);
  }
  if (!request.has_end_time()) return Invalid("end_time", "required");
  if (!IsScheduleTime(request.end_time())) return Invalid("end_time", kScheduleTimeRange);
  const absl::Time from = FromProto(request.start_time());
  const absl::Time to = FromProto(request.end_time());
  if (to <= from) return Invalid("end_time", "must be after start_time");
  if (to > now) {
    return Invalid("end_time", absl::StrCat("must not be after now (", Rfc3339(now),
                                            "): only past slots are backfilled"));
  }
  if (to - from > JobService::kMaxBackfillRange) {
    return Invalid("end_time", "at most 366 days after start_time");
  }
  if (request.max_runs() < 0 || request.max_runs() > JobService::kMaxBackfillRuns) {
    return Invalid("max_runs",
                   absl::StrCat("must be between 0 and ", JobService::kMaxBackfillRuns,
                                " (0: ", JobService::kMaxBackfillRuns, ")"));
  }
  return ValidateRequestId(request.request_id());
}

// The nominal slots of `job`'s schedule in [from, to), before its
// stop_after_date, oldest first: the same math the run engine and
// PreviewSchedule use (NextSlotAfter), without jitter. More than `max` is
// INVALID_ARGUMENT naming how many the range holds, counted exactly for
// interval and once schedules and up to kMissedCountCap for rules (bounded
// work: a per-second cron over 366 days holds 31 million).
absl::StatusOr<std::vector<absl::Time>> BackfillSlots(const v1::Job& job, absl::Time from,
                                                      absl::Time to, int max) {
  const v1::Schedule& s = job.schedule();
  if (s.has_stop_after_date()) to = std::min(to, FromProto(s.stop_after_date()));
  std::vector<absl::Time> slots;
  if (to <= from) return slots;
  const auto too_many = [&](int64_t held, bool at_least) {
    return Invalid("max_runs",
                   absl::StrCat("the range holds ", at_least ? "at least " : "", held,
                                " slots of the job's schedule, more than ", max,
                                max < JobService::kMaxBackfillRuns
                                    ? "; narrow the range or raise max_runs"
                                    : "; split the range into calls of at most 100 "
                                      "slots"));
  };
  if (s.has_interval_seconds()) {
    if (s.interval_seconds() <= 0) return slots;
    const absl::Time start = FromProto(s.start());
    const absl::Duration interval = absl::Seconds(s.interval_seconds());
    const int64_t first = FirstSlotAtOrAfter(start, interval, from);
    const int64_t held = FirstSlotAtOrAfter(start, interval, to) - first;
    if (held > max) return too_many(held, false);
    for (int64_t k = 0; k < held; ++k)
      slots.push_back(SlotTime(start, interval, first + k));
    return slots;
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const ScheduleRule> rule, RuleFor(s));
  int64_t held = 0;
  // "At or after from" is "strictly after from - 1 ns" (slots are whole
  // microseconds).
  for (std::optional<absl::Time> t =
           NextSlotAfter(s, rule.get(), from - absl::Nanoseconds(1));
       t && *t < to; t = NextSlotAfter(s, rule.get(), *t)) {
    if (++held <= max) {
      slots.push_back(*t);
    } else if (held >= kMissedCountCap) {
      return too_many(held, true);
    }
  }
  if (held > max) return too_many(held, false);
  return slots;
}

absl::Status NotBackfillable(const v1::Job& job) {
  if (job.status() == v1::Job::ENDED) {
    return absl::FailedPreconditionError(
        "job has ended; change its stop conditions (UpdateJob) to backfill it");
  }
  if (job.status() == v1::Job::PAUSED) {
    return absl::FailedPreconditionError(
        "job is paused, which cancels its backfill runs not yet started; resume it "
        "first");
  }
  return absl::OkStatus();
}

}  // namespace

void JobService::BackfillJob(
    const Identity& caller, const v1::BackfillJobRequest& request,
    absl::AnyInvocable<void(absl::StatusOr<v1::BackfillJobResponse>)> done) {
  using Response = v1::BackfillJobResponse;
  const absl::Time from = FromProto(request.start_time());
  const absl::Time to = FromProto(request.end_time());
  const int max_runs = request.max_runs() == 0 ? kMaxBackfillRuns : request.max_runs();
  // The request's own fields first, then the write rate: it bounds the work
  // below (a read and up to kMissedCountCap rule steps).
  v1::Job job;
  absl::StatusOr<std::vector<absl::Time>> slots =
      [&]() -> absl::StatusOr<std::vector<absl::Time>> {
    RETURN_IF_ERROR(ValidateBackfill(request, clock_->Now()));
    RETURN_IF_ERROR(TakeWrite(caller));
    ASSIGN_OR_RETURN(job, store_->GetJob(caller.name, request.job_id()));
    RETURN_IF_ERROR(NotFoundIfDeleted(job));
    return BackfillSlots(job, from, to, max_runs);
  }();
  if (!slots.ok()) {
    std::move(done)(slots.status());
    return;
  }
  if (slots->empty()) {
    // Nothing to record: the answer is the job as it is, with no runs.
    if (absl::Status s = NotBackfillable(job); !s.ok()) {
      std::move(done)(s);
      return;
    }
    Response response;
    *response.mutable_job() = std::move(job);
    std::move(done)(std::move(response));
    return;
  }
  // Room for the runs in the observer's queue (bounded in total and per
  // identity), held until they are recorded or dropped.
  std::optional<BackfillSlot> slot;
  if (observer_ != nullptr) {
    absl::StatusOr<BackfillSlot> admitted = observer_->AdmitBackfill(
        caller.name, request.job_id(), static_cast<int>(slots->size()));
    if (!admitted.ok()) {
      std::move(done)(admitted.status());
      return;
    }
    slot = *std::move(admitted);
  }
  struct Outcome {
    std::vector<v1::JobResult> recorded;
    int64_t existing_run = 0;  // A retry: the last run its first call recorded.
  };
  auto outcome = std::make_shared<Outcome>();
  std::optional<store::Fence> fence = slot ? slot->fence : std::nullopt;
  store_->WriteManualRun(
      caller.name, request.job_id(), request.request_id(), std::move(fence),
      [this, outcome, schedule = job.schedule(), slots = *std::move(slots),
       request_id = request.request_id()](v1::Job& job, std::vector<v1::JobResult>& table,
                                          int64_t existing_run) -> absl::Status {
        RETURN_IF_ERROR(NotFoundIfDeleted(job));
        // A retry: the runs its first call recorded, whatever happened since.
        if (existing_run != 0) {
          outcome->existing_run = existing_run;
          return absl::OkStatus();
        }
        RETURN_IF_ERROR(NotBackfillable(job));
        // The slots were computed from the job as read before this write.
        if (!google::protobuf::util::MessageDifferencer::Equals(job.schedule(),
                                                                schedule)) {
          return absl::AbortedError(
              "job.schedule: changed while the backfill was prepared; try again");
        }
        const absl::Time now = clock_->Now();
        for (const absl::Time slot_time : slots) {
          v1::JobResult r;
          r.set_run_number(job.last_run_number() + 1);
          r.set_backfill(true);
          r.set_request_id(request_id);
          r.set_status(v1::JobResult::PENDING);
          *r.mutable_scheduled_time() = ToProto(slot_time);
          job.set_last_run_number(r.run_number());
          PutResult(job, r, table);
          outcome->recorded.push_back(std::move(r));
        }
        // Neither n_runs (stop_after_runs counts the schedule's own runs)
        // nor next_run moves: the grid goes on as before.
        *job.mutable_update_time() = ToProto(now);
        return absl::OkStatus();
      },
      [this, outcome, slot = std::move(slot), owner = caller.name, request, from, to,
       done = std::move(done)](absl::StatusOr<v1::Job> written) mutable {
        if (written.ok() && observer_ != nullptr) observer_->JobChanged(*written);
        if (slot) {
          if (written.ok() && !outcome->recorded.empty()) {
            observer_->BackfillRecorded(*slot, *written, outcome->recorded);
          } else {
            observer_->BackfillDropped(*slot);
          }
        }
        if (!written.ok()) {
          std::move(done)(written.status());
          return;
        }
        Response response;
        *response.mutable_job() = *std::move(written);
        if (outcome->existing_run == 0) {
          for (v1::JobResult& r : outcome->recorded)
            *response.add_results() = std::move(r);
          std::move(done)(std::move(response));
          return;
        }
        // A retry: its first call's runs, read back as they are now. They
        // hold consecutive run numbers ending at existing_run.
        absl::StatusOr<std::vector<v1::JobResult>> kept = store_->ListResults(
            owner, request.job_id(), outcome->existing_run + 1, kMaxBackfillRuns);
        if (!kept.ok()) {
          std::move(done)(kept.status());
          return;
        }
        int64_t expect = outcome->existing_run;
        for (v1::JobResult& r : *kept) {
          if (r.run_number() != expect || !r.backfill() ||
              r.request_id() != request.request_id()) {
            break;
          }
          --expect;
          const absl::Time t = FromProto(r.scheduled_time());
          if (t < from || t >= to) {
            std::move(done)(absl::AlreadyExistsError(
                "request_id: already used by a BackfillJob of this job for another "
                "range"));
            return;
          }
          *response.add_results() = std::move(r);
        }
        if (response.results().empty()) {
          std::move(done)(absl::AlreadyExistsError(
              "request_id: already used by a RunJobNow of this job"));
          return;
        }
        std::reverse(response.mutable_results()->begin(),
                     response.mutable_results()->end());
        std::move(done)(std::move(response));
      });
}

absl::StatusOr<v1::ListActionProvidersResponse> JobService::ListActionProviders(
    const v1::ListActionProvidersRequest& request) {
  if (request.page_size() < 0) return Invalid("page_size", "must be >= 0");
  std::string after;
  if (!request.page_token().empty() &&
      !absl::WebSafeBase64Unescape(request.page_token(), &after)) {
    return Invalid("page_token", "not a token this server issued");
  }
  v1::ListActionProvidersResponse response;
  if (providers_ == nullptr) return response;
  const int page_size = PageSize(request.page_size());
  for (ActionProvider* p : providers_->List()) {
    if (!after.empty() && p->info().name() <= after) continue;
    if (response.action_providers_size() == page_size) {
      response.set_next_page_token(
          absl::WebSafeBase64Escape(response.action_providers(page_size - 1).name()));
      break;
    }
    *response.add_action_providers() = p->info();
  }
  return response;
}

absl::StatusOr<v1::ActionProvider> JobService::GetActionProvider(
    const Identity& caller, const v1::GetActionProviderRequest& request) {
  if (request.name().empty()) return Invalid("name", "required");
  ActionProvider* p = providers_ ? providers_->Find(request.name()) : nullptr;
  if (p == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no action provider named \"", util::Escaped(request.name()), "\" is loaded"));
  }
  v1::ActionProvider out = p->info();
  ASSIGN_OR_RETURN(std::string configuration, p->Describe(caller));
  out.set_configuration(std::move(configuration));
  return out;
}

}  // namespace timer::domain
