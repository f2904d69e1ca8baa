/*
 * user.h — what ring-3 code of a guest may call: system call wrappers,
 * formatted output, line input, the tick counter, port I/O (for ports the
 * kernel allowed with sdk_io_allow), and fault sites (SDK_EXTABLE).
 *
 * Ring-3 code runs natively under kvm-pvm and may be compiled with normal
 * code generation (SSE allowed): the kernel never touches the vector
 * registers, so their state survives interrupts and system calls.
 */
#ifndef GUEST_SDK_USER_H
#define GUEST_SDK_USER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "abi.h"
#include "lib.h"
#include "ports.h"

long user_syscall(long nr, long a1, long a2, long a3);

long user_write(const void *buf, size_t len); /* to COM1; -EFAULT */
long user_read(void *buf, size_t len);        /* blocks for >= 1 byte */
long user_getpid(void);
long user_yield(void);              /* waits for the next interrupt */
long user_sleep(uint64_t ticks);    /* waits that many timer ticks */
uint64_t user_ticks(void);          /* timer ticks, by system call */
_Noreturn void user_exit(int code); /* code 0..255 */

/* The kernel's tick counter read straight from memory (no system call). */
static inline uint64_t user_ticks_now(void)
{
    extern volatile uint64_t sdk_tick_count;
    return sdk_tick_count;
}

int user_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads one line of serial input into buf (without the newline; '\r' is
 * dropped; longer lines come in pieces of cap - 1 bytes) and returns its
 * length.  Returns -1 at the end of input: a 0x04 byte (Ctrl-D) or a line
 * that is exactly ".".  Every later call returns -1 too. */
long user_readline(char *buf, size_t cap);

/* A fault site for inline asm: an exception at label `insn` resumes at
 * label `fixup` with RAX = the vector (the kernel reports it first).
 * For int3 (a trap), `insn` is the int3 itself. */
#define SDK_EXTABLE(insn, fixup)                                               \
    ".pushsection .extable, \"a\"\n\t.balign 8\n\t.quad " insn ", " fixup      \
    "\n\t.popsection\n\t"

#endif /* GUEST_SDK_USER_H */
