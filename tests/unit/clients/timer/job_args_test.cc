// Tests of the flag-to-proto mapping of `timer job submit|update|transfer`
// (clients/timer/job_args.h), including the globus-timer compatibility:
// --action-url, the {"body": ...} wrapper and --scope.
#include "job_args.h"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timer::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kSeedUrl[] = "https://actions.automate.globus.org/transfer/transfer/run";

TEST(ProviderNameFromActionUrlTest, TakesTheSegmentBeforeRunOrTheLastOne) {
  EXPECT_EQ(ProviderNameFromActionUrl(kSeedUrl), "transfer");
  EXPECT_EQ(ProviderNameFromActionUrl("https://actions.globus.org/hello_world/run/"),
            "hello_world");
  EXPECT_EQ(ProviderNameFromActionUrl("https://host:8443/providers/noop"), "noop");
  EXPECT_EQ(ProviderNameFromActionUrl("https://host/a/Transfer/run?x=1#frag"),
            "transfer");
  EXPECT_EQ(ProviderNameFromActionUrl("transfer"), "transfer");  // A bare name.
  EXPECT_EQ(ProviderNameFromActionUrl("transfer/run"), "transfer");
  EXPECT_EQ(ProviderNameFromActionUrl("https://host/run"), "run");
  // No path: the host is never taken for a name.
  EXPECT_EQ(ProviderNameFromActionUrl("https://transfer"), "");
  EXPECT_EQ(ProviderNameFromActionUrl("https://host/"), "");
  EXPECT_EQ(ProviderNameFromActionUrl(""), "");
}

TEST(ResolveActionUrlTest, PicksALoadedProvider) {
  JobArgs a;
  a.action_url = kSeedUrl;
  ASSERT_TRUE(ResolveActionUrl(&a, {"noop", "transfer"}).ok());
  EXPECT_EQ(a.provider, "transfer");

  JobArgs none;  // Without --action-url: untouched.
  none.provider = "noop";
  ASSERT_TRUE(ResolveActionUrl(&none, {}).ok());
  EXPECT_EQ(none.provider, "noop");
}

TEST(ResolveActionUrlTest, ErrorsNameTheOptionAndWhatWasLookedFor) {
  JobArgs unknown;
  unknown.action_url = "https://actions.automate.globus.org/search/ingest/run";
  absl::Status s = ResolveActionUrl(&unknown, {"noop", "transfer"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--action-url"));
  EXPECT_THAT(s.message(), HasSubstr("\"ingest\""));
  EXPECT_THAT(s.message(), HasSubstr("loaded: noop, transfer"));
  EXPECT_EQ(unknown.provider, "");

  JobArgs no_path;
  no_path.action_url = "https://transfer";
  s = ResolveActionUrl(&no_path, {"transfer"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--action-url https://transfer: no provider name"));

  JobArgs disagree;
  disagree.action_url = kSeedUrl;
  disagree.provider = "noop";
  s = ResolveActionUrl(&disagree, {"noop", "transfer"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--action-provider is \"noop\""));

  JobArgs agree;
  agree.action_url = kSeedUrl;
  agree.provider = "transfer";
  EXPECT_TRUE(ResolveActionUrl(&agree, {"transfer"}).ok());
}

TEST(UnwrapSeedBodyTest, UnwrapsOnlyALoneObjectUnderBody) {
  EXPECT_EQ(nlohmann::json::parse(UnwrapSeedBody(R"({"body": {"a": 1, "b": [2]}})")),
            nlohmann::json::parse(R"({"a": 1, "b": [2]})"));
  // Anything else is passed on exactly as given.
  for (const char* body :
       {R"({"a": 1})", R"({"body": {"a": 1}, "other": 2})", R"({"body": "text"})",
        R"({"body": [1]})", R"({ "body" : 1 })", "[1, 2]", "not json", "{}"}) {
    EXPECT_EQ(UnwrapSeedBody(body), body);
  }
}

TEST(FillJobTest, EveryOptionSetsItsFieldAndMaskPath) {
  JobArgs a;
  a.name = "nightly";
  a.label = "backup";
  a.interval = "1d";
  a.start = "2026-12-01T02:00";
  a.stop_after_date = "2027-01-01";
  a.stop_after_runs = 10;
  a.provider = "noop";
  a.body = R"({"body": {"x": 1}})";
  a.scope = "https://auth.globus.org/scopes/actions.globus.org/transfer/transfer";
  a.overlap = "allow";
  a.max_concurrent = 4;
  a.missed = "run_once";
  v1::Job job;
  std::vector<std::string> paths;
  ASSERT_TRUE(FillJob(a, absl::FixedTimeZone(3600), &job, &paths).ok());
  EXPECT_EQ(job.name(), "nightly");
  EXPECT_EQ(job.label(), "backup");
  EXPECT_EQ(job.schedule().interval_seconds(), 86400);
  EXPECT_EQ(job.schedule().start().seconds(), 1796090400 - 3600);  // 01:00Z
  EXPECT_EQ(job.schedule().stop_after_date().seconds(), 1798761600 - 3600);
  EXPECT_EQ(job.schedule().stop_after_runs(), 10);
  EXPECT_EQ(job.action().provider(), "noop");
  EXPECT_EQ(job.action().body(), R"({"x":1})");  // Unwrapped.
  EXPECT_EQ(job.overlap_policy(), v1::ALLOW);
  EXPECT_EQ(job.max_concurrent(), 4);
  EXPECT_EQ(job.missed_run_policy(), v1::RUN_ONCE);
  EXPECT_THAT(paths,
              ElementsAre("name", "label", "schedule.interval_seconds", "schedule.start",
                          "schedule.stop_after_date", "schedule.stop_after_runs",
                          "action.provider", "action.body", "overlap_policy",
                          "max_concurrent", "missed_run_policy"));
}

TEST(FillJobTest, RetryAndPauseOptionsSetTheirFieldsAndMaskPaths) {
  JobArgs a;
  a.retry_max_attempts = 3;
  a.retry_backoff = "30s";
  a.retry_multiplier = 1.5;
  a.retry_max_backoff = "5m";
  a.pause_after_failures = 0;  // Given: "never" (an update may set it back).
  v1::Job job;
  std::vector<std::string> paths;
  ASSERT_TRUE(FillJob(a, absl::UTCTimeZone(), &job, &paths).ok());
  EXPECT_EQ(job.retry_policy().max_attempts(), 3);
  EXPECT_EQ(job.retry_policy().initial_backoff().seconds(), 30);
  EXPECT_EQ(job.retry_policy().multiplier(), 1.5);
  EXPECT_EQ(job.retry_policy().max_backoff().seconds(), 300);
  EXPECT_EQ(job.pause_after_failures(), 0);
  EXPECT_THAT(paths,
              ElementsAre("retry_policy.max_attempts", "retry_policy.initial_backoff",
                          "retry_policy.multiplier", "retry_policy.max_backoff",
                          "pause_after_failures"));
  // Not given: nothing set, no path.
  v1::Job none;
  paths.clear();
  ASSERT_TRUE(FillJob(JobArgs(), absl::UTCTimeZone(), &none, &paths).ok());
  EXPECT_FALSE(none.has_retry_policy());
  EXPECT_TRUE(paths.empty());
  a.retry_backoff = "soon";
  EXPECT_THAT(FillJob(a, absl::UTCTimeZone(), &job, &paths).message(),
              HasSubstr("--retry-backoff"));
}

TEST(FillJobTest, CalendarScheduleOptionsSetTheirFieldsAndMaskPaths) {
  JobArgs a;
  a.calendar = {"dow=MON-FRI hour=2"};
  a.calendar_exclude = {"mon=12 dom=24-26"};
  a.tz = "Europe/Berlin";
  a.dst_gap = "shift";
  a.dst_repeat = "both";
  a.jitter = "5m";
  a.catch_up_window = "1h";
  v1::Job job;
  std::vector<std::string> paths;
  ASSERT_TRUE(FillJob(a, absl::UTCTimeZone(), &job, &paths).ok());
  const v1::Schedule& s = job.schedule();
  ASSERT_EQ(s.calendar().include_size(), 1);
  EXPECT_EQ(s.calendar().include(0).days_of_week(), "MON-FRI");
  EXPECT_EQ(s.calendar().include(0).hours(), "2");
  EXPECT_EQ(s.calendar().exclude(0).months(), "12");
  EXPECT_EQ(s.calendar().exclude(0).days_of_month(), "24-26");
  EXPECT_EQ(s.time_zone(), "Europe/Berlin");
  EXPECT_EQ(s.dst_gap(), v1::DST_GAP_SHIFT);
  EXPECT_EQ(s.dst_repeat(), v1::DST_REPEAT_BOTH);
  EXPECT_EQ(s.jitter_seconds(), 300);
  EXPECT_EQ(s.catch_up_window_seconds(), 3600);
  EXPECT_EQ(paths, (std::vector<std::string>{"schedule.calendar", "schedule.time_zone",
                                             "schedule.dst_gap", "schedule.dst_repeat",
                                             "schedule.jitter_seconds",
                                             "schedule.catch_up_window_seconds"}));
  EXPECT_EQ(ScheduleText(s),
            "calendar 'hour=2 dow=MON-FRI' except 'dom=24-26 mon=12' in Europe/Berlin");

  JobArgs once;
  once.once = "2026-12-24T18:00:00Z";
  v1::Job o;
  paths.clear();
  ASSERT_TRUE(FillJob(once, absl::UTCTimeZone(), &o, &paths).ok());
  EXPECT_TRUE(o.schedule().once());
  EXPECT_EQ(o.schedule().start().seconds(), 1798135200);
}

TEST(ScheduleTextTest, EchoesTheSchedulesOwnTextSafelyAndNamesTheOnceTime) {
  v1::Schedule cron;
  cron.set_cron("0 2 * * *\x1b[2J");
  cron.set_time_zone("Europe/Berlin\n");
  EXPECT_EQ(ScheduleText(cron), "cron '0 2 * * *\\x1b[2J' in Europe/Berlin\\n");
  v1::Schedule cal;
  cal.mutable_calendar()->add_include()->set_hours(std::string(200, '1'));
  EXPECT_THAT(ScheduleText(cal), HasSubstr("...(200 bytes)' in UTC"));
  v1::Schedule once;
  once.set_once(true);
  once.mutable_start()->set_seconds(1798135200);
  EXPECT_EQ(ScheduleText(once), "once at 2026-12-24T18:00:00Z");
}

TEST(FillJobTest, ScheduleKindsAreExclusiveAndSpecsParse) {
  JobArgs a;
  a.interval = "1h";
  a.cron = "0 2 * * *";
  v1::Job job;
  std::vector<std::string> paths;
  EXPECT_THAT(FillJob(a, absl::UTCTimeZone(), &job, &paths).message(),
              HasSubstr("one of --interval, --cron, --calendar and --once"));
  EXPECT_THAT(ParseCalendarSpecArg("hour", "--calendar").status().message(),
              HasSubstr("--calendar: \"hour\" is not KEY=VALUE"));
  EXPECT_THAT(ParseCalendarSpecArg("hour=1 hour=2", "--calendar").status().message(),
              HasSubstr("hour given twice"));
  EXPECT_THAT(ParseCalendarSpecArg("week=1", "--calendar-exclude").status().message(),
              HasSubstr("--calendar-exclude"));
  absl::StatusOr<v1::CalendarSpec> last =
      ParseCalendarSpecArg("dom=L hour=23 min=30", "x");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->days_of_month(), "L");
  EXPECT_EQ(last->minutes(), "30");
}

TEST(FillJobTest, BadValuesNameTheirOption) {
  const struct {
    std::string JobArgs::*field;
    const char* value;
    const char* option;
  } cases[] = {
      {&JobArgs::interval, "soon", "--interval: "},
      {&JobArgs::start, "2026-13-01", "--start: "},
      {&JobArgs::stop_after_date, "tomorrow", "--stop-after-date: "},
      {&JobArgs::overlap, "sometimes", "--overlap-policy: "},
      {&JobArgs::missed, "maybe", "--missed-run-policy: "},
  };
  for (const auto& c : cases) {
    JobArgs a;
    a.*c.field = c.value;
    v1::Job job;
    std::vector<std::string> paths;
    absl::Status s = FillJob(a, absl::UTCTimeZone(), &job, &paths);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.option;
    EXPECT_THAT(s.message(), HasSubstr(c.option));
  }
}

TEST(MakeCreateJobRequestTest, RequestIdGivenOrNew) {
  JobArgs a;
  a.interval = "600";
  a.provider = "transfer";
  a.body = "{}";
  absl::StatusOr<v1::CreateJobRequest> r =
      MakeCreateJobRequest(a, absl::UTCTimeZone(), "new");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->request_id(), "new");
  EXPECT_EQ(r->job().schedule().interval_seconds(), 600);
  EXPECT_FALSE(r->job().schedule().has_start());  // The server's default: now.
  a.request_id = "mine";
  EXPECT_EQ(MakeCreateJobRequest(a, absl::UTCTimeZone(), "new")->request_id(), "mine");
}

TEST(MakeUpdateJobRequestTest, OnlyTheGivenOptionsAreInTheMask) {
  JobArgs a;
  a.interval = "12h";
  a.stop_after_runs = 10;
  absl::StatusOr<v1::UpdateJobRequest> r =
      MakeUpdateJobRequest("j1", a, absl::UTCTimeZone());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->job().job_id(), "j1");
  EXPECT_THAT(r->update_mask().paths(),
              ElementsAre("schedule.interval_seconds", "schedule.stop_after_runs"));

  absl::StatusOr<v1::UpdateJobRequest> nothing =
      MakeUpdateJobRequest("j1", JobArgs(), absl::UTCTimeZone());
  EXPECT_EQ(nothing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(nothing.status().message(), HasSubstr("job update"));
}

TEST(MakeTransferJobArgsTest, BuildsTheTransferBodyFromItemsAndFile) {
  TransferArgs t;
  t.source = "src";
  t.dest = "dst";
  t.items = {"a.txt", "b.txt", "false", "dir/", "copy/", "TRUE"};
  t.items_file = "items.csv";
  t.sync_level = "mtime";
  t.verify_checksum = true;
  JobArgs a;
  a.name = "nightly";
  ASSERT_TRUE(MakeTransferJobArgs(t, "# comment\nf.txt, g.txt, no\n", &a).ok());
  EXPECT_EQ(a.provider, "transfer");
  EXPECT_EQ(a.label, "nightly");  // The label defaults to the name.
  const nlohmann::json body = nlohmann::json::parse(a.body);
  EXPECT_EQ(body["source_endpoint_id"], "src");
  EXPECT_EQ(body["destination_endpoint_id"], "dst");
  EXPECT_EQ(body["label"], "nightly");
  EXPECT_EQ(body["sync_level"], "mtime");
  EXPECT_EQ(body["verify_checksum"], true);
  ASSERT_EQ(body["transfer_items"].size(), 3u);
  EXPECT_EQ(body["transfer_items"][0]["source_path"], "f.txt");  // The file's first.
  EXPECT_EQ(body["transfer_items"][2]["recursive"], true);
}

TEST(MakeTransferJobArgsTest, ErrorsNameTheOption) {
  TransferArgs t;
  t.source = "src";
  t.dest = "dst";
  JobArgs a;
  absl::Status none = MakeTransferJobArgs(t, "", &a);
  EXPECT_THAT(none.message(), HasSubstr("--item"));
  t.items = {"a", "b", "perhaps"};
  absl::Status bad_bool = MakeTransferJobArgs(t, "", &a);
  EXPECT_EQ(bad_bool.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_bool.message(), HasSubstr("--item"));
  t.items.clear();
  t.items_file = "x.csv";
  absl::Status bad_file = MakeTransferJobArgs(t, "a, b\n", &a);
  EXPECT_THAT(bad_file.message(), HasSubstr("--items-file x.csv:1"));
}

TEST(MakeTransferJobArgsTest, TakesABatchFileAndTheTransferOptions) {
  TransferArgs t;
  t.source = "src";
  t.dest = "dst";
  t.batch = "-";
  t.skip_source_errors = true;
  t.recursive_symlinks = "copy";
  t.filter_rules = {{false, "*.tmp"}};
  JobArgs a;
  ASSERT_TRUE(
      MakeTransferJobArgs(t, "", &a, "/~/data /~/backup --recursive\n~/f.txt g.txt\n")
          .ok());
  const nlohmann::json body = nlohmann::json::parse(a.body);
  ASSERT_EQ(body["transfer_items"].size(), 2u);
  EXPECT_EQ(body["transfer_items"][0]["source_path"], "/~/data");
  EXPECT_EQ(body["transfer_items"][0]["recursive"], true);
  EXPECT_EQ(body["transfer_items"][1]["source_path"], "~/f.txt");
  EXPECT_EQ(body["skip_source_errors"], true);
  EXPECT_EQ(body["recursive_symlinks"], "copy");
  EXPECT_EQ(body["filter_rules"][0]["name"], "*.tmp");
  absl::Status bad = MakeTransferJobArgs(t, "", &a, "only-one-path\n");
  EXPECT_THAT(bad.message(), HasSubstr("--batch -:1"));
  absl::Status none = MakeTransferJobArgs(t, "", &a, "# empty\n");
  EXPECT_THAT(none.message(), HasSubstr("--batch"));
}

TEST(NewRequestIdTest, IsAVersion4Uuid) {
  const std::string id = NewRequestId();
  ASSERT_EQ(id.size(), 36u);
  EXPECT_EQ(id[14], '4');
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);
  EXPECT_NE(NewRequestId(), id);
}

}  // namespace
}  // namespace timer::cli
