/*
 * restore.c — moving RAM and the CPU to a restore point, and back from
 * the user's writes.
 *
 * What may differ between the current state and a checkpoint is known
 * from the trace, never by scanning RAM: re-execution is deterministic,
 * so between two positions only pages in the write sets of the intervals
 * spanned can have changed (replayer_int.h), plus the pages the user
 * wrote at this position (undone first).  Each such page is compared with
 * the checkpoint's content and copied only when it differs, and only
 * those are invalidated in Unicorn's translation cache.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replayer/replayer_int.h"

/* ---- the user's writes at this position --------------------------------- */

int rp_user_save_cpu(struct replay *r)
{
    if (r->user_mod)
        return 0;
    int rc = vcpu_get_state(r->cpu, &r->user_cpu);
    if (rc)
        return rp_fail(r, rc, "saving the state: %s", vmm_strerror(rc));
    r->user_mod = true;
    r->user_n = 0;
    return 0;
}

int rp_user_save_page(struct replay *r, uint64_t gfn)
{
    int rc = rp_user_save_cpu(r);
    if (rc)
        return rc;
    for (size_t i = 0; i < r->user_n; i++)
        if (r->user_gfns[i] == gfn)
            return 0;
    if (r->user_n == r->user_cap) {
        size_t cap = r->user_cap ? 2 * r->user_cap : 8;
        uint64_t *g = realloc(r->user_gfns, cap * sizeof *g);
        if (!g)
            return -ENOMEM;
        r->user_gfns = g;
        uint8_t *p = realloc(r->user_pages, cap * RP_PAGE);
        if (!p)
            return -ENOMEM;
        r->user_pages = p;
        r->user_cap = cap;
    }
    r->user_gfns[r->user_n] = gfn;
    memcpy(r->user_pages + r->user_n * RP_PAGE, r->ram + gfn * RP_PAGE,
           RP_PAGE);
    r->user_n++;
    return 0;
}

int rp_user_undo(struct replay *r)
{
    if (!r->user_mod)
        return 0;
    for (size_t i = 0; i < r->user_n; i++) {
        uint64_t g = r->user_gfns[i];
        memcpy(r->ram + g * RP_PAGE, r->user_pages + i * RP_PAGE, RP_PAGE);
        vcpu_ram_changed(r->cpu, g * RP_PAGE, RP_PAGE);
    }
    r->user_n = 0;
    r->user_mod = false;
    int rc = vcpu_set_state(r->cpu, &r->user_cpu);
    vcpu_set_icount(r->cpu, r->pos);
    if (rc)
        return rp_fail(r, rc, "putting the state back: %s", vmm_strerror(rc));
    return 0;
}

/* ---- pages that may differ ---------------------------------------------- */

/* Brings page g to its content at c: c's own copy, or as of the recorded
 * snapshot of c's interval. */
static int restore_page(struct replay *r, const struct cp *c, uint64_t g,
                        uint8_t *tmp)
{
    const uint8_t *want = cp_page(c, g);
    if (!want) {
        int rc = store_page_read(r->st, c->interval, g, tmp);
        if (rc)
            return rp_store_fail(r, rc, "reading a page to restore");
        want = tmp;
    }
    uint8_t *cur = r->ram + g * RP_PAGE;
    if (!memcmp(cur, want, RP_PAGE))
        return 0;
    memcpy(cur, want, RP_PAGE);
    vcpu_ram_changed(r->cpu, g * RP_PAGE, RP_PAGE);
    return 0;
}

/* Pages of interval k not yet seen in this restore. */
static int restore_interval(struct replay *r, const struct cp *c, uint32_t k,
                            uint8_t *tmp)
{
    const uint64_t *g;
    size_t n;
    bool known;
    int rc = rp_interval_pages(r, k, &g, &n, &known);
    if (rc)
        return rc;
    for (size_t i = 0; !rc && i < (known ? n : r->npages); i++) {
        uint64_t gfn = known ? g[i] : i;
        if (r->seen[gfn] == r->seen_gen)
            continue;
        r->seen[gfn] = r->seen_gen;
        rc = restore_page(r, c, gfn, tmp);
    }
    return rc;
}

static void next_generation(struct replay *r)
{
    if (++r->seen_gen == 0) { /* wrapped: forget every stamp */
        memset(r->seen, 0, r->npages * sizeof *r->seen);
        r->seen_gen = 1;
    }
}

int rp_restore_cp(struct replay *r, struct cp *c)
{
    int rc = rp_user_undo(r);
    if (rc)
        return rc;
    uint8_t *tmp = malloc(RP_PAGE);
    if (!tmp)
        return -ENOMEM;
    uint32_t a = rp_interval_of(r, r->pos), b = c->interval;
    if (a > b) {
        uint32_t t = a;
        a = b;
        b = t;
    }
    if (r->ram_unknown) { /* a restore failed half way: every write set */
        a = 0;
        b = r->nsnaps - 1;
    }
    r->ram_unknown = true;
    next_generation(r);
    for (uint32_t k = a; !rc && k <= b; k++)
        rc = restore_interval(r, c, k, tmp);
    free(tmp);
    if (rc)
        return rc;
    r->ram_unknown = false;
    rc = vcpu_set_state(r->cpu, &c->cpu);
    vcpu_set_icount(r->cpu, c->icount);
    r->pos = c->icount;
    r->ev_next = c->ev_next;
    r->watch_fired = r->watch_fired || r->armed_watch;
    if (rc == VMM_E_PAGING)
        return rp_fail(r, REPLAY_E_PAGING,
                       "the state at icount %llu uses non-identity paging, "
                       "which Unicorn 2.0.1 cannot execute",
                       (unsigned long long)c->icount);
    if (rc)
        return rp_fail(r, rc, "restoring the CPU state at icount %llu: %s",
                       (unsigned long long)c->icount, vmm_strerror(rc));
    return rp_normalize(r);
}

/* ---- checkpoints from the trace and from here ----------------------------- */

static int cpu_from_blob(struct replay *r, void *blob, size_t len,
                         struct vmm_cpu_state *s, const char *what)
{
    if (len != sizeof *s) {
        free(blob);
        return rp_fail(r, VMM_E_STATE, "%s: CPU state of %zu bytes, this "
                       "ttvm reads %zu", what, len, sizeof *s);
    }
    memcpy(s, blob, sizeof *s);
    free(blob);
    if (s->version != VMM_STATE_VERSION || s->size != sizeof *s)
        return rp_fail(r, VMM_E_STATE, "%s: CPU state version %u", what,
                       s->version);
    return 0;
}

/* A checkpoint of n pages read by get(ctx, i, buf). */
static int cp_from_trace(struct replay *r, uint64_t icount, uint64_t ev_next,
                         uint32_t interval, const struct vmm_cpu_state *s,
                         const uint64_t *gfns, size_t n,
                         int (*get)(struct replay *, void *, size_t, uint8_t *),
                         void *ctx, struct cp **out)
{
    uint8_t *pages = malloc((n ? n : 1) * RP_PAGE);
    if (!pages)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++)
        rc = get(r, ctx, i, pages + i * RP_PAGE);
    if (!rc)
        rc = cp_add(r->pool, icount, ev_next, interval, s, gfns, n, NULL,
                    pages, NULL, out);
    free(pages);
    return rc;
}

struct snap_src {
    uint32_t k;
    const uint64_t *gfns;
};

static int get_snap_page(struct replay *r, void *ctx, size_t i, uint8_t *buf)
{
    const struct snap_src *s = ctx;
    int rc = store_page_read(r->st, s->k, s->gfns[i], buf);
    return rc ? rp_store_fail(r, rc, "reading a snapshot page") : 0;
}

int rp_snap_cpu(struct replay *r, uint32_t k, struct vmm_cpu_state *s)
{
    void *blob = NULL;
    size_t len = 0;
    char what[48];
    snprintf(what, sizeof what, "snapshot %u", k);
    int rc = store_snapshot_get(r->st, k, NULL, &blob, &len, NULL, NULL);
    if (rc)
        return rp_store_fail(r, rc, what);
    return cpu_from_blob(r, blob, len, s, what);
}

int rp_cp_of_snap(struct replay *r, uint32_t k, struct cp **out)
{
    const struct rp_snap *sn = &r->snaps[k];
    struct cp *c = cp_find(r->pool, sn->icount);
    if (c) {
        cp_touch(r->pool, c);
        *out = c;
        return 0;
    }
    struct vmm_cpu_state s;
    int rc = rp_snap_cpu(r, k, &s);
    if (rc)
        return rc;
    const uint64_t *g;
    size_t n;
    bool known;
    if ((rc = rp_interval_pages(r, k, &g, &n, &known)))
        return rc;
    struct snap_src src = {k, g};
    /* The snapshot may precede interrupts due at its position: it is
     * kept as what it is, and rp_normalize delivers them. */
    return cp_from_trace(r, sn->icount, sn->event_index, k, &s, g,
                         known ? n : 0, get_snap_page, &src, out);
}

struct isnap_src {
    uint64_t icount;
};

static int get_isnap_page(struct replay *r, void *ctx, size_t i, uint8_t *buf)
{
    const struct isnap_src *s = ctx;
    int rc = store_isnap_page(r->st, s->icount, i, buf);
    return rc ? rp_store_fail(r, rc, "reading an index snapshot page") : 0;
}

int rp_cp_of_isnap(struct replay *r, size_t i, struct cp **out)
{
    const struct rp_isnap *x = &r->isnaps[i];
    struct cp *c = cp_find(r->pool, x->icount);
    if (c) {
        cp_touch(r->pool, c);
        *out = c;
        return 0;
    }
    void *blob = NULL;
    size_t len = 0, n = 0;
    uint64_t *g = NULL;
    struct vmm_cpu_state s;
    char what[64];
    snprintf(what, sizeof what, "index snapshot at %llu",
             (unsigned long long)x->icount);
    int rc = store_isnap_get(r->st, x->icount, NULL, &blob, &len, &g, &n);
    if (rc)
        return rp_store_fail(r, rc, what);
    rc = cpu_from_blob(r, blob, len, &s, what);
    for (size_t j = 0; !rc && j < n; j++)
        if (g[j] >= r->npages)
            rc = rp_fail(r, STORE_E_CORRUPT, "trace corrupt: %s: page "
                         "beyond RAM", what);
    struct isnap_src src = {x->icount};
    if (!rc)
        rc = cp_from_trace(r, x->icount, x->event_index, x->base, &s, g, n,
                           get_isnap_page, &src, out);
    free(g);
    return rc;
}

int rp_cp_here(struct replay *r, struct cp **out)
{
    struct vmm_cpu_state s;
    int rc = vcpu_get_state(r->cpu, &s);
    if (rc)
        return rp_fail(r, rc, "saving a checkpoint: %s", vmm_strerror(rc));
    uint32_t k = rp_interval_of(r, r->pos);
    const uint64_t *g;
    size_t n;
    bool known;
    if ((rc = rp_interval_pages(r, k, &g, &n, &known)))
        return rc;
    if (!known)
        return rp_fail(r, REPLAY_E_NOINDEX, "no write set for the interval "
                       "after snapshot %u", k);
    struct cp *like = cp_find_le(r->pool, r->pos);
    if (like && like->interval != k)
        like = NULL;
    return cp_add(r->pool, r->pos, r->ev_next, k, &s, g, n, r->ram, NULL,
                  like, out);
}
