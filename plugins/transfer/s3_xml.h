// s3_xml: the parsers of the XML bodies an S3-compatible server sends back
// (ListObjectsV2 pages, <Error> documents, also those CopyObject and
// CompleteMultipartUpload send with HTTP 200, InitiateMultipartUpload
// results), apart from the HTTP code in s3_fs.cc so
// that they can be fuzzed alone (tests/fuzz/fuzz_s3_xml.cc).
//
// Everything here is outside input: a server may send any bytes. The
// parsers use pugixml, which never loads external entities or a DTD, keep
// what they return bounded by what they were given (the caller bounds that:
// s3_fs reads at most 8 MiB of XML), and report malformed input as a
// failure, never by crashing. They check the document's shape only: which
// keys are inside the endpoint's prefix is s3_fs's business (confinement).
//
// Thread-safety: plain functions without shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace timer::plugins::transfer::s3xml {

// One <Contents> of a listing.
struct ListedObject {
  std::string key;
  int64_t size = 0;       // 0 when absent or not a number
  int64_t mtime_ns = -1;  // LastModified; -1 when absent or not a time
};

// A ListObjectsV2 page (<ListBucketResult>).
struct ListPage {
  std::vector<ListedObject> objects;
  std::vector<std::string> common_prefixes;  // <CommonPrefixes><Prefix>
  bool truncated = false;                    // <IsTruncated>true
  std::string next_token;                    // <NextContinuationToken>
};

// Parses a ListObjectsV2 reply. False, with *why, when it is not XML or has
// no <ListBucketResult>, or says it is truncated without a continuation
// token.
bool ParseListObjectsV2(std::string_view xml, ListPage* out, std::string* why);

// An S3 <Error> document: <Code> and <Message> as sent (not yet made
// printable). False when `xml` is not one.
struct ErrorDoc {
  std::string code;
  std::string message;
};
bool ParseError(std::string_view xml, ErrorDoc* out);

// The UploadId of an <InitiateMultipartUploadResult>; "" when absent.
std::string ParseInitiateMultipartUpload(std::string_view xml);

// "2026-12-05T21:00:00.000Z" (LastModified) in ns since the epoch; -1 when
// it is not such a time.
int64_t ParseIsoTime(std::string_view s);

// A non-negative decimal integer that fits int64 (no sign, no space).
bool ParseInt64(std::string_view s, int64_t* out);

}  // namespace timer::plugins::transfer::s3xml
