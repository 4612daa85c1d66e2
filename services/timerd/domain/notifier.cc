#include "domain/notifier.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "curl_handle.h"
#include "domain/ids.h"
#include "domain/time_util.h"
#include "spdlog/spdlog.h"
#include "util/metrics.h"

namespace timer::domain {
namespace {

constexpr size_t kMaxError = 4096;

metrics::Counter& Outcome(std::string_view outcome) {
  static metrics::Family<metrics::Counter>& family =
      metrics::Registry::Global().AddCounter(
          "timer_notifications_total",
          "Notification webhooks, by outcome: delivered, retried (an attempt failed and "
          "another follows), failed (every attempt failed), dropped (queue full or "
          "shutdown).",
          {"outcome"});
  return family.With({std::string(outcome)});
}

std::string_view EventName(v1::Notification::Event e) {
  switch (e) {
    case v1::Notification::FAILURE:
      return "failure";
    case v1::Notification::RECOVERY:
      return "recovery";
    case v1::Notification::END:
      return "end";
    case v1::Notification::PAUSE:
      return "pause";
    default:
      return "unspecified";
  }
}

std::string_view RunStatusName(v1::JobResult::Status s) {
  switch (s) {
    case v1::JobResult::SUCCEEDED:
      return "SUCCEEDED";
    case v1::JobResult::FAILED:
      return "FAILED";
    case v1::JobResult::UNKNOWN:
      return "UNKNOWN";
    case v1::JobResult::CANCELLED:
      return "CANCELLED";
    case v1::JobResult::SKIPPED:
      return "SKIPPED";
    default:
      return v1::JobResult::Status_Name(s);
  }
}

std::string Rfc3339(const google::protobuf::Timestamp& t) {
  absl::Time at = absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", at, absl::UTCTimeZone());
}

bool Wants(const v1::Notification& n, v1::Notification::Event e) {
  if (n.on_size() == 0) return e == v1::Notification::FAILURE;
  for (int v : n.on()) {
    if (v == e) return true;
  }
  return false;
}

// The document, without "event" (set when the delivery is decided).
nlohmann::json Document(const v1::Job& job, const v1::JobResult* result, absl::Time now) {
  nlohmann::json doc;
  doc["job"] = {{"id", job.job_id()},
                {"name", job.name()},
                {"owner", job.owner()},
                {"status", v1::Job::Status_Name(job.status())}};
  if (result != nullptr) {
    nlohmann::json run = {{"number", result->run_number()},
                          {"status", RunStatusName(result->status())}};
    if (!result->error().empty()) run["error"] = result->error().substr(0, kMaxError);
    if (result->has_scheduled_time())
      run["scheduled_time"] = Rfc3339(result->scheduled_time());
    if (result->has_start_time()) run["start_time"] = Rfc3339(result->start_time());
    if (result->has_end_time()) run["end_time"] = Rfc3339(result->end_time());
    doc["run"] = std::move(run);
  }
  if (job.status() == v1::Job::PAUSED && job.has_inactive_reason()) {
    const v1::InactiveReason& why = job.inactive_reason();
    nlohmann::json reason = {{"cause", v1::InactiveReason::Cause_Name(why.cause())},
                             {"detail", why.detail().substr(0, kMaxError)}};
    if (why.has_time()) reason["time"] = Rfc3339(why.time());
    doc["inactive_reason"] = std::move(reason);
  }
  doc["time"] = absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", now, absl::UTCTimeZone());
  doc["id"] = NewUuid();
  return doc;
}

// The connect-time address check (url_allowlist.h).
curl_socket_t OpenSocket(void* user, curlsocktype purpose, struct curl_sockaddr* a) {
  const auto* allow = static_cast<const net::UrlAllowlist*>(user);
  net::Address addr;
  int port = 0;
  if (purpose != CURLSOCKTYPE_IPCXN || !net::FromSockaddr(&a->addr, &addr, &port) ||
      !allow->AddressAllowed(addr, port)) {
    return CURL_SOCKET_BAD;
  }
  return ::socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

int AbortIfStopping(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(user)->load() ? 1 : 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Notifier>> Notifier::Create(
    Options options, const Clock* clock, PreviousFailedFn previous_failed) {
  if (options.key.empty()) {
    return absl::InvalidArgumentError("notifications.key_file: the key is empty");
  }
  net::UrlAllowlist allow;
  std::string why;
  if (!net::UrlAllowlist::Parse(options.allow, "notifications.allow", &allow, &why)) {
    return absl::InvalidArgumentError(why);
  }
  if (options.threads < 1 || options.max_attempts < 1) {
    return absl::InvalidArgumentError(
        "notifications: threads and max_attempts must be >= 1");
  }
  net::InitCurlOnce();
  return std::unique_ptr<Notifier>(new Notifier(std::move(options), std::move(allow),
                                                clock, std::move(previous_failed)));
}

Notifier::Notifier(Options options, net::UrlAllowlist allow, const Clock* clock,
                   PreviousFailedFn previous_failed)
    : options_(std::move(options)),
      allow_(std::move(allow)),
      clock_(clock),
      previous_failed_(std::move(previous_failed)) {}

Notifier::~Notifier() { Stop(); }

void Notifier::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { Loop(); });
}

void Notifier::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  abort_ = true;
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  absl::MutexLock lock(&mu_);
  if (!queue_.empty()) {
    spdlog::warn("notifications: {} queued notification(s) dropped at shutdown",
                 queue_.size());
    Outcome("dropped").Inc(queue_.size());
  }
  while (!queue_.empty()) queue_.pop();
  per_owner_.clear();
  total_ = 0;
}

bool Notifier::ReadyLocked() const {
  return stopping_ || (!queue_.empty() && queue_.top()->due <= clock_->Now());
}

size_t Notifier::queued() const {
  absl::MutexLock lock(&mu_);
  return total_;
}

absl::Status Notifier::Validate(const v1::Notification& n) const {
  if (n.url().empty()) {
    if (n.on_size() > 0) {
      return absl::InvalidArgumentError(
          "job.notification.url: required with job.notification.on");
    }
    return absl::OkStatus();
  }
  net::Url url;
  std::string why;
  if (!net::ParseUrl(n.url(), &url, &why)) {
    return absl::InvalidArgumentError(absl::StrCat("job.notification.url: ", why));
  }
  if (!allow_.UrlAllowed(url)) {
    return absl::PermissionDeniedError(
        absl::StrCat("job.notification.url: ", url.Redacted(),
                     " is not on the operator's allowlist (notifications.allow)"));
  }
  std::set<int> seen;
  for (int e : n.on()) {
    if (e <= v1::Notification::EVENT_UNSPECIFIED || e > v1::Notification::PAUSE) {
      return absl::InvalidArgumentError("job.notification.on: unknown event");
    }
    if (!seen.insert(e).second) {
      return absl::InvalidArgumentError("job.notification.on: an event is listed twice");
    }
  }
  return absl::OkStatus();
}

void Notifier::Publish(v1::JobEvent::Type type, const v1::Job& job,
                       const v1::JobResult* result) {
  if (!job.has_notification() || job.notification().url().empty()) return;
  const v1::Notification& n = job.notification();
  v1::Notification::Event event = v1::Notification::EVENT_UNSPECIFIED;
  bool recovery_candidate = false;
  if (type == v1::JobEvent::RUN_FINISHED && result != nullptr) {
    const auto s = result->status();
    if ((s == v1::JobResult::FAILED || s == v1::JobResult::UNKNOWN) &&
        Wants(n, v1::Notification::FAILURE)) {
      event = v1::Notification::FAILURE;
    } else if (s == v1::JobResult::SUCCEEDED && Wants(n, v1::Notification::RECOVERY)) {
      event = v1::Notification::RECOVERY;
      recovery_candidate = true;
    }
  } else if (type == v1::JobEvent::ENDED && Wants(n, v1::Notification::END)) {
    event = v1::Notification::END;
  } else if (type == v1::JobEvent::PAUSED &&
             job.inactive_reason().cause() == v1::InactiveReason::CONSECUTIVE_FAILURES &&
             Wants(n, v1::Notification::PAUSE) && FirstNoticeOfPause(job)) {
    event = v1::Notification::PAUSE;
  } else if (type == v1::JobEvent::RESUMED || type == v1::JobEvent::DELETED) {
    ForgetPause(job.job_id());
  }
  if (event == v1::Notification::EVENT_UNSPECIFIED) return;

  auto d = std::make_shared<Delivery>();
  d->owner = job.owner();
  d->url = n.url();
  net::Url parsed;
  std::string why;
  d->redacted_url =
      net::ParseUrl(n.url(), &parsed, &why) ? parsed.Redacted() : "(bad url)";
  d->event = event;
  nlohmann::json doc = Document(job, result, clock_->Now());
  doc["event"] = EventName(event);
  d->id = doc["id"].get<std::string>();
  d->job_id = job.job_id();
  d->body = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (recovery_candidate) {
    d->job = std::make_shared<const v1::Job>(job);
    d->run_number = result->run_number();
  }
  Enqueue(std::move(d));
}

bool Notifier::FirstNoticeOfPause(const v1::Job& job) {
  const absl::Time when = job.inactive_reason().has_time()
                              ? FromProto(job.inactive_reason().time())
                              : absl::InfinitePast();
  absl::MutexLock lock(&mu_);
  auto it = paused_.find(job.job_id());
  if (it != paused_.end()) {
    if (it->second == when) return false;  // the same pause, published again
    it->second = when;
    return true;
  }
  // Bounded: past kMaxRememberedPauses a job paused long ago is forgotten,
  // at worst one more notice of its (unchanged) pause.
  if (paused_.size() >= kMaxRememberedPauses) paused_.erase(paused_.begin());
  paused_.emplace(job.job_id(), when);
  return true;
}

void Notifier::ForgetPause(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  paused_.erase(job_id);
}

void Notifier::Enqueue(std::shared_ptr<Delivery> d) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || total_ >= options_.max_queued ||
      per_owner_[d->owner] >= options_.max_queued_per_owner) {
    if (per_owner_[d->owner] == 0) per_owner_.erase(d->owner);
    Outcome("dropped").Inc();
    spdlog::warn("notifications: {} notification to {} for {} dropped: {}",
                 EventName(d->event), d->redacted_url, d->owner,
                 stopping_ ? "shutting down" : "queue full (notifications.max_queued*)");
    return;
  }
  ++total_;
  ++per_owner_[d->owner];
  d->due = clock_->Now();
  d->seq = next_seq_++;
  queue_.push(std::move(d));
}

void Notifier::Finished(const Delivery& d) {
  absl::MutexLock lock(&mu_);
  --total_;
  auto it = per_owner_.find(d.owner);
  if (it != per_owner_.end() && --it->second == 0) per_owner_.erase(it);
}

bool Notifier::Attempt(void* curl, const Delivery& d, std::string* why) {
  CURL* h = static_cast<CURL*>(curl);
  const int64_t t = absl::ToUnixSeconds(clock_->Now());
  net::HeaderList headers;
  if (!net::AppendHeader(&headers, "Content-Type: application/json") ||
      !net::AppendHeader(&headers, "Timer-Signature: " + Sign(options_.key, t, d.body)) ||
      !net::AppendHeader(&headers, "Expect:") ||
      !net::AppendHeader(&headers, "Idempotency-Key: " + d.id)) {
    *why = "out of memory";
    return false;
  }
  // Reset, URL, http(s) only, no redirects, TLS verified (plugins/common/
  // curl_handle.h); the whole attempt is bounded by the timeout below.
  char errbuf[CURL_ERROR_SIZE];
  net::SafeOptions safe;
  safe.url = d.url.c_str();
  safe.ca_file = options_.ca_file.c_str();
  safe.errbuf = errbuf;
  if (const CURLcode rc = net::ApplySafeOptions(h, safe); rc != CURLE_OK) {
    *why = curl_easy_strerror(rc);
    return false;
  }
  curl_easy_setopt(h, CURLOPT_PROXY, "");  // never the environment's proxy
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
  curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, &OpenSocket);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, const_cast<net::UrlAllowlist*>(&allow_));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Discard);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &AbortIfStopping);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &abort_);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, d.body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(d.body.size()));
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(1 << 20));
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK && rc != CURLE_FILESIZE_EXCEEDED) {
    *why = rc == CURLE_COULDNT_CONNECT
               ? "could not connect (or the address is not allowed)"
               : curl_easy_strerror(rc);
    return false;
  }
  if (status < 200 || status >= 300) {
    *why = absl::StrCat("answered ", status);
    return false;
  }
  return true;
}

void Notifier::Loop() {
  net::EasyHandle curl(curl_easy_init());
  for (;;) {
    std::shared_ptr<Delivery> d;
    {
      absl::MutexLock lock(&mu_);
      for (;;) {
        if (stopping_) return;
        if (!queue_.empty() && queue_.top()->due <= clock_->Now()) break;
        // Woken by Enqueue (the condition is evaluated when the lock is
        // released) or when the earliest retry comes due.
        absl::Duration wait = queue_.empty() ? absl::Seconds(1)
                                             : std::min(queue_.top()->due - clock_->Now(),
                                                        absl::Seconds(1));
        mu_.AwaitWithTimeout(absl::Condition(this, &Notifier::ReadyLocked),
                             std::max(wait, absl::Milliseconds(1)));
      }
      d = queue_.top();
      queue_.pop();
    }
    if (d->job != nullptr) {
      // A RECOVERY only if the run before this one failed.
      absl::StatusOr<bool> failed = previous_failed_
                                        ? previous_failed_(*d->job, d->run_number)
                                        : absl::StatusOr<bool>(false);
      d->job.reset();
      if (!failed.ok()) {
        spdlog::warn("notifications: recovery check of job {} failed: {}", d->job_id,
                     std::string(failed.status().message()));
      }
      if (!failed.ok() || !*failed) {
        Finished(*d);
        continue;
      }
    }
    ++d->attempt;
    std::string why;
    if (curl != nullptr && Attempt(curl.get(), *d, &why)) {
      Outcome("delivered").Inc();
      Finished(*d);
      continue;
    }
    if (curl == nullptr) why = "no libcurl handle";
    if (d->attempt >= options_.max_attempts) {
      Outcome("failed").Inc();
      spdlog::warn(
          "notifications: {} notification to {} for {} failed after {} attempt(s): {}",
          EventName(d->event), d->redacted_url, d->owner, d->attempt, why);
      Finished(*d);
      continue;
    }
    Outcome("retried").Inc();
    absl::Duration backoff = options_.initial_backoff;
    for (int i = 1; i < d->attempt && backoff < options_.max_backoff; ++i) backoff *= 2;
    backoff = std::min(backoff, options_.max_backoff);
    spdlog::info(
        "notifications: {} notification to {} attempt {} failed ({}); again in {}",
        EventName(d->event), d->redacted_url, d->attempt, why,
        absl::FormatDuration(backoff));
    absl::MutexLock lock(&mu_);
    d->due = clock_->Now() + backoff;
    queue_.push(std::move(d));
  }
}

std::string Notifier::Sign(const std::string& key, int64_t unix_seconds,
                           const std::string& body) {
  const std::string t = std::to_string(unix_seconds);
  const std::string message = t + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  static const char* hex = "0123456789abcdef";
  std::string out = "t=" + t + ",v1=";
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[mac[i] >> 4]);
    out.push_back(hex[mac[i] & 0xf]);
  }
  return out;
}

}  // namespace timer::domain
