#!/usr/bin/env bash
# Builds everything and runs every test (unit and end-to-end) in one build
# tree, build/. Installs missing Debian packages first. Exit status is
# ctest's: 0 only if every test passed.
set -euo pipefail
# The trees it builds and installs must be writable by this user only:
# timerd refuses a plugin directory its group or others could write.
umask 022
cd "$(dirname "$0")/.."

./scripts/deps.sh
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$jobs"
ctest --test-dir build -j "$jobs" --output-on-failure --timeout 300
