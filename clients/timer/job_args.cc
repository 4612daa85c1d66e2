#include "job_args.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli_time.h"
#include "output.h"
#include "timer/v1/schedule_text.h"
#include "transfer_items.h"

namespace timer::cli {
namespace {

const std::map<std::string, v1::OverlapPolicy> kOverlap = {
    {"skip", v1::SKIP},
    {"buffer_one", v1::BUFFER_ONE},
    {"cancel_previous", v1::CANCEL_PREVIOUS},
    {"allow", v1::ALLOW}};
const std::map<std::string, v1::MissedRunPolicy> kMissed = {{"skip", v1::SKIP_MISSED},
                                                            {"run_once", v1::RUN_ONCE}};

absl::Status SetTime(const std::string& text, const char* option, absl::TimeZone local,
                     google::protobuf::Timestamp* out) {
  absl::StatusOr<absl::Time> t = ParseTimeArg(text, local);
  if (!t.ok())
    return absl::InvalidArgumentError(absl::StrCat(option, ": ", t.status().message()));
  out->set_seconds(absl::ToUnixSeconds(*t));
  out->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(*t - absl::FromUnixSeconds(out->seconds()))));
  return absl::OkStatus();
}

const std::map<std::string, v1::DstGapPolicy> kDstGap = {
    {"run-after", v1::DST_GAP_RUN_AFTER},
    {"skip", v1::DST_GAP_SKIP},
    {"shift", v1::DST_GAP_SHIFT}};
const std::map<std::string, v1::DstRepeatPolicy> kDstRepeat = {
    {"first", v1::DST_REPEAT_FIRST},
    {"last", v1::DST_REPEAT_LAST},
    {"both", v1::DST_REPEAT_BOTH}};

absl::StatusOr<int64_t> DurationArg(const std::string& text, const char* option) {
  if (text == "0") return 0;
  absl::StatusOr<int64_t> seconds = ParseIntervalArg(text);
  if (!seconds.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(option, ": ", seconds.status().message()));
  }
  return *seconds;
}

}  // namespace

absl::StatusOr<v1::CalendarSpec> ParseCalendarSpecArg(absl::string_view text,
                                                      absl::string_view option) {
  v1::CalendarSpec spec;
  const std::map<std::string, std::string* (v1::CalendarSpec::*)()> fields = {
      {"sec", &v1::CalendarSpec::mutable_seconds},
      {"min", &v1::CalendarSpec::mutable_minutes},
      {"hour", &v1::CalendarSpec::mutable_hours},
      {"dom", &v1::CalendarSpec::mutable_days_of_month},
      {"mon", &v1::CalendarSpec::mutable_months},
      {"dow", &v1::CalendarSpec::mutable_days_of_week},
      {"year", &v1::CalendarSpec::mutable_years}};
  std::vector<std::string> seen;
  const std::vector<absl::string_view> parts =
      absl::StrSplit(text, ' ', absl::SkipEmpty());
  if (parts.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(option, ": empty; e.g. 'dow=MON-FRI hour=2'"));
  }
  for (absl::string_view part : parts) {
    const size_t eq = part.find('=');
    const std::string key(part.substr(0, eq));
    const auto it = fields.find(key);
    if (eq == absl::string_view::npos || it == fields.end() || eq + 1 == part.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          option, ": \"", Echo(std::string(part)),
          "\" is not KEY=VALUE with KEY one of sec, min, hour, dom, mon, dow, year"));
    }
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      return absl::InvalidArgumentError(absl::StrCat(option, ": ", key, " given twice"));
    }
    seen.push_back(key);
    *(spec.*(it->second))() = std::string(part.substr(eq + 1));
  }
  return spec;
}

std::string ScheduleText(const v1::Schedule& s) {
  return timer::ScheduleText(s, {.escape = Echo});
}

std::string ProviderNameFromActionUrl(absl::string_view url) {
  absl::string_view path = url;
  if (const size_t scheme = path.find("://"); scheme != absl::string_view::npos) {
    path.remove_prefix(scheme + 3);
    const size_t slash = path.find('/');  // The host ends here.
    path = slash == absl::string_view::npos ? absl::string_view() : path.substr(slash);
  }
  path = path.substr(0, path.find_first_of("?#"));
  const std::vector<absl::string_view> segments =
      absl::StrSplit(path, '/', absl::SkipEmpty());
  if (segments.empty()) return "";
  absl::string_view name = segments.back();
  if (name == "run" && segments.size() >= 2) name = segments[segments.size() - 2];
  return absl::AsciiStrToLower(name);
}

absl::Status ResolveActionUrl(JobArgs* a, const std::vector<std::string>& loaded) {
  if (a->action_url.empty()) return absl::OkStatus();
  const std::string name = ProviderNameFromActionUrl(a->action_url);
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--action-url ", Echo(a->action_url),
        ": no provider name in it (expected .../PROVIDER/run or .../PROVIDER)"));
  }
  if (std::find(loaded.begin(), loaded.end(), name) == loaded.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--action-url ", Echo(a->action_url), ": names provider \"",
                     Echo(name), "\", which timerd has not loaded (loaded: ",
                     loaded.empty() ? "none" : absl::StrJoin(loaded, ", "), ")"));
  }
  if (!a->provider.empty() && a->provider != name) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--action-url ", Echo(a->action_url), ": names provider \"", Echo(name),
        "\" but --action-provider is \"", Echo(a->provider), "\"; give one of them"));
  }
  a->provider = name;
  return absl::OkStatus();
}

std::string UnwrapSeedBody(const std::string& body) {
  const nlohmann::json doc =
      nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_object() && doc.size() == 1 && doc.contains("body") &&
      doc["body"].is_object()) {
    return doc["body"].dump();
  }
  return body;
}

absl::Status FillJob(const JobArgs& a, absl::TimeZone local, v1::Job* job,
                     std::vector<std::string>* paths) {
  const auto touched = [&](const char* path) { paths->push_back(path); };
  // Notifications (issue 24).
  if (a.notify_url == "none") {
    if (!a.notify_on.empty()) {
      return absl::InvalidArgumentError("--notify-on: not with --notify-url none");
    }
    job->clear_notification();
    touched("notification");
  } else if (!a.notify_url.empty()) {
    job->mutable_notification()->set_url(a.notify_url);
    touched("notification.url");
  }
  if (!a.notify_on.empty()) {
    static const std::map<std::string, v1::Notification::Event> kEvents = {
        {"failure", v1::Notification::FAILURE},
        {"recovery", v1::Notification::RECOVERY},
        {"end", v1::Notification::END},
        {"pause", v1::Notification::PAUSE}};
    for (absl::string_view part : absl::StrSplit(a.notify_on, ',', absl::SkipEmpty())) {
      auto it = kEvents.find(absl::AsciiStrToLower(absl::StripAsciiWhitespace(part)));
      if (it == kEvents.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--notify-on: \"", Echo(std::string(part)),
                         "\" is not one of failure, recovery, end, pause"));
      }
      job->mutable_notification()->add_on(it->second);
    }
    touched("notification.on");
  }
  if (!a.name.empty()) job->set_name(a.name), touched("name");
  if (!a.label.empty()) job->set_label(a.label), touched("label");
  v1::Schedule* schedule = job->mutable_schedule();
  if (!a.interval.empty()) {
    absl::StatusOr<int64_t> interval = ParseIntervalArg(a.interval);
    if (!interval.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--interval: ", interval.status().message()));
    }
    schedule->set_interval_seconds(*interval);
    touched("schedule.interval_seconds");
  }
  int kinds =
      !a.interval.empty() + !a.cron.empty() + !a.calendar.empty() + !a.once.empty();
  if (kinds > 1) {
    return absl::InvalidArgumentError(
        "give one of --interval, --cron, --calendar and --once");
  }
  if (!a.calendar_exclude.empty() && a.calendar.empty()) {
    return absl::InvalidArgumentError("--calendar-exclude: only with --calendar");
  }
  if (!a.once.empty() && !a.start.empty()) {
    return absl::InvalidArgumentError(
        "--once TIME is the start: give no --start with it");
  }
  if (!a.cron.empty()) {
    schedule->set_cron(a.cron);
    touched("schedule.cron");
  }
  if (!a.calendar.empty()) {
    for (const std::string& text : a.calendar) {
      absl::StatusOr<v1::CalendarSpec> spec = ParseCalendarSpecArg(text, "--calendar");
      if (!spec.ok()) return spec.status();
      *schedule->mutable_calendar()->add_include() = *std::move(spec);
    }
    for (const std::string& text : a.calendar_exclude) {
      absl::StatusOr<v1::CalendarSpec> spec =
          ParseCalendarSpecArg(text, "--calendar-exclude");
      if (!spec.ok()) return spec.status();
      *schedule->mutable_calendar()->add_exclude() = *std::move(spec);
    }
    touched("schedule.calendar");
  }
  if (!a.once.empty()) {
    if (absl::Status s = SetTime(a.once, "--once", local, schedule->mutable_start());
        !s.ok()) {
      return s;
    }
    schedule->set_once(true);
    touched("schedule.once");
    touched("schedule.start");
  }
  if (!a.tz.empty()) {
    schedule->set_time_zone(a.tz);
    touched("schedule.time_zone");
  }
  if (!a.dst_gap.empty()) {
    const auto it = kDstGap.find(a.dst_gap);
    if (it == kDstGap.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--dst-gap: \"", Echo(a.dst_gap), "\" is not run-after, skip or shift"));
    }
    schedule->set_dst_gap(it->second);
    touched("schedule.dst_gap");
  }
  if (!a.dst_repeat.empty()) {
    const auto it = kDstRepeat.find(a.dst_repeat);
    if (it == kDstRepeat.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--dst-repeat: \"", Echo(a.dst_repeat), "\" is not first, last or both"));
    }
    schedule->set_dst_repeat(it->second);
    touched("schedule.dst_repeat");
  }
  if (!a.jitter.empty()) {
    absl::StatusOr<int64_t> j = DurationArg(a.jitter, "--jitter");
    if (!j.ok()) return j.status();
    schedule->set_jitter_seconds(*j);
    touched("schedule.jitter_seconds");
  }
  if (!a.catch_up_window.empty()) {
    absl::StatusOr<int64_t> w = DurationArg(a.catch_up_window, "--catch-up-window");
    if (!w.ok()) return w.status();
    schedule->set_catch_up_window_seconds(*w);
    touched("schedule.catch_up_window_seconds");
  }
  if (!a.start.empty()) {
    if (absl::Status s = SetTime(a.start, "--start", local, schedule->mutable_start());
        !s.ok()) {
      return s;
    }
    touched("schedule.start");
  }
  if (!a.stop_after_date.empty()) {
    if (absl::Status s = SetTime(a.stop_after_date, "--stop-after-date", local,
                                 schedule->mutable_stop_after_date());
        !s.ok()) {
      return s;
    }
    touched("schedule.stop_after_date");
  }
  if (a.stop_after_runs != 0) {
    schedule->set_stop_after_runs(a.stop_after_runs);
    touched("schedule.stop_after_runs");
  }
  if (!a.provider.empty()) {
    job->mutable_action()->set_provider(a.provider);
    touched("action.provider");
  }
  if (!a.body.empty()) {
    job->mutable_action()->set_body(UnwrapSeedBody(a.body));
    touched("action.body");
  }
  if (!a.overlap.empty()) {
    const auto it = kOverlap.find(a.overlap);
    if (it == kOverlap.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--overlap-policy: unknown policy \"", Echo(a.overlap), "\""));
    }
    job->set_overlap_policy(it->second);
    touched("overlap_policy");
  }
  if (a.max_concurrent != 0) {
    job->set_max_concurrent(a.max_concurrent);
    touched("max_concurrent");
  }
  if (!a.missed.empty()) {
    const auto it = kMissed.find(a.missed);
    if (it == kMissed.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--missed-run-policy: unknown policy \"", Echo(a.missed), "\""));
    }
    job->set_missed_run_policy(it->second);
    touched("missed_run_policy");
  }
  // Retries and pausing: each option its own mask path, so `job update`
  // changes only what it names.
  v1::RetryPolicy* retry = nullptr;
  const auto policy = [&]() {
    if (retry == nullptr) retry = job->mutable_retry_policy();
    return retry;
  };
  if (a.retry_max_attempts != 0) {
    policy()->set_max_attempts(a.retry_max_attempts);
    touched("retry_policy.max_attempts");
  }
  if (!a.retry_backoff.empty()) {
    absl::StatusOr<int64_t> d = DurationArg(a.retry_backoff, "--retry-backoff");
    if (!d.ok()) return d.status();
    policy()->mutable_initial_backoff()->set_seconds(*d);
    touched("retry_policy.initial_backoff");
  }
  if (a.retry_multiplier != 0) {
    policy()->set_multiplier(a.retry_multiplier);
    touched("retry_policy.multiplier");
  }
  if (!a.retry_max_backoff.empty()) {
    absl::StatusOr<int64_t> d = DurationArg(a.retry_max_backoff, "--retry-max-backoff");
    if (!d.ok()) return d.status();
    policy()->mutable_max_backoff()->set_seconds(*d);
    touched("retry_policy.max_backoff");
  }
  if (a.pause_after_failures >= 0) {
    job->set_pause_after_failures(a.pause_after_failures);
    touched("pause_after_failures");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::CreateJobRequest> MakeCreateJobRequest(
    const JobArgs& a, absl::TimeZone local, const std::string& new_request_id) {
  v1::CreateJobRequest request;
  std::vector<std::string> paths;
  if (absl::Status s = FillJob(a, local, request.mutable_job(), &paths); !s.ok())
    return s;
  request.set_request_id(a.request_id.empty() ? new_request_id : a.request_id);
  return request;
}

absl::StatusOr<v1::UpdateJobRequest> MakeUpdateJobRequest(const std::string& job_id,
                                                          const JobArgs& a,
                                                          absl::TimeZone local) {
  v1::UpdateJobRequest request;
  std::vector<std::string> paths;
  if (absl::Status s = FillJob(a, local, request.mutable_job(), &paths); !s.ok())
    return s;
  if (paths.empty()) {
    return absl::InvalidArgumentError("job update: give at least one option to change");
  }
  request.mutable_job()->set_job_id(job_id);
  for (const std::string& p : paths) request.mutable_update_mask()->add_paths(p);
  return request;
}

absl::Status MakeTransferJobArgs(const TransferArgs& t,
                                 const std::string& items_file_text, JobArgs* a,
                                 const std::string& batch_text) {
  TransferSpec spec;
  spec.source_endpoint_id = t.source;
  spec.destination_endpoint_id = t.dest;
  if (!t.items_file.empty()) {
    absl::StatusOr<std::vector<TransferItem>> items =
        ParseItemsFile(items_file_text, absl::StrCat("--items-file ", t.items_file));
    if (!items.ok()) return items.status();
    spec.items = *std::move(items);
  }
  if (!t.batch.empty()) {
    absl::StatusOr<std::vector<TransferItem>> items =
        ParseBatchFile(batch_text, absl::StrCat("--batch ", t.batch));
    if (!items.ok()) return items.status();
    spec.items.insert(spec.items.end(), items->begin(), items->end());
  }
  for (size_t i = 0; i + 2 < t.items.size(); i += 3) {
    absl::StatusOr<bool> recursive = ParseBoolArg(t.items[i + 2], "--item");
    if (!recursive.ok()) return recursive.status();
    spec.items.push_back({t.items[i], t.items[i + 1], *recursive});
  }
  if (spec.items.empty()) {
    return absl::InvalidArgumentError(
        "give at least one --item, or an --items-file or --batch file with items");
  }
  a->provider = "transfer";
  // Without --label, the transfer's label names the job (as the seed does).
  if (a->label.empty()) a->label = a->name;
  spec.label = a->label;
  spec.sync_level = t.sync_level;
  spec.verify_checksum = t.verify_checksum;
  spec.encrypt_data = t.encrypt_data;
  spec.preserve_timestamp = t.preserve_timestamp;
  spec.delete_destination_extra = t.delete_destination_extra;
  spec.skip_source_errors = t.skip_source_errors;
  spec.fail_on_quota_errors = t.fail_on_quota_errors;
  spec.recursive_symlinks = t.recursive_symlinks;
  spec.filter_rules = t.filter_rules;
  absl::StatusOr<std::string> body = TransferBodyJson(spec);
  if (!body.ok()) return body.status();
  a->body = *std::move(body);
  return absl::OkStatus();
}

absl::Status MakeHttpJobArgs(const HttpArgs& h, JobArgs* a) {
  nlohmann::json body = {{"url", h.url}, {"method", absl::AsciiStrToUpper(h.method)}};
  if (!h.headers.empty()) {
    nlohmann::json headers = nlohmann::json::object();
    for (const std::string& line : h.headers) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos || colon == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--header ", Echo(line), ": expected NAME:VALUE"));
      }
      std::string value = line.substr(colon + 1);
      absl::StripLeadingAsciiWhitespace(&value);
      headers[line.substr(0, colon)] = value;
    }
    body["headers"] = std::move(headers);
  }
  if (h.body_given) body["body"] = h.body;
  if (h.json_given) {
    nlohmann::json j = nlohmann::json::parse(h.json, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::InvalidArgumentError("--json: not valid JSON");
    body["json"] = std::move(j);
  }
  if (!h.credential.empty()) body["credential"] = h.credential;
  if (!h.timeout.empty()) {
    absl::StatusOr<int64_t> seconds = DurationArg(h.timeout, "--timeout");
    if (!seconds.ok()) return seconds.status();
    if (*seconds <= 0) return absl::InvalidArgumentError("--timeout: must be > 0");
    body["timeout_seconds"] = *seconds;
  }
  a->provider = "http";
  a->body = body.dump();
  return absl::OkStatus();
}

std::string NewRequestId() {
  std::random_device rd;
  std::uniform_int_distribution<uint32_t> dist;
  uint32_t w[4] = {dist(rd), dist(rd), dist(rd), dist(rd)};
  w[1] = (w[1] & 0xffff0fffu) | 0x00004000u;  // version 4
  w[2] = (w[2] & 0x3fffffffu) | 0x80000000u;  // RFC 4122 variant
  return absl::StrFormat("%08x-%04x-%04x-%04x-%04x%08x", w[0], w[1] >> 16, w[1] & 0xffff,
                         w[2] >> 16, w[2] & 0xffff, w[3]);
}

}  // namespace timer::cli
