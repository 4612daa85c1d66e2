#!/usr/bin/env bash
# Installs the Debian 12 packages Timer Service builds and tests with, if any
# is missing. Safe to run again: it does nothing when all are present.
# Arguments name further packages a caller needs (scripts/bazel-test.sh:
# bazel-bootstrap).
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build pkg-config ccache tzdata
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libssl-dev libsqlite3-dev
  libpq-dev               # the PostgreSQL store (services/timerd/store/postgres_store.h)
  postgresql              # its tests start throwaway clusters (tests/support/pg_cluster.h)
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libjemalloc-dev         # timerd's allocator (docs/PERFORMANCE-HISTORY.md, "Fourth round")
  zsh                     # the completion tests check the zsh script with zsh -n
  openssl                 # the TLS end-to-end tests make their CA with it
  libssh-dev              # SFTP endpoints of the transfer provider (plugins/transfer/sftp_fs.h)
  openssh-server          # their tests start a throwaway sshd (tests/support/sshd_server.h)
  "$@"
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing: ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install packages" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
