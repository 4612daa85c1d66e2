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

class EndedStream final : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  explicit EndedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

class WatchReactor final : public grpc::ServerWriteReactor<v1::JobEvent> {
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
        auto reset = std::make_shared<v1::JobEvent>();
        reset->set_sequence(opened.head);
        reset->set_type(v1::JobEvent::RESET);
        *reset->mutable_event_time() = now;
        initial.push_back(std::move(reset));
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
        auto e = std::make_shared<v1::JobEvent>();
        e->set_sequence(opened.head);
        e->set_type(v1::JobEvent::SNAPSHOT);
        *e->mutable_event_time() = now;
        *e->mutable_job() = std::move(job);
        initial.push_back(std::move(e));
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
      current_.reset();
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
  // calls into gRPC with mu_ held.
  void Pump() {
    domain::EventPtr next;
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (!started_ || writing_ || done_finishing_) return;
      if (finished_) {
        // Decided in OnWriteDone; finish now that no write is pending.
        finish = pending_finish_;
      } else if (cancelled_) {
        finish = grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
      } else {
        if (!initial_.empty()) {
          next = std::move(initial_.front());
          initial_.pop_front();
        } else {
          taken_.clear();
          if (subscription_->Take(1, taken_) == 1) next = std::move(taken_.front());
        }
        if (next == nullptr) {
          absl::Status closed = subscription_->closed();
          if (closed.ok()) return;  // Idle until the next event.
          finish = ToGrpcStatus(closed);
        } else {
          writing_ = true;
          current_ = next;
          // A watched job's deletion is its stream's last event.
          if (end_on_delete_ && next->type() == v1::JobEvent::DELETED) {
            finish_after_write_ = true;
          }
        }
      }
      if (finish) {
        finished_ = true;
        done_finishing_ = true;
      }
    }
    if (finish) {
      Finish(*finish);
    } else {
      StartWrite(next.get());
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
  // The event being written: alive until its OnWriteDone.
  domain::EventPtr current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<v1::JobEvent>* FinishedStream(const grpc::Status& status) {
  return new EndedStream(status);
}

grpc::ServerWriteReactor<v1::JobEvent>* OpenWatchJob(domain::JobService* jobs,
                                                     domain::EventHub* hub,
                                                     const domain::Identity& caller,
                                                     const v1::WatchJobRequest& request) {
  absl::StatusOr<domain::WatchFilter> filter = jobs->WatchJobFilter(caller, request);
  if (!filter.ok()) return FinishedStream(ToGrpcStatus(filter.status()));
  return new WatchReactor(jobs, hub, *std::move(filter), request.since());
}

grpc::ServerWriteReactor<v1::JobEvent>* OpenWatchJobs(domain::JobService* jobs,
                                                      domain::EventHub* hub,
                                                      const domain::Identity& caller,
                                                      const v1::WatchJobsRequest& request) {
  absl::StatusOr<domain::WatchFilter> filter = jobs->WatchJobsFilter(caller, request);
  if (!filter.ok()) return FinishedStream(ToGrpcStatus(filter.status()));
  return new WatchReactor(jobs, hub, *std::move(filter), request.since());
}

}  // namespace timer::api
