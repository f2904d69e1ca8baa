/* Multiboot v1 ELF32 image: prints "U", then executes the undefined
 * opcode DA F4 in ring 0 with no IDT loaded (the boot loader leaves the
 * IDTR undefined; this loads an empty one).  #UD cannot be delivered: a
 * double fault, then a triple fault (shutdown), as on hardware and under
 * QEMU.  Never reaches the debug-exit below. */
    .code32
    .globl _start
    .text
    .align 4
    .long 0x1BADB002, 0x00000003, -(0x1BADB002 + 0x00000003)
_start:
    lidt idtr
    mov $0x3f8, %dx
    mov $'U', %al
    out %al, %dx
    .globl undef
undef:
    .byte 0xda, 0xf4
    mov $0x21, %al
    out %al, $0xf4
idtr: .word 0
    .long 0
