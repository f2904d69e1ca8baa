/*
 * store_int.h — what the files of storage/ share.  Nothing outside storage/
 * includes this, except storage's own unit tests and test tools (which use
 * the raw-put hook to forge bad traces).
 *
 * Layers, bottom up:
 *   val.c     value sealing: envelope header, CRC-32C or AEAD, zstd
 *   kv.c      LMDB: one shared environment per trace per process, the
 *             fault guard around every LMDB access, pending (uncommitted)
 *             writes and the commit that applies them
 *   events.c  event chunks; index.c the instruction index; snap.c
 *             snapshots and pages; store.c lifecycle, metadata, stats
 * The on-disk layout is in storage/FORMAT.md; keep the two in step.
 */
#ifndef TTVM_STORE_INT_H
#define TTVM_STORE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>
#include <zstd.h>

#include "storage/store.h"

#define STORE_FORMAT_VERSION 1u
#define STORE_MAGIC "TTVMTRC"    /* 8 bytes with its NUL */
#define STORE_CHUNK_EVENTS 4096u /* events per chunk, chunk keys align */
#define STORE_HASH_BYTES 16u     /* page content hash (BLAKE2b-128) */
#define STORE_DEFAULT_MAP (64ull << 30)
#define STORE_META_KEY_MAX 64u
#define STORE_GFN_MAX (1ull << 52) /* 4 KiB pages of a 2^64 space */

/* Value types (envelope byte 0).  A value of the wrong type under a key is
 * corruption. */
enum val_type {
    VT_META = 1,
    VT_CHUNK = 2,
    VT_SNAPINFO = 3,
    VT_CPU = 4,
    VT_DEV = 5,
    VT_PAGELIST = 6,
    VT_PAGE = 7,
    VT_IDXCHUNK = 8,
    VT_MARK = 9,
    VT_STATS = 10,
    VT_HASHLIST = 11,
    VT_COVER = 12,
};

/* The named databases (FORMAT.md).  The numbers are also the "db tag" mixed
 * into every value's checksum, so a value moved to another database or key
 * fails its check. */
enum kv_db {
    DB_META,
    DB_EVENTS,
    DB_SNAPS,
    DB_PAGEVER,
    DB_PAGES,
    DB_INDEX,
    DB_COUNT
};
#define KV_KEY_MAX 80u

/* A growable byte buffer. */
struct buf {
    uint8_t *p;
    size_t len, cap;
};
int buf_reserve(struct buf *b, size_t cap);
/* Makes room for one more element in a realloc'd array (doubling from
 * first): 0 or -ENOMEM. */
int array_grow(void **arr, size_t *cap, size_t used, size_t elem, size_t first);
void buf_free(struct buf *b);

/* A write waiting for the next commit.  del = delete the key. */
struct kv_op {
    uint8_t db, klen;
    bool del;
    uint8_t key[KV_KEY_MAX];
    uint8_t *val; /* malloc'd, owned */
    size_t vlen;
};

/* Statistics record (meta "store.stats"), FORMAT.md. */
#define STATS_WORDS 22
struct stats_rec {
    uint64_t by_kind[16];
    uint64_t event_bytes, page_versions, zero_pages, unique_pages;
    uint64_t page_bytes_raw, page_bytes_stored;
};

struct snap_page {
    uint64_t gfn;
    uint8_t hash[STORE_HASH_BYTES]; /* all zero = zero page */
    bool version;                   /* write a pagever entry */
};

/* A snapshot between store_snapshot_begin and store_snapshot_end. */
struct snap_build {
    struct store_snapshot_info info;
    uint8_t *cpu_val, *dev_val; /* sealed */
    size_t cpu_len, dev_len;
    struct snap_page *pages;
    size_t npages, cap;
    uint64_t zero, stored_bytes;
};

struct kv_env; /* kv.c: one LMDB environment, shared in a process */

struct store {
    struct kv_env *env;
    char *path;
    bool writable, encrypted;
    uint64_t map_limit; /* 0 = grow on demand */
    char detail[320];

    MDB_txn *rtxn;    /* read transaction, reset between accesses */
    MDB_cursor *rcur; /* the cursor of the access in progress */
    MDB_txn *wtxn;    /* the write transaction of a commit in progress */

    /* crypto (encrypted traces) */
    uint8_t aead_key[32];
    uint8_t hash_key[32];
    uint8_t mac_key[16];

    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    int level_pages, level_other;

    struct buf vbuf, kbuf, tmp, tmp2; /* scratch */
    struct buf nkbuf, nvbuf;          /* kv_seek_le_next: the entry after */
    bool has_next;

    /* pending writes: ops[] plus an open-addressing table of indices */
    struct kv_op *ops;
    size_t nops, opcap;
    uint32_t *optab; /* slot -> op index + 1, 0 = empty */
    size_t optab_size;
    size_t npend_db[DB_COUNT];
    uint64_t pend_page_bytes;

    /* statistics not yet committed (counted when data is added) */
    struct stats_rec delta;

    /* events: the open chunk (writer), the decoded chunk cache (reader) */
    uint64_t ev_first; /* key of the open chunk */
    struct store_event *ev_open;
    size_t ev_open_n, ev_open_done; /* events held, of which committed */
    uint64_t cache_first;
    size_t cache_n;
    struct store_event *cache;

    /* snapshots */
    uint32_t snap_count;   /* writer: including pending ones */
    uint64_t snap_last_ev; /* event_index of the newest snapshot */
    struct snap_build *build;

    /* index: open chunk (writer) and decoded chunk cache */
    uint64_t ix_first;
    uint64_t *ix_open;
    size_t ix_open_n, ix_open_done;
    uint64_t ix_last; /* position of the last indexed event */
    uint64_t ix_cache_first;
    size_t ix_cache_n;
    uint64_t *ix_cache;

    bool complete; /* writer's view */

    /* index snapshots: the page hashes of the last one read (isnap.c) */
    uint64_t isnap_cache_icount;
    size_t isnap_cache_n;
    uint8_t *isnap_cache_hashes;
};

_Static_assert(sizeof(struct stats_rec) == STATS_WORDS * 8, "stats layout");

/* ---- errors (store.c) ---- */
int store_fail(struct store *st, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The detail of the last failed create/open in this thread. */
void store_fail_open(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* STORE_E_READONLY unless st was opened for writing. */
int store__check_writable(struct store *st);

/* ---- byte helpers (val.c) ---- */
void be64_put(uint8_t *p, uint64_t v);
uint64_t be64_get(const uint8_t *p);
void be32_put(uint8_t *p, uint32_t v);
uint32_t be32_get(const uint8_t *p);
void le64_put(uint8_t *p, uint64_t v);
uint64_t le64_get(const uint8_t *p);
void le32_put(uint8_t *p, uint32_t v);
uint32_t le32_get(const uint8_t *p);
uint32_t crc32c(uint32_t crc, const void *p, size_t n);
/* LEB128 varints; get returns false on a truncated or overlong varint. */
size_t varint_put(uint8_t *p, uint64_t v);
bool varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v);
#define VARINT_MAX 10

/* ---- value sealing (val.c) ---- */
#define VAL_HDR 16u
#define VAL_NONCE 24u
#define VAL_TAG 16u
/* Seals raw into a malloc'd value for (db, key): header, then the payload
 * zstd-compressed at level (when level != 0 and it helps), then CRC-32C or
 * (encrypted traces) AEAD. */
int val_seal(struct store *st, int db, const void *key, size_t klen,
             uint8_t type, uint32_t count, const void *raw, size_t rawlen,
             int level, uint8_t **out, size_t *outlen);
/* Checks and decodes a value into out (raw bytes); *count from the header.
 * STORE_E_CORRUPT (detail names what) on any mismatch; raw lengths above
 * max_raw are refused before anything is allocated. */
int val_unseal(struct store *st, int db, const void *key, size_t klen,
               const uint8_t *val, size_t vlen, uint8_t type, size_t max_raw,
               struct buf *out, uint32_t *count);
/* Checks a value and returns its header count without decompressing. */
int val_check(struct store *st, int db, const void *key, size_t klen,
              const uint8_t *val, size_t vlen, uint8_t type, uint32_t *count);
/* 4-byte check of a page-version value (CRC-32C or keyed SipHash). */
uint32_t val_small_check(struct store *st, int db, const void *key, size_t klen,
                         const void *v, size_t vlen);
/* Content hash of a page (keyed for encrypted traces). */
void val_page_hash(struct store *st, const void *page,
                   uint8_t out[STORE_HASH_BYTES]);
const char *db_name(int db);

/* ---- LMDB layer (kv.c) ---- */
int kv_env_open(struct store *st, const char *path, bool create, bool writable,
                uint64_t map_size);
void kv_env_close(struct store *st);
/* Exact lookup; pending writes first.  The value is copied into st->vbuf.
 * STORE_E_NOTFOUND when absent. */
int kv_get(struct store *st, int db, const void *key, size_t klen);
/* The largest key <= key (MDB_SET_RANGE + one MDB_PREV, merged with the
 * pending writes); key copied to st->kbuf and value to st->vbuf. */
int kv_seek_le(struct store *st, int db, const void *key, size_t klen);
/* Same, and when MDB_SET_RANGE landed past key, that entry too (in
 * st->nkbuf/nvbuf, st->has_next), so the caller can check it: a damaged
 * key there is what sent the seek astray. */
int kv_seek_le_next(struct store *st, int db, const void *key, size_t klen);
/* Queues a put (takes ownership of val) or a delete. */
int kv_put(struct store *st, int db, const void *key, size_t klen, uint8_t *val,
           size_t vlen);
int kv_del(struct store *st, int db, const void *key, size_t klen);
/* Forgets the pending writes for which drop(op, arg) is true. */
int kv_drop_if(struct store *st, bool (*drop)(const struct kv_op *, void *),
               void *arg);
/* Applies the pending writes of the databases in mask (1 << db) in one
 * transaction, with the statistics record; grows the map on MDB_MAP_FULL. */
int kv_commit(struct store *st, unsigned mask);
void kv_pending_free(struct store *st);
uint64_t kv_file_bytes(struct store *st);
/* True when this process has the trace at path open. */
bool kv_env_in_use(const char *path);
/* Forces the last commit to disk (data and meta pages). */
int kv_sync(struct store *st);
/* Initial map size of traces created without a limit (tests shrink it to
 * exercise growth). */
extern uint64_t store__default_map;
/* For tests and test tools only: a raw put/commit of a prepared value. */
int store__raw_put(struct store *st, int db, const void *key, size_t klen,
                   const void *val, size_t vlen);

/* ---- per-part loaders and codecs ---- */
int stats_encode(struct store *st, const struct stats_rec *s, uint8_t **val,
                 size_t *vlen);
int stats_decode(struct store *st, const uint8_t *val, size_t vlen,
                 struct stats_rec *s);
void stats_add(struct stats_rec *a, const struct stats_rec *b);

int events_load(struct store *st);  /* writer: open chunk from the trace */
int events_flush(struct store *st); /* queue the open partial chunk */
void events_committed(struct store *st);
uint64_t events_committed_count(struct store *st, int *err);
void events_free(struct store *st);
/* chunk codec, exposed for the unit tests and the bench */
int chunk_encode(const struct store_event *ev, size_t n, struct buf *out);
int chunk_decode(const uint8_t *p, size_t len, size_t n,
                 struct store_event *out);

int snap_load(struct store *st);
void snap_free(struct store *st);
/* Page contents, shared by snapshots and index snapshots (snap.c).  hash:
 * false (and a zero hash) for an all-zero page, which stores nothing. */
bool snap_page_hash(struct store *st, const void *page,
                    uint8_t h[STORE_HASH_BYTES]);
/* Stores a non-zero page under its hash unless present; adds the bytes
 * it took to *stored_bytes. */
int snap_content_put(struct store *st, const void *page, const uint8_t *hash,
                     uint64_t *stored_bytes);
/* The content stored under hash (STORE_E_NOTFOUND when absent). */
int snap_content_read(struct store *st, const uint8_t *hash, void *out);
/* Page lists (FORMAT.md "snapshots" 'p'): ascending gfns as varint gaps. */
int snap_list_encode(const uint64_t *g, size_t n, struct buf *raw);
int snap_list_decode(struct store *st, const char *what,
                     const struct buf *raw, uint32_t n, uint64_t *g);

void isnap_free(struct store *st);

int index_load(struct store *st);
/* icount of snapshot id, UINT64_MAX when not indexed. */
int store__index_snapshot(struct store *st, uint32_t id, uint64_t *icount);
int index_flush(struct store *st);
void index_committed(struct store *st);
void index_free(struct store *st);

#endif /* TTVM_STORE_INT_H */
