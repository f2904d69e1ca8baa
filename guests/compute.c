/*
 * compute — a deterministic checksum loop, in ring 3 (natively fast under
 * kvm-pvm) or in ring 0 (emulated there: the small variant).
 *
 * Parameters: ring=3|0 (default 3), iters=N (default 125000000 in ring 3,
 * about 1e9 instructions at 8 per iteration with gcc 12 -O2; 125000 in
 * ring 0, about 1e6).
 * Output: "compute: ring=R iters=N checksum=0x<16 hex digits>".
 * Exit value 0 (status 1).
 *
 * The checksum is a 64-bit LCG (Knuth's MMIX constants) summed:
 *   x = 0x9e3779b97f4a7c15; s = 0;
 *   repeat N times: x = x * 6364136223846793005 + 1442695040888963407;
 *                   s += x >> 33;
 *   checksum = s ^ x
 * (tests/tools/guest_compute_ref.c computes the same on the host).
 */
#include "sdk.h"
#include "user.h"

#define ITERS_RING3 125000000ull
#define ITERS_RING0 125000ull

/* Compiled -mgeneral-regs-only like all of this file, so that ring 0 can
 * run it; the loop is integer-only either way. */
static uint64_t checksum(uint64_t iters)
{
    uint64_t x = 0x9e3779b97f4a7c15ull, s = 0;

    for (uint64_t i = 0; i < iters; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        s += x >> 33;
    }
    return s ^ x;
}

static long compute_task(void *arg)
{
    uint64_t iters = *(const uint64_t *)arg;

    user_printf("compute: ring=3 iters=%lu checksum=%#018lx\n", iters,
                checksum(iters));
    return 0;
}

int guest_main(void)
{
    bool ring0 = sdk_arg_is("ring", "0");
    uint64_t iters = sdk_arg_u64("iters", ring0 ? ITERS_RING0 : ITERS_RING3);

    if (ring0) {
        sdk_printf("compute: ring=0 iters=%lu checksum=%#018lx\n", iters,
                   checksum(iters));
        return 0;
    }
    return sdk_task_run(compute_task, &iters) == 0 ? 0 : 1;
}
