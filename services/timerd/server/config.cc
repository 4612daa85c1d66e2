#include "server/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <type_traits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "util/file_trust.h"

namespace timer::server {

const std::vector<ConfigKey>& ConfigKeys() {
  constexpr int64_t kTebi = int64_t{1} << 40;
  static const std::vector<ConfigKey>* const keys = new std::vector<ConfigKey>{
      {.path = "listen",
       .field = &Config::listen,
       .doc = "address to serve on (flag --listen)",
       .accepted_doc = "HOST:PORT or unix:PATH; a loopback host unless TLS is served "
                       "or allow_insecure_remote is true"},
      {.path = "data_dir",
       .field = &Config::data_dir,
       .doc = "directory of the embedded store (flag --data-dir)",
       .default_doc = "`$XDG_DATA_HOME/timer`, else `~/.local/share/timer`",
       .accepted_doc = "a directory path; created private (0700) if missing, else "
                       "it must be timerd's user's and not writable by group or others"},
      {.path = "store",
       .field = &Config::store,
       .doc = "where jobs and tokens are kept: PostgreSQL, shared by replicas (flag "
              "--store)",
       .default_doc = "empty: the embedded SQLite store in data_dir",
       .accepted_doc = "empty, or a libpq URI postgres://USER@HOST:PORT/DB?sslmode=... "
                       "(keep the password out of it: ~/.pgpass or PGPASSFILE)"},
      {.path = "store_readers",
       .field = &Config::store_readers,
       .min = 1,
       .max = 256,
       .doc = "PostgreSQL store: most read connections (the writers have their own)"},
      {.path = "store_writers",
       .field = &Config::store_writers,
       .min = 1,
       .max = 16,
       .doc = "PostgreSQL store: writer connections, each committing its own batches "
              "(a job's writes all go to one)"},
      {.path = "store_timeout_ms",
       .field = &Config::store_timeout_ms,
       .min = 100,
       .max = 600000,
       .doc = "PostgreSQL store: bound on a connect (at least 2 s), each statement and "
              "a wait for a free connection"},
      {.path = "plugin_dir",
       .field = &Config::plugin_dir,
       .doc =
           "directory of the action-provider plugins, NAME.so each (flag --plugin-dir)",
       .default_doc = "`../lib/timer/plugins` next to timerd",
       .accepted_doc = "a directory owned by root or timerd's user, not writable by "
                       "group or others"},
      {.path = "load_plugins",
       .field = &Config::load_plugins,
       .doc = "providers to load besides those with a [plugins.NAME] table",
       .accepted_doc = "provider names; each must be installed as plugin_dir/NAME.so"},
      {.path = "log_level",
       .field = &Config::log_level,
       .allowed = {"trace", "debug", "info", "warn", "error"},
       .doc = "least severe log line written (flag --log-level)"},
      {.path = "allow_insecure_remote",
       .field = &Config::allow_insecure_remote,
       .doc = "serve plaintext gRPC on a non-loopback address"},
      {.path = "workers",
       .field = &Config::workers,
       .min = 1,
       .max = 256,
       .doc = "threads calling action providers"},
      {.path = "run_timeout_seconds",
       .field = &Config::run_timeout_seconds,
       .min = 1,
       .max = kTebi,
       .doc = "a run still active after this long is cancelled"},
      {.path = "results_keep_per_job",
       .field = &Config::results_keep_per_job,
       .min = 1,
       .max = 1 << 30,
       .doc = "newest results kept per job"},
      {.path = "results_max_age_days",
       .field = &Config::results_max_age_days,
       .min = 1,
       .max = 100000,
       .doc = "finished results older than this are deleted"},
      {.path = "tls_cert",
       .field = &Config::tls_cert,
       .doc = "PEM certificate chain: serve TLS, with tls_key (flag --tls-cert)",
       .accepted_doc = "a file path"},
      {.path = "tls_key",
       .field = &Config::tls_key,
       .doc = "PEM private key of tls_cert (flag --tls-key)",
       .accepted_doc = "a file path"},
      {.path = "tls_client_ca",
       .field = &Config::tls_client_ca,
       .doc = "PEM CA certificates: accept client certificates they sign (mutual TLS; "
              "flag --tls-client-ca)",
       .accepted_doc = "a file path; needs tls_cert and tls_key"},
      {.path = "max_message_bytes",
       .field = &Config::max_message_bytes,
       .min = 1,
       .max = 1 << 30,
       .doc = "largest request accepted"},
      {.path = "max_connections",
       .field = &Config::max_connections,
       .min = 1,
       .max = 1 << 20,
       .doc = "open client connections in all; more are closed at once"},
      {.path = "max_connections_per_peer",
       .field = &Config::max_connections_per_peer,
       .min = 1,
       .max = 1 << 20,
       .doc = "open connections from one IPv4 address, IPv6 /64 or local user"},
      {.path = "unauthenticated_connection_timeout_ms",
       .field = &Config::unauthenticated_connection_timeout_ms,
       .min = 100,
       .max = 3'600'000,
       .doc = "a TCP connection with no authenticated call by then is closed"},
      {.path = "max_streams_per_connection",
       .field = &Config::max_streams_per_connection,
       .min = 1,
       .max = 1 << 20,
       .doc = "calls at once on one connection (HTTP/2 MAX_CONCURRENT_STREAMS)"},
      {.path = "grpc_memory_quota_bytes",
       .field = &Config::grpc_memory_quota_bytes,
       .min = 1 << 20,
       .max = kTebi,
       .doc = "memory gRPC may hold for connections and requests; past it, it sheds "
              "them"},
      {.path = "max_jobs_per_identity",
       .field = &Config::max_jobs_per_identity,
       .min = 1,
       .max = kTebi,
       .doc = "live (not deleted) jobs per identity"},
      {.path = "max_stored_jobs_per_identity",
       .field = &Config::max_stored_jobs_per_identity,
       .min = 1,
       .max = kTebi,
       .doc = "jobs kept per identity, deleted ones included until they are purged"},
      {.path = "max_stored_bytes_per_identity",
       .field = &Config::max_stored_bytes_per_identity,
       .min = 1,
       .max = kTebi,
       .doc = "bytes of the jobs kept per identity (mostly action bodies), deleted ones "
              "included until they are purged"},
      {.path = "deleted_jobs_retention_days",
       .field = &Config::deleted_jobs_retention_days,
       .min = 0,
       .max = 100000,
       .doc = "a deleted job (and its results) stays readable this long, then is purged"},
      {.path = "write_rate_per_identity",
       .field = &Config::write_rate_per_identity,
       .min = 1,
       .max = 1'000'000,
       .doc = "creates, updates, deletes, pauses and resumes per second per identity, "
              "sustained"},
      {.path = "write_burst_per_identity",
       .field = &Config::write_burst_per_identity,
       .min = 1,
       .max = 10'000'000,
       .doc = "writes one identity may make at once before write_rate_per_identity "
              "applies"},
      {.path = "run_now_rate_per_identity",
       .field = &Config::run_now_rate_per_identity,
       .min = 1,
       .max = 1'000'000,
       .doc = "RunJobNow calls per second per identity, sustained"},
      {.path = "run_now_burst_per_identity",
       .field = &Config::run_now_burst_per_identity,
       .min = 1,
       .max = 10'000'000,
       .doc = "RunJobNow calls one identity may make at once before "
              "run_now_rate_per_identity applies"},
      {.path = "max_active_runs",
       .field = &Config::max_active_runs,
       .min = 1,
       .max = 10'000'000,
       .doc = "runs in flight before due jobs wait and RunJobNow is refused"},
      {.path = "max_active_runs_per_identity",
       .field = &Config::max_active_runs_per_identity,
       .min = 1,
       .max = 10'000'000,
       .doc = "runs in flight of one identity before its RunJobNow is refused"},
      {.path = "watch_keep_events",
       .field = &Config::watch_keep_events,
       .min = 1,
       .max = 10'000'000,
       .doc = "events kept for watchers resuming with `since`"},
      {.path = "watch_keep_bytes",
       .field = &Config::watch_keep_bytes,
       .min = 1 << 16,
       .max = kTebi,
       .doc = "memory the events kept for watchers may take (estimated)"},
      {.path = "watch_buffer_events",
       .field = &Config::watch_buffer_events,
       .min = 1,
       .max = 10'000'000,
       .doc = "events a watcher may fall behind before it is dropped"},
      {.path = "max_watch_streams",
       .field = &Config::max_watch_streams,
       .min = 1,
       .max = 10'000'000,
       .doc = "watch streams open at once, of all identities"},
      {.path = "max_watch_streams_per_identity",
       .field = &Config::max_watch_streams_per_identity,
       .min = 1,
       .max = 10'000'000,
       .doc = "watch streams one identity may have open at once"},
      {.path = "max_list_page_bytes",
       .field = &Config::max_list_page_bytes,
       .min = 1 << 10,
       .max = 1 << 30,
       .doc = "a ListJobs page ends before the job that would bring it over this"},
      {.path = "lease_ttl_ms",
       .field = &Config::lease_ttl_ms,
       .min = 300,
       .max = 600'000,
       .doc = "with several replicas on a shared store: how long a renewal holds a "
              "replica's shard leases (renewed every sixth of it); a lost replica's "
              "jobs fire again within about 7/6 of it"},
      {.path = "lease_margin_ms",
       .field = &Config::lease_margin_ms,
       .min = 1,
       .max = 300'000,
       .doc = "with several replicas: a replica starts no run later than "
              "lease_ttl_ms minus this after its last renewal was sent",
       .accepted_doc = "1 to 300000, below half of lease_ttl_ms"},
      {.path = "run_now_relay_timeout_ms",
       .field = &Config::run_now_relay_timeout_ms,
       .min = 200,
       .max = 600'000,
       .doc = "with several replicas: how long a RunJobNow of a job another replica "
              "schedules waits for that replica's answer before UNAVAILABLE"},
      {.path = "max_relayed_runs",
       .field = &Config::max_relayed_runs,
       .min = 1,
       .max = 1'000'000,
       .doc = "with several replicas: RunJobNow calls waiting at once for another "
              "replica, of all identities"},
      {.path = "max_relayed_runs_per_identity",
       .field = &Config::max_relayed_runs_per_identity,
       .min = 1,
       .max = 1'000'000,
       .doc = "with several replicas: RunJobNow calls one identity may have waiting "
              "at once for another replica"},
      {.path = "event_log_keep_events",
       .field = &Config::event_log_keep_events,
       .min = 1000,
       .max = 100'000'000,
       .doc = "with several replicas: the newest events the shared event log in "
              "PostgreSQL keeps for watchers resuming with `since` on any replica"},
      {.path = "event_outbox_events",
       .field = &Config::event_outbox_events,
       .min = 1,
       .max = 10'000'000,
       .doc = "with several replicas: events a replica holds while the shared event "
              "log is unreachable; beyond, they are dropped and every watcher starts "
              "over (RESET)"},
      {.path = "watch_since_wait_ms",
       .field = &Config::watch_since_wait_ms,
       .min = 0,
       .max = 60'000,
       .doc = "with several replicas: how long a watch resuming with a `since` this "
              "replica has not received yet waits for it before starting over (RESET); "
              "one such wait at a time"},
      {.path = "http_listen",
       .field = &Config::http_listen,
       .doc = "address of the HTTP listener: the API as JSON, /healthz, /readyz, "
              "/metrics (flag --http-listen)",
       .default_doc = "empty: no HTTP listener",
       .accepted_doc = "empty or HOST:PORT; a loopback host unless TLS is served or "
                       "allow_insecure_remote is true"},
      {.path = "http_max_connections",
       .field = &Config::http_max_connections,
       .min = 1,
       .max = 1 << 20,
       .doc = "open HTTP connections in all; more are closed at once"},
      {.path = "http_io_threads",
       .field = &Config::http_io_threads,
       .min = 1,
       .max = 16,
       .doc = "threads that read and write every HTTP connection (event-driven: "
              "none is tied to a connection; none blocks)"},
      {.path = "http_workers",
       .field = &Config::http_workers,
       .min = 1,
       .max = 64,
       .doc = "threads that authenticate HTTP requests and run their handlers "
              "(store reads, waiting for a write's commit), off the io threads; "
              "requests waiting for one are at most http_max_connections"},
      {.path = "http_max_connections_per_peer",
       .field = &Config::http_max_connections_per_peer,
       .min = 1,
       .max = 1 << 20,
       .doc = "open HTTP connections from one IPv4 address or IPv6 /64"},
      {.path = "http_max_header_bytes",
       .field = &Config::http_max_header_bytes,
       .min = 1024,
       .max = 1 << 20,
       .doc = "largest HTTP request line and headers; more is refused with 431"},
      {.path = "http_header_timeout_ms",
       .field = &Config::http_header_timeout_ms,
       .min = 100,
       .max = 3'600'000,
       .doc = "a new HTTP connection must send its request headers within this; "
              "else it is closed"},
      {.path = "http_body_timeout_ms",
       .field = &Config::http_body_timeout_ms,
       .min = 100,
       .max = 3'600'000,
       .doc = "an HTTP request body (at most max_message_bytes) must arrive within "
              "this; a response must be taken within it too"},
      {.path = "http_idle_timeout_ms",
       .field = &Config::http_idle_timeout_ms,
       .min = 100,
       .max = 3'600'000,
       .doc = "a kept-alive HTTP connection idle this long is closed; the next "
              "request's headers then have http_header_timeout_ms"},
      {.path = "http_sse_heartbeat_ms",
       .field = &Config::http_sse_heartbeat_ms,
       .min = 10,
       .max = 3'600'000,
       .doc = "a watch stream over HTTP (server-sent events) with nothing to send "
              "this long sends a `: keep-alive` comment, so proxies keep it open"},
      {.path = "retry.max_attempts",
       .field = &Config::retry_max_attempts,
       .min = 1,
       .max = 10,
       .doc = "tries in all of a run failing with a transient error, for jobs that set "
              "no retry_policy (1: no retry)"},
      {.path = "retry.initial_backoff_seconds",
       .field = &Config::retry_initial_backoff_seconds,
       .min = 1,
       .max = 2700,
       .doc = "with retry.max_attempts > 1: the wait before a job's first retry"},
      {.path = "retry.multiplier",
       .field = &Config::retry_multiplier,
       .min = 1,
       .max = 10,
       .doc =
           "with retry.max_attempts > 1: each later wait is the previous one times this"},
      {.path = "retry.max_backoff_seconds",
       .field = &Config::retry_max_backoff_seconds,
       .min = 1,
       .max = 2700,
       .doc = "with retry.max_attempts > 1: the longest wait between tries; at least "
              "retry.initial_backoff_seconds"},
      {.path = "retry.max_waiting",
       .field = &Config::retry_max_waiting,
       .min = 1,
       .max = 10'000'000,
       .doc = "runs waiting to be tried again, of all identities; a transient failure "
              "beyond this is not retried"},
      {.path = "retry.max_waiting_per_identity",
       .field = &Config::retry_max_waiting_per_identity,
       .min = 1,
       .max = 10'000'000,
       .doc = "runs of one identity waiting to be tried again; a transient failure "
              "beyond this is not retried"},
      {.path = "auth.jwt.keys_file",
       .field = &Config::jwt_keys_file,
       .doc = "JWKS document or PEM public key(s): accept JWTs signed by them",
       .accepted_doc = "a file path; needs issuer and audience"},
      {.path = "auth.jwt.issuer",
       .field = &Config::jwt_issuer,
       .doc = "must equal the JWT's iss claim",
       .accepted_doc = "a string; needs keys_file"},
      {.path = "auth.jwt.audience",
       .field = &Config::jwt_audience,
       .doc = "must be in the JWT's aud claim",
       .accepted_doc = "a string; needs keys_file"},
      {.path = "auth.jwt.identity_claim",
       .field = &Config::jwt_identity_claim,
       .doc = "the claim naming the caller's identity",
       .accepted_doc = "a non-empty string"},
      {.path = "auth.jwt.leeway_seconds",
       .field = &Config::jwt_leeway_seconds,
       .min = 0,
       .max = 3600,
       .doc = "clock skew allowed on exp and nbf"},
      {.path = "auth.jwt.max_lifetime_seconds",
       .field = &Config::jwt_max_lifetime_seconds,
       .min = 60,
       .max = 366 * 24 * 3600,
       .doc = "JWTs valid for longer (exp - iat, or exp - now) are refused"},
      {.path = "notifications.key_file",
       .field = &Config::notifications_key_file,
       .doc = "HMAC-SHA256 key signing job notifications (Timer-Signature); "
              "empty: notifications off",
       .accepted_doc = "a file path; owned by timerd's user or root, mode 0600"},
      {.path = "notifications.allow",
       .field = &Config::notifications_allow,
       .doc = "where notification webhooks may go: hosts, host:port, URL prefixes, "
              "addresses, CIDR ranges, `*`",
       .accepted_doc = "strings; special addresses (loopback, private...) only by "
                       "address or CIDR"},
      {.path = "notifications.ca_file",
       .field = &Config::notifications_ca_file,
       .doc = "CA bundle for https webhooks",
       .default_doc = "the system's",
       .accepted_doc = "a file path"},
      {.path = "notifications.threads",
       .field = &Config::notifications_threads,
       .min = 1,
       .max = 64,
       .doc = "threads delivering notifications"},
      {.path = "notifications.max_queued",
       .field = &Config::notifications_max_queued,
       .min = 1,
       .max = 10'000'000,
       .doc = "notifications waiting or between attempts; more are dropped"},
      {.path = "notifications.max_queued_per_identity",
       .field = &Config::notifications_max_queued_per_identity,
       .min = 1,
       .max = 10'000'000,
       .doc = "of those, at most this many for one owner"},
      {.path = "notifications.max_attempts",
       .field = &Config::notifications_max_attempts,
       .min = 1,
       .max = 100,
       .doc = "attempts per notification before it is given up"},
      {.path = "notifications.initial_backoff_ms",
       .field = &Config::notifications_initial_backoff_ms,
       .min = 1,
       .max = 3'600'000,
       .doc = "wait before the second attempt; doubles for each further one"},
      {.path = "notifications.max_backoff_ms",
       .field = &Config::notifications_max_backoff_ms,
       .min = 1,
       .max = 86'400'000,
       .doc = "longest wait between attempts"},
      {.path = "notifications.timeout_ms",
       .field = &Config::notifications_timeout_ms,
       .min = 100,
       .max = 300'000,
       .doc = "time limit of one attempt"},
  };
  return *keys;
}

namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status Bad(absl::string_view origin, absl::string_view key,
                 absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", key, ": ", problem));
}

const ConfigKey* FindKey(absl::string_view path) {
  for (const ConfigKey& key : ConfigKeys()) {
    if (key.path == path) return &key;
  }
  return nullptr;
}

// The names one level below `prefix` ("" for the top level): keys and
// tables, each once, in table order.
std::vector<std::string> NamesUnder(absl::string_view prefix) {
  std::vector<std::string> names;
  const auto add = [&](absl::string_view path) {
    if (!prefix.empty()) {
      if (path.size() <= prefix.size() || path.substr(0, prefix.size()) != prefix ||
          path[prefix.size()] != '.') {
        return;
      }
      path.remove_prefix(prefix.size() + 1);
    }
    std::string name(path.substr(0, path.find('.')));
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  };
  for (const ConfigKey& key : ConfigKeys()) add(key.path);
  add(kPluginsTable);
  return names;
}

// Edit distance, for suggesting the key a typo meant.
size_t Distance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string UnknownSetting(absl::string_view prefix, absl::string_view name) {
  const std::vector<std::string> names = NamesUnder(prefix);
  for (const std::string& known : names) {
    if (Distance(name, known) <= 2) {
      return absl::StrCat("unknown setting (did you mean ", known, "?)");
    }
  }
  if (!prefix.empty()) {
    return absl::StrCat("unknown setting (known in [", prefix,
                        "]: ", absl::StrJoin(names, ", "), ")");
  }
  return "unknown setting";
}

std::string Quoted(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

// "trace, debug, info, warn or error".
std::string OneOf(const std::vector<absl::string_view>& allowed) {
  std::string text;
  for (size_t i = 0; i < allowed.size(); ++i) {
    if (i > 0) absl::StrAppend(&text, i + 1 == allowed.size() ? " or " : ", ");
    absl::StrAppend(&text, allowed[i]);
  }
  return text;
}

// What the key accepts, for error messages: "must be <this>".
std::string Expected(const ConfigKey& key) {
  return std::visit(Overloaded{
                        [&](std::string Config::*) -> std::string {
                          return key.allowed.empty() ? "a string" : OneOf(key.allowed);
                        },
                        [](bool Config::*) -> std::string { return "true or false"; },
                        [](std::vector<std::string> Config::*) -> std::string {
                          return "an array of strings";
                        },
                        [&](auto) -> std::string {
                          return absl::StrCat("a whole number from ", key.min, " to ",
                                              key.max);
                        },
                    },
                    key.field);
}

// The value as TOML would write it, for "(got ...)".
std::string Shown(const toml::node& node) {
  if (const auto* s = node.as_string()) return Quoted(Sv(s->get()));
  if (const auto* i = node.as_integer()) return absl::StrCat(i->get());
  if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
  if (node.is_floating_point()) return "a decimal number";
  if (node.is_array()) return "an array";
  if (node.is_table()) return "a table";
  return "a date or time";
}

absl::Status SetKey(const ConfigKey& key, const toml::node& node,
                    absl::string_view origin, Config& config) {
  const auto refuse = [&] {
    return Bad(origin, key.path,
               absl::StrCat("must be ", Expected(key), " (got ", Shown(node), ")"));
  };
  return std::visit(
      Overloaded{
          [&](std::string Config::*member) -> absl::Status {
            const auto* v = node.as_string();
            if (v == nullptr) return refuse();
            if (!key.allowed.empty() && std::find(key.allowed.begin(), key.allowed.end(),
                                                  Sv(v->get())) == key.allowed.end()) {
              return refuse();
            }
            config.*member = v->get();
            return absl::OkStatus();
          },
          [&](bool Config::*member) -> absl::Status {
            const auto* v = node.as_boolean();
            if (v == nullptr) return refuse();
            config.*member = v->get();
            return absl::OkStatus();
          },
          [&](std::vector<std::string> Config::*member) -> absl::Status {
            const auto* array = node.as_array();
            if (array == nullptr) return refuse();
            std::vector<std::string> values;
            for (const toml::node& element : *array) {
              const auto* v = element.as_string();
              if (v == nullptr) return refuse();
              values.push_back(v->get());
            }
            config.*member = std::move(values);
            return absl::OkStatus();
          },
          [&](auto member) -> absl::Status {
            const auto* v = node.as_integer();
            if (v == nullptr || v->get() < key.min || v->get() > key.max) return refuse();
            // ConfigKeysTest.AreConsistent (config_test) checks that max fits the member.
            using Member = std::remove_reference_t<decltype(config.*member)>;
            config.*member = static_cast<Member>(v->get());
            return absl::OkStatus();
          },
      },
      key.field);
}

absl::Status ParsePlugins(const toml::node& node, absl::string_view origin,
                          Config& config) {
  const toml::table* plugins = node.as_table();
  if (plugins == nullptr) return Bad(origin, kPluginsTable, "must be a table");
  for (const auto& [name, plugin] : *plugins) {
    if (!plugin.is_table()) {
      return Bad(origin, absl::StrCat(kPluginsTable, ".", Sv(name.str())),
                 "must be a table");
    }
    std::ostringstream json;
    json << toml::json_formatter{*plugin.as_table()};
    config.plugins[std::string(Sv(name.str()))] = nlohmann::json::parse(json.str());
  }
  return absl::OkStatus();
}

// Sets every key of `table`, whose path is `prefix` ("" for the top level).
absl::Status ParseTable(const toml::table& table, const std::string& prefix,
                        absl::string_view origin, Config& config) {
  for (const auto& [name, node] : table) {
    const absl::string_view leaf = Sv(name.str());
    const std::string path =
        prefix.empty() ? std::string(leaf) : absl::StrCat(prefix, ".", leaf);
    if (path == kPluginsTable) {
      if (absl::Status s = ParsePlugins(node, origin, config); !s.ok()) return s;
    } else if (const ConfigKey* key = FindKey(path)) {
      if (absl::Status s = SetKey(*key, node, origin, config); !s.ok()) return s;
    } else if (!NamesUnder(path).empty()) {
      const toml::table* sub = node.as_table();
      if (sub == nullptr) return Bad(origin, path, "must be a table");
      if (absl::Status s = ParseTable(*sub, path, origin, config); !s.ok()) return s;
    } else {
      return Bad(origin, path, UnknownSetting(prefix, leaf));
    }
  }
  return absl::OkStatus();
}

// Reference cells.
std::string TypeName(const ConfigKey& key) {
  return std::visit(
      Overloaded{[](std::string Config::*) { return "string"; },
                 [](bool Config::*) { return "bool"; },
                 [](std::vector<std::string> Config::*) { return "array of strings"; },
                 [](auto) { return "integer"; }},
      key.field);
}

// The default as TOML writes it.
std::string DefaultValue(const ConfigKey& key) {
  static const Config* const defaults = new Config();
  return std::visit(
      Overloaded{
          [](std::string Config::*m) { return Quoted(defaults->*m); },
          [](bool Config::*m) -> std::string { return defaults->*m ? "true" : "false"; },
          [](std::vector<std::string> Config::*m) {
            return absl::StrCat("[",
                                absl::StrJoin(defaults->*m, ", ",
                                              [](std::string* out, const std::string& v) {
                                                absl::StrAppend(out, Quoted(v));
                                              }),
                                "]");
          },
          [](auto m) { return absl::StrCat(defaults->*m); }},
      key.field);
}

std::string Accepted(const ConfigKey& key) {
  if (!key.accepted_doc.empty()) return std::string(key.accepted_doc);
  return std::visit(
      Overloaded{
          [&](std::string Config::*) -> std::string {
            if (key.allowed.empty()) return "a string";
            return absl::StrJoin(key.allowed, ", ",
                                 [](std::string* out, absl::string_view v) {
                                   absl::StrAppend(out, "`", v, "`");
                                 });
          },
          [](bool Config::*) -> std::string { return "`true`, `false`"; },
          [](std::vector<std::string> Config::*) -> std::string {
            return "an array of strings";
          },
          [&](auto) -> std::string { return absl::StrCat(key.min, " to ", key.max); },
      },
      key.field);
}

}  // namespace

std::string ConfigReference() {
  std::string out =
      "| key | type | default | accepted | what |\n"
      "|---|---|---|---|---|\n";
  for (const ConfigKey& key : ConfigKeys()) {
    std::string def(key.default_doc);
    if (def.empty()) {
      def = DefaultValue(key) == "\"\"" ? "none"
                                        : absl::StrCat("`", DefaultValue(key), "`");
    }
    absl::StrAppend(&out, "| `", key.path, "` | ", TypeName(key), " | ", def, " | ",
                    Accepted(key), " | ", key.doc, " |\n");
  }
  absl::StrAppend(&out, "| `[", kPluginsTable,
                  ".NAME]` | table | none | what provider NAME accepts | "
                  "handed to provider NAME as JSON |\n");
  return out;
}

std::string SampleConfig() {
  std::string out =
      "# timerd's configuration, every key at its default (`timerd config sample`).\n"
      "# The keys, their ranges and their flags: `timerd config reference`.\n";
  std::string table;
  for (const ConfigKey& key : ConfigKeys()) {
    const size_t dot = key.path.rfind('.');
    const absl::string_view prefix =
        dot == absl::string_view::npos ? absl::string_view() : key.path.substr(0, dot);
    const absl::string_view name =
        dot == absl::string_view::npos ? key.path : key.path.substr(dot + 1);
    if (prefix != table) {
      table = std::string(prefix);
      absl::StrAppend(&out, "\n[", table, "]\n");
    }
    absl::StrAppend(&out, "# ", key.doc, "; ", Accepted(key));
    if (!key.default_doc.empty()) absl::StrAppend(&out, "; default: ", key.default_doc);
    absl::StrAppend(&out, "\n");
    // An empty string (no value) stays a comment.
    absl::StrAppend(&out, DefaultValue(key) == "\"\"" ? "# " : "", name, " = ",
                    DefaultValue(key), "\n");
  }
  absl::StrAppend(&out, "\n# [", kPluginsTable,
                  ".NAME]: handed to provider NAME as JSON\n");
  return out;
}

absl::StatusOr<Config> ParseConfig(absl::string_view toml_text,
                                   absl::string_view origin) {
  toml::table table;
  try {
    table = toml::parse(std::string_view(toml_text.data(), toml_text.size()),
                        std::string(origin));
  } catch (const toml::parse_error& err) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ":", err.source().begin.line,
                                                   ":", err.source().begin.column, ": ",
                                                   std::string(err.description())));
  }
  Config config;
  if (absl::Status s = ParseTable(table, "", origin, config); !s.ok()) return s;
  return config;
}

absl::Status ValidateConfig(const Config& config) {
  if (!config.store.empty() && !absl::StartsWith(config.store, "postgres://") &&
      !absl::StartsWith(config.store, "postgresql://")) {
    // Not echoed: it may hold a password.
    return absl::InvalidArgumentError(
        "store: must be a postgres:// or postgresql:// URI, or empty for the embedded "
        "SQLite store");
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert, tls_key: give both (or --tls-cert and --tls-key) or neither");
  }
  if (!config.tls_client_ca.empty() && config.tls_cert.empty()) {
    return absl::InvalidArgumentError(
        "tls_client_ca: mutual TLS needs tls_cert and tls_key too");
  }
  if (!config.jwt_keys_file.empty()) {
    if (config.jwt_issuer.empty()) {
      return absl::InvalidArgumentError("auth.jwt.issuer: required with keys_file");
    }
    if (config.jwt_audience.empty()) {
      return absl::InvalidArgumentError("auth.jwt.audience: required with keys_file");
    }
    if (config.jwt_identity_claim.empty()) {
      return absl::InvalidArgumentError("auth.jwt.identity_claim: must not be empty");
    }
  } else if (!config.jwt_issuer.empty() || !config.jwt_audience.empty()) {
    return absl::InvalidArgumentError(
        "auth.jwt.keys_file: required to accept JWTs (issuer/audience are set)");
  }
  if (config.retry_max_backoff_seconds < config.retry_initial_backoff_seconds) {
    return absl::InvalidArgumentError(
        "retry.max_backoff_seconds: must be at least retry.initial_backoff_seconds");
  }
  if (config.lease_margin_ms * 2 >= config.lease_ttl_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease_margin_ms: must be below half of lease_ttl_ms (",
                     config.lease_ttl_ms, ")"));
  }
  return absl::OkStatus();
}

std::string PluginDir(const Config& config) {
  return config.plugin_dir.empty() ? DefaultPluginDir() : config.plugin_dir;
}

absl::Status CheckConfigFilesTrusted(const Config& config, const std::string& config_path,
                                     uid_t uid) {
  const std::pair<const char*, const std::string*> files[] = {
      {"config file", &config_path},
      {"tls_cert", &config.tls_cert},
      {"tls_key", &config.tls_key},
      {"tls_client_ca", &config.tls_client_ca},
      {"auth.jwt.keys_file", &config.jwt_keys_file},
      {"notifications.key_file", &config.notifications_key_file}};
  for (const auto& [key, path] : files) {
    if (path->empty()) continue;
    absl::Status s = util::CheckTrusted(
        *path,
        {.uid = uid, .check_parents = true, .kind = util::TrustOptions::Kind::kFile});
    // A missing file is reported by what reads it, as "cannot read".
    if (absl::IsNotFound(s)) continue;
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(key, ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

std::string DefaultDataDir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    return absl::StrCat(xdg, "/timer");
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return absl::StrCat(home, "/.local/share/timer");
  }
  return "timer-data";
}

std::string DefaultPluginDir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "lib/timer/plugins";
  return (exe.parent_path().parent_path() / "lib" / "timer" / "plugins").string();
}

absl::Status ValidateListenAddress(const std::string& listen, bool allow_insecure_remote,
                                   absl::string_view key) {
  if (absl::StartsWith(listen, "unix:")) return absl::OkStatus();
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": \"", listen, "\" is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  int port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": \"", listen, "\" has no valid port"));
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  // Only literal loopback addresses (and "localhost"): a host name that merely
  // starts with "127." could resolve anywhere.
  in_addr v4;
  in6_addr v6;
  const bool loopback =
      host == "localhost" ||
      (inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127) ||
      (inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6));
  if (!loopback && !allow_insecure_remote) {
    return absl::InvalidArgumentError(absl::StrCat(
        key, ": ", listen,
        " is not a loopback address; plaintext would leave this machine. "
        "Serve TLS (--tls-cert/--tls-key) or set allow_insecure_remote = true to "
        "do it anyway"));
  }
  return absl::OkStatus();
}

}  // namespace timer::server
