// timer: the command-line client of timerd.
//
//   timer job submit --interval 1d --action-provider noop --action-body '{}'
//   timer job status JOB_ID
//   timer job list [--show-deleted]
//   timer job delete JOB_ID
//   timer job transfer --source-endpoint ID --dest-endpoint ID --item SRC DST true ...
//   timer job update|pause|resume|run-now|results JOB_ID
//   timer provider list|show NAME
//   timer completion bash|zsh
//   timer session login|whoami|logout|revoke
//
// Credentials: TIMER_TOKEN if set, else the token `timer session login` saved
// for this server in ~/.config/timer/tokens.json; --tls-ca/--tls-cert/
// --tls-key for a TLS server and mutual TLS.
//
// Exit codes (stable, for scripts): 0 ok, 1 other error, 2 usage error or
// invalid argument, 3 not found, 4 not authenticated or permission denied,
// 5 server unavailable or deadline exceeded, 6 conflict (already exists,
// aborted, failed precondition).
#include <fstream>
#include <map>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <grpcpp/grpcpp.h>

#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cli_time.h"
#include "completion.h"
#include "output.h"
#include "timer/v1/session.grpc.pb.h"
#include "timer/v1/timer.grpc.pb.h"
#include "token_cache.h"
#include "transfer_items.h"

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
  // TLS: on with --tls or any of the files below.
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  // The bearer token sent with every call; empty: none.
  std::string token;
  // Where `token` came from, for error hints: "TIMER_TOKEN", the cache, "".
  std::string token_source;
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
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    const std::string hint =
        g.token_source.empty()
            ? "; log in with: timer session login (or set TIMER_TOKEN)"
            : absl::StrCat(" (token from ", g.token_source, ")");
    Fail(kPermission, absl::StrCat("not authenticated: ", status.error_message(), hint));
  }
  Fail(ExitCodeFor(status.error_code()), status.error_message());
}

std::string ReadFileOrFail(const std::string& path, const char* option) {
  std::ifstream in(path);
  if (!in) Fail(kUsage, absl::StrCat(option, ": cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::shared_ptr<grpc::Channel> MakeChannel(const Globals& g) {
  if (!g.tls) return grpc::CreateChannel(g.server, grpc::InsecureChannelCredentials());
  grpc::SslCredentialsOptions options;
  // Without --tls-ca the system's roots (or GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).
  if (!g.tls_ca.empty()) options.pem_root_certs = ReadFileOrFail(g.tls_ca, "--tls-ca");
  if (!g.tls_cert.empty()) {
    options.pem_cert_chain = ReadFileOrFail(g.tls_cert, "--tls-cert");
    options.pem_private_key = ReadFileOrFail(g.tls_key, "--tls-key");
  }
  grpc::ChannelArguments args;
  if (!g.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(g.tls_server_name);
  }
  return grpc::CreateCustomChannel(g.server, grpc::SslCredentials(options), args);
}

// A context with the deadline and, when there is one, the bearer token.
void Prepare(const Globals& g, grpc::ClientContext* ctx, const std::string& token) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(
                        static_cast<int64_t>(g.timeout_seconds * 1000)));
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

// A stub plus a fresh context per call, each with the deadline.
class Client {
 public:
  explicit Client(const Globals& g)
      : g_(g), stub_(v1::TimerService::NewStub(MakeChannel(g))) {}

  template <typename Req, typename Resp>
  void Call(grpc::Status (v1::TimerService::Stub::*method)(grpc::ClientContext*,
                                                           const Req&, Resp*),
            const Req& request, Resp* response) {
    grpc::ClientContext ctx;
    Prepare(g_, &ctx, g_.token);
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

void PrintJob(const Globals& g, const v1::Job& job, bool verbose) {
  if (g.format == "json") {
    PrintJson(job, std::cout);
  } else {
    PrintJobTable(job, verbose, absl::Now(), std::cout);
  }
}

struct SubmitArgs {
  std::string name, label, interval, start, provider, body, body_file;
  std::string stop_after_date, request_id, overlap, missed;
  int64_t stop_after_runs = 0;
  int max_concurrent = 0;
};

const std::map<std::string, v1::OverlapPolicy> kOverlap = {
    {"skip", v1::SKIP},
    {"buffer_one", v1::BUFFER_ONE},
    {"cancel_previous", v1::CANCEL_PREVIOUS},
    {"allow", v1::ALLOW}};
const std::map<std::string, v1::MissedRunPolicy> kMissed = {
    {"skip", v1::SKIP_MISSED}, {"run_once", v1::RUN_ONCE}};

void SetTime(const std::string& text, const char* option,
             google::protobuf::Timestamp* out) {
  auto t = ParseTimeArg(text, absl::LocalTimeZone());
  if (!t.ok()) Fail(kUsage, absl::StrCat(option, ": ", t.status().message()));
  out->set_seconds(absl::ToUnixSeconds(*t));
  out->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(*t - absl::FromUnixSeconds(out->seconds()))));
}

// Copies the options given in `a` into `job`, and names each in `paths`
// (the update mask, for `job update`).
void FillJob(const SubmitArgs& a, v1::Job* job, std::vector<std::string>* paths) {
  const auto touched = [&](const char* path) { paths->push_back(path); };
  if (!a.name.empty()) job->set_name(a.name), touched("name");
  if (!a.label.empty()) job->set_label(a.label), touched("label");
  v1::Schedule* schedule = job->mutable_schedule();
  if (!a.interval.empty()) {
    auto interval = ParseIntervalArg(a.interval);
    if (!interval.ok()) {
      Fail(kUsage, absl::StrCat("--interval: ", interval.status().message()));
    }
    schedule->set_interval_seconds(*interval);
    touched("schedule.interval_seconds");
  }
  if (!a.start.empty()) {
    SetTime(a.start, "--start", schedule->mutable_start());
    touched("schedule.start");
  }
  if (!a.stop_after_date.empty()) {
    SetTime(a.stop_after_date, "--stop-after-date", schedule->mutable_stop_after_date());
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
  if (!a.body.empty() || !a.body_file.empty()) {
    job->mutable_action()->set_body(a.body_file.empty()
                                        ? a.body
                                        : ReadFileOrFail(a.body_file, "--action-file"));
    touched("action.body");
  }
  if (!a.overlap.empty()) job->set_overlap_policy(kOverlap.at(a.overlap)), touched("overlap_policy");
  if (a.max_concurrent != 0) {
    job->set_max_concurrent(a.max_concurrent);
    touched("max_concurrent");
  }
  if (!a.missed.empty()) {
    job->set_missed_run_policy(kMissed.at(a.missed));
    touched("missed_run_policy");
  }
}

// The job options shared by `job submit` and `job update`.
void AddJobOptions(CLI::App* cmd, SubmitArgs& a) {
  cmd->add_option("--name", a.name, "a name for the job (need not be unique)");
  cmd->add_option("--label", a.label, "a label handed to the action provider");
  cmd->add_option("--interval", a.interval,
                  "time between runs: seconds, or 90s, 15m, 1h, 1d, 1w");
  cmd->add_option("--start,--start-time", a.start,
                  "first run: 2026-12-01, 2026-12-01T02:00[:00][+01:00|Z]; "
                  "local time unless an offset is given (default: now)");
  cmd->add_option("--action-provider,--action-url", a.provider,
                  "name of the action provider, e.g. transfer");
  auto* body = cmd->add_option("--action-body", a.body,
                               "the provider's input, a JSON object");
  auto* file = cmd->add_option("--action-file", a.body_file,
                               "a file holding the provider's input JSON")
                   ->type_name("FILE");
  body->excludes(file);
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
}

void Submit(const Globals& g, const SubmitArgs& a) {
  v1::CreateJobRequest request;
  std::vector<std::string> paths;
  FillJob(a, request.mutable_job(), &paths);
  // A request id makes a retried submit create the job once, not twice.
  request.set_request_id(a.request_id.empty() ? NewRequestId() : a.request_id);
  v1::Job created;
  Client(g).Call(&v1::TimerService::Stub::CreateJob, request, &created);
  PrintJob(g, created, /*verbose=*/false);
}

void Update(const Globals& g, const std::string& job_id, const SubmitArgs& a) {
  v1::UpdateJobRequest request;
  std::vector<std::string> paths;
  FillJob(a, request.mutable_job(), &paths);
  if (paths.empty()) Fail(kUsage, "job update: give at least one option to change");
  request.mutable_job()->set_job_id(job_id);
  for (const std::string& p : paths) request.mutable_update_mask()->add_paths(p);
  v1::Job job;
  Client(g).Call(&v1::TimerService::Stub::UpdateJob, request, &job);
  PrintJob(g, job, /*verbose=*/false);
}

// pause, resume and run-now: one job id in, the job out.
template <typename Req>
void Act(const Globals& g, const std::string& job_id,
         grpc::Status (v1::TimerService::Stub::*method)(grpc::ClientContext*, const Req&,
                                                        v1::Job*),
         Req request = Req()) {
  request.set_job_id(job_id);
  v1::Job job;
  Client(g).Call(method, request, &job);
  PrintJob(g, job, /*verbose=*/false);
}

struct WatchArgs {
  bool all = false;
  std::vector<std::string> statuses;
  std::string name_contains;
  int64_t since = 0;
  int64_t limit = 0;  // 0: until interrupted.
};

// Prints events as they come. When the stream ends because timerd went away
// (UNAVAILABLE) or this watcher fell behind (RESOURCE_EXHAUSTED), reconnects
// with `since` = the last sequence seen, so no event is missed (or, if too
// many were, the server says RESET and sends fresh snapshots).
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

void Watch(const Globals& g, const std::string& job_id, const WatchArgs& args) {
  if (args.all == !job_id.empty()) Fail(kUsage, "give either JOB_ID or --all");
  if (args.since < 0) Fail(kUsage, "--since: must be >= 0");
  if (args.limit < 0) Fail(kUsage, "--limit: must be >= 0");
  v1::WatchJobsRequest all_request;
  for (const std::string& s : args.statuses) {
    v1::Job::Status status;
    if (!v1::Job::Status_Parse(absl::AsciiStrToUpper(s), &status) ||
        status == v1::Job::STATUS_UNSPECIFIED) {
      Fail(kUsage, absl::StrCat("--status: unknown job status \"", s, "\""));
    }
    all_request.add_statuses(status);
  }
  all_request.set_name_contains(args.name_contains);
  auto stub = v1::TimerService::NewStub(MakeChannel(g));
  int64_t since = args.since;
  int64_t printed = 0;
  absl::Duration backoff = absl::Milliseconds(200);
  for (;;) {
    grpc::ClientContext ctx;
    if (!g.token.empty()) ctx.AddMetadata("authorization", "Bearer " + g.token);
    bool got_any = false;
    bool limit_reached = false;
    auto print = [&](const v1::JobEvent& event) {
      got_any = true;
      since = event.sequence();
      if (g.format == "json") {
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
      status = ReadEvents(ctx, *stub->WatchJobs(&ctx, all_request), print);
    } else {
      v1::WatchJobRequest request;
      request.set_job_id(job_id);
      request.set_since(since);
      status = ReadEvents(ctx, *stub->WatchJob(&ctx, request), print);
    }
    if (limit_reached) return;
    if (status.ok()) return;  // The watched job was deleted.
    const grpc::StatusCode code = status.error_code();
    // UNAVAILABLE: timerd went away; RESOURCE_EXHAUSTED: this watcher fell
    // behind; CANCELLED: timerd was shutting down as we reconnected.
    if (code != grpc::StatusCode::UNAVAILABLE &&
        code != grpc::StatusCode::RESOURCE_EXHAUSTED &&
        code != grpc::StatusCode::CANCELLED) {
      Check(status, g);
    }
    if (got_any) backoff = absl::Milliseconds(200);
    std::cerr << "timer: " << (code == grpc::StatusCode::UNAVAILABLE
                                   ? absl::StrCat("lost timerd at ", g.server)
                                   : std::string("the stream fell behind"))
              << "; reconnecting with --since " << since << "\n";
    absl::SleepFor(backoff);  // Waiting for the server to come back.
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

void Results(const Globals& g, const std::string& job_id, bool verbose) {
  Client client(g);
  v1::ListJobResultsResponse all;
  v1::ListJobResultsRequest request;
  request.set_job_id(job_id);
  request.set_page_size(1000);
  do {
    v1::ListJobResultsResponse page;
    client.Call(&v1::TimerService::Stub::ListJobResults, request, &page);
    for (v1::JobResult& r : *page.mutable_results()) *all.add_results() = std::move(r);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (g.format == "json") {
    PrintJson(all, std::cout);
  } else {
    PrintResultsTable({all.results().begin(), all.results().end()}, verbose, std::cout);
  }
}

struct TransferArgs {
  std::string source, dest, items_file, sync_level;
  std::vector<std::string> items;  // Flat: SRC DST RECURSIVE, SRC DST RECURSIVE, ...
  bool verify_checksum = false, encrypt_data = false, preserve_timestamp = false;
};

// The transfer provider's body, from the seed CLI's options.
std::string TransferBody(const TransferArgs& t, const std::string& label) {
  TransferSpec spec;
  spec.source_endpoint_id = t.source;
  spec.destination_endpoint_id = t.dest;
  if (!t.items_file.empty()) {
    auto items = ParseItemsFile(ReadFileOrFail(t.items_file, "--items-file"),
                                absl::StrCat("--items-file ", t.items_file));
    if (!items.ok()) Fail(kUsage, std::string(items.status().message()));
    spec.items = *std::move(items);
  }
  for (size_t i = 0; i + 2 < t.items.size(); i += 3) {
    auto recursive = ParseBoolArg(t.items[i + 2], "--item");
    if (!recursive.ok()) Fail(kUsage, std::string(recursive.status().message()));
    spec.items.push_back({t.items[i], t.items[i + 1], *recursive});
  }
  if (spec.items.empty()) Fail(kUsage, "give at least one --item or an --items-file with items");
  spec.label = label;
  spec.sync_level = t.sync_level;
  spec.verify_checksum = t.verify_checksum;
  spec.encrypt_data = t.encrypt_data;
  spec.preserve_timestamp = t.preserve_timestamp;
  auto body = TransferBodyJson(spec);
  if (!body.ok()) Fail(kUsage, std::string(body.status().message()));
  return *std::move(body);
}

void Providers(const Globals& g, const std::string& name) {
  Client client(g);
  if (!name.empty()) {
    v1::GetActionProviderRequest request;
    request.set_name(name);
    v1::ActionProvider provider;
    client.Call(&v1::TimerService::Stub::GetActionProvider, request, &provider);
    if (g.format == "json") {
      PrintJson(provider, std::cout);
    } else {
      PrintProvider(provider, std::cout);
    }
    return;
  }
  v1::ListActionProvidersRequest request;
  v1::ListActionProvidersResponse all;
  do {
    v1::ListActionProvidersResponse page;
    client.Call(&v1::TimerService::Stub::ListActionProviders, request, &page);
    for (auto& p : *page.mutable_action_providers()) *all.add_action_providers() = p;
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (g.format == "json") {
    PrintJson(all, std::cout);
    return;
  }
  if (all.action_providers_size() == 0) std::cout << "No action providers are loaded.\n";
  for (const v1::ActionProvider& p : all.action_providers()) {
    std::cout << p.name() << "  " << p.version() << "  " << p.description() << "\n";
  }
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

TokenCache LoadCache() {
  TokenCache cache(TokenCache::DefaultPath());
  absl::Status s = cache.Load();
  if (absl::IsPermissionDenied(s)) Fail(kPermission, std::string(s.message()));
  if (!s.ok()) Fail(kError, std::string(s.message()));
  return cache;
}

// Fills g.token: TIMER_TOKEN wins over the cache.
void ResolveToken(Globals& g) {
  if (const char* env = std::getenv("TIMER_TOKEN"); env && *env) {
    g.token = env;
    g.token_source = "TIMER_TOKEN";
    return;
  }
  TokenCache cache = LoadCache();
  if (auto session = cache.Get(g.server)) {
    g.token = session->token;
    g.token_source = cache.path();
  }
}

v1::WhoAmIResponse WhoAmI(const Globals& g, const std::string& token) {
  auto stub = v1::SessionService::NewStub(MakeChannel(g));
  grpc::ClientContext ctx;
  Prepare(g, &ctx, token);
  v1::WhoAmIResponse who;
  Check(stub->WhoAmI(&ctx, v1::WhoAmIRequest(), &who), g);
  return who;
}

void PrintWho(const Globals& g, const v1::WhoAmIResponse& who) {
  if (g.format == "json") {
    PrintJson(who, std::cout);
    return;
  }
  std::cout << "Identity:     " << who.identity() << "\n"
            << "Auth method:  " << who.auth_method() << "\n"
            << "Expires:      "
            << (who.has_expire_time()
                    ? absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                       absl::FromUnixSeconds(who.expire_time().seconds()),
                                       absl::UTCTimeZone())
                    : std::string("never"))
            << "\n"
            << "Server:       " << g.server << "\n";
}

void SessionLogin(Globals& g, std::string token) {
  if (token.empty()) {
    // From stdin, so it stays out of the shell history and `ps`.
    std::getline(std::cin, token);
  }
  const size_t b = token.find_first_not_of(" \t\r\n");
  token = b == std::string::npos ? "" : token.substr(b, token.find_last_not_of(" \t\r\n") - b + 1);
  if (token.empty()) Fail(kUsage, "session login: give the token on stdin or with --token");
  g.token_source = "session login";
  const v1::WhoAmIResponse who = WhoAmI(g, token);
  TokenCache cache = LoadCache();
  cache.Put(g.server, {token, who.identity()});
  if (absl::Status s = cache.Save(); !s.ok()) Fail(kError, std::string(s.message()));
  if (g.format == "json") {
    PrintJson(who, std::cout);
  } else {
    std::cout << "Logged in to " << g.server << " as " << who.identity() << " ("
              << who.auth_method() << "); token saved in " << cache.path() << "\n";
  }
}

void SessionLogout(const Globals& g) {
  TokenCache cache = LoadCache();
  const bool had = cache.Remove(g.server);
  if (had) {
    if (absl::Status s = cache.Save(); !s.ok()) Fail(kError, std::string(s.message()));
  }
  std::cout << (had ? "Logged out of " : "No saved session for ") << g.server << "\n";
}

void SessionRevoke(const Globals& g) {
  if (g.token.empty()) {
    Fail(kPermission, "session revoke: no token to revoke; log in first or set TIMER_TOKEN");
  }
  auto stub = v1::SessionService::NewStub(MakeChannel(g));
  grpc::ClientContext ctx;
  Prepare(g, &ctx, g.token);
  v1::RevokeSessionResponse response;
  Check(stub->RevokeSession(&ctx, v1::RevokeSessionRequest(), &response), g);
  TokenCache cache = LoadCache();
  if (cache.Remove(g.server)) {
    if (absl::Status s = cache.Save(); !s.ok()) Fail(kError, std::string(s.message()));
  }
  std::cout << "Token revoked on " << g.server << " and logged out\n";
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
  if (const char* env = std::getenv("TIMER_TLS_CA"); env && *env) g.tls_ca = env;
  app.add_flag("--tls", g.tls, "connect with TLS (implied by the --tls-* options)");
  app.add_option("--tls-ca", g.tls_ca,
                 "PEM CA certificates that sign timerd's certificate (env TIMER_TLS_CA; "
                 "default: the system's)")
      ->check(CLI::ExistingFile);
  auto* tls_cert = app.add_option("--tls-cert", g.tls_cert,
                                  "PEM client certificate, for mutual TLS")
                       ->check(CLI::ExistingFile);
  auto* tls_key = app.add_option("--tls-key", g.tls_key, "PEM private key of --tls-cert")
                      ->check(CLI::ExistingFile);
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  app.add_option("--tls-server-name", g.tls_server_name,
                 "name to expect in timerd's certificate (default: the --server host)");

  CLI::App* session = app.add_subcommand(
      "session", "log in with a token, show who you are, log out, revoke");
  session->require_subcommand(1);
  std::string login_token;
  CLI::App* login = session->add_subcommand(
      "login",
      "check a token with timerd and save it for this server (0600 in "
      "~/.config/timer/tokens.json); reads the token from stdin unless --token");
  login->add_option("--token", login_token, "the token (default: read a line from stdin)");
  CLI::App* whoami = session->add_subcommand("whoami", "the identity timerd sees");
  CLI::App* logout =
      session->add_subcommand("logout", "forget the saved token for this server");
  CLI::App* session_revoke = session->add_subcommand(
      "revoke", "revoke the token on the server, then forget it");

  CLI::App* job = app.add_subcommand("job", "create, inspect and delete jobs");
  job->require_subcommand(1);

  SubmitArgs sa;
  CLI::App* submit = job->add_subcommand(
      "submit",
      "schedule a recurring job\n\n"
      "Example:\n"
      "  timer job submit --name nightly --interval 1d --start 2026-12-01T02:00 \\\n"
      "    --action-provider noop --action-body '{}'");
  AddJobOptions(submit, sa);
  submit->add_option("--request-id", sa.request_id,
                     "idempotency key; repeating it never creates a second job "
                     "(default: a new UUID)");
  submit->callback([&] {
    if (sa.interval.empty()) throw CLI::RequiredError("--interval");
    if (sa.provider.empty()) throw CLI::RequiredError("--action-provider");
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

  SubmitArgs ua;
  CLI::App* update = job->add_subcommand(
      "update", "change a job; only the options given change\n\n"
                "Example:\n  timer job update JOB_ID --interval 12h --stop-after-runs 10");
  update->add_option("JOB_ID", job_id, "the job's id")->required();
  AddJobOptions(update, ua);

  CLI::App* pause = job->add_subcommand("pause", "stop running a job until resumed");
  pause->add_option("JOB_ID", job_id, "the job's id")->required();
  CLI::App* resume = job->add_subcommand(
      "resume", "run a paused job again, from the next slot of its original grid");
  resume->add_option("JOB_ID", job_id, "the job's id")->required();
  std::string run_request_id;
  CLI::App* run_now = job->add_subcommand(
      "run-now", "run a job once now, without moving its schedule");
  run_now->add_option("JOB_ID", job_id, "the job's id")->required();
  run_now->add_option("--request-id", run_request_id,
                      "idempotency key; repeating it never starts a second run "
                      "(default: a new UUID)");
  WatchArgs wa;
  CLI::App* watch = job->add_subcommand(
      "watch",
      "print a job's events as they happen (or all your jobs' with --all)\n\n"
      "Starts with the current state (SNAPSHOT), then one line per change;\n"
      "reconnects by itself if timerd restarts. --format json prints one JSON\n"
      "object per line.\n\n"
      "Examples:\n  timer job watch JOB_ID\n"
      "  timer job watch --all --status paused --format json");
  watch->add_option("JOB_ID", job_id, "the job's id (or use --all)");
  watch->add_flag("--all", wa.all, "watch every job of yours");
  watch->add_option("--status", wa.statuses,
                    "with --all: only jobs in this status (repeatable: new, loaded, "
                    "updated, paused, ended)");
  watch->add_option("--name", wa.name_contains, "with --all: only jobs whose name contains this");
  watch->add_option("--since", wa.since,
                    "resume after this event sequence number (from an earlier watch)");
  watch->add_option("--limit", wa.limit, "stop after printing this many events");
  CLI::App* results = job->add_subcommand("results", "every kept result of a job");
  results->add_option("JOB_ID", job_id, "the job's id")->required();
  results->add_flag("-v,--verbose", verbose, "include the provider's details");

  SubmitArgs xa;
  TransferArgs ta;
  CLI::App* transfer = job->add_subcommand(
      "transfer",
      "schedule a recurring transfer between two endpoints\n\n"
      "Example:\n"
      "  timer job transfer --name nightly --interval 1d --start 2026-12-01T02:00 \\\n"
      "    --source-endpoint SRC_ID --dest-endpoint DST_ID \\\n"
      "    --item data/ backup/data/ true --item notes.txt backup/notes.txt false");
  transfer->add_option("--name", xa.name, "a name for the job");
  transfer->add_option("--label", xa.label, "the transfer's label (default: the job's name)");
  transfer->add_option("--interval", xa.interval, "time between runs: seconds, or 15m, 1h, 1d, 1w")
      ->required();
  transfer->add_option("--start,--start-time", xa.start, "first run (default: now)");
  transfer->add_option("--source-endpoint", ta.source, "source endpoint id")->required();
  transfer->add_option("--dest-endpoint", ta.dest, "destination endpoint id")->required();
  auto* item_opt = transfer->add_option("--item", ta.items,
                                        "SOURCE_PATH DEST_PATH RECURSIVE (repeatable)")
                       ->type_size(3)
                       ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  auto* file_opt2 = transfer->add_option(
      "--items-file", ta.items_file,
      "CSV of SOURCE_PATH, DEST_PATH, RECURSIVE lines ('#' starts a comment), "
      "instead of --item")
      ->type_name("FILE");
  item_opt->excludes(file_opt2);
  transfer->add_option("--sync-level", ta.sync_level,
                       "skip files already at the destination: exists, size, mtime, checksum")
      ->check(CLI::IsMember({"exists", "size", "mtime", "checksum"}));
  transfer->add_flag("--verify-checksum", ta.verify_checksum, "verify each copy with SHA-256");
  transfer->add_flag("--encrypt-data", ta.encrypt_data, "encrypt data in transit");
  transfer->add_flag("--preserve-timestamp", ta.preserve_timestamp,
                     "keep each file's modification time");
  transfer->add_option("--stop-after-runs", xa.stop_after_runs, "stop after N runs")
      ->check(CLI::PositiveNumber);
  transfer->add_option("--stop-after-date", xa.stop_after_date, "stop running at this time");

  CLI::App* provider = app.add_subcommand("provider", "inspect action providers");
  provider->require_subcommand(1);
  CLI::App* provider_list = provider->add_subcommand("list", "the loaded providers");
  std::string provider_name;
  CLI::App* provider_show =
      provider->add_subcommand("show", "one provider and its input schema");
  provider_show->add_option("NAME", provider_name, "the provider's name")->required();

  std::string shell;
  CLI::App* completion = app.add_subcommand(
      "completion",
      "print a shell completion script for bash or zsh\n\n"
      "bash (needs the bash-completion package, or source it from ~/.bashrc):\n"
      "  mkdir -p ~/.local/share/bash-completion/completions\n"
      "  timer completion bash > ~/.local/share/bash-completion/completions/timer\n"
      "zsh:\n"
      "  mkdir -p ~/.zfunc && timer completion zsh > ~/.zfunc/_timer\n"
      "  # in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath)\n"
      "Or for this shell only: source <(timer completion bash)   (zsh: after compinit)");
  completion->add_option("SHELL", shell, "bash or zsh")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "timer: " << e.what() << " (see --help)\n";
    return kUsage;
  }

  try {
    // Needs no server, token or TLS files.
    if (completion->parsed()) {
      std::cout << (shell == "bash" ? BashCompletion(app) : ZshCompletion(app));
      return kOk;
    }
    g.tls = g.tls || !g.tls_ca.empty() || !g.tls_cert.empty() || !g.tls_server_name.empty();
    if (login->parsed()) {
      SessionLogin(g, login_token);
      return kOk;
    }
    if (logout->parsed()) {
      SessionLogout(g);
      return kOk;
    }
    ResolveToken(g);
    if (whoami->parsed()) PrintWho(g, WhoAmI(g, g.token));
    if (session_revoke->parsed()) SessionRevoke(g);
    if (submit->parsed()) Submit(g, sa);
    if (status->parsed()) Status(g, job_id, verbose, show_deleted);
    if (list->parsed()) List(g, verbose, show_deleted);
    if (del->parsed()) Delete(g, job_id);
    if (update->parsed()) Update(g, job_id, ua);
    if (transfer->parsed()) {
      xa.provider = "transfer";
      // Without --label, the transfer's label names the job (as the seed does).
      if (xa.label.empty()) xa.label = xa.name;
      xa.body = TransferBody(ta, xa.label);
      Submit(g, xa);
    }
    if (pause->parsed()) Act(g, job_id, &v1::TimerService::Stub::PauseJob);
    if (resume->parsed()) Act(g, job_id, &v1::TimerService::Stub::ResumeJob);
    if (run_now->parsed()) {
      v1::RunJobNowRequest request;
      request.set_request_id(run_request_id.empty() ? NewRequestId() : run_request_id);
      Act(g, job_id, &v1::TimerService::Stub::RunJobNow, request);
    }
    if (results->parsed()) Results(g, job_id, verbose);
    if (watch->parsed()) Watch(g, job_id, wa);
    if (provider_list->parsed()) Providers(g, "");
    if (provider_show->parsed()) Providers(g, provider_name);
  } catch (const Exit& e) {
    return e.code;
  }
  return kOk;
}

}  // namespace
}  // namespace timer::cli

int main(int argc, char** argv) { return timer::cli::Run(argc, argv); }
