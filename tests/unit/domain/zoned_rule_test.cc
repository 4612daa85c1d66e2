// The next-fire search in IANA zones with the DST policies: every case on
// real transitions (US, EU, southern hemisphere, a 30-minute shift, a
// skipped day, offset changes without DST), checked against hand-written
// tables and, exhaustively around each transition, against a brute-force
// reference built from absl::TimeZone::At's TimeInfo (pre/trans/post).
#include "domain/zoned_rule.h"

#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "domain/cron.h"
#include "domain/schedule_rule.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sanitizers.h"

namespace timer::domain {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr DstGap kAfter = DstGap::kRunAfterGap;
constexpr DstGap kSkip = DstGap::kSkip;
constexpr DstGap kShift = DstGap::kShiftByGap;
constexpr DstRepeat kFirst = DstRepeat::kFirst;
constexpr DstRepeat kLast = DstRepeat::kLast;
constexpr DstRepeat kBoth = DstRepeat::kBoth;

absl::Time Utc(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << err;
  return t;
}

absl::TimeZone Zone(const std::string& name) {
  absl::TimeZone tz;
  EXPECT_TRUE(absl::LoadTimeZone(name, &tz)) << name;
  return tz;
}

// The next `n` fires after `from`, as local times with the zone's
// abbreviation: "2026-03-08 03:00:00 EDT".
std::vector<std::string> Fires(const std::string& expr, const std::string& zone,
                               DstGap gap, DstRepeat repeat, const std::string& from,
                               int n) {
  auto rule = CompileCron(expr, zone, gap, repeat);
  EXPECT_TRUE(rule.ok()) << rule.status();
  std::vector<std::string> out;
  if (!rule.ok()) return out;
  const absl::TimeZone tz = Zone(zone);
  absl::Time t = Utc(from);
  for (int i = 0; i < n; ++i) {
    const auto next = (*rule)->Next(t);
    if (!next) break;
    EXPECT_GT(*next, t);
    out.push_back(absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", *next, tz));
    t = *next;
  }
  return out;
}

// --- America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00
// EDT -> 01:00 EST.

TEST(ZonedRuleTest, NewYorkSpringForwardDailyJob) {
  const char* from = "2026-03-07T12:00:00Z";
  EXPECT_THAT(Fires("30 2 * * *", "America/New_York", kAfter, kFirst, from, 2),
              ElementsAre("2026-03-08 03:00:00 EDT", "2026-03-09 02:30:00 EDT"));
  EXPECT_THAT(Fires("30 2 * * *", "America/New_York", kSkip, kFirst, from, 2),
              ElementsAre("2026-03-09 02:30:00 EDT", "2026-03-10 02:30:00 EDT"));
  EXPECT_THAT(Fires("30 2 * * *", "America/New_York", kShift, kFirst, from, 2),
              ElementsAre("2026-03-08 03:30:00 EDT", "2026-03-09 02:30:00 EDT"));
}

TEST(ZonedRuleTest, NewYorkSpringForwardEveryFifteenMinutes) {
  // The gap's four slots become one fire at 03:00 (which is also a slot of
  // its own): never a duplicate.
  const char* from = "2026-03-08T06:40:00Z";  // 01:40 EST
  for (DstGap gap : {kAfter, kSkip, kShift}) {
    EXPECT_THAT(Fires("*/15 * * * *", "America/New_York", gap, kFirst, from, 3),
                ElementsAre("2026-03-08 01:45:00 EST", "2026-03-08 03:00:00 EDT",
                            "2026-03-08 03:15:00 EDT"));
  }
}

TEST(ZonedRuleTest, NewYorkFallBackDailyJob) {
  const char* from = "2026-10-31T12:00:00Z";
  EXPECT_THAT(Fires("30 1 * * *", "America/New_York", kAfter, kFirst, from, 2),
              ElementsAre("2026-11-01 01:30:00 EDT", "2026-11-02 01:30:00 EST"));
  EXPECT_THAT(Fires("30 1 * * *", "America/New_York", kAfter, kLast, from, 2),
              ElementsAre("2026-11-01 01:30:00 EST", "2026-11-02 01:30:00 EST"));
  EXPECT_THAT(Fires("30 1 * * *", "America/New_York", kAfter, kBoth, from, 3),
              ElementsAre("2026-11-01 01:30:00 EDT", "2026-11-01 01:30:00 EST",
                          "2026-11-02 01:30:00 EST"));
}

TEST(ZonedRuleTest, NewYorkFallBackEveryFifteenMinutes) {
  const char* from = "2026-11-01T04:50:00Z";  // 00:50 EDT
  // kFirst: the repeated hour fires once.
  EXPECT_THAT(Fires("*/15 * * * *", "America/New_York", kAfter, kFirst, from, 6),
              ElementsAre("2026-11-01 01:00:00 EDT", "2026-11-01 01:15:00 EDT",
                          "2026-11-01 01:30:00 EDT", "2026-11-01 01:45:00 EDT",
                          "2026-11-01 02:00:00 EST", "2026-11-01 02:15:00 EST"));
  EXPECT_THAT(Fires("*/15 * * * *", "America/New_York", kAfter, kLast, from, 5),
              ElementsAre("2026-11-01 01:00:00 EST", "2026-11-01 01:15:00 EST",
                          "2026-11-01 01:30:00 EST", "2026-11-01 01:45:00 EST",
                          "2026-11-01 02:00:00 EST"));
  // kBoth: twice.
  EXPECT_THAT(Fires("*/15 * * * *", "America/New_York", kAfter, kBoth, from, 9),
              ElementsAre("2026-11-01 01:00:00 EDT", "2026-11-01 01:15:00 EDT",
                          "2026-11-01 01:30:00 EDT", "2026-11-01 01:45:00 EDT",
                          "2026-11-01 01:00:00 EST", "2026-11-01 01:15:00 EST",
                          "2026-11-01 01:30:00 EST", "2026-11-01 01:45:00 EST",
                          "2026-11-01 02:00:00 EST"));
}

TEST(ZonedRuleTest, NewYorkFallBackStartingInsideTheRepeatedHour) {
  // After 01:20 EST (the second 01:20): kFirst already fired this hour.
  EXPECT_THAT(Fires("*/15 * * * *", "America/New_York", kAfter, kFirst,
                    "2026-11-01T06:20:00Z", 1),
              ElementsAre("2026-11-01 02:00:00 EST"));
  // After 01:50 EDT: kBoth and kLast go back to 01:00 EST, a later instant.
  EXPECT_THAT(
      Fires("*/15 * * * *", "America/New_York", kAfter, kBoth, "2026-11-01T05:50:00Z", 1),
      ElementsAre("2026-11-01 01:00:00 EST"));
  EXPECT_THAT(
      Fires("*/15 * * * *", "America/New_York", kAfter, kLast, "2026-11-01T05:20:00Z", 1),
      ElementsAre("2026-11-01 01:00:00 EST"));
}

// --- Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00
// CEST -> 02:00 CET.

TEST(ZonedRuleTest, BerlinSpringForward) {
  const char* from = "2026-03-28T12:00:00Z";
  EXPECT_THAT(Fires("30 2 * * *", "Europe/Berlin", kAfter, kFirst, from, 2),
              ElementsAre("2026-03-29 03:00:00 CEST", "2026-03-30 02:30:00 CEST"));
  EXPECT_THAT(Fires("30 2 * * *", "Europe/Berlin", kSkip, kFirst, from, 1),
              ElementsAre("2026-03-30 02:30:00 CEST"));
  EXPECT_THAT(Fires("30 2 * * *", "Europe/Berlin", kShift, kFirst, from, 2),
              ElementsAre("2026-03-29 03:30:00 CEST", "2026-03-30 02:30:00 CEST"));
  // The default 02:00 nightly job.
  EXPECT_THAT(Fires("0 2 * * *", "Europe/Berlin", kAfter, kFirst, from, 2),
              ElementsAre("2026-03-29 03:00:00 CEST", "2026-03-30 02:00:00 CEST"));
}

TEST(ZonedRuleTest, BerlinFallBack) {
  const char* from = "2026-10-24T12:00:00Z";
  EXPECT_THAT(Fires("30 2 * * *", "Europe/Berlin", kAfter, kFirst, from, 2),
              ElementsAre("2026-10-25 02:30:00 CEST", "2026-10-26 02:30:00 CET"));
  EXPECT_THAT(Fires("30 2 * * *", "Europe/Berlin", kAfter, kLast, from, 1),
              ElementsAre("2026-10-25 02:30:00 CET"));
  EXPECT_THAT(Fires("30 2 * * *", "Europe/Berlin", kAfter, kBoth, from, 3),
              ElementsAre("2026-10-25 02:30:00 CEST", "2026-10-25 02:30:00 CET",
                          "2026-10-26 02:30:00 CET"));
}

TEST(ZonedRuleTest, BerlinExplanations) {
  auto rule = CompileCron("30 2 * * *", "Europe/Berlin", kAfter, kFirst);
  ASSERT_TRUE(rule.ok());
  auto fire = (*rule)->NextExplained(Utc("2026-03-28T12:00:00Z"));
  ASSERT_TRUE(fire.has_value());
  EXPECT_EQ(fire->matched, "'30 2 * * *' matched 2026-03-29 02:30 in Europe/Berlin");
  EXPECT_EQ(
      fire->dst,
      "02:30 does not exist (clocks went from 02:00 CET to 03:00 CEST): ran at the first "
      "instant after the gap, 03:00 CEST");
  fire = (*rule)->NextExplained(fire->time);
  ASSERT_TRUE(fire.has_value());
  EXPECT_EQ(fire->matched, "'30 2 * * *' matched 2026-03-30 02:30 in Europe/Berlin");
  EXPECT_EQ(fire->dst, "");

  rule = CompileCron("30 2 * * *", "Europe/Berlin", kShift, kBoth);
  ASSERT_TRUE(rule.ok());
  fire = (*rule)->NextExplained(Utc("2026-03-28T12:00:00Z"));
  ASSERT_TRUE(fire.has_value());
  EXPECT_EQ(fire->dst,
            "02:30 does not exist (clocks went from 02:00 CET to 03:00 CEST): ran "
            "shifted by the "
            "gap (1h), at 03:30 CEST");
  fire = (*rule)->NextExplained(Utc("2026-10-24T12:00:00Z"));
  ASSERT_TRUE(fire.has_value());
  EXPECT_EQ(fire->dst,
            "02:30 occurs twice (clocks went back from 03:00 CEST to 02:00 CET): first "
            "occurrence "
            "(CEST); fires again at the second");
  fire = (*rule)->NextExplained(fire->time);
  ASSERT_TRUE(fire.has_value());
  EXPECT_EQ(fire->dst,
            "02:30 occurs twice (clocks went back from 03:00 CEST to 02:00 CET): second "
            "occurrence (CET); fired at the first too");
  EXPECT_EQ(*(*rule)->Next(Utc("2026-10-24T12:00:00Z")), Utc("2026-10-25T00:30:00Z"));
}

// --- Australia/Sydney (southern hemisphere): the gap is in October
// (2026-10-04 02:00 AEST -> 03:00 AEDT), the repeat in April (2026-04-05
// 03:00 AEDT -> 02:00 AEST).

TEST(ZonedRuleTest, SydneyGapInOctoberRepeatInApril) {
  EXPECT_THAT(
      Fires("30 2 * * *", "Australia/Sydney", kAfter, kFirst, "2026-10-03T00:00:00Z", 2),
      ElementsAre("2026-10-04 03:00:00 AEDT", "2026-10-05 02:30:00 AEDT"));
  EXPECT_THAT(
      Fires("30 2 * * *", "Australia/Sydney", kShift, kFirst, "2026-10-03T00:00:00Z", 1),
      ElementsAre("2026-10-04 03:30:00 AEDT"));
  EXPECT_THAT(
      Fires("30 2 * * *", "Australia/Sydney", kSkip, kFirst, "2026-10-03T00:00:00Z", 1),
      ElementsAre("2026-10-05 02:30:00 AEDT"));
  EXPECT_THAT(
      Fires("30 2 * * *", "Australia/Sydney", kAfter, kFirst, "2026-04-04T00:00:00Z", 2),
      ElementsAre("2026-04-05 02:30:00 AEDT", "2026-04-06 02:30:00 AEST"));
  EXPECT_THAT(
      Fires("30 2 * * *", "Australia/Sydney", kAfter, kLast, "2026-04-04T00:00:00Z", 1),
      ElementsAre("2026-04-05 02:30:00 AEST"));
  EXPECT_THAT(
      Fires("30 2 * * *", "Australia/Sydney", kAfter, kBoth, "2026-04-04T00:00:00Z", 2),
      ElementsAre("2026-04-05 02:30:00 AEDT", "2026-04-05 02:30:00 AEST"));
}

// --- Australia/Lord_Howe: a 30-minute shift (2026-10-04 02:00 +1030 ->
// 02:30 +11; 2026-04-05 02:00 +11 -> 01:30 +1030).

TEST(ZonedRuleTest, LordHoweHalfHourShift) {
  const char* oct = "2026-10-03T00:00:00Z";
  EXPECT_THAT(Fires("15 2 * * *", "Australia/Lord_Howe", kAfter, kFirst, oct, 1),
              ElementsAre("2026-10-04 02:30:00 +11"));
  EXPECT_THAT(Fires("15 2 * * *", "Australia/Lord_Howe", kShift, kFirst, oct, 1),
              ElementsAre("2026-10-04 02:45:00 +11"));
  EXPECT_THAT(Fires("15 2 * * *", "Australia/Lord_Howe", kSkip, kFirst, oct, 1),
              ElementsAre("2026-10-05 02:15:00 +11"));
  const char* apr = "2026-04-04T00:00:00Z";
  EXPECT_THAT(Fires("45 1 * * *", "Australia/Lord_Howe", kAfter, kFirst, apr, 2),
              ElementsAre("2026-04-05 01:45:00 +11", "2026-04-06 01:45:00 +1030"));
  EXPECT_THAT(Fires("45 1 * * *", "Australia/Lord_Howe", kAfter, kLast, apr, 1),
              ElementsAre("2026-04-05 01:45:00 +1030"));
  EXPECT_THAT(Fires("45 1 * * *", "Australia/Lord_Howe", kAfter, kBoth, apr, 2),
              ElementsAre("2026-04-05 01:45:00 +11", "2026-04-05 01:45:00 +1030"));
  // 01:15 is before the repeated half hour: once, whatever the policy.
  EXPECT_THAT(Fires("15 1 * * *", "Australia/Lord_Howe", kAfter, kBoth, apr, 2),
              ElementsAre("2026-04-05 01:15:00 +11", "2026-04-06 01:15:00 +1030"));
}

// --- Pacific/Apia skipped 2011-12-30 entirely (2011-12-29 24:00 -10 ->
// 2011-12-31 00:00 +14): a daily 09:00 job has no fire on that local day.

TEST(ZonedRuleTest, ApiaSkippedDay) {
  const char* from = "2011-12-29T00:00:00Z";  // 2011-12-28 14:00 -10
  // Run after the gap: 30 December's 09:00 fires at the first instant of
  // the 31st, then the 31st's own 09:00.
  EXPECT_THAT(Fires("0 9 * * *", "Pacific/Apia", kAfter, kFirst, from, 3),
              ElementsAre("2011-12-29 09:00:00 -10", "2011-12-31 00:00:00 +14",
                          "2011-12-31 09:00:00 +14"));
  EXPECT_THAT(Fires("0 9 * * *", "Pacific/Apia", kSkip, kFirst, from, 2),
              ElementsAre("2011-12-29 09:00:00 -10", "2011-12-31 09:00:00 +14"));
  // Shifted by the gap (24h), 30 December's 09:00 is 31 December's: one fire.
  EXPECT_THAT(Fires("0 9 * * *", "Pacific/Apia", kShift, kFirst, from, 3),
              ElementsAre("2011-12-29 09:00:00 -10", "2011-12-31 09:00:00 +14",
                          "2012-01-01 09:00:00 +14"));
  // A job on the 30th only (every month): nothing in December 2011 but the
  // gap policy's fire.
  EXPECT_THAT(Fires("0 9 30 * *", "Pacific/Apia", kSkip, kFirst, from, 1),
              ElementsAre("2012-01-30 09:00:00 +14"));
  EXPECT_THAT(Fires("0 9 30 * *", "Pacific/Apia", kAfter, kFirst, from, 1),
              ElementsAre("2011-12-31 00:00:00 +14"));
}

// --- Offset changes without DST: America/Caracas 2016-05-01 02:30 -0430 ->
// 03:00 -04 (a 30-minute gap); Europe/Volgograd 2020-12-27 02:00 +04 ->
// 01:00 MSK (a repeated hour, isdst 0 on both sides).

TEST(ZonedRuleTest, CaracasOffsetChangeGap) {
  const char* from = "2016-04-30T12:00:00Z";
  EXPECT_THAT(Fires("45 2 * * *", "America/Caracas", kAfter, kFirst, from, 2),
              ElementsAre("2016-05-01 03:00:00 -04", "2016-05-02 02:45:00 -04"));
  EXPECT_THAT(Fires("45 2 * * *", "America/Caracas", kShift, kFirst, from, 1),
              ElementsAre("2016-05-01 03:15:00 -04"));
  EXPECT_THAT(Fires("45 2 * * *", "America/Caracas", kSkip, kFirst, from, 1),
              ElementsAre("2016-05-02 02:45:00 -04"));
}

TEST(ZonedRuleTest, VolgogradOffsetChangeRepeat) {
  const char* from = "2020-12-26T12:00:00Z";
  EXPECT_THAT(Fires("30 1 * * *", "Europe/Volgograd", kAfter, kFirst, from, 2),
              ElementsAre("2020-12-27 01:30:00 +04", "2020-12-28 01:30:00 MSK"));
  EXPECT_THAT(Fires("30 1 * * *", "Europe/Volgograd", kAfter, kLast, from, 1),
              ElementsAre("2020-12-27 01:30:00 MSK"));
  EXPECT_THAT(Fires("30 1 * * *", "Europe/Volgograd", kAfter, kBoth, from, 2),
              ElementsAre("2020-12-27 01:30:00 +04", "2020-12-27 01:30:00 MSK"));
}

TEST(ZonedRuleTest, NeverFiresAgainInAZoneIsNulloptAndFast) {
  for (const char* zone : {"Europe/Berlin", "Australia/Lord_Howe", "UTC"}) {
    for (DstRepeat repeat : {kFirst, kLast, kBoth}) {
      auto rule = CompileCron("0 0 30 2 *", zone, kShift, repeat);
      ASSERT_TRUE(rule.ok());
      const absl::Time start = absl::Now();
      EXPECT_EQ((*rule)->Next(Utc("2026-01-01T00:00:00Z")), std::nullopt) << zone;
      EXPECT_EQ((*rule)->NextExplained(Utc("2026-01-01T00:00:00Z")), std::nullopt)
          << zone;
      EXPECT_LT(absl::Now() - start, absl::Milliseconds(500)) << zone;
    }
  }
}

TEST(ZonedRuleTest, ExtremeInstants) {
  auto rule = CompileCron("0 0 * * *", "Europe/Berlin", kAfter, kFirst);
  ASSERT_TRUE(rule.ok());
  EXPECT_EQ((*rule)->Next(absl::InfiniteFuture()), std::nullopt);
  // The largest finite instants: no overflow in the local-time arithmetic.
  EXPECT_EQ((*rule)->Next(absl::FromUnixSeconds(std::numeric_limits<int64_t>::max() - 1)),
            std::nullopt);
  EXPECT_EQ((*rule)->Next(absl::FromUnixSeconds(253402300799)),
            std::nullopt);  // 9999-12-31
  // Nothing past 9999-12-31T23:59:59Z (a Timestamp's last second), even
  // where the local date is still 9999.
  auto late = CompileCron("0 23 31 12 *", "Pacific/Honolulu", kAfter, kFirst);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ((*late)->Next(Utc("9999-12-01T00:00:00Z")), std::nullopt);
  EXPECT_EQ(*(*late)->Next(Utc("9998-12-01T00:00:00Z")), Utc("9999-01-01T09:00:00Z"));
  const auto first = (*rule)->Next(absl::InfinitePast());
  ASSERT_TRUE(first.has_value());
  // Searches start at 1900-01-01T00:00Z, 01:00 CET in Berlin.
  EXPECT_EQ(absl::FormatTime("%Y-%m-%d %H:%M", *first, Zone("Europe/Berlin")),
            "1900-01-02 00:00");
}

// Resident memory of this process, in KiB.
long ResidentKib() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * 4;
}

TEST(ZonedRuleTest, UnknownZoneNamesCostNoMemory) {
  // Abseil caches every name it is asked to load, unknown ones too (as
  // UTC), for the life of the process: a caller sending made-up zone names
  // would grow timerd without bound (about 100 bytes a name).
  const long before = ResidentKib();
  for (int i = 0; i < 50000; ++i) {
    const std::string zone = absl::StrCat("Nowhere/Zone_", i);
    auto rule = CompileCron("0 0 * * *", zone, kAfter, kFirst);
    ASSERT_FALSE(rule.ok());
    ASSERT_THAT(rule.status().message(), HasSubstr(zone));
  }
  if (timer::testing::kAddressSanitizer) {
    // Resident memory under AddressSanitizer includes its quarantine of
    // freed blocks (tests/support/sanitizers.h): the bound is checked in the
    // plain build (scripts/test.sh, Bazel); here only the refusals above are.
    GTEST_SKIP() << "resident-memory bound not measurable under AddressSanitizer";
  }
  EXPECT_LT(ResidentKib() - before, 2048);
}

// --- Against a brute-force reference, minute by minute around each
// transition: every matching civil minute c contributes absl's instants for
// it (UNIQUE: pre; SKIPPED: trans, nothing, or pre; REPEATED: pre, post or
// both); Next must enumerate exactly that set, in order.

struct Window {
  const char* zone;
  const char* from;  // RFC 3339
  const char* to;
};

std::set<absl::Time> Reference(const CivilPattern& pattern, absl::TimeZone tz, DstGap gap,
                               DstRepeat repeat, absl::Time from, absl::Time to) {
  std::set<absl::Time> out;
  const absl::CivilMinute start = absl::CivilMinute(tz.At(from).cs) - 3 * 24 * 60;
  const absl::CivilMinute end = absl::CivilMinute(tz.At(to).cs) + 3 * 24 * 60;
  for (absl::CivilMinute m = start; m < end; ++m) {
    const absl::CivilSecond c(m);
    if (!pattern.Matches(c)) continue;
    const absl::TimeZone::TimeInfo info = tz.At(c);
    switch (info.kind) {
      case absl::TimeZone::TimeInfo::UNIQUE:
        out.insert(info.pre);
        break;
      case absl::TimeZone::TimeInfo::SKIPPED:
        if (gap == DstGap::kRunAfterGap) out.insert(info.trans);
        if (gap == DstGap::kShiftByGap) out.insert(info.pre);
        break;
      case absl::TimeZone::TimeInfo::REPEATED:
        if (repeat != DstRepeat::kLast) out.insert(info.pre);
        if (repeat != DstRepeat::kFirst) out.insert(info.post);
        break;
    }
  }
  std::set<absl::Time> in_window;
  for (absl::Time t : out) {
    if (t > from && t < to) in_window.insert(t);
  }
  return in_window;
}

TEST(ZonedRuleTest, MatchesBruteForceReferenceAroundTransitions) {
  const Window windows[] = {
      {"America/New_York", "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"},
      {"America/New_York", "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"},
      {"Europe/Berlin", "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"},
      {"Europe/Berlin", "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"},
      {"Australia/Sydney", "2026-04-03T00:00:00Z", "2026-04-06T00:00:00Z"},
      {"Australia/Sydney", "2026-10-02T00:00:00Z", "2026-10-05T00:00:00Z"},
      {"Australia/Lord_Howe", "2026-04-03T00:00:00Z", "2026-04-06T00:00:00Z"},
      {"Australia/Lord_Howe", "2026-10-02T00:00:00Z", "2026-10-05T00:00:00Z"},
      {"Pacific/Apia", "2011-12-28T00:00:00Z", "2012-01-02T00:00:00Z"},
      {"America/Caracas", "2016-04-29T00:00:00Z", "2016-05-03T00:00:00Z"},
      {"Europe/Volgograd", "2020-12-25T00:00:00Z", "2020-12-29T00:00:00Z"},
  };
  const char* exprs[] = {"*/15 * * * *", "30 2 * * *",    "0,30 1-3 * * *", "45 1 * * *",
                         "0 9 * * *",    "*/7 0-4 * * *", "0 0 * * *",      "* 2 * * *"};
  int checked = 0;
  for (const Window& w : windows) {
    const absl::TimeZone tz = Zone(w.zone);
    const absl::Time from = Utc(w.from), to = Utc(w.to);
    for (const char* expr : exprs) {
      auto pattern = ParseCron(expr);
      ASSERT_TRUE(pattern.ok());
      for (DstGap gap : {kAfter, kSkip, kShift}) {
        for (DstRepeat repeat : {kFirst, kLast, kBoth}) {
          const std::set<absl::Time> want =
              Reference(*pattern, tz, gap, repeat, from, to);
          auto rule = CompileCron(expr, w.zone, gap, repeat);
          ASSERT_TRUE(rule.ok());
          std::vector<absl::Time> got;
          for (absl::Time t = from;;) {
            const auto next = (*rule)->Next(t);
            ASSERT_TRUE(next.has_value());
            ASSERT_GT(*next, t);
            if (*next >= to) break;
            got.push_back(*next);
            t = *next;
          }
          EXPECT_EQ(got, std::vector<absl::Time>(want.begin(), want.end()))
              << w.zone << " '" << expr << "' gap " << static_cast<int>(gap) << " repeat "
              << static_cast<int>(repeat);
          // Starting anywhere (each reference instant and one second before
          // it) gives the same next fire.
          for (absl::Time t : want) {
            auto it = want.upper_bound(t);
            const absl::Time expect = it == want.end() ? to : *it;
            const auto next = (*rule)->Next(t);
            ASSERT_TRUE(next.has_value());
            if (expect < to) {
              EXPECT_EQ(*next, expect) << w.zone << " '" << expr << "' after " << t;
            }
            EXPECT_EQ((*rule)->Next(t - absl::Seconds(1)), t)
                << w.zone << " '" << expr << "'";
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 11 * 8 * 9);
}

}  // namespace
}  // namespace timer::domain
