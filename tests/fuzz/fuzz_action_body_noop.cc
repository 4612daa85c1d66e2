// Fuzzes the noop provider's action body through validate().
#include "provider_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static timer_ap_provider* provider = timer::fuzz::CreateProvider("{}");
  timer::fuzz::Validate(provider, data, size);
  return 0;
}
