// The job rows of a SQLite store: how a job is stored (a serialized
// timer.v1.Job without etag and results, plus the columns that index it) and
// the writer's statements that create and update it inside a transaction.
//
// Reading: the k* statements, prepared on any connection, with DecodeJob /
// ReadOneJob. Writing: JobRows, on the writer connection, with the job's
// results through sqlite_results::ResultLinks.
//
// Not thread-safe: like Db and Stmt, each is used by one thread at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/sqlite_results.h"
#include "store/sqlite_util.h"
#include "store/store.h"

namespace timer::store::sqlite_jobs {

// A job row's columns: version, job, last_result (the head of its results'
// links; 0 when none), rowid.
inline constexpr char kGetJob[] =
    "SELECT version, job, last_result, rowid FROM jobs WHERE job_id = ?1 AND owner = ?2";
inline constexpr char kLoadJob[] =
    "SELECT version, job, last_result, rowid FROM jobs WHERE job_id = ?1";
// Owner ?1's jobs after (create_us ?2, job_id ?3), at most ?4.
inline constexpr char kListLive[] =
    "SELECT version, job, last_result FROM jobs WHERE owner = ?1 AND deleted = 0 AND "
    "(create_us, job_id) > (?2, ?3) ORDER BY create_us, job_id LIMIT ?4";
inline constexpr char kListAll[] =
    "SELECT version, job, last_result FROM jobs WHERE owner = ?1 AND "
    "(create_us, job_id) > (?2, ?3) ORDER BY create_us, job_id LIMIT ?4";

// The job of the current row (columns as above), without its results.
absl::StatusOr<v1::Job> DecodeJob(const Stmt& stmt);

// Steps `stmt` (kGetJob, kLoadJob) to its single row and decodes the job
// there, and its newest result's id into `head`; NOT_FOUND if none.
absl::StatusOr<v1::Job> ReadOneJob(Stmt& stmt, const std::string& job_id, int64_t& head);

// Steps `stmt` to the end, calling `fn` on each row, then resets it.
absl::Status ForEachRow(Stmt& stmt, absl::FunctionRef<absl::Status(const Stmt&)> fn);

// The writer's side of the job rows.
class JobRows {
 public:
  // Prepares the statements on the writer connection `db`; `links` writes
  // the jobs' results. Both must outlive this object.
  absl::Status Prepare(Db& db, sqlite_results::ResultLinks& links);

  // Store::CreateJob's write, in the caller's transaction.
  absl::StatusOr<v1::Job> Create(v1::Job& job, const std::string& request_id,
                                 const std::string& fingerprint);
  // Store::WriteJob's (`owner` set) and WriteJobState's (nullopt: any
  // owner's job, `with_results` false) write.
  absl::StatusOr<v1::Job> Update(const std::optional<std::string>& owner,
                                 const std::string& job_id, JobRunMutation& mutate,
                                 bool with_results);
  // Store::WriteManualRun's write.
  absl::StatusOr<v1::Job> UpdateManualRun(const std::string& owner,
                                          const std::string& job_id,
                                          const std::string& request_id,
                                          ManualRunMutation& mutate);

  // Up to `max_jobs` jobs deleted before `deleted_before_us`, oldest deletes
  // first (read before any is purged).
  struct Deleted {
    int64_t delete_us = 0;
    std::string job_id;
  };
  absl::StatusOr<std::vector<Deleted>> DeletedBefore(int64_t deleted_before_us,
                                                     int max_jobs);
  // Deletes one such job for good, with its results, create request id and
  // manual-run request ids. nullopt if the job row was already gone. Adds the
  // result links it walked to `links`.
  absl::StatusOr<std::optional<PurgedJob>> Purge(const Deleted& deleted, int64_t& links);
  // Deletes up to `limit` manual-run request ids recorded before
  // `before_us`; returns how many.
  absl::StatusOr<int64_t> PruneRunRequests(int64_t before_us, int limit);

 private:
  // Queues a job just deleted for its purge (PurgeDeletedJobs).
  absl::Status QueuePurge(const v1::Job& job);

  Db* db_ = nullptr;
  sqlite_results::ResultLinks* links_ = nullptr;
  Stmt get_job_, load_job_, insert_job_, update_job_, update_job_state_, find_request_,
      insert_request_, insert_purge_, find_run_request_, insert_run_request_,
      deleted_before_, purge_row_, delete_requests_, delete_run_requests_, delete_queued_,
      delete_job_, prune_run_requests_;
};

}  // namespace timer::store::sqlite_jobs
