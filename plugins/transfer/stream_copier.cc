#include "stream_copier.h"

#include <openssl/evp.h>

#include <algorithm>
#include <set>
#include <utility>

#include "local_fs.h"
#include "transfer_options.h"

namespace timer::plugins::transfer {
namespace {

constexpr int kMaxDepth = 128;

using Md = std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)>;

Md NewSha256() {
  Md md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (md && EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) md.reset();
  return md;
}

bool FinishSha256(EVP_MD_CTX* md, Sha256Digest* out) {
  unsigned int len = 0;
  return EVP_DigestFinal_ex(md, out->data(), &len) == 1 && len == out->size();
}

std::string Join(const std::string& a, const std::string& b) {
  return a.empty() ? b : a + "/" + b;
}

Path Child(const Path& p, const std::string& name) {
  Path c = p;
  c.push_back(name);
  return c;
}

Path Parent(const Path& p) { return p.empty() ? p : Path(p.begin(), p.end() - 1); }

bool IsPrefix(const Path& a, const Path& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

Err OpenEndpoint(const Endpoint& e, const CancelCheck& cancelled,
                 std::unique_ptr<EndpointFs>* out) {
  Err err = e.remote ? e.remote->Open(cancelled, out) : LocalFs::Open(e.root, out);
  if (!err.ok()) err.message = "endpoint " + e.id + ": " + err.message;
  return err;
}

// A remote endpoint's request that a cancel cut short (endpoint_fs.h): not
// a failure of the file it was for, the run ends CANCELLED.
bool CutByCancel(const Err& e, const ActionContext& ctx) {
  return e.code == TIMER_AP_CANCELLED && ctx.cancelled();
}

}  // namespace

bool NeedsStreamCopier(const Request& req) {
  return req.source->remote != nullptr || req.destination->remote != nullptr;
}

StreamCopier::StreamCopier(const Request& req, ActionContext* ctx, CopyOptions options,
                           StreamHooks hooks)
    : req_(req),
      ctx_(ctx),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      limits_(req_, options_),
      throttle_(ctx, options_.max_bytes_per_second) {}

nlohmann::json StreamCopier::Details() const {
  return TransferDetails(req_, c_, errors_, stop_, encrypted_, skipped_);
}

void StreamCopier::Publish(bool force) {
  const int64_t now = SteadyNowNs();
  if (!force && now - last_publish_ns_ < 50'000'000) return;  // 20 updates/s at most
  last_publish_ns_ = now;
  ctx_->SetDetails(Details());
}

void StreamCopier::Fail(const std::string& path, const Err& error) {
  if (CutByCancel(error, *ctx_)) return;
  RecordFailure(req_, path, error, &c_, &first_error_, &errors_, &stop_);
  Publish(false);
}

void StreamCopier::Fail(const std::string& path, const std::string& error) {
  Fail(path, Err{TIMER_AP_UNKNOWN, error});
}

void StreamCopier::SourceError(const std::string& path, const Err& e) {
  if (CutByCancel(e, *ctx_)) return;
  if (!req_.options.skip_source_errors || !IsSkippableSourceError(e)) {
    return Fail(path, e.message);
  }
  RecordSkippedSource(path, e.message, &c_, &skipped_);
  Publish(false);
}

Err StreamCopier::StopReason() const {
  if (ctx_->cancelled()) return {TIMER_AP_CANCELLED, "cancelled"};
  return {TIMER_AP_ABORTED, stop_};  // a limit: not this file's failure
}

bool StreamCopier::Admit(const Path& dst_dir, int64_t bytes, int64_t entries) {
  const int64_t free_bytes = limits_.NeedsFreeBytes() ? dst_->FreeBytes(dst_dir) : -1;
  return limits_.Admit(free_bytes, bytes, entries, &stop_);
}

Outcome StreamCopier::Run() {
  throttle_.Start();
  buf_.resize(kStreamChunk);
  Publish(true);
  // A copy within one endpoint opens it twice too: reads in flight and
  // writes on one SFTP channel can stall each other (flow control).
  // A remote endpoint's request waiting on its server ends CANCELLED soon
  // after a cancel (endpoint_fs.h), not when timeout_seconds passes.
  const ActionContext* const ctx = ctx_;
  const CancelCheck cancelled = [ctx] { return ctx->cancelled(); };
  Err e = OpenEndpoint(*req_.source, cancelled, &src_owned_);
  if (e.ok()) e = OpenEndpoint(*req_.destination, cancelled, &dst_owned_);
  src_ = src_owned_.get();
  dst_ = dst_owned_.get();
  if (!e.ok()) {
    Publish(true);
    if (ctx_->cancelled()) return RunOutcome(c_, stop_, true, first_error_);
    // Opening an endpoint: a refused connection may pass, a refused key not.
    e.error_class = ClassOf(e);
    return Outcome::Failed(e);
  }
  // What crosses a network is encrypted when every remote side encrypts
  // (a local side crosses none).
  encrypted_ = (!req_.source->remote || src_->Encrypted()) &&
               (!req_.destination->remote || dst_->Encrypted());
  if (req_.encrypt_data && !encrypted_) {
    Publish(true);
    return {
        TIMER_AP_STATE_FAILED,
        "encrypt_data: an endpoint of this transfer does not encrypt data in transit"};
  }
  for (size_t i = 0; i < req_.items.size() && !Stopped(); ++i) {
    CopyItem(i, req_.items[i]);
  }
  Publish(true);
  return RunOutcome(c_, stop_, ctx_->cancelled(), first_error_);
}

void StreamCopier::CopyItem(size_t index, const Item& item) {
  const std::string where = "transfer_items[" + std::to_string(index) + "]";
  const std::string src_name = item.source_path.empty() ? "." : item.source_path;
  const std::string src_field = where + ".source_path " + src_name;
  EntryInfo info;
  bool exists = false;
  if (Err e = src_->Stat(item.source, &info, &exists); !e.ok())
    return SourceError(src_field, e);
  if (!exists) return SourceError(src_field, NotFound("no such file or directory"));
  if (info.kind == EntryKind::kSymlink)
    return Fail(src_field, "is a symbolic link (refused, never followed)");
  const bool dir_item = info.kind == EntryKind::kDirectory;
  if (dir_item && !item.recursive)
    return Fail(src_field, "is a directory; set recursive to copy it");
  if (!dir_item && info.kind != EntryKind::kFile)
    return Fail(src_field, "is not a regular file or directory");
  if (!dir_item && item.destination.empty())
    return Fail(where + ".destination_path",
                "must name a file when the source is a file");
  // One storage on both sides: a tree copied into itself (or over its own
  // parent) would copy its own output.
  if (req_.source == req_.destination && (IsPrefix(item.source, item.destination) ||
                                          IsPrefix(item.destination, item.source))) {
    return Fail(src_field,
                "overlaps destination_path " + item.destination_path +
                    " on the same endpoint: the run would copy its own output");
  }
  const size_t parents = dir_item ? item.destination.size() : item.destination.size() - 1;
  bool existed = true;  // the root
  for (size_t i = 1; i <= parents; ++i) {
    const Path p(item.destination.begin(),
                 item.destination.begin() + static_cast<long>(i));
    if (!EnsureDir(p, where + ".destination_path " + item.destination_path, &existed))
      return;
  }
  if (existed)
    SweepStaleParts(Path(item.destination.begin(),
                         item.destination.begin() + static_cast<long>(parents)));
  if (!dir_item) return CopyFile(item.source, info, item.destination, item.source_path);
  item_dst_ = item.destination;
  open_dirs_.clear();
  CopyTree(item.source, item.destination, item.source_path, 0);
  if (req_.preserve_timestamp && !Stopped() && info.mtime_ns >= 0)
    dst_->SetMtime(item.destination, info.mtime_ns);
}

void StreamCopier::SweepStaleParts(const Path& dir) {
  // A live writer writes at least a chunk per this long, throttled or not
  // (and never waits a whole timeout_seconds for an answer): an hour, or
  // two chunks at the bandwidth cap when that is longer.
  int64_t age = 3600;
  if (options_.max_bytes_per_second > 0) {
    age = std::max<int64_t>(
        age, 2 * static_cast<int64_t>(kStreamChunk) / options_.max_bytes_per_second + 1);
  }
  dst_->SweepStaleParts(dir, age);
}

bool StreamCopier::EnsureDir(const Path& dst, const std::string& shown, bool* existed) {
  EntryInfo info;
  bool exists = false;
  if (existed != nullptr) *existed = false;
  if (Err e = dst_->Stat(dst, &info, &exists); !e.ok()) {
    if (!CutByCancel(e, *ctx_)) Fail(shown, e.message);
    return false;
  }
  if (exists && existed != nullptr) *existed = info.kind == EntryKind::kDirectory;
  if (exists) {
    if (info.kind == EntryKind::kDirectory) return true;
    Fail(shown, "destination " + (dst.empty() ? "." : dst.back()) +
                    (info.kind == EntryKind::kSymlink
                         ? " is a symbolic link (refused, never followed)"
                         : " is not a directory"));
    return false;
  }
  if (!Admit(Parent(dst), 0, 1)) return false;
  if (Err e = dst_->MakeDir(dst); !e.ok()) {
    limits_.Refund(0, 1);
    e.message = "cannot create directory: " + e.message;
    Fail(shown, e);
    return false;
  }
  ++c_.directories_created;
  return true;
}

void StreamCopier::CopyTree(const Path& src, const Path& dst, const std::string& rel,
                            int depth) {
  if (depth > kMaxDepth)
    return Fail(rel, "directory nesting deeper than " + std::to_string(kMaxDepth));
  std::vector<EntryInfo> entries;
  if (Err e = src_->List(src,
                         [&](const EntryInfo& info) {
                           if (!IsTempPartName(info.name)) entries.push_back(info);
                           return !Stopped();
                         });
      !e.ok()) {
    return SourceError(rel.empty() ? "." : rel, e);
  }
  std::sort(entries.begin(), entries.end(),
            [](const EntryInfo& a, const EntryInfo& b) { return a.name < b.name; });
  // Only recursive_symlinks copy can reach a directory twice (through a
  // link): the directories being copied are kept to refuse a loop.
  const bool track = req_.options.recursive_symlinks == RecursiveSymlinks::kCopy;
  if (track) open_dirs_.push_back(src);
  for (const EntryInfo& info : entries) {
    if (Stopped()) return;
    const std::string path = Join(rel, info.name);
    const Path s = Child(src, info.name), d = Child(dst, info.name);
    // Links are filtered as what they become (CopyLink).
    const FilterRules& filters = req_.options.filter_rules;
    if (!filters.empty() && info.kind != EntryKind::kSymlink &&
        !filters.Included(info.name, info.kind == EntryKind::kDirectory)) {
      ++c_.entries_excluded;
      continue;
    }
    switch (info.kind) {
      case EntryKind::kFile:
        CopyFile(s, info, d, path);
        break;
      case EntryKind::kDirectory:
        // Only a followed link can lead the walk to the copy itself.
        if (req_.source == req_.destination && s == item_dst_) break;
        CopyDir(s, info, d, path, depth);
        break;
      case EntryKind::kSymlink:
        CopyLink(s, d, path, depth);
        break;
      case EntryKind::kOther:
        ++c_.special_files_skipped;
        break;
    }
  }
  if (track && !open_dirs_.empty()) open_dirs_.pop_back();
  if (req_.delete_destination_extra && !Stopped()) DeleteExtra(src, dst, rel);
}

void StreamCopier::CopyDir(const Path& src, const EntryInfo& info, const Path& dst,
                           const std::string& path, int depth) {
  bool existed = false;
  if (!EnsureDir(dst, path, &existed)) return;
  if (existed) SweepStaleParts(dst);
  CopyTree(src, dst, path, depth + 1);
  if (req_.preserve_timestamp && !Stopped() && info.mtime_ns >= 0)
    dst_->SetMtime(dst, info.mtime_ns);
}

void StreamCopier::SkipLink(const std::string& path, const std::string& why) {
  ++c_.symlinks_skipped;
  if (skipped_.size() < kMaxListed)
    skipped_.push_back({{"path", path}, {"skipped", "symbolic link " + why}});
  Publish(false);
}

void StreamCopier::CopyLink(const Path& src, const Path& dst, const std::string& path,
                            int depth) {
  switch (req_.options.recursive_symlinks) {
    case RecursiveSymlinks::kIgnore:
      ++c_.symlinks_skipped;
      return;
    case RecursiveSymlinks::kKeep:
      return KeepLink(src, dst, path);
    case RecursiveSymlinks::kCopy:
      return FollowLink(src, dst, path, depth);
  }
}

void StreamCopier::KeepLink(const Path& src, const Path& dst, const std::string& path) {
  const FilterRules& filters = req_.options.filter_rules;
  if (!filters.empty() && !filters.Included(src.back(), false)) {
    ++c_.entries_excluded;
    return;
  }
  std::string target;
  if (Err e = src_->ReadLink(src, &target); !e.ok()) return SourceError(path, e);
  // dst's directory is dst.size() - 1 real directories below the root.
  if (!KeepableLinkTarget(target, dst.size() - 1)) {
    return SkipLink(path, "not kept: its target \"" + target +
                              "\" could point outside the destination endpoint (only "
                              "relative targets whose \"..\" stay inside are kept)");
  }
  EntryInfo info;
  bool exists = false;
  if (Err e = dst_->Stat(dst, &info, &exists); !e.ok()) {
    if (CutByCancel(e, *ctx_)) return;
    return Fail(path, "destination: " + e.message);
  }
  if (exists) {
    if (info.kind == EntryKind::kDirectory)
      return Fail(path, "destination is a directory");
    std::string existing;
    if (info.kind == EntryKind::kSymlink && dst_->ReadLink(dst, &existing).ok() &&
        existing == target) {
      ++c_.files_skipped;  // already there, as it is
      return;
    }
  }
  if (!Admit(Parent(dst), 0, 1)) return;
  if (Err e = dst_->MakeLink(dst, target); !e.ok()) {
    limits_.Refund(0, 1);
    return Fail(path, e);
  }
  ++c_.symlinks_kept;
  Publish(false);
}

void StreamCopier::FollowLink(const Path& src, const Path& dst, const std::string& path,
                              int depth) {
  std::string target;
  if (Err e = src_->ReadLink(src, &target); !e.ok()) return SourceError(path, e);
  // What it points to, every step below the source root, no link followed
  // by the server: each is looked up without following it and its target
  // resolved again here.
  const LinkLookup lookup = [this](const Path& p, EntryKind* kind, std::string* next) {
    EntryInfo info;
    bool exists = false;
    if (Err e = src_->Stat(p, &info, &exists); !e.ok()) return e;
    if (!exists) return NotFound(p.back() + ": no such file or directory");
    *kind = info.kind;
    if (info.kind == EntryKind::kSymlink) return src_->ReadLink(p, next);
    return Ok();
  };
  Path real;
  EntryKind kind = EntryKind::kOther;
  if (Err e = ResolveLinkBeneath(Parent(src), target, lookup, &real, &kind); !e.ok())
    return SkipLink(path, "not followed: " + e.message);
  const bool is_dir = kind == EntryKind::kDirectory;
  const FilterRules& filters = req_.options.filter_rules;
  if (!filters.empty() && !filters.Included(src.back(), is_dir)) {
    ++c_.entries_excluded;
    return;
  }
  if (kind != EntryKind::kFile && !is_dir) {
    ++c_.special_files_skipped;
    return;
  }
  // Looked up again: what the copy reads is opened without following a
  // link on the way (EndpointFs), so a link swapped in since fails the file
  // instead of leading outside.
  EntryInfo info;
  bool exists = false;
  if (Err e = src_->Stat(real, &info, &exists); !e.ok()) return SourceError(path, e);
  if (!exists)
    return SourceError(path, NotFound("link target: no such file or directory"));
  if (info.kind != kind) return Fail(path, "link target changed while being copied");
  ++c_.symlinks_followed;
  if (!is_dir) return CopyFile(real, info, dst, path);
  for (const Path& open : open_dirs_) {
    if (open == real) {
      --c_.symlinks_followed;
      return SkipLink(path,
                      "not followed: it leads to a directory being copied (a loop)");
    }
  }
  if (req_.source == req_.destination && real == item_dst_) return;  // the copy itself
  CopyDir(real, info, dst, path, depth);
}

void StreamCopier::DeleteExtra(const Path& src, const Path& dst, const std::string& rel) {
  std::set<std::string> keep;
  std::vector<std::string> extra;
  const FilterRules& filters = req_.options.filter_rules;
  if (!src_->List(src, [&](const EntryInfo& i) { return keep.insert(i.name), true; })
           .ok())
    return;
  Err e = dst_->List(dst, [&](const EntryInfo& i) {
    // Another run's file in progress is left to it.
    // What filter_rules exclude is left alone at the destination too.
    if (keep.count(i.name) == 0 && !IsTempPartName(i.name) &&
        (filters.empty() || filters.Included(i.name, i.kind == EntryKind::kDirectory))) {
      extra.push_back(i.name);
    }
    return true;
  });
  if (CutByCancel(e, *ctx_)) return;
  if (!e.ok()) return Fail(rel.empty() ? "." : rel, "cannot list: " + e.message);
  for (const std::string& name : extra) {
    if (Stopped()) return;
    if (Err r = dst_->Remove(Child(dst, name)); !r.ok()) {
      Fail(Join(rel, name), "cannot delete: " + r.message);
    } else {
      ++c_.entries_deleted;
    }
  }
}

Err StreamCopier::HashOf(EndpointFs& fs, const Path& p, const EntryInfo& info,
                         Sha256Digest* out) {
  if (info.sha256) {
    *out = *info.sha256;
    return Ok();
  }
  std::unique_ptr<FileReader> r;
  if (Err e = fs.OpenRead(p, &r); !e.ok()) return e;
  Md md = NewSha256();
  if (!md) return Internal("sha256: cannot initialise");
  for (;;) {
    if (Stopped()) return StopReason();
    size_t got = 0;
    if (Err e = r->Read(buf_.data(), buf_.size(), &got); !e.ok()) return e;
    if (got == 0) break;
    EVP_DigestUpdate(md.get(), buf_.data(), got);
  }
  if (!FinishSha256(md.get(), out)) return Internal("sha256: cannot finish");
  return Ok();
}

void StreamCopier::CopyFile(const Path& src, const EntryInfo& src_info, const Path& dst,
                            const std::string& shown) {
  EntryInfo dst_info;
  bool dst_exists = false;
  if (Err e = dst_->Stat(dst, &dst_info, &dst_exists); !e.ok()) {
    if (CutByCancel(e, *ctx_)) return;
    return Fail(shown, "destination: " + e.message);
  }
  if (dst_exists && dst_info.kind == EntryKind::kDirectory)
    return Fail(shown, "destination is a directory");
  const bool dst_file = dst_exists && dst_info.kind == EntryKind::kFile;

  // To the second: SFTP (version 3) keeps no finer time.
  bool skip = SyncSkipsByMetadata(req_.sync_level, dst_file, src_info.size, dst_info.size,
                                  src_info.mtime_ns >= 0 && dst_info.mtime_ns >= 0,
                                  src_info.mtime_ns, dst_info.mtime_ns, 1'000'000'000);
  if (req_.sync_level == SyncLevel::kChecksum && dst_file &&
      dst_info.size == src_info.size) {
    Sha256Digest a{}, b{};
    Err e = HashOf(*dst_, dst, dst_info, &b);
    if (e.ok()) e = HashOf(*src_, src, src_info, &a);
    if (Stopped()) return;
    if (!e.ok()) return Fail(shown, e.message);
    skip = a == b;
  }
  if (skip) {
    ++c_.files_skipped;
    Publish(false);
    return;
  }

  int64_t reserved = std::max<int64_t>(src_info.size, 0);
  if (!Admit(Parent(dst), reserved, 1)) return;
  PublishOptions publish;
  if (req_.preserve_timestamp) publish.mtime_ns = src_info.mtime_ns;

  // The same storage on both sides may copy without the bytes crossing
  // timerd (S3 CopyObject); a checked copy needs the bytes.
  if (!req_.verify_checksum) {
    Err e = dst_->CopyFrom(*src_, src, dst, publish);
    if (e.ok()) {
      c_.bytes_transferred += reserved;
      ++c_.files_transferred;
      Publish(false);
      return;
    }
    if (e.code != TIMER_AP_UNIMPLEMENTED) {
      limits_.Refund(reserved, 1);
      return Fail(shown, e);
    }
  }

  for (int attempt = 0; attempt < 2; ++attempt) {
    const int64_t bytes_before = c_.bytes_transferred;
    Sha256Digest hash{};
    bool from_source = false;
    Err e =
        Stream(src, dst, src_info.size, shown, &hash, &reserved, publish, &from_source);
    if ((e.code == TIMER_AP_CANCELLED || e.code == TIMER_AP_ABORTED) && Stopped()) {
      limits_.Refund(reserved, 1);
      return;  // the run stops; stop_ or the cancel says why
    }
    if (e.code == TIMER_AP_DATA_LOSS) {
      c_.bytes_transferred = bytes_before;
      if (attempt == 0) {
        ++c_.checksum_retries;
        continue;  // once more, as Globus does (under the same admission)
      }
      limits_.Refund(reserved, 1);
      return Fail(shown, "checksum mismatch after retry");
    }
    if (!e.ok()) {
      limits_.Refund(reserved, 1);
      if (from_source) return SourceError(shown, e);
      return Fail(shown, e);  // RESOURCE_EXHAUSTED: the destination is full
    }
    const int64_t wrote = c_.bytes_transferred - bytes_before;
    if (wrote < reserved) limits_.Refund(reserved - wrote, 0);
    if (req_.verify_checksum) ++c_.files_verified;
    ++c_.files_transferred;
    Publish(false);
    return;
  }
}

Err StreamCopier::Stream(const Path& src, const Path& dst, int64_t size,
                         const std::string& shown, Sha256Digest* hash, int64_t* reserved,
                         const PublishOptions& publish_options, bool* from_source) {
  *from_source = true;
  if (hooks_.before_open_source) hooks_.before_open_source(shown);
  std::unique_ptr<FileReader> reader;
  if (Err e = src_->OpenRead(src, &reader); !e.ok()) return e;
  *from_source = false;
  std::unique_ptr<FileWriter> writer;  // destroyed unpublished: aborted
  if (Err e = dst_->Create(dst, size, &writer); !e.ok()) return e;
  // The hash is worked out only when something uses it: verify_checksum,
  // or a destination that keeps it beside the file (S3 metadata).
  const bool hashing = req_.verify_checksum || dst_->KeepsSha256();
  Md md = NewSha256();
  if (!md) return Internal("sha256: cannot initialise");
  int64_t written = 0;
  for (;;) {
    if (Stopped()) return StopReason();
    const char* data = buf_.data();
    size_t got = 0;
    if (Err e = reader->Read(buf_.data(), buf_.size(), &got); !e.ok()) {
      e.message = "read: " + e.message;
      *from_source = true;
      return e;
    }
    if (hashing) EVP_DigestUpdate(md.get(), data, got);
    if (got == 0) break;
    if (Err e = writer->Write(data, got); !e.ok()) {
      e.message = "write: " + e.message;
      return e;
    }
    written += static_cast<int64_t>(got);
    c_.bytes_transferred += static_cast<int64_t>(got);
    // A file that grew past what was admitted for it is admitted again,
    // for the excess: the bounds hold to within one chunk.
    if (written > *reserved) {
      const int64_t more = written - *reserved;
      if (!Admit(Parent(dst), more, 0)) return StopReason();
      *reserved += more;
    }
    if (hooks_.after_chunk) hooks_.after_chunk(shown, written);
    throttle_.Wait(c_.bytes_transferred);
    Publish(false);
  }
  if (!hashing) {
    // Nothing uses it; the copier's callers get zeros.
    *hash = Sha256Digest{};
  } else if (!FinishSha256(md.get(), hash)) {
    return Internal("sha256: cannot finish");
  }
  PublishOptions options = publish_options;
  if (hashing) options.sha256 = *hash;
  bool checked = false;
  if (req_.verify_checksum) {
    Sha256Digest back{};
    Err e = writer->ReadBackSha256(&back);
    if (e.ok()) {
      if (back != *hash) return {TIMER_AP_DATA_LOSS, "checksum mismatch"};
      checked = true;
    } else if (e.code != TIMER_AP_UNIMPLEMENTED) {
      return e;
    }
  }
  if (Stopped()) return StopReason();
  if (Err e = writer->Publish(options); !e.ok()) return e;
  if (req_.verify_checksum && !checked) {
    // The storage reads back only what it published: compare that.
    EntryInfo info;
    bool exists = false;
    Sha256Digest back{};
    Err e = dst_->Stat(dst, &info, &exists);
    if (e.ok() && !exists) e = Internal("the published file is gone");
    if (e.ok()) {
      info.sha256.reset();  // the bytes, not what was stored beside them
      e = HashOf(*dst_, dst, info, &back);
    }
    if (!e.ok()) return e;
    if (back != *hash) return {TIMER_AP_DATA_LOSS, "checksum mismatch"};
  }
  return Ok();
}

}  // namespace timer::plugins::transfer
