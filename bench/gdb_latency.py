# bench/gdb_latency.py — latency of gdb's time-travel commands, timed
# inside gdb (Python), against ttvm's stub or QEMU's record/replay gdbstub
# on the same guest.  Run by bench/gdb_vs_qemu.sh with:
#   BENCH_TARGET  ttvm | qemu
#   BENCH_PORT    QEMU's gdbstub port (ttvm replay --batch connects itself)
#   BENCH_BREAK   address of a breakpoint hit once, early (compute_task)
#   BENCH_BACK    how far past that hit to seek before reverse-continue
#   BENCH_N       repetitions of stepi / reverse-stepi
# Prints one line "result KEY SECONDS" per figure.
import os
import re
import statistics
import time

import gdb

TARGET = os.environ["BENCH_TARGET"]
BREAK = int(os.environ["BENCH_BREAK"], 0)
BACK = int(os.environ.get("BENCH_BACK", "100000000"))
N = int(os.environ.get("BENCH_N", "10"))


def run(cmd):
    return gdb.execute(cmd, to_string=True)


def timed(cmd):
    t0 = time.perf_counter()
    run(cmd)
    return time.perf_counter() - t0


def position():
    if TARGET == "ttvm":
        return int(re.search(r"icount (\d+)", run("monitor when")).group(1))
    out = run("monitor info replay")
    return int(re.search(r"instruction count = (\d+)", out).group(1))


def seek(n):
    if TARGET == "ttvm":
        run("monitor goto %d" % n)
    else:
        # QEMU's replay_seek runs the VM behind gdb's back; a replay
        # breakpoint plus continue moves forward the way gdb knows.
        if n < position():
            raise SystemExit("QEMU can seek forward only here")
        run("monitor replay_break %d" % n)
        run("continue")
    run("maint flush register-cache")
    got = position()
    if got != n:
        raise SystemExit("seek to %d landed at %d" % (n, got))


def result(key, secs):
    print("result %s %.6f" % (key, secs))
    gdb.flush()


run("set confirm off")
run("set pagination off")
if TARGET == "qemu":
    run("set architecture i386:x86-64")
    run("target remote 127.0.0.1:%s" % os.environ["BENCH_PORT"])
run("break *0x%x" % BREAK)
t = timed("continue")
hit = position()
if int(gdb.parse_and_eval("$pc")) != BREAK:
    raise SystemExit("continue did not stop at the breakpoint")
result("continue_to_break", t)
result("break_icount", hit)
result("stepi", statistics.median(timed("stepi") for _ in range(N)))
run("disable")
seek(hit + BACK)
first = timed("reverse-stepi")
result("reverse_stepi_first", first)
result("reverse_stepi", statistics.median(timed("reverse-stepi")
                                          for _ in range(N)))
run("enable")
t = timed("reverse-continue")
if position() != hit:
    raise SystemExit("reverse-continue stopped at %d, not at the hit %d"
                     % (position(), hit))
result("reverse_continue", t)
run("delete")
if TARGET == "qemu":
    run("kill")
