// timerd: the Timer Service daemon.
//
// Runs until SIGTERM or SIGINT, then shuts down gracefully: in-flight RPCs
// finish and the store is closed cleanly.
//
// `timerd token issue|list|revoke` manage bearer tokens in the store of the
// same --config/--data-dir (or --store), whether or not a timerd is serving it.
//
// `timerd config reference|sample|check` print the config keys (the table of
// docs/DEPLOYMENT.md), a config file of the defaults, and check a config
// file (with the flags given) without starting.
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "auth/token.h"
#include "plugin_host/plugin_host.h"
#include "server/config.h"
#include "server/data_dir.h"
#include "server/listener.h"
#include "server/server.h"
#include "server/store_open.h"
#include "store/sqlite_store.h"
#include "store/sqlite_token_store.h"
#include "timer/version.h"

namespace {

using ::timer::kVersion;  // timer/version.h, from CMakeLists.txt's project()

int Fail(const std::string& message) {
  spdlog::error("{}", message);
  return 1;
}

// Exit codes of the token commands, as the timer CLI's.
constexpr int kUsage = 2;
constexpr int kNotFound = 3;

int FailToken(int code, const std::string& message) {
  std::cerr << "timerd token: " << message << "\n";
  return code;
}

std::string UtcString(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// "90d", "12h", "30m", "3600s" or "3600"; "never" is nullopt.
std::optional<absl::Duration> ParseExpires(const std::string& text, bool* ok) {
  *ok = true;
  if (text == "never") return std::nullopt;
  std::string digits = text;
  absl::Duration unit = absl::Seconds(1);
  if (!text.empty() && !std::isdigit(static_cast<unsigned char>(text.back()))) {
    const char u = text.back();
    digits = text.substr(0, text.size() - 1);
    if (u == 'd')
      unit = absl::Hours(24);
    else if (u == 'h')
      unit = absl::Hours(1);
    else if (u == 'm')
      unit = absl::Minutes(1);
    else if (u == 'w')
      unit = absl::Hours(24 * 7);
    else if (u != 's')
      *ok = false;
  }
  int64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n) || n <= 0 || n > 100LL * 365 * 24 * 3600) *ok = false;
  return unit * n;
}

// The tokens table of the data directory's store, creating or upgrading the
// store if needed. Needs no lock: SQLite lets this run beside a timerd. The
// directory is created or checked as timerd does (server/data_dir.h): a store
// planted by another user must not receive tokens either.
absl::StatusOr<std::unique_ptr<timer::store::TokenStore>> OpenTokens(
    const std::string& data_dir) {
  if (absl::Status s = timer::server::PrepareDataDir(data_dir, ::geteuid()); !s.ok()) {
    return s;
  }
  const std::string path = data_dir + "/timer.db";
  auto tokens = timer::store::SqliteTokenStore::Open(path);
  if (tokens.ok() || !absl::IsFailedPrecondition(tokens.status())) return tokens;
  // A new or older store: its migrations add the tokens table.
  auto store = timer::store::SqliteStore::Open({.path = path});
  if (!store.ok()) return store.status();
  (*store)->Close();
  return timer::store::SqliteTokenStore::Open(path);
}

struct TokenArgs {
  std::string identity, expires = "90d", description, token_id, format = "table";
};

int TokenIssue(timer::store::TokenStore& tokens, const TokenArgs& a) {
  bool ok = false;
  const std::optional<absl::Duration> ttl = ParseExpires(a.expires, &ok);
  if (!ok) {
    return FailToken(kUsage,
                     "--expires: use a duration like 90d, 12h, 30m or 3600, or never");
  }
  const absl::Time now = absl::Now();
  std::optional<absl::Time> expires;
  if (ttl) expires = now + *ttl;
  auto issued = timer::auth::IssueToken(tokens, a.identity, expires, a.description, now);
  if (!issued.ok()) {
    return FailToken(absl::IsInvalidArgument(issued.status()) ? kUsage : 1,
                     std::string(issued.status().message()));
  }
  // The token is the last line: scripts take it with `tail -n 1`.
  std::cout << "Issued token " << issued->record.token_id << " for " << a.identity
            << (expires ? ", expires " + UtcString(*expires) : ", never expires")
            << ".\nIt is shown only this once; `timer session login` reads it from "
               "stdin.\n"
            << issued->token << "\n";
  return 0;
}

int TokenList(timer::store::TokenStore& tokens, const TokenArgs& a) {
  auto list = tokens.List(a.identity);
  if (!list.ok()) return FailToken(1, std::string(list.status().message()));
  const absl::Time now = absl::Now();
  const auto state = [&](const timer::store::TokenRecord& t) -> std::string {
    if (t.revoke_us) return "revoked";
    if (t.expire_us && absl::FromUnixMicros(*t.expire_us) <= now) return "expired";
    return "active";
  };
  if (a.format == "json") {
    nlohmann::json out = {{"tokens", nlohmann::json::array()}};
    for (const auto& t : *list) {
      nlohmann::json j = {{"token_id", t.token_id},
                          {"identity", t.identity},
                          {"create_time", UtcString(absl::FromUnixMicros(t.create_us))},
                          {"state", state(t)},
                          {"description", t.description}};
      if (t.expire_us) j["expire_time"] = UtcString(absl::FromUnixMicros(*t.expire_us));
      if (t.revoke_us) j["revoke_time"] = UtcString(absl::FromUnixMicros(*t.revoke_us));
      out["tokens"].push_back(j);
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (list->empty()) {
    std::cout << "No tokens.\n";
    return 0;
  }
  std::printf("%-16s  %-8s  %-20s  %-20s  %s\n", "TOKEN_ID", "STATE", "CREATED",
              "EXPIRES", "IDENTITY (DESCRIPTION)");
  for (const auto& t : *list) {
    const std::string expires =
        t.expire_us ? UtcString(absl::FromUnixMicros(*t.expire_us)) : "never";
    std::string who = t.identity;
    if (!t.description.empty()) who += " (" + t.description + ")";
    std::printf("%-16s  %-8s  %-20s  %-20s  %s\n", t.token_id.c_str(), state(t).c_str(),
                UtcString(absl::FromUnixMicros(t.create_us)).c_str(), expires.c_str(),
                who.c_str());
  }
  return 0;
}

int TokenRevoke(timer::store::TokenStore& tokens, const TokenArgs& a) {
  absl::Status s = tokens.Revoke(a.token_id, absl::ToUnixMicros(absl::Now()));
  if (absl::IsNotFound(s)) return FailToken(kNotFound, std::string(s.message()));
  if (!s.ok()) return FailToken(1, std::string(s.message()));
  std::cout << "Revoked token " << a.token_id
            << "; a running timerd refuses it from its next call.\n";
  return 0;
}

// What `timerd config check` adds to ValidateConfig: the files the config
// names are trusted, and the providers it asks for load, each [plugins.NAME]
// table given to its provider, exactly as at start.
absl::Status CheckFilesAndProviders(const timer::server::Config& config,
                                    const std::string& config_path) {
  const uid_t uid = ::geteuid();
  if (absl::Status s = timer::server::CheckConfigFilesTrusted(config, config_path, uid);
      !s.ok()) {
    return s;
  }
  return timer::plugin_host::LoadPlugins(timer::server::PluginDir(config),
                                         config.load_plugins, config.plugins, uid)
      .status();
}

}  // namespace

int main(int argc, char** argv) {
  ::umask(077);  // The store and everything else timerd writes is private.
  // Debian's Abseil is built with Mutex deadlock detection on, a debugging aid
  // that tracks every lock acquisition; it costs ~10% of durable CreateJob
  // throughput (bench/create_get_bench.cc, --absl-deadlock-detection).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Signals are taken synchronously by the main thread with sigwait(); block
  // them before any other thread starts so none of those receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CLI::App app{"timerd: runs recurring jobs on a fixed schedule", "timerd"};
  std::string config_path, listen, data_dir, store, plugin_dir, log_level;
  std::string tls_cert, tls_key, tls_client_ca, http_listen;
  app.add_option("--config", config_path, "TOML configuration file")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", listen, "address to serve on (default 127.0.0.1:50051)");
  app.add_option("--http-listen", http_listen,
                 "HOST:PORT: also serve the API as JSON over HTTP, /healthz, /readyz and "
                 "/metrics (default: off)");
  app.add_option("--data-dir", data_dir,
                 "directory of the embedded store (default ~/.local/share/timer)");
  app.add_option("--store", store,
                 "postgres://USER@HOST:PORT/DB?sslmode=...: keep jobs and tokens in "
                 "PostgreSQL (default: the embedded store in the data directory)");
  app.add_option("--plugin-dir", plugin_dir,
                 "directory of the action-provider plugins (NAME.so), instead of "
                 "../lib/timer/plugins next to timerd");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-client-ca", tls_client_ca,
                 "PEM CA certificates: accept client certificates they sign; the "
                 "certificate's subject is the caller's identity (mutual TLS)")
      ->check(CLI::ExistingFile);
  app.set_version_flag("--version", kVersion);
  // --config, --data-dir and --store may also follow `token ...`.
  app.fallthrough();

  TokenArgs ta;
  CLI::App* token = app.add_subcommand(
      "token", "issue, list and revoke bearer tokens in this timerd's store");
  token->require_subcommand(1);
  CLI::App* issue = token->add_subcommand(
      "issue", "issue a token for an identity; the token is the last line printed");
  issue
      ->add_option("--identity", ta.identity,
                   "who the token acts as, e.g. alice@example.org")
      ->required();
  issue
      ->add_option("--expires", ta.expires,
                   "lifetime: 90d, 12h, 30m, 3600 (seconds) or never")
      ->capture_default_str();
  issue->add_option("--description", ta.description, "a note shown by token list");
  CLI::App* list = token->add_subcommand("list", "list tokens (never their secrets)");
  list->add_option("--identity", ta.identity, "only this identity's tokens");
  list->add_option("--format", ta.format, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  CLI::App* revoke = token->add_subcommand(
      "revoke", "revoke a token; a running timerd refuses it from its next call");
  revoke->add_option("TOKEN_ID", ta.token_id, "the id shown by issue and list")
      ->required();

  CLI::App* config_cmd = app.add_subcommand("config", "the configuration file's keys");
  config_cmd->require_subcommand(1);
  CLI::App* config_reference = config_cmd->add_subcommand(
      "reference", "print every key with its type, default and range (Markdown)");
  CLI::App* config_sample = config_cmd->add_subcommand(
      "sample", "print a config file of every key at its default");
  CLI::App* config_check = config_cmd->add_subcommand(
      "check",
      "check --config (and the flags given) as timerd would at start, then exit");
  CLI11_PARSE(app, argc, argv);
  if (config_reference->parsed()) {
    std::cout << timer::server::ConfigReference();
    return 0;
  }
  if (config_sample->parsed()) {
    std::cout << timer::server::SampleConfig();
    return 0;
  }

  auto logger = spdlog::stderr_logger_mt("timerd");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ timerd %l: %v",
                      spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(logger);

  timer::server::Config config;
  if (!config_path.empty()) {
    // Believed only if no other user could have written it.
    if (absl::Status s = timer::server::CheckConfigFilesTrusted(timer::server::Config{},
                                                                config_path, ::geteuid());
        !s.ok()) {
      return Fail(std::string(s.message()));
    }
    auto loaded = timer::server::LoadConfigFile(config_path);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    config = *std::move(loaded);
  }
  if (!listen.empty()) config.listen = listen;
  if (!http_listen.empty()) config.http_listen = http_listen;
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (!store.empty()) config.store = store;
  if (!plugin_dir.empty()) config.plugin_dir = plugin_dir;
  if (!log_level.empty()) config.log_level = log_level;
  if (!tls_cert.empty()) config.tls_cert = tls_cert;
  if (!tls_key.empty()) config.tls_key = tls_key;
  if (!tls_client_ca.empty()) config.tls_client_ca = tls_client_ca;
  spdlog::set_level(spdlog::level::from_str(config.log_level));

  if (config_check->parsed()) {
    absl::Status s = timer::server::ValidateConfig(config);
    if (s.ok()) {
      s = timer::server::ValidateListenAddress(
          config.listen, config.allow_insecure_remote || !config.tls_cert.empty());
    }
    if (s.ok() && !config.http_listen.empty()) {
      s = timer::server::ValidateListenAddress(
          config.http_listen, config.allow_insecure_remote || !config.tls_cert.empty(),
          "http_listen");
    }
    if (s.ok()) s = CheckFilesAndProviders(config, config_path);
    if (!s.ok()) return Fail(std::string(s.message()));
    std::cout << (config_path.empty() ? std::string("the defaults") : config_path)
              << ": ok\n";
    return 0;
  }

  if (token->parsed()) {
    if (absl::Status s = timer::server::ValidateConfig(config); !s.ok()) {
      return FailToken(1, std::string(s.message()));
    }
    const std::string dir =
        config.data_dir.empty() ? timer::server::DefaultDataDir() : config.data_dir;
    auto tokens = config.store.empty() ? OpenTokens(dir)
                                       : timer::server::OpenPostgresTokens(config);
    if (!tokens.ok()) return FailToken(1, std::string(tokens.status().message()));
    if (issue->parsed()) return TokenIssue(**tokens, ta);
    if (list->parsed()) return TokenList(**tokens, ta);
    return TokenRevoke(**tokens, ta);
  }

  // Each client connection costs two descriptors (server/listener.h); the
  // soft limit (1,024 by default under systemd) is raised to the hard one.
  const uint64_t files_before = timer::server::OpenFileLimit();
  const uint64_t files = timer::server::RaiseOpenFileLimit();
  if (files != files_before) {
    spdlog::info("open files: soft limit raised from {} to {}", files_before, files);
  }
  auto server = timer::server::TimerServer::Start(config);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  spdlog::info("timerd {} listening on {}", kVersion, (*server)->address());

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown(absl::Seconds(10));
  spdlog::info("stopped");
  return 0;
}
