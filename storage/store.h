/*
 * store.h — the trace: one LMDB environment (a directory) holding what a
 * recording needs to replay on its own.  The recorder writes through this
 * API; the replayer and `ttvm info` read through it.  The on-disk layout is
 * documented field by field in storage/FORMAT.md and lives in this module
 * only: nothing outside storage/ knows database names or key encodings.
 *
 * storage/ includes no other project module: CPU and device state are
 * opaque blobs here, and an event's registers are 18 words in the order of
 * struct vmm_regs (rax..r15, rip, rflags).
 *
 * Concurrency: one writer (the recorder) per trace; readers may open the
 * trace while it is written (LMDB MVCC) and see it as of the last commit.
 * A struct store is used by one thread at a time.
 *
 * Errors: 0 on success, -errno for OS failures, STORE_E_* otherwise;
 * store_strerror() names both, store_error_detail() says more.
 */
#ifndef TTVM_STORE_H
#define TTVM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    STORE_E_EXISTS = -5100,  /* trace exists and force was not given */
    STORE_E_NOTTRACE = -5101,/* not a ttvm trace (missing or foreign) */
    STORE_E_VERSION = -5102, /* written by a newer format version */
    STORE_E_CORRUPT = -5103, /* checksum, decode or structure failure */
    STORE_E_HASH = -5104,    /* embedded guest image does not match hash */
    STORE_E_NOTFOUND = -5105,/* no such key/snapshot/event */
    STORE_E_LMDB = -5106,    /* LMDB failure (detail has mdb_strerror) */
    STORE_E_KEY = -5107,     /* encrypted trace: key missing or wrong */
    STORE_E_FULL = -5108,    /* map size exhausted */
    STORE_E_READONLY = -5109,/* write to a trace opened read-only */
    STORE_E_ARG = -5110,
};
const char *store_strerror(int err);

#define STORE_PAGE_SIZE 4096u
#define STORE_NREGS 18
#define STORE_KEY_BYTES 32 /* encryption key (libsodium secretbox/aead) */

struct store; /* opaque: an open trace */

/* ---- lifecycle ---- */

struct store_create_opts {
    bool force;               /* replace an existing trace at path */
    uint64_t map_size;        /* LMDB map size; 0 = default (64 GiB, sparse) */
    int zstd_level;           /* 0 = default */
    const uint8_t *key;       /* STORE_KEY_BYTES to encrypt, NULL = plain */
};

/* Creates a new trace directory at path.  STORE_E_EXISTS when path exists
 * and !force.  *out is closed with store_close. */
int store_create(const char *path, const struct store_create_opts *o,
                 struct store **out);

/* Opens an existing trace.  key is needed only for encrypted traces
 * (STORE_E_KEY otherwise).  A trace whose recorder died opens fine: see
 * store_is_complete(). */
int store_open(const char *path, bool writable, const uint8_t *key,
               struct store **out);

/* Flushes buffered events of a writable trace is NOT done here: call
 * store_commit first.  Closing discards uncommitted work. */
void store_close(struct store *st);

/* More about the last error on st ("" if none); valid until the next call.
 * store_error_detail(NULL) is the detail of the last failed store_create or
 * store_open in the calling thread (they return no store to ask). */
const char *store_error_detail(const struct store *st);

/* ---- metadata (FORMAT.md lists the keys) ---- */

int store_meta_put(struct store *st, const char *key, const void *val,
                   size_t len);
/* *val is malloc'd (caller frees); STORE_E_NOTFOUND when absent. */
int store_meta_get(struct store *st, const char *key, void **val,
                   size_t *len);
int store_meta_put_u64(struct store *st, const char *key, uint64_t v);
int store_meta_get_u64(struct store *st, const char *key, uint64_t *v);
int store_meta_put_str(struct store *st, const char *key, const char *s);
/* *s is malloc'd and NUL-terminated. */
int store_meta_get_str(struct store *st, const char *key, char **s);

/* The guest image, stored whole with its SHA-256. */
int store_image_put(struct store *st, const void *img, size_t len);
/* *img malloc'd; STORE_E_HASH when the content does not match its hash. */
int store_image_get(struct store *st, void **img, size_t *len);

/* Marks the recording finished (written last, after the final event). */
int store_mark_complete(struct store *st);
bool store_is_complete(struct store *st);

/* ---- events ---- */

enum store_event_kind {
    STORE_EV_PIO_IN = 1,  /* addr = port, size, value = what the guest read */
    STORE_EV_PIO_OUT,     /* value = what the guest wrote */
    STORE_EV_MMIO_READ,   /* addr = gpa */
    STORE_EV_MMIO_WRITE,
    STORE_EV_IRQ,         /* aux = vector; injected right after the previous
                             event's point (DESIGN.md) */
    STORE_EV_HLT,         /* the guest executed HLT (regs: after it) */
    STORE_EV_KICK,        /* vCPU stopped by the recorder; aux = snapshot id
                             taken at this exact point */
    STORE_EV_WINDOW,      /* interrupt-window exit: an arbitrary point
                             like a kick; aux = snapshot id taken there */
    STORE_EV_EMU,         /* an instruction KVM could not execute was run
                             by Unicorn; value = its length */
    STORE_EV_EXIT,        /* end of the run: aux = stop kind, value = exit
                             status */
    STORE_EV_KIND_MAX
};

struct store_event {
    uint8_t kind;   /* enum store_event_kind */
    uint8_t size;   /* access size in bytes (I/O events) */
    uint16_t flags; /* reserved, 0 */
    uint32_t aux;   /* per kind, see above */
    uint64_t addr;
    uint64_t value;
    uint64_t regs[STORE_NREGS]; /* vmm_regs order; state at the event */
};

/* Appends events in order (buffered in memory, packed into compressed
 * chunks; durable at the next store_commit). */
int store_events_append(struct store *st, const struct store_event *ev,
                        size_t n);
/* Events in the trace, including buffered uncommitted ones. */
uint64_t store_event_count(struct store *st);
/* Reads events [first, first+n).  *got < n at the end of the trace. */
int store_events_read(struct store *st, uint64_t first,
                      struct store_event *out, size_t n, size_t *got);

/* Makes everything written so far durable in one LMDB transaction (the
 * recorder calls it at every snapshot). */
int store_commit(struct store *st);

/* ---- snapshots ---- */

enum store_snap_reason { STORE_SNAP_BOOT = 0, STORE_SNAP_PERIODIC = 1,
                         STORE_SNAP_KICK = 2 };

struct store_snapshot_info {
    uint32_t id;          /* 0, 1, 2 ... in order */
    uint32_t reason;      /* enum store_snap_reason */
    uint64_t event_index; /* number of events logged before this point */
    uint64_t icount;      /* position once indexed, else UINT64_MAX */
    uint64_t time_ns;     /* run time since boot when taken */
    uint32_t npages;      /* pages saved with it (written since previous) */
    uint32_t pause_us;    /* how long the vCPU was held to take it (µs,
                             saturating; 0 = not recorded) */
    uint64_t stored_bytes;/* compressed bytes its new page contents took */
};

/* Starts snapshot info->id (must be the next id).  cpu and dev are opaque
 * state blobs, copied.  Then store_snapshot_page for each page written
 * since the previous snapshot (snapshot 0: every page of RAM; all-zero
 * pages cost nothing), then store_snapshot_end, which commits. */
int store_snapshot_begin(struct store *st,
                         const struct store_snapshot_info *info,
                         const void *cpu, size_t cpu_len, const void *dev,
                         size_t dev_len);
int store_snapshot_page(struct store *st, uint64_t gfn, const void *page);
int store_snapshot_end(struct store *st);

uint32_t store_snapshot_count(struct store *st);
/* cpu/dev may be NULL when not wanted; otherwise malloc'd. */
int store_snapshot_get(struct store *st, uint32_t id,
                       struct store_snapshot_info *info, void **cpu,
                       size_t *cpu_len, void **dev, size_t *dev_len);
/* Latest snapshot taken at or before event index ev. */
int store_snapshot_at_event(struct store *st, uint64_t ev, uint32_t *id);
/* Latest snapshot at or before position icount (needs the index). */
int store_snapshot_at_icount(struct store *st, uint64_t icount,
                             uint32_t *id);
/* The page numbers saved with snapshot id, ascending; *gfns malloc'd. */
int store_snapshot_pages(struct store *st, uint32_t id, uint64_t **gfns,
                         size_t *n);
/* Contents of page gfn as of snapshot id (the newest version saved at or
 * before id; zeros if none).  Cost independent of the snapshot count. */
int store_page_read(struct store *st, uint32_t id, uint64_t gfn,
                    void *out);

/* ---- the instruction index (written by the replayer) ---- */

/* Positions of events [first, first+n): icount[i] is the position of
 * event first+i.  Buffered; durable at store_commit. */
int store_index_put_events(struct store *st, uint64_t first,
                           const uint64_t *icount, size_t n);
int store_index_put_snapshot(struct store *st, uint32_t id, uint64_t icount);
/* The index is complete and consistent with the events; end = the last
 * position of the recording. */
int store_index_finish(struct store *st, uint64_t end_icount);
bool store_index_complete(struct store *st, uint64_t *end_icount);
int store_index_get(struct store *st, uint64_t ev, uint64_t *icount);
/* First event whose position is >= icount (n = event count if none). */
int store_index_event_at(struct store *st, uint64_t icount, uint64_t *ev);

/* ---- index snapshots (written by the replayer while indexing) ---- */

/* Extra restore points between recorded snapshots, keyed by position, so
 * that reaching any position replays only a short way.  Each holds the
 * full CPU state and the contents of the pages that may have changed
 * since its base recorded snapshot; every other page reads as of the
 * base.  Page contents share the snapshots' deduplicated store.  Written
 * before store_index_finish; store_isnap_clear drops them (re-indexing). */
struct store_isnap_info {
    uint64_t icount;      /* its position (unique) */
    uint64_t event_index; /* events consumed at that point */
    uint32_t base;        /* recorded snapshot the pages extend */
    uint32_t npages;
};

/* Adds one, replacing any at the same position (buffered; durable at the
 * next store_commit).  gfns ascending; pages holds n * STORE_PAGE_SIZE
 * bytes in the same order. */
int store_isnap_put(struct store *st, const struct store_isnap_info *info,
                    const void *cpu, size_t cpu_len, const uint64_t *gfns,
                    const void *pages, size_t n);
/* The latest index snapshot at or before icount (STORE_E_NOTFOUND when
 * none). */
int store_isnap_at(struct store *st, uint64_t icount,
                   struct store_isnap_info *info);
/* The one at exactly icount: *cpu and *gfns malloc'd (either may be NULL
 * when not wanted). */
int store_isnap_get(struct store *st, uint64_t icount,
                    struct store_isnap_info *info, void **cpu,
                    size_t *cpu_len, uint64_t **gfns, size_t *n);
/* Contents of page i of its list (0 <= i < npages). */
int store_isnap_page(struct store *st, uint64_t icount, size_t i, void *out);
/* Deletes every index snapshot and the tail list below (commits). */
int store_isnap_clear(struct store *st);

/* Pages written after the last recorded snapshot up to the end of the
 * recording, found by the indexer: the recorder's lists stop at its last
 * snapshot.  Buffered like the index; STORE_E_NOTFOUND when absent. */
int store_index_put_tail_pages(struct store *st, const uint64_t *gfns,
                               size_t n);
int store_index_tail_pages(struct store *st, uint64_t **gfns, size_t *n);

/* ---- code coverage windows (written by the replayer while indexing) ---- */

/* The code that ran in the window of positions from start up to the next
 * window's start (or the end of the run): translation blocks as sorted,
 * disjoint ranges [addr, addr + len) of guest addresses.  A breakpoint
 * outside every range of a window cannot hit there, so searches skip it.
 * Buffered like the index; store_cover_clear drops them (re-indexing). */
struct store_code_range {
    uint64_t addr;
    uint32_t len;
    uint32_t pad;
};
int store_cover_put(struct store *st, uint64_t start,
                    const struct store_code_range *c, size_t n);
/* Every window's first position, ascending; *starts malloc'd (none: 0). */
int store_cover_windows(struct store *st, uint64_t **starts, size_t *n);
/* The ranges of the window at start (*out malloc'd); STORE_E_NOTFOUND when
 * there is none. */
int store_cover_get(struct store *st, uint64_t start,
                    struct store_code_range **out, size_t *n);
int store_cover_clear(struct store *st);

/* ---- statistics for `ttvm info` ---- */

struct store_stats {
    uint64_t events, events_by_kind[STORE_EV_KIND_MAX];
    uint64_t event_bytes;         /* compressed event chunks */
    uint32_t snapshots;
    uint64_t page_versions;       /* (gfn, snapshot) entries */
    uint64_t zero_pages;          /* page versions that were all zero */
    uint64_t unique_pages;        /* distinct contents stored */
    uint64_t page_bytes_raw;      /* 4096 * non-zero page versions */
    uint64_t page_bytes_stored;   /* compressed (and encrypted) contents */
    uint64_t file_bytes;          /* data.mdb size on disk */
    bool complete, indexed, encrypted;
};
int store_stats(struct store *st, struct store_stats *out);

#endif /* TTVM_STORE_H */
