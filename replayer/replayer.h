/*
 * replayer.h — the timeline of a recorded run: reach the exact state before
 * any instruction, forwards or backwards.
 *
 * A position (icount) is the state just before the guest's icount-th
 * instruction (0-based) executes.  Each iteration of a `rep` string
 * instruction counts as one; an instruction that faults counts as one (the
 * next position is the first instruction of its handler); interrupt
 * delivery is not an instruction.  Position end_icount is the state after
 * the last recorded instruction.
 *
 * Built on vmm.h (the Unicorn backend re-executes; KVM single-steps where
 * Unicorn cannot) and store.h (snapshots, events, the index).
 *
 * Errors: 0, -errno, or REPLAY_E_*; replay_strerror() names them and
 * replay_error_detail() says more (e.g. the divergence).
 */
#ifndef TTVM_REPLAYER_H
#define TTVM_REPLAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vmm.h"

enum {
    REPLAY_E_DIVERGED = -5300, /* replay differs from the recording */
    REPLAY_E_RANGE = -5301,    /* position outside [0, end] */
    REPLAY_E_MEMORY = -5302,   /* guest address not mapped / outside RAM */
    REPLAY_E_PAGING = -5303,   /* non-identity paging: no exact engine */
    REPLAY_E_NOINDEX = -5304,  /* trace not indexed and indexing refused */
    REPLAY_E_INTERRUPTED = -5305, /* replay_interrupt() was called */
    REPLAY_E_ARG = -5306,
    REPLAY_E_LIMIT = -5307,    /* too many breakpoints/watchpoints */
};
const char *replay_strerror(int err);

struct replay; /* opaque */

/* Progress callback for long work (indexing, long searches): done/total in
 * arbitrary units; return non-zero to cancel (REPLAY_E_INTERRUPTED). */
typedef int (*replay_progress_fn)(void *ctx, const char *what, uint64_t done,
                                  uint64_t total);

struct replay_opts {
    bool no_auto_index;        /* fail with REPLAY_E_NOINDEX instead */
    uint64_t checkpoint_bytes; /* in-memory checkpoint budget; 0 = default
                                  (256 MiB) */
    replay_progress_fn progress;
    void *progress_ctx;
    const uint8_t *key;        /* for encrypted traces */
    bool follow;               /* replay_index: the trace is still being
                                  recorded (by another process): index it
                                  as it is committed, write the index once
                                  it is complete (or its recorder died) */
    bool no_skip;              /* re-execute every stretch a search spans,
                                  even where the index's code coverage
                                  says no breakpoint can run (ground truth
                                  for tests) */
};

/* Opens a trace for replay, indexing it first when the index is missing
 * (with progress).  The position is 0 afterwards. */
int replay_open(const char *trace, const struct replay_opts *o,
                struct replay **out);
void replay_close(struct replay *r);
const char *replay_error_detail(const struct replay *r);

/* Indexes a trace (ttvm index): re-executes it all under Unicorn, checks
 * every event's registers, stores positions.  A guest that turns on
 * non-identity paging is indexed again from the start on kvm-step (KVM
 * single steps, ~70 000 instructions/s), and the index names its engine:
 * replays use it too (replay_engine).  Returns REPLAY_E_DIVERGED with
 * detail naming event index, icount and a register diff; REPLAY_E_PAGING
 * when neither engine can run the guest here (the detail says why: e.g.
 * CPL3 code under kvm-pvm, which cannot be single-stepped). */
int replay_index(const char *trace, const struct replay_opts *o);

uint64_t replay_icount(const struct replay *r);
uint64_t replay_end(const struct replay *r);
/* Name of the engine serving the current position ("unicorn", "kvm-step"). */
const char *replay_engine(const struct replay *r);

/* Asynchronously cancels a running goto/step/continue (signal-safe). */
void replay_interrupt(struct replay *r);

/* ---- moving in time ---- */

enum replay_reason {
    REPLAY_STOP_STEP = 1u << 0,  /* requested position reached */
    REPLAY_STOP_BREAK = 1u << 1, /* breakpoint (pc) */
    REPLAY_STOP_WATCH = 1u << 2, /* watchpoint: watch_* fields */
    REPLAY_STOP_BEGIN = 1u << 3, /* reached position 0 going backwards */
    REPLAY_STOP_END = 1u << 4,   /* reached end_icount going forwards */
    REPLAY_STOP_EXITED = 1u << 5,/* at the end: the guest's exit */
    REPLAY_STOP_INTERRUPTED = 1u << 6,
};

struct replay_stop {
    unsigned reasons; /* bitmask of every enum replay_reason that holds */
    uint64_t icount;
    uint64_t pc;
    uint64_t watch_addr;   /* first byte of the watched range that was hit */
    uint32_t watch_kind;   /* enum vcpu_watch_kind */
    uint32_t pad;
    uint64_t watch_icount; /* position of the accessing instruction */
    int exit_status;       /* REPLAY_STOP_EXITED */
};

/* Goes to position icount (REPLAY_E_RANGE beyond end). */
int replay_goto(struct replay *r, uint64_t icount);

/* Steps n instructions forward (n > 0) or backward (n < 0), stopping early
 * at breakpoints only if honour_breaks.  Clamps at the ends (reason
 * BEGIN/END). */
int replay_step(struct replay *r, int64_t n, bool honour_breaks,
                struct replay_stop *stop);

/* Continues forward until a breakpoint, a watchpoint or the end; or
 * backward to the last breakpoint/watchpoint hit before the current
 * position, or to 0.  Semantics follow gdb: forward, a watchpoint stops
 * after the accessing instruction; backward, it stops before it (the
 * memory still holds the old value), and a breakpoint at the current pc
 * does not stop a reverse continue at its start. */
int replay_continue(struct replay *r, bool backward, struct replay_stop *st);

/* ---- breakpoints and watchpoints (apply to steps and continues) ---- */

int replay_break_add(struct replay *r, uint64_t addr);
int replay_break_remove(struct replay *r, uint64_t addr);
int replay_watch_add(struct replay *r, uint64_t addr, uint32_t len,
                     enum vcpu_watch_kind kind);
int replay_watch_remove(struct replay *r, uint64_t addr, uint32_t len,
                        enum vcpu_watch_kind kind);

/* ---- state at the current position ---- */
/* Writes change only the current replay state and are discarded when the
 * position changes. */

int replay_get_state(struct replay *r, struct vmm_cpu_state *s);
int replay_set_state(struct replay *r, const struct vmm_cpu_state *s);
/* Guest-virtual addresses, translated through the guest page tables when
 * paging is on.  *done bytes were transferred before any unmapped byte
 * (REPLAY_E_MEMORY when 0). */
int replay_read_mem(struct replay *r, uint64_t gva, void *buf, size_t len,
                    size_t *done);
int replay_write_mem(struct replay *r, uint64_t gva, const void *buf,
                     size_t len, size_t *done);

/* ---- the recording around the position (for `monitor` and the CLI) ---- */

struct replay_event {
    uint64_t index;  /* event index */
    uint64_t icount; /* its position */
    uint32_t kind;   /* enum store_event_kind (storage/store.h) */
    uint32_t aux;
    uint64_t addr, value;
    uint8_t size;
};
/* Events [first, first+n); *got may be fewer at the end. */
int replay_events(struct replay *r, uint64_t first, struct replay_event *ev,
                  size_t n, size_t *got);
uint64_t replay_event_count(const struct replay *r);
/* Index of the first event at or after the current position. */
uint64_t replay_next_event(const struct replay *r);

struct replay_snapshot {
    uint32_t id, reason;
    uint64_t icount, event_index, npages;
};
int replay_snapshots(struct replay *r, uint32_t first,
                     struct replay_snapshot *s, size_t n, size_t *got);
uint32_t replay_snapshot_count(const struct replay *r);

/* ---- verification on KVM (`ttvm replay --verify`) ---- */

struct replay_verify_opts {
    uint32_t from_snapshot;    /* start from this snapshot (0 = boot) */
    int console_fd;            /* re-display the guest's serial output
                                  here; -1 = do not */
    const uint8_t *key;
    replay_progress_fn progress;
    void *progress_ctx;
};

struct replay_verify_result {
    uint64_t first_event;      /* where checking started */
    uint64_t events_checked;
    bool diverged;
    uint64_t event_index;      /* first differing event when diverged */
    bool trace_complete;       /* false: the recorder died; checked up to
                                  the last committed event */
    uint32_t exit_kind;        /* enum vmm_stop_kind at the end */
    int exit_status;
    char detail[2048];         /* divergence: kind, expected vs actual */
};

/*
 * Re-executes the trace on the KVM backend from a snapshot, feeding logged
 * inputs at their exits and injecting logged interrupts at their points (a
 * kick point is reached by restoring its snapshot), and checks at every
 * event that registers and outputs match the recording.  Returns 0 when
 * the run was checked to its end (res->diverged says how it went), or an
 * error when it could not be checked at all.
 */
int replay_verify(const char *trace, const struct replay_verify_opts *o,
                  struct replay_verify_result *res);

/* The guest image stored in the trace (for gdb's symbol file). *img is
 * borrowed, valid until replay_close. */
int replay_guest_image(struct replay *r, const void **img, size_t *len);
/* The guest image's file name as recorded ("guest" if the trace has none);
 * valid until replay_close. */
const char *replay_guest_name(struct replay *r);

#endif /* TTVM_REPLAYER_H */
