// Text from timerd or from the command line made safe to print to a
// terminal (Printable) or to echo in an error message (Echo). No protobuf
// or gRPC here, so the fuzz targets can compile the argument parsers with
// it alone. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace timer::cli {

// `text` safe to print to a terminal: control characters (C0, DEL and the
// C1 range U+0080..U+009F), bidirectional overrides and bytes that are not
// UTF-8 become `\xNN` escapes (newline, carriage return and tab: `\n`, `\r`,
// `\t`, unless `keep_newlines` keeps newlines as they are); other UTF-8 text
// is kept.
std::string Printable(absl::string_view text, bool keep_newlines = false);

// How much of an argument an error message echoes.
inline constexpr size_t kMaxEchoBytes = 128;

// An argument (or other input) for an error message: Printable(), and cut
// at kMaxEchoBytes with "...(N bytes)" appended.
std::string Echo(absl::string_view text);

}  // namespace timer::cli
