// Tests of the issued-token format (services/timerd/auth/token.cc); issuing
// and revoking through the token store: authenticator_test.cc and
// tests/unit/store/token_store_test.cc.
#include "auth/token.h"

#include <string>

#include "gtest/gtest.h"

namespace timer::auth {
namespace {

TEST(TokenFormatTest, ParsesOnlyWellFormedTokens) {
  const std::string id(16, 'a'), secret(64, '0');
  auto ok = ParseToken("tmr_" + id + "_" + secret);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->token_id, id);
  EXPECT_EQ(ok->secret, secret);
  EXPECT_FALSE(ParseToken("tmr_" + id + "_" + secret.substr(1)).has_value());
  EXPECT_FALSE(ParseToken("tmr_" + id + "-" + secret).has_value());
  EXPECT_FALSE(ParseToken("tmx_" + id + "_" + secret).has_value());
  EXPECT_FALSE(ParseToken("tmr_" + id + "_" + std::string(63, '0') + "G").has_value());
  EXPECT_FALSE(ParseToken("").has_value());
}

}  // namespace
}  // namespace timer::auth
