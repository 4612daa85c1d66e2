// Child processes for end-to-end tests: run a command to completion, or keep
// a daemon running and watch its stderr.
//
// Daemon is thread-safe; its destructor always stops the process (SIGTERM,
// then SIGKILL after a grace period), so a failing test never leaves one
// running.
#pragma once

#include <sys/types.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace timer::testing {

struct RunResult {
  int exit_code = -1;  // -1 if killed by a signal or timed out.
  std::string out;
  std::string err;
};

// Runs argv[0] with `argv` and `env` additions (NAME=VALUE) to completion or
// until `timeout`, capturing stdout and stderr.
RunResult Run(const std::vector<std::string>& argv,
              const std::vector<std::string>& env = {},
              absl::Duration timeout = absl::Seconds(30));

// Run, with `input` written to the child's stdin (then closed).
RunResult RunWithInput(const std::vector<std::string>& argv,
                       const std::vector<std::string>& env, const std::string& input,
                       absl::Duration timeout = absl::Seconds(30));

class Daemon {
 public:
  // Starts argv; stderr is collected and stdout discarded.
  explicit Daemon(const std::vector<std::string>& argv);
  ~Daemon();

  // Waits until stderr holds a complete line containing `needle`; true then,
  // with the rest of that line in `rest_of_line`. False on timeout or if the
  // daemon closed stderr (exited) first.
  bool WaitForLog(const std::string& needle, absl::Duration timeout,
                  std::string* rest_of_line = nullptr);

  // Sends `sig` and waits for exit; returns the exit code (-1 if it died of
  // a signal or did not exit within `timeout`, in which case it is killed).
  int Stop(int sig, absl::Duration timeout = absl::Seconds(20));

  // Waits for the process to exit by itself; returns its exit code, or -1.
  int WaitExit(absl::Duration timeout);

  std::string log() const;
  pid_t pid() const { return pid_; }

 private:
  void ReadLoop(int fd);

  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;
  std::thread reader_;
  mutable absl::Mutex mu_;
  std::string log_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
};

// A fresh directory under $TMPDIR (or /tmp), removed when destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace timer::testing
