/*
 * replayer_int.h — shared inside replayer/ only.
 *
 * Files, bottom up:
 *   trace.c   what the trace says: event kinds and positions, snapshots
 *             and their page lists, index snapshots, the event window;
 *             divergence wording shared with verify.c
 *   ckpt.c    the in-memory checkpoint pool (pages deduplicated by
 *             content, bounded, least recently used out first)
 *   restore.c moving RAM and CPU to a restore point at a cost that grows
 *             with the pages that may differ; undoing the user's writes
 *   run.c     re-executing forward from the current state, consuming
 *             events (I/O served from the log, interrupts injected at
 *             their positions), with breakpoints and watchpoints
 *   travel.c  goto, step and continue in both directions
 *   index.c   replay_index: the first re-execution, which finds every
 *             position and checks the recording
 *   state.c   registers, memory, breakpoint and watchpoint lists
 *   replay.c  open/close, errors, listings
 *
 * Positions follow replayer.h.  The *canonical* state at position p is the
 * one before instruction p executes with every interrupt due at p already
 * delivered: events consumed are all those before p, plus the non-I/O
 * events at p (an I/O event at p belongs to instruction p, still to run).
 * Restore points are canonical states, except recorded snapshots, which
 * may precede an interrupt due at their position (rp_normalize delivers
 * it).
 */
#ifndef TTVM_REPLAYER_INT_H
#define TTVM_REPLAYER_INT_H

#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "replayer/replayer.h"
#include "storage/store.h"

/* The exact engines (vmm backends), and the meta key naming the one an
 * index was made with (absent: unicorn, as every index before it). */
#define RP_ENGINE_UNICORN "unicorn"
#define RP_ENGINE_KVMSTEP "kvm-step"
#define RP_META_ENGINE "index.engine"

#define RP_MAX_BREAKS 64
#define RP_MAX_WATCHES 16
#define RP_EVWIN 4096 /* events held in the window */
#define RP_PAGE STORE_PAGE_SIZE

/* ---- divergence wording (trace.c; also used by verify.c) ------------- */

extern const char *const rp_reg_names[STORE_NREGS];
const char *rp_kind_name(unsigned kind);
/* RFLAGS bits a replay need not reproduce: the six status flags (CF PF
 * AF ZF SF OF), which many instructions leave architecturally undefined
 * (all six after DIV, four after MUL, AF after shifts...) and which this
 * host's KVM and QEMU then set differently, and RF, which KVM sets after
 * some exits and Unicorn does not model (it only suppresses instruction
 * breakpoints).  A guest that depends on an undefined flag diverges in
 * its control flow or data, which the next event shows. */
#define RP_RFLAGS_IGNORED 0x108d5ull

/* MXCSR bits a replay need not reproduce: the six sticky exception flags
 * (IE DE ZE OE UE PE).  The host's SSE unit sets them as it computes (an
 * inexact divide sets PE); Unicorn 2.0.1's softfloat never does.  A guest
 * that reads them back (STMXCSR) and acts on them diverges visibly. */
#define RP_MXCSR_IGNORED 0x3full

/* At a HLT, kick or window point, where the replay matched the recorded
 * registers but for RP_RFLAGS_IGNORED: takes those flags from the
 * recording too (regs: an event's), since an interrupt delivered there
 * pushes them into guest memory.  KVM reports RF set wherever it stopped
 * ring 3 from outside, and undefined status flags as its emulator or
 * the host CPU left them. */
int rp_take_flags(struct vcpu *cpu, const uint64_t *regs);

/* Appends "\n  reg expected X, replay Y" lines for differing registers to
 * buf; returns how many differ.  mask_flags leaves RP_RFLAGS_IGNORED out
 * of the comparison. */
int rp_regs_diff(const uint64_t *want, const uint64_t *got, bool mask_flags,
                 char *buf, size_t cap);

/* ---- what the trace says (trace.c) ------------------------------------ */

struct rp_snap {
    uint64_t icount;      /* UINT64_MAX until indexed */
    uint64_t event_index;
    uint32_t reason, npages;
    uint64_t *dirty;      /* its page list (written since the previous) */
    size_t ndirty;
    bool loaded;
};

struct rp_isnap {
    uint64_t icount, event_index;
    uint32_t base, npages;
};

/* The interval of a position: k such that recorded snapshot k is the last
 * at or before it; its write set is snapshot k+1's page list, or the tail
 * list after the last snapshot. */

/* ---- checkpoints (ckpt.c) --------------------------------------------- */

struct cp_page;
struct cp_pool;

struct cp {
    uint64_t icount, ev_next;
    uint32_t interval;         /* see above */
    struct vmm_cpu_state cpu;
    size_t n;                  /* pages of the interval's write set */
    uint64_t *gfns;            /* ascending */
    struct cp_page **pages;
    uint64_t used;             /* LRU clock */
    uint64_t bytes;            /* what it costs besides shared pages */
};

/* budget in bytes (0 = 256 MiB). */
int cp_pool_create(uint64_t budget, struct cp_pool **out);
void cp_pool_destroy(struct cp_pool *p);
/* Adds a checkpoint at icount with the contents of pages gfns[0..n)
 * (ascending, distinct): read from ram at their addresses, or from pages
 * (n contiguous pages in list order) when pages is not NULL.  Pages equal
 * to those of like (a checkpoint of the same interval, may be NULL) are
 * shared without hashing; others are deduplicated by content.  Replaces
 * one at the same position.  May evict the least recently used ones
 * (never the one it returns): pointers to other checkpoints do not
 * survive a cp_add. */
int cp_add(struct cp_pool *p, uint64_t icount, uint64_t ev_next,
           uint32_t interval, const struct vmm_cpu_state *cpu,
           const uint64_t *gfns, size_t n, const uint8_t *ram,
           const uint8_t *pages, const struct cp *like, struct cp **out);
/* The checkpoint with the largest position <= icount (NULL if none);
 * marks it used. */
struct cp *cp_find_le(struct cp_pool *p, uint64_t icount);
/* The one at exactly icount, or NULL. */
struct cp *cp_find(struct cp_pool *p, uint64_t icount);
/* Contents of gfn in c (NULL when gfn is not in its list). */
const uint8_t *cp_page(const struct cp *c, uint64_t gfn);
void cp_touch(struct cp_pool *p, struct cp *c);
size_t cp_count(const struct cp_pool *p);
/* The i-th checkpoint in position order (NULL past the last). */
struct cp *cp_nth(const struct cp_pool *p, size_t i);
uint64_t cp_bytes(const struct cp_pool *p);
/* Distinct page contents held. */
size_t cp_unique_pages(const struct cp_pool *p);
/* Drops every checkpoint in [lo, hi). */
void cp_drop_range(struct cp_pool *p, uint64_t lo, uint64_t hi);

/* ---- the replayer ------------------------------------------------------ */

struct rp_hit {             /* the last hit a reverse search saw */
    bool found;
    uint64_t icount;
    unsigned reasons;       /* REPLAY_STOP_BREAK / WATCH */
    uint64_t watch_addr;
    uint32_t watch_kind;
};

/* How run.c treats breakpoints and watchpoints. */
enum rp_arm {
    RP_ARM_NONE = 0,  /* nothing armed: plain re-execution */
    RP_ARM_STOP,      /* armed, the first hit stops */
    RP_ARM_LOG,       /* armed, hits at or after log_lo are logged in
                         r->hit (the last one wins), nothing stops */
};

/* Why run.c stopped. */
enum rp_why {
    RP_RUN_LIMIT = 0,  /* the target position */
    RP_RUN_BREAK,      /* before a breakpoint address */
    RP_RUN_WATCH,      /* before the accessing instruction */
    RP_RUN_INTR,       /* replay_interrupt */
    RP_RUN_END,        /* the end of the recording (before the target) */
};

struct rp_watch_exit {
    uint64_t addr;
    uint32_t len, kind;
};

/* The code that ran in one coverage window (loaded on first use). */
struct rp_cover {
    struct store_code_range *code;
    size_t n;
    bool loaded;
};

struct replay {
    struct store *st;
    char *path;
    struct replay_opts o;
    char detail[2048];

    /* the machine: RAM, one vCPU of the engine (I/O from the log) */
    const char *engine;    /* RP_ENGINE_*: the backend that made the index */
    struct vmm *vm;
    struct vcpu *cpu;
    uint8_t *ram;
    uint64_t ram_size, npages;
    void *image;
    size_t image_len;
    char *guest_name;      /* basename the recorder stored, or NULL */

    /* events */
    uint64_t nev;
    uint64_t *ev_icount;   /* positions (from the index) */
    uint8_t *ev_kind;
    uint64_t *stops;       /* indices of the non-I/O events, ascending */
    size_t nstops;
    struct store_event *win;
    uint64_t win_first;
    size_t win_n;
    bool complete;         /* the recording finished (EXIT event last) */
    bool has_exit;
    uint32_t exit_kind;
    int exit_status;
    uint64_t end;

    /* recorded snapshots, index snapshots, the tail's write set */
    struct rp_snap *snaps;
    uint32_t nsnaps;
    struct rp_isnap *isnaps;
    size_t nisnaps;
    uint64_t *tail;
    size_t ntail;
    bool tail_known;

    /* code coverage windows (store_cover_*): ranges loaded on first use */
    uint64_t *cov_start;   /* window i is [cov_start[i], cov_start[i+1]) */
    struct rp_cover *cov;
    size_t ncov;

    /* the current state */
    uint64_t pos;
    uint64_t ev_next;
    uint32_t *seen;        /* per page: generation stamp (restore sets) */
    uint32_t seen_gen;
    bool ram_unknown;      /* a restore failed half way */

    /* writes by the user at this position, undone when moving */
    bool user_mod;
    struct vmm_cpu_state user_cpu;   /* the state before them */
    uint64_t *user_gfns;
    uint8_t *user_pages;             /* their contents before them */
    size_t user_n, user_cap;

    /* breakpoints and watchpoints, and what is armed in the vCPU now */
    uint64_t bps[RP_MAX_BREAKS];
    size_t nbps;
    struct vcpu_watch watches[RP_MAX_WATCHES];
    size_t nwatch;
    enum rp_arm arm;
    bool armed_bps, armed_watch;
    bool watch_fired;      /* a watch exit happened: re-arm to reset */
    uint64_t log_lo;
    struct rp_hit hit;
    struct rp_watch_exit wexit;
    int run_err;           /* an error from an io callback */

    struct cp_pool *pool;
    uint64_t cp_clock;

    /* replay_interrupt: only a running call is cancelled */
    atomic_int running;
    atomic_int intr;

    /* indexing (index.c) */
    struct rp_index *ix;
};

/* ---- trace.c ---- */
int rp_trace_load(struct replay *r);
void rp_trace_free(struct replay *r);
/* Event i through the window (NULL at the end, *err set on failure). */
const struct store_event *rp_event(struct replay *r, uint64_t i, int *err);
bool rp_kind_is_io(unsigned kind);
/* Loads snapshot k's page list when needed. */
int rp_snap_dirty(struct replay *r, uint32_t k, const uint64_t **g,
                  size_t *n);
/* Write set of interval k: pages written after snapshot k up to the next
 * snapshot (or the end).  The tail's is empty when unknown (*known=false:
 * the caller must assume every page). */
int rp_interval_pages(struct replay *r, uint32_t k, const uint64_t **g,
                      size_t *n, bool *known);
/* Interval of canonical position p. */
uint32_t rp_interval_of(const struct replay *r, uint64_t p);
/* Could any armed breakpoint's address run in [a, b)?  From the coverage
 * windows; *maybe is true where they are missing.  *last_end is the end of
 * the last window in [a, b) where one may (b when unknown), so a search
 * need not run past it. */
int rp_breaks_may_run(struct replay *r, uint64_t a, uint64_t b, bool *maybe,
                      uint64_t *last_end);
/* The first position at or after from where an armed breakpoint's window
 * begins (from itself when unknown, the end when none may ever run). */
int rp_breaks_next_run(struct replay *r, uint64_t from, uint64_t *at);
/* First event index >= from that is not I/O (nev if none). */
uint64_t rp_next_stop(const struct replay *r, uint64_t from);
/* Index of the first unconsumed event in the canonical state at p. */
uint64_t rp_event_at(const struct replay *r, uint64_t p);
int rp_fail(struct replay *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* store error with its detail */
int rp_store_fail(struct replay *r, int err, const char *what);
/* Machine from the trace's metadata, its vCPU on r->engine (unicorn when
 * NULL); RAM loaded as of snapshot 0 when load_ram (needs the snapshots
 * loaded). */
int rp_machine_create(struct replay *r, bool load_ram);
int rp_load_snapshot0(struct replay *r);

/* ---- restore.c ---- */
/* Moves to checkpoint c (pages that may differ, then CPU state). */
int rp_restore_cp(struct replay *r, struct cp *c);
/* A checkpoint for index snapshot i / recorded snapshot k (built from the
 * trace on first use, then kept in the pool). */
int rp_cp_of_isnap(struct replay *r, size_t i, struct cp **out);
int rp_cp_of_snap(struct replay *r, uint32_t k, struct cp **out);
/* The CPU state recorded with snapshot k (checked). */
int rp_snap_cpu(struct replay *r, uint32_t k, struct vmm_cpu_state *s);
/* Checkpoint of the current (canonical) state. */
int rp_cp_here(struct replay *r, struct cp **out);
/* Puts back what the user changed at this position. */
int rp_user_undo(struct replay *r);
/* Remembers page gfn's contents before the user first writes it. */
int rp_user_save_page(struct replay *r, uint64_t gfn);
int rp_user_save_cpu(struct replay *r);

/* ---- run.c ---- */
extern const struct vmm_io_ops rp_replay_io;
/* Checks an access against event e (kind, address, size, written value)
 * and gives the value read.  REPLAY_E_DIVERGED with r->detail otherwise. */
int rp_io_match(struct replay *r, const struct store_event *e, bool mmio,
                uint64_t addr, unsigned size, bool write, uint64_t *val);
/* Consumes the non-I/O events due at the current position. */
int rp_normalize(struct replay *r);
/* Runs forward to position target (<= end) or the first stop r->arm asks
 * for; *why says which.  Breakpoints at the starting position do not
 * stop (gdb steps over them). */
int rp_run(struct replay *r, uint64_t target, enum rp_why *why);
/* Arms breakpoints/watchpoints in the vCPU for mode. */
int rp_arm(struct replay *r, enum rp_arm mode);
bool rp_is_break(const struct replay *r, uint64_t pc);
uint64_t rp_pc(struct replay *r);
/* The watchpoint an access [addr, addr+len) of kind hit: its kind and
 * the first watched byte. */
bool rp_watch_match(const struct replay *r, uint64_t addr, uint32_t len,
                    uint32_t kind, uint64_t *first, uint32_t *wkind);
/* Begins/ends a public call that may be interrupted. */
void rp_call_begin(struct replay *r);
void rp_call_end(struct replay *r);
bool rp_interrupted(struct replay *r);

/* Is the replay on kvm-step (single steps; virtual != physical)? */
static inline bool rp_kvmstep(const struct replay *r)
{
    return r->engine && !strcmp(r->engine, RP_ENGINE_KVMSTEP);
}

/* ---- travel.c ---- */
int rp_goto(struct replay *r, uint64_t icount);

/* ---- index.c ---- */
/* Indexes trace (replay_index); follow: while it is being recorded. */
int rp_index_trace(const char *trace, const struct replay_opts *o,
                   bool follow);
/* The detail of the last rp_index_trace failure in this thread. */
const char *rp_index_detail(void);

#endif /* TTVM_REPLAYER_INT_H */
