/*
 * vmm_testlib.h — helpers for the unit tests that run code on a real vCPU
 * (header-only, all static).
 */
#ifndef TTVM_TESTS_VMM_TESTLIB_H
#define TTVM_TESTS_VMM_TESTLIB_H

#include <criterion/criterion.h>
#include <string.h>

#include "vmm/vmm_int.h"

/* The VMM area (GDT, identity page tables, boot info) built by the
 * loader from a tiny Multiboot image whose entry is code, then the
 * ELF64 entry state on those tables: 64-bit CPL0 with paging, for the
 * caller to place its code at code and adjust.  A valid ELF64 would do
 * too, but the loader's own state is what the tests want. */
static inline struct vmm_cpu_state testlib_long_mode(uint8_t *ram,
                                                     uint64_t size,
                                                     uint32_t code)
{
    struct vmm_cpu_state st;
    struct vmm_image_info info;
    static uint8_t img[64];
    uint32_t h[8] = {0x1BADB002, 0x10000, (uint32_t)-(0x1BADB002 + 0x10000),
                     code, code, 0, 0, code + 32};
    memset(img, 0, sizeof img);
    memcpy(img, h, sizeof h);
    cr_assert_eq(vmm_load(ram, size, img, sizeof img, VMM_BOOT_AUTO, "",
                          true, &st, &info), 0, "%s", info.error);
    st.sregs.cs.l = 1;
    st.sregs.cs.db = 0;
    st.sregs.cr0 = 0x80050033;
    st.sregs.cr3 = VMM_BOOT_PML4;
    st.sregs.cr4 = 0x620;
    st.sregs.efer = 0x500;
    return st;
}

#endif /* TTVM_TESTS_VMM_TESTLIB_H */
