// Tests of the token store (store/token_store.h) in SQLite
// (store/sqlite_token_store.h) and PostgreSQL (store/postgres_token_store.h):
// what is kept of an issued token, listing and revoking, and refusing a
// database its schema owner has not migrated. One suite, parameterised by
// named store factories (kStores), as the Store conformance suite.
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "auth/token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pg_cluster.h"
#include "store/postgres_token_store.h"
#include "store/sqlite_store.h"
#include "store/sqlite_token_store.h"
#include "token_testing.h"

namespace timer::store {
namespace {

using auth::IssueToken;
using auth::ParseToken;
using auth::Sha256;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);  // 2023-11-14T22:13:20Z

MATCHER_P2(StatusIs, code, substring, "") {
  *result_listener << "whose status is " << arg.status();
  return arg.status().code() == code &&
         std::string(arg.status().message()).find(substring) != std::string::npos;
}

using ::timer::testing::OpenTokens;
using ::timer::testing::TempDb;

// How to make one token store of a kind; `db` is a fresh temp dir's file.
struct TokenStoreFactory {
  std::string name;
  std::function<std::unique_ptr<TokenStore>(const TempDb& db)> make;
};

void PrintTo(const TokenStoreFactory& f, std::ostream* os) { *os << f.name; }

const std::vector<TokenStoreFactory>& Stores() {
  static const auto* stores = new std::vector<TokenStoreFactory>{
      {"sqlite", [](const TempDb& db) { return OpenTokens(db.path()); }},
      {"postgres",
       [](const TempDb&) -> std::unique_ptr<TokenStore> {
         auto pg = testing::PgCluster::Get();
         auto uri = pg.ok() ? (*pg)->NewDatabase() : pg.status();
         auto tokens = uri.ok() ? PostgresTokenStore::Open({.uri = *uri}) : uri.status();
         EXPECT_TRUE(tokens.ok()) << tokens.status();
         return tokens.ok() ? *std::move(tokens) : nullptr;
       }},
  };
  return *stores;
}

class TokenStoreTest : public ::testing::TestWithParam<TokenStoreFactory> {
 protected:
  void SetUp() override {
    tokens_ = GetParam().make(db_);
    ASSERT_NE(tokens_, nullptr);
  }
  TempDb db_;
  std::unique_ptr<TokenStore> tokens_;
};

TEST_P(TokenStoreTest, KeepsOnlyTheSecretsHash) {
  TempDb& db = db_;
  auto& tokens = tokens_;
  auto issued = IssueToken(*tokens, "alice@example.org", std::nullopt, "laptop", kNow);
  ASSERT_TRUE(issued.ok()) << issued.status();
  auto parsed = ParseToken(issued->token);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->token_id, issued->record.token_id);

  auto found = tokens->Find(parsed->token_id);
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->identity, "alice@example.org");
  EXPECT_EQ((*found)->description, "laptop");
  EXPECT_EQ((*found)->secret_sha256, Sha256(parsed->secret));
  EXPECT_FALSE((*found)->expire_us.has_value());
  EXPECT_FALSE((*found)->revoke_us.has_value());

  // Neither the token nor its secret is anywhere in the database files.
  if (GetParam().name != "sqlite") return;
  tokens.reset();
  for (const std::string suffix : {"", "-wal"}) {
    std::ifstream in(db.path() + suffix, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    EXPECT_EQ(bytes.str().find(parsed->secret), std::string::npos) << suffix;
    EXPECT_EQ(bytes.str().find(issued->token), std::string::npos) << suffix;
  }
}

TEST_P(TokenStoreTest, IssueValidatesIdentityAndExpiry) {
  auto& tokens = tokens_;
  EXPECT_THAT(IssueToken(*tokens, "", std::nullopt, "", kNow),
              StatusIs(absl::StatusCode::kInvalidArgument, "identity"));
  EXPECT_THAT(IssueToken(*tokens, "has space", std::nullopt, "", kNow),
              StatusIs(absl::StatusCode::kInvalidArgument, "identity"));
  EXPECT_THAT(IssueToken(*tokens, "bob", kNow - absl::Hours(1), "", kNow),
              StatusIs(absl::StatusCode::kInvalidArgument, "expires"));
}

TEST_P(TokenStoreTest, ListAndRevokeById) {
  auto& tokens = tokens_;
  auto a = IssueToken(*tokens, "alice", std::nullopt, "", kNow);
  auto b = IssueToken(*tokens, "bob", kNow + absl::Hours(1), "", kNow + absl::Seconds(1));
  ASSERT_TRUE(a.ok() && b.ok());
  auto all = tokens->List("");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].identity, "alice");
  EXPECT_EQ((*all)[1].expire_us, absl::ToUnixMicros(kNow + absl::Hours(1)));
  auto bobs = tokens->List("bob");
  ASSERT_TRUE(bobs.ok());
  ASSERT_EQ(bobs->size(), 1u);

  EXPECT_TRUE(tokens->Revoke(a->record.token_id, 42).ok());
  EXPECT_TRUE(tokens->Revoke(a->record.token_id, 99).ok());  // Keeps the first time.
  EXPECT_EQ((*tokens->Find(a->record.token_id))->revoke_us, 42);
  EXPECT_EQ(tokens->Revoke("0000000000000000", 1).code(), absl::StatusCode::kNotFound);
}

TEST(SqliteTokenStoreTest, RefusesAnUnmigratedDatabase) {
  TempDb db;
  auto tokens = store::SqliteTokenStore::Open(db.path());
  EXPECT_THAT(tokens, StatusIs(absl::StatusCode::kFailedPrecondition, "no tokens table"));
}

INSTANTIATE_TEST_SUITE_P(AllStores, TokenStoreTest, ::testing::ValuesIn(Stores()),
                         [](const ::testing::TestParamInfo<TokenStoreFactory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace timer::store
