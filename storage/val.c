/*
 * val.c — how one stored value looks on disk (FORMAT.md, "Values"): a
 * 16-byte envelope header, then the payload — zstd-compressed when that
 * helps — protected by a CRC-32C (plain traces) or sealed with
 * XChaCha20-Poly1305 (encrypted traces: compress first, then encrypt).
 * The check covers the database tag and the key too, so a value that a
 * damaged B-tree hands back under the wrong key is caught as well.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "storage/store_int.h"

/* ---- buffers and byte order ---- */

int buf_reserve(struct buf *b, size_t cap)
{
    if (cap <= b->cap)
        return 0;
    size_t n = b->cap ? b->cap : 256;
    while (n < cap)
        n *= 2;
    uint8_t *p = realloc(b->p, n);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = n;
    return 0;
}

int array_grow(void **arr, size_t *cap, size_t used, size_t elem, size_t first)
{
    if (used < *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : first;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

uint64_t be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void be32_put(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

uint32_t be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

void le64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

uint64_t le64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void le32_put(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

uint32_t le32_get(const uint8_t *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 |
           p[0];
}

size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

bool varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= end)
            return false;
        uint8_t b = *p++;
        if (shift == 63 && b > 1)
            return false; /* more than 64 bits */
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *v = r;
            return true;
        }
    }
    return false;
}

/* ---- CRC-32C (Castagnoli): SSE4.2 instruction when present ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[i] = c;
    }
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
}

__attribute__((target("sse4.2"))) static uint32_t
crc_hw_run(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    if (crc_hw)
        crc = crc_hw_run(crc, p, n);
    else
        while (n--)
            crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- naming values in error messages ---- */

static const char *const db_names[DB_COUNT] = {
    [DB_META] = "meta",       [DB_EVENTS] = "events", [DB_SNAPS] = "snapshots",
    [DB_PAGEVER] = "pagever", [DB_PAGES] = "pages",   [DB_INDEX] = "index",
};

const char *db_name(int db)
{
    return db >= 0 && db < DB_COUNT ? db_names[db] : "?";
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

/* "events chunk at event 4096", "page version (gfn 0x12, snapshot 3)"... */
static void key_desc(char *out, size_t cap, int db, const uint8_t *k,
                     size_t klen)
{
    char h[2 * KV_KEY_MAX + 1] = "";
    if (db == DB_EVENTS && klen == 8) {
        snprintf(out, cap, "events chunk at event %llu",
                 (unsigned long long)be64_get(k));
    } else if (db == DB_PAGEVER && klen == 12) {
        snprintf(out, cap, "page version (gfn %#llx, snapshot %u)",
                 (unsigned long long)be64_get(k), be32_get(k + 8));
    } else if (db == DB_SNAPS && klen == 6 && k[0] == 'S') {
        snprintf(out, cap, "snapshot %u %s", be32_get(k + 1),
                 k[5] == 'i'   ? "info"
                 : k[5] == 'c' ? "cpu state"
                 : k[5] == 'd' ? "device state"
                               : "page list");
    } else if (db == DB_META) {
        snprintf(out, cap, "metadata '%.*s'", (int)klen, (const char *)k);
    } else {
        hex(h, k, klen < KV_KEY_MAX ? klen : KV_KEY_MAX);
        snprintf(out, cap, "%s key %s", db_name(db), h);
    }
}

static int corrupt(struct store *st, int db, const uint8_t *k, size_t klen,
                   const char *what)
{
    char d[200];
    key_desc(d, sizeof d, db, k, klen);
    return store_fail(st, STORE_E_CORRUPT, "trace corrupt: %s: %s", d, what);
}

/* ---- checks ---- */

static uint32_t plain_check(int db, const void *key, size_t klen,
                            const uint8_t *hdr12, const void *payload,
                            size_t plen)
{
    uint8_t tag = (uint8_t)db;
    uint32_t c = crc32c(0, &tag, 1);
    c = crc32c(c, key, klen);
    c = crc32c(c, hdr12, 12);
    return crc32c(c, payload, plen);
}

/* AEAD additional data: db tag, key, header bytes 0..11. */
static size_t aead_ad(uint8_t *ad, int db, const void *key, size_t klen,
                      const uint8_t *hdr12)
{
    ad[0] = (uint8_t)db;
    memcpy(ad + 1, key, klen);
    memcpy(ad + 1 + klen, hdr12, 12);
    return 1 + klen + 12;
}

uint32_t val_small_check(struct store *st, int db, const void *key, size_t klen,
                         const void *v, size_t vlen)
{
    uint8_t tag = (uint8_t)db;
    if (!st->encrypted) {
        uint32_t c = crc32c(0, &tag, 1);
        c = crc32c(c, key, klen);
        return crc32c(c, v, vlen);
    }
    uint8_t m[1 + KV_KEY_MAX + 64], h[crypto_shorthash_BYTES];
    m[0] = tag;
    memcpy(m + 1, key, klen);
    memcpy(m + 1 + klen, v, vlen);
    crypto_shorthash(h, m, 1 + klen + vlen, st->mac_key);
    return le32_get(h);
}

void val_page_hash(struct store *st, const void *page,
                   uint8_t out[STORE_HASH_BYTES])
{
    crypto_generichash(out, STORE_HASH_BYTES, page, STORE_PAGE_SIZE,
                       st->encrypted ? st->hash_key : NULL,
                       st->encrypted ? sizeof st->hash_key : 0);
}

/* ---- seal ---- */

static int compress(struct store *st, const void *raw, size_t rawlen, int level,
                    const uint8_t **pl, size_t *plen)
{
    size_t bound = ZSTD_compressBound(rawlen);
    int rc = buf_reserve(&st->tmp, bound);
    if (rc)
        return rc;
    ZSTD_CCtx_reset(st->cctx, ZSTD_reset_session_only);
    ZSTD_CCtx_setParameter(st->cctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(st->cctx, ZSTD_c_checksumFlag, 1);
    size_t n = ZSTD_compress2(st->cctx, st->tmp.p, bound, raw, rawlen);
    if (ZSTD_isError(n))
        return store_fail(st, STORE_E_ARG, "zstd: %s", ZSTD_getErrorName(n));
    if (n >= rawlen)
        return 0; /* incompressible: store raw */
    *pl = st->tmp.p;
    *plen = n;
    return 1;
}

int val_seal(struct store *st, int db, const void *key, size_t klen,
             uint8_t type, uint32_t count, const void *raw, size_t rawlen,
             int level, uint8_t **out, size_t *outlen)
{
    const uint8_t *pl = raw;
    size_t plen = rawlen;
    int z = 0;
    if (rawlen > UINT32_MAX || klen > KV_KEY_MAX)
        return store_fail(st, STORE_E_ARG, "value too large");
    if (level != 0 && rawlen >= 32 &&
        (z = compress(st, raw, rawlen, level, &pl, &plen)) < 0)
        return z;
    size_t vlen = VAL_HDR + plen + (st->encrypted ? VAL_NONCE + VAL_TAG : 0);
    uint8_t *v = malloc(vlen);
    if (!v)
        return -ENOMEM;
    v[0] = type;
    v[1] = z == 1;
    v[2] = st->encrypted;
    v[3] = 0;
    le32_put(v + 4, count);
    le32_put(v + 8, (uint32_t)rawlen);
    if (!st->encrypted) {
        le32_put(v + 12, plain_check(db, key, klen, v, pl, plen));
        memcpy(v + VAL_HDR, pl, plen);
    } else {
        uint8_t ad[1 + KV_KEY_MAX + 12];
        size_t adlen = aead_ad(ad, db, key, klen, v);
        le32_put(v + 12, 0);
        randombytes_buf(v + VAL_HDR, VAL_NONCE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(
            v + VAL_HDR + VAL_NONCE, NULL, pl, plen, ad, adlen, NULL,
            v + VAL_HDR, st->aead_key);
    }
    *out = v;
    *outlen = vlen;
    return 0;
}

/* ---- unseal ---- */

/* Header fields and the check/tag; *pl, *plen = the decoded payload (may
 * point into val for plain traces). */
static int open_payload(struct store *st, int db, const uint8_t *key,
                        size_t klen, const uint8_t *val, size_t vlen,
                        uint8_t type, const uint8_t **pl, size_t *plen)
{
    if (vlen < VAL_HDR)
        return corrupt(st, db, key, klen, "value too short");
    if (val[0] != type)
        return corrupt(st, db, key, klen, "wrong value type");
    if (val[1] > 1 || val[3] != 0 || (val[2] & ~1u))
        return corrupt(st, db, key, klen, "bad value header");
    if (val[2] != st->encrypted)
        return corrupt(st, db, key, klen, "encryption flag mismatch");
    if (!st->encrypted) {
        *pl = val + VAL_HDR;
        *plen = vlen - VAL_HDR;
        if (le32_get(val + 12) != plain_check(db, key, klen, val, *pl, *plen))
            return corrupt(st, db, key, klen, "checksum mismatch");
        return 0;
    }
    if (vlen < VAL_HDR + VAL_NONCE + VAL_TAG)
        return corrupt(st, db, key, klen, "value too short");
    uint8_t ad[1 + KV_KEY_MAX + 12];
    size_t adlen = aead_ad(ad, db, key, klen, val);
    size_t clen = vlen - VAL_HDR - VAL_NONCE;
    int rc = buf_reserve(&st->tmp2, clen);
    if (rc)
        return rc;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            st->tmp2.p, NULL, NULL, val + VAL_HDR + VAL_NONCE, clen, ad, adlen,
            val + VAL_HDR, st->aead_key) != 0)
        return corrupt(st, db, key, klen, "authentication failed");
    *pl = st->tmp2.p;
    *plen = clen - VAL_TAG;
    return 0;
}

int val_check(struct store *st, int db, const void *key, size_t klen,
              const uint8_t *val, size_t vlen, uint8_t type, uint32_t *count)
{
    const uint8_t *pl;
    size_t plen;
    int rc = open_payload(st, db, key, klen, val, vlen, type, &pl, &plen);
    if (rc == 0 && count)
        *count = le32_get(val + 4);
    return rc;
}

int val_unseal(struct store *st, int db, const void *key, size_t klen,
               const uint8_t *val, size_t vlen, uint8_t type, size_t max_raw,
               struct buf *out, uint32_t *count)
{
    const uint8_t *pl;
    size_t plen;
    int rc = open_payload(st, db, key, klen, val, vlen, type, &pl, &plen);
    if (rc)
        return rc;
    size_t raw_len = le32_get(val + 8);
    if (raw_len > max_raw)
        return corrupt(st, db, key, klen, "implausible length");
    if ((rc = buf_reserve(out, raw_len ? raw_len : 1)))
        return rc;
    if (val[1] == 0) {
        if (plen != raw_len)
            return corrupt(st, db, key, klen, "length mismatch");
        memcpy(out->p, pl, plen);
    } else {
        unsigned long long fcs = ZSTD_getFrameContentSize(pl, plen);
        if (fcs != raw_len)
            return corrupt(st, db, key, klen, "bad zstd frame");
        size_t n = ZSTD_decompressDCtx(st->dctx, out->p, raw_len, pl, plen);
        if (ZSTD_isError(n) || n != raw_len)
            return corrupt(st, db, key, klen, "zstd decode failed");
    }
    out->len = raw_len;
    if (count)
        *count = le32_get(val + 4);
    return 0;
}
