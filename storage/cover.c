/*
 * cover.c — code coverage windows: which code ran in each stretch of the
 * recorded run, written by the indexer and read by the replayer.
 *
 * A search for a breakpoint (reverse-continue, continue) need not
 * re-execute a stretch of the run that never executed the breakpoint's
 * address.  The indexer, which re-executes everything once anyway, notes
 * the code that ran in windows of a few million instructions; a window is
 * keyed by its first position and lasts up to the next window's.  Its
 * value is the sorted, disjoint address ranges [addr, addr + len) of the
 * translation blocks that ran, as varint gaps and lengths.  FORMAT.md has
 * the layout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

#define COVER_RAW_MAX (64u << 20) /* bytes of one window's varints */

static void v_key(uint8_t k[9], uint64_t start)
{
    k[0] = 'v';
    be64_put(k + 1, start);
}

static int check_ranges(struct store *st, const struct store_code_range *c,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!c[i].len || c[i].addr + c[i].len < c[i].addr)
            return store_fail(st, STORE_E_ARG, "empty or wrapping code "
                              "range at %#llx",
                              (unsigned long long)c[i].addr);
        if (i && c[i].addr < c[i - 1].addr + c[i - 1].len)
            return store_fail(st, STORE_E_ARG, "code ranges must be "
                              "ascending and disjoint (%#llx)",
                              (unsigned long long)c[i].addr);
    }
    return n > UINT32_MAX ? store_fail(st, STORE_E_ARG, "too many ranges")
                          : 0;
}

int store_cover_put(struct store *st, uint64_t start,
                    const struct store_code_range *c, size_t n)
{
    int rc = store__check_writable(st);
    if (!rc)
        rc = check_ranges(st, c, n);
    if (rc)
        return rc;
    struct buf raw = {0};
    if (buf_reserve(&raw, n * 2 * VARINT_MAX + 1))
        return -ENOMEM;
    uint64_t prev_end = 0;
    for (size_t i = 0; i < n; i++) {
        raw.len += varint_put(raw.p + raw.len, c[i].addr - prev_end);
        raw.len += varint_put(raw.p + raw.len, c[i].len);
        prev_end = c[i].addr + c[i].len;
    }
    uint8_t k[9], *v;
    size_t vlen;
    v_key(k, start);
    rc = val_seal(st, DB_INDEX, k, sizeof k, VT_COVER, (uint32_t)n, raw.p,
                  raw.len, st->level_other, &v, &vlen);
    buf_free(&raw);
    return rc ? rc : kv_put(st, DB_INDEX, k, sizeof k, v, vlen);
}

int store_cover_windows(struct store *st, uint64_t **starts, size_t *n)
{
    uint64_t *at = NULL;
    size_t cnt = 0, cap = 0;
    uint8_t k[9];
    int rc = 0;
    /* From the top down, as LMDB seeks go here; reversed at the end. */
    for (uint64_t top = UINT64_MAX; !rc;) {
        v_key(k, top);
        rc = kv_seek_le(st, DB_INDEX, k, sizeof k);
        if (rc || st->kbuf.len != sizeof k || st->kbuf.p[0] != 'v')
            break;
        uint64_t s = be64_get(st->kbuf.p + 1);
        void *arr = at;
        if ((rc = array_grow(&arr, &cap, cnt, sizeof *at, 64)))
            break;
        at = arr;
        at[cnt++] = s;
        if (s == 0)
            break;
        top = s - 1;
    }
    if (rc == STORE_E_NOTFOUND)
        rc = 0;
    if (rc) {
        free(at);
        return rc;
    }
    for (size_t i = 0; i < cnt / 2; i++) {
        uint64_t t = at[i];
        at[i] = at[cnt - 1 - i];
        at[cnt - 1 - i] = t;
    }
    *starts = at;
    *n = cnt;
    return 0;
}

static int decode(struct store *st, const struct buf *raw, uint32_t cnt,
                  struct store_code_range *out)
{
    const uint8_t *p = raw->p, *end = raw->p + raw->len;
    uint64_t prev_end = 0;
    for (uint32_t i = 0; i < cnt; i++) {
        uint64_t gap, len;
        if (!varint_get(&p, end, &gap) || !varint_get(&p, end, &len) ||
            !len || len > UINT32_MAX || prev_end + gap < prev_end ||
            prev_end + gap + len < prev_end + gap)
            return store_fail(st, STORE_E_CORRUPT, "trace corrupt: code "
                              "coverage window damaged (range %u)", i);
        out[i].addr = prev_end + gap;
        out[i].len = (uint32_t)len;
        prev_end = out[i].addr + len;
    }
    return p == end ? 0
                    : store_fail(st, STORE_E_CORRUPT, "trace corrupt: code "
                                 "coverage window has trailing bytes");
}

int store_cover_get(struct store *st, uint64_t start,
                    struct store_code_range **out, size_t *n)
{
    uint8_t k[9];
    v_key(k, start);
    int rc = kv_get(st, DB_INDEX, k, sizeof k);
    if (rc)
        return rc;
    struct buf raw = {0};
    uint32_t cnt = 0;
    rc = val_unseal(st, DB_INDEX, k, sizeof k, st->vbuf.p, st->vbuf.len,
                    VT_COVER, COVER_RAW_MAX, &raw, &cnt);
    struct store_code_range *c = NULL;
    if (!rc && cnt > raw.len) /* every range takes at least two bytes */
        rc = store_fail(st, STORE_E_CORRUPT, "trace corrupt: code coverage "
                        "window count");
    if (!rc && !(c = malloc((cnt ? cnt : 1) * sizeof *c)))
        rc = -ENOMEM;
    if (!rc)
        rc = decode(st, &raw, cnt, c);
    buf_free(&raw);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    *n = cnt;
    return 0;
}

int store_cover_clear(struct store *st)
{
    int rc = store__check_writable(st);
    uint64_t *at = NULL;
    size_t n = 0;
    if (!rc)
        rc = store_cover_windows(st, &at, &n);
    uint8_t k[9];
    for (size_t i = 0; !rc && i < n; i++) {
        v_key(k, at[i]);
        rc = kv_del(st, DB_INDEX, k, sizeof k);
    }
    free(at);
    return rc;
}
