// The baseline `timer job status` is measured against: the least a C++ gRPC
// client can do for the same answer. One channel, one GetJob with a
// deadline (and TIMER_TOKEN as the bearer token, as `timer` sends it), the
// job's id and status printed, exit.
//
//   TIMER_TOKEN=... timer_bench_get_job HOST:PORT JOB_ID
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include "timer/v1/timer.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: timer_bench_get_job HOST:PORT JOB_ID\n";
    return 2;
  }
  auto stub = timer::v1::TimerService::NewStub(
      grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (const char* token = std::getenv("TIMER_TOKEN"); token && *token) {
    ctx.AddMetadata("authorization", std::string("Bearer ") + token);
  }
  timer::v1::GetJobRequest request;
  request.set_job_id(argv[2]);
  timer::v1::Job job;
  const grpc::Status status = stub->GetJob(&ctx, request, &job);
  if (!status.ok()) {
    std::cerr << "GetJob: " << status.error_message() << "\n";
    return 1;
  }
  std::cout << job.job_id() << " " << timer::v1::Job::Status_Name(job.status()) << "\n";
  return 0;
}
