#!/bin/bash
# `ttvm record --index`: the indexer follows the trace in a second process
# and writes the index once the recording is complete; the index then
# agrees with the recording (state at every event).  A recorder killed
# with SIGKILL leaves its indexer to index what was committed, and that
# replays too.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
need_kvm
G=$BUILD/guests
CHECK=$BUILD/tests/tools/replay_check
[ -e "$G/timer.elf" ] || { echo "skip: no sample guests in $G"; exit 77; }

"$TTVM" record "$G/timer.elf" -o "$TMP/t" --index --max-irq-latency 0.2 \
    --cmdline "hz=1000 ticks=2 sse=20000" </dev/null >/dev/null 2>"$TMP/err"
st=$?
[ $st -eq 1 ] || fail "record --index exited $st: $(tail -n 3 "$TMP/err")"
grep -q "index            done" "$TMP/err" ||
    fail "record --index did not report the index: $(tail -n 3 "$TMP/err")"
"$TTVM" info "$TMP/t" | grep -q "^index *yes" || fail "timer trace not indexed"
out=$("$CHECK" events "$TMP/t" 2>&1) || fail "$out"
echo "  record --index: $out"

# ring 0 runs emulated here (~2 M instr/s): killed mid-run, after kicks
"$TTVM" record "$G/compute.elf" -o "$TMP/k" --index \
    --cmdline "ring=0 iters=300000" </dev/null >/dev/null 2>"$TMP/err" &
rec=$!
sleep 0.5
kill -9 $rec
wait $rec 2>/dev/null
for i in $(seq 1 100); do
    "$TTVM" info "$TMP/k" 2>/dev/null | grep -q "^index *yes" && break
    sleep 0.2
done
"$TTVM" info "$TMP/k" | grep -q "^index *yes" ||
    fail "the orphaned indexer did not index the cut trace"
out=$("$CHECK" events "$TMP/k" 2>&1) || fail "cut trace: $out"
echo "  killed recorder: $out"
out=$("$CHECK" random "$TMP/k" 4 1 2>&1) || fail "cut trace: $out"
finish "all good"
