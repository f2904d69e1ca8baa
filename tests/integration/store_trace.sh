#!/bin/bash
# storage: a trace is an ordinary LMDB environment (mdb_stat -a, mdb_dump -a
# read it), and damaged, foreign, newer or mis-keyed traces give one-line
# errors and exit status 1, never a crash (tests/tools/store_tool).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
TOOL=$BUILD/tests/tools/store_tool
if ! command -v mdb_stat >/dev/null || ! command -v mdb_dump >/dev/null; then
    echo "mdb_stat/mdb_dump missing (package lmdb-utils)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# check_err TRACE PATTERN [KEY]: store_tool check must exit 1 naming PATTERN
check_err() {
    local out rc
    out=$($TOOL check "$1" ${3:+--key "$3"} 2>&1); rc=$?
    [ $rc -eq 1 ] || fail "check $1: exit $rc (want 1): $out"
    [ "$(wc -l <<<"$out")" -eq 1 ] || fail "check $1: not one line: $out"
    grep -q -- "$2" <<<"$out" || fail "check $1: '$out' lacks '$2'"
}

$TOOL synth "$tmp/t" --events 20000 --snapshots 5 --index >/dev/null \
    || fail "synth"
mdb_stat -a "$tmp/t" >"$tmp/stat" || fail "mdb_stat -a"
for db in meta events snapshots pagever pages index; do
    grep -q "Status of $db" "$tmp/stat" || fail "mdb_stat lacks $db"
done
mdb_dump -a "$tmp/t" >"$tmp/dump" || fail "mdb_dump -a"
grep -q "database=events" "$tmp/dump" || fail "mdb_dump lacks events"
out=$($TOOL check "$tmp/t") || fail "check: $out"
[ "$out" = "ok: 20000 events, 5 snapshots, complete, indexed" ] \
    || fail "check said: $out"

check_err "$tmp/none" "not a ttvm trace"
mkdir "$tmp/empty"
check_err "$tmp/empty" "not a ttvm trace"

cp -r "$tmp/t" "$tmp/newer"
$TOOL damage "$tmp/newer" --version 99 || fail "damage --version"
check_err "$tmp/newer" "newer than this ttvm reads"

cp -r "$tmp/t" "$tmp/hash"
$TOOL damage "$tmp/hash" --image-hash || fail "damage --image-hash"
check_err "$tmp/hash" "does not match its SHA-256"

size=$(stat -c %s "$tmp/t/data.mdb")
for cut in 0 4096 20000 $((size / 2)); do
    rm -rf "$tmp/cut"; cp -r "$tmp/t" "$tmp/cut"; rm -f "$tmp/cut/lock.mdb"
    $TOOL damage "$tmp/cut" --truncate $cut || fail "truncate $cut"
    check_err "$tmp/cut" "corrupt"
done

# flipped bytes anywhere: ok or a one-line error, never a signal
# (and the last page may be a free one: cutting it can be harmless)
for off in 0 100 4096 4200 8192 9000 20000 40000 -4096 -100 -1; do
    rm -rf "$tmp/flip"; cp -r "$tmp/t" "$tmp/flip"; rm -f "$tmp/flip/lock.mdb"
    $TOOL damage "$tmp/flip" --flip -- "$off" 2>/dev/null \
        || $TOOL damage "$tmp/flip" --flip "$off" || fail "flip $off"
    out=$($TOOL check "$tmp/flip" 2>&1); rc=$?
    [ $rc -le 1 ] || fail "flip at $off: exit $rc: $out"
done
rm -rf "$tmp/cut"; cp -r "$tmp/t" "$tmp/cut"; rm -f "$tmp/cut/lock.mdb"
$TOOL damage "$tmp/cut" --truncate $((size - 4096)) || fail "truncate"
out=$($TOOL check "$tmp/cut" 2>&1); rc=$?
[ $rc -le 1 ] || fail "cut last page: exit $rc: $out"

key=$(printf '%064x' 12345)
wrong=$(printf '%064x' 12346)
$TOOL synth "$tmp/enc" --events 5000 --snapshots 2 --key "$key" >/dev/null \
    || fail "synth encrypted"
$TOOL check "$tmp/enc" --key "$key" >/dev/null || fail "encrypted check"
check_err "$tmp/enc" "a key is needed"
check_err "$tmp/enc" "wrong key" "$wrong"

$TOOL synth "$tmp/inc" --events 100 --snapshots 1 --incomplete >/dev/null
out=$($TOOL check "$tmp/inc") || fail "incomplete: $out"
grep -q "incomplete" <<<"$out" || fail "incomplete trace said: $out"
# ttvm info: per-snapshot sizes, and where an incomplete trace ends
TTVM=${TTVM:-$BUILD/ttvm}
"$TTVM" info --json --snapshots "$tmp/t" >"$tmp/info.json" || fail "info --json"
n=$(grep -c '^    {"id": ' "$tmp/info.json")
[ "$n" -eq 5 ] || fail "info --snapshots lists $n snapshots, want 5"
sum=$(grep -o '"stored_bytes": [0-9]*' "$tmp/info.json" |
    awk '{s += $2} END {print s}')
total=$(grep -o '"snapshot_bytes": [0-9]*' "$tmp/info.json" | awk '{print $2}')
[ "$sum" = "$total" ] && [ "$total" -gt 0 ] ||
    fail "snapshot stored bytes sum to $sum, snapshot_bytes is $total"
"$TTVM" info --snapshots "$tmp/t" | grep -q "^ *4 periodic " ||
    fail "info --snapshots text lacks snapshot 4"
"$TTVM" info "$tmp/inc" | grep -q "^ends *after event 100 .*last snapshot 0" ||
    fail "info does not say where the incomplete trace ends"
"$TTVM" info --json "$tmp/inc" | grep -q '"ends": {"events": 100, "last_snapshot": 0' ||
    fail "info --json does not say where the incomplete trace ends"
echo "store_trace: ok"
