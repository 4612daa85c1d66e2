#!/usr/bin/env bash
# Installs the Debian 12 packages Timer Service builds and tests with, if any
# is missing. Safe to run again: it does nothing when all are present.
# Arguments name further packages a caller needs (scripts/bazel-test.sh:
# bazel-bootstrap).
set -euo pipefail

PACKAGES=(
  clang                   # the compiler of scripts/run.sh and scripts/test.sh (README, "Compilers")
  g++ cmake ninja-build pkg-config ccache tzdata   # g++: the ThreadSanitizer tree
  lld                     # the linker (CMakeLists.txt, TIMER_USE_LLD)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libssl-dev libsqlite3-dev
  libpq-dev               # the PostgreSQL store (services/timerd/store/postgres_store.h)
  postgresql              # its tests start throwaway clusters (tests/support/pg_cluster.h)
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libjemalloc-dev         # timerd's allocator (docs/PERFORMANCE-HISTORY.md, "Fourth round")
  zsh                     # the completion tests check the zsh script with zsh -n
  openssl                 # the TLS end-to-end tests make their CA with it
  curl                    # the HTTP and Prometheus end-to-end tests' client
  jq                      # the token in the curl line scripts/run.sh prints
  golang-github-gogo-googleapis-dev  # google/api/annotations.proto, google/rpc/status.proto (proto/CMakeLists.txt)
  libboost1.81-dev        # Boost.Beast/Asio, header-only: timerd's HTTP listener (services/timerd/api/http/)
  libcurl4-openssl-dev    # S3 endpoints of the transfer provider (plugins/transfer/s3_fs.h),
                          # the http provider (plugins/http) and job notifications
  python3                 # tests/support/http_echo_server.py, the HTTP server the http
                          # provider and notification tests call
  libpugixml-dev          # their XML replies
  libssh-dev              # SFTP endpoints of the transfer provider (plugins/transfer/sftp_fs.h)
  openssh-server          # their tests start a throwaway sshd (tests/support/sshd_server.h)
  prometheus              # promtool tests the shipped alert rules (tests/prometheus/); the
                          # Prometheus end-to-end test scrapes timerd with it
  chromium                # the web view's browser test (tests/web/) drives it headless;
                          # as root it must run with --no-sandbox (tests/web/browser.mjs)
  "$@"
)
# Their tests run s3rver (tests/support/s3_server.h) on Node.js; a Node.js
# already installed (with its npm) is used as it is.
if ! command -v npm >/dev/null; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node packages pinned by a package-lock.json, into that folder's
# node_modules (again when the lock file changed): s3rver
# (tests/support/s3/), and puppeteer-core and axe-core for the web view's
# browser test (tests/web/; puppeteer-core downloads no browser, the test
# uses Debian's chromium).
npm_ci() {  # npm_ci <dir under the repository> <a file npm ci puts in node_modules>
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/$1"
  if [ ! -f "$dir/node_modules/$2" ] ||
     [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "Installing $1's node modules (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
install_node_modules() {
  npm_ci tests/support/s3 s3rver/bin/s3rver.js
  npm_ci tests/web puppeteer-core/package.json
}

if [ ${#missing[@]} -eq 0 ]; then
  install_node_modules
  exit 0
fi

echo "Installing: ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install packages" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_node_modules
