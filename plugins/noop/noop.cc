// noop: an action provider that does nothing, on demand, for tests and
// benchmarks.
//
// Body: {"delay_ms": N, "fail": bool, "fail_message": "...",
//        "fail_class": "permanent"|"transient"|"needs_attention",
//        "fail_attempts": N, "fail_validation": bool}. The action stays
// ACTIVE for delay_ms (cancellable meanwhile), then ends SUCCEEDED, or
// FAILED when `fail`, with the error class `fail_class` (default: none
// said, which reads as permanent). With `fail_attempts` N > 0, only the
// first N actions started for a request id fail and later ones (a retry of
// the same run, after the failed action was released) succeed: a provider
// that fails transiently N times, for retry tests. With record_file, the
// counts start from the file's lines, so they survive a restart of timerd.
// `fail_validation` makes validate() and start() refuse the body. No action
// uses a thread: its outcome is decided in start() and shown when due, so
// any number of delayed actions cost memory only (a few hundred bytes each).
//
// Config: {"record_file": "/path"}: one line "<request_id> <unix time in
// ms>\n" is appended (and flushed) per action actually started, so tests
// can count executions from outside timerd. A repeated start() with the
// same request_id writes nothing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "provider_support.h"
#include "timer/action_provider.h"

namespace timer::plugins {
namespace {

constexpr char kSchema[] = R"({
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "noop action body",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "delay_ms": {"type": "integer", "minimum": 0, "maximum": 86400000, "default": 0,
                 "description": "How long the action stays ACTIVE before it ends."},
    "fail": {"type": "boolean", "default": false,
             "description": "End FAILED instead of SUCCEEDED."},
    "fail_message": {"type": "string",
                     "description": "The error a failing action reports."},
    "fail_class": {"enum": ["permanent", "transient", "needs_attention"],
                   "description": "The error class of a failure (default: unsaid, read as permanent)."},
    "fail_attempts": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 0,
                      "description": "With fail: only the first N actions of each request id fail (0: all)."},
    "fail_validation": {"type": "boolean", "default": false,
                        "description": "Refuse the body at validation (INVALID_ARGUMENT)."}
  }
})";

class NoopProvider : public ProviderBase {
 public:
  NoopProvider(int record_fd, HostLog log, std::map<std::string, int64_t> counts)
      : ProviderBase(ActionRunner::Options{.config_prefix = "plugins.noop"}, log),
        record_fd_(record_fd),
        log_(log),
        counts_(std::move(counts)) {}
  ~NoopProvider() override {
    if (record_fd_ >= 0) close(record_fd_);
  }

  Err Plan(const Identity& owner, const nlohmann::json& body, Work* work) override {
    FieldReader r(body, "");
    int64_t delay_ms = r.Int("delay_ms", 0, 0, 86400000);
    bool fail = r.Bool("fail", false);
    std::string message = r.String("fail_message", "noop: failed on request");
    std::string fail_class = r.String("fail_class", "");
    int64_t fail_attempts = r.Int("fail_attempts", 0, 0, 1000);
    bool fail_validation = r.Bool("fail_validation", false);
    if (Err e = r.Finish(); !e.ok()) return e;
    timer_ap_error_class error_class = TIMER_AP_ERROR_CLASS_UNSPECIFIED;
    if (fail_class == "permanent") {
      error_class = TIMER_AP_ERROR_CLASS_PERMANENT;
    } else if (fail_class == "transient") {
      error_class = TIMER_AP_ERROR_CLASS_TRANSIENT;
    } else if (fail_class == "needs_attention") {
      error_class = TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION;
    } else if (!fail_class.empty()) {
      return InvalidArgument(
          "fail_class: must be permanent, transient or needs_attention");
    }
    if (fail_validation) return InvalidArgument("fail_validation: refused on request");
    if (work == nullptr) return Ok();
    // The outcome is known now; a delay only keeps it ACTIVE that long
    // (ActionRunner applies it when due), so no thread waits for it.
    *work = [delay_ms, fail, message, error_class, fail_attempts](ActionContext& ctx) {
      // Which action of its request id this is (OnCreated, just before, on
      // this thread: noop's work runs inline in start()).
      const int64_t nth = tls_attempt;
      const bool failing = fail && (fail_attempts == 0 || nth <= fail_attempts);
      ctx.SetDetails({{"delay_ms", delay_ms}, {"attempt", nth}});
      Outcome out{failing ? TIMER_AP_STATE_FAILED : TIMER_AP_STATE_SUCCEEDED,
                  failing ? message : std::string()};
      out.delay = std::chrono::milliseconds(delay_ms);
      if (failing) out.error_class = error_class;
      return out;
    };
    return Ok();
  }

  // Every noop action is decided inside start(): none needs a thread.
  bool RunsInline(const nlohmann::json& body) const override { return true; }

  void OnCreated(std::string_view request_id, std::string_view action_id) override {
    {
      // Actions started per request id, for fail_attempts. Bounded: the
      // counts start over once kMaxCounted request ids are known.
      std::lock_guard<std::mutex> lock(counts_mu_);
      if (counts_.size() >= kMaxCounted) counts_.clear();
      tls_attempt = ++counts_[std::string(request_id)];
    }
    if (record_fd_ < 0) return;
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    std::string line = std::string(request_id) + " " + std::to_string(now) + "\n";
    // One write(2) on an O_APPEND descriptor: lines never interleave, and
    // it reaches the file (the page cache) before start() returns.
    ssize_t n = write(record_fd_, line.data(), line.size());
    if (n != static_cast<ssize_t>(line.size())) {
      log_.Warn("record_file: write failed: " + std::string(std::strerror(errno)));
    }
  }

 private:
  static constexpr size_t kMaxCounted = 10000;
  static thread_local int64_t tls_attempt;
  const int record_fd_;  // owned; -1 without record_file
  HostLog log_;
  std::mutex counts_mu_;
  std::map<std::string, int64_t> counts_;  // guarded by counts_mu_
};

thread_local int64_t NoopProvider::tls_attempt = 0;

Err CreateNoop(const nlohmann::json& config, HostLog log,
               std::unique_ptr<ProviderBase>* out) {
  FieldReader r(config, "plugins.noop");
  std::string record_file = r.String("record_file", "");
  if (Err e = r.Finish(); !e.ok()) return e;
  int fd = -1;
  if (!record_file.empty()) {
    fd = open(record_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return InvalidArgument("plugins.noop.record_file: cannot open " + record_file +
                             ": " + std::strerror(errno));
    }
  }
  // The actions recorded so far, per request id (fail_attempts), from at
  // most kMaxCounted lines.
  std::map<std::string, int64_t> counts;
  if (!record_file.empty()) {
    std::ifstream in(record_file);
    std::string line;
    for (size_t n = 0; n < 10000 && std::getline(in, line); ++n) {
      const size_t space = line.find(' ');
      if (space != std::string::npos) ++counts[line.substr(0, space)];
    }
  }
  *out = std::make_unique<NoopProvider>(fd, log, std::move(counts));
  return Ok();
}

timer_ap_error* Create(timer_ap_str config, const timer_ap_host* host,
                       timer_ap_provider** out) {
  return CreateWith(&CreateNoop, config, host, out);
}

const timer_ap_api kApi =
    MakeApi("noop", "1.0.0",
            "Does nothing: succeeds or fails on demand, after an optional "
            "delay; for tests and benchmarks.",
            kSchema, &Create);

}  // namespace
}  // namespace timer::plugins

extern "C" TIMER_AP_EXPORT const timer_ap_api* timer_ap_get_api(uint32_t host_major,
                                                                uint32_t host_minor) {
  return host_major == TIMER_AP_ABI_MAJOR ? &timer::plugins::kApi : nullptr;
}
