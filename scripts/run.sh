#!/usr/bin/env bash
# Installs what is missing, builds timerd and timer, installs them into
# ./_install, and starts timerd in the background on the embedded store,
# ready for the CLI.
#
#   scripts/run.sh               build, install, (re)start timerd
#   scripts/run.sh --foreground  same, but run timerd in this terminal
#   scripts/run.sh stop          stop the timerd this script started
#
# timerd listens on 127.0.0.1:50051 and keeps its data in
# ~/.local/share/timer (override with TIMER_DATA_DIR). Its log is
# _run/timerd.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
prefix="$root/_install"
rundir="$root/_run"
pidfile="$rundir/timerd.pid"
listen="${TIMER_LISTEN:-127.0.0.1:50051}"
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
cmake -S . -B build-run -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTIMER_BUILD_TESTS=OFF -DTIMER_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build build-run -j "$(nproc)"
cmake --install build-run >/dev/null

stop
mkdir -p "$rundir"
if [ "${1:-}" = "--foreground" ]; then
  exec "$prefix/bin/timerd" --listen "$listen" --data-dir "$data_dir"
fi
nohup "$prefix/bin/timerd" --listen "$listen" --data-dir "$data_dir" \
  >"$rundir/timerd.log" 2>&1 &
echo $! >"$pidfile"

# Ready when the CLI gets an answer (at most 30 s).
for _ in $(seq 300); do
  if "$prefix/bin/timer" --server "$listen" --timeout 1 job list >/dev/null 2>&1; then
    cat <<MSG
timerd is running on $listen (pid $(cat "$pidfile"), data in $data_dir,
log in _run/timerd.log). Try:

  export PATH="$prefix/bin:\$PATH"
  timer job submit --name hello --interval 1h --action-provider noop --action-body '{}'
  timer job list

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
