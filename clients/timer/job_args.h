// How the options of `timer job submit`, `job update` and `job transfer`
// become a CreateJobRequest or UpdateJobRequest: the flag-to-proto mapping,
// apart from parsing (CLI11 fills JobArgs and TransferArgs) and from calling
// timerd (the handlers in job_commands.cc). Files are read by the caller, so
// everything here is a pure function of its arguments; thread-safe.
//
// Compatibility with globus-timer scripts (the seed CLI):
//   --action-url URL  names the provider by URL. Globus action URLs end in
//                     /<provider>/run, e.g.
//                     https://actions.automate.globus.org/transfer/transfer/run
//                     names `transfer`; a URL (or plain word) whose last path
//                     segment is not `run` names that segment. The name must
//                     be one of the server's loaded providers.
//   --action-body '{"body": {...}}'  the seed CLI sent the provider's input
//                     wrapped in "body"; an object whose only key is "body",
//                     holding an object, is unwrapped to that object.
//   --scope           accepted and ignored (timerd needs no Globus Auth scope).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "timer/v1/timer.pb.h"
#include "transfer_items.h"

namespace timer::cli {

// The job options shared by `job submit`, `job update` and `job transfer`.
// Empty or zero: not given.
struct JobArgs {
  std::string name, label, interval, start, stop_after_date;
  int64_t stop_after_runs = 0;
  std::string provider;    // --action-provider
  std::string action_url;  // --action-url, resolved into `provider` first.
  std::string body;        // --action-body, or the text of --action-file.
  std::string body_file;   // --action-file (read by the caller into `body`).
  std::string scope;       // --scope: ignored.
  std::string overlap;     // skip, buffer_one, cancel_previous, allow
  int max_concurrent = 0;
  std::string missed;      // skip, run_once
  std::string request_id;  // submit only; empty: a new UUID.
  // Calendar schedules (one kind of --interval, --cron, --calendar, --once).
  std::string cron;                           // --cron EXPR
  std::string tz;                             // --tz ZONE
  std::vector<std::string> calendar;          // --calendar SPEC (repeatable: union)
  std::vector<std::string> calendar_exclude;  // --calendar-exclude SPEC
  std::string once;                           // --once TIME
  std::string jitter;                         // --jitter DURATION
  std::string dst_gap;                        // run-after, skip, shift
  std::string dst_repeat;                     // first, last, both
  std::string catch_up_window;                // --catch-up-window DURATION
  // Notifications (issue 24): --notify-url URL ("none" removes them),
  // --notify-on failure,recovery,end,pause.
  std::string notify_url;
  std::string notify_on;
  // Retries and pausing (docs/API.md, "Retries"); 0 / empty: not given.
  int retry_max_attempts = 0;     // --retry-max-attempts N (1: no retry)
  std::string retry_backoff;      // --retry-backoff DURATION (the first wait)
  double retry_multiplier = 0;    // --retry-multiplier X
  std::string retry_max_backoff;  // --retry-max-backoff DURATION
  int pause_after_failures = -1;  // --pause-after-failures N (0: never); -1: not given
};

// The one-line calendar spec of --calendar and --calendar-exclude: fields
// KEY=VALUE separated by spaces, keys sec, min, hour, dom, mon, dow, year
// (each at most once), values as in a cron field ("0", "0,30", "9-17",
// "*/15", "MON-FRI", "L"). A field not given: "0" for sec/min/hour in an
// include, every value otherwise.
//   "dow=MON-FRI hour=2"            every weekday at 02:00:00
//   "mon=12 dom=24-26"              (as an exclusion) those whole days
//   "dom=L hour=23 min=30"          the last day of each month, 23:30
absl::StatusOr<v1::CalendarSpec> ParseCalendarSpecArg(absl::string_view text,
                                                      absl::string_view option);

// The schedule in words, as `timer job status` shows it: "every 3600s",
// "once at 2026-12-24T18:00:00Z", "cron '0 2 * * *' in Europe/Berlin",
// "calendar 'hour=2 dow=MON-FRI' except 'dom=24-26 mon=12' in UTC": the
// shared rendering (timer/v1/schedule_text.h), with every piece of the
// schedule's own text passed through Echo (terminal-safe, bounded).
std::string ScheduleText(const v1::Schedule& s);

// The options of `job transfer` that make the transfer provider's body.
struct TransferArgs {
  std::string source, dest, items_file, sync_level;
  std::string batch;               // --batch FILE ('-': stdin), read by the caller.
  std::vector<std::string> items;  // Flat: SRC DST RECURSIVE, SRC DST RECURSIVE, ...
  bool verify_checksum = false, encrypt_data = false, preserve_timestamp = false;
  bool delete_destination_extra = false, skip_source_errors = false,
       fail_on_quota_errors = false;
  std::string recursive_symlinks;  // ignore, keep, copy; empty: not given.
  // --include and --exclude in command-line order (the first match wins).
  std::vector<FilterRuleArg> filter_rules;
};

// The options of `job http` that make the http provider's body.
struct HttpArgs {
  std::string url, method = "POST";
  std::vector<std::string> headers;  // "Name: value" or "Name:value"
  std::string body, json, credential, timeout;
  bool body_given = false, json_given = false;
};

// Sets a->provider to "http" and a->body to the body `h` describes.
// INVALID_ARGUMENT naming the option (--header, --json, --timeout).
absl::Status MakeHttpJobArgs(const HttpArgs& h, JobArgs* a);

// The provider name an action URL names (see above), lower-cased; empty
// when the URL has no path segment.
std::string ProviderNameFromActionUrl(absl::string_view url);

// Sets a->provider from a->action_url when one is given: the name must be in
// `loaded` (the server's providers), and agree with --action-provider if
// that is given too. INVALID_ARGUMENT naming --action-url otherwise. Without
// --action-url, does nothing.
absl::Status ResolveActionUrl(JobArgs* a, const std::vector<std::string>& loaded);

// `body` without the seed CLI's {"body": {...}} wrapper; any other text
// (including JSON that does not parse) unchanged.
std::string UnwrapSeedBody(const std::string& body);

// Copies the options given in `a` into `job` and appends each one's field
// path to `paths` (the update mask, for `job update`). INVALID_ARGUMENT
// naming the option when a value does not parse. Times without an offset
// are in `local`.
absl::Status FillJob(const JobArgs& a, absl::TimeZone local, v1::Job* job,
                     std::vector<std::string>* paths);

// `job submit`: the job from `a`, with a->request_id or else `new_request_id`
// (a request id makes a retried submit create the job once).
absl::StatusOr<v1::CreateJobRequest> MakeCreateJobRequest(
    const JobArgs& a, absl::TimeZone local, const std::string& new_request_id);

// `job update JOB_ID`: only the options given, and the mask naming them;
// INVALID_ARGUMENT when none is given.
absl::StatusOr<v1::UpdateJobRequest> MakeUpdateJobRequest(const std::string& job_id,
                                                          const JobArgs& a,
                                                          absl::TimeZone local);

// `job transfer`: turns `a` into a transfer job's options: provider
// `transfer`, the label defaulting to the name (as the seed does), and the
// body built from `t`, `items_file_text` (the text of --items-file, if one
// was given) and `batch_text` (of --batch). Paths go into the body as given
// ("/~/file1.txt" included): the provider resolves them.
absl::Status MakeTransferJobArgs(const TransferArgs& t,
                                 const std::string& items_file_text, JobArgs* a,
                                 const std::string& batch_text = "");

// A random RFC 4122 version 4 UUID.
std::string NewRequestId();

}  // namespace timer::cli
