/*
 * buf.c — the growable byte buffer the stub builds replies in, and hex
 * helpers.  An append that cannot grow the buffer sets a sticky oom flag
 * instead of failing each caller: the reply builder checks it once, at the
 * end, and answers with an error packet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debugger/debugger_int.h"

void dbg_buf_free(struct dbg_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

void dbg_buf_clear(struct dbg_buf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->p)
        b->p[0] = '\0';
}

static bool reserve(struct dbg_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (more > SIZE_MAX / 2 - b->len ||
        (b->limit && b->len + more > b->limit)) {
        b->oom = true;
        return false;
    }
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void dbg_buf_put(struct dbg_buf *b, const void *data, size_t len)
{
    if (!reserve(b, len))
        return;
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void dbg_buf_putc(struct dbg_buf *b, char c)
{
    dbg_buf_put(b, &c, 1);
}

void dbg_buf_puts(struct dbg_buf *b, const char *s)
{
    dbg_buf_put(b, s, strlen(s));
}

void dbg_buf_printf(struct dbg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void dbg_buf_hex(struct dbg_buf *b, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *d = data;
    if (!reserve(b, 2 * len))
        return;
    for (size_t i = 0; i < len; i++) {
        b->p[b->len++] = digits[d[i] >> 4];
        b->p[b->len++] = digits[d[i] & 15];
    }
    b->p[b->len] = '\0';
}

int dbg_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool dbg_unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = dbg_hexval((unsigned char)s[2 * i]);
        int lo = hi < 0 ? -1 : dbg_hexval((unsigned char)s[2 * i + 1]);
        if (lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}
