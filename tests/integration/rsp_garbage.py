#!/usr/bin/env python3
# rsp_garbage.py HOST PORT — a hostile GDB remote protocol client for the
# stub of `ttvm replay --no-launch`: random bytes, bad checksums, oversized
# and malformed packets, unknown packets, packets with bad arguments, and
# connections dropped mid-packet.  Each answer must be what the protocol
# says (a '-' for a bad checksum, an empty reply for an unknown packet, an
# E NN error for a malformed one), never a hang; the stub must still answer
# a well-formed packet afterwards.  Exit 0 when all held.
import random
import socket
import sys
import time

HOST, PORT = sys.argv[1], int(sys.argv[2])
failures = 0


def check(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what)
    failures += 0 if cond else 1


def frame(payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return b"$" + payload + b"#%02x" % (sum(payload) & 0xFF)


def connect():
    for _ in range(50):
        try:
            s = socket.create_connection((HOST, PORT), timeout=10)
            s.settimeout(10)
            return s
        except OSError:
            time.sleep(0.1)  # the previous client is still being let go
    raise SystemExit("cannot connect to %s:%d" % (HOST, PORT))


def read_reply(s):
    """Reads one framed reply, acking it; returns its payload."""
    buf = b""
    while True:
        c = s.recv(1)
        if not c:
            raise EOFError("connection closed")
        if c == b"$":
            break
    while True:
        c = s.recv(1)
        if not c:
            raise EOFError("connection closed")
        if c == b"#":
            break
        buf += c
    s.recv(2)
    s.sendall(b"+")
    return buf


def ask(s, payload):
    """Sends a packet, expects '+', returns the reply payload."""
    s.sendall(frame(payload))
    ack = s.recv(1)
    if ack != b"+":
        raise ValueError("no ack for %r: %r" % (payload, ack))
    return read_reply(s)


def drain(s, quiet):
    """Reads and drops what the stub says until it is quiet for a while."""
    time.sleep(0.2)
    s.settimeout(quiet)
    try:
        while s.recv(65536):
            pass
    except socket.timeout:
        pass
    s.settimeout(10)


def main():
    rng = random.Random(1234)

    s = connect()
    check(ask(s, "qSupported:swbreak+").startswith(b"PacketSize="),
          "qSupported answers")
    # Bad checksum: '-' asks us to send it again; the stub stays in sync.
    s.sendall(b"$g#00")
    check(s.recv(1) == b"-", "a bad checksum is NAKed")
    check(ask(s, "?").startswith(b"T05"), "in sync after the NAK")
    # Unknown packets: empty replies.
    for p in ["vMustReplyEmpty", "qNonsense", "Q" + "x" * 100, "!", "vFoo;1"]:
        check(ask(s, p) == b"", "unknown packet %r gets an empty reply" % p[:20])
    # Malformed arguments: errors, not crashes.
    for p in ["m", "mzz,4", "m100000,", "M100000,4:zz", "Pzz=00", "p9999",
              "Z0,1", "Z2,0,0", "Z9,100000,1", "X100000,4:ab", "G00",
              "qRcmd,zz", "qRcmd,6", "vCont;x", "qXfer:features:read:nope:0,1",
              "m" + "f" * 40 + ",1"]:
        r = ask(s, p)
        check(r.startswith(b"E") or r == b"", "malformed %r: %r" % (p, r[:12]))
    # Reading far outside guest RAM is an error, not a read of host memory.
    r = ask(s, "mffffffff00000000,100")
    check(r.startswith(b"E"), "memory outside the guest: %r" % r[:8])
    r = ask(s, "m100000,100000")
    check(len(r) > 0 and not r.startswith(b"E"), "a huge read is shortened")
    # An oversized packet is dropped with an error reply.
    big = "M100000,1:" + "0" * 70000
    s.sendall(frame(big))
    ack = s.recv(1)
    r = read_reply(s) if ack == b"+" else b"-"
    check(r.startswith(b"E"), "an oversized packet: error %r" % r[:8])
    check(ask(s, "?").startswith(b"T05"), "still answering after it")
    # Random bytes, a few kilobytes of them, then resynchronise on a packet.
    s.sendall(bytes(rng.randrange(256) for _ in range(4096)).replace(b"\x03", b""))
    drain(s, 1)
    s.sendall(b"#00")  # end whatever packet the noise started
    drain(s, 0.5)
    check(ask(s, "?").startswith(b"T05"), "resynchronised after random bytes")
    s.close()

    # Dropped mid-packet, several times: the next client is served.
    for cut in [b"$", b"$m10000", b"$m100000,4#", b"$qSupported:" + b"x" * 5000]:
        c = connect()
        c.sendall(cut)
        c.close()
    c = connect()
    check(ask(c, "?").startswith(b"T05"), "served after clients vanished")
    c.sendall(frame("D"))
    c.recv(1)
    read_reply(c)
    c.close()
    return 1 if failures else 0


sys.exit(main())
