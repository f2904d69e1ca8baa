/*
 * vcpu_unicorn_blk.c — decoded translation blocks for exact counting.
 *
 * Unicorn tells the block hook where a translation block starts and how
 * many bytes it has; Capstone turns those bytes into an instruction list
 * (offsets, and which instructions need hooks of their own).  Blocks are
 * cached by address; each entry keeps a copy of the bytes it was decoded
 * from, so code changed in place is decoded again instead of miscounted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vcpu_unicorn_int.h"

static unsigned hash_addr(uint64_t a)
{
    return (unsigned)((a ^ (a >> 12) ^ (a >> 24)) * 2654435761u) %
           UBLK_HASH;
}

int ublk_cache_init(struct ublk_cache *c)
{
    static const cs_mode modes[3] = {CS_MODE_16, CS_MODE_32, CS_MODE_64};
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 3; i++) {
        if (cs_open(CS_ARCH_X86, modes[i], &c->cs[i]) != CS_ERR_OK)
            return VMM_E_UNICORN;
        cs_option(c->cs[i], CS_OPT_DETAIL, CS_OPT_ON);
    }
    return 0;
}

static void blk_free(struct ublk *b)
{
    free(b->bytes);
    free(b->off);
    free(b->kind);
    free(b);
}

void ublk_cache_fini(struct ublk_cache *c)
{
    for (unsigned i = 0; i < UBLK_HASH; i++) {
        struct ublk *b = c->tab[i], *n;
        for (; b; b = n) {
            n = b->next;
            blk_free(b);
        }
        c->tab[i] = NULL;
    }
    for (int i = 0; i < 3; i++)
        if (c->cs[i])
            cs_close(&c->cs[i]);
}

/* A string instruction (MOVS/CMPS/STOS/LODS/SCAS/INS/OUTS) by opcode. */
static bool is_string_op(uint8_t op)
{
    return (op >= 0xa4 && op <= 0xa7) || (op >= 0xaa && op <= 0xaf) ||
           (op >= 0x6c && op <= 0x6f);
}

static bool has_rep(const cs_x86 *x)
{
    return x->prefix[0] == X86_PREFIX_REP || x->prefix[0] == X86_PREFIX_REPNE;
}

static bool changes_cs(unsigned id)
{
    switch (id) {
    case X86_INS_LJMP: case X86_INS_LCALL: case X86_INS_RETF:
    case X86_INS_RETFQ: case X86_INS_IRET: case X86_INS_IRETD:
    case X86_INS_IRETQ: case X86_INS_SYSENTER: case X86_INS_SYSEXIT:
    case X86_INS_RSM:
        return true;
    default:
        return false;
    }
}

static unsigned insn_kind(const cs_insn *in)
{
    const cs_x86 *x = &in->detail->x86;
    uint8_t op0 = x->opcode[0];
    switch (in->id) {
    case X86_INS_RDTSC: case X86_INS_RDTSCP: case X86_INS_RDRAND:
    case X86_INS_RDSEED: case X86_INS_RDPMC:
        return USITE_NOREPLAY;
    case X86_INS_RDMSR: case X86_INS_WRMSR:
        return USITE_MSR;
    default:
        break;
    }
    if (op0 == 0x0f && x->opcode[1] == 0xc7 && in->size >= 2) {
        /* 0F C7 /7 with mod=11 is RDSEED/RDPID; Capstone 4 may not name
         * RDPID, so look at the ModRM reg field. */
        uint8_t modrm = x->modrm;
        if ((modrm >> 6) == 3 && ((modrm >> 3) & 7) >= 6)
            return USITE_NOREPLAY;
    }
    if (op0 == 0x0f && x->opcode[1] == 0x22)
        return USITE_CR; /* mov crN, reg */
    if ((op0 >= 0xe4 && op0 <= 0xe7) || (op0 >= 0xec && op0 <= 0xef) ||
        (op0 >= 0x6c && op0 <= 0x6f))
        return USITE_IO;
    return 0;
}

/*
 * Bytes Capstone cannot decode at the end of a block are the instruction
 * QEMU found undefined: it ends the block there (raising #UD when it is
 * reached), so the block holds every byte it fetched for it.  They count
 * as one instruction, which is how the #UD of an undefined opcode (DA F4,
 * say) is positioned and delivered.  More than an instruction's worth of
 * such bytes means Capstone and QEMU disagree about what ran: refuse.
 */
#define UNDECODED_MAX 15

static struct ublk *decode(struct ublk_cache *c, const uint8_t *code,
                           uint64_t addr, uint32_t size, enum umode mode,
                           const char **why)
{
    cs_insn *in = NULL;
    size_t n = cs_disasm(c->cs[mode], code, size, addr, 0, &in);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += in[i].size;
    size_t tail = size - total; /* undecodable bytes at the end */
    if (tail > UNDECODED_MAX || n + 1 > UINT16_MAX) {
        if (in)
            cs_free(in, n);
        *why = "Capstone cannot decode the translation block";
        return NULL;
    }
    size_t ninsn = n + (tail ? 1 : 0);
    struct ublk *b = calloc(1, sizeof *b);
    if (b) {
        b->bytes = malloc(size);
        b->off = malloc((ninsn + 1) * sizeof *b->off);
        b->kind = calloc(ninsn, 1);
    }
    if (!b || !b->bytes || !b->off || !b->kind) {
        if (b)
            blk_free(b);
        if (in)
            cs_free(in, n);
        *why = "out of memory";
        return NULL;
    }
    b->addr = addr;
    b->size = size;
    b->mode = (uint8_t)mode;
    b->ninsn = (uint16_t)ninsn;
    memcpy(b->bytes, code, size);
    for (size_t i = 0; i < n; i++) {
        b->off[i] = (uint16_t)(in[i].address - addr);
        b->kind[i] = (uint8_t)insn_kind(&in[i]);
        b->sites |= b->kind[i];
        if (changes_cs(in[i].id) || (b->kind[i] & USITE_CR))
            b->flags |= UBLK_MODE_CHG;
    }
    if (tail)
        b->off[n] = (uint16_t)total; /* the undefined one: kind 0 */
    b->off[ninsn] = (uint16_t)size;
    const cs_x86 *x0 = n ? &in[0].detail->x86 : NULL;
    if (x0 && has_rep(x0) && is_string_op(x0->opcode[0])) {
        b->flags |= UBLK_REP_FIRST;
        if (x0->addr_size == 4)
            b->flags |= UBLK_REP_A32;
        else if (x0->addr_size == 2)
            b->flags |= UBLK_REP_A16;
    }
    if (in)
        cs_free(in, n);
    return b;
}

struct ublk *ublk_get(struct ublk_cache *c, const uint8_t *ram,
                      uint64_t ram_size, uint64_t addr, uint32_t size,
                      enum umode mode, bool *changed, const char **why)
{
    *changed = false;
    if (!size || size > 0x10000 || addr >= ram_size ||
        size > ram_size - addr) {
        *why = "translation block outside guest RAM";
        return NULL;
    }
    unsigned h = hash_addr(addr);
    struct ublk **pp = &c->tab[h];
    for (struct ublk *b = *pp; b; pp = &b->next, b = b->next) {
        if (b->addr != addr || b->mode != mode)
            continue;
        if (b->size == size && !memcmp(b->bytes, ram + addr, size))
            return b;
        *pp = b->next; /* stale: decode again */
        blk_free(b);
        c->count--;
        *changed = true;
        break;
    }
    struct ublk *b = decode(c, ram + addr, addr, size, mode, why);
    if (!b)
        return NULL;
    b->next = c->tab[h];
    c->tab[h] = b;
    c->count++;
    return b;
}

void ublk_drop(struct ublk_cache *c, uint64_t gpa, uint64_t len)
{
    /* Entries verify their bytes on every use, so dropping is only about
     * memory; a full sweep is cheap next to the TB invalidation done with
     * it, and is done only for large ranges' owners. */
    for (unsigned i = 0; i < UBLK_HASH; i++) {
        struct ublk **pp = &c->tab[i];
        while (*pp) {
            struct ublk *b = *pp;
            if (b->addr < gpa + len && gpa < b->addr + b->size) {
                *pp = b->next;
                blk_free(b);
                c->count--;
            } else {
                pp = &b->next;
            }
        }
    }
}

void ublk_foreach(struct ublk_cache *c,
                  void (*fn)(void *ctx, const struct ublk *b), void *ctx)
{
    for (unsigned i = 0; i < UBLK_HASH; i++)
        for (const struct ublk *b = c->tab[i]; b; b = b->next)
            fn(ctx, b);
}

int ublk_index(const struct ublk *b, uint64_t addr)
{
    if (addr < b->addr || addr > b->addr + b->size)
        return -1;
    uint32_t o = (uint32_t)(addr - b->addr);
    int lo = 0, hi = b->ninsn;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (b->off[mid] == o)
            return mid;
        if (b->off[mid] < o)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int ublk_insn_at(struct ublk_cache *c, const uint8_t *ram, uint64_t ram_size,
                 uint64_t addr, enum umode mode, unsigned *len, char *text,
                 size_t cap)
{
    if (addr >= ram_size)
        return VMM_E_RANGE;
    size_t avail = ram_size - addr < 16 ? ram_size - addr : 16;
    cs_insn *in = NULL;
    size_t n = cs_disasm(c->cs[mode], ram + addr, avail, addr, 1, &in);
    if (!n)
        return VMM_E_STATE;
    *len = in[0].size;
    if (text)
        snprintf(text, cap, "%s%s%s", in[0].mnemonic,
                 in[0].op_str[0] ? " " : "", in[0].op_str);
    cs_free(in, n);
    return 0;
}
