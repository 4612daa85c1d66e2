// Store: durable home of jobs, behind one interface.
//
// Implementations: SqliteStore (embedded, the default), MemoryStore (a fake
// for tests). The domain layer is the only caller; handlers never see a
// Store. Every read and write is scoped to an owner: a job of another owner
// is NOT_FOUND, exactly as if it did not exist.
//
// Writes are asynchronous: `done` runs once the write is durable (or failed),
// possibly on a store thread, and must not block. Reads are synchronous and
// cheap. All methods are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "timer/v1/timer.pb.h"

namespace timer::store {

// Called once with the job as stored (its `etag` set), or an error.
using JobCallback = absl::AnyInvocable<void(absl::StatusOr<v1::Job>) &&>;

// Changes a job in place inside the store's transaction. Returning an error
// aborts the write: nothing is applied.
using JobMutation = absl::AnyInvocable<absl::Status(v1::Job&)>;

// Where a listing resumes: strictly after this (create_time, job_id).
struct ListCursor {
  int64_t create_micros = 0;
  std::string job_id;
};

struct ListJobsQuery {
  std::string owner;
  bool show_deleted = false;
  int page_size = 50;
  std::optional<ListCursor> after;
};

struct ListJobsPage {
  std::vector<v1::Job> jobs;  // Ordered by (create_time, job_id).
  bool has_more = false;
};

class Store {
 public:
  virtual ~Store() = default;

  // Inserts `job` (its job_id and owner set by the caller). If `request_id` is
  // non-empty and the owner already used it, nothing is inserted: `done` gets
  // the job that request created when `fingerprint` matches the first
  // request's, ALREADY_EXISTS when it does not.
  virtual void CreateJob(v1::Job job, std::string request_id,
                         std::string fingerprint, JobCallback done) = 0;

  // NOT_FOUND if no such job belongs to `owner`. Soft-deleted jobs are
  // returned; visibility is the domain's call.
  virtual absl::StatusOr<v1::Job> GetJob(const std::string& owner,
                                         const std::string& job_id) = 0;

  virtual absl::StatusOr<ListJobsPage> ListJobs(const ListJobsQuery& query) = 0;

  // Reads the owner's job, applies `mutate`, and writes it back, atomically.
  // NOT_FOUND if there is no such job; `mutate`'s error aborts the write.
  virtual void UpdateJob(std::string owner, std::string job_id,
                         JobMutation mutate, JobCallback done) = 0;
};

// Time helpers shared by implementations: microseconds since the Unix epoch.
int64_t ToMicros(const google::protobuf::Timestamp& t);

}  // namespace timer::store
