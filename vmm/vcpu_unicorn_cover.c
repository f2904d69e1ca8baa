/*
 * vcpu_unicorn_cover.c — which code ran (vcpu_coverage): the indexer
 * notes it per window of positions so that breakpoint searches can skip
 * windows that never executed the address.
 *
 * The block hook sees every translation block as it starts; a block is
 * added once per window (its epoch field says whether it was already),
 * so the cost while running is one compare per block.  A window's list
 * is sorted and merged when it is taken.  Conservative by construction: a
 * block that starts counts whole, even if a stop or a fault cut it short.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vcpu_unicorn_int.h"

void uni_cover_block(struct uni *u, struct ublk *b)
{
    b->cover_epoch = u->cover_epoch;
    if (u->ncover == u->capcover) {
        size_t cap = u->capcover ? 2 * u->capcover : 256;
        struct vcpu_code_range *p = realloc(u->cover, cap * sizeof *p);
        if (!p) {
            u->cover_lost = true; /* the window reads as "anything ran" */
            return;
        }
        u->cover = p;
        u->capcover = cap;
    }
    u->cover[u->ncover++] =
        (struct vcpu_code_range){.addr = b->addr, .len = b->size};
}

static int by_addr(const void *a, const void *b)
{
    const struct vcpu_code_range *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Sorts and merges overlapping or touching ranges in place. */
static size_t merge(struct vcpu_code_range *c, size_t n)
{
    if (!n)
        return 0;
    qsort(c, n, sizeof *c, by_addr);
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        uint64_t end = c[k].addr + c[k].len;
        if (c[i].addr <= end) {
            uint64_t e2 = c[i].addr + c[i].len;
            if (e2 > end && e2 - c[k].addr <= UINT32_MAX)
                c[k].len = (uint32_t)(e2 - c[k].addr);
            else if (e2 > end)
                c[++k] = c[i]; /* too long for one range: keep apart */
        } else {
            c[++k] = c[i];
        }
    }
    return k + 1;
}

static void new_window(struct uni *u)
{
    if (++u->cover_epoch == 0)
        u->cover_epoch = 1; /* 0 marks blocks never covered */
    u->ncover = 0;
    u->cover_lost = false;
    /* The block a run stopped in may go on in the next window. */
    if (u->cur)
        uni_cover_block(u, u->cur);
}

int uni_coverage(struct vcpu *cpu, bool on)
{
    struct uni *u = uni_of(cpu);
    u->cover_on = on;
    if (on)
        new_window(u);
    return 0;
}

int uni_coverage_take(struct vcpu *cpu, struct vcpu_code_range **out,
                      size_t *n)
{
    struct uni *u = uni_of(cpu);
    if (!u->cover_on)
        return VMM_E_ARG;
    int rc = u->cover_lost ? -ENOMEM : 0;
    struct vcpu_code_range *c = NULL;
    size_t k = merge(u->cover, u->ncover);
    if (!rc && !(c = malloc((k ? k : 1) * sizeof *c)))
        rc = -ENOMEM;
    if (!rc) {
        memcpy(c, u->cover, k * sizeof *c);
        *out = c;
        *n = k;
    }
    new_window(u);
    return rc;
}

void uni_cover_fini(struct uni *u)
{
    free(u->cover);
    u->cover = NULL;
    u->ncover = u->capcover = 0;
}
