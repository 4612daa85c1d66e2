// transfer_options: the rules of a transfer body that do not depend on how
// an endpoint stores its files, as pure functions and small value classes,
// so that every copier (local directories, the stream copier of remote
// endpoints) applies one copy of each rule:
//
//   - Globus path conventions (ResolvePath): a body path is absolute in the
//     endpoint's own namespace. "/" is the endpoint's root; "/~/" and "~/"
//     the calling identity's home on that endpoint (the endpoint's `home`
//     template, e.g. "home/{identity}", below its root; the root when the
//     endpoint has none); a relative path is relative to that home. ".." is
//     refused everywhere, so nothing resolves outside the root.
//   - The two body shapes (BodyShapeOf, ReadTransferOptions): today's
//     (source_endpoint_id, transfer_items) and the Globus Transfer API's
//     transfer document (DATA_TYPE "transfer", source_endpoint, DATA), read
//     into one Request; fields we cannot honour are refused naming them, or
//     accepted with a note in the run's details where ignoring them is
//     harmless, never dropped silently.
//   - filter_rules (FilterRules), recursive_symlinks (RecursiveSymlinks,
//     KeepableLinkTarget, ResolveLinkBeneath), skip_source_errors
//     (IsSkippableSourceErrno) and fail_on_quota_errors (IsQuotaError: a
//     RESOURCE_EXHAUSTED status from the writing step, ErrnoError).
//
// Errors name the body field they are about (the prefix the caller passes)
// and quote paths as the user gave them.
//
// Thread-safety: everything here is a pure function or an immutable value
// once built; safe from any thread.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "endpoint_fs.h"
#include "provider_support.h"

namespace timer::plugins::transfer {

// ---- Paths -----------------------------------------------------------------

// Checks an endpoint's `home` template (config key
// plugins.transfer.endpoints[N].home): a path below the endpoint's root
// ("/" or "" is the root itself), without "..", in which "{identity}" stands
// for the calling identity. `field` prefixes errors.
Err CheckHomeTemplate(const std::string& home, const std::string& field);

// The components of `identity`'s home below the root, from template `home`.
// An identity that could not be one path component (empty, ".", "..", a '/',
// NUL or over 255 bytes) has no home where the template names it: such an
// identity gets INVALID_ARGUMENT (naming `field`) instead of a path that
// could climb out of its home or split into several components. A template
// without "{identity}" is the same home for everyone.
Err HomeComponents(const std::string& home, const std::string& identity,
                   const std::string& field, Path* out);

// Resolves body path `path` into components below the endpoint's root (see
// the file comment for the forms). A first component "~NAME" (another user's
// home, in a shell) is refused: only "~" is understood; "./~NAME" names a
// file of that name. ".." anywhere, NUL and names over 255 bytes are refused
// naming `field`.
Err ResolvePath(const std::string& home, const std::string& identity,
                const std::string& path, const std::string& field, Path* out);

// ---- filter_rules ------------------------------------------------------------

// Globus's filter rules: an ordered list of include/exclude rules matched
// against the names (not paths) of the entries a recursive item finds; the
// first rule that matches decides, and an entry no rule matches is included.
// An excluded directory is not entered. Rules do not apply to an item's own
// source path. The glob is fnmatch(3) without flags: '*', '?', "[...]",
// "[!...]"; '*' also matches a leading '.'.
class FilterRules {
 public:
  enum class Type { kAny, kFile, kDir };
  struct Rule {
    bool include = false;  // Globus's default method is exclude
    Type type = Type::kAny;
    std::string name;  // the glob
  };
  static constexpr size_t kMaxRules = 1000;

  // Reads a body's filter_rules array ({DATA_TYPE: "filter_rule", method:
  // include|exclude, name: GLOB, type: file|dir}); INVALID_ARGUMENT naming
  // `field`[i].KEY.
  static Err Parse(const nlohmann::json& rules, const std::string& field,
                   FilterRules* out);

  void Add(Rule rule) { rules_.push_back(std::move(rule)); }
  // Whether an entry named `name` (a directory when `is_dir`) is copied.
  bool Included(const std::string& name, bool is_dir) const;
  bool empty() const { return rules_.empty(); }
  size_t size() const { return rules_.size(); }

 private:
  std::vector<Rule> rules_;
};

// ---- recursive_symlinks ------------------------------------------------------

// What a recursive item does with a symbolic link it finds in its tree:
//   kIgnore  skips it and counts it (symlinks_skipped), the default;
//   kKeep    recreates the link at the destination with the same target
//            text, when KeepableLinkTarget allows it (else skipped, counted);
//   kCopy    copies what the link points to, when it resolves inside the
//            source endpoint's root (ResolveLinkBeneath; else skipped,
//            counted). A directory reached through a link is copied like
//            any other, except one already being copied above it (a loop),
//            which is skipped and counted.
enum class RecursiveSymlinks { kIgnore, kKeep, kCopy };

Err ParseRecursiveSymlinks(const nlohmann::json& value, const std::string& field,
                           RecursiveSymlinks* out);
const char* RecursiveSymlinksName(RecursiveSymlinks mode);

// Whether `keep` may recreate a link with target `target` in a directory
// `depth` levels below the destination root (every one a real directory, as
// the copier opened them without following links). Only a relative target
// whose ".." components all come first, and are no more than `depth`, is
// kept: the link then resolves inside the root however the rest of the tree
// changes (the ".." climb real directories, the names below are inside
// again). Absolute targets name the host's files, not the endpoint's, and
// are never kept.
bool KeepableLinkTarget(const std::string& target, size_t depth);

// What ResolveLinkBeneath needs of an endpoint: the kind of the entry at
// `path` (components below the root, the last not followed) and, for a
// link, its target. NOT_FOUND when it is missing.
using LinkLookup =
    std::function<Err(const Path& path, EntryKind* kind, std::string* link_target)>;

// Resolves the link whose target is `target`, found in directory `link_dir`
// (components below the root, every one a real directory), following
// further links, 40 at most. Sets *out to the components below the root of
// what it points to (never a link) and *kind to its kind.
// FAILED_PRECONDITION when it points outside the root (an absolute target,
// or ".." above the root) or loops; NOT_FOUND when something on the way is
// missing.
Err ResolveLinkBeneath(const Path& link_dir, const std::string& target,
                       const LinkLookup& lookup, Path* out, EntryKind* kind);

// ---- skip_source_errors and fail_on_quota_errors ---------------------------

// The source errors skip_source_errors skips (as Globus: permission denied
// and not found): EACCES, EPERM, ENOENT.
bool IsSkippableSourceErrno(int err);
// The same for an error an EndpointFs returned (endpoint_fs.h): NOT_FOUND or
// PERMISSION_DENIED (an SFTP status, an HTTP 404/401/403), or the strerror()
// text of those errnos in the message (a local directory's LocalFs).
bool IsSkippableSourceError(const Err& e);

// A destination that is full or over its quota: ENOSPC, EDQUOT.
bool IsQuotaErrno(int err);
// A failure of a local system call: "`what`: strerror(err)", with the code
// RESOURCE_EXHAUSTED for a full destination or an exceeded quota
// (IsQuotaErrno), INTERNAL otherwise.
Err ErrnoError(const std::string& what, int err);
// Whether a failed write is a full destination or an exceeded quota, what
// fail_on_quota_errors stops a run for. The convention of every storage
// (local, SFTP, S3): its writing step (create, write, publish, make a
// directory) says so with the code RESOURCE_EXHAUSTED; the message is for
// people and never decides (a file may be named "No space left on device").
bool IsQuotaError(const Err& e);

// ---- The two body shapes ---------------------------------------------------

// The names a body's fields have in its shape: today's, or the Globus
// Transfer API's transfer document (any of DATA_TYPE, DATA,
// source_endpoint, destination_endpoint at the top marks it).
struct BodyShape {
  bool globus = false;
  const char* source_endpoint = "source_endpoint_id";
  const char* destination_endpoint = "destination_endpoint_id";
  const char* items = "transfer_items";
};
BodyShape BodyShapeOf(const nlohmann::json& body);

// The options of a transfer besides its endpoints, items and the options
// every copier had before (sync level, checksums, timestamps, deletion).
struct TransferOptions {
  FilterRules filter_rules;
  bool skip_source_errors = false;
  bool fail_on_quota_errors = false;
  RecursiveSymlinks recursive_symlinks = RecursiveSymlinks::kIgnore;
  // Fields accepted but not applied, each with why: the run's details show
  // them under "notes".
  nlohmann::json notes = nlohmann::json::object();
};

// Reads the options above from a body through `r` (the top-level reader),
// and in the Globus shape its top-level fields we do not carry out: refused
// (deadline, source_local_user, destination_local_user, and any unknown
// field when the caller's r.Finish() runs) or noted (notify_on_*,
// submission_id, skip_activation_check, store_base_path_info).
Err ReadTransferOptions(FieldReader& r, const BodyShape& shape, TransferOptions* out);

// In the Globus shape, the fields of one DATA item besides source_path,
// destination_path and recursive: DATA_TYPE must be "transfer_item" when
// given ("transfer_symlink_item" is refused: links are not copied as links
// by item); external_checksum and checksum_algorithm are refused.
Err ReadGlobusItemFields(FieldReader& ir);

}  // namespace timer::plugins::transfer
