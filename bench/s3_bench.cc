// s3_bench: upload and download of a large file through the transfer
// provider's S3 EndpointFs (plugins/transfer/s3_fs.h) against the `curl`
// command line tool sending the same bytes to the same server.
//
// The server is s3rver on loopback, started as the tests start it
// (tests/support/s3_server.h; node_modules installed by scripts/deps.sh).
// One file of --mb MiB of random bytes is written to a temporary directory
// (on disk, warm in the page cache) once. Then, --repeat times, alternating
// which goes first:
//   upload:   the EndpointFs reads the file in 1 MiB chunks and writes it
//             (multipart above --part-mb, one part buffered, each request's
//             payload hashed for SigV4) vs
//             `curl -T FILE --aws-sigv4 aws:amz:us-east-1:s3` (one PUT,
//             UNSIGNED-PAYLOAD, streamed);
//   download: OpenRead + 1 MiB reads (ranged GETs of --part-mb) into a local
//             file vs `curl -o FILE` of the same object (one GET).
// Medians and ratios (EndpointFs throughput / curl's) are printed; the
// server is the same for both, so its own costs (s3rver writes each object
// to disk and MD5s it in node) are in both.
//
//   timer_bench_s3                      # 256 MiB, 16 MiB parts, 3 rounds
//   timer_bench_s3 --mb 64 --repeat 5
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "s3_fs.h"
#include "s3_server.h"

extern char** environ;

namespace timer::bench {
namespace {

using plugins::Err;
using plugins::transfer::EndpointFs;
using plugins::transfer::FileReader;
using plugins::transfer::FileWriter;
using plugins::transfer::S3Config;
using testing::S3Server;

double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool Check(const Err& e, const char* what) {
  if (!e.ok()) std::fprintf(stderr, "%s: %s\n", what, e.message.c_str());
  return e.ok();
}

double publish_seconds = 0;  // of UploadFs, in all

// Uploads `file` as `name`; seconds, or -1.
double UploadFs(EndpointFs& fs, const std::string& file, const std::string& name) {
  const double t0 = Now();
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  std::vector<char> buf(1 << 20);
  std::unique_ptr<FileWriter> w;
  if (!Check(
          fs.Create({name}, static_cast<int64_t>(std::filesystem::file_size(file)), &w),
          "create")) {
    return -1;
  }
  for (;;) {
    const ssize_t k = ::read(fd, buf.data(), buf.size());
    if (k <= 0) break;
    if (!Check(w->Write(buf.data(), static_cast<size_t>(k)), "write")) return -1;
  }
  ::close(fd);
  const double t1 = Now();
  if (!Check(w->Publish({}), "publish")) return -1;
  publish_seconds += Now() - t1;
  return Now() - t0;
}

double DownloadFs(EndpointFs& fs, const std::string& name, const std::string& out) {
  const double t0 = Now();
  std::unique_ptr<FileReader> r;
  if (!Check(fs.OpenRead({name}, &r), "open")) return -1;
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::vector<char> buf(1 << 20);
  for (;;) {
    size_t got = 0;
    if (!Check(r->Read(buf.data(), buf.size(), &got), "read")) return -1;
    if (got == 0) break;
    if (::write(fd, buf.data(), got) != static_cast<ssize_t>(got)) return -1;
  }
  ::close(fd);
  return Now() - t0;
}

std::vector<std::string> CurlArgs(const S3Server& s, const std::string& key) {
  return {"curl",
          "-sS",
          "-f",
          "--aws-sigv4",
          "aws:amz:us-east-1:s3",
          "--user",
          std::string(S3Server::kAccessKeyId) + ":" + S3Server::kSecretAccessKey,
          s.endpoint() + "/" + S3Server::kBucketA + "/" + key};
}

double UploadCurl(const S3Server& s, const std::string& file, const std::string& key) {
  std::vector<std::string> args = CurlArgs(s, key);
  args.insert(args.end(), {"-T", file, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"});
  const double t0 = Now();
  if (Spawn(args) != 0) return -1;
  return Now() - t0;
}

double DownloadCurl(const S3Server& s, const std::string& key, const std::string& out) {
  std::vector<std::string> args = CurlArgs(s, key);
  args.insert(args.end(),
              {"-o", out, "-H",
               "x-amz-content-sha256: "
               "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"});
  const double t0 = Now();
  if (Spawn(args) != 0) return -1;
  return Now() - t0;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

bool SameFile(const std::string& a, const std::string& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  return std::equal(std::istreambuf_iterator<char>(fa), std::istreambuf_iterator<char>(),
                    std::istreambuf_iterator<char>(fb), std::istreambuf_iterator<char>());
}

int Main(int argc, char** argv) {
  CLI::App app{"s3_bench: the S3 EndpointFs against curl, to the same s3rver"};
  int mb = 256;
  int part_mb = 16;
  int repeat = 3;
  app.add_option("--mb", mb, "size of the file, MiB")->check(CLI::Range(1, 8192));
  app.add_option("--part-mb", part_mb, "the endpoint's part_size, MiB")
      ->check(CLI::Range(5, 1024));
  app.add_option("--repeat", repeat, "rounds")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  auto server = S3Server::Get();
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  char pattern[] = "/tmp/timer-s3-bench-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) return 1;
  const std::string dir = pattern;
  const std::string file = dir + "/in.bin";
  {
    std::mt19937_64 rng(1);
    std::vector<uint64_t> block(1 << 17);  // 1 MiB
    std::ofstream out(file, std::ios::binary);
    for (int i = 0; i < mb; ++i) {
      for (uint64_t& x : block) x = rng();
      out.write(reinterpret_cast<const char*>(block.data()), 1 << 20);
    }
  }
  S3Config c;
  c.endpoint = (*server)->endpoint();
  c.bucket = S3Server::kBucketA;
  c.prefix = "bench/";
  c.access_key_id = S3Server::kAccessKeyId;
  c.secret_access_key = S3Server::kSecretAccessKey;
  c.path_style = true;
  c.part_size = int64_t{part_mb} << 20;
  std::unique_ptr<EndpointFs> fs;
  if (!Check(plugins::transfer::MakeS3Endpoint(c)->Open({}, &fs), "open endpoint"))
    return 1;

  std::vector<double> up_fs, up_curl, down_fs, down_curl;
  bool ok = true;
  for (int i = 0; i < repeat && ok; ++i) {
    const bool fs_first = i % 2 == 0;
    for (int k = 0; k < 2 && ok; ++k) {
      if ((k == 0) == fs_first) {
        const double t = UploadFs(*fs, file, "fs.bin");
        ok = t > 0;
        up_fs.push_back(t);
      } else {
        const double t = UploadCurl(**server, file, "bench/curl.bin");
        ok = t > 0;
        up_curl.push_back(t);
      }
    }
    for (int k = 0; k < 2 && ok; ++k) {
      if ((k == 0) == fs_first) {
        const double t = DownloadFs(*fs, "fs.bin", dir + "/fs.out");
        ok = t > 0 && SameFile(file, dir + "/fs.out");
        down_fs.push_back(t);
      } else {
        const double t = DownloadCurl(**server, "bench/curl.bin", dir + "/curl.out");
        ok = t > 0 && SameFile(file, dir + "/curl.out");
        down_curl.push_back(t);
      }
    }
  }
  std::filesystem::remove_all(dir);
  if (!ok) {
    std::fprintf(stderr, "s3_bench: a transfer failed or its bytes differ\n");
    return 1;
  }
  const double mib = mb;
  std::printf("s3_bench: %d MiB, part_size %d MiB, %d rounds, s3rver on loopback\n", mb,
              part_mb, repeat);
  std::printf("%-10s %14s %14s %8s\n", "", "EndpointFs", "curl", "ratio");
  std::printf("%-10s %10.1f MiB/s %9.1f MiB/s %7.2fx\n", "upload", mib / Median(up_fs),
              mib / Median(up_curl), Median(up_curl) / Median(up_fs));
  double up_total = 0;
  for (double t : up_fs) up_total += t;
  std::printf("%-10s (EndpointFs: %.0f%% of its upload time in Publish)\n", "",
              100 * publish_seconds / up_total);
  std::printf("%-10s %10.1f MiB/s %9.1f MiB/s %7.2fx\n", "download",
              mib / Median(down_fs), mib / Median(down_curl),
              Median(down_curl) / Median(down_fs));
  return 0;
}

}  // namespace
}  // namespace timer::bench

int main(int argc, char** argv) { return timer::bench::Main(argc, argv); }
