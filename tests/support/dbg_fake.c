/*
 * dbg_fake.c — the fake debugger target described in dbg_fake.h.
 * Everything is a function of the position, so tests can compute the
 * expected answer of any operation independently of the stub.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/store.h"
#include "tests/support/dbg_fake.h"

#define REGION 0x1000ull
#define MAX_OVERLAY 4096
#define MAX_BREAKS 64
#define MAX_WATCHES 16

struct dbg_fake {
    struct dbg_fake_config cfg;
    uint64_t pos;
    bool have_state; /* overlay of register writes */
    struct vmm_cpu_state state;
    struct {
        uint64_t addr;
        uint8_t val;
    } ov[MAX_OVERLAY];
    size_t nov;
    uint64_t bps[MAX_BREAKS];
    size_t nbps;
    struct vcpu_watch wps[MAX_WATCHES];
    size_t nwps;
    atomic_bool intr;
    atomic_uint nintr;
    unsigned nops;
    char detail[128];
};

/* ---- ground truth ------------------------------------------------------- */

uint64_t dbg_fake_pc_at(uint64_t i)
{
    return DBG_FAKE_CODE + 4 * (i % 16);
}

static unsigned var_of(uint64_t i)
{
    return (unsigned)((i / 16) % 4);
}

uint64_t dbg_fake_var_at(uint64_t icount, unsigned var)
{
    /* Last write to var by an instruction q < icount: q % 16 == 5 and
     * (q / 16) % 4 == var, i.e. q = 64m + 16 var + 5. */
    uint64_t first = 16 * (uint64_t)var + 5;
    if (icount <= first)
        return 0x1111ull * (var + 1);
    return first + (icount - 1 - first) / 64 * 64;
}

void dbg_fake_state_at(uint64_t i, struct vmm_cpu_state *s)
{
    memset(s, 0, sizeof *s);
    s->version = VMM_STATE_VERSION;
    s->size = sizeof *s;
    struct vmm_regs *r = &s->regs;
    r->rax = i;
    r->rbx = 3 * i;
    r->rcx = ~i;
    r->rdx = 0xdead0000 + i % 7;
    r->rsi = i << 8;
    r->rdi = i << 16;
    r->rbp = DBG_FAKE_STACK + 0x800;
    r->rsp = DBG_FAKE_STACK + 0x800 - 8 * (i % 4);
    uint64_t *hi = &r->r8;
    for (int k = 0; k < 8; k++)
        hi[k] = (uint64_t)(8 + k) << 32 | i;
    r->rip = dbg_fake_pc_at(i);
    r->rflags = 0x202 | (i & 1 ? 0x40 : 0);

    struct vmm_sregs *sr = &s->sregs;
    sr->cs = (struct vmm_segment){.selector = 0x08,
                                  .type = 11,
                                  .present = 1,
                                  .s = 1,
                                  .l = 1,
                                  .g = 1,
                                  .limit = 0xffffffff};
    sr->ds = (struct vmm_segment){.selector = 0x10,
                                  .type = 3,
                                  .present = 1,
                                  .s = 1,
                                  .g = 1,
                                  .limit = 0xffffffff};
    sr->es = sr->ss = sr->ds;
    sr->fs = sr->ds;
    sr->fs.selector = 0x18;
    sr->fs.base = 0x70000000 + i;
    sr->gs = sr->ds;
    sr->gs.selector = 0x20;
    sr->gs.base = 0x80000000 + 2 * i;
    sr->cr0 = 0x80010033;
    sr->cr2 = i * 0x1000;
    sr->cr3 = 0x9000;
    sr->cr4 = 0x6a0;
    sr->efer = 0xd01;

    struct vmm_fpu *f = &s->fpu;
    f->fcw = 0x37f;
    f->fsw = 7 << 11; /* TOP = 7: ST(0) is physical register 7 */
    f->ftwx = 0x80;
    long double st0 = (long double)i + 0.5L;
    memcpy(f->fpr[0], &st0, 10);
    f->last_ip = 0x1234567800000000ull | i;
    f->last_dp = 0x8765432100000000ull | (i * 2);
    f->last_opcode = 0x1ab;
    for (int k = 0; k < 16; k++)
        f->xmm[0][k] = (uint8_t)(i + k);
    double d = (double)i * 0.25;
    memcpy(f->xmm[1], &d, 8);
    f->mxcsr = 0x1f80;
}

/* ---- memory ------------------------------------------------------------- */

static bool mapped(uint64_t a)
{
    return (a >= DBG_FAKE_CODE && a < DBG_FAKE_CODE + REGION) ||
           (a >= DBG_FAKE_DATA && a < DBG_FAKE_DATA + REGION) ||
           (a >= DBG_FAKE_STACK && a < DBG_FAKE_STACK + REGION);
}

static uint8_t byte_at(const struct dbg_fake *f, uint64_t a)
{
    for (size_t k = 0; k < f->nov; k++)
        if (f->ov[k].addr == a)
            return f->ov[k].val;
    if (a >= DBG_FAKE_CODE && a < DBG_FAKE_CODE + REGION) {
        static const uint8_t nop4[4] = {0x0f, 0x1f, 0x40, 0x00};
        return nop4[a % 4];
    }
    if (a >= DBG_FAKE_DATA && a < DBG_FAKE_DATA + 8 * DBG_FAKE_NVARS) {
        uint64_t v =
            dbg_fake_var_at(f->pos, (unsigned)((a - DBG_FAKE_DATA) / 8));
        return (uint8_t)(v >> (8 * ((a - DBG_FAKE_DATA) % 8)));
    }
    return 0;
}

static int f_read_mem(void *t, uint64_t gva, void *buf, size_t len,
                      size_t *done)
{
    struct dbg_fake *f = t;
    uint8_t *b = buf;
    *done = 0;
    for (size_t k = 0; k < len; k++) {
        if (!mapped(gva + k))
            return REPLAY_E_MEMORY;
        b[k] = byte_at(f, gva + k);
        (*done)++;
    }
    return 0;
}

static int f_write_mem(void *t, uint64_t gva, const void *buf, size_t len,
                       size_t *done)
{
    struct dbg_fake *f = t;
    const uint8_t *b = buf;
    *done = 0;
    for (size_t k = 0; k < len; k++) {
        uint64_t a = gva + k;
        if (!mapped(a))
            return REPLAY_E_MEMORY;
        size_t j = 0;
        while (j < f->nov && f->ov[j].addr != a)
            j++;
        if (j == f->nov) {
            if (f->nov == MAX_OVERLAY)
                return -ENOMEM;
            f->nov++;
        }
        f->ov[j].addr = a;
        f->ov[j].val = b[k];
        (*done)++;
    }
    return 0;
}

/* ---- state -------------------------------------------------------------- */

static uint64_t f_icount(void *t)
{
    return ((struct dbg_fake *)t)->pos;
}
static uint64_t f_end(void *t)
{
    return ((struct dbg_fake *)t)->cfg.end;
}

static int f_get_state(void *t, struct vmm_cpu_state *s)
{
    struct dbg_fake *f = t;
    if (f->have_state)
        *s = f->state;
    else
        dbg_fake_state_at(f->pos, s);
    return 0;
}

static int f_set_state(void *t, const struct vmm_cpu_state *s)
{
    struct dbg_fake *f = t;
    f->state = *s;
    f->have_state = true;
    return 0;
}

/* ---- moving ------------------------------------------------------------- */

static void move_to(struct dbg_fake *f, uint64_t pos)
{
    if (pos != f->pos) {
        f->have_state = false;
        f->nov = 0;
    }
    f->pos = pos;
}

static bool is_break(const struct dbg_fake *f, uint64_t pc)
{
    for (size_t k = 0; k < f->nbps; k++)
        if (f->bps[k] == pc)
            return true;
    return false;
}

/* Does instruction q access a watched range?  Fills the stop's watch_*. */
static bool watch_hit(const struct dbg_fake *f, uint64_t q,
                      struct replay_stop *st)
{
    uint32_t access = q % 16 == 5   ? VCPU_WATCH_WRITE
                      : q % 16 == 9 ? VCPU_WATCH_READ
                                    : 0;
    if (!access)
        return false;
    uint64_t a = DBG_FAKE_DATA + 8 * var_of(q);
    for (size_t k = 0; k < f->nwps; k++) {
        const struct vcpu_watch *w = &f->wps[k];
        if (!(w->kind & access) || w->addr >= a + 8 || a >= w->addr + w->len)
            continue;
        st->watch_addr = w->addr > a ? w->addr : a;
        st->watch_kind = w->kind;
        st->watch_icount = q;
        return true;
    }
    return false;
}

static void pause_insn(const struct dbg_fake *f)
{
    if (f->cfg.delay_us) {
        struct timespec ts = {0, (long)f->cfg.delay_us * 1000};
        nanosleep(&ts, NULL);
    }
}

static int begin_op(struct dbg_fake *f, struct replay_stop *st)
{
    f->nops++;
    atomic_store(&f->intr, false);
    memset(st, 0, sizeof *st);
    return 0;
}

static void end_stop(struct dbg_fake *f, struct replay_stop *st)
{
    st->icount = f->pos;
    st->pc = dbg_fake_pc_at(f->pos);
    if (f->pos == f->cfg.end && (st->reasons & REPLAY_STOP_END) &&
        f->cfg.exited) {
        st->reasons |= REPLAY_STOP_EXITED;
        st->exit_status = f->cfg.exit_status;
    }
}

/* One instruction forward (dir > 0) or backward; sets reasons that hold
 * at the new position.  < 0 on a (simulated) divergence. */
static int move_one(struct dbg_fake *f, int dir, bool honour,
                    struct replay_stop *st)
{
    uint64_t next = dir > 0 ? f->pos + 1 : f->pos - 1;
    if (f->cfg.fail_at && next == f->cfg.fail_at) {
        strcpy(f->detail, "fake divergence at the configured position");
        return REPLAY_E_DIVERGED;
    }
    uint64_t insn = dir > 0 ? f->pos : next; /* the instruction crossed */
    move_to(f, next);
    pause_insn(f);
    if (!honour)
        return 0;
    if (watch_hit(f, insn, st))
        st->reasons |= REPLAY_STOP_WATCH;
    if (is_break(f, dbg_fake_pc_at(next)))
        st->reasons |= REPLAY_STOP_BREAK;
    return 0;
}

static bool at_limit(struct dbg_fake *f, int dir, struct replay_stop *st)
{
    if (dir > 0 && f->pos >= f->cfg.end) {
        st->reasons |= REPLAY_STOP_END;
        return true;
    }
    if (dir < 0 && f->pos == 0) {
        st->reasons |= REPLAY_STOP_BEGIN;
        return true;
    }
    return false;
}

static int f_step(void *t, int64_t n, bool honour, struct replay_stop *st)
{
    struct dbg_fake *f = t;
    int dir = n < 0 ? -1 : 1;
    uint64_t todo = n < 0 ? (uint64_t)-n : (uint64_t)n;
    int rc = begin_op(f, st);
    while (todo && rc == 0) {
        if (at_limit(f, dir, st))
            break;
        if (atomic_load(&f->intr)) {
            st->reasons |= REPLAY_STOP_INTERRUPTED;
            break;
        }
        rc = move_one(f, dir, honour, st);
        todo--;
        if (todo && (st->reasons & (REPLAY_STOP_WATCH | REPLAY_STOP_BREAK)))
            break;
    }
    if (rc == 0 && todo == 0) {
        st->reasons |= REPLAY_STOP_STEP;
        at_limit(f, dir, st);
    }
    end_stop(f, st);
    return rc;
}

static int f_cont(void *t, bool backward, struct replay_stop *st)
{
    struct dbg_fake *f = t;
    int dir = backward ? -1 : 1;
    int rc = begin_op(f, st);
    while (rc == 0 && !at_limit(f, dir, st)) {
        if (atomic_load(&f->intr)) {
            st->reasons |= REPLAY_STOP_INTERRUPTED;
            break;
        }
        rc = move_one(f, dir, true, st);
        if (st->reasons & (REPLAY_STOP_WATCH | REPLAY_STOP_BREAK))
            break;
    }
    end_stop(f, st);
    return rc;
}

static int f_goto(void *t, uint64_t icount)
{
    struct dbg_fake *f = t;
    struct replay_stop st;
    begin_op(f, &st);
    if (icount > f->cfg.end)
        return REPLAY_E_RANGE;
    move_to(f, icount);
    return 0;
}

/* ---- breakpoints -------------------------------------------------------- */

static int f_break_add(void *t, uint64_t a)
{
    struct dbg_fake *f = t;
    if (f->nbps == MAX_BREAKS)
        return REPLAY_E_LIMIT;
    f->bps[f->nbps++] = a;
    return 0;
}

static int f_break_remove(void *t, uint64_t a)
{
    struct dbg_fake *f = t;
    for (size_t k = 0; k < f->nbps; k++)
        if (f->bps[k] == a) {
            f->bps[k] = f->bps[--f->nbps];
            return 0;
        }
    return REPLAY_E_ARG;
}

static int f_watch_add(void *t, uint64_t a, uint32_t len,
                       enum vcpu_watch_kind kind)
{
    struct dbg_fake *f = t;
    if (f->nwps == MAX_WATCHES)
        return REPLAY_E_LIMIT;
    f->wps[f->nwps++] = (struct vcpu_watch){a, len, kind};
    return 0;
}

static int f_watch_remove(void *t, uint64_t a, uint32_t len,
                          enum vcpu_watch_kind kind)
{
    struct dbg_fake *f = t;
    for (size_t k = 0; k < f->nwps; k++)
        if (f->wps[k].addr == a && f->wps[k].len == len &&
            f->wps[k].kind == (uint32_t)kind) {
            f->wps[k] = f->wps[--f->nwps];
            return 0;
        }
    return REPLAY_E_ARG;
}

/* ---- events and snapshots ----------------------------------------------- */

static uint64_t io_events(const struct dbg_fake *f)
{
    return f->cfg.end > 50 ? (f->cfg.end - 50 + 99) / 100 : 0;
}

static uint64_t f_event_count(void *t)
{
    struct dbg_fake *f = t;
    return io_events(f) + (f->cfg.exited ? 1 : 0);
}

static uint64_t f_next_event(void *t)
{
    struct dbg_fake *f = t;
    uint64_t k = f->pos <= 50 ? 0 : (f->pos - 50 + 99) / 100;
    return k < io_events(f) ? k : io_events(f);
}

static int f_events(void *t, uint64_t first, struct replay_event *ev, size_t n,
                    size_t *got)
{
    struct dbg_fake *f = t;
    uint64_t count = f_event_count(t);
    *got = 0;
    for (uint64_t i = first; i < count && *got < n; i++) {
        struct replay_event *e = &ev[(*got)++];
        memset(e, 0, sizeof *e);
        e->index = i;
        if (i < io_events(f)) {
            e->icount = 100 * i + 50;
            e->kind = STORE_EV_PIO_OUT;
            e->addr = 0x3f8;
            e->value = 'A' + i % 26;
            e->size = 1;
        } else {
            e->icount = f->cfg.end;
            e->kind = STORE_EV_EXIT;
            e->value = (uint64_t)f->cfg.exit_status;
        }
    }
    return 0;
}

static uint32_t f_snapshot_count(void *t)
{
    return (uint32_t)(((struct dbg_fake *)t)->cfg.end / 250 + 1);
}

static int f_snapshots(void *t, uint32_t first, struct replay_snapshot *s,
                       size_t n, size_t *got)
{
    uint32_t count = f_snapshot_count(t);
    *got = 0;
    for (uint32_t i = first; i < count && *got < n; i++) {
        uint64_t ic = 250ull * i;
        s[(*got)++] = (struct replay_snapshot){
            .id = i,
            .reason = i ? STORE_SNAP_PERIODIC : STORE_SNAP_BOOT,
            .icount = ic,
            .event_index = ic <= 50 ? 0 : (ic - 50 + 99) / 100,
            .npages = i + 1};
    }
    return 0;
}

static void f_interrupt(void *t)
{
    struct dbg_fake *f = t;
    atomic_fetch_add(&f->nintr, 1);
    atomic_store(&f->intr, true);
}

static const char *f_strerror(int err)
{
    switch (err) {
    case REPLAY_E_DIVERGED:
        return "replay diverged from the recording";
    case REPLAY_E_RANGE:
        return "position outside the recording";
    case REPLAY_E_MEMORY:
        return "guest address not mapped";
    case REPLAY_E_INTERRUPTED:
        return "interrupted";
    case REPLAY_E_LIMIT:
        return "too many breakpoints or watchpoints";
    default:
        return "fake target error";
    }
}

static const char *f_error_detail(void *t)
{
    return ((struct dbg_fake *)t)->detail;
}

static const char *f_engine(void *t)
{
    (void)t;
    return "fake";
}

const struct dbg_target_ops dbg_fake_ops = {
    .icount = f_icount,
    .end = f_end,
    .get_state = f_get_state,
    .set_state = f_set_state,
    .read_mem = f_read_mem,
    .write_mem = f_write_mem,
    .goto_icount = f_goto,
    .step = f_step,
    .cont = f_cont,
    .break_add = f_break_add,
    .break_remove = f_break_remove,
    .watch_add = f_watch_add,
    .watch_remove = f_watch_remove,
    .events = f_events,
    .event_count = f_event_count,
    .next_event = f_next_event,
    .snapshots = f_snapshots,
    .snapshot_count = f_snapshot_count,
    .interrupt = f_interrupt,
    .strerror = f_strerror,
    .error_detail = f_error_detail,
    .engine = f_engine,
};

int dbg_fake_create(const struct dbg_fake_config *cfg, struct dbg_fake **out)
{
    struct dbg_fake *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    if (cfg)
        f->cfg = *cfg;
    if (!f->cfg.end)
        f->cfg.end = 1000;
    atomic_init(&f->intr, false);
    atomic_init(&f->nintr, 0);
    *out = f;
    return 0;
}

void dbg_fake_destroy(struct dbg_fake *f)
{
    free(f);
}

unsigned dbg_fake_interrupts(const struct dbg_fake *f)
{
    return atomic_load(&((struct dbg_fake *)f)->nintr);
}

unsigned dbg_fake_ops_run(const struct dbg_fake *f)
{
    return f->nops;
}
size_t dbg_fake_nbreaks(const struct dbg_fake *f)
{
    return f->nbps;
}
size_t dbg_fake_nwatches(const struct dbg_fake *f)
{
    return f->nwps;
}
