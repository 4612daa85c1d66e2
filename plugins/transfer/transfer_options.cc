#include "transfer_options.h"

#include <fnmatch.h>

#include <cerrno>
#include <cstring>
#include <deque>

#include "copier.h"

namespace timer::plugins::transfer {
namespace {

constexpr char kIdentityVar[] = "{identity}";
constexpr size_t kMaxName = 255;
constexpr int kMaxLinks = 40;  // as the kernel's MAXSYMLINKS

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// The components of a '/'-separated path, without empty ones and ".".
std::vector<std::string> Components(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string c = path.substr(start, end - start);
    if (!c.empty() && c != ".") out.push_back(std::move(c));
    start = end + 1;
  }
  return out;
}

bool CanBeOneComponent(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.size() <= kMaxName &&
         s.find('/') == std::string::npos && s.find('\0') == std::string::npos;
}

std::string Substitute(std::string s, const std::string& identity) {
  for (size_t at = s.find(kIdentityVar); at != std::string::npos;
       at = s.find(kIdentityVar, at + identity.size())) {
    s.replace(at, sizeof(kIdentityVar) - 1, identity);
  }
  return s;
}

}  // namespace

// ---- Paths -----------------------------------------------------------------

Err CheckHomeTemplate(const std::string& home, const std::string& field) {
  if (home.find('\0') != std::string::npos)
    return InvalidArgument(field + ": contains NUL");
  for (const std::string& c : Components(home)) {
    if (c == "..") {
      return InvalidArgument(
          field + ": \"..\" is not allowed (a home is below the endpoint root)");
    }
    if (c.size() > kMaxName && c.find(kIdentityVar) == std::string::npos) {
      return InvalidArgument(field + ": a name is longer than 255 bytes");
    }
    if (c.find_first_of("{}") != std::string::npos &&
        Substitute(c, "x").find_first_of("{}") != std::string::npos) {
      return InvalidArgument(field + ": the only placeholder is {identity}");
    }
  }
  return Ok();
}

Err HomeComponents(const std::string& home, const std::string& identity,
                   const std::string& field, Path* out) {
  out->clear();
  const bool per_identity = home.find(kIdentityVar) != std::string::npos;
  if (per_identity && !CanBeOneComponent(identity)) {
    return InvalidArgument(field + ": identity " + Quote(identity) +
                           " cannot name a home directory on this endpoint (it is "
                           "empty, \".\" or \"..\", or holds '/'); give a path from the "
                           "endpoint root, /...");
  }
  for (const std::string& template_comp : Components(home)) {
    std::string c = Substitute(template_comp, identity);
    // "{identity}." with identity "." would make ".."; check what results.
    if (!CanBeOneComponent(c) || c == ".") {
      return InvalidArgument(field + ": the home of identity " + Quote(identity) +
                             " is not a valid path on this endpoint");
    }
    out->push_back(std::move(c));
  }
  return Ok();
}

Err ResolvePath(const std::string& home, const std::string& identity,
                const std::string& path, const std::string& field, Path* out) {
  out->clear();
  if (path.find('\0') != std::string::npos)
    return InvalidArgument(field + ": contains NUL");
  std::string rest = path;
  bool from_home = true;
  if (!rest.empty() && rest[0] == '/') {
    rest.erase(0, 1);
    from_home = rest == "~" || rest.rfind("~/", 0) == 0;
    if (from_home) rest.erase(0, 1);
  } else if (rest == "~" || rest.rfind("~/", 0) == 0) {
    rest.erase(0, 1);
  } else if (!rest.empty() && rest[0] == '~') {
    const std::string first = rest.substr(0, rest.find('/'));
    return InvalidArgument(field + ": " + Quote(first) +
                           ": only \"~\" (your own home on the endpoint) is understood; "
                           "write ./" +
                           first + " for a name that starts with ~");
  }
  rest.erase(0, rest.find_first_not_of('/'));
  Path below;
  if (Err e = SplitPath(rest, field, &below); !e.ok()) return e;
  if (from_home) {
    if (Err e = HomeComponents(home, identity, field, out); !e.ok()) return e;
  }
  out->insert(out->end(), below.begin(), below.end());
  if (out->size() > 128) return InvalidArgument(field + ": too deep");
  return Ok();
}

// ---- filter_rules ------------------------------------------------------------

Err FilterRules::Parse(const nlohmann::json& rules, const std::string& field,
                       FilterRules* out) {
  *out = FilterRules();
  if (rules.is_null()) return Ok();
  if (!rules.is_array()) return InvalidArgument(field + ": must be an array");
  if (rules.size() > kMaxRules) {
    return InvalidArgument(field + ": more than " + std::to_string(kMaxRules) + " rules");
  }
  for (size_t i = 0; i < rules.size(); ++i) {
    const std::string prefix = field + "[" + std::to_string(i) + "]";
    if (!rules[i].is_object()) return InvalidArgument(prefix + ": must be an object");
    FieldReader r(rules[i], prefix);
    const std::string data_type = r.String("DATA_TYPE", "filter_rule");
    const std::string method = r.String("method", "exclude");
    const std::string type = r.String("type", "");
    Rule rule;
    rule.name = r.String("name", "", true);
    if (Err e = r.Finish(); !e.ok()) return e;
    if (data_type != "filter_rule") {
      return InvalidArgument(prefix + ".DATA_TYPE: must be \"filter_rule\"");
    }
    if (method != "include" && method != "exclude") {
      return InvalidArgument(prefix + ".method: must be include or exclude");
    }
    rule.include = method == "include";
    if (type == "file") {
      rule.type = Type::kFile;
    } else if (type == "dir") {
      rule.type = Type::kDir;
    } else if (!type.empty()) {
      return InvalidArgument(prefix + ".type: must be file or dir");
    }
    if (rule.name.empty() || rule.name.size() > 1024 ||
        rule.name.find('\0') != std::string::npos) {
      return InvalidArgument(prefix + ".name: must be a glob of 1 to 1024 bytes");
    }
    out->Add(std::move(rule));
  }
  return Ok();
}

bool FilterRules::Included(const std::string& name, bool is_dir) const {
  for (const Rule& r : rules_) {
    if (r.type == Type::kFile && is_dir) continue;
    if (r.type == Type::kDir && !is_dir) continue;
    if (fnmatch(r.name.c_str(), name.c_str(), 0) == 0) return r.include;
  }
  return true;
}

// ---- recursive_symlinks ------------------------------------------------------

Err ParseRecursiveSymlinks(const nlohmann::json& value, const std::string& field,
                           RecursiveSymlinks* out) {
  *out = RecursiveSymlinks::kIgnore;
  if (value.is_null()) return Ok();
  const std::string s = value.is_string() ? value.get<std::string>() : "";
  if (s == "ignore") {
    *out = RecursiveSymlinks::kIgnore;
  } else if (s == "keep") {
    *out = RecursiveSymlinks::kKeep;
  } else if (s == "copy") {
    *out = RecursiveSymlinks::kCopy;
  } else {
    return InvalidArgument(field + ": must be ignore, keep or copy");
  }
  return Ok();
}

const char* RecursiveSymlinksName(RecursiveSymlinks mode) {
  switch (mode) {
    case RecursiveSymlinks::kKeep:
      return "keep";
    case RecursiveSymlinks::kCopy:
      return "copy";
    case RecursiveSymlinks::kIgnore:
      break;
  }
  return "ignore";
}

bool KeepableLinkTarget(const std::string& target, size_t depth) {
  if (target.empty() || target[0] == '/' || target.find('\0') != std::string::npos) {
    return false;
  }
  size_t up = 0;
  bool below = false;  // a name was seen: no ".." may follow
  for (const std::string& c : Components(target)) {
    if (c == "..") {
      if (below) return false;
      ++up;
    } else {
      below = true;
    }
  }
  return up <= depth;
}

Err ResolveLinkBeneath(const Path& link_dir, const std::string& target,
                       const LinkLookup& lookup, Path* out, EntryKind* kind) {
  const auto outside = [] {
    return FailedPrecondition("points outside the endpoint root");
  };
  if (target.empty()) return NotFound("an empty link");
  if (target[0] == '/') return outside();
  Path cur = link_dir;
  std::deque<std::string> pending;
  for (std::string& c : Components(target)) pending.push_back(std::move(c));
  EntryKind last = EntryKind::kDirectory;  // "." or ".." end on a directory
  int links = 1;
  while (!pending.empty()) {
    std::string c = std::move(pending.front());
    pending.pop_front();
    if (c == "..") {
      if (cur.empty()) return outside();
      cur.pop_back();  // a real directory: its parent is the lexical one
      last = EntryKind::kDirectory;
      continue;
    }
    cur.push_back(c);
    EntryKind k = EntryKind::kOther;
    std::string next;
    if (Err e = lookup(cur, &k, &next); !e.ok()) return e;
    if (k == EntryKind::kSymlink) {
      if (++links > kMaxLinks)
        return FailedPrecondition("too many levels of symbolic links");
      cur.pop_back();
      if (next.empty()) return NotFound("an empty link");
      if (next[0] == '/') return outside();
      std::vector<std::string> more = Components(next);
      pending.insert(pending.begin(), more.begin(), more.end());
      continue;
    }
    if (!pending.empty() && k != EntryKind::kDirectory) {
      return NotFound(c + ": not a directory");
    }
    last = k;
  }
  *out = std::move(cur);
  *kind = last;
  return Ok();
}

// ---- skip_source_errors and fail_on_quota_errors ---------------------------

bool IsSkippableSourceErrno(int err) {
  return err == EACCES || err == EPERM || err == ENOENT;
}

bool IsSkippableSourceError(const Err& e) {
  if (e.code == TIMER_AP_NOT_FOUND || e.code == TIMER_AP_PERMISSION_DENIED) return true;
  if (e.code != TIMER_AP_INTERNAL) return false;  // UNAVAILABLE etc. are not skipped
  for (int err : {EACCES, EPERM, ENOENT}) {
    if (e.message.find(std::strerror(err)) != std::string::npos) return true;
  }
  return false;
}

bool IsQuotaErrno(int err) { return err == ENOSPC || err == EDQUOT; }

Err ErrnoError(const std::string& what, int err) {
  std::string message = what + ": " + std::strerror(err);
  if (IsQuotaErrno(err)) return ResourceExhausted(std::move(message));
  return Internal(std::move(message));
}

bool IsQuotaError(const Err& e) { return e.code == TIMER_AP_RESOURCE_EXHAUSTED; }

// ---- The two body shapes ---------------------------------------------------

BodyShape BodyShapeOf(const nlohmann::json& body) {
  BodyShape shape;
  if (!body.is_object()) return shape;
  for (const char* key :
       {"DATA_TYPE", "DATA", "source_endpoint", "destination_endpoint"}) {
    if (body.contains(key)) shape.globus = true;
  }
  if (shape.globus) {
    shape.source_endpoint = "source_endpoint";
    shape.destination_endpoint = "destination_endpoint";
    shape.items = "DATA";
  }
  return shape;
}

Err ReadTransferOptions(FieldReader& r, const BodyShape& shape, TransferOptions* out) {
  if (const nlohmann::json* rules = r.Raw("filter_rules"); rules != nullptr) {
    if (Err e = FilterRules::Parse(*rules, "filter_rules", &out->filter_rules); !e.ok())
      return e;
  }
  out->skip_source_errors = r.Bool("skip_source_errors", false);
  out->fail_on_quota_errors = r.Bool("fail_on_quota_errors", false);
  if (const nlohmann::json* mode = r.Raw("recursive_symlinks"); mode != nullptr) {
    if (Err e =
            ParseRecursiveSymlinks(*mode, "recursive_symlinks", &out->recursive_symlinks);
        !e.ok()) {
      return e;
    }
  }
  if (!r.err().ok()) return r.err();
  if (!shape.globus) return Ok();

  // Globus fields whose meaning we cannot carry out: refused.
  struct Refused {
    const char* key;
    const char* why;
  };
  static constexpr Refused kRefused[] = {
      {"deadline",
       "not supported: a recurring job's runs have no one deadline; bound the job with "
       "stop_after_date, or cancel a run"},
      {"source_local_user",
       "not supported: endpoints here are used as timerd's own account, not a mapped "
       "local user"},
      {"destination_local_user",
       "not supported: endpoints here are used as timerd's own account, not a mapped "
       "local user"},
  };
  for (const Refused& f : kRefused) {
    const nlohmann::json* v = r.Raw(f.key);
    if (v != nullptr && !v->is_null())
      return InvalidArgument(std::string(f.key) + ": " + f.why);
  }
  // Harmless to leave undone: accepted, and noted in the run's details when
  // they ask for something (true, or any submission_id).
  struct Noted {
    const char* key;
    const char* note;
  };
  static constexpr Noted kNoted[] = {
      {"notify_on_succeeded",
       "not applied: timerd sends no e-mail; see the job's results or `timer job watch`"},
      {"notify_on_failed",
       "not applied: timerd sends no e-mail; see the job's results or `timer job watch`"},
      {"notify_on_inactive",
       "not applied: timerd sends no e-mail; a run here is never inactive"},
      {"skip_activation_check", "not applied: endpoints here need no activation"},
      {"store_base_path_info", "not applied: the run's details name paths as given"},
  };
  for (const Noted& f : kNoted) {
    const nlohmann::json* v = r.Raw(f.key);
    if (v == nullptr || v->is_null()) continue;
    if (!v->is_boolean())
      return InvalidArgument(std::string(f.key) + ": must be true or false");
    if (v->get<bool>()) out->notes[f.key] = f.note;
  }
  if (const nlohmann::json* id = r.Raw("submission_id");
      id != nullptr && !id->is_null()) {
    if (!id->is_string()) return InvalidArgument("submission_id: must be a string");
    out->notes["submission_id"] =
        "not applied: each run of the job is its own transfer; the run's id identifies "
        "it";
  }
  return Ok();
}

Err ReadGlobusItemFields(FieldReader& ir) {
  const nlohmann::json* type = ir.Raw("DATA_TYPE");
  if (type != nullptr && !type->is_null()) {
    const std::string t = type->is_string() ? type->get<std::string>() : "";
    if (t == "transfer_symlink_item") {
      return InvalidArgument(ir.Name("DATA_TYPE") +
                             ": transfer_symlink_item is not supported (a path that is a "
                             "symbolic link is refused); use recursive_symlinks \"keep\" "
                             "on a directory item");
    }
    if (t != "transfer_item")
      return InvalidArgument(ir.Name("DATA_TYPE") + ": must be \"transfer_item\"");
  }
  for (const char* key : {"external_checksum", "checksum_algorithm"}) {
    const nlohmann::json* v = ir.Raw(key);
    if (v != nullptr && !v->is_null()) {
      return InvalidArgument(ir.Name(key) +
                             ": not supported: verify_checksum compares SHA-256 of the "
                             "source and the copy");
    }
  }
  return Ok();
}

}  // namespace timer::plugins::transfer
