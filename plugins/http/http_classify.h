// How the http provider classes a failed request (ABI 1.2 error classes).
// One function, so the host's reading of the class is wired in one place.
// Plain functions; thread-safe.
#pragma once

#include <curl/curl.h>

#include <string_view>

#include "timer/action_provider.h"

namespace timer::plugins::http {

// `curl_code` is the transfer's result, `http_status` the last response's
// status (0 when none came). Connect errors, timeouts, 408, 425, 429 and
// 5xx are TRANSIENT; 401 and 403 NEEDS_ATTENTION (credentials); a TLS
// certificate that does not verify NEEDS_ATTENTION; other 4xx and 3xx
// PERMANENT. UNSPECIFIED for a success (CURLE_OK with 2xx).
inline timer_ap_error_class Classify(CURLcode curl_code, long http_status) {
  if (curl_code == CURLE_OK) {
    if (http_status >= 200 && http_status < 300) return TIMER_AP_ERROR_CLASS_UNSPECIFIED;
    if (http_status == 401 || http_status == 403)
      return TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION;
    if (http_status == 408 || http_status == 425 || http_status == 429 ||
        (http_status >= 500 && http_status < 600)) {
      return TIMER_AP_ERROR_CLASS_TRANSIENT;
    }
    return TIMER_AP_ERROR_CLASS_PERMANENT;
  }
  switch (curl_code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_AGAIN:
      return TIMER_AP_ERROR_CLASS_TRANSIENT;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      return TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION;
    default:
      return TIMER_AP_ERROR_CLASS_PERMANENT;
  }
}

inline std::string_view ClassName(timer_ap_error_class c) {
  switch (c) {
    case TIMER_AP_ERROR_CLASS_PERMANENT:
      return "permanent";
    case TIMER_AP_ERROR_CLASS_TRANSIENT:
      return "transient";
    case TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION:
      return "needs_attention";
    default:
      return "";
  }
}

}  // namespace timer::plugins::http
