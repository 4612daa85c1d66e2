#include "api/session_service.h"

#include <spdlog/spdlog.h>

#include "api/caller.h"
#include "api/status.h"
#include "util/escape.h"
#include "util/metrics.h"

namespace timer::api {

grpc::ServerUnaryReactor* SessionServiceImpl::WhoAmI(grpc::CallbackServerContext* ctx,
                                                     const v1::WhoAmIRequest*,
                                                     v1::WhoAmIResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  absl::StatusOr<auth::Principal> caller = CallerOf(*auth_, ctx, peers_);
  if (caller.ok()) {
    response->set_identity(caller->identity.name);
    response->set_auth_method(caller->identity.auth_method);
    if (caller->expire_time) {
      const int64_t us = absl::ToUnixMicros(*caller->expire_time);
      response->mutable_expire_time()->set_seconds(us / 1000000);
      response->mutable_expire_time()->set_nanos(static_cast<int32_t>(us % 1000000) *
                                                 1000);
    }
  }
  metrics::CountGrpcRequest("WhoAmI", caller.status().code());
  reactor->Finish(ToGrpcStatus(caller.status()));
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::RevokeSession(
    grpc::CallbackServerContext* ctx, const v1::RevokeSessionRequest*,
    v1::RevokeSessionResponse*) {
  auto* reactor = ctx->DefaultReactor();
  absl::StatusOr<auth::Principal> caller = CallerOf(*auth_, ctx, peers_);
  absl::Status revoked = caller.ok() ? auth_->Revoke(*caller) : caller.status();
  if (caller.ok() && revoked.ok()) {
    spdlog::info("token {} of {} revoked by its holder", caller->token_id,
                 util::Escaped(caller->identity.name));
  }
  metrics::CountGrpcRequest("RevokeSession", revoked.code());
  reactor->Finish(ToGrpcStatus(revoked));
  return reactor;
}

}  // namespace timer::api
