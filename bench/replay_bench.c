/*
 * replay_bench — the replayer on a recorded trace (bench/replay.sh records
 * them): index time against record time, forward replay speed, go-to
 * latency for random positions (median, p99), reverse-stepi latency (the
 * first after a jump, then repeated), and the replayer's peak memory.
 *
 *   replay_bench TRACE [GOTOS [SEED]]
 *
 * The trace is indexed again from scratch (its index is replaced).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "replayer/replayer.h"
#include "storage/store.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)(p * n + 0.999) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static void die(const char *what, int rc, struct replay *r)
{
    fprintf(stderr, "replay_bench: %s: %s: %s\n", what, replay_strerror(rc),
            replay_error_detail(r));
    exit(1);
}

static double record_seconds(const char *trace)
{
    struct store *st;
    uint64_t ns = 0;
    if (store_open(trace, false, NULL, &st))
        return 0;
    store_meta_get_u64(st, "final.wall_ns", &ns);
    store_close(st);
    return (double)ns * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: replay_bench TRACE [GOTOS [SEED]]\n");
        return 2;
    }
    const char *trace = argv[1];
    int gotos = argc > 2 ? atoi(argv[2]) : 50;
    if (gotos < 1 || gotos > 100000)
        gotos = 50;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 0) : 1;
    double rec = record_seconds(trace);

    double t = now();
    int rc = replay_index(trace, NULL);
    double ix = now() - t;
    if (rc)
        die("index", rc, NULL);

    struct replay *r;
    if ((rc = replay_open(trace, NULL, &r)))
        die("open", rc, NULL);
    uint64_t end = replay_end(r);
    printf("trace %s: %llu instructions, recorded in %.3f s\n", trace,
           (unsigned long long)end, rec);
    printf("  index time                %8.2f s  (%.1f x record time, "
           "%.0f M instr/s)\n", ix, rec > 0 ? ix / rec : 0,
           (double)end / ix / 1e6);

    struct replay_stop st;
    t = now();
    if ((rc = replay_continue(r, false, &st)))
        die("continue", rc, r);
    double fw = now() - t;
    printf("  forward replay            %8.2f s  (%.0f M instr/s, 0 to the "
           "end, no breakpoint)\n", fw, (double)end / fw / 1e6);

    double *lat = calloc((size_t)gotos, sizeof *lat);
    for (int i = 0; i < gotos; i++) {
        uint64_t n = rnd(&seed) % (end + 1);
        t = now();
        if ((rc = replay_goto(r, n)))
            die("goto", rc, r);
        lat[i] = now() - t;
    }
    double med = pct(lat, gotos, 0.5), p99 = pct(lat, gotos, 0.99);
    printf("  goto random position      median %7.1f ms, p99 %7.1f ms  "
           "(%d gotos)\n", med * 1e3, p99 * 1e3, gotos);

    int jumps = gotos < 10 ? gotos : 10, reps = 30;
    double *first = calloc((size_t)jumps, sizeof *first);
    double *rep = calloc((size_t)(jumps * reps), sizeof *rep);
    for (int i = 0; i < jumps; i++) {
        uint64_t n = 1000 + rnd(&seed) % (end - 1000);
        if ((rc = replay_goto(r, n)))
            die("goto", rc, r);
        t = now();
        if ((rc = replay_step(r, -1, true, &st)))
            die("reverse stepi", rc, r);
        first[i] = now() - t;
        for (int k = 0; k < reps; k++) {
            t = now();
            if ((rc = replay_step(r, -1, true, &st)))
                die("reverse stepi", rc, r);
            rep[i * reps + k] = now() - t;
        }
    }
    printf("  reverse-stepi, first      median %7.2f ms, max %7.2f ms  "
           "(after a jump)\n", pct(first, jumps, 0.5) * 1e3,
           pct(first, jumps, 1.0) * 1e3);
    printf("  reverse-stepi, repeated   median %7.3f ms, p99 %7.2f ms\n",
           pct(rep, jumps * reps, 0.5) * 1e3,
           pct(rep, jumps * reps, 0.99) * 1e3);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("  peak memory (RSS)         %8.1f MiB\n",
           (double)ru.ru_maxrss / 1024);
    replay_close(r);
    free(lat);
    free(first);
    free(rep);
    return 0;
}
