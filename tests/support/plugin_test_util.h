// Helpers shared by the plugin tests: temp directories and waiting for an
// action to end (polling with a deadline, never a bare sleep).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "domain/action_provider.h"

namespace timer::plugin_host::testing {

// A fresh directory removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "timer-plugins-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteFile(const std::filesystem::path& p, const std::string& content) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
}

// Polls Status() until the action leaves kActive or `timeout` passes.
inline absl::StatusOr<domain::ActionStatus> WaitForEnd(
    domain::ActionProvider* p, const std::string& action_id,
    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    absl::StatusOr<domain::ActionStatus> s = p->Status(action_id);
    if (!s.ok() || s->state != domain::ActionStatus::State::kActive) return s;
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::DeadlineExceededError("action " + action_id + " still active");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace timer::plugin_host::testing
