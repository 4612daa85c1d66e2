// `timer job watch`: one job's events, or all the user's with --all.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "job_commands.h"
#include "output.h"

namespace timer::cli {
namespace {

struct WatchArgs {
  std::string job_id;
  bool all = false;
  std::vector<std::string> statuses;
  std::string name_contains;
  int64_t since = 0;
  int64_t limit = 0;  // 0: until interrupted.
  std::string view;   // "basic", "full" or empty (basic).
};

// Reads a watch stream's messages, calling `handle` on each event in order
// until it returns false (the call is then cancelled and OK returned).
// Returns the stream's final status.
template <typename Response>
grpc::Status ReadEvents(grpc::ClientContext& ctx, grpc::ClientReader<Response>& stream,
                        absl::FunctionRef<bool(const v1::JobEvent&)> handle) {
  Response message;
  while (stream.Read(&message)) {
    for (const v1::JobEvent& event : message.events()) {
      if (!handle(event)) {
        ctx.TryCancel();
        (void)stream.Finish();
        return grpc::Status::OK;
      }
    }
  }
  return stream.Finish();
}

// Prints events as they come. When the stream ends because timerd went away
// (UNAVAILABLE) or this watcher fell behind (RESOURCE_EXHAUSTED), reconnects
// with `since` = the last sequence seen, so no event is missed (or, if too
// many were, the server says RESET and sends fresh snapshots).
absl::Status Watch(Globals& g, const WatchArgs& args) {
  if (args.all == !args.job_id.empty()) {
    return absl::InvalidArgumentError("give either JOB_ID or --all");
  }
  if (args.since < 0) return absl::InvalidArgumentError("--since: must be >= 0");
  if (args.limit < 0) return absl::InvalidArgumentError("--limit: must be >= 0");
  v1::WatchJobsRequest all_request;
  for (const std::string& s : args.statuses) {
    v1::Job::Status status;
    if (!v1::Job::Status_Parse(absl::AsciiStrToUpper(s), &status) ||
        status == v1::Job::STATUS_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat("--status: unknown job status \"", Echo(s), "\""));
    }
    // Each once: timerd refuses a list longer than there are statuses.
    if (std::find(all_request.statuses().begin(), all_request.statuses().end(), status) ==
        all_request.statuses().end()) {
      all_request.add_statuses(status);
    }
  }
  all_request.set_name_contains(args.name_contains);
  const v1::JobView view = args.view == "full" ? v1::JOB_VIEW_FULL : v1::JOB_VIEW_BASIC;
  all_request.set_view(view);
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  int64_t since = args.since;
  int64_t printed = 0;
  absl::Duration backoff = absl::Milliseconds(200);
  for (;;) {
    grpc::ClientContext ctx;
    client->Prepare(&ctx, /*deadline=*/false);  // A stream lasts until stopped.
    bool got_any = false;
    bool limit_reached = false;
    auto print = [&](const v1::JobEvent& event) {
      got_any = true;
      since = event.sequence();
      if (g.json()) {
        PrintJsonLine(event, std::cout);
      } else {
        PrintEventLine(event, std::cout);
      }
      std::cout.flush();
      limit_reached = args.limit > 0 && ++printed >= args.limit;
      return !limit_reached;
    };
    grpc::Status status;
    if (args.all) {
      all_request.set_since(since);
      status = ReadEvents(ctx, *client->timer().WatchJobs(&ctx, all_request), print);
    } else {
      v1::WatchJobRequest request;
      request.set_job_id(args.job_id);
      request.set_since(since);
      request.set_view(view);
      status = ReadEvents(ctx, *client->timer().WatchJob(&ctx, request), print);
    }
    if (limit_reached) return absl::OkStatus();
    if (status.ok()) return absl::OkStatus();  // The watched job was deleted.
    const grpc::StatusCode code = status.error_code();
    // UNAVAILABLE: timerd went away; RESOURCE_EXHAUSTED with a resume point:
    // this watcher fell behind (without one it is a limit, such as
    // max_watch_streams_per_identity, which retrying does not lift);
    // CANCELLED: timerd was shutting down as we reconnected.
    const bool fell_behind = code == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                             absl::StrContains(status.error_message(), "since=");
    if (code != grpc::StatusCode::UNAVAILABLE && !fell_behind &&
        code != grpc::StatusCode::CANCELLED) {
      return client->ToStatus(status);
    }
    if (got_any) backoff = absl::Milliseconds(200);
    std::cerr << "timer: "
              << (code == grpc::StatusCode::UNAVAILABLE
                      ? absl::StrCat("lost timerd at ", g.client.server)
                      : std::string("the stream fell behind"))
              << "; reconnecting with --since " << since << "\n";
    absl::SleepFor(backoff);  // Waiting for the server to come back.
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

}  // namespace

void AddWatchCommand(CLI::App& job, Globals& g, CommandSet& commands) {
  auto args = std::make_shared<WatchArgs>();
  WatchArgs& wa = *args;
  CLI::App* watch = job.add_subcommand(
      "watch",
      "print a job's events as they happen (or all your jobs' with --all)\n\n"
      "Starts with the current state (SNAPSHOT), then one line per change;\n"
      "reconnects by itself if timerd restarts. --format json prints one JSON\n"
      "object per line.\n\n"
      "Examples:\n  timer job watch JOB_ID\n"
      "  timer job watch --all --status paused --format json");
  watch->add_option("JOB_ID", wa.job_id, "the job's id (or use --all)");
  watch->add_flag("--all", wa.all, "watch every job of yours");
  watch->add_option("--status", wa.statuses,
                    "with --all: only jobs in this status (repeatable: new, loaded, "
                    "updated, paused, ended)");
  watch->add_option("--name", wa.name_contains,
                    "with --all: only jobs whose name contains this");
  watch->add_option("--since", wa.since,
                    "resume after this event sequence number (from an earlier watch)");
  watch->add_option("--limit", wa.limit, "stop after printing this many events");
  watch
      ->add_option("--view", wa.view,
                   "how SNAPSHOT events show jobs: basic, without action bodies and "
                   "results (the default), or full; other events never carry them")
      ->check(CLI::IsMember({"basic", "full"}));
  commands.Add(watch, [&g, args] { return Watch(g, *args); });
}

}  // namespace timer::cli
