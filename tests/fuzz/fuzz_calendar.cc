// Fuzzes calendar specs and their next-fire search: the input's text is
// split into specs (one a line; a line starting with '!' is an exclusion)
// and fields ('|' between seconds, minutes, hours, days of month, months,
// days of week, years), compiled with CompileCalendar in one of several
// zones under every DST policy, then Next a few times. Nothing may crash or
// hang, and every fire must be strictly after the time it was asked for.
//
// Input: byte 0 picks the zone, byte 1 the policies, bytes 2-5 the start
// (seconds around 2026, +-68 years), the rest is the specs.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "domain/schedule_rule.h"

namespace {

constexpr const char* kZones[] = {"UTC", "Europe/Berlin", "America/New_York",
                                  "Pacific/Apia", "Australia/Lord_Howe"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using timer::domain::CalendarSchedule;
  using timer::domain::CalendarSpec;
  using timer::domain::DstGap;
  using timer::domain::DstRepeat;
  if (size < 6 || size > 1024) return 0;
  const char* zone = kZones[data[0] % (sizeof(kZones) / sizeof(kZones[0]))];
  const auto gap = static_cast<DstGap>(data[1] % 3);
  const auto repeat = static_cast<DstRepeat>((data[1] / 3) % 3);
  const int32_t offset = static_cast<int32_t>(
      static_cast<uint32_t>(data[2]) << 24 | static_cast<uint32_t>(data[3]) << 16 |
      static_cast<uint32_t>(data[4]) << 8 | data[5]);
  const std::string text(reinterpret_cast<const char*>(data + 6), size - 6);
  CalendarSchedule schedule;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const bool exclude = !line.empty() && line[0] == '!';
    if (exclude) line.remove_prefix(1);
    std::vector<std::string> f = absl::StrSplit(line, '|');
    f.resize(7);
    CalendarSpec spec{f[0], f[1], f[2], f[3], f[4], f[5], f[6]};
    (exclude ? schedule.exclude : schedule.include).push_back(std::move(spec));
    if (schedule.include.size() + schedule.exclude.size() >= 8) break;
  }
  auto rule = timer::domain::CompileCalendar(schedule, zone, gap, repeat);
  if (!rule.ok()) {
    if (rule.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  (void)(*rule)->Describe();
  absl::Time t = absl::FromUnixSeconds(1767225600 + int64_t{offset});
  for (int i = 0; i < 4; ++i) {
    const auto next = (*rule)->NextExplained(t);
    if (!next) break;
    if (next->time <= t) {
      std::fprintf(stderr, "a fire time not after `after`: '%s'\n", text.c_str());
      std::abort();
    }
    t = next->time;
  }
  return 0;
}
