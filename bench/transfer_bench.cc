// transfer_bench: the transfer provider's throughput against cp and sha256sum.
//
// In one run, on one disk (a temporary directory, removed at the end):
//   1. many small files (--small-files N of 4096 B in directories of 200):
//      a first transfer (sync_level unset: copy every file) into a fresh
//      destination vs `cp -r` of the same tree into another fresh one;
//   2. a few large files (--large-files K of --large-mb MiB): the same;
//   3. for both trees, a second transfer with sync_level=checksum over the
//      unchanged tree (destination identical, so every file is skipped after
//      hashing both sides) vs `sha256sum` of the same (source) files.
// The page cache is never dropped: the trees are generated, synced, and read
// once by an untimed warm-up cp, so every side reads warm data; the output
// says how much of the source was resident (mincore) before each
// measurement. Dirty data is synced (untimed) before each measurement so
// earlier writes do not bleed into it; nothing is deleted before the end. Each
// measurement is repeated (--repeat, default 5), the copies taking turns
// (each repetition starts with the next one: cp, transfer, baseline, cp, ...),
// and the medians, best runs and spreads (slowest / fastest) are reported.
//
// --baseline-plugin-dir DIR loads a second transfer.so (another build, e.g.
// the previous commit's) and times its first run too, in the same turns, so
// a change is judged against its predecessor in the same minutes of a shared
// machine rather than in another run.
//
// The transfer goes through the real plugin host and the built transfer.so:
// Start with a unique request id, Status polled every 2 ms until final,
// details checked (files_transferred / files_skipped / files_failed).
//
//   timer_bench_transfer                       # 20,000 x 4 KiB, 4 x 256 MiB
//   timer_bench_transfer --small-files 2000 --large-mb 16   # quick
//   timer_bench_transfer --baseline-plugin-dir build-old/plugins  # A/B
#include <fcntl.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench_support.h"
#include "domain/action_provider.h"
#include "domain/identity.h"
#include "plugin_host/plugin_host.h"

extern char** environ;

namespace timer::bench {
namespace {

namespace fs = std::filesystem;
using domain::ActionProvider;
using domain::ActionStatus;

constexpr char kSrcEndpoint[] = "5b0c1a52-6f0e-4c53-9d43-0a5f2f7e2b01";
constexpr char kDstEndpoint[] = "9e3d7c14-2a8b-4f61-8c25-7d4e1b9a3c02";
constexpr int64_t kSmallFileBytes = 4096;
constexpr int64_t kFilesPerDir = 200;

// The benchmark's temporary directory; removed on every exit path below.
fs::path g_work_dir;

void Cleanup() {
  if (g_work_dir.empty()) return;
  std::error_code ec;
  fs::remove_all(g_work_dir, ec);
  if (ec)
    std::fprintf(stderr, "could not remove %s: %s\n", g_work_dir.c_str(),
                 ec.message().c_str());
  g_work_dir.clear();
}

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "transfer_bench: %s\n", why.c_str());
  Cleanup();
  std::exit(1);
}

double NowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// splitmix64: incompressible file contents, fast enough to write 1 GiB.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  void Fill(std::vector<char>* buf) {
    for (size_t i = 0; i + 8 <= buf->size(); i += 8) {
      uint64_t v = Next();
      std::memcpy(buf->data() + i, &v, 8);
    }
  }
};

void WriteFile(const fs::path& path, int64_t bytes, Rng* rng, std::vector<char>* buf) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die("create " + path.string() + ": " + std::strerror(errno));
  for (int64_t done = 0; done < bytes;) {
    rng->Fill(buf);
    const size_t n = static_cast<size_t>(std::min<int64_t>(buf->size(), bytes - done));
    for (size_t off = 0; off < n;) {
      ssize_t w = write(fd, buf->data() + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) Die("write " + path.string() + ": " + std::strerror(errno));
      off += static_cast<size_t>(w);
    }
    done += static_cast<int64_t>(n);
  }
  close(fd);
}

// Every regular file below `dir`.
std::vector<fs::path> FilesUnder(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(e.path());
  }
  return out;
}

// Fraction of the pages of every file below `dir` resident in the page cache.
double ResidentFraction(const fs::path& dir) {
  const long page = sysconf(_SC_PAGESIZE);
  int64_t total = 0, resident = 0;
  std::vector<unsigned char> vec;
  for (const fs::path& p : FilesUnder(dir)) {
    int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
      void* m =
          mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
      if (m != MAP_FAILED) {
        const size_t pages = (static_cast<size_t>(st.st_size) + page - 1) / page;
        vec.resize(pages);
        if (mincore(m, static_cast<size_t>(st.st_size), vec.data()) == 0) {
          total += static_cast<int64_t>(pages);
          for (unsigned char c : vec) resident += c & 1;
        }
        munmap(m, static_cast<size_t>(st.st_size));
      }
    }
    close(fd);
  }
  return total == 0 ? 0 : static_cast<double>(resident) / total;
}

// Runs argv[0] (an absolute path) and returns its wall time; dies unless it
// exits 0.
double TimedSpawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const double t0 = NowSeconds();
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  if (rc != 0) Die(absl::StrCat("spawn ", args[0], ": ", std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const double t = NowSeconds() - t0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const std::string& a : args) absl::StrAppend(&cmd, cmd.empty() ? "" : " ", a);
    Die("command failed (status " + std::to_string(status) + "): " + cmd);
  }
  return t;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// sha256sum over every file of `dirs`, one process chain, output discarded.
double TimedSha256sum(const std::vector<fs::path>& dirs) {
  std::string roots;
  for (const fs::path& d : dirs) absl::StrAppend(&roots, " ", ShellQuote(d.string()));
  return TimedSpawn(
      {"/bin/sh", "-c",
       "find" + roots + " -type f -print0 | xargs -0 sha256sum > /dev/null"});
}

struct TransferResult {
  double seconds = 0;
  nlohmann::json details;
};

// One transfer through the provider: Start, poll Status until final, Release.
TransferResult RunTransfer(ActionProvider* provider, const std::string& request_id,
                           const nlohmann::json& body) {
  const domain::Identity who{"bench", "none"};
  const std::string text = body.dump();
  const double t0 = NowSeconds();
  absl::StatusOr<ActionStatus> st = provider->Start(request_id, who, text);
  if (!st.ok()) Die("Start: " + st.status().ToString());
  const std::string action_id = st->action_id;
  while (st->state == ActionStatus::State::kActive) {
    absl::SleepFor(absl::Milliseconds(2));
    st = provider->Status(action_id);
    if (!st.ok()) Die("Status: " + st.status().ToString());
  }
  TransferResult r;
  r.seconds = NowSeconds() - t0;
  if (st->state != ActionStatus::State::kSucceeded) {
    Die("transfer " + request_id + " did not succeed: " + st->error + " details " +
        st->details);
  }
  r.details = nlohmann::json::parse(st->details, nullptr, false);
  if (!r.details.is_object())
    Die("transfer " + request_id + ": details are not JSON: " + st->details);
  if (absl::Status s = provider->Release(action_id); !s.ok())
    Die("Release: " + s.ToString());
  return r;
}

int64_t Count(const nlohmann::json& d, const char* key) {
  return d.contains(key) && d[key].is_number_integer() ? d[key].get<int64_t>() : -1;
}

void Expect(const TransferResult& r, const char* key, int64_t want,
            const std::string& what) {
  const int64_t got = Count(r.details, key);
  if (got != want) {
    Die(absl::StrCat(what, ": details.", key, " = ", got, ", expected ", want,
                     "; details: ", r.details.dump()));
  }
}

nlohmann::json Body(const std::string& src, const std::string& dst,
                    const char* sync_level, const std::string& label) {
  nlohmann::json body = {
      {"source_endpoint_id", kSrcEndpoint},
      {"destination_endpoint_id", kDstEndpoint},
      {"transfer_items",
       nlohmann::json::array(
           {{{"source_path", src}, {"destination_path", dst}, {"recursive", true}}})},
      {"label", label},
  };
  if (sync_level != nullptr) body["sync_level"] = sync_level;
  return body;
}

// The medians of one workload.
struct Figures {
  std::string name;
  int64_t files = 0;
  int64_t bytes = 0;
  std::vector<double> cp, first, sha_src, sha_both, checksum;
  std::vector<double> baseline;  // the baseline build's first run, if loaded
  double min_resident = 1;
};

void Note(Figures* f, const fs::path& src) {
  f->min_resident = std::min(f->min_resident, ResidentFraction(src));
}

// Runs the four measurements of one workload `repeat` times.
Figures Measure(ActionProvider* provider, ActionProvider* baseline,
                const std::string& name, const fs::path& work, int64_t files,
                int64_t bytes, int repeat) {
  Figures f;
  f.name = name;
  f.files = files;
  f.bytes = bytes;
  const fs::path src = work / "src" / name;
  const fs::path dst_root = work / "dst";
  for (int rep = 1; rep <= repeat; ++rep) {
    const std::string cp_dir = absl::StrCat("cp-", name, "-", rep);
    const std::string tr_dir = absl::StrCat("tr-", name, "-", rep);
    const std::string base_dir = absl::StrCat("base-", name, "-", rep);

    auto time_cp = [&] {
      sync();
      Note(&f, src);
      f.cp.push_back(
          TimedSpawn({"/bin/cp", "-r", src.string(), (dst_root / cp_dir).string()}));
    };
    // One first run of `p` into `dir`, checked.
    auto first_run = [&](ActionProvider* p, const std::string& dir, const char* who,
                         std::vector<double>* out) {
      sync();
      Note(&f, src);
      TransferResult r = RunTransfer(p, absl::StrCat("bench/", name, "/", who, "/", rep),
                                     Body(name, dir, nullptr, name + " first run"));
      const std::string what = absl::StrCat(name, " ", who, " first run ", rep);
      Expect(r, "files_transferred", files, what);
      Expect(r, "bytes_transferred", bytes, what);
      Expect(r, "files_skipped", 0, what);
      Expect(r, "files_failed", 0, what);
      out->push_back(r.seconds);
    };
    std::vector<std::function<void()>> turns = {
        time_cp, [&] { first_run(provider, tr_dir, "first", &f.first); }};
    if (baseline != nullptr)
      turns.push_back([&] { first_run(baseline, base_dir, "baseline", &f.baseline); });
    // Take turns: each repetition starts with the next contender, so none
    // always runs right after another (or first, after the checksum runs).
    for (size_t i = 0; i < turns.size(); ++i) turns[(rep - 1 + i) % turns.size()]();

    // Second run over the unchanged tree: every file hashed on both sides
    // and skipped.
    sync();
    Note(&f, src);
    TransferResult r =
        RunTransfer(provider, absl::StrCat("bench/", name, "/checksum/", rep),
                    Body(name, tr_dir, "checksum", name + " checksum run"));
    const std::string what = absl::StrCat(name, " checksum run ", rep);
    Expect(r, "files_transferred", 0, what);
    Expect(r, "bytes_transferred", 0, what);
    Expect(r, "files_skipped", files, what);
    Expect(r, "files_failed", 0, what);
    f.checksum.push_back(r.seconds);

    Note(&f, src);
    f.sha_src.push_back(TimedSha256sum({src}));
    f.sha_both.push_back(TimedSha256sum({src, dst_root / tr_dir}));

    std::printf(
        "  %-5s rep %d: cp -r %.3f s, transfer %.3f s, checksum run %.3f s, "
        "sha256sum %.3f s (source) %.3f s (source+destination)",
        name.c_str(), rep, f.cp.back(), f.first.back(), f.checksum.back(),
        f.sha_src.back(), f.sha_both.back());
    if (baseline != nullptr) std::printf(", baseline build %.3f s", f.baseline.back());
    std::printf("\n");
    std::fflush(stdout);
    // The copies stay until the end: removing them here made the next
    // measurement several times slower (freed blocks are discarded on this
    // filesystem, mounted with `discard`, before they can be reused).
  }
  return f;
}

// Spread: the slowest run over the fastest.
void PrintRow(const char* what, const std::vector<double>& v, const Figures& f,
              const std::string& ratio) {
  const double med = Median(v), best = *std::min_element(v.begin(), v.end());
  const double worst = *std::max_element(v.begin(), v.end());
  std::printf("| %-41s | %8.3f | %8.3f | %6.2f | %9.0f | %8.1f | %-46s |\n", what, med,
              best, worst / best, f.files / med, f.bytes / 1e6 / med, ratio.c_str());
}

double Best(const std::vector<double>& v) {
  return *std::min_element(v.begin(), v.end());
}

// Prints one workload's table; returns false if a target is missed (judged
// on the medians).
bool Print(const Figures& f) {
  const double copy_ratio = Median(f.cp) / Median(f.first);  // throughput ratio
  const double copy_best = Best(f.cp) / Best(f.first);
  const double hash_ratio = Median(f.checksum) / Median(f.sha_src);  // time ratio
  const double hash_best = Best(f.checksum) / Best(f.sha_src);
  const bool copy_ok = copy_ratio >= 0.90, hash_ok = hash_ratio <= 1.5;
  char buf[128];
  std::printf(
      "\n%s: %lld files, %.1f MB, %zu runs each; source resident in page cache before "
      "each measurement: %.1f%% at worst\n",
      f.name.c_str(), static_cast<long long>(f.files), f.bytes / 1e6, f.cp.size(),
      100 * f.min_resident);
  std::printf("| %-41s | %8s | %8s | %6s | %9s | %8s | %-46s |\n", "measurement",
              "median s", "best s", "spread", "files/s", "MB/s",
              "ratio median (best) target");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|\n", std::string(43, '-').c_str(),
              std::string(10, '-').c_str(), std::string(10, '-').c_str(),
              std::string(8, '-').c_str(), std::string(11, '-').c_str(),
              std::string(10, '-').c_str(), std::string(48, '-').c_str());
  PrintRow("cp -r", f.cp, f, "");
  std::snprintf(buf, sizeof buf, "%.2f (%.2f) x cp, >= 0.90: %s", copy_ratio, copy_best,
                copy_ok ? "met" : "MISSED");
  PrintRow("transfer, first run", f.first, f, buf);
  if (!f.baseline.empty()) {
    std::snprintf(buf, sizeof buf, "%.2f (%.2f) x cp; this build %.2f (%.2f) x it",
                  Median(f.cp) / Median(f.baseline), Best(f.cp) / Best(f.baseline),
                  Median(f.baseline) / Median(f.first), Best(f.baseline) / Best(f.first));
    PrintRow("baseline build, first run", f.baseline, f, buf);
  }
  PrintRow("sha256sum of the source files", f.sha_src, f, "");
  PrintRow("sha256sum of source + destination files", f.sha_both, f, "(context)");
  std::snprintf(buf, sizeof buf, "%.2f (%.2f) x sha256sum, <= 1.5: %s", hash_ratio,
                hash_best, hash_ok ? "met" : "MISSED");
  PrintRow("transfer, second run, sync_level=checksum", f.checksum, f, buf);
  std::printf(
      "  files/s and MB/s from the medians. The checksum run hashes both sides: "
      "%.2f x sha256sum of source + destination.\n",
      Median(f.checksum) / Median(f.sha_both));
  return copy_ok && hash_ok;
}

}  // namespace
}  // namespace timer::bench

int main(int argc, char** argv) {
  using namespace timer::bench;
  CLI::App app{"transfer_bench: the transfer provider against cp -r and sha256sum"};
  int64_t small_files = 20000;
  int64_t large_mb = 256;
  int64_t large_files = 4;
  int repeat = 5;
  std::string dir = "/var/tmp";
  std::string plugin_dir = TIMER_BENCH_PLUGIN_DIR;
  std::string baseline_plugin_dir;
  app.add_option("--small-files", small_files,
                 "number of 4096-byte files (200 per directory)")
      ->check(CLI::Range(int64_t{1}, int64_t{10'000'000}));
  app.add_option("--large-mb", large_mb, "size of each large file, MiB")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--large-files", large_files, "number of large files")
      ->check(CLI::Range(int64_t{1}, int64_t{10'000}));
  app.add_option("--repeat", repeat,
                 "runs of each measurement (medians and best are reported)")
      ->check(CLI::Range(1, 100));
  app.add_option("--dir", dir,
                 "where to make the temporary directory (removed at the end)");
  app.add_option("--plugin-dir", plugin_dir, "where transfer.so is");
  app.add_option("--baseline-plugin-dir", baseline_plugin_dir,
                 "where another build's transfer.so is, timed in the same turns");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  std::string tmpl = (fs::path(dir) / "timer-bench-transfer-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr)
    Die("mkdtemp " + tmpl + ": " + std::strerror(errno));
  g_work_dir = tmpl;
  const fs::path work = g_work_dir;
  fs::create_directories(work / "src" / "small");
  fs::create_directories(work / "src" / "large");
  fs::create_directories(work / "dst");

  nlohmann::json configs = {
      {"transfer",
       {{"endpoints", nlohmann::json::array({{{"id", kSrcEndpoint},
                                              {"display_name", "bench source"},
                                              {"root", (work / "src").string()},
                                              {"allowed_identities", {"*"}}},
                                             {{"id", kDstEndpoint},
                                              {"display_name", "bench destination"},
                                              {"root", (work / "dst").string()},
                                              {"allowed_identities", {"*"}}}})}}}};
  auto registry = timer::plugin_host::LoadPlugins(plugin_dir, {}, configs, ::geteuid());
  if (!registry.ok()) Die("LoadPlugins: " + registry.status().ToString());
  ActionProvider* transfer = (*registry)->Find("transfer");
  if (transfer == nullptr) Die("no transfer plugin in " + plugin_dir);
  // A second copy of the provider from another file: dlopen keeps the two
  // apart (another path and inode, RTLD_LOCAL).
  decltype(registry) baseline_registry = absl::NotFoundError("no baseline");
  ActionProvider* baseline = nullptr;
  if (!baseline_plugin_dir.empty()) {
    baseline_registry =
        timer::plugin_host::LoadPlugins(baseline_plugin_dir, {}, configs, ::geteuid());
    if (!baseline_registry.ok())
      Die("LoadPlugins " + baseline_plugin_dir + ": " +
          baseline_registry.status().ToString());
    baseline = (*baseline_registry)->Find("transfer");
    if (baseline == nullptr) Die("no transfer plugin in " + baseline_plugin_dir);
  }

  // The trees.
  Rng rng{0x5eed};
  std::vector<char> buf(kSmallFileBytes);
  for (int64_t i = 0; i < small_files; ++i) {
    const fs::path d =
        work / "src" / "small" / absl::StrCat("d", 1000 + i / kFilesPerDir);
    if (i % kFilesPerDir == 0) fs::create_directories(d);
    WriteFile(d / absl::StrCat("f", 1000 + i % kFilesPerDir), kSmallFileBytes, &rng,
              &buf);
  }
  buf.resize(1 << 20);
  const int64_t large_bytes = large_mb << 20;
  for (int64_t i = 0; i < large_files; ++i) {
    WriteFile(work / "src" / "large" / absl::StrCat("f", i), large_bytes, &rng, &buf);
  }
  sync();
  // Warm-up, untimed: both sides then read the source from the page cache.
  for (const char* name : {"small", "large"}) {
    TimedSpawn({"/bin/cp", "-r", (work / "src" / name).string(),
                (work / "dst" / absl::StrCat("warm-", name)).string()});
  }

  const std::string start_load = LoadAverage();
  std::printf("transfer_bench: %s, plugin %s/transfer.so, %ld CPUs, load average %s\n",
              work.c_str(), plugin_dir.c_str(), sysconf(_SC_NPROCESSORS_ONLN),
              start_load.c_str());
  std::printf(
      "source and destination on the same filesystem; page cache not dropped; "
      "source warmed by one untimed cp -r; sync before each measurement; "
      "fresh destination directory for each cp and first transfer\n");
  if (baseline != nullptr)
    std::printf("baseline build: %s/transfer.so\n", baseline_plugin_dir.c_str());
  Figures small = Measure(transfer, baseline, "small", work, small_files,
                          small_files * kSmallFileBytes, repeat);
  Figures large = Measure(transfer, baseline, "large", work, large_files,
                          large_files * large_bytes, repeat);
  std::printf(
      "\nMB = 10^6 bytes. Copy ratio = transfer throughput / cp -r throughput; checksum "
      "ratio = transfer time / sha256sum time; from the medians, in parentheses from "
      "the best runs. Targets are judged on the medians.\n");
  const bool small_ok = Print(small);
  const bool large_ok = Print(large);
  std::printf("\nall targets %s\n", small_ok && large_ok ? "met" : "NOT met");
  std::printf("load average at start: %s, at end: %s\n", start_load.c_str(),
              LoadAverage().c_str());

  if (baseline_registry.ok()) baseline_registry->reset();
  registry->reset();
  Cleanup();
  return 0;
}
