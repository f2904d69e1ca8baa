#!/bin/bash
# `ttvm record` then `ttvm replay --verify` on KVM, end to end:
#  - sample guests by both boot paths, echo and bugparse with several
#    inputs, rng twice, timer with interrupts at exits and (forced by a
#    small --max-irq-latency) at kicks: each verifies, and the console the
#    verification re-displays is exactly the recorded one;
#  - verification from a middle snapshot re-displays exactly the rest of the
#    console and checks the final registers;
#  - a recorder killed with SIGKILL leaves a trace that opens, says it is
#    incomplete, and verifies up to its last commit;
#  - --force, mdb_stat, and bad traces (missing, not a trace, truncated,
#    flipped bytes, newer format, wrong image hash): one-line errors that
#    say what is wrong, with exit status 18, never a crash; a flipped byte
#    is either harmless (the trace still reads and verifies the same) or
#    such an error.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
need_kvm
G=$BUILD/guests
STORE_TOOL=$BUILD/tests/tools/store_tool

# record TRACE STATUS GUEST [ttvm record options...]: console in TRACE.out
record() {
    local t=$1 want=$2 g=$3; shift 3
    rm -rf "$t"
    timeout 120 "$TTVM" record "$g" -o "$t" "$@" </dev/null >"$t.out" \
        2>"$t.err"
    local got=$?
    [ "$got" -eq "$want" ] || {
        fail "record $g $* exited $got, want $want: $(tail -c 300 "$t.err")"
        return 1
    }
}

# verify TRACE [options...]: must match; console in TRACE.vout
verify() {
    local t=$1; shift
    timeout 300 "$TTVM" replay "$t" --verify "$@" >"$t.vraw" 2>"$t.verr"
    local got=$?
    if [ "$got" -ne 0 ] || ! grep -q "^replay matches recording" "$t.vraw"
    then
        fail "verify $t $* exited $got: $(tail -c 400 "$t.verr")"
        return 1
    fi
    # The console is everything before the verdict's blank line.
    head -n -2 "$t.vraw" >"$t.vout"
}

same_console() { # TRACE: verification re-displayed the recorded console
    cmp -s "$1.out" "$1.vout" ||
        fail "$1: console differs: $(diff "$1.out" "$1.vout" | head -5)"
}

count() { # TRACE KIND: events of that kind (ttvm info --json)
    "$TTVM" info --json "$1" | grep -o "\"$2\": [0-9]*" | awk '{print $2}'
}

rv() { # NAME STATUS GUEST [record options...]
    local t=$TMP/$1; shift
    record "$t" "$@" && verify "$t" && same_console "$t"
}

# ---- every guest, both boot paths ----
for ext in elf mb; do
    rv hello.$ext 1 "$G/hello.$ext"
    rv exceptions.$ext 1 "$G/exceptions.$ext"
    rv syscalls.$ext 1 "$G/syscalls.$ext"
done
rv compute 1 "$G/compute.elf" --cmdline "iters=3000000"
rv compute0 1 "$G/compute.mb" --cmdline "ring=0 iters=20000"
rv iostorm 1 "$G/iostorm.elf" --cmdline "n=5000"
rv memwrite 1 "$G/memwrite.elf" --cmdline "pages=64 rounds=10"

# ---- serial input: several inputs each ----
printf 'hello there\nsecond LINE\n.\n' >"$TMP/in1"
printf 'no terminator at all' >"$TMP/in2"
printf '\004' >"$TMP/in3"
rv echo1 1 "$G/echo.elf" --input guests/inputs/echo.txt
rv echo2 1 "$G/echo.elf" --input "$TMP/in1"
rv echo3 1 "$G/echo.mb" --input "$TMP/in3"
# Input ends without its terminator: the guest waits in HLT for more, which
# nothing can bring (exit 12, halted); that end replays too.
rv echo4 12 "$G/echo.elf" --input "$TMP/in2"
printf 'alpha=1\nbeta=2\n.\n' >"$TMP/bp3"
rv bug_good 1 "$G/bugparse.elf" --input guests/inputs/bugparse-good.txt
rv bug_bad 5 "$G/bugparse.mb" --input guests/inputs/bugparse-bad.txt
rv bug_3 1 "$G/bugparse.elf" --input "$TMP/bp3"
grep -q "corruption detected" "$TMP/bug_bad.out" ||
    fail "bugparse with the bad input did not report its corruption"

# ---- rng: random inputs replay exactly ----
rv rng1 1 "$G/rng.elf"
rv rng2 1 "$G/rng.elf"
cmp -s "$TMP/rng1.out" "$TMP/rng2.out" &&
    fail "two rng recordings printed the same numbers"

# ---- timer: interrupts at exits (hlt) and at kicks ----
rv timer 1 "$G/timer.elf"
rv timer_kick 1 "$G/timer.mb" --max-irq-latency 0.05 --snapshot-interval 5
for k in irq hlt kick; do
    [ "$(count "$TMP/timer_kick" $k)" -gt 0 ] ||
        fail "timer_kick trace has no $k events"
done
# Interrupts injected at kicks, not only kicks for snapshots: an irq event
# right after a kick, at the same position (the index gives positions).
t=$TMP/timer_kick
timeout 300 "$TTVM" index "$t" >"$t.ix" 2>&1 ||
    fail "index timer_kick: $(tail -2 "$t.ix")"
n=$("$TTVM" events "$t" --json | awk '
    /"kind": "irq"/ && at != "" {
        match($0, /"icount": [0-9]+/)
        if (substr($0, RSTART, RLENGTH) == at) n++
    }
    /"kind": "kick"/ { match($0, /"icount": [0-9]+/); at = substr($0, RSTART, RLENGTH); next }
    { at = "" }
    END { print n + 0 }')
[ "$n" -gt 0 ] || fail "timer_kick: no interrupt injected at a kick"
# Kicks inside SSE code: the restored snapshot's XMM and MXCSR must be the
# ones the guest computes with (KVM_SET_FPU alone loses them).
rv timer_sse 1 "$G/timer.elf" --cmdline "hz=1000 ticks=20 sse=20000000"
[ "$(count "$TMP/timer_sse" kick)" -gt 20 ] ||
    fail "timer_sse trace has too few kicks to reach its SSE loop"

# ---- ttvm events lists exactly what ttvm info counts ----
t=$TMP/timer_kick
[ "$("$TTVM" events "$t" --json | wc -l)" -eq "$(count "$t" events)" ] ||
    fail "ttvm events --json does not list every event"
[ "$("$TTVM" events "$t" --json --kind irq | grep -c '"vector": 32')" -eq \
    "$(count "$t" irq)" ] || fail "ttvm events --kind irq disagrees with info"
"$TTVM" events "$t" --json --kind exit | grep -q '"status": 1' ||
    fail "ttvm events: exit event missing"

# ---- from a middle snapshot: the rest of the console, final registers ----
nsnap=$("$TTVM" info --json "$TMP/timer_kick" | grep -o '"snapshots": [0-9]*' |
    awk '{print $2}')
if [ "${nsnap:-0}" -lt 4 ]; then
    fail "timer_kick has only ${nsnap:-0} snapshots"
else
    for k in $((nsnap / 3)) $((nsnap / 2)) $((nsnap - 1)); do
        t=$TMP/timer_kick
        verify "$t" --from-snapshot $k || continue
        # What it re-displays must be exactly the end of the recorded console.
        size=$(stat -c %s "$t.vout")
        tail -c "$size" "$t.out" | cmp -s - "$t.vout" ||
            fail "from snapshot $k: console is not the recorded one's end"
    done
fi
"$TTVM" replay "$TMP/timer" --verify --from-snapshot 100000 >/dev/null \
    2>"$TMP/err"
[ $? -eq 18 ] || fail "--from-snapshot beyond the last snapshot: wrong exit"

# ---- SIGKILL during a long recording ----
t=$TMP/killed
rm -rf "$t"
"$TTVM" record "$G/timer.elf" -o "$t" --cmdline "ticks=1000" \
    --snapshot-interval 20 </dev/null >/dev/null 2>&1 &
pid=$!
sleep 2
kill -9 $pid
wait $pid 2>/dev/null
"$TTVM" info "$t" >"$TMP/info" 2>&1 || fail "info on a killed recording failed"
grep -q INCOMPLETE "$TMP/info" || fail "killed recording not reported incomplete"
timeout 300 "$TTVM" replay "$t" --verify >"$TMP/vk" 2>&1 ||
    fail "verify of a killed recording failed: $(tail -3 "$TMP/vk")"
grep -q "trace incomplete" "$TMP/vk" || fail "verify did not say incomplete"

# ---- --force, mdb_stat ----
"$TTVM" record "$G/hello.elf" -o "$TMP/hello.elf" </dev/null >/dev/null \
    2>"$TMP/err"
[ $? -eq 18 ] && [ "$(cat "$TMP/err")" = \
    "ttvm record: $TMP/hello.elf: trace exists (use --force to replace it)" ] ||
    fail "recording over an existing trace without --force: $(cat "$TMP/err")"
record "$TMP/hello.elf" 1 "$G/hello.elf" --force
if command -v mdb_stat >/dev/null; then
    mdb_stat -a "$TMP/hello.elf" >/dev/null 2>&1 || fail "mdb_stat -a failed"
fi

# ---- an encrypted trace needs its key ----
# A raw key is any 32 bytes, a final '\n' included.
{ head -c 31 /dev/urandom; printf '\n'; } >"$TMP/key"
head -c 32 /dev/urandom >"$TMP/wrongkey"
record "$TMP/crypt" 1 "$G/hello.elf" --key-file "$TMP/key"
t=$TMP/crypt
timeout 60 "$TTVM" replay "$t" --verify --key-file "$TMP/key" >"$t.vraw" \
    2>&1 && grep -q "^replay matches" "$t.vraw" ||
    fail "encrypted trace does not verify with its key"
for k in "" "--key-file $TMP/wrongkey"; do
    # shellcheck disable=SC2086
    "$TTVM" info "$t" $k >/dev/null 2>"$TMP/err"
    [ $? -eq 18 ] && grep -q "key" "$TMP/err" ||
        fail "encrypted trace opened with '${k:-no key}': $(cat "$TMP/err")"
done
grep -qa "hello from ring 3" "$t/data.mdb" && fail "plaintext in encrypted trace"

# ---- bad traces: one line, exit 18, no crash ----
# one_error CMD TRACE: stderr is one line "ttvm CMD: TRACE: ...", naming
# the trace once
one_error() {
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || {
        fail "ttvm $1 $2 printed $(wc -l <"$TMP/err") lines: $(head -c 300 "$TMP/err")"
        return 1
    }
    grep -q -F "ttvm ${1%% *}: $2: " "$TMP/err" &&
        [ "$(grep -o -F "$2" "$TMP/err" | wc -l)" -eq 1 ] || {
        fail "ttvm $1 $2: '$(cat "$TMP/err")' does not name the trace once"
        return 1
    }
}
bad() { # DESCRIPTION TRACE WORDING
    local what=$1 t=$2 wording=$3 c rc
    for c in "info" "replay --verify" "events"; do
        # shellcheck disable=SC2086
        timeout 120 "$TTVM" $c "$t" >/dev/null 2>"$TMP/err"
        rc=$?
        [ $rc -eq 18 ] || {
            fail "$what: ttvm $c exited $rc, want 18: $(head -c 300 "$TMP/err")"
            continue
        }
        one_error "$c" "$t" || continue
        grep -q -F -- "$wording" "$TMP/err" ||
            fail "$what: ttvm $c said '$(cat "$TMP/err")', not '$wording'"
    done
}
bad "missing trace" "$TMP/nonexistent" "No such file or directory"
mkdir "$TMP/emptydir"
bad "empty directory" "$TMP/emptydir" "not a ttvm trace (no data.mdb)"
bad "a regular file" "$TMP/in1" "not a ttvm trace (not a directory)"
copy() { rm -rf "$TMP/$1"; cp -r "$TMP/exceptions.elf" "$TMP/$1"; }
copy trunc
"$STORE_TOOL" damage "$TMP/trunc" --truncate 20000 >/dev/null
bad "truncated data.mdb" "$TMP/trunc" "trace corrupt: "
copy version
"$STORE_TOOL" damage "$TMP/version" --version 999 >/dev/null
bad "newer format" "$TMP/version" \
    "trace format version 999 is newer than this ttvm reads"
copy hash
"$STORE_TOOL" damage "$TMP/hash" --image-hash >/dev/null
for c in "info" "replay --verify"; do # events does not read the image
    # shellcheck disable=SC2086
    timeout 120 "$TTVM" $c "$TMP/hash" >/dev/null 2>"$TMP/err"
    rc=$?
    [ $rc -eq 18 ] && one_error "$c" "$TMP/hash" &&
        grep -q "does not match its SHA-256" "$TMP/err" ||
        fail "wrong image hash: ttvm $c exited $rc: $(cat "$TMP/err")"
done
# A flipped byte either hit bytes nothing reads (then the trace still
# describes and verifies exactly as before) or is reported: exit 18, one
# line.  No divergence (20), no crash, no hang.
t=$TMP/exceptions.elf
"$TTVM" info --json "$t" | grep -v '"trace"' >"$TMP/info0"
nev=$(count "$t" events)
size=$(stat -c %s "$t/data.mdb")
for off in 0 100 4096 8200 $((size / 2)) $((size - 5000)); do
    copy flip
    "$STORE_TOOL" damage "$TMP/flip" --flip "$off" >/dev/null
    timeout 120 "$TTVM" info --json "$TMP/flip" >"$TMP/iout" 2>"$TMP/err"
    rc=$?
    if [ $rc -eq 0 ]; then
        grep -v '"trace"' "$TMP/iout" | cmp -s - "$TMP/info0" ||
            fail "flip at $off: ttvm info exited 0 but describes another trace"
    elif [ $rc -eq 18 ]; then
        one_error info "$TMP/flip"
    else
        fail "flip at $off: ttvm info exited $rc: $(head -c 300 "$TMP/err")"
    fi
    timeout 120 "$TTVM" replay "$TMP/flip" --verify >"$TMP/vout" 2>"$TMP/err"
    rc=$?
    if [ $rc -eq 0 ]; then
        grep -q "^replay matches recording: $nev events$" "$TMP/vout" &&
            head -n -2 "$TMP/vout" | cmp -s - "$t.out" ||
            fail "flip at $off: verify exited 0 without matching all $nev events"
    elif [ $rc -eq 18 ]; then
        one_error "replay --verify" "$TMP/flip"
    else
        fail "flip at $off: ttvm replay --verify exited $rc: $(head -c 300 "$TMP/err")"
    fi
done

finish "record/verify: all checks passed"
