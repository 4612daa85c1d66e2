// Shared by the action-body fuzz targets: creates the provider linked into
// the target through its ABI table (timer_ap_get_api, as timerd's plugin
// host does) and checks one body with validate().
//
// validate() must answer OK or a client error for any body: INTERNAL means
// an exception escaped the provider's own code and was caught only by the
// ABI glue, a bug the fuzzer reports by aborting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "timer/action_provider.h"

namespace timer::fuzz {

inline const timer_ap_api* Api() {
  static const timer_ap_api* api =
      timer_ap_get_api(TIMER_AP_ABI_MAJOR, TIMER_AP_ABI_MINOR);
  return api;
}

inline std::string Message(const timer_ap_error* e) {
  const timer_ap_str m = Api()->error_message(e);
  return std::string(m.data, m.size);
}

// Creates the provider from `config_json`; aborts if it refuses.
inline timer_ap_provider* CreateProvider(const std::string& config_json) {
  static const timer_ap_host host = {sizeof(timer_ap_host), nullptr, nullptr};
  timer_ap_provider* provider = nullptr;
  timer_ap_error* e =
      Api()->create({config_json.data(), config_json.size()}, &host, &provider);
  if (e != nullptr) {
    std::fprintf(stderr, "create failed: %s\n", Message(e).c_str());
    std::abort();
  }
  return provider;
}

inline void Validate(timer_ap_provider* provider, const uint8_t* data, size_t size) {
  static const char kOwner[] = "alice@example.org";
  static const char kMethod[] = "token";
  const timer_ap_identity owner = {sizeof(timer_ap_identity),
                                   {kOwner, sizeof(kOwner) - 1},
                                   {kMethod, sizeof(kMethod) - 1}};
  timer_ap_error* e =
      Api()->validate(provider, &owner, {reinterpret_cast<const char*>(data), size});
  if (e == nullptr) return;
  const timer_ap_code code = Api()->error_code(e);
  if (code == TIMER_AP_INTERNAL || code == TIMER_AP_OK) {
    std::fprintf(stderr, "validate answered code %d: %s\n", static_cast<int>(code),
                 Message(e).c_str());
    std::abort();
  }
  Api()->error_destroy(e);
}

}  // namespace timer::fuzz
