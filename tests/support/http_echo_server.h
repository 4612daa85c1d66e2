// Starts tests/support/http_echo_server.py (a scriptable HTTP server on
// Python's http.server) on 127.0.0.1 port 0 for one test, and stops it at
// destruction (SIGTERM, then SIGKILL if it lingers). Requests it
// received are read back from its record file, one JSON object a line.
// Not thread-safe: one owner.
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace timer::testing {

class HttpEchoServer {
 public:
  // `script`: the path of http_echo_server.py; `record`: where it writes
  // the requests it got.
  HttpEchoServer(const std::string& script, std::string record)
      : record_(std::move(record)) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      execlp("python3", "python3", script.c_str(), "--record", record_.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    FILE* f = fdopen(out[0], "r");
    char line[64] = {};
    if (f != nullptr && fgets(line, sizeof(line), f) != nullptr) {
      std::sscanf(line, "PORT %d", &port_);
    }
    if (f != nullptr) fclose(f);
  }
  ~HttpEchoServer() {
    if (pid_ <= 0) return;
    close(stdin_);
    // Every request is on record already (flushed before its answer).
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  HttpEchoServer(const HttpEchoServer&) = delete;
  HttpEchoServer& operator=(const HttpEchoServer&) = delete;

  int port() const { return port_; }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // The requests received so far.
  std::vector<nlohmann::json> Requests() const {
    std::vector<nlohmann::json> r;
    std::ifstream in(record_);
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded()) r.push_back(std::move(j));
    }
    return r;
  }

  // Waits up to `timeout` until `pred(Requests())` holds.
  bool WaitFor(const std::function<bool(const std::vector<nlohmann::json>&)>& pred,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (pred(Requests())) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  std::string record_;
  pid_t pid_ = -1;
  int stdin_ = -1;
  int port_ = 0;
};

// The hex HMAC-SHA256 of `msg` under `key`.
inline std::string HmacSha256Hex(std::string_view key, std::string_view msg) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
  std::string hex;
  char buf[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", mac[i]);
    hex += buf;
  }
  return hex;
}

// True if `header`, a notification's Timer-Signature ("t=<unix>,v1=<hex>"),
// signs `body` with `key`: v1 = HMAC-SHA256(key, "<t>.<body>").
inline bool TimerSignatureValid(std::string_view key, std::string_view header,
                                const std::string& body) {
  std::string t, v1;
  while (!header.empty()) {
    const size_t comma = header.find(',');
    const std::string_view kv = header.substr(0, comma);
    header =
        comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    const size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    if (kv.substr(0, eq) == "t") t = kv.substr(eq + 1);
    if (kv.substr(0, eq) == "v1") v1 = kv.substr(eq + 1);
  }
  return !t.empty() && !v1.empty() && v1 == HmacSha256Hex(key, t + "." + body);
}

}  // namespace timer::testing
