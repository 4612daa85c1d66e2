// End to end with an S3 endpoint: the installed timerd with a local endpoint
// and an S3 one on s3rver (tests/support/s3_server.h, started once for this
// process), `timer job transfer --verify-checksum` from the local endpoint
// to the bucket; the run succeeds and the object is there, whole, with its
// SHA-256 in its metadata. Then `timer provider show transfer` as two
// identities: each sees the endpoints it may use and nothing else, and
// neither sees a secret.
//
// The seed's `job transfer` example with its `~/file1.txt` paths (and its
// `job submit` body with `/~/` paths) against two configured endpoints is
// TransferE2eTest.TheSeedsJobTransferExampleRunsWithItsPaths
// (transfer_e2e_test.cc); it is not repeated here.
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_fixture.h"
#include "process.h"
#include "s3_fs.h"
#include "s3_server.h"

namespace timer::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using plugins::transfer::EndpointFs;
using plugins::transfer::EntryInfo;
using plugins::transfer::S3Config;

constexpr char kLocalId[] = "8b2e4d3b-1c8f-4d22-8b66-2d3e4f5a6b01";
constexpr char kS3Id[] = "8b2e4d3b-1c8f-4d22-8b66-2d3e4f5a6b02";
// Open to alice only, never to the fixture's identity.
constexpr char kAliceS3Id[] = "8b2e4d3b-1c8f-4d22-8b66-2d3e4f5a6b03";
constexpr char kSecret[] = "S3RVER";  // s3rver's; checked absent from output below

class S3E2eTest : public CliTest {};

TEST_F(S3E2eTest, JobTransferUploadsToAnS3EndpointWithItsChecksum) {
  auto server = S3Server::Get();
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string local = tmp_.path() + "/local-endpoint";
  fs::create_directories(local + "/data");
  // Over one part (16 MiB by default is too slow to be worth it here: the
  // endpoint's part_size is S3's minimum, 5 MiB), so a multipart upload
  // whose metadata comes from the copy onto itself.
  std::string content(6 << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 31 + 7);
  std::ofstream(local + "/data/file1.txt", std::ios::binary) << content;
  const std::string secret_file = tmp_.path() + "/s3.secret";
  std::ofstream(secret_file) << kSecret << "\n";
  ASSERT_EQ(::chmod(secret_file.c_str(), 0600), 0);
  const std::string prefix = "e2e-" + std::to_string(::getpid());

  const std::string config = tmp_.path() + "/timerd.toml";
  auto s3_table = [&](const char* id, const char* who, const char* bucket) {
    std::string t = std::string("[[plugins.transfer.endpoints]]\n") + "id = \"" + id +
                    "\"\n" + "display_name = \"bucket " + bucket + "\"\n" +
                    "type = \"s3\"\n" + "endpoint = \"" + (*server)->endpoint() + "\"\n" +
                    "bucket = \"" + bucket + "\"\n" + "prefix = \"" + prefix + "\"\n" +
                    "path_style = true\n" + "part_size = 5242880\n" +
                    "access_key_id = \"" + S3Server::kAccessKeyId + "\"\n" +
                    "secret_access_key_file = \"" + secret_file + "\"\n" +
                    "allowed_identities = [\"" + who + "\"]\n";
    return t;
  };
  std::ofstream(config) << "[[plugins.transfer.endpoints]]\n"
                        << "id = \"" << kLocalId << "\"\n"
                        << "display_name = \"lab disk\"\n"
                        << "root = \"" << local << "\"\n"
                        << "allowed_identities = [\"*\"]\n"
                        << s3_table(kS3Id, kIdentity, S3Server::kBucketA)
                        << s3_table(kAliceS3Id, "alice@example.org", S3Server::kBucketB);
  auto daemon = StartTimerd({"--config", config});

  json job = CliJson({"job", "transfer", "--name", "to-s3", "--interval", "1d",
                      "--source-endpoint", kLocalId, "--dest-endpoint", kS3Id,
                      "--verify-checksum", "--item", "/data/file1.txt",
                      "/backup/file1.txt", "false"});
  const std::string id = job["job_id"];
  json done = WaitForJob(
      id,
      [](const json& j) {
        if (!j.contains("results") || j["results"].empty()) return false;
        const std::string status = j["results"][0].value("status", "");
        return status != "PENDING" && status != "ACTIVE";
      },
      absl::Seconds(60));
  ASSERT_TRUE(done.contains("results") && !done["results"].empty()) << done.dump();
  const json& result = done["results"][0];
  ASSERT_EQ(result["status"], "SUCCEEDED") << result.dump() << "\n" << daemon->log();
  const json details = json::parse(result.value("details", "{}"));
  EXPECT_EQ(details["files_transferred"], 1) << details.dump();
  EXPECT_EQ(details["files_verified"], 1) << details.dump();
  EXPECT_EQ(details["bytes_transferred"], static_cast<int64_t>(content.size()));
  EXPECT_EQ(details["encrypt_data"], false);  // plain http on loopback

  // The object, seen through S3 (HEAD, then ranged GETs): whole, with the
  // SHA-256 of its bytes in its metadata.
  S3Config c;
  c.endpoint = (*server)->endpoint();
  c.bucket = S3Server::kBucketA;
  c.prefix = prefix + "/";
  c.access_key_id = S3Server::kAccessKeyId;
  c.secret_access_key = kSecret;
  c.path_style = true;
  c.timeout_seconds = 10;
  std::unique_ptr<EndpointFs> bucket;
  ASSERT_TRUE(plugins::transfer::MakeS3Endpoint(c)->Open({}, &bucket).ok());
  EntryInfo info;
  bool exists = false;
  ASSERT_TRUE(bucket->Stat({"backup", "file1.txt"}, &info, &exists).ok());
  ASSERT_TRUE(exists);
  EXPECT_EQ(info.size, static_cast<int64_t>(content.size()));
  unsigned char want[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(content.data()), content.size(), want);
  ASSERT_TRUE(info.sha256.has_value());
  EXPECT_EQ(std::string(info.sha256->begin(), info.sha256->end()),
            std::string(want, want + sizeof(want)));
  std::unique_ptr<plugins::transfer::FileReader> reader;
  ASSERT_TRUE(bucket->OpenRead({"backup", "file1.txt"}, &reader).ok());
  std::string back;
  std::string buf(1 << 20, '\0');
  for (size_t got = 1; got > 0;) {
    ASSERT_TRUE(reader->Read(buf.data(), buf.size(), &got).ok());
    back.append(buf.data(), got);
  }
  EXPECT_TRUE(back == content) << back.size() << " bytes back";

  // `timer provider show transfer`: the fixture's identity sees the local
  // endpoint and its own bucket, not alice's; alice the other way round.
  RunResult shown = Cli({"provider", "show", "transfer"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("Endpoints you may use:"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find(std::string(kLocalId) + " (local) lab disk"),
            std::string::npos)
      << shown.out;
  EXPECT_NE(shown.out.find(std::string(kS3Id) + " (s3) bucket timer-a"),
            std::string::npos)
      << shown.out;
  EXPECT_NE(shown.out.find("endpoint: " + (*server)->endpoint()), std::string::npos)
      << shown.out;
  EXPECT_NE(shown.out.find("prefix: " + prefix + "/"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("encrypt_data: no"), std::string::npos) << shown.out;
  EXPECT_EQ(shown.out.find(kAliceS3Id), std::string::npos) << shown.out;
  EXPECT_EQ(shown.out.find("timer-b"), std::string::npos) << shown.out;
  const std::string alice_token = IssueToken("alice@example.org");
  RunResult alice =
      CliAs(alice_token, {"--format", "json", "provider", "show", "transfer"});
  ASSERT_EQ(alice.exit_code, 0) << alice.err;
  const json alice_view =
      json::parse(json::parse(alice.out)["configuration"].get<std::string>());
  ASSERT_EQ(alice_view["endpoints"].size(), 2u) << alice_view.dump();
  EXPECT_EQ(alice_view["endpoints"][0]["id"], kLocalId);
  EXPECT_EQ(alice_view["endpoints"][1]["id"], kAliceS3Id);
  EXPECT_EQ(alice_view["endpoints"][1]["bucket"], S3Server::kBucketB);
  for (const std::string& out : {shown.out, alice.out, daemon->log()}) {
    EXPECT_EQ(out.find(secret_file), std::string::npos) << out;
    EXPECT_EQ(out.find(local), std::string::npos) << out;  // a local root
    EXPECT_EQ(out.find("secret_access_key"), std::string::npos) << out;
  }
  // (The secret itself, "S3RVER", is also s3rver's access key id, which
  // neither shows: nothing names the key.)
  for (const std::string& out : {shown.out, alice.out}) {
    EXPECT_EQ(out.find(kSecret), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace timer::testing
