/*
 * dev_pit.c — the 8254 timer (ports 0x40-0x43) and port 0x61's timer bits.
 *
 * Counters run from the host's monotonic clock (through the host door) at
 * 1.193182 MHz; nothing ticks in the background: a count is computed when
 * it is read, and the run loop asks dev_pit_update() for the next IRQ0
 * edge.  Channel 0 drives IRQ0 in modes 2 and 3 (periodic: one edge per
 * period; periods missed while the guest could not take them are merged
 * into one edge) and mode 0 (one edge at terminal count).  Supported:
 * control words, lo/hi/lo-hi access, counter latch, read-back of count and
 * status (OUT pin, null count, access mode, mode, BCD flag).  BCD counting
 * is not modelled (the flag is kept, counts are binary), nor are gates
 * (channel 2 always counts; port 0x61 bit 0 is only stored).
 */
#include <string.h>

#include "vmm/vmm_int.h"

#define PIT_HZ 1193182ull
#define NS 1000000000ull

static uint64_t now_ns(struct dev_bus *b)
{
    return b->host->clock_ns(b->host_ctx);
}

static uint64_t ticks_since(const struct dev_pit_chan *c, uint64_t now)
{
    if (now <= c->load_ns)
        return 0;
    return (uint64_t)((unsigned __int128)(now - c->load_ns) * PIT_HZ / NS);
}

/* ns after load_ns at which tick number t starts (rounded up). */
static uint64_t tick_ns(uint64_t t)
{
    return (uint64_t)(((unsigned __int128)t * NS + PIT_HZ - 1) / PIT_HZ);
}

static uint16_t count_at(const struct dev_pit_chan *c, uint64_t now)
{
    if (!c->armed)
        return (uint16_t)c->reload;
    uint64_t t = ticks_since(c, now);
    uint32_t n = c->reload;
    switch (c->mode) {
    case 2: return (uint16_t)(n - t % n);
    case 3: return (uint16_t)((n - (2 * t) % n) & ~1u);
    default: return (uint16_t)(n - t); /* modes 0, 1, 4, 5: wraps */
    }
}

static int out_at(const struct dev_pit_chan *c, uint64_t now)
{
    if (!c->armed)
        return c->mode != 0;
    uint64_t t = ticks_since(c, now);
    uint32_t n = c->reload;
    switch (c->mode) {
    case 0: return t >= n;
    case 2: return t % n != n - 1;
    case 3: return t % n < (n + 1) / 2;
    default: return 1;
    }
}

static void load(struct dev_bus *b, struct dev_pit_chan *c, uint16_t v)
{
    c->reload = v ? v : 65536;
    c->load_ns = now_ns(b);
    c->armed = 1;
    c->null_count = 0;
    c->irq_seq = 0;
}

static void latch_count(struct dev_bus *b, struct dev_pit_chan *c)
{
    if (c->latched)
        return;
    c->latch_val = count_at(c, now_ns(b));
    c->latched = c->rw == 3 ? 2 : 1;
}

static void latch_status(struct dev_bus *b, struct dev_pit_chan *c)
{
    if (c->status_latched)
        return;
    c->status = (uint8_t)(out_at(c, now_ns(b)) << 7 | c->null_count << 6 |
                          c->rw << 4 | c->mode << 1 | c->bcd);
    c->status_latched = 1;
}

static void control(struct dev_bus *b, uint8_t v)
{
    unsigned sc = v >> 6;
    if (sc == 3) { /* read-back */
        for (int i = 0; i < 3; i++) {
            if (!(v & (2u << i)))
                continue;
            if (!(v & 0x20))
                latch_count(b, &b->pit[i]);
            if (!(v & 0x10))
                latch_status(b, &b->pit[i]);
        }
        return;
    }
    struct dev_pit_chan *c = &b->pit[sc];
    unsigned rw = (v >> 4) & 3;
    if (rw == 0) {
        latch_count(b, c);
        return;
    }
    c->rw = rw;
    c->mode = (v >> 1) & 7;
    if (c->mode > 5)
        c->mode -= 4; /* 6, 7 are aliases of 2, 3 */
    c->bcd = v & 1;
    c->write_hi_next = c->read_hi_next = 0;
    c->latched = c->status_latched = 0;
    c->null_count = 1;
    c->armed = 0;
}

static void data_write(struct dev_bus *b, struct dev_pit_chan *c, uint8_t v)
{
    switch (c->rw) {
    case 1: load(b, c, v); break;
    case 2: load(b, c, (uint16_t)(v << 8)); break;
    case 3:
        if (!c->write_hi_next) {
            c->write_lo = v;
            c->write_hi_next = 1;
        } else {
            load(b, c, (uint16_t)(c->write_lo | v << 8));
            c->write_hi_next = 0;
        }
        break;
    }
}

static uint8_t byte_of(struct dev_pit_chan *c, uint16_t v)
{
    switch (c->rw) {
    case 1: return v & 0xff;
    case 2: return v >> 8;
    default:
        c->read_hi_next ^= 1;
        return c->read_hi_next ? v & 0xff : v >> 8;
    }
}

static uint8_t data_read(struct dev_bus *b, struct dev_pit_chan *c)
{
    if (c->status_latched) {
        c->status_latched = 0;
        return c->status;
    }
    if (c->latched) {
        uint8_t r = byte_of(c, c->latch_val);
        c->latched--;
        if (c->rw != 3)
            c->latched = 0;
        return r;
    }
    return byte_of(c, count_at(c, now_ns(b)));
}

static void pit_pio(struct dev_bus *b, uint16_t port, unsigned size,
                    bool write, uint32_t *val)
{
    (void)size;
    if (port == 0x61) {
        if (write) {
            b->pit_speaker = *val & 3;
            return;
        }
        uint64_t now = now_ns(b);
        *val = b->pit_speaker | (out_at(&b->pit[2], now) << 5) |
               (uint32_t)((now / 15085) & 1) << 4; /* refresh toggle */
        return;
    }
    if (port == 0x43) {
        if (write)
            control(b, (uint8_t)*val);
        else
            *val = 0xff; /* the control register is write-only */
        return;
    }
    struct dev_pit_chan *c = &b->pit[port - 0x40];
    if (write)
        data_write(b, c, (uint8_t)*val);
    else
        *val = data_read(b, c);
}

uint64_t dev_pit_update(struct dev_bus *b, uint64_t now)
{
    struct dev_pit_chan *c = &b->pit[0];
    if (!c->armed)
        return UINT64_MAX;
    uint64_t t = ticks_since(c, now);
    if (c->mode == 2 || c->mode == 3) {
        uint64_t periods = t / c->reload;
        if (periods > c->irq_seq) {
            dev_pic_set_irq(b, 0, 1);
            dev_pic_set_irq(b, 0, 0);
            c->irq_seq = periods;
        }
        return c->load_ns + tick_ns((periods + 1) * c->reload);
    }
    if (c->mode == 0 && !c->irq_seq) {
        if (t >= c->reload) {
            dev_pic_set_irq(b, 0, 1);
            dev_pic_set_irq(b, 0, 0);
            c->irq_seq = 1;
            return UINT64_MAX;
        }
        return c->load_ns + tick_ns(c->reload);
    }
    return UINT64_MAX;
}

static void pit_reset(struct dev_bus *b)
{
    memset(b->pit, 0, sizeof b->pit);
    for (int i = 0; i < 3; i++) {
        b->pit[i].reload = 65536;
        b->pit[i].rw = 3;
        b->pit[i].gate = i != 2;
    }
    b->pit_speaker = 0;
}

/* Saved with load times made relative to now, so a restore in another
 * process (another clock origin) keeps each count's phase. */
struct pit_saved {
    struct dev_pit_chan ch[3];
    uint8_t speaker, pad[7];
};

static size_t pit_save(struct dev_bus *b, void *buf)
{
    if (!buf)
        return sizeof(struct pit_saved);
    struct pit_saved s;
    memset(&s, 0, sizeof s);
    uint64_t now = now_ns(b);
    memcpy(s.ch, b->pit, sizeof s.ch);
    for (int i = 0; i < 3; i++)
        s.ch[i].load_ns = now > b->pit[i].load_ns ? now - b->pit[i].load_ns
                                                  : 0;
    s.speaker = b->pit_speaker;
    memcpy(buf, &s, sizeof s);
    return sizeof s;
}

static int pit_restore(struct dev_bus *b, const void *buf, size_t len)
{
    struct pit_saved s;
    if (len != sizeof s)
        return VMM_E_STATE;
    memcpy(&s, buf, sizeof s);
    uint64_t now = now_ns(b);
    for (int i = 0; i < 3; i++) {
        if (s.ch[i].reload == 0 || s.ch[i].reload > 65536 ||
            s.ch[i].mode > 5 || s.ch[i].rw > 3)
            return VMM_E_STATE;
        s.ch[i].load_ns = now > s.ch[i].load_ns ? now - s.ch[i].load_ns : 0;
    }
    memcpy(b->pit, s.ch, sizeof s.ch);
    b->pit_speaker = s.speaker;
    return 0;
}

const struct dev_ops dev_pit_ops = {
    .name = "pit",
    .ports = { { 0x40, 0x43 }, { 0x61, 0x61 } },
    .pio = pit_pio,
    .reset = pit_reset,
    .save = pit_save,
    .restore = pit_restore,
};
