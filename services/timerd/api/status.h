// The one place where absl::Status becomes grpc::Status.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace timer::api {

// Same code, same message. Abseil and gRPC share canonical code numbers.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace timer::api
