#include "store/sqlite_jobs.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace timer::store::sqlite_jobs {
namespace {

// Unix microseconds of job.next_run; nullopt when unset.
std::optional<int64_t> NextRunMicros(const v1::Job& job) {
  if (!job.has_next_run()) return std::nullopt;
  return ToMicros(job.next_run());
}

}  // namespace

absl::StatusOr<v1::Job> DecodeJob(const Stmt& stmt) {
  v1::Job job;
  std::string_view blob = stmt.ColumnBlob(1);
  if (!job.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return absl::DataLossError("store: a stored job could not be decoded");
  }
  // Stores written before results moved to their own table kept a copy.
  job.clear_results();
  job.set_etag(absl::StrCat(stmt.ColumnInt(0)));
  return job;
}

absl::StatusOr<v1::Job> ReadOneJob(Stmt& stmt, const std::string& job_id, int64_t& head) {
  absl::StatusOr<bool> row = stmt.Step();
  absl::StatusOr<v1::Job> result;
  if (!row.ok()) {
    result = row.status();
  } else if (!*row) {
    result = absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  } else {
    head = stmt.ColumnInt(2);
    result = DecodeJob(stmt);
  }
  stmt.Reset();
  return result;
}

absl::Status ForEachRow(Stmt& stmt, absl::FunctionRef<absl::Status(const Stmt&)> fn) {
  absl::Status status;
  for (;;) {
    absl::StatusOr<bool> row = stmt.Step();
    if (!row.ok()) {
      status = row.status();
      break;
    }
    if (!*row) break;
    status = fn(stmt);
    if (!status.ok()) break;
  }
  stmt.Reset();
  return status;
}

absl::Status JobRows::Prepare(Db& db, sqlite_results::ResultLinks& links) {
  db_ = &db;
  links_ = &links;
  sqlite3* raw = db.get();
  ASSIGN_OR_RETURN(get_job_, Stmt::Prepare(raw, kGetJob));
  ASSIGN_OR_RETURN(load_job_, Stmt::Prepare(raw, kLoadJob));
  ASSIGN_OR_RETURN(insert_job_,
                   Stmt::Prepare(raw,
                                 "INSERT INTO jobs (job_id, owner, create_us, "
                                 "deleted, status, next_run_us, version, job) "
                                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  // By rowid, as read in the same transaction: no second search by job_id.
  ASSIGN_OR_RETURN(update_job_,
                   Stmt::Prepare(raw,
                                 "UPDATE jobs SET deleted = ?2, status = ?3, "
                                 "next_run_us = ?4, version = ?5, job = ?6, "
                                 "last_result = ?7 WHERE rowid = ?1"));
  // Leaves the owner-listing indexes alone: a fire changes neither column.
  ASSIGN_OR_RETURN(update_job_state_,
                   Stmt::Prepare(raw,
                                 "UPDATE jobs SET next_run_us = ?4, version = ?5, "
                                 "job = ?6, last_result = ?7 WHERE rowid = ?1"));
  ASSIGN_OR_RETURN(find_request_,
                   Stmt::Prepare(raw,
                                 "SELECT fingerprint, job_id FROM request_ids "
                                 "WHERE owner = ?1 AND request_id = ?2"));
  ASSIGN_OR_RETURN(insert_request_,
                   Stmt::Prepare(raw,
                                 "INSERT INTO request_ids (owner, request_id, "
                                 "fingerprint, job_id, create_us) VALUES (?1, "
                                 "?2, ?3, ?4, ?5)"));
  ASSIGN_OR_RETURN(insert_purge_,
                   Stmt::Prepare(raw,
                                 "INSERT OR IGNORE INTO purge_queue (delete_us, "
                                 "job_id) VALUES (?1, ?2)"));
  ASSIGN_OR_RETURN(find_run_request_,
                   Stmt::Prepare(raw,
                                 "SELECT run_number FROM run_request_ids "
                                 "WHERE job_id = ?1 AND request_id = ?2"));
  ASSIGN_OR_RETURN(insert_run_request_,
                   Stmt::Prepare(raw,
                                 "INSERT INTO run_request_ids (job_id, request_id, "
                                 "run_number, create_us) VALUES (?1, ?2, ?3, ?4)"));
  ASSIGN_OR_RETURN(deleted_before_,
                   Stmt::Prepare(raw,
                                 "SELECT delete_us, job_id FROM purge_queue WHERE "
                                 "delete_us < ?1 ORDER BY delete_us, job_id LIMIT ?2"));
  // Only a job still deleted (the store allows undeleting one).
  ASSIGN_OR_RETURN(purge_row_, Stmt::Prepare(raw,
                                             "SELECT rowid, owner, length(job), "
                                             "last_result FROM jobs WHERE job_id = ?1 "
                                             "AND deleted = 1"));
  ASSIGN_OR_RETURN(delete_requests_,
                   Stmt::Prepare(raw, "DELETE FROM request_ids WHERE job_id = ?1"));
  ASSIGN_OR_RETURN(delete_run_requests_,
                   Stmt::Prepare(raw, "DELETE FROM run_request_ids WHERE job_id = ?1"));
  ASSIGN_OR_RETURN(delete_queued_,
                   Stmt::Prepare(raw,
                                 "DELETE FROM purge_queue WHERE delete_us = ?1 AND "
                                 "job_id = ?2"));
  ASSIGN_OR_RETURN(delete_job_, Stmt::Prepare(raw, "DELETE FROM jobs WHERE rowid = ?1"));
  ASSIGN_OR_RETURN(prune_run_requests_,
                   Stmt::Prepare(raw,
                                 "DELETE FROM run_request_ids WHERE rowid IN (SELECT "
                                 "rowid FROM run_request_ids WHERE create_us < ?1 "
                                 "LIMIT ?2)"));
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobRows::Create(v1::Job& job, const std::string& request_id,
                                        const std::string& fingerprint) {
  if (!request_id.empty()) {
    Stmt& find = find_request_.Reset();
    find.BindText(1, job.owner()).BindText(2, request_id);
    ASSIGN_OR_RETURN(bool found, find.Step());
    if (found) {
      if (find.ColumnText(0) != fingerprint) {
        return absl::AlreadyExistsError(
            "request_id: already used for a different request");
      }
      std::string existing(find.ColumnText(1));
      Stmt& get = get_job_.Reset();
      get.BindText(1, existing).BindText(2, job.owner());
      ASSIGN_OR_RETURN(bool row, get.Step());
      if (!row) return absl::InternalError("store: request_id names a missing job");
      const int64_t head = get.ColumnInt(2);
      ASSIGN_OR_RETURN(v1::Job job, DecodeJob(get));
      get.Reset();
      RETURN_IF_ERROR(links_->Fill(head, job));
      return job;
    }
  }
  const int64_t create_us = ToMicros(job.create_time());
  const std::string blob = EncodeJob(job);
  Stmt& insert = insert_job_.Reset();
  insert.BindText(1, job.job_id())
      .BindText(2, job.owner())
      .Bind(3, create_us)
      .Bind(4, job.status() == v1::Job::DELETED ? 1 : 0)
      .Bind(5, job.status())
      .Bind(7, 1)
      .BindBlob(8, blob);
  if (auto next = NextRunMicros(job)) insert.Bind(6, *next);
  RETURN_IF_ERROR(insert.Run());
  if (job.status() == v1::Job::DELETED) RETURN_IF_ERROR(QueuePurge(job));
  if (!request_id.empty()) {
    Stmt& ins = insert_request_.Reset();
    ins.BindText(1, job.owner())
        .BindText(2, request_id)
        .BindText(3, fingerprint)
        .BindText(4, job.job_id())
        .Bind(5, create_us);
    RETURN_IF_ERROR(ins.Run());
  }
  job.set_etag("1");
  return job;
}

absl::StatusOr<v1::Job> JobRows::Update(const std::optional<std::string>& owner,
                                        const std::string& job_id, JobRunMutation& mutate,
                                        bool with_results) {
  Stmt& get = owner ? get_job_.Reset() : load_job_.Reset();
  get.BindText(1, job_id);
  if (owner) get.BindText(2, *owner);
  ASSIGN_OR_RETURN(bool row, get.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  const int64_t version = get.ColumnInt(0);
  int64_t head = get.ColumnInt(2);
  const int64_t rowid = get.ColumnInt(3);
  ASSIGN_OR_RETURN(v1::Job job, DecodeJob(get));
  get.Reset();
  const v1::Job::Status old_status = job.status();
  if (with_results) RETURN_IF_ERROR(links_->Fill(head, job));
  std::vector<v1::JobResult> results;
  RETURN_IF_ERROR(mutate(job, results));
  // First the results, which may move the job's link to its newest one.
  for (const v1::JobResult& r : results) RETURN_IF_ERROR(links_->Put(job_id, r, &head));
  const std::string blob = EncodeJob(job);
  // SQLite rewrites every index on a column named in SET, changed or not.
  const bool same_status = job.status() == old_status;
  Stmt& update = same_status ? update_job_state_.Reset() : update_job_.Reset();
  update.Bind(1, rowid).Bind(5, version + 1).BindBlob(6, blob);
  if (!same_status) {
    update.Bind(2, job.status() == v1::Job::DELETED ? 1 : 0).Bind(3, job.status());
  }
  if (auto next = NextRunMicros(job)) update.Bind(4, *next);
  if (head != 0) update.Bind(7, head);
  RETURN_IF_ERROR(update.Run());
  if (!same_status && job.status() == v1::Job::DELETED) RETURN_IF_ERROR(QueuePurge(job));
  job.set_etag(absl::StrCat(version + 1));
  if (with_results) {
    RETURN_IF_ERROR(links_->Fill(head, job));
  } else {
    job.clear_results();
  }
  return job;
}

absl::Status JobRows::QueuePurge(const v1::Job& job) {
  return insert_purge_.Reset().Bind(1, DeleteMicros(job)).BindText(2, job.job_id()).Run();
}

absl::StatusOr<v1::Job> JobRows::UpdateManualRun(const std::string& owner,
                                                 const std::string& job_id,
                                                 const std::string& request_id,
                                                 ManualRunMutation& mutate) {
  int64_t existing = 0;
  if (!request_id.empty()) {
    Stmt& find = find_run_request_.Reset();
    find.BindText(1, job_id).BindText(2, request_id);
    absl::StatusOr<bool> row = find.Step();
    if (row.ok() && *row) existing = find.ColumnInt(0);
    find.Reset();
    RETURN_IF_ERROR(row.status());
  }
  int64_t added = 0;
  JobRunMutation wrapped = ManualRunWrapper(mutate, request_id, existing, &added);
  ASSIGN_OR_RETURN(v1::Job job, Update(owner, job_id, wrapped, /*with_results=*/true));
  if (existing == 0 && added != 0) {
    RETURN_IF_ERROR(insert_run_request_.Reset()
                        .BindText(1, job_id)
                        .BindText(2, request_id)
                        .Bind(3, added)
                        .Bind(4, ToMicros(job.update_time()))
                        .Run());
  }
  return job;
}

absl::StatusOr<std::vector<JobRows::Deleted>> JobRows::DeletedBefore(
    int64_t deleted_before_us, int max_jobs) {
  std::vector<Deleted> out;
  Stmt& list = deleted_before_.Reset();
  list.Bind(1, deleted_before_us).Bind(2, max_jobs);
  RETURN_IF_ERROR(ForEachRow(list, [&](const Stmt& row) {
    out.push_back(Deleted{row.ColumnInt(0), std::string(row.ColumnText(1))});
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::optional<PurgedJob>> JobRows::Purge(const Deleted& deleted,
                                                        int64_t& links) {
  Stmt& find = purge_row_.Reset();
  find.BindText(1, deleted.job_id);
  absl::StatusOr<bool> row = find.Step();
  std::optional<PurgedJob> purged;
  int64_t rowid = 0, head = 0;
  if (row.ok() && *row) {
    rowid = find.ColumnInt(0);
    purged =
        PurgedJob{std::string(find.ColumnText(1)), deleted.job_id, find.ColumnInt(2)};
    head = find.ColumnInt(3);
  }
  find.Reset();
  RETURN_IF_ERROR(row.status());
  if (purged) {
    ASSIGN_OR_RETURN(const int64_t walked, links_->DeleteAll(deleted.job_id, head));
    links += walked;
    RETURN_IF_ERROR(delete_requests_.Reset().BindText(1, deleted.job_id).Run());
    RETURN_IF_ERROR(delete_run_requests_.Reset().BindText(1, deleted.job_id).Run());
    RETURN_IF_ERROR(delete_job_.Reset().Bind(1, rowid).Run());
  }
  RETURN_IF_ERROR(delete_queued_.Reset()
                      .Bind(1, deleted.delete_us)
                      .BindText(2, deleted.job_id)
                      .Run());
  return purged;
}

absl::StatusOr<int64_t> JobRows::PruneRunRequests(int64_t before_us, int limit) {
  RETURN_IF_ERROR(prune_run_requests_.Reset().Bind(1, before_us).Bind(2, limit).Run());
  return static_cast<int64_t>(sqlite3_changes(db_->get()));
}

}  // namespace timer::store::sqlite_jobs
