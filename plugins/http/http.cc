// http: calls a URL, the most common scheduled action. One run is one HTTP
// request (plus the redirects the operator lets it follow); it succeeds on
// a 2xx answer.
//
// Body: {"method": "POST", "url": "https://...", "headers": {"X-A": "b"},
//        "body": "text" | "json": {...}, "credential": "NAME",
//        "timeout_seconds": N}
//
// Config ([plugins.http] in timerd.toml; docs/DEPLOYMENT.md has every key):
//   allow = ["https://api.example.org/", "hooks.example.com", "10.0.0.5:8080"]
//       destinations (url_allowlist.h); empty: no request may be made.
//       Special addresses (loopback, private, ...) only when listed by
//       address or CIDR, checked again on the address actually connected to.
//   follow_redirects = 0          # hops; each must be on the allowlist
//   ca_file = "/path/ca.pem"      # default: the system's CA bundle
//   default_timeout_seconds = 30, max_timeout_seconds = 300
//   max_body_bytes = 65536, max_headers = 32, max_response_bytes = 1048576
//   action_threads = 8, max_queued_actions = 1000, stop_timeout_seconds
//   [plugins.http.credentials.NAME]
//   header = "Authorization"      # the header it sets
//   value_file = "/etc/timerd/NAME.secret"   # 0600, timerd's user or root
//   allowed_identities = ["alice@example.org"]  # absent or []: nobody; "*": anyone
//   allow = ["https://api.example.org/"]        # optional; where it may go
//
// Bounds: `action_threads` requests at once (each on a reused libcurl easy
// handle with its own keep-alive connections, at most 8 each), at most
// `max_queued_actions` more waiting; a request body of `max_body_bytes`,
// `max_headers` headers of at most 1 KiB each and 8 KiB in all; at most
// `max_response_bytes` of the answer read (the rest is dropped) and 4 KiB of
// it kept in the run's details; a run's time at `max_timeout_seconds`.
//
// Secrets: a credential's value is read once at create, is sent only on
// requests to destinations its `allow` covers (dropped on a redirect
// elsewhere), and never appears in details, errors or logs (a response
// excerpt that echoes it has it blotted out).
#include <curl/curl.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "curl_handle.h"
#include "http_classify.h"
#include "provider_support.h"
#include "secret_file.h"
#include "timer/action_provider.h"
#include "url_allowlist.h"

namespace timer::plugins::http {
namespace {

constexpr size_t kExcerptBytes = 4096;
constexpr size_t kMaxHeaderValue = 1024;
constexpr size_t kMaxHeaderTotal = 8192;
constexpr long kMaxConnectsPerHandle = 8;

constexpr char kSchema[] = R"({
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "http action body",
  "description": "Sends one HTTP request; the run succeeds on a 2xx answer. The destination must be on the operator's allowlist (timer provider show http). Every request carries Idempotency-Key: JOB_ID/RUN_NUMBER.",
  "type": "object",
  "additionalProperties": false,
  "required": ["url"],
  "properties": {
    "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], "default": "POST"},
    "url": {"type": "string", "maxLength": 2048, "description": "An http or https URL on the allowlist."},
    "headers": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 1024},
                "description": "Extra request headers. Not Authorization, Cookie, Host, Content-Length, Idempotency-Key: secrets come from a credential."},
    "body": {"type": "string", "description": "The request body, as text."},
    "json": {"description": "The request body as JSON (sent with Content-Type: application/json). Not with body."},
    "credential": {"type": "string", "description": "The name of an operator-configured credential that sets one header (timer provider show http lists yours)."},
    "timeout_seconds": {"type": "integer", "minimum": 1, "description": "The whole request's time limit; at most the operator's max_timeout_seconds."}
  }
})";

// Headers a body may not set: framing and routing headers libcurl owns,
// the idempotency key timerd sets, and the ones that carry secrets (a
// secret in a job body would be stored and shown with the job).
const std::set<std::string>& ForbiddenHeaders() {
  static const std::set<std::string> k = {"host",
                                          "content-length",
                                          "transfer-encoding",
                                          "connection",
                                          "expect",
                                          "te",
                                          "upgrade",
                                          "keep-alive",
                                          "trailer",
                                          "idempotency-key",
                                          "authorization",
                                          "proxy-authorization",
                                          "cookie",
                                          "proxy-connection"};
  return k;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool IsToken(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) ||
          std::strchr("!#$%&'*+-.^_`|~", c))) {
      return false;
    }
  }
  return true;
}

// Keeps the first `max` bytes of `s` that are whole UTF-8 sequences,
// replacing invalid bytes with U+FFFD.
std::string Utf8Excerpt(const std::string& s, size_t max) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80         ? 1
               : (c >> 5) == 6  ? 2
               : (c >> 4) == 14 ? 3
               : (c >> 3) == 30 ? 4
                                : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) {
      ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    }
    if (ok && n == 2 && c < 0xC2) ok = false;  // overlong
    if (!ok) {
      if (out.size() + 3 > max) break;
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') {
      if (out.size() + 3 > max) break;
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (out.size() + n > max) break;
    out.append(s, i, n);
    i += n;
  }
  return out;
}

struct Credential {
  std::string name;
  std::string header;  // as configured
  std::string value;   // the secret
  std::set<std::string> identities;
  bool anyone = false;
  bool has_allow = false;
  net::UrlAllowlist allow;
};

struct Config {
  net::UrlAllowlist allow;
  std::map<std::string, Credential> credentials;
  int follow_redirects = 0;
  std::string ca_file;
  int64_t default_timeout_s = 30;
  int64_t max_timeout_s = 300;
  int64_t max_body_bytes = 64 * 1024;
  int64_t max_headers = 32;
  int64_t max_response_bytes = 1024 * 1024;
};

// A request as planned from a body.
struct Request {
  std::string method;
  std::string url;
  net::Url parsed;
  std::vector<std::string> headers;  // "Name: value"
  bool has_body = false;
  std::string body;
  bool json = false;
  const Credential* credential = nullptr;  // owned by the Config
  std::chrono::milliseconds timeout{0};
};

// libcurl easy handles kept between requests, so their connections stay
// open (keep-alive): at most one per action thread.
class HandlePool {
 public:
  // Null when libcurl cannot make a handle.
  net::EasyHandle Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        net::EasyHandle h = std::move(free_.back());
        free_.pop_back();
        return h;
      }
    }
    return net::EasyHandle(curl_easy_init());
  }
  void Give(net::EasyHandle h) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(h));
  }

 private:
  std::mutex mu_;
  std::vector<net::EasyHandle> free_;
};

// What one transfer's callbacks share.
struct Transfer {
  const net::UrlAllowlist* allow = nullptr;
  ActionContext* ctx = nullptr;
  int64_t max_response = 0;
  int64_t received = 0;
  bool truncated = false;
  std::string excerpt;  // first kExcerptBytes
  bool refused = false;
  std::string refused_address;
};

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (t->excerpt.size() < kExcerptBytes) {
    t->excerpt.append(data, std::min(len, kExcerptBytes - t->excerpt.size()));
  }
  t->received += static_cast<int64_t>(len);
  if (t->received > t->max_response) {
    t->truncated = true;
    return CURL_WRITEFUNC_ERROR;  // stop reading; the status decides
  }
  return len;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->ctx != nullptr && t->ctx->cancelled() ? 1 : 0;
}

// The connect-time check: the address libcurl is about to connect to,
// after every DNS answer, must be allowed.
curl_socket_t OnOpenSocket(void* user, curlsocktype purpose, struct curl_sockaddr* a) {
  auto* t = static_cast<Transfer*>(user);
  net::Address addr;
  int port = 0;
  if (purpose != CURLSOCKTYPE_IPCXN || !net::FromSockaddr(&a->addr, &addr, &port) ||
      !t->allow->AddressAllowed(addr, port)) {
    t->refused = true;
    if (purpose == CURLSOCKTYPE_IPCXN && net::FromSockaddr(&a->addr, &addr, &port)) {
      t->refused_address = net::ToString(addr);
    }
    return CURL_SOCKET_BAD;
  }
  return ::socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

std::string Redact(std::string s, const std::string& secret) {
  if (secret.size() < 4) return s;
  for (size_t pos = s.find(secret); pos != std::string::npos; pos = s.find(secret, pos)) {
    s.replace(pos, secret.size(), "[redacted]");
  }
  return s;
}

class HttpProvider : public ProviderBase {
 public:
  HttpProvider(ActionRunner::Options options, HostLog log, std::shared_ptr<Config> config)
      : ProviderBase(std::move(options), log), config_(std::move(config)) {}

  Err Plan(const Identity& owner, const nlohmann::json& body, Work* work) override {
    auto req = std::make_shared<Request>();
    if (Err e = Parse(owner, body, req.get()); !e.ok()) return e;
    if (work == nullptr) return Ok();
    auto config = config_;
    HandlePool* pool = &pool_;
    *work = [req, config, pool](ActionContext& ctx) -> Outcome {
      return Execute(*config, pool, *req, ctx);
    };
    return Ok();
  }

  nlohmann::json Describe(const Identity& caller) const override {
    nlohmann::json creds = nlohmann::json::array();
    for (const auto& [name, c] : config_->credentials) {
      if (!c.anyone && c.identities.count(caller.name) == 0) continue;
      nlohmann::json j = {{"name", name}, {"header", c.header}};
      if (c.has_allow) j["allow"] = c.allow.entries();
      creds.push_back(std::move(j));
    }
    return {{"allow", config_->allow.entries()},
            {"credentials", std::move(creds)},
            {"follow_redirects", config_->follow_redirects},
            {"default_timeout_seconds", config_->default_timeout_s},
            {"max_timeout_seconds", config_->max_timeout_s},
            {"max_body_bytes", config_->max_body_bytes},
            {"max_headers", config_->max_headers}};
  }

 private:
  Err Parse(const Identity& owner, const nlohmann::json& body, Request* req) const {
    const Config& c = *config_;
    FieldReader r(body, "");
    req->method = r.String("method", "POST");
    req->url = r.String("url", "", true);
    const nlohmann::json* headers = r.Raw("headers");
    const nlohmann::json* text = r.Raw("body");
    const nlohmann::json* json = r.Raw("json");
    std::string credential = r.String("credential", "");
    int64_t timeout = r.Int("timeout_seconds", c.default_timeout_s, 1,
                            std::numeric_limits<int32_t>::max());
    if (Err e = r.Finish(); !e.ok()) return e;
    static const std::set<std::string> kMethods = {"GET",   "HEAD",   "POST",   "PUT",
                                                   "PATCH", "DELETE", "OPTIONS"};
    if (kMethods.count(req->method) == 0) {
      return InvalidArgument(
          "method: must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    }
    std::string why;
    if (!net::ParseUrl(req->url, &req->parsed, &why))
      return InvalidArgument("url: " + why);
    if (!c.allow.UrlAllowed(req->parsed)) {
      return PermissionDenied("url: " + req->parsed.Redacted() +
                              " is not on the operator's allowlist (plugins.http.allow; "
                              "see timer provider show http)");
    }
    if (timeout > c.max_timeout_s) {
      return InvalidArgument("timeout_seconds: at most " +
                             std::to_string(c.max_timeout_s) +
                             " (plugins.http.max_timeout_seconds)");
    }
    req->timeout = std::chrono::seconds(timeout);
    if (text != nullptr && json != nullptr) {
      return InvalidArgument("body: give body or json, not both");
    }
    if (text != nullptr) {
      if (!text->is_string()) return InvalidArgument("body: must be a string");
      req->has_body = true;
      req->body = text->get<std::string>();
    } else if (json != nullptr) {
      req->has_body = true;
      req->json = true;
      req->body = json->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    if (static_cast<int64_t>(req->body.size()) > c.max_body_bytes) {
      return InvalidArgument(std::string(req->json ? "json" : "body") + ": longer than " +
                             std::to_string(c.max_body_bytes) +
                             " bytes (plugins.http.max_body_bytes)");
    }
    std::set<std::string> names;
    if (headers != nullptr && !headers->is_null()) {
      if (!headers->is_object()) return InvalidArgument("headers: must be an object");
      if (static_cast<int64_t>(headers->size()) > c.max_headers) {
        return InvalidArgument("headers: more than " + std::to_string(c.max_headers) +
                               " (plugins.http.max_headers)");
      }
      size_t total = 0;
      for (const auto& [name, value] : headers->items()) {
        const std::string field = "headers." + name;
        if (!IsToken(name)) return InvalidArgument("headers: bad header name");
        std::string lower = Lower(name);
        if (ForbiddenHeaders().count(lower) != 0) {
          return InvalidArgument(field + ": may not be set by a body" +
                                 (lower == "authorization" || lower == "cookie" ||
                                          lower == "proxy-authorization"
                                      ? " (use a credential)"
                                      : ""));
        }
        if (!value.is_string()) return InvalidArgument(field + ": must be a string");
        const std::string v = value.get<std::string>();
        if (v.size() > kMaxHeaderValue)
          return InvalidArgument(field + ": longer than 1024 bytes");
        for (char ch : v) {
          if (ch == '\r' || ch == '\n' || ch == '\0') {
            return InvalidArgument(field + ": must not hold CR, LF or NUL");
          }
        }
        total += name.size() + v.size() + 4;
        if (total > kMaxHeaderTotal)
          return InvalidArgument("headers: more than 8 KiB in all");
        names.insert(lower);
        req->headers.push_back(name + ": " + v);
      }
    }
    if (req->json && names.count("content-type") == 0) {
      req->headers.push_back("Content-Type: application/json");
    }
    if (!credential.empty()) {
      auto it = c.credentials.find(credential);
      if (it == c.credentials.end() ||
          (!it->second.anyone && it->second.identities.count(owner.name) == 0)) {
        // The same answer whether it exists or not: names of credentials
        // the caller may not use are nothing to probe for.
        return PermissionDenied("credential: no credential \"" + credential +
                                "\" is available to you (see timer provider show http)");
      }
      const Credential& cred = it->second;
      if (names.count(Lower(cred.header)) != 0) {
        return InvalidArgument("headers." + cred.header + ": set by credential " +
                               credential);
      }
      if (cred.has_allow && !cred.allow.UrlAllowed(req->parsed)) {
        return PermissionDenied("credential: " + credential + " may not be sent to " +
                                req->parsed.Redacted());
      }
      req->credential = &cred;
    }
    return Ok();
  }

  static bool CredentialGoesTo(const Credential& cred, const net::Url& first,
                               const net::Url& to) {
    if (cred.has_allow) return cred.allow.UrlAllowed(to);
    // Without its own list, a credential stays with the origin it was
    // sent to first.
    return first.scheme == to.scheme && first.host == to.host && first.port == to.port;
  }

  static Outcome Execute(const Config& c, HandlePool* pool, const Request& req,
                         ActionContext& ctx);

  std::shared_ptr<Config> config_;
  HandlePool pool_;
};

// A FAILED outcome of class `cls` (Classify()'s, or a fixed one), which the
// host reads from the status; the details name it too (docs/API.md).
Outcome Fail(ActionContext& ctx, nlohmann::json details, timer_ap_error_class cls,
             std::string error) {
  details["error_class"] = ClassName(cls);
  ctx.SetDetails(details);
  return Outcome::Failed(Err{TIMER_AP_UNKNOWN, std::move(error)}.with_class(cls));
}

// The idempotency key is the run's request id (JOB_ID/RUN_NUMBER), the same
// for every attempt of the run.
Outcome HttpProvider::Execute(const Config& c, HandlePool* pool, const Request& req,
                              ActionContext& ctx) {
  const std::string& key = ctx.request_id();
  struct Giver {
    HandlePool* pool;
    net::EasyHandle h;
    ~Giver() {
      if (h) pool->Give(std::move(h));
    }
  } giver{pool, pool->Take()};
  CURL* const h = giver.h.get();
  if (h == nullptr) {
    return Outcome::Failed(Transient(Internal("http: cannot make a libcurl handle")));
  }

  const auto deadline = std::chrono::steady_clock::now() + req.timeout;
  std::string method = req.method;
  std::string url = req.url;
  net::Url parsed = req.parsed;
  bool send_body = req.has_body;
  int hops = 0;
  int64_t total_us = 0, connect_us = 0, first_byte_us = 0;
  nlohmann::json details;
  for (;;) {
    Transfer t;
    t.allow = &c.allow;
    t.ctx = &ctx;
    t.max_response = c.max_response_bytes;
    net::HeaderList hl;
    auto add = [&hl](const std::string& line) { (void)net::AppendHeader(&hl, line); };
    for (const std::string& line : req.headers) {
      if (!send_body && Lower(line).rfind("content-type:", 0) == 0) continue;
      add(line);
    }
    add("Idempotency-Key: " + key);
    add("Expect:");  // no 100-continue round trip
    if (req.credential != nullptr &&
        CredentialGoesTo(*req.credential, req.parsed, parsed)) {
      add(req.credential->header + ": " + req.credential->value);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      details["url"] = parsed.Redacted();
      return Fail(
          ctx, details, TIMER_AP_ERROR_CLASS_TRANSIENT,
          "http: timed out after " + std::to_string(req.timeout.count() / 1000) + " s");
    }
    char errbuf[CURL_ERROR_SIZE] = {};
    // Resets the handle (its connections stay open) and sets the URL, http
    // and https only, no redirect followed by libcurl, NOSIGNAL, TLS
    // verification, the CA file, the connect timeout and errbuf.
    const CURLcode setup = net::ApplySafeOptions(
        h,
        {.url = url.c_str(),
         .ca_file = c.ca_file.c_str(),
         .connect_timeout_ms = static_cast<long>(std::min<int64_t>(left.count(), 30000)),
         .errbuf = errbuf});
    if (setup != CURLE_OK) {
      details["url"] = parsed.Redacted();
      return Fail(
          ctx, details, TIMER_AP_ERROR_CLASS_TRANSIENT,
          "http: cannot set up the request: " + std::string(curl_easy_strerror(setup)));
    }
    curl_easy_setopt(h, CURLOPT_PROXY, "");  // no proxy from the environment
    curl_easy_setopt(h, CURLOPT_MAXCONNECTS, kMaxConnectsPerHandle);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(left.count()));
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, &OnOpenSocket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnWrite);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &OnProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl.get());
    if (method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (method == "GET") {
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    if (send_body && method != "HEAD" && method != "GET") {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(req.body.size()));
    } else if (method == "POST" || method == "PUT" || method == "PATCH") {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
    }

    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t tt = 0, ct = 0, fb = 0;
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &tt);
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &ct);
    curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME_T, &fb);
    if (hops == 0) {
      connect_us = ct;
      first_byte_us = fb;
    }
    total_us += tt;
    // The response-size bound stops reading, it does not fail the run.
    if (rc == CURLE_WRITE_ERROR && t.truncated) rc = CURLE_OK;

    details = nlohmann::json::object();
    details["url"] = parsed.Redacted();
    details["method"] = method;
    details["timing"] = {{"total_ms", total_us / 1000.0},
                         {"connect_ms", connect_us / 1000.0},
                         {"first_byte_ms", first_byte_us / 1000.0}};
    if (hops > 0) details["redirects"] = hops;
    if (status != 0) {
      details["status"] = status;
      char* ctype = nullptr;
      curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);
      std::string excerpt = Utf8Excerpt(t.excerpt, kExcerptBytes);
      if (req.credential != nullptr) excerpt = Redact(excerpt, req.credential->value);
      nlohmann::json resp = {
          {"bytes", t.received},
          {"excerpt", excerpt},
          {"truncated", t.truncated || t.received > static_cast<int64_t>(kExcerptBytes)}};
      if (ctype != nullptr) resp["content_type"] = Utf8Excerpt(ctype, 256);
      details["response"] = std::move(resp);
    }

    if (rc == CURLE_ABORTED_BY_CALLBACK && ctx.cancelled()) {
      ctx.SetDetails(details);
      return Outcome{TIMER_AP_STATE_CANCELLED, "cancelled"};
    }
    if (t.refused) {
      return Fail(ctx, details, TIMER_AP_ERROR_CLASS_PERMANENT,
                  "url: " + parsed.host + " resolved to " +
                      (t.refused_address.empty() ? std::string("an address")
                                                 : t.refused_address) +
                      ", which the allowlist does not cover (plugins.http.allow)");
    }
    if (rc != CURLE_OK) {
      std::string why = net::ErrorText(errbuf, rc);
      if (req.credential != nullptr) why = Redact(why, req.credential->value);
      if (rc == CURLE_OPERATION_TIMEDOUT) {
        why = "timed out after " + std::to_string(req.timeout.count() / 1000) + " s (" +
              why + ")";
      }
      return Fail(ctx, details, Classify(rc, 0),
                  "http: " + parsed.Redacted() + ": " + why);
    }
    if (status >= 300 && status < 400 && hops < c.follow_redirects) {
      char* loc = nullptr;
      curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
      std::string next;
      net::Url next_parsed;
      std::string why;
      if (loc != nullptr && net::ParseUrl(loc, &next_parsed, &why)) next = loc;
      if (next.empty()) {
        return Fail(
            ctx, details, TIMER_AP_ERROR_CLASS_PERMANENT,
            "http: " + std::to_string(status) + " redirect without a usable Location");
      }
      if (!c.allow.UrlAllowed(next_parsed)) {
        return Fail(ctx, details, TIMER_AP_ERROR_CLASS_PERMANENT,
                    "url: redirected to " + next_parsed.Redacted() +
                        ", which is not on the allowlist (plugins.http.allow)");
      }
      if (status == 301 || status == 302 || status == 303) {
        if (method != "HEAD") method = "GET";
        send_body = false;
      }
      url = next;
      parsed = next_parsed;
      ++hops;
      continue;
    }
    if (status >= 200 && status < 300) {
      ctx.SetDetails(details);
      return Outcome{TIMER_AP_STATE_SUCCEEDED, ""};
    }
    std::string error =
        "http: " + parsed.Redacted() + " answered " + std::to_string(status);
    if (status >= 300 && status < 400) {
      error += c.follow_redirects == 0
                   ? " (redirects are not followed: plugins.http.follow_redirects)"
                   : " (too many redirects)";
    }
    return Fail(ctx, details, Classify(CURLE_OK, status), error);
  }
}

Err ReadStringList(const nlohmann::json* v, const std::string& field,
                   std::vector<std::string>* out) {
  if (v == nullptr || v->is_null()) return Ok();
  if (!v->is_array()) return InvalidArgument(field + ": must be an array of strings");
  for (const auto& e : *v) {
    if (!e.is_string()) return InvalidArgument(field + ": must be an array of strings");
    out->push_back(e.get<std::string>());
  }
  return Ok();
}

Err CreateHttp(const nlohmann::json& config, HostLog log,
               std::unique_ptr<ProviderBase>* out) {
  net::InitCurlOnce();
  auto c = std::make_shared<Config>();
  FieldReader r(config, "plugins.http");
  ActionRunner::Options runner;
  runner.threads = 8;
  {
    // ReadRunnerOptions' default is 4 threads; http's is 8 (requests wait
    // on the network, not on a CPU).
    nlohmann::json with_default = config;
    if (!with_default.contains("action_threads")) with_default["action_threads"] = 8;
    FieldReader rr(with_default, "plugins.http");
    runner = ReadRunnerOptions(rr);
  }
  // The runner's keys were read above; mark them seen here.
  r.Raw("action_threads");
  r.Raw("max_queued_actions");
  r.Raw("stop_timeout_seconds");
  const nlohmann::json* allow = r.Raw("allow");
  const nlohmann::json* creds = r.Raw("credentials");
  c->follow_redirects = static_cast<int>(r.Int("follow_redirects", 0, 0, 10));
  c->ca_file = r.String("ca_file", "");
  c->default_timeout_s = r.Int("default_timeout_seconds", 0, 1, 86400);
  c->max_timeout_s = r.Int("max_timeout_seconds", 300, 1, 86400);
  // Not given: 30 s, or the maximum if that is lower.
  if (c->default_timeout_s == 0)
    c->default_timeout_s = std::min<int64_t>(30, c->max_timeout_s);
  c->max_body_bytes = r.Int("max_body_bytes", 64 * 1024, 0, 16 * 1024 * 1024);
  c->max_headers = r.Int("max_headers", 32, 0, 256);
  c->max_response_bytes = r.Int("max_response_bytes", 1024 * 1024, 0, int64_t{1} << 30);
  if (Err e = r.Finish(); !e.ok()) return e;
  if (c->default_timeout_s > c->max_timeout_s) {
    return InvalidArgument(
        "plugins.http.default_timeout_seconds: more than max_timeout_seconds");
  }
  if (!c->ca_file.empty() && ::access(c->ca_file.c_str(), R_OK) != 0) {
    return InvalidArgument("plugins.http.ca_file: cannot read " + c->ca_file);
  }
  std::vector<std::string> entries;
  if (Err e = ReadStringList(allow, "plugins.http.allow", &entries); !e.ok()) return e;
  std::string why;
  if (!net::UrlAllowlist::Parse(entries, "plugins.http.allow", &c->allow, &why)) {
    return InvalidArgument(why);
  }
  if (creds != nullptr && !creds->is_null()) {
    if (!creds->is_object())
      return InvalidArgument("plugins.http.credentials: must be a table");
    for (const auto& [name, v] : creds->items()) {
      const std::string prefix = "plugins.http.credentials." + name;
      if (!IsToken(name)) return InvalidArgument(prefix + ": bad name");
      if (!v.is_object()) return InvalidArgument(prefix + ": must be a table");
      FieldReader cr(v, prefix);
      Credential cred;
      cred.name = name;
      cred.header = cr.String("header", "", true);
      std::string file = cr.String("value_file", "", true);
      const nlohmann::json* ids = cr.Raw("allowed_identities");
      const nlohmann::json* callow = cr.Raw("allow");
      if (Err e = cr.Finish(); !e.ok()) return e;
      if (!IsToken(cred.header))
        return InvalidArgument(prefix + ".header: not a header name");
      std::vector<std::string> idl;
      if (Err e = ReadStringList(ids, prefix + ".allowed_identities", &idl); !e.ok())
        return e;
      for (const std::string& id : idl) {
        if (id == "*") cred.anyone = true;
        cred.identities.insert(id);
      }
      if (callow != nullptr && !callow->is_null()) {
        std::vector<std::string> al;
        if (Err e = ReadStringList(callow, prefix + ".allow", &al); !e.ok()) return e;
        if (!net::UrlAllowlist::Parse(al, prefix + ".allow", &cred.allow, &why)) {
          return InvalidArgument(why);
        }
        cred.has_allow = true;
      }
      if (Err e = ReadSecretFile(prefix + ".value_file", file, &cred.value); !e.ok())
        return e;
      // A file written by `echo` ends in a newline: not part of the value.
      while (!cred.value.empty() &&
             (cred.value.back() == '\n' || cred.value.back() == '\r' ||
              cred.value.back() == ' '))
        cred.value.pop_back();
      if (cred.value.empty())
        return InvalidArgument(prefix + ".value_file: " + file + " is empty");
      for (char ch : cred.value) {
        if (ch == '\r' || ch == '\n' || ch == '\0') {
          return InvalidArgument(prefix + ".value_file: " + file +
                                 " must hold one line (no CR, LF or NUL inside)");
        }
      }
      c->credentials.emplace(name, std::move(cred));
    }
  }
  if (c->allow.empty()) {
    log.Warn("plugins.http.allow is empty: every http job will be refused");
  }
  *out = std::make_unique<HttpProvider>(std::move(runner), log, std::move(c));
  return Ok();
}

timer_ap_error* Create(timer_ap_str config, const timer_ap_host* host,
                       timer_ap_provider** out) {
  return CreateWith(&CreateHttp, config, host, out);
}

const timer_ap_api kApi = MakeApi("http", "1.0.0",
                                  "Sends an HTTP request to an allowlisted URL; succeeds "
                                  "on a 2xx answer.",
                                  kSchema, &Create);

}  // namespace
}  // namespace timer::plugins::http

extern "C" TIMER_AP_EXPORT const timer_ap_api* timer_ap_get_api(uint32_t host_major,
                                                                uint32_t host_minor) {
  return host_major == TIMER_AP_ABI_MAJOR ? &timer::plugins::http::kApi : nullptr;
}
