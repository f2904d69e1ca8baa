#!/bin/bash
# docs/demo.sh — `make demo`: record the bugparse guest with the input that
# corrupts its memory, then answer "who wrote this?" with gdb going
# backwards: break where the corruption is noticed, watch the corrupted
# variable, reverse-continue to the write.  Needs /dev/kvm (to record) and
# gdb.  TTVM_DEMO_TRACE=DIR keeps the trace there for you to explore with
# `ttvm replay DIR`.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TTVM=$BUILD/ttvm

[ -e /dev/kvm ] || { echo "demo: needs /dev/kvm to record a run (none here)"; exit 1; }
command -v gdb >/dev/null || { echo "demo: needs gdb (.ci/deps installs it)"; exit 1; }

trace=${TTVM_DEMO_TRACE:-}
if [ -z "$trace" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    trace=$tmp/bugparse.trace
fi

echo "== 1. record: bugparse with guests/inputs/bugparse-bad.txt"
echo "\$ ttvm record $BUILD/guests/bugparse.elf --input guests/inputs/bugparse-bad.txt -o $trace"
"$TTVM" record "$BUILD/guests/bugparse.elf" --input guests/inputs/bugparse-bad.txt \
    -o "$trace" --force </dev/null
status=$?
# The guest exits with value 2 (status 5) when it detects the corruption.
[ $status -eq 5 ] || { echo "demo: the recording ended with status $status, expected 5"; exit 1; }

echo
echo "== 2. replay in gdb, backwards from the crash to the bad write"
echo "\$ ttvm replay $trace --batch docs/demo.gdb"
start=$(date +%s.%N)
"$TTVM" replay "$trace" --gdb-port 0 --batch docs/demo.gdb 2>&1 | tee "${tmp:-/tmp}/demo.out"
rc=${PIPESTATUS[0]}
end=$(date +%s.%N)
[ $rc -eq 0 ] || { echo "demo: the gdb session failed (status $rc)"; exit 1; }
grep -q "in parse_key .* at guests/bugparse.c:57" "${tmp:-/tmp}/demo.out" ||
    { echo "demo: reverse-continue did not stop at the overflowing store"; exit 1; }
printf '\n== found the writer in %.2f s (indexing the trace included)\n' \
    "$(echo "$end - $start" | bc -l)"
echo "   Try it yourself:  TTVM_DEMO_TRACE=/tmp/bp make demo && $TTVM replay /tmp/bp"
