#!/bin/bash
# The real gdb (batch mode, Python API) against the GDB stub serving the
# fake target (build/tests/tools/fakestub): registers, stepi/reverse-stepi,
# breakpoints, watchpoints forward and backward, monitor commands, the ends
# of the recording, Ctrl-C, and successive connections (detach, kill).
# Proves the protocol layer end to end without a VM or a trace.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
FAKESTUB=$BUILD/tests/tools/fakestub
SCRIPT=tests/integration/gdb_fakestub.py

command -v gdb >/dev/null || { echo "gdb is not installed"; exit 77; }
gdb -nx -batch -ex 'python import gdb' >/dev/null 2>&1 ||
    { echo "this gdb has no Python"; exit 77; }
[ -x "$FAKESTUB" ] || { echo "missing $FAKESTUB (make test builds it)"; exit 1; }

tmp=$TMP  # lib.sh made it; cleanup below removes it
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# start_stub NAME ARGS...: serves on a free port, written to $tmp/NAME.port
start_stub() {
    local name=$1; shift
    "$FAKESTUB" --port 0 --port-file "$tmp/$name.port" "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.log" &
    pids+=($!)
    for _ in $(seq 100); do
        [ -s "$tmp/$name.port" ] && return 0
        sleep 0.05
    done
    echo "fakestub did not start:"; cat "$tmp/$name.log"; exit 1
}

# run_gdb PORT PHASE END: one gdb session; fails unless it prints ALL OK.
run_gdb() {
    local out=$tmp/gdb-$2.out
    TTVM_PORT=$1 TTVM_PHASE=$2 TTVM_END=$3 timeout 120 \
        gdb -nx -batch -x "$SCRIPT" </dev/null >"$out" 2>&1
    local rc=$?
    grep -E '^(ok|FAIL):' "$out" | sed "s/^/[$2] /"
    if ! grep -q '^ALL OK' "$out"; then
        echo "gdb phase $2 failed (exit $rc):"; cat "$out"; exit 1
    fi
    # Messages gdb prints itself must appear between the markers.
    gdb_check_markers "$out" "$2" || { cat "$out"; exit 1; }
}

start_stub main --end 1000 --exit 3 --clients 3 -v
port=$(cat "$tmp/main.port")
run_gdb "$port" main 1000
run_gdb "$port" second 1000   # a second connection after a detach
run_gdb "$port" third 1000    # and a third after a kill
grep -q "gdb connected" "$tmp/main.log" || { echo "no connection log"; exit 1; }
# After its three clients the stub exits by itself, cleanly (under ASan this
# also catches leaks and memory errors).
main_pid=${pids[0]}
for _ in $(seq 100); do kill -0 "$main_pid" 2>/dev/null || break; sleep 0.05; done
wait "$main_pid"; rc=$?
[ $rc -eq 0 ] || { echo "fakestub exited with $rc:"; cat "$tmp/main.log"; exit 1; }

start_stub intr --end 100000000 --delay-us 100 --clients 1
run_gdb "$(cat "$tmp/intr.port")" interrupt 100000000
echo "gdb against the fake stub: all phases passed"
