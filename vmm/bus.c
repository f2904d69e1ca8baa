/*
 * bus.c — the device bus: the explicit devices[] table (its order is the
 * order of reset, save and restore), port dispatch, what unknown ports and
 * non-RAM addresses do (reads all ones, writes ignored, each reported once
 * through the bus's report hook), and the versioned device-state format:
 *
 *   header  : "TTDV" magic, u32 version, u32 device count, u32 0
 *   per dev : char name[8], u32 length, u32 0, length bytes, zero padding
 *             to a multiple of 8
 *
 * Little-endian, in devices[] order; restore refuses anything else with
 * VMM_E_STATE and leaves the live state untouched.
 */
#include <stdio.h>
#include <string.h>

#include "vmm/vmm_int.h"

#define DEV_MAGIC 0x56445454u /* "TTDV" */
#define DEV_VERSION 1u
#define MMIO_REPORTS 16

static const struct dev_ops *const devices[] = {
    &dev_pic_ops, &dev_pit_ops, &dev_uart_ops,
    &dev_rtc_ops, &dev_exit_ops, &dev_rng_ops,
};
#define NDEV (sizeof devices / sizeof devices[0])

struct dev_hdr {
    uint32_t magic, version, count, zero;
};

struct dev_rec {
    char name[8];
    uint32_t len, zero;
};

void dev_bus_init(struct dev_bus *b, const struct vmm_host_ops *host,
                  void *host_ctx)
{
    memset(b, 0, sizeof *b);
    b->host = host;
    b->host_ctx = host_ctx;
    for (size_t i = 0; i < NDEV; i++)
        devices[i]->reset(b);
}

static const struct dev_ops *lookup(uint16_t port)
{
    for (size_t i = 0; i < NDEV; i++)
        for (int r = 0; r < 2; r++)
            if (devices[i]->ports[r].hi && port >= devices[i]->ports[r].lo &&
                port <= devices[i]->ports[r].hi)
                return devices[i];
    return NULL;
}

static void report(struct dev_bus *b, const char *msg)
{
    if (b->report)
        b->report(b->report_ctx, msg);
}

int dev_bus_pio(void *bus, uint16_t port, unsigned size, bool write,
                uint32_t *val)
{
    struct dev_bus *b = bus;
    const struct dev_ops *d = lookup(port);
    if (d) {
        d->pio(b, port, size, write, val);
        /* Stop after this instruction when the run loop has something to
         * do: the guest asked to exit, or an interrupt is now pending.
         * KVM stops at every port access anyway; the Unicorn backend
         * serves them without stopping unless told. */
        return b->exit.requested || dev_pic_pending(b) ? 1 : 0;
    }
    if (!write)
        *val = size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
    if (!(b->unknown_seen[port / 8] & (1u << (port % 8)))) {
        b->unknown_seen[port / 8] |= 1u << (port % 8);
        char msg[96];
        snprintf(msg, sizeof msg,
                 "guest %s unknown I/O port 0x%x (reads give all ones, "
                 "writes are ignored)",
                 write ? "wrote" : "read", port);
        report(b, msg);
    }
    return 0;
}

int dev_bus_mmio(void *bus, uint64_t gpa, unsigned size, bool write,
                 uint64_t *val)
{
    struct dev_bus *b = bus;
    if (!write)
        *val = size >= 8 ? UINT64_MAX : (1ull << (8 * size)) - 1;
    if (b->mmio_reported < MMIO_REPORTS) {
        char msg[128];
        b->mmio_reported++;
        snprintf(msg, sizeof msg,
                 "guest %s address 0x%llx outside RAM (reads give all ones, "
                 "writes are ignored)%s",
                 write ? "wrote" : "read", (unsigned long long)gpa,
                 b->mmio_reported == MMIO_REPORTS ? "; not reporting more"
                                                  : "");
        report(b, msg);
    }
    return 0;
}

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

long dev_bus_save(struct dev_bus *b, void *buf, size_t cap)
{
    size_t total = sizeof(struct dev_hdr);
    for (size_t i = 0; i < NDEV; i++)
        total += sizeof(struct dev_rec) + pad8(devices[i]->save(b, NULL));
    if (!buf)
        return (long)total;
    if (cap < total)
        return VMM_E_ARG;
    uint8_t *p = buf;
    memset(p, 0, total);
    struct dev_hdr h = { DEV_MAGIC, DEV_VERSION, NDEV, 0 };
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    for (size_t i = 0; i < NDEV; i++) {
        struct dev_rec r;
        memset(&r, 0, sizeof r);
        memcpy(r.name, devices[i]->name,
               strnlen(devices[i]->name, sizeof r.name));
        r.len = (uint32_t)devices[i]->save(b, p + sizeof r);
        memcpy(p, &r, sizeof r);
        p += sizeof r + pad8(r.len);
    }
    return (long)total;
}

/* Checks the whole buffer, then restores into a copy, then commits: a
 * malformed buffer never leaves the devices half restored. */
int dev_bus_restore(struct dev_bus *b, const void *buf, size_t len)
{
    const uint8_t *p = buf, *end = p + len;
    struct dev_hdr h;
    if (!buf || len < sizeof h)
        return VMM_E_STATE;
    memcpy(&h, p, sizeof h);
    if (h.magic != DEV_MAGIC || h.version != DEV_VERSION || h.count != NDEV)
        return VMM_E_STATE;
    p += sizeof h;
    static __thread struct dev_bus tmp;
    tmp = *b;
    for (size_t i = 0; i < NDEV; i++) {
        struct dev_rec r;
        if ((size_t)(end - p) < sizeof r)
            return VMM_E_STATE;
        memcpy(&r, p, sizeof r);
        p += sizeof r;
        if (strncmp(r.name, devices[i]->name, sizeof r.name) ||
            (size_t)(end - p) < pad8(r.len))
            return VMM_E_STATE;
        int rc = devices[i]->restore(&tmp, p, r.len);
        if (rc)
            return rc;
        p += pad8(r.len);
    }
    if (p != end)
        return VMM_E_STATE;
    *b = tmp; /* restore methods change only device state */
    return 0;
}
