/*
 * cmd_replay.c — `ttvm replay TRACE ...`.
 *   --verify [--from-snapshot K]  re-execute on KVM and check against the
 *                                 recording (replayer/verify.c)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "replayer/replayer.h"
#include "storage/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ttvm replay TRACE --verify [--from-snapshot K] "
            "[--key-file FILE]\n\n"
            "  --verify            re-execute the recording on KVM from "
            "snapshot 0 (or K),\n"
            "                      feeding the logged inputs and interrupts, "
            "and check at\n"
            "                      every event that registers and outputs "
            "match; prints the\n"
            "                      guest's console output again, then the "
            "verdict.  Exit\n"
            "                      status 0 when the replay matches, %d on a "
            "divergence.\n"
            "  --from-snapshot K   start verifying at snapshot K (see `ttvm "
            "info`)\n"
            "  --key-file FILE     key of an encrypted trace\n",
            TTVM_EXIT_DIVERGED);
}

static int progress(void *ctx, const char *what, uint64_t done,
                    uint64_t total)
{
    (void)ctx;
    if (isatty(STDERR_FILENO) && total)
        fprintf(stderr, "\r%s: %llu/%llu events (%.0f%%)", what,
                (unsigned long long)done, (unsigned long long)total,
                100.0 * (double)done / (double)total);
    return 0;
}

static int verify(const char *trace, uint32_t from, const uint8_t *key)
{
    struct replay_verify_opts o = {
        .from_snapshot = from,
        .key = key,
        .console_fd = STDOUT_FILENO,
        .progress = progress,
    };
    struct replay_verify_result *res = malloc(sizeof *res);
    if (!res)
        return TTVM_EXIT_ERROR;
    fflush(stdout);
    int rc = replay_verify(trace, &o, res);
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\r\033[K");
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

int cmd_replay(int argc, char **argv)
{
    static const struct option opts[] = {
        { "verify", no_argument, NULL, 'v' },
        { "from-snapshot", required_argument, NULL, 'f' },
        { "key-file", required_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool do_verify = false;
    uint8_t key[STORE_KEY_BYTES];
    const uint8_t *keyp = NULL;
    unsigned long from = 0;
    char *end;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            do_verify = true;
            break;
        case 'f':
            from = strtoul(optarg, &end, 10);
            if (*end || end == optarg || from > UINT32_MAX) {
                fprintf(stderr, "ttvm replay: bad snapshot number '%s'\n",
                        optarg);
                return TTVM_EXIT_USAGE;
            }
            break;
        case 'k':
            if (cmd_read_key(optarg, key))
                return TTVM_EXIT_USAGE;
            keyp = key;
            break;
        case 'h':
            usage(stdout);
            return TTVM_EXIT_OK;
        default:
            usage(stderr);
            return TTVM_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !do_verify) {
        usage(stderr);
        return TTVM_EXIT_USAGE;
    }
    return verify(argv[optind], (uint32_t)from, keyp);
}
