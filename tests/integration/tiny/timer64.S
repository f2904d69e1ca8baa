    .code64
    .globl _start
    .text
_start:
    mov $0x200000, %rsp
    /* IDT entry 32 -> irq0 handler */
    lea idt(%rip), %rdi
    lea irq0(%rip), %rax
    mov %ax, 32*16(%rdi)
    movw $0x08, 32*16+2(%rdi)
    movw $0x8e00, 32*16+4(%rdi)
    shr $16, %rax
    mov %ax, 32*16+6(%rdi)
    shr $16, %rax
    mov %eax, 32*16+8(%rdi)
    lidt idtr(%rip)
    /* PIC: ICW1..4, base 0x20/0x28, unmask IRQ0 */
    mov $0x11, %al; out %al, $0x20; out %al, $0xa0
    mov $0x20, %al; out %al, $0x21
    mov $0x28, %al; out %al, $0xa1
    mov $0x04, %al; out %al, $0x21
    mov $0x02, %al; out %al, $0xa1
    mov $0x01, %al; out %al, $0x21; out %al, $0xa1
    mov $0xfe, %al; out %al, $0x21
    mov $0xff, %al; out %al, $0xa1
    /* PIT ch0 mode 2, 1193 -> ~1 kHz */
    mov $0x34, %al; out %al, $0x43
    mov $0xa9, %al; out %al, $0x40
    mov $0x04, %al; out %al, $0x40
    sti
1:  hlt
    cmpl $100, ticks(%rip)
    jb 1b
    cli
    mov $'T', %al; mov $0x3f8, %dx; out %al, %dx
    mov $'\n', %al; out %al, %dx
    mov $0, %al; out %al, $0xf4
    hlt
irq0:
    push %rax
    incl ticks(%rip)
    mov $0x20, %al
    out %al, $0x20
    pop %rax
    iretq
    .data
    .align 16
idtr: .word 256*16-1
      .quad idt
ticks: .long 0
    .align 16
idt: .fill 256*16, 1, 0
