#!/bin/bash
# Boots every sample guest's Multiboot image under `qemu-system-x86_64
# -kernel` (serial on a file, input from a file) and checks its output and
# exit status against what guests/README.md specifies.  Small parameters
# keep it short.
#
# Accelerator: $QEMU_ACCEL if set; else TCG on a kvm-pvm host (QEMU's BIOS
# runs emulated there, ~5 s per boot); else KVM when it boots `hello`, with
# TCG as the fallback.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
G=$BUILD/guests
REF=$BUILD/tests/tools/guest_compute_ref
QEMU=${QEMU:-qemu-system-x86_64}
if ! command -v "$QEMU" >/dev/null 2>&1; then
    echo "skip: $QEMU is not installed (Debian package qemu-system-x86)"
    exit 77
fi
for f in "$G"/{hello,echo,compute,timer,exceptions,iostorm,rng,syscalls,bugparse}.mb "$REF"; do
    [ -e "$f" ] || { echo "missing $f: run 'make guests' and 'make test'"; exit 1; }
done

# run_qemu ACCEL IMAGE CMDLINE INPUT OUT: QEMU's exit status (124: timeout).
run_qemu() {
    timeout 60 "$QEMU" -accel "$1" -m 64 -kernel "$2" -append "$3" \
        -display none -monitor none -no-reboot \
        -chardev stdio,id=com1,signal=off -serial chardev:com1 \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
        <"$4" >"$5" 2>"$5.err"
}

if [ -n "${QEMU_ACCEL:-}" ]; then
    ACCEL=$QEMU_ACCEL
    echo "accelerator: $ACCEL (QEMU_ACCEL)"
elif [ -d /sys/module/kvm_pvm ]; then
    ACCEL=tcg
    echo "accelerator: tcg (kvm-pvm host: QEMU's BIOS would run emulated)"
elif [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
    run_qemu kvm "$G/hello.mb" hello /dev/null "$TMP/probe"
    [ $? -eq 1 ]; then
    ACCEL=kvm
    echo "accelerator: kvm"
else
    ACCEL=tcg
    echo "accelerator: tcg (KVM unusable for QEMU here)"
fi

# check NAME CMDLINE INPUT STATUS EXPECTED: exact output and exit status.
# EXPECTED is a file; lines starting with '~' are extended regexes.
check() {
    local name=$1 cmdline=$2 input=$3 want=$4 expected=$5 out=$TMP/out rc
    run_qemu "$ACCEL" "$G/$name.mb" "$cmdline" "$input" "$out"
    rc=$?
    if [ $rc -ne "$want" ]; then
        fail "$name '$cmdline': exit status $rc, expected $want"
        sed 's/^/    | /' "$out" "$out.err" | tail -n 20
        return
    fi
    if ! match_lines "$expected" "$out"; then
        fail "$name '$cmdline': output differs (expected, then got):"
        sed 's/^/    < /' "$expected"
        sed 's/^/    > /' "$out"
        return
    fi
    echo "ok: $name '$cmdline' (status $rc)"
}

match_lines() {   # expected-file actual-file
    local e a n=0
    mapfile -t E <"$1"
    mapfile -t A <"$2"
    [ ${#E[@]} -eq ${#A[@]} ] || return 1
    for e in "${E[@]}"; do
        a=${A[$n]}
        n=$((n + 1))
        if [ "${e:0:1}" = "~" ]; then
            [[ $a =~ ^${e:1}$ ]] || return 1
        else
            [ "$a" = "$e" ] || return 1
        fi
    done
}

exp() { cat >"$TMP/exp"; echo "$TMP/exp"; }
NONE=/dev/null

check hello "hello who=qemu" $NONE 1 "$(exp <<'EOF'
hello: booted via multiboot, 64 MiB RAM
hello: cmdline "hello who=qemu"
hello from ring 3 (pid 1)
hello: task exited with 0
EOF
)"

for ring in 3 0; do
    iters=$([ $ring = 3 ] && echo 1000000 || echo 20000)
    check compute "compute ring=$ring iters=$iters" $NONE 1 "$(exp <<EOF
compute: ring=$ring iters=$iters checksum=$("$REF" $iters)
EOF
)"
done

check timer "timer hz=200 ticks=10 sse=100000" $NONE 1 "$(exp <<'EOF'
timer: hz=200 ticks=10
timer: idle: 10 ticks in hlt, one wakeup per tick: yes
timer: ring 3: 10 ticks while computing, loop ran: yes
timer: sse: sum 1/k^2 for k<=100000 = 1.644924066898 (same twice: yes)
timer: ok
EOF
)"

X='at rip=0x[0-9a-f]+ err=0x0'
check exceptions "exceptions" $NONE 1 "$(exp <<EOF
~\[kernel\] task 1: #BP \(vector 3\) $X -> resumed at fixup
exceptions: int3: caught #BP (vector 3)
~\[kernel\] task 1: #DE \(vector 0\) $X -> resumed at fixup
exceptions: divide by zero: caught #DE (vector 0)
~\[kernel\] task 1: #PF \(vector 14\) at rip=0x[0-9a-f]+ err=0x4 cr2=0x0 -> resumed at fixup
exceptions: load from NULL: caught #PF (vector 14)
~\[kernel\] task 1: #GP \(vector 13\) $X -> resumed at fixup
exceptions: hlt in ring 3: caught #GP (vector 13)
~\[kernel\] task 1: #GP \(vector 13\) $X -> resumed at fixup
exceptions: inb from a port outside the I/O bitmap: caught #GP (vector 13)
~\[kernel\] task 1: #UD \(vector 6\) $X -> resumed at fixup
exceptions: ud2: caught #UD (vector 6)
exceptions: 6/6 caught
~\[kernel\] task 2: #PF \(vector 14\) at rip=0x[0-9a-f]+ err=0x6 cr2=0x0 -> task killed
exceptions: task 2 killed by vector 14
exceptions: ok
EOF
)"

# Ring 0 is the default.
for ring in 3 0; do
    args="ring=$ring n=5000"
    [ $ring = 0 ] && args="n=5000"
    check iostorm "iostorm $args" $NONE 1 "$(exp <<EOF
iostorm: ring=$ring iterations=5000 port accesses=20000
iostorm: scratch mismatches=0, clock values out of range=0
iostorm: ok
EOF
)"
done

# QEMU has no random port: every read gives the same value.
check rng "rng n=256" $NONE 1 "$(exp <<'EOF'
rng: 256 reads of port 0x600
~rng:( 0x[0-9a-f]{8}){8}
~rng: 8-bit 0x[0-9a-f]{2}, 16-bit 0x[0-9a-f]{4}
~rng: distinct among the first 64: 1, bits set: [0-9]+ of 8192 \(balanced: (yes|no)\)
rng: varied=no (no random port)
EOF
)"

check syscalls "syscalls sleep=3" $NONE 1 "$(exp <<'EOF'
syscalls: task 1 starting
syscalls: [pid 1] getpid() = 1
syscalls: [pid 1] hello through write()
syscalls: [pid 1] write() = 40
syscalls: [pid 1] sleep(3) = 0, ticks advanced by at least 3: yes
syscalls: [pid 1] yield() x3 = 0 0 0, ticks advanced: yes
syscalls: [pid 1] syscall 99 = -38 (ENOSYS)
syscalls: [pid 1] write(unmapped buffer) = -14 (EFAULT)
syscalls: [pid 1] exit(42)
syscalls: task 1 exited with 42
syscalls: [pid 2] getpid() = 2, returning 7
syscalls: task 2 exited with 7
syscalls: ok
EOF
)"

check echo "echo" guests/inputs/echo.txt 1 "$(exp <<'EOF'
echo: type lines; end with a line "." or Ctrl-D
1: HELLO WORLD
2: SECOND LINE 2
3: 
4: LAST
echo: 4 lines, 28 bytes
EOF
)"

check bugparse "bugparse" guests/inputs/bugparse-good.txt 1 "$(exp <<'EOF'
bugparse: reading key=value records; end with a line "." or Ctrl-D
bugparse: record 1: alpha = 10
bugparse: record 2: beta = 20
bugparse: record 3: gamma = 30
bugparse: line 4: no key=value, or key longer than 32 characters: skipped
bugparse: record 4: longest_ok_key_ = 5
bugparse: 4 records, values sum to 65
bugparse: ok
EOF
)"

# "_id_" = bytes 16..19 of the 24-character key, now in table_len.
check bugparse "bugparse" guests/inputs/bugparse-bad.txt 5 "$(exp <<'EOF'
bugparse: reading key=value records; end with a line "." or Ctrl-D
bugparse: record 1: alpha = 10
bugparse: record 2: beta = 20
bugparse: corruption detected in table_len (value 0x5f64695f)
EOF
)"

finish "all guests behaved under QEMU ($ACCEL)"
