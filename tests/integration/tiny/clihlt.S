/* Halts with interrupts off: nothing can wake it. */
    .code64
    .globl _start
_start:
    cli
    hlt
