// Resolves the identity of an RPC's caller from its server context.
//
// Until authentication is configured, every caller is "local". Thread-safe.
#pragma once

#include <grpcpp/server_context.h>

#include "domain/identity.h"

namespace timer::api {

inline domain::Identity CallerOf(const grpc::CallbackServerContext* /*ctx*/) {
  return domain::LocalIdentity();
}

}  // namespace timer::api
