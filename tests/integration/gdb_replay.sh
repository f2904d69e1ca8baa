#!/bin/bash
# The real gdb (batch mode, Python API) against `ttvm replay` on real
# recordings, every stop compared with the replayer's own state at that
# position (build/tests/tools/replay_check state): stepi/reverse-stepi,
# break + continue/reverse-continue against a forward scan of the hits,
# reverse-next/reverse-step/reverse-finish at source level, watch +
# reverse-continue against a brute-force search for the last writer
# (bugparse) and a value held constant through compute's loop, the ends
# of the recording (replaylog begin/end, the guest's exit), monitor
# commands, successive gdb connections to `ttvm replay --no-launch`, and a
# client sending garbage before a gdb that must still work.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
need_kvm
command -v gdb >/dev/null || { echo "skip: gdb is not installed"; exit 77; }
gdb -nx -batch -ex 'python import gdb' >/dev/null 2>&1 ||
    { echo "skip: this gdb has no Python"; exit 77; }
G=$BUILD/guests
export TTVM_CHECK=$BUILD/tests/tools/replay_check
SCRIPT=$PWD/tests/integration/gdb_replay.py

rec() { # NAME GUEST [record options]: an indexed trace in $TMP/NAME
    local t=$TMP/$1 g=$2; shift 2
    "$TTVM" record "$g" -o "$t" "$@" </dev/null >/dev/null 2>"$t.err"
    local rc=$?
    [ $((rc % 2)) -eq 1 ] || { fail "record $g: exit $rc: $(tail -3 "$t.err")"; return 1; }
    timeout 600 "$TTVM" index "$t" --quiet 2>"$t.err" || { fail "index $g: $(tail -3 "$t.err")"; return 1; }
}

# phase NAME TRACE [VAR=VALUE...]: one gdb session through ttvm replay
# --batch; passes when the script printed ALL OK and every message it
# expected from gdb itself (gdb_check_markers).
phase() {
    local name=$1 t=$2; shift 2
    local out=$TMP/gdb-$name.out
    env TTVM_PHASE="${name%%.*}" TTVM_TRACE="$t" "$@" timeout 600 \
        "$TTVM" replay "$t" --gdb-port 0 --batch "$SCRIPT" </dev/null >"$out" 2>&1
    local rc=$?
    grep -E '^(ok|FAIL):' "$out" | sed "s/^/[$name] /"
    if [ $rc -ne 0 ] || ! grep -q '^ALL OK' "$out"; then
        fail "gdb phase $name (exit $rc):"; tail -n 30 "$out"; return 1
    fi
    gdb_check_markers "$out" "$name" || fail "gdb phase $name: messages"
}

sym() { nm "$1" | awk -v s="$2" '$3 == s { print "0x" $1 }'; }

rec bug "$G/bugparse.elf" --input guests/inputs/bugparse-bad.txt
rec compute "$G/compute.elf" --cmdline "iters=300000"
rec timer "$G/timer.elf" --cmdline "ticks=4 sse=20000" --max-irq-latency 0.05
rec exc "$G/exceptions.elf"

# Interrupts (at HLT and at kicks) and exceptions, each stepped over both
# ways: a few positions before the first of each kind.
at_kind() { # TRACE KIND...: positions 3 before the first event of each kind
    local t=$1; shift
    for k in "$@"; do
        "$TTVM" events "$t" --kind "$k" --json |
            grep -o '"icount": [0-9]*' | head -1 | awk '{ print ($2 > 3 ? $2 - 3 : 0) }'
    done | tr '\n' ' '
}
bugvar=$(sym "$G/bugparse.elf" table_len)

phase steps.bug "$TMP/bug" TTVM_ADDR="$bugvar" TTVM_LEN=4 \
    TTVM_AT="$(at_kind "$TMP/bug" irq)"
phase steps.timer "$TMP/timer" TTVM_AT="$(at_kind "$TMP/timer" hlt kick irq)"
phase steps.exc "$TMP/exc" TTVM_AT="$(at_kind "$TMP/exc" irq)"
phase breaks.bug "$TMP/bug" TTVM_BREAK=parse_line TTVM_NHITS=6 \
    TTVM_ADDR="$bugvar" TTVM_LEN=4
phase breaks.timer "$TMP/timer" TTVM_BREAK="*$(sym "$G/timer.elf" isr_32)" \
    TTVM_NHITS=12
phase source.bug "$TMP/bug"
phase watch.bug "$TMP/bug" TTVM_ADDR="$bugvar" TTVM_LEN=4
phase held.compute "$TMP/compute" TTVM_ADDR=0 TTVM_LEN=0
phase ends.bug "$TMP/bug" TTVM_EXIT=5  # (2 << 1) | 1, as ttvm record exits
phase monitor.compute "$TMP/compute"

# ---- ttvm replay --no-launch: successive gdb connections, then garbage ----
serve_log=$TMP/serve.out
"$TTVM" replay "$TMP/bug" --no-launch --gdb-port 0 >"$serve_log" 2>&1 &
serve_pid=$!
port=
for _ in $(seq 100); do
    port=$(grep -o 'serving on 127.0.0.1:[0-9]*' "$serve_log" | cut -d: -f2)
    [ -n "$port" ] && break
    sleep 0.1
done
if [ -z "$port" ]; then
    fail "ttvm replay --no-launch did not serve: $(cat "$serve_log")"
else
    grep -q "connect with:  gdb .*bugparse.elf -ex 'target remote 127.0.0.1:$port'" \
        "$serve_log" || fail "--no-launch does not print the gdb command"
    sympath=$(grep -o "gdb [^ ]*bugparse.elf" "$serve_log" | head -1 | cut -d' ' -f2)
    cmp -s "$sympath" "$G/bugparse.elf" || fail "the symbol file is not the recorded image"
    for p in first second; do
        TTVM_PHASE=$p TTVM_TRACE=$TMP/bug TTVM_PORT=$port timeout 300 \
            gdb -nx -batch -x "$SCRIPT" "$sympath" </dev/null >"$TMP/gdb-$p.out" 2>&1
        grep -E '^(ok|FAIL):' "$TMP/gdb-$p.out" | sed "s/^/[$p] /"
        grep -q '^ALL OK' "$TMP/gdb-$p.out" ||
            { fail "gdb phase $p:"; tail -n 30 "$TMP/gdb-$p.out"; }
        gdb_check_markers "$TMP/gdb-$p.out" "$p" || fail "gdb phase $p: messages"
    done
    python3 tests/integration/rsp_garbage.py 127.0.0.1 "$port" ||
        fail "the stub mishandled garbage"
    kill -0 $serve_pid 2>/dev/null || fail "ttvm replay died from garbage"
    TTVM_PHASE=second TTVM_TRACE=$TMP/bug TTVM_PORT=$port TTVM_AFTER_GARBAGE=1 \
        timeout 300 gdb -nx -batch -ex "set confirm off" \
        -ex "target remote 127.0.0.1:$port" -ex "reverse-stepi" -ex "monitor when" \
        -ex detach "$sympath" </dev/null >"$TMP/gdb-after.out" 2>&1
    grep -q "icount [0-9]* of" "$TMP/gdb-after.out" ||
        fail "gdb after the garbage: $(tail -5 "$TMP/gdb-after.out")"
    kill -INT $serve_pid
    wait $serve_pid; rc=$?
    [ $rc -eq 0 ] || fail "ttvm replay --no-launch exited $rc on SIGINT"
    [ -e "$sympath" ] && fail "the symbol file outlived ttvm replay"
fi
finish "gdb against ttvm replay: all phases passed"
