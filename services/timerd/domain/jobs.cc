#include "domain/jobs.h"

#include <nlohmann/json.hpp>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "domain/ids.h"
#include "domain/schedule.h"
#include "domain/time_util.h"
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
  return absl::WebSafeBase64Escape(
      absl::StrCat("1|", show_deleted ? 1 : 0, "|",
                   store::ToMicros(last.create_time()), "|", last.job_id()));
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

}  // namespace

absl::Status ValidateNewJob(const v1::Job& job) {
  if (job.name().size() > JobService::kMaxNameLength) {
    return Invalid("job.name", "at most 256 characters");
  }
  if (job.label().size() > JobService::kMaxLabelLength) {
    return Invalid("job.label", "at most 256 characters");
  }
  const v1::Schedule& s = job.schedule();
  if (s.interval_seconds() <= 0) {
    return Invalid("job.schedule.interval_seconds", "must be > 0");
  }
  if (s.interval_seconds() > JobService::kMaxIntervalSeconds) {
    return Invalid("job.schedule.interval_seconds", "must be at most 10 years");
  }
  if (s.has_start() && !IsValidTimestamp(s.start())) {
    return Invalid("job.schedule.start", "not a valid timestamp");
  }
  if (s.has_stop_after_runs() && s.stop_after_runs() <= 0) {
    return Invalid("job.schedule.stop_after_runs", "must be > 0");
  }
  if (s.has_stop_after_date()) {
    if (!IsValidTimestamp(s.stop_after_date())) {
      return Invalid("job.schedule.stop_after_date", "not a valid timestamp");
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
  return absl::OkStatus();
}

void JobService::CreateJob(const Identity& caller,
                           const v1::CreateJobRequest& request,
                           store::JobCallback done) {
  absl::Status valid = ValidateRequestId(request.request_id());
  if (valid.ok()) valid = ValidateNewJob(request.job());
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
  *job.mutable_schedule() = in.schedule();
  if (!in.schedule().has_start()) {
    // "Now", rounded up to a whole second so the grid is readable and the
    // first run is never in the past.
    *job.mutable_schedule()->mutable_start() =
        ToProto(absl::Ceil(now - absl::UnixEpoch(), absl::Seconds(1)) + absl::UnixEpoch());
  }
  job.set_overlap_policy(in.overlap_policy() == v1::OVERLAP_POLICY_UNSPECIFIED
                             ? v1::SKIP
                             : in.overlap_policy());
  job.set_max_concurrent(in.max_concurrent() == 0 ? 1 : in.max_concurrent());
  job.set_missed_run_policy(
      in.missed_run_policy() == v1::MISSED_RUN_POLICY_UNSPECIFIED
          ? v1::SKIP_MISSED
          : in.missed_run_policy());
  job.set_status(v1::Job::NEW);
  *job.mutable_create_time() = ToProto(now);
  *job.mutable_update_time() = ToProto(now);

  // The first run is the first grid slot that is not in the past.
  const absl::Time start = FromProto(job.schedule().start());
  const absl::Duration interval = absl::Seconds(job.schedule().interval_seconds());
  const absl::Time first = SlotTime(start, interval, FirstSlotAtOrAfter(start, interval, now));
  if (!job.schedule().has_stop_after_date() ||
      first < FromProto(job.schedule().stop_after_date())) {
    *job.mutable_next_run() = ToProto(first);
  } else {
    job.set_status(v1::Job::ENDED);
    job.set_end_reason(v1::Job::STOP_AFTER_DATE);
  }

  store_->CreateJob(std::move(job), request.request_id(), std::move(fingerprint),
                    std::move(done));
}

absl::StatusOr<v1::Job> JobService::GetJob(const Identity& caller,
                                           const v1::GetJobRequest& request) {
  RETURN_IF_ERROR(ValidateJobId(request.job_id()));
  ASSIGN_OR_RETURN(v1::Job job, store_->GetJob(caller.name, request.job_id()));
  if (job.status() == v1::Job::DELETED && !request.show_deleted()) {
    return absl::NotFoundError(absl::StrCat(
        "job ", request.job_id(), " was deleted (use show_deleted to see it)"));
  }
  return job;
}

absl::StatusOr<v1::ListJobsResponse> JobService::ListJobs(
    const Identity& caller, const v1::ListJobsRequest& request) {
  if (request.page_size() < 0) return Invalid("page_size", "must be >= 0");
  store::ListJobsQuery query;
  query.owner = caller.name;
  query.show_deleted = request.show_deleted();
  query.page_size = request.page_size() == 0
                        ? kDefaultPageSize
                        : std::min(request.page_size(), kMaxPageSize);
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(query.after,
                     DecodePageToken(request.page_token(), request.show_deleted()));
  }
  ASSIGN_OR_RETURN(store::ListJobsPage page, store_->ListJobs(query));
  v1::ListJobsResponse response;
  for (v1::Job& job : page.jobs) *response.add_jobs() = std::move(job);
  if (page.has_more && response.jobs_size() > 0) {
    response.set_next_page_token(
        EncodePageToken(request.show_deleted(), *response.jobs().rbegin()));
  }
  return response;
}

void JobService::DeleteJob(const Identity& caller,
                           const v1::DeleteJobRequest& request,
                           store::JobCallback done) {
  absl::Status valid = ValidateJobId(request.job_id());
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
              "etag: the job changed since it was read (current etag ",
              job.etag(), ")"));
        }
        const absl::Time now = clock_->Now();
        job.set_status(v1::Job::DELETED);
        *job.mutable_delete_time() = ToProto(now);
        *job.mutable_update_time() = ToProto(now);
        job.clear_next_run();
        return absl::OkStatus();
      },
      std::move(done));
}

}  // namespace timer::domain
