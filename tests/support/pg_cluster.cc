#include "pg_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <postgresql/libpq-fe.h>  // Debian: /usr/include/postgresql
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "free_port.h"

namespace timer::testing {
namespace {

constexpr char kBin[] = "/usr/lib/postgresql/15/bin/";

std::string AsPostgres() { return ::geteuid() == 0 ? "runuser -u postgres -- " : ""; }

// The cluster's directory, for the exit handler.
std::string* cluster_dir = nullptr;

void StopAtExit() {
  if (cluster_dir == nullptr) return;
  const std::string cmd =
      absl::StrCat(AsPostgres(), kBin, "pg_ctl stop -s -m fast -D ", *cluster_dir,
                   "/data >/dev/null 2>&1; rm -rf ", *cluster_dir);
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "pg_cluster: cleanup failed\n");
}

// A child that waits for this process to end (its pipe closes) and then
// stops the cluster and removes its directory: the cleanup when the test
// process dies without running exit handlers. Harmless after StopAtExit.
void StartWatcher(const std::string& dir) {
  // Built before fork(): the child of a threaded process may not allocate.
  const std::string cmd =
      absl::StrCat(AsPostgres(), kBin, "pg_ctl stop -s -m immediate -D ", dir,
                   "/data >/dev/null 2>&1; rm -rf ", dir);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return;
  const pid_t pid = ::fork();
  if (pid < 0) return;
  if (pid == 0) {
    ::close(fds[1]);
    ::setsid();  // Not killed with the test's process group.
    // Holds none of the test's output pipes (ctest waits for those).
    const int null = ::open("/dev/null", O_RDWR);
    for (int fd = 0; fd <= 2; ++fd) ::dup2(null, fd);
    char c;
    while (::read(fds[0], &c, 1) != 0) {
    }
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[0]);  // The write end stays open (close-on-exec) until we end.
}

}  // namespace

absl::StatusOr<PgCluster*> PgCluster::Get() {
  static absl::StatusOr<PgCluster*>* cluster = [] {
    auto* c = new PgCluster();
    absl::Status s = c->Init();
    return new absl::StatusOr<PgCluster*>(s.ok() ? absl::StatusOr<PgCluster*>(c)
                                                 : absl::StatusOr<PgCluster*>(s));
  }();
  return *cluster;
}

absl::Status PgCluster::Tool(const std::string& bin, const std::string& args) {
  const std::string cmd =
      absl::StrCat(AsPostgres(), kBin, bin, " ", args, " >>", dir_, "/tool.log 2>&1");
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("pg_cluster: `", bin, " ", args, "` failed (",
                                            rc, "); see ", dir_, "/tool.log and ", dir_,
                                            "/server.log"));
  }
  return absl::OkStatus();
}

absl::Status PgCluster::Init() {
  char pattern[] = "/tmp/timer-pg-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) return absl::InternalError("pg_cluster: mkdtemp");
  dir_ = pattern;
  cluster_dir = new std::string(dir_);
  std::atexit(StopAtExit);
  StartWatcher(dir_);
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "pg_cluster: running as root and there is no `postgres` user (install "
          "postgresql: scripts/deps.sh)");
    }
    if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError("pg_cluster: chown of the cluster dir failed");
    }
  }
  if (!std::filesystem::exists(absl::StrCat(kBin, "initdb"))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pg_cluster: ", kBin, "initdb not found (install postgresql: scripts/deps.sh)"));
  }
  // --no-sync: initdb's own files only; the server runs with fsync on.
  if (absl::Status s = Tool("initdb", absl::StrCat("-D ", dir_,
                                                   "/data -A trust -U postgres "
                                                   "-E UTF8 --locale=C --no-sync"));
      !s.ok()) {
    return s;
  }
  auto port = FreeLoopbackPort();
  if (!port.ok()) return port.status();
  port_ = *port;
  return Start();
}

absl::Status PgCluster::Start() {
  return Tool("pg_ctl", absl::StrCat("start -w -t 60 -D ", dir_, "/data -l ", dir_,
                                     "/server.log -o \"-c listen_addresses=127.0.0.1 -k ",
                                     dir_, " -p ", port_, " -c max_connections=200\""));
}

absl::Status PgCluster::Stop(bool immediate) {
  return Tool("pg_ctl", absl::StrCat("stop -w -m ", immediate ? "immediate" : "fast",
                                     " -D ", dir_, "/data"));
}

absl::StatusOr<std::string> PgCluster::NewDatabase() {
  std::string name;
  {
    absl::MutexLock lock(&mu_);
    name = absl::StrCat("t", ++databases_);
  }
  const std::string admin =
      absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/postgres");
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(PQconnectdb(admin.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("pg_cluster: cannot connect: ", PQerrorMessage(conn.get())));
  }
  std::unique_ptr<PGresult, void (*)(PGresult*)> res(
      PQexec(conn.get(), absl::StrCat("CREATE DATABASE ", name).c_str()), &PQclear);
  if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
    return absl::InternalError(
        absl::StrCat("pg_cluster: CREATE DATABASE failed: ", PQerrorMessage(conn.get())));
  }
  return absl::StrCat("postgresql://postgres@127.0.0.1:", port_, "/", name);
}

}  // namespace timer::testing
