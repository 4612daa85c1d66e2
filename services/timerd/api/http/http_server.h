// HttpServer: timerd's HTTP/1.1 listener (Boost.Beast over Asio): the API
// as JSON (api/http/transcoder.h routes, api/http/http_handlers.h calls),
// /healthz, /readyz and /metrics.
//
// Event-driven: a fixed pool of io threads (HttpOptions::io_threads) serves
// every connection; no thread is tied to one. The io threads never block:
// authentication (a token-store read) and the handler (store reads; a write
// waits for its commit) run on a fixed pool of workers
// (HttpOptions::workers), whose answer is posted back to the connection's
// strand; /healthz and /metrics are answered on the io thread itself. Each
// connection takes one request at a time (no pipelining beyond one in
// flight) and keeps alive between them, so at most max_connections requests
// wait for a worker. Plaintext, or TLS with the same certificate and key as gRPC;
// with a client CA, a client may present a certificate, which must then
// verify, and its subject is the identity (mutual TLS), as over gRPC.
//
// Bounds (each also before authentication; docs/DEPLOYMENT.md, "HTTP"):
//   - connections: max_connections in all, max_connections_per_peer from one
//     IPv4 address or IPv6 /64; more are closed at once;
//   - request line and headers: max_header_bytes (431 beyond), within
//     header_timeout of the connection's start (TLS handshake included) or of
//     the first byte of a kept-alive connection's next request;
//   - a kept-alive connection idle for idle_timeout is closed;
//   - body: read only after the route and the credentials were accepted; at
//     most max_body_bytes (413 beyond), within body_timeout; bodies held at
//     once in all at most max_bodies_bytes (503 beyond); JSON nested at most
//     kMaxJsonDepth deep (transcoder.h);
//   - the read buffer: at most max_header_bytes + 64 KiB;
//   - a response must be taken by the client within body_timeout;
//   - a request refused for its credentials (401), its route (404, 405),
//     its framing (400, 413, 431; a Transfer-Encoding not ending in chunked
//     is 400) or a write's Content-Type other than JSON (415) is answered,
//     then the connection closed;
//   - an answer on /healthz, /readyz or /metrics closes a connection that
//     never authenticated; /metrics is rendered at most once a second.
// The domain bounds what each identity may do, as over gRPC.
//
// Watch streams (GET /v1/jobs:watch, GET /v1/jobs/{job_id}:watch) answer
// text/event-stream (api/http/sse.h) from the same domain::WatchFeed as the
// gRPC streams, so the same bounds hold: open streams in all and per
// identity (a stream over them is refused with 429 before any event), the
// per-watcher event buffer (a watcher that falls behind gets a final error
// event naming its resume point, then the connection closes). The io threads
// write: one write in flight per stream, carrying every event ready (up to
// 256 events or 1 MB); a stream holds no other buffer. A write not taken
// within body_timeout ends the stream. A client that closes (or sends
// anything) ends it. On shutdown the event hub is shut down first, which
// gives every stream its final event (code 14 with the resume point); Stop()
// then waits for them within its grace and cuts those still open.
//
// Thread-safe. Stop() (also run by the destructor) stops accepting, gives
// requests in flight (and streams their final write) up to its grace to
// finish, then closes every connection on its strand (a kept-alive one gets
// a FIN), joins the io threads and then the workers. Replies the domain gives later (from
// its commit thread) are dropped; the server object must outlive them, so the owner
// destroys it after the store has closed.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/http/http_handlers.h"
#include "api/http/transcoder.h"

namespace timer::api::http {

struct HttpOptions {
  std::string listen;  // HOST:PORT; port 0 picks a free one.
  int io_threads = 2;  // 1..16 (timerd: http_io_threads).
  // Threads that authenticate and run handlers, off the io threads
  // (timerd: http_workers, 1..64).
  int workers = 8;
  int max_connections = 1024;
  int max_connections_per_peer = 64;
  size_t max_header_bytes = 16 << 10;
  size_t max_body_bytes = 4 << 20;  // timerd: max_message_bytes, as gRPC.
  size_t max_bodies_bytes = 64 << 20;
  absl::Duration header_timeout = absl::Seconds(10);
  absl::Duration body_timeout = absl::Seconds(30);
  absl::Duration idle_timeout = absl::Seconds(60);
  // Watch streams (Server-Sent Events): a `: keep-alive` comment after this
  // long without a write, so proxies keep the connection.
  absl::Duration sse_heartbeat = absl::Seconds(15);
  // TLS: PEM texts. An empty cert_chain: plaintext.
  std::string cert_chain, private_key, client_ca;
};

struct HttpHooks {
  // The body of GET /metrics (Prometheus text format 0.0.4). Unset: empty.
  std::function<std::string()> metrics;
  // Whether the server is ready (GET /readyz: 200, else 503). Called at most
  // once a second; callers in between get the last answer. Unset: ready.
  std::function<bool()> ready;
  // Told of each answered request: its route template ("/v1/jobs/{job_id}",
  // "/healthz", or "other" for no route), HTTP status code and time from
  // its headers to its response written. Called on an io thread; must be cheap.
  absl::AnyInvocable<void(absl::string_view route, int code, absl::Duration) const>
      observe;
};

class HttpServer {
 public:
  // Binds options.listen (every address its host resolves to; an address in
  // use is UNAVAILABLE naming http_listen) and starts serving. `transcoder`
  // and `handlers` must outlive the server.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpOptions options,
                                                           HttpHooks hooks,
                                                           const Transcoder* transcoder,
                                                           const HttpHandlers* handlers);
  ~HttpServer();

  // The port bound (the one chosen when 0 was asked).
  int port() const;
  // Open connections (for tests and logs).
  int connections() const;

  void Stop(absl::Duration grace = absl::Seconds(5));

  struct Impl;  // Internal (http_server.cc).

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace timer::api::http
