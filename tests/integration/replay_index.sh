#!/bin/bash
# replayer: `ttvm index` on a recording of every sample guest by both boot
# paths (short parameters), then the state at every event equals the
# registers recorded with it; a deliberately altered event in a copied
# trace is reported as a divergence at that event; bad input gives a
# one-line error.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
need_kvm
CHECK=$BUILD/tests/tools/replay_check
EDIT=$BUILD/tests/tools/trace_edit
G=$BUILD/guests
ls "$G"/*.elf >/dev/null 2>&1 || { echo "skip: no sample guests in $G"; exit 77; }

args_of() {
    case $1 in
    compute) echo "iters=200000" ;;
    timer) echo "hz=1000 ticks=2 sse=20000" ;;
    iostorm) echo "n=500" ;;
    rng) echo "n=64" ;;
    syscalls) echo "sleep=2" ;;
    *) echo "" ;;
    esac
}

for img in "$G"/*.elf "$G"/*.mb; do
    name=$(basename "$img")
    g=${name%.*}
    t=$TMP/$name
    "$TTVM" record "$img" -o "$t" --input "$(input_of "$g")" \
        --cmdline "$(args_of "$g")" --max-irq-latency 0.2 --timeout 60 \
        </dev/null >"$TMP/out" 2>"$TMP/err"
    st=$?
    [ $((st % 2)) -eq 1 ] || { fail "$name: record exited $st"; continue; }
    timeout 600 "$TTVM" index "$t" --quiet 2>"$TMP/err" ||
        { fail "$name: index: $(cat "$TMP/err")"; continue; }
    out=$("$CHECK" events "$t" 2>&1) || fail "$name: $out"
    echo "  $name: $out"
done

# A divergence at an altered event, in a copy.  The port write's value,
# then a register of a port read: each named at that event.
t=$TMP/hello.elf
[ -d "$t" ] || { echo "FAIL: no hello trace"; exit 1; }
ev=$("$EDIT" dump "$t" | awk '$6 == 2 && $10 == "0x3f8" { print $2; exit }')
rd=$("$EDIT" dump "$t" | awk '$6 == 1 { n++ } $6 == 1 && n == 3 { print $2; exit }')
[ -n "$ev" ] && [ -n "$rd" ] || { echo "FAIL: no port events in hello"; exit 1; }
check_divergence() { # FIELD EVENT VALUE
    rm -rf "$TMP/bad"
    cp -r "$t" "$TMP/bad"
    "$EDIT" set "$TMP/bad" "$2" "$1" "$3" || { fail "trace_edit set $*"; return; }
    timeout 600 "$TTVM" index "$TMP/bad" --quiet 2>"$TMP/err"
    local st=$?
    [ $st -eq 20 ] || fail "altered $1 of event $2: index exited $st: $(cat "$TMP/err")"
    grep -q "event $2 " "$TMP/err" ||
        fail "altered $1 of event $2: not named: $(cat "$TMP/err")"
    echo "  altered $1 of event $2: $(head -c 160 "$TMP/err")"
}
check_divergence value "$ev" 0x7e
check_divergence rbx "$rd" 0x1234567
check_divergence rip "$rd" 0x100001

# bad input: one line, the documented status
"$TTVM" index "$TMP/none" >"$TMP/out" 2>&1
st=$?
[ $st -eq 18 ] || fail "index of a missing trace exited $st"
[ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "not one line: $(cat "$TMP/out")"
"$TTVM" index >/dev/null 2>&1
[ $? -eq 2 ] || fail "index without a trace is not a usage error"

finish "all good"
