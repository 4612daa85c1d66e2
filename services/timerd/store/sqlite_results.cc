#include "store/sqlite_results.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "store/store.h"
#include "util/status_macros.h"

namespace timer::store::sqlite_results {
namespace {

// One link of a job's results, read through a prepared kResultById.
struct Link {
  int64_t prev = 0;  // 0: the job's oldest result.
  int64_t run_number = 0;
};

// Reads result `id` of `job_id`; nullopt when there is no such row or it
// belongs to another job (the links end there). With `result`, also decodes
// the result into it.
absl::StatusOr<std::optional<Link>> ReadLink(Stmt& by_id, int64_t id,
                                             std::string_view job_id,
                                             v1::JobResult* result = nullptr) {
  by_id.Reset().Bind(1, id);
  absl::StatusOr<bool> row = by_id.Step();
  std::optional<Link> link;
  absl::Status status = row.status();
  if (row.ok() && *row && by_id.ColumnText(2) == job_id) {
    link = Link{by_id.ColumnInt(0), by_id.ColumnInt(1)};
    if (result != nullptr) {
      absl::StatusOr<v1::JobResult> r = DecodeResult(by_id.ColumnBlob(3));
      if (r.ok()) {
        *result = *std::move(r);
      } else {
        status = r.status();
      }
    }
  }
  by_id.Reset();
  RETURN_IF_ERROR(status);
  return link;
}

}  // namespace

absl::StatusOr<v1::JobResult> DecodeResult(std::string_view blob) {
  v1::JobResult r;
  if (!r.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return absl::DataLossError("store: a stored result could not be decoded");
  }
  return r;
}

absl::Status WalkResults(Stmt& by_id, int64_t head, std::string_view job_id,
                         absl::FunctionRef<bool(const v1::JobResult&)> fn) {
  v1::JobResult r;
  for (int64_t id = head; id != 0;) {
    ASSIGN_OR_RETURN(std::optional<Link> link, ReadLink(by_id, id, job_id, &r));
    if (!link || !fn(r)) break;
    id = link->prev;
  }
  return absl::OkStatus();
}

absl::Status FillResults(Stmt& by_id, int64_t head, v1::Job& job) {
  const std::string job_id = job.job_id();
  return FillResultsView(job, [&](absl::FunctionRef<bool(const v1::JobResult&)> fn) {
    return WalkResults(by_id, head, job_id, fn);
  });
}

absl::Status ResultLinks::Prepare(Db& db) {
  db_ = &db;
  sqlite3* raw = db.get();
  ASSIGN_OR_RETURN(by_id_, Stmt::Prepare(raw, kResultById));
  ASSIGN_OR_RETURN(
      insert_, Stmt::Prepare(raw,
                             "INSERT INTO results (job_id, run_number, status, "
                             "end_us, result, prev) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  ASSIGN_OR_RETURN(set_prev_,
                   Stmt::Prepare(raw, "UPDATE results SET prev = ?2 WHERE id = ?1"));
  ASSIGN_OR_RETURN(
      find_head_,
      Stmt::Prepare(raw, "SELECT rowid, last_result FROM jobs WHERE job_id = ?1"));
  ASSIGN_OR_RETURN(
      set_head_, Stmt::Prepare(raw, "UPDATE jobs SET last_result = ?2 WHERE rowid = ?1"));
  ASSIGN_OR_RETURN(delete_, Stmt::Prepare(raw, "DELETE FROM results WHERE id = ?1"));
  ASSIGN_OR_RETURN(update_, Stmt::Prepare(raw,
                                          "UPDATE results SET status = ?4, end_us = ?5, "
                                          "result = ?6 WHERE id = ?1 AND job_id = ?2 AND "
                                          "run_number = ?3"));
  ASSIGN_OR_RETURN(prune_link_,
                   Stmt::Prepare(raw,
                                 "SELECT prev, job_id, end_us IS NOT NULL, "
                                 "coalesce(end_us, 0) FROM results WHERE id = ?1"));
  ASSIGN_OR_RETURN(
      run_link_,
      Stmt::Prepare(raw, "SELECT prev, job_id, run_number FROM results WHERE id = ?1"));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ResultLinks::DeleteAll(const std::string& job_id, int64_t head) {
  int64_t deleted = 0;
  for (int64_t id = head; id != 0;) {
    Stmt& link = run_link_.Reset().Bind(1, id);
    absl::StatusOr<bool> row = link.Step();
    const bool ours = row.ok() && *row && link.ColumnText(1) == job_id;
    const int64_t prev = ours ? link.ColumnInt(0) : 0;
    const int64_t run_number = ours ? link.ColumnInt(2) : 0;
    link.Reset();
    RETURN_IF_ERROR(row.status());
    if (!ours) break;
    RETURN_IF_ERROR(delete_.Reset().Bind(1, id).Run());
    open_rows_.erase(absl::StrCat(job_id, "/", run_number));
    ++deleted;
    id = prev;
  }
  return deleted;
}

absl::Status ResultLinks::Put(const std::string& job_id, const v1::JobResult& r,
                              int64_t* head) {
  const std::string data = r.SerializeAsString();
  const bool open =
      r.status() == v1::JobResult::PENDING || r.status() == v1::JobResult::ACTIVE;
  // Rewrites row `id` if it still holds this run of this job.
  const auto update_row = [&](int64_t id) -> absl::StatusOr<bool> {
    Stmt& up = update_.Reset();
    up.Bind(1, id)
        .BindText(2, job_id)
        .Bind(3, r.run_number())
        .Bind(4, r.status())
        .BindBlob(6, data);
    if (r.has_end_time()) up.Bind(5, ToMicros(r.end_time()));
    RETURN_IF_ERROR(up.Run());
    return sqlite3_changes(db_->get()) == 1;
  };
  std::string key = absl::StrCat(job_id, "/", r.run_number());
  auto known = open_rows_.find(key);
  if (known != open_rows_.end()) {
    ASSIGN_OR_RETURN(const bool updated, update_row(known->second));
    if (!open || !updated) open_rows_.erase(known);
    if (updated) return absl::OkStatus();
  }
  // The job's newest result, if the caller did not read it with the job.
  int64_t job_rowid = 0, own_head = 0;
  if (head == nullptr) {
    Stmt& find = find_head_.Reset();
    find.BindText(1, job_id);
    ASSIGN_OR_RETURN(const bool row, find.Step());
    if (row) {
      job_rowid = find.ColumnInt(0);
      own_head = find.ColumnInt(1);
    }
    find.Reset();
    if (!row) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  int64_t& first = head != nullptr ? *head : own_head;
  // Down the links (newest first) to this run's row, or to the place between
  // `newer` and `older` where it goes. A new run goes first: one step.
  int64_t newer = 0, older = first;
  while (older != 0) {
    ASSIGN_OR_RETURN(std::optional<Link> link, ReadLink(by_id_, older, job_id));
    if (!link) {
      older = 0;  // The links end early (never written so): this run ends them.
      break;
    }
    if (link->run_number == r.run_number()) {
      ASSIGN_OR_RETURN(const bool updated, update_row(older));
      if (!updated)
        return absl::InternalError("store: a result row changed under its writer");
      if (open) open_rows_[std::move(key)] = older;
      return absl::OkStatus();
    }
    if (link->run_number < r.run_number()) break;
    newer = older;
    older = link->prev;
  }
  Stmt& insert = insert_.Reset();
  insert.BindText(1, job_id)
      .Bind(2, r.run_number())
      .Bind(3, r.status())
      .BindBlob(5, data);
  if (r.has_end_time()) insert.Bind(4, ToMicros(r.end_time()));
  if (older != 0) insert.Bind(6, older);
  RETURN_IF_ERROR(insert.Run());
  const int64_t id = sqlite3_last_insert_rowid(db_->get());
  if (open) open_rows_[std::move(key)] = id;
  if (newer != 0) return set_prev_.Reset().Bind(1, newer).Bind(2, id).Run();
  first = id;
  if (head == nullptr) return set_head_.Reset().Bind(1, job_rowid).Bind(2, id).Run();
  return absl::OkStatus();
}

absl::StatusOr<ResultLinks::PruneCount> ResultLinks::Prune(const std::string& job_id,
                                                           int keep,
                                                           int64_t ended_before_us) {
  Stmt& find = find_head_.Reset();
  find.BindText(1, job_id);
  ASSIGN_OR_RETURN(const bool found, find.Step());
  const int64_t job_rowid = found ? find.ColumnInt(0) : 0;
  const int64_t head = found ? find.ColumnInt(1) : 0;
  find.Reset();
  Stmt& link = prune_link_;
  // Down the links, newest first. `kept` is the last result kept (0: the job
  // itself) and `kept_link` where its link points now: when rows after it
  // are dropped, it is linked to the next one kept instead.
  int64_t kept = 0, kept_link = head, dropped = 0;
  int64_t position = 0;
  const auto relink = [&](int64_t to) -> absl::Status {
    Stmt& set = kept == 0 ? set_head_.Reset().Bind(1, job_rowid)
                          : set_prev_.Reset().Bind(1, kept);
    if (to != 0) set.Bind(2, to);
    return set.Run();
  };
  for (int64_t id = head; id != 0;) {
    link.Reset().Bind(1, id);
    ASSIGN_OR_RETURN(const bool row, link.Step());
    if (!row || link.ColumnText(1) != job_id) break;
    const int64_t prev = link.ColumnInt(0);
    const bool finished = link.ColumnInt(2) != 0;
    const int64_t end_us = link.ColumnInt(3);
    link.Reset();
    ++position;
    if (finished && (end_us < ended_before_us || position > keep)) {
      RETURN_IF_ERROR(delete_.Reset().Bind(1, id).Run());
      ++dropped;
    } else {
      if (kept_link != id) RETURN_IF_ERROR(relink(id));
      kept = id;
      kept_link = prev;
    }
    id = prev;
  }
  link.Reset();
  // The last one kept pointed at rows now gone.
  if (dropped > 0 && kept_link != 0) RETURN_IF_ERROR(relink(0));
  return PruneCount{position, dropped};
}

}  // namespace timer::store::sqlite_results
