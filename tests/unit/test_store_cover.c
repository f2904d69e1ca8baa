/*
 * test_store_cover.c — storage/cover.c: code coverage windows read back
 * exactly as written (after reopen), listed in order, refused when not
 * sorted and disjoint, cleared, and reported corrupt when damaged.
 */
#include "storage/store_int.h"
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

TestSuite(store_cover, .init = setup, .fini = teardown, .timeout = 60);

static struct store *fresh(void)
{
    struct store *st = NULL;
    struct store_create_opts o = {0};
    ST_OK(NULL, store_create(trace, &o, &st));
    return st;
}

static struct store *reopen(bool writable)
{
    struct store *st = NULL;
    int rc = store_open(trace, writable, NULL, &st);
    cr_assert_eq(rc, 0, "%s", store_error_detail(NULL));
    return st;
}

/* Window w: w + 1 ranges, at 0x100000 + 0x1000 * w + 0x40 * i, 16 + i bytes
 * long, plus one far above 4 GiB. */
static size_t window(unsigned w, struct store_code_range *c)
{
    size_t n = 0;
    for (unsigned i = 0; i <= w; i++)
        c[n++] = (struct store_code_range){
            .addr = 0x100000 + 0x1000ull * w + 0x40ull * i, .len = 16 + i};
    c[n++] = (struct store_code_range){.addr = 0xffffffff80000000ull,
                                       .len = 4096};
    return n;
}

Test(store_cover, windows_read_back_after_reopen)
{
    struct store *st = fresh();
    struct store_code_range c[16];
    for (unsigned w = 0; w < 5; w++)
        ST_OK(st, store_cover_put(st, 4000000ull * w, c, window(w, c)));
    ST_OK(st, store_commit(st));
    store_close(st);

    st = reopen(false);
    uint64_t *starts;
    size_t n;
    ST_OK(st, store_cover_windows(st, &starts, &n));
    cr_assert_eq(n, 5);
    for (unsigned w = 0; w < 5; w++) {
        cr_assert_eq(starts[w], 4000000ull * w);
        struct store_code_range *got, want[16];
        size_t k, nw = window(w, want);
        ST_OK(st, store_cover_get(st, starts[w], &got, &k));
        cr_assert_eq(k, nw);
        for (size_t i = 0; i < k; i++) {
            cr_assert_eq(got[i].addr, want[i].addr);
            cr_assert_eq(got[i].len, want[i].len);
        }
        free(got);
    }
    free(starts);
    struct store_code_range *none;
    size_t k;
    cr_assert_eq(store_cover_get(st, 17, &none, &k), STORE_E_NOTFOUND);
    store_close(st);
}

Test(store_cover, empty_window_and_none_at_all)
{
    struct store *st = fresh();
    uint64_t *starts;
    size_t n = 99;
    ST_OK(st, store_cover_windows(st, &starts, &n));
    cr_assert_eq(n, 0);
    free(starts);
    ST_OK(st, store_cover_put(st, 0, NULL, 0));
    ST_OK(st, store_commit(st));
    struct store_code_range *got;
    ST_OK(st, store_cover_get(st, 0, &got, &n));
    cr_assert_eq(n, 0);
    free(got);
    store_close(st);
}

Test(store_cover, unsorted_or_overlapping_ranges_are_refused)
{
    struct store *st = fresh();
    struct store_code_range bad1[2] = {{.addr = 0x2000, .len = 8},
                                       {.addr = 0x1000, .len = 8}};
    struct store_code_range bad2[2] = {{.addr = 0x1000, .len = 0x20},
                                       {.addr = 0x1010, .len = 8}};
    struct store_code_range bad3[1] = {{.addr = 0x1000, .len = 0}};
    cr_assert_eq(store_cover_put(st, 0, bad1, 2), STORE_E_ARG);
    cr_assert_eq(store_cover_put(st, 0, bad2, 2), STORE_E_ARG);
    cr_assert_eq(store_cover_put(st, 0, bad3, 1), STORE_E_ARG);
    store_close(st);
}

Test(store_cover, clear_drops_every_window)
{
    struct store *st = fresh();
    struct store_code_range c[16];
    for (unsigned w = 0; w < 3; w++)
        ST_OK(st, store_cover_put(st, 1000ull * w, c, window(w, c)));
    ST_OK(st, store_commit(st));
    ST_OK(st, store_cover_clear(st));
    ST_OK(st, store_commit(st));
    uint64_t *starts;
    size_t n = 99;
    ST_OK(st, store_cover_windows(st, &starts, &n));
    cr_assert_eq(n, 0);
    free(starts);
    store_close(st);
}

Test(store_cover, a_damaged_window_is_corruption)
{
    struct store *st = fresh();
    struct store_code_range c[16];
    size_t n = window(3, c);
    ST_OK(st, store_cover_put(st, 0, c, n));
    ST_OK(st, store_commit(st));
    /* Replace the value with one whose checksum fits but whose payload
     * does not: sealed by the store itself, so only the decoder objects. */
    uint8_t k[9] = {'v', 0, 0, 0, 0, 0, 0, 0, 0};
    uint8_t junk[3] = {0x80, 0x80, 0x80}; /* an unterminated varint */
    uint8_t *v;
    size_t vlen;
    ST_OK(st, val_seal(st, DB_INDEX, k, sizeof k, VT_COVER, 1, junk,
                       sizeof junk, 0, &v, &vlen));
    ST_OK(st, store__raw_put(st, DB_INDEX, k, sizeof k, v, vlen));
    free(v);
    store_close(st);
    st = reopen(false);
    struct store_code_range *got = NULL;
    size_t k2;
    int rc = store_cover_get(st, 0, &got, &k2);
    cr_assert_eq(rc, STORE_E_CORRUPT, "rc %d", rc);
    cr_assert(strstr(store_error_detail(st), "coverage"), "%s",
              store_error_detail(st));
    store_close(st);
}
