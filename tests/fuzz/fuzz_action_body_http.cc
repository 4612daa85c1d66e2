// Fuzzes the http provider's action body through validate(): its fields,
// the headers' rules, libcurl's URL parser and the allowlist
// (plugins/common/url_allowlist.h). No request is sent.
#include "provider_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static timer_ap_provider* provider = timer::fuzz::CreateProvider(
      R"({"allow": ["*", "https://api.example.org/v1/", "hooks.example.com:8443",
                    "*.partner.example", "10.0.0.0/8", "[fd00::1]:8443"]})");
  timer::fuzz::Validate(provider, data, size);
  return 0;
}
