# gdbtest.py — what the gdb test scripts (gdb_fakestub.py, gdb_replay.py)
# share: running commands, checks that stop at the first failure, and the
# markers around output gdb prints itself (lib.sh gdb_check_markers reads
# them).  Imported from inside gdb.
import os

import gdb


def run(cmd):
    return gdb.execute(cmd, to_string=True)


def run_expecting(cmd, *texts):
    """Runs cmd with its output on stdout, between markers that the shell
    half checks for texts: gdb prints some stop messages ("No more
    reverse-execution history.") and console output from the stub outside
    what to_string captures."""
    print("@@begin")
    gdb.flush()
    gdb.execute(cmd)
    gdb.flush()
    for t in texts:
        print("@@want %s" % t)
    print("@@end")


def check(cond, what):
    if not cond:
        print("FAIL: " + what)
        gdb.flush()
        os._exit(1)
    print("ok: " + what)
