// sftp_bench: the transfer provider's SFTP endpoints against OpenSSH's own
// clients, to the same sshd, in the same run.
//
// A throwaway sshd on loopback (tests/support/sshd_server.h: ed25519 keys
// made at start, internal-sftp) serves a temporary directory. Measured, each
// --repeat times (default 3), the two sides alternating which goes first:
//   1. upload of --large-files K files of --large-mb MiB (default 2 x 256):
//      the StreamCopier (local endpoint -> SFTP endpoint) vs `sftp -b` (put)
//      and `scp`;
//   2. download of the same files: SFTP -> local vs `sftp -b` (get) and `scp`;
//   3. a tree of --small-files N files of 4 KiB (default 1000) uploaded vs
//      `scp -r`.
// Every destination is fresh (a new directory per measurement). The copier
// runs in-process through an ActionRunner, as the provider runs it; the
// OpenSSH clients are started as processes with the same key, cipher
// negotiation left to both (the same defaults), and their start-up counted.
// Medians and ratios (copier throughput / client throughput) are printed.
//
//   timer_bench_sftp                                  # 2 x 256 MiB, 1000 x 4 KiB
//   timer_bench_sftp --large-mb 64 --small-files 200  # quick
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "copier.h"
#include "provider_support.h"
#include "sftp_fs.h"
#include "sshd_server.h"
#include "stream_copier.h"

namespace timer::bench {
namespace {

namespace fs = std::filesystem;
using namespace timer::plugins;
using namespace timer::plugins::transfer;
using timer::testing::SshdServer;

double CpuSeconds(int who) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Wall seconds of f(); *cpu gets the client side's CPU seconds: this
// process's (the copier) plus its finished children's (sftp, scp and the ssh
// they start). The sshd side is the same server for both and not counted.
double Seconds(const std::function<bool()>& f, bool* ok, double* cpu) {
  const double cpu0 = CpuSeconds(RUSAGE_SELF) + CpuSeconds(RUSAGE_CHILDREN);
  const auto start = std::chrono::steady_clock::now();
  *ok = f();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  *cpu = CpuSeconds(RUSAGE_SELF) + CpuSeconds(RUSAGE_CHILDREN) - cpu0;
  return wall;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void WriteRandom(const fs::path& p, size_t bytes, uint32_t seed) {
  fs::create_directories(p.parent_path());
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> block(1 << 17);
  std::ofstream out(p, std::ios::binary);
  for (size_t done = 0; done < bytes;) {
    for (auto& w : block) w = rng();
    const size_t n = std::min(bytes - done, block.size() * sizeof(uint64_t));
    out.write(reinterpret_cast<const char*>(block.data()),
              static_cast<std::streamsize>(n));
    done += n;
  }
}

struct Bench {
  SshdServer* sshd;
  std::string ssh_opts;  // for sftp and scp
  ActionRunner runner;
  int runs = 0;

  Endpoint Sftp(const std::string& root) {
    SftpConfig c;
    c.endpoint_id = "remote";
    c.host = "127.0.0.1";
    c.port = sshd->port();
    c.user = sshd->user();
    c.private_key_file = sshd->user_key();
    c.known_hosts_file = sshd->known_hosts();
    c.root = root;
    Endpoint e;
    e.id = "remote";
    e.root = root;
    e.remote = std::make_shared<SftpEndpoint>(c);
    e.min_free_bytes = 0;
    return e;
  }
  static Endpoint Local(const std::string& root) {
    Endpoint e;
    e.id = "local";
    e.root = root;
    e.min_free_bytes = 0;
    return e;
  }

  bool Copy(const Endpoint& from, const Endpoint& to, const std::string& src,
            const std::string& dst, bool recursive) {
    Request req;
    req.source = &from;
    req.destination = &to;
    Item item;
    item.source_path = src;
    item.destination_path = dst;
    item.recursive = recursive;
    SplitPath(src, "s", &item.source);
    SplitPath(dst, "d", &item.destination);
    req.items.push_back(item);
    Outcome out;
    ActionSnapshot snap;
    bool created = false;
    runner.Start(
        "bench/" + std::to_string(++runs),
        [&](ActionContext& ctx) {
          out = StreamCopier(req, &ctx, CopyOptions{}).Run();
          return out;
        },
        nullptr, &snap, &created, true);
    if (out.state != TIMER_AP_STATE_SUCCEEDED)
      std::fprintf(stderr, "copier: %s\n", out.error.c_str());
    return out.state == TIMER_AP_STATE_SUCCEEDED;
  }

  bool Shell(const std::string& cmd) {
    const int rc = std::system(cmd.c_str());
    if (rc != 0) std::fprintf(stderr, "failed (%d): %s\n", rc, cmd.c_str());
    return rc == 0;
  }
};

int Main(int argc, char** argv) {
  CLI::App app{"SFTP endpoints vs OpenSSH sftp/scp to the same sshd"};
  int large_files = 2, large_mb = 256, small_files = 1000, repeat = 3;
  app.add_option("--large-files", large_files)->check(CLI::Range(1, 64));
  app.add_option("--large-mb", large_mb)->check(CLI::Range(1, 65536));
  app.add_option("--small-files", small_files)->check(CLI::Range(0, 1000000));
  app.add_option("--repeat", repeat)->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  auto s = SshdServer::Get();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.status().message()).c_str());
    return 1;
  }
  Bench b;
  b.sshd = *s;
  const std::string key = b.sshd->user_key();
  b.ssh_opts = "-q -i " + key +
               " -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=" +
               b.sshd->known_hosts() + " -o StrictHostKeyChecking=yes";
  const std::string target = b.sshd->user() + "@127.0.0.1";
  const std::string port = std::to_string(b.sshd->port());

  const std::string local = b.sshd->NewRoot();  // in the same temp dir as the server's
  const std::string remote = b.sshd->NewRoot();
  for (int i = 0; i < large_files; ++i) {
    WriteRandom(fs::path(local) / "large" / ("f" + std::to_string(i)),
                static_cast<size_t>(large_mb) << 20, 1000 + i);
    WriteRandom(fs::path(remote) / "large" / ("f" + std::to_string(i)),
                static_cast<size_t>(large_mb) << 20, 2000 + i);
  }
  for (int i = 0; i < small_files; ++i) {
    WriteRandom(fs::path(local) / "small" / ("d" + std::to_string(i / 200)) /
                    ("f" + std::to_string(i)),
                4096, 3000 + i);
  }
  std::system("sync");
  const Endpoint lep = Bench::Local(local), rep = b.Sftp(remote);
  const double large_bytes = static_cast<double>(large_files) * (int64_t{large_mb} << 20);

  struct Row {
    std::string what;
    std::vector<double> copier, sftp, scp;
    double bytes;
    std::vector<double> copier_cpu, sftp_cpu, scp_cpu;
  };
  std::vector<Row> rows = {
      {"upload large", {}, {}, {}, large_bytes},
      {"download large", {}, {}, {}, large_bytes},
      {"upload small tree (scp -r)", {}, {}, {}, 4096.0 * small_files}};
  int n = 0;
  bool all_ok = true;
  // Records a measurement's CPU seconds in `cpu`, returns its wall seconds.
  double last_cpu = 0;
  auto Timed = [&](std::vector<double>& cpu, double wall) {
    cpu.push_back(last_cpu);
    return wall;
  };
  for (int r = 0; r < repeat; ++r) {
    const bool copier_first = r % 2 == 0;
    // Upload.
    {
      const std::string tag = std::to_string(++n);
      std::ofstream(local + "/put.batch")
          << "mkdir " << remote << "/sftp-up" << tag << "\n"
          << "put -r " << local << "/large " << remote << "/sftp-up" << tag << "\n";
      bool ok = true;
      auto copier = [&] {
        rows[0].copier.push_back(
            Timed(rows[0].copier_cpu,
                  Seconds([&] { return b.Copy(lep, rep, "large", "up" + tag, true); },
                          &ok, &last_cpu)));
        all_ok &= ok;
      };
      auto clients = [&] {
        rows[0].sftp.push_back(Timed(
            rows[0].sftp_cpu, Seconds(
                                  [&] {
                                    return b.Shell("sftp " + b.ssh_opts + " -P " + port +
                                                   " -b " + local + "/put.batch " +
                                                   target + " >/dev/null");
                                  },
                                  &ok, &last_cpu)));
        all_ok &= ok;
        rows[0].scp.push_back(Timed(
            rows[0].scp_cpu, Seconds(
                                 [&] {
                                   return b.Shell("scp " + b.ssh_opts + " -P " + port +
                                                  " -r " + local + "/large " + target +
                                                  ":" + remote + "/scp-up" + tag);
                                 },
                                 &ok, &last_cpu)));
        all_ok &= ok;
      };
      if (copier_first)
        copier(), clients();
      else
        clients(), copier();
    }
    // Download.
    {
      const std::string tag = std::to_string(++n);
      std::ofstream(local + "/get.batch")
          << "get -r " << remote << "/large " << local << "/sftp-down" << tag << "\n";
      bool ok = true;
      auto copier = [&] {
        rows[1].copier.push_back(
            Timed(rows[1].copier_cpu,
                  Seconds([&] { return b.Copy(rep, lep, "large", "down" + tag, true); },
                          &ok, &last_cpu)));
        all_ok &= ok;
      };
      auto clients = [&] {
        rows[1].sftp.push_back(Timed(
            rows[1].sftp_cpu, Seconds(
                                  [&] {
                                    return b.Shell("sftp " + b.ssh_opts + " -P " + port +
                                                   " -b " + local + "/get.batch " +
                                                   target + " >/dev/null");
                                  },
                                  &ok, &last_cpu)));
        all_ok &= ok;
        rows[1].scp.push_back(Timed(
            rows[1].scp_cpu, Seconds(
                                 [&] {
                                   return b.Shell("scp " + b.ssh_opts + " -P " + port +
                                                  " -r " + target + ":" + remote +
                                                  "/large " + local + "/scp-down" + tag);
                                 },
                                 &ok, &last_cpu)));
        all_ok &= ok;
      };
      if (copier_first)
        copier(), clients();
      else
        clients(), copier();
    }
    // Small-file tree.
    if (small_files > 0) {
      const std::string tag = std::to_string(++n);
      bool ok = true;
      auto copier = [&] {
        rows[2].copier.push_back(Timed(
            rows[2].copier_cpu,
            Seconds([&] { return b.Copy(lep, rep, "small", "small-up" + tag, true); },
                    &ok, &last_cpu)));
        all_ok &= ok;
      };
      auto clients = [&] {
        rows[2].scp.push_back(Timed(
            rows[2].scp_cpu, Seconds(
                                 [&] {
                                   return b.Shell("scp " + b.ssh_opts + " -P " + port +
                                                  " -r " + local + "/small " + target +
                                                  ":" + remote + "/scp-small" + tag);
                                 },
                                 &ok, &last_cpu)));
        all_ok &= ok;
      };
      if (copier_first)
        copier(), clients();
      else
        clients(), copier();
    }
    std::system("sync");
  }
  std::printf(
      "sftp_bench: %d x %d MiB large files, %d x 4 KiB small files, %d repeats, "
      "sshd on 127.0.0.1 (medians)\n",
      large_files, large_mb, small_files, repeat);
  std::printf("%-28s %12s %12s %12s %10s %10s\n", "", "copier MB/s", "sftp -b MB/s",
              "scp MB/s", "vs sftp", "vs scp");
  std::printf("%-28s %12s %12s %12s %10s %10s\n", "  client CPU s/GiB", "copier",
              "sftp -b", "scp", "vs sftp", "vs scp");
  for (const Row& row : rows) {
    if (row.copier.empty()) continue;
    const double c = row.bytes / Median(row.copier) / 1e6;
    const double sf = row.sftp.empty() ? 0 : row.bytes / Median(row.sftp) / 1e6;
    const double sc = row.scp.empty() ? 0 : row.bytes / Median(row.scp) / 1e6;
    std::printf("%-28s %12.1f %12.1f %12.1f %9.2fx %9.2fx\n", row.what.c_str(), c, sf, sc,
                sf > 0 ? c / sf : 0.0, c / sc);
    const double gib = row.bytes / (1 << 30);
    const double cc = Median(row.copier_cpu) / gib;
    const double sfc = row.sftp_cpu.empty() ? 0 : Median(row.sftp_cpu) / gib;
    const double scc = Median(row.scp_cpu) / gib;
    std::printf("%-28s %12.2f %12.2f %12.2f %9.2fx %9.2fx\n", "  client CPU s/GiB", cc,
                sfc, scc, cc > 0 && sfc > 0 ? sfc / cc : 0.0, cc > 0 ? scc / cc : 0.0);
  }
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace timer::bench

int main(int argc, char** argv) { return timer::bench::Main(argc, argv); }
