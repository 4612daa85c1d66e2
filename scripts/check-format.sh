#!/usr/bin/env bash
# Checks that every tracked C and C++ source (*.cc, *.h, *.c) is formatted as
# .clang-format says; changes nothing. Cheap: no build, about ten seconds on
# two cores. Exit status 0 only if no file would change.
#
#   scripts/check-format.sh          check
#   scripts/check-format.sh --fix    reformat the same files in place
#
# The formatter is Debian 12's clang-format (version 14), installed if
# missing: other versions format some constructs differently, so CI and
# anyone fixing a failure must use the same one.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh clang-format
clang-format --version

mapfile -d '' files < <(git ls-files -z '*.cc' '*.h' '*.c')
echo "check-format: ${#files[@]} files"
if [ "${1:-}" = "--fix" ]; then
  printf '%s\0' "${files[@]}" | xargs -0 -n 32 clang-format -i
  exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
printf '%s\0' "${files[@]}" | xargs -0 -n 32 clang-format --dry-run --Werror 2>"$log" || status=$?
if [ "$status" -ne 0 ]; then
  # One line per file, then the first diagnostics in full.
  grep -o '^[^:]*:[0-9]*:[0-9]*: error' "$log" | cut -d: -f1 | sort | uniq -c |
    awk '{print "  " $2 ": " $1 " place(s)"}'
  echo "check-format: $(grep -o '^[^:]*:[0-9]*:[0-9]*: error' "$log" | cut -d: -f1 | sort -u |
    wc -l) file(s) not formatted; first diagnostics:" >&2
  head -n 40 "$log" >&2
  echo "check-format: fix with scripts/check-format.sh --fix (clang-format 14)" >&2
  exit 1
fi
echo "check-format: every file is formatted"
