/* Hammers unknown ports (reads must give all ones), then exits with 0 if
 * every read did, 1 if not. */
    .code64
    .globl _start
_start:
    mov $20000, %ecx
    xor %ebx, %ebx
1:  mov $0x1234, %dx
    in %dx, %al
    cmp $0xff, %al
    jne 3f
    mov $0x99, %dx
    in %dx, %eax
    cmp $0xffffffff, %eax
    jne 3f
    out %al, $0x98
    dec %ecx
    jnz 1b
    xor %eax, %eax
    out %al, $0xf4
3:  mov $1, %al
    out %al, $0xf4
