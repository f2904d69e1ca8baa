#!/bin/bash
# replayer: travel against ground truth (tests/tools/replay_check.c).
#  - random positions: go to N, step back from N+1, a fresh replay: same
#    state (compute, timer, exceptions, bugparse);
#  - KVM single-steps from the recorded snapshot equal the replay at N,
#    wherever that code runs at CPL0: all of `compute ring=0`, and the boot
#    code of timer, bugparse and exceptions (both boot paths for one);
#  - continue and reverse continue to a breakpoint land on the hits a
#    forward scan that re-executes everything saw (timer's tick handler; a
#    hot breakpoint in its ring-3 spin loop; breakpoints compute runs once,
#    which the searches reach by skipping, using the index's coverage);
#  - a reverse write watchpoint stops at the last writer found by stepping
#    (timer's tick counter, bugparse's overflowed table_len);
#  - the API's promises: ends, user writes undone, WATCH on a stepped
#    writer both ways, replay_interrupt from a thread.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
need_kvm
CHECK=$BUILD/tests/tools/replay_check
G=$BUILD/guests
[ -e "$G/timer.elf" ] || { echo "skip: no sample guests in $G"; exit 77; }

rec() { # NAME IMAGE CMDLINE [INPUT [ttvm record options...]]
    local name=$1 img=$2 cmdline=$3 input=${4:-/dev/null}
    shift 3; [ $# -gt 0 ] && shift
    "$TTVM" record "$img" -o "$TMP/$name" --cmdline "$cmdline" \
        --input "$input" --max-irq-latency 0.2 --timeout 60 "$@" \
        </dev/null >/dev/null 2>"$TMP/err"
    local st=$?
    [ $((st % 2)) -eq 1 ] || { fail "record $name: $st $(tail -n 2 "$TMP/err")"; return 1; }
    timeout 600 "$TTVM" index "$TMP/$name" --quiet || { fail "index $name"; return 1; }
}
sym() { nm "$1" | awk -v s="$2" '$3 == s { print "0x" $1 }'; }
check() { # what...
    local out
    out=$("$CHECK" "$@" 2>&1)
    local st=$?
    if [ $st -eq 77 ]; then echo "  ($*: $out)"; return; fi
    [ $st -eq 0 ] || { fail "$*: $out"; return; }
    echo "  $2: $out"
}

rec compute "$G/compute.elf" "iters=2000000"
rec compute0 "$G/compute.elf" "ring=0 iters=20000"
rec timer "$G/timer.elf" "hz=1000 ticks=3 sse=20000"
rec timer.mb "$G/timer.mb" "hz=1000 ticks=2 sse=20000"
rec exceptions "$G/exceptions.elf" ""
rec bugparse "$G/bugparse.elf" "" guests/inputs/bugparse-bad.txt
# ring 3 kicked while it writes 4000 pages a tick: KVM reports RF set at
# those kicks, and the interrupt frames pushed there must match
rec memwrite "$G/memwrite.elf" "pages=4000 rounds=5" /dev/null \
    --mem 256M --max-irq-latency 0.05
check events "$TMP/memwrite"

for t in compute timer exceptions bugparse memwrite; do
    check random "$TMP/$t" 8 11
done
check kvm "$TMP/compute0" 25 5
check kvm "$TMP/timer" 20 6 6000
check kvm "$TMP/timer.mb" 20 7 8000
check kvm "$TMP/bugparse" 15 8 6000
check kvm "$TMP/exceptions" 15 9 6000

T=$G/timer.elf
tick=$(sym "$T" timer_tick)
# the spin loop's backward branch: hit every few instructions
spin=$(objdump -d "$T" --start-address="$(sym "$T" timer_ring3_task)" \
       --stop-address=$(( $(sym "$T" timer_ring3_task) + 0x80 )) |
       awk '$0 ~ /\tjb / { sub(":", "", $1); print "0x" $1; exit }')
[ -n "$tick" ] && [ -n "$spin" ] || fail "timer symbols not found"
check rbreak "$TMP/timer" "$tick" 64 6 1
check rbreak "$TMP/timer" "$spin" 40 6 2
check rbreak "$TMP/bugparse" "$(sym "$G/bugparse.elf" parse_key)" 64 4 3
# breakpoints that run once, before and after compute's 16M-instruction
# loop: searches both ways jump over the windows that never ran them
check rbreak "$TMP/compute" "$(sym "$G/compute.elf" compute_task)" 4 4 4
check rbreak "$TMP/compute" "$(sym "$G/compute.elf" user_printf)" 4 4 5
check rwatch "$TMP/timer" "$(sym "$T" sdk_tick_count)" 8 4 1
check api "$TMP/timer" "$(sym "$T" sdk_tick_count)" 8 0x1
check rwatch "$TMP/bugparse" "$(sym "$G/bugparse.elf" table_len)" 4 4 2

finish "all good"
