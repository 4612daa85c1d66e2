#!/usr/bin/env bash
# Runs the commands of docs/PERFORMANCE.md, "Current figures at HEAD", in the
# table's order, and prints their output, so the whole table can be
# re-measured in one go (about twenty-five minutes).
#
#   bench/current-figures.sh [BUILD_DIR]     # default: build
#
# BUILD_DIR is a configured CMake build tree of this repository (benchmarks
# on, as by default); the benchmark targets are built in it first, which is a
# no-op when they are up to date. Run from anywhere; paths are taken relative
# to the repository root. Stops at the first command that fails.
set -euo pipefail

cd "$(dirname "$0")/.."
build="${1:-build}"
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  echo "current-figures: $build is not a configured build tree; configure it with" >&2
  echo "  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo" >&2
  exit 2
fi

cmake --build "$build" --target timer_bench_create_get timer_bench_scheduler \
  timer_bench_transfer timer_bench_cli_status timer_bench_watch timer_bench_replicas \
  timer_bench_metrics timer_bench_cron timer_bench_http_provider timer_bench_http

echo "== commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo ' (with local changes)')"
echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

commands=(
  "$build/bench/timer_bench_create_get --cases sqlite,floor,create,get --callers 1,64 --client callback"
  "$build/bench/timer_bench_scheduler --jobs 20000 --seconds 30"
  "$build/bench/timer_bench_scheduler --jobs 30000 --seconds 30"
  "$build/bench/timer_bench_scheduler --load 1000000"
  "$build/bench/timer_bench_transfer"
  "$build/bench/timer_bench_cli_status --runs 200"
  "$build/bench/timer_bench_watch --runs 1"
  "$build/bench/timer_bench_http --seconds 10"
  "$build/bench/timer_bench_http --cases sse --seconds 10 --sse-rounds 2 --jobs 50 --no-grpc-watch"
  "$build/bench/timer_bench_replicas --jobs 10000 --seconds 20"
  "$build/bench/timer_bench_metrics"
  "$build/bench/timer_bench_cron --seconds 2"
  "$build/bench/timer_bench_scheduler --jobs 10000,20000 --seconds 20 --cron '* * * * * *' --rounds 3"
  "$build/bench/timer_bench_http_provider"
  "$build/bench/timer_bench_scheduler --load 1000000 --cron '0 2 * * *' --tz Europe/Berlin"
)

total_start=$SECONDS
for cmd in "${commands[@]}"; do
  echo
  echo "== \$ $cmd"
  echo "== load average $(cut -d' ' -f1-3 /proc/loadavg)"
  start=$SECONDS
  # Each entry is a command line as typed in a shell (cron expressions are
  # quoted): evaluated as such. The entries are this script's own constants.
  eval "$cmd"
  echo "== $((SECONDS - start)) s"
done
echo
echo "== all commands: $((SECONDS - total_start)) s"
