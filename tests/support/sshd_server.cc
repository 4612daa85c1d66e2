#include "sshd_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "free_port.h"

namespace timer::testing {
namespace {

constexpr char kSshd[] = "/usr/sbin/sshd";

absl::Status Run(const std::string& cmd) {
  if (std::system(cmd.c_str()) != 0)
    return absl::InternalError(absl::StrCat("sshd_server: `", cmd, "` failed"));
  return absl::OkStatus();
}

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// "type base64" of a .pub file's line (its comment dropped).
std::string KeyLine(const std::string& pub) {
  std::istringstream in(ReadLine(pub));
  std::string type, b64;
  in >> type >> b64;
  return type + " " + b64;
}

SshdServer* server = nullptr;

void StopAtExit() {
  if (server == nullptr) return;
  std::error_code ec;
  std::filesystem::remove_all(server->dir(), ec);
}

}  // namespace

absl::StatusOr<SshdServer*> SshdServer::Get() {
  static absl::StatusOr<SshdServer*>* s = [] {
    auto* c = new SshdServer();
    absl::Status st = c->Init();
    return new absl::StatusOr<SshdServer*>(st.ok() ? absl::StatusOr<SshdServer*>(c)
                                                   : absl::StatusOr<SshdServer*>(st));
  }();
  return *s;
}

std::string SshdServer::NewRoot() {
  const std::string root = absl::StrCat(dir_, "/root", ++roots_);
  std::filesystem::create_directories(root);
  return root;
}

absl::Status SshdServer::Init() {
  if (!std::filesystem::exists(kSshd)) {
    return absl::FailedPreconditionError(
        "sshd_server: /usr/sbin/sshd not found (install openssh-server: "
        "scripts/deps.sh)");
  }
  char pattern[] = "/tmp/timer-sshd-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) return absl::InternalError("sshd_server: mkdtemp");
  dir_ = pattern;
  // sshd (StrictModes off) only needs to read it; the keys inside are 0600.
  ::chmod(dir_.c_str(), 0755);
  server = this;
  std::atexit(StopAtExit);
  const passwd* pw = ::getpwuid(::geteuid());
  if (pw == nullptr) return absl::InternalError("sshd_server: who am I?");
  user_ = pw->pw_name;
  if (::geteuid() == 0) {
    // Privilege separation: root-owned, not writable by others.
    ::mkdir("/run/sshd", 0755);
  }
  for (const char* key : {"host_key", "user_key", "other_key"}) {
    if (absl::Status s = Run(absl::StrCat("ssh-keygen -q -t ed25519 -N '' -C test -f ",
                                          dir_, "/", key, " </dev/null >/dev/null"));
        !s.ok()) {
      return s;
    }
  }
  host_key_line_ = KeyLine(dir_ + "/host_key.pub");
  other_key_line_ = KeyLine(dir_ + "/other_key.pub");
  std::filesystem::copy_file(dir_ + "/user_key.pub", dir_ + "/authorized_keys");
  // A port found free may be taken before sshd binds it (another test
  // process): a start that fails is tried again on another port.
  absl::Status started;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto port = FreeLoopbackPort();
    if (!port.ok()) return port.status();
    port_ = *port;
    started = Start();
    if (started.ok()) break;
  }
  if (!started.ok()) return started;
  std::atexit([] {
    if (server != nullptr && server->pid_ > 0) {
      ::kill(server->pid_, SIGTERM);
      ::waitpid(server->pid_, nullptr, 0);
    }
  });
  return absl::OkStatus();
}

absl::Status SshdServer::Start() {
  {
    std::ofstream kh(known_hosts());
    kh << "[127.0.0.1]:" << port_ << " " << host_key_line_ << "\n";
  }
  {
    std::ofstream cfg(dir_ + "/sshd_config");
    cfg << "Port " << port_ << "\n"
        << "ListenAddress 127.0.0.1\n"
        << "HostKey " << dir_ << "/host_key\n"
        << "PidFile none\n"
        << "AuthorizedKeysFile " << dir_ << "/authorized_keys\n"
        << "AuthenticationMethods publickey\n"
        << "PubkeyAuthentication yes\n"
        << "PasswordAuthentication no\n"
        << "KbdInteractiveAuthentication no\n"
        << "UsePAM no\n"
        // The temp dir's parents (/tmp) are world-writable: StrictModes would
        // refuse the authorized_keys in it.
        << "StrictModes no\n"
        << "PermitRootLogin prohibit-password\n"
        << "AllowUsers " << user_ << "\n"
        << "Subsystem sftp internal-sftp\n"
        << "MaxStartups 100\n"
        << "MaxSessions 100\n"
        << "LogLevel INFO\n";
  }
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return absl::InternalError("sshd_server: pipe");
  const std::string config = dir_ + "/sshd_config";
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError("sshd_server: fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::dup2(err_pipe[1], 2);
    const int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::execl(kSshd, kSshd, "-D", "-e", "-f", config.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pid_ = pid;
  ::close(err_pipe[1]);
  // Await "Server listening on 127.0.0.1 port N." on its stderr; then keep
  // copying its stderr to the log so sshd never blocks on a full pipe.
  const int rfd = err_pipe[0];
  const std::string log_path = dir_ + "/sshd.log";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string seen;
  bool ready = false;
  while (!ready) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{rfd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    const ssize_t n = ::read(rfd, buf, sizeof(buf));
    if (n <= 0) break;
    seen.append(buf, static_cast<size_t>(n));
    ready = seen.find("Server listening on 127.0.0.1") != std::string::npos;
  }
  { std::ofstream(log_path) << seen; }
  if (!ready) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    ::close(rfd);
    return absl::UnavailableError(
        absl::StrCat("sshd_server: sshd did not start; its output: ", seen));
  }
  std::thread([rfd, log_path] {
    std::ofstream log(log_path, std::ios::app);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(rfd, buf, sizeof(buf))) > 0) {
      log.write(buf, n);
      log.flush();
    }
    ::close(rfd);
  }).detach();
  return absl::OkStatus();
}

}  // namespace timer::testing
