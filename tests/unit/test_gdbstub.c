/*
 * test_gdbstub.c — every packet handler of the GDB stub against the fake
 * target (tests/support/dbg_fake.h), whose answers are computed from the
 * position, plus the TCP server: Ctrl-C, disconnects, one client at a
 * time, and a stream of random and malformed packets.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "debugger/debugger_int.h"
#include "tests/support/dbg_fake.h"

static struct dbg_fake *fake;
static struct dbg_stub *stub;
static struct dbg_reply rep;
static char reply[65536];
static size_t reply_len;

static void make(const struct dbg_fake_config *cfg)
{
    cr_assert_eq(dbg_fake_create(cfg, &fake), 0);
    cr_assert_eq(dbg_stub_create(&dbg_fake_ops, fake, NULL, &stub), 0);
}

static void setup(void)
{
    make(NULL);
}

static void teardown(void)
{
    dbg_stub_destroy(stub);
    dbg_fake_destroy(fake);
}

/* Sends one packet payload (n bytes) and keeps a NUL-terminated copy of
 * the reply. */
static const char *pktn(const void *p, size_t n)
{
    dbg_stub_packet(stub, p, n, &rep);
    cr_assert_lt(rep.len, sizeof reply);
    memcpy(reply, rep.data, rep.len);
    reply[rep.len] = '\0';
    reply_len = rep.len;
    return reply;
}

static const char *pkt(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static const char *pkt(const char *fmt, ...)
{
    char p[20000];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof p);
    return pktn(p, (size_t)n);
}

static bool is_error(const char *r)
{
    return r[0] == 'E' && strlen(r) == 3 && dbg_hexval(r[1]) >= 0 &&
           dbg_hexval(r[2]) >= 0;
}

/* ---- stop replies ------------------------------------------------------- */

/* Value of "name:VALUE;" in a stop reply, or NULL. */
static const char *field(const char *r, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    const char *p = r + 3; /* after "Txx" */
    while (*p) {
        const char *colon = strchr(p, ':'), *semi = strchr(p, ';');
        if (!colon || !semi || colon > semi)
            return NULL;
        if ((size_t)(colon - p) == n && !strncmp(p, name, n)) {
            size_t len = (size_t)(semi - colon - 1);
            cr_assert_lt(len, cap);
            memcpy(out, colon + 1, len);
            out[len] = '\0';
            return out;
        }
        p = semi + 1;
    }
    return NULL;
}

static bool has(const char *r, const char *name)
{
    char v[64];
    return field(r, name, v, sizeof v) != NULL;
}

static uint64_t le_hex(const char *hex, size_t bytes)
{
    uint8_t b[8] = {0};
    cr_assert(dbg_unhex(hex, bytes, b));
    uint64_t v = 0;
    for (size_t i = bytes; i-- > 0;)
        v = v << 8 | b[i];
    return v;
}

/* Checks a T05 stop at icount (pc expedited and right). */
static void expect_stop(const char *r, int sig, uint64_t icount)
{
    char v[64];
    int got_sig = -1;
    cr_assert_eq(sscanf(r, "T%02x", &got_sig), 1, "stop reply: %s", r);
    cr_assert_eq(got_sig, sig, "signal in %s", r);
    cr_assert(field(r, "10", v, sizeof v), "rip expedited in %s", r);
    cr_assert_eq(le_hex(v, 8), dbg_fake_pc_at(icount), "pc in %s", r);
    cr_assert_eq(dbg_fake_ops.icount(fake), icount, "position after %s", r);
    cr_assert(field(r, "thread", v, sizeof v) && !strcmp(v, "1"));
}

/* ---- registers ---------------------------------------------------------- */

static size_t reg_off(unsigned n)
{
    size_t off = 0;
    for (unsigned i = 0; i < n; i++)
        off += 2 * dbg_reg_size(i);
    return off;
}

static void reg_bytes(const char *g, unsigned n, uint8_t *out)
{
    cr_assert(dbg_unhex(g + reg_off(n), dbg_reg_size(n), out));
}

static uint64_t reg_u64(const char *g, unsigned n)
{
    uint8_t b[16] = {0};
    reg_bytes(g, n, b);
    uint64_t v;
    memcpy(&v, b, 8);
    return dbg_reg_size(n) == 4 ? (uint32_t)v : v;
}

TestSuite(stub, .init = setup, .fini = teardown);

Test(stub, qsupported_advertises_what_gdb_needs)
{
    const char *r = pkt("qSupported:multiprocess+;swbreak+;xmlRegisters=i386");
    const char *want[] = {"PacketSize=4000",  "swbreak+",
                          "hwbreak+",         "ReverseStep+",
                          "ReverseContinue+", "qXfer:features:read+",
                          "QStartNoAckMode+"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(r, want[i]), "%s missing in %s", want[i], r);
    cr_assert_eq(strtoul(strstr(r, "PacketSize=") + 11, NULL, 16),
                 DBG_PACKET_MAX);
}

static void read_xml(struct dbg_buf *xml, unsigned chunk)
{
    for (size_t off = 0;;) {
        pkt("qXfer:features:read:target.xml:%zx,%x", off, chunk);
        cr_assert(reply[0] == 'm' || reply[0] == 'l', "reply %s", reply);
        cr_assert_leq(reply_len - 1, chunk);
        dbg_buf_put(xml, reply + 1, reply_len - 1);
        off += reply_len - 1;
        if (reply[0] == 'l')
            break;
        cr_assert_gt(reply_len, 1, "'m' must carry data");
    }
}

Test(stub, target_xml_matches_register_numbers_and_sizes)
{
    struct dbg_buf a = {0}, b = {0};
    read_xml(&a, 4096);
    read_xml(&b, 7); /* tiny chunks give the same document */
    cr_assert_eq(a.len, b.len);
    cr_assert_eq(memcmp(a.p, b.p, a.len), 0);
    cr_assert(strstr(a.p, "<architecture>i386:x86-64</architecture>"));
    const char *features[] = {"org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse",
                              "org.gnu.gdb.i386.segments"};
    for (size_t i = 0; i < 3; i++)
        cr_assert(strstr(a.p, features[i]), "%s", features[i]);

    /* Registers in order, numbered 0.., with sizes that add up to 'g'. */
    const char *names[] = {"rax", "rbx", "rcx", "rdx",
                           "rsi", "rdi", "rbp", "rsp"};
    const char *p = a.p;
    size_t bits = 0;
    unsigned n = 0;
    while ((p = strstr(p, "<reg name=\""))) {
        char name[32];
        unsigned size, num;
        cr_assert_eq(
            sscanf(p, "<reg name=\"%31[^\"]\" bitsize=\"%u\"", name, &size), 2);
        cr_assert_eq(sscanf(strstr(p, "regnum=\"") + 8, "%u", &num), 1);
        cr_assert_eq(num, n, "register %s numbered %u, expected %u", name, num,
                     n);
        cr_assert_eq(size, 8 * dbg_reg_size(n));
        if (n < 8)
            cr_assert_str_eq(name, names[n]);
        if (n == DBG_REG_RIP)
            cr_assert_str_eq(name, "rip");
        bits += size;
        n++;
        p++;
    }
    cr_assert_eq(n, DBG_NREGS);
    pkt("g");
    cr_assert_eq(reply_len * 4, bits, "g is %zu hex digits", reply_len);
    cr_assert(strstr(a.p, "name=\"cr3\""));
    cr_assert(strstr(a.p, "name=\"fs_base\""));
    cr_assert(is_error(pkt("qXfer:features:read:nothere.xml:0,100")));
    cr_assert(
        is_error(pkt("qXfer:features:read:target.xml:%zx,10", a.len + 1)));
    cr_assert_str_eq(pkt("qXfer:features:read:target.xml:%zx,10", a.len), "l");
    dbg_buf_free(&a);
    dbg_buf_free(&b);
}

Test(stub, g_matches_the_state_at_the_position)
{
    struct vmm_cpu_state s;
    dbg_fake_ops.goto_icount(fake, 37);
    dbg_fake_state_at(37, &s);
    const char *g = pkt("g");
    cr_assert_eq(reg_u64(g, 0), s.regs.rax);
    cr_assert_eq(reg_u64(g, 1), s.regs.rbx);
    cr_assert_eq(reg_u64(g, 2), s.regs.rcx);
    cr_assert_eq(reg_u64(g, 6), s.regs.rbp, "gdb's 6 is rbp");
    cr_assert_eq(reg_u64(g, 7), s.regs.rsp, "gdb's 7 is rsp");
    cr_assert_eq(reg_u64(g, 15), s.regs.r15);
    cr_assert_eq(reg_u64(g, 16), s.regs.rip);
    cr_assert_eq(reg_u64(g, 17), (uint32_t)s.regs.rflags);
    cr_assert_eq(reg_u64(g, 18), 0x08, "cs");
    cr_assert_eq(reg_u64(g, 22), 0x18, "fs");
    uint8_t st0[10];
    reg_bytes(g, 24, st0);
    cr_assert_eq(memcmp(st0, s.fpu.fpr[0], 10), 0);
    cr_assert_eq(reg_u64(g, 32), 0x37f, "fctrl");
    cr_assert_eq(reg_u64(g, 33), 0x3800, "fstat");
    /* TOP=7, ST(0) = physical 7 holds a normal number: tag 00 for
     * register 7, the others empty (11). */
    cr_assert_eq(reg_u64(g, 34), 0x3fff, "ftag");
    cr_assert_eq(reg_u64(g, 35), 0x12345678, "fiseg = high half of FIP");
    cr_assert_eq(reg_u64(g, 36), 37, "fioff");
    cr_assert_eq(reg_u64(g, 37), 0x87654321, "foseg");
    cr_assert_eq(reg_u64(g, 38), 74, "fooff");
    cr_assert_eq(reg_u64(g, 39), 0x1ab, "fop");
    uint8_t x0[16];
    reg_bytes(g, 40, x0);
    cr_assert_eq(memcmp(x0, s.fpu.xmm[0], 16), 0);
    cr_assert_eq(reg_u64(g, 56), 0x1f80, "mxcsr");
    cr_assert_eq(reg_u64(g, 57), s.sregs.fs.base);
    cr_assert_eq(reg_u64(g, 58), s.sregs.gs.base);
    cr_assert_eq(reg_u64(g, 59), s.sregs.cr0);
    cr_assert_eq(reg_u64(g, 60), s.sregs.cr2);
    cr_assert_eq(reg_u64(g, 61), s.sregs.cr3);
    cr_assert_eq(reg_u64(g, 64), s.sregs.efer);
}

Test(stub, p_agrees_with_g_for_every_register)
{
    char g[4096];
    strcpy(g, pkt("g"));
    for (unsigned n = 0; n < DBG_NREGS; n++) {
        pkt("p%x", n);
        cr_assert_eq(reply_len, 2 * dbg_reg_size(n), "p%x", n);
        cr_assert_eq(strncmp(reply, g + reg_off(n), reply_len), 0, "p%x", n);
    }
    cr_assert(is_error(pkt("p%x", DBG_NREGS)));
    cr_assert(is_error(pkt("p")));
    cr_assert(is_error(pkt("pzz")));
}

Test(stub, register_writes_stay_until_the_position_changes)
{
    cr_assert_str_eq(pkt("P0=efbeadde00000000"), "OK");
    cr_assert_eq(reg_u64(pkt("g"), 0), 0xdeadbeef);
    cr_assert_str_eq(pkt("P11=46020000"), "OK"); /* eflags */
    cr_assert_eq(reg_u64(pkt("g"), 17), 0x246);
    cr_assert_str_eq(pkt("P22=00000000"), "OK"); /* ftag: all valid */
    struct vmm_cpu_state s;
    dbg_fake_ops.get_state(fake, &s);
    cr_assert_eq(s.fpu.ftwx, 0xff);
    cr_assert_eq(reg_u64(pkt("g"), 0), 0xdeadbeef, "g does not move");
    expect_stop(pkt("s"), 5, 1);
    cr_assert_eq(reg_u64(pkt("g"), 0), 1, "write discarded by the step");
    cr_assert(is_error(pkt("P0=12")), "short value");
    cr_assert(is_error(pkt("P0=efbeadde00000000ff")), "long value");
    cr_assert(is_error(pkt("P99=00")));
    cr_assert(is_error(pkt("P0")));
}

Test(stub, G_round_trips)
{
    char g[4096];
    strcpy(g, pkt("g"));
    memcpy(g + reg_off(3), "1122334455667788", 16); /* rdx */
    cr_assert_str_eq(pkt("G%s", g), "OK");
    cr_assert_eq(reg_u64(pkt("g"), 3), 0x8877665544332211);
    cr_assert_str_eq(reply, g);
    cr_assert(is_error(pkt("G%.*s", (int)strlen(g) - 2, g)), "short G");
    g[10] = 'x';
    cr_assert(is_error(pkt("G%s", g)), "bad hex");
}

/* ---- memory ------------------------------------------------------------- */

Test(stub, m_reads_guest_memory)
{
    cr_assert_str_eq(pkt("m100000,8"), "0f1f40000f1f4000");
    dbg_fake_ops.goto_icount(fake, 200);
    uint64_t v = dbg_fake_var_at(200, 1);
    char want[17];
    for (int i = 0; i < 8; i++)
        snprintf(want + 2 * i, 3, "%02x", (unsigned)(v >> (8 * i)) & 0xff);
    cr_assert_str_eq(pkt("m200008,8"), want);
    cr_assert(is_error(pkt("m0,4")), "unmapped");
    cr_assert_str_eq(pkt("m300ffe,4"), "0000", "partial read at the edge");
    cr_assert_eq(strlen(pkt("m100000,100000")), 2 * 4096,
                 "capped at the mapped region");
    cr_assert(is_error(pkt("m")));
    cr_assert(is_error(pkt("m100000")));
    cr_assert(is_error(pkt("m100000,")));
    cr_assert(is_error(pkt("mzz,4")));
    cr_assert(is_error(pkt("m100000,4x")));
    cr_assert(is_error(pkt("m11112222333344445,4")), "17 hex digits");
}

Test(stub, M_and_X_write_until_the_position_changes)
{
    cr_assert_str_eq(pkt("M300010,4:deadbeef"), "OK");
    cr_assert_str_eq(pkt("m300010,4"), "deadbeef");
    /* X carries raw bytes, including NUL, '#', '}' and 0x03. */
    const char x[] = "X300020,5:\x00#}\x03\xff";
    cr_assert_str_eq(pktn(x, sizeof x - 1), "OK");
    cr_assert_str_eq(pkt("m300020,5"), "00237d03ff");
    cr_assert_str_eq(pkt("X300020,0:"), "OK", "gdb's X probe");
    cr_assert(is_error(pktn("X300020,2:a", 11)), "length mismatch");
    cr_assert(is_error(pkt("M0,1:00")), "unmapped");
    cr_assert(is_error(pkt("M300ffe,4:00000000")), "crosses the edge");
    cr_assert(is_error(pkt("M300010,2:00")), "short data");
    cr_assert(is_error(pkt("M300010,1:zz")));
    cr_assert(is_error(pkt("M300010,1")));
    expect_stop(pkt("s"), 5, 1);
    cr_assert_str_eq(pkt("m300010,4"), "00000000", "discarded by the step");
}

/* ---- breakpoints, watchpoints, resuming ---------------------------------- */

/* Next icount > from (or last < from when backward) with pc == addr. */
static uint64_t next_pc(uint64_t from, uint64_t addr, bool backward)
{
    uint64_t i = from;
    do
        i = backward ? i - 1 : i + 1;
    while (dbg_fake_pc_at(i) != addr);
    return i;
}

Test(stub, breakpoint_continue_and_reverse_continue)
{
    uint64_t bp = DBG_FAKE_CODE + 0x24;
    cr_assert_str_eq(pkt("Z0,%" PRIx64 ",1", bp), "OK");
    cr_assert_eq(dbg_fake_nbreaks(fake), 1);
    uint64_t want = next_pc(0, bp, false);
    const char *r = pkt("c");
    expect_stop(r, 5, want);
    cr_assert(has(r, "swbreak") && !has(r, "hwbreak"), "%s", r);
    r = pkt("vCont;c");
    expect_stop(r, 5, next_pc(want, bp, false));
    r = pkt("bc");
    expect_stop(r, 5, want);
    cr_assert(has(r, "swbreak"));
    r = pkt("bc");
    expect_stop(r, 5, 0);
    cr_assert(has(r, "replaylog") && !has(r, "swbreak"), "%s", r);
    char v[32];
    cr_assert_str_eq(field(r, "replaylog", v, sizeof v), "begin");
    cr_assert_str_eq(pkt("z0,%" PRIx64 ",1", bp), "OK");
    cr_assert_eq(dbg_fake_nbreaks(fake), 0);
}

Test(stub, hardware_breakpoint_reports_hwbreak)
{
    uint64_t bp = DBG_FAKE_CODE + 0x8;
    cr_assert_str_eq(pkt("Z1,%" PRIx64 ",1", bp), "OK");
    const char *r = pkt("c");
    expect_stop(r, 5, 2);
    cr_assert(has(r, "hwbreak") && !has(r, "swbreak"), "%s", r);
}

Test(stub, breakpoints_are_reference_counted)
{
    cr_assert_str_eq(pkt("Z0,100010,1"), "OK");
    cr_assert_str_eq(pkt("Z1,100010,1"), "OK");
    cr_assert_str_eq(pkt("Z0,100010,1"), "OK");
    cr_assert_eq(dbg_fake_nbreaks(fake), 1);
    cr_assert_str_eq(pkt("z0,100010,1"), "OK");
    cr_assert_str_eq(pkt("z1,100010,1"), "OK");
    cr_assert_eq(dbg_fake_nbreaks(fake), 1);
    cr_assert_str_eq(pkt("z0,100010,1"), "OK");
    cr_assert_eq(dbg_fake_nbreaks(fake), 0);
    cr_assert_str_eq(pkt("z0,100010,1"), "OK", "removing twice is fine");
    cr_assert_str_eq(pkt("Z5,100010,1"), "", "unknown type: unsupported");
    cr_assert(is_error(pkt("Z0")));
    cr_assert(is_error(pkt("Z0,100010")));
    cr_assert(is_error(pkt("Z0,100010,1;X1,0")), "conditions not offered");
}

Test(stub, write_watchpoint_forward_and_backward)
{
    /* Variable 2 is written by instructions 64m + 37. */
    uint64_t var = DBG_FAKE_DATA + 16;
    cr_assert_str_eq(pkt("Z2,%" PRIx64 ",8", var), "OK");
    const char *r = pkt("c");
    expect_stop(r, 5, 38); /* forward: after the write */
    char v[32];
    cr_assert(field(r, "watch", v, sizeof v), "%s", r);
    cr_assert_eq(strtoull(v, NULL, 16), var);
    expect_stop(pkt("c"), 5, 102);
    r = pkt("bc");
    expect_stop(r, 5, 101); /* backward: before the write */
    cr_assert(field(r, "watch", v, sizeof v));
    cr_assert_str_eq(pkt("m%" PRIx64 ",1", var), "25",
                     "old value (37) before the write");
    cr_assert_str_eq(pkt("z2,%" PRIx64 ",8", var), "OK");
    cr_assert_eq(dbg_fake_nwatches(fake), 0);
}

Test(stub, watch_reports_first_watched_byte_hit)
{
    uint64_t var = DBG_FAKE_DATA + 8;
    cr_assert_str_eq(pkt("Z2,%" PRIx64 ",2", var + 4), "OK");
    char v[32];
    cr_assert(field(pkt("c"), "watch", v, sizeof v), "%s", reply);
    cr_assert_eq(strtoull(v, NULL, 16), var + 4);
    cr_assert(is_error(pkt("Z2,%" PRIx64 ",0", var)), "zero length");
    cr_assert(is_error(pkt("Z2,ffffffffffffffff,2")), "wraps");
}

Test(stub, read_and_access_watchpoints)
{
    uint64_t var = DBG_FAKE_DATA; /* read by 64m + 9, written by 64m + 5 */
    cr_assert_str_eq(pkt("Z3,%" PRIx64 ",8", var), "OK");
    const char *r = pkt("c");
    expect_stop(r, 5, 10);
    cr_assert(has(r, "rwatch") && !has(r, "watch"), "%s", r);
    cr_assert_str_eq(pkt("z3,%" PRIx64 ",8", var), "OK");
    cr_assert_str_eq(pkt("Z4,%" PRIx64 ",8", var), "OK");
    r = pkt("c");
    expect_stop(r, 5, 70);
    cr_assert(has(r, "awatch"), "%s", r);
    r = pkt("bc");
    expect_stop(r, 5, 69);
    cr_assert(has(r, "awatch"), "%s", r);
}

Test(stub, step_and_reverse_step_retrace_the_same_pcs)
{
    uint64_t pcs[40];
    for (int i = 0; i < 40; i++) {
        const char *r = pkt(i % 2 ? "s" : "vCont;s:1;c");
        expect_stop(r, 5, (uint64_t)i + 1);
        pcs[i] = dbg_fake_ops.icount(fake);
    }
    for (int i = 39; i > 0; i--) {
        expect_stop(pkt("bs"), 5, pcs[i - 1]);
        cr_assert(!has(reply, "replaylog"));
    }
    expect_stop(pkt("bs"), 5, 0);
    cr_assert(!has(reply, "replaylog"), "a step that moved is a step");
    const char *r = pkt("bs");
    expect_stop(r, 5, 0);
    cr_assert(has(r, "replaylog"), "could not move: begin of history");
}

Test(stub, vcont_query_and_signals)
{
    cr_assert_str_eq(pkt("vCont?"), "vCont;c;C;s;S;r");
    expect_stop(pkt("vCont;S05"), 5, 1);
    expect_stop(pkt("vCont;s:1"), 5, 2);
    expect_stop(pkt("vCont;s:p1.1;c"), 5, 3);
    expect_stop(pkt("S05"), 5, 4);
    cr_assert(is_error(pkt("vCont;Szz")));
    cr_assert(is_error(pkt("vCont;x")));
    cr_assert(is_error(pkt("vCont;r10")));
    cr_assert(is_error(pkt("vCont;r20,10")));
    cr_assert_eq(dbg_fake_ops.icount(fake), 4, "errors do not move");
}

Test(stub, range_stepping)
{
    /* Step while pc is in [CODE, CODE+0x10): stops at pc CODE+0x10. */
    const char *r =
        pkt("vCont;r%llx,%llx:1", DBG_FAKE_CODE, DBG_FAKE_CODE + 0x10);
    expect_stop(r, 5, 4);
    cr_assert(!has(r, "swbreak"));
    /* A breakpoint inside the range ends the range step there. */
    dbg_fake_ops.goto_icount(fake, 0);
    cr_assert_str_eq(pkt("Z0,%llx,1", DBG_FAKE_CODE + 8), "OK");
    r = pkt("vCont;r%llx,%llx", DBG_FAKE_CODE, DBG_FAKE_CODE + 0x10);
    expect_stop(r, 5, 2);
    cr_assert(has(r, "swbreak"), "%s", r);
    /* And so does a watchpoint. */
    cr_assert_str_eq(pkt("z0,%llx,1", DBG_FAKE_CODE + 8), "OK");
    cr_assert_str_eq(pkt("Z2,%llx,8", DBG_FAKE_DATA), "OK");
    r = pkt("vCont;r%llx,%llx", DBG_FAKE_CODE, DBG_FAKE_CODE + 0x40);
    expect_stop(r, 5, 6);
    cr_assert(has(r, "watch"), "%s", r);
}

Test(stub, continue_to_the_end_then_exit)
{
    teardown();
    make(&(struct dbg_fake_config){
        .end = 300, .exited = true, .exit_status = 7});
    const char *r = pkt("c");
    expect_stop(r, 5, 300);
    char v[32];
    cr_assert_str_eq(field(r, "replaylog", v, sizeof v), "end");
    cr_assert(rep.console_len > 0);
    cr_assert(strstr(rep.console, "exited with status 7"), "%s", rep.console);
    expect_stop(pkt("bs"), 5, 299);
    cr_assert_eq(rep.console_len, 0);
    expect_stop(pkt("s"), 5, 300);
    cr_assert(!has(reply, "replaylog"), "the step moved");
    cr_assert(strstr(rep.console, "exited"), "told on arrival");
    cr_assert_str_eq(pkt("c"), "W07", "forward from the exit");
    cr_assert_str_eq(pkt("s"), "W07");
    expect_stop(pkt("bc"), 5, 0);
    cr_assert(has(reply, "replaylog"));
}

Test(stub, end_without_exit_is_only_replaylog_end)
{
    const char *r = pkt("c");
    expect_stop(r, 5, 1000);
    cr_assert(has(r, "replaylog"));
    cr_assert_eq(rep.console_len, 0);
    r = pkt("c");
    expect_stop(r, 5, 1000);
    cr_assert(has(r, "replaylog"), "still the end, no exit to report");
    r = pkt("s");
    expect_stop(r, 5, 1000);
    cr_assert(has(r, "replaylog"));
}

Test(stub, target_failure_is_a_signal_0_stop_with_a_message)
{
    teardown();
    make(&(struct dbg_fake_config){.fail_at = 50});
    const char *r = pkt("c");
    expect_stop(r, 0, 49);
    cr_assert(strstr(rep.console, "diverged"), "%s", rep.console);
    cr_assert(strstr(rep.console, "fake divergence"), "detail shown");
}

static void *interrupt_later(void *arg)
{
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    dbg_stub_interrupt(arg);
    return NULL;
}

Test(stub, interrupt_stops_a_running_continue)
{
    teardown();
    make(&(struct dbg_fake_config){.end = 10000000, .delay_us = 200});
    pthread_t th;
    pthread_create(&th, NULL, interrupt_later, stub);
    const char *r = pkt("c");
    pthread_join(th, NULL);
    int sig;
    cr_assert_eq(sscanf(r, "T%02x", &sig), 1);
    cr_assert_eq(sig, 2, "SIGINT stop: %s", r);
    uint64_t at = dbg_fake_ops.icount(fake);
    cr_assert(at > 0 && at < 10000000);
    expect_stop(r, 2, at);
    /* The Ctrl-C was for that continue only. */
    expect_stop(pkt("s"), 5, at + 1);
}

/* ---- session packets ---------------------------------------------------- */

Test(stub, session_queries)
{
    expect_stop(pkt("?"), 5, 0);
    cr_assert_str_eq(pkt("qAttached"), "1");
    cr_assert_str_eq(pkt("qAttached:1"), "1");
    cr_assert_str_eq(pkt("qC"), "QC1");
    cr_assert_str_eq(pkt("qfThreadInfo"), "m1");
    cr_assert_str_eq(pkt("qsThreadInfo"), "l");
    cr_assert_str_eq(pkt("qOffsets"), "Text=0;Data=0;Bss=0");
    cr_assert_str_eq(pkt("Hg0"), "OK");
    cr_assert_str_eq(pkt("Hc-1"), "OK");
    cr_assert_str_eq(pkt("T1"), "OK");
    cr_assert_str_eq(pkt("qSymbol::"), "OK");
    cr_assert_str_eq(pkt("vMustReplyEmpty"), "");
    cr_assert_str_eq(pkt("qTStatus"), "");
    cr_assert_str_eq(pkt("qCRC:0,10"), "", "qC is exact, not a prefix");
    cr_assert_str_eq(pkt("bx"), "");
    cr_assert_str_eq(pktn("", 0), "");
    cr_assert(!rep.close && !rep.noack);
    cr_assert_str_eq(pkt("QStartNoAckMode"), "OK");
    cr_assert(rep.noack);
}

Test(stub, kill_and_detach_close_the_connection)
{
    cr_assert_str_eq(pkt("k"), "X09");
    cr_assert(rep.close);
    cr_assert_str_eq(pkt("D"), "OK");
    cr_assert(rep.close);
    cr_assert_str_eq(pkt("D;1"), "OK");
    cr_assert(rep.close);
    cr_assert_str_eq(pkt("g"), pkt("g"));
    cr_assert(!rep.close);
}

Test(stub, reset_removes_what_the_client_set)
{
    pkt("Z0,100000,1");
    pkt("Z1,100004,1");
    pkt("Z2,200000,8");
    pkt("Z4,200008,4");
    cr_assert_eq(dbg_fake_nbreaks(fake), 2);
    cr_assert_eq(dbg_fake_nwatches(fake), 2);
    dbg_fake_ops.goto_icount(fake, 77);
    dbg_stub_reset(stub);
    cr_assert_eq(dbg_fake_nbreaks(fake), 0);
    cr_assert_eq(dbg_fake_nwatches(fake), 0);
    cr_assert_eq(dbg_fake_ops.icount(fake), 77, "position kept");
}

/* ---- monitor ------------------------------------------------------------ */

static const char *monitor(const char *cmd)
{
    char hex[1024];
    static char text[65536];
    size_t n = strlen(cmd);
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)cmd[i]);
    hex[2 * n] = '\0';
    pkt("qRcmd,%s", hex);
    if (!strcmp(reply, "OK"))
        return "";
    cr_assert_eq(reply_len % 2, 0);
    cr_assert(dbg_unhex(reply, reply_len / 2, (uint8_t *)text), "%s", reply);
    text[reply_len / 2] = '\0';
    return text;
}

Test(stub, monitor_help_says_writes_are_discarded)
{
    const char *t = monitor("help");
    cr_assert(strstr(t, "monitor when"));
    cr_assert(strstr(t, "monitor goto"));
    cr_assert(strstr(t, "info events"));
    cr_assert(strstr(t, "info snapshots"));
    cr_assert(strstr(t, "discarded when you move in time"), "%s", t);
}

Test(stub, monitor_when_and_goto)
{
    const char *t = monitor("when");
    cr_assert(strstr(t, "icount 0 of 1000"), "%s", t);
    cr_assert(strstr(t, "next event: #0 "), "%s", t);
    cr_assert(strstr(t, "icount 50"), "%s", t);
    t = monitor("goto 250");
    cr_assert(strstr(t, "now at icount 250"), "%s", t);
    cr_assert_eq(dbg_fake_ops.icount(fake), 250);
    cr_assert_eq(reg_u64(pkt("g"), 0), 250);
    t = monitor("when");
    cr_assert(strstr(t, "icount 250 of 1000"), "%s", t);
    cr_assert(strstr(t, "event here: #2 "), "%s", t);
    t = monitor("goto 0x64");
    cr_assert_eq(dbg_fake_ops.icount(fake), 100);
    t = monitor("goto 1001");
    cr_assert(strstr(t, "error"), "%s", t);
    cr_assert_eq(dbg_fake_ops.icount(fake), 100, "failed goto stays");
    cr_assert(strstr(monitor("goto"), "usage"));
    cr_assert(strstr(monitor("goto 12x"), "usage"));
    cr_assert(strstr(monitor("goto -1"), "usage"));
    monitor("goto 151");
    cr_assert(strstr(monitor("when"), "next event: #2 "));
}

Test(stub, monitor_info_events_and_snapshots)
{
    const char *t = monitor("info events 2-3");
    cr_assert(strstr(t, "#2 ") && strstr(t, "#3 ") && !strstr(t, "#4 "), "%s",
              t);
    cr_assert(strstr(t, "icount 250") && strstr(t, "pio-out"), "%s", t);
    t = monitor("info events 8 9");
    cr_assert(strstr(t, "#8 ") && strstr(t, "#9 "), "%s", t);
    t = monitor("info events");
    cr_assert(strstr(t, "#0 ") && strstr(t, "#9 "), "all 10: %s", t);
    t = monitor("info events 50");
    cr_assert(strstr(t, "no events there"), "%s", t);
    cr_assert(strstr(monitor("info events 3-1"), "usage"));
    cr_assert(strstr(monitor("info events x"), "usage"));
    t = monitor("info snapshots");
    cr_assert(strstr(t, "5 snapshots"), "%s", t);
    cr_assert(strstr(t, "icount 750"), "%s", t);
    cr_assert(strstr(t, "boot") && strstr(t, "periodic"));
    cr_assert(strstr(monitor("info"), "usage"));
    cr_assert(strstr(monitor("frobnicate"), "unknown monitor command"));
    cr_assert(strstr(monitor(""), "monitor when"), "empty: help");
    cr_assert(is_error(pkt("qRcmd,6")), "odd hex");
    cr_assert(is_error(pkt("qRcmd,zz")));
}

Test(stub, monitor_listing_is_bounded)
{
    teardown();
    make(&(struct dbg_fake_config){.end = 100000, .exited = true});
    const char *t = monitor("info events 0-100000");
    cr_assert(strstr(t, "more (ask for a range)"), "%s", t);
    cr_assert_lt(strlen(t), 40000);
    t = monitor("info events 999-1000");
    cr_assert(strstr(t, "exit"), "the exit event is listed: %s", t);
    t = monitor("info snapshots");
    cr_assert(strstr(t, "401 snapshots") && strstr(t, "201 more"), "%s", t);
}

Test(stub, two_stubs_are_independent)
{
    struct dbg_fake *f2;
    struct dbg_stub *s2;
    cr_assert_eq(dbg_fake_create(NULL, &f2), 0);
    cr_assert_eq(dbg_stub_create(&dbg_fake_ops, f2, NULL, &s2), 0);
    pkt("Z0,100010,1");
    struct dbg_reply r2;
    dbg_stub_packet(s2, "c", 1, &r2);
    cr_assert_eq(dbg_fake_ops.icount(f2), 1000, "no breakpoint in stub 2");
    expect_stop(pkt("c"), 5, 4);
    dbg_stub_destroy(s2);
    dbg_fake_destroy(f2);
}

/* ---- the TCP server ----------------------------------------------------- */

static struct dbg_server *srv;
static pthread_t srv_thread;
static int srv_rc = -1;

static void *srv_main(void *arg)
{
    (void)arg;
    srv_rc = dbg_server_run(srv, stub, 0);
    return NULL;
}

static void server_start(const struct dbg_fake_config *cfg)
{
    make(cfg);
    char err[128];
    cr_assert_eq(dbg_server_listen("127.0.0.1", 0, &srv, err, sizeof err), 0,
                 "%s", err);
    cr_assert_gt(dbg_server_port(srv), 0);
    cr_assert_eq(pthread_create(&srv_thread, NULL, srv_main, NULL), 0);
}

static void server_stop(void)
{
    dbg_server_stop(srv);
    pthread_join(srv_thread, NULL);
    cr_assert_eq(srv_rc, 0);
    dbg_server_close(srv);
    teardown();
}

static int client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(dbg_server_port(srv)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_geq(fd, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "%s",
                 strerror(errno));
    return fd;
}

static void csend(int fd, const void *p, size_t n)
{
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void csend_pkt(int fd, const char *payload)
{
    char f[20100];
    unsigned sum = 0;
    size_t n = strlen(payload);
    for (size_t i = 0; i < n; i++)
        sum += (uint8_t)payload[i];
    snprintf(f, sizeof f, "$%s#%02x", payload, sum & 0xff);
    csend(fd, f, strlen(f));
}

/* Reads one byte within timeout_ms: 1, 0 at EOF, -1 on timeout. */
static int cgetc(int fd, int timeout_ms, char *c)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return -1;
    ssize_t n = recv(fd, c, 1, 0);
    return n == 1 ? 1 : 0;
}

/* Reads the next frame's payload (unescaped), skipping acks and 'O'
 * packets when skip_o.  Fails the test on timeout or a bad checksum;
 * returns false at EOF. */
static bool cread_pkt(int fd, char *out, size_t cap, bool skip_o)
{
    for (;;) {
        char c;
        int rc;
        do
            rc = cgetc(fd, 5000, &c);
        while (rc == 1 && c != '$');
        cr_assert_neq(rc, -1, "no reply within 5 s");
        if (rc == 0)
            return false;
        size_t n = 0;
        unsigned sum = 0;
        for (;;) {
            cr_assert_eq(cgetc(fd, 5000, &c), 1, "frame cut short");
            if (c == '#')
                break;
            sum += (uint8_t)c;
            if (c == 0x7d) {
                cr_assert_eq(cgetc(fd, 5000, &c), 1);
                sum += (uint8_t)c;
                c ^= 0x20;
            }
            cr_assert_lt(n + 1, cap, "reply too long: %.60s", out);
            out[n++] = c;
        }
        char cs[3] = {0};
        cr_assert_eq(cgetc(fd, 5000, &cs[0]), 1);
        cr_assert_eq(cgetc(fd, 5000, &cs[1]), 1);
        cr_assert_eq(strtoul(cs, NULL, 16), sum & 0xff, "reply checksum");
        out[n] = '\0';
        if (!(skip_o && out[0] == 'O' && strcmp(out, "OK")))
            return true;
    }
}

/* Switches to no-ack mode (skipping replies still in flight). */
static void noack(int fd)
{
    static char r[65536];
    csend(fd, "###", 3); /* ends any packet a test left unfinished */
    csend_pkt(fd, "QStartNoAckMode");
    do
        cr_assert(cread_pkt(fd, r, sizeof r, true));
    while (strcmp(r, "OK"));
    csend(fd, "+", 1); /* gdb acks that last OK */
}

static bool closed_soon(int fd)
{
    char c;
    int rc;
    while ((rc = cgetc(fd, 5000, &c)) == 1)
        ;
    return rc == 0;
}

TestSuite(server);

Test(server, ack_mode_session_then_detach)
{
    server_start(NULL);
    int fd = client();
    char r[8192], c;
    csend(fd, "$?#3f", 5);
    cr_assert_eq(cgetc(fd, 5000, &c), 1);
    cr_assert_eq(c, '+', "the stub acks our packet");
    cr_assert(cread_pkt(fd, r, sizeof r, false));
    cr_assert_eq(strncmp(r, "T05", 3), 0, "%s", r);
    csend(fd, "+", 1);
    csend(fd, "$g#00", 5); /* bad checksum */
    cr_assert_eq(cgetc(fd, 5000, &c), 1);
    cr_assert_eq(c, '-');
    csend(fd, "$qC#b4", 6);
    cr_assert(cread_pkt(fd, r, sizeof r, false));
    cr_assert_str_eq(r, "QC1");
    csend(fd, "-", 1); /* ask for it again */
    cr_assert(cread_pkt(fd, r, sizeof r, false));
    cr_assert_str_eq(r, "QC1", "retransmitted");
    csend(fd, "+", 1);
    noack(fd);
    csend_pkt(fd, "qXfer:features:read:target.xml:0,80");
    cr_assert(cread_pkt(fd, r, sizeof r, false));
    cr_assert_eq(r[0], 'm');
    csend_pkt(fd, "D");
    cr_assert(cread_pkt(fd, r, sizeof r, false));
    cr_assert_str_eq(r, "OK");
    cr_assert(closed_soon(fd), "the stub closes after D");
    close(fd);
    server_stop();
}

/* A server on a slow fake (0.2 ms per instruction, 1e8 of them) and a
 * no-ack client whose `resume` has been running for ms milliseconds. */
static int slow_running_client(const char *resume, long ms)
{
    server_start(&(struct dbg_fake_config){.end = 100000000, .delay_us = 200});
    int fd = client();
    noack(fd);
    csend_pkt(fd, resume);
    struct timespec ts = {0, ms * 1000 * 1000};
    nanosleep(&ts, NULL);
    return fd;
}

Test(server, ctrl_c_interrupts_a_continue)
{
    int fd = slow_running_client("vCont;c", 200);
    char r[512];
    csend(fd, "\x03", 1);
    cr_assert(cread_pkt(fd, r, sizeof r, true));
    cr_assert_eq(strncmp(r, "T02", 3), 0, "SIGINT stop: %s", r);
    cr_assert_geq(dbg_fake_interrupts(fake), 1);
    /* The session goes on normally. */
    csend_pkt(fd, "s");
    cr_assert(cread_pkt(fd, r, sizeof r, true));
    cr_assert_eq(strncmp(r, "T05", 3), 0, "%s", r);
    close(fd);
    server_stop();
}

Test(server, client_vanishing_during_a_continue)
{
    server_start(&(struct dbg_fake_config){.end = 100000000, .delay_us = 200});
    int fd = client();
    char r[512];
    noack(fd);
    csend_pkt(fd, "Z0,100000000,1");
    cr_assert(cread_pkt(fd, r, sizeof r, true));
    csend_pkt(fd, "c");
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    close(fd);
    /* The continue is interrupted and the next client is served. */
    fd = client();
    csend(fd, "$?#3f", 5);
    cr_assert(cread_pkt(fd, r, sizeof r, false));
    cr_assert_eq(strncmp(r, "T05", 3), 0, "%s", r);
    cr_assert_geq(dbg_fake_interrupts(fake), 1);
    cr_assert_eq(dbg_fake_nbreaks(fake), 0, "breakpoints of the old client");
    close(fd);
    server_stop();
}

Test(server, disconnect_mid_packet_then_next_client)
{
    server_start(NULL);
    int fd = client();
    csend(fd, "$m100000,", 9);
    close(fd);
    fd = client();
    char r[512];
    csend(fd, "$qC#b4", 6);
    cr_assert(cread_pkt(fd, r, sizeof r, false));
    cr_assert_str_eq(r, "QC1", "a fresh parser for the new client");
    close(fd);
    server_stop();
}

Test(server, one_client_at_a_time)
{
    server_start(NULL);
    int a = client();
    char r[512];
    noack(a);
    int b = client();
    csend(b, "$qC#b4", 6);
    cr_assert(closed_soon(b), "second client refused");
    close(b);
    csend_pkt(a, "qC");
    cr_assert(cread_pkt(a, r, sizeof r, true));
    cr_assert_str_eq(r, "QC1", "first client unaffected");
    csend_pkt(a, "k");
    cr_assert(cread_pkt(a, r, sizeof r, true));
    cr_assert_str_eq(r, "X09");
    cr_assert(closed_soon(a));
    close(a);
    b = client();
    csend(b, "$qC#b4", 6);
    cr_assert(cread_pkt(b, r, sizeof r, false));
    cr_assert_str_eq(r, "QC1", "served after the first left");
    close(b);
    server_stop();
}

Test(server, stop_ends_a_running_continue)
{
    int fd = slow_running_client("c", 100);
    char r[512];
    server_stop();
    cr_assert(cread_pkt(fd, r, sizeof r, true) == false ||
                  !strncmp(r, "T02", 3),
              "%s", r);
    close(fd);
}

Test(server, oversized_packet_gets_an_error)
{
    server_start(NULL);
    int fd = client();
    char r[512];
    noack(fd);
    static char big[20001];
    memset(big, 'a', sizeof big - 1);
    big[0] = 'm';
    csend_pkt(fd, big);
    cr_assert(cread_pkt(fd, r, sizeof r, true));
    cr_assert(is_error(r), "%s", r);
    csend_pkt(fd, "qC");
    cr_assert(cread_pkt(fd, r, sizeof r, true));
    cr_assert_str_eq(r, "QC1");
    close(fd);
    server_stop();
}

/* Discards whatever the stub has sent so far; false at EOF. */
static bool drain(int fd)
{
    char buf[4096];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (poll(&p, 1, 0) > 0) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return false;
    }
    return true;
}

/* Ends whatever packet the random bytes left open, then waits for the
 * answer to a qC; false when the stub closed the connection. */
static bool sync_qc(int fd, char *r, size_t cap)
{
    static const char qc[] = "###$qC#b4";
    if (send(fd, qc, sizeof qc - 1, MSG_NOSIGNAL) != sizeof qc - 1)
        return false;
    do
        if (!cread_pkt(fd, r, cap, true))
            return false;
    while (strcmp(r, "QC1"));
    return true;
}

static void random_chunk(unsigned *seed, char *out, size_t *len)
{
    static const char *const prefixes[] = {
        "m",
        "M",
        "X",
        "g",
        "G",
        "p",
        "P",
        "Z0,",
        "Z2,",
        "z0,",
        "Z4,",
        "qXfer:features:read:target.xml:",
        "qXfer:features:read:",
        "qRcmd,",
        "vCont;",
        "vCont;r",
        "c",
        "s",
        "bs",
        "bc",
        "?",
        "H",
        "qSupported:",
        "qAttached",
        "T",
        "S",
        "C",
        "q",
        "Q",
        "v",
        "",
    };
    unsigned kind = (unsigned)rand_r(seed) % 4;
    size_t n = (size_t)rand_r(seed) % 96;
    char payload[256];
    if (kind == 0) { /* raw bytes */
        for (size_t i = 0; i < n; i++)
            out[i] = (char)rand_r(seed);
        *len = n;
        return;
    }
    const char *pre = prefixes[(unsigned)rand_r(seed) %
                               (sizeof prefixes / sizeof prefixes[0])];
    size_t k = strlen(pre);
    memcpy(payload, pre, k);
    for (size_t i = 0; i < n; i++) {
        static const char alphabet[] = "0123456789abcdefABCDEF,:;=-x} ";
        payload[k++] =
            (unsigned)rand_r(seed) % 8
                ? alphabet[(unsigned)rand_r(seed) % (sizeof alphabet - 1)]
                : (char)rand_r(seed);
    }
    unsigned sum = 0;
    for (size_t i = 0; i < k; i++)
        sum += (uint8_t)payload[i];
    if (kind == 2) /* wrong checksum */
        sum++;
    out[0] = '$';
    memcpy(out + 1, payload, k);
    *len = 1 + k;
    if (kind == 3) /* cut short */
        return;
    *len += (size_t)snprintf(out + *len, 4, "#%02x", sum & 0xff);
}

Test(server, random_and_malformed_packets)
{
    server_start(&(struct dbg_fake_config){.end = 5000});
    unsigned seed = 20240601;
    int fd = client(), reconnects = 0;
    char buf[512], r[65536];
    for (int i = 0; i < 3000; i++) {
        if (i == 1500)
            noack(fd);
        size_t n;
        random_chunk(&seed, buf, &n);
        bool ok = send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n && drain(fd);
        if (ok && i % 25 == 24) /* let the stub catch up: resync, qC */
            ok = sync_qc(fd, r, sizeof r);
        if (!ok) {
            close(fd); /* a random D or k ended the session */
            fd = client();
            reconnects++;
        }
    }
    /* The server survived it all and serves the next client normally. */
    close(fd);
    fd = client();
    csend_pkt(fd, "?");
    cr_assert(cread_pkt(fd, r, sizeof r, false));
    cr_assert(!strncmp(r, "T05", 3), "%s", r);
    csend_pkt(fd, "qC");
    cr_assert(cread_pkt(fd, r, sizeof r, false));
    cr_assert_str_eq(r, "QC1");
    cr_assert_lt(reconnects, 50, "%d reconnects", reconnects);
    cr_assert_gt(dbg_fake_ops_run(fake), 50, "resumes served: %u",
                 dbg_fake_ops_run(fake));
    close(fd);
    server_stop();
}

Test(server, malformed_packets_get_error_or_empty_replies)
{
    server_start(NULL);
    int fd = client();
    char r[512];
    noack(fd);
    static const char *const bad[] = {
        "m",
        "mzz,1",
        "m100000",
        "M100000,2:0",
        "X100000,5:ab",
        "p",
        "pfff",
        "P0=12",
        "G00",
        "Z0",
        "Z2,200000,0",
        "vCont;x",
        "qXfer:features:read:foo.xml:0,10",
        "qRcmd,6",
        "c",
        "bs",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        csend_pkt(fd, bad[i]);
        cr_assert(cread_pkt(fd, r, sizeof r, true));
        bool resume = bad[i][0] == 'c' || bad[i][0] == 'b';
        cr_assert(resume ? r[0] == 'T' : is_error(r), "%s -> %s", bad[i], r);
    }
    static const char *const unknown[] = {
        "Z9,0,1", "", "qFoo", "vKill;1", "QThreadEvents:1", "jThreads"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        csend_pkt(fd, unknown[i]);
        cr_assert(cread_pkt(fd, r, sizeof r, true));
        cr_assert_str_eq(r, "", "%s is unsupported", unknown[i]);
    }
    close(fd);
    server_stop();
}

Test(server, listen_errors_are_reported)
{
    struct dbg_server *s2;
    char err[128];
    cr_assert_eq(
        dbg_server_listen("no.such.host.invalid", 0, &s2, err, sizeof err),
        DBG_E_ADDR);
    cr_assert(strstr(err, "no.such.host.invalid"), "%s", err);
    server_start(NULL);
    cr_assert_eq(dbg_server_listen("127.0.0.1", dbg_server_port(srv), &s2, err,
                                   sizeof err),
                 DBG_E_ADDR, "port taken");
    cr_assert(strstr(err, "cannot listen"), "%s", err);
    server_stop();
}

struct serve_arg {
    int fd, rc;
};

static void *serve_main(void *p)
{
    struct serve_arg *a = p;
    a->rc = dbg_stub_serve_fd(stub, a->fd);
    return NULL;
}

Test(server, serve_fd_on_a_socketpair)
{
    make(NULL);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct serve_arg a = {.fd = sv[0], .rc = 1};
    pthread_t th;
    pthread_create(&th, NULL, serve_main, &a);
    char r[512];
    csend_pkt(sv[1], "Z0,100008,1");
    cr_assert(cread_pkt(sv[1], r, sizeof r, false));
    cr_assert_str_eq(r, "OK");
    csend_pkt(sv[1], "c");
    cr_assert(cread_pkt(sv[1], r, sizeof r, false));
    cr_assert(!strncmp(r, "T05", 3) && strstr(r, "swbreak"), "%s", r);
    csend_pkt(sv[1], "D");
    cr_assert(cread_pkt(sv[1], r, sizeof r, false));
    pthread_join(th, NULL);
    cr_assert_eq(a.rc, 0, "clean end after D");
    /* A client that just goes away. */
    close(sv[1]);
    close(sv[0]);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    a.fd = sv[0];
    pthread_create(&th, NULL, serve_main, &a);
    csend(sv[1], "$m10", 4);
    close(sv[1]);
    pthread_join(th, NULL);
    cr_assert_eq(a.rc, DBG_E_CLOSED);
    close(sv[0]);
    cr_assert_eq(dbg_stub_serve_fd(stub, -1), DBG_E_ARG);
    teardown();
}
