// Whether this binary is built with AddressSanitizer, for the few checks that
// measure resident memory: under ASan it also holds the quarantine of freed
// blocks (kAsanQuarantineBytes, ASan's default quarantine_size_mb on 64-bit
// Linux) and the shadow of every byte in use, so a bound met by the plain
// build (scripts/test.sh, Bazel) is not met there. The end-to-end tests'
// timerd is built with the same sanitizers as the test (one build tree).
#pragma once

namespace timer::testing {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

inline constexpr double kAsanQuarantineBytes = 256.0 * (1 << 20);

}  // namespace timer::testing
