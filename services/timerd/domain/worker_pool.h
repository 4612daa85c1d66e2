// WorkerPool: a fixed number of threads running queued tasks in order.
//
// The run engine calls action providers here, never on its timer thread.
// Submit() never blocks; the engine bounds how much it submits (back-pressure
// lives there, where it knows what a task is). Thread-safe. The destructor
// finishes every queued task, then joins the threads.
#pragma once

#include <deque>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace timer::domain {

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;

  void Submit(absl::AnyInvocable<void() &&> task);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace timer::domain
