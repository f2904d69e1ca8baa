/*
 * dev_rtc.c — the MC146818 CMOS clock at 0x70 (index; bit 7 = NMI off)
 * and 0x71 (data).  Time registers (0-9, century 0x32) read the host's
 * wall clock through the host door, in UTC, in the format register B asks
 * for (BCD or binary, 24 or 12 hours).  Register A reads 0x26 with UIP
 * clear; C reads (and clears) 0; D reads 0x80 (valid).  The other bytes are
 * plain CMOS RAM.  Writes to the time registers are stored but do not set
 * the clock (the guest's clock always follows the host's); periodic,
 * alarm and update interrupts (IRQ8) are not generated.
 */
#include <string.h>
#include <time.h>

#include "vmm/vmm_int.h"

#define REG_A 0x0a
#define REG_B 0x0b
#define REG_C 0x0c
#define REG_D 0x0d
#define B_BINARY 0x04
#define B_24H 0x02

static uint8_t fmt(const struct dev_rtc *r, unsigned v)
{
    if (r->ram[REG_B] & B_BINARY)
        return (uint8_t)v;
    return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static uint8_t hour_reg(const struct dev_rtc *r, unsigned h)
{
    if (r->ram[REG_B] & B_24H)
        return fmt(r, h);
    unsigned h12 = h % 12 ? h % 12 : 12;
    return (uint8_t)(fmt(r, h12) | (h >= 12 ? 0x80 : 0));
}

static uint8_t time_reg(struct dev_bus *b, unsigned idx)
{
    const struct dev_rtc *r = &b->rtc;
    time_t t = (time_t)b->host->wall_clock_s(b->host_ctx);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof tm);
    switch (idx) {
    case 0x00: return fmt(r, (unsigned)tm.tm_sec);
    case 0x02: return fmt(r, (unsigned)tm.tm_min);
    case 0x04: return hour_reg(r, (unsigned)tm.tm_hour);
    case 0x06: return fmt(r, (unsigned)tm.tm_wday + 1);
    case 0x07: return fmt(r, (unsigned)tm.tm_mday);
    case 0x08: return fmt(r, (unsigned)tm.tm_mon + 1);
    case 0x09: return fmt(r, (unsigned)(tm.tm_year % 100));
    default: return fmt(r, (unsigned)(1900 + tm.tm_year) / 100); /* 0x32 */
    }
}

static bool is_time(unsigned idx)
{
    return idx == 0 || idx == 2 || idx == 4 || (idx >= 6 && idx <= 9) ||
           idx == 0x32;
}

static uint8_t data_read(struct dev_bus *b)
{
    struct dev_rtc *r = &b->rtc;
    unsigned idx = r->index;
    if (is_time(idx))
        return time_reg(b, idx);
    switch (idx) {
    case REG_A: return r->ram[REG_A] & 0x7f; /* UIP never set */
    case REG_C: return 0;
    case REG_D: return 0x80;
    default: return r->ram[idx];
    }
}

static void rtc_pio(struct dev_bus *b, uint16_t port, unsigned size,
                    bool write, uint32_t *val)
{
    (void)size;
    struct dev_rtc *r = &b->rtc;
    if (port == 0x70) {
        if (write) {
            r->index = *val & 0x7f;
            r->nmi_disabled = (*val >> 7) & 1;
        } else {
            *val = 0xff; /* the index register is write-only */
        }
        return;
    }
    if (!write) {
        *val = data_read(b);
        return;
    }
    if (r->index == REG_C || r->index == REG_D)
        return;
    r->ram[r->index] = (uint8_t)*val;
}

static void rtc_reset(struct dev_bus *b)
{
    memset(&b->rtc, 0, sizeof b->rtc);
    b->rtc.ram[REG_A] = 0x26;
    b->rtc.ram[REG_B] = B_24H;
    b->rtc.ram[REG_D] = 0x80;
}

static size_t rtc_save(struct dev_bus *b, void *buf)
{
    if (buf)
        memcpy(buf, &b->rtc, sizeof b->rtc);
    return sizeof b->rtc;
}

static int rtc_restore(struct dev_bus *b, const void *buf, size_t len)
{
    if (len != sizeof b->rtc)
        return VMM_E_STATE;
    memcpy(&b->rtc, buf, len);
    b->rtc.index &= 0x7f;
    return 0;
}

const struct dev_ops dev_rtc_ops = {
    .name = "rtc",
    .ports = { { 0x70, 0x71 }, { 0, 0 } },
    .pio = rtc_pio,
    .reset = rtc_reset,
    .save = rtc_save,
    .restore = rtc_restore,
};
