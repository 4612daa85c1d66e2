// http_provider_bench: runs per second of the http action provider
// (plugins/http, http.so, driven through its C API as the plugin host
// drives it: start, status until final, release) against a plain libcurl
// loop sending the same requests, both to the same local HTTP server, in the
// same run.
//
// The server is a small Boost.Beast server in this process on 127.0.0.1:0
// (one thread per connection, keep-alive, a fixed 2-byte answer), so it is
// no bottleneck: its cost per request is the same in both measurements.
//   baseline: --threads threads, each with one libcurl easy handle (kept,
//             so its connection is reused), POSTing the same body with the
//             same headers (Content-Type, Idempotency-Key) in a loop;
//   provider: http.so with action_threads = --threads; the driver keeps
//             --window actions in flight, polls their status and releases
//             each as it ends (as the run engine does).
// Each is run --rounds times, alternating which goes first, for --seconds
// each; the medians and the ratio (provider / baseline) are printed.
//
//   timer_bench_http_provider                 # 8 threads, 3 rounds of 3 s
//   timer_bench_http_provider --threads 4 --seconds 5
#include <curl/curl.h>
#include <dlfcn.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "timer/action_provider.h"

namespace timer::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A keep-alive HTTP/1.1 server answering 200 "ok" to everything, one
// thread per connection.
class Server {
 public:
  Server() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Accept(); });
  }
  ~Server() {
    stopping_ = true;
    beast::error_code ec;
    acceptor_.close(ec);
    thread_.join();
    for (auto& t : conns_) t.detach();  // blocked in read until the client closes
  }
  int port() const { return port_; }
  uint64_t served() const { return served_.load(); }

 private:
  void Accept() {
    while (!stopping_) {
      beast::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec) return;
      conns_.emplace_back(
          [this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
    }
  }
  void Serve(tcp::socket socket) {
    socket.set_option(tcp::no_delay(true));
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      beast::error_code ec;
      http::read(socket, buffer, req, ec);
      if (ec) return;
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.set(http::field::content_type, "text/plain");
      res.keep_alive(req.keep_alive());
      res.body() = "ok";
      res.prepare_payload();
      http::write(socket, res, ec);
      served_.fetch_add(1, std::memory_order_relaxed);
      if (ec || !req.keep_alive()) return;
    }
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> served_{0};
  std::thread thread_;
  std::vector<std::thread> conns_;
};

size_t Discard(char*, size_t s, size_t n, void*) { return s * n; }

// The baseline: `threads` libcurl loops for `seconds`; requests per second.
double CurlLoop(const std::string& url, const std::string& body, int threads,
                double seconds) {
  std::atomic<uint64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i) {
    ts.emplace_back([&, i] {
      CURL* h = curl_easy_init();
      curl_slist* headers = nullptr;
      headers = curl_slist_append(headers, "Content-Type: application/json");
      headers = curl_slist_append(headers, "Expect:");
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        std::string key =
            "Idempotency-Key: bench-" + std::to_string(i) + "/" + std::to_string(n);
        curl_slist* all = curl_slist_append(nullptr, key.c_str());
        for (curl_slist* p = headers; p != nullptr; p = p->next) {
          all = curl_slist_append(all, p->data);
        }
        curl_easy_setopt(h, CURLOPT_URL, url.c_str());
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, all);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Discard);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        CURLcode rc = curl_easy_perform(h);
        curl_slist_free_all(all);
        if (rc == CURLE_OK) done.fetch_add(1, std::memory_order_relaxed);
        ++n;
      }
      curl_slist_free_all(headers);
      curl_easy_cleanup(h);
    });
  }
  double t0 = Now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  uint64_t count = done.load();
  double t1 = Now();
  stop = true;
  for (auto& t : ts) t.join();
  return static_cast<double>(count) / (t1 - t0);
}

struct Provider {
  void* so = nullptr;
  const timer_ap_api* api = nullptr;
  timer_ap_provider* p = nullptr;
};

// The provider: `window` actions in flight for `seconds`; runs per second.
// Failures are counted in *failed.
double ProviderLoop(Provider& pr, const std::string& url, const std::string& body_json,
                    int window, double seconds, uint64_t* failed) {
  const timer_ap_api* api = pr.api;
  std::string owner = "bench";
  timer_ap_identity id{
      sizeof(timer_ap_identity), {owner.data(), owner.size()}, {"none", 4}};
  nlohmann::json b = {{"url", url}, {"json", nlohmann::json::parse(body_json)}};
  std::string body = b.dump();
  static uint64_t seq = 0;
  std::deque<std::string> inflight;
  uint64_t done = 0;
  auto start_one = [&]() -> bool {
    std::string rid = "bench/" + std::to_string(++seq);
    timer_ap_status* st = nullptr;
    timer_ap_error* e =
        api->start(pr.p, {rid.data(), rid.size()}, &id, {body.data(), body.size()}, &st);
    if (e != nullptr) {
      api->error_destroy(e);
      return false;
    }
    inflight.emplace_back(st->action_id.data, st->action_id.size);
    api->status_destroy(st);
    return true;
  };
  double t0 = Now();
  const double end = t0 + seconds;
  while (static_cast<int>(inflight.size()) < window && start_one()) {
  }
  while (Now() < end) {
    size_t n = inflight.size();
    bool progressed = false;
    for (size_t i = 0; i < n; ++i) {
      std::string aid = std::move(inflight.front());
      inflight.pop_front();
      timer_ap_status* st = nullptr;
      timer_ap_error* e = api->status(pr.p, {aid.data(), aid.size()}, &st);
      if (e != nullptr) {
        api->error_destroy(e);
        continue;
      }
      const bool final = st->state != TIMER_AP_STATE_ACTIVE;
      if (final && st->state != TIMER_AP_STATE_SUCCEEDED) ++*failed;
      api->status_destroy(st);
      if (!final) {
        inflight.push_back(std::move(aid));
        continue;
      }
      timer_ap_error* re = api->release(pr.p, {aid.data(), aid.size()});
      if (re != nullptr) api->error_destroy(re);
      ++done;
      progressed = true;
      start_one();
    }
    if (!progressed) std::this_thread::yield();
  }
  double t1 = Now();
  // Drain (not counted).
  for (const std::string& aid : inflight) {
    for (;;) {
      timer_ap_status* st = nullptr;
      timer_ap_error* e = api->status(pr.p, {aid.data(), aid.size()}, &st);
      if (e != nullptr) {
        api->error_destroy(e);
        break;
      }
      bool final = st->state != TIMER_AP_STATE_ACTIVE;
      api->status_destroy(st);
      if (final) break;
      std::this_thread::yield();
    }
    timer_ap_error* re = api->release(pr.p, {aid.data(), aid.size()});
    if (re != nullptr) api->error_destroy(re);
  }
  return static_cast<double>(done) / (t1 - t0);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main(int argc, char** argv) {
  CLI::App app{"http provider runs/s against a plain libcurl loop"};
  int threads = 8, rounds = 3, window = 64;
  double seconds = 3;
  std::string so = TIMER_BENCH_HTTP_SO;
  app.add_option("--threads", threads,
                 "action_threads of the provider, and curl threads");
  app.add_option("--window", window, "provider actions kept in flight");
  app.add_option("--rounds", rounds, "rounds (medians are printed)");
  app.add_option("--seconds", seconds, "seconds per measurement");
  app.add_option("--plugin", so, "http.so");
  CLI11_PARSE(app, argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);

  // Never destroyed: its connection threads end with the process.
  Server& server = *new Server();
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/hook";
  const std::string body = R"({"event":"bench","n":1})";

  Provider pr;
  pr.so = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (pr.so == nullptr) {
    std::fprintf(stderr, "dlopen %s: %s\n", so.c_str(), dlerror());
    return 1;
  }
  auto get = reinterpret_cast<timer_ap_get_api_fn>(dlsym(pr.so, TIMER_AP_ENTRY_SYMBOL));
  pr.api = get(TIMER_AP_ABI_MAJOR, TIMER_AP_ABI_MINOR);
  nlohmann::json config = {{"allow", {"127.0.0.1:" + std::to_string(server.port())}},
                           {"action_threads", threads},
                           {"max_queued_actions", std::max(window, 1000)}};
  std::string c = config.dump();
  timer_ap_host host{sizeof(timer_ap_host), nullptr, nullptr};
  if (timer_ap_error* e = pr.api->create({c.data(), c.size()}, &host, &pr.p)) {
    std::fprintf(stderr, "create: %.*s\n",
                 static_cast<int>(pr.api->error_message(e).size),
                 pr.api->error_message(e).data);
    return 1;
  }

  std::printf("threads %d, window %d, %d rounds of %.1f s each\n", threads, window,
              rounds, seconds);
  std::vector<double> curl_rates, provider_rates;
  uint64_t failed = 0;
  for (int r = 0; r < rounds; ++r) {
    double cr, prr;
    if (r % 2 == 0) {
      cr = CurlLoop(url, body, threads, seconds);
      prr = ProviderLoop(pr, url, body, window, seconds, &failed);
    } else {
      prr = ProviderLoop(pr, url, body, window, seconds, &failed);
      cr = CurlLoop(url, body, threads, seconds);
    }
    curl_rates.push_back(cr);
    provider_rates.push_back(prr);
    std::printf(
        "round %d: libcurl loop %8.0f req/s   provider %8.0f runs/s   ratio %.2f\n",
        r + 1, cr, prr, prr / cr);
  }
  const double mc = Median(curl_rates), mp = Median(provider_rates);
  std::printf("median:  libcurl loop %8.0f req/s   provider %8.0f runs/s   ratio %.2f\n",
              mc, mp, mp / mc);
  std::printf("failed provider runs: %llu; server answered %llu requests\n",
              static_cast<unsigned long long>(failed),
              static_cast<unsigned long long>(server.served()));
  pr.api->destroy(pr.p);
  return failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace timer::bench

int main(int argc, char** argv) { return timer::bench::Main(argc, argv); }
