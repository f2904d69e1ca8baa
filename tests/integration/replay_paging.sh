#!/bin/bash
# A guest that turns on non-identity paging (guests/paging: virtual 1 GiB
# aliases physical 4 MiB, all in ring 0) records and runs on KVM, but
# Unicorn 2.0.1 translates virtual = physical.  Where the host can
# single-step ring 0 (vmm_host_probe, `ttvm doctor`), the index is made by
# the kvm-step engine (KVM single steps) and must be exact: ttvm info names
# the engine, the state at every event equals the recording, random
# positions agree three ways, the KVM walk of replay_check agrees, and a
# reverse write watchpoint on physical 4 MiB finds the write through the
# alias (brute force agrees).  kvm-step must also match Unicorn where both
# can run (compute ring=0: the same position for every event, kicks
# included), and refuse what the host cannot step (ring 3 under kvm-pvm)
# with exit 14 and the reason.  On a host that cannot single-step at all,
# the paging trace is still refused clearly (exit 14), and the rest is
# skipped.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
need_kvm
P=$BUILD/guests/paging
CHECK=$BUILD/tests/tools/replay_check
[ -e "$P/paging.elf" ] || { echo "skip: no $P/paging.elf"; exit 77; }
doctor=$("$TTVM" doctor 2>&1)
step0=no; step3=no
grep -q "^single-step at CPL0: yes" <<<"$doctor" && step0=yes
grep -q "^single-step at CPL3: yes" <<<"$doctor" && step3=yes

record() { # IMAGE TRACE [CMDLINE]
    "$TTVM" record ${3:+--cmdline "$3"} "$1" -o "$2" </dev/null \
        >"$TMP/out" 2>"$TMP/err"
}

for img in "$P/paging.elf" "$P/paging.mb"; do
    n=$(basename "$img")
    t=$TMP/$n
    record "$img" "$t"
    st=$?
    [ $st -eq 1 ] || { fail "$n: record exited $st"; continue; }
    grep -q "read 0x2222 directly" "$TMP/out" || fail "$n: guest output"
    timeout 300 "$TTVM" index "$t" >"$TMP/out" 2>&1
    st=$?
    if [ $step0 = no ]; then
        [ $st -eq 14 ] || fail "$n: index exited $st: $(cat "$TMP/out")"
        grep -q "non-identity paging" "$TMP/out" &&
            grep -q "virtual 0x40000000 maps physical 0x400000" "$TMP/out" ||
            fail "$n: unclear: $(cat "$TMP/out")"
        "$TTVM" info "$t" | grep -q "^index *no" ||
            fail "$n: an index was written"
        echo "  $n: refused: $(head -c 200 "$TMP/out")"
        continue
    fi
    [ $st -eq 0 ] || { fail "$n: index exited $st: $(cat "$TMP/out")"; continue; }
    info=$("$TTVM" info "$t")
    grep -q "^index *yes, .*(engine kvm-step)" <<<"$info" ||
        fail "$n: info: $(grep '^index' <<<"$info")"
    end=$(awk '/^index/ {print $3}' <<<"$info")
    out=$("$CHECK" events "$t" 2>&1) || fail "$n: events: $out"
    echo "  $n: $out"
    out=$("$CHECK" random "$t" 12 7 2>&1) || fail "$n: random: $out"
    echo "  $n: $out"
    out=$("$CHECK" kvm "$t" 20 5 2>&1)
    st=$?
    [ $st -eq 0 ] || [ $st -eq 77 ] || fail "$n: kvm: $out"
    echo "  $n: $out"
    out=$("$CHECK" rwatch "$t" 0x400000 8 8 3 2>&1) || fail "$n: rwatch: $out"
    echo "  $n: $out"
    # the last writer of physical 4 MiB is the store through the alias
    w=$("$CHECK" writer "$t" 0x400000 8 0 "$end")
    ic=$(awk '{print $2}' <<<"$w")
    mem=$("$CHECK" state "$t" 0x400000 8 "$ic" $((ic + 1)) |
          sed 's/.*mem=//' | tr '\n' ' ')
    [ "$mem" = "1111000000000000 2222000000000000 " ] ||
        fail "$n: writer $w: memory $mem"
    echo "  $n: last writer of 0x400000: $w ($mem)"
done

if [ $step0 = no ]; then
    echo "skip: this host cannot single-step guest ring 0 (ttvm doctor):" \
         "kvm-step is unavailable, the paging guest is refused (checked)"
    [ "$fails" -eq 0 ] && exit 77
    finish "-"
fi

# kvm-step and Unicorn agree where both run: ring-0 compute with kicks
g=$BUILD/guests/compute.elf
record "$g" "$TMP/u" "ring=0 iters=20000"
[ -d "$TMP/u" ] || fail "compute: record: $(cat "$TMP/err")"
cp -r "$TMP/u" "$TMP/k"
"$TTVM" index --quiet "$TMP/u" 2>/dev/null || fail "compute: unicorn index"
TTVM_INDEX_ENGINE=kvm-step timeout 300 "$TTVM" index --quiet "$TMP/k" \
    2>/dev/null || fail "compute: kvm-step index"
"$TTVM" info "$TMP/k" | grep -q "(engine kvm-step)" || fail "compute: engine"
"$TTVM" events "$TMP/u" >"$TMP/eu" 2>&1
"$TTVM" events "$TMP/k" >"$TMP/ek" 2>&1
cmp -s "$TMP/eu" "$TMP/ek" || fail "compute: event positions differ:
$(diff "$TMP/eu" "$TMP/ek" | head -5)"
echo "  compute ring=0: $(grep -c . "$TMP/ek") event lines, the same" \
     "positions under kvm-step and unicorn"

# ring 3 where the host cannot single-step it: refused, with the reason
if [ $step3 = no ]; then
    record "$BUILD/guests/hello.elf" "$TMP/h"
    [ -d "$TMP/h" ] || fail "hello: record: $(cat "$TMP/err")"
    TTVM_INDEX_ENGINE=kvm-step "$TTVM" index --quiet "$TMP/h" >"$TMP/out" 2>&1
    st=$?
    [ $st -eq 14 ] || fail "hello on kvm-step: index exited $st"
    grep -q "CPL3" "$TMP/out" && grep -q "cannot be single-stepped" "$TMP/out" ||
        fail "hello on kvm-step: unclear: $(cat "$TMP/out")"
    "$TTVM" info "$TMP/h" | grep -q "^index *no" || fail "hello: an index"
    echo "  ring 3 on kvm-step: $(head -c 160 "$TMP/out")"
fi
finish "all good"
