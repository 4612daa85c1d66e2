// The results of a job in SQLite, reached through links, newest first: the
// job row names its newest result (jobs.last_result) and each result row
// the one before it (results.prev). A new run is linked in front in one
// step, and its row is appended at the table's end, so the writes of one
// commit land on a few pages instead of one index leaf per job (schema 4,
// docs/PERFORMANCE-HISTORY.md, "Fifth round: results reached through links").
//
// Reading: WalkResults / FillResults over a prepared kResultById statement,
// on any connection, inside a read transaction so the job and its links
// come from one snapshot. Writing: ResultLinks, the writer connection's
// statements, inside the writer's transaction.
//
// Not thread-safe: like Db and Stmt, each is used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/sqlite_util.h"
#include "timer/v1/timer.pb.h"

namespace timer::store::sqlite_results {

// One link of a job's results by results.id (?1): the one before it, its run
// and job, the result.
inline constexpr char kResultById[] =
    "SELECT prev, run_number, job_id, result FROM results WHERE id = ?1";

absl::StatusOr<v1::JobResult> DecodeResult(std::string_view blob);

// Calls `fn` with the job's results newest first, from `head` (the job's
// last_result; 0: none), until it returns false or the links end. `by_id` is
// a prepared kResultById.
absl::Status WalkResults(Stmt& by_id, int64_t head, std::string_view job_id,
                         absl::FunctionRef<bool(const v1::JobResult&)> fn);

// Sets the job's results view (store.h) from its links at `head`.
absl::Status FillResults(Stmt& by_id, int64_t head, v1::Job& job);

// The writer's side: adds, replaces and prunes results inside its
// transaction.
class ResultLinks {
 public:
  // Prepares the statements on the writer connection `db`, which must
  // outlive this object.
  absl::Status Prepare(Db& db);

  // Adds or replaces `result` (by run_number) in the job's links. `head` is
  // the job's newest result as read in this transaction, which the caller
  // writes back to the job row; nullptr: read and written here (NOT_FOUND
  // if there is no such job).
  absl::Status Put(const std::string& job_id, const v1::JobResult& result, int64_t* head);

  // Drops the job's finished results beyond the newest `keep` and those
  // that ended before `ended_before_us`, and links the rest past them.
  struct PruneCount {
    int64_t visited = 0;  // Links walked.
    int64_t dropped = 0;  // Results deleted.
  };
  absl::StatusOr<PruneCount> Prune(const std::string& job_id, int keep,
                                   int64_t ended_before_us);

  // Deletes every result of the job (open ones too), from `head` (its
  // last_result) down the links: a job being purged. Returns how many.
  absl::StatusOr<int64_t> DeleteAll(const std::string& job_id, int64_t head);

  // FillResults through the writer's connection.
  absl::Status Fill(int64_t head, v1::Job& job) { return FillResults(by_id_, head, job); }

 private:
  Db* db_ = nullptr;
  Stmt by_id_, insert_, update_, set_prev_, find_head_, set_head_, delete_, prune_link_,
      run_link_;
  // Rowids of the open (PENDING, ACTIVE) results this writer inserted, by
  // "job_id/run_number": a run's progress and outcome update its row
  // directly instead of walking the job's links. A hint only: the update
  // also checks job_id and run_number, and falls back to the walk when the
  // row is not there (a rolled-back insert).
  absl::flat_hash_map<std::string, int64_t> open_rows_;
};

}  // namespace timer::store::sqlite_results
