#include "timer/v1/schedule_text.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace timer {
namespace {

absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

}  // namespace

std::string ScheduleText(const v1::Schedule& s, const ScheduleTextOptions& options) {
  const auto text = [&options](absl::string_view v) {
    return options.escape != nullptr ? options.escape(v) : std::string(v);
  };
  const auto spec = [&text](const v1::CalendarSpec& c) {
    std::vector<std::string> parts;
    const auto add = [&](const char* key, const std::string& v) {
      if (!v.empty()) parts.push_back(absl::StrCat(key, "=", text(v)));
    };
    add("sec", c.seconds());
    add("min", c.minutes());
    add("hour", c.hours());
    add("dom", c.days_of_month());
    add("mon", c.months());
    add("dow", c.days_of_week());
    add("year", c.years());
    return absl::StrCat("'", absl::StrJoin(parts, " "), "'");
  };
  const std::string zone = s.time_zone().empty() ? "UTC" : text(s.time_zone());
  switch (s.kind_case()) {
    case v1::Schedule::kOnce:
      return absl::StrCat(
          "once at ", absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", FromTimestamp(s.start()),
                                       absl::UTCTimeZone()));
    case v1::Schedule::kCron:
      return absl::StrCat("cron '", text(s.cron()), "' in ", zone);
    case v1::Schedule::kCalendar: {
      std::vector<std::string> in, out;
      for (const v1::CalendarSpec& c : s.calendar().include()) in.push_back(spec(c));
      for (const v1::CalendarSpec& c : s.calendar().exclude()) out.push_back(spec(c));
      return absl::StrCat("calendar ", absl::StrJoin(in, " + "),
                          out.empty() ? "" : " except ", absl::StrJoin(out, " + "),
                          " in ", zone);
    }
    default:
      return absl::StrCat("every ", s.interval_seconds(), "s");
  }
}

}  // namespace timer
