#include "domain/watch_start.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "domain/time_util.h"
#include "util/status_macros.h"

namespace timer::domain {
namespace {

absl::Status ShuttingDown() { return absl::UnavailableError("timerd is shutting down"); }

store::ListCursor CursorOf(const v1::Job& job) {
  return store::ListCursor{store::ToMicros(job.create_time()), job.job_id()};
}

}  // namespace

size_t WatchFeed::Take(size_t max, std::vector<EventPtr>& out, size_t max_bytes) {
  size_t n = 0;
  bool read_next = false;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return 0;
    size_t bytes = 0;
    while (n < max && !initial_.empty()) {
      const size_t size = initial_.front()->wire.size();
      if (n > 0 && bytes + size > max_bytes) break;
      bytes += size;
      out.push_back(std::move(initial_.front()));
      initial_.pop_front();
      ++n;
    }
    if (initial_.empty()) {
      if (phase_ == Phase::kSnapshot && !reading_) {
        // Read the next page while the consumer sends this one.
        reading_ = true;
        read_next = true;
      } else if (phase_ == Phase::kLive && n < max && bytes < max_bytes) {
        n += subscription_->Take(max - n, out, n == 0 ? max_bytes : max_bytes - bytes);
      }
    }
  }
  if (read_next && !starter_->Submit(shared_from_this(), &WatchStarter::ReadNextPage)) {
    absl::MutexLock lock(&mu_);
    Fail(ShuttingDown());
  }
  return n;
}

absl::Status WatchFeed::closed() const {
  absl::MutexLock lock(&mu_);
  if (!initial_.empty()) return absl::OkStatus();
  switch (phase_) {
    case Phase::kFailed:
      return failed_;
    case Phase::kLive:
      return subscription_->closed();
    case Phase::kStarting:
    case Phase::kSnapshot:
      break;
  }
  return absl::OkStatus();
}

void WatchFeed::Stop() {
  {
    absl::MutexLock lock(&wake_mu_);
    detached_ = true;
    on_ready_ = nullptr;
  }
  std::shared_ptr<EventHub::Subscription> subscription;
  bool counted;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    initial_.clear();
    subscription = subscription_;
    counted = std::exchange(counted_, false);
  }
  // A start still running sees stopped_ and unsubscribes itself.
  if (subscription != nullptr) starter_->hub_->Unsubscribe(subscription);
  if (counted) starter_->Release(filter_.owner);
}

void WatchFeed::Wake() {
  absl::MutexLock lock(&wake_mu_);
  if (!detached_ && on_ready_) on_ready_();
}

void WatchFeed::Fail(absl::Status status) {
  phase_ = Phase::kFailed;
  failed_ = std::move(status);
  initial_.clear();
  reading_ = false;
}

WatchStarter::WatchStarter(JobService* jobs, EventHub* hub, const Clock* clock,
                           Options options)
    : jobs_(jobs),
      hub_(hub),
      clock_(clock),
      options_(options),
      pool_(std::make_unique<WorkerPool>(std::max(1, options.threads))) {}

WatchStarter::~WatchStarter() { Stop(); }

std::shared_ptr<WatchFeed> WatchStarter::Open(WatchFilter filter, int64_t since,
                                              absl::AnyInvocable<void()> on_ready) {
  std::shared_ptr<WatchFeed> feed(
      new WatchFeed(this, std::move(filter), since, std::move(on_ready)));
  absl::Status admitted = Admit(feed->filter_.owner);
  {
    absl::MutexLock lock(&feed->mu_);
    if (!admitted.ok()) {
      feed->Fail(std::move(admitted));
      return feed;
    }
    feed->counted_ = true;  // Until Stop(), whatever happens next.
  }
  if (!Submit(feed, &WatchStarter::StartFeed)) {
    absl::MutexLock lock(&feed->mu_);
    feed->Fail(ShuttingDown());
  }
  return feed;
}

absl::Status WatchStarter::Admit(const std::string& owner) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return ShuttingDown();
  if (streams_ >= options_.max_streams) {
    return absl::ResourceExhaustedError(absl::StrCat("max_watch_streams (",
                                                     options_.max_streams,
                                                     ") reached: timerd serves no more "
                                                     "watch streams until some end"));
  }
  size_t& mine = streams_by_owner_[owner];
  if (mine >= options_.max_streams_per_identity) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_watch_streams_per_identity (", options_.max_streams_per_identity,
        ") reached: end one of your watch streams first"));
  }
  ++mine;
  ++streams_;
  return absl::OkStatus();
}

void WatchStarter::Release(const std::string& owner) {
  absl::MutexLock lock(&mu_);
  auto it = streams_by_owner_.find(owner);
  if (it == streams_by_owner_.end()) return;
  --streams_;
  if (--it->second == 0) streams_by_owner_.erase(it);
}

void WatchStarter::Stop() {
  std::unique_ptr<WorkerPool> pool;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    pool = std::move(pool_);
  }
  // Runs what is queued (each step sees stopping() and reads nothing), then
  // joins.
  pool.reset();
}

bool WatchStarter::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

bool WatchStarter::Submit(std::shared_ptr<WatchFeed> feed,
                          void (WatchStarter::*step)(WatchFeed&)) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  pool_->Submit([this, feed = std::move(feed), step] { (this->*step)(*feed); });
  return true;
}

void WatchStarter::StartFeed(WatchFeed& feed) {
  const bool stop = stopping();
  {
    absl::MutexLock lock(&feed.mu_);
    if (feed.stopped_) return;
    if (stop) feed.Fail(ShuttingDown());
  }
  if (stop) {
    feed.Wake();
    return;
  }
  // Subscribed first: see the header.
  EventHub::Opened opened =
      hub_->Subscribe(feed.filter_, feed.since_, [weak = feed.weak_from_this()] {
        if (std::shared_ptr<WatchFeed> f = weak.lock()) f->Wake();
      });
  google::protobuf::Timestamp now;
  std::vector<EventPtr> events;
  absl::StatusOr<std::optional<store::ListCursor>> next = std::nullopt;
  if (opened.needs_snapshot) {
    now = ToProto(clock_->Now());
    if (feed.since_ > 0) {
      v1::JobEvent reset;
      reset.set_sequence(opened.head);
      reset.set_type(v1::JobEvent::RESET);
      *reset.mutable_event_time() = now;
      events.push_back(MakeEvent(std::move(reset)));
    }
    next = ReadPage(feed.filter_, std::nullopt, opened.head, now, events);
  } else {
    events = std::move(opened.replay);
  }
  bool stopped;
  {
    absl::MutexLock lock(&feed.mu_);
    stopped = feed.stopped_;
    if (!stopped) {
      feed.subscription_ = opened.subscription;
      feed.head_ = opened.head;
      feed.snapshot_time_ = now;
    }
  }
  if (stopped) {
    hub_->Unsubscribe(opened.subscription);
    return;
  }
  Deliver(feed, std::move(next), std::move(events));
}

void WatchStarter::ReadNextPage(WatchFeed& feed) {
  const bool stop = stopping();
  std::optional<store::ListCursor> after;
  int64_t head = 0;
  google::protobuf::Timestamp time;
  {
    absl::MutexLock lock(&feed.mu_);
    if (feed.stopped_) return;
    if (stop) feed.Fail(ShuttingDown());
    after = feed.next_page_;
    head = feed.head_;
    time = feed.snapshot_time_;
  }
  if (stop) {
    feed.Wake();
    return;
  }
  std::vector<EventPtr> events;
  absl::StatusOr<std::optional<store::ListCursor>> next =
      ReadPage(feed.filter_, after, head, time, events);
  Deliver(feed, std::move(next), std::move(events));
}

absl::StatusOr<std::optional<store::ListCursor>> WatchStarter::ReadPage(
    const WatchFilter& filter, const std::optional<store::ListCursor>& after,
    int64_t head, const google::protobuf::Timestamp& time,
    std::vector<EventPtr>& events) {
  ASSIGN_OR_RETURN(JobService::SnapshotPage page,
                   jobs_->Snapshot(filter, after, options_.snapshot_page_jobs,
                                   options_.snapshot_page_bytes));
  size_t bytes = 0;
  for (v1::Job& job : page.jobs) {
    store::ListCursor cursor = CursorOf(job);
    v1::JobEvent e;
    e.set_sequence(head);
    e.set_type(v1::JobEvent::SNAPSHOT);
    *e.mutable_event_time() = time;
    *e.mutable_job() = std::move(job);
    EventPtr event = MakeEvent(std::move(e));
    bytes += event->wire.size();
    events.push_back(std::move(event));
    // The rest of the page is read again, as the next one.
    if (bytes >= options_.snapshot_page_bytes && &job != &page.jobs.back()) {
      return std::optional<store::ListCursor>(std::move(cursor));
    }
  }
  return page.next;
}

void WatchStarter::Deliver(WatchFeed& feed,
                           absl::StatusOr<std::optional<store::ListCursor>> next,
                           std::vector<EventPtr> events) {
  const bool none = events.empty();
  bool read_again = false;
  {
    absl::MutexLock lock(&feed.mu_);
    if (feed.stopped_) return;
    feed.reading_ = false;
    if (!next.ok()) {
      feed.Fail(next.status());
    } else {
      for (EventPtr& e : events) feed.initial_.push_back(std::move(e));
      if (next->has_value()) {
        feed.phase_ = WatchFeed::Phase::kSnapshot;
        feed.next_page_ = **next;
        // A page of jobs none of which match: on to the next, after
        // whatever else waits for these threads.
        read_again = none;
        feed.reading_ = read_again;
      } else {
        feed.phase_ = WatchFeed::Phase::kLive;
      }
    }
  }
  if (read_again) {
    if (Submit(feed.shared_from_this(), &WatchStarter::ReadNextPage)) return;
    absl::MutexLock lock(&feed.mu_);
    feed.Fail(ShuttingDown());
  }
  feed.Wake();
}

}  // namespace timer::domain
