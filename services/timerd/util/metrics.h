// Metrics: counters, gauges and histograms, rendered in the Prometheus text
// exposition format (version 0.0.4) for `GET /metrics`.
//
// A Registry holds metric families by name. A family has a fixed list of
// label names, declared when it is added, and one series per distinct list
// of label values, made on first use. The label values must come from a
// closed set (an outcome, a status code, a loaded provider's name, a
// declared method or route): a family holds at most `max_series` series
// (64 unless its Add* call says otherwise); the values of any further
// series are all folded into one series whose every label is "_overflow"
// (a value no route, provider or code takes, so it never repeats a real
// series: Prometheus refuses a scrape with duplicate samples). So no
// caller can grow a family without bound, and nothing is ever per job.
//
// The hot path is lock-free and allocation-free: Counter::Inc is one
// relaxed atomic add, Histogram::Observe a bucket search over a few bounds
// and two relaxed atomic adds (one compare-and-swap loop for the sum).
// Family::With finds an existing series by a scan of at most `max_series`
// hashes, without a lock; only making a new series takes the family's
// mutex. Callers on the hottest paths resolve their series once and keep the
// reference (series live as long as their registry).
//
// Callback metrics (AddCallback) are evaluated at scrape, by Render(), for
// values another component already keeps (active runs, open files). The
// callback runs on the scraping thread with the registry's render mutex
// held: it must be quick, must not block on I/O and must not call back into
// the registry. Removing it (destroying its CallbackHandle) waits for a
// Render() that is running it.
//
// Names follow the Prometheus conventions: base units (`_seconds`,
// `_bytes`), `_total` on counters, `timer_` for timerd's own series and the
// client libraries' `process_` names for the process. A name or label that
// is not valid, or a name added twice with another type or other labels, is
// a programming error: the process aborts with a message.
//
//   metrics::Family<metrics::Counter>& fires = registry.AddCounter(
//       "timer_fires_total", "Scheduled fires, by outcome.", {"outcome"});
//   metrics::Counter& started = fires.With({"started"});
//   started.Inc();
//   std::string text = registry.Render();
//
// Registry::Global() is the process-wide registry timerd serves; tests make
// their own. Thread-safe: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace timer::metrics {

// The content type of Render()'s text, for the HTTP response.
inline constexpr std::string_view kContentType =
    "text/plain; version=0.0.4; charset=utf-8";

enum class Type { kCounter, kGauge, kHistogram };

// A value that only goes up (reset only by a restart).
class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into fixed buckets (upper bounds, inclusive, as
// Prometheus' `le`), with their sum and count.
class Histogram {
 public:
  // `bounds` (ascending, finite) belongs to the family and outlives this.
  explicit Histogram(const std::vector<double>* bounds);

  void Observe(double v);
  void Observe(absl::Duration d) { Observe(absl::ToDoubleSeconds(d)); }

  // Cumulative counts per bound, then the +Inf bucket (== count); the sum.
  // Read without a lock while observations go on: each bucket is exact,
  // the sum may miss an observation the buckets hold (or hold one they miss).
  std::vector<uint64_t> CumulativeCounts() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t Count() const;

 private:
  const std::vector<double>* const bounds_;
  // Per bucket (not cumulative): bounds_->size() + 1, the last for +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

// Bucket bounds `start`, `start*factor`, ... (`count` of them).
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// The label values of one series, one per label name, in their order.
using LabelValues = std::initializer_list<std::string_view>;

class Registry;

// What every family shares; see Family<T>.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  Type type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 protected:
  FamilyBase(std::string name, std::string help, Type type,
             std::vector<std::string> label_names, size_t max_series);

  friend class Registry;
  // Appends HELP, TYPE and every series to `out`.
  virtual void Render(std::string& out) const = 0;

  struct Slot;
  // The slot of `values`, made if new (beyond max_series: the "_overflow" one).
  // Aborts if the number of values is not the number of labels.
  Slot& Find(LabelValues values);
  // Makes the metric of a new slot.
  virtual void* MakeMetric() = 0;

  struct Slot {
    uint64_t hash = 0;
    std::vector<std::string> values;
    void* metric = nullptr;  // The family's T, owned by the family.
  };
  // Published slots, in creation order: slots_[i] for i < count_ never
  // changes once count_ says it exists.
  const std::string name_;
  const std::string help_;
  const Type type_;
  const std::vector<std::string> label_names_;
  const size_t max_series_;
  std::unique_ptr<Slot[]> slots_;
  std::atomic<size_t> count_{0};
  // The folded series, once the cap was reached (null until then).
  std::atomic<Slot*> other_{nullptr};
  Slot other_slot_;
  absl::Mutex mu_;  // Making a slot.

  // Calls `f(values, metric)` for every series, in creation order, the
  // folded one last.
  template <typename F>
  void ForEach(F f) const {
    const size_t n = count_.load(std::memory_order_acquire);
    for (size_t i = 0; i < n; ++i) f(slots_[i].values, slots_[i].metric);
    if (const Slot* o = other_.load(std::memory_order_acquire)) f(o->values, o->metric);
  }
};

// One metric family: its series by label values. T is Counter, Gauge or
// Histogram. Lives as long as its registry.
template <typename T>
class Family final : public FamilyBase {
 public:
  ~Family() override {
    ForEach([](const std::vector<std::string>&, void* m) { delete static_cast<T*>(m); });
  }
  // The series of `values` (one per label name), made on first use.
  T& With(LabelValues values) { return *static_cast<T*>(Find(values).metric); }
  // The one series of a family without labels.
  T& Get() { return With({}); }

 private:
  friend class Registry;
  Family(std::string name, std::string help, Type type, std::vector<std::string> labels,
         size_t max_series, std::vector<double> bounds = {})
      : FamilyBase(std::move(name), std::move(help), type, std::move(labels), max_series),
        bounds_(std::move(bounds)) {}
  void* MakeMetric() override {
    if constexpr (std::is_same_v<T, Histogram>) {
      return new Histogram(&bounds_);
    } else {
      return new T();
    }
  }
  void Render(std::string& out) const override;

  const std::vector<double> bounds_;  // Histograms only.
};

// A sample of a callback metric: label values (one per label name) and value.
struct Sample {
  std::vector<std::string> label_values;
  double value = 0;
};

// Removes its callback when destroyed (or reset). Empty when default-made.
class CallbackHandle {
 public:
  CallbackHandle() = default;
  CallbackHandle(CallbackHandle&& other) noexcept
      : registry_(std::exchange(other.registry_, nullptr)), id_(other.id_) {}
  CallbackHandle& operator=(CallbackHandle&& other) noexcept;
  CallbackHandle(const CallbackHandle&) = delete;
  CallbackHandle& operator=(const CallbackHandle&) = delete;
  ~CallbackHandle() { Reset(); }
  // Removes the callback now; waits for a Render() running it.
  void Reset();
  explicit operator bool() const { return registry_ != nullptr; }

 private:
  friend class Registry;
  CallbackHandle(Registry* registry, uint64_t id) : registry_(registry), id_(id) {}
  Registry* registry_ = nullptr;
  uint64_t id_ = 0;
};

class Registry {
 public:
  // The process-wide registry (never destroyed).
  static Registry& Global();

  Registry() = default;
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Adds a family, or returns the one of that name if it has the same type
  // and labels (so two places may declare one family).
  Family<Counter>& AddCounter(std::string name, std::string help,
                              std::vector<std::string> labels = {},
                              size_t max_series = kDefaultMaxSeries);
  Family<Gauge>& AddGauge(std::string name, std::string help,
                          std::vector<std::string> labels = {},
                          size_t max_series = kDefaultMaxSeries);
  // `bounds`: the buckets' upper bounds, ascending and finite (+Inf is
  // always added).
  Family<Histogram>& AddHistogram(std::string name, std::string help,
                                  std::vector<double> bounds,
                                  std::vector<std::string> labels = {},
                                  size_t max_series = kDefaultMaxSeries);

  // A counter or gauge family evaluated at each Render() by `fn`, until the
  // handle goes. A name already taken (by a family or a live callback) is
  // refused with ALREADY_EXISTS: a second timerd in one process (tests)
  // reports its values only once the first has gone.
  absl::StatusOr<CallbackHandle> AddCallback(std::string name, std::string help,
                                             Type type, std::function<double()> fn);
  absl::StatusOr<CallbackHandle> AddCallback(std::string name, std::string help,
                                             Type type, std::vector<std::string> labels,
                                             std::function<std::vector<Sample>()> fn);

  // Every family and callback, sorted by name, in the text format.
  std::string Render() const;

  static constexpr size_t kDefaultMaxSeries = 64;

 private:
  friend class CallbackHandle;
  struct Callback {
    std::string name, help;
    Type type;
    std::vector<std::string> labels;
    std::function<std::vector<Sample>()> fn;
  };
  template <typename T>
  Family<T>& Add(std::string name, std::string help, Type type,
                 std::vector<std::string> labels, size_t max_series,
                 std::vector<double> bounds);
  void RemoveCallback(uint64_t id);

  // Guards the maps, and is held through Render() (callbacks run under it).
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t, std::less<>> callback_names_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Callback> callbacks_ ABSL_GUARDED_BY(mu_);
  uint64_t next_callback_ ABSL_GUARDED_BY(mu_) = 1;
};

// Registry::Global().Render(): the body of `GET /metrics`.
std::string Render();

// Helpers of the text format, exposed for tests.
// A value as Prometheus reads it: shortest round-trip form, `+Inf`, `-Inf`,
// `NaN`.
std::string FormatValue(double v);
// A label value escaped: `\` `"` and newline as `\\` `\"` `\n`.
std::string EscapeLabelValue(std::string_view v);

// ---------------------------------------------------------------------------
// The series of timerd (docs/DEPLOYMENT.md, "Metrics", lists them all). Each
// function below counts into Registry::Global(); the first call of any of
// them (or RegisterTimerdMetrics) declares every family, so each shows from
// the first scrape, at zero.

// Declares every family of timerd in Registry::Global() (idempotent).
void RegisterTimerdMetrics();

// How a scheduled slot ended up: every fire the scheduler decides counts
// once, when its outcome is known.
enum class FireOutcome {
  kStarted,         // The provider accepted the start.
  kFailed,          // The provider refused it (or is not loaded).
  kSkippedOverlap,  // Recorded SKIPPED: a run of the job was active.
  kSkippedMissed,   // Recorded SKIPPED: the slot was missed (timerd down or behind).
  kSkippedPaused,   // Recorded ahead of its slot, then the job was paused.
  kSkippedDeleted,  // Recorded ahead of its slot, then the job was deleted.
  kEnded,           // A stop condition held: the job ended, nothing ran.
  kNotStarted,      // Recorded, but its shard moved to another replica first.
  kWriteFailed,     // Its store write failed: tried again shortly.
};
void CountFire(FireOutcome outcome);
// Slots passed over without a run, by reason ("overlap", "missed",
// "paused", "deleted").
enum class SkipReason { kOverlap, kMissed, kPaused, kDeleted };
void CountSkippedSlots(SkipReason reason, uint64_t slots);
// From a scheduled run's due time (its slot plus jitter) to the provider's
// Start being called.
void ObserveFireLateness(absl::Duration lateness);
// A run ended (final status: "succeeded", "failed", "cancelled",
// "unknown"); `duration` from its start, if it started (negative: not).
void ObserveRunFinished(std::string_view provider, std::string_view status,
                        absl::Duration duration);
// A provider call ("start" or "status") returned an error.
void CountProviderError(std::string_view provider, std::string_view call,
                        absl::StatusCode code);
// One group commit of the store: its size and how long it took (begin to
// commit), and whether it committed.
void ObserveStoreCommit(size_t batch_size, absl::Duration duration, bool committed);
// Watch streams (gRPC and HTTP) subscribed to the event hub: opened,
// closed, and ended by timerd ("slow_consumer": it fell a buffer behind;
// "events_lost": events between replicas were lost).
void WatchStreamOpened();
void WatchStreamClosed();
void CountWatchStreamDropped(std::string_view reason);
// A gRPC call ended; `method` is the RPC's short name ("GetJob").
void CountGrpcRequest(std::string_view method, absl::StatusCode code);
// An HTTP request was answered: `route_template` is the matched route as
// declared ("/v1/jobs/{job_id}"; "other" for an unmatched path — never the
// raw path), `code` the HTTP status.
void ObserveHttpRequest(std::string_view route_template, int code,
                        absl::Duration duration);

// The process_* series of the Prometheus client libraries, read from
// /proc/self at each scrape: process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds.
// Idempotent; for the process's lifetime.
void RegisterProcessMetrics(Registry& registry = Registry::Global());

// The canonical name of a status code, as in google.rpc.Code ("NOT_FOUND").
std::string_view CodeName(absl::StatusCode code);

}  // namespace timer::metrics
