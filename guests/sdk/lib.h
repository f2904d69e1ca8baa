/*
 * lib.h — the small freestanding C library both rings share: memory and
 * string functions (gcc may emit calls to memcpy/memset/memcmp) and a
 * printf-style formatter.  Compiled -mgeneral-regs-only, so ring 0 may call
 * all of it; ring 3 may too (everything is mapped user-accessible).
 */
#ifndef GUEST_SDK_LIB_H
#define GUEST_SDK_LIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* printf subset: %d %i %u %x %X %p %s %c %%, flags '-' '0' '#', a width
 * (or *), a precision for %s, length modifiers hh h l ll z.  Always
 * NUL-terminates when cap > 0; returns the length the full output has. */
int sdk_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap);
int sdk_snprintf(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Formats into a 256-byte buffer (longer output is cut) and passes the
 * bytes to write; returns the full length, like printf. */
int sdk_vprintf_to(void (*write)(const void *buf, size_t len), const char *fmt,
                   va_list ap);

/* Parses an unsigned decimal or 0x-hex number of exactly len characters;
 * 0 on success, -1 when malformed or out of range. */
int sdk_parse_u64(const char *s, size_t len, uint64_t *out);

#endif /* GUEST_SDK_LIB_H */
