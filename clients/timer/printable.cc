#include "printable.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace timer::cli {

std::string Printable(absl::string_view text, bool keep_newlines) {
  std::string out;
  out.reserve(text.size());
  const auto escape = [&out](absl::string_view bytes) {
    for (const char ch : bytes) {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(ch));
    }
  };
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\n' && keep_newlines) {
        out.push_back('\n');
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20 || c == 0x7f) {
        escape(text.substr(i, 1));
      } else {
        out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: its length from the lead byte, then its code point.
    size_t n = 0;
    uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4, cp = c & 0x07;
    }
    bool valid = n > 0 && i + n <= text.size();
    for (size_t k = 1; valid && k < n; ++k) {
      const unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) valid = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and code points beyond Unicode.
    if (valid && ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
                  (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)) {
      valid = false;
    }
    if (!valid) {
      escape(text.substr(i, 1));
      ++i;
      continue;
    }
    const bool control =
        cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
    if (control) {
      escape(text.substr(i, n));
    } else {
      out.append(text.data() + i, n);
    }
    i += n;
  }
  return out;
}

std::string Echo(absl::string_view text) {
  std::string out = Printable(text.substr(0, kMaxEchoBytes));
  if (text.size() > kMaxEchoBytes) absl::StrAppend(&out, "...(", text.size(), " bytes)");
  return out;
}

}  // namespace timer::cli
