#!/usr/bin/env bash
# Builds every target and runs every test with Bazel (bazel-compat/), offline,
# against the system's libraries: the same targets as CMake, from the same
# sources. Installs missing Debian packages first (Bazel is Debian's
# bazel-bootstrap). Exit status 0 only if everything built, every test
# passed and the plugins export nothing but their ABI entry point.
#
#   scripts/bazel-test.sh                 bazel test //...
#   scripts/bazel-test.sh //:e2e_test     only the given targets
#
# Bazel keeps its outputs in its output base (`bazel info output_base`, under
# ~/.cache/bazel), not in the repository.
#
# Two steps: `bazel build` of the targets, BAZEL_JOBS (default 2) actions at
# a time, then `bazel test` of the same targets, which runs the tests
# BAZEL_TEST_JOBS (default 4) at a time, tests tagged `exclusive` (the soak
# and replicas tests, RUN_SERIAL in CMake) alone at the end. In one `bazel
# test` the tests took build slots as soon as their binary was linked, and a
# test mostly waits (timers firing, processes starting, replicas failing
# over): about half of the two slots went to waiting tests while sources
# were still to compile (measured on a profile of this stage). A test needs
# no build slot, so they now wait together after the build.
#
# The auto-configured toolchain compiles with Clang (BAZEL_CC, default clang;
# BAZEL_CC=gcc for GCC). fastbuild compiles without optimisation, where most
# of a file's time is spent in the front end on gRPC, protobuf and
# GoogleTest headers, and Clang's is the faster one: at -O0, 65% of GCC's CPU
# over seven sources (tests/unit/api/timer_service_test.cc 13.5 s against
# 24 s). GCC still compiles every source in scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

cc=${BAZEL_CC:-clang}
extra=()
[ "$cc" = clang ] && extra=(clang)
./scripts/deps.sh bazel-bootstrap "${extra[@]}"
cd bazel-compat
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(//...)
status=0
common=(--repo_env=CC="$cc" --keep_going --show_progress_rate_limit=30)
bazel build "${common[@]}" --jobs="${BAZEL_JOBS:-2}" "${targets[@]}" || status=$?
# After a failed build too: --keep_going runs every test that did build.
test_jobs=${BAZEL_TEST_JOBS:-4}
bazel test "${common[@]}" --jobs="$test_jobs" --local_test_jobs="$test_jobs" \
  "${targets[@]}" || status=$?

# The plugins must export the ABI entry point and nothing else.
if [ "${targets[*]}" = "//..." ]; then
  for so in "$(bazel info bazel-bin 2>/dev/null)"/lib/timer/plugins/*.so; do
    [ -f "$so" ] || continue
    exported=$(nm -D --defined-only "$so" | awk '{print $NF}' | sort | xargs)
    if [ "$exported" = "timer_ap_get_api" ]; then
      echo "${so##*/} exports only timer_ap_get_api"
    else
      echo "bazel-test: ${so##*/} exports: $exported" >&2
      status=1
    fi
  done
fi
exit "$status"
