/* Turns on the COM1 receive interrupt (with interrupts off, so none is
 * ever taken), then computes without a single exit for a while: the run
 * loop keeps polling for serial input, kicking the vCPU every
 * millisecond while the input is open.  Writes "spun\n", exits 0. */
    .code64
    .globl _start
    .text
_start:
    cli
    mov $0x3f9, %dx             /* IER: receive data available */
    mov $1, %al
    out %al, %dx
    mov $600000, %ecx
1:  dec %ecx
    jnz 1b
    mov $0x3f8, %dx
    mov $'s', %al; out %al, %dx
    mov $'p', %al; out %al, %dx
    mov $'u', %al; out %al, %dx
    mov $'n', %al; out %al, %dx
    mov $'\n', %al; out %al, %dx
    xor %eax, %eax
    out %al, $0xf4
    hlt
