#include "api/http/transcoder.h"

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/field_mask.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "google/api/annotations.pb.h"
#include "google/api/http.pb.h"
#include "google/rpc/status.pb.h"
#include "util/escape.h"
#include "util/status_macros.h"

namespace timer::api::http {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;
using google::protobuf::Reflection;

// The field of `type` named `name` (its proto name or its JSON name).
const FieldDescriptor* FieldNamed(const Descriptor* type, absl::string_view name) {
  const std::string key(name);
  if (const FieldDescriptor* f = type->FindFieldByName(key)) return f;
  for (int i = 0; i < type->field_count(); ++i) {
    if (type->field(i)->json_name() == key) return type->field(i);
  }
  return nullptr;
}

// The fields a dotted path walks through, from `type`: every one but the
// last a singular message. Empty if the path names no field.
std::vector<const FieldDescriptor*> ResolvePath(const Descriptor* type,
                                                absl::string_view path) {
  std::vector<const FieldDescriptor*> chain;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (type == nullptr) return {};
    const FieldDescriptor* f = FieldNamed(type, part);
    if (f == nullptr) return {};
    chain.push_back(f);
    type = (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated())
               ? f->message_type()
               : nullptr;
  }
  return chain;
}

// The canonical dotted proto-name path of a chain.
std::string PathOf(const std::vector<const FieldDescriptor*>& chain) {
  std::vector<std::string> names;
  names.reserve(chain.size());
  for (const FieldDescriptor* f : chain) names.push_back(f->name());
  return absl::StrJoin(names, ".");
}

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or
// code points past U+10FFFF), as proto3 strings must be.
bool IsUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= text.size()) return false;
    for (int k = 1; k <= n; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

absl::Status Invalid(absl::string_view what, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
}

// Sets (or, when repeated, appends) `value` to field `f` of `msg`.
// `what` names the parameter in errors.
absl::Status SetValue(Message* msg, const FieldDescriptor* f, absl::string_view value,
                      absl::string_view what) {
  const Reflection* r = msg->GetReflection();
  const bool rep = f->is_repeated();
  // Every value but a base64 bytes field is text (a string, a number, a
  // name, field paths): UTF-8, as proto3 strings must be.
  if (f->type() != FieldDescriptor::TYPE_BYTES && !IsUtf8(value)) {
    return Invalid(what, "not valid UTF-8");
  }
  const std::string shown = util::Escaped(value.substr(0, 64));
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string v(value);
      if (f->type() == FieldDescriptor::TYPE_BYTES) {
        std::string raw;
        if (!absl::Base64Unescape(value, &raw) &&
            !absl::WebSafeBase64Unescape(value, &raw)) {
          return Invalid(what, "not base64");
        }
        v = std::move(raw);
      }
      rep ? r->AddString(msg, f, std::move(v)) : r->SetString(msg, f, std::move(v));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (value == "true" || value == "1") {
        v = true;
      } else if (value == "false" || value == "0") {
        v = false;
      } else {
        return Invalid(what, absl::StrCat("\"", shown, "\" is not true or false"));
      }
      rep ? r->AddBool(msg, f, v) : r->SetBool(msg, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v;
      if (!absl::SimpleAtoi(value, &v)) {
        return Invalid(what, absl::StrCat("\"", shown, "\" is not a 32-bit integer"));
      }
      rep ? r->AddInt32(msg, f, v) : r->SetInt32(msg, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!absl::SimpleAtoi(value, &v)) {
        return Invalid(what, absl::StrCat("\"", shown, "\" is not a 64-bit integer"));
      }
      rep ? r->AddInt64(msg, f, v) : r->SetInt64(msg, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v;
      if (!absl::SimpleAtoi(value, &v)) {
        return Invalid(what, absl::StrCat("\"", shown, "\" is not an unsigned integer"));
      }
      rep ? r->AddUInt32(msg, f, v) : r->SetUInt32(msg, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!absl::SimpleAtoi(value, &v)) {
        return Invalid(what, absl::StrCat("\"", shown, "\" is not an unsigned integer"));
      }
      rep ? r->AddUInt64(msg, f, v) : r->SetUInt64(msg, f, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double v;
      if (!absl::SimpleAtod(value, &v)) {
        return Invalid(what, absl::StrCat("\"", shown, "\" is not a number"));
      }
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
        rep ? r->AddFloat(msg, f, static_cast<float>(v))
            : r->SetFloat(msg, f, static_cast<float>(v));
      } else {
        rep ? r->AddDouble(msg, f, v) : r->SetDouble(msg, f, v);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* e = f->enum_type()->FindValueByName(std::string(value));
      int number = 0;
      if (e == nullptr && absl::SimpleAtoi(value, &number)) {
        e = f->enum_type()->FindValueByNumber(number);
      }
      if (e == nullptr) {
        std::vector<std::string> names;
        for (int i = 0; i < f->enum_type()->value_count(); ++i) {
          names.push_back(f->enum_type()->value(i)->name());
        }
        return Invalid(what, absl::StrCat("\"", shown, "\" is not one of ",
                                          absl::StrJoin(names, ", ")));
      }
      rep ? r->AddEnum(msg, f, e) : r->SetEnum(msg, f, e);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  if (rep) return Invalid(what, "cannot be set from a query parameter");
  const std::string& type = f->message_type()->full_name();
  if (type == "google.protobuf.FieldMask") {
    auto* mask = static_cast<google::protobuf::FieldMask*>(r->MutableMessage(msg, f));
    for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      // camelCase (the JSON form) or snake_case, as grpc-gateway takes both.
      std::string p;
      for (char c : absl::StripAsciiWhitespace(part)) {
        if (absl::ascii_isupper(c)) {
          p.push_back('_');
          p.push_back(absl::ascii_tolower(c));
        } else {
          p.push_back(c);
        }
      }
      mask->add_paths(std::move(p));
    }
    return absl::OkStatus();
  }
  if (type == "google.protobuf.Timestamp") {
    google::protobuf::Timestamp ts;
    if (!google::protobuf::util::TimeUtil::FromString(std::string(value), &ts)) {
      return Invalid(what, absl::StrCat("\"", shown,
                                        "\" is not an RFC 3339 time "
                                        "(2026-01-02T03:04:05Z)"));
    }
    r->MutableMessage(msg, f)->CopyFrom(ts);
    return absl::OkStatus();
  }
  return Invalid(what, "cannot be set from a query parameter");
}

// Sets the field at `chain` (from `msg`) to `value`.
absl::Status SetPath(Message* msg, const std::vector<const FieldDescriptor*>& chain,
                     absl::string_view value, absl::string_view what) {
  for (size_t i = 0; i + 1 < chain.size(); ++i) {
    msg = msg->GetReflection()->MutableMessage(msg, chain[i]);
  }
  return SetValue(msg, chain.back(), value, what);
}

absl::Status ParseJsonInto(absl::string_view body, Message* msg, absl::string_view what) {
  RETURN_IF_ERROR(CheckJsonDepth(body));
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(body.data(), body.size()), msg, options);
  if (!status.ok()) {
    // The parser's message may quote the input: escaped, as any echo.
    return Invalid(what, absl::StrCat("not a valid ", msg->GetDescriptor()->full_name(),
                                      " in JSON: ",
                                      util::Escaped(status.message().ToString(), 256)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> PercentDecode(absl::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      int hi, lo;
      const auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      if (i + 2 >= text.size() || (hi = hex(text[i + 1])) < 0 ||
          (lo = hex(text[i + 2])) < 0) {
        return absl::InvalidArgumentError("a '%' escape is not %XX");
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<Route> ParseRoute(absl::string_view http_method, absl::string_view pattern,
                                 absl::string_view body, const MethodDescriptor* method) {
  const std::string where =
      absl::StrCat(method != nullptr ? method->full_name() : "route", " ", http_method,
                   " \"", pattern, "\"");
  Route route;
  route.http_method = std::string(http_method);
  route.pattern = std::string(pattern);
  route.body = std::string(body);
  route.method = method;
  if (!absl::StartsWith(pattern, "/")) {
    return Invalid(where, "a path template starts with '/'");
  }
  absl::string_view rest = pattern.substr(1);
  // The verb: after a ':' beyond the last '/' and the last '}'.
  const size_t last_slash = rest.rfind('/');
  const size_t last_brace = rest.rfind('}');
  size_t colon = rest.rfind(':');
  if (colon != absl::string_view::npos &&
      (last_slash == absl::string_view::npos || colon > last_slash) &&
      (last_brace == absl::string_view::npos || colon > last_brace)) {
    route.verb = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (route.verb.empty()) return Invalid(where, "an empty :verb");
  }
  const Descriptor* input = method != nullptr ? method->input_type() : nullptr;
  for (absl::string_view seg : absl::StrSplit(rest, '/')) {
    Route::Segment s;
    if (absl::StartsWith(seg, "{") && absl::EndsWith(seg, "}")) {
      absl::string_view var = seg.substr(1, seg.size() - 2);
      if (const size_t eq = var.find('='); eq != absl::string_view::npos) {
        if (var.substr(eq + 1) != "*") {
          return Invalid(where, "only {field} and {field=*} variables are taken");
        }
        var = var.substr(0, eq);
      }
      if (var.empty()) return Invalid(where, "a variable names no field");
      if (input != nullptr) {
        const auto chain = ResolvePath(input, var);
        if (chain.empty() || chain.back()->is_repeated() ||
            chain.back()->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          return Invalid(where, absl::StrCat("{", var, "} is not a scalar field of ",
                                             input->full_name()));
        }
        s.field = PathOf(chain);
      } else {
        s.field = std::string(var);
      }
    } else {
      if (seg.empty() || absl::StrContains(seg, '{') || absl::StrContains(seg, '}') ||
          absl::StrContains(seg, '*')) {
        return Invalid(where, absl::StrCat("segment \"", seg, "\" is not taken"));
      }
      s.literal = std::string(seg);
    }
    route.segments.push_back(std::move(s));
  }
  if (!body.empty() && body != "*" && input != nullptr) {
    const FieldDescriptor* f = input->FindFieldByName(std::string(body));
    if (f == nullptr || f->is_repeated() ||
        f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return Invalid(where, absl::StrCat("body \"", body, "\" is not a message field of ",
                                         input->full_name()));
    }
  }
  return route;
}

absl::StatusOr<Transcoder> Transcoder::FromServices(
    const std::vector<const google::protobuf::ServiceDescriptor*>& services) {
  Transcoder t;
  absl::flat_hash_set<std::string> seen;
  const auto add = [&](const google::api::HttpRule& rule,
                       const MethodDescriptor* method) -> absl::Status {
    std::string verb, pattern;
    switch (rule.pattern_case()) {
      case google::api::HttpRule::kGet:
        verb = "GET", pattern = rule.get();
        break;
      case google::api::HttpRule::kPut:
        verb = "PUT", pattern = rule.put();
        break;
      case google::api::HttpRule::kPost:
        verb = "POST", pattern = rule.post();
        break;
      case google::api::HttpRule::kDelete:
        verb = "DELETE", pattern = rule.delete_();
        break;
      case google::api::HttpRule::kPatch:
        verb = "PATCH", pattern = rule.patch();
        break;
      default:
        return Invalid(method->full_name(), "google.api.http: a custom or empty pattern");
    }
    ASSIGN_OR_RETURN(Route route, ParseRoute(verb, pattern, rule.body(), method));
    // Two templates that differ only in variable names match alike.
    std::string shape = verb;
    for (const Route::Segment& s : route.segments) {
      absl::StrAppend(&shape, "/", s.field.empty() ? s.literal : "{}");
    }
    absl::StrAppend(&shape, ":", route.verb);
    if (!seen.insert(shape).second) {
      return Invalid(method->full_name(),
                     absl::StrCat("google.api.http: ", verb, " ", pattern,
                                  " is bound to another method too"));
    }
    t.routes_.push_back(std::move(route));
    return absl::OkStatus();
  };
  for (const auto* service : services) {
    for (int i = 0; i < service->method_count(); ++i) {
      const MethodDescriptor* method = service->method(i);
      if (!method->options().HasExtension(google::api::http)) continue;
      const google::api::HttpRule& rule =
          method->options().GetExtension(google::api::http);
      RETURN_IF_ERROR(add(rule, method));
      for (const auto& extra : rule.additional_bindings())
        RETURN_IF_ERROR(add(extra, method));
    }
  }
  return t;
}

RouteMatch Transcoder::Find(absl::string_view http_method, absl::string_view path) const {
  RouteMatch result;
  if (!absl::StartsWith(path, "/")) return result;
  absl::string_view rest = path.substr(1);
  // The verb: after the last ':' of the last segment, before decoding (an
  // escaped %3A is part of a value).
  absl::string_view verb;
  const size_t last_slash = rest.rfind('/');
  const size_t colon = rest.rfind(':');
  if (colon != absl::string_view::npos &&
      (last_slash == absl::string_view::npos || colon > last_slash)) {
    verb = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
  }
  const std::vector<absl::string_view> segments = absl::StrSplit(rest, '/');
  for (const Route& route : routes_) {
    if (route.verb != verb || route.segments.size() != segments.size()) continue;
    std::vector<std::pair<std::string, std::string>> bindings;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      const Route::Segment& s = route.segments[i];
      if (s.field.empty()) {
        ok = s.literal == segments[i];
      } else {
        absl::StatusOr<std::string> value = PercentDecode(segments[i], false);
        ok = value.ok() && !value->empty();
        if (ok) bindings.emplace_back(s.field, *std::move(value));
      }
    }
    if (!ok) continue;
    if (route.http_method == http_method) {
      result.route = &route;
      result.bindings = std::move(bindings);
      result.allowed.clear();
      return result;
    }
    if (std::find(result.allowed.begin(), result.allowed.end(), route.http_method) ==
        result.allowed.end()) {
      result.allowed.push_back(route.http_method);
    }
  }
  return result;
}

absl::Status Transcoder::BuildRequest(const RouteMatch& match, absl::string_view query,
                                      absl::string_view body, Message* request) {
  const Route& route = *match.route;
  const Descriptor* type = request->GetDescriptor();
  if (route.body.empty()) {
    if (!body.empty()) {
      return Invalid("body",
                     absl::StrCat(route.http_method, " ", route.pattern,
                                  " takes no body; request fields go in the query"));
    }
  } else if (route.body == "*") {
    if (!body.empty()) RETURN_IF_ERROR(ParseJsonInto(body, request, "body"));
  } else if (!body.empty()) {
    const FieldDescriptor* f = type->FindFieldByName(route.body);
    RETURN_IF_ERROR(ParseJsonInto(body,
                                  request->GetReflection()->MutableMessage(request, f),
                                  absl::StrCat("body (", route.body, ")")));
  }
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    absl::StatusOr<std::string> key = PercentDecode(pair.substr(0, eq), true);
    if (!key.ok()) return Invalid("query", key.status().message());
    const std::string what = absl::StrCat("query parameter ", util::Escaped(*key));
    absl::StatusOr<std::string> value =
        PercentDecode(eq == absl::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!value.ok()) return Invalid(what, value.status().message());
    const auto chain = ResolvePath(type, *key);
    if (chain.empty()) {
      return Invalid(what, absl::StrCat("no such field in ", type->full_name()));
    }
    const std::string path = PathOf(chain);
    if (route.body == "*" || path == route.body ||
        absl::StartsWith(path,
                         absl::StrCat(route.body.empty() ? "\x01" : route.body, "."))) {
      return Invalid(what, "set by the request body, not the query");
    }
    for (const auto& [bound, unused] : match.bindings) {
      if (path == bound) return Invalid(what, "set by the path, not the query");
    }
    RETURN_IF_ERROR(SetPath(request, chain, *value, what));
  }
  for (const auto& [field, value] : match.bindings) {
    const auto chain = ResolvePath(type, field);
    if (chain.empty()) return absl::InternalError(absl::StrCat("route field ", field));
    RETURN_IF_ERROR(SetPath(request, chain, value, absl::StrCat("path {", field, "}")));
  }
  return absl::OkStatus();
}

absl::Status CheckJsonDepth(absl::string_view json, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) {
        return absl::InvalidArgumentError(
            absl::StrCat("body: JSON nested deeper than ", max_depth));
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return absl::OkStatus();
}

namespace {

// The direct JSON printer (ToJson): by reflection, straight into one string,
// with exactly the output of protobuf's printer with the options below for
// the shapes it knows (proto3 messages of scalars, strings, enums, nested
// messages, google.protobuf.Timestamp and Duration, repeated or not). Anything else
// (floats, bytes, maps, other well-known types, proto2, an enum value with
// no name, a string needing escapes beyond \" and \\) returns false and the
// message is printed by protobuf's printer instead. Protobuf's printer goes
// through the binary encoding, a type resolver and an object-writer stack:
// most of an HTTP GetJob's CPU time before this (bench/http_bench.cc).

bool AppendJsonString(absl::string_view text, std::string& out) {
  out.push_back('"');
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u == '"' || u == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u >= 0x7f || u == '<' || u == '>' || u == '&' || u == '\'' ||
               u == '=') {
      return false;  // Escaped differently by protobuf's printer: left to it.
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return true;
}

// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf prints.
bool AppendTimestamp(const Message& m, std::string& out) {
  const auto& ts = static_cast<const google::protobuf::Timestamp&>(m);
  // 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z, as protobuf accepts.
  if (ts.seconds() < -62135596800 || ts.seconds() > 253402300799 || ts.nanos() < 0 ||
      ts.nanos() > 999999999) {
    return false;
  }
  out.push_back('"');
  out.append(absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(ts.seconds()),
                              absl::UTCTimeZone()));
  const int32_t nanos = ts.nanos();
  if (nanos != 0) {
    if (nanos % 1000000 == 0) {
      absl::StrAppendFormat(&out, ".%03d", nanos / 1000000);
    } else if (nanos % 1000 == 0) {
      absl::StrAppendFormat(&out, ".%06d", nanos / 1000);
    } else {
      absl::StrAppendFormat(&out, ".%09d", nanos);
    }
  }
  out.append("Z\"");
  return true;
}

// Seconds with 0, 3, 6 or 9 fractional digits and an "s", as protobuf
// prints a google.protobuf.Duration ("1.500s", "-0.250s").
bool AppendDuration(const Message& m, std::string& out) {
  const auto& d = static_cast<const google::protobuf::Duration&>(m);
  const int64_t seconds = d.seconds();
  const int32_t nanos = d.nanos();
  // protobuf's range, and seconds and nanos of one sign.
  if (seconds < -315576000000 || seconds > 315576000000 || nanos < -999999999 ||
      nanos > 999999999 || (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    return false;
  }
  out.push_back('"');
  if (seconds < 0 || nanos < 0) out.push_back('-');
  absl::StrAppend(&out, seconds < 0 ? -seconds : seconds);
  const int32_t frac = nanos < 0 ? -nanos : nanos;
  if (frac != 0) {
    if (frac % 1000000 == 0) {
      absl::StrAppendFormat(&out, ".%03d", frac / 1000000);
    } else if (frac % 1000 == 0) {
      absl::StrAppendFormat(&out, ".%06d", frac / 1000);
    } else {
      absl::StrAppendFormat(&out, ".%09d", frac);
    }
  }
  out.append("s\"");
  return true;
}

// Well-known types printed as JSON strings (after a message's other fields,
// like protobuf's printer).
bool IsStringWkt(const google::protobuf::Descriptor* type) {
  return type == google::protobuf::Timestamp::descriptor() ||
         type == google::protobuf::Duration::descriptor();
}

bool AppendMessageJson(const Message& m, std::string& out);

// Field `f` of `m` (element `index` of a repeated field, else -1).
bool AppendFieldValue(const Message& m, const google::protobuf::FieldDescriptor* f,
                      int index, std::string& out) {
  using FD = google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = m.GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32:
      absl::StrAppend(&out, rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
      return true;
    case FD::CPPTYPE_UINT32:
      absl::StrAppend(&out, rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
      return true;
    case FD::CPPTYPE_INT64:
      absl::StrAppend(&out, "\"",
                      rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), "\"");
      return true;
    case FD::CPPTYPE_UINT64:
      absl::StrAppend(&out, "\"",
                      rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f), "\"");
      return true;
    case FD::CPPTYPE_BOOL:
      out.append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true"
                                                                            : "false");
      return true;
    case FD::CPPTYPE_ENUM: {
      const int value =
          rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
      const google::protobuf::EnumValueDescriptor* named =
          f->enum_type()->FindValueByNumber(value);
      return named != nullptr && AppendJsonString(named->name(), out);
    }
    case FD::CPPTYPE_STRING: {
      if (f->type() == FD::TYPE_BYTES) return false;
      std::string scratch;
      const std::string& text = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                    : r->GetStringReference(m, f, &scratch);
      return AppendJsonString(text, out);
    }
    case FD::CPPTYPE_MESSAGE: {
      const Message& sub = rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f);
      const google::protobuf::Descriptor* type = sub.GetDescriptor();
      if (type == google::protobuf::Timestamp::descriptor()) {
        return AppendTimestamp(sub, out);
      }
      if (type == google::protobuf::Duration::descriptor()) {
        return AppendDuration(sub, out);
      }
      if (absl::StartsWith(type->full_name(), "google.protobuf.")) return false;
      return AppendMessageJson(sub, out);
    }
    default:  // float, double: protobuf's own number formatting.
      return false;
  }
}

bool AppendMessageJson(const Message& m, std::string& out) {
  const google::protobuf::Descriptor* d = m.GetDescriptor();
  if (d->file()->syntax() != google::protobuf::FileDescriptor::SYNTAX_PROTO3) {
    return false;
  }
  const google::protobuf::Reflection* r = m.GetReflection();
  // protobuf's printer (its DefaultValueObjectWriter) first prints, in
  // declaration order, the fields it makes a place for: scalars outside a
  // oneof (defaults included), repeated fields ([] when empty), messages
  // (only when set), Timestamps and Durations aside. Then, in field-number
  // order (the binary encoding's), those it meets only when set: scalar
  // oneof members (proto3 `optional` included), Timestamps and Durations.
  auto later = [](const google::protobuf::FieldDescriptor* f) {
    if (f->is_repeated()) return false;
    if (f->message_type() != nullptr) {
      return IsStringWkt(f->message_type());
    }
    return f->containing_oneof() != nullptr;
  };
  out.push_back('{');
  bool first = true;
  auto append = [&](const google::protobuf::FieldDescriptor* f) {
    if (!f->is_repeated() && f->has_presence() && !r->HasField(m, f)) return true;
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');
    out.append(f->name());
    out.append("\":");
    if (!f->is_repeated()) return AppendFieldValue(m, f, -1, out);
    out.push_back('[');
    const int n = r->FieldSize(m, f);
    for (int j = 0; j < n; ++j) {
      if (j > 0) out.push_back(',');
      if (!AppendFieldValue(m, f, j, out)) return false;
    }
    out.push_back(']');
    return true;
  };
  absl::InlinedVector<const google::protobuf::FieldDescriptor*, 16> deferred;
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (f->is_map()) return false;
    if (later(f)) {
      deferred.push_back(f);
    } else if (!append(f)) {
      return false;
    }
  }
  std::sort(deferred.begin(), deferred.end(),
            [](const auto* a, const auto* b) { return a->number() < b->number(); });
  for (const google::protobuf::FieldDescriptor* f : deferred) {
    if (!append(f)) return false;
  }
  out.push_back('}');
  return true;
}

}  // namespace

bool ToJsonDirect(const Message& message, std::string* json) {
  json->clear();
  json->reserve(1024);
  return AppendMessageJson(message, *json);
}

std::string ToJson(const Message& message) {
  std::string json;
  if (ToJsonDirect(message, &json)) return json;
  return ToJsonByProtobuf(message);
}

std::string ToJsonByProtobuf(const Message& message) {
  // As clients/timer/output.cc prints --format json.
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

std::string StatusJson(const absl::Status& status) {
  google::rpc::Status s;
  s.set_code(static_cast<int>(status.code()));
  // A JSON string must be UTF-8; a message that is not is escaped whole.
  s.set_message(IsUtf8(status.message())
                    ? std::string(status.message())
                    : util::Escaped(status.message(), status.message().size()));
  return ToJson(s);
}

int HttpCodeOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    default:
      return 500;
  }
}

}  // namespace timer::api::http
