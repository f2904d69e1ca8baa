/*
 * devices.c — the PC devices the SDK drives: 16550 UART on COM1, the 8259
 * PIC pair, the 8254 PIT, CMOS, the ttvm random port and debug-exit.
 *
 * Every port access is a VM exit (~9 us under KVM), so the code touches
 * ports only when it must: the console polls LSR once per character, and
 * the PIT runs only for guests that use time.
 */
#include "sdk_int.h"

#define UART_RBR 0 /* receive buffer (read) / THR (write) */
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_DR 0x01
#define LSR_THRE 0x20

#define PIT_HZ 1193182u

volatile uint64_t sdk_tick_count;
static bool timer_running;
static sdk_irq_fn irq_fns[16];

/* ---- debug-exit ---- */

_Noreturn void sdk_exit(unsigned value)
{
    outb(PORT_DEBUG_EXIT, (uint8_t)value);
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* ---- console ---- */

void sdk_serial_init(void)
{
    outb(PORT_COM1 + UART_IER, 0x00);
    outb(PORT_COM1 + UART_LCR, 0x80); /* DLAB: divisor 1 = 115200 baud */
    outb(PORT_COM1 + UART_RBR, 0x01);
    outb(PORT_COM1 + UART_IER, 0x00);
    outb(PORT_COM1 + UART_LCR, 0x03); /* 8N1 */
    /* FIFOs stay off: turning them on clears them, losing input that
     * arrived before the guest started; input is slow anyway. */
    outb(PORT_COM1 + UART_FCR, 0x00);
    outb(PORT_COM1 + UART_MCR, 0x0b); /* DTR, RTS, OUT2 (IRQ line enable) */
}

void sdk_putc(char c)
{
    /* Bounded, so that a UART that never reports THRE costs time, not
     * the guest. */
    for (int i = 0; i < 100000; i++)
        if (inb(PORT_COM1 + UART_LSR) & LSR_THRE)
            break;
    outb(PORT_COM1 + UART_RBR, (uint8_t)c);
}

void sdk_write(const void *buf, size_t len)
{
    const char *p = buf;

    while (len--)
        sdk_putc(*p++);
}

int sdk_printf(const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = sdk_vprintf_to(sdk_write, fmt, ap);
    va_end(ap);
    return n;
}

_Noreturn void sdk_panic(const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    va_start(ap, fmt);
    sdk_vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sdk_printf("PANIC: %s\n", buf);
    sdk_exit(EXIT_PANIC);
}

/* ---- serial input: IRQ4 fills a ring buffer ---- */

static uint8_t rx_buf[256];
static volatile unsigned rx_head, rx_tail; /* free-running indices */
static bool rx_enabled;

static void serial_drain(void)
{
    while (inb(PORT_COM1 + UART_LSR) & LSR_DR) {
        uint8_t b = inb(PORT_COM1 + UART_RBR);

        if (rx_head - rx_tail < sizeof(rx_buf))
            rx_buf[rx_head++ % sizeof(rx_buf)] = b;
        else
            break; /* full: leave the rest in the UART */
    }
}

size_t sdk_serial_read(void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t n = 0;

    if (!len)
        return 0;
    if (!rx_enabled) {
        rx_enabled = true;
        sdk_irq_set(IRQ_COM1, serial_drain);
        outb(PORT_COM1 + UART_IER, 0x01); /* received-data interrupt */
    }
    /* Poll once before sleeping: bytes that arrived before the interrupt
     * was enabled raise no new one on every UART model. */
    serial_drain();
    while (rx_head == rx_tail)
        sdk_wait_for_interrupt();
    while (n < len && rx_tail != rx_head)
        p[n++] = rx_buf[rx_tail++ % sizeof(rx_buf)];
    return n;
}

/* ---- 8259 PIC ---- */

void sdk_pic_init(void)
{
    /* Whatever a BIOS left (QEMU's SeaBIOS maps IRQ0 to vector 8): remap
     * to 0x20..0x2f and mask everything but the cascade line. */
    outb(PORT_PIC1, 0x11); /* ICW1: edge, cascade, ICW4 follows */
    outb(PORT_PIC2, 0x11);
    outb(PORT_PIC1 + 1, IRQ_BASE); /* ICW2: vector base */
    outb(PORT_PIC2 + 1, IRQ_BASE + 8);
    outb(PORT_PIC1 + 1, 0x04); /* ICW3: slave on IRQ2 */
    outb(PORT_PIC2 + 1, 0x02);
    outb(PORT_PIC1 + 1, 0x01); /* ICW4: 8086 mode */
    outb(PORT_PIC2 + 1, 0x01);
    outb(PORT_PIC1 + 1, 0xfb); /* OCW1: mask all but IRQ2 */
    outb(PORT_PIC2 + 1, 0xff);
}

void sdk_irq_set(unsigned irq, sdk_irq_fn fn)
{
    uint16_t port = irq < 8 ? PORT_PIC1 + 1 : PORT_PIC2 + 1;

    if (irq >= 16)
        sdk_panic("sdk_irq_set: bad IRQ %u", irq);
    irq_fns[irq] = fn;
    outb(port, inb(port) & (uint8_t) ~(1u << (irq % 8)));
}

/* In-service register of the PIC at port (OCW3 "read ISR"). */
static uint8_t pic_isr(uint16_t port)
{
    outb(port, 0x0b);
    return inb(port);
}

void sdk_irq_dispatch(unsigned irq)
{
    /* IRQ7/IRQ15 without the ISR bit are spurious: no EOI to that PIC. */
    if (irq == 7 && !(pic_isr(PORT_PIC1) & 0x80))
        return;
    if (irq == 15 && !(pic_isr(PORT_PIC2) & 0x80)) {
        outb(PORT_PIC1, 0x20);
        return;
    }
    if (irq_fns[irq])
        irq_fns[irq]();
    if (irq >= 8)
        outb(PORT_PIC2, 0x20);
    outb(PORT_PIC1, 0x20);
}

void sdk_wait_for_interrupt(void)
{
    /* sti's one-instruction shadow makes sti; hlt atomic: an interrupt
     * pending now wakes the hlt instead of being taken before it. */
    __asm__ volatile("sti; hlt; cli" ::: "memory");
}

/* ---- 8254 PIT ---- */

static void timer_tick(void)
{
    sdk_tick_count++;
}

void sdk_timer_start(unsigned hz)
{
    unsigned div;

    if (timer_running)
        return;
    if (hz < 19)
        hz = 19; /* the 16-bit divisor's limit */
    if (hz > 10000)
        hz = 10000;
    div = (PIT_HZ + hz / 2) / hz;
    timer_running = true;
    outb(PORT_PIT_CMD, 0x34); /* channel 0, lo/hi byte, mode 2 */
    outb(PORT_PIT_CH0, (uint8_t)div);
    outb(PORT_PIT_CH0, (uint8_t)(div >> 8));
    sdk_irq_set(IRQ_TIMER, timer_tick);
}

uint64_t sdk_ticks(void)
{
    return sdk_tick_count;
}

void sdk_sleep_ticks(uint64_t n)
{
    uint64_t end = sdk_tick_count + n;

    sdk_timer_start(SDK_TIMER_HZ);
    while (sdk_tick_count < end)
        sdk_wait_for_interrupt();
}

/* ---- CMOS and the random port ---- */

uint8_t sdk_cmos_read(uint8_t reg)
{
    outb(PORT_CMOS_INDEX, reg);
    return inb(PORT_CMOS_DATA);
}

uint32_t sdk_rng32(void)
{
    return inl(PORT_RNG);
}
