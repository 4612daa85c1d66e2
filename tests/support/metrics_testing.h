// Reading timerd's series in tests: the value of one series in the text
// Registry::Global() renders, as a scrape would see it. Counters of the
// global registry add up over a test binary's cases, so tests compare a
// value before and after what they do.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#include "util/metrics.h"

namespace timer::testing {

// The value of `series` (its name and labels exactly as rendered, e.g.
// `timer_fires_total{outcome="started"}`), or 0 if it is not there.
inline double MetricValue(std::string_view series) {
  const std::string text = metrics::Render();
  const std::string key = "\n" + std::string(series) + " ";
  const size_t at = text.find(key);
  if (at == std::string::npos) return 0;
  return std::strtod(text.c_str() + at + key.size(), nullptr);
}

}  // namespace timer::testing
