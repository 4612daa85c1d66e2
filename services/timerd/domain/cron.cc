#include "domain/cron.h"

#include <array>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "domain/schedule_rule.h"
#include "domain/zoned_rule.h"

namespace timer::domain {
namespace {

struct FieldRange {
  int lo;
  int hi;
};

FieldRange RangeOf(PatternField field) {
  switch (field) {
    case PatternField::kSeconds:
    case PatternField::kMinutes:
      return {0, 59};
    case PatternField::kHours:
      return {0, 23};
    case PatternField::kDaysOfMonth:
      return {1, 31};
    case PatternField::kMonths:
      return {1, 12};
    case PatternField::kDaysOfWeek:
      return {0, 7};
    case PatternField::kYears:
      return {kMinPatternYear, kMaxPatternYear};
  }
  return {0, 0};
}

constexpr std::array<const char*, 12> kMonthNames = {
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char*, 7> kDayNames = {"SUN", "MON", "TUE", "WED",
                                                  "THU", "FRI", "SAT"};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Weekday with Sunday = 0.
int WeekdayOf(absl::CivilDay d) {
  switch (absl::GetWeekday(d)) {
    case absl::Weekday::sunday:
      return 0;
    case absl::Weekday::monday:
      return 1;
    case absl::Weekday::tuesday:
      return 2;
    case absl::Weekday::wednesday:
      return 3;
    case absl::Weekday::thursday:
      return 4;
    case absl::Weekday::friday:
      return 5;
    case absl::Weekday::saturday:
      return 6;
  }
  return 0;
}

int DaysInMonth(int64_t year, int month) {
  static constexpr int kDays[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month != 2) return kDays[month];
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return leap ? 29 : 28;
}

// The weekday nearest day `n` of a month of `dim` days whose day `n` falls on
// weekday `wd_n`, never leaving the month (Quartz's W); 0 if day n does not
// exist in the month.
int NearestWeekday(int n, int wd_n, int dim) {
  if (n > dim) return 0;
  if (wd_n == 6) return n == 1 ? 3 : n - 1;        // Saturday
  if (wd_n == 0) return n == dim ? n - 2 : n + 1;  // Sunday
  return n;
}

// Lowest set bit at or above `from`, or -1.
int NextBit(uint64_t mask, int from) {
  if (from >= 64) return -1;
  const uint64_t m = mask & (~uint64_t{0} << from);
  return m == 0 ? -1 : __builtin_ctzll(m);
}

// A cursor over one field's text that reports errors at offsets in it.
class FieldParser {
 public:
  FieldParser(std::string_view text, PatternField field, CivilPattern* out)
      : text_(text), field_(field), range_(RangeOf(field)), out_(out) {}

  std::optional<FieldError> Parse() {
    if (text_.empty()) return Error(0, "is empty");
    Clear();
    size_t start = 0;
    while (true) {
      const size_t comma = text_.find(',', start);
      const size_t end = comma == std::string_view::npos ? text_.size() : comma;
      if (end == start) return Error(static_cast<int>(start), "empty list element");
      if (auto err = Element(start, end)) return err;
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return std::nullopt;
  }

 private:
  std::optional<FieldError> Error(int pos, std::string message) {
    return FieldError{pos, std::move(message)};
  }

  void Clear() {
    switch (field_) {
      case PatternField::kSeconds:
        out_->seconds = 0;
        break;
      case PatternField::kMinutes:
        out_->minutes = 0;
        break;
      case PatternField::kHours:
        out_->hours = 0;
        break;
      case PatternField::kDaysOfMonth:
        out_->days = out_->last_days = out_->nearest_weekdays = 0;
        out_->last_weekday_of_month = false;
        break;
      case PatternField::kMonths:
        out_->months = 0;
        break;
      case PatternField::kDaysOfWeek:
        out_->weekdays = out_->last_weekdays = 0;
        out_->nth_weekdays = 0;
        break;
      case PatternField::kYears:
        years_.reset();
        out_->years = nullptr;
        break;
    }
  }

  void Set(int v) {
    switch (field_) {
      case PatternField::kSeconds:
        out_->seconds |= uint64_t{1} << v;
        break;
      case PatternField::kMinutes:
        out_->minutes |= uint64_t{1} << v;
        break;
      case PatternField::kHours:
        out_->hours |= uint32_t{1} << v;
        break;
      case PatternField::kDaysOfMonth:
        out_->days |= uint32_t{1} << v;
        break;
      case PatternField::kMonths:
        out_->months |= static_cast<uint16_t>(1u << v);
        break;
      case PatternField::kDaysOfWeek:
        out_->weekdays |= static_cast<uint8_t>(1u << (v % 7));
        break;
      case PatternField::kYears:
        if (years_ == nullptr) {
          years_ = std::make_shared<std::bitset<kMaxPatternYear - kMinPatternYear + 1>>();
          out_->years = years_;
        }
        years_->set(static_cast<size_t>(v - kMinPatternYear));
        break;
    }
  }

  // Reads a number or (months, days of week) a 3-letter name at `pos`.
  std::optional<FieldError> Value(size_t& pos, size_t end, int* value) {
    const size_t start = pos;
    if (pos < end && IsDigit(text_[pos])) {
      int64_t v = 0;
      while (pos < end && IsDigit(text_[pos])) {
        if (pos - start >= 6) return Error(static_cast<int>(start), "number is too long");
        v = v * 10 + (text_[pos] - '0');
        ++pos;
      }
      *value = static_cast<int>(v);
      return std::nullopt;
    }
    if (pos < end && IsAlpha(text_[pos]) &&
        (field_ == PatternField::kMonths || field_ == PatternField::kDaysOfWeek)) {
      while (pos < end && IsAlpha(text_[pos])) ++pos;
      const std::string name =
          absl::AsciiStrToUpper(std::string(text_.substr(start, pos - start)));
      if (field_ == PatternField::kMonths) {
        for (size_t i = 0; i < kMonthNames.size(); ++i) {
          if (name == kMonthNames[i]) {
            *value = static_cast<int>(i) + 1;
            return std::nullopt;
          }
        }
        return Error(static_cast<int>(start),
                     absl::StrCat("unknown month name '", name, "' (expected JAN-DEC)"));
      }
      // A trailing L ("FRIL") is the last-weekday form, not part of the name.
      std::string day = name;
      if (day.size() == 4 && day.back() == 'L') {
        day.pop_back();
        --pos;
      }
      for (size_t i = 0; i < kDayNames.size(); ++i) {
        if (day == kDayNames[i]) {
          *value = static_cast<int>(i);
          return std::nullopt;
        }
      }
      return Error(static_cast<int>(start),
                   absl::StrCat("unknown day name '", name, "' (expected SUN-SAT)"));
    }
    if (field_ == PatternField::kMonths) {
      return Error(static_cast<int>(start),
                   "expected a month (1-12 or JAN-DEC), '*' or a range");
    }
    if (field_ == PatternField::kDaysOfWeek) {
      return Error(static_cast<int>(start),
                   "expected a day of week (0-7 or SUN-SAT), '*', '?', 'L' or a range");
    }
    if (field_ == PatternField::kDaysOfMonth) {
      return Error(static_cast<int>(start),
                   "expected a day (1-31), '*', '?', 'L', 'LW', 'L-n', 'nW' or a range");
    }
    return Error(static_cast<int>(start), "expected a number, '*' or a range");
  }

  std::optional<FieldError> InRange(size_t pos, int v, int lo, int hi) {
    if (v < lo || v > hi) {
      return Error(static_cast<int>(pos),
                   absl::StrCat(v, " is out of range ", lo, "-", hi));
    }
    return std::nullopt;
  }

  std::optional<FieldError> Trailing(size_t pos, size_t end) {
    if (pos < end) {
      return Error(static_cast<int>(pos),
                   absl::StrCat("unexpected '", std::string(text_.substr(pos, 1)), "'"));
    }
    return std::nullopt;
  }

  // Days of month: L, L-n, LW.
  std::optional<FieldError> LastDay(size_t pos, size_t end) {
    ++pos;  // the L
    if (pos == end) {
      out_->last_days |= 1;
      return std::nullopt;
    }
    if (text_[pos] == 'W' || text_[pos] == 'w') {
      if (auto err = Trailing(pos + 1, end)) return err;
      out_->last_weekday_of_month = true;
      return std::nullopt;
    }
    if (text_[pos] != '-')
      return Error(static_cast<int>(pos), "expected 'W' or '-n' after 'L'");
    ++pos;
    const size_t num = pos;
    if (pos == end || !IsDigit(text_[pos])) {
      return Error(static_cast<int>(num), "expected a number of days (0-30) after 'L-'");
    }
    int n = 0;
    if (auto err = Value(pos, end, &n)) return err;
    if (auto err = InRange(num, n, 0, 30)) return err;
    if (auto err = Trailing(pos, end)) return err;
    out_->last_days |= uint32_t{1} << n;
    return std::nullopt;
  }

  std::optional<FieldError> Element(size_t pos, size_t end) {
    const size_t start = pos;
    const char first = text_[pos];
    const bool dom = field_ == PatternField::kDaysOfMonth;
    const bool dow = field_ == PatternField::kDaysOfWeek;
    if ((first == 'L' || first == 'l') && dom) return LastDay(pos, end);
    if ((first == 'L' || first == 'l') && dow && pos + 1 == end) {
      Set(6);  // Quartz: L alone in days of week is Saturday
      return std::nullopt;
    }
    int lo = range_.lo;
    int hi = range_.hi;
    if (dow) hi = 6;  // '*' covers 0-6; 7 is only Sunday's other name
    bool single = false;
    if (first == '*' || first == '?') {
      if (first == '?' && !dom && !dow) {
        return Error(static_cast<int>(pos),
                     "'?' is only allowed in days of month and week");
      }
      ++pos;
      if (first == '?' && pos < end) return Trailing(pos, end);
    } else {
      if (auto err = Value(pos, end, &lo)) return err;
      if (auto err = InRange(start, lo, range_.lo, range_.hi)) return err;
      hi = lo;
      single = true;
      if (pos < end && text_[pos] == '-') {
        ++pos;
        const size_t hi_pos = pos;
        if (auto err = Value(pos, end, &hi)) return err;
        if (auto err = InRange(hi_pos, hi, range_.lo, range_.hi)) return err;
        if (hi < lo) {
          return Error(static_cast<int>(start),
                       absl::StrCat("range ", lo, "-", hi, " ends before it starts"));
        }
        single = false;
      } else if (pos < end && single && dom && (text_[pos] == 'W' || text_[pos] == 'w')) {
        if (auto err = Trailing(pos + 1, end)) return err;
        out_->nearest_weekdays |= uint32_t{1} << lo;
        return std::nullopt;
      } else if (pos < end && single && dow && (text_[pos] == 'L' || text_[pos] == 'l')) {
        if (auto err = Trailing(pos + 1, end)) return err;
        out_->last_weekdays |= static_cast<uint8_t>(1u << (lo % 7));
        return std::nullopt;
      } else if (pos < end && single && dow && text_[pos] == '#') {
        ++pos;
        const size_t n_pos = pos;
        int n = 0;
        if (pos == end || !IsDigit(text_[pos])) {
          return Error(static_cast<int>(n_pos), "expected a week number (1-5) after '#'");
        }
        if (auto err = Value(pos, end, &n)) return err;
        if (auto err = InRange(n_pos, n, 1, 5)) return err;
        if (auto err = Trailing(pos, end)) return err;
        out_->nth_weekdays |= uint64_t{1} << (5 * (lo % 7) + (n - 1));
        return std::nullopt;
      }
    }
    int step = 1;
    if (pos < end && text_[pos] == '/') {
      ++pos;
      const size_t step_pos = pos;
      if (pos == end || !IsDigit(text_[pos])) {
        return Error(static_cast<int>(step_pos),
                     "expected a step (a number >= 1) after '/'");
      }
      if (auto err = Value(pos, end, &step)) return err;
      if (step < 1) return Error(static_cast<int>(step_pos), "a step must be >= 1");
      if (single) hi = dow ? 6 : range_.hi;  // "a/n" is "a-max/n", as in Quartz
    }
    if (auto err = Trailing(pos, end)) return err;
    for (int v = lo; v <= hi; v += step) Set(v);
    return std::nullopt;
  }

  std::string_view text_;
  PatternField field_;
  FieldRange range_;
  CivilPattern* out_;
  std::shared_ptr<std::bitset<kMaxPatternYear - kMinPatternYear + 1>> years_;
};

struct Macro {
  const char* name;
  const char* expansion;
};
constexpr Macro kMacros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

}  // namespace

const char* PatternFieldName(PatternField field) {
  switch (field) {
    case PatternField::kSeconds:
      return "seconds";
    case PatternField::kMinutes:
      return "minutes";
    case PatternField::kHours:
      return "hours";
    case PatternField::kDaysOfMonth:
      return "day of month";
    case PatternField::kMonths:
      return "month";
    case PatternField::kDaysOfWeek:
      return "day of week";
    case PatternField::kYears:
      return "years";
  }
  return "?";
}

bool CivilPattern::MatchesDay(absl::CivilDay day) const {
  const int m = day.month();
  if (((months >> m) & 1) == 0) return false;
  const int64_t y = day.year();
  if (years != nullptr &&
      (y < kMinPatternYear || y > kMaxPatternYear || !years->test(y - kMinPatternYear))) {
    return false;
  }
  const int d = day.day();
  const int wd = WeekdayOf(day);
  const int dim = DaysInMonth(y, m);
  bool dom = ((days >> d) & 1) != 0;
  if (!dom && last_days != 0) dom = ((last_days >> (dim - d)) & 1) != 0;
  if (!dom && nearest_weekdays != 0) {
    for (uint32_t bits = nearest_weekdays; bits != 0 && !dom; bits &= bits - 1) {
      const int n = __builtin_ctz(bits);
      const int wd_n = ((wd + n - d) % 7 + 7) % 7;
      dom = NearestWeekday(n, wd_n, dim) == d;
    }
  }
  if (!dom && last_weekday_of_month) {
    const int wd_last = (wd + dim - d) % 7;
    dom = NearestWeekday(dim, wd_last, dim) == d;
  }
  if (dom && day_or) return true;
  if (!dom && !day_or) return false;
  bool dow = ((weekdays >> wd) & 1) != 0;
  if (!dow && nth_weekdays != 0)
    dow = ((nth_weekdays >> (5 * wd + (d - 1) / 7)) & 1) != 0;
  if (!dow && last_weekdays != 0) dow = ((last_weekdays >> wd) & 1) != 0 && d + 7 > dim;
  return dow;
}

bool CivilPattern::Matches(absl::CivilSecond t) const {
  return ((seconds >> t.second()) & 1) != 0 && ((minutes >> t.minute()) & 1) != 0 &&
         ((hours >> t.hour()) & 1) != 0 && MatchesDay(absl::CivilDay(t));
}

std::optional<absl::CivilSecond> CivilPattern::FirstMatch(absl::CivilSecond from,
                                                          absl::CivilSecond to) const {
  if (seconds == 0 || minutes == 0 || hours == 0 || months == 0) return std::nullopt;
  absl::CivilDay day(from);
  const absl::CivilDay last_day(to);
  int h = from.hour(), m = from.minute(), s = from.second();
  while (day <= last_day) {
    if (((months >> day.month()) & 1) == 0) {
      day = absl::CivilDay(absl::CivilMonth(day) + 1);
      h = m = s = 0;
      continue;
    }
    if (years != nullptr) {
      const int64_t y = day.year();
      if (y < kMinPatternYear) {
        day = absl::CivilDay(kMinPatternYear, 1, 1);
        h = m = s = 0;
        continue;
      }
      if (y > kMaxPatternYear) return std::nullopt;
      if (!years->test(y - kMinPatternYear)) {
        day = absl::CivilDay(y + 1, 1, 1);
        h = m = s = 0;
        continue;
      }
    }
    if (!MatchesDay(day)) {
      ++day;
      h = m = s = 0;
      continue;
    }
    // The first (H, M, S) >= (h, m, s) in the day: the bounds apply only
    // while the earlier fields equal their lower bound.
    int H = -1, M = -1, S = -1;
    for (H = NextBit(hours, h); H >= 0 && S < 0; H = S < 0 ? NextBit(hours, H + 1) : H) {
      for (M = NextBit(minutes, H == h ? m : 0); M >= 0; M = NextBit(minutes, M + 1)) {
        S = NextBit(seconds, H == h && M == m ? s : 0);
        if (S >= 0) break;
      }
    }
    if (S < 0) {
      ++day;
      h = m = s = 0;
      continue;
    }
    const absl::CivilSecond found(day.year(), day.month(), day.day(), H, M, S);
    if (found >= to) return std::nullopt;
    return found;
  }
  return std::nullopt;
}

size_t CivilPattern::HeapBytes() const {
  return years == nullptr ? 0 : sizeof(*years) + 16;  // + the control block
}

std::optional<FieldError> ParsePatternField(std::string_view text, PatternField field,
                                            CivilPattern* out) {
  return FieldParser(text, field, out).Parse();
}

absl::StatusOr<CivilPattern> ParseCron(std::string_view expression) {
  // Fields and their 0-based offsets in `expression`.
  std::vector<std::pair<std::string_view, size_t>> fields;
  for (size_t i = 0; i < expression.size();) {
    if (IsSpace(expression[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < expression.size() && !IsSpace(expression[j])) ++j;
    if (fields.size() == 7) break;
    fields.emplace_back(expression.substr(i, j - i), i);
    i = j;
  }
  if (fields.empty()) return absl::InvalidArgumentError("cron: the expression is empty");
  if (fields[0].first[0] == '@') {
    const std::string name = absl::AsciiStrToLower(std::string(fields[0].first));
    const Macro* found = nullptr;
    for (const Macro& macro : kMacros) {
      if (name == macro.name) found = &macro;
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cron: at position ", fields[0].second + 1, ": unknown macro ",
                       std::string(fields[0].first),
                       " (expected @yearly, @annually, @monthly, @weekly, @daily, "
                       "@midnight or @hourly)"));
    }
    if (fields.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cron: at position ", fields[1].second + 1, ": nothing may follow ", name));
    }
    return ParseCron(found->expansion);
  }
  if (fields.size() != 5 && fields.size() != 6) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cron: expected 5 fields (minutes hours day-of-month month day-of-week) or 6 "
        "(seconds first), got ",
        fields.size() > 6 ? "more than 6" : absl::StrCat(fields.size())));
  }
  static constexpr PatternField kOrder[] = {
      PatternField::kSeconds,     PatternField::kMinutes, PatternField::kHours,
      PatternField::kDaysOfMonth, PatternField::kMonths,  PatternField::kDaysOfWeek};
  const size_t skip = fields.size() == 5 ? 1 : 0;
  CivilPattern pattern;
  pattern.seconds = 1;  // 5 fields: at second 0
  for (size_t i = 0; i < fields.size(); ++i) {
    const PatternField field = kOrder[i + skip];
    if (auto err = ParsePatternField(fields[i].first, field, &pattern)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cron: field ", i + 1, " (", PatternFieldName(field), ") at position ",
          fields[i].second + err->position + 1, ": ", err->message));
    }
  }
  // Vixie cron: a field whose text starts with '*' (or Quartz's '?') is
  // unrestricted, whatever follows ("*/2" included).
  const auto unrestricted = [&](size_t i) {
    const char c = fields[i].first[0];
    return c == '*' || c == '?';
  };
  pattern.day_or = !unrestricted(3 - skip) && !unrestricted(5 - skip);
  return pattern;
}

absl::StatusOr<std::shared_ptr<const ScheduleRule>> CompileCron(
    std::string_view expression, std::string_view time_zone, DstGap gap,
    DstRepeat repeat) {
  auto pattern = ParseCron(expression);
  if (!pattern.ok()) return pattern.status();
  auto tz = LoadRuleTimeZone(time_zone);
  if (!tz.ok()) return tz.status();
  std::vector<CivilPattern> include;
  include.push_back(*std::move(pattern));
  ZonedRuleOptions options;
  options.describe =
      absl::StrCat("cron '", std::string(expression), "' in ", std::string(time_zone));
  options.source = absl::StrCat("'", std::string(expression), "'");
  return MakeZonedRule(std::move(include), {}, *tz, gap, repeat, std::move(options));
}

}  // namespace timer::domain
