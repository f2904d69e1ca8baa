/*
 * vcpu.c — the generic vCPU: creation and the thin wrappers over a
 * backend's ops table.  Optional methods a backend lacks answer
 * VMM_E_UNSUPPORTED here, so callers never test for NULL themselves.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vmm_int.h"

static const struct vcpu_ops *const backends[] = {
    &vcpu_kvm_ops,
    &vcpu_unicorn_ops,
    &vcpu_kvmstep_ops,
};

const struct vcpu_ops *vcpu_ops_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (!strcmp(backends[i]->name, name))
            return backends[i];
    return NULL;
}

int vcpu_create(const struct vcpu_config *cfg, struct vcpu **out)
{
    if (!cfg->ops || !cfg->ram || !cfg->ram_size || cfg->ram_size % 4096 ||
        !cfg->cpuid || cfg->cpuid->nent > VMM_CPUID_MAX)
        return VMM_E_ARG;
    struct vcpu *cpu = calloc(1, sizeof *cpu);
    if (!cpu)
        return -ENOMEM;
    cpu->ops = cfg->ops;
    cpu->ram = cfg->ram;
    cpu->ram_size = cfg->ram_size;
    cpu->cpuid = *cfg->cpuid;
    cpu->io = cfg->io;
    cpu->io_ctx = cfg->io_ctx;
    int rc = cpu->ops->init(cpu);
    if (rc) {
        free(cpu);
        return rc;
    }
    *out = cpu;
    return 0;
}

void vcpu_destroy(struct vcpu *cpu)
{
    if (!cpu)
        return;
    cpu->ops->fini(cpu);
    free(cpu->emu_dirty);
    free(cpu);
}

const char *vcpu_name(const struct vcpu *cpu) { return cpu->ops->name; }
unsigned vcpu_caps(const struct vcpu *cpu) { return cpu->caps; }

void vcpu_set_io(struct vcpu *cpu, const struct vmm_io_ops *io, void *ctx)
{
    cpu->io = io;
    cpu->io_ctx = ctx;
}

int vcpu_io_pio(struct vcpu *cpu, uint16_t port, unsigned size, bool write,
                uint32_t *val)
{
    if (cpu->io && cpu->io->pio)
        return cpu->io->pio(cpu->io_ctx, port, size, write, val);
    if (!write)
        *val = size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
    return 0;
}

int vcpu_io_mmio(struct vcpu *cpu, uint64_t gpa, unsigned size, bool write,
                 uint64_t *val)
{
    if (cpu->io && cpu->io->mmio)
        return cpu->io->mmio(cpu->io_ctx, gpa, size, write, val);
    if (!write)
        *val = size == 8 ? UINT64_MAX : (1ull << (8 * size)) - 1;
    return 0;
}

int vcpu_get_regs(struct vcpu *cpu, struct vmm_regs *r)
{
    return cpu->ops->get_regs(cpu, r);
}

int vcpu_set_regs(struct vcpu *cpu, const struct vmm_regs *r)
{
    return cpu->ops->set_regs(cpu, r);
}

int vcpu_get_state(struct vcpu *cpu, struct vmm_cpu_state *s)
{
    return cpu->ops->get_state(cpu, s);
}

int vcpu_set_state(struct vcpu *cpu, const struct vmm_cpu_state *s)
{
    if (s->version != VMM_STATE_VERSION || s->size != sizeof *s)
        return VMM_E_STATE;
    return cpu->ops->set_state(cpu, s);
}

int vcpu_run(struct vcpu *cpu, const struct vcpu_run_opts *o,
             struct vcpu_exit *exit)
{
    static const struct vcpu_run_opts none;
    memset(exit, 0, sizeof *exit);
    exit->icount = VCPU_ICOUNT_UNKNOWN;
    return cpu->ops->run(cpu, o ? o : &none, exit);
}

int vcpu_inject_irq(struct vcpu *cpu, uint8_t vector)
{
    return cpu->ops->inject_irq(cpu, vector);
}

int vcpu_request_irq_window(struct vcpu *cpu, bool on)
{
    if (!cpu->ops->request_irq_window)
        return VMM_E_UNSUPPORTED;
    return cpu->ops->request_irq_window(cpu, on);
}

int vcpu_set_breakpoints(struct vcpu *cpu, const uint64_t *addr, size_t n)
{
    if (!cpu->ops->set_breakpoints)
        return VMM_E_UNSUPPORTED;
    return cpu->ops->set_breakpoints(cpu, addr, n);
}

int vcpu_set_watchpoints(struct vcpu *cpu, const struct vcpu_watch *w,
                         size_t n)
{
    if (!cpu->ops->set_watchpoints)
        return VMM_E_UNSUPPORTED;
    return cpu->ops->set_watchpoints(cpu, w, n);
}

void vcpu_ram_changed(struct vcpu *cpu, uint64_t gpa, uint64_t len)
{
    if (cpu->ops->ram_changed)
        cpu->ops->ram_changed(cpu, gpa, len);
}

uint64_t vcpu_icount(struct vcpu *cpu)
{
    return cpu->ops->icount ? cpu->ops->icount(cpu) : VCPU_ICOUNT_UNKNOWN;
}

void vcpu_set_icount(struct vcpu *cpu, uint64_t icount)
{
    if (cpu->ops->set_icount)
        cpu->ops->set_icount(cpu, icount);
}

int vcpu_dirty_log(struct vcpu *cpu, uint64_t *bitmap)
{
    if (!cpu->ops->dirty_log)
        return VMM_E_UNSUPPORTED;
    return cpu->ops->dirty_log(cpu, bitmap);
}

void vcpu_kick(struct vcpu *cpu)
{
    if (cpu->ops->kick)
        cpu->ops->kick(cpu);
}

int vcpu_set_hit_filter(struct vcpu *cpu, vcpu_hit_fn fn, void *ctx)
{
    if (!cpu->ops->set_hit_filter)
        return VMM_E_UNSUPPORTED;
    return cpu->ops->set_hit_filter(cpu, fn, ctx);
}

int vcpu_coverage(struct vcpu *cpu, bool on)
{
    if (!cpu->ops->coverage)
        return VMM_E_UNSUPPORTED;
    return cpu->ops->coverage(cpu, on);
}

int vcpu_coverage_take(struct vcpu *cpu, struct vcpu_code_range **out,
                       size_t *n)
{
    if (!cpu->ops->coverage_take)
        return VMM_E_UNSUPPORTED;
    return cpu->ops->coverage_take(cpu, out, n);
}

int vcpu_irq_ready(struct vcpu *cpu)
{
    if (cpu->ops->irq_ready)
        return cpu->ops->irq_ready(cpu);
    struct vmm_cpu_state st;
    int rc = cpu->ops->get_state(cpu, &st);
    if (rc)
        return rc;
    return vcpu_state_irq_ready(&st);
}

/* Under kvm-pvm guest ring-3 code runs natively and the exceptions it
 * raises leave to the host first, which hands them to the (emulated)
 * guest kernel at the next entry.  A kick that lands in between stops the
 * vCPU after a software interrupt, RIP past it, CPL3, with the delivery
 * still to come and not in KVM_GET_VCPU_EVENTS: a snapshot of that state
 * resumes with the next instruction instead (`ttvm replay --verify` from
 * one diverged at the next event), and a replay, like the hardware,
 * delivers at once.  Faults leave RIP at the instruction, which raises
 * them again, so only these traps matter.  The bytes before RIP are the
 * test, for INT3 and INT n only (a ModRM byte F1, as in `add %rsi,%rcx`,
 * made INT1 match one kick in four in a compute loop; INTO and INT1 are
 * not what ring-3 code calls the kernel with): elsewhere, and on hosts
 * that deliver in hardware, it only passes over an ordinary point now and
 * then. */
bool vcpu_after_user_soft_int(struct vcpu *cpu)
{
    struct vmm_cpu_state s;
    uint8_t b[2];
    int rc = cpu->ops == &vcpu_kvm_ops ? vcpu_kvm_get_sync(cpu, &s)
                                       : cpu->ops->get_state(cpu, &s);
    if (rc || s.sregs.cs.dpl != 3 || s.regs.rip < 2 ||
        vmm_code_fetch(cpu->ram, cpu->ram_size, &s.sregs, s.regs.rip - 2, b,
                       2) != 2)
        return false;
    return b[1] == 0xcc || b[0] == 0xcd; /* INT3, INT n */
}
