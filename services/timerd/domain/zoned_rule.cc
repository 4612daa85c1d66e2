#include "domain/zoned_rule.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"

namespace timer::domain {
namespace {

// How far a search looks (see zoned_rule.h).
constexpr int64_t kSearchYears = 400;
constexpr int64_t kLastYear = 9999;
// A zone changes offset a few times a year: 400 years is well below this;
// the cap only guards against a zone whose transitions never end.
constexpr int kMaxSegments = 20000;

// Nothing fires at or after kLatest (10000-01-01Z); searches start no
// earlier than kEarliest (an `after` before it is treated as it).
const absl::Time kLatest = absl::FromUnixSeconds(253402300800);
const absl::Time kEarliest = absl::FromUnixSeconds(-2208988800);  // 1900-01-01Z

// Local seconds (cron.h's LocalSeconds) read with a UTC offset.
absl::Time ToInstant(int64_t local, int64_t offset) {
  return absl::FromUnixSeconds(local - offset);
}

// A transition as local seconds: clocks jump from `from` to `to`.
struct Transition {
  int64_t from = 0;
  int64_t to = 0;
};

Transition ToLocal(const absl::TimeZone::CivilTransition& tr) {
  return {LocalSeconds(tr.from), LocalSeconds(tr.to)};
}

enum class FireKind { kPlain, kGapAfter, kGapShift, kRepeatFirst, kRepeatLast };

struct Fire {
  absl::Time time;
  int64_t local = 0;  // the civil time the pattern matched (local seconds)
  int which = 0;      // the include that matched
  FireKind kind = FireKind::kPlain;
  Transition transition;  // the DST kinds' transition
};

constexpr uint64_t kAllSixty = (uint64_t{1} << 60) - 1;
constexpr uint32_t kAllHours = (uint32_t{1} << 24) - 1;

std::string FormatCivil(absl::CivilSecond c) {
  if (c.second() != 0) {
    return absl::StrFormat("%04d-%02d-%02d %02d:%02d:%02d", c.year(), c.month(), c.day(),
                           c.hour(), c.minute(), c.second());
  }
  return absl::StrFormat("%04d-%02d-%02d %02d:%02d", c.year(), c.month(), c.day(),
                         c.hour(), c.minute());
}

std::string FormatClock(absl::CivilSecond c) {
  if (c.second() != 0)
    return absl::StrFormat("%02d:%02d:%02d", c.hour(), c.minute(), c.second());
  return absl::StrFormat("%02d:%02d", c.hour(), c.minute());
}

class ZonedRule final : public ScheduleRule {
 public:
  ZonedRule(std::vector<CivilPattern> include, std::vector<CivilPattern> exclude,
            absl::TimeZone tz, DstGap gap, DstRepeat repeat, ZonedRuleOptions options)
      : include_(std::move(include)),
        exclude_(std::move(exclude)),
        tz_(tz),
        gap_(gap),
        repeat_(repeat),
        options_(std::move(options)) {}

  std::optional<absl::Time> Next(absl::Time after) const override {
    const std::optional<Fire> fire = Search(after);
    if (!fire) return std::nullopt;
    return fire->time;
  }

  std::optional<RuleFire> NextExplained(absl::Time after) const override {
    const std::optional<Fire> fire = Search(after);
    if (!fire) return std::nullopt;
    RuleFire out;
    out.time = fire->time;
    out.matched = absl::StrCat(
        options_.source,
        options_.name_includes ? absl::StrCat(" include[", fire->which, "]")
                               : std::string(),
        " matched ", FormatCivil(FromLocalSeconds(fire->local)), " in ", tz_.name());
    out.dst = ExplainDst(*fire);
    return out;
  }

  std::string Describe() const override { return options_.describe; }

 private:
  std::string ExplainDst(const Fire& fire) const {
    if (fire.kind == FireKind::kPlain) return "";
    const absl::CivilSecond from = FromLocalSeconds(fire.transition.from);
    const absl::CivilSecond to = FromLocalSeconds(fire.transition.to);
    const absl::Time trans = tz_.At(to).trans;
    const absl::CivilSecond civil = FromLocalSeconds(fire.local);
    const std::string before_abbr = tz_.At(trans - absl::Seconds(1)).zone_abbr;
    const std::string after_abbr = tz_.At(trans).zone_abbr;
    const std::string fired_at =
        absl::StrCat(FormatClock(tz_.At(fire.time).cs), " ", tz_.At(fire.time).zone_abbr);
    switch (fire.kind) {
      case FireKind::kPlain:
        return "";
      case FireKind::kGapAfter:
      case FireKind::kGapShift: {
        std::string out = absl::StrCat(
            FormatClock(civil), " does not exist (clocks went from ", FormatClock(from),
            " ", before_abbr, " to ", FormatClock(to), " ", after_abbr, "): ");
        if (fire.kind == FireKind::kGapAfter) {
          absl::StrAppend(&out, "ran at the first instant after the gap, ", fired_at);
        } else {
          absl::StrAppend(&out, "ran shifted by the gap (",
                          absl::FormatDuration(
                              absl::Seconds(fire.transition.to - fire.transition.from)),
                          "), at ", fired_at);
        }
        return out;
      }
      case FireKind::kRepeatFirst:
      case FireKind::kRepeatLast: {
        std::string out =
            absl::StrCat(FormatClock(civil), " occurs twice (clocks went back from ",
                         FormatClock(from), " ", before_abbr, " to ", FormatClock(to),
                         " ", after_abbr, "): ");
        const bool first = fire.kind == FireKind::kRepeatFirst;
        absl::StrAppend(&out, first ? "first occurrence (" : "second occurrence (",
                        first ? before_abbr : after_abbr, ")");
        if (repeat_ == DstRepeat::kBoth) {
          absl::StrAppend(
              &out, first ? "; fires again at the second" : "; fired at the first too");
        }
        return out;
      }
    }
    return "";
  }

  // The end of the run of civil seconds that `exclude` matches from `c` on,
  // at the granularity its unrestricted fields allow.
  static int64_t SkipExcluded(const CivilPattern& exclude, int64_t c) {
    const auto up = [c](int64_t unit) { return (c - ((c % unit) + unit) % unit) + unit; };
    if ((exclude.seconds & kAllSixty) != kAllSixty) return c + 1;
    if ((exclude.minutes & kAllSixty) != kAllSixty) return up(60);
    if ((exclude.hours & kAllHours) != kAllHours) return up(3600);
    return up(86400);
  }

  // The first civil time in [from, to) that an include matches and no
  // exclude does.
  std::optional<int64_t> FirstMatch(int64_t from, int64_t to, int* which) const {
    if (exclude_.empty() && include_.size() == 1) {
      *which = 0;
      return include_[0].FirstMatch(from, to);
    }
    while (from < to) {
      std::optional<int64_t> best;
      for (size_t i = 0; i < include_.size(); ++i) {
        const auto c = include_[i].FirstMatch(from, best ? *best : to);
        if (c) {
          best = c;
          *which = static_cast<int>(i);
        }
      }
      if (!best) return std::nullopt;
      bool excluded = false;
      for (const CivilPattern& e : exclude_) {
        if (e.Matches(*best)) {
          from = SkipExcluded(e, *best);
          excluded = true;
          break;
        }
      }
      if (!excluded) return best;
    }
    return std::nullopt;
  }

  std::optional<Fire> Search(absl::Time after) const {
    if (after >= kLatest) return std::nullopt;
    if (after < kEarliest) after = kEarliest;
    const absl::TimeZone::CivilInfo info = tz_.At(after);
    const int64_t after_s = absl::ToUnixSeconds(after);  // floor
    const int64_t limit_year =
        std::min<int64_t>(info.cs.year() + kSearchYears, kLastYear + 1);
    const int64_t limit = LocalSeconds(limit_year, 1, 1);
    int64_t offset = info.offset;
    int64_t lo = after_s + offset + 1;  // local > after + offset, whole seconds
    absl::TimeZone::CivilTransition civil_tr;
    Transition prev, next;
    // The transition at or before `after`. Abseil compares whole seconds
    // (PrevTransition(t) finds one strictly before t's second), and
    // transitions fall on whole seconds.
    bool have_prev = tz_.PrevTransition(absl::FromUnixSeconds(after_s + 1), &civil_tr);
    if (have_prev) prev = ToLocal(civil_tr);
    absl::Time t = after;
    bool first = true;
    int which = 0;
    for (int segment = 0; segment < kMaxSegments && lo < limit; ++segment) {
      const bool have_next = tz_.NextTransition(t, &civil_tr);
      if (have_next) next = ToLocal(civil_tr);
      int64_t hi = have_next ? std::min(next.from, limit) : limit;
      const bool prev_back = have_prev && prev.to < prev.from;
      const bool next_back = have_next && next.to < next.from;
      int64_t seg_lo = lo;
      // The repeated civil times at either end of the segment.
      if (repeat_ == DstRepeat::kFirst && prev_back && seg_lo < prev.from)
        seg_lo = prev.from;
      if (repeat_ == DstRepeat::kLast && next_back && next.to < hi) hi = next.to;
      std::optional<Fire> best;
      if (const auto c = FirstMatch(seg_lo, hi, &which)) {
        Fire fire{ToInstant(*c, offset), *c, which, FireKind::kPlain, {}};
        if (next_back && *c >= next.to) {
          fire.kind = FireKind::kRepeatFirst;
          fire.transition = next;
        } else if (prev_back && *c < prev.from) {
          fire.kind = FireKind::kRepeatLast;
          fire.transition = prev;
        }
        best = fire;
      }
      // The civil times the transition into this segment skipped.
      if (have_prev && prev.to > prev.from && gap_ != DstGap::kSkip) {
        const int64_t offset_before = offset - (prev.to - prev.from);
        if (gap_ == DstGap::kRunAfterGap && !first) {
          if (const auto c = FirstMatch(prev.from, prev.to, &which)) {
            const absl::Time trans = ToInstant(prev.to, offset);
            if (!best || trans < best->time) {
              best = Fire{trans, *c, which, FireKind::kGapAfter, prev};
            }
          }
        } else if (gap_ == DstGap::kShiftByGap) {
          int64_t gap_lo = prev.from;
          if (first) gap_lo = std::max(gap_lo, after_s + offset_before + 1);
          if (gap_lo < prev.to) {
            if (const auto c = FirstMatch(gap_lo, prev.to, &which)) {
              const absl::Time shifted = ToInstant(*c, offset_before);
              if (!best || shifted < best->time) {
                best = Fire{shifted, *c, which, FireKind::kGapShift, prev};
              }
            }
          }
        }
      }
      if (best) {
        if (best->time >= kLatest) return std::nullopt;  // past a Timestamp's range
        return best;
      }
      if (!have_next) return std::nullopt;
      t = ToInstant(next.from, offset);
      offset += next.to - next.from;
      prev = next;
      have_prev = true;
      first = false;
      lo = next.to;
    }
    return std::nullopt;
  }

  const std::vector<CivilPattern> include_;
  const std::vector<CivilPattern> exclude_;
  const absl::TimeZone tz_;
  const DstGap gap_;
  const DstRepeat repeat_;
  const ZonedRuleOptions options_;
};

bool IsZoneNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '+' || c == '/';
}

}  // namespace

absl::StatusOr<absl::TimeZone> LoadRuleTimeZone(std::string_view name) {
  const auto unknown = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "time zone: '",
        name.size() > 64 ? absl::StrCat(std::string(name.substr(0, 64)), "...")
                         : std::string(name),
        "' is not an IANA time zone name (e.g. Europe/Berlin, UTC)"));
  };
  // Names only, as the tz database spells them: no paths, no "..", no
  // Abseil-specific or host-dependent names, not the leap-second "right/"
  // variants (their clocks count leap seconds).
  if (name.empty() || name.size() > 64 || name.front() == '/' || name.back() == '/' ||
      name.find("//") != std::string_view::npos ||
      name.find("..") != std::string_view::npos || name == "localtime" ||
      name.substr(0, 6) == "right/" || name.substr(0, 6) == "Fixed/" ||
      !std::all_of(name.begin(), name.end(), IsZoneNameChar)) {
    return unknown();
  }
  // Zones loaded before, by name: at most one entry per file in the tz
  // database, so compiling a million rules costs one file check per zone.
  static absl::Mutex mu(absl::kConstInit);
  static auto* const loaded = new absl::flat_hash_map<std::string, absl::TimeZone>();
  {
    absl::MutexLock lock(&mu);
    const auto it = loaded->find(absl::string_view(name.data(), name.size()));
    if (it != loaded->end()) return it->second;
  }
  // Abseil keeps every name it is asked for in a process-wide cache, unknown
  // ones too: only names of files in the tz database reach it, so the cache
  // holds at most one entry per file there. (Abseil reads the same
  // directory: $TZDIR, else /usr/share/zoneinfo.)
  if (name != "UTC") {
    const char* dir = std::getenv("TZDIR");
    const std::string path =
        absl::StrCat(dir != nullptr && *dir != '\0' ? dir : "/usr/share/zoneinfo", "/",
                     std::string(name));
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return unknown();
  }
  absl::TimeZone tz;
  if (!absl::LoadTimeZone(std::string(name), &tz)) return unknown();
  absl::MutexLock lock(&mu);
  loaded->emplace(std::string(name), tz);
  return tz;
}

std::shared_ptr<const ScheduleRule> MakeZonedRule(std::vector<CivilPattern> include,
                                                  std::vector<CivilPattern> exclude,
                                                  absl::TimeZone tz, DstGap gap,
                                                  DstRepeat repeat,
                                                  ZonedRuleOptions options) {
  return std::make_shared<const ZonedRule>(std::move(include), std::move(exclude), tz,
                                           gap, repeat, std::move(options));
}

}  // namespace timer::domain
