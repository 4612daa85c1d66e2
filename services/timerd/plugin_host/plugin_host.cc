#include "plugin_host/plugin_host.h"

#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "util/escape.h"
#include "util/file_trust.h"

namespace timer::plugin_host {
namespace {

// Largest details / error text kept from a provider's status; more is
// replaced by a note (details) or cut (error).
constexpr size_t kMaxDetailsBytes = 64 << 10;
constexpr size_t kMaxErrorBytes = 4 << 10;

timer_ap_str Str(absl::string_view s) { return {s.data(), s.size()}; }
std::string String(timer_ap_str s) {
  return s.data == nullptr ? std::string() : std::string(s.data, s.size);
}

absl::Status Refused(const std::string& path, absl::string_view why) {
  return absl::FailedPreconditionError(absl::StrCat(path, ": ", why));
}

// Provider names become job fields, config table keys and file names.
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// Every function pointer of ABI 1.0 must be set.
bool TableComplete(const timer_ap_api* a) {
  return a->error_code && a->error_message && a->error_destroy && a->create &&
         a->destroy && a->validate && a->start && a->status && a->cancel && a->release &&
         a->status_destroy;
}

timer_ap_identity ToC(const domain::Identity& id) {
  timer_ap_identity r{};
  r.struct_size = sizeof(r);
  r.name = Str(id.name);
  r.auth_method = Str(id.auth_method);
  return r;
}

}  // namespace

Plugin::Plugin(std::string path, void* handle, const timer_ap_api* api)
    : path_(std::move(path)), handle_(handle), api_(api) {
  host_.struct_size = sizeof(host_);
  host_.context = this;
  host_.log = &Plugin::HostLog;
  info_.set_name(String(api->name));
  info_.set_version(String(api->version));
  info_.set_description(String(api->description));
  info_.set_input_schema(String(api->input_schema));
  info_.set_abi_version(absl::StrCat(api->abi_major, ".", api->abi_minor));
}

Plugin::~Plugin() {
  if (provider_ != nullptr) api_->destroy(provider_);
  dlclose(handle_);
}

void Plugin::HostLog(void* context, timer_ap_log_level level, timer_ap_str message) {
  const auto* self = static_cast<const Plugin*>(context);
  spdlog::level::level_enum l = spdlog::level::info;
  switch (level) {
    case TIMER_AP_LOG_DEBUG:
      l = spdlog::level::debug;
      break;
    case TIMER_AP_LOG_INFO:
      l = spdlog::level::info;
      break;
    case TIMER_AP_LOG_WARN:
      l = spdlog::level::warn;
      break;
    case TIMER_AP_LOG_ERROR:
      l = spdlog::level::err;
      break;
  }
  // A provider's words may carry what a job's owner wrote (paths, ...).
  spdlog::log(l, "provider {}: {}", self->info_.name(),
              util::Escaped(String(message), kMaxErrorBytes));
}

namespace {
// A class as a provider may hand it back (any bits): UNSPECIFIED and
// anything unknown read as PERMANENT.
v1::ErrorClass ClassOf(std::underlying_type_t<timer_ap_error_class> c) {
  switch (c) {
    case TIMER_AP_ERROR_CLASS_TRANSIENT:
      return v1::ERROR_CLASS_TRANSIENT;
    case TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION:
      return v1::ERROR_CLASS_NEEDS_ATTENTION;
    default:
      return v1::ERROR_CLASS_PERMANENT;
  }
}
}  // namespace

absl::Status Plugin::ToStatus(timer_ap_error* error) const {
  if (error == nullptr) return absl::OkStatus();
  int code = api_->error_code(error);
  std::string message = String(api_->error_message(error));
  // ABI 1.2: a 1.0/1.1 table has no error_class, a 1.2 one may leave it NULL.
  v1::ErrorClass error_class = v1::ERROR_CLASS_PERMANENT;
  if (TIMER_AP_HAS_FIELD(timer_ap_api, api_, error_class) &&
      api_->error_class != nullptr) {
    timer_ap_error_class c = api_->error_class(error);
    std::underlying_type_t<timer_ap_error_class> raw;
    std::memcpy(&raw, &c, sizeof raw);
    error_class = ClassOf(raw);
  }
  api_->error_destroy(error);
  if (message.size() > kMaxErrorBytes) {
    message.resize(kMaxErrorBytes);
    message += " [truncated]";
  }
  if (code <= 0 || code > 16) {
    return absl::UnknownError(absl::StrCat("provider ", info_.name(),
                                           " returned error code ", code, ": ", message));
  }
  return domain::WithErrorClass(
      absl::Status(static_cast<absl::StatusCode>(code), message), error_class);
}

absl::StatusOr<domain::ActionStatus> Plugin::TakeStatus(timer_ap_status* st) const {
  if (st == nullptr) {
    return absl::InternalError(
        absl::StrCat("provider ", info_.name(), " returned no status"));
  }
  domain::ActionStatus out;
  absl::Status bad;
  if (!TIMER_AP_HAS_FIELD(timer_ap_status, st, error)) {
    bad = absl::InternalError(
        absl::StrCat("provider ", info_.name(), ": status struct too small"));
  } else {
    // A provider may hand back any bits: read them as an integer, since
    // loading an out-of-range value as the enum type is undefined.
    std::underlying_type_t<timer_ap_state> state;
    std::memcpy(&state, &st->state, sizeof state);
    switch (state) {
      case TIMER_AP_STATE_ACTIVE:
        out.state = domain::ActionStatus::State::kActive;
        break;
      case TIMER_AP_STATE_SUCCEEDED:
        out.state = domain::ActionStatus::State::kSucceeded;
        break;
      case TIMER_AP_STATE_FAILED:
        out.state = domain::ActionStatus::State::kFailed;
        break;
      case TIMER_AP_STATE_CANCELLED:
        out.state = domain::ActionStatus::State::kCancelled;
        break;
      default:
        bad = absl::InternalError(
            absl::StrCat("provider ", info_.name(), ": invalid action state ", state));
    }
    out.action_id = String(st->action_id);
    // A provider's words are kept, within bounds: results live in the store.
    if (st->details.size > kMaxDetailsBytes) {
      out.details = absl::StrCat("{\"truncated\":true,\"bytes\":", st->details.size, "}");
    } else {
      out.details = String(st->details);
    }
    out.error = String(st->error);
    if (out.error.size() > kMaxErrorBytes) {
      out.error.resize(kMaxErrorBytes);
      out.error += " [truncated]";
    }
    if (out.details.empty()) out.details = "{}";
    // ABI 1.2: absent (an older provider) or UNSPECIFIED reads as PERMANENT.
    out.error_class = v1::ERROR_CLASS_PERMANENT;
    if (out.state == domain::ActionStatus::State::kFailed &&
        TIMER_AP_HAS_FIELD(timer_ap_status, st, error_class)) {
      std::underlying_type_t<timer_ap_error_class> raw;
      std::memcpy(&raw, &st->error_class, sizeof raw);
      out.error_class = ClassOf(raw);
    }
    if (bad.ok() && out.action_id.empty()) {
      bad = absl::InternalError(
          absl::StrCat("provider ", info_.name(), ": empty action id"));
    }
  }
  api_->status_destroy(st);
  if (!bad.ok()) return bad;
  return out;
}

absl::StatusOr<std::string> Plugin::Describe(const domain::Identity& caller) {
  // ABI 1.1: an older table has no describe(), a newer one may leave it NULL.
  if (!TIMER_AP_HAS_FIELD(timer_ap_api, api_, description_destroy) ||
      api_->describe == nullptr || api_->description_destroy == nullptr) {
    return std::string();
  }
  timer_ap_identity id = ToC(caller);
  timer_ap_description* d = nullptr;
  absl::Status s = ToStatus(api_->describe(provider_, &id, &d));
  if (!s.ok()) return s;
  if (d == nullptr) return std::string();
  std::string out;
  absl::Status bad;
  if (!TIMER_AP_HAS_FIELD(timer_ap_description, d, json)) {
    bad = absl::InternalError(
        absl::StrCat("provider ", info_.name(), ": description struct too small"));
  } else if (d->json.size > kMaxDetailsBytes) {
    // Bounded like a run's details: it goes into a reply.
    out = absl::StrCat("{\"truncated\":true,\"bytes\":", d->json.size, "}");
  } else {
    out = String(d->json);
  }
  api_->description_destroy(d);
  if (bad.ok() && !nlohmann::json::accept(out)) {
    bad = absl::InternalError(
        absl::StrCat("provider ", info_.name(), ": description is not JSON"));
  }
  if (!bad.ok()) return bad;
  return out;
}

absl::Status Plugin::Validate(const domain::Identity& owner, absl::string_view body) {
  timer_ap_identity id = ToC(owner);
  return ToStatus(api_->validate(provider_, &id, Str(body)));
}

absl::StatusOr<domain::ActionStatus> Plugin::Start(absl::string_view request_id,
                                                   const domain::Identity& owner,
                                                   absl::string_view body) {
  timer_ap_identity id = ToC(owner);
  timer_ap_status* st = nullptr;
  absl::Status s = ToStatus(api_->start(provider_, Str(request_id), &id, Str(body), &st));
  if (!s.ok()) return s;
  return TakeStatus(st);
}

absl::StatusOr<domain::ActionStatus> Plugin::Status(absl::string_view action_id) {
  timer_ap_status* st = nullptr;
  absl::Status s = ToStatus(api_->status(provider_, Str(action_id), &st));
  if (!s.ok()) return s;
  return TakeStatus(st);
}

absl::Status Plugin::Cancel(absl::string_view action_id) {
  return ToStatus(api_->cancel(provider_, Str(action_id)));
}

absl::Status Plugin::Release(absl::string_view action_id) {
  return ToStatus(api_->release(provider_, Str(action_id)));
}

domain::ActionProvider* PluginRegistry::Find(absl::string_view name) const {
  auto it = plugins_.find(name);
  return it == plugins_.end() ? nullptr : it->second.get();
}

std::vector<domain::ActionProvider*> PluginRegistry::List() const {
  std::vector<domain::ActionProvider*> out;
  out.reserve(plugins_.size());
  for (const auto& [name, p] : plugins_) out.push_back(p.get());
  return out;
}

absl::Status PluginRegistry::Add(std::unique_ptr<Plugin> plugin) {
  const std::string& name = plugin->info().name();
  if (auto it = plugins_.find(name); it != plugins_.end()) {
    return absl::AlreadyExistsError(absl::StrCat(plugin->path(), ": provider name \"",
                                                 name, "\" already loaded from ",
                                                 it->second->path()));
  }
  plugins_.emplace(name, std::move(plugin));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Plugin>> LoadPlugin(const std::string& path,
                                                   const nlohmann::json& configs_by_name,
                                                   const PluginRegistry* existing,
                                                   absl::string_view expected_name) {
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = dlerror();
    return Refused(
        path, absl::StrCat("not a loadable shared object: ", e ? e : "dlopen failed"));
  }
  // From here on, every refusal must dlclose.
  auto fail = [handle](absl::Status s) {
    dlclose(handle);
    return s;
  };
  dlerror();
  void* sym = dlsym(handle, TIMER_AP_ENTRY_SYMBOL);
  if (sym == nullptr) {
    return fail(Refused(
        path, "no " TIMER_AP_ENTRY_SYMBOL " symbol: not an action-provider plugin"));
  }
  auto get_api = reinterpret_cast<timer_ap_get_api_fn>(sym);
  const timer_ap_api* api = get_api(TIMER_AP_ABI_MAJOR, TIMER_AP_ABI_MINOR);
  if (api == nullptr) {
    return fail(Refused(path, absl::StrCat("the provider refused this host's ABI ",
                                           TIMER_AP_ABI_MAJOR, ".", TIMER_AP_ABI_MINOR)));
  }
  if (api->abi_major != TIMER_AP_ABI_MAJOR) {
    return fail(
        Refused(path, absl::StrCat("built for ABI ", api->abi_major, ".", api->abi_minor,
                                   ", this timerd speaks ", TIMER_AP_ABI_MAJOR, ".x")));
  }
  if (api->struct_size < TIMER_AP_API_V1_0_SIZE) {
    return fail(Refused(
        path, absl::StrCat("function table too small (", api->struct_size,
                           " bytes, ABI 1.0 needs ", TIMER_AP_API_V1_0_SIZE, ")")));
  }
  if (!TableComplete(api)) return fail(Refused(path, "function table has null entries"));
  std::string name = String(api->name);
  if (!ValidName(name)) {
    return fail(Refused(path, absl::StrCat("invalid provider name \"", name,
                                           "\" (want [a-z0-9_-], 1 to 64 characters)")));
  }
  if (!expected_name.empty() && name != expected_name) {
    return fail(Refused(path, absl::StrCat("holds provider \"", name, "\", not \"",
                                           expected_name, "\"")));
  }
  if (existing != nullptr) {
    if (const auto* other = static_cast<const Plugin*>(existing->Find(name))) {
      return fail(absl::AlreadyExistsError(absl::StrCat(
          path, ": provider name \"", name, "\" already loaded from ", other->path())));
    }
  }

  std::unique_ptr<Plugin> plugin(new Plugin(path, handle, api));  // owns handle now
  std::string config = "{}";
  if (configs_by_name.is_object()) {
    if (auto it = configs_by_name.find(name); it != configs_by_name.end())
      config = it->dump();
  }
  timer_ap_provider* provider = nullptr;
  absl::Status s = plugin->ToStatus(api->create(Str(config), &plugin->host_, &provider));
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": provider ", name,
                                               " failed to start: ", s.message()));
  }
  if (provider == nullptr) {
    return absl::InternalError(absl::StrCat(path, ": create() returned no provider"));
  }
  plugin->provider_ = provider;
  return plugin;
}

absl::StatusOr<std::unique_ptr<PluginRegistry>> LoadPlugins(
    const std::string& dir, const std::vector<std::string>& names,
    const nlohmann::json& configs_by_name, uid_t uid) {
  if (!configs_by_name.is_object()) {
    return absl::InvalidArgumentError(
        "plugins: must be a table of provider configurations");
  }
  // Each provider once, with the key that asked for it.
  std::map<std::string, std::string> wanted;
  for (const std::string& name : names) {
    wanted.emplace(name, absl::StrCat("load_plugins: ", util::Escaped(name), ": "));
  }
  for (const auto& [name, config] : configs_by_name.items()) {
    wanted[name] = absl::StrCat("plugins.", util::Escaped(name), ": ");
  }
  auto registry = std::make_unique<PluginRegistry>();
  if (wanted.empty()) return registry;
  for (const auto& [name, key] : wanted) {
    if (!ValidName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, "not a provider name (want [a-z0-9_-], 1 to 64 characters)"));
    }
  }
  const auto failed = [](const std::string& key, const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(key, s.message()));
  };
  if (absl::Status s =
          util::CheckTrusted(dir, {.uid = uid,
                                   .check_parents = true,
                                   .kind = util::TrustOptions::Kind::kDirectory});
      !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("plugin_dir: ", s.message()));
  }
  for (const auto& [name, key] : wanted) {
    const std::string file = absl::StrCat(dir, "/", name, ".so");
    if (absl::Status s = util::CheckTrusted(
            file,
            {.uid = uid, .check_parents = true, .kind = util::TrustOptions::Kind::kFile});
        !s.ok()) {
      return failed(key, absl::IsNotFound(s)
                             ? absl::NotFoundError(absl::StrCat("no provider ", name,
                                                                " is installed (", file,
                                                                " does not exist)"))
                             : s);
    }
    absl::StatusOr<std::unique_ptr<Plugin>> plugin =
        LoadPlugin(file, configs_by_name, registry.get(), name);
    if (!plugin.ok()) return failed(key, plugin.status());
    const v1::ActionProvider& info = (*plugin)->info();
    spdlog::info("plugin loaded: provider {} {} (ABI {}) from {}", info.name(),
                 util::Escaped(info.version()), info.abi_version(), util::Escaped(file));
    if (absl::Status added = registry->Add(*std::move(plugin)); !added.ok()) {
      return failed(key, added);  // Not reached: each name is loaded once.
    }
  }
  return registry;
}

}  // namespace timer::plugin_host
