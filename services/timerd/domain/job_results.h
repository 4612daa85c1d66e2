// Keeping a job's embedded last-10 results in step with the results table.
#pragma once

#include <vector>

#include "store/store.h"
#include "timer/v1/timer.pb.h"

namespace timer::domain {

// Writes `result` into `job.results` (replacing the one with its run_number,
// or adding it newest-first and dropping the oldest beyond the store's
// results view, store::kJobResults) and queues it for the results table in
// `table`.
inline void PutResult(v1::Job& job, const v1::JobResult& result,
                      std::vector<v1::JobResult>& table) {
  table.push_back(result);
  auto* results = job.mutable_results();
  for (v1::JobResult& r : *results) {
    if (r.run_number() == result.run_number()) {
      r = result;
      return;
    }
  }
  *results->Add() = result;
  // Newest first: move the new one to the front.
  for (int i = results->size() - 1; i > 0; --i) results->SwapElements(i, i - 1);
  while (results->size() > store::kJobResults) results->RemoveLast();
}

// True for a result that will not change any more.
inline bool IsFinal(v1::JobResult::Status s) {
  return s != v1::JobResult::PENDING && s != v1::JobResult::ACTIVE &&
         s != v1::JobResult::STATUS_UNSPECIFIED;
}

}  // namespace timer::domain
