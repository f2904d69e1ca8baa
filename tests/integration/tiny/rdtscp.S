/* RDTSCP in ring 0 (ELF64 direct boot).  Under kvm-pvm KVM cannot emulate
 * it, and the Unicorn fallback refuses it: it reads the host's TSC, which
 * no recording could replay.  ttvm ends the run with status 14 and one
 * line naming the bytes (0f 01 f9), RIP, CPL and the reason.  (Where the
 * CPU runs guest ring 0 natively, the guest CPUID's missing RDTSCP bit
 * makes it #UD, and with no IDT a triple fault.) */
    .code64
    .globl _start
_start:
    rdtscp
    hlt
