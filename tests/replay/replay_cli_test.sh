#!/usr/bin/env bash
# ttmem replay / advise end to end: record simulated failures, let advise propose a
# configuration, and check that replay under it passes; bad input gets one line and exit 2.
# Usage: replay_cli_test.sh TTMEM GOLDEN_DIR
set -uo pipefail
TTMEM=$1
GOLDEN=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export TTMEM_DIR=$work/segments
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect_exit CODE CMD...: runs CMD, stdout to out.txt, stderr to err.txt.
expect_exit() {
  local want=$1
  shift
  "$@" >out.txt 2>err.txt
  local got=$?
  [ "$got" = "$want" ] || fail "$* exited $got, expected $want: $(cat err.txt)"
}

# One line of stderr, for bad input.
expect_one_line() {
  [ "$(wc -l <err.txt)" = 1 ] || fail "$1: expected one line on stderr, got: $(cat err.txt)"
}

json_field() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }

# --- oom: the recording fits its own n150; advise's proposal replays cleanly -----------------
expect_exit 3 "$TTMEM" record -o oom.rec -- "$TTMEM" sim oom --speed 0 --seed 1
expect_exit 0 "$TTMEM" advise oom.rec --json
cp out.txt oom_advice.json
[ "$(json_field oom_advice.json 'd["proposal"]["passes"]')" = True ] || fail "oom: proposal fails"
read -r -a args < <(json_field oom_advice.json '" ".join(d["proposal"]["args"])')
expect_exit 0 "$TTMEM" replay oom.rec "${args[@]}"
grep -q '^result: passes' out.txt || fail "oom: replay under the proposal: $(cat out.txt)"
# A trace region of 100,000,000 B per bank leaves less DRAM than the run holds: exhaustion.
expect_exit 3 "$TTMEM" replay oom.rec --trace-region-size 100000000 --trace-mode per-bank
grep -q '^ttmem: Out of Memory: Not enough space to allocate' err.txt || fail "oom: $(cat err.txt)"
grep -q '^answer: exhaustion: DRAM needs' err.txt || fail "oom answer: $(cat err.txt)"
grep -q 'biggest holders: kv_cache' err.txt || fail "oom holders: $(cat err.txt)"

# --- l1-small-clash: replay reproduces tt-metal's text; advise's l1_small_size passes --------
expect_exit 3 "$TTMEM" record -o clash.rec -- "$TTMEM" sim l1-small-clash --speed 0 --seed 1
expect_exit 3 "$TTMEM" sim l1-small-clash --speed 0 --seed 1 --dir "$work/sim2"
sim_text=$(grep '^Statically allocated' err.txt)
expect_exit 3 "$TTMEM" replay clash.rec
[ "$(grep '^ttmem: ' err.txt | sed 's/^ttmem: //')" = "$sim_text" ] ||
  fail "clash: replay text differs from the run's: $(cat err.txt) vs $sim_text"
expect_exit 0 "$TTMEM" advise clash.rec
if [ "${TTMEM_UPDATE_GOLDEN:-}" = 1 ]; then
  cp out.txt "$GOLDEN/advise_l1_small_clash.txt"
else
  diff -u "$GOLDEN/advise_l1_small_clash.txt" out.txt || fail "advise text differs from golden"
fi
expect_exit 0 "$TTMEM" advise clash.rec --json
cp out.txt clash_advice.json
max=$(json_field clash_advice.json 'd["l1_small_size"]["max"]')
recorded=$(json_field clash_advice.json 'd["recorded"]["l1_small_size"]')
[ "$max" != None ] && [ "$max" -lt "$recorded" ] ||
  fail "clash: advised l1_small_size max $max is not below the recorded $recorded"
read -r -a args < <(json_field clash_advice.json '" ".join(d["proposal"]["args"])')
expect_exit 0 "$TTMEM" replay clash.rec "${args[@]}"
# One alignment step above the advised maximum clashes again.
expect_exit 3 "$TTMEM" replay clash.rec --l1-small-size $((max + 32))

# --- cb-clash: no l1_small_size can avoid it; advise says which program to shave ------------
expect_exit 3 "$TTMEM" record -o unet.rec -- "$TTMEM" sim cb-clash --speed 0 --seed 1
expect_exit 0 "$TTMEM" advise unet.rec --json
[ "$(json_field out.txt 'd["l1_small_size"]["range_empty"]')" = True ] || fail "cb-clash range"
[ "$(json_field out.txt 'd["clash"]["bytes_over"] > 32768')" = True ] || fail "cb-clash over"

# --- bad input: one line, exit 2 ------------------------------------------------------------
head -c 100 oom.rec >cut.rec
expect_exit 2 "$TTMEM" replay cut.rec
expect_one_line "cut recording"
echo "not a recording" >text.rec
expect_exit 2 "$TTMEM" advise text.rec
expect_one_line "text file"
expect_exit 2 "$TTMEM" replay missing.rec
expect_one_line "missing file"
expect_exit 2 "$TTMEM" replay oom.rec --l1-small-size 2000000
expect_one_line "l1_small_size larger than L1"
expect_exit 2 "$TTMEM" replay oom.rec --dispatch ethernet
expect_one_line "n150 has no ethernet dispatch"
expect_exit 2 "$TTMEM" replay oom.rec --device-type n999
expect_one_line "unknown product"
expect_exit 2 "$TTMEM" replay oom.rec --messages 2023
expect_one_line "unknown vintage"

[ "$failures" = 0 ] && echo "all replay CLI checks passed"
exit $((failures > 0))
