# lib.sh — sourced by the integration tests (not executable, so tests/run
# does not run it).  Run from the repository root: sets BUILD, TTVM and a
# private TMP removed at exit, and gives the helpers every test needs.
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac # absolute: tests cd
TTVM=${TTVM:-$BUILD/ttvm}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0

# fail MESSAGE: counts a failure and goes on (see finish).
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# need_kvm: skips the test (exit 77, reason last) on a machine without KVM.
need_kvm() {
    if [ ! -e /dev/kvm ]; then
        echo "skip: /dev/kvm does not exist on this machine"
        exit 77
    fi
}

# finish MESSAGE: exits 1 after any failure, else prints MESSAGE.
finish() {
    [ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
    echo "$1"
}

# input_of NAME: the sample guest's first input file in guests/inputs, or
# /dev/null.
input_of() {
    local f
    for f in "guests/inputs/$1.txt" guests/inputs/"$1"-*.txt; do
        [ -e "$f" ] && { echo "$f"; return; }
    done
    echo /dev/null
}

# gdb_check_markers OUT PHASE: the texts a gdb Python script expected gdb
# itself to print (between its "@@begin" and "@@end" lines, each named by
# an "@@want TEXT" line) are there; prints ok/FAIL lines, 1 on a miss.
gdb_check_markers() {
    awk -v phase="$2" '
        /^@@begin$/ { inside = 1; text = ""; next }
        /^@@want /  { want = substr($0, 8)
                      if (index(text, want)) print "[" phase "] ok: says \"" want "\""
                      else { print "[" phase "] FAIL: missing \"" want "\""; bad = 1 }
                      next }
        /^@@end$/   { inside = 0; next }
        inside      { text = text $0 "\n" }
        END         { exit bad }' "$1"
}
