#include "store/memory_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace timer::store {

absl::StatusOr<v1::Job> MemoryStore::Create(v1::Job job,
                                            const std::string& request_id,
                                            const std::string& fingerprint) {
  absl::MutexLock lock(&mu_);
  if (!request_id.empty()) {
    auto it = requests_.find({job.owner(), request_id});
    if (it != requests_.end()) {
      if (it->second.fingerprint != fingerprint) {
        return absl::AlreadyExistsError(
            "request_id: already used for a different request");
      }
      return jobs_.at(it->second.job_id).job;
    }
  }
  if (jobs_.count(job.job_id()) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job.job_id(), " exists"));
  }
  job.set_etag("1");
  order_[{job.owner(), ToMicros(job.create_time()), job.job_id()}] = true;
  if (!request_id.empty()) {
    requests_[{job.owner(), request_id}] = Request{fingerprint, job.job_id()};
  }
  jobs_[job.job_id()] = Row{job, 1};
  return job;
}

void MemoryStore::CreateJob(v1::Job job, std::string request_id,
                            std::string fingerprint, JobCallback done) {
  std::move(done)(Create(std::move(job), request_id, fingerprint));
}

absl::StatusOr<v1::Job> MemoryStore::GetJob(const std::string& owner,
                                            const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.job.owner() != owner) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  return it->second.job;
}

absl::StatusOr<ListJobsPage> MemoryStore::ListJobs(const ListJobsQuery& query) {
  absl::MutexLock lock(&mu_);
  ListJobsPage page;
  auto it = query.after
                ? order_.upper_bound({query.owner, query.after->create_micros,
                                      query.after->job_id})
                : order_.lower_bound({query.owner, INT64_MIN, ""});
  for (; it != order_.end() && std::get<0>(it->first) == query.owner; ++it) {
    const v1::Job& job = jobs_.at(std::get<2>(it->first)).job;
    if (!query.show_deleted && job.status() == v1::Job::DELETED) continue;
    if (static_cast<int>(page.jobs.size()) == query.page_size) {
      page.has_more = true;
      break;
    }
    page.jobs.push_back(job);
  }
  return page;
}

absl::StatusOr<v1::Job> MemoryStore::Update(const std::string& owner,
                                            const std::string& job_id,
                                            JobMutation& mutate) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.job.owner() != owner) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  v1::Job job = it->second.job;  // Mutate a copy: an error applies nothing.
  RETURN_IF_ERROR(mutate(job));
  Row& row = it->second;
  row.version++;
  job.set_etag(absl::StrCat(row.version));
  row.job = job;
  return job;
}

void MemoryStore::UpdateJob(std::string owner, std::string job_id,
                            JobMutation mutate, JobCallback done) {
  std::move(done)(Update(owner, job_id, mutate));
}

size_t MemoryStore::size() const {
  absl::MutexLock lock(&mu_);
  return jobs_.size();
}

}  // namespace timer::store
