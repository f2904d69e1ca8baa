#!/bin/bash
# String port I/O (INS/OUTS) recorded one event per element, end to end:
# the tiny guest tests/integration/tiny/strio64.S does rep insb/insw from
# the random port (across pages, so KVM serves one instruction in several
# exits of many elements; backwards with DF=1), plain insb/outsb, and rep
# outsb to COM1 (forwards, backwards, right after an OUT to the same
# port).  The recording must hold exactly one event per iteration; `ttvm
# replay --verify` (KVM), from the start and from snapshots taken between
# elements, and `ttvm index` (Unicorn) must agree with it, and the replayer
# must reach every event's recorded state (replay_check events).
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
need_kvm
CHECK=$BUILD/tests/tools/replay_check

as --64 -o "$TMP/strio64.o" tests/integration/tiny/strio64.S &&
    ld -m elf_x86_64 -Ttext-segment=0x100000 -e _start \
        -o "$TMP/strio64.elf" "$TMP/strio64.o" ||
    { echo "cannot assemble strio64"; exit 1; }

count() { # TRACE KIND: events of that kind (ttvm info --json)
    "$TTVM" info --json "$1" | grep -o "\"$2\": [0-9]*" | awk '{print $2}'
}

verify() { # TRACE [options...]: matches, console in TRACE.vout
    local t=$1; shift
    timeout 300 "$TTVM" replay "$t" --verify "$@" >"$t.vraw" 2>"$t.verr"
    local rc=$?
    [ $rc -eq 0 ] && grep -q "^replay matches recording" "$t.vraw" || {
        fail "verify $t $*: exit $rc: $(tail -c 300 "$t.verr")"
        return 1
    }
    head -n -2 "$t.vraw" >"$t.vout"
}

# check NAME [record options...]
check() {
    local t=$TMP/$1; shift
    timeout 120 "$TTVM" record "$TMP/strio64.elf" -o "$t" "$@" </dev/null \
        >"$t.out" 2>"$t.err"
    local rc=$?
    [ $rc -eq 1 ] || { fail "$t: record exited $rc: $(tail -3 "$t.err")"; return; }
    grep -q "^strio ok =[0-9a-f]\{16\}$" "$t.out" ||
        fail "$t: console '$(cat "$t.out")'"
    # 40 rounds of 3000 + 600 + 100 + 1 elements read; 28 bytes written
    [ "$(count "$t" pio_in)" = 148040 ] ||
        fail "$t: $(count "$t" pio_in) port reads, want 148040 (one per element)"
    [ "$(count "$t" pio_out)" = 28 ] ||
        fail "$t: $(count "$t" pio_out) port writes, want 28"
    verify "$t" && { cmp -s "$t.out" "$t.vout" ||
        fail "$t: verify re-displayed '$(cat "$t.vout")'"; }
    timeout 300 "$TTVM" index "$t" >"$t.ix" 2>&1 ||
        fail "$t: index: $(tail -3 "$t.ix")"
    timeout 600 "$CHECK" events "$t" >"$t.ev" 2>&1 ||
        fail "$t: replay_check events: $(tail -3 "$t.ev")"
}

echo "== default snapshots"
check plain
echo "== a snapshot every 0.2 ms: many between elements, and kicks mid-rep"
check dense --snapshot-interval 0.2
t=$TMP/dense
n=$(count "$t" snapshots)
[ "${n:-0}" -gt 100 ] || fail "dense: only ${n:-0} snapshots"
# snapshots between two elements of one string instruction: the events
# before and at the snapshot's index are accesses at the same RIP
"$TTVM" info --json --snapshots "$t" |
    sed -n 's/.*"event": \([0-9]*\),.*/\1/p' >"$t.snapev"
"$TTVM" events --json "$t" >"$t.events"
awk 'NR == FNR { id[$1] = NR - 1; next }
    { match($0, /"index": [0-9]+/); i = substr($0, RSTART + 9, RLENGTH - 9) + 0
      match($0, /"rip": [0-9]+/); rip = substr($0, RSTART, RLENGTH)
      io = $0 ~ /"kind": "(in|out)"/
      if ((i in id) && io && prev_io && rip == prev_rip) print id[i]
      prev_io = io; prev_rip = rip }' "$t.snapev" "$t.events" >"$t.mid"
mid=$(wc -l <"$t.mid")
echo "  $n snapshots, $mid between elements of one instruction"
[ "$mid" -gt 0 ] || fail "dense: no snapshot between string elements"
for k in $(head -n 3 "$t.mid"); do
    verify "$t" --from-snapshot "$k" || break
done
# verification from snapshots spread over the run
for k in $(seq 1 $(( ${n:-2} / 12 + 1 )) $(( ${n:-2} - 1 ))); do
    verify "$t" --from-snapshot "$k" || break
done

finish "string I/O: record, verify and index agree"
