// TimerQueue: every active job's next due time, in one binary min-heap.
//
// Sized for a million jobs in one process: a job costs one 16-byte heap
// entry, one 32-byte slot and one hash-map entry; job ids are kept as 128-bit
// values, not strings. Moving or removing a job does not search the heap:
// its slot's generation is bumped and the stale heap entry is dropped when
// it surfaces (the heap is rebuilt when stale entries outnumber live ones).
//
// Not thread-safe: the run engine guards it with its own mutex.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace timer::domain {

// A job id (UUID) as two 64-bit halves.
struct JobKey {
  uint64_t hi = 0;
  uint64_t lo = 0;

  // nullopt unless `uuid` is a canonical UUID.
  static std::optional<JobKey> Parse(absl::string_view uuid);
  std::string ToString() const;  // Canonical lowercase form.

  friend bool operator==(const JobKey& a, const JobKey& b) {
    return a.hi == b.hi && a.lo == b.lo;
  }
  template <typename H>
  friend H AbslHashValue(H h, const JobKey& k) {
    return H::combine(std::move(h), k.hi, k.lo);
  }
};

class TimerQueue {
 public:
  // Sets the job's due time, adding the job or moving it.
  void Set(const JobKey& key, absl::Time due);
  // Set for each of `jobs` (the load at start, or of shards gained): the
  // containers grow once and the heap is built in one pass, not one sift
  // per job (a million jobs: a third of the start-up's CPU went to those
  // sifts and to rehashing the index as it grew).
  void SetAll(const std::vector<std::pair<JobKey, int64_t>>& jobs);
  // Forgets the job; a no-op if absent.
  void Remove(const JobKey& key);
  // Forgets every job for which `drop` is true; returns how many.
  size_t RemoveIf(absl::FunctionRef<bool(const JobKey&)> drop);
  // Removes and returns up to `max` jobs due at or before `now`, earliest first.
  std::vector<std::pair<JobKey, absl::Time>> PopDue(absl::Time now, size_t max);
  // The earliest due time, if any job is queued.
  std::optional<absl::Time> NextDue();
  // The job's due time, if queued.
  std::optional<absl::Time> DueTime(const JobKey& key) const;

  size_t size() const { return index_.size(); }

 private:
  struct Entry {
    int64_t due_us;
    uint32_t slot;
    uint32_t generation;
  };
  struct Slot {
    JobKey key;
    int64_t due_us = 0;
    uint32_t generation = 0;
    bool live = false;
  };
  static bool Later(const Entry& a, const Entry& b) { return a.due_us > b.due_us; }
  bool Stale(const Entry& e) const;
  // Set without restoring the heap order: the caller calls std::make_heap.
  void SetUnordered(const JobKey& key, int64_t due_us);
  void DropStaleTop();
  void Compact();

  std::vector<Entry> heap_;  // Min-heap on due_us (std::*_heap with Later).
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  absl::flat_hash_map<JobKey, uint32_t> index_;
};

}  // namespace timer::domain
