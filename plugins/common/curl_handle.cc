#include "curl_handle.h"

#include <mutex>

namespace timer::net {

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool AppendHeader(HeaderList* list, const std::string& line) {
  curl_slist* n = curl_slist_append(list->get(), line.c_str());
  if (n == nullptr) return false;
  // n is the same list (the line was added at its end), or a new one-line
  // list when *list was empty: either way *list now owns it.
  (void)list->release();
  list->reset(n);
  return true;
}

CURLcode ApplySafeOptions(CURL* h, const SafeOptions& o) {
  curl_easy_reset(h);
  if (o.errbuf != nullptr) {
    o.errbuf[0] = '\0';
    if (CURLcode rc = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, o.errbuf);
        rc != CURLE_OK) {
      return rc;
    }
  }
  CURLcode rc = curl_easy_setopt(h, CURLOPT_URL, o.url);
  // Each later option only if every earlier one took.
  auto set = [&](CURLoption opt, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, value);
  };
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_SSL_VERIFYPEER, 1L);
  set(CURLOPT_SSL_VERIFYHOST, 2L);
  if (o.ca_file != nullptr && o.ca_file[0] != '\0') set(CURLOPT_CAINFO, o.ca_file);
  set(CURLOPT_CONNECTTIMEOUT_MS, o.connect_timeout_ms);
  return rc;
}

std::string ErrorText(const char* errbuf, CURLcode rc) {
  if (errbuf != nullptr && errbuf[0] != '\0') return errbuf;
  return curl_easy_strerror(rc);
}

}  // namespace timer::net
