/*
 * lib.c — memory/string functions and the printf formatter shared by the
 * kernel and ring-3 code.  Plain byte loops: sizes here are small, and
 * under kvm-pvm ring 0 pays per instruction, so callers keep copies short.
 */
#include "lib.h"

#include <stdbool.h>

void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    if (d <= s || d >= s + n)
        return memcpy(dst, src, n);
    while (n--)
        d[n] = s[n];
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;

    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;

    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;

    while (s[n])
        n++;
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        if (!*a)
            break;
    }
    return 0;
}

int strcmp(const char *a, const char *b)
{
    return strncmp(a, b, (size_t)-1);
}

int sdk_parse_u64(const char *s, size_t len, uint64_t *out)
{
    unsigned base = 10;
    uint64_t v = 0;
    size_t i = 0;

    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    if (i == len)
        return -1;
    for (; i < len; i++) {
        unsigned d;
        char c = s[i];

        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return -1;
        if (v > (UINT64_MAX - d) / base)
            return -1;
        v = v * base + d;
    }
    *out = v;
    return 0;
}

/* ---- formatter ---- */

struct out {
    char *buf;
    size_t cap, len;
};

static void out_c(struct out *o, char c)
{
    if (o->len + 1 < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void out_pad(struct out *o, char c, int n)
{
    while (n-- > 0)
        out_c(o, c);
}

struct spec {
    bool left, zero, alt;
    int width, prec;
    int size; /* -2 hh, -1 h, 0 int, 1 long, 2 long long */
};

static void out_str(struct out *o, const struct spec *sp, const char *s)
{
    int n = 0;

    if (!s)
        s = "(null)";
    while (s[n] && (sp->prec < 0 || n < sp->prec))
        n++;
    if (!sp->left)
        out_pad(o, ' ', sp->width - n);
    for (int i = 0; i < n; i++)
        out_c(o, s[i]);
    if (sp->left)
        out_pad(o, ' ', sp->width - n);
}

static void out_num(struct out *o, const struct spec *sp, uint64_t v, bool neg,
                    unsigned base, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0, len;
    const char *prefix = "";

    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    if (neg)
        prefix = "-";
    else if (sp->alt && base == 16)
        prefix = upper ? "0X" : "0x";
    len = n + (int)strlen(prefix);
    if (!sp->left && !sp->zero)
        out_pad(o, ' ', sp->width - len);
    for (const char *p = prefix; *p; p++)
        out_c(o, *p);
    if (!sp->left && sp->zero)
        out_pad(o, '0', sp->width - len);
    while (n)
        out_c(o, tmp[--n]);
    if (sp->left)
        out_pad(o, ' ', sp->width - len);
}

static uint64_t arg_unsigned(va_list *ap, int size)
{
    switch (size) {
    case 2:
        return va_arg(*ap, unsigned long long);
    case 1:
        return va_arg(*ap, unsigned long);
    case -1:
        return (unsigned short)va_arg(*ap, unsigned);
    case -2:
        return (unsigned char)va_arg(*ap, unsigned);
    default:
        return va_arg(*ap, unsigned);
    }
}

static int64_t arg_signed(va_list *ap, int size)
{
    switch (size) {
    case 2:
        return va_arg(*ap, long long);
    case 1:
        return va_arg(*ap, long);
    case -1:
        return (short)va_arg(*ap, int);
    case -2:
        return (signed char)va_arg(*ap, int);
    default:
        return va_arg(*ap, int);
    }
}

/* Parses flags, width, precision and length at *fmt (after the '%'). */
static void parse_spec(const char **fmt, va_list *ap, struct spec *sp)
{
    const char *f = *fmt;

    *sp = (struct spec){.prec = -1};
    for (;; f++) {
        if (*f == '-')
            sp->left = true;
        else if (*f == '0')
            sp->zero = true;
        else if (*f == '#')
            sp->alt = true;
        else
            break;
    }
    if (*f == '*') {
        sp->width = va_arg(*ap, int);
        f++;
    }
    while (*f >= '0' && *f <= '9')
        sp->width = sp->width * 10 + (*f++ - '0');
    if (*f == '.') {
        sp->prec = 0;
        for (f++; *f >= '0' && *f <= '9'; f++)
            sp->prec = sp->prec * 10 + (*f - '0');
    }
    for (;; f++) {
        if (*f == 'l')
            sp->size = sp->size < 0 ? 1 : sp->size + 1;
        else if (*f == 'z')
            sp->size = 1;
        else if (*f == 'h')
            sp->size = sp->size > 0 ? -1 : sp->size - 1;
        else
            break;
    }
    *fmt = f;
}

int sdk_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap0)
{
    struct out o = {buf, cap, 0};
    struct spec sp;
    va_list ap;

    va_copy(ap, ap0);
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            out_c(&o, *fmt);
            continue;
        }
        fmt++;
        parse_spec(&fmt, &ap, &sp);
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = arg_signed(&ap, sp.size);
            uint64_t mag = v < 0 ? -(uint64_t)v : (uint64_t)v;
            out_num(&o, &sp, mag, v < 0, 10, false);
            break;
        }
        case 'u':
            out_num(&o, &sp, arg_unsigned(&ap, sp.size), false, 10, false);
            break;
        case 'x':
        case 'X':
            out_num(&o, &sp, arg_unsigned(&ap, sp.size), false, 16,
                    *fmt == 'X');
            break;
        case 'p':
            sp.alt = true;
            out_num(&o, &sp, (uintptr_t)va_arg(ap, void *), false, 16, false);
            break;
        case 's':
            out_str(&o, &sp, va_arg(ap, const char *));
            break;
        case 'c':
            out_c(&o, (char)va_arg(ap, int));
            break;
        case '%':
            out_c(&o, '%');
            break;
        case '\0':
            fmt--; /* a lone '%' at the end */
            break;
        default:
            out_c(&o, '%');
            out_c(&o, *fmt);
            break;
        }
    }
    va_end(ap);
    if (cap)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    return (int)o.len;
}

int sdk_snprintf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = sdk_vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

int sdk_vprintf_to(void (*write)(const void *buf, size_t len), const char *fmt,
                   va_list ap)
{
    char buf[256];
    int n = sdk_vsnprintf(buf, sizeof(buf), fmt, ap);

    write(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
    return n;
}
