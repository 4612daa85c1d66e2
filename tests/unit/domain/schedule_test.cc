// Tests of the schedule grid math (domain/schedule.h): run k is due at
// start + k * interval, and FirstSlotAtOrAfter finds the first run not in the
// past.

#include "domain/schedule.h"

#include <cstdint>

#include "absl/time/time.h"
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
}  // namespace timer::domain
