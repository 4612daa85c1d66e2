#include "cli_time.h"

#include <cctype>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "printable.h"

namespace timer::cli {
namespace {

// 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z: a protobuf Timestamp's range.
const absl::Time kMinTime = absl::FromUnixSeconds(-62135596800);
const absl::Time kEndTime = absl::FromUnixSeconds(253402300800);

}  // namespace

absl::StatusOr<absl::Time> ParseTimeArg(const std::string& text, absl::TimeZone local) {
  std::string s = text;
  if (s.size() > 10 && s[10] == ' ') s[10] = 'T';
  // absl's %Ez takes "+hh:mm"/"+hhmm"; "Z" is spelled out here.
  bool utc = false;
  if (!s.empty() && (s.back() == 'Z' || s.back() == 'z')) {
    s.pop_back();
    utc = true;
  }
  static const char* const kFormats[] = {
      "%Y-%m-%dT%H:%M:%E*S%Ez", "%Y-%m-%dT%H:%M%Ez", "%Y-%m-%d%Ez",
      "%Y-%m-%dT%H:%M:%E*S",    "%Y-%m-%dT%H:%M",    "%Y-%m-%d",
  };
  for (const char* format : kFormats) {
    absl::Time t;
    std::string err;
    if (absl::ParseTime(format, s, utc ? absl::UTCTimeZone() : local, &t, &err)) {
      // absl::ParseTime also takes "infinite-future", "infinite-past" and
      // years far beyond 9999; a schedule's times travel as protobuf
      // Timestamps, which hold years 1 to 9999 only.
      if (t < kMinTime || t >= kEndTime) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"", Echo(text), "\" is out of range: years 1 to 9999 only"));
      }
      return t;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("\"", Echo(text),
                   "\" is not a date or time; use e.g. 2026-12-01, 2026-12-01T02:00:00, "
                   "or 2026-12-01T02:00:00+01:00"));
}

absl::StatusOr<int64_t> ParseIntervalArg(const std::string& text) {
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", Echo(text),
        "\" is not an interval; use seconds (3600) or 90s, 15m, 1h, 1d, 1w"));
  };
  if (text.empty()) return bad();
  int64_t unit = 1;
  std::string digits = text;
  switch (text.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    case 'w':
      unit = 604800;
      break;
    default:
      unit = 0;
  }
  if (unit != 0)
    digits.pop_back();
  else
    unit = 1;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return bad();
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n) || n <= 0 || n > INT64_MAX / unit) return bad();
  return n * unit;
}

std::string IsoTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string FormatSeconds(int64_t seconds) {
  static const std::pair<int64_t, const char*> kUnits[] = {
      {604800, "w"}, {86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  if (seconds <= 0) return absl::StrCat(seconds, "s");
  std::vector<std::string> parts;
  for (const auto& [size, name] : kUnits) {
    if (seconds >= size && parts.size() < 2) {
      parts.push_back(absl::StrCat(seconds / size, name));
      seconds %= size;
    } else if (!parts.empty()) {
      break;  // Two adjacent units at most: "1d 2h", not "1d 0h 5m".
    }
  }
  return absl::StrJoin(parts, " ");
}

std::string RelativeHint(absl::Time t, absl::Time now) {
  const int64_t delta = absl::ToInt64Seconds(t - now);
  if (delta == 0) return "now";
  static const std::pair<uint64_t, const char*> kUnits[] = {
      {86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  // Unsigned: -INT64_MIN (an infinite past, say) does not fit an int64_t.
  const uint64_t mag = delta < 0 ? 0 - static_cast<uint64_t>(delta) : delta;
  for (const auto& [size, name] : kUnits) {
    if (mag >= size) {
      std::string amount = absl::StrCat(mag / size, name);
      return delta > 0 ? absl::StrCat("in ", amount) : absl::StrCat(amount, " ago");
    }
  }
  return "now";
}

}  // namespace timer::cli
