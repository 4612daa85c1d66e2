// Fuzzes timerd's TOML config file: timer::server::ParseConfig, then the
// checks timerd runs on a parsed config, and the plugin tables as each
// provider would receive them (JSON text).
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<timer::server::Config> config = timer::server::ParseConfig(
      absl::string_view(reinterpret_cast<const char*>(data), size), "timerd.toml");
  if (!config.ok()) return 0;
  (void)timer::server::ValidateConfig(*config);
  (void)timer::server::ValidateListenAddress(config->listen,
                                             config->allow_insecure_remote);
  for (const auto& [name, plugin] : config->plugins.items()) (void)plugin.dump();
  return 0;
}
