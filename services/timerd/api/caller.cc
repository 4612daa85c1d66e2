#include "api/caller.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security_constants.h>
#include <grpc/slice.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "auth/token.h"
#include "util/escape.h"

namespace timer::api {
namespace {

// How long the gate lets a verified credential through without asking the
// Authenticator again; CallerOf checks every call regardless.
constexpr absl::Duration kGateMemory = absl::Seconds(1);
// Verified credentials remembered at most (each a 32-byte digest).
constexpr size_t kGateMemoryEntries = 4096;

absl::string_view View(const grpc_slice& slice) {
  return absl::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
                           GRPC_SLICE_LENGTH(slice));
}

// The gate, as a C core auth metadata processor. It runs inline on the
// transport's thread, as CallerOf's verification ran on gRPC's.
void ProcessCall(void* state, grpc_auth_context* context, const grpc_metadata* md,
                 size_t num_md, grpc_process_auth_metadata_done_cb done,
                 void* user_data) {
  const auto& gate = *static_cast<std::shared_ptr<const CallGate>*>(state);
  absl::string_view path;
  auth::Credentials credentials;
  for (size_t i = 0; i < num_md; ++i) {
    const absl::string_view key = View(md[i].key);
    if (key == ":path") {
      path = View(md[i].value);
    } else if (key == "authorization") {
      credentials.authorization = std::string(View(md[i].value));
    }
  }
  if (context != nullptr && grpc_auth_context_peer_is_authenticated(context)) {
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(
        context, GRPC_X509_SUBJECT_PROPERTY_NAME);
    while (const grpc_auth_property* p = grpc_auth_property_iterator_next(&it)) {
      credentials.peer_subject.assign(p->value, p->value_length);
    }
  }
  const absl::Status status = gate->Check(path, credentials);
  const std::string message(status.message());
  done(user_data, nullptr, 0, nullptr, 0, static_cast<grpc_status_code>(status.code()),
       status.ok() ? nullptr : message.c_str());
}

void DestroyGate(void* state) {
  delete static_cast<std::shared_ptr<const CallGate>*>(state);
}

class GatedServerCredentials final : public grpc::ServerCredentials {
 public:
  GatedServerCredentials(grpc_server_credentials* core,
                         std::shared_ptr<const CallGate> gate)
      : core_(core) {
    grpc_auth_metadata_processor processor;
    processor.process = &ProcessCall;
    processor.destroy = &DestroyGate;
    // Owned by the core credentials, which may outlive this object.
    processor.state = new std::shared_ptr<const CallGate>(std::move(gate));
    grpc_server_credentials_set_auth_metadata_processor(core_, processor);
  }
  ~GatedServerCredentials() override { grpc_server_credentials_release(core_); }

  // The gate is the processor; there is no room for another.
  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), core_);
  }

  grpc_server_credentials* const core_;
};

}  // namespace

absl::StatusOr<auth::Principal> CallerOf(const auth::Authenticator& auth,
                                         const grpc::CallbackServerContext* ctx,
                                         AuthenticatedPeers* peers) {
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
    if (peers != nullptr && peers->AnyWaiting()) peers->Authenticated(ctx->peer());
  }
  return principal;
}

bool CallGate::IsOpenMethod(absl::string_view path) {
  return absl::StartsWith(path, "/grpc.health.v1.Health/") ||
         absl::StartsWith(path, "/grpc.reflection.v1alpha.ServerReflection/") ||
         absl::StartsWith(path, "/grpc.reflection.v1.ServerReflection/");
}

absl::Status CallGate::Check(absl::string_view path,
                             const auth::Credentials& credentials) const {
  if (IsOpenMethod(path)) return absl::OkStatus();
  std::string digest;
  const absl::Time now = clock_->Now();
  if (credentials.authorization) {
    digest = auth::Sha256(*credentials.authorization);
    absl::MutexLock lock(&mu_);
    auto it = verified_.find(digest);
    if (it != verified_.end() && now < it->second) return absl::OkStatus();
  }
  absl::StatusOr<auth::Principal> principal = auth_->Authenticate(credentials);
  if (!principal.ok()) {
    spdlog::debug("call refused: {}", std::string(principal.status().message()));
    return principal.status();
  }
  if (!digest.empty()) {
    absl::Time until = now + kGateMemory;
    if (principal->expire_time) until = std::min(until, *principal->expire_time);
    absl::MutexLock lock(&mu_);
    if (verified_.size() >= kGateMemoryEntries) {
      for (auto it = verified_.begin(); it != verified_.end();) {
        if (it->second <= now) {
          verified_.erase(it++);
        } else {
          ++it;
        }
      }
      if (verified_.size() >= kGateMemoryEntries) verified_.clear();
    }
    verified_[digest] = until;
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> GatedCredentials(
    grpc_server_credentials* core, std::shared_ptr<const CallGate> gate) {
  return std::make_shared<GatedServerCredentials>(core, std::move(gate));
}

}  // namespace timer::api
