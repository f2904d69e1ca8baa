/*
 * vcpu_kvmstep_int.h — private to the kvm-step backend (vcpu_kvmstep*.c).
 *
 * A header of its own, like the Unicorn backend's: it needs Capstone (the
 * instruction decoder), which the rest of vmm/ does not.  The files:
 *   vcpu_kvmstep.c        the ops table, the run loop, one plain step,
 *                         exceptions and interrupt delivery, the CPL check
 *   vcpu_kvmstep_insn.c   what an instruction is (length, branch, string,
 *                         return to CPL3...), IDT gates, exception frames
 *   vcpu_kvmstep_rep.c    rep string instructions, iteration by iteration
 *   vcpu_kvmstep_watch.c  write watchpoints
 */
#ifndef TTVM_VCPU_KVMSTEP_INT_H
#define TTVM_VCPU_KVMSTEP_INT_H

#include <capstone/capstone.h>
#include <stdatomic.h>

#include "vmm/vmm_int.h"

#define KS_MAX_BP 64
#define KS_MAX_WATCH 16
#define KS_MAX_SAVE 256    /* pages kept around watched ranges per step */
#define KS_REP_MAX 65536   /* iterations of one rep run in one go at most */
#define KS_NDR 4           /* hardware breakpoints (DR0-DR3) */
#define KS_DECODE_CACHE 512

/* What the backend needs to know about one instruction. */
enum ks_ret { KS_RET_NONE = 0, KS_RET_IRET, KS_RET_FAR, KS_RET_USER };

struct ks_insn {
    uint64_t lin;        /* linear address of its first byte */
    uint8_t mode;        /* 0 = 16-bit, 1 = 32-bit, 2 = 64-bit code */
    uint8_t n;           /* bytes read at lin (fewer at the end of memory) */
    uint8_t bytes[15];
    uint8_t len;         /* its length; 0 = Capstone cannot decode it */
    bool branch;         /* may continue elsewhere than at lin + len */
    bool x87;            /* D8-DF: may change x87 state and write memory */
    bool hlt;            /* F4 (a single step over it reports no HLT) */
    int16_t vec;         /* vector it raises by design (int n, #DE of a
                            div, #UD of ud2), or -1 */
    /* string instructions (MOVS CMPS STOS LODS SCAS INS OUTS) */
    bool str;
    uint8_t op;          /* the opcode byte */
    uint8_t esize;       /* element size */
    uint8_t asz;         /* address size in bytes: 2, 4, 8 */
    uint8_t rep;         /* 0, 0xf2 or 0xf3 */
    uint8_t seg;         /* segment override prefix, or 0 */
    /* returns that may change the privilege level */
    uint8_t ret;         /* enum ks_ret */
    uint8_t opsz;        /* operand size of IRET/RETF */
};

/* A watched range's bytes that are in RAM now (through the page tables). */
struct ks_piece {
    uint64_t va, gpa;
    uint32_t len, at;    /* bytes; offset of their copy in wbuf */
};

struct ks {
    struct vcpu *cpu;    /* the kvm-step vCPU */
    struct vcpu *in;     /* the KVM vCPU it steps, over the same RAM */
    const struct vmm_host_caps *host;
    csh cs[3];           /* Capstone per code size */
    bool cs_ok[3];
    uint64_t icount;

    uint64_t bp[KS_MAX_BP];
    size_t nbp;
    vcpu_hit_fn hit;
    void *hit_ctx;
    bool window_on;
    atomic_int kicked;

    /* the step in flight: io callbacks see pre.regs (vmm.h) */
    struct vmm_cpu_state pre; /* regs, sregs, events before it */
    bool in_step;
    bool io_stop, io_mmio; /* an io callback asked to stop; its kind */
    struct vcpu_exit io_exit;

    /* a rep stopped part way at rep_rip: its next iteration is not a new
     * instruction (a breakpoint there fired at the first) */
    bool rep_cont;
    uint64_t rep_rip;
    bool pre_cont;       /* rep_cont before the step in flight */

    /* hardware breakpoints armed in the inner vCPU: handler entries */
    uint64_t dr[KS_NDR];
    size_t ndr;

    /* write watchpoints (vcpu_kvmstep_watch.c) */
    struct vcpu_watch w[KS_MAX_WATCH];
    size_t nw;
    struct ks_piece *piece;
    size_t npiece, cap_piece;
    uint8_t *wbuf;       /* watched bytes before the step */
    size_t wbuf_cap;
    uint64_t save_gfn[KS_MAX_SAVE];
    size_t nsave;
    uint8_t *save;       /* those pages before the step */
    uint8_t *after;      /* and after it, at a hit */
    bool pre_full_ok;    /* pre_full holds the whole state (x87 insn) */
    struct vmm_cpu_state pre_full;
    bool skip_watch;     /* the instruction at skip_pos already stopped */
    uint64_t skip_pos;

    struct ks_insn cache[KS_DECODE_CACHE];
    bool cache_used[KS_DECODE_CACHE];
};

static inline struct ks *ks_of(struct vcpu *cpu) { return cpu->priv; }

/* ---- vcpu_kvmstep_insn.c ---- */
int ks_insn_init(struct ks *ks);
void ks_insn_fini(struct ks *ks);
/* The instruction at s's rip (cached, checked against the bytes).  NULL
 * when no byte of it can be read (unmapped, outside RAM). */
const struct ks_insn *ks_decode(struct ks *ks, const struct vmm_sregs *s,
                                uint64_t rip);
/* Linear address of the handler of vector v in s's IDT; false when the
 * gate is missing, not present or not an interrupt/trap gate. */
bool ks_gate_target(struct ks *ks, const struct vmm_sregs *s, unsigned v,
                    uint64_t *lin);
/* An exception frame of the state before a step (pre) near the stack
 * pointer of the state after it (post): the CPU delivered a vector. */
bool ks_frame_found(struct ks *ks, const struct vmm_cpu_state *pre,
                    const struct vmm_cpu_state *post,
                    const struct ks_insn *in);
/* The privilege level a return instruction goes to (from its stack
 * frame), or -1 when it cannot be read. */
int ks_ret_cpl(struct ks *ks, const struct vmm_cpu_state *s,
               const struct ks_insn *in);

/* ---- vcpu_kvmstep.c (shared with rep and watch) ---- */
/* One KVM single step of the inner vCPU with the io callbacks seeing
 * ks->pre; an I/O exit is completed before it returns (reason IO). */
int ks_kvm_step(struct ks *ks, struct vcpu_exit *ie);
/* Arms the handler entries of the vectors in vecs[0..n) (as many as fit)
 * as hardware breakpoints, never the instruction at cur (RF is ignored
 * under kvm-pvm: it would fire again at once). */
int ks_arm_handlers(struct ks *ks, const struct vmm_sregs *s, uint64_t cur,
                    const int *vecs, size_t n);
bool ks_is_armed(const struct ks *ks, uint64_t lin);
/* Describes the failure in e (reason ERROR) and returns err. */
int ks_fail(struct vcpu_exit *e, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- vcpu_kvmstep_rep.c ---- */
/* Runs up to want iterations (>= 1) of the rep string instruction in at
 * ks->pre (RCX != 0 for its address size): *adv positions, e filled when
 * the run must stop (reason != NONE). */
int ks_rep_step(struct ks *ks, const struct ks_insn *in, uint64_t want,
                struct vcpu_exit *e, uint64_t *adv);

/* ---- vcpu_kvmstep_watch.c ---- */
int ks_set_watchpoints(struct vcpu *cpu, const struct vcpu_watch *w,
                       size_t n);
/* Before a step: copies the watched bytes and the pages around them. */
int ks_watch_before(struct ks *ks, const struct ks_insn *in);
/* After the step of the instruction at position pos (adv positions):
 * a changed watched byte is a hit: the hit filter decides, and a stop
 * puts the state before the step back (e filled, reason WATCH). */
int ks_watch_after(struct ks *ks, uint64_t pos, uint64_t adv,
                   struct vcpu_exit *e);
void ks_watch_free(struct ks *ks);

#endif /* TTVM_VCPU_KVMSTEP_INT_H */
