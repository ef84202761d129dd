#!/usr/bin/env bash
# make demo: `ttmem sim llama-decode` (Llama-3.1-8B decode, tensor parallel over an 8-chip T3K)
# runs in the background while `ttmem top` watches it.
#
# On a terminal the live monitor runs in this terminal and ends by itself a moment after the
# simulation has finished (or at once on q / Ctrl-C). Elsewhere (CI, a pipe) it prints a
# snapshot a second while the simulation runs, then exits 0.
#
# TTMEM_DEMO_SPEED sets the simulation's time multiplier (default 1: about 35 s).
set -euo pipefail
build=${1:-build}
ttmem="$build/src/cli/ttmem"
speed=${TTMEM_DEMO_SPEED:-1}
[[ -x "$ttmem" ]] || { echo "demo: $ttmem is missing; run 'make build' first" >&2; exit 1; }
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

# The simulation's narration goes to a log: the monitor owns the terminal.
log="$TTMEM_DIR/sim.log"
"$ttmem" sim llama-decode --speed "$speed" --hold 2 >"$log" 2>&1 </dev/null &
sim=$!
pids+=("$sim")
sleep 0.5  # let the simulation register its devices before the first snapshot

if [[ -t 0 && -t 1 ]]; then
  # Without job control a background command reads /dev/null unless told otherwise: hand the
  # monitor this terminal, and stop it (SIGTERM: it restores the terminal) after the simulation.
  exec 3<&0
  "$ttmem" top -r 500 <&3 &
  top=$!
  pids+=("$top")
  ( while kill -0 "$sim" 2>/dev/null; do sleep 0.5; done; sleep 1; kill -TERM "$top" 2>/dev/null ) &
  pids+=("$!")
  wait "$top" || true
  echo "demo: ended. The simulation said:"
  tail -n 5 "$log"
else
  # A snapshot a second until the simulation ends; SIGTERM ends --count cleanly (exit 0).
  "$ttmem" top --count 1000000 -r 1000 --width 120 &
  top=$!
  pids+=("$top")
  status=0
  wait "$sim" || status=$?
  kill -TERM "$top"
  wait "$top"
  cat "$log"
  exit "$status"
fi
