// timerd: the Timer Service daemon.
//
// Runs until SIGTERM or SIGINT, then shuts down gracefully: in-flight RPCs
// finish and the store is closed cleanly.
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "absl/synchronization/mutex.h"
#include "server/config.h"
#include "server/server.h"

namespace {

constexpr char kVersion[] = "0.1.0";

int Fail(const std::string& message) {
  spdlog::error("{}", message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  ::umask(077);  // The store and everything else timerd writes is private.
  // Debian's Abseil is built with Mutex deadlock detection on, a debugging aid
  // that tracks every lock acquisition; it costs ~10% of durable CreateJob
  // throughput (bench/create_get_bench.cc, --absl-deadlock-detection).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Signals are taken synchronously by the main thread with sigwait(); block
  // them before any other thread starts so none of those receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CLI::App app{"timerd: runs recurring jobs on a fixed schedule", "timerd"};
  std::string config_path, listen, data_dir, plugin_dir, log_level;
  app.add_option("--config", config_path, "TOML configuration file")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", listen, "address to serve on (default 127.0.0.1:50051)");
  app.add_option("--data-dir", data_dir,
                 "directory of the embedded store (default ~/.local/share/timer)");
  app.add_option("--plugin-dir", plugin_dir, "directory of action-provider plugins");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.set_version_flag("--version", kVersion);
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_logger_mt("timerd");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ timerd %l: %v",
                      spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(logger);

  timer::server::Config config;
  if (!config_path.empty()) {
    auto loaded = timer::server::LoadConfigFile(config_path);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    config = *std::move(loaded);
  }
  if (!listen.empty()) config.listen = listen;
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (!plugin_dir.empty()) config.plugin_dir = plugin_dir;
  if (!log_level.empty()) config.log_level = log_level;
  spdlog::set_level(spdlog::level::from_str(config.log_level));

  auto server = timer::server::TimerServer::Start(config);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  spdlog::info("timerd {} listening on {}", kVersion, (*server)->address());

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown(absl::Seconds(10));
  spdlog::info("stopped");
  return 0;
}
