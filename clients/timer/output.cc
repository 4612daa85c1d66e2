#include "output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli_time.h"
#include "job_args.h"

namespace timer::cli {

namespace {

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string TimeText(const google::protobuf::Timestamp& t, bool present, absl::Time now) {
  if (!present) return "-";
  const absl::Time at = FromProto(t);
  return absl::StrCat(IsoTime(at), " (", RelativeHint(at, now), ")");
}

std::string ResultText(const v1::JobResult& r) {
  std::string s = absl::AsciiStrToUpper(v1::JobResult::Status_Name(r.status()));
  absl::StrAppend(&s, " (run ", r.run_number(), ")");
  if (!r.error().empty()) absl::StrAppend(&s, ": ", Printable(r.error()));
  return s;
}

void Row(std::ostream& out, const char* key, const std::string& value) {
  out << key << std::string(14 - std::min<size_t>(13, std::string(key).size()), ' ')
      << value << "\n";
}

// A scalar of a provider's description as text.
std::string ScalarText(const nlohmann::json& v) {
  if (v.is_string()) return Printable(v.get<std::string>());
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return Printable(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// What the provider tells the caller of its configuration: its endpoints
// (transfer) one block each, anything else as indented JSON.
void PrintProviderConfiguration(const std::string& json, std::ostream& out) {
  const nlohmann::json doc = nlohmann::json::parse(json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || doc.empty()) return;
  const auto endpoints = doc.find("endpoints");
  if (endpoints != doc.end() && endpoints->is_array() && doc.size() == 1) {
    if (endpoints->empty()) {
      out << "Endpoints:    none that you may use\n";
      return;
    }
    out << "Endpoints you may use:\n";
    for (const nlohmann::json& e : *endpoints) {
      if (!e.is_object()) continue;
      out << "  " << ScalarText(e.value("id", nlohmann::json(""))) << " ("
          << ScalarText(e.value("type", nlohmann::json("?"))) << ")";
      if (e.contains("display_name")) out << " " << ScalarText(e["display_name"]);
      out << "\n   ";
      for (const auto& [k, v] : e.items()) {
        if (k == "id" || k == "type" || k == "display_name") continue;
        out << " " << Printable(k) << ": " << ScalarText(v);
      }
      out << "\n";
    }
    return;
  }
  out << "Configuration:\n"
      << Printable(doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace),
                   /*keep_newlines=*/true)
      << "\n";
}

std::string ErrorClassText(v1::ErrorClass c) {
  switch (c) {
    case v1::ERROR_CLASS_TRANSIENT:
      return "transient";
    case v1::ERROR_CLASS_NEEDS_ATTENTION:
      return "needs attention";
    default:
      return "permanent";
  }
}

std::string InactiveText(const v1::InactiveReason& why) {
  std::string s = why.cause() == v1::InactiveReason::CONSECUTIVE_FAILURES
                      ? "after failures"
                      : "by user";
  if (!why.detail().empty()) absl::StrAppend(&s, ": ", Printable(why.detail()));
  return s;
}

std::string RetryText(const v1::RetryPolicy& p) {
  if (p.max_attempts() == 0) return "the server's default";
  if (p.max_attempts() == 1) return "none (1 attempt)";
  std::string s =
      absl::StrCat("up to ", p.max_attempts(), " attempts on transient errors");
  if (p.has_initial_backoff()) {
    absl::StrAppend(&s, ", backoff ", FormatSeconds(p.initial_backoff().seconds()));
  } else {
    // timerd's default: 10s, less on an interval too short for it.
    absl::StrAppend(&s, ", backoff 10s (less on short intervals)");
  }
  absl::StrAppend(&s, " x", p.has_multiplier() ? p.multiplier() : 2.0);
  absl::StrAppend(&s, " up to ",
                  FormatSeconds(p.has_max_backoff() ? p.max_backoff().seconds() : 600));
  return s;
}

}  // namespace

void PrintJson(const google::protobuf::Message& message, std::ostream& out) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.add_whitespace = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  out << json;
  if (json.empty() || json.back() != '\n') out << "\n";
}

void PrintJsonLine(const google::protobuf::Message& message, std::ostream& out) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  out << json << "\n";
}

void PrintEventLine(const v1::JobEvent& event, std::ostream& out) {
  const v1::Job& job = event.job();
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                    absl::FromUnixSeconds(event.event_time().seconds()),
                                    absl::UTCTimeZone()),
                   "  #", event.sequence(), "  ", v1::JobEvent::Type_Name(event.type()));
  if (!job.job_id().empty()) {
    absl::StrAppend(&line, "  ", Printable(job.job_id()));
    if (!job.name().empty()) absl::StrAppend(&line, " (", Printable(job.name()), ")");
    absl::StrAppend(&line, "  ", StatusText(job));
  }
  if (event.has_result()) {
    const v1::JobResult& r = event.result();
    absl::StrAppend(&line, "  run ", r.run_number(), " ",
                    v1::JobResult::Status_Name(r.status()));
    if (!r.error().empty()) absl::StrAppend(&line, ": ", Printable(r.error()));
    if (r.has_next_attempt_time()) {
      absl::StrAppend(&line, "  (attempt ", r.attempts_size(), " failed; next at ",
                      IsoTime(FromProto(r.next_attempt_time())), ")");
    }
  }
  if (event.type() == v1::JobEvent::PAUSED && job.has_inactive_reason()) {
    absl::StrAppend(&line, "  ", InactiveText(job.inactive_reason()));
  }
  if (event.type() == v1::JobEvent::RESET) {
    absl::StrAppend(&line, "  (events were missed; current state follows)");
  }
  out << line << "\n";
}

std::string StatusText(const v1::Job& job) {
  std::string s = absl::AsciiStrToLower(v1::Job::Status_Name(job.status()));
  if (job.status() == v1::Job::ENDED &&
      job.end_reason() != v1::Job::END_REASON_UNSPECIFIED) {
    absl::StrAppend(
        &s, " (", absl::AsciiStrToLower(v1::Job::EndReason_Name(job.end_reason())), ")");
  }
  return s;
}

void PrintJobTable(const v1::Job& job, bool verbose, absl::Time now, std::ostream& out) {
  const v1::Schedule& s = job.schedule();
  Row(out, "Job ID:", Printable(job.job_id()));
  Row(out, "Name:", job.name().empty() ? "-" : Printable(job.name()));
  if (!job.label().empty()) Row(out, "Label:", Printable(job.label()));
  Row(out, "Status:", StatusText(job));
  if (job.has_inactive_reason()) Row(out, "Paused:", InactiveText(job.inactive_reason()));
  Row(out, "Provider:", Printable(job.action().provider()));
  // Notifications (issue 24).
  if (job.has_notification() && !job.notification().url().empty()) {
    std::vector<std::string> on;
    for (int e : job.notification().on()) {
      on.push_back(absl::AsciiStrToLower(
          v1::Notification::Event_Name(static_cast<v1::Notification::Event>(e))));
    }
    Row(out, "Notify:",
        absl::StrCat(Printable(job.notification().url()), " on ",
                     on.empty() ? "failure" : absl::StrJoin(on, ",")));
  }
  if (s.has_interval_seconds() || s.kind_case() == v1::Schedule::KIND_NOT_SET) {
    Row(out, "Interval:",
        absl::StrCat(s.interval_seconds(), "s (", FormatSeconds(s.interval_seconds()),
                     ")"));
  } else {
    Row(out, "Schedule:", ScheduleText(s));
    if (s.has_cron() || s.has_calendar()) {
      Row(out, "Time zone:", s.time_zone().empty() ? "UTC" : Printable(s.time_zone()));
      if (s.dst_gap() != v1::DST_GAP_POLICY_UNSPECIFIED ||
          s.dst_repeat() != v1::DST_REPEAT_POLICY_UNSPECIFIED) {
        Row(out, "DST:",
            absl::StrCat(
                "gap ", absl::AsciiStrToLower(v1::DstGapPolicy_Name(s.dst_gap())),
                ", repeat ",
                absl::AsciiStrToLower(v1::DstRepeatPolicy_Name(s.dst_repeat()))));
      }
    }
  }
  if (s.jitter_seconds() > 0) Row(out, "Jitter:", FormatSeconds(s.jitter_seconds()));
  if (s.catch_up_window_seconds() > 0) {
    Row(out, "Catch-up window:", FormatSeconds(s.catch_up_window_seconds()));
  }
  Row(out, "Start:", TimeText(s.start(), s.has_start(), now));
  if (s.has_stop_after_runs())
    Row(out, "Stop after:", absl::StrCat(s.stop_after_runs(), " runs"));
  if (s.has_stop_after_date()) {
    Row(out, "Stop at:", TimeText(s.stop_after_date(), true, now));
  }
  Row(out, "Next run:", TimeText(job.next_run(), job.has_next_run(), now));
  Row(out, "Last run:", TimeText(job.last_run(), job.has_last_run(), now));
  std::string runs = absl::StrCat(job.n_runs(), " (", job.n_errors(), " errors");
  if (job.n_skipped() > 0) absl::StrAppend(&runs, ", ", job.n_skipped(), " skipped");
  Row(out, "Runs:", runs + ")");
  if (job.has_retry_policy()) Row(out, "Retries:", RetryText(job.retry_policy()));
  if (job.pause_after_failures() > 0) {
    Row(out, "Pause after:",
        absl::StrCat(job.pause_after_failures(), " consecutive failures (",
                     job.consecutive_failures(), " so far)"));
  } else if (job.consecutive_failures() > 0) {
    Row(out, "Failures:", absl::StrCat(job.consecutive_failures(), " in a row"));
  }
  Row(out, "Last result:", job.results_size() > 0 ? ResultText(job.results(0)) : "-");
  Row(out, "Created:", TimeText(job.create_time(), job.has_create_time(), now));
  if (job.has_delete_time()) Row(out, "Deleted:", TimeText(job.delete_time(), true, now));
  if (verbose) {
    Row(out, "Owner:", Printable(job.owner()));
    Row(out,
        "Overlap:", absl::AsciiStrToLower(v1::OverlapPolicy_Name(job.overlap_policy())));
    Row(out, "Missed runs:",
        absl::AsciiStrToLower(v1::MissedRunPolicy_Name(job.missed_run_policy())));
    Row(out, "Action body:", Printable(job.action().body()));
    for (const v1::JobResult& r : job.results()) {
      out << "  - " << ResultText(r) << "\n";
      out << "    scheduled " << IsoTime(FromProto(r.scheduled_time()));
      if (r.has_start_time()) out << ", started " << IsoTime(FromProto(r.start_time()));
      if (r.has_end_time()) out << ", ended " << IsoTime(FromProto(r.end_time()));
      out << "\n";
      if (!r.action_id().empty())
        out << "    action " << Printable(r.action_id()) << "\n";
      if (!r.details().empty()) out << "    details " << Printable(r.details()) << "\n";
    }
  }
}

void PrintJobsTable(const std::vector<v1::Job>& jobs, bool verbose, absl::Time now,
                    std::ostream& out) {
  if (verbose) {
    for (size_t i = 0; i < jobs.size(); ++i) {
      if (i > 0) out << "\n";
      PrintJobTable(jobs[i], true, now, out);
    }
    return;
  }
  using Line = std::array<std::string, 6>;
  std::vector<Line> lines;
  // Times only: a listing's jobs come without their results (BASIC view).
  lines.push_back(Line{"JOB ID", "NAME", "STATUS", "INTERVAL", "NEXT RUN", "LAST RUN"});
  for (const v1::Job& job : jobs) {
    lines.push_back(Line{Printable(job.job_id()),
                         job.name().empty() ? "-" : Printable(job.name()),
                         StatusText(job),
                         job.schedule().has_interval_seconds()
                             ? FormatSeconds(job.schedule().interval_seconds())
                             : ScheduleText(job.schedule()),
                         job.has_next_run() ? IsoTime(FromProto(job.next_run())) : "-",
                         job.has_last_run() ? IsoTime(FromProto(job.last_run())) : "-"});
  }
  size_t width[6] = {};
  for (const Line& l : lines) {
    for (int c = 0; c < 6; ++c) width[c] = std::max(width[c], l[c].size());
  }
  for (const Line& l : lines) {
    std::string row;
    for (int c = 0; c < 6; ++c) {
      row += l[c];
      if (c < 5) row += std::string(width[c] - l[c].size() + 2, ' ');
    }
    while (!row.empty() && row.back() == ' ') row.pop_back();
    out << row << "\n";
  }
}

void PrintResultsTable(const std::vector<v1::JobResult>& results, bool verbose,
                       std::ostream& out) {
  if (results.empty()) {
    out << "No results.\n";
    return;
  }
  using Line = std::array<std::string, 5>;
  std::vector<Line> lines;
  lines.push_back(Line{"RUN", "STATUS", "SCHEDULED", "STARTED", "ENDED"});
  for (const v1::JobResult& r : results) {
    lines.push_back(Line{absl::StrCat(r.run_number(), r.manual() ? " (now)" : "",
                                      r.backfill() ? " (backfill)" : ""),
                         absl::AsciiStrToLower(v1::JobResult::Status_Name(r.status())),
                         IsoTime(FromProto(r.scheduled_time())),
                         r.has_start_time() ? IsoTime(FromProto(r.start_time())) : "-",
                         r.has_end_time() ? IsoTime(FromProto(r.end_time())) : "-"});
  }
  size_t width[5] = {};
  for (const Line& l : lines) {
    for (int c = 0; c < 5; ++c) width[c] = std::max(width[c], l[c].size());
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string row;
    for (int c = 0; c < 5; ++c) {
      row += lines[i][c];
      if (c < 4) row += std::string(width[c] - lines[i][c].size() + 2, ' ');
    }
    while (!row.empty() && row.back() == ' ') row.pop_back();
    out << row << "\n";
    if (i == 0) continue;
    const v1::JobResult& r = results[i - 1];
    if (!r.error().empty()) {
      out << "    error: " << Printable(r.error());
      if (r.error_class() != v1::ERROR_CLASS_UNSPECIFIED) {
        out << " (" << ErrorClassText(r.error_class()) << ")";
      }
      out << "\n";
    }
    if (r.has_next_attempt_time()) {
      out << "    next attempt: " << IsoTime(FromProto(r.next_attempt_time())) << "\n";
    }
    if (!verbose && r.attempts_size() > 1) {
      out << "    attempts: " << r.attempts_size() << " (-v lists them)\n";
    }
    if (verbose) {
      for (const v1::RunAttempt& a : r.attempts()) {
        out << "    attempt " << a.attempt() << ": "
            << (a.has_start_time() ? IsoTime(FromProto(a.start_time())) : "-") << " - "
            << (a.has_end_time() ? IsoTime(FromProto(a.end_time())) : "running");
        if (!a.error().empty()) {
          out << "  failed";
          if (a.error_class() != v1::ERROR_CLASS_UNSPECIFIED) {
            out << " (" << ErrorClassText(a.error_class()) << ")";
          }
          out << ": " << Printable(a.error());
        } else if (a.has_end_time()) {
          out << "  ok";
        }
        out << "\n";
      }
    }
    if (verbose && !r.action_id().empty()) {
      out << "    action: " << Printable(r.action_id()) << "\n";
    }
    if (verbose && !r.details().empty()) {
      out << "    details: " << Printable(r.details()) << "\n";
    }
  }
}

void PrintProvider(const v1::ActionProvider& p, std::ostream& out) {
  Row(out, "Name:", Printable(p.name()));
  Row(out, "Version:", Printable(p.version()));
  Row(out, "ABI:", Printable(p.abi_version()));
  Row(out, "Description:", Printable(p.description()));
  out << "Input schema:\n" << Printable(p.input_schema(), /*keep_newlines=*/true) << "\n";
  if (!p.configuration().empty()) PrintProviderConfiguration(p.configuration(), out);
}

void PrintProvidersTable(const v1::ListActionProvidersResponse& providers,
                         std::ostream& out) {
  if (providers.action_providers_size() == 0) out << "No action providers are loaded.\n";
  for (const v1::ActionProvider& p : providers.action_providers()) {
    out << Printable(p.name()) << "  " << Printable(p.version()) << "  "
        << Printable(p.description()) << "\n";
  }
}

void PrintWhoAmI(const v1::WhoAmIResponse& who, const std::string& server,
                 std::ostream& out) {
  out << "Identity:     " << Printable(who.identity()) << "\n"
      << "Auth method:  " << Printable(who.auth_method()) << "\n"
      << "Expires:      "
      << (who.has_expire_time()
              ? absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                 absl::FromUnixSeconds(who.expire_time().seconds()),
                                 absl::UTCTimeZone())
              : std::string("never"))
      << "\n"
      << "Server:       " << Printable(server) << "\n";
}

namespace {
std::string Disposition(v1::PreviewEntry::Disposition d) {
  switch (d) {
    case v1::PreviewEntry::FIRES:
      return "";
    case v1::PreviewEntry::PAUSED:
      return "  [paused]";
    case v1::PreviewEntry::STOPPED_BY_RUNS:
      return "  [removed: stop_after_runs]";
    case v1::PreviewEntry::STOPPED_BY_DATE:
      return "  [removed: stop_after_date]";
    case v1::PreviewEntry::MISSED:
      return "  [missed: older than the catch-up window]";
    default:
      return "";
  }
}
}  // namespace

void PrintPreview(const v1::PreviewScheduleResponse& preview, std::ostream& out) {
  if (!preview.description().empty()) out << Printable(preview.description()) << "\n";
  for (const v1::PreviewEntry& e : preview.entries()) {
    std::string line = IsoTime(FromProto(e.fire_time()));
    if (e.fire_time().seconds() != e.nominal_time().seconds() ||
        e.fire_time().nanos() != e.nominal_time().nanos()) {
      absl::StrAppend(&line, " (slot ", IsoTime(FromProto(e.nominal_time())), ")");
    }
    absl::StrAppend(&line, Disposition(e.disposition()));
    out << "  " << line << "\n";
    if (!e.why().empty()) out << "      " << Printable(e.why()) << "\n";
  }
  if (preview.ended()) {
    out << "  ended: " << Printable(preview.end_reason()) << "\n";
  } else if (preview.entries_size() == 0) {
    out << "  no fires\n";
  }
}

void PrintFireChange(const v1::PreviewScheduleResponse& before,
                     const v1::PreviewScheduleResponse& after, std::ostream& out) {
  const auto fires = [](const v1::PreviewScheduleResponse& p) {
    std::vector<std::string> v;
    for (const v1::PreviewEntry& e : p.entries()) {
      v.push_back(
          absl::StrCat(IsoTime(FromProto(e.fire_time())), Disposition(e.disposition())));
    }
    if (p.ended()) v.push_back(absl::StrCat("ended: ", Printable(p.end_reason())));
    return v;
  };
  const std::vector<std::string> b = fires(before), a = fires(after);
  if (b == a) {
    out << "  unchanged";
    for (const std::string& f : a) out << "\n    " << f;
    out << "\n";
    return;
  }
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    out << "  " << (i < b.size() ? b[i] : "-") << "  ->  " << (i < a.size() ? a[i] : "-")
        << "\n";
  }
}

}  // namespace timer::cli
