# gdb_fakestub.py — drives the real gdb against the stub serving the fake
# target (build/tests/tools/fakestub).  Run by gdb_fakestub.sh:
#   gdb -nx -batch -x gdb_fakestub.py   with TTVM_PORT, TTVM_PHASE set.
#
# The fake's trace is a function of the position i (tests/support/dbg_fake.h):
#   rip = 0x100000 + 4 * (i % 16), rax = i;
#   instruction i with i % 16 == 5 writes i to variable (i / 16) % 4 at
#   0x200000 + 8 * var (initially 0x1111 * (var + 1)).
# So every answer below is checked against a value computed here.
import os
import signal
import sys
import threading
import time

import gdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gdbtest import check, run, run_expecting  # noqa: E402

CODE, DATA = 0x100000, 0x200000
END, EXIT_STATUS = int(os.environ["TTVM_END"]), 3
stops = []


def on_stop(ev):
    stops.append(ev)


gdb.events.stop.connect(on_stop)




def val(expr):
    return int(gdb.parse_and_eval(expr))


def pc_at(i):
    return CODE + 4 * (i % 16)


def var_at(i, var):
    first = 16 * var + 5
    if i <= first:
        return 0x1111 * (var + 1)
    return first + (i - 1 - first) // 64 * 64



def position():
    return val("$rax")


def registers():
    check(val("$rip") == CODE and position() == 0, "starts at icount 0")
    check(val("$rbx") == 0 and val("$rcx") == -1, "rbx, rcx")
    check(val("$rsp") == 0x300800 and val("$rbp") == 0x300800, "rsp, rbp")
    check(val("$eflags") == 0x202, "eflags")
    check(val("$cs") == 8 and val("$ss") == 0x10 and val("$fs") == 0x18,
          "selectors")
    check(val("$fs_base") == 0x70000000 and val("$gs_base") == 0x80000000,
          "fs_base, gs_base")
    check(val("$cr0") == 0x80010033 and val("$cr3") == 0x9000
          and val("$efer") == 0xD01, "control registers")
    check(float(gdb.parse_and_eval("$st0")) == 0.5, "st0 = 0.5 (x87)")
    check(val("$ftag") == 0x3FFF and val("$fstat") == 0x3800, "x87 tag/status")
    check(val("$xmm0.v16_int8[3]") == 3, "xmm0 bytes")
    check(float(gdb.parse_and_eval("$xmm1.v2_double[0]")) == 0.0, "xmm1")
    check(val("$mxcsr") == 0x1F80, "mxcsr")
    out = run("info registers rip")
    check("0x100000" in out, "info registers rip")


def stepping():
    n = 20
    pcs = [val("$pc")]
    for _ in range(n):
        run("stepi")
        pcs.append(val("$pc"))
    check(position() == n, "stepi x%d reaches icount %d" % (n, n))
    check(pcs == [pc_at(i) for i in range(n + 1)], "forward pcs")
    back = [val("$pc")]
    for _ in range(n):
        run("reverse-stepi")
        back.append(val("$pc"))
    check(back == pcs[::-1], "reverse-stepi retraces the pcs in reverse")
    check(position() == 0, "back at icount 0")
    run_expecting("reverse-stepi", "No more reverse-execution history.")
    check(position() == 0, "reverse-stepi at 0 stays at 0")
    run("stepi 5")
    check(position() == 5, "stepi 5")
    run("reverse-stepi 5")
    check(position() == 0, "reverse-stepi 5")


def breakpoints():
    run("break *0x%x" % (CODE + 0x24))
    run("continue")
    check(position() == 9 and val("$pc") == CODE + 0x24, "break + continue")
    check(isinstance(stops[-1], gdb.BreakpointEvent), "a breakpoint stop")
    run("continue")
    check(position() == 25, "continue to the next hit")
    run("reverse-continue")
    check(position() == 9, "reverse-continue to the previous hit")
    run_expecting("reverse-continue", "No more reverse-execution history.")
    check(position() == 0, "reverse-continue past the start stops at 0")
    run("delete")
    run("hbreak *0x%x" % (CODE + 0x8))
    run("continue")
    check(position() == 2 and isinstance(stops[-1], gdb.BreakpointEvent),
          "hardware breakpoint")
    run("delete")


def watchpoints():
    var2 = DATA + 16  # written by instructions 64m + 37
    run("watch *(long *)0x%x" % var2)
    run_expecting("continue", "Hardware watchpoint", "Old value = %d"
                  % 0x3333, "New value = 37")
    check(position() == 38, "watch + continue stops after the write")
    run("continue")
    check(position() == 102, "next write")
    out = run("reverse-continue")
    check(position() == 101, "watch + reverse-continue: before the write")
    check(val("*(long *)0x%x" % var2) == var_at(101, 2) == 37,
          "memory holds the old value there")
    run("reverse-continue")
    check(position() == 37, "the write before that")
    run("delete")
    run("rwatch *(long *)0x%x" % DATA)  # read by 64m + 9
    run("continue")
    check(position() == 74, "rwatch + continue")
    run("delete")
    run("awatch *(long *)0x%x" % (DATA + 8))  # 64m + 21 / 25
    run("reverse-continue")
    check(position() == 25, "awatch + reverse-continue")
    run("delete")


def memory():
    out = run("x/4xb 0x%x" % CODE)
    check("0x0f\t0x1f\t0x40\t0x00" in out, "x/4xb code: " + out.strip())
    run("set var *(long *)0x300010 = 0x1234")
    check(val("*(long *)0x300010") == 0x1234, "memory write")
    run("set var $rbx = 77")
    check(val("$rbx") == 77, "register write")
    run("stepi")
    run("reverse-stepi")
    run("maint flush register-cache")
    check(val("$rbx") == 3 * position(), "register write discarded by moving")
    check(val("*(long *)0x300010") == 0, "memory write discarded by moving")
    try:
        run("x/x 0x10")
        check(False, "unmapped memory must fail")
    except gdb.MemoryError:
        check(True, "unmapped memory: gdb.MemoryError")


def monitor():
    out = run("monitor when")
    check("icount %d of %d" % (position(), END) in out, "monitor when: " + out)
    out = run("monitor goto 500")
    check("now at icount 500" in out, "monitor goto")
    run("maint flush register-cache")
    check(position() == 500 and val("$pc") == pc_at(500),
          "registers after goto")
    out = run("monitor info events 2-3")
    check("#2 " in out and "#3 " in out and "icount 250" in out,
          "monitor info events")
    out = run("monitor info snapshots")
    check("snapshots" in out and "icount 250" in out,
          "monitor info snapshots")
    out = run("monitor help")
    check("discarded" in out, "monitor help mentions discarded writes")
    out = run("monitor nonsense")
    check("unknown monitor command" in out, "unknown monitor command")


def the_end():
    run_expecting("continue", "No more reverse-execution history.")
    check(position() == END, "continue runs to the end")
    run("reverse-stepi")
    run_expecting("stepi", "the guest exited with status %d" % EXIT_STATUS)
    check(position() == END, "stepi onto the end")
    run("reverse-stepi")
    check(position() == END - 1, "reverse-stepi works at the end")
    run("break *0x%x" % pc_at(END - 40))
    run("reverse-continue")  # the last hit: END - 40 + 32
    check(position() == END - 8, "reverse-continue from the end")
    run("delete")


def interrupt():
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    t0 = time.time()
    run("continue")
    took = time.time() - t0
    ev = stops[-1]
    check(isinstance(ev, gdb.SignalEvent) and ev.stop_signal == "SIGINT",
          "Ctrl-C stops the continue with SIGINT")
    check(took < 5 and 0 < position() < END, "interrupted in %.2fs at %d"
          % (took, position()))
    here = position()
    run("stepi")
    check(position() == here + 1, "stepping goes on after Ctrl-C")


phase = os.environ["TTVM_PHASE"]
run("set confirm off")
run("set pagination off")
run("target remote 127.0.0.1:%s" % os.environ["TTVM_PORT"])
if phase == "main":
    registers()
    stepping()
    breakpoints()
    watchpoints()
    memory()
    monitor()
    the_end()
    run("monitor goto 123")
    run("detach")
elif phase == "second":
    # The replay stayed where the first client detached.
    check("icount 123 of" in run("monitor when"), "second connection")
    check(position() == 123, "registers of the second connection")
    run("kill")
elif phase == "third":
    check("icount 123 of" in run("monitor when"), "third, after kill")
    run_expecting("continue", "No more reverse-execution history.")
    check(position() == END, "at the end")
    run_expecting("continue", "exited with code %02d" % EXIT_STATUS)
    check(len(gdb.inferiors()[0].threads()) == 0, "the session ended")
elif phase == "interrupt":
    interrupt()
    run("detach")
print("ALL OK")
