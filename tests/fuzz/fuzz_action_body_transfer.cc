// Fuzzes the transfer provider's action body through validate(), against
// three endpoints over a small tree made at start-up (files, directories and
// a symbolic link): "src-endpoint" (alice may use it), "dst-endpoint"
// (anyone) and "bob-only" (alice may not).
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "provider_fuzz.h"

namespace {

std::string g_root;

void RemoveTree() {
  std::error_code ec;
  if (!g_root.empty()) std::filesystem::remove_all(g_root, ec);
}

timer_ap_provider* MakeProvider() {
  std::string tmpl = std::filesystem::temp_directory_path() / "fuzz-transfer-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  g_root = tmpl;
  std::atexit(&RemoveTree);
  namespace fs = std::filesystem;
  for (const char* dir : {"src/projects/a", "src/data", "dst/backup", "bob"}) {
    fs::create_directories(fs::path(g_root) / dir);
  }
  for (const char* file : {"src/notes.txt", "src/projects/a/x.txt", "src/data/d.bin",
                           "dst/backup/old.txt", "bob/secret.txt"}) {
    std::ofstream(fs::path(g_root) / file) << "content\n";
  }
  fs::create_symlink("notes.txt", fs::path(g_root) / "src/link");
  fs::create_symlink("/etc", fs::path(g_root) / "src/escape");
  const std::string config = R"({"endpoints": [)"
                             R"({"id": "src-endpoint", "root": ")" +
                             g_root +
                             R"(/src",)"
                             R"( "allowed_identities": ["alice@example.org"]},)"
                             R"({"id": "dst-endpoint", "root": ")" +
                             g_root +
                             R"(/dst", "allowed_identities": ["*"]},)"
                             R"({"id": "bob-only", "root": ")" +
                             g_root +
                             R"(/bob",)"
                             R"( "allowed_identities": ["bob@example.org"]}]})";
  return timer::fuzz::CreateProvider(config);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static timer_ap_provider* provider = MakeProvider();
  timer::fuzz::Validate(provider, data, size);
  return 0;
}
