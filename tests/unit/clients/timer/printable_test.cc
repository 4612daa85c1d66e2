// Tests of clients/timer/printable.h: what may reach a terminal, and how
// much of an argument an error message echoes.
#include "printable.h"

#include <string>

#include "gtest/gtest.h"

namespace timer::cli {
namespace {

TEST(PrintableTest, EscapesControlsAndKeepsText) {
  EXPECT_EQ(Printable("nightly backup"), "nightly backup");
  EXPECT_EQ(Printable("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(Printable("a\tb\r\nc\x1b"), "a\\tb\\r\\nc\\x1b");
  EXPECT_EQ(Printable("a\nb", /*keep_newlines=*/true), "a\nb");
  EXPECT_EQ(Printable("\x7f\xc2\x85"), "\\x7f\\xc2\\x85");    // DEL, U+0085 (NEL)
  EXPECT_EQ(Printable("\xe2\x81\xa6x"), "\\xe2\\x81\\xa6x");  // U+2066, an isolate
  // Not UTF-8: a lone continuation byte, a cut sequence, an overlong form.
  EXPECT_EQ(Printable("\x80"), "\\x80");
  EXPECT_EQ(Printable("\xe6\x97"), "\\xe6\\x97");
  EXPECT_EQ(Printable("\xc0\xaf"), "\\xc0\\xaf");
  EXPECT_EQ(Printable("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");
  EXPECT_EQ(Printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // A surrogate.
}

TEST(EchoTest, AnEchoedArgumentIsEscapedAndBounded) {
  EXPECT_EQ(Echo("1x"), "1x");
  const std::string out = Echo(std::string(1 << 20, 'a'));
  EXPECT_EQ(out, std::string(kMaxEchoBytes, 'a') + "...(1048576 bytes)");
  EXPECT_EQ(Echo("\x1b[2J"), "\\x1b[2J");
}

}  // namespace
}  // namespace timer::cli
