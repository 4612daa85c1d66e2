// End-to-end: a real Prometheus (Debian's prometheus package) scrapes the
// installed timerd's /metrics on its HTTP listener (`http_listen`), and
// queries through Prometheus' HTTP API return the fire counter and the
// lateness histogram with the values the jobs' own results imply.
//
// timerd runs jobs of the noop provider every second, three runs each
// (stop_after_runs), so the fires end at a known count: the test waits for
// every job to end, reads the count from the jobs themselves (n_runs), and
// then expects exactly that many `started` fires and lateness observations
// from Prometheus, with the lateness p99 under a second.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli_fixture.h"
#include "free_port.h"
#include "process.h"

namespace timer::testing {
namespace {

using nlohmann::json;

// GET http://127.0.0.1:port/path with curl; the body, or "" on failure.
std::string HttpGet(int port, const std::string& path_and_query) {
  RunResult r =
      Run({"/usr/bin/curl", "--silent", "--fail", "--max-time", "10", "--globoff",
           absl::StrCat("http://127.0.0.1:", port, path_and_query)});
  return r.exit_code == 0 ? r.out : std::string();
}

// Percent-encodes a PromQL query for a URL.
std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

class PrometheusE2eTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    ASSERT_EQ(timer::testing::Run({"/bin/sh", "-c", "command -v prometheus"}).exit_code,
              0)
        << "prometheus not installed (scripts/deps.sh installs Debian's prometheus)";
  }

  // The value of an instant query's single sample, or nullopt if the
  // result is empty (or the query failed).
  std::optional<double> Query(const std::string& promql) {
    const std::string body =
        HttpGet(prometheus_port_, "/api/v1/query?query=" + UrlEncode(promql));
    json reply = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (reply.is_discarded() || reply.value("status", "") != "success")
      return std::nullopt;
    const json& result = reply["data"]["result"];
    if (!result.is_array() || result.size() != 1) return std::nullopt;
    return std::strtod(result[0]["value"][1].get<std::string>().c_str(), nullptr);
  }

  // Waits until `promql` has the value `want` (at most `timeout`).
  bool WaitForQuery(const std::string& promql, double want,
                    absl::Duration timeout = absl::Seconds(60)) {
    const absl::Time deadline = absl::Now() + timeout;
    std::optional<double> got;
    while (absl::Now() < deadline) {
      got = Query(promql);
      if (got && *got == want) return true;
      absl::SleepFor(absl::Milliseconds(250));  // Prometheus scrapes every second.
    }
    ADD_FAILURE() << promql << ": wanted " << want << ", last got "
                  << (got ? std::to_string(*got) : "nothing");
    return false;
  }

  int prometheus_port_ = 0;
};

TEST_F(PrometheusE2eTest, PrometheusScrapesTheFireCounterAndTheLatenessHistogram) {
  const absl::StatusOr<int> free_port = FreeLoopbackPort();
  ASSERT_TRUE(free_port.ok()) << free_port.status();
  const int http_port = *free_port;
  auto timerd = StartTimerdWithConfig(
      absl::StrCat("http_listen = \"127.0.0.1:", http_port, "\"\n"));

  // /metrics answers on the HTTP listener, in the text format, with every
  // series present from the start.
  std::string text;
  const absl::Time up_by = absl::Now() + absl::Seconds(20);
  while ((text = HttpGet(http_port, "/metrics")).empty() && absl::Now() < up_by) {
    absl::SleepFor(absl::Milliseconds(100));  // The listener starts with timerd.
  }
  ASSERT_NE(text.find("# TYPE timer_fires_total counter"), std::string::npos) << text;
  ASSERT_NE(text.find("# TYPE timer_fire_lateness_seconds histogram"), std::string::npos);
  ASSERT_NE(text.find("process_start_time_seconds "), std::string::npos);

  const absl::StatusOr<int> prometheus_port = FreeLoopbackPort();
  ASSERT_TRUE(prometheus_port.ok()) << prometheus_port.status();
  prometheus_port_ = *prometheus_port;
  const std::string prom_config = tmp_.path() + "/prometheus.yml";
  std::ofstream(prom_config) << "global:\n"
                                "  scrape_interval: 1s\n"
                                "  evaluation_interval: 1s\n"
                                "scrape_configs:\n"
                                "  - job_name: timerd\n"
                                "    authorization:\n"
                                "      credentials: \""
                             << token_
                             << "\"\n"
                                "    static_configs:\n"
                                "      - targets: [\"127.0.0.1:"
                             << http_port << "\"]\n";
  Daemon prometheus({"/usr/bin/prometheus", "--config.file=" + prom_config,
                     "--storage.tsdb.path=" + tmp_.path() + "/tsdb",
                     absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_)});
  ASSERT_TRUE(
      prometheus.WaitForLog("Server is ready to receive web requests", absl::Seconds(60)))
      << prometheus.log();
  ASSERT_TRUE(WaitForQuery("up{job=\"timerd\"}", 1)) << prometheus.log();

  // Jobs every second, three runs each, starting now.
  constexpr int kJobs = 5;
  std::vector<std::string> ids;
  const std::string start = absl::FormatTime(
      "%Y-%m-%dT%H:%M:%SZ", absl::Now() + absl::Seconds(2), absl::UTCTimeZone());
  for (int i = 0; i < kJobs; ++i) {
    json job = CliJson({"job", "submit", "--name", absl::StrCat("scraped-", i),
                        "--interval", "1s", "--start", start, "--stop-after-runs", "3",
                        "--action-provider", "noop", "--action-body", "{}"});
    ids.push_back(job["job_id"]);
  }
  int64_t runs = 0;
  for (const std::string& id : ids) {
    json job = WaitForJob(id, [](const json& j) { return j["status"] == "ENDED"; });
    runs += std::strtoll(job.value("n_runs", "0").c_str(), nullptr, 10);
  }
  ASSERT_EQ(runs, 3 * kJobs);

  // What Prometheus stored matches what the jobs ran.
  const std::string instance = absl::StrCat("{instance=\"127.0.0.1:", http_port, "\"");
  EXPECT_TRUE(WaitForQuery(
      absl::StrCat("timer_fires_total", instance, ",outcome=\"started\"}"), runs));
  EXPECT_TRUE(WaitForQuery(
      absl::StrCat("timer_fire_lateness_seconds_count", instance, "}"), runs));
  EXPECT_TRUE(WaitForQuery(
      absl::StrCat("timer_fire_lateness_seconds_bucket", instance, ",le=\"+Inf\"}"),
      runs));
  EXPECT_TRUE(WaitForQuery(absl::StrCat("timer_runs_finished_total", instance,
                                        ",provider=\"noop\",status=\"succeeded\"}"),
                           runs));
  // On an idle loopback timerd every run reached its provider within a
  // second of its slot.
  EXPECT_TRUE(WaitForQuery(
      absl::StrCat("timer_fire_lateness_seconds_bucket", instance, ",le=\"1\"}"), runs));
  std::optional<double> p99 = Query(absl::StrCat(
      "histogram_quantile(0.99, sum by (le) (timer_fire_lateness_seconds_bucket",
      instance, "}))"));
  ASSERT_TRUE(p99.has_value());
  EXPECT_LT(*p99, 1.0);

  EXPECT_EQ(prometheus.Stop(SIGTERM), 0) << prometheus.log();
  EXPECT_EQ(timerd->Stop(SIGTERM), 0) << timerd->log();
}

}  // namespace
}  // namespace timer::testing
