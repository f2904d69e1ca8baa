/*
 * boot.S — the two ways into a guest, and the static machine tables.
 *
 *  - _start32: Multiboot v1 entry (32-bit protected mode, paging off,
 *    EAX = 0x2BADB002, EBX = info).  Switches to long mode itself.
 *  - _start64: ttvm's ELF64 direct boot (long mode, VMM paging and GDT,
 *    RDI = Multiboot info, RSI = 0x2BADB002).
 *
 * Both continue at long_common, which loads the SDK's own GDT and page
 * tables, a stack, and calls sdk_kmain(info, magic, path).
 *
 * Page tables and GDT are static data (no ring-0 loop builds them: ring-0
 * code is emulated slowly under kvm-pvm), with the Accessed bit preset in
 * every entry and descriptor and Dirty in every leaf, so neither KVM nor
 * Unicorn ever writes them (exact replay compares memory).
 */
#include "abi.h"

#define MB_MAGIC 0x1badb002
#define MB_FLAGS 0x00000003 /* page-align modules, want memory info */

#define CR0_PE (1 << 0)
#define CR0_MP (1 << 1)
#define CR0_EM (1 << 2)
#define CR0_TS (1 << 3)
#define CR0_NE (1 << 5)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define CR4_OSFXSR (1 << 9)
#define CR4_OSXMMEXCPT (1 << 10)
#define MSR_EFER 0xc0000080
#define EFER_SCE (1 << 0)
#define EFER_LME (1 << 8)

/* Page-table entry bits: present, writable, user, accessed, dirty, 2M. */
#define PTE_TABLE 0x27 /* P | RW | US | A */
#define PTE_2M 0xe7    /* P | RW | US | A | D | PS */
#define PTE_4K 0x67    /* P | RW | US | A | D */

#define BOOT_PATH_ELF64 1
#define BOOT_PATH_MULTIBOOT 2

/* ---- Multiboot header: first thing in the image (within 8 KiB) ---- */
    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

/* ---- 32-bit Multiboot entry ---- */
    .section .text.boot, "ax"
    .code32
    .globl _start32
    .type _start32, @function
_start32:
    cli
    cld
    movl %eax, %esi               /* magic */
    movl %ebx, %edi               /* info */
    lgdt gdt_ptr                  /* reads limit + low 32 bits of base */
    movl %cr4, %eax
    orl $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
    movl %eax, %cr4
    movl $pml4, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    andl $~(CR0_EM | CR0_TS), %eax
    orl $(CR0_PG | CR0_PE | CR0_MP | CR0_NE), %eax
    movl %eax, %cr0
    ljmp $SEL_KCODE, $from_multiboot
    .size _start32, . - _start32

    .code64
from_multiboot:
    movl %edi, %edi               /* upper halves are undefined after */
    movl %esi, %esi               /* the switch from 32-bit mode */
    movl $BOOT_PATH_MULTIBOOT, %edx
    jmp long_common

/* ---- 64-bit ELF entry (ttvm direct boot) ---- */
    .globl _start64
    .type _start64, @function
_start64:
    cli
    cld
    movl $BOOT_PATH_ELF64, %edx
    jmp long_common
    .size _start64, . - _start64

/* rdi = info, rsi = magic, rdx = boot path; interrupts off. */
long_common:
    lgdt gdt_ptr(%rip)
    movl $SEL_KDATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    xorl %eax, %eax
    movl %eax, %fs
    movl %eax, %gs
    pushq $SEL_KCODE              /* reload CS from our GDT */
    leaq 1f(%rip), %rax
    pushq %rax
    lretq
1:  movq $pml4, %rax
    movq %rax, %cr3
    movq %cr4, %rax               /* SSE for ring-3 code (both paths) */
    orq $(CR4_OSFXSR | CR4_OSXMMEXCPT), %rax
    movq %rax, %cr4
    movq %cr0, %rax
    andq $~(CR0_EM | CR0_TS), %rax
    orq $(CR0_MP | CR0_NE), %rax
    movq %rax, %cr0
    movq %rdx, %r8
    movl $MSR_EFER, %ecx          /* `syscall` on */
    rdmsr
    orl $EFER_SCE, %eax
    wrmsr
    movq %r8, %rdx
    leaq sdk_boot_stack_top(%rip), %rsp
    xorl %ebp, %ebp
    call sdk_kmain
2:  cli
    hlt
    jmp 2b

/* ---- GDT: Accessed bit preset in every code/data descriptor ---- */
    .section .data.sdk_gdt, "aw"
    .balign 16
    .globl sdk_gdt
sdk_gdt:
    .quad 0                       /* 0x00 null */
    .quad 0x00af9b000000ffff      /* 0x08 kernel code, 64-bit */
    .quad 0x00cf93000000ffff      /* 0x10 kernel data */
    .quad 0                       /* 0x18 unused */
    .quad 0x00cffb000000ffff      /* 0x20 user code, 32-bit (unused) */
    .quad 0x00cff3000000ffff      /* 0x28 user data */
    .quad 0x00affb000000ffff      /* 0x30 user code, 64-bit */
    .quad 0, 0                    /* 0x38 TSS, filled by sdk_cpu_init */
sdk_gdt_end:
    .balign 8
    .word 0
gdt_ptr:
    .word sdk_gdt_end - sdk_gdt - 1
    .quad sdk_gdt

/* ---- Identity map of the first 1 GiB, all user-accessible (guests are
 * one protection domain: ring 3 is for speed, not isolation).  2 MiB
 * pages, except 4 KiB pages for the first 2 MiB so that page 0 can be
 * unmapped once the boot information is read (sdk_unmap_page0): a NULL
 * access is a #PF, on every engine (an address outside RAM is a #PF on
 * KVM but an unmapped-memory error in Unicorn).  From 1 GiB up nothing is
 * mapped. ---- */
    .section .data.sdk_pagetables, "aw"
    .balign 4096
pml4:
    .quad pdpt + PTE_TABLE
    .fill 511, 8, 0
pdpt:
    .quad pd + PTE_TABLE
    .fill 511, 8, 0
pd:
    .quad sdk_pt0 + PTE_TABLE
    .set addr, 0x200000
    .rept 511
    .quad addr + PTE_2M
    .set addr, addr + 0x200000
    .endr
    .globl sdk_pt0
sdk_pt0:
    .set addr, 0
    .rept 512
    .quad addr + PTE_4K
    .set addr, addr + 0x1000
    .endr

/* ---- stacks ---- */
    .section .bss.sdk_stacks, "aw", @nobits
    .balign 16
    .space 16384
    .globl sdk_boot_stack_top
sdk_boot_stack_top:
    .space 16384
    .globl sdk_trap_stack_top     /* TSS.RSP0: entries from ring 3 */
sdk_trap_stack_top:

    .section .note.GNU-stack, "", @progbits
