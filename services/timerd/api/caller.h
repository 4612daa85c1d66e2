// Resolves the caller of an RPC from its server context: the
// `authorization` metadata and, on a mutual-TLS connection, the verified
// client certificate's subject, handed to the server's Authenticator.
//
// Also refuses a call whose deadline has already passed, before any work.
// Thread-safe; the Authenticator must outlive every call.
#pragma once

#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "auth/authenticator.h"

namespace timer::api {

absl::StatusOr<auth::Principal> CallerOf(const auth::Authenticator& auth,
                                         const grpc::CallbackServerContext* ctx);

}  // namespace timer::api
