#include "provider_commands.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>

#include "output.h"

namespace timer::cli {
namespace {

absl::Status ListProviders(Globals& g) {
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  absl::StatusOr<v1::ListActionProvidersResponse> all = ListAllProviders(*client);
  if (!all.ok()) return all.status();
  if (g.json()) {
    PrintJson(*all, std::cout);
  } else {
    PrintProvidersTable(*all, std::cout);
  }
  return absl::OkStatus();
}

absl::Status ShowProvider(Globals& g, const std::string& name) {
  absl::StatusOr<Client> client = ConnectAsUser(g);
  if (!client.ok()) return client.status();
  v1::GetActionProviderRequest request;
  request.set_name(name);
  v1::ActionProvider provider;
  if (absl::Status s =
          client->Call(&v1::TimerService::Stub::GetActionProvider, request, &provider);
      !s.ok()) {
    return s;
  }
  if (g.json()) {
    PrintJson(provider, std::cout);
  } else {
    PrintProvider(provider, std::cout);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::ListActionProvidersResponse> ListAllProviders(const Client& client) {
  v1::ListActionProvidersResponse all;
  if (absl::Status s = CallEveryPage(client, &v1::TimerService::Stub::ListActionProviders,
                                     v1::ListActionProvidersRequest(),
                                     [&all](v1::ListActionProvidersResponse& page) {
                                       for (auto& p : *page.mutable_action_providers())
                                         *all.add_action_providers() = p;
                                     });
      !s.ok()) {
    return s;
  }
  return all;
}

void AddProviderCommands(CLI::App& app, Globals& g, CommandSet& commands) {
  CLI::App* provider = app.add_subcommand("provider", "inspect action providers");
  provider->require_subcommand(1);
  CLI::App* list = provider->add_subcommand("list", "the loaded providers");
  commands.Add(list, [&g] { return ListProviders(g); });
  auto name = std::make_shared<std::string>();
  CLI::App* show = provider->add_subcommand("show", "one provider and its input schema");
  show->add_option("NAME", *name, "the provider's name")->required();
  commands.Add(show, [&g, name] { return ShowProvider(g, *name); });
}

}  // namespace timer::cli
