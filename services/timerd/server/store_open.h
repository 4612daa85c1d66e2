// Which store timerd keeps jobs and tokens in: the config's `store` (a
// postgres:// URI: PostgresStore and PostgresTokenStore, shared by
// replicas), else the embedded SQLite store, timer.db in the data directory.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/config.h"
#include "store/event_log.h"
#include "store/store.h"
#include "store/token_store.h"

namespace timer::server {

struct Stores {
  std::unique_ptr<store::Store> jobs;
  std::unique_ptr<store::TokenStore> tokens;
  // The event log the replicas share (PostgreSQL); null for SQLite, whose
  // one process numbers its events itself.
  std::unique_ptr<store::EventLog> events;
  // For the log: the file, or the URI without its password; and the schema.
  std::string description;
};

// Opens (and migrates) the configured store. `data_dir` is prepared and
// locked by the caller.
absl::StatusOr<Stores> OpenStores(const Config& config, const std::string& data_dir);

// The configured PostgreSQL store's tokens (migrating a new database), for
// `timerd token`; only when config.store is set.
absl::StatusOr<std::unique_ptr<store::TokenStore>> OpenPostgresTokens(
    const Config& config);

}  // namespace timer::server
