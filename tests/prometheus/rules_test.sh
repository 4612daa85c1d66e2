#!/usr/bin/env bash
# prometheus_rules_test: the shipped alert rules (docs/prometheus/alerts.yml)
# are valid (`promtool check rules`) and fire, and stay quiet, as
# tests/prometheus/alerts_test.yml says on its synthetic series (`promtool
# test rules`). promtool comes with Debian's prometheus package
# (scripts/deps.sh); without it the test fails rather than passing unchecked.
# Run from anywhere: the files are found next to this script (the source
# tree, or Bazel's runfiles).
set -euo pipefail
# Under Bazel the script runs from bazel-bin, the files are in its runfiles.
if [ -n "${TEST_SRCDIR:-}" ] && [ -n "${TEST_WORKSPACE:-}" ]; then
  root="$TEST_SRCDIR/$TEST_WORKSPACE"
  here="$root/tests/prometheus"
else
  here=$(cd "$(dirname "$0")" && pwd)
  root=$(cd "$here/../.." && pwd)
fi
if ! command -v promtool >/dev/null; then
  echo "prometheus_rules_test: promtool not found (install Debian's prometheus: scripts/deps.sh)" >&2
  exit 1
fi
promtool check rules "$root/docs/prometheus/alerts.yml"
promtool test rules "$here/alerts_test.yml"
