#include "token_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace timer::cli {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

std::string TokenCache::DefaultPath() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) {
    return absl::StrCat(xdg, "/timer/tokens.json");
  }
  const char* home = std::getenv("HOME");
  return absl::StrCat(home && *home ? home : ".", "/.config/timer/tokens.json");
}

absl::Status TokenCache::Load() {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    if (errno == ELOOP) {
      return absl::PermissionDeniedError(
          absl::StrCat("token cache ", path_, " is a symbolic link; refusing to use it"));
    }
    return Errno(absl::StrCat("cannot read token cache ", path_));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Errno(absl::StrCat("cannot stat token cache ", path_));
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    ::close(fd);
    return absl::PermissionDeniedError(
        absl::StrCat("token cache ", path_,
                     " is not a regular file owned by you; refusing to use it"));
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return absl::PermissionDeniedError(absl::StrFormat(
        "token cache %s is accessible by other users (mode %04o); refusing to use "
        "the tokens in it. Fix it with: chmod 600 %s (and log in again if others "
        "may have read it)",
        path_, st.st_mode & 07777, path_));
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("servers") || !doc["servers"].is_object()) {
    return absl::DataLossError(
        absl::StrCat("token cache ", path_, " is not valid; remove it and log in again"));
  }
  doc_ = std::move(doc);
  return absl::OkStatus();
}

std::optional<CachedSession> TokenCache::Get(const std::string& server) const {
  const nlohmann::json& servers = doc_["servers"];
  auto it = servers.find(server);
  if (it == servers.end() || !it->is_object()) return std::nullopt;
  CachedSession s;
  s.token = it->value("token", "");
  s.identity = it->value("identity", "");
  if (s.token.empty()) return std::nullopt;
  return s;
}

void TokenCache::Put(const std::string& server, const CachedSession& session) {
  doc_["servers"][server] = {{"token", session.token}, {"identity", session.identity}};
}

bool TokenCache::Remove(const std::string& server) {
  return doc_["servers"].erase(server) > 0;
}

absl::Status TokenCache::Save() const {
  const std::filesystem::path path(path_);
  const std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
    }
    ::chmod(dir.c_str(), 0700);
  }
  std::string tmp = (dir / ".tokens.json.XXXXXX").string();
  const int fd = ::mkstemp(tmp.data());  // Created 0600.
  if (fd < 0) return Errno(absl::StrCat("cannot write in ", dir.string()));
  const std::string text = doc_.dump(2) + "\n";
  size_t done = 0;
  bool ok = ::fchmod(fd, 0600) == 0;
  while (ok && done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      ok = false;
    else
      done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    absl::Status s = Errno(absl::StrCat("cannot write token cache ", path_));
    ::unlink(tmp.c_str());
    return s;
  }
  return absl::OkStatus();
}

}  // namespace timer::cli
