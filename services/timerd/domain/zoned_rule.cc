#include "domain/zoned_rule.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"

namespace timer::domain {
namespace {

// How far a search looks (see zoned_rule.h).
constexpr int64_t kSearchYears = 400;
constexpr int64_t kLastYear = 9999;
// A zone changes offset a few times a year: 400 years is well below this;
// the cap only guards against a zone whose transitions never end.
constexpr int kMaxSegments = 20000;

const absl::CivilSecond kUnixEpoch(1970, 1, 1, 0, 0, 0);

// Searches start no earlier than this (an `after` before it is treated as it).
const absl::Time kEarliest = absl::FromUnixSeconds(-2208988800);  // 1900-01-01Z

absl::Time ToInstant(absl::CivilSecond c, int64_t offset) {
  return absl::FromUnixSeconds((c - kUnixEpoch) - offset);
}

enum class FireKind { kPlain, kGapAfter, kGapShift, kRepeatFirst, kRepeatLast };

struct Fire {
  absl::Time time;
  absl::CivilSecond civil;  // the civil time the pattern matched
  int which = 0;            // the include that matched
  FireKind kind = FireKind::kPlain;
  absl::TimeZone::CivilTransition transition;  // the DST kinds' transition
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
    out.matched =
        absl::StrCat(options_.source,
                     options_.name_includes ? absl::StrCat(" include[", fire->which, "]")
                                            : std::string(),
                     " matched ", FormatCivil(fire->civil), " in ", tz_.name());
    out.dst = ExplainDst(*fire);
    return out;
  }

  std::string Describe() const override { return options_.describe; }

 private:
  std::string ExplainDst(const Fire& fire) const {
    if (fire.kind == FireKind::kPlain) return "";
    const absl::TimeZone::CivilTransition& tr = fire.transition;
    const absl::Time trans = tz_.At(tr.to).trans;
    const std::string before_abbr = tz_.At(trans - absl::Seconds(1)).zone_abbr;
    const std::string after_abbr = tz_.At(trans).zone_abbr;
    const std::string fired_at =
        absl::StrCat(FormatClock(tz_.At(fire.time).cs), " ", tz_.At(fire.time).zone_abbr);
    switch (fire.kind) {
      case FireKind::kPlain:
        return "";
      case FireKind::kGapAfter:
      case FireKind::kGapShift: {
        std::string out =
            absl::StrCat(FormatClock(fire.civil), " does not exist (clocks went from ",
                         FormatClock(tr.from), " ", before_abbr, " to ",
                         FormatClock(tr.to), " ", after_abbr, "): ");
        if (fire.kind == FireKind::kGapAfter) {
          absl::StrAppend(&out, "ran at the first instant after the gap, ", fired_at);
        } else {
          absl::StrAppend(&out, "ran shifted by the gap (",
                          absl::FormatDuration(absl::Seconds(tr.to - tr.from)), "), at ",
                          fired_at);
        }
        return out;
      }
      case FireKind::kRepeatFirst:
      case FireKind::kRepeatLast: {
        std::string out =
            absl::StrCat(FormatClock(fire.civil), " occurs twice (clocks went back from ",
                         FormatClock(tr.from), " ", before_abbr, " to ",
                         FormatClock(tr.to), " ", after_abbr, "): ");
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
  static absl::CivilSecond SkipExcluded(const CivilPattern& exclude,
                                        absl::CivilSecond c) {
    if ((exclude.seconds & kAllSixty) != kAllSixty) return c + 1;
    if ((exclude.minutes & kAllSixty) != kAllSixty)
      return absl::CivilSecond(absl::CivilMinute(c) + 1);
    if ((exclude.hours & kAllHours) != kAllHours)
      return absl::CivilSecond(absl::CivilHour(c) + 1);
    return absl::CivilSecond(absl::CivilDay(c) + 1);
  }

  // The first civil time in [from, to) that an include matches and no
  // exclude does.
  std::optional<absl::CivilSecond> FirstMatch(absl::CivilSecond from,
                                              absl::CivilSecond to, int* which) const {
    while (from < to) {
      std::optional<absl::CivilSecond> best;
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
    if (after == absl::InfiniteFuture()) return std::nullopt;
    if (after < kEarliest) after = kEarliest;
    const absl::TimeZone::CivilInfo info = tz_.At(after);
    const absl::CivilSecond limit(std::min(info.cs.year() + kSearchYears, kLastYear + 1),
                                  1, 1, 0, 0, 0);
    int64_t offset = info.offset;
    absl::CivilSecond lo = info.cs + 1;  // c > after + offset, c whole seconds
    absl::TimeZone::CivilTransition prev, next;
    // The transition at or before `after`. Abseil compares whole seconds
    // (PrevTransition(t) finds one strictly before t's second), and
    // transitions fall on whole seconds.
    bool have_prev =
        tz_.PrevTransition(absl::FromUnixSeconds(absl::ToUnixSeconds(after) + 1), &prev);
    absl::Time t = after;
    bool first = true;
    int which = 0;
    for (int segment = 0; segment < kMaxSegments && lo < limit; ++segment) {
      const bool have_next = tz_.NextTransition(t, &next);
      absl::CivilSecond hi = have_next ? std::min(next.from, limit) : limit;
      const bool prev_back = have_prev && prev.to < prev.from;
      const bool next_back = have_next && next.to < next.from;
      absl::CivilSecond seg_lo = lo;
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
          absl::CivilSecond gap_lo = prev.from;
          if (first) {
            gap_lo = std::max(
                gap_lo, kUnixEpoch + (absl::ToUnixSeconds(after) + offset_before + 1));
          }
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
      if (best) return best;
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
  // Abseil-specific or host-dependent names.
  if (name.empty() || name.size() > 64 || name.front() == '/' || name.back() == '/' ||
      name.find("//") != std::string_view::npos ||
      name.find("..") != std::string_view::npos || name == "localtime" ||
      name.substr(0, 6) == "Fixed/" ||
      !std::all_of(name.begin(), name.end(), IsZoneNameChar)) {
    return unknown();
  }
  absl::TimeZone tz;
  if (!absl::LoadTimeZone(std::string(name), &tz)) return unknown();
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
