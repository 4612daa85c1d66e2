#!/usr/bin/env bash
# Several timerd replicas on one PostgreSQL, to try them out on this machine:
# a throwaway PostgreSQL 15 cluster and three timerd replicas sharing it
# (docs/DEPLOYMENT.md, "Several replicas on PostgreSQL").
#
#   scripts/cluster.sh start       build and install as scripts/run.sh does,
#                                  start PostgreSQL and the replicas, log the
#                                  CLI in to each
#   scripts/cluster.sh status      each replica's health and shards
#   scripts/cluster.sh restart N   start replica N again (after you killed it)
#   scripts/cluster.sh stop        stop everything and remove what it made
#
# Everything lives in one temporary directory, /tmp/timer-cluster-XXXXXX,
# reached through the link _run/cluster: PostgreSQL's data, socket and log
# (pg/), each replica's data directory, config, log and the noop provider's
# record of the runs it started (replicaN/), the password file (pgpass) and
# an env file for the shell (env). PostgreSQL listens on 127.0.0.1 only, at
# a free port, with fsync on; initdb and pg_ctl run as the `postgres` user
# when this script runs as root (they refuse root). The replicas listen on
# free loopback ports and connect as a role that may only read and write
# the tables (`timerd`); another role (`timer_admin`) owns them and created
# them, as docs/DEPLOYMENT.md recommends. Passwords are random, kept in
# pgpass (mode 0600, given to timerd as PGPASSFILE), never on a command line.
#
# The CLI is logged in to every replica (a token issued with `timerd token
# issue --store`, saved per server in ~/.config/timer/tokens.json); `stop`
# logs it out again.
#
# `start` refuses while anything of a previous cluster still runs; leftovers
# of one that crashed are removed first. `stop` works after a crash too.
#
# Environment: TIMER_INSTALL_PREFIX uses the timerd and timer installed
# there instead of building; TIMER_CLUSTER_LINK moves the link (default
# _run/cluster); TIMER_CLUSTER_REPLICAS (1 to 9, default 3).
set -euo pipefail
umask 077 # Data directories, configs, the password file: this user's only.
# Paths given relative to where we were called from, before the cd.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[ -z "${TIMER_INSTALL_PREFIX:-}" ] || TIMER_INSTALL_PREFIX=$(absolute "$TIMER_INSTALL_PREFIX")
[ -z "${TIMER_CLUSTER_LINK:-}" ] || TIMER_CLUSTER_LINK=$(absolute "$TIMER_CLUSTER_LINK")
cd "$(dirname "$0")/.."
root=$(pwd)
link="${TIMER_CLUSTER_LINK:-$root/_run/cluster}"
replicas="${TIMER_CLUSTER_REPLICAS:-3}"
case "$replicas" in [1-9]) ;; *)
  echo "cluster.sh: TIMER_CLUSTER_REPLICAS must be 1 to 9" >&2
  exit 2
  ;;
esac
db=timer

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start | status | restart N | stop" >&2
  exit 2
}

# Where PostgreSQL's server tools are (Debian: not on PATH); as_pg runs one
# as the `postgres` user when we are root.
pg_bin() {
  local d
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  return 1
}
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A TCP port on 127.0.0.1 nothing listens on now.
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# Process PID exists and is not a zombie (which nobody may reap: the
# replicas outlive this script).
alive() {
  [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# The pid in FILE if that process is alive and was started from DIR (a pid
# reused by another process does not count).
live_pid() {
  local file=$1 dir=$2 pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [ -n "$pid" ] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$dir/" || return 1
  echo "$pid"
}

pg_running() { # DIR: its postmaster is alive (not a zombie nobody reaped)
  local pid
  pid=$(head -n 1 "$1/pg/data/postmaster.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && alive "$pid" || return 1
  # The postmaster runs in its data directory (whatever its command line).
  [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$1/pg/data" ]
}

# Anything of the cluster in DIR still running: prints what.
running() {
  local dir=$1 n what=()
  pg_running "$dir" && what+=("PostgreSQL")
  for n in $(seq 9); do
    live_pid "$dir/replica$n/pid" "$dir" >/dev/null && what+=("replica $n")
  done
  [ ${#what[@]} -gt 0 ] || return 1
  echo "${what[*]}"
}

# The cluster's directory, if the link points at one.
cluster_dir() {
  [ -L "$link" ] && [ -d "$link/" ] && readlink -f "$link"
}

sql() { # SQL on stdin, as the superuser over the cluster's private socket
  "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/pg" -p "$pg_port" -U postgres \
    -d "${1:-postgres}" -At -F ' '
}

# Starts replica N of $dir in the background, on PORT (0: any free one), and
# waits until it listens; writes replicaN/pid and replicaN/address.
start_replica() {
  local n=$1 port=$2 r="$dir/replica$1" address=""
  mkdir -p "$r"
  cat >"$r/timerd.toml" <<TOML
# Replica $n of scripts/cluster.sh.
listen = "127.0.0.1:$port"
data_dir = "$r/data"
store = "$store"
[plugins.noop]
record_file = "$r/runs.log"   # one line per run this replica started: JOB_ID/RUN UNIX_MS
TOML
  # Only what this start appends to the log counts (a restart appends).
  local from=$(($(stat -c %s "$r/timerd.log" 2>/dev/null || echo 0) + 1))
  PGPASSFILE="$dir/pgpass" nohup "$prefix/bin/timerd" --config "$r/timerd.toml" \
    </dev/null >>"$r/timerd.log" 2>&1 &
  echo $! >"$r/pid"
  # Ready when it logs its address (at most 30 s).
  for _ in $(seq 300); do
    address=$(tail -c "+$from" "$r/timerd.log" | sed -n 's/.* listening on \([^ ]*\).*/\1/p')
    [ -z "$address" ] || break
    alive "$(cat "$r/pid")" || break
    sleep 0.1
  done
  if [ -z "$address" ]; then
    echo "cluster.sh: replica $n did not start; its log, $r/timerd.log:" >&2
    tail -c "+$from" "$r/timerd.log" | tail -n 20 >&2
    return 1
  fi
  echo "$address" >"$r/address"
}

# The CLI, against replica N's address.
timer_at() { # N ARGS...
  local n=$1
  shift
  TIMER_TOKEN='' "$prefix/bin/timer" --server "$(cat "$dir/replica$n/address")" "$@"
}

print_replicas() {
  local n
  for n in $(seq "$replicas"); do
    printf '  %s  %-16s pid %-7s log %s\n' "$n" "$(cat "$dir/replica$n/address")" \
      "$(cat "$dir/replica$n/pid")" "$link/replica$n/timerd.log"
  done
}

cmd_start() {
  local old busy
  if old=$(cluster_dir); then
    if busy=$(running "$old"); then
      die "a cluster is already running in $old ($busy): see scripts/cluster.sh status," \
        "or scripts/cluster.sh stop first"
    fi
    echo "Removing the leftovers of a cluster that is no longer running ($old)."
    cmd_stop >/dev/null
  elif [ -L "$link" ]; then
    rm -f "$link"
  fi

  if [ -n "${TIMER_INSTALL_PREFIX:-}" ]; then
    prefix=$TIMER_INSTALL_PREFIX
  else
    ./scripts/run.sh install
    prefix="$root/_install"
  fi
  if [ ! -x "$prefix/bin/timerd" ] || [ ! -x "$prefix/bin/timer" ]; then
    die "no timerd and timer in $prefix/bin"
  fi
  pg_bin=$(pg_bin) || die "PostgreSQL's initdb not found (install postgresql: scripts/deps.sh)"
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    die "running as root and there is no postgres user (install postgresql: scripts/deps.sh)"
  fi

  dir=$(mktemp -d /tmp/timer-cluster-XXXXXX)
  mkdir -p "$(dirname "$link")"
  ln -sfn "$dir" "$link"
  # From here on, a failure leaves state that `stop` cleans up.
  trap 'echo "cluster.sh: start failed; cleaning up" >&2; cmd_stop >/dev/null 2>&1 || true' EXIT
  mkdir "$dir/pg"
  if [ "$(id -u)" -eq 0 ]; then
    chmod 711 "$dir" # postgres passes through to pg/, and sees nothing else
    chown postgres: "$dir/pg"
  fi
  password() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }
  local super_pw admin_pw timerd_pw
  super_pw=$(password)
  admin_pw=$(password)
  timerd_pw=$(password)
  printf '%s\n' "$super_pw" | as_pg tee "$dir/pg/pwfile" >/dev/null
  # Local socket (a directory only the cluster's user may enter): trust;
  # TCP: passwords (SCRAM).
  as_pg "$pg_bin/initdb" -D "$dir/pg/data" -U postgres --pwfile="$dir/pg/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync \
    >"$dir/pg/initdb.log" 2>&1 || { cat "$dir/pg/initdb.log" >&2; false; }
  as_pg rm -f "$dir/pg/pwfile"
  local started=""
  for _ in 1 2 3; do
    pg_port=$(free_port) || die "no free port for PostgreSQL"
    printf 'pg_bin=%q\npg_port=%q\nprefix=%q\nreplicas=%q\n' "$pg_bin" "$pg_port" "$prefix" \
      "$replicas" >"$dir/state"
    if as_pg "$pg_bin/pg_ctl" start -w -t 60 -D "$dir/pg/data" -l "$dir/pg/server.log" \
      -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $dir/pg -c fsync=on" >/dev/null; then
      started=1
      break
    fi
  done
  [ -n "$started" ] || {
    tail -n 20 "$dir/pg/server.log" >&2
    die "PostgreSQL did not start; its log: $dir/pg/server.log"
  }

  # The least-privilege setup of docs/DEPLOYMENT.md: timer_admin owns the
  # database and creates the tables; timerd may only use them.
  sql <<SQL
SET log_min_error_statement = PANIC; -- no statement (with its password) in the log
CREATE ROLE timer_admin LOGIN PASSWORD '$admin_pw';
CREATE ROLE timerd LOGIN PASSWORD '$timerd_pw';
CREATE DATABASE $db OWNER timer_admin;
SQL
  sql "$db" <<SQL
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE timer_admin IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO timerd;
SQL
  printf '127.0.0.1:%s:%s:timer_admin:%s\n127.0.0.1:%s:%s:timerd:%s\n' \
    "$pg_port" "$db" "$admin_pw" "$pg_port" "$db" "$timerd_pw" >"$dir/pgpass"
  unset super_pw admin_pw timerd_pw
  local base="127.0.0.1:$pg_port/$db?sslmode=disable"
  # Creating the tables: once, as their owner (any timerd command migrates).
  PGPASSFILE="$dir/pgpass" "$prefix/bin/timerd" token list \
    --store "postgres://timer_admin@$base" >/dev/null
  store="postgres://timerd@$base"

  local n
  for n in $(seq "$replicas"); do start_replica "$n" 0; done

  # One token for this user, accepted by every replica (they share the
  # tokens table); the CLI saves it per server.
  local identity token
  identity=$(id -un)
  token=$(PGPASSFILE="$dir/pgpass" "$prefix/bin/timerd" token issue --store "$store" \
    --identity "$identity" --description "scripts/cluster.sh on $(hostname)" | tail -n 1)
  for n in $(seq "$replicas"); do
    printf '%s\n' "$token" | timer_at "$n" session login >/dev/null
  done
  unset token
  local first
  first=$(cat "$dir/replica1/address")
  # shellcheck disable=SC2016 # $PATH expands when the file is sourced.
  printf 'export PATH=%q:"$PATH"\nexport TIMER_SERVER=%q\n' "$prefix/bin" "$first" >"$dir/env"
  trap - EXIT

  local pgversion
  pgversion=$("$pg_bin/postgres" --version | awk '{print $3}')
  cat <<MSG
PostgreSQL $pgversion listens on 127.0.0.1:$pg_port (database $db, log $link/pg/server.log).
$replicas timerd replicas share it, as role timerd (store = "$store";
passwords in $link/pgpass):
$(print_replicas)
Each replica's noop runs: $link/replicaN/runs.log (JOB_ID/RUN_NUMBER UNIX_MS).

The CLI is logged in to every replica as "$identity". Try:

MSG
  try() { printf '  %-44s # %s\n' "$1" "$2"; }
  try ". $link/env" "PATH, and TIMER_SERVER=$first (replica 1)"
  echo "  timer job submit --name tick --interval 1s --action-provider noop --action-body '{}'"
  try "timer --server $(cat "$dir/replica$replicas/address") job list" "any replica serves any call"
  try "tail -f $link/replica*/runs.log" "which replica starts each run"
  try "scripts/cluster.sh status" "each replica's health and shards"
  local victim=$((replicas > 1 ? 2 : 1)) # The CLI talks to replica 1.
  try "kill -9 $(cat "$dir/replica$victim/pid")" "lose replica $victim: the others take its shards within ~3 s"
  try "scripts/cluster.sh restart $victim" "it comes back and takes its share again"
  echo
  echo "Stop it all with: scripts/cluster.sh stop"
}

cmd_status() {
  dir=$(cluster_dir) || {
    echo "No cluster (scripts/cluster.sh start makes one)."
    return 3
  }
  # shellcheck source=/dev/null
  . "$dir/state"
  local pg="stopped" n
  pg_running "$dir" && pg="running"
  echo "PostgreSQL on 127.0.0.1:$pg_port: $pg (log $link/pg/server.log)"
  # Shards held now, per replica id, and the age of each heartbeat, on
  # PostgreSQL's clock.
  local leases=""
  if [ "$pg" = running ]; then
    leases=$(sql "$db" <<'SQL' 2>/dev/null || true
SELECT r.replica_id, count(l.shard),
       coalesce(min(l.shard)::text || '-' || max(l.shard)::text, '-'),
       round(extract(epoch FROM clock_timestamp() - r.heartbeat_at)::numeric, 1)
FROM replicas r LEFT JOIN shard_leases l
  ON l.holder = r.replica_id AND l.expires_at > clock_timestamp()
GROUP BY r.replica_id, r.heartbeat_at;
SELECT 'free', count(*), '', '' FROM shard_leases
WHERE holder IS NULL OR expires_at IS NULL OR expires_at <= clock_timestamp();
SQL
    )
  fi
  printf '%-3s %-16s %-8s %-8s %-10s %-7s %-10s %s\n' "" address pid process health shards heartbeat \
    "replica id"
  for n in $(seq "$replicas"); do
    local r="$dir/replica$n" pid="" process="exited" health="-" id="" shards="-" beat="-"
    [ -f "$r/address" ] || continue
    if pid=$(live_pid "$r/pid" "$dir"); then
      process="running"
      [ "$(awk '{print $3}' "/proc/$pid/stat")" = T ] && process="stopped"
      local rc=0
      timer_at "$n" --timeout 2 session whoami >/dev/null 2>&1 || rc=$?
      case $rc in
      0) health="serving" ;;
      5) health="no answer" ;;
      *) health="error $rc" ;;
      esac
    else
      pid=$(cat "$r/pid")
    fi
    # The replica id it logged with its first shards.
    id=$(sed -n 's/.*shard leases: replica \([^ ]*\) .*/\1/p' "$r/timerd.log" | tail -n 1)
    if [ -n "$id" ] && line=$(grep "^$id " <<<"$leases"); then
      read -r _ shards _ beat <<<"$line"
      beat="${beat} s ago"
    fi
    printf '%-3s %-16s %-8s %-8s %-10s %-7s %-10s %s\n' "$n" "$(cat "$r/address")" "$pid" \
      "$process" "$health" "$shards" "$beat" "${id:--}"
  done
  local free
  free=$(grep '^free ' <<<"$leases" | awk '{print $2}')
  if [ -n "$free" ] && [ "$free" -gt 0 ]; then
    echo "Shards held by no live replica: $free of 256 (the others take them at their next renewals)."
  fi
  echo "Logs: $link/replicaN/timerd.log; runs started: $link/replicaN/runs.log"
}

cmd_restart() {
  local n=${1:-}
  case "$n" in [1-9]) ;; *) usage ;; esac
  dir=$(cluster_dir) || die "no cluster (scripts/cluster.sh start makes one)"
  # shellcheck source=/dev/null
  . "$dir/state"
  [ "$n" -le "$replicas" ] || die "there are $replicas replicas"
  pg_running "$dir" || die "PostgreSQL is not running: scripts/cluster.sh stop, then start"
  if pid=$(live_pid "$dir/replica$n/pid" "$dir"); then
    die "replica $n is running (pid $pid); kill it first (kill -9 $pid, or kill -STOP to freeze it)"
  fi
  local address port
  address=$(cat "$dir/replica$n/address")
  port=${address##*:}
  store=$(sed -n 's/^store = "\(.*\)"$/\1/p' "$dir/replica$n/timerd.toml")
  start_replica "$n" "$port"
  echo "Replica $n is running again on $(cat "$dir/replica$n/address") (pid $(cat "$dir/replica$n/pid"));"
  echo "it takes its share of the shards within a few renewals (scripts/cluster.sh status)."
}

cmd_stop() {
  dir=$(cluster_dir) || {
    rm -f "$link"
    echo "No cluster running."
    return 0
  }
  local n pid
  if [ -f "$dir/state" ]; then
    # shellcheck source=/dev/null
    . "$dir/state"
  fi
  # The replicas first, while PostgreSQL is up to take back their leases. A
  # frozen one (SIGSTOP) is woken, or it would never see the SIGTERM.
  local pids=()
  for n in $(seq 9); do
    if pid=$(live_pid "$dir/replica$n/pid" "$dir"); then
      kill -CONT "$pid" 2>/dev/null || true
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 150); do
      alive "$pid" || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  [ ${#pids[@]} -eq 0 ] || echo "Stopped ${#pids[@]} replica(s)."
  if pg_running "$dir"; then
    as_pg "$pg_bin/pg_ctl" stop -w -t 30 -m fast -D "$dir/pg/data" >/dev/null 2>&1 ||
      as_pg "$pg_bin/pg_ctl" stop -w -m immediate -D "$dir/pg/data" >/dev/null 2>&1 || true
    echo "Stopped PostgreSQL."
  fi
  # The CLI forgets the replicas' addresses (a later server may take them).
  if [ -n "${prefix:-}" ] && [ -x "$prefix/bin/timer" ]; then
    for n in $(seq 9); do
      [ -f "$dir/replica$n/address" ] || continue
      TIMER_TOKEN='' "$prefix/bin/timer" --server "$(cat "$dir/replica$n/address")" \
        session logout >/dev/null 2>&1 || true
    done
  fi
  rm -rf "$dir"
  rm -f "$link"
  echo "Removed $dir."
}

case "${1:-}" in
start) [ $# -eq 1 ] || usage; cmd_start ;;
status) [ $# -eq 1 ] || usage; cmd_status ;;
restart) [ $# -eq 2 ] || usage; cmd_restart "$2" ;;
stop) [ $# -eq 1 ] || usage; cmd_stop ;;
*) usage ;;
esac
