#include "api/watch.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "api/status.h"
#include "util/metrics.h"

namespace timer::api {
namespace {

// Most events in one message, and most bytes (beyond the first event): well
// under a client's default 4 MB receive limit.
constexpr size_t kMaxEventsPerMessage = 256;
constexpr size_t kMaxBytesPerMessage = 1 << 20;

// Appends `e` to `out` as one element of the responses' `repeated JobEvent
// events = 1`: the field's tag, the length, the event's wire form.
void AppendEventField(const domain::Event& e, std::string& out) {
  out.push_back(static_cast<char>((1 << 3) | 2));  // Field 1, length-delimited.
  for (uint64_t n = e.wire.size();; n >>= 7) {
    if (n < 0x80) {
      out.push_back(static_cast<char>(n));
      break;
    }
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  out.append(e.wire);
}

// A ByteBuffer that takes `bytes` over without copying them.
grpc::ByteBuffer TakeBytes(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  grpc::Slice slice(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); },
      owned);
  return grpc::ByteBuffer(&slice, 1);
}

// Counts a stream of `method` ended with `status` (no method: not counted).
void CountStream(std::string_view method, const grpc::Status& status) {
  if (!method.empty()) {
    metrics::CountGrpcRequest(method, static_cast<absl::StatusCode>(status.error_code()));
  }
}

class EndedStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  EndedStream(const grpc::Status& status, std::string_view method) {
    CountStream(method, status);
    Finish(status);
  }
  void OnDone() override { delete this; }
};

// One stream: pumps the feed's pre-serialized events to the client, one
// write in flight at a time. The feed (domain/watch_start.h) does the rest.
class WatchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  WatchReactor(domain::WatchStarter* starter, domain::WatchFilter filter, int64_t since,
               std::string_view method)
      : end_on_delete_(!filter.job_id.empty()), method_(method) {
    // The feed may call Pump() before Open() returns: it waits for kIdle.
    std::shared_ptr<domain::WatchFeed> feed =
        starter->Open(std::move(filter), since, [this] { Pump(); });
    {
      absl::MutexLock lock(&mu_);
      feed_ = std::move(feed);
      state_ = State::kIdle;
    }
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      message_.Clear();
      if (!ok) {
        // The client went away or the call was cancelled.
        finish_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
      } else if (state_ == State::kWritingLast) {
        finish_ = grpc::Status::OK;
      }
      state_ = State::kIdle;
    }
    Pump();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      if (!finish_)
        finish_ = grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
    }
    Pump();
  }

  void OnDone() override {
    std::shared_ptr<domain::WatchFeed> feed;
    {
      absl::MutexLock lock(&mu_);
      feed = feed_;
    }
    // Waits for a Pump() the feed is running; none starts after.
    feed->Stop();
    delete this;
  }

 private:
  enum class State {
    kOpening,      // The constructor has not finished: nothing to do yet.
    kIdle,         // No write in flight: the next one may start.
    kWriting,      // A write in flight.
    kWritingLast,  // The stream's last write in flight: it ends OK after.
    kFinished,     // Finish() called.
  };

  // Starts the next write, or finishes the stream, as the state says. Never
  // calls into gRPC with mu_ held. A write carries every event waiting
  // (within the per-message bounds): one while the watcher keeps up, more
  // when it is behind, so a busy stream pays gRPC's per-message cost once
  // for many events.
  void Pump() {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (state_ != State::kIdle) return;
      if (!finish_) {
        taken_.clear();
        feed_->Take(kMaxEventsPerMessage, taken_, kMaxBytesPerMessage);
        if (taken_.empty()) {
          absl::Status closed = feed_->closed();
          if (closed.ok()) return;  // Idle until the feed has more.
          finish_ = ToGrpcStatus(closed);
        }
      }
      if (finish_) {
        finish = finish_;
        state_ = State::kFinished;
      } else {
        std::string bytes;
        bool last = false;
        for (const domain::EventPtr& e : taken_) {
          AppendEventField(*e, bytes);
          // A watched job's deletion is its stream's last event.
          last = last || (end_on_delete_ && e->message.type() == v1::JobEvent::DELETED);
        }
        taken_.clear();
        message_ = TakeBytes(std::move(bytes));
        state_ = last ? State::kWritingLast : State::kWriting;
      }
    }
    if (finish) {
      CountStream(method_, *finish);
      Finish(*finish);
    } else {
      // message_ is not touched again until OnWriteDone.
      StartWrite(&message_);
    }
  }

  const bool end_on_delete_;
  const std::string_view method_;  // A literal.

  absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kOpening;
  // How the stream ends, once decided: it does when no write is in flight.
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<domain::WatchFeed> feed_ ABSL_GUARDED_BY(mu_);
  std::vector<domain::EventPtr> taken_ ABSL_GUARDED_BY(mu_);
  // The message being written: alive until its OnWriteDone.
  grpc::ByteBuffer message_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* FinishedStream(const grpc::Status& status,
                                                           std::string_view method) {
  return new EndedStream(status, method);
}

absl::Status ParseWatchRequest(const grpc::ByteBuffer& raw,
                               google::protobuf::MessageLite& request) {
  std::vector<grpc::Slice> slices;
  if (raw.Dump(&slices).ok()) {
    std::string bytes;
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    if (request.ParseFromString(bytes)) return absl::OkStatus();
  }
  return absl::InvalidArgumentError("request: not a valid message of this method");
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* OpenWatchJob(
    domain::JobService* jobs, domain::WatchStarter* watches,
    const domain::Identity& caller, const v1::WatchJobRequest& request) {
  absl::StatusOr<domain::WatchFilter> filter = jobs->WatchJobFilter(caller, request);
  if (!filter.ok()) return FinishedStream(ToGrpcStatus(filter.status()), "WatchJob");
  return new WatchReactor(watches, *std::move(filter), request.since(), "WatchJob");
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* OpenWatchJobs(
    domain::JobService* jobs, domain::WatchStarter* watches,
    const domain::Identity& caller, const v1::WatchJobsRequest& request) {
  absl::StatusOr<domain::WatchFilter> filter = jobs->WatchJobsFilter(caller, request);
  if (!filter.ok()) return FinishedStream(ToGrpcStatus(filter.status()), "WatchJobs");
  return new WatchReactor(watches, *std::move(filter), request.since(), "WatchJobs");
}

}  // namespace timer::api
