// local_fs: an EndpointFs over a local endpoint's root directory, for runs
// whose other side is remote (StreamCopier). A run between two local
// endpoints keeps Copier, which copies in the kernel.
//
// Confinement is Copier's: every path is opened below a descriptor of the
// root one component at a time with O_NOFOLLOW, so a symbolic link on the
// way is refused (INVALID_ARGUMENT) and nothing outside the root is
// reached. Files are written to a temporary name (".timer-part-<pid>-*") in
// their directory and renamed over the final name by Publish; a writer
// destroyed unpublished removes its temporary file. A full destination or
// an exceeded quota (ENOSPC, EDQUOT) is RESOURCE_EXHAUSTED from Create,
// Write, Publish and MakeDir (what fail_on_quota_errors stops a run for).
//
// Thread-safety: none (one run's thread), as EndpointFs.
#pragma once

#include <memory>
#include <string>

#include "endpoint_fs.h"

namespace timer::plugins::transfer {

// The temporary name a file is written under before it is published:
// ".timer-part-<pid>-<random>", in its destination directory.
std::string TempPartName();
// True for such a name (another run's file in progress: never copied).
bool IsTempPartName(const std::string& name);

class LocalFs : public EndpointFs {
 public:
  // Opens `root` (an absolute directory); UNAVAILABLE if it cannot.
  static Err Open(const std::string& root, std::unique_ptr<EndpointFs>* out);
  ~LocalFs() override;

  bool Encrypted() const override { return false; }
  bool KeepsSha256() const override { return false; }
  Err Stat(const Path& path, EntryInfo* info, bool* exists) override;
  Err List(const Path& dir, const std::function<bool(const EntryInfo&)>& each) override;
  Err OpenRead(const Path& file, std::unique_ptr<FileReader>* out) override;
  Err Create(const Path& file, int64_t size, std::unique_ptr<FileWriter>* out) override;
  Err MakeDir(const Path& dir) override;
  Err Remove(const Path& path) override;
  Err SetMtime(const Path& dir, int64_t mtime_ns) override;
  int64_t FreeBytes(const Path& dir) override;
  Err ReadLink(const Path& link, std::string* target) override;
  Err MakeLink(const Path& link, const std::string& target) override;

 private:
  explicit LocalFs(int root_fd) : root_fd_(root_fd) {}
  // Opens directory `dir` (components [0, n)) below the root, never through
  // a link; returns the descriptor or -1 with *err set (*missing when a
  // component does not exist).
  int OpenDir(const Path& dir, size_t n, Err* err, bool* missing = nullptr);

  const int root_fd_;
};

}  // namespace timer::plugins::transfer
