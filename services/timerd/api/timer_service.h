// TimerServiceImpl: the gRPC handlers of timer.v1.TimerService.
//
// Thin by design: each handler resolves the caller (api/caller.h; a call
// without valid credentials ends UNAUTHENTICATED here), hands the generated
// request message to the domain, and converts the result. Written with the
// callback API: reads answer inline, writes finish the reactor from the
// store's commit callback, so no gRPC thread waits on a disk flush.
//
// Thread-safe; the JobService, Authenticator, WatchStarter and peers must
// outlive it.
#pragma once

#include <optional>
#include <string_view>

#include "api/caller.h"
#include "auth/authenticator.h"
#include "domain/events.h"
#include "domain/jobs.h"
#include "domain/watch_start.h"
#include "timer/v1/timer.grpc.pb.h"

namespace timer::api {

// WatchJob and WatchJobs are raw methods (see api/watch.h); the rest typed.
using TimerServiceBase = v1::TimerService::WithRawCallbackMethod_WatchJob<
    v1::TimerService::WithRawCallbackMethod_WatchJobs<v1::TimerService::CallbackService>>;

class TimerServiceImpl final : public TimerServiceBase {
 public:
  // `peers` (may be null) is told of each authenticated call.
  TimerServiceImpl(domain::JobService* jobs, const auth::Authenticator* auth,
                   domain::WatchStarter* watches, AuthenticatedPeers* peers = nullptr)
      : jobs_(jobs), auth_(auth), watches_(watches), peers_(peers) {}

  grpc::ServerUnaryReactor* CreateJob(grpc::CallbackServerContext* ctx,
                                      const v1::CreateJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const v1::GetJobRequest* request,
                                   v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* ctx,
                                      const v1::DeleteJobRequest* request,
                                      v1::Job* response) override;

  grpc::ServerUnaryReactor* UpdateJob(grpc::CallbackServerContext* ctx,
                                      const v1::UpdateJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* PauseJob(grpc::CallbackServerContext* ctx,
                                     const v1::PauseJobRequest* request,
                                     v1::Job* response) override;
  grpc::ServerUnaryReactor* ResumeJob(grpc::CallbackServerContext* ctx,
                                      const v1::ResumeJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* RunJobNow(grpc::CallbackServerContext* ctx,
                                      const v1::RunJobNowRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobResults(grpc::CallbackServerContext* ctx,
                                           const v1::ListJobResultsRequest* request,
                                           v1::ListJobResultsResponse* response) override;
  grpc::ServerUnaryReactor* PreviewSchedule(
      grpc::CallbackServerContext* ctx, const v1::PreviewScheduleRequest* request,
      v1::PreviewScheduleResponse* response) override;
  grpc::ServerUnaryReactor* BackfillJob(grpc::CallbackServerContext* ctx,
                                        const v1::BackfillJobRequest* request,
                                        v1::BackfillJobResponse* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchJob(
      grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchJobs(
      grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* ListActionProviders(
      grpc::CallbackServerContext* ctx, const v1::ListActionProvidersRequest* request,
      v1::ListActionProvidersResponse* response) override;
  grpc::ServerUnaryReactor* GetActionProvider(grpc::CallbackServerContext* ctx,
                                              const v1::GetActionProviderRequest* request,
                                              v1::ActionProvider* response) override;

 private:
  // The caller's identity, or nullopt after finishing `reactor` with the
  // authentication error.
  // Counts the call as `method`'s when it ends here.
  std::optional<domain::Identity> Caller(grpc::CallbackServerContext* ctx,
                                         grpc::ServerUnaryReactor* reactor,
                                         std::string_view method) const;

  domain::JobService* const jobs_;
  const auth::Authenticator* const auth_;
  domain::WatchStarter* const watches_;
  AuthenticatedPeers* const peers_;
};

}  // namespace timer::api
