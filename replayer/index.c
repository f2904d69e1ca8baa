/*
 * index.c — replay_index: the first re-execution of a trace under Unicorn,
 * which finds the position of every event and snapshot, checks the
 * recording as it goes, and leaves index snapshots for fast travel.
 *
 * The recording says what happened in order, not when: the KVM run had no
 * instruction counter.  So the index replays the events one after the
 * other from snapshot 0:
 *  - an I/O event is met when the guest makes that access (the backend's
 *    io callback, with the registers before the instruction: compared
 *    with the recorded ones); when the next event is not I/O the callback
 *    asks to stop right after the instruction, the event's *point*;
 *  - HLT: the backend stops after it (registers compared);
 *  - an interrupt is injected at the point of the event before it;
 *  - a kick or interrupt-window point is found by matching: a breakpoint
 *    at the recorded RIP whose hit filter compares the registers inside
 *    the run, and at a register match the contents of the pages the
 *    kick's snapshot saved (a spin loop repeats its registers while memory
 *    moves on) and the vector registers; the first full match is the
 *    point (a rep string instruction interrupted mid-way is reached by
 *    counting the iterations left);
 *  - a snapshot taken at an I/O exit is placed by a breakpoint at the
 *    I/O instruction (its state is before it), the others at the point
 *    of the event before them; at each, registers, vector and control
 *    registers and the pages it saved are compared with the replay.
 * The first mismatch is a divergence (event index, icount, diff).
 *
 * Every ~32 M instructions an index snapshot is kept (CPU state and the
 * pages the current interval may write).  The recorder's page lists stop
 * at its last snapshot, so from there on the backend's dirty log tracks
 * what the rest of the run writes (the tail list).
 *
 * The engine: Unicorn, unless the guest turns on non-identity paging
 * (Unicorn 2.0.1 ignores page tables: VMM_E_PAGING); then the whole trace
 * is indexed again from snapshot 0 by kvm-step, the backend that single-
 * steps KVM (vcpu_kvmstep.c), and the index records which engine made it
 * (meta key RP_META_ENGINE, "index.engine"): positions are the same unit
 * on both (checked on traces both can run: tests/integration/
 * replay_paging.sh), but only that engine can reach them there.  The
 * same search finds kick points on it (breakpoint at the recorded RIP,
 * registers and pages compared; kvm-step checks the breakpoint before
 * every step); coverage windows are not kept; index snapshots come every
 * 256 K instructions instead of 32 M, runs stop every 64 K for progress.
 * Where the host cannot single-step the guest's code (CPL3 under
 * kvm-pvm) the second try fails with REPLAY_E_PAGING and both reasons.
 *
 * Following a recording (`ttvm record --index`): the trace is read as the
 * recorder commits it (a read-only handle sees each commit), the indexer
 * waits at the end of what is committed, and everything is written once
 * the recording is complete, through a writable handle (the recorder is
 * the trace's only writer until then).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "replayer/replayer_int.h"

#define ISNAP_EVERY_DEFAULT (32ull << 20)
/* kvm-step runs ~70 000 instructions/s: index snapshots every 256 K keep
 * a goto within a few seconds, runs of 64 K let progress move */
#define ISNAP_EVERY_KVMSTEP (256ull << 10)
#define KVMSTEP_RUN_MAX (64ull << 10)
#define FOLLOW_POLL_NS (20 * 1000 * 1000)
#define SEARCH_STUCK_MAX 64 /* rounds of a search without moving on */
#define COVER_EVERY (4ull << 20) /* instructions per coverage window */

enum bp_mode { BP_NONE, BP_KICK, BP_IOSNAP, BP_EXIT };

/* A window of positions [start, next window's start) and the code that
 * ran in it. */
struct ix_window {
    uint64_t start;
    struct vcpu_code_range *code;
    size_t n;
};
_Static_assert(sizeof(struct vcpu_code_range) ==
                   sizeof(struct store_code_range) &&
               offsetof(struct vcpu_code_range, len) ==
                   offsetof(struct store_code_range, len),
               "code range layouts");

struct rp_index {
    struct replay *r;
    const struct replay_opts *o;
    bool follow;
    pid_t parent;
    uint64_t *pos_of; /* event positions found */
    size_t cap;
    uint32_t snap_next; /* first recorded snapshot not yet placed */
    uint64_t point;     /* point of the last event consumed */
    uint64_t isnap_every, isnap_next;
    struct cp_pool *xpool; /* index snapshots not yet written */
    size_t nx;

    /* code coverage windows (store_cover_put), written with the index */
    bool cover_ok;         /* every window so far is known */
    uint64_t cover_start, cover_next;
    struct ix_window *wins;
    size_t nwins, capwins;

    /* breakpoint searches */
    enum bp_mode bp;
    uint64_t want[STORE_NREGS];
    uint32_t want_snap;        /* kick: its snapshot, or UINT32_MAX */
    uint64_t *want_gfns;
    uint8_t *want_pages;
    size_t want_n;
    struct vmm_cpu_state want_cpu;

    /* the tail: pages written after the last recorded snapshot */
    bool tracking, track_pending;
    uint64_t pend[4];
    uint64_t *bits, *acc;
    size_t words;

    uint64_t time_total, time_done; /* recorded run time, for progress */
    const char *what;   /* progress label: "index" or "index (kvm-step)" */
    uint8_t prev_kind;  /* kind of the last event consumed */
    uint8_t pend_irq[16]; /* interrupts due here, not yet delivered */
    int npend;
    char pdiff[128];    /* where a page differed */
    bool ended;         /* a trace cut short ended at an access */
    struct timespec last_progress;
};

/* ---- small helpers -------------------------------------------------------- */

static int diverge(struct replay *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int diverge(struct replay *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    return REPLAY_E_DIVERGED;
}

static bool regs_equal(const uint64_t *a, const uint64_t *b)
{
    for (int i = 0; i < STORE_NREGS; i++) {
        uint64_t m = i == 17 ? ~RP_RFLAGS_IGNORED : ~0ull;
        if ((a[i] & m) != (b[i] & m))
            return false;
    }
    return true;
}

static int cur_regs(struct replay *r, uint64_t *g)
{
    struct vmm_regs v;
    int rc = vcpu_get_regs(r->cpu, &v);
    memcpy(g, &v, sizeof v);
    return rc;
}

/* Compares the current registers with event i's; a divergence if they
 * differ. */
static int check_event_regs(struct replay *r, uint64_t i,
                            const struct store_event *e)
{
    uint64_t g[STORE_NREGS];
    int rc = cur_regs(r, g);
    if (rc)
        return rc;
    char diff[1200] = "";
    if (!rp_regs_diff(e->regs, g, true, diff, sizeof diff))
        return 0;
    return diverge(r, "event %llu (%s, rip %#llx) at icount %llu: registers "
                   "differ from the recording:%s",
                   (unsigned long long)i, rp_kind_name(e->kind),
                   (unsigned long long)e->regs[16],
                   (unsigned long long)vcpu_icount(r->cpu), diff);
}

static int set_pos(struct rp_index *ix, uint64_t i, uint64_t icount)
{
    if (i >= ix->cap) {
        size_t cap = ix->cap ? 2 * ix->cap : 4096;
        while (cap <= i)
            cap *= 2;
        uint64_t *p = realloc(ix->pos_of, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        ix->pos_of = p;
        ix->cap = cap;
    }
    ix->pos_of[i] = icount;
    return 0;
}

/* ---- following a recording ---------------------------------------------- */

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull),
                          (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

static int snaps_refresh(struct replay *r)
{
    uint32_t n = store_snapshot_count(r->st);
    if (n <= r->nsnaps)
        return 0;
    struct rp_snap *s = realloc(r->snaps, n * sizeof *s);
    if (!s)
        return -ENOMEM;
    r->snaps = s;
    for (uint32_t k = r->nsnaps; k < n; k++) {
        struct store_snapshot_info si;
        int rc = store_snapshot_get(r->st, k, &si, NULL, NULL, NULL, NULL);
        if (rc)
            return rp_store_fail(r, rc, "reading snapshots");
        s[k] = (struct rp_snap){.icount = UINT64_MAX,
                                .event_index = si.event_index,
                                .reason = si.reason,
                                .npages = si.npages};
        r->nsnaps = k + 1;
    }
    return 0;
}

/* Sees what the recorder committed since; false when nothing can come
 * any more (complete, or the recording process is gone). */
static int follow_poll(struct rp_index *ix, bool *more)
{
    struct replay *r = ix->r;
    *more = false;
    if (r->complete)
        return 0;
    r->complete = store_is_complete(r->st);
    r->nev = store_event_count(r->st);
    int rc = snaps_refresh(r);
    if (rc || r->complete)
        return rc;
    if (ix->follow && getppid() != ix->parent)
        return 0; /* the recorder died: index what it committed */
    *more = ix->follow;
    return 0;
}

/* Waits until event i exists; *have false at the end of the trace. */
static int need_event(struct rp_index *ix, uint64_t i, bool *have)
{
    struct replay *r = ix->r;
    for (;;) {
        *have = i < r->nev;
        if (*have)
            return 0;
        bool more;
        int rc = follow_poll(ix, &more);
        if (rc || i < r->nev)
            continue;
        if (!more)
            return rc;
        sleep_ns(FOLLOW_POLL_NS);
    }
}

/* Waits until snapshot k's page list is there or none will come. */
static int need_snapshot(struct rp_index *ix, uint32_t k)
{
    struct replay *r = ix->r;
    while (k >= r->nsnaps) {
        bool more;
        int rc = follow_poll(ix, &more);
        if (rc)
            return rc;
        if (k < r->nsnaps || !more)
            return 0;
        sleep_ns(FOLLOW_POLL_NS);
    }
    return 0;
}

/* ---- progress ------------------------------------------------------------ */

static int progress(struct rp_index *ix, bool force)
{
    const struct replay_opts *o = ix->o;
    if (!o || !o->progress)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double dt = (double)(now.tv_sec - ix->last_progress.tv_sec) +
                (double)(now.tv_nsec - ix->last_progress.tv_nsec) * 1e-9;
    if (!force && dt < 0.1)
        return 0;
    ix->last_progress = now;
    uint64_t done = ix->time_done;
    uint64_t total = ix->time_total > done ? ix->time_total : done;
    if (rp_kvmstep(ix->r)) { /* slow: events move it more often than
                                snapshots' recorded times */
        done = ix->r->ev_next;
        total = ix->r->nev > done ? ix->r->nev : done;
    }
    if (o->progress(o->progress_ctx, ix->what, done, total))
        return rp_fail(ix->r, REPLAY_E_INTERRUPTED, "indexing cancelled");
    return 0;
}

/* ---- the tail ------------------------------------------------------------ */

static int track_start(struct rp_index *ix)
{
    struct replay *r = ix->r;
    if (ix->tracking)
        return 0;
    ix->words = (r->npages + 63) / 64;
    ix->bits = calloc(ix->words, sizeof *ix->bits);
    ix->acc = calloc(ix->words, sizeof *ix->acc);
    if (!ix->bits || !ix->acc)
        return -ENOMEM;
    int rc = vcpu_dirty_log(r->cpu, ix->bits); /* starts it */
    if (rc)
        return rp_fail(r, rc, "tracking the pages written after the last "
                       "snapshot: %s", vmm_strerror(rc));
    ix->tracking = true;
    return 0;
}

/* The pages written since tracking started, ascending (*g malloc'd). */
static int track_list(struct rp_index *ix, uint64_t **g, size_t *n)
{
    struct replay *r = ix->r;
    *n = 0;
    int rc = vcpu_dirty_log(r->cpu, ix->bits);
    if (rc)
        return rp_fail(r, rc, "reading the dirty log: %s", vmm_strerror(rc));
    size_t cnt = 0;
    for (size_t w = 0; w < ix->words; w++) {
        ix->acc[w] |= ix->bits[w];
        cnt += (size_t)__builtin_popcountll(ix->acc[w]);
    }
    *g = malloc((cnt ? cnt : 1) * sizeof **g);
    if (!*g)
        return -ENOMEM;
    for (size_t w = 0; w < ix->words; w++)
        for (uint64_t b = ix->acc[w]; b; b &= b - 1) {
            uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(b);
            if (p < r->npages)
                (*g)[(*n)++] = p;
        }
    return 0;
}

/* ---- index snapshots -------------------------------------------------------- */

static int write_isnap(struct replay *r, const struct cp *c)
{
    struct store_isnap_info xi = {.icount = c->icount,
                                  .event_index = c->ev_next,
                                  .base = c->interval,
                                  .npages = (uint32_t)c->n};
    uint8_t *pages = malloc((c->n ? c->n : 1) * RP_PAGE);
    if (!pages)
        return -ENOMEM;
    for (size_t i = 0; i < c->n; i++)
        memcpy(pages + i * RP_PAGE, cp_page(c, c->gfns[i]), RP_PAGE);
    int rc = store_isnap_put(r->st, &xi, &c->cpu, sizeof c->cpu, c->gfns,
                             pages, c->n);
    free(pages);
    return rc ? rp_store_fail(r, rc, "writing an index snapshot") : 0;
}

/* Keeps the current state as an index snapshot (written now, or at the
 * end when following). */
static int take_isnap(struct rp_index *ix)
{
    struct replay *r = ix->r;
    uint32_t k = ix->snap_next - 1;
    uint64_t *own = NULL;
    const uint64_t *g = NULL;
    size_t n = 0;
    int rc = 0;
    if (ix->tracking) {
        rc = track_list(ix, &own, &n);
        g = own;
    } else if (!(rc = need_snapshot(ix, k + 1)) && k + 1 < r->nsnaps) {
        rc = rp_snap_dirty(r, k + 1, &g, &n);
    } else if (!rc) { /* cannot happen: tracking starts at the last one */
        return rp_fail(r, REPLAY_E_ARG, "index snapshot after snapshot %u "
                       "without a write set", k);
    }
    struct vmm_cpu_state s;
    struct cp *c = NULL;
    if (!rc)
        rc = vcpu_get_state(r->cpu, &s);
    if (!rc)
        rc = cp_add(ix->xpool, r->pos, r->ev_next, k, &s, g, n, r->ram, NULL,
                    NULL, &c);
    free(own);
    if (!rc && !ix->follow) {
        rc = write_isnap(r, c);
        cp_drop_range(ix->xpool, c->icount, c->icount + 1);
        if (!rc && ++ix->nx % 16 == 0)
            rc = store_commit(r->st);
    }
    ix->isnap_next = r->pos + ix->isnap_every;
    return rc ? rc : progress(ix, true);
}

/* ---- snapshots ------------------------------------------------------------ */

/* Vector and control registers the backends must agree on. */
static int cpu_diff(const struct vmm_cpu_state *want,
                    const struct vmm_cpu_state *got, char *buf, size_t cap)
{
    size_t len = strnlen(buf, cap);
    int n = 0;
#define CMP(field, name)                                                     \
    if (want->field != got->field && len + 80 < cap) {                       \
        n++;                                                                 \
        len += (size_t)snprintf(buf + len, cap - len,                        \
                                "\n  %-6s expected %#llx, replay %#llx",     \
                                name, (unsigned long long)want->field,       \
                                (unsigned long long)got->field);             \
    }
    CMP(sregs.cr0, "cr0")
    CMP(sregs.cr3, "cr3")
    CMP(sregs.cr4, "cr4")
    CMP(sregs.efer, "efer")
    CMP(sregs.cs.selector, "cs")
    CMP(sregs.ss.selector, "ss")
#undef CMP
    if ((want->fpu.mxcsr ^ got->fpu.mxcsr) & ~RP_MXCSR_IGNORED &&
        len + 80 < cap) {
        n++;
        len += (size_t)snprintf(buf + len, cap - len,
                                "\n  mxcsr  expected %#x, replay %#x",
                                want->fpu.mxcsr, got->fpu.mxcsr);
    }
    for (int i = 0; i < 16; i++)
        if (memcmp(want->fpu.xmm[i], got->fpu.xmm[i], 16) && len + 40 < cap) {
            n++;
            len += (size_t)snprintf(buf + len, cap - len,
                                    "\n  xmm%d differs", i);
        }
    return n;
}

/* Where page gfn of RAM differs from want: "offset X: recorded .. replay
 * .." for the first differing 8 bytes. */
static void page_diff(struct replay *r, uint64_t gfn, const uint8_t *want)
{
    const uint8_t *got = r->ram + gfn * RP_PAGE;
    size_t off = 0;
    while (off < RP_PAGE && want[off] == got[off])
        off++;
    off &= ~(size_t)7;
    uint64_t a = 0, b = 0;
    memcpy(&a, want + off, 8);
    memcpy(&b, got + off, 8);
    snprintf(r->ix->pdiff, sizeof r->ix->pdiff,
             " (first at %#llx: recorded %#018llx, replay %#018llx)",
             (unsigned long long)(gfn * RP_PAGE + off), (unsigned long long)a,
             (unsigned long long)b);
}

/* The first page of snapshot k's list whose content differs from RAM:
 * its gfn in *bad, or UINT64_MAX. */
static int pages_match(struct replay *r, uint32_t k, const uint64_t *g,
                       size_t n, const uint8_t *contents, uint64_t *bad)
{
    uint8_t *tmp = contents ? NULL : malloc(RP_PAGE);
    if (!contents && !tmp)
        return -ENOMEM;
    int rc = 0;
    *bad = UINT64_MAX;
    for (size_t i = 0; i < n && *bad == UINT64_MAX; i++) {
        const uint8_t *want = contents ? contents + i * RP_PAGE : tmp;
        if (!contents && (rc = store_page_read(r->st, k, g[i], tmp))) {
            rc = rp_store_fail(r, rc, "reading a snapshot page");
            break;
        }
        if (memcmp(r->ram + g[i] * RP_PAGE, want, RP_PAGE)) {
            *bad = g[i];
            page_diff(r, g[i], want);
        }
    }
    free(tmp);
    return rc;
}

/* Snapshot k is at the current position: record it and check the state
 * against it.  in_cb: from inside an io callback (before its instruction),
 * where hooks cannot be changed. */
static int place_snapshot(struct rp_index *ix, uint32_t k, uint64_t icount,
                          bool in_cb)
{
    struct replay *r = ix->r;
    struct vmm_cpu_state want, got;
    r->snaps[k].icount = icount;
    ix->snap_next = k + 1;
    int rc = rp_snap_cpu(r, k, &want);
    if (!rc)
        rc = vcpu_get_state(r->cpu, &got);
    if (rc)
        return rc;
    char diff[1200] = "";
    int nd = rp_regs_diff((const uint64_t *)&want.regs,
                          (const uint64_t *)&got.regs, true, diff,
                          sizeof diff);
    nd += cpu_diff(&want, &got, diff, sizeof diff);
    if (nd)
        return diverge(r, "snapshot %u (before event %llu) at icount %llu: "
                       "the state differs from the recording:%s", k,
                       (unsigned long long)r->snaps[k].event_index,
                       (unsigned long long)icount, diff);
    const uint64_t *g;
    size_t n;
    uint64_t bad;
    if (k && ((rc = rp_snap_dirty(r, k, &g, &n)) ||
              (rc = pages_match(r, k, g, n, NULL, &bad))))
        return rc;
    if (k && bad != UINT64_MAX)
        return diverge(r, "snapshot %u (before event %llu) at icount %llu: "
                       "guest page %#llx differs from the recording%s", k,
                       (unsigned long long)r->snaps[k].event_index,
                       (unsigned long long)icount,
                       (unsigned long long)bad * RP_PAGE, ix->pdiff);
    struct store_snapshot_info si;
    if (!store_snapshot_get(r->st, k, &si, NULL, NULL, NULL, NULL))
        ix->time_done = si.time_ns;
    /* the last snapshot: from here the page lists say nothing */
    if ((rc = need_snapshot(ix, k + 1)) || k + 1 < r->nsnaps)
        return rc;
    if (!in_cb)
        return track_start(ix);
    /* Tracking starts after the access; what the instruction itself
     * writes is where a string input or a push would. */
    uint64_t rg[STORE_NREGS];
    if ((rc = cur_regs(r, rg)))
        return rc;
    ix->track_pending = true;
    ix->pend[0] = rg[5] / RP_PAGE;          /* rdi */
    ix->pend[1] = (rg[5] + 15) / RP_PAGE;
    ix->pend[2] = (rg[6] - 16) / RP_PAGE;   /* rsp */
    ix->pend[3] = (rg[6] - 1) / RP_PAGE;
    return 0;
}

/* After a run that placed the last snapshot inside a callback. */
static int track_pending(struct rp_index *ix)
{
    if (!ix->track_pending)
        return 0;
    ix->track_pending = false;
    int rc = track_start(ix);
    for (int i = 0; !rc && i < 4; i++)
        if (ix->pend[i] < ix->r->npages)
            ix->acc[ix->pend[i] / 64] |= 1ull << (ix->pend[i] % 64);
    return rc;
}

/* Where the recorder took snapshot k (recorder.c): at a kick or window
 * (reason KICK) or after a HLT, at the point of the event before it;
 * otherwise at an I/O exit, before the access of event event_index. */
static bool snap_at_point(struct rp_index *ix, uint32_t k)
{
    const struct rp_snap *s = &ix->r->snaps[k];
    return k == 0 || s->reason == STORE_SNAP_KICK ||
           (s->event_index > 0 && s->event_index == ix->r->ev_next &&
            ix->prev_kind == STORE_EV_HLT);
}

/* An I/O-exit snapshot due before the access of event i? */
static bool snap_before_access(struct rp_index *ix, uint64_t i)
{
    return ix->snap_next < ix->r->nsnaps &&
           ix->r->snaps[ix->snap_next].event_index == i &&
           !snap_at_point(ix, ix->snap_next);
}

/* Places the snapshots due at the point of the event just consumed. */
static int place_at_point(struct rp_index *ix)
{
    struct replay *r = ix->r;
    int rc = 0;
    while (!rc && ix->snap_next < r->nsnaps &&
           r->snaps[ix->snap_next].event_index == r->ev_next &&
           snap_at_point(ix, ix->snap_next))
        rc = place_snapshot(ix, ix->snap_next, r->pos, false);
    return rc;
}

/* ---- breakpoint searches --------------------------------------------------- */

/* A rep string instruction at rip (so a breakpoint there fires once, at its
 * first iteration)? */
static bool rep_string_at(struct replay *r, uint64_t rip)
{
    struct vmm_cpu_state s; /* through the page tables: under kvm-step
                               virtual is not physical */
    uint8_t b[15];
    struct vmm_insn_prefix p;
    if (vcpu_get_state(r->cpu, &s))
        return false;
    unsigned n = vmm_code_read(r->vm, &s.sregs, rip, b, sizeof b);
    return vmm_insn_prefixes(b, n, &s.sregs, &p) && p.str && p.rep;
}

/* Registers equal to the wanted ones except the rep counters, with more
 * iterations to go than wanted. */
static bool rep_candidate(struct replay *r, const uint64_t *g)
{
    const uint64_t *w = r->ix->want;
    for (int i = 0; i < STORE_NREGS; i++) {
        if (i == 1 || i == 3 || i == 2 || i == 4 || i == 5)
            continue; /* rbx, rdx and flags of cmps/scas, rcx, rsi, rdi */
        uint64_t m = i == 17 ? ~RP_RFLAGS_IGNORED : ~0ull;
        if ((g[i] & m) != (w[i] & m))
            return false;
    }
    return g[1] == w[1] && g[3] == w[3] && g[2] > w[2] &&
           rep_string_at(r, g[16]);
}

static int ix_on_hit(void *ctx, const struct vcpu_hit *hit)
{
    struct replay *r = ctx;
    struct rp_index *ix = r->ix;
    uint64_t g[STORE_NREGS];
    if (hit->kind || ix->bp == BP_NONE || hit->addr != ix->want[16])
        return 0;
    if (cur_regs(r, g))
        return 1;
    if (regs_equal(g, ix->want))
        return 1;
    return ix->bp == BP_KICK && rep_candidate(r, g);
}

/* At a register match: do the kick's pages and vector registers match
 * too? */
static int full_match(struct rp_index *ix, bool *yes)
{
    struct replay *r = ix->r;
    *yes = true;
    if (ix->want_snap == UINT32_MAX)
        return 0;
    uint64_t bad;
    int rc = pages_match(r, ix->want_snap, ix->want_gfns, ix->want_n,
                         ix->want_pages, &bad);
    if (rc || bad != UINT64_MAX) {
        *yes = false;
        return rc;
    }
    struct vmm_cpu_state got;
    if ((rc = vcpu_get_state(r->cpu, &got)))
        return rc;
    char diff[256] = "";
    *yes = cpu_diff(&ix->want_cpu, &got, diff, sizeof diff) == 0;
    return 0;
}

/* Is the current position the wanted one? */
static int here(struct rp_index *ix, bool *yes)
{
    uint64_t g[STORE_NREGS];
    int rc = cur_regs(ix->r, g);
    *yes = false;
    if (rc || !regs_equal(g, ix->want))
        return rc;
    return ix->bp == BP_KICK ? full_match(ix, yes) : (*yes = true, 0);
}

static int arm_bp(struct rp_index *ix, enum bp_mode mode)
{
    struct replay *r = ix->r;
    ix->bp = mode;
    int rc = mode == BP_NONE ? vcpu_set_breakpoints(r->cpu, NULL, 0)
                             : vcpu_set_breakpoints(r->cpu, &ix->want[16], 1);
    return rc ? rp_fail(r, rc, "arming a breakpoint: %s", vmm_strerror(rc))
              : 0;
}

static int exit_error(struct rp_index *ix, int rc, const struct vcpu_exit *e,
                      const char *expect)
{
    struct replay *r = ix->r;
    if (rc == REPLAY_E_DIVERGED || r->run_err)
        return r->run_err ? r->run_err : rc;
    if (rc == VMM_E_PAGING)
        return rp_fail(r, REPLAY_E_PAGING,
                       "at icount %llu (event %llu) the guest turned on "
                       "non-identity paging, which Unicorn 2.0.1 cannot "
                       "execute (%s): this trace cannot be replayed exactly",
                       (unsigned long long)r->pos,
                       (unsigned long long)r->ev_next, e->detail);
    if (rc == VMM_E_NOSTEP) /* kvm-step, where the host cannot step */
        return rp_fail(r, REPLAY_E_PAGING, "at icount %llu (event %llu): %s",
                       (unsigned long long)r->pos,
                       (unsigned long long)r->ev_next, e->detail);
    if (rc)
        return rp_fail(r, rc, "at icount %llu (event %llu): %s%s%s",
                       (unsigned long long)r->pos,
                       (unsigned long long)r->ev_next, vmm_strerror(rc),
                       *e->detail ? ": " : "", e->detail);
    static const char *const names[] = {
        [VCPU_EXIT_HLT] = "executed hlt", [VCPU_EXIT_SHUTDOWN] = "triple-faulted",
        [VCPU_EXIT_EMU_FAIL] = "met an instruction it cannot replay",
        [VCPU_EXIT_ERROR] = "failed", [VCPU_EXIT_BREAKPOINT] = "stopped"};
    const char *what = e->reason < sizeof names / sizeof *names &&
                               names[e->reason]
                           ? names[e->reason]
                           : "stopped unexpectedly";
    return diverge(r, "event %llu: the recording has %s; at icount %llu the "
                   "replay %s%s%s", (unsigned long long)r->ev_next, expect,
                   (unsigned long long)r->pos, what, *e->detail ? ": " : "",
                   e->detail);
}

/* ---- code coverage windows ------------------------------------------------ */

/* Ends the window that started at cover_start here and starts the next.
 * A window that could not be kept whole turns coverage off for the whole
 * trace: a missing window would read as part of its neighbour. */
static int cover_cut(struct rp_index *ix)
{
    struct replay *r = ix->r;
    if (!ix->cover_ok || r->pos == ix->cover_start)
        return 0;
    struct vcpu_code_range *c = NULL;
    size_t n = 0;
    int rc = vcpu_coverage_take(r->cpu, &c, &n);
    void *arr = ix->wins;
    if (!rc && ix->nwins == ix->capwins) {
        size_t cap = ix->capwins ? 2 * ix->capwins : 64;
        if ((arr = realloc(ix->wins, cap * sizeof *ix->wins))) {
            ix->wins = arr;
            ix->capwins = cap;
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc) {
        free(c);
        ix->cover_ok = false; /* searches just do not skip */
        return rc == -ENOMEM ? 0 : rp_fail(r, rc, "code coverage: %s",
                                           vmm_strerror(rc));
    }
    ix->wins[ix->nwins++] =
        (struct ix_window){.start = ix->cover_start, .code = c, .n = n};
    ix->cover_start = r->pos;
    ix->cover_next = r->pos + COVER_EVERY;
    return 0;
}

static int cover_write(struct rp_index *ix)
{
    struct replay *r = ix->r;
    int rc = store_cover_clear(r->st);
    for (size_t i = 0; !rc && ix->cover_ok && i < ix->nwins; i++)
        rc = store_cover_put(r->st, ix->wins[i].start,
                             (const struct store_code_range *)ix->wins[i].code,
                             ix->wins[i].n);
    return rc ? rp_store_fail(r, rc, "writing code coverage") : 0;
}

static void cover_free(struct rp_index *ix)
{
    for (size_t i = 0; i < ix->nwins; i++)
        free(ix->wins[i].code);
    free(ix->wins);
}

static int deliver_pending(struct rp_index *ix);

/* One vcpu_run, at most to the next index snapshot or coverage cut. */
static int vrun(struct rp_index *ix, uint64_t limit, struct vcpu_exit *e)
{
    struct replay *r = ix->r;
    int drc = deliver_pending(ix);
    if (drc < 0)
        return drc;
    uint64_t to = ix->isnap_next;
    if (ix->cover_ok && ix->cover_next < to)
        to = ix->cover_next;
    if (limit && r->pos + limit < to)
        to = r->pos + limit;
    if (rp_kvmstep(r) && to > r->pos + KVMSTEP_RUN_MAX)
        to = r->pos + KVMSTEP_RUN_MAX;
    if (to <= r->pos)
        to = r->pos + 1;
    struct vcpu_run_opts o = {.max_insns = to - r->pos};
    memset(e, 0, sizeof *e);
    r->run_err = 0;
    int rc = vcpu_run(r->cpu, &o, e);
    r->pos = vcpu_icount(r->cpu);
    if (ix->cover_ok && r->pos >= ix->cover_next) {
        int crc = cover_cut(ix);
        if (crc)
            return crc;
    }
    if (ix->ended)
        return r->run_err == REPLAY_E_RANGE ? 0 : rc;
    if (!rc)
        rc = track_pending(ix);
    if (!rc && e->reason == VCPU_EXIT_KICK && !rp_interrupted(r))
        e->reason = VCPU_EXIT_LIMIT; /* a stale kick: go on */
    if (!rc && e->reason == VCPU_EXIT_KICK)
        rc = rp_fail(r, REPLAY_E_INTERRUPTED, "indexing interrupted");
    return rc;
}

/* Index snapshot due here (never at an event's point, where interrupts
 * may still be due)? */
static int maybe_isnap(struct rp_index *ix)
{
    struct replay *r = ix->r;
    if (r->pos < ix->isnap_next || r->pos == ix->point)
        return progress(ix, false);
    return take_isnap(ix);
}

/* Runs until the breakpoint search of mode finds the wanted state. */
static int search(struct rp_index *ix, enum bp_mode mode, const char *what)
{
    struct replay *r = ix->r;
    int rc = arm_bp(ix, mode);
    uint64_t last_pos = r->pos;
    unsigned stuck = 0;
    while (!rc) {
        bool yes;
        if ((rc = here(ix, &yes)) || yes)
            break;
        /* Every round runs at least one instruction or delivers an
         * interrupt; a search that stops moving must say so, not spin. */
        stuck = r->pos == last_pos ? stuck + 1 : 0;
        last_pos = r->pos;
        if (stuck > SEARCH_STUCK_MAX) {
            rc = diverge(r, "event %llu: the recording has %s; the replay "
                         "stopped making progress at icount %llu without "
                         "reaching it", (unsigned long long)r->ev_next, what,
                         (unsigned long long)r->pos);
            break;
        }
        if ((rc = deliver_pending(ix)) > 0) { /* look again after it */
            rc = 0;
            continue;
        }
        if (rc || (rc = maybe_isnap(ix)))
            break;
        struct vcpu_exit e;
        rc = vrun(ix, 0, &e);
        if (rc || (e.reason != VCPU_EXIT_LIMIT &&
                   e.reason != VCPU_EXIT_BREAKPOINT)) {
            rc = exit_error(ix, rc, &e, what);
            break;
        }
        uint64_t g[STORE_NREGS];
        if (e.reason != VCPU_EXIT_BREAKPOINT || (rc = cur_regs(r, g)) ||
            regs_equal(g, ix->want))
            continue;
        /* a rep instruction the wanted state is inside of: count on */
        rc = vrun(ix, g[2] - ix->want[2], &e);
        if (rc)
            rc = exit_error(ix, rc, &e, what);
    }
    int arc = arm_bp(ix, BP_NONE);
    return rc ? rc : arc;
}

static void want_free(struct rp_index *ix)
{
    free(ix->want_gfns);
    free(ix->want_pages);
    ix->want_gfns = NULL;
    ix->want_pages = NULL;
    ix->want_n = 0;
}

/* Loads what a kick's snapshot saved, to compare at register matches. */
static int want_snapshot(struct rp_index *ix, uint32_t k)
{
    struct replay *r = ix->r;
    const uint64_t *g;
    size_t n;
    ix->want_snap = k;
    int rc = rp_snap_dirty(r, k, &g, &n);
    if (!rc)
        rc = rp_snap_cpu(r, k, &ix->want_cpu);
    if (rc)
        return rc;
    ix->want_gfns = malloc((n ? n : 1) * sizeof *g);
    ix->want_pages = malloc((n ? n : 1) * RP_PAGE);
    if (!ix->want_gfns || !ix->want_pages)
        return -ENOMEM;
    memcpy(ix->want_gfns, g, n * sizeof *g);
    ix->want_n = n;
    for (size_t i = 0; i < n; i++)
        if ((rc = store_page_read(r->st, k, g[i], ix->want_pages + i * RP_PAGE)))
            return rp_store_fail(r, rc, "reading a kick's snapshot");
    return 0;
}

/* ---- events -------------------------------------------------------------- */

static int consume(struct rp_index *ix, uint64_t icount, uint64_t point)
{
    struct replay *r = ix->r;
    int err, rc = set_pos(ix, r->ev_next, icount);
    if (rc)
        return rc;
    const struct store_event *e = rp_event(r, r->ev_next, &err);
    ix->prev_kind = e ? e->kind : 0;
    r->ev_next++;
    ix->point = point;
    return 0;
}

/* I/O during indexing: served from the log, registers checked, position
 * recorded; asks to stop after the instruction when the next event is
 * not an access (its point is there). */
static int ix_serve(struct replay *r, bool mmio, uint64_t addr, unsigned size,
                    bool write, uint64_t *val)
{
    struct rp_index *ix = r->ix;
    uint64_t i = r->ev_next, icount = vcpu_icount(r->cpu);
    bool have;
    int rc = need_event(ix, i, &have);
    const struct store_event *e = NULL;
    bool snap_here = snap_before_access(ix, i);
    if (!rc && !have && snap_here) {
        /* a trace cut short at this exit: it ends before this access */
        rc = place_snapshot(ix, ix->snap_next, icount, true);
        ix->ended = true;
        r->end = icount;
        return rc ? (r->run_err = rc) : (r->run_err = REPLAY_E_RANGE);
    }
    if (!rc && have)
        e = rp_event(r, i, &rc);
    if (!rc)
        rc = rp_io_match(r, e, mmio, addr, size, write, val);
    if (!rc && snap_here) /* mid-rep: the breakpoint fired only once */
        rc = place_snapshot(ix, ix->snap_next, icount, true);
    if (!rc)
        rc = check_event_regs(r, i, e);
    if (!rc)
        rc = consume(ix, icount, icount + 1);
    if (rc) {
        r->run_err = rc;
        return rc;
    }
    if ((rc = need_event(ix, r->ev_next, &have)))
        return r->run_err = rc;
    return !have || !rp_kind_is_io(rp_event(r, r->ev_next, &rc)->kind) ||
           snap_before_access(ix, r->ev_next);
}

static int ix_pio(void *ctx, uint16_t port, unsigned size, bool write,
                  uint32_t *val)
{
    uint64_t v = *val;
    int rc = ix_serve(ctx, false, port, size, write, &v);
    *val = (uint32_t)v;
    return rc;
}

static int ix_mmio(void *ctx, uint64_t gpa, unsigned size, bool write,
                   uint64_t *val)
{
    return ix_serve(ctx, true, gpa, size, write, val);
}

static const struct vmm_io_ops ix_io = {.pio = ix_pio, .mmio = ix_mmio};

/* The next event is an access: run until its callback has consumed it
 * (and any accesses right after it). */
static int do_io(struct rp_index *ix, const struct store_event *e)
{
    struct replay *r = ix->r;
    uint64_t i = r->ev_next;
    int rc = 0;
    if (snap_before_access(ix, i)) {
        /* a snapshot at this exit: its state is before the instruction */
        memcpy(ix->want, e->regs, sizeof ix->want);
        ix->want_snap = UINT32_MAX;
        if ((rc = search(ix, BP_IOSNAP, rp_kind_name(e->kind))))
            return rc;
        if (r->ev_next == i &&
            (rc = place_snapshot(ix, ix->snap_next, r->pos, false)))
            return rc;
    }
    char what[64];
    snprintf(what, sizeof what, "a %s of %#llx", rp_kind_name(e->kind),
             (unsigned long long)e->addr);
    while (!rc && r->ev_next == i && !ix->ended) {
        struct vcpu_exit x;
        if ((rc = maybe_isnap(ix)))
            break;
        rc = vrun(ix, 0, &x);
        if (!ix->ended && (rc || (x.reason != VCPU_EXIT_LIMIT &&
                                  x.reason != VCPU_EXIT_STOP)))
            rc = exit_error(ix, rc, &x, what);
    }
    /* the accesses right after it were consumed too; the run went on to
     * the next point or a limit: nothing else to do here */
    return rc;
}

/* Runs until the backend stops with reason (a HLT, a triple fault). */
static int run_until(struct rp_index *ix, enum vcpu_exit_reason reason,
                     const char *what)
{
    for (;;) {
        struct vcpu_exit x;
        int rc = maybe_isnap(ix);
        if (!rc)
            rc = vrun(ix, 0, &x);
        if (!rc && x.reason == VCPU_EXIT_LIMIT)
            continue;
        return rc || x.reason != reason ? exit_error(ix, rc, &x, what) : 0;
    }
}

static int do_hlt(struct rp_index *ix, const struct store_event *e)
{
    struct replay *r = ix->r;
    int rc = run_until(ix, VCPU_EXIT_HLT, "a hlt");
    if (!rc)
        rc = check_event_regs(r, r->ev_next, e);
    if (!rc)
        rc = rp_take_flags(r->cpu, e->regs);
    return rc ? rc : consume(ix, r->pos, r->pos);
}

static int do_irq(struct rp_index *ix, const struct store_event *e)
{
    struct replay *r = ix->r;
    if (r->pos != ix->point)
        return diverge(r, "event %llu: an interrupt is due at the point of "
                       "the event before it, but the replay is past it",
                       (unsigned long long)r->ev_next);
    if (ix->npend == sizeof ix->pend_irq)
        return rp_fail(r, STORE_E_CORRUPT, "event %llu: too many interrupts "
                       "at one point", (unsigned long long)r->ev_next);
    ix->pend_irq[ix->npend++] = (uint8_t)e->aux;
    return consume(ix, r->pos, r->pos);
}

/* Delivers the interrupts queued at this point.  Not at once: KVM
 * delivers an interrupt at its next entry, and the recorder may kick the
 * vCPU before that (the kick then repeats the point, its snapshot holds
 * the interrupt as pending), so until something runs the state is the
 * one before delivery.  1 when there were any. */
static int deliver_pending(struct rp_index *ix)
{
    struct replay *r = ix->r;
    int n = ix->npend;
    for (int i = 0; i < n; i++) {
        int rc = vcpu_inject_irq(r->cpu, ix->pend_irq[i]);
        if (rc)
            return rp_fail(r, rc, "at icount %llu: injecting vector %u: %s",
                           (unsigned long long)r->pos, ix->pend_irq[i],
                           vmm_strerror(rc));
    }
    ix->npend = 0;
    return n > 0;
}

/* A kick, an interrupt window, or the end of a run stopped from outside:
 * found by matching. */
static int do_match(struct rp_index *ix, const struct store_event *e,
                    uint32_t snap)
{
    struct replay *r = ix->r;
    memcpy(ix->want, e->regs, sizeof ix->want);
    ix->want_snap = UINT32_MAX;
    int rc = snap != UINT32_MAX ? want_snapshot(ix, snap) : 0;
    char what[64];
    snprintf(what, sizeof what, "a %s at rip %#llx", rp_kind_name(e->kind),
             (unsigned long long)e->regs[16]);
    if (!rc)
        rc = search(ix, snap != UINT32_MAX ? BP_KICK : BP_EXIT, what);
    if (!rc)
        rc = rp_take_flags(r->cpu, e->regs);
    want_free(ix);
    return rc ? rc : consume(ix, r->pos, r->pos);
}

static int do_exit(struct rp_index *ix, const struct store_event *e,
                   bool *done)
{
    struct replay *r = ix->r;
    *done = true;
    r->has_exit = true;
    r->exit_kind = e->aux;
    switch (e->aux) {
    case VMM_STOP_EXIT:
    case VMM_STOP_HALTED:
        if (r->pos != ix->point)
            return diverge(r, "event %llu: the recording ends (%s) at the "
                           "point of the event before, the replay is past "
                           "it", (unsigned long long)r->ev_next,
                           rp_kind_name(e->kind));
        return consume(ix, r->pos, r->pos);
    case VMM_STOP_SHUTDOWN: {
        int rc = run_until(ix, VCPU_EXIT_SHUTDOWN, "a triple fault");
        return rc ? rc : consume(ix, r->pos, r->pos);
    }
    default:
        return do_match(ix, e, UINT32_MAX);
    }
}

static int step_event(struct rp_index *ix, bool *done)
{
    struct replay *r = ix->r;
    bool have;
    int rc = place_at_point(ix);
    if (!rc)
        rc = need_event(ix, r->ev_next, &have);
    if (rc)
        return rc;
    if (!have) {
        *done = true;
        return 0;
    }
    const struct store_event *ep = rp_event(r, r->ev_next, &rc);
    if (!ep)
        return rc;
    struct store_event e = *ep; /* the window may move */
    switch (e.kind) {
    case STORE_EV_PIO_IN:
    case STORE_EV_PIO_OUT:
    case STORE_EV_MMIO_READ:
    case STORE_EV_MMIO_WRITE:
        return do_io(ix, &e);
    case STORE_EV_HLT:
        return do_hlt(ix, &e);
    case STORE_EV_IRQ:
        return do_irq(ix, &e);
    case STORE_EV_KICK:
    case STORE_EV_WINDOW:
        if (e.aux >= r->nsnaps || r->snaps[e.aux].event_index != r->ev_next + 1)
            return rp_fail(r, STORE_E_CORRUPT, "trace corrupt: event %llu "
                           "names snapshot %u, not taken there",
                           (unsigned long long)r->ev_next, e.aux);
        return do_match(ix, &e, e.aux);
    case STORE_EV_EMU:
        return consume(ix, r->pos, ix->point);
    case STORE_EV_EXIT:
        return do_exit(ix, &e, done);
    default:
        return rp_fail(r, STORE_E_CORRUPT, "trace corrupt: event %llu has "
                       "kind %u", (unsigned long long)r->ev_next, e.kind);
    }
}

/* ---- writing the index ----------------------------------------------------- */

static int write_index(struct rp_index *ix, const char *trace,
                       const uint8_t *key)
{
    struct replay *r = ix->r;
    int rc = 0;
    if (ix->follow) { /* until now read-only: the recorder was writing */
        store_close(r->st);
        r->st = NULL;
        if ((rc = store_open(trace, true, key, &r->st)))
            return rp_fail(r, rc, "%s: %s", trace, store_error_detail(NULL));
        if ((rc = store_isnap_clear(r->st)))
            return rp_store_fail(r, rc, "clearing old index snapshots");
        for (size_t i = 0; !rc; i++) {
            struct cp *c = cp_nth(ix->xpool, i);
            if (!c)
                break;
            rc = write_isnap(r, c);
        }
    }
    if (!rc)
        rc = cover_write(ix);
    uint64_t *tail = NULL;
    size_t ntail = 0;
    if (!rc && ix->tracking)
        rc = track_list(ix, &tail, &ntail);
    if (!rc && (rc = store_index_put_tail_pages(r->st, tail, ntail)))
        rp_store_fail(r, rc, "writing the index");
    free(tail);
    if (!rc && (rc = store_index_put_events(r->st, 0, ix->pos_of, r->nev)))
        rp_store_fail(r, rc, "writing the index");
    for (uint32_t k = 0; !rc && k < r->nsnaps; k++)
        if ((rc = store_index_put_snapshot(r->st, k, r->snaps[k].icount)))
            rp_store_fail(r, rc, "writing the index");
    if (!rc && (rc = store_meta_put_str(r->st, RP_META_ENGINE,
                                        r->engine)))
        rp_store_fail(r, rc, "writing the index");
    if (!rc && (rc = store_index_finish(r->st, r->end)))
        rp_store_fail(r, rc, "writing the index");
    return rc;
}

/* ---- the whole run ---------------------------------------------------------- */

static int index_setup(struct rp_index *ix, const char *trace,
                       const uint8_t *key)
{
    struct replay *r = ix->r;
    int rc = store_open(trace, !ix->follow, key, &r->st);
    if (rc)
        return rp_fail(r, rc, "%s: %s", trace, store_error_detail(NULL));
    r->win = malloc(RP_EVWIN * sizeof *r->win);
    if (!r->win)
        return -ENOMEM;
    r->win_first = UINT64_MAX;
    bool more;
    if ((rc = follow_poll(ix, &more)) || (rc = need_snapshot(ix, 0)))
        return rc;
    if (r->nsnaps == 0)
        return rp_fail(r, STORE_E_CORRUPT, "%s: no snapshot to start from",
                       trace);
    if (!ix->follow && (rc = store_isnap_clear(r->st)))
        return rp_store_fail(r, rc, "clearing old index snapshots");
    uint64_t wall;
    if (!store_meta_get_u64(r->st, "final.wall_ns", &wall))
        ix->time_total = wall;
    if ((rc = rp_machine_create(r, true)))
        return rc;
    vcpu_set_io(r->cpu, &ix_io, r);
    if ((rc = vcpu_set_hit_filter(r->cpu, ix_on_hit, r)))
        return rp_fail(r, rc, "hit filter: %s", vmm_strerror(rc));
    ix->cover_ok = vcpu_coverage(r->cpu, true) == 0;
    ix->cover_next = COVER_EVERY;
    struct vmm_cpu_state s;
    if ((rc = rp_snap_cpu(r, 0, &s)))
        return rc;
    if ((rc = vcpu_set_state(r->cpu, &s)))
        return rp_fail(r, rc == VMM_E_PAGING ? REPLAY_E_PAGING : rc,
                       "snapshot 0: %s", vmm_strerror(rc));
    vcpu_set_icount(r->cpu, 0);
    r->pos = 0;
    ix->point = 0;
    r->snaps[0].icount = 0; /* the run starts from it */
    ix->snap_next = 1;
    if ((rc = need_snapshot(ix, 1)) ||
        (r->nsnaps == 1 && (rc = track_start(ix))))
        return rc;
    return cp_pool_create(UINT64_MAX / 2, &ix->xpool);
}

/* A trace cut short at an I/O exit: its last snapshot is before the
 * next access, whose event was never committed. */
static int run_to_last_access(struct rp_index *ix)
{
    int rc = 0;
    while (!rc && !ix->ended) {
        struct vcpu_exit x;
        if ((rc = maybe_isnap(ix)))
            break;
        rc = vrun(ix, 0, &x);
        if (!ix->ended && (rc || x.reason != VCPU_EXIT_LIMIT))
            rc = exit_error(ix, rc, &x, "an access (the trace was cut "
                            "short there)");
    }
    return rc;
}

static int index_run(struct rp_index *ix)
{
    struct replay *r = ix->r;
    int rc = 0;
    bool done = false;
    while (!rc && !done && !ix->ended)
        rc = step_event(ix, &done);
    if (!rc && !ix->ended)
        rc = place_at_point(ix);
    if (!rc && !ix->ended && ix->snap_next < r->nsnaps)
        rc = run_to_last_access(ix);
    if (rc)
        return rc;
    if (!ix->ended)
        r->end = r->pos;
    if ((rc = cover_cut(ix)))
        return rc;
    if (ix->snap_next < r->nsnaps)
        return rp_fail(r, STORE_E_CORRUPT, "trace corrupt: snapshot %u "
                       "could not be placed", ix->snap_next);
    if (!ix->tracking && (rc = track_start(ix)))
        return rc; /* nothing was run after the last snapshot: empty */
    return progress(ix, true);
}

static __thread char index_detail[2048];

const char *rp_index_detail(void)
{
    return index_detail;
}

/* One whole indexing run on engine. */
static int index_once(const char *trace, const struct replay_opts *o,
                      bool follow, const char *engine)
{
    struct replay *r = calloc(1, sizeof *r);
    struct rp_index *ix = calloc(1, sizeof *ix);
    int rc = r && ix ? 0 : -ENOMEM;
    if (!rc) {
        r->path = (char *)trace;
        r->engine = engine;
        r->ix = ix;
        ix->r = r;
        ix->o = o;
        ix->follow = follow;
        ix->parent = getppid();
        const char *env = getenv("TTVM_ISNAP_INTERVAL");
        ix->isnap_every = env ? strtoull(env, NULL, 0) : 0;
        if (!ix->isnap_every)
            ix->isnap_every = rp_kvmstep(r) ? ISNAP_EVERY_KVMSTEP
                                            : ISNAP_EVERY_DEFAULT;
        ix->what = rp_kvmstep(r) ? "index (kvm-step)" : "index";
        ix->isnap_next = ix->isnap_every;
        clock_gettime(CLOCK_MONOTONIC, &ix->last_progress);
        rc = index_setup(ix, trace, o ? o->key : NULL);
    }
    if (!rc)
        rc = index_run(ix);
    if (!rc)
        rc = write_index(ix, trace, o ? o->key : NULL);
    if (r)
        snprintf(index_detail, sizeof index_detail, "%s", r->detail);
    if (ix) {
        cp_pool_destroy(ix->xpool);
        cover_free(ix);
        want_free(ix);
        free(ix->pos_of);
        free(ix->bits);
        free(ix->acc);
        free(ix);
    }
    if (r) {
        if (r->vm)
            vmm_destroy(r->vm);
        store_close(r->st);
        rp_trace_free(r);
        free(r);
    }
    return rc;
}

/*
 * Unicorn first (fast); a guest that turns on non-identity paging is
 * indexed again from snapshot 0 on kvm-step, which single-steps it on KVM
 * (correct, ~70 000 instructions/s) where the host can: one engine for
 * the whole trace, named in the index (RP_META_ENGINE) so replays use it
 * too.  TTVM_INDEX_ENGINE=unicorn|kvm-step forces one (tests compare the
 * two on guests both can run).
 */
int rp_index_trace(const char *trace, const struct replay_opts *o,
                   bool follow)
{
    const char *env = getenv("TTVM_INDEX_ENGINE");
    const char *engine = RP_ENGINE_UNICORN;
    if (env && !strcmp(env, RP_ENGINE_KVMSTEP))
        engine = RP_ENGINE_KVMSTEP;
    int rc = index_once(trace, o, follow, engine);
    if (rc != REPLAY_E_PAGING || env)
        return rc;
    static __thread char first[sizeof index_detail];
    memcpy(first, index_detail, sizeof first);
    rc = index_once(trace, o, follow, RP_ENGINE_KVMSTEP);
    if (!rc)
        return 0;
    /* the paging is the reason there was a second try: say both */
    size_t n = strnlen(first, sizeof first - 1);
    /* (the return value is looked at so that a long detail is cut) */
    if (snprintf(first + n, sizeof first - n, "; the kvm-step engine "
                 "(single steps on KVM) cannot replace it: %s",
                 index_detail) < 0)
        first[n] = '\0';
    memcpy(index_detail, first, sizeof first);
    return rc == -ENOMEM || rc == REPLAY_E_INTERRUPTED ||
                   rc == REPLAY_E_DIVERGED || (rc <= -5100 && rc > -5200)
               ? rc : REPLAY_E_PAGING;
}
