// Tests of what `timer` prints (clients/timer/output.h): the table forms
// people read and the JSON forms scripts parse, on hand-built messages and a
// fixed `now`.
#include "output.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timer::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// 2030-01-01T00:00:00Z.
constexpr int64_t k2030 = 1893456000;

google::protobuf::Timestamp At(int64_t unix_seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(unix_seconds);
  return t;
}

v1::Job SampleJob() {
  v1::Job job;
  job.set_job_id("0b9c7e5e-0000-4000-8000-000000000001");
  job.set_name("nightly");
  job.set_status(v1::Job::LOADED);
  job.mutable_action()->set_provider("noop");
  job.mutable_action()->set_body("{}");
  job.mutable_schedule()->set_interval_seconds(3600);
  *job.mutable_schedule()->mutable_start() = At(k2030);
  *job.mutable_next_run() = At(k2030 + 3600);
  *job.mutable_last_run() = At(k2030);
  *job.mutable_create_time() = At(k2030 - 86400);
  job.set_n_runs(2);
  job.set_n_errors(1);
  v1::JobResult* r = job.add_results();
  r->set_run_number(2);
  r->set_status(v1::JobResult::SUCCEEDED);
  *r->mutable_scheduled_time() = At(k2030);
  *r->mutable_start_time() = At(k2030 + 1);
  *r->mutable_end_time() = At(k2030 + 2);
  r->set_action_id("act-2");
  r->set_details("{\"copied\":1}");
  return job;
}

std::string JobTable(const v1::Job& job, bool verbose) {
  std::ostringstream out;
  PrintJobTable(job, verbose, absl::FromUnixSeconds(k2030 + 60), out);
  return out.str();
}

TEST(PrintJobTableTest, SummaryHasOneAlignedLinePerField) {
  EXPECT_EQ(JobTable(SampleJob(), /*verbose=*/false),
            "Job ID:       0b9c7e5e-0000-4000-8000-000000000001\n"
            "Name:         nightly\n"
            "Status:       loaded\n"
            "Provider:     noop\n"
            "Interval:     3600s (1h)\n"
            "Start:        2030-01-01T00:00:00Z (1m ago)\n"
            "Next run:     2030-01-01T01:00:00Z (in 59m)\n"
            "Last run:     2030-01-01T00:00:00Z (1m ago)\n"
            "Runs:         2 (1 errors)\n"
            "Last result:  SUCCEEDED (run 2)\n"
            "Created:      2029-12-31T00:00:00Z (1d ago)\n");
}

TEST(PrintJobTableTest, OptionalFieldsAppearOnlyWhenSet) {
  v1::Job job = SampleJob();
  job.clear_name();
  job.clear_next_run();
  job.clear_results();
  std::string text = JobTable(job, false);
  EXPECT_THAT(text, HasSubstr("Name:         -\n"));
  EXPECT_THAT(text, HasSubstr("Next run:     -\n"));
  EXPECT_THAT(text, HasSubstr("Last result:  -\n"));
  EXPECT_THAT(text, Not(HasSubstr("Label:")));
  EXPECT_THAT(text, Not(HasSubstr("Stop after:")));
  EXPECT_THAT(text, Not(HasSubstr("Deleted:")));

  job.set_label("Timer Transfer Job");
  job.mutable_schedule()->set_stop_after_runs(10);
  *job.mutable_schedule()->mutable_stop_after_date() = At(k2030 + 7 * 86400);
  job.set_n_skipped(3);
  job.set_status(v1::Job::DELETED);
  *job.mutable_delete_time() = At(k2030);
  text = JobTable(job, false);
  EXPECT_THAT(text, HasSubstr("Label:        Timer Transfer Job\n"));
  EXPECT_THAT(text, HasSubstr("Stop after:   10 runs\n"));
  EXPECT_THAT(text, HasSubstr("Stop at:      2030-01-08T00:00:00Z (in 6d)\n"));
  EXPECT_THAT(text, HasSubstr("Runs:         2 (1 errors, 3 skipped)\n"));
  EXPECT_THAT(text, HasSubstr("Status:       deleted\n"));
  EXPECT_THAT(text, HasSubstr("Deleted:      2030-01-01T00:00:00Z (1m ago)\n"));
}

TEST(PrintJobTableTest, VerboseAddsPoliciesBodyAndEveryResult) {
  v1::Job job = SampleJob();
  job.set_owner("alice@example.org");
  job.set_overlap_policy(v1::BUFFER_ONE);
  job.set_missed_run_policy(v1::RUN_ONCE);
  const std::string text = JobTable(job, /*verbose=*/true);
  EXPECT_THAT(text, HasSubstr("Owner:        alice@example.org\n"
                              "Overlap:      buffer_one\n"
                              "Missed runs:  run_once\n"
                              "Action body:  {}\n"
                              "  - SUCCEEDED (run 2)\n"
                              "    scheduled 2030-01-01T00:00:00Z, started "
                              "2030-01-01T00:00:01Z, ended 2030-01-01T00:00:02Z\n"
                              "    action act-2\n"
                              "    details {\"copied\":1}\n"));
}

TEST(StatusTextTest, EndedJobsSayWhy) {
  v1::Job job;
  job.set_status(v1::Job::PAUSED);
  EXPECT_EQ(StatusText(job), "paused");
  job.set_status(v1::Job::ENDED);
  EXPECT_EQ(StatusText(job), "ended");
  job.set_end_reason(v1::Job::STOP_AFTER_RUNS);
  EXPECT_EQ(StatusText(job), "ended (stop_after_runs)");
}

TEST(PrintJobsTableTest, ColumnsAreAlignedAndRowsHaveNoTrailingSpaces) {
  v1::Job a = SampleJob();
  v1::Job b;
  b.set_job_id("short");
  b.set_status(v1::Job::NEW);
  b.mutable_schedule()->set_interval_seconds(90);
  std::ostringstream out;
  PrintJobsTable({a, b}, /*verbose=*/false, absl::FromUnixSeconds(k2030), out);
  EXPECT_EQ(out.str(),
            "JOB ID                                NAME     STATUS  INTERVAL  NEXT RUN"
            "              LAST RUN\n"
            "0b9c7e5e-0000-4000-8000-000000000001  nightly  loaded  1h        "
            "2030-01-01T01:00:00Z  2030-01-01T00:00:00Z\n"
            "short                                 -        new     1m 30s    -"
            "                     -\n");
}

TEST(PrintJobsTableTest, VerboseIsOneBlockPerJob) {
  std::ostringstream out;
  PrintJobsTable({SampleJob(), SampleJob()}, /*verbose=*/true,
                 absl::FromUnixSeconds(k2030), out);
  const std::string text = out.str();
  EXPECT_THAT(text, HasSubstr("\n\nJob ID:"));  // A blank line between blocks.
  EXPECT_NE(text.find("Action body:"), text.rfind("Action body:"));  // One per job.
}

TEST(PrintResultsTableTest, RowsWithErrorsAndDetails) {
  v1::JobResult ok;
  ok.set_run_number(3);
  ok.set_manual(true);
  ok.set_status(v1::JobResult::SUCCEEDED);
  *ok.mutable_scheduled_time() = At(k2030);
  *ok.mutable_start_time() = At(k2030);
  *ok.mutable_end_time() = At(k2030 + 5);
  ok.set_action_id("act-3");
  ok.set_details("done");
  v1::JobResult failed;
  failed.set_run_number(2);
  failed.set_status(v1::JobResult::FAILED);
  *failed.mutable_scheduled_time() = At(k2030 - 3600);
  failed.set_error("endpoint not found");

  std::ostringstream brief;
  PrintResultsTable({ok, failed}, /*verbose=*/false, brief);
  EXPECT_EQ(brief.str(),
            "RUN      STATUS     SCHEDULED             STARTED               ENDED\n"
            "3 (now)  succeeded  2030-01-01T00:00:00Z  2030-01-01T00:00:00Z  "
            "2030-01-01T00:00:05Z\n"
            "2        failed     2029-12-31T23:00:00Z  -                     -\n"
            "    error: endpoint not found\n");

  std::ostringstream verbose;
  PrintResultsTable({ok}, /*verbose=*/true, verbose);
  EXPECT_THAT(verbose.str(), HasSubstr("\n    action: act-3\n    details: done\n"));

  std::ostringstream none;
  PrintResultsTable({}, false, none);
  EXPECT_EQ(none.str(), "No results.\n");
}

TEST(PrintResultsTableTest, AttemptsOfARetriedRunAndItsNextAttempt) {
  v1::JobResult r;
  r.set_run_number(4);
  r.set_status(v1::JobResult::PENDING);
  *r.mutable_scheduled_time() = At(k2030);
  *r.mutable_start_time() = At(k2030);
  r.set_error("refused");
  r.set_error_class(v1::ERROR_CLASS_TRANSIENT);
  *r.mutable_next_attempt_time() = At(k2030 + 20);
  for (int n = 1; n <= 2; ++n) {
    v1::RunAttempt* a = r.add_attempts();
    a->set_attempt(n);
    *a->mutable_start_time() = At(k2030 + 10 * (n - 1));
    *a->mutable_end_time() = At(k2030 + 10 * (n - 1) + 1);
    a->set_error("refused");
    a->set_error_class(v1::ERROR_CLASS_TRANSIENT);
  }
  std::ostringstream brief;
  PrintResultsTable({r}, /*verbose=*/false, brief);
  EXPECT_THAT(brief.str(), HasSubstr("    error: refused (transient)\n"
                                     "    next attempt: 2030-01-01T00:00:20Z\n"
                                     "    attempts: 2 (-v lists them)\n"));
  std::ostringstream verbose;
  PrintResultsTable({r}, /*verbose=*/true, verbose);
  EXPECT_THAT(verbose.str(),
              HasSubstr("    attempt 1: 2030-01-01T00:00:00Z - 2030-01-01T00:00:01Z  "
                        "failed (transient): refused\n"
                        "    attempt 2: 2030-01-01T00:00:10Z - 2030-01-01T00:00:11Z  "
                        "failed (transient): refused\n"));
}

TEST(PrintJobTableTest, APausedJobSaysWhyAndRetriesAreShown) {
  v1::Job job = SampleJob();
  job.set_status(v1::Job::PAUSED);
  job.mutable_inactive_reason()->set_cause(v1::InactiveReason::CONSECUTIVE_FAILURES);
  job.mutable_inactive_reason()->set_detail("3 consecutive runs failed; last: boom");
  job.set_pause_after_failures(3);
  job.set_consecutive_failures(3);
  job.mutable_retry_policy()->set_max_attempts(4);
  std::ostringstream out;
  PrintJobTable(job, /*verbose=*/false, absl::FromUnixSeconds(k2030), out);
  EXPECT_THAT(out.str(),
              HasSubstr("Paused:       after failures: 3 consecutive runs failed; "
                        "last: boom\n"));
  EXPECT_THAT(out.str(), HasSubstr("up to 4 attempts on transient errors, backoff 10s "
                                   "(less on short intervals) x2 up to 10m"));
  EXPECT_THAT(out.str(), HasSubstr("3 consecutive failures (3 so far)"));
}

TEST(PrintProviderTest, ShowsTheSchema) {
  v1::ActionProvider p;
  p.set_name("noop");
  p.set_version("1.0.0");
  p.set_abi_version("1.2");
  p.set_description("does nothing");
  p.set_input_schema("{\"type\": \"object\"}");
  std::ostringstream one;
  PrintProvider(p, one);
  EXPECT_EQ(one.str(),
            "Name:         noop\n"
            "Version:      1.0.0\n"
            "ABI:          1.2\n"
            "Description:  does nothing\n"
            "Input schema:\n"
            "{\"type\": \"object\"}\n");

  // What the provider tells the caller of its configuration: the transfer
  // provider's endpoints, one block each; nothing when it says nothing.
  p.set_configuration(
      R"({"endpoints":[{"id":"e1","type":"local","display_name":"lab disk","home":"/",)"
      R"("encrypt_data":true},{"id":"e2","type":"s3","bucket":"b","part_size":5242880,)"
      R"("encrypt_data":false}]})");
  std::ostringstream with_endpoints;
  PrintProvider(p, with_endpoints);
  EXPECT_THAT(with_endpoints.str(), HasSubstr("Input schema:\n{\"type\": \"object\"}\n"
                                              "Endpoints you may use:\n"
                                              "  e1 (local) lab disk\n"
                                              "    encrypt_data: yes home: /\n"
                                              "  e2 (s3)\n"
                                              "    bucket: b encrypt_data: no part_size: "
                                              "5242880\n"));
  p.set_configuration(R"({"endpoints":[]})");
  std::ostringstream no_endpoints;
  PrintProvider(p, no_endpoints);
  EXPECT_THAT(no_endpoints.str(), HasSubstr("Endpoints:    none that you may use\n"));
  p.set_configuration("{}");
  std::ostringstream nothing;
  PrintProvider(p, nothing);
  EXPECT_EQ(nothing.str(), one.str());

  v1::ListActionProvidersResponse list;
  std::ostringstream empty;
  PrintProvidersTable(list, empty);
  EXPECT_EQ(empty.str(), "No action providers are loaded.\n");
  *list.add_action_providers() = p;
  std::ostringstream lines;
  PrintProvidersTable(list, lines);
  EXPECT_EQ(lines.str(), "noop  1.0.0  does nothing\n");
}

TEST(PrintWhoAmITest, ExpiryInUtcOrNever) {
  v1::WhoAmIResponse who;
  who.set_identity("alice@example.org");
  who.set_auth_method("token");
  std::ostringstream never;
  PrintWhoAmI(who, "127.0.0.1:50051", never);
  EXPECT_EQ(never.str(),
            "Identity:     alice@example.org\n"
            "Auth method:  token\n"
            "Expires:      never\n"
            "Server:       127.0.0.1:50051\n");
  *who.mutable_expire_time() = At(k2030);
  std::ostringstream expires;
  PrintWhoAmI(who, "h:1", expires);
  EXPECT_THAT(expires.str(), HasSubstr("Expires:      2030-01-01T00:00:00Z\n"));
}

TEST(PrintJsonTest, ProtoFieldNamesEveryFieldOneDocument) {
  v1::Job job;
  job.set_job_id("j1");
  std::ostringstream out;
  PrintJson(job, out);
  const std::string text = out.str();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const nlohmann::json doc = nlohmann::json::parse(text);
  EXPECT_EQ(doc["job_id"], "j1");
  EXPECT_EQ(doc["name"], "");     // Default values are printed too.
  EXPECT_EQ(doc["n_runs"], "0");  // int64 as a string (the JSON mapping).
  EXPECT_EQ(doc["status"], "STATUS_UNSPECIFIED");
}

TEST(PrintJsonLineTest, OneLinePerMessage) {
  v1::JobEvent event;
  event.set_sequence(7);
  event.set_type(v1::JobEvent::SNAPSHOT);
  std::ostringstream out;
  PrintJsonLine(event, out);
  PrintJsonLine(event, out);
  const std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  const nlohmann::json doc = nlohmann::json::parse(text.substr(0, text.find('\n')));
  EXPECT_EQ(doc["sequence"], "7");
  EXPECT_EQ(doc["type"], "SNAPSHOT");
}

TEST(PrintEventLineTest, TimeSequenceTypeJobAndRun) {
  v1::JobEvent event;
  *event.mutable_event_time() = At(k2030);
  event.set_sequence(12);
  event.set_type(v1::JobEvent::RUN_FINISHED);
  event.mutable_job()->set_job_id("j1");
  event.mutable_job()->set_name("nightly");
  event.mutable_job()->set_status(v1::Job::LOADED);
  event.mutable_result()->set_run_number(4);
  event.mutable_result()->set_status(v1::JobResult::FAILED);
  event.mutable_result()->set_error("boom");
  std::ostringstream out;
  PrintEventLine(event, out);
  EXPECT_EQ(out.str(),
            "2030-01-01T00:00:00Z  #12  RUN_FINISHED  j1 (nightly)  loaded  run 4 "
            "FAILED: boom\n");

  v1::JobEvent reset;
  *reset.mutable_event_time() = At(k2030);
  reset.set_sequence(13);
  reset.set_type(v1::JobEvent::RESET);
  std::ostringstream reset_out;
  PrintEventLine(reset, reset_out);
  EXPECT_EQ(
      reset_out.str(),
      "2030-01-01T00:00:00Z  #13  RESET  (events were missed; current state follows)\n");
}

// ---------------------------------------------------------------------------
// Text from timerd is printed, never obeyed by the terminal.

// What an owner (or a provider's error) could put in a name or a message:
// a title change, a screen clear, a carriage return that hides a line, a
// C1 control sequence introducer and a right-to-left override.
const std::string kHostile =
    "x\x1b]0;owned\x07\x1b[2J\rfake line\n\x9b"
    "31m\xc2\x9b"
    "31m\xe2\x80\xae"
    "ok";

void ExpectNothingATerminalObeys(const std::string& out) {
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    EXPECT_FALSE((c < 0x20 && c != '\n') || c == 0x7f)
        << "control byte " << int{c} << " at " << i << " in:\n"
        << out;
  }
  EXPECT_THAT(out, Not(HasSubstr("\xc2\x9b")));      // U+009B, CSI
  EXPECT_THAT(out, Not(HasSubstr("\xe2\x80\xae")));  // U+202E, RLO
  EXPECT_THAT(out, Not(HasSubstr("\nfake line")));   // No line of its own.
}

TEST(HostileTextTest, NoControlCharacterFromTimerdReachesTheTerminal) {
  v1::Job job = SampleJob();
  job.set_name(kHostile);
  job.set_label(kHostile);
  job.set_owner(kHostile);
  job.mutable_action()->set_body(kHostile);
  v1::JobResult* r = job.add_results();
  r->set_run_number(1);
  r->set_status(v1::JobResult::FAILED);
  r->set_error(kHostile);
  r->set_action_id(kHostile);
  r->set_details(kHostile);
  std::ostringstream one, many, results, event, who, provider, providers;
  PrintJobTable(job, /*verbose=*/true, absl::FromUnixSeconds(k2030), one);
  PrintJobsTable({job, job}, /*verbose=*/false, absl::FromUnixSeconds(k2030), many);
  PrintResultsTable({*r}, /*verbose=*/true, results);
  v1::JobEvent e;
  *e.mutable_job() = job;
  *e.mutable_result() = *r;
  PrintEventLine(e, event);
  v1::WhoAmIResponse w;
  w.set_identity(kHostile);
  w.set_auth_method(kHostile);
  PrintWhoAmI(w, "h:1", who);
  v1::ActionProvider p;
  p.set_name(kHostile);
  p.set_version(kHostile);
  p.set_description(kHostile);
  p.set_input_schema(kHostile);
  p.set_configuration(
      nlohmann::json{{"endpoints", {{{"id", kHostile}, {"display_name", kHostile}}}}}
          .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  PrintProvider(p, provider);
  v1::ListActionProvidersResponse list;
  *list.add_action_providers() = p;
  PrintProvidersTable(list, providers);
  for (const std::string& out : {one.str(), many.str(), results.str(), event.str(),
                                 who.str(), provider.str(), providers.str()}) {
    SCOPED_TRACE(out);
    ExpectNothingATerminalObeys(out);
    EXPECT_THAT(out, HasSubstr("\\x1b]0;owned\\x07\\x1b[2J\\r"));
  }
}

}  // namespace
}  // namespace timer::cli
