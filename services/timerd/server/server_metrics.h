// ServerMetrics: the series of one running timerd that other components
// already keep, registered in metrics::Registry::Global() as callbacks
// evaluated at scrape, and the jobs-by-status count.
//
//   timer_runs_active                 the run engine's runs in flight
//   timer_jobs_scheduled              jobs in the scheduler's queue
//   timer_scheduler_due_lag_seconds   how long its earliest job has been due
//   timer_jobs{status}                jobs in the store by status
//   timer_jobs_counted_timestamp_seconds  when that count was read
//
// Each callback reads a counter or the head of a queue under its owner's
// lock: O(1), however many jobs there are. Jobs by status are a scan of the
// store, so they are never read at scrape: a background thread counts them
// at start and then every `count_every` (15 s), or 20 times as long as the
// last count took if that is longer (so the count uses at most 5% of a core
// whatever the store's size), and the scrape shows the last count. A store
// that cannot count (UNIMPLEMENTED) shows no timer_jobs.
//
// Also registers the process_* series (metrics::RegisterProcessMetrics).
//
// Ownership: the engine and store must outlive this object. Destroying it
// (or Stop()) removes the callbacks and joins the counting thread; call it
// before the store closes. A second ServerMetrics while one lives (two
// timerds in one process, in tests) registers nothing. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/run_engine.h"
#include "store/store.h"
#include "util/metrics.h"

namespace timer::server {

class ServerMetrics {
 public:
  ServerMetrics(domain::RunEngine* engine, store::Store* store,
                absl::Duration count_every = absl::Seconds(15));
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Removes the callbacks and stops counting. Idempotent.
  void Stop();

 private:
  void CountLoop();

  store::Store* const store_;
  const absl::Duration count_every_;
  std::vector<metrics::CallbackHandle> handles_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The last count (by v1::Job::Status) and when it was read; empty until
  // the first one.
  std::map<int, int64_t> jobs_by_status_ ABSL_GUARDED_BY(mu_);
  absl::Time counted_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread thread_;
};

}  // namespace timer::server
