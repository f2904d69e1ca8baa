/*
 * gdbstub.c — what RSP packets mean: a table of handlers over the target
 * ops, each producing exactly one reply (asserted).
 *
 * The stub is single-threaded and all-stop with one thread (id 1).  Resume
 * packets (c, s, vCont, bc, bs) run the target to its next stop and answer
 * with a stop reply: T05 plus the reason gdb needs (swbreak/hwbreak,
 * watch/rwatch/awatch:ADDR, replaylog:begin/end at the ends of the
 * recording), T02 after Ctrl-C, and W at the guest's exit.
 *
 * The end of the recording: a forward continue that reaches the end stops
 * there with replaylog:end ("No more reverse-execution history." in gdb),
 * like rr, so the user can still go back; when the guest exited there, a
 * console line says so, and only going forward again from the end (step
 * or continue) reports the exit itself (W), which ends gdb's session.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debugger/debugger_int.h"

#define MEM_MAX 8192 /* largest m/M/X transfer in one packet (bytes) */

const char *dbg_strerror(int err)
{
    switch (err) {
    case DBG_E_ARG:
        return "invalid argument";
    case DBG_E_ADDR:
        return "cannot resolve or bind the address";
    case DBG_E_CLOSED:
        return "the gdb client went away";
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

const char *dbg_stub_strerror(struct dbg_stub *s, int err)
{
    if ((err <= DBG_E_ARG && err > DBG_E_ARG - 100) ||
        (err < 0 && err > -4096) || !s->ops->strerror)
        return dbg_strerror(err);
    return s->ops->strerror(err);
}

void dbg_stub_log(struct dbg_stub *s, const char *fmt, ...)
{
    if (!s->opts.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->opts.log(s->opts.log_ctx, line);
}

void dbg_stub_interrupt(struct dbg_stub *s)
{
    atomic_store(&s->interrupted, true);
    s->ops->interrupt(s->t);
}

/* ---- replies: each handler calls exactly one of these ------------------- */

static void reply_bytes(struct dbg_stub *s, const void *p, size_t len)
{
    if (s->replied) {
        fprintf(stderr, "ttvm: bug: gdb stub handler replied twice\n");
        abort();
    }
    s->replied = true;
    dbg_buf_put(&s->reply, p, len);
}

static void reply_str(struct dbg_stub *s, const char *str)
{
    reply_bytes(s, str, strlen(str));
}

static void reply_ok(struct dbg_stub *s)
{
    reply_str(s, "OK");
}
static void reply_empty(struct dbg_stub *s)
{
    reply_str(s, "");
}

/* E NN: gdb only distinguishes "an error"; the numbers follow errno. */
enum { E_PARSE = 0x01, E_NOENT = 0x02, E_FAULT = 0x0e, E_INVAL = 0x16 };

static void reply_err(struct dbg_stub *s, int code)
{
    char e[4];
    snprintf(e, sizeof e, "E%02x", code & 0xff);
    reply_str(s, e);
}

/* The scratch buffer, built by the handler, becomes the reply. */
static void reply_scratch(struct dbg_stub *s)
{
    if (s->scratch.oom)
        reply_err(s, ENOMEM);
    else
        reply_bytes(s, s->scratch.p ? s->scratch.p : "", s->scratch.len);
}

static void console(struct dbg_stub *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void console(struct dbg_stub *s, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    dbg_buf_puts(&s->console, line);
}

/* ---- parsing ------------------------------------------------------------ */

/* Parses hex digits at *p into *v (at most 16); advances *p.  False when
 * there are none or too many. */
static bool parse_hex(const char **p, uint64_t *v)
{
    const char *q = *p;
    uint64_t x = 0;
    int n = 0, d;
    while ((d = dbg_hexval((unsigned char)*q)) >= 0) {
        if (++n > 16)
            return false;
        x = x << 4 | (uint64_t)d;
        q++;
    }
    if (n == 0)
        return false;
    *v = x;
    *p = q;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

/* "ADDR,LEN" then the separator sep ('\0' for end of packet). */
static bool parse_addr_len(const char **p, uint64_t *addr, uint64_t *len,
                           char sep)
{
    return parse_hex(p, addr) && expect(p, ',') && parse_hex(p, len) &&
           (sep ? expect(p, sep) : **p == '\0');
}

/* ---- registers and memory ----------------------------------------------- */

static int get_state(struct dbg_stub *s, struct vmm_cpu_state *st)
{
    memset(st, 0, sizeof *st);
    return s->ops->get_state(s->t, st);
}

static void put_reg(struct dbg_stub *s, const struct vmm_cpu_state *st,
                    unsigned n)
{
    uint8_t b[DBG_REG_MAX_BYTES];
    dbg_reg_get(st, n, b);
    dbg_buf_hex(&s->scratch, b, dbg_reg_size(n));
}

static void h_g(struct dbg_stub *s, const char *a)
{
    (void)a;
    struct vmm_cpu_state st;
    if (get_state(s, &st) < 0)
        return reply_err(s, E_FAULT);
    for (unsigned i = 0; i < DBG_NREGS; i++)
        put_reg(s, &st, i);
    reply_scratch(s);
}

static void h_G(struct dbg_stub *s, const char *a)
{
    struct vmm_cpu_state st;
    size_t total = dbg_regs_total();
    if (strlen(a) != 2 * total)
        return reply_err(s, E_INVAL);
    if (get_state(s, &st) < 0)
        return reply_err(s, E_FAULT);
    for (unsigned i = 0; i < DBG_NREGS; i++) {
        uint8_t b[DBG_REG_MAX_BYTES];
        if (!dbg_unhex(a, dbg_reg_size(i), b))
            return reply_err(s, E_PARSE);
        dbg_reg_set(&st, i, b);
        a += 2 * dbg_reg_size(i);
    }
    if (s->ops->set_state(s->t, &st) < 0)
        return reply_err(s, E_FAULT);
    reply_ok(s);
}

static void h_p(struct dbg_stub *s, const char *a)
{
    uint64_t n;
    struct vmm_cpu_state st;
    if (!parse_hex(&a, &n) || *a)
        return reply_err(s, E_PARSE);
    if (n >= DBG_NREGS)
        return reply_err(s, E_INVAL);
    if (get_state(s, &st) < 0)
        return reply_err(s, E_FAULT);
    put_reg(s, &st, (unsigned)n);
    reply_scratch(s);
}

static void h_P(struct dbg_stub *s, const char *a)
{
    uint64_t n;
    uint8_t b[DBG_REG_MAX_BYTES];
    struct vmm_cpu_state st;
    if (!parse_hex(&a, &n) || !expect(&a, '='))
        return reply_err(s, E_PARSE);
    if (n >= DBG_NREGS)
        return reply_err(s, E_INVAL);
    size_t size = dbg_reg_size((unsigned)n);
    if (strlen(a) != 2 * size || !dbg_unhex(a, size, b))
        return reply_err(s, E_PARSE);
    if (get_state(s, &st) < 0)
        return reply_err(s, E_FAULT);
    dbg_reg_set(&st, (unsigned)n, b);
    if (s->ops->set_state(s->t, &st) < 0)
        return reply_err(s, E_FAULT);
    reply_ok(s);
}

static void h_m(struct dbg_stub *s, const char *a)
{
    uint64_t addr, len;
    uint8_t buf[MEM_MAX];
    size_t done = 0;
    if (!parse_addr_len(&a, &addr, &len, '\0'))
        return reply_err(s, E_PARSE);
    if (len > MEM_MAX)
        len = MEM_MAX; /* gdb accepts a shorter answer and asks again */
    if (len == 0) /* no bytes would read as an empty, "unsupported" reply */
        return reply_err(s, E_INVAL);
    s->ops->read_mem(s->t, addr, buf, len, &done);
    if (done == 0 || done > len)
        return reply_err(s, E_FAULT);
    dbg_buf_hex(&s->scratch, buf, done);
    reply_scratch(s);
}

static void write_mem(struct dbg_stub *s, uint64_t addr, const uint8_t *b,
                      size_t len)
{
    size_t done = 0;
    if (len == 0)
        return reply_ok(s);
    int rc = s->ops->write_mem(s->t, addr, b, len, &done);
    if (rc < 0 || done != len)
        return reply_err(s, E_FAULT);
    reply_ok(s);
}

static void h_M(struct dbg_stub *s, const char *a)
{
    uint64_t addr, len;
    uint8_t buf[MEM_MAX];
    if (!parse_addr_len(&a, &addr, &len, ':'))
        return reply_err(s, E_PARSE);
    if (len > MEM_MAX)
        return reply_err(s, E_INVAL);
    if (strlen(a) != 2 * len || !dbg_unhex(a, len, buf))
        return reply_err(s, E_PARSE);
    write_mem(s, addr, buf, len);
}

/* X carries raw bytes (already unescaped by the framing), so its length
 * comes from the packet, not strlen. */
static void h_X(struct dbg_stub *s, const char *a)
{
    uint64_t addr, len;
    if (!parse_addr_len(&a, &addr, &len, ':'))
        return reply_err(s, E_PARSE);
    size_t have = s->in.len - (size_t)(a - s->in.p);
    if (len != have)
        return reply_err(s, E_INVAL);
    write_mem(s, addr, (const uint8_t *)a, len);
}

/* ---- breakpoints and watchpoints ---------------------------------------- */

static struct dbg_break *find_break(struct dbg_stub *s, uint64_t addr)
{
    for (size_t i = 0; i < s->nbps; i++)
        if (s->bps[i].addr == addr)
            return &s->bps[i];
    return NULL;
}

static struct dbg_watch *find_watch(struct dbg_stub *s, uint64_t addr,
                                    uint32_t len, uint32_t kind)
{
    for (size_t i = 0; i < s->nwps; i++)
        if (s->wps[i].addr == addr && s->wps[i].len == len &&
            s->wps[i].kind == kind)
            return &s->wps[i];
    return NULL;
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, c * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = c;
    return true;
}

static int break_insert(struct dbg_stub *s, uint64_t addr, bool hw)
{
    struct dbg_break *b = find_break(s, addr);
    if (!b) {
        if (!grow((void **)&s->bps, &s->capbps, s->nbps, sizeof *b))
            return -ENOMEM;
        int rc = s->ops->break_add(s->t, addr);
        if (rc < 0)
            return rc;
        b = &s->bps[s->nbps++];
        *b = (struct dbg_break){.addr = addr};
    }
    if (hw)
        b->hw++;
    else
        b->sw++;
    return 0;
}

static int break_remove(struct dbg_stub *s, uint64_t addr, bool hw)
{
    struct dbg_break *b = find_break(s, addr);
    if (!b || (hw ? b->hw : b->sw) == 0)
        return 0; /* removing what is not there is not an error for gdb */
    if (hw)
        b->hw--;
    else
        b->sw--;
    if (b->hw + b->sw)
        return 0;
    int rc = s->ops->break_remove(s->t, addr);
    *b = s->bps[--s->nbps];
    return rc;
}

static int watch_insert(struct dbg_stub *s, uint64_t addr, uint32_t len,
                        uint32_t kind)
{
    struct dbg_watch *w = find_watch(s, addr, len, kind);
    if (!w) {
        if (!grow((void **)&s->wps, &s->capwps, s->nwps, sizeof *w))
            return -ENOMEM;
        int rc = s->ops->watch_add(s->t, addr, len, kind);
        if (rc < 0)
            return rc;
        w = &s->wps[s->nwps++];
        *w = (struct dbg_watch){.addr = addr, .len = len, .kind = kind};
    }
    w->refs++;
    return 0;
}

static int watch_remove(struct dbg_stub *s, uint64_t addr, uint32_t len,
                        uint32_t kind)
{
    struct dbg_watch *w = find_watch(s, addr, len, kind);
    if (!w)
        return 0;
    if (--w->refs)
        return 0;
    int rc = s->ops->watch_remove(s->t, addr, len, kind);
    *w = s->wps[--s->nwps];
    return rc;
}

/* Z/z TYPE,ADDR,KIND: 0 software and 1 hardware breakpoint (KIND is the
 * instruction length, 1 on x86), 2 write, 3 read, 4 access watchpoint
 * (KIND is the length in bytes). */
static void z_packet(struct dbg_stub *s, const char *a, bool insert)
{
    static const uint32_t watch_kind[] = {
        [2] = VCPU_WATCH_WRITE, [3] = VCPU_WATCH_READ, [4] = VCPU_WATCH_ACCESS};
    uint64_t type, addr, kind;
    int rc;
    /* Conditions and commands (";X...") are not advertised: refuse them
     * rather than ignore them. */
    if (!parse_hex(&a, &type) || !expect(&a, ',') ||
        !parse_addr_len(&a, &addr, &kind, '\0'))
        return reply_err(s, E_PARSE);
    if (type > 4)
        return reply_empty(s);
    if (type <= 1) {
        rc = insert ? break_insert(s, addr, type == 1)
                    : break_remove(s, addr, type == 1);
    } else {
        if (kind == 0 || kind > UINT32_MAX || addr + kind < addr)
            return reply_err(s, E_INVAL);
        rc = insert ? watch_insert(s, addr, (uint32_t)kind, watch_kind[type])
                    : watch_remove(s, addr, (uint32_t)kind, watch_kind[type]);
    }
    if (rc < 0) {
        dbg_stub_log(s, "%s %s at %#" PRIx64 " failed: %s",
                     insert ? "inserting" : "removing",
                     type <= 1 ? "breakpoint" : "watchpoint", addr,
                     dbg_stub_strerror(s, rc));
        return reply_err(s, E_INVAL);
    }
    reply_ok(s);
}

static void h_Z(struct dbg_stub *s, const char *a)
{
    z_packet(s, a, true);
}
static void h_z(struct dbg_stub *s, const char *a)
{
    z_packet(s, a, false);
}

void dbg_stub_reset(struct dbg_stub *s)
{
    while (s->nbps) {
        struct dbg_break *b = &s->bps[0];
        s->ops->break_remove(s->t, b->addr);
        *b = s->bps[--s->nbps];
    }
    while (s->nwps) {
        struct dbg_watch *w = &s->wps[0];
        s->ops->watch_remove(s->t, w->addr, w->len, w->kind);
        *w = s->wps[--s->nwps];
    }
    s->noack = false;
    atomic_store(&s->interrupted, false);
}

/* ---- stop replies ------------------------------------------------------- */

static void stop_head(struct dbg_stub *s, int sig)
{
    struct vmm_cpu_state st;
    dbg_buf_printf(&s->scratch, "T%02xthread:1;", sig);
    if (get_state(s, &st) < 0)
        return;
    /* Expedite what gdb reads first at every stop: frame, stack, pc. */
    static const unsigned fast[] = {DBG_REG_RBP, DBG_REG_RSP, DBG_REG_RIP};
    for (size_t i = 0; i < sizeof fast / sizeof fast[0]; i++) {
        dbg_buf_printf(&s->scratch, "%02x:", fast[i]);
        put_reg(s, &st, fast[i]);
        dbg_buf_putc(&s->scratch, ';');
    }
}

static void stop_watch(struct dbg_stub *s, const struct replay_stop *st)
{
    const char *what = st->watch_kind == VCPU_WATCH_READ     ? "rwatch"
                       : st->watch_kind == VCPU_WATCH_ACCESS ? "awatch"
                                                             : "watch";
    stop_head(s, 5);
    dbg_buf_printf(&s->scratch, "%s:%" PRIx64 ";", what, st->watch_addr);
}

static void stop_break(struct dbg_stub *s, const struct replay_stop *st)
{
    const struct dbg_break *b = find_break(s, st->pc);
    stop_head(s, 5);
    dbg_buf_puts(&s->scratch, b && !b->sw ? "hwbreak:;" : "swbreak:;");
}

/* A target call failed: say why on gdb's console and stop with signal 0
 * ("Program stopped.") where the target now is. */
static void stop_error(struct dbg_stub *s, int rc)
{
    const char *detail =
        s->ops->error_detail ? s->ops->error_detail(s->t) : NULL;
    console(s, "ttvm: replay stopped: %s%s%s\n", dbg_stub_strerror(s, rc),
            detail && *detail ? ": " : "", detail ? detail : "");
    stop_head(s, 0);
}

static bool is_interrupt(int rc, const struct replay_stop *st)
{
    return rc == REPLAY_E_INTERRUPTED ||
           (rc == 0 && (st->reasons & REPLAY_STOP_INTERRUPTED));
}

/* When a forward resume arrives at the end of a recording that ends with
 * the guest's exit, the user is told once, at arrival. */
static void note_exit(struct dbg_stub *s, const struct replay_stop *st)
{
    console(s,
            "ttvm: end of the recording (icount %" PRIu64 "): the guest "
            "exited with status %d here.\n"
            "ttvm: reverse execution works from here; going forward again "
            "reports the exit and ends the session.\n",
            st->icount, st->exit_status);
}

/* Builds the stop reply for a resume that ended with rc/st, from position
 * `from`.  A step that moved is a plain step stop even when it landed on
 * an end of the recording; replaylog is for "could not go further". */
static void stop_reply(struct dbg_stub *s, int rc, const struct replay_stop *st,
                       bool forward, uint64_t from)
{
    unsigned r = st->reasons;
    bool at_exit =
        rc == 0 && forward && (r & REPLAY_STOP_END) && (r & REPLAY_STOP_EXITED);
    dbg_buf_clear(&s->scratch);
    if (at_exit && from == st->icount) {
        /* Going forward from the exit: now report the exit itself. */
        dbg_buf_printf(&s->scratch, "W%02x", st->exit_status & 0xff);
        return reply_scratch(s);
    }
    if (at_exit)
        note_exit(s, st);
    if (is_interrupt(rc, st))
        stop_head(s, 2);
    else if (rc < 0)
        stop_error(s, rc);
    else if (r & REPLAY_STOP_WATCH)
        stop_watch(s, st);
    else if ((r & REPLAY_STOP_BREAK) && !(r & REPLAY_STOP_STEP))
        stop_break(s, st);
    else if ((r & REPLAY_STOP_STEP) ||
             !(r & (REPLAY_STOP_BEGIN | REPLAY_STOP_END)))
        stop_head(s, 5);
    else {
        stop_head(s, 5);
        dbg_buf_puts(&s->scratch,
                     forward ? "replaylog:end;" : "replaylog:begin;");
    }
    reply_scratch(s);
}

static void do_continue(struct dbg_stub *s, bool backward)
{
    struct replay_stop st = {0};
    uint64_t from = s->ops->icount(s->t);
    int rc = atomic_load(&s->interrupted) ? REPLAY_E_INTERRUPTED
                                          : s->ops->cont(s->t, backward, &st);
    stop_reply(s, rc, &st, !backward, from);
}

static void do_step(struct dbg_stub *s, int64_t n)
{
    struct replay_stop st = {0};
    uint64_t from = s->ops->icount(s->t);
    int rc = atomic_load(&s->interrupted) ? REPLAY_E_INTERRUPTED
                                          : s->ops->step(s->t, n, true, &st);
    stop_reply(s, rc, &st, n > 0, from);
}

/* vCont r START,END: step while the pc stays in [START, END), stopping at
 * breakpoints and watchpoints on the way (gdb's range stepping for `step`
 * and `next`). */
static void do_range_step(struct dbg_stub *s, uint64_t start, uint64_t end)
{
    struct replay_stop st = {0};
    uint64_t from = s->ops->icount(s->t);
    int rc;
    for (;;) {
        if (atomic_load(&s->interrupted)) {
            rc = REPLAY_E_INTERRUPTED;
            break;
        }
        rc = s->ops->step(s->t, 1, true, &st);
        if (rc < 0 || st.pc < start || st.pc >= end ||
            (st.reasons & ~REPLAY_STOP_STEP))
            break;
    }
    /* A breakpoint that ends a range step is a breakpoint stop even
     * though the one-instruction step itself completed. */
    if (rc == 0 && (st.reasons & REPLAY_STOP_BREAK) && st.pc >= start &&
        st.pc < end)
        st.reasons &= ~REPLAY_STOP_STEP;
    stop_reply(s, rc, &st, true, from);
}

static void h_c(struct dbg_stub *s, const char *a)
{
    (void)a; /* "c ADDR" would resume elsewhere: meaningless in a replay */
    do_continue(s, false);
}

static void h_s(struct dbg_stub *s, const char *a)
{
    (void)a;
    do_step(s, 1);
}

static void h_bc(struct dbg_stub *s, const char *a)
{
    (void)a;
    do_continue(s, true);
}

static void h_bs(struct dbg_stub *s, const char *a)
{
    (void)a;
    do_step(s, -1);
}

static void h_vcont_query(struct dbg_stub *s, const char *a)
{
    (void)a;
    /* gdb uses vCont only when c, C, s and S are all listed; signals
     * cannot be delivered into a recording, so C/S act as c/s. */
    reply_str(s, "vCont;c;C;s;S;r");
}

/* vCont;ACTION[:TID][;ACTION[:TID]]...: with one thread, the first action
 * applies (gdb lists thread-specific actions before the default one). */
static void h_vcont(struct dbg_stub *s, const char *a)
{
    uint64_t sig, start, end;
    switch (*a) {
    case 'c':
        return do_continue(s, false);
    case 's':
        return do_step(s, 1);
    case 'C':
    case 'S': {
        char op = *a++;
        if (!parse_hex(&a, &sig))
            return reply_err(s, E_PARSE);
        return op == 'C' ? do_continue(s, false) : do_step(s, 1);
    }
    case 'r':
        a++;
        if (!parse_hex(&a, &start) || !expect(&a, ',') ||
            !parse_hex(&a, &end) || start > end)
            return reply_err(s, E_PARSE);
        return do_range_step(s, start, end);
    default:
        return reply_err(s, E_PARSE);
    }
}

/* ---- session ------------------------------------------------------------ */

static void h_stop_query(struct dbg_stub *s, const char *a)
{
    (void)a;
    stop_head(s, 5);
    reply_scratch(s);
}

static void h_qsupported(struct dbg_stub *s, const char *a)
{
    (void)a;
    dbg_buf_printf(&s->scratch,
                   "PacketSize=%x;qXfer:features:read+;swbreak+;hwbreak+;"
                   "ReverseStep+;ReverseContinue+;QStartNoAckMode+;"
                   "vContSupported+",
                   DBG_PACKET_MAX);
    reply_scratch(s);
}

static void h_noack(struct dbg_stub *s, const char *a)
{
    (void)a;
    s->noack = true;
    reply_ok(s);
}

/* qXfer:features:read:ANNEX:OFFSET,LENGTH -> m<data> (more) / l<data>. */
static void h_qxfer_features(struct dbg_stub *s, const char *a)
{
    static const char annex[] = "target.xml:";
    uint64_t off, len;
    if (strncmp(a, annex, sizeof annex - 1))
        return reply_err(s, E_NOENT);
    a += sizeof annex - 1;
    if (!parse_addr_len(&a, &off, &len, '\0'))
        return reply_err(s, E_PARSE);
    if (!s->xml.len)
        dbg_target_xml(&s->xml);
    if (s->xml.oom)
        return reply_err(s, ENOMEM);
    if (off > s->xml.len)
        return reply_err(s, E_INVAL);
    if (len > DBG_PACKET_MAX - 16)
        len = DBG_PACKET_MAX - 16;
    size_t n = s->xml.len - off < len ? s->xml.len - off : len;
    dbg_buf_putc(&s->scratch, off + n < s->xml.len ? 'm' : 'l');
    dbg_buf_put(&s->scratch, s->xml.p + off, n);
    reply_scratch(s);
}

static void h_qrcmd(struct dbg_stub *s, const char *a)
{
    size_t n = strlen(a);
    if (n % 2)
        return reply_err(s, E_PARSE);
    char *cmd = malloc(n / 2 + 1);
    if (!cmd)
        return reply_err(s, ENOMEM);
    if (!dbg_unhex(a, n / 2, (uint8_t *)cmd)) {
        free(cmd);
        return reply_err(s, E_PARSE);
    }
    cmd[n / 2] = '\0';
    struct dbg_buf out = {.limit = 1u << 20};
    dbg_monitor(s, cmd, &out);
    free(cmd);
    /* The output travels hex-encoded as the one reply (gdb prints it);
     * "OK" when there is none, since an empty reply means unsupported. */
    if (out.len && !out.oom)
        dbg_buf_hex(&s->scratch, out.p, out.len);
    dbg_buf_free(&out);
    if (!s->scratch.len)
        return reply_ok(s);
    reply_scratch(s);
}

static void h_kill(struct dbg_stub *s, const char *a)
{
    (void)a;
    /* gdb 13.1 reads a reply to k; X09 ("killed by SIGKILL") is what it
     * expects.  The replay stays where it is for the next client. */
    s->close = true;
    reply_str(s, "X09");
}

static void h_detach(struct dbg_stub *s, const char *a)
{
    (void)a;
    s->close = true;
    reply_ok(s);
}

static void h_ok(struct dbg_stub *s, const char *a)
{
    (void)a;
    reply_ok(s);
}

static void h_thread_one(struct dbg_stub *s, const char *a)
{
    (void)a;
    reply_str(s, "QC1");
}

static void h_threads_first(struct dbg_stub *s, const char *a)
{
    (void)a;
    reply_str(s, "m1");
}

static void h_threads_next(struct dbg_stub *s, const char *a)
{
    (void)a;
    reply_str(s, "l");
}

static void h_attached(struct dbg_stub *s, const char *a)
{
    (void)a;
    /* "attached": quitting gdb detaches (the replay survives) instead of
     * killing. */
    reply_str(s, "1");
}

static void h_offsets(struct dbg_stub *s, const char *a)
{
    (void)a;
    /* Guests run at their link addresses. */
    reply_str(s, "Text=0;Data=0;Bss=0");
}

/* ---- dispatch ----------------------------------------------------------- */

struct handler {
    const char *name;
    bool prefix; /* name is a prefix of the packet (else: all of it) */
    bool longop; /* may run long: the transport watches for Ctrl-C */
    void (*fn)(struct dbg_stub *s, const char *args);
};

static const struct handler handlers[] = {
    {"?", false, false, h_stop_query},
    {"g", false, false, h_g},
    {"G", true, false, h_G},
    {"p", true, false, h_p},
    {"P", true, false, h_P},
    {"m", true, false, h_m},
    {"M", true, false, h_M},
    {"X", true, false, h_X},
    {"Z", true, false, h_Z},
    {"z", true, false, h_z},
    {"c", true, true, h_c},
    {"C", true, true, h_c},
    {"s", true, true, h_s},
    {"S", true, true, h_s},
    {"bc", false, true, h_bc},
    {"bs", false, true, h_bs},
    {"vCont?", false, false, h_vcont_query},
    {"vCont;", true, true, h_vcont},
    {"k", false, false, h_kill},
    {"D", true, false, h_detach},
    {"H", true, false, h_ok},
    {"T", true, false, h_ok},
    {"qSupported", true, false, h_qsupported},
    {"QStartNoAckMode", false, false, h_noack},
    {"qXfer:features:read:", true, false, h_qxfer_features},
    {"qAttached", true, false, h_attached},
    {"qC", false, false, h_thread_one},
    {"qfThreadInfo", false, false, h_threads_first},
    {"qsThreadInfo", false, false, h_threads_next},
    {"qOffsets", false, false, h_offsets},
    {"qSymbol:", true, false, h_ok},
    {"qRcmd,", true, true, h_qrcmd},
};

static const struct handler *lookup(const char *pkt)
{
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        const struct handler *h = &handlers[i];
        size_t n = strlen(h->name);
        if (h->prefix ? !strncmp(pkt, h->name, n) : !strcmp(pkt, h->name))
            return h;
    }
    return NULL;
}

void dbg_stub_packet(struct dbg_stub *s, const void *pkt, size_t len,
                     struct dbg_reply *r)
{
    dbg_buf_clear(&s->reply);
    dbg_buf_clear(&s->console);
    dbg_buf_clear(&s->scratch);
    dbg_buf_clear(&s->in);
    s->replied = s->close = s->noack = false;

    dbg_buf_put(&s->in, pkt, len);
    const struct handler *h = NULL;
    if (len > DBG_PACKET_MAX || s->in.oom)
        reply_err(s, E_INVAL);
    else if (!(h = lookup(s->in.p)))
        reply_empty(s); /* unknown packet: the protocol's "unsupported" */
    if (h) {
        bool longop = h->longop && s->long_begin;
        if (longop)
            s->long_begin(s->long_ctx);
        h->fn(s, s->in.p + strlen(h->name));
        if (longop)
            s->long_end(s->long_ctx);
        if (h->longop) /* a Ctrl-C is for the operation it arrived in */
            atomic_store(&s->interrupted, false);
    }
    if (!s->replied || s->reply.oom) {
        fprintf(stderr, "ttvm: bug: gdb stub handler did not reply\n");
        abort();
    }
    *r = (struct dbg_reply){
        .data = s->reply.p ? s->reply.p : "",
        .len = s->reply.len,
        .console = s->console.p ? s->console.p : "",
        .console_len = s->console.len,
        .close = s->close,
        .noack = s->noack,
    };
}

int dbg_stub_create(const struct dbg_target_ops *ops, void *t,
                    const struct dbg_stub_opts *opts, struct dbg_stub **out)
{
    if (!ops || !out)
        return DBG_E_ARG;
    struct dbg_stub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->ops = ops;
    s->t = t;
    if (opts)
        s->opts = *opts;
    s->in.limit = DBG_PACKET_MAX + 1;
    atomic_init(&s->interrupted, false);
    *out = s;
    return 0;
}

void dbg_stub_destroy(struct dbg_stub *s)
{
    if (!s)
        return;
    dbg_stub_reset(s);
    dbg_buf_free(&s->in);
    dbg_buf_free(&s->reply);
    dbg_buf_free(&s->console);
    dbg_buf_free(&s->scratch);
    dbg_buf_free(&s->xml);
    free(s->bps);
    free(s->wps);
    free(s);
}
