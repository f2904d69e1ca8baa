/*
 * test_replayer.c — the replayer's pieces that need no guest: the
 * checkpoint pool (contents kept exactly, shared by content, bounded,
 * least recently used out first) and position arithmetic (which events
 * the canonical state at a position has consumed, intervals, stops).
 * Whole replays are tested against KVM and the recording in
 * tests/integration/replay_*.sh.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "replayer/replayer_int.h"

#define PAGES 64

static uint8_t *ram;

static void fill(uint64_t gfn, uint8_t v)
{
    memset(ram + gfn * RP_PAGE, v, RP_PAGE);
    ram[gfn * RP_PAGE] = (uint8_t)gfn; /* distinct per page */
}

static void setup(void)
{
    ram = calloc(PAGES, RP_PAGE);
    for (uint64_t g = 0; g < PAGES; g++)
        fill(g, 1);
}

static void teardown(void)
{
    free(ram);
}

TestSuite(ckpt, .init = setup, .fini = teardown);

static struct vmm_cpu_state cpu_at(uint64_t rip)
{
    struct vmm_cpu_state s;
    memset(&s, 0, sizeof s);
    s.regs.rip = rip;
    return s;
}

static struct cp *add(struct cp_pool *p, uint64_t at, const uint64_t *g,
                      size_t n, const struct cp *like)
{
    struct cp *c = NULL;
    struct vmm_cpu_state s = cpu_at(at);
    cr_assert_eq(cp_add(p, at, at / 10, 3, &s, g, n, ram, NULL, like, &c), 0);
    return c;
}

Test(ckpt, keeps_contents_and_finds_the_nearest_below)
{
    struct cp_pool *p;
    cr_assert_eq(cp_pool_create(0, &p), 0);
    uint64_t g[3] = {2, 5, 9};
    add(p, 100, g, 3, NULL);
    fill(5, 7);
    add(p, 300, g, 3, NULL);
    fill(5, 8);
    struct cp *c = cp_find_le(p, 299);
    cr_assert_not_null(c);
    cr_assert_eq(c->icount, 100);
    cr_assert_eq(c->ev_next, 10);
    cr_assert_eq(c->interval, 3);
    cr_assert_eq(c->cpu.regs.rip, 100);
    cr_assert_eq(cp_page(c, 5)[1], 1, "page 5 as it was at 100");
    cr_assert_null(cp_page(c, 6), "not in its list");
    cr_assert_eq(cp_find_le(p, 300)->icount, 300, "at or below");
    cr_assert_eq(cp_page(cp_find_le(p, 1000), 5)[1], 7);
    cr_assert_null(cp_find_le(p, 99));
    cr_assert_null(cp_find(p, 200));
    cr_assert_eq(cp_find(p, 300)->icount, 300);
    cr_assert_eq(cp_nth(p, 0)->icount, 100);
    cr_assert_eq(cp_nth(p, 1)->icount, 300);
    cr_assert_null(cp_nth(p, 2));
    cp_pool_destroy(p);
}

Test(ckpt, equal_pages_are_stored_once)
{
    struct cp_pool *p;
    cr_assert_eq(cp_pool_create(0, &p), 0);
    uint64_t g[8];
    for (int i = 0; i < 8; i++)
        g[i] = (uint64_t)i + 10;
    struct cp *prev = NULL;
    for (int k = 0; k < 50; k++) {
        fill(10, (uint8_t)k); /* one page changes each time */
        prev = add(p, 1000 + (uint64_t)k, g, 8, k % 2 ? prev : NULL);
    }
    cr_assert_eq(cp_count(p), 50);
    cr_assert_eq(cp_unique_pages(p), 7 + 50, "%zu", cp_unique_pages(p));
    for (int k = 0; k < 50; k++)
        cr_assert_eq(cp_page(cp_find(p, 1000 + (uint64_t)k), 10)[1],
                     (uint8_t)k);
    /* a page that equals another gfn's content is shared too */
    memcpy(ram + 30 * RP_PAGE, ram + 11 * RP_PAGE, RP_PAGE);
    uint64_t g2[1] = {30};
    add(p, 5000, g2, 1, NULL);
    cr_assert_eq(cp_unique_pages(p), 7 + 50);
    cp_drop_range(p, 1000, 1025);
    cr_assert_eq(cp_count(p), 26);
    cr_assert_eq(cp_unique_pages(p), 7 + 25);
    cp_pool_destroy(p);
}

Test(ckpt, bounded_least_recently_used_out_first)
{
    struct cp_pool *p;
    uint64_t budget = 40 * (RP_PAGE + 64);
    cr_assert_eq(cp_pool_create(budget, &p), 0);
    uint64_t g[4] = {1, 2, 3, 4};
    for (int k = 0; k < 100; k++) {
        for (int i = 1; i <= 4; i++)
            fill((uint64_t)i, (uint8_t)(k + 1)); /* all new contents */
        add(p, (uint64_t)k * 10, g, 4, NULL);
        if (k == 3)
            for (int t = 0; t < 3; t++)
                cr_assert_not_null(cp_find_le(p, 5)); /* keep 0 in use */
        cr_assert_leq(cp_bytes(p), budget, "over budget at %d", k);
        if (k >= 3)
            cp_touch(p, cp_find(p, 0));
    }
    cr_assert_lt(cp_count(p), 100);
    cr_assert_not_null(cp_find(p, 0), "the one in use stays");
    cr_assert_not_null(cp_find(p, 990), "the newest stays");
    cr_assert_null(cp_find(p, 10), "the oldest unused went first");
    cr_assert_eq(cp_page(cp_find(p, 990), 4)[1], 100);
    cp_pool_destroy(p);
}

Test(ckpt, same_position_replaces)
{
    struct cp_pool *p;
    cr_assert_eq(cp_pool_create(0, &p), 0);
    uint64_t g[1] = {7};
    struct cp *a = add(p, 50, g, 1, NULL);
    fill(7, 9);
    add(p, 50, g, 1, a); /* like is the one replaced: must not be used */
    cr_assert_eq(cp_count(p), 1);
    cr_assert_eq(cp_page(cp_find(p, 50), 7)[1], 9);
    cr_assert_eq(cp_unique_pages(p), 1);
    cp_pool_destroy(p);
}

/* ---- positions ------------------------------------------------------------ */

/* Events: I/O at 5, interrupt at 6 (its point: after that I/O), I/O at 6,
 * HLT at 10 (after the hlt) and its interrupt, kick at 20 and its
 * interrupt, I/O at 22, exit at 30. */
static const uint64_t ic[] = {5, 6, 6, 10, 10, 20, 20, 22, 30};
static const uint8_t kind[] = {STORE_EV_PIO_IN, STORE_EV_IRQ, STORE_EV_PIO_OUT,
                               STORE_EV_HLT, STORE_EV_IRQ, STORE_EV_KICK,
                               STORE_EV_IRQ, STORE_EV_MMIO_READ,
                               STORE_EV_EXIT};

static void events(struct replay *r)
{
    memset(r, 0, sizeof *r);
    r->nev = sizeof ic / sizeof ic[0];
    r->ev_icount = (uint64_t *)ic;
    r->ev_kind = (uint8_t *)kind;
    static uint64_t stops[16];
    for (uint64_t i = 0; i < r->nev; i++)
        if (!rp_kind_is_io(kind[i]))
            stops[r->nstops++] = i;
    r->stops = stops;
}

Test(positions, events_consumed_in_the_canonical_state)
{
    struct replay r;
    events(&r);
    static const struct { uint64_t at, next; } want[] = {
        {0, 0},  {5, 0}, /* the access at 5 belongs to instruction 5 */
        {6, 2},          /* interrupt at 6 delivered, the access pending */
        {7, 3},  {10, 5}, {11, 5}, {20, 7}, {22, 7}, {23, 8},
        {30, 8},         /* the exit is never consumed */
        {99, 9},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_eq(rp_event_at(&r, want[i].at), want[i].next,
                     "at %llu: %llu", (unsigned long long)want[i].at,
                     (unsigned long long)rp_event_at(&r, want[i].at));
}

Test(positions, next_stop_skips_accesses)
{
    struct replay r;
    events(&r);
    cr_assert_eq(rp_next_stop(&r, 0), 1);
    cr_assert_eq(rp_next_stop(&r, 2), 3);
    cr_assert_eq(rp_next_stop(&r, 7), 8);
    cr_assert_eq(rp_next_stop(&r, 9), 9, "none: the event count");
}

Test(positions, interval_of_a_position)
{
    struct replay r;
    memset(&r, 0, sizeof r);
    struct rp_snap s[4] = {{.icount = 0}, {.icount = 10}, {.icount = 10},
                           {.icount = 25}};
    r.snaps = s;
    r.nsnaps = 4;
    cr_assert_eq(rp_interval_of(&r, 0), 0);
    cr_assert_eq(rp_interval_of(&r, 9), 0);
    cr_assert_eq(rp_interval_of(&r, 10), 2, "the last snapshot at 10");
    cr_assert_eq(rp_interval_of(&r, 24), 2);
    cr_assert_eq(rp_interval_of(&r, 25), 3);
    cr_assert_eq(rp_interval_of(&r, 1000), 3);
}

Test(positions, register_diff_ignores_undefined_flags_only)
{
    uint64_t a[STORE_NREGS] = {0}, b[STORE_NREGS] = {0};
    char buf[512] = "";
    a[17] = 0x202;
    b[17] = 0x202 | RP_RFLAGS_IGNORED;
    cr_assert_eq(rp_regs_diff(a, b, true, buf, sizeof buf), 0);
    cr_assert_eq(rp_regs_diff(a, b, false, buf, sizeof buf), 1);
    b[17] = 0x2 | (1u << 10); /* IF and DF: compared */
    buf[0] = 0;
    cr_assert_eq(rp_regs_diff(a, b, true, buf, sizeof buf), 1);
    cr_assert(strstr(buf, "rflags"));
    b[17] = a[17];
    b[3] = 1;
    buf[0] = 0;
    cr_assert_eq(rp_regs_diff(a, b, true, buf, sizeof buf), 1);
    cr_assert(strstr(buf, "rdx"), "%s", buf);
}
