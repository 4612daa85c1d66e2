// bench_support: what the benchmark drivers in bench/ share, once: the wall
// clock, medians and percentiles, waiting on a condition, reading a child's
// /proc figures (RSS, CPU, threads) and the machine's load, running a
// command, and a timerd started from the build tree as a child process.
//
// Nothing here is used by timerd itself; it is the benches' measuring kit.
//
// Threading: the free functions are safe to call from any thread (they keep
// no state). A Timerd is driven by one thread (the bench's main()); its
// const accessors only read /proc and may be called from any thread while
// that thread does not Start or Stop it.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace timer::bench {

// Microseconds since the Unix epoch (the system clock, as event times are).
int64_t WallMicros();

void SleepMs(int ms);

// The element at rank floor(q * (n - 1)) (q in [0, 1]), or 0 if v is empty.
double Percentile(std::vector<double> v, double q);

// The middle element, or the mean of the two middle ones; 0 if v is empty.
double Median(std::vector<double> v);

// Waits until pred() holds or `seconds` pass, polling every 10 ms (the
// benches wait on other processes and on atomics other threads set); returns
// pred().
template <typename Pred>
bool WaitFor(Pred pred, double seconds) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    SleepMs(10);
  }
  return true;
}

// A /proc/PID/status field in kB (VmRSS, VmHWM) or as a count (Threads); -1
// if the process or the field is not there.
int64_t ProcStatusKb(pid_t pid, const std::string& field);

// utime + stime of PID from /proc/PID/stat, in seconds; 0 if unreadable.
double ProcCpuSeconds(pid_t pid);

// This process's user + system CPU, in seconds.
double SelfCpuSeconds();

// How busy the whole (shared) machine is: the 1-minute load average, and
// the 1-, 5- and 15-minute ones as /proc/loadavg prints them ("0.52 0.61
// 0.70").
double LoadAverage1();
std::string LoadAverage();

// The whole file, or "" if it cannot be read.
std::string ReadFile(const std::string& path);

// The last line of `text`, trailing newlines ignored (what a command such as
// `timerd token issue` prints last).
std::string LastLine(std::string text);

// Forks and execs argv[0] (a path, not searched) with argv, stdout to
// `out_path` (truncated) and stderr to `err_path` (appended). The child gets
// SIGKILL if this process dies. Returns the child's pid, or -1 if fork
// failed; a failed exec ends the child with status 127.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path);

// Runs argv to completion with its output in dir/cmd.out and dir/cmd.err;
// returns its exit code (-1 if it did not start or was killed), its stdout
// in *out, followed by its stderr if it failed.
int RunToEnd(const std::vector<std::string>& argv, const std::string& dir,
             std::string* out);

// One timerd child process, on loopback with port 0, for the benches that
// measure a real timerd from outside. Owns the process: the destructor stops
// it (SIGTERM, then SIGKILL after 10 s); it also gets SIGKILL if this
// process dies first. Its directory is the caller's (not removed here).
class Timerd {
 public:
  // `binary`: the timerd to run; `plugin_dir`: its --plugin-dir.
  Timerd(std::string binary, std::string plugin_dir);
  ~Timerd() { Stop(); }
  Timerd(const Timerd&) = delete;
  Timerd& operator=(const Timerd&) = delete;

  // Starts timerd in `dir` (created if missing) and returns at once:
  // `config` (TOML) is written to dir/timerd.toml, the data dir is
  // dir/data, stdout goes to dir/timerd.out and the log (stderr) to
  // dir/timerd.log; gRPC listens on 127.0.0.1:0 and, with `http`, HTTP too.
  // `args` are appended to the command line (e.g. {"--store", URI}).
  // False, with *error, if it could not be started.
  bool Launch(const std::string& dir, const std::string& config, bool http,
              const std::vector<std::string>& args, std::string* error);

  // Waits at most `seconds` until the log names the gRPC address ("listening
  // on ADDRESS", a complete line) and, if launched with `http`, the HTTP one
  // ("http: serving on http://HOST:PORT"). False, with *error (the log), if
  // timerd exited or did not listen in time.
  bool WaitListening(double seconds, std::string* error);

  // Launch with no extra arguments, then WaitListening(20 s).
  bool Start(const std::string& dir, const std::string& config, bool http,
             std::string* error);

  // Sends `sig` and waits at most 10 s for timerd to exit, then SIGKILLs and
  // reaps it. Returns true if it exited within 10 s of `sig` (or was not
  // running).
  bool Stop(int sig = SIGTERM);

  pid_t pid() const { return pid_; }  // -1 once stopped.
  const std::string& dir() const { return dir_; }
  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"
  int http_port() const { return http_port_; }             // 0 without http.
  std::string log_path() const { return dir_ + "/timerd.log"; }
  // /proc figures of the running process (-1, or 0 for CPU, once stopped).
  int64_t RssKb() const { return pid_ > 0 ? ProcStatusKb(pid_, "VmRSS") : -1; }
  int64_t Threads() const { return pid_ > 0 ? ProcStatusKb(pid_, "Threads") : -1; }
  double CpuSeconds() const { return pid_ > 0 ? ProcCpuSeconds(pid_) : 0; }

 private:
  const std::string binary_;
  const std::string plugin_dir_;
  std::string dir_;
  bool http_ = false;
  pid_t pid_ = -1;
  std::string address_;
  int http_port_ = 0;
};

}  // namespace timer::bench
