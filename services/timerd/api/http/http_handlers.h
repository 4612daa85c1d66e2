// HttpHandlers: the thin dispatch of an HTTP request, once transcoded into
// its RPC's request message, to the same domain calls the gRPC handlers
// make (api/timer_service.cc, api/session_service.cc), with the same
// domain::Identity from the same auth::Authenticator. No rule lives here:
// validation, isolation between owners and quotas are the domain's.
//
// The streaming RPCs (WatchJob, WatchJobs) answer UNIMPLEMENTED for now:
// their Server-Sent Events are not built yet.
//
// Thread-safe; the JobService and Authenticator must outlive it.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <functional>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "auth/authenticator.h"
#include "domain/jobs.h"

namespace timer::api::http {

class HttpHandlers {
 public:
  // The response message, or the status the call ended with. Called once,
  // on the calling thread or (for writes) on the store's commit thread.
  using Reply = absl::AnyInvocable<
      void(absl::StatusOr<std::unique_ptr<google::protobuf::Message>>) &&>;

  HttpHandlers(domain::JobService* jobs, const auth::Authenticator* auth);

  // The caller of a request with these credentials (as api::CallerOf).
  absl::StatusOr<auth::Principal> Authenticate(
      const auth::Credentials& credentials) const;

  // An empty request message of `method`'s input type.
  static std::unique_ptr<google::protobuf::Message> NewRequest(
      const google::protobuf::MethodDescriptor* method);

  // Calls `method` for `caller` with `request` (of NewRequest(method)'s
  // type). UNIMPLEMENTED for a method with no handler here.
  void Call(const google::protobuf::MethodDescriptor* method,
            const auth::Principal& caller,
            std::unique_ptr<google::protobuf::Message> request, Reply reply) const;

 private:
  using Handler = std::function<void(const auth::Principal&,
                                     const google::protobuf::Message&, Reply)>;

  domain::JobService* const jobs_;
  const auth::Authenticator* const auth_;
  absl::flat_hash_map<const google::protobuf::MethodDescriptor*, Handler> handlers_;
};

}  // namespace timer::api::http
