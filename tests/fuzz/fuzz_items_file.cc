// Fuzzes `timer job transfer --items-file`: the items file's text through
// timer::cli::ParseItemsFile, then the transfer body built from its items
// the way the CLI builds it (TransferBodyJson), which must take every item
// the parser accepted and give valid JSON.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "transfer_items.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto items = timer::cli::ParseItemsFile(text, "--items-file items.csv");
  if (!items.ok()) return 0;
  timer::cli::TransferSpec spec;
  spec.source_endpoint_id = "ddb59aef-6d04-11e5-ba46-22000b92c6ec";
  spec.destination_endpoint_id = "ddb59af0-6d04-11e5-ba46-22000b92c6ec";
  spec.items = *std::move(items);
  spec.label = "nightly-backup";
  auto built = timer::cli::TransferBodyJson(spec);
  if (!built.ok()) {
    std::fprintf(stderr, "TransferBodyJson refused what ParseItemsFile accepted: %s\n",
                 std::string(built.status().message()).c_str());
    std::abort();
  }
  const std::string& body = *built;
  if (!nlohmann::json::accept(body)) {
    std::fprintf(stderr, "TransferBodyJson built invalid JSON: %s\n", body.c_str());
    std::abort();
  }
  return 0;
}
