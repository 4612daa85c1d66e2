// A schedule in words: the one rendering of a timer.v1.Schedule (its kind,
// its expression or calendar specs, its zone) as text, shared by timerd
// (PreviewSchedule's description) and the `timer` CLI (`timer job status`,
// `timer job list`). It depends only on the generated message and Abseil, so
// the CLI links it without linking timerd's domain. Pure; thread-safe.
//
//   every 3600s
//   once at 2026-12-24T18:00:00Z
//   cron '0 2 * * *' in Europe/Berlin
//   calendar 'hour=2 dow=MON-FRI' except 'dom=24-26 mon=12' in UTC
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "timer/v1/timer.pb.h"

namespace timer {

struct ScheduleTextOptions {
  // Applied to every piece of text the schedule's sender chose (the cron
  // expression, each calendar field, the zone name) before it is copied into
  // the result: the CLI passes its terminal-safe, length-bounded Echo. Null:
  // copied as is.
  std::string (*escape)(absl::string_view text) = nullptr;
};

// `s` in words (see above). A schedule of no kind reads as an interval of
// interval_seconds, as a job stored before the other kinds existed is one;
// an empty zone reads "UTC". Calendar fields in a fixed order: sec, min,
// hour, dom, mon, dow, year, those not given left out.
std::string ScheduleText(const v1::Schedule& s, const ScheduleTextOptions& options = {});

}  // namespace timer
