/*
 * dev_pic.c — the 8259A pair (master 0x20/0x21, slave 0xA0/0xA1, slave
 * cascaded on master IRQ2), edge-triggered as on the PC: ICW1-ICW4, OCW1
 * (IMR), OCW2 (EOI, specific EOI, rotations, priority), OCW3 (IRR/ISR
 * read, poll, special mask), auto-EOI, special fully nested mode, and a
 * spurious IRQ7/IRQ15 vector when an acknowledge finds nothing pending.
 * Level-triggered mode (ICW1 bit 3, ELCR) is not modelled: ISA devices on
 * this machine are edge-triggered.
 */
#include <string.h>

#include "vmm/vmm_int.h"

/* Priority (0 = highest) of the best bit in mask, 8 when none. */
static int priority(const struct dev_pic_chip *c, uint8_t mask)
{
    if (!mask)
        return 8;
    int p = 0;
    while (!(mask & (1u << ((p + c->priority_add) & 7))))
        p++;
    return p;
}

/* The IRQ this chip would signal now, or -1. */
static int chip_irq(const struct dev_pic_chip *c, bool master)
{
    int p = priority(c, c->irr & ~c->imr);
    if (p == 8)
        return -1;
    uint8_t isr = c->isr;
    if (c->special_mask)
        isr &= ~c->imr;
    if (master && c->special_nested)
        isr &= ~(1u << 2); /* a slave in service does not block it */
    if (p < priority(c, isr))
        return (p + c->priority_add) & 7;
    return -1;
}

static void chip_input(struct dev_pic_chip *c, int irq, int level)
{
    uint8_t m = 1u << irq;
    if (level) {
        if (!(c->last_irr & m))
            c->irr |= m;
        c->last_irr |= m;
    } else {
        c->last_irr &= ~m;
    }
}

/* The slave's INT output drives master input 2. */
static void cascade(struct dev_bus *b)
{
    chip_input(&b->pic[0], 2, chip_irq(&b->pic[1], false) >= 0);
}

void dev_pic_set_irq(struct dev_bus *b, int irq, int level)
{
    if (irq < 0 || irq > 15)
        return;
    chip_input(&b->pic[irq >> 3], irq & 7, level);
    cascade(b);
}

bool dev_pic_pending(struct dev_bus *b)
{
    return chip_irq(&b->pic[0], true) >= 0;
}

static void chip_ack(struct dev_pic_chip *c, int irq)
{
    if (c->auto_eoi) {
        if (c->rotate_auto_eoi)
            c->priority_add = (irq + 1) & 7;
    } else {
        c->isr |= 1u << irq;
    }
    c->irr &= ~(1u << irq); /* edge-triggered */
}

uint8_t dev_pic_ack(struct dev_bus *b)
{
    struct dev_pic_chip *m = &b->pic[0], *s = &b->pic[1];
    int irq = chip_irq(m, true);
    uint8_t vec;
    if (irq < 0)
        return m->vector_base + 7; /* spurious IRQ7 */
    chip_ack(m, irq);
    if (irq == 2) {
        int irq2 = chip_irq(s, false);
        if (irq2 < 0) {
            vec = s->vector_base + 7; /* spurious IRQ15 */
        } else {
            chip_ack(s, irq2);
            vec = s->vector_base + irq2;
        }
    } else {
        vec = m->vector_base + irq;
    }
    cascade(b);
    return vec;
}

static void chip_reset(struct dev_pic_chip *c)
{
    uint8_t base = c->vector_base;
    memset(c, 0, sizeof *c);
    c->vector_base = base;
}

static void ocw2(struct dev_pic_chip *c, uint8_t v)
{
    int p, irq;
    switch (v >> 5) {
    case 0: c->rotate_auto_eoi = 0; break;
    case 4: c->rotate_auto_eoi = 1; break;
    case 1: /* non-specific EOI */
    case 5: /* ... and rotate */
        p = priority(c, c->isr);
        if (p == 8)
            break;
        irq = (p + c->priority_add) & 7;
        c->isr &= ~(1u << irq);
        if (v >> 5 == 5)
            c->priority_add = (irq + 1) & 7;
        break;
    case 3: c->isr &= ~(1u << (v & 7)); break;
    case 7:
        c->isr &= ~(1u << (v & 7));
        c->priority_add = ((v & 7) + 1) & 7;
        break;
    case 6: c->priority_add = ((v & 7) + 1) & 7; break;
    default: break;
    }
}

static void write_cmd(struct dev_pic_chip *c, uint8_t v)
{
    if (v & 0x10) { /* ICW1 */
        chip_reset(c);
        c->init_step = 1;
        c->icw4_needed = v & 1;
        c->single = (v >> 1) & 1;
    } else if (v & 0x08) { /* OCW3 */
        if (v & 0x04)
            c->poll = 1;
        if (v & 0x02)
            c->read_isr = v & 1;
        if (v & 0x40)
            c->special_mask = (v >> 5) & 1;
    } else {
        ocw2(c, v);
    }
}

static void write_data(struct dev_pic_chip *c, uint8_t v)
{
    switch (c->init_step) {
    case 0: c->imr = v; break;
    case 1:
        c->vector_base = v & 0xf8;
        c->init_step = c->single ? (c->icw4_needed ? 3 : 0) : 2;
        break;
    case 2: c->init_step = c->icw4_needed ? 3 : 0; break;
    case 3:
        c->special_nested = (v >> 4) & 1;
        c->auto_eoi = (v >> 1) & 1;
        c->init_step = 0;
        break;
    }
}

static uint8_t read_port(struct dev_bus *b, int chip, bool data)
{
    struct dev_pic_chip *c = &b->pic[chip];
    if (data)
        return c->imr;
    if (c->poll) {
        c->poll = 0;
        int irq = chip_irq(c, chip == 0);
        if (irq < 0)
            return 0;
        chip_ack(c, irq);
        cascade(b);
        return 0x80 | irq;
    }
    return c->read_isr ? c->isr : c->irr;
}

static void pic_pio(struct dev_bus *b, uint16_t port, unsigned size,
                    bool write, uint32_t *val)
{
    (void)size;
    int chip = port >= 0xa0;
    bool data = port & 1;
    if (!write) {
        *val = read_port(b, chip, data);
        return;
    }
    if (data)
        write_data(&b->pic[chip], (uint8_t)*val);
    else
        write_cmd(&b->pic[chip], (uint8_t)*val);
    cascade(b);
}

static void pic_reset(struct dev_bus *b)
{
    memset(b->pic, 0, sizeof b->pic);
    /* Masked until the guest programs it, vectors as the BIOS leaves
     * them (0x08 / 0x70). */
    b->pic[0].imr = b->pic[1].imr = 0xff;
    b->pic[0].vector_base = 0x08;
    b->pic[1].vector_base = 0x70;
}

static size_t pic_save(struct dev_bus *b, void *buf)
{
    if (buf)
        memcpy(buf, b->pic, sizeof b->pic);
    return sizeof b->pic;
}

static int pic_restore(struct dev_bus *b, const void *buf, size_t len)
{
    if (len != sizeof b->pic)
        return VMM_E_STATE;
    memcpy(b->pic, buf, len);
    return 0;
}

const struct dev_ops dev_pic_ops = {
    .name = "pic",
    .ports = { { 0x20, 0x21 }, { 0xa0, 0xa1 } },
    .pio = pic_pio,
    .reset = pic_reset,
    .save = pic_save,
    .restore = pic_restore,
};
