#include "run_limits.h"

#include <chrono>

#include "copier.h"

namespace timer::plugins::transfer {
namespace {

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

RunLimits::RunLimits(const Request& req, const CopyOptions& options)
    : req_(req), options_(options) {}

bool RunLimits::NeedsFreeBytes() const { return req_.destination->min_free_bytes > 0; }

bool RunLimits::Admit(int64_t free_bytes, int64_t bytes, int64_t entries,
                      std::string* stop) {
  if (!stop->empty()) return false;
  if (options_.max_bytes_per_run > 0 && run_bytes_ + bytes > options_.max_bytes_per_run) {
    *stop = "max_bytes_per_run (" + std::to_string(options_.max_bytes_per_run) +
            ") reached: the run has written " + std::to_string(run_bytes_) +
            " bytes and needs " + std::to_string(bytes) + " more";
    return false;
  }
  if (options_.max_files_per_run > 0 &&
      run_entries_ + entries > options_.max_files_per_run) {
    *stop = "max_files_per_run (" + std::to_string(options_.max_files_per_run) +
            ") reached: the run has created " + std::to_string(run_entries_) +
            " files and directories";
    return false;
  }
  const int64_t floor = req_.destination->min_free_bytes;
  if (floor > 0 && free_bytes >= 0 && free_bytes - bytes < floor) {
    *stop = "destination endpoint " + Quote(req_.destination->id) + " has " +
            std::to_string(free_bytes) + " bytes free: writing " + std::to_string(bytes) +
            " more would pass its min_free_bytes (" + std::to_string(floor) + ")";
    return false;
  }
  if (options_.quota != nullptr) {
    Err e =
        options_.quota->Reserve(options_.identity, req_.destination->id, bytes, entries);
    if (!e.ok()) {
      *stop = e.message;
      return false;
    }
  }
  run_bytes_ += bytes;
  run_entries_ += entries;
  return true;
}

void RunLimits::Refund(int64_t bytes, int64_t entries) {
  if (bytes == 0 && entries == 0) return;
  run_bytes_ -= bytes;
  run_entries_ -= entries;
  if (options_.quota != nullptr)
    options_.quota->Adjust(options_.identity, req_.destination->id, -bytes, -entries);
}

RateLimiter::RateLimiter(ActionContext* ctx, int64_t bytes_per_second)
    : ctx_(ctx), rate_(bytes_per_second) {}

void RateLimiter::Start() { start_ns_ = SteadyNowNs(); }

void RateLimiter::Wait(int64_t bytes) {
  if (rate_ <= 0) return;
  const int64_t due_ns = start_ns_ + bytes * 1'000'000'000 / rate_;
  const int64_t wait = due_ns - SteadyNowNs();
  if (wait > 0) ctx_->WaitCancelledFor(std::chrono::milliseconds(wait / 1'000'000 + 1));
}

bool SyncSkipsByMetadata(SyncLevel level, bool dst_file, int64_t src_size,
                         int64_t dst_size, bool times_known, int64_t src_mtime_ns,
                         int64_t dst_mtime_ns, int64_t mtime_unit_ns) {
  if (!dst_file) return false;
  switch (level) {
    case SyncLevel::kExists:
      return true;
    case SyncLevel::kSize:
      return dst_size == src_size;
    case SyncLevel::kMtime:
      return times_known && dst_mtime_ns / mtime_unit_ns >= src_mtime_ns / mtime_unit_ns;
    case SyncLevel::kNone:
    case SyncLevel::kChecksum:
      return false;
  }
  return false;
}

void RecordFailure(const Request& req, const std::string& path, const Err& status,
                   TransferCounters* c, std::string* first_error, nlohmann::json* errors,
                   std::string* stop) {
  const std::string& error = status.message;
  ++c->files_failed;
  switch (ClassOf(status)) {
    case TIMER_AP_ERROR_CLASS_TRANSIENT:
      ++c->files_failed_transient;
      break;
    case TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION:
      ++c->files_failed_attention;
      break;
    default:
      break;
  }
  if (first_error->empty()) *first_error = path + ": " + error;
  if (errors->size() < kMaxListed) errors->push_back({{"path", path}, {"error", error}});
  // A full destination stops the run at once when asked (Globus's
  // fail_on_quota_errors); otherwise the file fails and the others go on,
  // and the job's next run tries it again.
  if (req.options.fail_on_quota_errors && stop->empty() && IsQuotaError(status)) {
    *stop = "fail_on_quota_errors: the destination is full or over its quota: " + path +
            ": " + error;
  }
}

void RecordSkippedSource(const std::string& path, const std::string& why,
                         TransferCounters* c, nlohmann::json* skipped) {
  ++c->source_errors_skipped;
  if (skipped->size() < kMaxListed) {
    skipped->push_back({{"path", path}, {"skipped", why + " (skip_source_errors)"}});
  }
}

timer_ap_error_class ClassOf(const Err& e) {
  if (e.error_class != TIMER_AP_ERROR_CLASS_UNSPECIFIED) return e.error_class;
  switch (e.code) {
    case TIMER_AP_UNAVAILABLE:
    case TIMER_AP_DEADLINE_EXCEEDED:
      return TIMER_AP_ERROR_CLASS_TRANSIENT;
    case TIMER_AP_UNAUTHENTICATED:
      return TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION;
    default:
      return TIMER_AP_ERROR_CLASS_PERMANENT;
  }
}

Outcome RunOutcome(const TransferCounters& c, const std::string& stop, bool cancelled,
                   const std::string& first_error) {
  if (!stop.empty()) {
    return {TIMER_AP_STATE_FAILED, "stopped after " +
                                       std::to_string(c.files_transferred) +
                                       " files transferred: " + stop};
  }
  if (cancelled) {
    return {
        TIMER_AP_STATE_CANCELLED,
        "cancelled after " + std::to_string(c.files_transferred) + " files transferred"};
  }
  if (c.files_failed > 0) {
    Outcome out{TIMER_AP_STATE_FAILED,
                std::to_string(c.files_failed) + " failed; first: " + first_error};
    // A retry helps only if every failure may go away by itself.
    const int64_t permanent =
        c.files_failed - c.files_failed_transient - c.files_failed_attention;
    out.error_class = permanent > 0 ? TIMER_AP_ERROR_CLASS_PERMANENT
                      : c.files_failed_attention > 0
                          ? TIMER_AP_ERROR_CLASS_NEEDS_ATTENTION
                          : TIMER_AP_ERROR_CLASS_TRANSIENT;
    return out;
  }
  return {TIMER_AP_STATE_SUCCEEDED, ""};
}

nlohmann::json TransferDetails(const Request& req, const TransferCounters& c,
                               const nlohmann::json& errors, const std::string& stop,
                               const nlohmann::json& encrypt_data,
                               const nlohmann::json& skipped) {
  static const char* kLevels[] = {"none", "exists", "size", "mtime", "checksum"};
  nlohmann::json d = {
      {"label", req.label},
      {"source_endpoint_id", req.source->id},
      {"destination_endpoint_id", req.destination->id},
      {"sync_level", kLevels[static_cast<int>(req.sync_level)]},
      {"files_transferred", c.files_transferred},
      {"bytes_transferred", c.bytes_transferred},
      {"files_skipped", c.files_skipped},
      {"files_failed", c.files_failed},
      {"files_verified", c.files_verified},
      {"checksum_retries", c.checksum_retries},
      {"directories_created", c.directories_created},
      {"entries_deleted", c.entries_deleted},
      {"symlinks_skipped", c.symlinks_skipped},
      {"special_files_skipped", c.special_files_skipped},
      {"recursive_symlinks", RecursiveSymlinksName(req.options.recursive_symlinks)},
      {"errors", errors},
  };
  const TransferOptions& o = req.options;
  if (o.recursive_symlinks == RecursiveSymlinks::kKeep)
    d["symlinks_kept"] = c.symlinks_kept;
  if (o.recursive_symlinks == RecursiveSymlinks::kCopy)
    d["symlinks_followed"] = c.symlinks_followed;
  if (!o.filter_rules.empty()) d["entries_excluded"] = c.entries_excluded;
  if (o.skip_source_errors) d["source_errors_skipped"] = c.source_errors_skipped;
  if (o.fail_on_quota_errors) d["fail_on_quota_errors"] = true;
  if (skipped.is_array() && !skipped.empty()) d["skipped"] = skipped;
  if (!o.notes.empty()) d["notes"] = o.notes;
  if (!stop.empty()) d["stopped"] = stop;
  if (!encrypt_data.is_null()) d["encrypt_data"] = encrypt_data;
  return d;
}

}  // namespace timer::plugins::transfer
