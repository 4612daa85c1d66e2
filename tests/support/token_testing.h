// Test helpers for issued tokens: a temporary database file and its migrated
// tokens table. Header-only; used by the authenticator and token store tests.
// Not thread-safe.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "store/sqlite_store.h"
#include "store/sqlite_token_store.h"

namespace timer::testing {

// A fresh directory holding `path()`, removed with everything in it.
class TempDb {
 public:
  TempDb() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "timer-tokens-XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
  }
  ~TempDb() { std::filesystem::remove_all(dir_); }
  std::string path() const { return dir_ + "/timer.db"; }

 private:
  std::string dir_;
};

// A migrated store's tokens table (SqliteStore owns timer.db's schema).
inline std::unique_ptr<store::TokenStore> OpenTokens(const std::string& path) {
  auto s = store::SqliteStore::Open({.path = path});
  EXPECT_TRUE(s.ok()) << s.status();
  (*s)->Close();
  auto tokens = store::SqliteTokenStore::Open(path);
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  return *std::move(tokens);
}

}  // namespace timer::testing
