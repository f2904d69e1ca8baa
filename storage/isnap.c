/*
 * isnap.c — index snapshots and the tail page list: what the replayer adds
 * to the index so that any position is a short replay away.
 *
 * A recorded run snapshots when the guest exits (or is kicked), which for a
 * guest computing in ring 3 is ~50 ms of native run apart: billions of
 * instructions for the replayer.  The indexer, which re-executes the whole
 * run anyway, drops an index snapshot every few tens of millions of
 * instructions: the CPU state and the pages that may have changed since
 * the recorded snapshot it extends (its base).  Four records under
 * 'x' be64 icount: 'c' CPU blob, 'h' page hashes, 'i' info, 'p' page list;
 * contents go to the shared page store, deduplicated with the snapshots'.
 * 'w' holds the pages written after the last recorded snapshot, which no
 * recorded page list covers.  FORMAT.md has the layouts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

#define XINFO_LEN 24u
#define XBLOB_MAX (1u << 20)
#define XPAGES_MAX (64u << 20) /* hashes or gfn varints of one list */

static const uint8_t tail_key[1] = {'w'};

static void x_key(uint8_t k[10], uint64_t icount, char part)
{
    k[0] = 'x';
    be64_put(k + 1, icount);
    k[9] = (uint8_t)part;
}

static int seal_put(struct store *st, const uint8_t *k, size_t klen,
                    uint8_t type, uint32_t count, const void *raw,
                    size_t rawlen, int level)
{
    uint8_t *v;
    size_t vlen;
    int rc = val_seal(st, DB_INDEX, k, klen, type, count, raw, rawlen, level,
                      &v, &vlen);
    return rc ? rc : kv_put(st, DB_INDEX, k, klen, v, vlen);
}

/* Unseals the record at k into out (STORE_E_NOTFOUND when absent). */
static int get_unseal(struct store *st, const uint8_t *k, size_t klen,
                      uint8_t type, size_t max, struct buf *out,
                      uint32_t *count)
{
    int rc = kv_get(st, DB_INDEX, k, klen);
    if (rc)
        return rc;
    return val_unseal(st, DB_INDEX, k, klen, st->vbuf.p, st->vbuf.len, type,
                      max, out, count);
}

static int list_put(struct store *st, const uint8_t *k, size_t klen,
                    const uint64_t *gfns, size_t n)
{
    struct buf raw = {0};
    int rc = snap_list_encode(gfns, n, &raw);
    if (!rc)
        rc = seal_put(st, k, klen, VT_PAGELIST, (uint32_t)n, raw.p, raw.len,
                      st->level_other);
    buf_free(&raw);
    return rc;
}

static int list_get(struct store *st, const uint8_t *k, size_t klen,
                    const char *what, uint64_t **gfns, size_t *n)
{
    struct buf raw = {0};
    uint32_t cnt = 0;
    int rc = get_unseal(st, k, klen, VT_PAGELIST, XPAGES_MAX, &raw, &cnt);
    uint64_t *g = NULL;
    if (!rc && cnt > raw.len)
        rc = store_fail(st, STORE_E_CORRUPT, "trace corrupt: %s page list "
                        "damaged", what);
    if (!rc && !(g = malloc((cnt ? cnt : 1) * sizeof *g)))
        rc = -ENOMEM;
    if (!rc)
        rc = snap_list_decode(st, what, &raw, cnt, g);
    buf_free(&raw);
    if (rc) {
        free(g);
        return rc;
    }
    *gfns = g;
    *n = cnt;
    return 0;
}

static int put_check(struct store *st, const struct store_isnap_info *info,
                     const void *cpu, size_t cpu_len, const uint64_t *gfns,
                     const void *pages, size_t n)
{
    int rc = store__check_writable(st);
    if (rc)
        return rc;
    if (!info || (!cpu && cpu_len) || cpu_len > XBLOB_MAX ||
        (n && (!gfns || !pages)) || n > UINT32_MAX)
        return store_fail(st, STORE_E_ARG, "bad index snapshot");
    for (size_t i = 0; i < n; i++)
        if (gfns[i] >= STORE_GFN_MAX || (i && gfns[i] <= gfns[i - 1]))
            return store_fail(st, STORE_E_ARG,
                              "index snapshot pages must be ascending "
                              "(gfn %#llx)",
                              (unsigned long long)gfns[i]);
    if (info->base >= store_snapshot_count(st))
        return store_fail(st, STORE_E_ARG, "index snapshot base %u: no such "
                          "snapshot", info->base);
    return 0;
}

/* Stores the contents; fills hashes (n * STORE_HASH_BYTES). */
static int put_contents(struct store *st, const uint8_t *pages, size_t n,
                        uint8_t *hashes, uint64_t *stored)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *pg = pages + i * STORE_PAGE_SIZE;
        uint8_t *h = hashes + i * STORE_HASH_BYTES;
        if (!snap_page_hash(st, pg, h))
            continue;
        int rc = snap_content_put(st, pg, h, stored);
        if (rc)
            return rc;
    }
    return 0;
}

int store_isnap_put(struct store *st, const struct store_isnap_info *info,
                    const void *cpu, size_t cpu_len, const uint64_t *gfns,
                    const void *pages, size_t n)
{
    int rc = put_check(st, info, cpu, cpu_len, gfns, pages, n);
    if (rc)
        return rc;
    uint8_t *hashes = malloc((n ? n : 1) * STORE_HASH_BYTES);
    if (!hashes)
        return -ENOMEM;
    uint64_t stored = 0;
    uint8_t k[10], raw[XINFO_LEN];
    rc = put_contents(st, pages, n, hashes, &stored);
    x_key(k, info->icount, 'h');
    if (!rc)
        rc = seal_put(st, k, 10, VT_HASHLIST, (uint32_t)n, hashes,
                      n * STORE_HASH_BYTES, 0);
    free(hashes);
    x_key(k, info->icount, 'c');
    if (!rc)
        rc = seal_put(st, k, 10, VT_CPU, 0, cpu ? cpu : "", cpu_len,
                      st->level_other);
    x_key(k, info->icount, 'p');
    if (!rc)
        rc = list_put(st, k, 10, gfns, n);
    le64_put(raw, info->event_index);
    le32_put(raw + 8, info->base);
    le32_put(raw + 12, (uint32_t)n);
    le64_put(raw + 16, stored);
    x_key(k, info->icount, 'i');
    if (!rc)
        rc = seal_put(st, k, 10, VT_MARK, 0, raw, XINFO_LEN, 0);
    if (st->isnap_cache_icount == info->icount)
        st->isnap_cache_n = SIZE_MAX; /* replaced: reload */
    return rc;
}

static int info_get(struct store *st, uint64_t icount,
                    struct store_isnap_info *info)
{
    uint8_t k[10];
    struct buf b = {0};
    x_key(k, icount, 'i');
    int rc = get_unseal(st, k, 10, VT_MARK, XINFO_LEN, &b, NULL);
    if (!rc && b.len != XINFO_LEN)
        rc = store_fail(st, STORE_E_CORRUPT, "trace corrupt: index snapshot "
                        "at %llu damaged", (unsigned long long)icount);
    if (!rc) {
        info->icount = icount;
        info->event_index = le64_get(b.p);
        info->base = le32_get(b.p + 8);
        info->npages = le32_get(b.p + 12);
    }
    buf_free(&b);
    if (rc == STORE_E_NOTFOUND)
        return store_fail(st, rc, "no index snapshot at %llu",
                          (unsigned long long)icount);
    return rc;
}

int store_isnap_at(struct store *st, uint64_t icount,
                   struct store_isnap_info *info)
{
    uint8_t k[10];
    x_key(k, icount, (char)0xff);
    int rc = kv_seek_le(st, DB_INDEX, k, 10);
    if (rc == 0 && (st->kbuf.len != 10 || st->kbuf.p[0] != 'x'))
        rc = STORE_E_NOTFOUND;
    if (rc == STORE_E_NOTFOUND)
        return store_fail(st, rc, "no index snapshot at or before %llu",
                          (unsigned long long)icount);
    if (rc)
        return rc;
    return info_get(st, be64_get(st->kbuf.p + 1), info);
}

int store_isnap_get(struct store *st, uint64_t icount,
                    struct store_isnap_info *info, void **cpu,
                    size_t *cpu_len, uint64_t **gfns, size_t *n)
{
    struct store_isnap_info tmp;
    uint8_t k[10];
    char what[48];
    int rc = info_get(st, icount, info ? info : &tmp);
    if (rc)
        return rc;
    snprintf(what, sizeof what, "index snapshot at %llu",
             (unsigned long long)icount);
    if (cpu) {
        struct buf b = {0};
        x_key(k, icount, 'c');
        rc = get_unseal(st, k, 10, VT_CPU, XBLOB_MAX, &b, NULL);
        if (rc == STORE_E_NOTFOUND)
            rc = store_fail(st, STORE_E_CORRUPT, "trace corrupt: %s: cpu "
                            "state missing", what);
        if (rc) {
            buf_free(&b);
            return rc;
        }
        *cpu = b.p;
        if (cpu_len)
            *cpu_len = b.len;
    }
    if (gfns) {
        x_key(k, icount, 'p');
        rc = list_get(st, k, 10, what, gfns, n);
        if (rc == STORE_E_NOTFOUND)
            rc = store_fail(st, STORE_E_CORRUPT, "trace corrupt: %s: page "
                            "list missing", what);
        if (rc && cpu) {
            free(*cpu);
            *cpu = NULL;
        }
    }
    return rc;
}

/* The page hashes of the index snapshot at icount, cached. */
static int hashes_load(struct store *st, uint64_t icount)
{
    if (st->isnap_cache_hashes && st->isnap_cache_icount == icount &&
        st->isnap_cache_n != SIZE_MAX)
        return 0;
    uint8_t k[10];
    struct buf b = {0};
    uint32_t cnt = 0;
    x_key(k, icount, 'h');
    int rc = get_unseal(st, k, 10, VT_HASHLIST, XPAGES_MAX, &b, &cnt);
    if (rc == STORE_E_NOTFOUND)
        rc = store_fail(st, STORE_E_CORRUPT, "trace corrupt: index snapshot "
                        "at %llu: page hashes missing",
                        (unsigned long long)icount);
    if (!rc && b.len != (size_t)cnt * STORE_HASH_BYTES)
        rc = store_fail(st, STORE_E_CORRUPT, "trace corrupt: index snapshot "
                        "at %llu: page hashes damaged",
                        (unsigned long long)icount);
    if (rc) {
        buf_free(&b);
        return rc;
    }
    free(st->isnap_cache_hashes);
    st->isnap_cache_hashes = b.p;
    st->isnap_cache_n = cnt;
    st->isnap_cache_icount = icount;
    return 0;
}

int store_isnap_page(struct store *st, uint64_t icount, size_t i, void *out)
{
    static const uint8_t zero[STORE_HASH_BYTES];
    if (!out)
        return store_fail(st, STORE_E_ARG, "bad index snapshot page read");
    int rc = hashes_load(st, icount);
    if (rc)
        return rc;
    if (i >= st->isnap_cache_n)
        return store_fail(st, STORE_E_ARG, "index snapshot at %llu has %zu "
                          "pages, not %zu", (unsigned long long)icount,
                          st->isnap_cache_n, i + 1);
    const uint8_t *h = st->isnap_cache_hashes + i * STORE_HASH_BYTES;
    if (!memcmp(h, zero, STORE_HASH_BYTES)) {
        memset(out, 0, STORE_PAGE_SIZE);
        return 0;
    }
    rc = snap_content_read(st, h, out);
    if (rc == STORE_E_NOTFOUND)
        rc = store_fail(st, STORE_E_CORRUPT, "trace corrupt: index snapshot "
                        "at %llu: page %zu content missing",
                        (unsigned long long)icount, i);
    return rc;
}

int store_isnap_clear(struct store *st)
{
    int rc = store__check_writable(st);
    uint64_t *at = NULL;
    size_t n = 0, cap = 0;
    uint8_t k[10];
    /* Collect first: kv.c merges pending puts into seeks, not deletes. */
    for (uint64_t top = UINT64_MAX; !rc;) {
        x_key(k, top, (char)0xff);
        rc = kv_seek_le(st, DB_INDEX, k, 10);
        if (rc || st->kbuf.len != 10 || st->kbuf.p[0] != 'x')
            break;
        uint64_t ic = be64_get(st->kbuf.p + 1);
        void *arr = at;
        if ((rc = array_grow(&arr, &cap, n, sizeof *at, 64)))
            break;
        at = arr;
        at[n++] = ic;
        if (ic == 0)
            break;
        top = ic - 1;
    }
    if (rc == STORE_E_NOTFOUND)
        rc = 0;
    static const char parts[] = "chip";
    for (size_t i = 0; !rc && i < n; i++)
        for (const char *p = parts; !rc && *p; p++) {
            x_key(k, at[i], *p);
            rc = kv_del(st, DB_INDEX, k, 10);
        }
    free(at);
    if (!rc && kv_get(st, DB_INDEX, tail_key, 1) == 0)
        rc = kv_del(st, DB_INDEX, tail_key, 1);
    st->isnap_cache_n = SIZE_MAX;
    return rc ? rc : store_commit(st);
}

int store_index_put_tail_pages(struct store *st, const uint64_t *gfns,
                               size_t n)
{
    int rc = store__check_writable(st);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (gfns[i] >= STORE_GFN_MAX || (i && gfns[i] <= gfns[i - 1]))
            return store_fail(st, STORE_E_ARG, "tail pages must be "
                              "ascending");
    return list_put(st, tail_key, 1, gfns, n);
}

int store_index_tail_pages(struct store *st, uint64_t **gfns, size_t *n)
{
    int rc = list_get(st, tail_key, 1, "index tail", gfns, n);
    if (rc == STORE_E_NOTFOUND)
        return store_fail(st, rc, "no tail page list in the index");
    return rc;
}

void isnap_free(struct store *st)
{
    free(st->isnap_cache_hashes);
    st->isnap_cache_hashes = NULL;
}
