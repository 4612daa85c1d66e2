#include "server/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace timer::server {
namespace {

absl::Status Bad(absl::string_view origin, absl::string_view key,
                 absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(origin, ": ", key, ": ", problem));
}

absl::Status ReadString(const toml::node& node, absl::string_view origin,
                        absl::string_view key, std::string* out) {
  const auto* v = node.as_string();
  if (v == nullptr) return Bad(origin, key, "must be a string");
  *out = v->get();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Config> ParseConfig(absl::string_view toml_text,
                                   absl::string_view origin) {
  toml::table table;
  try {
    table = toml::parse(std::string_view(toml_text.data(), toml_text.size()),
                        std::string(origin));
  } catch (const toml::parse_error& err) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ":", err.source().begin.line, ":", err.source().begin.column,
        ": ", std::string(err.description())));
  }
  Config config;
  for (const auto& [key, node] : table) {
    const std::string k(key.str());
    absl::Status s;
    if (k == "listen") {
      s = ReadString(node, origin, k, &config.listen);
    } else if (k == "data_dir") {
      s = ReadString(node, origin, k, &config.data_dir);
    } else if (k == "plugin_dir") {
      s = ReadString(node, origin, k, &config.plugin_dir);
    } else if (k == "log_level") {
      s = ReadString(node, origin, k, &config.log_level);
      const std::string& l = config.log_level;
      if (s.ok() && l != "trace" && l != "debug" && l != "info" && l != "warn" &&
          l != "error") {
        return Bad(origin, k, "must be trace, debug, info, warn or error");
      }
    } else if (k == "allow_insecure_remote") {
      const auto* b = node.as_boolean();
      if (b == nullptr) return Bad(origin, k, "must be true or false");
      config.allow_insecure_remote = b->get();
    } else if (k == "workers" || k == "run_timeout_seconds" ||
               k == "results_keep_per_job" || k == "results_max_age_days") {
      const auto* v = node.as_integer();
      if (v == nullptr || v->get() < 1 || v->get() > (k == "workers" ? 256 : 1LL << 40)) {
        return Bad(origin, k, "must be a positive whole number");
      }
      const int64_t n = v->get();
      if (k == "workers") config.workers = static_cast<int>(n);
      if (k == "run_timeout_seconds") config.run_timeout_seconds = n;
      if (k == "results_keep_per_job") config.results_keep_per_job = static_cast<int>(std::min<int64_t>(n, 1 << 30));
      if (k == "results_max_age_days") config.results_max_age_days = static_cast<int>(std::min<int64_t>(n, 100000));
    } else if (k == "tls_cert" || k == "tls_key" || k == "tls_client_ca") {
      s = ReadString(node, origin, k,
                     k == "tls_cert" ? &config.tls_cert
                                     : k == "tls_key" ? &config.tls_key : &config.tls_client_ca);
    } else if (k == "max_message_bytes" || k == "max_jobs_per_identity") {
      const auto* v = node.as_integer();
      const int64_t max = k == "max_message_bytes" ? (1LL << 30) : (1LL << 40);
      if (v == nullptr || v->get() < 1 || v->get() > max) {
        return Bad(origin, k, absl::StrCat("must be a whole number from 1 to ", max));
      }
      (k == "max_message_bytes" ? config.max_message_bytes : config.max_jobs_per_identity) =
          v->get();
    } else if (k == "auth") {
      const toml::table* auth = node.as_table();
      if (auth == nullptr) return Bad(origin, k, "must be a table");
      for (const auto& [auth_key, auth_node] : *auth) {
        if (std::string(auth_key.str()) != "jwt" || !auth_node.is_table()) {
          return Bad(origin, absl::StrCat("auth.", std::string(auth_key.str())),
                     "unknown setting (only the [auth.jwt] table)");
        }
        for (const auto& [jk, jnode] : *auth_node.as_table()) {
          const std::string j(jk.str());
          const std::string where = absl::StrCat("auth.jwt.", j);
          absl::Status js;
          if (j == "keys_file") {
            js = ReadString(jnode, origin, where, &config.jwt_keys_file);
          } else if (j == "issuer") {
            js = ReadString(jnode, origin, where, &config.jwt_issuer);
          } else if (j == "audience") {
            js = ReadString(jnode, origin, where, &config.jwt_audience);
          } else if (j == "identity_claim") {
            js = ReadString(jnode, origin, where, &config.jwt_identity_claim);
          } else if (j == "leeway_seconds") {
            const auto* v = jnode.as_integer();
            if (v == nullptr || v->get() < 0 || v->get() > 3600) {
              return Bad(origin, where, "must be a whole number from 0 to 3600");
            }
            config.jwt_leeway_seconds = v->get();
          } else {
            return Bad(origin, where, "unknown setting");
          }
          if (!js.ok()) return js;
        }
      }
    } else if (k == "plugins") {
      const toml::table* plugins = node.as_table();
      if (plugins == nullptr) return Bad(origin, k, "must be a table");
      for (const auto& [name, plugin] : *plugins) {
        if (!plugin.is_table()) {
          return Bad(origin, absl::StrCat("plugins.", std::string(name.str())), "must be a table");
        }
        std::ostringstream json;
        json << toml::json_formatter{*plugin.as_table()};
        config.plugins[std::string(name.str())] = nlohmann::json::parse(json.str());
      }
    } else {
      return Bad(origin, k, "unknown setting");
    }
    if (!s.ok()) return s;
  }
  return config;
}

absl::Status ValidateConfig(const Config& config) {
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert, tls_key: give both (or --tls-cert and --tls-key) or neither");
  }
  if (!config.tls_client_ca.empty() && config.tls_cert.empty()) {
    return absl::InvalidArgumentError(
        "tls_client_ca: mutual TLS needs tls_cert and tls_key too");
  }
  if (!config.jwt_keys_file.empty()) {
    if (config.jwt_issuer.empty()) {
      return absl::InvalidArgumentError("auth.jwt.issuer: required with keys_file");
    }
    if (config.jwt_audience.empty()) {
      return absl::InvalidArgumentError("auth.jwt.audience: required with keys_file");
    }
    if (config.jwt_identity_claim.empty()) {
      return absl::InvalidArgumentError("auth.jwt.identity_claim: must not be empty");
    }
  } else if (!config.jwt_issuer.empty() || !config.jwt_audience.empty()) {
    return absl::InvalidArgumentError(
        "auth.jwt.keys_file: required to accept JWTs (issuer/audience are set)");
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

std::string DefaultDataDir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    return absl::StrCat(xdg, "/timer");
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return absl::StrCat(home, "/.local/share/timer");
  }
  return "timer-data";
}

std::string DefaultPluginDir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "lib/timer/plugins";
  return (exe.parent_path().parent_path() / "lib" / "timer" / "plugins").string();
}

absl::Status ValidateListenAddress(const std::string& listen,
                                   bool allow_insecure_remote) {
  if (absl::StartsWith(listen, "unix:")) return absl::OkStatus();
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen: \"", listen, "\" is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  int port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen: \"", listen, "\" has no valid port"));
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  // Only literal loopback addresses (and "localhost"): a host name that merely
  // starts with "127." could resolve anywhere.
  in_addr v4;
  in6_addr v6;
  const bool loopback =
      host == "localhost" ||
      (inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127) ||
      (inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6));
  if (!loopback && !allow_insecure_remote) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listen: ", listen,
        " is not a loopback address; plaintext gRPC would leave this machine. "
        "Serve TLS (--tls-cert/--tls-key) or set allow_insecure_remote = true to "
        "do it anyway"));
  }
  return absl::OkStatus();
}

}  // namespace timer::server
