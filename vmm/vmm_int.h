/*
 * vmm_int.h — shared inside vmm/ only.  Nothing outside vmm/ includes it,
 * except vmm's own unit tests (tests/unit/test_devices.c, test_loader.c),
 * which test the device models and the loader without KVM.
 */
#ifndef TTVM_VMM_INT_H
#define TTVM_VMM_INT_H

#include "vmm/vmm.h"

/* A vCPU: the generic part every backend shares, plus the backend's own
 * state in priv (allocated by ops->init, freed by ops->fini). */
struct vcpu {
    const struct vcpu_ops *ops;
    uint8_t *ram;
    uint64_t ram_size;
    struct vmm_cpuid cpuid;
    const struct vmm_io_ops *io;
    void *io_ctx;
    unsigned caps; /* VCPU_CAP_*, set by ops->init */
    void *priv;
    /*
     * Hook point for issue 4: the KVM backend calls this at an emulation
     * failure (exit->reason == VCPU_EXIT_EMU_FAIL, exit->emu and detail
     * filled, the vCPU state is *before* the failing instruction).  It
     * should execute that one instruction on the same state (e.g. under
     * Unicorn over cpu->ram, moving state with vcpu_get_state/set_state)
     * and return 0, after which the KVM backend resumes the guest; any
     * other value makes the KVM backend report the failure as it is.
     * The KVM backend's init sets it to vcpu_unicorn_emulate_one.
     */
    int (*emu_fallback)(struct vcpu *kvm_cpu, struct vcpu_exit *e);
    /* Pages the fallback wrote (one bit per 4 KiB page; NULL until it
     * first runs; freed by vcpu_destroy).  KVM's dirty log never sees
     * writes made outside KVM_RUN, so the KVM backend's dirty_log ORs this
     * into its result and clears it. */
    uint64_t *emu_dirty;
};

/* Serves a port access through cpu->io (all ones / ignored when none). */
int vcpu_io_pio(struct vcpu *cpu, uint16_t port, unsigned size, bool write,
                uint32_t *val);
int vcpu_io_mmio(struct vcpu *cpu, uint64_t gpa, unsigned size, bool write,
                 uint64_t *val);

/* Provided by vcpu_unicorn.c: see struct vcpu.emu_fallback.  Executes
 * the instruction at RIP under Unicorn on kvm_cpu's state and RAM
 * (delivering what it raises through the IDT), sets the state back and
 * returns 0; pages it wrote are added to kvm_cpu->emu_dirty.  Otherwise
 * an error, with e->reason/detail replaced when Unicorn found something
 * else to report (triple fault, an instruction that cannot be replayed). */
int vcpu_unicorn_emulate_one(struct vcpu *kvm_cpu, struct vcpu_exit *e);

/* 1 when the vCPU can take an external interrupt right now (RFLAGS.IF set,
 * no interrupt shadow, nothing already queued), 0 when not, <0 on error.
 * Cheap on KVM (read from the run page); other backends use get_state. */
int vcpu_irq_ready(struct vcpu *cpu);
/* The same question of a saved state. */
static inline bool vcpu_state_irq_ready(const struct vmm_cpu_state *s)
{
    return (s->regs.rflags & 0x200) && !s->events.interrupt_shadow &&
           !s->events.irq_pending;
}

/* ---- KVM (vcpu_kvm.c, probe.c) ---- */

/* The process's /dev/kvm descriptor (opened once, close-on-exec), or
 * -errno.  */
int vmm_kvm_fd(void);
/* KVM_CHECK_EXTENSION on /dev/kvm; 0 when absent. */
int vmm_kvm_cap(int cap);
/* KVM_SET_CPUID2 of table t on a vCPU fd.  0 or -errno. */
int vmm_kvm_set_cpuid(int cpu_fd, const struct vmm_cpuid *t);
/* Installs handler for sig without SA_RESTART (so KVM_RUN and sleeps
 * return on it). */
void vmm_signal_install(int sig, void (*handler)(int));

/* The registers, segment/control registers and pending events of a KVM
 * vCPU (cpu->ops == &vcpu_kvm_ops) into s->regs, s->sregs, s->events, the
 * rest of *s untouched: from the run page without an ioctl when
 * KVM_CAP_SYNC_REGS is in use, so vcpu_kvmstep.c can read them before
 * every single step.  At an I/O exit RIP is before the instruction, as
 * vcpu_get_regs reports it.  0 or -errno. */
int vcpu_kvm_get_sync(struct vcpu *cpu, struct vmm_cpu_state *s);

/* What the probe measured about KVM exits (probe.c); see vcpu_kvm.c for
 * why it matters.  Cached per process. */
struct vmm_kvm_quirks {
    bool measured;
    bool out_rip_after[2];   /* [cpl0, cpl3]: RIP past OUT at its exit */
    bool mmio_w_rip_after[2];/* same for an MMIO write */
};
const struct vmm_kvm_quirks *vmm_kvm_quirks(void);

/* ---- guest memory ---- */

/* Walks the guest page tables of s (identity when CR0.PG is off) over
 * [ram, ram+size).  0 and *gpa, or VMM_E_RANGE when unmapped or a table
 * lies outside RAM. */
int vmm_walk(const uint8_t *ram, uint64_t size, const struct vmm_sregs *s,
             uint64_t gva, bool write, uint64_t *gpa);
/* Copies len bytes of guest-virtual memory at gva into buf (page by page
 * through vmm_walk).  0 or VMM_E_RANGE. */
int vmm_read_gva(const uint8_t *ram, uint64_t size, const struct vmm_sregs *s,
                 uint64_t gva, void *buf, size_t len);

/* ---- boot (boot.c) ---- */

/* Fixed layout of the VMM's area below 1 MiB (shared with guests/). */
#define VMM_BOOT_GDT 0x1000ull     /* null, 0x08 code, 0x10 data */
#define VMM_BOOT_INFO 0x2000ull    /* Multiboot info block */
#define VMM_BOOT_CMDLINE 0x3000ull /* up to VMM_BOOT_CMDLINE_MAX bytes */
#define VMM_BOOT_CMDLINE_MAX 4096
#define VMM_BOOT_MMAP 0x4000ull    /* Multiboot memory map */
#define VMM_BOOT_PML4 0x8000ull    /* PML4, PDPT, then one PD per GiB */
#define VMM_BOOT_STACK 0x80000ull  /* initial RSP/ESP (grows down) */
#define VMM_BOOT_AREA_END 0x100000ull
#define VMM_MEM_MAX (64ull << 30)  /* page tables fit below 0x80000 */

/* Loads img into ram (pure: no vCPU) and fills the initial CPU state.
 * Checks the whole image first: on error RAM is untouched.  The VMM area
 * below 1 MiB is cleared; ram_zeroed says the rest is known to be zero
 * (fresh RAM), so .bss need not be cleared byte by byte. */
int vmm_load(uint8_t *ram, uint64_t size, const void *img, size_t len,
             enum vmm_boot_mode mode, const char *cmdline, bool ram_zeroed,
             struct vmm_cpu_state *st, struct vmm_image_info *info);
/* The architectural reset-like state every backend starts from (flat
 * 32-bit protected mode, paging off). */
void vmm_state_init(struct vmm_cpu_state *st);

/* ---- devices (dev_*.c, bus.c) ---- */

struct dev_bus;

/* One device model.  Every method is required.  State lives in the bus
 * (struct dev_bus below), so save/restore are plain copies of it. */
struct dev_ops {
    const char *name;   /* <= 7 characters, stored in saved state */
    struct { uint16_t lo, hi; } ports[2]; /* inclusive; hi == 0: unused */
    /* Port access of 1, 2 or 4 bytes at port (inside ports[]). */
    void (*pio)(struct dev_bus *b, uint16_t port, unsigned size, bool write,
                uint32_t *val);
    void (*reset)(struct dev_bus *b);
    /* Writes the state into buf and returns its size (buf NULL: just the
     * size).  restore: VMM_E_STATE when len is wrong. */
    size_t (*save)(struct dev_bus *b, void *buf);
    int (*restore)(struct dev_bus *b, const void *buf, size_t len);
};

struct dev_pic_chip {
    uint8_t irr, isr, imr, last_irr; /* last_irr: input levels (edges) */
    uint8_t vector_base, priority_add, init_step, icw4_needed;
    uint8_t single, auto_eoi, rotate_auto_eoi, special_nested;
    uint8_t read_isr, poll, special_mask, pad;
};

struct dev_pit_chan {
    uint32_t reload;       /* 1..65536 */
    uint8_t mode, rw, bcd, gate;
    uint8_t latched;       /* 0, 1 (lo or hi), 2 (both pending) */
    uint8_t status_latched, status, write_hi_next;
    uint8_t read_hi_next, null_count, armed, write_lo;
    uint16_t latch_val, pad2;
    uint64_t load_ns;      /* host clock when the count was loaded */
    uint64_t irq_seq;      /* periods already signalled (channel 0) */
};

#define DEV_UART_FIFO 16
struct dev_uart {
    uint8_t rbr_fifo[DEV_UART_FIFO];
    uint8_t rx_head, rx_count, ier, lcr, mcr, lsr, msr, scr;
    uint8_t dll, dlm, fcr, thr_ipending, irq_line, rx_eof, pad[2];
};

struct dev_rtc {
    uint8_t index, nmi_disabled, pad[6];
    uint8_t ram[128];
};

struct dev_exit {
    uint8_t requested, pad[3];
    uint32_t status; /* (value << 1) | 1 */
};

/* The live device bus: every device's state, the host door and the
 * interrupt lines.  Devices read the host only through host/host_ctx. */
struct dev_bus {
    const struct vmm_host_ops *host;
    void *host_ctx;
    /* Reports an unknown port or MMIO page once ("unknown port 0x...").
     * NULL: silent. */
    void (*report)(void *ctx, const char *msg);
    void *report_ctx;
    struct dev_pic_chip pic[2];
    struct dev_pit_chan pit[3];
    uint8_t pit_speaker; /* port 0x61 bits 0-1 (gate 2, speaker) */
    struct dev_uart uart;
    struct dev_rtc rtc;
    struct dev_exit exit;
    uint8_t unknown_seen[65536 / 8];
    uint64_t mmio_reported; /* count of MMIO reports (capped) */
};

extern const struct dev_ops dev_pic_ops, dev_pit_ops, dev_uart_ops,
    dev_rtc_ops, dev_exit_ops, dev_rng_ops;

/* Initialises the bus with all devices reset.  host must stay valid. */
void dev_bus_init(struct dev_bus *b, const struct vmm_host_ops *host,
                  void *host_ctx);
/* Port access through the devices[] table; unknown ports as documented. */
int dev_bus_pio(void *bus, uint16_t port, unsigned size, bool write,
                uint32_t *val);
int dev_bus_mmio(void *bus, uint64_t gpa, unsigned size, bool write,
                 uint64_t *val);
long dev_bus_save(struct dev_bus *b, void *buf, size_t cap);
int dev_bus_restore(struct dev_bus *b, const void *buf, size_t len);

/* Interrupt lines (edge-triggered ISA inputs into the PIC pair). */
void dev_pic_set_irq(struct dev_bus *b, int irq, int level);
/* true when the PIC pair asserts INTR to the CPU. */
bool dev_pic_pending(struct dev_bus *b);
/* INTA cycle: the vector to deliver (IRR -> ISR); a spurious IRQ7/15
 * vector when nothing is pending. */
uint8_t dev_pic_ack(struct dev_bus *b);

/* Time-driven devices: raises IRQ0 for every PIT period that ended by now
 * and returns the host time (ns) of the next IRQ0 edge, or UINT64_MAX. */
uint64_t dev_pit_update(struct dev_bus *b, uint64_t now_ns);
/* Pulls available serial input into the UART FIFO (raising IRQ4 when
 * enabled).  Returns true when the UART still wants input polled (an RX
 * interrupt is enabled, the FIFO has room and input has not ended). */
bool dev_uart_poll(struct dev_bus *b);

/* The real host door (host.c): CLOCK_MONOTONIC, time(), the fds in ctx,
 * getrandom(). */
struct vmm_host_real_ctx {
    int in_fd, out_fd;   /* -1: no input / stdout */
    bool in_eof;
    size_t in_pos, in_len, out_len, rnd_pos, rnd_len;
    uint8_t in_buf[4096], out_buf[4096], rnd_buf[256];
};
extern const struct vmm_host_ops vmm_host_real;
/* Writes out buffered serial output (the real host buffers it until a
 * newline or 4 KiB). */
void vmm_host_real_flush(struct vmm_host_real_ctx *c);

/* ---- the machine (vmm.c, run.c) ---- */

struct vmm {
    uint8_t *ram;
    uint64_t ram_size;
    struct vcpu *cpu;
    struct vmm_cpuid cpuid;
    const struct vmm_host_ops *host;
    void *host_ctx;
    struct vmm_host_real_ctx *real; /* set when host is vmm_host_real */
    int serial_in_fd;
    bool booted;
    char detail[256];
    struct dev_bus bus;
};

/* One line of registers for stop messages ("RIP=... RSP=... CR3=..."). */
void vmm_format_regs(char *buf, size_t cap, const struct vmm_regs *r,
                     const struct vmm_sregs *s);

/* ---- x86 helpers (insn.c) ---- */

/* Up to n bytes of code at rip (CS-relative, through the page tables of
 * s) into b, fewer where mapped RAM ends: how many (vmm_code_read). */
unsigned vmm_code_fetch(const uint8_t *ram, uint64_t ram_size,
                        const struct vmm_sregs *s, uint64_t rip, uint8_t *b,
                        unsigned n);

/* Length of the write instruction that ends at rip_after and caused a port
 * (is_mmio false: port, size) or MMIO (gpa, size) write exit, given the
 * registers after it.  0 when it cannot be determined. */
unsigned vmm_insn_len_before(const uint8_t *ram, uint64_t ram_size,
                             const struct vmm_regs *r,
                             const struct vmm_sregs *s, bool is_mmio,
                             uint64_t port_or_gpa, unsigned size);

/* Decodes the instruction at the start of code (n bytes, at rip, in the
 * mode of s) into text ("addps xmm1, xmm0").  Returns its length, 0 when
 * it does not decode. */
unsigned vmm_insn_decode(const uint8_t *code, size_t n,
                         const struct vmm_sregs *s, uint64_t rip, char *text,
                         size_t cap);

/* Where an instruction that could not be executed is, for its one-line
 * report: "RIP=0x101000 CPL0 bytes [0f 01 f9] (rdtscp)" into buf.  code
 * holds n bytes from RIP (the mode of s decodes them); only the decoded
 * instruction's bytes are shown, or all n when it does not decode.
 * Returns the number of bytes shown. */
unsigned vmm_insn_describe(char *buf, size_t cap, const uint8_t *code,
                           size_t n, const struct vmm_sregs *s, int cpl,
                           uint64_t rip);

#endif /* TTVM_VMM_INT_H */
