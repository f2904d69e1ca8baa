# gdb_replay.py — the real gdb against `ttvm replay` on real recordings.
# Run by gdb_replay.sh as `ttvm replay TRACE --batch gdb_replay.py` (or by
# a plain gdb for the connection phases) with:
#   TTVM_PHASE   which checks to run (see the end of this file)
#   TTVM_TRACE   the trace being served
#   TTVM_CHECK   build/tests/tools/replay_check: the ground truth, computed
#                by a replay of its own through the replayer API
#   TTVM_ADDR, TTVM_LEN  memory compared with the truth at every stop
# Every stop is compared with the truth at the position the stub reports
# (`monitor when`): all general registers, rip, eflags, and memory.
import os
import re
import subprocess
import sys

import gdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gdbtest import check, run, run_expecting  # noqa: E402

TRACE = os.environ.get("TTVM_TRACE", "")
CHECK = os.environ.get("TTVM_CHECK", "")
ADDR = int(os.environ.get("TTVM_ADDR", "0"), 0)
LEN = int(os.environ.get("TTVM_LEN", "0"), 0)
REGS = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9",
        "r10", "r11", "r12", "r13", "r14", "r15", "rip", "eflags"]
M64 = (1 << 64) - 1
stops = []
gdb.events.stop.connect(lambda ev: stops.append(ev))





def val(expr):
    return int(gdb.parse_and_eval(expr)) & M64


def when():
    out = run("monitor when")
    m = re.search(r"icount (\d+) of (\d+)", out)
    check(m is not None, "monitor when parses: " + out.strip())
    return int(m.group(1)), int(m.group(2))


def icount():
    return when()[0]


def truth(*positions, addr=None, length=None):
    """The replayer's own state at each position, with the memory at
    addr (default ADDR, LEN): {icount: {reg: v, "mem": hex}}."""
    addr = ADDR if addr is None else addr
    length = LEN if length is None else length
    out = subprocess.run(
        [CHECK, "state", TRACE, hex(addr), str(length)]
        + [str(p) for p in positions],
        capture_output=True, text=True, timeout=300)
    check(out.returncode == 0, "replay_check state: " + out.stderr.strip())
    states = {}
    for line in out.stdout.splitlines():
        f = line.split()
        st = dict(kv.split("=") for kv in f[2:])
        states[int(f[1])] = {k: (v if k == "mem" else int(v, 16))
                             for k, v in st.items()}
    return states


def here():
    """Registers and memory as gdb sees them at this stop."""
    st = {r: val("$" + r) for r in REGS}
    if LEN:
        st["mem"] = bytes(gdb.selected_inferior().read_memory(ADDR, LEN)).hex()
    return st


def same_as_truth(states, what):
    """states: [(icount, here())...], compared with the truth in one go."""
    t = truth(*[ic for ic, _ in states])
    for ic, st in states:
        want = t[ic]
        bad = [k for k in st if st[k] != want[k]]
        check(not bad, "%s: state at icount %d matches the replayer%s" % (
            what, ic, "" if not bad else ": " + ", ".join(
                "%s %s != %s" % (k, st[k], want[k]) for k in bad)))


def stop_here():
    return (icount(), here())


# ---- phases ---------------------------------------------------------------

def stepping(n):
    """stepi n times, then reverse-stepi n times: the same states in
    reverse order, each the replayer's truth."""
    fwd = [stop_here()]
    for _ in range(n):
        run("stepi")
        fwd.append(stop_here())
    check([ic for ic, _ in fwd] == list(range(fwd[0][0], fwd[0][0] + n + 1)),
          "stepi moves one instruction at a time")
    back = [fwd[-1]]
    for _ in range(n):
        run("reverse-stepi")
        back.append(stop_here())
    check(back == fwd[::-1], "reverse-stepi retraces the %d stepi states" % n)
    same_as_truth(fwd, "stepi")
    run("stepi %d" % n)
    check(icount() == fwd[0][0] + n, "stepi %d" % n)
    run("reverse-stepi %d" % n)
    check(icount() == fwd[0][0], "reverse-stepi %d" % n)


def phase_steps():
    ic, end = when()
    check(ic == 0, "the replay starts at icount 0")
    same_as_truth([stop_here()], "start")
    stepping(25)
    for target in [int(x) for x in os.environ.get("TTVM_AT", "").split()]:
        # Around interesting positions (interrupts, kicks): go there, then
        # step over them both ways.
        run("monitor goto %d" % target)
        run("maint flush register-cache")
        check(icount() == target, "monitor goto %d" % target)
        stepping(8)
    run("monitor goto 0")
    run("maint flush register-cache")
    run_expecting("reverse-stepi", "No more reverse-execution history.")
    check(icount() == 0, "reverse-stepi at 0 stays at 0")


def hits_of(addr, n):
    out = subprocess.run([CHECK, "hits", TRACE, hex(addr), str(n)],
                         capture_output=True, text=True, timeout=300)
    check(out.returncode == 0, "replay_check hits: " + out.stderr.strip())
    return [int(l.split()[1]) for l in out.stdout.splitlines()]


def phase_breaks():
    """continue and reverse-continue over a breakpoint stop exactly at the
    hits a forward scan of the replayer finds, in both orders."""
    loc = os.environ["TTVM_BREAK"]
    n = int(os.environ.get("TTVM_NHITS", "6"))
    out = run("break %s" % loc)
    addr = int(re.search(r" at (0x[0-9a-f]+)", out).group(1), 16)
    want = hits_of(addr, n)
    check(len(want) >= 2, "the breakpoint has %d hits" % len(want))
    fwd = []
    for _ in want:
        run("continue")
        check(isinstance(stops[-1], gdb.BreakpointEvent), "a breakpoint stop")
        fwd.append(stop_here())
    check([ic for ic, _ in fwd] == want,
          "continue stops at every hit: %s" % want)
    same_as_truth(fwd, "continue to %s" % loc)
    back = [fwd[-1]]
    for _ in want[1:]:
        run("reverse-continue")
        check(isinstance(stops[-1], gdb.BreakpointEvent),
              "a breakpoint stop backwards")
        back.append(stop_here())
    check(back == fwd[::-1], "reverse-continue stops at the same hits in "
          "reverse order")
    run_expecting("reverse-continue", "No more reverse-execution history.")
    check(icount() == 0, "reverse-continue past the first hit ends at 0")
    run("delete")


def watch_stop():
    ev = stops[-1]
    return isinstance(ev, gdb.BreakpointEvent) and ev.breakpoint.type in (
        gdb.BP_WATCHPOINT, gdb.BP_HARDWARE_WATCHPOINT,
        gdb.BP_READ_WATCHPOINT, gdb.BP_ACCESS_WATCHPOINT)


def frame_name():
    return gdb.selected_frame().name()


def line():
    return gdb.selected_frame().find_sal().line


def phase_source():
    """reverse-next, reverse-step and reverse-finish in bugparse's
    parse_line(): each lands where the forward commands came from."""
    run("break parse_line")
    run("continue")
    run("delete")
    check(frame_name() == "parse_line", "in parse_line")
    a = stop_here()          # at `klen = parse_key(line)`
    a_line = line()
    run("next")
    b = stop_here()          # the line after the call
    check(frame_name() == "parse_line" and line() > a_line,
          "next steps over parse_key")
    run("reverse-next")
    check(stop_here() == a and line() == a_line,
          "reverse-next steps back over the call to where next started")
    run("next")
    check(stop_here() == b, "next again")
    run("reverse-step")
    check(frame_name() == "parse_key",
          "reverse-step enters the callee's last line")
    inside = stop_here()
    same_as_truth([b, inside], "reverse-step")
    run("reverse-finish")
    check(frame_name() == "parse_line", "reverse-finish returns to the caller")
    call = stop_here()
    insn = gdb.selected_inferior().read_memory(call[1]["rip"], 1)
    check(bytes(insn) == b"\xe8", "reverse-finish stops on the call")
    check(a[0] <= call[0] < inside[0], "the call lies between")
    same_as_truth([call], "reverse-finish")
    run("stepi")
    check(frame_name() == "parse_key", "stepi into the call")
    run("finish")
    check(frame_name() == "parse_line" and val("$pc") == call[1]["rip"] + 5
          and inside[0] < icount() <= b[0],
          "finish runs forward out of parse_key, to its return address")


def writer_of(addr, length, lo, p):
    out = subprocess.run([CHECK, "writer", TRACE, hex(addr), str(length),
                          str(lo), str(p)],
                         capture_output=True, text=True, timeout=600)
    check(out.returncode == 0, "replay_check writer: " + out.stderr.strip())
    f = out.stdout.split()
    return None if f[1] == "none" else int(f[1])


def phase_watch():
    """bugparse: who wrote table_len?  watch + reverse-continue stops before
    the same instruction a brute-force scan finds."""
    run("break report_corruption")
    run("continue")
    run("delete")
    p = icount()
    addr = val("&table_len")
    bad = val("table_len")
    run("watch table_len")
    run("reverse-continue")
    check(watch_stop(),
          "reverse-continue stops for the watchpoint")
    w = icount()
    check(w == writer_of(addr, 4, 0, p), "the same last writer as a "
          "brute-force scan (icount %d)" % w)
    check(frame_name() == "parse_key", "the writer is in parse_key")
    check(val("table_len") != bad, "memory still holds the old value")
    run("stepi")
    check(val("table_len") == bad, "one step on, the bad value is written")
    run("delete")
    # The writer before that one, found the same two ways.
    run("reverse-stepi")
    run("watch table_len")
    run("reverse-continue")
    w2 = icount()
    check(w2 == writer_of(addr, 4, 0, w), "the writer before, too (%d)" % w2)
    run("delete")


def phase_held():
    """compute: a value held constant through the whole checksum loop.
    Its write watchpoint reverse-continues from after the loop straight to
    the one store that set it, before the loop began."""
    run("break compute_task")
    run("continue")
    entry = icount()
    addr = val("$rdi")       # compute_task(void *arg): &iters
    iters = val("*(unsigned long *)%d" % addr)
    run("delete")
    run("break user_printf")
    run("watch -l *(unsigned long *)%d" % addr)
    run("continue")
    check(isinstance(stops[-1], gdb.BreakpointEvent) and not watch_stop(),
          "forward: the loop never writes the watched value")
    after = icount()
    check(after - entry > 4 * iters,
          "the loop ran in between (%d instructions)" % (after - entry))
    for b in gdb.breakpoints():
        if b.type == gdb.BP_BREAKPOINT:
            b.delete()
    run("reverse-continue")
    check(watch_stop(),
          "reverse-continue stops for the watchpoint")
    w = icount()
    check(w < entry, "the store is before compute_task (%d < %d)" % (w, entry))
    check(frame_name() == "guest_main", "the store is in guest_main")
    t = truth(w, w + 1, addr=addr, length=8)
    check(t[w]["mem"] != t[w + 1]["mem"], "the instruction at %d writes it" % w)
    check(int.from_bytes(bytes.fromhex(t[w + 1]["mem"]), "little") == iters,
          "and writes the value the loop used")
    run("delete")


def phase_ends():
    exits = []
    gdb.events.exited.connect(lambda ev: exits.append(ev))
    run_expecting("reverse-continue", "No more reverse-execution history.")
    check(icount() == 0, "reverse-continue from 0 stays at 0")
    end = when()[1]
    run_expecting("continue", "No more reverse-execution history.",
                  "the guest exited with status")
    ic, _ = when()
    check(ic == end, "continue runs to the end of the recording")
    out = run("monitor when")
    check("end of the recording" in out, "monitor when says it is the end")
    last = stop_here()
    run("reverse-stepi")
    check(icount() == end - 1, "reverse-stepi works at the end")
    run("stepi")
    check(stop_here() == last, "stepi back onto the end")
    same_as_truth([last], "the end")
    status = int(os.environ["TTVM_EXIT"])
    run_expecting("continue", "exited with code %02o" % status)
    check(exits and exits[-1].exit_code == status,
          "the guest's exit ends the session (code %d)" % status)


def phase_monitor():
    end = when()[1]
    out = run("monitor help")
    check("monitor goto" in out and "discarded" in out, "monitor help")
    n = end // 2
    out = run("monitor goto %d" % n)
    check("now at icount %d" % n in out, "monitor goto: " + out.strip())
    run("maint flush register-cache")
    same_as_truth([stop_here()], "after monitor goto")
    out = run("monitor info events 0-4")
    check(len(re.findall(r"^#\d+ +icount", out, re.M)) == 5,
          "monitor info events 0-4 lists 5 events")
    out = run("monitor info snapshots")
    check(re.search(r"^\d+ snapshots", out) and "snapshot 0 " in out,
          "monitor info snapshots")
    out = run("monitor goto %d" % (end + 10))
    check("error" in out, "monitor goto past the end is an error: "
          + out.strip())
    out = run("monitor bogus")
    check("unknown monitor command" in out, "unknown monitor command")
    # Writes change only this replay state and go with the next move.
    rbx = val("$rbx")
    run("set var $rbx = 0x1234")
    check(val("$rbx") == 0x1234, "register write")
    run("stepi")
    run("reverse-stepi")
    check(val("$rbx") == rbx, "register write discarded by moving")


def phase_first():
    run("stepi 7")
    run("break *0x%x" % val("$pc"))
    run("detach")


def phase_second():
    check(icount() == 7, "a second gdb finds the replay where the first "
          "detached")
    same_as_truth([stop_here()], "second connection")
    run("reverse-stepi 7")
    run_expecting("continue", "No more reverse-execution history.")
    check(icount() == when()[1], "the first gdb's breakpoint is gone")
    run("detach")


phase = os.environ["TTVM_PHASE"]
run("set confirm off")
run("set pagination off")
if "TTVM_PORT" in os.environ:
    run("target remote 127.0.0.1:%s" % os.environ["TTVM_PORT"])
{"steps": phase_steps, "breaks": phase_breaks, "source": phase_source,
 "watch": phase_watch, "held": phase_held, "ends": phase_ends,
 "monitor": phase_monitor, "first": phase_first,
 "second": phase_second}[phase]()
print("ALL OK")
