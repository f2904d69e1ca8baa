/*
 * test_store.c — storage/: the trace's behaviour against ground truth
 * (what was written is what is read, as of every snapshot, after reopen
 * and after the writer is killed), the named errors for bad traces, and
 * the size targets (bytes per event, zero and duplicate pages).
 * Corruption fuzzing and the codec are in test_store_fuzz.c.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include <lmdb.h>
#include <sodium.h>

#include "storage/store_int.h"
#include "tests/support/store_synth.h"
#include "tests/support/store_testlib.h"

#define N STORE_CHUNK_EVENTS

static char dir[256], trace[300];

static void setup(void)
{
    st_scratch(dir, sizeof dir, trace, sizeof trace);
}

static void teardown(void)
{
    st_rm_rf(dir);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 120);

static struct store *create(const struct store_create_opts *o)
{
    struct store *st = NULL;
    int rc = store_create(trace, o, &st);
    cr_assert_eq(rc, 0, "create: %s: %s", store_strerror(rc),
                 store_error_detail(NULL));
    return st;
}

static struct store *reopen(bool writable, const uint8_t *key)
{
    struct store *st = NULL;
    int rc = store_open(trace, writable, key, &st);
    cr_assert_eq(rc, 0, "open: %s: %s", store_strerror(rc),
                 store_error_detail(NULL));
    return st;
}

static int open_rc(const char *path, const uint8_t *key)
{
    struct store *st = NULL;
    int rc = store_open(path, false, key, &st);
    cr_assert_eq(rc == 0, st != NULL);
    store_close(st);
    return rc;
}

static struct store_event *io_events(size_t n, uint64_t seed)
{
    struct store_event *ev = calloc(n, sizeof *ev);
    cr_assert_not_null(ev);
    synth_io_stream(ev, n, seed, 1);
    return ev;
}

static void check_events(struct store *st, const struct store_event *ev,
                         uint64_t first, size_t n)
{
    struct store_event *got = calloc(n ? n : 1, sizeof *got);
    size_t k = 0;
    ST_OK(st, store_events_read(st, first, got, n, &k));
    cr_assert_eq(k, n, "read %zu of %zu events from %llu", k, n,
                 (unsigned long long)first);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(st_event_cmp(&got[i], &ev[first + i]), 0,
                     "event %llu differs", (unsigned long long)(first + i));
    free(got);
}

static void snap_begin(struct store *st, uint32_t id, uint64_t ev)
{
    struct store_snapshot_info si = {.id = id,
                                     .event_index = ev,
                                     .time_ns = 1000 * id,
                                     .reason = id ? STORE_SNAP_PERIODIC
                                                  : STORE_SNAP_BOOT};
    char cpu[64], dev[32];
    memset(cpu, 'c' + (int)id, sizeof cpu);
    memset(dev, 'd' + (int)id, sizeof dev);
    ST_OK(st, store_snapshot_begin(st, &si, cpu, sizeof cpu, dev, sizeof dev));
}

static void page_of(uint8_t *p, uint64_t seed)
{
    if (seed == 0)
        memset(p, 0, STORE_PAGE_SIZE);
    else
        synth_page(p, seed);
}

/* ---- lifecycle, metadata, image ---- */

Test(store, metadata_and_image_round_trip)
{
    struct store *st = create(NULL);
    uint8_t cpuid[100], img[10000];
    for (size_t i = 0; i < sizeof cpuid; i++)
        cpuid[i] = (uint8_t)(i * 7); /* includes NUL bytes */
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i % 251);
    ST_OK(st, store_meta_put_str(st, "cmdline", "echo --input x"));
    ST_OK(st, store_meta_put_u64(st, "mem_size", 64u << 20));
    ST_OK(st, store_meta_put(st, "cpuid", cpuid, sizeof cpuid));
    ST_OK(st, store_image_put(st, img, sizeof img));
    cr_assert_eq(store_meta_put(st, "store.sneaky", "x", 1), STORE_E_ARG);
    cr_assert_not(store_is_complete(st));
    ST_OK(st, store_commit(st));
    store_close(st);

    st = reopen(false, NULL);
    char *s;
    uint64_t v;
    void *p;
    size_t n;
    ST_OK(st, store_meta_get_str(st, "cmdline", &s));
    cr_assert_str_eq(s, "echo --input x");
    free(s);
    ST_OK(st, store_meta_get_u64(st, "mem_size", &v));
    cr_assert_eq(v, 64u << 20);
    ST_OK(st, store_meta_get(st, "cpuid", &p, &n));
    cr_assert(n == sizeof cpuid && !memcmp(p, cpuid, n));
    free(p);
    ST_OK(st, store_image_get(st, &p, &n));
    cr_assert(n == sizeof img && !memcmp(p, img, n));
    free(p);
    cr_assert_eq(store_meta_get(st, "nothing", &p, &n), STORE_E_NOTFOUND);
    cr_assert_eq(store_meta_get_u64(st, "cmdline", &v), STORE_E_CORRUPT);
    cr_assert_eq(store_meta_put_u64(st, "x", 1), STORE_E_READONLY);
    cr_assert_eq(store_commit(st), STORE_E_READONLY);
    cr_assert_not(store_is_complete(st));
    store_close(st);

    st = reopen(true, NULL);
    ST_OK(st, store_mark_complete(st));
    cr_assert(store_is_complete(st));
    struct store_event e = {.kind = STORE_EV_HLT};
    cr_assert_eq(store_events_append(st, &e, 1), STORE_E_ARG);
    store_close(st);
    st = reopen(false, NULL);
    cr_assert(store_is_complete(st));
    store_close(st);
}

Test(store, create_refuses_to_clobber)
{
    struct store *st = create(NULL);
    ST_OK(st, store_meta_put_str(st, "k", "v"));
    ST_OK(st, store_commit(st));
    store_close(st);

    struct store_create_opts o = {0};
    cr_assert_eq(store_create(trace, &o, &st), STORE_E_EXISTS);
    cr_assert_null(st);
    cr_assert(strstr(store_error_detail(NULL), "--force"));
    o.force = true;
    st = create(&o);
    void *p;
    cr_assert_eq(store_meta_get(st, "k", &p, NULL), STORE_E_NOTFOUND);
    /* the same trace cannot be created again while it is open */
    struct store *st2 = NULL;
    cr_assert_eq(store_create(trace, &o, &st2), STORE_E_EXISTS);
    store_close(st);

    char p2[400];
    snprintf(p2, sizeof p2, "%s/empty", dir); /* an empty dir is fine */
    cr_assert_eq(mkdir(p2, 0755), 0);
    cr_assert_eq(store_create(p2, NULL, &st), 0);
    store_close(st);

    snprintf(p2, sizeof p2, "%s/foreign", dir);
    cr_assert_eq(mkdir(p2, 0755), 0);
    char f[500];
    snprintf(f, sizeof f, "%s/notes.txt", p2);
    FILE *fp = fopen(f, "w");
    fputs("mine", fp);
    fclose(fp);
    cr_assert_eq(store_create(p2, &o, &st), STORE_E_EXISTS);
    cr_assert_eq(access(f, F_OK), 0, "a foreign file was deleted");
    cr_assert_eq(store_create(f, &o, &st), STORE_E_EXISTS);
}

Test(store, bad_paths_are_named_errors)
{
    char p[400];
    snprintf(p, sizeof p, "%s/missing", dir);
    cr_assert_eq(open_rc(p, NULL), STORE_E_NOTTRACE);
    cr_assert(strstr(store_error_detail(NULL), "missing"));
    snprintf(p, sizeof p, "%s/emptydir", dir);
    mkdir(p, 0755);
    cr_assert_eq(open_rc(p, NULL), STORE_E_NOTTRACE);
    struct store *st;
    cr_assert_eq(store_open(p, true, NULL, &st), STORE_E_NOTTRACE);
    char f[500];
    snprintf(f, sizeof f, "%s/data.mdb", p);
    cr_assert_neq(access(f, F_OK), 0, "opening made a data.mdb");

    /* junk in data.mdb */
    FILE *fp = fopen(f, "w");
    for (int i = 0; i < 20000; i++)
        fputc(i * 31 % 256, fp);
    fclose(fp);
    int rc = open_rc(p, NULL);
    cr_assert(rc == STORE_E_CORRUPT || rc == STORE_E_NOTTRACE, "%d", rc);

    /* an LMDB environment that is not a trace */
    snprintf(p, sizeof p, "%s/lmdb", dir);
    mkdir(p, 0755);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {3, "abc"}, v = {3, "xyz"};
    mdb_env_create(&env);
    cr_assert_eq(mdb_env_open(env, p, 0, 0644), 0);
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, NULL, 0, &dbi);
    mdb_put(txn, dbi, &k, &v, 0);
    mdb_txn_commit(txn);
    mdb_env_close(env);
    cr_assert_eq(open_rc(p, NULL), STORE_E_NOTTRACE);

    /* a regular file */
    cr_assert_eq(open_rc(f, NULL), STORE_E_NOTTRACE);
}

/* ---- events ---- */

Test(store, events_across_chunk_boundaries)
{
    const size_t total = 3 * N + 123;
    struct store_event *ev = io_events(total, 7);
    struct store *st = create(NULL);
    size_t batches[] = {1, 7, 1500, 999, 2 * N, 3, N};
    size_t done = 0;
    for (size_t b = 0; done < total; b++) {
        size_t k = batches[b % 7];
        if (k > total - done)
            k = total - done;
        ST_OK(st, store_events_append(st, ev + done, k));
        done += k;
        if (b == 2 || b == 4)
            ST_OK(st, store_commit(st)); /* partial chunk, rewritten later */
        cr_assert_eq(store_event_count(st), done);
    }
    check_events(st, ev, N - 5, 10); /* uncommitted, in the writer */
    check_events(st, ev, 0, total);
    ST_OK(st, store_commit(st));
    store_close(st);

    st = reopen(false, NULL);
    cr_assert_eq(store_event_count(st), total);
    for (uint64_t f = 0; f < total; f += 977)
        check_events(st, ev, f, f + 977 <= total ? 977 : total - f);
    check_events(st, ev, N - 1, 2);
    check_events(st, ev, 2 * N - 3, N + 6);
    for (uint64_t f = total - 1; f > 100; f /= 2) /* backwards: cache misses */
        check_events(st, ev, f, 1);
    struct store_event tail[10];
    size_t got = 99;
    ST_OK(st, store_events_read(st, total - 3, tail, 10, &got));
    cr_assert_eq(got, 3);
    ST_OK(st, store_events_read(st, total, tail, 10, &got));
    cr_assert_eq(got, 0);
    ST_OK(st, store_events_read(st, total + 5000, tail, 10, &got));
    cr_assert_eq(got, 0);

    struct store_stats s;
    uint64_t kinds[STORE_EV_KIND_MAX] = {0};
    for (size_t i = 0; i < total; i++)
        kinds[ev[i].kind]++;
    ST_OK(st, store_stats(st, &s));
    cr_assert_eq(s.events, total);
    for (int k = 0; k < STORE_EV_KIND_MAX; k++)
        cr_assert_eq(s.events_by_kind[k], kinds[k], "kind %d", k);
    cr_assert(s.event_bytes > 0 && s.event_bytes < total * 8);
    store_close(st);
    free(ev);
}

Test(store, uncommitted_events_are_dropped_and_writer_continues)
{
    struct store_event *ev = io_events(N + 300, 3);
    struct store *st = create(NULL);
    ST_OK(st, store_events_append(st, ev, 100));
    ST_OK(st, store_commit(st));
    ST_OK(st, store_events_append(st, ev + 100, 50));
    store_close(st); /* 50 never committed */

    st = reopen(true, NULL);
    cr_assert_eq(store_event_count(st), 100);
    ST_OK(st, store_events_append(st, ev + 100, N + 200));
    ST_OK(st, store_commit(st));
    store_close(st);
    st = reopen(false, NULL);
    cr_assert_eq(store_event_count(st), N + 300);
    check_events(st, ev, 0, N + 300);
    store_close(st);
    free(ev);
}

Test(store, bad_events_are_refused)
{
    struct store *st = create(NULL);
    struct store_event e[2] = {{.kind = STORE_EV_PIO_IN},
                               {.kind = STORE_EV_KIND_MAX}};
    cr_assert_eq(store_events_append(st, e, 2), STORE_E_ARG);
    cr_assert_eq(store_event_count(st), 0, "partial append");
    e[1].kind = 0;
    cr_assert_eq(store_events_append(st, e, 2), STORE_E_ARG);
    store_close(st);
}

Test(store, bytes_per_event_on_io_stream)
{
    const size_t n = 100000;
    struct store_event *ev = calloc(n, sizeof *ev);
    for (int random_text = 0; random_text < 2; random_text++) {
        synth_io_stream(ev, n, 11, random_text);
        struct store_create_opts o = {.force = true};
        struct store *st = create(&o);
        for (size_t i = 0; i < n; i += 1000) {
            ST_OK(st, store_events_append(st, ev + i, 1000));
            if (i % 20000 == 0)
                ST_OK(st, store_commit(st)); /* like a 50 ms snapshot */
        }
        ST_OK(st, store_commit(st));
        struct store_stats s;
        ST_OK(st, store_stats(st, &s));
        double bpe = (double)s.event_bytes / (double)n;
        cr_log_info("I/O stream (%s text): %.2f bytes/event",
                    random_text ? "random" : "repeating", bpe);
        cr_assert(bpe <= 8.0, "%.2f bytes/event", bpe);
        check_events(st, ev, 0, n);
        store_close(st);
    }
    free(ev);
}

/* ---- snapshots and pages ---- */

/* expected[s][g]: the content seed of gfn gfns[g] as of snapshot s. */
static const uint64_t gfns[] = {0, 1, 2, 3, 100, 5000};
static const uint64_t expected[4][6] = {
    {0, 1, 2, 0, 100, 0},
    {0, 11, 2, 0, 100, 0},
    {0, 11, 0, 3, 100, 0},
    {0, 1, 0, 3, 100, 0},
};

static void check_pages(struct store *st)
{
    uint8_t got[STORE_PAGE_SIZE], want[STORE_PAGE_SIZE];
    for (uint32_t s = 0; s < 4; s++)
        for (int g = 0; g < 6; g++) {
            ST_OK(st, store_page_read(st, s, gfns[g], got));
            page_of(want, expected[s][g]);
            cr_assert(!memcmp(got, want, sizeof got),
                      "gfn %llu as of snapshot %u", (unsigned long long)gfns[g],
                      s);
        }
}

static void write_page(struct store *st, uint64_t gfn, uint64_t seed)
{
    uint8_t p[STORE_PAGE_SIZE];
    page_of(p, seed);
    ST_OK(st, store_snapshot_page(st, gfn, p));
}

static void check_list(struct store *st, uint32_t id, const uint64_t *want,
                       size_t n)
{
    uint64_t *g;
    size_t k;
    ST_OK(st, store_snapshot_pages(st, id, &g, &k));
    cr_assert_eq(k, n, "snapshot %u lists %zu pages", id, k);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(g[i], want[i]);
    free(g);
}

static void check_snapshots(struct store *st)
{
    static const uint64_t l0[] = {1, 2, 3, 100}, l1[] = {1}, l2[] = {2, 3},
                          l3[] = {1};
    uint32_t id;
    struct {
        uint64_t ev;
        uint32_t id;
    } at[] = {
        {0, 0}, {5, 0}, {10, 2}, {15, 2}, {20, 3}, {999, 3},
    };
    check_pages(st);
    check_list(st, 0, l0, 4);
    check_list(st, 1, l1, 1);
    check_list(st, 2, l2, 2);
    check_list(st, 3, l3, 1);
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        ST_OK(st, store_snapshot_at_event(st, at[i].ev, &id));
        cr_assert_eq(id, at[i].id, "at event %llu",
                     (unsigned long long)at[i].ev);
    }
    struct store_snapshot_info si;
    void *cpu, *dev;
    size_t cl, dl;
    ST_OK(st, store_snapshot_get(st, 1, &si, &cpu, &cl, &dev, &dl));
    cr_assert(si.id == 1 && si.event_index == 10 && si.npages == 1 &&
              si.reason == STORE_SNAP_PERIODIC && si.time_ns == 1000 &&
              si.icount == UINT64_MAX);
    cr_assert(cl == 64 && ((char *)cpu)[63] == 'd');
    cr_assert(dl == 32 && ((char *)dev)[0] == 'e');
    free(cpu);
    free(dev);
    ST_OK(st, store_snapshot_get(st, 3, &si, NULL, NULL, NULL, NULL));
    cr_assert_eq(si.event_index, 20);
    cr_assert_eq(store_snapshot_count(st), 4);
    uint8_t p[STORE_PAGE_SIZE];
    cr_assert_eq(store_page_read(st, 4, 1, p), STORE_E_NOTFOUND);
    cr_assert_eq(store_page_read(st, 0, 1ull << 52, p), STORE_E_ARG);
    cr_assert_eq(store_snapshot_get(st, 4, &si, NULL, NULL, NULL, NULL),
                 STORE_E_NOTFOUND);
}

Test(store, page_versions_across_snapshots)
{
    struct store_event *ev = io_events(20, 1);
    struct store *st = create(NULL);
    snap_begin(st, 0, 0);
    write_page(st, 1, 1);
    write_page(st, 2, 2);
    write_page(st, 3, 0);
    write_page(st, 100, 100);
    ST_OK(st, store_snapshot_end(st));
    ST_OK(st, store_events_append(st, ev, 10));
    snap_begin(st, 1, 10);
    write_page(st, 1, 11);
    ST_OK(st, store_snapshot_end(st));
    snap_begin(st, 2, 10);
    write_page(st, 3, 3); /* out of order on purpose */
    write_page(st, 2, 0);
    ST_OK(st, store_snapshot_end(st));
    ST_OK(st, store_events_append(st, ev + 10, 10));
    snap_begin(st, 3, 20);
    write_page(st, 1, 1); /* back to its first content: deduplicated */
    ST_OK(st, store_snapshot_end(st));
    check_snapshots(st);
    store_close(st);

    st = reopen(false, NULL);
    check_snapshots(st);
    struct store_stats s;
    ST_OK(st, store_stats(st, &s));
    cr_assert_eq(s.snapshots, 4);
    cr_assert_eq(s.page_versions, 8);
    cr_assert_eq(s.zero_pages, 2);
    cr_assert_eq(s.unique_pages, 5, "%llu", (unsigned long long)s.unique_pages);
    cr_assert_eq(s.page_bytes_raw, 6 * STORE_PAGE_SIZE);
    store_close(st);
    free(ev);
}

Test(store, snapshot_info_round_trip)
{
    struct store_event *ev = io_events(7, 1);
    struct store *st = create(NULL);
    struct store_snapshot_info si = {.id = 0, .reason = STORE_SNAP_BOOT};
    ST_OK(st, store_snapshot_begin(st, &si, "c", 1, "d", 1));
    write_page(st, 5, 5);
    ST_OK(st, store_snapshot_end(st));
    ST_OK(st, store_events_append(st, ev, 7));
    si = (struct store_snapshot_info){.id = 1, .reason = STORE_SNAP_KICK,
                                      .event_index = 7, .time_ns = 123456789,
                                      .pause_us = 1234};
    ST_OK(st, store_snapshot_begin(st, &si, "c", 1, "d", 1));
    write_page(st, 5, 6);
    write_page(st, 6, 0);
    ST_OK(st, store_snapshot_end(st));
    store_close(st);

    st = reopen(false, NULL);
    cr_assert_eq(store_snapshot_count(st), 2);
    struct store_snapshot_info got;
    ST_OK(st, store_snapshot_get(st, 0, &got, NULL, NULL, NULL, NULL));
    cr_assert_eq(got.pause_us, 0); /* not recorded */
    ST_OK(st, store_snapshot_get(st, 1, &got, NULL, NULL, NULL, NULL));
    cr_assert_eq(got.reason, STORE_SNAP_KICK);
    cr_assert_eq(got.event_index, 7);
    cr_assert_eq(got.time_ns, 123456789);
    cr_assert_eq(got.npages, 2);
    cr_assert_eq(got.pause_us, 1234);
    cr_assert_gt(got.stored_bytes, 0);
    store_close(st);
    free(ev);
}

Test(store, snapshot_misuse_is_refused_and_recoverable)
{
    struct store *st = create(NULL);
    struct store_snapshot_info si = {.id = 1};
    cr_assert_eq(store_snapshot_begin(st, &si, NULL, 0, NULL, 0), STORE_E_ARG);
    si.id = 0;
    si.event_index = 5; /* no events yet */
    cr_assert_eq(store_snapshot_begin(st, &si, NULL, 0, NULL, 0), STORE_E_ARG);
    uint8_t p[STORE_PAGE_SIZE] = {1};
    cr_assert_eq(store_snapshot_page(st, 1, p), STORE_E_ARG);
    cr_assert_eq(store_snapshot_end(st), STORE_E_ARG);
    snap_begin(st, 0, 0);
    cr_assert_eq(store_snapshot_begin(st, &si, NULL, 0, NULL, 0), STORE_E_ARG);
    write_page(st, 9, 9);
    write_page(st, 9, 10);
    cr_assert_eq(store_snapshot_end(st), STORE_E_ARG); /* page twice */
    cr_assert_eq(store_snapshot_count(st), 0);
    snap_begin(st, 0, 0); /* the id is free again */
    write_page(st, 9, 10);
    ST_OK(st, store_snapshot_end(st));
    uint8_t got[STORE_PAGE_SIZE], want[STORE_PAGE_SIZE];
    page_of(want, 10);
    ST_OK(st, store_page_read(st, 0, 9, got));
    cr_assert(!memcmp(got, want, sizeof got));
    snap_begin(st, 1, 0);
    write_page(st, 10, 10);
    store_close(st); /* never ended: discarded */
    st = reopen(false, NULL);
    cr_assert_eq(store_snapshot_count(st), 1);
    store_close(st);
}

Test(store, duplicate_pages_are_stored_once)
{
    struct store *st = create(NULL);
    for (uint32_t s = 0; s < 20; s++) {
        snap_begin(st, s, 0);
        write_page(st, s + 1, 42);
        write_page(st, 1000, 42);
        ST_OK(st, store_snapshot_end(st));
    }
    struct store_stats s;
    ST_OK(st, store_stats(st, &s));
    cr_assert_eq(s.page_versions, 40);
    cr_assert_eq(s.unique_pages, 1);
    cr_assert(s.page_bytes_stored < STORE_PAGE_SIZE + 64, "%llu",
              (unsigned long long)s.page_bytes_stored);
    cr_assert_eq(s.page_bytes_raw, 40 * STORE_PAGE_SIZE);
    uint8_t got[STORE_PAGE_SIZE], want[STORE_PAGE_SIZE];
    page_of(want, 42);
    for (uint32_t id = 0; id < 20; id++) {
        ST_OK(st, store_page_read(st, id, id + 1, got));
        cr_assert(!memcmp(got, want, sizeof got));
        ST_OK(st, store_page_read(st, id, id + 2, got));
        cr_assert_eq(got[0] | got[100], 0, "gfn %u before it was written",
                     id + 2);
    }
    cr_assert(s.file_bytes < 200 * 1024, "%llu",
              (unsigned long long)s.file_bytes);
    store_close(st);
}

Test(store, zero_pages_cost_nothing)
{
    struct store *st = create(NULL);
    uint64_t before = kv_file_bytes(st);
    uint8_t zero[STORE_PAGE_SIZE] = {0};
    snap_begin(st, 0, 0);
    for (uint64_t g = 0; g < 8192; g++) /* 32 MiB of zero RAM */
        ST_OK(st, store_snapshot_page(st, g, zero));
    ST_OK(st, store_snapshot_end(st));
    struct store_stats s;
    ST_OK(st, store_stats(st, &s));
    cr_assert_eq(s.zero_pages, 8192);
    cr_assert_eq(s.unique_pages, 0);
    cr_assert_eq(s.page_bytes_stored, 0);
    cr_assert(s.file_bytes - before <= 32 * 1024, "grew %llu bytes",
              (unsigned long long)(s.file_bytes - before));

    snap_begin(st, 1, 0);
    write_page(st, 7, 7);
    ST_OK(st, store_snapshot_end(st));
    snap_begin(st, 2, 0);
    write_page(st, 7, 0); /* back to zero: needs a version */
    write_page(st, 8, 0); /* was zero: needs none */
    ST_OK(st, store_snapshot_end(st));
    uint8_t k[12];
    be64_put(k, 7);
    be32_put(k + 8, 2);
    ST_OK(st, kv_get(st, DB_PAGEVER, k, 12));
    be64_put(k, 8);
    cr_assert_eq(kv_get(st, DB_PAGEVER, k, 12), STORE_E_NOTFOUND);
    be64_put(k, 5);
    be32_put(k + 8, 0);
    cr_assert_eq(kv_get(st, DB_PAGEVER, k, 12), STORE_E_NOTFOUND);
    uint8_t got[STORE_PAGE_SIZE], want[STORE_PAGE_SIZE];
    ST_OK(st, store_page_read(st, 2, 7, got));
    cr_assert(!memcmp(got, zero, sizeof got));
    page_of(want, 7);
    ST_OK(st, store_page_read(st, 1, 7, got));
    cr_assert(!memcmp(got, want, sizeof got));
    uint64_t *g;
    size_t n;
    ST_OK(st, store_snapshot_pages(st, 0, &g, &n));
    cr_assert(n == 8192 && g[8191] == 8191);
    free(g);
    store_close(st);
}

Test(store, huge_snapshot_flushes_contents_early)
{
    /* 80 MiB of incompressible new contents: more than is buffered */
    const uint64_t n = 20480;
    uint8_t *p = malloc(STORE_PAGE_SIZE);
    struct store *st = create(NULL);
    snap_begin(st, 0, 0);
    for (uint64_t g = 0; g < n; g++) {
        uint64_t s = g + 1;
        for (size_t i = 0; i < STORE_PAGE_SIZE; i += 8) {
            uint64_t r = synth_rand(&s);
            memcpy(p + i, &r, 8);
        }
        ST_OK(st, store_snapshot_page(st, g, p));
    }
    cr_assert(st->pend_page_bytes < (80u << 20), "nothing flushed");
    ST_OK(st, store_snapshot_end(st));
    store_close(st);
    st = reopen(false, NULL);
    uint8_t *got = malloc(STORE_PAGE_SIZE);
    for (uint64_t g = 0; g < n; g += 97) {
        uint64_t s = g + 1;
        for (size_t i = 0; i < STORE_PAGE_SIZE; i += 8) {
            uint64_t r = synth_rand(&s);
            memcpy(p + i, &r, 8);
        }
        ST_OK(st, store_page_read(st, 0, g, got));
        cr_assert(!memcmp(got, p, STORE_PAGE_SIZE), "gfn %llu",
                  (unsigned long long)g);
    }
    struct store_stats s;
    ST_OK(st, store_stats(st, &s));
    cr_assert_eq(s.unique_pages, n);
    store_close(st);
    free(p);
    free(got);
}

/* ---- crash safety ---- */

static void crash_child(int wfd)
{
    struct store_event *ev = io_events(8000, 5);
    struct store *st = NULL;
    struct store_create_opts o = {.force = true};
    if (store_create(trace, &o, &st))
        _exit(1);
    store_events_append(st, ev, 5000);
    struct store_snapshot_info si = {.id = 0, .event_index = 5000};
    store_snapshot_begin(st, &si, "cpu", 3, "dev", 3);
    for (uint64_t g = 0; g < 50; g++) {
        uint8_t p[STORE_PAGE_SIZE];
        page_of(p, g + 1);
        store_snapshot_page(st, g, p);
    }
    if (store_snapshot_end(st) || store_meta_put_str(st, "a", "1") ||
        store_commit(st))
        _exit(2);
    if (write(wfd, "1", 1) != 1)
        _exit(3);
    store_events_append(st, ev + 5000, 3000);
    si.id = 1;
    si.event_index = 8000;
    store_snapshot_begin(st, &si, "cpu", 3, "dev", 3);
    for (uint64_t g = 0; g < 20; g++) {
        uint8_t p[STORE_PAGE_SIZE];
        page_of(p, g + 1000);
        store_snapshot_page(st, g, p);
    }
    store_meta_put_str(st, "b", "2");
    if (write(wfd, "2", 1) != 1)
        _exit(3);
    for (;;)
        pause();
}

Test(store, reopen_after_kill9_has_exactly_what_was_committed)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_child(fds[1]);
    }
    close(fds[1]);
    char b[2];
    cr_assert_eq(read(fds[0], b, 1), 1);
    cr_assert_eq(read(fds[0], b + 1, 1), 1, "child failed before the end");
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    struct store_event *ev = io_events(8000, 5);
    struct store *st = reopen(false, NULL);
    cr_assert_not(store_is_complete(st));
    cr_assert_eq(store_event_count(st), 5000);
    cr_assert_eq(store_snapshot_count(st), 1);
    check_events(st, ev, 0, 5000);
    uint8_t got[STORE_PAGE_SIZE], want[STORE_PAGE_SIZE];
    for (uint64_t g = 0; g < 50; g++) {
        ST_OK(st, store_page_read(st, 0, g, got));
        page_of(want, g + 1);
        cr_assert(!memcmp(got, want, sizeof got), "gfn %llu",
                  (unsigned long long)g);
    }
    char *s;
    ST_OK(st, store_meta_get_str(st, "a", &s));
    free(s);
    cr_assert_eq(store_meta_get_str(st, "b", &s), STORE_E_NOTFOUND);
    store_close(st);

    st = reopen(true, NULL); /* and it can be continued */
    ST_OK(st, store_events_append(st, ev + 5000, 3000));
    ST_OK(st, store_commit(st));
    check_events(st, ev, 0, 8000);
    store_close(st);
    free(ev);
}

/* ---- readers while writing ---- */

Test(store, reader_in_same_process_sees_commits)
{
    struct store_event *ev = io_events(300, 9);
    struct store *w = create(NULL);
    ST_OK(w, store_events_append(w, ev, 100));
    ST_OK(w, store_commit(w));
    struct store *r = reopen(false, NULL);
    cr_assert_eq(store_event_count(r), 100);
    ST_OK(w, store_events_append(w, ev + 100, 200));
    cr_assert_eq(store_event_count(r), 100, "saw uncommitted events");
    ST_OK(w, store_commit(w));
    cr_assert_eq(store_event_count(r), 300);
    check_events(r, ev, 0, 300);
    snap_begin(w, 0, 300);
    write_page(w, 1, 1);
    ST_OK(w, store_snapshot_end(w));
    cr_assert_eq(store_snapshot_count(r), 1);
    uint8_t got[STORE_PAGE_SIZE], want[STORE_PAGE_SIZE];
    page_of(want, 1);
    ST_OK(r, store_page_read(r, 0, 1, got));
    cr_assert(!memcmp(got, want, sizeof got));
    store_close(r);
    store_close(w);
    free(ev);
}

Test(store, reader_process_follows_writer)
{
    const size_t total = 4 * N;
    struct store_event *ev = io_events(total, 13);
    struct store *w = create(NULL);
    ST_OK(w, store_commit(w));
    pid_t pid = fork();
    if (pid == 0) { /* reader: poll until everything is there */
        struct store *r = NULL;
        if (store_open(trace, false, NULL, &r))
            _exit(1);
        for (int i = 0; i < 2000 && store_event_count(r) < total; i++)
            usleep(5000);
        struct store_event *got = calloc(total, sizeof *got);
        size_t k;
        if (store_events_read(r, 0, got, total, &k) || k != total)
            _exit(2);
        for (size_t i = 0; i < total; i++)
            if (st_event_cmp(&got[i], &ev[i]))
                _exit(3);
        store_close(r);
        _exit(0);
    }
    for (size_t i = 0; i < total; i += 1000) {
        size_t k = total - i < 1000 ? total - i : 1000;
        ST_OK(w, store_events_append(w, ev + i, k));
        ST_OK(w, store_commit(w));
        usleep(2000);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader status %d",
              status);
    store_close(w);
    free(ev);
}

/* A reader thread with its own handle while the writer's commits grow the
 * map (the shared environment must be resized under both). */
struct reader_arg {
    const struct store_event *ev;
    size_t total;
    int errors;
};

static void *reader_thread(void *p)
{
    struct reader_arg *a = p;
    struct store *r = NULL;
    struct store_event got[64];
    if (store_open(trace, false, NULL, &r)) {
        a->errors++;
        return NULL;
    }
    for (int i = 0; i < 60000 && store_event_count(r) < a->total; i++) {
        uint64_t n = store_event_count(r);
        size_t k;
        if (n >= 64 && (store_events_read(r, n - 64, got, 64, &k) || k != 64 ||
                        st_event_cmp(&got[63], &a->ev[n - 1])))
            a->errors++;
        usleep(500); /* up to 30 s for the writer */
    }
    if (store_event_count(r) != a->total)
        a->errors++;
    store_close(r);
    return NULL;
}

Test(store, threads_share_a_growing_trace)
{
    const size_t total = 60000;
    struct store_event *ev = calloc(total, sizeof *ev);
    synth_random_stream(ev, total, 4); /* ~11 MB: the 1 MiB map must grow */
    store__default_map = 1u << 20;
    struct store *w = create(NULL);
    ST_OK(w, store_commit(w));
    struct reader_arg a = {.ev = ev, .total = total};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, reader_thread, &a), 0);
    for (size_t i = 0; i < total; i += 2000) {
        ST_OK(w, store_events_append(w, ev + i, 2000));
        ST_OK(w, store_commit(w));
    }
    pthread_join(th, NULL);
    cr_assert_eq(a.errors, 0);
    check_events(w, ev, 0, total);
    store_close(w);
    free(ev);
}

/* ---- versions, keys, hashes ---- */

/* Rewrites the format record behind the store's back (plain LMDB). */
static void forge_format(uint32_t version, const char *magic)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {12, "store.format"}, v;
    uint8_t f[128];
    mdb_env_create(&env);
    mdb_env_set_maxdbs(env, 8);
    cr_assert_eq(mdb_env_open(env, trace, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
    cr_assert(v.mv_size <= sizeof f);
    memcpy(f, v.mv_data, v.mv_size);
    if (magic)
        memcpy(f, magic, 8);
    le32_put(f + 8, version);
    le32_put(f + 88, crc32c(0, f, 88));
    v.mv_data = f;
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

Test(store, format_version_and_magic_are_checked)
{
    store_close(create(NULL));
    forge_format(STORE_FORMAT_VERSION + 1, NULL);
    cr_assert_eq(open_rc(trace, NULL), STORE_E_VERSION);
    cr_assert(strstr(store_error_detail(NULL), "newer"));
    forge_format(0, NULL);
    cr_assert_eq(open_rc(trace, NULL), STORE_E_VERSION);
    forge_format(STORE_FORMAT_VERSION, "NOTTTVM");
    cr_assert_eq(open_rc(trace, NULL), STORE_E_NOTTRACE);
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    bool found = memmem(b, (size_t)n, needle, strlen(needle)) != NULL;
    free(b);
    return found;
}

static void fill_secret_page(uint8_t *p)
{
    for (size_t i = 0; i < STORE_PAGE_SIZE; i += 32)
        memcpy(p + i, "SECRET-PAGE-0123456789-abcdefgh", 32);
}

Test(store, encrypted_round_trip_and_key_errors)
{
    uint8_t key[STORE_KEY_BYTES], wrong[STORE_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    memcpy(wrong, key, sizeof key);
    wrong[5] ^= 1;
    struct store_event *ev = io_events(N + 10, 21);
    struct store_create_opts o = {.key = key};
    struct store *st = create(&o);
    uint8_t secret[STORE_PAGE_SIZE];
    fill_secret_page(secret);
    ST_OK(st, store_meta_put_str(st, "cmdline", "SECRET-CMDLINE"));
    ST_OK(st, store_image_put(st, secret, sizeof secret));
    ST_OK(st, store_events_append(st, ev, N + 10));
    snap_begin(st, 0, N + 10);
    ST_OK(st, store_snapshot_page(st, 1, secret));
    ST_OK(st, store_snapshot_page(st, 2, secret)); /* dedupes encrypted */
    write_page(st, 3, 3);
    ST_OK(st, store_snapshot_end(st));
    ST_OK(st, store_mark_complete(st));
    store_close(st);

    char f[400];
    snprintf(f, sizeof f, "%s/data.mdb", trace);
    cr_assert_not(file_contains(f, "SECRET-"), "plaintext in data.mdb");
    cr_assert_eq(open_rc(trace, NULL), STORE_E_KEY);
    cr_assert_eq(open_rc(trace, wrong), STORE_E_KEY);

    st = reopen(false, key);
    cr_assert(store_is_complete(st));
    check_events(st, ev, 0, N + 10);
    uint8_t got[STORE_PAGE_SIZE], want[STORE_PAGE_SIZE];
    ST_OK(st, store_page_read(st, 0, 2, got));
    cr_assert(!memcmp(got, secret, sizeof got));
    ST_OK(st, store_page_read(st, 0, 3, got));
    page_of(want, 3);
    cr_assert(!memcmp(got, want, sizeof got));
    char *s;
    ST_OK(st, store_meta_get_str(st, "cmdline", &s));
    cr_assert_str_eq(s, "SECRET-CMDLINE");
    free(s);
    void *img;
    size_t n;
    ST_OK(st, store_image_get(st, &img, &n));
    cr_assert(n == sizeof secret && !memcmp(img, secret, n));
    free(img);
    struct store_stats ss;
    ST_OK(st, store_stats(st, &ss));
    cr_assert(ss.encrypted && ss.unique_pages == 2);
    store_close(st);

    /* the check above can see plaintext: a plain trace shows it */
    struct store_create_opts plain = {.force = true};
    st = create(&plain);
    ST_OK(st, store_meta_put_str(st, "cmdline", "SECRET-CMDLINE"));
    ST_OK(st, store_commit(st));
    store_close(st);
    cr_assert(file_contains(f, "SECRET-CMDLINE"));
    free(ev);
}

Test(store, image_hash_mismatch_is_named)
{
    struct store *st = create(NULL);
    uint8_t img[5000], *v, h[32] = {0};
    size_t vlen;
    memset(img, 0x90, sizeof img);
    ST_OK(st, store_image_put(st, img, sizeof img));
    ST_OK(st, store_commit(st));
    void *p;
    size_t n;
    ST_OK(st, store_image_get(st, &p, &n));
    free(p);
    ST_OK(st, val_seal(st, DB_META, "store.image_sha256", 18, VT_META, 0, h, 32,
                       0, &v, &vlen));
    ST_OK(st, store__raw_put(st, DB_META, "store.image_sha256", 18, v, vlen));
    free(v);
    store_close(st);
    st = reopen(false, NULL);
    cr_assert_eq(store_image_get(st, &p, &n), STORE_E_HASH);
    cr_assert(strstr(store_error_detail(st), "SHA-256"));
    store_close(st);
}

/* ---- LMDB tools, map size ---- */

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(store, mdb_stat_and_mdb_dump_read_a_trace)
{
    struct store_event *ev = io_events(100, 1);
    struct store *st = create(NULL);
    ST_OK(st, store_events_append(st, ev, 100));
    snap_begin(st, 0, 100);
    write_page(st, 1, 1);
    ST_OK(st, store_snapshot_end(st));
    ST_OK(st, store_mark_complete(st));
    ST_OK(st, store_index_put_events(st, 0, (uint64_t[1]){5}, 1));
    ST_OK(st, store_commit(st));
    store_close(st);
    char cmd[1200], out[400];
    snprintf(out, sizeof out, "%s/stat.txt", dir);
    snprintf(cmd, sizeof cmd, "mdb_stat -a '%s' > '%s' 2>&1", trace, out);
    cr_assert_eq(run(cmd), 0, "mdb_stat failed");
    const char *dbs[] = {"meta",    "events", "snapshots",
                         "pagever", "pages",  "index"};
    for (int i = 0; i < 6; i++) {
        char want[64];
        snprintf(want, sizeof want, "Status of %s", dbs[i]);
        cr_assert(file_contains(out, want), "mdb_stat lacks %s", dbs[i]);
    }
    snprintf(cmd, sizeof cmd, "mdb_dump -a '%s' > '%s' 2>&1", trace, out);
    cr_assert_eq(run(cmd), 0, "mdb_dump failed");
    cr_assert(file_contains(out, "database=pagever"));
    free(ev);
}

Test(store, full_map_fails_cleanly_and_keeps_commits)
{
    struct store_create_opts o = {.map_size = 1u << 20};
    struct store *st = create(&o);
    struct store_event *ev = calloc(1000, sizeof *ev);
    uint64_t committed = 0;
    int rc = 0;
    for (int i = 0; i < 200 && rc == 0; i++) {
        synth_random_stream(ev, 1000, (uint64_t)i);
        ST_OK(st, store_events_append(st, ev, 1000));
        rc = store_commit(st);
        if (rc == 0)
            committed = store_event_count(st);
    }
    cr_assert_eq(rc, STORE_E_FULL, "%s", store_strerror(rc));
    cr_assert(committed > 0);
    store_close(st);
    st = reopen(false, NULL);
    cr_assert_eq(store_event_count(st), committed);
    struct store_event *all = calloc(committed, sizeof *all);
    size_t got;
    ST_OK(st, store_events_read(st, 0, all, committed, &got));
    cr_assert_eq(got, committed);
    synth_random_stream(ev, 1000, 0);
    cr_assert_eq(st_event_cmp(&all[5], &ev[5]), 0);
    free(all);
    free(ev);
    store_close(st);
}

Test(store, map_grows_when_unbounded)
{
    store__default_map = 1u << 20; /* start tiny, so it must grow */
    struct store *st = create(NULL);
    struct store_event *ev = calloc(40000, sizeof *ev);
    synth_random_stream(ev, 40000, 1); /* ~7 MB */
    ST_OK(st, store_events_append(st, ev, 40000));
    ST_OK(st, store_commit(st));
    store_close(st);
    st = reopen(false, NULL);
    check_events(st, ev, 0, 40000);
    store_close(st);
    free(ev);
}

Test(store, truncated_trace_gives_clean_errors)
{
    struct store *st = create(NULL);
    snap_begin(st, 0, 0);
    for (uint64_t g = 0; g < 600; g++)
        write_page(st, g, g + 1);
    ST_OK(st, store_snapshot_end(st));
    store_close(st);
    char f[400];
    snprintf(f, sizeof f, "%s/data.mdb", trace);
    struct stat s;
    stat(f, &s);
    cr_assert_eq(truncate(f, s.st_size / 3), 0);
    st = NULL;
    int rc = store_open(trace, false, NULL, &st), bad = rc != 0;
    uint8_t p[STORE_PAGE_SIZE];
    for (uint64_t g = 0; st && g < 600; g++) {
        rc = store_page_read(st, 0, g, p);
        cr_assert(rc == 0 || rc == STORE_E_CORRUPT, "%d", rc);
        bad |= rc != 0;
    }
    cr_assert(bad, "a third of the file gone and nothing noticed");
    store_close(st);
}

Test(store, guard_restores_signal_handlers)
{
    struct sigaction before, after;
    sigaction(SIGSEGV, NULL, &before);
    struct store *a = create(NULL), *b = reopen(false, NULL);
    store_close(a);
    store_close(b);
    sigaction(SIGSEGV, NULL, &after);
    cr_assert_eq((void *)before.sa_handler, (void *)after.sa_handler);
    /* glibc adds SA_RESTORER (0x04000000) to whatever it installs */
    cr_assert_eq(before.sa_flags & ~0x04000000, after.sa_flags & ~0x04000000);
}

/* ---- the instruction index ---- */

static uint64_t pos(uint64_t i, int gen)
{
    return 100 + 4 * (i / 2) + (gen && i >= N + 5 ? 3 : 0);
}

static void check_index(struct store *st, uint64_t total, int gen)
{
    uint64_t ic, ev;
    for (uint64_t i = 0; i < total; i += 37) {
        ST_OK(st, store_index_get(st, i, &ic));
        cr_assert_eq(ic, pos(i, gen), "event %llu", (unsigned long long)i);
    }
    cr_assert_eq(store_index_get(st, total, &ic), STORE_E_NOTFOUND);
    for (uint64_t x = 0; x < pos(total - 1, gen) + 10; x += 13) {
        uint64_t want = 0;
        while (want < total && pos(want, gen) < x)
            want++;
        ST_OK(st, store_index_event_at(st, x, &ev));
        cr_assert_eq(ev, want, "icount %llu", (unsigned long long)x);
    }
    uint32_t id;
    for (uint64_t x = 0; x < pos(total - 1, gen) + 10; x += 101) {
        int rc = store_snapshot_at_icount(st, x, &id);
        if (x < 100) {
            cr_assert_eq(rc, STORE_E_NOTFOUND);
            continue;
        }
        ST_OK(st, rc);
        cr_assert_eq(id, x >= pos(2 * N, gen) ? 2 : x >= pos(N, gen) ? 1 : 0);
    }
}

Test(store, instruction_index)
{
    const uint64_t total = 2 * N + 100;
    struct store_event *ev = io_events(total, 2);
    uint64_t *ic = malloc(total * sizeof *ic), end;
    for (uint64_t i = 0; i < total; i++)
        ic[i] = pos(i, 0);
    struct store *st = create(NULL);
    ST_OK(st, store_events_append(st, ev, total));
    for (uint32_t s = 0; s < 3; s++) {
        snap_begin(st, s, s * N);
        ST_OK(st, store_snapshot_end(st));
    }
    ST_OK(st, store_mark_complete(st));
    cr_assert_eq(store_index_event_at(st, 5, &end), STORE_E_NOTFOUND);
    ST_OK(st, store_index_put_events(st, 0, ic, 1000));
    ST_OK(st, store_commit(st));
    ST_OK(st, store_index_put_events(st, 1000, ic + 1000, total - 1000));
    cr_assert_eq(store_index_put_events(st, total + 1, ic, 1), STORE_E_ARG);
    for (uint32_t s = 0; s < 3; s++)
        ST_OK(st, store_index_put_snapshot(st, s, pos(s * N, 0)));
    cr_assert_not(store_index_complete(st, NULL));
    check_index(st, total, 0);
    ST_OK(st, store_index_finish(st, pos(total - 1, 0) + 50));
    store_close(st);

    st = reopen(false, NULL);
    cr_assert(store_index_complete(st, &end));
    cr_assert_eq(end, pos(total - 1, 0) + 50);
    check_index(st, total, 0);
    struct store_snapshot_info si;
    ST_OK(st, store_snapshot_get(st, 1, &si, NULL, NULL, NULL, NULL));
    cr_assert_eq(si.icount, pos(N, 0));
    store_close(st);

    /* re-index from the middle: positions change after event N + 5 */
    st = reopen(true, NULL);
    for (uint64_t i = 0; i < total; i++)
        ic[i] = pos(i, 1);
    uint64_t bad[2] = {10, 5};
    cr_assert_eq(store_index_put_events(st, N + 5, bad, 2), STORE_E_ARG);
    ST_OK(st, store_index_put_events(st, N + 5, ic + N + 5, 10));
    cr_assert_not(store_index_complete(st, NULL));
    cr_assert_eq(store_index_finish(st, 1u << 30), STORE_E_ARG);
    ST_OK(st, store_index_put_events(st, N + 15, ic + N + 15, total - N - 15));
    ST_OK(st, store_index_put_snapshot(st, 2, pos(2 * N, 1)));
    ST_OK(st, store_index_finish(st, pos(total - 1, 1) + 50));
    check_index(st, total, 1);
    store_close(st);
    st = reopen(false, NULL);
    check_index(st, total, 1);
    store_close(st);
    free(ic);
    free(ev);
}
