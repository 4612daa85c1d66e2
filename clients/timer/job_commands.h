// `timer job ...`: submit, status, list, delete, update, pause, resume,
// run-now, results, transfer and watch. Each command's handler builds its
// request (job_args.h), calls timerd through a Client and prints the answer
// (output.h) in the --format of `g`.
//
// The options are bound to state the CommandSet's handlers own; `g` must
// outlive `commands`. Single-threaded, as the CLI is.
#pragma once

#include <vector>

#include "commands.h"
#include "transfer_items.h"

namespace CLI {
class App;
}  // namespace CLI

namespace timer::cli {

// Adds the `job` command group to `app` and its handlers to `commands`
// (and the `schedule` group, AddScheduleCommands).
void AddJobCommands(CLI::App& app, Globals& g, CommandSet& commands);

// Adds the `schedule` command group (`schedule preview`).
void AddScheduleCommands(CLI::App& app, Globals& g, CommandSet& commands);

// The --include and --exclude rules of a parsed `job transfer` command, in
// the order they were given on the command line (CLI11 keeps each option's
// values apart; the order decides which rule matches first).
std::vector<FilterRuleArg> FilterRulesInOrder(const CLI::App& transfer);

// Adds `job watch` to the `job` group (watch_command.cc).
void AddWatchCommand(CLI::App& job, Globals& g, CommandSet& commands);

}  // namespace timer::cli
