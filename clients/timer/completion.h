// Shell completion scripts for `timer`, generated from the CLI11 app itself
// (its subcommands, options, option arities, `IsMember` choices and `FILE`
// type names), so they never drift from the command line they complete.
//
//   timer completion bash   # a script defining _timer and `complete -F _timer`
//   timer completion zsh    # a #compdef script; also works when sourced
//
// The scripts are static: they never call timerd (no job ids are offered).
// Options belong to the command they are declared on, as CLI11 parses them
// (`timer --format json job list`, not `timer job list --format json`).
//
// Pure functions of the app's tree; they read it and never parse with it.
// Not thread-safe against concurrent changes to `app`.
#pragma once

#include <string>

namespace CLI {
class App;
}  // namespace CLI

namespace timer::cli {

// A bash script (bash 4 or later, with or without the bash-completion package).
std::string BashCompletion(const CLI::App& app);

// A zsh script for compsys: put it in a directory of $fpath as `_timer`, or
// `source` it after `compinit`.
std::string ZshCompletion(const CLI::App& app);

}  // namespace timer::cli
