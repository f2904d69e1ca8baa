/*
 * events.c — the event log: events packed column-wise into chunks of
 * STORE_CHUNK_EVENTS, keyed by the index of their first event (a multiple
 * of the chunk size, big-endian so key order is time order).
 *
 * Why columns and per-kind deltas: a recording is dominated by port-I/O
 * loops whose consecutive events repeat most of their 18 registers.  Each
 * field is stored as the zigzag varint of its difference from the same
 * field of the previous event *of the same kind* (the IN at the top of a
 * polling loop is compared with the previous IN, not with the OUT between
 * them), so an unchanged register is a 0 byte, RIP of a loop is 0, a
 * counter is a constant; storing all events' values of one field together
 * turns those into long runs that zstd reduces to almost nothing.
 *
 * The writer keeps the last, partial chunk in memory (ev_open); a commit
 * writes it under its key, and the next commit rewrites it with more events
 * until it is full, so chunks stay large however often commits happen.
 * Readers keep the last decoded chunk, so sequential reads decode each
 * chunk once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

#define NFIELDS (4 + STORE_NREGS) /* flags, aux, addr, value, regs */
#define EVENT_MAX_BYTES (2 + NFIELDS * VARINT_MAX)
#define CHUNK_MAX_RAW (STORE_CHUNK_EVENTS * EVENT_MAX_BYTES)

/* ---- codec ---- */

static uint64_t field_get(const struct store_event *e, int f)
{
    switch (f) {
    case 0:
        return e->flags;
    case 1:
        return e->aux;
    case 2:
        return e->addr;
    case 3:
        return e->value;
    default:
        return e->regs[f - 4];
    }
}

/* false when the value does not fit the field (only flags, aux). */
static bool field_set(struct store_event *e, int f, uint64_t v)
{
    switch (f) {
    case 0:
        e->flags = (uint16_t)v;
        return v <= UINT16_MAX;
    case 1:
        e->aux = (uint32_t)v;
        return v <= UINT32_MAX;
    case 2:
        e->addr = v;
        return true;
    case 3:
        e->value = v;
        return true;
    default:
        e->regs[f - 4] = v;
        return true;
    }
}

static uint64_t zigzag(uint64_t d)
{
    return (d << 1) ^ (uint64_t)((int64_t)d >> 63);
}

static uint64_t unzigzag(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

int chunk_encode(const struct store_event *ev, size_t n, struct buf *out)
{
    static const uint64_t zero[STORE_EV_KIND_MAX][NFIELDS];
    uint64_t(*pred)[NFIELDS] = malloc(sizeof zero);
    int rc = buf_reserve(out, n * EVENT_MAX_BYTES + 1);
    if (rc || !pred) {
        free(pred);
        return rc ? rc : -ENOMEM;
    }
    uint8_t *p = out->p;
    for (size_t i = 0; i < n; i++)
        *p++ = ev[i].kind;
    for (size_t i = 0; i < n; i++)
        *p++ = ev[i].size;
    memcpy(pred, zero, sizeof zero);
    for (int f = 0; f < NFIELDS; f++)
        for (size_t i = 0; i < n; i++) {
            uint64_t v = field_get(&ev[i], f);
            p += varint_put(p, zigzag(v - pred[ev[i].kind][f]));
            pred[ev[i].kind][f] = v;
        }
    out->len = (size_t)(p - out->p);
    free(pred);
    return 0;
}

/* -1 on malformed input (the caller names the chunk). */
int chunk_decode(const uint8_t *p, size_t len, size_t n,
                 struct store_event *out)
{
    static const uint64_t zero[STORE_EV_KIND_MAX][NFIELDS];
    const uint8_t *end = p + len;
    if (len < 2 * n)
        return -1;
    memset(out, 0, n * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        out[i].kind = *p++;
        if (out[i].kind == 0 || out[i].kind >= STORE_EV_KIND_MAX)
            return -1;
    }
    for (size_t i = 0; i < n; i++)
        out[i].size = *p++;
    uint64_t(*pred)[NFIELDS] = malloc(sizeof zero);
    if (!pred)
        return -ENOMEM;
    memcpy(pred, zero, sizeof zero);
    int rc = 0;
    for (int f = 0; f < NFIELDS && !rc; f++)
        for (size_t i = 0; i < n; i++) {
            uint64_t z, v;
            if (!varint_get(&p, end, &z)) {
                rc = -1;
                break;
            }
            v = pred[out[i].kind][f] + unzigzag(z);
            pred[out[i].kind][f] = v;
            if (!field_set(&out[i], f, v)) {
                rc = -1;
                break;
            }
        }
    free(pred);
    return rc ? rc : p == end ? 0 : -1;
}

/* ---- chunks in the trace ---- */

static int chunk_seal_put(struct store *st, uint64_t first,
                          const struct store_event *ev, size_t n)
{
    struct buf raw = {0};
    uint8_t key[8], *v;
    size_t vlen;
    be64_put(key, first);
    int rc = chunk_encode(ev, n, &raw);
    if (!rc)
        rc = val_seal(st, DB_EVENTS, key, 8, VT_CHUNK, (uint32_t)n, raw.p,
                      raw.len, st->level_other, &v, &vlen);
    buf_free(&raw);
    return rc ? rc : kv_put(st, DB_EVENTS, key, 8, v, vlen);
}

/* Count of the chunk now in st->vbuf under key k; 0 with *err set when it
 * is damaged. */
static uint32_t chunk_count(struct store *st, const uint8_t *key, int *err)
{
    uint32_t n = 0;
    uint64_t first = be64_get(key);
    int rc = val_check(st, DB_EVENTS, key, 8, st->vbuf.p, st->vbuf.len,
                       VT_CHUNK, &n);
    if (!rc && (n == 0 || n > STORE_CHUNK_EVENTS || first % STORE_CHUNK_EVENTS))
        rc = store_fail(st, STORE_E_CORRUPT,
                        "trace corrupt: events chunk at event %llu: bad "
                        "count %u",
                        (unsigned long long)first, n);
    *err = rc;
    return rc ? 0 : n;
}

/* The last chunk: its key and count (both 0 when there is none). */
static int last_chunk(struct store *st, uint64_t *first, uint32_t *n)
{
    uint8_t key[8];
    be64_put(key, UINT64_MAX);
    *first = 0;
    *n = 0;
    int rc = kv_seek_le(st, DB_EVENTS, key, 8);
    if (rc == STORE_E_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (st->kbuf.len != 8)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: bad key in events");
    *first = be64_get(st->kbuf.p);
    *n = chunk_count(st, st->kbuf.p, &rc);
    return rc;
}

uint64_t events_committed_count(struct store *st, int *err)
{
    uint64_t first;
    uint32_t n;
    *err = last_chunk(st, &first, &n);
    return first + n;
}

static int open_alloc(struct store *st)
{
    if (st->ev_open)
        return 0;
    st->ev_open = malloc(STORE_CHUNK_EVENTS * sizeof *st->ev_open);
    return st->ev_open ? 0 : -ENOMEM;
}

static int decode_into(struct store *st, uint64_t first, uint32_t n,
                       struct store_event *out)
{
    struct buf raw = {0};
    uint8_t key[8];
    be64_put(key, first);
    int rc = val_unseal(st, DB_EVENTS, key, 8, st->vbuf.p, st->vbuf.len,
                        VT_CHUNK, CHUNK_MAX_RAW, &raw, NULL);
    if (!rc && (rc = chunk_decode(raw.p, raw.len, n, out)))
        rc = rc == -ENOMEM ? rc
                           : store_fail(st, STORE_E_CORRUPT,
                                        "trace corrupt: events chunk at "
                                        "event %llu: bad encoding",
                                        (unsigned long long)first);
    buf_free(&raw);
    return rc;
}

/* Writer: continue the trace's last chunk if it is partial. */
int events_load(struct store *st)
{
    uint64_t first;
    uint32_t n;
    int rc = last_chunk(st, &first, &n);
    if (rc || (rc = open_alloc(st)))
        return rc;
    st->ev_first = first;
    st->ev_open_n = st->ev_open_done = 0;
    if (n == STORE_CHUNK_EVENTS) {
        st->ev_first = first + n;
    } else if (n) {
        if ((rc = decode_into(st, first, n, st->ev_open)))
            return rc;
        st->ev_open_n = st->ev_open_done = n;
    }
    return 0;
}

int events_flush(struct store *st)
{
    if (st->ev_open_n == st->ev_open_done)
        return 0;
    return chunk_seal_put(st, st->ev_first, st->ev_open, st->ev_open_n);
}

void events_committed(struct store *st)
{
    st->ev_open_done = st->ev_open_n;
}

void events_free(struct store *st)
{
    free(st->ev_open);
    free(st->cache);
    st->ev_open = st->cache = NULL;
}

/* ---- API ---- */

static int events_check(struct store *st, const struct store_event *ev,
                        size_t n)
{
    int rc = store__check_writable(st);
    if (rc)
        return rc;
    if (st->complete)
        return store_fail(st, STORE_E_ARG, "trace is marked complete");
    if (!ev && n)
        return store_fail(st, STORE_E_ARG, "events NULL");
    for (size_t i = 0; i < n; i++)
        if (ev[i].kind == 0 || ev[i].kind >= STORE_EV_KIND_MAX)
            return store_fail(st, STORE_E_ARG, "event %zu: bad kind %u", i,
                              ev[i].kind);
    return open_alloc(st);
}

int store_events_append(struct store *st, const struct store_event *ev,
                        size_t n)
{
    int rc = events_check(st, ev, n);
    for (size_t i = 0; i < n && !rc; i++) {
        st->ev_open[st->ev_open_n++] = ev[i];
        st->delta.by_kind[ev[i].kind]++;
        if (st->ev_open_n < STORE_CHUNK_EVENTS)
            continue;
        rc = chunk_seal_put(st, st->ev_first, st->ev_open, st->ev_open_n);
        if (rc) { /* keep the chunk whole: undo this event */
            st->ev_open_n--;
            st->delta.by_kind[ev[i].kind]--;
            break;
        }
        st->ev_first += STORE_CHUNK_EVENTS;
        st->ev_open_n = st->ev_open_done = 0;
    }
    return rc;
}

uint64_t store_event_count(struct store *st)
{
    int err;
    if (st->writable)
        return st->ev_first + st->ev_open_n;
    return events_committed_count(st, &err);
}

/* A chunk is missing or short: the end of the trace, or a hole in it. */
static int chunk_end_or_gap(struct store *st, uint64_t first)
{
    uint64_t last;
    uint32_t n;
    int rc = last_chunk(st, &last, &n);
    if (rc)
        return rc;
    if (last > first)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: events chunk at event %llu missing "
                          "or short",
                          (unsigned long long)first);
    return STORE_E_NOTFOUND;
}

/* Makes the cache hold the chunk containing event i. */
static int chunk_load(struct store *st, uint64_t i)
{
    uint64_t first = i - i % STORE_CHUNK_EVENTS;
    uint8_t key[8];
    int rc;
    if (!st->cache &&
        !(st->cache = malloc(STORE_CHUNK_EVENTS * sizeof *st->cache)))
        return -ENOMEM;
    be64_put(key, first);
    if ((rc = kv_get(st, DB_EVENTS, key, 8)) == STORE_E_NOTFOUND)
        return chunk_end_or_gap(st, first);
    if (rc)
        return rc;
    uint32_t n = chunk_count(st, key, &rc);
    if (rc)
        return rc;
    st->cache_first = UINT64_MAX;
    if ((rc = decode_into(st, first, n, st->cache)))
        return rc;
    st->cache_first = first;
    st->cache_n = n;
    return i < first + n ? 0 : chunk_end_or_gap(st, first);
}

/* Copies what one source holds from event i on; 0 when it holds none. */
static size_t copy_from(struct store_event *out, size_t want,
                        const struct store_event *src, uint64_t src_first,
                        size_t src_n, uint64_t i)
{
    if (i < src_first || i >= src_first + src_n)
        return 0;
    size_t k = src_first + src_n - i;
    if (k > want)
        k = want;
    memcpy(out, src + (i - src_first), k * sizeof *out);
    return k;
}

int store_events_read(struct store *st, uint64_t first, struct store_event *out,
                      size_t n, size_t *got)
{
    size_t done = 0;
    int rc = 0;
    if (!out && n)
        return store_fail(st, STORE_E_ARG, "events_read: out is NULL");
    while (done < n) {
        uint64_t i = first + done;
        size_t k = 0;
        if (st->writable && i >= st->ev_first) {
            k = copy_from(out + done, n - done, st->ev_open, st->ev_first,
                          st->ev_open_n, i);
            if (!k)
                break;
        } else if (!(k = copy_from(out + done, n - done, st->cache,
                                   st->cache_first, st->cache_n, i))) {
            if ((rc = chunk_load(st, i)))
                break;
            continue;
        }
        done += k;
    }
    if (got)
        *got = done;
    return rc == STORE_E_NOTFOUND ? 0 : rc;
}
