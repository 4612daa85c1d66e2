#include "domain/schedule.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "domain/time_util.h"
#include "timer/v1/schedule_text.h"

namespace timer::domain {
namespace {

// Slots are kept to the microsecond; "strictly after t" is "at or after
// t + 1 ns" and "at or after t" is "strictly after t - 1 ns".
constexpr absl::Duration kEpsilon = absl::Nanoseconds(1);

bool RunsExhausted(const v1::Job& job, int64_t runs) {
  return job.schedule().has_stop_after_runs() && runs >= job.schedule().stop_after_runs();
}

bool PastStopDate(const v1::Job& job, absl::Time slot) {
  return job.schedule().has_stop_after_date() &&
         slot >= FromProto(job.schedule().stop_after_date());
}

DstGap ToGap(v1::DstGapPolicy p) {
  switch (p) {
    case v1::DST_GAP_SKIP:
      return DstGap::kSkip;
    case v1::DST_GAP_SHIFT:
      return DstGap::kShiftByGap;
    default:
      return DstGap::kRunAfterGap;
  }
}

DstRepeat ToRepeat(v1::DstRepeatPolicy p) {
  switch (p) {
    case v1::DST_REPEAT_LAST:
      return DstRepeat::kLast;
    case v1::DST_REPEAT_BOTH:
      return DstRepeat::kBoth;
    default:
      return DstRepeat::kFirst;
  }
}

// The cache key of a rule: everything its compilation depends on. Fields
// are separated by a byte no valid expression or zone holds.
std::string RuleKey(const v1::Schedule& s) {
  std::string key = absl::StrCat(s.kind_case(), "\x1f", ZoneOf(s), "\x1f",
                                 static_cast<int>(ToGap(s.dst_gap())), "\x1f",
                                 static_cast<int>(ToRepeat(s.dst_repeat())), "\x1f");
  if (s.has_cron()) {
    absl::StrAppend(&key, s.cron());
    return key;
  }
  const auto add = [&key](const char* tag, const v1::CalendarSpec& c) {
    absl::StrAppend(&key, tag, c.seconds(), "\x1e", c.minutes(), "\x1e", c.hours(),
                    "\x1e", c.days_of_month(), "\x1e", c.months(), "\x1e",
                    c.days_of_week(), "\x1e", c.years(), "\x1d");
  };
  for (const v1::CalendarSpec& c : s.calendar().include()) add("+", c);
  for (const v1::CalendarSpec& c : s.calendar().exclude()) add("-", c);
  return key;
}

struct RuleCache {
  absl::Mutex mu;
  absl::flat_hash_map<std::string, std::shared_ptr<const ScheduleRule>> rules
      ABSL_GUARDED_BY(mu);
};

RuleCache& Cache() {
  static RuleCache* cache = new RuleCache;
  return *cache;
}

// Prefixes a compile error with "schedule." so it names the request's field
// ("schedule.cron: field 2 (hours) at position 7: ...").
absl::Status SchedulePrefixed(const absl::Status& s, absl::string_view field) {
  absl::string_view m = s.message();
  std::string msg;
  if (absl::StartsWith(m, "cron") || absl::StartsWith(m, "calendar") ||
      absl::StartsWith(m, "time_zone")) {
    msg = absl::StrCat("schedule.", m);
  } else {
    msg = absl::StrCat("schedule.", field, ": ", m);
  }
  return absl::Status(s.code(), msg);
}

// Slots of `s` in [from, to), counted up to kMissedCountCap (rules) or
// exactly (interval, once).
int64_t CountSlots(const v1::Schedule& s, const ScheduleRule* rule, absl::Time from,
                   absl::Time to, bool* at_least) {
  *at_least = false;
  if (to <= from) return 0;
  switch (s.kind_case()) {
    case v1::Schedule::kOnce: {
      const absl::Time start = FromProto(s.start());
      return start >= from && start < to ? 1 : 0;
    }
    case v1::Schedule::kCron:
    case v1::Schedule::kCalendar: {
      int64_t n = 0;
      for (std::optional<absl::Time> t = NextSlotAfter(s, rule, from - kEpsilon);
           t && *t < to; t = NextSlotAfter(s, rule, *t)) {
        if (++n >= kMissedCountCap) {
          *at_least = true;
          break;
        }
      }
      return n;
    }
    default: {
      const absl::Time start = FromProto(s.start());
      const absl::Duration interval = absl::Seconds(s.interval_seconds());
      return FirstSlotAtOrAfter(start, interval, to) -
             FirstSlotAtOrAfter(start, interval, from);
    }
  }
}

// The latest slot of `s` in [floor, limit), or nullopt. Bounded work for
// rules: the span searched back from `limit` doubles until it holds a slot
// or reaches `floor`, and at most kMissedCountCap slots are stepped over.
std::optional<absl::Time> LatestSlotIn(const v1::Schedule& s, const ScheduleRule* rule,
                                       absl::Time floor, absl::Time limit) {
  if (limit <= floor) return std::nullopt;
  switch (s.kind_case()) {
    case v1::Schedule::kOnce: {
      const absl::Time start = FromProto(s.start());
      if (start >= floor && start < limit) return start;
      return std::nullopt;
    }
    case v1::Schedule::kCron:
    case v1::Schedule::kCalendar: {
      for (absl::Duration span = absl::Seconds(1);; span *= 2) {
        const absl::Time from = std::max(floor, limit - span);
        std::optional<absl::Time> t = NextSlotAfter(s, rule, from - kEpsilon);
        if (t && *t < limit) {
          absl::Time latest = *t;
          for (int64_t i = 0; i < kMissedCountCap; ++i) {
            t = NextSlotAfter(s, rule, latest);
            if (!t || *t >= limit) break;
            latest = *t;
          }
          return latest;
        }
        if (from <= floor) return std::nullopt;
      }
    }
    default: {
      const absl::Time start = FromProto(s.start());
      const absl::Duration interval = absl::Seconds(s.interval_seconds());
      const int64_t k = FirstSlotAtOrAfter(start, interval, limit) - 1;
      if (k < 0) return std::nullopt;
      const absl::Time t = SlotTime(start, interval, k);
      if (t < floor) return std::nullopt;
      return t;
    }
  }
}

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::string ZoneOf(const v1::Schedule& s) {
  return s.time_zone().empty() ? std::string("UTC") : s.time_zone();
}

absl::StatusOr<std::shared_ptr<const ScheduleRule>> RuleFor(const v1::Schedule& s) {
  if (!s.has_cron() && !s.has_calendar()) return nullptr;
  std::string key = RuleKey(s);
  RuleCache& cache = Cache();
  {
    absl::MutexLock lock(&cache.mu);
    auto it = cache.rules.find(key);
    if (it != cache.rules.end()) return it->second;
  }
  // Compiled outside the lock: two callers may compile the same rule once
  // each; the second insert keeps the first.
  absl::StatusOr<std::shared_ptr<const ScheduleRule>> rule;
  if (s.has_cron()) {
    rule = CompileCron(s.cron(), ZoneOf(s), ToGap(s.dst_gap()), ToRepeat(s.dst_repeat()));
  } else {
    CalendarSchedule cal;
    for (const v1::CalendarSpec& c : s.calendar().include()) {
      cal.include.push_back(CalendarSpec{c.seconds(), c.minutes(), c.hours(),
                                         c.days_of_month(), c.months(), c.days_of_week(),
                                         c.years()});
    }
    for (const v1::CalendarSpec& c : s.calendar().exclude()) {
      cal.exclude.push_back(CalendarSpec{c.seconds(), c.minutes(), c.hours(),
                                         c.days_of_month(), c.months(), c.days_of_week(),
                                         c.years()});
    }
    rule = CompileCalendar(cal, ZoneOf(s), ToGap(s.dst_gap()), ToRepeat(s.dst_repeat()));
  }
  if (!rule.ok())
    return SchedulePrefixed(rule.status(), s.has_cron() ? "cron" : "calendar");
  absl::MutexLock lock(&cache.mu);
  if (cache.rules.size() >= kRuleCacheSize) cache.rules.erase(cache.rules.begin());
  return cache.rules.emplace(std::move(key), *rule).first->second;
}

std::string DescribeSchedule(const v1::Schedule& s) { return ScheduleText(s); }

std::optional<absl::Time> NextSlotAfter(const v1::Schedule& s, const ScheduleRule* rule,
                                        absl::Time after) {
  const absl::Time start = FromProto(s.start());
  switch (s.kind_case()) {
    case v1::Schedule::kOnce:
      if (start > after) return start;
      return std::nullopt;
    case v1::Schedule::kCron:
    case v1::Schedule::kCalendar:
      if (rule == nullptr) return std::nullopt;
      return rule->Next(std::max(after, start - kEpsilon));
    default: {
      if (s.interval_seconds() <= 0) return std::nullopt;
      const absl::Duration interval = absl::Seconds(s.interval_seconds());
      int64_t k = FirstSlotAtOrAfter(start, interval, after);
      if (SlotTime(start, interval, k) <= after) ++k;
      return SlotTime(start, interval, k);
    }
  }
}

absl::Duration JitterFor(const std::string& job_id, const v1::Schedule& s,
                         absl::Time slot, std::optional<absl::Time> next_slot) {
  if (s.jitter_seconds() <= 0) return absl::ZeroDuration();
  int64_t span_us = s.jitter_seconds() * 1'000'000;
  if (next_slot)
    span_us = std::min(span_us, absl::ToInt64Microseconds(*next_slot - slot));
  if (span_us <= 1) return absl::ZeroDuration();
  // FNV-1a of the job id, mixed with the slot: stable across processes
  // (absl::Hash is seeded per process).
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : job_id) h = (h ^ c) * 0x100000001b3ULL;
  h = Mix(h ^ Mix(static_cast<uint64_t>(absl::ToUnixMicros(slot))));
  return absl::Microseconds(static_cast<int64_t>(h % static_cast<uint64_t>(span_us)));
}

namespace {
// When the run of `slot` fires: the slot plus its jitter.
absl::Time FireTime(const v1::Job& job, const ScheduleRule* rule, absl::Time slot) {
  if (job.schedule().jitter_seconds() <= 0) return slot;
  return slot + JitterFor(job.job_id(), job.schedule(), slot,
                          NextSlotAfter(job.schedule(), rule, slot));
}
// The nominal slot of a fire due at `due`: next_scheduled_time when it is
// consistent with `due` (at most the jitter before it), else `due` itself
// (no jitter, or next_run written by code that knew no jitter, e.g. an older
// replica during an upgrade).
absl::Time SlotOf(const v1::Job& job, absl::Time due) {
  if (job.schedule().jitter_seconds() <= 0 || !job.has_next_scheduled_time()) return due;
  const absl::Time slot = FromProto(job.next_scheduled_time());
  if (slot <= due && due - slot < absl::Seconds(job.schedule().jitter_seconds())) {
    return slot;
  }
  return due;
}
}  // namespace

FireDecision DecideFire(const v1::Job& job, absl::Time due, absl::Time now) {
  const v1::Schedule& s = job.schedule();
  const absl::Time slot = SlotOf(job, due);
  FireDecision d;
  d.scheduled = slot;
  d.start_at = due;
  if (RunsExhausted(job, job.n_runs())) {
    d.kind = FireDecision::Kind::kEnd;
    d.end_reason = v1::Job::STOP_AFTER_RUNS;
    return d;
  }
  if (PastStopDate(job, slot)) {
    d.kind = FireDecision::Kind::kEnd;
    d.end_reason = v1::Job::STOP_AFTER_DATE;
    return d;
  }
  absl::StatusOr<std::shared_ptr<const ScheduleRule>> compiled = RuleFor(s);
  if (!compiled.ok()) {
    d.kind = FireDecision::Kind::kEnd;
    d.end_reason = v1::Job::SCHEDULE_INVALID;
    return d;
  }
  const ScheduleRule* rule = compiled->get();
  const absl::Time window_floor = s.catch_up_window_seconds() > 0
                                      ? now - absl::Seconds(s.catch_up_window_seconds())
                                      : absl::InfinitePast();
  std::optional<absl::Time> next = NextSlotAfter(s, rule, slot);
  if (next && *next <= now) {
    // The following slot has passed too: slots were missed.
    next = NextSlotAfter(s, rule, now - kEpsilon);
    d.outside_window = window_floor > slot;
    std::optional<absl::Time> run_slot;
    if (job.missed_run_policy() == v1::RUN_ONCE) {
      // One catch-up run, for the latest missed slot inside the window and
      // before the stop date.
      absl::Time limit = now;
      if (s.has_stop_after_date())
        limit = std::min(limit, FromProto(s.stop_after_date()));
      run_slot = LatestSlotIn(s, rule, std::max(slot, window_floor), limit);
    }
    if (run_slot) {
      d.scheduled = *run_slot;
      d.start_at = now;
      d.missed = CountSlots(s, rule, slot, *run_slot, &d.missed_at_least);
    } else {
      d.kind = FireDecision::Kind::kSkipMissed;
      d.missed = CountSlots(s, rule, slot, now, &d.missed_at_least) - 1;
      if (d.missed < 0) d.missed = 0;
    }
  } else if (slot < window_floor) {
    // Older than the catch-up window: missed, though the next has not passed.
    d.kind = FireDecision::Kind::kSkipMissed;
    d.outside_window = true;
  }
  const int64_t runs_after = job.n_runs() + (d.kind == FireDecision::Kind::kRun ? 1 : 0);
  if (RunsExhausted(job, runs_after)) {
    d.end_reason = v1::Job::STOP_AFTER_RUNS;
  } else if (!next) {
    d.end_reason = v1::Job::SCHEDULE_COMPLETE;
  } else if (PastStopDate(job, *next)) {
    d.end_reason = v1::Job::STOP_AFTER_DATE;
  } else {
    d.next = next;
    d.next_fire = FireTime(job, rule, *next);
  }
  return d;
}

OverlapDecision DecideOverlap(const v1::Job& job, int active, bool buffered) {
  OverlapDecision d;
  const auto skip = [&d](std::string reason) {
    d.kind = OverlapDecision::Kind::kSkip;
    d.reason = std::move(reason);
  };
  switch (job.overlap_policy()) {
    case v1::ALLOW: {
      const int max_concurrent = std::max(1, job.max_concurrent());
      if (active >= max_concurrent) {
        skip(absl::StrCat("max_concurrent (", max_concurrent,
                          ") runs are already active"));
      }
      break;
    }
    case v1::BUFFER_ONE:
      if (active > 0) {
        if (buffered) {
          skip("a run is already waiting for the active one to end");
        } else {
          d.kind = OverlapDecision::Kind::kBuffer;
        }
      }
      break;
    case v1::CANCEL_PREVIOUS:
      if (active > 0) d.kind = OverlapDecision::Kind::kCancelPrevious;
      break;
    default:
      if (active > 0) skip("the previous run is still active");
  }
  return d;
}

std::optional<NextRun> NextRunAtOrAfter(const v1::Job& job, absl::Time earliest,
                                        v1::Job::EndReason* end_reason) {
  if (RunsExhausted(job, job.n_runs())) {
    *end_reason = v1::Job::STOP_AFTER_RUNS;
    return std::nullopt;
  }
  absl::StatusOr<std::shared_ptr<const ScheduleRule>> compiled = RuleFor(job.schedule());
  if (!compiled.ok()) {
    *end_reason = v1::Job::SCHEDULE_INVALID;
    return std::nullopt;
  }
  const ScheduleRule* rule = compiled->get();
  const std::optional<absl::Time> next =
      NextSlotAfter(job.schedule(), rule, earliest - kEpsilon);
  if (!next) {
    *end_reason = v1::Job::SCHEDULE_COMPLETE;
    return std::nullopt;
  }
  if (PastStopDate(job, *next)) {
    *end_reason = v1::Job::STOP_AFTER_DATE;
    return std::nullopt;
  }
  return NextRun{*next, FireTime(job, rule, *next)};
}

}  // namespace timer::domain

namespace timer::domain {
namespace {
std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}
}  // namespace

v1::PreviewScheduleResponse PreviewSlots(const v1::Job& job, absl::Time from,
                                         absl::Time now, int count) {
  v1::PreviewScheduleResponse out;
  const v1::Schedule& s = job.schedule();
  out.set_description(DescribeSchedule(s));
  if (job.status() == v1::Job::ENDED || job.status() == v1::Job::DELETED) {
    out.set_ended(true);
    out.set_end_reason(job.status() == v1::Job::DELETED
                           ? "the job is deleted"
                           : absl::StrCat("the job has ended (",
                                          v1::Job::EndReason_Name(job.end_reason()),
                                          ")"));
    return out;
  }
  absl::StatusOr<std::shared_ptr<const ScheduleRule>> compiled = RuleFor(s);
  if (!compiled.ok()) {
    out.set_ended(true);
    out.set_end_reason(std::string(compiled.status().message()));
    return out;
  }
  const ScheduleRule* rule = compiled->get();
  const absl::Time start = FromProto(s.start());
  const absl::Time window_floor = s.catch_up_window_seconds() > 0
                                      ? now - absl::Seconds(s.catch_up_window_seconds())
                                      : absl::InfinitePast();
  int64_t runs = job.n_runs();
  absl::Time after = from - kEpsilon;
  int64_t k_interval = -1;
  while (out.entries_size() < count) {
    std::optional<absl::Time> slot;
    std::string why;
    if (rule != nullptr) {
      std::optional<RuleFire> f = rule->NextExplained(std::max(after, start - kEpsilon));
      if (f) {
        slot = f->time;
        why = f->dst.empty() ? f->matched : absl::StrCat(f->matched, "; ", f->dst);
      }
    } else {
      slot = NextSlotAfter(s, nullptr, after);
      if (slot && s.has_interval_seconds()) {
        k_interval = (*slot - start) / absl::Seconds(s.interval_seconds());
        why = absl::StrCat("slot ", k_interval, " of every ", s.interval_seconds(),
                           "s from ", Rfc3339(start));
      } else if (slot) {
        why = absl::StrCat("the one run of a once schedule, at ", Rfc3339(start));
      }
    }
    if (!slot) {
      out.set_ended(true);
      out.set_end_reason(s.has_once() ? "a once schedule has no slot after its one run"
                                      : "the schedule never fires again");
      break;
    }
    v1::PreviewEntry* e = out.add_entries();
    *e->mutable_nominal_time() = ToProto(*slot);
    absl::Time fire = *slot;
    if (s.jitter_seconds() > 0) {
      if (job.job_id().empty()) {
        absl::StrAppend(&why, "; plus a jitter in [0, ", s.jitter_seconds(),
                        "s) fixed when the job is created");
      } else {
        fire = FireTime(job, rule, *slot);
        absl::StrAppend(&why, "; jitter ", absl::FormatDuration(fire - *slot));
      }
    }
    *e->mutable_fire_time() = ToProto(fire);
    if (s.has_stop_after_date() && *slot >= FromProto(s.stop_after_date())) {
      e->set_disposition(v1::PreviewEntry::STOPPED_BY_DATE);
      e->set_why(absl::StrCat(why, "; removed: at or after stop_after_date ",
                              Rfc3339(FromProto(s.stop_after_date()))));
      out.set_ended(true);
      out.set_end_reason("stop_after_date");
      break;
    }
    if (s.has_stop_after_runs() && runs >= s.stop_after_runs()) {
      e->set_disposition(v1::PreviewEntry::STOPPED_BY_RUNS);
      e->set_why(absl::StrCat(why, "; removed: stop_after_runs (", s.stop_after_runs(),
                              ") reached"));
      out.set_ended(true);
      out.set_end_reason(absl::StrCat("stop_after_runs (", s.stop_after_runs(), ")"));
      break;
    }
    if (*slot < now && *slot < window_floor) {
      e->set_disposition(v1::PreviewEntry::MISSED);
      absl::StrAppend(&why, "; older than the catch-up window (",
                      s.catch_up_window_seconds(), "s): recorded as missed");
    } else if (job.status() == v1::Job::PAUSED) {
      e->set_disposition(v1::PreviewEntry::PAUSED);
      absl::StrAppend(&why, "; the job is paused");
    } else {
      e->set_disposition(v1::PreviewEntry::FIRES);
      ++runs;
    }
    e->set_why(std::move(why));
    after = *slot;
  }
  return out;
}

}  // namespace timer::domain
