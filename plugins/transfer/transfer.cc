// transfer: copies files and directory trees between endpoints, the
// Globus Transfer action's body on local directories.
//
// Config ([plugins.transfer] in timerd.toml):
//   max_bytes_per_second = 0           # optional bandwidth cap per action
//   [[plugins.transfer.endpoints]]
//   id = "1f0c...-uuid"                # what bodies name
//   display_name = "Lab archive"
//   root = "/srv/archive"              # absolute directory
//   allowed_identities = ["alice@example.org"]   # optional; empty: anyone
//
// Paths in a body are relative to the endpoint root; see copier.h for how
// they are confined and how files land atomically. Each action runs on its
// own thread; cancel stops it between chunks of 16 MiB at most.
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "copier.h"
#include "provider_support.h"
#include "timer/action_provider.h"

namespace timer::plugins::transfer {
namespace {

constexpr size_t kMaxItems = 100000;

constexpr char kSchema[] = R"({
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "transfer action body",
  "description": "Copies files and directories from one configured endpoint to another. Paths are relative to each endpoint's root; '..', absolute paths and symbolic links are refused.",
  "type": "object",
  "additionalProperties": false,
  "required": ["source_endpoint_id", "destination_endpoint_id", "transfer_items"],
  "properties": {
    "source_endpoint_id": {"type": "string", "minLength": 1},
    "destination_endpoint_id": {"type": "string", "minLength": 1},
    "transfer_items": {
      "type": "array", "minItems": 1, "maxItems": 100000,
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["source_path", "destination_path"],
        "properties": {
          "source_path": {"type": "string", "description": "A file, or a directory with recursive."},
          "destination_path": {"type": "string", "description": "The file, or the directory mirroring the source directory."},
          "recursive": {"type": "boolean", "default": false}
        }
      }
    },
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
                                 "description": "In recursive items, delete destination entries the source does not have."}
  }
})";

struct Config {
  std::vector<Endpoint> endpoints;
  int64_t max_bytes_per_second = 0;
  const Endpoint* Find(const std::string& id) const {
    for (const Endpoint& e : endpoints) {
      if (e.id == id) return &e;
    }
    return nullptr;
  }
};

bool Allowed(const Endpoint& e, const Identity& who) {
  if (e.allowed_identities.empty()) return true;
  for (const std::string& a : e.allowed_identities) {
    if (a == who.name) return true;
  }
  return false;
}

bool IsPrefix(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

class TransferProvider : public ProviderBase {
 public:
  explicit TransferProvider(std::shared_ptr<const Config> config)
      : config_(std::move(config)) {}

  Err Plan(const Identity& owner, const nlohmann::json& body, Work* work) override {
    auto req = std::make_shared<Request>();
    if (Err e = Parse(owner, body, req.get()); !e.ok()) return e;
    if (work == nullptr) return Ok();
    int64_t limit = config_->max_bytes_per_second;
    // The config outlives every action: destroy() joins them first.
    *work = [req, limit](ActionContext& ctx) { return Copier(*req, &ctx, limit).Run(); };
    return Ok();
  }

 private:
  Err Parse(const Identity& owner, const nlohmann::json& body, Request* req) const {
    FieldReader r(body, "");
    std::string src_id = r.String("source_endpoint_id", "", true);
    std::string dst_id = r.String("destination_endpoint_id", "", true);
    const nlohmann::json* items = r.Raw("transfer_items");
    req->label = r.String("label", "");
    const nlohmann::json* sync = r.Raw("sync_level");
    req->verify_checksum = r.Bool("verify_checksum", false);
    req->preserve_timestamp = r.Bool("preserve_timestamp", false);
    req->encrypt_data = r.Bool("encrypt_data", false);
    req->delete_destination_extra = r.Bool("delete_destination_extra", false);
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
      return InvalidArgument("source_endpoint_id: no endpoint \"" + src_id +
                             "\" is configured");
    }
    req->destination = config_->Find(dst_id);
    if (req->destination == nullptr) {
      return InvalidArgument("destination_endpoint_id: no endpoint \"" + dst_id +
                             "\" is configured");
    }
    if (!Allowed(*req->source, owner)) {
      return PermissionDenied("source_endpoint_id: identity \"" + owner.name +
                              "\" may not use endpoint \"" + src_id + "\"");
    }
    if (!Allowed(*req->destination, owner)) {
      return PermissionDenied("destination_endpoint_id: identity \"" + owner.name +
                              "\" may not use endpoint \"" + dst_id + "\"");
    }

    if (items == nullptr) return InvalidArgument("transfer_items: required");
    if (!items->is_array() || items->empty()) {
      return InvalidArgument("transfer_items: must be a non-empty array");
    }
    if (items->size() > kMaxItems) {
      return InvalidArgument("transfer_items: more than " + std::to_string(kMaxItems) +
                             " items");
    }
    // Symbolic links already on the paths are refused now; ones that
    // appear later are refused at run time.
    int src_root = -1, dst_root = -1;
    if (Err e = OpenRoot(*req->source, &src_root); !e.ok()) return e;
    std::unique_ptr<int, void (*)(int*)> close_src(&src_root, [](int* f) { close(*f); });
    if (Err e = OpenRoot(*req->destination, &dst_root); !e.ok()) return e;
    std::unique_ptr<int, void (*)(int*)> close_dst(&dst_root, [](int* f) { close(*f); });

    for (size_t i = 0; i < items->size(); ++i) {
      const nlohmann::json& it = (*items)[i];
      std::string prefix = "transfer_items[" + std::to_string(i) + "]";
      if (!it.is_object()) return InvalidArgument(prefix + ": must be an object");
      FieldReader ir(it, prefix);
      Item item;
      item.source_path = ir.String("source_path", "", true);
      item.destination_path = ir.String("destination_path", "", true);
      item.recursive = ir.Bool("recursive", false);
      if (Err e = ir.Finish(); !e.ok()) return e;
      if (Err e = SplitPath(item.source_path, prefix + ".source_path", &item.source);
          !e.ok()) {
        return e;
      }
      if (Err e = SplitPath(item.destination_path, prefix + ".destination_path",
                            &item.destination);
          !e.ok()) {
        return e;
      }
      if (!item.recursive && item.destination.empty()) {
        return InvalidArgument(prefix +
                               ".destination_path: must name a file (or set recursive)");
      }
      if (req->source == req->destination && item.recursive &&
          (IsPrefix(item.source, item.destination) ||
           IsPrefix(item.destination, item.source))) {
        return InvalidArgument(
            prefix + ": source and destination directories overlap on one endpoint");
      }
      bool exists = false;
      if (Err e = CheckPath(src_root, item.source, prefix + ".source_path", &exists);
          !e.ok()) {
        return e;
      }
      if (Err e = CheckPath(dst_root, item.destination, prefix + ".destination_path",
                            &exists);
          !e.ok()) {
        return e;
      }
      req->items.push_back(std::move(item));
    }
    return Ok();
  }

  const std::shared_ptr<const Config> config_;
};

Err CreateTransfer(const nlohmann::json& config, HostLog log,
                   std::unique_ptr<ProviderBase>* out) {
  auto cfg = std::make_shared<Config>();
  FieldReader r(config, "plugins.transfer");
  const nlohmann::json* endpoints = r.Raw("endpoints");
  cfg->max_bytes_per_second = r.Int("max_bytes_per_second", 0, 0, int64_t{1} << 50);
  if (Err e = r.Finish(); !e.ok()) return e;
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
    ep.root = er.String("root", "", true);
    const nlohmann::json* allowed = er.Raw("allowed_identities");
    if (Err err = er.Finish(); !err.ok()) return err;
    if (ep.id.empty()) return InvalidArgument(prefix + ".id: must not be empty");
    if (!ids.insert(ep.id).second)
      return InvalidArgument(prefix + ".id: \"" + ep.id + "\" repeated");
    if (ep.root.empty() || ep.root[0] != '/') {
      return InvalidArgument(prefix + ".root: must be an absolute path");
    }
    if (allowed != nullptr) {
      if (!allowed->is_array())
        return InvalidArgument(prefix + ".allowed_identities: must be an array");
      for (const auto& a : *allowed) {
        if (!a.is_string()) {
          return InvalidArgument(prefix +
                                 ".allowed_identities: must be an array of strings");
        }
        ep.allowed_identities.push_back(a.get<std::string>());
      }
    }
    int fd = open(ep.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      // Not fatal: a mount may come later; runs fail until it does.
      log.Warn(prefix + ".root " + ep.root + ": not an accessible directory (yet)");
    } else {
      close(fd);
    }
    cfg->endpoints.push_back(std::move(ep));
  }
  if (cfg->endpoints.empty())
    log.Info("no endpoints configured; every body will be refused");
  *out = std::make_unique<TransferProvider>(std::move(cfg));
  return Ok();
}

timer_ap_error* Create(timer_ap_str config, const timer_ap_host* host,
                       timer_ap_provider** out) {
  return CreateWith(&CreateTransfer, config, host, out);
}

const timer_ap_api kApi = MakeApi(
    "transfer", "1.0.0",
    "Copies files and directory trees between configured endpoints (local directories), "
    "with sync levels, SHA-256 verification and atomic renames.",
    kSchema, &Create);

}  // namespace
}  // namespace timer::plugins::transfer

extern "C" TIMER_AP_EXPORT const timer_ap_api* timer_ap_get_api(uint32_t host_major,
                                                                uint32_t host_minor) {
  return host_major == TIMER_AP_ABI_MAJOR ? &timer::plugins::transfer::kApi : nullptr;
}
