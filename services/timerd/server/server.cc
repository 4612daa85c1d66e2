#include "server/server.h"

#include <fcntl.h>
#include <grpc/grpc_security.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "api/caller.h"
#include "api/http/http_handlers.h"
#include "api/http/http_server.h"
#include "api/http/transcoder.h"
#include "api/session_service.h"
#include "api/timer_service.h"
#include "auth/authenticator.h"
#include "auth/jwt.h"
#include "domain/clock.h"
#include "domain/job_quota.h"
#include "domain/jobs.h"
#include "domain/notifier.h"
#include "domain/run_engine.h"
#include "domain/run_now_relay.h"
#include "domain/shard_lease.h"
#include "domain/shared_events.h"
#include "domain/watch_start.h"
#include "plugin_host/plugin_host.h"
#include "server/data_dir.h"
#include "server/listener.h"
#include "server/server_metrics.h"
#include "server/store_open.h"
#include "util/metrics.h"
#include "util/status_macros.h"

namespace timer::server {
namespace {

absl::StatusOr<std::string> ReadFileText(const std::string& path, const char* setting) {
  std::ifstream in(path);
  if (!in) {
    return absl::FailedPreconditionError(absl::StrCat(setting, ": cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The PEM files of tls_cert, tls_key and tls_client_ca, read and checked.
struct TlsFiles {
  std::string cert_chain, private_key, client_ca;
};

// Checks with OpenSSL what gRPC would only find out at the first handshake
// (it takes connections from timerd's own listener, after it started).
absl::Status CheckTls(const TlsFiles& tls) {
  const auto bio = [](const std::string& pem) {
    return std::unique_ptr<BIO, decltype(&BIO_free)>(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  };
  auto cert_bio = bio(tls.cert_chain);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (cert == nullptr) {
    return absl::InvalidArgumentError("tls_cert: not a PEM certificate chain");
  }
  auto key_bio = bio(tls.private_key);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (key == nullptr) {
    return absl::InvalidArgumentError("tls_key: not a PEM private key");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError("tls_key: not the key of tls_cert's certificate");
  }
  if (!tls.client_ca.empty()) {
    auto ca_bio = bio(tls.client_ca);
    std::unique_ptr<X509, decltype(&X509_free)> ca(
        PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr), &X509_free);
    if (ca == nullptr) {
      return absl::InvalidArgumentError("tls_client_ca: not a PEM certificate");
    }
  }
  return absl::OkStatus();
}

// The TLS files of the config, or nullopt to serve plaintext.
absl::StatusOr<std::optional<TlsFiles>> ReadTls(const Config& config) {
  if (config.tls_cert.empty()) return std::nullopt;
  TlsFiles tls;
  ASSIGN_OR_RETURN(tls.cert_chain, ReadFileText(config.tls_cert, "tls_cert"));
  ASSIGN_OR_RETURN(tls.private_key, ReadFileText(config.tls_key, "tls_key"));
  if (!config.tls_client_ca.empty()) {
    ASSIGN_OR_RETURN(tls.client_ca, ReadFileText(config.tls_client_ca, "tls_client_ca"));
  }
  RETURN_IF_ERROR(CheckTls(tls));
  return tls;
}

// The C core's credentials: plaintext, or TLS from the configured files;
// with tls_client_ca, clients may present a certificate, which must then
// verify against that CA. The caller owns the result.
grpc_server_credentials* CoreCredentials(const std::optional<TlsFiles>& tls) {
  if (!tls) return grpc_insecure_server_credentials_create();
  grpc_ssl_pem_key_cert_pair pair = {tls->private_key.c_str(), tls->cert_chain.c_str()};
  grpc_ssl_server_certificate_config* certificates =
      grpc_ssl_server_certificate_config_create(
          tls->client_ca.empty() ? nullptr : tls->client_ca.c_str(), &pair, 1);
  grpc_ssl_server_credentials_options* options =
      grpc_ssl_server_credentials_create_options_using_config(
          tls->client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                 : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY,
          certificates);
  return grpc_ssl_server_credentials_create_with_options(options);
}

// The notifier of [notifications]: the key file is a secret (owned by
// timerd's user or root, like the other files it trusts, and neither
// readable nor writable by group or others).
absl::StatusOr<std::unique_ptr<domain::Notifier>> MakeNotifier(
    const Config& config, store::Store* store, const domain::Clock* clock) {
  const std::string& path = config.notifications_key_file;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("notifications.key_file: cannot read ", path));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("notifications.key_file: ", path,
                     " may be read or written by other users; chmod 600 it"));
  }
  ASSIGN_OR_RETURN(std::string key, ReadFileText(path, "notifications.key_file"));
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  domain::Notifier::Options o;
  o.allow = config.notifications_allow;
  o.key = std::move(key);
  o.ca_file = config.notifications_ca_file;
  o.threads = config.notifications_threads;
  o.max_queued = static_cast<size_t>(config.notifications_max_queued);
  o.max_queued_per_owner =
      static_cast<size_t>(config.notifications_max_queued_per_identity);
  o.max_attempts = config.notifications_max_attempts;
  o.initial_backoff = absl::Milliseconds(config.notifications_initial_backoff_ms);
  o.max_backoff = absl::Milliseconds(config.notifications_max_backoff_ms);
  o.timeout = absl::Milliseconds(config.notifications_timeout_ms);
  // RECOVERY: did the newest earlier finished run fail? One page of the
  // store's results, read on a delivery thread.
  auto previous_failed = [store](const v1::Job& job,
                                 int64_t run_number) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(std::vector<v1::JobResult> older,
                     store->ListResults(job.owner(), job.job_id(), run_number, 20));
    for (const v1::JobResult& r : older) {
      switch (r.status()) {
        case v1::JobResult::FAILED:
        case v1::JobResult::UNKNOWN:
          return true;
        case v1::JobResult::SUCCEEDED:
        case v1::JobResult::CANCELLED:
          return false;
        default:
          continue;  // skipped, or still running
      }
    }
    return false;
  };
  return domain::Notifier::Create(std::move(o), clock, std::move(previous_failed));
}

}  // namespace

struct TimerServer::Impl {
  int lock_fd = -1;
  // The HTTP listener (http_listen). Declared first, so destroyed last:
  // replies the domain gives after it stopped (from the store's commit
  // thread, until the store closes) are handed to its stopped io_context.
  std::unique_ptr<api::http::HttpServer> http;
  std::unique_ptr<api::http::Transcoder> http_routes;
  std::unique_ptr<api::http::HttpHandlers> http_handlers;
  domain::SystemClock clock;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<store::TokenStore> tokens;
  std::unique_ptr<store::EventLog> event_log;  // Several replicas: their events.
  std::unique_ptr<auth::JwtVerifier> jwt;
  std::unique_ptr<auth::Authenticator> authenticator;
  std::unique_ptr<domain::JobQuota> quota;
  std::unique_ptr<plugin_host::PluginRegistry> plugins;
  // [notifications]: fed by `events_tee` (the hub, then the notifier), which
  // jobs and engine publish to; both outlive them.
  std::unique_ptr<domain::Notifier> notifier;
  std::unique_ptr<domain::TeeSink> events_tee;
  std::unique_ptr<domain::JobService> jobs;
  std::unique_ptr<domain::RunEngine> engine;
  // With a shared store: the shards this replica schedules. After `engine`,
  // its listener: destroyed (and released) first.
  domain::MonotonicClock monotonic;
  std::unique_ptr<domain::ShardLeases> leases;
  // With a shared store: RunJobNow of jobs other replicas schedule.
  std::unique_ptr<domain::RunNowRelay> relay;
  std::unique_ptr<domain::EventHub> events;
  // With event_log: feeds `events` from it, and it from `events`. After
  // `events` and `engine` (it calls both): destroyed before them.
  std::unique_ptr<domain::SharedEvents> shared_events;
  std::unique_ptr<domain::WatchStarter> watches;
  std::unique_ptr<api::TimerServiceImpl> timer_service;
  std::unique_ptr<api::SessionServiceImpl> session_service;
  std::unique_ptr<Listener> listener;  // Outlives grpc_server, which calls it.
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor;
  std::unique_ptr<grpc::Server> grpc_server;
  std::string address;
  int port = 0;
  std::string http_address;  // Empty without http_listen.

  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
  // Reads `engine` and `store` at scrape: destroyed first.
  std::unique_ptr<ServerMetrics> metrics;

  ~Impl() {
    // A start that failed later: no HTTP request may reach what is
    // destroyed below (Stop is a no-op after Shutdown's).
    if (http != nullptr) http->Stop(absl::ZeroDuration());
    if (lock_fd >= 0) ::close(lock_fd);
  }
};

TimerServer::TimerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TimerServer::~TimerServer() { Shutdown(absl::Seconds(5)); }

const std::string& TimerServer::address() const { return impl_->address; }
const std::string& TimerServer::http_address() const { return impl_->http_address; }
int TimerServer::port() const { return impl_->port; }

absl::StatusOr<std::unique_ptr<TimerServer>> TimerServer::Start(const Config& config) {
  RETURN_IF_ERROR(ValidateConfig(config));
  const bool tls = !config.tls_cert.empty();
  RETURN_IF_ERROR(
      ValidateListenAddress(config.listen, config.allow_insecure_remote || tls));
  if (!config.http_listen.empty()) {
    if (absl::StartsWith(config.http_listen, "unix:")) {
      return absl::InvalidArgumentError(
          "http_listen: takes HOST:PORT, not a unix socket");
    }
    RETURN_IF_ERROR(ValidateListenAddress(
        config.http_listen, config.allow_insecure_remote || tls, "http_listen"));
  }
  // Key files are believed only if no other user could have written them.
  const uid_t uid = ::geteuid();
  RETURN_IF_ERROR(CheckConfigFilesTrusted(config, /*config_path=*/"", uid));
  ASSIGN_OR_RETURN(const std::optional<TlsFiles> tls_files, ReadTls(config));
  const std::string data_dir =
      config.data_dir.empty() ? DefaultDataDir() : config.data_dir;

  auto impl = std::make_unique<Impl>();
  RETURN_IF_ERROR(PrepareDataDir(data_dir, uid));
  ASSIGN_OR_RETURN(impl->lock_fd, LockDataDir(data_dir, uid));
  // Bound before anything starts, without SO_REUSEPORT: a port another
  // server listens on stops timerd here.
  ASSIGN_OR_RETURN(
      impl->listener,
      Listener::Bind(config.listen,
                     {.max_connections = config.max_connections,
                      .max_connections_per_peer = config.max_connections_per_peer,
                      .unauthenticated_timeout = absl::Milliseconds(
                          config.unauthenticated_connection_timeout_ms)}));
  impl->port = impl->listener->port();
  const uint64_t files = OpenFileLimit();
  // gRPC connections cost two descriptors each, HTTP ones one.
  const uint64_t http_files =
      config.http_listen.empty() ? 0 : static_cast<uint64_t>(config.http_max_connections);
  const uint64_t files_needed =
      2 * static_cast<uint64_t>(config.max_connections) + http_files + 256;
  if (files < files_needed) {
    spdlog::warn(
        "max_connections ({}) needs about {} open files but RLIMIT_NOFILE is {}: raise "
        "it (systemd: LimitNOFILE) or lower max_connections{}",
        config.max_connections, files_needed, files,
        http_files > 0 ? " and http_max_connections" : "");
  }
  ASSIGN_OR_RETURN(Stores stores, OpenStores(config, data_dir));
  impl->store = std::move(stores.jobs);
  impl->tokens = std::move(stores.tokens);
  impl->event_log = std::move(stores.events);
  if (!config.jwt_keys_file.empty()) {
    ASSIGN_OR_RETURN(std::string keys,
                     ReadFileText(config.jwt_keys_file, "auth.jwt.keys_file"));
    ASSIGN_OR_RETURN(
        impl->jwt, auth::JwtVerifier::Create(
                       keys, absl::StrCat("auth.jwt.keys_file ", config.jwt_keys_file),
                       {.issuer = config.jwt_issuer,
                        .audience = config.jwt_audience,
                        .identity_claim = config.jwt_identity_claim,
                        .leeway = absl::Seconds(config.jwt_leeway_seconds),
                        .max_lifetime = absl::Seconds(config.jwt_max_lifetime_seconds)}));
  }
  impl->authenticator = std::make_unique<auth::Authenticator>(
      impl->tokens.get(), impl->jwt.get(), &impl->clock);
  // Only the providers the config asks for, from one trusted directory; any
  // that cannot be loaded stops the start.
  ASSIGN_OR_RETURN(impl->plugins,
                   plugin_host::LoadPlugins(PluginDir(config), config.load_plugins,
                                            config.plugins, uid));
  spdlog::info("plugins: {} action provider(s) loaded", impl->plugins->size());
  impl->jobs = std::make_unique<domain::JobService>(impl->store.get(), &impl->clock,
                                                    impl->plugins.get());
  domain::RunEngine::Options engine_options;
  engine_options.workers = config.workers;
  engine_options.run_timeout = absl::Seconds(config.run_timeout_seconds);
  engine_options.keep_results = config.results_keep_per_job;
  engine_options.keep_results_for = absl::Hours(24) * config.results_max_age_days;
  engine_options.max_active_runs = config.max_active_runs;
  engine_options.max_active_runs_per_identity = config.max_active_runs_per_identity;
  // [retry]: the policy of jobs that set none (max_attempts 1: none).
  engine_options.default_retry.set_max_attempts(config.retry_max_attempts);
  engine_options.default_retry.mutable_initial_backoff()->set_seconds(
      config.retry_initial_backoff_seconds);
  engine_options.default_retry.set_multiplier(config.retry_multiplier);
  engine_options.default_retry.mutable_max_backoff()->set_seconds(
      config.retry_max_backoff_seconds);
  engine_options.max_retry_waiting = config.retry_max_waiting;
  engine_options.max_retry_waiting_per_identity = config.retry_max_waiting_per_identity;
  // With several replicas: the safety net for changes made through others.
  engine_options.rescan_every = absl::Milliseconds(config.lease_ttl_ms) * 5;
  engine_options.purge_deleted_after =
      absl::Hours(24) * config.deleted_jobs_retention_days;
  impl->engine = std::make_unique<domain::RunEngine>(impl->store.get(), &impl->clock,
                                                     impl->plugins.get(), engine_options);
  impl->jobs->set_observer(impl->engine.get());
  impl->events = std::make_unique<domain::EventHub>(
      &impl->clock, domain::EventHub::Options{
                        .keep_events = static_cast<size_t>(config.watch_keep_events),
                        .keep_bytes = static_cast<size_t>(config.watch_keep_bytes),
                        .buffer_events = static_cast<size_t>(config.watch_buffer_events),
                        .shared = impl->event_log != nullptr,
                        .since_wait = absl::Milliseconds(config.watch_since_wait_ms)});
  domain::EventSink* sink = impl->events.get();
  if (!config.notifications_key_file.empty()) {
    ASSIGN_OR_RETURN(impl->notifier,
                     MakeNotifier(config, impl->store.get(), &impl->clock));
    impl->events_tee = std::make_unique<domain::TeeSink>(sink, impl->notifier.get());
    sink = impl->events_tee.get();
    impl->jobs->set_notifier(impl->notifier.get());
    impl->notifier->Start();
    spdlog::info("notifications: on, {} allowlist entr{}",
                 config.notifications_allow.size(),
                 config.notifications_allow.size() == 1 ? "y" : "ies");
  }
  impl->jobs->set_events(sink);
  impl->engine->set_events(sink);
  impl->quota = std::make_unique<domain::JobQuota>(
      impl->store.get(), &impl->clock,
      domain::JobQuota::Limits{
          .max_jobs = config.max_jobs_per_identity,
          .max_stored_jobs = config.max_stored_jobs_per_identity,
          .max_stored_bytes = config.max_stored_bytes_per_identity,
          .write_rate = static_cast<double>(config.write_rate_per_identity),
          .write_burst = config.write_burst_per_identity,
          .run_now_rate = static_cast<double>(config.run_now_rate_per_identity),
          .run_now_burst = config.run_now_burst_per_identity,
          // PostgreSQL (store_open.cc): checked in each create's transaction.
          .jobs_counted_by_store = !config.store.empty()});
  impl->jobs->set_quota(impl->quota.get());
  impl->engine->set_quota(impl->quota.get());
  impl->jobs->set_list_page_bytes(static_cast<size_t>(config.max_list_page_bytes));
  if (store::LeaseStore* shared = impl->store->shared_leases()) {
    domain::ShardLeases::Options lease_options;
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) == 0) lease_options.host = host;
    lease_options.ttl = absl::Milliseconds(config.lease_ttl_ms);
    lease_options.margin = absl::Milliseconds(config.lease_margin_ms);
    RETURN_IF_ERROR(domain::ShardLeases::Validate(lease_options));
    impl->leases = std::make_unique<domain::ShardLeases>(shared, &impl->monotonic,
                                                         std::move(lease_options));
    impl->leases->set_listener(impl->engine.get());
    impl->engine->set_leases(impl->leases.get());
    if (store::RelayStore* relay = impl->store->shared_relay()) {
      impl->relay = std::make_unique<domain::RunNowRelay>(
          relay, impl->jobs.get(), impl->leases->replica_id(),
          domain::RunNowRelay::Options{
              .timeout = absl::Milliseconds(config.run_now_relay_timeout_ms),
              .max_waiting = static_cast<int>(config.max_relayed_runs),
              .max_waiting_per_identity =
                  static_cast<int>(config.max_relayed_runs_per_identity)});
      impl->jobs->set_relay(impl->relay.get());
    }
  }
  if (impl->event_log != nullptr) {
    if (impl->leases == nullptr) {
      return absl::InternalError("store: a shared event log without shard leases");
    }
    domain::SharedEvents::Options event_options;
    event_options.replica_id = impl->leases->replica_id();
    event_options.outbox_events = static_cast<size_t>(config.event_outbox_events);
    event_options.keep_events = config.event_log_keep_events;
    event_options.load_events = config.watch_keep_events;
    impl->shared_events = std::make_unique<domain::SharedEvents>(
        impl->event_log.get(), impl->events.get(), &impl->clock, event_options);
    impl->events->set_outbox(impl->shared_events.get());
    impl->shared_events->set_on_remote_change(
        [engine = impl->engine.get()](const std::string& job_id) {
          engine->ChangedElsewhere(job_id);
        });
    // Before anything publishes or watches: the hub starts at the log's head.
    RETURN_IF_ERROR(impl->shared_events->Start());
  }
  RETURN_IF_ERROR(impl->engine->Start());
  impl->metrics = std::make_unique<ServerMetrics>(impl->engine.get(), impl->store.get());
  if (impl->leases != nullptr) impl->leases->Start();
  if (impl->relay != nullptr) impl->relay->Start();
  domain::WatchStarter::Options watch_options;
  watch_options.max_streams = static_cast<size_t>(config.max_watch_streams);
  watch_options.max_streams_per_identity =
      static_cast<size_t>(config.max_watch_streams_per_identity);
  impl->watches = std::make_unique<domain::WatchStarter>(
      impl->jobs.get(), impl->events.get(), &impl->clock, watch_options);
  impl->timer_service =
      std::make_unique<api::TimerServiceImpl>(impl->jobs.get(), impl->authenticator.get(),
                                              impl->watches.get(), impl->listener.get());
  impl->session_service = std::make_unique<api::SessionServiceImpl>(
      impl->authenticator.get(), impl->listener.get());
  if (!config.http_listen.empty()) {
    // The HTTP listener: the routes declared in the protos, the same
    // JobService, Authenticator and TLS files as gRPC.
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    ASSIGN_OR_RETURN(
        api::http::Transcoder routes,
        api::http::Transcoder::FromServices(
            {pool->FindServiceByName(v1::TimerService::service_full_name()),
             pool->FindServiceByName(v1::SessionService::service_full_name())}));
    impl->http_routes = std::make_unique<api::http::Transcoder>(std::move(routes));
    impl->http_handlers = std::make_unique<api::http::HttpHandlers>(
        impl->jobs.get(), impl->authenticator.get(), impl->watches.get());
    api::http::HttpOptions options;
    options.listen = config.http_listen;
    options.max_connections = config.http_max_connections;
    options.io_threads = config.http_io_threads;
    options.workers = config.http_workers;
    options.max_connections_per_peer = config.http_max_connections_per_peer;
    options.max_header_bytes = static_cast<size_t>(config.http_max_header_bytes);
    options.max_body_bytes = static_cast<size_t>(config.max_message_bytes);
    // Bodies held at once, in all: 16 requests of the largest size.
    options.max_bodies_bytes = 16 * static_cast<size_t>(config.max_message_bytes);
    options.header_timeout = absl::Milliseconds(config.http_header_timeout_ms);
    options.body_timeout = absl::Milliseconds(config.http_body_timeout_ms);
    options.idle_timeout = absl::Milliseconds(config.http_idle_timeout_ms);
    options.sse_heartbeat = absl::Milliseconds(config.http_sse_heartbeat_ms);
    if (tls_files) {
      options.cert_chain = tls_files->cert_chain;
      options.private_key = tls_files->private_key;
      options.client_ca = tls_files->client_ca;
    }
    api::http::HttpHooks hooks;
    // The process-wide metrics registry (util/metrics.h): /metrics renders
    // it, and every answered request is counted by route template and code.
    hooks.metrics = [] { return metrics::Render(); };
    hooks.observe = [](absl::string_view route, int code, absl::Duration took) {
      metrics::ObserveHttpRequest(std::string_view(route.data(), route.size()), code,
                                  took);
    };
    // Ready when the store answers a read (a job that does not exist: NOT_FOUND
    // is an answer) and, with several replicas, this one's lease renewal is
    // current. Holding no shard (the others hold them all) is still ready:
    // the whole API is served from the shared store (docs/DEPLOYMENT.md).
    hooks.ready = [store = impl->store.get(), leases = impl->leases.get()] {
      absl::StatusOr<v1::Job> probe =
          store->GetJob("", "00000000-0000-0000-0000-000000000000");
      if (!probe.ok() && !absl::IsNotFound(probe.status())) return false;
      return leases == nullptr || leases->BeforeDeadline();
    };
    ASSIGN_OR_RETURN(impl->http, api::http::HttpServer::Start(
                                     std::move(options), std::move(hooks),
                                     impl->http_routes.get(), impl->http_handlers.get()));
    const size_t colon = config.http_listen.rfind(':');
    impl->http_address =
        absl::StrCat(config.http_listen.substr(0, colon), ":", impl->http->port());
    spdlog::info("http: serving on {}://{}", tls_files ? "https" : "http",
                 impl->http_address);
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Connections come from the listener; the gate checks every call's
  // credentials before its request is read.
  impl->acceptor = builder.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
      api::GatedCredentials(CoreCredentials(tls_files),
                            std::make_shared<const api::CallGate>(
                                impl->authenticator.get(), &impl->clock)));
  builder.RegisterService(impl->timer_service.get());
  builder.RegisterService(impl->session_service.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             config.max_streams_per_connection);
  grpc::ResourceQuota quota("timerd");
  quota.Resize(static_cast<size_t>(config.grpc_memory_quota_bytes));
  builder.SetResourceQuota(quota);
  // A connection that never finishes its handshake, or sits idle, is closed
  // rather than held open forever.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10 * 1000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 15 * 60 * 1000);
  impl->grpc_server = builder.BuildAndStart();
  if (impl->grpc_server == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("listen: cannot serve on ", config.listen));
  }
  if (absl::StartsWith(config.listen, "unix:")) {
    impl->address = config.listen;  // A socket path has no port.
  } else {
    const size_t colon = config.listen.rfind(':');
    impl->address = absl::StrCat(config.listen.substr(0, colon), ":", impl->port);
  }
  // Health answers for the whole server ("") and for each service by name.
  grpc::HealthCheckServiceInterface* health = impl->grpc_server->GetHealthCheckService();
  health->SetServingStatus(true);
  health->SetServingStatus(v1::TimerService::service_full_name(), true);
  health->SetServingStatus(v1::SessionService::service_full_name(), true);
  impl->listener->Start([acceptor = impl->acceptor.get()](int listener_fd, int fd) {
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
    p.listener_fd = listener_fd;
    p.fd = fd;
    acceptor->HandleNewConnection(&p);
  });
  spdlog::info("store: {}", stores.description);
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
  if (impl_->metrics != nullptr) impl_->metrics->Stop();  // Before the store closes.
  impl_->grpc_server->GetHealthCheckService()->SetServingStatus(false);
  // Watch streams (gRPC and HTTP) end now (UNAVAILABLE, with the `since` to
  // resume from) instead of holding the shutdown for its whole grace period.
  impl_->events->Shutdown();
  // HTTP takes no new requests; those in flight get their answers first,
  // and watch streams their final event.
  if (impl_->http != nullptr) impl_->http->Stop(std::min(grace, absl::Seconds(5)));
  // RunJobNow calls waiting for another replica end now (UNAVAILABLE), and
  // relayed runs being recorded here are answered.
  if (impl_->relay != nullptr) impl_->relay->Stop();
  // No new connections; gRPC takes none after its shutdown.
  impl_->listener->StopAccepting();
  // In-flight calls finish (their writes commit) before the store closes.
  impl_->grpc_server->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  impl_->grpc_server->Wait();
  impl_->listener->Stop();
  // No stream is left: starts and snapshot reads still queued end here,
  // before the store closes.
  impl_->watches->Stop();
  // No RPC can record a run any more: stop firing, let in-flight writes land.
  impl_->engine->Stop();
  // Then no event comes: queued notifications are dropped (in memory only).
  if (impl_->notifier != nullptr) impl_->notifier->Stop();
  // Its last events are appended (if the log can be reached) for the others.
  if (impl_->shared_events != nullptr) impl_->shared_events->Stop();
  // Then its leases go, so other replicas take its shards at once.
  if (impl_->leases != nullptr) impl_->leases->Stop();
  impl_->store->Close();
}

}  // namespace timer::server
