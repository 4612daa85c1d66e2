#!/usr/bin/env bash
# Checks that the Bazel build (bazel-compat/) has the CMake build's targets
# and tests, one for one and under the same names. Exits 1, listing what is
# wrong, when:
#   - a CMake target has no Bazel target of its name, or one of the wrong kind
#     (library -> cc_library, executable -> cc_binary, test executable ->
#     a *_test rule, module -> a shared-object cc_binary or an alias of one);
#   - a CTest test that is not a GoogleTest executable (e2e_install) has no
#     Bazel target of its name;
#   - a Bazel target in //:  has no CMake counterpart. Exempt: the rule an
#     alias names (the module built under its output file name) and the
#     protoc genrule <proto library>_gen.
#
# The CMake side comes from a fresh configure (no build) in a temporary
# directory: its targets from CMake's file API (codemodel-v2) plus the
# INTERFACE libraries, which CMake 3.25 leaves out of the file API; its tests
# from `ctest -N` (a gtest_discover_tests executable shows there as
# <target>_NOT_BUILT until built). The Bazel side comes from `bazel query`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

./scripts/deps.sh bazel-bootstrap

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
build="$tmp/build"

# --- CMake: targets and tests ------------------------------------------------
mkdir -p "$build/.cmake/api/v1/query"
touch "$build/.cmake/api/v1/query/codemodel-v2" "$build/.cmake/api/v1/query/cmakeFiles-v1"
if ! cmake -S "$root" -B "$build" -G Ninja >"$tmp/configure.log" 2>&1; then
  cat "$tmp/configure.log" >&2
  echo "check-bazel-parity: CMake configure failed" >&2
  exit 1
fi

cat >"$tmp/targets.cmake" <<'CMAKE'
# Writes "<TYPE> <name>" for every target in the codemodel reply to OUT, and
# the project's own CMake files (cmakeFiles reply) to FILES.
file(GLOB index "${REPLY}/index-*.json")
list(GET index -1 index)
file(READ "${index}" text)
string(JSON files_file GET "${text}" reply cmakeFiles-v1 jsonFile)
file(READ "${REPLY}/${files_file}" files)
string(JSON count LENGTH "${files}" inputs)
file(WRITE "${FILES}" "")
math(EXPR last "${count} - 1")
foreach(i RANGE ${last})
  string(JSON input GET "${files}" inputs ${i})
  string(JSON path GET "${input}" path)
  string(JSON external ERROR_VARIABLE none GET "${input}" isExternal)
  string(JSON generated ERROR_VARIABLE none GET "${input}" isGenerated)
  if(NOT external AND NOT generated)
    file(APPEND "${FILES}" "${path}\n")
  endif()
endforeach()
string(JSON model_file GET "${text}" reply codemodel-v2 jsonFile)
file(READ "${REPLY}/${model_file}" model)
string(JSON count LENGTH "${model}" configurations 0 targets)
file(WRITE "${OUT}" "")
if(count GREATER 0)
  math(EXPR last "${count} - 1")
  foreach(i RANGE ${last})
    string(JSON name GET "${model}" configurations 0 targets ${i} name)
    string(JSON target_file GET "${model}" configurations 0 targets ${i} jsonFile)
    file(READ "${REPLY}/${target_file}" target)
    string(JSON type GET "${target}" type)
    file(APPEND "${OUT}" "${type} ${name}\n")
  endforeach()
endif()
CMAKE
cmake -DREPLY="$build/.cmake/api/v1/reply" -DOUT="$tmp/cmake-targets" \
  -DFILES="$tmp/cmake-files" -P "$tmp/targets.cmake"

# INTERFACE libraries (header-only targets such as timer_ap_abi), from the
# project's CMake files that the configure read.
(cd "$root" && tr '\n' '\0' <"$tmp/cmake-files" | xargs -0 cat) |
  grep -oP 'add_library\(\s*\K[A-Za-z0-9_.+-]+(?=\s+INTERFACE\b)' |
  sed 's/^/INTERFACE_LIBRARY /' >>"$tmp/cmake-targets" || true
sort -u -k2,2 -o "$tmp/cmake-targets" "$tmp/cmake-targets"

ctest --test-dir "$build" -N 2>/dev/null |
  sed -nE 's/^ *Test +#[0-9]+: (.*)$/\1/p' >"$tmp/cmake-tests"

declare -A cmake_type=() test_exe=() plain_test=()
while read -r type name; do cmake_type[$name]=$type; done <"$tmp/cmake-targets"
while read -r name; do
  if [[ $name == *_NOT_BUILT ]]; then
    test_exe[${name%_NOT_BUILT}]=1
  else
    plain_test[$name]=1
  fi
done <"$tmp/cmake-tests"
for name in "${!cmake_type[@]}"; do
  [[ ${cmake_type[$name]} == EXECUTABLE && $name == *_test ]] && test_exe[$name]=1
done

# --- Bazel: rules of the root package -----------------------------------------
cd "$root/bazel-compat"
bazel query --noshow_progress 'kind(rule, //:*)' --output=label_kind \
  >"$tmp/bazel-rules" 2>"$tmp/query.log" || { cat "$tmp/query.log" >&2; exit 1; }
bazel query --noshow_progress 'labels(actual, kind(alias, //:*))' \
  >"$tmp/bazel-aliased" 2>"$tmp/query.log" || { cat "$tmp/query.log" >&2; exit 1; }

declare -A bazel_kind=() aliased=()
while read -r kind _ label; do bazel_kind[${label#//:}]=$kind; done <"$tmp/bazel-rules"
while read -r label; do aliased[${label#//:}]=1; done <"$tmp/bazel-aliased"

# --- Compare ------------------------------------------------------------------
problems=()
expect() {  # expect NAME WHAT KIND-REGEX
  local kind=${bazel_kind[$1]:-}
  if [ -z "$kind" ]; then
    problems+=("CMake $2 $1 has no Bazel target //:$1")
  elif ! [[ $kind =~ ^($3)$ ]]; then
    problems+=("CMake $2 $1 is a $kind in Bazel, expected ${3//|/ or }")
  fi
}

for name in "${!cmake_type[@]}"; do
  case ${cmake_type[$name]} in
    STATIC_LIBRARY|SHARED_LIBRARY|OBJECT_LIBRARY|INTERFACE_LIBRARY)
      expect "$name" "library" "cc_library" ;;
    MODULE_LIBRARY)
      expect "$name" "module" "cc_binary|alias" ;;
    EXECUTABLE)
      if [ -n "${test_exe[$name]:-}" ]; then
        expect "$name" "test" "[a-z_]+_test"
      else
        expect "$name" "executable" "cc_binary"
      fi ;;
    *)
      expect "$name" "target" "[a-z_]+" ;;
  esac
done
for name in "${!test_exe[@]}"; do
  [ -n "${cmake_type[$name]:-}" ] || expect "$name" "test" "[a-z_]+_test"
done
for name in "${!plain_test[@]}"; do
  # unit.<test>.postgres: the PostgreSQL cases of the test executable <test>
  # in one process (timer_unit_test PG); unit.<test>.server: all its cases
  # in one process (SERVER). Bazel runs <test> whole anyway.
  if [[ $name =~ ^unit\.([a-z0-9_]+_test)\.(postgres|server)$ ]] && [ -n "${test_exe[${BASH_REMATCH[1]}]:-}" ]; then
    expect "${BASH_REMATCH[1]}" "test" "[a-z_]+_test"
    continue
  fi
  expect "$name" "test" "[a-z_]+"
done

for name in "${!bazel_kind[@]}"; do
  [ -n "${cmake_type[$name]:-}${test_exe[$name]:-}${plain_test[$name]:-}" ] && continue
  [ -n "${aliased[$name]:-}" ] && continue
  if [[ ${bazel_kind[$name]} == genrule && $name == *_gen ]] &&
     [ -n "${cmake_type[${name%_gen}]:-}" ]; then
    continue
  fi
  problems+=("Bazel ${bazel_kind[$name]} //:$name has no CMake target or test of that name")
done

if [ ${#problems[@]} -gt 0 ]; then
  printf 'check-bazel-parity: %s\n' "${problems[@]}" | sort >&2
  echo "check-bazel-parity: FAILED (${#problems[@]} problems); see bazel-compat/BUILD.bazel" >&2
  exit 1
fi
echo "check-bazel-parity: ${#cmake_type[@]} CMake targets and" \
  "$(( ${#test_exe[@]} + ${#plain_test[@]} )) tests all have Bazel counterparts of the same name"
