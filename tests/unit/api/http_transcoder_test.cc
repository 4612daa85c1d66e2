// The HTTP routes read from the protos' google.api.http options, path
// template matching, and request messages built from path, query and body.
#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "api/http/transcoder.h"
#include "google/rpc/status.pb.h"
#include "timer/v1/session.pb.h"
#include "timer/v1/timer.pb.h"

namespace timer::api::http {
namespace {

using ::testing::HasSubstr;

const Transcoder& Routes() {
  static const Transcoder* const routes = [] {
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    // Referenced so both files are linked in and their descriptors pooled.
    (void)v1::Job::descriptor();
    (void)v1::WhoAmIRequest::descriptor();
    auto t =
        Transcoder::FromServices({pool->FindServiceByName("timer.v1.TimerService"),
                                  pool->FindServiceByName("timer.v1.SessionService")});
    EXPECT_TRUE(t.ok()) << t.status();
    return new Transcoder(*std::move(t));
  }();
  return *routes;
}

std::string MethodAt(absl::string_view verb, absl::string_view path) {
  const RouteMatch m = Routes().Find(verb, path);
  return m.route == nullptr ? "" : m.route->method->name();
}

TEST(HttpTranscoderTest, EveryRouteOfTheProtosResolvesToItsMethod) {
  EXPECT_EQ(MethodAt("POST", "/v1/jobs"), "CreateJob");
  EXPECT_EQ(MethodAt("GET", "/v1/jobs"), "ListJobs");
  EXPECT_EQ(MethodAt("GET", "/v1/jobs/abc"), "GetJob");
  EXPECT_EQ(MethodAt("PATCH", "/v1/jobs/abc"), "UpdateJob");
  EXPECT_EQ(MethodAt("DELETE", "/v1/jobs/abc"), "DeleteJob");
  EXPECT_EQ(MethodAt("POST", "/v1/jobs/abc:pause"), "PauseJob");
  EXPECT_EQ(MethodAt("POST", "/v1/jobs/abc:resume"), "ResumeJob");
  EXPECT_EQ(MethodAt("POST", "/v1/jobs/abc:run"), "RunJobNow");
  EXPECT_EQ(MethodAt("POST", "/v1/jobs/abc:backfill"), "BackfillJob");
  EXPECT_EQ(MethodAt("GET", "/v1/jobs/abc/results"), "ListJobResults");
  EXPECT_EQ(MethodAt("GET", "/v1/jobs/abc:watch"), "WatchJob");
  EXPECT_EQ(MethodAt("GET", "/v1/jobs:watch"), "WatchJobs");
  EXPECT_EQ(MethodAt("GET", "/v1/providers"), "ListActionProviders");
  EXPECT_EQ(MethodAt("GET", "/v1/providers/noop"), "GetActionProvider");
  EXPECT_EQ(MethodAt("POST", "/v1/schedules:preview"), "PreviewSchedule");
  EXPECT_EQ(MethodAt("GET", "/v1/jobs/abc:preview"), "PreviewSchedule");
  EXPECT_EQ(MethodAt("GET", "/v1/session"), "WhoAmI");
  EXPECT_EQ(MethodAt("POST", "/v1/session:revoke"), "RevokeSession");
  // One route per binding: 17 RPCs, PreviewSchedule with two.
  EXPECT_EQ(Routes().routes().size(), 18u);
}

TEST(HttpTranscoderTest, PathVariablesAreBoundDecoded) {
  const RouteMatch m = Routes().Find("PATCH", "/v1/jobs/a%2Fb%3Ac");
  ASSERT_NE(m.route, nullptr);
  ASSERT_EQ(m.bindings.size(), 1u);
  EXPECT_EQ(m.bindings[0].first, "job.job_id");
  EXPECT_EQ(m.bindings[0].second, "a/b:c");
}

TEST(HttpTranscoderTest, UnknownPathsAndVerbsMatchNothing) {
  for (const char* path : {"/v1/jobs/abc:explode", "/v1/jobs/abc/results/x", "/v2/jobs",
                           "/v1/jobs/", "/", "", "v1/jobs", "/v1/jobs//results"}) {
    const RouteMatch m = Routes().Find("GET", path);
    EXPECT_EQ(m.route, nullptr) << path;
    EXPECT_TRUE(m.allowed.empty()) << path;
  }
}

TEST(HttpTranscoderTest, AnotherMethodOfAKnownPathListsTheAllowedOnes) {
  RouteMatch m = Routes().Find("PUT", "/v1/jobs/abc");
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"GET", "PATCH", "DELETE"}));
  m = Routes().Find("GET", "/v1/jobs/abc:pause");
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"POST"}));
}

TEST(HttpTranscoderTest, QueryParametersSetTheRemainingFields) {
  RouteMatch m = Routes().Find("GET", "/v1/jobs");
  v1::ListJobsRequest list;
  ASSERT_TRUE(Transcoder::BuildRequest(
                  m, "page_size=7&pageToken=t%20k&show_deleted=true&view=JOB_VIEW_FULL",
                  "", &list)
                  .ok());
  EXPECT_EQ(list.page_size(), 7);
  EXPECT_EQ(list.page_token(), "t k");
  EXPECT_TRUE(list.show_deleted());
  EXPECT_EQ(list.view(), v1::JOB_VIEW_FULL);

  m = Routes().Find("PATCH", "/v1/jobs/j1");
  v1::UpdateJobRequest update;
  ASSERT_TRUE(Transcoder::BuildRequest(m, "update_mask=name,schedule.intervalSeconds",
                                       R"({"name":"n","label":"l"})", &update)
                  .ok());
  EXPECT_EQ(update.job().job_id(), "j1");
  EXPECT_EQ(update.job().name(), "n");
  ASSERT_EQ(update.update_mask().paths_size(), 2);
  EXPECT_EQ(update.update_mask().paths(0), "name");
  EXPECT_EQ(update.update_mask().paths(1), "schedule.interval_seconds");

  m = Routes().Find("DELETE", "/v1/jobs/j2");
  v1::DeleteJobRequest del;
  ASSERT_TRUE(Transcoder::BuildRequest(m, "etag=W1", "", &del).ok());
  EXPECT_EQ(del.job_id(), "j2");
  EXPECT_EQ(del.etag(), "W1");

  m = Routes().Find("GET", "/v1/jobs/j3:preview");
  v1::PreviewScheduleRequest preview;
  ASSERT_TRUE(
      Transcoder::BuildRequest(m, "from=2026-01-02T03:04:05Z&count=3", "", &preview)
          .ok());
  EXPECT_EQ(preview.job_id(), "j3");
  EXPECT_EQ(preview.from().seconds(), 1767323045);
}

TEST(HttpTranscoderTest, NestedDottedQueryNamesReachIntoMessages) {
  const RouteMatch m = Routes().Find("POST", "/v1/schedules:preview");
  // body "*": nothing may come from the query.
  v1::PreviewScheduleRequest preview;
  absl::Status s =
      Transcoder::BuildRequest(m, "schedule.interval_seconds=5", "", &preview);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("query parameter schedule.interval_seconds"));

  // A route of no body: any field, however deep, from the query.
  absl::StatusOr<Route> route = ParseRoute("GET", "/v1/things", "", nullptr);
  ASSERT_TRUE(route.ok());
  RouteMatch match;
  match.route = &*route;
  v1::CreateJobRequest create;
  ASSERT_TRUE(
      Transcoder::BuildRequest(match,
                               "job.schedule.interval_seconds=5&job.schedule.start="
                               "2030-01-01T00:00:00Z&job.action.provider=noop",
                               "", &create)
          .ok());
  EXPECT_EQ(create.job().schedule().interval_seconds(), 5);
  EXPECT_EQ(create.job().schedule().start().seconds(), 1893456000);
  EXPECT_EQ(create.job().action().provider(), "noop");
  s = Transcoder::BuildRequest(match, "job.schedule.start=yesterday", "", &create);
  EXPECT_THAT(
      std::string(s.message()),
      HasSubstr("query parameter job.schedule.start: \"yesterday\" is not an RFC 3339"));
  s = Transcoder::BuildRequest(match, "job=x", "", &create);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("query parameter job: cannot be set from a query parameter"));
}

TEST(HttpTranscoderTest, BadQueryParametersAreNamed) {
  const RouteMatch m = Routes().Find("GET", "/v1/jobs");
  const struct {
    const char* query;
    const char* message;
  } cases[] = {
      {"colour=red", "query parameter colour: no such field in timer.v1.ListJobsRequest"},
      {"page_size=many", "query parameter page_size: \"many\" is not a 32-bit integer"},
      {"page_size=99999999999", "query parameter page_size"},
      {"show_deleted=maybe",
       "query parameter show_deleted: \"maybe\" is not true or false"},
      {"view=JOB_VIEW_HUGE", "query parameter view: \"JOB_VIEW_HUGE\" is not one of"},
      {"page_token=%zz", "query parameter page_token: a '%' escape is not %XX"},
      {"page_token=%4", "query parameter page_token"},
  };
  for (const auto& c : cases) {
    v1::ListJobsRequest req;
    absl::Status s = Transcoder::BuildRequest(m, c.query, "", &req);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.query;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message)) << c.query;
  }
  const RouteMatch get = Routes().Find("GET", "/v1/jobs/j1");
  v1::GetJobRequest req;
  absl::Status s = Transcoder::BuildRequest(get, "job_id=other", "", &req);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("query parameter job_id: set by the path"));
  const RouteMatch patch = Routes().Find("PATCH", "/v1/jobs/j1");
  v1::UpdateJobRequest update;
  s = Transcoder::BuildRequest(patch, "job.name=x", "{}", &update);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("query parameter job.name: set by the request body"));
}

TEST(HttpTranscoderTest, BodiesUseTheProtobufJsonMappingStrictly) {
  const RouteMatch create = Routes().Find("POST", "/v1/jobs");
  v1::CreateJobRequest req;
  ASSERT_TRUE(
      Transcoder::BuildRequest(
          create, "request_id=r1",
          R"({"name":"n","schedule":{"interval_seconds":"60"},"overlap_policy":"BUFFER_ONE"})",
          &req)
          .ok());
  EXPECT_EQ(req.job().name(), "n");
  EXPECT_EQ(req.job().schedule().interval_seconds(), 60);
  EXPECT_EQ(req.request_id(), "r1");

  v1::CreateJobRequest bad;
  absl::Status s = Transcoder::BuildRequest(create, "", R"({"nmae":"n"})", &bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("body (job)"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("nmae"));

  s = Transcoder::BuildRequest(create, "", "{not json", &bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);

  const RouteMatch get = Routes().Find("GET", "/v1/jobs/j1");
  v1::GetJobRequest g;
  s = Transcoder::BuildRequest(get, "", "{}", &g);
  EXPECT_THAT(std::string(s.message()), HasSubstr("takes no body"));

  // body "*" with an empty body: an empty request, then the path.
  const RouteMatch pause = Routes().Find("POST", "/v1/jobs/j1:pause");
  v1::PauseJobRequest p;
  ASSERT_TRUE(Transcoder::BuildRequest(pause, "", "", &p).ok());
  EXPECT_EQ(p.job_id(), "j1");
}

TEST(HttpTranscoderTest, DeepJsonIsRefusedBeforeParsing) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(std::string(CheckJsonDepth(deep).message()),
              HasSubstr("JSON nested deeper than 32"));
  EXPECT_TRUE(
      CheckJsonDepth(R"({"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["})").ok());
  const RouteMatch create = Routes().Find("POST", "/v1/jobs");
  v1::CreateJobRequest req;
  absl::Status s = Transcoder::BuildRequest(
      create, "", "{\"label\":" + deep.substr(0, 50) + deep.substr(100000, 50) + "}",
      &req);
  EXPECT_THAT(std::string(s.message()), HasSubstr("nested deeper"));
}

TEST(HttpTranscoderTest, TemplatesOutsideTheSupportedGrammarAreRefused) {
  EXPECT_FALSE(ParseRoute("GET", "v1/x", "", nullptr).ok());
  EXPECT_FALSE(ParseRoute("GET", "/v1/{name=things/*}", "", nullptr).ok());
  EXPECT_FALSE(ParseRoute("GET", "/v1/*/x", "", nullptr).ok());
  EXPECT_FALSE(ParseRoute("GET", "/v1/x:", "", nullptr).ok());
  auto r = ParseRoute("POST", "/v1/things/{thing.id=*}:frob", "*", nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->verb, "frob");
  ASSERT_EQ(r->segments.size(), 3u);
  EXPECT_EQ(r->segments[2].field, "thing.id");
  // Checked against the method's fields when there is one.
  const auto* get_job =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
          "timer.v1.TimerService.GetJob");
  ASSERT_NE(get_job, nullptr);
  EXPECT_FALSE(ParseRoute("GET", "/v1/jobs/{nope}", "", get_job).ok());
  EXPECT_FALSE(ParseRoute("POST", "/v1/jobs/{job_id}", "job_id", get_job).ok());
}

TEST(HttpTranscoderTest, ErrorsAreGoogleRpcStatusJsonWithGatewayCodes) {
  EXPECT_EQ(StatusJson(absl::NotFoundError("job j1: not found")),
            R"({"code":5,"message":"job j1: not found","details":[]})");
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kAlreadyExists), 409);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kAborted), 409);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kUnimplemented), 501);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kDeadlineExceeded), 504);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kInternal), 500);
  EXPECT_EQ(HttpCodeOf(absl::StatusCode::kDataLoss), 500);
}

TEST(HttpTranscoderTest, StringsMustBeUtf8AndErrorsStayValidJson) {
  const RouteMatch m = Routes().Find("GET", "/v1/jobs");
  v1::ListJobsRequest list;
  absl::Status s = Transcoder::BuildRequest(m, "page_token=%C3%28", "", &list);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("query parameter page_token: not valid UTF-8"));
  EXPECT_TRUE(Transcoder::BuildRequest(m, "page_token=caf%C3%A9", "", &list).ok());
  EXPECT_EQ(list.page_token(), "caf\xC3\xA9");
  const RouteMatch get = Routes().Find("GET", "/v1/jobs/%ED%A0%80");  // A surrogate.
  v1::GetJobRequest g;
  EXPECT_THAT(std::string(Transcoder::BuildRequest(get, "", "", &g).message()),
              HasSubstr("path {job_id}: not valid UTF-8"));
  // A message with bytes that are not UTF-8 (a JSON parser quoting its
  // input, say) is escaped, not dropped.
  EXPECT_EQ(StatusJson(absl::InvalidArgumentError("bad \xff byte")),
            R"({"code":3,"message":"bad \\xff byte","details":[]})");
  const RouteMatch create = Routes().Find("POST", "/v1/jobs");
  v1::CreateJobRequest req;
  s = Transcoder::BuildRequest(create, "", "{\"name\":\"\xff\"}", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(StatusJson(s), "");
}

TEST(HttpTranscoderTest, ResponsesPrintProtoNamesAndEveryField) {
  v1::Job job;
  job.set_job_id("j1");
  job.mutable_schedule()->set_interval_seconds(60);
  const std::string json = ToJson(job);
  EXPECT_THAT(json, HasSubstr(R"("job_id":"j1")"));
  EXPECT_THAT(json, HasSubstr(R"("interval_seconds":"60")"));
  EXPECT_THAT(json, HasSubstr(R"("label":"")"));
}

// Fills every field of `m` (recursively, `depth` levels) with a value of
// its type; in each oneof the member `choice` picks (modulo its size).
// Repeated fields get two elements.
void FillAll(google::protobuf::Message* m, int depth, int choice,
             absl::string_view text) {
  using FD = google::protobuf::FieldDescriptor;
  const google::protobuf::Descriptor* d = m->GetDescriptor();
  const google::protobuf::Reflection* r = m->GetReflection();
  if (d == google::protobuf::Timestamp::descriptor()) {
    auto* ts = static_cast<google::protobuf::Timestamp*>(m);
    ts->set_seconds(1764979200 + choice * 3601);
    static constexpr int32_t kNanos[] = {0, 500000000, 123456000, 1, 999999999};
    ts->set_nanos(kNanos[choice % 5]);
    return;
  }
  if (d == google::protobuf::Duration::descriptor()) {
    auto* du = static_cast<google::protobuf::Duration*>(m);
    static constexpr int32_t kNanos[] = {0, 500000000, 123456000, 1, 999999999};
    const int sign = choice % 2 == 0 ? 1 : -1;  // Negative durations too.
    du->set_seconds(sign * (10 + choice * 61));
    du->set_nanos(sign * kNanos[choice % 5]);
    return;
  }
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* f = d->field(i);
    if (const auto* oneof = f->real_containing_oneof()) {
      if (oneof->field(choice % oneof->field_count()) != f) continue;
    }
    const int n = f->is_repeated() ? 2 : 1;
    for (int k = 0; k < n; ++k) {
      const int v = 7 + i + k + choice;
      switch (f->cpp_type()) {
        case FD::CPPTYPE_INT32:
          f->is_repeated() ? r->AddInt32(m, f, -v) : r->SetInt32(m, f, -v);
          break;
        case FD::CPPTYPE_INT64:
          f->is_repeated() ? r->AddInt64(m, f, int64_t{1} << 40 | v)
                           : r->SetInt64(m, f, int64_t{1} << 40 | v);
          break;
        case FD::CPPTYPE_UINT32:
          f->is_repeated() ? r->AddUInt32(m, f, v) : r->SetUInt32(m, f, v);
          break;
        case FD::CPPTYPE_UINT64:
          f->is_repeated() ? r->AddUInt64(m, f, v) : r->SetUInt64(m, f, v);
          break;
        case FD::CPPTYPE_BOOL:
          f->is_repeated() ? r->AddBool(m, f, v % 2 == 0) : r->SetBool(m, f, v % 2 == 0);
          break;
        case FD::CPPTYPE_ENUM: {
          const auto* e = f->enum_type();
          const int value = e->value((choice + 1) % e->value_count())->number();
          f->is_repeated() ? r->AddEnumValue(m, f, value) : r->SetEnumValue(m, f, value);
          break;
        }
        case FD::CPPTYPE_STRING: {
          const std::string value = absl::StrCat(f->name(), "-", k, text);
          f->is_repeated() ? r->AddString(m, f, value) : r->SetString(m, f, value);
          break;
        }
        case FD::CPPTYPE_MESSAGE:
          if (depth <= 0) break;
          if (f->message_type()->full_name() == "google.protobuf.Any") break;
          FillAll(f->is_repeated() ? r->AddMessage(m, f) : r->MutableMessage(m, f),
                  depth - 1, choice + k, text);
          break;
        default:
          break;
      }
    }
  }
}

TEST(HttpTranscoderTest, DirectJsonIsProtobufsJson) {
  // Each response message of the API (and the events and errors), empty,
  // and filled in every field with each oneof member in turn, printed
  // directly: byte for byte what protobuf's printer prints.
  const std::vector<const google::protobuf::Message*> prototypes = {
      &v1::Job::default_instance(),
      &v1::JobEvent::default_instance(),
      &v1::ListJobsResponse::default_instance(),
      &v1::WatchJobsResponse::default_instance(),
      &v1::JobResult::default_instance(),
      &v1::WhoAmIResponse::default_instance(),
      &google::rpc::Status::default_instance(),
  };
  for (const google::protobuf::Message* prototype : prototypes) {
    for (int choice = -1; choice < 5; ++choice) {
      for (absl::string_view text : {"", " a \"quoted\" \\ b/{x}:y"}) {
        std::unique_ptr<google::protobuf::Message> m(prototype->New());
        if (choice >= 0) FillAll(m.get(), 4, choice, text);
        std::string direct;
        EXPECT_TRUE(ToJsonDirect(*m, &direct))
            << m->GetTypeName() << " choice " << choice << " left to protobuf";
        EXPECT_EQ(direct, ToJsonByProtobuf(*m))
            << m->GetTypeName() << " choice " << choice;
        EXPECT_EQ(ToJson(*m), ToJsonByProtobuf(*m));
      }
    }
  }
}

TEST(HttpTranscoderTest, JsonEscapesBeyondQuotesAreProtobufs) {
  // Text protobuf escapes its own way (controls, non-ASCII, HTML-unsafe
  // characters) is printed by protobuf's printer: the same bytes as before.
  for (const char* text : {"line\nbreak", "tab\there", "caf\xc3\xa9", "<b>&'='",
                           "bad \xff byte", "\x01\x1f\x7f"}) {
    v1::Job job;
    job.set_job_id("j1");
    job.set_name(text);
    std::string direct;
    EXPECT_FALSE(ToJsonDirect(job, &direct)) << text;
    EXPECT_EQ(ToJson(job), ToJsonByProtobuf(job)) << text;
  }
}

}  // namespace
}  // namespace timer::api::http
