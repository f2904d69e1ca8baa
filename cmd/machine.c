/*
 * machine.c — what `ttvm run` and `ttvm record` share: the machine and
 * guest options, reading the image, the serial files, creating and booting
 * the machine, and mapping how a run ended to ttvm's exit status.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"

void cmd_machine_init(struct cmd_machine *m, const char *prog)
{
    memset(m, 0, sizeof *m);
    m->prog = prog;
    m->mem = VMM_DEFAULT_MEM;
    m->cmdline = "";
    m->in_fd = m->out_fd = -1;
}

int cmd_usage_error(const char *prog, const char *msg, const char *arg)
{
    fprintf(stderr, "ttvm %s: %s '%s' (see ttvm %s --help)\n", prog, msg,
            arg, prog);
    return TTVM_EXIT_USAGE;
}

void cmd_trace_error(const char *prog, const char *path, int rc,
                     const char *detail)
{
    size_t n = strlen(path);
    if (!detail || !*detail)
        fprintf(stderr, "ttvm %s: %s: %s\n", prog, path, store_strerror(rc));
    else if (!strncmp(detail, path, n) && detail[n] == ':')
        fprintf(stderr, "ttvm %s: %s\n", prog, detail);
    else
        fprintf(stderr, "ttvm %s: %s: %s\n", prog, path, detail);
}

static int parse_boot(const char *s, enum vmm_boot_mode *mode)
{
    if (!strcmp(s, "auto"))
        *mode = VMM_BOOT_AUTO;
    else if (!strcmp(s, "elf64"))
        *mode = VMM_BOOT_ELF64;
    else if (!strcmp(s, "multiboot"))
        *mode = VMM_BOOT_MULTIBOOT;
    else
        return -EINVAL;
    return 0;
}

int cmd_machine_opt(struct cmd_machine *m, int c, const char *arg)
{
    char *end;
    switch (c) {
    case CMD_OPT_MEM:
        if (cmd_parse_size(arg, &m->mem) || m->mem < (2u << 20) ||
            m->mem % (2u << 20) || m->mem > (64ull << 30))
            return cmd_usage_error(m->prog, "--mem must be a multiple of 2M "
                                   "from 2M to 64G, not", arg);
        return 0;
    case CMD_OPT_INPUT: m->input = arg; return 0;
    case CMD_OPT_SERIAL_OUT: m->serial_out = arg; return 0;
    case CMD_OPT_CMDLINE:
        if (strlen(arg) > VMM_CMDLINE_MAX) { /* the argument, not the image */
            fprintf(stderr, "ttvm %s: --cmdline has %zu bytes, at most %d "
                            "fit in the boot information (see ttvm %s "
                            "--help)\n", m->prog, strlen(arg),
                    VMM_CMDLINE_MAX, m->prog);
            return TTVM_EXIT_USAGE;
        }
        m->cmdline = arg;
        return 0;
    case CMD_OPT_TIMEOUT:
        errno = 0;
        m->timeout = strtod(arg, &end);
        if (errno || end == arg || *end || !(m->timeout > 0))
            return cmd_usage_error(m->prog, "--timeout needs a positive "
                                   "number of seconds, not", arg);
        return 0;
    case CMD_OPT_BOOT:
        if (parse_boot(arg, &m->boot))
            return cmd_usage_error(m->prog, "--boot must be auto, elf64 or "
                                   "multiboot, not", arg);
        return 0;
    case CMD_OPT_BACKEND:
        if (!vcpu_ops_by_name(arg))
            return cmd_usage_error(m->prog, "--backend must be kvm or "
                                   "unicorn, not", arg);
        m->backend = arg;
        return 0;
    }
    return 1;
}

int cmd_read_file(const char *path, uint8_t **out, size_t *len)
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

/* Serial input is read as a byte stream: a file, a pipe or FIFO, a
 * terminal or /dev/null, a socket.  A directory (or a disk) opens fine
 * for reading but is no stream: refuse it rather than run with no input. */
static const char *not_a_stream(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return strerror(errno);
    if (S_ISDIR(st.st_mode))
        return "is a directory, not a file";
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) &&
        !S_ISCHR(st.st_mode) && !S_ISSOCK(st.st_mode))
        return "not a file, pipe or character device";
    return NULL;
}

static int open_fds(struct cmd_machine *m)
{
    if (m->input && (m->in_fd = open(m->input, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "ttvm %s: --input %s: %s\n", m->prog, m->input,
                strerror(errno));
        return TTVM_EXIT_USAGE;
    }
    const char *why = m->input ? not_a_stream(m->in_fd) : NULL;
    if (why) {
        fprintf(stderr, "ttvm %s: --input %s: %s\n", m->prog, m->input, why);
        return TTVM_EXIT_USAGE;
    }
    if (!m->input && fcntl(STDIN_FILENO, F_GETFD) >= 0)
        m->in_fd = STDIN_FILENO;
    if (m->serial_out &&
        (m->out_fd = open(m->serial_out,
                          O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) <
            0) {
        fprintf(stderr, "ttvm %s: --serial-out %s: %s\n", m->prog,
                m->serial_out, strerror(errno));
        return TTVM_EXIT_USAGE;
    }
    return -1;
}

static int create_and_boot(struct cmd_machine *m)
{
    struct vmm_config cfg = { .mem_size = m->mem, .serial_in_fd = m->in_fd,
                              .serial_out_fd = m->out_fd,
                              .backend = m->backend };
    int rc = vmm_create(&cfg, &m->vm);
    if (rc) {
        const struct vmm_host_caps *h = vmm_host_probe();
        fprintf(stderr, "ttvm %s: cannot create the machine: %s%s%s\n",
                m->prog, vmm_strerror(rc), h->detail[0] ? ": " : "",
                h->detail);
        m->vm = NULL;
        return rc == VMM_E_NOKVM ? TTVM_EXIT_HOST : TTVM_EXIT_ERROR;
    }
    struct vmm_image_info info;
    rc = vmm_boot(m->vm, m->img, m->img_len, m->boot, m->cmdline, &info);
    if (rc) {
        fprintf(stderr, "ttvm %s: %s: %s\n", m->prog, m->guest,
                vmm_error_detail(m->vm)[0] ? vmm_error_detail(m->vm)
                                           : vmm_strerror(rc));
        return rc == VMM_E_IMAGE ? TTVM_EXIT_IMAGE : TTVM_EXIT_ERROR;
    }
    m->boot = info.mode;
    return -1;
}

int cmd_machine_start(struct cmd_machine *m)
{
    int rc = cmd_read_file(m->guest, &m->img, &m->img_len);
    if (rc) {
        fprintf(stderr, "ttvm %s: %s: %s\n", m->prog, m->guest,
                rc == -EINVAL ? "not a regular file" : strerror(-rc));
        return rc == -ENOENT || rc == -EINVAL || rc == -EACCES
                   ? TTVM_EXIT_USAGE : TTVM_EXIT_ERROR;
    }
    int code = open_fds(m);
    if (code < 0)
        code = create_and_boot(m);
    return code;
}

void cmd_machine_stop(struct cmd_machine *m)
{
    if (m->vm)
        vmm_destroy(m->vm); /* flushes serial output */
    m->vm = NULL;
    if (m->input && m->in_fd >= 0)
        close(m->in_fd);
    if (m->out_fd >= 0)
        close(m->out_fd);
    m->in_fd = m->out_fd = -1;
    free(m->img);
    m->img = NULL;
}

int cmd_exit_code(const struct vmm_run_result *res)
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

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int cmd_read_key(const char *path, uint8_t key[STORE_KEY_BYTES])
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = cmd_read_file(path, &buf, &len);
    if (rc) {
        fprintf(stderr, "ttvm: --key-file %s: %s\n", path, strerror(-rc));
        return rc;
    }
    /* A raw key is exactly 32 bytes, whatever they are (a random key may
     * end in '\n'); only a hex key may carry a line ending. */
    if (len != STORE_KEY_BYTES)
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
    rc = 0;
    if (len == STORE_KEY_BYTES) {
        memcpy(key, buf, len);
    } else if (len == 2 * STORE_KEY_BYTES) {
        for (size_t i = 0; i < STORE_KEY_BYTES && !rc; i++) {
            int hi = hexval(buf[2 * i]), lo = hexval(buf[2 * i + 1]);
            if (hi < 0 || lo < 0)
                rc = -EINVAL;
            key[i] = (uint8_t)(hi << 4 | lo);
        }
    } else {
        rc = -EINVAL;
    }
    if (rc)
        fprintf(stderr, "ttvm: --key-file %s: expected %u raw bytes or %u "
                        "hex digits\n", path, STORE_KEY_BYTES,
                2 * STORE_KEY_BYTES);
    free(buf);
    return rc;
}
