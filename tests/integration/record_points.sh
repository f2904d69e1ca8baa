#!/bin/bash
# Where `ttvm record` stops the guest, and what it logs there:
#  - a guest that never exits gets a snapshot every --snapshot-interval
#    (the kicker), not every other one;
#  - the run loop's serial-input poll kicks (every millisecond while the
#    receive interrupt is on and input is open) cost no snapshot when no
#    interrupt is injected;
#  - interrupts injected at I/O exits (after an IN, an OUT, a rep insb)
#    carry the registers where they are delivered: the interrupt frame
#    the replay builds holds their RIP, RFLAGS and RSP (irq_check); the
#    recording verifies and indexes;
#  - kicks among back-to-back ring-3 software interrupts (syscalls)
#    snapshot and inject only at points the replay can name (under
#    kvm-pvm a kick can land before the kernel got the interrupt): the
#    recording verifies and indexes.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
need_kvm
G=$BUILD/guests
T=tests/integration/tiny

build64() {
    as --64 -o "$TMP/$1.o" "$T/$1.S" &&
        ld -m elf_x86_64 -Ttext-segment=0x100000 -e _start \
            -o "$TMP/$1.elf" "$TMP/$1.o"
}
for g in rxspin64 irqspin64; do
    build64 $g || { echo "cannot assemble $g"; exit 1; }
done

json() { # TRACE KEY: a number from ttvm info --json
    "$TTVM" info --json "$1" | grep -o "\"$2\": [0-9.]*" | head -1 |
        awk '{print $2}'
}

# record TRACE STATUS GUEST [options...] (stdin from /dev/null)
record() {
    local t=$1 want=$2 g=$3; shift 3
    timeout 120 "$TTVM" record "$g" -o "$t" "$@" </dev/null >"$t.out" \
        2>"$t.err"
    local rc=$?
    [ $rc -eq "$want" ] || { fail "record $g: exit $rc: $(tail -3 "$t.err")"; return 1; }
}

verify() { # TRACE
    timeout 300 "$TTVM" replay "$1" --verify >"$1.v" 2>&1 &&
        grep -q "^replay matches recording" "$1.v" ||
        fail "verify $1: $(tail -3 "$1.v")"
}

echo "== compute: a snapshot every interval"
t=$TMP/compute
record "$t" 1 "$G/compute.elf" --cmdline "iters=500000000" \
    --snapshot-interval 10 && {
    d=$(json "$t" duration_s); n=$(json "$t" snapshots)
    # snapshot 0, then one per 10 ms of run time
    want=$(echo "$d * 100 * 0.8" | bc -l | cut -d. -f1)
    echo "  $n snapshots in $d s"
    [ "$n" -ge "${want:-1}" ] ||
        fail "compute: $n snapshots in $d s at 10 ms, want >= $want"
    verify "$t"
}

echo "== serial input open, receive interrupt on, no interrupt injected"
t=$TMP/rxspin
mkfifo "$TMP/input"
sleep 120 >"$TMP/input" & # input that stays open, and never comes
writer=$!
timeout 120 "$TTVM" record "$TMP/rxspin64.elf" -o "$t" <"$TMP/input" \
    >"$t.out" 2>"$t.err"
rc=$?
kill $writer 2>/dev/null
wait $writer 2>/dev/null
if [ $rc -ne 1 ] || [ "$(cat "$t.out")" != spun ]; then
    fail "rxspin: exit $rc, output '$(cat "$t.out")': $(tail -3 "$t.err")"
else
    d=$(json "$t" duration_s); n=$(json "$t" snapshots)
    k=$(json "$t" kick)
    # the default interval is 50 ms: at most one snapshot per interval
    # (and snapshot 0), not one per millisecond poll
    most=$(echo "$d * 20 + 3" | bc -l | cut -d. -f1)
    echo "  $n snapshots, $k kicks in $d s"
    [ "$n" -le "$most" ] ||
        fail "rxspin: $n snapshots in $d s, want <= $most (poll kicks)"
    verify "$t"
fi

echo "== interrupts injected at I/O exits"
t=$TMP/irqspin
record "$t" 1 "$TMP/irqspin64.elf" && {
    [ "$(cat "$t.out")" = I ] || fail "irqspin: output '$(cat "$t.out")'"
    verify "$t"
    timeout 300 "$TTVM" index "$t" >"$t.ix" 2>&1 ||
        fail "irqspin: index: $(tail -3 "$t.ix")"
    timeout 300 "$BUILD/tests/tools/irq_check" "$t" >"$t.irq" 2>&1 ||
        fail "irqspin: $(head -5 "$t.irq")"
    grep -q "^irq: 50 interrupt events checked" "$t.irq" ||
        fail "irqspin: $(tail -1 "$t.irq")"
    timeout 300 "$BUILD/tests/tools/replay_check" events "$t" >"$t.ev" 2>&1 ||
        fail "irqspin: replay_check events: $(tail -3 "$t.ev")"
}

echo "== kicks among ring-3 software interrupts, a snapshot every millisecond"
t=$TMP/spin
record "$t" 1 "$G/syscalls.elf" --cmdline "sleep=2 spin=5000" \
    --snapshot-interval 1 && {
    echo "  $(json "$t" snapshots) snapshots, $(json "$t" kick) kicks"
    verify "$t"
    timeout 300 "$TTVM" index "$t" >"$t.ix" 2>&1 ||
        fail "spin: index: $(tail -3 "$t.ix")"
    timeout 300 "$BUILD/tests/tools/replay_check" events "$t" >"$t.ev" 2>&1 ||
        fail "spin: replay_check events: $(tail -3 "$t.ev")"
}

finish "record points: snapshots, kicks and interrupts as expected"
