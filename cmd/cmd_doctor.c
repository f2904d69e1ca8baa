/*
 * cmd_doctor.c — `ttvm doctor`: what this host's KVM can do, one finding
 * per line, as the probe measured it (nothing is assumed about the host).
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "vmm/vmm.h"

static const char *yes_no(bool b) { return b ? "yes" : "no"; }

static void virt_line(const struct vmm_host_caps *h)
{
    if (h->pvm)
        printf("virtualisation: kvm-pvm (guest ring 0 is emulated by KVM, "
               "about 2M instructions/s, no SSE/int3/int n; ring 3 runs "
               "natively)\n");
    else if (h->vmx || h->svm)
        printf("virtualisation: hardware %s (%s)\n", h->vmx ? "VMX" : "SVM",
               h->kvm_module[0] ? h->kvm_module : "kvm");
    else
        printf("virtualisation: unknown (%s)\n",
               h->kvm_module[0] ? h->kvm_module : "no kvm module seen");
}

int cmd_doctor(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: ttvm doctor\n\nProbes this host's KVM by running "
               "tiny code and prints one finding per line.\nExit status: 0 "
               "when KVM is usable, 6 when it is not.\n");
        return TTVM_EXIT_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "ttvm doctor: unexpected argument '%s'\n", argv[1]);
        return TTVM_EXIT_USAGE;
    }
    const struct vmm_host_caps *h = vmm_host_probe();
    if (!h->kvm) {
        printf("kvm: no (%s)\n", h->detail);
        return TTVM_EXIT_HOST;
    }
    printf("kvm: yes (/dev/kvm, module %s)\n",
           h->kvm_module[0] ? h->kvm_module : "unknown");
    virt_line(h);
    printf("host cpu flags: vmx %s, svm %s\n", yes_no(h->vmx), yes_no(h->svm));
    printf("sync regs (regs, sregs, events): %s\n", yes_no(h->sync_regs));
    printf("manual dirty log protect: %s\n", yes_no(h->manual_dirty_log));
    printf("immediate exit (vCPU kick): %s\n", yes_no(h->immediate_exit));
    printf("guest debug: %s\n", yes_no(h->guest_debug));
    printf("single-step at CPL0: %s\n", yes_no(h->step_cpl0));
    printf("single-step at CPL3: %s\n", yes_no(h->step_cpl3));
    printf("hardware breakpoints at CPL0: %s\n", yes_no(h->hw_break_cpl0));
    printf("hardware breakpoints at CPL3: %s\n", yes_no(h->hw_break_cpl3));
    struct vmm_cpuid t;
    vmm_cpuid_build(&t);
    printf("guest cpuid: %u entries\n", t.nent);
    return TTVM_EXIT_OK;
}
