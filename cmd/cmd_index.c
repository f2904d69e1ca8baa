/*
 * cmd_index.c — `ttvm index TRACE`: re-execute a recording under Unicorn
 * (or, for a guest with non-identity paging, by KVM single steps),
 * store the instruction position of every event and snapshot, and check
 * the recording on the way (replay_index).  `--follow` indexes a trace
 * that another process is still recording (what `ttvm record --index`
 * starts).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "replayer/replayer.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ttvm index TRACE [--follow] [--key-file FILE] "
            "[--quiet]\n\n"
            "Re-executes the recording under Unicorn from its first "
            "snapshot, stores the\n"
            "instruction count (icount) of every event and snapshot in the "
            "trace, and\n"
            "checks every event's registers and every snapshot's state "
            "against the\n"
            "replay.  A guest with non-identity paging (which Unicorn cannot "
            "run) is\n"
            "indexed again by single steps on KVM (engine kvm-step, ~50-100k "
            "instructions/s)\n"
            "where the host can step its code (kvm-pvm: ring 0 only); `ttvm "
            "info` names\n"
            "the engine.  Other commands index a trace on first use; this "
            "does it ahead.\n\n"
            "  --follow          the trace is still being recorded: index it "
            "as it is\n"
            "                    committed and write the index when it is "
            "complete\n"
            "  --key-file FILE   key of an encrypted trace\n"
            "  --quiet           no progress bar\n\n"
            "exit status: 0 indexed, %d the replay diverged from the "
            "recording (the\n"
            "first difference is printed), %d the guest uses non-identity "
            "paging and\nthis host cannot single-step it either (no exact "
            "replay engine), %d trace\nunreadable, %d other failure.\n"
            "Environment: TTVM_ISNAP_INTERVAL = instructions between index "
            "snapshots\n"
            "(default 33554432; 262144 on kvm-step); TTVM_INDEX_ENGINE="
            "unicorn|kvm-step\nforces an engine.\n",
            TTVM_EXIT_DIVERGED, TTVM_EXIT_EMU_FAIL, TTVM_EXIT_TRACE,
            TTVM_EXIT_ERROR);
}

int cmd_exit_for_replay(int rc)
{
    if (rc == REPLAY_E_DIVERGED)
        return TTVM_EXIT_DIVERGED;
    if (rc == REPLAY_E_PAGING) /* no engine can execute it exactly */
        return TTVM_EXIT_EMU_FAIL;
    if (rc <= -5100 && rc > -5200)
        return TTVM_EXIT_TRACE;
    return TTVM_EXIT_ERROR;
}

int cmd_index(int argc, char **argv)
{
    static const struct option opts[] = {
        { "follow", no_argument, NULL, 'f' },
        { "key-file", required_argument, NULL, 'k' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct replay_opts o = {0};
    bool quiet = false;
    uint8_t key[STORE_KEY_BYTES];
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
        switch (c) {
        case 'f': o.follow = true; break;
        case 'q': quiet = true; break;
        case 'k':
            if (cmd_read_key(optarg, key))
                return TTVM_EXIT_USAGE;
            o.key = key;
            break;
        case 'h': usage(stdout); return TTVM_EXIT_OK;
        default:
            return cmd_usage_error("index", "unknown or incomplete option",
                                   argv[optind - 1] ? argv[optind - 1] : "");
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return TTVM_EXIT_USAGE;
    }
    const char *trace = argv[optind];
    struct cmd_bar bar;
    cmd_bar_start(&bar, quiet);
    o.progress = cmd_bar_progress;
    o.progress_ctx = &bar;
    int rc = replay_index(trace, &o);
    cmd_bar_clear(&bar);
    if (rc == REPLAY_E_DIVERGED) {
        fprintf(stderr, "ttvm index: %s: divergence: %s\n", trace,
                replay_error_detail(NULL));
        return TTVM_EXIT_DIVERGED;
    }
    if (rc) {
        fprintf(stderr, "ttvm index: %s: %s: %s\n", trace,
                replay_strerror(rc), replay_error_detail(NULL));
        return cmd_exit_for_replay(rc);
    }
    fprintf(stderr, "ttvm index: %s indexed in %.2f s\n", trace,
            cmd_bar_elapsed(&bar));
    return TTVM_EXIT_OK;
}
