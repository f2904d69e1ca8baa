/*
 * host.c — the real host behind the nondeterminism door (vmm_host_ops):
 * CLOCK_MONOTONIC for the PIT, time() for the RTC, the serial fds, and
 * getrandom() for the random port.  Serial input is read in blocks and
 * handed out byte by byte; a descriptor that has nothing yet (a terminal,
 * a pipe) is asked with poll() so nothing ever blocks.  Serial output is
 * buffered per line (and flushed whenever the guest waits for input or
 * the run ends), since a write(2) per byte would dominate chatty guests.
 */
#include <errno.h>
#include <poll.h>
#include <sys/random.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "vmm/vmm_int.h"

static uint64_t real_clock_ns(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t real_wall_clock_s(void *ctx)
{
    (void)ctx;
    return (int64_t)time(NULL);
}

void vmm_host_real_flush(struct vmm_host_real_ctx *c)
{
    size_t off = 0;
    int fd = c->out_fd >= 0 ? c->out_fd : STDOUT_FILENO;
    while (off < c->out_len) {
        ssize_t n = write(fd, c->out_buf + off, c->out_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* output gone (closed pipe, full disk): drop it */
        off += (size_t)n;
    }
    c->out_len = 0;
}

static int real_serial_read(void *ctx, uint8_t *b)
{
    struct vmm_host_real_ctx *c = ctx;
    if (c->in_pos < c->in_len) {
        *b = c->in_buf[c->in_pos++];
        return 1;
    }
    if (c->in_fd < 0 || c->in_eof)
        return -1;
    vmm_host_real_flush(c); /* a prompt must be visible before we wait */
    struct pollfd p = { .fd = c->in_fd, .events = POLLIN };
    if (poll(&p, 1, 0) <= 0)
        return 0;
    ssize_t n = read(c->in_fd, c->in_buf, sizeof c->in_buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        c->in_eof = true;
        return -1;
    }
    c->in_len = (size_t)n;
    c->in_pos = 1;
    *b = c->in_buf[0];
    return 1;
}

static void real_serial_write(void *ctx, uint8_t b)
{
    struct vmm_host_real_ctx *c = ctx;
    c->out_buf[c->out_len++] = b;
    if (b == '\n' || c->out_len == sizeof c->out_buf)
        vmm_host_real_flush(c);
}

static uint32_t real_random32(void *ctx)
{
    struct vmm_host_real_ctx *c = ctx;
    if (c->rnd_pos + 4 > c->rnd_len) {
        ssize_t n = getrandom(c->rnd_buf, sizeof c->rnd_buf, 0);
        c->rnd_len = n > 0 ? (size_t)n : 0;
        c->rnd_pos = 0;
        if (c->rnd_len < 4)
            return (uint32_t)real_clock_ns(NULL); /* cannot happen */
    }
    uint32_t v;
    memcpy(&v, c->rnd_buf + c->rnd_pos, 4);
    c->rnd_pos += 4;
    return v;
}

const struct vmm_host_ops vmm_host_real = {
    .clock_ns = real_clock_ns,
    .wall_clock_s = real_wall_clock_s,
    .serial_read = real_serial_read,
    .serial_write = real_serial_write,
    .random32 = real_random32,
};
