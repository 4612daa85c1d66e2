// WatchStarter and WatchFeed: how a watch stream (WatchJob / WatchJobs)
// starts, and the events it sends, in order, as ready-to-send bytes.
//
// A stream starts by subscribing to the EventHub; then, as the subscription
// says: resuming (`since` still kept), the kept events after `since`; fresh
// (since = 0), one SNAPSHOT event per live job that matches; and when `since`
// is no longer kept (or is an earlier process's), a RESET, then the snapshot.
// Every later matching event follows, live. Subscribing before reading the
// snapshot means nothing committed after the snapshot's "as of" point is
// missed (a change in between may show twice, in the snapshot and as an
// event: events are states, so applying one again is harmless). With
// several replicas (the hub in shared mode) this still holds: the "as of"
// point H is the last event the replica ingested; a write the snapshot
// misses committed after the snapshot's read began, so its event was
// appended to the shared log after the subscription, when every event up to
// H had committed, and the log numbers events in commit order: its number
// is above H, and it reaches the stream live. RESET and
// SNAPSHOT events carry the subscription's head as their sequence and, all
// of them, one event_time read from the injected Clock.
//
// The starter does this work (subscribing, reading the snapshot from the
// store) on its own threads, never on the caller's: a gRPC handler opens a
// feed and returns at once. The snapshot is read a page at a time, and the
// next page only once the stream has taken the last one, so however many
// jobs the owner has, a feed holds at most one page of snapshot events (see
// Options). Pages of different feeds take turns on the starter's threads.
// Snapshots show jobs as the filter's view says: by default without action
// bodies and results.
//
// The starter counts the feeds open (from Open until Stop), in all and per
// owner: a feed opened beyond either bound ends at once with
// RESOURCE_EXHAUSTED naming the bound (max_watch_streams,
// max_watch_streams_per_identity).
//
// Ownership: Open() returns a shared WatchFeed; the starter's queued work
// holds it too. The JobService, EventHub and Clock must outlive the starter,
// and the starter every feed it opened.
//
// Thread-safe: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "domain/clock.h"
#include "domain/events.h"
#include "domain/jobs.h"
#include "domain/worker_pool.h"

namespace timer::domain {

class WatchStarter;

// One stream's events, oldest first: RESET and snapshot or replay, then live
// events. The consumer (a gRPC write reactor) takes what is ready, and is
// told by `on_ready` when more may be.
class WatchFeed : public std::enable_shared_from_this<WatchFeed> {
 public:
  // Moves up to `max` events ready to send into `out`, oldest first,
  // stopping before the one that would bring their wire forms over
  // `max_bytes` (though always taking one, if any is ready); returns how
  // many. Never blocks on I/O: it may queue the next snapshot page's read.
  size_t Take(size_t max, std::vector<EventPtr>& out, size_t max_bytes = SIZE_MAX);
  // Once the stream is to end and every event before its end is taken: the
  // status it ends with (the snapshot's read error, a full buffer, shutdown).
  // OK while it is open.
  absl::Status closed() const;
  // Ends the feed: after it returns `on_ready` never runs again, and the
  // subscription is gone. Call once the consumer is done, without holding
  // any lock `on_ready` takes.
  void Stop();

  WatchFeed(const WatchFeed&) = delete;
  WatchFeed& operator=(const WatchFeed&) = delete;

 private:
  friend class WatchStarter;
  enum class Phase {
    kStarting,  // Not yet subscribed.
    kSnapshot,  // Subscribed; more snapshot pages to read after `initial_`.
    kLive,      // After `initial_` (RESET, snapshot, replay), the subscription's.
    kFailed,    // The snapshot could not be read: ends with `failed_`.
  };

  WatchFeed(WatchStarter* starter, WatchFilter filter, int64_t since,
            absl::AnyInvocable<void()> on_ready)
      : starter_(starter),
        filter_(std::move(filter)),
        since_(since),
        on_ready_(std::move(on_ready)) {}
  // Runs on_ready_ unless stopped.
  void Wake();
  // Ends the feed with `status` (a start or read that cannot happen).
  void Fail(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  WatchStarter* const starter_;
  const WatchFilter filter_;
  const int64_t since_;

  mutable absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kStarting;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Counted among the starter's open feeds until Stop().
  bool counted_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<EventHub::Subscription> subscription_ ABSL_GUARDED_BY(mu_);
  // Events to hand out before the subscription's.
  std::deque<EventPtr> initial_ ABSL_GUARDED_BY(mu_);
  // kSnapshot: where the next page starts, and whether its read is queued
  // or running.
  store::ListCursor next_page_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  // What every RESET and SNAPSHOT event carries: the subscription's head,
  // and the time the snapshot was begun.
  int64_t head_ ABSL_GUARDED_BY(mu_) = 0;
  google::protobuf::Timestamp snapshot_time_ ABSL_GUARDED_BY(mu_);

  // Held while on_ready_ runs, so Stop() waits for a running one.
  absl::Mutex wake_mu_;
  bool detached_ ABSL_GUARDED_BY(wake_mu_) = false;
  absl::AnyInvocable<void()> on_ready_ ABSL_GUARDED_BY(wake_mu_);
};

class WatchStarter {
 public:
  struct Options {
    // Threads that subscribe and read snapshot pages: two, so one stream's
    // slow page read does not hold every other stream's start.
    int threads = 2;
    // Most jobs in one snapshot page (at most JobService::kMaxPageSize).
    int snapshot_page_jobs = 256;
    // A page ends early with the SNAPSHOT event that brings its events to
    // this many bytes: it exceeds them by at most that one event.
    size_t snapshot_page_bytes = 1 << 20;
    // Feeds open at once: in all, and of one owner.
    size_t max_streams = 10000;
    size_t max_streams_per_identity = 64;
  };

  WatchStarter(JobService* jobs, EventHub* hub, const Clock* clock, Options options);
  // Stop()s.
  ~WatchStarter();
  WatchStarter(const WatchStarter&) = delete;
  WatchStarter& operator=(const WatchStarter&) = delete;

  // Opens the stream of `filter`'s events, resuming after `since` (0: from a
  // snapshot). Returns at once; the start runs on the starter's threads.
  // Beyond the bounds on open feeds the feed ends at once (see above).
  // `on_ready` is called (on a starter or publishing thread, with no lock of
  // the feed's or the hub's held) when the feed may have events to take or
  // has closed; it may run before Open() returns.
  std::shared_ptr<WatchFeed> Open(WatchFilter filter, int64_t since,
                                  absl::AnyInvocable<void()> on_ready);

  // Finishes the work queued now without reading the store any more (feeds
  // still starting or mid-snapshot end UNAVAILABLE) and joins the threads.
  // Later opens end UNAVAILABLE at once. For server shutdown, once no stream
  // is left, before the store closes.
  void Stop();

 private:
  friend class WatchFeed;
  // Queues `step` for `feed` on the pool; false once stopping.
  bool Submit(std::shared_ptr<WatchFeed> feed, void (WatchStarter::*step)(WatchFeed&));
  // Subscribes, then takes the replay, or the RESET and first snapshot page.
  void StartFeed(WatchFeed& feed);
  // Reads the feed's next snapshot page.
  void ReadNextPage(WatchFeed& feed);
  // Reads the page after `after` as SNAPSHOT events appended to `events`,
  // within the page bounds; returns where the next page starts.
  absl::StatusOr<std::optional<store::ListCursor>> ReadPage(
      const WatchFilter& filter, const std::optional<store::ListCursor>& after,
      int64_t head, const google::protobuf::Timestamp& time,
      std::vector<EventPtr>& events);
  // Hands a page read (or its failure) to the feed, and wakes it.
  void Deliver(WatchFeed& feed, absl::StatusOr<std::optional<store::ListCursor>> next,
               std::vector<EventPtr> events);
  bool stopping() const;
  // Counts a feed of `owner` in, or says which bound it would break.
  absl::Status Admit(const std::string& owner);
  // Counts a feed of `owner` out.
  void Release(const std::string& owner);

  JobService* const jobs_;
  EventHub* const hub_;
  const Clock* const clock_;
  const Options options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<WorkerPool> pool_ ABSL_GUARDED_BY(mu_);
  // Feeds counted in: in all and by owner (owners with none are erased).
  size_t streams_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, size_t> streams_by_owner_ ABSL_GUARDED_BY(mu_);
};

}  // namespace timer::domain
