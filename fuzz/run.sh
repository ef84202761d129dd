#!/usr/bin/env bash
# Runs each fuzz target for a bounded time, one after another, over a scratch copy of its seed
# corpus and regression inputs (the committed corpus never changes). Fails if any target finds
# a failing input; those are kept under BUILD_DIR/artifacts/ for `fuzz_replay_*` or a rerun:
#   BUILD_DIR/fuzz/fuzz_NAME BUILD_DIR/artifacts/NAME-crash-...
#
#   fuzz/run.sh BUILD_DIR SECONDS [NAME...]      (default: every target)
set -euo pipefail

build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(segment recording legacy http_query http_response tt_metal_region json_reader)

artifacts="$build/artifacts"
mkdir -p "$artifacts"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ttmem-fuzz-corpus-XXXXXX")
trap 'rm -rf "$scratch"' EXIT

failed=()
for name in "${names[@]}"; do
  work="$scratch/$name"
  mkdir -p "$work"
  cp "$here/corpus/$name/"* "$work/"
  [[ -d "$here/regressions/$name" ]] && cp "$here/regressions/$name/"* "$work/"
  args=(-max_total_time="$seconds" -timeout=25 -print_final_stats=1
        -artifact_prefix="$artifacts/$name-")
  [[ -f "$here/dict/$name.dict" ]] && args+=(-dict="$here/dict/$name.dict")
  echo "fuzz_$name: ${seconds}s"
  if ! "$build/fuzz/fuzz_$name" "${args[@]}" "$work" >"$artifacts/$name.log" 2>&1; then
    failed+=("$name")
    tail -n 40 "$artifacts/$name.log"
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added)' "$artifacts/$name.log" |
    sed "s/^/  /" || true
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzzing found failing inputs in: ${failed[*]} (see $artifacts/)" >&2
  exit 1
fi
echo "fuzzing: no failures"
