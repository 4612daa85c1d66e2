#include "api/timer_service.h"

#include <string>
#include <utility>

#include "api/caller.h"
#include "api/status.h"
#include "api/watch.h"
#include "util/metrics.h"

namespace timer::api {
namespace {

// Finishes `ctx`'s reactor with `result`, copying a value into `response`,
// and counts the call (`method`: the RPC's short name, a literal).
template <typename T>
auto FinishWith(grpc::ServerUnaryReactor* reactor, T* response, std::string_view method) {
  return [reactor, response, method](absl::StatusOr<T> result) {
    metrics::CountGrpcRequest(method, result.status().code());
    if (result.ok()) *response = *std::move(result);
    reactor->Finish(ToGrpcStatus(result.status()));
  };
}

}  // namespace

std::optional<domain::Identity> TimerServiceImpl::Caller(
    grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor,
    std::string_view method) const {
  absl::StatusOr<auth::Principal> principal = CallerOf(*auth_, ctx, peers_);
  if (!principal.ok()) {
    metrics::CountGrpcRequest(method, principal.status().code());
    reactor->Finish(ToGrpcStatus(principal.status()));
    return std::nullopt;
  }
  return principal->identity;
}

grpc::ServerUnaryReactor* TimerServiceImpl::CreateJob(grpc::CallbackServerContext* ctx,
                                                      const v1::CreateJobRequest* request,
                                                      v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "CreateJob");
  if (!caller) return reactor;
  jobs_->CreateJob(*caller, *request, FinishWith(reactor, response, "CreateJob"));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                   const v1::GetJobRequest* request,
                                                   v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "GetJob");
  if (!caller) return reactor;
  FinishWith(reactor, response, "GetJob")(jobs_->GetJob(*caller, *request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                     const v1::ListJobsRequest* request,
                                                     v1::ListJobsResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "ListJobs");
  if (!caller) return reactor;
  FinishWith(reactor, response, "ListJobs")(jobs_->ListJobs(*caller, *request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::DeleteJob(grpc::CallbackServerContext* ctx,
                                                      const v1::DeleteJobRequest* request,
                                                      v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "DeleteJob");
  if (!caller) return reactor;
  jobs_->DeleteJob(*caller, *request, FinishWith(reactor, response, "DeleteJob"));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::UpdateJob(grpc::CallbackServerContext* ctx,
                                                      const v1::UpdateJobRequest* request,
                                                      v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "UpdateJob");
  if (!caller) return reactor;
  jobs_->UpdateJob(*caller, *request, FinishWith(reactor, response, "UpdateJob"));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::PauseJob(grpc::CallbackServerContext* ctx,
                                                     const v1::PauseJobRequest* request,
                                                     v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "PauseJob");
  if (!caller) return reactor;
  jobs_->PauseJob(*caller, *request, FinishWith(reactor, response, "PauseJob"));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::ResumeJob(grpc::CallbackServerContext* ctx,
                                                      const v1::ResumeJobRequest* request,
                                                      v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "ResumeJob");
  if (!caller) return reactor;
  jobs_->ResumeJob(*caller, *request, FinishWith(reactor, response, "ResumeJob"));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::RunJobNow(grpc::CallbackServerContext* ctx,
                                                      const v1::RunJobNowRequest* request,
                                                      v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "RunJobNow");
  if (!caller) return reactor;
  jobs_->RunJobNow(*caller, *request, FinishWith(reactor, response, "RunJobNow"));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::ListJobResults(
    grpc::CallbackServerContext* ctx, const v1::ListJobResultsRequest* request,
    v1::ListJobResultsResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "ListJobResults");
  if (!caller) return reactor;
  FinishWith(reactor, response,
             "ListJobResults")(jobs_->ListJobResults(*caller, *request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::PreviewSchedule(
    grpc::CallbackServerContext* ctx, const v1::PreviewScheduleRequest* request,
    v1::PreviewScheduleResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "PreviewSchedule");
  if (!caller) return reactor;
  FinishWith(reactor, response,
             "PreviewSchedule")(jobs_->PreviewSchedule(*caller, *request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::BackfillJob(
    grpc::CallbackServerContext* ctx, const v1::BackfillJobRequest* request,
    v1::BackfillJobResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "BackfillJob");
  if (!caller) return reactor;
  jobs_->BackfillJob(*caller, *request, FinishWith(reactor, response, "BackfillJob"));
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TimerServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw) {
  absl::StatusOr<auth::Principal> principal = CallerOf(*auth_, ctx, peers_);
  if (!principal.ok())
    return FinishedStream(ToGrpcStatus(principal.status()), "WatchJob");
  v1::WatchJobRequest request;
  absl::Status parsed = ParseWatchRequest(*raw, request);
  if (!parsed.ok()) return FinishedStream(ToGrpcStatus(parsed), "WatchJob");
  return OpenWatchJob(jobs_, watches_, principal->identity, request);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TimerServiceImpl::WatchJobs(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw) {
  absl::StatusOr<auth::Principal> principal = CallerOf(*auth_, ctx, peers_);
  if (!principal.ok())
    return FinishedStream(ToGrpcStatus(principal.status()), "WatchJobs");
  v1::WatchJobsRequest request;
  absl::Status parsed = ParseWatchRequest(*raw, request);
  if (!parsed.ok()) return FinishedStream(ToGrpcStatus(parsed), "WatchJobs");
  return OpenWatchJobs(jobs_, watches_, principal->identity, request);
}

grpc::ServerUnaryReactor* TimerServiceImpl::ListActionProviders(
    grpc::CallbackServerContext* ctx, const v1::ListActionProvidersRequest* request,
    v1::ListActionProvidersResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "ListActionProviders");
  if (!caller) return reactor;
  FinishWith(reactor, response,
             "ListActionProviders")(jobs_->ListActionProviders(*request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::GetActionProvider(
    grpc::CallbackServerContext* ctx, const v1::GetActionProviderRequest* request,
    v1::ActionProvider* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor, "GetActionProvider");
  if (!caller) return reactor;
  FinishWith(reactor, response,
             "GetActionProvider")(jobs_->GetActionProvider(*caller, *request));
  return reactor;
}

}  // namespace timer::api
