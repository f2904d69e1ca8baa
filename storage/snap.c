/*
 * snap.c — snapshots and guest pages.
 *
 * A snapshot is four records under 'S' id (info, cpu blob, device blob,
 * page list) plus an 'E' (event_index, id) key that answers "latest
 * snapshot at or before event N" with one seek.  Pages are stored twice
 * over: pagever maps (gfn, snapshot id) to a content hash, pages maps the
 * hash to the zstd-compressed content, so a page that reappears (in another
 * snapshot or at another gfn) is stored once.  Reading gfn as of snapshot K
 * is one MDB_SET_RANGE on (gfn, K) and at most one MDB_PREV, whatever the
 * number of snapshots.
 *
 * All-zero pages store no content.  A zero page also needs no version
 * unless an older non-zero version of that gfn exists (snapshot 0 never
 * does), since a gfn without a version reads as zeros.
 *
 * Snapshot cost is per page given: hash (BLAKE2b-128), one lookup, and for
 * new contents compression; nothing walks guest RAM or older snapshots.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

#define INFO_LEN 40u
#define PAGEVER_LEN (STORE_HASH_BYTES + 4)
#define BLOB_MAX (256u << 20)
#define PAGE_FLUSH_BYTES (64u << 20) /* bound on buffered page contents */

static void snap_key(uint8_t k[6], uint32_t id, char part)
{
    k[0] = 'S';
    be32_put(k + 1, id);
    k[5] = (uint8_t)part;
}

static void pagever_key(uint8_t k[12], uint64_t gfn, uint32_t id)
{
    be64_put(k, gfn);
    be32_put(k + 8, id);
}

static bool hash_is_zero(const uint8_t *h)
{
    static const uint8_t zero[STORE_HASH_BYTES];
    return !memcmp(h, zero, STORE_HASH_BYTES);
}

static bool page_is_zero(const void *page)
{
    const uint64_t *w = page;
    uint64_t acc = 0;
    for (size_t i = 0; i < STORE_PAGE_SIZE / 8; i++)
        acc |= w[i];
    return acc == 0;
}

/* ---- snapshot count ---- */

static int snap_refresh(struct store *st)
{
    uint8_t k[6];
    snap_key(k, UINT32_MAX, (char)0xff);
    int rc = kv_seek_le(st, DB_SNAPS, k, 6);
    if (rc == STORE_E_NOTFOUND) {
        st->snap_count = 0;
        return 0;
    }
    if (rc)
        return rc;
    if (st->kbuf.len != 6 || st->kbuf.p[0] != 'S' || st->kbuf.p[5] != 'p')
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: last snapshot record damaged");
    uint32_t id = be32_get(st->kbuf.p + 1);
    if (id == UINT32_MAX)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: bad snapshot id");
    st->snap_count = id + 1;
    return 0;
}

static int info_decode(struct store *st, uint32_t id,
                       struct store_snapshot_info *info)
{
    uint8_t k[6];
    struct buf b = {0};
    snap_key(k, id, 'i');
    int rc = kv_get(st, DB_SNAPS, k, 6);
    if (rc == STORE_E_NOTFOUND)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: snapshot %u info missing", id);
    if (rc || (rc = val_unseal(st, DB_SNAPS, k, 6, st->vbuf.p, st->vbuf.len,
                               VT_SNAPINFO, INFO_LEN, &b, NULL)))
        return rc;
    if (b.len != INFO_LEN || le32_get(b.p) != id) {
        buf_free(&b);
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: snapshot %u info damaged", id);
    }
    memset(info, 0, sizeof *info);
    info->id = id;
    info->reason = le32_get(b.p + 4);
    info->event_index = le64_get(b.p + 8);
    info->time_ns = le64_get(b.p + 16);
    info->npages = le32_get(b.p + 24);
    info->pause_us = le32_get(b.p + 28);
    info->stored_bytes = le64_get(b.p + 32);
    info->icount = UINT64_MAX;
    buf_free(&b);
    return 0;
}

int snap_load(struct store *st)
{
    struct store_snapshot_info info;
    int rc = snap_refresh(st);
    if (rc || !st->writable || st->snap_count == 0)
        return rc;
    if ((rc = info_decode(st, st->snap_count - 1, &info)))
        return rc;
    st->snap_last_ev = info.event_index;
    return 0;
}

static void build_free(struct store *st)
{
    if (!st->build)
        return;
    free(st->build->cpu_val);
    free(st->build->dev_val);
    free(st->build->pages);
    free(st->build);
    st->build = NULL;
}

void snap_free(struct store *st)
{
    build_free(st);
}

uint32_t store_snapshot_count(struct store *st)
{
    if (!st->writable)
        snap_refresh(st);
    return st->snap_count;
}

/* Readers see snapshots committed since they looked last. */
static int snap_exists(struct store *st, uint32_t id)
{
    int rc = 0;
    if (id >= st->snap_count && !st->writable)
        rc = snap_refresh(st);
    if (!rc && id >= st->snap_count)
        rc = store_fail(st, STORE_E_NOTFOUND,
                        "no snapshot %u (trace has "
                        "%u)",
                        id, st->snap_count);
    return rc;
}

/* ---- writing ---- */

static int begin_check(struct store *st, const struct store_snapshot_info *i)
{
    int rc = store__check_writable(st);
    if (rc)
        return rc;
    if (st->complete)
        return store_fail(st, STORE_E_ARG, "trace is marked complete");
    if (st->build)
        return store_fail(st, STORE_E_ARG, "snapshot %u not ended",
                          st->build->info.id);
    if (!i || i->id != st->snap_count || i->id == UINT32_MAX)
        return store_fail(st, STORE_E_ARG, "snapshot id must be %u",
                          st->snap_count);
    if (i->reason > STORE_SNAP_KICK)
        return store_fail(st, STORE_E_ARG, "bad snapshot reason %u", i->reason);
    if (i->event_index > store_event_count(st) ||
        (st->snap_count && i->event_index < st->snap_last_ev))
        return store_fail(st, STORE_E_ARG,
                          "snapshot event index %llu out "
                          "of order",
                          (unsigned long long)i->event_index);
    return 0;
}

static int seal_blob(struct store *st, uint32_t id, char part, uint8_t type,
                     const void *p, size_t len, uint8_t **v, size_t *vlen)
{
    uint8_t k[6];
    if (!p && len)
        return store_fail(st, STORE_E_ARG, "snapshot state blob is NULL");
    if (len > BLOB_MAX)
        return store_fail(st, STORE_E_ARG, "snapshot state blob too large");
    snap_key(k, id, part);
    return val_seal(st, DB_SNAPS, k, 6, type, 0, p ? p : "", len,
                    st->level_other, v, vlen);
}

int store_snapshot_begin(struct store *st,
                         const struct store_snapshot_info *info,
                         const void *cpu, size_t cpu_len, const void *dev,
                         size_t dev_len)
{
    int rc = begin_check(st, info);
    if (rc)
        return rc;
    struct snap_build *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    st->build = b;
    b->info = *info;
    if ((rc = seal_blob(st, info->id, 'c', VT_CPU, cpu, cpu_len, &b->cpu_val,
                        &b->cpu_len)) ||
        (rc = seal_blob(st, info->id, 'd', VT_DEV, dev, dev_len, &b->dev_val,
                        &b->dev_len)))
        build_free(st);
    return rc;
}

/* Does a zero page at gfn need a version (is the newest older one
 * non-zero)? */
static int zero_needs_version(struct store *st, uint64_t gfn, uint32_t id,
                              bool *need)
{
    uint8_t k[12];
    *need = false;
    if (id == 0)
        return 0;
    pagever_key(k, gfn, id - 1);
    int rc = kv_seek_le(st, DB_PAGEVER, k, 12);
    if (rc == STORE_E_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (st->kbuf.len == 12 && be64_get(st->kbuf.p) == gfn)
        *need = st->vbuf.len != PAGEVER_LEN || !hash_is_zero(st->vbuf.p);
    return 0;
}

int snap_content_put(struct store *st, const void *page,
                     const uint8_t *hash, uint64_t *stored_bytes)
{
    uint8_t *v;
    size_t vlen;
    int rc = kv_get(st, DB_PAGES, hash, STORE_HASH_BYTES);
    if (rc != STORE_E_NOTFOUND)
        return rc; /* 0: already there */
    if ((rc = val_seal(st, DB_PAGES, hash, STORE_HASH_BYTES, VT_PAGE, 0, page,
                       STORE_PAGE_SIZE, st->level_pages, &v, &vlen)) ||
        (rc = kv_put(st, DB_PAGES, hash, STORE_HASH_BYTES, v, vlen)))
        return rc;
    *stored_bytes += vlen;
    if (st->pend_page_bytes > PAGE_FLUSH_BYTES)
        return kv_commit(st, 1u << DB_PAGES); /* unreferenced until end */
    return 0;
}

bool snap_page_hash(struct store *st, const void *page,
                    uint8_t h[STORE_HASH_BYTES])
{
    if (page_is_zero(page)) {
        memset(h, 0, STORE_HASH_BYTES);
        return false;
    }
    val_page_hash(st, page, h);
    if (hash_is_zero(h))
        h[0] = 1; /* the zero hash means "zero page"; 2^-128 anyway */
    return true;
}

static int build_push(struct snap_build *b, uint64_t gfn, const uint8_t *h,
                      bool version)
{
    void *arr = b->pages;
    int rc = array_grow(&arr, &b->cap, b->npages, sizeof *b->pages, 256);
    b->pages = arr;
    if (rc)
        return rc;
    struct snap_page *p = &b->pages[b->npages++];
    p->gfn = gfn;
    p->version = version;
    memcpy(p->hash, h, STORE_HASH_BYTES);
    return 0;
}

int store_snapshot_page(struct store *st, uint64_t gfn, const void *page)
{
    uint8_t h[STORE_HASH_BYTES];
    struct snap_build *b = st->build;
    bool need = true;
    int rc;
    if (!b)
        return store_fail(st, STORE_E_ARG, "no snapshot begun");
    if (!page || gfn >= STORE_GFN_MAX)
        return store_fail(st, STORE_E_ARG, "bad page (gfn %#llx)",
                          (unsigned long long)gfn);
    if (!snap_page_hash(st, page, h)) {
        if ((rc = zero_needs_version(st, gfn, b->info.id, &need)))
            return rc;
        b->zero++;
        return build_push(b, gfn, h, need);
    }
    if ((rc = snap_content_put(st, page, h, &b->stored_bytes)))
        return rc;
    return build_push(b, gfn, h, true);
}

static int page_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct snap_page *)a)->gfn;
    uint64_t y = ((const struct snap_page *)b)->gfn;
    return (x > y) - (x < y);
}

static int put_versions(struct store *st, const struct snap_build *b)
{
    for (size_t i = 0; i < b->npages; i++) {
        const struct snap_page *p = &b->pages[i];
        uint8_t k[12], *v;
        if (!p->version)
            continue;
        if (!(v = malloc(PAGEVER_LEN)))
            return -ENOMEM;
        pagever_key(k, p->gfn, b->info.id);
        memcpy(v, p->hash, STORE_HASH_BYTES);
        le32_put(v + STORE_HASH_BYTES,
                 val_small_check(st, DB_PAGEVER, k, 12, v, STORE_HASH_BYTES));
        int rc = kv_put(st, DB_PAGEVER, k, 12, v, PAGEVER_LEN);
        if (rc)
            return rc;
    }
    return 0;
}

/* Page list: varint first gfn, then varint (gap - 1) for each next one. */
static int put_page_list(struct store *st, const struct snap_build *b)
{
    struct buf raw = {0};
    uint8_t k[6], *v;
    size_t vlen;
    int rc = buf_reserve(&raw, b->npages * VARINT_MAX + 1);
    if (rc)
        return rc;
    uint8_t *p = raw.p;
    for (size_t i = 0; i < b->npages; i++)
        p += varint_put(p, i ? b->pages[i].gfn - b->pages[i - 1].gfn - 1
                             : b->pages[0].gfn);
    snap_key(k, b->info.id, 'p');
    rc = val_seal(st, DB_SNAPS, k, 6, VT_PAGELIST, (uint32_t)b->npages, raw.p,
                  (size_t)(p - raw.p), st->level_other, &v, &vlen);
    buf_free(&raw);
    return rc ? rc : kv_put(st, DB_SNAPS, k, 6, v, vlen);
}

static int put_info(struct store *st, const struct snap_build *b)
{
    uint8_t raw[INFO_LEN] = {0}, k[13], *v;
    size_t vlen;
    le32_put(raw, b->info.id);
    le32_put(raw + 4, b->info.reason);
    le64_put(raw + 8, b->info.event_index);
    le64_put(raw + 16, b->info.time_ns);
    le32_put(raw + 24, (uint32_t)b->npages);
    le32_put(raw + 28, b->info.pause_us);
    le64_put(raw + 32, b->stored_bytes);
    snap_key(k, b->info.id, 'i');
    int rc = val_seal(st, DB_SNAPS, k, 6, VT_SNAPINFO, 0, raw, INFO_LEN, 0, &v,
                      &vlen);
    if (rc || (rc = kv_put(st, DB_SNAPS, k, 6, v, vlen)))
        return rc;
    k[0] = 'E';
    be64_put(k + 1, b->info.event_index);
    be32_put(k + 9, b->info.id);
    if ((rc = val_seal(st, DB_SNAPS, k, 13, VT_MARK, 0, "", 0, 0, &v, &vlen)))
        return rc;
    return kv_put(st, DB_SNAPS, k, 13, v, vlen);
}

static int put_blobs(struct store *st, struct snap_build *b)
{
    uint8_t k[6];
    snap_key(k, b->info.id, 'c');
    int rc = kv_put(st, DB_SNAPS, k, 6, b->cpu_val, b->cpu_len);
    b->cpu_val = NULL;
    if (rc)
        return rc;
    snap_key(k, b->info.id, 'd');
    rc = kv_put(st, DB_SNAPS, k, 6, b->dev_val, b->dev_len);
    b->dev_val = NULL;
    return rc;
}

static int end_check(struct store *st, struct snap_build *b)
{
    if (b->npages > UINT32_MAX)
        return store_fail(st, STORE_E_ARG, "too many pages in a snapshot");
    if (b->npages) /* qsort wants a non-NULL array */
        qsort(b->pages, b->npages, sizeof *b->pages, page_cmp);
    for (size_t i = 1; i < b->npages; i++)
        if (b->pages[i].gfn == b->pages[i - 1].gfn)
            return store_fail(st, STORE_E_ARG,
                              "snapshot %u: page %#llx "
                              "given twice",
                              b->info.id, (unsigned long long)b->pages[i].gfn);
    return 0;
}

/* The pending records of snapshot *arg (a failed end forgets them, so the
 * id can be begun again). */
static bool op_of_snapshot(const struct kv_op *o, void *arg)
{
    uint32_t id = *(const uint32_t *)arg;
    if (o->db == DB_PAGEVER)
        return o->klen == 12 && be32_get(o->key + 8) == id;
    if (o->db == DB_SNAPS && o->key[0] == 'S')
        return o->klen == 6 && be32_get(o->key + 1) == id;
    if (o->db == DB_SNAPS && o->key[0] == 'E')
        return o->klen == 13 && be32_get(o->key + 9) == id;
    return false;
}

int store_snapshot_end(struct store *st)
{
    struct snap_build *b = st->build;
    if (!b)
        return store_fail(st, STORE_E_ARG, "no snapshot begun");
    int rc = end_check(st, b);
    if (!rc && !(rc = put_versions(st, b)) && !(rc = put_page_list(st, b)) &&
        !(rc = put_info(st, b)))
        rc = put_blobs(st, b);
    if (rc) {
        uint32_t id = b->info.id;
        kv_drop_if(st, op_of_snapshot, &id);
        build_free(st);
        return rc;
    }
    st->delta.page_versions += b->npages;
    st->delta.zero_pages += b->zero;
    st->delta.page_bytes_raw += (b->npages - b->zero) * STORE_PAGE_SIZE;
    st->snap_count++;
    st->snap_last_ev = b->info.event_index;
    build_free(st);
    return store_commit(st);
}

/* ---- reading ---- */

static int blob_get(struct store *st, uint32_t id, char part, uint8_t type,
                    void **out, size_t *len)
{
    uint8_t k[6];
    struct buf b = {0};
    snap_key(k, id, part);
    int rc = kv_get(st, DB_SNAPS, k, 6);
    if (rc == STORE_E_NOTFOUND)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: snapshot %u "
                          "%s state missing",
                          id, part == 'c' ? "cpu" : "device");
    if (rc || (rc = val_unseal(st, DB_SNAPS, k, 6, st->vbuf.p, st->vbuf.len,
                               type, BLOB_MAX, &b, NULL))) {
        buf_free(&b);
        return rc;
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return 0;
}

int store_snapshot_get(struct store *st, uint32_t id,
                       struct store_snapshot_info *info, void **cpu,
                       size_t *cpu_len, void **dev, size_t *dev_len)
{
    struct store_snapshot_info tmp;
    int rc = snap_exists(st, id);
    if (rc || (rc = info_decode(st, id, info ? info : &tmp)))
        return rc;
    if (info && (rc = store__index_snapshot(st, id, &info->icount)))
        return rc;
    if (cpu && (rc = blob_get(st, id, 'c', VT_CPU, cpu, cpu_len)))
        return rc;
    if (dev && (rc = blob_get(st, id, 'd', VT_DEV, dev, dev_len))) {
        if (cpu) {
            free(*cpu);
            *cpu = NULL;
        }
        return rc;
    }
    return 0;
}

int store_snapshot_at_event(struct store *st, uint64_t ev, uint32_t *id)
{
    uint8_t k[13];
    k[0] = 'E';
    be64_put(k + 1, ev);
    be32_put(k + 9, UINT32_MAX);
    int rc = kv_seek_le(st, DB_SNAPS, k, 13);
    if (rc == 0 && (st->kbuf.len != 13 || st->kbuf.p[0] != 'E'))
        rc = STORE_E_NOTFOUND;
    if (rc == STORE_E_NOTFOUND)
        return store_fail(st, rc, "no snapshot at or before event %llu",
                          (unsigned long long)ev);
    if (rc || (rc = val_check(st, DB_SNAPS, st->kbuf.p, 13, st->vbuf.p,
                              st->vbuf.len, VT_MARK, NULL)))
        return rc;
    *id = be32_get(st->kbuf.p + 9);
    return 0;
}

int snap_list_decode(struct store *st, const char *what,
                     const struct buf *raw, uint32_t n, uint64_t *g)
{
    const uint8_t *p = raw->p, *end = raw->p + raw->len;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t d;
        if (!varint_get(&p, end, &d) ||
            (i && d >= STORE_GFN_MAX - g[i - 1] - 1) ||
            (!i && d >= STORE_GFN_MAX))
            return store_fail(st, STORE_E_CORRUPT,
                              "trace corrupt: %s page list damaged", what);
        g[i] = i ? g[i - 1] + d + 1 : d;
    }
    return p == end ? 0
                    : store_fail(st, STORE_E_CORRUPT,
                                 "trace corrupt: %s page list damaged", what);
}

int snap_list_encode(const uint64_t *g, size_t n, struct buf *raw)
{
    int rc = buf_reserve(raw, n * VARINT_MAX + 1);
    if (rc)
        return rc;
    uint8_t *p = raw->p;
    for (size_t i = 0; i < n; i++)
        p += varint_put(p, i ? g[i] - g[i - 1] - 1 : g[0]);
    raw->len = (size_t)(p - raw->p);
    return 0;
}

int store_snapshot_pages(struct store *st, uint32_t id, uint64_t **gfns,
                         size_t *n)
{
    uint8_t k[6];
    struct buf raw = {0};
    uint32_t cnt;
    int rc = snap_exists(st, id);
    snap_key(k, id, 'p');
    if (!rc && (rc = kv_get(st, DB_SNAPS, k, 6)) == STORE_E_NOTFOUND)
        rc = store_fail(st, STORE_E_CORRUPT,
                        "trace corrupt: snapshot %u "
                        "page list missing",
                        id);
    if (rc || (rc = val_unseal(st, DB_SNAPS, k, 6, st->vbuf.p, st->vbuf.len,
                               VT_PAGELIST, 64u << 20, &raw, &cnt))) {
        buf_free(&raw);
        return rc;
    }
    uint64_t *g = malloc((cnt ? cnt : 1) * sizeof *g);
    char what[32];
    snprintf(what, sizeof what, "snapshot %u", id);
    if (!g || (cnt > raw.len) ||
        (rc = snap_list_decode(st, what, &raw, cnt, g))) {
        free(g);
        buf_free(&raw);
        return rc  ? rc
               : g ? store_fail(st, STORE_E_CORRUPT,
                                "trace corrupt: "
                                "snapshot %u page list damaged",
                                id)
                   : -ENOMEM;
    }
    buf_free(&raw);
    *gfns = g;
    *n = cnt;
    return 0;
}

static bool pagever_ok(struct store *st, const struct buf *k,
                       const struct buf *v)
{
    return k->len == 12 && v->len == PAGEVER_LEN &&
           le32_get(v->p + STORE_HASH_BYTES) ==
               val_small_check(st, DB_PAGEVER, k->p, 12, v->p,
                               STORE_HASH_BYTES);
}

/* The version of gfn as of id: its hash in h, false if none (zeros).
 * Both entries the seek touched are checked, even when they belong to
 * other gfns: a damaged leaf (zeroed tail, altered key) then reads as
 * corrupt rather than silently as "no version", i.e. zeros. */
static int version_find(struct store *st, uint32_t id, uint64_t gfn,
                        uint8_t h[STORE_HASH_BYTES], bool *found)
{
    uint8_t k[12];
    pagever_key(k, gfn, id);
    *found = false;
    int rc = kv_seek_le_next(st, DB_PAGEVER, k, 12);
    if (rc && rc != STORE_E_NOTFOUND)
        return rc;
    if ((rc == 0 && !pagever_ok(st, &st->kbuf, &st->vbuf)) ||
        (st->has_next && !pagever_ok(st, &st->nkbuf, &st->nvbuf)))
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: page versions near gfn %#llx, "
                          "snapshot %u: checksum mismatch",
                          (unsigned long long)gfn, id);
    if (rc == STORE_E_NOTFOUND || be64_get(st->kbuf.p) != gfn)
        return 0;
    memcpy(h, st->vbuf.p, STORE_HASH_BYTES);
    *found = !hash_is_zero(h);
    return 0;
}

int store_page_read(struct store *st, uint32_t id, uint64_t gfn, void *out)
{
    uint8_t h[STORE_HASH_BYTES];
    bool found;
    if (!out || gfn >= STORE_GFN_MAX)
        return store_fail(st, STORE_E_ARG, "bad page read (gfn %#llx)",
                          (unsigned long long)gfn);
    int rc = snap_exists(st, id);
    if (rc || (rc = version_find(st, id, gfn, h, &found)))
        return rc;
    if (!found) {
        memset(out, 0, STORE_PAGE_SIZE);
        return 0;
    }
    rc = snap_content_read(st, h, out);
    if (rc == STORE_E_NOTFOUND)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: page %#llx "
                          "as of snapshot %u: content missing",
                          (unsigned long long)gfn, id);
    return rc;
}

int snap_content_read(struct store *st, const uint8_t *h, void *out)
{
    int rc = kv_get(st, DB_PAGES, h, STORE_HASH_BYTES);
    if (rc)
        return rc;
    struct buf b = {.p = out, .cap = STORE_PAGE_SIZE}; /* no realloc */
    if ((rc = val_unseal(st, DB_PAGES, h, STORE_HASH_BYTES, st->vbuf.p,
                         st->vbuf.len, VT_PAGE, STORE_PAGE_SIZE, &b, NULL)))
        return rc;
    if (b.len != STORE_PAGE_SIZE)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: page content %02x%02x... has %zu "
                          "bytes", h[0], h[1], b.len);
    return 0;
}
