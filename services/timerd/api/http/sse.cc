#include "api/http/sse.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/http/transcoder.h"

namespace timer::api::http {

void AppendSseData(absl::string_view text, std::string& out) {
  // A line ends at CR, LF or CRLF (the format's own rule), so each is a
  // line break here and nothing of the text can end the event early.
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i < text.size() && text[i] != '\n' && text[i] != '\r') continue;
    absl::StrAppend(&out, "data: ", text.substr(start, i - start), "\n");
    if (i + 1 < text.size() && text[i] == '\r' && text[i + 1] == '\n') ++i;
    start = i + 1;
  }
}

void AppendSseEvent(const v1::JobEvent& event, std::string& out) {
  absl::StrAppend(&out, "id: ", event.sequence(), "\n");
  const std::string& type = v1::JobEvent::Type_Name(event.type());
  if (!type.empty()) absl::StrAppend(&out, "event: ", type, "\n");
  AppendSseData(ToJson(event), out);
  out.push_back('\n');
}

void AppendSseError(const absl::Status& status, std::string& out) {
  out.append("event: error\n");
  AppendSseData(StatusJson(status), out);
  out.push_back('\n');
}

std::optional<int64_t> ParseLastEventId(absl::string_view value) {
  value = absl::StripAsciiWhitespace(value);
  int64_t n = 0;
  if (value.empty() || value.size() > 19 || !absl::ascii_isdigit(value[0]) ||
      !absl::SimpleAtoi(value, &n) || n < 0) {
    return std::nullopt;
  }
  return n;
}

}  // namespace timer::api::http
