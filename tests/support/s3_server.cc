#include "s3_server.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tls_testing.h"

#ifndef TIMER_S3RVER_PACKAGE
#error "TIMER_S3RVER_PACKAGE: the path of tests/support/s3/package.json"
#endif

namespace timer::testing {
namespace {

constexpr int kStartSeconds = 60;

// For the exit handler: the servers' processes and directories.
std::vector<std::pair<pid_t, std::string>>* servers = nullptr;

void StopAtExit() {
  if (servers == nullptr) return;
  for (auto& [pid, dir] : *servers) {
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  servers->clear();
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

// The directory holding package.json and node_modules/ (a Bazel runfile is
// a symbolic link into the source tree, where deps.sh installed them).
std::string PackageDir() {
  char real[PATH_MAX];
  if (::realpath(TIMER_S3RVER_PACKAGE, real) == nullptr) return "";
  return std::filesystem::path(real).parent_path().string();
}

}  // namespace

absl::StatusOr<S3Server*> S3Server::GetTls() {
  static absl::StatusOr<S3Server*>* server = [] {
    auto* s = new S3Server();
    absl::Status st = s->Start(true);
    return new absl::StatusOr<S3Server*>(st.ok() ? absl::StatusOr<S3Server*>(s)
                                                 : absl::StatusOr<S3Server*>(st));
  }();
  return *server;
}

absl::StatusOr<S3Server*> S3Server::Get() {
  static absl::StatusOr<S3Server*>* server = [] {
    auto* s = new S3Server();
    absl::Status st = s->Start(false);
    return new absl::StatusOr<S3Server*>(st.ok() ? absl::StatusOr<S3Server*>(s)
                                                 : absl::StatusOr<S3Server*>(st));
  }();
  return *server;
}

std::string S3Server::endpoint() const {
  return absl::StrCat(tls_ ? "https" : "http", "://127.0.0.1:", port_);
}

absl::Status S3Server::Start(bool tls) {
  tls_ = tls;
  const std::string pkg = PackageDir();
  const std::string script = pkg + "/node_modules/s3rver/bin/s3rver.js";
  if (pkg.empty() || !std::filesystem::exists(script)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "s3_server: ", script,
        " not found; install it with scripts/deps.sh (npm ci in tests/support/s3)"));
  }
  char pattern[] = "/tmp/timer-s3-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) return absl::InternalError("s3_server: mkdtemp");
  dir_ = pattern;
  if (servers == nullptr) {
    servers = new std::vector<std::pair<pid_t, std::string>>();
    std::atexit(StopAtExit);
  }

  // Built before fork(): the child of a threaded process may not allocate.
  const std::string data = dir_ + "/data";
  const std::string log = dir_ + "/server.log";
  // --openssl-legacy-provider: s3rver makes its ListObjectsV2 continuation
  // tokens with DES, which OpenSSL 3 keeps in its legacy provider.
  std::vector<std::string> args = {"node",
                                   "--openssl-legacy-provider",
                                   script,
                                   "-d",
                                   data,
                                   "-a",
                                   "127.0.0.1",
                                   "-p",
                                   "0",
                                   "--silent",
                                   "--no-vhost-buckets",
                                   "--configure-bucket",
                                   kBucketA,
                                   "--configure-bucket",
                                   kBucketB};
  if (tls) {
    const KeyAndCert ca = MakeCa("timer s3 test CA");
    const KeyAndCert cert = MakeServerCert(ca);
    ca_file_ = dir_ + "/ca.pem";
    if (!WriteFile(ca_file_, ca.cert_pem) ||
        !WriteFile(dir_ + "/cert.pem", cert.cert_pem) ||
        !WriteFile(dir_ + "/key.pem", cert.key_pem)) {
      return absl::InternalError("s3_server: cannot write the TLS files");
    }
    args.insert(args.end(), {"--cert", dir_ + "/cert.pem", "--key", dir_ + "/key.pem"});
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("s3_server: pipe");
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError("s3_server: fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(out[1], 1);
    if (log_fd >= 0) ::dup2(log_fd, 2);
    ::execvp("node", argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  if (log_fd >= 0) ::close(log_fd);
  pid_ = pid;
  servers->emplace_back(pid, dir_);

  // Awaits "S3rver listening on 127.0.0.1:<port>".
  std::string got;
  timespec start;
  ::clock_gettime(CLOCK_MONOTONIC, &start);
  while (port_ == 0) {
    timespec now;
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const long left_ms =
        kStartSeconds * 1000L -
        ((now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L);
    if (left_ms <= 0) break;
    pollfd p{out[0], POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left_ms));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) break;
    char buf[512];
    const ssize_t k = ::read(out[0], buf, sizeof(buf));
    if (k <= 0) break;
    got.append(buf, static_cast<size_t>(k));
    const size_t at = got.find("listening on 127.0.0.1:");
    if (at != std::string::npos) {
      const size_t digits = at + std::strlen("listening on 127.0.0.1:");
      const size_t end = got.find('\n', digits);
      if (end != std::string::npos) port_ = std::atoi(got.c_str() + digits);
    }
  }
  // Nothing more is read from its stdout (--silent: it writes nothing).
  if (port_ == 0) {
    ::close(out[0]);
    return absl::UnavailableError(
        absl::StrCat("s3_server: s3rver did not report its port within ", kStartSeconds,
                     " s; output: ", got, "; see ", log));
  }
  return absl::OkStatus();
}

}  // namespace timer::testing
