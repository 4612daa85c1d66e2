#include "s3_xml.h"

#include <time.h>

#include <cstdio>
#include <limits>
#include <pugixml.hpp>

namespace timer::plugins::transfer::s3xml {
namespace {

// Parses `xml` into `doc`; pugixml's defaults (no DTD is ever loaded).
bool Load(std::string_view xml, pugi::xml_document* doc) {
  return !xml.empty() && static_cast<bool>(doc->load_buffer(xml.data(), xml.size()));
}

}  // namespace

bool ParseInt64(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const int d = c - '0';
    // Nanosecond times take 19 digits; past int64 is no number.
    if (v > (std::numeric_limits<int64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

int64_t ParseIsoTime(std::string_view sv) {
  const std::string s(sv.substr(0, 64));
  struct tm tm = {};
  int frac = 0;
  int ms = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &frac) < 6) {
    return -1;
  }
  if (frac > 0 && s.size() > static_cast<size_t>(frac) + 1 && s[frac] == '.') {
    if (std::sscanf(s.c_str() + frac + 1, "%3d", &ms) != 1 || ms < 0) ms = 0;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const time_t t = timegm(&tm);
  // Before 1970, or past 2262 (where nanoseconds leave int64): not a time
  // an S3 server stamps.
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1000000000 - 1;
  if (t < 0 || static_cast<int64_t>(t) > kMaxSeconds) return -1;
  return static_cast<int64_t>(t) * 1000000000 + int64_t{ms} * 1000000;
}

bool ParseListObjectsV2(std::string_view xml, ListPage* out, std::string* why) {
  *out = ListPage{};
  pugi::xml_document doc;
  if (!Load(xml, &doc)) {
    *why = "the server's listing is not XML";
    return false;
  }
  pugi::xml_node root = doc.child("ListBucketResult");
  if (!root) {
    *why = "the server's listing has no ListBucketResult";
    return false;
  }
  for (pugi::xml_node c : root.children("Contents")) {
    ListedObject o;
    o.key = c.child_value("Key");
    if (!ParseInt64(c.child_value("Size"), &o.size)) o.size = 0;
    o.mtime_ns = ParseIsoTime(c.child_value("LastModified"));
    out->objects.push_back(std::move(o));
  }
  for (pugi::xml_node c : root.children("CommonPrefixes")) {
    out->common_prefixes.emplace_back(c.child_value("Prefix"));
  }
  out->truncated = std::string_view(root.child_value("IsTruncated")) == "true";
  if (out->truncated) {
    out->next_token = root.child_value("NextContinuationToken");
    if (out->next_token.empty()) {
      *why = "truncated listing without a continuation token";
      return false;
    }
  }
  return true;
}

bool ParseError(std::string_view xml, ErrorDoc* out) {
  *out = ErrorDoc{};
  pugi::xml_document doc;
  if (!Load(xml, &doc)) return false;
  pugi::xml_node e = doc.child("Error");
  if (!e) return false;
  out->code = e.child_value("Code");
  out->message = e.child_value("Message");
  return true;
}

std::string ParseInitiateMultipartUpload(std::string_view xml) {
  pugi::xml_document doc;
  if (!Load(xml, &doc)) return "";
  return doc.child("InitiateMultipartUploadResult").child_value("UploadId");
}

}  // namespace timer::plugins::transfer::s3xml
