// transfer provider over temp directories, driven through the plugin host.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "plugin_host/plugin_host.h"
#include "plugin_test_util.h"
#include "s3_server.h"

namespace timer::plugin_host {
namespace {

namespace fs = std::filesystem;
using domain::ActionStatus;
using domain::Identity;
using domain::LocalIdentity;
using json = nlohmann::json;
using State = domain::ActionStatus::State;
using testing::ReadFile;
using testing::TempDir;
using testing::WaitForEnd;
using testing::WriteFile;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// path relative to root -> content, for regular files; "dir/" for dirs.
std::map<std::string, std::string> Snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root);
       it != fs::recursive_directory_iterator(); ++it) {
    std::string rel = fs::relative(it->path(), root).string();
    if (it->is_symlink()) {
      out[rel] = "-> " + fs::read_symlink(it->path()).string();
    } else if (it->is_directory()) {
      out[rel + "/"] = "";
    } else {
      out[rel] = ReadFile(it->path());
    }
  }
  return out;
}

// Threads of this process (the providers' pools among them).
int ThreadCount() {
  int n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/task")) {
    (void)e;
    ++n;
  }
  return n;
}

// Whether two files read the same, a MiB at a time.
bool SameContent(const fs::path& a, const fs::path& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  std::string ba(1 << 20, '\0'), bb(1 << 20, '\0');
  while (fa && fb) {
    fa.read(ba.data(), ba.size());
    fb.read(bb.data(), bb.size());
    if (fa.gcount() != fb.gcount() ||
        ba.compare(0, fa.gcount(), bb, 0, fb.gcount()) != 0) {
      return false;
    }
  }
  return fa.eof() && fb.eof();
}

bool HasTempFiles(const fs::path& root) {
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.path().filename().string().rfind(".timer-part-", 0) == 0) return true;
  }
  return false;
}

void SetMtime(const fs::path& p, time_t sec) {
  struct timespec t[2] = {{sec, 0}, {sec, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW), 0);
}

time_t Mtime(const fs::path& p) {
  struct stat st;
  EXPECT_EQ(stat(p.c_str(), &st), 0);
  return st.st_mtim.tv_sec;
}

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = dir_.path() / "src";
    dst_ = dir_.path() / "dst";
    outside_ = dir_.path() / "outside";
    restricted_ = dir_.path() / "restricted";
    homes_ = dir_.path() / "homes";
    for (const auto& d : {src_, dst_, outside_, restricted_, homes_, src_ / "inner"}) {
      fs::create_directories(d);
    }
    WriteFile(outside_ / "secret.txt", "top secret");
    Load(0);
  }

  // The provider with `extra` keys in its table (e.g. limits).
  void Load(int64_t max_bytes_per_second, json extra = json::object()) {
    provider_.reset();
    json table = {{"max_bytes_per_second", max_bytes_per_second},
                  {"endpoints",
                   {{{"id", "src"},
                     {"display_name", "Source"},
                     {"root", src_.string()},
                     {"allowed_identities", {"*"}}},
                    {{"id", "dst"},
                     {"display_name", "Destination"},
                     {"root", dst_.string()},
                     {"allowed_identities", {"*"}}},
                    {{"id", "lab"},
                     {"root", restricted_.string()},
                     {"allowed_identities", {"alice@example.org"}}},
                    // Inside src's root: one tree with it on disk.
                    {{"id", "src-inner"},
                     {"root", (src_ / "inner").string()},
                     {"allowed_identities", {"*"}}},
                    // Each identity's "~" is home/IDENTITY below the root.
                    {{"id", "homes"},
                     {"root", homes_.string()},
                     {"home", "home/{identity}"},
                     {"allowed_identities", {"*"}}}}}};
    for (auto& [k, v] : extra.items()) table[k] = v;
    auto p = LoadPlugin(TIMER_TRANSFER_SO, {{"transfer", table}});
    ASSERT_TRUE(p.ok()) << p.status();
    provider_ = *std::move(p);
  }

  static json Body(const std::string& from, const std::string& to, bool recursive = true,
                   json extra = json::object()) {
    json b = {
        {"source_endpoint_id", "src"},
        {"destination_endpoint_id", "dst"},
        {"transfer_items",
         {{{"source_path", from}, {"destination_path", to}, {"recursive", recursive}}}}};
    for (auto& [k, v] : extra.items()) b[k] = v;
    return b;
  }

  // Starts `body` and waits for the action to end.
  ActionStatus Run(const json& body, const Identity& who = LocalIdentity()) {
    auto st = provider_->Start("run/" + std::to_string(++runs_), who, body.dump());
    EXPECT_TRUE(st.ok()) << st.status();
    if (!st.ok()) return {};
    auto end = WaitForEnd(provider_.get(), st->action_id);
    EXPECT_TRUE(end.ok()) << end.status();
    return end.ok() ? *end : ActionStatus{};
  }

  static json Details(const ActionStatus& st) { return json::parse(st.details); }

  absl::Status Validate(const json& body, const Identity& who = LocalIdentity()) {
    return provider_->Validate(who, body.dump());
  }

  TempDir dir_;
  fs::path src_, dst_, outside_, restricted_, homes_;
  std::unique_ptr<Plugin> provider_;
  int runs_ = 0;
};

TEST_F(TransferTest, CopiesARecursiveTreeByteIdentically) {
  WriteFile(src_ / "tree/a.txt", "alpha");
  WriteFile(src_ / "tree/sub/b.bin", RandomBytes(3 << 20, 1));
  WriteFile(src_ / "tree/sub/deeper/c.txt", "");
  fs::create_directories(src_ / "tree/empty");
  ActionStatus st = Run(Body("tree", "backup/tree"));
  ASSERT_EQ(st.state, State::kSucceeded) << st.error << st.details;
  EXPECT_EQ(Snapshot(src_ / "tree"), Snapshot(dst_ / "backup/tree"));
  json d = Details(st);
  EXPECT_EQ(d["files_transferred"], 3);
  EXPECT_EQ(d["bytes_transferred"], 5 + (3 << 20));
  EXPECT_EQ(d["files_failed"], 0);
  EXPECT_FALSE(d.contains("encrypt_data"));
  EXPECT_FALSE(HasTempFiles(dst_));
}

TEST_F(TransferTest, PartFilesOfADeadWriterAreSweptAndALiveOnesAreKept) {
  WriteFile(src_ / "tree/a.txt", "alpha");
  // What a timerd killed mid-copy leaves: a part file under its (gone) pid.
  // No process has pid 2^22 + 1 here (pid_max is at most 2^22).
  WriteFile(dst_ / "backup/tree/.timer-part-4194305-0123456789abcdef", "half a fi");
  // A part file of a live writer (this process) is left alone.
  const std::string live =
      ".timer-part-" + std::to_string(getpid()) + "-fedcba9876543210";
  WriteFile(dst_ / "backup/tree" / live, "in progress");
  ActionStatus st = Run(Body("tree", "backup/tree"));
  ASSERT_EQ(st.state, State::kSucceeded) << st.error;
  EXPECT_FALSE(fs::exists(dst_ / "backup/tree/.timer-part-4194305-0123456789abcdef"));
  EXPECT_TRUE(fs::exists(dst_ / "backup/tree" / live));
  EXPECT_EQ(ReadFile(dst_ / "backup/tree/a.txt"), "alpha");
}

TEST_F(TransferTest, CopiesOneFileCreatingParentsAndTheWholeRoot) {
  WriteFile(src_ / "f.txt", "one file");
  ActionStatus st = Run(Body("f.txt", "x/y/g.txt", false));
  ASSERT_EQ(st.state, State::kSucceeded) << st.error;
  EXPECT_EQ(ReadFile(dst_ / "x/y/g.txt"), "one file");

  ActionStatus all = Run(Body("", "mirror"));
  ASSERT_EQ(all.state, State::kSucceeded) << all.error;
  EXPECT_EQ(ReadFile(dst_ / "mirror/f.txt"), "one file");
}

TEST_F(TransferTest, EachSyncLevelSkipsWhatItShould) {
  struct Case {
    std::string level;
    std::string dst_content;  // what is already at the destination
    time_t dst_mtime;         // the source's mtime is 2'000'000'000
    bool copied;
  };
  const time_t kSrcMtime = 2'000'000'000;
  const std::vector<Case> cases = {
      {"", "same!", kSrcMtime, true},           // no sync level: always copy
      {"exists", "other content", 1, false},    // exists: anything there
      {"size", "SAME!", kSrcMtime - 5, false},  // size: same size, different bytes
      {"size", "longer content", kSrcMtime, true},
      {"mtime", "xx", kSrcMtime + 10, false},    // destination newer
      {"mtime", "xx", kSrcMtime, false},         // same time
      {"mtime", "same!", kSrcMtime - 10, true},  // destination older
      {"checksum", "same!", 1, false},           // same bytes
      {"checksum", "SAME!", kSrcMtime, true},    // same size, different bytes
  };
  WriteFile(src_ / "f.txt", "same!");
  SetMtime(src_ / "f.txt", kSrcMtime);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.level + " over " + c.dst_content);
    WriteFile(dst_ / "f.txt", c.dst_content);
    SetMtime(dst_ / "f.txt", c.dst_mtime);
    json extra = json::object();
    if (!c.level.empty()) extra["sync_level"] = c.level;
    ActionStatus st = Run(Body("f.txt", "f.txt", false, extra));
    ASSERT_EQ(st.state, State::kSucceeded) << st.error;
    json d = Details(st);
    EXPECT_EQ(d["files_transferred"], c.copied ? 1 : 0);
    EXPECT_EQ(d["files_skipped"], c.copied ? 0 : 1);
    EXPECT_EQ(ReadFile(dst_ / "f.txt"), c.copied ? "same!" : c.dst_content);
  }
  EXPECT_EQ(Validate(Body("f.txt", "f.txt", false, {{"sync_level", "fuzzy"}})).code(),
            absl::StatusCode::kInvalidArgument);
  // Globus's integers work too: 3 is checksum.
  ActionStatus st = Run(Body("f.txt", "f.txt", false, {{"sync_level", 3}}));
  EXPECT_EQ(Details(st)["files_skipped"], 1);
}

TEST_F(TransferTest, SecondChecksumRunOverAnUnchangedTreeCopiesNothing) {
  for (int i = 0; i < 20; ++i) {
    WriteFile(src_ / "t" / ("d" + std::to_string(i % 3)) / ("f" + std::to_string(i)),
              RandomBytes(1000 + i, i));
  }
  json body = Body("t", "t", true, {{"sync_level", "checksum"}});
  ActionStatus first = Run(body);
  ASSERT_EQ(first.state, State::kSucceeded) << first.error;
  EXPECT_EQ(Details(first)["files_transferred"], 20);
  ActionStatus second = Run(body);
  ASSERT_EQ(second.state, State::kSucceeded) << second.error;
  EXPECT_EQ(Details(second)["files_transferred"], 0);
  EXPECT_EQ(Details(second)["files_skipped"], 20);
  EXPECT_EQ(Snapshot(src_ / "t"), Snapshot(dst_ / "t"));
}

TEST_F(TransferTest, VerifyChecksumVerifiesEveryFile) {
  WriteFile(src_ / "v/a", RandomBytes(2 << 20, 7));
  WriteFile(src_ / "v/b", "small");
  ActionStatus st = Run(Body("v", "v", true, {{"verify_checksum", true}}));
  ASSERT_EQ(st.state, State::kSucceeded) << st.error;
  EXPECT_EQ(Details(st)["files_verified"], 2);
  EXPECT_EQ(Details(st)["checksum_retries"], 0);
  EXPECT_EQ(Snapshot(src_ / "v"), Snapshot(dst_ / "v"));
}

TEST_F(TransferTest, PreserveTimestampKeepsMtime) {
  WriteFile(src_ / "p/old.txt", "old");
  SetMtime(src_ / "p/old.txt", 1'000'000'000);
  ActionStatus kept = Run(Body("p", "kept", true, {{"preserve_timestamp", true}}));
  ASSERT_EQ(kept.state, State::kSucceeded) << kept.error;
  EXPECT_EQ(Mtime(dst_ / "kept/old.txt"), 1'000'000'000);
  ActionStatus fresh = Run(Body("p", "fresh"));
  ASSERT_EQ(fresh.state, State::kSucceeded) << fresh.error;
  EXPECT_GT(Mtime(dst_ / "fresh/old.txt"), 1'000'000'000 + 86400);
}

TEST_F(TransferTest, EscapesAreRefusedAtValidate) {
  fs::create_directories(src_ / "a");
  fs::create_symlink(outside_, src_ / "link_out");
  fs::create_symlink(outside_ / "secret.txt", src_ / "secret_link");
  fs::create_symlink(outside_, dst_ / "evil");
  struct Case {
    json body;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {Body("../outside/secret.txt", "s.txt", false),
       "transfer_items[0].source_path: \"..\""},
      {Body("a/../../outside", "o"), "transfer_items[0].source_path: \"..\""},
      {Body("f", "../outside/x", false), "transfer_items[0].destination_path: \"..\""},
      {Body("/../outside/secret.txt", "s.txt", false),
       "transfer_items[0].source_path: \"..\""},
      {Body("/~/../../outside", "o"), "transfer_items[0].source_path: \"..\""},
      {Body("f", "~/../x", false), "transfer_items[0].destination_path: \"..\""},
      {Body("link_out/secret.txt", "s.txt", false), "goes through a symbolic link"},
      {Body("secret_link", "s.txt", false), "is a symbolic link"},
      {Body("link_out", "o"), "is a symbolic link"},
      {Body("a", "evil/x"),
       "transfer_items[0].destination_path: goes through a symbolic link"},
  };
  for (const Case& c : cases) {
    absl::Status s = Validate(c.body);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_NE(s.message().find(c.needle), absl::string_view::npos) << s;
    EXPECT_EQ(provider_->Start("esc", LocalIdentity(), c.body.dump()).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(Snapshot(dst_).size() == 1);   // only the "evil" link itself
  EXPECT_EQ(Snapshot(outside_).size(), 1u);  // untouched
}

TEST_F(TransferTest, SymlinksInsideATreeAreNeverFollowed) {
  WriteFile(src_ / "t/real.txt", "real");
  fs::create_symlink(outside_ / "secret.txt", src_ / "t/leak.txt");
  fs::create_symlink(outside_, src_ / "t/leakdir");
  ActionStatus st = Run(Body("t", "t"));
  ASSERT_EQ(st.state, State::kSucceeded) << st.error;
  EXPECT_EQ(Details(st)["symlinks_skipped"], 2);
  EXPECT_EQ(Snapshot(dst_ / "t"),
            (std::map<std::string, std::string>{{"real.txt", "real"}}));
}

TEST_F(TransferTest, ASymlinkAppearingAfterStartIsRefusedAtRun) {
  // The first item is slow (bandwidth-capped), so the links below are in
  // place long before the copier reaches the second and third items.
  Load(8 << 20);
  WriteFile(src_ / "slow.bin", RandomBytes(1 << 20, 9));
  WriteFile(src_ / "d/f.txt", "f");
  json body = Body("slow.bin", "slow.bin", false);
  body["transfer_items"].push_back({{"source_path", "d/f.txt"},
                                    {"destination_path", "out/f.txt"},
                                    {"recursive", false}});
  body["transfer_items"].push_back({{"source_path", "slow.bin"},
                                    {"destination_path", "out2/f.txt"},
                                    {"recursive", false}});
  auto st = provider_->Start("late-link", LocalIdentity(), body.dump());
  ASSERT_TRUE(st.ok()) << st.status();
  fs::remove_all(src_ / "d");
  fs::create_symlink(outside_, src_ / "d");     // source now leads out
  fs::create_symlink(outside_, dst_ / "out2");  // so does a destination
  auto end = WaitForEnd(provider_.get(), st->action_id);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->state, State::kFailed);
  EXPECT_NE(end->error.find("2 failed"), std::string::npos) << end->error;
  EXPECT_NE(end->error.find("symbolic link"), std::string::npos) << end->error;
  json d = Details(*end);
  EXPECT_EQ(d["files_transferred"], 1);
  ASSERT_EQ(d["errors"].size(), 2u);
  EXPECT_NE(d["errors"][1]["error"].get<std::string>().find("symbolic link"),
            std::string::npos)
      << d;
  EXPECT_FALSE(fs::exists(dst_ / "out/f.txt"));
  EXPECT_EQ(Snapshot(outside_).size(), 1u);  // nothing written outside
}

TEST_F(TransferTest, CancelMidwayLeavesNoPartialFile) {
  Load(8 << 20);  // 8 MB/s, so a 32 MB file takes ~4 s
  WriteFile(src_ / "big.bin", RandomBytes(32 << 20, 3));
  auto st = provider_->Start("cancel/1", LocalIdentity(),
                             Body("big.bin", "big.bin", false).dump());
  ASSERT_TRUE(st.ok()) << st.status();
  // Wait until the copy is under way (some bytes written), then cancel.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    auto now = provider_->Status(st->action_id);
    ASSERT_TRUE(now.ok());
    ASSERT_EQ(now->state, State::kActive) << "finished before it could be cancelled";
    if (Details(*now).value("bytes_transferred", int64_t{0}) > 0) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // A new file is written unnamed (O_TMPFILE): nothing under its name yet.
  EXPECT_FALSE(fs::exists(dst_ / "big.bin"));
  ASSERT_TRUE(provider_->Cancel(st->action_id).ok());
  auto end = WaitForEnd(provider_.get(), st->action_id, std::chrono::seconds(3));
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->state, State::kCancelled);
  EXPECT_FALSE(fs::exists(dst_ / "big.bin"));
  EXPECT_FALSE(HasTempFiles(dst_));
  EXPECT_LT(Details(*end)["bytes_transferred"].get<int64_t>(), 32 << 20);
}

TEST_F(TransferTest, IdentityNotAllowedOnAnEndpointIsPermissionDenied) {
  WriteFile(restricted_ / "r.txt", "lab data");
  json body = Body("r.txt", "r.txt", false);
  body["source_endpoint_id"] = "lab";
  Identity bob{"bob@example.org", "token"};
  Identity alice{"alice@example.org", "token"};
  absl::Status s = Validate(body, bob);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("source_endpoint_id"), absl::string_view::npos) << s;
  EXPECT_EQ(provider_->Start("perm/1", bob, body.dump()).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(fs::exists(dst_ / "r.txt"));
  ActionStatus ok = Run(body, alice);
  ASSERT_EQ(ok.state, State::kSucceeded) << ok.error;
  EXPECT_EQ(ReadFile(dst_ / "r.txt"), "lab data");
}

TEST_F(TransferTest, BadBodiesAreInvalidArgumentNamingTheField) {
  struct Case {
    json body;
    std::string needle;
  };
  json unknown_ep = Body("a", "b", false);
  unknown_ep["destination_endpoint_id"] = "nowhere";
  json no_items = Body("a", "b");
  no_items["transfer_items"] = json::array();
  json typo = Body("a", "b");
  typo["transfer_items"][0]["recursve"] = true;
  const std::vector<Case> cases = {
      {unknown_ep, "destination_endpoint_id: no endpoint \"nowhere\""},
      {no_items, "transfer_items: must be a non-empty array"},
      {typo, "transfer_items[0].recursve: unknown field"},
      {Body("a", "b", false, {{"verify_checksum", "yes"}}), "verify_checksum"},
      {Body("a", "", false), "transfer_items[0].destination_path: must name a file"},
      {json{{"source_endpoint_id", "src"}}, "destination_endpoint_id: required"},
  };
  for (const Case& c : cases) {
    absl::Status s = Validate(c.body);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_NE(s.message().find(c.needle), absl::string_view::npos) << s;
  }
  // Overlapping trees on one endpoint would copy into themselves.
  json overlap = Body("t", "t/copy");
  overlap["destination_endpoint_id"] = "src";
  EXPECT_EQ(Validate(overlap).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TransferTest, MissingSourceFailsTheRunNamingThePath) {
  ActionStatus st = Run(Body("nope/missing.txt", "m.txt", false));
  EXPECT_EQ(st.state, State::kFailed);
  EXPECT_NE(st.error.find("nope"), std::string::npos) << st.error;
  EXPECT_EQ(Details(st)["files_failed"], 1);
}

TEST_F(TransferTest, EncryptDataOnLocalEndpointsSaysSoInDetails) {
  WriteFile(src_ / "e.txt", "e");
  ActionStatus st =
      Run(Body("e.txt", "e.txt", false, {{"encrypt_data", true}, {"label", "nightly"}}));
  ASSERT_EQ(st.state, State::kSucceeded);
  json d = Details(st);
  EXPECT_NE(d["encrypt_data"].get<std::string>().find("not applied"), std::string::npos);
  EXPECT_EQ(d["label"], "nightly");
}

TEST_F(TransferTest, DeleteDestinationExtraRemovesWhatTheSourceLacks) {
  WriteFile(src_ / "m/keep.txt", "keep");
  WriteFile(dst_ / "m/keep.txt", "old");
  WriteFile(dst_ / "m/extra.txt", "extra");
  WriteFile(dst_ / "m/extradir/x/y.txt", "y");
  fs::create_symlink(outside_, dst_ / "m/extralink");
  ActionStatus st = Run(Body("m", "m", true, {{"delete_destination_extra", true}}));
  ASSERT_EQ(st.state, State::kSucceeded) << st.error;
  EXPECT_EQ(Snapshot(dst_ / "m"),
            (std::map<std::string, std::string>{{"keep.txt", "keep"}}));
  EXPECT_EQ(Details(st)["entries_deleted"],
            5);  // extra.txt, y.txt, x, extradir, extralink
  EXPECT_TRUE(fs::exists(outside_ / "secret.txt"));  // the link was removed, not followed
}

// An absolute path is absolute in the endpoint's namespace (Globus's
// convention), never the host's: "/tmp/x" is the root's tmp/x.
TEST_F(TransferTest, AbsolutePathsAreFromTheEndpointRoot) {
  WriteFile(src_ / "f.txt", "from the root");
  ActionStatus st = Run(Body("/f.txt", "/tmp/x", false));
  ASSERT_EQ(st.state, State::kSucceeded) << st.error;
  EXPECT_EQ(ReadFile(dst_ / "tmp/x"), "from the root");
  // A host path names the same path below the root: here, nothing.
  ActionStatus host = Run(Body((outside_ / "secret.txt").string(), "s.txt", false));
  EXPECT_EQ(host.state, State::kFailed);
  EXPECT_NE(host.error.find((outside_ / "secret.txt").string()), std::string::npos)
      << host.error;
  EXPECT_FALSE(fs::exists(dst_ / "s.txt"));
  ActionStatus whole = Run(Body("/", "/mirror"));
  ASSERT_EQ(whole.state, State::kSucceeded) << whole.error;
  EXPECT_EQ(ReadFile(dst_ / "mirror/f.txt"), "from the root");
}

TEST_F(TransferTest, GlobusPathFormsUseTheCallersHome) {
  Identity alice{"alice@example.org", "token"};
  const fs::path home = homes_ / "home/alice@example.org";
  WriteFile(home / "file1.txt", "one");
  WriteFile(home / "file2.txt", "two");
  WriteFile(homes_ / "shared/s.txt", "shared");
  json body = Body("/~/file1.txt", "/~/new_file1.txt", false);
  body["source_endpoint_id"] = "homes";
  body["destination_endpoint_id"] = "homes";
  body["transfer_items"].push_back(
      {{"source_path", "~/file2.txt"}, {"destination_path", "copies/new_file2.txt"}});
  body["transfer_items"].push_back(
      {{"source_path", "/shared/s.txt"}, {"destination_path", "~/s.txt"}});
  ActionStatus st = Run(body, alice);
  ASSERT_EQ(st.state, State::kSucceeded) << st.error << st.details;
  EXPECT_EQ(ReadFile(home / "new_file1.txt"), "one");
  EXPECT_EQ(ReadFile(home / "copies/new_file2.txt"), "two");  // relative: in the home
  EXPECT_EQ(ReadFile(home / "s.txt"), "shared");
  EXPECT_EQ(Details(st)["files_transferred"], 3);

  // Paths are shown as given.
  json missing = Body("/~/nope.txt", "x.txt", false);
  missing["source_endpoint_id"] = "homes";
  ActionStatus failed = Run(missing, alice);
  EXPECT_EQ(failed.state, State::kFailed);
  EXPECT_NE(failed.error.find("transfer_items[0].source_path /~/nope.txt"),
            std::string::npos)
      << failed.error;

  // Confinement attempts, each refused naming the field.
  struct Case {
    json body;
    Identity who;
    std::string needle;
  };
  Identity climber{"../../outside", "token"};
  Identity slash{"evil/..", "token"};
  const auto homes_body = [](const std::string& from, const std::string& to) {
    json b = Body(from, to, false);
    b["source_endpoint_id"] = "homes";
    b["destination_endpoint_id"] = "homes";
    return b;
  };
  const std::vector<Case> cases = {
      {homes_body("/~/../../../outside/secret.txt", "x"), alice,
       "transfer_items[0].source_path: \"..\""},
      {homes_body("~bob/file1.txt", "x"), alice,
       "transfer_items[0].source_path: \"~bob\""},
      {homes_body("~/secret.txt", "x"), climber,
       "transfer_items[0].source_path: identity \"../../outside\" cannot name a home"},
      {homes_body("/shared/s.txt", "~/x"), slash,
       "transfer_items[0].destination_path: identity \"evil/..\" cannot name a home"},
      {homes_body("/shared/s.txt", "x"), climber,
       "transfer_items[0].destination_path: identity"},
  };
  for (const Case& c : cases) {
    absl::Status s = Validate(c.body, c.who);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_NE(s.message().find(c.needle), absl::string_view::npos) << s;
  }
  // A hostile identity still uses paths from the root.
  ActionStatus abs = Run(homes_body("/shared/s.txt", "/shared/t.txt"), climber);
  ASSERT_EQ(abs.state, State::kSucceeded) << abs.error;
  EXPECT_EQ(ReadFile(homes_ / "shared/t.txt"), "shared");
  EXPECT_EQ(Snapshot(outside_).size(), 1u);
}

TEST(TransferConfig, AHomeTemplateWithDotDotIsRefused) {
  TempDir dir;
  auto bad =
      LoadPlugin(TIMER_TRANSFER_SO,
                 {{"transfer",
                   {{"endpoints",
                     {{{"id", "a"}, {"root", dir.str()}, {"home", "../{identity}"}}}}}}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("plugins.transfer.endpoints[0].home: \"..\""),
            absl::string_view::npos)
      << bad.status();
}

// The body globus-cli and the Globus SDK send (a TransferData document).
TEST_F(TransferTest, TheGlobusTransferDocumentIsAccepted) {
  WriteFile(src_ / "g/a.txt", "alpha");
  WriteFile(src_ / "g/skip.tmp", "tmp");
  WriteFile(src_ / "one.txt", "one");
  json body = {{"DATA_TYPE", "transfer"},
               {"submission_id", "3f3bc1f0-0000-4000-8000-000000000000"},
               {"source_endpoint", "src"},
               {"destination_endpoint", "dst"},
               {"label", "globus shape"},
               {"sync_level", 3},
               {"verify_checksum", true},
               {"preserve_timestamp", false},
               {"encrypt_data", false},
               {"delete_destination_extra", false},
               {"skip_source_errors", false},
               {"fail_on_quota_errors", false},
               {"recursive_symlinks", "ignore"},
               {"notify_on_succeeded", true},
               {"notify_on_failed", true},
               {"notify_on_inactive", true},
               {"filter_rules",
                {{{"DATA_TYPE", "filter_rule"},
                  {"method", "exclude"},
                  {"name", "*.tmp"},
                  {"type", "file"}}}},
               {"DATA",
                {{{"DATA_TYPE", "transfer_item"},
                  {"source_path", "/g"},
                  {"destination_path", "/backup/g"},
                  {"recursive", true}},
                 {{"DATA_TYPE", "transfer_item"},
                  {"source_path", "/one.txt"},
                  {"destination_path", "/backup/one.txt"}}}}};
  ActionStatus st = Run(body);
  ASSERT_EQ(st.state, State::kSucceeded) << st.error << st.details;
  EXPECT_EQ(Snapshot(dst_ / "backup"),
            (std::map<std::string, std::string>{
                {"g/", ""}, {"g/a.txt", "alpha"}, {"one.txt", "one"}}));
  json d = Details(st);
  EXPECT_EQ(d["label"], "globus shape");
  EXPECT_EQ(d["files_verified"], 2);
  EXPECT_EQ(d["entries_excluded"], 1);
  for (const char* noted : {"notify_on_succeeded", "notify_on_failed",
                            "notify_on_inactive", "submission_id"}) {
    EXPECT_TRUE(d["notes"].contains(noted)) << noted << d.dump();
  }

  // Refused fields, each named as the document names it.
  struct Case {
    std::string pointer;  // a JSON pointer into the body
    json value;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"/deadline", "2030-01-01T00:00:00Z", "deadline: not supported"},
      {"/source_local_user", "root", "source_local_user: not supported"},
      {"/DATA_TYPE", "delete", "DATA_TYPE: must be \"transfer\""},
      {"/DATA/0/external_checksum", "d41d8cd98f00b204e9800998ecf8427e",
       "DATA[0].external_checksum: not supported"},
      {"/DATA/1/DATA_TYPE", "transfer_symlink_item", "DATA[1].DATA_TYPE"},
      {"/DATA/1/source_path", "/../outside/secret.txt", "DATA[1].source_path: \"..\""},
      {"/DATA/0/recursve", true, "DATA[0].recursve: unknown field"},
      {"/source_endpoint", "nowhere", "source_endpoint: no endpoint \"nowhere\""},
      {"/source_endpoint_id", "src", "source_endpoint_id: unknown field"},
      {"/filter_rules/0/method", "drop", "filter_rules[0].method"},
      {"/perf_cc", 4, "perf_cc: unknown field"},
  };
  for (const Case& c : cases) {
    json bad = body;
    bad[json::json_pointer(c.pointer)] = c.value;
    absl::Status s = Validate(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.pointer;
    EXPECT_NE(s.message().find(c.needle), absl::string_view::npos) << s;
  }
  json no_data = body;
  no_data.erase("DATA");
  EXPECT_NE(Validate(no_data).message().find("DATA: required"), absl::string_view::npos);
  // allowed_identities holds for this shape too, naming its field.
  json lab = body;
  lab["source_endpoint"] = "lab";
  absl::Status denied = Validate(lab, Identity{"bob@example.org", "token"});
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(denied.message().find("source_endpoint: identity"), absl::string_view::npos);
}

TEST_F(TransferTest, FilterRulesAreFirstMatchWinsAndProtectFromDeletion) {
  WriteFile(src_ / "f/a.txt", "a");
  WriteFile(src_ / "f/b.log", "b");
  WriteFile(src_ / "f/keep/c.txt", "c");
  WriteFile(src_ / "f/cache/d.txt", "d");
  WriteFile(dst_ / "f/old.log", "excluded at the destination: kept");
  WriteFile(dst_ / "f/old.txt", "not in the source: deleted");
  json rules = json::array({
      {{"method", "exclude"}, {"name", "cache"}, {"type", "dir"}},
      {{"method", "include"}, {"name", "*.txt"}, {"type", "file"}},
      {{"method", "exclude"}, {"name", "*"}, {"type", "file"}},
  });
  ActionStatus st = Run(Body(
      "f", "f", true, {{"filter_rules", rules}, {"delete_destination_extra", true}}));
  ASSERT_EQ(st.state, State::kSucceeded) << st.error;
  EXPECT_EQ(Snapshot(dst_ / "f"), (std::map<std::string, std::string>{
                                      {"a.txt", "a"},
                                      {"keep/", ""},
                                      {"keep/c.txt", "c"},
                                      {"old.log", "excluded at the destination: kept"}}));
  EXPECT_EQ(Details(st)["entries_excluded"], 2);  // b.log, cache/
  EXPECT_EQ(Details(st)["entries_deleted"], 1);   // old.txt
  // An item's own path is not filtered.
  ActionStatus item = Run(Body("f/b.log", "b.log", false, {{"filter_rules", rules}}));
  ASSERT_EQ(item.state, State::kSucceeded) << item.error;
  EXPECT_EQ(ReadFile(dst_ / "b.log"), "b");
}

TEST_F(TransferTest, SkipSourceErrorsSkipsWhatIsMissingAndCountsIt) {
  WriteFile(src_ / "here.txt", "here");
  json body = Body("gone.txt", "gone.txt", false);
  body["transfer_items"].push_back(
      {{"source_path", "here.txt"}, {"destination_path", "here.txt"}});
  ActionStatus strict = Run(body);
  EXPECT_EQ(strict.state, State::kFailed);
  EXPECT_EQ(Details(strict)["files_failed"], 1);

  body["skip_source_errors"] = true;
  ActionStatus lenient = Run(body);
  ASSERT_EQ(lenient.state, State::kSucceeded) << lenient.error;
  json d = Details(lenient);
  EXPECT_EQ(d["source_errors_skipped"], 1);
  EXPECT_EQ(d["files_failed"], 0);
  EXPECT_EQ(d["skipped"][0]["path"], "transfer_items[0].source_path gone.txt");
  EXPECT_EQ(ReadFile(dst_ / "here.txt"), "here");
}

TEST_F(TransferTest, RecursiveSymlinksKeepRecreatesOnlyLinksThatStayInside) {
  WriteFile(src_ / "k/a.txt", "a");
  WriteFile(src_ / "k/sub/b.txt", "b");
  fs::create_symlink("a.txt", src_ / "k/same_dir");
  fs::create_symlink("sub/b.txt", src_ / "k/below");
  fs::create_symlink("../a.txt", src_ / "k/sub/up_one");      // stays in k/
  fs::create_symlink("../../../x", src_ / "k/sub/too_high");  // above dst's root
  fs::create_symlink(outside_ / "secret.txt", src_ / "k/absolute");
  fs::create_symlink("sub/../../x", src_ / "k/dotdot_after_name");
  ActionStatus st = Run(Body("k", "k", true, {{"recursive_symlinks", "keep"}}));
  ASSERT_EQ(st.state, State::kSucceeded) << st.error;
  json d = Details(st);
  EXPECT_EQ(d["symlinks_kept"], 3) << d.dump();
  EXPECT_EQ(d["symlinks_skipped"], 3) << d.dump();
  EXPECT_EQ(d["recursive_symlinks"], "keep");
  EXPECT_EQ(fs::read_symlink(dst_ / "k/same_dir"), "a.txt");
  EXPECT_EQ(fs::read_symlink(dst_ / "k/below"), "sub/b.txt");
  EXPECT_EQ(fs::read_symlink(dst_ / "k/sub/up_one"), "../a.txt");
  for (const char* not_kept : {"k/sub/too_high", "k/absolute", "k/dotdot_after_name"}) {
    EXPECT_FALSE(fs::exists(fs::symlink_status(dst_ / not_kept))) << not_kept;
  }
  EXPECT_FALSE(HasTempFiles(dst_));
  // Again: the links are there already, as they are.
  ActionStatus again = Run(Body("k", "k", true, {{"recursive_symlinks", "keep"}}));
  ASSERT_EQ(again.state, State::kSucceeded) << again.error;
  EXPECT_EQ(Details(again)["symlinks_kept"], 0);
}

TEST_F(TransferTest, RecursiveSymlinksCopyFollowsOnlyInsideTheSourceRoot) {
  WriteFile(src_ / "c/a.txt", "a");
  WriteFile(src_ / "c/sub/b.txt", "b");
  WriteFile(src_ / "elsewhere/e.txt", "e");  // in the root, outside the item
  fs::create_symlink("a.txt", src_ / "c/to_file");
  fs::create_symlink("sub", src_ / "c/to_dir");
  fs::create_symlink("../elsewhere", src_ / "c/to_sibling");
  fs::create_symlink("chain2", src_ / "c/chain1");
  fs::create_symlink("a.txt", src_ / "c/chain2");
  fs::create_symlink(outside_ / "secret.txt", src_ / "c/absolute");
  fs::create_symlink("../../outside/secret.txt", src_ / "c/escape");
  fs::create_symlink("..", src_ / "c/sub/loop");  // c itself: a loop
  fs::create_symlink("missing", src_ / "c/dangling");
  ActionStatus st = Run(Body("c", "c", true, {{"recursive_symlinks", "copy"}}));
  ASSERT_EQ(st.state, State::kSucceeded) << st.error << st.details;
  EXPECT_EQ(Snapshot(dst_ / "c"), (std::map<std::string, std::string>{
                                      {"a.txt", "a"},
                                      {"chain1", "a"},
                                      {"chain2", "a"},
                                      {"sub/", ""},
                                      {"sub/b.txt", "b"},
                                      {"to_dir/", ""},
                                      {"to_dir/b.txt", "b"},
                                      {"to_file", "a"},
                                      {"to_sibling/", ""},
                                      {"to_sibling/e.txt", "e"},
                                  }));
  json d = Details(st);
  EXPECT_EQ(d["symlinks_followed"], 5)
      << d.dump();  // to_file, to_dir, to_sibling, chain1/2
  // absolute, escape, dangling, and the loop (twice: under sub/ and to_dir/)
  EXPECT_EQ(d["symlinks_skipped"], 5) << d.dump();
  EXPECT_EQ(Snapshot(outside_).size(), 1u);
}

// A file replacing another is written out of sight and renamed over it:
// cancelled midway, the old file stays whole and no temporary file stays.
// With a sync level the name is looked at first and the copy written under
// a temporary name; without, it is written unnamed and finds the name
// taken only when complete.
TEST_F(TransferTest, CancelMidwayOverAnExistingFileKeepsTheOldOne) {
  Load(8 << 20);  // 8 MB/s, so a 32 MB file takes ~4 s
  WriteFile(src_ / "big.bin", RandomBytes(32 << 20, 4));
  const std::string old_content = "the previous backup";
  for (const char* level : {"size", ""}) {
    SCOPED_TRACE(level);
    WriteFile(dst_ / "big.bin", old_content);
    json extra = json::object();
    if (*level != '\0') extra["sync_level"] = level;
    auto st = provider_->Start(std::string("cancel/over/") + level, LocalIdentity(),
                               Body("big.bin", "big.bin", false, extra).dump());
    ASSERT_TRUE(st.ok()) << st.status();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      auto now = provider_->Status(st->action_id);
      ASSERT_TRUE(now.ok());
      ASSERT_EQ(now->state, State::kActive) << "finished before it could be cancelled";
      if (Details(*now).value("bytes_transferred", int64_t{0}) > 0) break;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    EXPECT_EQ(HasTempFiles(dst_), *level != '\0');  // named only when looked first
    EXPECT_EQ(ReadFile(dst_ / "big.bin"), old_content);
    ASSERT_TRUE(provider_->Cancel(st->action_id).ok());
    auto end = WaitForEnd(provider_.get(), st->action_id, std::chrono::seconds(3));
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_EQ(end->state, State::kCancelled);
    EXPECT_EQ(ReadFile(dst_ / "big.bin"), old_content);
    EXPECT_FALSE(HasTempFiles(dst_));
  }
}

// --- H4: a tenant must not be able to fill the disk ------------------------

TEST_F(TransferTest, SparseFilesStaySparse) {
  constexpr off_t kSize = 64 << 20;
  const fs::path f = src_ / "sparse.img";
  {
    int fd = open(f.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kSize), 0);
    const std::string block(4096, 'x');
    ASSERT_EQ(pwrite(fd, block.data(), block.size(), kSize / 2), 4096);
    close(fd);
  }
  struct stat st;
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  if (st.st_blocks * 512 > (1 << 20)) GTEST_SKIP() << "this filesystem has no holes";
  for (bool verify : {false, true}) {
    SCOPED_TRACE(verify ? "verify_checksum" : "plain");
    const std::string name = verify ? "verified.img" : "plain.img";
    ActionStatus r = Run(Body("sparse.img", name, false, {{"verify_checksum", verify}}));
    ASSERT_EQ(r.state, State::kSucceeded) << r.error;
    struct stat copy;
    ASSERT_EQ(stat((dst_ / name).c_str(), &copy), 0);
    EXPECT_EQ(copy.st_size, kSize);
    EXPECT_LE(copy.st_blocks * 512, 1 << 20) << "the holes were written out";
    EXPECT_LE(Details(r)["bytes_transferred"].get<int64_t>(), 1 << 20);
    EXPECT_TRUE(SameContent(f, dst_ / name));
  }
}

TEST_F(TransferTest, ARunStopsAtItsByteAndFileLimitsNamingThem) {
  for (const char* name : {"a", "b", "c"})
    WriteFile(src_ / "q" / name, RandomBytes(600, name[0]));

  Load(0, {{"max_bytes_per_run", 1000}});
  ActionStatus bytes = Run(Body("q", "q"));
  EXPECT_EQ(bytes.state, State::kFailed);
  EXPECT_NE(bytes.error.find("max_bytes_per_run (1000) reached"), std::string::npos)
      << bytes.error;
  EXPECT_EQ(Details(bytes)["files_transferred"], 1);
  EXPECT_FALSE(fs::exists(dst_ / "q/b"));
  EXPECT_FALSE(HasTempFiles(dst_));

  // The destination directory and one file are two entries.
  Load(0, {{"max_files_per_run", 2}});
  ActionStatus files = Run(Body("q", "q2"));
  EXPECT_EQ(files.state, State::kFailed);
  EXPECT_NE(files.error.find("max_files_per_run (2) reached"), std::string::npos)
      << files.error;
  EXPECT_TRUE(fs::exists(dst_ / "q2/a"));
  EXPECT_FALSE(fs::exists(dst_ / "q2/b"));
}

TEST_F(TransferTest, EachIdentityHasADailyQuotaOnEachDestination) {
  Load(0, {{"max_bytes_per_identity_per_day", 1500}});
  WriteFile(src_ / "k", RandomBytes(1000, 4));
  Identity alice{"alice@example.org", "token"};
  Identity bob{"bob@example.org", "token"};
  ActionStatus first = Run(Body("k", "a1", false), alice);
  ASSERT_EQ(first.state, State::kSucceeded) << first.error;
  ActionStatus second = Run(Body("k", "a2", false), alice);
  EXPECT_EQ(second.state, State::kFailed);
  EXPECT_NE(second.error.find("max_bytes_per_identity_per_day (1500) reached for "
                              "\"alice@example.org\" on endpoint \"dst\""),
            std::string::npos)
      << second.error;
  EXPECT_FALSE(fs::exists(dst_ / "a2"));
  // Another identity is not held back by alice's writes.
  ActionStatus other = Run(Body("k", "b1", false), bob);
  EXPECT_EQ(other.state, State::kSucceeded) << other.error;
}

TEST_F(TransferTest, AFreeSpaceFloorStopsARunNamingTheEndpoint) {
  Load(0, {{"min_free_bytes", int64_t{1} << 50}});  // more than any disk here
  WriteFile(src_ / "f", "data");
  ActionStatus st = Run(Body("f", "f", false));
  EXPECT_EQ(st.state, State::kFailed);
  EXPECT_NE(st.error.find("destination endpoint \"dst\""), std::string::npos) << st.error;
  EXPECT_NE(st.error.find("min_free_bytes (1125899906842624)"), std::string::npos)
      << st.error;
  EXPECT_FALSE(fs::exists(dst_ / "f"));
}

TEST_F(TransferTest, ItemsThatWouldCopyTheirOwnOutputAreRefused) {
  // A directory copied into two children of another, and that one back
  // inside the first: every run doubled the data.
  json doubling = Body("d", "e/1");
  doubling["destination_endpoint_id"] = "src";
  doubling["transfer_items"].push_back(
      {{"source_path", "d"}, {"destination_path", "e/2"}, {"recursive", true}});
  doubling["transfer_items"].push_back(
      {{"source_path", "e"}, {"destination_path", "d/back"}, {"recursive", true}});
  absl::Status s = Validate(doubling);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("transfer_items[0].source_path: overlaps "
                             "transfer_items[2].destination_path"),
            absl::string_view::npos)
      << s;
  EXPECT_EQ(provider_->Start("dbl", LocalIdentity(), doubling.dump()).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Two endpoints whose roots nest are one tree on disk.
  json nested = Body("", "copy");
  nested["destination_endpoint_id"] = "src-inner";
  EXPECT_EQ(Validate(nested).code(), absl::StatusCode::kInvalidArgument);
  json apart = Body("data", "copy");
  apart["destination_endpoint_id"] = "src-inner";
  EXPECT_TRUE(Validate(apart).ok()) << Validate(apart);
}

TEST(TransferConfig, AnEndpointWithoutAllowedIdentitiesIsClosed) {
  TempDir dir;
  for (const char* d : {"open", "unlisted", "empty"})
    fs::create_directories(dir.path() / d);
  auto p =
      LoadPlugin(TIMER_TRANSFER_SO,
                 {{"transfer",
                   {{"endpoints",
                     {{{"id", "open"},
                       {"root", (dir.path() / "open").string()},
                       {"allowed_identities", {"*"}}},
                      {{"id", "unlisted"}, {"root", (dir.path() / "unlisted").string()}},
                      {{"id", "empty"},
                       {"root", (dir.path() / "empty").string()},
                       {"allowed_identities", json::array()}}}}}}});
  ASSERT_TRUE(p.ok()) << p.status();
  const Identity alice{"alice@example.org", "token"};
  auto body = [](const std::string& to) {
    return json{{"source_endpoint_id", "open"},
                {"destination_endpoint_id", to},
                {"transfer_items", {{{"source_path", "a"}, {"destination_path", "b"}}}}}
        .dump();
  };
  EXPECT_TRUE((*p)->Validate(alice, body("open")).ok());
  for (const char* closed : {"unlisted", "empty"}) {
    absl::Status s = (*p)->Validate(alice, body(closed));
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << closed;
    EXPECT_NE(s.message().find("destination_endpoint_id"), absl::string_view::npos) << s;
  }
}

// What a remote endpoint cannot honour is refused at validation, naming the
// field and the endpoint, never silently ignored: recursive_symlinks keep
// into S3 (which holds no links; copy, and keep from S3, are fine), encrypt_data with an
// S3 endpoint over plain http (validation connects to nothing, so no server is needed
// here).
TEST(TransferConfig, RemoteEndpointsRefuseOptionsTheyCannotHonour) {
  TempDir dir;
  fs::create_directories(dir.path() / "local");
  const fs::path secret = dir.path() / "s3-secret";
  WriteFile(secret, "not-a-real-secret\n");
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  auto s3 = [&](const std::string& id, const std::string& url) {
    return json{{"id", id},
                {"access_key_id", "AKIDTEST"},
                {"secret_access_key_file", secret.string()},
                {"type", "s3"},
                {"endpoint", url},
                {"bucket", "data"},
                {"path_style", true},
                {"allow_insecure_http", true},
                {"allowed_identities", {"*"}}};
  };
  auto p = LoadPlugin(TIMER_TRANSFER_SO, {{"transfer",
                                           {{"endpoints",
                                             {{{"id", "local"},
                                               {"root", (dir.path() / "local").string()},
                                               {"allowed_identities", {"*"}}},
                                              s3("plain", "http://127.0.0.1:9"),
                                              s3("tls", "https://s3.example.org")}}}}});
  ASSERT_TRUE(p.ok()) << p.status();
  auto body = [](const std::string& from, const std::string& to, json extra) {
    json b{{"source_endpoint_id", from},
           {"destination_endpoint_id", to},
           {"transfer_items",
            {{{"source_path", "t"}, {"destination_path", "t"}, {"recursive", true}}}}};
    for (auto& [k, v] : extra.items()) b[k] = v;
    return b.dump();
  };
  const Identity alice{"alice@example.org", "token"};
  struct Case {
    std::string from, to;
    json extra;
    std::string needle;  // "" when accepted
  };
  const std::vector<Case> cases = {
      {"local",
       "plain",
       {{"encrypt_data", true}},
       "encrypt_data: endpoint \"plain\" (s3)"},
      {"plain",
       "local",
       {{"encrypt_data", true}},
       "encrypt_data: endpoint \"plain\" (s3)"},
      {"local", "tls", {{"encrypt_data", true}}, ""},
      {"local", "plain", {{"encrypt_data", false}}, ""},
      {"local", "tls", {{"recursive_symlinks", "keep"}}, "recursive_symlinks: keep"},
      {"tls", "local", {{"recursive_symlinks", "copy"}}, ""},
      {"local", "tls", {{"recursive_symlinks", "copy"}}, ""},
      {"tls", "local", {{"recursive_symlinks", "keep"}}, ""},
      {"tls", "local", {{"recursive_symlinks", "ignore"}}, ""},
      {"local", "tls", {{"filter_rules", {{{"name", "*.tmp"}}}}}, ""},
  };
  for (const Case& c : cases) {
    const std::string b = body(c.from, c.to, c.extra);
    absl::Status s = (*p)->Validate(alice, b);
    if (c.needle.empty()) {
      EXPECT_TRUE(s.ok()) << b << ": " << s;
      continue;
    }
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << b;
    EXPECT_NE(s.message().find(c.needle), absl::string_view::npos) << s;
    if (c.needle.rfind("recursive_symlinks", 0) == 0) {
      EXPECT_NE(s.message().find("s3 endpoint"), absl::string_view::npos) << s;
    }
  }
}

// S3 end to end through the provider, as a job's run goes (Start, then
// Status until it ends), against s3rver (tests/support/s3_server.h, started
// once for this process): a small tree local -> S3 with verify_checksum and
// a filter rule, a second run that finds it all there (sync_level
// checksum), then S3 -> local, byte for byte.
TEST(TransferS3, ATreeGoesToS3AndBackThroughTheProvider) {
  auto server = timer::testing::S3Server::Get();
  ASSERT_TRUE(server.ok()) << server.status();
  TempDir dir;
  const fs::path up = dir.path() / "up", down = dir.path() / "down";
  fs::create_directories(down);
  const fs::path secret = dir.path() / "s3-secret";
  WriteFile(secret, std::string(timer::testing::S3Server::kSecretAccessKey) + "\n");
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  std::string big(300 * 1024, '\0');
  std::mt19937 rng(20);
  for (char& c : big) c = static_cast<char>(rng());
  WriteFile(up / "t/a.txt", "alpha");
  WriteFile(up / "t/sub/b.bin", big);
  WriteFile(up / "t/sub/c.tmp", "excluded");
  auto p = LoadPlugin(
      TIMER_TRANSFER_SO,
      {{"transfer",
        {{"endpoints",
          {{{"id", "up"}, {"root", up.string()}, {"allowed_identities", {"*"}}},
           {{"id", "down"}, {"root", down.string()}, {"allowed_identities", {"*"}}},
           {{"id", "bucket"},
            {"type", "s3"},
            {"endpoint", (*server)->endpoint()},
            {"bucket", timer::testing::S3Server::kBucketA},
            {"prefix", "transfer-provider-" + std::to_string(getpid())},
            {"access_key_id", timer::testing::S3Server::kAccessKeyId},
            {"secret_access_key_file", secret.string()},
            {"path_style", true},
            {"timeout_seconds", 10},
            {"allowed_identities", {"*"}}}}}}}});
  ASSERT_TRUE(p.ok()) << p.status();
  int runs = 0;
  auto run = [&](const json& body) {
    auto st = (*p)->Start("s3/" + std::to_string(++runs), LocalIdentity(), body.dump());
    EXPECT_TRUE(st.ok()) << st.status();
    if (!st.ok()) return ActionStatus{};
    auto end = WaitForEnd(p->get(), st->action_id, std::chrono::seconds(60));
    EXPECT_TRUE(end.ok()) << end.status();
    return end.ok() ? *end : ActionStatus{};
  };
  const json upload = {{"source_endpoint_id", "up"},
                       {"destination_endpoint_id", "bucket"},
                       {"verify_checksum", true},
                       {"sync_level", "checksum"},
                       {"filter_rules", {{{"method", "exclude"}, {"name", "*.tmp"}}}},
                       {"transfer_items",
                        {{{"source_path", "/t"},
                          {"destination_path", "/backup/t"},
                          {"recursive", true}}}}};
  ActionStatus first = run(upload);
  ASSERT_EQ(first.state, State::kSucceeded) << first.error << " " << first.details;
  json d = json::parse(first.details);
  EXPECT_EQ(d["files_transferred"], 2);
  EXPECT_EQ(d["files_verified"], 2);
  EXPECT_EQ(d["entries_excluded"], 1);
  EXPECT_EQ(d["bytes_transferred"], 5 + big.size());
  EXPECT_EQ(d["encrypt_data"], false);  // plain http on loopback

  ActionStatus again = run(upload);
  ASSERT_EQ(again.state, State::kSucceeded) << again.error;
  d = json::parse(again.details);
  EXPECT_EQ(d["files_transferred"], 0);
  EXPECT_EQ(d["files_skipped"], 2);

  const json download = {{"source_endpoint_id", "bucket"},
                         {"destination_endpoint_id", "down"},
                         {"transfer_items",
                          {{{"source_path", "/backup/t"},
                            {"destination_path", "/t"},
                            {"recursive", true}}}}};
  ActionStatus back = run(download);
  ASSERT_EQ(back.state, State::kSucceeded) << back.error << " " << back.details;
  EXPECT_EQ(json::parse(back.details)["files_transferred"], 2);
  EXPECT_EQ(ReadFile(down / "t/a.txt"), "alpha");
  EXPECT_EQ(ReadFile(down / "t/sub/b.bin"), big);
  EXPECT_FALSE(fs::exists(down / "t/sub/c.tmp"));
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(down))
    files += e.is_regular_file();
  EXPECT_EQ(files, 2u);
}

// `timer provider show transfer`: each caller sees the endpoints it may use
// (id, name, type, home, whether encrypt_data is accepted; for S3 the URL,
// region, bucket and prefix), in config order, and nothing of the others;
// never a secret, the name of a secret file, or a local root.
TEST(TransferConfig, DescribeShowsTheCallerItsOwnEndpointsWithoutSecrets) {
  TempDir dir;
  fs::create_directories(dir.path() / "shared");
  fs::create_directories(dir.path() / "lab-only");
  const fs::path secret = dir.path() / "s3-secret";
  WriteFile(secret, "very-secret-value\n");
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  auto p =
      LoadPlugin(TIMER_TRANSFER_SO, {{"transfer",
                                      {{"endpoints",
                                        {{{"id", "shared"},
                                          {"display_name", "Shared"},
                                          {"root", (dir.path() / "shared").string()},
                                          {"home", "home/{identity}"},
                                          {"allowed_identities", {"*"}}},
                                         {{"id", "lab-only"},
                                          {"display_name", "Lab secret project"},
                                          {"root", (dir.path() / "lab-only").string()},
                                          {"allowed_identities", {"alice@example.org"}}},
                                         {{"id", "archive"},
                                          {"type", "s3"},
                                          {"endpoint", "https://s3.example.org"},
                                          {"region", "eu-central-1"},
                                          {"bucket", "lab-archive"},
                                          {"prefix", "timer"},
                                          {"access_key_id", "AKIDSHOWN"},
                                          {"secret_access_key_file", secret.string()},
                                          {"allowed_identities", {"alice@example.org"}}},
                                         {{"id", "plain"},
                                          {"type", "s3"},
                                          {"endpoint", "http://127.0.0.1:9"},
                                          {"bucket", "scratch"},
                                          {"path_style", true},
                                          {"access_key_id", "AKIDSHOWN"},
                                          {"secret_access_key_file", secret.string()},
                                          {"allowed_identities", {"*"}}}}}}}});
  ASSERT_TRUE(p.ok()) << p.status();
  auto describe = [&](const std::string& who) {
    auto d = (*p)->Describe(Identity{who, "token"});
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? json::parse(*d) : json();
  };
  auto ids = [](const json& d) {
    std::vector<std::string> out;
    for (const json& e : d["endpoints"]) out.push_back(e["id"]);
    return out;
  };

  const json alice = describe("alice@example.org");
  EXPECT_EQ(ids(alice),
            (std::vector<std::string>{"shared", "lab-only", "archive", "plain"}));
  const json& shared = alice["endpoints"][0];
  EXPECT_EQ(shared["type"], "local");
  EXPECT_EQ(shared["display_name"], "Shared");
  EXPECT_EQ(shared["home"], "/home/alice@example.org");
  EXPECT_EQ(shared["encrypt_data"], true);
  EXPECT_FALSE(shared.contains("root"));
  const json& archive = alice["endpoints"][2];
  EXPECT_EQ(archive["type"], "s3");
  EXPECT_EQ(archive["endpoint"], "https://s3.example.org");
  EXPECT_EQ(archive["region"], "eu-central-1");
  EXPECT_EQ(archive["bucket"], "lab-archive");
  EXPECT_EQ(archive["prefix"], "timer/");
  EXPECT_EQ(archive["home"], "/");
  EXPECT_EQ(archive["encrypt_data"], true);
  EXPECT_EQ(alice["endpoints"][3]["encrypt_data"], false);  // http

  // Bob sees the open endpoints only: not the ids, names or buckets of
  // alice's.
  const json bob = describe("bob@example.org");
  EXPECT_EQ(ids(bob), (std::vector<std::string>{"shared", "plain"}));
  const std::string bob_text = bob.dump();
  for (const char* hidden :
       {"lab-only", "Lab secret project", "lab-archive", "archive"}) {
    EXPECT_EQ(bob_text.find(hidden), std::string::npos) << hidden << " in " << bob_text;
  }
  for (const json& d : {alice, bob}) {
    const std::string text = d.dump();
    for (const std::string& never :
         {std::string("very-secret-value"), secret.string(), std::string("AKIDSHOWN"),
          (dir.path() / "shared").string(), std::string("secret_access_key")}) {
      EXPECT_EQ(text.find(never), std::string::npos) << never << " in " << text;
    }
  }
}

TEST(TransferConfig, SystemDirectoriesAndTheDataDirectoryAreRefusedAsRoots) {
  auto load = [](const std::string& root) {
    return LoadPlugin(
        TIMER_TRANSFER_SO,
        {{"transfer",
          {{"endpoints",
            {{{"id", "a"}, {"root", root}, {"allowed_identities", {"*"}}}}}}}});
  };
  for (const char* root :
       {"/", "//", "/etc", "/etc/ssl", "/etc/../etc", "/proc", "/proc/self", "/sys",
        "/dev", "/boot", "/usr", "/usr/local", "/var", "/tmp", "/home", "/root"}) {
    auto p = load(root);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << root;
    EXPECT_NE(p.status().message().find("plugins.transfer.endpoints[0].root"),
              absl::string_view::npos)
        << p.status();
  }
  // timerd's data directory is where the timer.db it has open is.
  TempDir dir;
  const fs::path data = dir.path() / "data";
  fs::create_directories(data / "demo/source");
  int db = open((data / "timer.db").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(db, 0);
  for (const fs::path& root : {data, dir.path()}) {
    auto p = load(root.string());
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << root;
    EXPECT_NE(p.status().message().find("data directory"), absl::string_view::npos)
        << p.status();
  }
  // A folder of its own inside it (as scripts/demo-config.sh makes) is fine.
  EXPECT_TRUE(load((data / "demo/source").string()).ok());
  close(db);
}

// --- M1: a FIFO raced in for a listed file --------------------------------

TEST_F(TransferTest, AFifoRacedInForAFileNeverHangsARun) {
  // "x" and "y" swap places (renameat2 RENAME_EXCHANGE) as fast as they
  // can, so "x" is a regular file at one instant and a FIFO at the next:
  // some runs see a file at stat() and a FIFO at open().
  WriteFile(src_ / "x", "regular");
  ASSERT_EQ(mkfifo((src_ / "y").c_str(), 0600), 0);
  const std::string x = (src_ / "x").string(), y = (src_ / "y").string();
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    while (!stop.load())
      renameat2(AT_FDCWD, x.c_str(), AT_FDCWD, y.c_str(), RENAME_EXCHANGE);
  });
  bool stuck = false;
  int runs = 0, copied = 0, raced = 0;
  for (; runs < 200 && !stuck; ++runs) {
    auto st = provider_->Start("race/" + std::to_string(runs), LocalIdentity(),
                               Body("x", "out", false).dump());
    if (!st.ok()) continue;
    auto end = WaitForEnd(provider_.get(), st->action_id, std::chrono::seconds(3));
    stuck = !end.ok();
    if (end.ok() && end->state == State::kSucceeded) ++copied;
    // A file at the walk's stat(), a FIFO at open(): the race this is about.
    if (end.ok() && end->error.find("changed while being copied") != std::string::npos)
      ++raced;
  }
  stop = true;
  swapper.join();
  if (stuck) {
    // Let the reader stuck in open() go, so the provider can be destroyed.
    for (const std::string& p : {x, y}) {
      int w = open(p.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (w >= 0) close(w);
    }
  }
  EXPECT_FALSE(stuck) << "run " << runs << " stayed ACTIVE, stuck opening a FIFO";
  std::cout << runs << " runs: " << copied << " copied the file, " << raced
            << " found a FIFO where the walk had seen a file\n";
}

// --- H6: actions run on a bounded pool --------------------------------------

TEST_F(TransferTest, ActionsShareABoundedPoolOfThreads) {
  Load(64 << 10);  // 64 KB/s: a 1 MiB copy takes 16 s unless cancelled
  WriteFile(src_ / "slow.bin", RandomBytes(1 << 20, 5));
  const int before = ThreadCount();
  std::vector<std::string> ids;
  for (int i = 0; i < 64; ++i) {
    auto st = provider_->Start("pool/" + std::to_string(i), LocalIdentity(),
                               Body("slow.bin", "p/" + std::to_string(i), false).dump());
    ASSERT_TRUE(st.ok()) << st.status();
    ids.push_back(st->action_id);
  }
  EXPECT_LE(ThreadCount() - before, 4) << "not action_threads' default (4)";
  for (const std::string& id : ids) ASSERT_TRUE(provider_->Cancel(id).ok());
  for (const std::string& id : ids) {
    auto end = WaitForEnd(provider_.get(), id, std::chrono::seconds(5));
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_EQ(end->state, State::kCancelled);
  }
}

TEST_F(TransferTest, AFullQueueRefusesAStartRetryably) {
  Load(64 << 10, {{"action_threads", 1}, {"max_queued_actions", 2}});
  WriteFile(src_ / "slow.bin", RandomBytes(1 << 20, 6));
  const std::string body = Body("slow.bin", "slow.bin", false).dump();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto st = provider_->Start("q/" + std::to_string(i), LocalIdentity(), body);
    ASSERT_TRUE(st.ok()) << st.status();
    ids.push_back(st->action_id);
  }
  auto refused = provider_->Start("q/3", LocalIdentity(), body);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(
      refused.status().message().find("plugins.transfer.max_queued_actions (2) reached"),
      absl::string_view::npos)
      << refused.status();
  for (const std::string& id : ids) {
    ASSERT_TRUE(provider_->Cancel(id).ok());
    ASSERT_TRUE(WaitForEnd(provider_.get(), id, std::chrono::seconds(5)).ok());
    ASSERT_TRUE(provider_->Release(id).ok());
  }
  // Nothing of the refused start was kept: the retry is a new action.
  auto retried = provider_->Start("q/3", LocalIdentity(), body);
  ASSERT_TRUE(retried.ok()) << retried.status();
  ASSERT_TRUE(provider_->Cancel(retried->action_id).ok());
}

TEST(TransferConfig, BadConfigFailsCreate) {
  auto relative =
      LoadPlugin(TIMER_TRANSFER_SO,
                 {{"transfer", {{"endpoints", {{{"id", "a"}, {"root", "rel/dir"}}}}}}});
  EXPECT_EQ(relative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(relative.status().message().find("plugins.transfer.endpoints[0].root"),
            absl::string_view::npos)
      << relative.status();
  TempDir dir;
  auto dup = LoadPlugin(
      TIMER_TRANSFER_SO,
      {{"transfer",
        {{"endpoints",
          {{{"id", "a"}, {"root", dir.str()}}, {{"id", "a"}, {"root", dir.str()}}}}}}});
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(dup.status().message().find("\"a\" repeated"), absl::string_view::npos)
      << dup.status();
  auto typo =
      LoadPlugin(TIMER_TRANSFER_SO, {{"transfer", {{"endpoint", json::array()}}}});
  EXPECT_EQ(typo.status().code(), absl::StatusCode::kInvalidArgument);
  auto none = LoadPlugin(TIMER_TRANSFER_SO, json::object());
  ASSERT_TRUE(none.ok());
  auto schema = json::parse((*none)->info().input_schema());
  EXPECT_EQ(schema["$defs"]["timer_body"]["required"],
            json({"source_endpoint_id", "destination_endpoint_id", "transfer_items"}));
  EXPECT_EQ(schema["$defs"]["globus_body"]["required"],
            json({"source_endpoint", "destination_endpoint", "DATA"}));
  EXPECT_EQ(schema["oneOf"].size(), 2u);
}

// An endpoint of `type = "s3"` takes the S3 keys instead of `root`
// (plugins/transfer/s3_fs.h); its secret file is checked at start.
TEST_F(TransferTest, S3EndpointsAreParsedAndTheirSecretFileChecked) {
  const fs::path secret = dir_.path() / "s3.secret";
  WriteFile(secret, "s3-secret-value\n");
  ::chmod(secret.c_str(), 0600);
  auto load = [&](json endpoint) {
    return LoadPlugin(TIMER_TRANSFER_SO, {{"transfer", {{"endpoints", {endpoint}}}}});
  };
  const json good = {{"id", "s3"},
                     {"type", "s3"},
                     {"endpoint", "http://127.0.0.1:9"},
                     {"bucket", "bkt"},
                     {"prefix", "lab"},
                     {"path_style", true},
                     {"access_key_id", "AKID"},
                     {"secret_access_key_file", secret.string()},
                     {"allowed_identities", {"*"}}};
  auto p = load(good);
  EXPECT_TRUE(p.ok()) << p.status();

  ::chmod(secret.c_str(), 0644);
  p = load(good);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("endpoints[0].secret_access_key_file"),
            std::string::npos)
      << p.status();
  EXPECT_EQ(p.status().message().find("s3-secret-value"), std::string::npos);
  ::chmod(secret.c_str(), 0600);

  json with_root = good;
  with_root["root"] = dst_.string();  // not an S3 key
  p = load(with_root);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("endpoints[0].root: unknown field"),
            std::string::npos)
      << p.status();
  json other = good;
  other["type"] = "ftp";
  p = load(other);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("endpoints[0].type: must be"), std::string::npos)
      << p.status();
}

}  // namespace
}  // namespace timer::plugin_host
