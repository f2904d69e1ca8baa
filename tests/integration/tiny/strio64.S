/* String port I/O, each iteration one access: rep insb/insw from the
 * random port 0x600 (forwards, across page boundaries, so KVM splits them
 * into several exits, and backwards with DF=1), plain insb/outsb, and
 * rep outsb to COM1 (forwards, backwards, and right after an `out` to the
 * same port, where RIP alone cannot tell the two apart).  ROUNDS rounds;
 * prints "strio ok" and one checksum of every random byte read, exits 0. */
    .code64
    .globl _start
    .text
ROUNDS = 40
_start:
    mov $0x200000, %rsp
    xor %r12d, %r12d            /* checksum */
    mov $ROUNDS, %r13d
round:
    cld
    mov $0x600, %dx
    lea buf+4096-1500(%rip), %rdi /* 3000 bytes across a page boundary */
    mov %rdi, %rsi
    mov $3000, %ecx
    rep insb
    mov $3000, %ecx
    call sum_bytes
    lea wbuf(%rip), %rdi        /* 600 words */
    mov %rdi, %rsi
    mov $600, %ecx
    rep insw
    mov $1200, %ecx
    call sum_bytes
    std                         /* 100 bytes backwards */
    lea bbuf+99(%rip), %rdi
    mov $100, %ecx
    rep insb
    cld
    lea bbuf(%rip), %rsi
    mov $100, %ecx
    call sum_bytes
    lea bbuf(%rip), %rdi        /* one insb, no rep */
    insb
    movzbl bbuf(%rip), %eax
    add %rax, %r12
    lea buf(%rip), %rdi         /* rep with rcx = 0: no access at all */
    xor %ecx, %ecx
    rep insb

    mov $0x3f8, %dx
    dec %r13d
    jnz round

    lea msg(%rip), %rsi         /* "strio " */
    mov $6, %ecx
    rep outsb
    lea okrev+1(%rip), %rsi     /* "ok" backwards from "ko" */
    std
    mov $2, %ecx
    rep outsb
    cld
    mov $' ', %al               /* out, then rep outsb at the next RIP */
    out %al, %dx
    lea hex(%rip), %rdi
    mov %r12, %rax
    mov $16, %ecx
1:  rol $4, %rax
    mov %eax, %ebx
    and $15, %ebx
    lea digits(%rip), %r8
    movb (%r8,%rbx), %bl
    mov %bl, (%rdi)
    inc %rdi
    dec %ecx
    jnz 1b
    mov $'=', %al
    lea hex(%rip), %rsi
    mov $16, %ecx
    out %al, %dx
    rep outsb
    lea nl(%rip), %rsi          /* one outsb, no rep */
    outsb
    xor %eax, %eax
    out %al, $0xf4
    hlt

/* r12 += bytes [rsi, rsi+rcx) */
sum_bytes:
    movzbl (%rsi), %eax
    add %rax, %r12
    inc %rsi
    dec %ecx
    jnz sum_bytes
    ret

msg:    .ascii "strio "
okrev:  .ascii "ko"
nl:     .ascii "\n"
digits: .ascii "0123456789abcdef"
    .data
    .align 16
hex:    .fill 16, 1, 0
wbuf:   .fill 1200, 1, 0
bbuf:   .fill 100, 1, 0
    .align 4096
buf:    .fill 8192, 1, 0
