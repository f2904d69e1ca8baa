/*
 * ttvm.c — entry point: dispatches to the subcommand table.  The table is
 * explicit (STYLE.md rule 5) so `ttvm --help` lists exactly what exists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"

#define TTVM_VERSION "0.1.0"

static const struct cmd commands[] = {
    { "run", "boot a guest on KVM and run it to its exit", cmd_run },
    { "record", "run a guest on KVM and record the run into a trace",
      cmd_record },
    { "info", "describe what a trace holds", cmd_info },
    { "events", "list a trace's recorded I/O, interrupts and exit",
      cmd_events },
    { "replay", "debug a recording with gdb, forwards and backwards "
                "(--verify: check it on KVM)", cmd_replay },
    { "index", "find every event's instruction count (replay index)",
      cmd_index },
    { "doctor", "show what this host's KVM can do", cmd_doctor },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ttvm COMMAND [ARGS...]\n\n"
               "ttvm is a time-travel debugger for x86-64 bare-metal "
               "guests.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`ttvm COMMAND --help` describes each command.\n");
}

int cmd_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return -EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case '\0': break;
    default: return -EINVAL;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b') /* "64MiB", "64MB" */
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
        return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return TTVM_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return TTVM_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("ttvm %s\n", TTVM_VERSION);
        return TTVM_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "ttvm: unknown command '%s' (see ttvm --help)\n",
            argv[1]);
    return TTVM_EXIT_USAGE;
}
