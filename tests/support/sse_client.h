// RawHttpConnection: a hand-driven HTTP/1.1 client on one TCP connection to
// 127.0.0.1, for tests that must see the wire as timerd's HTTP listener
// writes it: requests sent byte for byte (malformed, partial, pipelined),
// responses framed by Content-Length, Server-Sent Events read one at a
// time, and whether (and when) the server closed the connection.
// SseStream: one watch stream, a GET with Accept: text/event-stream on a
// connection of its own.
//
// Every read is bounded by its timeout; what arrives is buffered until a
// response, a head or an event is taken from it. The connection is closed
// at destruction. Not thread-safe: one thread at a time.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace timer::testing {

// One response as read.
struct HttpResponse {
  int code = 0;                                // 0: no (complete) response.
  std::map<std::string, std::string> headers;  // Lower-case names.
  std::string body;
  nlohmann::json Json() const {
    return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  }
};

// One Server-Sent Event as read: its fields, and its data lines joined.
struct SseEvent {
  std::string id, event;
  std::string data;
  std::vector<std::string> data_lines;
  nlohmann::json Json() const {
    return nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  }
};

class RawHttpConnection {
 public:
  // Connects to 127.0.0.1:`port`; with `rcvbuf` > 0, a receive buffer of
  // that size (SO_RCVBUF, set before connecting: a reader the server finds
  // stalled sooner). connected() says whether it worked.
  explicit RawHttpConnection(int port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  virtual ~RawHttpConnection() { Drop(); }
  RawHttpConnection(const RawHttpConnection&) = delete;
  RawHttpConnection& operator=(const RawHttpConnection&) = delete;

  bool connected() const { return connected_; }

  // Closes the connection from this side (a client going away).
  void Drop() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Sends all of `data`; false if the connection failed first.
  bool Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads one response, Content-Length framed (none: no body), within
  // `timeout`. Code 0 if none came complete by then or before a close.
  HttpResponse ReadResponse(absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      HttpResponse r;
      if (TakeResponse(&r)) return r;
      if (!ReadSome(deadline)) return HttpResponse{};
    }
  }

  // Reads a response's head (for a stream, whose body does not end);
  // returns its status code, 0 if none came within `timeout`. The head is
  // then in head(), what follows it stays buffered.
  int ReadHead(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadSome(deadline)) return 0;
    }
    head_ = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    int code = 0;
    std::vector<std::string> status = absl::StrSplit(head_, absl::MaxSplits(' ', 2));
    if (status.size() >= 2) (void)absl::SimpleAtoi(status[1], &code);
    return code;
  }
  const std::string& head() const { return head_; }

  // The next Server-Sent Event after the head; nullopt on close or timeout.
  // Comment lines (heartbeats) are counted in comments().
  std::optional<SseEvent> Next(absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      const size_t end = buf_.find("\n\n");
      if (end != std::string::npos) {
        std::string frame = buf_.substr(0, end);
        buf_.erase(0, end + 2);
        SseEvent e;
        bool any = false;
        for (absl::string_view line : absl::StrSplit(frame, '\n')) {
          if (absl::StartsWith(line, ":")) {
            ++comments_;
            continue;
          }
          any = true;
          if (absl::ConsumePrefix(&line, "id: ")) e.id = std::string(line);
          if (absl::ConsumePrefix(&line, "event: ")) e.event = std::string(line);
          if (absl::ConsumePrefix(&line, "data: ")) e.data_lines.emplace_back(line);
        }
        if (!any) continue;
        e.data = absl::StrJoin(e.data_lines, "\n");
        return e;
      }
      if (!ReadSome(deadline)) return std::nullopt;
    }
  }
  int comments() const { return comments_; }

  // Whether the server closed the connection within `timeout` (reading,
  // and keeping, what it sent before).
  bool Closed(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (ReadSome(deadline)) {
    }
    return closed_;
  }

  // Reads until the server closes or `timeout` passes; appends to `out`
  // everything not yet taken as a response, head or event. True if closed.
  bool ReadToEnd(std::string* out, absl::Duration timeout) {
    const bool closed = Closed(timeout);
    out->append(buf_);
    buf_.clear();
    return closed;
  }

 private:
  // Reads what is there by `deadline`; false on close or timeout.
  bool ReadSome(absl::Time deadline) {
    if (fd_ < 0 || closed_) return false;
    for (;;) {
      const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (ms <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(ms));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return false;
      break;
    }
    char b[65536];
    const ssize_t n = ::recv(fd_, b, sizeof(b), 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buf_.append(b, static_cast<size_t>(n));
    return true;
  }

  // Takes one complete response off the buffer into `r`; false if there is
  // none yet.
  bool TakeResponse(HttpResponse* r) {
    const size_t end = buf_.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::vector<std::string> lines = absl::StrSplit(buf_.substr(0, end), "\r\n");
    std::vector<std::string> status = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
    if (status.size() < 2 || !absl::SimpleAtoi(status[1], &r->code)) return false;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      r->headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    }
    size_t length = 0;
    if (auto it = r->headers.find("content-length"); it != r->headers.end()) {
      if (!absl::SimpleAtoi(it->second, &length)) return false;
    }
    if (buf_.size() < end + 4 + length) return false;
    r->body = buf_.substr(end + 4, length);
    buf_.erase(0, end + 4 + length);
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;  // By the server (EOF or an error).
  std::string buf_;      // Read, not yet taken.
  std::string head_;
  int comments_ = 0;
};

// One watch stream on its own connection: GET `target` with Accept:
// text/event-stream, `token` as the bearer, and `extra_headers` (each
// ending in \r\n, e.g. "Last-Event-ID: 7\r\n"). Read its head with
// ReadHead(), then its events with Next().
class SseStream : public RawHttpConnection {
 public:
  SseStream(int port, const std::string& target, const std::string& token,
            const std::string& extra_headers = "", int rcvbuf = 0)
      : RawHttpConnection(port, rcvbuf) {
    if (!connected()) return;
    (void)Send(absl::StrCat(
        "GET ", target, " HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n",
        "Authorization: Bearer ", token, "\r\n", extra_headers, "\r\n"));
  }
};

}  // namespace timer::testing
