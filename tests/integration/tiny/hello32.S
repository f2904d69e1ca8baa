/* Multiboot v1 ELF32 image: same output as hello64, entered in 32-bit
 * protected mode with EAX = magic and EBX = info block. */
    .code32
    .globl _start
    .text
    .align 4
    .long 0x1BADB002, 0x00000003, -(0x1BADB002 + 0x00000003)
_start:
    cmp $0x2badb002, %eax
    jne bad
    mov 16(%ebx), %esi
    call puts
    mov $msg, %esi
    call puts
    mov $0x21, %al
    out %al, $0xf4
bad:
    mov $0x7f, %al
    out %al, $0xf4
puts:
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  ret
msg: .asciz "|hello from ttvm\n"
