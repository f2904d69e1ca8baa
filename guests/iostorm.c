/*
 * iostorm — many port accesses: each iteration writes the UART scratch
 * register and reads it back, selects a CMOS clock register and reads it.
 *
 * Parameters: n=N iterations (default 25000, i.e. 100000 port accesses),
 * ring=0|3 (default 0, where kernels do their I/O; 3: a task with the
 * ports in its I/O bitmap, which under kvm-pvm costs twice as much per
 * access: a #GP, the bitmap check, then the exit).
 * Output (fixed for given parameters when the devices behave):
 *   iostorm: ring=0 iterations=25000 port accesses=100000
 *   iostorm: scratch mismatches=0, clock values out of range=0
 *   iostorm: ok
 * Exit value 0 (status 1), 1 when a read-back or a clock value is wrong.
 */
#include "sdk.h"
#include "user.h"

#define UART_SCR (PORT_COM1 + 7)
#define RTC_STATUS_B 0x0b
#define RTC_BINARY 0x04 /* status B: values in binary, not BCD */
#define RTC_24H 0x02

struct storm {
    uint64_t iterations;
    uint64_t mismatches, bad_clock;
};

static unsigned from_bcd(uint8_t v, bool binary)
{
    return binary ? v : (unsigned)(v >> 4) * 10 + (v & 15);
}

/* Whether v is a plausible value of CMOS clock register reg. */
static bool clock_ok(uint8_t reg, uint8_t v, uint8_t status_b)
{
    bool binary = status_b & RTC_BINARY;

    if (!binary && ((v & 15) > 9 || ((v >> 4) & 7) > 9))
        return false;
    switch (reg) {
    case 0: /* seconds */
    case 2: /* minutes */
        return from_bcd(v, binary) < 60;
    default: /* hours; bit 7 is PM in 12-hour mode */
        if (!(status_b & RTC_24H)) {
            unsigned h = from_bcd(v & 0x7f, binary);
            return h >= 1 && h <= 12;
        }
        return from_bcd(v, binary) < 24;
    }
}

/* Runs in ring 0 or ring 3: only port I/O and integer code. */
static void storm_run(struct storm *s)
{
    static const uint8_t regs[3] = {0, 2, 4};
    uint8_t status_b;

    outb(PORT_CMOS_INDEX, RTC_STATUS_B);
    status_b = inb(PORT_CMOS_DATA);
    for (uint64_t i = 0; i < s->iterations; i++) {
        uint8_t v = (uint8_t)(i * 37 + 11), reg = regs[i % 3];

        outb(UART_SCR, v);
        if (inb(UART_SCR) != v)
            s->mismatches++;
        outb(PORT_CMOS_INDEX, reg);
        if (!clock_ok(reg, inb(PORT_CMOS_DATA), status_b))
            s->bad_clock++;
    }
}

static long storm_task(void *arg)
{
    storm_run(arg);
    return 0;
}

int guest_main(void)
{
    struct storm s = {.iterations = sdk_arg_u64("n", 25000)};
    bool ring0 = !sdk_arg_is("ring", "3");
    bool ok;

    sdk_printf("iostorm: ring=%d iterations=%lu port accesses=%lu\n",
               ring0 ? 0 : 3, s.iterations, s.iterations * 4);
    if (ring0) {
        storm_run(&s);
    } else {
        sdk_io_allow(UART_SCR, 1);
        sdk_io_allow(PORT_CMOS_INDEX, 2);
        if (sdk_task_run(storm_task, &s) != 0)
            return 1;
    }
    ok = s.mismatches == 0 && s.bad_clock == 0;
    sdk_printf("iostorm: scratch mismatches=%lu, clock values out of "
               "range=%lu\n",
               s.mismatches, s.bad_clock);
    sdk_printf("iostorm: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
