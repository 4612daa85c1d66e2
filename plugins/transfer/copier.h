// copier: carries out one transfer between two local endpoints.
//
// Confinement: every path is opened relative to a descriptor of the
// endpoint root, one component at a time, with O_NOFOLLOW, and paths never
// contain ".." (the body parser refuses it). So nothing outside the root is
// ever reached, and a symbolic link is never followed: met on a path it is
// refused, met inside a recursive tree it is skipped and counted.
//
// Atomicity: each file is written to a temporary name (".timer-part-*") in
// its destination directory and renamed over the final name only once it
// is complete (and verified, with verify_checksum). A cancelled run removes
// its temporary file; a killed one may leave it, never a partial file under
// the final name. Files are not fsync'ed one by one (for throughput, like
// cp); a crash of the host may lose the last files copied.
//
// Thread-safety: a Copier is used by one thread (the action's).
#pragma once

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "provider_support.h"

namespace timer::plugins::transfer {

enum class SyncLevel { kNone, kExists, kSize, kMtime, kChecksum };

struct Endpoint {
  std::string id;
  std::string display_name;
  std::string root;                             // absolute directory
  std::vector<std::string> allowed_identities;  // empty: everyone
};

struct Item {
  std::vector<std::string> source;       // components below the root
  std::vector<std::string> destination;  // components below the root
  std::string source_path;               // as given, for messages
  std::string destination_path;
  bool recursive = false;
};

struct Request {
  const Endpoint* source = nullptr;  // owned by the provider's config
  const Endpoint* destination = nullptr;
  std::vector<Item> items;
  std::string label;
  SyncLevel sync_level = SyncLevel::kNone;
  bool verify_checksum = false;
  bool preserve_timestamp = false;
  bool encrypt_data = false;
  bool delete_destination_extra = false;
};

// Splits a body path into components: refuses absolute paths, "..", NUL
// and over-long names; "" and "." name the root. `field` prefixes errors.
Err SplitPath(const std::string& path, const std::string& field,
              std::vector<std::string>* out);

// Opens `root` (an endpoint's directory).
Err OpenRoot(const Endpoint& e, int* fd);

// Walks `comps` below `root_fd` without following symlinks. Sets *exists to
// false when a component is missing (not an error: it may appear later).
// INVALID_ARGUMENT when a component is a symbolic link or not a directory.
Err CheckPath(int root_fd, const std::vector<std::string>& comps,
              const std::string& field, bool* exists);

using Sha256 = std::array<unsigned char, 32>;
// SHA-256 of a whole file read through `fd` from offset 0.
Err HashFile(int fd, std::vector<char>* buf, Sha256* out);

class Copier {
 public:
  Copier(const Request& req, ActionContext* ctx, int64_t max_bytes_per_second);
  Outcome Run();

 private:
  struct Counters {
    int64_t files_transferred = 0;
    int64_t bytes_transferred = 0;
    int64_t files_skipped = 0;
    int64_t files_failed = 0;
    int64_t files_verified = 0;
    int64_t checksum_retries = 0;
    int64_t directories_created = 0;
    int64_t entries_deleted = 0;
    int64_t symlinks_skipped = 0;
    int64_t special_files_skipped = 0;
  };

  void CopyItem(size_t index, const Item& item, int src_root, int dst_root);
  void CopyTree(int src_dir, int dst_dir, const std::string& rel, int depth);
  // Copies regular file `name` in src_dir to `dname` in dst_dir.
  void CopyOne(int src_dir, const std::string& name, const struct stat& src_st,
               int dst_dir, const std::string& dname, const std::string& rel);
  // Streams src_fd to dst_fd; hashes the source when `hash` is non-null.
  Err CopyData(int src_fd, int dst_fd, Sha256* hash);
  void DeleteExtra(int src_dir, int dst_dir, const std::string& rel);
  Err RemoveTree(int dir_fd, const std::string& name, int depth);
  void Fail(const std::string& path, const std::string& error);
  void Throttle();
  void Publish(bool force);
  nlohmann::json Details() const;

  const Request& req_;
  ActionContext* ctx_;
  const int64_t max_bytes_per_second_;  // 0: unlimited
  std::vector<char> buf_;
  std::vector<char> buf2_;
  Counters c_;
  nlohmann::json errors_ = nlohmann::json::array();  // the first few failures
  std::string first_error_;
  int64_t throttle_start_ns_ = 0;
  int64_t last_publish_ns_ = 0;
  dev_t skip_dev_ = 0;  // the item's destination directory, never a source
  ino_t skip_ino_ = 0;
};

}  // namespace timer::plugins::transfer
