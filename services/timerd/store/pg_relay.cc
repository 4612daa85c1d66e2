// PostgresStore as a RelayStore: the relayed_runs table (pg_schema.cc,
// migration 3). A claim takes rows FOR UPDATE SKIP LOCKED and only of
// shards whose lease the claimer holds on PostgreSQL's clock, so two
// replicas never claim one row, and a replica never claims a row after its
// lease expired.
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "store/postgres_store.h"
#include "util/status_macros.h"

namespace timer::store {
namespace {

constexpr PgStatement kAddRelayed = {
    "add_relayed",
    "INSERT INTO relayed_runs (id, shard, owner, job_id, request_id, expires_at) "
    "VALUES ($1::text, $2::integer, $3::text, $4::text, $5::text, "
    "clock_timestamp() + $6::bigint * interval '1 microsecond') "
    "ON CONFLICT (id) DO NOTHING"};
constexpr PgStatement kClaimRelayed = {
    "claim_relayed",
    "WITH open AS (SELECT r.id FROM relayed_runs r JOIN shard_leases l "
    "ON l.shard = r.shard WHERE r.claimed_by IS NULL "
    "AND r.expires_at > clock_timestamp() AND l.holder = $1::text "
    "AND l.expires_at > clock_timestamp() ORDER BY r.created_at, r.id LIMIT $2::bigint "
    "FOR UPDATE OF r SKIP LOCKED) "
    "UPDATE relayed_runs r SET claimed_by = $1::text FROM open WHERE r.id = open.id "
    "RETURNING r.id, r.owner, r.job_id, r.request_id, "
    "(extract(epoch FROM r.created_at) * 1000000)::bigint"};
constexpr PgStatement kFinishRelayed = {
    "finish_relayed",
    "UPDATE relayed_runs SET code = $2::integer, message = $3::text "
    "WHERE id = $1::text"};
constexpr PgStatement kRelayedOutcomes = {
    "relayed_outcomes",
    "SELECT id, code::bigint, message FROM relayed_runs "
    "WHERE id = ANY(string_to_array($1::text, ',')) AND code IS NOT NULL"};
constexpr PgStatement kPruneRelayed = {
    "prune_relayed",
    "DELETE FROM relayed_runs WHERE expires_at < "
    "clock_timestamp() - $1::bigint * interval '1 microsecond'"};

}  // namespace

absl::Status PostgresStore::AddRelayedRun(const RelayedRun& request, absl::Duration ttl) {
  const int64_t ttl_us = absl::ToInt64Microseconds(ttl);
  const int shard = ShardOf(request.job_id);
  int64_t added = 0;
  RETURN_IF_ERROR(Read(
      [&](PgConn& c) -> absl::Status {
        ASSIGN_OR_RETURN(PgResult res, c.Run(kAddRelayed, {request.id, shard,
                                                           request.owner, request.job_id,
                                                           request.request_id, ttl_us}));
        added = res.affected();
        return absl::OkStatus();
      },
      /*retry=*/false));
  if (added == 0) return absl::AlreadyExistsError("store: relayed run id already taken");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RelayedRun>> PostgresStore::ClaimRelayedRuns(
    const std::string& replica_id, int limit) {
  std::vector<std::pair<int64_t, RelayedRun>> claimed;
  // Not retried on another connection: a claim whose COMMIT was lost may
  // have taken rows, which then end unanswered (their askers time out).
  RETURN_IF_ERROR(Read(
      [&](PgConn& c) -> absl::Status {
        claimed.clear();
        ASSIGN_OR_RETURN(PgResult res,
                         c.Run(kClaimRelayed, {replica_id, static_cast<int64_t>(limit)}));
        for (int i = 0; i < res.rows(); ++i) {
          claimed.emplace_back(
              res.Int(i, 4),
              RelayedRun{std::string(res.Bytes(i, 0)), std::string(res.Bytes(i, 1)),
                         std::string(res.Bytes(i, 2)), std::string(res.Bytes(i, 3))});
        }
        return absl::OkStatus();
      },
      /*retry=*/false));
  // UPDATE ... RETURNING does not keep the subquery's order.
  std::sort(claimed.begin(), claimed.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first, a.second.id) < std::tie(b.first, b.second.id);
  });
  std::vector<RelayedRun> out;
  out.reserve(claimed.size());
  for (auto& [seq, run] : claimed) out.push_back(std::move(run));
  return out;
}

absl::Status PostgresStore::FinishRelayedRun(const std::string& id,
                                             const absl::Status& outcome) {
  const std::string message = RelayedRunMessage(outcome.message());
  int64_t updated = 0;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(
        PgResult res,
        c.Run(kFinishRelayed, {id, static_cast<int>(outcome.code()), message}));
    updated = res.affected();
    return absl::OkStatus();
  }));
  if (updated == 0) return absl::NotFoundError("store: no such relayed run");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RelayedRunOutcome>> PostgresStore::RelayedRunOutcomes(
    const std::vector<std::string>& ids) {
  std::vector<RelayedRunOutcome> out;
  if (ids.empty()) return out;
  // Ids are made by the replicas (hex): no comma in them.
  const std::string joined = absl::StrJoin(ids, ",");
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    out.clear();
    ASSIGN_OR_RETURN(PgResult res, c.Run(kRelayedOutcomes, {joined}));
    for (int i = 0; i < res.rows(); ++i) {
      out.push_back(
          RelayedRunOutcome{std::string(res.Bytes(i, 0)),
                            absl::Status(static_cast<absl::StatusCode>(res.Int(i, 1)),
                                         std::string(res.Bytes(i, 2)))});
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<int64_t> PostgresStore::PruneRelayedRuns(absl::Duration keep) {
  int64_t pruned = 0;
  RETURN_IF_ERROR(Read([&](PgConn& c) -> absl::Status {
    ASSIGN_OR_RETURN(PgResult res,
                     c.Run(kPruneRelayed, {absl::ToInt64Microseconds(keep)}));
    pruned = res.affected();
    return absl::OkStatus();
  }));
  return pruned;
}

}  // namespace timer::store
