/*
 * vmm_int.h — shared inside vmm/ only.  Nothing outside vmm/ includes it.
 */
#ifndef TTVM_VMM_INT_H
#define TTVM_VMM_INT_H

#include "vmm/vmm.h"

/* A vCPU: the generic part every backend shares, plus the backend's own
 * state in priv (allocated by ops->init, freed by ops->fini). */
struct vcpu {
    const struct vcpu_ops *ops;
    uint8_t *ram;
    uint64_t ram_size;
    struct vmm_cpuid cpuid;
    const struct vmm_io_ops *io;
    void *io_ctx;
    unsigned caps; /* VCPU_CAP_*, set by ops->init */
    void *priv;
};

/* Serves a port access through cpu->io (all ones / ignored when none). */
int vcpu_io_pio(struct vcpu *cpu, uint16_t port, unsigned size, bool write,
                uint32_t *val);
int vcpu_io_mmio(struct vcpu *cpu, uint64_t gpa, unsigned size, bool write,
                 uint64_t *val);

#endif /* TTVM_VMM_INT_H */
