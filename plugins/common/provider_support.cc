#include "provider_support.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

// The opaque error of the ABI, as every provider built from this tree
// defines it (each plugin has its own copy; the host never looks inside).
struct timer_ap_error {
  timer_ap_code code;
  std::string message;
  timer_ap_error_class error_class;
};

namespace timer::plugins {
namespace {

timer_ap_error* ToC(Err e) noexcept {
  if (e.ok()) return nullptr;
  try {
    return new timer_ap_error{e.code, std::move(e.message), e.error_class};
  } catch (...) {
    // Out of memory while reporting an error: a static fallback would need
    // a destroy that knows it; std::terminate is the honest answer.
    std::terminate();
  }
}

timer_ap_code ErrorCode(const timer_ap_error* e) { return e->code; }
timer_ap_str ErrorMessage(const timer_ap_error* e) { return Str(e->message); }
void ErrorDestroy(timer_ap_error* e) { delete e; }
timer_ap_error_class ErrorClass(const timer_ap_error* e) { return e->error_class; }

// One malloc block: the struct, then the three strings back to back.
timer_ap_status* ToC(const ActionSnapshot& s) {
  size_t n =
      sizeof(timer_ap_status) + s.action_id.size() + s.details.size() + s.error.size();
  auto* block = static_cast<char*>(std::malloc(n));
  if (block == nullptr) throw std::bad_alloc();
  auto* st = reinterpret_cast<timer_ap_status*>(block);
  char* p = block + sizeof(timer_ap_status);
  auto put = [&p](const std::string& v) {
    timer_ap_str r{p, v.size()};
    if (!v.empty()) std::memcpy(p, v.data(), v.size());
    p += v.size();
    return r;
  };
  st->struct_size = sizeof(timer_ap_status);
  st->state = s.state;
  st->action_id = put(s.action_id);
  st->details = put(s.details);
  st->error = put(s.error);
  st->error_class =
      s.state == TIMER_AP_STATE_FAILED ? s.error_class : TIMER_AP_ERROR_CLASS_UNSPECIFIED;
  return st;
}
void StatusDestroy(timer_ap_status* s) { std::free(s); }

timer_ap_description* ToDescription(const std::string& json) {
  auto* block =
      static_cast<char*>(std::malloc(sizeof(timer_ap_description) + json.size()));
  if (block == nullptr) throw std::bad_alloc();
  auto* d = reinterpret_cast<timer_ap_description*>(block);
  char* p = block + sizeof(timer_ap_description);
  if (!json.empty()) std::memcpy(p, json.data(), json.size());
  d->struct_size = sizeof(timer_ap_description);
  d->json = timer_ap_str{p, json.size()};
  return d;
}
void DescriptionDestroy(timer_ap_description* d) { std::free(d); }

ProviderBase* Self(timer_ap_provider* p) { return reinterpret_cast<ProviderBase*>(p); }

Identity ToIdentity(const timer_ap_identity* id) {
  Identity r;
  if (id != nullptr) {
    r.name = std::string(View(id->name));
    r.auth_method = std::string(View(id->auth_method));
  }
  return r;
}

// Runs `f` (returning Err), converting any exception into INTERNAL.
template <typename F>
timer_ap_error* Guard(F&& f) noexcept {
  try {
    return ToC(f());
  } catch (const std::exception& e) {
    return ToC(Internal(std::string("provider: ") + e.what()));
  } catch (...) {
    return ToC(Internal("provider: unknown exception"));
  }
}

Err ParseBody(timer_ap_str body, nlohmann::json* out) {
  auto parsed = nlohmann::json::parse(View(body), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InvalidArgument("body: not valid JSON");
  if (!parsed.is_object()) return InvalidArgument("body: must be a JSON object");
  *out = std::move(parsed);
  return Ok();
}

timer_ap_error* Validate(timer_ap_provider* p, const timer_ap_identity* owner,
                         timer_ap_str body) {
  return Guard([&] {
    nlohmann::json j;
    Err e = ParseBody(body, &j);
    if (!e.ok()) return e;
    return Self(p)->Plan(ToIdentity(owner), j, nullptr);
  });
}

timer_ap_error* Start(timer_ap_provider* p, timer_ap_str request_id,
                      const timer_ap_identity* owner, timer_ap_str body,
                      timer_ap_status** out) {
  return Guard([&] {
    if (request_id.size == 0) return InvalidArgument("request_id: must not be empty");
    ProviderBase* self = Self(p);
    ActionSnapshot snap;
    // A repeat of a known request returns the existing action without even
    // looking at the body: the first start's body is the one that counts.
    if (self->runner().FindRequest(View(request_id), &snap)) {
      *out = ToC(snap);
      return Ok();
    }
    nlohmann::json j;
    Err e = ParseBody(body, &j);
    if (!e.ok()) return e;
    Work work;
    e = self->Plan(ToIdentity(owner), j, &work);
    if (!e.ok()) return e;
    bool created = false;
    std::string rid(View(request_id));
    e = self->runner().Start(
        rid, std::move(work),
        [&](std::string_view action_id) { self->OnCreated(rid, action_id); }, &snap,
        &created, self->RunsInline(j));
    if (!e.ok()) return e;
    *out = ToC(snap);
    return Ok();
  });
}

timer_ap_error* GetStatus(timer_ap_provider* p, timer_ap_str action_id,
                          timer_ap_status** out) {
  return Guard([&] {
    ActionSnapshot snap;
    Err e = Self(p)->runner().Status(View(action_id), &snap);
    if (!e.ok()) return e;
    *out = ToC(snap);
    return Ok();
  });
}

timer_ap_error* Describe(timer_ap_provider* p, const timer_ap_identity* caller,
                         timer_ap_description** out) {
  return Guard([&] {
    nlohmann::json j = Self(p)->Describe(ToIdentity(caller));
    if (!j.is_object()) return Internal("provider: describe made no JSON object");
    // Replacement for invalid UTF-8, so dump() never throws on a name.
    *out =
        ToDescription(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return Ok();
  });
}

timer_ap_error* Cancel(timer_ap_provider* p, timer_ap_str action_id) {
  return Guard([&] { return Self(p)->runner().Cancel(View(action_id)); });
}

timer_ap_error* Release(timer_ap_provider* p, timer_ap_str action_id) {
  return Guard([&] { return Self(p)->runner().Release(View(action_id)); });
}

void Destroy(timer_ap_provider* p) {
  try {
    delete Self(p);
  } catch (...) {
    // A destructor that throws is a bug; never let it cross the boundary.
  }
}

std::string NewActionId() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 2; ++i) {
    uint64_t v = rng();
    for (int k = 0; k < 16; ++k) s.push_back(hex[(v >> (4 * k)) & 0xf]);
  }
  return s;
}

}  // namespace

void HostLog::Log(timer_ap_log_level level, std::string_view message) const {
  if (host_ != nullptr && host_->log != nullptr)
    host_->log(host_->context, level, Str(message));
}

bool ActionContext::WaitCancelledFor(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(*mu_);
  return cv_->wait_for(lock, d, [this] { return cancelled(); });
}

void ActionContext::SetDetails(const nlohmann::json& details) {
  std::string s = details.dump();
  std::lock_guard<std::mutex> lock(*mu_);
  *details_ = std::move(s);
}

struct ActionRunner::Action {
  enum class Phase { kQueued, kRunning, kDone };
  std::string id;
  std::string request_id;
  timer_ap_state state = TIMER_AP_STATE_ACTIVE;
  std::string details = "{}";
  std::string error;
  Phase phase = Phase::kQueued;
  Work work;  // until a pool thread takes it
  ActionContext ctx;
  // A delayed outcome (Outcome::delay): applied by Settle() once due.
  bool delayed = false;
  std::chrono::steady_clock::time_point due;
  timer_ap_state due_state = TIMER_AP_STATE_SUCCEEDED;
  std::string due_error;
  timer_ap_error_class error_class = TIMER_AP_ERROR_CLASS_UNSPECIFIED;
  timer_ap_error_class due_error_class = TIMER_AP_ERROR_CLASS_UNSPECIFIED;
};

struct ActionRunner::State {
  std::mutex mu;
  std::condition_variable work_cv;    // the queue got an action, or stopping
  std::condition_variable cancel_cv;  // an action was cancelled
  std::condition_variable idle_cv;    // a pool thread finished an action or exited
  bool stopping = false;
  std::map<std::string, std::shared_ptr<Action>, std::less<>> by_id;
  std::map<std::string, std::shared_ptr<Action>, std::less<>> by_request;
  std::deque<std::shared_ptr<Action>> queue;
  // Running on a pool thread, released or not.
  std::set<std::shared_ptr<Action>> running;
  std::vector<std::thread> threads;
  int live_threads = 0;  // started and not yet returned
};

namespace {

// Keeps the shared object this code is in mapped for the rest of the
// process, whatever the host's dlclose() does: threads left running past
// the stop deadline still execute it.
void PinThisModule() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&PinThisModule), &info) != 0 &&
      info.dli_fname != nullptr) {
    // The handle is leaked on purpose: RTLD_NODELETE is what matters.
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  }
}

}  // namespace

ActionRunner::ActionRunner(Options options, HostLog log)
    : options_(std::move(options)), log_(log), s_(std::make_shared<State>()) {}

ActionRunner::~ActionRunner() {
  std::vector<std::thread> threads;
  std::vector<std::string> stuck;
  {
    std::unique_lock<std::mutex> lock(s_->mu);
    s_->stopping = true;
    for (auto& a : s_->queue) {
      a->phase = Action::Phase::kDone;
      a->state = TIMER_AP_STATE_CANCELLED;
      a->error = "cancelled: the provider stopped before the action started";
      a->work = nullptr;
    }
    s_->queue.clear();
    for (auto& a : s_->running) a->ctx.cancelled_ = true;
    s_->work_cv.notify_all();
    s_->cancel_cv.notify_all();
    const bool all_returned = s_->idle_cv.wait_for(
        lock, options_.stop_timeout, [this] { return s_->live_threads == 0; });
    if (all_returned) {
      threads = std::move(s_->threads);
    } else {
      for (auto& a : s_->running) stuck.push_back(a->id);
      for (auto& t : s_->threads) t.detach();
      s_->threads.clear();
    }
  }
  for (auto& t : threads) t.join();
  if (!stuck.empty()) {
    std::string ids;
    for (const std::string& id : stuck) ids += (ids.empty() ? "" : ", ") + id;
    log_.Warn(std::to_string(stuck.size()) + " action(s) still running " +
              std::to_string(options_.stop_timeout.count()) +
              " ms after being cancelled (" + options_.config_prefix +
              ".stop_timeout_seconds); left running, not waited for: " + ids);
    PinThisModule();
  }
}

void ActionRunner::Settle(Action& a) {
  if (a.delayed && a.state == TIMER_AP_STATE_ACTIVE &&
      std::chrono::steady_clock::now() >= a.due) {
    a.state = a.due_state;
    a.error = a.due_error;
    a.error_class = a.due_error_class;
  }
}

ActionSnapshot ActionRunner::Snap(Action& a) {
  Settle(a);
  return ActionSnapshot{a.state, a.id, a.details, a.error, a.error_class};
}

Outcome ActionRunner::RunWork(Work& work, ActionContext& ctx) {
  try {
    return work(ctx);
  } catch (const std::exception& e) {
    return Outcome{TIMER_AP_STATE_FAILED, std::string("internal error: ") + e.what()};
  } catch (...) {
    return Outcome{TIMER_AP_STATE_FAILED, "internal error"};
  }
}

void ActionRunner::WorkerLoop(std::shared_ptr<State> s) {
  std::unique_lock<std::mutex> lock(s->mu);
  for (;;) {
    s->work_cv.wait(lock, [&] { return s->stopping || !s->queue.empty(); });
    if (s->queue.empty()) break;  // stopping, and nothing is left to take
    std::shared_ptr<Action> a = std::move(s->queue.front());
    s->queue.pop_front();
    a->phase = Action::Phase::kRunning;
    s->running.insert(a);
    Work work = std::move(a->work);
    a->work = nullptr;
    lock.unlock();
    Outcome out = RunWork(work, a->ctx);
    work = nullptr;  // destroy captured state before saying we are done
    lock.lock();
    a->phase = Action::Phase::kDone;
    a->state = out.state;
    a->error = std::move(out.error);
    a->error_class = out.error_class;
    s->running.erase(a);
    s->idle_cv.notify_all();
    // The last reference to a released action may be this one: drop it
    // outside the lock.
    lock.unlock();
    a.reset();
    lock.lock();
  }
  --s->live_threads;
  s->idle_cv.notify_all();
}

Err ActionRunner::Start(std::string_view request_id, Work work,
                        const std::function<void(std::string_view)>& on_created,
                        ActionSnapshot* out, bool* created, bool run_inline) {
  std::shared_ptr<Action> inline_action;
  {
    std::lock_guard<std::mutex> lock(s_->mu);
    if (auto it = s_->by_request.find(request_id); it != s_->by_request.end()) {
      *out = Snap(*it->second);
      *created = false;
      return Ok();
    }
    if (s_->stopping) return Unavailable("provider is shutting down");
    const size_t busy = s_->running.size() + s_->queue.size();
    const size_t capacity =
        static_cast<size_t>(options_.threads) + static_cast<size_t>(options_.max_queued);
    if (!run_inline && busy >= capacity) {
      // At capacity: nothing started, so trying again later may well work.
      return Transient(ResourceExhausted(
          options_.config_prefix + ".max_queued_actions (" +
          std::to_string(options_.max_queued) +
          ") reached: " + std::to_string(s_->running.size()) + " actions running (" +
          options_.config_prefix + ".action_threads " + std::to_string(options_.threads) +
          ") and " + std::to_string(s_->queue.size()) +
          " waiting); nothing was started, retry later"));
    }
    if (!run_inline && s_->threads.size() < static_cast<size_t>(options_.threads) &&
        busy + 1 > s_->threads.size()) {
      // One more thread while every thread has work; none when one is free.
      try {
        s_->threads.emplace_back(&ActionRunner::WorkerLoop, s_);
        ++s_->live_threads;
      } catch (const std::system_error& e) {
        // The host is out of threads: queue behind the threads there are.
        if (s_->threads.empty())
          return Unavailable(std::string("cannot start a thread: ") + e.what());
      }
    }
    auto a = std::make_shared<Action>();
    a->id = NewActionId();
    a->request_id = std::string(request_id);
    a->ctx.request_id_ = a->request_id;
    a->ctx.mu_ = &s_->mu;
    a->ctx.cv_ = &s_->cancel_cv;
    a->ctx.details_ = &a->details;
    if (on_created) on_created(a->id);
    if (run_inline) {
      a->phase = Action::Phase::kRunning;
      inline_action = a;
    } else {
      a->work = std::move(work);
      s_->queue.push_back(a);
      s_->work_cv.notify_one();
    }
    s_->by_request[a->request_id] = a;
    s_->by_id[a->id] = a;
    *out = Snap(*a);
    *created = true;
  }
  if (inline_action != nullptr) {
    // Not yet visible to Release (the caller has no action id), so it stays
    // as it is until this returns.
    Outcome o = RunWork(work, inline_action->ctx);
    work = nullptr;
    std::lock_guard<std::mutex> lock(s_->mu);
    Action& a = *inline_action;
    a.phase = Action::Phase::kDone;
    if (o.delay.count() > 0 && a.ctx.cancelled()) {
      a.state = TIMER_AP_STATE_CANCELLED;
      a.error = "cancelled";
    } else if (o.delay.count() > 0) {
      a.delayed = true;
      a.due = std::chrono::steady_clock::now() + o.delay;
      a.due_state = o.state;
      a.due_error = std::move(o.error);
      a.due_error_class = o.error_class;
    } else if (a.state == TIMER_AP_STATE_ACTIVE) {
      a.state = o.state;
      a.error = std::move(o.error);
      a.error_class = o.error_class;
    }
    *out = Snap(a);
  }
  return Ok();
}

bool ActionRunner::FindRequest(std::string_view request_id, ActionSnapshot* out) {
  std::lock_guard<std::mutex> lock(s_->mu);
  auto it = s_->by_request.find(request_id);
  if (it == s_->by_request.end()) return false;
  *out = Snap(*it->second);
  return true;
}

Err ActionRunner::Status(std::string_view action_id, ActionSnapshot* out) {
  std::lock_guard<std::mutex> lock(s_->mu);
  auto it = s_->by_id.find(action_id);
  if (it == s_->by_id.end()) return NotFound("action_id: no such action");
  *out = Snap(*it->second);
  return Ok();
}

Err ActionRunner::Cancel(std::string_view action_id) {
  Work dropped;  // a queued action's work, freed after the lock is released
  std::lock_guard<std::mutex> lock(s_->mu);
  auto it = s_->by_id.find(action_id);
  if (it == s_->by_id.end()) return NotFound("action_id: no such action");
  Action& a = *it->second;
  Settle(a);
  a.ctx.cancelled_ = true;
  if (a.state == TIMER_AP_STATE_ACTIVE && a.phase != Action::Phase::kRunning) {
    // Queued (it never ran) or delayed (its work is done): it ends now.
    if (a.phase == Action::Phase::kQueued) {
      auto q = std::find(s_->queue.begin(), s_->queue.end(), it->second);
      if (q != s_->queue.end()) s_->queue.erase(q);
      a.phase = Action::Phase::kDone;
      dropped = std::move(a.work);
    }
    a.state = TIMER_AP_STATE_CANCELLED;
    a.error = "cancelled";
  }
  s_->cancel_cv.notify_all();
  return Ok();
}

Err ActionRunner::Release(std::string_view action_id) {
  std::shared_ptr<Action> a;
  {
    std::lock_guard<std::mutex> lock(s_->mu);
    auto it = s_->by_id.find(action_id);
    if (it == s_->by_id.end()) return NotFound("action_id: no such action");
    a = std::move(it->second);
    s_->by_id.erase(it);
    s_->by_request.erase(a->request_id);
    if (a->phase == Action::Phase::kQueued) {
      auto q = std::find(s_->queue.begin(), s_->queue.end(), a);
      if (q != s_->queue.end()) s_->queue.erase(q);
    }
    // Released while running: its thread stops it soon and drops the last
    // reference.
    a->ctx.cancelled_ = true;
    s_->cancel_cv.notify_all();
  }
  // `a` (and a queued action's work) is freed here, outside the lock,
  // unless a pool thread still holds it.
  return Ok();
}

int ActionRunner::running() const {
  std::lock_guard<std::mutex> lock(s_->mu);
  return static_cast<int>(s_->running.size());
}

int ActionRunner::queued() const {
  std::lock_guard<std::mutex> lock(s_->mu);
  return static_cast<int>(s_->queue.size());
}

int ActionRunner::threads() const {
  std::lock_guard<std::mutex> lock(s_->mu);
  return static_cast<int>(s_->threads.size());
}

timer_ap_api MakeApi(std::string_view name, std::string_view version,
                     std::string_view description, std::string_view input_schema,
                     timer_ap_error* (*create)(timer_ap_str, const timer_ap_host*,
                                               timer_ap_provider**)) {
  timer_ap_api api{};
  api.struct_size = sizeof(timer_ap_api);
  api.abi_major = TIMER_AP_ABI_MAJOR;
  api.abi_minor = TIMER_AP_ABI_MINOR;
  api.name = Str(name);
  api.version = Str(version);
  api.description = Str(description);
  api.input_schema = Str(input_schema);
  api.error_code = &ErrorCode;
  api.error_message = &ErrorMessage;
  api.error_destroy = &ErrorDestroy;
  api.create = create;
  api.destroy = &Destroy;
  api.validate = &Validate;
  api.start = &Start;
  api.status = &GetStatus;
  api.cancel = &Cancel;
  api.release = &Release;
  api.status_destroy = &StatusDestroy;
  api.describe = &Describe;
  api.description_destroy = &DescriptionDestroy;
  api.error_class = &ErrorClass;
  return api;
}

timer_ap_error* CreateWith(CreateFn fn, timer_ap_str config_json,
                           const timer_ap_host* host, timer_ap_provider** out) noexcept {
  return Guard([&] {
    nlohmann::json config = nlohmann::json::object();
    if (config_json.size != 0) {
      config = nlohmann::json::parse(View(config_json), nullptr, false);
      if (config.is_discarded()) return InvalidArgument("config: not valid JSON");
      if (!config.is_object()) return InvalidArgument("config: must be a JSON object");
    }
    std::unique_ptr<ProviderBase> p;
    Err e = fn(config, HostLog(host), &p);
    if (!e.ok()) return e;
    *out = reinterpret_cast<timer_ap_provider*>(p.release());
    return Ok();
  });
}

ActionRunner::Options ReadRunnerOptions(FieldReader& r) {
  ActionRunner::Options o;
  o.config_prefix = r.prefix();
  o.threads = static_cast<int>(r.Int("action_threads", o.threads, 1, 256));
  o.max_queued = static_cast<int>(r.Int("max_queued_actions", o.max_queued, 0, 1000000));
  o.stop_timeout = std::chrono::seconds(r.Int("stop_timeout_seconds", 10, 0, 3600));
  return o;
}

std::string FieldReader::Name(const char* key) const {
  return prefix_.empty() ? std::string(key) : prefix_ + "." + key;
}

const nlohmann::json* FieldReader::Raw(const char* key) {
  seen_.emplace_back(key);
  auto it = obj_.find(key);
  return it == obj_.end() ? nullptr : &*it;
}

bool FieldReader::Bool(const char* key, bool def) {
  const nlohmann::json* v = Raw(key);
  if (v == nullptr || v->is_null()) return def;
  if (!v->is_boolean()) {
    Fail(InvalidArgument(Name(key) + ": must be true or false"));
    return def;
  }
  return v->get<bool>();
}

int64_t FieldReader::Int(const char* key, int64_t def, int64_t min, int64_t max) {
  const nlohmann::json* v = Raw(key);
  if (v == nullptr || v->is_null()) return def;
  if (!v->is_number_integer() ||
      (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(max)) ||
      v->get<int64_t>() < min || v->get<int64_t>() > max) {
    Fail(InvalidArgument(Name(key) + ": must be an integer from " + std::to_string(min) +
                         " to " + std::to_string(max)));
    return def;
  }
  return v->get<int64_t>();
}

std::string FieldReader::String(const char* key, const std::string& def, bool required) {
  const nlohmann::json* v = Raw(key);
  if (v == nullptr || v->is_null()) {
    if (required) Fail(InvalidArgument(Name(key) + ": required"));
    return def;
  }
  if (!v->is_string()) {
    Fail(InvalidArgument(Name(key) + ": must be a string"));
    return def;
  }
  return v->get<std::string>();
}

Err FieldReader::Finish() {
  if (!err_.ok()) return err_;
  for (const auto& [k, v] : obj_.items()) {
    bool known = false;
    for (const auto& s : seen_) known = known || s == k;
    if (!known) return InvalidArgument(Name(k.c_str()) + ": unknown field");
  }
  return Ok();
}

}  // namespace timer::plugins
