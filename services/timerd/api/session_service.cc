#include "api/session_service.h"

#include "api/caller.h"

namespace timer::api {

grpc::ServerUnaryReactor* SessionServiceImpl::WhoAmI(
    grpc::CallbackServerContext* ctx, const v1::WhoAmIRequest*,
    v1::WhoAmIResponse* response) {
  const domain::Identity caller = CallerOf(ctx);
  response->set_identity(caller.name);
  response->set_auth_method(caller.auth_method);
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::RevokeSession(
    grpc::CallbackServerContext* ctx, const v1::RevokeSessionRequest*,
    v1::RevokeSessionResponse*) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status(
      grpc::StatusCode::UNIMPLEMENTED,
      "RevokeSession is not implemented by this timerd yet: it runs without "
      "token authentication, so there is no session to revoke"));
  return reactor;
}

}  // namespace timer::api
