#include "sftp_fs.h"

#include <fcntl.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "local_fs.h"
#include "secret_file.h"

namespace timer::plugins::transfer {
namespace {

constexpr uint32_t kReadRequest = 128 << 10;  // bytes per SSH_FXP_READ
constexpr size_t kReadRequests = kSftpReadWindow / kReadRequest;
// Bytes per SSH_FXP_WRITE: under OpenSSH's 256 KiB message limit.
constexpr size_t kWriteRequest = 128 << 10;
constexpr int kMaxDepth = 128;
constexpr size_t kMaxCheckedDirs = 100000;
constexpr size_t kMaxSweptParts = 1000;  // per directory and call

struct SessionDeleter {
  void operator()(ssh_session s) const {
    if (ssh_is_connected(s)) ssh_disconnect(s);
    ssh_free(s);
  }
};
struct SftpDeleter {
  void operator()(sftp_session s) const { sftp_free(s); }
};
struct KeyDeleter {
  void operator()(ssh_key k) const { ssh_key_free(k); }
};
struct AttrDeleter {
  void operator()(sftp_attributes a) const { sftp_attributes_free(a); }
};
using Session = std::unique_ptr<ssh_session_struct, SessionDeleter>;
using Sftp = std::unique_ptr<sftp_session_struct, SftpDeleter>;
using Key = std::unique_ptr<ssh_key_struct, KeyDeleter>;
using Attr = std::unique_ptr<sftp_attributes_struct, AttrDeleter>;

std::string Shown(const Path& p) {
  if (p.empty()) return ".";
  std::string s;
  for (const std::string& c : p) s += (s.empty() ? "" : "/") + c;
  return s;
}

const char* SftpStatusText(int code) {
  switch (code) {
    case SSH_FX_OK:
      return "ok";
    case SSH_FX_EOF:
      return "end of file";
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
      return "no such file or directory";
    case SSH_FX_PERMISSION_DENIED:
      return "permission denied";
    case SSH_FX_FAILURE:
      return "failure (SSH_FX_FAILURE)";
    case SSH_FX_BAD_MESSAGE:
      return "bad message";
    case SSH_FX_NO_CONNECTION:
    case SSH_FX_CONNECTION_LOST:
      return "connection lost";
    case SSH_FX_OP_UNSUPPORTED:
      return "operation not supported by the server";
    case SSH_FX_FILE_ALREADY_EXISTS:
      return "file already exists";
    case SSH_FX_WRITE_PROTECT:
      return "write protected";
    default:
      return "error";
  }
}

EntryKind KindOf(const sftp_attributes_struct& a) {
  switch (a.type) {
    case SSH_FILEXFER_TYPE_REGULAR:
      return EntryKind::kFile;
    case SSH_FILEXFER_TYPE_DIRECTORY:
      return EntryKind::kDirectory;
    case SSH_FILEXFER_TYPE_SYMLINK:
      return EntryKind::kSymlink;
    default:
      return EntryKind::kOther;
  }
}

EntryInfo FromAttr(const sftp_attributes_struct& a, std::string name) {
  EntryInfo info;
  info.name = std::move(name);
  info.kind = KindOf(a);
  if (a.flags & SSH_FILEXFER_ATTR_SIZE) info.size = static_cast<int64_t>(a.size);
  if (a.flags & SSH_FILEXFER_ATTR_ACMODTIME)
    info.mtime_ns = int64_t{a.mtime} * 1'000'000'000;
  return info;
}

// "ssh-ed25519 SHA256:..." of `key`, as ssh-keygen -l shows it.
std::string Fingerprint(ssh_key key) {
  unsigned char* hash = nullptr;
  size_t len = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != 0)
    return "(no fingerprint)";
  char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
  ssh_clean_pubkey_hash(&hash);
  std::string s = std::string(ssh_key_type_to_char(ssh_key_type(key))) + " " +
                  (fp != nullptr ? fp : "(no fingerprint)");
  ssh_string_free_char(fp);
  return s;
}

// A pinned "type base64 [comment]" public key line.
Err ImportPinnedKey(const std::string& line, Key* out) {
  const size_t sp = line.find(' ');
  if (sp == std::string::npos) return InvalidArgument("not \"TYPE BASE64\"");
  const std::string type = line.substr(0, sp);
  std::string b64 = line.substr(sp + 1);
  b64 = b64.substr(0, b64.find(' '));
  const enum ssh_keytypes_e t = ssh_key_type_from_name(type.c_str());
  if (t == SSH_KEYTYPE_UNKNOWN) return InvalidArgument("unknown key type " + type);
  ssh_key key = nullptr;
  if (ssh_pki_import_pubkey_base64(b64.c_str(), t, &key) != SSH_OK || key == nullptr)
    return InvalidArgument("not a valid " + type + " public key");
  out->reset(key);
  return Ok();
}

// Bounds every request of a session: libssh 0.10 applies its timeout to
// connecting but waits for an SFTP answer without end (and knows nothing of
// a cancel). The watchdog has the session's socket from when it is made
// (Attach, from libssh's connect progress callback), so connecting is cut
// too. While a request is in flight (a Guard is alive) a thread of its own
// watches the deadline (timeout_seconds from the last progress) and the
// run's cancel, and when the deadline passes or the run is cancelled shuts
// the socket down: the request fails at once, and so does the session. It
// looks at the cancel every kCancelPoll while armed (first kCancelPoll
// after it was armed, so a quick request made after the cancel still goes
// through): a cancel ends a request in flight within twice that; unarmed,
// it sleeps until armed. A cleanup Guard (a writer removing its temporary
// file) is not cut by a cancel, only by the deadline.
class Watchdog {
 public:
  static constexpr std::chrono::milliseconds kCancelPoll{250};

  // `cancelled` (CancelCheck, may be empty) is called on the watchdog's
  // thread.
  Watchdog(std::chrono::seconds timeout, CancelCheck cancelled)
      : timeout_(timeout),
        cancelled_(std::move(cancelled)),
        thread_([this] { Watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  // Watches a duplicate of `fd` (the first one given; later calls do
  // nothing): the socket outlives the session, so its number is never
  // another's when the watchdog shuts it down. One that fired before it had
  // a socket shuts this one down at once.
  void Attach(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ >= 0 || fd < 0) return;
    fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fired_ && fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  // The socket was shut down: the session is unusable.
  bool fired() const { return fired_.load(); }
  // It was shut down because the run was cancelled (not the deadline).
  bool cut_by_cancel() const { return cut_by_cancel_.load(); }

  // Arms it for one call (nested calls share the outer deadline, which
  // Touch moves on after progress). kCleanup: a cancel does not cut it.
  enum Kind { kRequest, kCleanup };
  class Guard {
   public:
    explicit Guard(Watchdog* w, Kind kind = kRequest) : w_(w), kind_(kind) {
      w_->Arm(kind_);
    }
    ~Guard() { w_->Disarm(kind_); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    Watchdog* w_;
    const Kind kind_;
  };
  void Touch() {
    std::lock_guard<std::mutex> lock(mu_);
    if (depth_ > 0) deadline_ = Clock::now() + timeout_;
  }

 private:
  using Clock = std::chrono::steady_clock;
  void Arm(Kind kind) {
    std::lock_guard<std::mutex> lock(mu_);
    if (kind == kCleanup) ++cleanups_;
    if (depth_++ == 0) {
      armed_at_ = Clock::now();
      deadline_ = armed_at_ + timeout_;
      cv_.notify_one();
    }
  }
  void Disarm(Kind kind) {
    std::lock_guard<std::mutex> lock(mu_);
    if (kind == kCleanup) --cleanups_;
    --depth_;
  }
  void ShutDown() {
    fired_ = true;
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  void Watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      const Clock::time_point now = Clock::now();
      if (depth_ == 0) {
        cv_.wait(lock);
      } else if (now >= deadline_) {
        ShutDown();
        cv_.wait(lock, [this] { return stop_; });
      } else if (cleanups_ == 0 && cancelled_ && now >= armed_at_ + kCancelPoll &&
                 cancelled_()) {
        cut_by_cancel_ = true;
        ShutDown();
        cv_.wait(lock, [this] { return stop_; });
      } else {
        cv_.wait_until(lock,
                       cancelled_ ? std::min(deadline_, now + kCancelPoll) : deadline_);
      }
    }
  }

  int fd_ = -1;  // guarded by mu_
  const std::chrono::seconds timeout_;
  const CancelCheck cancelled_;
  std::mutex mu_;
  std::condition_variable cv_;
  int depth_ = 0;               // guarded by mu_
  int cleanups_ = 0;            // guarded by mu_: cleanup Guards alive
  Clock::time_point armed_at_;  // guarded by mu_
  Clock::time_point deadline_;  // guarded by mu_
  bool stop_ = false;           // guarded by mu_
  std::atomic<bool> fired_{false};
  std::atomic<bool> cut_by_cancel_{false};
  std::thread thread_;  // last: started once the rest is set
};

class SftpFs;

// Pipelined reads: up to kReadRequests requests of kReadRequest bytes in
// flight, sent with libssh (sftp_async_read_begin) and their answers read
// here straight from the channel. Why not sftp_async_read: libssh 0.10
// reads the channel a packet at a time, which never lets its receive
// window grow past 1.28 MB (WINDOWBASE), so the server stops sending
// whenever the reader is scheduled away for a few milliseconds (downloads
// at a third of OpenSSH's sftp, which keeps 64 x 32 KiB in flight in a
// 2 MB window, on a busy host). ssh_channel_read asked for more than the
// window holds grows the window to what was asked: reading up to
// kAnswerBuffer at a time keeps a window of about that size open.
// The answers are parsed here (SSH_FXP_DATA, SSH_FXP_STATUS; SFTP v3) and
// must come in the order of the requests, as OpenSSH's server sends them;
// a server that reorders them fails the read. Every request sent is
// answered and its answer consumed before the reader goes (Drain), so
// libssh never sees one. Memory: the answer buffer (kAnswerBuffer) and
// what libssh holds of the channel (at most the window, as large).
class SftpReader : public FileReader {
 public:
  // `spare`: the session's answer buffer, borrowed until the reader goes
  // (one allocation per run, not per file: a tree of small files would pay
  // its page faults every time). `size`: the file's size when opened; no
  // request is sent past it but one (to see the end), unless it grew.
  SftpReader(Watchdog* watchdog, sftp_session sftp, sftp_file file, std::string shown,
             std::unique_ptr<char[]>* spare, int64_t size)
      : watchdog_(watchdog),
        channel_(sftp->channel),
        file_(file),
        shown_(std::move(shown)),
        spare_(spare),
        size_(size < 0 ? 0 : static_cast<uint64_t>(size)) {
    if (*spare_) {
      in_ = std::move(*spare_);
    } else {
      in_.reset(new char[kAnswerBuffer]);  // not zeroed: filled before it is read
    }
  }
  ~SftpReader() override {
    Watchdog::Guard guard(watchdog_);
    Drain();
    sftp_close(file_);
    *spare_ = std::move(in_);
  }
  Err Read(char* buf, size_t n, size_t* got) override;

 private:
  static constexpr size_t kAnswerBuffer = kSftpReadWindow + kReadRequest + 4096;
  struct Pending {
    uint32_t id;
    uint64_t offset;
  };
  struct Answer {
    uint8_t type = 0;
    uint32_t id = 0;
    const char* body = nullptr;  // after the id, in in_
    uint32_t size = 0;
  };
  static uint32_t U32(const char* p) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    return uint32_t{u[0]} << 24 | uint32_t{u[1]} << 16 | uint32_t{u[2]} << 8 | u[3];
  }
  // The error of a request on a channel that broke: CANCELLED when the
  // watchdog cut it for the run's cancel.
  Err Broken(const std::string& what) const {
    if (watchdog_->cut_by_cancel())
      return {TIMER_AP_CANCELLED, shown_ + ": read: cancelled"};
    return Unavailable(shown_ + ": " + what);
  }
  // Reads from the channel until `need` unparsed bytes are held.
  Err Fill(size_t need) {
    if (need > kAnswerBuffer)
      return Internal(shown_ + ": an answer larger than expected");
    if (end_ - pos_ >= need) return Ok();
    if (kAnswerBuffer - pos_ < need) {  // room at the end: move what is left down
      std::memmove(in_.get(), in_.get() + pos_, end_ - pos_);
      end_ -= pos_;
      pos_ = 0;
    }
    while (end_ - pos_ < need) {
      const int r = ssh_channel_read(channel_, in_.get() + end_,
                                     static_cast<uint32_t>(kAnswerBuffer - end_), 0);
      if (r < 0 || (r == 0 && ssh_channel_is_eof(channel_))) {
        broken_ = true;
        return Broken("read failed: the connection broke");
      }
      end_ += static_cast<size_t>(r);
      watchdog_->Touch();
    }
    return Ok();
  }
  // The next answer on the channel (consumed by the next call).
  Err Next(Answer* a) {
    if (Err e = Fill(9); !e.ok()) return e;
    const uint32_t len = U32(in_.get() + pos_);
    if (len < 5 || len > kReadRequest + 1024) {
      broken_ = true;
      return Internal(shown_ + ": read: a malformed answer from the server");
    }
    if (Err e = Fill(4 + len); !e.ok()) return e;
    a->type = static_cast<uint8_t>(in_[pos_ + 4]);
    a->id = U32(in_.get() + pos_ + 5);
    a->body = in_.get() + pos_ + 9;
    a->size = len - 5;
    pos_ += 4 + len;
    return Ok();
  }
  // The answer to `p`: its data (*data, *len), or *len == 0 at the end of
  // the file.
  Err Collect(const Pending& p, const char** data, uint32_t* len) {
    *len = 0;
    Answer a;
    if (Err e = Next(&a); !e.ok()) return e;
    if (a.id != p.id) {
      broken_ = true;
      return Internal(shown_ + ": read: the server answered out of order");
    }
    if (a.type == SSH_FXP_DATA && a.size >= 4 && U32(a.body) <= a.size - 4) {
      *len = U32(a.body);
      *data = a.body + 4;
      return Ok();
    }
    if (a.type == SSH_FXP_STATUS && a.size >= 4) {
      const uint32_t code = U32(a.body);
      if (code == SSH_FX_EOF) return Ok();
      const timer_ap_code c = code == SSH_FX_PERMISSION_DENIED
                                  ? TIMER_AP_PERMISSION_DENIED
                              : code == SSH_FX_NO_SUCH_FILE ? TIMER_AP_NOT_FOUND
                                                            : TIMER_AP_INTERNAL;
      return {c, shown_ + ": read: " + SftpStatusText(static_cast<int>(code))};
    }
    broken_ = true;
    return Internal(shown_ + ": read: a malformed answer from the server");
  }
  // Consumes the answers of the requests in flight; keeps the offset.
  void Drain() {
    const char* data = nullptr;
    uint32_t len = 0;
    while (!pending_.empty() && !broken_ && !watchdog_->fired()) {
      const Pending p = pending_.front();
      pending_.pop_front();
      Err e = Collect(p, &data, &len);
      if (!e.ok() && broken_) break;
    }
    pending_.clear();
  }

  Watchdog* watchdog_;
  ssh_channel channel_;
  sftp_file file_;
  const std::string shown_;
  std::deque<Pending> pending_;
  uint64_t next_ = 0;  // the offset of the next request
  bool eof_ = false;
  bool broken_ = false;  // the channel holds an unparsed or foreign answer
  std::unique_ptr<char[]>* const spare_;
  const uint64_t size_;
  std::unique_ptr<char[]> in_;  // kAnswerBuffer bytes
  size_t pos_ = 0, end_ = 0;    // unparsed bytes: in_[pos_, end_)
};

Err SftpReader::Read(char* buf, size_t n, size_t* got) {
  *got = 0;
  if (n < kReadRequest) return Internal("sftp read: buffer too small");
  if (broken_) return Broken("read: the session is unusable");
  Watchdog::Guard guard(watchdog_);
  // Up to the size known at open (and one request past it, which says
  // where the file ends), then one at a time should it have grown.
  while (!eof_ && pending_.size() < kReadRequests &&
         (next_ <= size_ || pending_.empty())) {
    const int id = sftp_async_read_begin(file_, kReadRequest);
    if (id < 0) return Broken("read request failed");
    pending_.push_back({static_cast<uint32_t>(id), next_});
    next_ += kReadRequest;
  }
  if (pending_.empty()) return Ok();  // end of file
  const Pending p = pending_.front();
  pending_.pop_front();
  const char* data = nullptr;
  uint32_t r = 0;
  if (Err e = Collect(p, &data, &r); !e.ok()) return e;
  if (r == 0) {  // end of file: the requests after it say so too
    eof_ = true;
    Drain();
    return Ok();
  }
  if (r > kReadRequest) return Internal(shown_ + ": read: more data than asked for");
  std::memcpy(buf, data, r);
  if (r < kReadRequest) {
    // A short read: the requests in flight were for the offsets after a
    // full one. Drop them and go on from where this one ended.
    Drain();
    next_ = p.offset + r;
    if (sftp_seek64(file_, next_) != 0) return Internal(shown_ + ": seek failed");
  }
  *got = r;
  return Ok();
}

class SftpFs : public EndpointFs {
 public:
  SftpFs(const SftpConfig& config, Session session, Sftp sftp,
         std::unique_ptr<Watchdog> watchdog)
      : config_(config),
        session_(std::move(session)),
        sftp_(std::move(sftp)),
        watchdog_(std::move(watchdog)) {
    statvfs_ = sftp_extension_supported(sftp_.get(), "statvfs@openssh.com", "2") != 0;
  }
  ~SftpFs() override {
    Watchdog::Guard guard(watchdog_.get());
    sftp_.reset();
    session_.reset();
  }
  Watchdog* watchdog() const { return watchdog_.get(); }

  bool Encrypted() const override { return true; }
  bool KeepsSha256() const override { return false; }

  std::string Abs(const Path& p, size_t n) const {
    std::string s = config_.root;
    for (size_t i = 0; i < n; ++i) s += (s.empty() || s.back() != '/' ? "/" : "") + p[i];
    return s;
  }
  std::string Abs(const Path& p) const { return Abs(p, p.size()); }

  // The error of the last SFTP request on `what`.
  Err Error(const std::string& what) const {
    if (watchdog_->cut_by_cancel()) return {TIMER_AP_CANCELLED, what + ": cancelled"};
    if (watchdog_->fired()) {
      return Unavailable(what + ": no answer from " + config_.host + ":" +
                         std::to_string(config_.port) + " within timeout_seconds (" +
                         std::to_string(config_.timeout_seconds) + ")");
    }
    if (!ssh_is_connected(session_.get())) {
      return Unavailable(what + ": connection to " + config_.host + ":" +
                         std::to_string(config_.port) +
                         " lost: " + ssh_get_error(session_.get()));
    }
    const int code = sftp_get_error(sftp_.get());
    if (code == SSH_FX_OK)
      return Unavailable(what + ": " + ssh_get_error(session_.get()));
    const timer_ap_code c =
        code == SSH_FX_NO_SUCH_FILE || code == SSH_FX_NO_SUCH_PATH ? TIMER_AP_NOT_FOUND
        : code == SSH_FX_PERMISSION_DENIED ? TIMER_AP_PERMISSION_DENIED
                                           : TIMER_AP_INTERNAL;
    return {c, what + ": " + SftpStatusText(code)};
  }
  // SFTP version 3 has no "disk full" status: OpenSSH answers a write that
  // hit ENOSPC with a bare SSH_FX_FAILURE. After such a failure on a write,
  // close, create or rename in directory `dir_abs`, the server's
  // statvfs@openssh.com tells a full filesystem apart: no block (or inode)
  // free for the user, or fewer bytes than were being written. Then the
  // error is RESOURCE_EXHAUSTED, the code every copier gives a full
  // destination (fail_on_quota_errors is decided on it), and it says so in
  // words; otherwise `e` is returned as it was. Call right after the
  // failed request (its status is still the session's last). A quota the
  // server enforces per user is not visible to statvfs: it stays a failure.
  Err FullOr(Err e, const std::string& dir_abs, uint64_t bytes) {
    if (e.code != TIMER_AP_INTERNAL || !statvfs_ || watchdog_->fired() ||
        sftp_get_error(sftp_.get()) != SSH_FX_FAILURE) {
      return e;
    }
    sftp_statvfs_t v = sftp_statvfs(sftp_.get(), dir_abs.c_str());
    if (v == nullptr) return e;
    const uint64_t avail = v->f_bavail * v->f_frsize;
    const bool full = v->f_bavail == 0 || avail < bytes || v->f_favail == 0;
    sftp_statvfs_free(v);
    if (!full) return e;
    const size_t colon = e.message.rfind(": ");
    const std::string what =
        colon == std::string::npos ? e.message : e.message.substr(0, colon);
    return ResourceExhausted(what + ": " + std::strerror(ENOSPC) +
                             " (the server's filesystem has " + std::to_string(avail) +
                             " bytes free for this user)");
  }
  bool Missing() const {
    const int code = sftp_get_error(sftp_.get());
    return !watchdog_->fired() && ssh_is_connected(session_.get()) &&
           (code == SSH_FX_NO_SUCH_FILE || code == SSH_FX_NO_SUCH_PATH);
  }

  // Checks that components [0, n) of `p` are directories, not links
  // (LSTAT, once per directory per run). *missing: one does not exist.
  Err CheckDirs(const Path& p, size_t n, bool* missing) {
    *missing = false;
    for (size_t i = 1; i <= n; ++i) {
      const std::string abs = Abs(p, i);
      if (checked_.count(abs) != 0) continue;
      Attr a(sftp_lstat(sftp_.get(), abs.c_str()));
      const Path upto(p.begin(), p.begin() + static_cast<long>(i));
      if (!a) {
        if (Missing()) {
          *missing = true;
          return Ok();
        }
        return Error(Shown(upto));
      }
      const EntryKind k = KindOf(*a);
      if (k == EntryKind::kSymlink) {
        return InvalidArgument(Shown(upto) +
                               ": is a symbolic link (refused, never followed)");
      }
      if (k != EntryKind::kDirectory)
        return InvalidArgument(Shown(upto) + ": is not a directory");
      if (checked_.size() >= kMaxCheckedDirs) checked_.clear();
      checked_.insert(abs);
    }
    return Ok();
  }
  Err CheckParents(const Path& p) {
    bool missing = false;
    Err e = CheckDirs(p, p.empty() ? 0 : p.size() - 1, &missing);
    if (e.ok() && missing) return NotFound(Shown(p) + ": a parent directory is missing");
    return e;
  }

  Err Stat(const Path& path, EntryInfo* info, bool* exists) override {
    Watchdog::Guard guard(watchdog_.get());
    *exists = false;
    bool missing = false;
    if (Err e = CheckDirs(path, path.empty() ? 0 : path.size() - 1, &missing);
        !e.ok() || missing) {
      return e;
    }
    // The root itself may be a link the operator chose: STAT follows it.
    Attr a(path.empty() ? sftp_stat(sftp_.get(), config_.root.c_str())
                        : sftp_lstat(sftp_.get(), Abs(path).c_str()));
    if (!a) return Missing() ? Ok() : Error(Shown(path));
    *info = FromAttr(*a, "");
    *exists = true;
    return Ok();
  }

  Err List(const Path& dir, const std::function<bool(const EntryInfo&)>& each) override {
    Watchdog::Guard guard(watchdog_.get());
    bool missing = false;
    if (Err e = CheckDirs(dir, dir.size(), &missing); !e.ok()) return e;
    if (missing) return NotFound(Shown(dir) + ": no such directory");
    sftp_dir d = sftp_opendir(sftp_.get(), Abs(dir).c_str());
    if (d == nullptr) return Error(Shown(dir) + ": cannot list");
    Err err;
    for (;;) {
      Attr a(sftp_readdir(sftp_.get(), d));
      if (!a) {
        if (!sftp_dir_eof(d)) err = Error(Shown(dir) + ": cannot list");
        break;
      }
      const std::string name = a->name != nullptr ? a->name : "";
      if (name.empty() || name == "." || name == "..") continue;
      if (name.find('/') != std::string::npos) continue;  // never from a sane server
      if (!each(FromAttr(*a, name))) break;
      watchdog_->Touch();
    }
    sftp_closedir(d);
    return err;
  }

  Err OpenRead(const Path& file, std::unique_ptr<FileReader>* out) override {
    Watchdog::Guard guard(watchdog_.get());
    if (Err e = CheckParents(file); !e.ok()) return e;
    const std::string abs = Abs(file);
    Attr a(sftp_lstat(sftp_.get(), abs.c_str()));
    if (!a) return Error(Shown(file));
    if (KindOf(*a) == EntryKind::kSymlink)
      return InvalidArgument(Shown(file) +
                             ": is a symbolic link (refused, never followed)");
    if (KindOf(*a) != EntryKind::kFile)
      return InvalidArgument(Shown(file) + ": is not a regular file");
    sftp_file f = sftp_open(sftp_.get(), abs.c_str(), O_RDONLY, 0);
    if (f == nullptr) return Error(Shown(file) + ": cannot open");
    out->reset(new SftpReader(watchdog_.get(), sftp_.get(), f, Shown(file),
                              &answer_buffer_, FromAttr(*a, "").size));
    return Ok();
  }

  Err Create(const Path& file, int64_t size, std::unique_ptr<FileWriter>* out) override;

  Err MakeDir(const Path& dir) override {
    if (dir.empty()) return Ok();
    Watchdog::Guard guard(watchdog_.get());
    if (Err e = CheckParents(dir); !e.ok()) return e;
    const std::string abs = Abs(dir);
    if (sftp_mkdir(sftp_.get(), abs.c_str(), 0755) != 0) {
      Err err = Error(Shown(dir) + ": cannot create");
      Attr a(sftp_lstat(sftp_.get(), abs.c_str()));
      if (!a) return err;
      if (KindOf(*a) != EntryKind::kDirectory)
        return InvalidArgument(Shown(dir) + ": exists and is not a directory");
    }
    checked_.insert(abs);
    return Ok();
  }

  Err RemoveAbs(const std::string& abs, const std::string& shown, int depth) {
    watchdog_->Touch();
    Attr a(sftp_lstat(sftp_.get(), abs.c_str()));
    if (!a) return Error(shown);
    if (KindOf(*a) != EntryKind::kDirectory) {
      if (sftp_unlink(sftp_.get(), abs.c_str()) != 0) return Error(shown);
      return Ok();
    }
    if (depth > kMaxDepth) return Internal(shown + ": too deep");
    std::vector<std::string> names;
    sftp_dir d = sftp_opendir(sftp_.get(), abs.c_str());
    if (d == nullptr) return Error(shown);
    while (Attr e{sftp_readdir(sftp_.get(), d)}) {
      const std::string n = e->name != nullptr ? e->name : "";
      if (!n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos)
        names.push_back(n);
    }
    sftp_closedir(d);
    for (const std::string& n : names) {
      if (Err e = RemoveAbs(abs + "/" + n, shown + "/" + n, depth + 1); !e.ok()) return e;
    }
    if (sftp_rmdir(sftp_.get(), abs.c_str()) != 0) return Error(shown);
    return Ok();
  }

  Err Remove(const Path& path) override {
    if (path.empty()) return InvalidArgument("the endpoint's root is never removed");
    Watchdog::Guard guard(watchdog_.get());
    if (Err e = CheckParents(path); !e.ok()) return e;
    const std::string abs = Abs(path);
    for (auto it = checked_.lower_bound(abs);
         it != checked_.end() && it->compare(0, abs.size(), abs) == 0;) {
      it = checked_.erase(it);
    }
    return RemoveAbs(abs, Shown(path), 0);
  }

  Err SetTimes(const std::string& abs, int64_t mtime_ns, uint32_t permissions,
               const std::string& shown) {
    sftp_attributes_struct attr;
    std::memset(&attr, 0, sizeof(attr));
    if (mtime_ns >= 0) {
      attr.flags |= SSH_FILEXFER_ATTR_ACMODTIME;
      attr.mtime = static_cast<uint32_t>(mtime_ns / 1'000'000'000);
      attr.atime = static_cast<uint32_t>(time(nullptr));
    }
    if (permissions != 0) {
      attr.flags |= SSH_FILEXFER_ATTR_PERMISSIONS;
      attr.permissions = permissions;
    }
    if (attr.flags == 0) return Ok();
    if (sftp_setstat(sftp_.get(), abs.c_str(), &attr) != 0)
      return Error(shown + ": cannot set attributes");
    return Ok();
  }

  Err SetMtime(const Path& dir, int64_t mtime_ns) override {
    Watchdog::Guard guard(watchdog_.get());
    bool missing = false;
    if (Err e = CheckDirs(dir, dir.size(), &missing); !e.ok() || missing) return e;
    return SetTimes(Abs(dir), mtime_ns, 0, Shown(dir));
  }

  Err ReadLink(const Path& link, std::string* target) override {
    if (link.empty()) return InvalidArgument(".: is not a symbolic link");
    Watchdog::Guard guard(watchdog_.get());
    if (Err e = CheckParents(link); !e.ok()) return e;
    char* t = sftp_readlink(sftp_.get(), Abs(link).c_str());
    if (t == nullptr) return Error(Shown(link) + ": cannot read the link");
    target->assign(t);
    ssh_string_free_char(t);
    return Ok();
  }

  // SSH_FXP_SYMLINK: OpenSSH's server takes its two paths in the reverse of
  // the draft's order; libssh 0.10's sftp_symlink(target, link) sends them
  // as the server it talks to expects (it checks for OpenSSH's banner).
  Err MakeLink(const Path& link, const std::string& target) override {
    if (link.empty()) return InvalidArgument(".: is a directory");
    Watchdog::Guard guard(watchdog_.get());
    if (Err e = CheckParents(link); !e.ok()) return e;
    const std::string dir = Abs(link, link.size() - 1);
    const std::string tmp = dir + "/" + TempPartName();
    const std::string abs = Abs(link);
    const std::string shown = Shown(link);
    if (sftp_symlink(sftp_.get(), target.c_str(), tmp.c_str()) != 0)
      return FullOr(Error(shown + ": cannot create the link"), dir, 1);
    if (sftp_rename(sftp_.get(), tmp.c_str(), abs.c_str()) != 0) {
      // As a file's publish: OpenSSH refuses SSH_FXP_RENAME onto a name.
      Err err = Error(shown + ": cannot rename the link into place");
      Attr a(sftp_lstat(sftp_.get(), abs.c_str()));
      if (a && KindOf(*a) == EntryKind::kDirectory) {
        err = InvalidArgument(shown + ": destination is a directory");
      } else if (a && sftp_unlink(sftp_.get(), abs.c_str()) == 0 &&
                 sftp_rename(sftp_.get(), tmp.c_str(), abs.c_str()) == 0) {
        return Ok();
      } else if (a) {
        err = Error(shown + ": cannot replace");
      }
      sftp_unlink(sftp_.get(), tmp.c_str());
      return err;
    }
    return Ok();
  }

  // Parts are judged by their modification time on the server against
  // timerd's clock: `min_age_seconds` (an hour at least) absorbs a skew
  // between the two, and a live writer moves the time with every chunk.
  void SweepStaleParts(const Path& dir, int64_t min_age_seconds) override {
    Watchdog::Guard guard(watchdog_.get());
    const int64_t now = static_cast<int64_t>(time(nullptr));
    std::vector<std::string> stale;
    const Err e = List(dir, [&](const EntryInfo& i) {
      if (IsTempPartName(i.name) &&
          (i.kind == EntryKind::kFile || i.kind == EntryKind::kSymlink) &&
          i.mtime_ns >= 0 && now - i.mtime_ns / 1'000'000'000 > min_age_seconds) {
        stale.push_back(i.name);
      }
      return stale.size() < kMaxSweptParts;
    });
    if (!e.ok()) return;
    for (const std::string& name : stale) {
      Path p = dir;
      p.push_back(name);
      sftp_unlink(sftp_.get(), Abs(p).c_str());  // best effort: gone already is fine
      watchdog_->Touch();
    }
  }

  int64_t FreeBytes(const Path& dir) override {
    if (!statvfs_) return -1;
    Watchdog::Guard guard(watchdog_.get());
    sftp_statvfs_t v = sftp_statvfs(sftp_.get(), Abs(dir).c_str());
    if (v == nullptr) return -1;
    const int64_t free_bytes = static_cast<int64_t>(v->f_bavail * v->f_frsize);
    sftp_statvfs_free(v);
    return free_bytes;
  }

  sftp_session sftp() const { return sftp_.get(); }
  std::unique_ptr<char[]>* answer_buffer() { return &answer_buffer_; }

 private:
  const SftpConfig config_;  // A copy: the endpoint that opened it may go first.
  Session session_;
  Sftp sftp_;
  std::unique_ptr<Watchdog> watchdog_;
  bool statvfs_ = false;
  std::set<std::string> checked_;          // directories LSTATed in this run
  std::unique_ptr<char[]> answer_buffer_;  // lent to one SftpReader at a time
};

class SftpWriter : public FileWriter {
 public:
  SftpWriter(SftpFs* fs, sftp_file file, std::string dir, std::string tmp,
             std::string final_path, std::string shown)
      : fs_(fs),
        file_(file),
        dir_(std::move(dir)),
        tmp_(std::move(tmp)),
        final_(std::move(final_path)),
        shown_(std::move(shown)) {}
  ~SftpWriter() override {
    // Also after a cancel (unless it already cut the session): bounded by
    // timeout_seconds.
    Watchdog::Guard guard(fs_->watchdog(), Watchdog::kCleanup);
    if (file_ != nullptr) sftp_close(file_);
    if (!published_) sftp_unlink(fs_->sftp(), tmp_.c_str());  // best effort
  }

  Err Write(const char* buf, size_t n) override {
    if (file_ == nullptr) return Internal(shown_ + ": written after it was closed");
    Watchdog::Guard guard(fs_->watchdog());
    while (n > 0) {
      fs_->watchdog()->Touch();
      const size_t k = std::min(n, kWriteRequest);
      const ssize_t w = sftp_write(file_, buf, k);
      if (w < 0) return fs_->FullOr(fs_->Error(shown_ + ": write"), dir_, k);
      if (w == 0) return Internal(shown_ + ": write made no progress");
      buf += w;
      n -= static_cast<size_t>(w);
      written_ += w;
    }
    return Ok();
  }

  Err Close() {
    if (file_ == nullptr) return Ok();
    Watchdog::Guard guard(fs_->watchdog());
    const int rc = sftp_close(file_);
    file_ = nullptr;
    if (rc != 0) return fs_->FullOr(fs_->Error(shown_ + ": close"), dir_, 1);
    return Ok();
  }

  Err ReadBackSha256(Sha256Digest* out) override {
    if (Err e = Close(); !e.ok()) return e;
    Watchdog::Guard guard(fs_->watchdog());
    sftp_file f = sftp_open(fs_->sftp(), tmp_.c_str(), O_RDONLY, 0);
    if (f == nullptr) return fs_->Error(shown_ + ": cannot read back");
    SftpReader reader(fs_->watchdog(), fs_->sftp(), f, shown_, fs_->answer_buffer(),
                      written_);
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> md(EVP_MD_CTX_new(),
                                                          EVP_MD_CTX_free);
    if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1)
      return Internal("sha256: cannot initialise");
    std::vector<char> buf(kReadRequest);
    for (;;) {
      size_t got = 0;
      if (Err e = reader.Read(buf.data(), buf.size(), &got); !e.ok()) return e;
      if (got == 0) break;
      EVP_DigestUpdate(md.get(), buf.data(), got);
      fs_->watchdog()->Touch();
    }
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(md.get(), out->data(), &len) != 1)
      return Internal("sha256: cannot finish");
    return Ok();
  }

  Err Publish(const PublishOptions& options) override {
    if (Err e = Close(); !e.ok()) return e;
    Watchdog::Guard guard(fs_->watchdog());
    if (Err e = fs_->SetTimes(tmp_, options.mtime_ns, 0644, shown_); !e.ok()) return e;
    if (sftp_rename(fs_->sftp(), tmp_.c_str(), final_.c_str()) != 0) {
      // OpenSSH refuses SSH_FXP_RENAME onto an existing name (and libssh
      // 0.10 cannot send posix-rename@openssh.com): remove what is there
      // (a file or a link, never a directory) and rename again.
      Err first = fs_->FullOr(fs_->Error(shown_ + ": cannot rename into place"), dir_, 1);
      if (first.code == TIMER_AP_RESOURCE_EXHAUSTED) return first;
      Attr a(sftp_lstat(fs_->sftp(), final_.c_str()));
      if (!a) return first;
      if (KindOf(*a) == EntryKind::kDirectory)
        return InvalidArgument(shown_ + ": destination is a directory");
      if (sftp_unlink(fs_->sftp(), final_.c_str()) != 0)
        return fs_->Error(shown_ + ": cannot replace");
      if (sftp_rename(fs_->sftp(), tmp_.c_str(), final_.c_str()) != 0)
        return fs_->FullOr(fs_->Error(shown_ + ": cannot rename into place"), dir_, 1);
    }
    published_ = true;
    return Ok();
  }

 private:
  SftpFs* fs_;
  sftp_file file_;
  const std::string dir_, tmp_, final_, shown_;
  bool published_ = false;
  int64_t written_ = 0;
};

Err SftpFs::Create(const Path& file, int64_t size, std::unique_ptr<FileWriter>* out) {
  (void)size;
  if (file.empty()) return InvalidArgument(".: is a directory");
  Watchdog::Guard guard(watchdog_.get());
  if (Err e = CheckParents(file); !e.ok()) return e;
  const std::string dir = Abs(file, file.size() - 1);
  const std::string tmp = dir + "/" + TempPartName();
  sftp_file f =
      sftp_open(sftp_.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_TRUNC, 0600);
  if (f == nullptr)
    return FullOr(Error(Shown(file) + ": cannot create a temporary file"), dir, 1);
  out->reset(new SftpWriter(this, f, dir, tmp, Abs(file), Shown(file)));
  return Ok();
}

// Checks the server's host key against the pinned key or known_hosts file.
Err CheckHostKey(const SftpConfig& c, ssh_session s) {
  const std::string where = c.host + ":" + std::to_string(c.port);
  ssh_key raw = nullptr;
  if (ssh_get_server_publickey(s, &raw) != SSH_OK || raw == nullptr)
    return Unavailable("sftp " + where + ": no host key received");
  Key server(raw);
  const std::string seen = Fingerprint(server.get());
  const std::string refused =
      "sftp " + where + ": host key refused: the server presented " + seen + ", which ";
  if (!c.host_key.empty()) {
    if (c.host_key.rfind("SHA256:", 0) == 0) {
      if (seen.substr(seen.find(' ') + 1) != c.host_key)
        return FailedPrecondition(refused + "does not match the pinned host_key");
      return Ok();
    }
    Key pinned;
    if (Err e = ImportPinnedKey(c.host_key, &pinned); !e.ok()) return e;
    if (ssh_key_cmp(server.get(), pinned.get(), SSH_KEY_CMP_PUBLIC) != 0)
      return FailedPrecondition(refused + "does not match the pinned host_key");
    return Ok();
  }
  switch (ssh_session_is_known_server(s)) {
    case SSH_KNOWN_HOSTS_OK:
      return Ok();
    case SSH_KNOWN_HOSTS_CHANGED:
      return FailedPrecondition(refused + "differs from the key known_hosts_file holds");
    case SSH_KNOWN_HOSTS_OTHER:
      return FailedPrecondition(refused + "is of another type than known_hosts_file's");
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
      return FailedPrecondition(refused + "known_hosts_file does not list");
    default:
      return FailedPrecondition("sftp " + where + ": cannot read known_hosts_file");
  }
}

// libssh's connect progress callback (ssh_callbacks_struct's
// connect_status_function): called first right after the socket is made,
// while the TCP connection is still being set up, and again at each step of
// the handshake. `user` is the ConnectWatch.
struct ConnectWatch {
  ssh_session session = nullptr;
  Watchdog* watchdog = nullptr;
};
void OnConnectStatus(void* user, float) {
  auto* w = static_cast<ConnectWatch*>(user);
  w->watchdog->Attach(ssh_get_fd(w->session));
}

}  // namespace

Err SftpEndpoint::Open(const CancelCheck& cancelled,
                       std::unique_ptr<EndpointFs>* out) const {
  const SftpConfig& c = config_;
  const std::string where = c.host + ":" + std::to_string(c.port);
  if (cancelled && cancelled())
    return {TIMER_AP_CANCELLED, "sftp " + where + ": cancelled"};
  Session s(ssh_new());
  if (!s) return Internal("sftp: cannot create a session");
  const long timeout = c.timeout_seconds;
  const int port = c.port;
  const bool no = false;
  const char* known =
      c.known_hosts_file.empty() ? "/dev/null" : c.known_hosts_file.c_str();
  if (ssh_options_set(s.get(), SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK ||
      ssh_options_set(s.get(), SSH_OPTIONS_HOST, c.host.c_str()) != SSH_OK ||
      ssh_options_set(s.get(), SSH_OPTIONS_PORT, &port) != SSH_OK ||
      ssh_options_set(s.get(), SSH_OPTIONS_USER, c.user.c_str()) != SSH_OK ||
      ssh_options_set(s.get(), SSH_OPTIONS_TIMEOUT, &timeout) != SSH_OK ||
      ssh_options_set(s.get(), SSH_OPTIONS_KNOWNHOSTS, known) != SSH_OK ||
      ssh_options_set(s.get(), SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") != SSH_OK) {
    return Internal("sftp " + where + ": cannot set options: " + ssh_get_error(s.get()));
  }
  // From the socket's making on, a silent server (besides libssh's own
  // timeout while connecting), or the run's cancel, is cut off by the
  // watchdog. Resolving the host name is not: getaddrinfo cannot be.
  auto watchdog =
      std::make_unique<Watchdog>(std::chrono::seconds(c.timeout_seconds), cancelled);
  Watchdog::Guard guard(watchdog.get());
  // A step that failed because the cancel cut the session says so (not
  // "refused", which would ask a person to act).
  const Err cut{TIMER_AP_CANCELLED, "sftp " + where + ": cancelled"};
  {
    ConnectWatch watch{s.get(), watchdog.get()};
    ssh_callbacks_struct callbacks{};
    callbacks.userdata = &watch;
    callbacks.connect_status_function = &OnConnectStatus;
    ssh_callbacks_init(&callbacks);
    // libssh keeps the pointer: replaced by an empty set before `callbacks`
    // goes (libssh cannot be told to drop it).
    static ssh_callbacks_struct none = [] {
      ssh_callbacks_struct n{};
      ssh_callbacks_init(&n);
      return n;
    }();
    ssh_set_callbacks(s.get(), &callbacks);
    const int rc = ssh_connect(s.get());
    ssh_set_callbacks(s.get(), &none);
    if (rc != SSH_OK) {
      if (watchdog->cut_by_cancel()) return cut;
      return Unavailable("sftp " + where + ": cannot connect: " + ssh_get_error(s.get()));
    }
  }
  watchdog->Attach(ssh_get_fd(s.get()));  // should libssh not have called back
  watchdog->Touch();                      // timeout_seconds again for the rest
  if (Err e = CheckHostKey(c, s.get()); !e.ok())
    return watchdog->cut_by_cancel() ? cut : e;

  std::string pem;
  if (Err e = ReadSecretFile("private_key_file", c.private_key_file, &pem); !e.ok()) {
    // Checked when the configuration was read: changed since, by the operator.
    return NeedsAttention(FailedPrecondition("sftp " + where + ": " + e.message));
  }
  ssh_key raw = nullptr;
  const int rc =
      ssh_pki_import_privkey_base64(pem.c_str(), nullptr, nullptr, nullptr, &raw);
  OPENSSL_cleanse(pem.data(), pem.size());
  if (rc != SSH_OK || raw == nullptr) {
    return NeedsAttention(FailedPrecondition("sftp " + where +
                                             ": private_key_file is not a usable private "
                                             "key (an unencrypted OpenSSH or PEM key)"));
  }
  Key key(raw);
  if (ssh_userauth_publickey(s.get(), nullptr, key.get()) != SSH_AUTH_SUCCESS) {
    // The credentials: a person must fix them before a retry can work.
    if (watchdog->cut_by_cancel()) return cut;
    return NeedsAttention(PermissionDenied("sftp " + where + ": user " + c.user +
                                           " was refused with private_key_file's key"));
  }
  Sftp sftp(sftp_new(s.get()));
  if (!sftp || sftp_init(sftp.get()) != SSH_OK) {
    if (watchdog->cut_by_cancel()) return cut;
    return Unavailable("sftp " + where +
                       ": cannot start the SFTP subsystem: " + ssh_get_error(s.get()));
  }
  Attr root(sftp_stat(sftp.get(), c.root.c_str()));
  if (!root || KindOf(*root) != EntryKind::kDirectory) {
    if (watchdog->cut_by_cancel()) return cut;
    return Permanent(Unavailable("sftp " + where + ": root " + c.root +
                                 " is not a directory on the server"));
  }
  out->reset(new SftpFs(config_, std::move(s), std::move(sftp), std::move(watchdog)));
  return Ok();
}

nlohmann::json SftpEndpoint::Describe() const {
  return {{"type", "sftp"},
          {"host", config_.host},
          {"port", config_.port},
          {"user", config_.user},
          {"root", config_.root},
          {"host_key_check", config_.host_key.empty() ? "known_hosts_file" : "host_key"},
          {"timeout_seconds", config_.timeout_seconds}};
}

Err ParseSftpEndpoint(FieldReader& r, Endpoint* ep) {
  SftpConfig c;
  c.endpoint_id = ep->id;
  c.root = ep->root;
  c.host = r.String("host", "", true);
  c.port = static_cast<int>(r.Int("port", 22, 1, 65535));
  c.user = r.String("user", "", true);
  c.private_key_file = r.String("private_key_file", "", true);
  c.known_hosts_file = r.String("known_hosts_file", "");
  c.host_key = r.String("host_key", "");
  c.timeout_seconds = static_cast<int>(r.Int("timeout_seconds", 30, 1, 3600));
  if (!r.err().ok()) return r.err();
  const std::string& p = r.prefix();
  if (c.host.empty()) return InvalidArgument(p + ".host: must not be empty");
  if (c.user.empty()) return InvalidArgument(p + ".user: must not be empty");
  if (c.known_hosts_file.empty() == c.host_key.empty()) {
    return InvalidArgument(p +
                           ": set exactly one of known_hosts_file and host_key (the "
                           "server's key is never taken on trust)");
  }
  if (!c.host_key.empty() && c.host_key.rfind("SHA256:", 0) != 0) {
    Key k;
    if (Err e = ImportPinnedKey(c.host_key, &k); !e.ok())
      return InvalidArgument(p + ".host_key: " + e.message);
  }
  if (c.root.empty() || c.root[0] != '/')
    return InvalidArgument(p + ".root: must be an absolute directory on the server");
  for (size_t start = 1; start <= c.root.size();) {
    size_t end = c.root.find('/', start);
    if (end == std::string::npos) end = c.root.size();
    if (c.root.compare(start, end - start, "..") == 0 && end - start == 2)
      return InvalidArgument(p + ".root: must not hold \"..\"");
    start = end + 1;
  }
  if (Err e = ReadSecretFile(p + ".private_key_file", c.private_key_file, nullptr);
      !e.ok()) {
    return InvalidArgument(e.message);
  }
  ep->remote = std::make_shared<SftpEndpoint>(std::move(c));
  return Ok();
}

}  // namespace timer::plugins::transfer
