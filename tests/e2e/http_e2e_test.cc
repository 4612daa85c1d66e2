// The API as JSON over HTTP, against the installed timerd, with a real HTTP
// client on a socket: every route, each error shape, two identities kept
// apart, an idempotent create, a PATCH with update_mask, health endpoints,
// and hostile requests (malformed, oversized, deep, slow, too many
// connections) answered clearly while the server keeps serving.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli_fixture.h"
#include "sse_client.h"

namespace timer::testing {
namespace {

using nlohmann::json;

constexpr char kMissingJob[] = "00000000-0000-4000-8000-00000000abcd";

class HttpE2eTest : public CliTest {
 protected:
  // One request on its own connection; `token` empty: no Authorization.
  // Every method but GET says Content-Type: application/json unless
  // `extra_headers` names a Content-Type.
  HttpResponse Call(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& token = "-",
                    const std::string& extra_headers = "") {
    RawHttpConnection c(http_port_);
    EXPECT_TRUE(c.connected());
    std::string req =
        absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: localhost\r\n");
    const std::string& t = token == "-" ? token_ : token;
    if (!t.empty()) absl::StrAppend(&req, "Authorization: Bearer ", t, "\r\n");
    if (method != "GET" &&
        !absl::StrContains(absl::AsciiStrToLower(extra_headers), "content-type:")) {
      absl::StrAppend(&req, "Content-Type: application/json\r\n");
    }
    if (!body.empty()) absl::StrAppend(&req, "Content-Length: ", body.size(), "\r\n");
    absl::StrAppend(&req, extra_headers, "Connection: close\r\n\r\n", body);
    EXPECT_TRUE(c.Send(req));
    return c.ReadResponse();
  }

  json Ok(const HttpResponse& r) {
    EXPECT_EQ(r.code, 200) << r.body;
    EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type") : "",
              "application/json");
    json j = r.Json();
    EXPECT_FALSE(j.is_discarded()) << r.body;
    return j;
  }

  // The google.rpc.Status body of an error, checked for its shape.
  json Error(const HttpResponse& r, int http_code, int rpc_code) {
    EXPECT_EQ(r.code, http_code) << r.body;
    json j = r.Json();
    EXPECT_TRUE(j.is_object()) << r.body;
    if (!j.is_object()) return j;
    EXPECT_EQ(j.value("code", -1), rpc_code) << r.body;
    EXPECT_TRUE(j.contains("message")) << r.body;
    EXPECT_EQ(j.value("details", json()), json::array()) << r.body;
    return j;
  }

  static std::string JobBody(const std::string& name, int interval = 3600) {
    return json{{"name", name},
                {"schedule",
                 {{"interval_seconds", std::to_string(interval)},
                  {"start", "2030-01-01T00:00:00Z"}}},
                {"action", {{"provider", "noop"}, {"body", "{}"}}}}
        .dump();
  }
};

TEST_F(HttpE2eTest, EveryRouteAnswersAsTheCliPrints) {
  auto daemon = StartTimerdWithHttp();

  // Create, idempotently on request_id.
  json job = Ok(Call("POST", "/v1/jobs?request_id=req-1", JobBody("nightly")));
  const std::string id = job.value("job_id", "");
  ASSERT_FALSE(id.empty()) << job.dump();
  EXPECT_EQ(job["owner"], kIdentity);
  EXPECT_EQ(job["schedule"]["interval_seconds"], "3600");
  json again = Ok(Call("POST", "/v1/jobs?request_id=req-1", JobBody("nightly")));
  EXPECT_EQ(again["job_id"], id);
  Error(Call("POST", "/v1/jobs?request_id=req-1", JobBody("other")), 409, 6);

  // Read: as `timer --format json job status` prints it.
  json got = Ok(Call("GET", "/v1/jobs/" + id));
  EXPECT_EQ(got, CliJson({"job", "status", id}));
  json list = Ok(Call("GET", "/v1/jobs?page_size=10&view=JOB_VIEW_BASIC"));
  ASSERT_EQ(list["jobs"].size(), 1u) << list.dump();
  EXPECT_EQ(list["jobs"][0]["job_id"], id);
  EXPECT_EQ(list["next_page_token"], "");

  // PATCH with update_mask: only the named field changes.
  json patched = Ok(Call("PATCH", "/v1/jobs/" + id + "?update_mask=name",
                         R"({"name":"renamed","label":"ignored"})"));
  EXPECT_EQ(patched["name"], "renamed");
  EXPECT_EQ(patched["label"], "");
  EXPECT_EQ(Ok(Call("GET", "/v1/jobs/" + id))["name"], "renamed");

  EXPECT_EQ(Ok(Call("POST", "/v1/jobs/" + id + ":pause"))["status"], "PAUSED");
  EXPECT_NE(Ok(Call("POST", "/v1/jobs/" + id + ":resume", "{}"))["status"], "PAUSED");
  Ok(Call("POST", "/v1/jobs/" + id + ":run", R"({"request_id":"run-1"})"));
  json results;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  do {
    results = Ok(Call("GET", "/v1/jobs/" + id + "/results?page_size=5"));
    if (!results["results"].empty() && results["results"][0]["status"] != "ACTIVE" &&
        results["results"][0]["status"] != "PENDING") {
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));  // Polling the server's state.
  } while (absl::Now() < deadline);
  ASSERT_EQ(results["results"].size(), 1u) << results.dump();
  EXPECT_EQ(results["results"][0]["manual"], true);

  json preview = Ok(Call("GET", "/v1/jobs/" + id + ":preview?count=3"));
  EXPECT_EQ(preview["entries"].size(), 3u) << preview.dump();
  json preview2 =
      Ok(Call("POST", "/v1/schedules:preview",
              R"({"schedule":{"cron":"0 3 * * *","time_zone":"UTC"},"count":2})"));
  EXPECT_EQ(preview2["entries"].size(), 2u) << preview2.dump();
  // BackfillJob answers as over gRPC: a range before the job's start (2030)
  // holds no slot, so nothing runs.
  json backfill = Ok(
      Call("POST", "/v1/jobs/" + id + ":backfill",
           R"({"start_time":"2026-01-01T00:00:00Z","end_time":"2026-01-02T00:00:00Z"})"));
  EXPECT_EQ(backfill["job"]["job_id"], id) << backfill.dump();
  EXPECT_TRUE(backfill.value("results", json::array()).empty()) << backfill.dump();

  json providers = Ok(Call("GET", "/v1/providers"));
  bool has_noop = false;
  for (const json& p : providers["action_providers"]) has_noop |= p["name"] == "noop";
  EXPECT_TRUE(has_noop) << providers.dump();
  EXPECT_EQ(Ok(Call("GET", "/v1/providers/noop"))["name"], "noop");

  json session = Ok(Call("GET", "/v1/session"));
  EXPECT_EQ(session["identity"], kIdentity);
  EXPECT_EQ(session["auth_method"], "token");

  json deleted = Ok(Call("DELETE", "/v1/jobs/" + id));
  EXPECT_EQ(deleted["status"], "DELETED");
  Error(Call("GET", "/v1/jobs/" + id), 404, 5);
  EXPECT_EQ(Ok(Call("GET", "/v1/jobs/" + id + "?show_deleted=true"))["status"],
            "DELETED");

  // A token revoked through HTTP stops working at once, on both protocols.
  const std::string other = IssueToken("revoker@example.org");
  Ok(Call("POST", "/v1/session:revoke", "", other));
  Error(Call("GET", "/v1/session", "", other), 401, 16);
  EXPECT_NE(CliAs(other, {"whoami"}).exit_code, 0);
}

TEST_F(HttpE2eTest, EachErrorHasTheGoogleRpcStatusShape) {
  auto daemon = StartTimerdWithHttp();
  json e = Error(Call("GET", std::string("/v1/jobs/") + kMissingJob), 404, 5);
  EXPECT_TRUE(absl::StrContains(e.value("message", ""), kMissingJob)) << e.dump();

  e = Error(Call("POST", "/v1/jobs", JobBody("bad", 0)), 400, 3);
  EXPECT_TRUE(absl::StartsWith(e.value("message", ""), "job.schedule.interval_seconds"))
      << e.dump();
  e = Error(Call("GET", "/v1/jobs?colour=red"), 400, 3);
  EXPECT_TRUE(absl::StrContains(e.value("message", ""), "query parameter colour"))
      << e.dump();
  e = Error(Call("POST", "/v1/jobs", R"({"nmae":"x"})"), 400, 3);
  EXPECT_TRUE(absl::StrContains(e.value("message", ""), "nmae")) << e.dump();

  HttpResponse r = Call("GET", "/v1/jobs", "", "");
  Error(r, 401, 16);
  EXPECT_EQ(r.headers["www-authenticate"], "Bearer");
  Error(Call("GET", "/v1/jobs", "", "tmr_not_a_token"), 401, 16);

  r = Call("PUT", "/v1/jobs/x");
  Error(r, 405, 3);
  EXPECT_EQ(r.headers["allow"], "GET, PATCH, DELETE");
  Error(Call("GET", "/v2/nothing"), 404, 5);
  // A watch stream that cannot open answers as any call (not as a stream).
  Error(Call("GET", std::string("/v1/jobs/") + kMissingJob + ":watch"), 404, 5);
  Error(Call("GET", "/v1/jobs/x:watch"), 400, 3);
}

TEST_F(HttpE2eTest, TwoIdentitiesSeeOnlyTheirOwnJobs) {
  auto daemon = StartTimerdWithHttp();
  const std::string bob = IssueToken("bob@example.org");
  const std::string id = Ok(Call("POST", "/v1/jobs", JobBody("alices")))["job_id"];
  Error(Call("GET", "/v1/jobs/" + id, "", bob), 404, 5);
  Error(Call("DELETE", "/v1/jobs/" + id, "", bob), 404, 5);
  Error(Call("PATCH", "/v1/jobs/" + id + "?update_mask=name", R"({"name":"x"})", bob),
        404, 5);
  EXPECT_TRUE(Ok(Call("GET", "/v1/jobs", "", bob))["jobs"].empty());
  EXPECT_EQ(Ok(Call("GET", "/v1/session", "", bob))["identity"], "bob@example.org");
  // The job the CLI sees as its owner is the one HTTP made.
  EXPECT_EQ(CliJson({"job", "status", id})["name"], "alices");
}

TEST_F(HttpE2eTest, HealthAndMetricsAreOpenAndSayNothingElse) {
  auto daemon = StartTimerdWithHttp();
  HttpResponse r = Call("GET", "/healthz", "", "");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.body, "ok\n");
  r = Call("GET", "/readyz", "", "");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.body, "ready\n");
  r = Call("GET", "/metrics", "", "");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  r = Call("POST", "/healthz", "", "");
  EXPECT_EQ(r.code, 405);
  EXPECT_EQ(r.headers["allow"], "GET, HEAD");
}

// HEAD (uptime monitors, `curl -I`) on the open routes and the web view: the
// head a GET gets, its Content-Length included, and not a byte of body.
// Not on the API (405 naming GET), as grpc-gateway maps none.
TEST_F(HttpE2eTest, HeadGetsTheHeadOfAGetAndNoBody) {
  auto daemon = StartTimerdWithHttp();
  for (const char* path : {"/healthz", "/readyz", "/metrics", "/", "/assets/app.js"}) {
    const HttpResponse get = Call("GET", path, "", "");
    ASSERT_EQ(get.code, 200) << path;
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(
        c.Send(absl::StrCat("HEAD ", path, " HTTP/1.1\r\nHost: localhost\r\n\r\n")));
    ASSERT_EQ(c.ReadHead(), 200) << path;
    const std::string head = absl::AsciiStrToLower(c.head());
    EXPECT_TRUE(
        absl::StrContains(head, "content-type: " + get.headers.at("content-type")))
        << path << ": " << c.head();
    if (std::string(path) != "/metrics") {  // Its body changes between scrapes.
      EXPECT_TRUE(
          absl::StrContains(head, absl::StrCat("content-length: ", get.body.size())))
          << path << ": " << c.head();
    }
    // An unauthenticated connection is closed after its answer: whatever
    // follows the head would be a body.
    std::string rest;
    EXPECT_TRUE(c.ReadToEnd(&rest, absl::Seconds(10))) << path;
    EXPECT_EQ(rest, "") << path;
  }
  RawHttpConnection c(http_port_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("HEAD /v1/jobs HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  ASSERT_EQ(c.ReadHead(), 405);
  EXPECT_TRUE(
      absl::StrContains(absl::AsciiStrToLower(c.head()), "\r\nallow: post, get\r\n"))
      << c.head();
  std::string rest;
  EXPECT_TRUE(c.ReadToEnd(&rest, absl::Seconds(10)));
  EXPECT_EQ(rest, "");
}

TEST_F(HttpE2eTest, KeepAliveServesOneRequestAfterAnother) {
  auto daemon = StartTimerdWithHttp();
  RawHttpConnection c(http_port_);
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        c.Send(absl::StrCat("GET /v1/session HTTP/1.1\r\nHost: x\r\nAuthorization: "
                            "Bearer ",
                            token_, "\r\n\r\n")));
    HttpResponse r = c.ReadResponse();
    EXPECT_EQ(r.code, 200) << i;
  }
  // Two at once on one connection: answered in order, one at a time.
  const std::string req =
      absl::StrCat("GET /v1/session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ",
                   token_, "\r\n\r\n");
  ASSERT_TRUE(c.Send(req + req));
  EXPECT_EQ(c.ReadResponse().code, 200);
  EXPECT_EQ(c.ReadResponse().code, 200);

  // SIGTERM with this connection open and idle, and another halfway through
  // its headers: timerd still stops cleanly, and soon.
  RawHttpConnection half(http_port_);
  ASSERT_TRUE(half.Send("GET /v1/jobs HTTP/1.1\r\nHost: x\r\n"));
  const absl::Time start = absl::Now();
  EXPECT_EQ(daemon->Stop(SIGTERM), 0) << daemon->log();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  std::string rest;
  EXPECT_TRUE(c.ReadToEnd(&rest, absl::Seconds(5)));  // Closed.
}

TEST_F(HttpE2eTest, HostileRequestsGetClearErrorsAndTheServerKeepsServing) {
  auto daemon = StartTimerdWithHttp(
      "http_header_timeout_ms = 1000\n"
      "http_max_connections_per_peer = 8\n"
      "max_message_bytes = 65536\n");
  const auto still_serving = [&] {
    HttpResponse r = Call("GET", "/v1/session");
    EXPECT_EQ(r.code, 200) << r.body;
  };

  {  // A malformed request line.
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.Send("THIS IS NOT HTTP\r\n\r\n"));
    HttpResponse r = c.ReadResponse();
    Error(r, 400, 3);
    std::string rest;
    EXPECT_TRUE(c.ReadToEnd(&rest, absl::Seconds(5)));  // Then closed.
  }
  still_serving();

  {  // Headers over 16 KiB.
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.Send(absl::StrCat("GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: ",
                                    std::string(20000, 'a'), "\r\n\r\n")));
    Error(c.ReadResponse(), 431, 3);
  }
  still_serving();

  {  // A body over max_message_bytes, refused from its Content-Length.
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(
        c.Send(absl::StrCat("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: "
                            "Bearer ",
                            token_, "\r\nContent-Length: 8388608\r\n\r\n{\"name\":")));
    json e = Error(c.ReadResponse(), 413, 3);
    EXPECT_TRUE(absl::StrContains(e.value("message", ""), "body: over 65536 bytes"));
  }
  {  // The same, chunked: refused when the limit is crossed.
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.Send(absl::StrCat(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ", token_,
        "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        "10000\r\n", std::string(0x10000, ' '), "\r\n10\r\n", std::string(16, ' '),
        "\r\n0\r\n\r\n")));
    Error(c.ReadResponse(), 413, 3);
  }
  {  // Unauthenticated: refused before its body is read, and closed.
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(
        c.Send("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n{"));
    Error(c.ReadResponse(), 401, 16);
    std::string rest;
    EXPECT_TRUE(c.ReadToEnd(&rest, absl::Seconds(5)));
  }
  still_serving();

  // Deep JSON.
  json e =
      Error(Call("POST", "/v1/jobs",
                 "{\"name\":" + std::string(5000, '[') + std::string(5000, ']') + "}"),
            400, 3);
  EXPECT_TRUE(absl::StrContains(e.value("message", ""), "nested deeper than"))
      << e.dump();
  // Malformed escapes and JSON.
  Error(Call("GET", "/v1/jobs?page_token=%zz"), 400, 3);
  Error(Call("POST", "/v1/jobs", "{\"name\":"), 400, 3);
  still_serving();

  {  // A slow client: half a header, then nothing. Closed after the timeout.
    RawHttpConnection slow(http_port_);
    ASSERT_TRUE(slow.Send("GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthor"));
    still_serving();  // Meanwhile, others are served.
    std::string rest;
    const absl::Time start = absl::Now();
    EXPECT_TRUE(slow.ReadToEnd(&rest, absl::Seconds(10)));
    EXPECT_LT(absl::Now() - start, absl::Seconds(10));
    EXPECT_EQ(rest, "");
  }
  still_serving();

  {  // Too many connections from one peer: beyond 8, closed at once.
    std::vector<std::unique_ptr<RawHttpConnection>> held;
    for (int i = 0; i < 12; ++i) {
      held.push_back(std::make_unique<RawHttpConnection>(http_port_));
      if (held.back()->connected()) {
        held.back()->Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
      }
    }
    int answered = 0, closed = 0;
    for (auto& c : held) {
      if (!c->connected()) {
        ++closed;
        continue;
      }
      HttpResponse r = c->ReadResponse(absl::Seconds(5));
      if (r.code == 200) {
        ++answered;
      } else {
        EXPECT_EQ(r.code, 0);  // Closed without an answer.
        ++closed;
      }
    }
    EXPECT_GE(answered, 1);
    EXPECT_LE(answered, 8);
    EXPECT_GE(closed, 4);
  }
  // Once they closed, the peer is served again.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  HttpResponse r;
  do {
    r = Call("GET", "/healthz", "", "");
    if (r.code == 200) break;
    absl::SleepFor(absl::Milliseconds(20));  // Until the server saw them close.
  } while (absl::Now() < deadline);
  EXPECT_EQ(r.code, 200);
}

TEST_F(HttpE2eTest, ATransferEncodingNotEndingInChunkedIsRefused) {
  auto daemon = StartTimerdWithHttp();
  // Read as no body, the rest would be a second request (smuggling).
  for (const std::string coding : {"gzip", "chunked, gzip", "identity"}) {
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.Send(absl::StrCat(
        "POST /v1/schedules:preview HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ",
        token_, "\r\nContent-Type: application/json\r\nTransfer-Encoding: ", coding,
        "\r\n\r\nGET /v1/session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ", token_,
        "\r\n\r\n")));
    json e = Error(c.ReadResponse(), 400, 3);
    EXPECT_TRUE(absl::StrContains(e.value("message", ""), "Transfer-Encoding"))
        << e.dump();
    std::string rest;
    EXPECT_TRUE(c.ReadToEnd(&rest, absl::Seconds(5))) << coding;  // Then closed,
    EXPECT_EQ(rest, "") << coding;  // the second request unanswered.
  }
  // Chunked, last, is read.
  RawHttpConnection c(http_port_);
  const std::string body =
      R"({"schedule":{"cron":"0 3 * * *","time_zone":"UTC"},"count":2})";
  ASSERT_TRUE(c.Send(absl::StrCat(
      "POST /v1/schedules:preview HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ", token_,
      "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
      absl::Hex(body.size()), "\r\n", body, "\r\n0\r\n\r\n")));
  EXPECT_EQ(Ok(c.ReadResponse())["entries"].size(), 2u);
}

TEST_F(HttpE2eTest, WritesTakeOnlyJsonContentType) {
  auto daemon = StartTimerdWithHttp();
  const std::string id = Ok(Call("POST", "/v1/jobs", JobBody("typed")))["job_id"];
  // What a cross-site form sends: refused, named, and closed.
  for (const std::string type :
       {"text/plain", "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x", "application/json; charset=latin1",
        "application/jsonx"}) {
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.Send(absl::StrCat(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ", token_,
        "\r\nContent-Type: ", type, "\r\nContent-Length: 2\r\n\r\n{}")));
    json e = Error(c.ReadResponse(), 415, 3);
    EXPECT_TRUE(absl::StartsWith(e.value("message", ""),
                                 "Content-Type: must be application/json"))
        << e.dump();
    std::string rest;
    EXPECT_TRUE(c.ReadToEnd(&rest, absl::Seconds(5))) << type;
  }
  {  // No Content-Type, no body: refused too.
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.Send(absl::StrCat("DELETE /v1/jobs/", id,
                                    " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ",
                                    token_, "\r\n\r\n")));
    Error(c.ReadResponse(), 415, 3);
  }
  EXPECT_NE(Ok(Call("GET", "/v1/jobs/" + id))["status"], "DELETED");  // Untouched.
  // A charset parameter of UTF-8 is fine, in any case, quoted or not.
  EXPECT_EQ(Ok(Call("POST", "/v1/jobs/" + id + ":pause", "", "-",
                    "Content-Type: application/json; charset=UTF-8\r\n"))["status"],
            "PAUSED");
  Ok(Call("POST", "/v1/jobs/" + id + ":resume", "", "-",
          "Content-Type: Application/JSON;charset=\"utf-8\"\r\n"));
  // GET needs none.
  Ok(Call("GET", "/v1/jobs/" + id));
}

TEST_F(HttpE2eTest, OpenRoutesCloseConnectionsThatNeverAuthenticated) {
  auto daemon = StartTimerdWithHttp();
  for (const std::string path : {"/healthz", "/readyz", "/metrics"}) {
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.Send(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: x\r\n\r\n")));
    HttpResponse r = c.ReadResponse();
    EXPECT_EQ(r.code, 200) << path;
    EXPECT_EQ(r.headers["connection"], "close") << path;
    std::string rest;
    EXPECT_TRUE(c.ReadToEnd(&rest, absl::Seconds(5))) << path;  // Slot freed.
  }
  // Once authenticated, a connection stays open across them.
  RawHttpConnection c(http_port_);
  ASSERT_TRUE(
      c.Send(absl::StrCat("GET /v1/session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ",
                          token_, "\r\n\r\n")));
  EXPECT_EQ(c.ReadResponse().code, 200);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    HttpResponse r = c.ReadResponse();
    EXPECT_EQ(r.code, 200) << i;
    EXPECT_NE(r.headers["connection"], "close") << i;
  }
}

TEST_F(HttpE2eTest, BodiesHeldAtOnceAreBoundedPerIdentity) {
  // max_message_bytes 4 MiB: bodies held at once 64 MiB in all, 16 MiB (four
  // bodies of the largest size) by one identity.
  auto daemon = StartTimerdWithHttp();
  constexpr size_t kBody = 4 << 20;
  const std::string head = absl::StrCat(
      "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: ",
      kBody, "\r\nExpect: 100-continue\r\n");
  // Four of this identity's bodies reserved (each told 100 Continue, which
  // timerd sends once the body is reserved) and never sent.
  std::vector<std::unique_ptr<RawHttpConnection>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<RawHttpConnection>(http_port_));
    ASSERT_TRUE(held.back()->Send(
        absl::StrCat(head, "Authorization: Bearer ", token_, "\r\n\r\n")));
    EXPECT_EQ(held.back()->ReadResponse().code, 100) << i;
  }
  // A fifth of the same identity is over its share: 429 naming the limit.
  {
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.Send(absl::StrCat(head, "Authorization: Bearer ", token_, "\r\n\r\n")));
    json j = Error(c.ReadResponse(), 429, 8);
    EXPECT_TRUE(
        absl::StrContains(j.value("message", ""), "by one identity: over 16777216"))
        << j.dump();
  }
  // Another identity still gets through, body and all.
  const std::string other = IssueToken("other@example.org");
  json created = Ok(Call("POST", "/v1/jobs", JobBody("other's"), other));
  EXPECT_FALSE(created.value("job_id", "").empty()) << created.dump();
  {
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.Send(absl::StrCat(head, "Authorization: Bearer ", other, "\r\n\r\n")));
    EXPECT_EQ(c.ReadResponse().code, 100);
  }
  // One of the first identity's connections closed: its share frees, and
  // its next body is taken (awaited: the server frees it when it sees the
  // close).
  held.pop_back();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int code = 0;
  while (absl::Now() < deadline) {
    RawHttpConnection c(http_port_);
    ASSERT_TRUE(c.Send(absl::StrCat(head, "Authorization: Bearer ", token_, "\r\n\r\n")));
    code = c.ReadResponse().code;
    if (code == 100) break;
    absl::SleepFor(absl::Milliseconds(50));  // Polling the server's state.
  }
  EXPECT_EQ(code, 100);
}

TEST_F(HttpE2eTest, AChunkExtensionCannotGrowTheReadBuffer) {
  auto daemon = StartTimerdWithHttp();
  {
    RawHttpConnection c(http_port_);
    // 100 KiB of chunk extension: over http_max_header_bytes + 64 KiB.
    ASSERT_TRUE(c.Send(absl::StrCat(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ", token_,
        "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2;",
        std::string(100 << 10, 'a'))));
    Error(c.ReadResponse(), 400, 3);
    std::string rest;
    EXPECT_TRUE(c.ReadToEnd(&rest, absl::Seconds(5)));
  }
  EXPECT_EQ(Call("GET", "/v1/session").code, 200);  // Still serving.
}

TEST_F(HttpE2eTest, MetricsAreRenderedAtMostOnceASecond) {
  auto daemon = StartTimerdWithHttp();
  // Each scrape is counted (timer_http_requests_total), so a fresh render
  // differs from the last; within 1 s at most one new render is seen. A
  // slow machine may stretch the five scrapes over a second: tried again.
  bool within = false;
  for (int attempt = 0; attempt < 5 && !within; ++attempt) {
    const absl::Time start = absl::Now();
    std::set<std::string> bodies;
    for (int i = 0; i < 5; ++i) {
      HttpResponse r = Call("GET", "/metrics", "", "");
      ASSERT_EQ(r.code, 200);
      bodies.insert(r.body);
    }
    if (absl::Now() - start >= absl::Milliseconds(900)) continue;
    within = true;
    EXPECT_LE(bodies.size(), 2u);
  }
  EXPECT_TRUE(within) << "five scrapes never took under 0.9 s";
}

// Runs `openssl ARGS...` in the test directory.
void Openssl(std::vector<std::string> args) {
  args.insert(args.begin(), "/usr/bin/openssl");
  RunResult r = Run(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(HttpE2eTest, TlsAndClientCertificatesAsOverGrpc) {
  const std::string d = tmp_.path();
  Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-keyout", d + "/ca.key", "-out", d + "/ca.crt", "-days", "1",
           "-subj", "/CN=ca"});
  const auto make = [&](const std::string& name, const std::string& subject,
                        const std::string& ext) {
    std::ofstream(d + "/" + name + ".ext") << ext << "\n";
    Openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", d + "/" + name + ".key", "-out", d + "/" + name + ".csr", "-subj",
             subject});
    Openssl({"x509", "-req", "-in", d + "/" + name + ".csr", "-CA", d + "/ca.crt",
             "-CAkey", d + "/ca.key", "-CAcreateserial", "-out", d + "/" + name + ".crt",
             "-days", "1", "-extfile", d + "/" + name + ".ext"});
  };
  make("server", "/CN=localhost",
       "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth");
  make("client", "/O=Example/CN=backup", "extendedKeyUsage=clientAuth");
  auto daemon = StartTimerdWithHttp(
      absl::StrCat("tls_cert = \"", d, "/server.crt\"\ntls_key = \"", d,
                   "/server.key\"\ntls_client_ca = \"", d, "/ca.crt\"\n"),
      {}, "https");
  const std::string url = absl::StrCat("https://127.0.0.1:", http_port_, "/v1/session");
  const auto curl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {
        "/usr/bin/curl", "-sS",         "--max-time", "20",
        "--cacert",      d + "/ca.crt", "-w",         "\n%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(url);
    return timer::testing::Run(argv);
  };
  // A bearer token over TLS.
  RunResult r = curl({"-H", "Authorization: Bearer " + token_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "\"identity\":\"e2e@example.org\"")) << r.out;
  EXPECT_TRUE(absl::EndsWith(r.out, "\n200")) << r.out;
  // A client certificate the CA signed: its subject is the identity.
  r = curl({"--cert", d + "/client.crt", "--key", d + "/client.key"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "\"identity\":\"CN=backup,O=Example\"")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\"auth_method\":\"mtls\"")) << r.out;
  // Neither: 401.
  r = curl({});
  EXPECT_TRUE(absl::EndsWith(r.out, "\n401")) << r.out << r.err;
  // A session resumed with the client certificate (a session id context).
  const auto s_client = [&](const std::string& sess_flag) {
    return RunWithInput(
        {"/usr/bin/openssl", "s_client", "-connect",
         absl::StrCat("127.0.0.1:", http_port_), "-CAfile", d + "/ca.crt", "-cert",
         d + "/client.crt", "-key", d + "/client.key", sess_flag, d + "/session.pem",
         "-ign_eof"},
        {}, "GET /v1/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        absl::Seconds(20));
  };
  r = s_client("-sess_out");
  EXPECT_TRUE(absl::StrContains(r.out, "CN=backup,O=Example")) << r.out << r.err;
  r = s_client("-sess_in");
  EXPECT_TRUE(absl::StrContains(r.out, "Reused,")) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "CN=backup,O=Example")) << r.out << r.err;
  // Plaintext to the TLS port gets no answer.
  HttpResponse plain = Call("GET", "/healthz", "", "");
  EXPECT_EQ(plain.code, 0);
}

TEST_F(HttpE2eTest, AnHttpListenOffLoopbackOrInUseStopsTheStart) {
  token_ = IssueToken(kIdentity);
  const std::string path = tmp_.path() + "/remote.toml";
  const auto start = [&](const std::string& http_listen) {
    std::ofstream(path) << "http_listen = \"" << http_listen << "\"\n";
    return timer::testing::Run(
        {timerd_, "--listen", "127.0.0.1:0", "--data-dir", data_dir_, "--config", path},
        {}, absl::Seconds(20));
  };
  RunResult r = start("0.0.0.0:0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(
      absl::StrContains(r.err, "http_listen: 0.0.0.0:0 is not a loopback address"))
      << r.err;

  // A port another socket listens on.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string taken = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  r = start(taken);
  ::close(fd);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(
      absl::StrContains(r.err, "http_listen: " + taken + ": address already in use"))
      << r.err;
}

}  // namespace
}  // namespace timer::testing
