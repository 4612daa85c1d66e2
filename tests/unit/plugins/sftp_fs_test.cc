// SFTP endpoints (plugins/transfer/sftp_fs.h) and the StreamCopier
// (stream_copier.h) against a real OpenSSH sshd on loopback
// (tests/support/sshd_server.h), started once per test process: uploads,
// downloads and SFTP to SFTP, each sync level, verify_checksum,
// preserve_timestamp, delete_destination_extra, a cancelled copy, the host
// key check and confinement to the remote root.
#include "sftp_fs.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "provider_support.h"
#include "sshd_server.h"
#include "stream_copier.h"
#include "transfer_options.h"

namespace timer::plugins::transfer {
namespace {

namespace fs = std::filesystem;
using timer::testing::SshdServer;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
}

std::string Bytes(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7 + (i >> 10));
  return s;
}

// Names in `dir` starting with ".timer-part-", recursively.
int TempFiles(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.path().filename().string().rfind(".timer-part-", 0) == 0) ++n;
  }
  return n;
}

Item MakeItem(const std::string& from, const std::string& to, bool recursive) {
  Item item;
  item.source_path = from;
  item.destination_path = to;
  item.recursive = recursive;
  EXPECT_TRUE(SplitPath(from, "source_path", &item.source).ok());
  EXPECT_TRUE(SplitPath(to, "destination_path", &item.destination).ok());
  return item;
}

Request Req(const Endpoint* source, const Endpoint* destination) {
  Request r;
  r.source = source;
  r.destination = destination;
  return r;
}

class SftpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SshdServer::Get();
    ASSERT_TRUE(s.ok()) << s.status();
    sshd_ = *s;
  }

  SftpConfig Config(const std::string& root) const {
    SftpConfig c;
    c.endpoint_id = "remote";
    c.host = "127.0.0.1";
    c.port = sshd_->port();
    c.user = sshd_->user();
    c.private_key_file = sshd_->user_key();
    c.host_key = sshd_->host_key_line();
    c.root = root;
    c.timeout_seconds = 10;
    return c;
  }
  Endpoint Sftp(const std::string& id, const std::string& root) const {
    Endpoint e;
    e.id = id;
    e.root = root;
    e.remote = std::make_shared<SftpEndpoint>(Config(root));
    e.allowed_identities = {"*"};
    return e;
  }
  Endpoint Local(const std::string& id, const std::string& root) const {
    Endpoint e;
    e.id = id;
    e.root = root;
    e.allowed_identities = {"*"};
    return e;
  }

  // Runs `req` to its end on this thread; *details gets the run's details.
  Outcome Run(const Request& req, std::string* details = nullptr, StreamHooks hooks = {},
              CopyOptions options = {}) {
    Outcome out;
    ActionSnapshot snap;
    bool created = false;
    Err e = runner_.Start(
        "run/" + std::to_string(++runs_),
        [&](ActionContext& ctx) {
          out = StreamCopier(req, &ctx, options, hooks).Run();
          return out;
        },
        [&](std::string_view id) { action_id_ = std::string(id); }, &snap, &created,
        true);
    EXPECT_TRUE(e.ok()) << e.message;
    if (details != nullptr) *details = snap.details;
    return out;
  }

  SshdServer* sshd_ = nullptr;
  ActionRunner runner_;
  std::string action_id_;
  int runs_ = 0;
};

TEST_F(SftpTest, UploadsATreeAndSaysTheDataIsEncrypted) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  WriteFile(fs::path(local) / "tree/a.txt", "alpha");
  WriteFile(fs::path(local) / "tree/sub/b.bin", Bytes(3 << 20, 'b'));  // > 1 chunk
  Endpoint src = Local("lab", local), dst = Sftp("server", remote);
  Request req = Req(&src, &dst);
  req.items.push_back(MakeItem("tree", "backup/tree", true));
  std::string details;
  const Outcome out = Run(req, &details);
  ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
  EXPECT_EQ(ReadFile(fs::path(remote) / "backup/tree/a.txt"), "alpha");
  EXPECT_EQ(ReadFile(fs::path(remote) / "backup/tree/sub/b.bin"), Bytes(3 << 20, 'b'));
  EXPECT_EQ(TempFiles(remote), 0);
  const auto d = nlohmann::json::parse(details);
  EXPECT_EQ(d["encrypt_data"], true);
  EXPECT_EQ(d["files_transferred"], 2);
  EXPECT_EQ(d["bytes_transferred"], 5 + (3 << 20));
  EXPECT_EQ(d["directories_created"], 3);  // backup, backup/tree, backup/tree/sub
}

TEST_F(SftpTest, DownloadsAFileAndSftpToSftpWithVerifyAndTimestamps) {
  const std::string remote = sshd_->NewRoot(), remote2 = sshd_->NewRoot(),
                    local = sshd_->NewRoot();
  WriteFile(fs::path(remote) / "data/big.bin", Bytes((2 << 20) + 12345, 'x'));
  const auto when = fs::file_time_type::clock::now() - std::chrono::hours(48);
  fs::last_write_time(fs::path(remote) / "data/big.bin", when);
  Endpoint a = Sftp("a", remote), b = Sftp("b", remote2), l = Local("l", local);

  Request down = Req(&a, &l);
  down.items.push_back(MakeItem("data/big.bin", "big.bin", false));
  down.verify_checksum = true;
  down.preserve_timestamp = true;
  std::string details;
  Outcome out = Run(down, &details);
  ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
  EXPECT_EQ(ReadFile(fs::path(local) / "big.bin"), Bytes((2 << 20) + 12345, 'x'));
  EXPECT_EQ(nlohmann::json::parse(details)["files_verified"], 1);
  // SFTP (version 3) carries whole seconds.
  const auto secs = [](const fs::path& p) {
    struct stat st;
    EXPECT_EQ(stat(p.c_str(), &st), 0) << p;
    return st.st_mtim.tv_sec;
  };
  const auto when_s = secs(fs::path(remote) / "data/big.bin");
  EXPECT_EQ(secs(fs::path(local) / "big.bin"), when_s);

  Request across = Req(&a, &b);
  across.items.push_back(MakeItem("data", "copy", true));
  across.verify_checksum = true;
  across.preserve_timestamp = true;
  out = Run(across, &details);
  ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
  EXPECT_EQ(ReadFile(fs::path(remote2) / "copy/big.bin"), Bytes((2 << 20) + 12345, 'x'));
  EXPECT_EQ(secs(fs::path(remote2) / "copy/big.bin"), when_s);
  EXPECT_EQ(nlohmann::json::parse(details)["files_verified"], 1);
  EXPECT_EQ(TempFiles(remote2), 0);
}

TEST_F(SftpTest, ReplacesAnExistingFileOnTheServer) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  WriteFile(fs::path(local) / "f", "new content");
  WriteFile(fs::path(remote) / "f", "old");
  Endpoint src = Local("l", local), dst = Sftp("r", remote);
  Request req = Req(&src, &dst);
  req.items.push_back(MakeItem("f", "f", false));
  const Outcome out = Run(req);
  ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
  EXPECT_EQ(ReadFile(fs::path(remote) / "f"), "new content");
}

TEST_F(SftpTest, EverySyncLevel) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  const fs::path l(local), r(remote);
  // same: identical; size: same size, other bytes; older: the server's copy
  // is older; missing: not on the server.
  WriteFile(l / "t/same", "12345");
  WriteFile(r / "t/same", "12345");
  WriteFile(l / "t/size", "abcde");
  WriteFile(r / "t/size", "vwxyz");
  WriteFile(l / "t/older", "fresh!");
  WriteFile(r / "t/older", "stale");
  WriteFile(l / "t/missing", "m");
  const auto now = fs::file_time_type::clock::now();
  for (const char* n : {"same", "size"}) {
    fs::last_write_time(l / "t" / n, now - std::chrono::hours(2));
    fs::last_write_time(r / "t" / n, now - std::chrono::hours(1));
  }
  fs::last_write_time(r / "t/older", now - std::chrono::hours(3));
  fs::last_write_time(l / "t/older", now - std::chrono::hours(1));
  Endpoint src = Local("l", local), dst = Sftp("r", remote);

  struct Case {
    SyncLevel level;
    int transferred;  // of the 4 files
  };
  // exists: only missing; size: older (6 vs 5 bytes), missing; mtime:
  // older, missing; checksum: size, older, missing.
  for (const Case& c : {Case{SyncLevel::kExists, 1}, Case{SyncLevel::kSize, 2},
                        Case{SyncLevel::kMtime, 2}, Case{SyncLevel::kChecksum, 3}}) {
    // Put the server's side back as it was.
    fs::remove(r / "t/missing");
    WriteFile(r / "t/size", "vwxyz");
    WriteFile(r / "t/older", "stale");
    fs::last_write_time(r / "t/size", now - std::chrono::hours(1));
    fs::last_write_time(r / "t/older", now - std::chrono::hours(3));
    Request req = Req(&src, &dst);
    req.items.push_back(MakeItem("t", "t", true));
    req.sync_level = c.level;
    std::string details;
    const Outcome out = Run(req, &details);
    ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
    const auto d = nlohmann::json::parse(details);
    EXPECT_EQ(d["files_transferred"], c.transferred) << static_cast<int>(c.level);
    EXPECT_EQ(d["files_skipped"], 4 - c.transferred) << static_cast<int>(c.level);
    EXPECT_EQ(ReadFile(r / "t/missing"), "m");
  }
  // And the reverse direction reads the server's sizes, times and bytes.
  Request back = Req(&dst, &src);
  back.items.push_back(MakeItem("t", "t", true));
  back.sync_level = SyncLevel::kChecksum;
  std::string details;
  ASSERT_EQ(Run(back, &details).state, TIMER_AP_STATE_SUCCEEDED);
  EXPECT_EQ(nlohmann::json::parse(details)["files_skipped"], 4);
}

TEST_F(SftpTest, DeletesDestinationExtrasOnTheServer) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  WriteFile(fs::path(local) / "t/keep", "k");
  WriteFile(fs::path(remote) / "t/keep", "k");
  WriteFile(fs::path(remote) / "t/extra", "x");
  WriteFile(fs::path(remote) / "t/old/deep/file", "x");
  Endpoint src = Local("l", local), dst = Sftp("r", remote);
  Request req = Req(&src, &dst);
  req.items.push_back(MakeItem("t", "t", true));
  req.delete_destination_extra = true;
  std::string details;
  ASSERT_EQ(Run(req, &details).state, TIMER_AP_STATE_SUCCEEDED);
  EXPECT_TRUE(fs::exists(fs::path(remote) / "t/keep"));
  EXPECT_FALSE(fs::exists(fs::path(remote) / "t/extra"));
  EXPECT_FALSE(fs::exists(fs::path(remote) / "t/old"));
  EXPECT_EQ(nlohmann::json::parse(details)["entries_deleted"], 2);
}

// filter_rules apply over SFTP as in Copier: while walking, both ways, and
// delete_destination_extra keeps what they exclude.
TEST_F(SftpTest, FilterRulesApplyToUploadsDownloadsAndDeletion) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot(),
                    back = sshd_->NewRoot();
  WriteFile(fs::path(local) / "t/a.txt", "a");
  WriteFile(fs::path(local) / "t/a.tmp", "tmp");
  WriteFile(fs::path(local) / "t/cache/c.txt", "c");  // an excluded directory
  WriteFile(fs::path(local) / "t/sub/b.txt", "b");
  WriteFile(fs::path(local) / "t/sub/b.tmp", "tmp");
  WriteFile(fs::path(remote) / "t/old.tmp", "excluded: kept");
  WriteFile(fs::path(remote) / "t/cache/x", "excluded dir: kept");
  WriteFile(fs::path(remote) / "t/stale.txt", "included extra: deleted");
  FilterRules rules;
  rules.Add({false, FilterRules::Type::kFile, "*.tmp"});
  rules.Add({false, FilterRules::Type::kDir, "cache"});
  Endpoint l = Local("l", local), r = Sftp("r", remote), b = Local("b", back);

  Request up = Req(&l, &r);
  up.items.push_back(MakeItem("t", "t", true));
  up.options.filter_rules = rules;
  up.delete_destination_extra = true;
  std::string details;
  ASSERT_EQ(Run(up, &details).state, TIMER_AP_STATE_SUCCEEDED) << details;
  auto d = nlohmann::json::parse(details);
  EXPECT_EQ(d["files_transferred"], 2);
  EXPECT_EQ(d["entries_excluded"], 3);  // a.tmp, cache, sub/b.tmp
  EXPECT_EQ(d["entries_deleted"], 1);   // stale.txt
  EXPECT_EQ(ReadFile(fs::path(remote) / "t/a.txt"), "a");
  EXPECT_EQ(ReadFile(fs::path(remote) / "t/sub/b.txt"), "b");
  EXPECT_FALSE(fs::exists(fs::path(remote) / "t/a.tmp"));
  EXPECT_FALSE(fs::exists(fs::path(remote) / "t/sub/b.tmp"));
  EXPECT_FALSE(fs::exists(fs::path(remote) / "t/cache/c.txt"));
  EXPECT_EQ(ReadFile(fs::path(remote) / "t/old.tmp"), "excluded: kept");
  EXPECT_TRUE(fs::exists(fs::path(remote) / "t/cache/x"));
  EXPECT_FALSE(fs::exists(fs::path(remote) / "t/stale.txt"));

  Request down = Req(&r, &b);
  down.items.push_back(MakeItem("t", "t", true));
  down.options.filter_rules = rules;
  ASSERT_EQ(Run(down, &details).state, TIMER_AP_STATE_SUCCEEDED) << details;
  d = nlohmann::json::parse(details);
  EXPECT_EQ(d["files_transferred"], 2);
  EXPECT_EQ(d["entries_excluded"], 2);  // old.tmp, cache
  EXPECT_TRUE(fs::exists(fs::path(back) / "t/a.txt"));
  EXPECT_TRUE(fs::exists(fs::path(back) / "t/sub/b.txt"));
  EXPECT_FALSE(fs::exists(fs::path(back) / "t/old.tmp"));
  EXPECT_FALSE(fs::exists(fs::path(back) / "t/cache"));
}

// skip_source_errors over SFTP: a file gone between the listing and its
// open (SSH_FX_NO_SUCH_FILE) and an item whose source is missing are
// skipped, counted and listed, and the run succeeds; without it they fail.
TEST_F(SftpTest, SkipSourceErrorsSkipsWhatTheServerCannotFind) {
  for (const bool skip : {false, true}) {
    SCOPED_TRACE(skip);
    const std::string remote = sshd_->NewRoot(), local = sshd_->NewRoot();
    WriteFile(fs::path(remote) / "t/a.txt", "alpha");
    WriteFile(fs::path(remote) / "t/b.txt", "bravo");
    Endpoint r = Sftp("r", remote), l = Local("l", local);
    Request req = Req(&r, &l);
    req.items.push_back(MakeItem("t", "t", true));
    req.items.push_back(MakeItem("missing.txt", "missing.txt", false));
    req.options.skip_source_errors = skip;
    StreamHooks hooks;
    hooks.before_open_source = [&](const std::string& path) {
      if (path == "t/a.txt") fs::remove(fs::path(remote) / "t/a.txt");
    };
    std::string details;
    const Outcome out = Run(req, &details, hooks);
    EXPECT_EQ(out.state, skip ? TIMER_AP_STATE_SUCCEEDED : TIMER_AP_STATE_FAILED)
        << out.error;
    const auto d = nlohmann::json::parse(details);
    EXPECT_EQ(d["files_failed"], skip ? 0 : 2);
    EXPECT_EQ(d["files_transferred"], 1);
    EXPECT_EQ(ReadFile(fs::path(local) / "t/b.txt"), "bravo");
    EXPECT_FALSE(fs::exists(fs::path(local) / "t/a.txt"));
    if (skip) {
      EXPECT_EQ(d["source_errors_skipped"], 2);
      ASSERT_EQ(d["skipped"].size(), 2u);
      EXPECT_EQ(d["skipped"][0]["path"], "t/a.txt");
    }
  }
}

// fail_on_quota_errors on a download: a local destination that fills up (a
// tmpfs of 256 KiB; needs the right to mount, skipped otherwise) stops the
// run at the first ENOSPC; without it that file fails and the others go on.
TEST_F(SftpTest, FailOnQuotaErrorsStopsADownloadAtTheFirstFullWrite) {
  const std::string remote = sshd_->NewRoot(), base = sshd_->NewRoot();
  const fs::path mnt = fs::path(base) / "small";
  fs::create_directories(mnt);
  if (mount("tmpfs", mnt.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {
    fs::path p;
    ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  WriteFile(fs::path(remote) / "t/a_big.bin", std::string(1 << 20, 'x'));  // too big
  WriteFile(fs::path(remote) / "t/b_small.txt", "fits");
  for (const bool fail_fast : {false, true}) {
    SCOPED_TRACE(fail_fast);
    fs::remove_all(mnt / "t");
    Endpoint r = Sftp("r", remote), l = Local("small", mnt.string());
    Request req = Req(&r, &l);
    req.items.push_back(MakeItem("t", "t", true));
    req.options.fail_on_quota_errors = fail_fast;
    const Outcome out = Run(req);
    EXPECT_EQ(out.state, TIMER_AP_STATE_FAILED);
    EXPECT_NE(out.error.find(std::strerror(ENOSPC)), std::string::npos) << out.error;
    EXPECT_EQ(out.error.find("fail_on_quota_errors") != std::string::npos, fail_fast)
        << out.error;
    EXPECT_EQ(fs::exists(mnt / "t/b_small.txt"), !fail_fast);
    EXPECT_FALSE(fs::exists(mnt / "t/a_big.bin"));
  }
}

// fail_on_quota_errors on an upload: the server's filesystem fills up (a
// tmpfs of 256 KiB under the remote root; needs the right to mount, skipped
// otherwise). OpenSSH answers the failed write with a bare SSH_FX_FAILURE;
// the writer asks statvfs@openssh.com, finds the filesystem full and fails
// the file as a full destination (RESOURCE_EXHAUSTED, naming ENOSPC): with
// the option the run stops there, without it the next file still goes.
// No temporary file is left on the server either way.
TEST_F(SftpTest, FailOnQuotaErrorsStopsAnUploadWhenTheServersDiskIsFull) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  const fs::path mnt = fs::path(remote) / "small";
  fs::create_directories(mnt);
  if (mount("tmpfs", mnt.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs here: " << std::strerror(errno);
  }
  struct Unmount {
    fs::path p;
    ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  WriteFile(fs::path(local) / "t/a_big.bin", Bytes(1 << 20, 'b'));  // too big
  WriteFile(fs::path(local) / "t/b_small.txt", "fits");
  for (const bool fail_fast : {false, true}) {
    SCOPED_TRACE(fail_fast);
    fs::remove_all(mnt / "t");
    Endpoint l = Local("l", local), r = Sftp("small", mnt.string());
    Request req = Req(&l, &r);
    req.items.push_back(MakeItem("t", "t", true));
    req.options.fail_on_quota_errors = fail_fast;
    std::string details;
    const Outcome out = Run(req, &details);
    EXPECT_EQ(out.state, TIMER_AP_STATE_FAILED);
    EXPECT_NE(out.error.find(std::strerror(ENOSPC)), std::string::npos) << out.error;
    EXPECT_NE(out.error.find("bytes free"), std::string::npos) << out.error;
    EXPECT_EQ(out.error.find("fail_on_quota_errors") != std::string::npos, fail_fast)
        << out.error;
    EXPECT_EQ(fs::exists(mnt / "t/b_small.txt"), !fail_fast);
    EXPECT_FALSE(fs::exists(mnt / "t/a_big.bin"));
    EXPECT_EQ(TempFiles(mnt), 0);
  }
}

// A run killed mid-upload leaves its ".timer-part-*" on the server (its
// writer never got to remove it). The next run that writes to that
// directory removes the parts nothing has written for an hour; a recent
// one (a run in progress) and every other name stay.
TEST_F(SftpTest, StalePartsOnTheServerAreSweptWhereARunWrites) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  WriteFile(fs::path(local) / "t/sub/f", "new");
  WriteFile(fs::path(local) / "one", "file");
  const auto old = fs::file_time_type::clock::now() - std::chrono::hours(2);
  const std::vector<std::string> stale = {"t/.timer-part-77-0123456789abcdef",
                                          "t/sub/.timer-part-1-aaaa",
                                          "d/.timer-part-5-x"};
  const std::vector<std::string> kept = {
      "t/.timer-part-78-recent",  // written a moment ago: maybe a run in progress
      "t/x.timer-part-1-old",     // not a part: another name
      "t/.timer-part",            // not one of ours either
      "other/.timer-part-9-old",  // a directory the run does not write to
  };
  for (const std::string& n : stale) WriteFile(fs::path(remote) / n, "partial");
  for (const std::string& n : kept) WriteFile(fs::path(remote) / n, "keep");
  for (const std::string& n : stale) fs::last_write_time(fs::path(remote) / n, old);
  for (const std::string& n : kept) {
    if (n != "t/.timer-part-78-recent") fs::last_write_time(fs::path(remote) / n, old);
  }
  Endpoint l = Local("l", local), r = Sftp("r", remote);
  Request req = Req(&l, &r);
  req.items.push_back(MakeItem("t", "t", true));         // t and t/sub
  req.items.push_back(MakeItem("one", "d/one", false));  // d, the file's directory
  const Outcome out = Run(req);
  ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
  for (const std::string& n : stale) EXPECT_FALSE(fs::exists(fs::path(remote) / n)) << n;
  for (const std::string& n : kept) EXPECT_TRUE(fs::exists(fs::path(remote) / n)) << n;
  EXPECT_EQ(ReadFile(fs::path(remote) / "t/sub/f"), "new");
  EXPECT_EQ(ReadFile(fs::path(remote) / "d/one"), "file");
}

TEST_F(SftpTest, ACancelledUploadLeavesNoFileUnderItsNameAndNoTemporary) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  WriteFile(fs::path(local) / "big", Bytes(4 << 20, 'c'));
  WriteFile(fs::path(remote) / "big", "previous");
  Endpoint src = Local("l", local), dst = Sftp("r", remote);
  Request req = Req(&src, &dst);
  req.items.push_back(MakeItem("big", "big", false));
  StreamHooks hooks;
  bool saw_partial = false;
  hooks.after_chunk = [&](const std::string&, int64_t written) {
    if (written != kStreamChunk) return;
    // Mid-copy: the bytes are in a temporary file, the name holds the old one.
    saw_partial =
        TempFiles(remote) == 1 && ReadFile(fs::path(remote) / "big") == "previous";
    ASSERT_TRUE(runner_.Cancel(action_id_).ok());
  };
  const Outcome out = Run(req, nullptr, hooks);
  EXPECT_EQ(out.state, TIMER_AP_STATE_CANCELLED) << out.error;
  EXPECT_TRUE(saw_partial);
  EXPECT_EQ(ReadFile(fs::path(remote) / "big"), "previous");
  EXPECT_EQ(TempFiles(remote), 0);
}

TEST_F(SftpTest, AWrongHostKeyIsRefusedNamingTheHostAndTheKeySeen) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  WriteFile(fs::path(local) / "f", "data");
  SftpConfig c = Config(remote);
  c.host_key = sshd_->other_key_line();
  Endpoint src = Local("l", local), dst;
  dst.id = "r";
  dst.remote = std::make_shared<SftpEndpoint>(c);
  Request req = Req(&src, &dst);
  req.items.push_back(MakeItem("f", "f", false));
  Outcome out = Run(req);
  EXPECT_EQ(out.state, TIMER_AP_STATE_FAILED);
  EXPECT_NE(out.error.find("127.0.0.1:" + std::to_string(sshd_->port())),
            std::string::npos)
      << out.error;
  EXPECT_NE(out.error.find("host key refused"), std::string::npos) << out.error;
  EXPECT_NE(out.error.find("ssh-ed25519 SHA256:"), std::string::npos) << out.error;
  EXPECT_FALSE(fs::exists(fs::path(remote) / "f"));

  // A known_hosts file naming the right key is accepted; one naming
  // another key for the host is refused.
  c.host_key.clear();
  c.known_hosts_file = sshd_->known_hosts();
  std::unique_ptr<EndpointFs> fs_ok;
  Err e = SftpEndpoint(c).Open({}, &fs_ok);
  EXPECT_TRUE(e.ok()) << e.message;
  const std::string wrong = sshd_->NewRoot() + "/known_hosts";
  std::ofstream(wrong) << "[127.0.0.1]:" << sshd_->port() << " "
                       << sshd_->other_key_line() << "\n";
  c.known_hosts_file = wrong;
  std::unique_ptr<EndpointFs> fs_bad;
  e = SftpEndpoint(c).Open({}, &fs_bad);
  EXPECT_FALSE(e.ok());
  EXPECT_NE(e.message.find("differs from the key known_hosts_file holds"),
            std::string::npos)
      << e.message;
}

TEST_F(SftpTest, SymlinksOnTheServerAreNeverFollowed) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  const std::string outside = sshd_->NewRoot();
  WriteFile(fs::path(outside) / "secret", "outside the root");
  WriteFile(fs::path(remote) / "tree/ok", "fine");
  fs::create_directory_symlink(outside, fs::path(remote) / "tree/link");
  fs::create_symlink(fs::path(outside) / "secret", fs::path(remote) / "tree/filelink");
  fs::create_directory_symlink(outside, fs::path(remote) / "out");
  Endpoint r = Sftp("r", remote), l = Local("l", local);

  // A tree holding links: they are skipped and counted, never read.
  Request down = Req(&r, &l);
  down.items.push_back(MakeItem("tree", "tree", true));
  std::string details;
  ASSERT_EQ(Run(down, &details).state, TIMER_AP_STATE_SUCCEEDED);
  EXPECT_EQ(ReadFile(fs::path(local) / "tree/ok"), "fine");
  EXPECT_FALSE(fs::exists(fs::path(local) / "tree/link"));
  EXPECT_FALSE(fs::exists(fs::path(local) / "tree/filelink"));
  EXPECT_EQ(nlohmann::json::parse(details)["symlinks_skipped"], 2);

  // Through a link, as a source: refused.
  Request via = Req(&r, &l);
  via.items.push_back(MakeItem("out/secret", "stolen", false));
  Outcome out = Run(via);
  EXPECT_EQ(out.state, TIMER_AP_STATE_FAILED);
  EXPECT_NE(out.error.find("symbolic link"), std::string::npos) << out.error;
  via.items[0] = MakeItem("tree/filelink", "stolen", false);
  out = Run(via);
  EXPECT_EQ(out.state, TIMER_AP_STATE_FAILED);
  EXPECT_FALSE(fs::exists(fs::path(local) / "stolen"));

  // Through a link, as a destination: refused; nothing lands outside.
  WriteFile(fs::path(local) / "payload", "p");
  Request up = Req(&l, &r);
  up.items.push_back(MakeItem("payload", "out/payload", false));
  out = Run(up);
  EXPECT_EQ(out.state, TIMER_AP_STATE_FAILED);
  EXPECT_NE(out.error.find("symbolic link"), std::string::npos) << out.error;
  EXPECT_FALSE(fs::exists(fs::path(outside) / "payload"));
  Request tree_up = Req(&l, &r);
  tree_up.items.push_back(MakeItem("", "out", true));
  out = Run(tree_up);
  EXPECT_EQ(out.state, TIMER_AP_STATE_FAILED);
  EXPECT_FALSE(fs::exists(fs::path(outside) / "payload"));
}

// recursive_symlinks copy with an SFTP source: a link is resolved on the
// server one component at a time (LSTAT and READLINK, never following one)
// and copied when it stays inside the remote root; one pointing outside
// (absolute, or ".." above the root), dangling, or leading back to a
// directory being copied (a loop) is skipped and listed.
TEST_F(SftpTest, RecursiveSymlinksCopyFollowsLinksOnlyWithinTheRemoteRoot) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  const std::string outside = sshd_->NewRoot();
  WriteFile(fs::path(outside) / "secret", "outside the root");
  WriteFile(fs::path(remote) / "tree/ok", "fine");
  WriteFile(fs::path(remote) / "other/inner", "reached through a link");
  const fs::path t = fs::path(remote) / "tree";
  fs::create_symlink("ok", t / "file_in");                      // a file inside
  fs::create_directory_symlink("../other", t / "dir_in");       // a directory inside
  fs::create_symlink("dir_in/inner", t / "chain");              // through another link
  fs::create_symlink(fs::path(outside) / "secret", t / "abs");  // absolute: outside
  fs::create_symlink("../../" + fs::path(outside).filename().string() + "/secret",
                     t / "above");                // ".." above the root
  fs::create_symlink("missing", t / "dangling");  // nothing there
  fs::create_directory_symlink(".", t / "loop");  // the directory being copied
  Endpoint r = Sftp("r", remote), l = Local("l", local);
  Request req = Req(&r, &l);
  req.items.push_back(MakeItem("tree", "tree", true));
  req.options.recursive_symlinks = RecursiveSymlinks::kCopy;
  std::string details;
  const Outcome out = Run(req, &details);
  ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
  const fs::path got = fs::path(local) / "tree";
  EXPECT_EQ(ReadFile(got / "ok"), "fine");
  EXPECT_EQ(ReadFile(got / "file_in"), "fine");
  EXPECT_FALSE(fs::is_symlink(got / "file_in"));
  EXPECT_EQ(ReadFile(got / "dir_in/inner"), "reached through a link");
  EXPECT_EQ(ReadFile(got / "chain"), "reached through a link");
  for (const char* n : {"abs", "above", "dangling", "loop"})
    EXPECT_FALSE(fs::exists(got / n)) << n;
  const auto d = nlohmann::json::parse(details);
  EXPECT_EQ(d["symlinks_followed"], 3) << details;
  EXPECT_EQ(d["symlinks_skipped"], 4) << details;
  EXPECT_NE(details.find("points outside the endpoint root"), std::string::npos)
      << details;
  EXPECT_NE(details.find("a loop"), std::string::npos) << details;
  EXPECT_EQ(details.find("outside the root\""), std::string::npos);  // never read
}

// recursive_symlinks keep with an SFTP destination: a relative link that
// stays inside the root is made again on the server (SSH_FXP_SYMLINK, in
// OpenSSH's argument order) under a temporary name renamed over what is
// there; one already there is left alone; an absolute target or one
// climbing above the root is skipped. And back: an SFTP link kept locally.
TEST_F(SftpTest, RecursiveSymlinksKeepMakesLinksOnTheServerAndBack) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  const fs::path t = fs::path(local) / "tree";
  WriteFile(t / "ok", "fine");
  WriteFile(t / "sub/deep", "deep");
  fs::create_symlink("ok", t / "rel");
  fs::create_symlink("../ok", t / "sub/up");     // one ".." from one level down
  fs::create_symlink("/etc/passwd", t / "abs");  // never kept
  fs::create_symlink("../../x", t / "high");     // above the destination root
  WriteFile(fs::path(remote) / "tree/rel", "a file where the link goes");
  Endpoint l = Local("l", local), r = Sftp("r", remote);
  Request up = Req(&l, &r);
  up.items.push_back(MakeItem("tree", "tree", true));
  up.options.recursive_symlinks = RecursiveSymlinks::kKeep;
  std::string details;
  Outcome out = Run(up, &details);
  ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
  const fs::path rt = fs::path(remote) / "tree";
  ASSERT_TRUE(fs::is_symlink(rt / "rel"));
  EXPECT_EQ(fs::read_symlink(rt / "rel"), "ok");
  EXPECT_EQ(ReadFile(rt / "rel"), "fine");
  ASSERT_TRUE(fs::is_symlink(rt / "sub/up"));
  EXPECT_EQ(fs::read_symlink(rt / "sub/up"), "../ok");
  EXPECT_FALSE(fs::exists(rt / "abs") || fs::is_symlink(rt / "abs"));
  EXPECT_FALSE(fs::is_symlink(rt / "high"));
  EXPECT_EQ(TempFiles(rt), 0);
  auto d = nlohmann::json::parse(details);
  EXPECT_EQ(d["symlinks_kept"], 2) << details;
  EXPECT_EQ(d["symlinks_skipped"], 2) << details;

  // Again: the links are there as they are.
  out = Run(up, &details);
  ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
  d = nlohmann::json::parse(details);
  EXPECT_EQ(d["symlinks_kept"], 0) << details;

  // SFTP -> local keeps the server's links too.
  const std::string back = sshd_->NewRoot();
  Endpoint b = Local("b", back);
  Request down = Req(&r, &b);
  down.items.push_back(MakeItem("tree", "tree", true));
  down.options.recursive_symlinks = RecursiveSymlinks::kKeep;
  out = Run(down, &details);
  ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
  ASSERT_TRUE(fs::is_symlink(fs::path(back) / "tree/sub/up"));
  EXPECT_EQ(fs::read_symlink(fs::path(back) / "tree/sub/up"), "../ok");
  EXPECT_EQ(ReadFile(fs::path(back) / "tree/rel"), "fine");
}

TEST_F(SftpTest, ConfinedToTheRootAndOneEndpointNeverCopiesIntoItself) {
  const std::string remote = sshd_->NewRoot();
  WriteFile(fs::path(remote) / "d/f", "x");
  Endpoint r = Sftp("r", remote);
  Item bad;
  EXPECT_FALSE(SplitPath("../etc/passwd", "source_path", &bad.source).ok());
  EXPECT_FALSE(SplitPath("/etc/passwd", "source_path", &bad.source).ok());
  Request self = Req(&r, &r);
  self.items.push_back(MakeItem("d", "d/inner", true));
  const Outcome out = Run(self);
  EXPECT_EQ(out.state, TIMER_AP_STATE_FAILED);
  EXPECT_NE(out.error.find("overlaps"), std::string::npos) << out.error;
  EXPECT_FALSE(fs::exists(fs::path(remote) / "d/inner"));
}

TEST_F(SftpTest, ConfigRefusesAKeyFileOthersCanReadAndNeedsAPinnedHostKey) {
  const std::string dir = sshd_->NewRoot();
  const std::string key = dir + "/key";
  fs::copy_file(sshd_->user_key(), key);
  nlohmann::json table = {{"host", "127.0.0.1"},
                          {"user", "u"},
                          {"private_key_file", key},
                          {"host_key", sshd_->host_key_line()}};
  auto parse = [&](const nlohmann::json& t) {
    FieldReader r(t, "plugins.transfer.endpoints[0]");
    Endpoint ep;
    ep.id = "x";
    ep.root = "/srv/data";
    Err e = ParseSftpEndpoint(r, &ep);
    if (e.ok()) e = r.Finish();
    return e;
  };
  ASSERT_EQ(chmod(key.c_str(), 0600), 0);
  Err e = parse(table);
  EXPECT_TRUE(e.ok()) << e.message;
  ASSERT_EQ(chmod(key.c_str(), 0644), 0);
  e = parse(table);
  EXPECT_FALSE(e.ok());
  EXPECT_NE(e.message.find("private_key_file"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("chmod 600"), std::string::npos) << e.message;
  ASSERT_EQ(chmod(key.c_str(), 0600), 0);
  nlohmann::json none = table;
  none.erase("host_key");
  e = parse(none);
  EXPECT_FALSE(e.ok());
  EXPECT_NE(e.message.find("known_hosts_file and host_key"), std::string::npos)
      << e.message;
  // Describe names the server, never the key or its file.
  Endpoint ep;
  ep.id = "x";
  ep.root = "/srv/data";
  FieldReader r(table, "p");
  ASSERT_TRUE(ParseSftpEndpoint(r, &ep).ok());
  const std::string shown = ep.remote->Describe().dump();
  EXPECT_EQ(shown.find(key), std::string::npos) << shown;
  EXPECT_NE(shown.find("/srv/data"), std::string::npos) << shown;
}

TEST_F(SftpTest, CopiesWithinOneEndpoint) {
  const std::string remote = sshd_->NewRoot();
  WriteFile(fs::path(remote) / "in/a", Bytes((1 << 20) + 3, 'a'));
  WriteFile(fs::path(remote) / "in/b", "b");
  Endpoint r = Sftp("r", remote);
  Request req = Req(&r, &r);
  req.items.push_back(MakeItem("in", "out", true));
  req.verify_checksum = true;
  std::string details;
  const Outcome out = Run(req, &details);
  ASSERT_EQ(out.state, TIMER_AP_STATE_SUCCEEDED) << out.error;
  EXPECT_EQ(ReadFile(fs::path(remote) / "out/a"), Bytes((1 << 20) + 3, 'a'));
  EXPECT_EQ(ReadFile(fs::path(remote) / "out/b"), "b");
  EXPECT_EQ(nlohmann::json::parse(details)["files_verified"], 2);
}

TEST_F(SftpTest, RunLimitsAndTheQuotaHoldForUploads) {
  const std::string local = sshd_->NewRoot(), remote = sshd_->NewRoot();
  for (const char* n : {"1", "2", "3"})
    WriteFile(fs::path(local) / "t" / n, Bytes(1000, 'q'));
  Endpoint src = Local("l", local), dst = Sftp("r", remote);
  Request req = Req(&src, &dst);
  req.items.push_back(MakeItem("t", "t", true));
  WriteQuota quota({.bytes_per_day = 0, .files_per_day = 0});
  CopyOptions options;
  options.max_bytes_per_run = 2500;  // two files of 1000 bytes fit, not three
  options.quota = &quota;
  options.identity = "alice";
  std::string details;
  const Outcome out = Run(req, &details, {}, options);
  EXPECT_EQ(out.state, TIMER_AP_STATE_FAILED);
  EXPECT_NE(out.error.find("max_bytes_per_run (2500)"), std::string::npos) << out.error;
  EXPECT_EQ(nlohmann::json::parse(details)["files_transferred"], 2);
  EXPECT_FALSE(fs::exists(fs::path(remote) / "t/3"));
  // What was written (and the directory made) is what the quota counted.
  EXPECT_EQ(quota.Used("alice", "r"), (std::pair<int64_t, int64_t>{2000, 3}));
}

// A listener on 127.0.0.1 that never speaks: the kernel completes the TCP
// handshake (listen's backlog), nobody accepts. port() is 0 if it could not
// be set up. Closed at destruction.
class SilentListener {
 public:
  SilentListener() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        listen(fd_, 4) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~SilentListener() {
    if (fd_ >= 0) close(fd_);
  }
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  int port() const { return port_; }

 private:
  const int fd_;
  int port_ = 0;
};

// A server that accepts the connection and never speaks: the run fails
// after timeout_seconds instead of waiting for ever.
TEST_F(SftpTest, AServerThatNeverAnswersFailsWithinTheTimeout) {
  SilentListener silent;
  ASSERT_GT(silent.port(), 0);
  SftpConfig c = Config(sshd_->NewRoot());
  c.port = silent.port();
  c.timeout_seconds = 1;
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<EndpointFs> out;
  Err e = SftpEndpoint(c).Open({}, &out);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(e.code, TIMER_AP_UNAVAILABLE) << e.message;
  EXPECT_NE(e.message.find("cannot connect"), std::string::npos) << e.message;
  EXPECT_LT(took, std::chrono::seconds(5));
}

// The processes below `pid` (sshd's connections), from /proc.
std::vector<int> Descendants(int pid) {
  std::vector<int> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) +
                   "/children");
  int child;
  while (in >> child) {
    out.push_back(child);
    for (int d : Descendants(child)) out.push_back(d);
  }
  return out;
}

// sshd's connection processes stopped (SIGSTOP) while this lives: a server
// that stops answering mid-session. Resumed (SIGCONT) by Resume() or at
// destruction, so a failed assertion leaves no stopped server behind for the
// next case.
class StoppedServer {
 public:
  explicit StoppedServer(int sshd_pid) : stopped_(Descendants(sshd_pid)) {
    for (int p : stopped_) kill(p, SIGSTOP);
  }
  ~StoppedServer() { Resume(); }
  StoppedServer(const StoppedServer&) = delete;
  StoppedServer& operator=(const StoppedServer&) = delete;
  bool empty() const { return stopped_.empty(); }
  void Resume() {
    for (int p : stopped_) kill(p, SIGCONT);
    stopped_.clear();
  }

 private:
  std::vector<int> stopped_;
};

// A server that stops answering in the middle of a session (its processes
// stopped): the request fails after timeout_seconds, the session with it.
TEST_F(SftpTest, AServerThatStopsAnsweringFailsWithinTheTimeout) {
  const std::string remote = sshd_->NewRoot();
  WriteFile(fs::path(remote) / "f", "x");
  SftpConfig c = Config(remote);
  c.timeout_seconds = 1;
  std::unique_ptr<EndpointFs> efs;
  ASSERT_TRUE(SftpEndpoint(c).Open({}, &efs).ok());
  EntryInfo info;
  bool exists = false;
  ASSERT_TRUE(efs->Stat({"f"}, &info, &exists).ok());
  StoppedServer stopped(sshd_->pid());
  ASSERT_FALSE(stopped.empty());
  const auto start = std::chrono::steady_clock::now();
  Err e = efs->Stat({"f"}, &info, &exists);
  std::unique_ptr<FileReader> reader;
  Err e2 = efs->OpenRead({"f"}, &reader);
  const auto took = std::chrono::steady_clock::now() - start;
  stopped.Resume();
  EXPECT_FALSE(e.ok());
  EXPECT_FALSE(e2.ok());
  EXPECT_LT(took, std::chrono::seconds(6));
}

// A run's cancel, as an endpoint sees it (CancelCheck), that says when the
// watchdog first looked at it: a request had been waiting then.
class TestCancel {
 public:
  CancelCheck Check() {
    return [this] {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++looks_;
      }
      cv_.notify_all();
      return cancelled_.load();
    };
  }
  // Waits (up to 30 s) for the watchdog to look, then cancels either way
  // (a test must not hang); false if it did not look.
  bool CancelOnceLookedAt() {
    std::unique_lock<std::mutex> lock(mu_);
    const bool looked =
        cv_.wait_for(lock, std::chrono::seconds(30), [this] { return looks_ > 0; });
    cancelled_ = true;
    return looked;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int looks_ = 0;  // guarded by mu_
  std::atomic<bool> cancelled_{false};
};

// A request in flight to a server that stopped answering ends CANCELLED
// soon after the run's cancel, not when timeout_seconds (60) passes; the
// session is unusable after, and says why.
TEST_F(SftpTest, ACancelEndsARequestWaitingOnAStoppedServer) {
  const std::string remote = sshd_->NewRoot();
  WriteFile(fs::path(remote) / "f", "x");
  SftpConfig c = Config(remote);
  c.timeout_seconds = 60;
  TestCancel cancel;
  std::unique_ptr<EndpointFs> efs;
  ASSERT_TRUE(SftpEndpoint(c).Open(cancel.Check(), &efs).ok());
  EntryInfo info;
  bool exists = false;
  ASSERT_TRUE(efs->Stat({"f"}, &info, &exists).ok());
  StoppedServer stopped(sshd_->pid());
  ASSERT_FALSE(stopped.empty());
  bool looked = false;
  std::thread canceller([&] { looked = cancel.CancelOnceLookedAt(); });
  const auto start = std::chrono::steady_clock::now();
  Err e = efs->Stat({"f"}, &info, &exists);
  const auto took = std::chrono::steady_clock::now() - start;
  canceller.join();
  std::unique_ptr<FileReader> reader;
  Err e2 = efs->OpenRead({"f"}, &reader);
  stopped.Resume();
  EXPECT_TRUE(looked);
  EXPECT_EQ(e.code, TIMER_AP_CANCELLED) << e.message;
  EXPECT_NE(e.message.find("cancelled"), std::string::npos) << e.message;
  EXPECT_LT(took, std::chrono::seconds(10));  // hang guard; the timeout is 60 s
  EXPECT_EQ(e2.code, TIMER_AP_CANCELLED) << e2.message;
}

// A cancel reaches a connection being set up too: a listener that never
// sends the SSH banner, timeout_seconds 60.
TEST_F(SftpTest, ACancelEndsAConnectionToAServerThatNeverAnswers) {
  SilentListener silent;
  ASSERT_GT(silent.port(), 0);
  SftpConfig c = Config(sshd_->NewRoot());
  c.port = silent.port();
  c.timeout_seconds = 60;
  TestCancel cancel;
  bool looked = false;
  std::thread canceller([&] { looked = cancel.CancelOnceLookedAt(); });
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<EndpointFs> out;
  Err e = SftpEndpoint(c).Open(cancel.Check(), &out);
  const auto took = std::chrono::steady_clock::now() - start;
  canceller.join();
  EXPECT_TRUE(looked);
  EXPECT_EQ(e.code, TIMER_AP_CANCELLED) << e.message;
  EXPECT_EQ(e.message, "sftp 127.0.0.1:" + std::to_string(c.port) + ": cancelled");
  EXPECT_LT(took, std::chrono::seconds(10));  // hang guard; the timeout is 60 s
}

// The same through a whole run: the server stops just before the source
// file is opened, the run is cancelled, and it ends CANCELLED soon after,
// with no file counted as failed.
TEST_F(SftpTest, ACancelledDownloadFromAStoppedServerEndsCancelled) {
  const std::string remote = sshd_->NewRoot(), local = sshd_->NewRoot();
  WriteFile(fs::path(remote) / "big", Bytes(4 << 20, 'd'));
  Endpoint src = Sftp("r", remote), dst = Local("l", local);
  SftpConfig c = Config(remote);
  c.timeout_seconds = 60;
  src.remote = std::make_shared<SftpEndpoint>(c);
  Request req = Req(&src, &dst);
  req.items.push_back(MakeItem("big", "big", false));
  StreamHooks hooks;
  std::optional<StoppedServer> stopped;
  std::thread canceller;
  hooks.before_open_source = [&](const std::string&) {
    // Opening the file then waits on the stopped server until the cancel.
    stopped.emplace(sshd_->pid());
    canceller = std::thread([&] { EXPECT_TRUE(runner_.Cancel(action_id_).ok()); });
  };
  std::string details;
  const auto start = std::chrono::steady_clock::now();
  const Outcome out = Run(req, &details, hooks);
  const auto took = std::chrono::steady_clock::now() - start;
  if (canceller.joinable()) canceller.join();
  ASSERT_TRUE(stopped.has_value());
  EXPECT_FALSE(stopped->empty());
  stopped->Resume();
  EXPECT_EQ(out.state, TIMER_AP_STATE_CANCELLED) << out.error;
  EXPECT_LT(took, std::chrono::seconds(10));  // hang guard; the timeout is 60 s
  EXPECT_EQ(nlohmann::json::parse(details)["files_failed"], 0) << details;
  EXPECT_FALSE(fs::exists(fs::path(local) / "big"));
}

}  // namespace
}  // namespace timer::plugins::transfer
