// Tests of api/status.h: the one conversion of absl::Status to grpc::Status.

#include "api/status.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace timer::api {
namespace {

TEST(ToGrpcStatusTest, OkIsOkWithNoMessage) {
  const grpc::Status status = ToGrpcStatus(absl::OkStatus());
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OK);
  EXPECT_EQ(status.error_message(), "");
}

TEST(ToGrpcStatusTest, EveryCanonicalCodeKeepsItsCodeAndMessage) {
  for (int code = 1; code <= 16; ++code) {
    const absl::StatusCode absl_code = static_cast<absl::StatusCode>(code);
    const std::string message = absl::StrCat("field: problem ", code);
    const grpc::Status status = ToGrpcStatus(absl::Status(absl_code, message));
    EXPECT_EQ(static_cast<int>(status.error_code()), code)
        << absl::StatusCodeToString(absl_code);
    EXPECT_EQ(status.error_message(), message) << absl::StatusCodeToString(absl_code);
    EXPECT_FALSE(status.ok());
  }
}

TEST(ToGrpcStatusTest, NamedCodesMatchTheirGrpcNames) {
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("x")).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ToGrpcStatus(absl::AlreadyExistsError("x")).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(ToGrpcStatus(absl::AbortedError("x")).error_code(),
            grpc::StatusCode::ABORTED);
  EXPECT_EQ(ToGrpcStatus(absl::FailedPreconditionError("x")).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpcStatus(absl::UnauthenticatedError("x")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ToGrpcStatus(absl::UnimplementedError("x")).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(ToGrpcStatus(absl::DeadlineExceededError("x")).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
}

TEST(ToGrpcStatusTest, AnErrorWithAnEmptyMessageStaysAnError) {
  const grpc::Status status = ToGrpcStatus(absl::Status(absl::StatusCode::kInternal, ""));
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
}

}  // namespace
}  // namespace timer::api
