/*
 * store.c — the trace's lifecycle (create, open, commit, close), the
 * format record that identifies a trace, metadata, the embedded guest
 * image, the completion mark and statistics.  Events, snapshots and the
 * index live in events.c, snap.c and index.c.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "storage/store_int.h"

#define FORMAT_LEN 92u
#define HASH_BLAKE2B_128 1u
#define IMAGE_MAX (1u << 30)
#define META_VALUE_MAX (1u << 30)

static const char format_key[] = "store.format";
static const char complete_key[] = "store.complete";
static const char image_key[] = "store.image";
static const char image_hash_key[] = "store.image_sha256";
static const char stats_key[] = "store.stats";

/* ---- errors ---- */

static __thread char open_detail[320];

const char *store_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case STORE_E_EXISTS:
        return "trace already exists";
    case STORE_E_NOTTRACE:
        return "not a ttvm trace";
    case STORE_E_VERSION:
        return "unsupported trace format version";
    case STORE_E_CORRUPT:
        return "trace is corrupt";
    case STORE_E_HASH:
        return "embedded guest image does not match its hash";
    case STORE_E_NOTFOUND:
        return "not found in the trace";
    case STORE_E_LMDB:
        return "LMDB error";
    case STORE_E_KEY:
        return "encryption key missing or wrong";
    case STORE_E_FULL:
        return "trace map size exhausted";
    case STORE_E_READONLY:
        return "trace is open read-only";
    case STORE_E_ARG:
        return "invalid argument";
    default:
        return err < 0 ? strerror(-err) : "unknown error";
    }
}

int store_fail(struct store *st, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->detail, sizeof st->detail, fmt, ap);
    va_end(ap);
    return err;
}

void store_fail_open(int err, const char *fmt, ...)
{
    va_list ap;
    (void)err;
    va_start(ap, fmt);
    vsnprintf(open_detail, sizeof open_detail, fmt, ap);
    va_end(ap);
}

const char *store_error_detail(const struct store *st)
{
    return st ? st->detail : open_detail;
}

/* ---- allocation ---- */

static struct store *store_alloc(const char *path)
{
    struct store *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->path = strdup(path);
    st->cctx = ZSTD_createCCtx();
    st->dctx = ZSTD_createDCtx();
    st->level_pages = 1;
    st->level_other = 3;
    st->cache_first = UINT64_MAX;
    st->ix_cache_first = UINT64_MAX;
    if (!st->path || !st->cctx || !st->dctx) {
        free(st->path);
        ZSTD_freeCCtx(st->cctx);
        ZSTD_freeDCtx(st->dctx);
        free(st);
        return NULL;
    }
    return st;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    snap_free(st);
    events_free(st);
    index_free(st);
    isnap_free(st);
    kv_pending_free(st);
    kv_env_close(st);
    buf_free(&st->vbuf);
    buf_free(&st->kbuf);
    buf_free(&st->tmp);
    buf_free(&st->tmp2);
    buf_free(&st->nkbuf);
    buf_free(&st->nvbuf);
    ZSTD_freeCCtx(st->cctx);
    ZSTD_freeDCtx(st->dctx);
    sodium_memzero(st->aead_key, sizeof st->aead_key);
    sodium_memzero(st->hash_key, sizeof st->hash_key);
    sodium_memzero(st->mac_key, sizeof st->mac_key);
    free(st->path);
    free(st);
}

/* Failed create/open: keep the detail for store_error_detail(NULL). */
static int open_failed(struct store *st, int rc)
{
    if (st) {
        if (!st->detail[0])
            store_fail(st, rc, "%s: %s", st->path, store_strerror(rc));
        store_fail_open(rc, "%s", st->detail);
        store_close(st);
    }
    return rc;
}

/* ---- keys ---- */

/* subkey = BLAKE2b-256(key = master, message = label || salt) */
static void derive(uint8_t out[32], const uint8_t *master, const char *label,
                   const uint8_t salt[16])
{
    crypto_generichash_state s;
    crypto_generichash_init(&s, master, STORE_KEY_BYTES, 32);
    crypto_generichash_update(&s, (const uint8_t *)label, strlen(label));
    crypto_generichash_update(&s, salt, 16);
    crypto_generichash_final(&s, out, 32);
}

static void derive_keys(struct store *st, const uint8_t *master,
                        const uint8_t salt[16], uint8_t check[32])
{
    uint8_t mac[32];
    derive(st->aead_key, master, "ttvm.aead", salt);
    derive(st->hash_key, master, "ttvm.hash", salt);
    derive(mac, master, "ttvm.mac", salt);
    memcpy(st->mac_key, mac, sizeof st->mac_key);
    derive(check, master, "ttvm.check", salt);
    sodium_memzero(mac, sizeof mac);
    st->encrypted = true;
}

/* ---- the format record ---- */

static void format_encode(uint8_t f[FORMAT_LEN], bool encrypted,
                          const uint8_t salt[16], const uint8_t check[32])
{
    memset(f, 0, FORMAT_LEN);
    memcpy(f, STORE_MAGIC, 8);
    le32_put(f + 8, STORE_FORMAT_VERSION);
    le32_put(f + 12, FORMAT_LEN);
    le32_put(f + 16, encrypted ? 1 : 0);
    le32_put(f + 20, STORE_PAGE_SIZE);
    le32_put(f + 24, STORE_NREGS);
    le32_put(f + 28, STORE_CHUNK_EVENTS);
    le32_put(f + 32, HASH_BLAKE2B_128);
    memcpy(f + 40, salt, 16);
    if (check)
        memcpy(f + 56, check, 32);
    le32_put(f + 88, crc32c(0, f, 88));
}

/* Magic and version first (their place is fixed for every version), then
 * everything else. */
static int format_check(struct store *st, const uint8_t *f, size_t len)
{
    if (len < 12 || memcmp(f, STORE_MAGIC, 8))
        return store_fail(st, STORE_E_NOTTRACE,
                          "%s: not a ttvm trace (bad magic)", st->path);
    uint32_t v = le32_get(f + 8);
    if (v > STORE_FORMAT_VERSION)
        return store_fail(st, STORE_E_VERSION,
                          "%s: trace format version %u is newer than this "
                          "ttvm reads (%u)",
                          st->path, v, STORE_FORMAT_VERSION);
    if (v < STORE_FORMAT_VERSION)
        return store_fail(st, STORE_E_VERSION,
                          "%s: trace format version %u is no longer "
                          "supported (this ttvm reads %u)",
                          st->path, v, STORE_FORMAT_VERSION);
    if (len != FORMAT_LEN || le32_get(f + 12) != FORMAT_LEN ||
        le32_get(f + 88) != crc32c(0, f, 88))
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: format record damaged");
    if (le32_get(f + 16) > 1 || le32_get(f + 20) != STORE_PAGE_SIZE ||
        le32_get(f + 24) != STORE_NREGS ||
        le32_get(f + 28) != STORE_CHUNK_EVENTS ||
        le32_get(f + 32) != HASH_BLAKE2B_128)
        return store_fail(st, STORE_E_CORRUPT,
                          "trace corrupt: unexpected format parameters");
    return 0;
}

static int format_load(struct store *st, const uint8_t *key)
{
    int rc = kv_get(st, DB_META, format_key, sizeof format_key - 1);
    if (rc == STORE_E_NOTFOUND)
        return store_fail(st, STORE_E_NOTTRACE,
                          "%s: not a ttvm trace (no format record)", st->path);
    if (rc || (rc = format_check(st, st->vbuf.p, st->vbuf.len)))
        return rc;
    uint8_t f[FORMAT_LEN], check[32];
    memcpy(f, st->vbuf.p, FORMAT_LEN);
    if (!le32_get(f + 16))
        return 0; /* plain: a key, if given, is not needed */
    if (!key)
        return store_fail(st, STORE_E_KEY,
                          "%s: trace is encrypted: a key is needed", st->path);
    derive_keys(st, key, f + 40, check);
    if (sodium_memcmp(check, f + 56, 32))
        return store_fail(st, STORE_E_KEY, "%s: wrong key for this trace",
                          st->path);
    return 0;
}

/* ---- create / open ---- */

static int dir_is_empty_or_trace(const char *path, bool *empty)
{
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *e;
    bool foreign = false;
    *empty = true;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        *empty = false;
        if (strcmp(e->d_name, "data.mdb") && strcmp(e->d_name, "lock.mdb"))
            foreign = true;
    }
    closedir(d);
    return foreign ? 1 : 0;
}

/* The directory to create the trace in: made when missing; an existing
 * empty directory is used; an existing trace is replaced only with force
 * (and a directory holding anything else never). */
static int prepare_dir(struct store *st, const char *path, bool force)
{
    struct stat s;
    if (lstat(path, &s) < 0) {
        if (errno != ENOENT || mkdir(path, 0755) < 0)
            return store_fail(st, -errno, "%s: %s", path, strerror(errno));
        return 0;
    }
    if (!S_ISDIR(s.st_mode))
        return store_fail(st, STORE_E_EXISTS,
                          "%s: exists and is not a directory", path);
    bool empty = false;
    int rc = dir_is_empty_or_trace(path, &empty);
    if (rc < 0)
        return store_fail(st, rc, "%s: %s", path, strerror(-rc));
    if (empty)
        return 0;
    if (rc == 1)
        return store_fail(st, STORE_E_EXISTS,
                          "%s: exists and holds files that are not a trace; "
                          "refusing to replace it",
                          path);
    if (!force)
        return store_fail(st, STORE_E_EXISTS,
                          "%s: trace exists (use --force to replace it)", path);
    char f[4096];
    const char *names[] = {"data.mdb", "lock.mdb"};
    for (int i = 0; i < 2; i++) {
        snprintf(f, sizeof f, "%s/%s", path, names[i]);
        if (unlink(f) < 0 && errno != ENOENT)
            return store_fail(st, -errno, "%s: %s", f, strerror(errno));
    }
    return 0;
}

static int create_records(struct store *st, const uint8_t *key)
{
    uint8_t f[FORMAT_LEN], salt[16], check[32];
    randombytes_buf(salt, sizeof salt);
    if (key)
        derive_keys(st, key, salt, check);
    format_encode(f, key != NULL, salt, key ? check : NULL);
    uint8_t *v = malloc(FORMAT_LEN);
    if (!v)
        return -ENOMEM;
    memcpy(v, f, FORMAT_LEN);
    int rc =
        kv_put(st, DB_META, format_key, sizeof format_key - 1, v, FORMAT_LEN);
    if (rc)
        return rc;
    struct stats_rec zero = {0};
    size_t vlen;
    if ((rc = stats_encode(st, &zero, &v, &vlen)) ||
        (rc = kv_put(st, DB_META, stats_key, sizeof stats_key - 1, v, vlen)))
        return rc;
    return kv_commit(st, (1u << DB_COUNT) - 1);
}

static int check_levels(struct store *st, int level)
{
    if (level == 0)
        return 0;
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
        return store_fail(st, STORE_E_ARG, "zstd level %d out of range", level);
    st->level_pages = st->level_other = level;
    return 0;
}

int store_create(const char *path, const struct store_create_opts *o,
                 struct store **out)
{
    static const struct store_create_opts defaults;
    struct store *st;
    if (!out || !path || !*path) {
        store_fail_open(STORE_E_ARG, "store_create: no path");
        return STORE_E_ARG;
    }
    *out = NULL;
    if (!o)
        o = &defaults;
    if (sodium_init() < 0 || !(st = store_alloc(path)))
        return -ENOMEM;
    st->writable = true;
    st->map_limit = o->map_size;
    int rc = check_levels(st, o->zstd_level);
    if (!rc && o->map_size && o->map_size < (1u << 20))
        rc = store_fail(st, STORE_E_ARG, "map size below 1 MiB");
    if (!rc && kv_env_in_use(path))
        rc = store_fail(st, STORE_E_EXISTS, "%s: trace is open in this process",
                        path);
    if (!rc)
        rc = prepare_dir(st, path, o->force);
    if (!rc)
        rc = kv_env_open(st, path, true, true, o->map_size);
    if (!rc)
        rc = create_records(st, o->key);
    if (rc)
        return open_failed(st, rc);
    *out = st;
    return 0;
}

static int load_state(struct store *st)
{
    int rc = kv_get(st, DB_META, complete_key, sizeof complete_key - 1);
    if (rc == 0)
        st->complete = true;
    else if (rc != STORE_E_NOTFOUND)
        return rc;
    if ((rc = snap_load(st)))
        return rc;
    if (!st->writable)
        return 0;
    if ((rc = events_load(st)))
        return rc;
    return index_load(st);
}

int store_open(const char *path, bool writable, const uint8_t *key,
               struct store **out)
{
    struct store *st;
    if (!out || !path || !*path) {
        store_fail_open(STORE_E_ARG, "store_open: no path");
        return STORE_E_ARG;
    }
    *out = NULL;
    if (sodium_init() < 0 || !(st = store_alloc(path)))
        return -ENOMEM;
    st->writable = writable;
    int rc = kv_env_open(st, path, false, writable, 0);
    if (!rc)
        rc = format_load(st, key);
    if (!rc)
        rc = load_state(st);
    if (rc)
        return open_failed(st, rc);
    *out = st;
    return 0;
}

/* ---- commit ---- */

int store__check_writable(struct store *st)
{
    if (!st->writable)
        return store_fail(st, STORE_E_READONLY, "%s: opened read-only",
                          st->path);
    return 0;
}

int store_commit(struct store *st)
{
    int rc = store__check_writable(st);
    if (rc || (rc = events_flush(st)) || (rc = index_flush(st)) ||
        (rc = kv_commit(st, (1u << DB_COUNT) - 1)))
        return rc;
    events_committed(st);
    index_committed(st);
    return 0;
}

/* ---- metadata ---- */

static int meta_key_ok(struct store *st, const char *key, bool writing)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > STORE_META_KEY_MAX)
        return store_fail(st, STORE_E_ARG,
                          "metadata key must have 1..%u "
                          "characters",
                          STORE_META_KEY_MAX);
    if (writing && !strncmp(key, "store.", 6))
        return store_fail(st, STORE_E_ARG,
                          "metadata keys 'store.*' are "
                          "reserved for the trace format");
    return 0;
}

static int meta_put_raw(struct store *st, const char *key, const void *val,
                        size_t len)
{
    uint8_t *v;
    size_t vlen;
    size_t klen = strlen(key);
    int rc = val_seal(st, DB_META, key, klen, VT_META, 0, val, len,
                      len >= 64 ? st->level_other : 0, &v, &vlen);
    return rc ? rc : kv_put(st, DB_META, key, klen, v, vlen);
}

int store_meta_put(struct store *st, const char *key, const void *val,
                   size_t len)
{
    int rc = store__check_writable(st);
    if (rc || (rc = meta_key_ok(st, key, true)))
        return rc;
    if (!val && len)
        return store_fail(st, STORE_E_ARG, "metadata value is NULL");
    if (len > META_VALUE_MAX)
        return store_fail(st, STORE_E_ARG, "metadata value too large");
    return meta_put_raw(st, key, val ? val : "", len);
}

int store_meta_get(struct store *st, const char *key, void **val, size_t *len)
{
    int rc = meta_key_ok(st, key, false);
    if (rc)
        return rc;
    size_t klen = strlen(key);
    if ((rc = kv_get(st, DB_META, key, klen)))
        return rc == STORE_E_NOTFOUND
                   ? store_fail(st, rc, "no metadata '%s'", key)
                   : rc;
    struct buf b = {0};
    if (!strcmp(key, format_key)) { /* not an envelope */
        if ((rc = buf_reserve(&b, st->vbuf.len + 1)))
            return rc;
        memcpy(b.p, st->vbuf.p, b.len = st->vbuf.len);
    } else if ((rc =
                    val_unseal(st, DB_META, key, klen, st->vbuf.p, st->vbuf.len,
                               VT_META, META_VALUE_MAX, &b, NULL)) ||
               (rc = buf_reserve(&b, b.len + 1))) {
        buf_free(&b);
        return rc;
    }
    b.p[b.len] = 0; /* so strings come back terminated */
    *val = b.p;
    if (len)
        *len = b.len;
    return 0;
}

int store_meta_put_u64(struct store *st, const char *key, uint64_t v)
{
    uint8_t b[8];
    le64_put(b, v);
    return store_meta_put(st, key, b, 8);
}

int store_meta_get_u64(struct store *st, const char *key, uint64_t *v)
{
    void *p;
    size_t n;
    int rc = store_meta_get(st, key, &p, &n);
    if (rc)
        return rc;
    if (n != 8)
        rc = store_fail(st, STORE_E_CORRUPT,
                        "metadata '%s' is not a "
                        "64-bit number (%zu bytes)",
                        key, n);
    else
        *v = le64_get(p);
    free(p);
    return rc;
}

int store_meta_put_str(struct store *st, const char *key, const char *s)
{
    if (!s)
        return store_fail(st, STORE_E_ARG, "metadata string is NULL");
    return store_meta_put(st, key, s, strlen(s));
}

int store_meta_get_str(struct store *st, const char *key, char **s)
{
    void *p;
    int rc = store_meta_get(st, key, &p, NULL);
    if (rc == 0)
        *s = p;
    return rc;
}

/* ---- the guest image ---- */

int store_image_put(struct store *st, const void *img, size_t len)
{
    uint8_t h[crypto_hash_sha256_BYTES];
    int rc = store__check_writable(st);
    if (rc)
        return rc;
    if (!img || len == 0 || len > IMAGE_MAX)
        return store_fail(st, STORE_E_ARG,
                          "guest image must have 1 byte "
                          "to 1 GiB");
    crypto_hash_sha256(h, img, len);
    if ((rc = meta_put_raw(st, image_key, img, len)))
        return rc;
    return meta_put_raw(st, image_hash_key, h, sizeof h);
}

int store_image_get(struct store *st, void **img, size_t *len)
{
    uint8_t h[crypto_hash_sha256_BYTES];
    void *want, *p;
    size_t wlen, n;
    int rc = store_meta_get(st, image_hash_key, &want, &wlen);
    if (rc)
        return rc == STORE_E_NOTFOUND
                   ? store_fail(st, rc, "trace holds no guest image")
                   : rc;
    if ((rc = store_meta_get(st, image_key, &p, &n))) {
        free(want);
        return rc;
    }
    crypto_hash_sha256(h, p, n);
    if (wlen != sizeof h || sodium_memcmp(h, want, sizeof h)) {
        free(want);
        free(p);
        return store_fail(st, STORE_E_HASH,
                          "embedded guest image (%zu "
                          "bytes) does not match its SHA-256",
                          n);
    }
    free(want);
    *img = p;
    *len = n;
    return 0;
}

/* ---- completion ---- */

int store_mark_complete(struct store *st)
{
    uint8_t b[8];
    int rc = store__check_writable(st);
    if (rc)
        return rc;
    le64_put(b, store_event_count(st));
    if ((rc = meta_put_raw(st, complete_key, b, 8)) || (rc = store_commit(st)))
        return rc;
    st->complete = true;
    return kv_sync(st);
}

bool store_is_complete(struct store *st)
{
    if (st->writable)
        return st->complete;
    int rc = kv_get(st, DB_META, complete_key, sizeof complete_key - 1);
    return rc == 0 &&
           val_check(st, DB_META, complete_key, sizeof complete_key - 1,
                     st->vbuf.p, st->vbuf.len, VT_META, NULL) == 0;
}

/* ---- statistics ---- */

void stats_add(struct stats_rec *a, const struct stats_rec *b)
{
    uint64_t *x = (uint64_t *)a;
    const uint64_t *y = (const uint64_t *)b;
    for (size_t i = 0; i < STATS_WORDS; i++)
        x[i] += y[i];
}

int stats_encode(struct store *st, const struct stats_rec *s, uint8_t **val,
                 size_t *vlen)
{
    uint8_t raw[STATS_WORDS * 8];
    const uint64_t *w = (const uint64_t *)s;
    for (size_t i = 0; i < STATS_WORDS; i++)
        le64_put(raw + 8 * i, w[i]);
    return val_seal(st, DB_META, stats_key, sizeof stats_key - 1, VT_STATS,
                    STATS_WORDS, raw, sizeof raw, 0, val, vlen);
}

int stats_decode(struct store *st, const uint8_t *val, size_t vlen,
                 struct stats_rec *s)
{
    struct buf b = {0};
    uint32_t n;
    int rc = val_unseal(st, DB_META, stats_key, sizeof stats_key - 1, val, vlen,
                        VT_STATS, STATS_WORDS * 8, &b, &n);
    if (!rc && (n != STATS_WORDS || b.len != STATS_WORDS * 8))
        rc = store_fail(st, STORE_E_CORRUPT,
                        "trace corrupt: statistics record damaged");
    uint64_t *w = (uint64_t *)s;
    for (size_t i = 0; !rc && i < STATS_WORDS; i++)
        w[i] = le64_get(b.p + 8 * i);
    buf_free(&b);
    return rc;
}

int store_stats(struct store *st, struct store_stats *out)
{
    struct stats_rec s;
    memset(out, 0, sizeof *out);
    int rc = kv_get(st, DB_META, stats_key, sizeof stats_key - 1);
    if (rc == 0)
        rc = stats_decode(st, st->vbuf.p, st->vbuf.len, &s);
    if (rc)
        return rc;
    stats_add(&s, &st->delta); /* a writer's uncommitted counts */
    out->events = store_event_count(st);
    for (int k = 0; k < STORE_EV_KIND_MAX; k++)
        out->events_by_kind[k] = s.by_kind[k];
    out->event_bytes = s.event_bytes;
    out->snapshots = store_snapshot_count(st);
    out->page_versions = s.page_versions;
    out->zero_pages = s.zero_pages;
    out->unique_pages = s.unique_pages;
    out->page_bytes_raw = s.page_bytes_raw;
    out->page_bytes_stored = s.page_bytes_stored;
    out->file_bytes = kv_file_bytes(st);
    out->complete = store_is_complete(st);
    out->indexed = store_index_complete(st, NULL);
    out->encrypted = st->encrypted;
    return 0;
}
