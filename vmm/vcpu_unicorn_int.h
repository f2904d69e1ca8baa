/*
 * vcpu_unicorn_int.h — private to the Unicorn backend (vcpu_unicorn*.c).
 *
 * A header of its own rather than a section of vmm_int.h: it needs
 * <unicorn/unicorn.h> and <capstone/capstone.h>, which the rest of vmm/
 * (KVM backend, devices, loaders) must not depend on.
 *
 * How positions are counted (the heart of this backend): a UC_HOOK_BLOCK
 * hook sees every translation block (TB) Unicorn is about to execute.  Each
 * block is decoded once with Capstone (cached per address, verified against
 * the guest bytes on every entry), so the position advances by the block's
 * instruction count when the next block begins.  A stop inside a block uses
 * a per-address UC_HOOK_CODE hook at the target instruction; stops, faults
 * and I/O inside a block are located from the instruction list.
 * Unicorn's own `count` argument is never used: adding its hook does not
 * reach blocks translated before, and removing it flushes every TB (~15 ms).
 */
#ifndef TTVM_VCPU_UNICORN_INT_H
#define TTVM_VCPU_UNICORN_INT_H

#include <capstone/capstone.h>
#include <unicorn/unicorn.h>

#include "vmm/vmm_int.h"

/* ---- decoded translation blocks ---------------------------------------- */

enum {
    UBLK_REP_FIRST = 1u << 0, /* first instruction is a rep string insn */
    UBLK_REP_A32 = 1u << 1,   /* ... with a 32-bit address size (ECX) */
    UBLK_REP_A16 = 1u << 2,   /* ... with a 16-bit address size (CX) */
    UBLK_MODE_CHG = 1u << 3,  /* may change CS (far jmp/call/ret, iret) */
    UBLK_ARMED = 1u << 15,    /* its sites' code hooks are installed */
};

/* Code size of a block: how Capstone must decode it. */
enum umode { UMODE_16 = 0, UMODE_32 = 1, UMODE_64 = 2 };

/* Kinds of instructions that need a code hook of their own ("sites"). */
enum usite_kind {
    USITE_IO = 1u << 0,     /* IN/OUT/INS/OUTS: exact regs in the callback */
    USITE_NOREPLAY = 1u << 1, /* RDTSC, RDTSCP, RDRAND, RDSEED, RDPID, RDPMC */
    USITE_MSR = 1u << 2,    /* RDMSR/WRMSR: emulated outside (EFER.SCE) */
    USITE_CR = 1u << 3,     /* MOV to CR0/CR3/CR4: re-check paging after */
};

struct ublk {
    uint64_t addr;
    uint32_t size;
    uint16_t ninsn;
    uint16_t flags;      /* UBLK_* */
    uint8_t mode;        /* enum umode it was decoded in */
    unsigned sites;      /* union of usite_kind over its instructions */
    uint8_t *bytes;      /* copy of the guest bytes, to detect changes */
    uint16_t *off;       /* ninsn + 1 instruction offsets (off[ninsn] = size) */
    uint8_t *kind;       /* per instruction: usite_kind bits */
    uint32_t cover_epoch;/* coverage window it was last noted in (0: none) */
    struct ublk *next;   /* hash chain */
};

#define UBLK_HASH 4096

struct ublk_cache {
    csh cs[3]; /* per enum umode */
    struct ublk *tab[UBLK_HASH];
    size_t count;
};

int ublk_cache_init(struct ublk_cache *c);
void ublk_cache_fini(struct ublk_cache *c);
/* The decoded block at addr of size bytes, decoding (again) when new or
 * when the guest bytes changed (*changed: a block was cached there with
 * other bytes).  Undecodable bytes ending the block are one (undefined,
 * #UD) instruction.  NULL when it cannot be decoded (outside RAM, or more
 * undecodable bytes than one instruction has); *why says why. */
struct ublk *ublk_get(struct ublk_cache *c, const uint8_t *ram,
                      uint64_t ram_size, uint64_t addr, uint32_t size,
                      enum umode mode, bool *changed, const char **why);
/* Drops cached blocks overlapping [gpa, gpa+len). */
void ublk_drop(struct ublk_cache *c, uint64_t gpa, uint64_t len);
/* Calls fn for every cached block (every block that ever ran). */
void ublk_foreach(struct ublk_cache *c,
                  void (*fn)(void *ctx, const struct ublk *b), void *ctx);
/* Index of the instruction starting at addr in b, ninsn for its end, -1
 * when addr is not an instruction boundary of b. */
int ublk_index(const struct ublk *b, uint64_t addr);
/* Decodes the one instruction at addr (length, mnemonic) for reports. */
int ublk_insn_at(struct ublk_cache *c, const uint8_t *ram, uint64_t ram_size,
                 uint64_t addr, enum umode mode, unsigned *len, char *text,
                 size_t cap);

/* ---- where Unicorn keeps what its API does not expose ------------------- */

/* Offsets into the CPU context blob (uc_context_save), found and checked
 * once per process by probing a scratch instance (vcpu_unicorn_state.c). */
struct ulayout {
    size_t data;          /* offset of CPUX86State inside the uc_context */
    size_t size;          /* bytes valid from data */
    size_t hflags;        /* uint32_t */
    size_t segs;          /* SegmentCache[6] ES CS SS DS FS GS, then LDT TR */
    size_t seg_stride;    /* sizeof(SegmentCache) */
    size_t efer;          /* uint64_t */
    size_t error_code;    /* int: error code of the last exception */
    size_t old_exception; /* int: QEMU's never-reset "exception in flight" */
};
int ulayout_get(const struct ulayout **out, char *why, size_t cap);

/* ---- the vCPU ------------------------------------------------------------ */

enum ustop_kind {
    USTOP_NONE = 0,
    USTOP_AT,        /* stopped before the instruction at `pos` */
    USTOP_EXC,       /* exception/interrupt reported by Unicorn */
    USTOP_SYSCALL,   /* syscall executed as a no-op: emulate */
    USTOP_INVALID,   /* #UD (or sysret to emulate) */
    USTOP_REFAULT,   /* a stale old_exception turned a fault into #DF */
    USTOP_ERROR,     /* internal error: detail */
};

enum ustop_why {
    UWHY_LIMIT = 1,  /* target position reached */
    UWHY_RESTART,    /* hooks were armed: run again from here */
    UWHY_BREAK,
    UWHY_IOSTOP,     /* an io callback asked to stop after its insn */
    UWHY_NOREPLAY,
    UWHY_MSR,
    UWHY_PAGING,
    UWHY_KICK,
    UWHY_IOGP,       /* port denied by IOPL and the TSS bitmap: #GP(0) */
    UWHY_WATCH,      /* a watchpoint hit: roll back to before the insn */
    UWHY_WINDOW,     /* interrupt window open (request_irq_window) */
};

#define UNI_MAX_BP 64
#define UNI_MAX_WATCH 32
#define UNI_UNDO 64 /* writes one instruction can make that we undo */

struct uundo {
    uint64_t addr;
    uint8_t len;
    uint8_t old[16];
};
#define UNI_MAX_SITES 4096

struct usite {
    uint64_t addr;
    uc_hook h;
};

struct uni {
    struct vcpu *cpu;
    uc_engine *uc;
    uc_context *ctx;
    const struct ulayout *lay;
    struct ublk_cache blocks;
    uc_hook h_block, h_intr, h_invalid, h_in, h_out, h_syscall, h_cpuid;
    uc_hook h_mmio;

    /* position accounting */
    uint64_t pos_base;    /* position at the start of cur (or now) */
    struct ublk *cur;     /* block being executed, NULL between runs */
    unsigned cur_eff;     /* instructions cur counts (0: rep tail) */
    uint64_t last_insn;   /* address of the last instruction completed */
    enum umode mode;      /* code size of CS now */

    /* the current run */
    uint64_t target;      /* stop before this position */
    uint64_t stop_addr;   /* temporary code hook for target, 0 = none */
    uc_hook h_stop;
    bool h_stop_on;
    bool stopping;        /* a stop was requested in this run */
    enum ustop_kind stop;
    enum ustop_why why;
    uint64_t stop_pos;    /* USTOP_AT / after USTOP_EXC etc. */
    uint64_t stop_rip;
    uint32_t exc_vector;
    uint32_t exc_err;
    bool exc_soft;        /* int n / int3: trap, RIP after */
    unsigned soft_len;    /* length of that INT instruction */
    unsigned refaults;    /* USTOP_REFAULT retries in a row */
    uint64_t io_rip;      /* in an io callback: the accessing insn */
    uint64_t io_pos;
    bool io_valid;        /* io_rip/io_pos set by the site's code hook */
    bool in_io;
    bool io_stop_after;   /* stop before the next instruction */
    int io_err;
    struct vcpu_exit last_exit; /* io/mmio member of the last access */
    bool last_is_mmio;
    uint64_t skip_pos;    /* resume at a breakpoint: do not re-trigger */
    bool skip_bp_on;
    bool paging_check;    /* re-check paging before the next instruction */
    bool paging_bad;
    /* Page-table pages seen by the last paging check: [pt_lo, pt_hi) is
     * watched by a write hook; a write there re-checks paging. */
    uint64_t pt_lo, pt_hi;
    uint64_t pt_hook_lo, pt_hook_hi;
    uc_hook h_pt;
    bool pt_hook_on;
    bool window_on;       /* request_irq_window(true) */
    bool retranslated;    /* a changed block was just dropped */
    char detail[256];

    /* hooks installed on special instructions and breakpoints */
    struct usite *sites;
    size_t nsites;
    struct usite bps[UNI_MAX_BP];
    size_t nbps;

    /* state Unicorn cannot hold */
    bool sce;             /* EFER.SCE: kept out of Unicorn (see state.c) */
    uint64_t tsc_aux;
    uint64_t cr8, apic_base, xcr0;
    struct vmm_events events;
    bool shutdown;        /* triple fault pending report */

    /* instructions seen accessing MMIO, to hook at the next block */
#define UNI_MAX_NEW_MMIO 16
    uint64_t mmio_new[UNI_MAX_NEW_MMIO];
    unsigned nmmio_new;
    /* MMIO read in flight: value served by the mem hook */
    uint64_t mmio_gpa;
    uint8_t mmio_val[16];
    unsigned mmio_len;

    volatile int kicked;
    uint64_t *dirty;      /* pages written (bit per page): the KVM
                             fallback's, or our own dirty log's */
    bool dirty_own;       /* dirty is the dirty log's (vcpu_dirty_log) */
    uc_hook h_dirty;

    /* Watchpoints.  While any is armed, a code hook on every instruction
     * keeps RIP/EFLAGS exact at memory hooks and stops right after the
     * accessing instruction, and a write hook on all RAM logs what the
     * current instruction overwrote, so the hit is rolled back to the
     * state before that instruction (vmm.h: VCPU_EXIT_WATCH). */
    struct vcpu_watch watches[UNI_MAX_WATCH];
    uc_hook h_wread[UNI_MAX_WATCH];
    size_t nwatch;
    bool watch_mode;
    uc_hook h_all_code, h_all_write;
    struct uundo undo[UNI_UNDO];
    unsigned nundo;
    bool undo_lost;       /* more writes than undo[] holds */
    bool watch_hit;
    uint64_t watch_pos;
    struct vmm_regs watch_regs;
    uint64_t watch_addr, watch_value;
    uint32_t watch_len, watch_kind;
    bool skip_watch_on;   /* resuming at a hit: let that insn run */
    uint64_t skip_watch_pos;

    /* hit filter (vmm.h set_hit_filter) and the error it returned */
    vcpu_hit_fn hit_fn;
    void *hit_ctx;
    int hit_err;

    /* code coverage (vcpu_coverage, vcpu_unicorn_cover.c) */
    bool cover_on;
    bool cover_lost;      /* out of memory: this window is unknown */
    uint32_t cover_epoch;
    struct vcpu_code_range *cover;
    size_t ncover, capcover;
};

#define NO_INSN UINT64_MAX

/* Code coverage (vcpu_unicorn_cover.c). */
void uni_cover_block(struct uni *u, struct ublk *b);
int uni_coverage(struct vcpu *cpu, bool on);
int uni_coverage_take(struct vcpu *cpu, struct vcpu_code_range **out,
                      size_t *n);
void uni_cover_fini(struct uni *u);

static inline struct uni *uni_of(struct vcpu *cpu) { return cpu->priv; }

/* vcpu_unicorn.c */
/* From a hook: stop emulation; after_stop() acts on kind/why/pos. */
void uni_request_stop(struct uni *u, enum ustop_kind k, enum ustop_why w,
                      uint64_t pos);

/* Asks the hit filter whether a breakpoint (kind 0) or watch hit at pos
 * stops the run: true to stop (no filter, filter > 0, or an error kept in
 * u->hit_err for after_stop to return). */
bool uni_hit_stops(struct uni *u, uint64_t pos, uint64_t rip, uint64_t addr,
                   uint32_t len, uint32_t kind);

/* Makes every translation block that ran be translated again (so new
 * memory hooks reach them): per block, never Unicorn 2.0.1's TB flush,
 * which memsets its whole 1 GiB code buffer (faulting it all in the
 * first time: seconds, and 1 GiB resident). */
int uni_retranslate_all(struct uni *u);

/* vcpu_unicorn_watch.c */
int uni_op_set_watchpoints(struct vcpu *cpu, const struct vcpu_watch *w,
                           size_t n);
/* Rolls a pending hit back to the state before its instruction and fills
 * *e (VCPU_EXIT_WATCH).  Returns 1. */
int uni_watch_rollback(struct uni *u, struct vcpu_exit *e);

/* vcpu_unicorn_state.c */
int uni_get_regs(struct uni *u, struct vmm_regs *r);
int uni_set_regs(struct uni *u, const struct vmm_regs *r);
int uni_get_state(struct uni *u, struct vmm_cpu_state *s);
int uni_set_state(struct uni *u, const struct vmm_cpu_state *s);
int uni_get_sregs(struct uni *u, struct vmm_sregs *s);
/* Writes segment registers exactly (selector and hidden part) and
 * recomputes Unicorn's hflags; NULL leaves that segment unchanged.  Also
 * clears QEMU's stale exception-in-flight state. */
int uni_load_segs(struct uni *u, const struct vmm_segment *cs,
                  const struct vmm_segment *ss);
/* EFER as the guest sees it (Unicorn's own wrmsr drops NXE/SCE). */
int uni_set_efer(struct uni *u, uint64_t efer);
uint64_t uni_efer(struct uni *u);
/* 1 when QEMU's interrupt shadow (after STI / MOV SS) is active. */
int uni_irq_shadow(struct uni *u);
/* Re-reads the code size (16/32/64) from QEMU's hflags into u->mode. */
int uni_refresh_mode(struct uni *u);
/* Clears QEMU's old_exception (see NOTES: never reset by Unicorn). */
int uni_clear_exception(struct uni *u);
/* QEMU's old_exception now (-1 = none). */
int uni_exception_marker(struct uni *u);
/* Error code of the exception Unicorn just reported. */
uint32_t uni_error_code(struct uni *u);
uint64_t uni_reg(struct uni *u, int id);
void uni_set_reg(struct uni *u, int id, uint64_t v);

/* Records [gpa, gpa+len) as written when u->dirty is set (fallback). */
void uni_mark_dirty(struct uni *u, uint64_t gpa, uint64_t len);

/* vcpu_unicorn_event.c */
/* Delivers vector through the guest IDT (long mode).  has_err/err: error
 * code to push; soft: INT n/INT3 (DPL check, no error code).  Returns 0,
 * 1 when it ended in a triple fault (u->shutdown set), or <0. */
int uni_deliver(struct uni *u, unsigned vector, bool soft, bool has_err,
                uint32_t err);
int uni_emulate_syscall(struct uni *u);
/* Emulates SYSRET at RIP; returns 0, or 1 when it must #GP/#UD instead
 * (delivered). */
int uni_emulate_sysret(struct uni *u, bool rex_w);
int uni_emulate_msr(struct uni *u, bool write);
/* Checks that the guest's paging is identity (VA == PA) for every mapping
 * it can reach.  0 = fine, VMM_E_PAGING with u->detail set otherwise. */
int uni_check_paging(struct uni *u);
bool uni_vector_has_error(unsigned vector);
bool uni_io_allowed(struct uni *u, const uint8_t *insn, unsigned len);

#endif /* TTVM_VCPU_UNICORN_INT_H */
