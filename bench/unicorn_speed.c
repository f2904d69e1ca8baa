/*
 * unicorn_speed — instructions per second of the Unicorn backend on a
 * ring-3 loop (8 instructions, one store), with exact counting:
 *   - plain: vcpu_run with max_insns (block-hook counting, one stop);
 *   - with a breakpoint armed far from the loop (a per-address hook);
 *   - with a write watchpoint armed on memory the loop never touches
 *     (watch mode: a hook on every instruction and on every store);
 *   - Unicorn alone on the same loop, no hooks at all (the ceiling).
 * Prints one line per figure; best of 3 runs each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unicorn/unicorn.h>

#include "vmm/vmm.h"

#define RAM (16ull << 20)
#define CODE 0x100000ull
#define N 200000000ull /* instructions per run */

extern const uint8_t loop8[], loop8_end[];
__asm__(".pushsection .rodata\n.intel_syntax noprefix\nloop8:\n"
        "mov ecx, 0x7fffffff\n mov rbx, 0x200000\n"
        "1: add rax, rcx\n mov [rbx], rax\n xor rdx, rax\n inc rsi\n"
        "add rdi, 3\n sub r8, rdx\n dec ecx\n jnz 1b\n hlt\n"
        "loop8_end:\n.att_syntax prefix\n.popsection\n");

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void put64(uint8_t *ram, uint64_t a, uint64_t v)
{
    memcpy(ram + a, &v, 8);
}

static void seg(struct vmm_segment *s, uint16_t sel, int code)
{
    memset(s, 0, sizeof *s);
    s->selector = sel;
    s->limit = 0xffffffff;
    s->type = code ? 11 : 3;
    s->s = s->present = s->g = 1;
    s->dpl = 3;
    s->l = (uint8_t)code;
    s->db = (uint8_t)!code;
}

/* Long mode at CPL3, identity 2 MiB pages over all RAM. */
static void machine(uint8_t *ram, struct vmm_cpu_state *st)
{
    uint64_t gdt[5] = {0, 0x00af9b000000ffffull, 0x00cf93000000ffffull,
                       0x00cff3000000ffffull, 0x00affb000000ffffull};
    memcpy(ram + 0x1000, gdt, sizeof gdt);
    put64(ram, 0x10000, 0x11000 | 0x27);
    put64(ram, 0x11000, 0x12000 | 0x27);
    for (uint64_t i = 0; i < RAM >> 21; i++)
        put64(ram, 0x12000 + 8 * i, (i << 21) | 0xe7);
    memcpy(ram + CODE, loop8, (size_t)(loop8_end - loop8));
    memset(st, 0, sizeof *st);
    st->version = VMM_STATE_VERSION;
    st->size = sizeof *st;
    st->regs.rip = CODE;
    st->regs.rsp = 0x80000;
    st->regs.rflags = 0x202;
    seg(&st->sregs.cs, 0x23, 1);
    seg(&st->sregs.ss, 0x1b, 0);
    st->sregs.ds = st->sregs.es = st->sregs.fs = st->sregs.gs = st->sregs.ss;
    st->sregs.tr.type = 11;
    st->sregs.tr.present = 1;
    st->sregs.tr.limit = 0x67;
    st->sregs.ldt.unusable = 1;
    st->sregs.gdt.base = 0x1000;
    st->sregs.gdt.limit = sizeof gdt - 1;
    st->sregs.cr0 = 0x80050033;
    st->sregs.cr3 = 0x10000;
    st->sregs.cr4 = 0x620;
    st->sregs.efer = 0x500;
    st->fpu.fcw = 0x37f;
    st->fpu.mxcsr = 0x1f80;
}

static double backend_rate(struct vcpu *cpu, const struct vmm_cpu_state *st)
{
    double best = 0;
    for (int i = 0; i < 3; i++) {
        vcpu_set_state(cpu, st);
        vcpu_set_icount(cpu, 0);
        struct vcpu_run_opts o = {.max_insns = N};
        struct vcpu_exit e;
        double t = now();
        int rc = vcpu_run(cpu, &o, &e);
        t = now() - t;
        if (rc || e.reason != VCPU_EXIT_LIMIT || e.icount != N) {
            fprintf(stderr, "unicorn_speed: run failed: %s (%s)\n",
                    vmm_strerror(rc), e.detail);
            return -1;
        }
        if (N / t > best)
            best = N / t;
    }
    return best;
}

/* Unicorn with no hook: runs the loop from CPL0 without paging until a
 * fixed number of iterations, for the ceiling. */
static double raw_rate(uint8_t *ram)
{
    uc_engine *uc;
    if (uc_open(UC_ARCH_X86, UC_MODE_64, &uc) ||
        uc_mem_map_ptr(uc, 0, RAM, UC_PROT_ALL, ram))
        return -1;
    double best = 0;
    uint64_t iters = N / 8;
    for (int i = 0; i < 3; i++) {
        uint64_t rcx = iters, rbx = 0x200000;
        uc_reg_write(uc, UC_X86_REG_RCX, &rcx);
        uc_reg_write(uc, UC_X86_REG_RBX, &rbx);
        double t = now();
        /* start at the loop body (after the mov ecx) and stop at hlt */
        uc_emu_start(uc, CODE + 12, CODE + (uint64_t)(loop8_end - loop8) - 1,
                     0, 0);
        t = now() - t;
        if (iters * 8 / t > best)
            best = (double)(iters * 8) / t;
    }
    uc_close(uc);
    return best;
}

int main(void)
{
    uint8_t *ram = aligned_alloc(4096, RAM);
    if (!ram)
        return 1;
    memset(ram, 0, RAM);
    struct vmm_cpu_state st;
    machine(ram, &st);
    struct vmm_cpuid cpuid = {.nent = 0};
    struct vcpu_config cfg = {&vcpu_unicorn_ops, ram, RAM, &cpuid, NULL,
                              NULL};
    struct vcpu *cpu;
    int rc = vcpu_create(&cfg, &cpu);
    if (rc) {
        fprintf(stderr, "unicorn_speed: %s\n", vmm_strerror(rc));
        return 1;
    }
    double plain = backend_rate(cpu, &st);
    uint64_t far = 0x300000;
    vcpu_set_breakpoints(cpu, &far, 1);
    double bp = backend_rate(cpu, &st);
    vcpu_set_breakpoints(cpu, NULL, 0);
    struct vcpu_watch w = {0x300000, 8, VCPU_WATCH_WRITE};
    vcpu_set_watchpoints(cpu, &w, 1);
    double watch = backend_rate(cpu, &st);
    vcpu_destroy(cpu);
    double raw = raw_rate(ram);
    if (plain < 0 || bp < 0 || watch < 0 || raw < 0)
        return 1;
    printf("unicorn backend, ring-3 loop, exact count: %6.1f M instr/s\n",
           plain / 1e6);
    printf("  with a far breakpoint armed:              %6.1f M instr/s\n",
           bp / 1e6);
    printf("  with a far write watchpoint armed:        %6.1f M instr/s\n",
           watch / 1e6);
    printf("  Unicorn alone, no hooks (ceiling):        %6.1f M instr/s\n",
           raw / 1e6);
    free(ram);
    return 0;
}
