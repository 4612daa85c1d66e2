// Transcoder: timerd's JSON-over-HTTP routes, read from the `google.api.http`
// option of each RPC (AIP-127, the mapping grpc-gateway and Envoy's gRPC-JSON
// transcoder follow), and the request message an HTTP request means.
//
// The mapping is declared once, in proto/timer/v1/*.proto; FromServices()
// turns each binding (and its additional_bindings) into a Route at start. A
// path template is literal segments and `{field.path}` variables (`{f=*}` is
// the same), with an optional `:verb` after the last segment. A request
// message is built from, in this order: the body (`body: "*"`: the whole
// request; `body: "job"`: that field; none: the body must be empty), the
// query string (each remaining field by its dotted proto or JSON name;
// repeated fields by repeating the parameter; enums by name; a FieldMask as
// "a,b"; a Timestamp as RFC 3339) and the path variables. A query parameter
// naming no field, or one the path or the body already sets, is
// INVALID_ARGUMENT naming the parameter; so is a value that does not parse.
//
// Also here: the JSON printing of responses (as `timer --format json` prints:
// proto field names, every field), google.rpc.Status error bodies and the
// HTTP code of each status code (as grpc-gateway maps them).
//
// Immutable after construction; thread-safe.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace timer::api::http {

// JSON request bodies nested deeper than this (objects and arrays) are
// refused before they are parsed.
inline constexpr int kMaxJsonDepth = 32;

struct Route {
  struct Segment {
    std::string literal;  // Set for a literal segment.
    std::string field;    // Set for a variable: the dotted field path it binds.
  };
  std::string http_method;  // "GET", "POST", "PATCH", "DELETE" or "PUT".
  std::string pattern;      // As declared, e.g. "/v1/jobs/{job_id}:pause".
  std::vector<Segment> segments;
  std::string verb;  // After the last ':' ("pause"); empty if none.
  std::string body;  // "", "*" or a top-level field name.
  const google::protobuf::MethodDescriptor* method = nullptr;
};

// What a method and path resolved to.
struct RouteMatch {
  const Route* route = nullptr;  // Null: no route for this method and path.
  // Path variables: (dotted field path, percent-decoded value).
  std::vector<std::pair<std::string, std::string>> bindings;
  // With no route: the methods other routes of this path take (405 with
  // Allow), empty when no route has this path at all (404).
  std::vector<std::string> allowed;
};

class Transcoder {
 public:
  // The routes of every RPC of `services` that has a `google.api.http`
  // option. INVALID_ARGUMENT naming the method for a template this parser
  // does not take, a variable or body naming no field, or two RPCs with the
  // same method and template.
  static absl::StatusOr<Transcoder> FromServices(
      const std::vector<const google::protobuf::ServiceDescriptor*>& services);

  const std::vector<Route>& routes() const { return routes_; }

  // `path` is the request target without its query string.
  RouteMatch Find(absl::string_view http_method, absl::string_view path) const;

  // Fills `request` (a message of match.route->method's input type) from
  // the match's path variables, `query` (without the '?') and `body`.
  static absl::Status BuildRequest(const RouteMatch& match, absl::string_view query,
                                   absl::string_view body,
                                   google::protobuf::Message* request);

 private:
  std::vector<Route> routes_;
};

// Parses one route template (for FromServices and tests). `method` may be
// null in tests; then variables and body are not checked against fields.
absl::StatusOr<Route> ParseRoute(absl::string_view http_method, absl::string_view pattern,
                                 absl::string_view body,
                                 const google::protobuf::MethodDescriptor* method);

// INVALID_ARGUMENT if `json` nests objects and arrays deeper than
// `max_depth` (strings are skipped; nothing else is checked here).
absl::Status CheckJsonDepth(absl::string_view json, int max_depth = kMaxJsonDepth);

// `message` as the CLI's `--format json` prints it, on one line. Printed
// directly by reflection where the message's shape allows (the API's
// messages: scalars, strings, enums, Timestamps, nested messages), with the
// same bytes as ToJsonByProtobuf, which prints anything else.
std::string ToJson(const google::protobuf::Message& message);

// The direct printing alone: false (and *json unspecified) for a message it
// leaves to protobuf's printer.
bool ToJsonDirect(const google::protobuf::Message& message, std::string* json);

// The same through protobuf's own printer (MessageToJsonString with proto
// field names and every primitive field): the reference ToJson matches.
std::string ToJsonByProtobuf(const google::protobuf::Message& message);

// `status` as a google.rpc.Status JSON object:
// {"code":5,"message":"...","details":[]}.
std::string StatusJson(const absl::Status& status);

// The HTTP status code of a status code, as grpc-gateway maps them.
int HttpCodeOf(absl::StatusCode code);

// %XX decoded (and '+' as a space when `plus_is_space`); INVALID_ARGUMENT
// for a malformed escape.
absl::StatusOr<std::string> PercentDecode(absl::string_view text, bool plus_is_space);

}  // namespace timer::api::http
