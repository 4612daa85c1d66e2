#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang, ASan and UBSan in
# build-fuzz/, replays the committed seed corpora and crash regressions
# through them (ctest), then fuzzes each target for a bounded time.
#
#   ./scripts/fuzz.sh                   # every target, FUZZ_SECONDS each (default 45;
#                                       # half that for the quick ones, below)
#   FUZZ_SECONDS=600 ./scripts/fuzz.sh fuzz_jwt fuzz_config
#
# Targets run FUZZ_JOBS at a time (default: one per core), so the whole run
# takes about FUZZ_SECONDS * targets / cores after the build.
#
# Each target fuzzes a temporary copy of its corpus (tests/fuzz/corpus/
# <target>/), so the committed corpus never changes; FUZZ_KEEP_CORPUS=DIR
# keeps the grown corpora in DIR/<target>/ instead. A crash, leak, sanitizer
# report, timeout (-timeout, seconds per input) or exceeded memory limit
# (-rss_limit_mb) stops that target; its input is kept as
# build-fuzz/crashes/<target>/crash-*, and the script exits 1 after running
# the rest. Prints the executions of every target. Exit status 0: no
# target failed.
set -euo pipefail
cd "$(dirname "$0")/.."

# 45 s: measured from the seed corpora (edges at 15/30/45/60 s), every target
# had at 45 s at least 95.7% of the edges it had at 60 s (fuzz_http_request
# 2330 of 2435; most above 98%), for a quarter less time.
seconds=${FUZZ_SECONDS:-45}
timeout=${FUZZ_TIMEOUT:-10}
rss_limit_mb=${FUZZ_RSS_LIMIT_MB:-2048}
jobs=${FUZZ_BUILD_JOBS:-$(nproc)}
parallel=${FUZZ_JOBS:-$(nproc)}

./scripts/deps.sh clang libclang-rt-14-dev   # libclang-rt: the libFuzzer and sanitizer runtimes
export CC=clang CXX=clang++
# -g1: line tables, enough for the file:line of every frame of a crash's
# stack (plugins/transfer/copier.cc: 10.7 -> 8.4 s of CPU against -g).
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DTIMER_FUZZ=ON -DTIMER_BUILD_TESTS=OFF -DTIMER_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$jobs" --target fuzz

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for dir in tests/fuzz/corpus/*/; do targets+=("$(basename "$dir")"); done
fi

# Targets whose coverage stops growing within half the time fuzz for half of
# FUZZ_SECONDS, after the others (so the cores stay busy to the end).
# Measured from the seed corpora, 60 s each, two at a time, edges at
# 15/30/45/60 s: fuzz_interval 166/167/167/167, fuzz_start_time
# 172/172/172/172, fuzz_s3_xml 181/181/181/181; every other target still
# gained edges between 45 and 60 s (fuzz_http_request 2330 -> 2435,
# fuzz_jwt 1205 -> 1241), so they keep the whole time. Seconds per target:
# seconds_for TARGET.
half_time=" fuzz_interval fuzz_start_time fuzz_s3_xml "
seconds_for() {
  if [[ "$half_time" == *" $1 "* ]]; then echo $(((seconds + 1) / 2)); else echo "$seconds"; fi
}
ordered=()
for target in "${targets[@]}"; do
  [[ "$half_time" == *" $target "* ]] || ordered+=("$target")
done
for target in "${targets[@]}"; do
  [[ "$half_time" == *" $target "* ]] && ordered+=("$target")
done
targets=("${ordered[@]}")

# Every committed input (seeds and past crashes) must still pass.
ctest --test-dir build-fuzz -L fuzz --output-on-failure

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fuzz_one TARGET: fuzzes one target; its log and exit status land in $tmp.
fuzz_one() {
  local target=$1 status=0
  local corpus="${FUZZ_KEEP_CORPUS:-$tmp/corpus}/$target"
  mkdir -p "$corpus" "build-fuzz/crashes/$target"
  cp -r "tests/fuzz/corpus/$target/." "$corpus/"
  local args=(-max_total_time="$(seconds_for "$target")" -timeout="$timeout" -rss_limit_mb="$rss_limit_mb"
              -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$target/")
  [ -f "tests/fuzz/$target.dict" ] && args+=(-dict="tests/fuzz/$target.dict")
  "build-fuzz/tests/fuzz/$target" "${args[@]}" "$corpus" >"$tmp/$target.log" 2>&1 || status=$?
  echo "$status" >"$tmp/$target.status"
}

for target in "${targets[@]}"; do
  [ -x "build-fuzz/tests/fuzz/$target" ] || { echo "fuzz.sh: no fuzz target $target" >&2; exit 2; }
done
# One target per core at a time (each fuzzer is single-threaded).
echo "fuzz.sh: ${#targets[@]} targets, ${seconds}s each (${half_time# } half that), $parallel at a time"
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  fuzz_one "$target" &
done
wait

failed=()
echo "fuzz.sh: executions per target:"
for target in "${targets[@]}"; do
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)$/\1/p' "$tmp/$target.log" | tail -1)
  status=$(cat "$tmp/$target.status" 2>/dev/null || echo "?")
  printf '  %-28s %12s%s\n' "$target" "${execs:-?}" \
    "$([ "$status" = 0 ] || echo "   FAILED (exit $status)")"
  if [ "$status" != 0 ]; then
    failed+=("$target")
    { echo "--- $target (last lines of its log)"; tail -n 60 "$tmp/$target.log"; } >&2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}; inputs kept in build-fuzz/crashes/<target>/" >&2
  exit 1
fi
echo "fuzz.sh: no crashes"
