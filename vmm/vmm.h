/*
 * vmm.h — the guest machine: RAM, CPU backends, devices, boot.
 *
 * This is the only header other modules include from vmm/.  It defines
 *  - the portable CPU state (struct vmm_cpu_state) that both CPU backends,
 *    snapshots and the trace use; its layout is part of the trace format and
 *    is documented in storage/FORMAT.md (it is stored as raw little-endian
 *    bytes, so every struct here has explicit padding and no pointers);
 *  - the CPU backend ops table (struct vcpu_ops: "kvm", "unicorn" and
 *    "kvm-step"), which runs a vCPU over a guest RAM buffer the caller
 *    owns;
 *  - the machine (struct vmm): one RAM mapping, one vCPU, the device bus, the
 *    boot loaders, and the plain run loop used by `ttvm run` and, through
 *    its hooks, by the recorder.
 *
 * Errors: 0 on success, -errno for OS failures, VMM_E_* for ours;
 * vmm_strerror() names both.  Nothing here exits the process.
 */
#ifndef TTVM_VMM_H
#define TTVM_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Errors: -errno stays above -4096; module codes are disjoint ranges:     */
/* vmm -5000.., storage -5100.., recorder -5200.., replayer -5300..,         */
/* debugger -5400..                                                          */

enum {
    VMM_E_IMAGE = -5000,    /* malformed or unsupported guest image */
    VMM_E_RANGE = -5001,    /* address or size outside guest RAM */
    VMM_E_NOKVM = -5002,    /* /dev/kvm missing or unusable */
    VMM_E_KVM = -5003,      /* a KVM ioctl failed unexpectedly */
    VMM_E_UNICORN = -5004,  /* Unicorn reported an error */
    VMM_E_UNSUPPORTED = -5005, /* the backend or host cannot do this */
    VMM_E_STATE = -5006,    /* malformed or incompatible CPU/device state */
    VMM_E_PAGING = -5007,   /* guest uses non-identity paging (Unicorn) */
    VMM_E_ARG = -5008,      /* invalid argument */
    VMM_E_NOSTEP = -5009,   /* the host cannot single-step the guest here
                               (kvm-step: CPL3 under kvm-pvm) */
};

/* Names an error returned by any vmm_ or vcpu_ function (or -errno).
 * Returns a static string. */
const char *vmm_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Portable CPU state.  Field order of vmm_regs/vmm_segment/vmm_dtable/
 * vmm_fpu matches KVM's kvm_regs/kvm_segment/kvm_dtable/kvm_fpu, so the KVM
 * backend copies them with static asserts; the Unicorn backend converts.    */

#define VMM_STATE_VERSION 1

struct vmm_regs {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t rip, rflags;
};
#define VMM_NREGS 18 /* uint64_t words in struct vmm_regs */

struct vmm_segment {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint8_t type, present, dpl, db, s, l, g, avl, unusable, padding;
};

struct vmm_dtable {
    uint64_t base;
    uint16_t limit;
    uint16_t padding[3];
};

struct vmm_sregs {
    struct vmm_segment cs, ds, es, fs, gs, ss, tr, ldt;
    struct vmm_dtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
};

/* x87 + SSE state (the guest's CPUID hides XSAVE/AVX, so this is all of
 * it).  Same layout as struct kvm_fpu. */
struct vmm_fpu {
    uint8_t fpr[8][16];
    uint16_t fcw, fsw;
    uint8_t ftwx, pad1;
    uint16_t last_opcode;
    uint64_t last_ip, last_dp;
    uint8_t xmm[16][16];
    uint32_t mxcsr, pad2;
};

/* The MSRs guests of ttvm use.  FS_BASE/GS_BASE live in the segment bases,
 * EFER in vmm_sregs. */
struct vmm_msrs {
    uint64_t star, lstar, cstar, sfmask, kernel_gs_base;
    uint64_t sysenter_cs, sysenter_esp, sysenter_eip;
    uint64_t pat, tsc_aux;
};

/* Events pending at an instruction boundary (KVM_GET_VCPU_EVENTS subset).
 * Snapshots are taken where nothing is pending, but the state is kept so a
 * restore is exact wherever it was taken. */
struct vmm_events {
    uint8_t irq_pending, irq_vector, interrupt_shadow, nmi_pending;
    uint8_t exc_pending, exc_vector, exc_has_error, pad;
    uint32_t exc_error;
    uint32_t pad2;
};

struct vmm_cpu_state {
    uint32_t version; /* VMM_STATE_VERSION */
    uint32_t size;    /* sizeof(struct vmm_cpu_state) */
    struct vmm_regs regs;
    struct vmm_sregs sregs;
    struct vmm_fpu fpu;
    struct vmm_msrs msrs;
    struct vmm_events events;
    uint64_t dr[8]; /* DR0-DR3, unused, unused, DR6, DR7 */
    uint64_t xcr0;
};

/* Privilege level of the code the state is in (CS.DPL in long mode). */
static inline int vmm_cpl(const struct vmm_sregs *s) { return s->cs.dpl; }

/* ------------------------------------------------------------------------ */
/* CPUID: one fixed table, stored in the trace, answered by both backends.  */

struct vmm_cpuid_entry {
    uint32_t function, index; /* leaf, subleaf */
    uint32_t flags;           /* VMM_CPUID_SIGNIFICANT_INDEX or 0 */
    uint32_t eax, ebx, ecx, edx;
    uint32_t pad;
};
#define VMM_CPUID_SIGNIFICANT_INDEX 1u
#define VMM_CPUID_MAX 64

struct vmm_cpuid {
    uint32_t nent;
    uint32_t pad;
    struct vmm_cpuid_entry ent[VMM_CPUID_MAX];
};

/* Builds the guest's table: what KVM offers (or a fixed baseline when KVM is
 * absent) intersected with what Unicorn executes the same way (DESIGN.md:
 * no AVX*, XSAVE, RDRAND/RDSEED, TSC/RDTSCP, x2APIC, hypervisor leaves). */
int vmm_cpuid_build(struct vmm_cpuid *out);
/* Looks up leaf/subleaf as the CPU would (out-of-range leaves return the
 * highest basic leaf, as Intel does).  Always fills *eax..*edx. */
void vmm_cpuid_lookup(const struct vmm_cpuid *t, uint32_t leaf,
                      uint32_t subleaf, uint32_t *eax, uint32_t *ebx,
                      uint32_t *ecx, uint32_t *edx);

/* ------------------------------------------------------------------------ */
/* Guest I/O: who answers port and MMIO accesses.  The live device bus, the
 * recorder and the replayer each provide one.  Backends call it
 * synchronously while the accessing instruction executes; the vCPU's
 * registers (vcpu_get_regs) are then the state *before* that instruction
 * (RIP = its address) and vcpu_icount() is its position.                   */

/* Return value of both methods: 0 = go on; > 0 = stop right after this
 * instruction completes (vcpu_run reports VCPU_EXIT_STOP, or VCPU_EXIT_IO
 * for the KVM backend, which stops at every I/O anyway); < 0 = an error:
 * the access is abandoned and vcpu_run returns that error. */
struct vmm_io_ops {
    /* Port access of 1, 2 or 4 bytes.  For reads, set *val. */
    int (*pio)(void *ctx, uint16_t port, unsigned size, bool write,
               uint32_t *val);
    /* Access to a guest-physical address that is not RAM. */
    int (*mmio)(void *ctx, uint64_t gpa, unsigned size, bool write,
                uint64_t *val);
};

/* ------------------------------------------------------------------------ */
/* CPU backends.                                                             */

struct vcpu; /* opaque */

#define VCPU_ICOUNT_UNKNOWN UINT64_MAX

enum vcpu_exit_reason {
    VCPU_EXIT_NONE = 0,
    VCPU_EXIT_IO,         /* a port/MMIO access was served (exit.io) */
    VCPU_EXIT_HLT,        /* HLT executed; RIP is after it */
    VCPU_EXIT_IRQ_WINDOW, /* the guest can take an interrupt now */
    VCPU_EXIT_KICK,       /* vcpu_kick(): stopped at an instruction boundary */
    VCPU_EXIT_LIMIT,      /* run_opts.max_insns instructions executed */
    VCPU_EXIT_STEP,       /* single step done */
    VCPU_EXIT_BREAKPOINT, /* about to execute a breakpoint address */
    VCPU_EXIT_WATCH,      /* an access hit a watchpoint (exit.watch); the
                             state is *before* the accessing instruction */
    VCPU_EXIT_STOP,       /* an io op or hook asked to stop */
    VCPU_EXIT_SHUTDOWN,   /* triple fault */
    VCPU_EXIT_EMU_FAIL,   /* instruction the backend cannot execute */
    VCPU_EXIT_ERROR,      /* failed entry, internal error; see exit.detail */
};

enum vcpu_watch_kind { VCPU_WATCH_WRITE = 1, VCPU_WATCH_READ = 2,
                       VCPU_WATCH_ACCESS = 3 };

struct vcpu_exit {
    enum vcpu_exit_reason reason;
    uint64_t icount; /* position when it stopped, or VCPU_ICOUNT_UNKNOWN */
    union {
        struct { uint16_t port; uint8_t size, write; uint32_t value; } io;
        struct { uint64_t gpa; uint8_t size, write; uint64_t value; } mmio;
        struct { uint64_t addr; uint32_t len; uint32_t kind;
                 uint64_t value; } watch;
        struct { uint8_t insn[16]; uint8_t len; int cpl; } emu;
    };
    bool is_mmio; /* for VCPU_EXIT_IO: which member is valid */
    char detail[256]; /* human-readable reason for EMU_FAIL/ERROR/SHUTDOWN */
};

struct vcpu_run_opts {
    uint64_t max_insns; /* stop after exactly this many (0 = no limit);
                           requires VCPU_CAP_ICOUNT or single_step */
    bool single_step;   /* execute one instruction (VCPU_CAP_STEP) */
};

struct vcpu_watch {
    uint64_t addr;
    uint32_t len;
    uint32_t kind; /* enum vcpu_watch_kind */
};

/* A breakpoint or watchpoint hit as a hit filter sees it (set_hit_filter):
 * the run is inside the instruction's hooks, before it executes. */
struct vcpu_hit {
    uint64_t icount; /* position of the instruction */
    uint64_t addr;   /* breakpoint: its address; watch: first byte accessed */
    uint32_t len;    /* watch: bytes accessed; breakpoint: 0 */
    uint32_t kind;   /* 0 = breakpoint, else the access's vcpu_watch_kind */
};

/* Decides whether a hit stops the run: > 0 stops as if there were no
 * filter, 0 runs on as if nothing were armed there, < 0 stops and
 * vcpu_run returns that error.  It may read registers (vcpu_get_regs:
 * the state before the instruction; at a watch hit RIP is the accessing
 * instruction) and guest RAM, and must change neither.  This is how a
 * replayer collects every hit of a hot breakpoint, or tests a condition,
 * without one stop and restart per hit. */
typedef int (*vcpu_hit_fn)(void *ctx, const struct vcpu_hit *hit);

/* What a backend can do on this host (filled at create from the probe). */
enum {
    VCPU_CAP_ICOUNT = 1u << 0,   /* exact instruction counting */
    VCPU_CAP_STEP = 1u << 1,     /* single step (possibly CPL0 only) */
    VCPU_CAP_STEP_CPL3 = 1u << 2,/* single step also works at CPL3 */
    VCPU_CAP_BREAK = 1u << 3,    /* code breakpoints fire at CPL0 */
    VCPU_CAP_WATCH = 1u << 4,    /* data watchpoints */
    VCPU_CAP_DIRTY_LOG = 1u << 5,/* dirty-page tracking of guest writes */
    VCPU_CAP_KICK = 1u << 6,     /* vcpu_kick from another thread/signal */
    VCPU_CAP_BREAK_CPL3 = 1u << 7,/* code breakpoints fire at CPL3 (kvm-pvm:
                                    only BREAK; a host may have either) */
};

/*
 * One CPU backend.  Every method is required unless marked optional.
 * The backend runs over RAM it does not own (vcpu_create's ram/size): it
 * never reads or writes outside [ram, ram+size).
 */
/* Guest code addresses [addr, addr + len) (vcpu_coverage). */
struct vcpu_code_range {
    uint64_t addr;
    uint32_t len, pad;
};

struct vcpu_ops {
    const char *name; /* "kvm", "unicorn", "kvm-step" */
    int (*init)(struct vcpu *cpu);
    void (*fini)(struct vcpu *cpu);
    int (*get_regs)(struct vcpu *cpu, struct vmm_regs *r);
    int (*set_regs)(struct vcpu *cpu, const struct vmm_regs *r);
    /* Full state.  At an I/O exit whose instruction is not complete yet
     * (KVM completes IN on the next entry), get_state reports the state
     * before that instruction and set_state discards the pending
     * completion, so a restored state is always exact. */
    int (*get_state)(struct vcpu *cpu, struct vmm_cpu_state *s);
    int (*set_state)(struct vcpu *cpu, const struct vmm_cpu_state *s);
    /* Runs until an exit worth reporting; I/O goes to the io ops. */
    int (*run)(struct vcpu *cpu, const struct vcpu_run_opts *o,
               struct vcpu_exit *exit);
    /* Delivers an external interrupt before the next instruction.  The
     * caller has checked RFLAGS.IF and the interrupt shadow. */
    int (*inject_irq)(struct vcpu *cpu, uint8_t vector);
    /* Optional: whether an interrupt can be injected now (1/0, or <0).
     * Without it the generic answer comes from get_state (IF, shadow). */
    int (*irq_ready)(struct vcpu *cpu);
    /* Optional: asks for VCPU_EXIT_IRQ_WINDOW when IF becomes 1. */
    int (*request_irq_window)(struct vcpu *cpu, bool on);
    /* Optional (VCPU_CAP_BREAK, _BREAK_CPL3 or _WATCH): replace the armed
     * set (a breakpoint at a CPL its cap lacks may never fire). */
    int (*set_breakpoints)(struct vcpu *cpu, const uint64_t *addr, size_t n);
    int (*set_watchpoints)(struct vcpu *cpu, const struct vcpu_watch *w,
                           size_t n);
    /* Optional: guest RAM [gpa, gpa+len) changed behind the backend's back
     * (restore, other backend).  Unicorn drops translations there. */
    void (*ram_changed)(struct vcpu *cpu, uint64_t gpa, uint64_t len);
    /* Optional (VCPU_CAP_ICOUNT): current position; set_icount renumbers. */
    uint64_t (*icount)(struct vcpu *cpu);
    void (*set_icount)(struct vcpu *cpu, uint64_t icount);
    /* Optional (VCPU_CAP_DIRTY_LOG): pages written by the guest since the
     * last call, as a bitmap of size/4096 bits; clears and re-protects. */
    int (*dirty_log)(struct vcpu *cpu, uint64_t *bitmap);
    /* Optional: async-signal-safe request to stop running (VCPU_EXIT_KICK). */
    void (*kick)(struct vcpu *cpu);
    /* Optional (VCPU_CAP_BREAK/WATCH): asks fn at every breakpoint and
     * watchpoint hit whether to stop (vcpu_hit_fn); NULL = every hit
     * stops. */
    int (*set_hit_filter)(struct vcpu *cpu, vcpu_hit_fn fn, void *ctx);
    /* Optional: code coverage (see vcpu_coverage). */
    int (*coverage)(struct vcpu *cpu, bool on);
    int (*coverage_take)(struct vcpu *cpu, struct vcpu_code_range **out,
                         size_t *n);
};

extern const struct vcpu_ops vcpu_kvm_ops;
extern const struct vcpu_ops vcpu_unicorn_ops;
/* "kvm-step": exact positions on KVM by single-stepping (vcpu_kvmstep.c),
 * for guests Unicorn cannot run (non-identity paging).  The contract
 * above, at ~70 000 instructions/s, with these differences: a run where
 * the host cannot single-step (vmm_host_probe: CPL3 under kvm-pvm), or
 * an instruction returning there, fails with VMM_E_NOSTEP before it
 * executes (exit.detail names the CPL and the host); write watchpoints
 * see writes that change the watched bytes, read/access watchpoints are
 * VMM_E_UNSUPPORTED; no code coverage. */
extern const struct vcpu_ops vcpu_kvmstep_ops;

/* Finds a backend by name ("kvm", "unicorn", "kvm-step"); NULL when
 * unknown. */
const struct vcpu_ops *vcpu_ops_by_name(const char *name);

struct vcpu_config {
    const struct vcpu_ops *ops;
    uint8_t *ram;          /* guest RAM, gpa 0 .. size-1; caller owns it */
    uint64_t ram_size;     /* multiple of 4096 */
    const struct vmm_cpuid *cpuid; /* copied */
    const struct vmm_io_ops *io;   /* borrowed; may be NULL (all ones) */
    void *io_ctx;
};

/* Creates a vCPU with the reset state of vmm_boot (call set_state next).
 * *out is freed with vcpu_destroy. */
int vcpu_create(const struct vcpu_config *cfg, struct vcpu **out);
void vcpu_destroy(struct vcpu *cpu);
const char *vcpu_name(const struct vcpu *cpu);
unsigned vcpu_caps(const struct vcpu *cpu);
/* Replaces the io handler (e.g. live devices -> trace). */
void vcpu_set_io(struct vcpu *cpu, const struct vmm_io_ops *io, void *ctx);

/* Thin wrappers over the ops table (they return VMM_E_UNSUPPORTED for a
 * missing optional method). */
int vcpu_get_regs(struct vcpu *cpu, struct vmm_regs *r);
int vcpu_set_regs(struct vcpu *cpu, const struct vmm_regs *r);
int vcpu_get_state(struct vcpu *cpu, struct vmm_cpu_state *s);
int vcpu_set_state(struct vcpu *cpu, const struct vmm_cpu_state *s);
int vcpu_run(struct vcpu *cpu, const struct vcpu_run_opts *o,
             struct vcpu_exit *exit);
int vcpu_inject_irq(struct vcpu *cpu, uint8_t vector);
int vcpu_request_irq_window(struct vcpu *cpu, bool on);
int vcpu_set_breakpoints(struct vcpu *cpu, const uint64_t *addr, size_t n);
int vcpu_set_watchpoints(struct vcpu *cpu, const struct vcpu_watch *w,
                         size_t n);
void vcpu_ram_changed(struct vcpu *cpu, uint64_t gpa, uint64_t len);
uint64_t vcpu_icount(struct vcpu *cpu);
void vcpu_set_icount(struct vcpu *cpu, uint64_t icount);
int vcpu_dirty_log(struct vcpu *cpu, uint64_t *bitmap);
void vcpu_kick(struct vcpu *cpu);
int vcpu_set_hit_filter(struct vcpu *cpu, vcpu_hit_fn fn, void *ctx);
/* Code coverage: with it on, the backend notes the code that runs (whole
 * translation blocks: a superset of the instructions executed).
 * vcpu_coverage_take returns what ran since coverage was turned on or last
 * taken, as sorted, disjoint ranges (*out malloc'd), and starts afresh.
 * VMM_E_UNSUPPORTED on backends without it (KVM); -ENOMEM when the
 * window could not be kept whole. */
int vcpu_coverage(struct vcpu *cpu, bool on);
int vcpu_coverage_take(struct vcpu *cpu, struct vcpu_code_range **out,
                       size_t *n);
/* Is the vCPU stopped right after a software interrupt (INT3, INT n) that
 * guest ring-3 code executed?  Under kvm-pvm a kick can
 * stop it there before the guest kernel has been given the interrupt,
 * which no saved state carries and no instruction count names (vcpu.c):
 * such a stop is no point to snapshot or inject at.  false when it cannot
 * be told. */
bool vcpu_after_user_soft_int(struct vcpu *cpu);

/* ------------------------------------------------------------------------ */
/* Host probe: what this machine's KVM can do.                               */

struct vmm_host_caps {
    bool kvm;             /* /dev/kvm opens and creates a VM */
    bool pvm;             /* kvm-pvm (guest ring 0 emulated) */
    bool vmx, svm;        /* hardware virtualisation seen in the host CPU */
    bool sync_regs, manual_dirty_log, immediate_exit, guest_debug;
    bool step_cpl0, step_cpl3;   /* single-step works at that CPL */
    bool hw_break_cpl0, hw_break_cpl3; /* DR0-3 breakpoints fire there */
    char kvm_module[32];         /* "kvm_intel", "kvm_amd", "kvm_pvm" ... */
    char detail[128];            /* why kvm is false, if it is */
};

/* Probes once per process (cached).  Never fails: absent features are
 * false and detail says why. */
const struct vmm_host_caps *vmm_host_probe(void);

/* ------------------------------------------------------------------------ */
/* Nondeterminism door: devices never read the host directly.  The live run
 * uses vmm_host_real; the recorder logs the port values the devices derive
 * from it, so replay never needs it.                                        */

struct vmm_host_ops {
    uint64_t (*clock_ns)(void *ctx);            /* monotonic, for PIT */
    int64_t (*wall_clock_s)(void *ctx);         /* UNIX time, for RTC */
    /* Non-blocking: 1 and *b when a byte is available, 0 when none yet,
     * -1 at end of input. */
    int (*serial_read)(void *ctx, uint8_t *b);
    void (*serial_write)(void *ctx, uint8_t b);
    uint32_t (*random32)(void *ctx);
};

/* ------------------------------------------------------------------------ */
/* The machine.                                                              */

struct vmm; /* opaque */

#define VMM_DEFAULT_MEM (64ull << 20)

struct vmm_config {
    uint64_t mem_size;          /* bytes; multiple of 2 MiB, >= 2 MiB */
    const char *backend;        /* "kvm" (default when NULL), "unicorn" or
                                   "kvm-step" */
    int serial_out_fd;          /* UART TX: -1 = stdout */
    int serial_in_fd;           /* UART RX: -1 = no input */
    const struct vmm_host_ops *host; /* NULL = the real host */
    void *host_ctx;
    /* The guest's CPUID table: NULL = build it for this host
     * (vmm_cpuid_build); a replay passes the table stored in its trace. */
    const struct vmm_cpuid *cpuid;
};

/* Creates RAM (zeroed, one anonymous mapping), devices and the vCPU.
 * Fails with VMM_E_NOKVM (and a detail) when the kvm backend is asked for
 * and unusable.  *out is freed with vmm_destroy. */
int vmm_create(const struct vmm_config *cfg, struct vmm **out);
void vmm_destroy(struct vmm *vm);

/* Last error detail of this machine ("segment 2 [0x..] outside RAM"), ""
 * when none; valid until the next call on vm. */
const char *vmm_error_detail(const struct vmm *vm);

uint8_t *vmm_ram(struct vmm *vm);
uint64_t vmm_ram_size(const struct vmm *vm);
struct vcpu *vmm_vcpu(struct vmm *vm);
const struct vmm_cpuid *vmm_cpuid(const struct vmm *vm);

/* The one checked translator: a host pointer to guest-physical
 * [gpa, gpa+len), or NULL when any byte is outside RAM. */
void *vmm_gpa_ptr(struct vmm *vm, uint64_t gpa, uint64_t len);

/* Guest-virtual to guest-physical through the page tables of sregs (or
 * identity when paging is off).  Returns 0, or VMM_E_RANGE when unmapped. */
int vmm_gva_to_gpa(struct vmm *vm, const struct vmm_sregs *s, uint64_t gva,
                   bool write, uint64_t *gpa);

/* Up to n bytes of code at rip (CS-relative, through the page tables of
 * s) into b: fewer where mapped RAM ends.  Returns how many. */
unsigned vmm_code_read(struct vmm *vm, const struct vmm_sregs *s,
                       uint64_t rip, uint8_t *b, unsigned n);

/* ---- x86 instruction prefixes (insn.c) ---- */

/* The linear address of rip in the code segment of s (no base in 64-bit
 * mode, 32 bits wide outside it). */
uint64_t vmm_code_linear(const struct vmm_sregs *s, uint64_t rip);

/* What an instruction's legacy and REX prefixes say, in the code mode of
 * the sregs it was decoded with: enough to tell a string instruction
 * (MOVS CMPS STOS LODS SCAS INS OUTS) and how wide its steps are, which
 * the KVM backend, the kvm-step backend, the recorder and the replayer
 * all need without a full decoder. */
struct vmm_insn_prefix {
    uint8_t len;   /* prefix bytes: the opcode is the next byte */
    uint8_t op;    /* that opcode byte (0x0f for a two-byte opcode) */
    uint8_t rep;   /* the last F2/F3 prefix, or 0 */
    uint8_t seg;   /* the last segment override prefix, or 0 */
    uint8_t opsz;  /* operand size in bytes: 2, 4 or 8 */
    uint8_t asz;   /* address size in bytes: 2, 4 or 8 */
    bool str;      /* a string instruction; it ends at its opcode */
    uint8_t esize; /* its element size in bytes (str) */
};

/* Decodes the prefixes of code b[0..n).  false when no opcode byte
 * follows them within n. */
bool vmm_insn_prefixes(const uint8_t *b, size_t n, const struct vmm_sregs *s,
                       struct vmm_insn_prefix *p);

/* The part of RCX, RSI and RDI a string instruction of address size asz
 * (bytes) counts with. */
static inline uint64_t vmm_asz_mask(unsigned asz)
{
    return asz == 8 ? ~0ull : asz == 4 ? 0xffffffffull : 0xffffull;
}

/* ---- boot ---- */

enum vmm_boot_mode { VMM_BOOT_AUTO = 0, VMM_BOOT_ELF64, VMM_BOOT_MULTIBOOT };

struct vmm_image_info {
    enum vmm_boot_mode mode; /* what AUTO resolved to */
    uint64_t entry;
    uint64_t load_lo, load_hi; /* guest-physical extent loaded */
    char error[256];           /* why the image was refused */
};

/* Checks an image without loading it (pure; unit-testable).  AUTO picks
 * ELF64 direct boot for an ELF64 x86-64 image, else Multiboot when a valid
 * Multiboot header is in the first 8 KiB.  Returns VMM_E_IMAGE with
 * info->error naming the problem. */
int vmm_image_probe(const void *img, size_t len, enum vmm_boot_mode mode,
                    uint64_t mem_size, struct vmm_image_info *info);

/* Longest command line the boot information holds (bytes, without the
 * terminating NUL): vmm_boot refuses a longer one. */
#define VMM_CMDLINE_MAX 4079

/* Loads the image into RAM and sets the vCPU's initial state (ELF64: long
 * mode with identity-mapped 2 MiB pages for all RAM; Multiboot: 32-bit
 * protected mode, EAX=0x2BADB002, EBX=info block).  The command line is
 * passed in the Multiboot info block in both modes (ELF64: RDI = its
 * address, RSI = 0x2BADB002). */
int vmm_boot(struct vmm *vm, const void *img, size_t len,
             enum vmm_boot_mode mode, const char *cmdline,
             struct vmm_image_info *info);

/* ---- devices ---- */

/* Serialises every device's state into buf (NULL: just size it).  Returns
 * the number of bytes, or <0. */
long vmm_devices_save(struct vmm *vm, void *buf, size_t cap);
int vmm_devices_restore(struct vmm *vm, const void *buf, size_t len);
/* The live device bus as an io handler (what vmm_create installs). */
const struct vmm_io_ops *vmm_bus_io(struct vmm *vm, void **ctx);

/* ---- the run loop (`ttvm run`; the recorder hooks into it) ---- */

enum vmm_stop_kind {
    VMM_STOP_EXIT = 1,   /* debug-exit port written: status valid */
    VMM_STOP_SHUTDOWN,   /* triple fault */
    VMM_STOP_TIMEOUT,    /* the run's time limit */
    VMM_STOP_HALTED,     /* HLT with interrupts off: nothing can wake it */
    VMM_STOP_EMU_FAIL,   /* instruction the backend could not execute */
    VMM_STOP_ERROR,      /* KVM failure, hook error */
    VMM_STOP_HOOK,       /* a hook asked to stop */
};

struct vmm_run_result {
    enum vmm_stop_kind kind;
    int exit_status;          /* VMM_STOP_EXIT: (value << 1) | 1 */
    struct vmm_regs regs;     /* registers when it stopped */
    struct vmm_sregs sregs;
    char detail[512];         /* one line: what happened, with RIP etc. */
};

/* Observer of the run loop (the recorder).  All optional. */
struct vmm_run_hooks {
    /* After each exit the loop handled (I/O served, HLT, kick, window),
     * before interrupts are considered.  regs: state at the exit (for I/O:
     * before the accessing instruction).  Return 0 to go on, >0 to stop
     * with VMM_STOP_HOOK, <0 to stop with that error. */
    int (*on_exit)(void *ctx, struct vmm *vm, const struct vcpu_exit *e,
                   const struct vmm_regs *regs);
    /* Right before vector is injected (the vCPU is stopped at an exit). */
    int (*on_inject)(void *ctx, struct vmm *vm, uint8_t vector);
};

struct vmm_run_opts {
    double timeout_s;          /* 0 = none */
    /* How long an interrupt may wait for the guest to exit on its own
     * before the loop kicks the vCPU (ns).  0 = kick as soon as due. */
    uint64_t irq_latency_ns;
    const struct vmm_run_hooks *hooks;
    void *hooks_ctx;
};

int vmm_run(struct vmm *vm, const struct vmm_run_opts *o,
            struct vmm_run_result *res);

#endif /* TTVM_VMM_H */
