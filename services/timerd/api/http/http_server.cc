#include "api/http/http_server.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <deque>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "api/http/sse.h"
#include "api/http/web_assets.h"
#include "util/escape.h"

namespace timer::api::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

constexpr absl::Duration kReadyCacheFor = absl::Seconds(1);
// /metrics is rendered at most once per this, however often it is asked for
// (it is open to anyone who reaches the listener).
constexpr absl::Duration kMetricsCacheFor = absl::Seconds(1);
// After a failed accept (out of descriptors, or any other error): the wait
// before the next, so the io thread neither spins nor sleeps.
constexpr std::chrono::milliseconds kAcceptRetryAfter(50);
// The connection's read buffer holds at most the headers and this much more
// (a chunk header with its extensions included): bounded, whatever is sent.
constexpr size_t kReadBufferSlack = 64 << 10;
// After a refusal: how long, and how many bytes, the connection is drained
// before it closes, so the client reads the answer instead of a reset.
constexpr absl::Duration kLingerFor = absl::Seconds(1);
constexpr size_t kLingerBytes = 64 << 10;
// A watch stream's write: at most this many events (32: during a burst every
// stream holds its write's event and frame pointers and buffer list at once;
// 256 cost 1,000 watchers ~7 KB each more, docs/PERFORMANCE.md), and this many bytes
// beyond the first event (as gRPC's messages, api/watch.cc).
constexpr size_t kSseMaxEventsPerWrite = 32;
constexpr size_t kSseMaxBytesPerWrite = 1 << 20;
// A stream's write buffer is given back after a write over this size, so
// an idle stream holds little.
constexpr size_t kSseKeepBufferBytes = 16 << 10;

// The SSE frames of recent events (api/http/sse.h), made once for all the
// streams that send the same event, as the gRPC streams share its wire form.
// Bounded: at most kEvents frames and kBytes of them; each entry holds its
// event so the key (its address) is not reused while kept.
class SseFrameCache {
 public:
  static constexpr size_t kEvents = 4096;
  static constexpr size_t kBytes = 8 << 20;

  std::shared_ptr<const std::string> Get(const domain::EventPtr& e) {
    {
      absl::MutexLock lock(&mu_);
      auto it = frames_.find(e.get());
      if (it != frames_.end()) return it->second;
    }
    auto frame = std::make_shared<std::string>();
    AppendSseEvent(e->message, *frame);
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = frames_.emplace(e.get(), frame);
    if (!inserted) return it->second;
    order_.push_back(e);
    bytes_ += frame->size();
    while (order_.size() > kEvents || (bytes_ > kBytes && order_.size() > 1)) {
      auto old = frames_.find(order_.front().get());
      bytes_ -= old->second->size();
      frames_.erase(old);
      order_.pop_front();
    }
    return frame;
  }

 private:
  absl::Mutex mu_;
  std::deque<domain::EventPtr> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<const domain::Event*, std::shared_ptr<const std::string>> frames_
      ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

std::chrono::steady_clock::duration Chrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

// The per-peer bucket: an IPv4 address, or an IPv6 /64.
std::string PeerKey(const tcp::endpoint& endpoint) {
  net::ip::address a = endpoint.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    a = net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6());
  }
  if (a.is_v4()) return a.to_string();
  const auto bytes = a.to_v6().to_bytes();
  std::string key;
  for (int i = 0; i < 8; ++i) absl::StrAppendFormat(&key, "%02x", bytes[i]);
  return absl::StrCat(key, "::/64");
}

// The verified client certificate's subject, as gRPC names it
// (GRPC_X509_SUBJECT_PROPERTY_NAME: RFC 2253); empty without one.
std::string VerifiedSubject(SSL* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return "";
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  std::string subject;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio != nullptr &&
      X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    if (len > 0) subject.assign(data, static_cast<size_t>(len));
  }
  BIO_free(bio);
  X509_free(cert);
  return subject;
}

// Whether a Content-Type is JSON: application/json, with at most a charset
// parameter of utf-8 (case-insensitive, optionally quoted).
bool IsJsonContentType(absl::string_view value) {
  const size_t semi = value.find(';');
  if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(value.substr(0, semi)),
                              "application/json")) {
    return false;
  }
  if (semi == absl::string_view::npos) return true;
  absl::string_view param = absl::StripAsciiWhitespace(value.substr(semi + 1));
  if (!absl::StartsWithIgnoreCase(param, "charset=")) return false;
  param.remove_prefix(sizeof("charset=") - 1);
  if (param.size() >= 2 && param.front() == '"' && param.back() == '"') {
    param = param.substr(1, param.size() - 2);
  }
  return absl::EqualsIgnoreCase(param, "utf-8");
}

// A connection as Stop() sees it.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // From any thread: closes the connection on its strand, then calls
  // `done` (also when the strand never runs it: the io threads stopped).
  virtual void CloseForStop(std::shared_ptr<absl::BlockingCounter> done) = 0;
};

// Set on the worker threads: a reply given there is serialized there too,
// not on an io thread.
thread_local bool t_on_worker = false;

}  // namespace

struct HttpServer::Impl {
  HttpOptions options;
  HttpHooks hooks;
  const Transcoder* transcoder = nullptr;
  const HttpHandlers* handlers = nullptr;
  std::optional<ssl::context> tls;
  int port = 0;

  mutable absl::Mutex mu;
  int connections ABSL_GUARDED_BY(mu) = 0;
  absl::flat_hash_map<std::string, int> per_peer ABSL_GUARDED_BY(mu);
  size_t bodies_bytes ABSL_GUARDED_BY(mu) = 0;
  // Body bytes reserved by identity name (entries with bytes only).
  absl::flat_hash_map<std::string, size_t> bodies_by_identity ABSL_GUARDED_BY(mu);
  int in_flight ABSL_GUARDED_BY(mu) = 0;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool stopped ABSL_GUARDED_BY(mu) = false;

  absl::Mutex ready_mu;
  absl::Time ready_checked ABSL_GUARDED_BY(ready_mu) = absl::InfinitePast();
  bool ready_last ABSL_GUARDED_BY(ready_mu) = false;
  bool probing ABSL_GUARDED_BY(ready_mu) = false;

  SseFrameCache sse_frames;
  // The feeds of open watch streams: whoever takes one out stops it (the
  // stream when it ends, or Stop() for those left).
  absl::Mutex feeds_mu;
  absl::flat_hash_set<std::shared_ptr<domain::WatchFeed>> feeds ABSL_GUARDED_BY(feeds_mu);
  bool feeds_closed ABSL_GUARDED_BY(feeds_mu) = false;
  bool AddFeed(const std::shared_ptr<domain::WatchFeed>& feed) {
    absl::MutexLock lock(&feeds_mu);
    if (feeds_closed) return false;
    feeds.insert(feed);
    return true;
  }
  bool TakeFeed(const std::shared_ptr<domain::WatchFeed>& feed) {
    absl::MutexLock lock(&feeds_mu);
    return feeds.erase(feed) > 0;
  }

  // Held while /metrics renders: one render at a time, at most one a
  // second (kMetricsCacheFor); callers in between get the cached text.
  absl::Mutex metrics_mu;
  absl::Time metrics_rendered ABSL_GUARDED_BY(metrics_mu) = absl::InfinitePast();
  std::string metrics_last ABSL_GUARDED_BY(metrics_mu);

  absl::Mutex refusal_mu;
  absl::Time next_refusal_log ABSL_GUARDED_BY(refusal_mu) = absl::InfinitePast();

  // Open connections, for Stop() to close (one entry per connection, not
  // per request). Before ioc: the sessions its handlers hold
  // remove themselves when it is destroyed.
  absl::Mutex sessions_mu;
  absl::flat_hash_map<SessionBase*, std::weak_ptr<SessionBase>> sessions
      ABSL_GUARDED_BY(sessions_mu);
  std::vector<std::thread> threads;
  // Last: destroyed first, with the handlers it still holds (connections),
  // while what they release into is still here.
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  // After ioc: destroyed before it, with the tasks it still holds (their
  // connections' sockets belong to ioc). Each connection has at most one
  // request here (one at a time), so at most max_connections wait.
  std::optional<net::thread_pool> workers;

  // Admission of a new connection from `peer`.
  bool Admit(const std::string& peer) {
    absl::MutexLock lock(&mu);
    if (stopping || connections >= options.max_connections) return false;
    int& n = per_peer[peer];
    if (n >= options.max_connections_per_peer) {
      if (n == 0) per_peer.erase(peer);
      return false;
    }
    ++n;
    ++connections;
    return true;
  }
  void Release(const std::string& peer) {
    absl::MutexLock lock(&mu);
    --connections;
    auto it = per_peer.find(peer);
    if (it != per_peer.end() && --it->second <= 0) per_peer.erase(it);
  }
  bool BeginRequest() {
    absl::MutexLock lock(&mu);
    if (stopping) return false;
    ++in_flight;
    return true;
  }
  void EndRequest() {
    absl::MutexLock lock(&mu);
    --in_flight;
  }
  // What one identity may hold in request bodies at once: a quarter of
  // the total (at least one body of the largest size), so one caller
  // cannot take the whole budget from the others.
  size_t MaxBodiesBytesPerIdentity() const {
    return std::max(options.max_body_bytes, options.max_bodies_bytes / 4);
  }
  // Reserves `bytes` of body for `identity`: UNAVAILABLE over the total,
  // RESOURCE_EXHAUSTED over the identity's share.
  absl::Status ReserveBody(const std::string& identity, size_t bytes) {
    absl::MutexLock lock(&mu);
    auto it = bodies_by_identity.find(identity);
    const size_t held = it == bodies_by_identity.end() ? 0 : it->second;
    if (held + bytes > MaxBodiesBytesPerIdentity()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "request bodies held at once by one identity: over ",
          MaxBodiesBytesPerIdentity(),
          " bytes (a quarter of 16 x max_message_bytes); retry when one is answered"));
    }
    if (bodies_bytes + bytes > options.max_bodies_bytes) {
      return absl::UnavailableError(
          "too many request bodies in flight; retry in a moment");
    }
    bodies_bytes += bytes;
    if (it == bodies_by_identity.end()) {
      bodies_by_identity.emplace(identity, bytes);
    } else {
      it->second += bytes;
    }
    return absl::OkStatus();
  }
  void ReleaseBody(const std::string& identity, size_t bytes) {
    absl::MutexLock lock(&mu);
    bodies_bytes -= bytes;
    auto it = bodies_by_identity.find(identity);
    if (it != bodies_by_identity.end() && (it->second -= bytes) == 0) {
      bodies_by_identity.erase(it);
    }
  }

  void AddSession(const std::shared_ptr<SessionBase>& session) {
    absl::MutexLock lock(&sessions_mu);
    sessions.emplace(session.get(), session);
  }
  void RemoveSession(SessionBase* session) {
    absl::MutexLock lock(&sessions_mu);
    sessions.erase(session);
  }
  void LogRefusal(const std::string& why) {
    absl::MutexLock lock(&refusal_mu);
    const absl::Time now = absl::Now();
    if (now < next_refusal_log) return;
    next_refusal_log = now + absl::Seconds(10);
    spdlog::warn("http: connection refused: {} (logged at most every 10 s)", why);
  }

  bool Ready() {
    const absl::Time now = absl::Now();
    {
      absl::MutexLock lock(&ready_mu);
      if (probing || now < ready_checked + kReadyCacheFor) return ready_last;
      probing = true;
    }
    const bool ready = hooks.ready ? hooks.ready() : true;
    absl::MutexLock lock(&ready_mu);
    ready_last = ready;
    ready_checked = now;
    probing = false;
    return ready;
  }

  std::string Metrics() {
    absl::MutexLock lock(&metrics_mu);
    const absl::Time now = absl::Now();
    if (now >= metrics_rendered + kMetricsCacheFor) {
      metrics_last = hooks.metrics ? hooks.metrics() : std::string();
      metrics_rendered = now;
    }
    return metrics_last;
  }

  void Observe(absl::string_view route, int code, absl::Duration took) const {
    if (hooks.observe) hooks.observe(route, code, took);
  }

  void Accept(tcp::acceptor* acceptor);
};

namespace {

template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Session(HttpServer::Impl* impl, Stream stream, std::string peer)
      : impl_(impl),
        stream_(std::move(stream)),
        peer_(std::move(peer)),
        buffer_(impl->options.max_header_bytes + kReadBufferSlack) {}
  ~Session() {
    if (feed_ != nullptr && impl_->TakeFeed(feed_)) feed_->Stop();
    if (in_flight_) impl_->EndRequest();
    if (body_reserved_ > 0) impl_->ReleaseBody(principal_.identity.name, body_reserved_);
    impl_->RemoveSession(this);
    impl_->Release(peer_);
  }

  void CloseForStop(std::shared_ptr<absl::BlockingCounter> done) override {
    // The guard counts down once, whether the strand runs the task or the
    // task is destroyed unrun.
    struct CountDown {
      std::shared_ptr<absl::BlockingCounter> done;
      CountDown(std::shared_ptr<absl::BlockingCounter> d) : done(std::move(d)) {}
      CountDown(CountDown&& o) noexcept : done(std::move(o.done)) {}
      ~CountDown() {
        if (done) done->DecrementCount();
      }
    };
    net::post(stream_.get_executor(),
              [self = this->shared_from_this(), guard = CountDown(std::move(done))] {
                if (self->streaming_ && !self->stream_ended_) return self->EndStream();
                self->Close();
              });
  }

  void Run() {
    impl_->AddSession(this->shared_from_this());
    Lowest().expires_after(Chrono(impl_->options.header_timeout));
    if constexpr (kTls) {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Close();
                                self->peer_subject_ =
                                    VerifiedSubject(self->stream_.native_handle());
                                self->ReadNext();
                              });
    } else {
      ReadNext();
    }
  }

 private:
  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void ReadNext() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(impl_->options.max_header_bytes));
    parser_->body_limit(impl_->options.max_body_bytes);
    if (first_) {
      // The handshake's deadline goes on: headers within header_timeout of
      // the connection's start.
      bhttp::async_read_header(stream_, buffer_, *parser_,
                               [self = this->shared_from_this()](
                                   beast::error_code ec, size_t) { self->OnHeader(ec); });
      return;
    }
    // Kept alive: the next request's first bytes within idle_timeout, then
    // its headers within header_timeout.
    Lowest().expires_after(Chrono(impl_->options.idle_timeout));
    bhttp::async_read_some(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) {
          if (ec || self->parser_->is_header_done()) {
            return self->OnHeader(ec);
          }
          self->Lowest().expires_after(Chrono(self->impl_->options.header_timeout));
          bhttp::async_read_header(
              self->stream_, self->buffer_, *self->parser_,
              [self](beast::error_code ec, size_t) { self->OnHeader(ec); });
        });
  }

  static bool Quiet(const beast::error_code& ec) {
    return ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
           ec == net::error::eof || ec == net::error::operation_aborted ||
           ec == net::error::connection_reset || ec == net::error::broken_pipe ||
           ec == bhttp::error::partial_message ||
           ec.category() == net::error::get_ssl_category() ||
           ec == net::ssl::error::stream_truncated;
  }

  void OnHeader(beast::error_code ec) {
    if (ec == bhttp::error::header_limit) {
      return Refuse(431, "other",
                    absl::InvalidArgumentError(
                        absl::StrCat("request line and headers: over ",
                                     impl_->options.max_header_bytes, " bytes")));
    }
    // A Content-Length over the limit fails while the headers are parsed.
    if (ec == bhttp::error::body_limit) {
      route_ = "other";
      return RefuseBodySize();
    }
    if (ec && Quiet(ec)) return Close();
    if (ec) {
      return Refuse(400, "other",
                    absl::InvalidArgumentError(
                        absl::StrCat("malformed HTTP request: ", ec.message())));
    }
    // A Transfer-Encoding not ending in chunked would be read as no body,
    // and what follows as the next request (request smuggling).
    if (parser_->get().count(bhttp::field::transfer_encoding) > 0 &&
        !parser_->chunked()) {
      return Refuse(
          400, "other",
          absl::InvalidArgumentError(
              "Transfer-Encoding: only chunked, as the last coding, is accepted"));
    }
    if (!impl_->BeginRequest()) {
      return Refuse(503, "other", absl::UnavailableError("timerd is shutting down"));
    }
    in_flight_ = true;
    started_ = absl::Now();
    const auto& req = parser_->get();
    const std::string method(req.method_string());
    const absl::string_view target(req.target().data(), req.target().size());
    const size_t q = target.find('?');
    const absl::string_view path = target.substr(0, q);
    // assign(): the connection's earlier capacity is reused (no allocation
    // per request on a kept-alive connection).
    const absl::string_view query =
        q == absl::string_view::npos ? absl::string_view() : target.substr(q + 1);
    query_.assign(query.data(), query.size());

    if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
      route_ = std::string(path);
      // HEAD as GET, without the body (monitors and `curl -I` send it).
      if (method != "GET" && method != "HEAD") {
        return Refuse(405, route_,
                      absl::InvalidArgumentError(
                          absl::StrCat(method, " ", path, ": only GET and HEAD")),
                      "GET, HEAD");
      }
      if (!parser_->is_done()) {
        return Refuse(400, route_,
                      absl::InvalidArgumentError(absl::StrCat(path, " takes no body")));
      }
      // A connection that never authenticated is not kept for its next
      // request: probes and scrapes hold no slot between requests.
      if (!authenticated_) close_after_ = true;
      if (path == "/healthz") return Respond(200, "text/plain; charset=utf-8", "ok\n");
      if (path == "/readyz") {
        // Its hook reads the store (at most once a second): on a worker.
        return OnWorker([self = this->shared_from_this()] {
          const bool ready = self->impl_->Ready();
          self->OnStrand([self, ready] {
            if (ready) return self->Respond(200, "text/plain; charset=utf-8", "ready\n");
            self->Respond(503, "text/plain; charset=utf-8", "not ready\n");
          });
        });
      }
      return Respond(200, "text/plain; version=0.0.4; charset=utf-8", impl_->Metrics());
    }

    // The web view (api/http/web_assets.h): public, static, no body read.
    if (IsWebPath(path)) {
      route_ = "web";
      if (!authenticated_) close_after_ = true;  // As for /healthz, above.
      const auto inm = req.find(bhttp::field::if_none_match);
      const WebResponse web = ServeWeb(
          method, path,
          inm == req.end() ? ""
                           : absl::string_view(inm->value().data(), inm->value().size()));
      return Respond(web.code, std::string(web.content_type).c_str(),
                     std::string(web.body), "", web.headers);
    }

    match_ = impl_->transcoder->Find(method, path);
    if (match_.route == nullptr) {
      if (!match_.allowed.empty()) {
        return Refuse(405, "other",
                      absl::InvalidArgumentError(absl::StrCat(
                          method, " ", util::Escaped(path), ": method not allowed (",
                          absl::StrJoin(match_.allowed, ", "), ")")),
                      absl::StrJoin(match_.allowed, ", "));
      }
      return Refuse(
          404, "other",
          absl::NotFoundError(absl::StrCat("no route for ", util::Escaped(method), " ",
                                           util::Escaped(path))));
    }
    route_ = match_.route->pattern;

    if (auto it = req.find(bhttp::field::authorization); it != req.end()) {
      if (!credentials_.authorization) credentials_.authorization.emplace();
      credentials_.authorization->assign(it->value().data(), it->value().size());
    } else {
      credentials_.authorization.reset();
    }
    if (credentials_.peer_subject != peer_subject_)
      credentials_.peer_subject = peer_subject_;
    OnWorker(
        [self = this->shared_from_this()] { self->Authenticate(self->credentials_); });
  }

  // On a worker (the strand waits: nothing else touches the request): the
  // credentials, the Content-Type, then the handler at once when there is
  // no body to read (one hop for a GET).
  void Authenticate(const auth::Credentials& credentials) {
    absl::StatusOr<auth::Principal> principal =
        impl_->handlers->Authenticate(credentials);
    if (!principal.ok()) {
      return OnStrand([self = this->shared_from_this(), status = principal.status()] {
        self->Refuse(401, self->route_, status);
      });
    }
    principal_ = *std::move(principal);
    authenticated_ = true;

    // Only JSON, even with no body: a browser sends a cross-site form
    // (text/plain, urlencoded, multipart) without asking first, with the
    // client certificate it holds (CSRF).
    const auto& req = parser_->get();
    if (req.method() != bhttp::verb::get) {
      const auto type = req.find(bhttp::field::content_type);
      if (type == req.end() || !IsJsonContentType(absl::string_view(
                                   type->value().data(), type->value().size()))) {
        return OnStrand(
            [self = this->shared_from_this(),
             status = absl::InvalidArgumentError(absl::StrCat(
                 "Content-Type: must be application/json (got \"",
                 type == req.end() ? "" : util::Escaped(std::string(type->value())),
                 "\")"))] { self->Refuse(415, self->route_, status); });
      }
    }
    if (parser_->is_done()) return Dispatch();
    OnStrand([self = this->shared_from_this()] { self->StartBody(); });
  }

  // On the strand, credentials accepted: reserves the body, then reads it.
  void StartBody() {
    const auto& req = parser_->get();
    size_t expected = impl_->options.max_body_bytes;
    if (const auto length = parser_->content_length()) {
      if (*length > impl_->options.max_body_bytes) return RefuseBodySize();
      expected = static_cast<size_t>(*length);
    }
    if (absl::Status reserved = impl_->ReserveBody(principal_.identity.name, expected);
        !reserved.ok()) {
      return Refuse(HttpCodeOf(reserved.code()), route_, reserved);
    }
    body_reserved_ = expected;
    const bool expect_continue =
        beast::iequals(req[bhttp::field::expect], "100-continue");
    Lowest().expires_after(Chrono(impl_->options.body_timeout));
    if (expect_continue) {
      continue_.emplace(bhttp::status::continue_, req.version());
      bhttp::async_write(stream_, *continue_,
                         [self = this->shared_from_this()](beast::error_code ec, size_t) {
                           if (ec) return self->Close();
                           self->ReadBody();
                         });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        self->OnBody(ec);
                      });
  }

  void RefuseBodySize() {
    Refuse(
        413, route_,
        absl::InvalidArgumentError(absl::StrCat(
            "body: over ", impl_->options.max_body_bytes, " bytes (max_message_bytes)")));
  }

  void OnBody(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) return RefuseBodySize();
    if (ec && Quiet(ec)) return Close();
    if (ec) {
      return Refuse(400, route_,
                    absl::InvalidArgumentError(
                        absl::StrCat("malformed HTTP request body: ", ec.message())));
    }
    OnWorker([self = this->shared_from_this()] { self->Dispatch(); });
  }

  template <class F>
  void OnWorker(F&& f) {
    net::post(*impl_->workers, [f = std::forward<F>(f)]() mutable {
      t_on_worker = true;
      f();
    });
  }
  template <class F>
  void OnStrand(F&& f) {
    net::post(stream_.get_executor(), std::forward<F>(f));
  }

  // On a worker: builds the request and calls its handler (or opens its
  // watch); the answer goes to the strand.
  void Dispatch() {
    const google::protobuf::MethodDescriptor* method = match_.route->method;
    std::unique_ptr<google::protobuf::Message> request = HttpHandlers::NewRequest(method);
    absl::Status built =
        Transcoder::BuildRequest(match_, query_, parser_->get().body(), request.get());
    // The body is in the request message now (or refused).
    parser_->get().body().clear();
    parser_->get().body().shrink_to_fit();
    if (!built.ok()) {
      return OnStrand(
          [self = this->shared_from_this(), built] { self->RespondStatus(built); });
    }
    if (method->server_streaming()) return OpenStream(method, *request);
    impl_->handlers->Call(
        method, principal_, std::move(request),
        [self = this->shared_from_this()](
            absl::StatusOr<std::unique_ptr<google::protobuf::Message>> result) mutable {
          // Back on the connection's strand. A reply given on the worker
          // (a read) is serialized there; one from the store's commit
          // thread (a write) on the strand, not to hold up commits.
          if (!result.ok()) {
            return self->OnStrand([self, status = std::move(result).status()] {
              self->RespondStatus(status);
            });
          }
          if (t_on_worker) {
            return self->OnStrand([self, body = ToJson(**result)]() mutable {
              self->Respond(200, "application/json", std::move(body));
            });
          }
          self->OnStrand([self, result = std::move(result)]() mutable {
            self->Respond(200, "application/json", ToJson(**result));
          });
        });
  }

  // A watch stream (see http_server.h): refused as any request (400, 429,
  // ...) if its feed cannot start, else text/event-stream until it ends.
  // Opened on a worker (a resume may read the store), then started on the
  // strand.
  void OpenStream(const google::protobuf::MethodDescriptor* method,
                  const google::protobuf::Message& request) {
    const auto& req = parser_->get();
    std::optional<int64_t> last_event_id;
    if (auto it = req.find("Last-Event-ID"); it != req.end()) {
      const absl::string_view value(it->value().data(), it->value().size());
      last_event_id = ParseLastEventId(value);
      if (!last_event_id) {
        return OnStrand([self = this->shared_from_this()] {
          self->RespondStatus(absl::InvalidArgumentError(
              "Last-Event-ID: must be an event's id (a sequence number >= 0)"));
        });
      }
    }
    std::weak_ptr<Session> weak = this->shared_from_this();
    absl::StatusOr<HttpHandlers::Watch> watch =
        impl_->handlers->OpenWatch(method, principal_, request, last_event_id, [weak] {
          // On a hub or starter thread: the stream's work goes to its strand.
          if (std::shared_ptr<Session> self = weak.lock()) {
            net::post(self->stream_.get_executor(), [self] { self->PumpStream(); });
          }
        });
    OnStrand([self = this->shared_from_this(), watch = std::move(watch)]() mutable {
      self->StartStream(std::move(watch));
    });
  }

  void StartStream(absl::StatusOr<HttpHandlers::Watch> watch) {
    if (!watch.ok()) return RespondStatus(watch.status());
    const auto& req = parser_->get();
    feed_ = std::move(watch->feed);
    end_on_delete_ = watch->end_on_delete;
    // Over a bound on open streams: refused before any event (429).
    if (absl::Status closed = feed_->closed(); !closed.ok()) {
      feed_->Stop();
      feed_ = nullptr;
      return RespondStatus(closed);
    }
    if (!impl_->AddFeed(feed_)) {
      feed_->Stop();
      feed_ = nullptr;
      return RespondStatus(absl::UnavailableError("timerd is shutting down"));
    }
    impl_->Observe(route_, 200, absl::Now() - started_);
    streaming_ = true;
    // Until the stream ends, the connection serves nothing else.
    out_ = absl::StrCat(req.version() == 10 ? "HTTP/1.0" : "HTTP/1.1",
                        " 200 OK\r\n"
                        "Content-Type: text/event-stream; charset=utf-8\r\n"
                        "Cache-Control: no-store\r\n"
                        "X-Accel-Buffering: no\r\n"
                        "Connection: close\r\n\r\n");
    heartbeat_.emplace(stream_.get_executor());
    ArmHeartbeat();
    // A client that closes (or sends anything more) ends the stream.
    Lowest().socket().async_wait(tcp::socket::wait_read,
                                 [self = this->shared_from_this()](beast::error_code ec) {
                                   if (!ec) self->EndStream();
                                 });
    PumpStream();
  }

  void ArmHeartbeat() {
    heartbeat_->expires_after(Chrono(impl_->options.sse_heartbeat));
    heartbeat_->async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->stream_ended_) return;
      self->heartbeat_due_ = true;
      self->PumpStream();
      self->ArmHeartbeat();
    });
  }

  // On the strand: starts the next write with every event ready (within
  // the per-write bounds), the stream's final event, or a heartbeat; one
  // write in flight at a time.
  void PumpStream() {
    if (!streaming_ || stream_ended_ || writing_) return;
    bool last = false;
    taken_.clear();
    frames_.clear();
    feed_->Take(kSseMaxEventsPerWrite, taken_, kSseMaxBytesPerWrite);
    for (const domain::EventPtr& e : taken_) {
      // The frame is shared by every stream that sends this event (gathered
      // into the write, not copied: 1,000 watchers of a burst held 200 KB
      // each when every stream copied its frames).
      frames_.push_back(impl_->sse_frames.Get(e));
      // A watched job's deletion is its stream's last event.
      last = last || (end_on_delete_ && e->message.type() == v1::JobEvent::DELETED);
    }
    if (taken_.empty()) {
      if (absl::Status closed = feed_->closed(); !closed.ok()) {
        AppendSseError(closed, out_);
        last = true;
      }
    }
    taken_.clear();
    if (out_.empty() && frames_.empty() && heartbeat_due_)
      out_.append(kSseKeepAlive.data(), kSseKeepAlive.size());
    heartbeat_due_ = false;
    if (out_.empty() && frames_.empty()) return;
    last_write_ = last;
    writing_ = true;
    // out_ (the response's head, an error, or a heartbeat) goes first.
    buffers_.clear();
    if (!out_.empty()) buffers_.push_back(net::buffer(out_));
    for (const auto& frame : frames_) buffers_.push_back(net::buffer(*frame));
    Lowest().expires_after(Chrono(impl_->options.body_timeout));
    net::async_write(stream_, buffers_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
                       self->OnStreamWritten(ec);
                     });
  }

  void OnStreamWritten(beast::error_code ec) {
    writing_ = false;
    // A burst's vectors are given back, so an idle stream holds little.
    if (frames_.capacity() > 16) {
      std::vector<std::shared_ptr<const std::string>>().swap(frames_);
      std::vector<net::const_buffer>().swap(buffers_);
      std::vector<domain::EventPtr>().swap(taken_);
    } else {
      frames_.clear();
      buffers_.clear();
    }
    Lowest().expires_never();
    if (out_.capacity() > kSseKeepBufferBytes) {
      std::string().swap(out_);
    } else {
      out_.clear();
    }
    if (ec || last_write_) return EndStream();
    PumpStream();
  }

  void EndStream() {
    if (stream_ended_) return;
    stream_ended_ = true;
    if (heartbeat_) heartbeat_->cancel();
    if (impl_->TakeFeed(feed_)) feed_->Stop();
    if (in_flight_) {
      in_flight_ = false;
      impl_->EndRequest();
    }
    Close();
  }

  void RespondStatus(const absl::Status& status) {
    Respond(HttpCodeOf(status.code()), "application/json", StatusJson(status));
  }

  // Answers a request it will not read further, then closes the connection.
  void Refuse(int code, std::string route, const absl::Status& status,
              const std::string& allow = "") {
    route_ = std::move(route);
    close_after_ = true;
    Respond(code, "application/json", StatusJson(status), allow);
  }

  void Respond(int code, const char* content_type, std::string body,
               const std::string& allow = "", absl::Span<const WebHeader> extra = {}) {
    const bool have_request = parser_ && parser_->is_header_done();
    res_.emplace();
    res_->version(have_request ? parser_->get().version() : 11);
    res_->result(static_cast<unsigned>(code));
    res_->set(bhttp::field::content_type, content_type);
    res_->set(bhttp::field::cache_control, "no-store");
    if (!allow.empty()) res_->set(bhttp::field::allow, allow);
    if (code == 401) res_->set(bhttp::field::www_authenticate, "Bearer");
    if (code == 503) res_->set(bhttp::field::retry_after, "1");
    for (const auto& [name, value] : extra) {  // Overrides what is above.
      res_->set(beast::string_view(name.data(), name.size()),
                beast::string_view(value.data(), value.size()));
    }
    const bool keep = !close_after_ && have_request && parser_->get().keep_alive() &&
                      parser_->is_done();
    res_->keep_alive(keep);
    close_after_ = !keep;
    res_->body() = std::move(body);
    res_->prepare_payload();
    // A response to HEAD is the head a GET would have, Content-Length
    // included, and no body (RFC 9110, 9.3.2).
    if (have_request && parser_->get().method() == bhttp::verb::head)
      res_->body().clear();
    Lowest().expires_after(Chrono(impl_->options.body_timeout));
    bhttp::async_write(stream_, *res_,
                       [self = this->shared_from_this()](beast::error_code ec, size_t) {
                         self->OnWritten(ec);
                       });
  }

  void OnWritten(beast::error_code ec) {
    impl_->Observe(
        route_.empty() ? "other" : route_, res_->result_int(),
        started_ == absl::InfinitePast() ? absl::ZeroDuration() : absl::Now() - started_);
    res_.reset();
    if (in_flight_) {
      in_flight_ = false;
      impl_->EndRequest();
    }
    if (body_reserved_ > 0) {
      impl_->ReleaseBody(principal_.identity.name, body_reserved_);
      body_reserved_ = 0;
    }
    started_ = absl::InfinitePast();
    route_.clear();
    if (ec) return Close();
    if (close_after_) return Linger();
    first_ = false;
    ReadNext();
  }

  // Sends FIN, then reads and drops what the client still sends (bounded)
  // so the answer is not lost to a reset; then closes.
  void Linger() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    Lowest().expires_after(Chrono(kLingerFor));
    DrainSome();
  }
  void DrainSome() {
    drain_.resize(4096);
    Lowest().async_read_some(net::buffer(drain_), [self = this->shared_from_this()](
                                                      beast::error_code ec, size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ >= kLingerBytes) return self->Close();
      self->DrainSome();
    });
  }

  void Close() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest().close();
  }

  HttpServer::Impl* const impl_;
  Stream stream_;
  const std::string peer_;
  std::string peer_subject_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> res_;
  std::optional<bhttp::response<bhttp::empty_body>> continue_;
  bool first_ = true;
  bool authenticated_ = false;  // Once a request's credentials were accepted.
  bool close_after_ = false;
  bool in_flight_ = false;
  size_t body_reserved_ = 0;
  absl::Time started_ = absl::InfinitePast();
  std::string route_;
  std::string query_;
  RouteMatch match_;
  auth::Principal principal_;
  auth::Credentials credentials_;  // The request's; kept for its capacity.
  std::string drain_;
  size_t drained_ = 0;
  // A watch stream (OpenStream): all on the strand.
  std::shared_ptr<domain::WatchFeed> feed_;
  bool end_on_delete_ = false;
  bool streaming_ = false;
  bool stream_ended_ = false;
  bool writing_ = false;
  bool last_write_ = false;
  bool heartbeat_due_ = false;
  std::optional<net::steady_timer> heartbeat_;
  std::vector<domain::EventPtr> taken_;
  std::string out_;  // The write in flight, or the next one being built.
  // The shared event frames of the write in flight, and its buffers.
  std::vector<std::shared_ptr<const std::string>> frames_;
  std::vector<net::const_buffer> buffers_;
};

}  // namespace

void HttpServer::Impl::Accept(tcp::acceptor* acceptor) {
  acceptor->async_accept(net::make_strand(ioc), [this, acceptor](beast::error_code ec,
                                                                 tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec) {
      beast::error_code peer_ec;
      const tcp::endpoint remote = socket.remote_endpoint(peer_ec);
      const std::string peer = peer_ec ? std::string("?") : PeerKey(remote);
      if (!Admit(peer)) {
        LogRefusal(
            absl::StrCat("over http_max_connections or "
                         "http_max_connections_per_peer (",
                         peer, ")"));
        socket.close(peer_ec);
      } else if (tls) {
        std::make_shared<Session<TlsStream>>(
            this, TlsStream(beast::tcp_stream(std::move(socket)), *tls), peer)
            ->Run();
      } else {
        std::make_shared<Session<PlainStream>>(this, PlainStream(std::move(socket)), peer)
            ->Run();
      }
    } else {
      LogRefusal(ec == net::error::no_descriptors ? std::string("out of file descriptors")
                                                  : "accept: " + ec.message());
      // Not to spin (nor block the io thread): the next accept a moment
      // later, when a descriptor may have closed.
      auto timer = std::make_shared<net::steady_timer>(acceptor->get_executor(),
                                                       kAcceptRetryAfter);
      timer->async_wait([this, acceptor, timer](beast::error_code wait_ec) {
        if (!wait_ec && acceptor->is_open()) Accept(acceptor);
      });
      return;
    }
    Accept(acceptor);
  });
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(absl::ZeroDuration()); }

int HttpServer::port() const { return impl_->port; }

int HttpServer::connections() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->connections;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    HttpOptions options, HttpHooks hooks, const Transcoder* transcoder,
    const HttpHandlers* handlers) {
  auto impl = std::make_shared<Impl>();
  impl->options = std::move(options);
  impl->hooks = std::move(hooks);
  impl->transcoder = transcoder;
  impl->handlers = handlers;
  const HttpOptions& o = impl->options;
  if (!o.cert_chain.empty()) {
    impl->tls.emplace(ssl::context::tls_server);
    ssl::context& ctx = *impl->tls;
    beast::error_code ec;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                        ssl::context::no_tlsv1_1,
                    ec);
    ctx.use_certificate_chain(net::buffer(o.cert_chain), ec);
    if (ec)
      return absl::InvalidArgumentError("tls_cert: not usable for HTTP: " + ec.message());
    ctx.use_private_key(net::buffer(o.private_key), ssl::context::pem, ec);
    if (ec)
      return absl::InvalidArgumentError("tls_key: not usable for HTTP: " + ec.message());
    if (!o.client_ca.empty()) {
      ctx.add_certificate_authority(net::buffer(o.client_ca), ec);
      if (ec) {
        return absl::InvalidArgumentError("tls_client_ca: not usable for HTTP: " +
                                          ec.message());
      }
      // Asked for, verified when given, not required (as gRPC's
      // REQUEST_CLIENT_CERTIFICATE_AND_VERIFY): a bearer token still works.
      ctx.set_verify_mode(ssl::verify_peer, ec);
      // Verifying peers, OpenSSL refuses to resume a session (a TLS 1.3
      // ticket too) without a session id context.
      static constexpr unsigned char kSessionContext[] = "timerd-http";
      SSL_CTX_set_session_id_context(ctx.native_handle(), kSessionContext,
                                     sizeof(kSessionContext) - 1);
    }
  }

  const size_t colon = o.listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_listen: \"", o.listen, "\" is not HOST:PORT"));
  }
  std::string host = o.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(o.listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_listen: \"", o.listen, "\" has no valid port"));
  }
  beast::error_code ec;
  tcp::resolver resolver(impl->ioc);
  const auto results =
      resolver.resolve(host, std::to_string(port),
                       tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("http_listen: cannot resolve ", o.listen, ": ", ec.message()));
  }
  std::string last_error = "no address";
  for (const auto& entry : results) {
    tcp::endpoint endpoint = entry.endpoint();
    if (impl->port != 0) endpoint.port(static_cast<uint16_t>(impl->port));
    auto acceptor = std::make_unique<tcp::acceptor>(net::make_strand(impl->ioc));
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec && endpoint.address().is_v6())
      acceptor->set_option(net::ip::v6_only(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (ec == net::error::address_in_use) {
      return absl::UnavailableError(
          absl::StrCat("http_listen: ", o.listen, ": address already in use"));
    }
    if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      last_error = ec.message();
      continue;
    }
    impl->port = acceptor->local_endpoint().port();
    impl->acceptors.push_back(std::move(acceptor));
  }
  if (impl->acceptors.empty()) {
    return absl::UnavailableError(
        absl::StrCat("http_listen: cannot serve on ", o.listen, ": ", last_error));
  }
  impl->workers.emplace(static_cast<size_t>(std::clamp(o.workers, 1, 64)));
  impl->work.emplace(impl->ioc.get_executor());
  for (auto& acceptor : impl->acceptors) impl->Accept(acceptor.get());
  for (int i = 0; i < std::clamp(o.io_threads, 1, 16); ++i) {
    impl->threads.emplace_back([raw = impl.get()] {
      for (;;) {
        try {
          raw->ioc.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("http: io thread: {}", e.what());
        }
      }
    });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::Stop(absl::Duration grace) {
  Impl& impl = *impl_;
  {
    absl::MutexLock lock(&impl.mu);
    if (impl.stopped) return;
    impl.stopped = true;
    impl.stopping = true;
  }
  for (auto& acceptor : impl.acceptors) {
    tcp::acceptor* a = acceptor.get();
    auto closed = std::make_shared<absl::Notification>();
    net::post(a->get_executor(), [a, closed] {
      beast::error_code ignored;
      a->close(ignored);
      closed->Notify();
    });
    closed->WaitForNotificationWithTimeout(absl::Seconds(5));
  }
  {
    // Requests in flight get their answers, up to the grace period.
    absl::MutexLock lock(&impl.mu);
    impl.mu.AwaitWithTimeout(
        absl::Condition(
            +[](int* in_flight) { return *in_flight == 0; }, &impl.in_flight),
        grace);
  }
  {
    // Then every connection closes on its strand: a kept-alive one gets a
    // FIN rather than silence, a stream whose final write was not taken is
    // cut, a request still on a worker loses its answer.
    std::vector<std::shared_ptr<SessionBase>> open;
    {
      absl::MutexLock lock(&impl.sessions_mu);
      for (const auto& [raw, weak] : impl.sessions) {
        if (std::shared_ptr<SessionBase> session = weak.lock()) open.push_back(session);
      }
    }
    auto closed = std::make_shared<absl::BlockingCounter>(static_cast<int>(open.size()));
    for (const auto& session : open) session->CloseForStop(closed);
    open.clear();
    // Bounded: the io threads are running, each close is a few syscalls.
    closed->Wait();
  }
  impl.work.reset();
  impl.ioc.stop();
  for (std::thread& t : impl.threads) t.join();
  impl.threads.clear();
  // Tasks still queued are dropped; one running (a handler) finishes first.
  impl.workers->stop();
  impl.workers->join();
  // Streams still open (their final write not taken): their feeds end now,
  // while the WatchStarter is still there.
  absl::flat_hash_set<std::shared_ptr<domain::WatchFeed>> feeds;
  {
    absl::MutexLock lock(&impl.feeds_mu);
    impl.feeds_closed = true;
    feeds.swap(impl.feeds);
  }
  for (const auto& feed : feeds) feed->Stop();
}

}  // namespace timer::api::http
