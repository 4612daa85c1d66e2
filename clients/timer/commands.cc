#include "commands.h"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <memory>

namespace timer::cli {

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return kExitUsage;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return kExitPermission;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return kExitConflict;
    default:
      return kExitError;
  }
}

void AddGlobalOptions(CLI::App& app, Globals& g) {
  ClientOptions& c = g.client;
  if (const char* env = std::getenv("TIMER_SERVER"); env && *env) c.server = env;
  app.add_option("--server", c.server, "timerd address HOST:PORT (env TIMER_SERVER)")
      ->capture_default_str();
  app.add_option("--format", g.format, "output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--timeout", c.timeout_seconds, "seconds to wait for each call")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  if (const char* env = std::getenv("TIMER_TLS_CA"); env && *env) c.tls_ca = env;
  app.add_flag("--tls", c.tls, "connect with TLS (implied by the --tls-* options)");
  app.add_option("--tls-ca", c.tls_ca,
                 "PEM CA certificates that sign timerd's certificate (env TIMER_TLS_CA; "
                 "default: the system's)")
      ->check(CLI::ExistingFile);
  auto* tls_cert =
      app.add_option("--tls-cert", c.tls_cert, "PEM client certificate, for mutual TLS")
          ->check(CLI::ExistingFile);
  auto* tls_key = app.add_option("--tls-key", c.tls_key, "PEM private key of --tls-cert")
                      ->check(CLI::ExistingFile);
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  app.add_option("--tls-server-name", c.tls_server_name,
                 "name to expect in timerd's certificate (default: the --server host)");
  // Inherited by every subcommand added from now on: an option a command
  // does not know is tried on its parent, up to the root.
  app.fallthrough();
}

namespace {

void SetGlobalsFooter(CLI::App& sub, const CLI::App& root) {
  sub.footer([&root, &sub] {
    std::vector<const CLI::Option*> globals =
        root.get_options([&root](const CLI::Option* o) {
          return o->nonpositional() && o != root.get_help_ptr() &&
                 o != root.get_help_all_ptr() && o != root.get_version_ptr();
        });
    auto formatter = std::dynamic_pointer_cast<CLI::Formatter>(sub.get_formatter());
    if (!formatter || globals.empty()) return std::string();
    std::string text =
        formatter->make_group("Global options (before or after the command, see " +
                                  root.get_name() + " --help)",
                              false, globals);
    while (!text.empty() && text.back() == '\n') text.pop_back();  // CLI11 adds its own.
    return text;
  });
  for (CLI::App* child : sub.get_subcommands([](const CLI::App*) { return true; })) {
    SetGlobalsFooter(*child, root);
  }
}

}  // namespace

void ShowGlobalOptionsInSubcommandHelp(CLI::App& app) {
  // Set last, so that no subcommand inherits it.
  app.footer("These options may also follow the command words, e.g. " + app.get_name() +
             " job list --format json.");
  for (CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    SetGlobalsFooter(*sub, app);
  }
}

absl::Status CommandSet::RunParsed() const {
  for (const auto& [command, handler] : handlers_) {
    if (command->parsed()) return handler();
  }
  return absl::InternalError("no command was selected");
}

absl::StatusOr<TokenCache> LoadTokenCache() {
  TokenCache cache(TokenCache::DefaultPath());
  absl::Status s = cache.Load();
  if (absl::IsPermissionDenied(s)) return s;
  if (!s.ok()) return absl::UnknownError(s.message());
  return cache;
}

absl::Status ResolveToken(Globals& g) {
  if (const char* env = std::getenv("TIMER_TOKEN"); env && *env) {
    g.client.token = env;
    g.client.token_source = "TIMER_TOKEN";
    return absl::OkStatus();
  }
  absl::StatusOr<TokenCache> cache = LoadTokenCache();
  if (!cache.ok()) return cache.status();
  if (auto session = cache->Get(g.client.server)) {
    g.client.token = session->token;
    g.client.token_source = cache->path();
  }
  return absl::OkStatus();
}

absl::StatusOr<Client> ConnectAsUser(Globals& g) {
  if (absl::Status s = ResolveToken(g); !s.ok()) return s;
  return Client::Connect(g.client);
}

}  // namespace timer::cli
