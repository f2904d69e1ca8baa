/*
 * replay_check.c — the replayer against ground truth, for the integration
 * tests (tests/integration/replay_*.sh).  Each subcommand prints what it
 * checked and exits 0, 1 on a mismatch (with the first one printed), 77
 * when it cannot run here (no KVM single-step at CPL0).
 *
 *   replay_check events TRACE
 *       The state at every event's position equals the registers recorded
 *       with it; where an interrupt is delivered at that position, the
 *       interrupt frame on the stack holds the recorded RIP, RFLAGS, RSP.
 *   replay_check random TRACE COUNT SEED
 *       For COUNT random positions N: go to N from wherever the last one
 *       left, step back from N + 1, and go to N in a fresh replay: the
 *       same registers and RAM each time.
 *   replay_check kvm TRACE COUNT SEED [MAX]
 *       For COUNT random positions N (below MAX) whose code, from the latest
 *       snapshot
 *       before N, runs at CPL0 without interrupts: the state after as
 *       many single-steps of the KVM backend from that recorded snapshot
 *       (I/O served from the log, a rep counting its iterations) equals
 *       the replay at N (registers, RAM).
 *   replay_check rbreak TRACE ADDR [MAX [COUNT SEED]]
 *       Continues forward from 0 with a breakpoint at ADDR recording every
 *       hit (up to MAX), then reverse-continues from after the last: each
 *       stop is the previous hit, down to BEGIN.  Then from COUNT random
 *       positions P: reverse continue stops at a hit h < P, and continuing
 *       forward from h finds no hit before P.
 *   replay_check rwatch TRACE ADDR LEN COUNT SEED
 *       From COUNT random positions P (in a long trace: shortly after an
 *       interrupt), reverse-continue with a write watchpoint on [ADDR,
 *       ADDR+LEN): it stops at the last instruction before P that changed
 *       those bytes, found by stepping forward one instruction at a time
 *       (brute force, up to 2^18 instructions back).
 *   replay_check state TRACE ADDR LEN ICOUNT...
 *       Ground truth for the gdb tests: for each position, one line
 *       "state ICOUNT rax=HEX ... r15=HEX rip=HEX eflags=HEX mem=HEX" (the
 *       LEN bytes at ADDR), from a fresh replay of its own.
 *   replay_check writer TRACE ADDR LEN LO P
 *       Prints "writer ICOUNT RIP" for the last instruction in [LO, P) that
 *       changed [ADDR, ADDR+LEN), found by single steps, or "writer none".
 *   replay_check hits TRACE ADDR MAX
 *       Prints "hit ICOUNT" for each of the first MAX positions where the
 *       pc is ADDR, by continuing forward with a breakpoint.
 *   replay_check api TRACE ADDR LEN NEVER
 *       The API's promises: BEGIN/END/EXITED at the ends, REPLAY_E_RANGE
 *       past the end, register and memory writes undone by the next move,
 *       a step over an instruction that writes [ADDR, ADDR+LEN) reports
 *       WATCH in both directions, and replay_interrupt (from a thread,
 *       during a continue with a breakpoint at NEVER) stops that call
 *       only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "replayer/replayer_int.h"
#include "storage/store.h"

#define IGN RP_RFLAGS_IGNORED

static int fails;

#define FAIL(...)                                                            \
    do {                                                                     \
        printf("MISMATCH: " __VA_ARGS__);                                    \
        printf("\n");                                                        \
        fails++;                                                             \
    } while (0)

/* Ground truth replays re-execute everything: no skipping by code
 * coverage, the optimisation under test. */
static struct replay *open_replay_opts(const char *trace, bool no_skip)
{
    struct replay *r;
    struct replay_opts o = {.no_skip = no_skip};
    int rc = replay_open(trace, &o, &r);
    if (rc) {
        fprintf(stderr, "replay_check: %s: %s: %s\n", trace,
                replay_strerror(rc), replay_error_detail(NULL));
        exit(2);
    }
    return r;
}

static struct replay *open_replay(const char *trace)
{
    return open_replay_opts(trace, false);
}

static struct replay *open_truth(const char *trace)
{
    return open_replay_opts(trace, true);
}

static void must(struct replay *r, int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "replay_check: %s: %s: %s\n", what,
                replay_strerror(rc), replay_error_detail(r));
        exit(2);
    }
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct snapst {
    struct vmm_regs regs;
    uint64_t ramhash;
};

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++)
        h = (h ^ w[i]) * 0x100000001b3ull;
    return h;
}

static struct snapst state_of(struct replay *r)
{
    struct snapst s;
    struct vmm_cpu_state c;
    must(r, replay_get_state(r, &c), "get_state");
    s.regs = c.regs;
    s.regs.rflags &= ~IGN;
    s.ramhash = hash_bytes(r->ram, r->ram_size);
    return s;
}

static bool same(const struct snapst *a, const struct snapst *b)
{
    return !memcmp(&a->regs, &b->regs, sizeof a->regs) &&
           a->ramhash == b->ramhash;
}

/* ---- events ----------------------------------------------------------- */

static int check_events(const char *trace)
{
    struct replay *r = open_replay(trace);
    uint64_t n = replay_event_count(r), checked = 0, frames = 0;
    for (uint64_t i = 0; i < n; i++) {
        int err;
        const struct store_event *e = rp_event(r, i, &err);
        if (!e)
            must(r, err, "reading events");
        struct store_event ev = *e;
        if (ev.kind == STORE_EV_IRQ || ev.kind == STORE_EV_EXIT ||
            ev.kind == STORE_EV_EMU)
            continue;
        must(r, replay_goto(r, r->ev_icount[i]), "goto");
        struct vmm_cpu_state c;
        must(r, replay_get_state(r, &c), "get_state");
        const uint64_t *g = (const uint64_t *)&c.regs;
        /* an interrupt delivered at this position: check its frame */
        bool irq = false; /* among the non-I/O events at this position */
        for (uint64_t j = i; j-- > 0 && r->ev_icount[j] == r->ev_icount[i] &&
                             !rp_kind_is_io(r->ev_kind[j]);)
            irq |= r->ev_kind[j] == STORE_EV_IRQ;
        for (uint64_t j = i + 1; j < n && r->ev_icount[j] == r->ev_icount[i] &&
                                 !rp_kind_is_io(r->ev_kind[j]); j++)
            irq |= r->ev_kind[j] == STORE_EV_IRQ;
        irq &= !rp_kind_is_io(ev.kind);
        if (irq) {
            uint64_t f[4];
            size_t done;
            must(r, replay_read_mem(r, c.regs.rsp, f, sizeof f, &done),
                 "reading the interrupt frame");
            if (f[0] != ev.regs[16] || ((f[2] ^ ev.regs[17]) & ~IGN) ||
                f[3] != ev.regs[6])
                FAIL("event %llu (%s) at %llu: frame rip %#llx rflags %#llx "
                     "rsp %#llx, recorded %#llx %#llx %#llx",
                     (unsigned long long)i, rp_kind_name(ev.kind),
                     (unsigned long long)r->ev_icount[i],
                     (unsigned long long)f[0], (unsigned long long)f[2],
                     (unsigned long long)f[3],
                     (unsigned long long)ev.regs[16],
                     (unsigned long long)ev.regs[17],
                     (unsigned long long)ev.regs[6]);
            frames++;
        } else {
            char diff[1200] = "";
            if (rp_regs_diff(ev.regs, g, true, diff, sizeof diff))
                FAIL("event %llu (%s) at %llu:%s", (unsigned long long)i,
                     rp_kind_name(ev.kind),
                     (unsigned long long)r->ev_icount[i], diff);
        }
        checked++;
        if (fails > 5)
            break;
    }
    printf("events: %llu states checked (%llu through an interrupt frame)\n",
           (unsigned long long)checked, (unsigned long long)frames);
    replay_close(r);
    return fails ? 1 : 0;
}

/* ---- random positions ----------------------------------------------- */

static int check_random(const char *trace, int count, uint64_t seed)
{
    struct replay *r = open_replay(trace);
    uint64_t end = replay_end(r);
    for (int i = 0; i < count && !fails; i++) {
        uint64_t n = end > 1 ? rnd(&seed) % (end - 1) : 0;
        must(r, replay_goto(r, n), "goto");
        struct snapst a = state_of(r);
        struct replay_stop st;
        must(r, replay_goto(r, n + 1), "goto");
        must(r, replay_step(r, -1, false, &st), "step back");
        struct snapst b = state_of(r);
        if (!(st.reasons & REPLAY_STOP_STEP) || st.icount != n || !same(&a, &b))
            FAIL("stepi back from %llu: icount %llu, same state %d",
                 (unsigned long long)n + 1, (unsigned long long)st.icount,
                 same(&a, &b));
        struct replay *f = open_replay(trace);
        must(f, replay_goto(f, n), "goto (fresh)");
        struct snapst c = state_of(f);
        replay_close(f);
        if (!same(&a, &c))
            FAIL("goto %llu: differs from a fresh replay's (rip %#llx vs "
                 "%#llx)", (unsigned long long)n,
                 (unsigned long long)a.regs.rip,
                 (unsigned long long)c.regs.rip);
    }
    printf("random: %d positions in [0, %llu)\n", count,
           (unsigned long long)end);
    replay_close(r);
    return fails ? 1 : 0;
}

/* ---- KVM single steps -------------------------------------------------- */

struct kvm_walk {
    struct replay *r;
    struct store *st;
    struct vmm *vm;
    struct vcpu *cpu;
    uint64_t ev;    /* next event to consume */
    uint64_t pos;
    bool broken;    /* an event the walk cannot reproduce: stop */
};

static int walk_io(struct kvm_walk *w, bool mmio, uint64_t addr, unsigned size,
                   bool write, uint64_t *val)
{
    struct store_event e;
    size_t got;
    if (store_events_read(w->st, w->ev, &e, 1, &got) || got != 1)
        return -EIO;
    uint8_t want = mmio ? (write ? STORE_EV_MMIO_WRITE : STORE_EV_MMIO_READ)
                        : (write ? STORE_EV_PIO_OUT : STORE_EV_PIO_IN);
    if (e.kind != want || e.addr != addr || e.size != size) {
        w->broken = true;
        return -EIO;
    }
    if (!write)
        *val = e.value;
    w->ev++;
    return 0;
}

static int walk_pio(void *ctx, uint16_t port, unsigned size, bool write,
                    uint32_t *val)
{
    uint64_t v = *val;
    int rc = walk_io(ctx, false, port, size, write, &v);
    *val = (uint32_t)v;
    return rc;
}

static int walk_mmio(void *ctx, uint64_t gpa, unsigned size, bool write,
                     uint64_t *val)
{
    return walk_io(ctx, true, gpa, size, write, val);
}

static const struct vmm_io_ops walk_ops = {walk_pio, walk_mmio};

/* The KVM vCPU at recorded snapshot k, RAM read from the store. */
static int walk_start(struct kvm_walk *w, uint32_t k)
{
    uint8_t *ram = vmm_ram(w->vm);
    uint64_t pages = vmm_ram_size(w->vm) / 4096;
    for (uint64_t g = 0; g < pages; g++)
        if (store_page_read(w->st, k, g, ram + g * 4096))
            return -EIO;
    void *blob;
    size_t len;
    struct store_snapshot_info si;
    if (store_snapshot_get(w->st, k, &si, &blob, &len, NULL, NULL))
        return -EIO;
    struct vmm_cpu_state s;
    memcpy(&s, blob, sizeof s);
    free(blob);
    int rc = vcpu_set_state(w->cpu, &s);
    w->ev = si.event_index;
    w->pos = si.icount;
    w->broken = false;
    return rc;
}

static bool is_rep_string(const uint8_t *ram, uint64_t size, uint64_t rip)
{
    bool rep = false;
    for (uint64_t i = 0; i < 15 && rip + i < size; i++) {
        uint8_t b = ram[rip + i];
        if (b == 0xf3 || b == 0xf2)
            rep = true;
        else if (b == 0x66 || b == 0x67 || (b >= 0x40 && b <= 0x4f))
            continue;
        else
            return rep && ((b >= 0xa4 && b <= 0xa7) ||
                           (b >= 0xaa && b <= 0xaf) ||
                           (b >= 0x6c && b <= 0x6f));
    }
    return false;
}

/* IN/OUT are done here from the log, not stepped on KVM: around a port
 * exit KVM's single-step sometimes runs on into the next instruction, so
 * its count cannot be trusted there.  1 = done, 0 = not a port insn, -1 =
 * the log disagrees. */
static int port_insn(struct kvm_walk *w, struct vmm_cpu_state *s)
{
    const uint8_t *ram = vmm_ram(w->vm);
    uint64_t rip = s->regs.rip;
    unsigned len = 0, size = 4;
    if (rip + 3 > vmm_ram_size(w->vm))
        return 0;
    if (ram[rip] == 0x66) {
        size = 2;
        len = 1;
    }
    uint8_t op = ram[rip + len];
    if (op < 0xe4 || op > 0xef || (op > 0xe7 && op < 0xec))
        return 0;
    bool imm = op <= 0xe7, write = op & 2;
    if (!(op & 1))
        size = 1;
    uint16_t port = imm ? ram[rip + len + 1] : (uint16_t)s->regs.rdx;
    len += imm ? 2 : 1;
    uint64_t v = s->regs.rax;
    if (walk_io(w, false, port, size, write, &v))
        return -1;
    if (!write && size == 4)
        s->regs.rax = (uint32_t)v;
    else if (!write)
        s->regs.rax = (s->regs.rax & ~((1ull << (8 * size)) - 1)) |
                      (v & ((1ull << (8 * size)) - 1));
    s->regs.rip = rip + len;
    return vcpu_set_regs(w->cpu, &s->regs) ? -1 : 1;
}

/* One instruction (a whole rep on kvm-pvm): how many positions it took, 0
 * when the walk cannot go on (not CPL0, an event it does not reproduce). */
static uint64_t walk_step(struct kvm_walk *w)
{
    struct vmm_cpu_state s;
    if (vcpu_get_state(w->cpu, &s) || s.sregs.cs.dpl != 0)
        return 0;
    uint8_t next = w->ev < w->r->nev ? w->r->ev_kind[w->ev] : 0;
    if (next && !rp_kind_is_io(next) && next != STORE_EV_KICK &&
        next != STORE_EV_WINDOW)
        return 0; /* an interrupt, a hlt or the end comes next */
    const uint8_t *code = vmm_ram(w->vm) + s.regs.rip;
    if (s.regs.rip + 2 > vmm_ram_size(w->vm) || code[0] == 0xcf ||
        (code[0] == 0x48 && code[1] == 0xcf))
        return 0; /* iret: KVM-PVM cannot single-step into ring 3 */
    int port = port_insn(w, &s);
    if (port)
        return port > 0;
    bool rep = is_rep_string(vmm_ram(w->vm), vmm_ram_size(w->vm),
                             s.regs.rip);
    uint64_t rcx = s.regs.rcx;
    struct vcpu_run_opts o = {.single_step = true};
    struct vcpu_exit e;
    if (vcpu_run(w->cpu, &o, &e) || w->broken || e.reason != VCPU_EXIT_STEP)
        return 0; /* string I/O or MMIO: not reproduced here */
    if (!rep)
        return 1;
    struct vmm_regs g;
    vcpu_get_regs(w->cpu, &g);
    return rcx > g.rcx ? rcx - g.rcx : 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int check_kvm(const char *trace, int count, uint64_t seed,
                     uint64_t max)
{
    if (!vmm_host_probe()->kvm || !vmm_host_probe()->step_cpl0) {
        printf("skip: KVM cannot single-step at CPL0 here\n");
        return 77;
    }
    struct kvm_walk w = {.r = open_replay(trace)};
    struct replay *r = w.r;
    if (store_open(trace, false, NULL, &w.st))
        return 2;
    struct vmm_config cfg = {.mem_size = r->ram_size, .backend = "kvm",
                             .serial_in_fd = -1, .serial_out_fd = -1,
                             .cpuid = vmm_cpuid(r->vm)};
    int rc = vmm_create(&cfg, &w.vm);
    if (rc) {
        printf("skip: KVM unusable: %s\n", vmm_strerror(rc));
        return 77;
    }
    w.cpu = vmm_vcpu(w.vm);
    vcpu_set_io(w.cpu, &walk_ops, &w);
    uint64_t *at = calloc((size_t)count, sizeof *at);
    for (int i = 0; i < count; i++)
        at[i] = rnd(&seed) % (max ? max : replay_end(r) + 1);
    qsort(at, (size_t)count, sizeof *at, cmp_u64);
    uint32_t cur = UINT32_MAX;
    int compared = 0;
    for (int i = 0; i < count && !fails; i++) {
        uint32_t k = rp_interval_of(r, at[i]);
        if (k != cur || w.pos > at[i]) {
            if (walk_start(&w, k))
                return 2;
            cur = k;
        }
        uint64_t d;
        while (w.pos < at[i] && (d = walk_step(&w)))
            w.pos += d;
        if (w.pos != at[i]) {
            cur = UINT32_MAX; /* ring 3, an interrupt, or inside a rep */
            continue;
        }
        must(r, replay_goto(r, at[i]), "goto");
        struct vmm_regs kr, rr;
        vcpu_get_regs(w.cpu, &kr);
        struct vmm_cpu_state c;
        must(r, replay_get_state(r, &c), "get_state");
        rr = c.regs;
        char diff[1200] = "";
        if (rp_regs_diff((const uint64_t *)&kr, (const uint64_t *)&rr, true,
                         diff, sizeof diff))
            FAIL("icount %llu (from snapshot %u): KVM vs replay:%s",
                 (unsigned long long)at[i], k, diff);
        else if (memcmp(vmm_ram(w.vm), r->ram, r->ram_size))
            FAIL("icount %llu (from snapshot %u): RAM differs",
                 (unsigned long long)at[i], k);
        compared++;
    }
    printf("kvm: %d of %d positions compared with KVM single-steps at CPL0\n",
           compared, count);
    free(at);
    vmm_destroy(w.vm);
    store_close(w.st);
    replay_close(r);
    if (!fails && compared == 0) {
        printf("no position could be reached at CPL0: nothing checked\n");
        return 1;
    }
    return fails ? 1 : 0;
}

/* ---- breakpoints and watchpoints ------------------------------------- */

static int check_rbreak(const char *trace, uint64_t addr, size_t max,
                        int count, uint64_t seed)
{
    struct replay *t = open_truth(trace);
    uint64_t *hits = calloc(max, sizeof *hits);
    size_t n = 0;
    struct replay_stop st;
    must(t, replay_break_add(t, addr), "break");
    for (;;) {
        must(t, replay_continue(t, false, &st), "continue");
        if (!(st.reasons & REPLAY_STOP_BREAK) || n == max)
            break;
        if (st.pc != addr)
            FAIL("forward stop at pc %#llx", (unsigned long long)st.pc);
        hits[n++] = st.icount;
    }
    replay_close(t);
    /* The same hits forward with skipping, then backwards. */
    struct replay *r = open_replay(trace);
    must(r, replay_break_add(r, addr), "break");
    for (size_t i = 0; i < n && !fails; i++) {
        must(r, replay_continue(r, false, &st), "continue");
        if (!(st.reasons & REPLAY_STOP_BREAK) || st.icount != hits[i])
            FAIL("continue %zu: icount %llu reasons %#x, re-executing "
                 "everything hits at %llu", i + 1,
                 (unsigned long long)st.icount, st.reasons,
                 (unsigned long long)hits[i]);
    }
    if (n < max)
        must(r, replay_goto(r, replay_end(r)), "goto end");
    else
        must(r, replay_goto(r, hits[n - 1] + 1), "goto");
    size_t seen = 0;
    for (size_t i = n; i-- > 0 && !fails;) {
        must(r, replay_continue(r, true, &st), "reverse continue");
        if (!(st.reasons & REPLAY_STOP_BREAK) || st.icount != hits[i] ||
            st.pc != addr)
            FAIL("reverse continue %zu: icount %llu reasons %#x, forward "
                 "hit %llu", n - i, (unsigned long long)st.icount,
                 st.reasons, (unsigned long long)hits[i]);
        seen++;
    }
    if (!fails) {
        must(r, replay_continue(r, true, &st), "reverse continue");
        if (!(st.reasons & REPLAY_STOP_BEGIN) || st.icount != 0)
            FAIL("past the first hit: reasons %#x icount %llu", st.reasons,
                 (unsigned long long)st.icount);
    }
    /* from random positions: the stop is a hit, and going forward from it
     * the next hit is at or after where the search started */
    uint64_t end = replay_end(r);
    for (int i = 0; i < count && !fails; i++) {
        uint64_t p = rnd(&seed) % (end + 1);
        must(r, replay_goto(r, p), "goto");
        must(r, replay_continue(r, true, &st), "reverse continue");
        if (st.reasons & REPLAY_STOP_BEGIN)
            continue;
        uint64_t h = st.icount;
        if (!(st.reasons & REPLAY_STOP_BREAK) || st.pc != addr || h >= p)
            FAIL("from %llu: stop at %llu pc %#llx reasons %#x",
                 (unsigned long long)p, (unsigned long long)h,
                 (unsigned long long)st.pc, st.reasons);
        must(r, replay_continue(r, false, &st), "continue");
        if (st.icount < p && (st.reasons & REPLAY_STOP_BREAK))
            FAIL("from %llu: reverse stop at %llu, but forward from there "
                 "the next hit is at %llu", (unsigned long long)p,
                 (unsigned long long)h, (unsigned long long)st.icount);
    }
    printf("rbreak: %zu hits forward, %zu found backwards, %d random "
           "starts\n", n, seen, count);
    free(hits);
    replay_close(r);
    return fails ? 1 : 0;
}

/* The last instruction in [lo, p) that changed [addr, addr+len): stepping
 * one instruction at a time. */
static bool brute_writer(struct replay *r, uint64_t lo, uint64_t p,
                         uint64_t addr, uint32_t len, uint64_t *icount,
                         uint64_t *rip)
{
    uint8_t before[64], after[64];
    size_t done;
    bool found = false;
    must(r, replay_goto(r, lo), "goto");
    must(r, replay_read_mem(r, addr, before, len, &done), "read");
    while (replay_icount(r) < p) {
        uint64_t at = replay_icount(r), pc;
        struct vmm_cpu_state c;
        must(r, replay_get_state(r, &c), "state");
        pc = c.regs.rip;
        struct replay_stop st;
        must(r, replay_step(r, 1, false, &st), "step");
        must(r, replay_read_mem(r, addr, after, len, &done), "read");
        if (memcmp(before, after, len)) {
            found = true;
            *icount = at;
            *rip = pc;
            memcpy(before, after, len);
        }
    }
    return found;
}

static int check_rwatch(const char *trace, uint64_t addr, uint32_t len,
                        int count, uint64_t seed)
{
    struct replay *r = open_replay(trace);
    if (len > 64)
        len = 64;
    uint64_t end = replay_end(r);
    int compared = 0;
    uint64_t nirq = 0;
    for (uint64_t e = 0; e < r->nev; e++)
        nirq += r->ev_kind[e] == STORE_EV_IRQ;
    for (int i = 0; i < count && !fails; i++) {
        /* anywhere in a short trace; in a long one, shortly after an
         * interrupt (handlers write what is watched) */
        uint64_t p = rnd(&seed) % (end + 1);
        if (end > (1u << 20) && nirq) {
            uint64_t k = rnd(&seed) % nirq, e = 0;
            for (;; e++)
                if (r->ev_kind[e] == STORE_EV_IRQ && k-- == 0)
                    break;
            p = r->ev_icount[e] + rnd(&seed) % 20000;
            p = p > end ? end : p;
        }
        must(r, replay_goto(r, p), "goto");
        must(r, replay_watch_add(r, addr, len, VCPU_WATCH_WRITE), "watch");
        struct replay_stop st;
        must(r, replay_continue(r, true, &st), "reverse continue");
        must(r, replay_watch_remove(r, addr, len, VCPU_WATCH_WRITE), "unwatch");
        uint64_t window = 1 << 16, ic = 0, rip = 0;
        bool found = false;
        for (;;) {
            uint64_t lo = p > window ? p - window : 0;
            found = brute_writer(r, lo, p, addr, len, &ic, &rip);
            if (found || lo == 0 || window >= (1u << 18))
                break;
            window *= 4;
        }
        if (!found)
            continue; /* no value change near: nothing to compare */
        if (!(st.reasons & REPLAY_STOP_WATCH) || st.icount != ic ||
            st.pc != rip || st.watch_icount != ic)
            FAIL("from %llu: reverse watch stopped at %llu pc %#llx "
                 "(reasons %#x), the last change is at %llu pc %#llx",
                 (unsigned long long)p, (unsigned long long)st.icount,
                 (unsigned long long)st.pc, st.reasons,
                 (unsigned long long)ic, (unsigned long long)rip);
        compared++;
    }
    printf("rwatch: %d of %d positions compared with a brute-force scan\n",
           compared, count);
    replay_close(r);
    if (!fails && !compared) {
        printf("no write found near any position: nothing checked\n");
        return 1;
    }
    return fails ? 1 : 0;
}

/* ---- the API's promises ------------------------------------------------ */

struct intr_arg {
    struct replay *r;
    int delay_ms;
};

static void *interrupter(void *p)
{
    struct intr_arg *a = p;
    struct timespec ts = {0, a->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    replay_interrupt(a->r);
    return NULL;
}

static int check_api(const char *trace, uint64_t waddr, uint32_t wlen,
                     uint64_t never)
{
    struct replay *r = open_replay(trace);
    uint64_t end = replay_end(r);
    struct replay_stop st;
    /* the ends */
    must(r, replay_continue(r, true, &st), "reverse continue at 0");
    if (st.reasons != REPLAY_STOP_BEGIN || st.icount != 0)
        FAIL("reverse continue at 0: reasons %#x", st.reasons);
    must(r, replay_step(r, INT64_MAX, false, &st), "step far");
    if (!(st.reasons & REPLAY_STOP_END) || (st.reasons & REPLAY_STOP_STEP) ||
        st.icount != end)
        FAIL("stepping past the end: reasons %#x at %llu", st.reasons,
             (unsigned long long)st.icount);
    for (int i = 0; i < 2; i++) {
        must(r, replay_continue(r, false, &st), "continue at the end");
        if (st.reasons != (REPLAY_STOP_END | REPLAY_STOP_EXITED) ||
            st.icount != end || st.exit_status != r->exit_status)
            FAIL("continue at the end: reasons %#x status %d", st.reasons,
                 st.exit_status);
    }
    if (replay_goto(r, end + 1) != REPLAY_E_RANGE)
        FAIL("goto past the end accepted");
    must(r, replay_step(r, INT64_MIN, false, &st), "step back far");
    if (!(st.reasons & REPLAY_STOP_BEGIN) || st.icount != 0)
        FAIL("stepping back past 0: reasons %#x", st.reasons);

    /* the user's writes last until the position changes */
    uint64_t n = end / 2, orig, val = 0x5eed5eed5eed5eedull, got;
    size_t done;
    struct vmm_cpu_state c0, c;
    must(r, replay_goto(r, n), "goto");
    must(r, replay_get_state(r, &c0), "state");
    must(r, replay_read_mem(r, waddr, &orig, 8, &done), "read");
    must(r, replay_write_mem(r, waddr, &val, 8, &done), "write");
    c = c0;
    c.regs.rbx ^= 0xffff;
    must(r, replay_set_state(r, &c), "set state");
    must(r, replay_read_mem(r, waddr, &got, 8, &done), "read");
    must(r, replay_get_state(r, &c), "state");
    if (got != val || c.regs.rbx != (c0.regs.rbx ^ 0xffff))
        FAIL("writes not visible at the position");
    must(r, replay_step(r, 1, false, &st), "step");
    must(r, replay_step(r, -1, false, &st), "step back");
    must(r, replay_read_mem(r, waddr, &got, 8, &done), "read");
    must(r, replay_get_state(r, &c), "state");
    if (got != orig || c.regs.rbx != c0.regs.rbx || c.regs.rip != c0.regs.rip)
        FAIL("writes survived a move: memory %#llx (was %#llx)",
             (unsigned long long)got, (unsigned long long)orig);

    /* a stepped instruction that writes a watched range */
    must(r, replay_goto(r, end), "goto end");
    must(r, replay_watch_add(r, waddr, wlen, VCPU_WATCH_WRITE), "watch");
    must(r, replay_continue(r, true, &st), "reverse continue");
    if (st.reasons & REPLAY_STOP_WATCH) {
        uint64_t h = st.icount, pc = st.pc;
        must(r, replay_step(r, 1, true, &st), "step over the writer");
        if (st.reasons != (REPLAY_STOP_WATCH | REPLAY_STOP_STEP) ||
            st.icount != h + 1 || st.watch_addr < waddr ||
            st.watch_addr >= waddr + wlen || st.watch_kind != VCPU_WATCH_WRITE)
            FAIL("step over the writer: reasons %#x at %llu addr %#llx",
                 st.reasons, (unsigned long long)st.icount,
                 (unsigned long long)st.watch_addr);
        must(r, replay_step(r, -1, true, &st), "step back over it");
        if (st.reasons != (REPLAY_STOP_WATCH | REPLAY_STOP_STEP) ||
            st.icount != h || st.pc != pc)
            FAIL("step back over the writer: reasons %#x at %llu",
                 st.reasons, (unsigned long long)st.icount);
    } else {
        FAIL("no writer of %#llx found", (unsigned long long)waddr);
    }
    must(r, replay_watch_remove(r, waddr, wlen, VCPU_WATCH_WRITE), "unwatch");

    /* replay_interrupt cancels the running call, not a later one */
    replay_interrupt(r); /* nothing runs: ignored */
    must(r, replay_goto(r, 0), "goto 0");
    must(r, replay_break_add(r, never), "break");
    /* A breakpoint that never runs lets the continue jump to the end (code
     * coverage); a read watchpoint cannot be skipped, so it runs long. */
    must(r, replay_watch_add(r, never, 1, VCPU_WATCH_READ), "rwatch");
    struct intr_arg ia = {r, 10};
    pthread_t th;
    pthread_create(&th, NULL, interrupter, &ia);
    int rc = replay_continue(r, false, &st);
    pthread_join(th, NULL);
    if (rc || st.reasons != REPLAY_STOP_INTERRUPTED || st.icount >= end)
        FAIL("interrupted continue: rc %d reasons %#x at %llu", rc,
             st.reasons, (unsigned long long)st.icount);
    must(r, replay_continue(r, false, &st), "continue after");
    if (!(st.reasons & REPLAY_STOP_END))
        FAIL("the next call was interrupted too: reasons %#x", st.reasons);
    printf("api: ends, user writes, stepped watch hits, interruption\n");
    replay_close(r);
    return fails ? 1 : 0;
}

/* ---- ground truth for the gdb tests ------------------------------------ */

static int print_states(const char *trace, uint64_t addr, uint32_t len,
                        char **pos, int n)
{
    static const char *const names[] = {
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8",
        "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip", "eflags"};
    struct replay *r = open_truth(trace);
    uint8_t *mem = malloc(len ? len : 1);
    for (int i = 0; i < n && mem; i++) {
        uint64_t ic = strtoull(pos[i], 0, 0);
        must(r, replay_goto(r, ic), "goto");
        struct vmm_cpu_state c;
        must(r, replay_get_state(r, &c), "get_state");
        const uint64_t *g = (const uint64_t *)&c.regs;
        printf("state %llu", (unsigned long long)ic);
        for (int k = 0; k < VMM_NREGS; k++)
            printf(" %s=%llx", names[k], (unsigned long long)g[k]);
        size_t done = 0;
        if (len)
            must(r, replay_read_mem(r, addr, mem, len, &done), "read");
        printf(" mem=");
        for (size_t k = 0; k < done; k++)
            printf("%02x", mem[k]);
        printf("\n");
    }
    free(mem);
    replay_close(r);
    return 0;
}

static int print_writer(const char *trace, uint64_t addr, uint32_t len,
                        uint64_t lo, uint64_t p)
{
    struct replay *r = open_truth(trace);
    uint64_t ic = 0, rip = 0;
    if (len > 64)
        len = 64;
    if (brute_writer(r, lo, p, addr, len, &ic, &rip))
        printf("writer %llu %#llx\n", (unsigned long long)ic,
               (unsigned long long)rip);
    else
        printf("writer none\n");
    replay_close(r);
    return 0;
}

static int print_hits(const char *trace, uint64_t addr, uint64_t max)
{
    struct replay *r = open_truth(trace);
    must(r, replay_break_add(r, addr), "break");
    struct replay_stop st;
    for (uint64_t n = 0; n < max; n++) {
        must(r, replay_continue(r, false, &st), "continue");
        if (!(st.reasons & REPLAY_STOP_BREAK))
            break;
        printf("hit %llu\n", (unsigned long long)st.icount);
    }
    replay_close(r);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && !strcmp(argv[1], "state"))
        return print_states(argv[2], strtoull(argv[3], 0, 0),
                            (uint32_t)strtoul(argv[4], 0, 0), argv + 5,
                            argc - 5);
    if (argc >= 7 && !strcmp(argv[1], "writer"))
        return print_writer(argv[2], strtoull(argv[3], 0, 0),
                            (uint32_t)strtoul(argv[4], 0, 0),
                            strtoull(argv[5], 0, 0), strtoull(argv[6], 0, 0));
    if (argc >= 5 && !strcmp(argv[1], "hits"))
        return print_hits(argv[2], strtoull(argv[3], 0, 0),
                          strtoull(argv[4], 0, 0));
    if (argc >= 3 && !strcmp(argv[1], "events"))
        return check_events(argv[2]);
    if (argc >= 5 && !strcmp(argv[1], "random"))
        return check_random(argv[2], atoi(argv[3]), strtoull(argv[4], 0, 0));
    if (argc >= 5 && !strcmp(argv[1], "kvm"))
        return check_kvm(argv[2], atoi(argv[3]), strtoull(argv[4], 0, 0),
                         argc > 5 ? strtoull(argv[5], 0, 0) : 0);
    if (argc >= 4 && !strcmp(argv[1], "rbreak"))
        return check_rbreak(argv[2], strtoull(argv[3], 0, 0),
                            argc > 4 ? strtoull(argv[4], 0, 0) : 64,
                            argc > 5 ? atoi(argv[5]) : 0,
                            argc > 6 ? strtoull(argv[6], 0, 0) : 1);
    if (argc >= 7 && !strcmp(argv[1], "rwatch"))
        return check_rwatch(argv[2], strtoull(argv[3], 0, 0),
                            (uint32_t)strtoul(argv[4], 0, 0), atoi(argv[5]),
                            strtoull(argv[6], 0, 0));
    if (argc >= 6 && !strcmp(argv[1], "api"))
        return check_api(argv[2], strtoull(argv[3], 0, 0),
                         (uint32_t)strtoul(argv[4], 0, 0),
                         strtoull(argv[5], 0, 0));
    fprintf(stderr, "usage: replay_check events|random|kvm|rbreak|rwatch|api|"
                    "state|writer|hits "
                    "TRACE ... (see tests/tools/replay_check.c)\n");
    return 2;
}
