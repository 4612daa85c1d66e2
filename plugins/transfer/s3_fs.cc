#include "s3_fs.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "curl_handle.h"
#include "s3_xml.h"
#include "secret_file.h"

namespace timer::plugins::transfer {
namespace {

// The largest ranged GET a reader makes, and so the buffer it holds.
constexpr int64_t kMaxReadChunk = int64_t{16} << 20;
// The largest XML response read (a ListObjectsV2 page of 1000 keys of 1 KiB
// each is about 1.3 MB).
constexpr size_t kMaxXml = size_t{8} << 20;
// The largest object CopyObject copies in one request.
constexpr int64_t kMaxCopyObject = int64_t{5} << 30;

// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters kept,
// '/' kept when `keep_slash`, every other byte %XX.
std::string UriEncode(std::string_view s, bool keep_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Join(const Path& path) {
  std::string s;
  for (const std::string& c : path) {
    if (!s.empty()) s += '/';
    s += c;
  }
  return s;
}

std::string Shown(const Path& path) { return "/" + Join(path); }

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// What S3 sent back, made safe for a message: printable ASCII, bounded.
std::string Printable(std::string_view s, size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string Hex(const Sha256Digest& d) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : d) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

std::optional<Sha256Digest> ParseHex(std::string_view s) {
  if (s.size() != 64) return std::nullopt;
  Sha256Digest d{};
  for (size_t i = 0; i < 32; ++i) {
    int v = 0;
    for (int k = 0; k < 2; ++k) {
      const char c = s[2 * i + k];
      int x;
      if (c >= '0' && c <= '9') {
        x = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        x = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        x = c - 'A' + 10;
      } else {
        return std::nullopt;
      }
      v = v * 16 + x;
    }
    d[i] = static_cast<unsigned char>(v);
  }
  return d;
}

using s3xml::ParseInt64;

// A name from a listing that can be a path component (endpoint_fs.h).
bool ValidComponent(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

// S3 error codes that mean the destination has no room, whatever the HTTP
// status they come with: MinIO's drives past their free-space threshold
// (XMinioStorageFull, 507), a MinIO bucket quota
// (XMinioAdminBucketQuotaExceeded, 400), a Ceph RGW user or bucket quota
// (QuotaExceeded, 403). With 507 Insufficient Storage they are a full
// destination: RESOURCE_EXHAUSTED, which fail_on_quota_errors acts on.
// EntityTooLarge is not one of them: it refuses one object over the
// server's size limit (S3's 5 GiB for a PUT, RGW's rgw_max_put_size), the
// bucket has room for the others, so that file fails (FAILED_PRECONDITION)
// and the run goes on.
bool NoRoom(long status, const std::string& code) {
  return status == 507 || code == "XMinioStorageFull" || code == "QuotaExceeded" ||
         code == "XMinioAdminBucketQuotaExceeded";
}

// `code`: S3's error code from the reply's <Error>, "" when none.
Err StatusErr(long status, const std::string& what, const std::string& detail,
              const std::string& code = "") {
  std::string m = what + ": HTTP " + std::to_string(status) + detail;
  if (NoRoom(status, code)) return ResourceExhausted(m + " (the destination is full)");
  if (status == 404) return NotFound(m);
  // Credentials the server does not take: a person must fix them.
  if (status == 401 || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" ||
      code == "ExpiredToken" || code == "InvalidToken") {
    return NeedsAttention(PermissionDenied(m + " (check the endpoint's credentials)"));
  }
  if (status == 403) return Permanent(PermissionDenied(m));
  if (status == 429 || status >= 500) return Transient(Unavailable(m));
  if (status == 412) return FailedPrecondition(m + " (the object changed while read)");
  return FailedPrecondition(m);
}

// ---------------------------------------------------------------------------
// One HTTP request and what came back.

struct Request {
  const char* method = "GET";  // GET HEAD PUT POST DELETE
  std::string bucket;
  std::string key;    // "" for a request on the bucket
  std::string query;  // encoded "a=b&c=d"
  std::vector<std::string> headers;
  const char* body = nullptr;  // PUT / POST payload, `body_size` bytes
  size_t body_size = 0;
  // The response body goes to `sink_buf` (at most `sink_cap` bytes, more is
  // an error) when set, else to Response::body (at most kMaxXml).
  char* sink_buf = nullptr;
  size_t sink_cap = 0;
  bool payload = false;  // carries data: a stall timeout, no total timeout
  // Ended by the run's cancel (CANCELLED). Not the abort of a multipart
  // upload, which must still be sent after a cancel (its timeout bounds it).
  bool cancellable = true;
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  size_t sunk = 0;  // bytes written to Request::sink_buf
  const std::string* Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? nullptr : &it->second;
  }
};

// The SHA-256 of a request's payload, in hex.
std::string PayloadHash(const char* data, size_t n) {
  Sha256Digest d{};
  ::SHA256(reinterpret_cast<const unsigned char*>(n > 0 ? data : ""), n, d.data());
  return Hex(d);
}

// <Error><Code>..</Code><Message>..</Message></Error>, as " NoSuchKey: ...";
// its code in *code.
std::string ErrorDetail(const std::string& body, std::string* code = nullptr) {
  s3xml::ErrorDoc doc;
  if (body.empty() || !s3xml::ParseError(body, &doc)) return "";
  if (code != nullptr) *code = doc.code;
  std::string out = " " + Printable(doc.code, 64);
  if (!doc.message.empty()) out += ": " + Printable(doc.message);
  return out;
}

// ---------------------------------------------------------------------------

class S3EndpointImpl : public RemoteEndpoint {
 public:
  explicit S3EndpointImpl(S3Config c) : config_(std::move(c)) {}
  std::string type() const override { return "s3"; }
  bool Encrypted() const override { return config_.endpoint.rfind("https://", 0) == 0; }
  Err Open(const CancelCheck& cancelled, std::unique_ptr<EndpointFs>* out) const override;
  nlohmann::json Describe() const override {
    return {{"type", "s3"},
            {"endpoint", config_.endpoint},
            {"region", config_.region},
            {"bucket", config_.bucket},
            {"prefix", config_.prefix},
            {"path_style", config_.path_style},
            {"part_size", config_.part_size},
            {"encrypted", config_.endpoint.rfind("https://", 0) == 0}};
  }
  const S3Config& config() const { return config_; }

 private:
  const S3Config config_;
};

class S3Fs : public EndpointFs {
 public:
  S3Fs(const S3Config& config, net::EasyHandle curl, CancelCheck cancelled)
      : c_(config), curl_(std::move(curl)), cancelled_(std::move(cancelled)) {}

  const S3Config& config() const { return c_; }

  bool Encrypted() const override { return c_.endpoint.rfind("https://", 0) == 0; }

  std::string Key(const Path& path) const { return c_.prefix + Join(path); }
  // The key prefix of the keys in directory `dir`.
  std::string DirPrefix(const Path& dir) const {
    return dir.empty() ? c_.prefix : c_.prefix + Join(dir) + "/";
  }

  // Sends `req`; OK with the response whatever its status, an error only
  // when no response came (UNAVAILABLE: connect, timeout, reset; CANCELLED:
  // the run was cancelled before or while it was sent, req.cancellable).
  Err Send(const Request& req, const std::string& what, Response* resp);

  // Sends `req` and fails unless the status is 2xx (and, for 200 with an
  // XML body, unless the body is an <Error>: CopyObject and
  // CompleteMultipartUpload report failures that way).
  Err Call(const Request& req, const std::string& what, Response* resp) {
    if (Err e = Send(req, what, resp); !e.ok()) return e;
    std::string code;
    if (resp->status < 200 || resp->status > 299) {
      const std::string d = Scrub(ErrorDetail(resp->body, &code));
      return StatusErr(resp->status, what, d, code);
    }
    if (!resp->body.empty() && resp->body.find("<Error>") != std::string::npos) {
      const std::string d = Scrub(ErrorDetail(resp->body, &code));
      if (NoRoom(0, code)) {
        return ResourceExhausted(what + ": failed after HTTP 200:" + d +
                                 " (the destination is full)");
      }
      if (!d.empty()) return Unavailable(what + ": failed after HTTP 200:" + d);
    }
    return Ok();
  }

  // A server's message with the secret blotted out, should it echo it.
  std::string Scrub(std::string s) const {
    const std::string& k = c_.secret_access_key;
    for (size_t at; !k.empty() && (at = s.find(k)) != std::string::npos;) {
      s.replace(at, k.size(), "***");
    }
    return s;
  }

  Err Head(const std::string& key, const std::string& what, Response* resp) {
    Request req;
    req.method = "HEAD";
    req.bucket = c_.bucket;
    req.key = key;
    return Send(req, what, resp);
  }

  // Reads a HEAD's headers into `info`.
  static void FileInfo(const Response& r, EntryInfo* info) {
    info->kind = EntryKind::kFile;
    info->size = 0;
    if (const std::string* v = r.Header("content-length")) ParseInt64(*v, &info->size);
    info->mtime_ns = -1;
    int64_t ns = 0;
    if (const std::string* v = r.Header("x-amz-meta-mtime"); v && ParseInt64(*v, &ns)) {
      info->mtime_ns = ns;
    } else if (const std::string* lm = r.Header("last-modified")) {
      const time_t t = curl_getdate(lm->c_str(), nullptr);
      if (t >= 0) info->mtime_ns = static_cast<int64_t>(t) * 1000000000;
    }
    info->sha256.reset();
    if (const std::string* v = r.Header("x-amz-meta-sha256")) info->sha256 = ParseHex(*v);
  }

  // One ListObjectsV2 page below `prefix`.
  struct Page {
    std::vector<EntryInfo> files;  // name = key minus prefix
    std::vector<std::string> dirs;
    std::string next;    // the continuation token; empty: last page
    int64_t listed = 0;  // keys and common prefixes the server sent
  };

  // Hashes of the continuation tokens one listing was given.
  using TokensSeen = std::unordered_set<size_t>;

  // Counts a page against the run's max_keys_per_run (at least 1 a page, so
  // that empty pages count too) and refuses a continuation token the
  // listing was already given: a server that sends the listing round in a
  // circle must not keep a run listing for ever. FAILED_PRECONDITION, not
  // RESOURCE_EXHAUSTED: the destination is not full, and the run's other
  // items go on.
  Err Charge(const Page& page, const std::string& what, TokensSeen* seen) {
    listed_ += std::max<int64_t>(1, page.listed);
    if (listed_ > c_.max_keys_per_run) {
      return FailedPrecondition(
          what + ": more than " + std::to_string(c_.max_keys_per_run) +
          " keys listed from this endpoint in one run (" + c_.max_keys_field +
          "); transfer fewer or smaller trees at once, or raise it");
    }
    if (!page.next.empty() && !seen->insert(std::hash<std::string>()(page.next)).second) {
      return Unavailable(what +
                         ": the server repeated a continuation token (the listing "
                         "goes round in a circle)");
    }
    return Ok();
  }
  Err ListPage(const std::string& prefix, bool delimited, const std::string& token,
               int64_t max_keys, const std::string& what, Page* page);

  Err Stat(const Path& path, EntryInfo* info, bool* exists) override {
    *info = EntryInfo{};
    *exists = false;
    if (path.empty()) {
      info->kind = EntryKind::kDirectory;
      *exists = true;
      return Ok();
    }
    const std::string what = "s3: HEAD " + Shown(path);
    Response r;
    if (Err e = Head(Key(path), what, &r); !e.ok()) return e;
    if (r.status >= 200 && r.status <= 299) {
      FileInfo(r, info);
      *exists = true;
      return Ok();
    }
    if (r.status != 404) return StatusErr(r.status, what, "");
    Page page;
    if (Err e = ListPage(DirPrefix(path), false, "", 1, "s3: list " + Shown(path), &page);
        !e.ok()) {
      return e;
    }
    if (!page.files.empty() || !page.dirs.empty()) {
      info->kind = EntryKind::kDirectory;
      *exists = true;
    }
    return Ok();
  }

  Err List(const Path& dir, const std::function<bool(const EntryInfo&)>& each) override {
    const std::string prefix = DirPrefix(dir);
    const std::string what = "s3: list " + Shown(dir);
    std::string token;
    TokensSeen seen;
    do {
      Page page;
      if (Err e = ListPage(prefix, true, token, c_.list_page_size, what, &page);
          !e.ok()) {
        return e;
      }
      if (Err e = Charge(page, what, &seen); !e.ok()) return e;
      for (const EntryInfo& f : page.files) {
        if (!each(f)) return Ok();
      }
      for (const std::string& d : page.dirs) {
        EntryInfo info;
        info.name = d;
        info.kind = EntryKind::kDirectory;
        if (!each(info)) return Ok();
      }
      token = std::move(page.next);
    } while (!token.empty());
    return Ok();
  }

  Err OpenRead(const Path& file, std::unique_ptr<FileReader>* out) override;
  Err Create(const Path& file, int64_t size, std::unique_ptr<FileWriter>* out) override;

  Err MakeDir(const Path& dir) override { return Ok(); }

  Err Delete(const std::string& key, const std::string& what) {
    Request req;
    req.method = "DELETE";
    req.bucket = c_.bucket;
    req.key = key;
    Response r;
    if (Err e = Send(req, what, &r); !e.ok()) return e;
    if ((r.status >= 200 && r.status <= 299) || r.status == 404) return Ok();
    std::string code;
    const std::string d = Scrub(ErrorDetail(r.body, &code));
    return StatusErr(r.status, what, d, code);
  }

  Err Remove(const Path& path) override {
    if (path.empty()) return InvalidArgument("s3: will not remove the endpoint's root");
    Response head;
    if (Err e = Head(Key(path), "s3: HEAD " + Shown(path), &head); !e.ok()) return e;
    if (head.status >= 200 && head.status <= 299) {
      return Delete(Key(path), "s3: DELETE " + Shown(path));
    }
    if (head.status != 404) return StatusErr(head.status, "s3: HEAD " + Shown(path), "");
    // A directory: every key below it, a page at a time.
    const std::string prefix = DirPrefix(path);
    std::string token;
    TokensSeen seen;
    do {
      Page page;
      if (Err e = ListPage(prefix, false, token, c_.list_page_size,
                           "s3: list " + Shown(path), &page);
          !e.ok()) {
        return e;
      }
      if (Err e = Charge(page, "s3: list " + Shown(path), &seen); !e.ok()) return e;
      for (const EntryInfo& f : page.files) {
        if (Err e = Delete(prefix + f.name, "s3: DELETE " + Shown(path) + "/" + f.name);
            !e.ok()) {
          return e;
        }
      }
      token = std::move(page.next);
    } while (!token.empty());
    return Ok();
  }

  int64_t FreeBytes(const Path& dir) override { return -1; }

  Err CopyFrom(EndpointFs& source, const Path& src, const Path& dst,
               const PublishOptions& options) override;

  // Metadata headers for `options` (x-amz-meta-mtime, x-amz-meta-sha256).
  static void MetaHeaders(const PublishOptions& options, std::vector<std::string>* h) {
    if (options.mtime_ns >= 0)
      h->push_back("x-amz-meta-mtime: " + std::to_string(options.mtime_ns));
    if (options.sha256) h->push_back("x-amz-meta-sha256: " + Hex(*options.sha256));
  }

  // A part's buffer kept between files (a writer takes it and gives it
  // back), so each file does not fault in fresh memory: at most one part.
  std::string spare_;
  // Likewise a reader's buffer (read_spare_cap_ bytes).
  std::unique_ptr<char[]> read_spare_;
  size_t read_spare_cap_ = 0;

 private:
  const S3Config c_;
  const net::EasyHandle curl_;
  char errbuf_[CURL_ERROR_SIZE] = {};
  const CancelCheck cancelled_;  // the run's; empty: never
  int64_t listed_ = 0;           // keys (and pages) listed by this run (Charge)
};

// ---------------------------------------------------------------------------

struct Sink {
  CURL* curl;
  Response* resp;
  const Request* req;
  bool overflow = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  const std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    s->resp->headers.clear();  // a 100 Continue's, then the final response's
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos && s->resp->headers.size() < 200) {
    s->resp->headers[Lower(std::string(line.substr(0, colon)))] =
        Trim(line.substr(colon + 1));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  const size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
  // Only a 2xx body goes to the caller's buffer; an error's is XML.
  if (s->req->sink_buf != nullptr && status >= 200 && status <= 299) {
    if (s->resp->sunk + len > s->req->sink_cap) {
      s->overflow = true;
      return 0;
    }
    std::memcpy(s->req->sink_buf + s->resp->sunk, data, len);
    s->resp->sunk += len;
    return len;
  }
  if (s->resp->body.size() + len > kMaxXml) {
    s->overflow = true;
    return 0;
  }
  s->resp->body.append(data, len);
  return len;
}

struct Upload {
  const char* data;
  size_t left;
};

// libcurl's progress callback (CURLOPT_XFERINFOFUNCTION): called about once
// a second while a request waits (connecting, sending, for an answer) and
// more often while bytes move, so a cancel ends a request within about a
// second. Non-zero ends the transfer with CURLE_ABORTED_BY_CALLBACK.
int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return (*static_cast<const CancelCheck*>(user))() ? 1 : 0;
}

size_t OnRead(char* buf, size_t size, size_t n, void* user) {
  auto* u = static_cast<Upload*>(user);
  const size_t len = std::min(size * n, u->left);
  if (len == 0) return 0;
  std::memcpy(buf, u->data, len);
  u->data += len;
  u->left -= len;
  return len;
}

Err S3Fs::Send(const Request& req, const std::string& what, Response* resp) {
  *resp = Response{};
  CURL* const h = curl_.get();
  // The URL: path style https://host/bucket/key, else https://bucket.host/key.
  std::string url;
  const std::string key_path = UriEncode(req.key, true);
  if (c_.path_style) {
    url = c_.endpoint + "/" + UriEncode(req.bucket, false) + "/" + key_path;
  } else {
    const size_t scheme_end = c_.endpoint.find("://") + 3;
    url = c_.endpoint.substr(0, scheme_end) + req.bucket + "." +
          c_.endpoint.substr(scheme_end) + "/" + key_path;
  }
  if (!req.query.empty()) {
    // In SigV4's canonical order (libcurl 7.88 signs the query as it is).
    std::vector<std::string_view> params;
    std::string_view q = req.query;
    for (size_t start = 0; start <= q.size();) {
      size_t amp = q.find('&', start);
      if (amp == std::string_view::npos) amp = q.size();
      params.push_back(q.substr(start, amp - start));
      start = amp + 1;
    }
    std::sort(params.begin(), params.end());
    url += '?';
    for (size_t i = 0; i < params.size(); ++i) {
      if (i > 0) url += '&';
      url += params[i];
      // A name alone ("uploads") is signed as "uploads=".
      if (params[i].find('=') == std::string_view::npos) url += '=';
    }
  }
  const std::string sigv4 = "aws:amz:" + c_.region + ":s3";
  // Resets the handle (the connection cache stays) and sets the URL, http
  // and https only, no redirect followed, NOSIGNAL, TLS verification, the
  // CA file, the connect timeout and errbuf_.
  if (const CURLcode rc = net::ApplySafeOptions(
          h, {.url = url.c_str(),
              .ca_file = c_.ca_file.c_str(),
              .connect_timeout_ms = static_cast<long>(c_.timeout_seconds) * 1000L,
              .errbuf = errbuf_});
      rc != CURLE_OK) {
    return Internal(what + ": cannot set up the request: " + curl_easy_strerror(rc));
  }
  // A key is sent as it is: libcurl must not fold "/./" or "/../" away.
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(h, CURLOPT_USERNAME, c_.access_key_id.c_str());
  curl_easy_setopt(h, CURLOPT_PASSWORD, c_.secret_access_key.c_str());
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(c_.timeout_seconds));
  if (req.payload) curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L << 10);  // the maximum
  if (!req.payload)
    curl_easy_setopt(h, CURLOPT_TIMEOUT, static_cast<long>(c_.timeout_seconds));
  const bool cancellable = req.cancellable && cancelled_;
  if (cancellable) {
    if (cancelled_()) return {TIMER_AP_CANCELLED, what + ": cancelled"};
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &OnProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &cancelled_);
  }
  Sink sink{h, resp, &req};
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  // x-amz-content-sha256 is the payload hash libcurl signs when the request
  // carries it (7.88 computes none for a streamed body): the SHA-256 of the
  // body, or for a PUT over https UNSIGNED-PAYLOAD (TLS protects the bytes;
  // the hash would cost a pass over each part). Over http, where nothing
  // else would, the payload is signed.
  const std::string_view method = req.method;
  Upload up{req.body, req.body_size};
  if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (method == "PUT") {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    // Fewer, larger writes to the socket (libcurl's default is 64 KiB).
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 2L << 20);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &OnRead);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body_size));
  } else if (method == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body != nullptr ? req.body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(req.body_size));
  } else if (method == "DELETE") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
  }
  net::HeaderList headers;
  const bool unsigned_payload = method == "PUT" && req.body_size > 0 && Encrypted();
  const std::string content_sha256 =
      "x-amz-content-sha256: " + (unsigned_payload
                                      ? std::string("UNSIGNED-PAYLOAD")
                                      : PayloadHash(req.body, req.body_size));
  bool listed = net::AppendHeader(&headers, content_sha256);
  for (const std::string& s : req.headers)
    listed = listed && net::AppendHeader(&headers, s);
  if (!listed) return Internal(what + ": out of memory listing the request's headers");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  const CURLcode rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
  // Not UNAVAILABLE: a cancelled run must not be retried as transient.
  if (rc == CURLE_ABORTED_BY_CALLBACK && cancellable)
    return {TIMER_AP_CANCELLED, what + ": cancelled"};
  if (sink.overflow) {
    return Unavailable(what + ": the server sent more than was asked for (HTTP " +
                       std::to_string(resp->status) + ")");
  }
  if (rc != CURLE_OK) {
    const std::string why = Printable(net::ErrorText(errbuf_, rc));
    return Unavailable(what + ": " + why);
  }
  return Ok();
}

Err S3Fs::ListPage(const std::string& prefix, bool delimited, const std::string& token,
                   int64_t max_keys, const std::string& what, Page* page) {
  Request req;
  req.bucket = c_.bucket;
  req.query = "list-type=2&max-keys=" + std::to_string(max_keys);
  if (delimited) req.query += "&delimiter=%2F";
  if (!prefix.empty()) req.query += "&prefix=" + UriEncode(prefix, false);
  if (!token.empty()) req.query += "&continuation-token=" + UriEncode(token, false);
  Response r;
  if (Err e = Call(req, what, &r); !e.ok()) return e;
  s3xml::ListPage parsed;
  std::string why;
  if (!s3xml::ParseListObjectsV2(r.body, &parsed, &why))
    return Unavailable(what + ": " + why);
  page->listed =
      static_cast<int64_t>(parsed.objects.size() + parsed.common_prefixes.size());
  for (s3xml::ListedObject& o : parsed.objects) {
    const std::string& key = o.key;
    // Confinement: only keys below the prefix, one component deep when
    // delimited (the server's word is not taken for it).
    if (key.size() <= prefix.size() || key.compare(0, prefix.size(), prefix) != 0)
      continue;
    EntryInfo info;
    info.name = key.substr(prefix.size());
    if (delimited && !ValidComponent(info.name)) continue;
    info.kind = EntryKind::kFile;
    info.size = o.size;
    info.mtime_ns = o.mtime_ns;
    page->files.push_back(std::move(info));
  }
  for (const std::string& p : parsed.common_prefixes) {
    if (p.size() <= prefix.size() + 1 || p.compare(0, prefix.size(), prefix) != 0 ||
        p.back() != '/') {
      continue;
    }
    std::string name = p.substr(prefix.size(), p.size() - prefix.size() - 1);
    if (ValidComponent(name)) page->dirs.push_back(std::move(name));
  }
  if (parsed.truncated) {
    page->next = std::move(parsed.next_token);
    if (page->next == token) return Unavailable(what + ": the listing does not advance");
  }
  return Ok();
}

// ---------------------------------------------------------------------------

class S3Reader : public FileReader {
 public:
  S3Reader(S3Fs* fs, std::string key, std::string shown, int64_t size, std::string etag)
      : fs_(fs),
        key_(std::move(key)),
        shown_(std::move(shown)),
        size_(size),
        etag_(std::move(etag)) {}
  ~S3Reader() override {
    if (cap_ > fs_->read_spare_cap_) {
      fs_->read_spare_ = std::move(buf_);
      fs_->read_spare_cap_ = cap_;
    }
  }

  Err Read(char* buf, size_t n, size_t* got) override {
    *got = 0;
    if (n == 0) return Ok();
    if (pos_ < len_) {
      const size_t k = std::min(n, len_ - pos_);
      std::memcpy(buf, buf_.get() + pos_, k);
      pos_ += k;
      *got = k;
      return Ok();
    }
    if (offset_ >= size_) return Ok();
    // One ranged GET of up to a part, at most 16 MiB (the reader's memory
    // bound; larger GETs only delay the first byte the caller gets), straight
    // into the caller's buffer when it holds it all.
    const size_t want = static_cast<size_t>(std::min<int64_t>(
        size_ - offset_, std::min<int64_t>(fs_->config().part_size, kMaxReadChunk)));
    if (n >= want) {
      if (Err e = Fetch(buf, want); !e.ok()) return e;
      *got = want;
      return Ok();
    }
    if (cap_ < want) {
      // The run's reader buffer when it is big enough, else a new one (not
      // zeroed: Fetch fills what is read).
      if (fs_->read_spare_cap_ >= want) {
        buf_ = std::move(fs_->read_spare_);
        cap_ = fs_->read_spare_cap_;
        fs_->read_spare_cap_ = 0;
      } else {
        buf_.reset(new char[want]);
        cap_ = want;
      }
    }
    if (Err e = Fetch(buf_.get(), want); !e.ok()) return e;
    pos_ = 0;
    len_ = want;
    return Read(buf, n, got);
  }

 private:
  // GETs the next `n` bytes (from offset_) into `dst`.
  Err Fetch(char* dst, size_t n) {
    Request req;
    req.bucket = fs_->config().bucket;
    req.key = key_;
    req.payload = true;
    req.sink_buf = dst;
    req.sink_cap = n;
    req.headers.push_back("Range: bytes=" + std::to_string(offset_) + "-" +
                          std::to_string(offset_ + static_cast<int64_t>(n) - 1));
    if (!etag_.empty()) req.headers.push_back("If-Match: " + etag_);
    Response r;
    const std::string what = "s3: GET " + shown_;
    if (Err e = fs_->Call(req, what, &r); !e.ok()) return e;
    if (r.status != 206 &&
        !(r.status == 200 && offset_ == 0 && static_cast<int64_t>(n) == size_)) {
      return Unavailable(what + ": the server ignored the byte range (HTTP " +
                         std::to_string(r.status) + ")");
    }
    if (r.sunk != n) {
      return Unavailable(what + ": got " + std::to_string(r.sunk) + " of " +
                         std::to_string(n) + " bytes at offset " +
                         std::to_string(offset_));
    }
    offset_ += static_cast<int64_t>(n);
    return Ok();
  }

  S3Fs* const fs_;
  const std::string key_;
  const std::string shown_;
  const int64_t size_;
  const std::string etag_;
  int64_t offset_ = 0;  // of the next byte to fetch
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t pos_ = 0, len_ = 0;
};

Err S3Fs::OpenRead(const Path& file, std::unique_ptr<FileReader>* out) {
  const std::string what = "s3: HEAD " + Shown(file);
  if (file.empty()) return InvalidArgument(what + ": the root is a directory");
  Response r;
  if (Err e = Head(Key(file), what, &r); !e.ok()) return e;
  if (r.status < 200 || r.status > 299) return StatusErr(r.status, what, "");
  EntryInfo info;
  FileInfo(r, &info);
  const std::string* etag = r.Header("etag");
  *out = std::make_unique<S3Reader>(this, Key(file), Shown(file), info.size,
                                    etag != nullptr ? *etag : "");
  return Ok();
}

// ---------------------------------------------------------------------------

class S3Writer : public FileWriter {
 public:
  // `size`: the expected length, -1 if unknown (how much to reserve).
  S3Writer(S3Fs* fs, std::string key, std::string shown, int64_t part_size, int64_t size)
      : fs_(fs),
        key_(std::move(key)),
        shown_(std::move(shown)),
        part_size_(part_size),
        reserve_(size >= 0 && size < part_size ? size : part_size) {
    buf_ = std::move(fs_->spare_);
    buf_.clear();
  }

  ~S3Writer() override {
    buf_.clear();
    if (buf_.capacity() > fs_->spare_.capacity()) fs_->spare_ = std::move(buf_);
    if (published_ || upload_id_.empty()) return;
    // Aborted: the parts go, no object appears. Best effort: a failure
    // leaves parts the bucket's lifecycle rule must clean.
    Request req;
    req.method = "DELETE";
    req.bucket = fs_->config().bucket;
    req.key = key_;
    req.query = "uploadId=" + UriEncode(upload_id_, false);
    // Sent after a cancel too (the writer is destroyed when a cancel ends
    // one of its requests): bounded by timeout_seconds, not by the cancel.
    req.cancellable = false;
    Response r;
    (void)fs_->Call(req, "s3: abort upload of " + shown_, &r);
  }

  Err Write(const char* data, size_t n) override {
    if (!failed_.ok()) return failed_;
    if (published_) return FailedPrecondition("s3: " + shown_ + ": already published");
    while (n > 0) {
      // A full part is sent only once more bytes come: a file of exactly
      // part_size is then one PUT, not a multipart upload of one part.
      if (buf_.size() == static_cast<size_t>(part_size_)) {
        if (Err e = FlushPart(); !e.ok()) return failed_ = e;
      }
      const size_t room = static_cast<size_t>(part_size_) - buf_.size();
      const size_t k = std::min(n, room);
      if (buf_.capacity() < static_cast<size_t>(reserve_)) buf_.reserve(reserve_);
      buf_.append(data, k);
      data += k;
      n -= k;
    }
    return Ok();
  }

  Err Publish(const PublishOptions& options) override {
    if (!failed_.ok()) return failed_;
    if (published_) return FailedPrecondition("s3: " + shown_ + ": already published");
    Request req;
    req.bucket = fs_->config().bucket;
    req.key = key_;
    Response r;
    if (upload_id_.empty()) {
      // One PUT with the metadata.
      req.method = "PUT";
      req.payload = true;
      req.body = buf_.data();
      req.body_size = buf_.size();
      req.headers.push_back("Content-Type: application/octet-stream");
      S3Fs::MetaHeaders(options, &req.headers);
      if (Err e = fs_->Call(req, "s3: PUT " + shown_, &r); !e.ok()) return failed_ = e;
      published_ = true;
      return Ok();
    }
    if (!buf_.empty()) {
      if (Err e = FlushPart(); !e.ok()) return failed_ = e;
    }
    std::string xml = "<CompleteMultipartUpload>";
    for (size_t i = 0; i < etags_.size(); ++i) {
      xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
             etags_[i] + "</ETag></Part>";
    }
    xml += "</CompleteMultipartUpload>";
    req.method = "POST";
    req.query = "uploadId=" + UriEncode(upload_id_, false);
    req.body = xml.data();
    req.body_size = xml.size();
    req.headers.push_back("Content-Type: application/xml");
    if (Err e = fs_->Call(req, "s3: complete upload of " + shown_, &r); !e.ok()) {
      return failed_ = e;
    }
    published_ = true;
    if ((options.mtime_ns < 0 && !options.sha256) || total_ > kMaxCopyObject) return Ok();
    // The metadata, known only now: a copy of the object onto itself.
    Request copy;
    copy.method = "PUT";
    copy.bucket = fs_->config().bucket;
    copy.key = key_;
    copy.headers.push_back("x-amz-copy-source: /" + UriEncode(copy.bucket, false) + "/" +
                           UriEncode(key_, true));
    copy.headers.push_back("x-amz-metadata-directive: REPLACE");
    copy.headers.push_back("Content-Type: application/octet-stream");
    S3Fs::MetaHeaders(options, &copy.headers);
    Response cr;
    return fs_->Call(copy, "s3: set metadata of " + shown_, &cr);
  }

 private:
  Err FlushPart() {
    if (upload_id_.empty()) {
      Request init;
      init.method = "POST";
      init.bucket = fs_->config().bucket;
      init.key = key_;
      init.query = "uploads";
      init.headers.push_back("Content-Type: application/octet-stream");
      Response r;
      const std::string what = "s3: start upload of " + shown_;
      if (Err e = fs_->Call(init, what, &r); !e.ok()) return e;
      upload_id_ = s3xml::ParseInitiateMultipartUpload(r.body);
      if (upload_id_.empty()) return Unavailable(what + ": no UploadId in the reply");
    }
    if (etags_.size() >= static_cast<size_t>(kS3MaxParts)) {
      // One object over S3's limits, not a full destination (see NoRoom).
      return FailedPrecondition("s3: PUT " + shown_ + ": larger than " +
                                std::to_string(kS3MaxParts) + " parts of " +
                                std::to_string(part_size_) + " bytes");
    }
    Request part;
    part.method = "PUT";
    part.bucket = fs_->config().bucket;
    part.key = key_;
    part.payload = true;
    part.query = "partNumber=" + std::to_string(etags_.size() + 1) +
                 "&uploadId=" + UriEncode(upload_id_, false);
    part.body = buf_.data();
    part.body_size = buf_.size();
    Response r;
    const std::string what =
        "s3: PUT " + shown_ + " part " + std::to_string(etags_.size() + 1);
    if (Err e = fs_->Call(part, what, &r); !e.ok()) return e;
    const std::string* etag = r.Header("etag");
    if (etag == nullptr || etag->empty())
      return Unavailable(what + ": no ETag in the reply");
    std::string escaped;
    for (char c : *etag) {
      if (c == '&')
        escaped += "&amp;";
      else if (c == '<')
        escaped += "&lt;";
      else if (c == '>')
        escaped += "&gt;";
      else if (c == '"')
        escaped += "&quot;";
      else
        escaped += c;
    }
    etags_.push_back(std::move(escaped));
    total_ += static_cast<int64_t>(buf_.size());
    buf_.clear();
    return Ok();
  }

  S3Fs* const fs_;
  const std::string key_;
  const std::string shown_;
  const int64_t part_size_;
  const int64_t reserve_;
  std::string buf_;  // at most one part
  std::string upload_id_;
  std::vector<std::string> etags_;  // of the parts sent, XML-escaped
  int64_t total_ = 0;               // bytes in the parts sent
  bool published_ = false;
  Err failed_;
};

Err S3Fs::Create(const Path& file, int64_t size, std::unique_ptr<FileWriter>* out) {
  if (file.empty()) return InvalidArgument("s3: the root is a directory, not a file");
  // S3 allows 10,000 parts: a known large size gets larger parts.
  int64_t part = c_.part_size;
  if (size > 0) part = std::max(part, (size + kS3MaxParts - 1) / kS3MaxParts);
  if (part > kS3MaxPartSize) {
    return FailedPrecondition("s3: PUT " + Shown(file) + ": " + std::to_string(size) +
                              " bytes is more than S3's largest object");
  }
  *out = std::make_unique<S3Writer>(this, Key(file), Shown(file), part, size);
  return Ok();
}

Err S3Fs::CopyFrom(EndpointFs& source, const Path& src, const Path& dst,
                   const PublishOptions& options) {
  auto* other = dynamic_cast<S3Fs*>(&source);
  if (other == nullptr) return {TIMER_AP_UNIMPLEMENTED, "s3: the source is not S3"};
  const S3Config& o = other->config();
  if (o.endpoint != c_.endpoint || o.region != c_.region ||
      o.access_key_id != c_.access_key_id ||
      o.secret_access_key != c_.secret_access_key || o.path_style != c_.path_style) {
    return {TIMER_AP_UNIMPLEMENTED, "s3: another server or other credentials"};
  }
  if (src.empty() || dst.empty()) return InvalidArgument("s3: copy of the root");
  const std::string what = "s3: copy " + Shown(src) + " to " + Shown(dst);
  Response head;
  if (Err e = other->Head(other->Key(src), what, &head); !e.ok()) return e;
  if (head.status < 200 || head.status > 299) return StatusErr(head.status, what, "");
  EntryInfo info;
  FileInfo(head, &info);
  if (info.size > kMaxCopyObject) {
    return {TIMER_AP_UNIMPLEMENTED, "s3: larger than one CopyObject copies"};
  }
  PublishOptions meta = options;
  if (!meta.sha256) meta.sha256 = info.sha256;  // the same bytes
  Request req;
  req.method = "PUT";
  req.bucket = c_.bucket;
  req.key = Key(dst);
  req.payload = true;  // the server copies for as long as it takes
  req.headers.push_back("x-amz-copy-source: /" + UriEncode(o.bucket, false) + "/" +
                        UriEncode(other->Key(src), true));
  if (const std::string* etag = head.Header("etag")) {
    req.headers.push_back("x-amz-copy-source-if-match: " + *etag);
  }
  req.headers.push_back("x-amz-metadata-directive: REPLACE");
  req.headers.push_back("Content-Type: application/octet-stream");
  MetaHeaders(meta, &req.headers);
  Response r;
  return Call(req, what, &r);
}

// ---------------------------------------------------------------------------

// An AWS shared credentials file: [profile] aws_access_key_id = ...,
// aws_secret_access_key = ... .
Err ReadCredentialsFile(const std::string& field, const std::string& path,
                        const std::string& profile, S3Config* c) {
  std::string text;
  if (Err e = ReadSecretFile(field, path, &text); !e.ok()) return e;
  std::string section;
  bool found = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = Trim(std::string_view(text).substr(start, end - start));
    start = end + 1;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(std::string_view(line).substr(1, line.size() - 2));
      found = found || section == profile;
      continue;
    }
    if (section != profile) continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = Trim(std::string_view(line).substr(0, eq));
    const std::string v = Trim(std::string_view(line).substr(eq + 1));
    if (k == "aws_access_key_id") c->access_key_id = v;
    if (k == "aws_secret_access_key") c->secret_access_key = v;
  }
  if (!found)
    return InvalidArgument(field + ": " + path + " has no [" + profile + "] profile");
  if (c->access_key_id.empty() || c->secret_access_key.empty()) {
    return InvalidArgument(field + ": profile [" + profile + "] of " + path +
                           " needs aws_access_key_id and aws_secret_access_key");
  }
  return Ok();
}

bool LoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" ||
         host.rfind("127.", 0) == 0;
}

// Checks and normalises the endpoint URL into scheme://host[:port][/path].
Err CheckEndpointUrl(const std::string& field, const std::string& url, bool allow_http,
                     std::string* out) {
  const net::UrlHandle hold(curl_url());
  CURLU* const u = hold.get();
  if (u == nullptr) return Internal(field + ": out of memory");
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return InvalidArgument(field + ": not a URL");
  }
  auto part = [&](CURLUPart p) -> std::string {
    char* v = nullptr;
    std::string s;
    if (curl_url_get(u, p, &v, 0) == CURLUE_OK && v != nullptr) s = v;
    curl_free(v);
    return s;
  };
  const std::string scheme = part(CURLUPART_SCHEME);
  const std::string host = part(CURLUPART_HOST);
  if (scheme != "http" && scheme != "https") {
    return InvalidArgument(field + ": must be an http:// or https:// URL");
  }
  if (!part(CURLUPART_USER).empty() || !part(CURLUPART_PASSWORD).empty()) {
    return InvalidArgument(
        field +
        ": must not hold credentials (use access_key_id and secret_access_key_file)");
  }
  if (!part(CURLUPART_QUERY).empty() || !part(CURLUPART_FRAGMENT).empty()) {
    return InvalidArgument(field + ": must not have a query or fragment");
  }
  if (host.empty()) return InvalidArgument(field + ": has no host");
  if (scheme == "http" && !allow_http && !LoopbackHost(host)) {
    return InvalidArgument(
        field +
        ": plain http is allowed for a loopback host only (data and "
        "signatures would cross the network in clear); use https, or set "
        "allow_insecure_http = true");
  }
  std::string path = part(CURLUPART_PATH);
  while (!path.empty() && path.back() == '/') path.pop_back();
  const std::string port = part(CURLUPART_PORT);
  *out = scheme + "://" + host + (port.empty() ? "" : ":" + port) + path;
  return Ok();
}

bool ValidBucket(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
          c == '_' || (c >= 'A' && c <= 'Z'))) {
      return false;
    }
  }
  return true;
}

Err S3EndpointImpl::Open(const CancelCheck& cancelled,
                         std::unique_ptr<EndpointFs>* out) const {
  net::InitCurlOnce();
  net::EasyHandle h(curl_easy_init());
  if (!h) return Internal("s3: curl_easy_init failed");
  *out = std::make_unique<S3Fs>(config_, std::move(h), cancelled);
  return Ok();
}

}  // namespace

std::shared_ptr<const RemoteEndpoint> MakeS3Endpoint(S3Config config) {
  return std::make_shared<S3EndpointImpl>(std::move(config));
}

std::string S3KeyForTesting(const S3Config& config, const Path& path) {
  return config.prefix + Join(path);
}

Err ParseS3Endpoint(FieldReader& r, std::shared_ptr<const RemoteEndpoint>* out) {
  net::InitCurlOnce();
  S3Config c;
  const std::string endpoint = r.String("endpoint", "", true);
  c.region = r.String("region", c.region);
  c.bucket = r.String("bucket", "", true);
  std::string prefix = r.String("prefix", "");
  c.access_key_id = r.String("access_key_id", "");
  const std::string secret_file = r.String("secret_access_key_file", "");
  const std::string credentials_file = r.String("credentials_file", "");
  const std::string profile = r.String("profile", "default");
  c.ca_file = r.String("ca_file", "");
  c.path_style = r.Bool("path_style", false);
  c.allow_insecure_http = r.Bool("allow_insecure_http", false);
  c.timeout_seconds = r.Int("timeout_seconds", c.timeout_seconds, 1, 3600);
  c.part_size = r.Int("part_size", c.part_size, kS3MinPartSize, kS3MaxPartSizeConfig);
  c.list_page_size = r.Int("list_page_size", c.list_page_size, 1, 1000);
  c.max_keys_per_run =
      r.Int("max_keys_per_run", c.max_keys_per_run, 1, int64_t{1000000000});
  c.max_keys_field = r.Name("max_keys_per_run");
  if (!r.err().ok()) return r.err();
  if (Err e = CheckEndpointUrl(r.Name("endpoint"), endpoint, c.allow_insecure_http,
                               &c.endpoint);
      !e.ok()) {
    return e;
  }
  if (c.region.empty() || c.region.size() > 64 ||
      c.region.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") !=
          std::string::npos) {
    return InvalidArgument(r.Name("region") + ": must be a region name like us-east-1");
  }
  if (!ValidBucket(c.bucket)) {
    return InvalidArgument(r.Name("bucket") +
                           ": must be 3 to 63 letters, digits, '.', '-' or '_'");
  }
  // The prefix is the root: "a/b" and "/a/b/" both mean keys "a/b/...".
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (!prefix.empty()) {
    size_t start = 0;
    while (start <= prefix.size()) {
      size_t end = prefix.find('/', start);
      if (end == std::string::npos) end = prefix.size();
      if (!ValidComponent(std::string_view(prefix).substr(start, end - start))) {
        return InvalidArgument(r.Name("prefix") +
                               ": components must not be empty, '.' or '..'");
      }
      start = end + 1;
    }
    prefix += '/';
  }
  c.prefix = prefix;
  if (!c.ca_file.empty() && ::access(c.ca_file.c_str(), R_OK) != 0) {
    return InvalidArgument(r.Name("ca_file") + ": cannot read " + c.ca_file);
  }
  if (!c.ca_file.empty() && c.endpoint.rfind("https://", 0) != 0) {
    return InvalidArgument(r.Name("ca_file") + ": only for an https endpoint");
  }
  if (!credentials_file.empty()) {
    if (!c.access_key_id.empty() || !secret_file.empty()) {
      return InvalidArgument(r.Name("credentials_file") +
                             ": give either it or access_key_id and "
                             "secret_access_key_file, not both");
    }
    if (Err e = ReadCredentialsFile(r.Name("credentials_file"), credentials_file, profile,
                                    &c);
        !e.ok()) {
      return e;
    }
  } else {
    if (c.access_key_id.empty() || secret_file.empty()) {
      return InvalidArgument(r.prefix() +
                             ": needs access_key_id and secret_access_key_file, or "
                             "credentials_file");
    }
    std::string secret;
    if (Err e = ReadSecretFile(r.Name("secret_access_key_file"), secret_file, &secret);
        !e.ok()) {
      return e;
    }
    c.secret_access_key = Trim(secret);
    if (c.secret_access_key.empty()) {
      return InvalidArgument(r.Name("secret_access_key_file") + ": " + secret_file +
                             " is empty");
    }
  }
  *out = MakeS3Endpoint(std::move(c));
  return Ok();
}

}  // namespace timer::plugins::transfer
