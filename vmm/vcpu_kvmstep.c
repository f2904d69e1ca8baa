/*
 * vcpu_kvmstep.c — the "kvm-step" CPU backend: exact positions on KVM by
 * single-stepping, for guests the Unicorn backend cannot run (Unicorn
 * 2.0.1 ignores guest page tables: replayer.h, DESIGN.md "replayer/").
 *
 * It wraps a "kvm" vCPU over the same RAM and runs the guest one KVM
 * single step at a time, so every position is an instruction boundary it
 * has seen: a breakpoint is a RIP compare before a step, a write
 * watchpoint a compare of the watched bytes after it, and io callbacks see
 * the registers saved before it (vmm.h).  Correct and slow: ~12 us per
 * step on kvm-pvm, ~70 000 instructions/s.
 *
 * What a KVM single step does not give by itself (measured on kvm-pvm,
 * Linux 6.18, guest ring 0; tests/unit/test_kvmstep.c):
 *  - a rep string instruction runs whole in one step (in chunks), so rep
 *    iterations are chosen by lowering RCX (vcpu_kvmstep_rep.c);
 *  - an instruction that faults, and an injected interrupt, are delivered
 *    and the handler's first instruction runs in the same step.  The
 *    handler entries of the vectors an instruction is likely to raise
 *    (#PF #GP #UD #DF, or the one it raises by design: int n, a div's
 *    #DE) are armed as hardware breakpoints, which stop before the
 *    handler runs; a step that delivered to a handler not armed is found
 *    by its exception frame and reported as an error, never miscounted;
 *  - after a port or MMIO exit the next single step also runs the next
 *    instruction, so the access is completed with immediate_exit;
 *  - under kvm-pvm single-stepping at CPL3 does not work (the #DB goes to
 *    the guest's IDT): a run at a CPL the host cannot step, or a return
 *    to one (IRET, RETF, SYSRET, SYSEXIT), stops before the instruction
 *    with VMM_E_NOSTEP naming the CPL and the host (vmm_host_probe).
 * Code coverage is not kept (vcpu_coverage: unsupported).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vcpu_kvmstep_int.h"

static const struct vcpu_run_opts one_step = {.single_step = true};

int ks_fail(struct vcpu_exit *e, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof e->detail, fmt, ap);
    va_end(ap);
    e->reason = VCPU_EXIT_ERROR;
    return err;
}

static const char *host_name(const struct ks *ks)
{
    return ks->host->pvm ? "kvm-pvm, which single-steps guest ring 0 only"
                         : ks->host->kvm_module[0] ? ks->host->kvm_module
                                                   : "this KVM";
}

/* ---- io callbacks of the inner vCPU ------------------------------------- */

/* A failed callback (rc < 0) fails the step itself (ks_kvm_step). */
static void io_note(struct ks *ks, int rc, bool mmio)
{
    ks->io_mmio = mmio;
    if (rc > 0)
        ks->io_stop = true;
}

static int ks_pio(void *ctx, uint16_t port, unsigned size, bool write,
                  uint32_t *val)
{
    struct ks *ks = ctx;
    int rc = vcpu_io_pio(ks->cpu, port, size, write, val);
    ks->io_exit.io.port = port;
    ks->io_exit.io.size = (uint8_t)size;
    ks->io_exit.io.write = write;
    ks->io_exit.io.value = *val;
    io_note(ks, rc, false);
    return rc < 0 ? rc : 0;
}

static int ks_mmio(void *ctx, uint64_t gpa, unsigned size, bool write,
                   uint64_t *val)
{
    struct ks *ks = ctx;
    int rc = vcpu_io_mmio(ks->cpu, gpa, size, write, val);
    ks->io_exit.mmio.gpa = gpa;
    ks->io_exit.mmio.size = (uint8_t)size;
    ks->io_exit.mmio.write = write;
    ks->io_exit.mmio.value = *val;
    io_note(ks, rc, true);
    return rc < 0 ? rc : 0;
}

static const struct vmm_io_ops ks_io = {.pio = ks_pio, .mmio = ks_mmio};

/* ---- one KVM step -------------------------------------------------------- */

/* Lets KVM finish a pending access without running on (immediate_exit):
 * the next single step would run the next instruction too. */
static int complete_access(struct ks *ks)
{
    for (int i = 0; i < 3; i++) {
        struct vcpu_exit ce;
        vcpu_kick(ks->in);
        int rc = vcpu_run(ks->in, &one_step, &ce);
        if (rc)
            return rc;
        if (ce.reason == VCPU_EXIT_KICK)
            return 0; /* immediate_exit consumed too */
        if (ce.reason != VCPU_EXIT_STEP)
            return VMM_E_KVM;
    }
    return VMM_E_KVM;
}

int ks_kvm_step(struct ks *ks, struct vcpu_exit *ie)
{
    ks->in_step = true;
    int rc = vcpu_run(ks->in, &one_step, ie);
    if (!rc && ie->reason == VCPU_EXIT_IO)
        rc = complete_access(ks);
    ks->in_step = false;
    if (rc < 0) {
        /* an io callback failed (vmm.h: the access is abandoned) or KVM
         * did: leave nothing pending, and the state before the step */
        complete_access(ks);
        vcpu_set_regs(ks->in, &ks->pre.regs);
        if (!ie->detail[0])
            snprintf(ie->detail, sizeof ie->detail, "%s",
                     vmm_strerror(rc));
    }
    return rc;
}

/* ---- handler entries as hardware breakpoints --------------------------- */

bool ks_is_armed(const struct ks *ks, uint64_t lin)
{
    for (size_t i = 0; i < ks->ndr; i++)
        if (ks->dr[i] == lin)
            return true;
    return false;
}

int ks_arm_handlers(struct ks *ks, const struct vmm_sregs *s, uint64_t cur,
                    const int *vecs, size_t n)
{
    uint64_t want[KS_NDR];
    size_t k = 0;
    if (!ks->host->hw_break_cpl0)
        return 0; /* nothing to arm with: the frame check still reports */
    for (size_t i = 0; i < n && k < KS_NDR; i++) {
        uint64_t a;
        bool dup = false;
        if (vecs[i] < 0 || !ks_gate_target(ks, s, (unsigned)vecs[i], &a) ||
            a == cur)
            continue;
        for (size_t j = 0; j < k; j++)
            dup |= want[j] == a;
        if (!dup)
            want[k++] = a;
    }
    if (k == ks->ndr && !memcmp(want, ks->dr, k * sizeof *want))
        return 0;
    int rc = vcpu_set_breakpoints(ks->in, want, k);
    if (rc)
        return rc;
    memcpy(ks->dr, want, k * sizeof *want);
    ks->ndr = k;
    return 0;
}

/* The vectors worth a breakpoint for the step of in. */
static int arm_for(struct ks *ks, const struct ks_insn *in)
{
    static const int likely[] = {14, 13, 6, 8, 0, 12, 17};
    int v[1 + sizeof likely / sizeof *likely];
    size_t n = 0;
    if (in->vec >= 0)
        v[n++] = in->vec;
    for (size_t i = 0; i < sizeof likely / sizeof *likely; i++)
        if (likely[i] != in->vec)
            v[n++] = likely[i];
    return ks_arm_handlers(ks, &ks->pre.sregs,
                           vmm_code_linear(&ks->pre.sregs, ks->pre.regs.rip), v,
                           n);
}

/* ---- one plain instruction ---------------------------------------------- */

/* Is the state after a step exactly at a handler's entry (the Unicorn
 * fallback delivers and stops there)? */
static bool at_handler_entry(struct ks *ks, const struct vmm_cpu_state *s)
{
    uint64_t lin = vmm_code_linear(&s->sregs, s->regs.rip), a;
    for (unsigned v = 0; v < 256; v++)
        if (ks_gate_target(ks, &s->sregs, v, &a) && a == lin)
            return true;
    return false;
}

/* A step that ended with a single-step trap: one instruction, unless an
 * exception went to a handler that was not armed. */
static int check_step(struct ks *ks, const struct ks_insn *in,
                      struct vcpu_exit *e, uint64_t *adv)
{
    struct vmm_cpu_state post;
    int rc = vcpu_kvm_get_sync(ks->in, &post);
    if (rc)
        return rc;
    const struct vmm_regs *p = &ks->pre.regs;
    uint64_t next = p->rip + in->len;
    if (in->mode != 2)
        next = (uint32_t)next;
    *adv = 1;
    if (!in->branch && in->len && post.regs.rip == next &&
        post.sregs.cs.selector == ks->pre.sregs.cs.selector)
        return 0;
    bool frame = ks_frame_found(ks, &ks->pre, &post, in);
    if (!frame && in->branch)
        return 0;
    if (frame && at_handler_entry(ks, &post))
        return 0;
    return ks_fail(e, VMM_E_UNSUPPORTED,
                   "kvm-step: the instruction at rip %#llx %s; the guest "
                   "went on to rip %#llx in the same single step, so its "
                   "position cannot be told", (unsigned long long)p->rip,
                   frame ? "raised an exception whose handler was not armed "
                           "as a breakpoint"
                         : "did not end at the next instruction",
                   (unsigned long long)post.regs.rip);
}

static int plain_step(struct ks *ks, const struct ks_insn *in,
                      struct vcpu_exit *e, uint64_t *adv)
{
    struct vcpu_exit ie;
    int rc;
    for (int tries = 0;; tries++) {
        if ((rc = ks_kvm_step(ks, &ie))) {
            snprintf(e->detail, sizeof e->detail, "%s", ie.detail);
            return rc;
        }
        if (ie.reason != VCPU_EXIT_KICK)
            break;
        /* a signal before the guest ran: nothing happened, again */
        struct vmm_regs g;
        if ((rc = vcpu_get_regs(ks->in, &g)))
            return rc;
        if (memcmp(&g, &ks->pre.regs, sizeof g) || tries > 3)
            return ks_fail(e, VMM_E_KVM, "kvm-step: a single step at rip "
                           "%#llx was interrupted", (unsigned long long)
                           ks->pre.regs.rip);
    }
    *adv = 1;
    switch (ie.reason) {
    case VCPU_EXIT_STEP:
        /* KVM single-steps over HLT (kvm-pvm, no KVM_EXIT_HLT): it is
         * the HLT exit of vmm.h all the same, RIP after it */
        if (!(rc = check_step(ks, in, e, adv)) && in->hlt && !e->reason)
            e->reason = VCPU_EXIT_HLT;
        return rc;
    case VCPU_EXIT_IO:
        return 0;
    case VCPU_EXIT_BREAKPOINT: {
        struct vmm_cpu_state post;
        if ((rc = vcpu_kvm_get_sync(ks->in, &post)))
            return rc;
        if (ks_is_armed(ks, vmm_code_linear(&post.sregs, post.regs.rip)))
            return 0; /* it faulted: delivered, stopped at the handler */
        return ks_fail(e, VMM_E_KVM, "kvm-step: unexpected breakpoint exit "
                       "at rip %#llx", (unsigned long long)post.regs.rip);
    }
    case VCPU_EXIT_HLT:
    case VCPU_EXIT_SHUTDOWN:
        *e = ie;
        return 0;
    default: /* emulation failure, error: not executed */
        *adv = 0;
        *e = ie;
        return 0;
    }
}

/* ---- privilege levels ---------------------------------------------------- */

static int check_cpl(struct ks *ks, const struct ks_insn *in,
                     struct vcpu_exit *e)
{
    int cpl = ks->pre.sregs.cs.dpl;
    uint64_t rip = ks->pre.regs.rip;
    if (!(cpl == 0 ? ks->host->step_cpl0 : ks->host->step_cpl3))
        return ks_fail(e, VMM_E_NOSTEP, "kvm-step: guest code at CPL%d "
                       "(rip %#llx) cannot be single-stepped on this host "
                       "(%s)", cpl, (unsigned long long)rip, host_name(ks));
    if (!in->ret || ks->host->step_cpl3)
        return 0;
    int to = ks_ret_cpl(ks, &ks->pre, in);
    if (to <= 0)
        return 0; /* to ring 0, or a frame it cannot read (a #PF) */
    static const char *const what[] = {"", "iret", "far return",
                                       "sysret/sysexit"};
    return ks_fail(e, VMM_E_NOSTEP, "kvm-step: the %s at rip %#llx returns "
                   "to CPL%d, which cannot be single-stepped on this host "
                   "(%s)", what[in->ret], (unsigned long long)rip, to,
                   host_name(ks));
}

/* ---- the run loop ------------------------------------------------------- */

static bool is_bp(const struct ks *ks, uint64_t rip)
{
    for (size_t i = 0; i < ks->nbp; i++)
        if (ks->bp[i] == rip)
            return true;
    return false;
}

static int bp_hit(struct ks *ks, uint64_t rip)
{
    if (!ks->hit)
        return 1;
    struct vcpu_hit h = {.icount = ks->icount, .addr = rip};
    return ks->hit(ks->hit_ctx, &h);
}

static const struct ks_insn unreadable = {.branch = true, .vec = -1};

/* Before the instruction: window, breakpoint, CPL.  e->reason set (or an
 * error) when it must not run. */
static int before_step(struct ks *ks, const struct ks_insn *in, bool cont,
                       bool *skip_bp, struct vcpu_exit *e)
{
    if (ks->window_on && vcpu_state_irq_ready(&ks->pre)) {
        e->reason = VCPU_EXIT_IRQ_WINDOW;
        return 0;
    }
    uint64_t rip = ks->pre.regs.rip;
    if (!cont && ks->nbp && is_bp(ks, rip) && !*skip_bp) {
        int h = bp_hit(ks, rip);
        if (h < 0)
            return ks_fail(e, h, "breakpoint hit filter failed");
        if (h > 0) {
            e->reason = VCPU_EXIT_BREAKPOINT;
            return 0;
        }
    }
    *skip_bp = false;
    return check_cpl(ks, in, e);
}

static void io_stop_exit(struct ks *ks, struct vcpu_exit *e)
{
    e->reason = VCPU_EXIT_STOP;
    e->is_mmio = ks->io_mmio;
    if (ks->io_mmio)
        e->mmio = ks->io_exit.mmio;
    else
        e->io = ks->io_exit.io;
}

/* One instruction, or some iterations of a rep (at most want). */
static int step_once(struct ks *ks, uint64_t want, bool *skip_bp,
                     struct vcpu_exit *e)
{
    int rc = vcpu_kvm_get_sync(ks->in, &ks->pre);
    if (rc)
        return rc;
    const struct ks_insn *in = ks_decode(ks, &ks->pre.sregs, ks->pre.regs.rip);
    if (!in)
        in = &unreadable;
    bool cont = ks->rep_cont && ks->pre.regs.rip == ks->rep_rip;
    if ((rc = before_step(ks, in, cont, skip_bp, e)) || e->reason)
        return rc;
    ks->io_stop = false;
    ks->pre_cont = cont;
    ks->rep_cont = false;
    if ((ks->nw && (rc = ks_watch_before(ks, in))) || (rc = arm_for(ks, in)))
        return rc;
    uint64_t pos = ks->icount, adv = 0;
    if (in->str && in->rep && (ks->pre.regs.rcx & vmm_asz_mask(in->asz)))
        rc = ks_rep_step(ks, in, want, e, &adv);
    else
        rc = plain_step(ks, in, e, &adv);
    ks->icount += adv;
    if (rc)
        return rc;
    if (ks->nw && adv && e->reason != VCPU_EXIT_SHUTDOWN &&
        (rc = ks_watch_after(ks, pos, adv, e)))
        return rc;
    if (!e->reason && ks->io_stop)
        io_stop_exit(ks, e);
    return 0;
}

static int ks_run(struct vcpu *cpu, const struct vcpu_run_opts *o,
                  struct vcpu_exit *e)
{
    struct ks *ks = ks_of(cpu);
    uint64_t limit = o->single_step ? 1 : o->max_insns;
    uint64_t start = ks->icount;
    bool skip_bp = true; /* gdb steps over a breakpoint where it starts */
    int rc = 0;
    while (!rc && !e->reason) {
        uint64_t done = ks->icount - start;
        if (limit && done >= limit) {
            e->reason = o->single_step ? VCPU_EXIT_STEP : VCPU_EXIT_LIMIT;
            break;
        }
        if (atomic_exchange(&ks->kicked, 0)) {
            e->reason = VCPU_EXIT_KICK;
            break;
        }
        rc = step_once(ks, limit ? limit - done : UINT64_MAX, &skip_bp, e);
    }
    e->icount = ks->icount;
    return rc;
}

/* ---- interrupts ----------------------------------------------------------- */

/* Delivered now, as the Unicorn backend does: the state afterwards is the
 * handler's entry (replayer_int.h, canonical states). */
static int ks_inject_irq(struct vcpu *cpu, uint8_t vector)
{
    struct ks *ks = ks_of(cpu);
    int rc = vcpu_kvm_get_sync(ks->in, &ks->pre);
    if (rc)
        return rc;
    uint64_t lin = vmm_code_linear(&ks->pre.sregs, ks->pre.regs.rip), h;
    if (!ks->host->hw_break_cpl0 ||
        (ks_gate_target(ks, &ks->pre.sregs, vector, &h) && h == lin))
        return VMM_E_UNSUPPORTED; /* cannot stop at the handler */
    int v[] = {vector, 14, 13, 8, 11, 10, 12};
    struct vcpu_exit ie;
    if ((rc = ks_arm_handlers(ks, &ks->pre.sregs, lin, v,
                              sizeof v / sizeof *v)) ||
        (rc = vcpu_inject_irq(ks->in, vector)) ||
        (rc = ks_kvm_step(ks, &ie)))
        return rc;
    struct vmm_cpu_state post;
    if ((rc = vcpu_kvm_get_sync(ks->in, &post)))
        return rc;
    ks->rep_cont = false;
    if (ie.reason == VCPU_EXIT_BREAKPOINT &&
        ks_is_armed(ks, vmm_code_linear(&post.sregs, post.regs.rip)))
        return 0;
    return ie.reason == VCPU_EXIT_SHUTDOWN ? 0 : VMM_E_UNSUPPORTED;
}

static int ks_irq_ready(struct vcpu *cpu)
{
    struct ks *ks = ks_of(cpu);
    struct vmm_cpu_state s;
    int rc = vcpu_kvm_get_sync(ks->in, &s);
    if (rc)
        return rc;
    return vcpu_state_irq_ready(&s);
}

static int ks_request_irq_window(struct vcpu *cpu, bool on)
{
    ks_of(cpu)->window_on = on;
    return 0;
}

/* ---- state ---------------------------------------------------------------- */

static int ks_get_regs(struct vcpu *cpu, struct vmm_regs *r)
{
    struct ks *ks = ks_of(cpu);
    if (ks->in_step) { /* inside an io callback: before the instruction */
        *r = ks->pre.regs;
        return 0;
    }
    return vcpu_get_regs(ks->in, r);
}

static int ks_set_regs(struct vcpu *cpu, const struct vmm_regs *r)
{
    struct ks *ks = ks_of(cpu);
    ks->rep_cont = false;
    return vcpu_set_regs(ks->in, r);
}

static int ks_get_state(struct vcpu *cpu, struct vmm_cpu_state *s)
{
    struct ks *ks = ks_of(cpu);
    int rc = vcpu_get_state(ks->in, s);
    if (!rc && ks->in_step) {
        s->regs = ks->pre.regs;
        s->sregs = ks->pre.sregs;
        s->events = ks->pre.events;
    }
    return rc;
}

static int ks_set_state(struct vcpu *cpu, const struct vmm_cpu_state *s)
{
    struct ks *ks = ks_of(cpu);
    ks->rep_cont = false;
    return vcpu_set_state(ks->in, s);
}

/* ---- the rest of the ops ------------------------------------------------ */

static int ks_set_breakpoints(struct vcpu *cpu, const uint64_t *addr,
                              size_t n)
{
    struct ks *ks = ks_of(cpu);
    if (n > KS_MAX_BP)
        return VMM_E_ARG;
    if (n)
        memcpy(ks->bp, addr, n * sizeof *addr);
    ks->nbp = n;
    return 0;
}

static int ks_set_hit_filter(struct vcpu *cpu, vcpu_hit_fn fn, void *ctx)
{
    struct ks *ks = ks_of(cpu);
    ks->hit = fn;
    ks->hit_ctx = ctx;
    return 0;
}

static uint64_t ks_icount(struct vcpu *cpu) { return ks_of(cpu)->icount; }

static void ks_set_icount(struct vcpu *cpu, uint64_t icount)
{
    ks_of(cpu)->icount = icount;
}

static int ks_dirty_log(struct vcpu *cpu, uint64_t *bitmap)
{
    return vcpu_dirty_log(ks_of(cpu)->in, bitmap);
}

static void ks_kick(struct vcpu *cpu)
{
    struct ks *ks = ks_of(cpu);
    if (ks)
        atomic_store(&ks->kicked, 1);
}

static void ks_fini(struct vcpu *cpu)
{
    struct ks *ks = ks_of(cpu);
    if (!ks)
        return;
    vcpu_destroy(ks->in);
    ks_insn_fini(ks);
    ks_watch_free(ks);
    free(ks);
    cpu->priv = NULL;
}

static unsigned ks_caps(const struct ks *ks)
{
    const struct vmm_host_caps *h = ks->host;
    unsigned caps = VCPU_CAP_ICOUNT | VCPU_CAP_KICK | VCPU_CAP_WATCH;
    if (h->step_cpl0 || h->step_cpl3)
        caps |= VCPU_CAP_STEP;
    if (h->step_cpl0)
        caps |= VCPU_CAP_BREAK;
    if (h->step_cpl3)
        caps |= VCPU_CAP_STEP_CPL3 | VCPU_CAP_BREAK_CPL3;
    if (vcpu_caps(ks->in) & VCPU_CAP_DIRTY_LOG)
        caps |= VCPU_CAP_DIRTY_LOG;
    return caps;
}

static int ks_init(struct vcpu *cpu)
{
    struct ks *ks = calloc(1, sizeof *ks);
    if (!ks)
        return -ENOMEM;
    cpu->priv = ks;
    ks->cpu = cpu;
    ks->host = vmm_host_probe();
    struct vcpu_config cfg = {
        .ops = &vcpu_kvm_ops, .ram = cpu->ram, .ram_size = cpu->ram_size,
        .cpuid = &cpu->cpuid, .io = &ks_io, .io_ctx = ks};
    int rc = ks_insn_init(ks);
    if (!rc)
        rc = vcpu_create(&cfg, &ks->in);
    if (rc) {
        ks_fini(cpu);
        return rc;
    }
    cpu->caps = ks_caps(ks);
    return 0;
}

const struct vcpu_ops vcpu_kvmstep_ops = {
    .name = "kvm-step",
    .init = ks_init,
    .fini = ks_fini,
    .get_regs = ks_get_regs,
    .set_regs = ks_set_regs,
    .get_state = ks_get_state,
    .set_state = ks_set_state,
    .run = ks_run,
    .inject_irq = ks_inject_irq,
    .irq_ready = ks_irq_ready,
    .request_irq_window = ks_request_irq_window,
    .set_breakpoints = ks_set_breakpoints,
    .set_watchpoints = ks_set_watchpoints,
    .icount = ks_icount,
    .set_icount = ks_set_icount,
    .dirty_log = ks_dirty_log,
    .kick = ks_kick,
    .set_hit_filter = ks_set_hit_filter,
};
