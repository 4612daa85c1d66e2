// Fuzzes the CLI's interval parser (--interval): timer::cli::ParseIntervalArg
// must refuse or return a positive number of seconds, which FormatSeconds
// then prints.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli_time.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<int64_t> seconds = timer::cli::ParseIntervalArg(text);
  if (!seconds.ok()) return 0;
  if (*seconds <= 0) {
    std::fprintf(stderr, "ParseIntervalArg accepted a non-positive interval: %lld\n",
                 static_cast<long long>(*seconds));
    std::abort();
  }
  (void)timer::cli::FormatSeconds(*seconds);
  return 0;
}
