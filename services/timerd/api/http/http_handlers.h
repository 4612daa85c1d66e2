// HttpHandlers: the thin dispatch of an HTTP request, once transcoded into
// its RPC's request message, to the same domain calls the gRPC handlers
// make (api/timer_service.cc, api/session_service.cc), with the same
// domain::Identity from the same auth::Authenticator. No rule lives here:
// validation, isolation between owners and quotas are the domain's.
//
// The streaming RPCs (WatchJob, WatchJobs) are opened by OpenWatch() as
// the gRPC ones (api/watch.cc): the same filter from the JobService, the same
// domain::WatchFeed from the same WatchStarter (its bounds included); the
// server writes the feed as Server-Sent Events (api/http/sse.h).
//
// Thread-safe; the JobService, Authenticator and WatchStarter must outlive
// it.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <functional>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "auth/authenticator.h"
#include "domain/jobs.h"
#include "domain/watch_start.h"

namespace timer::api::http {

class HttpHandlers {
 public:
  // The response message, or the status the call ended with. Called once,
  // on the calling thread or (for writes) on the store's commit thread.
  using Reply = absl::AnyInvocable<
      void(absl::StatusOr<std::unique_ptr<google::protobuf::Message>>) &&>;

  // `watches` null: the streaming methods answer UNIMPLEMENTED.
  HttpHandlers(domain::JobService* jobs, const auth::Authenticator* auth,
               domain::WatchStarter* watches = nullptr);

  // The caller of a request with these credentials (as api::CallerOf).
  absl::StatusOr<auth::Principal> Authenticate(
      const auth::Credentials& credentials) const;

  // An empty request message of `method`'s input type.
  static std::unique_ptr<google::protobuf::Message> NewRequest(
      const google::protobuf::MethodDescriptor* method);

  // Calls `method` for `caller` with `request` (of NewRequest(method)'s
  // type). UNIMPLEMENTED for a method with no handler here (and for the
  // streaming ones: OpenWatch()).
  void Call(const google::protobuf::MethodDescriptor* method,
            const auth::Principal& caller,
            std::unique_ptr<google::protobuf::Message> request, Reply reply) const;

  struct Watch {
    std::shared_ptr<domain::WatchFeed> feed;
    // WatchJob: the stream ends after its job's DELETED event.
    bool end_on_delete = false;
  };
  // Opens the feed of a streaming `method` (WatchJob, WatchJobs) for
  // `caller`, resuming after `last_event_id` if given, else after the
  // request's `since`. The feed may already be closed (over a bound on open
  // streams: RESOURCE_EXHAUSTED). `on_ready` as WatchStarter::Open's. The
  // request's own errors (a bad filter) are the status.
  absl::StatusOr<Watch> OpenWatch(const google::protobuf::MethodDescriptor* method,
                                  const auth::Principal& caller,
                                  const google::protobuf::Message& request,
                                  std::optional<int64_t> last_event_id,
                                  absl::AnyInvocable<void()> on_ready) const;

 private:
  using Handler = std::function<void(const auth::Principal&,
                                     const google::protobuf::Message&, Reply)>;

  domain::JobService* const jobs_;
  const auth::Authenticator* const auth_;
  domain::WatchStarter* const watches_;
  absl::flat_hash_map<const google::protobuf::MethodDescriptor*, Handler> handlers_;
};

}  // namespace timer::api::http
