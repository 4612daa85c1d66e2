// `timer provider list` and `timer provider show NAME`, and the provider
// list other commands check names against (`job submit --action-url`).
//
// Single-threaded, as the CLI is; `g` must outlive `commands`.
#pragma once

#include "absl/status/statusor.h"
#include "client.h"
#include "commands.h"
#include "timer/v1/timer.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace timer::cli {

// Adds the `provider` command group to `app` and its handlers to `commands`.
void AddProviderCommands(CLI::App& app, Globals& g, CommandSet& commands);

// Every provider timerd has loaded (all pages of ListActionProviders).
absl::StatusOr<v1::ListActionProvidersResponse> ListAllProviders(const Client& client);

}  // namespace timer::cli
