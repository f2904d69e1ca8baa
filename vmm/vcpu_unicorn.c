/*
 * vcpu_unicorn.c — PLACEHOLDER so that vmm links before the Unicorn
 * backend lands (issue 4).  Its developer replaces this whole file.
 * init fails with VMM_E_UNSUPPORTED, so asking for the "unicorn" backend
 * gives a clear error, and the KVM backend's emulation-failure hook
 * declines, so such failures are reported as they are.
 */
#include "vmm/vmm_int.h"

static int unicorn_init(struct vcpu *cpu)
{
    (void)cpu;
    return VMM_E_UNSUPPORTED;
}

static void unicorn_fini(struct vcpu *cpu) { (void)cpu; }

const struct vcpu_ops vcpu_unicorn_ops = {
    .name = "unicorn",
    .init = unicorn_init,
    .fini = unicorn_fini,
};

int vcpu_unicorn_emulate_one(struct vcpu *kvm_cpu, struct vcpu_exit *e)
{
    (void)kvm_cpu;
    (void)e;
    return VMM_E_UNSUPPORTED;
}
