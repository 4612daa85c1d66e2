// Config: how timerd is set up, from a TOML file overridden by flags.
//
//   listen = "127.0.0.1:50051"
//   data_dir = "/var/lib/timer"
//   plugin_dir = "/usr/local/lib/timer/plugins"
//   log_level = "info"               # trace, debug, info, warn, error
//   allow_insecure_remote = false    # plaintext on a non-loopback address
//   workers = 4                      # threads calling action providers
//   run_timeout_seconds = 21600      # a run active longer is cancelled
//   results_keep_per_job = 1000      # newest results kept per job
//   results_max_age_days = 90        # finished results older are deleted
//   tls_cert = "/etc/timer/tls/server.crt"   # serve TLS (with tls_key)
//   tls_key = "/etc/timer/tls/server.key"
//   tls_client_ca = "/etc/timer/tls/ca.crt"  # verify client certificates (mTLS)
//   max_message_bytes = 4194304      # largest request accepted
//   max_jobs_per_identity = 10000    # live (not deleted) jobs per identity
//   [auth.jwt]                       # accept JWTs from an identity provider
//   keys_file = "/etc/timer/idp-jwks.json"   # JWKS or PEM public key(s)
//   issuer = "https://idp.example.org"
//   audience = "timer"
//   identity_claim = "sub"
//   leeway_seconds = 60
//   [plugins.noop]                   # each table is handed to that provider
//   record_file = "/tmp/noop-runs.log"
//
// Unknown keys are errors: a typo must not silently fall back to a default.
// A plain value type.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace timer::server {

struct Config {
  std::string listen = "127.0.0.1:50051";
  std::string data_dir;    // Empty: DefaultDataDir().
  std::string plugin_dir;  // Empty: DefaultPluginDir().
  std::string log_level = "info";
  bool allow_insecure_remote = false;
  int workers = 4;
  int64_t run_timeout_seconds = 6 * 3600;
  int results_keep_per_job = 1000;
  int results_max_age_days = 90;
  // TLS: both or neither of cert and key; client_ca needs them.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  int64_t max_message_bytes = 4 << 20;
  int64_t max_jobs_per_identity = 10000;
  // [auth.jwt]; JWTs are accepted only when jwt_keys_file is set.
  std::string jwt_keys_file;
  std::string jwt_issuer;
  std::string jwt_audience;
  std::string jwt_identity_claim = "sub";
  int64_t jwt_leeway_seconds = 60;
  // Provider name -> its configuration, as a JSON object.
  nlohmann::json plugins = nlohmann::json::object();
};

// Parses TOML text; `origin` names it in error messages.
absl::StatusOr<Config> ParseConfig(absl::string_view toml_text,
                                   absl::string_view origin);
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// $XDG_DATA_HOME/timer, else $HOME/.local/share/timer, else ./timer-data.
std::string DefaultDataDir();
// <directory of the timerd binary>/../lib/timer/plugins.
std::string DefaultPluginDir();

// Checks the settings that depend on each other (TLS files, [auth.jwt]).
absl::Status ValidateConfig(const Config& config);

// Checks that `listen` is host:port and, unless allow_insecure_remote, that
// the host is a loopback address (plaintext must not leave the machine).
absl::Status ValidateListenAddress(const std::string& listen,
                                   bool allow_insecure_remote);

}  // namespace timer::server
