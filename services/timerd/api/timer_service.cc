#include "api/timer_service.h"

#include <string>
#include <utility>

#include "api/caller.h"
#include "api/status.h"

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

// A stream that ends at once with UNIMPLEMENTED.
class UnimplementedStream final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  explicit UnimplementedStream(const char* method) {
    Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        std::string(method) +
                            " is not implemented by this timerd yet"));
  }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerUnaryReactor* TimerServiceImpl::CreateJob(
    grpc::CallbackServerContext* ctx, const v1::CreateJobRequest* request,
    v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  jobs_->CreateJob(CallerOf(ctx), *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::GetJob(
    grpc::CallbackServerContext* ctx, const v1::GetJobRequest* request,
    v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  FinishWith(reactor, response)(jobs_->GetJob(CallerOf(ctx), *request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::ListJobs(
    grpc::CallbackServerContext* ctx, const v1::ListJobsRequest* request,
    v1::ListJobsResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  FinishWith(reactor, response)(jobs_->ListJobs(CallerOf(ctx), *request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::DeleteJob(
    grpc::CallbackServerContext* ctx, const v1::DeleteJobRequest* request,
    v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  jobs_->DeleteJob(CallerOf(ctx), *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::UpdateJob(
    grpc::CallbackServerContext* ctx, const v1::UpdateJobRequest* request,
    v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  jobs_->UpdateJob(CallerOf(ctx), *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::PauseJob(
    grpc::CallbackServerContext* ctx, const v1::PauseJobRequest* request,
    v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  jobs_->PauseJob(CallerOf(ctx), *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::ResumeJob(
    grpc::CallbackServerContext* ctx, const v1::ResumeJobRequest* request,
    v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  jobs_->ResumeJob(CallerOf(ctx), *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::RunJobNow(
    grpc::CallbackServerContext* ctx, const v1::RunJobNowRequest* request,
    v1::Job* response) {
  auto* reactor = ctx->DefaultReactor();
  jobs_->RunJobNow(CallerOf(ctx), *request, FinishWith(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::ListJobResults(
    grpc::CallbackServerContext* ctx, const v1::ListJobResultsRequest* request,
    v1::ListJobResultsResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  FinishWith(reactor, response)(jobs_->ListJobResults(CallerOf(ctx), *request));
  return reactor;
}

grpc::ServerWriteReactor<v1::JobEvent>* TimerServiceImpl::WatchJob(
    grpc::CallbackServerContext*, const v1::WatchJobRequest*) {
  return new UnimplementedStream("WatchJob");
}

grpc::ServerWriteReactor<v1::JobEvent>* TimerServiceImpl::WatchJobs(
    grpc::CallbackServerContext*, const v1::WatchJobsRequest*) {
  return new UnimplementedStream("WatchJobs");
}

grpc::ServerUnaryReactor* TimerServiceImpl::ListActionProviders(
    grpc::CallbackServerContext* ctx, const v1::ListActionProvidersRequest* request,
    v1::ListActionProvidersResponse* response) {
  auto* reactor = ctx->DefaultReactor();
  FinishWith(reactor, response)(jobs_->ListActionProviders(*request));
  return reactor;
}

grpc::ServerUnaryReactor* TimerServiceImpl::GetActionProvider(
    grpc::CallbackServerContext* ctx, const v1::GetActionProviderRequest* request,
    v1::ActionProvider* response) {
  auto* reactor = ctx->DefaultReactor();
  FinishWith(reactor, response)(jobs_->GetActionProvider(*request));
  return reactor;
}

}  // namespace timer::api
