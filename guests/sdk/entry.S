/*
 * entry.S — every way into and out of the kernel after boot: exception and
 * IRQ stubs, the system-call gate, and the switch to and from ring 3.
 *
 * All kernel entries build the same struct sdk_trap_frame (sdk_int.h) and
 * return through trap_return with iretq.  Ring 3 is only ever entered with
 * iretq: sysretq raises #GP under kvm-pvm.  System calls come in as #BP
 * from sdk_syscall_gate (see abi.h for why not `syscall`).
 */
#include "abi.h"

/* Vectors for which the CPU pushes an error code. */
#define HAS_ERR(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || \
                    (v) == 21 || (v) == 29 || (v) == 30)

    .text
    .code64

    .macro ISR vec
    .balign 16
isr_\vec:
    .ifeq HAS_ERR(\vec)
    pushq $0
    .endif
    pushq $\vec
    jmp trap_common
    .endm

    .irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
    ISR \vec
    .endr

/* Stack: [vector, error, CPU frame]; save GPRs, call sdk_trap(frame). */
trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld                           /* ring 3 may have left DF set */
    movq %rsp, %rdi
    call sdk_trap
trap_return:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp                /* vector, error */
    iretq

/* long sdk_enter_user(rip, arg, fn, rsp): runs a ring-3 task until it
 * exits; returns what sdk_leave_user passes.  One task at a time. */
    .globl sdk_enter_user
sdk_enter_user:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, kernel_rsp(%rip)
    pushq $SEL_UDATA              /* iretq frame */
    pushq %rcx
    pushq $0x202                  /* IF=1 */
    pushq $SEL_UCODE
    pushq %rdi
    movq %rsi, %rdi               /* user_task_start(arg, fn) */
    movq %rdx, %rsi
    xorl %eax, %eax               /* leak no kernel values into ring 3 */
    xorl %ebx, %ebx
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %ebp, %ebp
    xorl %r8d, %r8d
    xorl %r9d, %r9d
    xorl %r10d, %r10d
    xorl %r11d, %r11d
    xorl %r12d, %r12d
    xorl %r13d, %r13d
    xorl %r14d, %r14d
    xorl %r15d, %r15d
    iretq

/* void sdk_leave_user(long code): back into sdk_enter_user's caller,
 * abandoning the trap stack.  Called with interrupts off. */
    .globl sdk_leave_user
sdk_leave_user:
    movq %rdi, %rax
    movq kernel_rsp(%rip), %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret

/* Ring 3: first code of every task.  rdi = arg, rsi = fn. */
    .globl sdk_user_task_start
sdk_user_task_start:
    call *%rsi
    movq %rax, %rdi
    movl $SYS_EXIT, %eax
    call sdk_syscall_gate
    ud2

/* Ring 3: the system-call gate.  The kernel recognises the #BP raised by
 * this int3 by its address; the frame's RIP is already at the ret. */
    .globl sdk_syscall_gate
    .type sdk_syscall_gate, @function
sdk_syscall_gate:
    int3
    ret
    .size sdk_syscall_gate, . - sdk_syscall_gate

/* LSTAR: the SDK does not use `syscall`; a task that executes it gets a
 * #UD here (ring 3 under kvm-pvm, ring 0 elsewhere). */
    .globl sdk_syscall_unsupported
sdk_syscall_unsupported:
    ud2

    .section .rodata
    .balign 8
    .globl sdk_isr_table
sdk_isr_table:
    .irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
    .quad isr_\vec
    .endr

    .bss
    .balign 8
kernel_rsp:
    .quad 0

    .section .note.GNU-stack, "", @progbits
