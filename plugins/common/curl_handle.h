// curl_handle: what every libcurl client among the providers sets up the
// same way: owning pointers for an easy handle, a header list and a parsed
// URL; the options that keep a request made on a user's behalf inside
// http(s) and on the URL it was given; and the text of a failed transfer.
// Shared by the http provider (plugins/http/http.cc) and the transfer
// provider's S3 endpoints (plugins/transfer/s3_fs.cc); it knows nothing of
// either, nor of timerd (errors are libcurl's own codes and strings).
//
// What stays with each caller: the options only it wants (the http
// provider's CURLOPT_PROXY "" and connect-time allowlist check, S3's
// CURLOPT_PATH_AS_IS and SigV4 signing, timeouts of the whole transfer,
// callbacks and the request's method and body).
//
// Ownership: EasyHandle, HeaderList and UrlHandle own what they point at.
// ApplySafeOptions borrows `errbuf`, which libcurl writes into during
// curl_easy_perform: it must outlive every transfer made on the handle until
// the handle is reset or given another buffer.
//
// Thread-safety: a CURL handle is used by one thread at a time (libcurl's
// rule). InitCurlOnce may be called from any thread; the other functions
// keep no state of their own.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>

namespace timer::net {

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
// An easy handle; its connection cache lives (and keeps connections open)
// as long as it does.
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;

struct HeaderListDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
// Request header lines ("Name: value"); null is the empty list.
using HeaderList = std::unique_ptr<curl_slist, HeaderListDeleter>;

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

// curl_global_init(CURL_GLOBAL_DEFAULT), once per module (each provider is
// its own shared object, with its own copy of this unit): before the first
// handle is made. [thread-safe]
void InitCurlOnce();

// Appends `line` to *list. False when libcurl is out of memory; *list is
// then as it was (curl_slist_append's own result would drop it).
bool AppendHeader(HeaderList* list, const std::string& line);

// What ApplySafeOptions needs from the caller. The strings are read during
// the call only (libcurl copies them).
struct SafeOptions {
  const char* url = nullptr;
  const char* ca_file = nullptr;  // null or "": the system's CA bundle
  long connect_timeout_ms = 0;    // 0: libcurl's default (300 s)
  char* errbuf = nullptr;         // CURL_ERROR_SIZE bytes, cleared; borrowed (see above)
};

// Resets `h` (curl_easy_reset: every option back to its default; the
// connection and DNS caches stay) and sets what every request made here
// needs:
//   - the URL, and http and https as the only protocols, also for a
//     redirect (CURLOPT_PROTOCOLS_STR, CURLOPT_REDIR_PROTOCOLS_STR): no
//     file://, gopher:// or others a user's URL or a server's Location
//     could name;
//   - no redirect followed by libcurl (CURLOPT_FOLLOWLOCATION 0): a caller
//     that follows them checks each hop and sends it itself;
//   - CURLOPT_NOSIGNAL: these are threaded programs; no SIGALRM around
//     name resolution;
//   - the peer's certificate and host name verified (VERIFYPEER 1,
//     VERIFYHOST 2, libcurl's defaults, stated so no caller loses them),
//     against `ca_file` when it is given;
//   - the connect timeout;
//   - the error buffer, cleared, for ErrorText after a failed perform.
// Returns CURLE_OK, or the first code an option was refused with (out of
// memory; a URL over libcurl's 8 MB input limit); the handle must not be
// performed then.
CURLcode ApplySafeOptions(CURL* h, const SafeOptions& options);

// Why a transfer failed: the detailed message libcurl wrote into `errbuf`
// when it wrote one, else curl_easy_strerror(rc). As libcurl wrote it: it
// may name a host, an address or a file, and a caller that shows it to
// someone other than the operator cleans it first.
std::string ErrorText(const char* errbuf, CURLcode rc);

}  // namespace timer::net
