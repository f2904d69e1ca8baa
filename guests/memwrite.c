/*
 * memwrite — writes the same number of pages every timer tick, spread over
 * all of RAM, so that snapshot costs of a small and a large guest can be
 * compared for the same amount written (bench/record_bench).
 *
 * Parameters: pages=N pages written per round (default 256), rounds=R
 * (default 40), one round per timer tick (100 Hz).
 * Output: "memwrite: pages=N rounds=R sum=0x..." (the sum depends only on
 * N and R, not on the RAM size).  Exit value 0 (status 1).
 */
#include "sdk.h"
#include "user.h"

extern char _end[];

struct job {
    uint64_t pages, rounds, base, span;
};

static long memwrite_task(void *arg)
{
    const struct job *j = arg;
    uint64_t stride = j->span / j->pages / 4096 * 4096;
    uint64_t sum = 0;
    for (uint64_t r = 0; r < j->rounds; r++) {
        for (uint64_t p = 0; p < j->pages; p++) {
            volatile uint64_t *w =
                (volatile uint64_t *)(j->base + p * stride + (r % 512) * 8);
            *w = r * 1000003u + p;
            sum += *w;
        }
        user_sleep(1);
    }
    user_printf("memwrite: pages=%lu rounds=%lu sum=%#lx\n", j->pages,
                j->rounds, sum);
    return 0;
}

int guest_main(void)
{
    struct job j;
    uint64_t top = sdk_mem_bytes();
    if (top > (1ull << 30))
        top = 1ull << 30; /* the SDK maps the first 1 GiB for ring 3 */
    j.base = ((uint64_t)_end + (1u << 20)) & ~0xfffull;
    j.pages = sdk_arg_u64("pages", 256);
    j.rounds = sdk_arg_u64("rounds", 40);
    if (top <= j.base + (1u << 20) || !j.pages ||
        j.pages > (top - j.base) / 4096) {
        sdk_printf("memwrite: not enough RAM for pages=%lu\n", j.pages);
        return 1;
    }
    j.span = top - j.base;
    sdk_timer_start(SDK_TIMER_HZ);
    return sdk_task_run(memwrite_task, &j) == 0 ? 0 : 1;
}
