// The next-fire search of calendar schedules in a time zone: civil-time
// patterns (cron.h) turned into instants under the job's DST policy.
//
// How it searches: the zone's timeline is cut at its offset transitions
// (absl::TimeZone::NextTransition/PrevTransition) into segments of constant
// UTC offset. Within a segment civil time and instants correspond one to
// one, so the first matching civil time of the segment (CivilPattern::
// FirstMatch, which skips whole months and days) is its first fire. At a
// transition:
//   - clocks forward (a gap, civil [from, to) does not exist): DstGap::
//     kRunAfterGap fires once at the transition instant (absl's TimeInfo
//     `trans`) if any time in the gap matches; kShiftByGap fires each
//     matching gap time c at c read with the offset before the transition
//     (absl's `pre`: 02:30 in a 02:00->03:00 gap fires at 03:30); kSkip does
//     not fire.
//   - clocks back (civil [to, from) occurs twice): DstRepeat::kFirst fires
//     only in the segment before the transition (absl's `pre`), kLast only
//     in the one after (`post`), kBoth in both.
// Fire instants are strictly increasing from one Next to the next, so no
// instant is returned twice (a shifted 02:30 and a plain 03:30 are one fire).
//
// Bounded: a search looks at most 400 years past `after` (one Gregorian
// cycle: a cron pattern that has no fire in it never fires) and never past
// the year 9999; beyond that Next returns nullopt. Calendar specs restricted
// to years end at their last year.
//
// A rule is immutable after construction and thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "domain/cron.h"
#include "domain/schedule_rule.h"

namespace timer::domain {

// Loads an IANA zone name ("Europe/Berlin", "UTC") from the system tz
// database. INVALID_ARGUMENT naming it when it is not a zone: also for
// names that are paths ("/etc/passwd", "../x"), "localtime" and Abseil's
// "Fixed/UTC+hh:mm:ss" forms, which are not IANA names. Abseil caches each
// loaded zone for the life of the process, so a tzdata update is seen by
// zones first loaded after it (in practice: after a restart of timerd).
absl::StatusOr<absl::TimeZone> LoadRuleTimeZone(std::string_view name);

struct ZonedRuleOptions {
  std::string describe;  // Describe()'s text: "cron '0 2 * * *' in Europe/Berlin"
  // What NextExplained says matched: "'0 2 * * *'"; for calendar rules,
  // followed by " include[i]" naming the spec that matched.
  std::string source;
  bool name_includes = false;  // calendar: say which include matched
};

// A rule firing at every civil time that some `include` pattern matches and
// no `exclude` pattern matches, in `tz`, under the gap and repeat policies.
std::shared_ptr<const ScheduleRule> MakeZonedRule(std::vector<CivilPattern> include,
                                                  std::vector<CivilPattern> exclude,
                                                  absl::TimeZone tz, DstGap gap,
                                                  DstRepeat repeat,
                                                  ZonedRuleOptions options);

}  // namespace timer::domain
