// The cron parser and the civil-time patterns it compiles to, checked in UTC
// (no DST) against hand-checked calendars: leap years, month ends, Quartz's
// L, W and #, Vixie's day-of-month/day-of-week OR rule, names, steps, 6
// fields, errors naming the field and position. Zones and DST:
// zoned_rule_test.cc.
#include "domain/cron.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "domain/schedule_rule.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timer::domain {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::Time Utc(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << err;
  return t;
}

// The next `n` fire times after `from` (RFC 3339), in UTC, "YYYY-MM-DD
// HH:MM:SS Www".
std::vector<std::string> Next(const std::string& expr, const std::string& from, int n) {
  auto rule = CompileCron(expr, "UTC", DstGap::kRunAfterGap, DstRepeat::kFirst);
  EXPECT_TRUE(rule.ok()) << rule.status();
  std::vector<std::string> out;
  if (!rule.ok()) return out;
  absl::Time t = Utc(from);
  for (int i = 0; i < n; ++i) {
    const auto next = (*rule)->Next(t);
    if (!next) break;
    EXPECT_GT(*next, t);
    out.push_back(absl::FormatTime("%Y-%m-%d %H:%M:%S %a", *next, absl::UTCTimeZone()));
    t = *next;
  }
  return out;
}

std::string ParseError(const std::string& expr) {
  auto p = ParseCron(expr);
  EXPECT_FALSE(p.ok()) << expr;
  if (p.ok()) return "";
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(p.status().message());
}

TEST(CronTest, EveryFiveMinutes) {
  EXPECT_THAT(Next("*/5 * * * *", "2026-01-01T00:03:10Z", 3),
              ElementsAre("2026-01-01 00:05:00 Thu", "2026-01-01 00:10:00 Thu",
                          "2026-01-01 00:15:00 Thu"));
}

TEST(CronTest, StrictlyAfter) {
  // Exactly on a fire time: the next one, never the same instant.
  EXPECT_THAT(Next("0 2 * * *", "2026-01-01T02:00:00Z", 1),
              ElementsAre("2026-01-02 02:00:00 Fri"));
  EXPECT_THAT(Next("0 2 * * *", "2026-01-01T01:59:59.999Z", 1),
              ElementsAre("2026-01-01 02:00:00 Thu"));
}

TEST(CronTest, SixFieldsWithSeconds) {
  EXPECT_THAT(Next("*/15 * * * * *", "2026-01-01T00:00:50Z", 3),
              ElementsAre("2026-01-01 00:01:00 Thu", "2026-01-01 00:01:15 Thu",
                          "2026-01-01 00:01:30 Thu"));
  EXPECT_THAT(Next("*/1 * * * * *", "2026-12-31T23:59:58.5Z", 2),
              ElementsAre("2026-12-31 23:59:59 Thu", "2027-01-01 00:00:00 Fri"));
  EXPECT_THAT(Next("30 0 9 * * *", "2026-01-01T10:00:00Z", 1),
              ElementsAre("2026-01-02 09:00:30 Fri"));
}

TEST(CronTest, RangesStepsAndLists) {
  EXPECT_THAT(Next("10-40/15 * * * *", "2026-01-01T00:00:00Z", 4),
              ElementsAre("2026-01-01 00:10:00 Thu", "2026-01-01 00:25:00 Thu",
                          "2026-01-01 00:40:00 Thu", "2026-01-01 01:10:00 Thu"));
  // Quartz's "a/n": a, a+n, ... up to the field's maximum.
  EXPECT_THAT(Next("0 20/2 * * *", "2026-01-01T00:00:00Z", 3),
              ElementsAre("2026-01-01 20:00:00 Thu", "2026-01-01 22:00:00 Thu",
                          "2026-01-02 20:00:00 Fri"));
  EXPECT_THAT(Next("0 0,12 1,15 * *", "2026-01-01T06:00:00Z", 3),
              ElementsAre("2026-01-01 12:00:00 Thu", "2026-01-15 00:00:00 Thu",
                          "2026-01-15 12:00:00 Thu"));
}

TEST(CronTest, NamesAreCaseInsensitive) {
  EXPECT_THAT(Next("0 9 * jan-Mar MON,wed", "2026-03-28T00:00:00Z", 3),
              ElementsAre("2026-03-30 09:00:00 Mon", "2027-01-04 09:00:00 Mon",
                          "2027-01-06 09:00:00 Wed"));
  EXPECT_THAT(Next("0 9 * * MON-FRI", "2026-01-02T10:00:00Z", 2),
              ElementsAre("2026-01-05 09:00:00 Mon", "2026-01-06 09:00:00 Tue"));
  // 7 is Sunday as 0 is.
  EXPECT_THAT(Next("0 0 * * 7", "2026-01-01T00:00:00Z", 1),
              ElementsAre("2026-01-04 00:00:00 Sun"));
  EXPECT_THAT(Next("0 0 * * 5-7", "2026-01-02T00:00:00Z", 3),
              ElementsAre("2026-01-03 00:00:00 Sat", "2026-01-04 00:00:00 Sun",
                          "2026-01-09 00:00:00 Fri"));
}

TEST(CronTest, Macros) {
  EXPECT_THAT(Next("@yearly", "2026-06-01T00:00:00Z", 1),
              ElementsAre("2027-01-01 00:00:00 Fri"));
  EXPECT_THAT(Next("@annually", "2026-06-01T00:00:00Z", 1),
              ElementsAre("2027-01-01 00:00:00 Fri"));
  EXPECT_THAT(Next("@monthly", "2026-06-01T00:00:00Z", 1),
              ElementsAre("2026-07-01 00:00:00 Wed"));
  EXPECT_THAT(Next("@weekly", "2026-06-01T00:00:00Z", 1),
              ElementsAre("2026-06-07 00:00:00 Sun"));
  EXPECT_THAT(Next("@daily", "2026-06-01T00:00:00Z", 1),
              ElementsAre("2026-06-02 00:00:00 Tue"));
  EXPECT_THAT(Next("@midnight", "2026-06-01T00:00:00Z", 1),
              ElementsAre("2026-06-02 00:00:00 Tue"));
  EXPECT_THAT(Next("@HOURLY", "2026-06-01T00:30:00Z", 1),
              ElementsAre("2026-06-01 01:00:00 Mon"));
}

TEST(CronTest, YearBoundary) {
  EXPECT_THAT(Next("59 23 31 12 *", "2026-12-31T23:59:00Z", 1),
              ElementsAre("2027-12-31 23:59:00 Fri"));
  EXPECT_THAT(Next("0 0 1 1 *", "2026-12-31T23:59:59Z", 1),
              ElementsAre("2027-01-01 00:00:00 Fri"));
}

TEST(CronTest, LeapYears) {
  // The next 29 February after 2027 is 2028's; 2100 is not a leap year.
  EXPECT_THAT(Next("0 0 29 2 *", "2027-01-01T00:00:00Z", 2),
              ElementsAre("2028-02-29 00:00:00 Tue", "2032-02-29 00:00:00 Sun"));
  EXPECT_THAT(Next("0 0 29 2 *", "2097-01-01T00:00:00Z", 1),
              ElementsAre("2104-02-29 00:00:00 Fri"));
  EXPECT_THAT(Next("0 0 29 2 *", "2399-03-01T00:00:00Z", 1),
              ElementsAre("2400-02-29 00:00:00 Tue"));
}

TEST(CronTest, MonthEnds) {
  // 31 only in the months that have one.
  EXPECT_THAT(Next("0 0 31 * *", "2026-03-31T00:00:00Z", 3),
              ElementsAre("2026-05-31 00:00:00 Sun", "2026-07-31 00:00:00 Fri",
                          "2026-08-31 00:00:00 Mon"));
  EXPECT_THAT(Next("0 0 L * *", "2027-12-31T00:00:00Z", 3),
              ElementsAre("2028-01-31 00:00:00 Mon", "2028-02-29 00:00:00 Tue",
                          "2028-03-31 00:00:00 Fri"));
  EXPECT_THAT(Next("0 0 L 2 *", "2026-01-01T00:00:00Z", 1),
              ElementsAre("2026-02-28 00:00:00 Sat"));
  // L-2: two days before the last day.
  EXPECT_THAT(Next("0 0 L-2 * *", "2026-01-01T00:00:00Z", 2),
              ElementsAre("2026-01-29 00:00:00 Thu", "2026-02-26 00:00:00 Thu"));
}

TEST(CronTest, NearestWeekday) {
  // 2026-08-01 is a Saturday: 1W is Monday the 3rd, never July's last day.
  EXPECT_THAT(Next("0 0 1W * *", "2026-07-15T00:00:00Z", 1),
              ElementsAre("2026-08-03 00:00:00 Mon"));
  // 15 August 2026 is a Saturday: Friday the 14th; 15 March 2026 a Sunday:
  // Monday the 16th; 15 April a Wednesday: itself.
  EXPECT_THAT(Next("0 0 15W * *", "2026-08-01T00:00:00Z", 1),
              ElementsAre("2026-08-14 00:00:00 Fri"));
  EXPECT_THAT(Next("0 0 15W * *", "2026-03-01T00:00:00Z", 2),
              ElementsAre("2026-03-16 00:00:00 Mon", "2026-04-15 00:00:00 Wed"));
  // 31 May 2026 is a Sunday: 31W is Friday the 29th (not 1 June); months
  // without a 31st have no 31W.
  EXPECT_THAT(Next("0 0 31W * *", "2026-04-01T00:00:00Z", 2),
              ElementsAre("2026-05-29 00:00:00 Fri", "2026-07-31 00:00:00 Fri"));
  // LW: January 2026 ends on a Saturday (30th), May on a Sunday (29th),
  // March on a Tuesday (31st).
  EXPECT_THAT(Next("0 0 LW * *", "2026-01-01T00:00:00Z", 3),
              ElementsAre("2026-01-30 00:00:00 Fri", "2026-02-27 00:00:00 Fri",
                          "2026-03-31 00:00:00 Tue"));
  EXPECT_THAT(Next("0 0 LW 5 *", "2026-01-01T00:00:00Z", 1),
              ElementsAre("2026-05-29 00:00:00 Fri"));
}

TEST(CronTest, NthAndLastWeekday) {
  // The fifth Friday: only January, May, July and October of 2026 have one.
  EXPECT_THAT(Next("0 0 ? * FRI#5", "2026-01-01T00:00:00Z", 4),
              ElementsAre("2026-01-30 00:00:00 Fri", "2026-05-29 00:00:00 Fri",
                          "2026-07-31 00:00:00 Fri", "2026-10-30 00:00:00 Fri"));
  EXPECT_THAT(Next("0 0 * * 1#1", "2026-01-01T00:00:00Z", 2),
              ElementsAre("2026-01-05 00:00:00 Mon", "2026-02-02 00:00:00 Mon"));
  // 5L / FRIL: the last Friday.
  EXPECT_THAT(Next("0 0 * * 5L", "2026-02-01T00:00:00Z", 3),
              ElementsAre("2026-02-27 00:00:00 Fri", "2026-03-27 00:00:00 Fri",
                          "2026-04-24 00:00:00 Fri"));
  EXPECT_THAT(Next("0 0 * * friL", "2026-02-01T00:00:00Z", 1),
              ElementsAre("2026-02-27 00:00:00 Fri"));
  // L alone in days of week is Saturday (Quartz).
  EXPECT_THAT(Next("0 0 ? * L", "2026-01-01T00:00:00Z", 1),
              ElementsAre("2026-01-03 00:00:00 Sat"));
}

TEST(CronTest, VixieOrRuleWhenBothDayFieldsAreRestricted) {
  // Every 13th and every Friday.
  EXPECT_THAT(Next("0 0 13 * FRI", "2026-03-01T00:00:00Z", 4),
              ElementsAre("2026-03-06 00:00:00 Fri", "2026-03-13 00:00:00 Fri",
                          "2026-03-20 00:00:00 Fri", "2026-03-27 00:00:00 Fri"));
  EXPECT_THAT(Next("0 0 13 * MON", "2026-04-07T00:00:00Z", 3),
              ElementsAre("2026-04-13 00:00:00 Mon", "2026-04-20 00:00:00 Mon",
                          "2026-04-27 00:00:00 Mon"));
  EXPECT_THAT(Next("0 0 14 * MON", "2026-04-07T00:00:00Z", 2),
              ElementsAre("2026-04-13 00:00:00 Mon", "2026-04-14 00:00:00 Tue"));
  // A field starting with '*' is unrestricted, even "*/2": then both must
  // match (odd days that are Fridays), as in Vixie cron and cronie.
  EXPECT_THAT(Next("0 0 */2 * FRI", "2026-03-01T00:00:00Z", 2),
              ElementsAre("2026-03-13 00:00:00 Fri", "2026-03-27 00:00:00 Fri"));
  // "1-31" does not start with '*': restricted, so every day matches.
  EXPECT_THAT(Next("0 0 1-31 * FRI", "2026-03-01T00:00:00Z", 2),
              ElementsAre("2026-03-02 00:00:00 Mon", "2026-03-03 00:00:00 Tue"));
  // '?' is unrestricted too.
  EXPECT_THAT(Next("0 0 13 * ?", "2026-03-01T00:00:00Z", 1),
              ElementsAre("2026-03-13 00:00:00 Fri"));
}

TEST(CronTest, NeverFiresAgainIsNulloptAndFast) {
  const absl::Time start = absl::Now();
  EXPECT_THAT(Next("0 0 30 2 *", "2026-01-01T00:00:00Z", 1), ElementsAre());
  EXPECT_THAT(Next("0 0 31 4,6,9,11 *", "2026-01-01T00:00:00Z", 1), ElementsAre());
  EXPECT_THAT(Next("0 0 ? 2 MON#5", "2026-01-01T00:00:00Z", 1).size(), 1u);  // 2044-02-29
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // Near the end of the supported range (year 9999).
  EXPECT_THAT(Next("0 0 1 1 *", "9999-06-01T00:00:00Z", 1), ElementsAre());
}

TEST(CronTest, PatternIsSmall) {
  auto p = ParseCron("*/5 * * * *");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->HeapBytes(), 0u);
  EXPECT_LE(sizeof(CivilPattern), 80u);
}

TEST(CronTest, ErrorsNameFieldAndPosition) {
  EXPECT_EQ(ParseError("0 25 * * *"),
            "cron: field 2 (hours) at position 3: 25 is out of range 0-23");
  EXPECT_EQ(ParseError("0 0 32 * *"),
            "cron: field 3 (day of month) at position 5: 32 is out of range 1-31");
  EXPECT_EQ(ParseError("60 0 0 * * *"),
            "cron: field 1 (seconds) at position 1: 60 is out of range 0-59");
  EXPECT_EQ(ParseError("0 0 * 13 *"),
            "cron: field 4 (month) at position 7: 13 is out of range 1-12");
  EXPECT_EQ(ParseError("0 0 * * 8"),
            "cron: field 5 (day of week) at position 9: 8 is out of range 0-7");
  EXPECT_EQ(
      ParseError("0 0 * FOO *"),
      "cron: field 4 (month) at position 7: unknown month name 'FOO' (expected JAN-DEC)");
  EXPECT_EQ(ParseError("0 0 * * MON#6"),
            "cron: field 5 (day of week) at position 13: 6 is out of range 1-5");
  EXPECT_EQ(ParseError("*/0 * * * *"),
            "cron: field 1 (minutes) at position 3: a step must be >= 1");
  EXPECT_EQ(
      ParseError("0 0 5-1 * *"),
      "cron: field 3 (day of month) at position 5: range 5-1 ends before it starts");
  EXPECT_EQ(ParseError("0 0 1,,2 * *"),
            "cron: field 3 (day of month) at position 7: empty list element");
  EXPECT_EQ(ParseError("? 0 * * *"),
            "cron: field 1 (minutes) at position 1: '?' is only allowed in days of month "
            "and week");
  EXPECT_EQ(ParseError("0 0 L-31 * *"),
            "cron: field 3 (day of month) at position 7: 31 is out of range 0-30");
  EXPECT_EQ(ParseError("0 0 1W-3 * *"),
            "cron: field 3 (day of month) at position 7: unexpected '-'");
  EXPECT_EQ(ParseError("0 0 * * MON-FRI#2"),
            "cron: field 5 (day of week) at position 16: unexpected '#'");
  EXPECT_EQ(ParseError("0 0 * *"),
            "cron: expected 5 fields (minutes hours day-of-month month day-of-week) or 6 "
            "(seconds first), got 4");
  EXPECT_THAT(ParseError("0 0 * * * * *"), HasSubstr("got more than 6"));
  EXPECT_EQ(ParseError("   "), "cron: the expression is empty");
  EXPECT_THAT(ParseError("@every 5m"), HasSubstr("at position 1: unknown macro @every"));
  EXPECT_EQ(ParseError("@daily 5"), "cron: at position 8: nothing may follow @daily");
  EXPECT_THAT(ParseError("0 0 * * 1234567"),
              HasSubstr("at position 9: number is too long"));
}

TEST(CronTest, UnknownZoneIsInvalidArgumentNamingIt) {
  for (const char* zone : {"Mars/Olympus_Mons", "", "/etc/passwd", "../../etc/passwd",
                           "localtime", "Fixed/UTC+05:00", "Europe//Berlin"}) {
    auto rule = CompileCron("0 0 * * *", zone, DstGap::kRunAfterGap, DstRepeat::kFirst);
    ASSERT_FALSE(rule.ok()) << zone;
    EXPECT_EQ(rule.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(rule.status().message(), HasSubstr(absl::StrCat("'", zone, "'")));
  }
  EXPECT_TRUE(CompileCron("0 0 * * *", "UTC", DstGap::kSkip, DstRepeat::kBoth).ok());
}

TEST(CronTest, Describe) {
  auto rule =
      CompileCron("0 2 * * *", "Europe/Berlin", DstGap::kRunAfterGap, DstRepeat::kFirst);
  ASSERT_TRUE(rule.ok());
  EXPECT_EQ((*rule)->Describe(), "cron '0 2 * * *' in Europe/Berlin");
}

}  // namespace
}  // namespace timer::domain
