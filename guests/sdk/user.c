/*
 * user.c — the ring-3 side of the SDK: system-call wrappers and buffered
 * console I/O for tasks.
 */
#include "user.h"

long user_syscall(long nr, long a1, long a2, long a3)
{
    long ret;

    /* A call from inline asm: this file is built without a red zone. */
    __asm__ volatile("call sdk_syscall_gate"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3)
                     : "memory");
    return ret;
}

long user_write(const void *buf, size_t len)
{
    return user_syscall(SYS_WRITE, (long)buf, (long)len, 0);
}

long user_read(void *buf, size_t len)
{
    return user_syscall(SYS_READ, (long)buf, (long)len, 0);
}

long user_getpid(void)
{
    return user_syscall(SYS_GETPID, 0, 0, 0);
}

long user_yield(void)
{
    return user_syscall(SYS_YIELD, 0, 0, 0);
}

long user_sleep(uint64_t ticks)
{
    return user_syscall(SYS_SLEEP, (long)ticks, 0, 0);
}

uint64_t user_ticks(void)
{
    return (uint64_t)user_syscall(SYS_TICKS, 0, 0, 0);
}

_Noreturn void user_exit(int code)
{
    user_syscall(SYS_EXIT, code, 0, 0);
    for (;;)
        __asm__ volatile("ud2");
}

static void write_all(const void *buf, size_t len)
{
    user_write(buf, len);
}

int user_printf(const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = sdk_vprintf_to(write_all, fmt, ap);
    va_end(ap);
    return n;
}

/* ---- line input ---- */

static char in_buf[128];
static size_t in_len, in_pos;
static bool in_ended;

/* Next input byte, or -1 once the input has ended. */
static int next_byte(void)
{
    if (in_ended)
        return -1;
    if (in_pos == in_len) {
        long n = user_read(in_buf, sizeof(in_buf));

        if (n <= 0) {
            in_ended = true;
            return -1;
        }
        in_len = (size_t)n;
        in_pos = 0;
    }
    if (in_buf[in_pos] == 0x04) {
        in_ended = true;
        return -1;
    }
    return (unsigned char)in_buf[in_pos++];
}

long user_readline(char *buf, size_t cap)
{
    size_t n = 0;
    int c = -1;

    if (cap < 2 || in_ended)
        return -1;
    while (n + 1 < cap && (c = next_byte()) >= 0 && c != '\n')
        if (c != '\r')
            buf[n++] = (char)c;
    buf[n] = '\0';
    if (c < 0 && n == 0)
        return -1;
    if (c == '\n' && n == 1 && buf[0] == '.') {
        in_ended = true;
        return -1;
    }
    return (long)n;
}
