/*
 * run.c — re-executing forward from the current state.
 *
 * Once indexed, the position of every event is known, so the run needs no
 * guessing: port and MMIO accesses are answered from the log inside the
 * backend's io callbacks (kind, address and written values checked), and
 * the backend is told to stop exactly where the next non-I/O event is due
 * (an interrupt to inject, a HLT or a kick point to pass) or at the
 * target, whichever comes first.  Breakpoints and watchpoints are armed
 * only when asked: to stop at the first hit, or to log every hit through
 * the backend's hit filter without stopping (reverse searches).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "replayer/replayer_int.h"

/* ---- I/O from the log --------------------------------------------------- */

static int io_diverge(struct replay *r, const struct store_event *e,
                      const char *what, unsigned size, bool write,
                      uint64_t addr)
{
    r->run_err = rp_fail(r, REPLAY_E_DIVERGED,
                         "event %llu (icount %llu): the recording has %s, "
                         "the replay does a %u-byte %s %s of %#llx",
                         (unsigned long long)r->ev_next,
                         (unsigned long long)vcpu_icount(r->cpu),
                         e ? rp_kind_name(e->kind) : "no more events", size,
                         what, write ? "write" : "read",
                         (unsigned long long)addr);
    return REPLAY_E_DIVERGED;
}

int rp_io_match(struct replay *r, const struct store_event *e, bool mmio,
                uint64_t addr, unsigned size, bool write, uint64_t *val)
{
    uint8_t want = mmio ? (write ? STORE_EV_MMIO_WRITE : STORE_EV_MMIO_READ)
                        : (write ? STORE_EV_PIO_OUT : STORE_EV_PIO_IN);
    const char *what = mmio ? "MMIO" : "port";
    if (!e || e->kind != want || e->addr != addr || e->size != size)
        return io_diverge(r, e, what, size, write, addr);
    uint64_t mask = size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
    if (write && (e->value & mask) != (*val & mask)) {
        r->run_err = rp_fail(r, REPLAY_E_DIVERGED,
                             "event %llu (icount %llu): %s %#llx written "
                             "with %#llx, the recording has %#llx",
                             (unsigned long long)r->ev_next,
                             (unsigned long long)vcpu_icount(r->cpu), what,
                             (unsigned long long)addr,
                             (unsigned long long)*val,
                             (unsigned long long)e->value);
        return REPLAY_E_DIVERGED;
    }
    if (!write)
        *val = e->value & mask;
    return 0;
}

static int serve(struct replay *r, bool mmio, uint64_t addr, unsigned size,
                 bool write, uint64_t *val)
{
    int err;
    const struct store_event *e = rp_event(r, r->ev_next, &err);
    if (err) {
        r->run_err = err;
        return err;
    }
    err = rp_io_match(r, e, mmio, addr, size, write, val);
    if (!err)
        r->ev_next++;
    return err;
}

static int replay_pio(void *ctx, uint16_t port, unsigned size, bool write,
                      uint32_t *val)
{
    uint64_t v = *val;
    int rc = serve(ctx, false, port, size, write, &v);
    *val = (uint32_t)v;
    return rc;
}

static int replay_mmio(void *ctx, uint64_t gpa, unsigned size, bool write,
                       uint64_t *val)
{
    return serve(ctx, true, gpa, size, write, val);
}

const struct vmm_io_ops rp_replay_io = {
    .pio = replay_pio,
    .mmio = replay_mmio,
};

/* ---- events at the current position ------------------------------------ */

int rp_normalize(struct replay *r)
{
    while (r->ev_next < r->nev && r->ev_icount[r->ev_next] == r->pos) {
        uint8_t k = r->ev_kind[r->ev_next];
        if (rp_kind_is_io(k) || k == STORE_EV_EXIT)
            break;
        if (k == STORE_EV_HLT || k == STORE_EV_KICK || k == STORE_EV_WINDOW) {
            int err;
            const struct store_event *e = rp_event(r, r->ev_next, &err);
            if (!e || (err = rp_take_flags(r->cpu, e->regs)))
                return err;
        }
        if (k == STORE_EV_IRQ) {
            int err;
            const struct store_event *e = rp_event(r, r->ev_next, &err);
            if (!e)
                return err;
            err = vcpu_inject_irq(r->cpu, (uint8_t)e->aux);
            if (err)
                return rp_fail(r, err, "injecting interrupt %u at icount "
                               "%llu: %s", e->aux,
                               (unsigned long long)r->pos, vmm_strerror(err));
        }
        r->ev_next++;
    }
    return 0;
}

/* ---- breakpoints and watchpoints ---------------------------------------- */

bool rp_is_break(const struct replay *r, uint64_t pc)
{
    for (size_t i = 0; i < r->nbps; i++)
        if (r->bps[i] == pc)
            return true;
    return false;
}

uint64_t rp_pc(struct replay *r)
{
    struct vmm_regs g;
    return vcpu_get_regs(r->cpu, &g) ? 0 : g.rip;
}

bool rp_watch_match(const struct replay *r, uint64_t addr, uint32_t len,
                    uint32_t kind, uint64_t *first, uint32_t *wkind)
{
    for (size_t i = 0; i < r->nwatch; i++) {
        const struct vcpu_watch *w = &r->watches[i];
        if (!(w->kind & kind) || addr >= w->addr + w->len ||
            w->addr >= addr + len)
            continue;
        *first = addr > w->addr ? addr : w->addr;
        *wkind = w->kind;
        return true;
    }
    return false;
}

static void log_hit(struct replay *r, uint64_t icount, unsigned reason,
                    uint64_t waddr, uint32_t wkind)
{
    struct rp_hit *h = &r->hit;
    if (icount < r->log_lo)
        return;
    if (!h->found || icount > h->icount) {
        *h = (struct rp_hit){.found = true, .icount = icount};
    } else if (icount < h->icount) {
        return;
    }
    if (reason == REPLAY_STOP_WATCH && !(h->reasons & REPLAY_STOP_WATCH)) {
        h->watch_addr = waddr;
        h->watch_kind = wkind;
    }
    h->reasons |= reason;
}

static int on_hit(void *ctx, const struct vcpu_hit *hit)
{
    struct replay *r = ctx;
    if (r->arm != RP_ARM_LOG)
        return 1;
    if (hit->kind == 0) {
        log_hit(r, hit->icount, REPLAY_STOP_BREAK, 0, 0);
        return 0;
    }
    uint64_t first;
    uint32_t wkind;
    if (rp_watch_match(r, hit->addr, hit->len, hit->kind, &first, &wkind))
        log_hit(r, hit->icount, REPLAY_STOP_WATCH, first, wkind);
    return 0;
}

int rp_arm(struct replay *r, enum rp_arm mode)
{
    bool bps = mode != RP_ARM_NONE && r->nbps;
    bool watch = mode != RP_ARM_NONE && r->nwatch;
    int rc = 0;
    if (bps || r->armed_bps) {
        rc = vcpu_set_breakpoints(r->cpu, r->bps, bps ? r->nbps : 0);
        r->armed_bps = bps && !rc;
    }
    if (!rc && (watch || r->armed_watch)) {
        rc = vcpu_set_watchpoints(r->cpu, r->watches, watch ? r->nwatch : 0);
        r->armed_watch = watch && !rc;
        r->watch_fired = false;
    }
    if (!rc)
        rc = vcpu_set_hit_filter(r->cpu, mode == RP_ARM_LOG ? on_hit : NULL,
                                 r);
    if (rc == VMM_E_UNSUPPORTED && rp_kvmstep(r))
        return rp_fail(r, rc, "this trace is replayed by single steps on "
                       "KVM (engine kvm-step: the guest uses non-identity "
                       "paging), which sees writes only: read and access "
                       "watchpoints are not supported");
    if (rc)
        return rp_fail(r, rc, "arming breakpoints/watchpoints: %s",
                       vmm_strerror(rc));
    r->arm = mode;
    return 0;
}

/* ---- interruption -------------------------------------------------------- */

void rp_call_begin(struct replay *r)
{
    atomic_store(&r->intr, 0);
    atomic_store(&r->running, 1);
}

void rp_call_end(struct replay *r)
{
    atomic_store(&r->running, 0);
}

bool rp_interrupted(struct replay *r)
{
    return atomic_load(&r->intr) != 0;
}

/* ---- the run loop -------------------------------------------------------- */

static int run_error(struct replay *r, int rc, const struct vcpu_exit *e)
{
    if (rc == REPLAY_E_DIVERGED || r->run_err)
        return r->run_err ? r->run_err : rc;
    if (rc == VMM_E_PAGING)
        return rp_fail(r, REPLAY_E_PAGING,
                       "at icount %llu the guest uses non-identity paging, "
                       "which Unicorn 2.0.1 cannot execute (%s); positions "
                       "from here cannot be replayed exactly",
                       (unsigned long long)r->pos, e->detail);
    return rp_fail(r, rc ? rc : REPLAY_E_DIVERGED,
                   "at icount %llu (event %llu): the replay stopped: %s%s%s",
                   (unsigned long long)r->pos, (unsigned long long)r->ev_next,
                   rc ? vmm_strerror(rc) : "unexpected exit",
                   *e->detail ? ": " : "", e->detail);
}

/* One vcpu_run toward target; *why set when the loop must return. */
static int run_once(struct replay *r, uint64_t target, enum rp_why *why,
                    bool *done)
{
    uint64_t stop = target < r->end ? target : r->end;
    uint64_t j = rp_next_stop(r, r->ev_next);
    if (j < r->nev && r->ev_icount[j] < stop)
        stop = r->ev_icount[j];
    struct vcpu_run_opts o = {.max_insns = stop - r->pos};
    struct vcpu_exit e = {0};
    r->run_err = 0;
    int rc = vcpu_run(r->cpu, &o, &e);
    r->pos = vcpu_icount(r->cpu);
    if (rc || r->run_err)
        return run_error(r, rc, &e);
    *done = true;
    switch (e.reason) {
    case VCPU_EXIT_BREAKPOINT:
        *why = RP_RUN_BREAK;
        return 0;
    case VCPU_EXIT_WATCH:
        r->watch_fired = true;
        r->wexit = (struct rp_watch_exit){e.watch.addr, e.watch.len,
                                          e.watch.kind};
        *why = RP_RUN_WATCH;
        return 0;
    case VCPU_EXIT_KICK:
        if (rp_interrupted(r)) {
            *why = RP_RUN_INTR;
            return 0;
        }
        break; /* a kick meant for an earlier call */
    case VCPU_EXIT_LIMIT:
    case VCPU_EXIT_STEP:
    case VCPU_EXIT_HLT:
    case VCPU_EXIT_STOP:
    case VCPU_EXIT_IRQ_WINDOW:
        break;
    case VCPU_EXIT_SHUTDOWN:
        if (r->pos == r->end)
            break;
        /* fall through */
    default:
        return run_error(r, 0, &e);
    }
    *done = false;
    return 0;
}

int rp_run(struct replay *r, uint64_t target, enum rp_why *why)
{
    bool first = true;
    for (;;) {
        int rc = rp_normalize(r);
        if (rc)
            return rc;
        if (r->pos >= target) {
            *why = RP_RUN_LIMIT;
            return 0;
        }
        if (r->pos >= r->end) {
            *why = RP_RUN_END;
            return 0;
        }
        if (rp_interrupted(r)) {
            *why = RP_RUN_INTR;
            return 0;
        }
        /* The backend never stops at a breakpoint where a run starts:
         * right for where the caller starts, not for restarts. */
        if (r->arm != RP_ARM_NONE && r->nbps &&
            (!first || r->arm == RP_ARM_LOG) && rp_is_break(r, rp_pc(r))) {
            if (r->arm == RP_ARM_STOP) {
                *why = RP_RUN_BREAK;
                return 0;
            }
            log_hit(r, r->pos, REPLAY_STOP_BREAK, 0, 0);
        }
        first = false;
        bool done = false;
        rc = run_once(r, target, why, &done);
        if (rc || done)
            return rc;
    }
}
