/* ELF64 direct boot: print the command line handed over in the Multiboot
 * info block (RDI), a greeting, check RSI, exit 0x21 via 0xF4. */
    .code64
    .globl _start
    .text
_start:
    cmp $0x2badb002, %esi
    jne bad
    mov 16(%rdi), %esi          /* info->cmdline */
    call puts
    lea msg(%rip), %rsi
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
