// cron_bench: the cost of calendar schedule math on one core (rates per
// second of this thread's CPU time).
//
// Next(): for typical cron expressions, the next fire time after points
// spread over a year (one in 30 lands within a day of a DST transition in
// the zones that have them), each a full search, against two baselines
// measured in the same run: the interval grid's next-slot arithmetic (what
// an interval job costs today) and absl::TimeZone::At(instant) alone (the
// floor of any zoned computation). Compile: CompileCron (parse + zone
// lookup, the zone already loaded) and ParseCron alone per second, with the
// bytes a compiled rule keeps on the heap (counted by this program's
// operator new). DecideFire: the run engine's whole per-fire decision (rule
// lookup in the shared cache, this slot, the next, its jitter) for a cron
// job against an interval job, both firing every second with a 1 s jitter,
// as timer_bench_scheduler --cron runs them.
//
//   timer_bench_cron [--seconds S]   # S per case, default 0.5
#include <malloc.h>
#include <time.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "domain/cron.h"
#include "domain/schedule.h"
#include "domain/schedule_rule.h"
#include "domain/time_util.h"

namespace {

std::atomic<int64_t> live_bytes{0};

}  // namespace

void* operator new(size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  live_bytes.fetch_add(static_cast<int64_t>(malloc_usable_size(p)),
                       std::memory_order_relaxed);
  return p;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  live_bytes.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)),
                       std::memory_order_relaxed);
  std::free(p);
}
void operator delete(void* p, size_t) noexcept { operator delete(p); }

namespace {

using timer::domain::CompileCron;
using timer::domain::DstGap;
using timer::domain::DstRepeat;

double g_seconds = 0.5;
volatile int64_t g_sink = 0;

// CPU time of this thread: rates are per CPU-second, so that other
// processes sharing the core do not lower them.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Calls fn(i) for i = 0, 1, ... in batches until g_seconds of this thread's
// CPU time passed; returns calls per CPU-second.
template <typename Fn>
double Rate(Fn fn) {
  const double start = ThreadCpuSeconds();
  int64_t n = 0;
  double now = start;
  while (now - start < g_seconds) {
    for (int i = 0; i < 4096; ++i, ++n) fn(n);
    now = ThreadCpuSeconds();
  }
  return static_cast<double>(n) / (now - start);
}

// Query points: 2026 in steps of a prime number of seconds (so every minute
// and second offset occurs), wrapping after a year.
constexpr int64_t kYear = 365 * 86400;
const absl::Time kBase = absl::FromUnixSeconds(1767225600);  // 2026-01-01T00:00:00Z
absl::Time Point(int64_t i) { return kBase + absl::Seconds((i * 7919) % kYear); }

void Row(const char* what, double rate) {
  std::printf("  %-46s %14.0f /s\n", what, rate);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      g_seconds = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--seconds S]\n", argv[0]);
      return 2;
    }
  }
  std::printf("Next() per CPU-second, one thread (after: points spread over 2026)\n");
  {
    const absl::Duration interval = absl::Minutes(5);
    Row("baseline: interval grid next slot (5 min)", Rate([&](int64_t i) {
          const absl::Duration since = Point(i) - kBase;
          absl::Duration rem;
          const int64_t slots = absl::IDivDuration(since, interval, &rem) + 1;
          g_sink = g_sink + absl::ToUnixSeconds(kBase + slots * interval);
        }));
    absl::TimeZone berlin;
    absl::LoadTimeZone("Europe/Berlin", &berlin);
    Row("baseline: absl::TimeZone::At(instant) Berlin",
        Rate([&](int64_t i) { g_sink = g_sink + berlin.At(Point(i)).cs.hour(); }));
  }
  struct Case {
    const char* expr;
    const char* zone;
  };
  const Case cases[] = {
      {"*/5 * * * *", "UTC"},
      {"*/5 * * * *", "Europe/Berlin"},
      {"0 2 * * *", "Europe/Berlin"},
      {"0 0 L * *", "Europe/Berlin"},
      {"0 9 * * MON-FRI", "America/New_York"},
      {"*/1 * * * * *", "Europe/Berlin"},
      {"0 0 29 2 *", "UTC"},
      {"0 12 ? * FRI#5", "Australia/Sydney"},
  };
  for (const Case& c : cases) {
    auto rule = CompileCron(c.expr, c.zone, DstGap::kRunAfterGap, DstRepeat::kFirst);
    if (!rule.ok()) {
      std::fprintf(stderr, "%s\n", rule.status().ToString().c_str());
      return 1;
    }
    const std::string label = std::string("'") + c.expr + "' " + c.zone;
    Row(label.c_str(), Rate([&](int64_t i) {
          g_sink = g_sink + absl::ToUnixSeconds(*(*rule)->Next(Point(i)));
        }));
  }
  {
    auto rule = CompileCron("0 0 30 2 *", "Europe/Berlin", DstGap::kRunAfterGap,
                            DstRepeat::kFirst);
    Row("'0 0 30 2 *' Berlin (never: 400-year search)",
        Rate([&](int64_t i) { g_sink = g_sink + (*rule)->Next(Point(i)).has_value(); }));
  }

  std::printf("\nDecideFire per CPU-second, one thread (a due slot, on time)\n");
  {
    const auto job = [](bool cron) {
      timer::v1::Job j;
      j.set_job_id("0d6f8f5e-4c1a-4f7e-9a53-2d4b9b1c7e10");
      j.set_status(timer::v1::Job::LOADED);
      timer::v1::Schedule* s = j.mutable_schedule();
      if (cron) {
        s->set_cron("* * * * * *");
      } else {
        s->set_interval_seconds(1);
      }
      s->set_jitter_seconds(1);
      *s->mutable_start() = timer::domain::ToProto(kBase);
      return j;
    };
    double rates[2];
    for (int cron = 0; cron < 2; ++cron) {
      timer::v1::Job j = job(cron == 1);
      rates[cron] = Rate([&](int64_t i) {
        const absl::Time slot = kBase + absl::Seconds(i % kYear);
        *j.mutable_next_scheduled_time() = timer::domain::ToProto(slot);
        const timer::domain::FireDecision d =
            timer::domain::DecideFire(j, slot, slot + absl::Milliseconds(1));
        g_sink = g_sink + absl::ToUnixSeconds(*d.next_fire);
      });
    }
    Row("interval 1 s, 1 s jitter", rates[0]);
    Row("cron '* * * * * *' UTC, 1 s jitter", rates[1]);
    std::printf("  %-46s %14.2f us - %.2f us = %.2f us per fire\n", "cron - interval",
                1e6 / rates[1], 1e6 / rates[0], 1e6 / rates[1] - 1e6 / rates[0]);
  }

  std::printf("\nCompile per CPU-second, one thread\n");
  const char* exprs[] = {"*/5 * * * *", "0 2 * * *", "0 9 * * MON-FRI", "0 0 L * *",
                         "*/1 * * * * *"};
  Row("ParseCron (5 expressions in turn)", Rate([&](int64_t i) {
        g_sink = g_sink + timer::domain::ParseCron(exprs[i % 5])->minutes;
      }));
  Row("CompileCron Europe/Berlin (zone loaded)", Rate([&](int64_t i) {
        g_sink = g_sink + CompileCron(exprs[i % 5], "Europe/Berlin", DstGap::kRunAfterGap,
                                      DstRepeat::kFirst)
                              .ok();
      }));
  const int64_t before = live_bytes.load();
  auto rule =
      CompileCron("0 2 * * *", "Europe/Berlin", DstGap::kRunAfterGap, DstRepeat::kFirst);
  const int64_t held = live_bytes.load() - before;
  std::printf(
      "\nSize: sizeof(CivilPattern) %zu bytes; a compiled cron rule holds %lld heap "
      "bytes "
      "(rule object, pattern, description strings)\n",
      sizeof(timer::domain::CivilPattern), static_cast<long long>(held));
  return rule.ok() && g_sink != 42 ? 0 : 1;
}
