/*
 * cmd_replay.c — `ttvm replay TRACE ...`.
 *   (default)                     serve the recording to gdb and launch gdb
 *                                 on it, as `rr replay` does (serve.c)
 *   --verify [--from-snapshot K]  re-execute on KVM and check against the
 *                                 recording (replayer/verify.c)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "debugger/debugger.h"
#include "replayer/replayer.h"
#include "storage/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ttvm replay TRACE [--no-launch | --batch SCRIPT] "
            "[--gdb-host HOST]\n"
            "                   [--gdb-port PORT] [--gdb PATH] [--key-file "
            "FILE] [-v]\n"
            "                   [-- GDB-ARGS...]\n"
            "       ttvm replay TRACE --verify [--from-snapshot K] "
            "[--key-file FILE]\n\n"
            "Serves the recorded run to gdb over the GDB remote protocol "
            "and starts gdb\n"
            "on it, at the first instruction, with the guest's symbols "
            "(the image stored\n"
            "in the trace).  stepi, continue, break, watch and their "
            "reverse forms\n"
            "(reverse-stepi, reverse-continue, ...) move in the recording; "
            "`monitor help`\n"
            "lists ttvm's own commands.  The trace is indexed first if it "
            "is not yet.\n\n"
            "  --no-launch         only serve: print the gdb command to "
            "connect with and\n"
            "                      serve one gdb after another until "
            "interrupted\n"
            "  --batch SCRIPT      run gdb non-interactively on the gdb "
            "script SCRIPT\n"
            "                      (gdb -batch -nx -x SCRIPT); exit with "
            "gdb's status\n"
            "  --gdb-host HOST     address to serve on (default 127.0.0.1)\n"
            "  --gdb-port PORT     TCP port (default %d; when it is taken and "
            "gdb is\n"
            "                      launched, any free port; 0 = any free "
            "port)\n"
            "  --gdb PATH          the gdb to launch (default: gdb from "
            "PATH)\n"
            "  --key-file FILE     key of an encrypted trace\n"
            "  -v, --verbose       log connections and every packet on "
            "stderr\n"
            "  -- GDB-ARGS         more arguments for gdb (e.g. -ex "
            "'break main')\n\n"
            "  --verify            re-execute the recording on KVM from "
            "snapshot 0 (or K),\n"
            "                      feeding the logged inputs and "
            "interrupts, and check at\n"
            "                      every event that registers and outputs "
            "match; prints the\n"
            "                      guest's console output again, then the "
            "verdict\n"
            "  --from-snapshot K   start verifying at snapshot K (see `ttvm "
            "info`)\n\n"
            "exit status: with gdb, gdb's own; --no-launch 0 once "
            "interrupted; --verify 0\n"
            "when the replay matches, %d on a divergence; %d trace missing "
            "or unreadable,\n"
            "%d gdb could not be started, %d other failure.\n",
            DBG_DEFAULT_PORT, TTVM_EXIT_DIVERGED, TTVM_EXIT_TRACE,
            TTVM_EXIT_HOST, TTVM_EXIT_ERROR);
}

static int verify(const char *trace, uint32_t from, const uint8_t *key)
{
    struct cmd_bar bar;
    cmd_bar_start(&bar, false);
    struct replay_verify_opts o = {
        .from_snapshot = from,
        .key = key,
        .console_fd = STDOUT_FILENO,
        .progress = cmd_bar_progress,
        .progress_ctx = &bar,
    };
    struct replay_verify_result *res = malloc(sizeof *res);
    if (!res)
        return TTVM_EXIT_ERROR;
    fflush(stdout);
    int rc = replay_verify(trace, &o, res);
    cmd_bar_clear(&bar);
    int status = TTVM_EXIT_OK;
    if (rc) {
        fprintf(stderr, "ttvm replay: %s\n", res->detail);
        status = rc <= -5100 && rc > -5200 ? TTVM_EXIT_TRACE
                                           : TTVM_EXIT_ERROR;
    } else if (res->diverged) {
        fprintf(stderr, "ttvm replay: divergence at event %llu: %s\n",
                (unsigned long long)res->event_index, res->detail);
        status = TTVM_EXIT_DIVERGED;
    } else {
        printf("%sreplay matches recording: %llu events%s\n",
               "\n", (unsigned long long)res->events_checked,
               res->trace_complete
                   ? ""
                   : " (trace incomplete: checked up to its last commit)");
    }
    free(res);
    return status;
}

enum {
    OPT_VERIFY = 256, OPT_FROM, OPT_KEY, OPT_NO_LAUNCH, OPT_BATCH, OPT_HOST,
    OPT_PORT, OPT_GDB,
};

static int parse_port(const char *arg, struct cmd_serve *a)
{
    char *end;
    unsigned long v = strtoul(arg, &end, 10);
    if (*end || end == arg || v > 65535)
        return cmd_usage_error("replay", "bad port", arg);
    a->port = (uint16_t)v;
    a->port_given = true;
    return 0;
}

int cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        { "verify", no_argument, NULL, OPT_VERIFY },
        { "from-snapshot", required_argument, NULL, OPT_FROM },
        { "key-file", required_argument, NULL, OPT_KEY },
        { "no-launch", no_argument, NULL, OPT_NO_LAUNCH },
        { "batch", required_argument, NULL, OPT_BATCH },
        { "gdb-host", required_argument, NULL, OPT_HOST },
        { "gdb-port", required_argument, NULL, OPT_PORT },
        { "gdb", required_argument, NULL, OPT_GDB },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct cmd_serve a = { .port = DBG_DEFAULT_PORT, .gdb = "gdb" };
    bool do_verify = false, from_given = false;
    uint8_t key[STORE_KEY_BYTES];
    unsigned long from = 0;
    char *end;
    int c, rc;
    /* Everything after "--" is gdb's; getopt sees only what is before. */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--")) {
            a.gdb_argv = argv + i + 1;
            a.gdb_argc = argc - i - 1;
            argc = i;
            break;
        }
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
        switch (c) {
        case OPT_VERIFY: do_verify = true; break;
        case OPT_FROM:
            from = strtoul(optarg, &end, 10);
            if (*end || end == optarg || from > UINT32_MAX)
                return cmd_usage_error("replay", "bad snapshot number",
                                       optarg);
            from_given = true;
            break;
        case OPT_KEY:
            if (cmd_read_key(optarg, key))
                return TTVM_EXIT_USAGE;
            a.key = key;
            break;
        case OPT_NO_LAUNCH: a.no_launch = true; break;
        case OPT_BATCH: a.batch = optarg; break;
        case OPT_HOST: a.host = optarg; break;
        case OPT_PORT:
            if ((rc = parse_port(optarg, &a)))
                return rc;
            break;
        case OPT_GDB: a.gdb = optarg; break;
        case 'v': a.verbose = true; break;
        case 'h': usage(stdout); return TTVM_EXIT_OK;
        default:
            return cmd_usage_error("replay", "unknown or incomplete option",
                                   argv[optind - 1] ? argv[optind - 1] : "");
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return TTVM_EXIT_USAGE;
    }
    a.trace = argv[optind];
    if (do_verify) {
        if (a.no_launch || a.batch || a.gdb_argc || a.port_given || a.host)
            return cmd_usage_error("replay", "--verify does not serve gdb; "
                                   "drop", "--no-launch/--batch/--gdb-*");
        return verify(a.trace, (uint32_t)from, a.key);
    }
    if (from_given)
        return cmd_usage_error("replay", "--from-snapshot needs",
                               "--verify");
    if (a.no_launch && (a.batch || a.gdb_argc))
        return cmd_usage_error("replay", "--no-launch starts no gdb; drop",
                               a.batch ? "--batch" : "--");
    return cmd_replay_serve(&a);
}
