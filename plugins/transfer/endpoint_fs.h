// endpoint_fs: what a transfer needs of an endpoint's storage, so that one
// copier carries out transfers between any two kinds of endpoint (a local
// directory, an SFTP server, an S3-compatible bucket).
//
// Paths are components below the endpoint's root, as SplitPath makes them:
// none is empty, ".", ".." or holds '/' or NUL; an empty Path is the root.
// An implementation maps them into its own namespace (root + "/" + joined
// components; an S3 key prefix + joined components) and never reaches
// outside its root: it never follows a symbolic link on the way (a link met
// before the last component is INVALID_ARGUMENT; Stat and List report a link
// as kSymlink and leave it to the copier).
//
// Errors name what failed in the endpoint's terms (a path below the root, an
// HTTP status, an SFTP status) and never hold a secret (a key, a password, a
// signed URL). UNAVAILABLE means the storage could not be reached (a run may
// retry); every other code is final for that file.
//
// Cancellation: a remote EndpointFs is opened with its run's cancellation
// (CancelCheck). A call waiting on a server when the run is cancelled ends
// within about a second with CANCELLED (final: a cancelled run is not
// retried), not when the endpoint's timeout passes. Cleanup a writer does
// when it is destroyed unpublished (removing a temporary file, aborting a
// multipart upload) is still sent after a cancel, bounded by the timeout.
//
// Bounds: an EndpointFs is used by one thread (the run's); every call that
// talks to a server is bounded by the endpoint's timeout; List holds one page
// of entries at a time; a FileWriter buffers at most one part (S3 multipart)
// or one chunk.
//
// Thread-safety: none; one run owns its EndpointFs and the readers and
// writers it made, and destroys them before the EndpointFs.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "provider_support.h"

namespace timer::plugins::transfer {

using Path = std::vector<std::string>;
using Sha256Digest = std::array<unsigned char, 32>;

enum class EntryKind { kFile, kDirectory, kSymlink, kOther };

struct EntryInfo {
  std::string name;  // the last component (List); empty from Stat
  EntryKind kind = EntryKind::kOther;
  int64_t size = 0;       // files: bytes
  int64_t mtime_ns = -1;  // since the Unix epoch; -1: the storage does not say
  // A SHA-256 of the content the storage kept beside it (S3 object metadata
  // written by Publish), usable for sync_level checksum without reading the
  // file; unset when the storage keeps none.
  std::optional<Sha256Digest> sha256;
};

class FileReader {
 public:
  virtual ~FileReader() = default;
  // Reads up to `n` bytes in order; *got == 0 at the end of the file.
  virtual Err Read(char* buf, size_t n, size_t* got) = 0;
};

struct PublishOptions {
  int64_t mtime_ns = -1;               // set on the file when >= 0
  std::optional<Sha256Digest> sha256;  // kept beside the file where possible
};

class FileWriter {
 public:
  // Destroying a writer that was not published aborts it: the temporary file
  // is removed, the multipart upload aborted; nothing appears under the name.
  virtual ~FileWriter() = default;
  virtual Err Write(const char* buf, size_t n) = 0;
  // Makes the file appear whole under its final name, replacing what was
  // there (the rename of a temporary name; the completion of an upload).
  virtual Err Publish(const PublishOptions& options) = 0;
  // The SHA-256 of what the storage holds for the unpublished file, read
  // back from it (verify_checksum checks the copy before it is published);
  // UNIMPLEMENTED where it cannot be read before Publish, and the copier
  // then compares after publishing. Call after the last Write.
  virtual Err ReadBackSha256(Sha256Digest* out) {
    (void)out;
    return {TIMER_AP_UNIMPLEMENTED, "no read-back before publish"};
  }
};

class EndpointFs {
 public:
  virtual ~EndpointFs() = default;

  // What the run's details say of encryption: true when the data crosses
  // the network encrypted (SFTP always; S3 over https).
  virtual bool Encrypted() const = 0;

  // The entry at `path`, never following a symbolic link. *exists is false
  // (and OK returned) when it, or a directory on the way, is missing.
  virtual Err Stat(const Path& path, EntryInfo* info, bool* exists) = 0;

  // Calls `each` for every entry of directory `dir` except "." and "..",
  // fetched a page at a time; stops early when `each` returns false.
  virtual Err List(const Path& dir,
                   const std::function<bool(const EntryInfo&)>& each) = 0;

  virtual Err OpenRead(const Path& file, std::unique_ptr<FileReader>* out) = 0;

  // Starts writing `file` (its parent directory exists): nothing appears
  // under its name until Publish. `size` is the expected length, -1 when
  // unknown (S3 chooses a single PUT or a multipart upload from it).
  virtual Err Create(const Path& file, int64_t size,
                     std::unique_ptr<FileWriter>* out) = 0;

  // Creates directory `dir`; one that exists is fine. On S3, where a
  // directory is only a key prefix, there is nothing to do.
  virtual Err MakeDir(const Path& dir) = 0;

  // Removes a file, or a directory and everything in it.
  virtual Err Remove(const Path& path) = 0;

  // Sets the modification time of directory `dir` (preserve_timestamp);
  // UNIMPLEMENTED where the storage keeps none (S3), and the copier goes on.
  virtual Err SetMtime(const Path& dir, int64_t mtime_ns) {
    (void)dir, (void)mtime_ns;
    return {TIMER_AP_UNIMPLEMENTED, "no directory times"};
  }

  // Removes the temporary files a writer of this storage made (".timer-part-*",
  // TempPartName) in directory `dir` that nothing has written for
  // `min_age_seconds`: what a run killed mid-copy left behind. Best effort,
  // at most a bounded number per call; any other name is never touched.
  // Nothing where the storage keeps no such files (S3: an interrupted
  // upload is aborted) or sweeps them otherwise (local: Copier's rule).
  virtual void SweepStaleParts(const Path& dir, int64_t min_age_seconds) {
    (void)dir, (void)min_age_seconds;
  }

  // Whether the storage keeps PublishOptions::sha256 beside a file (S3
  // object metadata): the copier works the hash out only when it is kept
  // or verify_checksum asks for it.
  virtual bool KeepsSha256() const { return true; }

  // recursive_symlinks. The target of symbolic link `link` as stored (its
  // text, not resolved); UNIMPLEMENTED where the storage has no links (S3).
  virtual Err ReadLink(const Path& link, std::string* target) {
    (void)link, (void)target;
    return {TIMER_AP_UNIMPLEMENTED, "no symbolic links"};
  }
  // Makes `link` (its parent directory exists) a symbolic link whose target
  // text is `target`, under a temporary name renamed over what is there (a
  // file or a link; never a directory). The caller checked the target
  // (KeepableLinkTarget). UNIMPLEMENTED where the storage cannot hold links.
  virtual Err MakeLink(const Path& link, const std::string& target) {
    (void)link, (void)target;
    return {TIMER_AP_UNIMPLEMENTED, "no symbolic links"};
  }

  // Bytes free where `dir` is, or -1 when the storage does not say.
  virtual int64_t FreeBytes(const Path& dir) = 0;

  // Copies `src` on `source` (the run's other EndpointFs) to `dst` here
  // without streaming the bytes through timerd, when both are the same
  // storage (S3 CopyObject within one server); UNIMPLEMENTED otherwise, and
  // the copier streams.
  virtual Err CopyFrom(EndpointFs& source, const Path& src, const Path& dst,
                       const PublishOptions& options) {
    (void)source, (void)src, (void)dst, (void)options;
    return {TIMER_AP_UNIMPLEMENTED, "no server-side copy"};
  }
};

// Whether the run an EndpointFs works for was cancelled; empty: never.
// Called from other threads than the run's (an SFTP session's watchdog,
// libcurl's progress callback), about once a second while a request waits
// and often while bytes move: it must be thread-safe, cheap (an atomic
// load) and never block, and outlive the EndpointFs it is given to.
using CancelCheck = std::function<bool()>;

// The storage behind an endpoint that is not a local directory: parsed once
// from its [[plugins.transfer.endpoints]] table, opened once per run.
class RemoteEndpoint {
 public:
  virtual ~RemoteEndpoint() = default;
  virtual std::string type() const = 0;  // "sftp", "s3"
  // Whether the data crosses the network encrypted, known from the
  // configuration alone (SFTP always; S3 when its URL is https://): a body
  // with encrypt_data is refused at validation when an endpoint does not.
  virtual bool Encrypted() const = 0;
  // Connects for one run (SFTP: one SSH session and SFTP channel, the host
  // key checked against the pinned one; S3: a client). The run uses it for
  // all its files and destroys it at its end. `cancelled` is the run's
  // (CancelCheck): a request in flight when it turns true fails CANCELLED.
  virtual Err Open(const CancelCheck& cancelled,
                   std::unique_ptr<EndpointFs>* out) const = 0;
  // Whether the storage can hold a symbolic link (SFTP; not S3): a body
  // asking recursive_symlinks keep into one that cannot is refused.
  virtual bool HoldsSymlinks() const { return false; }
  // What `timer provider show` may print: host, port, bucket, root; never a
  // credential or the name of a file holding one.
  virtual nlohmann::json Describe() const = 0;
};

}  // namespace timer::plugins::transfer
