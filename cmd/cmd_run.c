/*
 * cmd_run.c — `ttvm run GUEST`: boot a guest on KVM and run it to its
 * debug-exit, a shutdown, a halt or the timeout.  The exit status is the
 * guest's debug-exit status ((value << 1) | 1, odd) or one of ttvm's own
 * even codes (cmd.h, README.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "vmm/vmm.h"

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
        "  --mem SIZE          guest RAM, a multiple of 2M (K/M/G suffixes;\n"
        "                      default 64M, at most 64G)\n"
        "  --input FILE        serial (COM1) input from FILE (default: stdin)\n"
        "  --serial-out FILE   serial output to FILE (default: stdout)\n"
        "  --cmdline STR       command line passed in the Multiboot info\n"
        "  --timeout SECONDS   stop after this much wall time\n"
        "  --boot MODE         auto (default), elf64 or multiboot\n"
        "  --backend NAME      CPU backend: kvm (default) or unicorn (exact\n"
        "                      instruction counting, no KVM needed)\n"
        "\n"
        "exit status: the guest's debug-exit status (value << 1) | 1 when it\n"
        "writes port 0xF4, else 2 usage, 4 image refused, 6 KVM unusable,\n"
        "8 triple fault, 10 timeout, 12 halted with interrupts off,\n"
        "14 instruction KVM cannot execute, 16 internal error.\n");
}

struct run_args {
    const char *guest, *input, *serial_out, *cmdline, *backend;
    uint64_t mem;
    double timeout;
    enum vmm_boot_mode boot;
};

static int parse_boot(const char *s, enum vmm_boot_mode *m)
{
    if (!strcmp(s, "auto"))
        *m = VMM_BOOT_AUTO;
    else if (!strcmp(s, "elf64"))
        *m = VMM_BOOT_ELF64;
    else if (!strcmp(s, "multiboot"))
        *m = VMM_BOOT_MULTIBOOT;
    else
        return -EINVAL;
    return 0;
}

static int bad(const char *msg, const char *arg)
{
    fprintf(stderr, "ttvm run: %s '%s' (see ttvm run --help)\n", msg, arg);
    return TTVM_EXIT_USAGE;
}

/* Returns -1 when the arguments are good, else the exit code. */
static int parse(int argc, char **argv, struct run_args *a)
{
    static const struct option opts[] = {
        { "mem", required_argument, NULL, 'm' },
        { "input", required_argument, NULL, 'i' },
        { "serial-out", required_argument, NULL, 'o' },
        { "cmdline", required_argument, NULL, 'c' },
        { "timeout", required_argument, NULL, 't' },
        { "boot", required_argument, NULL, 'b' },
        { "backend", required_argument, NULL, 'B' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    memset(a, 0, sizeof *a);
    a->mem = VMM_DEFAULT_MEM;
    a->cmdline = "";
    optind = 1;
    opterr = 0;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (cmd_parse_size(optarg, &a->mem) || a->mem < (2u << 20) ||
                a->mem % (2u << 20) || a->mem > (64ull << 30))
                return bad("--mem must be a multiple of 2M from 2M to 64G, "
                           "not", optarg);
            break;
        case 'i': a->input = optarg; break;
        case 'o': a->serial_out = optarg; break;
        case 'c': a->cmdline = optarg; break;
        case 't':
            errno = 0;
            a->timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(a->timeout > 0))
                return bad("--timeout needs a positive number of seconds, "
                           "not", optarg);
            break;
        case 'b':
            if (parse_boot(optarg, &a->boot))
                return bad("--boot must be auto, elf64 or multiboot, not",
                           optarg);
            break;
        case 'B':
            if (!vcpu_ops_by_name(optarg))
                return bad("--backend must be kvm or unicorn, not", optarg);
            a->backend = optarg;
            break;
        case 'h': usage(stdout); return TTVM_EXIT_OK;
        default:
            return bad("unknown or incomplete option",
                       argv[optind - 1] ? argv[optind - 1] : "");
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "ttvm run: expected exactly one GUEST image (see "
                        "ttvm run --help)\n");
        return TTVM_EXIT_USAGE;
    }
    a->guest = argv[optind];
    return -1;
}

/* Reads a whole file; *len bytes at *out (free it).  -errno on error. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int rc = fstat(fd, &st) < 0 ? -errno : -EINVAL;
        close(fd);
        return rc;
    }
    uint8_t *buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    int rc = !buf ? -ENOMEM : got != (size_t)st.st_size ? -EIO : 0;
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = got;
    return 0;
}

static int exit_code(const struct vmm_run_result *res)
{
    switch (res->kind) {
    case VMM_STOP_EXIT: return res->exit_status;
    case VMM_STOP_SHUTDOWN: return TTVM_EXIT_SHUTDOWN;
    case VMM_STOP_TIMEOUT: return TTVM_EXIT_TIMEOUT;
    case VMM_STOP_HALTED: return TTVM_EXIT_HALTED;
    case VMM_STOP_EMU_FAIL: return TTVM_EXIT_EMU_FAIL;
    default: return TTVM_EXIT_ERROR;
    }
}

static int open_fds(const struct run_args *a, int *in, int *out)
{
    *in = *out = -1;
    if (a->input && (*in = open(a->input, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "ttvm run: --input %s: %s\n", a->input,
                strerror(errno));
        return TTVM_EXIT_USAGE;
    }
    if (!a->input && fcntl(STDIN_FILENO, F_GETFD) >= 0)
        *in = STDIN_FILENO;
    if (a->serial_out &&
        (*out = open(a->serial_out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                     0644)) < 0) {
        fprintf(stderr, "ttvm run: --serial-out %s: %s\n", a->serial_out,
                strerror(errno));
        if (a->input)
            close(*in);
        return TTVM_EXIT_USAGE;
    }
    return -1;
}

static int boot_and_run(const struct run_args *a, const uint8_t *img,
                        size_t len, int in, int out)
{
    struct vmm_config cfg = { .mem_size = a->mem, .serial_in_fd = in,
                              .serial_out_fd = out, .backend = a->backend };
    struct vmm *vm;
    int rc = vmm_create(&cfg, &vm);
    if (rc) {
        const struct vmm_host_caps *h = vmm_host_probe();
        fprintf(stderr, "ttvm run: cannot create the machine: %s%s%s\n",
                vmm_strerror(rc), h->detail[0] ? ": " : "", h->detail);
        return rc == VMM_E_NOKVM ? TTVM_EXIT_HOST : TTVM_EXIT_ERROR;
    }
    struct vmm_image_info info;
    if ((rc = vmm_boot(vm, img, len, a->boot, a->cmdline, &info))) {
        fprintf(stderr, "ttvm run: %s: %s\n", a->guest,
                vmm_error_detail(vm)[0] ? vmm_error_detail(vm)
                                        : vmm_strerror(rc));
        vmm_destroy(vm);
        return rc == VMM_E_IMAGE ? TTVM_EXIT_IMAGE : TTVM_EXIT_ERROR;
    }
    struct vmm_run_opts ro = { .timeout_s = a->timeout, .irq_latency_ns = 0 };
    struct vmm_run_result res;
    rc = vmm_run(vm, &ro, &res);
    vmm_destroy(vm); /* flushes serial output before our message */
    if (rc) {
        fprintf(stderr, "ttvm run: %s\n", vmm_strerror(rc));
        return TTVM_EXIT_ERROR;
    }
    if (res.kind != VMM_STOP_EXIT)
        fprintf(stderr, "ttvm: %s\n", res.detail);
    return exit_code(&res);
}

int cmd_run(int argc, char **argv)
{
    struct run_args a;
    int code = parse(argc, argv, &a);
    if (code >= 0)
        return code;
    uint8_t *img = NULL;
    size_t len = 0;
    int rc = read_file(a.guest, &img, &len);
    if (rc) {
        fprintf(stderr, "ttvm run: %s: %s\n", a.guest,
                rc == -EINVAL ? "not a regular file" : strerror(-rc));
        return rc == -ENOENT || rc == -EINVAL || rc == -EACCES
                   ? TTVM_EXIT_USAGE : TTVM_EXIT_ERROR;
    }
    int in, out;
    if ((code = open_fds(&a, &in, &out)) >= 0) {
        free(img);
        return code;
    }
    code = boot_and_run(&a, img, len, in, out);
    free(img);
    if (a.input)
        close(in);
    if (out >= 0)
        close(out);
    return code;
}
