// `timer job status ID` end to end, as a person or a script sees it: process
// start, connect, one GetJob, print, exit. Measured against /bin/true (the
// cost of fork+exec+wait alone) and timer_bench_get_job (a bare C++ gRPC
// client doing one GetJob) in the same run, against one timerd on loopback.
// The three commands are interleaved round by round, so the shared machine's
// noise lands on all of them alike. Both clients send a token timerd issued
// for the run. Prints medians, percentiles and ratios.
//
//   timer_bench_cli_status [--runs 200] [--warmup 10] [--timer PATH] ...
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Starts argv with stdout to `out_fd` (or /dev/null) and stderr to `err_path`
// (or /dev/null).
pid_t Spawn(const std::vector<std::string>& argv, int out_fd = -1,
            const std::string& err_path = "") {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (out_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_addopen(&actions, 2,
                                   err_path.empty() ? "/dev/null" : err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ) != 0) {
    std::cerr << "cannot start " << argv[0] << "\n";
    std::exit(1);
  }
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs argv to completion; returns its stdout (exits the bench on failure).
std::string Output(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe(fds) != 0) std::exit(1);
  const pid_t pid = Spawn(argv, fds[1]);
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  close(fds[0]);
  if (Wait(pid) != 0) {
    std::cerr << argv[0] << " failed\n";
    std::exit(1);
  }
  return out;
}

struct Stats {
  double median, p10, p90, mean;
};

Stats Summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  const auto at = [&](double q) { return ms[static_cast<size_t>(q * (ms.size() - 1))]; };
  double sum = 0;
  for (double m : ms) sum += m;
  return {at(0.5), at(0.1), at(0.9), sum / ms.size()};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"timer job status end to end vs /bin/true vs a bare gRPC client"};
  int runs = 200, warmup = 10;
  std::string timerd = TIMER_BENCH_TIMERD, timer = TIMER_BENCH_TIMER,
              get_job = TIMER_BENCH_GET_JOB, plugin_dir = TIMER_BENCH_PLUGIN_DIR;
  app.add_option("--runs", runs, "measured runs of each command")->capture_default_str();
  app.add_option("--warmup", warmup, "unmeasured runs first")->capture_default_str();
  app.add_option("--timerd", timerd, "timerd binary")->capture_default_str();
  app.add_option("--timer", timer, "timer binary")->capture_default_str();
  app.add_option("--get-job", get_job, "bare client binary")->capture_default_str();
  app.add_option("--plugin-dir", plugin_dir, "plugins for timerd")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  char tmpl[] = "/tmp/timer-bench-cli-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl, log = dir + "/timerd.log";
  // timerd requires a token: issue one, and hand it to both clients the way
  // scripts do (TIMER_TOKEN, so `timer` reads no token cache).
  std::string token = Output({timerd, "token", "issue", "--data-dir", dir + "/data",
                              "--identity", "bench@localhost"});
  while (!token.empty() && token.back() == '\n') token.pop_back();
  token = token.substr(token.rfind('\n') + 1);  // The last line (npos + 1 == 0).
  setenv("TIMER_TOKEN", token.c_str(), 1);
  const pid_t daemon = Spawn({timerd, "--listen", "127.0.0.1:0", "--data-dir",
                              dir + "/data", "--plugin-dir", plugin_dir},
                             -1, log);
  std::string address;
  for (const auto deadline = Clock::now() + std::chrono::seconds(20);
       address.empty() && Clock::now() < deadline;) {
    std::ifstream in(log);
    for (std::string line; std::getline(in, line) && !in.eof();) {
      const size_t at = line.find("listening on ");
      if (at != std::string::npos) address = line.substr(at + 13);
    }
    if (address.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (address.empty()) {
    std::cerr << "timerd did not start; see " << log << "\n";
    kill(daemon, SIGKILL);
    return 1;
  }

  const nlohmann::json job = nlohmann::json::parse(
      Output({timer, "--server", address, "--format", "json", "job", "submit", "--name",
              "bench", "--interval", "1h", "--start", "2030-01-01T00:00:00Z",
              "--action-provider", "noop", "--action-body", "{}"}));
  const std::string id = job["job_id"];

  struct Command {
    std::string name;
    std::vector<std::string> argv;
    std::vector<double> ms;
  };
  std::vector<Command> commands = {
      {"/bin/true", {"/bin/true"}, {}},
      {"bare C++ gRPC client (GetJob)", {get_job, address, id}, {}},
      {"timer job status ID", {timer, "--server", address, "job", "status", id}, {}},
  };
  for (int i = 0; i < warmup + runs; ++i) {
    for (Command& c : commands) {
      const auto start = Clock::now();
      if (Wait(Spawn(c.argv)) != 0) {
        std::cerr << c.name << " failed\n";
        kill(daemon, SIGKILL);
        return 1;
      }
      const double ms =
          std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      if (i >= warmup) c.ms.push_back(ms);
    }
  }
  kill(daemon, SIGTERM);
  Wait(daemon);
  fs::remove_all(dir);

  std::vector<Stats> stats;
  for (const Command& c : commands) stats.push_back(Summarize(c.ms));
  std::cout << absl::StrFormat("%d runs each (after %d warm-up), interleaved; ms\n\n",
                               runs, warmup);
  std::cout << absl::StrFormat("| %-30s | %7s | %7s | %7s | %7s | %11s |\n", "command",
                               "median", "p10", "p90", "mean", "vs bare");
  std::cout << "|--------------------------------|---------|---------|---------|"
               "---------|-------------|\n";
  for (size_t i = 0; i < commands.size(); ++i) {
    std::cout << absl::StrFormat("| %-30s | %7.2f | %7.2f | %7.2f | %7.2f | %10.2fx |\n",
                                 commands[i].name, stats[i].median, stats[i].p10,
                                 stats[i].p90, stats[i].mean,
                                 stats[i].median / stats[1].median);
  }
  const double cli = stats[2].median;
  std::cout << absl::StrFormat(
      "\ntimer job status: median %.2f ms (target <= 25 ms: %s); %.2f ms over the bare "
      "client, %.2f ms over /bin/true\n",
      cli, cli <= 25 ? "met" : "MISSED", cli - stats[1].median, cli - stats[0].median);
  return 0;
}
