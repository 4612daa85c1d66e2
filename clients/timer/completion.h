// Shell completion scripts for `timer`, generated from the CLI11 app itself
// (its subcommands, options, option arities, `IsMember` choices and `FILE`
// type names), so they never drift from the command line they complete.
//
//   timer completion bash   # a script defining _timer and `complete -F _timer`
//   timer completion zsh    # a #compdef script; also works when sourced
//
// The scripts are static: they never call timerd (no job ids are offered).
// A command's options are offered after it; options of a parent (the global
// ones) are accepted after a subcommand too, as CLI11 parses them with
// `fallthrough`: bash knows their arity and values there (`timer job list
// --format <TAB>`) but offers only the command's own names for `-<TAB>`;
// zsh completes them where they are declared.
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
