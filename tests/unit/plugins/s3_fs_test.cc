// The S3 EndpointFs (plugins/transfer/s3_fs.h) against s3rver, a real
// S3-compatible server (tests/support/s3_server.h), plus its config parsing
// and what it sends, checked with a one-request fake server on loopback.
#include "s3_fs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "s3_server.h"

namespace timer::plugins::transfer {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using timer::testing::S3Server;

S3Server* Server() {
  auto s = S3Server::Get();
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : nullptr;
}

// A prefix of its own for each test, so tests do not see each other.
std::string UniquePrefix() {
  static int n = 0;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string(info->name()) + "-" + std::to_string(++n);
}

S3Config ServerConfig(const std::string& bucket, const std::string& prefix) {
  S3Server* s = Server();
  S3Config c;
  c.endpoint = s != nullptr ? s->endpoint() : "http://127.0.0.1:1";
  c.bucket = bucket;
  c.prefix = prefix.empty() ? "" : prefix + "/";
  c.access_key_id = S3Server::kAccessKeyId;
  c.secret_access_key = S3Server::kSecretAccessKey;
  c.path_style = true;
  c.timeout_seconds = 10;
  c.part_size = kS3MinPartSize;
  return c;
}

std::unique_ptr<EndpointFs> Open(const S3Config& c) {
  std::unique_ptr<EndpointFs> fs;
  Err e = MakeS3Endpoint(c)->Open({}, &fs);
  EXPECT_TRUE(e.ok()) << e.message;
  return fs;
}

std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

Sha256Digest Sha(const std::string& s) {
  Sha256Digest d;
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

// Writes `data` in writes of `chunk` bytes and publishes it.
Err Put(EndpointFs& fs, const Path& p, const std::string& data,
        const PublishOptions& opts = {}, size_t chunk = 1 << 20) {
  std::unique_ptr<FileWriter> w;
  if (Err e = fs.Create(p, static_cast<int64_t>(data.size()), &w); !e.ok()) return e;
  for (size_t off = 0; off < data.size(); off += chunk) {
    if (Err e = w->Write(data.data() + off, std::min(chunk, data.size() - off));
        !e.ok()) {
      return e;
    }
  }
  return w->Publish(opts);
}

// Reads the whole file in reads of `chunk` bytes.
Err Get(EndpointFs& fs, const Path& p, std::string* out, size_t chunk = 100000) {
  out->clear();
  std::unique_ptr<FileReader> r;
  if (Err e = fs.OpenRead(p, &r); !e.ok()) return e;
  std::vector<char> buf(chunk);
  for (;;) {
    size_t got = 0;
    if (Err e = r->Read(buf.data(), buf.size(), &got); !e.ok()) return e;
    if (got == 0) return Ok();
    out->append(buf.data(), got);
  }
}

std::map<std::string, EntryKind> ListAll(EndpointFs& fs, const Path& dir) {
  std::map<std::string, EntryKind> out;
  Err e = fs.List(dir, [&](const EntryInfo& i) {
    EXPECT_TRUE(out.emplace(i.name, i.kind).second) << "listed twice: " << i.name;
    return true;
  });
  EXPECT_TRUE(e.ok()) << e.message;
  return out;
}

// Every file below `dir` on disk (s3rver's data directory), relative.
std::set<std::string> FilesOnDisk(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file()) {
      out.insert(std::filesystem::relative(it->path(), dir).string());
    }
  }
  return out;
}

TEST(S3FsTest, UploadDownloadStatAndMetadata) {
  ASSERT_NE(Server(), nullptr);
  auto fs = Open(ServerConfig(S3Server::kBucketA, UniquePrefix()));
  ASSERT_NE(fs, nullptr);
  EXPECT_FALSE(fs->Encrypted());  // http on loopback
  const std::string data = Bytes(300000, 1);
  PublishOptions opts;
  opts.mtime_ns = 1700000000123456789;
  opts.sha256 = Sha(data);
  ASSERT_TRUE(fs->MakeDir({"d"}).ok());
  Err e = Put(*fs, {"d", "f.bin"}, data, opts, 70000);
  ASSERT_TRUE(e.ok()) << e.message;

  EntryInfo info;
  bool exists = false;
  ASSERT_TRUE(fs->Stat({"d", "f.bin"}, &info, &exists).ok());
  ASSERT_TRUE(exists);
  EXPECT_EQ(info.kind, EntryKind::kFile);
  EXPECT_EQ(info.size, 300000);
  EXPECT_EQ(info.mtime_ns, opts.mtime_ns);
  ASSERT_TRUE(info.sha256.has_value());
  EXPECT_EQ(*info.sha256, Sha(data));

  ASSERT_TRUE(fs->Stat({"d"}, &info, &exists).ok());
  EXPECT_TRUE(exists);
  EXPECT_EQ(info.kind, EntryKind::kDirectory);
  ASSERT_TRUE(fs->Stat({}, &info, &exists).ok());
  EXPECT_TRUE(exists);
  ASSERT_TRUE(fs->Stat({"missing"}, &info, &exists).ok());
  EXPECT_FALSE(exists);
  ASSERT_TRUE(fs->Stat({"missing", "deeper"}, &info, &exists).ok());
  EXPECT_FALSE(exists);

  // Small reads (through the reader's buffer) and large ones (straight in).
  std::string back;
  ASSERT_TRUE(Get(*fs, {"d", "f.bin"}, &back, 4096).ok());
  EXPECT_EQ(back, data);
  ASSERT_TRUE(Get(*fs, {"d", "f.bin"}, &back, 2 << 20).ok());
  EXPECT_EQ(back, data);

  // An empty file; without metadata, no sha256 and the server's time.
  ASSERT_TRUE(Put(*fs, {"empty"}, "").ok());
  ASSERT_TRUE(fs->Stat({"empty"}, &info, &exists).ok());
  EXPECT_TRUE(exists);
  EXPECT_EQ(info.size, 0);
  EXPECT_FALSE(info.sha256.has_value());
  EXPECT_GT(info.mtime_ns, 0);
  ASSERT_TRUE(Get(*fs, {"empty"}, &back).ok());
  EXPECT_EQ(back, "");

  // Replacing a file.
  ASSERT_TRUE(Put(*fs, {"d", "f.bin"}, "new").ok());
  ASSERT_TRUE(Get(*fs, {"d", "f.bin"}, &back).ok());
  EXPECT_EQ(back, "new");

  std::unique_ptr<FileReader> r;
  e = fs->OpenRead({"nope"}, &r);
  EXPECT_EQ(e.code, TIMER_AP_NOT_FOUND) << e.message;
  EXPECT_THAT(e.message, HasSubstr("/nope"));
  EXPECT_THAT(e.message, HasSubstr("404"));
  EXPECT_EQ(fs->FreeBytes({}), -1);
}

TEST(S3FsTest, MultipartUploadAboveThePartSize) {
  ASSERT_NE(Server(), nullptr);
  auto fs = Open(ServerConfig(S3Server::kBucketA, UniquePrefix()));
  ASSERT_NE(fs, nullptr);
  // Three parts: 5 MiB, 5 MiB and the rest.
  const std::string data = Bytes(2 * kS3MinPartSize + 12345, 2);
  PublishOptions opts;
  opts.mtime_ns = 1600000000000000000;
  opts.sha256 = Sha(data);
  Err e = Put(*fs, {"big"}, data, opts, 3 << 20);
  ASSERT_TRUE(e.ok()) << e.message;
  EntryInfo info;
  bool exists = false;
  ASSERT_TRUE(fs->Stat({"big"}, &info, &exists).ok());
  ASSERT_TRUE(exists);
  EXPECT_EQ(info.size, static_cast<int64_t>(data.size()));
  // Set after completion, by a copy onto itself.
  EXPECT_EQ(info.mtime_ns, opts.mtime_ns);
  ASSERT_TRUE(info.sha256.has_value());
  EXPECT_EQ(*info.sha256, Sha(data));
  std::string back;
  ASSERT_TRUE(Get(*fs, {"big"}, &back, 1 << 20).ok());
  EXPECT_TRUE(back == data) << "sizes " << back.size() << " vs " << data.size();

  // The size hint is only a hint: unknown (-1), the same upload.
  std::unique_ptr<FileWriter> w;
  ASSERT_TRUE(fs->Create({"big2"}, -1, &w).ok());
  ASSERT_TRUE(w->Write(data.data(), data.size()).ok());
  ASSERT_TRUE(w->Publish({}).ok());
  ASSERT_TRUE(Get(*fs, {"big2"}, &back, 1 << 20).ok());
  EXPECT_TRUE(back == data);
}

TEST(S3FsTest, AnAbortedUploadLeavesNoObject) {
  S3Server* server = Server();
  ASSERT_NE(server, nullptr);
  const std::string prefix = UniquePrefix();
  auto fs = Open(ServerConfig(S3Server::kBucketA, prefix));
  ASSERT_NE(fs, nullptr);
  const std::string data = Bytes(kS3MinPartSize + 100, 3);
  {
    // Past the first part: a multipart upload was started, then dropped.
    std::unique_ptr<FileWriter> w;
    ASSERT_TRUE(fs->Create({"multi"}, static_cast<int64_t>(data.size()), &w).ok());
    ASSERT_TRUE(w->Write(data.data(), data.size()).ok());
  }
  {
    // Below it: nothing was sent yet.
    std::unique_ptr<FileWriter> w;
    ASSERT_TRUE(fs->Create({"single"}, 10, &w).ok());
    ASSERT_TRUE(w->Write("0123456789", 10).ok());
  }
  EntryInfo info;
  bool exists = true;
  ASSERT_TRUE(fs->Stat({"multi"}, &info, &exists).ok());
  EXPECT_FALSE(exists);
  ASSERT_TRUE(fs->Stat({"single"}, &info, &exists).ok());
  EXPECT_FALSE(exists);
  EXPECT_TRUE(ListAll(*fs, {}).empty());
  // Nor any part left on the server's disk.
  for (const std::string& f : FilesOnDisk(server->data_dir())) {
    EXPECT_THAT(f, Not(HasSubstr(prefix))) << f;
  }
}

TEST(S3FsTest, ListsEveryPageOfADirectoryAndWalksATree) {
  ASSERT_NE(Server(), nullptr);
  S3Config c = ServerConfig(S3Server::kBucketA, UniquePrefix());
  c.list_page_size = 2;  // 9 entries: 5 pages
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  std::map<std::string, EntryKind> want;
  for (int i = 0; i < 6; ++i) {
    const std::string name = "f" + std::to_string(i);
    ASSERT_TRUE(Put(*fs, {name}, name).ok());
    want[name] = EntryKind::kFile;
  }
  for (const char* d : {"a", "b", "c"}) {
    ASSERT_TRUE(Put(*fs, {d, "x"}, "x").ok());
    ASSERT_TRUE(Put(*fs, {d, "sub", "y"}, "y").ok());
    want[d] = EntryKind::kDirectory;
  }
  EXPECT_EQ(ListAll(*fs, {}), want);
  EXPECT_EQ(ListAll(*fs, {"b"}),
            (std::map<std::string, EntryKind>{{"x", EntryKind::kFile},
                                              {"sub", EntryKind::kDirectory}}));
  EXPECT_TRUE(ListAll(*fs, {"missing"}).empty());

  // A recursive walk, as a copier does it.
  std::vector<std::string> files;
  std::function<void(const Path&)> walk = [&](const Path& dir) {
    std::vector<EntryInfo> entries;
    ASSERT_TRUE(fs->List(dir, [&](const EntryInfo& i) {
                    entries.push_back(i);
                    return true;
                  }).ok());
    for (const EntryInfo& i : entries) {
      Path p = dir;
      p.push_back(i.name);
      if (i.kind == EntryKind::kDirectory) {
        walk(p);
      } else {
        std::string s;
        for (const auto& comp : p) s += "/" + comp;
        files.push_back(s);
        EXPECT_EQ(i.size, static_cast<int64_t>(i.name.size()));
        EXPECT_GT(i.mtime_ns, 0);
      }
    }
  };
  walk({});
  EXPECT_EQ(files.size(), 12u);

  // Stopping early.
  int seen = 0;
  ASSERT_TRUE(fs->List({}, [&](const EntryInfo&) { return ++seen < 3; }).ok());
  EXPECT_EQ(seen, 3);
}

// A run lists at most max_keys_per_run keys from an endpoint, all its
// listings together: past it a listing fails naming the key.
TEST(S3FsTest, ARunListsAtMostMaxKeysPerRun) {
  ASSERT_NE(Server(), nullptr);
  S3Config c = ServerConfig(S3Server::kBucketA, UniquePrefix());
  c.list_page_size = 2;
  c.max_keys_per_run = 7;
  c.max_keys_field = "plugins.transfer.endpoints[3].max_keys_per_run";
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(Put(*fs, {"d", "f" + std::to_string(i)}, "x").ok());
  }
  // 6 keys in 3 pages: within the bound.
  EXPECT_EQ(ListAll(*fs, {"d"}).size(), 6u);
  // The same run again: 12 keys in all, more than 7.
  int seen = 0;
  Err e = fs->List({"d"}, [&](const EntryInfo&) { return ++seen, true; });
  EXPECT_EQ(e.code, TIMER_AP_FAILED_PRECONDITION) << e.message;
  EXPECT_THAT(e.message, HasSubstr("s3: list /d: more than 7 keys"));
  EXPECT_THAT(e.message, HasSubstr("plugins.transfer.endpoints[3].max_keys_per_run"));
  EXPECT_EQ(seen, 0);  // the page over the bound is not handed out
  // Removing a tree lists too, and counts.
  e = fs->Remove({"d"});
  EXPECT_EQ(e.code, TIMER_AP_FAILED_PRECONDITION) << e.message;
  // A new run (a new EndpointFs) starts from 0.
  auto next = Open(c);
  ASSERT_NE(next, nullptr);
  ASSERT_TRUE(next->Remove({"d"}).ok());
}

TEST(S3FsTest, RemovesAFileOrADirectoryWithEverythingInIt) {
  ASSERT_NE(Server(), nullptr);
  S3Config c = ServerConfig(S3Server::kBucketA, UniquePrefix());
  c.list_page_size = 2;
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Put(*fs, {"tree", "f" + std::to_string(i)}, "x").ok());
    ASSERT_TRUE(Put(*fs, {"tree", "sub", "g" + std::to_string(i)}, "y").ok());
  }
  ASSERT_TRUE(Put(*fs, {"tree-sibling"}, "keep").ok());
  ASSERT_TRUE(Put(*fs, {"treefile"}, "keep").ok());
  ASSERT_TRUE(Put(*fs, {"lone"}, "go").ok());

  Err e = fs->Remove({"tree"});
  ASSERT_TRUE(e.ok()) << e.message;
  ASSERT_TRUE(fs->Remove({"lone"}).ok());
  EntryInfo info;
  bool exists = true;
  ASSERT_TRUE(fs->Stat({"tree"}, &info, &exists).ok());
  EXPECT_FALSE(exists);
  EXPECT_EQ(ListAll(*fs, {}),
            (std::map<std::string, EntryKind>{{"tree-sibling", EntryKind::kFile},
                                              {"treefile", EntryKind::kFile}}));
  // Removing what is not there is fine; the root is refused.
  EXPECT_TRUE(fs->Remove({"tree"}).ok());
  EXPECT_EQ(fs->Remove({}).code, TIMER_AP_INVALID_ARGUMENT);
}

TEST(S3FsTest, CopyFromCopiesOnTheServer) {
  ASSERT_NE(Server(), nullptr);
  const std::string prefix = UniquePrefix();
  auto src = Open(ServerConfig(S3Server::kBucketA, prefix));
  auto dst = Open(ServerConfig(S3Server::kBucketB, prefix + "-dst"));
  ASSERT_NE(src, nullptr);
  ASSERT_NE(dst, nullptr);
  const std::string data = Bytes(200000, 4);
  PublishOptions opts;
  opts.sha256 = Sha(data);
  ASSERT_TRUE(Put(*src, {"in", "f"}, data, opts).ok());

  PublishOptions copy_opts;
  copy_opts.mtime_ns = 1500000000000000000;
  Err e = dst->CopyFrom(*src, {"in", "f"}, {"out", "g"}, copy_opts);
  ASSERT_TRUE(e.ok()) << e.message;
  std::string back;
  ASSERT_TRUE(Get(*dst, {"out", "g"}, &back).ok());
  EXPECT_EQ(back, data);
  EntryInfo info;
  bool exists = false;
  ASSERT_TRUE(dst->Stat({"out", "g"}, &info, &exists).ok());
  ASSERT_TRUE(exists);
  EXPECT_EQ(info.mtime_ns, copy_opts.mtime_ns);
  ASSERT_TRUE(info.sha256.has_value());  // the source's, for the same bytes
  EXPECT_EQ(*info.sha256, Sha(data));

  e = dst->CopyFrom(*src, {"in", "missing"}, {"out", "h"}, {});
  EXPECT_EQ(e.code, TIMER_AP_NOT_FOUND) << e.message;

  // Other credentials: the copier must stream instead.
  S3Config other = ServerConfig(S3Server::kBucketB, prefix);
  other.secret_access_key = "another";
  auto dst2 = Open(other);
  e = dst2->CopyFrom(*src, {"in", "f"}, {"out", "g"}, {});
  EXPECT_EQ(e.code, TIMER_AP_UNIMPLEMENTED) << e.message;
}

TEST(S3FsTest, KeysStayBelowThePrefix) {
  S3Server* server = Server();
  ASSERT_NE(server, nullptr);
  const std::string prefix = UniquePrefix();
  // The whole bucket, to plant keys around the endpoint's prefix.
  auto bucket = Open(ServerConfig(S3Server::kBucketA, ""));
  ASSERT_NE(bucket, nullptr);
  ASSERT_TRUE(Put(*bucket, {prefix + "x", "outside"}, "no").ok());
  ASSERT_TRUE(Put(*bucket, {prefix + "-other"}, "no").ok());
  ASSERT_TRUE(Put(*bucket, {prefix, "inside"}, "yes").ok());
  ASSERT_TRUE(Put(*bucket, {prefix, "a", "b"}, "yes").ok());
  // (Keys such as "a//b", "./c" or "../d" cannot be planted here: s3rver
  // folds them away; SkipsListedNamesThatAreNoComponents has them.)

  auto fs = Open(ServerConfig(S3Server::kBucketA, prefix));
  ASSERT_NE(fs, nullptr);
  EXPECT_EQ(ListAll(*fs, {}),
            (std::map<std::string, EntryKind>{{"inside", EntryKind::kFile},
                                              {"a", EntryKind::kDirectory}}));
  EXPECT_EQ(ListAll(*fs, {"a"}),
            (std::map<std::string, EntryKind>{{"b", EntryKind::kFile}}));
  ASSERT_TRUE(Put(*fs, {"new", "file"}, "here").ok());
  EXPECT_EQ(S3KeyForTesting(ServerConfig(S3Server::kBucketA, prefix), {"new", "file"}),
            prefix + "/new/file");
  // On the server's disk, the new object is below the prefix.
  bool found = false;
  for (const std::string& f : FilesOnDisk(server->data_dir())) {
    if (f.find("new/file") != std::string::npos) {
      found = true;
      EXPECT_THAT(f, HasSubstr(prefix + "/new/file")) << f;
    }
  }
  EXPECT_TRUE(found);
  // Removing the endpoint's tree leaves the neighbours.
  ASSERT_TRUE(fs->Remove({"a"}).ok());
  EntryInfo info;
  bool exists = false;
  ASSERT_TRUE(bucket->Stat({prefix + "x", "outside"}, &info, &exists).ok());
  EXPECT_TRUE(exists);
  ASSERT_TRUE(bucket->Stat({prefix + "-other"}, &info, &exists).ok());
  EXPECT_TRUE(exists);
}

TEST(S3FsTest, OverHttpsWithAPrivateCa) {
  auto tls = S3Server::GetTls();
  ASSERT_TRUE(tls.ok()) << tls.status();
  S3Config c = ServerConfig(S3Server::kBucketA, UniquePrefix());
  c.endpoint = (*tls)->endpoint();
  c.ca_file = (*tls)->ca_file();
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  EXPECT_TRUE(fs->Encrypted());
  // Uploads over https are UNSIGNED-PAYLOAD; a single PUT and a multipart.
  for (size_t size : {size_t{1000}, size_t(kS3MinPartSize + 1000)}) {
    const std::string data = Bytes(size, 5);
    PublishOptions opts;
    opts.sha256 = Sha(data);
    Err e = Put(*fs, {"f"}, data, opts);
    ASSERT_TRUE(e.ok()) << e.message;
    std::string back;
    ASSERT_TRUE(Get(*fs, {"f"}, &back, 1 << 20).ok());
    EXPECT_TRUE(back == data);
  }
  // The system's CAs do not know this server's: refused, saying why.
  c.ca_file.clear();
  auto untrusted = Open(c);
  EntryInfo info;
  bool exists = false;
  Err e = untrusted->Stat({"f"}, &info, &exists);
  EXPECT_EQ(e.code, TIMER_AP_UNAVAILABLE) << e.message;
  EXPECT_THAT(e.message, HasSubstr("certificate"));
}

TEST(S3FsTest, AnUnknownAccessKeyFailsClearly) {
  ASSERT_NE(Server(), nullptr);
  S3Config c = ServerConfig(S3Server::kBucketA, UniquePrefix());
  c.access_key_id = "NOSUCHKEY";
  c.secret_access_key = "very-secret-value";
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  Err e = Put(*fs, {"f"}, "data");
  EXPECT_EQ(e.code, TIMER_AP_PERMISSION_DENIED) << e.message;
  EXPECT_THAT(e.message, HasSubstr("403"));
  EXPECT_THAT(e.message, HasSubstr("InvalidAccessKeyId"));
  // Credentials: a person must fix them; never retried.
  EXPECT_EQ(e.error_class, TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION);
  EXPECT_THAT(e.message, HasSubstr("/f"));
  EXPECT_THAT(e.message, Not(HasSubstr("very-secret-value")));
  e = fs->List({}, [](const EntryInfo&) { return true; });
  EXPECT_EQ(e.code, TIMER_AP_PERMISSION_DENIED) << e.message;
}

TEST(S3FsTest, AMissingBucketIsNotFound) {
  ASSERT_NE(Server(), nullptr);
  auto fs = Open(ServerConfig("no-such-bucket", ""));
  ASSERT_NE(fs, nullptr);
  Err e = Put(*fs, {"f"}, "data");
  EXPECT_EQ(e.code, TIMER_AP_NOT_FOUND) << e.message;
  EXPECT_THAT(e.message, HasSubstr("NoSuchBucket"));
}

// --- what goes on the wire, against a fake that answers one request --------

std::string HexOf(const unsigned char* d, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kHex[d[i] >> 4];
    s += kHex[d[i] & 15];
  }
  return s;
}

std::string Hmac(const std::string& key, const std::string& data) {
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

// Checks a request head's AWS Signature Version 4 as S3 does, written from
// AWS's description (not libcurl's code): the canonical request (method,
// path, sorted query, the signed headers, the payload hash from
// x-amz-content-sha256), the string to sign and the key derived from
// `secret`. True when the Authorization header's signature matches.
bool VerifySigV4(const std::string& head, const std::string& secret) {
  const size_t line_end = head.find("\r\n");
  const std::string request_line = head.substr(0, line_end);
  const size_t sp1 = request_line.find(' ');
  const size_t sp2 = request_line.rfind(' ');
  const std::string method = request_line.substr(0, sp1);
  const std::string target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  const size_t q = target.find('?');
  const std::string path = target.substr(0, q);
  std::vector<std::string> params;
  if (q != std::string::npos) {
    std::string query = target.substr(q + 1);
    size_t start = 0;
    while (start <= query.size()) {
      size_t amp = query.find('&', start);
      if (amp == std::string::npos) amp = query.size();
      std::string p = query.substr(start, amp - start);
      if (p.find('=') == std::string::npos) p += "=";
      params.push_back(p);
      start = amp + 1;
    }
  }
  std::sort(params.begin(), params.end());
  std::string canonical_query;
  for (const std::string& p : params) {
    canonical_query += (canonical_query.empty() ? "" : "&") + p;
  }
  std::map<std::string, std::string> headers;
  size_t at = line_end + 2;
  while (at < head.size()) {
    const size_t end = head.find("\r\n", at);
    if (end == at || end == std::string::npos) break;
    const std::string line = head.substr(at, end - at);
    at = end + 2;
    const size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    headers[name] = value;
  }
  const std::string auth = headers["authorization"];
  auto field = [&](const std::string& key) {
    const size_t b = auth.find(key + "=");
    if (b == std::string::npos) return std::string();
    const size_t e = auth.find_first_of(", ", b);
    return auth.substr(b + key.size() + 1, e - b - key.size() - 1);
  };
  const std::string credential = field("Credential");
  const std::string signed_headers = field("SignedHeaders");
  const std::string signature = field("Signature");
  std::string canonical_headers;
  size_t start = 0;
  while (start <= signed_headers.size()) {
    size_t semi = signed_headers.find(';', start);
    if (semi == std::string::npos) semi = signed_headers.size();
    const std::string name = signed_headers.substr(start, semi - start);
    canonical_headers += name + ":" + headers[name] + "\n";
    start = semi + 1;
  }
  const std::string canonical = method + "\n" + path + "\n" + canonical_query + "\n" +
                                canonical_headers + "\n" + signed_headers + "\n" +
                                headers["x-amz-content-sha256"];
  const size_t slash = credential.find('/');
  const std::string scope = credential.substr(slash + 1);  // date/region/s3/aws4_request
  std::vector<std::string> parts;
  for (size_t b = 0; b <= scope.size();) {
    size_t e = scope.find('/', b);
    if (e == std::string::npos) e = scope.size();
    parts.push_back(scope.substr(b, e - b));
    b = e + 1;
  }
  if (parts.size() != 4) return false;
  const std::string to_sign = "AWS4-HMAC-SHA256\n" + headers["x-amz-date"] + "\n" +
                              scope + "\n" + HexOf(Sha(canonical).data(), 32);
  std::string key = Hmac("AWS4" + secret, parts[0]);
  key = Hmac(key, parts[1]);
  key = Hmac(key, parts[2]);
  key = Hmac(key, parts[3]);
  const std::string sig = Hmac(key, to_sign);
  return HexOf(reinterpret_cast<const unsigned char*>(sig.data()), sig.size()) ==
         signature;
}

// Answers requests on 127.0.0.1 with `replies`, one each, in order, over
// as many connections as the client opens; an empty reply holds the
// connection unanswered until the client closes it (then serves the next
// on a new one) or the server is destroyed. Records each request (head and
// body).
class FakeS3 {
 public:
  explicit FakeS3(std::vector<std::string> replies) : replies_(std::move(replies)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    EXPECT_EQ(::pipe2(stop_, O_CLOEXEC), 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeS3() {
    ::write(stop_[1], "x", 1);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The requests, once every reply was sent.
  std::vector<std::string> requests() {
    if (thread_.joinable()) thread_.join();
    return requests_;
  }
  std::string request() {
    auto r = requests();
    return r.empty() ? "" : r[0];
  }
  // Waits (up to 30 s) until `n` requests were received (whole, before
  // their replies); false if they were not.
  bool WaitReceived(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return received_ >= n; });
  }
  // Waits (up to 30 s) until `n` replies were written.
  bool WaitSent(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return sent_ >= n; });
  }

 private:
  // Waits for `fd` to be readable; false when stopped or after 30 s.
  bool Wait(int fd) {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    return ::poll(p, 2, 30000) > 0 && !(p[1].revents & POLLIN) && (p[0].revents != 0);
  }
  void Serve() {
    int c = -1;
    size_t next = 0;
    char buf[65536];
    while (next < replies_.size()) {
      if (c < 0) {
        if (!Wait(fd_)) return;
        c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
      }
      std::string req;
      bool closed = false;
      while (req.find("\r\n\r\n") == std::string::npos) {
        if (!Wait(c)) break;
        const ssize_t k = ::read(c, buf, sizeof(buf));
        if (k <= 0) {
          closed = true;
          break;
        }
        req.append(buf, static_cast<size_t>(k));
      }
      if (closed && req.empty()) {
        ::close(c);
        c = -1;
        continue;
      }
      const size_t head_end = req.find("\r\n\r\n");
      if (head_end == std::string::npos) break;
      if (req.find("Expect: 100-continue") < head_end) {
        const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
        ::write(c, cont.data(), cont.size());
      }
      const size_t cl = req.find("Content-Length: ");
      if (cl < head_end) {
        const size_t want = head_end + 4 + std::stoul(req.substr(cl + 16));
        while (req.size() < want && Wait(c)) {
          const ssize_t k = ::read(c, buf, sizeof(buf));
          if (k <= 0) break;
          req.append(buf, static_cast<size_t>(k));
        }
      }
      requests_.push_back(std::move(req));
      Count(&received_);
      const std::string& reply = replies_[next++];
      if (reply.empty()) {
        // Holds the connection until the client closes it or the test ends.
        pollfd q[2] = {{stop_[0], POLLIN, 0}, {c, POLLIN, 0}};
        if (::poll(q, 2, 30000) <= 0 || (q[0].revents & POLLIN) ||
            ::read(c, buf, sizeof(buf)) != 0) {
          break;
        }
        ::close(c);
        c = -1;
        continue;
      }
      ::write(c, reply.data(), reply.size());
      Count(&sent_);
    }
    if (c >= 0) ::close(c);
  }
  void Count(size_t* n) {
    std::lock_guard<std::mutex> lock(mu_);
    ++*n;
    cv_.notify_all();
  }

  const std::vector<std::string> replies_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t received_ = 0;  // guarded by mu_
  size_t sent_ = 0;      // guarded by mu_
  int fd_ = -1;
  int port_ = 0;
  int stop_[2] = {-1, -1};
  std::vector<std::string> requests_;
  std::thread thread_;
};

// An HTTP/1.1 reply with `head` lines and `body`.
std::string Reply(const std::string& status, const std::string& head,
                  const std::string& body = "") {
  return "HTTP/1.1 " + status + "\r\n" + head +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(S3FsWireTest, SignsWithSigV4AndKeepsTheSecretOutOfErrors) {
  const std::string secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  const std::string body =
      "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>denied for " +
      secret + "</Message><SignatureProvided>abc</SignatureProvided></Error>";
  FakeS3 server({Reply("403 Forbidden", "Content-Type: application/xml\r\n", body)});
  S3Config c;
  c.endpoint = server.endpoint();
  c.region = "eu-west-3";
  c.bucket = "bkt";
  c.prefix = "root/";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = secret;
  c.path_style = true;
  c.timeout_seconds = 10;
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  Err e = fs->List({"dir"}, [](const EntryInfo&) { return true; });
  EXPECT_EQ(e.code, TIMER_AP_PERMISSION_DENIED);
  EXPECT_THAT(e.message, HasSubstr("/dir"));
  EXPECT_THAT(e.message, HasSubstr("403"));
  EXPECT_THAT(e.message, HasSubstr("AccessDenied"));
  EXPECT_THAT(e.message, Not(HasSubstr(secret)));
  EXPECT_THAT(e.message, Not(HasSubstr("abc")));  // the signature element

  const std::string req = server.request();
  EXPECT_THAT(req, HasSubstr("GET /bkt/?"));
  EXPECT_THAT(req, HasSubstr("prefix=root%2Fdir%2F"));
  EXPECT_THAT(req, HasSubstr("delimiter=%2F"));
  EXPECT_THAT(req, HasSubstr("Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
  EXPECT_THAT(req, HasSubstr("/eu-west-3/s3/aws4_request"));
  EXPECT_THAT(req, HasSubstr("SignedHeaders=host;x-amz-content-sha256;x-amz-date"));
  EXPECT_THAT(req, HasSubstr("Signature="));
  // A GET has no payload: the empty body's hash.
  EXPECT_THAT(
      req, HasSubstr("x-amz-content-sha256: "
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  EXPECT_THAT(req, Not(HasSubstr(secret)));
  // The signature is right for the secret, and only for it.
  EXPECT_TRUE(VerifySigV4(req, secret)) << req;
  EXPECT_FALSE(VerifySigV4(req, "another-secret"));
}

TEST(S3FsWireTest, UploadsSignTheirPayloadAndMetadata) {
  FakeS3 server({Reply("200 OK", "ETag: \"x\"\r\n")});
  S3Config c;
  c.endpoint = server.endpoint();
  c.bucket = "bkt";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "s";
  c.path_style = true;
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  PublishOptions opts;
  opts.mtime_ns = 42;
  opts.sha256 = Sha("abc");
  ASSERT_TRUE(Put(*fs, {"a b", "c+d"}, "abc", opts).ok());
  const std::string req = server.request();
  EXPECT_THAT(req, HasSubstr("PUT /bkt/a%20b/c%2Bd HTTP/1.1"));
  // The payload's hash ("abc"), signed.
  EXPECT_THAT(
      req, HasSubstr("x-amz-content-sha256: "
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  EXPECT_THAT(req, HasSubstr("x-amz-content-sha256;x-amz-date;x-amz-meta-mtime"));
  EXPECT_THAT(req, HasSubstr("x-amz-meta-mtime: 42"));
  EXPECT_THAT(
      req, HasSubstr("x-amz-meta-sha256: "
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  EXPECT_THAT(req, HasSubstr("x-amz-meta-mtime;x-amz-meta-sha256"));  // signed too
  EXPECT_THAT(req, HasSubstr("\r\n\r\nabc"));
  EXPECT_TRUE(VerifySigV4(req, "s")) << req;
}

TEST(S3FsWireTest, DestroyingAnUnpublishedMultipartWriterAbortsTheUpload) {
  // s3rver has no AbortMultipartUpload (405), so the requests are checked
  // here: start, part 1, then the abort when the writer goes.
  FakeS3 server({Reply("200 OK", "Content-Type: application/xml\r\n",
                       "<InitiateMultipartUploadResult><UploadId>up/1+x</UploadId>"
                       "</InitiateMultipartUploadResult>"),
                 Reply("200 OK", "ETag: \"e1\"\r\n"), Reply("204 No Content", "")});
  S3Config c;
  c.endpoint = server.endpoint();
  c.bucket = "bkt";
  c.prefix = "root/";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "s";
  c.path_style = true;
  c.part_size = kS3MinPartSize;
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  {
    std::unique_ptr<FileWriter> w;
    ASSERT_TRUE(fs->Create({"f"}, -1, &w).ok());
    const std::string part(kS3MinPartSize + 1, 'x');
    Err e = w->Write(part.data(), part.size());
    ASSERT_TRUE(e.ok()) << e.message;
  }
  const std::vector<std::string> reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].substr(0, reqs[0].find("\r\n")),
            "POST /bkt/root/f?uploads= HTTP/1.1");
  EXPECT_EQ(reqs[1].substr(0, reqs[1].find("\r\n")),
            "PUT /bkt/root/f?partNumber=1&uploadId=up%2F1%2Bx HTTP/1.1");
  EXPECT_EQ(reqs[1].size() - reqs[1].find("\r\n\r\n") - 4,
            static_cast<size_t>(kS3MinPartSize));  // one part, the rest kept
  EXPECT_EQ(reqs[2].substr(0, reqs[2].find("\r\n")),
            "DELETE /bkt/root/f?uploadId=up%2F1%2Bx HTTP/1.1");
  for (const std::string& r : reqs) {
    EXPECT_TRUE(VerifySigV4(r.substr(0, r.find("\r\n\r\n") + 4), "s"))
        << r.substr(0, 300);
  }
}

TEST(S3FsWireTest, AFileOfExactlyOnePartIsOnePut) {
  FakeS3 server({Reply("200 OK", "ETag: \"x\"\r\n")});
  S3Config c;
  c.endpoint = server.endpoint();
  c.bucket = "bkt";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "s";
  c.path_style = true;
  c.part_size = kS3MinPartSize;
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  Err e = Put(*fs, {"f"}, std::string(kS3MinPartSize, 'p'));
  ASSERT_TRUE(e.ok()) << e.message;
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].substr(0, reqs[0].find("\r\n")), "PUT /bkt/f HTTP/1.1");
  EXPECT_EQ(reqs[0].size() - reqs[0].find("\r\n\r\n") - 4,
            static_cast<size_t>(kS3MinPartSize));
}

TEST(S3FsWireTest, AnObjectReplacedWhileReadFailsTheRead) {
  // Each ranged GET is tied to the ETag the HEAD saw (If-Match): a server
  // holding another version answers 412, and the read fails instead of
  // mixing two versions.
  FakeS3 server(
      {"HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 10\r\n\r\n",
       Reply("412 Precondition Failed", "Content-Type: application/xml\r\n",
             "<Error><Code>PreconditionFailed</Code><Message>At least one of the "
             "pre-conditions you specified did not hold</Message></Error>")});
  S3Config c;
  c.endpoint = server.endpoint();
  c.bucket = "bkt";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "s";
  c.path_style = true;
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  std::unique_ptr<FileReader> r;
  Err e = fs->OpenRead({"f"}, &r);
  ASSERT_TRUE(e.ok()) << e.message;
  char buf[64];
  size_t got = 0;
  e = r->Read(buf, sizeof(buf), &got);
  EXPECT_EQ(e.code, TIMER_AP_FAILED_PRECONDITION) << e.message;
  EXPECT_THAT(e.message, HasSubstr("changed while read"));
  EXPECT_EQ(got, 0u);
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_THAT(reqs[0], HasSubstr("HEAD /bkt/f HTTP/1.1"));
  EXPECT_THAT(reqs[1], HasSubstr("GET /bkt/f HTTP/1.1"));
  EXPECT_THAT(reqs[1], HasSubstr("Range: bytes=0-9"));
  EXPECT_THAT(reqs[1], HasSubstr("If-Match: \"v1\""));
}

TEST(S3FsWireTest, SkipsListedNamesThatAreNoComponents) {
  // A server (or a bucket shared with other writers) may list keys that
  // are no path below the root: outside the prefix, or with empty, "." or
  // ".." components. None becomes an entry.
  const std::string body =
      "<?xml version=\"1.0\"?><ListBucketResult>"
      "<Contents><Key>root/ok</Key><Size>2</Size>"
      "<LastModified>2026-01-02T03:04:05.678Z</LastModified></Contents>"
      // Numbers past int64 (and times past 2262 in ns) are no size or time.
      "<Contents><Key>root/huge</Key><Size>9999999999999999999</Size>"
      "<LastModified>9999-12-31T23:59:59.999Z</LastModified></Contents>"
      "<Contents><Key>root/..</Key><Size>1</Size></Contents>"
      "<Contents><Key>root/.</Key><Size>1</Size></Contents>"
      "<Contents><Key>root/</Key><Size>0</Size></Contents>"
      "<Contents><Key>root/a/b</Key><Size>1</Size></Contents>"
      "<Contents><Key>rootx</Key><Size>1</Size></Contents>"
      "<Contents><Key>other/z</Key><Size>1</Size></Contents>"
      "<CommonPrefixes><Prefix>root/dir/</Prefix></CommonPrefixes>"
      "<CommonPrefixes><Prefix>root/../</Prefix></CommonPrefixes>"
      "<CommonPrefixes><Prefix>root//</Prefix></CommonPrefixes>"
      "<CommonPrefixes><Prefix>elsewhere/</Prefix></CommonPrefixes>"
      "<IsTruncated>false</IsTruncated></ListBucketResult>";
  FakeS3 server({Reply("200 OK", "Content-Type: application/xml\r\n", body)});
  S3Config c;
  c.endpoint = server.endpoint();
  c.bucket = "bkt";
  c.prefix = "root/";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "s";
  c.path_style = true;
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  std::vector<EntryInfo> got;
  Err e = fs->List({}, [&](const EntryInfo& i) {
    got.push_back(i);
    return true;
  });
  ASSERT_TRUE(e.ok()) << e.message;
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].name, "ok");
  EXPECT_EQ(got[0].kind, EntryKind::kFile);
  EXPECT_EQ(got[0].size, 2);
  EXPECT_EQ(got[0].mtime_ns, 1767323045678000000);
  EXPECT_EQ(got[1].name, "huge");
  EXPECT_EQ(got[1].size, 0);
  EXPECT_EQ(got[1].mtime_ns, -1);
  EXPECT_EQ(got[2].name, "dir");
  EXPECT_EQ(got[2].kind, EntryKind::kDirectory);
}

// A server that hands back a continuation token the listing already had
// would keep a run listing for ever: the listing fails at the repeat.
TEST(S3FsWireTest, AListingGoingRoundInACircleFails) {
  auto page = [](const std::string& key, const std::string& next) {
    return Reply("200 OK", "Content-Type: application/xml\r\n",
                 "<ListBucketResult><Contents><Key>" + key +
                     "</Key><Size>1</Size></Contents><IsTruncated>true</IsTruncated>"
                     "<NextContinuationToken>" +
                     next + "</NextContinuationToken></ListBucketResult>");
  };
  // The third page hands back the first page's token: three requests, no fourth.
  FakeS3 server({page("a", "A"), page("b", "B"), page("a", "A")});
  S3Config c;
  c.endpoint = server.endpoint();
  c.bucket = "bkt";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "s";
  c.path_style = true;
  c.timeout_seconds = 5;
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  std::vector<std::string> names;
  Err e = fs->List({}, [&](const EntryInfo& i) { return names.push_back(i.name), true; });
  EXPECT_EQ(e.code, TIMER_AP_UNAVAILABLE) << e.message;
  EXPECT_THAT(e.message, HasSubstr("repeated a continuation token"));
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b"}));
  const auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_THAT(reqs[1], HasSubstr("continuation-token=A"));
  EXPECT_THAT(reqs[2], HasSubstr("continuation-token=B"));
}

// Team convention: a full destination is RESOURCE_EXHAUSTED from the writer
// (fail_on_quota_errors acts on the code). S3 says so with 507 or the
// codes below, whatever their status, and CompleteMultipartUpload even
// after HTTP 200; an object over the server's size limit (EntityTooLarge)
// is that file's failure only.
TEST(S3FsWireTest, AFullDestinationIsResourceExhausted) {
  auto error = [](const std::string& status, const std::string& code) {
    return Reply(status, "Content-Type: application/xml\r\n",
                 "<?xml version=\"1.0\"?><Error><Code>" + code +
                     "</Code><Message>no room</Message></Error>");
  };
  struct Case {
    std::string reply;
    timer_ap_code want;
    // The class the error says (unsaid: by its code, run_limits.h ClassOf).
    timer_ap_error_class want_class = TIMER_AP_ERROR_CLASS_UNSPECIFIED;
  };
  const std::vector<Case> cases = {
      {error("507 Insufficient Storage", "XMinioStorageFull"),
       TIMER_AP_RESOURCE_EXHAUSTED},
      {error("507 Insufficient Storage", "SomethingNew"), TIMER_AP_RESOURCE_EXHAUSTED},
      {error("500 Internal Server Error", "XMinioStorageFull"),
       TIMER_AP_RESOURCE_EXHAUSTED},  // older MinIO
      {error("403 Forbidden", "QuotaExceeded"), TIMER_AP_RESOURCE_EXHAUSTED},  // Ceph
      {error("400 Bad Request", "XMinioAdminBucketQuotaExceeded"),
       TIMER_AP_RESOURCE_EXHAUSTED},
      {error("400 Bad Request", "EntityTooLarge"), TIMER_AP_FAILED_PRECONDITION},
      {error("403 Forbidden", "AccessDenied"), TIMER_AP_PERMISSION_DENIED,
       TIMER_AP_ERROR_CLASS_PERMANENT},
      {error("503 Slow Down", "SlowDown"), TIMER_AP_UNAVAILABLE,
       TIMER_AP_ERROR_CLASS_TRANSIENT},
      {error("500 Internal Server Error", "InternalError"), TIMER_AP_UNAVAILABLE,
       TIMER_AP_ERROR_CLASS_TRANSIENT},
      {error("403 Forbidden", "SignatureDoesNotMatch"), TIMER_AP_PERMISSION_DENIED,
       TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION},
  };
  for (const Case& k : cases) {
    FakeS3 server({k.reply});
    S3Config c;
    c.endpoint = server.endpoint();
    c.bucket = "bkt";
    c.access_key_id = "AKIDEXAMPLE";
    c.secret_access_key = "s";
    c.path_style = true;
    c.timeout_seconds = 5;
    auto fs = Open(c);
    ASSERT_NE(fs, nullptr);
    Err e = Put(*fs, {"f"}, "abc");
    EXPECT_EQ(e.code, k.want) << k.reply << " -> " << e.message;
    EXPECT_EQ(e.error_class, k.want_class) << k.reply << " -> " << e.message;
    EXPECT_THAT(e.message, HasSubstr("s3: PUT /f: HTTP"));
  }

  // A multipart upload whose completion fails after HTTP 200.
  FakeS3 server(
      {Reply("200 OK", "Content-Type: application/xml\r\n",
             "<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
             "</InitiateMultipartUploadResult>"),
       Reply("200 OK", "ETag: \"e1\"\r\n"), Reply("200 OK", "ETag: \"e2\"\r\n"),
       Reply("200 OK", "Content-Type: application/xml\r\n",
             "<Error><Code>XMinioStorageFull</Code><Message>Storage backend has "
             "reached its minimum free drive threshold.</Message></Error>"),
       Reply("204 No Content", "")});
  S3Config c;
  c.endpoint = server.endpoint();
  c.bucket = "bkt";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "s";
  c.path_style = true;
  c.part_size = kS3MinPartSize;
  c.timeout_seconds = 5;
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  Err e = Put(*fs, {"big"}, std::string(kS3MinPartSize + 10, 'b'));
  EXPECT_EQ(e.code, TIMER_AP_RESOURCE_EXHAUSTED) << e.message;
  EXPECT_THAT(e.message, HasSubstr("s3: complete upload of /big"));
  EXPECT_THAT(e.message, HasSubstr("XMinioStorageFull"));
}

TEST(S3FsWireTest, AStalledServerTimesOut) {
  FakeS3 server({""});  // accepts, never answers
  S3Config c;
  c.endpoint = server.endpoint();
  c.bucket = "bkt";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "s";
  c.path_style = true;
  c.timeout_seconds = 1;
  auto fs = Open(c);
  ASSERT_NE(fs, nullptr);
  const auto start = std::chrono::steady_clock::now();
  EntryInfo info;
  bool exists = false;
  Err e = fs->Stat({"f"}, &info, &exists);
  EXPECT_EQ(e.code, TIMER_AP_UNAVAILABLE) << e.message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

// A config for `server` with the default timeout_seconds (60): a test that
// ends well before it shows the cancel, not the timeout, ended the request.
S3Config WireConfig(const FakeS3& server) {
  S3Config c;
  c.endpoint = server.endpoint();
  c.bucket = "bkt";
  c.prefix = "root/";
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "s";
  c.path_style = true;
  c.part_size = kS3MinPartSize;
  return c;
}

// Hang guard: the cancelled requests below end within about a second; a
// request the cancel failed to reach would wait out the 60-s timeout.
constexpr auto kWellBeforeTheTimeout = std::chrono::seconds(10);

// A run's cancel for the cases below, set from a thread of its own once
// `ready` returns (the server received or sent what the case waits for; set
// also when it gave up waiting: a test must not hang). Join() says whether
// `ready` saw it happen.
class Canceller {
 public:
  explicit Canceller(std::function<bool()> ready)
      : thread_([this, ready = std::move(ready)] {
          saw_ = ready();
          cancelled_ = true;
        }) {}
  ~Canceller() {
    if (thread_.joinable()) thread_.join();
  }
  // An S3 client of `server` that this cancels.
  std::unique_ptr<EndpointFs> Open(const FakeS3& server) {
    std::unique_ptr<EndpointFs> fs;
    Err e = MakeS3Endpoint(WireConfig(server))
                ->Open([this] { return cancelled_.load(); }, &fs);
    EXPECT_TRUE(e.ok()) << e.message;
    return fs;
  }
  bool Join() {
    thread_.join();
    return saw_;
  }

 private:
  std::atomic<bool> cancelled_{false};
  bool saw_ = false;
  std::thread thread_;  // last: started once the rest is set
};

// A run's cancel reaches a request waiting on a server that never answers:
// it ends CANCELLED (not UNAVAILABLE, which a run would retry) soon after.
TEST(S3FsWireTest, ACancelEndsARequestWaitingForAnAnswer) {
  FakeS3 server({""});  // accepts, never answers
  Canceller canceller([&server] { return server.WaitReceived(1); });
  std::unique_ptr<EndpointFs> fs = canceller.Open(server);
  ASSERT_NE(fs, nullptr);
  const auto start = std::chrono::steady_clock::now();
  EntryInfo info;
  bool exists = false;
  Err e = fs->Stat({"f"}, &info, &exists);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(canceller.Join());
  EXPECT_EQ(e.code, TIMER_AP_CANCELLED) << e.message;
  EXPECT_EQ(e.message, "s3: HEAD /f: cancelled");
  EXPECT_LT(took, kWellBeforeTheTimeout);
  // Once cancelled, no request is sent at all.
  e = fs->Stat({"g"}, &info, &exists);
  EXPECT_EQ(e.code, TIMER_AP_CANCELLED) << e.message;
  EXPECT_EQ(server.requests().size(), 1u);
}

// The same for a server that stops in the middle of an answer's body.
TEST(S3FsWireTest, ACancelEndsAnAnswerStalledMidBody) {
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 4096\r\n\r\n";
  FakeS3 server({head + "<?xml version=\"1.0\"?><ListBucketResult>", ""});
  Canceller canceller([&server] { return server.WaitSent(1); });
  std::unique_ptr<EndpointFs> fs = canceller.Open(server);
  ASSERT_NE(fs, nullptr);
  const auto start = std::chrono::steady_clock::now();
  Err e = fs->List({}, [](const EntryInfo&) { return true; });
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(canceller.Join());
  EXPECT_EQ(e.code, TIMER_AP_CANCELLED) << e.message;
  EXPECT_LT(took, kWellBeforeTheTimeout);
}

// A multipart upload whose part PUT a cancel ends is still aborted on the
// server when the writer goes: the abort itself is not cancelled.
TEST(S3FsWireTest, ACancelledMultipartUploadIsStillAborted) {
  FakeS3 server({Reply("200 OK", "Content-Type: application/xml\r\n",
                       "<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
                       "</InitiateMultipartUploadResult>"),
                 "",  // part 1: never answered
                 Reply("204 No Content", "")});
  Canceller canceller([&server] { return server.WaitReceived(2); });
  std::unique_ptr<EndpointFs> fs = canceller.Open(server);
  ASSERT_NE(fs, nullptr);
  const auto start = std::chrono::steady_clock::now();
  {
    std::unique_ptr<FileWriter> w;
    Err e = fs->Create({"f"}, -1, &w);
    EXPECT_TRUE(e.ok()) << e.message;
    const std::string part(kS3MinPartSize + 1, 'x');
    if (w) e = w->Write(part.data(), part.size());
    EXPECT_EQ(e.code, TIMER_AP_CANCELLED) << e.message;
    EXPECT_THAT(e.message, HasSubstr("/f"));
  }  // the abort
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(canceller.Join());
  EXPECT_LT(took, kWellBeforeTheTimeout);
  const std::vector<std::string> reqs = server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[1].substr(0, reqs[1].find("\r\n")),
            "PUT /bkt/root/f?partNumber=1&uploadId=u1 HTTP/1.1");
  EXPECT_EQ(reqs[2].substr(0, reqs[2].find("\r\n")),
            "DELETE /bkt/root/f?uploadId=u1 HTTP/1.1");
}

// --- configuration ----------------------------------------------------------

class S3ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/timer-s3cfg-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string WriteFile(const std::string& name, const std::string& text, mode_t mode) {
    const std::string p = dir_ + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }

  Err Parse(const nlohmann::json& table, std::shared_ptr<const RemoteEndpoint>* out) {
    FieldReader r(table, "plugins.transfer.endpoints[0]");
    r.String("id", "");
    r.String("type", "");
    if (Err e = ParseS3Endpoint(r, out); !e.ok()) return e;
    return r.Finish();
  }

  nlohmann::json Good() {
    return {{"id", "e1"},
            {"type", "s3"},
            {"endpoint", "https://s3.example.org"},
            {"bucket", "my-bucket"},
            {"access_key_id", "AKID"},
            {"secret_access_key_file", WriteFile("secret", "top-secret\n", 0600)}};
  }

  std::string dir_;
};

TEST_F(S3ConfigTest, AcceptsAGoodTableAndDescribesItWithoutSecrets) {
  nlohmann::json t = Good();
  t["prefix"] = "/backups/lab/";
  t["region"] = "eu-central-1";
  std::shared_ptr<const RemoteEndpoint> ep;
  Err e = Parse(t, &ep);
  ASSERT_TRUE(e.ok()) << e.message;
  EXPECT_EQ(ep->type(), "s3");
  const nlohmann::json d = ep->Describe();
  EXPECT_EQ(d["endpoint"], "https://s3.example.org");
  EXPECT_EQ(d["bucket"], "my-bucket");
  EXPECT_EQ(d["prefix"], "backups/lab/");
  EXPECT_EQ(d["encrypted"], true);
  EXPECT_THAT(d.dump(), Not(HasSubstr("top-secret")));
  EXPECT_THAT(d.dump(), Not(HasSubstr("secret")));  // not even the file's name
  EXPECT_THAT(d.dump(), Not(HasSubstr("AKID")));
  std::unique_ptr<EndpointFs> fs;
  ASSERT_TRUE(ep->Open({}, &fs).ok());
  EXPECT_TRUE(fs->Encrypted());
}

TEST_F(S3ConfigTest, RefusesPlainHttpBeyondLoopbackUnlessAllowed) {
  nlohmann::json t = Good();
  t["endpoint"] = "http://s3.example.org:9000";
  std::shared_ptr<const RemoteEndpoint> ep;
  Err e = Parse(t, &ep);
  EXPECT_EQ(e.code, TIMER_AP_INVALID_ARGUMENT);
  EXPECT_THAT(e.message, HasSubstr("plugins.transfer.endpoints[0].endpoint"));
  EXPECT_THAT(e.message, HasSubstr("allow_insecure_http"));
  t["allow_insecure_http"] = true;
  EXPECT_TRUE(Parse(t, &ep).ok());
  EXPECT_EQ(ep->Describe()["encrypted"], false);
  t.erase("allow_insecure_http");
  t["endpoint"] = "http://127.0.0.1:9000/";
  EXPECT_TRUE(Parse(t, &ep).ok());
  EXPECT_EQ(ep->Describe()["endpoint"], "http://127.0.0.1:9000");
}

TEST_F(S3ConfigTest, RefusesBadValues) {
  std::shared_ptr<const RemoteEndpoint> ep;
  auto code_of = [&](const char* key, const nlohmann::json& v) {
    nlohmann::json t = Good();
    t[key] = v;
    Err e = Parse(t, &ep);
    EXPECT_THAT(e.message, HasSubstr(key)) << key;
    return e.code;
  };
  EXPECT_EQ(code_of("endpoint", "ftp://x"), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(code_of("endpoint", "https://user:pw@x"), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(code_of("bucket", "a"), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(code_of("prefix", "a/../b"), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(code_of("prefix", "a//b"), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(code_of("part_size", 1024), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(code_of("list_page_size", 5000), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(code_of("max_keys_per_run", 0), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(code_of("timeout_seconds", 0), TIMER_AP_INVALID_ARGUMENT);
  EXPECT_EQ(code_of("region", "Bad Region"), TIMER_AP_INVALID_ARGUMENT);
  nlohmann::json t = Good();
  t["unknown_key"] = 1;
  EXPECT_THAT(Parse(t, &ep).message, HasSubstr("unknown_key: unknown field"));
  t = Good();
  t.erase("bucket");
  EXPECT_THAT(Parse(t, &ep).message, HasSubstr("bucket: required"));
}

TEST_F(S3ConfigTest, RefusesASecretFileOthersCanRead) {
  nlohmann::json t = Good();
  t["secret_access_key_file"] = WriteFile("open", "top-secret", 0644);
  std::shared_ptr<const RemoteEndpoint> ep;
  Err e = Parse(t, &ep);
  EXPECT_EQ(e.code, TIMER_AP_PERMISSION_DENIED) << e.message;
  EXPECT_THAT(e.message, HasSubstr("secret_access_key_file"));
  EXPECT_THAT(e.message, Not(HasSubstr("top-secret")));
  t["secret_access_key_file"] = WriteFile("group", "top-secret", 0640);
  EXPECT_EQ(Parse(t, &ep).code, TIMER_AP_PERMISSION_DENIED);
  t["secret_access_key_file"] = dir_ + "/missing";
  EXPECT_EQ(Parse(t, &ep).code, TIMER_AP_INVALID_ARGUMENT);
  t.erase("secret_access_key_file");
  EXPECT_THAT(Parse(t, &ep).message, HasSubstr("credentials_file"));
}

TEST_F(S3ConfigTest, ReadsAnAwsCredentialsFile) {
  nlohmann::json t = Good();
  t.erase("access_key_id");
  t.erase("secret_access_key_file");
  t["credentials_file"] = WriteFile("credentials",
                                    "[default]\naws_access_key_id = A1\n"
                                    "aws_secret_access_key = S1\n\n[lab]\n"
                                    "aws_access_key_id=A2\naws_secret_access_key=S2\n",
                                    0600);
  t["profile"] = "lab";
  std::shared_ptr<const RemoteEndpoint> ep;
  Err e = Parse(t, &ep);
  ASSERT_TRUE(e.ok()) << e.message;
  t["profile"] = "nope";
  e = Parse(t, &ep);
  EXPECT_THAT(e.message, HasSubstr("no [nope] profile"));
  EXPECT_THAT(e.message, Not(HasSubstr("S2")));
  t["profile"] = "lab";
  t["access_key_id"] = "X";
  EXPECT_THAT(Parse(t, &ep).message, HasSubstr("not both"));
}

}  // namespace
}  // namespace timer::plugins::transfer
