// SharedEvents: connects a replica's EventHub (in shared mode) to the event
// log every replica shares (store/event_log.h), so a watcher on any replica
// sees every replica's events, in one order, with the same numbers.
//
// Two threads:
//   - the writer takes what the hub publishes (Send, the hub's outbox) and
//     appends it to the log in batches: whatever queued while the previous
//     append ran goes in the next, so the rate of appends, not of events,
//     is bounded by the log's latency. The outbox is bounded
//     (`outbox_events`). When it is full (the log unreachable for long) new
//     events are dropped, and once the log is back a lost-events marker is
//     appended before anything else: every replica's hub then closes its
//     watchers' streams, which resume into a RESET and a snapshot. So
//     watchers are never silently given a gap. An append that failed is
//     retried with back-off; one whose COMMIT outcome was unknown may then
//     show twice (events are states: applying one again is harmless).
//   - the tail waits for the log's notification (or `poll`, the fallback),
//     reads the events after the last it has, in order, and Ingest()s them
//     into the hub. Events another replica appended that change a job
//     (CREATED, UPDATED, PAUSED, RESUMED, DELETED) are also handed, by job
//     id, to `on_remote_change` (the run engine, which reloads the job if
//     it schedules its shard) on a third thread, through a bounded,
//     deduplicated queue: when it is full, the engine's periodic rescan is
//     the safety net.
// The writer also prunes the log to its newest `keep_events`, every
// `prune_every` (every replica does; a prune is idempotent).
//
// Start() loads the newest events the log keeps (up to the hub's
// keep_events) before it returns, so a `since` from another replica works
// on this one at once.
//
// Thread-safe. The log, hub and clock must outlive this object.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/clock.h"
#include "domain/events.h"
#include "store/event_log.h"

namespace timer::domain {

class SharedEvents final : public EventOutbox {
 public:
  struct Options {
    // This replica's id (the lease holder id), the `origin` of its events.
    std::string replica_id;
    // Events published and not yet appended, at most; beyond, dropped (and
    // a lost-events marker appended once the log is back).
    size_t outbox_events = 50000;
    // Most events in one append and in one read.
    size_t max_batch = 2000;
    // Start() loads at most this many of the newest events (the hub's
    // keep_events: it would drop older ones at once).
    int64_t load_events = 20000;
    // The log keeps at least this many of the newest events.
    int64_t keep_events = 100000;
    absl::Duration prune_every = absl::Seconds(10);
    // Longest the tail waits for a notification before it reads anyway.
    absl::Duration poll = absl::Milliseconds(500);
    // Back-off after a failed append or read: from retry_min, doubling, up
    // to retry_max.
    absl::Duration retry_min = absl::Milliseconds(50);
    absl::Duration retry_max = absl::Seconds(1);
    // Job ids waiting for on_remote_change, at most.
    size_t max_remote_changes = 100000;
  };

  SharedEvents(store::EventLog* log, EventHub* hub, const Clock* clock, Options options);
  // Stop()s.
  ~SharedEvents() override;
  SharedEvents(const SharedEvents&) = delete;
  SharedEvents& operator=(const SharedEvents&) = delete;

  // Set once, before Start(): told the id of each job another replica
  // changed (on this object's own thread, one call at a time; it may block
  // on the store).
  void set_on_remote_change(absl::AnyInvocable<void(const std::string& job_id)> fn) {
    on_remote_change_ = std::move(fn);
  }

  // Points the hub at the log's newest kept events, ingests them, and starts
  // the threads. An error (the log unreachable) starts nothing.
  absl::Status Start();
  // Appends what is queued (unless an append fails: then it is dropped)
  // and stops the threads. Idempotent.
  void Stop();

  // EventOutbox: queues `event` for the writer. Never blocks.
  void Send(const v1::JobEvent& event, std::string body) override;

  // For tests and metrics.
  int64_t dropped() const;
  int64_t tail_head() const;

 private:
  void WriteLoop();
  void TailLoop();
  void RemoteLoop();
  // Reads and ingests everything after tail_head_; false on an error.
  bool CatchUp();
  // Waits `d` or until stopping; returns false when stopping.
  bool Pause(absl::Duration d);

  store::EventLog* const log_;
  EventHub* const hub_;
  const Clock* const clock_;
  const Options options_;
  absl::AnyInvocable<void(const std::string&)> on_remote_change_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<store::LoggedEvent> outbox_ ABSL_GUARDED_BY(mu_);
  // Taken by the writer, not yet appended (counted against outbox_events).
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Events were dropped: a marker goes first in the next append.
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t tail_head_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::string> remote_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> remote_queued_ ABSL_GUARDED_BY(mu_);

  std::thread writer_, tail_, remote_thread_;
};

}  // namespace timer::domain
