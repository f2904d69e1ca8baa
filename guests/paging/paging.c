/*
 * paging — turns on a non-identity mapping: virtual 1 GiB (unmapped in
 * the SDK's tables) becomes an alias of physical 4 MiB, through a page
 * directory of its own hung under the SDK's PDPT, then writes through the
 * alias and reads the physical address directly.  Ring 0 only.
 *
 * Unicorn 2.0.1 ignores guest page tables (translation is identity), so
 * this guest cannot be replayed there; the replayer must detect it and
 * replay it by KVM single steps (kvm-step) or refuse clearly, never
 * produce wrong states.  Kept out of GUEST_NAMES:
 * every test that runs each sample guest under Unicorn would fail on it
 * by design.  Output: "paging: alias 1 GiB -> 4 MiB: wrote 0x2222 through
 * it, read 0x2222 directly", exit value 0 (1 if the read differs).
 */
#include "sdk.h"

#define PTE_TABLE 0x27ull /* present, writable, user, accessed */
#define PTE_2M 0xe7ull    /* the same, dirty, 2 MiB page */
#define ADDR_MASK 0x000ffffffffff000ull
#define ALIAS 0x40000000ull
#define TARGET 0x400000ull

static uint64_t alias_pd[512] __attribute__((aligned(4096)));

int guest_main(void)
{
    volatile uint64_t *direct = (volatile uint64_t *)TARGET;
    volatile uint64_t *alias = (volatile uint64_t *)ALIAS;
    uint64_t cr3;
    *direct = 0x1111;
    __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
    uint64_t *pml4 = (uint64_t *)(cr3 & ADDR_MASK);
    uint64_t *pdpt = (uint64_t *)(pml4[0] & ADDR_MASK);
    alias_pd[0] = TARGET | PTE_2M;
    pdpt[1] = (uint64_t)alias_pd | PTE_TABLE;
    __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
    *alias = 0x2222;
    uint64_t v = *direct;
    sdk_printf("paging: alias 1 GiB -> 4 MiB: wrote 0x2222 through it, "
               "read %#lx directly\n", v);
    return v == 0x2222 ? 0 : 1;
}
