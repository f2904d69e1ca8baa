/*
 * cmd.h — the `ttvm` command's subcommands.  Each lives in cmd/cmd_<name>.c
 * and is listed in the table in cmd/ttvm.c.  Only this folder may print
 * usage and exit; everything below returns error codes.
 */
#ifndef TTVM_CMD_H
#define TTVM_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "storage/store.h"
#include "vmm/vmm.h"

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
    TTVM_EXIT_HALTED = 12,   /* guest halted for good (nothing can wake it) */
    TTVM_EXIT_EMU_FAIL = 14, /* instruction the backend cannot execute */
    TTVM_EXIT_ERROR = 16,    /* internal or I/O failure */
    TTVM_EXIT_TRACE = 18,    /* trace missing, corrupt or incompatible */
    TTVM_EXIT_DIVERGED = 20, /* replay differs from the recording */
};

/* Parses "64M", "1G", "4096", "512K" (binary units).  0 or -EINVAL. */
int cmd_parse_size(const char *s, uint64_t *out);

/* ---- machine and guest options shared by run and record (machine.c) ---- */

enum { /* getopt codes, above any short option */
    CMD_OPT_MEM = 256, CMD_OPT_INPUT, CMD_OPT_SERIAL_OUT, CMD_OPT_CMDLINE,
    CMD_OPT_TIMEOUT, CMD_OPT_BOOT, CMD_OPT_BACKEND,
};

#define CMD_MACHINE_LONGOPTS                                                 \
    { "mem", required_argument, NULL, CMD_OPT_MEM },                         \
    { "input", required_argument, NULL, CMD_OPT_INPUT },                     \
    { "serial-out", required_argument, NULL, CMD_OPT_SERIAL_OUT },           \
    { "cmdline", required_argument, NULL, CMD_OPT_CMDLINE },                 \
    { "timeout", required_argument, NULL, CMD_OPT_TIMEOUT },                 \
    { "boot", required_argument, NULL, CMD_OPT_BOOT }

#define CMD_MACHINE_HELP                                                     \
    "  --mem SIZE          guest RAM, a multiple of 2M (K/M/G suffixes;\n"  \
    "                      default 64M, at most 64G)\n"                      \
    "  --input FILE        serial (COM1) input from FILE (default: stdin)\n" \
    "  --serial-out FILE   serial output to FILE (default: stdout)\n"        \
    "  --cmdline STR       command line passed in the Multiboot info\n"      \
    "  --timeout SECONDS   stop after this much wall time\n"                 \
    "  --boot MODE         auto (default), elf64 or multiboot\n"

#define CMD_EXIT_HELP                                                        \
    "exit status: the guest's debug-exit status (value << 1) | 1 when it\n" \
    "writes port 0xF4, else 2 usage, 4 image refused, 6 KVM unusable,\n"     \
    "8 triple fault, 10 timeout, 12 halted for good (HLT with interrupts\n"  \
    "off, or with no interrupt source armed), 14 an instruction that can\n"  \
    "neither run nor be replayed (RDTSCP in ring 0 under kvm-pvm),\n"        \
    "16 internal error"

struct cmd_machine {
    const char *prog; /* subcommand name, for messages */
    const char *guest, *input, *serial_out, *cmdline, *backend;
    uint64_t mem;
    double timeout;
    enum vmm_boot_mode boot; /* after start: what AUTO resolved to */
    uint8_t *img;            /* the image, after start */
    size_t img_len;
    int in_fd, out_fd;
    struct vmm *vm;          /* booted, after start */
};

void cmd_machine_init(struct cmd_machine *m, const char *prog);
/* Handles one machine option: 0 done, 1 not a machine option, else the
 * exit code of a usage error (already reported). */
int cmd_machine_opt(struct cmd_machine *m, int c, const char *arg);
/* Reads the image, opens the serial files, creates and boots the machine.
 * -1 on success, else an exit code (the problem is reported). */
int cmd_machine_start(struct cmd_machine *m);
/* Destroys the machine (flushing serial output), closes, frees. */
void cmd_machine_stop(struct cmd_machine *m);
/* ttvm's exit status for how a run ended. */
int cmd_exit_code(const struct vmm_run_result *res);
/* Reports "ttvm PROG: MSG 'ARG'" and returns TTVM_EXIT_USAGE. */
int cmd_usage_error(const char *prog, const char *msg, const char *arg);
/* Reports a storage error on trace path in one line, "ttvm PROG: PATH:
 * what is wrong", naming the trace once (storage's details of a failed
 * open start with it already); detail may be NULL or "" (then
 * store_strerror(rc)). */
void cmd_trace_error(const char *prog, const char *path, int rc,
                     const char *detail);
/* Reads a whole regular file (*out malloc'd).  -errno on failure. */
int cmd_read_file(const char *path, uint8_t **out, size_t *len);
/* Reads a trace key: STORE_KEY_BYTES raw bytes or twice as many hex
 * digits.  Reports problems; 0 or -errno/-EINVAL. */
int cmd_read_key(const char *path, uint8_t key[STORE_KEY_BYTES]);

/* ---- the progress bar for long work (progress.c) ---- */

struct cmd_bar {
    bool tty;   /* draw at all: stderr is a terminal and not quiet */
    bool drawn; /* something is on the line (cmd_bar_clear wipes it) */
    struct timespec t0;
};
void cmd_bar_start(struct cmd_bar *b, bool quiet);
/* A replay_progress_fn: ctx is the struct cmd_bar. */
int cmd_bar_progress(void *ctx, const char *what, uint64_t done,
                     uint64_t total);
void cmd_bar_clear(struct cmd_bar *b);
double cmd_bar_elapsed(const struct cmd_bar *b);

/* ---- `ttvm replay` serving gdb (serve.c) ---- */

struct cmd_serve {
    const char *trace;
    const uint8_t *key;  /* NULL: not encrypted */
    const char *host;    /* NULL: 127.0.0.1 */
    uint16_t port;
    bool port_given;     /* --gdb-port: never fall back to another port */
    bool no_launch;      /* serve only */
    const char *batch;   /* gdb script for a non-interactive gdb, or NULL */
    const char *gdb;     /* the gdb program */
    char **gdb_argv;     /* extra gdb arguments (after "--") */
    int gdb_argc;
    bool verbose;
};
/* Opens the trace (indexing it first if needed), serves it to gdb and,
 * unless no_launch, runs gdb on it.  Returns the exit status. */
int cmd_replay_serve(const struct cmd_serve *a);

int cmd_run(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_index(int argc, char **argv);
/* ttvm's exit status for a replayer error (cmd_index.c). */
int cmd_exit_for_replay(int rc);

#endif /* TTVM_CMD_H */
