#include "provider_support.h"

#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>

// The opaque error of the ABI, as every provider built from this tree
// defines it (each plugin has its own copy; the host never looks inside).
struct timer_ap_error {
  timer_ap_code code;
  std::string message;
};

namespace timer::plugins {
namespace {

timer_ap_error* ToC(Err e) noexcept {
  if (e.ok()) return nullptr;
  try {
    return new timer_ap_error{e.code, std::move(e.message)};
  } catch (...) {
    // Out of memory while reporting an error: a static fallback would need
    // a destroy that knows it; std::terminate is the honest answer.
    std::terminate();
  }
}

timer_ap_code ErrorCode(const timer_ap_error* e) { return e->code; }
timer_ap_str ErrorMessage(const timer_ap_error* e) { return Str(e->message); }
void ErrorDestroy(timer_ap_error* e) { delete e; }

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
  return st;
}
void StatusDestroy(timer_ap_status* s) { std::free(s); }

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

ActionRunner::~ActionRunner() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& [id, a] : by_id_) {
      a->ctx.cancelled_ = true;
      if (a->thread.joinable()) threads.push_back(std::move(a->thread));
    }
    for (auto& t : orphans_) threads.push_back(std::move(t));
    orphans_.clear();
    for (auto& a : releasing_) {
      a->ctx.cancelled_ = true;
      if (a->thread.joinable()) threads.push_back(std::move(a->thread));
    }
    cv_.notify_all();
  }
  for (auto& t : threads) t.join();
}

ActionSnapshot ActionRunner::Snap(const Action& a) {
  return ActionSnapshot{a.state, a.id, a.details, a.error};
}

std::vector<std::thread> ActionRunner::TakeFinishedThreads() {
  std::vector<std::thread> done;
  for (auto& [id, a] : by_id_) {
    if (a->thread_done && a->thread.joinable()) done.push_back(std::move(a->thread));
  }
  for (auto& t : orphans_) done.push_back(std::move(t));
  orphans_.clear();
  for (auto it = releasing_.begin(); it != releasing_.end();) {
    if ((*it)->thread_done) {
      // Joining needs the Action's std::thread; keep the object alive by
      // moving the thread out first (the thread no longer touches it).
      done.push_back(std::move((*it)->thread));
      it = releasing_.erase(it);
    } else {
      ++it;
    }
  }
  return done;
}

void ActionRunner::Run(Action* a, Work work) {
  Outcome out;
  try {
    out = work(a->ctx);
  } catch (const std::exception& e) {
    out = Outcome{TIMER_AP_STATE_FAILED, std::string("internal error: ") + e.what()};
  } catch (...) {
    out = Outcome{TIMER_AP_STATE_FAILED, "internal error"};
  }
  work = nullptr;  // destroy captured state before saying we are done
  std::lock_guard<std::mutex> lock(mu_);
  a->state = out.state;
  a->error = std::move(out.error);
  a->thread_done = true;
}

Err ActionRunner::Start(std::string_view request_id, Work work,
                        const std::function<void(std::string_view)>& on_created,
                        ActionSnapshot* out, bool* created, bool run_inline) {
  std::vector<std::thread> finished;
  Err result;
  Action* inline_action = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    finished = TakeFinishedThreads();
    if (auto it = by_request_.find(request_id); it != by_request_.end()) {
      *out = Snap(*it->second);
      *created = false;
    } else if (stopping_) {
      result = Unavailable("provider is shutting down");
    } else {
      auto a = std::make_unique<Action>();
      a->id = NewActionId();
      a->request_id = std::string(request_id);
      a->ctx.mu_ = &mu_;
      a->ctx.cv_ = &cv_;
      a->ctx.details_ = &a->details;
      if (on_created) on_created(a->id);
      Action* raw = a.get();
      if (run_inline) {
        inline_action = raw;
      } else {
        raw->thread = std::thread(
            [this, raw, w = std::move(work)]() mutable { Run(raw, std::move(w)); });
      }
      by_request_[raw->request_id] = raw;
      *out = Snap(*raw);
      *created = true;
      by_id_[raw->id] = std::move(a);
    }
  }
  if (inline_action != nullptr) {
    // Not yet visible to Release (the caller has no action id), so it stays alive.
    Run(inline_action, std::move(work));
    std::lock_guard<std::mutex> lock(mu_);
    *out = Snap(*inline_action);
  }
  for (auto& t : finished) t.join();
  return result;
}

bool ActionRunner::FindRequest(std::string_view request_id, ActionSnapshot* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_request_.find(request_id);
  if (it == by_request_.end()) return false;
  *out = Snap(*it->second);
  return true;
}

Err ActionRunner::Status(std::string_view action_id, ActionSnapshot* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(action_id);
  if (it == by_id_.end()) return NotFound("action_id: no such action");
  *out = Snap(*it->second);
  return Ok();
}

Err ActionRunner::Cancel(std::string_view action_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(action_id);
  if (it == by_id_.end()) return NotFound("action_id: no such action");
  it->second->ctx.cancelled_ = true;
  cv_.notify_all();
  return Ok();
}

Err ActionRunner::Release(std::string_view action_id) {
  std::vector<std::thread> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_id_.find(action_id);
    if (it == by_id_.end()) return NotFound("action_id: no such action");
    std::unique_ptr<Action> a = std::move(it->second);
    by_request_.erase(a->request_id);
    by_id_.erase(it);
    if (a->state == TIMER_AP_STATE_ACTIVE) {
      // Released while running: stop it and forget it once its thread ends.
      a->ctx.cancelled_ = true;
      cv_.notify_all();
      releasing_.push_back(std::move(a));
    } else if (a->thread.joinable()) {
      // The state is final but the thread may be a few instructions from
      // returning; join it outside the lock.
      orphans_.push_back(std::move(a->thread));
    }
    finished = TakeFinishedThreads();
  }
  for (auto& t : finished) t.join();
  return Ok();
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
