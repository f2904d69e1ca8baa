/*
 * recorder.h — `ttvm record`: run a booted guest on the live machine and
 * write everything a replay needs into a trace (storage/store.h).
 *
 * What is logged (DESIGN.md "recorder/"): every port/MMIO read value and
 * write, interrupt injections at the exits where they happen, HLTs, kicks,
 * the final exit — each event with the general registers at that point —
 * plus snapshot 0 (the whole machine after boot) and incremental snapshots
 * (full vCPU and device state, pages written since the previous snapshot).
 *
 * Event order and positions (what the replayer relies on):
 *  - PIO/MMIO event: one per access the guest makes, registers before the
 *    accessing instruction; for INS/OUTS one per element (iteration),
 *    registers before that iteration (RCX, RSI/RDI stepped), as Unicorn
 *    and single-stepping see them.  A snapshot taken at that exit is taken
 *    before the event is logged: its state is "before the access" and
 *    replay from it re-executes the instruction (or the rest of a rep),
 *    consuming the event.
 *  - HLT event: registers after the hlt; a snapshot there follows it.
 *  - KICK event: the vCPU was stopped at an arbitrary instruction boundary
 *    to take a snapshot there or to inject an interrupt there (a kick
 *    that does neither is not logged: nothing happened); aux = the
 *    snapshot taken at exactly that point, logged right after.  A rep
 *    string instruction stopped after its last iteration is finished
 *    first (RIP past it), as a replay sees it.
 *  - WINDOW event: interrupt-window exit.  KVM reports it wherever the
 *    guest next stopped inside KVM, an arbitrary boundary, so it is
 *    handled like a kick: aux = the snapshot taken there.
 *  - IRQ event: aux = vector, injected at the point of the event before it
 *    (after the I/O instruction completes, after the hlt, at the kick or
 *    window boundary); its registers are the state there, the one the
 *    interrupt frame saves (the access is completed first for this).
 *  - EXIT event: last; aux = enum vmm_stop_kind, value = exit status.
 *
 * Writing happens on a background thread (compression, LMDB commits) so
 * the vCPU is held only to copy state and dirty pages.
 */
#ifndef TTVM_RECORDER_H
#define TTVM_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"
#include "vmm/vmm.h"

enum {
    REC_E_STATE = -5200,  /* the machine cannot be recorded in this state */
    REC_E_WRITER = -5201, /* the trace writer failed (detail says why) */
    REC_E_ARG = -5202,
};
const char *rec_strerror(int err);

#define REC_DEFAULT_SNAPSHOT_INTERVAL_NS (50ull * 1000 * 1000)
#define REC_DEFAULT_MAX_IRQ_LATENCY_NS (2ull * 1000 * 1000)

struct rec_opts {
    const char *trace;          /* directory to create */
    bool force;                 /* replace an existing trace */
    uint64_t snapshot_interval_ns; /* 0 = default */
    uint64_t max_irq_latency_ns;   /* 0 = default */
    double timeout_s;              /* 0 = none */
    const uint8_t *key;            /* STORE_KEY_BYTES, NULL = not encrypted */
    /* Descriptive metadata stored in the trace. */
    const char *guest_name;   /* file name of the image */
    const char *guest_cmdline;
    const char *argv_line;    /* the ttvm command line */
    enum vmm_boot_mode boot_mode;
    /* Optional: called once the trace exists (created, its format record
     * committed), before the guest runs: e.g. to start a process that
     * follows the trace (`ttvm record --index`).  Never before, so such a
     * process cannot see a trace that --force is about to replace. */
    void (*on_created)(void *ctx, const char *trace);
    void *on_created_ctx;
};

struct rec_stats {
    uint64_t events;
    uint64_t events_by_kind[STORE_EV_KIND_MAX];
    uint32_t snapshots;
    uint64_t kicks;
    uint64_t pages_saved;        /* page versions handed to the writer */
    double wall_s;               /* boot-to-exit run time */
    double pause_median_us;      /* vCPU held per snapshot */
    double pause_p99_us;
    double pause_max_us;
    struct store_stats store;    /* the trace as written */
};

/*
 * Records vm, which must be freshly booted (vmm_boot) from img.  Creates
 * the trace, stores the image and metadata, takes snapshot 0, runs the
 * guest to its end (as vmm_run), then finishes the trace.  *res is what
 * vmm_run would report; *st may be NULL.  On failure the trace is left as
 * far as it got (readable up to its last snapshot) and the error returned;
 * rec_error_detail() then says more.
 */
int rec_record(struct vmm *vm, const void *img, size_t img_len,
               const struct rec_opts *o, struct vmm_run_result *res,
               struct rec_stats *st);

/* Detail of the last rec_record failure in this thread. */
const char *rec_error_detail(void);

#endif /* TTVM_RECORDER_H */
