// Parsing and printing the times and intervals people type at the `timer`
// prompt. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace timer::cli {

// Accepts "2026-12-01", "2026-12-01T02:00", "2026-12-01T02:00:00[.fff]", also
// with a space instead of 'T', each optionally followed by "Z" or a UTC
// offset ("+02:00", "-0500"). Without an offset the time is in `local`
// (pass absl::LocalTimeZone(), which honours TZ). A date alone is midnight.
// Years 1 to 9999 only (a protobuf Timestamp's range).
absl::StatusOr<absl::Time> ParseTimeArg(const std::string& text, absl::TimeZone local);

// Accepts plain seconds ("3600") or a number with one unit: s, m, h, d, w
// ("90s", "15m", "1h", "1d", "1w"). Must be > 0.
absl::StatusOr<int64_t> ParseIntervalArg(const std::string& text);

// "2026-12-01T02:00:00Z" (UTC, ISO 8601, whole seconds: for people; JSON
// output keeps full precision).
std::string IsoTime(absl::Time t);

// "1h", "1d 2h", "90s": a short human form of a number of seconds.
std::string FormatSeconds(int64_t seconds);

// "in 3h", "5m ago", "now": `t` relative to `now`, rounded to the largest unit.
std::string RelativeHint(absl::Time t, absl::Time now);

}  // namespace timer::cli
