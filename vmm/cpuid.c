/*
 * cpuid.c — the guest's one fixed CPUID table.
 *
 * Start from what KVM offers (KVM_GET_SUPPORTED_CPUID), keep only leaves
 * and feature bits that Unicorn 2.0.1 (QEMU 5.0 TCG) executes the same way
 * and that replay can reproduce, and sort the result so the same host
 * always gives the same table.  Per register a mask of kept bits:
 *  - dropped: AVX/AVX2/AVX-512/FMA/F16C (VEX: not in that TCG), XSAVE and
 *    OSXSAVE (so XCR0 stays x87|SSE and the FPU state is struct vmm_fpu),
 *    RDRAND/RDSEED and the TSC, TSC-deadline, RDTSCP, RDPID and invariant
 *    TSC bits (the host's clock and entropy cannot be replayed: a guest
 *    that uses RDTSC anyway diverges and replay says so), x2APIC and the
 *    APIC bit (ttvm has no local APIC), the hypervisor bit and leaves,
 *    MONITOR/MWAIT, VMX/SVM, PCID/INVPCID, TSX, PMU (leaf 0xA: no PMU
 *    here), topology leaves 0xB/0x1F and XSAVE leaf 0xD;
 *  - kept: x87, SSE..SSE4.2, SSSE3, POPCNT, CX8/CX16, MOVBE, AES,
 *    PCLMULQDQ, CMOV, FXSR, PAE, PGE, PAT, NX, 1 GiB pages, SYSCALL, LM,
 *    LAHF, LZCNT, PREFETCHW, BMI1/BMI2, ADX, ERMS, FSGSBASE, SMEP, SMAP,
 *    CLFLUSH(OPT), SEP, MTRR, MCE/MCA, PSE/PSE36, DE, VME — all of which
 *    TCG implements.
 * Leaf 1 EBX keeps only the CLFLUSH line size (one CPU, APIC ID 0).
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/vmm_int.h"

struct keep {
    uint32_t function;
    uint32_t eax, ebx, ecx, edx; /* masks of bits kept */
};

#define ALL 0xffffffffu
static const struct keep keep[] = {
    { 0x0, ALL, ALL, ALL, ALL },
    /* EDX: FPU VME DE PSE - MSR PAE MCE CX8 - - SEP MTRR PGE MCA CMOV PAT
     * PSE36 - CLFSH - - - MMX FXSR SSE SSE2 */
    { 0x1, ALL, 0x0000ff00u, 0x02d82203u, 0x078bf9efu },
    { 0x2, ALL, ALL, ALL, ALL },
    { 0x4, ALL, ALL, ALL, ALL },
    /* EBX: FSGSBASE BMI1 SMEP BMI2 ERMS ADX SMAP CLFLUSHOPT */
    { 0x7, 0, 0x00980389u, 0, 0 },
    { 0x80000000u, ALL, ALL, ALL, ALL },
    /* ECX: LAHF LZCNT PREFETCHW; EDX: SYSCALL NX PDPE1GB LM */
    { 0x80000001u, ALL, 0, 0x00000121u, 0x24100800u },
    { 0x80000002u, ALL, ALL, ALL, ALL },
    { 0x80000003u, ALL, ALL, ALL, ALL },
    { 0x80000004u, ALL, ALL, ALL, ALL },
    { 0x80000005u, ALL, ALL, ALL, ALL },
    { 0x80000006u, ALL, ALL, ALL, ALL },
    { 0x80000008u, 0x0000ffffu, 0, 0, 0 },
};
#define NKEEP (sizeof keep / sizeof keep[0])

/* Used when KVM is absent (Unicorn-only use): a plain x86-64 with SSE2. */
static const struct vmm_cpuid_entry baseline[] = {
    { 0x0, 0, 0, 7, 0x756e6547, 0x6c65746e, 0x49656e69, 0 },
    { 0x1, 0, 0, 0x000306a9, 0x00000800, 0x00982201, 0x078bf9ef, 0 },
    { 0x7, 0, VMM_CPUID_SIGNIFICANT_INDEX, 0, 0, 0, 0, 0 },
    { 0x80000000u, 0, 0, 0x80000008u, 0, 0, 0, 0 },
    { 0x80000001u, 0, 0, 0, 0, 0x00000001, 0x20100800, 0 },
    { 0x80000008u, 0, 0, 0x00003028, 0, 0, 0, 0 },
};

static const struct keep *keep_of(uint32_t fn)
{
    for (size_t i = 0; i < NKEEP; i++)
        if (keep[i].function == fn)
            return &keep[i];
    return NULL;
}

static int ent_cmp(const void *a, const void *b)
{
    const struct vmm_cpuid_entry *x = a, *y = b;
    if (x->function != y->function)
        return x->function < y->function ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Keeps subleaf 0 of indexed leaves, except leaf 4 (cache levels). */
static bool keep_entry(const struct kvm_cpuid_entry2 *e)
{
    const struct keep *k = keep_of(e->function);
    if (!k)
        return false;
    if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index &&
        e->function != 4)
        return false;
    return true;
}

static void fix_limits(struct vmm_cpuid *t)
{
    uint32_t max_basic = 0, max_ext = 0x80000000u;
    for (uint32_t i = 0; i < t->nent; i++) {
        uint32_t f = t->ent[i].function;
        if (f < 0x40000000u && f > max_basic)
            max_basic = f;
        if (f >= 0x80000000u && f > max_ext)
            max_ext = f;
    }
    for (uint32_t i = 0; i < t->nent; i++) {
        if (t->ent[i].function == 0)
            t->ent[i].eax = max_basic;
        if (t->ent[i].function == 0x80000000u)
            t->ent[i].eax = max_ext;
    }
}

static int from_kvm(struct vmm_cpuid *out)
{
    int kfd = vmm_kvm_fd();
    if (kfd < 0)
        return kfd;
    int n = 256;
    struct kvm_cpuid2 *c = calloc(1, sizeof *c + n * sizeof c->entries[0]);
    if (!c)
        return -ENOMEM;
    c->nent = n;
    if (ioctl(kfd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
        int rc = -errno;
        free(c);
        return rc;
    }
    memset(out, 0, sizeof *out);
    for (uint32_t i = 0; i < c->nent && out->nent < VMM_CPUID_MAX; i++) {
        const struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (!keep_entry(e))
            continue;
        const struct keep *k = keep_of(e->function);
        struct vmm_cpuid_entry *d = &out->ent[out->nent++];
        d->function = e->function;
        d->index = e->index;
        d->flags = (e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
                       ? VMM_CPUID_SIGNIFICANT_INDEX : 0;
        d->eax = e->eax & k->eax;
        d->ebx = e->ebx & k->ebx;
        d->ecx = e->ecx & k->ecx;
        d->edx = e->edx & k->edx;
    }
    free(c);
    return 0;
}

int vmm_cpuid_build(struct vmm_cpuid *out)
{
    if (from_kvm(out)) {
        memset(out, 0, sizeof *out);
        out->nent = sizeof baseline / sizeof baseline[0];
        memcpy(out->ent, baseline, sizeof baseline);
    }
    for (uint32_t i = 0; i < out->nent; i++) {
        struct vmm_cpuid_entry *e = &out->ent[i];
        if (e->function == 4) /* one core, one thread per cache */
            e->eax &= 0x00003fffu;
    }
    qsort(out->ent, out->nent, sizeof out->ent[0], ent_cmp);
    fix_limits(out);
    return 0;
}

static const struct vmm_cpuid_entry *find(const struct vmm_cpuid *t,
                                          uint32_t leaf, uint32_t subleaf,
                                          bool *leaf_known)
{
    *leaf_known = false;
    for (uint32_t i = 0; i < t->nent; i++) {
        const struct vmm_cpuid_entry *e = &t->ent[i];
        if (e->function != leaf)
            continue;
        *leaf_known = true;
        if (!(e->flags & VMM_CPUID_SIGNIFICANT_INDEX) || e->index == subleaf)
            return e;
    }
    return NULL;
}

static uint32_t max_leaf(const struct vmm_cpuid *t, uint32_t base)
{
    bool known;
    const struct vmm_cpuid_entry *e = find(t, base, 0, &known);
    return e ? e->eax : base;
}

void vmm_cpuid_lookup(const struct vmm_cpuid *t, uint32_t leaf,
                      uint32_t subleaf, uint32_t *eax, uint32_t *ebx,
                      uint32_t *ecx, uint32_t *edx)
{
    uint32_t max_basic = max_leaf(t, 0);
    bool out_of_range = leaf >= 0x80000000u
                            ? leaf > max_leaf(t, 0x80000000u)
                            : leaf > max_basic;
    if (out_of_range) { /* Intel: the highest basic leaf's data */
        leaf = max_basic;
    }
    bool known;
    const struct vmm_cpuid_entry *e = find(t, leaf, subleaf, &known);
    *eax = e ? e->eax : 0;
    *ebx = e ? e->ebx : 0;
    *ecx = e ? e->ecx : 0;
    *edx = e ? e->edx : 0;
}
