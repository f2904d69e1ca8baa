/*
 * index.c — the instruction index: the position (icount) of every event and
 * snapshot, written by the replayer once it has re-executed the trace.
 *
 * Event positions are stored like events, in chunks of STORE_CHUNK_EVENTS
 * keyed 'e' + first event (varint deltas: positions never decrease), plus
 * an 'i' (first icount, first event) key per chunk so that "first event at
 * or after icount X" is one seek to the chunk and a binary search in it.
 * Snapshots get 's' id -> icount and 't' (icount, id) for "latest snapshot
 * at or before X".  store.index_end in meta marks the index complete.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

#define IX_MAX_RAW (STORE_CHUNK_EVENTS * VARINT_MAX)

static const char end_key[] = "store.index_end";

static void e_key(uint8_t k[9], uint64_t first)
{
    k[0] = 'e';
    be64_put(k + 1, first);
}

static void i_key(uint8_t k[17], uint64_t icount, uint64_t first)
{
    k[0] = 'i';
    be64_put(k + 1, icount);
    be64_put(k + 9, first);
}

static void s_key(uint8_t k[5], uint32_t id)
{
    k[0] = 's';
    be32_put(k + 1, id);
}

static void t_key(uint8_t k[13], uint64_t icount, uint32_t id)
{
    k[0] = 't';
    be64_put(k + 1, icount);
    be32_put(k + 9, id);
}

static int put_mark(struct store *st, const uint8_t *k, size_t klen,
                    const void *raw, size_t rawlen)
{
    uint8_t *v;
    size_t vlen;
    int rc =
        val_seal(st, DB_INDEX, k, klen, VT_MARK, 0, raw, rawlen, 0, &v, &vlen);
    return rc ? rc : kv_put(st, DB_INDEX, k, klen, v, vlen);
}

/* ---- chunks ---- */

static int ix_seal_put(struct store *st, uint64_t first, const uint64_t *ic,
                       size_t n)
{
    struct buf raw = {0};
    uint8_t k[17], *v;
    size_t vlen;
    int rc = buf_reserve(&raw, n * VARINT_MAX);
    if (rc)
        return rc;
    uint8_t *p = raw.p;
    for (size_t i = 0; i < n; i++)
        p += varint_put(p, i ? ic[i] - ic[i - 1] : ic[0]);
    e_key(k, first);
    rc = val_seal(st, DB_INDEX, k, 9, VT_IDXCHUNK, (uint32_t)n, raw.p,
                  (size_t)(p - raw.p), st->level_other, &v, &vlen);
    buf_free(&raw);
    if (rc || (rc = kv_put(st, DB_INDEX, k, 9, v, vlen)))
        return rc;
    i_key(k, ic[0], first);
    return put_mark(st, k, 17, "", 0);
}

/* Decodes the chunk now in st->vbuf (key 'e' first) into out. */
static int ix_decode(struct store *st, uint64_t first, uint64_t *out,
                     uint32_t *n)
{
    struct buf raw = {0};
    uint8_t k[9];
    e_key(k, first);
    int rc = val_unseal(st, DB_INDEX, k, 9, st->vbuf.p, st->vbuf.len,
                        VT_IDXCHUNK, IX_MAX_RAW, &raw, n);
    const uint8_t *p = raw.p, *end = raw.p + raw.len;
    bool ok = !rc && *n > 0 && *n <= STORE_CHUNK_EVENTS &&
              first % STORE_CHUNK_EVENTS == 0;
    for (uint32_t i = 0; ok && i < *n; i++) {
        uint64_t d;
        ok = varint_get(&p, end, &d) && (!i || out[i - 1] + d >= d);
        if (ok)
            out[i] = i ? out[i - 1] + d : d;
    }
    buf_free(&raw);
    if (rc)
        return rc;
    if (!ok || p != end)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: index chunk "
                          "at event %llu damaged",
                          (unsigned long long)first);
    return 0;
}

/* The last chunk: first event and count (0, 0 when the index is empty). */
static int ix_last_chunk(struct store *st, uint64_t *first, uint32_t *n)
{
    uint8_t k[9];
    e_key(k, UINT64_MAX);
    *first = 0;
    *n = 0;
    int rc = kv_seek_le(st, DB_INDEX, k, 9);
    if (rc == STORE_E_NOTFOUND ||
        (rc == 0 && (st->kbuf.len != 9 || st->kbuf.p[0] != 'e')))
        return 0;
    if (rc)
        return rc;
    *first = be64_get(st->kbuf.p + 1);
    rc = val_check(st, DB_INDEX, st->kbuf.p, 9, st->vbuf.p, st->vbuf.len,
                   VT_IDXCHUNK, n);
    if (!rc &&
        (*n == 0 || *n > STORE_CHUNK_EVENTS || *first % STORE_CHUNK_EVENTS))
        rc = store_fail(st, STORE_E_CORRUPT,
                        "trace corrupt: index chunk "
                        "at event %llu damaged",
                        (unsigned long long)*first);
    return rc;
}

static uint64_t ix_count(struct store *st, int *err)
{
    uint64_t first;
    uint32_t n;
    *err = 0;
    if (st->writable)
        return st->ix_first + st->ix_open_n;
    *err = ix_last_chunk(st, &first, &n);
    return first + n;
}

static int ix_alloc(struct store *st)
{
    if (!st->ix_open &&
        !(st->ix_open = malloc(STORE_CHUNK_EVENTS * sizeof *st->ix_open)))
        return -ENOMEM;
    if (!st->ix_cache &&
        !(st->ix_cache = malloc(STORE_CHUNK_EVENTS * sizeof *st->ix_cache)))
        return -ENOMEM;
    return 0;
}

/* The entries of the chunk starting at first: the writer's open chunk or
 * the decoded cache.  STORE_E_NOTFOUND when there is no such chunk. */
static int ix_chunk(struct store *st, uint64_t first, const uint64_t **ent,
                    size_t *n)
{
    uint8_t k[9];
    uint32_t cnt;
    int rc = ix_alloc(st);
    if (rc)
        return rc;
    if (st->writable && first == st->ix_first) {
        *ent = st->ix_open;
        *n = st->ix_open_n;
        return st->ix_open_n ? 0 : STORE_E_NOTFOUND;
    }
    if (st->ix_cache_first != first) {
        e_key(k, first);
        if ((rc = kv_get(st, DB_INDEX, k, 9)))
            return rc;
        st->ix_cache_first = UINT64_MAX;
        if ((rc = ix_decode(st, first, st->ix_cache, &cnt)))
            return rc;
        st->ix_cache_first = first;
        st->ix_cache_n = cnt;
    }
    *ent = st->ix_cache;
    *n = st->ix_cache_n;
    return 0;
}

int index_load(struct store *st)
{
    uint64_t first;
    uint32_t n;
    int rc = ix_last_chunk(st, &first, &n);
    if (rc || (rc = ix_alloc(st)))
        return rc;
    st->ix_first = first;
    st->ix_open_n = st->ix_open_done = 0;
    if (n == 0)
        return 0;
    if (n == STORE_CHUNK_EVENTS) {
        st->ix_first = first + n;
        const uint64_t *e;
        size_t cnt;
        if ((rc = ix_chunk(st, first, &e, &cnt)))
            return rc;
        st->ix_last = e[cnt - 1];
        return 0;
    }
    if ((rc = ix_decode(st, first, st->ix_open, &n)))
        return rc;
    st->ix_open_n = st->ix_open_done = n;
    st->ix_last = st->ix_open[n - 1];
    return 0;
}

int index_flush(struct store *st)
{
    if (!st->writable || st->ix_open_n == st->ix_open_done)
        return 0;
    return ix_seal_put(st, st->ix_first, st->ix_open, st->ix_open_n);
}

void index_committed(struct store *st)
{
    st->ix_open_done = st->ix_open_n;
}

void index_free(struct store *st)
{
    free(st->ix_open);
    free(st->ix_cache);
    st->ix_open = st->ix_cache = NULL;
}

/* ---- writing ---- */

/* Forgets positions from event `from` on (re-indexing): deletes the
 * chunks at and after it and keeps the head of its chunk in memory.  Commits
 * at once, so no delete is left pending (kv.c merges only puts into
 * seeks). */
static int ix_truncate(struct store *st, uint64_t from)
{
    int err;
    uint64_t k0 = from - from % STORE_CHUNK_EVENTS;
    uint64_t count = ix_count(st, &err);
    uint64_t *head = malloc(STORE_CHUNK_EVENTS * sizeof *head);
    size_t nhead = (size_t)(from - k0);
    int rc = head ? err : -ENOMEM;
    for (uint64_t c = k0; !rc && c < count; c += STORE_CHUNK_EVENTS) {
        const uint64_t *e;
        size_t n;
        uint8_t k[17];
        if ((rc = ix_chunk(st, c, &e, &n)))
            break;
        if (c == k0)
            memcpy(head, e, nhead * sizeof *head);
        i_key(k, e[0], c);
        if (!(rc = kv_del(st, DB_INDEX, k, 17))) {
            e_key(k, c);
            rc = kv_del(st, DB_INDEX, k, 9);
        }
    }
    if (!rc)
        rc = kv_del(st, DB_META, end_key, sizeof end_key - 1);
    if (!rc) {
        /* Nothing of the index in memory while the deletes commit. */
        st->ix_first = k0;
        st->ix_open_n = st->ix_open_done = 0;
        st->ix_cache_first = UINT64_MAX;
        rc = store_commit(st);
    }
    if (!rc) {
        memcpy(st->ix_open, head, nhead * sizeof *head);
        st->ix_open_n = nhead; /* rewritten at the next commit */
        if (nhead)
            st->ix_last = head[nhead - 1];
        else if (from)
            rc = store_index_get(st, from - 1, &st->ix_last);
    }
    free(head);
    return rc;
}

static int put_check(struct store *st, uint64_t first, const uint64_t *ic,
                     size_t n)
{
    int rc = store__check_writable(st);
    if (rc || (rc = ix_alloc(st)))
        return rc;
    uint64_t count = st->ix_first + st->ix_open_n;
    if (!ic && n)
        return store_fail(st, STORE_E_ARG, "index positions NULL");
    if (first > count)
        return store_fail(st, STORE_E_ARG,
                          "index positions from event %llu "
                          "leave a gap (index has %llu)",
                          (unsigned long long)first, (unsigned long long)count);
    if (first + n > store_event_count(st))
        return store_fail(st, STORE_E_ARG,
                          "index positions past the last "
                          "event");
    for (size_t i = 1; i < n; i++)
        if (ic[i] < ic[i - 1])
            return store_fail(st, STORE_E_ARG,
                              "positions decrease at event "
                              "%llu",
                              (unsigned long long)(first + i));
    return first < count ? ix_truncate(st, first) : 0;
}

int store_index_put_events(struct store *st, uint64_t first,
                           const uint64_t *icount, size_t n)
{
    int rc = put_check(st, first, icount, n);
    if (rc || n == 0)
        return rc;
    if ((st->ix_first + st->ix_open_n) && icount[0] < st->ix_last)
        return store_fail(st, STORE_E_ARG,
                          "positions decrease at event "
                          "%llu",
                          (unsigned long long)first);
    for (size_t i = 0; i < n; i++) {
        st->ix_open[st->ix_open_n++] = icount[i];
        st->ix_last = icount[i];
        if (st->ix_open_n < STORE_CHUNK_EVENTS)
            continue;
        if ((rc = ix_seal_put(st, st->ix_first, st->ix_open, st->ix_open_n)))
            return rc;
        st->ix_first += STORE_CHUNK_EVENTS;
        st->ix_open_n = st->ix_open_done = 0;
    }
    return 0;
}

int store__index_snapshot(struct store *st, uint32_t id, uint64_t *icount)
{
    uint8_t k[5];
    struct buf b = {0};
    s_key(k, id);
    *icount = UINT64_MAX;
    int rc = kv_get(st, DB_INDEX, k, 5);
    if (rc == STORE_E_NOTFOUND && store_index_complete(st, NULL))
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: index of "
                          "snapshot %u missing",
                          id);
    if (rc == STORE_E_NOTFOUND)
        return 0;
    if (rc || (rc = val_unseal(st, DB_INDEX, k, 5, st->vbuf.p, st->vbuf.len,
                               VT_MARK, 8, &b, NULL)))
        return rc;
    if (b.len == 8)
        *icount = le64_get(b.p);
    else
        rc = store_fail(st, STORE_E_CORRUPT,
                        "trace corrupt: index of "
                        "snapshot %u damaged",
                        id);
    buf_free(&b);
    return rc;
}

int store_index_put_snapshot(struct store *st, uint32_t id, uint64_t icount)
{
    uint8_t k[13], raw[8];
    uint64_t old;
    int rc = store__check_writable(st);
    if (rc)
        return rc;
    if (id >= store_snapshot_count(st))
        return store_fail(st, STORE_E_NOTFOUND, "no snapshot %u", id);
    if (icount == UINT64_MAX)
        return store_fail(st, STORE_E_ARG, "bad position");
    if ((rc = store__index_snapshot(st, id, &old)))
        return rc;
    if (old == icount)
        return 0;
    if (old != UINT64_MAX) { /* re-indexed elsewhere: drop the old key */
        t_key(k, old, id);
        if ((rc = kv_del(st, DB_INDEX, k, 13)) || (rc = store_commit(st)))
            return rc;
    }
    s_key(k, id);
    le64_put(raw, icount);
    if ((rc = put_mark(st, k, 5, raw, 8)))
        return rc;
    t_key(k, icount, id);
    return put_mark(st, k, 13, "", 0);
}

int store_index_finish(struct store *st, uint64_t end_icount)
{
    uint8_t raw[8], *v;
    size_t vlen;
    int rc = store__check_writable(st);
    if (rc)
        return rc;
    uint64_t count = st->ix_first + st->ix_open_n;
    if (count != store_event_count(st))
        return store_fail(st, STORE_E_ARG,
                          "index covers %llu of %llu "
                          "events",
                          (unsigned long long)count,
                          (unsigned long long)store_event_count(st));
    if (count && end_icount < st->ix_last)
        return store_fail(st, STORE_E_ARG,
                          "end position before the last "
                          "event");
    le64_put(raw, end_icount);
    if ((rc = val_seal(st, DB_META, end_key, sizeof end_key - 1, VT_META, 0,
                       raw, 8, 0, &v, &vlen)) ||
        (rc = kv_put(st, DB_META, end_key, sizeof end_key - 1, v, vlen)))
        return rc;
    return store_commit(st);
}

bool store_index_complete(struct store *st, uint64_t *end_icount)
{
    struct buf b = {0};
    bool ok = kv_get(st, DB_META, end_key, sizeof end_key - 1) == 0 &&
              val_unseal(st, DB_META, end_key, sizeof end_key - 1, st->vbuf.p,
                         st->vbuf.len, VT_META, 8, &b, NULL) == 0 &&
              b.len == 8;
    if (ok && end_icount)
        *end_icount = le64_get(b.p);
    buf_free(&b);
    return ok;
}

/* ---- reading ---- */

int store_index_get(struct store *st, uint64_t ev, uint64_t *icount)
{
    const uint64_t *e;
    size_t n;
    int err;
    uint64_t first = ev - ev % STORE_CHUNK_EVENTS;
    int rc = ix_chunk(st, first, &e, &n);
    if (rc == STORE_E_NOTFOUND || (rc == 0 && ev >= first + n)) {
        uint64_t count = ix_count(st, &err);
        if (err)
            return err;
        if (ev < count)
            return store_fail(st, STORE_E_CORRUPT,
                              "trace corrupt: index "
                              "chunk at event %llu missing",
                              (unsigned long long)first);
        return store_fail(st, STORE_E_NOTFOUND, "event %llu not indexed",
                          (unsigned long long)ev);
    }
    if (rc)
        return rc;
    *icount = e[ev - first];
    return 0;
}

/* First chunk whose first position is < x: its first event in *first;
 * false when none is. */
static int chunk_before(struct store *st, uint64_t x, uint64_t *first,
                        bool *found)
{
    uint8_t k[17];
    *found = false;
    if (x == 0)
        return 0;
    if (st->writable && st->ix_open_n && st->ix_open[0] < x) {
        *first = st->ix_first; /* the newest chunk wins */
        *found = true;
        return 0;
    }
    i_key(k, x - 1, UINT64_MAX);
    int rc = kv_seek_le(st, DB_INDEX, k, 17);
    if (rc == STORE_E_NOTFOUND ||
        (rc == 0 && (st->kbuf.len != 17 || st->kbuf.p[0] != 'i')))
        return 0;
    if (rc || (rc = val_check(st, DB_INDEX, st->kbuf.p, 17, st->vbuf.p,
                              st->vbuf.len, VT_MARK, NULL)))
        return rc;
    *first = be64_get(st->kbuf.p + 9);
    *found = true;
    return 0;
}

int store_index_event_at(struct store *st, uint64_t icount, uint64_t *ev)
{
    const uint64_t *e;
    size_t n, lo = 0, hi;
    uint64_t first;
    bool found;
    int err;
    uint64_t count = ix_count(st, &err);
    if (err)
        return err;
    if (count == 0)
        return store_fail(st, STORE_E_NOTFOUND, "trace not indexed");
    int rc = chunk_before(st, icount, &first, &found);
    if (rc || !found) {
        *ev = 0;
        return rc;
    }
    if ((rc = ix_chunk(st, first, &e, &n)))
        return rc == STORE_E_NOTFOUND
                   ? store_fail(st, STORE_E_CORRUPT,
                                "trace corrupt: index "
                                "chunk at event %llu missing",
                                (unsigned long long)first)
                   : rc;
    for (hi = n; lo < hi;) { /* first entry >= icount */
        size_t mid = lo + (hi - lo) / 2;
        if (e[mid] < icount)
            lo = mid + 1;
        else
            hi = mid;
    }
    *ev = first + lo;
    return 0;
}

int store_snapshot_at_icount(struct store *st, uint64_t icount, uint32_t *id)
{
    uint8_t k[13];
    t_key(k, icount, UINT32_MAX);
    int rc = kv_seek_le(st, DB_INDEX, k, 13);
    if (rc == 0 && (st->kbuf.len != 13 || st->kbuf.p[0] != 't'))
        rc = STORE_E_NOTFOUND;
    if (rc == STORE_E_NOTFOUND)
        return store_fail(st, rc,
                          "no indexed snapshot at or before "
                          "position %llu",
                          (unsigned long long)icount);
    if (rc || (rc = val_check(st, DB_INDEX, st->kbuf.p, 13, st->vbuf.p,
                              st->vbuf.len, VT_MARK, NULL)))
        return rc;
    *id = be32_get(st->kbuf.p + 9);
    return 0;
}
