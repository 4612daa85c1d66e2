// Schedule math: where runs fall on a job's fixed grid. Pure, no clock reads.
//
// Run k is due at start + k * interval (k = 0, 1, ...). Lateness of one run
// never moves the next: every due time is computed from the grid, never from
// when the previous run actually started.
#pragma once

#include <cstdint>

#include "absl/time/time.h"

namespace timer::domain {

// Due time of run k.
inline absl::Time SlotTime(absl::Time start, absl::Duration interval, int64_t k) {
  return start + interval * k;
}

// Index of the first slot at or after `t` (0 if t <= start).
inline int64_t FirstSlotAtOrAfter(absl::Time start, absl::Duration interval,
                                  absl::Time t) {
  if (t <= start) return 0;
  const int64_t k = absl::IDivDuration(t - start, interval, nullptr);
  return SlotTime(start, interval, k) >= t ? k : k + 1;
}

}  // namespace timer::domain
