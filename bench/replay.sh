#!/bin/bash
# bench/replay.sh — the replayer on fresh recordings of `compute` (default
# iterations: ~1e9 instructions) and `timer` (defaults: 20 ticks idle, 20
# spinning in ring 3 at native speed: ~3.6e9 instructions), via
# build/bench/replay_bench: index time vs record time, forward replay
# speed, go-to latency (median, p99), reverse-stepi latency (first after a
# jump, repeated), peak RSS.  Needs /dev/kvm to record.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TTVM=$BUILD/ttvm
[ -e /dev/kvm ] || { echo "replay: skipped (no /dev/kvm to record with)"; exit 0; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for g in compute timer; do
    # Exit status 1 is the guest's own success, (0 << 1) | 1.
    "$TTVM" record "$BUILD/guests/$g.elf" -o "$TMP/$g" </dev/null \
        >/dev/null 2>"$TMP/err"
    [ $? -eq 1 ] || { cat "$TMP/err"; exit 1; }
    "$BUILD/bench/replay_bench" "$TMP/$g" 100 || exit 1
done
