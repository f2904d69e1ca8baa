/*
 * trace.c — what the replayer needs from the trace, loaded once at open:
 * every event's kind and position, the recorded snapshots (page lists on
 * demand), the index snapshots and the tail's write set; a window of
 * whole events around the current one; and the machine the trace
 * describes.  Also the wording of divergences, shared with verify.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replayer/replayer_int.h"


/* ---- divergence wording ------------------------------------------------ */

const char *const rp_reg_names[STORE_NREGS] = {
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8",
    "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
};

static const char *const kind_names[STORE_EV_KIND_MAX] = {
    [STORE_EV_PIO_IN] = "port read",   [STORE_EV_PIO_OUT] = "port write",
    [STORE_EV_MMIO_READ] = "MMIO read", [STORE_EV_MMIO_WRITE] = "MMIO write",
    [STORE_EV_IRQ] = "interrupt",      [STORE_EV_HLT] = "hlt",
    [STORE_EV_KICK] = "kick",          [STORE_EV_WINDOW] = "irq window",
    [STORE_EV_EMU] = "emulated insn",  [STORE_EV_EXIT] = "exit",
};

const char *rp_kind_name(unsigned k)
{
    return k < STORE_EV_KIND_MAX && kind_names[k] ? kind_names[k] : "?";
}

int rp_regs_diff(const uint64_t *want, const uint64_t *got, bool mask_flags,
                 char *buf, size_t cap)
{
    size_t len = strnlen(buf, cap);
    int n = 0;
    for (int i = 0; i < STORE_NREGS; i++) {
        uint64_t m = (i == 17 && mask_flags) ? ~RP_RFLAGS_IGNORED : ~0ull;
        if ((want[i] & m) == (got[i] & m))
            continue;
        n++;
        if (len + 64 < cap)
            len += (size_t)snprintf(buf + len, cap - len,
                                    "\n  %-6s expected %#018llx, replay "
                                    "%#018llx",
                                    rp_reg_names[i],
                                    (unsigned long long)want[i],
                                    (unsigned long long)got[i]);
    }
    return n;
}

int rp_take_flags(struct vcpu *cpu, const uint64_t *regs)
{
    struct vmm_regs g;
    int rc = vcpu_get_regs(cpu, &g);
    if (rc)
        return rc;
    uint64_t want = (g.rflags & ~RP_RFLAGS_IGNORED) |
                    (regs[17] & RP_RFLAGS_IGNORED);
    if (want == g.rflags)
        return 0;
    g.rflags = want;
    return vcpu_set_regs(cpu, &g);
}

/* ---- errors ----------------------------------------------------------- */

int rp_fail(struct replay *r, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    return err;
}

int rp_store_fail(struct replay *r, int err, const char *what)
{
    return rp_fail(r, err, "%s: %s%s%s", what, store_strerror(err),
                   *store_error_detail(r->st) ? ": " : "",
                   store_error_detail(r->st));
}

/* ---- events ------------------------------------------------------------ */

bool rp_kind_is_io(unsigned kind)
{
    return kind >= STORE_EV_PIO_IN && kind <= STORE_EV_MMIO_WRITE;
}

const struct store_event *rp_event(struct replay *r, uint64_t i, int *err)
{
    *err = 0;
    if (i >= r->nev)
        return NULL;
    if (i < r->win_first || i >= r->win_first + r->win_n) {
        uint64_t first = i - i % RP_EVWIN;
        size_t got = 0;
        r->win_n = 0;
        *err = store_events_read(r->st, first, r->win, RP_EVWIN, &got);
        if (!*err && (got == 0 || i >= first + got))
            *err = STORE_E_CORRUPT;
        if (*err) {
            rp_store_fail(r, *err, "reading events");
            return NULL;
        }
        r->win_first = first;
        r->win_n = got;
    }
    return &r->win[i - r->win_first];
}

/* Kinds of every event, and the EXIT at the end. */
static int load_kinds(struct replay *r)
{
    r->ev_kind = malloc(r->nev ? r->nev : 1);
    r->stops = malloc((r->nev ? r->nev : 1) * sizeof *r->stops);
    if (!r->ev_kind || !r->stops)
        return -ENOMEM;
    int err = 0;
    for (uint64_t i = 0; i < r->nev; i++) {
        const struct store_event *e = rp_event(r, i, &err);
        if (!e)
            return err;
        r->ev_kind[i] = e->kind;
        if (!rp_kind_is_io(e->kind))
            r->stops[r->nstops++] = i;
        if (e->kind == STORE_EV_EXIT) {
            if (i != r->nev - 1)
                return rp_fail(r, STORE_E_CORRUPT, "trace corrupt: exit "
                               "event %llu is not the last",
                               (unsigned long long)i);
            r->has_exit = true;
            r->exit_kind = e->aux;
            r->exit_status = (int)(int64_t)e->value;
        }
    }
    return 0;
}

static int load_positions(struct replay *r)
{
    r->ev_icount = malloc((r->nev ? r->nev : 1) * sizeof *r->ev_icount);
    if (!r->ev_icount)
        return -ENOMEM;
    for (uint64_t i = 0; i < r->nev; i++) {
        int rc = store_index_get(r->st, i, &r->ev_icount[i]);
        if (rc)
            return rp_store_fail(r, rc, "reading the index");
    }
    return 0;
}

uint64_t rp_next_stop(const struct replay *r, uint64_t from)
{
    size_t lo = 0, hi = r->nstops;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->stops[mid] < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->nstops ? r->stops[lo] : r->nev;
}

uint64_t rp_event_at(const struct replay *r, uint64_t p)
{
    uint64_t lo = 0, hi = r->nev;
    while (lo < hi) { /* first event at or after p */
        uint64_t mid = lo + (hi - lo) / 2;
        if (r->ev_icount[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (lo < r->nev && r->ev_icount[lo] == p &&
           !rp_kind_is_io(r->ev_kind[lo]) && r->ev_kind[lo] != STORE_EV_EXIT)
        lo++;
    return lo;
}

/* ---- snapshots ---------------------------------------------------------- */

static int load_snaps(struct replay *r)
{
    r->nsnaps = store_snapshot_count(r->st);
    if (r->nsnaps == 0)
        return rp_fail(r, STORE_E_CORRUPT, "trace has no snapshot");
    r->snaps = calloc(r->nsnaps, sizeof *r->snaps);
    if (!r->snaps)
        return -ENOMEM;
    for (uint32_t k = 0; k < r->nsnaps; k++) {
        struct store_snapshot_info si;
        int rc = store_snapshot_get(r->st, k, &si, NULL, NULL, NULL, NULL);
        if (rc)
            return rp_store_fail(r, rc, "reading snapshots");
        r->snaps[k].icount = si.icount;
        r->snaps[k].event_index = si.event_index;
        r->snaps[k].reason = si.reason;
        r->snaps[k].npages = si.npages;
    }
    return 0;
}

int rp_snap_dirty(struct replay *r, uint32_t k, const uint64_t **g,
                  size_t *n)
{
    struct rp_snap *s = &r->snaps[k];
    if (!s->loaded) {
        int rc = store_snapshot_pages(r->st, k, &s->dirty, &s->ndirty);
        if (rc)
            return rp_store_fail(r, rc, "reading a snapshot's pages");
        for (size_t i = 0; i < s->ndirty; i++)
            if (s->dirty[i] >= r->npages)
                return rp_fail(r, STORE_E_CORRUPT, "trace corrupt: "
                               "snapshot %u saved page %#llx beyond RAM",
                               k, (unsigned long long)s->dirty[i]);
        s->loaded = true;
    }
    *g = s->dirty;
    *n = s->ndirty;
    return 0;
}

int rp_interval_pages(struct replay *r, uint32_t k, const uint64_t **g,
                      size_t *n, bool *known)
{
    *known = true;
    if (k + 1 < r->nsnaps)
        return rp_snap_dirty(r, k + 1, g, n);
    *g = r->tail;
    *n = r->ntail;
    *known = r->tail_known;
    return 0;
}

uint32_t rp_interval_of(const struct replay *r, uint64_t p)
{
    uint32_t lo = 0, hi = r->nsnaps; /* first snapshot after p */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->snaps[mid].icount <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

static int load_isnaps(struct replay *r)
{
    size_t cap = 0;
    for (uint64_t top = UINT64_MAX;;) {
        struct store_isnap_info xi;
        int rc = store_isnap_at(r->st, top, &xi);
        if (rc == STORE_E_NOTFOUND)
            break;
        if (rc)
            return rp_store_fail(r, rc, "reading index snapshots");
        if (xi.base >= r->nsnaps || xi.icount > r->end)
            return rp_fail(r, STORE_E_CORRUPT, "trace corrupt: index "
                           "snapshot at %llu damaged",
                           (unsigned long long)xi.icount);
        if (r->nisnaps == cap) {
            cap = cap ? 2 * cap : 64;
            void *p = realloc(r->isnaps, cap * sizeof *r->isnaps);
            if (!p)
                return -ENOMEM;
            r->isnaps = p;
        }
        r->isnaps[r->nisnaps++] = (struct rp_isnap){
            xi.icount, xi.event_index, xi.base, xi.npages};
        if (xi.icount == 0)
            break;
        top = xi.icount - 1;
    }
    for (size_t i = 0; i < r->nisnaps / 2; i++) { /* ascending */
        struct rp_isnap t = r->isnaps[i];
        r->isnaps[i] = r->isnaps[r->nisnaps - 1 - i];
        r->isnaps[r->nisnaps - 1 - i] = t;
    }
    return 0;
}

static int load_tail(struct replay *r)
{
    int rc = store_index_tail_pages(r->st, &r->tail, &r->ntail);
    if (rc == STORE_E_NOTFOUND)
        return 0;
    if (rc)
        return rp_store_fail(r, rc, "reading the index");
    for (size_t i = 0; i < r->ntail; i++)
        if (r->tail[i] >= r->npages)
            return rp_fail(r, STORE_E_CORRUPT, "trace corrupt: tail page "
                           "%#llx beyond RAM", (unsigned long long)r->tail[i]);
    r->tail_known = true;
    return 0;
}

static int load_cover(struct replay *r)
{
    if (r->o.no_skip)
        return 0;
    int rc = store_cover_windows(r->st, &r->cov_start, &r->ncov);
    if (rc)
        return rp_store_fail(r, rc, "reading code coverage");
    if (r->ncov && r->cov_start[0] != 0) {
        r->ncov = 0; /* not from the start: do not trust it */
        return 0;
    }
    if (r->ncov && !(r->cov = calloc(r->ncov, sizeof *r->cov)))
        return -ENOMEM;
    return 0;
}

/* Window holding position p (ncov > 0). */
static size_t cover_of(const struct replay *r, uint64_t p)
{
    size_t lo = 0, hi = r->ncov;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->cov_start[mid] <= p)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static bool code_has(const struct rp_cover *c, uint64_t addr)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) { /* first range ending past addr */
        size_t mid = lo + (hi - lo) / 2;
        if (c->code[mid].addr + c->code[mid].len <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->code[lo].addr <= addr;
}

static int cover_window(struct replay *r, size_t i, const struct rp_cover **c)
{
    struct rp_cover *w = &r->cov[i];
    if (!w->loaded) {
        int rc = store_cover_get(r->st, r->cov_start[i], &w->code, &w->n);
        if (rc)
            return rp_store_fail(r, rc, "reading code coverage");
        w->loaded = true;
    }
    *c = w;
    return 0;
}

/* Does window i hold the address of an armed breakpoint? */
static int window_runs_a_break(struct replay *r, size_t i, bool *yes)
{
    const struct rp_cover *c = NULL;
    int rc = cover_window(r, i, &c);
    *yes = false;
    for (size_t k = 0; !rc && k < r->nbps && !*yes; k++)
        *yes = code_has(c, r->bps[k]);
    return rc;
}

int rp_breaks_may_run(struct replay *r, uint64_t a, uint64_t b, bool *maybe,
                      uint64_t *last_end)
{
    *maybe = true;
    *last_end = b;
    if (!r->ncov || a >= b)
        return 0;
    *maybe = false;
    for (size_t i = cover_of(r, b - 1) + 1; i-- > 0;) {
        uint64_t lo = r->cov_start[i];
        uint64_t hi = i + 1 < r->ncov ? r->cov_start[i + 1] : UINT64_MAX;
        if (hi <= a)
            break;
        bool yes;
        int rc = window_runs_a_break(r, i, &yes);
        if (rc || yes) {
            *maybe = true;
            *last_end = hi < b ? hi : b;
            return rc;
        }
        if (lo <= a)
            break;
    }
    return 0;
}

int rp_breaks_next_run(struct replay *r, uint64_t from, uint64_t *at)
{
    *at = from;
    if (!r->ncov)
        return 0;
    for (size_t i = cover_of(r, from); i < r->ncov; i++) {
        bool yes;
        int rc = window_runs_a_break(r, i, &yes);
        if (rc || yes) {
            *at = r->cov_start[i] > from ? r->cov_start[i] : from;
            return rc;
        }
    }
    *at = r->end > from ? r->end : from;
    return 0;
}

int rp_trace_load(struct replay *r)
{
    r->complete = store_is_complete(r->st);
    r->nev = store_event_count(r->st);
    r->win = malloc(RP_EVWIN * sizeof *r->win);
    if (!r->win)
        return -ENOMEM;
    r->win_first = UINT64_MAX;
    if (!store_index_complete(r->st, &r->end))
        return rp_fail(r, REPLAY_E_NOINDEX, "%s is not indexed", r->path);
    int rc = load_kinds(r);
    if (!rc)
        rc = load_positions(r);
    if (!rc)
        rc = load_snaps(r);
    if (!rc)
        rc = load_isnaps(r);
    if (!rc)
        rc = load_tail(r);
    if (!rc)
        rc = load_cover(r);
    if (!rc && !r->tail_known &&
        (r->nev > r->snaps[r->nsnaps - 1].event_index ||
         r->end > r->snaps[r->nsnaps - 1].icount))
        rc = rp_fail(r, REPLAY_E_NOINDEX, "%s: the index has no list of "
                     "the pages written after the last snapshot "
                     "(indexed by an older ttvm): index it again",
                     r->path);
    for (uint32_t k = 0; !rc && k < r->nsnaps; k++)
        if (r->snaps[k].icount == UINT64_MAX ||
            (k && r->snaps[k].icount < r->snaps[k - 1].icount))
            rc = rp_fail(r, STORE_E_CORRUPT, "trace corrupt: snapshot %u "
                         "has no valid position in the index", k);
    return rc;
}

void rp_trace_free(struct replay *r)
{
    if (r->snaps)
        for (uint32_t k = 0; k < r->nsnaps; k++)
            free(r->snaps[k].dirty);
    free(r->snaps);
    free(r->isnaps);
    free(r->tail);
    for (size_t i = 0; r->cov && i < r->ncov; i++)
        free(r->cov[i].code);
    free(r->cov);
    free(r->cov_start);
    r->cov = NULL;
    r->cov_start = NULL;
    r->ncov = 0;
    free(r->ev_icount);
    free(r->ev_kind);
    free(r->stops);
    free(r->win);
    r->snaps = NULL;
    r->isnaps = NULL;
    r->tail = NULL;
    r->ev_icount = NULL;
    r->ev_kind = NULL;
    r->stops = NULL;
    r->win = NULL;
}

/* ---- the machine ------------------------------------------------------- */

int rp_load_snapshot0(struct replay *r)
{
    const uint64_t *g;
    size_t n;
    int rc = rp_snap_dirty(r, 0, &g, &n);
    for (size_t i = 0; !rc && i < n; i++) {
        rc = store_page_read(r->st, 0, g[i], r->ram + g[i] * RP_PAGE);
        if (rc)
            rp_store_fail(r, rc, "loading snapshot 0");
    }
    if (!rc)
        vcpu_ram_changed(r->cpu, 0, r->ram_size);
    return rc;
}

int rp_machine_create(struct replay *r, bool load_ram)
{
    uint64_t mem = 0;
    void *cpuid = NULL;
    size_t cpuid_len = 0;
    int rc = store_meta_get_u64(r->st, "vm.mem_size", &mem);
    if (!rc)
        rc = store_meta_get(r->st, "vm.cpuid", &cpuid, &cpuid_len);
    if (!rc && cpuid_len != sizeof(struct vmm_cpuid))
        rc = STORE_E_CORRUPT;
    if (rc) {
        free(cpuid);
        return rp_store_fail(r, rc, "reading the machine description");
    }
    struct vmm_config cfg = {
        .mem_size = mem,
        .backend = r->engine ? r->engine : RP_ENGINE_UNICORN,
        .serial_out_fd = -1,
        .serial_in_fd = -1,
        .cpuid = cpuid,
    };
    rc = vmm_create(&cfg, &r->vm);
    free(cpuid);
    if (rc)
        return rp_fail(r, rc, "creating the replay machine (%llu MiB, %s): "
                       "%s", (unsigned long long)(mem >> 20), cfg.backend,
                       vmm_strerror(rc));
    r->cpu = vmm_vcpu(r->vm);
    r->ram = vmm_ram(r->vm);
    r->ram_size = vmm_ram_size(r->vm);
    r->npages = r->ram_size / RP_PAGE;
    vcpu_set_io(r->cpu, &rp_replay_io, r);
    return load_ram ? rp_load_snapshot0(r) : 0;
}
