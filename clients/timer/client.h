// Client: the CLI's connection to timerd. It owns one gRPC channel (plain or
// TLS, with the credentials and bearer token of ClientOptions) and the stubs
// of TimerService and SessionService over it, and turns every call's
// grpc::Status into an absl::Status whose message says what went wrong in
// the user's terms:
//
//   UNAVAILABLE        "cannot reach timerd at HOST:PORT (...)"
//   DEADLINE_EXCEEDED  "timerd at HOST:PORT did not answer within 10s"
//   UNAUTHENTICATED    "not authenticated: ...; log in with: timer session login ..."
//   anything else      the server's message, with the server's code
//
//   Use:
//     absl::StatusOr<Client> client = Client::Connect(options);
//     v1::Job job;
//     absl::Status s = client->Call(&v1::TimerService::Stub::GetJob, request, &job);
//
// Each unary call gets a fresh context with the deadline (timeout_seconds)
// and, when there is one, the token. Streams (job watch) build their own
// context with Prepare(..., /*deadline=*/false).
//
// A Client is used by one thread at a time (the CLI has one); the channel
// itself is thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "timer/v1/session.grpc.pb.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::cli {

struct ClientOptions {
  std::string server = "127.0.0.1:50051";
  double timeout_seconds = 10;
  // TLS: on with `tls` or any of the tls_* fields set.
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key;  // PEM file paths; empty: none.
  std::string tls_server_name;            // Empty: the server's host.
  // The bearer token sent with every call; empty: none.
  std::string token;
  // Where `token` came from, for error hints: "TIMER_TOKEN", a cache path, "".
  std::string token_source;
};

class Client {
 public:
  // Reads the TLS files (INVALID_ARGUMENT naming the option when one cannot
  // be read) and opens the channel; no call is made yet.
  static absl::StatusOr<Client> Connect(ClientOptions options);

  Client(Client&&) = default;
  Client& operator=(Client&&) = default;

  // One unary call of TimerService or SessionService with a fresh context.
  template <typename Stub, typename Request, typename Response>
  absl::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                 Response*),
                    const Request& request, Response* response) const {
    grpc::ClientContext ctx;
    Prepare(&ctx, /*deadline=*/true);
    if constexpr (std::is_same_v<Stub, v1::TimerService::Stub>) {
      return ToStatus((timer_.get()->*method)(&ctx, request, response));
    } else {
      static_assert(std::is_same_v<Stub, v1::SessionService::Stub>);
      return ToStatus((session_.get()->*method)(&ctx, request, response));
    }
  }

  // For streaming calls; owned by this Client.
  v1::TimerService::Stub& timer() const { return *timer_; }

  // Adds the token to `ctx` and, when `deadline`, the per-call deadline.
  void Prepare(grpc::ClientContext* ctx, bool deadline) const;

  // The absl::Status for a call's result, with the messages listed above.
  absl::Status ToStatus(const grpc::Status& status) const;

  const ClientOptions& options() const { return options_; }

 private:
  Client(ClientOptions options, const std::shared_ptr<grpc::Channel>& channel);

  ClientOptions options_;
  std::unique_ptr<v1::TimerService::Stub> timer_;
  std::unique_ptr<v1::SessionService::Stub> session_;
};

// Calls a paged List method (AIP-158) from `request`'s page on until the
// last page, handing each page to `take(Response&)`.
template <typename Request, typename Response, typename Take>
absl::Status CallEveryPage(const Client& client,
                           grpc::Status (v1::TimerService::Stub::*method)(
                               grpc::ClientContext*, const Request&, Response*),
                           Request request, Take take) {
  do {
    Response page;
    if (absl::Status s = client.Call(method, request, &page); !s.ok()) return s;
    take(page);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return absl::OkStatus();
}

// The whole of a text file, or of stdin for "-" when `allow_stdin`.
// INVALID_ARGUMENT "<option>: cannot read <path>" when it cannot be read.
absl::StatusOr<std::string> ReadFileArg(const std::string& path, const char* option,
                                        bool allow_stdin = false);

}  // namespace timer::cli
