/*
 * cpu.c — the CPU tables that need addresses only known at run time: the
 * TSS descriptor, the IDT, and the `syscall` MSRs.  The GDT and the page
 * tables themselves are static data in boot.S.
 */
#include "sdk_int.h"

#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_FMASK 0xc0000084

/* RFLAGS cleared on `syscall`: TF, IF, DF, IOPL, NT, AC. */
#define SYSCALL_FMASK 0x47700

#define IO_BITMAP_BYTES 8192

struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
    uint8_t iomap[IO_BITMAP_BYTES];
    uint8_t iomap_end; /* the CPU reads one byte past the bitmap */
} __attribute__((packed));

/* Every port denied to ring 3 until sdk_io_allow; static data, so no
 * ring-0 loop has to fill 8 KiB at boot. */
static struct tss tss = {
    .iomap_base = offsetof(struct tss, iomap),
    .iomap = {[0 ... IO_BITMAP_BYTES - 1] = 0xff},
    .iomap_end = 0xff,
};

struct idt_gate {
    uint16_t off_lo, sel;
    uint8_t ist, type_attr;
    uint16_t off_mid;
    uint32_t off_hi, zero;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));

extern uint64_t sdk_gdt[];

struct desc_ptr {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

static void tss_install(void)
{
    uint64_t base = (uint64_t)&tss, limit = sizeof(tss) - 1;
    uint64_t *d = &sdk_gdt[SEL_TSS / 8];

    tss.rsp[0] = (uint64_t)sdk_trap_stack_top;
    /* Available 64-bit TSS (type 9), present; ltr marks it busy. */
    d[0] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
           (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    d[1] = base >> 32;
    __asm__ volatile("ltr %w0" : : "r"(SEL_TSS));
}

static void idt_install(void)
{
    struct desc_ptr p = {sizeof(idt) - 1, (uint64_t)idt};

    for (unsigned v = 0; v < 48; v++) {
        uint64_t h = sdk_isr_table[v];
        /* Interrupt gates (IF cleared on entry).  DPL 3 for #BP and #OF
         * so that int3/into work from ring 3; other vectors raised by
         * `int n` from ring 3 are a #GP. */
        uint8_t dpl = (v == 3 || v == 4) ? 3 : 0;

        idt[v] = (struct idt_gate){
            .off_lo = (uint16_t)h,
            .sel = SEL_KCODE,
            .type_attr = (uint8_t)(0x8e | (dpl << 5)),
            .off_mid = (uint16_t)(h >> 16),
            .off_hi = (uint32_t)(h >> 32),
        };
    }
    __asm__ volatile("lidt %0" : : "m"(p));
}

void sdk_cpu_init(void)
{
    tss_install();
    idt_install();
    /* The SDK makes no use of `syscall` (abi.h says why), but sets it up
     * the standard way so that a stray one ends on a defined #UD.  The user
     * half of STAR is what kvm-pvm insists on (user CS = 0x33). */
    sdk_wrmsr(MSR_STAR,
              ((uint64_t)SEL_UCODE32 << 48) | ((uint64_t)SEL_KCODE << 32));
    sdk_wrmsr(MSR_LSTAR, (uint64_t)sdk_syscall_unsupported);
    sdk_wrmsr(MSR_FMASK, SYSCALL_FMASK);
}

void sdk_io_allow(uint16_t port, unsigned count)
{
    for (unsigned p = port; p < (unsigned)port + count && p < 0x10000; p++)
        tss.iomap[p / 8] &= (uint8_t) ~(1u << (p % 8));
}

void sdk_unmap_page0(void)
{
    extern uint64_t sdk_pt0[512];

    sdk_pt0[0] = 0;
    __asm__ volatile("invlpg (%0)" : : "r"(0ul) : "memory");
}
