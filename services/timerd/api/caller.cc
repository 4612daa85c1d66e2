#include "api/caller.h"

#include <grpc/grpc_security_constants.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>

#include "util/escape.h"

namespace timer::api {

absl::StatusOr<auth::Principal> CallerOf(const auth::Authenticator& auth,
                                         const grpc::CallbackServerContext* ctx) {
  if (ctx->deadline() <= std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError(
        "the call's deadline passed before it was handled");
  }
  auth::Credentials credentials;
  const auto& metadata = ctx->client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    credentials.authorization = std::string(it->second.data(), it->second.size());
  }
  std::shared_ptr<const grpc::AuthContext> peer = ctx->auth_context();
  // Set only when the client presented a certificate the configured client
  // CA verified (the server asks for one only with tls_client_ca).
  if (peer != nullptr && peer->IsPeerAuthenticated()) {
    for (const grpc::string_ref& subject :
         peer->FindPropertyValues(GRPC_X509_SUBJECT_PROPERTY_NAME)) {
      credentials.peer_subject.assign(subject.data(), subject.size());
    }
  }
  absl::StatusOr<auth::Principal> principal = auth.Authenticate(credentials);
  if (!principal.ok()) {
    // The reason, never the credential.
    spdlog::debug("call refused: {}", util::Escaped(principal.status().message()));
  } else {
    spdlog::trace("call by {} ({})", util::Escaped(principal->identity.name),
                  principal->identity.auth_method);
  }
  return principal;
}

}  // namespace timer::api
