#include "job_commands.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "cli_time.h"
#include "job_args.h"
#include "output.h"
#include "provider_commands.h"

namespace timer::cli {
namespace {

// The options of one job command; handlers share it with CLI11.
struct JobCommandState {
  std::string job_id;
  bool verbose = false;
  bool show_deleted = false;
  std::string view;  // --view of `list`: "basic", "full" or empty.
  JobArgs job;
  TransferArgs transfer;
  HttpArgs http;  // `job http` (issue 24)
  std::string run_request_id;
  int count = 10;          // -n of `job next` and `schedule preview`
  std::string from;        // --from
  std::string to;          // --to of `job backfill`
  int max_runs = 0;        // --max-runs of `job backfill`
  std::string expression;  // EXPR of `schedule preview`
};

void PrintJob(const Globals& g, const v1::Job& job, bool verbose) {
  if (g.json()) {
    PrintJson(job, std::cout);
  } else {
    PrintJobTable(job, verbose, absl::Now(), std::cout);
  }
}

template <typename Request>
using JobMethod = grpc::Status (v1::TimerService::Stub::*)(grpc::ClientContext*,
                                                           const Request&, v1::Job*);

// Calls `method` with `request` and prints the job it returns.
template <typename Request>
absl::Status CallAndPrintJob(const Globals& g, const Client& client,
                             JobMethod<Request> method, const Request& request) {
  v1::Job job;
  if (absl::Status s = client.Call(method, request, &job); !s.ok()) return s;
  PrintJob(g, job, /*verbose=*/false);
  return absl::OkStatus();
}

// Reads --action-file into a.body and maps --action-url to a provider
// (asking `client` which are loaded).
absl::Status ResolveActionOptions(const Client& client, JobArgs& a) {
  if (!a.body_file.empty()) {
    absl::StatusOr<std::string> body =
        ReadFileArg(a.body_file, "--action-file", /*allow_stdin=*/true);
    if (!body.ok()) return body.status();
    a.body = *std::move(body);
  }
  if (a.action_url.empty()) return absl::OkStatus();
  absl::StatusOr<v1::ListActionProvidersResponse> providers = ListAllProviders(client);
  if (!providers.ok()) return providers.status();
  std::vector<std::string> loaded;
  for (const v1::ActionProvider& p : providers->action_providers())
    loaded.push_back(p.name());
  return ResolveActionUrl(&a, loaded);
}

// submit and update: resolves the action options, builds the request with
// `make(a)` (a StatusOr<Request>) and prints the job timerd returns.
template <typename Request, typename Make>
absl::Status SendJob(Globals& g, JobArgs a, Make make, JobMethod<Request> method) {
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  if (absl::Status s = ResolveActionOptions(*client, a); !s.ok()) return s;
  absl::StatusOr<Request> request = make(a);
  if (!request.ok()) return request.status();
  return CallAndPrintJob(g, *client, method, *request);
}

absl::Status Submit(Globals& g, JobArgs a) {
  return SendJob(
      g, std::move(a),
      [](const JobArgs& args) {
        return MakeCreateJobRequest(args, absl::LocalTimeZone(), NewRequestId());
      },
      &v1::TimerService::Stub::CreateJob);
}

// The next `n` fires of job `job_id` (empty on error: the update itself
// reports what went wrong).
v1::PreviewScheduleResponse NextFires(const Client& client, const std::string& job_id,
                                      int n) {
  v1::PreviewScheduleRequest request;
  request.set_job_id(job_id);
  request.set_count(n);
  v1::PreviewScheduleResponse response;
  if (!client.Call(&v1::TimerService::Stub::PreviewSchedule, request, &response).ok()) {
    response.Clear();
  }
  return response;
}

// `job update` prints the job, then how its next fires changed.
absl::Status Update(Globals& g, const std::string& job_id, JobArgs a) {
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  if (absl::Status s = ResolveActionOptions(*client, a); !s.ok()) return s;
  absl::StatusOr<v1::UpdateJobRequest> request =
      MakeUpdateJobRequest(job_id, a, absl::LocalTimeZone());
  if (!request.ok()) return request.status();
  constexpr int kShown = 3;
  const v1::PreviewScheduleResponse before = NextFires(*client, job_id, kShown);
  v1::Job job;
  if (absl::Status s = client->Call(&v1::TimerService::Stub::UpdateJob, *request, &job);
      !s.ok()) {
    return s;
  }
  const v1::PreviewScheduleResponse after = NextFires(*client, job_id, kShown);
  if (g.json()) {
    PrintJson(job, std::cout);
    return absl::OkStatus();
  }
  PrintJobTable(job, /*verbose=*/false, absl::Now(), std::cout);
  std::cout << "Next fires:\n";
  PrintFireChange(before, after, std::cout);
  return absl::OkStatus();
}

// `job next JOB_ID` and `schedule preview`: prints a preview.
absl::Status Preview(Globals& g, v1::PreviewScheduleRequest request,
                     const std::string& from) {
  if (!from.empty()) {
    absl::StatusOr<absl::Time> t = ParseTimeArg(from, absl::LocalTimeZone());
    if (!t.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--from: ", t.status().message()));
    }
    request.mutable_from()->set_seconds(absl::ToUnixSeconds(*t));
  }
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  v1::PreviewScheduleResponse response;
  if (absl::Status s =
          client->Call(&v1::TimerService::Stub::PreviewSchedule, request, &response);
      !s.ok()) {
    return s;
  }
  if (g.json()) {
    PrintJson(response, std::cout);
  } else {
    PrintPreview(response, std::cout);
  }
  return absl::OkStatus();
}

absl::Status Backfill(Globals& g, const std::string& job_id, const std::string& from,
                      const std::string& to, int max_runs,
                      const std::string& request_id) {
  v1::BackfillJobRequest request;
  request.set_job_id(job_id);
  for (auto [text, option, field] :
       {std::tuple{&from, "--from", request.mutable_start_time()},
        std::tuple{&to, "--to", request.mutable_end_time()}}) {
    absl::StatusOr<absl::Time> t = ParseTimeArg(*text, absl::LocalTimeZone());
    if (!t.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(option, ": ", t.status().message()));
    }
    field->set_seconds(absl::ToUnixSeconds(*t));
  }
  request.set_max_runs(max_runs);
  request.set_request_id(request_id.empty() ? NewRequestId() : request_id);
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  v1::BackfillJobResponse response;
  if (absl::Status s =
          client->Call(&v1::TimerService::Stub::BackfillJob, request, &response);
      !s.ok()) {
    return s;
  }
  if (g.json()) {
    PrintJson(response, std::cout);
    return absl::OkStatus();
  }
  if (response.results().empty()) {
    std::cout << "The range holds no slot of the job's schedule: nothing to run.\n";
    return absl::OkStatus();
  }
  std::cout << "Recorded " << response.results_size() << " backfill run"
            << (response.results_size() == 1 ? "" : "s") << " of job "
            << response.job().job_id()
            << "; they start one after another as its overlap policy allows.\n"
            << "Follow them with: timer job results " << response.job().job_id()
            << "\n\n";
  PrintResultsTable({response.results().begin(), response.results().end()}, false,
                    std::cout);
  return absl::OkStatus();
}

absl::Status Transfer(Globals& g, JobArgs a, const TransferArgs& t) {
  std::string items_text;
  if (!t.items_file.empty()) {
    absl::StatusOr<std::string> text = ReadFileArg(t.items_file, "--items-file");
    if (!text.ok()) return text.status();
    items_text = *std::move(text);
  }
  std::string batch_text;
  if (!t.batch.empty()) {
    absl::StatusOr<std::string> text =
        ReadFileArg(t.batch, "--batch", /*allow_stdin=*/true);
    if (!text.ok()) return text.status();
    batch_text = *std::move(text);
  }
  if (absl::Status s = MakeTransferJobArgs(t, items_text, &a, batch_text); !s.ok())
    return s;
  return Submit(g, std::move(a));
}

// `job http` (issue 24): an http provider body from the options.
absl::Status Http(Globals& g, JobArgs a, const HttpArgs& h) {
  if (absl::Status s = MakeHttpJobArgs(h, &a); !s.ok()) return s;
  return Submit(g, std::move(a));
}

absl::Status Status(Globals& g, const std::string& job_id, bool verbose,
                    bool show_deleted) {
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  request.set_show_deleted(show_deleted);
  v1::Job job;
  if (absl::Status s = client->Call(&v1::TimerService::Stub::GetJob, request, &job);
      !s.ok()) {
    return s;
  }
  PrintJob(g, job, verbose);
  return absl::OkStatus();
}

// --view full, or -v (which prints bodies and results), asks for jobs in
// full; otherwise BASIC, which leaves them out.
absl::Status List(Globals& g, bool verbose, bool show_deleted, const std::string& view) {
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  v1::ListJobsResponse all;
  v1::ListJobsRequest request;
  request.set_page_size(1000);
  request.set_show_deleted(show_deleted);
  request.set_view(view == "full" || (view.empty() && verbose) ? v1::JOB_VIEW_FULL
                                                               : v1::JOB_VIEW_BASIC);
  if (absl::Status s = CallEveryPage(*client, &v1::TimerService::Stub::ListJobs, request,
                                     [&all](v1::ListJobsResponse& page) {
                                       for (v1::Job& job : *page.mutable_jobs())
                                         *all.add_jobs() = std::move(job);
                                     });
      !s.ok()) {
    return s;
  }
  if (g.json()) {
    PrintJson(all, std::cout);
  } else if (all.jobs_size() == 0) {
    std::cout << "No jobs.\n";
  } else {
    PrintJobsTable({all.jobs().begin(), all.jobs().end()}, verbose, absl::Now(),
                   std::cout);
  }
  return absl::OkStatus();
}

absl::Status Results(Globals& g, const std::string& job_id, bool verbose) {
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  v1::ListJobResultsResponse all;
  v1::ListJobResultsRequest request;
  request.set_job_id(job_id);
  request.set_page_size(1000);
  if (absl::Status s =
          CallEveryPage(*client, &v1::TimerService::Stub::ListJobResults, request,
                        [&all](v1::ListJobResultsResponse& page) {
                          for (v1::JobResult& r : *page.mutable_results()) {
                            *all.add_results() = std::move(r);
                          }
                        });
      !s.ok()) {
    return s;
  }
  if (g.json()) {
    PrintJson(all, std::cout);
  } else {
    PrintResultsTable({all.results().begin(), all.results().end()}, verbose, std::cout);
  }
  return absl::OkStatus();
}

// pause, resume, delete and run-now: a request naming one job, the job out.
template <typename Request>
absl::Status Act(Globals& g, const std::string& job_id, JobMethod<Request> method,
                 Request request = Request()) {
  request.set_job_id(job_id);
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  return CallAndPrintJob(g, *client, method, request);
}

constexpr char kActionUrlHelp[] =
    "the provider by URL, as globus-timer took it: .../PROVIDER/run (e.g. "
    "https://actions.automate.globus.org/transfer/transfer/run is transfer) or "
    ".../PROVIDER; must name a provider timerd has loaded";
constexpr char kActionBodyHelp[] =
    "the provider's input, a JSON object; globus-timer's {\"body\": {...}} wrapper "
    "is unwrapped";

constexpr char kScheduleHelp[] =
    "\n\nSchedules (one of --interval, --cron, --calendar, --once):\n"
    "  --interval 1h                      every hour from --start, on a UTC grid\n"
    "  --cron '0 2 * * *' --tz Europe/Berlin\n"
    "                                     02:00 Berlin time every day\n"
    "  --cron '*/10 * * * * *'            every 10 seconds (6 fields: seconds first)\n"
    "  --calendar 'dow=MON-FRI hour=2' --calendar-exclude 'mon=12 dom=24-26' --tz UTC\n"
    "                                     weekdays at 02:00 except 24-26 December\n"
    "  --once 2026-12-24T18:00+01:00      a single run\n"
    "A --calendar SPEC is KEY=VALUE fields separated by spaces, keys sec, min, hour,\n"
    "dom, mon, dow, year, values as in a cron field (0,30  9-17  */15  MON-FRI  L);\n"
    "sec/min/hour not given are 0, other fields every value (in --calendar-exclude\n"
    "every field not given is every value). --calendar repeats: their union.\n"
    "DST: --dst-gap run-after (default: a 02:30 job runs at 03:00 on the day clocks\n"
    "skip 02:00-03:00) | skip | shift (runs 03:30); --dst-repeat first (default) |\n"
    "last | both, for a local time that occurs twice.";

// The schedule options of `job submit`, `job update` and `job transfer`
// beyond --interval, --start and the stop conditions.
void AddScheduleOptions(CLI::App* cmd, JobArgs& a) {
  cmd->add_option("--cron", a.cron,
                  "a cron expression: 5 fields, or 6 with seconds first; @daily etc.; "
                  "L, W, # as Quartz")
      ->type_name("EXPR");
  cmd->add_option("--calendar", a.calendar,
                  "a calendar spec, e.g. 'dow=MON-FRI hour=2' (repeatable: union)")
      ->type_name("SPEC")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--calendar-exclude", a.calendar_exclude,
                  "times no --calendar run falls on, e.g. 'mon=12 dom=24-26'")
      ->type_name("SPEC")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--once", a.once, "a single run at TIME (formats as --start)")
      ->type_name("TIME");
  cmd->add_option("--tz", a.tz,
                  "IANA time zone of --cron/--calendar, e.g. Europe/Berlin (default UTC)")
      ->type_name("ZONE");
  cmd->add_option("--dst-gap", a.dst_gap,
                  "a local time that does not exist: run-after (default), skip, shift")
      ->check(CLI::IsMember({"run-after", "skip", "shift"}));
  cmd->add_option("--dst-repeat", a.dst_repeat,
                  "a local time that occurs twice: first (default), last, both")
      ->check(CLI::IsMember({"first", "last", "both"}));
  cmd->add_option("--jitter", a.jitter,
                  "delay each run by a fixed-per-slot amount in [0, DURATION), e.g. 5m")
      ->type_name("DURATION");
  cmd->add_option("--catch-up-window", a.catch_up_window,
                  "after downtime, slots older than DURATION are recorded missed")
      ->type_name("DURATION");
}

// Notifications (issue 24), for submit, update and http.
void AddNotifyOptions(CLI::App* cmd, JobArgs& a) {
  cmd->add_option("--notify-url", a.notify_url,
                  "POST a signed JSON notification here (on the server's "
                  "notifications.allow list); 'none' removes it")
      ->type_name("URL");
  cmd->add_option("--notify-on", a.notify_on,
                  "when to notify: failure (default), recovery, end, pause; "
                  "comma-separated")
      ->type_name("EVENTS");
}

// Retries and pausing (docs/API.md, "Retries"), for submit, update and http.
void AddRetryOptions(CLI::App* cmd, JobArgs& a) {
  cmd->add_option("--retry-max-attempts", a.retry_max_attempts,
                  "tries in all for a run failing with a transient error (1-10; 1: no "
                  "retry; default: the server's, none unless its operator set one)")
      ->check(CLI::Range(1, 10));
  cmd->add_option("--retry-backoff", a.retry_backoff,
                  "wait before the first retry (default 10s), e.g. 30s, 2m; at most half "
                  "the interval and 45m")
      ->type_name("DURATION");
  cmd->add_option("--retry-multiplier", a.retry_multiplier,
                  "each later wait is the previous one times this (1-10, default 2)")
      ->check(CLI::Range(1.0, 10.0));
  cmd->add_option("--retry-max-backoff", a.retry_max_backoff,
                  "longest wait between tries (default 10m, at most 45m)")
      ->type_name("DURATION");
  cmd->add_option("--pause-after-failures", a.pause_after_failures,
                  "pause the job after N consecutive failed runs (0: never)")
      ->check(CLI::Range(0, 1000));
}

// Exactly one schedule kind, for submit and transfer.
void RequireScheduleKind(const JobArgs& a) {
  if (a.interval.empty() && a.cron.empty() && a.calendar.empty() && a.once.empty()) {
    throw CLI::RequiredError("--interval, --cron, --calendar or --once");
  }
}

// The job options shared by `job submit` and `job update`.
void AddJobOptions(CLI::App* cmd, JobArgs& a) {
  cmd->add_option("--name", a.name, "a name for the job (need not be unique)");
  cmd->add_option("--label", a.label, "a label handed to the action provider");
  cmd->add_option("--interval", a.interval,
                  "time between runs: seconds, or 90s, 15m, 1h, 1d, 1w");
  cmd->add_option("--start,--start-time", a.start,
                  "first run: 2026-12-01, 2026-12-01T02:00[:00][+01:00|Z]; "
                  "local time unless an offset is given (default: now)");
  cmd->add_option("--action-provider", a.provider,
                  "name of the action provider, e.g. transfer");
  cmd->add_option("--action-url", a.action_url, kActionUrlHelp)->type_name("URL");
  auto* body = cmd->add_option("--action-body", a.body, kActionBodyHelp);
  auto* file = cmd->add_option("--action-file", a.body_file,
                               "a file holding the provider's input JSON (- for stdin); "
                               "unwrapped as --action-body is")
                   ->type_name("FILE");
  body->excludes(file);
  cmd->add_option("--scope", a.scope,
                  "accepted for globus-timer scripts and ignored: timerd needs no "
                  "Globus Auth scope");
  cmd->add_option("--stop-after-runs", a.stop_after_runs, "stop after N runs")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--stop-after-date", a.stop_after_date,
                  "stop running at this date/time (same formats as --start)");
  cmd->add_option("--overlap-policy", a.overlap,
                  "when a run is due while one is active: skip (default), "
                  "buffer_one, cancel_previous, allow")
      ->check(CLI::IsMember({"skip", "buffer_one", "cancel_previous", "allow"}));
  cmd->add_option("--max-concurrent", a.max_concurrent,
                  "with --overlap-policy allow: most runs at once (1-100)")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--missed-run-policy", a.missed,
                  "slots missed while timerd was down: skip (default) or run_once")
      ->check(CLI::IsMember({"skip", "run_once"}));
  AddRetryOptions(cmd, a);
  AddScheduleOptions(cmd, a);
  AddNotifyOptions(cmd, a);
}

void AddSubmit(CLI::App* job, Globals& g, CommandSet& commands) {
  auto state = std::make_shared<JobCommandState>();
  JobArgs& a = state->job;
  CLI::App* submit = job->add_subcommand(
      "submit",
      "schedule a recurring job\n\n"
      "Example:\n"
      "  timer job submit --name nightly --interval 1d --start 2026-12-01T02:00 \\\n"
      "    --action-provider noop --action-body '{}'\n\n"
      "Retried up to 3 times on transient errors, paused after 3 failed runs:\n"
      "  timer job submit --name sync --interval 1h --action-provider noop \\\n"
      "    --action-body '{}' --retry-max-attempts 3 --retry-backoff 30s \\\n"
      "    --pause-after-failures 3\n\n"
      "globus-timer's form runs unchanged:\n"
      "  timer job submit --name test-tutorial-job --interval 600 \\\n"
      "    --action-url https://actions.automate.globus.org/transfer/transfer/run \\\n"
      "    --action-body '{\"body\": {\"source_endpoint_id\": ..., ...}}'\n\n"
      "Nightly at 02:00 Berlin time:\n"
      "  timer job submit --name nightly --cron '0 2 * * *' --tz Europe/Berlin \\\n"
      "    --action-provider noop --action-body '{}'" +
          std::string(kScheduleHelp));
  AddJobOptions(submit, a);
  submit->add_option("--request-id", a.request_id,
                     "idempotency key; repeating it never creates a second job "
                     "(default: a new UUID)");
  submit->callback([&a] {
    RequireScheduleKind(a);
    if (a.provider.empty() && a.action_url.empty()) {
      throw CLI::RequiredError("--action-provider or --action-url");
    }
    if (a.body.empty() && a.body_file.empty()) {
      throw CLI::RequiredError("--action-body or --action-file");
    }
  });
  commands.Add(submit, [&g, state] { return Submit(g, state->job); });
}

void AddUpdate(CLI::App* job, Globals& g, CommandSet& commands) {
  auto state = std::make_shared<JobCommandState>();
  CLI::App* update = job->add_subcommand(
      "update",
      "change a job; only the options given change\n\n"
      "Prints how the next fires change (before and after).\n\n"
      "Examples:\n  timer job update JOB_ID --interval 12h --stop-after-runs 10\n"
      "  timer job update JOB_ID --cron '30 3 * * MON-FRI' --tz America/New_York");
  update->add_option("JOB_ID", state->job_id, "the job's id")->required();
  AddJobOptions(update, state->job);
  commands.Add(update, [&g, state] { return Update(g, state->job_id, state->job); });
}

constexpr char kTransferHelp[] =
    "schedule a recurring transfer between two endpoints\n\n"
    "Paths follow Globus's conventions: /PATH is from the endpoint's root,\n"
    "/~/PATH and ~/PATH from your home on it, PATH (relative) from that home.\n\n"
    "Examples:\n"
    "  timer job transfer --name nightly --interval 1d --start 2026-12-01T02:00 \\\n"
    "    --source-endpoint SRC_ID --dest-endpoint DST_ID \\\n"
    "    --item /~/data /~/backup/data true --item notes.txt backup/notes.txt false\n\n"
    "  # globus-timer's example, unchanged:\n"
    "  timer job transfer --name example-job --label \"Timer Transfer Job\" \\\n"
    "    --interval 28800 --start '2020-01-01T12:34:56' \\\n"
    "    --source-endpoint SRC_ID --dest-endpoint DST_ID \\\n"
    "    --item '~/file1.txt' '~/new_file1.txt' false \\\n"
    "    --item '~/file2.txt' '~/new_file2.txt' false\n\n"
    "  # only *.txt files, mirrored (extra files deleted), from a globus-cli batch:\n"
    "  timer job transfer --name txt --interval 1h --source-endpoint SRC_ID \\\n"
    "    --dest-endpoint DST_ID --include '*.txt' --exclude '*' \\\n"
    "    --delete-destination-extra --batch items.txt\n"
    "  # items.txt, one item a line (as `globus transfer --batch`):\n"
    "  #   /~/projects /~/backup/projects --recursive\n"
    "  #   \"/~/my notes.txt\" /~/backup/notes.txt";

void AddTransfer(CLI::App* job, Globals& g, CommandSet& commands) {
  auto state = std::make_shared<JobCommandState>();
  JobArgs& xa = state->job;
  TransferArgs& ta = state->transfer;
  CLI::App* transfer = job->add_subcommand("transfer", kTransferHelp);
  transfer->add_option("--name", xa.name, "a name for the job");
  transfer->add_option("--label", xa.label,
                       "the transfer's label (default: the job's name)");
  transfer->add_option("--interval", xa.interval,
                       "time between runs: seconds, or 15m, 1h, 1d, 1w");
  AddScheduleOptions(transfer, xa);
  transfer->add_option("--start,--start-time", xa.start, "first run (default: now)");
  transfer->add_option("--source-endpoint", ta.source, "source endpoint id")->required();
  transfer->add_option("--dest-endpoint", ta.dest, "destination endpoint id")->required();
  auto* item =
      transfer
          ->add_option("--item", ta.items, "SOURCE_PATH DEST_PATH RECURSIVE (repeatable)")
          ->type_size(3)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  auto* items_file =
      transfer
          ->add_option(
              "--items-file", ta.items_file,
              "CSV of SOURCE_PATH, DEST_PATH, RECURSIVE lines ('#' starts a comment), "
              "instead of --item")
          ->type_name("FILE");
  auto* batch = transfer
                    ->add_option("--batch", ta.batch,
                                 "globus-cli's batch input: one 'SOURCE_PATH DEST_PATH "
                                 "[--recursive]' a line, quoted as in a shell, '#' "
                                 "comments; - for stdin; instead of --item")
                    ->type_name("FILE");
  item->excludes(items_file);
  batch->excludes(item);
  batch->excludes(items_file);
  transfer
      ->add_option("--sync-level", ta.sync_level,
                   "skip files already at the destination: exists, size, mtime, checksum")
      ->check(CLI::IsMember({"exists", "size", "mtime", "checksum"}));
  transfer->add_flag("--verify-checksum", ta.verify_checksum,
                     "verify each copy with SHA-256");
  transfer->add_flag("--encrypt-data", ta.encrypt_data, "encrypt data in transit");
  transfer->add_flag("--preserve-timestamp", ta.preserve_timestamp,
                     "keep each file's modification time");
  // Kept in command-line order by the callback below: the first rule that
  // matches a name decides.
  transfer
      ->add_option("--include",
                   "in recursive items, copy files whose "
                   "name matches GLOB (repeatable; with "
                   "--exclude, the first match decides)")
      ->type_name("GLOB")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  transfer
      ->add_option("--exclude",
                   "in recursive items, skip files whose "
                   "name matches GLOB (repeatable)")
      ->type_name("GLOB")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  transfer->add_flag("--delete-destination-extra", ta.delete_destination_extra,
                     "in recursive items, delete what the source does not have");
  transfer->add_flag("--skip-source-errors", ta.skip_source_errors,
                     "skip (and count) source files that are missing or unreadable");
  transfer->add_flag("--fail-on-quota-errors", ta.fail_on_quota_errors,
                     "stop the run at once when the destination is full");
  transfer
      ->add_option("--recursive-symlinks", ta.recursive_symlinks,
                   "symbolic links in recursive items: ignore (default), keep "
                   "(recreate them), copy (copy what they point to)")
      ->check(CLI::IsMember({"ignore", "keep", "copy"}));
  transfer->add_option("--stop-after-runs", xa.stop_after_runs, "stop after N runs")
      ->check(CLI::PositiveNumber);
  transfer->add_option("--stop-after-date", xa.stop_after_date,
                       "stop running at this time");
  transfer->callback([transfer, &ta, &xa] {
    RequireScheduleKind(xa);
    ta.filter_rules = FilterRulesInOrder(*transfer);
  });
  commands.Add(transfer,
               [&g, state] { return Transfer(g, state->job, state->transfer); });
}

constexpr char kHttpHelp[] =
    "schedule an HTTP request (the http provider)\n\n"
    "The URL must be on the server's allowlist (timer provider show http).\n"
    "Every request carries Idempotency-Key: JOB_ID/RUN_NUMBER; the run\n"
    "succeeds on a 2xx answer.\n\n"
    "Example:\n"
    "  timer job http --name ping --interval 1h --url https://api.example.org/ping \\\n"
    "    --header 'X-Team: ops' --json '{\"check\": true}' --credential api \\\n"
    "    --notify-url https://hooks.example.org/timer --notify-on failure,recovery\n\n"
    "Retried on a connect error, timeout, 429 or 5xx; paused after 3 failed runs:\n"
    "  timer job http --name ping --interval 1h --url https://api.example.org/ping \\\n"
    "    --retry-max-attempts 3 --retry-backoff 30s --pause-after-failures 3 \\\n"
    "    --notify-url https://hooks.example.org/timer \\\n"
    "    --notify-on failure,recovery,end,pause";

void AddHttp(CLI::App* job, Globals& g, CommandSet& commands) {
  auto state = std::make_shared<JobCommandState>();
  JobArgs& xa = state->job;
  HttpArgs& h = state->http;
  CLI::App* http = job->add_subcommand("http", kHttpHelp);
  http->add_option("--name", xa.name, "a name for the job");
  http->add_option("--interval", xa.interval,
                   "time between runs: seconds, or 15m, 1h, 1d, 1w");
  AddScheduleOptions(http, xa);
  http->add_option("--start,--start-time", xa.start, "first run (default: now)");
  http->add_option("--stop-after-runs", xa.stop_after_runs, "stop after N runs")
      ->check(CLI::PositiveNumber);
  http->add_option("--stop-after-date", xa.stop_after_date, "stop running at this time");
  http->add_option("--url", h.url, "the URL to call")->required();
  http->add_option("--method", h.method, "GET, HEAD, POST (default), PUT, PATCH, DELETE")
      ->check(CLI::IsMember({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"},
                            CLI::ignore_case));
  http->add_option("--header", h.headers, "NAME:VALUE (repeatable)")
      ->type_name("NAME:VALUE")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  auto* body =
      http->add_option("--body", h.body, "the request body, as text")->type_name("TEXT");
  auto* json =
      http->add_option("--json", h.json,
                       "the request body as JSON (Content-Type: application/json)")
          ->type_name("JSON");
  body->excludes(json);
  http->add_option("--credential", h.credential,
                   "an operator-configured credential that sets one header, by name");
  http->add_option("--timeout", h.timeout, "time limit of a request, e.g. 30s, 2m")
      ->type_name("DURATION");
  AddRetryOptions(http, xa);
  AddNotifyOptions(http, xa);
  http->callback([http, &h, &xa] {
    RequireScheduleKind(xa);
    h.body_given = http->count("--body") > 0;
    h.json_given = http->count("--json") > 0;
  });
  commands.Add(http, [&g, state] { return Http(g, state->job, state->http); });
}

}  // namespace

std::vector<FilterRuleArg> FilterRulesInOrder(const CLI::App& transfer) {
  const CLI::Option* include = transfer.get_option_no_throw("--include");
  const CLI::Option* exclude = transfer.get_option_no_throw("--exclude");
  std::vector<FilterRuleArg> rules;
  if (include == nullptr || exclude == nullptr) return rules;
  size_t next_include = 0, next_exclude = 0;
  for (const CLI::Option* opt : transfer.parse_order()) {
    if (opt == include && next_include < include->results().size()) {
      rules.push_back({true, include->results()[next_include++]});
    } else if (opt == exclude && next_exclude < exclude->results().size()) {
      rules.push_back({false, exclude->results()[next_exclude++]});
    }
  }
  return rules;
}

namespace {

// A command taking one JOB_ID, bound to state->job_id.
CLI::App* AddJobIdCommand(CLI::App* job, const char* name, const char* description,
                          JobCommandState& state) {
  CLI::App* cmd = job->add_subcommand(name, description);
  cmd->add_option("JOB_ID", state.job_id, "the job's id")->required();
  return cmd;
}

}  // namespace

void AddJobCommands(CLI::App& app, Globals& g, CommandSet& commands) {
  CLI::App* job = app.add_subcommand("job", "create, inspect and delete jobs");
  job->require_subcommand(1);
  AddSubmit(job, g, commands);

  auto state = std::make_shared<JobCommandState>();
  JobCommandState& s = *state;
  CLI::App* status = AddJobIdCommand(job, "status", "show one job", s);
  status->add_flag("-v,--verbose", s.verbose, "include every kept result in full");
  status->add_flag("--show-deleted", s.show_deleted, "also show a deleted job");
  commands.Add(status, [&g, state] {
    return Status(g, state->job_id, state->verbose, state->show_deleted);
  });

  CLI::App* list = job->add_subcommand("list", "list your jobs");
  list->add_flag("-v,--verbose", s.verbose, "show every job in full");
  list->add_flag("--show-deleted", s.show_deleted, "include deleted jobs");
  list->add_option("--view", s.view,
                   "basic: without action bodies and results (the default); full: "
                   "with them (the default with -v)")
      ->check(CLI::IsMember({"basic", "full"}));
  commands.Add(list, [&g, state] {
    return List(g, state->verbose, state->show_deleted, state->view);
  });

  CLI::App* del = AddJobIdCommand(
      job, "delete", "stop a job for good; it stays visible with --show-deleted", s);
  commands.Add(del, [&g, state] {
    return Act(g, state->job_id, &v1::TimerService::Stub::DeleteJob);
  });

  AddUpdate(job, g, commands);

  CLI::App* pause = AddJobIdCommand(job, "pause", "stop running a job until resumed", s);
  commands.Add(pause, [&g, state] {
    return Act(g, state->job_id, &v1::TimerService::Stub::PauseJob);
  });
  CLI::App* resume = AddJobIdCommand(
      job, "resume", "run a paused job again, from the next slot of its original grid",
      s);
  commands.Add(resume, [&g, state] {
    return Act(g, state->job_id, &v1::TimerService::Stub::ResumeJob);
  });
  CLI::App* run_now = AddJobIdCommand(
      job, "run-now", "run a job once now, without moving its schedule", s);
  run_now->add_option("--request-id", s.run_request_id,
                      "idempotency key; repeating it never starts a second run "
                      "(default: a new UUID)");
  commands.Add(run_now, [&g, state] {
    v1::RunJobNowRequest request;
    request.set_request_id(state->run_request_id.empty() ? NewRequestId()
                                                         : state->run_request_id);
    return Act(g, state->job_id, &v1::TimerService::Stub::RunJobNow, request);
  });

  AddWatchCommand(*job, g, commands);

  CLI::App* results = AddJobIdCommand(job, "results", "every kept result of a job", s);
  results->add_flag("-v,--verbose", s.verbose, "include the provider's details");
  commands.Add(results,
               [&g, state] { return Results(g, state->job_id, state->verbose); });

  AddTransfer(job, g, commands);
  AddHttp(job, g, commands);

  CLI::App* next = AddJobIdCommand(
      job, "next",
      "the job's next fire times, each with why (the rule that matched, the DST "
      "decision) and the ones a stop condition, pause or the catch-up window removes",
      s);
  next->add_option("-n,--count", s.count, "how many (default 10, at most 1000)")
      ->check(CLI::Range(1, 1000));
  next->add_option("--from", s.from, "from this time (default: now)")->type_name("TIME");
  commands.Add(next, [&g, state] {
    v1::PreviewScheduleRequest request;
    request.set_job_id(state->job_id);
    request.set_count(state->count);
    return Preview(g, request, state->from);
  });

  CLI::App* backfill = AddJobIdCommand(
      job, "backfill",
      "run the job's slots in a past range, one after another under its overlap "
      "policy, each recorded with its slot as scheduled time; pause or delete the "
      "job to cancel the runs not yet started\n\n"
      "Times are RFC 3339 or local date-times; --to may not be in the future and the\n"
      "range is at most 366 days. A range with more slots than --max-runs is refused\n"
      "with how many it holds. Repeating --request-id records nothing new.\n\n"
      "Examples:\n"
      "  timer job backfill JOB_ID --from 2026-12-01 --to 2026-12-04\n"
      "  timer job backfill JOB_ID --from 2026-12-01T00:00Z --to 2026-12-01T06:00Z \\\n"
      "    --max-runs 6 --request-id fill-dec-1 --format json",
      s);
  backfill->add_option("--from", s.from, "first slot time (inclusive)")->required();
  backfill->add_option("--to", s.to, "end of the range (exclusive, not in the future)")
      ->required();
  backfill->add_option("--max-runs", s.max_runs, "most slots to run (default/max 100)")
      ->check(CLI::Range(1, 100));
  backfill->add_option("--request-id", s.run_request_id,
                       "idempotency key (default: a new UUID)");
  commands.Add(backfill, [&g, state] {
    return Backfill(g, state->job_id, state->from, state->to, state->max_runs,
                    state->run_request_id);
  });

  AddScheduleCommands(app, g, commands);
}

void AddScheduleCommands(CLI::App& app, Globals& g, CommandSet& commands) {
  CLI::App* schedule = app.add_subcommand("schedule", "try out schedules");
  schedule->require_subcommand(1);
  auto state = std::make_shared<JobCommandState>();
  JobCommandState& s = *state;
  CLI::App* preview = schedule->add_subcommand(
      "preview",
      "the next fire times of a schedule not yet submitted, each with why\n\n"
      "Examples:\n"
      "  timer schedule preview '0 2 * * *' --tz Europe/Berlin -n 10\n"
      "  timer schedule preview --calendar 'dow=MON-FRI hour=2' \\\n"
      "    --calendar-exclude 'mon=12 dom=24-26' --from 2026-12-20\n"
      "  timer schedule preview --interval 1h --start 2026-12-01T00:30Z -n 3" +
          std::string(kScheduleHelp));
  preview->add_option("EXPR", s.expression, "a cron expression (or use --calendar ...)");
  preview->add_option("--interval", s.job.interval, "time between runs");
  preview->add_option("--start", s.job.start, "the schedule's start (default: now)");
  AddScheduleOptions(preview, s.job);
  preview->add_option("-n,--count", s.count, "how many (default 10, at most 1000)")
      ->check(CLI::Range(1, 1000));
  preview->add_option("--from", s.from, "from this time (default: now)")
      ->type_name("TIME");
  commands.Add(preview, [&g, state] {
    JobArgs a = state->job;
    if (!state->expression.empty()) {
      if (!a.cron.empty()) {
        return absl::InvalidArgumentError(
            "give the cron expression once (EXPR or --cron)");
      }
      a.cron = state->expression;
    }
    if (a.interval.empty() && a.cron.empty() && a.calendar.empty() && a.once.empty()) {
      return absl::InvalidArgumentError(
          "give a schedule: EXPR, --cron, --calendar, --interval or --once");
    }
    v1::Job job;
    std::vector<std::string> paths;
    if (absl::Status st = FillJob(a, absl::LocalTimeZone(), &job, &paths); !st.ok())
      return st;
    v1::PreviewScheduleRequest request;
    *request.mutable_schedule() = job.schedule();
    request.set_count(state->count);
    return Preview(g, request, state->from);
  });
}

}  // namespace timer::cli
