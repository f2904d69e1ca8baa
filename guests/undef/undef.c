/*
 * undef — executes an undefined opcode (DA F4: x87 escape DA with /6 and a
 * register operand, which no CPU defines) in ring 0.  The CPU raises #UD
 * through the SDK's IDT, whose ring-0 exception handler reports it and
 * panics, as it does on hardware and under QEMU.
 *
 * Under kvm-pvm, KVM's emulator cannot run the bytes and ttvm completes
 * them with its one-instruction Unicorn fallback, which must deliver #UD
 * into the guest (not end the run with an internal error).  Kept out of
 * GUEST_NAMES: it ends in a panic by design, so it is no sample workload.
 * The registers the report prints are set here, so the output is the
 * same under every boot loader.  Output:
 *   undef: executing DA F4 in ring 0
 *   [kernel] ring 0: #UD (vector 6) at rip=0x... err=0x0
 *     rax=0x1 rbx=0x2 rcx=0x3 rdx=0x4
 *     rsi=0x5 rdi=0x6 rbp=0x... rsp=0x...
 *   PANIC: unexpected exception in the kernel
 * Exit value EXIT_PANIC (status 0xe1 = 225).
 */
#include "sdk.h"

int guest_main(void)
{
    sdk_printf("undef: executing DA F4 in ring 0\n");
    __asm__ volatile("mov $1, %%eax\n\tmov $2, %%ebx\n\tmov $3, %%ecx\n\t"
                     "mov $4, %%edx\n\tmov $5, %%esi\n\tmov $6, %%edi\n\t"
                     ".byte 0xda, 0xf4"
                     :
                     :
                     : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "memory");
    sdk_printf("undef: DA F4 did not fault\n");
    return 1;
}
