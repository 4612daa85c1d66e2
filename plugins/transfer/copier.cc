#include "copier.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <string_view>

namespace timer::plugins::transfer {
namespace {

constexpr size_t kBufferSize = 1 << 20;  // read/write and hashing
constexpr size_t kCopyChunk = 16 << 20;  // per copy_file_range call
constexpr int kMaxDepth = 128;           // directory nesting

constexpr char kTempPrefix[] = ".timer-part-";

std::string Errno(int e) { return std::strerror(e); }

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) close(fd_);
      fd_ = o.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

// `a`/`b`, for messages; `a` may end in '/' (the path "/", or "/~/").
std::string Join(const std::string& a, const std::string& b) {
  return a.empty() ? b : a.back() == '/' ? a + b : a + "/" + b;
}

// ".timer-part-<pid>-<random>": the pid says whose it is, so a file left by
// a process that died mid-copy can be told from one being written now.
std::string TempName() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  // getpid() is a system call each time (glibc no longer caches it), and a
  // process never changes its pid while it runs a copy.
  static thread_local const std::string prefix =
      kTempPrefix + std::to_string(getpid()) + "-";
  std::string s = prefix;
  uint64_t v = rng();
  for (int i = 0; i < 16; ++i) s.push_back(hex[(v >> (4 * i)) & 0xf]);
  return s;
}

// Opens directory `name` in `dir` without following a symlink.
int OpenDirAt(int dir, const std::string& name) {
  return openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

// Why opening `name` in `dir` as a directory failed, in words.
std::string WhyNotDir(int dir, const std::string& name, int err) {
  struct stat st;
  if ((err == ELOOP || err == ENOTDIR) &&
      fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) return "is a symbolic link (refused, never followed)";
    if (!S_ISDIR(st.st_mode)) return "is not a directory";
  }
  return Errno(err);
}

// An entry of a directory: its name and its type as the directory says it
// (d_type: DT_REG, DT_DIR, DT_LNK, ...; DT_UNKNOWN where the filesystem
// does not say, and the caller must stat).
struct DirEntry {
  std::string name;
  unsigned char type = DT_UNKNOWN;
  bool operator<(const DirEntry& o) const { return name < o.name; }
};

// The entries of a directory, sorted by name, without "." and "..".
Err ListDir(int dir_fd, std::vector<DirEntry>* entries) {
  int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Internal("cannot list: " + Errno(errno));
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return Internal("cannot list: " + Errno(errno));
  }
  errno = 0;
  while (struct dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") entries->push_back({std::string(n), e->d_type});
    errno = 0;
  }
  int err = errno;
  closedir(d);
  if (err != 0) return Internal("cannot list: " + Errno(err));
  std::sort(entries->begin(), entries->end());
  return Ok();
}

// The names in a directory, sorted, without "." and "..".
Err ListDir(int dir_fd, std::vector<std::string>* names) {
  std::vector<DirEntry> entries;
  Err e = ListDir(dir_fd, &entries);
  for (DirEntry& entry : entries) names->push_back(std::move(entry.name));
  return e;
}

bool IsTemp(const std::string& name) { return name.rfind(kTempPrefix, 0) == 0; }

// Removes the temporary files in `dir` whose writer is gone (a crash
// mid-copy), so a destination holds complete files only. Best effort.
void SweepStaleTemps(int dir) {
  std::vector<std::string> names;
  if (!ListDir(dir, &names).ok()) return;
  for (const std::string& name : names) {
    if (!IsTemp(name)) continue;
    const size_t from = sizeof(kTempPrefix) - 1;
    const size_t dash = name.find('-', from);
    if (dash == std::string::npos) continue;
    const long pid = std::strtol(name.substr(from, dash - from).c_str(), nullptr, 10);
    if (pid <= 0 || pid == getpid()) continue;
    if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      unlinkat(dir, name.c_str(), 0);
    }
  }
}

// Feeds `n` zero bytes to `md` (a hole, for the source's hash).
void HashZeros(EVP_MD_CTX* md, int64_t n) {
  static const unsigned char kZeros[64 << 10] = {};
  while (n > 0) {
    const size_t k = static_cast<size_t>(std::min<int64_t>(n, sizeof(kZeros)));
    EVP_DigestUpdate(md, kZeros, k);
    n -= static_cast<int64_t>(k);
  }
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// The process's umask, read without changing it (umask() sets it, a race
// with the process's other threads): Linux says it in /proc/self/status
// since 4.7. 0777 when it cannot be read: every copy's mode is then set
// with fchmod.
mode_t ProcessUmask() {
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0777;
  char buf[4096];
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0777;
  buf[n] = '\0';
  const char* line = std::strstr(buf, "\nUmask:");
  if (line == nullptr) return 0777;
  char* end = nullptr;
  const long v = std::strtol(line + 7, &end, 8);
  if (end == line + 7 || v < 0 || v > 0777) return 0777;
  return static_cast<mode_t>(v);
}

}  // namespace

bool Allowed(const Endpoint& e, const std::string& identity) {
  for (const std::string& a : e.allowed_identities) {
    if (a == "*" || a == identity) return true;
  }
  return false;
}

int OpenRegularAt(int dir, const std::string& name, struct stat* st, std::string* why) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
  // writer, forever. O_NOCTTY: a terminal never becomes ours.
  int fd = openat(dir, name.c_str(),
                  O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    *why = errno == ELOOP ? "is a symbolic link (refused, never followed)" : Errno(errno);
    return -1;
  }
  Fd owned(fd);
  if (fstat(fd, st) != 0) {
    *why = Errno(errno);
    return -1;
  }
  if (!S_ISREG(st->st_mode)) {
    *why = "is not a regular file (changed while being copied?)";
    errno = EINVAL;  // what the caller reads: not a missing or forbidden file
    return -1;
  }
  // F_SETFL changes only the status flags (O_APPEND, O_ASYNC, O_DIRECT,
  // O_NOATIME, O_NONBLOCK), of which we set O_NONBLOCK alone: clearing them
  // all clears it without an F_GETFL first.
  if (fcntl(fd, F_SETFL, 0) != 0) {
    *why = Errno(errno);
    return -1;
  }
  return owned.release();
}

WriteQuota::WriteQuota(Limits limits, std::function<int64_t()> now_seconds)
    : limits_(limits), now_seconds_(std::move(now_seconds)) {}

int64_t WriteQuota::Hour() const {
  const int64_t now = now_seconds_
                          ? now_seconds_()
                          : std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::steady_clock::now().time_since_epoch())
                                .count();
  return now / 3600;
}

std::pair<int64_t, int64_t> WriteQuota::Sum(const Buckets& b, int64_t hour) {
  int64_t bytes = 0, files = 0;
  for (const Bucket& k : b) {
    if (k.hour > hour - 24 && k.hour <= hour) {
      bytes += k.bytes;
      files += k.files;
    }
  }
  return {std::max<int64_t>(bytes, 0), std::max<int64_t>(files, 0)};
}

WriteQuota::Bucket& WriteQuota::Current(Buckets& b, int64_t hour) {
  Bucket& k = b[static_cast<size_t>(hour % 24)];
  if (k.hour != hour) k = Bucket{hour, 0, 0};
  return k;
}

void WriteQuota::SweepLocked(int64_t hour) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    bool live = false;
    for (const Bucket& k : it->second) live = live || k.hour > hour - 24;
    it = live ? std::next(it) : entries_.erase(it);
  }
  sweep_at_ = std::max<size_t>(1024, 2 * entries_.size());
}

Err WriteQuota::Reserve(const std::string& identity, const std::string& endpoint,
                        int64_t bytes, int64_t files) {
  const int64_t hour = Hour();
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= sweep_at_) SweepLocked(hour);
  Buckets& b = entries_[{identity, endpoint}];
  const auto [used_bytes, used_files] = Sum(b, hour);
  if (limits_.bytes_per_day > 0 && used_bytes + bytes > limits_.bytes_per_day) {
    return ResourceExhausted(
        "max_bytes_per_identity_per_day (" + std::to_string(limits_.bytes_per_day) +
        ") reached for " + Quote(identity) + " on endpoint " + Quote(endpoint) + ": " +
        std::to_string(used_bytes) + " bytes written in the last 24 hours");
  }
  if (limits_.files_per_day > 0 && used_files + files > limits_.files_per_day) {
    return ResourceExhausted("max_files_per_identity_per_day (" +
                             std::to_string(limits_.files_per_day) + ") reached for " +
                             Quote(identity) + " on endpoint " + Quote(endpoint) + ": " +
                             std::to_string(used_files) +
                             " files and directories created in the last 24 hours");
  }
  Bucket& k = Current(b, hour);
  k.bytes += bytes;
  k.files += files;
  return Ok();
}

void WriteQuota::Adjust(const std::string& identity, const std::string& endpoint,
                        int64_t bytes, int64_t files) {
  const int64_t hour = Hour();
  std::lock_guard<std::mutex> lock(mu_);
  Bucket& k = Current(entries_[{identity, endpoint}], hour);
  k.bytes += bytes;
  k.files += files;
}

std::pair<int64_t, int64_t> WriteQuota::Used(const std::string& identity,
                                             const std::string& endpoint) {
  const int64_t hour = Hour();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find({identity, endpoint});
  return it == entries_.end() ? std::pair<int64_t, int64_t>{0, 0} : Sum(it->second, hour);
}

Err SplitPath(const std::string& path, const std::string& field,
              std::vector<std::string>* out) {
  out->clear();
  if (path.find('\0') != std::string::npos)
    return InvalidArgument(field + ": contains NUL");
  if (!path.empty() && path[0] == '/') {
    return InvalidArgument(field +
                           ": must be relative to the endpoint root, not absolute");
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string comp = path.substr(start, end - start);
    if (comp == "..") {
      return InvalidArgument(field +
                             ": \"..\" is not allowed (paths stay inside the endpoint)");
    }
    if (comp.size() > 255)
      return InvalidArgument(field + ": a name is longer than 255 bytes");
    if (!comp.empty() && comp != ".") out->push_back(std::move(comp));
    start = end + 1;
  }
  if (out->size() > static_cast<size_t>(kMaxDepth))
    return InvalidArgument(field + ": too deep");
  return Ok();
}

Err OpenRoot(const Endpoint& e, int* fd) {
  *fd = open(e.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*fd < 0)
    return Unavailable("endpoint " + e.id + ": cannot open its root: " + Errno(errno));
  return Ok();
}

Err CheckPath(int root_fd, const std::vector<std::string>& comps,
              const std::string& field, bool* exists) {
  *exists = true;
  Fd cur(dup(root_fd));
  for (size_t i = 0; i < comps.size(); ++i) {
    struct stat st;
    if (fstatat(cur.get(), comps[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) {
        *exists = false;
        return Ok();
      }
      return InvalidArgument(field + ": " + Errno(errno));
    }
    if (S_ISLNK(st.st_mode)) {
      return InvalidArgument(field + ": " +
                             (i + 1 < comps.size() ? "goes through" : "is") +
                             " a symbolic link (refused, never followed)");
    }
    if (i + 1 == comps.size()) break;
    if (!S_ISDIR(st.st_mode)) {
      return InvalidArgument(field + ": a parent is not a directory");
    }
    Fd next(OpenDirAt(cur.get(), comps[i]));
    if (next.get() < 0)
      return InvalidArgument(field + ": " + WhyNotDir(cur.get(), comps[i], errno));
    std::swap(cur, next);
  }
  return Ok();
}

Err HashFile(int fd, std::vector<char>* buf, Sha256* out) {
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> md(EVP_MD_CTX_new(),
                                                        EVP_MD_CTX_free);
  if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) {
    return Internal("sha256: cannot initialise");
  }
  buf->resize(kBufferSize);
  off_t off = 0;
  for (;;) {
    ssize_t n = pread(fd, buf->data(), buf->size(), off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Internal("read: " + Errno(errno));
    }
    if (n == 0) break;
    EVP_DigestUpdate(md.get(), buf->data(), static_cast<size_t>(n));
    off += n;
  }
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(md.get(), out->data(), &len) != 1 || len != out->size()) {
    return Internal("sha256: cannot finish");
  }
  return Ok();
}

Copier::Copier(const Request& req, ActionContext* ctx, CopyOptions options)
    : req_(req),
      ctx_(ctx),
      options_(std::move(options)),
      limits_(req_, options_),
      throttle_(ctx, options_.max_bytes_per_second) {}

nlohmann::json Copier::Details() const {
  return TransferDetails(
      req_, c_, errors_, stop_,
      req_.encrypt_data ? nlohmann::json("not applied: both endpoints are local "
                                         "directories on the timerd host, so no data "
                                         "crosses a network to encrypt")
                        : nlohmann::json(),
      skipped_);
}

void Copier::Publish(bool force) {
  int64_t now = NowNs();
  if (!force && now - last_publish_ns_ < 50'000'000) return;  // 20 updates/s at most
  last_publish_ns_ = now;
  ctx_->SetDetails(Details());
}

void Copier::Fail(const std::string& path, const Err& error) {
  RecordFailure(req_, path, error, &c_, &first_error_, &errors_, &stop_);
  Publish(false);
}

void Copier::Fail(const std::string& path, const std::string& error) {
  Fail(path, Err{TIMER_AP_UNKNOWN, error});
}

void Copier::SourceError(const std::string& path, const std::string& why, int err) {
  if (!req_.options.skip_source_errors || !IsSkippableSourceErrno(err)) {
    return Fail(path, why);
  }
  RecordSkippedSource(path, why, &c_, &skipped_);
  Publish(false);
}

void Copier::SkipLink(const std::string& path, const std::string& why) {
  ++c_.symlinks_skipped;
  if (skipped_.size() < kMaxListed)
    skipped_.push_back({{"path", path}, {"skipped", "symbolic link " + why}});
}

bool Copier::Admit(int dst_fd, int64_t bytes, int64_t entries) {
  if (!limits_.NeedsFreeBytes()) return limits_.Admit(-1, bytes, entries, &stop_);
  // What the write takes from the filesystem, counted high: its bytes in
  // whole blocks and a block for each new entry (an inode, a directory
  // block).
  const auto takes = [&](int64_t block) {
    return (bytes + block - 1) / block * block + entries * block;
  };
  const int64_t now = NowNs();
  const bool fresh = free_.dir == dst_fd && now - free_.at_ns < kFreeSpaceMaxAgeNs;
  // The free space as last asked, less what the run took since: asked again
  // when it is older than kFreeSpaceMaxAgeNs, in another directory, or
  // would refuse the write (a refusal always rests on a fresh answer).
  if (!fresh || free_.bytes - takes(free_.block) < req_.destination->min_free_bytes) {
    struct statvfs vfs;
    free_.dir = -1;
    if (fstatvfs(dst_fd, &vfs) == 0) {
      free_ = {dst_fd,
               static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize),
               std::max<int64_t>(static_cast<int64_t>(vfs.f_frsize), 512), now};
    }
  }
  const int64_t free_bytes = free_.dir == dst_fd ? free_.bytes : -1;
  if (!limits_.Admit(free_bytes, bytes, entries, &stop_)) return false;
  if (free_.dir == dst_fd) free_.bytes -= takes(free_.block);
  return true;
}

void Copier::Refund(int64_t bytes, int64_t entries) { limits_.Refund(bytes, entries); }

void Copier::Throttle() { throttle_.Wait(c_.bytes_transferred); }

Outcome Copier::Run() {
  throttle_.Start();
  umask_ = ProcessUmask();
  buf_.resize(kBufferSize);
  Publish(true);
  int src_fd = -1, dst_fd = -1;
  Err e = OpenRoot(*req_.source, &src_fd);
  Fd src_root(src_fd);
  if (e.ok()) e = OpenRoot(*req_.destination, &dst_fd);
  Fd dst_root(dst_fd);
  src_root_ = src_root.get();
  if (!e.ok()) {
    Publish(true);
    // Opening an endpoint: a refused connection may pass, a refused key not.
    e.error_class = ClassOf(e);
    return Outcome::Failed(e);
  }
  for (size_t i = 0; i < req_.items.size() && !Stopped(); ++i) {
    CopyItem(i, req_.items[i], src_root.get(), dst_root.get());
  }
  Publish(true);
  return RunOutcome(c_, stop_, ctx_->cancelled(), first_error_);
}

void Copier::CopyItem(size_t index, const Item& item, int src_root, int dst_root) {
  const std::string where = "transfer_items[" + std::to_string(index) + "]";
  const std::string src_name = item.source_path.empty() ? "." : item.source_path;
  // Resolve the source: its parent directory, then the entry itself.
  Fd src_parent(dup(src_root));
  for (size_t i = 0; i + 1 < item.source.size(); ++i) {
    Fd next(OpenDirAt(src_parent.get(), item.source[i]));
    if (next.get() < 0) {
      const int err = errno;
      return SourceError(
          where + ".source_path " + src_name,
          item.source[i] + ": " + WhyNotDir(src_parent.get(), item.source[i], err), err);
    }
    std::swap(src_parent, next);
  }
  struct stat st;
  std::string leaf = item.source.empty() ? "." : item.source.back();
  if (fstatat(src_parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    const int err = errno;
    return SourceError(where + ".source_path " + src_name, Errno(err), err);
  }
  if (S_ISLNK(st.st_mode)) {
    return Fail(where + ".source_path " + src_name,
                "is a symbolic link (refused, never followed)");
  }

  // Resolve (creating as needed) the destination's parent directory.
  const bool dir_item = S_ISDIR(st.st_mode);
  if (dir_item && !item.recursive) {
    return Fail(where + ".source_path " + src_name,
                "is a directory; set recursive to copy it");
  }
  if (!dir_item && !S_ISREG(st.st_mode)) {
    return Fail(where + ".source_path " + src_name, "is not a regular file or directory");
  }
  if (!dir_item && item.destination.empty()) {
    return Fail(where + ".destination_path",
                "must name a file when the source is a file");
  }
  size_t parents = dir_item ? item.destination.size() : item.destination.size() - 1;
  Fd dst_dir(dup(dst_root));
  for (size_t i = 0; i < parents; ++i) {
    const std::string& comp = item.destination[i];
    Fd next(OpenDirAt(dst_dir.get(), comp));
    if (next.get() < 0 && errno == ENOENT) {
      ForgetFreeSpace();  // each step is another directory
      if (!Admit(dst_dir.get(), 0, 1)) return;
      if (mkdirat(dst_dir.get(), comp.c_str(), 0755) == 0) {
        ++c_.directories_created;
      } else {
        const int err = errno;
        Refund(0, 1);
        if (err != EEXIST) {
          return Fail(where + ".destination_path " + item.destination_path,
                      ErrnoError(comp + ": cannot create directory", err));
        }
      }
      next = Fd(OpenDirAt(dst_dir.get(), comp));
    }
    if (next.get() < 0) {
      return Fail(where + ".destination_path " + item.destination_path,
                  comp + ": " + WhyNotDir(dst_dir.get(), comp, errno));
    }
    std::swap(dst_dir, next);
  }

  if (!dir_item) {
    ForgetFreeSpace();
    return CopyOne(src_parent.get(), leaf, dst_dir.get(), item.destination.back(),
                   item.source_path);
  }
  Fd src_dir(OpenDirAt(src_parent.get(), leaf));
  if (src_dir.get() < 0) {
    const int err = errno;
    return SourceError(where + ".source_path " + src_name,
                       WhyNotDir(src_parent.get(), leaf, err), err);
  }
  struct stat dst_st;
  if (fstat(dst_dir.get(), &dst_st) == 0) {
    skip_dev_ = dst_st.st_dev;
    skip_ino_ = dst_st.st_ino;
  }
  src_path_ = item.source;
  dst_depth_ = item.destination.size();
  open_dirs_.clear();
  CopyTree(src_dir.get(), dst_dir.get(), item.source_path, 0);
  if (req_.preserve_timestamp && !Stopped()) {
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    futimens(dst_dir.get(), times);
  }
}

void Copier::CopyTree(int src_dir, int dst_dir, const std::string& rel, int depth) {
  if (depth > kMaxDepth)
    return Fail(rel, "directory nesting deeper than " + std::to_string(kMaxDepth));
  SweepStaleTemps(dst_dir);
  std::vector<DirEntry> entries;
  if (Err e = ListDir(src_dir, &entries); !e.ok())
    return Fail(rel.empty() ? "." : rel, e.message);
  const TransferOptions& o = req_.options;
  // Only recursive_symlinks copy can reach a directory twice (through a
  // link): it keeps the directories being copied to refuse a loop.
  const bool track = o.recursive_symlinks == RecursiveSymlinks::kCopy;
  if (track) {
    struct stat self;
    if (fstat(src_dir, &self) == 0) open_dirs_.emplace_back(self.st_dev, self.st_ino);
  }
  // The free space asked in another directory may be another filesystem's.
  ForgetFreeSpace();
  for (const DirEntry& entry : entries) {
    if (Stopped()) break;
    const std::string& name = entry.name;
    if (IsTemp(name)) continue;  // another run's file in progress
    const std::string path = Join(rel, name);
    // The type the directory gives (no stat per entry, as cp and find):
    // each kind is opened below in a way that checks it again (a regular
    // file's type on its descriptor, a directory with O_DIRECTORY and
    // O_NOFOLLOW), so an entry swapped since the listing is refused, never
    // followed. Only a filesystem that gives no type is asked.
    unsigned char type = entry.type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(src_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed while we walk
        SourceError(path, Errno(errno), errno);
        continue;
      }
      type = IFTODT(st.st_mode);
    }
    // Links are filtered as what they become (CopyLink).
    if (!o.filter_rules.empty() && type != DT_LNK &&
        !o.filter_rules.Included(name, type == DT_DIR)) {
      ++c_.entries_excluded;
      continue;
    }
    if (type == DT_REG) {
      CopyOne(src_dir, name, dst_dir, name, path);
    } else if (type == DT_DIR) {
      Fd child_src(OpenDirAt(src_dir, name));
      if (child_src.get() < 0) {
        const int err = errno;
        // Gone since the listing (ENOENT), as a file gone before its open:
        // a source error, which skip_source_errors skips.
        SourceError(path, WhyNotDir(src_dir, name, err), err);
        continue;
      }
      struct stat st;
      if (fstat(child_src.get(), &st) != 0) {
        SourceError(path, Errno(errno), errno);
        continue;
      }
      if (st.st_dev == skip_dev_ && st.st_ino == skip_ino_) continue;  // the copy itself
      src_path_.push_back(name);
      CopyDir(child_src.get(), st, dst_dir, name, path, depth);
      src_path_.pop_back();
    } else if (type == DT_LNK) {
      CopyLink(src_dir, name, dst_dir, path, depth);
    } else {
      ++c_.special_files_skipped;
    }
  }
  if (track && !open_dirs_.empty()) open_dirs_.pop_back();
  ForgetFreeSpace();  // dst_dir is closed after this: its number is reused
  if (req_.delete_destination_extra && !Stopped()) DeleteExtra(src_dir, dst_dir, rel);
}

void Copier::CopyDir(int child_src, const struct stat& st, int dst_dir,
                     const std::string& name, const std::string& path, int depth) {
  struct stat existing;
  const bool exists = fstatat(dst_dir, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
  if (!exists && !Admit(dst_dir, 0, 1)) return;
  if (exists) {
    // Opened (and refused if not a directory) below.
  } else if (mkdirat(dst_dir, name.c_str(), (st.st_mode & 07777) | 0700) == 0) {
    ++c_.directories_created;
  } else {
    const int err = errno;
    Refund(0, 1);
    if (err != EEXIST) return Fail(path, ErrnoError("cannot create directory", err));
  }
  Fd child_dst(OpenDirAt(dst_dir, name));
  if (child_dst.get() < 0) {
    return Fail(path, "destination " + WhyNotDir(dst_dir, name, errno));
  }
  ++dst_depth_;
  CopyTree(child_src, child_dst.get(), path, depth + 1);
  --dst_depth_;
  if (req_.preserve_timestamp && !Stopped()) {
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    futimens(child_dst.get(), times);
  }
}

void Copier::CopyLink(int src_dir, const std::string& name, int dst_dir,
                      const std::string& path, int depth) {
  switch (req_.options.recursive_symlinks) {
    case RecursiveSymlinks::kIgnore:
      ++c_.symlinks_skipped;
      return;
    case RecursiveSymlinks::kKeep:
      return KeepLink(src_dir, name, dst_dir, path, depth);
    case RecursiveSymlinks::kCopy:
      return FollowLink(src_dir, name, dst_dir, path, depth);
  }
}

namespace {

// The target of link `name` in `dir`; false (errno set) when it is not one.
bool ReadLinkAt(int dir, const std::string& name, std::string* target) {
  std::vector<char> buf(256);
  for (;;) {
    const ssize_t n = readlinkat(dir, name.c_str(), buf.data(), buf.size());
    if (n < 0) return false;
    if (static_cast<size_t>(n) < buf.size()) {
      target->assign(buf.data(), static_cast<size_t>(n));
      return true;
    }
    if (buf.size() >= 65536) {
      errno = ENAMETOOLONG;
      return false;
    }
    buf.resize(buf.size() * 4);
  }
}

}  // namespace

void Copier::KeepLink(int src_dir, const std::string& name, int dst_dir,
                      const std::string& path, int depth) {
  (void)depth;
  if (!req_.options.filter_rules.empty() &&
      !req_.options.filter_rules.Included(name, false)) {
    ++c_.entries_excluded;
    return;
  }
  std::string target;
  if (!ReadLinkAt(src_dir, name, &target)) {
    const int err = errno;
    return SourceError(path, "cannot read the link: " + Errno(err), err);
  }
  if (!KeepableLinkTarget(target, dst_depth_)) {
    return SkipLink(path, "not kept: its target " + Quote(target) +
                              " could point outside the destination endpoint (only "
                              "relative targets whose \"..\" stay inside are kept)");
  }
  struct stat dst_st;
  if (fstatat(dst_dir, name.c_str(), &dst_st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(dst_st.st_mode)) return Fail(path, "destination is a directory");
    std::string existing;
    if (S_ISLNK(dst_st.st_mode) && ReadLinkAt(dst_dir, name, &existing) &&
        existing == target) {
      ++c_.files_skipped;  // already there, as it is
      return;
    }
  }
  if (!Admit(dst_dir, 0, 1)) return;
  // Made under a temporary name and renamed over the final one, as files are.
  const std::string tmp = TempName();
  if (symlinkat(target.c_str(), dst_dir, tmp.c_str()) != 0) {
    const int err = errno;
    Refund(0, 1);
    return Fail(path, ErrnoError("cannot create the link", err));
  }
  if (renameat(dst_dir, tmp.c_str(), dst_dir, name.c_str()) != 0) {
    const int err = errno;
    unlinkat(dst_dir, tmp.c_str(), 0);
    Refund(0, 1);
    return Fail(path, ErrnoError("cannot rename the link into place", err));
  }
  ++c_.symlinks_kept;
  Publish(false);
}

int Copier::OpenSourceDir(const Path& comps, size_t n) {
  Fd cur(dup(src_root_));
  for (size_t i = 0; i < n && cur.get() >= 0; ++i)
    cur = Fd(OpenDirAt(cur.get(), comps[i]));
  return cur.release();
}

void Copier::FollowLink(int src_dir, const std::string& name, int dst_dir,
                        const std::string& path, int depth) {
  std::string target;
  if (!ReadLinkAt(src_dir, name, &target)) {
    const int err = errno;
    return SourceError(path, "cannot read the link: " + Errno(err), err);
  }
  // What it points to, every step below the source root, no link followed
  // by the kernel: each is looked up here and its target resolved again.
  const LinkLookup lookup = [this](const Path& p, EntryKind* kind, std::string* next) {
    Fd dir(OpenSourceDir(p, p.size() - 1));
    struct stat st;
    if (dir.get() < 0 ||
        fstatat(dir.get(), p.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return NotFound(p.back() + ": " + Errno(errno));
    }
    if (S_ISLNK(st.st_mode)) {
      *kind = EntryKind::kSymlink;
      if (!ReadLinkAt(dir.get(), p.back(), next)) return NotFound(Errno(errno));
    } else {
      *kind = S_ISDIR(st.st_mode)   ? EntryKind::kDirectory
              : S_ISREG(st.st_mode) ? EntryKind::kFile
                                    : EntryKind::kOther;
    }
    return Ok();
  };
  Path real;
  EntryKind kind = EntryKind::kOther;
  if (Err e = ResolveLinkBeneath(src_path_, target, lookup, &real, &kind); !e.ok()) {
    return SkipLink(path, "not followed: " + e.message);
  }
  const bool is_dir = kind == EntryKind::kDirectory;
  if (!req_.options.filter_rules.empty() &&
      !req_.options.filter_rules.Included(name, is_dir)) {
    ++c_.entries_excluded;
    return;
  }
  if (kind != EntryKind::kFile && !is_dir) {
    ++c_.special_files_skipped;
    return;
  }
  // Opened again, each step without following a link: a swap since the
  // lookup fails here instead of leading outside.
  Fd parent(OpenSourceDir(real, real.empty() ? 0 : real.size() - 1));
  if (parent.get() < 0) return SourceError(path, "link target: " + Errno(errno), errno);
  const std::string leaf = real.empty() ? "." : real.back();
  struct stat st;
  if (fstatat(parent.get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return SourceError(path, "link target: " + Errno(errno), errno);
  }
  ++c_.symlinks_followed;
  if (!is_dir) {
    if (!S_ISREG(st.st_mode)) return Fail(path, "link target changed while being copied");
    return CopyOne(parent.get(), leaf, dst_dir, name, path);
  }
  for (const auto& [dev, ino] : open_dirs_) {
    if (dev == st.st_dev && ino == st.st_ino) {
      --c_.symlinks_followed;
      return SkipLink(path,
                      "not followed: it leads to a directory being copied (a loop)");
    }
  }
  if (st.st_dev == skip_dev_ && st.st_ino == skip_ino_) return;  // the copy itself
  Fd child_src(OpenDirAt(parent.get(), leaf));
  if (child_src.get() < 0) {
    const int err = errno;
    return SourceError(path, "link target: " + WhyNotDir(parent.get(), leaf, err), err);
  }
  Path saved = std::move(src_path_);
  src_path_ = std::move(real);
  CopyDir(child_src.get(), st, dst_dir, name, path, depth);
  src_path_ = std::move(saved);
}

void Copier::DeleteExtra(int src_dir, int dst_dir, const std::string& rel) {
  std::vector<std::string> src_names, dst_names;
  if (!ListDir(src_dir, &src_names).ok() || !ListDir(dst_dir, &dst_names).ok()) return;
  std::set<std::string> keep(src_names.begin(), src_names.end());
  const FilterRules& filters = req_.options.filter_rules;
  for (const std::string& name : dst_names) {
    if (keep.count(name) != 0) continue;
    // What filter_rules exclude is left alone at the destination too.
    if (!filters.empty()) {
      struct stat st;
      const bool is_dir = fstatat(dst_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                          S_ISDIR(st.st_mode);
      if (!filters.Included(name, is_dir)) continue;
    }
    if (Err e = RemoveTree(dst_dir, name, 0); !e.ok()) {
      Fail(Join(rel, name), "cannot delete: " + e.message);
    }
  }
}

Err Copier::RemoveTree(int dir_fd, const std::string& name, int depth) {
  struct stat st;
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return Internal(Errno(errno));
  if (S_ISDIR(st.st_mode)) {
    if (depth > kMaxDepth) return Internal("too deep");
    Fd child(OpenDirAt(dir_fd, name));
    if (child.get() < 0) return Internal(Errno(errno));
    std::vector<std::string> names;
    if (Err e = ListDir(child.get(), &names); !e.ok()) return e;
    for (const std::string& n : names) {
      if (Err e = RemoveTree(child.get(), n, depth + 1); !e.ok()) return e;
    }
    if (unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0) return Internal(Errno(errno));
  } else if (unlinkat(dir_fd, name.c_str(), 0) != 0) {
    return Internal(Errno(errno));
  }
  ++c_.entries_deleted;
  return Ok();
}

Err Copier::CopyData(int src_fd, const struct stat& src_st, int dst_fd, Sha256* hash,
                     int64_t* reserved) {
  // copy_file_range keeps the data in the kernel (and lets a filesystem
  // share extents); hashing needs the bytes, so verify reads them instead.
  bool use_cfr = hash == nullptr;
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> md(nullptr, EVP_MD_CTX_free);
  if (hash != nullptr) {
    md.reset(EVP_MD_CTX_new());
    if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) {
      return Internal("sha256: cannot initialise");
    }
  }
  size_t chunk = kCopyChunk;
  if (options_.max_bytes_per_second > 0) {
    chunk = std::max<size_t>(4096,
                             std::min<size_t>(chunk, options_.max_bytes_per_second / 20));
  }
  const auto stopped = [this]() -> Err {
    if (ctx_->cancelled()) return {TIMER_AP_CANCELLED, "cancelled"};
    return {TIMER_AP_ABORTED, stop_};  // a limit: not this file's failure
  };
  // A hole is hashed as the zeros it reads as, a GiB at a time between
  // checks for a cancel.
  const auto hash_zeros = [&](int64_t n) {
    while (n > 0) {
      if (Stopped()) return false;
      const int64_t k = std::min<int64_t>(n, int64_t{1} << 30);
      HashZeros(md.get(), k);
      n -= k;
    }
    return true;
  };
  // A sparse source is copied one data segment at a time, each to the same
  // offset: the holes between (SEEK_HOLE) are never read or written. Whether
  // to look for holes at all is cp's test: fewer blocks than the length
  // needs. A file with all its blocks is read straight to its end, without
  // the three lseek calls and the final stat and truncate a small file
  // would otherwise cost (a third of its system calls).
  bool sparse = static_cast<int64_t>(src_st.st_blocks) * 512 < src_st.st_size;
  int64_t written = 0;
  off_t pos = 0;      // everything before it is copied (or a hole)
  off_t dst_end = 0;  // the destination's length: it starts empty
  bool eof = false;
  while (!eof) {
    if (Stopped()) return stopped();
    off_t data = pos;
    off_t data_end = std::numeric_limits<off_t>::max();
    if (sparse) {
      data = lseek(src_fd, pos, SEEK_DATA);
      if (data < 0 && errno == ENXIO) break;  // only a hole (or nothing) is left
      if (data < 0) {
        sparse = false;  // a filesystem without SEEK_DATA: copy every byte
        data = pos;
      } else {
        data_end = lseek(src_fd, data, SEEK_HOLE);
        if (data_end < 0) data_end = std::numeric_limits<off_t>::max();
      }
    }
    if (md && data > pos && !hash_zeros(data - pos)) return stopped();
    off_t off = data;
    while (off < data_end) {
      if (Stopped()) return stopped();
      const size_t want = static_cast<size_t>(
          std::min<int64_t>(chunk, static_cast<int64_t>(data_end - off)));
      ssize_t n;
      if (use_cfr) {
        off_t in = off, out = off;
        n = copy_file_range(src_fd, &in, dst_fd, &out, want, 0);
        if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                      errno == EOPNOTSUPP || errno == EPERM)) {
          use_cfr = false;  // e.g. across filesystems on older kernels
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError("copy", errno);
      } else {
        n = pread(src_fd, buf_.data(), std::min(buf_.size(), want), off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Internal("read: " + Errno(errno));
        if (md) EVP_DigestUpdate(md.get(), buf_.data(), static_cast<size_t>(n));
        for (ssize_t done = 0; done < n;) {
          ssize_t w = pwrite(dst_fd, buf_.data() + done, static_cast<size_t>(n - done),
                             off + done);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) return ErrnoError("write", errno);
          done += w;
        }
      }
      if (n == 0) {
        eof = true;  // the end of the file (it may have shrunk meanwhile)
        break;
      }
      off += n;
      dst_end = off;
      written += n;
      c_.bytes_transferred += n;
      // A file that grew past what was admitted for it is admitted again,
      // for the excess: the bounds hold to within one chunk.
      if (written > *reserved) {
        const int64_t more = written - *reserved;
        if (!Admit(dst_fd, more, 0)) return stopped();
        *reserved += more;
      }
      Throttle();
      Publish(false);
    }
    pos = off;
  }
  if (sparse) {
    // The file's length: a hole at its end has no data to copy, and the
    // destination ends with its last data until it is extended.
    struct stat st;
    if (fstat(src_fd, &st) != 0) return Internal("stat: " + Errno(errno));
    if (md && st.st_size > pos && !hash_zeros(st.st_size - pos)) return stopped();
    if (st.st_size != dst_end && ftruncate(dst_fd, st.st_size) != 0)
      return ErrnoError("truncate", errno);
  }
  // Read to its end (a read returned 0), a file is as long as what was
  // written: there is nothing to truncate. (ftruncate is not free even to
  // the same length: ext4 runs its whole truncate path.)
  if (md) {
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(md.get(), hash->data(), &len) != 1)
      return Internal("sha256: cannot finish");
  }
  return Ok();
}

namespace {

// Gives the unnamed file `fd` (O_TMPFILE) the name `name` in `dir`. linkat
// with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH before Linux 6.10, so
// without it the file is linked through /proc/self/fd. Returns 0 or -1 with
// errno set (EEXIST: the name is taken).
int LinkUnnamed(int fd, int dir, const std::string& name) {
  if (linkat(fd, "", dir, name.c_str(), AT_EMPTY_PATH) == 0) return 0;
  if (errno != ENOENT && errno != EPERM) return -1;
  char proc_path[64];
  std::snprintf(proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
  return linkat(AT_FDCWD, proc_path, dir, name.c_str(), AT_SYMLINK_FOLLOW);
}

}  // namespace

void Copier::CopyOne(int src_dir, const std::string& name, int dst_dir,
                     const std::string& dname, const std::string& rel) {
  const std::string path = rel.empty() ? name : rel;
  // What is at the destination now (never read through a symlink). Without
  // a sync level nothing depends on it when new files are linked into
  // place: linkat finds out (EEXIST), and only then is the name looked at.
  // That saves a lookup per file on a first run; once a name was found
  // taken, the run looks first (a destination with one file likely has more).
  struct stat dst_st;
  bool dst_file = false;
  bool dst_free = true;  // nothing has the final name (as far as we know)
  if (req_.sync_level != SyncLevel::kNone || !unnamed_temps_ || names_taken_) {
    if (fstatat(dst_dir, dname.c_str(), &dst_st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISDIR(dst_st.st_mode)) return Fail(path, "destination is a directory");
      dst_file = S_ISREG(dst_st.st_mode);
      dst_free = false;
    } else if (errno != ENOENT) {
      return Fail(path, "destination: " + Errno(errno));
    }
  }

  if (options_.before_open_source) options_.before_open_source(src_dir, name);
  struct stat st;
  std::string why;
  Fd src(OpenRegularAt(src_dir, name, &st, &why));
  if (src.get() < 0) return SourceError(path, why, errno);

  Sha256 src_hash{};
  bool have_src_hash = false;
  const auto ns = [](const struct timespec& t) {
    return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
  };
  bool skip =
      SyncSkipsByMetadata(req_.sync_level, dst_file, st.st_size, dst_st.st_size,
                          /*times_known=*/true, ns(st.st_mtim), ns(dst_st.st_mtim), 1);
  if (req_.sync_level == SyncLevel::kChecksum && dst_file &&
      dst_st.st_size == st.st_size) {
    struct stat ignored;
    std::string dst_why;
    Fd dst(OpenRegularAt(dst_dir, dname, &ignored, &dst_why));
    Sha256 dst_hash{};
    if (dst.get() >= 0 && HashFile(dst.get(), &buf2_, &dst_hash).ok()) {
      Err e = HashFile(src.get(), &buf_, &src_hash);
      if (!e.ok()) return Fail(path, e.message);
      have_src_hash = true;
      skip = src_hash == dst_hash;
    }
  }
  if (skip) {
    ++c_.files_skipped;
    Publish(false);
    return;
  }

  // What the copy will write: its data, not its holes (st_blocks), and no
  // more than its length.
  int64_t reserved =
      std::min<int64_t>(st.st_size, static_cast<int64_t>(st.st_blocks) * 512);
  if (!Admit(dst_dir, reserved, 1)) return;
  const mode_t mode = st.st_mode & 0777;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (ctx_->cancelled()) return Refund(reserved, 1);
    // The copy is written out of sight. To a new name, as an unnamed file
    // (O_TMPFILE) given its name once complete: one linkat instead of a
    // create under a temporary name and a rename, and a run killed midway
    // leaves nothing behind. Over an existing file (or where the
    // filesystem has no unnamed files), under a temporary name renamed over
    // the final one, since linkat never replaces a name.
    std::string tmp;  // empty while the copy has no name
    Fd out;
    if (dst_free && unnamed_temps_) {
      // Made with the copy's mode, out of sight until linked: no fchmod
      // after, unless the umask takes away some of it.
      out = Fd(openat(dst_dir, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode));
      if (out.get() < 0 && errno != EMFILE && errno != ENFILE && errno != ENOSPC &&
          errno != EDQUOT && errno != ENOMEM) {
        unnamed_temps_ = false;  // EOPNOTSUPP, EISDIR (old kernels), ...
      }
    }
    if (out.get() < 0) {
      tmp = TempName();
      out = Fd(openat(dst_dir, tmp.c_str(),
                      O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    }
    if (out.get() < 0) {
      const int err = errno;
      Refund(reserved, 1);
      return Fail(path, ErrnoError("cannot create a temporary file", err));
    }
    // A file not written (in the end) is given back to the quotas. An
    // unnamed one vanishes with its descriptor.
    auto discard = [&] {
      if (!tmp.empty()) unlinkat(dst_dir, tmp.c_str(), 0);
      Refund(reserved, 1);
    };
    const int64_t bytes_before = c_.bytes_transferred;
    Sha256 copied_hash{};
    Err e = CopyData(src.get(), st, out.get(),
                     req_.verify_checksum ? &copied_hash : nullptr, &reserved);
    if ((e.code == TIMER_AP_CANCELLED || e.code == TIMER_AP_ABORTED) && Stopped()) {
      return discard();  // the run stops; stop_ says why
    }
    if (!e.ok()) {
      discard();
      return Fail(path, e);  // RESOURCE_EXHAUSTED: the destination is full
    }
    if (req_.verify_checksum) {
      Sha256 written{};
      Err he = HashFile(out.get(), &buf2_, &written);
      if (he.ok() && have_src_hash && copied_hash != src_hash)
        he = Internal("source changed");
      if (!he.ok() || written != copied_hash) {
        if (!tmp.empty()) unlinkat(dst_dir, tmp.c_str(), 0);
        c_.bytes_transferred = bytes_before;
        if (attempt == 0) {
          ++c_.checksum_retries;
          continue;  // once more, as Globus does (under the same admission)
        }
        Refund(reserved, 1);
        return Fail(path, "checksum mismatch after retry");
      }
      ++c_.files_verified;
    }
    if (!tmp.empty() || (mode & umask_) != 0) fchmod(out.get(), mode);
    if (req_.preserve_timestamp) {
      struct timespec times[2] = {st.st_atim, st.st_mtim};
      if (futimens(out.get(), times) != 0) {
        discard();
        return Fail(path, "cannot set timestamps: " + Errno(errno));
      }
    }
    if (tmp.empty()) {
      if (LinkUnnamed(out.get(), dst_dir, dname) != 0) {
        if (IsQuotaErrno(errno)) {  // no room for the name
          const int err = errno;
          discard();
          return Fail(path, ErrnoError("cannot link the copy into place", err));
        }
        if (errno != EEXIST) {
          // Unnamed files cannot be linked here (no capability, no /proc):
          // this file once more under a temporary name, and every next one.
          unnamed_temps_ = false;
          c_.bytes_transferred = bytes_before;
          if (req_.verify_checksum) --c_.files_verified;
          --attempt;
          continue;
        }
        // The final name is taken (a file appeared since it was looked at,
        // or it was not looked at): name the copy and rename it over, as
        // for an existing file; never over a directory.
        names_taken_ = true;
        struct stat taken;
        if (fstatat(dst_dir, dname.c_str(), &taken, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISDIR(taken.st_mode)) {
          discard();
          return Fail(path, "destination is a directory");
        }
        tmp = TempName();
        if (LinkUnnamed(out.get(), dst_dir, tmp) != 0) {
          const int err2 = errno;
          tmp.clear();
          discard();
          return Fail(path, ErrnoError("cannot name the copy", err2));
        }
      }
    }
    if (close(out.release()) != 0) {
      const int err = errno;
      // An unnamed file already has its final name: take it back.
      unlinkat(dst_dir, tmp.empty() ? dname.c_str() : tmp.c_str(), 0);
      Refund(reserved, 1);
      return Fail(path, ErrnoError("write", err));
    }
    if (!tmp.empty() && renameat(dst_dir, tmp.c_str(), dst_dir, dname.c_str()) != 0) {
      int err = errno;
      discard();
      return Fail(path, ErrnoError("cannot rename into place", err));
    }
    // Admitted what st_blocks promised; give back what the copy did not
    // write (holes the source's blocks overstated).
    const int64_t wrote = c_.bytes_transferred - bytes_before;
    if (wrote < reserved) Refund(reserved - wrote, 0);
    ++c_.files_transferred;
    Publish(false);
    return;
  }
}

}  // namespace timer::plugins::transfer
