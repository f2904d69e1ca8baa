/*
 * test_store_isnap.c — storage/isnap.c: index snapshots and the tail page
 * list read back exactly as written (after reopen, next to the other
 * index keys), "latest at or before" lookups, deduplication with the
 * snapshots' pages, clearing, bad input, and encrypted traces.
 */
#include <sodium.h>

#include "storage/store_int.h"
#include "tests/support/store_synth.h"
#include "tests/support/store_testlib.h"

static char dir[256], trace[300];

static void setup(void)
{
    st_scratch(dir, sizeof dir, trace, sizeof trace);
}

static void teardown(void)
{
    st_rm_rf(dir);
}

TestSuite(store_isnap, .init = setup, .fini = teardown, .timeout = 60);

static struct store *open_trace(bool create, bool writable, const uint8_t *key)
{
    struct store *st = NULL;
    struct store_create_opts o = {.key = key};
    int rc = create ? store_create(trace, &o, &st)
                    : store_open(trace, writable, key, &st);
    cr_assert_eq(rc, 0, "%s: %s", store_strerror(rc),
                 store_error_detail(NULL));
    return st;
}

/* Two recorded snapshots of 8 pages each (content seeds gfn + 100*id). */
static void two_snapshots(struct store *st)
{
    uint8_t page[STORE_PAGE_SIZE];
    for (uint32_t id = 0; id < 2; id++) {
        struct store_snapshot_info si = {.id = id, .event_index = 0};
        ST_OK(st, store_snapshot_begin(st, &si, "cpu", 3, "dev", 3));
        for (uint64_t g = 0; g < 8; g++) {
            synth_page(page, g + 100 * id + 1);
            ST_OK(st, store_snapshot_page(st, g, page));
        }
        ST_OK(st, store_snapshot_end(st));
    }
}

/* Index snapshot number i: position 1000 * (i + 1), pages 2i..2i+3 with
 * contents that repeat snapshot 1's for even gfns, and one zero page. */
struct xs {
    struct store_isnap_info info;
    uint64_t gfns[4];
    uint8_t pages[4][STORE_PAGE_SIZE];
    uint8_t cpu[100];
};

static void make_xs(struct xs *x, unsigned i)
{
    memset(x, 0, sizeof *x);
    x->info.icount = 1000 * (i + 1);
    x->info.event_index = 7 * i;
    x->info.base = i % 2;
    x->info.npages = 4;
    for (unsigned j = 0; j < 4; j++) {
        x->gfns[j] = 2 * i + j;
        if (j == 3)
            continue; /* zero page */
        synth_page(x->pages[j], x->gfns[j] % 2 ? 5000 + 10 * i + j
                                               : x->gfns[j] + 101);
    }
    memset(x->cpu, 'A' + (int)i, sizeof x->cpu);
}

static void check_xs(struct store *st, const struct xs *x)
{
    struct store_isnap_info info;
    void *cpu = NULL;
    size_t cpu_len = 0, n = 0;
    uint64_t *gfns = NULL;
    uint8_t page[STORE_PAGE_SIZE];
    ST_OK(st, store_isnap_get(st, x->info.icount, &info, &cpu, &cpu_len,
                              &gfns, &n));
    cr_assert_eq(info.icount, x->info.icount);
    cr_assert_eq(info.event_index, x->info.event_index);
    cr_assert_eq(info.base, x->info.base);
    cr_assert_eq(info.npages, 4);
    cr_assert_eq(cpu_len, sizeof x->cpu);
    cr_assert_eq(memcmp(cpu, x->cpu, cpu_len), 0);
    cr_assert_eq(n, 4);
    for (size_t j = 0; j < n; j++) {
        cr_assert_eq(gfns[j], x->gfns[j]);
        ST_OK(st, store_isnap_page(st, x->info.icount, j, page));
        cr_assert_eq(memcmp(page, x->pages[j], sizeof page), 0,
                     "isnap %llu page %zu", (unsigned long long)
                     x->info.icount, j);
    }
    cr_assert_eq(store_isnap_page(st, x->info.icount, 4, page), STORE_E_ARG);
    free(cpu);
    free(gfns);
}

static void check_at(struct store *st, unsigned count)
{
    struct store_isnap_info info;
    cr_assert_eq(store_isnap_at(st, 999, &info), STORE_E_NOTFOUND);
    for (unsigned i = 0; i < count; i++) {
        uint64_t at = 1000 * (i + 1);
        ST_OK(st, store_isnap_at(st, at, &info));
        cr_assert_eq(info.icount, at);
        ST_OK(st, store_isnap_at(st, at + 999, &info));
        cr_assert_eq(info.icount, at, "at %llu", (unsigned long long)at);
    }
    ST_OK(st, store_isnap_at(st, UINT64_MAX, &info));
    cr_assert_eq(info.icount, 1000 * count);
}

Test(store_isnap, round_trip_lookup_and_dedup)
{
    struct store *st = open_trace(true, true, NULL);
    two_snapshots(st);
    ST_OK(st, store_index_put_snapshot(st, 0, 0));
    ST_OK(st, store_index_put_snapshot(st, 1, 500));
    struct store_stats before, after;
    ST_OK(st, store_stats(st, &before));
    struct xs *x = malloc(5 * sizeof *x);
    for (unsigned i = 0; i < 5; i++) {
        make_xs(&x[i], i);
        ST_OK(st, store_isnap_put(st, &x[i].info, x[i].cpu, sizeof x[i].cpu,
                                  x[i].gfns, x[i].pages, 4));
    }
    uint64_t tail[3] = {1, 5, 9000};
    ST_OK(st, store_index_put_tail_pages(st, tail, 3));
    /* readable before the commit too (pending writes) */
    check_xs(st, &x[2]);
    ST_OK(st, store_commit(st));
    ST_OK(st, store_stats(st, &after));
    /* Even gfns below 8 repeat snapshot 1's contents and gfn 8 repeats
     * itself: new are the 5 odd pages, gfns 8 and 10. */
    cr_assert_eq(after.unique_pages - before.unique_pages, 7,
                 "new contents %llu", (unsigned long long)
                 (after.unique_pages - before.unique_pages));
    store_close(st);

    st = open_trace(false, false, NULL);
    for (unsigned i = 0; i < 5; i++)
        check_xs(st, &x[i]);
    check_at(st, 5);
    /* the recorded index keys are not disturbed */
    uint32_t id;
    ST_OK(st, store_snapshot_at_icount(st, UINT64_MAX - 1, &id));
    cr_assert_eq(id, 1);
    uint64_t *g = NULL;
    size_t n = 0;
    ST_OK(st, store_index_tail_pages(st, &g, &n));
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(g, tail, sizeof tail), 0);
    free(g);
    store_close(st);
    free(x);
}

Test(store_isnap, replace_clear_and_bad_input)
{
    struct store *st = open_trace(true, true, NULL);
    two_snapshots(st);
    struct xs x;
    make_xs(&x, 0);
    ST_OK(st, store_isnap_put(st, &x.info, x.cpu, sizeof x.cpu, x.gfns,
                              x.pages, 4));
    ST_OK(st, store_commit(st));
    check_xs(st, &x);
    /* same position again with other contents: replaced */
    synth_page(x.pages[1], 777);
    x.cpu[0] = 'Z';
    ST_OK(st, store_isnap_put(st, &x.info, x.cpu, sizeof x.cpu, x.gfns,
                              x.pages, 4));
    ST_OK(st, store_commit(st));
    check_xs(st, &x);

    uint64_t down[2] = {5, 3};
    cr_assert_eq(store_isnap_put(st, &x.info, x.cpu, 1, down, x.pages, 2),
                 STORE_E_ARG);
    struct store_isnap_info bad = x.info;
    bad.base = 9;
    cr_assert_eq(store_isnap_put(st, &bad, x.cpu, 1, x.gfns, x.pages, 4),
                 STORE_E_ARG);
    cr_assert_eq(store_index_put_tail_pages(st, down, 2), STORE_E_ARG);
    uint64_t tail[1] = {4};
    ST_OK(st, store_index_put_tail_pages(st, tail, 1));
    make_xs(&x, 3);
    ST_OK(st, store_isnap_put(st, &x.info, x.cpu, sizeof x.cpu, x.gfns,
                              x.pages, 4));
    ST_OK(st, store_commit(st));

    ST_OK(st, store_isnap_clear(st));
    struct store_isnap_info info;
    cr_assert_eq(store_isnap_at(st, UINT64_MAX, &info), STORE_E_NOTFOUND);
    uint64_t *g;
    size_t n;
    cr_assert_eq(store_index_tail_pages(st, &g, &n), STORE_E_NOTFOUND);
    store_close(st);

    st = open_trace(false, false, NULL);
    cr_assert_eq(store_isnap_at(st, UINT64_MAX, &info), STORE_E_NOTFOUND);
    cr_assert_eq(store_isnap_put(st, &x.info, x.cpu, 1, x.gfns, x.pages, 4),
                 STORE_E_READONLY);
    store_close(st);
}

Test(store_isnap, encrypted)
{
    uint8_t key[STORE_KEY_BYTES];
    cr_assert(sodium_init() >= 0);
    randombytes_buf(key, sizeof key);
    struct store *st = open_trace(true, true, key);
    two_snapshots(st);
    struct xs x;
    make_xs(&x, 1);
    ST_OK(st, store_isnap_put(st, &x.info, x.cpu, sizeof x.cpu, x.gfns,
                              x.pages, 4));
    ST_OK(st, store_commit(st));
    store_close(st);
    st = open_trace(false, false, key);
    check_xs(st, &x);
    store_close(st);
}
