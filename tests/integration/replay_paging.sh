#!/bin/bash
# A guest that turns on non-identity paging (guests/paging) records and
# runs on KVM, but Unicorn 2.0.1 translates virtual = physical: the
# replayer must refuse it clearly (ttvm index: exit status 14 naming the
# position and the mapping), never produce wrong states; opening it for
# replay fails the same way.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
need_kvm
P=$BUILD/guests/paging
[ -e "$P/paging.elf" ] || { echo "skip: no $P/paging.elf"; exit 77; }
for img in "$P/paging.elf" "$P/paging.mb"; do
    t=$TMP/$(basename "$img")
    "$TTVM" record "$img" -o "$t" </dev/null >"$TMP/out" 2>"$TMP/err"
    st=$?
    [ $st -eq 1 ] || { fail "$img: record exited $st"; continue; }
    grep -q "read 0x2222 directly" "$TMP/out" || fail "$img: guest output"
    "$TTVM" index "$t" >"$TMP/out" 2>&1
    st=$?
    [ $st -eq 14 ] || fail "$img: index exited $st: $(cat "$TMP/out")"
    [ "$(wc -l <"$TMP/out")" -eq 1 ] || fail "not one line: $(cat "$TMP/out")"
    grep -q "non-identity paging" "$TMP/out" &&
        grep -q "virtual 0x40000000 maps physical 0x400000" "$TMP/out" ||
        fail "$img: unclear: $(cat "$TMP/out")"
    "$TTVM" info "$t" | grep -q "^index *no" || fail "$img: an index was written"
    out=$("$BUILD/tests/tools/replay_check" events "$t" 2>&1)
    [ $? -eq 2 ] && grep -q "non-identity paging" <<<"$out" ||
        fail "$img: replay_open: $out"
    echo "  $(basename "$img"): $(head -c 150 "$TMP/out")"
done
finish "all good"
