// End-to-end tests of the transfer provider: the installed timerd (with the
// installed plugin directory) and timer binaries, with two endpoints on
// temporary directories configured in timerd's TOML file. A job is submitted
// with the CLI and its copies are checked from outside, on the filesystem.
// The install prefix comes from TIMER_INSTALL_PREFIX (ctest installs the build
// there first). Every server listens on a free loopback port and a temporary
// data directory, and is stopped by the test (Daemon's destructor).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli_fixture.h"
#include "process.h"

namespace timer::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kSrcId[] = "6f1d3c2a-0b7e-4c11-9a55-1c2d3e4f5a01";
constexpr char kDstId[] = "6f1d3c2a-0b7e-4c11-9a55-1c2d3e4f5a02";
// Usable only by alice, never by the fixture's identity (CliTest::kIdentity).
constexpr char kAliceId[] = "6f1d3c2a-0b7e-4c11-9a55-1c2d3e4f5a03";
constexpr char kUnknownId[] = "00000000-0000-4000-8000-0000000000ff";
// The seed's two endpoint ids, each with a home per identity ("~").
constexpr char kSeedSrcId[] = "ddb59aef-6d04-11e5-ba46-22000b92c6ec";
constexpr char kSeedDstId[] = "ddb59af0-6d04-11e5-ba46-22000b92c6ec";

void WriteFile(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Deterministic bytes (every value 0..255 occurs), so a mismatch is reproducible.
std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// Everything below `root`, by relative path: a directory as "<dir>", a
// symbolic link as "<symlink>" (never followed), a regular file as its bytes.
std::map<std::string, std::string> Tree(const std::string& root) {
  std::map<std::string, std::string> tree;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(root)) {
    const std::string rel = fs::relative(e.path(), root).string();
    if (e.is_symlink()) {
      tree[rel] = "<symlink>";
    } else if (e.is_directory()) {
      tree[rel] = "<dir>";
    } else {
      tree[rel] = ReadFile(e.path().string());
    }
  }
  return tree;
}

int64_t Seconds(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err))
      << rfc3339 << ": " << err;
  return absl::ToUnixSeconds(t);
}

struct stat Stat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return st;
}

class TransferE2eTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    src_ = tmp_.path() + "/src-endpoint";
    dst_ = tmp_.path() + "/dst-endpoint";
    alice_ = tmp_.path() + "/alice-endpoint";
    outside_ = tmp_.path() + "/outside";
    seed_src_ = tmp_.path() + "/seed-src";
    seed_dst_ = tmp_.path() + "/seed-dst";
    for (const std::string& d : {src_, dst_, alice_, outside_, seed_src_, seed_dst_}) {
      fs::create_directories(d);
    }
  }

  // Starts timerd with three transfer endpoints and waits until it listens.
  std::unique_ptr<Daemon> StartTimerd() {
    const std::string config = tmp_.path() + "/timerd.toml";
    std::ofstream(config) << "[[plugins.transfer.endpoints]]\n"
                          << "id = \"" << kSrcId << "\"\n"
                          << "display_name = \"src\"\n"
                          << "root = \"" << src_ << "\"\n"
                          << "allowed_identities = [\"*\"]\n"
                          << "[[plugins.transfer.endpoints]]\n"
                          << "id = \"" << kDstId << "\"\n"
                          << "display_name = \"dst\"\n"
                          << "root = \"" << dst_ << "\"\n"
                          << "allowed_identities = [\"*\"]\n"
                          << "[[plugins.transfer.endpoints]]\n"
                          << "id = \"" << kAliceId << "\"\n"
                          << "display_name = \"alice only\"\n"
                          << "root = \"" << alice_ << "\"\n"
                          << "allowed_identities = [\"alice@example.org\"]\n";
    for (const auto& [id, root] :
         {std::pair{kSeedSrcId, seed_src_}, {kSeedDstId, seed_dst_}}) {
      std::ofstream(config, std::ios::app) << "[[plugins.transfer.endpoints]]\n"
                                           << "id = \"" << id << "\"\n"
                                           << "root = \"" << root << "\"\n"
                                           << "home = \"home/{identity}\"\n"
                                           << "allowed_identities = [\"*\"]\n";
    }
    return CliTest::StartTimerd({"--config", config});
  }

  // Waits until run `run_number` of the job has finished; returns its result.
  json WaitForRun(const std::string& id, int run_number) {
    const std::string n = std::to_string(run_number);
    json job = WaitForJob(id, [&](const json& j) {
      if (!j.contains("results") || j["results"].empty()) return false;
      const json& r = j["results"][0];
      const std::string status = r.value("status", "");
      return r.value("run_number", "") == n && status != "PENDING" && status != "ACTIVE";
    });
    if (!job.contains("results") || job["results"].empty()) return json::object();
    return job["results"][0];
  }

  // The provider's details of a result, parsed.
  static json Details(const json& result) {
    json d =
        json::parse(result.value("details", ""), nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(d.is_object()) << result.dump();
    return d.is_object() ? d : json::object();
  }

  static std::string Body(const std::string& src_id, const std::string& dst_id,
                          const json& items, const json& extra = json::object()) {
    json body = {{"source_endpoint_id", src_id},
                 {"destination_endpoint_id", dst_id},
                 {"transfer_items", items}};
    body.update(extra);
    return body.dump();
  }

  std::string src_, dst_, alice_, outside_, seed_src_, seed_dst_;
};

TEST_F(TransferE2eTest, FirstRunCopiesTheTreeAndChecksumSecondRunCopiesNothing) {
  // Nested directories, an empty file, a file just over 1 MiB (not a multiple
  // of any buffer size) and a few small ones.
  const std::string big = Bytes((1 << 20) + 7, 42);
  WriteFile(src_ + "/data/readme.txt", "hello, transfer\n");
  WriteFile(src_ + "/data/empty.dat", "");
  WriteFile(src_ + "/data/sub/big.bin", big);
  WriteFile(src_ + "/data/sub/deeper/notes.txt", "deep\n");
  WriteFile(src_ + "/data/sub/deeper/deepest/tiny", "x");
  fs::create_directories(src_ + "/data/empty-dir");
  const std::map<std::string, std::string> source_tree = Tree(src_ + "/data");
  ASSERT_EQ(source_tree.size(), 9u);
  constexpr int64_t kTreeFiles = 5;
  int64_t tree_bytes = 0;
  for (const auto& [path, content] : source_tree) {
    if (content != "<dir>") tree_bytes += static_cast<int64_t>(content.size());
  }

  auto daemon = StartTimerd();
  const std::string body = Body(
      kSrcId, kDstId,
      json::array(
          {{{"source_path", "data"}, {"destination_path", "mirror"}, {"recursive", true}},
           {{"source_path", "data/sub/big.bin"},
            {"destination_path", "single/big-copy.bin"}}}),
      {{"label", "e2e nightly"},
       {"sync_level", "checksum"},
       {"verify_checksum", true},
       {"preserve_timestamp", true}});
  // No --start: the job starts now, so run 1 fires at once.
  json job = CliJson({"job", "submit", "--name", "mirror-data", "--interval", "1h",
                      "--action-provider", "transfer", "--action-body", body});
  const std::string id = job["job_id"];
  EXPECT_EQ(job["action"]["provider"], "transfer");

  // Run 1: the whole tree lands byte for byte.
  json run1 = WaitForRun(id, 1);
  ASSERT_EQ(run1["status"], "SUCCEEDED") << run1.dump() << "\n" << daemon->log();
  EXPECT_FALSE(run1.value("manual", false));
  json d1 = Details(run1);
  EXPECT_EQ(d1["label"], "e2e nightly");
  EXPECT_EQ(d1["source_endpoint_id"], kSrcId);
  EXPECT_EQ(d1["destination_endpoint_id"], kDstId);
  EXPECT_EQ(d1["sync_level"], "checksum");
  EXPECT_EQ(d1["files_transferred"], kTreeFiles + 1) << d1.dump();
  EXPECT_EQ(d1["bytes_transferred"], tree_bytes + static_cast<int64_t>(big.size()))
      << d1.dump();
  EXPECT_EQ(d1["files_verified"], kTreeFiles + 1) << d1.dump();
  EXPECT_EQ(d1["files_skipped"], 0) << d1.dump();
  EXPECT_EQ(d1["files_failed"], 0) << d1.dump();
  EXPECT_TRUE(d1["errors"].empty()) << d1.dump();

  // Same paths, same bytes, nothing more (no temporary ".timer-part-*" left).
  EXPECT_EQ(Tree(dst_ + "/mirror"), source_tree);
  EXPECT_EQ(Tree(dst_ + "/single"),
            (std::map<std::string, std::string>{{"big-copy.bin", big}}));
  EXPECT_EQ(Tree(src_ + "/data"), source_tree);  // The source is untouched.
  // preserve_timestamp kept each file's mtime.
  for (const auto& [path, content] : source_tree) {
    if (content == "<dir>") continue;
    struct stat s = Stat(src_ + "/data/" + path), d = Stat(dst_ + "/mirror/" + path);
    EXPECT_EQ(s.st_mtim.tv_sec, d.st_mtim.tv_sec) << path;
    EXPECT_EQ(s.st_mtim.tv_nsec, d.st_mtim.tv_nsec) << path;
  }

  // Which file is which on disk: a copied file would be renamed into place
  // as a new inode, so unchanged inodes show that run 2 wrote nothing.
  std::map<std::string, ino_t> inodes;
  for (const auto& [path, content] : source_tree) {
    if (content != "<dir>") inodes[path] = Stat(dst_ + "/mirror/" + path).st_ino;
  }
  const ino_t single_inode = Stat(dst_ + "/single/big-copy.bin").st_ino;

  // Run 2, on demand: sync_level checksum finds every file identical.
  json ran = CliJson({"job", "run-now", id});
  EXPECT_EQ(ran["n_runs"], "2");
  json run2 = WaitForRun(id, 2);
  ASSERT_EQ(run2["status"], "SUCCEEDED") << run2.dump() << "\n" << daemon->log();
  EXPECT_TRUE(run2.value("manual", false));
  json d2 = Details(run2);
  EXPECT_EQ(d2["files_transferred"], 0) << d2.dump();
  EXPECT_EQ(d2["bytes_transferred"], 0) << d2.dump();
  EXPECT_EQ(d2["files_skipped"], kTreeFiles + 1) << d2.dump();
  EXPECT_EQ(d2["files_failed"], 0) << d2.dump();
  EXPECT_EQ(d2["directories_created"], 0) << d2.dump();

  EXPECT_EQ(Tree(dst_ + "/mirror"), source_tree);
  for (const auto& [path, inode] : inodes) {
    EXPECT_EQ(Stat(dst_ + "/mirror/" + path).st_ino, inode) << path << " was rewritten";
  }
  EXPECT_EQ(Stat(dst_ + "/single/big-copy.bin").st_ino, single_inode);

  // Both runs are kept, newest first, and run-now did not move the grid:
  // the next run is still one interval after the start.
  json results = CliJson({"job", "results", id})["results"];
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0]["run_number"], "2");
  EXPECT_EQ(results[1]["run_number"], "1");
  json status = CliJson({"job", "status", id});
  EXPECT_EQ(Seconds(status["next_run"]), Seconds(job["schedule"]["start"]) + 3600)
      << status.dump();
}

TEST_F(TransferE2eTest, ChangedSourceFileIsCopiedAgainOnTheNextRun) {
  WriteFile(src_ + "/tree/same.txt", "unchanged\n");
  WriteFile(src_ + "/tree/changes.txt", "version 1\n");
  auto daemon = StartTimerd();
  const std::string body = Body(
      kSrcId, kDstId,
      json::array(
          {{{"source_path", "tree"}, {"destination_path", "copy"}, {"recursive", true}}}),
      {{"sync_level", "checksum"}});
  json job = CliJson({"job", "submit", "--interval", "1h", "--action-provider",
                      "transfer", "--action-body", body});
  const std::string id = job["job_id"];
  json run1 = WaitForRun(id, 1);
  ASSERT_EQ(run1["status"], "SUCCEEDED") << run1.dump();
  EXPECT_EQ(Details(run1)["files_transferred"], 2);

  // Same size, different bytes: only a checksum tells them apart.
  WriteFile(src_ + "/tree/changes.txt", "version 2\n");
  CliJson({"job", "run-now", id});
  json run2 = WaitForRun(id, 2);
  ASSERT_EQ(run2["status"], "SUCCEEDED") << run2.dump();
  json d2 = Details(run2);
  EXPECT_EQ(d2["files_transferred"], 1) << d2.dump();
  EXPECT_EQ(d2["files_skipped"], 1) << d2.dump();
  EXPECT_EQ(ReadFile(dst_ + "/copy/changes.txt"), "version 2\n");
  EXPECT_EQ(Tree(dst_ + "/copy"), Tree(src_ + "/tree"));
}

// Killing timerd in the middle of a large transfer: the destination holds
// complete files only (the file being written, unnamed, vanishes with the
// process), and the next run completes the transfer.
TEST_F(TransferE2eTest, KillMidTransferLeavesCompleteFilesAndTheNextRunFinishes) {
  for (int i = 0; i < 4; ++i) {
    WriteFile(src_ + "/big/f" + std::to_string(i) + ".bin", Bytes(16 << 20, 10 + i));
  }
  // 20 MB/s: the 64 MB take about three seconds, time to kill it midway.
  const std::string config = tmp_.path() + "/slow.toml";
  std::ofstream(config) << "[plugins.transfer]\nmax_bytes_per_second = 20000000\n"
                        << "[[plugins.transfer.endpoints]]\nid = \"" << kSrcId
                        << "\"\ndisplay_name = \"src\"\nroot = \"" << src_ << "\"\n"
                        << "allowed_identities = [\"*\"]\n"
                        << "[[plugins.transfer.endpoints]]\nid = \"" << kDstId
                        << "\"\ndisplay_name = \"dst\"\nroot = \"" << dst_ << "\"\n"
                        << "allowed_identities = [\"*\"]\n";
  auto daemon = CliTest::StartTimerd({"--config", config});
  const std::string address = address_;
  const std::string body = Body(
      kSrcId, kDstId,
      json::array(
          {{{"source_path", "big"}, {"destination_path", "copy"}, {"recursive", true}}}));
  json job = CliJson({"job", "submit", "--interval", "1h", "--action-provider",
                      "transfer", "--action-body", body});
  const std::string id = job["job_id"];

  // Wait until one file is complete; the next is then being written (at
  // 20 MB/s, for most of a second), unnamed: no name shows it.
  const auto state = [&](int* complete, int* parts) {
    *complete = *parts = 0;
    std::error_code ec;
    for (const fs::directory_entry& e : fs::directory_iterator(dst_ + "/copy", ec)) {
      const std::string name = e.path().filename().string();
      (name.rfind(".timer-part-", 0) == 0 ? *parts : *complete) += 1;
    }
  };
  int complete = 0, parts = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (complete < 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));  // Watching the copy's progress.
    state(&complete, &parts);
  }
  ASSERT_GE(complete, 1) << complete << " complete, " << parts << " parts";
  EXPECT_EQ(parts, 0) << "a new file's copy in progress has no name";
  daemon->Stop(SIGKILL);

  // Complete files only: every file under its real name is whole, and
  // nothing else is left.
  state(&complete, &parts);
  ASSERT_LT(complete, 4) << "the transfer finished before the kill";
  EXPECT_EQ(parts, 0) << "the killed copy left a part file";
  for (const fs::directory_entry& e : fs::directory_iterator(dst_ + "/copy")) {
    const std::string name = e.path().filename().string();
    if (name.rfind(".timer-part-", 0) == 0) continue;  // Hidden, never a real name.
    EXPECT_EQ(ReadFile(e.path().string()), ReadFile(src_ + "/big/" + name)) << name;
  }

  // Restarted, the interrupted run is settled and the next one completes.
  daemon = std::make_unique<Daemon>(std::vector<std::string>{
      timerd_, "--listen", address, "--data-dir", data_dir_, "--config", config});
  ASSERT_TRUE(daemon->WaitForLog("listening on ", absl::Seconds(20))) << daemon->log();
  json run1 = WaitForRun(id, 1);
  EXPECT_NE(run1["status"], "SUCCEEDED") << run1.dump();
  CliJson({"job", "run-now", id});
  json run2 = WaitForRun(id, 2);
  ASSERT_EQ(run2["status"], "SUCCEEDED") << run2.dump();
  EXPECT_EQ(Tree(dst_ + "/copy"), Tree(src_ + "/big"));  // No part file left either.
}

TEST_F(TransferE2eTest, SymlinkInsideTheTreeIsSkippedNotFollowed) {
  WriteFile(outside_ + "/secret.txt", "must not leave its directory\n");
  WriteFile(src_ + "/tree/plain.txt", "plain\n");
  fs::create_directory_symlink(outside_, src_ + "/tree/escape-dir");
  fs::create_symlink(outside_ + "/secret.txt", src_ + "/tree/escape-file");
  auto daemon = StartTimerd();
  json job = CliJson({"job", "submit", "--interval", "1h", "--action-provider",
                      "transfer", "--action-body",
                      Body(kSrcId, kDstId,
                           json::array({{{"source_path", "tree"},
                                         {"destination_path", "copy"},
                                         {"recursive", true}}}))});
  json run = WaitForRun(job["job_id"].get<std::string>(), 1);
  ASSERT_EQ(run["status"], "SUCCEEDED") << run.dump();
  json d = Details(run);
  EXPECT_EQ(d["files_transferred"], 1) << d.dump();
  EXPECT_EQ(d["symlinks_skipped"], 2) << d.dump();
  EXPECT_EQ(Tree(dst_ + "/copy"),
            (std::map<std::string, std::string>{{"plain.txt", "plain\n"}}));
}

TEST_F(TransferE2eTest, EscapingPathsAndUnknownEndpointsAreRefusedAtSubmit) {
  fs::create_directories(src_ + "/data");
  WriteFile(src_ + "/data/file.txt", "inside\n");
  // A link inside the source root that points out of it.
  fs::create_directory_symlink(outside_, src_ + "/out-link");
  WriteFile(outside_ + "/file.txt", "outside\n");
  auto daemon = StartTimerd();

  const auto item = [](const std::string& src, const std::string& dst,
                       bool recursive = false) {
    return json::array(
        {{{"source_path", src}, {"destination_path", dst}, {"recursive", recursive}}});
  };
  struct Case {
    std::string what;
    std::string body;
    int exit_code;
    std::vector<std::string> message;  // Each must appear in stderr.
  };
  const std::vector<Case> cases = {
      {"source ..",
       Body(kSrcId, kDstId, item("../outside/file.txt", "f.txt")),
       2,
       {"job.action.body", "transfer_items[0].source_path", ".."}},
      {"source .. in the middle",
       Body(kSrcId, kDstId, item("data/../../outside", "d", true)),
       2,
       {"transfer_items[0].source_path", ".."}},
      {"destination ..",
       Body(kSrcId, kDstId, item("data/file.txt", "../outside/x.txt")),
       2,
       {"transfer_items[0].destination_path", ".."}},
      // Globus's path forms: "/" is the endpoint's root, never the host's.
      {"source from the root, then ..",
       Body(kSrcId, kDstId, item("/../outside/file.txt", "f.txt")),
       2,
       {"transfer_items[0].source_path", ".."}},
      {"source from the home, then ..",
       Body(kSrcId, kDstId, item("/~/../outside", "d", true)),
       2,
       {"transfer_items[0].source_path", ".."}},
      {"destination from the home, then ..",
       Body(kSrcId, kDstId, item("data/file.txt", "~/../x.txt")),
       2,
       {"transfer_items[0].destination_path", ".."}},
      {"another identity's home",
       Body(kSrcId, kDstId, item("~bob/file.txt", "f.txt")),
       2,
       {"transfer_items[0].source_path", "~bob"}},
      {"second item escapes",
       Body(kSrcId, kDstId,
            json::array(
                {{{"source_path", "data/file.txt"}, {"destination_path", "ok.txt"}},
                 {{"source_path", "data/file.txt"}, {"destination_path", "../x.txt"}}})),
       2,
       {"transfer_items[1].destination_path"}},
      {"source through a symlink",
       Body(kSrcId, kDstId, item("out-link/file.txt", "f.txt")),
       2,
       {"transfer_items[0].source_path", "symbolic link"}},
      {"unknown source endpoint",
       Body(kUnknownId, kDstId, item("data/file.txt", "f.txt")),
       2,
       {"source_endpoint_id", kUnknownId}},
      {"unknown destination endpoint",
       Body(kSrcId, kUnknownId, item("data/file.txt", "f.txt")),
       2,
       {"destination_endpoint_id", kUnknownId}},
      {"endpoint not allowed for this identity",
       Body(kSrcId, kAliceId, item("data/file.txt", "f.txt")),
       4,
       {"destination_endpoint_id", kIdentity}},
  };
  for (const Case& c : cases) {
    RunResult r = Cli({"job", "submit", "--interval", "1h", "--action-provider",
                       "transfer", "--action-body", c.body});
    EXPECT_EQ(r.exit_code, c.exit_code) << c.what << ": " << r.err;
    for (const std::string& m : c.message) {
      EXPECT_NE(r.err.find(m), std::string::npos)
          << c.what << ": wanted \"" << m << "\" in " << r.err;
    }
    // One line, no stack trace.
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.what << ": " << r.err;
  }
  // None of them became a job, and nothing was written anywhere.
  EXPECT_TRUE(CliJson({"job", "list", "--show-deleted"})["jobs"].empty());
  EXPECT_TRUE(fs::is_empty(dst_));
  EXPECT_TRUE(fs::is_empty(alice_));
  EXPECT_EQ(Tree(outside_),
            (std::map<std::string, std::string>{{"file.txt", "outside\n"}}));

  // An update cannot smuggle an escape in either; the stored body stays.
  const std::string good = Body(kSrcId, kDstId, item("data/file.txt", "f.txt"));
  json job =
      CliJson({"job", "submit", "--interval", "1h", "--start", "2030-01-01T00:00:00Z",
               "--action-provider", "transfer", "--action-body", good});
  const std::string id = job["job_id"];
  RunResult r = Cli({"job", "update", id, "--action-body",
                     Body(kSrcId, kDstId, item("data/file.txt", "../x.txt"))});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("transfer_items[0].destination_path"), std::string::npos) << r.err;
  EXPECT_EQ(
      json::parse(CliJson({"job", "status", id})["action"]["body"].get<std::string>()),
      json::parse(good));
}

TEST_F(TransferE2eTest, ProviderIsListedAndShowsItsInputSchema) {
  auto daemon = StartTimerd();
  json list = CliJson({"provider", "list"});
  std::vector<std::string> names;
  for (const json& p : list["action_providers"]) names.push_back(p["name"]);
  EXPECT_NE(std::find(names.begin(), names.end(), "transfer"), names.end())
      << list.dump();

  json show = CliJson({"provider", "show", "transfer"});
  EXPECT_EQ(show["name"], "transfer");
  const std::string schema_text = show["input_schema"];
  EXPECT_NE(schema_text.find("transfer_items"), std::string::npos) << schema_text;
  // The schema is a JSON Schema document naming the body's required fields.
  json schema = json::parse(schema_text, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(schema.is_object()) << schema_text;
  // Both shapes: timer's and the Globus Transfer document.
  const json& timer_body = schema["$defs"]["timer_body"];
  const json& globus_body = schema["$defs"]["globus_body"];
  EXPECT_EQ(timer_body["required"],
            (json{"source_endpoint_id", "destination_endpoint_id", "transfer_items"}));
  EXPECT_EQ(globus_body["required"],
            (json{"source_endpoint", "destination_endpoint", "DATA"}));
  for (const char* field :
       {"sync_level", "verify_checksum", "preserve_timestamp", "encrypt_data",
        "delete_destination_extra", "label", "filter_rules", "skip_source_errors",
        "fail_on_quota_errors", "recursive_symlinks"}) {
    EXPECT_TRUE(timer_body["properties"].contains(field)) << field;
    EXPECT_TRUE(globus_body["properties"].contains(field)) << field;
  }

  // The human table shows it too.
  RunResult table = Cli({"provider", "show", "transfer"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("transfer"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("transfer_items"), std::string::npos) << table.out;
}

}  // namespace
}  // namespace timer::testing

namespace timer::testing {
namespace {

// The `globus-timer` CLI's `job transfer`, rewritten for `timer`: repeated
// --item, and an items file with a comment and a blank line; the label
// defaults to the name.
TEST_F(TransferE2eTest, JobTransferCommandTakesItemsAndAnItemsFile) {
  WriteFile(src_ + "/file1.txt", "one\n");
  WriteFile(src_ + "/file2.txt", "two\n");
  auto daemon = StartTimerd();
  json job = CliJson({"job", "transfer", "--name", "example-job", "--interval", "28800",
                      "--source-endpoint", kSrcId, "--dest-endpoint", kDstId, "--item",
                      "file1.txt", "new_file1.txt", "false", "--item", "file2.txt",
                      "new_file2.txt", "false"});
  EXPECT_EQ(job["label"], "example-job");
  json body = json::parse(job["action"]["body"].get<std::string>());
  EXPECT_EQ(body["label"], "example-job");
  ASSERT_EQ(body["transfer_items"].size(), 2u);
  WaitForRun(job["job_id"], 1);
  std::ifstream copied(dst_ + "/new_file2.txt");
  std::string text((std::istreambuf_iterator<char>(copied)),
                   std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "two\n");

  const std::string items = tmp_.path() + "/transfer_items.csv";
  std::ofstream(items) << "# This is my items file\n"
                       << "file1.txt, again1.txt, false\n"
                       << "\n"
                       << "file2.txt, again2.txt, false\n";
  json from_file =
      CliJson({"job", "transfer", "--name", "from-file", "--label", "L", "--interval",
               "1h", "--source-endpoint", kSrcId, "--dest-endpoint", kDstId,
               "--items-file", items, "--sync-level", "checksum"});
  json body2 = json::parse(from_file["action"]["body"].get<std::string>());
  EXPECT_EQ(body2["label"], "L");
  EXPECT_EQ(body2["sync_level"], "checksum");
  ASSERT_EQ(body2["transfer_items"].size(), 2u);
  EXPECT_EQ(body2["transfer_items"][1]["destination_path"], "again2.txt");

  RunResult bad = Cli({"job", "transfer", "--interval", "1h", "--source-endpoint", kSrcId,
                       "--dest-endpoint", kDstId, "--item", "a", "b", "maybe"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--item"), std::string::npos) << bad.err;
}

// The seed's `globus-timer job transfer` example, with its own paths
// (`~/file1.txt`, given to the CLI unexpanded, as a quoting shell or a
// script passes them), against two configured endpoints whose "~" is
// home/IDENTITY; then the seed's `job submit` body with its `/~/` paths, and
// the Globus Transfer document globus-cli sends, with filter rules.
TEST_F(TransferE2eTest, TheSeedsJobTransferExampleRunsWithItsPaths) {
  const std::string home = std::string("/home/") + kIdentity;
  WriteFile(seed_src_ + home + "/file1.txt", "file one\n");
  WriteFile(seed_src_ + home + "/file2.txt", "file two\n");
  auto daemon = StartTimerd();

  // As in the seed (000), apart from the program's name.
  json job = CliJson({"job",
                      "transfer",
                      "--name",
                      "example-job",
                      "--label",
                      "Timer Transfer Job",
                      "--interval",
                      "28800",
                      "--start",
                      "2020-01-01T12:34:56",
                      "--source-endpoint",
                      kSeedSrcId,
                      "--dest-endpoint",
                      kSeedDstId,
                      "--item",
                      "~/file1.txt",
                      "~/new_file1.txt",
                      "false",
                      "--item",
                      "~/file2.txt",
                      "~/new_file2.txt",
                      "false"});
  const std::string id = job["job_id"];
  // The body holds the paths as given.
  const json body = json::parse(job["action"]["body"].get<std::string>());
  EXPECT_EQ(body["transfer_items"][0]["source_path"], "~/file1.txt");
  // The start is in the past: run it now rather than wait for the grid.
  CliJson({"job", "run-now", id});
  json run = WaitForRun(id, 1);
  ASSERT_EQ(run["status"], "SUCCEEDED") << run.dump() << "\n" << daemon->log();
  EXPECT_EQ(Details(run)["label"], "Timer Transfer Job");
  EXPECT_EQ(Details(run)["files_transferred"], 2);
  EXPECT_EQ(Tree(seed_dst_), (std::map<std::string, std::string>{
                                 {"home", "<dir>"},
                                 {home.substr(1), "<dir>"},
                                 {home.substr(1) + "/new_file1.txt", "file one\n"},
                                 {home.substr(1) + "/new_file2.txt", "file two\n"}}));

  // The earlier seed's (001) `job submit` example: "/~/" paths in today's
  // body, wrapped in {"body": ...}.
  const std::string seed_body =
      std::string(R"({"body": {"source_endpoint_id": ")") + kSeedSrcId +
      R"(", "destination_endpoint_id": ")" + kSeedDstId +
      R"(", "transfer_items": [{"source_path": "/~/file1.txt", "destination_path": "/~/new_file1.txt"}]}})";
  fs::remove(seed_dst_ + home + "/new_file1.txt");
  json submitted = CliJson({"job", "submit", "--name", "test-tutorial-job", "--interval",
                            "600", "--action-url",
                            "https://actions.automate.globus.org/transfer/transfer/run",
                            "--action-body", seed_body});
  json run2 = WaitForRun(submitted["job_id"], 1);
  ASSERT_EQ(run2["status"], "SUCCEEDED") << run2.dump() << "\n" << daemon->log();
  EXPECT_EQ(ReadFile(seed_dst_ + home + "/new_file1.txt"), "file one\n");

  // The Globus Transfer document (globus-cli's TransferData) with --batch-like
  // items, filter rules and fields noted rather than applied.
  WriteFile(seed_src_ + home + "/tree/keep.txt", "kept\n");
  WriteFile(seed_src_ + home + "/tree/skip.tmp", "skipped\n");
  const json globus = {
      {"DATA_TYPE", "transfer"},
      {"source_endpoint", kSeedSrcId},
      {"destination_endpoint", kSeedDstId},
      {"label", "globus document"},
      {"notify_on_succeeded", true},
      {"filter_rules",
       {{{"DATA_TYPE", "filter_rule"}, {"method", "exclude"}, {"name", "*.tmp"}}}},
      {"DATA",
       {{{"DATA_TYPE", "transfer_item"},
         {"source_path", "/~/tree"},
         {"destination_path", "/shared/tree"},
         {"recursive", true}}}}};
  json globus_job =
      CliJson({"job", "submit", "--name", "globus-doc", "--interval", "1h",
               "--action-provider", "transfer", "--action-body", globus.dump()});
  json run3 = WaitForRun(globus_job["job_id"], 1);
  ASSERT_EQ(run3["status"], "SUCCEEDED") << run3.dump() << "\n" << daemon->log();
  EXPECT_EQ(Tree(seed_dst_ + "/shared"),
            (std::map<std::string, std::string>{{"tree", "<dir>"},
                                                {"tree/keep.txt", "kept\n"}}));
  json d3 = Details(run3);
  EXPECT_EQ(d3["entries_excluded"], 1) << d3.dump();
  EXPECT_TRUE(d3["notes"].contains("notify_on_succeeded")) << d3.dump();

  // A confinement attempt in the Globus shape is refused at submit, naming
  // the field as the document names it.
  json escape = globus;
  escape["DATA"][0]["source_path"] = "/~/../../../outside";
  RunResult refused =
      Cli({"job", "submit", "--name", "escape", "--interval", "1h", "--action-provider",
           "transfer", "--action-body", escape.dump()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("DATA[0].source_path: \"..\""), std::string::npos)
      << refused.err;
}

}  // namespace
}  // namespace timer::testing
