// The server side of WatchJob / WatchJobs: one callback-API write reactor
// per stream (no thread per stream), fed by a domain::WatchFeed.
//
// A stream sends, in order: RESET (only when `since` was given but is no
// longer kept), SNAPSHOT events of the current state (when starting fresh),
// or the kept events after `since` (when resuming); then every later event
// that matches, live. The feed decides and prepares all of it off the gRPC
// threads (domain/watch_start.h); the reactor only pumps its bytes. One
// write is in flight at a time; events wait in the subscription's bounded
// buffer. A stream whose buffer overflows ends with RESOURCE_EXHAUSTED, and
// server shutdown ends streams with UNAVAILABLE; both messages name the
// `since` to resume with. A stream opened beyond the bounds on open streams
// (max_watch_streams, max_watch_streams_per_identity) ends at once with
// RESOURCE_EXHAUSTED naming the bound. A WatchJob stream ends OK after its
// job's DELETED. Each stream counts as one call in timer_grpc_requests_total
// when it ends, with the status it ends with.
//
// The methods are served raw (grpc::ByteBuffer): each event is serialized
// once when it is published (domain::Event::wire), and a stream's message is
// those bytes framed as WatchJob(s)Response's `repeated JobEvent events`, so
// a thousand watchers of one event cost one serialization, not a thousand.
// A message carries every event waiting, up to 256 events or 1 MB.
#pragma once

#include <string_view>

#include "auth/authenticator.h"
#include "domain/events.h"
#include "domain/jobs.h"
#include "domain/watch_start.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::api {

// Parses a raw request into `request`; INVALID_ARGUMENT if it is not one.
absl::Status ParseWatchRequest(const grpc::ByteBuffer& raw,
                               google::protobuf::MessageLite& request);

// Opens the stream for an authenticated caller. The returned reactor owns
// itself (deleted in OnDone). `watches` must outlive it.
grpc::ServerWriteReactor<grpc::ByteBuffer>* OpenWatchJob(
    domain::JobService* jobs, domain::WatchStarter* watches,
    const domain::Identity& caller, const v1::WatchJobRequest& request);
grpc::ServerWriteReactor<grpc::ByteBuffer>* OpenWatchJobs(
    domain::JobService* jobs, domain::WatchStarter* watches,
    const domain::Identity& caller, const v1::WatchJobsRequest& request);

// A stream that ends at once with `status`, counted as a call of `method`
// (the RPC's short name; empty: not counted).
grpc::ServerWriteReactor<grpc::ByteBuffer>* FinishedStream(const grpc::Status& status,
                                                           std::string_view method = {});

}  // namespace timer::api
