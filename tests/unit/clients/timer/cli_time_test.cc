// Tests of the CLI's time and interval parsing (clients/timer/cli_time.h),
// with the inputs the fuzzer once crashed on (tests/fuzz/regressions/).
#include "cli_time.h"

#include <cstdint>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timer::cli {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(ParseTimeArgTest, AcceptsTheDocumentedForms) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::Time expected = absl::FromUnixSeconds(1796090400);  // 2026-12-01T02:00:00Z
  for (const char* text :
       {"2026-12-01T02:00", "2026-12-01T02:00:00", "2026-12-01 02:00",
        "2026-12-01T02:00:00Z", "2026-12-01T03:00:00+01:00", "2026-11-30T21:00-0500"}) {
    auto t = ParseTimeArg(text, utc);
    ASSERT_TRUE(t.ok()) << text << ": " << t.status();
    EXPECT_EQ(*t, expected) << text;
  }
  auto midnight = ParseTimeArg("2026-12-01", utc);
  ASSERT_TRUE(midnight.ok());
  EXPECT_EQ(*midnight, expected - absl::Hours(2));
  auto fraction = ParseTimeArg("2026-12-01T02:00:00.25Z", utc);
  ASSERT_TRUE(fraction.ok());
  EXPECT_EQ(*fraction, expected + absl::Milliseconds(250));
  auto local = ParseTimeArg("2026-12-01T02:00", absl::FixedTimeZone(3600));
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(*local, expected - absl::Hours(1));
}

TEST(ParseTimeArgTest, RefusesWhatIsNotATime) {
  for (const char* text : {"", "yesterday", "2026-02-30", "2026-12-01T25:00", "Z"}) {
    EXPECT_THAT(ParseTimeArg(text, absl::UTCTimeZone()).status().message(),
                HasSubstr("is not a date or time"))
        << text;
  }
}

// Found by fuzz_start_time: absl::ParseTime takes "infinite-past" and
// "infinite-future", which the CLI then passed on (and RelativeHint negated
// INT64_MIN, undefined behaviour). Times must fit a protobuf Timestamp.
TEST(ParseTimeArgTest, RefusesInfiniteAndOutOfRangeTimes) {
  for (const char* text :
       {"infinite-past", "infinite-future", "infinite-futureZ", "10000-01-01",
        "99999-12-31T00:00Z", "0000-12-31T23:59:59Z", "-0001-01-01"}) {
    auto t = ParseTimeArg(text, absl::UTCTimeZone());
    EXPECT_FALSE(t.ok()) << text << " gave " << *t;
  }
  EXPECT_THAT(ParseTimeArg("infinite-future", absl::UTCTimeZone()).status().message(),
              HasSubstr("out of range"));
  auto first = ParseTimeArg("0001-01-01T00:00:00Z", absl::UTCTimeZone());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(absl::ToUnixSeconds(*first), -62135596800);
  auto last = ParseTimeArg("9999-12-31T23:59:59.999Z", absl::UTCTimeZone());
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(absl::ToUnixSeconds(*last), 253402300799);
}

TEST(RelativeHintTest, RoundsToTheLargestUnitEvenAtTheExtremes) {
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  EXPECT_EQ(RelativeHint(now, now), "now");
  EXPECT_EQ(RelativeHint(now + absl::Hours(3), now), "in 3h");
  EXPECT_EQ(RelativeHint(now - absl::Minutes(5), now), "5m ago");
  EXPECT_EQ(RelativeHint(absl::InfinitePast(), now), "106751991167300d ago");
  EXPECT_EQ(RelativeHint(absl::InfiniteFuture(), now), "in 106751991167300d");
}

TEST(ParseIntervalArgTest, SecondsAndUnits) {
  EXPECT_EQ(*ParseIntervalArg("3600"), 3600);
  EXPECT_EQ(*ParseIntervalArg("90s"), 90);
  EXPECT_EQ(*ParseIntervalArg("15m"), 900);
  EXPECT_EQ(*ParseIntervalArg("1h"), 3600);
  EXPECT_EQ(*ParseIntervalArg("1d"), 86400);
  EXPECT_EQ(*ParseIntervalArg("1w"), 604800);
  EXPECT_EQ(*ParseIntervalArg("15250284452471w"), int64_t{15250284452471} * 604800);
  for (const char* text : {"", "0", "-5", "1y", "1.5h", " 1h", "h", "15250284452472w",
                           "9223372036854775808"}) {
    EXPECT_FALSE(ParseIntervalArg(text).ok()) << text;
  }
}

// An argument echoed in an error is escaped and cut: a megabyte pasted by
// mistake, or an escape sequence, does not come back to the terminal whole.
TEST(ParseArgErrorsTest, EchoAtMostABoundedEscapedPartOfTheArgument) {
  const std::string huge(1 << 20, '9');
  absl::StatusOr<int64_t> interval = ParseIntervalArg(huge + "q");
  ASSERT_FALSE(interval.ok());
  EXPECT_LT(interval.status().message().size(), 512u)
      << interval.status().message().size();
  EXPECT_THAT(std::string(interval.status().message()), HasSubstr("(1048577 bytes)"));
  absl::StatusOr<absl::Time> time = ParseTimeArg("\x1b]0;owned\x07", absl::UTCTimeZone());
  ASSERT_FALSE(time.ok());
  EXPECT_THAT(std::string(time.status().message()),
              AllOf(HasSubstr("\\x1b]0;owned\\x07"), Not(HasSubstr("\x1b"))));
}

}  // namespace
}  // namespace timer::cli
