/*
 * store_tool.c — make, read and damage traces without a guest, for
 * integration tests (`ttvm info` on a bad trace, tools on a good one).
 *
 *   store_tool synth TRACE [--events N] [--snapshots K] [--key HEX64]
 *                          [--incomplete] [--index]
 *       A synthetic trace: N I/O-like events, K snapshots of a 1 MiB guest,
 *       a small image, metadata "cmdline", "mem_size"; marked complete
 *       unless --incomplete; --index adds a complete instruction index.
 *   store_tool check TRACE [--key HEX64]
 *       Opens TRACE read-only and reads everything.  Prints "ok: ..." and
 *       exits 0, or prints "error: <detail>" and exits 1.
 *   store_tool damage TRACE (--flip OFFSET | --truncate BYTES |
 *                           --version N | --image-hash)
 *       --flip inverts the byte at OFFSET of data.mdb (negative: from the
 *       end); --truncate cuts data.mdb; --version rewrites the format
 *       version; --image-hash stores a wrong SHA-256 for the guest image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/store_int.h"
#include "tests/support/store_synth.h"

static int usage(void)
{
    fprintf(stderr, "usage: store_tool synth|check|damage TRACE [options] "
                    "(see tests/tools/store_tool.c)\n");
    return 2;
}

static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 3; i < argc; i++)
        if (!strcmp(argv[i], name))
            return i + 1 < argc ? argv[i + 1] : "";
    return NULL;
}

static bool flag(int argc, char **argv, const char *name)
{
    return opt(argc, argv, name) != NULL;
}

static int parse_key(const char *hex, uint8_t key[STORE_KEY_BYTES])
{
    if (!hex || strlen(hex) != 2 * STORE_KEY_BYTES)
        return -1;
    for (int i = 0; i < STORE_KEY_BYTES; i++)
        if (sscanf(hex + 2 * i, "%2hhx", &key[i]) != 1)
            return -1;
    return 0;
}

static int fail(struct store *st, int rc, const char *what)
{
    printf("error: %s: %s (%s)\n", what, store_strerror(rc),
           store_error_detail(st));
    store_close(st);
    return 1;
}

/* ---- synth ---- */

static int synth_snapshots(struct store *st, uint32_t k, uint64_t nev)
{
    static uint8_t page[STORE_PAGE_SIZE];
    uint64_t s = 42;
    for (uint32_t id = 0; id < k; id++) {
        uint64_t ev = nev * id / k;
        struct store_snapshot_info si = {.id = id,
                                         .event_index = ev,
                                         .time_ns = 1000000ull * id,
                                         .reason = id ? 1 : 0};
        int rc = store_snapshot_begin(st, &si, "cpu", 3, "dev", 3);
        for (uint64_t g = 0; !rc && g < 256; g++) {
            if (id && synth_rand(&s) % 16)
                continue;
            synth_page(page, synth_rand(&s) % 3 ? synth_rand(&s) : 1);
            rc = store_snapshot_page(st, g, page);
        }
        if (rc || (rc = store_snapshot_end(st)))
            return rc;
    }
    return 0;
}

static int synth_index(struct store *st, uint64_t nev, uint32_t k)
{
    uint64_t *ic = malloc((nev ? nev : 1) * sizeof *ic);
    int rc = ic ? 0 : -ENOMEM;
    for (uint64_t i = 0; i < nev; i++)
        ic[i] = 10 * i;
    if (!rc && nev)
        rc = store_index_put_events(st, 0, ic, nev);
    for (uint32_t id = 0; !rc && id < k; id++)
        rc = store_index_put_snapshot(st, id, 10 * (nev * id / k));
    if (!rc)
        rc = store_index_finish(st, 10 * nev + 5);
    free(ic);
    return rc;
}

static int cmd_synth(int argc, char **argv)
{
    uint8_t key[STORE_KEY_BYTES];
    const char *e = opt(argc, argv, "--events"),
               *k = opt(argc, argv, "--snapshots");
    const char *hex = opt(argc, argv, "--key");
    uint64_t nev = e ? strtoull(e, NULL, 0) : 10000;
    uint32_t nsnap = k ? (uint32_t)strtoul(k, NULL, 0) : 4;
    struct store_create_opts o = {.force = true};
    if (hex && parse_key(hex, key))
        return usage();
    o.key = hex ? key : NULL;
    struct store *st = NULL;
    int rc = store_create(argv[2], &o, &st);
    if (rc)
        return fail(NULL, rc, "create");
    struct store_event *ev = calloc(nev ? nev : 1, sizeof *ev);
    synth_io_stream(ev, nev, 1, 1);
    uint8_t img[4096];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 13);
    if ((rc = store_image_put(st, img, sizeof img)) ||
        (rc = store_meta_put_str(st, "cmdline", "synthetic")) ||
        (rc = store_meta_put_u64(st, "mem_size", 1u << 20)) ||
        (rc = store_events_append(st, ev, nev)) ||
        (rc = synth_snapshots(st, nsnap, nev)) || (rc = store_commit(st)))
        return free(ev), fail(st, rc, "synth");
    free(ev);
    if (!flag(argc, argv, "--incomplete") && (rc = store_mark_complete(st)))
        return fail(st, rc, "complete");
    if (flag(argc, argv, "--index") && (rc = synth_index(st, nev, nsnap)))
        return fail(st, rc, "index");
    store_close(st);
    printf("ok: %llu events, %u snapshots\n", (unsigned long long)nev, nsnap);
    return 0;
}

/* ---- check ---- */

static int check_events(struct store *st, uint64_t *n)
{
    static struct store_event buf[4096];
    size_t got;
    *n = store_event_count(st);
    for (uint64_t f = 0; f < *n; f += got) {
        int rc = store_events_read(st, f, buf, 4096, &got);
        if (rc)
            return rc;
        if (!got)
            return store_fail(st, STORE_E_CORRUPT,
                              "events end at %llu, "
                              "count says %llu",
                              (unsigned long long)f, (unsigned long long)*n);
    }
    return 0;
}

static int check_snapshot(struct store *st, uint32_t id)
{
    static uint8_t page[STORE_PAGE_SIZE];
    struct store_snapshot_info si;
    void *cpu, *dev;
    size_t cl, dl, n;
    uint64_t *g;
    int rc = store_snapshot_get(st, id, &si, &cpu, &cl, &dev, &dl);
    if (rc)
        return rc;
    free(cpu);
    free(dev);
    if ((rc = store_snapshot_pages(st, id, &g, &n)))
        return rc;
    for (size_t i = 0; i < n && !rc; i++)
        rc = store_page_read(st, id, g[i], page);
    free(g);
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    uint8_t key[STORE_KEY_BYTES];
    const char *hex = opt(argc, argv, "--key");
    if (hex && parse_key(hex, key))
        return usage();
    struct store *st = NULL;
    int rc = store_open(argv[2], false, hex ? key : NULL, &st);
    if (rc)
        return fail(NULL, rc, "open");
    uint64_t nev, end;
    uint32_t ns = store_snapshot_count(st);
    void *img;
    size_t len;
    struct store_stats s;
    if ((rc = check_events(st, &nev)))
        return fail(st, rc, "events");
    for (uint32_t id = 0; id < ns; id++)
        if ((rc = check_snapshot(st, id)))
            return fail(st, rc, "snapshot");
    if ((rc = store_image_get(st, &img, &len)) && rc != STORE_E_NOTFOUND)
        return fail(st, rc, "image");
    if (!rc)
        free(img);
    if ((rc = store_stats(st, &s)))
        return fail(st, rc, "stats");
    printf("ok: %llu events, %u snapshots, %s, %s\n", (unsigned long long)nev,
           ns, store_is_complete(st) ? "complete" : "incomplete",
           store_index_complete(st, &end) ? "indexed" : "not indexed");
    store_close(st);
    return 0;
}

/* ---- damage ---- */

static int data_file(const char *trace, char *f, size_t cap)
{
    snprintf(f, cap, "%s/data.mdb", trace);
    return access(f, F_OK);
}

static int flip_byte(const char *trace, long off)
{
    char f[4096];
    struct stat s;
    if (data_file(trace, f, sizeof f) || stat(f, &s))
        return perror(f), 1;
    if (off < 0)
        off += (long)s.st_size;
    int fd = open(f, O_RDWR);
    uint8_t b;
    if (fd < 0 || off < 0 || pread(fd, &b, 1, off) != 1)
        return fprintf(stderr, "store_tool: cannot read offset %ld\n", off), 1;
    b = (uint8_t)~b;
    int rc = pwrite(fd, &b, 1, off) == 1 ? 0 : 1;
    close(fd);
    return rc;
}

static int forge(const char *trace, const char *what, uint32_t version)
{
    struct store *st = NULL;
    int rc = store_open(trace, true, NULL, &st);
    if (rc)
        return fail(NULL, rc, "open");
    void *p;
    size_t n;
    if (!strcmp(what, "version")) {
        if ((rc = store_meta_get(st, "store.format", &p, &n)))
            return fail(st, rc, "format");
        uint8_t *f = p;
        le32_put(f + 8, version);
        le32_put(f + 88, crc32c(0, f, 88));
        rc = store__raw_put(st, DB_META, "store.format", 12, f, n);
        free(p);
    } else {
        uint8_t h[32] = {1}, *v;
        size_t vlen;
        rc = val_seal(st, DB_META, "store.image_sha256", 18, VT_META, 0, h, 32,
                      0, &v, &vlen);
        if (!rc)
            rc = store__raw_put(st, DB_META, "store.image_sha256", 18, v, vlen);
        if (!rc)
            free(v);
    }
    if (rc)
        return fail(st, rc, what);
    store_close(st);
    return 0;
}

static int cmd_damage(int argc, char **argv)
{
    const char *v;
    char f[4096];
    if ((v = opt(argc, argv, "--flip")))
        return flip_byte(argv[2], strtol(v, NULL, 0));
    if ((v = opt(argc, argv, "--truncate"))) {
        if (data_file(argv[2], f, sizeof f) || truncate(f, strtol(v, NULL, 0)))
            return perror(f), 1;
        return 0;
    }
    if ((v = opt(argc, argv, "--version")))
        return forge(argv[2], "version", (uint32_t)strtoul(v, NULL, 0));
    if (flag(argc, argv, "--image-hash"))
        return forge(argv[2], "image-hash", 0);
    return usage();
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    if (!strcmp(argv[1], "synth"))
        return cmd_synth(argc, argv);
    if (!strcmp(argv[1], "check"))
        return cmd_check(argc, argv);
    if (!strcmp(argv[1], "damage"))
        return cmd_damage(argc, argv);
    return usage();
}
