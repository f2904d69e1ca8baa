/* Timer interrupts (PIT at ~1 kHz, IRQ0) taken while the guest polls
 * ports instead of halting, so they are injected at I/O exits: right
 * after an IN from the random port (RAX gets its value only as the
 * instruction completes), an OUT, and a rep insb (RDI, RCX stepped).
 * Stops after 50 ticks, writes "I\n", exits 0.  The 50th tick masks IRQ0
 * at the PIC, so that exactly 50 are injected however late the loop
 * sees it. */
    .code64
    .globl _start
    .text
_start:
    mov $0x200000, %rsp
    lea idt(%rip), %rdi         /* IDT entry 32 -> irq0 */
    lea irq0(%rip), %rax
    mov %ax, 32*16(%rdi)
    movw $0x08, 32*16+2(%rdi)
    movw $0x8e00, 32*16+4(%rdi)
    shr $16, %rax
    mov %ax, 32*16+6(%rdi)
    shr $16, %rax
    mov %eax, 32*16+8(%rdi)
    lidt idtr(%rip)
    mov $0x11, %al; out %al, $0x20; out %al, $0xa0  /* PIC, IRQ0 only */
    mov $0x20, %al; out %al, $0x21
    mov $0x28, %al; out %al, $0xa1
    mov $0x04, %al; out %al, $0x21
    mov $0x02, %al; out %al, $0xa1
    mov $0x01, %al; out %al, $0x21; out %al, $0xa1
    mov $0xfe, %al; out %al, $0x21
    mov $0xff, %al; out %al, $0xa1
    mov $0x34, %al; out %al, $0x43  /* PIT ch0 mode 2, ~1 kHz */
    mov $0xa9, %al; out %al, $0x40
    mov $0x04, %al; out %al, $0x40
    sti
1:  mov $0x600, %dx
    in %dx, %eax
    out %al, $0x80
    lea buf(%rip), %rdi
    mov $8, %ecx
    rep insb
    cmpl $50, ticks(%rip)
    jb 1b
    cli
    mov $'I', %al; mov $0x3f8, %dx; out %al, %dx
    mov $'\n', %al; out %al, %dx
    mov $0, %al; out %al, $0xf4
    hlt
irq0:
    push %rax
    incl ticks(%rip)
    cmpl $50, ticks(%rip)
    jb 2f
    mov $0xff, %al              /* the 50th: no more IRQ0 */
    out %al, $0x21
2:  mov $0x20, %al
    out %al, $0x20
    pop %rax
    iretq
    .data
    .align 16
idtr: .word 256*16-1
      .quad idt
ticks: .long 0
buf:  .fill 16, 1, 0
    .align 16
idt: .fill 256*16, 1, 0
