/*
 * vcpu_unicorn_fallback.c — completing on Unicorn what KVM cannot emulate.
 *
 * Under kvm-pvm, guest ring 0 is emulated by KVM, which fails on SSE,
 * int3 and int n (NOTES-unicorn-kvm.md).  The KVM backend calls
 * vcpu_unicorn_emulate_one (struct vcpu.emu_fallback in vmm_int.h) at
 * such a failure; the instruction is run here on the same state and RAM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "vmm/vcpu_unicorn_int.h"

static bool on_ram_write(uc_engine *uc, uc_mem_type type, uint64_t addr,
                         int size, int64_t value, void *ud)
{
    (void)uc, (void)type, (void)value;
    uni_mark_dirty(ud, addr, (uint64_t)size);
    return true;
}

/*
 * Executes the one instruction KVM could not (kvm-pvm: SSE, int3, int n
 * at CPL0) on the KVM vCPU's state and RAM, delivering what it raises
 * through the IDT, and hands the state back.  A fresh Unicorn instance
 * per call (~0.1 ms): nothing can be stale, and nothing outlives the KVM
 * vCPU.  Pages it writes are recorded in kvm_cpu->emu_dirty, because
 * KVM's dirty log only sees writes made by KVM_RUN.
 */
int vcpu_unicorn_emulate_one(struct vcpu *kvm_cpu, struct vcpu_exit *e)
{
    struct vmm_cpu_state s;
    int rc = vcpu_get_state(kvm_cpu, &s);
    if (rc)
        return rc;
    if (!kvm_cpu->emu_dirty) {
        size_t words = (kvm_cpu->ram_size / 4096 + 63) / 64;
        kvm_cpu->emu_dirty = calloc(words, 8);
        if (!kvm_cpu->emu_dirty)
            return -ENOMEM;
    }
    struct vcpu_config cfg = {&vcpu_unicorn_ops, kvm_cpu->ram,
                              kvm_cpu->ram_size, &kvm_cpu->cpuid,
                              kvm_cpu->io, kvm_cpu->io_ctx};
    struct vcpu *h;
    if ((rc = vcpu_create(&cfg, &h)))
        return rc;
    struct uni *u = uni_of(h);
    u->dirty = kvm_cpu->emu_dirty;
    uc_hook wh;
    struct vcpu_exit he;
    struct vcpu_run_opts o = {.single_step = true};
    if (uc_hook_add(u->uc, &wh, UC_HOOK_MEM_WRITE, (void *)on_ram_write, u,
                    0, kvm_cpu->ram_size - 1)) {
        rc = VMM_E_UNICORN;
        goto out;
    }
    if ((rc = vcpu_set_state(h, &s)) || (rc = vcpu_run(h, &o, &he)))
        goto out;
    if (he.reason == VCPU_EXIT_EMU_FAIL) {
        /* RDTSCP...: Unicorn's report names the bytes, RIP, CPL and why,
         * and is the true reason the instruction did not run */
        e->emu = he.emu;
        snprintf(e->detail, sizeof e->detail, "%s", he.detail);
        rc = VMM_E_UNSUPPORTED;
        goto out;
    }
    if (he.reason != VCPU_EXIT_STEP) {
        /* triple fault...: report that instead of the failure */
        e->reason = he.reason;
        snprintf(e->detail, sizeof e->detail, "Unicorn fallback: %.200s",
                 he.detail);
        rc = VMM_E_UNSUPPORTED;
        goto out;
    }
    if ((rc = vcpu_get_state(h, &s)) == 0)
        rc = vcpu_set_state(kvm_cpu, &s);
out:
    vcpu_destroy(h);
    return rc;
}
