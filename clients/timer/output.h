// How `timer` prints what the server returns. Pure functions writing to the
// stream they are given; thread-safe (each call on its own stream).
//
// json: the protobuf JSON mapping with proto field names (job_id, ...), every
// field present, one document per command, for scripts and jq.
// table: a readable summary for people; times in ISO 8601 UTC, with a
// relative hint. Every text that came from timerd (names, errors, details,
// identities, ...) goes through Printable() first: a job name or a
// provider's error must not move the cursor, recolour or retitle the
// terminal. JSON needs no such care: its encoder escapes control characters.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "printable.h"
#include "timer/v1/session.pb.h"
#include "timer/v1/timer.pb.h"

namespace timer::cli {

enum class Format { kTable, kJson };

// Prints `message` as one JSON document.
void PrintJson(const google::protobuf::Message& message, std::ostream& out);
// Prints `message` as JSON on one line (JSON Lines, for streams).
void PrintJsonLine(const google::protobuf::Message& message, std::ostream& out);
// One human line for a watch event: time, sequence, type, job, run.
void PrintEventLine(const v1::JobEvent& event, std::ostream& out);

// A job as a block of "Key: value" lines. `verbose` adds every kept result
// with the provider's details.
void PrintJobTable(const v1::Job& job, bool verbose, absl::Time now, std::ostream& out);

// Jobs as a table, one row each (or blocks when `verbose`).
void PrintJobsTable(const std::vector<v1::Job>& jobs, bool verbose, absl::Time now,
                    std::ostream& out);

// Results, newest first, one row each (with details when `verbose`).
void PrintResultsTable(const std::vector<v1::JobResult>& results, bool verbose,
                       std::ostream& out);

// A provider: name, version, description and its input JSON schema.
void PrintProvider(const v1::ActionProvider& provider, std::ostream& out);

// One line per provider: name, version, description (or a sentence saying
// there are none).
void PrintProvidersTable(const v1::ListActionProvidersResponse& providers,
                         std::ostream& out);

// `timer session whoami`: the identity, how it authenticated, when the token
// expires and the `server` asked.
void PrintWhoAmI(const v1::WhoAmIResponse& who, const std::string& server,
                 std::ostream& out);

// "new", "loaded", ..., "ended (stop_after_runs)".
std::string StatusText(const v1::Job& job);

// A schedule preview: one line per entry (fire time, nominal slot when it
// differs, what removes it) with its why, then how it ends.
void PrintPreview(const v1::PreviewScheduleResponse& preview, std::ostream& out);

// `job update`'s before/after of the next fires.
void PrintFireChange(const v1::PreviewScheduleResponse& before,
                     const v1::PreviewScheduleResponse& after, std::ostream& out);

}  // namespace timer::cli
