// Calendar schedules (schedule_rule.h's CalendarSchedule) compiled into
// civil-time patterns (cron.h): each include and exclude spec becomes one
// CivilPattern with the same field syntax as cron, but a day must match
// both days of month and days of week (no OR rule) and a years field exists.
// Stateless functions; the patterns they return are immutable values.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "domain/cron.h"
#include "domain/schedule_rule.h"

namespace timer::domain {

// Compiles one spec. `exclusion`: empty fields mean "every value" (seconds,
// minutes and hours included); otherwise empty seconds, minutes and hours
// mean 0 and the other empty fields every value. `name` prefixes errors:
// "calendar.include[1]" gives "calendar.include[1].hours at position 3: 25
// is out of range 0-23" (the position a 1-based offset in that field).
absl::StatusOr<CivilPattern> CompileCalendarSpec(const CalendarSpec& spec, bool exclusion,
                                                 std::string_view name);

}  // namespace timer::domain
