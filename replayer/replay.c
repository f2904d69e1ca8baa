/*
 * replay.c — a replay's lifecycle (open, index on first open, close), its
 * errors, and what it says about the recording around the position.
 * Moving is in travel.c, the state in state.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replayer/replayer_int.h"

static __thread char open_detail[2048];

const char *replay_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case REPLAY_E_DIVERGED:
        return "replay diverged from the recording";
    case REPLAY_E_RANGE:
        return "position outside the recording";
    case REPLAY_E_MEMORY:
        return "address not mapped to guest RAM";
    case REPLAY_E_PAGING:
        return "guest uses non-identity paging: no exact replay engine";
    case REPLAY_E_NOINDEX:
        return "trace is not indexed";
    case REPLAY_E_INTERRUPTED:
        return "interrupted";
    case REPLAY_E_ARG:
        return "invalid argument";
    case REPLAY_E_LIMIT:
        return "too many breakpoints or watchpoints";
    }
    if (err <= -5100 && err > -5200)
        return store_strerror(err);
    return vmm_strerror(err);
}

const char *replay_error_detail(const struct replay *r)
{
    return r ? r->detail : open_detail;
}

int replay_index(const char *trace, const struct replay_opts *o)
{
    int rc = rp_index_trace(trace, o, o && o->follow);
    snprintf(open_detail, sizeof open_detail, "%s", rp_index_detail());
    return rc;
}

/* Opens the trace read-only, indexing it first when it has no index. */
static int open_store(struct replay *r)
{
    const uint8_t *key = r->o.key;
    int rc = store_open(r->path, false, key, &r->st);
    if (rc)
        return rp_fail(r, rc, "%s", store_error_detail(NULL));
    if (store_index_complete(r->st, NULL))
        return 0;
    if (r->o.no_auto_index)
        return rp_fail(r, REPLAY_E_NOINDEX, "%s is not indexed (run `ttvm "
                       "index %s`)", r->path, r->path);
    store_close(r->st); /* LMDB: the writable handle must come first */
    r->st = NULL;
    rc = rp_index_trace(r->path, &r->o, false);
    if (rc)
        return rp_fail(r, rc, "indexing %s: %s", r->path, rp_index_detail());
    rc = store_open(r->path, false, key, &r->st);
    return rc ? rp_fail(r, rc, "%s", store_error_detail(NULL)) : 0;
}

/* The engine the index was made with (RP_META_ENGINE; none: unicorn). */
static int open_engine(struct replay *r)
{
    char *name = NULL;
    r->engine = RP_ENGINE_UNICORN;
    if (store_meta_get_str(r->st, RP_META_ENGINE, &name))
        return 0;
    int rc = 0;
    if (!strcmp(name, RP_ENGINE_KVMSTEP))
        r->engine = RP_ENGINE_KVMSTEP;
    else if (strcmp(name, RP_ENGINE_UNICORN))
        rc = rp_fail(r, REPLAY_E_NOINDEX, "%s was indexed with engine "
                     "'%.32s', which this ttvm does not have: index it "
                     "again", r->path, name);
    free(name);
    return rc;
}

static int open_setup(struct replay *r)
{
    int rc = open_store(r);
    if (!rc)
        rc = open_engine(r);
    if (!rc)
        rc = rp_machine_create(r, false);
    if (!rc)
        rc = rp_trace_load(r);
    if (!rc)
        rc = rp_load_snapshot0(r);
    if (!rc)
        rc = cp_pool_create(r->o.checkpoint_bytes, &r->pool);
    if (rc)
        return rc;
    r->seen = calloc(r->npages, sizeof *r->seen);
    if (!r->seen)
        return -ENOMEM;
    struct cp *c;
    if ((rc = rp_cp_of_snap(r, 0, &c)))
        return rc;
    r->pos = 0;
    r->ev_next = 0;
    return rp_restore_cp(r, c);
}

int replay_open(const char *trace, const struct replay_opts *o,
                struct replay **out)
{
    static const struct replay_opts defaults;
    *out = NULL;
    struct replay *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->o = o ? *o : defaults;
    r->path = strdup(trace ? trace : "");
    int rc = r->path ? 0 : -ENOMEM;
    if (!rc && r->o.key) {
        uint8_t *k = malloc(STORE_KEY_BYTES);
        if (!k)
            rc = -ENOMEM;
        else
            memcpy(k, r->o.key, STORE_KEY_BYTES);
        r->o.key = k;
    }
    if (!rc)
        rc = open_setup(r);
    if (rc) {
        snprintf(open_detail, sizeof open_detail, "%s", r->detail);
        replay_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void replay_close(struct replay *r)
{
    if (!r)
        return;
    if (r->vm)
        vmm_destroy(r->vm);
    store_close(r->st);
    cp_pool_destroy(r->pool);
    rp_trace_free(r);
    free(r->seen);
    free(r->user_gfns);
    free(r->user_pages);
    free(r->image);
    free(r->guest_name);
    free((void *)r->o.key);
    free(r->path);
    free(r);
}

uint64_t replay_icount(const struct replay *r)
{
    return r->pos;
}

uint64_t replay_end(const struct replay *r)
{
    return r->end;
}

const char *replay_engine(const struct replay *r)
{
    return r->engine ? r->engine : RP_ENGINE_UNICORN;
}

void replay_interrupt(struct replay *r)
{
    if (!atomic_load(&r->running))
        return;
    atomic_store(&r->intr, 1);
    vcpu_kick(r->cpu);
}

int replay_guest_image(struct replay *r, const void **img, size_t *len)
{
    if (!r->image) {
        int rc = store_image_get(r->st, &r->image, &r->image_len);
        if (rc)
            return rp_store_fail(r, rc, "reading the guest image");
    }
    *img = r->image;
    *len = r->image_len;
    return 0;
}

const char *replay_guest_name(struct replay *r)
{
    if (!r->guest_name && store_meta_get_str(r->st, "guest.name",
                                             &r->guest_name))
        r->guest_name = NULL;
    return r->guest_name && *r->guest_name ? r->guest_name : "guest";
}

/* ---- the recording around the position ------------------------------------ */

int replay_events(struct replay *r, uint64_t first, struct replay_event *ev,
                  size_t n, size_t *got)
{
    *got = 0;
    for (uint64_t i = first; i < r->nev && *got < n; i++) {
        int err;
        const struct store_event *e = rp_event(r, i, &err);
        if (!e)
            return err;
        ev[*got] = (struct replay_event){
            .index = i, .icount = r->ev_icount[i], .kind = e->kind,
            .aux = e->aux, .addr = e->addr, .value = e->value,
            .size = e->size};
        (*got)++;
    }
    return 0;
}

uint64_t replay_event_count(const struct replay *r)
{
    return r->nev;
}

uint64_t replay_next_event(const struct replay *r)
{
    return r->ev_next;
}

int replay_snapshots(struct replay *r, uint32_t first,
                     struct replay_snapshot *s, size_t n, size_t *got)
{
    *got = 0;
    for (uint32_t k = first; k < r->nsnaps && *got < n; k++) {
        s[*got] = (struct replay_snapshot){
            .id = k, .reason = r->snaps[k].reason,
            .icount = r->snaps[k].icount,
            .event_index = r->snaps[k].event_index,
            .npages = r->snaps[k].npages};
        (*got)++;
    }
    return 0;
}

uint32_t replay_snapshot_count(const struct replay *r)
{
    return r->nsnaps;
}
