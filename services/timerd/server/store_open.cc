#include "server/store_open.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "store/pg_conn.h"
#include "store/pg_event_log.h"
#include "store/postgres_store.h"
#include "store/postgres_token_store.h"
#include "store/sqlite_store.h"
#include "store/sqlite_token_store.h"
#include "util/escape.h"
#include "util/status_macros.h"

namespace timer::server {

absl::StatusOr<Stores> OpenStores(const Config& config, const std::string& data_dir) {
  Stores stores;
  if (config.store.empty()) {
    const std::string path = data_dir + "/timer.db";
    ASSIGN_OR_RETURN(stores.jobs, store::SqliteStore::Open({.path = path}));
    ASSIGN_OR_RETURN(stores.tokens, store::SqliteTokenStore::Open(path));
    stores.description =
        absl::StrCat(path, " (schema ", store::SqliteStore::LatestSchemaVersion(), ")");
    return stores;
  }
  const absl::Duration timeout = absl::Milliseconds(config.store_timeout_ms);
  ASSIGN_OR_RETURN(
      stores.jobs,
      store::PostgresStore::Open(
          {.uri = config.store,
           .readers = config.store_readers,
           .writers = config.store_writers,
           .timeout = timeout,
           .max_live_jobs_per_owner = config.max_jobs_per_identity,
           .max_stored_jobs_per_owner = config.max_stored_jobs_per_identity}));
  ASSIGN_OR_RETURN(stores.tokens, OpenPostgresTokens(config));
  // Migrated by the store's Open above.
  stores.events = std::make_unique<store::PgEventLog>(
      store::PgEventLog::Options{.uri = config.store, .timeout = timeout});
  stores.description =
      absl::StrCat("PostgreSQL ", util::Escaped(store::RedactPgUri(config.store)),
                   " (schema ", store::PostgresStore::LatestSchemaVersion(), ", ",
                   config.store_readers, " readers, ", config.store_writers, " writers)");
  return stores;
}

absl::StatusOr<std::unique_ptr<store::TokenStore>> OpenPostgresTokens(
    const Config& config) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<store::PostgresTokenStore> tokens,
      store::PostgresTokenStore::Open(
          {.uri = config.store, .timeout = absl::Milliseconds(config.store_timeout_ms)}));
  return std::unique_ptr<store::TokenStore>(std::move(tokens));
}

}  // namespace timer::server
