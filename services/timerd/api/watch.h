// The server side of WatchJob / WatchJobs: one callback-API write reactor
// per stream (no thread per stream), fed by a domain::EventHub subscription.
//
// A stream sends, in order: RESET (only when `since` was given but is no
// longer kept), SNAPSHOT events of the current state (when starting fresh),
// or the kept events after `since` (when resuming); then every later event
// that matches, live. One write is in flight at a time; events wait in the
// subscription's bounded buffer. A stream whose buffer overflows ends with
// RESOURCE_EXHAUSTED, and server shutdown ends streams with UNAVAILABLE;
// both messages name the `since` to resume with.
#pragma once

#include "auth/authenticator.h"
#include "domain/events.h"
#include "domain/jobs.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::api {

// Opens the stream for an authenticated caller. The returned reactor owns
// itself (deleted in OnDone).
grpc::ServerWriteReactor<v1::JobEvent>* OpenWatchJob(domain::JobService* jobs,
                                                     domain::EventHub* hub,
                                                     const domain::Identity& caller,
                                                     const v1::WatchJobRequest& request);
grpc::ServerWriteReactor<v1::JobEvent>* OpenWatchJobs(domain::JobService* jobs,
                                                      domain::EventHub* hub,
                                                      const domain::Identity& caller,
                                                      const v1::WatchJobsRequest& request);

// A stream that ends at once with `status`.
grpc::ServerWriteReactor<v1::JobEvent>* FinishedStream(const grpc::Status& status);

}  // namespace timer::api
