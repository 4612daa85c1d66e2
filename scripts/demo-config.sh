#!/usr/bin/env bash
# The demo of scripts/run.sh: two transfer endpoints, so that `timer job
# transfer` works at once. tests/e2e/demo_e2e_test.cc runs this same script.
#
#   scripts/demo-config.sh DATA_DIR IDENTITY
#       Makes DATA_DIR/demo/source (with hello.txt) and DATA_DIR/demo/dest,
#       and, unless it exists, DATA_DIR/timerd.toml configuring them as two
#       transfer endpoints with fixed ids that IDENTITY may use. Prints the
#       config file's path. A config file already there (the user's own, or
#       one they edited) is kept as it is, and so is hello.txt.
#   scripts/demo-config.sh --example DATA_DIR
#       Prints the `timer job transfer` command that copies hello.txt from
#       the source endpoint to the destination once, if DATA_DIR/timerd.toml
#       configures the demo endpoints; nothing otherwise.
set -euo pipefail
umask 077  # As timerd's data directory: private to its user.

source_id=de3a0000-5e7d-4c0e-8a11-000000000001
dest_id=de3a0000-5e7d-4c0e-8a11-000000000002

usage() {
  echo "usage: $0 DATA_DIR IDENTITY | $0 --example DATA_DIR" >&2
  exit 2
}

if [ "${1:-}" = "--example" ]; then
  [ $# -eq 2 ] || usage
  if grep -qs "^id = \"$source_id\"" "$2/timerd.toml"; then
    echo "timer job transfer --name demo-copy --interval 1h --stop-after-runs 1" \
      "--source-endpoint $source_id --dest-endpoint $dest_id --item hello.txt hello.txt false"
  fi
  exit 0
fi

[ $# -eq 2 ] && [ -n "$1" ] && [ -n "$2" ] || usage
mkdir -p "$1"
data_dir=$(cd "$1" && pwd)  # The provider wants absolute roots.
identity=$2
# Both go into TOML strings as they are.
case "$data_dir$identity" in
  *[\"\\]*) echo "$0: DATA_DIR and IDENTITY must not contain \" or \\" >&2; exit 2 ;;
esac

mkdir -p "$data_dir/demo/source" "$data_dir/demo/dest"
if [ ! -e "$data_dir/demo/source/hello.txt" ]; then
  printf 'Hello from the Timer Service demo: this file was copied from\ndemo/source to demo/dest by a transfer job.\n' \
    >"$data_dir/demo/source/hello.txt"
fi

config="$data_dir/timerd.toml"
if [ ! -e "$config" ]; then
  cat >"$config.tmp" <<TOML
# timerd's configuration, written by scripts/run.sh (scripts/demo-config.sh)
# on its first run; run.sh keeps it from then on. Every key, its default and
# range: \`timerd config reference\`, or docs/DEPLOYMENT.md.

# Two demo transfer endpoints: folders of the data directory.
[[plugins.transfer.endpoints]]
id = "$source_id"
display_name = "demo-source"
root = "$data_dir/demo/source"
allowed_identities = ["$identity"]

[[plugins.transfer.endpoints]]
id = "$dest_id"
display_name = "demo-dest"
root = "$data_dir/demo/dest"
allowed_identities = ["$identity"]
TOML
  mv "$config.tmp" "$config"
fi
echo "$config"
