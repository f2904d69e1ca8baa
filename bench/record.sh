#!/bin/bash
# bench/record.sh — recording costs, measured side by side in one run:
#   record ÷ run wall time (median of $RUNS each) on compute, iostorm, timer
#     targets: <= 1.10 on compute, <= 1.5 on iostorm
#   snapshot pause (vCPU held per snapshot), median and p99, for a 64 MiB
#     and a 1 GiB guest writing the same amount between snapshots
#     target: median <= 2 ms, and the same for both sizes
#   trace bytes per event (target <= 8 on iostorm), and the compression of
#     the snapshots' page data
# Every run must end with the guest's own exit status (1); a run that
# does not is reported and makes the script exit 1 (nothing measured).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
TTVM=$BUILD/ttvm
G=$BUILD/guests
RUNS=${RUNS:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0

[ -e /dev/kvm ] || { echo "record bench: skipped, no /dev/kvm"; exit 0; }

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# time_cmd OUT -- command...: wall seconds of one run appended to OUT; the
# guest must exit with status 1 (debug-exit 0), else the run is reported
time_cmd() {
    local out=$1; shift
    local t0 t1 rc
    t0=$(now); "$@" >/dev/null 2>"$tmp/err" </dev/null; rc=$?; t1=$(now)
    if [ $rc -ne 1 ]; then
        echo "  FAILED (exit $rc): $* : $(tail -n 1 "$tmp/err")"
        bad=1
    fi
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

num() { grep -o "\"$1\": [0-9.]*" "$2" | head -1 | awk '{print $2}'; }
ev=$(num events "$tmp/io.json"); eb=$(num event_bytes "$tmp/io.json")
printf '\niostorm trace: %s events, %.2f bytes/event (target <= 8)\n' \
    "$ev" "$(echo "$eb / $ev" | bc -l)"

# Snapshot pause.  memwrite writes 100 pages per 10 ms tick, each round
# the next page of its slots (move=1), so the rounds between two snapshots
# 100 ms apart dirty ~1000 distinct pages; the writes take a few ms, so
# the guest is halted when its tick comes and few interrupts need a kick.
# Whatever triggered a snapshot, it is counted here by the pages it holds:
# only snapshots of 800..1200 pages (the others are listed as excluded).
# Pages are filled with windows of the guest's own code (fill=4096), so
# the compression figure is that of real guest content, not of zeros.
MW="pages=100 rounds=${ROUNDS:-400} move=1 fill=4096"
echo
echo "snapshot pause, memwrite $MW, --snapshot-interval 100:"
printf '  %-5s %5s %7s %9s %9s %8s %s\n' guest snaps pages "median us" \
    "p99 us" excluded "target: median <= 2000 us, same for both"
for mem in 64M 1G; do
    rm -rf "$tmp/m"
    "$TTVM" record "$G/memwrite.elf" --mem "$mem" -o "$tmp/m" \
        --snapshot-interval 100 --cmdline "$MW" >/dev/null \
        2>"$tmp/m.txt" </dev/null
    rc=$?
    if [ $rc -ne 1 ]; then
        echo "  $mem: FAILED (exit $rc): $(tail -n 1 "$tmp/m.txt")"
        bad=1
        continue
    fi
    "$TTVM" info --json --snapshots "$tmp/m" >"$tmp/m.json"
    # id pages stored pause, snapshot 0 (the whole machine) left out
    sed -n 's/.*"id": \([0-9]*\),.*"pages": \([0-9]*\), "stored_bytes": \([0-9]*\), "pause_us": \([0-9]*\)}.*/\1 \2 \3 \4/p' \
        "$tmp/m.json" | awk '$1 > 0' >"$tmp/snaps"
    awk '$2 >= 800 && $2 <= 1200' "$tmp/snaps" >"$tmp/sel"
    n=$(wc -l <"$tmp/sel"); all=$(wc -l <"$tmp/snaps")
    if [ "$n" -lt 10 ]; then
        echo "  $mem: only $n of $all snapshots hold 800..1200 pages"
        bad=1
        continue
    fi
    pages=$(awk '{print $2}' "$tmp/sel" | median)
    med=$(awk '{print $4}' "$tmp/sel" | median)
    p99=$(awk '{print $4}' "$tmp/sel" | sort -g |
        awk '{a[NR]=$1} END {i = int((NR * 99 + 99) / 100); print a[i]}')
    printf '  %-5s %5d %7d %9d %9d %8d\n' "$mem" "$n" "$pages" "$med" \
        "$p99" "$((all - n))"
    awk '{p += $2; s += $3} END {printf "%d %d\n", p * 4096, s}' \
        "$tmp/sel" >"$tmp/comp.$mem"
done
if [ -e "$tmp/comp.64M" ]; then
    read -r raw stored <"$tmp/comp.64M"
    printf '\nsnapshot page data (64M run, those snapshots): %.1f MiB -> %.1f MiB stored, %.2fx (zstd; pages of guest code, none zero or equal)\n' \
        "$(echo "$raw / 1048576" | bc -l)" "$(echo "$stored / 1048576" | bc -l)" \
        "$(echo "$raw / $stored" | bc -l)"
fi
exit $bad
