#!/bin/bash
# `ttvm run` against `qemu-system-x86_64 -kernel` on the same Multiboot
# images: compute (ring 3), compute ring=0 (small), iostorm.  Median wall
# time of $RUNS runs each (default 5), and the ratio ttvm/QEMU (target
# <= 1.0).  QEMU runs with -accel kvm when it can; on a kvm-pvm host its
# BIOS then runs emulated in ring 0 (seconds per boot), so TCG is measured
# too and both ratios are printed.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TTVM=$PWD/$BUILD/ttvm
G=$BUILD/guests
RUNS=${RUNS:-5}
QEMU=${QEMU:-qemu-system-x86_64}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

CASES=(
    "compute|"
    "compute|ring=0"
    "iostorm|"
)

now_us() { echo $(( $(date +%s%N) / 1000 )); }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

ttvm_run() { # IMAGE ARGS: serial output in $TMP/out
    "$TTVM" run --cmdline "$2" "$1" </dev/null >"$TMP/out" 2>"$TMP/err"
}
qemu_run() { # ACCEL IMAGE ARGS: serial output in $TMP/out
    "$QEMU" -accel "$1" -m 64 -kernel "$2" -append "$3" -display none \
        -monitor none -no-reboot -serial "file:$TMP/out" \
        -device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null \
        >/dev/null 2>"$TMP/err"
}

# time_runs REF CMD...: the median wall time in ms of $RUNS runs.  Every
# run must end with the guest's debug-exit status and, when REF is a file,
# print exactly what REF holds (QEMU's own errors also exit 1).
time_runs() {
    local ref=$1; shift
    for _ in $(seq "$RUNS"); do
        local t0; t0=$(now_us)
        "$@"
        local rc=$?
        local t1; t1=$(now_us)
        if [ $((rc % 2)) -ne 1 ] || [ $rc -ge 128 ] ||
            { [ -f "$ref" ] && ! cmp -s "$ref" "$TMP/out"; }; then
            echo "   $*: exit $rc: $(head -c 200 "$TMP/err") $(head -c 200 "$TMP/out")" >&2
            return 1
        fi
        echo $(( (t1 - t0) / 1000 ))
    done | median
}

[ -x "$TTVM" ] || { echo "   no $TTVM: run make first"; exit 1; }
if ! command -v "$QEMU" >/dev/null; then
    echo "   $QEMU is not installed: nothing to compare with"
    exit 1
fi
accels="kvm tcg"
if [ -e "$G/hello.mb" ]; then
    ttvm_run "$G/hello.mb" "" && cp "$TMP/out" "$TMP/hello.ref"
    if ! time_runs "$TMP/hello.ref" qemu_run kvm "$G/hello.mb" "" >/dev/null 2>&1; then
        echo "   QEMU cannot use -accel kvm here: TCG only"
        accels=tcg
    fi
fi
[ -d /sys/module/kvm_pvm ] &&
    echo "   kvm-pvm host: QEMU's BIOS runs emulated in ring 0 under -accel kvm"

printf '   %-16s %9s' guest "ttvm ms"
for a in $accels; do printf ' %11s %11s' "qemu-$a ms" "ttvm/$a"; done
echo
status=0
for c in "${CASES[@]}"; do
    name=${c%%|*} args=${c#*|}
    img=$G/$name.mb
    label=$name${args:+ $args}
    if [ ! -e "$img" ]; then
        echo "   $label: skipped, $img missing (guest SDK not built)"
        continue
    fi
    ttvm_run "$img" "$args"
    cp "$TMP/out" "$TMP/ref" # the same output is required from QEMU
    t=$(time_runs "$TMP/ref" ttvm_run "$img" "$args") || { status=1; continue; }
    printf '   %-16s %9s' "$label" "$t"
    for a in $accels; do
        q=$(time_runs "$TMP/ref" qemu_run "$a" "$img" "$args") || { status=1; printf ' %11s %11s' fail -; continue; }
        printf ' %11s %11s' "$q" "$(awk -v a="$t" -v b="$q" 'BEGIN { printf "%.2f", a / b }')"
    done
    echo
done
exit $status
