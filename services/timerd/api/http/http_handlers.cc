#include "api/http/http_handlers.h"

#include <google/protobuf/message.h>
#include <spdlog/spdlog.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "timer/v1/session.pb.h"
#include "timer/v1/timer.pb.h"
#include "util/escape.h"

namespace timer::api::http {
namespace {

using google::protobuf::Message;
using Reply = HttpHandlers::Reply;

// Adapts a domain result to the reply.
template <typename Response>
auto Answer(Reply reply) {
  return [reply = std::move(reply)](absl::StatusOr<Response> result) mutable {
    if (!result.ok()) {
      std::move(reply)(result.status());
    } else {
      std::move(reply)(std::make_unique<Response>(*std::move(result)));
    }
  };
}

const google::protobuf::MethodDescriptor* MethodOf(
    const google::protobuf::ServiceDescriptor* service, const char* name) {
  return service->FindMethodByName(name);
}

}  // namespace

HttpHandlers::HttpHandlers(domain::JobService* jobs, const auth::Authenticator* auth,
                           domain::WatchStarter* watches)
    : jobs_(jobs), auth_(auth), watches_(watches) {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* timer = pool->FindServiceByName("timer.v1.TimerService");
  const auto* session = pool->FindServiceByName("timer.v1.SessionService");
  domain::JobService* const j = jobs_;
  const auth::Authenticator* const a = auth_;
  // Each as its gRPC handler in api/timer_service.cc: the same domain call
  // with the caller's identity.
  const auto unary = [&](const char* name, auto call) {
    handlers_[MethodOf(timer, name)] = std::move(call);
  };
  unary("CreateJob", [j](const auth::Principal& p, const Message& m, Reply r) {
    j->CreateJob(p.identity, static_cast<const v1::CreateJobRequest&>(m),
                 Answer<v1::Job>(std::move(r)));
  });
  unary("GetJob", [j](const auth::Principal& p, const Message& m, Reply r) {
    Answer<v1::Job>(std::move(r))(
        j->GetJob(p.identity, static_cast<const v1::GetJobRequest&>(m)));
  });
  unary("ListJobs", [j](const auth::Principal& p, const Message& m, Reply r) {
    Answer<v1::ListJobsResponse>(std::move(r))(
        j->ListJobs(p.identity, static_cast<const v1::ListJobsRequest&>(m)));
  });
  unary("UpdateJob", [j](const auth::Principal& p, const Message& m, Reply r) {
    j->UpdateJob(p.identity, static_cast<const v1::UpdateJobRequest&>(m),
                 Answer<v1::Job>(std::move(r)));
  });
  unary("DeleteJob", [j](const auth::Principal& p, const Message& m, Reply r) {
    j->DeleteJob(p.identity, static_cast<const v1::DeleteJobRequest&>(m),
                 Answer<v1::Job>(std::move(r)));
  });
  unary("PauseJob", [j](const auth::Principal& p, const Message& m, Reply r) {
    j->PauseJob(p.identity, static_cast<const v1::PauseJobRequest&>(m),
                Answer<v1::Job>(std::move(r)));
  });
  unary("ResumeJob", [j](const auth::Principal& p, const Message& m, Reply r) {
    j->ResumeJob(p.identity, static_cast<const v1::ResumeJobRequest&>(m),
                 Answer<v1::Job>(std::move(r)));
  });
  unary("RunJobNow", [j](const auth::Principal& p, const Message& m, Reply r) {
    j->RunJobNow(p.identity, static_cast<const v1::RunJobNowRequest&>(m),
                 Answer<v1::Job>(std::move(r)));
  });
  unary("ListJobResults", [j](const auth::Principal& p, const Message& m, Reply r) {
    Answer<v1::ListJobResultsResponse>(std::move(r))(
        j->ListJobResults(p.identity, static_cast<const v1::ListJobResultsRequest&>(m)));
  });
  unary("PreviewSchedule", [j](const auth::Principal& p, const Message& m, Reply r) {
    Answer<v1::PreviewScheduleResponse>(std::move(r))(j->PreviewSchedule(
        p.identity, static_cast<const v1::PreviewScheduleRequest&>(m)));
  });
  unary("BackfillJob", [j](const auth::Principal& p, const Message& m, Reply r) {
    j->BackfillJob(p.identity, static_cast<const v1::BackfillJobRequest&>(m),
                   Answer<v1::BackfillJobResponse>(std::move(r)));
  });
  unary("ListActionProviders", [j](const auth::Principal&, const Message& m, Reply r) {
    Answer<v1::ListActionProvidersResponse>(std::move(r))(
        j->ListActionProviders(static_cast<const v1::ListActionProvidersRequest&>(m)));
  });
  unary("GetActionProvider", [j](const auth::Principal& p, const Message& m, Reply r) {
    Answer<v1::ActionProvider>(std::move(r))(j->GetActionProvider(
        p.identity, static_cast<const v1::GetActionProviderRequest&>(m)));
  });
  // As api/session_service.cc.
  handlers_[MethodOf(session, "WhoAmI")] = [](const auth::Principal& p, const Message&,
                                              Reply r) {
    auto response = std::make_unique<v1::WhoAmIResponse>();
    response->set_identity(p.identity.name);
    response->set_auth_method(p.identity.auth_method);
    if (p.expire_time) {
      const int64_t us = absl::ToUnixMicros(*p.expire_time);
      response->mutable_expire_time()->set_seconds(us / 1000000);
      response->mutable_expire_time()->set_nanos(static_cast<int32_t>(us % 1000000) *
                                                 1000);
    }
    std::move(r)(std::move(response));
  };
  handlers_[MethodOf(session, "RevokeSession")] = [a](const auth::Principal& p,
                                                      const Message&, Reply r) {
    absl::Status revoked = a->Revoke(p);
    if (!revoked.ok()) {
      std::move(r)(revoked);
      return;
    }
    spdlog::info("token {} of {} revoked by its holder (HTTP)", p.token_id,
                 util::Escaped(p.identity.name));
    std::move(r)(std::make_unique<v1::RevokeSessionResponse>());
  };
}

absl::StatusOr<auth::Principal> HttpHandlers::Authenticate(
    const auth::Credentials& credentials) const {
  absl::StatusOr<auth::Principal> principal = auth_->Authenticate(credentials);
  if (!principal.ok()) {
    // The reason, never the credential.
    spdlog::debug("HTTP request refused: {}",
                  util::Escaped(principal.status().message()));
  }
  return principal;
}

std::unique_ptr<Message> HttpHandlers::NewRequest(
    const google::protobuf::MethodDescriptor* method) {
  const Message* prototype =
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(
          method->input_type());
  return std::unique_ptr<Message>(prototype->New());
}

void HttpHandlers::Call(const google::protobuf::MethodDescriptor* method,
                        const auth::Principal& caller, std::unique_ptr<Message> request,
                        Reply reply) const {
  if (method->server_streaming()) {
    std::move(reply)(absl::UnimplementedError(
        absl::StrCat(method->name(), " over HTTP: a server-sent event stream")));
    return;
  }
  auto it = handlers_.find(method);
  if (it == handlers_.end()) {
    std::move(reply)(absl::UnimplementedError(
        absl::StrCat(method->full_name(), ": not served over HTTP")));
    return;
  }
  // The request lives until the reply, as a gRPC request lives until its
  // reactor finishes: a write may read it from the commit thread.
  std::shared_ptr<const Message> owned(std::move(request));
  const Message& ref = *owned;
  it->second(caller, ref,
             [owned, reply = std::move(reply)](
                 absl::StatusOr<std::unique_ptr<Message>> result) mutable {
               std::move(reply)(std::move(result));
             });
}

absl::StatusOr<HttpHandlers::Watch> HttpHandlers::OpenWatch(
    const google::protobuf::MethodDescriptor* method, const auth::Principal& caller,
    const Message& request, std::optional<int64_t> last_event_id,
    absl::AnyInvocable<void()> on_ready) const {
  if (watches_ == nullptr || !method->server_streaming()) {
    return absl::UnimplementedError(
        absl::StrCat(method->full_name(), ": not served as a stream over HTTP"));
  }
  // As api/watch.cc's OpenWatchJob / OpenWatchJobs.
  absl::StatusOr<domain::WatchFilter> filter;
  int64_t since = 0;
  if (const auto* one = dynamic_cast<const v1::WatchJobRequest*>(&request)) {
    filter = jobs_->WatchJobFilter(caller.identity, *one);
    since = one->since();
  } else if (const auto* all = dynamic_cast<const v1::WatchJobsRequest*>(&request)) {
    filter = jobs_->WatchJobsFilter(caller.identity, *all);
    since = all->since();
  } else {
    return absl::UnimplementedError(
        absl::StrCat(method->full_name(), ": not served as a stream over HTTP"));
  }
  if (!filter.ok()) return filter.status();
  Watch watch;
  watch.end_on_delete = !filter->job_id.empty();
  watch.feed = watches_->Open(*std::move(filter), last_event_id.value_or(since),
                              std::move(on_ready));
  return watch;
}

}  // namespace timer::api::http
