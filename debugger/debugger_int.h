/*
 * debugger_int.h — what the files of debugger/ share, and nothing else
 * includes (unit tests excepted: they test the framing layer directly).
 *
 *  - dbg_buf: a growable byte buffer with a sticky out-of-memory flag;
 *  - rsp: the byte-fed RSP framing state machine (rsp.c);
 *  - the x86-64 register file as gdb sees it (x86_regs.c);
 *  - struct dbg_stub itself and the monitor commands (gdbstub.c,
 *    monitor.c), and the transport hooks the server plugs in (server.c).
 */
#ifndef TTVM_DEBUGGER_INT_H
#define TTVM_DEBUGGER_INT_H

#include <stdarg.h>
#include <stdatomic.h>

#include "debugger/debugger.h"

/* ---- growable buffer ---------------------------------------------------- */

struct dbg_buf {
    char *p; /* always NUL-terminated when cap > 0 */
    size_t len, cap;
    size_t limit; /* 0 = no limit; appends beyond it set oom */
    bool oom;     /* an append failed: the content is incomplete */
};

void dbg_buf_free(struct dbg_buf *b);
void dbg_buf_clear(struct dbg_buf *b);
void dbg_buf_put(struct dbg_buf *b, const void *data, size_t len);
void dbg_buf_putc(struct dbg_buf *b, char c);
void dbg_buf_puts(struct dbg_buf *b, const char *s);
void dbg_buf_printf(struct dbg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends len bytes as 2*len lowercase hex digits. */
void dbg_buf_hex(struct dbg_buf *b, const void *data, size_t len);

/* Decodes 2*n hex digits from s into out; false on a non-hex digit. */
bool dbg_unhex(const char *s, size_t n, uint8_t *out);
int dbg_hexval(int c); /* 0..15, or -1 */

/* ---- RSP framing (rsp.c) ------------------------------------------------ */

enum rsp_event {
    RSP_EV_NONE = 0,     /* byte consumed; nothing complete yet */
    RSP_EV_PACKET,       /* a packet with a good checksum: rsp_packet() */
    RSP_EV_INTERRUPT,    /* 0x03 outside a packet (gdb's Ctrl-C) */
    RSP_EV_BAD_CHECKSUM, /* packet dropped; '-' sent in ack mode */
    RSP_EV_DROPPED,      /* checksum fine but too long or malformed
                            (rsp->why); the caller replies with an error */
    RSP_EV_ACK,          /* '+' */
    RSP_EV_NAK,          /* '-': the last packet was sent again */
};

/* Writes all of buf to the peer; 0 or -errno. */
typedef int (*rsp_write_fn)(void *ctx, const void *buf, size_t len);

struct rsp {
    int state;
    bool noack;    /* QStartNoAckMode in effect */
    bool esc, rle; /* inside an escape / expecting an RLE count */
    bool too_long, malformed;
    bool csum_bad;    /* first checksum digit was not hex */
    uint8_t sum;      /* running checksum of the raw payload bytes */
    uint8_t sent_sum; /* first checksum digit's value while reading */
    uint8_t *pkt;     /* decoded payload, NUL-terminated, max+1 bytes */
    size_t len, max;
    const char *why;     /* for RSP_EV_DROPPED */
    struct dbg_buf last; /* last frame sent, for '-' */
    rsp_write_fn write;
    void *ctx;
};

/* max: largest decoded payload accepted.  0 or -ENOMEM. */
int rsp_init(struct rsp *r, size_t max, rsp_write_fn write, void *ctx);
void rsp_fini(struct rsp *r);
/* Back to ack mode between packets (a new connection). */
void rsp_reset(struct rsp *r);
/* Feeds one received byte; acks are written from here. */
enum rsp_event rsp_feed(struct rsp *r, uint8_t c);
/* The packet of the last RSP_EV_PACKET, valid until the next rsp_feed. */
const uint8_t *rsp_packet(const struct rsp *r, size_t *len);
/* Frames payload ($, escapes of # $ } *, #, checksum) and writes it. */
int rsp_send(struct rsp *r, const void *payload, size_t len);

/* ---- x86-64 registers as gdb numbers them (x86_regs.c) ------------------ */

/* 0-15 rax rbx rcx rdx rsi rdi rbp rsp r8-r15, 16 rip, 17 eflags,
 * 18-23 cs ss ds es fs gs, 24-31 st0-st7, 32-39 fctrl fstat ftag fiseg
 * fioff foseg fooff fop, 40-55 xmm0-xmm15, 56 mxcsr, 57 fs_base,
 * 58 gs_base, 59-64 cr0 cr2 cr3 cr4 cr8 efer. */
#define DBG_REG_RBP 6
#define DBG_REG_RSP 7
#define DBG_REG_RIP 16
#define DBG_NREGS 65
#define DBG_REG_MAX_BYTES 16

/* Size in bytes of register n (< DBG_NREGS). */
size_t dbg_reg_size(unsigned n);
/* Sum of all register sizes: the 'g' packet's byte count. */
size_t dbg_regs_total(void);
/* Register n of s into out (dbg_reg_size(n) bytes, little-endian). */
void dbg_reg_get(const struct vmm_cpu_state *s, unsigned n, uint8_t *out);
/* Register n of s from in.  Fields gdb cannot see are kept. */
void dbg_reg_set(struct vmm_cpu_state *s, unsigned n, const uint8_t *in);
/* The target description for qXfer:features:read:target.xml, generated
 * from the same table (so numbers and sizes agree by construction). */
void dbg_target_xml(struct dbg_buf *out);

/* ---- the stub ----------------------------------------------------------- */

struct dbg_break {
    uint64_t addr;
    unsigned sw, hw; /* how many Z0 / Z1 inserts */
};

struct dbg_watch {
    uint64_t addr;
    uint32_t len, kind; /* enum vcpu_watch_kind */
    unsigned refs;
};

struct dbg_stub {
    const struct dbg_target_ops *ops;
    void *t;
    struct dbg_stub_opts opts;
    struct dbg_buf in; /* the packet being handled, NUL-terminated */
    struct dbg_buf reply, console, scratch, xml;
    bool replied, close, noack;
    struct dbg_break *bps;
    size_t nbps, capbps;
    struct dbg_watch *wps;
    size_t nwps, capwps;
    /* Set from the transport's watcher thread when gdb sends 0x03 or goes
     * away during a long operation; checked between target calls. */
    atomic_bool interrupted;
    /* Transport hooks around operations that may run long (resumes,
     * monitor goto): the server watches the socket for Ctrl-C meanwhile. */
    void (*long_begin)(void *ctx);
    void (*long_end)(void *ctx);
    void *long_ctx;
};

void dbg_stub_log(struct dbg_stub *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Names any error the stub may see: ours, -errno, or the target's. */
const char *dbg_stub_strerror(struct dbg_stub *s, int err);
/* Called from another thread: stop the running target operation. */
void dbg_stub_interrupt(struct dbg_stub *s);

/* Runs the monitor command cmd (NUL-terminated) and appends its output
 * text to out (monitor.c). */
void dbg_monitor(struct dbg_stub *s, const char *cmd, struct dbg_buf *out);

#endif /* TTVM_DEBUGGER_INT_H */
