// RawH2Connection: a hand-driven plaintext HTTP/2 client over a TCP socket,
// for abuse tests that must do what no gRPC client does: send only the
// connection preface, start a call and never finish its request, or count
// how many bytes the server lets it send. It speaks just enough HTTP/2
// (RFC 9113): the preface, SETTINGS (acknowledged), HEADERS with literal
// HPACK fields, DATA within the flow-control windows the server grants, and
// reads the server's SETTINGS, WINDOW_UPDATE, HEADERS, RST_STREAM and GOAWAY
// frames. It never decodes the server's header blocks.
//
// Every wait is bounded by its timeout. Not thread-safe: one test thread.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace timer::testing {

class RawH2Connection {
 public:
  static constexpr uint8_t kData = 0x0, kHeaders = 0x1, kRstStream = 0x3, kSettings = 0x4,
                           kPing = 0x6, kGoaway = 0x7, kWindowUpdate = 0x8;
  static constexpr uint16_t kMaxConcurrentStreams = 0x3, kInitialWindowSize = 0x4;

  // Connects to 127.0.0.1:`port`, from `source` (another loopback address)
  // when given. connected() says whether it worked.
  explicit RawH2Connection(int port, const std::string& source = "") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    if (!source.empty()) {
      sockaddr_in from = {};
      from.sin_family = AF_INET;
      ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0) {
        Close();
        return;
      }
    }
    sockaddr_in to = {};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) Close();
  }
  ~RawH2Connection() { Close(); }
  RawH2Connection(const RawH2Connection&) = delete;
  RawH2Connection& operator=(const RawH2Connection&) = delete;

  bool connected() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    closed_ = true;
  }

  // The client connection preface and an empty SETTINGS frame.
  bool SendPreface() {
    return Write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") && SendFrame(kSettings, 0, 0, "");
  }

  // Starts a gRPC call of `path` (a new odd stream id, returned), with extra
  // `metadata`; its request stays open.
  uint32_t StartCall(
      const std::string& path,
      const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
    const uint32_t stream = next_stream_;
    next_stream_ += 2;
    std::string block;
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {":method", "POST"},
             {":scheme", "http"},
             {":path", path},
             {":authority", "localhost"},
             {"content-type", "application/grpc"},
             {"te", "trailers"}}) {
      AppendLiteral(&block, name, value);
    }
    for (const auto& [name, value] : metadata) AppendLiteral(&block, name, value);
    send_window_[stream] = initial_window_;
    if (!SendFrame(kHeaders, /*END_HEADERS*/ 0x4, stream, block)) return 0;
    return stream;
  }

  // The 5-byte gRPC message prefix announcing a message of `length` bytes.
  static std::string MessagePrefix(uint32_t length) {
    std::string p(1, '\0');
    for (int shift = 24; shift >= 0; shift -= 8) {
      p.push_back(static_cast<char>((length >> shift) & 0xff));
    }
    return p;
  }

  // Sends `bytes` on `stream` as DATA frames of at most 16 KiB, as far as
  // the flow-control windows allow, reading the server's frames meanwhile,
  // until all are sent or `timeout` passes. Returns how many were sent.
  size_t SendData(uint32_t stream, const std::string& bytes, absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    size_t sent = 0;
    while (sent < bytes.size() && connected()) {
      const int64_t window = std::min(connection_window_, send_window_[stream]);
      if (window <= 0 || ended_.count(stream) > 0) {
        if (ended_.count(stream) > 0 || absl::Now() >= give_up) break;
        ReadFrames(absl::Milliseconds(20));
        continue;
      }
      const size_t n =
          std::min<size_t>({bytes.size() - sent, 16384, static_cast<size_t>(window)});
      if (!SendFrame(kData, 0, stream, bytes.substr(sent, n))) break;
      sent += n;
      connection_window_ -= static_cast<int64_t>(n);
      send_window_[stream] -= static_cast<int64_t>(n);
      ReadFrames(absl::ZeroDuration());
    }
    return sent;
  }

  // Reads frames until `done` holds or `timeout` passes; true if it held.
  bool ReadUntil(const std::function<bool()>& done, absl::Duration timeout) {
    const absl::Time give_up = absl::Now() + timeout;
    while (!done()) {
      const absl::Time now = absl::Now();
      if (now >= give_up || closed_) return done();
      ReadFrames(give_up - now);
    }
    return true;
  }

  // Whether the server has ended `stream` (trailers or RST_STREAM).
  bool Ended(uint32_t stream) const { return ended_.count(stream) > 0; }
  // Whether the server closed the connection (end of file or reset).
  bool Closed() const { return closed_; }
  // The server's SETTINGS, once received.
  bool HasSettings() const { return got_settings_; }
  const std::map<uint16_t, uint32_t>& settings() const { return settings_; }

 private:
  static void AppendInteger(std::string* out, uint8_t first, int prefix_bits,
                            size_t value) {
    const size_t max = (size_t{1} << prefix_bits) - 1;
    if (value < max) {
      out->push_back(static_cast<char>(first | value));
      return;
    }
    out->push_back(static_cast<char>(first | max));
    value -= max;
    while (value >= 128) {
      out->push_back(static_cast<char>((value & 0x7f) | 0x80));
      value >>= 7;
    }
    out->push_back(static_cast<char>(value));
  }
  // A literal header field without indexing, new name, no Huffman coding.
  static void AppendLiteral(std::string* out, const std::string& name,
                            const std::string& value) {
    out->push_back('\0');
    AppendInteger(out, 0, 7, name.size());
    out->append(name);
    AppendInteger(out, 0, 7, value.size());
    out->append(value);
  }

  bool Write(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size() && fd_ >= 0) {
      const ssize_t n =
          ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        closed_ = true;
        return false;
      }
      done += static_cast<size_t>(n);
    }
    return fd_ >= 0;
  }

  bool SendFrame(uint8_t type, uint8_t flags, uint32_t stream,
                 const std::string& payload) {
    std::string frame;
    const size_t len = payload.size();
    frame.push_back(static_cast<char>((len >> 16) & 0xff));
    frame.push_back(static_cast<char>((len >> 8) & 0xff));
    frame.push_back(static_cast<char>(len & 0xff));
    frame.push_back(static_cast<char>(type));
    frame.push_back(static_cast<char>(flags));
    for (int shift = 24; shift >= 0; shift -= 8) {
      frame.push_back(static_cast<char>((stream >> shift) & 0xff));
    }
    frame += payload;
    return Write(frame);
  }

  static uint32_t Be32(const std::string& s, size_t at) {
    return (static_cast<uint32_t>(static_cast<uint8_t>(s[at])) << 24) |
           (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 1])) << 16) |
           (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 2])) << 8) |
           static_cast<uint32_t>(static_cast<uint8_t>(s[at + 3]));
  }

  // Reads what arrives within `wait` and handles every complete frame.
  void ReadFrames(absl::Duration wait) {
    if (fd_ < 0 || closed_) return;
    pollfd p = {fd_, POLLIN, 0};
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(wait));
    if (::poll(&p, 1, ms) <= 0) return;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      closed_ = true;
      return;
    }
    if (n < 0) return;
    in_.append(buf, static_cast<size_t>(n));
    while (in_.size() >= 9) {
      const size_t len = (static_cast<size_t>(static_cast<uint8_t>(in_[0])) << 16) |
                         (static_cast<size_t>(static_cast<uint8_t>(in_[1])) << 8) |
                         static_cast<uint8_t>(in_[2]);
      if (in_.size() < 9 + len) break;
      const uint8_t type = static_cast<uint8_t>(in_[3]);
      const uint8_t flags = static_cast<uint8_t>(in_[4]);
      const uint32_t stream = Be32(in_, 5) & 0x7fffffff;
      const std::string payload = in_.substr(9, len);
      in_.erase(0, 9 + len);
      Handle(type, flags, stream, payload);
    }
  }

  void Handle(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
    switch (type) {
      case kSettings:
        if (flags & 0x1) return;  // An acknowledgement of ours.
        for (size_t at = 0; at + 6 <= payload.size(); at += 6) {
          const uint16_t id =
              static_cast<uint16_t>((static_cast<uint8_t>(payload[at]) << 8) |
                                    static_cast<uint8_t>(payload[at + 1]));
          const uint32_t value = Be32(payload, at + 2);
          if (id == kInitialWindowSize) {
            for (auto& [s, w] : send_window_)
              w += static_cast<int64_t>(value) - initial_window_;
            initial_window_ = value;
          }
          settings_[id] = value;
        }
        got_settings_ = true;
        SendFrame(kSettings, 0x1, 0, "");
        return;
      case kWindowUpdate:
        if (payload.size() == 4) {
          const int64_t increment = Be32(payload, 0) & 0x7fffffff;
          if (stream == 0) {
            connection_window_ += increment;
          } else {
            send_window_[stream] += increment;
          }
        }
        return;
      case kHeaders:
        if (flags & 0x1) ended_.insert(stream);  // END_STREAM: trailers.
        return;
      case kRstStream:
        ended_.insert(stream);
        return;
      case kGoaway:
        goaway_ = true;
        return;
      default:
        return;
    }
  }

  int fd_ = -1;
  bool closed_ = false;
  bool goaway_ = false;
  bool got_settings_ = false;
  std::string in_;
  uint32_t next_stream_ = 1;
  int64_t connection_window_ = 65535;
  int64_t initial_window_ = 65535;
  std::map<uint32_t, int64_t> send_window_;
  std::map<uint16_t, uint32_t> settings_;
  std::set<uint32_t> ended_;
};

}  // namespace timer::testing
