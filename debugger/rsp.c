/*
 * rsp.c — GDB Remote Serial Protocol framing, one byte at a time.
 *
 * The wire carries `$payload#cs` packets (cs: two hex digits, the sum of
 * the raw payload bytes mod 256), `+`/`-` acknowledgements (until
 * QStartNoAckMode), and a bare 0x03 for Ctrl-C.  Inside a payload, 0x7d
 * escapes the next byte (XOR 0x20) and `*` followed by a count byte n
 * repeats the previous byte n - 29 times.  This file knows nothing of what
 * packets mean: it is fed bytes, reports events, and frames replies, so it
 * is tested without a socket or a target.
 *
 * Robustness: memory is fixed at rsp_init (max + 1 bytes); a payload that
 * does not fit is consumed to its end and reported as RSP_EV_DROPPED, so a
 * hostile client cannot make us grow.  A `$` inside a packet starts a new
 * one (the old one was cut off), as gdb itself does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "debugger/debugger_int.h"

enum { ST_IDLE, ST_DATA, ST_CSUM1, ST_CSUM2 };

int rsp_init(struct rsp *r, size_t max, rsp_write_fn write, void *ctx)
{
    memset(r, 0, sizeof *r);
    r->pkt = malloc(max + 1);
    if (!r->pkt)
        return -ENOMEM;
    r->max = max;
    r->write = write;
    r->ctx = ctx;
    rsp_reset(r);
    return 0;
}

void rsp_fini(struct rsp *r)
{
    free(r->pkt);
    r->pkt = NULL;
    dbg_buf_free(&r->last);
}

static void start_packet(struct rsp *r)
{
    r->state = ST_DATA;
    r->len = 0;
    r->sum = 0;
    r->esc = r->rle = false;
    r->too_long = r->malformed = false;
}

void rsp_reset(struct rsp *r)
{
    r->state = ST_IDLE;
    r->noack = false;
    r->len = 0;
    r->pkt[0] = '\0';
    dbg_buf_clear(&r->last);
}

static void store(struct rsp *r, uint8_t c)
{
    if (r->len < r->max)
        r->pkt[r->len++] = c;
    else
        r->too_long = true;
}

/* Run-length count byte: repeat the previous decoded byte n - 29 times.
 * gdb never sends these, but the protocol allows them in both directions. */
static void expand(struct rsp *r, uint8_t n)
{
    if (r->len == 0 || n < 29 + 3 || n > 126) {
        r->malformed = true;
        return;
    }
    uint8_t prev = r->pkt[r->len - 1];
    for (int i = 0; i < n - 29 && !r->too_long; i++)
        store(r, prev);
}

static enum rsp_event data_byte(struct rsp *r, uint8_t c)
{
    if (c == '$') { /* the previous packet was cut short */
        start_packet(r);
        return RSP_EV_NONE;
    }
    if (c == '#') {
        r->state = ST_CSUM1;
        return RSP_EV_NONE;
    }
    r->sum += c;
    if (r->rle) {
        r->rle = false;
        expand(r, c);
    } else if (r->esc) {
        r->esc = false;
        store(r, c ^ 0x20);
    } else if (c == 0x7d) {
        r->esc = true;
    } else if (c == '*') {
        r->rle = true;
    } else {
        store(r, c);
    }
    return RSP_EV_NONE;
}

static void send_ack(struct rsp *r, char c)
{
    if (!r->noack)
        r->write(r->ctx, &c, 1);
}

static enum rsp_event end_packet(struct rsp *r, int lo)
{
    r->state = ST_IDLE;
    if (r->csum_bad || lo < 0 || (uint8_t)(r->sent_sum << 4 | lo) != r->sum) {
        send_ack(r, '-');
        r->len = 0;
        r->pkt[0] = '\0';
        return RSP_EV_BAD_CHECKSUM;
    }
    send_ack(r, '+');
    r->pkt[r->len] = '\0';
    if (r->esc || r->rle)
        r->malformed = true;
    if (r->too_long || r->malformed) {
        r->why = r->too_long ? "packet too long" : "malformed packet";
        r->len = 0;
        r->pkt[0] = '\0';
        return RSP_EV_DROPPED;
    }
    return RSP_EV_PACKET;
}

static enum rsp_event idle_byte(struct rsp *r, uint8_t c)
{
    switch (c) {
    case '$':
        start_packet(r);
        return RSP_EV_NONE;
    case '+':
        return RSP_EV_ACK;
    case '-':
        if (!r->noack && r->last.len)
            r->write(r->ctx, r->last.p, r->last.len);
        return RSP_EV_NAK;
    case 0x03:
        return RSP_EV_INTERRUPT;
    default: /* line noise between packets */
        return RSP_EV_NONE;
    }
}

enum rsp_event rsp_feed(struct rsp *r, uint8_t c)
{
    switch (r->state) {
    case ST_DATA:
        return data_byte(r, c);
    case ST_CSUM1: {
        int v = dbg_hexval(c);
        r->csum_bad = v < 0; /* the packet still ends after one more byte */
        r->sent_sum = (uint8_t)(v < 0 ? 0 : v);
        r->state = ST_CSUM2;
        return RSP_EV_NONE;
    }
    case ST_CSUM2:
        return end_packet(r, dbg_hexval(c));
    default:
        return idle_byte(r, c);
    }
}

const uint8_t *rsp_packet(const struct rsp *r, size_t *len)
{
    *len = r->len;
    return r->pkt;
}

int rsp_send(struct rsp *r, const void *payload, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = payload;
    uint8_t sum = 0;
    struct dbg_buf *f = &r->last;

    dbg_buf_clear(f);
    dbg_buf_putc(f, '$');
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (c == '$' || c == '#' || c == 0x7d || c == '*') {
            dbg_buf_putc(f, 0x7d);
            sum += 0x7d;
            c ^= 0x20;
        }
        dbg_buf_putc(f, (char)c);
        sum += c;
    }
    dbg_buf_putc(f, '#');
    dbg_buf_putc(f, digits[sum >> 4]);
    dbg_buf_putc(f, digits[sum & 15]);
    if (f->oom) {
        dbg_buf_clear(f);
        return -ENOMEM;
    }
    return r->write(r->ctx, f->p, f->len);
}
