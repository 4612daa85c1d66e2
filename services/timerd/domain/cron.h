// Cron expressions and the compiled civil-time pattern that both cron and
// calendar schedules are made of.
//
// A CivilPattern is a set of local (civil) times, held as one bitset per
// field, plus the day-of-month and day-of-week forms of Quartz (L, L-n, nW,
// LW, w#n, wL). It knows nothing of time zones: zoned_rule.h turns the
// civil times it matches into instants. A pattern is a small value (about
// 60 bytes, no heap unless a calendar spec restricts the years), immutable
// once parsed, and safe to read from any number of threads.
//
// The expression syntax and its semantics (what "restricted" means for
// Vixie cron's day-of-month/day-of-week OR rule, how W, L and # behave) are
// documented for users in docs/API.md, "Cron and calendar schedules".
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"

namespace timer::domain {

// The fields of a pattern, in the order of a 6-field cron expression (years
// only exist in calendar specs).
enum class PatternField {
  kSeconds,
  kMinutes,
  kHours,
  kDaysOfMonth,
  kMonths,
  kDaysOfWeek,
  kYears,
};

// "day of month", "hours", ... as error messages name them.
const char* PatternFieldName(PatternField field);

// The years a calendar spec may name. Searches never look past
// kMaxPatternYear + 1 for a calendar spec restricted to years.
inline constexpr int kMinPatternYear = 1970;
inline constexpr int kMaxPatternYear = 2399;

struct CivilPattern {
  uint64_t seconds = 0;                // bit s: second s (0-59)
  uint64_t minutes = 0;                // bit m: minute m (0-59)
  uint32_t hours = 0;                  // bit h: hour h (0-23)
  uint32_t days = 0;                   // bit d: day of month d (1-31)
  uint32_t last_days = 0;              // bit n: "L-n", n days before the last day
  uint32_t nearest_weekdays = 0;       // bit d: "dW", the weekday nearest day d
  uint64_t nth_weekdays = 0;           // bit 5*w+(n-1): "w#n", the nth weekday w
  uint16_t months = 0;                 // bit m: month m (1-12)
  uint8_t weekdays = 0;                // bit w: weekday w (0 = Sunday)
  uint8_t last_weekdays = 0;           // bit w: "wL", the last weekday w of the month
  bool last_weekday_of_month = false;  // "LW"
  // Vixie cron: both day of month and day of week restricted, so a day
  // matching either matches. Otherwise (and always in calendar specs) a day
  // must match both.
  bool day_or = false;
  // Bit y - kMinPatternYear; null: every year (cron has no years field).
  std::shared_ptr<const std::bitset<kMaxPatternYear - kMinPatternYear + 1>> years;

  bool MatchesDay(absl::CivilDay day) const;
  bool Matches(absl::CivilSecond t) const;

  // The first civil second in [from, to) that matches, or nullopt. Skips
  // whole years, months and days that cannot match; within a day it finds the
  // time with a few bit scans. Work is bounded by the number of days in the
  // range (months outside the months field cost one step each).
  std::optional<absl::CivilSecond> FirstMatch(absl::CivilSecond from,
                                              absl::CivilSecond to) const;

  // Heap bytes owned beyond sizeof(CivilPattern) (the years bitset, if any).
  size_t HeapBytes() const;
};

// A parse error inside one field: `position` is the 0-based offset in the
// field's text.
struct FieldError {
  int position = 0;
  std::string message;
};

// Parses one field's text into `out` (the field's bits are replaced; the
// other fields are untouched). Returns the error, if any. Does not set
// `day_or`. `?` is accepted in days of month and days of week only.
std::optional<FieldError> ParsePatternField(std::string_view text, PatternField field,
                                            CivilPattern* out);

// Parses a cron expression (5 fields, or 6 with seconds first, or a @macro)
// into a pattern. Errors are INVALID_ARGUMENT: "cron: field 2 (hours) at
// position 7: 25 is out of range 0-23" (the field counted as written, the
// position a 1-based character offset in `expression`).
absl::StatusOr<CivilPattern> ParseCron(std::string_view expression);

}  // namespace timer::domain
