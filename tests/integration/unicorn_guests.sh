#!/bin/bash
# Every sample guest under `ttvm run --backend unicorn`, both boot paths:
# the Unicorn backend must run them as KVM does — same serial output and
# exit status (rng prints random numbers: same line count).  Without
# /dev/kvm the status must still be a guest exit and the output non-empty.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
G=$BUILD/guests

ls "$G"/*.elf >/dev/null 2>&1 || { echo "skip: no sample guests in $G"; exit 77; }
kvm=0
[ -r /dev/kvm ] && [ -w /dev/kvm ] && kvm=1

for img in "$G"/*.elf "$G"/*.mb; do
    name=$(basename "$img")
    in=$(input_of "${name%.*}")
    timeout 120 "$TTVM" run --backend unicorn --timeout 100 --input "$in" \
        "$img" >"$TMP/u.out" 2>"$TMP/u.err"
    su=$?
    if [ $((su % 2)) -ne 1 ] || [ $su -ge 128 ]; then
        fail "$name: status $su under unicorn: $(tail -n 2 "$TMP/u.err")"
        continue
    fi
    [ -s "$TMP/u.out" ] || fail "$name: no serial output under unicorn"
    if [ $kvm = 1 ]; then
        timeout 120 "$TTVM" run --timeout 100 --input "$in" "$img" \
            >"$TMP/k.out" 2>"$TMP/k.err"
        sk=$?
        [ "$su" -eq "$sk" ] || fail "$name: status $su (unicorn) vs $sk (kvm)"
        if [ "${name%.*}" = rng ]; then
            [ "$(wc -l <"$TMP/u.out")" -eq "$(wc -l <"$TMP/k.out")" ] ||
                fail "rng: line counts differ between unicorn and kvm"
        elif ! cmp -s "$TMP/u.out" "$TMP/k.out"; then
            fail "$name: output differs between unicorn and kvm:"
            diff "$TMP/k.out" "$TMP/u.out" | head -n 10
        fi
    fi
    echo "  $name: status $su, $(wc -c <"$TMP/u.out") bytes of output"
done
[ $kvm = 1 ] || echo "  (no /dev/kvm: statuses checked, outputs not compared)"
finish "all good"
