/* Writes through an unmapped address with no IDT: #PF, #DF, triple fault. */
    .code64
    .globl _start
_start:
    mov $0x7fffffffff00, %rax
    movq $0, (%rax)
    hlt
