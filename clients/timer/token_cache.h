// TokenCache: the CLI's saved sessions, one bearer token per server, in
// $XDG_CONFIG_HOME/timer/tokens.json (default ~/.config/timer/tokens.json):
//
//   {"servers": {"127.0.0.1:50051": {"token": "tmr_...", "identity": "alice"}}}
//
// The file holds secrets, so it is created with mode 0600 (its directory
// 0700) and written atomically (a private temporary file renamed into
// place). A cache that is not a regular file owned by this user, or that
// group or others may read or write, is refused: Load() fails with
// PERMISSION_DENIED and a message saying how to fix it.
//
// Not thread-safe; one CLI process uses it at a time (the last writer wins).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace timer::cli {

struct CachedSession {
  std::string token;
  std::string identity;
};

class TokenCache {
 public:
  explicit TokenCache(std::string path) : path_(std::move(path)) {}

  // $XDG_CONFIG_HOME/timer/tokens.json, else $HOME/.config/timer/tokens.json.
  static std::string DefaultPath();

  const std::string& path() const { return path_; }

  // Reads the file (a missing file is an empty cache).
  absl::Status Load();
  std::optional<CachedSession> Get(const std::string& server) const;
  void Put(const std::string& server, const CachedSession& session);
  // true if there was an entry to remove.
  bool Remove(const std::string& server);
  // Writes the cache back, 0600, atomically.
  absl::Status Save() const;

 private:
  std::string path_;
  nlohmann::json doc_ = {{"servers", nlohmann::json::object()}};
};

}  // namespace timer::cli
