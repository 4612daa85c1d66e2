#include "api/timer_service.h"

#include <string>
#include <utility>

#include "api/caller.h"
#include "api/status.h"
#include "api/watch.h"

namespace timer::api {
namespace {

// Finishes `ctx`'s reactor with `result`, copying a value into `response`.
template <typename T>
auto FinishWith(grpc::ServerUnaryReactor* reactor, T* response) {
  return [reactor, response](absl::StatusOr<T> result) {
    if (result.ok()) *response = *std::move(result);
    reactor->Finish(ToGrpcStatus(result.status()));
  };
}

}  // namespace

std::optional<domain::Identity> TimerServiceImpl::Caller(
    grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* reactor) const {
  absl::StatusOr<auth::Principal> principal = CallerOf(*auth_, ctx, peers_);
  if (!principal.ok()) {
    reactor->Finish(ToGrpcStatus(principal.status()));
    return std::nullopt;
  }
  return principal->identity;
}

grpc::ServerUnaryReactor* TimerServiceImpl::CreateJob(grpc::CallbackServerContext* ctx,
                                                      const v1::CreateJobRequest* request,
                                                      v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  jobs_->CreateJob(*caller, *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                   const v1::GetJobRequest* request,
                                                   v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  FinishWith(reactor, response)(jobs_->GetJob(*caller, *request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                     const v1::ListJobsRequest* request,
                                                     v1::ListJobsResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  FinishWith(reactor, response)(jobs_->ListJobs(*caller, *request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::DeleteJob(grpc::CallbackServerContext* ctx,
                                                      const v1::DeleteJobRequest* request,
                                                      v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  jobs_->DeleteJob(*caller, *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::UpdateJob(grpc::CallbackServerContext* ctx,
                                                      const v1::UpdateJobRequest* request,
                                                      v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  jobs_->UpdateJob(*caller, *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::PauseJob(grpc::CallbackServerContext* ctx,
                                                     const v1::PauseJobRequest* request,
                                                     v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  jobs_->PauseJob(*caller, *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::ResumeJob(grpc::CallbackServerContext* ctx,
                                                      const v1::ResumeJobRequest* request,
                                                      v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  jobs_->ResumeJob(*caller, *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::RunJobNow(grpc::CallbackServerContext* ctx,
                                                      const v1::RunJobNowRequest* request,
                                                      v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  jobs_->RunJobNow(*caller, *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::ListJobResults(
    grpc::CallbackServerContext* ctx, const v1::ListJobResultsRequest* request,
    v1::ListJobResultsResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  FinishWith(reactor, response)(jobs_->ListJobResults(*caller, *request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::PreviewSchedule(
    grpc::CallbackServerContext* ctx, const v1::PreviewScheduleRequest* request,
    v1::PreviewScheduleResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  FinishWith(reactor, response)(jobs_->PreviewSchedule(*caller, *request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::BackfillJob(
    grpc::CallbackServerContext* ctx, const v1::BackfillJobRequest* request,
    v1::BackfillJobResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  jobs_->BackfillJob(*caller, *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TimerServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw) {
  absl::StatusOr<auth::Principal> principal = CallerOf(*auth_, ctx, peers_);
  if (!principal.ok()) return FinishedStream(ToGrpcStatus(principal.status()));
  v1::WatchJobRequest request;
  absl::Status parsed = ParseWatchRequest(*raw, request);
  if (!parsed.ok()) return FinishedStream(ToGrpcStatus(parsed));
  return OpenWatchJob(jobs_, watches_, principal->identity, request);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* TimerServiceImpl::WatchJobs(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw) {
  absl::StatusOr<auth::Principal> principal = CallerOf(*auth_, ctx, peers_);
  if (!principal.ok()) return FinishedStream(ToGrpcStatus(principal.status()));
  v1::WatchJobsRequest request;
  absl::Status parsed = ParseWatchRequest(*raw, request);
  if (!parsed.ok()) return FinishedStream(ToGrpcStatus(parsed));
  return OpenWatchJobs(jobs_, watches_, principal->identity, request);
}

grpc::ServerUnaryReactor* TimerServiceImpl::ListActionProviders(
    grpc::CallbackServerContext* ctx, const v1::ListActionProvidersRequest* request,
    v1::ListActionProvidersResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  FinishWith(reactor, response)(jobs_->ListActionProviders(*request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::GetActionProvider(
    grpc::CallbackServerContext* ctx, const v1::GetActionProviderRequest* request,
    v1::ActionProvider* response) {
  auto* reactor = ctx->DefaultReactor();
  const auto caller = Caller(ctx, reactor);
  if (!caller) return reactor;
  FinishWith(reactor, response)(jobs_->GetActionProvider(*caller, *request));
  return reactor;
}

}  // namespace timer::api
