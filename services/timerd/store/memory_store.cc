#include "store/memory_store.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace timer::store {

v1::Job MemoryStore::Filled(const v1::Job& stored) const {
  v1::Job job = stored;
  FillResultsView(job, [&](absl::FunctionRef<bool(const v1::JobResult&)> fn) {
    for (auto it = results_.lower_bound({job.job_id(), INT64_MAX});
         it != results_.begin();) {
      --it;
      if (it->first.first != job.job_id() || !fn(it->second)) break;
    }
    return absl::OkStatus();
  }).IgnoreError();  // The walk cannot fail.
  return job;
}

void MemoryStore::Applied(absl::AnyInvocable<void() &&> callback) {
  absl::MutexLock lock(&callbacks_mu_);
  callbacks_.push_back(std::move(callback));
}

void MemoryStore::RunCallbacks() {
  callbacks_mu_.Lock();
  if (running_callbacks_) {
    // That thread runs ours too, after the ones applied before it.
    callbacks_mu_.Unlock();
    return;
  }
  running_callbacks_ = true;
  while (!callbacks_.empty()) {
    absl::AnyInvocable<void()&&> next = std::move(callbacks_.front());
    callbacks_.pop_front();
    callbacks_mu_.Unlock();
    std::move(next)();
    callbacks_mu_.Lock();
  }
  running_callbacks_ = false;
  callbacks_mu_.Unlock();
}

absl::StatusOr<v1::Job> MemoryStore::Create(v1::Job job, const std::string& request_id,
                                            const std::string& fingerprint) {
  if (!request_id.empty()) {
    auto it = requests_.find({job.owner(), request_id});
    if (it != requests_.end()) {
      if (it->second.fingerprint != fingerprint) {
        return absl::AlreadyExistsError(
            "request_id: already used for a different request");
      }
      return Filled(jobs_.at(it->second.job_id).job);
    }
  }
  if (jobs_.count(job.job_id()) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job.job_id(), " exists"));
  }
  job.set_etag("1");
  job.clear_results();
  order_[{job.owner(), ToMicros(job.create_time()), job.job_id()}] = true;
  if (!request_id.empty()) {
    requests_[{job.owner(), request_id}] = Request{fingerprint, job.job_id()};
  }
  jobs_[job.job_id()] = Row{job, 1};
  return job;
}

void MemoryStore::CreateJob(v1::Job job, std::string request_id, std::string fingerprint,
                            JobCallback done) {
  {
    absl::MutexLock lock(&mu_);
    Applied([done = std::move(done),
             r = Create(std::move(job), request_id, fingerprint)]() mutable {
      std::move(done)(std::move(r));
    });
  }
  RunCallbacks();
}

absl::StatusOr<v1::Job> MemoryStore::GetJob(const std::string& owner,
                                            const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.job.owner() != owner) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  return Filled(it->second.job);
}

absl::StatusOr<ListJobsPage> MemoryStore::ListJobs(const ListJobsQuery& query) {
  absl::MutexLock lock(&mu_);
  ListJobsPage page;
  auto it = query.after ? order_.upper_bound({query.owner, query.after->create_micros,
                                              query.after->job_id})
                        : order_.lower_bound({query.owner, INT64_MIN, ""});
  for (; it != order_.end() && std::get<0>(it->first) == query.owner; ++it) {
    const v1::Job& job = jobs_.at(std::get<2>(it->first)).job;
    if (!query.show_deleted && job.status() == v1::Job::DELETED) continue;
    if (static_cast<int>(page.jobs.size()) == query.page_size) {
      page.has_more = true;
      break;
    }
    page.jobs.push_back(Filled(job));
  }
  return page;
}

absl::StatusOr<v1::Job> MemoryStore::Update(const std::optional<std::string>& owner,
                                            const std::string& job_id,
                                            JobRunMutation& mutate, bool with_results) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || (owner && it->second.job.owner() != *owner)) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  // Mutate a copy: an error applies nothing.
  v1::Job job = with_results ? Filled(it->second.job) : it->second.job;
  std::vector<v1::JobResult> results;
  RETURN_IF_ERROR(mutate(job, results));
  Row& row = it->second;
  row.version++;
  job.set_etag(absl::StrCat(row.version));
  job.clear_results();
  row.job = job;
  for (v1::JobResult& r : results) results_[{job_id, r.run_number()}] = std::move(r);
  return with_results ? Filled(job) : job;
}

void MemoryStore::WriteJob(std::string owner, std::string job_id, JobRunMutation mutate,
                           JobCallback done) {
  {
    absl::MutexLock lock(&mu_);
    Applied([done = std::move(done),
             r = Update(owner, job_id, mutate, /*with_results=*/true)]() mutable {
      std::move(done)(std::move(r));
    });
  }
  RunCallbacks();
}

void MemoryStore::WriteJobState(std::string job_id, std::optional<Fence> fence,
                                JobRunMutation mutate, JobCallback done) {
  {
    absl::MutexLock lock(&mu_);
    absl::Status fenced = CheckFence(fence);
    absl::StatusOr<v1::Job> r =
        fenced.ok() ? Update(std::nullopt, job_id, mutate, /*with_results=*/false)
                    : absl::StatusOr<v1::Job>(fenced);
    Applied([done = std::move(done), r = std::move(r)]() mutable {
      std::move(done)(std::move(r));
    });
  }
  RunCallbacks();
}

absl::Status MemoryStore::CheckFence(const std::optional<Fence>& fence) const {
  if (!fence) return absl::OkStatus();
  if (fence->shard < 0 || fence->shard >= kShards) {
    return absl::InvalidArgumentError(absl::StrCat("fence: no shard ", fence->shard));
  }
  const Lease& lease = leases_[fence->shard];
  if (lease.holder != fence->holder || lease.epoch != fence->epoch ||
      lease.expires <= now_()) {
    return absl::FailedPreconditionError(
        absl::StrCat("fence: this replica no longer holds shard ", fence->shard,
                     " at epoch ", fence->epoch));
  }
  return absl::OkStatus();
}

absl::StatusOr<LeaseGrant> MemoryStore::RenewLeases(const LeaseRenewal& renewal) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = now_();
  const std::string& me = renewal.replica_id;
  heartbeats_[me] = now;
  for (auto it = heartbeats_.begin(); it != heartbeats_.end();) {
    it = it->second + renewal.ttl <= now ? heartbeats_.erase(it) : std::next(it);
  }
  for (const int shard : renewal.release) {
    if (shard < 0 || shard >= kShards) continue;
    Lease& lease = leases_[shard];
    if (lease.holder == me) {
      lease.holder.clear();
      lease.expires = absl::InfinitePast();
    }
  }
  LeaseGrant grant;
  grant.live_replicas = static_cast<int>(heartbeats_.size());
  grant.fair_share = (kShards + grant.live_replicas - 1) / grant.live_replicas;
  int held = 0;
  for (Lease& lease : leases_) {
    if (lease.holder == me && lease.expires > now) {
      lease.expires = now + renewal.ttl;
      ++held;
    }
  }
  for (Lease& lease : leases_) {
    if (held >= grant.fair_share) break;
    if (!lease.holder.empty() && lease.expires > now) continue;
    lease.holder = me;
    ++lease.epoch;
    lease.expires = now + renewal.ttl;
    ++held;
  }
  for (int shard = 0; shard < kShards; ++shard) {
    const Lease& lease = leases_[shard];
    if (lease.holder == me && lease.expires > now) {
      grant.held.push_back(HeldShard{shard, lease.epoch});
    }
  }
  return grant;
}

absl::Status MemoryStore::ReleaseLeases(const std::string& replica_id) {
  absl::MutexLock lock(&mu_);
  heartbeats_.erase(replica_id);
  for (Lease& lease : leases_) {
    if (lease.holder == replica_id) {
      lease.holder.clear();
      lease.expires = absl::InfinitePast();
    }
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::AddRelayedRun(const RelayedRun& request, absl::Duration ttl) {
  absl::MutexLock lock(&mu_);
  auto [it, added] = relayed_.try_emplace(request.id);
  if (!added) return absl::AlreadyExistsError("store: relayed run id already taken");
  it->second.run = request;
  it->second.seq = ++relayed_seq_;
  it->second.expires = now_() + ttl;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RelayedRun>> MemoryStore::ClaimRelayedRuns(
    const std::string& replica_id, int limit) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = now_();
  std::vector<Relayed*> open;
  for (auto& [id, r] : relayed_) {
    if (!r.claimed_by.empty() || r.expires <= now) continue;
    const Lease& lease = leases_[ShardOf(r.run.job_id)];
    if (lease.holder != replica_id || lease.expires <= now) continue;
    open.push_back(&r);
  }
  std::sort(open.begin(), open.end(),
            [](const Relayed* a, const Relayed* b) { return a->seq < b->seq; });
  std::vector<RelayedRun> claimed;
  for (Relayed* r : open) {
    if (static_cast<int>(claimed.size()) >= limit) break;
    r->claimed_by = replica_id;
    claimed.push_back(r->run);
  }
  return claimed;
}

absl::Status MemoryStore::FinishRelayedRun(const std::string& id,
                                           const absl::Status& outcome) {
  absl::MutexLock lock(&mu_);
  auto it = relayed_.find(id);
  if (it == relayed_.end()) return absl::NotFoundError("store: no such relayed run");
  it->second.outcome = absl::Status(outcome.code(), RelayedRunMessage(outcome.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RelayedRunOutcome>> MemoryStore::RelayedRunOutcomes(
    const std::vector<std::string>& ids) {
  absl::MutexLock lock(&mu_);
  std::vector<RelayedRunOutcome> out;
  for (const std::string& id : ids) {
    auto it = relayed_.find(id);
    if (it != relayed_.end() && it->second.outcome) {
      out.push_back(RelayedRunOutcome{id, *it->second.outcome});
    }
  }
  return out;
}

absl::StatusOr<int64_t> MemoryStore::PruneRelayedRuns(absl::Duration keep) {
  absl::MutexLock lock(&mu_);
  const absl::Time before = now_() - keep;
  int64_t pruned = 0;
  for (auto it = relayed_.begin(); it != relayed_.end();) {
    if (it->second.expires < before) {
      it = relayed_.erase(it);
      ++pruned;
    } else {
      ++it;
    }
  }
  return pruned;
}

void MemoryStore::WriteResult(std::string job_id, v1::JobResult result,
                              StatusCallback done) {
  {
    absl::MutexLock lock(&mu_);
    absl::Status status;
    if (jobs_.contains(job_id)) {
      results_[{job_id, result.run_number()}] = std::move(result);
    } else {
      status = absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    }
    Applied([done = std::move(done), status]() mutable { std::move(done)(status); });
  }
  RunCallbacks();
}

absl::Status MemoryStore::ScanDue(
    absl::FunctionRef<void(const std::string&, int64_t)> fn) {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, row] : jobs_) {
    if (row.job.has_next_run()) fn(id, ToMicros(row.job.next_run()));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> MemoryStore::LoadJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end())
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return Filled(it->second.job);
}

absl::StatusOr<std::vector<std::pair<std::string, v1::JobResult>>>
MemoryStore::ListOpenResults() {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, v1::JobResult>> open;
  for (const auto& [key, r] : results_) {
    if (r.status() == v1::JobResult::PENDING || r.status() == v1::JobResult::ACTIVE) {
      open.emplace_back(key.first, r);
    }
  }
  return open;
}

absl::StatusOr<std::vector<v1::JobResult>> MemoryStore::ListResults(
    const std::string& owner, const std::string& job_id, int64_t before_run_number,
    int page_size) {
  absl::MutexLock lock(&mu_);
  auto job = jobs_.find(job_id);
  if (job == jobs_.end() || job->second.job.owner() != owner) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  std::vector<v1::JobResult> out;
  auto it = results_.lower_bound(
      {job_id, before_run_number > 0 ? before_run_number : INT64_MAX});
  while (it != results_.begin() && static_cast<int>(out.size()) < page_size) {
    --it;
    if (it->first.first != job_id) break;
    out.push_back(it->second);
  }
  return out;
}

void MemoryStore::WriteManualRun(std::string owner, std::string job_id,
                                 std::string request_id, std::optional<Fence> fence,
                                 ManualRunMutation mutate, JobCallback done) {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status fenced = CheckFence(fence); !fenced.ok()) {
      Applied([done = std::move(done), fenced]() mutable { std::move(done)(fenced); });
    } else {
      int64_t existing = 0;
      if (!request_id.empty()) {
        auto it = run_requests_.find({job_id, request_id});
        if (it != run_requests_.end()) existing = it->second.run_number;
      }
      int64_t added = 0;
      JobRunMutation wrapped = ManualRunWrapper(mutate, request_id, existing, &added);
      absl::StatusOr<v1::Job> r = Update(owner, job_id, wrapped, /*with_results=*/true);
      if (r.ok() && existing == 0 && added != 0) {
        run_requests_[{job_id, request_id}] =
            RunRequest{added, ToMicros(r->update_time())};
      }
      Applied([done = std::move(done), r = std::move(r)]() mutable {
        std::move(done)(std::move(r));
      });
    }
  }
  RunCallbacks();
}

absl::StatusOr<std::map<int, int64_t>> MemoryStore::CountJobsByStatus() {
  absl::MutexLock lock(&mu_);
  std::map<int, int64_t> out;
  for (const auto& [id, row] : jobs_) ++out[static_cast<int>(row.job.status())];
  return out;
}

absl::StatusOr<std::vector<PurgedJob>> MemoryStore::PurgeDeletedJobs(
    int64_t deleted_before_us, int max_jobs) {
  std::vector<PurgedJob> purged;
  {
    absl::MutexLock lock(&mu_);
    // Oldest deletes first, as the SQLite store does.
    std::vector<std::pair<int64_t, std::string>> due;
    for (const auto& [id, row] : jobs_) {
      const v1::Job& job = row.job;
      if (job.status() == v1::Job::DELETED && DeleteMicros(job) < deleted_before_us) {
        due.emplace_back(DeleteMicros(job), id);
      }
    }
    std::sort(due.begin(), due.end());
    if (static_cast<int>(due.size()) > max_jobs) due.resize(std::max(0, max_jobs));
    for (const auto& [us, id] : due) {
      auto it = jobs_.find(id);
      const v1::Job& job = it->second.job;
      purged.push_back(PurgedJob{job.owner(), id, StoredBytes(job)});
      order_.erase({job.owner(), ToMicros(job.create_time()), id});
      for (auto r = requests_.begin(); r != requests_.end();) {
        r = r->second.job_id == id ? requests_.erase(r) : std::next(r);
      }
      for (auto r = run_requests_.lower_bound({id, ""});
           r != run_requests_.end() && r->first.first == id;) {
        r = run_requests_.erase(r);
      }
      results_.erase(results_.lower_bound({id, INT64_MIN}),
                     results_.upper_bound({id, INT64_MAX}));
      jobs_.erase(it);
    }
  }
  return purged;
}

absl::StatusOr<int64_t> MemoryStore::PruneResults(int keep_per_job,
                                                  int64_t ended_before_us) {
  absl::MutexLock lock(&mu_);
  for (auto it = run_requests_.begin(); it != run_requests_.end();) {
    it = it->second.create_us < ended_before_us ? run_requests_.erase(it) : std::next(it);
  }
  int64_t deleted = 0;
  std::map<std::string, int> seen;  // Results kept so far per job, newest first.
  for (auto it = results_.end(); it != results_.begin();) {
    --it;
    const v1::JobResult& r = it->second;
    const bool too_many = ++seen[it->first.first] > keep_per_job;
    if (!r.has_end_time()) continue;  // Open runs are never pruned.
    if (too_many || ToMicros(r.end_time()) < ended_before_us) {
      it = results_.erase(it);
      ++deleted;
    }
  }
  return deleted;
}

size_t MemoryStore::size() const {
  absl::MutexLock lock(&mu_);
  return jobs_.size();
}

}  // namespace timer::store
