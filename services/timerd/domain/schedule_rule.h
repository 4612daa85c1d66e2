// Calendar schedules: where the fire times of a `cron` or `calendar`
// schedule fall, in an IANA time zone, with an explicit rule for local times
// that do not exist (spring forward) or occur twice (fall back).
//
// A rule is compiled once (parse, zone lookup) and is then immutable, pure
// (no clock reads, no I/O) and thread-safe: the run engine asks it for the
// next fire time after a slot, the preview asks it for the next N with the
// reason for each. The zone's transitions are read from the system tz
// database through Abseil's time zone support the first time the process
// compiles a rule in that zone; Abseil keeps them for the life of the
// process, so a tzdata update takes effect when timerd restarts.
//
// This header is the seam between the schedule math (cron.cc,
// calendar_spec.cc, zoned_rule.cc) and its users (schedule.cc's
// DecideFire / NextRunAtOrAfter, the job validation in jobs.cc, the preview
// and backfill RPCs). It knows nothing of the API's messages: the caller maps
// timer.v1.Schedule onto these types.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace timer::domain {

// A local time that does not exist because the clocks jumped forward over it.
enum class DstGap {
  kRunAfterGap,  // Fire at the first valid instant after the gap (the default:
                 // a 02:30 job fires at 03:00 on the day clocks go 02:00→03:00).
  kSkip,         // No fire that day for that time.
  kShiftByGap,   // Fire at the local time shifted by the gap's length (03:30).
};

// A local time that occurs twice because the clocks went back.
enum class DstRepeat {
  kFirst,  // Fire once, at the first occurrence (the default).
  kLast,   // Fire once, at the second occurrence.
  kBoth,   // Fire at both.
};

// One structured calendar spec. Each field is a list of values and ranges
// with optional steps, as in a cron field: "0", "0,30", "9-17", "*/15",
// "1-31/2"; months and days of week also take names ("JAN", "MON-FRI").
// An empty field takes the default noted beside it. Days of week: 0 or 7 is
// Sunday. A time matches when every field matches (day of month AND day of
// week, unlike cron's OR rule).
struct CalendarSpec {
  std::string seconds;        // empty: "0"
  std::string minutes;        // empty: "0"
  std::string hours;          // empty: "0"
  std::string days_of_month;  // empty: every day; "L" = the last day of the month
  std::string months;         // empty: every month
  std::string days_of_week;   // empty: every day
  std::string years;          // empty: every year
};

// A calendar schedule: the union of `include`, minus every time that any
// `exclude` spec matches. In an exclusion an empty field means "every value"
// (also for seconds, minutes and hours), so {months "12", days_of_month
// "24-26"} excludes those whole days.
struct CalendarSchedule {
  std::vector<CalendarSpec> include;  // at least one
  std::vector<CalendarSpec> exclude;
};

// A fire time and, when asked for, why it was chosen.
struct RuleFire {
  absl::Time time;  // the instant it fires (UTC)
  // Filled by NextExplained only: the rule that matched and the local time it
  // matched in the zone ("'0 2 * * *' matched 2026-03-29 02:00 in
  // Europe/Berlin"), and the DST decision if one was taken ("02:00 does not
  // exist (clocks went from 02:00 to 03:00 CEST): ran at the first instant
  // after the gap, 03:00 CEST"; "01:30 occurs twice: first occurrence
  // (CEST)"). Empty when no DST decision was needed.
  std::string matched;
  std::string dst;
};

class ScheduleRule {
 public:
  virtual ~ScheduleRule() = default;

  // The first fire time strictly after `after`, or nullopt when the rule
  // never fires again (e.g. "0 0 30 2 *", or a years field in the past).
  // Bounded work: gives up with nullopt after searching a bounded span
  // (documented by the implementation, e.g. a few hundred years) rather than
  // looping forever.
  virtual std::optional<absl::Time> Next(absl::Time after) const = 0;

  // As Next, with `matched` and `dst` filled in (for the preview; may be
  // slower).
  virtual std::optional<RuleFire> NextExplained(absl::Time after) const = 0;

  // A short canonical description for status output, e.g. "cron '0 2 * * *'
  // in Europe/Berlin".
  virtual std::string Describe() const = 0;
};

// Parses and compiles a cron expression (5 fields, or 6 with seconds first;
// names, ranges, steps, lists, @yearly/@annually/@monthly/@weekly/@daily/
// @midnight/@hourly, L, W and # as Quartz defines them, and Vixie cron's
// rule: when both day of month and day of week are restricted, a day
// matching either matches) in the IANA zone `time_zone`. An error is
// INVALID_ARGUMENT naming the field and the position, e.g. "cron: field 2
// (hours) at position 7: 25 is out of range 0-23"; an unknown zone is
// INVALID_ARGUMENT naming it.
absl::StatusOr<std::shared_ptr<const ScheduleRule>> CompileCron(
    std::string_view expression, std::string_view time_zone, DstGap gap,
    DstRepeat repeat);

// Compiles a calendar schedule in the IANA zone `time_zone`. Errors name the
// spec and field: "calendar.include[1].hours at position 3: ...".
absl::StatusOr<std::shared_ptr<const ScheduleRule>> CompileCalendar(
    const CalendarSchedule& spec, std::string_view time_zone, DstGap gap,
    DstRepeat repeat);

}  // namespace timer::domain
