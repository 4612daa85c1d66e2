// The transfer provider's copier (plugins/transfer/copier.h) in-process,
// where a test seam and a fake clock reach what the ABI cannot: a FIFO
// swapped in (or a file removed) between the walk's stat() and the open(),
// a destination filesystem that fills up, and the rolling window of the
// per-identity write quota.
#include "copier.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "provider_support.h"

namespace timer::plugins::transfer {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "timer-copier-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void WriteFile(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
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

TEST(OpenRegularAtTest, RefusesAFifoWithoutWaitingForAWriter) {
  TempDir dir;
  ASSERT_EQ(mkfifo((dir.path() / "pipe").c_str(), 0600), 0);
  WriteFile(dir.path() / "file", "data");
  int dfd = open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dfd, 0);
  struct stat st;
  std::string why;
  // Without O_NONBLOCK this open would wait for a writer forever.
  EXPECT_EQ(OpenRegularAt(dfd, "pipe", &st, &why), -1);
  EXPECT_NE(why.find("not a regular file"), std::string::npos) << why;
  int fd = OpenRegularAt(dfd, "file", &st, &why);
  ASSERT_GE(fd, 0) << why;
  EXPECT_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);  // cleared for the copy
  EXPECT_EQ(st.st_size, 4);
  close(fd);
  close(dfd);
}

// M1: a local user who can write the source swaps a FIFO in for a file the
// walk has just seen as regular. The run fails naming the file instead of
// staying ACTIVE (and holding timerd's shutdown) forever.
TEST(CopierTest, AFifoSwappedInAfterTheTypeCheckFailsTheRunAtOnce) {
  TempDir dir;
  const fs::path src = dir.path() / "src", dst = dir.path() / "dst";
  WriteFile(src / "tree/a.txt", "alpha");
  WriteFile(src / "tree/b.txt", "bravo");
  fs::create_directories(dst);
  Endpoint src_ep, dst_ep;
  src_ep.id = "src";
  src_ep.root = src.string();
  dst_ep.id = "dst";
  dst_ep.root = dst.string();
  Request req;
  req.source = &src_ep;
  req.destination = &dst_ep;
  req.items.push_back(MakeItem("tree", "tree", true));

  CopyOptions options;
  options.before_open_source = [](int dir_fd, const std::string& name) {
    if (name != "a.txt") return;
    ASSERT_EQ(unlinkat(dir_fd, name.c_str(), 0), 0);
    ASSERT_EQ(mkfifoat(dir_fd, name.c_str(), 0600), 0);
  };
  ActionRunner runner;
  ActionSnapshot snap;
  bool created = false;
  ASSERT_TRUE(
      runner
          .Start(
              "fifo/1",
              [&](ActionContext& ctx) { return Copier(req, &ctx, options).Run(); },
              nullptr, &snap, &created)
          .ok());
  const auto deadline = std::chrono::steady_clock::now() + seconds(5);
  ActionSnapshot now;
  for (;;) {
    ASSERT_TRUE(runner.Status(snap.action_id, &now).ok());
    if (now.state != TIMER_AP_STATE_ACTIVE) break;
    if (std::chrono::steady_clock::now() > deadline) {
      // Release a reader stuck in open() so the runner can be destroyed.
      int w = open((src / "tree/a.txt").c_str(), O_WRONLY | O_NONBLOCK);
      if (w >= 0) close(w);
      FAIL() << "the run is stuck opening the FIFO";
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  EXPECT_EQ(now.state, TIMER_AP_STATE_FAILED);
  EXPECT_NE(now.error.find("tree/a.txt"), std::string::npos) << now.error;
  EXPECT_NE(now.error.find("not a regular file"), std::string::npos) << now.error;
  // The other file is copied; nothing is made of the FIFO.
  EXPECT_TRUE(fs::exists(dst / "tree/b.txt"));
  EXPECT_FALSE(fs::exists(dst / "tree/a.txt"));
}

std::string ReadAll(const fs::path& p) {
  std::string out(fs::file_size(p), '\0');
  std::ifstream(p, std::ios::binary)
      .read(out.data(), static_cast<std::streamsize>(out.size()));
  return out;
}

// Runs `req` to its end on a runner of its own.
ActionSnapshot RunToEnd(const Request& req, CopyOptions options = {}) {
  ActionRunner runner;
  ActionSnapshot snap;
  bool created = false;
  EXPECT_TRUE(
      runner
          .Start(
              "run/1",
              [&](ActionContext& ctx) { return Copier(req, &ctx, options).Run(); },
              nullptr, &snap, &created)
          .ok());
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  ActionSnapshot now;
  for (;;) {
    EXPECT_TRUE(runner.Status(snap.action_id, &now).ok());
    if (now.state != TIMER_AP_STATE_ACTIVE) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "the run did not end";
      break;
    }
    std::this_thread::sleep_for(milliseconds(2));
  }
  return now;
}

// skip_source_errors: a file removed between the walk and its open is
// skipped and counted, and the run succeeds; without it the run fails.
TEST(CopierTest, SkipSourceErrorsSkipsAFileThatVanishes) {
  for (const bool skip : {false, true}) {
    SCOPED_TRACE(skip);
    TempDir dir;
    const fs::path src = dir.path() / "src", dst = dir.path() / "dst";
    WriteFile(src / "tree/a.txt", "alpha");
    WriteFile(src / "tree/b.txt", "bravo");
    fs::create_directories(dst);
    Endpoint src_ep, dst_ep;
    src_ep.id = "src";
    src_ep.root = src.string();
    dst_ep.id = "dst";
    dst_ep.root = dst.string();
    Request req;
    req.source = &src_ep;
    req.destination = &dst_ep;
    req.options.skip_source_errors = skip;
    req.items.push_back(MakeItem("tree", "tree", true));
    CopyOptions options;
    options.before_open_source = [](int dir_fd, const std::string& name) {
      if (name == "a.txt") {
        ASSERT_EQ(unlinkat(dir_fd, name.c_str(), 0), 0);
      }
    };
    ActionSnapshot end = RunToEnd(req, options);
    EXPECT_EQ(end.state, skip ? TIMER_AP_STATE_SUCCEEDED : TIMER_AP_STATE_FAILED)
        << end.error;
    const nlohmann::json d = nlohmann::json::parse(end.details);
    EXPECT_EQ(d["files_failed"], skip ? 0 : 1);
    if (skip) {
      EXPECT_EQ(d["source_errors_skipped"], 1);
    }
    EXPECT_TRUE(fs::exists(dst / "tree/b.txt"));
  }
}

// Runs `req` where permissions apply: as this process when it is not
// root; as root, in a child process that became "nobody" (65534), since
// root reads everything. The snapshot's state, error and details come back
// through a pipe. False (and *why) when the child cannot drop its rights.
bool RunWithoutRoot(const Request& req, ActionSnapshot* out, std::string* why) {
  if (geteuid() != 0) {
    *out = RunToEnd(req);
    return true;
  }
  int fds[2];
  if (pipe(fds) != 0) {
    *why = std::strerror(errno);
    return false;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    nlohmann::json result;
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0) {
      result = {{"skip", std::string("cannot become nobody: ") + std::strerror(errno)}};
    } else {
      // On this thread (run_inline): a child of a fork starts no threads.
      ActionRunner runner;
      ActionSnapshot end;
      bool created = false;
      runner.Start(
          "run/1", [&](ActionContext& ctx) { return Copier(req, &ctx, {}).Run(); },
          nullptr, &end, &created, /*run_inline=*/true);
      runner.Status(end.action_id, &end);
      result = {{"state", end.state}, {"error", end.error}, {"details", end.details}};
    }
    const std::string text = result.dump();
    const bool ok =
        write(fds[1], text.data(), text.size()) == static_cast<ssize_t>(text.size());
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  const nlohmann::json result = nlohmann::json::parse(text, nullptr, false);
  if (!result.is_object()) {
    *why = "the child gave no result";
    return false;
  }
  if (result.contains("skip")) {
    *why = result["skip"];
    return false;
  }
  out->state = result["state"];
  out->error = result["error"];
  out->details = result["details"];
  return true;
}

// skip_source_errors skips a source the run may not read (EACCES): a file
// and a directory without read permission are skipped and counted, the
// rest copied, the run succeeds; without it both fail the run. (EPERM, the
// other errno skipped, has no unprivileged way to arise on a read.)
TEST(CopierTest, SkipSourceErrorsSkipsWhatThePermissionsRefuse) {
  TempDir dir;
  const fs::path src = dir.path() / "src", dst = dir.path() / "dst";
  WriteFile(src / "tree/open.txt", "readable");
  WriteFile(src / "tree/closed.txt", "not readable");
  WriteFile(src / "tree/shut/inner.txt", "in a directory not readable");
  fs::create_directories(dst);
  // Everyone may walk to the tree and write the destination; the two
  // entries below may be read by their owner (root) only.
  for (const fs::path& p : {dir.path(), src, src / "tree"}) {
    ASSERT_EQ(chmod(p.c_str(), 0755), 0);
  }
  ASSERT_EQ(chmod(dst.c_str(), 0777), 0);
  ASSERT_EQ(chmod((src / "tree/open.txt").c_str(), 0644), 0);
  ASSERT_EQ(chmod((src / "tree/closed.txt").c_str(), 0000), 0);
  ASSERT_EQ(chmod((src / "tree/shut").c_str(), 0000), 0);
  Endpoint src_ep, dst_ep;
  src_ep.id = "src";
  src_ep.root = src.string();
  dst_ep.id = "dst";
  dst_ep.root = dst.string();
  Request req;
  req.source = &src_ep;
  req.destination = &dst_ep;
  req.items.push_back(MakeItem("tree", "tree", true));
  for (const bool skip : {false, true}) {
    SCOPED_TRACE(skip ? "skip_source_errors" : "without it");
    fs::remove_all(dst / "tree");
    req.options.skip_source_errors = skip;
    ActionSnapshot end;
    std::string why;
    if (!RunWithoutRoot(req, &end, &why)) GTEST_SKIP() << why;
    EXPECT_EQ(end.state, skip ? TIMER_AP_STATE_SUCCEEDED : TIMER_AP_STATE_FAILED)
        << end.error;
    const nlohmann::json d = nlohmann::json::parse(end.details);
    EXPECT_EQ(d["files_transferred"], 1) << d.dump();
    EXPECT_EQ(d["files_failed"], skip ? 0 : 2) << d.dump();
    if (skip) {
      EXPECT_EQ(d["source_errors_skipped"], 2) << d.dump();
      ASSERT_EQ(d["skipped"].size(), 2u) << d.dump();
      EXPECT_EQ(d["skipped"][0]["path"], "tree/closed.txt");
      EXPECT_NE(d["skipped"][0]["skipped"].get<std::string>().find(std::strerror(EACCES)),
                std::string::npos);
      EXPECT_EQ(d["skipped"][1]["path"], "tree/shut");
    } else {
      EXPECT_NE(end.error.find(std::strerror(EACCES)), std::string::npos) << end.error;
    }
    EXPECT_EQ(ReadAll(dst / "tree/open.txt"), "readable");
    EXPECT_FALSE(fs::exists(dst / "tree/closed.txt"));
    EXPECT_FALSE(fs::exists(dst / "tree/shut/inner.txt"));
  }
  chmod((src / "tree/shut").c_str(), 0755);  // so that it can be removed
}

// A destination filesystem that fills up: a tmpfs of 256 KiB. Needs the
// right to mount (root); skipped otherwise.
class FullDestinationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mnt_ = dir_.path() / "small";
    fs::create_directories(mnt_);
    if (mount("tmpfs", mnt_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=256k") != 0) {
      GTEST_SKIP() << "cannot mount a small tmpfs here: " << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) umount2(mnt_.c_str(), MNT_DETACH);
  }
  TempDir dir_;
  fs::path mnt_;
  bool mounted_ = false;
};

// fail_on_quota_errors: the first ENOSPC stops the run at once. Without
// it, that file fails and the others go on (the next run tries it again).
TEST_F(FullDestinationTest, FailOnQuotaErrorsStopsTheRunAtTheFirstFullWrite) {
  const fs::path src = dir_.path() / "src";
  WriteFile(src / "t/a_big.bin", std::string(1 << 20, 'x'));  // does not fit
  WriteFile(src / "t/b_small.txt", "fits");
  for (const bool fail_fast : {false, true}) {
    SCOPED_TRACE(fail_fast);
    fs::remove_all(mnt_ / "t");
    Endpoint src_ep, dst_ep;
    src_ep.id = "src";
    src_ep.root = src.string();
    dst_ep.id = "small";
    dst_ep.root = mnt_.string();
    Request req;
    req.source = &src_ep;
    req.destination = &dst_ep;
    req.options.fail_on_quota_errors = fail_fast;
    req.items.push_back(MakeItem("t", "t", true));
    ActionSnapshot end = RunToEnd(req);
    EXPECT_EQ(end.state, TIMER_AP_STATE_FAILED);
    EXPECT_NE(end.error.find(std::strerror(ENOSPC)), std::string::npos) << end.error;
    EXPECT_EQ(end.error.find("fail_on_quota_errors") != std::string::npos, fail_fast)
        << end.error;
    EXPECT_EQ(fs::exists(mnt_ / "t/b_small.txt"), !fail_fast);
    EXPECT_FALSE(fs::exists(mnt_ / "t/a_big.bin"));
  }
}

// min_free_bytes holds within a directory of many files, though the free
// space is asked of the filesystem once and the run's own writes are taken
// off it in between: a 256 KiB tmpfs with a 128 KiB floor takes only the
// files that leave 128 KiB free, and the run stops naming the floor.
TEST_F(FullDestinationTest, MinFreeBytesHoldsAcrossTheFilesOfADirectory) {
  const fs::path src = dir_.path() / "src";
  for (int i = 0; i < 24; ++i) {
    WriteFile(src / "t" / ("f" + std::to_string(100 + i)), std::string(16 << 10, 'x'));
  }
  Endpoint src_ep, dst_ep;
  src_ep.id = "src";
  src_ep.root = src.string();
  dst_ep.id = "small";
  dst_ep.root = mnt_.string();
  dst_ep.min_free_bytes = 128 << 10;
  Request req;
  req.source = &src_ep;
  req.destination = &dst_ep;
  req.items.push_back(MakeItem("t", "t", true));
  ActionSnapshot end = RunToEnd(req);
  EXPECT_EQ(end.state, TIMER_AP_STATE_FAILED);
  EXPECT_NE(end.error.find("min_free_bytes (131072)"), std::string::npos) << end.error;
  struct statvfs vfs;
  ASSERT_EQ(statvfs(mnt_.c_str(), &vfs), 0);
  EXPECT_GE(static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize),
            int64_t{128} << 10);
  const nlohmann::json d = nlohmann::json::parse(end.details);
  EXPECT_GE(d["files_transferred"], 1);
  EXPECT_LE(d["files_transferred"], 8);
}

// A copy has its source's permission bits, whatever the umask takes away
// when the file is made (new files are made with the mode, and set again
// only when the umask took some of it) and whether it is new or replaces
// a file.
TEST(CopierTest, CopiesKeepTheSourceMode) {
  TempDir dir;
  const fs::path src = dir.path() / "src", dst = dir.path() / "dst";
  const mode_t modes[] = {0600, 0640, 0644, 0666, 0755, 0777, 0444, 0400, 0750};
  for (const mode_t m : modes) {
    const fs::path f = src / "t" / ("m" + std::to_string(m));
    WriteFile(f, "mode");
    ASSERT_EQ(chmod(f.c_str(), m), 0);
  }
  fs::create_directories(dst);
  Endpoint src_ep, dst_ep;
  src_ep.id = "src";
  src_ep.root = src.string();
  dst_ep.id = "dst";
  dst_ep.root = dst.string();
  Request req;
  req.source = &src_ep;
  req.destination = &dst_ep;
  req.items.push_back(MakeItem("t", "t", true));
  const mode_t saved = umask(027);
  for (const char* pass : {"new", "replacing"}) {
    SCOPED_TRACE(pass);
    ActionSnapshot end = RunToEnd(req);
    EXPECT_EQ(end.state, TIMER_AP_STATE_SUCCEEDED) << end.error;
    for (const mode_t m : modes) {
      struct stat st;
      const fs::path f = dst / "t" / ("m" + std::to_string(m));
      ASSERT_EQ(stat(f.c_str(), &st), 0) << f;
      EXPECT_EQ(st.st_mode & 07777, m) << f;
    }
  }
  umask(saved);
}

// fail_on_quota_errors stops a run for a full destination, said by the
// failure's status code, never by its text: a destination directory named
// like strerror(ENOSPC) that is a file fails that item only, and the next
// item is copied.
TEST(CopierTest, ANameReadingLikeAFullDiskIsNotAFullDisk) {
  TempDir dir;
  const fs::path src = dir.path() / "src", dst = dir.path() / "dst";
  const std::string no_space = std::strerror(ENOSPC);
  WriteFile(src / "a.txt", "alpha");
  WriteFile(src / "b.txt", "bravo");
  WriteFile(dst / no_space, "a file where a directory would go");
  Endpoint src_ep, dst_ep;
  src_ep.id = "src";
  src_ep.root = src.string();
  dst_ep.id = "dst";
  dst_ep.root = dst.string();
  Request req;
  req.source = &src_ep;
  req.destination = &dst_ep;
  req.options.fail_on_quota_errors = true;
  req.items.push_back(MakeItem("a.txt", no_space + "/a.txt", false));
  req.items.push_back(MakeItem("b.txt", "b.txt", false));
  ActionSnapshot end = RunToEnd(req);
  EXPECT_EQ(end.state, TIMER_AP_STATE_FAILED);
  EXPECT_NE(end.error.find(no_space + ": is not a directory"), std::string::npos)
      << end.error;
  EXPECT_EQ(end.error.find("fail_on_quota_errors"), std::string::npos) << end.error;
  EXPECT_EQ(ReadAll(dst / "b.txt"), "bravo");
}

// A new file is written unnamed and linked under its name (linkat, which
// never replaces a name). A file that appears under that name meanwhile is
// replaced by the copy all the same, through a temporary name and a rename,
// and no temporary file stays behind.
TEST(CopierTest, AFileAppearingUnderTheNameMidCopyIsReplacedWhole) {
  TempDir dir;
  const fs::path src = dir.path() / "src", dst = dir.path() / "dst";
  WriteFile(src / "tree/a.txt", "alpha from the source");
  WriteFile(src / "tree/b.txt", std::string(3 << 20, 'b'));  // more than one chunk
  fs::create_directories(dst / "tree");
  Endpoint src_ep, dst_ep;
  src_ep.id = "src";
  src_ep.root = src.string();
  dst_ep.id = "dst";
  dst_ep.root = dst.string();
  Request req;
  req.source = &src_ep;
  req.destination = &dst_ep;
  req.items.push_back(MakeItem("tree", "tree", true));
  for (bool verify : {false, true}) {
    SCOPED_TRACE(verify ? "verify_checksum" : "plain");
    fs::remove_all(dst / "tree");
    fs::create_directories(dst / "tree");
    req.verify_checksum = verify;
    CopyOptions options;
    // After the destination was seen free, before the copy: another
    // writer creates the file.
    options.before_open_source = [&](int, const std::string& name) {
      WriteFile(dst / "tree" / name, "someone else's");
    };
    ActionSnapshot end = RunToEnd(req, options);
    EXPECT_EQ(end.state, TIMER_AP_STATE_SUCCEEDED) << end.error;
    EXPECT_EQ(ReadAll(dst / "tree/a.txt"), "alpha from the source");
    EXPECT_EQ(ReadAll(dst / "tree/b.txt"), std::string(3 << 20, 'b'));
    int names = 0;
    for (const auto& e : fs::directory_iterator(dst / "tree")) {
      (void)e;
      ++names;
    }
    EXPECT_EQ(names, 2) << "a temporary file was left behind";
  }
}

// A directory where a file would go is never replaced, whether the run
// looks at the name first (a sync level) or finds it taken when linking
// the copy into place (none); the other files are copied.
TEST(CopierTest, ADirectoryUnderTheNameFailsThatFileOnly) {
  TempDir dir;
  const fs::path src = dir.path() / "src", dst = dir.path() / "dst";
  WriteFile(src / "tree/a.txt", "alpha");
  WriteFile(src / "tree/b.txt", "bravo");
  Endpoint src_ep, dst_ep;
  src_ep.id = "src";
  src_ep.root = src.string();
  dst_ep.id = "dst";
  dst_ep.root = dst.string();
  Request req;
  req.source = &src_ep;
  req.destination = &dst_ep;
  req.items.push_back(MakeItem("tree", "tree", true));
  for (SyncLevel level : {SyncLevel::kNone, SyncLevel::kSize}) {
    SCOPED_TRACE(static_cast<int>(level));
    fs::remove_all(dst);
    fs::create_directories(dst / "tree/a.txt");
    WriteFile(dst / "tree/a.txt/inside", "kept");
    req.sync_level = level;
    ActionSnapshot end = RunToEnd(req, CopyOptions{});
    EXPECT_EQ(end.state, TIMER_AP_STATE_FAILED);
    EXPECT_NE(end.error.find("tree/a.txt: destination is a directory"), std::string::npos)
        << end.error;
    EXPECT_EQ(ReadAll(dst / "tree/a.txt/inside"), "kept");
    EXPECT_EQ(ReadAll(dst / "tree/b.txt"), "bravo");
    int names = 0;
    for (const auto& e : fs::directory_iterator(dst / "tree")) {
      (void)e;
      ++names;
    }
    EXPECT_EQ(names, 2) << "a temporary file was left behind";
  }
}

// Files with all their blocks are copied without looking for holes, and
// files with fewer are copied sparse; both come out at their exact length,
// whatever sits at their end (data or a hole).
TEST(CopierTest, DenseAndSparseFilesKeepTheirLength) {
  TempDir dir;
  const fs::path src = dir.path() / "src", dst = dir.path() / "dst";
  fs::create_directories(src);
  fs::create_directories(dst);
  WriteFile(src / "empty", "");
  WriteFile(src / "dense", std::string(10000, 'd'));
  {
    // A hole at the start and one at the end, 1 MiB each, data between.
    int fd =
        open((src / "holes").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    const std::string block(4096, 'h');
    ASSERT_EQ(pwrite(fd, block.data(), block.size(), 1 << 20), 4096);
    ASSERT_EQ(ftruncate(fd, (2 << 20) + 4096), 0);
    close(fd);
  }
  Endpoint src_ep, dst_ep;
  src_ep.id = "src";
  src_ep.root = src.string();
  dst_ep.id = "dst";
  dst_ep.root = dst.string();
  Request req;
  req.source = &src_ep;
  req.destination = &dst_ep;
  req.items.push_back(MakeItem("", "copy", true));
  for (bool verify : {false, true}) {
    SCOPED_TRACE(verify ? "verify_checksum" : "plain");
    fs::remove_all(dst / "copy");
    req.verify_checksum = verify;
    ActionSnapshot end = RunToEnd(req, CopyOptions{});
    EXPECT_EQ(end.state, TIMER_AP_STATE_SUCCEEDED) << end.error;
    for (const char* name : {"empty", "dense", "holes"}) {
      SCOPED_TRACE(name);
      EXPECT_EQ(fs::file_size(dst / "copy" / name), fs::file_size(src / name));
      EXPECT_EQ(ReadAll(dst / "copy" / name), ReadAll(src / name));
    }
  }
}

TEST(WriteQuotaTest, BoundsEachIdentityAndEndpointOverARollingDay) {
  const int64_t kStart = int64_t{1'000'000} * 3600;
  int64_t now = kStart;  // on an hour boundary
  WriteQuota quota({.bytes_per_day = 1000, .files_per_day = 3}, [&now] { return now; });
  ASSERT_TRUE(quota.Reserve("alice", "ep", 600, 1).ok());
  now += 3600 * 5;
  ASSERT_TRUE(quota.Reserve("alice", "ep", 400, 1).ok());
  Err full = quota.Reserve("alice", "ep", 1, 0);
  EXPECT_EQ(full.code, TIMER_AP_RESOURCE_EXHAUSTED);
  EXPECT_NE(full.message.find("max_bytes_per_identity_per_day (1000) reached for "
                              "\"alice\" on endpoint \"ep\""),
            std::string::npos)
      << full.message;
  // Another identity, or another endpoint, has a window of its own.
  EXPECT_TRUE(quota.Reserve("bob", "ep", 1000, 1).ok());
  EXPECT_TRUE(quota.Reserve("alice", "other", 1000, 1).ok());
  // Files: two used, one left.
  EXPECT_TRUE(quota.Reserve("alice", "ep", 0, 1).ok());
  Err files = quota.Reserve("alice", "ep", 0, 1);
  EXPECT_NE(files.message.find("max_files_per_identity_per_day (3)"), std::string::npos)
      << files.message;
  // Given back (a discarded copy): room again.
  quota.Adjust("alice", "ep", -100, -1);
  EXPECT_TRUE(quota.Reserve("alice", "ep", 100, 1).ok());

  // 24 hours after the first write, it leaves the window; the later ones
  // stay until their own 24 hours pass.
  now = kStart + 24 * 3600;
  EXPECT_EQ(quota.Used("alice", "ep").first, 400);  // 600 left the window
  EXPECT_TRUE(quota.Reserve("alice", "ep", 600, 0).ok());
  EXPECT_FALSE(quota.Reserve("alice", "ep", 1, 0).ok());
  now += 5 * 3600;
  EXPECT_EQ(quota.Used("alice", "ep").first, 600);  // the 400 left too
  now += 24 * 3600;
  EXPECT_EQ(quota.Used("alice", "ep").first, 0);
  EXPECT_TRUE(quota.Reserve("alice", "ep", 1000, 3).ok());
}

TEST(WriteQuotaTest, ZeroMeansNoLimit) {
  WriteQuota quota({}, [] { return int64_t{0}; });
  EXPECT_TRUE(quota.Reserve("alice", "ep", int64_t{1} << 50, 1 << 30).ok());
}

}  // namespace
}  // namespace timer::plugins::transfer
