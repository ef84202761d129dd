#!/usr/bin/env bash
# make demo: an 8-device tracked workload runs in the background while `ttmem top` watches it.
#
# On a terminal the live monitor runs in this terminal and ends by itself a moment after the
# workload has finished (or at once on q / Ctrl-C). Elsewhere (CI, a pipe) it prints a snapshot
# a second while the workload runs, then exits 0.
#
# The workload is ttmem_testload: 8 devices, a phase of allocations and frees every second, and
# at the end everything freed. TTMEM_DEMO_SECONDS sets how many phases (default 20).
set -euo pipefail
build=${1:-build}
ttmem="$build/src/cli/ttmem"
load_bin="$build/tests/integration/ttmem_testload"
seconds=${TTMEM_DEMO_SECONDS:-20}
for f in "$ttmem" "$load_bin"; do
  [[ -x "$f" ]] || { echo "demo: $f is missing; run 'make build' first" >&2; exit 1; }
done
if [[ -z "${TTMEM_DIR:-}" ]]; then
  TTMEM_DIR=$(mktemp -d /tmp/ttmem-demo-XXXXXX)
  own_dir=1
fi
export TTMEM_DIR

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n "${own_dir:-}" ]] && rm -rf "$TTMEM_DIR"
  return 0
}
trap cleanup EXIT

# One line a second moves the workload to its next phase; "free" frees everything and ends it.
pace() {
  for ((i = 1; i < seconds; i++)); do sleep 1; echo; done
  sleep 1
  echo free
}
pace | "$load_bin" --devices 8 --threads 2 --ops 600 --phases "$seconds" --seed 1 \
  --truth "$TTMEM_DIR/truth" >/dev/null &
load=$!
pids+=("$load")
sleep 0.5  # let the workload register its devices before the first snapshot

if [[ -t 0 && -t 1 ]]; then
  # Without job control a background command reads /dev/null unless told otherwise: hand the
  # monitor this terminal, and stop it (SIGTERM: it restores the terminal) after the workload.
  exec 3<&0
  "$ttmem" top -r 500 <&3 &
  top=$!
  pids+=("$top")
  ( while kill -0 "$load" 2>/dev/null; do sleep 0.5; done; sleep 2; kill -TERM "$top" 2>/dev/null ) &
  pids+=("$!")
  wait "$top" || true
  echo "demo: ended; segment directory was $TTMEM_DIR"
else
  "$ttmem" top --count "$((seconds + 1))" -r 1000 --width 120
  wait "$load"
fi
