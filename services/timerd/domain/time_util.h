// Conversions between absl::Time and google.protobuf.Timestamp. Pure.
#pragma once

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace timer::domain {

inline google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t s = absl::ToUnixSeconds(t);
  out.set_seconds(s);
  out.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(s))));
  return out;
}

inline absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// True if `t` is a valid Timestamp (0001-01-01 to 9999-12-31, nanos in range).
inline bool IsValidTimestamp(const google::protobuf::Timestamp& t) {
  return t.seconds() >= -62135596800LL && t.seconds() <= 253402300799LL &&
         t.nanos() >= 0 && t.nanos() <= 999999999;
}

}  // namespace timer::domain
