// copier: carries out one transfer between two local endpoints.
//
// Confinement: every path is opened relative to a descriptor of the
// endpoint root, one component at a time, with O_NOFOLLOW, and paths never
// contain ".." (the body parser refuses it; transfer_options.h resolves the
// Globus path forms, "/", "/~/", "~/" and relative, into components below
// the root). So nothing outside the root is ever reached, and a symbolic link
// is never followed on a path: met on an item's path it is refused; met
// inside a recursive tree it is skipped and counted, or with
// recursive_symlinks recreated ("keep", only a target that stays inside the
// destination root) or followed ("copy", only to what resolves inside the
// source root), as transfer_options.h decides.
//
// Atomicity: each file is written out of sight in its destination
// directory and given its final name only once it is complete (and
// verified, with verify_checksum): a new file as an unnamed file (O_TMPFILE)
// then linked (linkat) under its name; a file replacing another (or where
// the filesystem has no unnamed files) under a temporary name
// (".timer-part-*") then renamed over the final name. A cancelled run
// removes its temporary file; a killed one may leave a named one, never a
// partial file under the final name. Files are not fsync'ed one by one
// (for throughput, like cp); a crash of the host may lose the last files
// copied.
//
// Holes: a sparse source (fewer blocks than its length needs, cp's test) is
// copied sparse (SEEK_DATA/SEEK_HOLE): only its data is read and written,
// the holes stay holes, and the byte counts and quotas count data only.
//
// Bounds (CopyLimits, WriteQuota, Endpoint::min_free_bytes): before each
// file or directory it writes, a run checks its own byte and entry limits,
// the writing identity's rolling-day quota on the destination endpoint and
// the destination filesystem's free space (asked once per directory and at
// most every kFreeSpaceMaxAgeNs, the run's own writes taken off between;
// asked afresh before a refusal); the first that would be passed stops the
// whole run FAILED, naming the limit. A destination that fills up anyway
// (ENOSPC, EDQUOT) fails the file with the code RESOURCE_EXHAUSTED, which
// fail_on_quota_errors stops the run for (RecordFailure).
//
// Special files: a source is opened O_NONBLOCK and its type checked on the
// descriptor, so a FIFO or device swapped in after the directory walk's
// stat() is refused instead of blocking the run.
//
// Thread-safety: a Copier is used by one thread (the action's). WriteQuota
// is thread-safe.
#pragma once

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "endpoint_fs.h"
#include "provider_support.h"
#include "run_limits.h"
#include "transfer_options.h"

namespace timer::plugins::transfer {

enum class SyncLevel { kNone, kExists, kSize, kMtime, kChecksum };

struct Endpoint {
  std::string id;
  std::string display_name;
  std::string root;  // absolute directory (local endpoints)
  // The storage of an endpoint that is not a local directory (SFTP, S3);
  // null for a local one, whose files are under `root`.
  std::shared_ptr<const RemoteEndpoint> remote;
  // Each identity's home below the root ("~" in body paths), "{identity}"
  // standing for the caller; empty: the root. See ResolvePath.
  std::string home;
  // Who may use it: empty means nobody; "*" in it means anyone.
  std::vector<std::string> allowed_identities;
  // A run writing here stops before free space would drop below this.
  int64_t min_free_bytes = 0;
};

// True if `identity` may use `e`.
bool Allowed(const Endpoint& e, const std::string& identity);

struct Item {
  std::vector<std::string> source;       // components below the root (resolved)
  std::vector<std::string> destination;  // components below the root (resolved)
  std::string source_path;               // as given ("/~/x"), for messages
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
  // filter_rules, skip_source_errors, fail_on_quota_errors,
  // recursive_symlinks and the notes on fields not applied.
  TransferOptions options;
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

// Opens regular file `name` in `dir` for reading: never follows a symbolic
// link, never blocks on a FIFO or device (O_NONBLOCK until the type is
// checked on the descriptor). Returns the descriptor, or -1 with *why set.
int OpenRegularAt(int dir, const std::string& name, struct stat* st, std::string* why);

// Bytes and entries (files and directories) each identity wrote to each
// destination endpoint over the last 24 hours, in hourly buckets, against
// per-day limits. Held in the provider's memory: a restart of timerd
// forgets it (the window starts empty), and it is per timerd process.
// Thread-safe.
class WriteQuota {
 public:
  struct Limits {
    int64_t bytes_per_day = 0;  // max_bytes_per_identity_per_day; 0: none
    int64_t files_per_day = 0;  // max_files_per_identity_per_day; 0: none
  };
  // `now_seconds` is the clock (seconds since any epoch); tests fake it.
  explicit WriteQuota(Limits limits, std::function<int64_t()> now_seconds = nullptr);

  // Counts `bytes` and `files` for (`identity`, `endpoint`) if both stay
  // within the limits; otherwise counts nothing and returns
  // RESOURCE_EXHAUSTED naming the limit.
  Err Reserve(const std::string& identity, const std::string& endpoint, int64_t bytes,
              int64_t files);
  // Corrects what was counted (negative: gives back), never refused.
  void Adjust(const std::string& identity, const std::string& endpoint, int64_t bytes,
              int64_t files);
  // What the window holds now.
  std::pair<int64_t, int64_t> Used(const std::string& identity,
                                   const std::string& endpoint);

 private:
  struct Bucket {
    int64_t hour = -1;
    int64_t bytes = 0;
    int64_t files = 0;
  };
  using Buckets = std::array<Bucket, 24>;
  int64_t Hour() const;
  static std::pair<int64_t, int64_t> Sum(const Buckets& b, int64_t hour);
  static Bucket& Current(Buckets& b, int64_t hour);
  void SweepLocked(int64_t hour);  // drops entries with nothing in the window

  const Limits limits_;
  const std::function<int64_t()> now_seconds_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Buckets> entries_;  // guarded by mu_
  size_t sweep_at_ = 1024;                                          // guarded by mu_
};

// What bounds one run, from the provider's configuration.
struct CopyOptions {
  int64_t max_bytes_per_second = 0;  // 0: unlimited
  int64_t max_bytes_per_run = 0;     // data bytes written; 0: unlimited
  int64_t max_files_per_run = 0;     // files and directories created; 0: unlimited
  WriteQuota* quota = nullptr;       // may be null: no per-identity quota
  std::string identity;              // the job's owner, charged to `quota`
  // Test seam: called just before a source file is opened, after its type
  // was checked by name (where a swap can happen). Null in production.
  std::function<void(int dir_fd, const std::string& name)> before_open_source;
};

class Copier {
 public:
  Copier(const Request& req, ActionContext* ctx, CopyOptions options);
  Outcome Run();

 private:
  using Counters = TransferCounters;

  void CopyItem(size_t index, const Item& item, int src_root, int dst_root);
  void CopyTree(int src_dir, int dst_dir, const std::string& rel, int depth);
  // Creates (or opens) directory `name` in dst_dir and copies the tree of
  // `child_src` (whose stat is `st`) into it.
  void CopyDir(int child_src, const struct stat& st, int dst_dir, const std::string& name,
               const std::string& path, int depth);
  // A symbolic link `name` in src_dir met in a tree, as recursive_symlinks says.
  void CopyLink(int src_dir, const std::string& name, int dst_dir,
                const std::string& path, int depth);
  void KeepLink(int src_dir, const std::string& name, int dst_dir,
                const std::string& path, int depth);
  void FollowLink(int src_dir, const std::string& name, int dst_dir,
                  const std::string& path, int depth);
  // Opens the directory at `comps` below the source root, never following a
  // link; -1 with errno set when it cannot.
  int OpenSourceDir(const Path& comps, size_t n);
  // A source entry that cannot be read: skipped and counted with
  // skip_source_errors when `err` is one it skips, else a failure.
  void SourceError(const std::string& path, const std::string& why, int err);
  // A link not kept or not followed: counted, and why kept in the details.
  void SkipLink(const std::string& path, const std::string& why);
  // Copies regular file `name` in src_dir to `dname` in dst_dir (its type
  // is checked on the descriptor it is opened as).
  void CopyOne(int src_dir, const std::string& name, int dst_dir,
               const std::string& dname, const std::string& rel);
  // Copies src_fd's data to dst_fd at the same offsets, keeping holes;
  // hashes the whole source (holes as zeros) when `hash` is non-null.
  // `*reserved` is what was counted for this file against the identity's
  // quota; more is reserved if the file grew.
  // `src_st` is src_fd's stat at open (whether to look for holes).
  // Returns RESOURCE_EXHAUSTED when the destination is full or over its
  // quota (ENOSPC, EDQUOT); CANCELLED or ABORTED when the run stops (a
  // cancel, or a limit: stop_ says which).
  Err CopyData(int src_fd, const struct stat& src_st, int dst_fd, Sha256* hash,
               int64_t* reserved);
  // Checks the run's limits, the destination's free space and the
  // identity's quota before writing `bytes` in `entries` new files or
  // directories into `dst_dir`; reserves them in the quota. On refusal,
  // stops the run (stop_) and returns false. The free space is asked
  // (fstatvfs) once per directory and then at most every
  // kFreeSpaceMaxAgeNs, the run's own writes taken off in between (see
  // free_); a write the estimate would refuse is asked about afresh.
  bool Admit(int dst_dir, int64_t bytes, int64_t entries);
  // The free space asked is no longer that of the directory whose
  // descriptor had its number (closed, or another directory).
  void ForgetFreeSpace() { free_.dir = -1; }
  void Refund(int64_t bytes, int64_t entries);
  bool Stopped() const { return ctx_->cancelled() || !stop_.empty(); }
  void DeleteExtra(int src_dir, int dst_dir, const std::string& rel);
  Err RemoveTree(int dir_fd, const std::string& name, int depth);
  // A file (or entry) that failed, RecordFailure's rules: `error`'s code
  // RESOURCE_EXHAUSTED is a full destination (fail_on_quota_errors). A
  // failure given as text alone is never one (UNKNOWN).
  void Fail(const std::string& path, const Err& error);
  void Fail(const std::string& path, const std::string& error);
  void Throttle();
  void Publish(bool force);
  nlohmann::json Details() const;

  const Request& req_;
  ActionContext* ctx_;
  const CopyOptions options_;
  std::string stop_;  // why the run stopped early (a limit); empty: it did not
  RunLimits limits_;  // after options_, which it reads
  RateLimiter throttle_;
  std::vector<char> buf_;
  std::vector<char> buf2_;
  Counters c_;
  nlohmann::json errors_ = nlohmann::json::array();  // the first few failures
  std::string first_error_;
  int64_t last_publish_ns_ = 0;
  // Copies to new names are written as unnamed files (O_TMPFILE) until the
  // first place that cannot make or link them.
  bool unnamed_temps_ = true;
  // A copy found its final name taken: later files look at theirs first.
  bool names_taken_ = false;
  // The process's umask when the run started: the bits of a copy's mode it
  // takes away at creation are set again with fchmod.
  mode_t umask_ = 0777;
  // The destination's free space as last asked of directory `dir` (-1:
  // none) at `at_ns`, less the run's writes since, in `block`-sized blocks.
  // Other writers' use shows within kFreeSpaceMaxAgeNs: as before, a floor
  // other processes race with is kept to within what they write meanwhile.
  static constexpr int64_t kFreeSpaceMaxAgeNs = 100'000'000;
  struct FreeSpace {
    int dir = -1;
    int64_t bytes = 0;
    int64_t block = 4096;
    int64_t at_ns = 0;
  } free_;
  dev_t skip_dev_ = 0;  // the item's destination directory, never a source
  ino_t skip_ino_ = 0;
  nlohmann::json skipped_ = nlohmann::json::array();  // the first few entries skipped
  // Where CopyTree is, below each root (a real directory at every step): the
  // source side for recursive_symlinks copy, the depth of the destination
  // side for keep.
  int src_root_ = -1;  // the run's, not owned
  Path src_path_;
  size_t dst_depth_ = 0;
  // The source directories being copied, outermost first: a link followed
  // to one of them would copy it into itself.
  std::vector<std::pair<dev_t, ino_t>> open_dirs_;
};

}  // namespace timer::plugins::transfer
