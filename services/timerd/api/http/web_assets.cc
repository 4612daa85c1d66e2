#include "api/http/web_assets.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace timer::api::http {
namespace {

// Scripts, styles, images and connections from this origin only; no inline
// script or style, no eval, no plugins, no <base>, no framing.
constexpr absl::string_view kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

constexpr WebHeader kSecurity[] = {
    {"Content-Security-Policy", kCsp},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
    {"X-Frame-Options", "DENY"},  // frame-ancestors for older browsers.
    {"Cross-Origin-Opener-Policy", "same-origin"},
};
constexpr size_t kNumSecurity = sizeof(kSecurity) / sizeof(kSecurity[0]);

constexpr absl::string_view kAssetsPrefix = "/assets/";

absl::string_view ContentTypeOf(absl::string_view name) {
  if (absl::EndsWith(name, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(name, ".js") || absl::EndsWith(name, ".mjs")) {
    return "text/javascript; charset=utf-8";
  }
  if (absl::EndsWith(name, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(name, ".svg")) return "image/svg+xml";
  if (absl::EndsWith(name, ".png")) return "image/png";
  if (absl::EndsWith(name, ".json")) return "application/json";
  return "application/octet-stream";
}

// FNV-1a, 64 bits: stable across builds and runs, enough to tell versions of
// a file apart (not a security property).
uint64_t Fnv1a(absl::string_view data) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

struct Asset {
  absl::string_view content_type;
  absl::string_view data;
  std::string etag;  // Quoted, as sent.
  // kSecurity, then Cache-Control and ETag.
  std::array<WebHeader, kNumSecurity + 2> headers;
};

struct Table {
  absl::flat_hash_map<absl::string_view, Asset> assets;
  // kSecurity with Cache-Control: no-store (404), and with Allow (405).
  std::array<WebHeader, kNumSecurity + 1> not_found;
  std::array<WebHeader, kNumSecurity + 2> not_allowed;
};

const Table& GetTable() {
  static const Table* const table = [] {
    auto* t = new Table;
    for (const EmbeddedFile& f : EmbeddedWebFiles()) {
      Asset& a = t->assets[f.name];
      a.content_type = ContentTypeOf(f.name);
      a.data = f.data;
      a.etag = absl::StrFormat("\"%016x\"", Fnv1a(f.data));
    }
    // The headers view each Asset's etag, which no longer moves: the map
    // is not modified after the loop above.
    for (auto& [name, a] : t->assets) {
      size_t i = 0;
      for (const WebHeader& h : kSecurity) a.headers[i++] = h;
      a.headers[i++] = {"Cache-Control", "no-cache"};
      a.headers[i++] = {"ETag", a.etag};
    }
    size_t i = 0;
    for (const WebHeader& h : kSecurity) {
      t->not_found[i] = h;
      t->not_allowed[i] = h;
      ++i;
    }
    t->not_found[i] = {"Cache-Control", "no-store"};
    t->not_allowed[i] = {"Cache-Control", "no-store"};
    t->not_allowed[i + 1] = {"Allow", "GET, HEAD"};
    return t;
  }();
  return *table;
}

// Whether an If-None-Match value ("*", or a list of tags, weak or strong)
// names `etag`.
bool Matches(absl::string_view if_none_match, absl::string_view etag) {
  for (absl::string_view tag : absl::StrSplit(if_none_match, ',')) {
    tag = absl::StripAsciiWhitespace(tag);
    absl::ConsumePrefix(&tag, "W/");
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

}  // namespace

bool IsWebPath(absl::string_view path) {
  return path == "/" || absl::StartsWith(path, kAssetsPrefix);
}

WebResponse ServeWeb(absl::string_view method, absl::string_view path,
                     absl::string_view if_none_match) {
  const Table& table = GetTable();
  WebResponse r;
  // HEAD is answered as GET; the server sends no body after its head.
  if (method != "GET" && method != "HEAD") {
    r.code = 405;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "method not allowed: only GET and HEAD\n";
    r.headers = table.not_allowed;
    return r;
  }
  absl::string_view name;
  if (path == "/") {
    name = "index.html";
  } else if (absl::StartsWith(path, kAssetsPrefix)) {
    name = path.substr(kAssetsPrefix.size());
  }
  auto it = name.empty() ? table.assets.end() : table.assets.find(name);
  if (it == table.assets.end()) {
    r.code = 404;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "not found\n";
    r.headers = table.not_found;
    return r;
  }
  const Asset& a = it->second;
  r.content_type = a.content_type;
  r.headers = a.headers;
  if (!if_none_match.empty() && Matches(if_none_match, a.etag)) {
    r.code = 304;
    return r;
  }
  r.code = 200;
  r.body = a.data;
  return r;
}

}  // namespace timer::api::http
