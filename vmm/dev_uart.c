/*
 * dev_uart.c — 16550A UART on COM1 (0x3F8-0x3FF, IRQ4), as QEMU models it
 * where that matters to guests: all eight registers with DLAB, 16-byte RX
 * FIFO with trigger levels (FCR), IIR priorities (line status, RX data or
 * character timeout, THR empty, modem status), loopback (MCR bit 4), and
 * the interrupt line not gated by OUT2 (QEMU does not gate it either).
 * TX goes out at once (THR is always empty); RX bytes come from the host
 * door's serial_read, pulled when the guest looks (LSR, RBR) or when the
 * run loop polls (dev_uart_poll) with the RX interrupt enabled.
 */
#include <string.h>

#include "vmm/vmm_int.h"

#define IER_RX 0x01
#define IER_THR 0x02
#define IER_LS 0x04
#define IER_MS 0x08
#define LSR_DR 0x01
#define LSR_ERR 0x1e
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_LOOP 0x10
#define DLAB 0x80

static const uint8_t trigger[4] = { 1, 4, 8, 14 };

static uint8_t iir_source(const struct dev_uart *u)
{
    if ((u->ier & IER_LS) && (u->lsr & LSR_ERR))
        return 0x06;
    if ((u->ier & IER_RX) && u->rx_count) {
        bool fifo = u->fcr & 1;
        return fifo && u->rx_count < trigger[u->fcr >> 6] ? 0x0c : 0x04;
    }
    if ((u->ier & IER_THR) && u->thr_ipending)
        return 0x02;
    if ((u->ier & IER_MS) && (u->msr & 0x0f))
        return 0x00;
    return 0x01;
}

static void update_irq(struct dev_bus *b)
{
    struct dev_uart *u = &b->uart;
    u->lsr = (uint8_t)((u->lsr & ~LSR_DR) | (u->rx_count ? LSR_DR : 0));
    u->irq_line = iir_source(u) != 0x01;
    dev_pic_set_irq(b, 4, u->irq_line);
}

static void rx_push(struct dev_uart *u, uint8_t c)
{
    if (u->rx_count == DEV_UART_FIFO) {
        u->lsr |= 0x02; /* overrun */
        return;
    }
    u->rbr_fifo[(u->rx_head + u->rx_count) % DEV_UART_FIFO] = c;
    u->rx_count++;
}

/* Takes one byte from the host when the FIFO has room.  true if it did. */
static bool rx_pull(struct dev_bus *b)
{
    struct dev_uart *u = &b->uart;
    if (u->rx_eof || u->rx_count == DEV_UART_FIFO || (u->mcr & MCR_LOOP))
        return false;
    uint8_t c;
    int r = b->host->serial_read(b->host_ctx, &c);
    if (r < 0)
        u->rx_eof = 1;
    if (r != 1)
        return false;
    rx_push(u, c);
    return true;
}

bool dev_uart_poll(struct dev_bus *b)
{
    struct dev_uart *u = &b->uart;
    if (!(u->ier & IER_RX))
        return false;
    bool got = false;
    while (rx_pull(b))
        got = true;
    if (got)
        update_irq(b);
    return !u->rx_eof && u->rx_count < DEV_UART_FIFO && !(u->mcr & MCR_LOOP);
}

static uint8_t rbr_read(struct dev_bus *b)
{
    struct dev_uart *u = &b->uart;
    if (!u->rx_count)
        rx_pull(b);
    if (!u->rx_count)
        return 0;
    uint8_t c = u->rbr_fifo[u->rx_head];
    u->rx_head = (u->rx_head + 1) % DEV_UART_FIFO;
    u->rx_count--;
    return c;
}

static void thr_write(struct dev_bus *b, uint8_t c)
{
    struct dev_uart *u = &b->uart;
    if (u->mcr & MCR_LOOP)
        rx_push(u, c);
    else
        b->host->serial_write(b->host_ctx, c);
    u->thr_ipending = 1; /* sent at once: THR empty again */
}

static uint8_t loop_msr(const struct dev_uart *u)
{
    uint8_t m = u->mcr;
    return (uint8_t)(((m & 0x02) << 3) | ((m & 0x01) << 5) |
                     ((m & 0x04) << 4) | ((m & 0x08) << 4));
}

static uint8_t uart_read(struct dev_bus *b, unsigned reg)
{
    struct dev_uart *u = &b->uart;
    uint8_t v;
    switch (reg) {
    case 0: return (u->lcr & DLAB) ? u->dll : rbr_read(b);
    case 1: return (u->lcr & DLAB) ? u->dlm : u->ier;
    case 2:
        v = iir_source(u);
        if (v == 0x02)
            u->thr_ipending = 0;
        return v | ((u->fcr & 1) ? 0xc0 : 0);
    case 3: return u->lcr;
    case 4: return u->mcr;
    case 5:
        if (!u->rx_count)
            rx_pull(b);
        v = (uint8_t)(u->lsr | LSR_THRE | LSR_TEMT |
                      (u->rx_count ? LSR_DR : 0));
        u->lsr &= ~LSR_ERR; /* error bits clear on read */
        return v;
    case 6:
        v = (u->mcr & MCR_LOOP) ? loop_msr(u) | (u->msr & 0x0f) : u->msr;
        u->msr &= 0xf0;
        return v;
    default: return u->scr;
    }
}

static void uart_write(struct dev_bus *b, unsigned reg, uint8_t v)
{
    struct dev_uart *u = &b->uart;
    switch (reg) {
    case 0:
        if (u->lcr & DLAB)
            u->dll = v;
        else
            thr_write(b, v);
        break;
    case 1:
        if (u->lcr & DLAB) {
            u->dlm = v;
            break;
        }
        if ((v & IER_THR) && !(u->ier & IER_THR))
            u->thr_ipending = 1; /* enabling it with THR empty fires */
        u->ier = v & 0x0f;
        break;
    case 2:
        if ((v ^ u->fcr) & 1 || (v & 0x02)) {
            u->rx_count = 0;
            u->rx_head = 0;
        }
        u->fcr = v & 0xc1;
        break;
    case 3: u->lcr = v; break;
    case 4: u->mcr = v & 0x1f; break;
    case 5: break; /* LSR is read-only (factory test only) */
    case 6: break;
    default: u->scr = v; break;
    }
}

static void uart_pio(struct dev_bus *b, uint16_t port, unsigned size,
                     bool write, uint32_t *val)
{
    (void)size;
    unsigned reg = port - 0x3f8;
    if (write)
        uart_write(b, reg, (uint8_t)*val);
    else
        *val = uart_read(b, reg);
    update_irq(b);
}

static void uart_reset(struct dev_bus *b)
{
    struct dev_uart *u = &b->uart;
    uint8_t eof = u->rx_eof;
    memset(u, 0, sizeof *u);
    u->rx_eof = eof;
    u->lsr = LSR_THRE | LSR_TEMT;
    u->msr = 0xb0; /* DCD DSR CTS, as QEMU */
    u->dll = 0x0c; /* 9600 baud */
    u->lcr = 0x03;
}

static size_t uart_save(struct dev_bus *b, void *buf)
{
    if (buf)
        memcpy(buf, &b->uart, sizeof b->uart);
    return sizeof b->uart;
}

static int uart_restore(struct dev_bus *b, const void *buf, size_t len)
{
    struct dev_uart u;
    if (len != sizeof u)
        return VMM_E_STATE;
    memcpy(&u, buf, len);
    if (u.rx_count > DEV_UART_FIFO || u.rx_head >= DEV_UART_FIFO)
        return VMM_E_STATE;
    b->uart = u; /* the PIC's saved input level already matches */
    return 0;
}

const struct dev_ops dev_uart_ops = {
    .name = "uart",
    .ports = { { 0x3f8, 0x3ff }, { 0, 0 } },
    .pio = uart_pio,
    .reset = uart_reset,
    .save = uart_save,
    .restore = uart_restore,
};
