/*
 * abi.h — numbers shared by the SDK's assembly and C, and by ring-3 code:
 * GDT selectors, system call numbers, trap-frame layout, device ports.
 * Only #defines, so that .S files can include it.
 */
#ifndef GUEST_SDK_ABI_H
#define GUEST_SDK_ABI_H

/* GDT layout.  0x08/0x10 match what ttvm's ELF64 boot uses.  The user
 * selectors are Linux's (0x23 32-bit code, 0x2b data, 0x33 64-bit code):
 * kvm-pvm runs ring 3 on the host's own user segments and takes a user CS
 * other than 0x33 for 32-bit code when it emulates an instruction. */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE32 0x23
#define SEL_UDATA 0x2b
#define SEL_UCODE 0x33
#define SEL_TSS 0x38

/* System calls: number in RAX, arguments in RDI, RSI, RDX, R10; result in
 * RAX (negative errno on failure).  RCX and R11 are clobbered. */
#define SYS_WRITE 1 /* (buf, len) -> len; bytes go to COM1 */
#define SYS_READ 2  /* (buf, len) -> n >= 1; blocks until COM1 input */
#define SYS_GETPID 3
#define SYS_YIELD 4 /* waits for the next interrupt (sti; hlt) */
#define SYS_SLEEP 5 /* (ticks): waits that many timer ticks */
#define SYS_TICKS 6 /* -> timer ticks since the timer started */
#define SYS_EXIT 7  /* (code): ends the task; code 0..255 */

#define SDK_ENOSYS 38
#define SDK_EFAULT 14
#define SDK_EINVAL 22

/* A task ended by an exception it did not handle "exits" with this. */
#define TASK_KILLED 0x100 /* | vector */

/* Ports. */
#define PORT_COM1 0x3f8
#define PORT_DEBUG_EXIT 0xf4
#define PORT_RNG 0x600
#define PORT_PIC1 0x20
#define PORT_PIC2 0xa0
#define PORT_PIT_CH0 0x40
#define PORT_PIT_CMD 0x43
#define PORT_CMOS_INDEX 0x70
#define PORT_CMOS_DATA 0x71

#define IRQ_BASE 0x20 /* PIC remapped to vectors 0x20..0x2f */
#define IRQ_TIMER 0
#define IRQ_COM1 4

/* debug-exit value of a kernel panic: ttvm/QEMU exit status 0xe1 (225). */
#define EXIT_PANIC 0x70

/* Identity map the SDK builds: the first 1 GiB, except page 0. */
#define SDK_MAPPED_BYTES 0x40000000

#endif /* GUEST_SDK_ABI_H */
