// The web view's asset table (services/timerd/api/http/web_assets.h): every
// embedded file is served under /assets/ with its type and the security
// headers, / is index.html, revalidation, unknown paths and methods, and
// the page-weight budget.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/http/web_assets.h"

namespace timer::api::http {
namespace {

std::map<std::string, std::string> Headers(const WebResponse& r) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : r.headers) out[std::string(k)] = std::string(v);
  return out;
}

void ExpectSecurityHeaders(const WebResponse& r) {
  auto h = Headers(r);
  const std::string& csp = h["Content-Security-Policy"];
  EXPECT_TRUE(absl::StrContains(csp, "default-src 'self'")) << csp;
  EXPECT_TRUE(absl::StrContains(csp, "script-src 'self'")) << csp;
  EXPECT_TRUE(absl::StrContains(csp, "connect-src 'self'")) << csp;
  EXPECT_TRUE(absl::StrContains(csp, "frame-ancestors 'none'")) << csp;
  EXPECT_FALSE(absl::StrContains(csp, "unsafe")) << csp;
  EXPECT_EQ(h["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(h["Referrer-Policy"], "no-referrer");
}

TEST(WebAssetsTest, RootIsIndexHtml) {
  WebResponse r = ServeWeb("GET", "/", "");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_TRUE(
      absl::StrContains(r.body, "<script type=\"module\" src=\"/assets/app.js\">"));
  ExpectSecurityHeaders(r);
  EXPECT_EQ(Headers(r)["Cache-Control"], "no-cache");
  EXPECT_FALSE(Headers(r)["ETag"].empty());
}

TEST(WebAssetsTest, EveryFileIsServedWithItsType) {
  ASSERT_FALSE(EmbeddedWebFiles().empty());
  for (const EmbeddedFile& f : EmbeddedWebFiles()) {
    WebResponse r = ServeWeb("GET", absl::StrCat("/assets/", f.name), "");
    EXPECT_EQ(r.code, 200) << f.name;
    EXPECT_EQ(r.body, f.data) << f.name;
    ExpectSecurityHeaders(r);
    if (absl::EndsWith(f.name, ".js")) {
      EXPECT_EQ(r.content_type, "text/javascript; charset=utf-8");
    }
    if (absl::EndsWith(f.name, ".css")) {
      EXPECT_EQ(r.content_type, "text/css; charset=utf-8");
    }
    if (absl::EndsWith(f.name, ".svg")) {
      EXPECT_EQ(r.content_type, "image/svg+xml");
    }
    // No inline script or style in the page: the CSP would refuse them.
    if (absl::EndsWith(f.name, ".html")) {
      EXPECT_FALSE(absl::StrContains(f.data, "<script>")) << f.name;
      EXPECT_FALSE(absl::StrContains(f.data, "style=")) << f.name;
      EXPECT_FALSE(absl::StrContains(f.data, "<style")) << f.name;
    }
    // Data is inserted as text, never as markup.
    if (absl::EndsWith(f.name, ".js")) {
      EXPECT_FALSE(absl::StrContains(f.data, "innerHTML")) << f.name;
      EXPECT_FALSE(absl::StrContains(f.data, "outerHTML")) << f.name;
      EXPECT_FALSE(absl::StrContains(f.data, "insertAdjacentHTML")) << f.name;
      EXPECT_FALSE(absl::StrContains(f.data, "document.write")) << f.name;
      EXPECT_FALSE(absl::StrContains(f.data, "eval(")) << f.name;
    }
  }
}

TEST(WebAssetsTest, RevalidationWithTheEtagIs304) {
  WebResponse first = ServeWeb("GET", "/assets/app.js", "");
  const std::string etag = Headers(first)["ETag"];
  ASSERT_FALSE(etag.empty());
  WebResponse again = ServeWeb("GET", "/assets/app.js", etag);
  EXPECT_EQ(again.code, 304);
  EXPECT_TRUE(again.body.empty());
  ExpectSecurityHeaders(again);
  EXPECT_EQ(ServeWeb("GET", "/assets/app.js", absl::StrCat("\"x\", W/", etag)).code, 304);
  EXPECT_EQ(ServeWeb("GET", "/assets/app.js", "\"other\"").code, 200);
  // Files differ, so do their tags.
  EXPECT_NE(Headers(ServeWeb("GET", "/assets/style.css", ""))["ETag"], etag);
}

TEST(WebAssetsTest, UnknownPathsAndMethods) {
  for (const char* path : {"/assets/", "/assets/nope.js", "/assets/../index.html",
                           "/assets/app.js/", "/assets/%61pp.js"}) {
    WebResponse r = ServeWeb("GET", path, "");
    EXPECT_EQ(r.code, 404) << path;
    ExpectSecurityHeaders(r);
  }
  WebResponse r = ServeWeb("POST", "/", "");
  EXPECT_EQ(r.code, 405);
  EXPECT_EQ(Headers(r)["Allow"], "GET, HEAD");
  ExpectSecurityHeaders(r);
  // HEAD is answered as GET (the server drops the body).
  const WebResponse get = ServeWeb("GET", "/", "");
  r = ServeWeb("HEAD", "/", "");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.body, get.body);
  EXPECT_EQ(Headers(r), Headers(get));
  EXPECT_TRUE(IsWebPath("/"));
  EXPECT_TRUE(IsWebPath("/assets/app.js"));
  EXPECT_FALSE(IsWebPath("/v1/jobs"));
  EXPECT_FALSE(IsWebPath("/healthz"));
  EXPECT_FALSE(IsWebPath(""));
}

TEST(WebAssetsTest, AssetsStayWithinTheBudget) {
  size_t total = 0;
  for (const EmbeddedFile& f : EmbeddedWebFiles()) total += f.data.size();
  EXPECT_EQ(EmbeddedWebBudget(), 200u * 1024);
  EXPECT_LE(total, EmbeddedWebBudget());
}

}  // namespace
}  // namespace timer::api::http
