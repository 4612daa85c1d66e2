// Tests of util/escape.h: values from outside, made safe for one log line.
#include "util/escape.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace timer::util {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(EscapedTest, PrintableAsciiIsKept) {
  EXPECT_EQ(Escaped("alice@example.org"), "alice@example.org");
  EXPECT_EQ(Escaped("CN=backup,O=Example \"x\""), "CN=backup,O=Example \"x\"");
  EXPECT_EQ(Escaped(""), "");
}

TEST(EscapedTest, ALineBreakCannotStartAForgedLogLine) {
  const std::string forged =
      "mallory\n2026-12-05T11:00:00.000Z timerd info: token 1 of root revoked";
  const std::string out = Escaped(forged);
  EXPECT_THAT(out, Not(HasSubstr("\n")));
  EXPECT_THAT(out, HasSubstr("mallory\\n2026"));
  EXPECT_EQ(Escaped("a\rb\tc\\d"), "a\\rb\\tc\\\\d");
}

TEST(EscapedTest, ControlAndNonAsciiBytesBecomeHexEscapes) {
  EXPECT_EQ(Escaped("\x1b[31mred"), "\\x1b[31mred");
  EXPECT_EQ(Escaped(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(Escaped("\x7f"), "\\x7f");
  EXPECT_EQ(Escaped("caf\xc3\xa9"), "caf\\xc3\\xa9");
}

TEST(EscapedTest, ALongValueIsCutAndSaysHowLongItWas) {
  const std::string big(1 << 20, 'a');
  const std::string out = Escaped(big);
  EXPECT_EQ(out, std::string(kMaxEchoBytes, 'a') + "...(1048576 bytes)");
  EXPECT_EQ(Escaped("abcdef", 3), "abc...(6 bytes)");
  EXPECT_EQ(Escaped("abc", 3), "abc");
}

}  // namespace
}  // namespace timer::util
