#include "local_fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string_view>
#include <vector>

#include "copier.h"

namespace timer::plugins::transfer {
namespace {

constexpr char kTempPrefix[] = ".timer-part-";
constexpr int kMaxDepth = 128;

std::string Errno(int e) { return std::strerror(e); }

std::string Shown(const Path& p) {
  if (p.empty()) return ".";
  std::string s;
  for (const std::string& c : p) s += (s.empty() ? "" : "/") + c;
  return s;
}

EntryInfo FromStat(const struct stat& st, std::string name) {
  EntryInfo info;
  info.name = std::move(name);
  info.kind = S_ISREG(st.st_mode)   ? EntryKind::kFile
              : S_ISDIR(st.st_mode) ? EntryKind::kDirectory
              : S_ISLNK(st.st_mode) ? EntryKind::kSymlink
                                    : EntryKind::kOther;
  info.size = st.st_size;
  info.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  return info;
}

class LocalReader : public FileReader {
 public:
  explicit LocalReader(int fd) : fd_(fd) {}
  ~LocalReader() override { close(fd_); }
  Err Read(char* buf, size_t n, size_t* got) override {
    for (;;) {
      const ssize_t r = read(fd_, buf, n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Internal("read: " + Errno(errno));
      *got = static_cast<size_t>(r);
      return Ok();
    }
  }

 private:
  const int fd_;
};

class LocalWriter : public FileWriter {
 public:
  LocalWriter(int dir_fd, int fd, std::string tmp, std::string name, std::string shown)
      : dir_fd_(dir_fd),
        fd_(fd),
        tmp_(std::move(tmp)),
        name_(std::move(name)),
        shown_(std::move(shown)) {}
  ~LocalWriter() override {
    if (fd_ >= 0) close(fd_);
    if (!published_) unlinkat(dir_fd_, tmp_.c_str(), 0);
    close(dir_fd_);
  }
  Err Write(const char* buf, size_t n) override {
    while (n > 0) {
      const ssize_t w = write(fd_, buf, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoError(shown_ + ": write", errno);
      buf += w;
      n -= static_cast<size_t>(w);
    }
    return Ok();
  }
  Err ReadBackSha256(Sha256Digest* out) override {
    std::vector<char> buf;
    Err e = HashFile(fd_, &buf, out);
    if (!e.ok()) e.message = shown_ + ": " + e.message;
    return e;
  }
  Err Publish(const PublishOptions& options) override {
    fchmod(fd_, 0644);
    if (options.mtime_ns >= 0) {
      struct timespec times[2];
      times[0].tv_sec = 0;
      times[0].tv_nsec = UTIME_OMIT;
      times[1].tv_sec = options.mtime_ns / 1'000'000'000;
      times[1].tv_nsec = options.mtime_ns % 1'000'000'000;
      if (futimens(fd_, times) != 0)
        return Internal(shown_ + ": cannot set timestamps: " + Errno(errno));
    }
    const int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0) return ErrnoError(shown_ + ": write", errno);
    if (renameat(dir_fd_, tmp_.c_str(), dir_fd_, name_.c_str()) != 0)
      return ErrnoError(shown_ + ": cannot rename into place", errno);
    published_ = true;
    return Ok();
  }

 private:
  const int dir_fd_;
  int fd_;
  const std::string tmp_, name_, shown_;
  bool published_ = false;
};

Err RemoveAt(int dir_fd, const std::string& name, int depth) {
  struct stat st;
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return Internal(Errno(errno));
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dir_fd, name.c_str(), 0) != 0) return Internal(Errno(errno));
    return Ok();
  }
  if (depth > kMaxDepth) return Internal("too deep");
  const int fd =
      openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Internal(Errno(errno));
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return Internal(Errno(errno));
  }
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  Err err;
  for (const std::string& n : names) {
    err = RemoveAt(dirfd(d), n, depth + 1);
    if (!err.ok()) break;
  }
  closedir(d);
  if (!err.ok()) return err;
  if (unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0) return Internal(Errno(errno));
  return Ok();
}

}  // namespace

std::string TempPartName() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string s = kTempPrefix + std::to_string(getpid()) + "-";
  const uint64_t v = rng();
  for (int i = 0; i < 16; ++i) s.push_back(hex[(v >> (4 * i)) & 0xf]);
  return s;
}

bool IsTempPartName(const std::string& name) { return name.rfind(kTempPrefix, 0) == 0; }

Err LocalFs::Open(const std::string& root, std::unique_ptr<EndpointFs>* out) {
  const int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Unavailable("cannot open the endpoint's root: " + Errno(errno));
  out->reset(new LocalFs(fd));
  return Ok();
}

LocalFs::~LocalFs() { close(root_fd_); }

int LocalFs::OpenDir(const Path& dir, size_t n, Err* err, bool* missing) {
  if (missing != nullptr) *missing = false;
  int cur = dup(root_fd_);
  if (cur < 0) {
    *err = Internal(Errno(errno));
    return -1;
  }
  for (size_t i = 0; i < n; ++i) {
    const int next =
        openat(cur, dir[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      const int e = errno;
      struct stat st;
      const Path upto(dir.begin(), dir.begin() + static_cast<long>(i) + 1);
      if (e == ENOENT && missing != nullptr) {
        *missing = true;
        *err = Ok();
      } else if ((e == ELOOP || e == ENOTDIR) &&
                 fstatat(cur, dir[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                 S_ISLNK(st.st_mode)) {
        *err = InvalidArgument(Shown(upto) +
                               ": is a symbolic link (refused, never followed)");
      } else if (e == ENOTDIR) {
        *err = InvalidArgument(Shown(upto) + ": is not a directory");
      } else {
        *err = Internal(Shown(upto) + ": " + Errno(e));
      }
      close(cur);
      return -1;
    }
    close(cur);
    cur = next;
  }
  return cur;
}

Err LocalFs::Stat(const Path& path, EntryInfo* info, bool* exists) {
  *exists = false;
  if (path.empty()) {
    struct stat st;
    if (fstat(root_fd_, &st) != 0) return Internal(Errno(errno));
    *info = FromStat(st, "");
    *exists = true;
    return Ok();
  }
  Err err;
  bool missing = false;
  const int dir = OpenDir(path, path.size() - 1, &err, &missing);
  if (dir < 0) return err;
  struct stat st;
  const int rc = fstatat(dir, path.back().c_str(), &st, AT_SYMLINK_NOFOLLOW);
  const int e = errno;
  close(dir);
  if (rc != 0) {
    if (e == ENOENT) return Ok();
    return Internal(Shown(path) + ": " + Errno(e));
  }
  *info = FromStat(st, "");
  *exists = true;
  return Ok();
}

Err LocalFs::List(const Path& dir, const std::function<bool(const EntryInfo&)>& each) {
  Err err;
  const int fd = OpenDir(dir, dir.size(), &err);
  if (fd < 0) return err;
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return Internal(Shown(dir) + ": cannot list: " + Errno(errno));
  }
  errno = 0;
  while (struct dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      errno = 0;  // gone meanwhile: not a listing error
      continue;
    }
    if (!each(FromStat(st, std::string(n)))) {
      errno = 0;
      break;
    }
    errno = 0;
  }
  const int read_errno = errno;
  closedir(d);
  if (read_errno != 0)
    return Internal(Shown(dir) + ": cannot list: " + Errno(read_errno));
  return Ok();
}

Err LocalFs::OpenRead(const Path& file, std::unique_ptr<FileReader>* out) {
  if (file.empty()) return InvalidArgument(".: is a directory");
  Err err;
  const int dir = OpenDir(file, file.size() - 1, &err);
  if (dir < 0) return err;
  struct stat st;
  std::string why;
  const int fd = OpenRegularAt(dir, file.back(), &st, &why);
  const int open_errno = errno;
  close(dir);
  if (fd < 0) {
    // Gone or forbidden: what skip_source_errors skips (by the code, as
    // for every storage); a link or a special file is the request's fault.
    std::string message = Shown(file) + ": " + why;
    if (open_errno == ENOENT) return NotFound(std::move(message));
    if (open_errno == EACCES || open_errno == EPERM)
      return PermissionDenied(std::move(message));
    return InvalidArgument(std::move(message));
  }
  out->reset(new LocalReader(fd));
  return Ok();
}

Err LocalFs::Create(const Path& file, int64_t size, std::unique_ptr<FileWriter>* out) {
  (void)size;
  if (file.empty()) return InvalidArgument(".: is a directory");
  Err err;
  const int dir = OpenDir(file, file.size() - 1, &err);
  if (dir < 0) return err;
  const std::string tmp = TempPartName();
  const int fd =
      openat(dir, tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int e = errno;
    close(dir);
    return ErrnoError(Shown(file) + ": cannot create a temporary file", e);
  }
  out->reset(new LocalWriter(dir, fd, tmp, file.back(), Shown(file)));
  return Ok();
}

Err LocalFs::MakeDir(const Path& dir) {
  if (dir.empty()) return Ok();
  Err err;
  const int parent = OpenDir(dir, dir.size() - 1, &err);
  if (parent < 0) return err;
  Err result;
  if (mkdirat(parent, dir.back().c_str(), 0755) != 0) {
    const int e = errno;
    struct stat st;
    if (e != EEXIST ||
        fstatat(parent, dir.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISDIR(st.st_mode)) {
      result = e == EEXIST
                   ? InvalidArgument(Shown(dir) + ": exists and is not a directory")
                   : ErrnoError(Shown(dir) + ": cannot create", e);
    }
  }
  close(parent);
  return result;
}

Err LocalFs::Remove(const Path& path) {
  if (path.empty()) return InvalidArgument("the endpoint's root is never removed");
  Err err;
  const int parent = OpenDir(path, path.size() - 1, &err);
  if (parent < 0) return err;
  Err e = RemoveAt(parent, path.back(), 0);
  close(parent);
  if (!e.ok()) e.message = Shown(path) + ": " + e.message;
  return e;
}

Err LocalFs::SetMtime(const Path& dir, int64_t mtime_ns) {
  Err err;
  const int fd = OpenDir(dir, dir.size(), &err);
  if (fd < 0) return err;
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_OMIT;
  times[1].tv_sec = mtime_ns / 1'000'000'000;
  times[1].tv_nsec = mtime_ns % 1'000'000'000;
  const int rc = futimens(fd, times);
  const int e = errno;
  close(fd);
  if (rc != 0) return Internal(Shown(dir) + ": cannot set timestamps: " + Errno(e));
  return Ok();
}

int64_t LocalFs::FreeBytes(const Path& dir) {
  Err err;
  const int fd = OpenDir(dir, dir.size(), &err);
  if (fd < 0) return -1;
  struct statvfs vfs;
  const int rc = fstatvfs(fd, &vfs);
  close(fd);
  if (rc != 0) return -1;
  return static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
}

Err LocalFs::ReadLink(const Path& link, std::string* target) {
  if (link.empty()) return InvalidArgument(".: is not a symbolic link");
  Err err;
  const int dir = OpenDir(link, link.size() - 1, &err);
  if (dir < 0) return err;
  std::vector<char> buf(4096);
  const ssize_t n = readlinkat(dir, link.back().c_str(), buf.data(), buf.size());
  const int e = errno;
  close(dir);
  if (n < 0) return Internal(Shown(link) + ": cannot read the link: " + Errno(e));
  if (static_cast<size_t>(n) >= buf.size())
    return Internal(Shown(link) + ": cannot read the link: " + Errno(ENAMETOOLONG));
  target->assign(buf.data(), static_cast<size_t>(n));
  return Ok();
}

Err LocalFs::MakeLink(const Path& link, const std::string& target) {
  if (link.empty()) return InvalidArgument(".: is a directory");
  Err err;
  const int dir = OpenDir(link, link.size() - 1, &err);
  if (dir < 0) return err;
  Err result;
  const std::string tmp = TempPartName();
  struct stat st;
  if (fstatat(dir, link.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(st.st_mode)) {
    result = InvalidArgument(Shown(link) + ": destination is a directory");
  } else if (symlinkat(target.c_str(), dir, tmp.c_str()) != 0) {
    result = Internal(Shown(link) + ": cannot create the link: " + Errno(errno));
  } else if (renameat(dir, tmp.c_str(), dir, link.back().c_str()) != 0) {
    result =
        Internal(Shown(link) + ": cannot rename the link into place: " + Errno(errno));
    unlinkat(dir, tmp.c_str(), 0);
  }
  close(dir);
  return result;
}

}  // namespace timer::plugins::transfer
