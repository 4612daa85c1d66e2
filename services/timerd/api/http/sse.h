// Server-Sent Events framing for the watch streams over HTTP
// (GET /v1/jobs/{job_id}:watch, GET /v1/jobs:watch): how one JobEvent, the
// end of a stream and a heartbeat look on the wire (the text/event-stream
// format of the HTML standard, "Server-sent events").
//
// An event is
//   id: <sequence>
//   event: <JobEvent.Type name>
//   data: <the JobEvent as protobuf JSON with proto field names, one line>
//   <empty line>
// The JSON printer escapes every newline inside strings, so `data` is one
// line; should a text ever hold a line break, it is split over several
// `data:` lines, which a client joins back with "\n" (never a broken frame).
// A stream's end (a slow consumer dropped, shutdown, a start refused) is an
// `event: error` whose data is the google.rpc.Status JSON, without an `id:`
// so that a client's Last-Event-ID stays the last event it got.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "timer/v1/timer.pb.h"

namespace timer::api::http {

// The heartbeat: an SSE comment, ignored by clients, kept by proxies.
inline constexpr absl::string_view kSseKeepAlive = ": keep-alive\n\n";

// Appends `text` as `data:` lines (one per line of `text`).
void AppendSseData(absl::string_view text, std::string& out);

// Appends `event` as one SSE event (see above).
void AppendSseEvent(const v1::JobEvent& event, std::string& out);

// Appends the stream's final event for `status` (see above).
void AppendSseError(const absl::Status& status, std::string& out);

// The resume point of a Last-Event-ID header: a sequence number >= 0.
// nullopt for anything else.
std::optional<int64_t> ParseLastEventId(absl::string_view value);

}  // namespace timer::api::http
