/*
 * cmd_run.c — `ttvm run GUEST`: boot a guest on KVM and run it to its
 * debug-exit, a shutdown, a halt or the timeout.  The exit status is the
 * guest's debug-exit status ((value << 1) | 1, odd) or one of ttvm's own
 * even codes (cmd.h, README.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ttvm run GUEST [options]\n"
        "\n"
        "Boots GUEST (an ELF64 x86-64 image booted directly in long mode, or\n"
        "a Multiboot v1 kernel) on KVM and runs it until it writes the\n"
        "debug-exit port 0xF4, triple-faults, halts for good or times out.\n"
        "\n"
        "options:\n"
        CMD_MACHINE_HELP
        "  --backend NAME      CPU backend: kvm (default) or unicorn (exact\n"
        "                      instruction counting, no KVM needed)\n"
        "\n" CMD_EXIT_HELP ".\n");
}

/* Returns -1 when the arguments are good, else the exit code. */
static int parse(int argc, char **argv, struct cmd_machine *m)
{
    static const struct option opts[] = {
        CMD_MACHINE_LONGOPTS,
        { "backend", required_argument, NULL, CMD_OPT_BACKEND },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return TTVM_EXIT_OK;
        }
        int rc = cmd_machine_opt(m, c, optarg);
        if (rc == 1)
            return cmd_usage_error("run", "unknown or incomplete option",
                                   argv[optind - 1] ? argv[optind - 1] : "");
        if (rc)
            return rc;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "ttvm run: expected exactly one GUEST image (see "
                        "ttvm run --help)\n");
        return TTVM_EXIT_USAGE;
    }
    m->guest = argv[optind];
    return -1;
}

int cmd_run(int argc, char **argv)
{
    struct cmd_machine m;
    cmd_machine_init(&m, "run");
    int code = parse(argc, argv, &m);
    if (code < 0)
        code = cmd_machine_start(&m);
    if (code >= 0) {
        cmd_machine_stop(&m);
        return code;
    }
    struct vmm_run_opts ro = { .timeout_s = m.timeout, .irq_latency_ns = 0 };
    struct vmm_run_result res;
    int rc = vmm_run(m.vm, &ro, &res);
    cmd_machine_stop(&m); /* flushes serial output before our message */
    if (rc) {
        fprintf(stderr, "ttvm run: %s\n", vmm_strerror(rc));
        return TTVM_EXIT_ERROR;
    }
    if (res.kind != VMM_STOP_EXIT)
        fprintf(stderr, "ttvm: %s\n", res.detail);
    return cmd_exit_code(&res);
}
