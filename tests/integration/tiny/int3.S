/* int3 in ring 0 with no IDT: #BP, then a triple fault (under kvm-pvm,
 * which cannot emulate int3 in ring 0, through the Unicorn fallback). */
    .code64
    .globl _start
_start:
    int3
    hlt
