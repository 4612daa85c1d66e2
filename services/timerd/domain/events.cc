#include "domain/events.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "domain/time_util.h"
#include "util/metrics.h"
#include "util/thread_name.h"

namespace timer::domain {

bool WatchFilter::Matches(const v1::Job& job) const {
  if (job.owner() != owner) return false;
  if (!job_id.empty() && job.job_id() != job_id) return false;
  if (statuses != 0 && (statuses & StatusBit(job.status())) == 0) return false;
  return name_contains.empty() || absl::StrContains(job.name(), name_contains);
}

EventPtr MakeEvent(v1::JobEvent message) {
  auto e = std::make_shared<Event>();
  e->message = std::move(message);
  e->message.SerializeToString(&e->wire);
  return e;
}

size_t EventBytes(const Event& e) {
  // The parsed message's strings and submessages: about its wire size again,
  // plus their object headers, which the allowance covers.
  constexpr size_t kObjects = 1024;
  return sizeof(Event) + kObjects + 2 * e.wire.size();
}

void ClearToBasic(v1::Job& job) {
  // Not clear_body() and clear_results(): protobuf keeps a cleared string's
  // buffer and a cleared repeated field's elements for reuse, so a job
  // cleared that way still holds every byte it had.
  if (job.has_action()) std::string().swap(*job.mutable_action()->mutable_body());
  google::protobuf::RepeatedPtrField<v1::JobResult>().Swap(job.mutable_results());
}

size_t EventHub::Subscription::Take(size_t max, std::vector<EventPtr>& out,
                                    size_t max_bytes) {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  size_t bytes = 0;
  while (n < max && !queue_.empty()) {
    const size_t size = queue_.front()->wire.size();
    if (n > 0 && bytes + size > max_bytes) break;
    bytes += size;
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
    ++n;
  }
  return n;
}

size_t EventHub::Subscription::buffered() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

absl::Status EventHub::Subscription::closed() const {
  absl::MutexLock lock(&mu_);
  return queue_.empty() ? closed_ : absl::OkStatus();
}

bool EventHub::Subscription::Push(const EventPtr& e) {
  absl::MutexLock lock(&mu_);
  if (!closed_.ok()) return false;
  if (queue_.size() >= capacity_) {
    metrics::CountWatchStreamDropped("slow_consumer");
    closed_ = absl::ResourceExhaustedError(
        absl::StrCat("this watcher fell ", capacity_,
                     " events behind and was dropped; resume with since=", last_queued_));
    return true;
  }
  queue_.push_back(e);
  last_queued_ = e->message.sequence();
  return queue_.size() == 1;
}

bool EventHub::Subscription::Close(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (!closed_.ok()) return false;
  closed_ =
      absl::Status(status.code(),
                   absl::StrCat(status.message(), "; resume with since=", last_queued_));
  return true;
}

void EventHub::Subscription::Wake() {
  absl::MutexLock lock(&wake_mu_);
  if (!detached_ && on_ready_) on_ready_();
}

void EventHub::Subscription::Detach() {
  absl::MutexLock lock(&wake_mu_);
  detached_ = true;
  on_ready_ = nullptr;
}

EventHub::EventHub(const Clock* clock, Options options)
    : clock_(clock),
      options_(options),
      head_(std::max<int64_t>(1, absl::ToUnixMicros(clock->Now()))) {
  dispatched_ = head_;
  dispatcher_ = std::thread([this] {
    util::SetThreadName("event-dispatch");
    DispatchLoop();
  });
}

EventHub::~EventHub() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  dispatcher_.join();
}

void EventHub::DispatchLoop() {
  std::vector<EventPtr> batch;
  // Each event's owner's watchers, as they were when the batch was taken.
  std::vector<std::shared_ptr<const Subscriptions>> watchers;
  std::vector<std::shared_ptr<Subscription>> wake;
  for (;;) {
    batch.clear();
    watchers.clear();
    wake.clear();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](EventHub* h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(h->mu_) {
            return !h->pending_.empty() || h->stopping_;
          },
          this));
      if (pending_.empty()) return;  // Stopping, and all handed out.
      batch.assign(std::make_move_iterator(pending_.begin()),
                   std::make_move_iterator(pending_.end()));
      pending_.clear();
      // A subscription made after this point starts after every event of
      // the batch (its start_after_ is the head now), so it needs none of
      // them; one removed after it may still get some, harmlessly.
      for (const EventPtr& e : batch) {
        auto it = by_owner_.find(e->message.job().owner());
        watchers.push_back(it == by_owner_.end() ? nullptr : it->second);
      }
    }
    // Matching runs without mu_: however costly a filter, publishers and
    // new subscriptions do not wait for it.
    for (size_t i = 0; i < batch.size(); ++i) {
      if (watchers[i] == nullptr) continue;
      const EventPtr& e = batch[i];
      for (const std::shared_ptr<Subscription>& s : *watchers[i]) {
        if (e->message.sequence() > s->start_after_ &&
            s->filter_.Matches(e->message.job()) && s->Push(e)) {
          wake.push_back(s);
        }
      }
    }
    {
      absl::MutexLock lock(&mu_);
      // Not back: LoseUpTo may have moved it past this batch.
      dispatched_ = std::max(dispatched_, batch.back()->message.sequence());
    }
    // Each subscription once, however many of its events this batch held.
    std::sort(wake.begin(), wake.end());
    wake.erase(std::unique(wake.begin(), wake.end()), wake.end());
    for (const std::shared_ptr<Subscription>& s : wake) s->Wake();
  }
}

void EventHub::Flush() {
  absl::MutexLock lock(&mu_);
  const int64_t target = head_;
  auto done = [this, target]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return dispatched_ >= target; };
  mu_.Await(absl::Condition(&done));
}

void EventHub::Publish(v1::JobEvent::Type type, const v1::Job& job,
                       const v1::JobResult* result) {
  auto event = std::make_shared<Event>();
  v1::JobEvent& m = event->message;
  m.set_type(type);
  *m.mutable_event_time() = ToProto(clock_->Now());
  v1::Job* copy = m.mutable_job();
  *copy = job;
  // Events stay small whatever the job holds: the body is left out (GetJob
  // has it), the results travel as `result` and in snapshots.
  ClearToBasic(*copy);
  if (result != nullptr) *m.mutable_result() = *result;
  // Serialized outside the lock, without the sequence; the lock only puts
  // the sequence field in front (a parser takes fields in any order).
  std::string rest = m.SerializeAsString();
  if (options_.shared) {
    // Numbered by the shared log; comes back through Ingest().
    if (outbox_ != nullptr) outbox_->Send(m, std::move(rest));
    return;
  }

  absl::MutexLock lock(&mu_);
  m.set_sequence(++head_);
  {
    v1::JobEvent sequence_only;
    sequence_only.set_sequence(head_);
    sequence_only.SerializeToString(&event->wire);
  }
  event->wire.append(rest);
  Append(std::move(event));
}

void EventHub::Append(EventPtr shared) {
  log_bytes_ += EventBytes(*shared);
  log_.push_back(shared);
  while (log_.size() > 1 &&
         (log_.size() > options_.keep_events || log_bytes_ > options_.keep_bytes)) {
    log_bytes_ -= EventBytes(*log_.front());
    log_.pop_front();
  }
  pending_.push_back(std::move(shared));
}

void EventHub::StartAt(int64_t head) {
  absl::MutexLock lock(&mu_);
  head_ = floor_ = dispatched_ = head;
}

std::vector<EventPtr> EventHub::Ingest(const std::vector<store::LoggedEvent>& events) {
  // Parsed and framed outside the lock, as Publish serializes outside it.
  std::vector<EventPtr> parsed(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    const store::LoggedEvent& row = events[i];
    if (row.IsLostMarker()) continue;
    auto e = std::make_shared<Event>();
    if (!e->message.ParseFromString(row.body)) continue;
    e->message.set_sequence(row.seq);
    v1::JobEvent sequence_only;
    sequence_only.set_sequence(row.seq);
    sequence_only.SerializeToString(&e->wire);
    e->wire.append(row.body);
    parsed[i] = std::move(e);
  }
  std::vector<std::shared_ptr<Subscription>> wake;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < events.size(); ++i) {
      const int64_t seq = events[i].seq;
      if (seq <= head_) {
        parsed[i] = nullptr;  // Already here (a read again after an error).
        continue;
      }
      if (seq != head_ + 1) {
        // Pruned before this replica read them, or lost with the log's
        // table (a PostgreSQL crash): watchers may have missed them.
        std::vector<std::shared_ptr<Subscription>> closed = LoseUpTo(seq - 1);
        wake.insert(wake.end(), closed.begin(), closed.end());
      }
      if (events[i].IsLostMarker()) {
        // A replica dropped events it could not append, before this.
        std::vector<std::shared_ptr<Subscription>> closed = LoseUpTo(seq);
        wake.insert(wake.end(), closed.begin(), closed.end());
        continue;
      }
      head_ = seq;
      if (parsed[i] == nullptr) continue;  // Unreadable: skipped, numbered.
      Append(parsed[i]);
    }
  }
  for (const std::shared_ptr<Subscription>& s : wake) s->Wake();
  return parsed;
}

std::vector<std::shared_ptr<EventHub::Subscription>> EventHub::LoseUpTo(int64_t seq) {
  head_ = std::max(head_, seq);
  floor_ = std::max(floor_, seq);
  log_.clear();
  log_bytes_ = 0;
  // Their subscriptions are closed below; later ones start after them.
  pending_.clear();
  dispatched_ = head_;
  std::vector<std::shared_ptr<Subscription>> wake;
  for (auto& [owner, subs] : by_owner_) {
    for (const std::shared_ptr<Subscription>& s : *subs) {
      if (s->Close(absl::UnavailableError(
              "events were lost between timerd replicas (the shared event log "
              "was unreachable or emptied); this stream must start over"))) {
        metrics::CountWatchStreamDropped("events_lost");
        wake.push_back(s);
      }
    }
  }
  return wake;
}

EventHub::Opened EventHub::Subscribe(WatchFilter filter, int64_t since,
                                     absl::AnyInvocable<void()> on_ready) {
  Opened opened;
  std::shared_ptr<Subscription> sub(
      new Subscription(std::move(filter), options_.buffer_events, std::move(on_ready)));
  {
    absl::MutexLock lock(&mu_);
    if (options_.shared && since > head_ && since_waiting_ == 0 &&
        since - head_ <= static_cast<int64_t>(options_.keep_events)) {
      // Seen on another replica a moment ago: this one's tail is on its way.
      // One such wait at a time (it holds a WatchStarter thread), and only
      // for a `since` within reach: a made-up one cannot hold the starter's
      // threads; it gets a RESET instead.
      ++since_waiting_;
      auto caught_up = [this, since]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return head_ >= since || shut_down_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&caught_up), options_.since_wait);
      --since_waiting_;
    }
    opened.head = head_;
    {
      absl::MutexLock sub_lock(&sub->mu_);
      sub->last_queued_ = head_;
    }
    sub->start_after_ = head_;
    const int64_t first = log_.empty() ? head_ + 1 : log_.front()->message.sequence();
    if (since <= 0 || since < first - 1 || since < floor_ || since > head_) {
      opened.needs_snapshot = true;
    } else {
      // Sequence numbers in the log are consecutive. Only the owner is
      // compared here; the rest of the filter is matched after the lock.
      for (auto it = log_.begin() + (since - first + 1); it != log_.end(); ++it) {
        if ((*it)->message.job().owner() == sub->filter_.owner) {
          opened.replay.push_back(*it);
        }
      }
    }
    if (shut_down_) {
      // Its first Take() finds it closed.
      sub->Close(absl::UnavailableError("timerd is shutting down"));
    } else {
      std::shared_ptr<const Subscriptions>& list = by_owner_[sub->filter_.owner];
      auto grown = list ? std::make_shared<Subscriptions>(*list)
                        : std::make_shared<Subscriptions>();
      grown->push_back(sub);
      list = std::move(grown);
      ++count_;
      metrics::WatchStreamOpened();
    }
  }
  opened.replay.erase(std::remove_if(opened.replay.begin(), opened.replay.end(),
                                     [&sub](const EventPtr& e) {
                                       return !sub->filter_.Matches(e->message.job());
                                     }),
                      opened.replay.end());
  opened.subscription = std::move(sub);
  return opened;
}

void EventHub::Unsubscribe(const std::shared_ptr<Subscription>& subscription) {
  subscription->Detach();
  absl::MutexLock lock(&mu_);
  auto it = by_owner_.find(subscription->filter_.owner);
  if (it == by_owner_.end()) return;
  const Subscriptions& subs = *it->second;
  auto found = std::find(subs.begin(), subs.end(), subscription);
  if (found == subs.end()) return;
  --count_;
  metrics::WatchStreamClosed();
  if (subs.size() == 1) {
    by_owner_.erase(it);
    return;
  }
  auto shrunk = std::make_shared<Subscriptions>();
  shrunk->reserve(subs.size() - 1);
  for (const std::shared_ptr<Subscription>& s : subs) {
    if (s != subscription) shrunk->push_back(s);
  }
  it->second = std::move(shrunk);
}

void EventHub::Shutdown() {
  std::vector<std::shared_ptr<Subscription>> wake;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    for (auto& [owner, subs] : by_owner_) {
      for (const std::shared_ptr<Subscription>& s : *subs) {
        if (s->Close(absl::UnavailableError("timerd is shutting down")))
          wake.push_back(s);
      }
    }
  }
  for (const std::shared_ptr<Subscription>& s : wake) s->Wake();
}

int64_t EventHub::head() const {
  absl::MutexLock lock(&mu_);
  return head_;
}

size_t EventHub::subscriptions() const {
  absl::MutexLock lock(&mu_);
  return count_;
}

size_t EventHub::kept_events() const {
  absl::MutexLock lock(&mu_);
  return log_.size();
}

size_t EventHub::kept_bytes() const {
  absl::MutexLock lock(&mu_);
  return log_bytes_;
}

}  // namespace timer::domain
