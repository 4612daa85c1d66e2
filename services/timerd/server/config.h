// Config: how timerd is set up, from a TOML file overridden by flags.
//
//   listen = "127.0.0.1:50051"
//   data_dir = "/var/lib/timer"
//   plugin_dir = "/usr/local/lib/timer/plugins"
//   load_plugins = ["noop", "transfer"]   # plus every [plugins.NAME] table
//   log_level = "info"               # trace, debug, info, warn, error
//   allow_insecure_remote = false    # plaintext on a non-loopback address
//   workers = 4                      # threads calling action providers
//   [auth.jwt]                       # accept JWTs from an identity provider
//   keys_file = "/etc/timer/idp-jwks.json"
//   issuer = "https://idp.example.org"
//   audience = "timer"
//   [plugins.noop]                   # each table is handed to that provider
//   record_file = "/tmp/noop-runs.log"
//
// Every key is one entry of ConfigKeys(): its dotted path, the Config member
// it sets (whose type is the key's TOML type), its accepted range or values
// and a one-line description. That table drives the parser and its error
// messages, `timerd config reference` (the table in docs/DEPLOYMENT.md) and
// `timerd config sample`; adding a setting is a member here plus an entry
// there. The `[plugins.NAME]` tables are not in it: each is handed to the
// provider NAME as JSON, and the provider checks it (at start: a provider
// refusing its table stops timerd).
//
// Unknown keys are errors: a typo must not silently fall back to a default.
// Config is a plain value type; ConfigKeys() is immutable and thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace timer::server {

struct Config {
  std::string listen = "127.0.0.1:50051";
  std::string data_dir;  // Empty: DefaultDataDir().
  // Empty: the SQLite store in data_dir; else a postgres:// URI.
  std::string store;
  int store_readers = 4;
  int store_writers = 1;
  int64_t store_timeout_ms = 5000;
  std::string plugin_dir;  // Empty: DefaultPluginDir().
  // Providers to load besides those with a [plugins.NAME] table.
  std::vector<std::string> load_plugins = {"noop", "transfer"};
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
  // Connections and what gRPC holds for them (server/listener.h).
  int max_connections = 2048;
  int max_connections_per_peer = 256;
  int64_t unauthenticated_connection_timeout_ms = 10000;
  int max_streams_per_connection = 1000;
  int64_t grpc_memory_quota_bytes = int64_t{512} << 20;
  int64_t max_jobs_per_identity = 10000;
  int64_t max_stored_jobs_per_identity = 50000;
  int64_t max_stored_bytes_per_identity = int64_t{1} << 30;
  int deleted_jobs_retention_days = 90;
  int write_rate_per_identity = 100;
  int write_burst_per_identity = 1000;
  int run_now_rate_per_identity = 10;
  int run_now_burst_per_identity = 100;
  int max_active_runs = 50000;
  int max_active_runs_per_identity = 1000;
  // [retry]: the retry policy of jobs that set none, and the bound on runs
  // waiting to be tried again (domain/retry.h, RunEngine::Options).
  int retry_max_attempts = 1;
  int64_t retry_initial_backoff_seconds = 10;
  int retry_multiplier = 2;
  int64_t retry_max_backoff_seconds = 600;
  int retry_max_waiting = 10000;
  int retry_max_waiting_per_identity = 1000;
  int64_t watch_keep_events = 20000;
  int64_t watch_keep_bytes = 32 << 20;
  int64_t watch_buffer_events = 1024;
  int64_t max_watch_streams = 10000;
  int64_t max_watch_streams_per_identity = 64;
  int64_t max_list_page_bytes = 1 << 20;
  // Several replicas on a shared store (domain/shard_lease.h); unused with
  // the embedded store, which one process owns.
  int64_t lease_ttl_ms = 2500;
  int64_t lease_margin_ms = 1000;
  // RunJobNow relayed to the replica scheduling the job (domain/run_now_relay.h).
  int64_t run_now_relay_timeout_ms = 5000;
  int64_t max_relayed_runs = 1024;
  int64_t max_relayed_runs_per_identity = 64;
  // The shared event log (domain/shared_events.h); with several replicas.
  int64_t event_log_keep_events = 100000;
  int64_t event_outbox_events = 50000;
  int64_t watch_since_wait_ms = 2000;
  // The HTTP listener (api/http/http_server.h): the API as JSON, health and
  // metrics. Off while http_listen is empty.
  std::string http_listen;
  int http_max_connections = 1024;
  int http_io_threads = 2;
  int http_workers = 8;
  int http_max_connections_per_peer = 64;
  int http_max_header_bytes = 16 << 10;
  int64_t http_header_timeout_ms = 10000;
  int64_t http_body_timeout_ms = 30000;
  int64_t http_idle_timeout_ms = 60000;
  int64_t http_sse_heartbeat_ms = 15000;
  // [auth.jwt]; JWTs are accepted only when jwt_keys_file is set.
  std::string jwt_keys_file;
  std::string jwt_issuer;
  std::string jwt_audience;
  std::string jwt_identity_claim = "sub";
  int64_t jwt_leeway_seconds = 60;
  int64_t jwt_max_lifetime_seconds = 24 * 3600;
  // [notifications] (domain/notifier.h): job webhooks; off (jobs with a
  // notification are refused) while key_file is empty.
  std::string notifications_key_file;
  std::vector<std::string> notifications_allow;
  std::string notifications_ca_file;
  int notifications_threads = 2;
  int64_t notifications_max_queued = 1000;
  int64_t notifications_max_queued_per_identity = 100;
  int notifications_max_attempts = 5;
  int64_t notifications_initial_backoff_ms = 1000;
  int64_t notifications_max_backoff_ms = 60000;
  int64_t notifications_timeout_ms = 10000;
  // Provider name -> its configuration, as a JSON object.
  nlohmann::json plugins = nlohmann::json::object();
};

// One key of the config file.
struct ConfigKey {
  // The member the key sets. A string member takes a TOML string, a bool
  // member true or false, an int or int64_t member a whole number, a
  // vector member an array of strings.
  using Field = std::variant<std::string Config::*, bool Config::*, int Config::*,
                             int64_t Config::*, std::vector<std::string> Config::*>;

  absl::string_view path;  // Dotted, as in TOML: "workers", "auth.jwt.issuer".
  Field field;
  // Whole numbers: the accepted range, inclusive. Ignored for other types.
  int64_t min = 0;
  int64_t max = 0;
  // Strings: the accepted values; empty: any string.
  std::vector<absl::string_view> allowed = {};
  absl::string_view doc;  // One line: what it does.
  // For the reference, when the default is not the member's initial value
  // as is (e.g. an empty path meaning "found at start").
  absl::string_view default_doc = {};
  // For the reference, when the accepted values say more than the type,
  // range or list (e.g. which addresses `listen` takes).
  absl::string_view accepted_doc = {};
};

// Every key, top-level keys first, then each table's keys together.
const std::vector<ConfigKey>& ConfigKeys();

// The TOML table whose sub-tables are handed to providers as JSON.
inline constexpr absl::string_view kPluginsTable = "plugins";

// The keys as a Markdown table (key, type, default, accepted, what),
// followed by the `[plugins.NAME]` row; docs/DEPLOYMENT.md holds it verbatim.
std::string ConfigReference();

// A config file setting every key to its default, each with its doc as a
// comment; it parses to Config{}.
std::string SampleConfig();

// Parses TOML text; `origin` names it in error messages. Errors name the key
// and, for a value out of range, the range.
absl::StatusOr<Config> ParseConfig(absl::string_view toml_text, absl::string_view origin);
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// $XDG_DATA_HOME/timer, else $HOME/.local/share/timer, else ./timer-data.
std::string DefaultDataDir();
// <directory of the timerd binary>/../lib/timer/plugins.
std::string DefaultPluginDir();

// Checks the settings that depend on each other (TLS files, [auth.jwt]).
absl::Status ValidateConfig(const Config& config);

// The directory plugins are loaded from: plugin_dir, else DefaultPluginDir().
std::string PluginDir(const Config& config);

// Checks that every file the config names which timerd believes or runs
// (the config file itself when `config_path` is not empty, tls_cert,
// tls_key, tls_client_ca, auth.jwt.keys_file) is trusted for `uid`
// (util::CheckTrusted: owned by root or uid, not writable by group or
// others, nor any directory above it). Errors name the key and the path; a
// file that does not exist is left to the code that reads it.
// Plugins are checked where they are loaded (plugin_host::LoadPlugins).
absl::Status CheckConfigFilesTrusted(const Config& config, const std::string& config_path,
                                     uid_t uid);

// Checks that `listen` is host:port and, unless allow_insecure_remote, that
// the host is a loopback address (plaintext must not leave the machine).
// Errors name `key` (the setting `listen` came from).
absl::Status ValidateListenAddress(const std::string& listen, bool allow_insecure_remote,
                                   absl::string_view key = "listen");

}  // namespace timer::server
