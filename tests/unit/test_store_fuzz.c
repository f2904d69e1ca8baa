/*
 * test_store_fuzz.c — damaged traces and damaged values.  A reference
 * trace is copied and its data.mdb has bytes overwritten or is truncated
 * at many offsets (random ones, every B-tree page header, both LMDB meta
 * pages); each copy is opened and read completely.  Every call must return
 * success or a named error — never crash or hang (Criterion reports both;
 * `make asan` runs this too) — and whatever is returned as success is
 * compared with the pristine trace.  TTVM_FUZZ_SCALE=n multiplies the
 * number of random cases.
 */
#include <sys/stat.h>

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

TestSuite(store_fuzz, .init = setup, .fini = teardown, .timeout = 600);

#define NEV 10000
#define NSNAP 6
#define NGFN 240 /* gfns 0..NGFN-1 are read as of every snapshot */

/* What the pristine trace holds, read back through the API. */
struct truth {
    struct store_event *ev;
    struct store_snapshot_info info[NSNAP];
    uint8_t (*pages)[NGFN][STORE_PAGE_SIZE];
    uint64_t icount[NEV];
    void *image;
    size_t image_len;
};

static struct truth T;

static void build_reference(void)
{
    struct store *st;
    uint8_t p[STORE_PAGE_SIZE];
    uint64_t s = 99;
    ST_OK(NULL, store_create(trace, NULL, &st));
    T.ev = calloc(NEV, sizeof *T.ev);
    synth_io_stream(T.ev, NEV, 4, 1);
    uint8_t img[20000];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)synth_rand(&s);
    ST_OK(st, store_meta_put_str(st, "cmdline", "fuzz --me"));
    ST_OK(st, store_image_put(st, img, sizeof img));
    for (uint32_t id = 0; id < NSNAP; id++) {
        uint64_t ev = (uint64_t)id * NEV / NSNAP;
        ST_OK(st, store_events_append(st, T.ev + store_event_count(st),
                                      ev - store_event_count(st)));
        struct store_snapshot_info si = {.id = id, .event_index = ev};
        ST_OK(st, store_snapshot_begin(st, &si, "cpu-state", 9, "devs", 4));
        for (uint64_t g = 0; g < NGFN; g++) {
            uint64_t r = synth_rand(&s);
            if (id && r % 8)
                continue; /* later snapshots: about 1 page in 8 */
            if (r % 5 == 0)
                memset(p, 0, sizeof p);
            else
                synth_page(p, r % 3 == 0 ? 7 : r); /* some duplicates */
            ST_OK(st, store_snapshot_page(st, g, p));
        }
        ST_OK(st, store_snapshot_end(st));
    }
    ST_OK(st, store_events_append(st, T.ev + store_event_count(st),
                                  NEV - store_event_count(st)));
    ST_OK(st, store_mark_complete(st));
    for (uint64_t i = 0; i < NEV; i++)
        T.icount[i] = 1000 + 3 * i;
    ST_OK(st, store_index_put_events(st, 0, T.icount, NEV));
    for (uint32_t id = 0; id < NSNAP; id++)
        ST_OK(st, store_index_put_snapshot(st, id, T.icount[id * NEV / NSNAP]));
    ST_OK(st, store_index_finish(st, 1000 + 3 * NEV));
    store_close(st);

    ST_OK(NULL, store_open(trace, false, NULL, &st));
    T.pages = malloc(sizeof *T.pages * NSNAP);
    for (uint32_t id = 0; id < NSNAP; id++) {
        ST_OK(st,
              store_snapshot_get(st, id, &T.info[id], NULL, NULL, NULL, NULL));
        for (uint64_t g = 0; g < NGFN; g++)
            ST_OK(st, store_page_read(st, id, g, T.pages[id][g]));
    }
    ST_OK(st, store_image_get(st, &T.image, &T.image_len));
    store_close(st);
}

/* ---- reading a damaged copy ---- */

struct tally {
    unsigned cases, open_errors, read_errors, clean, silent;
    unsigned silent_kind[8];
};

static void clean_rc(int rc, const char *what)
{
    bool ok = rc == 0 || (rc <= STORE_E_EXISTS && rc >= STORE_E_ARG) ||
              (rc < 0 && rc > -4096);
    cr_assert(ok, "%s returned %d", what, rc);
}

/* 1 when rc is an error, counting it; asserts it is a named one. */
static int err(struct tally *t, int rc, const char *what)
{
    clean_rc(rc, what);
    if (rc)
        t->read_errors++;
    return rc != 0;
}

static void silent(struct tally *t, int kind)
{
    t->silent++;
    t->silent_kind[kind]++;
}

static void read_events(struct store *st, struct tally *t)
{
    static struct store_event got[1000];
    uint64_t n = store_event_count(st);
    for (uint64_t f = 0; f < n; f += 1000) {
        size_t k;
        if (err(t, store_events_read(st, f, got, 1000, &k), "events_read"))
            return;
        for (size_t i = 0; i < k; i++)
            if (f + i >= NEV || st_event_cmp(&got[i], &T.ev[f + i])) {
                silent(t, 0);
                return;
            }
        if (k < 1000)
            break;
    }
}

static void read_snapshot(struct store *st, struct tally *t, uint32_t id)
{
    struct store_snapshot_info si;
    void *cpu, *dev;
    size_t cl, dl, n;
    uint64_t *g;
    uint8_t p[STORE_PAGE_SIZE];
    if (err(t, store_snapshot_get(st, id, &si, &cpu, &cl, &dev, &dl),
            "snapshot_get"))
        return;
    /* A damaged txnid in an LMDB meta page makes LMDB pick the other meta
     * page: the trace as of the commit before the last (here: before
     * store_index_finish).  That is a consistent older state, like losing
     * the last commit, so an unindexed snapshot is right there. */
    if (id < NSNAP && si.icount == UINT64_MAX &&
        !store_index_complete(st, NULL))
        si.icount = T.info[id].icount;
    if (id >= NSNAP || memcmp(&si, &T.info[id], sizeof si) || cl != 9 ||
        memcmp(cpu, "cpu-state", 9) || dl != 4 || memcmp(dev, "devs", 4))
        silent(t, 1);
    free(cpu);
    free(dev);
    if (!err(t, store_snapshot_pages(st, id, &g, &n), "snapshot_pages"))
        free(g);
    for (uint64_t gfn = 0; gfn < NGFN + 2; gfn++) {
        if (err(t, store_page_read(st, id, gfn, p), "page_read"))
            continue;
        static const uint8_t zero[STORE_PAGE_SIZE];
        const uint8_t *want = id >= NSNAP  ? NULL
                              : gfn < NGFN ? T.pages[id][gfn]
                                           : zero;
        if (!want || memcmp(p, want, sizeof p))
            silent(t, 2);
    }
}

static void read_meta(struct store *st, struct tally *t)
{
    char *s;
    void *img;
    size_t n;
    struct store_stats ss;
    if (!err(t, store_meta_get_str(st, "cmdline", &s), "meta_get")) {
        if (strcmp(s, "fuzz --me"))
            silent(t, 3);
        free(s);
    }
    if (!err(t, store_image_get(st, &img, &n), "image_get")) {
        if (n != T.image_len || memcmp(img, T.image, n))
            silent(t, 3);
        free(img);
    }
    err(t, store_stats(st, &ss), "stats");
    (void)store_is_complete(st);
}

static void read_index(struct store *st, struct tally *t)
{
    uint64_t ic, ev, end;
    uint32_t id;
    (void)store_index_complete(st, &end);
    for (uint64_t i = 0; i < NEV; i += 333)
        if (!err(t, store_index_get(st, i, &ic), "index_get") &&
            ic != T.icount[i])
            silent(t, 4);
    for (uint64_t x = 0; x < 1000 + 3 * NEV; x += 1777)
        if (!err(t, store_index_event_at(st, x, &ev), "index_event_at") &&
            ev != (x <= 1000 ? 0 : (x - 1000 + 2) / 3))
            silent(t, 4);
    for (uint64_t x = 1000; x < 1000 + 3 * NEV; x += 2999)
        if (!err(t, store_snapshot_at_icount(st, x, &id), "at_icount") &&
            (id >= NSNAP || T.icount[id * NEV / NSNAP] > x))
            silent(t, 4);
    for (uint64_t e = 0; e < NEV; e += 1111)
        if (!err(t, store_snapshot_at_event(st, e, &id), "at_event") &&
            (id >= NSNAP || T.info[id].event_index > e))
            silent(t, 5);
}

static void read_everything(const char *path, struct tally *t)
{
    struct store *st = NULL;
    int rc = store_open(path, false, NULL, &st);
    t->cases++;
    clean_rc(rc, "store_open");
    if (rc) {
        t->open_errors++;
        cr_assert_null(st);
        cr_assert(store_error_detail(NULL)[0], "error without a detail");
        return;
    }
    unsigned before = t->read_errors + t->silent;
    read_events(st, t);
    uint32_t n = store_snapshot_count(st);
    for (uint32_t id = 0; id < n && id < NSNAP + 2; id++)
        read_snapshot(st, t, id);
    read_meta(st, t);
    read_index(st, t);
    if (t->read_errors + t->silent == before)
        t->clean++;
    store_close(st);
}

/* ---- damaging copies ---- */

static void copy_trace(const char *dst)
{
    char a[1024], b[1024];
    mkdir(dst, 0755);
    snprintf(a, sizeof a, "%s/data.mdb", trace);
    snprintf(b, sizeof b, "%s/data.mdb", dst);
    st_copy_file(a, b);
    snprintf(b, sizeof b, "%s/lock.mdb", dst);
    unlink(b);
}

static void poke(const char *dst, long off, const uint8_t *bytes, size_t n)
{
    char f[1024];
    snprintf(f, sizeof f, "%s/data.mdb", dst);
    int fd = open(f, O_WRONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, bytes, n, off), (ssize_t)n);
    close(fd);
}

static long file_size(void)
{
    char f[1024];
    struct stat s;
    snprintf(f, sizeof f, "%s/data.mdb", trace);
    cr_assert_eq(stat(f, &s), 0);
    return (long)s.st_size;
}

/* TTVM_FUZZ_DEBUG=1 names the cases that read wrong data. */
static void debug_case(const struct tally *t, unsigned before, const char *dst,
                       const char *what, int i)
{
    if (t->silent != before && getenv("TTVM_FUZZ_DEBUG"))
        fprintf(stderr, "%s case %d (%s): wrong data\n", what, i, dst);
}

/* One case: a copy of the reference with n bytes written at off — or,
 * bytes NULL, cut to off bytes — read completely. */
static void run_case(struct tally *t, const char *what, int i, long off,
                     const uint8_t *bytes, size_t n)
{
    char dst[400];
    snprintf(dst, sizeof dst, "%s/case%d", dir, i);
    copy_trace(dst);
    if (bytes) {
        poke(dst, off, bytes, n);
    } else {
        char f[1024];
        snprintf(f, sizeof f, "%s/data.mdb", dst);
        cr_assert_eq(truncate(f, off), 0);
    }
    unsigned before = t->silent;
    read_everything(dst, t);
    debug_case(t, before, dst, what, i);
    st_rm_rf(dst);
}

static int scale(void)
{
    const char *s = getenv("TTVM_FUZZ_SCALE");
    int n = s ? atoi(s) : 1;
    return n > 0 ? n : 1;
}

static void report(const char *what, const struct tally *t)
{
    cr_log_info("%s: %u cases: %u refused at open, %u read fine, %u read "
                "errors, %u silently wrong results (events %u, snapshot %u, "
                "page %u, meta %u, index %u, at_event %u)",
                what, t->cases, t->open_errors, t->clean, t->read_errors,
                t->silent, t->silent_kind[0], t->silent_kind[1],
                t->silent_kind[2], t->silent_kind[3], t->silent_kind[4],
                t->silent_kind[5]);
}

Test(store_fuzz, pristine_reference_reads_clean)
{
    struct tally t = {0};
    build_reference();
    read_everything(trace, &t);
    cr_assert_eq(t.read_errors + t.silent, 0);
}

/* What is at off in the reference data.mdb. */
static uint8_t ref_byte(long off)
{
    char f[1024];
    uint8_t b;
    snprintf(f, sizeof f, "%s/data.mdb", trace);
    FILE *fp = fopen(f, "rb");
    cr_assert_not_null(fp);
    fseek(fp, off, SEEK_SET);
    cr_assert_eq(fread(&b, 1, 1, fp), 1);
    fclose(fp);
    return b;
}

Test(store_fuzz, random_bytes_overwritten)
{
    struct tally t = {0};
    uint64_t s = 1;
    build_reference();
    long size = file_size();
    for (int i = 0; i < 150 * scale(); i++) {
        /* one byte: half the time random, half a single flipped bit */
        long off = (long)(synth_rand(&s) % (uint64_t)size);
        uint8_t b = (uint8_t)synth_rand(&s);
        if (synth_rand(&s) & 1)
            b = ref_byte(off) ^ (uint8_t)(1u << (synth_rand(&s) % 8));
        run_case(&t, "random byte", i, off, &b, 1);
    }
    report("random bytes", &t);
    cr_assert_eq(t.silent, 0, "damaged trace returned wrong data");
}

Test(store_fuzz, every_page_header_and_meta_page)
{
    struct tally t = {0};
    uint64_t s = 2;
    build_reference();
    long pages = file_size() / 4096;
    for (long pg = 0; pg < pages; pg++) {
        uint8_t b[2] = {(uint8_t)synth_rand(&s), (uint8_t)synth_rand(&s)};
        long off = pg * 4096 + (long)(synth_rand(&s) % 16);
        run_case(&t, "page header", (int)pg, off, b, 2);
    }
    for (int i = 0; i < 60; i++) { /* LMDB's two meta pages */
        uint8_t b = (uint8_t)synth_rand(&s);
        long off = (i & 1) * 4096 + (long)(synth_rand(&s) % 160);
        run_case(&t, "meta page", i, off, &b, 1);
    }
    report("page headers and meta pages", &t);
    cr_assert_eq(t.silent, 0, "damaged trace returned wrong data");
}

Test(store_fuzz, truncated_at_many_offsets)
{
    struct tally t = {0};
    uint64_t s = 3;
    build_reference();
    long size = file_size();
    for (int i = 0; i < 40 * scale(); i++) {
        long off =
            i < 8 ? (long)i * 1024 : (long)(synth_rand(&s) % (uint64_t)size);
        if (i % 3 == 0)
            off &= ~4095L; /* page boundaries too */
        run_case(&t, "truncation", i, off, NULL, 0);
    }
    report("truncation", &t);
    cr_assert_eq(t.silent, 0, "a truncated trace returned wrong data");
}

/* ---- the value envelope and the chunk codec ---- */

Test(store_fuzz, damaged_values_are_always_detected)
{
    struct store *st;
    uint8_t raw[3000], *v;
    size_t vlen;
    uint64_t s = 5;
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(i % 13);
    ST_OK(NULL, store_create(trace, NULL, &st));
    for (int level = 0; level < 2; level++) {
        ST_OK(st, val_seal(st, DB_EVENTS, "key12345", 8, VT_CHUNK, 7, raw,
                           sizeof raw, level * 3, &v, &vlen));
        struct buf out = {0};
        uint32_t cnt;
        ST_OK(st, val_unseal(st, DB_EVENTS, "key12345", 8, v, vlen, VT_CHUNK,
                             sizeof raw, &out, &cnt));
        cr_assert(cnt == 7 && out.len == sizeof raw &&
                  !memcmp(out.p, raw, sizeof raw));
        cr_assert_eq(val_unseal(st, DB_EVENTS, "key12346", 8, v, vlen, VT_CHUNK,
                                sizeof raw, &out, &cnt),
                     STORE_E_CORRUPT, "value accepted under another key");
        for (int i = 0; i < 2000; i++) {
            size_t off = synth_rand(&s) % vlen;
            uint8_t bit = (uint8_t)(1u << (synth_rand(&s) % 8));
            v[off] ^= bit;
            cr_assert_eq(val_unseal(st, DB_EVENTS, "key12345", 8, v, vlen,
                                    VT_CHUNK, sizeof raw, &out, &cnt),
                         STORE_E_CORRUPT, "flip at %zu undetected", off);
            v[off] ^= bit;
        }
        for (size_t cut = 0; cut < vlen; cut += 7)
            cr_assert_eq(val_unseal(st, DB_EVENTS, "key12345", 8, v, cut,
                                    VT_CHUNK, sizeof raw, &out, &cnt),
                         STORE_E_CORRUPT);
        buf_free(&out);
        free(v);
    }
    store_close(st);
}

Test(store_fuzz, chunk_codec_round_trip_and_garbage)
{
    enum { M = STORE_CHUNK_EVENTS };
    struct store_event *ev = calloc(M, sizeof *ev),
                       *back = calloc(M, sizeof *ev);
    struct buf b = {0};
    uint64_t s = 8;
    for (int round = 0; round < 3; round++) {
        if (round == 0)
            synth_io_stream(ev, M, 1, 0);
        else
            synth_random_stream(ev, M, (uint64_t)round);
        if (round == 2) /* extremes */
            for (int i = 0; i < M; i += 2) {
                ev[i].kind = STORE_EV_KIND_MAX - 1;
                ev[i].aux = UINT32_MAX;
                ev[i].flags = UINT16_MAX;
                ev[i].addr = ev[i].value = ev[i].regs[17] = UINT64_MAX;
            }
        ST_OK(NULL, chunk_encode(ev, M, &b));
        cr_assert_eq(chunk_decode(b.p, b.len, M, back), 0);
        for (int i = 0; i < M; i++)
            cr_assert_eq(st_event_cmp(&ev[i], &back[i]), 0, "event %d", i);
        for (size_t cut = 0; cut < b.len; cut += 1 + b.len / 300)
            cr_assert_neq(chunk_decode(b.p, cut, M, back), 0);
        cr_assert_neq(chunk_decode(b.p, b.len, M - 1, back), 0);
    }
    for (int i = 0; i < 3000; i++) { /* garbage: any answer but a crash */
        uint8_t junk[2048];
        size_t n = 1 + synth_rand(&s) % 300, len = synth_rand(&s) % sizeof junk;
        for (size_t k = 0; k < len; k++)
            junk[k] = (uint8_t)(synth_rand(&s) % 4 ? synth_rand(&s) % 12
                                                   : synth_rand(&s));
        int rc = chunk_decode(junk, len, n, back);
        cr_assert(rc == 0 || rc == -1);
    }
    buf_free(&b);
    free(ev);
    free(back);
}
