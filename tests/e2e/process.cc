#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "absl/time/clock.h"

extern char** environ;

namespace timer::testing {
namespace {

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Environment of this process plus `extra` (which wins).
std::vector<std::string> MergedEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const std::string& x : extra) {
      if (x.substr(0, x.find('=')) == name) overridden = true;
    }
    if (!overridden) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

pid_t Spawn(const std::vector<std::string>& argv_in,
            const std::vector<std::string>& env_in, int out_fd, int err_fd,
            int in_fd = -1) {
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env = MergedEnv(env_in);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (in_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  if (out_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, CStrings(argv).data(),
                       CStrings(env).data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  return pid;
}

// waitpid with a deadline; true if it exited (status filled).
bool WaitPid(pid_t pid, absl::Duration timeout, int* status) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));  // Polling a child: no fd to wait on.
  }
}

int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

}  // namespace

RunResult Run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
              absl::Duration timeout) {
  return RunWithInput(argv, env, "", timeout);
}

RunResult RunWithInput(const std::vector<std::string>& argv,
                       const std::vector<std::string>& env, const std::string& input,
                       absl::Duration timeout) {
  int out[2], err[2], in[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  // Small inputs only: the whole input fits in the pipe's buffer.
  if (!input.empty() && (input.size() > 4096 || pipe2(in, O_CLOEXEC) != 0)) {
    throw std::runtime_error("stdin pipe failed");
  }
  pid_t pid = Spawn(argv, env, out[1], err[1], in[0]);
  close(out[1]);
  close(err[1]);
  if (in[0] >= 0) {
    close(in[0]);
    if (write(in[1], input.data(), input.size()) != static_cast<ssize_t>(input.size())) {
      close(in[1]);
      throw std::runtime_error("stdin write failed");
    }
    close(in[1]);
  }
  RunResult result;
  const absl::Time deadline = absl::Now() + timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) break;
    if (poll(fds, 2, ms) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buf, n);
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (const pollfd& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  int status = 0;
  if (!WaitPid(pid, std::max(deadline - absl::Now(), absl::Milliseconds(100)), &status)) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    result.exit_code = -1;
    result.err += "\n[timed out]";
    return result;
  }
  result.exit_code = ExitCode(status);
  return result;
}

Daemon::Daemon(const std::vector<std::string>& argv) : Daemon(argv, {}, false) {}

Daemon::Daemon(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               bool with_stdout) {
  int err[2];
  if (pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  pid_ = Spawn(argv, env, with_stdout ? err[1] : -1, err[1]);
  close(err[1]);
  reader_ = std::thread([this, fd = err[0]] { ReadLoop(fd); });
}

Daemon::~Daemon() {
  if (!exited_) Stop(SIGTERM, absl::Seconds(10));
  if (reader_.joinable()) reader_.join();
}

void Daemon::ReadLoop(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    absl::MutexLock lock(&mu_);
    if (n <= 0) {
      eof_ = true;
      break;
    }
    log_.append(buf, n);
  }
  close(fd);
}

bool Daemon::WaitForLog(const std::string& needle, absl::Duration timeout,
                        std::string* rest_of_line) {
  absl::MutexLock lock(&mu_);
  auto found = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t at = log_.find(needle);
    return at != std::string::npos && log_.find('\n', at) != std::string::npos;
  };
  // Ends when the line is complete, the daemon closed stderr, or timeout.
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return found() || eof_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  size_t at = log_.find(needle);
  if (at == std::string::npos) return false;
  size_t end = log_.find('\n', at);
  if (end == std::string::npos) return false;
  if (rest_of_line != nullptr) {
    *rest_of_line = log_.substr(at + needle.size(), end - at - needle.size());
  }
  return true;
}

int Daemon::Stop(int sig, absl::Duration timeout) {
  if (exited_) return exit_code_;
  kill(pid_, sig);
  int status = 0;
  if (!WaitPid(pid_, timeout, &status)) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    exited_ = true;
    exit_code_ = -1;
    return -1;
  }
  exited_ = true;
  exit_code_ = ExitCode(status);
  AwaitLogEnd();
  return exit_code_;
}

int Daemon::WaitExit(absl::Duration timeout) {
  if (exited_) return exit_code_;
  int status = 0;
  if (!WaitPid(pid_, timeout, &status)) return -1;
  exited_ = true;
  exit_code_ = ExitCode(status);
  AwaitLogEnd();
  return exit_code_;
}

void Daemon::AwaitLogEnd() {
  // The process is gone, but its last lines may still be in the pipe: wait
  // (bounded) until the reader has seen the end of its output.
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&eof_), absl::Seconds(5));
}

std::string Daemon::log() const {
  absl::MutexLock lock(&mu_);
  return log_;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/timer-e2e-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace timer::testing
