#include "server/server_metrics.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "timer/v1/timer.pb.h"
#include "util/thread_name.h"

namespace timer::server {
namespace {

// "active", "paused"...: the status's enum name, lower case.
std::string StatusLabel(int status) {
  if (!v1::Job::Status_IsValid(status)) return "unknown";
  return absl::AsciiStrToLower(
      v1::Job::Status_Name(static_cast<v1::Job::Status>(status)));
}

}  // namespace

ServerMetrics::ServerMetrics(domain::RunEngine* engine, store::Store* store,
                             absl::Duration count_every)
    : store_(store), count_every_(count_every) {
  metrics::RegisterTimerdMetrics();
  metrics::RegisterProcessMetrics();
  metrics::Registry& r = metrics::Registry::Global();
  const auto keep = [this](absl::StatusOr<metrics::CallbackHandle> h) {
    if (h.ok()) {
      handles_.push_back(*std::move(h));
    } else {
      spdlog::warn("metrics: {}", std::string(h.status().message()));
    }
  };
  keep(r.AddCallback("timer_runs_active",
                     "Runs in flight: recorded and not yet ended (started here, or "
                     "waiting for their slot or a worker).",
                     metrics::Type::kGauge,
                     [engine] { return static_cast<double>(engine->active_runs()); }));
  keep(
      r.AddCallback("timer_jobs_scheduled",
                    "Jobs in this timerd's scheduler queue (with replicas: of the shards "
                    "it holds).",
                    metrics::Type::kGauge,
                    [engine] { return static_cast<double>(engine->queued_jobs()); }));
  keep(r.AddCallback("timer_scheduler_due_lag_seconds",
                     "How long the earliest job in the scheduler's queue has been due "
                     "(0 when none is): grows when fires stop or fall behind.",
                     metrics::Type::kGauge,
                     [engine] { return absl::ToDoubleSeconds(engine->due_lag()); }));
  keep(r.AddCallback("timer_jobs",
                     "Jobs in the store by status (deleted ones until purged), as last "
                     "counted in the background (at most every 15 s).",
                     metrics::Type::kGauge, {"status"}, [this] {
                       std::vector<metrics::Sample> out;
                       absl::MutexLock lock(&mu_);
                       for (const auto& [status, n] : jobs_by_status_) {
                         out.push_back({{StatusLabel(status)}, static_cast<double>(n)});
                       }
                       return out;
                     }));
  keep(r.AddCallback("timer_jobs_counted_timestamp_seconds",
                     "When timer_jobs was last counted (Unix time; 0: not yet).",
                     metrics::Type::kGauge, [this] {
                       absl::MutexLock lock(&mu_);
                       return counted_ == absl::InfinitePast()
                                  ? 0.0
                                  : absl::ToUnixMicros(counted_) / 1e6;
                     }));
  if (handles_.empty()) return;  // Another ServerMetrics reports.
  thread_ = std::thread([this] {
    util::SetThreadName("metrics-count");
    CountLoop();
  });
}

ServerMetrics::~ServerMetrics() { Stop(); }

void ServerMetrics::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  // Waits for a scrape running one of them.
  handles_.clear();
}

void ServerMetrics::CountLoop() {
  for (;;) {
    const absl::Time began = absl::Now();
    absl::StatusOr<std::map<int, int64_t>> counted = store_->CountJobsByStatus();
    const absl::Duration took = absl::Now() - began;
    absl::Duration wait = std::max(count_every_, 20 * took);
    {
      absl::MutexLock lock(&mu_);
      if (counted.ok()) {
        jobs_by_status_ = *std::move(counted);
        counted_ = absl::Now();
      } else if (absl::IsUnimplemented(counted.status())) {
        wait = absl::InfiniteDuration();  // This store cannot tell.
      } else {
        spdlog::warn("metrics: counting jobs by status failed: {}",
                     std::string(counted.status().message()));
      }
      const auto stopping = [this]()
                                ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      mu_.AwaitWithTimeout(absl::Condition(&stopping), wait);
      if (stopping_) return;
    }
  }
}

}  // namespace timer::server
