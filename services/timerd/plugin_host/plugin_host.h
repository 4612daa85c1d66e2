// plugin_host: loads action-provider plugins (shared objects implementing
// plugins/include/timer/action_provider.h) and adapts each one to
// domain::ActionProvider.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<PluginRegistry> registry,
//                    LoadPlugins({config.plugin_dir, DefaultPluginDir()},
//                                config.plugins));
//   domain::ActionProvider* noop = registry->Find("noop");
//
// Loading never fails because of one bad file: a file that is not a shared
// object, lacks the entry symbol, has another ABI major or a too-small table,
// fails create(), or repeats a provider name is refused with one
// spdlog::warn line naming the file and why, and the others still load.
//
// Ownership: the registry owns the plugins; each Plugin owns its provider
// instance and its dlopen handle, and on destruction calls the provider's
// destroy() (which joins the provider's threads) and then dlclose(). So the
// registry must outlive every user of the ActionProvider pointers it hands
// out (the run engine).
//
// Thread-safety: LoadPlugins/LoadPlugin are for startup (one thread). A
// loaded registry is immutable and thread-safe; Plugin's ActionProvider
// methods are thread-safe (the ABI tags them so).
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "domain/action_provider.h"
#include "domain/identity.h"
#include "timer/action_provider.h"
#include "timer/v1/timer.pb.h"

namespace timer::plugin_host {

class PluginRegistry;

// One loaded plugin behind the domain interface.
class Plugin : public domain::ActionProvider {
 public:
  ~Plugin() override;
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  const v1::ActionProvider& info() const override { return info_; }
  absl::Status Validate(const domain::Identity& owner, absl::string_view body) override;
  absl::StatusOr<domain::ActionStatus> Start(absl::string_view request_id,
                                             const domain::Identity& owner,
                                             absl::string_view body) override;
  absl::StatusOr<domain::ActionStatus> Status(absl::string_view action_id) override;
  absl::Status Cancel(absl::string_view action_id) override;
  absl::Status Release(absl::string_view action_id) override;

  // The file it was loaded from.
  const std::string& path() const { return path_; }

 private:
  friend absl::StatusOr<std::unique_ptr<Plugin>> LoadPlugin(const std::string&,
                                                            const nlohmann::json&,
                                                            const PluginRegistry*);
  Plugin(std::string path, void* handle, const timer_ap_api* api);
  static void HostLog(void* context, timer_ap_log_level level, timer_ap_str message);
  absl::Status ToStatus(timer_ap_error* error) const;  // frees `error`
  absl::StatusOr<domain::ActionStatus> TakeStatus(
      timer_ap_status* status) const;  // frees it

  const std::string path_;
  void* const handle_;                     // dlopen handle; dlclose'd last
  const timer_ap_api* const api_;          // owned by the shared object
  timer_ap_host host_{};                   // must outlive provider_
  timer_ap_provider* provider_ = nullptr;  // owned; api_->destroy()
  v1::ActionProvider info_;
};

// The loaded plugins, by provider name. Immutable once built.
class PluginRegistry : public domain::ProviderRegistry {
 public:
  domain::ActionProvider* Find(absl::string_view name) const override;
  std::vector<domain::ActionProvider*> List() const override;  // by name

  // ALREADY_EXISTS if a plugin with the same provider name is loaded.
  absl::Status Add(std::unique_ptr<Plugin> plugin);
  size_t size() const { return plugins_.size(); }

 private:
  std::map<std::string, std::unique_ptr<Plugin>, std::less<>> plugins_;
};

// Loads one plugin file: dlopen(RTLD_NOW | RTLD_LOCAL), checks the table,
// and creates the provider with configs_by_name[<provider name>] (or {}).
// Errors: FAILED_PRECONDITION (not a loadable shared object, no entry
// symbol, provider refused this host, ABI mismatch, malformed table),
// ALREADY_EXISTS (`existing` has that name; checked before create()),
// and whatever create() returned (e.g. INVALID_ARGUMENT for bad config).
// Messages start with the path.
absl::StatusOr<std::unique_ptr<Plugin>> LoadPlugin(
    const std::string& path, const nlohmann::json& configs_by_name,
    const PluginRegistry* existing = nullptr);

// Loads every non-hidden *.so in each directory of `dirs` (files sorted by
// name; a directory listed twice, or missing, is skipped with a log line;
// the first of two plugins with the same provider name wins). Each file
// that fails to load is logged with spdlog::warn and skipped. A config for
// a provider that was not loaded is logged too. Fails only when
// `configs_by_name` is not a JSON object (INVALID_ARGUMENT).
absl::StatusOr<std::unique_ptr<PluginRegistry>> LoadPlugins(
    const std::vector<std::string>& dirs, const nlohmann::json& configs_by_name);

}  // namespace timer::plugin_host
