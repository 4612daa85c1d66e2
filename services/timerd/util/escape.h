// Escaped: a value from outside (an identity, a path, a provider's message,
// a field a client sent) made safe to write into a log line or to echo in an
// error message: printable ASCII is kept, a backslash becomes `\\`, newline,
// carriage return and tab become `\n`, `\r`, `\t`, and every other byte
// (control characters, DEL, anything not ASCII) becomes `\xNN`. So one
// logged value can neither start a forged log line nor send a terminal
// escape sequence. A value longer than `max_bytes` is cut there and
// `...(N bytes)` appended, so an error cannot echo megabytes back.
//
//   spdlog::info("token {} of {} revoked", id, util::Escaped(identity));
//
// Plain functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace timer::util {

// How much of a value an error message echoes by default.
inline constexpr size_t kMaxEchoBytes = 128;

std::string Escaped(absl::string_view value, size_t max_bytes = kMaxEchoBytes);

}  // namespace timer::util
