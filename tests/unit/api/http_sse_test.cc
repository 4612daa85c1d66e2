// The SSE framing of watch streams over HTTP (api/http/sse.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "api/http/sse.h"

namespace timer::api::http {
namespace {

std::vector<std::string> Lines(const std::string& frame) {
  return absl::StrSplit(frame, '\n');
}

TEST(HttpSseTest, EventIsIdTypeAndOneDataLine) {
  v1::JobEvent event;
  event.set_sequence(1234567);
  event.set_type(v1::JobEvent::UPDATED);
  event.mutable_job()->set_job_id("j1");
  // Line breaks of every kind inside a string: escaped by the JSON printer.
  event.mutable_job()->set_name("a\nb\r\nc\rd");
  std::string out;
  AppendSseEvent(event, out);
  const std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 5u) << out;
  EXPECT_EQ(lines[0], "id: 1234567");
  EXPECT_EQ(lines[1], "event: UPDATED");
  ASSERT_TRUE(absl::StartsWith(lines[2], "data: {")) << lines[2];
  EXPECT_NE(lines[2].find(R"("name":"a\nb\r\nc\rd")"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find(R"("sequence":"1234567")"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find(R"("job_id":"j1")"), std::string::npos) << lines[2];
  EXPECT_EQ(lines[3], "");
  EXPECT_EQ(lines[4], "");  // The frame ends with an empty line.
  EXPECT_EQ(out.find('\r'), std::string::npos);
}

TEST(HttpSseTest, DataWithLineBreaksIsSplitIntoDataLines) {
  std::string out;
  AppendSseData("one\ntwo\r\nthree\rfour", out);
  EXPECT_EQ(out, "data: one\ndata: two\ndata: three\ndata: four\n");
  out.clear();
  AppendSseData("", out);
  EXPECT_EQ(out, "data: \n");
  out.clear();
  AppendSseData("end\n", out);
  EXPECT_EQ(out, "data: end\ndata: \n");
}

TEST(HttpSseTest, ErrorIsFinalEventWithoutId) {
  std::string out;
  AppendSseError(absl::ResourceExhaustedError(
                     "this watcher fell 8 events behind and was dropped; resume "
                     "with since=42\nx"),
                 out);
  EXPECT_EQ(out.find("id:"), std::string::npos) << out;
  const std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 4u) << out;
  EXPECT_EQ(lines[0], "event: error");
  EXPECT_NE(lines[1].find(R"("code":8)"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(R"(resume with since=42\nx)"), std::string::npos) << lines[1];
}

TEST(HttpSseTest, KeepAliveIsAComment) { EXPECT_EQ(kSseKeepAlive, ": keep-alive\n\n"); }

TEST(HttpSseTest, LastEventId) {
  EXPECT_EQ(ParseLastEventId("42"), 42);
  EXPECT_EQ(ParseLastEventId(" 0 "), 0);
  EXPECT_EQ(ParseLastEventId("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(ParseLastEventId(""), std::nullopt);
  EXPECT_EQ(ParseLastEventId("-1"), std::nullopt);
  EXPECT_EQ(ParseLastEventId("+1"), std::nullopt);
  EXPECT_EQ(ParseLastEventId("12a"), std::nullopt);
  EXPECT_EQ(ParseLastEventId("99999999999999999999"), std::nullopt);
}

}  // namespace
}  // namespace timer::api::http
