#include "client.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace timer::cli {

absl::StatusOr<std::string> ReadFileArg(const std::string& path, const char* option,
                                        bool allow_stdin) {
  std::stringstream text;
  if (allow_stdin && path == "-") {
    text << std::cin.rdbuf();
    if (std::cin.bad())
      return absl::InvalidArgumentError(absl::StrCat(option, ": cannot read stdin"));
    return text.str();
  }
  std::ifstream in(path);
  if (!in)
    return absl::InvalidArgumentError(absl::StrCat(option, ": cannot read ", path));
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<Client> Client::Connect(ClientOptions options) {
  options.tls = options.tls || !options.tls_ca.empty() || !options.tls_cert.empty() ||
                !options.tls_server_name.empty();
  if (!options.tls) {
    auto channel =
        grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials());
    return Client(std::move(options), channel);
  }
  grpc::SslCredentialsOptions ssl;
  // Without --tls-ca the system's roots (or GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).
  if (!options.tls_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadFileArg(options.tls_ca, "--tls-ca");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!options.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFileArg(options.tls_cert, "--tls-cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFileArg(options.tls_key, "--tls-key");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  grpc::ChannelArguments args;
  if (!options.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls_server_name);
  }
  auto channel =
      grpc::CreateCustomChannel(options.server, grpc::SslCredentials(ssl), args);
  return Client(std::move(options), channel);
}

Client::Client(ClientOptions options, const std::shared_ptr<grpc::Channel>& channel)
    : options_(std::move(options)),
      timer_(v1::TimerService::NewStub(channel)),
      session_(v1::SessionService::NewStub(channel)) {}

void Client::Prepare(grpc::ClientContext* ctx, bool deadline) const {
  if (deadline) {
    ctx->set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_seconds * 1000)));
  }
  if (!options_.token.empty())
    ctx->AddMetadata("authorization", "Bearer " + options_.token);
}

absl::Status Client::ToStatus(const grpc::Status& status) const {
  if (status.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::Status(code, absl::StrCat("cannot reach timerd at ", options_.server,
                                             " (", status.error_message(), ")"));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::Status(
          code, absl::StrCat("timerd at ", options_.server, " did not answer within ",
                             options_.timeout_seconds, "s"));
    case grpc::StatusCode::UNAUTHENTICATED: {
      const std::string hint =
          options_.token_source.empty()
              ? "; log in with: timer session login (or set TIMER_TOKEN)"
              : absl::StrCat(" (token from ", options_.token_source, ")");
      return absl::Status(
          code, absl::StrCat("not authenticated: ", status.error_message(), hint));
    }
    default:
      return absl::Status(code, status.error_message());
  }
}

}  // namespace timer::cli
