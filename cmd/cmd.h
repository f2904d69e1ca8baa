/*
 * cmd.h — the `ttvm` command's subcommands.  Each lives in cmd/cmd_<name>.c
 * and is listed in the table in cmd/ttvm.c.  Only this folder may print
 * usage and exit; everything below returns error codes.
 */
#ifndef TTVM_CMD_H
#define TTVM_CMD_H

#include <stdint.h>

struct cmd {
    const char *name;
    const char *summary; /* one line for `ttvm --help` */
    int (*main)(int argc, char **argv); /* argv[0] is the subcommand */
};

/* Exit codes of ttvm itself (a guest's debug-exit status is (v << 1) | 1,
 * always odd; ttvm's own failures use these even codes, documented in
 * README.md). */
enum {
    TTVM_EXIT_OK = 0,
    TTVM_EXIT_USAGE = 2,     /* bad command line */
    TTVM_EXIT_IMAGE = 4,     /* guest image refused */
    TTVM_EXIT_HOST = 6,      /* KVM or another host facility unusable */
    TTVM_EXIT_SHUTDOWN = 8,  /* guest triple-faulted */
    TTVM_EXIT_TIMEOUT = 10,  /* --timeout reached */
    TTVM_EXIT_HALTED = 12,   /* guest halted with interrupts off */
    TTVM_EXIT_EMU_FAIL = 14, /* instruction the backend cannot execute */
    TTVM_EXIT_ERROR = 16,    /* internal or I/O failure */
    TTVM_EXIT_TRACE = 18,    /* trace missing, corrupt or incompatible */
    TTVM_EXIT_DIVERGED = 20, /* replay differs from the recording */
};

/* Parses "64M", "1G", "4096", "512K" (binary units).  0 or -EINVAL. */
int cmd_parse_size(const char *s, uint64_t *out);

int cmd_run(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_replay(int argc, char **argv);

#endif /* TTVM_CMD_H */
