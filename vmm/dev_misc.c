/*
 * dev_misc.c — the two one-port devices.
 *
 * debug-exit (0xF4), like QEMU's isa-debug-exit: a write of v (masked to
 * the access size) ends the run with exit status (v << 1) | 1.  Reads give
 * all ones.
 *
 * random-number port (0x600): every read returns fresh random bits from
 * the host door's random32 — a 32-bit `inl` gives all 32 bits, `inw` and
 * `inb` the low 16 or 8 bits of a fresh 32-bit value.  Writes are
 * ignored.  Under recording the values are logged like any port read, so
 * a replay sees the same numbers.
 */
#include <string.h>

#include "vmm/vmm_int.h"

static uint32_t size_mask(unsigned size)
{
    return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

static void exit_pio(struct dev_bus *b, uint16_t port, unsigned size,
                     bool write, uint32_t *val)
{
    (void)port;
    if (!write) {
        *val = size_mask(size);
        return;
    }
    b->exit.requested = 1;
    b->exit.status = ((*val & size_mask(size)) << 1) | 1;
}

static void exit_reset(struct dev_bus *b) { memset(&b->exit, 0, sizeof b->exit); }

static size_t exit_save(struct dev_bus *b, void *buf)
{
    if (buf)
        memcpy(buf, &b->exit, sizeof b->exit);
    return sizeof b->exit;
}

static int exit_restore(struct dev_bus *b, const void *buf, size_t len)
{
    if (len != sizeof b->exit)
        return VMM_E_STATE;
    memcpy(&b->exit, buf, len);
    return 0;
}

const struct dev_ops dev_exit_ops = {
    .name = "dbgexit",
    .ports = { { 0xf4, 0xf4 }, { 0, 0 } },
    .pio = exit_pio,
    .reset = exit_reset,
    .save = exit_save,
    .restore = exit_restore,
};

static void rng_pio(struct dev_bus *b, uint16_t port, unsigned size,
                    bool write, uint32_t *val)
{
    (void)port;
    if (!write)
        *val = b->host->random32(b->host_ctx) & size_mask(size);
}

static void rng_reset(struct dev_bus *b) { (void)b; }

static size_t rng_save(struct dev_bus *b, void *buf)
{
    (void)b;
    (void)buf;
    return 0; /* stateless */
}

static int rng_restore(struct dev_bus *b, const void *buf, size_t len)
{
    (void)b;
    (void)buf;
    return len ? VMM_E_STATE : 0;
}

const struct dev_ops dev_rng_ops = {
    .name = "rng",
    .ports = { { 0x600, 0x600 }, { 0, 0 } },
    .pio = rng_pio,
    .reset = rng_reset,
    .save = rng_save,
    .restore = rng_restore,
};
