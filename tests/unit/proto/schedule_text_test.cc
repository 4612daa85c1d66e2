// The shared rendering of a schedule in words (timer/v1/schedule_text.h):
// each kind, the fields' order, the default zone, and the escape hook the
// CLI uses for text the schedule's sender chose.
#include "timer/v1/schedule_text.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace timer {
namespace {

TEST(ScheduleTextTest, IntervalAndNoKindReadAsEveryNSeconds) {
  v1::Schedule s;
  s.set_interval_seconds(3600);
  EXPECT_EQ(ScheduleText(s), "every 3600s");
  EXPECT_EQ(ScheduleText(v1::Schedule()), "every 0s");
}

TEST(ScheduleTextTest, OnceNamesItsTimeInUtc) {
  v1::Schedule s;
  s.set_once(true);
  s.mutable_start()->set_seconds(1798135200);  // 2026-12-24T18:00:00Z
  EXPECT_EQ(ScheduleText(s), "once at 2026-12-24T18:00:00Z");
  s.mutable_start()->set_nanos(250000000);
  EXPECT_EQ(ScheduleText(s), "once at 2026-12-24T18:00:00.25Z");
}

TEST(ScheduleTextTest, CronNamesItsZoneOrUtc) {
  v1::Schedule s;
  s.set_cron("0 2 * * *");
  EXPECT_EQ(ScheduleText(s), "cron '0 2 * * *' in UTC");
  s.set_time_zone("Europe/Berlin");
  EXPECT_EQ(ScheduleText(s), "cron '0 2 * * *' in Europe/Berlin");
}

TEST(ScheduleTextTest, CalendarListsIncludesAndExclusionsInFieldOrder) {
  v1::Schedule s;
  v1::CalendarSpec* weekdays = s.mutable_calendar()->add_include();
  weekdays->set_days_of_week("MON-FRI");
  weekdays->set_hours("2");
  v1::CalendarSpec* all = s.mutable_calendar()->add_include();
  all->set_years("2027");
  all->set_months("1");
  all->set_days_of_month("L");
  all->set_hours("23");
  all->set_minutes("30");
  all->set_seconds("15");
  EXPECT_EQ(ScheduleText(s),
            "calendar 'hour=2 dow=MON-FRI' + 'sec=15 min=30 hour=23 dom=L mon=1 "
            "year=2027' in UTC");
  v1::CalendarSpec* christmas = s.mutable_calendar()->add_exclude();
  christmas->set_months("12");
  christmas->set_days_of_month("24-26");
  s.set_time_zone("Europe/Berlin");
  EXPECT_EQ(ScheduleText(s),
            "calendar 'hour=2 dow=MON-FRI' + 'sec=15 min=30 hour=23 dom=L mon=1 "
            "year=2027' except 'dom=24-26 mon=12' in Europe/Berlin");
}

std::string Bracket(absl::string_view text) { return absl::StrCat("<", text, ">"); }

TEST(ScheduleTextTest, TheEscapeIsAppliedToEveryPieceOfTheSendersText) {
  v1::Schedule cron;
  cron.set_cron("0 2 * * *\x1b[2J");
  cron.set_time_zone("Europe/Berlin");
  EXPECT_EQ(ScheduleText(cron, {.escape = Bracket}),
            "cron '<0 2 * * *\x1b[2J>' in <Europe/Berlin>");
  // Without one, copied as is; the zone's default is not the sender's text.
  EXPECT_EQ(ScheduleText(cron), "cron '0 2 * * *\x1b[2J' in Europe/Berlin");
  cron.clear_time_zone();
  EXPECT_EQ(ScheduleText(cron, {.escape = Bracket}), "cron '<0 2 * * *\x1b[2J>' in UTC");

  v1::Schedule cal;
  cal.mutable_calendar()->add_include()->set_hours("2");
  cal.mutable_calendar()->add_exclude()->set_months("12");
  EXPECT_EQ(ScheduleText(cal, {.escape = Bracket}),
            "calendar 'hour=<2>' except 'mon=<12>' in UTC");
}

}  // namespace
}  // namespace timer
