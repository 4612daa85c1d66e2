// The web view's assets (services/timerd/api/http/web/), embedded in timerd
// at build time (cmake/EmbedFiles.cmake writes EmbeddedWebFiles()) and served
// by the HTTP listener at `/` (index.html) and `/assets/NAME`.
//
// The view is public: it holds no data, so serving it needs no credentials;
// everything it shows it fetches from the JSON API with the bearer token the
// user pasted, like any other client. Every answer here, 404 and 405
// included, carries the same security headers: a strict
// Content-Security-Policy (only this origin's scripts, styles and
// connections; no inline code; no framing), `X-Content-Type-Options:
// nosniff`, `Referrer-Policy: no-referrer`. Assets are revalidated with an
// ETag (a hash of their content) on every load (`Cache-Control: no-cache`),
// so a new timerd never serves a stale script.
//
// Bounds: the asset table is static (built once, at first use); a request
// costs a lookup and a copy of one asset into its response (the assets total
// at most EmbeddedWebBudget() bytes, checked when they are embedded).
//
// Thread-safe: everything here is immutable after first use.
#pragma once

#include <cstddef>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace timer::api::http {

// One embedded file: its name (relative to web/) and its bytes, in static
// storage.
struct EmbeddedFile {
  absl::string_view name;
  absl::string_view data;
};

// Written by cmake/EmbedFiles.cmake into the build tree.
absl::Span<const EmbeddedFile> EmbeddedWebFiles();
// The most bytes the embedded files may total (the page-weight budget).
size_t EmbeddedWebBudget();

using WebHeader = std::pair<absl::string_view, absl::string_view>;

// The answer to a request for the web view. Every view is of static storage.
struct WebResponse {
  int code = 404;
  absl::string_view content_type;
  absl::string_view body;  // Empty for 304.
  // Security headers, Cache-Control, and ETag or Allow where they apply.
  absl::Span<const WebHeader> headers;
};

// Whether `path` (without its query) is the web view's: "/" or "/assets/...".
bool IsWebPath(absl::string_view path);

// Answers `method` on a web path: 200 with the asset, 304 when
// `if_none_match` names its ETag, 404 for no such asset, 405 (Allow: GET)
// for a method other than GET.
WebResponse ServeWeb(absl::string_view method, absl::string_view path,
                     absl::string_view if_none_match);

}  // namespace timer::api::http
