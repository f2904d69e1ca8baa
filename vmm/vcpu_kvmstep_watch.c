/*
 * vcpu_kvmstep_watch.c — write watchpoints of the kvm-step backend.
 *
 * Under kvm-pvm hardware data breakpoints never fire, so a write is found
 * by its effect: before each step the watched bytes are copied from where
 * the page tables put them now (a write through any alias of those bytes
 * counts, as a scan of memory would see it), with every page of the
 * watched ranges and the page on each side (one instruction writes one
 * contiguous area, an exception frame included); after the step a changed
 * byte is a hit.  The hit filter and a stop see the state *before* the
 * instruction, as vmm.h asks: those pages and the registers are put back
 * (the whole CPU state for an x87 instruction, which may change x87 state
 * and memory at once), and kept as they were after when the filter lets
 * the run go on.  Rep iterations run one per step while a watchpoint is
 * armed, so a hit is one iteration.
 *
 * Limits, said where they apply: a write that leaves the bytes as they
 * were is not seen (gdb's `watch` does not report those either); the
 * accessed/dirty bits the CPU sets in page tables during the instruction
 * are not put back; read and access watchpoints are refused
 * (VMM_E_UNSUPPORTED): nothing here can see a read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vcpu_kvmstep_int.h"

#define PG 4096ull

void ks_watch_free(struct ks *ks)
{
    free(ks->piece);
    free(ks->wbuf);
    free(ks->save);
    free(ks->after);
    ks->piece = NULL;
    ks->wbuf = ks->save = ks->after = NULL;
    ks->cap_piece = ks->wbuf_cap = 0;
}

static uint64_t pages_of(const struct vcpu_watch *w)
{
    return (w->addr + w->len - 1) / PG - w->addr / PG + 1;
}

/* Room for n watches: their bytes, pieces and the saved pages. */
static int reserve(struct ks *ks, const struct vcpu_watch *w, size_t n)
{
    size_t bytes = 0, pieces = 0, pages = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += w[i].len;
        pieces += pages_of(&w[i]);
        pages += pages_of(&w[i]) + 2;
    }
    if (pages > KS_MAX_SAVE)
        return VMM_E_UNSUPPORTED;
    if (bytes > ks->wbuf_cap) {
        uint8_t *b = realloc(ks->wbuf, bytes);
        if (!b)
            return -ENOMEM;
        ks->wbuf = b;
        ks->wbuf_cap = bytes;
    }
    if (pieces > ks->cap_piece) {
        struct ks_piece *p = realloc(ks->piece, pieces * sizeof *p);
        if (!p)
            return -ENOMEM;
        ks->piece = p;
        ks->cap_piece = pieces;
    }
    if (!ks->save && !(ks->save = malloc(KS_MAX_SAVE * PG)))
        return -ENOMEM;
    if (!ks->after && !(ks->after = malloc(KS_MAX_SAVE * PG)))
        return -ENOMEM;
    return 0;
}

int ks_set_watchpoints(struct vcpu *cpu, const struct vcpu_watch *w,
                       size_t n)
{
    struct ks *ks = ks_of(cpu);
    if (n > KS_MAX_WATCH)
        return VMM_E_ARG;
    for (size_t i = 0; i < n; i++) {
        if (!w[i].len || w[i].addr + w[i].len < w[i].addr ||
            !(w[i].kind & VCPU_WATCH_ACCESS) || (w[i].kind & ~3u))
            return VMM_E_ARG;
        if (w[i].kind & VCPU_WATCH_READ)
            return VMM_E_UNSUPPORTED; /* no read is ever seen */
    }
    int rc = reserve(ks, w, n);
    if (rc)
        return rc;
    if (n)
        memcpy(ks->w, w, n * sizeof *w);
    ks->nw = n;
    ks->skip_watch = false;
    return 0;
}

/* The guest-physical page of guest-virtual va now, if in RAM. */
static bool phys_page(struct ks *ks, uint64_t va, uint64_t *gfn)
{
    uint64_t gpa;
    if (vmm_walk(ks->cpu->ram, ks->cpu->ram_size, &ks->pre.sregs, va, false,
                 &gpa) || gpa >= ks->cpu->ram_size)
        return false;
    *gfn = gpa / PG;
    return true;
}

static void save_page(struct ks *ks, uint64_t va)
{
    uint64_t g;
    if (!phys_page(ks, va, &g))
        return;
    for (size_t i = 0; i < ks->nsave; i++)
        if (ks->save_gfn[i] == g)
            return;
    if (ks->nsave == KS_MAX_SAVE)
        return; /* cannot happen: reserve() counted them */
    memcpy(ks->save + ks->nsave * PG, ks->cpu->ram + g * PG, PG);
    ks->save_gfn[ks->nsave++] = g;
}

/* The bytes of watch w that are in RAM now, as pieces (one per page). */
static void add_pieces(struct ks *ks, const struct vcpu_watch *w,
                       uint32_t *at)
{
    for (uint64_t va = w->addr; va < w->addr + w->len;) {
        uint64_t end = (va / PG + 1) * PG;
        if (end > w->addr + w->len || end < va)
            end = w->addr + w->len;
        uint64_t g;
        if (phys_page(ks, va, &g)) {
            struct ks_piece *p = &ks->piece[ks->npiece++];
            p->va = va;
            p->gpa = g * PG + va % PG;
            p->len = (uint32_t)(end - va);
            p->at = *at;
            memcpy(ks->wbuf + *at, ks->cpu->ram + p->gpa, p->len);
            *at += p->len;
        }
        va = end;
    }
}

int ks_watch_before(struct ks *ks, const struct ks_insn *in)
{
    uint32_t at = 0;
    ks->npiece = ks->nsave = 0;
    for (size_t i = 0; i < ks->nw; i++) {
        const struct vcpu_watch *w = &ks->w[i];
        add_pieces(ks, w, &at);
        uint64_t lo = w->addr / PG, hi = (w->addr + w->len - 1) / PG + 1;
        for (uint64_t p = lo ? lo - 1 : 0; p <= hi && p < (1ull << 52); p++)
            save_page(ks, p * PG);
    }
    ks->pre_full_ok = false;
    if (in->x87) {
        int rc = vcpu_get_state(ks->in, &ks->pre_full);
        if (rc)
            return rc;
        ks->pre_full_ok = true;
    }
    return 0;
}

/* The first piece whose bytes changed: [*first, *last] inside it. */
static const struct ks_piece *changed(struct ks *ks, uint32_t *first,
                                      uint32_t *last)
{
    for (size_t i = 0; i < ks->npiece; i++) {
        const struct ks_piece *p = &ks->piece[i];
        const uint8_t *now = ks->cpu->ram + p->gpa, *was = ks->wbuf + p->at;
        if (!memcmp(now, was, p->len))
            continue;
        uint32_t a = 0, b = p->len - 1;
        while (now[a] == was[a])
            a++;
        while (now[b] == was[b])
            b--;
        *first = a;
        *last = b;
        return p;
    }
    return NULL;
}

/* Swaps the saved pages with RAM's (before <-> after). */
static void swap_pages(struct ks *ks, bool to_before)
{
    for (size_t i = 0; i < ks->nsave; i++) {
        uint8_t *ram = ks->cpu->ram + ks->save_gfn[i] * PG;
        if (to_before) {
            memcpy(ks->after + i * PG, ram, PG);
            memcpy(ram, ks->save + i * PG, PG);
        } else {
            memcpy(ram, ks->after + i * PG, PG);
        }
    }
}

/* The state before the step, from the state after it. */
static int put_before(struct ks *ks, const struct vmm_cpu_state *after)
{
    struct vmm_cpu_state b = ks->pre_full_ok ? ks->pre_full : *after;
    b.regs = ks->pre.regs;
    b.sregs = ks->pre.sregs;
    b.events = ks->pre.events;
    swap_pages(ks, true);
    return vcpu_set_state(ks->in, &b);
}

int ks_watch_after(struct ks *ks, uint64_t pos, uint64_t adv,
                   struct vcpu_exit *e)
{
    if (ks->skip_watch) {
        /* the instruction a stop was reported before runs once unseen */
        ks->skip_watch = false;
        if (pos == ks->skip_pos)
            return 0;
    }
    uint32_t a, b;
    const struct ks_piece *p = changed(ks, &a, &b);
    if (!p)
        return 0;
    struct vmm_cpu_state after;
    int rc = vcpu_get_state(ks->in, &after);
    bool rep_cont = ks->rep_cont;
    if (!rc)
        rc = put_before(ks, &after);
    if (rc)
        return rc;
    ks->icount = pos;
    ks->rep_cont = ks->pre_cont;
    ks->rep_rip = ks->pre.regs.rip;
    struct vcpu_hit h = {.icount = pos, .addr = p->va + a, .len = b - a + 1,
                         .kind = VCPU_WATCH_WRITE};
    int stop = ks->hit ? ks->hit(ks->hit_ctx, &h) : 1;
    if (stop) {
        e->reason = stop > 0 ? VCPU_EXIT_WATCH : VCPU_EXIT_ERROR;
        e->watch.addr = h.addr;
        e->watch.len = h.len;
        e->watch.kind = VCPU_WATCH_WRITE;
        e->watch.value = 0; /* up to 8 bytes of what was written */
        for (size_t i = 0; i < ks->nsave; i++)
            if (ks->save_gfn[i] == p->gpa / PG) {
                uint32_t n = h.len < 8 ? h.len : 8;
                memcpy(&e->watch.value, ks->after + i * PG +
                                            (p->gpa + a) % PG, n);
            }
        ks->skip_watch = stop > 0;
        ks->skip_pos = pos;
        return stop > 0 ? 0 : stop;
    }
    /* logged, not stopped: back to after the instruction */
    swap_pages(ks, false);
    rc = vcpu_set_state(ks->in, &after);
    ks->icount = pos + adv;
    ks->rep_cont = rep_cont;
    return rc;
}
