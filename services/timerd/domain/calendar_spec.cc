#include "domain/calendar_spec.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "domain/zoned_rule.h"

namespace timer::domain {
namespace {

struct NamedField {
  const char* name;
  const std::string CalendarSpec::*text;
  PatternField field;
};

constexpr NamedField kFields[] = {
    {"seconds", &CalendarSpec::seconds, PatternField::kSeconds},
    {"minutes", &CalendarSpec::minutes, PatternField::kMinutes},
    {"hours", &CalendarSpec::hours, PatternField::kHours},
    {"days_of_month", &CalendarSpec::days_of_month, PatternField::kDaysOfMonth},
    {"months", &CalendarSpec::months, PatternField::kMonths},
    {"days_of_week", &CalendarSpec::days_of_week, PatternField::kDaysOfWeek},
    {"years", &CalendarSpec::years, PatternField::kYears},
};

// "hours 2; days_of_week MON-FRI" (the non-empty fields), for Describe().
std::string SpecText(const CalendarSpec& spec) {
  std::vector<std::string> parts;
  for (const NamedField& f : kFields) {
    if (!(spec.*f.text).empty()) parts.push_back(absl::StrCat(f.name, " ", spec.*f.text));
  }
  return parts.empty() ? "every day at 00:00:00" : absl::StrJoin(parts, "; ");
}

}  // namespace

absl::StatusOr<CivilPattern> CompileCalendarSpec(const CalendarSpec& spec, bool exclusion,
                                                 std::string_view name) {
  CivilPattern pattern;
  for (const NamedField& f : kFields) {
    std::string_view text = spec.*f.text;
    const bool zero_default = !exclusion && (f.field == PatternField::kSeconds ||
                                             f.field == PatternField::kMinutes ||
                                             f.field == PatternField::kHours);
    if (text.empty()) {
      if (f.field == PatternField::kYears) continue;  // null: every year
      text = zero_default ? "0" : "*";
    }
    if (auto err = ParsePatternField(text, f.field, &pattern)) {
      return absl::InvalidArgumentError(absl::StrCat(std::string(name), ".", f.name,
                                                     " at position ", err->position + 1,
                                                     ": ", err->message));
    }
  }
  pattern.day_or = false;
  return pattern;
}

absl::StatusOr<std::shared_ptr<const ScheduleRule>> CompileCalendar(
    const CalendarSchedule& spec, std::string_view time_zone, DstGap gap,
    DstRepeat repeat) {
  if (spec.include.empty()) {
    return absl::InvalidArgumentError("calendar.include: at least one spec is required");
  }
  // Each spec is ~100 bytes compiled; the caller bounds how many a job has.
  std::vector<CivilPattern> include, exclude;
  std::vector<std::string> include_text, exclude_text;
  for (size_t i = 0; i < spec.include.size(); ++i) {
    auto p = CompileCalendarSpec(spec.include[i], false,
                                 absl::StrCat("calendar.include[", i, "]"));
    if (!p.ok()) return p.status();
    include.push_back(*std::move(p));
    include_text.push_back(absl::StrCat("{", SpecText(spec.include[i]), "}"));
  }
  for (size_t i = 0; i < spec.exclude.size(); ++i) {
    auto p = CompileCalendarSpec(spec.exclude[i], true,
                                 absl::StrCat("calendar.exclude[", i, "]"));
    if (!p.ok()) return p.status();
    exclude.push_back(*std::move(p));
    exclude_text.push_back(absl::StrCat("{", SpecText(spec.exclude[i]), "}"));
  }
  auto tz = LoadRuleTimeZone(time_zone);
  if (!tz.ok()) return tz.status();
  ZonedRuleOptions options;
  options.describe = absl::StrCat("calendar ", absl::StrJoin(include_text, " "));
  if (!exclude_text.empty()) {
    absl::StrAppend(&options.describe, " except ", absl::StrJoin(exclude_text, " "));
  }
  absl::StrAppend(&options.describe, " in ", std::string(time_zone));
  options.source = "calendar";
  options.name_includes = true;
  return MakeZonedRule(std::move(include), std::move(exclude), *tz, gap, repeat,
                       std::move(options));
}

}  // namespace timer::domain
