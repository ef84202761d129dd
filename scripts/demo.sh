#!/usr/bin/env bash
# make demo: a tracked program runs in the background while ttmem shows what it holds.
set -euo pipefail
build=${1:-build}
ttmem="$build/src/cli/ttmem"
export TTMEM_DIR=${TTMEM_DIR:-$(mktemp -d /tmp/ttmem-demo-XXXXXX)}

"$build/examples/ttmem_example_basic" 4 &
app=$!
sleep 0.5
echo "== ttmem status"
"$ttmem" status
echo
echo "== ttmem buffers --sort size"
"$ttmem" buffers --sort size
wait "$app"
echo
echo "== after the program exited"
"$ttmem" status
