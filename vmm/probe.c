/*
 * probe.c — what this host's KVM can do, found out by trying: a throwaway
 * VM with 2 MiB of RAM runs a few instructions at CPL0 and at CPL3 to see
 * whether single-step and hardware breakpoints work there and where KVM
 * leaves RIP at write exits.  Nothing about the host is hard-coded; the
 * result is cached for the process (a probe costs a few milliseconds).
 * Raw ioctls on purpose: the KVM backend asks the probe for its caps.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/vmm_int.h"

#define PMEM (2ull << 20)
#define CODE 0x10000ull
#define MMIO_ADDR 0x200000ull /* just past RAM, mapped by the tables */

struct pv {
    int vm, cpu;
    uint8_t *mem;
    struct kvm_run *run;
    size_t run_size;
};

static struct vmm_host_caps caps;
static struct vmm_kvm_quirks quirks;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static bool file_exists(const char *path) { return access(path, F_OK) == 0; }

static void host_cpu_flags(void)
{
    FILE *f = fopen("/proc/cpuinfo", "re");
    char line[4096];
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5))
            continue;
        caps.vmx = strstr(line, " vmx") != NULL;
        caps.svm = strstr(line, " svm") != NULL;
        break;
    }
    fclose(f);
}

static void host_module(void)
{
    static const char *const mods[] = { "kvm_pvm", "kvm_intel", "kvm_amd" };
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/sys/module/%s", mods[i]);
        if (file_exists(path)) {
            snprintf(caps.kvm_module, sizeof caps.kvm_module, "%s", mods[i]);
            break;
        }
    }
    caps.pvm = !strcmp(caps.kvm_module, "kvm_pvm");
}

static void pv_close(struct pv *v)
{
    if (v->run)
        munmap(v->run, v->run_size);
    if (v->mem)
        munmap(v->mem, PMEM);
    if (v->cpu >= 0)
        close(v->cpu);
    if (v->vm >= 0)
        close(v->vm);
}

static int pv_open(struct pv *v, int kfd)
{
    memset(v, 0, sizeof *v);
    v->vm = v->cpu = -1;
    v->mem = mmap(NULL, PMEM, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (v->mem == MAP_FAILED) {
        v->mem = NULL;
        return -errno;
    }
    if ((v->vm = ioctl(kfd, KVM_CREATE_VM, 0)) < 0)
        return -errno;
    struct kvm_userspace_memory_region r = {
        .memory_size = PMEM, .userspace_addr = (uintptr_t)v->mem };
    if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0 ||
        (v->cpu = ioctl(v->vm, KVM_CREATE_VCPU, 0)) < 0)
        return -errno;
    struct vmm_cpuid t;
    vmm_cpuid_build(&t);
    int rc = vmm_kvm_set_cpuid(v->cpu, &t);
    if (rc)
        return rc;
    v->run_size = ioctl(kfd, KVM_GET_VCPU_MMAP_SIZE, 0);
    v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                  v->cpu, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        return -errno;
    }
    return 0;
}

static void seg(struct kvm_segment *s, uint16_t sel, bool code, int dpl)
{
    memset(s, 0, sizeof *s);
    s->selector = sel | dpl;
    s->limit = 0xffffffff;
    s->present = s->s = s->g = 1;
    s->dpl = dpl;
    if (code) {
        s->type = 0xb;
        s->l = 1;
    } else {
        s->type = 3;
        s->db = 1;
    }
}

/* Long mode at cpl with code at CODE; a TSS whose I/O bitmap allows every
 * port, so CPL3 can do port I/O. */
static int pv_setup(struct pv *v, int cpl, const uint8_t *code, size_t n)
{
    uint8_t *m = v->mem;
    memset(m, 0, 0x20000);
    uint64_t *pml4 = (uint64_t *)(m + 0x1000), *pdpt = (uint64_t *)(m + 0x2000),
             *pd = (uint64_t *)(m + 0x3000);
    pml4[0] = 0x2000 | 0x67;
    pdpt[0] = 0x3000 | 0x67;
    pd[0] = 0x000000 | 0xe7;
    pd[1] = 0x200000 | 0xe7;
    uint8_t *tss = m + 0x5000;
    tss[102] = 104; /* I/O map base; bitmap of zeros follows */
    memset(tss + 104 + 8192, 0xff, 1);
    uint64_t *gdt = (uint64_t *)(m + 0x8000);
    gdt[1] = 0x00af9b000000ffffull;
    gdt[2] = 0x00cf93000000ffffull;
    gdt[3] = 0x00affb000000ffffull;
    gdt[4] = 0x00cff3000000ffffull;
    memcpy(m + CODE, code, n);
    struct kvm_sregs s;
    if (ioctl(v->cpu, KVM_GET_SREGS, &s) < 0)
        return -errno;
    seg(&s.cs, cpl ? 0x18 : 0x08, true, cpl);
    seg(&s.ds, cpl ? 0x20 : 0x10, false, cpl);
    s.es = s.fs = s.gs = s.ss = s.ds;
    memset(&s.tr, 0, sizeof s.tr);
    s.tr.selector = 0x28;
    s.tr.base = 0x5000;
    s.tr.limit = 104 + 8192;
    s.tr.type = 11;
    s.tr.present = 1;
    s.gdt.base = 0x8000;
    s.gdt.limit = 0x37;
    s.cr3 = 0x1000;
    s.cr4 = 0x20 | 0x600;
    s.cr0 = 0x80050033;
    s.efer = 0x500;
    struct kvm_regs r;
    memset(&r, 0, sizeof r);
    r.rip = CODE;
    r.rflags = 0x2;
    r.rsp = 0x9000;
    r.rdx = 0x3f8;
    r.rbx = MMIO_ADDR;
    struct kvm_guest_debug g;
    memset(&g, 0, sizeof g);
    if (ioctl(v->cpu, KVM_SET_SREGS, &s) < 0 ||
        ioctl(v->cpu, KVM_SET_REGS, &r) < 0)
        return -errno;
    ioctl(v->cpu, KVM_SET_GUEST_DEBUG, &g);
    return 0;
}

/* Runs once; returns the exit reason and the RIP offset from CODE. */
static int pv_run(struct pv *v, int64_t *off)
{
    if (ioctl(v->cpu, KVM_RUN, 0) < 0)
        return -1;
    struct kvm_regs r;
    if (ioctl(v->cpu, KVM_GET_REGS, &r) < 0)
        return -1;
    *off = (int64_t)(r.rip - CODE);
    return v->run->exit_reason;
}

/* out dx,al ; mov [rbx],al ; out dx,al ; jmp $ */
static const uint8_t code_rip[] = { 0xee, 0x88, 0x03, 0xee, 0xeb, 0xfe };
/* nop ; nop ; out dx,al ; jmp $ */
static const uint8_t code_dbg[] = { 0x90, 0x90, 0xee, 0xeb, 0xfe };

static void probe_rip(struct pv *v, int cpl)
{
    int64_t off;
    if (pv_setup(v, cpl, code_rip, sizeof code_rip))
        return;
    if (pv_run(v, &off) == KVM_EXIT_IO)
        quirks.out_rip_after[cpl ? 1 : 0] = off == 1;
    if (pv_run(v, &off) == KVM_EXIT_MMIO)
        quirks.mmio_w_rip_after[cpl ? 1 : 0] = off == 3;
}

static bool probe_step(struct pv *v, int cpl)
{
    int64_t off;
    if (pv_setup(v, cpl, code_dbg, sizeof code_dbg))
        return false;
    struct kvm_guest_debug g;
    memset(&g, 0, sizeof g);
    g.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
    if (ioctl(v->cpu, KVM_SET_GUEST_DEBUG, &g) < 0)
        return false;
    int a = pv_run(v, &off);
    if (a != KVM_EXIT_DEBUG || off != 1)
        return false;
    a = pv_run(v, &off);
    return a == KVM_EXIT_DEBUG && off == 2;
}

static bool probe_hwbp(struct pv *v, int cpl)
{
    int64_t off;
    if (pv_setup(v, cpl, code_dbg, sizeof code_dbg))
        return false;
    struct kvm_guest_debug g;
    memset(&g, 0, sizeof g);
    g.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
    g.arch.debugreg[0] = CODE + 1;
    g.arch.debugreg[7] = 0x2 | 0x600;
    if (ioctl(v->cpu, KVM_SET_GUEST_DEBUG, &g) < 0)
        return false;
    return pv_run(v, &off) == KVM_EXIT_DEBUG && off == 1;
}

static void probe_behaviour(int kfd)
{
    struct pv v;
    int rc = pv_open(&v, kfd);
    if (rc) {
        snprintf(caps.detail, sizeof caps.detail,
                 "cannot create a probe VM: %s", vmm_strerror(rc));
        caps.kvm = false;
        pv_close(&v);
        return;
    }
    probe_rip(&v, 0);
    probe_rip(&v, 3);
    quirks.measured = true;
    if (caps.guest_debug) {
        caps.step_cpl0 = probe_step(&v, 0);
        caps.step_cpl3 = probe_step(&v, 3);
        caps.hw_break_cpl0 = probe_hwbp(&v, 0);
        caps.hw_break_cpl3 = probe_hwbp(&v, 3);
        /* the ioctl exists; "guest debug" is whether any of it works */
        caps.guest_debug = caps.step_cpl0 || caps.step_cpl3 ||
                           caps.hw_break_cpl0 || caps.hw_break_cpl3;
    }
    pv_close(&v);
}

static void probe_once(void)
{
    host_cpu_flags();
    host_module();
    /* Conservative defaults until measured: RIP past writes as kvm's
     * emulator leaves it. */
    quirks.out_rip_after[0] = quirks.out_rip_after[1] = true;
    quirks.mmio_w_rip_after[0] = quirks.mmio_w_rip_after[1] = true;
    int kfd = vmm_kvm_fd();
    if (kfd < 0) {
        snprintf(caps.detail, sizeof caps.detail, "/dev/kvm: %s",
                 vmm_strerror(kfd));
        return;
    }
    caps.kvm = true;
    int sync = vmm_kvm_cap(KVM_CAP_SYNC_REGS);
    caps.sync_regs = (sync & 7) == 7;
    caps.manual_dirty_log =
        (vmm_kvm_cap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) & 1) != 0;
    caps.immediate_exit = vmm_kvm_cap(KVM_CAP_IMMEDIATE_EXIT) != 0;
    caps.guest_debug = vmm_kvm_cap(KVM_CAP_SET_GUEST_DEBUG) != 0;
    probe_behaviour(kfd);
}

const struct vmm_host_caps *vmm_host_probe(void)
{
    pthread_once(&once, probe_once);
    return &caps;
}

const struct vmm_kvm_quirks *vmm_kvm_quirks(void)
{
    pthread_once(&once, probe_once);
    return &quirks;
}
