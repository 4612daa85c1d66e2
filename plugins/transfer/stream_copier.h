// stream_copier: carries out one transfer whose source or destination (or
// both) is a remote endpoint (Endpoint::remote: SFTP, S3), through the
// EndpointFs seam (endpoint_fs.h); a local side is a LocalFs. Two local
// endpoints are Copier's (copier.h), which copies in the kernel.
//
// Each side is opened once per run (one SSH session, one S3 client) and
// used for all its files; a run from an endpoint to itself opens it once
// for reading and once for writing (reads in flight and writes on one SFTP
// channel can stall each other).
// Bytes are streamed through one buffer of kStreamChunk bytes: memory is
// bounded whatever the files' sizes.
//
// The guarantees are Copier's, in the endpoints' terms: paths are confined
// by the EndpointFs (no link followed on the way; a link met in a tree is
// handled as recursive_symlinks says); each file is written under a temporary name and
// published whole (FileWriter::Publish), so an interrupted copy never
// leaves a partial file under its final name; sync levels compare what the
// storages report (sizes; mtimes to the second, as SFTP keeps them;
// checksums from EntryInfo::sha256 or by reading both files);
// verify_checksum hashes the bytes as they are read from the source and
// compares them with the copy's (read back before publishing where the
// storage can, after otherwise), retrying once; cancel is seen between
// chunks; limits, quota and details are RunLimits' (run_limits.h), as
// Copier's.
//
// The options of transfer_options.h are applied as Copier applies them, by
// the same functions: filter_rules while walking a tree and in
// delete_destination_extra (what they exclude is kept); skip_source_errors
// (IsSkippableSourceError: an SFTP or HTTP "not found" / "permission
// denied", or a local ENOENT, EACCES, EPERM); fail_on_quota_errors
// (a full destination: the destination's writing step returned
// RESOURCE_EXHAUSTED, as every EndpointFs says it: a local ENOSPC/EDQUOT, or
// SFTP's failure once statvfs@openssh.com finds the server's filesystem
// full; text alone never counts); recursive_symlinks (CopyLink: Copier's
// rules, the links read, resolved and made through EndpointFs::ReadLink,
// Stat and MakeLink; keep into a storage that cannot hold a link, S3, is
// refused at validation).
//
// Thread-safety: a StreamCopier is used by one thread (the action's).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "copier.h"
#include "endpoint_fs.h"
#include "provider_support.h"
#include "run_limits.h"

namespace timer::plugins::transfer {

constexpr size_t kStreamChunk = 1 << 20;

// True when Copier cannot carry `req` out: an endpoint is remote.
bool NeedsStreamCopier(const Request& req);

// Test seams; empty in production.
struct StreamHooks {
  // Called after each chunk is written to a destination file, with the
  // bytes of that file written so far.
  std::function<void(const std::string& path, int64_t written)> after_chunk;
  // Called before a source file is opened for reading, with its path as
  // shown (a test removes it there: the walk saw it, the open does not).
  std::function<void(const std::string& path)> before_open_source;
};

class StreamCopier {
 public:
  StreamCopier(const Request& req, ActionContext* ctx, CopyOptions options,
               StreamHooks hooks = {});
  Outcome Run();

 private:
  void CopyItem(size_t index, const Item& item);
  void CopyTree(const Path& src, const Path& dst, const std::string& rel, int depth);
  // A symbolic link `src` met in a tree, to `dst`, as recursive_symlinks
  // says (Copier's rules, through the EndpointFs): ignore skips it; keep
  // makes it again when KeepableLinkTarget allows; copy copies what it
  // resolves to inside the source root (ResolveLinkBeneath), a directory
  // being copied above it (a loop) skipped.
  void CopyLink(const Path& src, const Path& dst, const std::string& path, int depth);
  void KeepLink(const Path& src, const Path& dst, const std::string& path);
  void FollowLink(const Path& src, const Path& dst, const std::string& path, int depth);
  // A link skipped: counted, the first few listed with why.
  void SkipLink(const std::string& path, const std::string& why);
  // Directory `src` (its entry `info`) of a tree into `dst`, created unless
  // it is there.
  void CopyDir(const Path& src, const EntryInfo& info, const Path& dst,
               const std::string& path, int depth);
  void CopyFile(const Path& src, const EntryInfo& src_info, const Path& dst,
                const std::string& shown);
  // Streams src to a new file at dst; *hash gets the source's SHA-256 when
  // non-null. CANCELLED / ABORTED when the run stops meanwhile (StopReason).
  // *from_source: the error came from reading the source (skip_source_errors
  // may skip it), not from writing the destination.
  Err Stream(const Path& src, const Path& dst, int64_t size, const std::string& shown,
             Sha256Digest* hash, int64_t* reserved, const PublishOptions& publish,
             bool* from_source);
  Err HashOf(EndpointFs& fs, const Path& p, const EntryInfo& info, Sha256Digest* out);
  // Creates dst (and counts it) unless it is a directory already;
  // *existed (when non-null): it was one already.
  bool EnsureDir(const Path& dst, const std::string& shown, bool* existed = nullptr);
  // Removes what runs killed mid-copy left in destination directory `dir`
  // (EndpointFs::SweepStaleParts), once per directory the run writes to
  // that it did not create.
  void SweepStaleParts(const Path& dir);
  void DeleteExtra(const Path& src, const Path& dst, const std::string& rel);
  bool Admit(const Path& dst_dir, int64_t bytes, int64_t entries);
  bool Stopped() const { return ctx_->cancelled() || !stop_.empty(); }
  // Why a file's copy ends early when the run stops: CANCELLED, or ABORTED
  // for a limit (stop_ says which); never RESOURCE_EXHAUSTED, which is a
  // full destination's (RecordFailure).
  Err StopReason() const;
  // RecordFailure's rules: `error`'s code RESOURCE_EXHAUSTED is a full
  // destination (fail_on_quota_errors); text alone never is one (UNKNOWN).
  void Fail(const std::string& path, const Err& error);
  void Fail(const std::string& path, const std::string& error);
  // A source entry that cannot be read: skipped and counted with
  // skip_source_errors when the error is one it skips
  // (IsSkippableSourceError), else Fail.
  void SourceError(const std::string& path, const Err& e);
  void Publish(bool force);
  nlohmann::json Details() const;

  const Request& req_;
  ActionContext* ctx_;
  const CopyOptions options_;
  const StreamHooks hooks_;
  RunLimits limits_;
  RateLimiter throttle_;
  std::unique_ptr<EndpointFs> src_owned_, dst_owned_;
  EndpointFs* src_ = nullptr;
  EndpointFs* dst_ = nullptr;
  bool encrypted_ = false;
  std::string stop_;
  TransferCounters c_;
  std::vector<char> buf_;
  Path item_dst_;                // the destination of the item being copied
  std::vector<Path> open_dirs_;  // source directories being copied (copy)
  nlohmann::json errors_ = nlohmann::json::array();
  nlohmann::json skipped_ = nlohmann::json::array();  // the first few entries skipped
  std::string first_error_;
  int64_t last_publish_ns_ = 0;
};

}  // namespace timer::plugins::transfer
