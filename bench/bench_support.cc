#include "bench_support.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace timer::bench {

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  const size_t k = static_cast<size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int64_t ProcStatusKb(pid_t pid, const std::string& field) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    int64_t kb = 0;
    std::vector<std::string> parts =
        absl::StrSplit(line.substr(field.size() + 1), ' ', absl::SkipWhitespace());
    if (!parts.empty() && absl::SimpleAtoi(parts[0], &kb)) return kb;
  }
  return -1;
}

double ProcCpuSeconds(pid_t pid) {
  const std::string text = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  // The command name may hold spaces and parentheses: fields count from the
  // last ')'. After "(comm) ", state is f[0]; utime (field 14 overall) f[11].
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 > text.size()) return 0;
  std::vector<std::string> f = absl::StrSplit(text.substr(paren + 2), ' ');
  int64_t ut = 0, st = 0;
  if (f.size() < 13 || !absl::SimpleAtoi(f[11], &ut) || !absl::SimpleAtoi(f[12], &st)) {
    return 0;
  }
  return static_cast<double>(ut + st) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double SelfCpuSeconds() {
  rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

double LoadAverage1() {
  std::ifstream in("/proc/loadavg");
  double load = 0;
  in >> load;
  return load;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  if (!(in >> a >> b >> c)) return "?";
  return a + " " + b + " " + c;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

std::string LastLine(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // The child: only async-signal-safe calls from here on.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // The parent died before prctl.
  const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (out < 0 || err < 0) ::_exit(127);
  ::dup2(out, 1);
  ::dup2(err, 2);
  ::execv(args[0], args.data());
  ::_exit(127);
}

int RunToEnd(const std::vector<std::string>& argv, const std::string& dir,
             std::string* out) {
  const std::string out_path = dir + "/cmd.out", err_path = dir + "/cmd.err";
  std::error_code ec;
  std::filesystem::remove(err_path, ec);  // Spawn appends: only this command's.
  const pid_t pid = Spawn(argv, out_path, err_path);
  if (pid < 0) return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  *out = ReadFile(out_path);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *out += ReadFile(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  return 0;
}

namespace {

// The rest of the line after `marker`, once that line is complete; "" until
// then.
std::string After(const std::string& log, const std::string& marker) {
  const size_t at = log.find(marker);
  if (at == std::string::npos) return "";
  const size_t end = log.find('\n', at);
  if (end == std::string::npos) return "";
  return log.substr(at + marker.size(), end - at - marker.size());
}

}  // namespace

Timerd::Timerd(std::string binary, std::string plugin_dir)
    : binary_(std::move(binary)), plugin_dir_(std::move(plugin_dir)) {}

bool Timerd::Launch(const std::string& dir, const std::string& config, bool http,
                    const std::vector<std::string>& args, std::string* error) {
  if (pid_ > 0) {
    *error = "timerd is already running";
    return false;
  }
  dir_ = dir;
  http_ = http;
  address_.clear();
  http_port_ = 0;
  std::error_code ec;
  std::filesystem::create_directories(dir + "/data", ec);
  if (ec) {
    *error = absl::StrCat("creating ", dir, "/data: ", ec.message());
    return false;
  }
  const std::string config_path = dir + "/timerd.toml";
  {
    std::ofstream file(config_path);
    file << config;
    if (!file.flush()) {
      *error = "writing " + config_path;
      return false;
    }
  }
  std::vector<std::string> argv = {binary_, "--config", config_path, "--listen",
                                   "127.0.0.1:0"};
  if (http) argv.insert(argv.end(), {"--http-listen", "127.0.0.1:0"});
  argv.insert(argv.end(), {"--data-dir", dir + "/data", "--plugin-dir", plugin_dir_,
                           "--log-level", "info"});
  argv.insert(argv.end(), args.begin(), args.end());
  pid_ = Spawn(argv, dir + "/timerd.out", log_path());
  if (pid_ < 0) {
    *error = "fork failed";
    return false;
  }
  return true;
}

bool Timerd::WaitListening(double seconds, std::string* error) {
  if (pid_ <= 0) {
    *error = "timerd is not running";
    return false;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string log = ReadFile(log_path());
    if (address_.empty()) address_ = After(log, "listening on ");
    if (http_ && http_port_ == 0) {
      const std::string url = After(log, "http: serving on http://");
      const size_t colon = url.rfind(':');
      if (colon != std::string::npos) {
        (void)absl::SimpleAtoi(url.substr(colon + 1), &http_port_);
      }
    }
    if (!address_.empty() && (!http_ || http_port_ > 0)) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      *error = "timerd exited: " + log;
      return false;
    }
    SleepMs(20);  // Polling another process's log.
  }
  *error = absl::StrCat("timerd did not listen within ", seconds,
                        " s: ", ReadFile(log_path()));
  return false;
}

bool Timerd::Start(const std::string& dir, const std::string& config, bool http,
                   std::string* error) {
  return Launch(dir, config, http, {}, error) && WaitListening(20, error);
}

bool Timerd::Stop(int sig) {
  if (pid_ <= 0) return true;
  ::kill(pid_, sig);
  bool clean = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      clean = true;
      break;
    }
    SleepMs(10);  // Waiting for another process.
  }
  if (!clean) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return clean;
}

}  // namespace timer::bench
