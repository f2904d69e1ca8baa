/*
 * vcpu_kvmstep_rep.c — rep string instructions on the kvm-step backend,
 * with every iteration a position (replayer.h).
 *
 * KVM's emulator runs a rep in chunks of up to a page per single step,
 * and leaves RIP at the instruction with RCX = 0 until one more step
 * (measured on kvm-pvm, Linux 6.18).  So the iterations are chosen here:
 * RCX (as wide as the address size) is lowered to the number wanted, KVM
 * steps until they are done, and then RCX gets the iterations really left
 * and RIP stays at the instruction (more to go) or moves past it (none
 * left, or a REPE/REPNE comparison ended it).  Registers only: the
 * iterations themselves are KVM's.  A fault in iteration k leaves k done
 * (positions k + 1 with the faulting one) and RCX is fixed under the
 * handler, which cannot have seen it (the frame holds no RCX).
 *
 * One iteration per run where exact registers matter inside: INS/OUTS
 * (each element is an io callback with the registers before it), armed
 * watchpoints (a hit is an iteration), and any range that reaches
 * guest-physical memory outside RAM (MMIO callbacks).  Elsewhere up to
 * KS_REP_MAX iterations run at once, which is what makes memset-like
 * loops cheap.
 */
#include <string.h>

#include "vmm/vcpu_kvmstep_int.h"

#define RF_DF (1ull << 10)
#define RF_ZF (1ull << 6)

/* RCX after `done` iterations with `left` to go, as the CPU writes it
 * (a 32-bit count zero-extends, a 16-bit one keeps the upper bits). */
static uint64_t rcx_after(uint64_t rcx0, uint64_t left, uint64_t done,
                          unsigned asz)
{
    if (!done)
        return rcx0;
    if (asz == 8)
        return left;
    if (asz == 4)
        return (uint32_t)left;
    return (rcx0 & ~0xffffull) | (left & 0xffff);
}

static bool is_io(const struct ks_insn *in) { return in->op >= 0x6c && in->op <= 0x6f; }

static bool is_compare(const struct ks_insn *in)
{
    return in->op == 0xa6 || in->op == 0xa7 || in->op == 0xae ||
           in->op == 0xaf;
}

static bool reads_src(const struct ks_insn *in)
{
    return (in->op >= 0xa4 && in->op <= 0xa7) || in->op == 0xac ||
           in->op == 0xad || in->op == 0x6e || in->op == 0x6f;
}

static bool uses_dst(const struct ks_insn *in)
{
    return !(in->op == 0xac || in->op == 0xad || in->op == 0x6e ||
             in->op == 0x6f);
}

static uint64_t seg_base(const struct vmm_sregs *s, uint8_t prefix)
{
    switch (prefix) {
    case 0x26: return s->es.base;
    case 0x2e: return s->cs.base;
    case 0x36: return s->ss.base;
    case 0x64: return s->fs.base;
    case 0x65: return s->gs.base;
    default: return s->ds.base;
    }
}

/* Every mapped page of n elements from reg (downward with DF) in RAM? */
static bool range_in_ram(struct ks *ks, const struct vmm_sregs *s,
                         uint64_t base, uint64_t reg, const struct ks_insn *in,
                         uint64_t n, bool down)
{
    uint64_t mask = vmm_asz_mask(in->asz), span = n * in->esize;
    uint64_t a = reg & mask;
    uint64_t lo = down ? a - (span - in->esize) : a;
    bool lm = in->mode == 2;
    for (uint64_t off = 0; off < span + 4096; off += 4096) {
        uint64_t va = lo + (off < span ? off : span - 1) + base;
        if (!lm)
            va = (uint32_t)va;
        uint64_t gpa;
        if (vmm_walk(ks->cpu->ram, ks->cpu->ram_size, s, va, false, &gpa))
            continue; /* unmapped: a #PF, which a step places exactly */
        if (gpa >= ks->cpu->ram_size)
            return false;
        if (off >= span)
            break;
    }
    return true;
}

/* May n iterations run in one go (no io callback inside)? */
static bool many_ok(struct ks *ks, const struct ks_insn *in, uint64_t n)
{
    const struct vmm_cpu_state *p = &ks->pre;
    bool down = p->regs.rflags & RF_DF, lm = in->mode == 2;
    if (n <= 1 || is_io(in) || ks->nw)
        return false;
    if (reads_src(in)) {
        uint64_t b = seg_base(&p->sregs, in->seg);
        if (lm && in->seg != 0x64 && in->seg != 0x65)
            b = 0;
        if (!range_in_ram(ks, &p->sregs, b, p->regs.rsi, in, n, down))
            return false;
    }
    if (uses_dst(in)) {
        uint64_t b = lm ? 0 : p->sregs.es.base;
        if (!range_in_ram(ks, &p->sregs, b, p->regs.rdi, in, n, down))
            return false;
    }
    return true;
}

/* The REPE/REPNE condition that ends a comparison after an iteration. */
static bool compare_ends(const struct ks_insn *in, uint64_t rflags)
{
    if (!is_compare(in))
        return false;
    bool zf = rflags & RF_ZF;
    return in->rep == 0xf3 ? !zf : zf;
}

/* Puts RCX and RIP where `done` of c0 iterations leave them. */
static int settle_regs(struct ks *ks, const struct ks_insn *in, uint64_t c0,
                       uint64_t done, bool at_next, struct vmm_regs *g)
{
    const struct vmm_regs *p = &ks->pre.regs;
    uint64_t left = c0 - done;
    g->rcx = rcx_after(p->rcx, left, done, in->asz);
    g->rip = at_next ? p->rip + in->len : p->rip;
    if (in->mode != 2)
        g->rip = (uint32_t)g->rip;
    ks->rep_cont = !at_next;
    ks->rep_rip = p->rip;
    return vcpu_set_regs(ks->in, g);
}

/* After the inner step(s): where the iterations ended. */
static int rep_finish(struct ks *ks, const struct ks_insn *in, uint64_t c0,
                      uint64_t n, bool fault, struct vcpu_exit *e,
                      uint64_t *adv)
{
    uint64_t mask = vmm_asz_mask(in->asz);
    struct vmm_regs g;
    int rc = vcpu_get_regs(ks->in, &g);
    if (rc)
        return rc;
    uint64_t left_now = g.rcx & mask;
    if (left_now > n)
        return ks_fail(e, VMM_E_STATE, "kvm-step: rep at rip %#llx: RCX "
                       "went from %llu to %llu", (unsigned long long)
                       ks->pre.regs.rip, (unsigned long long)n,
                       (unsigned long long)left_now);
    uint64_t done = n - left_now;
    if (fault) { /* iteration `done` faulted: it counts, the handler runs */
        g.rcx = rcx_after(ks->pre.regs.rcx, c0 - done, done, in->asz);
        ks->rep_cont = false;
        *adv = done + 1;
        return vcpu_set_regs(ks->in, &g);
    }
    bool past = g.rip != ks->pre.regs.rip;
    bool ends = done && compare_ends(in, g.rflags);
    if (!done || (past && done < n && !ends))
        return ks_fail(e, VMM_E_STATE, "kvm-step: rep at rip %#llx ran %llu "
                       "of %llu iterations and left it", (unsigned long long)
                       ks->pre.regs.rip, (unsigned long long)done,
                       (unsigned long long)n);
    *adv = done;
    return settle_regs(ks, in, c0, done, done == c0 || ends, &g);
}

/* A triple fault or an iteration KVM could not emulate: reported as is,
 * with RCX as the iterations done leave it. */
static int rep_stopped(struct ks *ks, const struct ks_insn *in, uint64_t c0,
                       uint64_t n, const struct vcpu_exit *ie,
                       struct vcpu_exit *e, uint64_t *adv)
{
    struct vmm_regs g;
    int rc = vcpu_get_regs(ks->in, &g);
    if (rc)
        return rc;
    uint64_t left_now = g.rcx & vmm_asz_mask(in->asz);
    uint64_t done = left_now <= n ? n - left_now : 0;
    g.rcx = rcx_after(ks->pre.regs.rcx, c0 - done, done, in->asz);
    ks->rep_cont = false;
    *e = *ie;
    *adv = done + (ie->reason == VCPU_EXIT_SHUTDOWN);
    return ie->reason == VCPU_EXIT_SHUTDOWN ? 0 : vcpu_set_regs(ks->in, &g);
}

int ks_rep_step(struct ks *ks, const struct ks_insn *in, uint64_t want,
                struct vcpu_exit *e, uint64_t *adv)
{
    uint64_t mask = vmm_asz_mask(in->asz), c0 = ks->pre.regs.rcx & mask;
    uint64_t n = c0 < want ? c0 : want;
    if (n > KS_REP_MAX)
        n = KS_REP_MAX;
    if (!many_ok(ks, in, n))
        n = 1;
    struct vmm_regs g = ks->pre.regs;
    g.rcx = (g.rcx & ~mask) | n;
    int rc = vcpu_set_regs(ks->in, &g);
    uint64_t last = n;
    bool fault = false;
    for (unsigned idle = 0; !rc;) {
        struct vcpu_exit ie;
        if ((rc = ks_kvm_step(ks, &ie)))
            break;
        if (ie.reason == VCPU_EXIT_BREAKPOINT) {
            fault = true; /* delivered to an armed handler */
            break;
        }
        if (ie.reason != VCPU_EXIT_STEP && ie.reason != VCPU_EXIT_IO &&
            ie.reason != VCPU_EXIT_KICK)
            return rep_stopped(ks, in, c0, n, &ie, e, adv);
        struct vmm_cpu_state post;
        if ((rc = vcpu_kvm_get_sync(ks->in, &post)))
            break;
        uint64_t left = post.regs.rcx & mask;
        if (post.regs.rip != ks->pre.regs.rip ||
            post.sregs.cs.selector != ks->pre.sregs.cs.selector) {
            if (post.regs.rip == ks->pre.regs.rip + in->len)
                break;
            return ks_fail(e, VMM_E_UNSUPPORTED, "kvm-step: an exception "
                           "in the rep at rip %#llx went to a handler that "
                           "was not armed (%#llx): its position is lost",
                           (unsigned long long)ks->pre.regs.rip,
                           (unsigned long long)post.regs.rip);
        }
        if (!left)
            break;
        idle = left == last ? idle + 1 : 0;
        last = left;
        if (idle > 2)
            return ks_fail(e, VMM_E_STATE, "kvm-step: the rep at rip %#llx "
                           "makes no progress", (unsigned long long)
                           ks->pre.regs.rip);
    }
    return rc ? rc : rep_finish(ks, in, c0, n, fault, e, adv);
}
