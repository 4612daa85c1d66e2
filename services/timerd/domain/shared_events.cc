#include "domain/shared_events.h"

#include <algorithm>
#include <utility>

#include "domain/time_util.h"
#include "util/thread_name.h"

namespace timer::domain {
namespace {

// Changes a replica that schedules the job must hear of; runs are reported
// by the replica that schedules it, which needs no telling.
bool ChangesTheJob(v1::JobEvent::Type type) {
  switch (type) {
    case v1::JobEvent::CREATED:
    case v1::JobEvent::UPDATED:
    case v1::JobEvent::PAUSED:
    case v1::JobEvent::RESUMED:
    case v1::JobEvent::DELETED:
      return true;
    default:
      return false;
  }
}

}  // namespace

SharedEvents::SharedEvents(store::EventLog* log, EventHub* hub, const Clock* clock,
                           Options options)
    : log_(log), hub_(hub), clock_(clock), options_(std::move(options)) {}

SharedEvents::~SharedEvents() { Stop(); }

absl::Status SharedEvents::Start() {
  absl::StatusOr<store::EventLogBounds> bounds = log_->EventBounds();
  if (!bounds.ok()) return bounds.status();
  // The newest the hub keeps; older ones it would drop at once.
  const int64_t start = std::max(bounds->oldest - 1, bounds->head - options_.load_events);
  hub_->StartAt(start);
  {
    absl::MutexLock lock(&mu_);
    tail_head_ = start;
  }
  if (!CatchUp()) {
    return absl::UnavailableError("event log: cannot read the shared events");
  }
  absl::MutexLock lock(&mu_);
  started_ = true;
  writer_ = std::thread([this] {
    util::SetThreadName("event-append");
    WriteLoop();
  });
  tail_ = std::thread([this] {
    util::SetThreadName("event-tail");
    TailLoop();
  });
  remote_thread_ = std::thread([this] {
    util::SetThreadName("event-remote");
    RemoteLoop();
  });
  return absl::OkStatus();
}

void SharedEvents::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (writer_.joinable()) writer_.join();
  if (tail_.joinable()) tail_.join();
  if (remote_thread_.joinable()) remote_thread_.join();
}

void SharedEvents::Send(const v1::JobEvent& event, std::string body) {
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    // After Stop() (nothing publishes then in timerd): gone with the
    // replica, as at a crash; no marker, which would make every replica's
    // watchers start over at every restart.
    ++dropped_;
    return;
  }
  if (outbox_.size() + in_flight_ >= options_.outbox_events) {
    // Never silently: the marker makes every watcher start over.
    lost_ = true;
    ++dropped_;
    return;
  }
  store::LoggedEvent& e = outbox_.emplace_back();
  e.at_us = absl::ToUnixMicros(FromProto(event.event_time()));
  e.origin = options_.replica_id;
  e.owner = event.job().owner();
  e.job_id = event.job().job_id();
  e.body = std::move(body);
}

int64_t SharedEvents::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

int64_t SharedEvents::tail_head() const {
  absl::MutexLock lock(&mu_);
  return tail_head_;
}

bool SharedEvents::Pause(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  return !mu_.AwaitWithTimeout(absl::Condition(&stopping), d);
}

void SharedEvents::WriteLoop() {
  absl::Time next_prune = absl::Now();
  std::vector<store::LoggedEvent> batch;
  for (;;) {
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !outbox_.empty() || lost_ || stopping_;
      };
      mu_.AwaitWithDeadline(absl::Condition(&ready), next_prune);
      if (stopping_ && outbox_.empty() && !lost_) return;
      if (lost_) {
        // First, so every reader sees the loss before what follows it.
        store::LoggedEvent& marker = batch.emplace_back();
        marker.at_us = absl::ToUnixMicros(clock_->Now());
        marker.origin = options_.replica_id;
        lost_ = false;
      }
      while (!outbox_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(outbox_.front()));
        outbox_.pop_front();
      }
      in_flight_ = batch.size();
    }
    if (absl::Now() >= next_prune) {
      log_->PruneEvents(options_.keep_events).IgnoreError();  // Again next time.
      next_prune = absl::Now() + options_.prune_every;
    }
    if (batch.empty()) continue;
    absl::Duration backoff = options_.retry_min;
    while (!log_->AppendEvents(batch).ok()) {
      if (!Pause(backoff)) {
        // Stopping with the log unreachable: these are lost. Nobody is
        // told here; the replica's watchers are gone with it, and the
        // others' never had them (as after a crash: docs/RELIABILITY.md).
        absl::MutexLock lock(&mu_);
        dropped_ += static_cast<int64_t>(batch.size());
        in_flight_ = 0;
        outbox_.clear();
        return;
      }
      backoff = std::min(backoff * 2, options_.retry_max);
    }
    absl::MutexLock lock(&mu_);
    in_flight_ = 0;
  }
}

bool SharedEvents::CatchUp() {
  for (;;) {
    const int64_t after = tail_head();
    absl::StatusOr<std::vector<store::LoggedEvent>> rows =
        log_->ReadEventsAfter(after, static_cast<int>(options_.max_batch));
    if (!rows.ok()) return false;
    if (rows->empty()) return true;
    std::vector<EventPtr> events = hub_->Ingest(*rows);
    {
      absl::MutexLock lock(&mu_);
      tail_head_ = std::max(tail_head_, rows->back().seq);
      if (on_remote_change_ != nullptr) {
        for (size_t i = 0; i < rows->size(); ++i) {
          const store::LoggedEvent& row = (*rows)[i];
          if (events[i] == nullptr || row.origin == options_.replica_id) continue;
          if (!ChangesTheJob(events[i]->message.type())) continue;
          if (remote_.size() >= options_.max_remote_changes) continue;  // Rescan.
          if (remote_queued_.insert(row.job_id).second) remote_.push_back(row.job_id);
        }
      }
    }
    if (rows->size() < options_.max_batch) return true;
  }
}

void SharedEvents::TailLoop() {
  absl::Duration backoff = options_.retry_min;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    absl::Status s = CatchUp() ? log_->WaitForEvents(tail_head(), options_.poll)
                               : absl::UnavailableError("");
    if (s.ok()) {
      backoff = options_.retry_min;
      continue;
    }
    // The log unreachable: reads again (from where it was) once it is back.
    if (!Pause(backoff)) return;
    backoff = std::min(backoff * 2, options_.retry_max);
  }
}

void SharedEvents::RemoteLoop() {
  for (;;) {
    std::string job_id;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !remote_.empty() || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      job_id = std::move(remote_.front());
      remote_.pop_front();
      remote_queued_.erase(job_id);
    }
    on_remote_change_(job_id);
  }
}

}  // namespace timer::domain
