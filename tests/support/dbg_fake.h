/*
 * dbg_fake.h — a fake debugger target (struct dbg_target_ops) with a tiny,
 * deterministic "recording" computed from the position, so the stub can be
 * tested without a VM and every answer checked against ground truth.
 *
 * The program: position i (0 <= i <= end) has
 *   rip = DBG_FAKE_CODE + 4 * (i % 16)   (16 four-byte nops, looping)
 *   rax = i, rbx = 3i, rcx = ~i, other registers derived from i;
 * instruction i with i % 16 == 5 writes the 8-byte value i to variable
 * (i / 16) % 4 (at DBG_FAKE_DATA + 8 * var); i % 16 == 9 reads it.
 * Variables start as 0x1111 * (var + 1).  Memory: code at DBG_FAKE_CODE
 * (0x1000 bytes of `nopl 0x0(%rax)`), data page, stack page; anything else
 * is unmapped.  Events every 100 instructions (at 100k + 50, pio-out), an
 * exit event at the end when the guest "exited"; snapshots every 250.
 *
 * Register/memory writes live in an overlay that any move discards, as
 * the replayer's do.
 */
#ifndef TTVM_TESTS_DBG_FAKE_H
#define TTVM_TESTS_DBG_FAKE_H

#include "debugger/debugger.h"

#define DBG_FAKE_CODE 0x100000ull
#define DBG_FAKE_DATA 0x200000ull
#define DBG_FAKE_STACK 0x300000ull
#define DBG_FAKE_NVARS 4

struct dbg_fake_config {
    uint64_t end; /* positions 0..end; 0 = 1000 */
    bool exited;  /* the recording ends with the guest's exit */
    int exit_status;
    unsigned delay_us; /* sleep per instruction stepped (interrupt tests) */
    uint64_t fail_at;  /* moving onto this position fails with
                          REPLAY_E_DIVERGED (0 = never) */
};

struct dbg_fake;

int dbg_fake_create(const struct dbg_fake_config *cfg, struct dbg_fake **out);
void dbg_fake_destroy(struct dbg_fake *f);
extern const struct dbg_target_ops dbg_fake_ops;

/* Ground truth, independent of the current position and overlays. */
void dbg_fake_state_at(uint64_t icount, struct vmm_cpu_state *s);
uint64_t dbg_fake_pc_at(uint64_t icount);
uint64_t dbg_fake_var_at(uint64_t icount, unsigned var);
/* How many interrupt() calls the target has seen, and how many target
 * operations (goto/step/cont) ran. */
unsigned dbg_fake_interrupts(const struct dbg_fake *f);
unsigned dbg_fake_ops_run(const struct dbg_fake *f);
/* Breakpoints and watchpoints currently armed. */
size_t dbg_fake_nbreaks(const struct dbg_fake *f);
size_t dbg_fake_nwatches(const struct dbg_fake *f);

#endif
