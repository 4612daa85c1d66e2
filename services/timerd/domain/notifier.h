// Notifier: delivers a job's notifications (Job.notification) as signed
// webhooks: a POST of a JSON document (docs/API.md, "Notifications") with
// the header
//   Timer-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>
// keyed with the operator's [notifications] key_file.
//
// It is an EventSink placed beside the EventHub (TeeSink): it sees the
// events this process publishes, so with several replicas each run is
// notified by the replica that ran it (a RUN_FINISHED is published by that
// replica only), and each pause or end by the replica that made it.
// Publish() decides from the event alone whether anything is due and queues
// a delivery; it never blocks and never does I/O, so runs never wait for a
// receiver.
//   FAILURE   a run ended FAILED or UNKNOWN
//   RECOVERY  a run SUCCEEDED and the newest earlier finished run of the job
//             had failed; the earlier run is read from the store on a
//             delivery thread (PreviousFailed), only for jobs that ask for
//             RECOVERY
//   END       the job ENDED
//   PAUSE     the job was paused after repeated failures: a PAUSED event
//             whose job's inactive_reason.cause is CONSECUTIVE_FAILURES (a
//             user's pause is not notified). Once per pause: a PAUSED event
//             for a job whose pause (inactive_reason.time) was already
//             notified, such as a user pausing the paused job again, sends
//             nothing; RESUMED and DELETED forget the job's pause.
//
// Bounds: at most `max_queued` deliveries wait or are between attempts, at
// most `max_queued_per_owner` of them for one owner; one more is dropped
// (counted as outcome "dropped" and logged). The pauses already notified are
// remembered for at most kMaxRememberedPauses jobs (one time each); past
// that the oldest-keyed is forgotten (at worst, one more notice of a pause
// published again). `threads` delivery threads,
// each with one libcurl handle (keep-alive); a delivery's attempt takes at
// most `timeout`, its body at most 64 KiB (a run's error is cut to 4 KiB).
// A failed attempt (no 2xx) is retried after initial_backoff, doubling up
// to max_backoff, at most `max_attempts` attempts in all.
//
// Crash or shutdown: queued deliveries are in memory only and are lost
// (at most once); Stop() drops what is still queued, counted as "dropped".
//
// URLs: checked at job create/update (Validate) against the allowlist
// (plugins/common/url_allowlist.h), and every connection against the same
// address rules. Logs show scheme://host/path only (a query may hold a token).
//
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "domain/clock.h"
#include "domain/events.h"
#include "timer/v1/timer.pb.h"
#include "url_allowlist.h"

namespace timer::domain {

class Notifier final : public EventSink {
 public:
  struct Options {
    std::vector<std::string> allow;  // url_allowlist entries
    std::string key;                 // the HMAC key (the key file's bytes)
    std::string ca_file;             // empty: the system's CA bundle
    int threads = 2;
    size_t max_queued = 1000;
    size_t max_queued_per_owner = 100;
    int max_attempts = 5;
    absl::Duration initial_backoff = absl::Seconds(1);
    absl::Duration max_backoff = absl::Seconds(60);
    absl::Duration timeout = absl::Seconds(10);
  };
  // Whether the run before `run_number` of the job failed (the newest
  // earlier finished run). Called on a delivery thread.
  using PreviousFailedFn =
      std::function<absl::StatusOr<bool>(const v1::Job& job, int64_t run_number)>;

  // Checks the options (allowlist syntax, a non-empty key).
  static absl::StatusOr<std::unique_ptr<Notifier>> Create(
      Options options, const Clock* clock, PreviousFailedFn previous_failed);
  ~Notifier() override;  // Stop()
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Starts the delivery threads.
  void Start();
  // Stops the threads (an attempt in flight is abandoned at once); drops
  // whatever is still queued.
  void Stop();

  // job.notification's rules, for job create and update: the URL parses, is
  // http(s) and on the allowlist; `on` holds known events, each once.
  // Errors name the field (job.notification.url).
  absl::Status Validate(const v1::Notification& notification) const;

  // EventSink: queues what `type` calls for. Never blocks.
  void Publish(v1::JobEvent::Type type, const v1::Job& job,
               const v1::JobResult* result) override;

  // The signature header value for `body` at `unix_seconds` with `key`.
  static std::string Sign(const std::string& key, int64_t unix_seconds,
                          const std::string& body);

  // Deliveries queued or between attempts; for tests.
  size_t queued() const;

  // How many jobs' notified pauses are remembered (see the header comment).
  static constexpr size_t kMaxRememberedPauses = 100000;

 private:
  struct Delivery {
    std::string owner;
    std::string url;
    std::string redacted_url;
    std::string id;      // the document's "id", also its Idempotency-Key
    std::string job_id;  // for logs
    std::string body;    // the JSON document
    v1::Notification::Event event = v1::Notification::EVENT_UNSPECIFIED;
    // RECOVERY candidates: the job and run to ask PreviousFailed about.
    std::shared_ptr<const v1::Job> job;
    int64_t run_number = 0;
    int attempt = 0;
    absl::Time due;
    uint64_t seq = 0;
  };
  struct Later {
    bool operator()(const std::shared_ptr<Delivery>& a,
                    const std::shared_ptr<Delivery>& b) const {
      return a->due != b->due ? a->due > b->due : a->seq > b->seq;
    }
  };

  Notifier(Options options, net::UrlAllowlist allow, const Clock* clock,
           PreviousFailedFn previous_failed);
  void Enqueue(std::shared_ptr<Delivery> d);
  void Loop();
  // One attempt: true on a 2xx answer. `why` says what went wrong.
  bool Attempt(void* curl, const Delivery& d, std::string* why);
  void Finished(const Delivery& d);
  bool ReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True the first time `job`'s current pause (its inactive_reason.time) is
  // seen, and remembers it; false for a pause already notified.
  bool FirstNoticeOfPause(const v1::Job& job);
  void ForgetPause(const std::string& job_id);

  const Options options_;
  const net::UrlAllowlist allow_;
  const Clock* clock_;
  const PreviousFailedFn previous_failed_;

  mutable absl::Mutex mu_;
  std::priority_queue<std::shared_ptr<Delivery>, std::vector<std::shared_ptr<Delivery>>,
                      Later>
      queue_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, size_t> per_owner_ ABSL_GUARDED_BY(mu_);
  size_t total_ ABSL_GUARDED_BY(mu_) = 0;  // queued + in flight
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // job id -> the inactive_reason.time of its pause last notified.
  std::map<std::string, absl::Time> paused_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
  // Set by Stop(): an attempt in flight gives up at once.
  std::atomic<bool> abort_{false};
};

// Publishes every event to both sinks, `first` first. Neither is owned.
class TeeSink final : public EventSink {
 public:
  TeeSink(EventSink* first, EventSink* second) : first_(first), second_(second) {}
  void Publish(v1::JobEvent::Type type, const v1::Job& job,
               const v1::JobResult* result) override {
    first_->Publish(type, job, result);
    second_->Publish(type, job, result);
  }

 private:
  EventSink* const first_;
  EventSink* const second_;
};

}  // namespace timer::domain
