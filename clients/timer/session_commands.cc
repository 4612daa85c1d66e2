#include "session_commands.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "output.h"

namespace timer::cli {
namespace {

// Saves `cache`; a failure is exit code 1 whatever its cause.
absl::Status SaveCache(const TokenCache& cache) {
  absl::Status s = cache.Save();
  return s.ok() ? s : absl::UnknownError(s.message());
}

absl::StatusOr<v1::WhoAmIResponse> WhoAmI(const ClientOptions& options) {
  absl::StatusOr<Client> client = Client::Connect(options);
  if (!client.ok()) return client.status();
  v1::WhoAmIResponse who;
  if (absl::Status s =
          client->Call(&v1::SessionService::Stub::WhoAmI, v1::WhoAmIRequest(), &who);
      !s.ok()) {
    return s;
  }
  return who;
}

absl::Status Login(Globals& g, std::string token) {
  if (token.empty()) {
    // From stdin, so it stays out of the shell history and `ps`.
    std::getline(std::cin, token);
  }
  const size_t b = token.find_first_not_of(" \t\r\n");
  token = b == std::string::npos
              ? ""
              : token.substr(b, token.find_last_not_of(" \t\r\n") - b + 1);
  if (token.empty()) {
    return absl::InvalidArgumentError(
        "session login: give the token on stdin or with --token");
  }
  ClientOptions candidate = g.client;
  candidate.token = token;
  candidate.token_source = "session login";
  absl::StatusOr<v1::WhoAmIResponse> who = WhoAmI(candidate);
  if (!who.ok()) return who.status();
  absl::StatusOr<TokenCache> cache = LoadTokenCache();
  if (!cache.ok()) return cache.status();
  cache->Put(g.client.server, {token, who->identity()});
  if (absl::Status s = SaveCache(*cache); !s.ok()) return s;
  if (g.json()) {
    PrintJson(*who, std::cout);
  } else {
    std::cout << "Logged in to " << Printable(g.client.server) << " as "
              << Printable(who->identity()) << " (" << Printable(who->auth_method())
              << "); token saved in " << Printable(cache->path()) << "\n";
  }
  return absl::OkStatus();
}

absl::Status ShowWhoAmI(Globals& g) {
  if (absl::Status s = ResolveToken(g); !s.ok()) return s;
  absl::StatusOr<v1::WhoAmIResponse> who = WhoAmI(g.client);
  if (!who.ok()) return who.status();
  if (g.json()) {
    PrintJson(*who, std::cout);
  } else {
    PrintWhoAmI(*who, g.client.server, std::cout);
  }
  return absl::OkStatus();
}

absl::Status Logout(const Globals& g) {
  absl::StatusOr<TokenCache> cache = LoadTokenCache();
  if (!cache.ok()) return cache.status();
  const bool had = cache->Remove(g.client.server);
  if (had) {
    if (absl::Status s = SaveCache(*cache); !s.ok()) return s;
  }
  std::cout << (had ? "Logged out of " : "No saved session for ") << g.client.server
            << "\n";
  return absl::OkStatus();
}

absl::Status Revoke(Globals& g) {
  if (absl::Status s = ResolveToken(g); !s.ok()) return s;
  if (g.client.token.empty()) {
    return absl::UnauthenticatedError(
        "session revoke: no token to revoke; log in first or set TIMER_TOKEN");
  }
  absl::StatusOr<Client> client = Client::Connect(g.client);
  if (!client.ok()) return client.status();
  v1::RevokeSessionResponse response;
  if (absl::Status s = client->Call(&v1::SessionService::Stub::RevokeSession,
                                    v1::RevokeSessionRequest(), &response);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<TokenCache> cache = LoadTokenCache();
  if (!cache.ok()) return cache.status();
  if (cache->Remove(g.client.server)) {
    if (absl::Status s = SaveCache(*cache); !s.ok()) return s;
  }
  std::cout << "Token revoked on " << g.client.server << " and logged out\n";
  return absl::OkStatus();
}

}  // namespace

void AddSessionCommands(CLI::App& app, Globals& g, CommandSet& commands) {
  CLI::App* session = app.add_subcommand(
      "session", "log in with a token, show who you are, log out, revoke");
  session->require_subcommand(1);
  auto login_token = std::make_shared<std::string>();
  CLI::App* login = session->add_subcommand(
      "login",
      "check a token with timerd and save it for this server (0600 in "
      "~/.config/timer/tokens.json); reads the token from stdin unless --token");
  login->add_option("--token", *login_token,
                    "the token (default: read a line from stdin)");
  commands.Add(login, [&g, login_token] { return Login(g, *login_token); });
  CLI::App* whoami = session->add_subcommand("whoami", "the identity timerd sees");
  commands.Add(whoami, [&g] { return ShowWhoAmI(g); });
  CLI::App* logout =
      session->add_subcommand("logout", "forget the saved token for this server");
  commands.Add(logout, [&g] { return Logout(g); });
  CLI::App* revoke =
      session->add_subcommand("revoke", "revoke the token on the server, then forget it");
  commands.Add(revoke, [&g] { return Revoke(g); });
}

}  // namespace timer::cli
