// Store: durable home of jobs, behind one interface. This header is the
// whole contract; tests/unit/store/store_conformance_test.cc is its proof,
// run against every implementation.
//
// Implementations: SqliteStore (embedded, the default), PostgresStore
// (shared by replicas), MemoryStore (a fake for tests). The domain layer is the only
// caller; handlers never see a Store. Every read and write is scoped to an owner: a job
// of another owner is NOT_FOUND, exactly as if it did not exist. Bearer tokens are kept
// apart, behind TokenStore (store/token_store.h).
//
// Writes are asynchronous: `done` runs exactly once, when the write is
// durable and visible to every read (or failed), possibly on a store thread
// or before the write method returns. The `done` callbacks of one store run
// one at a time, never two at once, in the order their writes were applied
// (commit order; a failed write takes its place in that order too): when a
// callback runs, every write whose callback ran before it is visible, and
// no later write's callback has run. The run engine relies on this (a job's
// changes reach it in commit order, after a fire's own); an implementation
// that commits on several connections must still order its callbacks so.
// A callback must not block; it may issue writes, whose callbacks then run
// after it returns. (A write refused because the store is closing never
// joins the order: its callback gets UNAVAILABLE at once, on the caller's
// thread.) Reads are synchronous and cheap. All methods are
// thread-safe.
//
// Results live in their own table, not in the job: a job is stored without
// `results`, and every job a store hands out (reads, the job a mutation sees,
// the job passed to `done`) carries the results view: in `results` the
// newest kJobResults results, newest first, and in `last_run` the later of
// its stored `last_run` and the newest result's start_time (FillResultsView
// builds it). WriteJobState is the one exception (see there). Mutations add
// or replace results only through their `results` vector.
//
// Several processes may share one store (PostgreSQL). Each job belongs to a
// shard (ShardOf); a process schedules the shards it leases (LeaseStore,
// store/lease_store.h), and its fires and manual runs carry a Fence, checked
// in the write's transaction: a write of a process that lost its lease is
// refused FAILED_PRECONDITION and applies nothing. A store only one process
// can open (SQLite) implements the same calls trivially.
#pragma once

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/coded_stream.h"
#include "timer/v1/timer.pb.h"

namespace timer::store {

class LeaseStore;  // store/lease_store.h
class RelayStore;  // store/lease_store.h

// How many results a job carries, newest first (Globus Timer's "last 10").
inline constexpr int kJobResults = 10;

// Jobs are divided into kShards shards, the unit a replica leases
// (store/lease_store.h). Fixed forever: a stored job keeps its shard.
inline constexpr int kShards = 256;

// The shard of a job: FNV-1a 64 of its id's bytes, modulo kShards.
inline int ShardOf(std::string_view job_id) {
  uint64_t h = 14695981039346656037ull;
  for (const char c : job_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return static_cast<int>(h % kShards);
}

// A set of shards.
using ShardSet = std::bitset<kShards>;

// A fencing token: the write it goes with is applied only if `holder` holds
// `shard` at `epoch`, unexpired on the store's clock, when the write is
// applied (checked in its transaction; see LeaseStore for holding).
struct Fence {
  int shard = 0;
  std::string holder;  // A replica id.
  int64_t epoch = 0;
};

// Microseconds since the Unix epoch.
inline int64_t ToMicros(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}

// Sets `job`'s results view (see above) from `newest_first`, which calls its
// argument with the job's results, newest first, until that returns false.
inline absl::Status FillResultsView(
    v1::Job& job,
    absl::FunctionRef<absl::Status(absl::FunctionRef<bool(const v1::JobResult&)>)>
        newest_first) {
  job.clear_results();
  absl::Status status = newest_first([&job](const v1::JobResult& r) {
    *job.add_results() = r;
    return job.results_size() < kJobResults;
  });
  if (!status.ok()) return status;
  for (const v1::JobResult& r : job.results()) {
    if (!r.has_start_time()) continue;
    if (!job.has_last_run() || ToMicros(r.start_time()) > ToMicros(job.last_run())) {
      *job.mutable_last_run() = r.start_time();
    }
    break;  // Newest first.
  }
  return absl::OkStatus();
}

// Called once with the job as stored (its `etag` set), or an error.
using JobCallback = absl::AnyInvocable<void(absl::StatusOr<v1::Job>) &&>;

// Called once when a write is durable, or with its error.
using StatusCallback = absl::AnyInvocable<void(absl::Status) &&>;

// Changes a job in place inside the store's transaction. Returning an error
// aborts the write: nothing is applied.
using JobMutation = absl::AnyInvocable<absl::Status(v1::Job&)>;

// Like JobMutation, and may also add or replace results of the job (keyed
// by run_number) in `results`; they are written in the same transaction.
// Changes to job.results itself are not stored.
using JobRunMutation =
    absl::AnyInvocable<absl::Status(v1::Job&, std::vector<v1::JobResult>& results)>;

// Where a listing resumes: strictly after this (create_time, job_id).
struct ListCursor {
  int64_t create_micros = 0;
  std::string job_id;
};

// Like JobRunMutation; `existing_run` is the run number a manual-run request
// id already recorded (0: none), see Store::WriteManualRun.
using ManualRunMutation = absl::AnyInvocable<absl::Status(
    v1::Job&, std::vector<v1::JobResult>& results, int64_t existing_run)>;

// The JobRunMutation a store applies for WriteManualRun: calls `mutate`
// with `existing` (the run number `request_id` already recorded, 0: none)
// and sets `*added` to the run number of the manual result it adds under
// `request_id` (0: none), which the store then remembers. A BackfillJob
// write adds several results (`backfill` set) under one request id, with
// consecutive run numbers: `*added` is then the highest, the last of the
// batch, and a retry reads the batch back from there. Refers to its
// arguments: use it within the write.
inline JobRunMutation ManualRunWrapper(ManualRunMutation& mutate,
                                       const std::string& request_id, int64_t existing,
                                       int64_t* added) {
  *added = 0;
  return [&mutate, &request_id, existing, added](
             v1::Job& job, std::vector<v1::JobResult>& results) -> absl::Status {
    absl::Status s = mutate(job, results, existing);
    if (!s.ok()) return s;
    for (const v1::JobResult& r : results) {
      if ((r.manual() || r.backfill()) && !request_id.empty() &&
          r.request_id() == request_id) {
        *added = std::max(*added, r.run_number());
      }
    }
    return absl::OkStatus();
  };
}

// A job's size as stored: serialized without `results` and `etag` (which
// are kept elsewhere or derived). What the stored-bytes limit counts.
inline int64_t StoredBytes(const v1::Job& job) {
  const auto field = [](int number, size_t size) {
    using google::protobuf::io::CodedOutputStream;
    return CodedOutputStream::VarintSize32(static_cast<uint32_t>(number) << 3) +
           CodedOutputStream::VarintSize64(size) + size;
  };
  size_t n = job.ByteSizeLong();
  for (const v1::JobResult& r : job.results()) {
    n -= field(v1::Job::kResultsFieldNumber, r.ByteSizeLong());
  }
  if (!job.etag().empty()) n -= field(v1::Job::kEtagFieldNumber, job.etag().size());
  return static_cast<int64_t>(n);
}

// A job as a store keeps it: serialized without `etag` and `results`
// (their home is elsewhere). Both are set aside and put back rather than
// copying the job.
inline std::string EncodeJob(v1::Job& job) {
  std::string etag;
  etag.swap(*job.mutable_etag());
  google::protobuf::RepeatedPtrField<v1::JobResult> results;
  results.Swap(job.mutable_results());
  std::string out;
  job.SerializeToString(&out);
  job.mutable_results()->Swap(&results);
  job.mutable_etag()->swap(etag);
  return out;
}

// When a deleted job's retention starts: its delete_time, else (a job
// stored deleted without one) its update_time.
inline int64_t DeleteMicros(const v1::Job& job) {
  return ToMicros(job.has_delete_time() ? job.delete_time() : job.update_time());
}

// What one owner keeps in the store (Store::CountJobs).
struct OwnerUsage {
  int64_t live_jobs = 0;     // Not deleted.
  int64_t stored_jobs = 0;   // Deleted ones included, until purged.
  int64_t stored_bytes = 0;  // StoredBytes of stored_jobs.
};

// A job Store::PurgeDeletedJobs removed for good.
struct PurgedJob {
  std::string owner;
  std::string job_id;
  int64_t bytes = 0;  // Its StoredBytes.
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

  // Finishes every queued write (running its callback), then refuses
  // writes with UNAVAILABLE. Idempotent. Not from a callback.
  virtual void Close() {}

  // Inserts `job` (its job_id and owner set by the caller). If `request_id` is
  // non-empty and the owner already used it, nothing is inserted: `done` gets
  // the job that request created when `fingerprint` matches the first
  // request's, ALREADY_EXISTS when it does not.
  virtual void CreateJob(v1::Job job, std::string request_id, std::string fingerprint,
                         JobCallback done) = 0;

  // NOT_FOUND if no such job belongs to `owner`. Soft-deleted jobs are
  // returned; visibility is the domain's call.
  virtual absl::StatusOr<v1::Job> GetJob(const std::string& owner,
                                         const std::string& job_id) = 0;

  virtual absl::StatusOr<ListJobsPage> ListJobs(const ListJobsQuery& query) = 0;

  // Reads the owner's job, applies `mutate`, and writes it back, atomically.
  // NOT_FOUND if there is no such job; `mutate`'s error aborts the write.
  void UpdateJob(std::string owner, std::string job_id, JobMutation mutate,
                 JobCallback done) {
    WriteJob(
        std::move(owner), std::move(job_id),
        [m = std::move(mutate)](v1::Job& job, std::vector<v1::JobResult>&) mutable {
          return m(job);
        },
        std::move(done));
  }

  // UpdateJob that may also write results.
  virtual void WriteJob(std::string owner, std::string job_id, JobRunMutation mutate,
                        JobCallback done) = 0;

  // --- For the run engine (not scoped to an owner) ---

  // Non-null for a store several timerd processes share: each must then
  // lease the shards it schedules from it (domain/shard_lease.h) and fence
  // its writes. Null (this default) for a store one process owns.
  virtual LeaseStore* shared_leases() { return nullptr; }
  // Non-null when shared_leases() is: how a RunJobNow reaches the replica
  // that schedules its job (domain/run_now_relay.h).
  virtual RelayStore* shared_relay() { return nullptr; }

  // WriteJob of any owner's job, for the run engine's fires: the mutation
  // sees the job without its results, and the job passed to `done` has none,
  // which spares reading them on the hottest write path.
  void WriteJobState(std::string job_id, JobRunMutation mutate, JobCallback done) {
    WriteJobState(std::move(job_id), std::nullopt, std::move(mutate), std::move(done));
  }
  // ... fenced: with a `fence`, the write is applied only if the fence
  // holds (see Fence) in the same transaction; if it does not, `done` gets
  // FAILED_PRECONDITION, `mutate` is not called and nothing is applied. A
  // fence's shard need not be the job's (the caller's business). Without
  // one, the write is not fenced.
  virtual void WriteJobState(std::string job_id, std::optional<Fence> fence,
                             JobRunMutation mutate, JobCallback done) = 0;

  // Adds or replaces one result of `job_id` (keyed by its run_number) and
  // leaves the job itself alone: a run's progress or outcome. NOT_FOUND if
  // there is no such job.
  virtual void WriteResult(std::string job_id, v1::JobResult result,
                           StatusCallback done) = 0;

  // Calls `fn` for every job that has a next_run (the ones to schedule),
  // with its due time in Unix microseconds. Reads only the index, so it is
  // cheap for a million jobs.
  virtual absl::Status ScanDue(
      absl::FunctionRef<void(const std::string& job_id, int64_t next_run_us)> fn) = 0;

  // ScanDue of the jobs in `shards` only: what a replica reads when it gains
  // shards. This default filters ScanDue; a shared store reads an index on
  // (shard, next_run) instead.
  virtual absl::Status ScanDueInShards(
      const ShardSet& shards,
      absl::FunctionRef<void(const std::string& job_id, int64_t next_run_us)> fn) {
    return ScanDue([&](const std::string& job_id, int64_t next_run_us) {
      if (shards.test(ShardOf(job_id))) fn(job_id, next_run_us);
    });
  }

  // Any owner's job; NOT_FOUND if none.
  virtual absl::StatusOr<v1::Job> LoadJob(const std::string& job_id) = 0;

  // The jobs of `job_ids` (any owner) that exist, in no particular order,
  // without their results (the run engine's reconciliation of many open
  // runs at once, when it gains shards). A store that can reads them in
  // one round trip; this default loads them one by one.
  virtual absl::StatusOr<std::vector<v1::Job>> LoadJobs(
      const std::vector<std::string>& job_ids) {
    std::vector<v1::Job> out;
    for (const std::string& id : job_ids) {
      absl::StatusOr<v1::Job> job = LoadJob(id);
      if (absl::IsNotFound(job.status())) continue;
      if (!job.ok()) return job.status();
      job->clear_results();
      out.push_back(*std::move(job));
    }
    return out;
  }

  // Every result still PENDING or ACTIVE, with its job_id: runs to reconcile
  // after a restart.
  virtual absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>>
  ListOpenResults() = 0;

  // ListOpenResults of the jobs in `shards` only. This default filters
  // ListOpenResults.
  virtual absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>>
  ListOpenResultsInShards(const ShardSet& shards) {
    absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>> open =
        ListOpenResults();
    if (!open.ok()) return open;
    std::vector<std::pair<std::string, v1::JobResult>> mine;
    for (auto& entry : *open) {
      if (shards.test(ShardOf(entry.first))) mine.push_back(std::move(entry));
    }
    return mine;
  }

  // Results of the owner's job, newest first, strictly older than
  // `before_run_number` (0: from the newest). NOT_FOUND if no such job.
  virtual absl::StatusOr<std::vector<v1::JobResult>> ListResults(
      const std::string& owner, const std::string& job_id, int64_t before_run_number,
      int page_size) = 0;

  // Deletes finished results beyond the newest `keep_per_job` of each job
  // and those that ended before `ended_before_us`, and manual-run request
  // ids recorded before `ended_before_us`. Returns how many results.
  virtual absl::StatusOr<int64_t> PruneResults(int keep_per_job,
                                               int64_t ended_before_us) = 0;

  // RunJobNow's and BackfillJob's write: WriteJob, with idempotency by
  // request id. When `request_id` is not empty, `mutate` is told the run
  // number an earlier call recorded for this job under it (0: none), and a
  // result `mutate` adds with that request_id (and `manual` or `backfill`
  // set; of several, the highest run number) is remembered under it:
  // in the same transaction, keyed by (job_id, request_id), until the job is
  // purged or PruneResults drops ids older than its cutoff.
  void WriteManualRun(std::string owner, std::string job_id, std::string request_id,
                      ManualRunMutation mutate, JobCallback done) {
    WriteManualRun(std::move(owner), std::move(job_id), std::move(request_id),
                   std::nullopt, std::move(mutate), std::move(done));
  }
  // ... fenced, as WriteJobState: a fence that does not hold fails the write
  // FAILED_PRECONDITION, and nothing is applied or remembered.
  virtual void WriteManualRun(std::string owner, std::string job_id,
                              std::string request_id, std::optional<Fence> fence,
                              ManualRunMutation mutate, JobCallback done) = 0;

  // What `owner` keeps in the store: for the per-identity limits
  // (domain/job_quota.h), read once per owner. Deleted jobs count in
  // `stored_jobs` and `stored_bytes` until they are purged. This default
  // pages through ListJobs.
  virtual absl::StatusOr<OwnerUsage> CountJobs(const std::string& owner) {
    ListJobsQuery query;
    query.owner = owner;
    query.show_deleted = true;
    query.page_size = 1000;
    OwnerUsage usage;
    for (;;) {
      absl::StatusOr<ListJobsPage> page = ListJobs(query);
      if (!page.ok()) return page.status();
      for (const v1::Job& job : page->jobs) {
        ++usage.stored_jobs;
        if (job.status() != v1::Job::DELETED) ++usage.live_jobs;
        usage.stored_bytes += StoredBytes(job);
      }
      if (!page->has_more || page->jobs.empty()) return usage;
      const v1::Job& last = page->jobs.back();
      query.after = ListCursor{ToMicros(last.create_time()), last.job_id()};
    }
  }

  // Deletes for good, in one write, up to `max_jobs` jobs deleted before
  // `deleted_before_us` (oldest deletes first), with their results and the
  // request ids of their create and their manual runs. Returns them; fewer
  // than `max_jobs` means none is left to purge. Synchronous: returns once
  // the write committed.
  virtual absl::StatusOr<std::vector<PurgedJob>> PurgeDeletedJobs(
      int64_t deleted_before_us, int max_jobs) = 0;

  // How many jobs the store holds in each status (v1::Job::Status; deleted
  // jobs until purged): for the timer_jobs metric, read in the background at
  // most every 15 s (server/server_metrics.h), never per scrape. A scan of
  // the jobs table; UNIMPLEMENTED where a store cannot tell.
  virtual absl::StatusOr<std::map<int, int64_t>> CountJobsByStatus() {
    return absl::UnimplementedError("store: jobs by status are not counted");
  }
};

}  // namespace timer::store
