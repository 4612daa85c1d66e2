// SessionServiceImpl: the gRPC handlers of timer.v1.SessionService.
//
// WhoAmI reports the caller's resolved identity and how it was established.
// RevokeSession revokes the issued token the call was made with; a JWT or a
// client certificate cannot be revoked by timerd (FAILED_PRECONDITION).
// Thread-safe; the Authenticator must outlive it.
#pragma once

#include "api/caller.h"
#include "auth/authenticator.h"
#include "timer/v1/session.grpc.pb.h"

namespace timer::api {

class SessionServiceImpl final : public v1::SessionService::CallbackService {
 public:
  // `peers` (may be null) is told of each authenticated call.
  explicit SessionServiceImpl(const auth::Authenticator* auth,
                              AuthenticatedPeers* peers = nullptr)
      : auth_(auth), peers_(peers) {}

  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* ctx,
                                   const v1::WhoAmIRequest* request,
                                   v1::WhoAmIResponse* response) override;
  grpc::ServerUnaryReactor* RevokeSession(grpc::CallbackServerContext* ctx,
                                          const v1::RevokeSessionRequest* request,
                                          v1::RevokeSessionResponse* response) override;

 private:
  const auth::Authenticator* const auth_;
  AuthenticatedPeers* const peers_;
};

}  // namespace timer::api
