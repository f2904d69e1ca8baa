/* Reads serial input by polling LSR until a '.' and echoes it in upper
 * case; exits 0. */
    .code64
    .globl _start
_start:
    mov $0x3fd, %dx
1:  in %dx, %al
    test $1, %al
    jz 1b
    mov $0x3f8, %dx
    in %dx, %al
    cmp $'.', %al
    je 3f
    cmp $'a', %al
    jb 2f
    cmp $'z', %al
    ja 2f
    sub $0x20, %al
2:  out %al, %dx
    mov $0x3fd, %dx
    jmp 1b
3:  mov $'\n', %al
    out %al, %dx
    xor %eax, %eax
    out %al, $0xf4
