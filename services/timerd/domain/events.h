// Job events for watchers (WatchJob / WatchJobs): a bounded in-memory log
// with sequence numbers, and subscriptions with bounded buffers.
//
// Publishers (JobService after each durable write, RunEngine as runs start
// and finish) call Publish(); every event gets the next sequence number and
// goes into the log, which keeps the newest events within two bounds: at
// most `keep_events` of them, and at most `keep_bytes` of them as accounted
// (EventBytes). An event carries the job without its action body and inline
// results, so it stays small whatever the jobs hold (a watcher who needs a
// body calls GetJob). A dispatcher thread then hands each event to the
// buffer of each subscription whose filter it matches, so a publisher (the
// store's writer, a run worker) never pays for the fan-out to many
// watchers. Filters are matched outside the hub's lock (by the dispatcher,
// and for a replay by the subscriber), so a costly filter delays only its
// own watcher and the dispatcher, never a publisher. Nothing
// waits for a consumer: a subscription whose buffer is full is closed with
// RESOURCE_EXHAUSTED naming the sequence to resume after, and gets nothing
// more.
//
// Sequence numbers are strictly increasing for the life of the process, and
// start from the wall clock in microseconds, so that numbers handed out by
// an earlier process are smaller than any of this one's: a watcher resuming
// from before a restart (or from further back than the log keeps) is told
// to start over from a snapshot rather than being silently given a gap.
// They are one sequence for all owners (see docs/API.md, "Sequence
// numbers", for what that shows a watcher and why).
//
// Shared mode (Options::shared: several replicas on one store): the numbers
// are the shared event log's (store/event_log.h), the same on every
// replica. Publish() numbers nothing: it hands the event to the outbox
// (domain/shared_events.h), which appends it to the log; every replica's
// tail reads the log in order and Ingest()s the events, with their numbers,
// into its hub, which keeps and dispatches them as above. A `since` ahead of
// what this replica has ingested (the watcher saw it on a replica whose tail
// is further on) is waited for, up to `since_wait`. A gap in the numbers, or
// a marker of events lost, makes every `since` before it too old: open
// subscriptions are closed (UNAVAILABLE, with their resume point), and
// resume into a RESET and a snapshot.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "domain/clock.h"
#include "store/event_log.h"
#include "timer/v1/timer.pb.h"

namespace timer::domain {

// One event as every watcher gets it: the message, and its wire form, made
// once when the event is published rather than once per watcher.
struct Event {
  v1::JobEvent message;
  std::string wire;  // message, serialized.
};
using EventPtr = std::shared_ptr<const Event>;

// An Event of `message` (serialized here).
EventPtr MakeEvent(v1::JobEvent message);

// The memory an event is accounted in the log: its message and its wire
// form (each about the wire size) and a fixed allowance for the objects.
size_t EventBytes(const Event& e);

// A job as events and BASIC views show it: without `action.body` and
// `results`, whose memory is released.
void ClearToBasic(v1::Job& job);

// Where JobService and RunEngine report what changed. Must not block.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // `job` is the job after the change; `result` is set for run events.
  virtual void Publish(v1::JobEvent::Type type, const v1::Job& job,
                       const v1::JobResult* result) = 0;
};

// Where a shared-mode EventHub sends what it publishes, to be numbered by
// the shared log. Must not block.
class EventOutbox {
 public:
  virtual ~EventOutbox() = default;
  // `event` is without a sequence; `body` is its serialized form.
  virtual void Send(const v1::JobEvent& event, std::string body) = 0;
};

// The bit of `status` in WatchFilter::statuses (none for a value beyond
// the mask, which no filter then matches).
constexpr uint32_t StatusBit(int status) {
  return status >= 0 && status < 32 ? uint32_t{1} << status : 0;
}
static_assert(v1::Job::Status_MAX < 32, "WatchFilter::statuses is a 32-bit mask");

// Which events a watcher gets, and how its snapshot shows jobs. Always
// scoped to one owner.
struct WatchFilter {
  std::string owner;
  // One job; empty means every job of the owner.
  std::string job_id;
  // Only jobs in these statuses (as of the event): the StatusBit of each;
  // 0 means all.
  uint32_t statuses = 0;
  // Only jobs whose name contains this; empty means all.
  std::string name_contains;
  // SNAPSHOT events show jobs in full (JOB_VIEW_FULL: body and results);
  // otherwise as ClearToBasic leaves them. Other events are always basic.
  bool full_view = false;

  bool Matches(const v1::Job& job) const;
};

class EventHub final : public EventSink {
 public:
  struct Options {
    // Events kept for watchers that resume with `since`: at most this many,
    size_t keep_events = 20000;
    // ... and at most this many bytes of them (EventBytes); the newest event
    // is kept even if it alone is more.
    size_t keep_bytes = size_t{32} << 20;
    // Events a subscription may hold undelivered before it is closed.
    size_t buffer_events = 1024;
    // Shared mode (see above): set_outbox() and StartAt() before use.
    bool shared = false;
    // Shared mode: how long a subscription waits for this replica to ingest
    // up to a `since` ahead of it before it starts over (RESET). One waits
    // at a time, and only for a `since` at most keep_events ahead; others
    // start over at once.
    absl::Duration since_wait = absl::Seconds(2);
  };

  // The consumer side of one watcher.
  class Subscription {
   public:
    // Moves up to `max` buffered events into `out`, oldest first, stopping
    // before the one that would bring their wire forms over `max_bytes`
    // (though always taking one, if any is buffered); returns how many.
    size_t Take(size_t max, std::vector<EventPtr>& out, size_t max_bytes = SIZE_MAX);
    // Events buffered now.
    size_t buffered() const;
    // Once closed (overflow or shutdown) and drained, the status the stream
    // ends with; OK while open.
    absl::Status closed() const;
    // Stops notifications; after it returns, `on_ready` never runs again.
    // Call without holding any lock `on_ready` takes.
    void Detach();

   private:
    friend class EventHub;
    Subscription(WatchFilter filter, size_t capacity, absl::AnyInvocable<void()> on_ready)
        : filter_(std::move(filter)),
          capacity_(capacity),
          on_ready_(std::move(on_ready)) {}
    // Queues `e`; returns true if the consumer should be woken.
    bool Push(const EventPtr& e);
    bool Close(absl::Status status);
    void Wake();

    const WatchFilter filter_;
    const size_t capacity_;
    mutable absl::Mutex mu_;
    std::deque<EventPtr> queue_ ABSL_GUARDED_BY(mu_);
    absl::Status closed_ ABSL_GUARDED_BY(mu_);
    int64_t last_queued_ ABSL_GUARDED_BY(mu_) = 0;
    // Events up to this sequence reach the watcher as replay or snapshot.
    int64_t start_after_ = 0;
    // Held while on_ready_ runs, so Detach() waits for a running one.
    absl::Mutex wake_mu_;
    bool detached_ ABSL_GUARDED_BY(wake_mu_) = false;
    absl::AnyInvocable<void()> on_ready_ ABSL_GUARDED_BY(wake_mu_);
  };

  // What a new subscription starts from.
  struct Opened {
    std::shared_ptr<Subscription> subscription;
    // The sequence number the subscription starts after: snapshots are "as of"
    // it, and every later matching event reaches the subscription.
    int64_t head = 0;
    // true: `since` was 0, or older than the log (or from an earlier process):
    // the watcher needs a snapshot (and, if since > 0, a RESET first).
    bool needs_snapshot = false;
    // Otherwise: the kept events after `since` that match, oldest first.
    std::vector<EventPtr> replay;
  };

  EventHub(const Clock* clock, Options options);
  ~EventHub() override;
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  void Publish(v1::JobEvent::Type type, const v1::Job& job,
               const v1::JobResult* result) override;

  // Shared mode, set once before use: where Publish() sends events.
  void set_outbox(EventOutbox* outbox) { outbox_ = outbox; }
  // Shared mode, once before the first Ingest(): the events up to `head`
  // are not kept here (a `since` before it gets a RESET).
  void StartAt(int64_t head);
  // Shared mode: the log's events after head(), in order (older ones are
  // ignored; a gap or a lost-events marker closes every subscription, see
  // above). Returns each one's event as kept (null for a marker, an old
  // one or a body that does not parse), in the order given.
  std::vector<EventPtr> Ingest(const std::vector<store::LoggedEvent>& events);

  // Registers a watcher. `on_ready` is called (on a publishing thread, with
  // no hub lock held) when its buffer becomes non-empty or it is closed.
  // In shared mode it may wait (up to since_wait) for `since` to be
  // ingested.
  Opened Subscribe(WatchFilter filter, int64_t since,
                   absl::AnyInvocable<void()> on_ready);
  void Unsubscribe(const std::shared_ptr<Subscription>& subscription);

  // Closes every subscription with UNAVAILABLE; later subscriptions are
  // closed at once. For server shutdown.
  void Shutdown();

  int64_t head() const;
  size_t subscriptions() const;
  // Events in the log now, and their EventBytes.
  size_t kept_events() const;
  size_t kept_bytes() const;
  // Waits until every event published so far is in its watchers' buffers.
  // For tests.
  void Flush();

 private:
  const Clock* const clock_;
  const Options options_;
  mutable absl::Mutex mu_;
  int64_t head_ ABSL_GUARDED_BY(mu_);
  // A `since` below this is too old, whatever log_ holds (shared mode: the
  // start, the last gap or lost-events marker).
  int64_t floor_ ABSL_GUARDED_BY(mu_) = 0;
  // Subscriptions waiting for their `since` to be ingested (at most one).
  int since_waiting_ ABSL_GUARDED_BY(mu_) = 0;
  EventOutbox* outbox_ = nullptr;
  std::deque<EventPtr> log_ ABSL_GUARDED_BY(mu_);
  size_t log_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // By owner: publishing looks only at the owner's watchers. Each list is
  // replaced, never changed in place, so the dispatcher can match against
  // it after letting go of mu_.
  using Subscriptions = std::vector<std::shared_ptr<Subscription>>;
  absl::flat_hash_map<std::string, std::shared_ptr<const Subscriptions>> by_owner_
      ABSL_GUARDED_BY(mu_);
  size_t count_ ABSL_GUARDED_BY(mu_) = 0;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // Published, not yet handed to watchers; the last sequence handed.
  std::deque<EventPtr> pending_ ABSL_GUARDED_BY(mu_);
  int64_t dispatched_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread dispatcher_;
  void DispatchLoop();
  // Keeps `e` (numbered) and queues it for the dispatcher.
  void Append(EventPtr e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Events up to `seq` may be missing: nothing before it is resumable, and
  // every subscription is closed; returns those to wake.
  std::vector<std::shared_ptr<Subscription>> LoseUpTo(int64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

}  // namespace timer::domain
