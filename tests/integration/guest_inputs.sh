# Sourced by integration tests (not executable, so tests/run skips it).
# input_of NAME: the sample guest's first input file in guests/inputs, or
# /dev/null.
input_of() {
    local f
    for f in "guests/inputs/$1.txt" guests/inputs/"$1"-*.txt; do
        [ -e "$f" ] && { echo "$f"; return; }
    done
    echo /dev/null
}
