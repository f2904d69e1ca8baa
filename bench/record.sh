#!/bin/bash
# bench/record.sh — recording costs, measured side by side in one run:
#   record ÷ run wall time (median of $RUNS each) on compute, iostorm, timer
#     targets: <= 1.10 on compute, <= 1.5 on iostorm
#   snapshot pause (vCPU held per snapshot), median and p99, for a 64 MiB
#     and a 1 GiB guest writing the same 1000 pages between snapshots
#     target: median <= 2 ms, and the same for both sizes
#   trace bytes per event (target <= 8 on iostorm), page compression ratio
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TTVM=$BUILD/ttvm
G=$BUILD/guests
RUNS=${RUNS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[ -e /dev/kvm ] || { echo "record bench: skipped, no /dev/kvm"; exit 0; }

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# time_cmd OUT -- command...: wall seconds of one run appended to OUT
time_cmd() {
    local out=$1; shift
    local t0 t1
    t0=$(now); "$@" >/dev/null 2>&1 </dev/null; t1=$(now)
    echo "$t1 - $t0" | bc -l >>"$out"
}

printf '%-10s %10s %10s %8s %s\n' guest "run s" "record s" ratio target
for spec in "compute::1.10" "iostorm::1.5" "timer::-"; do
    IFS=: read -r g cl target <<<"$spec"
    : >"$tmp/run" ; : >"$tmp/rec"
    for i in $(seq "$RUNS"); do
        time_cmd "$tmp/run" "$TTVM" run "$G/$g.elf" --cmdline "$cl"
        rm -rf "$tmp/t"
        time_cmd "$tmp/rec" "$TTVM" record "$G/$g.elf" --cmdline "$cl" \
            -o "$tmp/t"
    done
    r=$(median <"$tmp/run"); c=$(median <"$tmp/rec")
    printf '%-10s %10.3f %10.3f %8.2f %s\n' "$g" "$r" "$c" \
        "$(echo "$c / $r" | bc -l)" "$target"
    if [ "$g" = iostorm ]; then
        "$TTVM" info --json "$tmp/t" >"$tmp/io.json"
    fi
done

num() { grep -o "\"$1\": [0-9.]*" "$2" | awk '{print $2}'; }
ev=$(num events "$tmp/io.json"); eb=$(num event_bytes "$tmp/io.json")
printf '\niostorm trace: %s events, %.2f bytes/event (target <= 8), page compression %.2fx\n' \
    "$ev" "$(echo "$eb / $ev" | bc -l)" "$(num compression_ratio "$tmp/io.json")"

echo
echo "snapshot pause, memwrite pages=1000 rounds=100 (1000 pages written per snapshot interval):"
for mem in 64M 1G; do
    rm -rf "$tmp/m"
    "$TTVM" record "$G/memwrite.elf" --mem "$mem" -o "$tmp/m" \
        --cmdline "pages=1000 rounds=100" >/dev/null 2>"$tmp/m.txt" </dev/null
    line=$(grep -o 'pause median [0-9]* us, p99 [0-9]* us' "$tmp/m.txt")
    printf '  %-4s guest: %s (target median <= 2000 us)\n' "$mem" "$line"
done
