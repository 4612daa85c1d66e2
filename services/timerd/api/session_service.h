// SessionServiceImpl: the gRPC handlers of timer.v1.SessionService.
//
// WhoAmI reports the caller's resolved identity. RevokeSession is
// UNIMPLEMENTED until token authentication exists. Thread-safe, stateless.
#pragma once

#include "timer/v1/session.grpc.pb.h"

namespace timer::api {

class SessionServiceImpl final : public v1::SessionService::CallbackService {
 public:
  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* ctx,
                                   const v1::WhoAmIRequest* request,
                                   v1::WhoAmIResponse* response) override;
  grpc::ServerUnaryReactor* RevokeSession(
      grpc::CallbackServerContext* ctx, const v1::RevokeSessionRequest* request,
      v1::RevokeSessionResponse* response) override;
};

}  // namespace timer::api
