// Fuzzes the cron parser and the next-fire search: CompileCron on the
// input's text in one of several zones (DST, a 30-minute shift, a skipped
// day, UTC) under every DST policy, then Next a few times from a time the
// input picks. Nothing may crash or hang, every fire must be strictly after
// the time it was asked for, and NextExplained must agree with Next.
//
// Input: byte 0 picks the zone, byte 1 the policies, bytes 2-5 the start
// (seconds around 2026, +-68 years), the rest is the expression.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/time/time.h"
#include "domain/schedule_rule.h"

namespace {

constexpr const char* kZones[] = {
    "UTC",          "Europe/Berlin",       "America/New_York",
    "Pacific/Apia", "Australia/Lord_Howe", "Australia/Sydney"};

void Fail(const char* what, const std::string& expr) {
  std::fprintf(stderr, "%s: '%s'\n", what, expr.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using timer::domain::DstGap;
  using timer::domain::DstRepeat;
  if (size < 6 || size > 512) return 0;
  const char* zone = kZones[data[0] % (sizeof(kZones) / sizeof(kZones[0]))];
  const auto gap = static_cast<DstGap>(data[1] % 3);
  const auto repeat = static_cast<DstRepeat>((data[1] / 3) % 3);
  const int32_t offset = static_cast<int32_t>(
      static_cast<uint32_t>(data[2]) << 24 | static_cast<uint32_t>(data[3]) << 16 |
      static_cast<uint32_t>(data[4]) << 8 | data[5]);
  const std::string expr(reinterpret_cast<const char*>(data + 6), size - 6);
  auto rule = timer::domain::CompileCron(expr, zone, gap, repeat);
  if (!rule.ok()) {
    if (rule.status().code() != absl::StatusCode::kInvalidArgument)
      Fail("not INVALID_ARGUMENT", expr);
    return 0;
  }
  (void)(*rule)->Describe();
  absl::Time t = absl::FromUnixSeconds(1767225600 + int64_t{offset});
  for (int i = 0; i < 6; ++i) {
    const auto next = (*rule)->Next(t);
    const auto explained = (*rule)->NextExplained(t);
    if (next.has_value() != explained.has_value())
      Fail("Next and NextExplained disagree", expr);
    if (!next) break;
    if (*next <= t) Fail("a fire time not after `after`", expr);
    if (explained->time != *next) Fail("Next and NextExplained disagree", expr);
    t = *next;
  }
  return 0;
}
