#!/usr/bin/env bash
# Installs what is missing, builds timerd and timer, installs them into
# ./_install, and starts timerd in the background on the embedded store,
# ready for the CLI.
#
#   scripts/run.sh               build, install, (re)start timerd
#   scripts/run.sh --foreground  same, but run timerd in this terminal
#   scripts/run.sh stop          stop the timerd this script started
#   scripts/run.sh install       build and install only (scripts/cluster.sh)
#
# timerd listens on 127.0.0.1:50051 (gRPC) and 127.0.0.1:8080 (the web view
# at /, and the API as JSON over HTTP; a free port if 8080 is taken;
# TIMER_HTTP_LISTEN to choose) and keeps its data in ~/.local/share/timer (override with
# TIMER_DATA_DIR). Its log is _run/timerd.log.
#
# timerd requires credentials, so the first run also issues a token for the
# user running it (identity: the login name) and saves it in the CLI's token
# cache (~/.config/timer/tokens.json, mode 0600), as `timer session login`
# does. A later run keeps that token while timerd still accepts it.
#
# timerd reads DATA_DIR/timerd.toml. The first run writes it with two demo
# transfer endpoints, DATA_DIR/demo/source (holding hello.txt) and
# DATA_DIR/demo/dest, usable by that user (scripts/demo-config.sh); a later
# run keeps the file as it is, edits included.
set -euo pipefail
# What it installs must be writable by this user only: timerd refuses a
# plugin directory its group or others could write (docs/DEPLOYMENT.md).
umask 022
cd "$(dirname "$0")/.."
root=$(pwd)
prefix="$root/_install"
rundir="$root/_run"
pidfile="$rundir/timerd.pid"
listen="${TIMER_LISTEN:-127.0.0.1:50051}"
http_listen="${TIMER_HTTP_LISTEN:-127.0.0.1:8080}"
data_dir="${TIMER_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/timer}"

stop() {
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    kill -TERM "$(cat "$pidfile")"
    for _ in $(seq 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
    echo "timerd stopped"
  fi
  rm -f "$pidfile"
}

if [ "${1:-}" = "stop" ]; then stop; exit 0; fi

./scripts/deps.sh
# Clang, the compiler scripts/test.sh tests with (README, "Compilers"). CC/CXX
# in the environment choose another for a new build tree.
export CC=${CC:-clang} CXX=${CXX:-clang++}
cmake -S . -B build-run -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTIMER_BUILD_TESTS=OFF -DTIMER_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build build-run -j "$(nproc)"
cmake --install build-run >/dev/null
chmod -R go-w "$prefix"  # An install made under another umask, too.
if [ "${1:-}" = "install" ]; then exit 0; fi

stop
mkdir -p "$rundir"
config=$(./scripts/demo-config.sh "$data_dir" "$(id -un)")
# The default HTTP port taken by something else: any free one (printed below).
if [ -z "${TIMER_HTTP_LISTEN:-}" ] && (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  http_listen=127.0.0.1:0
fi
if [ "${1:-}" = "--foreground" ]; then
  exec "$prefix/bin/timerd" --config "$config" --listen "$listen" --data-dir "$data_dir" \
    --http-listen "$http_listen"
fi
nohup "$prefix/bin/timerd" --config "$config" --listen "$listen" --data-dir "$data_dir" \
  --http-listen "$http_listen" >"$rundir/timerd.log" 2>&1 &
echo $! >"$pidfile"

# Ready when timerd answers at all (at most 30 s): whoami exits 5 only while
# timerd is unreachable.
timer=("$prefix/bin/timer" --server "$listen" --timeout 1)
for _ in $(seq 300); do
  rc=0
  TIMER_TOKEN= "${timer[@]}" session whoami >/dev/null 2>&1 || rc=$?
  if [ "$rc" -ne 5 ]; then
    # A local operator token for this user, unless the saved one still works.
    if [ "$rc" -ne 0 ]; then
      identity=$(id -un)
      token=$("$prefix/bin/timerd" token issue --data-dir "$data_dir" --identity "$identity" \
        --description "scripts/run.sh on $(hostname)" | tail -n 1)
      printf '%s\n' "$token" | TIMER_TOKEN= "${timer[@]}" session login >/dev/null
      unset token
    fi
    who=$(TIMER_TOKEN= "${timer[@]}" session whoami | sed -n 's/^Identity: *//p')
    http_url=$(sed -n 's/.*http: serving on \(http[^ ]*\).*/\1/p' "$rundir/timerd.log" | tail -n 1)
    server_env=""  # The CLI's default server is timerd's default address.
    [ "$listen" = 127.0.0.1:50051 ] || server_env=$'\n'"  export TIMER_SERVER=$listen"
    cat <<MSG
timerd is running on $listen (pid $(cat "$pidfile"), data in $data_dir,
config in $config, log in _run/timerd.log).
The CLI is logged in as "$who". Try:

  export PATH="$prefix/bin:\$PATH"$server_env
  timer job submit --name hello --interval 1h --action-provider noop --action-body '{}'
  timer job list

The same API as JSON over HTTP is at $http_url (docs/API.md, "HTTP"):

  curl -H "Authorization: Bearer \$(jq -r '.servers["$listen"].token' ~/.config/timer/tokens.json)" $http_url/v1/jobs
  curl $http_url/readyz

The web view is at $http_url/ — sign in there with the same token:

  jq -r '.servers["$listen"].token' ~/.config/timer/tokens.json
MSG
    example=$(./scripts/demo-config.sh --example "$data_dir")
    if [ -n "$example" ]; then
      cat <<MSG

Two demo transfer endpoints are configured, the folders $data_dir/demo/source
and .../demo/dest. Copy hello.txt from one to the other, once, at once:

  $example
  timer job list                 # demo-copy: ended (stop_after_runs), SUCCEEDED (run 1)
  timer job status -v JOB_ID     # the Job ID printed above; its run: "files_transferred":1
  ls $(printf '%q' "$data_dir/demo/dest")    # hello.txt
MSG
      if ! grep -qsF "\"$who\"" "$config"; then
        echo "(The demo endpoints do not allow \"$who\": add it to their" \
          "allowed_identities in $config and run this script again.)"
      fi
    fi
    cat <<MSG

Stop it with: scripts/run.sh stop
MSG
    exit 0
  fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "timerd exited; its log:" >&2
    cat "$rundir/timerd.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "timerd did not become ready in 30 s; see _run/timerd.log" >&2
exit 1
