/*
 * store_bench.c — storage/ figures on synthetic data (no KVM needed):
 *   bytes per event (I/O-like streams and random data), event append and
 *   sequential read cost, snapshot write cost per page (new, duplicate and
 *   zero pages; the BLAKE2b hash alone; the commit), the same for a 64 MiB
 *   and a 1 GiB guest, page read latency, page compression and dedup.
 *
 *   build/bench/store_bench [DIR]     (DIR: scratch space, default /tmp)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/store_int.h"
#include "tests/support/store_synth.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static char path[512];

static struct store *fresh(void)
{
    struct store *st;
    struct store_create_opts o = {.force = true};
    if (store_create(path, &o, &st)) {
        fprintf(stderr, "store_bench: %s\n", store_error_detail(NULL));
        exit(1);
    }
    return st;
}

static void die_rc(struct store *st, int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "store_bench: %s: %s: %s\n", what, store_strerror(rc),
                store_error_detail(st));
        exit(1);
    }
}

/* ---- events ---- */

static void bench_stream(const char *name, struct store_event *ev, size_t n)
{
    struct store *st = fresh();
    double t0 = now();
    for (size_t i = 0; i < n; i += 5000) { /* commit like 50 ms snapshots */
        die_rc(st, store_events_append(st, ev + i, n - i < 5000 ? n - i : 5000),
               "append");
        die_rc(st, store_commit(st), "commit");
    }
    double t1 = now();
    struct store_stats s;
    die_rc(st, store_stats(st, &s), "stats");
    store_close(st);
    if (store_open(path, false, NULL, &st))
        exit(1);
    static struct store_event one;
    double t2 = now();
    for (size_t i = 0; i < n; i++) {
        size_t got;
        die_rc(st, store_events_read(st, i, &one, 1, &got), "read");
    }
    double t3 = now();
    store_close(st);
    printf("  %-28s %7.2f bytes/event  append+commit %5.2f us/event  "
           "sequential read %5.2f us/event\n",
           name, (double)s.event_bytes / (double)n, (t1 - t0) * 1e6 / (double)n,
           (t3 - t2) * 1e6 / (double)n);
}

static void bench_events(void)
{
    const size_t n = 200000;
    struct store_event *ev = calloc(n, sizeof *ev);
    printf("events (%zu per stream; raw struct %zu bytes):\n", n, sizeof *ev);
    synth_io_stream(ev, n, 1, 0);
    bench_stream("I/O loop, repeating text", ev, n);
    synth_io_stream(ev, n, 1, 1);
    bench_stream("I/O loop, random text", ev, n);
    synth_random_stream(ev, n / 4, 1);
    bench_stream("random data", ev, n / 4);
    free(ev);
}

/* ---- snapshots ---- */

/* Contents generated before timing: pool[i] = synth_page(seed + i). */
static uint8_t (*pool)[STORE_PAGE_SIZE];
static size_t pool_n;

static void pool_fill(size_t n, uint64_t seed)
{
    if (n > pool_n) {
        free(pool);
        pool = malloc(n * sizeof *pool);
        pool_n = n;
    }
    for (size_t i = 0; i < n; i++)
        if (seed)
            synth_page(pool[i], seed + i);
        else
            memset(pool[i], 0, STORE_PAGE_SIZE);
}

/* Writes snapshot id with pool[i] at gfns[i]; us per page in
 * store_snapshot_page, *end_s = time of store_snapshot_end (commit). */
static double snap_pages(struct store *st, uint32_t id, const uint64_t *gfns,
                         size_t n, double *end_s)
{
    struct store_snapshot_info si = {.id = id};
    die_rc(st, store_snapshot_begin(st, &si, "cpu", 3, "dev", 3), "begin");
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        die_rc(st, store_snapshot_page(st, gfns[i], pool[i]), "page");
    double t1 = now();
    die_rc(st, store_snapshot_end(st), "end");
    *end_s = now() - t1;
    return (t1 - t0) * 1e6 / (double)n;
}

static void bench_snapshot_kinds(void)
{
    const size_t n = 4000;
    uint64_t *g = malloc(n * sizeof *g);
    double end;
    for (size_t i = 0; i < n; i++)
        g[i] = i;
    struct store *st = fresh();
    printf("snapshot writes, %zu pages each (us/page in store_snapshot_page;"
           " commit separately):\n",
           n);
    pool_fill(n, 1000000);
    double t = snap_pages(st, 0, g, n, &end);
    printf("  new contents (hash+compress)  %6.2f us/page, commit %6.2f ms\n",
           t, end * 1e3);
    t = snap_pages(st, 1, g, n, &end);
    printf("  duplicate contents (hash only)%6.2f us/page, commit %6.2f ms\n",
           t, end * 1e3);
    pool_fill(n, 0);
    t = snap_pages(st, 2, g, n, &end);
    printf("  zero pages                    %6.2f us/page, commit %6.2f ms\n",
           t, end * 1e3);
    struct store_stats s;
    die_rc(st, store_stats(st, &s), "stats");
    store_close(st);

    static uint8_t page[STORE_PAGE_SIZE];
    uint8_t h[STORE_HASH_BYTES];
    synth_page(page, 5);
    double t0 = now();
    for (int i = 0; i < 20000; i++) {
        page[0] = (uint8_t)i;
        val_page_hash(st, page, h); /* st only selects keyed/unkeyed */
    }
    printf("  of which BLAKE2b-128 (crypto_generichash) %6.2f us/page\n",
           (now() - t0) * 1e6 / 20000);
    free(g);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* n random distinct gfns below ram, ascending; returns how many. */
static size_t random_gfns(uint64_t *g, size_t n, uint64_t ram, uint64_t *s)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        g[i] = synth_rand(s) % ram;
    qsort(g, n, sizeof *g, cmp_u64);
    for (size_t i = 0; i < n; i++)
        if (!k || g[k - 1] != g[i])
            g[k++] = g[i];
    return k;
}

/* Snapshot 0 of a guest of ram_pages (used_pages non-zero, the rest zero),
 * then periodic snapshots of `dirty` pages spread over all of RAM. */
static void bench_guest(const char *name, uint64_t ram_pages,
                        uint64_t used_pages, size_t dirty)
{
    uint64_t *g = malloc(ram_pages * sizeof *g), s = 7;
    double end, t0 = now();
    struct store *st = fresh();
    static uint8_t page[STORE_PAGE_SIZE];
    pool_fill(dirty, 0);
    struct store_snapshot_info si = {.id = 0};
    die_rc(st, store_snapshot_begin(st, &si, "cpu", 3, "dev", 3), "begin");
    for (uint64_t i = 0; i < ram_pages; i++) {
        if (i < used_pages)
            synth_page(page, i + 1);
        else if (i == used_pages)
            memset(page, 0, sizeof page);
        die_rc(st, store_snapshot_page(st, i, page), "page");
    }
    die_rc(st, store_snapshot_end(st), "end");
    double boot = now() - t0;
    double sum = 0, sum_end = 0;
    const int rounds = 5;
    for (int r = 1; r <= rounds; r++) {
        size_t k = random_gfns(g, dirty, ram_pages, &s);
        pool_fill(k, 5000000u * (unsigned)r);
        sum += snap_pages(st, (uint32_t)r, g, k, &end);
        sum_end += end;
    }
    store_close(st);
    printf("  %-9s snapshot 0 %6.2f s; %zu dirty pages: %6.2f us/page + "
           "commit %6.2f ms\n",
           name, boot, dirty, sum / rounds, sum_end / rounds * 1e3);
    free(g);
}

static void bench_guest_sizes(void)
{
    printf("guest size independence (16 MiB of RAM in use, rest zero):\n");
    bench_guest("64 MiB", 16384, 4096, 1000);
    bench_guest("1 GiB", 262144, 4096, 1000);
}

static void bench_reads(void)
{
    const uint32_t nsnap = 50;
    const uint64_t ram = 8192;
    uint64_t *g = malloc(ram * sizeof *g), s = 3;
    double end;
    struct store *st = fresh();
    for (uint64_t i = 0; i < ram; i++)
        g[i] = i;
    pool_fill(ram, 100);
    snap_pages(st, 0, g, ram, &end);
    for (uint32_t id = 1; id < nsnap; id++) {
        size_t k = random_gfns(g, 400, ram, &s);
        pool_fill(k, 1000000u * id);
        snap_pages(st, id, g, k, &end);
    }
    struct store_stats ss;
    die_rc(st, store_stats(st, &ss), "stats");
    store_close(st);
    if (store_open(path, false, NULL, &st))
        exit(1);
    static uint8_t page[STORE_PAGE_SIZE];
    const int n = 50000;
    double t0 = now();
    for (int i = 0; i < n; i++)
        die_rc(st,
               store_page_read(st, (uint32_t)(synth_rand(&s) % nsnap),
                               synth_rand(&s) % ram, page),
               "read");
    double t = (now() - t0) * 1e6 / n;
    store_close(st);
    printf("page reads (%u snapshots, %llu pages of RAM, random gfn and "
           "snapshot): %.2f us/page\n",
           nsnap, (unsigned long long)ram, t);
    printf(
        "pages: %llu versions, %llu zero, %llu unique; compression "
        "%.2fx (raw %llu -> %llu bytes), dedup %.2fx\n",
        (unsigned long long)ss.page_versions, (unsigned long long)ss.zero_pages,
        (unsigned long long)ss.unique_pages,
        (double)ss.page_bytes_raw / (double)ss.page_bytes_stored,
        (unsigned long long)ss.page_bytes_raw,
        (unsigned long long)ss.page_bytes_stored,
        (double)(ss.page_versions - ss.zero_pages) / (double)ss.unique_pages);
    free(g);
}

int main(int argc, char **argv)
{
    char tmpl[400];
    snprintf(tmpl, sizeof tmpl, "%s/ttvm-store-bench-XXXXXX",
             argc > 1 ? argv[1] : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror("store_bench: mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/t", tmpl);
    bench_events();
    bench_snapshot_kinds();
    bench_guest_sizes();
    bench_reads();
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    return system(cmd) ? 1 : 0;
}
