#include "api/watch.h"

#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/status.h"
#include "domain/time_util.h"

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
  for (uint64_t n = e.wire.size(); ; n >>= 7) {
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
  grpc::Slice slice(owned->data(), owned->size(),
                    [](void* p) { delete static_cast<std::string*>(p); }, owned);
  return grpc::ByteBuffer(&slice, 1);
}

class EndedStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit EndedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

class WatchReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  WatchReactor(domain::JobService* jobs, domain::EventHub* hub, domain::WatchFilter filter,
               int64_t since)
      : hub_(hub), end_on_delete_(!filter.job_id.empty()) {
    // Subscribe before reading the snapshot: nothing committed after the
    // snapshot's "as of" point can be missed (a change in between may show
    // twice, as part of the snapshot and as an event: events are states, so
    // applying one again is harmless).
    domain::EventHub::Opened opened =
        hub_->Subscribe(filter, since, [this] { Pump(); });
    subscription_ = opened.subscription;
    std::deque<domain::EventPtr> initial;
    if (!opened.needs_snapshot) {
      initial.assign(opened.replay.begin(), opened.replay.end());
    } else {
      const google::protobuf::Timestamp now = domain::ToProto(absl::Now());
      if (since > 0) {
        v1::JobEvent reset;
        reset.set_sequence(opened.head);
        reset.set_type(v1::JobEvent::RESET);
        *reset.mutable_event_time() = now;
        initial.push_back(domain::MakeEvent(std::move(reset)));
      }
      absl::StatusOr<std::vector<v1::Job>> jobs_now = jobs->Snapshot(filter);
      if (!jobs_now.ok()) {
        {
          absl::MutexLock lock(&mu_);
          started_ = true;
          finished_ = true;
          done_finishing_ = true;
        }
        Finish(ToGrpcStatus(jobs_now.status()));
        return;
      }
      for (v1::Job& job : *jobs_now) {
        v1::JobEvent e;
        e.set_sequence(opened.head);
        e.set_type(v1::JobEvent::SNAPSHOT);
        *e.mutable_event_time() = now;
        *e.mutable_job() = std::move(job);
        initial.push_back(domain::MakeEvent(std::move(e)));
      }
    }
    {
      absl::MutexLock lock(&mu_);
      initial_ = std::move(initial);
      started_ = true;
    }
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      message_.Clear();
      if (finished_) return;
      if (!ok || finish_after_write_) {
        // Not ok: the client went away or the call was cancelled.
        finished_ = true;
        pending_finish_ = ok ? grpc::Status::OK
                             : grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
      }
    }
    Pump();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    Pump();
  }

  void OnDone() override {
    hub_->Unsubscribe(subscription_);
    delete this;
  }

 private:
  // Starts the next write, or finishes the stream, as the state says. Never
  // calls into gRPC with mu_ held. A write carries every event waiting
  // (within the per-message bounds): one while the watcher keeps up, more
  // when it is behind, so a busy stream pays gRPC's per-message cost once
  // for many events.
  void Pump() {
    std::optional<grpc::Status> finish;
    bool write = false;
    {
      absl::MutexLock lock(&mu_);
      if (!started_ || writing_ || done_finishing_) return;
      if (finished_) {
        // Decided in OnWriteDone; finish now that no write is pending.
        finish = pending_finish_;
      } else if (cancelled_) {
        finish = grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
      } else {
        taken_.clear();
        size_t bytes = 0;
        while (!initial_.empty() && taken_.size() < kMaxEventsPerMessage &&
               (taken_.empty() || bytes + initial_.front()->wire.size() <= kMaxBytesPerMessage)) {
          bytes += initial_.front()->wire.size();
          taken_.push_back(std::move(initial_.front()));
          initial_.pop_front();
        }
        if (initial_.empty() && taken_.size() < kMaxEventsPerMessage &&
            bytes < kMaxBytesPerMessage) {
          subscription_->Take(kMaxEventsPerMessage - taken_.size(), taken_,
                              taken_.empty() ? kMaxBytesPerMessage
                                             : kMaxBytesPerMessage - bytes);
        }
        if (taken_.empty()) {
          absl::Status closed = subscription_->closed();
          if (closed.ok()) return;  // Idle until the next event.
          finish = ToGrpcStatus(closed);
        } else {
          std::string bytes_out;
          for (const domain::EventPtr& e : taken_) {
            AppendEventField(*e, bytes_out);
            // A watched job's deletion is its stream's last event.
            if (end_on_delete_ && e->message.type() == v1::JobEvent::DELETED) {
              finish_after_write_ = true;
            }
          }
          taken_.clear();
          message_ = TakeBytes(std::move(bytes_out));
          writing_ = true;
          write = true;
        }
      }
      if (finish) {
        finished_ = true;
        done_finishing_ = true;
      }
    }
    if (finish) {
      Finish(*finish);
    } else if (write) {
      // message_ is not touched again until OnWriteDone.
      StartWrite(&message_);
    }
  }

  domain::EventHub* const hub_;
  const bool end_on_delete_;
  std::shared_ptr<domain::EventHub::Subscription> subscription_;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_after_write_ ABSL_GUARDED_BY(mu_) = false;
  // Decided to end (no more writes start) / Finish() called.
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_finishing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status pending_finish_ ABSL_GUARDED_BY(mu_);
  std::deque<domain::EventPtr> initial_ ABSL_GUARDED_BY(mu_);
  std::vector<domain::EventPtr> taken_ ABSL_GUARDED_BY(mu_);
  // The message being written: alive until its OnWriteDone.
  grpc::ByteBuffer message_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* FinishedStream(const grpc::Status& status) {
  return new EndedStream(status);
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
    domain::JobService* jobs, domain::EventHub* hub, const domain::Identity& caller,
    const v1::WatchJobRequest& request) {
  absl::StatusOr<domain::WatchFilter> filter = jobs->WatchJobFilter(caller, request);
  if (!filter.ok()) return FinishedStream(ToGrpcStatus(filter.status()));
  return new WatchReactor(jobs, hub, *std::move(filter), request.since());
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* OpenWatchJobs(
    domain::JobService* jobs, domain::EventHub* hub, const domain::Identity& caller,
    const v1::WatchJobsRequest& request) {
  absl::StatusOr<domain::WatchFilter> filter = jobs->WatchJobsFilter(caller, request);
  if (!filter.ok()) return FinishedStream(ToGrpcStatus(filter.status()));
  return new WatchReactor(jobs, hub, *std::move(filter), request.since());
}

}  // namespace timer::api
