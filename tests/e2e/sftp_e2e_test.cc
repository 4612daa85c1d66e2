// End to end: the installed timerd with a local endpoint and an SFTP one (a
// real sshd on loopback, tests/support/sshd_server.h), `timer job transfer`
// from the local endpoint to the SFTP one; the run succeeds and the file is
// on the server, whole, under its name.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli_fixture.h"
#include "process.h"
#include "sshd_server.h"

namespace timer::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kLocalId[] = "7a1d3c2a-0b7e-4c11-9a55-1c2d3e4f5a01";
constexpr char kSftpId[] = "7a1d3c2a-0b7e-4c11-9a55-1c2d3e4f5a02";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class SftpE2eTest : public CliTest {};

TEST_F(SftpE2eTest, JobTransferUploadsToAnSftpEndpoint) {
  auto sshd = SshdServer::Get();
  ASSERT_TRUE(sshd.ok()) << sshd.status();
  const std::string local = tmp_.path() + "/local-endpoint";
  const std::string remote = (*sshd)->NewRoot();
  fs::create_directories(local + "/data");
  std::string content(3 << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 31 + 7);
  std::ofstream(local + "/data/file1.txt", std::ios::binary) << content;

  const std::string config = tmp_.path() + "/timerd.toml";
  std::ofstream(config) << "[[plugins.transfer.endpoints]]\n"
                        << "id = \"" << kLocalId << "\"\n"
                        << "root = \"" << local << "\"\n"
                        << "allowed_identities = [\"*\"]\n"
                        << "[[plugins.transfer.endpoints]]\n"
                        << "id = \"" << kSftpId << "\"\n"
                        << "type = \"sftp\"\n"
                        << "host = \"127.0.0.1\"\n"
                        << "port = " << (*sshd)->port() << "\n"
                        << "user = \"" << (*sshd)->user() << "\"\n"
                        << "private_key_file = \"" << (*sshd)->user_key() << "\"\n"
                        << "known_hosts_file = \"" << (*sshd)->known_hosts() << "\"\n"
                        << "root = \"" << remote << "\"\n"
                        << "allowed_identities = [\"*\"]\n";
  auto daemon = StartTimerd({"--config", config});

  json job = CliJson({"job", "transfer", "--name", "to-sftp", "--interval", "1d",
                      "--source-endpoint", kLocalId, "--dest-endpoint", kSftpId, "--item",
                      "data/file1.txt", "backup/file1.txt", "false"});
  const std::string id = job["job_id"];
  json done = WaitForJob(id, [](const json& j) {
    if (!j.contains("results") || j["results"].empty()) return false;
    const std::string status = j["results"][0].value("status", "");
    return status != "PENDING" && status != "ACTIVE";
  });
  ASSERT_TRUE(done.contains("results") && !done["results"].empty()) << done.dump();
  const json& result = done["results"][0];
  ASSERT_EQ(result["status"], "SUCCEEDED") << result.dump() << "\n" << daemon->log();
  const json details = json::parse(result.value("details", "{}"));
  EXPECT_EQ(details["files_transferred"], 1) << details.dump();
  EXPECT_EQ(details["bytes_transferred"], static_cast<int64_t>(content.size()));
  EXPECT_EQ(details["encrypt_data"], true);
  EXPECT_EQ(ReadFile(remote + "/backup/file1.txt"), content);
  // Nothing of the key in what the run reports.
  EXPECT_EQ(result.dump().find("user_key"), std::string::npos) << result.dump();
}

}  // namespace
}  // namespace timer::testing
