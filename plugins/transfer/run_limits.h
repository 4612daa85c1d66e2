// run_limits: what every copier of the transfer provider shares for one run,
// whatever its endpoints are: the counters its details report, the
// admission of bytes and entries against the run's limits, the destination's
// free-space floor and the identity's rolling-day quota, the bandwidth cap,
// and the details document itself. Copier (local to local) and StreamCopier
// (any side remote) both call these, so a limit or a details field is
// written once.
//
// Thread-safety: a RunLimits and a RateLimiter belong to one run (one thread).
// The WriteQuota they charge is thread-safe.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "provider_support.h"

namespace timer::plugins::transfer {

struct Request;
struct CopyOptions;
enum class SyncLevel;

// Whether sync_level `level` skips a file from the two sides' sizes and
// modification times alone (exists, size, mtime; never none or checksum,
// which the caller decides by hashing): `dst_file` is true when a regular
// file has the destination's name. As Globus, mtime skips unless the
// source is newer; times compare in units of `mtime_unit_ns` (1 for local
// files; a second for SFTP, which keeps no finer time), and an unknown
// time (`times_known` false) never skips.
bool SyncSkipsByMetadata(SyncLevel level, bool dst_file, int64_t src_size,
                         int64_t dst_size, bool times_known, int64_t src_mtime_ns,
                         int64_t dst_mtime_ns, int64_t mtime_unit_ns);

// What a run's details count.
struct TransferCounters {
  int64_t files_transferred = 0;
  int64_t bytes_transferred = 0;
  int64_t files_skipped = 0;
  int64_t files_failed = 0;
  int64_t files_verified = 0;
  int64_t checksum_retries = 0;
  int64_t directories_created = 0;
  int64_t entries_deleted = 0;
  int64_t symlinks_skipped = 0;
  int64_t special_files_skipped = 0;
  int64_t symlinks_kept = 0;          // recursive_symlinks keep
  int64_t symlinks_followed = 0;      // recursive_symlinks copy
  int64_t entries_excluded = 0;       // by filter_rules
  int64_t source_errors_skipped = 0;  // by skip_source_errors
  // Of files_failed, those whose error was TRANSIENT or NEEDS_ATTENTION
  // (ClassOf): how the run's failure is classed (RunOutcome).
  int64_t files_failed_transient = 0;
  int64_t files_failed_attention = 0;
};

// The class of a transfer error (ABI 1.2): the one the error carries, else
// by its code: UNAVAILABLE and DEADLINE_EXCEEDED (refused, reset or timed
// out connections, 5xx and 429 answers) TRANSIENT, UNAUTHENTICATED
// NEEDS_ATTENTION, anything else (a bad body, a missing source, permission
// denied, a full destination) PERMANENT.
timer_ap_error_class ClassOf(const Err& e);

// The run's admission: max_bytes_per_run, max_files_per_run, the
// destination's min_free_bytes and the identity's quota. `req` and `options`
// outlive it.
class RunLimits {
 public:
  RunLimits(const Request& req, const CopyOptions& options);

  // Whether the destination's free space is needed (min_free_bytes > 0):
  // a caller asks its storage only then.
  bool NeedsFreeBytes() const;

  // Admits writing `bytes` in `entries` new files or directories where
  // `free_bytes` are free (-1: unknown, not checked) and reserves them in
  // the quota. On refusal sets *stop to why (the run stops) and returns
  // false; a run already stopped (*stop not empty) is refused.
  bool Admit(int64_t free_bytes, int64_t bytes, int64_t entries, std::string* stop);
  // Gives back what was admitted and not written.
  void Refund(int64_t bytes, int64_t entries);

 private:
  const Request& req_;
  const CopyOptions& options_;
  int64_t run_bytes_ = 0;    // admitted against max_bytes_per_run
  int64_t run_entries_ = 0;  // admitted against max_files_per_run
};

// max_bytes_per_second: Wait() holds the run back until `bytes` since
// Start() are due; a cancel ends the wait.
class RateLimiter {
 public:
  RateLimiter(ActionContext* ctx, int64_t bytes_per_second);
  void Start();
  void Wait(int64_t bytes);

 private:
  ActionContext* ctx_;
  const int64_t rate_;
  int64_t start_ns_ = 0;
};

// A file that failed with `error`: counted in `c`, the first error kept,
// the first kMaxListed listed in `errors` (their messages); with
// fail_on_quota_errors, a full destination or an exceeded quota (the code
// RESOURCE_EXHAUSTED, IsQuotaError; never the message's text) stops the
// run (`*stop`).
inline constexpr size_t kMaxListed = 20;
void RecordFailure(const Request& req, const std::string& path, const Err& error,
                   TransferCounters* c, std::string* first_error, nlohmann::json* errors,
                   std::string* stop);
// A source entry skip_source_errors skipped: counted, the first kMaxListed
// listed in `skipped`.
void RecordSkippedSource(const std::string& path, const std::string& why,
                         TransferCounters* c, nlohmann::json* skipped);

// How a run ended, from its counters: stopped by a limit (`stop`), cancelled,
// some files failed (the first's error), or succeeded.
Outcome RunOutcome(const TransferCounters& c, const std::string& stop, bool cancelled,
                   const std::string& first_error);

// The details document of a run. `encrypt_data` is what the run says of
// encryption (a string or a bool); null leaves it out. `skipped`: the first
// entries skip_source_errors skipped (an array; empty leaves it out).
nlohmann::json TransferDetails(const Request& req, const TransferCounters& c,
                               const nlohmann::json& errors, const std::string& stop,
                               const nlohmann::json& encrypt_data,
                               const nlohmann::json& skipped = nlohmann::json::array());

// A steady clock in nanoseconds (publication and throttling).
int64_t SteadyNowNs();

}  // namespace timer::plugins::transfer
