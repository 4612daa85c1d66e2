// End to end, the installed timerd and timer: calendar schedules. A `once`
// job runs exactly once and ends; a cron job with seconds fires on whole
// seconds, exactly at the times `timer job next` listed beforehand; `timer
// job backfill` runs a cron job's past slots with their nominal times.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli_fixture.h"

namespace timer::testing {
namespace {

class CalendarE2eTest : public CliTest {};

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

TEST_F(CalendarE2eTest, OnceJobRunsExactlyOnceAndEnds) {
  auto timerd = StartTimerd();
  const absl::Time at = absl::Ceil(absl::Now() - absl::UnixEpoch(), absl::Seconds(1)) +
                        absl::UnixEpoch() + absl::Seconds(2);
  json job = CliJson({"job", "submit", "--name", "once", "--once", Rfc3339(at),
                      "--action-provider", "noop", "--action-body", "{}"});
  const std::string id = job["job_id"];
  EXPECT_EQ(job["schedule"]["once"], true);
  json ended = WaitForJob(id, [](const json& j) { return j["status"] == "ENDED"; });
  EXPECT_EQ(ended["end_reason"], "SCHEDULE_COMPLETE");
  EXPECT_EQ(ended["n_runs"], "1");
  json results = CliJson({"job", "results", id});
  ASSERT_EQ(results["results"].size(), 1u) << results.dump();
  EXPECT_EQ(results["results"][0]["scheduled_time"], Rfc3339(at));
  // Ended: run-now is refused, and nothing else is ever scheduled.
  EXPECT_FALSE(ended.contains("next_run"));
}

TEST_F(CalendarE2eTest, CronWithSecondsFiresExactlyWhenJobNextSaid) {
  auto timerd = StartTimerd();
  // Slots from a whole second a few seconds ahead: `job next` lists all four
  // before the first fires, however slowly the CLI runs (an instrumented
  // build on a loaded machine took over a second between submit and next).
  const absl::Time start = absl::Ceil(absl::Now() - absl::UnixEpoch(), absl::Seconds(1)) +
                           absl::UnixEpoch() + absl::Seconds(5);
  json job = CliJson({"job", "submit", "--name", "every-second", "--cron",
                      "*/1 * * * * *", "--start", Rfc3339(start), "--action-provider",
                      "noop", "--action-body", "{}", "--stop-after-runs", "4"});
  const std::string id = job["job_id"];
  json next = CliJson({"job", "next", id, "-n", "4"});
  ASSERT_EQ(next["entries"].size(), 4u) << next.dump();
  std::vector<std::string> listed;
  for (const json& e : next["entries"]) {
    const std::string t = e["fire_time"];
    EXPECT_EQ(t.find('.'), std::string::npos) << "not a whole second: " << t;
    listed.push_back(t);
  }
  // The fourth run reaches stop_after_runs.
  json ended = WaitForJob(
      id, [](const json& j) { return j["status"] == "ENDED"; }, absl::Seconds(20));
  EXPECT_EQ(ended["end_reason"], "STOP_AFTER_RUNS");
  json results = CliJson({"job", "results", id});
  std::vector<std::string> fired;
  for (const json& r : results["results"])
    fired.insert(fired.begin(), r["scheduled_time"]);
  // Exactly the times `job next` listed, the first at `start`.
  EXPECT_EQ(fired, listed) << results.dump();
  ASSERT_FALSE(listed.empty());
  EXPECT_EQ(listed[0], Rfc3339(start));
}

TEST_F(CalendarE2eTest, ScheduleErrorsNameTheFieldAndStatusShowsTheZone) {
  auto timerd = StartTimerd();
  RunResult bad = Cli({"job", "submit", "--cron", "0 25 * * *", "--action-provider",
                       "noop", "--action-body", "{}"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("schedule.cron: field 2 (hours)"), std::string::npos) << bad.err;
  RunResult zone = Cli({"job", "submit", "--cron", "0 2 * * *", "--tz", "Mars/Base",
                        "--action-provider", "noop", "--action-body", "{}"});
  EXPECT_NE(zone.err.find("schedule.time_zone: unknown zone \"Mars/Base\""),
            std::string::npos)
      << zone.err;
  RunResult ok = Cli({"job", "submit", "--cron", "0 2 * * *", "--tz", "Europe/Berlin",
                      "--action-provider", "noop", "--action-body", "{}"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("cron '0 2 * * *' in Europe/Berlin"), std::string::npos)
      << ok.out;
  RunResult preview = Cli({"schedule", "preview", "30 2 * * *", "--tz", "Europe/Berlin",
                           "--from", "2026-03-28T12:00:00Z", "-n", "2"});
  ASSERT_EQ(preview.exit_code, 0) << preview.err;
  EXPECT_NE(preview.out.find("2026-03-29T01:00:00Z"), std::string::npos) << preview.out;
  EXPECT_NE(preview.out.find("does not exist"), std::string::npos) << preview.out;
}

TEST_F(CalendarE2eTest, BackfillRunsThePastSlotsOfACronJobWithTheirNominalTimes) {
  auto timerd = StartTimerd();
  const absl::Time hour =
      absl::Floor(absl::Now() - absl::UnixEpoch(), absl::Hours(1)) + absl::UnixEpoch();
  json job = CliJson({"job", "submit", "--name", "hourly", "--cron", "0 * * * *",
                      "--start", Rfc3339(hour - absl::Hours(24)), "--action-provider",
                      "noop", "--action-body", "{}"});
  const std::string id = job["job_id"];
  const std::vector<std::string> backfill = {"job",
                                             "backfill",
                                             id,
                                             "--from",
                                             Rfc3339(hour - absl::Hours(5)),
                                             "--to",
                                             Rfc3339(hour - absl::Hours(2)),
                                             "--request-id",
                                             "e2e-fill"};
  json recorded = CliJson(backfill);
  ASSERT_EQ(recorded["results"].size(), 3u) << recorded.dump();
  for (int i = 0; i < 3; ++i) {
    const json& run = recorded["results"][i];
    EXPECT_EQ(run["scheduled_time"], Rfc3339(hour - absl::Hours(5 - i))) << run.dump();
    EXPECT_EQ(run["backfill"], true) << run.dump();
    EXPECT_EQ(run["status"], "PENDING") << run.dump();
  }
  // All three run (noop: at once, one after another) and succeed.
  const auto backfills_succeeded = [](const json& j) {
    int n = 0;
    for (const json& r : j.value("results", json::array())) {
      if (r.value("backfill", false) && r["status"] == "SUCCEEDED") ++n;
    }
    return n == 3;
  };
  json done = WaitForJob(id, backfills_succeeded);
  ASSERT_TRUE(backfills_succeeded(done)) << done.dump();
  // Not runs of the grid: n_runs is untouched.
  EXPECT_EQ(done["n_runs"], "0") << done.dump();
  json results = CliJson({"job", "results", id});
  std::vector<std::string> times;
  for (const json& r : results["results"]) {
    if (r.value("backfill", false)) times.insert(times.begin(), r["scheduled_time"]);
  }
  EXPECT_EQ(times, (std::vector<std::string>{Rfc3339(hour - absl::Hours(5)),
                                             Rfc3339(hour - absl::Hours(4)),
                                             Rfc3339(hour - absl::Hours(3))}));
  // The table marks them.
  RunResult table = Cli({"job", "results", id});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("3 (backfill)"), std::string::npos) << table.out;
  // Retried with the same request id: the same runs, nothing new.
  json again = CliJson(backfill);
  ASSERT_EQ(again["results"].size(), 3u) << again.dump();
  EXPECT_EQ(again["results"][0]["run_number"], recorded["results"][0]["run_number"]);
  EXPECT_EQ(again["results"][2]["status"], "SUCCEEDED") << again.dump();
  // The help shows how.
  RunResult help = Cli({"job", "backfill", "--help"});
  EXPECT_NE(help.out.find("Examples:\n  timer job backfill JOB_ID --from"),
            std::string::npos)
      << help.out;
  // A range reaching into the future is refused, naming the field.
  RunResult future = Cli({"job", "backfill", id, "--from", Rfc3339(hour), "--to",
                          Rfc3339(absl::Now() + absl::Hours(1))});
  EXPECT_NE(future.exit_code, 0);
  EXPECT_NE(future.err.find("end_time: must not be after now"), std::string::npos)
      << future.err;
}

}  // namespace
}  // namespace timer::testing
