/*
 * sdk_int.h — what the SDK's own files share; guests include sdk.h or
 * user.h instead.
 */
#ifndef GUEST_SDK_INT_H
#define GUEST_SDK_INT_H

#include "sdk.h"

/* What entry.S saves on every kernel entry, lowest address first. */
struct sdk_trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

/* One .extable entry (user.h SDK_EXTABLE): a fault at `insn` resumes at
 * `fixup` with RAX = vector. */
struct sdk_extable {
    uint64_t insn, fixup;
};

/* entry.S */
extern const uint64_t sdk_isr_table[48];
void sdk_syscall_gate(void);
void sdk_syscall_unsupported(void);
long sdk_enter_user(uint64_t rip, void *arg, void *fn, uint64_t rsp);
_Noreturn void sdk_leave_user(long code);
void sdk_user_task_start(void);
extern char sdk_trap_stack_top[];

/* boot.S / kernel.c */
void sdk_kmain(uint64_t info, uint64_t magic, uint64_t path);
void sdk_trap(struct sdk_trap_frame *f);

/* cpu.c */
void sdk_cpu_init(void);
/* Makes page 0 not present, so that NULL accesses fault; called once the
 * Multiboot information (which a loader may put anywhere) has been read. */
void sdk_unmap_page0(void);

/* devices.c */
void sdk_pic_init(void);
void sdk_serial_init(void);
void sdk_irq_dispatch(unsigned irq);

/* boot_info.c */
/* Reads the Multiboot info block; returns a warning ("" when fine) to
 * print once the console is up. */
const char *sdk_boot_info_parse(uint64_t info, uint64_t magic, uint64_t path);

/* syscall.c */
long sdk_syscall_dispatch(struct sdk_trap_frame *f);
uint64_t sdk_task_pid(void);

static inline uint64_t sdk_read_cr2(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static inline void sdk_wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr"
                     :
                     : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

#endif /* GUEST_SDK_INT_H */
