#include "server/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace timer::server {
namespace {

// Epoll tags: the wake-up descriptor, then listening sockets 1..N, then
// connections from kFirstConnection on.
constexpr uint64_t kWakeTag = 0;
constexpr uint64_t kFirstConnection = uint64_t{1} << 32;
// Accepts per wake-up and listening socket, so that one busy socket cannot
// starve the loop's other work.
constexpr int kAcceptBatch = 64;
constexpr absl::Duration kSweepEvery = absl::Seconds(1);
constexpr absl::Duration kPauseOnError = absl::Milliseconds(100);
constexpr absl::Duration kRefusalLogEvery = absl::Seconds(5);

// A connection's peer address and port, comparable across the two ways they
// come: a sockaddr from accept, a string from gRPC. An IPv4-mapped IPv6
// address is its IPv4 address, as gRPC shows it.
struct Endpoint {
  int family = AF_UNSPEC;
  unsigned char addr[16] = {};
  uint16_t port = 0;

  size_t addr_len() const { return family == AF_INET ? 4 : 16; }
  std::string Key() const {
    std::string key(1, static_cast<char>(family));
    key.append(reinterpret_cast<const char*>(addr), addr_len());
    key.push_back(static_cast<char>(port >> 8));
    key.push_back(static_cast<char>(port & 0xff));
    return key;
  }
  // The per-peer bucket: the IPv4 address, or the IPv6 /64 (one host's, or
  // one site's, share).
  std::string Bucket() const {
    return std::string(1, static_cast<char>(family)) +
           std::string(reinterpret_cast<const char*>(addr), family == AF_INET ? 4 : 8);
  }
  std::string Shown() const {
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family, addr, text, sizeof(text));
    return family == AF_INET6 ? absl::StrCat(text, "/64") : std::string(text);
  }
};

bool FromSockaddr(const sockaddr_storage& ss, Endpoint* out) {
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    out->family = AF_INET;
    std::memcpy(out->addr, &in->sin_addr, 4);
    out->port = ntohs(in->sin_port);
    return true;
  }
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    out->port = ntohs(in6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      out->family = AF_INET;
      std::memcpy(out->addr, in6->sin6_addr.s6_addr + 12, 4);
    } else {
      out->family = AF_INET6;
      std::memcpy(out->addr, in6->sin6_addr.s6_addr, 16);
    }
    return true;
  }
  return false;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "ipv4:127.0.0.1:5555", "ipv6:[::1]:5555" or "ipv6:%5B::1%5D:5555".
bool FromPeer(absl::string_view peer, Endpoint* out) {
  const bool v4 = absl::ConsumePrefix(&peer, "ipv4:");
  if (!v4 && !absl::ConsumePrefix(&peer, "ipv6:")) return false;
  std::string text;
  for (size_t i = 0; i < peer.size(); ++i) {
    if (peer[i] == '%' && i + 2 < peer.size() && HexDigit(peer[i + 1]) >= 0 &&
        HexDigit(peer[i + 2]) >= 0) {
      text.push_back(
          static_cast<char>(HexDigit(peer[i + 1]) * 16 + HexDigit(peer[i + 2])));
      i += 2;
    } else {
      text.push_back(peer[i]);
    }
  }
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  int port = 0;
  if (!absl::SimpleAtoi(absl::string_view(text).substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return false;
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  out->port = static_cast<uint16_t>(port);
  if (v4) {
    out->family = AF_INET;
    return ::inet_pton(AF_INET, host.c_str(), out->addr) == 1;
  }
  in6_addr a6;
  if (::inet_pton(AF_INET6, host.c_str(), &a6) != 1) return false;
  if (IN6_IS_ADDR_V4MAPPED(&a6)) {
    out->family = AF_INET;
    std::memcpy(out->addr, a6.s6_addr + 12, 4);
  } else {
    out->family = AF_INET6;
    std::memcpy(out->addr, a6.s6_addr, 16);
  }
  return true;
}

absl::Status InUse(const std::string& listen) {
  return absl::UnavailableError(
      absl::StrCat("listen: ", listen,
                   " is already in use (another timerd, or another program, listens "
                   "there); timerd never shares a port"));
}

absl::Status CannotListen(const std::string& listen, int err) {
  return absl::UnavailableError(
      absl::StrCat("listen: cannot listen on ", listen, ": ", std::strerror(err)));
}

absl::StatusOr<int> BindUnix(const std::string& listen, const std::string& path) {
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("listen: ", listen,
                                                   ": the socket path must be 1 to ",
                                                   sizeof(addr.sun_path) - 1, " bytes"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::UnavailableError(
          absl::StrCat("listen: ", path, " exists and is not a socket"));
    }
    // A socket someone still answers on is in use; one nobody answers on
    // is left over from a timerd that did not stop cleanly.
    // (Non-blocking: a full backlog, EAGAIN, means in use too.)
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const bool answered =
        probe >= 0 &&
        (::connect(probe, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 ||
         errno == EAGAIN);
    if (probe >= 0) ::close(probe);
    if (answered) return InUse(listen);
    ::unlink(path.c_str());
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return CannotListen(listen, errno);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    const int err = errno;
    ::close(fd);
    return err == EADDRINUSE ? InUse(listen) : CannotListen(listen, err);
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Listener>> Listener::Bind(const std::string& listen,
                                                         const Options& options) {
  std::vector<Socket> sockets;
  const auto close_all = [&sockets] {
    for (const Socket& s : sockets) ::close(s.fd);
  };
  if (absl::StartsWith(listen, "unix:")) {
    std::string path = listen.substr(5);
    if (absl::StartsWith(path, "//")) path = path.substr(2);  // unix:///abs/path
    absl::StatusOr<int> fd = BindUnix(listen, path);
    if (!fd.ok()) return fd.status();
    sockets.push_back({*fd, true});
    auto listener =
        std::unique_ptr<Listener>(new Listener(options, std::move(sockets), 0, path));
    if (listener->epoll_fd_ < 0 || listener->wake_fd_ < 0) {
      return CannotListen(listen, errno);
    }
    return listener;
  }
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen: \"", listen, "\" is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  const std::string service = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(),
                                   &hints, &found);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("listen: cannot resolve ", listen, ": ", ::gai_strerror(rc)));
  }
  int port = 0;
  int last_error = 0;
  // With both families asked for (an empty host), each gets its own socket.
  const bool several = found != nullptr && found->ai_next != nullptr;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    sockaddr_storage addr = {};
    std::memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    // Every address on one port: the one the first bind chose, for port 0.
    if (port != 0) {
      if (ai->ai_family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(port);
      } else {
        reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(port);
      }
    }
    const int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    // SO_REUSEADDR lets a restarted timerd bind while old connections sit in
    // TIME_WAIT; unlike SO_REUSEPORT it never lets two listeners share a port.
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) {
      // "[::]" takes IPv4 too, as gRPC's listener did; a specific address only itself.
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
      const int v6only = (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr) && !several) ? 0 : 1;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), ai->ai_addrlen) != 0 ||
        ::listen(fd, SOMAXCONN) != 0) {
      last_error = errno;
      ::close(fd);
      if (last_error == EADDRINUSE) {
        ::freeaddrinfo(found);
        close_all();
        return InUse(listen);
      }
      continue;  // E.g. ::1 on a host without IPv6: the other addresses serve.
    }
    if (port == 0) {
      sockaddr_storage bound = {};
      socklen_t len = sizeof(bound);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
      Endpoint e;
      if (FromSockaddr(bound, &e)) port = e.port;
    }
    sockets.push_back({fd, false});
  }
  ::freeaddrinfo(found);
  if (sockets.empty()) return CannotListen(listen, last_error ? last_error : EINVAL);
  auto listener =
      std::unique_ptr<Listener>(new Listener(options, std::move(sockets), port, ""));
  if (listener->epoll_fd_ < 0 || listener->wake_fd_ < 0) {
    return CannotListen(listen, errno);
  }
  return listener;
}

Listener::Listener(Options options, std::vector<Socket> sockets, int port,
                   std::string unix_path)
    : options_(options),
      sockets_(std::move(sockets)),
      port_(port),
      unix_path_(std::move(unix_path)) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  for (size_t i = 0; i < sockets_.size(); ++i) {
    ev.events = EPOLLIN;
    ev.data.u64 = i + 1;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sockets_[i].fd, &ev);
  }
}

Listener::~Listener() {
  Stop();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

void Listener::Start(Handoff handoff) {
  handoff_ = std::move(handoff);
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void Listener::Wake() {
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
}

void Listener::StopAccepting() {
  if (!started_) {
    absl::MutexLock lock(&mu_);
    if (accepting_stopped_) return;
    accepting_stopped_ = true;
    stop_accepting_ = true;
    CloseListeningSockets();
    return;
  }
  absl::MutexLock lock(&mu_);
  stop_accepting_ = true;
  Wake();
  mu_.Await(absl::Condition(&accepting_stopped_));
}

void Listener::Stop() {
  StopAccepting();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  for (auto& [id, c] : connections_) ::close(c.own_fd);
  connections_.clear();
  by_endpoint_.clear();
  per_peer_.clear();
  deadlines_.clear();
}

void Listener::CloseListeningSockets() {
  for (Socket& s : sockets_) {
    if (s.fd < 0) continue;
    if (epoll_fd_ >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s.fd, nullptr);
    ::close(s.fd);
    s.fd = -1;
  }
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

int Listener::connections() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(connections_.size());
}

void Listener::MarkAuthenticated(absl::string_view peer) {
  Endpoint e;
  if (!FromPeer(peer, &e)) return;  // A unix-socket peer: never timed out.
  const std::string key = e.Key();
  absl::MutexLock lock(&mu_);
  auto it = by_endpoint_.find(key);
  if (it == by_endpoint_.end()) return;
  auto c = connections_.find(it->second);
  if (c == connections_.end()) return;
  c->second.authenticated = true;
  if (c->second.waiting) {
    c->second.waiting = false;
    waiting_.fetch_sub(1, std::memory_order_relaxed);
  }
}

int Listener::NextTimeoutMs() const {
  const absl::Time now = absl::Now();
  absl::Time next = next_sweep_;
  if (paused_) next = std::min(next, paused_until_);
  {
    absl::MutexLock lock(&mu_);
    if (!deadlines_.empty()) next = std::min(next, deadlines_.front().first);
  }
  if (next <= now) return 0;
  // Rounded up, so that a wake-up never comes just before its deadline.
  return static_cast<int>(absl::ToInt64Milliseconds(next - now + absl::Milliseconds(1)));
}

void Listener::SetListening(bool on) {
  for (size_t i = 0; i < sockets_.size(); ++i) {
    if (sockets_[i].fd < 0) continue;
    epoll_event ev = {};
    ev.events = on ? static_cast<uint32_t>(EPOLLIN) : 0u;
    ev.data.u64 = i + 1;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, sockets_[i].fd, &ev);
  }
  paused_ = !on;
}

void Listener::Loop() {
  next_sweep_ = absl::Now() + kSweepEvery;
  epoll_event events[64];
  for (;;) {
    const int n = ::epoll_wait(epoll_fd_, events, 64, NextTimeoutMs());
    if (n < 0 && errno != EINTR) {
      spdlog::error("listener: epoll_wait: {}", std::strerror(errno));
      absl::SleepFor(kPauseOnError);
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t count;
        (void)!::read(wake_fd_, &count, sizeof(count));
      } else if (tag < kFirstConnection) {
        AcceptFrom(tag - 1);
      } else {
        OnConnectionEvent(tag, events[i].events);
      }
    }
    {
      absl::MutexLock lock(&mu_);
      if (stop_accepting_ && !accepting_stopped_) {
        CloseListeningSockets();
        accepting_stopped_ = true;
      }
      if (stopping_) return;
    }
    if (paused_ && absl::Now() >= paused_until_) SetListening(true);
    ExpireUnauthenticated();
    if (absl::Now() >= next_sweep_) {
      SweepClosed();
      next_sweep_ = absl::Now() + kSweepEvery;
    }
  }
}

void Listener::AcceptFrom(size_t index) {
  const Socket& socket = sockets_[index];
  for (int i = 0; i < kAcceptBatch && socket.fd >= 0; ++i) {
    sockaddr_storage addr = {};
    socklen_t len = sizeof(addr);
    const int fd = ::accept4(socket.fd, reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      Admit(socket, fd, addr, len);
      continue;
    }
    switch (errno) {
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
        continue;
      case EAGAIN:
        return;
      case EMFILE:
      case ENFILE:
      case ENOBUFS:
      case ENOMEM:
        // Out of descriptors (or memory): drop this one connection rather
        // than leave it, and every one behind it, waiting forever.
        ShedOne(socket.fd);
        if (paused_) return;
        continue;
      default:
        spdlog::error("listener: accept: {}", std::strerror(errno));
        paused_until_ = absl::Now() + kPauseOnError;
        SetListening(false);
        return;
    }
  }
}

void Listener::ShedOne(int listen_fd) {
  const int err = errno;
  bool shed = false;
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      ::close(fd);
      shed = true;
    }
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  if (!shed || reserve_fd_ < 0) {
    // Not even the reserve: wait for descriptors to free up.
    paused_until_ = absl::Now() + kPauseOnError;
    SetListening(false);
  }
  Refuse(-1, absl::StrCat("out of file descriptors (", std::strerror(err),
                          "; RLIMIT_NOFILE ", OpenFileLimit(), ")"));
}

void Listener::Refuse(int fd, const std::string& reason) {
  if (fd >= 0) ::close(fd);
  ++refusals_unlogged_;
  const absl::Time now = absl::Now();
  if (now < next_refusal_log_) return;
  spdlog::warn("listener: connection refused: {}{}", reason,
               refusals_unlogged_ > 1 ? absl::StrCat(" (", refusals_unlogged_,
                                                     " refused since the last report)")
                                      : "");
  refusals_unlogged_ = 0;
  next_refusal_log_ = now + kRefusalLogEvery;
}

void Listener::Admit(const Socket& socket, int fd, const sockaddr_storage& addr,
                     socklen_t addr_len) {
  Connection c;
  c.grpc_fd = fd;
  std::string shown;
  if (socket.unix_socket) {
    ucred cred = {};
    socklen_t len = sizeof(cred);
    ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    c.peer = absl::StrCat("uid:", cred.uid);
    shown = absl::StrCat("local user ", cred.uid);
  } else {
    Endpoint e;
    if (!FromSockaddr(addr, &e)) {
      ::close(fd);
      return;
    }
    c.endpoint = e.Key();
    c.peer = e.Bucket();
    shown = e.Shown();
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  (void)addr_len;
  {
    absl::MutexLock lock(&mu_);
    if (static_cast<int>(connections_.size()) >= options_.max_connections) {
      Refuse(fd, absl::StrCat("max_connections (", options_.max_connections,
                              ") reached; from ", shown));
      return;
    }
    const auto peer = per_peer_.find(c.peer);
    if (peer != per_peer_.end() && peer->second >= options_.max_connections_per_peer) {
      Refuse(fd, absl::StrCat("max_connections_per_peer (",
                              options_.max_connections_per_peer, ") reached by ", shown));
      return;
    }
    c.own_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    struct stat st;
    if (c.own_fd < 0 || ::fstat(c.own_fd, &st) != 0) {
      if (c.own_fd >= 0) ::close(c.own_fd);
      Refuse(fd, absl::StrCat("out of file descriptors (RLIMIT_NOFILE ", OpenFileLimit(),
                              ")"));
      return;
    }
    c.dev = st.st_dev;
    c.ino = st.st_ino;
    const uint64_t id = kFirstConnection + next_id_++;
    epoll_event ev = {};
    ev.events = EPOLLRDHUP;
    ev.data.u64 = id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.own_fd, &ev);
    ++per_peer_[c.peer];
    if (!socket.unix_socket) {
      by_endpoint_[c.endpoint] = id;
      deadlines_.emplace_back(absl::Now() + options_.unauthenticated_timeout, id);
      c.waiting = true;
      waiting_.fetch_add(1, std::memory_order_relaxed);
    }
    connections_.emplace(id, std::move(c));
  }
  // Outside mu_ (gRPC may run other work inline). Only this thread hands
  // off, and it acknowledges StopAccepting between two wake-ups, so none
  // follows once StopAccepting returned.
  handoff_(socket.fd, fd);
}

void Listener::OnConnectionEvent(uint64_t id, uint32_t events) {
  absl::MutexLock lock(&mu_);
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  if (events & (EPOLLHUP | EPOLLERR)) {
    // Shut down (by gRPC on close, by the peer's reset, or by us): gone.
    Forget(id);
    return;
  }
  if ((events & EPOLLRDHUP) && !it->second.read_hangup) {
    // The peer stopped sending; gRPC closes the connection on reading that.
    // Watch only for the hang-up from now on.
    it->second.read_hangup = true;
    epoll_event ev = {};
    ev.events = 0;
    ev.data.u64 = id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, it->second.own_fd, &ev);
  }
}

void Listener::Forget(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  Connection& c = it->second;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.own_fd, nullptr);
  ::close(c.own_fd);
  if (!c.endpoint.empty()) {
    auto e = by_endpoint_.find(c.endpoint);
    if (e != by_endpoint_.end() && e->second == id) by_endpoint_.erase(e);
  }
  auto p = per_peer_.find(c.peer);
  if (p != per_peer_.end() && --p->second <= 0) per_peer_.erase(p);
  if (c.waiting) waiting_.fetch_sub(1, std::memory_order_relaxed);
  connections_.erase(it);
}

void Listener::ExpireUnauthenticated() {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  while (!deadlines_.empty() && deadlines_.front().first <= now) {
    const uint64_t id = deadlines_.front().second;
    deadlines_.pop_front();
    auto it = connections_.find(id);
    if (it == connections_.end() || it->second.authenticated) continue;
    // gRPC reads end-of-file and closes its side; the hang-up then frees
    // the slot.
    spdlog::debug(
        "listener: closing a connection that made no authenticated call "
        "within unauthenticated_connection_timeout_ms ({})",
        absl::ToInt64Milliseconds(options_.unauthenticated_timeout));
    ::shutdown(it->second.own_fd, SHUT_RDWR);
  }
}

void Listener::SweepClosed() {
  // gRPC shuts a socket down before it closes it, which the hang-up event
  // reports; this catches a close without one.
  absl::MutexLock lock(&mu_);
  std::vector<uint64_t> gone;
  for (const auto& [id, c] : connections_) {
    struct stat st;
    if (::fstat(c.grpc_fd, &st) != 0 || st.st_dev != c.dev || st.st_ino != c.ino) {
      gone.push_back(id);
    }
  }
  for (uint64_t id : gone) {
    ::shutdown(connections_[id].own_fd, SHUT_RDWR);
    Forget(id);
  }
}

uint64_t OpenFileLimit() {
  rlimit limit = {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  return limit.rlim_cur;
}

uint64_t RaiseOpenFileLimit() {
  constexpr rlim_t kMost = rlim_t{1} << 20;
  rlimit limit = {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  const rlim_t want = std::min(limit.rlim_max, kMost);
  if (limit.rlim_cur < want) {
    rlimit raised = limit;
    raised.rlim_cur = want;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) return want;
  }
  return limit.rlim_cur;
}

}  // namespace timer::server
