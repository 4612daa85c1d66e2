#include "server/server.h"

#include <fcntl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "api/session_service.h"
#include "api/timer_service.h"
#include "auth/authenticator.h"
#include "auth/jwt.h"
#include "domain/clock.h"
#include "domain/job_quota.h"
#include "domain/jobs.h"
#include "domain/run_engine.h"
#include "domain/watch_start.h"
#include "plugin_host/plugin_host.h"
#include "store/sqlite_store.h"
#include "store/sqlite_token_store.h"
#include "util/status_macros.h"

namespace timer::server {
namespace {

// Creates `dir` (and parents) private to this user, then takes an exclusive
// advisory lock on dir/LOCK. Returns the lock's file descriptor.
absl::StatusOr<int> LockDataDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir: cannot create ", dir, ": ", ec.message()));
  }
  ::chmod(dir.c_str(), 0700);
  const std::string lock_path = dir + "/LOCK";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir: cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir: ", dir, " is in use by another timerd"));
  }
  return fd;
}

absl::StatusOr<std::string> ReadFileText(const std::string& path, const char* setting) {
  std::ifstream in(path);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(setting, ": cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Plaintext, or TLS from the configured files; with tls_client_ca, clients
// may present a certificate, which must then verify against that CA.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const Config& config) {
  if (config.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      config.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                   : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  ASSIGN_OR_RETURN(pair.cert_chain, ReadFileText(config.tls_cert, "tls_cert"));
  ASSIGN_OR_RETURN(pair.private_key, ReadFileText(config.tls_key, "tls_key"));
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!config.tls_client_ca.empty()) {
    ASSIGN_OR_RETURN(options.pem_root_certs,
                     ReadFileText(config.tls_client_ca, "tls_client_ca"));
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace

struct TimerServer::Impl {
  int lock_fd = -1;
  domain::SystemClock clock;
  std::unique_ptr<store::SqliteStore> store;
  std::unique_ptr<store::TokenStore> tokens;
  std::unique_ptr<auth::JwtVerifier> jwt;
  std::unique_ptr<auth::Authenticator> authenticator;
  std::unique_ptr<domain::JobQuota> quota;
  std::unique_ptr<plugin_host::PluginRegistry> plugins;
  std::unique_ptr<domain::JobService> jobs;
  std::unique_ptr<domain::RunEngine> engine;
  std::unique_ptr<domain::EventHub> events;
  std::unique_ptr<domain::WatchStarter> watches;
  std::unique_ptr<api::TimerServiceImpl> timer_service;
  std::unique_ptr<api::SessionServiceImpl> session_service;
  std::unique_ptr<grpc::Server> grpc_server;
  std::string address;
  int port = 0;

  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;

  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
  }
};

TimerServer::TimerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TimerServer::~TimerServer() { Shutdown(absl::Seconds(5)); }

const std::string& TimerServer::address() const { return impl_->address; }
int TimerServer::port() const { return impl_->port; }

absl::StatusOr<std::unique_ptr<TimerServer>> TimerServer::Start(const Config& config) {
  RETURN_IF_ERROR(ValidateConfig(config));
  const bool tls = !config.tls_cert.empty();
  RETURN_IF_ERROR(
      ValidateListenAddress(config.listen, config.allow_insecure_remote || tls));
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   Credentials(config));
  const std::string data_dir =
      config.data_dir.empty() ? DefaultDataDir() : config.data_dir;

  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(impl->lock_fd, LockDataDir(data_dir));
  ASSIGN_OR_RETURN(impl->store,
                   store::SqliteStore::Open({.path = data_dir + "/timer.db"}));
  ASSIGN_OR_RETURN(impl->tokens, store::SqliteTokenStore::Open(data_dir + "/timer.db"));
  if (!config.jwt_keys_file.empty()) {
    ASSIGN_OR_RETURN(std::string keys,
                     ReadFileText(config.jwt_keys_file, "auth.jwt.keys_file"));
    ASSIGN_OR_RETURN(impl->jwt,
                     auth::JwtVerifier::Create(
                         keys, absl::StrCat("auth.jwt.keys_file ", config.jwt_keys_file),
                         {.issuer = config.jwt_issuer,
                          .audience = config.jwt_audience,
                          .identity_claim = config.jwt_identity_claim,
                          .leeway = absl::Seconds(config.jwt_leeway_seconds)}));
  }
  impl->authenticator = std::make_unique<auth::Authenticator>(
      impl->tokens.get(), impl->jwt.get(), &impl->clock);
  // Plugins from --plugin-dir and the installed directory next to the binary;
  // for a provider name found in both, the --plugin-dir one wins.
  ASSIGN_OR_RETURN(
      impl->plugins,
      plugin_host::LoadPlugins({config.plugin_dir, DefaultPluginDir()}, config.plugins));
  spdlog::info("plugins: {} action provider(s) loaded", impl->plugins->size());
  impl->jobs = std::make_unique<domain::JobService>(impl->store.get(), &impl->clock,
                                                    impl->plugins.get());
  domain::RunEngine::Options engine_options;
  engine_options.workers = config.workers;
  engine_options.run_timeout = absl::Seconds(config.run_timeout_seconds);
  engine_options.keep_results = config.results_keep_per_job;
  engine_options.keep_results_for = absl::Hours(24) * config.results_max_age_days;
  impl->engine = std::make_unique<domain::RunEngine>(impl->store.get(), &impl->clock,
                                                     impl->plugins.get(), engine_options);
  impl->jobs->set_observer(impl->engine.get());
  impl->events = std::make_unique<domain::EventHub>(
      &impl->clock,
      domain::EventHub::Options{
          .keep_events = static_cast<size_t>(config.watch_keep_events),
          .keep_bytes = static_cast<size_t>(config.watch_keep_bytes),
          .buffer_events = static_cast<size_t>(config.watch_buffer_events)});
  impl->jobs->set_events(impl->events.get());
  impl->engine->set_events(impl->events.get());
  impl->quota =
      std::make_unique<domain::JobQuota>(impl->store.get(), config.max_jobs_per_identity);
  impl->jobs->set_quota(impl->quota.get());
  impl->jobs->set_list_page_bytes(static_cast<size_t>(config.max_list_page_bytes));
  RETURN_IF_ERROR(impl->engine->Start());
  domain::WatchStarter::Options watch_options;
  watch_options.max_streams = static_cast<size_t>(config.max_watch_streams);
  watch_options.max_streams_per_identity =
      static_cast<size_t>(config.max_watch_streams_per_identity);
  impl->watches = std::make_unique<domain::WatchStarter>(
      impl->jobs.get(), impl->events.get(), &impl->clock, watch_options);
  impl->timer_service = std::make_unique<api::TimerServiceImpl>(
      impl->jobs.get(), impl->authenticator.get(), impl->watches.get());
  impl->session_service =
      std::make_unique<api::SessionServiceImpl>(impl->authenticator.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, credentials, &impl->port);
  builder.RegisterService(impl->timer_service.get());
  builder.RegisterService(impl->session_service.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  // A connection that never finishes its handshake, or sits idle, is closed
  // rather than held open forever.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 15 * 60 * 1000);
  impl->grpc_server = builder.BuildAndStart();
  if (impl->grpc_server == nullptr || impl->port == 0) {
    return absl::UnavailableError(
        absl::StrCat("listen: cannot listen on ", config.listen));
  }
  if (absl::StartsWith(config.listen, "unix:")) {
    impl->address = config.listen;  // gRPC reports port 1 for a socket path.
  } else {
    const size_t colon = config.listen.rfind(':');
    impl->address = absl::StrCat(config.listen.substr(0, colon), ":", impl->port);
  }
  // Health answers for the whole server ("") and for each service by name.
  grpc::HealthCheckServiceInterface* health = impl->grpc_server->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(v1::TimerService::service_full_name(), true);
  health->SetServingStatus(v1::SessionService::service_full_name(), true);
  spdlog::info("store: {} (schema {})", data_dir + "/timer.db",
               store::SqliteStore::LatestSchemaVersion());
  spdlog::info(
      "auth: issued tokens{}{}; {}", impl->jwt ? ", JWTs from " : "",
      impl->jwt ? config.jwt_issuer : "",
      tls ? (config.tls_client_ca.empty() ? "TLS" : "TLS with client certificates")
          : "plaintext");
  return std::unique_ptr<TimerServer>(new TimerServer(std::move(impl)));
}

void TimerServer::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->shut_down) return;
    impl_->shut_down = true;
  }
  impl_->grpc_server->GetHealthCheckService()->SetServingStatus(false);
  // Watch streams end now (UNAVAILABLE, with the `since` to resume from)
  // instead of holding the shutdown for its whole grace period.
  impl_->events->Shutdown();
  // In-flight calls finish (their writes commit) before the store closes.
  impl_->grpc_server->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  impl_->grpc_server->Wait();
  // No stream is left: starts and snapshot reads still queued end here,
  // before the store closes.
  impl_->watches->Stop();
  // No RPC can record a run any more: stop firing, let in-flight writes land.
  impl_->engine->Stop();
  impl_->store->Close();
}

}  // namespace timer::server
