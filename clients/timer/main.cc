// timer: the command-line client of timerd.
//
//   timer job submit --interval 1d --action-provider noop --action-body '{}'
//   timer job status JOB_ID
//   timer job list [--show-deleted]
//   timer job delete JOB_ID
//
// Exit codes (stable, for scripts): 0 ok, 1 other error, 2 usage error or
// invalid argument, 3 not found, 4 not authenticated or permission denied,
// 5 server unavailable or deadline exceeded, 6 conflict (already exists,
// aborted, failed precondition).
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli_time.h"
#include "output.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::cli {
namespace {

constexpr char kVersion[] = "0.1.0";

enum ExitCode {
  kOk = 0,
  kError = 1,
  kUsage = 2,
  kNotFound = 3,
  kPermission = 4,
  kUnavailable = 5,
  kConflict = 6,
};

struct Globals {
  std::string server = "127.0.0.1:50051";
  std::string format = "table";
  double timeout_seconds = 10;
};

// An error already reported to stderr, carrying the exit code.
struct Exit {
  int code;
};

[[noreturn]] void Fail(int code, const std::string& message) {
  std::cerr << "timer: " << message << "\n";
  throw Exit{code};
}

int ExitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kUsage;
    case grpc::StatusCode::NOT_FOUND:
      return kNotFound;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return kPermission;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kUnavailable;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return kConflict;
    default:
      return kError;
  }
}

void Check(const grpc::Status& status, const Globals& g) {
  if (status.ok()) return;
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    Fail(kUnavailable, absl::StrCat("cannot reach timerd at ", g.server, " (",
                                    status.error_message(), ")"));
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    Fail(kUnavailable, absl::StrCat("timerd at ", g.server, " did not answer within ",
                                    g.timeout_seconds, "s"));
  }
  Fail(ExitCodeFor(status.error_code()), status.error_message());
}

// A stub plus a fresh context per call, each with the deadline.
class Client {
 public:
  explicit Client(const Globals& g)
      : g_(g),
        stub_(v1::TimerService::NewStub(
            grpc::CreateChannel(g.server, grpc::InsecureChannelCredentials()))) {}

  template <typename Req, typename Resp>
  void Call(grpc::Status (v1::TimerService::Stub::*method)(grpc::ClientContext*,
                                                           const Req&, Resp*),
            const Req& request, Resp* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(
                         static_cast<int64_t>(g_.timeout_seconds * 1000)));
    Check((stub_.get()->*method)(&ctx, request, response), g_);
  }

 private:
  const Globals& g_;
  std::unique_ptr<v1::TimerService::Stub> stub_;
};

std::string NewRequestId() {
  std::random_device rd;
  std::uniform_int_distribution<uint32_t> dist;
  uint32_t w[4] = {dist(rd), dist(rd), dist(rd), dist(rd)};
  w[1] = (w[1] & 0xffff0fffu) | 0x00004000u;  // version 4
  w[2] = (w[2] & 0x3fffffffu) | 0x80000000u;  // RFC 4122 variant
  return absl::StrFormat("%08x-%04x-%04x-%04x-%04x%08x", w[0], w[1] >> 16,
                         w[1] & 0xffff, w[2] >> 16, w[2] & 0xffff, w[3]);
}

std::string ReadFile(const std::string& path, const char* option) {
  std::ifstream in(path);
  if (!in) Fail(kUsage, absl::StrCat(option, ": cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void PrintJob(const Globals& g, const v1::Job& job, bool verbose) {
  if (g.format == "json") {
    PrintJson(job, std::cout);
  } else {
    PrintJobTable(job, verbose, absl::Now(), std::cout);
  }
}

struct SubmitArgs {
  std::string name, label, interval, start, provider, body, body_file;
  std::string stop_after_date, request_id;
  int64_t stop_after_runs = 0;
};

void Submit(const Globals& g, const SubmitArgs& a) {
  v1::CreateJobRequest request;
  v1::Job* job = request.mutable_job();
  job->set_name(a.name);
  job->set_label(a.label);
  auto interval = ParseIntervalArg(a.interval);
  if (!interval.ok()) Fail(kUsage, absl::StrCat("--interval: ", interval.status().message()));
  v1::Schedule* schedule = job->mutable_schedule();
  schedule->set_interval_seconds(*interval);
  const auto set_time = [](const std::string& text, const char* option,
                           google::protobuf::Timestamp* out) {
    auto t = ParseTimeArg(text, absl::LocalTimeZone());
    if (!t.ok()) Fail(kUsage, absl::StrCat(option, ": ", t.status().message()));
    out->set_seconds(absl::ToUnixSeconds(*t));
    out->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(*t - absl::FromUnixSeconds(out->seconds()))));
  };
  if (!a.start.empty()) set_time(a.start, "--start", schedule->mutable_start());
  if (!a.stop_after_date.empty()) {
    set_time(a.stop_after_date, "--stop-after-date", schedule->mutable_stop_after_date());
  }
  if (a.stop_after_runs != 0) schedule->set_stop_after_runs(a.stop_after_runs);
  job->mutable_action()->set_provider(a.provider);
  job->mutable_action()->set_body(a.body_file.empty()
                                      ? a.body
                                      : ReadFile(a.body_file, "--action-file"));
  // A request id makes a retried submit create the job once, not twice.
  request.set_request_id(a.request_id.empty() ? NewRequestId() : a.request_id);

  v1::Job created;
  Client(g).Call(&v1::TimerService::Stub::CreateJob, request, &created);
  PrintJob(g, created, /*verbose=*/false);
}

void Status(const Globals& g, const std::string& job_id, bool verbose,
            bool show_deleted) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  request.set_show_deleted(show_deleted);
  v1::Job job;
  Client(g).Call(&v1::TimerService::Stub::GetJob, request, &job);
  PrintJob(g, job, verbose);
}

void List(const Globals& g, bool verbose, bool show_deleted) {
  Client client(g);
  v1::ListJobsResponse all;
  v1::ListJobsRequest request;
  request.set_page_size(1000);
  request.set_show_deleted(show_deleted);
  do {
    v1::ListJobsResponse page;
    client.Call(&v1::TimerService::Stub::ListJobs, request, &page);
    for (v1::Job& job : *page.mutable_jobs()) *all.add_jobs() = std::move(job);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (g.format == "json") {
    PrintJson(all, std::cout);
    return;
  }
  if (all.jobs_size() == 0) {
    std::cout << "No jobs.\n";
    return;
  }
  PrintJobsTable({all.jobs().begin(), all.jobs().end()}, verbose, absl::Now(), std::cout);
}

void Delete(const Globals& g, const std::string& job_id) {
  v1::DeleteJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  Client(g).Call(&v1::TimerService::Stub::DeleteJob, request, &job);
  PrintJob(g, job, /*verbose=*/false);
}

int Run(int argc, char** argv) {
  CLI::App app{"timer: schedule recurring jobs on timerd", "timer"};
  app.set_version_flag("--version", kVersion);
  app.require_subcommand(1);
  Globals g;
  if (const char* env = std::getenv("TIMER_SERVER"); env && *env) g.server = env;
  app.add_option("--server", g.server, "timerd address HOST:PORT (env TIMER_SERVER)")
      ->capture_default_str();
  app.add_option("--format", g.format, "output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--timeout", g.timeout_seconds, "seconds to wait for each call")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  CLI::App* job = app.add_subcommand("job", "create, inspect and delete jobs");
  job->require_subcommand(1);

  SubmitArgs sa;
  CLI::App* submit = job->add_subcommand(
      "submit",
      "schedule a recurring job\n\n"
      "Example:\n"
      "  timer job submit --name nightly --interval 1d --start 2026-12-01T02:00 \\\n"
      "    --action-provider noop --action-body '{}'");
  submit->add_option("--name", sa.name, "a name for the job (need not be unique)");
  submit->add_option("--label", sa.label, "a label handed to the action provider");
  submit->add_option("--interval", sa.interval,
                     "time between runs: seconds, or 90s, 15m, 1h, 1d, 1w")
      ->required();
  submit->add_option("--start,--start-time", sa.start,
                     "first run: 2026-12-01, 2026-12-01T02:00[:00][+01:00|Z]; "
                     "local time unless an offset is given (default: now)");
  submit->add_option("--action-provider,--action-url", sa.provider,
                     "name of the action provider, e.g. transfer")
      ->required();
  auto* body_opt = submit->add_option("--action-body", sa.body,
                                      "the provider's input, a JSON object");
  auto* file_opt = submit->add_option("--action-file", sa.body_file,
                                      "a file holding the provider's input JSON");
  body_opt->excludes(file_opt);
  submit->add_option("--stop-after-runs", sa.stop_after_runs, "stop after N runs")
      ->check(CLI::PositiveNumber);
  submit->add_option("--stop-after-date", sa.stop_after_date,
                     "stop running at this date/time (same formats as --start)");
  submit->add_option("--request-id", sa.request_id,
                     "idempotency key; repeating it never creates a second job "
                     "(default: a new UUID)");
  submit->callback([&] {
    if (sa.body.empty() && sa.body_file.empty()) {
      throw CLI::RequiredError("--action-body or --action-file");
    }
  });

  std::string job_id;
  bool verbose = false, show_deleted = false;
  CLI::App* status = job->add_subcommand("status", "show one job");
  status->add_option("JOB_ID", job_id, "the job's id")->required();
  status->add_flag("-v,--verbose", verbose, "include every kept result in full");
  status->add_flag("--show-deleted", show_deleted, "also show a deleted job");

  CLI::App* list = job->add_subcommand("list", "list your jobs");
  list->add_flag("-v,--verbose", verbose, "show every job in full");
  list->add_flag("--show-deleted", show_deleted, "include deleted jobs");

  CLI::App* del = job->add_subcommand(
      "delete", "stop a job for good; it stays visible with --show-deleted");
  del->add_option("JOB_ID", job_id, "the job's id")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "timer: " << e.what() << "\nRun with --help for more information.\n";
    return kUsage;
  }

  try {
    if (submit->parsed()) Submit(g, sa);
    if (status->parsed()) Status(g, job_id, verbose, show_deleted);
    if (list->parsed()) List(g, verbose, show_deleted);
    if (del->parsed()) Delete(g, job_id);
  } catch (const Exit& e) {
    return e.code;
  }
  return kOk;
}

}  // namespace
}  // namespace timer::cli

int main(int argc, char** argv) { return timer::cli::Run(argc, argv); }
