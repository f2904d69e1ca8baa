/*
 * irq_check.c — the registers of a trace's interrupt events against the
 * replay, for tests/integration/record_irq.sh.
 *
 *   irq_check TRACE
 *       For every IRQ event: at its position (where the interrupt is
 *       delivered), the interrupt frame on the stack holds the event's
 *       RIP, RFLAGS and RSP, and the general registers are the event's
 *       (delivery changes no other).  Prints what it checked; exits 0, 1
 *       at a mismatch (the first few printed), 2 when the trace cannot be
 *       replayed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replayer/replayer_int.h"
#include "storage/store.h"

#define IGN RP_RFLAGS_IGNORED

static void must(struct replay *r, int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "irq_check: %s: %s: %s\n", what, replay_strerror(rc),
                replay_error_detail(r));
        exit(2);
    }
}

/* One IRQ event i: 0 when its registers are the delivery point's. */
static int check_irq(struct replay *r, uint64_t i, const struct store_event *e)
{
    must(r, replay_goto(r, r->ev_icount[i]), "goto");
    struct vmm_cpu_state c;
    must(r, replay_get_state(r, &c), "get_state");
    uint64_t f[4];
    size_t done;
    must(r, replay_read_mem(r, c.regs.rsp, f, sizeof f, &done),
         "reading the interrupt frame");
    const uint64_t *g = (const uint64_t *)&c.regs;
    int bad = 0;
    for (int k = 0; k < 16; k++) /* rax .. r15 but rsp */
        if (k != 6 && g[k] != e->regs[k]) {
            printf("MISMATCH: event %llu (irq %u) at %llu: %s %#llx, "
                   "recorded %#llx\n", (unsigned long long)i, e->aux,
                   (unsigned long long)r->ev_icount[i], rp_reg_names[k],
                   (unsigned long long)g[k],
                   (unsigned long long)e->regs[k]);
            bad++;
        }
    if (f[0] != e->regs[16] || ((f[2] ^ e->regs[17]) & ~IGN) ||
        f[3] != e->regs[6]) {
        printf("MISMATCH: event %llu (irq %u) at %llu: frame rip %#llx "
               "rflags %#llx rsp %#llx, recorded %#llx %#llx %#llx\n",
               (unsigned long long)i, e->aux,
               (unsigned long long)r->ev_icount[i], (unsigned long long)f[0],
               (unsigned long long)f[2], (unsigned long long)f[3],
               (unsigned long long)e->regs[16],
               (unsigned long long)e->regs[17],
               (unsigned long long)e->regs[6]);
        bad++;
    }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: irq_check TRACE\n");
        return 2;
    }
    struct replay *r;
    struct replay_opts o = {0};
    int rc = replay_open(argv[1], &o, &r);
    if (rc) {
        fprintf(stderr, "irq_check: %s: %s: %s\n", argv[1],
                replay_strerror(rc), replay_error_detail(NULL));
        return 2;
    }
    uint64_t n = replay_event_count(r), checked = 0;
    int fails = 0;
    for (uint64_t i = 0; i < n && fails < 5; i++) {
        int err;
        const struct store_event *e = rp_event(r, i, &err);
        if (!e)
            must(r, err, "reading events");
        if (e->kind != STORE_EV_IRQ)
            continue;
        struct store_event ev = *e; /* the window moves */
        fails += check_irq(r, i, &ev) != 0;
        checked++;
    }
    printf("irq: %llu interrupt events checked\n",
           (unsigned long long)checked);
    replay_close(r);
    return fails ? 1 : 0;
}
