#!/usr/bin/env bash
# Conformance: compiles the tt-metal adapter (integrations/tt-metal/src/adapter.cpp) against a
# real tt-metal source tree's public headers and the third-party headers that tree pins. Syntax
# only: nothing is linked and no tt-metal code is built. Not part of `make test` (it needs a
# tt-metal tree and the dependency mirrors, which CI does not have).
#
# Usage:
#   scripts/conformance.sh [options] [--file PROBE.cpp ...]
#
#   --src PATH       tt-metal source: either a checked-out tree (a directory with tt_metal/api;
#                    its umd submodule is used if checked out, else TT_UMD_COMMIT or the tree's git),
#                    or a git directory (bare or mirror, e.g. $TT_METAL_MIRRORS/<owner>+tt-metal/repo),
#                    from which --commit is exported. Default: $TT_METAL_SRC.
#   --commit REV     commit to export when --src is a git directory. Default: $TT_METAL_COMMIT or HEAD.
#   --deps DIR       where each dependency's headers are checked out, one directory per
#                    <name>@<commit>. Default: $TT_METAL_DEPS or build-conformance/deps.
#   --mirrors DIR    where the dependency git mirrors are: DIR/<owner>+<name>/repo.
#                    Default: $TT_METAL_MIRRORS, else ~/.cache/ttmem/mirrors.
#   --file F         compile F (a probe translation unit) instead of the default set; repeatable.
#                    The default set is scripts/conformance/headers_probe.cpp and adapter.cpp.
#   --internal       also put the tree's non-installed headers on the path (tt_metal/, the tree
#                    root): for probing what an in-tree build would see. Off by default: the
#                    adapter must build against the installed API (tt_metal/api) alone.
#   --print-flags    print the compiler flags (one per line) and exit; for use in other tools.
#   -h, --help       this text.
#
# Environment: CXX (default g++), CONFORMANCE_CXXFLAGS (extra flags, e.g. -DTTMEM_...=1).
#
# Dependency versions come from the tree itself: CPMAddPackage(...) calls in
# third_party/CMakeLists.txt (2026 trees) or dependencies/CMakeLists.txt, cmake/dependencies.cmake
# (older ones), and the tt_metal/third_party/umd submodule commit. Each is checked out from a
# mirror when the mirror has the pinned tag or commit; when it has not, the newest tag of the same
# major version (else the mirror's HEAD) is used and a NOTE says so. Fetch missing mirrors first
# (see docs/conformance.md).
#
# Include order: the project's own dirs (-I) first, then every dependency and the tt-metal API as
# -isystem, all of which GCC searches before /usr/include, so Debian's fmt 9 (/usr/include/fmt)
# is never reached. The script checks this with -H before compiling anything.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$ROOT/build-conformance"

SRC=${TT_METAL_SRC:-}
COMMIT=${TT_METAL_COMMIT:-HEAD}
DEPS=${TT_METAL_DEPS:-$BUILD/deps}
MIRRORS=${TT_METAL_MIRRORS:-${XDG_CACHE_HOME:-$HOME/.cache}/ttmem/mirrors}
CXX=${CXX:-g++}
FILES=()
INTERNAL=0
PRINT_FLAGS=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "conformance: $*" >&2; exit 2; }
note() { echo "conformance: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --src) SRC=$2; shift 2 ;;
    --commit) COMMIT=$2; shift 2 ;;
    --deps) DEPS=$2; shift 2 ;;
    --mirrors) MIRRORS=$2; shift 2 ;;
    --file) FILES+=("$(realpath "$2")"); shift 2 ;;
    --internal) INTERNAL=1; shift ;;
    --print-flags) PRINT_FLAGS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ -n "$SRC" ]] || die "no tt-metal source: pass --src PATH or set TT_METAL_SRC (see --help)"
mkdir -p "$DEPS"
DEPS=$(realpath "$DEPS")

# ---------------------------------------------------------------------------------------------
# 1. The tt-metal tree: a checked-out directory as is, or one commit exported from a git dir.
# ---------------------------------------------------------------------------------------------
UMD_COMMIT=${TT_UMD_COMMIT:-}
UMD_INCLUDE=""
if [[ -d "$SRC/tt_metal/api" ]]; then
  TREE=$(realpath "$SRC")
  TREE_LABEL="$TREE"
  # umd: a checked-out submodule is used as is; otherwise its pinned commit comes from a mirror.
  if [[ -d "$TREE/tt_metal/third_party/umd/device/api" ]]; then
    UMD_INCLUDE="$TREE/tt_metal/third_party/umd/device/api"
  elif [[ -z "$UMD_COMMIT" && -f "$TREE/.umd-commit" ]]; then
    UMD_COMMIT=$(cat "$TREE/.umd-commit")
  elif [[ -z "$UMD_COMMIT" ]] && git -C "$TREE" rev-parse --git-dir >/dev/null 2>&1; then
    UMD_COMMIT=$(git -C "$TREE" ls-tree HEAD tt_metal/third_party/umd | awk '{print $3}')
  fi
elif git --git-dir="$SRC" rev-parse --verify -q "$COMMIT^{commit}" >/dev/null; then
  sha=$(git --git-dir="$SRC" rev-parse "$COMMIT^{commit}")
  owner_name=$(basename "$(dirname "$(realpath "$SRC")")")  # <owner>+<name> in a mirror directory
  TREE="$BUILD/trees/$owner_name-${sha:0:12}"
  TREE_LABEL="$SRC @ ${sha:0:12} ($(git --git-dir="$SRC" log -1 --format=%ci "$sha"))"
  if [[ ! -f "$TREE/.exported" ]]; then
    note "exporting ${sha:0:12} from $SRC to $TREE"
    rm -rf "$TREE" && mkdir -p "$TREE"
    # Only what the headers and the pins need; paths absent in older trees are skipped.
    paths=()
    for p in tt_metal tt_stl third_party dependencies cmake CMakeLists.txt .gitmodules; do
      if [[ -n "$(git --git-dir="$SRC" ls-tree "$sha" "$p")" ]]; then paths+=("$p"); fi
    done
    # git archive names objects the snapshot lacks (LFS, files over 4 MiB) even outside these
    # paths; those messages are kept in .archive-errors, not shown.
    git --git-dir="$SRC" archive "$sha" "${paths[@]}" 2>"$TREE/.archive-errors" | tar -x -C "$TREE" ||
      { cat "$TREE/.archive-errors" >&2; die "exporting $sha failed"; }
    git --git-dir="$SRC" ls-tree "$sha" tt_metal/third_party/umd | awk '{print $3}' >"$TREE/.umd-commit"
    touch "$TREE/.exported"
  fi
  [[ -n "$UMD_COMMIT" ]] || UMD_COMMIT=$(cat "$TREE/.umd-commit")
else
  die "$SRC is neither a tt-metal tree (no tt_metal/api) nor a git directory with commit $COMMIT"
fi

# ---------------------------------------------------------------------------------------------
# 2. The pins: CPMAddPackage(NAME x ... GIT_TAG t | VERSION v) in the tree's dependency files.
# ---------------------------------------------------------------------------------------------
pin_files=()
for f in third_party/CMakeLists.txt dependencies/CMakeLists.txt cmake/dependencies.cmake; do
  [[ -f "$TREE/$f" ]] && pin_files+=("$TREE/$f")
done
[[ ${#pin_files[@]} -gt 0 ]] || die "no dependency pins found in $TREE"

# Prints "name<TAB>git_tag<TAB>version" per CPMAddPackage call (an empty field is "-").
read_pins() {
  sed 's/#.*//' "$@" | tr '\n' ' ' | grep -oiE 'CPMAddPackage *\([^)]*\)' |
    awk '{
      name = "-"; tag = "-"; ver = "-"
      gsub(/[()"]/, " ")
      for (i = 1; i <= NF; i++) {
        if ($i == "NAME" && name == "-") name = $(i + 1)
        else if ($i == "GIT_TAG" && tag == "-") tag = $(i + 1)
        else if ($i == "VERSION" && ver == "-") ver = $(i + 1)
      }
      print name "\t" tag "\t" ver
    }'
}
PINS=$(read_pins "${pin_files[@]}")
pin_of() { awk -F'\t' -v n="$1" '$1 == n { print $2 "\t" $3; exit }' <<<"$PINS"; }

# ---------------------------------------------------------------------------------------------
# 3. Check each dependency out of a mirror at its pin (or the nearest the mirrors have).
# ---------------------------------------------------------------------------------------------
# name | mirrors to try, in order | include dir inside the checkout | how it is pinned
DEP_TABLE=(
  "fmt|fmtlib+fmt|include|cpm"
  "spdlog|gabime+spdlog GerHobbelt+spdlog chenrui333+spdlog|include|cpm"
  "tt-logger|tenstorrent+tt-logger blozano-tt+tt-logger|include|cpm"
  "reflect|boost-ext+reflect|.|cpm"
  "enchantum|ZXShady+enchantum|enchantum/include|cpm"
  "magic_enum|Neargye+magic_enum|include|cpm-optional"
  "nlohmann_json|nlohmann+json|include|cpm"
  "umd|tenstorrent+tt-umd|device/api|submodule"
)

SUMMARY=()
ISYSTEM=()

# resolve MIRROR REF...: prints the commit of the first REF the mirror has.
resolve() {
  local m=$1 r
  shift
  for r in "$@"; do
    [[ -n "$r" && "$r" != "-" ]] || continue
    if git --git-dir="$m" rev-parse --verify -q "$r^{commit}" 2>/dev/null; then return 0; fi
  done
  return 1
}

for row in "${DEP_TABLE[@]}"; do
  IFS='|' read -r name mirrors incdir kind <<<"$row"
  if [[ $kind == submodule ]]; then
    if [[ -n "$UMD_INCLUDE" ]]; then
      ISYSTEM+=("$UMD_INCLUDE")
      SUMMARY+=("$(printf '%-14s %-40s %s' "$name" "(checked-out submodule)" "$UMD_INCLUDE")")
      continue
    fi
    tag=$UMD_COMMIT ver=-
    [[ -n "$tag" ]] || die "no umd commit known: set TT_UMD_COMMIT, or check out the umd submodule"
  else
    pin=$(pin_of "$name")
    if [[ -z "$pin" ]]; then
      [[ $kind == cpm-optional ]] && continue
      die "$name is not pinned in ${pin_files[*]}"
    fi
    IFS=$'\t' read -r tag ver <<<"$pin"
  fi
  # A CPM VERSION x.y.z is fetched as tag vx.y.z; GIT_TAG wins when both are given.
  wanted=("$tag" "v${tag#v}" "$ver" "v$ver")
  [[ $tag == - ]] && wanted=("v$ver" "$ver")
  pinned_label=$([[ $tag != - ]] && echo "$tag" || echo "$ver")

  sha="" used_mirror="" used_ref=""
  for mname in $mirrors; do
    m="$MIRRORS/$mname/repo"
    [[ -d "$m" ]] || continue
    if sha=$(resolve "$m" "${wanted[@]}"); then used_mirror=$mname used_ref=$pinned_label; break; fi
    sha=""
  done
  if [[ -z "$sha" ]]; then
    # Fall back: the newest tag with the pin's major version in the first mirror present, else HEAD.
    for mname in $mirrors; do
      m="$MIRRORS/$mname/repo"
      [[ -d "$m" ]] || continue
      major=$(sed -E 's/^v?([0-9]+).*/\1/' <<<"$pinned_label")
      fallback=$(git --git-dir="$m" tag -l | grep -E "^v?$major\." | sort -V | tail -1 || true)
      [[ $pinned_label =~ ^[0-9a-f]{40}$ || -z "$fallback" ]] && fallback=HEAD
      sha=$(git --git-dir="$m" rev-parse "$fallback^{commit}")
      used_mirror=$mname used_ref="$fallback (NOT the pinned $pinned_label)"
      note "NOTE: $name $pinned_label is in none of [$mirrors]; using $mname $fallback"
      break
    done
  fi
  [[ -n "$sha" ]] || die "no mirror of $name under $MIRRORS (tried: $mirrors); fetch one first"

  dir="$DEPS/$name@${sha:0:12}"
  if [[ ! -f "$dir/.checked-out" ]]; then
    rm -rf "$dir" && mkdir -p "$dir"
    git --git-dir="$MIRRORS/$used_mirror/repo" archive "$sha" | tar -x -C "$dir"
    touch "$dir/.checked-out"
  fi
  [[ -d "$dir/$incdir" ]] || die "$name: $dir/$incdir does not exist"
  ISYSTEM+=("$dir/$incdir")
  date=$(git --git-dir="$MIRRORS/$used_mirror/repo" log -1 --format=%cs "$sha")
  SUMMARY+=("$(printf '%-14s %-40s %-22s %s %s' "$name" "$used_ref" "$used_mirror" "${sha:0:12}" "$date")")
done

# The tt-metal API itself, after its dependencies (as the installed package orders them).
ISYSTEM+=("$TREE/tt_metal/api" "$TREE/tt_stl" "$TREE/tt_metal/hostdevcommon/api")
if [[ $INTERNAL == 1 ]]; then ISYSTEM+=("$TREE/tt_metal" "$TREE"); fi

# The definitions the installed targets carry: fmt::fmt-header-only, spdlog::spdlog_header_only
# with SPDLOG_FMT_EXTERNAL_HO, and reflect's NTEST where the tree sets it.
# TTMEM_CONFORMANCE=1 lets the adapter add checks that only make sense against real headers
# (e.g. static_assert that a requires-expression it relies on holds).
DEFINES=(-DFMT_HEADER_ONLY=1 -DSPDLOG_HEADER_ONLY -DSPDLOG_FMT_EXTERNAL -DTTMEM_CONFORMANCE=1)
if grep -q 'NTEST' "${pin_files[@]}"; then DEFINES+=(-DNTEST); fi

PROJECT_INCLUDES=(-I"$ROOT/include" -I"$ROOT/integrations/tt-metal/include" -I"$ROOT/src")
# The project's own warning set (CMakeLists.txt TTMEM_WARNINGS, with -Werror).
WARNINGS=(-Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wno-missing-field-initializers -Werror)
BASE=(-std=c++20 "${PROJECT_INCLUDES[@]}")
for d in "${ISYSTEM[@]}"; do BASE+=(-isystem "$d"); done
BASE+=("${DEFINES[@]}")
# shellcheck disable=SC2206  # word splitting of the user's extra flags is intended
EXTRA=(${CONFORMANCE_CXXFLAGS:-})

if [[ $PRINT_FLAGS == 1 ]]; then
  printf '%s\n' "${BASE[@]}" "${WARNINGS[@]}" "${EXTRA[@]}"
  exit 0
fi

echo "tt-metal tree: $TREE_LABEL"
echo "dependencies (name, ref, mirror, commit, date):"
printf '  %s\n' "${SUMMARY[@]}"

# ---------------------------------------------------------------------------------------------
# 4. Include order check: <fmt/base.h> must come from the pinned fmt, never /usr/include.
# ---------------------------------------------------------------------------------------------
LOGS="$BUILD/logs/$(basename "$TREE")"
mkdir -p "$LOGS"
fmt_seen=$(printf '#include <fmt/base.h>\nstatic_assert(FMT_VERSION >= 110000, "fmt >= 11");\n' |
  "$CXX" "${BASE[@]}" -x c++ -fsyntax-only -H - 2>&1 | grep -m1 'fmt/base.h' || true)
case "$fmt_seen" in
  *"$DEPS"/fmt@*) echo "include order: fmt/base.h from ${fmt_seen#*. }" ;;
  *) die "include order: <fmt/base.h> did not resolve to the pinned fmt under $DEPS: '$fmt_seen'" ;;
esac

# ---------------------------------------------------------------------------------------------
# 5. The files: the adapter probes tt-metal's declarations itself (requires-expressions), so
#    nothing is defined here beyond TTMEM_CONFORMANCE.
# ---------------------------------------------------------------------------------------------
if [[ ${#FILES[@]} -eq 0 ]]; then
  FILES=("$ROOT/scripts/conformance/headers_probe.cpp" "$ROOT/integrations/tt-metal/src/adapter.cpp")
fi

# ---------------------------------------------------------------------------------------------
# 6. Compile each file, syntax only. Full diagnostics go to the log; the first errors are shown.
# ---------------------------------------------------------------------------------------------
failed=0
for f in "${FILES[@]}"; do
  log="$LOGS/$(basename "$f").log"
  if "$CXX" "${BASE[@]}" "${WARNINGS[@]}" "${EXTRA[@]}" -fsyntax-only "$f" >"$log" 2>&1; then
    echo "PASS  $f"
  else
    failed=1
    echo "FAIL  $f ($(grep -c 'error:' "$log") errors; full log: $log)"
    grep -m 12 -E 'error:|required from here' "$log" | sed 's/^/      /'
  fi
done
exit $failed
