#include "domain/timer_queue.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "domain/ids.h"

namespace timer::domain {
namespace {

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

}  // namespace

std::optional<JobKey> JobKey::Parse(absl::string_view uuid) {
  // No copy: a million of these at start.
  if (!IsUuid(std::string_view(uuid.data(), uuid.size()))) return std::nullopt;
  JobKey key;
  int nibbles = 0;
  for (char c : uuid) {
    if (c == '-') continue;
    uint64_t& half = nibbles < 16 ? key.hi : key.lo;
    half = (half << 4) | static_cast<uint64_t>(HexValue(c));
    ++nibbles;
  }
  return key;
}

std::string JobKey::ToString() const {
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32, (hi >> 16) & 0xffff,
                         hi & 0xffff, lo >> 48, lo & 0xffffffffffffULL);
}

bool TimerQueue::Stale(const Entry& e) const {
  const Slot& s = slots_[e.slot];
  return !s.live || s.generation != e.generation;
}

void TimerQueue::Set(const JobKey& key, absl::Time due) {
  SetUnordered(key, Micros(due));
  std::push_heap(heap_.begin(), heap_.end(), Later);
  if (heap_.size() > 2 * index_.size() + 1024) Compact();
}

void TimerQueue::SetAll(const std::vector<std::pair<JobKey, int64_t>>& jobs) {
  index_.reserve(index_.size() + jobs.size());
  slots_.reserve(slots_.size() + jobs.size());
  heap_.reserve(heap_.size() + jobs.size());
  for (const auto& [key, due_us] : jobs) SetUnordered(key, due_us);
  if (heap_.size() > 2 * index_.size() + 1024) {
    Compact();  // Drops the stale entries and makes the heap.
  } else {
    std::make_heap(heap_.begin(), heap_.end(), Later);
  }
}

void TimerQueue::SetUnordered(const JobKey& key, int64_t due_us) {
  uint32_t slot;
  auto it = index_.find(key);
  if (it != index_.end()) {
    slot = it->second;
  } else {
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    index_.emplace(key, slot);
    slots_[slot].key = key;
    slots_[slot].live = true;
  }
  Slot& s = slots_[slot];
  s.due_us = due_us;
  ++s.generation;
  heap_.push_back(Entry{s.due_us, slot, s.generation});
}

size_t TimerQueue::RemoveIf(absl::FunctionRef<bool(const JobKey&)> drop) {
  std::vector<JobKey> doomed;
  for (const auto& [key, slot] : index_) {
    if (drop(key)) doomed.push_back(key);
  }
  for (const JobKey& key : doomed) Remove(key);
  return doomed.size();
}

void TimerQueue::Remove(const JobKey& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  Slot& s = slots_[it->second];
  s.live = false;
  ++s.generation;
  free_slots_.push_back(it->second);
  index_.erase(it);
}

void TimerQueue::DropStaleTop() {
  while (!heap_.empty() && Stale(heap_.front())) {
    std::pop_heap(heap_.begin(), heap_.end(), Later);
    heap_.pop_back();
  }
}

std::vector<std::pair<JobKey, absl::Time>> TimerQueue::PopDue(absl::Time now,
                                                              size_t max) {
  std::vector<std::pair<JobKey, absl::Time>> due;
  const int64_t now_us = Micros(now);
  for (;;) {
    DropStaleTop();
    if (heap_.empty() || due.size() >= max || heap_.front().due_us > now_us) break;
    const Entry e = heap_.front();
    std::pop_heap(heap_.begin(), heap_.end(), Later);
    heap_.pop_back();
    const JobKey key = slots_[e.slot].key;
    due.emplace_back(key, absl::FromUnixMicros(e.due_us));
    Remove(key);
  }
  return due;
}

std::optional<absl::Time> TimerQueue::NextDue() {
  DropStaleTop();
  if (heap_.empty()) return std::nullopt;
  return absl::FromUnixMicros(heap_.front().due_us);
}

std::optional<absl::Time> TimerQueue::DueTime(const JobKey& key) const {
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  return absl::FromUnixMicros(slots_[it->second].due_us);
}

void TimerQueue::Compact() {
  heap_.erase(std::remove_if(heap_.begin(), heap_.end(),
                             [this](const Entry& e) { return Stale(e); }),
              heap_.end());
  std::make_heap(heap_.begin(), heap_.end(), Later);
}

}  // namespace timer::domain
