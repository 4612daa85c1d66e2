// Fuzzes the HTTP listener's request transcoding (services/timerd/api/http/
// transcoder.h): the method, path, query string and JSON body of a request,
// matched against timerd's routes (read from the protos) and built into the
// RPC's request message. Input: "METHOD PATH[?QUERY]\n" then the body.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "api/http/transcoder.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "timer/v1/session.pb.h"
#include "timer/v1/timer.pb.h"

namespace {

const timer::api::http::Transcoder& Routes() {
  static const timer::api::http::Transcoder* const routes = [] {
    (void)timer::v1::Job::descriptor();
    (void)timer::v1::WhoAmIRequest::descriptor();
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    auto t = timer::api::http::Transcoder::FromServices(
        {pool->FindServiceByName("timer.v1.TimerService"),
         pool->FindServiceByName("timer.v1.SessionService")});
    if (!t.ok()) __builtin_trap();
    return new timer::api::http::Transcoder(*std::move(t));
  }();
  return *routes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string line = input.substr(0, nl);
  const std::string body = nl == std::string::npos ? "" : input.substr(nl + 1);
  const size_t space = line.find(' ');
  if (space == std::string::npos) return 0;
  const std::string method = line.substr(0, space);
  const std::string target = line.substr(space + 1);
  const size_t q = target.find('?');
  const std::string path = target.substr(0, q);
  const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
  (void)timer::api::http::CheckJsonDepth(body);
  const timer::api::http::RouteMatch match = Routes().Find(method, path);
  if (match.route == nullptr) return 0;
  const google::protobuf::Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(
          match.route->method->input_type());
  std::unique_ptr<google::protobuf::Message> request(prototype->New());
  absl::Status built =
      timer::api::http::Transcoder::BuildRequest(match, query, body, request.get());
  if (built.ok()) (void)timer::api::http::ToJson(*request);
  (void)timer::api::http::StatusJson(built);
  return 0;
}
