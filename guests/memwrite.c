/*
 * memwrite — writes the same number of pages every timer tick, spread over
 * all of RAM, so that snapshot costs of a small and a large guest can be
 * compared for the same amount written (bench/record.sh).
 *
 * Parameters: pages=N pages written per round (default 256), rounds=R
 * (default 40), one round per timer tick (100 Hz);
 *   move=1   each round writes the page after the one the round before
 *            wrote in each of its N slots (default 0: the same N pages
 *            every round), so that K rounds dirty K*N distinct pages;
 *   fill=B   bytes written per page visited, 8..4096 (default 8: one
 *            word); beyond the word, a window of the guest's own code and
 *            read-only data, shifted from page to page (the word makes
 *            every page visit unique): content that compresses like
 *            real guest memory rather than like a page of zeros.
 * Output: "memwrite: pages=N rounds=R sum=0x..." (the sum depends only on
 * N and R, not on the RAM size or the other parameters).  Exit value 0
 * (status 1).
 */
#include "sdk.h"
#include "user.h"

extern char _end[];
extern char __start_extable[]; /* right after code and rodata (link.ld) */

#define IMAGE_BASE 0x100000ull /* guests/sdk/link.ld */

struct job {
    uint64_t pages, rounds, base, span, fill;
    bool move;
};

/* Fills [p, p + n) from the image's code and read-only data, at a window
 * that depends on seed. */
static void fill_from_image(uint8_t *p, uint64_t n, uint64_t seed)
{
    uint64_t img = (uint64_t)__start_extable - IMAGE_BASE;
    uint64_t off = img > n ? (seed * 56) % (img - n) : 0;
    const uint8_t *src = (const uint8_t *)(IMAGE_BASE + off);
    for (uint64_t i = 0; i < n && i < img; i++)
        p[i] = src[i];
}

static long memwrite_task(void *arg)
{
    const struct job *j = arg;
    uint64_t stride = j->span / j->pages / 4096 * 4096;
    uint64_t shifts = j->move ? stride / 4096 : 1;
    uint64_t sum = 0;
    for (uint64_t r = 0; r < j->rounds; r++) {
        for (uint64_t p = 0; p < j->pages; p++) {
            uint8_t *page = (uint8_t *)(j->base + p * stride +
                                        (r % shifts) * 4096);
            if (j->fill > 8)
                fill_from_image(page, j->fill, r * j->pages + p);
            volatile uint64_t *w = (volatile uint64_t *)(page +
                                                         (r % 512) * 8);
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
    j.move = sdk_arg_u64("move", 0) != 0;
    j.fill = sdk_arg_u64("fill", 8);
    if (j.fill < 8 || j.fill > 4096) {
        sdk_printf("memwrite: fill=%lu is not 8..4096\n", j.fill);
        return 1;
    }
    if (top <= j.base + (1u << 20) || !j.pages ||
        j.pages > (top - j.base) / 4096) {
        sdk_printf("memwrite: not enough RAM for pages=%lu\n", j.pages);
        return 1;
    }
    j.span = top - j.base;
    sdk_timer_start(SDK_TIMER_HZ);
    return sdk_task_run(memwrite_task, &j) == 0 ? 0 : 1;
}
