// plugin_host: loads action-provider plugins (shared objects implementing
// plugins/include/timer/action_provider.h) and adapts each one to
// domain::ActionProvider.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<PluginRegistry> registry,
//                    LoadPlugins(config.plugin_dir, config.load_plugins,
//                                config.plugins, ::geteuid()));
//   domain::ActionProvider* noop = registry->Find("noop");
//
// Only the providers asked for are loaded, each from DIR/NAME.so: a file in
// the directory that nobody named is never opened, since dlopen() runs a
// shared object's constructors before any check of what it is. The
// directory and each file must pass util::CheckTrusted (owned by root or the
// user timerd runs as, not writable by group or others, nor any directory
// above them): a plugin runs as timerd. Any failure (an untrusted or missing
// file, a file that is not a plugin, a provider of another name, a provider
// refusing its configuration) fails the whole load, naming the config key
// (`plugins.NAME` or `load_plugins`): a typo must not leave timerd running
// without the provider while it reports healthy.
//
// Ownership: the registry owns the plugins; each Plugin owns its provider
// instance and its dlopen handle, and on destruction calls the provider's
// destroy() (which joins the provider's threads) and then dlclose(). So the
// registry must outlive every user of the ActionProvider pointers it hands
// out (the run engine).
//
// Error classes (ABI 1.2): a FAILED status's error_class becomes
// ActionStatus::error_class, and the class of an error a call returns rides
// on the absl::Status (domain::ErrorClassOf). A table or status too small to
// hold the field (a provider built against 1.0 or 1.1), a NULL
// error_class(), UNSPECIFIED or an unknown value all read as PERMANENT.
//
// Thread-safety: LoadPlugins/LoadPlugin are for startup (one thread). A
// loaded registry is immutable and thread-safe; Plugin's ActionProvider
// methods are thread-safe (the ABI tags them so).
#pragma once

#include <sys/types.h>

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
  absl::StatusOr<std::string> Describe(const domain::Identity& caller) override;
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
                                                            const PluginRegistry*,
                                                            absl::string_view);
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
// No trust check: LoadPlugins makes it before calling this. With
// `expected_name`, a provider of another name is refused before create().
// Errors: FAILED_PRECONDITION (not a loadable shared object, no entry
// symbol, provider refused this host, ABI mismatch, malformed table),
// ALREADY_EXISTS (`existing` has that name; checked before create()),
// and whatever create() returned (e.g. INVALID_ARGUMENT for bad config).
// Messages start with the path.
absl::StatusOr<std::unique_ptr<Plugin>> LoadPlugin(
    const std::string& path, const nlohmann::json& configs_by_name,
    const PluginRegistry* existing = nullptr, absl::string_view expected_name = {});

// Loads the providers named in `names` and those with a table in
// `configs_by_name` (a JSON object: provider name -> its configuration),
// each from `dir`/NAME.so, which must hold the provider NAME. `dir` and
// every file are checked with util::CheckTrusted for `uid` first. Fails on
// the first provider that cannot be loaded; the message starts with
// "plugins.NAME: " for a provider with a table, "load_plugins: NAME: " for
// one only listed. INVALID_ARGUMENT when `configs_by_name` is not an
// object or a name is not a provider name ([a-z0-9_-], 1 to 64 characters).
absl::StatusOr<std::unique_ptr<PluginRegistry>> LoadPlugins(
    const std::string& dir, const std::vector<std::string>& names,
    const nlohmann::json& configs_by_name, uid_t uid);

}  // namespace timer::plugin_host
