/*
 * travel.c — moving in time: go to a position, step, continue, in both
 * directions.
 *
 * Every move re-executes forward from the best restore point at or before
 * the target: the current state, an in-memory checkpoint, an index
 * snapshot or a recorded snapshot, whichever is nearest.  Going to a
 * position lays checkpoints at doubling distances before it (rr's
 * scheme), so the next step backwards finds one a short way back, and the
 * one after that one a little further, and so on.
 *
 * Backward searches (reverse continue, reverse step over breakpoints)
 * re-execute interval by interval, newest first, with breakpoints and
 * watchpoints logged by the backend's hit filter rather than stopping at
 * each hit, and take the last hit before the current position; an
 * interval whose write sets do not touch a write watchpoint's pages is
 * skipped without running.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "replayer/replayer_int.h"

#define CP_NEAR (1ull << 16)      /* closest checkpoint laid before a goal */
#define CP_MAX_LAID 24            /* per goto */
#define SCAN_CP_EVERY (4ull << 20)/* checkpoints while scanning backwards */

/* ---- restore points ---------------------------------------------------- */

enum start_kind { START_CUR, START_CP, START_ISNAP, START_SNAP };

struct start {
    enum start_kind kind;
    uint64_t pos;
    struct cp *cp;
    size_t isnap;
    uint32_t snap;
};

/* Last index snapshot at or before t, or SIZE_MAX. */
static size_t isnap_le(const struct replay *r, uint64_t t)
{
    size_t lo = 0, hi = r->nisnaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->isnaps[mid].icount <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : SIZE_MAX;
}

/* The restore point nearest below or at t.  The current state wins unless
 * another is more than CP_NEAR closer (restoring costs more than a short
 * run). */
static void best_start(struct replay *r, uint64_t t, bool allow_cur,
                       struct start *s)
{
    uint32_t k = rp_interval_of(r, t);
    *s = (struct start){.kind = START_SNAP, .pos = r->snaps[k].icount,
                        .snap = k};
    size_t x = isnap_le(r, t);
    if (x != SIZE_MAX && r->isnaps[x].icount > s->pos)
        *s = (struct start){.kind = START_ISNAP,
                            .pos = r->isnaps[x].icount, .isnap = x};
    struct cp *c = cp_find_le(r->pool, t);
    if (c && c->icount >= s->pos)
        *s = (struct start){.kind = START_CP, .pos = c->icount, .cp = c};
    if (allow_cur && r->pos <= t && !r->ram_unknown &&
        r->pos + CP_NEAR >= s->pos)
        *s = (struct start){.kind = START_CUR, .pos = r->pos};
}

static int go_start(struct replay *r, const struct start *s)
{
    struct cp *c = s->cp;
    int rc = 0;
    switch (s->kind) {
    case START_CUR:
        return rp_user_undo(r);
    case START_CP:
        break;
    case START_ISNAP:
        rc = rp_cp_of_isnap(r, s->isnap, &c);
        break;
    case START_SNAP:
        rc = rp_cp_of_snap(r, s->snap, &c);
        break;
    }
    return rc ? rc : rp_restore_cp(r, c);
}

/* ---- forward, laying checkpoints -------------------------------------- */

static int run_plain(struct replay *r, uint64_t t)
{
    enum rp_why why;
    int rc = rp_run(r, t, &why);
    if (!rc && why == RP_RUN_INTR)
        return rp_fail(r, REPLAY_E_INTERRUPTED, "interrupted at icount %llu",
                       (unsigned long long)r->pos);
    if (!rc && r->pos != t)
        return rp_fail(r, REPLAY_E_RANGE, "the recording ends at %llu",
                       (unsigned long long)r->end);
    return rc;
}

/* Runs to t, leaving checkpoints at t - CP_NEAR * 2^i on the way. */
static int run_laying(struct replay *r, uint64_t t)
{
    uint64_t at[CP_MAX_LAID];
    int n = 0;
    for (uint64_t d = CP_NEAR; n < CP_MAX_LAID && d < t - r->pos; d *= 2) {
        uint64_t p = t - d;
        if (p < r->pos + CP_NEAR / 2)
            break;
        struct cp *c = cp_find_le(r->pool, p);
        if (c && c->icount + d / 2 > p && c->icount > r->pos)
            continue; /* one close enough already */
        at[n++] = p;
    }
    int rc = rp_arm(r, RP_ARM_NONE);
    for (int i = n - 1; !rc && i >= 0; i--) {
        struct cp *c;
        rc = run_plain(r, at[i]);
        if (!rc)
            rc = rp_cp_here(r, &c);
    }
    return rc ? rc : run_plain(r, t);
}

int rp_goto(struct replay *r, uint64_t t)
{
    if (t > r->end)
        return rp_fail(r, REPLAY_E_RANGE, "icount %llu is beyond the end of "
                       "the recording (%llu)", (unsigned long long)t,
                       (unsigned long long)r->end);
    if (t == r->pos && !r->ram_unknown)
        return 0;
    struct start s;
    best_start(r, t, true, &s);
    int rc = go_start(r, &s);
    return rc ? rc : run_laying(r, t);
}

/* ---- backward search ---------------------------------------------------- */

/* Could [a, b) hit anything?  Read watchpoints: maybe; breakpoints only
 * in coverage windows that ran their address; write watchpoints only if a
 * write set of the intervals spanned holds one of their pages.  *scan_to:
 * where a scan of [a, b) may stop (no breakpoint can run past it). */
static int may_hit(struct replay *r, uint64_t a, uint64_t b, bool *maybe,
                   uint64_t *scan_to)
{
    *maybe = true;
    *scan_to = b;
    for (size_t i = 0; i < r->nwatch; i++)
        if (r->watches[i].kind & VCPU_WATCH_READ)
            return 0;
    /* The write sets are guest-physical pages and watchpoints virtual
     * addresses: the same under Unicorn (identity paging), not under
     * kvm-step, where any page may alias a watched one. */
    if (r->nwatch && rp_kvmstep(r))
        return 0;
    bool code = false, data = false;
    uint64_t code_end = a;
    int rc = r->nbps ? rp_breaks_may_run(r, a, b, &code, &code_end) : 0;
    uint32_t ka = rp_interval_of(r, a), kb = rp_interval_of(r, b);
    for (uint32_t k = ka; !rc && r->nwatch && k <= kb && !data; k++) {
        const uint64_t *g;
        size_t n;
        bool known;
        rc = rp_interval_pages(r, k, &g, &n, &known);
        data = !rc && !known;
        for (size_t w = 0; !rc && w < r->nwatch && !data; w++) {
            uint64_t lo = r->watches[w].addr / RP_PAGE;
            uint64_t hi = (r->watches[w].addr + r->watches[w].len - 1) /
                          RP_PAGE;
            for (size_t i = 0; i < n && !data; i++)
                data = g[i] >= lo && g[i] <= hi;
        }
    }
    *maybe = code || data;
    if (!data)
        *scan_to = code_end;
    return rc;
}

/* Re-executes to hi logging hits, with a checkpoint now and then so that
 * going to the hit afterwards is short. */
static int scan(struct replay *r, uint64_t hi)
{
    int rc = 0;
    while (!rc && r->pos < hi) {
        uint64_t t = hi;
        if (hi - r->pos > 2 * SCAN_CP_EVERY)
            t = r->pos + SCAN_CP_EVERY;
        enum rp_why why;
        rc = rp_run(r, t, &why);
        if (!rc && why == RP_RUN_INTR)
            rc = REPLAY_E_INTERRUPTED;
        if (!rc && why != RP_RUN_LIMIT)
            rc = rp_fail(r, REPLAY_E_RANGE, "scan stopped early at %llu",
                         (unsigned long long)r->pos);
        struct cp *c;
        if (!rc && t < hi)
            rc = rp_cp_here(r, &c);
    }
    return rc;
}

/* The last breakpoint or watchpoint hit in [lo, hi). */
static int search_back(struct replay *r, uint64_t lo, uint64_t hi,
                       struct rp_hit *out)
{
    memset(out, 0, sizeof *out);
    for (uint64_t top = hi; top > lo;) {
        if (rp_interrupted(r))
            return REPLAY_E_INTERRUPTED;
        struct start s;
        bool maybe;
        uint64_t scan_to;
        best_start(r, top - 1, true, &s);
        int rc = may_hit(r, s.pos, top, &maybe, &scan_to);
        if (!rc && maybe) {
            rc = go_start(r, &s);
            if (!rc)
                rc = rp_arm(r, RP_ARM_LOG);
            memset(&r->hit, 0, sizeof r->hit);
            r->log_lo = s.pos > lo ? s.pos : lo;
            if (!rc)
                rc = scan(r, scan_to);
            int arc = rp_arm(r, RP_ARM_NONE);
            if (!rc)
                rc = arc;
        }
        if (rc)
            return rc;
        if (maybe && r->hit.found) {
            *out = r->hit;
            return 0;
        }
        top = s.pos;
    }
    return 0;
}

/* ---- the public calls --------------------------------------------------- */

static unsigned at_ends(struct replay *r, struct replay_stop *st)
{
    unsigned reasons = 0;
    if (r->pos == 0)
        reasons |= REPLAY_STOP_BEGIN;
    if (r->pos == r->end) {
        reasons |= REPLAY_STOP_END;
        if (r->has_exit && r->exit_kind == VMM_STOP_EXIT) {
            reasons |= REPLAY_STOP_EXITED;
            st->exit_status = r->exit_status;
        }
    }
    return reasons;
}

/* Fills st for the current position; ends are added where they hold,
 * BEGIN only going backwards and END only going forwards. */
static int finish(struct replay *r, int rc, unsigned reasons, bool forward,
                  struct replay_stop *st)
{
    if (rc == REPLAY_E_INTERRUPTED) {
        reasons = REPLAY_STOP_INTERRUPTED;
        rc = 0;
    }
    struct replay_stop z = {0};
    *st = z;
    unsigned ends = at_ends(r, st);
    ends &= forward ? ~(unsigned)REPLAY_STOP_BEGIN
                    : ~(unsigned)(REPLAY_STOP_END | REPLAY_STOP_EXITED);
    st->reasons = reasons | ends;
    st->icount = r->pos;
    st->pc = rp_pc(r);
    if (reasons & REPLAY_STOP_WATCH) {
        st->watch_addr = r->hit.watch_addr;
        st->watch_kind = r->hit.watch_kind;
        st->watch_icount = r->hit.icount;
    }
    rp_call_end(r);
    return rc;
}

int replay_goto(struct replay *r, uint64_t icount)
{
    rp_call_begin(r);
    int rc = rp_goto(r, icount);
    rp_call_end(r);
    return rc;
}

/* After a forward stop before a watched access: execute it (gdb reports
 * a watchpoint after the access). */
static int pass_watch(struct replay *r, uint64_t target, unsigned *reasons)
{
    uint64_t first;
    uint32_t wkind;
    r->hit = (struct rp_hit){.found = true, .icount = r->pos};
    if (rp_watch_match(r, r->wexit.addr, r->wexit.len, r->wexit.kind, &first,
                       &wkind)) {
        r->hit.watch_addr = first;
        r->hit.watch_kind = wkind;
    }
    enum rp_why why;
    int rc = rp_run(r, r->pos + 1, &why);
    if (rc)
        return rc;
    *reasons = REPLAY_STOP_WATCH;
    if (r->pos == target)
        *reasons |= REPLAY_STOP_STEP;
    if (rp_is_break(r, rp_pc(r)))
        *reasons |= REPLAY_STOP_BREAK;
    return 0;
}

static int step_forward(struct replay *r, uint64_t n, bool honour,
                        unsigned *reasons)
{
    uint64_t target = n > r->end - r->pos ? r->end : r->pos + n;
    bool short_of = target - r->pos < n;
    int rc = rp_user_undo(r);
    if (!rc && !honour)
        rc = rp_goto(r, target);
    if (!rc && !honour) {
        *reasons = short_of ? 0 : REPLAY_STOP_STEP;
        return 0;
    }
    enum rp_why why = RP_RUN_LIMIT;
    if (!rc)
        rc = rp_arm(r, RP_ARM_STOP);
    if (!rc)
        rc = rp_run(r, target, &why);
    if (rc)
        return rc;
    switch (why) {
    case RP_RUN_BREAK:
        *reasons = REPLAY_STOP_BREAK;
        return 0;
    case RP_RUN_WATCH:
        return pass_watch(r, short_of ? UINT64_MAX : target, reasons);
    case RP_RUN_INTR:
        return REPLAY_E_INTERRUPTED;
    default:
        break;
    }
    *reasons = short_of ? 0 : REPLAY_STOP_STEP;
    if (rp_is_break(r, rp_pc(r)))
        *reasons |= REPLAY_STOP_BREAK;
    return 0;
}

static int step_backward(struct replay *r, uint64_t n, bool honour,
                         unsigned *reasons)
{
    uint64_t lo = n > r->pos ? 0 : r->pos - n;
    bool short_of = r->pos - lo < n;
    struct rp_hit h = {0};
    int rc = 0;
    if (honour && (r->nbps || r->nwatch))
        rc = search_back(r, lo, r->pos, &h);
    if (!rc)
        rc = rp_goto(r, h.found ? h.icount : lo);
    if (rc)
        return rc;
    r->hit = h;
    *reasons = h.found ? h.reasons : 0;
    if (r->pos == lo && !short_of)
        *reasons |= REPLAY_STOP_STEP;
    return 0;
}

int replay_step(struct replay *r, int64_t n, bool honour_breaks,
                struct replay_stop *st)
{
    rp_call_begin(r);
    unsigned reasons = 0;
    int rc = 0;
    if (n > 0)
        rc = step_forward(r, (uint64_t)n, honour_breaks, &reasons);
    else if (n < 0)
        rc = step_backward(r, n == INT64_MIN ? (uint64_t)INT64_MAX + 1
                                             : (uint64_t)-n,
                           honour_breaks, &reasons);
    else
        reasons = REPLAY_STOP_STEP;
    return finish(r, rc, reasons, n >= 0, st);
}

/* Before a forward continue with breakpoints only: a restore point past
 * the stretch where none of them can run is a jump, not a replay. */
static int skip_ahead(struct replay *r)
{
    if (!r->nbps || r->nwatch || !r->ncov)
        return 0;
    uint64_t at;
    int rc = rp_breaks_next_run(r, r->pos, &at);
    if (rc || at < r->pos + CP_NEAR)
        return rc;
    struct start s;
    best_start(r, at, true, &s);
    return s.kind != START_CUR && s.pos > r->pos ? go_start(r, &s) : 0;
}

static int continue_forward(struct replay *r, unsigned *reasons)
{
    if (r->pos >= r->end)
        return 0;
    enum rp_why why;
    int rc = rp_user_undo(r);
    if (!rc)
        rc = skip_ahead(r);
    if (!rc)
        rc = rp_arm(r, RP_ARM_STOP);
    if (!rc)
        rc = rp_run(r, r->end, &why);
    if (rc)
        return rc;
    switch (why) {
    case RP_RUN_BREAK:
        *reasons = REPLAY_STOP_BREAK;
        return 0;
    case RP_RUN_WATCH:
        return pass_watch(r, UINT64_MAX, reasons);
    case RP_RUN_INTR:
        return REPLAY_E_INTERRUPTED;
    default:
        return 0;
    }
}

static int continue_backward(struct replay *r, unsigned *reasons)
{
    struct rp_hit h = {0};
    int rc = 0;
    if (r->nbps || r->nwatch)
        rc = search_back(r, 0, r->pos, &h);
    if (!rc)
        rc = rp_goto(r, h.found ? h.icount : 0);
    if (rc)
        return rc;
    r->hit = h;
    *reasons = h.found ? h.reasons : 0;
    return 0;
}

int replay_continue(struct replay *r, bool backward, struct replay_stop *st)
{
    rp_call_begin(r);
    unsigned reasons = 0;
    int rc = backward ? continue_backward(r, &reasons)
                      : continue_forward(r, &reasons);
    return finish(r, rc, reasons, !backward, st);
}
