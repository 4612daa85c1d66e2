// provider_support: the C++ side of a provider plugin, shared by the
// providers in this tree (noop, transfer, http). Not part of the ABI: a provider
// built elsewhere needs only timer/action_provider.h.
//
// It turns a C++ class derived from ProviderBase into the C table the ABI
// wants (MakeApi), catching every exception at the boundary, and runs the
// actions through ActionRunner (a bounded pool of threads and a bounded
// queue), which gives start() its idempotency on request_id and
// cancel/release their semantics.
//
// Thread-safety: ProviderBase's entry points follow the ABI's tags
// (Validate/Start/Status/Cancel/Release are thread-safe). ActionRunner is
// thread-safe; its destructor cancels every action and waits, for a bounded
// time, for the pool's threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "timer/action_provider.h"

namespace timer::plugins {

// A code, a message and (ABI 1.2) an error class; code TIMER_AP_OK means
// success. The class says whether trying again may help; unset
// (UNSPECIFIED) reads as PERMANENT at the host:
//   return Transient(Unavailable("s3: connection refused"));
//   return NeedsAttention(PermissionDenied("sftp: key rejected"));
//   return Err{TIMER_AP_UNAVAILABLE, "..."}.with_class(TIMER_AP_ERROR_CLASS_TRANSIENT);
struct Err {
  timer_ap_code code = TIMER_AP_OK;
  std::string message;
  timer_ap_error_class error_class = TIMER_AP_ERROR_CLASS_UNSPECIFIED;
  bool ok() const { return code == TIMER_AP_OK; }
  Err with_class(timer_ap_error_class c) && {
    error_class = c;
    return std::move(*this);
  }
  Err with_class(timer_ap_error_class c) const& {
    Err e = *this;
    e.error_class = c;
    return e;
  }
};
inline Err Ok() { return {}; }
inline Err Transient(Err e) {
  return std::move(e).with_class(TIMER_AP_ERROR_CLASS_TRANSIENT);
}
inline Err Permanent(Err e) {
  return std::move(e).with_class(TIMER_AP_ERROR_CLASS_PERMANENT);
}
inline Err NeedsAttention(Err e) {
  return std::move(e).with_class(TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION);
}
inline Err InvalidArgument(std::string m) {
  return {TIMER_AP_INVALID_ARGUMENT, std::move(m)};
}
inline Err PermissionDenied(std::string m) {
  return {TIMER_AP_PERMISSION_DENIED, std::move(m)};
}
inline Err NotFound(std::string m) { return {TIMER_AP_NOT_FOUND, std::move(m)}; }
inline Err FailedPrecondition(std::string m) {
  return {TIMER_AP_FAILED_PRECONDITION, std::move(m)};
}
inline Err Internal(std::string m) { return {TIMER_AP_INTERNAL, std::move(m)}; }
inline Err Unavailable(std::string m) { return {TIMER_AP_UNAVAILABLE, std::move(m)}; }
inline Err ResourceExhausted(std::string m) {
  return {TIMER_AP_RESOURCE_EXHAUSTED, std::move(m)};
}

inline std::string_view View(timer_ap_str s) {
  return s.size == 0 ? std::string_view() : std::string_view(s.data, s.size);
}
inline timer_ap_str Str(std::string_view s) { return {s.data(), s.size()}; }

struct Identity {
  std::string name;
  std::string auth_method;
};

// Forwards to the host's log callback, if it gave one. Thread-safe.
class HostLog {
 public:
  HostLog() = default;
  explicit HostLog(const timer_ap_host* host) : host_(host) {}
  void Log(timer_ap_log_level level, std::string_view message) const;
  void Info(std::string_view m) const { Log(TIMER_AP_LOG_INFO, m); }
  void Warn(std::string_view m) const { Log(TIMER_AP_LOG_WARN, m); }

 private:
  const timer_ap_host* host_ = nullptr;  // not owned; outlives the provider
};

// How an action ended. With a `delay`, the action stays ACTIVE that long
// after its work returned and only then takes `state` (unless cancelled
// first): work whose outcome is known at once but must look like it takes
// time (noop's delay_ms) needs no thread that way.
struct Outcome {
  timer_ap_state state = TIMER_AP_STATE_SUCCEEDED;
  std::string error;  // when FAILED or CANCELLED
  std::chrono::milliseconds delay{0};
  // When FAILED (ABI 1.2): UNSPECIFIED reads as PERMANENT at the host.
  timer_ap_error_class error_class = TIMER_AP_ERROR_CLASS_UNSPECIFIED;

  // A FAILED outcome carrying `e`'s message and class.
  static Outcome Failed(const Err& e) {
    Outcome o;
    o.state = TIMER_AP_STATE_FAILED;
    o.error = e.message;
    o.error_class = e.error_class;
    return o;
  }
};

// What an action's work sees: its request id, its cancellation, its
// details. Owned by the ActionRunner; valid while the work function runs,
// on a pool thread (or inline, in start()).
class ActionContext {
 public:
  // True once Cancel() was called (or the provider is being destroyed).
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  // Waits up to `d`; true if cancelled meanwhile.
  bool WaitCancelledFor(std::chrono::milliseconds d);
  // Replaces the action's details (a JSON object) seen by Status().
  void SetDetails(const nlohmann::json& details);
  // The request id start() was given for this action (timerd's
  // JOB_ID/RUN_NUMBER, the same for every attempt of a run): what a
  // provider sends as an idempotency key. Set before the work runs, never
  // changed after.
  const std::string& request_id() const { return request_id_; }

 private:
  friend class ActionRunner;
  std::string request_id_;
  std::mutex* mu_ = nullptr;               // the runner's
  std::condition_variable* cv_ = nullptr;  // the runner's cancel signal
  std::string* details_ = nullptr;         // guarded by *mu_
  std::atomic<bool> cancelled_{false};
};

using Work = std::function<Outcome(ActionContext&)>;

// A snapshot of one action.
struct ActionSnapshot {
  timer_ap_state state = TIMER_AP_STATE_ACTIVE;
  std::string action_id;
  std::string details;
  std::string error;
  timer_ap_error_class error_class = TIMER_AP_ERROR_CLASS_UNSPECIFIED;  // when FAILED
};

// How an ActionRunner is bounded (the provider's config keys).
struct ActionRunnerOptions {
  // Names the keys below in messages, e.g. "plugins.transfer".
  std::string config_prefix = "provider";
  int threads = 4;        // `action_threads`
  int max_queued = 1000;  // `max_queued_actions`
  // How long the destructor waits for running actions to stop once
  // cancelled (`stop_timeout_seconds`); see ~ActionRunner.
  std::chrono::milliseconds stop_timeout{10000};
};

// Runs actions on a bounded pool of threads and remembers them until
// released: at most `threads` actions run at once and at most
// `max_queued` more wait for a thread; a start beyond that is refused with
// RESOURCE_EXHAUSTED (nothing started, the request id not remembered, so
// the caller may retry). Threads are made as actions need them, up to
// `threads`, and kept until the runner is destroyed; a provider whose work
// all runs inline (noop) never makes one.
class ActionRunner {
 public:
  using Options = ActionRunnerOptions;

  explicit ActionRunner(Options options = Options(), HostLog log = HostLog());
  ActionRunner(const ActionRunner&) = delete;
  ActionRunner& operator=(const ActionRunner&) = delete;
  // Cancels every action, drops the queued ones and waits up to
  // `stop_timeout` for the running ones to return. Actions still running
  // then (work stuck in a system call) are logged by id and left behind:
  // their threads are detached, the state they use is kept alive by them,
  // and the shared object they run in is pinned (RTLD_NODELETE) so the
  // host's dlclose() cannot unmap it under them. The process is expected to
  // exit soon after (timerd destroys providers on shutdown only).
  ~ActionRunner();

  // Starts `work` unless an unreleased action already has `request_id`, in
  // which case returns that one and sets *created to false. `on_created`
  // runs under the runner's lock exactly once per new action, before the
  // work starts (noop's record file uses it).
  // With `run_inline`, the work runs on the calling thread before Start
  // returns (for work known to take no time), so no thread is used for it.
  // RESOURCE_EXHAUSTED when every thread is busy and the queue is full.
  Err Start(std::string_view request_id, Work work,
            const std::function<void(std::string_view action_id)>& on_created,
            ActionSnapshot* out, bool* created, bool run_inline = false);
  // True (and *out set) if an unreleased action has `request_id`.
  bool FindRequest(std::string_view request_id, ActionSnapshot* out);
  Err Status(std::string_view action_id, ActionSnapshot* out);
  Err Cancel(std::string_view action_id);
  Err Release(std::string_view action_id);

  // Actions running on a thread, and waiting for one; for tests.
  int running() const;
  int queued() const;
  int threads() const;

 private:
  struct Action;
  struct State;
  static void WorkerLoop(std::shared_ptr<State> s);
  static Outcome RunWork(Work& work, ActionContext& ctx);
  // Applies a delayed outcome that has come due. Requires the lock.
  static void Settle(Action& a);
  static ActionSnapshot Snap(Action& a);  // settles first; requires the lock

  const Options options_;
  const HostLog log_;
  // Shared with the pool threads, so that one left running past the
  // destructor's deadline never touches freed memory.
  const std::shared_ptr<State> s_;
};

// Base of a C++ provider. The glue in MakeApi() parses bodies, converts
// errors and catches exceptions; a provider implements Plan().
class ProviderBase {
 public:
  explicit ProviderBase(ActionRunner::Options options = ActionRunner::Options(),
                        HostLog log = HostLog())
      : runner_(std::move(options), log) {}
  virtual ~ProviderBase() = default;

  // Checks `body` (already parsed; an object) for `owner`. With `work`
  // non-null, also builds the work that carries out the action.
  // [thread-safe]
  virtual Err Plan(const Identity& owner, const nlohmann::json& body, Work* work) = 0;

  // True if the work Plan() builds for `body` finishes at once: it then runs
  // inside start() and the action is already final when start() returns.
  virtual bool RunsInline(const nlohmann::json& body) const { return false; }

  // What `caller` may see of this instance's configuration (ABI 1.1's
  // describe()): a JSON object, never holding a secret. [thread-safe]
  virtual nlohmann::json Describe(const Identity& caller) const {
    (void)caller;
    return nlohmann::json::object();
  }

  // Called once per newly created action, under the runner's lock.
  virtual void OnCreated(std::string_view request_id, std::string_view action_id) {}

  ActionRunner& runner() { return runner_; }

 private:
  ActionRunner runner_;
};

// Creates a provider from its parsed configuration. Must not throw past
// MakeApi's glue (it is caught there, but return an Err instead).
using CreateFn = Err (*)(const nlohmann::json& config, HostLog log,
                         std::unique_ptr<ProviderBase>* out);

// A table for a provider; `name` etc. must be static strings.
timer_ap_api MakeApi(std::string_view name, std::string_view version,
                     std::string_view description, std::string_view input_schema,
                     timer_ap_error* (*create)(timer_ap_str, const timer_ap_host*,
                                               timer_ap_provider**));

// The body of a provider's create(): parses the config, calls `fn`.
timer_ap_error* CreateWith(CreateFn fn, timer_ap_str config_json,
                           const timer_ap_host* host, timer_ap_provider** out) noexcept;

// Reads typed fields of a JSON object, collecting the first error, and
// refuses keys it was not asked about (a typo must not silently default).
class FieldReader {
 public:
  FieldReader(const nlohmann::json& obj, std::string prefix)
      : obj_(obj), prefix_(std::move(prefix)) {}
  bool Bool(const char* key, bool def);
  int64_t Int(const char* key, int64_t def, int64_t min, int64_t max);
  std::string String(const char* key, const std::string& def, bool required = false);
  const nlohmann::json* Raw(const char* key);  // nullptr when absent
  // Call last: fails on keys no accessor asked about.
  Err Finish();
  const Err& err() const { return err_; }
  std::string Name(const char* key) const;
  const std::string& prefix() const { return prefix_; }

 private:
  void Fail(Err e) {
    if (err_.ok()) err_ = std::move(e);
  }
  const nlohmann::json& obj_;
  std::string prefix_;
  std::vector<std::string> seen_;
  Err err_;
};

// The runner's keys of a provider's config table, read through `r` (whose
// prefix names them): action_threads, max_queued_actions and
// stop_timeout_seconds.
ActionRunner::Options ReadRunnerOptions(FieldReader& r);

}  // namespace timer::plugins
