/*
 * mem.c — guest addresses: the one checked translator from guest-physical
 * to host pointers, and the page-table walk from guest-virtual.  Every
 * access the VMM makes to guest memory on the guest's behalf goes through
 * here, so nothing outside [ram, ram+size) is ever touched whatever the
 * guest's tables say.
 */
#include <string.h>

#include "vmm/vmm_int.h"

#define PTE_P 1ull
#define PTE_PS 0x80ull
#define ADDR_MASK 0x000ffffffffff000ull

static const void *gpa_ptr(const uint8_t *ram, uint64_t size, uint64_t gpa,
                           uint64_t len)
{
    if (gpa > size || len > size - gpa)
        return NULL;
    return ram + gpa;
}

static int read_entry64(const uint8_t *ram, uint64_t size, uint64_t gpa,
                        uint64_t *e)
{
    const void *p = gpa_ptr(ram, size, gpa, 8);
    if (!p)
        return VMM_E_RANGE;
    memcpy(e, p, 8);
    return (*e & PTE_P) ? 0 : VMM_E_RANGE;
}

/* Long mode (4 levels) and 32-bit PAE (3 levels). */
static int walk_pae(const uint8_t *ram, uint64_t size, uint64_t cr3,
                    uint64_t gva, int levels, uint64_t *gpa)
{
    uint64_t table = levels == 4 ? cr3 & ADDR_MASK : cr3 & 0xffffffe0ull;
    for (int lvl = levels; lvl >= 1; lvl--) {
        unsigned shift = 12 + 9 * (lvl - 1);
        unsigned idx = lvl == 3 && levels == 3 ? (gva >> 30) & 3
                                               : (gva >> shift) & 511;
        uint64_t e;
        if (read_entry64(ram, size, table + 8ull * idx, &e))
            return VMM_E_RANGE;
        if (lvl == 1 || ((lvl == 2 || lvl == 3) && (e & PTE_PS) &&
                         !(lvl == 3 && levels == 3))) {
            uint64_t page = (e & ADDR_MASK) & ~((1ull << shift) - 1);
            *gpa = page | (gva & ((1ull << shift) - 1));
            return 0;
        }
        table = e & ADDR_MASK;
    }
    return VMM_E_RANGE;
}

/* Legacy 32-bit paging (2 levels, 4 MiB pages with PSE). */
static int walk_32(const uint8_t *ram, uint64_t size, uint64_t cr3,
                   uint32_t gva, bool pse, uint64_t *gpa)
{
    const void *p = gpa_ptr(ram, size, (cr3 & 0xfffff000u) + 4 * (gva >> 22),
                            4);
    uint32_t pde, pte;
    if (!p)
        return VMM_E_RANGE;
    memcpy(&pde, p, 4);
    if (!(pde & 1))
        return VMM_E_RANGE;
    if (pse && (pde & PTE_PS)) {
        *gpa = (pde & 0xffc00000u) | (gva & 0x3fffff);
        return 0;
    }
    p = gpa_ptr(ram, size, (pde & 0xfffff000u) + 4 * ((gva >> 12) & 1023), 4);
    if (!p)
        return VMM_E_RANGE;
    memcpy(&pte, p, 4);
    if (!(pte & 1))
        return VMM_E_RANGE;
    *gpa = (pte & 0xfffff000u) | (gva & 0xfff);
    return 0;
}

int vmm_walk(const uint8_t *ram, uint64_t size, const struct vmm_sregs *s,
             uint64_t gva, bool write, uint64_t *gpa)
{
    (void)write; /* presence only: the VMM reads for reports and decoding */
    if (!(s->cr0 & 0x80000000u)) {
        *gpa = (s->efer & 0x400) ? gva : (uint32_t)gva;
        return 0;
    }
    if (s->efer & 0x400)
        return walk_pae(ram, size, s->cr3, gva, 4, gpa);
    if (s->cr4 & 0x20)
        return walk_pae(ram, size, s->cr3, (uint32_t)gva, 3, gpa);
    return walk_32(ram, size, s->cr3, (uint32_t)gva, s->cr4 & 0x10, gpa);
}

int vmm_read_gva(const uint8_t *ram, uint64_t size, const struct vmm_sregs *s,
                 uint64_t gva, void *buf, size_t len)
{
    uint8_t *out = buf;
    while (len) {
        uint64_t gpa;
        if (vmm_walk(ram, size, s, gva, false, &gpa))
            return VMM_E_RANGE;
        size_t chunk = 4096 - (gva & 4095);
        if (chunk > len)
            chunk = len;
        const void *p = gpa_ptr(ram, size, gpa, chunk);
        if (!p)
            return VMM_E_RANGE;
        memcpy(out, p, chunk);
        out += chunk;
        gva += chunk;
        len -= chunk;
    }
    return 0;
}
