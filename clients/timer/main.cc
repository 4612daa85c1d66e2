// timer: the command-line client of timerd.
//
//   timer job submit --interval 1d --action-provider noop --action-body '{}'
//   timer job status JOB_ID
//   timer job list [--show-deleted]
//   timer job delete JOB_ID
//   timer job transfer --source-endpoint ID --dest-endpoint ID --item SRC DST true ...
//   timer job update|pause|resume|run-now|results|watch JOB_ID
//   timer provider list|show NAME
//   timer completion bash|zsh
//   timer session login|whoami|logout|revoke
//
// Global options (--server, --format, --timeout, --tls*) go before or after
// the command words: `timer job list --format json` is `timer --format json
// job list`. Credentials: TIMER_TOKEN if set, else the token `timer session
// login` saved for this server in ~/.config/timer/tokens.json; --tls-ca/
// --tls-cert/--tls-key for a TLS server and mutual TLS.
//
// Exit codes (stable, for scripts): 0 ok, 1 other error, 2 usage error or
// invalid argument, 3 not found, 4 not authenticated or permission denied,
// 5 server unavailable or deadline exceeded, 6 conflict (already exists,
// aborted, failed precondition). ExitCodeFor() in commands.h maps a
// command's status to them.
//
// This file builds the command tree (each group's commands and handlers come
// from its *_commands.h), parses, runs the selected handler and reports.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "commands.h"
#include "completion.h"
#include "job_commands.h"
#include "output.h"
#include "provider_commands.h"
#include "session_commands.h"
#include "timer/version.h"

namespace timer::cli {
namespace {

// `timer completion bash|zsh`: needs no server, token or TLS files.
void AddCompletionCommand(CLI::App& app, CommandSet& commands) {
  auto shell = std::make_shared<std::string>();
  CLI::App* completion = app.add_subcommand(
      "completion",
      "print a shell completion script for bash or zsh\n\n"
      "bash (needs the bash-completion package, or source it from ~/.bashrc):\n"
      "  mkdir -p ~/.local/share/bash-completion/completions\n"
      "  timer completion bash > ~/.local/share/bash-completion/completions/timer\n"
      "zsh:\n"
      "  mkdir -p ~/.zfunc && timer completion zsh > ~/.zfunc/_timer\n"
      "  # in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath)\n"
      "Or for this shell only: source <(timer completion bash)   (zsh: after compinit)");
  completion->add_option("SHELL", *shell, "bash or zsh")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh"}));
  commands.Add(completion, [&app, shell] {
    std::cout << (*shell == "bash" ? BashCompletion(app) : ZshCompletion(app));
    return absl::OkStatus();
  });
}

// An error message as printed: Printable(), cut at 4 KiB.
std::string ErrorText(absl::string_view message) {
  constexpr size_t kMaxErrorBytes = 4096;
  std::string text = Printable(message.substr(0, kMaxErrorBytes));
  if (message.size() > kMaxErrorBytes) {
    text += "...(" + std::to_string(message.size()) + " bytes)";
  }
  return text;
}

int Run(int argc, char** argv) {
  CLI::App app{"timer: schedule recurring jobs on timerd", "timer"};
  app.set_version_flag("--version", timer::kVersion);
  app.require_subcommand(1);
  Globals g;
  AddGlobalOptions(app, g);  // First: the subcommands inherit the fallthrough.
  CommandSet commands;
  AddSessionCommands(app, g, commands);
  AddJobCommands(app, g, commands);
  AddProviderCommands(app, g, commands);
  AddCompletionCommand(app, commands);
  ShowGlobalOptionsInSubcommandHelp(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "timer: " << ErrorText(e.what()) << " (see --help)\n";
    return kExitUsage;
  }

  const absl::Status status = commands.RunParsed();
  // The message may quote timerd or a provider: escaped, and bounded.
  if (!status.ok()) std::cerr << "timer: " << ErrorText(status.message()) << "\n";
  return ExitCodeFor(status);
}

}  // namespace
}  // namespace timer::cli

int main(int argc, char** argv) { return timer::cli::Run(argc, argv); }
