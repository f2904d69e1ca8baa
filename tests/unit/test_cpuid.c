/*
 * test_cpuid.c — the guest's CPUID table: deterministic, never more than
 * KVM offers (checked against KVM_GET_SUPPORTED_CPUID itself when
 * /dev/kvm exists), without the features DESIGN.md excludes, and looked up
 * the way the CPU answers.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/vmm.h"

static void reg(const struct vmm_cpuid *t, uint32_t leaf, uint32_t sub,
                uint32_t r[4])
{
    vmm_cpuid_lookup(t, leaf, sub, &r[0], &r[1], &r[2], &r[3]);
}

Test(cpuid, deterministic)
{
    struct vmm_cpuid a, b;
    memset(&a, 0x11, sizeof a);
    memset(&b, 0x22, sizeof b);
    cr_assert_eq(vmm_cpuid_build(&a), 0);
    cr_assert_eq(vmm_cpuid_build(&b), 0);
    cr_assert_eq(a.nent, b.nent);
    cr_assert_eq(memcmp(a.ent, b.ent, a.nent * sizeof a.ent[0]), 0);
    cr_assert_gt(a.nent, 3);
    for (uint32_t i = 1; i < a.nent; i++)
        cr_assert(a.ent[i - 1].function < a.ent[i].function ||
                      (a.ent[i - 1].function == a.ent[i].function &&
                       a.ent[i - 1].index < a.ent[i].index),
                  "sorted");
}

Test(cpuid, excluded_features_absent)
{
    struct vmm_cpuid t;
    uint32_t r[4];
    vmm_cpuid_build(&t);
    reg(&t, 1, 0, r);
    cr_assert_eq(r[2] & (1u << 28), 0, "AVX");
    cr_assert_eq(r[2] & (1u << 26), 0, "XSAVE");
    cr_assert_eq(r[2] & (1u << 27), 0, "OSXSAVE");
    cr_assert_eq(r[2] & (1u << 30), 0, "RDRAND");
    cr_assert_eq(r[2] & (1u << 31), 0, "hypervisor");
    cr_assert_eq(r[2] & (1u << 21), 0, "x2APIC");
    cr_assert_eq(r[2] & (1u << 24), 0, "TSC deadline");
    cr_assert_eq(r[2] & (1u << 12), 0, "FMA");
    cr_assert_eq(r[3] & (1u << 4), 0, "TSC");
    cr_assert_eq(r[3] & (1u << 9), 0, "APIC");
    cr_assert(r[3] & (1u << 26), "SSE2 kept");
    cr_assert(r[3] & (1u << 24), "FXSR kept");
    reg(&t, 7, 0, r);
    cr_assert_eq(r[1] & (1u << 5), 0, "AVX2");
    cr_assert_eq(r[1] & (1u << 16), 0, "AVX512F");
    cr_assert_eq(r[1] & (1u << 18), 0, "RDSEED");
    cr_assert_eq(r[2] & (1u << 22), 0, "RDPID");
    reg(&t, 0x80000001u, 0, r);
    cr_assert_eq(r[3] & (1u << 27), 0, "RDTSCP");
    cr_assert(r[3] & (1u << 29), "long mode kept");
    reg(&t, 0x80000007u, 0, r);
    cr_assert_eq(r[3] & (1u << 8), 0, "invariant TSC");
    for (uint32_t i = 0; i < t.nent; i++) {
        cr_assert(t.ent[i].function < 0x40000000u ||
                      t.ent[i].function >= 0x80000000u,
                  "no hypervisor leaves");
        cr_assert_neq(t.ent[i].function, 0xd, "no XSAVE leaf");
        cr_assert_neq(t.ent[i].function, 0xa, "no PMU leaf");
    }
}

Test(cpuid, subset_of_kvm)
{
    int fd = open("/dev/kvm", O_RDWR);
    if (fd < 0)
        cr_skip_test("no /dev/kvm");
    struct kvm_cpuid2 *c = calloc(1, sizeof *c + 256 * sizeof c->entries[0]);
    c->nent = 256;
    cr_assert_eq(ioctl(fd, KVM_GET_SUPPORTED_CPUID, c), 0);
    close(fd);
    struct vmm_cpuid t;
    vmm_cpuid_build(&t);
    for (uint32_t i = 0; i < t.nent; i++) {
        const struct vmm_cpuid_entry *e = &t.ent[i];
        if (e->function == 0 || e->function == 0x80000000u)
            continue; /* max leaf rewritten */
        bool found = false;
        for (uint32_t j = 0; j < c->nent; j++) {
            const struct kvm_cpuid_entry2 *k = &c->entries[j];
            if (k->function != e->function || k->index != e->index)
                continue;
            found = true;
            cr_assert_eq(e->ebx & ~k->ebx, 0, "leaf %x ebx", e->function);
            cr_assert_eq(e->ecx & ~k->ecx, 0, "leaf %x ecx", e->function);
            cr_assert_eq(e->edx & ~k->edx, 0, "leaf %x edx", e->function);
            if (e->function != 4)
                cr_assert_eq(e->eax & ~k->eax, 0, "leaf %x eax", e->function);
        }
        cr_assert(found, "leaf %x.%x comes from KVM", e->function, e->index);
    }
    free(c);
}

Test(cpuid, lookup_like_the_cpu)
{
    struct vmm_cpuid t;
    uint32_t r[4], top[4], z[4];
    vmm_cpuid_build(&t);
    reg(&t, 0, 0, r);
    uint32_t max = r[0];
    cr_assert_geq(max, 1);
    reg(&t, max, 0, top);
    reg(&t, max + 1, 0, z);
    cr_assert_eq(memcmp(top, z, sizeof z), 0, "above max: highest basic leaf");
    reg(&t, 0x40000000u, 0, z);
    cr_assert_eq(memcmp(top, z, sizeof z), 0, "hypervisor range likewise");
    reg(&t, 0x80000000u, 0, r);
    reg(&t, r[0] + 1, 0, z);
    cr_assert_eq(memcmp(top, z, sizeof z), 0, "above max extended leaf");
    reg(&t, 7, 1, z);
    cr_assert_eq(z[0] | z[1] | z[2] | z[3], 0, "missing subleaf: zeros");
    reg(&t, 0, 0, r);
    char vendor[13];
    memcpy(vendor, &r[1], 4);
    memcpy(vendor + 4, &r[3], 4);
    memcpy(vendor + 8, &r[2], 4);
    vendor[12] = 0;
    cr_assert(!strcmp(vendor, "GenuineIntel") || !strcmp(vendor, "AuthenticAMD"),
              "vendor %s", vendor);
}
