// curl_handle (plugins/common/curl_handle.h): the options ApplySafeOptions
// sets, seen from a one-connection-at-a-time HTTP server of the test's own
// on 127.0.0.1 port 0, and the header-list and error-text helpers.
#include "curl_handle.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace timer::net {
namespace {

// Answers every request with `response`, one connection at a time, and
// keeps the request heads it read. Stops (and joins) in its destructor.
class CannedServer {
 public:
  explicit CannedServer(std::string response) : response_(std::move(response)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedServer() {
    // Wakes accept() (EINVAL on a shut-down listening socket).
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }

  int port() const { return port_; }
  std::string Url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }

 private:
  void Serve() {
    for (;;) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::string head;
      char buf[4096];
      while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536) {
        const ssize_t n = ::read(c, buf, sizeof(buf));
        if (n <= 0) break;
        head.append(buf, static_cast<size_t>(n));
      }
      if (!head.empty()) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          heads_.push_back(head);
        }
        (void)!::write(c, response_.data(), response_.size());
      }
      ::close(c);
    }
  }

  const std::string response_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> heads_;  // guarded by mu_
};

constexpr char kOk[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

std::string Redirect(const std::string& to) {
  return "HTTP/1.1 302 Found\r\nLocation: " + to +
         "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

class CurlHandleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitCurlOnce();
    h_.reset(curl_easy_init());
    ASSERT_TRUE(h_);
  }
  // ApplySafeOptions plus what a test needs: no proxy from the environment
  // (the server is on loopback), the body discarded.
  void Apply(const std::string& url, const std::string& ca_file = "") {
    ASSERT_EQ(ApplySafeOptions(h_.get(), {.url = url.c_str(),
                                          .ca_file = ca_file.c_str(),
                                          .connect_timeout_ms = 10000,
                                          .errbuf = errbuf_}),
              CURLE_OK);
    curl_easy_setopt(h_.get(), CURLOPT_PROXY, "");
    curl_easy_setopt(h_.get(), CURLOPT_WRITEFUNCTION, &Discard);
  }
  long Status() {
    long status = 0;
    curl_easy_getinfo(h_.get(), CURLINFO_RESPONSE_CODE, &status);
    return status;
  }

  EasyHandle h_;
  char errbuf_[CURL_ERROR_SIZE] = {};
};

TEST_F(CurlHandleTest, MakesARequest) {
  CannedServer server(kOk);
  ASSERT_NE(server.port(), 0);
  Apply(server.Url("/x"));
  ASSERT_EQ(curl_easy_perform(h_.get()), CURLE_OK) << errbuf_;
  EXPECT_EQ(Status(), 200);
  ASSERT_EQ(server.heads().size(), 1u);
  EXPECT_EQ(server.heads()[0].rfind("GET /x HTTP/1.1\r\n", 0), 0u) << server.heads()[0];
}

TEST_F(CurlHandleTest, DoesNotFollowRedirects) {
  CannedServer server(Redirect("/elsewhere"));
  ASSERT_NE(server.port(), 0);
  Apply(server.Url("/start"));
  ASSERT_EQ(curl_easy_perform(h_.get()), CURLE_OK) << errbuf_;
  EXPECT_EQ(Status(), 302);
  char* next = nullptr;
  curl_easy_getinfo(h_.get(), CURLINFO_REDIRECT_URL, &next);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(std::string(next), server.Url("/elsewhere"));
  EXPECT_EQ(server.heads().size(), 1u);
}

TEST_F(CurlHandleTest, RefusesOtherProtocols) {
  for (const std::string url :
       {"file:///etc/hostname", "ftp://127.0.0.1:1/", "gopher://127.0.0.1:1/",
        "dict://127.0.0.1:1/", "telnet://127.0.0.1:1/"}) {
    SCOPED_TRACE(url);
    Apply(url);
    EXPECT_EQ(curl_easy_perform(h_.get()), CURLE_UNSUPPORTED_PROTOCOL);
    EXPECT_NE(errbuf_[0], '\0');
    EXPECT_EQ(ErrorText(errbuf_, CURLE_UNSUPPORTED_PROTOCOL), std::string(errbuf_));
  }
}

// A caller that follows redirects itself (with CURLOPT_FOLLOWLOCATION)
// still cannot be led out of http(s): not even to ftp, which libcurl
// follows by default.
TEST_F(CurlHandleTest, RedirectsStayOnHttp) {
  CannedServer server(Redirect("ftp://127.0.0.1:1/"));
  ASSERT_NE(server.port(), 0);
  Apply(server.Url());
  curl_easy_setopt(h_.get(), CURLOPT_FOLLOWLOCATION, 1L);
  EXPECT_EQ(curl_easy_perform(h_.get()), CURLE_UNSUPPORTED_PROTOCOL);
}

// Nothing a previous request set survives: the handle is reset first.
TEST_F(CurlHandleTest, ResetsEarlierOptions) {
  CannedServer server(kOk);
  ASSERT_NE(server.port(), 0);
  curl_easy_setopt(h_.get(), CURLOPT_CUSTOMREQUEST, "DELETE");
  HeaderList stale;
  ASSERT_TRUE(AppendHeader(&stale, "X-Stale: 1"));
  curl_easy_setopt(h_.get(), CURLOPT_HTTPHEADER, stale.get());
  Apply(server.Url());
  ASSERT_EQ(curl_easy_perform(h_.get()), CURLE_OK) << errbuf_;
  ASSERT_EQ(server.heads().size(), 1u);
  EXPECT_EQ(server.heads()[0].rfind("GET / HTTP/1.1\r\n", 0), 0u) << server.heads()[0];
  EXPECT_EQ(server.heads()[0].find("X-Stale"), std::string::npos);
}

TEST_F(CurlHandleTest, UsesTheCaFile) {
  CannedServer server(kOk);
  ASSERT_NE(server.port(), 0);
  Apply("https://127.0.0.1:" + std::to_string(server.port()) + "/",
        "/nonexistent/curl_handle_test/ca.pem");
  const CURLcode rc = curl_easy_perform(h_.get());
  EXPECT_EQ(rc, CURLE_SSL_CACERT_BADFILE) << ErrorText(errbuf_, rc);
  EXPECT_NE(ErrorText(errbuf_, rc).find("/nonexistent/curl_handle_test/ca.pem"),
            std::string::npos)
      << ErrorText(errbuf_, rc);
}

TEST_F(CurlHandleTest, ClearsTheErrorBuffer) {
  std::snprintf(errbuf_, sizeof(errbuf_), "an earlier failure");
  Apply("http://127.0.0.1:1/");
  EXPECT_EQ(errbuf_[0], '\0');
}

TEST(CurlErrorTextTest, FallsBackToTheCodesText) {
  const char empty[CURL_ERROR_SIZE] = {};
  EXPECT_EQ(ErrorText(empty, CURLE_COULDNT_CONNECT),
            std::string(curl_easy_strerror(CURLE_COULDNT_CONNECT)));
  EXPECT_EQ(ErrorText(nullptr, CURLE_OPERATION_TIMEDOUT),
            std::string(curl_easy_strerror(CURLE_OPERATION_TIMEDOUT)));
  EXPECT_EQ(ErrorText("Failed to connect to x port 1", CURLE_COULDNT_CONNECT),
            "Failed to connect to x port 1");
}

TEST(HeaderListTest, AppendsInOrderAndSendsThem) {
  HeaderList l;
  EXPECT_EQ(l.get(), nullptr);
  ASSERT_TRUE(AppendHeader(&l, "X-One: 1"));
  ASSERT_TRUE(AppendHeader(&l, "X-Two: 2"));
  std::vector<std::string> lines;
  for (const curl_slist* p = l.get(); p != nullptr; p = p->next) lines.push_back(p->data);
  EXPECT_EQ(lines, (std::vector<std::string>{"X-One: 1", "X-Two: 2"}));

  InitCurlOnce();
  CannedServer server(kOk);
  ASSERT_NE(server.port(), 0);
  EasyHandle h(curl_easy_init());
  ASSERT_TRUE(h);
  const std::string url = server.Url();
  ASSERT_EQ(ApplySafeOptions(h.get(), {.url = url.c_str()}), CURLE_OK);
  curl_easy_setopt(h.get(), CURLOPT_PROXY, "");
  curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, &Discard);
  curl_easy_setopt(h.get(), CURLOPT_HTTPHEADER, l.get());
  ASSERT_EQ(curl_easy_perform(h.get()), CURLE_OK);
  ASSERT_EQ(server.heads().size(), 1u);
  EXPECT_NE(server.heads()[0].find("\r\nX-One: 1\r\nX-Two: 2\r\n"), std::string::npos)
      << server.heads()[0];
}

}  // namespace
}  // namespace timer::net
