// Tests of the schedule grid math (domain/schedule.h): run k is due at
// start + k * interval, and FirstSlotAtOrAfter finds the first run not in the
// past.

#include "domain/schedule.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "domain/time_util.h"
#include "gtest/gtest.h"

namespace timer::domain {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);
constexpr absl::Duration kMinute = absl::Minutes(1);
constexpr absl::Duration kNano = absl::Nanoseconds(1);

TEST(SlotTimeTest, IsStartPlusKIntervals) {
  EXPECT_EQ(SlotTime(kStart, kMinute, 0), kStart);
  EXPECT_EQ(SlotTime(kStart, kMinute, 1), kStart + kMinute);
  EXPECT_EQ(SlotTime(kStart, kMinute, 1440), kStart + absl::Hours(24));
}

TEST(FirstSlotAtOrAfterTest, BeforeStartIsSlotZero) {
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, kMinute, kStart - absl::Hours(5)), 0);
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, kMinute, kStart - kNano), 0);
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, kMinute, absl::InfinitePast()), 0);
}

TEST(FirstSlotAtOrAfterTest, AtStartIsSlotZero) {
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, kMinute, kStart), 0);
}

TEST(FirstSlotAtOrAfterTest, JustAfterStartIsSlotOne) {
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, kMinute, kStart + kNano), 1);
}

TEST(FirstSlotAtOrAfterTest, ExactlyOnASlotIsThatSlot) {
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, kMinute, kStart + kMinute), 1);
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, kMinute, kStart + 7 * kMinute), 7);
}

TEST(FirstSlotAtOrAfterTest, JustBeforeASlotIsThatSlot) {
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, kMinute, kStart + 7 * kMinute - kNano), 7);
}

TEST(FirstSlotAtOrAfterTest, JustAfterASlotIsTheNextOne) {
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, kMinute, kStart + 7 * kMinute + kNano), 8);
}

TEST(FirstSlotAtOrAfterTest, SubSecondIntervals) {
  const absl::Duration interval = absl::Milliseconds(250);
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, interval, kStart + absl::Seconds(1)), 4);
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, interval, kStart + absl::Milliseconds(1001)), 5);
}

TEST(FirstSlotAtOrAfterTest, LongSpansStayExact) {
  // Ten years of one-second slots: no floating point drift.
  const absl::Time t = kStart + absl::Hours(24 * 3652);
  const int64_t k = FirstSlotAtOrAfter(kStart, absl::Seconds(1), t);
  EXPECT_EQ(k, int64_t{3652} * 24 * 3600);
  EXPECT_EQ(FirstSlotAtOrAfter(kStart, absl::Seconds(1), t + kNano), k + 1);
}

TEST(FirstSlotAtOrAfterTest, StartBeforeTheUnixEpoch) {
  const absl::Time start = absl::FromUnixSeconds(-1000);
  // 1001 s after start with 300 s slots: slot 4 (1200 s) is the first not before.
  EXPECT_EQ(FirstSlotAtOrAfter(start, absl::Seconds(300), absl::FromUnixSeconds(1)), 4);
}

TEST(FirstSlotAtOrAfterTest, ResultIsTheFirstSlotNotBeforeT) {
  const absl::Duration interval = absl::Seconds(7);
  for (int64_t offset_ms = -3000; offset_ms <= 60000; offset_ms += 333) {
    const absl::Time t = kStart + absl::Milliseconds(offset_ms);
    const int64_t k = FirstSlotAtOrAfter(kStart, interval, t);
    ASSERT_GE(k, 0) << "offset " << offset_ms << " ms";
    EXPECT_GE(SlotTime(kStart, interval, k), t) << "offset " << offset_ms << " ms";
    if (k > 0) {
      EXPECT_LT(SlotTime(kStart, interval, k - 1), t) << "offset " << offset_ms << " ms";
    }
  }
}

}  // namespace

// --- Every kind: once, cron, calendar; jitter, catch-up window, stop
// conditions (DecideFire with the clock given as `now`).

absl::Time Utc(const char* text) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, text, &t, &err)) << text << err;
  return t;
}

v1::Job CronJob(const std::string& expr, const std::string& zone, const char* start) {
  v1::Job job;
  job.set_job_id("0a6b7c2e-5d1f-4f7a-9b0c-1d2e3f405162");
  job.mutable_schedule()->set_cron(expr);
  job.mutable_schedule()->set_time_zone(zone);
  *job.mutable_schedule()->mutable_start() = ToProto(Utc(start));
  return job;
}

// Fires `job` at its next_run as the engine would (at `due`, `now`),
// applying the decision as the engine does.
FireDecision FireAt(v1::Job& job, absl::Time now) {
  const absl::Time due = FromProto(job.next_run());
  FireDecision d = DecideFire(job, due, now);
  if (d.kind == FireDecision::Kind::kRun) job.set_n_runs(job.n_runs() + 1);
  if (d.next) {
    *job.mutable_next_run() = ToProto(*d.next_fire);
    *job.mutable_next_scheduled_time() = ToProto(*d.next);
  } else {
    job.clear_next_run();
    job.clear_next_scheduled_time();
  }
  return d;
}

void Place(v1::Job& job, absl::Time earliest) {
  v1::Job::EndReason reason;
  auto next = NextRunAtOrAfter(job, earliest, &reason);
  ASSERT_TRUE(next.has_value());
  *job.mutable_next_run() = ToProto(next->fire);
  *job.mutable_next_scheduled_time() = ToProto(next->slot);
}

TEST(DecideFireKindsTest, OnceRunsExactlyOnceThenEndsScheduleComplete) {
  v1::Job job;
  job.mutable_schedule()->set_once(true);
  *job.mutable_schedule()->mutable_start() = ToProto(kStart);
  Place(job, kStart - absl::Hours(1));
  EXPECT_EQ(FromProto(job.next_run()), kStart);
  const FireDecision d = FireAt(job, kStart);
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_EQ(d.scheduled, kStart);
  EXPECT_FALSE(d.next.has_value());
  EXPECT_EQ(d.end_reason, v1::Job::SCHEDULE_COMPLETE);
  // Nothing left to place it on afterwards.
  v1::Job::EndReason reason;
  EXPECT_FALSE(NextRunAtOrAfter(job, kStart + kNano, &reason).has_value());
  EXPECT_EQ(reason, v1::Job::SCHEDULE_COMPLETE);
}

TEST(DecideFireKindsTest, OnceFiredLateStillRunsOnce) {
  v1::Job job;
  job.mutable_schedule()->set_once(true);
  *job.mutable_schedule()->mutable_start() = ToProto(kStart);
  Place(job, kStart);
  const FireDecision d = FireAt(job, kStart + absl::Hours(5));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_EQ(d.end_reason, v1::Job::SCHEDULE_COMPLETE);
}

TEST(DecideFireKindsTest, CronWithSecondsFiresOnWholeSecondsWithoutDrift) {
  v1::Job job = CronJob("*/1 * * * * *", "UTC", "2026-01-01T00:00:00.250Z");
  Place(job, Utc("2026-01-01T00:00:00.250Z"));
  EXPECT_EQ(FromProto(job.next_run()), Utc("2026-01-01T00:00:01Z"));
  for (int i = 0; i < 100; ++i) {
    const absl::Time due = FromProto(job.next_run());
    const FireDecision d = FireAt(job, due + absl::Milliseconds(300));  // late, < 1 s
    ASSERT_EQ(d.kind, FireDecision::Kind::kRun) << i;
    ASSERT_EQ(d.scheduled, Utc("2026-01-01T00:00:01Z") + absl::Seconds(i));
    ASSERT_EQ(*d.next, d.scheduled + absl::Seconds(1));
  }
}

TEST(DecideFireKindsTest, CronDailyInBerlinFollowsLocalTimeAcrossDst) {
  // 02:30 local does not exist on 2026-03-29 (02:00 -> 03:00): the default
  // runs at 03:00 CEST (01:00Z); the day before at 02:30 CET (01:30Z), the
  // day after at 02:30 CEST (00:30Z).
  v1::Job job = CronJob("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z");
  Place(job, Utc("2026-03-27T12:00:00Z"));
  std::vector<absl::Time> fires;
  for (int i = 0; i < 3; ++i) {
    fires.push_back(FromProto(job.next_run()));
    FireAt(job, FromProto(job.next_run()));
  }
  EXPECT_EQ(fires, (std::vector<absl::Time>{Utc("2026-03-28T01:30:00Z"),
                                            Utc("2026-03-29T01:00:00Z"),
                                            Utc("2026-03-30T00:30:00Z")}));
}

TEST(DecideFireKindsTest, CronDstGapSkipAndShift) {
  v1::Job skip = CronJob("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z");
  skip.mutable_schedule()->set_dst_gap(v1::DST_GAP_SKIP);
  Place(skip, Utc("2026-03-28T12:00:00Z"));
  EXPECT_EQ(FromProto(skip.next_run()), Utc("2026-03-30T00:30:00Z"));
  v1::Job shift = CronJob("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z");
  shift.mutable_schedule()->set_dst_gap(v1::DST_GAP_SHIFT);
  Place(shift, Utc("2026-03-28T12:00:00Z"));
  EXPECT_EQ(FromProto(shift.next_run()), Utc("2026-03-29T01:30:00Z"));  // 03:30 CEST
}

TEST(DecideFireKindsTest, CronDstRepeatBothFiresTwiceInTheRepeatedHour) {
  // 2026-10-25: Berlin goes 03:00 CEST -> 02:00 CET; 02:30 occurs at 00:30Z
  // and 01:30Z.
  v1::Job job = CronJob("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z");
  job.mutable_schedule()->set_dst_repeat(v1::DST_REPEAT_BOTH);
  Place(job, Utc("2026-10-24T12:00:00Z"));
  std::vector<absl::Time> fires;
  for (int i = 0; i < 3; ++i) {
    fires.push_back(FromProto(job.next_run()));
    FireAt(job, FromProto(job.next_run()));
  }
  EXPECT_EQ(fires, (std::vector<absl::Time>{Utc("2026-10-25T00:30:00Z"),
                                            Utc("2026-10-25T01:30:00Z"),
                                            Utc("2026-10-26T01:30:00Z")}));
}

TEST(DecideFireKindsTest, CalendarWeekdaysExceptChristmas) {
  v1::Job job;
  job.set_job_id("0a6b7c2e-5d1f-4f7a-9b0c-1d2e3f405162");
  v1::Schedule& s = *job.mutable_schedule();
  v1::CalendarSpec* in = s.mutable_calendar()->add_include();
  in->set_hours("2");
  in->set_days_of_week("MON-FRI");
  v1::CalendarSpec* out = s.mutable_calendar()->add_exclude();
  out->set_months("12");
  out->set_days_of_month("24-26");
  s.set_time_zone("UTC");
  *s.mutable_start() = ToProto(Utc("2026-12-23T12:00:00Z"));  // a Wednesday
  Place(job, Utc("2026-12-23T12:00:00Z"));
  std::vector<absl::Time> fires;
  for (int i = 0; i < 2; ++i) {
    fires.push_back(FromProto(job.next_run()));
    FireAt(job, FromProto(job.next_run()));
  }
  // Thu 24 and Fri 25 excluded, Sat 26 / Sun 27 not weekdays: Mon 28.
  EXPECT_EQ(fires, (std::vector<absl::Time>{Utc("2026-12-28T02:00:00Z"),
                                            Utc("2026-12-29T02:00:00Z")}));
}

TEST(DecideFireKindsTest, RuleThatNeverFiresAgainEndsScheduleComplete) {
  v1::Job job = CronJob("", "UTC", "2026-06-01T00:00:00Z");
  v1::CalendarSpec* in = job.mutable_schedule()->mutable_calendar()->add_include();
  in->set_years("2027");
  in->set_months("1");
  in->set_days_of_month("1");
  Place(job, Utc("2026-06-01T00:00:00Z"));
  EXPECT_EQ(FromProto(job.next_run()), Utc("2027-01-01T00:00:00Z"));
  const FireDecision d = FireAt(job, Utc("2027-01-01T00:00:00Z"));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_FALSE(d.next.has_value());
  EXPECT_EQ(d.end_reason, v1::Job::SCHEDULE_COMPLETE);
}

TEST(DecideFireKindsTest, StopAfterRunsCountsRunsNotSkippedSlots) {
  v1::Job job = CronJob("0 * * * *", "UTC", "2026-01-01T00:00:00Z");  // hourly
  job.mutable_schedule()->set_stop_after_runs(2);
  Place(job, Utc("2026-01-01T00:00:00Z"));
  // Down for 3 hours: the missed slots are skipped, not counted as runs.
  FireDecision d = FireAt(job, Utc("2026-01-01T03:10:00Z"));
  EXPECT_EQ(d.kind, FireDecision::Kind::kSkipMissed);
  EXPECT_EQ(d.missed, 3);  // 01:00, 02:00, 03:00 besides 00:00
  EXPECT_EQ(job.n_runs(), 0);
  d = FireAt(job, FromProto(job.next_run()));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  ASSERT_TRUE(d.next.has_value());
  d = FireAt(job, FromProto(job.next_run()));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_FALSE(d.next.has_value());
  EXPECT_EQ(d.end_reason, v1::Job::STOP_AFTER_RUNS);
}

TEST(DecideFireKindsTest, StopAfterDateAppliesToCron) {
  v1::Job job = CronJob("0 * * * *", "UTC", "2026-01-01T00:00:00Z");
  *job.mutable_schedule()->mutable_stop_after_date() =
      ToProto(Utc("2026-01-01T01:30:00Z"));
  Place(job, Utc("2026-01-01T00:00:00Z"));
  FireDecision d = FireAt(job, Utc("2026-01-01T00:00:00Z"));
  ASSERT_TRUE(d.next.has_value());
  d = FireAt(job, Utc("2026-01-01T01:00:00Z"));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_FALSE(d.next.has_value());
  EXPECT_EQ(d.end_reason, v1::Job::STOP_AFTER_DATE);
  v1::Job once;
  once.mutable_schedule()->set_once(true);
  *once.mutable_schedule()->mutable_start() = ToProto(kStart);
  *once.mutable_schedule()->mutable_stop_after_date() = ToProto(kStart);
  v1::Job::EndReason reason;
  EXPECT_FALSE(NextRunAtOrAfter(once, kStart - absl::Hours(1), &reason).has_value());
  EXPECT_EQ(reason, v1::Job::STOP_AFTER_DATE);
}

TEST(DecideFireKindsTest, MissedCountOfADenseCronIsBoundedAndSaysAtLeast) {
  v1::Job job = CronJob("* * * * * *", "UTC", "2026-01-01T00:00:00Z");
  Place(job, Utc("2026-01-01T00:00:00Z"));
  // Down for a year: 31.5 million slots; counted up to the cap.
  const absl::Time now = Utc("2027-01-01T00:00:00.5Z");
  const FireDecision d = FireAt(job, now);
  EXPECT_EQ(d.kind, FireDecision::Kind::kSkipMissed);
  EXPECT_TRUE(d.missed_at_least);
  EXPECT_EQ(d.missed, kMissedCountCap - 1);
  EXPECT_EQ(*d.next, Utc("2027-01-01T00:00:01Z"));
}

TEST(DecideFireKindsTest, RunOnceAfterDowntimeRunsTheLatestMissedCronSlot) {
  v1::Job job = CronJob("0 */6 * * *", "UTC", "2026-01-01T00:00:00Z");
  job.set_missed_run_policy(v1::RUN_ONCE);
  Place(job, Utc("2026-01-01T00:00:00Z"));
  const FireDecision d = FireAt(job, Utc("2026-01-02T01:00:00Z"));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_EQ(d.scheduled, Utc("2026-01-02T00:00:00Z"));
  EXPECT_EQ(d.missed, 4);  // 00, 06, 12, 18 of the 1st
  EXPECT_EQ(*d.next, Utc("2026-01-02T06:00:00Z"));
}

TEST(DecideFireKindsTest, CatchUpWindowMissesSlotsOlderThanIt) {
  // A daily 02:00 job, timerd down from 01:00 to 05:00: with a 1 h window the
  // 02:00 slot is missed although the next (tomorrow) has not passed.
  v1::Job job = CronJob("0 2 * * *", "UTC", "2026-01-01T00:00:00Z");
  job.mutable_schedule()->set_catch_up_window_seconds(3600);
  Place(job, Utc("2026-01-01T00:00:00Z"));
  FireDecision d = FireAt(job, Utc("2026-01-01T05:00:00Z"));
  EXPECT_EQ(d.kind, FireDecision::Kind::kSkipMissed);
  EXPECT_TRUE(d.outside_window);
  EXPECT_EQ(*d.next, Utc("2026-01-02T02:00:00Z"));
  // Within the window it runs late.
  d = FireAt(job, Utc("2026-01-02T02:40:00Z"));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_EQ(d.scheduled, Utc("2026-01-02T02:00:00Z"));
  // Without a window: runs late as before.
  v1::Job plain = CronJob("0 2 * * *", "UTC", "2026-01-01T00:00:00Z");
  Place(plain, Utc("2026-01-01T00:00:00Z"));
  EXPECT_EQ(FireAt(plain, Utc("2026-01-01T05:00:00Z")).kind, FireDecision::Kind::kRun);
}

TEST(DecideFireKindsTest, CatchUpWindowWithRunOnceRunsOnlySlotsInsideIt) {
  v1::Job job = CronJob("0 * * * *", "UTC", "2026-01-01T00:00:00Z");
  job.set_missed_run_policy(v1::RUN_ONCE);
  job.mutable_schedule()->set_catch_up_window_seconds(1800);
  Place(job, Utc("2026-01-01T00:00:00Z"));
  // Down until 05:20: 05:00 is inside the 30 min window: it runs.
  FireDecision d = FireAt(job, Utc("2026-01-01T05:20:00Z"));
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_EQ(d.scheduled, Utc("2026-01-01T05:00:00Z"));
  EXPECT_EQ(d.missed, 5);
  // Down until 07:45: 07:00 is outside: all missed.
  d = FireAt(job, Utc("2026-01-01T07:45:00Z"));
  EXPECT_EQ(d.kind, FireDecision::Kind::kSkipMissed);
  EXPECT_TRUE(d.outside_window);
  EXPECT_EQ(*d.next, Utc("2026-01-01T08:00:00Z"));
}

TEST(JitterTest, DeterministicPerJobAndSlotBelowJAndNeverPastTheNextSlot) {
  v1::Schedule s;
  s.set_jitter_seconds(30);
  const absl::Time slot = Utc("2026-01-01T00:00:00Z");
  const absl::Duration a = JitterFor("job-a", s, slot, slot + absl::Hours(1));
  EXPECT_EQ(a, JitterFor("job-a", s, slot, slot + absl::Hours(1)));  // no reroll
  EXPECT_GE(a, absl::ZeroDuration());
  EXPECT_LT(a, absl::Seconds(30));
  // Spread over jobs and slots, each below the next slot.
  absl::Duration lo = absl::InfiniteDuration(), hi = absl::ZeroDuration();
  for (int i = 0; i < 1000; ++i) {
    const absl::Duration j = JitterFor(
        absl::StrCat("job-", i), s, slot + absl::Seconds(i), slot + absl::Seconds(i + 5));
    ASSERT_LT(j, absl::Seconds(5));
    const absl::Duration k = JitterFor(absl::StrCat("job-", i), s, slot, std::nullopt);
    ASSERT_LT(k, absl::Seconds(30));
    lo = std::min(lo, k);
    hi = std::max(hi, k);
  }
  EXPECT_LT(lo, absl::Seconds(1));
  EXPECT_GT(hi, absl::Seconds(29));
  s.set_jitter_seconds(0);
  EXPECT_EQ(JitterFor("job-a", s, slot, std::nullopt), absl::ZeroDuration());
}

TEST(JitterTest, RunKeepsItsNominalScheduledTimeAndStartsAtTheJitteredOne) {
  v1::Job job = CronJob("0 * * * *", "UTC", "2026-01-01T00:00:00Z");
  job.mutable_schedule()->set_jitter_seconds(600);
  Place(job, Utc("2026-01-01T00:00:00Z"));
  const absl::Time nominal = FromProto(job.next_scheduled_time());
  const absl::Time fire = FromProto(job.next_run());
  EXPECT_EQ(nominal, Utc("2026-01-01T00:00:00Z"));
  EXPECT_EQ(fire - nominal,
            JitterFor(job.job_id(), job.schedule(), nominal, nominal + absl::Hours(1)));
  const FireDecision d = FireAt(job, fire);
  EXPECT_EQ(d.kind, FireDecision::Kind::kRun);
  EXPECT_EQ(d.scheduled, nominal);
  EXPECT_EQ(d.start_at, fire);
  EXPECT_EQ(*d.next, Utc("2026-01-01T01:00:00Z"));
  EXPECT_EQ(*d.next_fire - *d.next,
            JitterFor(job.job_id(), job.schedule(), *d.next, *d.next + absl::Hours(1)));
}

TEST(RuleForTest, SharedPerDistinctRuleAndErrorsNameTheField) {
  v1::Schedule a;
  a.set_cron("0 2 * * *");
  a.set_time_zone("Europe/Berlin");
  v1::Schedule b = a;
  auto ra = RuleFor(a);
  auto rb = RuleFor(b);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->get(), rb->get());  // compiled once, shared
  b.set_dst_repeat(v1::DST_REPEAT_BOTH);
  EXPECT_NE(ra->get(), RuleFor(b)->get());
  v1::Schedule bad;
  bad.set_cron("0 25 * * *");
  auto err = RuleFor(bad);
  ASSERT_FALSE(err.ok());
  EXPECT_TRUE(absl::StartsWith(err.status().message(), "schedule.cron: field 2 (hours)"))
      << err.status().message();
  v1::Schedule interval;
  interval.set_interval_seconds(60);
  EXPECT_EQ(*RuleFor(interval), nullptr);
}

TEST(PreviewSlotsTest, ExplainsDstAndMarksStopConditions) {
  v1::Job job = CronJob("30 2 * * *", "Europe/Berlin", "2026-03-27T00:00:00Z");
  job.mutable_schedule()->set_stop_after_runs(3);
  job.set_n_runs(1);
  const v1::PreviewScheduleResponse p =
      PreviewSlots(job, Utc("2026-03-28T00:00:00Z"), Utc("2026-03-28T00:00:00Z"), 10);
  ASSERT_EQ(p.entries_size(), 3);
  EXPECT_EQ(FromProto(p.entries(1).fire_time()), Utc("2026-03-29T01:00:00Z"));
  EXPECT_NE(p.entries(1).why().find("does not exist"), std::string::npos)
      << p.entries(1).why();
  EXPECT_EQ(p.entries(0).disposition(), v1::PreviewEntry::FIRES);
  EXPECT_EQ(p.entries(1).disposition(), v1::PreviewEntry::FIRES);
  EXPECT_EQ(p.entries(2).disposition(), v1::PreviewEntry::STOPPED_BY_RUNS);
  EXPECT_TRUE(p.ended());
  EXPECT_EQ(p.description(), "cron '30 2 * * *' in Europe/Berlin");
}

TEST(PreviewSlotsTest, PausedAndNeverAgain) {
  v1::Job job = CronJob("", "UTC", "2026-01-01T00:00:00Z");
  v1::CalendarSpec* in = job.mutable_schedule()->mutable_calendar()->add_include();
  in->set_years("2028");
  in->set_months("FEB");
  in->set_days_of_month("29");
  job.set_status(v1::Job::PAUSED);
  const v1::PreviewScheduleResponse p =
      PreviewSlots(job, Utc("2026-01-01T00:00:00Z"), Utc("2026-01-01T00:00:00Z"), 10);
  ASSERT_EQ(p.entries_size(), 1);
  EXPECT_EQ(FromProto(p.entries(0).nominal_time()), Utc("2028-02-29T00:00:00Z"));
  EXPECT_EQ(p.entries(0).disposition(), v1::PreviewEntry::PAUSED);
  EXPECT_TRUE(p.ended());
}

}  // namespace timer::domain
