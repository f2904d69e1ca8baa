/*
 * vcpu_kvm.c — the KVM CPU backend: one VM with one memslot over the
 * caller's RAM and one vCPU, run at hardware speed.
 *
 * Cheap exits are the point.  With KVM_CAP_SYNC_REGS the general, segment
 * and control registers and the pending events come back in the run page
 * at every exit, so reading or changing them costs no ioctl: changes are
 * written into the run page and marked dirty, and KVM applies them at the
 * next KVM_RUN.  A full state save is then three ioctls (XSAVE, MSRS,
 * DEBUGREGS); XCR0 is fixed because the guest's CPUID has no XSAVE.
 *
 * x87/SSE state goes through KVM_GET/SET_XSAVE, not KVM_GET/SET_FPU, where
 * the host has KVM_CAP_XSAVE.  KVM_SET_FPU writes the legacy area but not
 * the XSAVE header, so a component the guest had left in its init state
 * (XMM all zero, say) is reloaded as init and the values are lost;
 * KVM_GET_FPU then reads back that stale area, and neither carries MXCSR
 * (measured on Linux 6.18: a set XMM2 reads back as zero through
 * KVM_GET_XSAVE, and a restored snapshot computed a different sum).
 *
 * RIP at I/O exits (the vmm.h contract is "state before the accessing
 * instruction").  Measured on this project's kvm-pvm host (Linux 6.18),
 * for guest code at CPL0 and at CPL3 alike:
 *   IN  / MMIO read  : RIP = the instruction (KVM finishes it at the next
 *                      KVM_RUN, writing RAX or the destination then);
 *   OUT / MMIO write : RIP = past the instruction (KVM's emulator writes
 *                      the instruction back before exiting);
 *   HLT (CPL0)       : RIP = past the hlt (KVM_EXIT_HLT);
 *   HLT at CPL3      : #GP, as on hardware.
 * VMX hosts finish a fast-path OUT later (RIP at the instruction), so the
 * probe (probe.c) measures it per host and CPL, and this backend moves RIP
 * back by the instruction's length (insn.c finds it) when RIP is past a
 * write.  String I/O (INS/OUTS) is one callback per element, each with
 * the registers before its iteration ("string port I/O" below).
 *
 * I/O pending completion: after an I/O exit KVM completes the instruction
 * on the next KVM_RUN, *after* applying dirty sync registers.  So setting
 * registers or state at an I/O exit first completes the access (one
 * KVM_RUN with immediate_exit); the state set is the state after it.  To
 * reach a clean instruction boundary (for a snapshot), call vcpu_kick()
 * and then vcpu_run(): it returns VCPU_EXIT_KICK with the access done.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/vmm_int.h"

_Static_assert(sizeof(struct vmm_regs) == sizeof(struct kvm_regs), "regs");
_Static_assert(sizeof(struct vmm_segment) == sizeof(struct kvm_segment),
               "segment");
_Static_assert(sizeof(struct vmm_dtable) == sizeof(struct kvm_dtable),
               "dtable");
_Static_assert(sizeof(struct vmm_fpu) == sizeof(struct kvm_fpu), "fpu");
_Static_assert(offsetof(struct kvm_sregs, efer) ==
                   offsetof(struct vmm_sregs, efer),
               "sregs");

#define SYNC_ALL (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS)

/* MSRs in struct vmm_msrs order. */
static const uint32_t msr_index[] = {
    0xc0000081, /* STAR */
    0xc0000082, /* LSTAR */
    0xc0000083, /* CSTAR */
    0xc0000084, /* SFMASK */
    0xc0000102, /* KERNEL_GS_BASE */
    0x174,      /* SYSENTER_CS */
    0x175,      /* SYSENTER_ESP */
    0x176,      /* SYSENTER_EIP */
    0x277,      /* PAT */
    0xc0000103, /* TSC_AUX */
};
#define NMSRS (sizeof msr_index / sizeof msr_index[0])
_Static_assert(NMSRS * 8 == sizeof(struct vmm_msrs), "msr table");

struct kvm_priv {
    int vm_fd, cpu_fd;
    struct kvm_run *run;
    size_t run_size;
    bool sync;          /* KVM_CAP_SYNC_REGS in use */
    bool sync_valid;    /* run->s.regs holds the current state */
    bool io_pending;    /* an I/O exit awaits completion by KVM_RUN */
    bool dirty_on;      /* dirty logging enabled on the memslot */
    bool emu_fail_bytes;/* KVM_CAP_EXIT_ON_EMULATION_FAILURE enabled */
    bool manual_protect;
    uint64_t rip_adjust;/* subtract from RIP while at a write exit */
    uint64_t pio_rip, pio_rcx; /* RIP and RCX as KVM left them at the last
                                  port exit (string I/O, exit_pio) */
    bool run_fresh;     /* the run page's IF/readiness describe the state */
    uint32_t dbg_flags; /* current KVM_SET_GUEST_DEBUG control */
    uint64_t bp[4];
    unsigned nbp;
    bool msrs_ok[NMSRS];
    bool xsave;         /* KVM_CAP_XSAVE: FPU state through KVM_*_XSAVE */
    pthread_t thread;   /* the thread in KVM_RUN, for kick */
    volatile int running;
};

static struct kvm_priv *P(struct vcpu *cpu) { return cpu->priv; }

/* ---- /dev/kvm, once per process ---- */

static int kvm_fd_cached = -1;
static int kvm_fd_err;
static pthread_once_t kvm_once = PTHREAD_ONCE_INIT;

static void kvm_open_once(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        kvm_fd_err = -errno;
        return;
    }
    if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        close(fd);
        kvm_fd_err = VMM_E_NOKVM;
        return;
    }
    kvm_fd_cached = fd;
}

int vmm_kvm_fd(void)
{
    pthread_once(&kvm_once, kvm_open_once);
    return kvm_fd_cached >= 0 ? kvm_fd_cached : kvm_fd_err;
}

int vmm_kvm_cap(int cap)
{
    int fd = vmm_kvm_fd();
    if (fd < 0)
        return 0;
    int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);
    return r < 0 ? 0 : r;
}

/* ---- kick signal ---- */

/* The signal that interrupts KVM_RUN in another thread.  Its handler does
 * nothing: delivery alone makes KVM_RUN return -EINTR, and immediate_exit
 * covers a signal that arrives just before KVM_RUN. */
static int kick_signal(void) { return SIGRTMIN + 2; }

static void kick_handler(int sig) { (void)sig; }

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
static void kick_install(void) { vmm_signal_install(kick_signal(), kick_handler); }

void vmm_signal_install(int sig, void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler; /* no SA_RESTART: KVM_RUN must return */
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* ---- create / destroy ---- */

int vmm_kvm_set_cpuid(int cpu_fd, const struct vmm_cpuid *t)
{
    struct kvm_cpuid2 *c =
        calloc(1, sizeof *c + t->nent * sizeof(struct kvm_cpuid_entry2));
    if (!c)
        return -ENOMEM;
    c->nent = t->nent;
    for (uint32_t i = 0; i < t->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        e->function = t->ent[i].function;
        e->index = t->ent[i].index;
        e->flags = t->ent[i].flags & VMM_CPUID_SIGNIFICANT_INDEX
                       ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX
                       : 0;
        e->eax = t->ent[i].eax;
        e->ebx = t->ent[i].ebx;
        e->ecx = t->ent[i].ecx;
        e->edx = t->ent[i].edx;
    }
    int rc = ioctl(cpu_fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
    free(c);
    return rc;
}

static int set_memslot(struct kvm_priv *p, struct vcpu *cpu, bool log)
{
    struct kvm_userspace_memory_region r = {
        .slot = 0,
        .flags = log ? KVM_MEM_LOG_DIRTY_PAGES : 0,
        .guest_phys_addr = 0,
        .memory_size = cpu->ram_size,
        .userspace_addr = (uint64_t)(uintptr_t)cpu->ram,
    };
    return ioctl(p->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

static void enable_caps(struct kvm_priv *p)
{
    int manual = vmm_kvm_cap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
    if (manual & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) {
        struct kvm_enable_cap c = {
            .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
            .args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
                       (manual & KVM_DIRTY_LOG_INITIALLY_SET),
        };
        p->manual_protect = ioctl(p->vm_fd, KVM_ENABLE_CAP, &c) == 0;
    }
    if (vmm_kvm_cap(KVM_CAP_EXIT_ON_EMULATION_FAILURE)) {
        struct kvm_enable_cap c = {
            .cap = KVM_CAP_EXIT_ON_EMULATION_FAILURE, .args[0] = 1 };
        p->emu_fail_bytes = ioctl(p->vm_fd, KVM_ENABLE_CAP, &c) == 0;
    }
    int sync = vmm_kvm_cap(KVM_CAP_SYNC_REGS);
    p->sync = (sync & SYNC_ALL) == SYNC_ALL;
    p->xsave = vmm_kvm_cap(KVM_CAP_XSAVE) > 0;
}

static unsigned probe_caps(const struct kvm_priv *p)
{
    const struct vmm_host_caps *h = vmm_host_probe();
    unsigned caps = VCPU_CAP_KICK;
    if (h->step_cpl0 || h->step_cpl3)
        caps |= VCPU_CAP_STEP;
    if (h->step_cpl3)
        caps |= VCPU_CAP_STEP_CPL3;
    /* Per CPL as measured: under kvm-pvm DR0-3 fire only at CPL0, and
     * working single-step says nothing about breakpoints. */
    if (h->hw_break_cpl0)
        caps |= VCPU_CAP_BREAK;
    if (h->hw_break_cpl3)
        caps |= VCPU_CAP_BREAK_CPL3;
    if (p->manual_protect)
        caps |= VCPU_CAP_DIRTY_LOG;
    return caps;
}

static void kvm_fini(struct vcpu *cpu)
{
    struct kvm_priv *p = P(cpu);
    if (!p)
        return;
    if (p->run)
        munmap(p->run, p->run_size);
    if (p->cpu_fd >= 0)
        close(p->cpu_fd);
    if (p->vm_fd >= 0)
        close(p->vm_fd);
    free(p);
    cpu->priv = NULL;
}

static int kvm_set_state(struct vcpu *cpu, const struct vmm_cpu_state *s);

static int kvm_init(struct vcpu *cpu)
{
    int kfd = vmm_kvm_fd();
    if (kfd < 0)
        return VMM_E_NOKVM;
    struct kvm_priv *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->vm_fd = p->cpu_fd = -1;
    cpu->priv = p;
    int rc;
    if ((p->vm_fd = ioctl(kfd, KVM_CREATE_VM, 0)) < 0) {
        rc = -errno;
        goto fail;
    }
    enable_caps(p);
    if ((rc = set_memslot(p, cpu, false)))
        goto fail;
    if ((p->cpu_fd = ioctl(p->vm_fd, KVM_CREATE_VCPU, 0)) < 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = vmm_kvm_set_cpuid(p->cpu_fd, &cpu->cpuid)))
        goto fail;
    int sz = ioctl(kfd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (sz < (int)sizeof(struct kvm_run)) {
        rc = VMM_E_KVM;
        goto fail;
    }
    p->run_size = sz;
    p->run = mmap(NULL, p->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                  p->cpu_fd, 0);
    if (p->run == MAP_FAILED) {
        p->run = NULL;
        rc = -errno;
        goto fail;
    }
    if (p->sync)
        p->run->kvm_valid_regs = SYNC_ALL;
    for (unsigned i = 0; i < NMSRS; i++)
        p->msrs_ok[i] = true;
    pthread_once(&kick_once, kick_install);
    cpu->caps = probe_caps(p);
    cpu->emu_fallback = vcpu_unicorn_emulate_one;
    struct vmm_cpu_state st;
    vmm_state_init(&st);
    if ((rc = kvm_set_state(cpu, &st)))
        goto fail;
    return 0;
fail:
    kvm_fini(cpu);
    return rc;
}

/* ---- registers ---- */

/* Finishes a pending I/O instruction without running further, so that
 * state written now is not overwritten by KVM's completion. */
static int complete_io(struct kvm_priv *p)
{
    if (!p->io_pending)
        return 0;
    p->run->immediate_exit = 1;
    int r = ioctl(p->cpu_fd, KVM_RUN, 0);
    int err = errno;
    p->run->immediate_exit = 0;
    p->io_pending = false;
    p->rip_adjust = 0;
    if (r < 0 && err != EINTR)
        return VMM_E_KVM;
    if (p->sync)
        p->sync_valid = true;
    return 0;
}

static int kvm_get_regs(struct vcpu *cpu, struct vmm_regs *r)
{
    struct kvm_priv *p = P(cpu);
    if (p->sync_valid)
        memcpy(r, &p->run->s.regs.regs, sizeof *r);
    else if (ioctl(p->cpu_fd, KVM_GET_REGS, r) < 0)
        return -errno;
    r->rip -= p->rip_adjust;
    return 0;
}

static int kvm_set_regs(struct vcpu *cpu, const struct vmm_regs *r)
{
    struct kvm_priv *p = P(cpu);
    int rc = complete_io(p);
    if (rc)
        return rc;
    p->run_fresh = false;
    if (p->sync_valid) {
        memcpy(&p->run->s.regs.regs, r, sizeof *r);
        p->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
        return 0;
    }
    return ioctl(p->cpu_fd, KVM_SET_REGS, r) < 0 ? -errno : 0;
}

static void events_to_vmm(const struct kvm_vcpu_events *k,
                          struct vmm_events *e)
{
    memset(e, 0, sizeof *e);
    e->irq_pending = k->interrupt.injected;
    e->irq_vector = k->interrupt.nr;
    e->interrupt_shadow = k->interrupt.shadow;
    e->nmi_pending = k->nmi.pending || k->nmi.injected;
    e->exc_pending = k->exception.injected || k->exception.pending;
    e->exc_vector = k->exception.nr;
    e->exc_has_error = k->exception.has_error_code;
    e->exc_error = k->exception.error_code;
}

static void events_to_kvm(const struct vmm_events *e,
                          struct kvm_vcpu_events *k)
{
    memset(k, 0, sizeof *k);
    k->interrupt.injected = e->irq_pending;
    k->interrupt.nr = e->irq_vector;
    k->interrupt.shadow = e->interrupt_shadow;
    k->nmi.injected = e->nmi_pending;
    k->exception.injected = e->exc_pending;
    k->exception.nr = e->exc_vector;
    k->exception.has_error_code = e->exc_has_error;
    k->exception.error_code = e->exc_error;
    k->flags = KVM_VCPUEVENT_VALID_SHADOW;
}

static int get_msrs(struct kvm_priv *p, struct vmm_msrs *m)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e[NMSRS];
    } b;
    memset(&b, 0, sizeof b);
    uint64_t *out = (uint64_t *)m;
    unsigned n = 0, idx[NMSRS];
    for (unsigned i = 0; i < NMSRS; i++) {
        out[i] = 0;
        if (p->msrs_ok[i]) {
            idx[n] = i;
            b.e[n++].index = msr_index[i];
        }
    }
    b.h.nmsrs = n;
    int got = ioctl(p->cpu_fd, KVM_GET_MSRS, &b);
    if (got < 0)
        return -errno;
    /* KVM stops at the first MSR it does not know: drop it, retry. */
    if ((unsigned)got < n) {
        p->msrs_ok[idx[got]] = false;
        return get_msrs(p, m);
    }
    for (unsigned i = 0; i < n; i++)
        out[idx[i]] = b.e[i].data;
    return 0;
}

static int set_msrs(struct kvm_priv *p, const struct vmm_msrs *m)
{
    struct {
        struct kvm_msrs h;
        struct kvm_msr_entry e[NMSRS];
    } b;
    memset(&b, 0, sizeof b);
    const uint64_t *in = (const uint64_t *)m;
    unsigned n = 0;
    for (unsigned i = 0; i < NMSRS; i++) {
        if (!p->msrs_ok[i])
            continue;
        b.e[n].index = msr_index[i];
        b.e[n++].data = in[i];
    }
    b.h.nmsrs = n;
    int got = ioctl(p->cpu_fd, KVM_SET_MSRS, &b);
    if (got < 0)
        return -errno;
    if ((unsigned)got < n) {
        for (unsigned i = 0; i < NMSRS; i++)
            if (msr_index[i] == b.e[got].index)
                p->msrs_ok[i] = false;
        return set_msrs(p, m);
    }
    return 0;
}

static int get_sync_part(struct kvm_priv *p, struct vmm_cpu_state *s)
{
    if (p->sync_valid) {
        memcpy(&s->regs, &p->run->s.regs.regs, sizeof s->regs);
        memcpy(&s->sregs, &p->run->s.regs.sregs, sizeof s->sregs);
        events_to_vmm(&p->run->s.regs.events, &s->events);
        return 0;
    }
    struct kvm_sregs ks;
    struct kvm_vcpu_events ev;
    if (ioctl(p->cpu_fd, KVM_GET_REGS, &s->regs) < 0 ||
        ioctl(p->cpu_fd, KVM_GET_SREGS, &ks) < 0 ||
        ioctl(p->cpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
        return -errno;
    memcpy(&s->sregs, &ks, sizeof s->sregs);
    events_to_vmm(&ev, &s->events);
    return 0;
}

/* ---- x87/SSE state ---- */

/* Offsets in the legacy (FXSAVE-format) area at the start of an XSAVE
 * image, and of XSTATE_BV in its header (Intel SDM vol. 1, 10.5.1 and
 * 13.4.2). */
enum {
    FX_FCW = 0, FX_FSW = 2, FX_FTW = 4, FX_FOP = 6, FX_FIP = 8, FX_FDP = 16,
    FX_MXCSR = 24, FX_ST = 32, FX_XMM = 160, XS_XSTATE_BV = 512,
};
#define XFEATURE_FP_SSE 3ull

static void fpu_from_xsave(const uint8_t *x, struct vmm_fpu *f)
{
    memcpy(&f->fcw, x + FX_FCW, 2);
    memcpy(&f->fsw, x + FX_FSW, 2);
    f->ftwx = x[FX_FTW];
    memcpy(&f->last_opcode, x + FX_FOP, 2);
    memcpy(&f->last_ip, x + FX_FIP, 8);
    memcpy(&f->last_dp, x + FX_FDP, 8);
    memcpy(&f->mxcsr, x + FX_MXCSR, 4);
    memcpy(f->fpr, x + FX_ST, sizeof f->fpr);
    memcpy(f->xmm, x + FX_XMM, sizeof f->xmm);
}

/* Leaves every other byte of the image (other components, MXCSR_MASK) as
 * KVM gave it, and marks x87 and SSE as in use so that KVM loads them. */
static void fpu_to_xsave(const struct vmm_fpu *f, uint8_t *x)
{
    memcpy(x + FX_FCW, &f->fcw, 2);
    memcpy(x + FX_FSW, &f->fsw, 2);
    x[FX_FTW] = f->ftwx;
    memcpy(x + FX_FOP, &f->last_opcode, 2);
    memcpy(x + FX_FIP, &f->last_ip, 8);
    memcpy(x + FX_FDP, &f->last_dp, 8);
    memcpy(x + FX_MXCSR, &f->mxcsr, 4);
    memcpy(x + FX_ST, f->fpr, sizeof f->fpr);
    memcpy(x + FX_XMM, f->xmm, sizeof f->xmm);
    uint64_t bv;
    memcpy(&bv, x + XS_XSTATE_BV, 8);
    bv |= XFEATURE_FP_SSE;
    memcpy(x + XS_XSTATE_BV, &bv, 8);
}

static int get_fpu(struct kvm_priv *p, struct vmm_fpu *f)
{
    if (!p->xsave)
        return ioctl(p->cpu_fd, KVM_GET_FPU, f) < 0 ? -errno : 0;
    struct kvm_xsave x;
    if (ioctl(p->cpu_fd, KVM_GET_XSAVE, &x) < 0)
        return -errno;
    fpu_from_xsave((const uint8_t *)x.region, f);
    return 0;
}

static int set_fpu(struct kvm_priv *p, const struct vmm_fpu *f)
{
    if (!p->xsave) {
        struct kvm_fpu k;
        memcpy(&k, f, sizeof k);
        return ioctl(p->cpu_fd, KVM_SET_FPU, &k) < 0 ? -errno : 0;
    }
    struct kvm_xsave x;
    if (ioctl(p->cpu_fd, KVM_GET_XSAVE, &x) < 0)
        return -errno;
    fpu_to_xsave(f, (uint8_t *)x.region);
    return ioctl(p->cpu_fd, KVM_SET_XSAVE, &x) < 0 ? -errno : 0;
}

static int kvm_get_state(struct vcpu *cpu, struct vmm_cpu_state *s)
{
    struct kvm_priv *p = P(cpu);
    memset(s, 0, sizeof *s);
    s->version = VMM_STATE_VERSION;
    s->size = sizeof *s;
    int rc = get_sync_part(p, s);
    if (rc)
        return rc;
    s->regs.rip -= p->rip_adjust;
    struct kvm_debugregs d;
    if ((rc = get_fpu(p, &s->fpu)))
        return rc;
    if (ioctl(p->cpu_fd, KVM_GET_DEBUGREGS, &d) < 0)
        return -errno;
    memcpy(s->dr, d.db, sizeof d.db);
    s->dr[6] = d.dr6;
    s->dr[7] = d.dr7;
    s->xcr0 = 1; /* x87 only: the guest CPUID has no XSAVE */
    return get_msrs(p, &s->msrs);
}

int vcpu_kvm_get_sync(struct vcpu *cpu, struct vmm_cpu_state *s)
{
    struct kvm_priv *p = P(cpu);
    int rc = get_sync_part(p, s);
    if (!rc)
        s->regs.rip -= p->rip_adjust;
    return rc;
}

static int set_sync_part(struct kvm_priv *p, const struct vmm_cpu_state *s)
{
    struct kvm_sregs ks;
    memset(&ks, 0, sizeof ks);
    memcpy(&ks, &s->sregs, sizeof s->sregs);
    if (p->sync_valid) {
        memcpy(&p->run->s.regs.regs, &s->regs, sizeof s->regs);
        p->run->s.regs.sregs = ks;
        events_to_kvm(&s->events, &p->run->s.regs.events);
        p->run->kvm_dirty_regs |= SYNC_ALL;
        return 0;
    }
    struct kvm_vcpu_events ev;
    events_to_kvm(&s->events, &ev);
    if (ioctl(p->cpu_fd, KVM_SET_SREGS, &ks) < 0 ||
        ioctl(p->cpu_fd, KVM_SET_REGS, &s->regs) < 0 ||
        ioctl(p->cpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
        return -errno;
    return 0;
}

static int kvm_set_state(struct vcpu *cpu, const struct vmm_cpu_state *s)
{
    struct kvm_priv *p = P(cpu);
    int rc = complete_io(p);
    if (rc)
        return rc;
    p->run_fresh = false;
    struct kvm_debugregs d;
    memset(&d, 0, sizeof d);
    memcpy(d.db, s->dr, sizeof d.db);
    d.dr6 = s->dr[6] ? s->dr[6] : 0xffff0ff0;
    d.dr7 = s->dr[7] ? s->dr[7] : 0x400;
    if ((rc = set_fpu(p, &s->fpu)))
        return rc;
    if (ioctl(p->cpu_fd, KVM_SET_DEBUGREGS, &d) < 0)
        return -errno;
    if ((rc = set_msrs(p, &s->msrs)))
        return rc;
    return set_sync_part(p, s);
}

/* The run page's flags describe the state KVM last exited with; after
 * registers were set they may not, so say "not ready" and let the caller
 * ask for an interrupt window, which KVM answers at once when IF=1. */
static int kvm_irq_ready(struct vcpu *cpu)
{
    struct kvm_priv *p = P(cpu);
    if (!p->run_fresh)
        return 0;
    /* kvm-pvm reports if_flag = 0 at a window-open exit from CPL3 even
     * though it just said the window is open; believe the exit. */
    if (p->run->exit_reason == KVM_EXIT_IRQ_WINDOW_OPEN)
        return 1;
    /* Kicked before the guest kernel got a ring-3 software interrupt
     * (kvm-pvm, vcpu.c): an interrupt goes after that delivery, where the
     * window exit it is waited for with comes. */
    if (vcpu_after_user_soft_int(cpu))
        return 0;
    return p->run->ready_for_interrupt_injection && p->run->if_flag;
}

/* ---- exits ---- */

static int cpl_of(struct kvm_priv *p)
{
    if (p->sync_valid)
        return p->run->s.regs.sregs.cs.dpl;
    struct kvm_sregs s;
    return ioctl(p->cpu_fd, KVM_GET_SREGS, &s) < 0 ? 0 : s.cs.dpl;
}

/* At a write exit where KVM left RIP past the instruction, find its
 * length so get_regs can report RIP at the instruction. */
static void normalise_write(struct vcpu *cpu, bool is_mmio, uint64_t where,
                            unsigned size)
{
    struct kvm_priv *p = P(cpu);
    const struct vmm_kvm_quirks *q = vmm_kvm_quirks();
    int cpl = cpl_of(p) ? 1 : 0;
    bool after = is_mmio ? q->mmio_w_rip_after[cpl] : q->out_rip_after[cpl];
    if (!after || !p->sync_valid)
        return;
    struct vmm_regs r;
    struct vmm_sregs s;
    memcpy(&r, &p->run->s.regs.regs, sizeof r);
    memcpy(&s, &p->run->s.regs.sregs, sizeof s);
    p->rip_adjust = vmm_insn_len_before(cpu->ram, cpu->ram_size, &r, &s,
                                        is_mmio, where, size);
}

/* ---- string port I/O ----
 *
 * KVM runs INS and OUTS through its instruction emulator, and one exit
 * may carry several elements: a rep INS exits once per read-ahead chunk
 * (up to 1024 bytes within a page), before any of it is stored; an OUTS
 * exits once per element, after it (RSI and RCX already stepped; RIP
 * still at a rep OUTS, even after its last element: the emulator sees
 * RCX = 0 only when it re-enters the instruction; past an OUTS without
 * rep).  Measured on kvm-pvm, Linux 6.18, at CPL0; VMX and SVM hand
 * string I/O to the same emulator.  Unicorn, hardware single-step and
 * the trace all see one access
 * per iteration, each with the registers before that iteration.  So each
 * element gets its own io callback, with the run page's registers stepped
 * to that element (RCX, RSI or RDI by the address size, the direction
 * flag honoured, RIP at the instruction): what vcpu_get_regs and
 * vcpu_get_state see there.  Afterwards an INS exit shows its first
 * element again (nothing of it is stored yet); an OUTS exit keeps "before
 * its element", as an OUT exit reports the state before the OUT.  The
 * run page is never marked dirty, so KVM's own state stays untouched.
 * Without KVM_CAP_SYNC_REGS the callbacks see the registers as KVM left
 * them (a replay of such a trace reports the difference). */

struct str_insn {
    uint64_t rip;   /* its address */
    unsigned len;
    unsigned asz;   /* address size in bytes: 2, 4 or 8 */
    bool rep;
};

/* Decodes b[0..n) as INS (in) or OUTS of size-byte elements: prefixes,
 * then 6C/6D or 6E/6F, ending within n bytes. */
static bool str_decode(const uint8_t *b, unsigned n,
                       const struct vmm_sregs *s, bool in, unsigned size,
                       struct str_insn *o)
{
    struct vmm_insn_prefix p;
    if (!vmm_insn_prefixes(b, n, s, &p) ||
        (p.op & 0xfe) != (in ? 0x6c : 0x6e) || p.esize != size)
        return false;
    o->len = p.len + 1u;
    o->rep = p.rep != 0;
    o->asz = p.asz;
    return true;
}

/* Up to n bytes of code at rip into b (fewer at the end of mapped
 * memory); how many. */
static unsigned code_at(struct vcpu *cpu, const struct vmm_sregs *s,
                        uint64_t rip, uint8_t *b, unsigned n)
{
    return vmm_code_fetch(cpu->ram, cpu->ram_size, s, rip, b, n);
}

/* The string instruction at rip, if it is one. */
static bool str_at(struct vcpu *cpu, const struct vmm_sregs *s, uint64_t rip,
                   bool in, unsigned size, struct str_insn *o)
{
    uint8_t b[15];
    unsigned n = code_at(cpu, s, rip, b, 15);
    if (!str_decode(b, n, s, in, size, o))
        return false;
    o->rip = rip;
    return true;
}

/* An OUTS that ends right before rip (its last or only element done).
 * The longest decoding that fits wins; a rep one only with RCX at 0. */
static bool str_before(struct vcpu *cpu, const struct vmm_sregs *s,
                       uint64_t rip, uint64_t rcx, unsigned size,
                       struct str_insn *o)
{
    uint8_t b[15];
    if (rip < 1 || code_at(cpu, s, rip - 1, b, 1) != 1 ||
        (b[0] & 0xfe) != 0x6e)
        return false; /* the common case: not an OUTS */
    unsigned avail = 15;
    while (avail > 1 && (rip < avail || code_at(cpu, s, rip - avail, b,
                                                avail) != avail))
        avail--;
    for (unsigned len = avail; len >= 1; len--) {
        if (!str_decode(b + avail - len, len, s, false, size, o) ||
            o->len != len)
            continue;
        if (!o->rep || !(rcx & vmm_asz_mask(o->asz))) {
            o->rip = rip - len;
            return true;
        }
    }
    return false;
}

/* reg + delta as a string instruction of address size asz writes it. */
static uint64_t str_step(uint64_t reg, int64_t delta, unsigned asz)
{
    if (!delta)
        return reg;
    uint64_t v = reg + (uint64_t)delta;
    if (asz == 2)
        return (reg & ~0xffffull) | (v & 0xffff);
    return asz == 4 ? (uint32_t)v : v;
}

/* Is this port exit a string instruction?  *o describes it. */
static bool str_exit(struct vcpu *cpu, bool write, uint16_t port,
                     unsigned size, const uint8_t *data, struct str_insn *o)
{
    struct kvm_priv *p = P(cpu);
    const struct kvm_regs *r = &p->run->s.regs.regs;
    struct vmm_sregs s;
    memcpy(&s, &p->run->s.regs.sregs, sizeof s);
    if (!write) /* IN: nothing done yet, RIP at the instruction */
        return str_at(cpu, &s, r->rip, true, size, o);
    bool mid = str_at(cpu, &s, r->rip, false, size, o) && o->rep;
    struct str_insn done;
    bool after = str_before(cpu, &s, r->rip, r->rcx, size, &done);
    if (!mid) {
        *o = done;
        return after;
    }
    /* A rep OUTS at RIP, but RIP may also be just past an OUTS or (on a
     * host that leaves RIP past an OUT) an OUT to the same port.  After
     * an element of the rep, the port exit before was at this RIP with
     * one more iteration to go (or, after an interrupt in between, an OUT
     * would have written AL). */
    const struct vmm_kvm_quirks *q = vmm_kvm_quirks();
    struct vmm_regs g;
    memcpy(&g, r, sizeof g);
    bool out = q->out_rip_after[s.cs.dpl ? 1 : 0] &&
               vmm_insn_len_before(cpu->ram, cpu->ram_size, &g, &s, false,
                                   port, size);
    if ((!after && !out) ||
        (p->pio_rip == r->rip &&
         ((p->pio_rcx - r->rcx) & vmm_asz_mask(o->asz)) == 1))
        return true;
    if (after) {
        *o = done;
        return true;
    }
    return memcmp(&r->rax, data, size) != 0;
}

/* The callbacks of a string exit, one per element (see above). */
static int str_elements(struct vcpu *cpu, const struct str_insn *in,
                        bool write, uint16_t port, unsigned size,
                        uint8_t *data, uint32_t count, uint32_t *last)
{
    struct kvm_regs *r = &P(cpu)->run->s.regs.regs;
    const struct kvm_regs exit = *r;
    int64_t step = (r->rflags & 0x400) ? -(int64_t)size : (int64_t)size;
    /* the registers before element 0: an OUTS exit is after its elements */
    struct kvm_regs base = exit;
    base.rip = in->rip;
    if (write) {
        base.rsi = str_step(exit.rsi, -step * count, in->asz);
        if (in->rep)
            base.rcx = str_step(exit.rcx, count, in->asz);
    }
    int rc = 0;
    for (uint32_t i = 0; i < count && rc >= 0; i++, data += size) {
        *r = base;
        if (write)
            r->rsi = str_step(base.rsi, step * i, in->asz);
        else
            r->rdi = str_step(base.rdi, step * i, in->asz);
        if (in->rep)
            r->rcx = str_step(base.rcx, -(int64_t)i, in->asz);
        uint32_t v = 0;
        if (write)
            memcpy(&v, data, size);
        rc = vcpu_io_pio(cpu, port, size, write, &v);
        if (!write)
            memcpy(data, &v, size);
        *last = v;
    }
    if (!write)
        *r = exit;
    return rc < 0 ? rc : 0;
}

static int exit_pio(struct vcpu *cpu, struct vcpu_exit *e)
{
    struct kvm_priv *p = P(cpu);
    struct kvm_run *r = p->run;
    unsigned size = r->io.size;
    bool write = r->io.direction == KVM_EXIT_IO_OUT;
    uint8_t *data = (uint8_t *)r + r->io.data_offset;
    if (r->io.data_offset + (uint64_t)size * r->io.count > p->run_size ||
        (size != 1 && size != 2 && size != 4) || !r->io.count)
        return VMM_E_KVM;
    struct str_insn str;
    bool is_str = p->sync_valid &&
                  str_exit(cpu, write, r->io.port, size, data, &str);
    if (p->sync_valid) {
        p->pio_rip = r->s.regs.regs.rip;
        p->pio_rcx = r->s.regs.regs.rcx;
    }
    uint32_t v = 0;
    int rc = 0;
    if (is_str) {
        rc = str_elements(cpu, &str, write, r->io.port, size, data,
                          r->io.count, &v);
    } else {
        /* Before the callback: it may read the registers (vmm.h
         * contract). */
        if (write && r->io.count == 1)
            normalise_write(cpu, false, r->io.port, size);
        for (uint32_t i = 0; i < r->io.count && rc >= 0; i++, data += size) {
            v = 0;
            if (write)
                memcpy(&v, data, size);
            rc = vcpu_io_pio(cpu, r->io.port, size, write, &v);
            if (!write)
                memcpy(data, &v, size);
        }
    }
    if (rc < 0)
        return rc; /* > 0 (stop): this backend stops at every I/O */
    p->io_pending = true;
    e->reason = VCPU_EXIT_IO;
    e->is_mmio = false;
    e->io.port = r->io.port;
    e->io.size = size;
    e->io.write = write;
    e->io.value = v;
    return 0;
}

static int exit_mmio(struct vcpu *cpu, struct vcpu_exit *e)
{
    struct kvm_priv *p = P(cpu);
    struct kvm_run *r = p->run;
    unsigned len = r->mmio.len;
    if (len == 0 || len > 8)
        return VMM_E_KVM;
    uint64_t v = 0;
    if (r->mmio.is_write) {
        memcpy(&v, r->mmio.data, len);
        normalise_write(cpu, true, r->mmio.phys_addr, len);
    }
    int rc = vcpu_io_mmio(cpu, r->mmio.phys_addr, len, r->mmio.is_write, &v);
    if (rc < 0)
        return rc;
    if (!r->mmio.is_write)
        memcpy(r->mmio.data, &v, len);
    p->io_pending = true;
    e->reason = VCPU_EXIT_IO;
    e->is_mmio = true;
    e->mmio.gpa = r->mmio.phys_addr;
    e->mmio.size = len;
    e->mmio.write = r->mmio.is_write;
    e->mmio.value = v;
    return 0;
}

static const char *emu_reason(const uint8_t *b, unsigned n, int cpl,
                              bool pvm)
{
    unsigned i = 0;
    while (i < n && (b[i] == 0x66 || b[i] == 0xf2 || b[i] == 0xf3 ||
                     (b[i] & 0xf0) == 0x40))
        i++;
    const char *what = "instruction";
    if (i < n && b[i] == 0xcc)
        what = "int3";
    else if (i < n && (b[i] == 0xcd || b[i] == 0xce))
        what = "int n";
    else if (i < n && b[i] == 0x0f)
        what = "SSE or other 0F-prefixed instruction";
    static __thread char buf[160];
    if (pvm && cpl == 0)
        snprintf(buf, sizeof buf,
                 "%s cannot be emulated in guest ring 0 under kvm-pvm "
                 "(SSE/int3/int n are not supported there)",
                 what);
    else
        snprintf(buf, sizeof buf, "KVM could not emulate this %s", what);
    return buf;
}

static int exit_emu_fail(struct vcpu *cpu, struct vcpu_exit *e)
{
    struct kvm_priv *p = P(cpu);
    struct kvm_run *r = p->run;
    struct vmm_regs regs;
    kvm_get_regs(cpu, &regs);
    struct vmm_sregs s;
    memcpy(&s, &p->run->s.regs.sregs, sizeof s);
    if (!p->sync_valid && ioctl(p->cpu_fd, KVM_GET_SREGS, &s) < 0)
        memset(&s, 0, sizeof s);
    e->reason = VCPU_EXIT_EMU_FAIL;
    e->emu.cpl = s.cs.dpl;
    /* KVM's copy holds only the bytes its emulator fetched (often one):
     * prefer guest memory at RIP, read through the checked translator,
     * and keep KVM's bytes where memory cannot be read. */
    unsigned n = code_at(cpu, &s, regs.rip, e->emu.insn, 15);
    if (!n && p->emu_fail_bytes &&
        (r->emulation_failure.flags &
         KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
        n = r->emulation_failure.insn_size > 15
                ? 15 : r->emulation_failure.insn_size;
        memcpy(e->emu.insn, r->emulation_failure.insn_bytes, n);
    }
    char where[160];
    e->emu.len = (uint8_t)vmm_insn_describe(where, sizeof where, e->emu.insn,
                                            n, &s, e->emu.cpl, regs.rip);
    /* The return value is used so a long reason may be cut silently. */
    int n_out = snprintf(e->detail, sizeof e->detail,
                         "emulation failure at %s: %s", where,
                         emu_reason(e->emu.insn, e->emu.len, e->emu.cpl,
                                    vmm_host_probe()->pvm));
    return n_out < 0 ? VMM_E_KVM : 0;
}

static int exit_internal(struct vcpu *cpu, struct vcpu_exit *e)
{
    struct kvm_run *r = P(cpu)->run;
    if (r->internal.suberror == KVM_INTERNAL_ERROR_EMULATION)
        return exit_emu_fail(cpu, e);
    struct vmm_regs regs;
    kvm_get_regs(cpu, &regs);
    e->reason = VCPU_EXIT_ERROR;
    snprintf(e->detail, sizeof e->detail,
             "KVM internal error (suberror %u) at RIP=0x%llx",
             r->internal.suberror, (unsigned long long)regs.rip);
    return 0;
}

static int exit_debug(struct vcpu *cpu, struct vcpu_exit *e)
{
    struct kvm_debug_exit_arch *d = &P(cpu)->run->debug.arch;
    if (d->exception == 1 && (d->dr6 & 0xf)) {
        e->reason = VCPU_EXIT_BREAKPOINT;
    } else if (d->exception == 1) {
        e->reason = VCPU_EXIT_STEP;
    } else {
        e->reason = VCPU_EXIT_BREAKPOINT; /* #BP with USE_SW_BP */
    }
    return 0;
}

/* Translates one KVM exit.  Returns 0 with e filled, 1 to run again. */
static int handle_exit(struct vcpu *cpu, struct vcpu_exit *e)
{
    struct kvm_run *r = P(cpu)->run;
    switch (r->exit_reason) {
    case KVM_EXIT_IO:
        return exit_pio(cpu, e);
    case KVM_EXIT_MMIO:
        return exit_mmio(cpu, e);
    case KVM_EXIT_HLT:
        e->reason = VCPU_EXIT_HLT;
        return 0;
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        e->reason = VCPU_EXIT_IRQ_WINDOW;
        return 0;
    case KVM_EXIT_INTR:
        e->reason = VCPU_EXIT_KICK;
        return 0;
    case KVM_EXIT_DEBUG:
        return exit_debug(cpu, e);
    case KVM_EXIT_SHUTDOWN:
        e->reason = VCPU_EXIT_SHUTDOWN;
        snprintf(e->detail, sizeof e->detail, "triple fault (shutdown)");
        return 0;
    case KVM_EXIT_FAIL_ENTRY:
        e->reason = VCPU_EXIT_ERROR;
        snprintf(e->detail, sizeof e->detail,
                 "VM entry failed (hardware reason 0x%llx)",
                 (unsigned long long)
                     r->fail_entry.hardware_entry_failure_reason);
        return 0;
    case KVM_EXIT_INTERNAL_ERROR:
        return exit_internal(cpu, e);
    default:
        e->reason = VCPU_EXIT_ERROR;
        snprintf(e->detail, sizeof e->detail, "unexpected KVM exit %u",
                 r->exit_reason);
        return 0;
    }
}

static int set_debug(struct kvm_priv *p, bool step)
{
    uint32_t want = 0;
    if (step || p->nbp)
        want = KVM_GUESTDBG_ENABLE;
    if (step)
        want |= KVM_GUESTDBG_SINGLESTEP;
    if (p->nbp)
        want |= KVM_GUESTDBG_USE_HW_BP;
    if (want == p->dbg_flags)
        return 0;
    struct kvm_guest_debug g;
    memset(&g, 0, sizeof g);
    g.control = want;
    for (unsigned i = 0; i < p->nbp; i++) {
        g.arch.debugreg[i] = p->bp[i];
        g.arch.debugreg[7] |= 2ull << (2 * i); /* Gi, execute, len 1 */
    }
    if (p->nbp)
        g.arch.debugreg[7] |= 0x600;
    if (ioctl(p->cpu_fd, KVM_SET_GUEST_DEBUG, &g) < 0)
        return -errno;
    p->dbg_flags = want;
    return 0;
}

static int kvm_run_op(struct vcpu *cpu, const struct vcpu_run_opts *o,
                      struct vcpu_exit *e)
{
    struct kvm_priv *p = P(cpu);
    if (o->max_insns && !o->single_step)
        return VMM_E_UNSUPPORTED;
    int rc = set_debug(p, o->single_step);
    if (rc)
        return rc;
    p->thread = pthread_self();
    for (;;) {
        p->rip_adjust = 0;
        p->running = 1;
        int r = ioctl(p->cpu_fd, KVM_RUN, 0);
        int err = errno;
        p->running = 0;
        p->io_pending = false;
        p->sync_valid = p->sync;
        p->run_fresh = true;
        if (r < 0) {
            p->run->immediate_exit = 0;
            if (err == EINTR || err == EAGAIN) {
                e->reason = VCPU_EXIT_KICK;
                return 0;
            }
            return -err;
        }
        rc = handle_exit(cpu, e);
        if (rc)
            return rc;
        if (e->reason == VCPU_EXIT_EMU_FAIL && cpu->emu_fallback &&
            cpu->emu_fallback(cpu, e) == 0) {
            memset(e, 0, sizeof *e);
            e->icount = VCPU_ICOUNT_UNKNOWN;
            /* The fallback executed the instruction: that was the step
             * (running on would make it two). */
            if (o->single_step) {
                e->reason = VCPU_EXIT_STEP;
                return 0;
            }
            continue;
        }
        return 0;
    }
}

static int kvm_inject_irq(struct vcpu *cpu, uint8_t vector)
{
    struct kvm_priv *p = P(cpu);
    /* Events set through the run page are applied at the next KVM_RUN
     * and would wipe the interrupt queued now: apply them first. */
    if (p->sync && (p->run->kvm_dirty_regs & KVM_SYNC_X86_EVENTS)) {
        if (ioctl(p->cpu_fd, KVM_SET_VCPU_EVENTS,
                  &p->run->s.regs.events) < 0)
            return -errno;
        p->run->kvm_dirty_regs &= ~(uint64_t)KVM_SYNC_X86_EVENTS;
    }
    struct kvm_interrupt irq = { .irq = vector };
    return ioctl(p->cpu_fd, KVM_INTERRUPT, &irq) < 0 ? -errno : 0;
}

static int kvm_request_irq_window(struct vcpu *cpu, bool on)
{
    P(cpu)->run->request_interrupt_window = on;
    return 0;
}

static int kvm_set_breakpoints(struct vcpu *cpu, const uint64_t *addr,
                               size_t n)
{
    struct kvm_priv *p = P(cpu);
    if (n > 4)
        return VMM_E_UNSUPPORTED;
    bool same = n == p->nbp && (!n || !memcmp(p->bp, addr, n * sizeof *addr));
    bool step = p->dbg_flags & KVM_GUESTDBG_SINGLESTEP;
    if (n)
        memcpy(p->bp, addr, n * sizeof *addr);
    p->nbp = n;
    /* set_debug skips the ioctl when the control flags stay the same:
     * new addresses under the same flags must still reach KVM */
    if (!same)
        p->dbg_flags = 0xffffffffu;
    return set_debug(p, step);
}

static int kvm_dirty_log(struct vcpu *cpu, uint64_t *bitmap)
{
    struct kvm_priv *p = P(cpu);
    uint64_t pages = cpu->ram_size / 4096;
    size_t bytes = (pages + 63) / 64 * 8;
    if (!p->manual_protect)
        return VMM_E_UNSUPPORTED;
    if (!p->dirty_on) {
        /* Logging starts now (it costs the guest write faults, so plain
         * runs never pay for it): everything counts as written. */
        int rc = set_memslot(p, cpu, true);
        if (rc)
            return rc;
        p->dirty_on = true;
        memset(bitmap, 0, bytes);
        for (uint64_t i = 0; i < pages; i++)
            bitmap[i / 64] |= 1ull << (i % 64);
    } else {
        struct kvm_dirty_log d = { .slot = 0, .dirty_bitmap = bitmap };
        if (ioctl(p->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0)
            return -errno;
    }
    struct kvm_clear_dirty_log c = {
        .slot = 0, .first_page = 0, .num_pages = (uint32_t)pages,
        .dirty_bitmap = bitmap };
    /* num_pages must be a multiple of 64 unless it reaches the end. */
    if (ioctl(p->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0)
        return -errno;
    if (cpu->emu_dirty) { /* written by the Unicorn fallback */
        for (size_t i = 0; i < bytes / 8; i++)
            bitmap[i] |= cpu->emu_dirty[i];
        memset(cpu->emu_dirty, 0, bytes);
    }
    return 0;
}

static void kvm_kick(struct vcpu *cpu)
{
    struct kvm_priv *p = P(cpu);
    p->run->immediate_exit = 1;
    if (p->running && !pthread_equal(p->thread, pthread_self()))
        pthread_kill(p->thread, kick_signal());
}

const struct vcpu_ops vcpu_kvm_ops = {
    .name = "kvm",
    .init = kvm_init,
    .fini = kvm_fini,
    .get_regs = kvm_get_regs,
    .set_regs = kvm_set_regs,
    .get_state = kvm_get_state,
    .set_state = kvm_set_state,
    .run = kvm_run_op,
    .inject_irq = kvm_inject_irq,
    .irq_ready = kvm_irq_ready,
    .request_irq_window = kvm_request_irq_window,
    .set_breakpoints = kvm_set_breakpoints,
    .dirty_log = kvm_dirty_log,
    .kick = kvm_kick,
};
