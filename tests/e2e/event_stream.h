// Reads a WatchJob / WatchJobs stream one event at a time. The server sends
// events in messages of one or more (WatchJob(s)Response.events); tests look
// at the events, in order.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <utility>

#include "timer/v1/timer.grpc.pb.h"

namespace timer::e2e {

class EventStream {
 public:
  virtual ~EventStream() = default;
  // The next event; false once the stream has ended (then call Finish()).
  virtual bool Read(v1::JobEvent* event) = 0;
  virtual grpc::Status Finish() = 0;
  // Messages received so far.
  virtual int messages() const = 0;
};

template <typename Response>
class EventStreamOf final : public EventStream {
 public:
  explicit EventStreamOf(std::unique_ptr<grpc::ClientReader<Response>> stream)
      : stream_(std::move(stream)) {}

  bool Read(v1::JobEvent* event) override {
    while (next_ >= message_.events_size()) {
      if (!stream_->Read(&message_)) return false;
      ++messages_;
      next_ = 0;
    }
    *event = message_.events(next_++);
    return true;
  }
  grpc::Status Finish() override { return stream_->Finish(); }
  int messages() const override { return messages_; }

 private:
  std::unique_ptr<grpc::ClientReader<Response>> stream_;
  Response message_;
  int next_ = 0;
  int messages_ = 0;
};

// Wraps what stub->WatchJob(...) or stub->WatchJobs(...) returned.
template <typename Response>
std::unique_ptr<EventStream> Events(
    std::unique_ptr<grpc::ClientReader<Response>> stream) {
  return std::make_unique<EventStreamOf<Response>>(std::move(stream));
}

}  // namespace timer::e2e
