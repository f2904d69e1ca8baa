/*
 * store_synth.h — deterministic synthetic event streams and page contents
 * for storage tests and bench/store_bench.c (header-only so the bench,
 * which links no test support, can share it).
 *
 * synth_io_stream: what a guest printing text over a 16550 UART and
 * polling the PIT looks like from the recorder — a status-port IN then a
 * data-port OUT per character, now and then a PIT read and a timer
 * interrupt; RIP cycles among a few addresses, RCX/RSI step by one, RAX
 * carries the byte, RFLAGS flips between two values.
 * synth_random_stream: every field random (the incompressible bound).
 */
#ifndef TTVM_TESTS_STORE_SYNTH_H
#define TTVM_TESTS_STORE_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "storage/store.h"

enum {
    SYNTH_RAX,
    SYNTH_RBX,
    SYNTH_RCX,
    SYNTH_RDX,
    SYNTH_RSI,
    SYNTH_RDI,
    SYNTH_RSP,
    SYNTH_RBP,
    SYNTH_RIP = 16,
    SYNTH_RFLAGS = 17
};

static inline uint64_t synth_rand(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void synth_io_event(struct store_event *e, uint64_t *regs,
                                  uint8_t kind, uint64_t addr, uint64_t val,
                                  uint64_t rip)
{
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->size = 1;
    e->addr = addr;
    e->value = val;
    regs[SYNTH_RIP] = rip;
    memcpy(e->regs, regs, sizeof e->regs);
}

/* random_text: the characters printed are random (less repetition than a
 * fixed message, so a harder case for compression). */
static inline void synth_io_stream(struct store_event *ev, size_t n,
                                   uint64_t seed, int random_text)
{
    static const char text[] =
        "ttvm records a guest once and replays it exactly; "
        "reverse-stepi, reverse-continue and watch work backwards.\n";
    uint64_t regs[STORE_NREGS] = {0}, s = seed, pit = 0xffff;
    regs[SYNTH_RSP] = 0x7fff0;
    regs[SYNTH_RBX] = 0x100000;
    regs[SYNTH_RCX] = 1u << 20;
    regs[SYNTH_RSI] = 0x200000;
    for (size_t i = 0, c = 0; i < n; c++) {
        uint64_t r = synth_rand(&s);
        uint8_t ch = random_text ? (uint8_t)(32 + (r >> 24) % 95)
                                 : (uint8_t)text[c % (sizeof text - 1)];
        uint8_t lsr = (r & 15) ? 0x60 : 0x00; /* sometimes busy */
        regs[SYNTH_RDX] = 0x3fd;
        regs[SYNTH_RAX] = (regs[SYNTH_RAX] & ~0xffull) | lsr;
        regs[SYNTH_RFLAGS] = lsr ? 0x202 : 0x246;
        synth_io_event(&ev[i++], regs, STORE_EV_PIO_IN, 0x3fd, lsr, 0x1012);
        if (i == n)
            break;
        if (!lsr)
            continue;
        regs[SYNTH_RDX] = 0x3f8;
        regs[SYNTH_RAX] = (regs[SYNTH_RAX] & ~0xffull) | ch;
        regs[SYNTH_RSI]++;
        regs[SYNTH_RCX]--;
        synth_io_event(&ev[i++], regs, STORE_EV_PIO_OUT, 0x3f8, ch, 0x1020);
        if (i < n && (r >> 8) % 64 == 0) {
            pit -= 500 + (r >> 20) % 64;
            regs[SYNTH_RAX] = pit & 0xff;
            synth_io_event(&ev[i++], regs, STORE_EV_PIO_IN, 0x40, pit & 0xff,
                           0x1100);
        }
        if (i < n && (r >> 16) % 200 == 0) {
            uint64_t rip = 0x1000 + 0x10 * ((r >> 40) % 4);
            synth_io_event(&ev[i++], regs, STORE_EV_IRQ, 0, 0, rip);
            ev[i - 1].aux = 0x20;
            ev[i - 1].size = 0;
        }
    }
}

static inline void synth_random_stream(struct store_event *ev, size_t n,
                                       uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        struct store_event *e = &ev[i];
        uint64_t r = synth_rand(&s);
        memset(e, 0, sizeof *e);
        e->kind = (uint8_t)(1 + r % (STORE_EV_KIND_MAX - 1));
        e->size = (uint8_t)(r >> 8);
        e->aux = (uint32_t)(r >> 32);
        e->addr = synth_rand(&s);
        e->value = synth_rand(&s);
        for (int k = 0; k < STORE_NREGS; k++)
            e->regs[k] = synth_rand(&s);
    }
}

/* A page that looks like guest memory: some code/text-like bytes, small
 * integers, zero runs; distinct per (seed). */
static inline void synth_page(uint8_t *p, uint64_t seed)
{
    uint64_t s = seed * 0x100000001b3ull + 1;
    for (size_t i = 0; i < STORE_PAGE_SIZE; i += 8) {
        uint64_t r = synth_rand(&s);
        uint64_t w;
        switch (r % 4) {
        case 0:
            w = 0;
            break;
        case 1:
            w = r >> 56;
            break; /* small int */
        case 2:
            w = 0x6e69616d5f6d7674ull ^ (r >> 60);
            break; /* text */
        default:
            w = 0xffff800000000000ull | (r >> 40);
            break; /* pointer */
        }
        memcpy(p + i, &w, 8);
    }
}

#endif /* TTVM_TESTS_STORE_SYNTH_H */
