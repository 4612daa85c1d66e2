// Calendar schedules: unions of specs minus exclusions, the AND of day of
// month and day of week, years, defaults, errors naming spec, field and
// position.
#include "domain/calendar_spec.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "domain/schedule_rule.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timer::domain {
namespace {

using ::testing::ElementsAre;

absl::Time Utc(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << err;
  return t;
}

std::vector<std::string> Fires(const CalendarSchedule& spec, const std::string& zone,
                               const std::string& from, int n) {
  auto rule = CompileCalendar(spec, zone, DstGap::kRunAfterGap, DstRepeat::kFirst);
  EXPECT_TRUE(rule.ok()) << rule.status();
  std::vector<std::string> out;
  if (!rule.ok()) return out;
  absl::TimeZone tz;
  EXPECT_TRUE(absl::LoadTimeZone(zone, &tz));
  absl::Time t = Utc(from);
  for (int i = 0; i < n; ++i) {
    const auto next = (*rule)->Next(t);
    if (!next) break;
    EXPECT_GT(*next, t);
    out.push_back(absl::FormatTime("%Y-%m-%d %H:%M:%S %a %Z", *next, tz));
    t = *next;
  }
  return out;
}

std::string Error(const CalendarSchedule& spec) {
  auto rule = CompileCalendar(spec, "UTC", DstGap::kRunAfterGap, DstRepeat::kFirst);
  EXPECT_FALSE(rule.ok());
  if (rule.ok()) return "";
  EXPECT_EQ(rule.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(rule.status().message());
}

TEST(CalendarSpecTest, WeekdaysAtTwoExceptChristmas) {
  CalendarSchedule spec;
  spec.include.push_back({.hours = "2", .days_of_week = "MON-FRI"});
  spec.exclude.push_back({.days_of_month = "24-26", .months = "12"});
  // 24 and 25 December 2026 are a Thursday and a Friday.
  EXPECT_THAT(Fires(spec, "Europe/Berlin", "2026-12-22T00:00:00Z", 3),
              ElementsAre("2026-12-22 02:00:00 Tue CET", "2026-12-23 02:00:00 Wed CET",
                          "2026-12-28 02:00:00 Mon CET"));
}

TEST(CalendarSpecTest, UnionOfIncludes) {
  CalendarSchedule spec;
  spec.include.push_back({.hours = "17", .days_of_week = "FRI"});
  spec.include.push_back({.minutes = "30", .hours = "9", .days_of_week = "MON"});
  EXPECT_THAT(Fires(spec, "UTC", "2026-03-01T00:00:00Z", 3),
              ElementsAre("2026-03-02 09:30:00 Mon UTC", "2026-03-06 17:00:00 Fri UTC",
                          "2026-03-09 09:30:00 Mon UTC"));
}

TEST(CalendarSpecTest, DayOfMonthAndDayOfWeekBothMatch) {
  // Unlike cron's OR rule: Friday the 13th only.
  CalendarSchedule spec;
  spec.include.push_back({.days_of_month = "13", .days_of_week = "FRI"});
  EXPECT_THAT(Fires(spec, "UTC", "2026-01-01T00:00:00Z", 3),
              ElementsAre("2026-02-13 00:00:00 Fri UTC", "2026-03-13 00:00:00 Fri UTC",
                          "2026-11-13 00:00:00 Fri UTC"));
}

TEST(CalendarSpecTest, DefaultsAreMidnightEveryDay) {
  CalendarSchedule spec;
  spec.include.push_back({});
  EXPECT_THAT(Fires(spec, "UTC", "2026-01-01T00:00:00Z", 2),
              ElementsAre("2026-01-02 00:00:00 Fri UTC", "2026-01-03 00:00:00 Sat UTC"));
}

TEST(CalendarSpecTest, SecondsAndLastDay) {
  CalendarSchedule spec;
  spec.include.push_back(
      {.seconds = "15,45", .minutes = "59", .hours = "23", .days_of_month = "L"});
  EXPECT_THAT(Fires(spec, "UTC", "2028-02-01T00:00:00Z", 3),
              ElementsAre("2028-02-29 23:59:15 Tue UTC", "2028-02-29 23:59:45 Tue UTC",
                          "2028-03-31 23:59:15 Fri UTC"));
}

TEST(CalendarSpecTest, YearsEndTheSchedule) {
  CalendarSchedule spec;
  spec.include.push_back(
      {.days_of_month = "1", .months = "6", .years = "2027,2029-2030/3"});
  EXPECT_THAT(Fires(spec, "UTC", "2026-01-01T00:00:00Z", 5),
              ElementsAre("2027-06-01 00:00:00 Tue UTC", "2029-06-01 00:00:00 Fri UTC"));
  // A years field in the past: nothing, and no search through the years
  // ahead (a bound against a hang, as ExcludingEverythingIsNulloptAndFast's,
  // not a speed measurement: 100 ms was missed under ASan on a loaded
  // machine).
  CalendarSchedule past;
  past.include.push_back({.years = "2020-2025"});
  const absl::Time start = absl::Now();
  EXPECT_THAT(Fires(past, "Europe/Berlin", "2026-01-01T00:00:00Z", 1), ElementsAre());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(CalendarSpecTest, ExclusionsOfHoursAndMinutes) {
  CalendarSchedule spec;
  spec.include.push_back({.minutes = "*/30", .hours = "*"});
  spec.exclude.push_back({.hours = "12-13"});
  spec.exclude.push_back({.minutes = "30", .hours = "11"});
  EXPECT_THAT(Fires(spec, "UTC", "2026-01-01T10:45:00Z", 3),
              ElementsAre("2026-01-01 11:00:00 Thu UTC", "2026-01-01 14:00:00 Thu UTC",
                          "2026-01-01 14:30:00 Thu UTC"));
}

TEST(CalendarSpecTest, ExcludingEverythingIsNulloptAndFast) {
  CalendarSchedule spec;
  spec.include.push_back({.seconds = "*", .minutes = "*", .hours = "*"});
  spec.exclude.push_back({});
  const absl::Time start = absl::Now();
  EXPECT_THAT(Fires(spec, "Europe/Berlin", "2026-01-01T00:00:00Z", 1), ElementsAre());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(CalendarSpecTest, ExplainsWhichIncludeMatched) {
  CalendarSchedule spec;
  spec.include.push_back({.hours = "17", .days_of_week = "FRI"});
  spec.include.push_back({.hours = "9", .days_of_week = "MON"});
  spec.exclude.push_back({.months = "8"});
  auto rule =
      CompileCalendar(spec, "Europe/Berlin", DstGap::kRunAfterGap, DstRepeat::kFirst);
  ASSERT_TRUE(rule.ok());
  const auto fire = (*rule)->NextExplained(Utc("2026-03-01T00:00:00Z"));
  ASSERT_TRUE(fire.has_value());
  EXPECT_EQ(fire->matched,
            "calendar include[1] matched 2026-03-02 09:00 in Europe/Berlin");
  EXPECT_EQ((*rule)->Describe(),
            "calendar {hours 17; days_of_week FRI} {hours 9; days_of_week MON} except "
            "{months 8} "
            "in Europe/Berlin");
}

TEST(CalendarSpecTest, ErrorsNameSpecFieldAndPosition) {
  CalendarSchedule spec;
  spec.include.push_back({.hours = "2"});
  spec.include.push_back({.hours = "1,25"});
  EXPECT_EQ(Error(spec),
            "calendar.include[1].hours at position 3: 25 is out of range 0-23");
  spec.include.pop_back();
  spec.exclude.push_back({.months = "DEC", .days_of_week = "MON-XYZ"});
  EXPECT_EQ(
      Error(spec),
      "calendar.exclude[0].days_of_week at position 5: unknown day name 'XYZ' (expected "
      "SUN-SAT)");
  spec.exclude.clear();
  spec.include.push_back({.years = "1969"});
  EXPECT_EQ(Error(spec),
            "calendar.include[1].years at position 1: 1969 is out of range 1970-2399");
  EXPECT_EQ(Error(CalendarSchedule{}), "calendar.include: at least one spec is required");
}

}  // namespace
}  // namespace timer::domain
