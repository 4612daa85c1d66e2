// Fuzzes the CLI's start-time parser (--start, --stop-after-date):
// timer::cli::ParseTimeArg, in UTC and in a zone with daylight saving time,
// then prints what it accepted the way the CLI does. Accepted times must
// fit a protobuf Timestamp (years 1 to 9999).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/time/time.h"
#include "cli_time.h"

namespace {

absl::TimeZone ZoneWithDst() {
  absl::TimeZone tz;
  // Without tzdata, a fixed offset still exercises the offset arithmetic.
  if (!absl::LoadTimeZone("Europe/Berlin", &tz)) tz = absl::FixedTimeZone(3600);
  return tz;
}

void Check(const std::string& text, absl::TimeZone zone) {
  absl::StatusOr<absl::Time> t = timer::cli::ParseTimeArg(text, zone);
  if (!t.ok()) return;
  // Whatever is accepted must fit a protobuf Timestamp (years 1 to 9999).
  if (*t < absl::FromUnixSeconds(-62135596800) ||
      *t >= absl::FromUnixSeconds(253402300800)) {
    std::fprintf(stderr, "ParseTimeArg accepted an out-of-range time: %s\n",
                 absl::FormatTime(*t).c_str());
    std::abort();
  }
  const absl::Time now = absl::FromUnixSeconds(1790000000);
  (void)timer::cli::IsoTime(*t);
  (void)timer::cli::RelativeHint(*t, now);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const absl::TimeZone kZone = ZoneWithDst();
  const std::string text(reinterpret_cast<const char*>(data), size);
  Check(text, absl::UTCTimeZone());
  Check(text, kZone);
  return 0;
}
