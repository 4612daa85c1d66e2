// s3_fs: an endpoint whose storage is a bucket of an S3-compatible server
// (AWS S3, MinIO, Ceph RGW, s3rver), as an EndpointFs (endpoint_fs.h).
//
// Mapping: the endpoint's root is a key prefix ("" or ending in "/"); a path
// is the key prefix + its components joined by "/". A directory is only a
// key prefix: it exists while at least one key is below it, MakeDir does
// nothing, and List is ListObjectsV2 with delimiter "/" (keys are files,
// common prefixes directories). Components are validated before they get
// here (endpoint_fs.h), and names from listings that could not be
// components ("", ".", "..", NUL) are skipped, so no key outside the prefix
// is ever listed, read, written or deleted. S3 has no symbolic links.
//
// Requests are signed by libcurl (CURLOPT_AWS_SIGV4, "aws:amz:<region>:s3").
// Every request carries x-amz-content-sha256, which libcurl signs as the
// payload hash (libcurl 7.88, Debian 12's, computes none for a streamed
// body): over http the SHA-256 of the body, so the payload is signed where
// nothing else protects it; for a PUT over https UNSIGNED-PAYLOAD (TLS
// does, and no pass over the bytes is spent). XML responses are parsed with
// pugixml, which never loads external entities or DTDs.
//
// Atomicity: an object appears whole or not at all. A file up to part_size
// is one PUT at Publish; a larger one a multipart upload (one part buffered
// at a time), completed at Publish and aborted when the writer is destroyed
// unpublished. mtime and SHA-256 are kept as object metadata
// (x-amz-meta-mtime in ns since the epoch, x-amz-meta-sha256 in hex); a
// multipart upload gets them from a CopyObject of the object onto itself
// after completion (objects up to 5 GiB; a larger one keeps none).
//
// Reading: OpenRead HEADs the object, then GETs it in ranges of part_size
// bytes (at most 16 MiB), each with If-Match on the first ETag, so memory
// stays bounded and an object replaced while being read fails the read
// (FAILED_PRECONDITION) instead of mixing two versions.
//
// Bounds: every request has a connect timeout and a stall timeout
// (timeout_seconds with under 1 byte/s) and no redirects are followed;
// requests without a payload also a total timeout. XML responses are read
// up to 8 MiB (and parsed by s3_xml.h). One connection (a libcurl easy
// handle) per EndpointFs, which is one run's. A run lists at most
// max_keys_per_run keys from the endpoint (FAILED_PRECONDITION past it),
// and a listing fails when the server hands back a continuation token it
// already gave (a listing going round in a circle).
//
// Cancellation: every request but the abort of a multipart upload watches
// the run's CancelCheck through libcurl's progress callback, which libcurl
// calls about once a second while waiting: a cancel ends a request in
// flight (connecting, sending, waiting for or reading an answer) within
// about a second, with CANCELLED. The abort is still sent when a cancelled
// writer is destroyed, bounded by timeout_seconds.
//
// A full destination (507, MinIO's XMinioStorageFull and bucket quota, Ceph
// RGW's QuotaExceeded) is RESOURCE_EXHAUSTED, what fail_on_quota_errors
// acts on; one object over the server's size limit (EntityTooLarge, more
// than 10,000 parts) is FAILED_PRECONDITION for that file alone.
//
// Secrets: the secret access key is read from a file (refused when its
// group or others may read it) when the provider starts and is given only to
// libcurl. Errors name the method, the path below the root, the HTTP status
// and S3's error code and message, never a header, signature or key.
//
// Thread-safety: S3Endpoint is immutable once parsed and may be shared; an
// S3Fs and its readers and writers are used by one thread (endpoint_fs.h).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "endpoint_fs.h"
#include "provider_support.h"

namespace timer::plugins::transfer {

// As many as max_files_per_run's default: a run's listings hold a
// directory's entries at a time, so this bounds their memory too.
inline constexpr int64_t kS3DefaultMaxKeysPerRun = 1000000;

// An endpoint's S3 settings, as parsed from its table.
struct S3Config {
  std::string endpoint;  // scheme://host[:port][/path], no trailing '/'
  std::string region = "us-east-1";
  std::string bucket;
  std::string prefix;  // "" or ends with '/'
  std::string access_key_id;
  std::string secret_access_key;  // never logged, described or returned
  std::string ca_file;            // PEM CAs to trust for https; "": the system's
  bool path_style = false;        // https://host/bucket/key, not bucket.host
  bool allow_insecure_http = false;
  int64_t timeout_seconds = 60;
  int64_t part_size = int64_t{16} << 20;
  int64_t list_page_size = 1000;  // max-keys per ListObjectsV2 page
  // Keys and common prefixes one run may list from the endpoint, all
  // listings together (each page counts at least 1).
  int64_t max_keys_per_run = kS3DefaultMaxKeysPerRun;
  std::string max_keys_field = "max_keys_per_run";  // its config key, for messages
};

inline constexpr int64_t kS3MinPartSize = int64_t{5} << 20;  // S3's minimum
inline constexpr int64_t kS3MaxPartSize = int64_t{5} << 30;  // S3's maximum
inline constexpr int64_t kS3MaxPartSizeConfig = int64_t{1} << 30;
inline constexpr int kS3MaxParts = 10000;

// Reads the S3 keys of one [[plugins.transfer.endpoints]] table through `r`
// (the caller's reader, which reads the common keys, id, display_name,
// type, allowed_identities, ..., and calls Finish): endpoint, region,
// bucket, prefix, access_key_id, secret_access_key_file, credentials_file,
// profile, ca_file, path_style, allow_insecure_http, timeout_seconds,
// part_size, list_page_size, max_keys_per_run. Reads the secret now. Errors name the key
// (r.prefix() + ".bucket: ...") and never hold the secret.
Err ParseS3Endpoint(FieldReader& r, std::shared_ptr<const RemoteEndpoint>* out);

// The same from a config already checked (tests, the benchmark).
std::shared_ptr<const RemoteEndpoint> MakeS3Endpoint(S3Config config);

// For tests: the URL and the canonical key of `path` (prefix + components),
// as requests use them.
std::string S3KeyForTesting(const S3Config& config, const Path& path);

}  // namespace timer::plugins::transfer
