#include "util/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"

namespace timer::metrics {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "metrics: %s\n", what.c_str());
  std::abort();
}

bool ValidName(std::string_view s, bool colon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void CheckNames(const std::string& name, const std::vector<std::string>& labels,
                Type type) {
  if (!ValidName(name, true)) Die(absl::StrCat("invalid metric name \"", name, "\""));
  for (const std::string& l : labels) {
    if (!ValidName(l, false) || l.rfind("__", 0) == 0 ||
        (type == Type::kHistogram && l == "le")) {
      Die(absl::StrCat(name, ": invalid label name \"", l, "\""));
    }
  }
}

uint64_t HashValues(LabelValues values) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (std::string_view v : values) h = absl::HashOf(h, v);
  return h;
}

bool SameValues(const std::vector<std::string>& have, LabelValues values) {
  auto it = values.begin();
  for (const std::string& v : have) {
    if (v != *it++) return false;
  }
  return true;
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void AppendHeader(std::string& out, const std::string& name, const std::string& help,
                  Type type) {
  absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ",
                  TypeName(type), "\n");
}

// `{a="x",b="y"}` (with `extra` = `le="..."` appended), or nothing.
void AppendLabels(std::string& out, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, std::string_view extra = {}) {
  if (names.empty() && extra.empty()) return;
  out += '{';
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (!extra.empty()) {
    if (!names.empty()) out += ',';
    out += extra;
  }
  out += '}';
}

}  // namespace

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Whole numbers as such ("900000", not the shorter "9e+05"): counts stay
  // readable and grep-able.
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v));
    return std::string(buf, end);
  }
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

std::string EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> b;
  for (int i = 0; i < count; ++i, start *= factor) b.push_back(start);
  return b;
}

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  // The first bound >= v (le is inclusive); past the last: +Inf.
  const size_t i = static_cast<size_t>(
      std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_->size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

uint64_t Histogram::Count() const { return CumulativeCounts().back(); }

FamilyBase::FamilyBase(std::string name, std::string help, Type type,
                       std::vector<std::string> label_names, size_t max_series)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      max_series_(std::max<size_t>(1, max_series)),
      slots_(new Slot[max_series_]) {}

FamilyBase::Slot& FamilyBase::Find(LabelValues values) {
  if (values.size() != label_names_.size()) {
    Die(absl::StrCat(name_, ": ", values.size(), " label values for ",
                     label_names_.size(), " labels"));
  }
  const uint64_t hash = HashValues(values);
  size_t n = count_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    if (slots_[i].hash == hash && SameValues(slots_[i].values, values)) return slots_[i];
  }
  if (Slot* o = other_.load(std::memory_order_acquire)) return *o;
  absl::MutexLock lock(&mu_);
  // Made meanwhile by another thread?
  n = count_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    if (slots_[i].hash == hash && SameValues(slots_[i].values, values)) return slots_[i];
  }
  if (n == max_series_) {
    if (Slot* o = other_.load(std::memory_order_relaxed)) return *o;
    other_slot_.values.assign(label_names_.size(), "_overflow");
    other_slot_.metric = MakeMetric();
    other_.store(&other_slot_, std::memory_order_release);
    return other_slot_;
  }
  Slot& s = slots_[n];
  s.hash = hash;
  s.values.assign(values.begin(), values.end());
  s.metric = MakeMetric();
  count_.store(n + 1, std::memory_order_release);
  return s;
}

template <typename T>
void Family<T>::Render(std::string& out) const {
  AppendHeader(out, name_, help_, type_);
  ForEach([&](const std::vector<std::string>& values, void* m) {
    const T& metric = *static_cast<const T*>(m);
    if constexpr (std::is_same_v<T, Histogram>) {
      const std::vector<uint64_t> counts = metric.CumulativeCounts();
      for (size_t i = 0; i < counts.size(); ++i) {
        const std::string le = absl::StrCat(
            "le=\"", i < bounds_.size() ? FormatValue(bounds_[i]) : "+Inf", "\"");
        absl::StrAppend(&out, name_, "_bucket");
        AppendLabels(out, label_names_, values, le);
        absl::StrAppend(&out, " ", counts[i], "\n");
      }
      absl::StrAppend(&out, name_, "_sum");
      AppendLabels(out, label_names_, values);
      absl::StrAppend(&out, " ", FormatValue(metric.Sum()), "\n", name_, "_count");
      AppendLabels(out, label_names_, values);
      absl::StrAppend(&out, " ", counts.back(), "\n");
    } else if constexpr (std::is_same_v<T, Counter>) {
      out += name_;
      AppendLabels(out, label_names_, values);
      absl::StrAppend(&out, " ", metric.Value(), "\n");
    } else {
      out += name_;
      AppendLabels(out, label_names_, values);
      absl::StrAppend(&out, " ", FormatValue(metric.Value()), "\n");
    }
  });
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

CallbackHandle& CallbackHandle::operator=(CallbackHandle&& other) noexcept {
  if (this != &other) {
    Reset();
    registry_ = std::exchange(other.registry_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

void CallbackHandle::Reset() {
  if (Registry* r = std::exchange(registry_, nullptr)) r->RemoveCallback(id_);
}

Registry& Registry::Global() {
  static Registry* const global = new Registry();
  return *global;
}

Registry::~Registry() = default;

template <typename T>
Family<T>& Registry::Add(std::string name, std::string help, Type type,
                         std::vector<std::string> labels, size_t max_series,
                         std::vector<double> bounds) {
  CheckNames(name, labels, type);
  absl::MutexLock lock(&mu_);
  if (callback_names_.contains(name)) Die(absl::StrCat(name, ": already a callback"));
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second->type() != type || it->second->label_names() != labels) {
      Die(absl::StrCat(name, ": added again with another type or other labels"));
    }
    return *static_cast<Family<T>*>(it->second.get());
  }
  auto* family = new Family<T>(name, std::move(help), type, std::move(labels), max_series,
                               std::move(bounds));
  families_.emplace(std::move(name), std::unique_ptr<FamilyBase>(family));
  return *family;
}

Family<Counter>& Registry::AddCounter(std::string name, std::string help,
                                      std::vector<std::string> labels,
                                      size_t max_series) {
  return Add<Counter>(std::move(name), std::move(help), Type::kCounter, std::move(labels),
                      max_series, {});
}

Family<Gauge>& Registry::AddGauge(std::string name, std::string help,
                                  std::vector<std::string> labels, size_t max_series) {
  return Add<Gauge>(std::move(name), std::move(help), Type::kGauge, std::move(labels),
                    max_series, {});
}

Family<Histogram>& Registry::AddHistogram(std::string name, std::string help,
                                          std::vector<double> bounds,
                                          std::vector<std::string> labels,
                                          size_t max_series) {
  if (bounds.empty() || !std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end() ||
      !std::isfinite(bounds.front()) || !std::isfinite(bounds.back())) {
    Die(absl::StrCat(name, ": bucket bounds must be finite and ascending"));
  }
  return Add<Histogram>(std::move(name), std::move(help), Type::kHistogram,
                        std::move(labels), max_series, std::move(bounds));
}

absl::StatusOr<CallbackHandle> Registry::AddCallback(std::string name, std::string help,
                                                     Type type,
                                                     std::function<double()> fn) {
  return AddCallback(std::move(name), std::move(help), type, {}, [fn = std::move(fn)] {
    return std::vector<Sample>{{{}, fn()}};
  });
}

absl::StatusOr<CallbackHandle> Registry::AddCallback(
    std::string name, std::string help, Type type, std::vector<std::string> labels,
    std::function<std::vector<Sample>()> fn) {
  if (type == Type::kHistogram)
    Die(absl::StrCat(name, ": a callback cannot be a histogram"));
  CheckNames(name, labels, type);
  absl::MutexLock lock(&mu_);
  if (families_.contains(name) || callback_names_.contains(name)) {
    return absl::AlreadyExistsError(
        absl::StrCat("metric ", name, " is already registered"));
  }
  const uint64_t id = next_callback_++;
  callback_names_.emplace(name, id);
  callbacks_.emplace(id, Callback{std::move(name), std::move(help), type,
                                  std::move(labels), std::move(fn)});
  return CallbackHandle(this, id);
}

void Registry::RemoveCallback(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = callbacks_.find(id);
  if (it == callbacks_.end()) return;
  callback_names_.erase(it->second.name);
  callbacks_.erase(it);
}

std::string Registry::Render() const {
  std::string out;
  absl::MutexLock lock(&mu_);
  out.reserve(64 * 1024);
  // Families and callbacks merged by name.
  auto f = families_.begin();
  auto c = callback_names_.begin();
  while (f != families_.end() || c != callback_names_.end()) {
    if (c == callback_names_.end() || (f != families_.end() && f->first < c->first)) {
      f->second->Render(out);
      ++f;
      continue;
    }
    const Callback& cb = callbacks_.at(c->second);
    ++c;
    std::vector<Sample> samples = cb.fn();
    AppendHeader(out, cb.name, cb.help, cb.type);
    for (const Sample& s : samples) {
      if (s.label_values.size() != cb.labels.size()) continue;
      out += cb.name;
      AppendLabels(out, cb.labels, s.label_values);
      absl::StrAppend(&out, " ", FormatValue(s.value), "\n");
    }
  }
  return out;
}

std::string Render() { return Registry::Global().Render(); }

std::string_view CodeName(absl::StatusCode code) {
  static constexpr std::array<std::string_view, 17> kNames = {"OK",
                                                              "CANCELLED",
                                                              "UNKNOWN",
                                                              "INVALID_ARGUMENT",
                                                              "DEADLINE_EXCEEDED",
                                                              "NOT_FOUND",
                                                              "ALREADY_EXISTS",
                                                              "PERMISSION_DENIED",
                                                              "RESOURCE_EXHAUSTED",
                                                              "FAILED_PRECONDITION",
                                                              "ABORTED",
                                                              "OUT_OF_RANGE",
                                                              "UNIMPLEMENTED",
                                                              "INTERNAL",
                                                              "UNAVAILABLE",
                                                              "DATA_LOSS",
                                                              "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(kNames.size()) ? kNames[i] : "UNKNOWN";
}

// ---------------------------------------------------------------------------
// timerd's series.

namespace {

// Seconds: 1 ms to 5 min for lateness; 1 ms to ~9 h for run durations.
const std::vector<double> kLatenessBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                              0.1,   0.25,   0.5,   1,    2.5,   5,
                                              10,    30,     60,    120,  300};
const std::vector<double> kCommitBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                            0.005,  0.01,    0.025,  0.05,  0.1,
                                            0.25,   0.5,     1,      2.5,   5};
const std::vector<double> kRequestBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct TimerdSeries {
  Family<Counter>& fires;
  std::array<Counter*, 9> fire_outcomes;
  Family<Counter>& skipped;
  std::array<Counter*, 4> skip_reasons;
  Histogram& lateness;
  Family<Histogram>& run_duration;
  Family<Counter>& runs_finished;
  Family<Counter>& provider_errors;
  Histogram& commit_duration;
  Histogram& commit_batch;
  Counter& commit_failures;
  Gauge& watch_open;
  Family<Counter>& watch_dropped;
  Family<Counter>& grpc_requests;
  Family<Counter>& http_requests;
  Family<Histogram>& http_duration;

  explicit TimerdSeries(Registry& r)
      : fires(
            r.AddCounter("timer_fires_total",
                         "Scheduled fires (due slots the scheduler decided), by outcome.",
                         {"outcome"})),
        skipped(r.AddCounter("timer_skipped_slots_total",
                             "Schedule slots passed over without a run, by reason.",
                             {"reason"})),
        lateness(
            r.AddHistogram("timer_fire_lateness_seconds",
                           "From a scheduled run's due time (slot plus jitter) to its "
                           "provider's Start being called.",
                           kLatenessBuckets)
                .Get()),
        run_duration(r.AddHistogram("timer_run_duration_seconds",
                                    "Runs from their start to their final status, by "
                                    "provider.",
                                    ExponentialBuckets(0.001, 4, 14), {"provider"})),
        runs_finished(r.AddCounter("timer_runs_finished_total",
                                   "Runs that reached a final status, by provider and "
                                   "status.",
                                   {"provider", "status"})),
        provider_errors(r.AddCounter("timer_provider_errors_total",
                                     "Errors returned by action providers' Start and "
                                     "Status calls, by provider, call and status code.",
                                     {"provider", "call", "code"}, 256)),
        commit_duration(r.AddHistogram("timer_store_commit_duration_seconds",
                                       "Store group commits: one transaction, begin to "
                                       "commit (the fsync included).",
                                       kCommitBuckets)
                            .Get()),
        commit_batch(r.AddHistogram("timer_store_commit_batch_size",
                                    "Writes per store group commit.",
                                    {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024})
                         .Get()),
        commit_failures(r.AddCounter("timer_store_commit_failures_total",
                                     "Store group commits that failed (none of their "
                                     "writes is durable).")
                            .Get()),
        watch_open(r.AddGauge("timer_watch_streams_open",
                              "Watch streams (gRPC and HTTP) open now.")
                       .Get()),
        watch_dropped(r.AddCounter("timer_watch_streams_dropped_total",
                                   "Watch streams ended by timerd, by reason "
                                   "(slow_consumer, events_lost).",
                                   {"reason"})),
        grpc_requests(r.AddCounter("timer_grpc_requests_total",
                                   "gRPC calls answered, by method and status code.",
                                   {"method", "code"}, 512)),
        http_requests(r.AddCounter("timer_http_requests_total",
                                   "HTTP requests answered, by route and status code.",
                                   {"route", "code"}, 512)),
        http_duration(r.AddHistogram("timer_http_request_duration_seconds",
                                     "HTTP requests, from the request read to the answer "
                                     "written (a stream: to its end), by route.",
                                     kRequestBuckets, {"route"})) {
    static constexpr std::array<std::string_view, 9> kOutcomes = {
        "started",        "failed",         "skipped_overlap",
        "skipped_missed", "skipped_paused", "skipped_deleted",
        "ended",          "not_started",    "write_failed"};
    for (size_t i = 0; i < kOutcomes.size(); ++i) {
      fire_outcomes[i] = &fires.With({kOutcomes[i]});
    }
    static constexpr std::array<std::string_view, 4> kReasons = {"overlap", "missed",
                                                                 "paused", "deleted"};
    for (size_t i = 0; i < kReasons.size(); ++i) {
      skip_reasons[i] = &skipped.With({kReasons[i]});
    }
    watch_dropped.With({"slow_consumer"});
    watch_dropped.With({"events_lost"});
  }
};

TimerdSeries& Series() {
  static TimerdSeries* const series = new TimerdSeries(Registry::Global());
  return *series;
}

}  // namespace

void RegisterTimerdMetrics() { Series(); }

void CountFire(FireOutcome outcome) {
  Series().fire_outcomes[static_cast<size_t>(outcome)]->Inc();
}

void CountSkippedSlots(SkipReason reason, uint64_t slots) {
  if (slots > 0) Series().skip_reasons[static_cast<size_t>(reason)]->Inc(slots);
}

void ObserveFireLateness(absl::Duration lateness) {
  Series().lateness.Observe(std::max(absl::ZeroDuration(), lateness));
}

void ObserveRunFinished(std::string_view provider, std::string_view status,
                        absl::Duration duration) {
  TimerdSeries& s = Series();
  s.runs_finished.With({provider, status}).Inc();
  if (duration >= absl::ZeroDuration()) s.run_duration.With({provider}).Observe(duration);
}

void CountProviderError(std::string_view provider, std::string_view call,
                        absl::StatusCode code) {
  Series().provider_errors.With({provider, call, CodeName(code)}).Inc();
}

void ObserveStoreCommit(size_t batch_size, absl::Duration duration, bool committed) {
  TimerdSeries& s = Series();
  s.commit_duration.Observe(duration);
  s.commit_batch.Observe(static_cast<double>(batch_size));
  if (!committed) s.commit_failures.Inc();
}

void WatchStreamOpened() { Series().watch_open.Inc(); }
void WatchStreamClosed() { Series().watch_open.Dec(); }
void CountWatchStreamDropped(std::string_view reason) {
  Series().watch_dropped.With({reason}).Inc();
}

void CountGrpcRequest(std::string_view method, absl::StatusCode code) {
  Series().grpc_requests.With({method, CodeName(code)}).Inc();
}

void ObserveHttpRequest(std::string_view route_template, int code,
                        absl::Duration duration) {
  char buf[16];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), code);
  const std::string_view code_text(buf, ec == std::errc() ? end - buf : 0);
  TimerdSeries& s = Series();
  s.http_requests.With({route_template, code_text}).Inc();
  s.http_duration.With({route_template}).Observe(duration);
}

// ---------------------------------------------------------------------------
// process_*.

namespace {

// The fields of /proc/self/stat after the command name (field 3 on).
std::vector<std::string> ProcStat() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  const size_t paren = line.rfind(')');
  std::vector<std::string> fields;
  if (paren == std::string::npos) return fields;
  std::istringstream rest(line.substr(paren + 1));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

double ProcStatField(int field) {  // 1-based, as proc(5) numbers them.
  std::vector<std::string> f = ProcStat();
  const size_t i = static_cast<size_t>(field - 3);
  return i < f.size() ? std::strtod(f[i].c_str(), nullptr) : 0;
}

double OpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double n = 0;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n - 1;  // The directory's own fd.
}

double StartTime() {
  // Boot time (btime in /proc/stat) plus the start in clock ticks (field 22).
  std::ifstream in("/proc/stat");
  double btime = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) btime = std::strtod(line.c_str() + 6, nullptr);
  }
  return btime + ProcStatField(22) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace

void RegisterProcessMetrics(Registry& registry) {
  static absl::Mutex mu;
  static std::map<Registry*, std::vector<CallbackHandle>>* done =
      new std::map<Registry*, std::vector<CallbackHandle>>();
  absl::MutexLock lock(&mu);
  if (done->contains(&registry)) return;
  std::vector<CallbackHandle>& handles = (*done)[&registry];
  const double start = StartTime();
  const auto add = [&](const char* name, const char* help, Type type,
                       std::function<double()> fn) {
    absl::StatusOr<CallbackHandle> h =
        registry.AddCallback(name, help, type, std::move(fn));
    if (h.ok()) handles.push_back(*std::move(h));
  };
  add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
      Type::kCounter, [] {
        const double ticks = ProcStatField(14) + ProcStatField(15);
        return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
      });
  add("process_resident_memory_bytes", "Resident memory size in bytes.", Type::kGauge,
      [] { return ProcStatField(24) * static_cast<double>(::sysconf(_SC_PAGESIZE)); });
  add("process_virtual_memory_bytes", "Virtual memory size in bytes.", Type::kGauge,
      [] { return ProcStatField(23); });
  add("process_open_fds", "Number of open file descriptors.", Type::kGauge, OpenFds);
  add("process_max_fds", "Maximum number of open file descriptors.", Type::kGauge, [] {
    rlimit r{};
    if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 0.0;
    return r.rlim_cur == RLIM_INFINITY ? std::numeric_limits<double>::infinity()
                                       : static_cast<double>(r.rlim_cur);
  });
  add("process_start_time_seconds",
      "Start time of the process since unix epoch in seconds.", Type::kGauge,
      [start] { return start; });
}

}  // namespace timer::metrics
