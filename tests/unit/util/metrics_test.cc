// Tests of util/metrics.h: the text exposition format, exact counts under
// concurrency, the bound on series, callbacks, and timerd's series.
#include "util/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"

namespace timer::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, CounterWithoutLabels) {
  Registry r;
  Counter& c = r.AddCounter("timer_things_total", "Things done.").Get();
  c.Inc();
  c.Inc(41);
  EXPECT_EQ(r.Render(),
            "# HELP timer_things_total Things done.\n"
            "# TYPE timer_things_total counter\n"
            "timer_things_total 42\n");
}

TEST(MetricsTest, LabelledCounterKeepsFirstUseOrderAndSortsFamiliesByName) {
  Registry r;
  Family<Counter>& f =
      r.AddCounter("timer_b_total", "B by outcome and code.", {"outcome", "code"});
  f.With({"started", "OK"}).Inc(2);
  f.With({"failed", "NOT_FOUND"}).Inc();
  f.With({"started", "OK"}).Inc();
  r.AddGauge("timer_a", "A.").Get().Set(1.5);
  EXPECT_EQ(r.Render(),
            "# HELP timer_a A.\n"
            "# TYPE timer_a gauge\n"
            "timer_a 1.5\n"
            "# HELP timer_b_total B by outcome and code.\n"
            "# TYPE timer_b_total counter\n"
            "timer_b_total{outcome=\"started\",code=\"OK\"} 3\n"
            "timer_b_total{outcome=\"failed\",code=\"NOT_FOUND\"} 1\n");
}

TEST(MetricsTest, GaugeGoesUpAndDownAndPrintsShortestForm) {
  Registry r;
  Gauge& g = r.AddGauge("timer_g", "G.").Get();
  g.Inc();
  g.Inc();
  g.Dec();
  EXPECT_EQ(g.Value(), 1);
  g.Set(0.1);
  EXPECT_THAT(r.Render(), HasSubstr("\ntimer_g 0.1\n"));
  g.Set(1733470000.25);
  EXPECT_THAT(r.Render(), HasSubstr("\ntimer_g 1733470000.25\n"));
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatValue(300), "300");
  EXPECT_EQ(FormatValue(900000), "900000");  // Not "9e+05".
  EXPECT_EQ(FormatValue(-2), "-2");
  EXPECT_EQ(FormatValue(0.00001), "1e-05");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r;
  Family<Histogram>& f =
      r.AddHistogram("timer_lateness_seconds", "Lateness.", {0.001, 0.5, 2}, {"lane"});
  Histogram& h = f.With({"a"});
  h.Observe(0.001);  // On a bound: counted in it (le is inclusive).
  h.Observe(0.25);
  h.Observe(absl::Seconds(1));
  h.Observe(100);
  h.Observe(std::nan(""));  // Ignored.
  EXPECT_EQ(r.Render(),
            "# HELP timer_lateness_seconds Lateness.\n"
            "# TYPE timer_lateness_seconds histogram\n"
            "timer_lateness_seconds_bucket{lane=\"a\",le=\"0.001\"} 1\n"
            "timer_lateness_seconds_bucket{lane=\"a\",le=\"0.5\"} 2\n"
            "timer_lateness_seconds_bucket{lane=\"a\",le=\"2\"} 3\n"
            "timer_lateness_seconds_bucket{lane=\"a\",le=\"+Inf\"} 4\n"
            "timer_lateness_seconds_sum{lane=\"a\"} 101.251\n"
            "timer_lateness_seconds_count{lane=\"a\"} 4\n");
  EXPECT_EQ(h.Count(), 4u);
}

TEST(MetricsTest, HistogramWithoutLabels) {
  Registry r;
  r.AddHistogram("timer_h", "H.", {1}).Get().Observe(3);
  EXPECT_EQ(r.Render(),
            "# HELP timer_h H.\n"
            "# TYPE timer_h histogram\n"
            "timer_h_bucket{le=\"1\"} 0\n"
            "timer_h_bucket{le=\"+Inf\"} 1\n"
            "timer_h_sum 3\n"
            "timer_h_count 1\n");
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  Registry r;
  r.AddCounter("timer_e_total", "Help with \\ and\nnewline.", {"v"})
      .With({"a\"b\\c\nd"})
      .Inc();
  EXPECT_EQ(r.Render(),
            "# HELP timer_e_total Help with \\\\ and\\nnewline.\n"
            "# TYPE timer_e_total counter\n"
            "timer_e_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsTest, ManyThreadsCountExactly) {
  Registry r;
  Family<Counter>& f = r.AddCounter("timer_c_total", "C.", {"k"});
  Histogram& h = r.AddHistogram("timer_h", "H.", {0.5}).Get();
  constexpr int kThreads = 8;
  constexpr int kEach = 100000;
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  // A scraper renders throughout: it never blocks or disturbs the counts.
  std::thread scraper([&] {
    while (!stop.load()) r.Render();
  });
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every thread makes series too, racing with the others.
      Counter& mine = f.With({absl::StrCat("t", t % 4)});
      for (int i = 0; i < kEach; ++i) {
        mine.Inc();
        f.With({"shared"}).Inc();
        h.Observe(i % 2 == 0 ? 0.25 : 1.0);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  stop = true;
  scraper.join();
  EXPECT_EQ(f.With({"shared"}).Value(), uint64_t{kThreads} * kEach);
  uint64_t per_key = 0;
  for (int k = 0; k < 4; ++k) per_key += f.With({absl::StrCat("t", k)}).Value();
  EXPECT_EQ(per_key, uint64_t{kThreads} * kEach);
  EXPECT_EQ(h.Count(), uint64_t{kThreads} * kEach);
  EXPECT_EQ(h.CumulativeCounts()[0], uint64_t{kThreads} * kEach / 2);
  EXPECT_DOUBLE_EQ(h.Sum(), kThreads * (kEach / 2) * 1.25);
}

TEST(MetricsTest, SeriesBeyondTheCapFoldIntoOther) {
  Registry r;
  Family<Counter>& f =
      r.AddCounter("timer_capped_total", "Capped.", {"route", "code"}, 3);
  for (int i = 0; i < 1000; ++i) f.With({absl::StrCat("/r", i), "200"}).Inc();
  const std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("timer_capped_total{route=\"/r0\",code=\"200\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("timer_capped_total{route=\"/r2\",code=\"200\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("/r3\"")));
  EXPECT_THAT(
      text,
      HasSubstr("timer_capped_total{route=\"_overflow\",code=\"_overflow\"} 997\n"));
  // A value seen before the cap still has its own series.
  f.With({"/r1", "200"}).Inc();
  EXPECT_EQ(f.With({"/r1", "200"}).Value(), 2u);
}

TEST(MetricsTest, AddingAFamilyAgainReturnsIt) {
  Registry r;
  Counter& a = r.AddCounter("timer_x_total", "X.", {"k"}).With({"v"});
  Counter& b = r.AddCounter("timer_x_total", "X.", {"k"}).With({"v"});
  EXPECT_EQ(&a, &b);
}

TEST(MetricsDeathTest, MisuseAbortsLoudly) {
  Registry r;
  EXPECT_DEATH(r.AddCounter("timer-bad", "Bad."), "invalid metric name");
  EXPECT_DEATH(r.AddHistogram("timer_h", "H.", {1}, {"le"}), "invalid label name");
  EXPECT_DEATH(r.AddHistogram("timer_h", "H.", {2, 1}), "ascending");
  r.AddCounter("timer_y_total", "Y.", {"k"});
  EXPECT_DEATH(r.AddGauge("timer_y_total", "Y."), "another type");
  EXPECT_DEATH(r.AddCounter("timer_y_total", "Y.", {"k"}).With({"a", "b"}),
               "2 label values for 1 labels");
}

TEST(MetricsTest, CallbackIsEvaluatedAtEachScrapeUntilItsHandleGoes) {
  Registry r;
  int calls = 0;
  absl::StatusOr<CallbackHandle> h =
      r.AddCallback("timer_runs_active", "Runs active.", Type::kGauge, [&calls] {
        ++calls;
        return 7.0;
      });
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(r.Render(),
            "# HELP timer_runs_active Runs active.\n"
            "# TYPE timer_runs_active gauge\n"
            "timer_runs_active 7\n");
  r.Render();
  EXPECT_EQ(calls, 2);
  // The name is taken while the callback lives.
  EXPECT_EQ(r.AddCallback("timer_runs_active", "Again.", Type::kGauge, [] { return 1.0; })
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  h->Reset();
  EXPECT_EQ(r.Render(), "");
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(r.AddCallback("timer_runs_active", "Again.", Type::kGauge, [] {
                 return 1.0;
               }).ok());
}

TEST(MetricsTest, LabelledCallbackSamples) {
  Registry r;
  absl::StatusOr<CallbackHandle> h =
      r.AddCallback("timer_jobs", "Jobs by status.", Type::kGauge, {"status"}, [] {
        return std::vector<Sample>{{{"active"}, 3}, {{"paused"}, 1}};
      });
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(r.Render(),
            "# HELP timer_jobs Jobs by status.\n"
            "# TYPE timer_jobs gauge\n"
            "timer_jobs{status=\"active\"} 3\n"
            "timer_jobs{status=\"paused\"} 1\n");
}

TEST(MetricsTest, ProcessMetricsAreRead) {
  Registry r;
  RegisterProcessMetrics(r);
  RegisterProcessMetrics(r);  // Idempotent.
  const std::string text = r.Render();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds",
                           "process_max_fds", "process_start_time_seconds"}) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("# TYPE ", name))) << name;
  }
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter"));
  // A resident size of at least a page, and a start within the last day.
  const auto value = [&text](const std::string& name) {
    const size_t at = text.find("\n" + name + " ");
    return at == std::string::npos
               ? -1.0
               : std::strtod(text.c_str() + at + name.size() + 2, nullptr);
  };
  EXPECT_GT(value("process_resident_memory_bytes"), 4096);
  EXPECT_GT(value("process_open_fds"), 2);
  const double now = absl::ToUnixMicros(absl::Now()) / 1e6;
  EXPECT_LE(value("process_start_time_seconds"), now + 1);
  EXPECT_GT(value("process_start_time_seconds"), now - 86400);
}

TEST(MetricsTest, TimerdSeriesShowFromTheFirstScrapeAtZero) {
  RegisterTimerdMetrics();
  const std::string text = Render();
  EXPECT_THAT(text, HasSubstr("timer_fires_total{outcome=\"started\"} "));
  EXPECT_THAT(text, HasSubstr("timer_skipped_slots_total{reason=\"missed\"} "));
  EXPECT_THAT(text, HasSubstr("timer_fire_lateness_seconds_bucket{le=\"300\"} "));
  EXPECT_THAT(text, HasSubstr("# TYPE timer_store_commit_duration_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("timer_watch_streams_open "));
}

TEST(MetricsTest, HttpRequestsByRouteAndCode) {
  ObserveHttpRequest("/v1/jobs/{job_id}", 404, absl::Milliseconds(3));
  ObserveHttpRequest("/v1/jobs/{job_id}", 404, absl::Milliseconds(3));
  const std::string text = Render();
  EXPECT_THAT(
      text,
      HasSubstr(
          "timer_http_requests_total{route=\"/v1/jobs/{job_id}\",code=\"404\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("timer_http_request_duration_seconds_bucket{route=\"/v1/jobs/"
                        "{job_id}\",le=\"0.005\"} 2\n"));
}

}  // namespace
}  // namespace timer::metrics
