/*
 * test_devices.c — device register behaviour without KVM: the bus is
 * driven through dev_bus_pio with a fake host (a clock the test moves, a
 * fixed wall clock, serial input from a string, output into a buffer, a
 * counter for random numbers), and checked against the 16550, 8259, 8254
 * and MC146818 datasheet behaviour.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "vmm/vmm_int.h"

struct fake {
    uint64_t now;
    int64_t wall;
    const char *in;
    size_t in_pos;
    char out[256];
    size_t out_len;
    uint32_t rnd;
    int reports;
};

static uint64_t f_clock(void *c) { return ((struct fake *)c)->now; }
static int64_t f_wall(void *c) { return ((struct fake *)c)->wall; }
static int f_read(void *c, uint8_t *b)
{
    struct fake *f = c;
    if (!f->in)
        return 0;
    if (!f->in[f->in_pos])
        return -1;
    *b = (uint8_t)f->in[f->in_pos++];
    return 1;
}
static void f_write(void *c, uint8_t b)
{
    struct fake *f = c;
    if (f->out_len < sizeof f->out - 1)
        f->out[f->out_len++] = (char)b;
}
static uint32_t f_random(void *c) { return ((struct fake *)c)->rnd += 0x01010101u; }
static void f_report(void *c, const char *msg)
{
    (void)msg;
    ((struct fake *)c)->reports++;
}

static const struct vmm_host_ops fake_ops = {
    f_clock, f_wall, f_read, f_write, f_random,
};

static struct fake fk;
static struct dev_bus bus;

static void setup(void)
{
    memset(&fk, 0, sizeof fk);
    fk.now = 1000000000ull;
    fk.wall = 1709214356; /* 2024-02-29 13:45:56 UTC, a Thursday */
    dev_bus_init(&bus, &fake_ops, &fk);
    bus.report = f_report;
    bus.report_ctx = &fk;
}

/* dev_bus_pio asks to stop (1) exactly when the guest requested its exit
 * or an interrupt is pending after the access. */
static void check_rc(int rc)
{
    int want = bus.exit.requested || dev_pic_pending(&bus) ? 1 : 0;
    cr_assert_eq(rc, want, "dev_bus_pio returned %d", rc);
}

static uint32_t in(uint16_t port, unsigned size)
{
    uint32_t v = 0xdeadbeef;
    check_rc(dev_bus_pio(&bus, port, size, false, &v));
    return v;
}
static uint8_t inb(uint16_t port) { return (uint8_t)in(port, 1); }
static void outb(uint16_t port, uint8_t v)
{
    uint32_t x = v;
    check_rc(dev_bus_pio(&bus, port, 1, true, &x));
}

TestSuite(uart, .init = setup);
TestSuite(pic, .init = setup);
TestSuite(pit, .init = setup);
TestSuite(rtc, .init = setup);
TestSuite(misc, .init = setup);
TestSuite(state, .init = setup);

/* ---- UART ---- */

Test(uart, transmit_and_reset_values)
{
    cr_assert_eq(inb(0x3fd), 0x60, "LSR: THR and transmitter empty");
    cr_assert_eq(inb(0x3fe), 0xb0, "MSR: DCD DSR CTS");
    cr_assert_eq(inb(0x3fa), 0x01, "IIR: no interrupt, FIFO off");
    outb(0x3f8, 'h');
    outb(0x3f8, 'i');
    cr_assert_eq(fk.out_len, 2);
    cr_assert_eq(memcmp(fk.out, "hi", 2), 0);
    outb(0x3ff, 0x5a);
    cr_assert_eq(inb(0x3ff), 0x5a, "scratch register");
}

Test(uart, divisor_latch)
{
    outb(0x3fb, 0x83); /* DLAB, 8N1 */
    outb(0x3f8, 0x01);
    outb(0x3f9, 0x02);
    cr_assert_eq(inb(0x3f8), 0x01);
    cr_assert_eq(inb(0x3f9), 0x02);
    cr_assert_eq(fk.out_len, 0, "DLL write is not a transmit");
    outb(0x3fb, 0x03);
    cr_assert_eq(inb(0x3f9), 0x00, "IER visible again");
    cr_assert_eq(inb(0x3fb), 0x03);
}

Test(uart, loopback)
{
    outb(0x3fc, 0x10 | 0x03); /* loop, RTS, DTR */
    outb(0x3f8, 'x');
    cr_assert_eq(fk.out_len, 0, "loopback keeps TX off the line");
    cr_assert_eq(inb(0x3fd) & 1, 1, "data ready");
    cr_assert_eq(inb(0x3f8), 'x');
    cr_assert_eq(inb(0x3fd) & 1, 0);
    cr_assert_eq(inb(0x3fe) & 0x30, 0x30, "CTS/DSR follow RTS/DTR");
}

Test(uart, receive_polled_and_interrupt)
{
    fk.in = "ab";
    cr_assert_eq(inb(0x3fd) & 1, 1, "LSR pulls input");
    cr_assert_eq(inb(0x3f8), 'a');
    /* interrupt-driven: unmask IRQ4 at an initialised PIC */
    outb(0x20, 0x11); outb(0x21, 0x20); outb(0x21, 0x04); outb(0x21, 0x01);
    outb(0x21, 0xef);
    outb(0x3f9, 0x01); /* ERBFI */
    dev_uart_poll(&bus);
    cr_assert_eq(inb(0x3fa), 0x04, "IIR: received data");
    cr_assert(dev_pic_pending(&bus));
    cr_assert_eq(dev_pic_ack(&bus), 0x24);
    cr_assert_eq(inb(0x3f8), 'b');
    cr_assert_eq(inb(0x3fa), 0x01);
    cr_assert_eq(dev_uart_poll(&bus), false, "input ended");
    cr_assert_eq(inb(0x3fd) & 1, 0);
}

Test(uart, fifo_trigger_and_timeout_iir)
{
    fk.in = "abc";
    outb(0x3fa, 0xc1); /* FIFO on, trigger 14 */
    outb(0x3f9, 0x01);
    dev_uart_poll(&bus);
    cr_assert_eq(inb(0x3fa), 0xcc, "3 < 14 bytes: character timeout");
    outb(0x3fa, 0x07); /* trigger 1, clear FIFOs */
    cr_assert_eq(inb(0x3fd) & 1, 0, "FIFO cleared");
}

Test(uart, thr_empty_interrupt)
{
    outb(0x3f9, 0x02); /* ETBEI with THR empty */
    cr_assert_eq(inb(0x3fa), 0x02);
    cr_assert_eq(inb(0x3fa), 0x01, "reading IIR cleared it");
    outb(0x3f8, 'z');
    cr_assert_eq(inb(0x3fa), 0x02, "sent: empty again");
}

/* ---- PIC ---- */

static void pic_init(void)
{
    outb(0x20, 0x11); outb(0xa0, 0x11);
    outb(0x21, 0x20); outb(0xa1, 0x28);
    outb(0x21, 0x04); outb(0xa1, 0x02);
    outb(0x21, 0x01); outb(0xa1, 0x01);
    outb(0x21, 0x00); outb(0xa1, 0x00);
}

Test(pic, reset_masks_everything)
{
    cr_assert_eq(inb(0x21), 0xff);
    cr_assert_eq(inb(0xa1), 0xff);
    dev_pic_set_irq(&bus, 0, 1);
    cr_assert(!dev_pic_pending(&bus));
}

Test(pic, ack_isr_eoi)
{
    pic_init();
    dev_pic_set_irq(&bus, 0, 1);
    dev_pic_set_irq(&bus, 0, 0);
    cr_assert(dev_pic_pending(&bus));
    outb(0x20, 0x0a); /* OCW3: read IRR */
    cr_assert_eq(inb(0x20), 0x01);
    cr_assert_eq(dev_pic_ack(&bus), 0x20);
    cr_assert(!dev_pic_pending(&bus));
    outb(0x20, 0x0b); /* read ISR */
    cr_assert_eq(inb(0x20), 0x01);
    dev_pic_set_irq(&bus, 0, 1);
    cr_assert(!dev_pic_pending(&bus), "in service blocks the same level");
    outb(0x20, 0x20); /* EOI */
    cr_assert_eq(inb(0x20), 0x00);
    cr_assert(dev_pic_pending(&bus));
}

Test(pic, priority_and_mask)
{
    pic_init();
    dev_pic_set_irq(&bus, 3, 1);
    dev_pic_set_irq(&bus, 1, 1);
    cr_assert_eq(dev_pic_ack(&bus), 0x21, "IRQ1 before IRQ3");
    cr_assert(!dev_pic_pending(&bus), "IRQ3 waits for IRQ1's EOI");
    outb(0x20, 0x61); /* specific EOI for IRQ1 */
    outb(0x21, 0x08); /* mask IRQ3 */
    cr_assert(!dev_pic_pending(&bus));
    outb(0x21, 0x00);
    cr_assert_eq(dev_pic_ack(&bus), 0x23);
}

Test(pic, slave_cascade)
{
    pic_init();
    dev_pic_set_irq(&bus, 10, 1);
    cr_assert(dev_pic_pending(&bus));
    cr_assert_eq(dev_pic_ack(&bus), 0x2a);
    outb(0x20, 0x0b);
    cr_assert_eq(inb(0x20), 0x04, "master ISR: cascade line");
    outb(0xa0, 0x0b);
    cr_assert_eq(inb(0xa0), 0x04, "slave ISR: IRQ10");
}

Test(pic, spurious_and_poll_and_auto_eoi)
{
    pic_init();
    cr_assert_eq(dev_pic_ack(&bus), 0x27, "nothing pending: spurious IRQ7");
    outb(0x20, 0x0b);
    cr_assert_eq(inb(0x20), 0, "spurious sets no ISR bit");
    dev_pic_set_irq(&bus, 5, 1);
    outb(0x20, 0x0c); /* poll */
    cr_assert_eq(inb(0x20), 0x85);
    outb(0x20, 0x20);
    /* auto-EOI (ICW4 bit 1) */
    outb(0x20, 0x11); outb(0x21, 0x20); outb(0x21, 0x04); outb(0x21, 0x03);
    outb(0x21, 0x00);
    dev_pic_set_irq(&bus, 6, 0);
    dev_pic_set_irq(&bus, 6, 1);
    cr_assert_eq(dev_pic_ack(&bus), 0x26);
    outb(0x20, 0x0b);
    cr_assert_eq(inb(0x20), 0, "auto-EOI leaves ISR clear");
}

/* ---- PIT ---- */

#define TICK_NS(n) ((uint64_t)(n) * 1000000000ull / 1193182ull)

Test(pit, mode2_count_latch_and_irq0)
{
    pic_init();
    outb(0x43, 0x34); /* ch0, lo/hi, mode 2 */
    outb(0x40, 0xe8);
    outb(0x40, 0x03); /* 1000 */
    uint64_t t0 = fk.now;
    cr_assert_eq(dev_pit_update(&bus, fk.now), t0 + TICK_NS(1000) + 1,
                 "next edge after one period");
    fk.now = t0 + TICK_NS(100) + 10;
    outb(0x43, 0x00); /* latch */
    fk.now += TICK_NS(500); /* the latch holds its value */
    unsigned lo = inb(0x40), hi = inb(0x40);
    cr_assert_eq(lo | hi << 8, 900);
    cr_assert(!dev_pic_pending(&bus));
    fk.now = t0 + TICK_NS(1001);
    dev_pit_update(&bus, fk.now);
    cr_assert(dev_pic_pending(&bus), "IRQ0 after a period");
    cr_assert_eq(dev_pic_ack(&bus), 0x20);
}

Test(pit, read_back_status_and_count)
{
    outb(0x43, 0x36); /* ch0, lo/hi, mode 3 */
    outb(0x40, 0x00);
    outb(0x40, 0x10); /* 4096 */
    fk.now += TICK_NS(10) + 10;
    outb(0x43, 0xc2); /* read-back: count and status of ch0 */
    uint8_t status = inb(0x40);
    cr_assert_eq(status & 0x7f, 0x36, "rw=3 mode=3 binary, counted");
    cr_assert(status & 0x80, "mode 3 output high in the first half");
    unsigned lo = inb(0x40), hi = inb(0x40);
    unsigned c = lo | hi << 8;
    cr_assert_eq(c, 4096 - 20, "mode 3 counts by two");
}

/* First ns at which tick n has begun (the device rounds up too). */
#define EDGE_NS(n) (((uint64_t)(n) * 1000000000ull + 1193181ull) / 1193182ull)

static bool pit0_out(void)
{
    outb(0x43, 0xe2); /* read-back: status of ch0 only */
    return inb(0x40) & 0x80;
}

/* Mode 3 (square wave): OUT is high for the first half of each period
 * and low for the second; IRQ0 is edge-triggered, so it is raised by each
 * low-to-high transition, once per period, never at the half period.  An
 * odd count keeps the period: high (N+1)/2 ticks, low (N-1)/2. */
static void mode3_edges(uint16_t n)
{
    setup();
    pic_init();
    outb(0x43, 0x36); /* ch0, lo/hi, mode 3 */
    outb(0x40, n & 0xff);
    outb(0x40, n >> 8);
    uint64_t t0 = fk.now;
    cr_assert_eq(dev_pit_update(&bus, t0), t0 + EDGE_NS(n),
                 "first edge one period after the load");
    for (unsigned k = 1; k <= 3; k++) {
        uint64_t base = t0 + EDGE_NS((uint64_t)(k - 1) * n);
        fk.now = base + EDGE_NS(n / 4);
        dev_pit_update(&bus, fk.now);
        cr_assert(pit0_out(), "period %u: high in the first half", k);
        fk.now = t0 + EDGE_NS((uint64_t)(k - 1) * n + (n + 1) / 2) + 1;
        dev_pit_update(&bus, fk.now);
        cr_assert(!pit0_out(), "period %u: low in the second half", k);
        cr_assert(!dev_pic_pending(&bus), "no IRQ0 at the falling edge");
        fk.now = t0 + EDGE_NS((uint64_t)k * n) - 1;
        dev_pit_update(&bus, fk.now);
        cr_assert(!dev_pic_pending(&bus), "period %u: not before its end", k);
        fk.now = t0 + EDGE_NS((uint64_t)k * n);
        cr_assert_eq(dev_pit_update(&bus, fk.now),
                     t0 + EDGE_NS((uint64_t)(k + 1) * n), "next edge");
        cr_assert(pit0_out(), "period %u: rising edge", k);
        cr_assert(dev_pic_pending(&bus), "IRQ0 at the end of period %u", k);
        cr_assert_eq(dev_pic_ack(&bus), 0x20);
        outb(0x20, 0x20); /* EOI */
        dev_pit_update(&bus, fk.now);
        cr_assert(!dev_pic_pending(&bus), "one IRQ0 per period");
    }
}

Test(pit, mode3_irq0_at_each_period)
{
    mode3_edges(1000);
    mode3_edges(1001);
    mode3_edges(2);
}

Test(pit, mode0_one_shot)
{
    pic_init();
    outb(0x43, 0x30);
    outb(0x40, 100);
    outb(0x40, 0);
    fk.now += TICK_NS(101);
    dev_pit_update(&bus, fk.now);
    cr_assert_eq(dev_pic_ack(&bus), 0x20);
    outb(0x20, 0x20);
    fk.now += TICK_NS(1000);
    cr_assert_eq(dev_pit_update(&bus, fk.now), UINT64_MAX);
    cr_assert(!dev_pic_pending(&bus), "one shot");
}

/* ---- RTC ---- */

static uint8_t cmos(uint8_t idx)
{
    outb(0x70, idx);
    return inb(0x71);
}

Test(rtc, bcd_binary_12h)
{
    cr_assert_eq(cmos(0x00), 0x56);
    cr_assert_eq(cmos(0x02), 0x45);
    cr_assert_eq(cmos(0x04), 0x13);
    cr_assert_eq(cmos(0x06), 0x05, "Thursday");
    cr_assert_eq(cmos(0x07), 0x29);
    cr_assert_eq(cmos(0x08), 0x02);
    cr_assert_eq(cmos(0x09), 0x24);
    cr_assert_eq(cmos(0x32), 0x20);
    cr_assert_eq(cmos(0x0a) & 0x80, 0, "no update in progress");
    cr_assert_eq(cmos(0x0d), 0x80);
    outb(0x70, 0x0b);
    outb(0x71, 0x06); /* binary, 24 h */
    cr_assert_eq(cmos(0x00), 56);
    cr_assert_eq(cmos(0x09), 24);
    outb(0x70, 0x0b);
    outb(0x71, 0x04); /* binary, 12 h */
    cr_assert_eq(cmos(0x04), 0x81, "1 PM");
    fk.wall += 60;
    cr_assert_eq(cmos(0x02), 46, "follows the host clock");
    outb(0x70, 0x40);
    outb(0x71, 0x77);
    cr_assert_eq(cmos(0x40), 0x77, "CMOS RAM");
}

/* ---- debug-exit, random port, unknown ports ---- */

Test(misc, debug_exit)
{
    cr_assert_eq(bus.exit.requested, 0);
    uint32_t x = 0x21;
    cr_assert_eq(dev_bus_pio(&bus, 0xf4, 1, true, &x), 1,
                 "the exit write asks the backend to stop");
    cr_assert_eq(bus.exit.requested, 1);
    cr_assert_eq(bus.exit.status, 0x43);
}

Test(misc, random_port)
{
    cr_assert_eq(in(0x600, 4), 0x01010101u);
    cr_assert_eq(in(0x600, 4), 0x02020202u, "fresh value per read");
    cr_assert_eq(in(0x600, 1), 0x03u, "byte: low bits of a fresh value");
    cr_assert_eq(in(0x600, 2), 0x0404u);
}

Test(misc, unknown_ports)
{
    cr_assert_eq(in(0x1234, 1), 0xff);
    cr_assert_eq(in(0x1234, 2), 0xffff);
    cr_assert_eq(in(0x1234, 4), 0xffffffffu);
    outb(0x1234, 7);
    cr_assert_eq(fk.reports, 1, "reported once");
    outb(0x99, 7);
    cr_assert_eq(fk.reports, 2);
    uint64_t v = 0;
    cr_assert_eq(dev_bus_mmio(&bus, 1ull << 40, 8, false, &v), 0);
    cr_assert_eq(v, UINT64_MAX);
}

/* ---- save / restore ---- */

Test(state, round_trip)
{
    pic_init();
    outb(0x21, 0x5a);
    outb(0x43, 0x34);
    outb(0x40, 0x10);
    outb(0x40, 0x27);
    outb(0x3fb, 0x03);
    outb(0x3ff, 0x42);
    outb(0x70, 0x41);
    outb(0x71, 0x99);
    fk.now += TICK_NS(1234) + 10;
    outb(0x43, 0x00);
    long n = dev_bus_save(&bus, NULL, 0);
    cr_assert_gt(n, 0);
    uint8_t *buf = malloc((size_t)n);
    cr_assert_eq(dev_bus_save(&bus, buf, (size_t)n), n);
    cr_assert_eq(dev_bus_save(&bus, buf, (size_t)n - 1), VMM_E_ARG);
    struct dev_bus before = bus;

    /* a different process: other clock origin, fresh devices */
    setup();
    fk.now = 77000000000ull;
    cr_assert_eq(dev_bus_restore(&bus, buf, (size_t)n), 0);
    cr_assert_eq(memcmp(bus.pic, before.pic, sizeof bus.pic), 0);
    cr_assert_eq(memcmp(&bus.uart, &before.uart, sizeof bus.uart), 0);
    cr_assert_eq(memcmp(&bus.rtc, &before.rtc, sizeof bus.rtc), 0);
    cr_assert_eq(inb(0x21), 0x5a);
    cr_assert_eq(inb(0x3ff), 0x42);
    cr_assert_eq(cmos(0x41), 0x99);
    unsigned lo = inb(0x40), hi = inb(0x40);
    cr_assert_eq(lo | hi << 8, 10000 - 1234, "latched count survives: %u", lo | hi << 8);
    lo = inb(0x40), hi = inb(0x40);
    cr_assert_eq(lo | hi << 8, 10000 - 1234, "and the phase too");

    /* corrupt inputs leave the state alone */
    struct dev_bus good = bus;
    uint8_t *bad = malloc((size_t)n);
    memcpy(bad, buf, (size_t)n);
    bad[4] = 99; /* version */
    cr_assert_eq(dev_bus_restore(&bus, bad, (size_t)n), VMM_E_STATE);
    cr_assert_eq(dev_bus_restore(&bus, buf, (size_t)n - 8), VMM_E_STATE);
    cr_assert_eq(dev_bus_restore(&bus, buf, 3), VMM_E_STATE);
    memcpy(bad, buf, (size_t)n);
    bad[16] = 'X'; /* first device's name */
    cr_assert_eq(dev_bus_restore(&bus, bad, (size_t)n), VMM_E_STATE);
    cr_assert_eq(memcmp(&bus, &good, sizeof bus), 0);
    free(bad);
    free(buf);
}
