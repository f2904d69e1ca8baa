/*
 * cmd_record.c — `ttvm record GUEST -o TRACE`: run a guest on KVM like
 * `ttvm run` (same console, same exit status) and write a trace that
 * replays the run exactly; then print a summary on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "recorder/recorder.h"

enum { OPT_OUT = 'o', OPT_FORCE = 300, OPT_INTERVAL, OPT_LATENCY, OPT_KEY,
       OPT_INDEX };

struct record_args {
    struct cmd_machine m;
    const char *trace, *key_file;
    bool force;
    double interval_ms, latency_ms;
    uint8_t key[STORE_KEY_BYTES];
    bool index;                /* --index: index while recording */
    pid_t indexer;             /* its process, or 0 */
    struct timespec t_end;     /* when the recording ended */
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ttvm record GUEST -o TRACE [options]\n"
        "\n"
        "Runs GUEST on KVM exactly as `ttvm run` does and records the run\n"
        "into the trace directory TRACE: every input the guest receives,\n"
        "every output, interrupts, and periodic incremental snapshots.\n"
        "Prints a summary on stderr when the guest ends.\n"
        "\n"
        "options:\n"
        "  -o, --output TRACE        trace directory to create\n"
        "  --force                   replace an existing trace\n"
        "  --snapshot-interval MS    run time between snapshots (default "
        "%.0f)\n"
        "  --max-irq-latency MS      how long a due interrupt may wait for "
        "the guest\n"
        "                            to exit before it is stopped (default "
        "%.0f)\n"
        "  --key-file FILE           encrypt the trace with this key (32 raw "
        "bytes\n"
        "                            or 64 hex digits)\n"
        "  --index                   index the trace while recording, in a "
        "second\n"
        "                            process (`ttvm index --follow`), and "
        "wait for it\n"
        CMD_MACHINE_HELP
        "\n" CMD_EXIT_HELP ",\n"
        "18 trace cannot be written (exists without --force, disk full).\n",
        REC_DEFAULT_SNAPSHOT_INTERVAL_NS / 1e6,
        REC_DEFAULT_MAX_IRQ_LATENCY_NS / 1e6);
}

static int parse_ms(const char *arg, double *out, const char *what)
{
    char *end;
    *out = strtod(arg, &end);
    if (end == arg || *end || !(*out > 0) || *out > 3.6e6)
        return cmd_usage_error("record", what, arg);
    return 0;
}

static int parse(int argc, char **argv, struct record_args *a)
{
    static const struct option opts[] = {
        CMD_MACHINE_LONGOPTS,
        { "output", required_argument, NULL, OPT_OUT },
        { "force", no_argument, NULL, OPT_FORCE },
        { "snapshot-interval", required_argument, NULL, OPT_INTERVAL },
        { "max-irq-latency", required_argument, NULL, OPT_LATENCY },
        { "key-file", required_argument, NULL, OPT_KEY },
        { "index", no_argument, NULL, OPT_INDEX },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    optind = 1;
    opterr = 0;
    int c, rc;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return TTVM_EXIT_OK;
        case OPT_OUT: a->trace = optarg; break;
        case OPT_FORCE: a->force = true; break;
        case OPT_KEY: a->key_file = optarg; break;
        case OPT_INDEX: a->index = true; break;
        case OPT_INTERVAL:
            if ((rc = parse_ms(optarg, &a->interval_ms,
                               "--snapshot-interval needs milliseconds, not")))
                return rc;
            break;
        case OPT_LATENCY:
            if ((rc = parse_ms(optarg, &a->latency_ms,
                               "--max-irq-latency needs milliseconds, not")))
                return rc;
            break;
        default:
            rc = cmd_machine_opt(&a->m, c, optarg);
            if (rc == 1)
                return cmd_usage_error("record",
                                       "unknown or incomplete option",
                                       argv[optind - 1] ? argv[optind - 1]
                                                        : "");
            if (rc)
                return rc;
        }
    }
    if (optind != argc - 1 || !a->trace) {
        fprintf(stderr, "ttvm record: expected GUEST and -o TRACE (see "
                        "ttvm record --help)\n");
        return TTVM_EXIT_USAGE;
    }
    a->m.guest = argv[optind];
    if (a->key_file && cmd_read_key(a->key_file, a->key))
        return TTVM_EXIT_USAGE;
    return -1;
}

static char *join_argv(int argc, char **argv)
{
    size_t len = 16;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    strcpy(s, "ttvm");
    for (int i = 0; i < argc; i++) {
        strcat(s, " ");
        strcat(s, argv[i]);
    }
    return s;
}

static const char *const kind_label[STORE_EV_KIND_MAX] = {
    [STORE_EV_PIO_IN] = "port reads",   [STORE_EV_PIO_OUT] = "port writes",
    [STORE_EV_MMIO_READ] = "MMIO reads", [STORE_EV_MMIO_WRITE] = "MMIO writes",
    [STORE_EV_IRQ] = "interrupts",       [STORE_EV_HLT] = "hlts",
    [STORE_EV_KICK] = "kicks",           [STORE_EV_WINDOW] = "irq windows",
    [STORE_EV_EMU] = "emulated",         [STORE_EV_EXIT] = "exit",
};

static void summary(const struct record_args *a,
                    const struct vmm_run_result *res,
                    const struct rec_stats *st)
{
    const struct store_stats *s = &st->store;
    fprintf(stderr, "\nttvm record: %s -> %s\n", a->m.guest, a->trace);
    if (res->kind == VMM_STOP_EXIT)
        fprintf(stderr, "  guest exit status %d\n", res->exit_status);
    else
        fprintf(stderr, "  guest stopped: %s\n", res->detail);
    fprintf(stderr, "  wall time        %.3f s\n", st->wall_s);
    fprintf(stderr, "  events           %llu:",
            (unsigned long long)st->events);
    const char *sep = " ";
    for (int k = 1; k < STORE_EV_KIND_MAX; k++) {
        if (!st->events_by_kind[k] || k == STORE_EV_EXIT)
            continue;
        fprintf(stderr, "%s%llu %s", sep,
                (unsigned long long)st->events_by_kind[k], kind_label[k]);
        sep = ", ";
    }
    fprintf(stderr, "\n  snapshots        %u (%llu pages; pause median %.0f "
                    "us, p99 %.0f us, max %.0f us)\n",
            st->snapshots, (unsigned long long)st->pages_saved,
            st->pause_median_us, st->pause_p99_us, st->pause_max_us);
    fprintf(stderr, "  on disk          %llu bytes (events %.2f bytes each; "
                    "pages compressed %.2fx)\n",
            (unsigned long long)s->file_bytes,
            s->events ? (double)s->event_bytes / (double)s->events : 0.0,
            s->page_bytes_stored ? (double)s->page_bytes_raw /
                                       (double)s->page_bytes_stored
                                 : 0.0);
}

/* ---- --index: the indexer follows the trace in a process of its own
 * (LMDB allows one environment per process; the recorder writes) ---- */

static void start_indexer(void *ctx, const char *trace)
{
    struct record_args *a = ctx;
    char *argv[8];
    int n = 0;
    argv[n++] = "ttvm";
    argv[n++] = "index";
    argv[n++] = "--follow";
    argv[n++] = "--quiet";
    if (a->key_file) {
        argv[n++] = "--key-file";
        argv[n++] = (char *)a->key_file;
    }
    argv[n++] = (char *)trace;
    argv[n] = NULL;
    int rc = posix_spawn(&a->indexer, "/proc/self/exe", NULL, NULL, argv,
                         environ);
    if (rc) {
        a->indexer = 0;
        fprintf(stderr, "ttvm record: cannot start the indexer: %s\n",
                strerror(rc));
    }
}

/* Waits for the indexer (stops it when the recording failed: it would
 * wait for a trace that never completes).  Its own messages went to
 * stderr. */
static void finish_indexer(struct record_args *a, bool recorded)
{
    if (!a->indexer)
        return;
    if (!recorded)
        kill(a->indexer, SIGTERM);
    int status = 0;
    while (waitpid(a->indexer, &status, 0) < 0 && errno == EINTR)
        ;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double after = (double)(now.tv_sec - a->t_end.tv_sec) +
                   (double)(now.tv_nsec - a->t_end.tv_nsec) * 1e-9;
    if (!recorded)
        return;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        fprintf(stderr, "  index            done, %.2f s after the "
                        "recording ended\n", after);
    else
        fprintf(stderr, "  index            FAILED (%s %d): see above; "
                        "`ttvm index %s` retries\n",
                WIFEXITED(status) ? "exit status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                a->trace);
}

int cmd_record(int argc, char **argv)
{
    struct record_args *a = calloc(1, sizeof *a);
    if (!a)
        return TTVM_EXIT_ERROR;
    cmd_machine_init(&a->m, "record");
    int code = parse(argc, argv, a);
    if (code < 0)
        code = cmd_machine_start(&a->m);
    char *line = join_argv(argc, argv);
    struct rec_stats st;
    struct vmm_run_result res;
    if (code < 0) {
        const char *slash = strrchr(a->m.guest, '/');
        struct rec_opts o = {
            .trace = a->trace,
            .force = a->force,
            .snapshot_interval_ns = (uint64_t)(a->interval_ms * 1e6),
            .max_irq_latency_ns = (uint64_t)(a->latency_ms * 1e6),
            .timeout_s = a->m.timeout,
            .key = a->key_file ? a->key : NULL,
            .guest_name = slash ? slash + 1 : a->m.guest,
            .guest_cmdline = a->m.cmdline,
            .argv_line = line,
            .boot_mode = a->m.boot,
            .on_created = a->index ? start_indexer : NULL,
            .on_created_ctx = a,
        };
        int rc = rec_record(a->m.vm, a->m.img, a->m.img_len, &o, &res, &st);
        clock_gettime(CLOCK_MONOTONIC, &a->t_end);
        cmd_machine_stop(&a->m); /* flush the console first */
        if (rc) {
            /* The detail says what failed and why, naming the trace
             * where it matters; the bare error only without one. */
            fprintf(stderr, "ttvm record: %s\n", *rec_error_detail()
                                                      ? rec_error_detail()
                                                      : rec_strerror(rc));
            code = rc <= -5100 && rc > -5200 ? TTVM_EXIT_TRACE
                                             : TTVM_EXIT_ERROR;
        } else {
            summary(a, &res, &st);
            code = cmd_exit_code(&res);
        }
        finish_indexer(a, rc == 0);
    }
    cmd_machine_stop(&a->m);
    free(line);
    free(a);
    return code;
}
