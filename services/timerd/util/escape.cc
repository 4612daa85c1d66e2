#include "util/escape.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace timer::util {

std::string Escaped(absl::string_view value, size_t max_bytes) {
  const absl::string_view kept = value.substr(0, max_bytes);
  std::string out;
  out.reserve(kept.size() + 16);
  for (const char ch : kept) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          out.push_back(ch);
        } else {
          absl::StrAppendFormat(&out, "\\x%02x", c);
        }
    }
  }
  if (kept.size() < value.size()) absl::StrAppend(&out, "...(", value.size(), " bytes)");
  return out;
}

}  // namespace timer::util
