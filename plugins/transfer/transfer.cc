// transfer: copies files and directory trees between endpoints, the
// Globus Transfer action's body on local directories.
//
// Config ([plugins.transfer] in timerd.toml; docs/DEPLOYMENT.md has every
// key with its default):
//   max_bytes_per_second = 0           # optional bandwidth cap per action
//   max_bytes_per_run, max_files_per_run           # per run
//   max_bytes_per_identity_per_day, max_files_per_identity_per_day
//   min_free_bytes                     # default free-space floor
//   action_threads, max_queued_actions, stop_timeout_seconds
//   [[plugins.transfer.endpoints]]
//   id = "1f0c...-uuid"                # what bodies name
//   display_name = "Lab archive"
//   root = "/srv/archive"              # absolute directory, not a system one
//   allowed_identities = ["alice@example.org"]   # absent or []: nobody; "*": anyone
//   min_free_bytes = 1073741824        # optional; the provider's by default
//   home = "home/{identity}"           # optional: "~" in paths; default the root
//   type = "sftp"                      # optional; "local" by default; or "s3".
//                                      # Their keys: sftp_fs.h, s3_fs.h, DEPLOYMENT.md
//
// Bodies come in two shapes, today's and the Globus Transfer document, and
// paths follow Globus's conventions ("/" the endpoint root, "/~/" and "~/"
// the caller's home there, relative paths below that home): see
// transfer_options.h; copier.h says how paths are confined, bounded and how
// files land atomically. Actions run on a
// bounded pool of threads (ActionRunner); cancel stops one between chunks of
// 16 MiB at most.
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "copier.h"
#include "provider_support.h"
#include "s3_fs.h"
#include "sftp_fs.h"
#include "stream_copier.h"
#include "timer/action_provider.h"
#include "transfer_options.h"

namespace timer::plugins::transfer {
namespace {

constexpr size_t kMaxItems = 100000;

// Both shapes: today's (source_endpoint_id, transfer_items) and the Globus
// Transfer API's transfer document (DATA_TYPE, source_endpoint, DATA).
constexpr char kSchema[] = R"({
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "transfer action body",
  "description": "Copies files and directories from one configured endpoint to another. Paths follow Globus's conventions: '/' is the endpoint's root, '/~/' and '~/' your home on it, other paths are relative to that home; '..' and symbolic links on a path are refused. Two shapes: timer's (source_endpoint_id, transfer_items) and the Globus Transfer document (DATA_TYPE transfer, source_endpoint, DATA).",
  "oneOf": [{"$ref": "#/$defs/timer_body"}, {"$ref": "#/$defs/globus_body"}],
  "$defs": {
    "path": {"type": "string", "description": "/PATH from the endpoint root, /~/PATH or ~/PATH from your home on it, PATH relative to that home."},
    "item": {
      "type": "object",
      "required": ["source_path", "destination_path"],
      "properties": {
        "source_path": {"$ref": "#/$defs/path", "description": "A file, or a directory with recursive."},
        "destination_path": {"$ref": "#/$defs/path", "description": "The file, or the directory mirroring the source directory."},
        "recursive": {"type": "boolean", "default": false}
      }
    },
    "options": {
      "label": {"type": "string", "maxLength": 256},
      "sync_level": {
        "description": "Skip files already at the destination: exists (any file there), size (same size), mtime (destination not older), checksum (same SHA-256). Unset: copy every file.",
        "oneOf": [{"enum": ["exists", "size", "mtime", "checksum"]},
                  {"type": "integer", "minimum": 0, "maximum": 3}]
      },
      "verify_checksum": {"type": "boolean", "default": false,
                          "description": "Compare SHA-256 of source and copy; retry once on mismatch."},
      "preserve_timestamp": {"type": "boolean", "default": false},
      "encrypt_data": {"type": "boolean", "default": false,
                       "description": "Local endpoints have nothing to encrypt; the run's details say so."},
      "delete_destination_extra": {"type": "boolean", "default": false,
                                   "description": "In recursive items, delete destination entries the source does not have (except what filter_rules exclude)."},
      "filter_rules": {
        "type": "array", "maxItems": 1000,
        "description": "In recursive items, matched in order against each entry's name; the first match decides; no match: included. An excluded directory is not entered.",
        "items": {
          "type": "object",
          "additionalProperties": false,
          "required": ["name"],
          "properties": {
            "DATA_TYPE": {"const": "filter_rule"},
            "method": {"enum": ["include", "exclude"], "default": "exclude"},
            "type": {"enum": ["file", "dir"], "description": "Unset: both."},
            "name": {"type": "string", "minLength": 1, "maxLength": 1024, "description": "An fnmatch glob: *, ?, [...], [!...]."}
          }
        }
      },
      "skip_source_errors": {"type": "boolean", "default": false,
                             "description": "A source entry that is missing or unreadable is skipped and counted instead of failing the run."},
      "fail_on_quota_errors": {"type": "boolean", "default": false,
                               "description": "A full destination (ENOSPC, EDQUOT) stops the run at once; otherwise that file fails and the others go on."},
      "recursive_symlinks": {"enum": ["ignore", "keep", "copy"], "default": "ignore",
                             "description": "Symbolic links in recursive items: ignore (skip, count), keep (recreate when the target stays inside the destination root), copy (copy what they point to, when inside the source root)."}
    },
    "timer_body": {
      "type": "object",
      "required": ["source_endpoint_id", "destination_endpoint_id", "transfer_items"],
      "properties": {
        "source_endpoint_id": {"type": "string", "minLength": 1},
        "destination_endpoint_id": {"type": "string", "minLength": 1},
        "transfer_items": {
          "type": "array", "minItems": 1, "maxItems": 100000,
          "items": {"$ref": "#/$defs/item", "unevaluatedProperties": false}
        },
        "label": {"$ref": "#/$defs/options/label"},
        "sync_level": {"$ref": "#/$defs/options/sync_level"},
        "verify_checksum": {"$ref": "#/$defs/options/verify_checksum"},
        "preserve_timestamp": {"$ref": "#/$defs/options/preserve_timestamp"},
        "encrypt_data": {"$ref": "#/$defs/options/encrypt_data"},
        "delete_destination_extra": {"$ref": "#/$defs/options/delete_destination_extra"},
        "filter_rules": {"$ref": "#/$defs/options/filter_rules"},
        "skip_source_errors": {"$ref": "#/$defs/options/skip_source_errors"},
        "fail_on_quota_errors": {"$ref": "#/$defs/options/fail_on_quota_errors"},
        "recursive_symlinks": {"$ref": "#/$defs/options/recursive_symlinks"}
      },
      "additionalProperties": false
    },
    "globus_body": {
      "type": "object",
      "description": "The Globus Transfer API's transfer document. Refused: deadline, source_local_user, destination_local_user, and in DATA items external_checksum, checksum_algorithm and DATA_TYPE transfer_symlink_item. Accepted and noted in the run's details, not applied: notify_on_succeeded, notify_on_failed, notify_on_inactive, skip_activation_check, store_base_path_info (when true), submission_id.",
      "required": ["source_endpoint", "destination_endpoint", "DATA"],
      "properties": {
        "DATA_TYPE": {"const": "transfer"},
        "source_endpoint": {"type": "string", "minLength": 1},
        "destination_endpoint": {"type": "string", "minLength": 1},
        "DATA": {
          "type": "array", "minItems": 1, "maxItems": 100000,
          "items": {
            "$ref": "#/$defs/item",
            "properties": {"DATA_TYPE": {"const": "transfer_item"}},
            "unevaluatedProperties": false
          }
        },
        "label": {"$ref": "#/$defs/options/label"},
        "sync_level": {"$ref": "#/$defs/options/sync_level"},
        "verify_checksum": {"$ref": "#/$defs/options/verify_checksum"},
        "preserve_timestamp": {"$ref": "#/$defs/options/preserve_timestamp"},
        "encrypt_data": {"$ref": "#/$defs/options/encrypt_data"},
        "delete_destination_extra": {"$ref": "#/$defs/options/delete_destination_extra"},
        "filter_rules": {"$ref": "#/$defs/options/filter_rules"},
        "skip_source_errors": {"$ref": "#/$defs/options/skip_source_errors"},
        "fail_on_quota_errors": {"$ref": "#/$defs/options/fail_on_quota_errors"},
        "recursive_symlinks": {"$ref": "#/$defs/options/recursive_symlinks"},
        "submission_id": {"type": "string"},
        "notify_on_succeeded": {"type": "boolean"},
        "notify_on_failed": {"type": "boolean"},
        "notify_on_inactive": {"type": "boolean"},
        "skip_activation_check": {"type": "boolean"},
        "store_base_path_info": {"type": "boolean"}
      },
      "additionalProperties": false
    }
  }
})";

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kTiB = int64_t{1} << 40;

struct Config {
  std::vector<Endpoint> endpoints;
  int64_t max_bytes_per_second = 0;
  int64_t max_bytes_per_run = 100 * kGiB;
  int64_t max_files_per_run = 1000000;
  WriteQuota::Limits per_identity{.bytes_per_day = kTiB, .files_per_day = 10000000};
  int64_t min_free_bytes = kGiB;
  ActionRunner::Options runner;
  const Endpoint* Find(const std::string& id) const {
    for (const Endpoint& e : endpoints) {
      if (e.id == id) return &e;
    }
    return nullptr;
  }
};

bool IsPrefix(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// The components of an absolute path, resolved through symbolic links as
// far as it exists (the rest lexically): where the endpoint's files are.
std::vector<std::string> PhysicalComponents(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::path(path), ec);
  if (ec) p = fs::path(path).lexically_normal();
  std::vector<std::string> out;
  for (const fs::path& c : p) {
    const std::string s = c.string();
    if (!s.empty() && s != "/" && s != ".") out.push_back(s);
  }
  return out;
}

std::string JoinComponents(const std::vector<std::string>& comps) {
  std::string s;
  for (const std::string& c : comps) s += "/" + c;
  return s.empty() ? "/" : s;
}

// System directories an endpoint must not be rooted at: the tree itself
// (kSystemTrees: nothing below it either) or exactly the directory
// (kSystemDirs: a directory below may be fine, e.g. /srv/x or /home/lab).
constexpr const char* kSystemTrees[] = {"/proc", "/sys", "/dev", "/boot", "/etc", "/usr"};
constexpr const char* kSystemDirs[] = {
    "/",    "/bin",     "/sbin",    "/lib", "/lib32", "/lib64", "/libx32",
    "/var", "/var/lib", "/var/tmp", "/run", "/home",  "/root",  "/tmp"};

// The data directories of this process: where the files named timer.db it
// has open are (timerd opens its store before it loads providers).
std::vector<std::vector<std::string>> OpenDataDirs() {
  std::vector<std::vector<std::string>> dirs;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return dirs;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[PATH_MAX];
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    std::string t(target, static_cast<size_t>(n));
    const size_t slash = t.rfind('/');
    if (slash == std::string::npos || t.substr(slash + 1) != "timer.db") continue;
    std::vector<std::string> comps = PhysicalComponents(t.substr(0, slash + 1));
    if (std::find(dirs.begin(), dirs.end(), comps) == dirs.end()) dirs.push_back(comps);
  }
  closedir(d);
  return dirs;
}

// Refuses a root that is a system directory, or that holds timerd's data
// directory (or is it): a job could then read or overwrite timer.db.
Err CheckRoot(const std::string& field, const std::string& root,
              const std::vector<std::vector<std::string>>& data_dirs) {
  const std::vector<std::string> comps = PhysicalComponents(root);
  const std::string resolved = JoinComponents(comps);
  const std::string shown =
      resolved == root ? root : root + " (that is, " + resolved + ")";
  for (const char* dir : kSystemDirs) {
    if (comps == PhysicalComponents(dir)) {
      return InvalidArgument(field + ": " + shown +
                             " is a system directory; an endpoint's root must be a "
                             "directory of its own, e.g. /srv/NAME");
    }
  }
  for (const char* tree : kSystemTrees) {
    if (IsPrefix(PhysicalComponents(tree), comps)) {
      return InvalidArgument(field + ": " + shown + " is in the system tree " + tree +
                             "; an endpoint's root must be a directory of its own, "
                             "e.g. /srv/NAME");
    }
  }
  for (const auto& data : data_dirs) {
    if (IsPrefix(comps, data)) {
      return InvalidArgument(field + ": " + shown + " holds timerd's data directory " +
                             JoinComponents(data) +
                             "; a job could read or overwrite the store");
    }
  }
  return Ok();
}

// Item i's source and item j's destination, as physical paths, overlap (one
// is the other or inside it): a run would copy its own output, and every
// run more of it (a directory copied into two children of itself doubles
// each time). Finds one such pair in O(n log n).
bool FindOverlap(const std::vector<std::string>& src_root,
                 const std::vector<std::string>& dst_root, const std::vector<Item>& items,
                 size_t* src_index, size_t* dst_index) {
  // Unrelated roots: nothing to compare.
  if (!IsPrefix(src_root, dst_root) && !IsPrefix(dst_root, src_root)) return false;
  auto absolute = [](const std::vector<std::string>& root,
                     const std::vector<std::string>& rel) {
    std::vector<std::string> p = root;
    p.insert(p.end(), rel.begin(), rel.end());
    return p;
  };
  std::map<std::vector<std::string>, size_t> dests;
  for (size_t j = 0; j < items.size(); ++j) {
    dests.emplace(absolute(dst_root, items[j].destination), j);
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const std::vector<std::string> src = absolute(src_root, items[i].source);
    // A destination at or below the source: lexicographic order puts every
    // path that starts with `src` right from `src` on.
    auto it = dests.lower_bound(src);
    if (it != dests.end() && IsPrefix(src, it->first)) {
      *src_index = i;
      *dst_index = it->second;
      return true;
    }
    // A destination above the source.
    std::vector<std::string> up = src;
    while (!up.empty()) {
      up.pop_back();
      if (auto d = dests.find(up); d != dests.end()) {
        *src_index = i;
        *dst_index = d->second;
        return true;
      }
    }
  }
  return false;
}

class TransferProvider : public ProviderBase {
 public:
  TransferProvider(std::shared_ptr<const Config> config, HostLog log)
      : ProviderBase(config->runner, log),
        config_(std::move(config)),
        quota_(std::make_shared<WriteQuota>(config_->per_identity)) {}

  Err Plan(const Identity& owner, const nlohmann::json& body, Work* work) override {
    auto req = std::make_shared<Request>();
    if (Err e = Parse(owner, body, req.get()); !e.ok()) return e;
    if (work == nullptr) return Ok();
    CopyOptions options;
    options.max_bytes_per_second = config_->max_bytes_per_second;
    options.max_bytes_per_run = config_->max_bytes_per_run;
    options.max_files_per_run = config_->max_files_per_run;
    options.identity = owner.name;
    // The work holds what it uses (the request points into the config), so
    // an action left running past destroy()'s deadline uses nothing freed.
    *work = [req, options, config = config_, quota = quota_](ActionContext& ctx) mutable {
      (void)config;  // held for the endpoints `req` points to
      options.quota = quota.get();
      // A remote side (SFTP, S3) streams through the EndpointFs seam.
      if (NeedsStreamCopier(*req)) return StreamCopier(*req, &ctx, options).Run();
      return Copier(*req, &ctx, options).Run();
    };
    return Ok();
  }

  // `timer provider show transfer`: the endpoints `caller` may use, in the
  // configuration's order. An endpoint whose allowed_identities exclude the
  // caller is left out entirely (not even its id): another team's hosts,
  // buckets and endpoint ids are nothing a tenant needs, and a hostile one
  // would use them to aim. A local endpoint's root is not shown: it is the
  // timerd host's file layout, and bodies never name it ("/" is the root).
  // Remote endpoints show what RemoteEndpoint::Describe returns (never a
  // secret or the name of a file holding one).
  nlohmann::json Describe(const Identity& caller) const override {
    nlohmann::json endpoints = nlohmann::json::array();
    for (const Endpoint& ep : config_->endpoints) {
      if (!Allowed(ep, caller.name)) continue;
      nlohmann::json e = ep.remote ? ep.remote->Describe() : nlohmann::json::object();
      e["id"] = ep.id;
      if (!ep.display_name.empty()) e["display_name"] = ep.display_name;
      if (!ep.remote) e["type"] = "local";
      // Where "/~/" leads for this caller, from the root ("/": the root).
      Path home;
      if (HomeComponents(ep.home, caller.name, "home", &home).ok()) {
        std::string h;
        for (const std::string& c : home) h += "/" + c;
        e["home"] = h.empty() ? "/" : h;
      }
      // Whether a body may ask for encrypt_data with this endpoint: a local
      // one has nothing to encrypt, a remote one must encrypt in transit.
      e["encrypt_data"] = ep.remote ? ep.remote->Encrypted() : true;
      endpoints.push_back(std::move(e));
    }
    return {{"endpoints", std::move(endpoints)}};
  }

 private:
  // Reads either body shape (transfer_options.h) into `req`; errors name
  // the fields as the body's shape names them.
  Err Parse(const Identity& owner, const nlohmann::json& body, Request* req) const {
    const BodyShape shape = BodyShapeOf(body);
    FieldReader r(body, "");
    if (shape.globus) {
      const nlohmann::json* type = r.Raw("DATA_TYPE");
      if (type != nullptr && *type != "transfer") {
        return InvalidArgument("DATA_TYPE: must be \"transfer\"");
      }
    }
    const std::string src_field = shape.source_endpoint;
    const std::string dst_field = shape.destination_endpoint;
    const std::string items_field = shape.items;
    std::string src_id = r.String(shape.source_endpoint, "", true);
    std::string dst_id = r.String(shape.destination_endpoint, "", true);
    const nlohmann::json* items = r.Raw(shape.items);
    req->label = r.String("label", "");
    const nlohmann::json* sync = r.Raw("sync_level");
    req->verify_checksum = r.Bool("verify_checksum", false);
    req->preserve_timestamp = r.Bool("preserve_timestamp", false);
    req->encrypt_data = r.Bool("encrypt_data", false);
    req->delete_destination_extra = r.Bool("delete_destination_extra", false);
    if (Err e = ReadTransferOptions(r, shape, &req->options); !e.ok()) return e;
    if (Err e = r.Finish(); !e.ok()) return e;
    if (req->label.size() > 256) return InvalidArgument("label: longer than 256 bytes");

    if (sync != nullptr && !sync->is_null()) {
      static const char* kNames[] = {"exists", "size", "mtime", "checksum"};
      int level = -1;
      if (sync->is_string()) {
        for (int i = 0; i < 4; ++i) {
          if (sync->get<std::string>() == kNames[i]) level = i;
        }
      } else if (sync->is_number_integer() && sync->get<int64_t>() >= 0 &&
                 sync->get<int64_t>() <= 3) {
        level = static_cast<int>(sync->get<int64_t>());
      }
      if (level < 0) {
        return InvalidArgument(
            "sync_level: must be exists, size, mtime or checksum (or 0 to 3)");
      }
      req->sync_level = static_cast<SyncLevel>(level + 1);
    }

    req->source = config_->Find(src_id);
    if (req->source == nullptr) {
      return InvalidArgument(src_field + ": no endpoint \"" + src_id +
                             "\" is configured");
    }
    req->destination = config_->Find(dst_id);
    if (req->destination == nullptr) {
      return InvalidArgument(dst_field + ": no endpoint \"" + dst_id +
                             "\" is configured");
    }
    if (!Allowed(*req->source, owner.name)) {
      return PermissionDenied(src_field + ": identity \"" + owner.name +
                              "\" may not use endpoint \"" + src_id + "\"");
    }
    if (!Allowed(*req->destination, owner.name)) {
      return PermissionDenied(dst_field + ": identity \"" + owner.name +
                              "\" may not use endpoint \"" + dst_id + "\"");
    }

    // What a remote side cannot honour is refused now, never ignored.
    if (req->options.recursive_symlinks == RecursiveSymlinks::kKeep &&
        req->destination->remote && !req->destination->remote->HoldsSymlinks()) {
      return InvalidArgument("recursive_symlinks: keep cannot make a symbolic link on " +
                             req->destination->remote->type() + " endpoint \"" +
                             req->destination->id +
                             "\" (it holds no links); use ignore or copy");
    }
    for (const Endpoint* ep : {req->source, req->destination}) {
      if (!ep->remote) continue;
      if (req->encrypt_data && !ep->remote->Encrypted()) {
        return InvalidArgument("encrypt_data: endpoint \"" + ep->id + "\" (" +
                               ep->remote->type() +
                               ") does not encrypt data in transit (its URL is not "
                               "https://)");
      }
    }

    if (items == nullptr) return InvalidArgument(items_field + ": required");
    if (!items->is_array() || items->empty()) {
      return InvalidArgument(items_field + ": must be a non-empty array");
    }
    if (items->size() > kMaxItems) {
      return InvalidArgument(items_field + ": more than " + std::to_string(kMaxItems) +
                             " items");
    }
    // Symbolic links already on the paths are refused now; ones that
    // appear later are refused at run time. A remote endpoint's paths are
    // checked at run time only (no connection is made to plan).
    int src_root = -1, dst_root = -1;
    const auto close_fd = [](int* f) {
      if (*f >= 0) close(*f);
    };
    if (!req->source->remote) {
      if (Err e = OpenRoot(*req->source, &src_root); !e.ok()) return e;
    }
    std::unique_ptr<int, decltype(close_fd)> close_src(&src_root, close_fd);
    if (!req->destination->remote) {
      if (Err e = OpenRoot(*req->destination, &dst_root); !e.ok()) return e;
    }
    std::unique_ptr<int, decltype(close_fd)> close_dst(&dst_root, close_fd);

    for (size_t i = 0; i < items->size(); ++i) {
      const nlohmann::json& it = (*items)[i];
      std::string prefix = items_field + "[" + std::to_string(i) + "]";
      if (!it.is_object()) return InvalidArgument(prefix + ": must be an object");
      FieldReader ir(it, prefix);
      Item item;
      item.source_path = ir.String("source_path", "", true);
      item.destination_path = ir.String("destination_path", "", true);
      item.recursive = ir.Bool("recursive", false);
      if (shape.globus) {
        if (Err e = ReadGlobusItemFields(ir); !e.ok()) return e;
      }
      if (Err e = ir.Finish(); !e.ok()) return e;
      if (Err e = ResolvePath(req->source->home, owner.name, item.source_path,
                              prefix + ".source_path", &item.source);
          !e.ok()) {
        return e;
      }
      if (Err e = ResolvePath(req->destination->home, owner.name, item.destination_path,
                              prefix + ".destination_path", &item.destination);
          !e.ok()) {
        return e;
      }
      if (!item.recursive && item.destination.empty()) {
        return InvalidArgument(prefix +
                               ".destination_path: must name a file (or set recursive)");
      }
      bool exists = false;
      if (Err e = src_root < 0 ? Ok()
                               : CheckPath(src_root, item.source, prefix + ".source_path",
                                           &exists);
          !e.ok()) {
        return e;
      }
      if (Err e = dst_root < 0 ? Ok()
                               : CheckPath(dst_root, item.destination,
                                           prefix + ".destination_path", &exists);
          !e.ok()) {
        return e;
      }
      req->items.push_back(std::move(item));
    }
    size_t i = 0, j = 0;
    if (src_root >= 0 && dst_root >= 0 &&
        FindOverlap(PhysicalComponents(req->source->root),
                    PhysicalComponents(req->destination->root), req->items, &i, &j)) {
      const std::string what =
          i == j ? "its own destination_path"
                 : items_field + "[" + std::to_string(j) + "].destination_path";
      return InvalidArgument(items_field + "[" + std::to_string(i) +
                             "].source_path: overlaps " + what +
                             " (one is inside the other on disk): each run would copy "
                             "its own output");
    }
    return Ok();
  }

  const std::shared_ptr<const Config> config_;
  const std::shared_ptr<WriteQuota> quota_;
};

Err CreateTransfer(const nlohmann::json& config, HostLog log,
                   std::unique_ptr<ProviderBase>* out) {
  auto cfg = std::make_shared<Config>();
  FieldReader r(config, "plugins.transfer");
  const nlohmann::json* endpoints = r.Raw("endpoints");
  constexpr int64_t kMax = int64_t{1} << 50;
  cfg->max_bytes_per_second = r.Int("max_bytes_per_second", 0, 0, kMax);
  cfg->max_bytes_per_run = r.Int("max_bytes_per_run", cfg->max_bytes_per_run, 0, kMax);
  cfg->max_files_per_run = r.Int("max_files_per_run", cfg->max_files_per_run, 0, kMax);
  cfg->per_identity.bytes_per_day =
      r.Int("max_bytes_per_identity_per_day", cfg->per_identity.bytes_per_day, 0, kMax);
  cfg->per_identity.files_per_day =
      r.Int("max_files_per_identity_per_day", cfg->per_identity.files_per_day, 0, kMax);
  cfg->min_free_bytes = r.Int("min_free_bytes", cfg->min_free_bytes, 0, kMax);
  cfg->runner = ReadRunnerOptions(r);
  if (Err e = r.Finish(); !e.ok()) return e;
  const std::vector<std::vector<std::string>> data_dirs = OpenDataDirs();
  if (endpoints != nullptr && !endpoints->is_array()) {
    return InvalidArgument("plugins.transfer.endpoints: must be an array of tables");
  }
  std::set<std::string> ids;
  for (size_t i = 0; endpoints != nullptr && i < endpoints->size(); ++i) {
    const nlohmann::json& e = (*endpoints)[i];
    std::string prefix = "plugins.transfer.endpoints[" + std::to_string(i) + "]";
    if (!e.is_object()) return InvalidArgument(prefix + ": must be a table");
    FieldReader er(e, prefix);
    Endpoint ep;
    ep.id = er.String("id", "", true);
    ep.display_name = er.String("display_name", "");
    const std::string type = er.String("type", "local");
    if (type != "s3") ep.root = er.String("root", "", true);
    ep.home = er.String("home", "");
    const nlohmann::json* allowed = er.Raw("allowed_identities");
    ep.min_free_bytes = er.Int("min_free_bytes", cfg->min_free_bytes, 0, kMax);
    if (type == "sftp") {
      if (Err err = ParseSftpEndpoint(er, &ep); !err.ok()) return err;
    } else if (type == "s3") {
      if (Err err = ParseS3Endpoint(er, &ep.remote); !err.ok()) return err;
    } else if (type != "local") {
      return InvalidArgument(prefix + ".type: must be \"local\", \"sftp\" or \"s3\"");
    }
    if (Err err = er.Finish(); !err.ok()) return err;
    if (ep.id.empty()) return InvalidArgument(prefix + ".id: must not be empty");
    if (!ids.insert(ep.id).second)
      return InvalidArgument(prefix + ".id: \"" + ep.id + "\" repeated");
    if (type != "s3" && (ep.root.empty() || ep.root[0] != '/')) {
      return InvalidArgument(prefix + ".root: must be an absolute path");
    }
    if (!ep.remote) {
      if (Err err = CheckRoot(prefix + ".root", ep.root, data_dirs); !err.ok())
        return err;
    }
    if (Err err = CheckHomeTemplate(ep.home, prefix + ".home"); !err.ok()) return err;
    if (allowed != nullptr) {
      if (!allowed->is_array())
        return InvalidArgument(prefix + ".allowed_identities: must be an array");
      for (const auto& a : *allowed) {
        if (!a.is_string() || a.get<std::string>().empty()) {
          return InvalidArgument(
              prefix + ".allowed_identities: must be an array of non-empty strings");
        }
        ep.allowed_identities.push_back(a.get<std::string>());
      }
    }
    if (ep.allowed_identities.empty()) {
      // Closed unless opened: a forgotten list must not mean everyone.
      log.Warn(prefix + " (" + ep.id +
               "): no allowed_identities, so no identity may use it; list identities, "
               "or \"*\" for anyone");
    }
    int fd = ep.remote ? -2 : open(ep.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
      // Not fatal: a mount may come later; runs fail until it does.
      log.Warn(prefix + ".root " + ep.root + ": not an accessible directory (yet)");
    } else if (fd >= 0) {
      close(fd);
    }
    cfg->endpoints.push_back(std::move(ep));
  }
  if (cfg->endpoints.empty())
    log.Info("no endpoints configured; every body will be refused");
  *out = std::make_unique<TransferProvider>(std::move(cfg), log);
  return Ok();
}

timer_ap_error* Create(timer_ap_str config, const timer_ap_host* host,
                       timer_ap_provider** out) {
  return CreateWith(&CreateTransfer, config, host, out);
}

const timer_ap_api kApi = MakeApi(
    "transfer", "1.0.0",
    "Copies files and directory trees between configured endpoints (local directories, "
    "SFTP servers, S3-compatible buckets), with sync levels, SHA-256 verification and "
    "atomic publishing.",
    kSchema, &Create);

}  // namespace
}  // namespace timer::plugins::transfer

extern "C" TIMER_AP_EXPORT const timer_ap_api* timer_ap_get_api(uint32_t host_major,
                                                                uint32_t host_minor) {
  return host_major == TIMER_AP_ABI_MAJOR ? &timer::plugins::transfer::kApi : nullptr;
}
