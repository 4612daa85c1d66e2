// `timer session login|whoami|logout|revoke`: checking a token with timerd
// and keeping it in the token cache (token_cache.h), one per server.
//
// Single-threaded, as the CLI is; `g` must outlive `commands`.
#pragma once

#include "commands.h"

namespace CLI {
class App;
}  // namespace CLI

namespace timer::cli {

// Adds the `session` command group to `app` and its handlers to `commands`.
void AddSessionCommands(CLI::App& app, Globals& g, CommandSet& commands);

}  // namespace timer::cli
