// What every `timer` command shares: the global options (Globals), the table
// of command handlers (CommandSet), the one mapping from a handler's
// absl::Status to the process's exit code, and the token a command calls
// timerd with.
//
// A command is a CLI11 subcommand plus a handler. The handler runs after the
// command line parsed, reads the options it bound (they live as long as the
// CommandSet), does its work and returns a status; it prints results to
// stdout and nothing to stderr: main() prints a failed status as one line,
// "timer: <message>", and exits with ExitCodeFor(status).
//
// Global options (--server, --format, --timeout, --tls*) are declared on the
// root app, whose subcommands fall through to it (CLI11 `fallthrough`), so
// they are accepted before or after any command word:
//   timer --format json job list == timer job --format json list
//                                == timer job list --format json
//
// Single-threaded, as the CLI is.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client.h"
#include "token_cache.h"

namespace CLI {
class App;
}  // namespace CLI

namespace timer::cli {

// Exit codes (stable, for scripts).
enum ExitCode {
  kExitOk = 0,
  kExitError = 1,  // Anything else.
  kExitUsage = 2,  // A usage error or an invalid argument.
  kExitNotFound = 3,
  kExitPermission = 4,   // Not authenticated or permission denied.
  kExitUnavailable = 5,  // Server unavailable or deadline exceeded.
  kExitConflict = 6,     // Already exists, aborted, failed precondition.
};

// The exit code for a handler's status (kExitOk for OK).
int ExitCodeFor(const absl::Status& status);

struct Globals {
  ClientOptions client;
  std::string format = "table";  // "table" or "json".
  bool json() const { return format == "json"; }
};

// Declares the global options on `app` (reading the defaults of --server and
// --tls-ca from TIMER_SERVER and TIMER_TLS_CA) and makes subcommands added
// afterwards pass the options they do not know up to it. Call it before
// adding any subcommand; `g` must outlive the parse.
void AddGlobalOptions(CLI::App& app, Globals& g);

// Lists the global options at the end of every subcommand's --help (they are
// not the subcommand's own, so CLI11 would not show them) and says in the
// root's that they may follow the command words. Call it after the whole
// command tree is built.
void ShowGlobalOptionsInSubcommandHelp(CLI::App& app);

// The handlers of the leaf commands.
class CommandSet {
 public:
  using Handler = std::function<absl::Status()>;

  // `command` is owned by its CLI11 parent; it must outlive this set.
  void Add(CLI::App* command, Handler handler) {
    handlers_.emplace_back(command, std::move(handler));
  }

  // Runs the handler of the command the parse selected. A command line
  // selects exactly one leaf command (each level requires a subcommand).
  absl::Status RunParsed() const;

 private:
  std::vector<std::pair<CLI::App*, Handler>> handlers_;
};

// The token cache at its default path, loaded. PERMISSION_DENIED when the
// file is unsafe; any other failure becomes UNKNOWN (exit code 1).
absl::StatusOr<TokenCache> LoadTokenCache();

// Fills g.client.token (and token_source): TIMER_TOKEN if set, else the
// token `timer session login` saved for g.client.server, else none.
absl::Status ResolveToken(Globals& g);

// ResolveToken, then a Client with the result: what every command that
// calls timerd as the user starts with.
absl::StatusOr<Client> ConnectAsUser(Globals& g);

}  // namespace timer::cli
