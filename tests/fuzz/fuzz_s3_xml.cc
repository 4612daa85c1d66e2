// Fuzzes the parsers of what an S3-compatible server sends back
// (plugins/transfer/s3_xml.h): a ListObjectsV2 page, an <Error> document,
// an InitiateMultipartUpload result, and the LastModified times and sizes
// inside a listing. A server may send any bytes; none may crash a parser,
// and what a parser returns must hold together.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "s3_xml.h"

namespace s3xml = timer::plugins::transfer::s3xml;

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_s3_xml: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);

  s3xml::ListPage page;
  std::string why;
  if (s3xml::ParseListObjectsV2(xml, &page, &why)) {
    Check(!page.truncated || !page.next_token.empty(), "truncated page without a token");
    for (const s3xml::ListedObject& o : page.objects) {
      Check(o.size >= 0, "negative size");
      Check(o.mtime_ns >= -1, "mtime below -1");
      Check(o.key.size() <= size, "a key longer than the reply");
    }
  } else {
    Check(!why.empty(), "a refused listing without a reason");
  }

  s3xml::ErrorDoc error;
  if (s3xml::ParseError(xml, &error)) {
    Check(error.code.size() <= size && error.message.size() <= size,
          "an error longer than the reply");
  }

  const std::string upload_id = s3xml::ParseInitiateMultipartUpload(xml);
  Check(upload_id.size() <= size, "an upload id longer than the reply");

  // The scalar parsers on the raw bytes too.
  const int64_t t = s3xml::ParseIsoTime(xml);
  Check(t >= -1, "a time below -1");
  int64_t n = -1;
  if (s3xml::ParseInt64(xml, &n)) Check(n >= 0, "a negative integer");
  return 0;
}
