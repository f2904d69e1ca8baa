/* int3 in ring 0: kvm-pvm cannot emulate it (elsewhere: #BP, no IDT, so a
 * triple fault). */
    .code64
    .globl _start
_start:
    int3
    hlt
