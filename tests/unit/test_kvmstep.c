/*
 * test_kvmstep.c — the kvm-step backend against the vmm.h contract, on
 * tiny code in RAM: positions count instructions and each rep iteration
 * (address size honoured), io callbacks see the registers before the
 * instruction (each element of a string instruction), breakpoints and
 * their hit filter, write watchpoints stop with the state before the
 * writing instruction (also through a second mapping of the page), a
 * fault counts one and stops at the handler, an injected interrupt is
 * delivered at once, and CPL3 is refused where the host cannot step it.
 * Skipped without /dev/kvm or single-step at CPL0.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/vmm_testlib.h"
#include "vmm/vmm_int.h"

#define CODE 0x100000ull
#define HANDLER (CODE + 0x800) /* every vector: nop; nop; hlt */
#define DATA 0x200100ull
#define ALIAS 0x1200100ull     /* virtual 18 MiB page -> physical 2 MiB */
#define IDT 0x70000ull

static struct vmm *vm;
static struct vcpu *cpu;

static struct {
    int n;
    uint16_t port[16];
    bool write[16];
    uint32_t val[16];
    struct vmm_regs regs[16];
    uint64_t icount[16];
    int ret; /* what the callback returns */
} io;

static int on_pio(void *ctx, uint16_t port, unsigned size, bool write,
                  uint32_t *val)
{
    (void)ctx, (void)size;
    if (io.n < 16) {
        io.port[io.n] = port;
        io.write[io.n] = write;
        io.val[io.n] = write ? *val : 0;
        vcpu_get_regs(cpu, &io.regs[io.n]);
        io.icount[io.n] = vcpu_icount(cpu);
    }
    io.n++;
    if (!write)
        *val = 0x40 + (uint32_t)io.n;
    return io.ret;
}

static int on_mmio(void *ctx, uint64_t gpa, unsigned size, bool write,
                   uint64_t *val)
{
    (void)ctx, (void)gpa, (void)size;
    if (!write)
        *val = 0x77;
    return 0;
}

static const struct vmm_io_ops io_ops = {on_pio, on_mmio};

static void setup(void)
{
    if (access("/dev/kvm", R_OK | W_OK) || !vmm_host_probe()->step_cpl0)
        return;
    struct vmm_config cfg = {.mem_size = 4 << 20, .serial_in_fd = -1,
                             .serial_out_fd = -1, .backend = "kvm-step"};
    cr_assert_eq(vmm_create(&cfg, &vm), 0, "%s", vmm_error_detail(NULL));
    cpu = vmm_vcpu(vm);
    vcpu_set_io(cpu, &io_ops, NULL);
}

static void teardown(void) { vmm_destroy(vm); }

TestSuite(kvmstep, .init = setup, .fini = teardown);

static void gate(uint8_t *ram, unsigned v, uint64_t h)
{
    uint64_t lo = (h & 0xffff) | (0x08ull << 16) | (0x8eull << 40) |
                  (((h >> 16) & 0xffff) << 48);
    uint64_t hi = h >> 32;
    memcpy(ram + IDT + 16 * v, &lo, 8);
    memcpy(ram + IDT + 16 * v + 8, &hi, 8);
}

/* Long mode at CPL0 (or CPL3), IDT with every vector at HANDLER, the
 * 18 MiB page mapped to physical 2 MiB as well. */
static struct vmm_cpu_state start(const uint8_t *code, size_t n, int cpl)
{
    if (!vm)
        cr_skip_test("no /dev/kvm, or no single-step at CPL0 here");
    uint8_t *ram = vmm_ram(vm);
    struct vmm_cpu_state st = testlib_long_mode(ram, vmm_ram_size(vm), CODE);
    memset(ram + CODE, 0x90, 0x1000);
    memcpy(ram + CODE, code, n);
    ram[HANDLER + 2] = 0xf4;
    uint64_t pde = (2ull << 20) | 0xe7; /* 18 MiB -> 2 MiB */
    memcpy(ram + VMM_BOOT_PML4 + 0x2000 + 9 * 8, &pde, 8);
    pde = (16ull << 20) | 0xe7; /* 16 MiB: MMIO, past RAM */
    memcpy(ram + VMM_BOOT_PML4 + 0x2000 + 8 * 8, &pde, 8);
    memset(ram + IDT, 0, 4096);
    for (unsigned v = 0; v < 256; v++)
        gate(ram, v, HANDLER);
    st.sregs.idt.base = IDT;
    st.sregs.idt.limit = 4095;
    if (cpl) {
        uint64_t gdt[3] = {0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
        uint64_t ugdt[2] = {0x00affb000000ffffull, 0x00cff3000000ffffull};
        memcpy(ram + VMM_BOOT_GDT, gdt, sizeof gdt);
        memcpy(ram + VMM_BOOT_GDT + sizeof gdt, ugdt, sizeof ugdt);
        st.sregs.gdt.limit = 5 * 8 - 1;
        st.sregs.cs.selector = 0x1b;
        st.sregs.cs.dpl = 3;
        st.sregs.ds.selector = 0x23;
        st.sregs.ds.dpl = 3;
        st.sregs.es = st.sregs.fs = st.sregs.gs = st.sregs.ss = st.sregs.ds;
    }
    memset(&st.regs, 0, sizeof st.regs);
    st.regs.rip = CODE;
    st.regs.rsp = 0x80000;
    st.regs.rdx = 0x3f8;
    st.regs.rflags = 0x2;
    memset(&io, 0, sizeof io);
    cr_assert_eq(vcpu_set_state(cpu, &st), 0);
    vcpu_set_icount(cpu, 0);
    return st;
}

static struct vcpu_exit run(uint64_t max)
{
    struct vcpu_run_opts o = {.max_insns = max};
    struct vcpu_exit e;
    int rc = vcpu_run(cpu, &o, &e);
    cr_assert_eq(rc, 0, "run: %s: %s", vmm_strerror(rc), e.detail);
    return e;
}

static struct vmm_regs regs(void)
{
    struct vmm_regs r;
    cr_assert_eq(vcpu_get_regs(cpu, &r), 0);
    return r;
}

static void set_regs(const struct vmm_regs *r)
{
    cr_assert_eq(vcpu_set_regs(cpu, r), 0);
}

Test(kvmstep, counts_instructions)
{
    static const uint8_t c[] = {0x90, 0x48, 0xff, 0xc0, 0x90, 0xf4};
    start(c, sizeof c, 0); /* nop; inc rax; nop; hlt */
    struct vcpu_exit e = run(2);
    cr_assert_eq(e.reason, VCPU_EXIT_LIMIT, "exit %d: %s", e.reason, e.detail);
    cr_assert_eq(vcpu_icount(cpu), 2);
    cr_assert_eq(e.icount, 2);
    cr_assert_eq(regs().rip, CODE + 4);
    cr_assert_eq(regs().rax, 1);
    e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_HLT);
    cr_assert_eq(vcpu_icount(cpu), 4, "hlt is one instruction");
    cr_assert_eq(regs().rip, CODE + 6);
    vcpu_set_icount(cpu, 1000);
    struct vcpu_run_opts one = {.single_step = true};
    cr_assert_eq(vcpu_run(cpu, &one, &e), 0);
    cr_assert_eq(e.reason, VCPU_EXIT_STEP);
    cr_assert_eq(vcpu_icount(cpu), 1001);
}

/* rep movsb of 5: five positions, RIP at the rep until the last; then
 * the nop after it.  From 0, position 3 is inside the rep. */
Test(kvmstep, rep_iterations_are_positions)
{
    static const uint8_t c[] = {0xf3, 0xa4, 0x90, 0xf4};
    start(c, sizeof c, 0);
    uint8_t *ram = vmm_ram(vm);
    memcpy(ram + 0x200000, "abcdefgh", 8);
    struct vmm_regs r = regs();
    r.rcx = 5;
    r.rsi = 0x200000;
    r.rdi = 0x210000;
    set_regs(&r);
    struct vmm_cpu_state s0;
    vcpu_get_state(cpu, &s0);
    for (uint64_t k = 1; k <= 5; k++) {
        struct vcpu_run_opts one = {.single_step = true};
        struct vcpu_exit e;
        cr_assert_eq(vcpu_run(cpu, &one, &e), 0, "%s", e.detail);
        r = regs();
        cr_assert_eq(vcpu_icount(cpu), k);
        cr_assert_eq(r.rcx, 5 - k, "after %llu: rcx %llu",
                     (unsigned long long)k, (unsigned long long)r.rcx);
        cr_assert_eq(r.rdi, 0x210000 + k);
        cr_assert_eq(r.rip, k < 5 ? CODE : CODE + 2);
        cr_assert_eq(ram[0x210000 + k - 1], "abcde"[k - 1]);
    }
    /* many at once, stopping inside and after */
    memset(ram + 0x210000, 0, 8);
    vcpu_set_state(cpu, &s0);
    vcpu_set_icount(cpu, 0);
    struct vcpu_exit e = run(3);
    cr_assert_eq(e.reason, VCPU_EXIT_LIMIT);
    r = regs();
    cr_assert_eq(r.rcx, 2);
    cr_assert_eq(r.rip, CODE);
    cr_assert_eq(ram[0x210003], 0, "only three copied");
    e = run(3);
    cr_assert_eq(vcpu_icount(cpu), 6, "two more iterations and the nop");
    cr_assert_eq(regs().rip, CODE + 3);
    cr_assert_eq(memcmp(ram + 0x210000, "abcde\0", 6), 0);
}

/* 67 f3 48 ab: rep stosq counting in ECX; the count zero-extends. */
Test(kvmstep, rep_address_size_32)
{
    static const uint8_t c[] = {0x67, 0xf3, 0x48, 0xab, 0xf4};
    start(c, sizeof c, 0);
    struct vmm_regs r = regs();
    r.rcx = 0xabcd000000000004ull;
    r.rdi = 0x210000;
    r.rax = 0x1111222233334444ull;
    set_regs(&r);
    struct vcpu_exit e = run(1);
    r = regs();
    cr_assert_eq(r.rcx, 3, "rcx %#llx", (unsigned long long)r.rcx);
    cr_assert_eq(r.rip, CODE);
    e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_HLT);
    cr_assert_eq(vcpu_icount(cpu), 5);
    r = regs();
    cr_assert_eq(r.rcx, 0);
    cr_assert_eq(r.rdi, 0x210020);
}

/* repe cmpsb stops at the first difference: that iteration is the last. */
Test(kvmstep, repe_cmps_ends_early)
{
    static const uint8_t c[] = {0xf3, 0xa6, 0xf4};
    start(c, sizeof c, 0);
    uint8_t *ram = vmm_ram(vm);
    memcpy(ram + 0x200000, "abcXef", 6);
    memcpy(ram + 0x210000, "abcdef", 6);
    struct vmm_regs r = regs();
    r.rcx = 6;
    r.rsi = 0x200000;
    r.rdi = 0x210000;
    set_regs(&r);
    struct vcpu_exit e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_HLT);
    cr_assert_eq(vcpu_icount(cpu), 5, "4 iterations and the hlt");
    r = regs();
    cr_assert_eq(r.rcx, 2);
    cr_assert_eq(r.rsi, 0x200004);
}

/* out; in; rep outsb of 3: each access sees the registers before it and
 * its position; a callback asking to stop stops after the instruction. */
Test(kvmstep, io_callbacks_see_registers_before)
{
    static const uint8_t c[] = {0xee, 0xec, 0xf3, 0x6e, 0x90, 0xf4};
    start(c, sizeof c, 0);
    memcpy(vmm_ram(vm) + 0x200000, "xyz", 3);
    struct vmm_regs r = regs();
    r.rax = 0x61;
    r.rcx = 3;
    r.rsi = 0x200000;
    set_regs(&r);
    struct vcpu_exit e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_HLT, "exit %d: %s", e.reason, e.detail);
    cr_assert_eq(io.n, 5);
    cr_assert_eq(io.regs[0].rip, CODE);
    cr_assert_eq(io.icount[0], 0);
    cr_assert(io.write[0] && io.val[0] == 0x61);
    cr_assert_eq(io.regs[1].rip, CODE + 1);
    cr_assert_eq(io.icount[1], 1);
    cr_assert_eq(io.regs[1].rax, 0x61, "IN: before it");
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(io.regs[2 + k].rip, CODE + 2);
        cr_assert_eq(io.icount[2 + k], 2 + (uint64_t)k);
        cr_assert_eq(io.regs[2 + k].rcx, 3 - (uint64_t)k);
        cr_assert_eq(io.regs[2 + k].rsi, 0x200000 + (uint64_t)k);
        cr_assert_eq(io.val[2 + k], (uint32_t)"xyz"[k]);
    }
    cr_assert_eq(vcpu_icount(cpu), 7);
    r = regs();
    cr_assert_eq(r.rax & 0xff, 0x42, "IN got the callback's value");
    /* stop after an access */
    start(c, sizeof c, 0);
    io.ret = 1;
    e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_STOP);
    cr_assert(!e.is_mmio && e.io.port == 0x3f8 && e.io.write);
    cr_assert_eq(vcpu_icount(cpu), 1);
    cr_assert_eq(regs().rip, CODE + 1);
}

/* MMIO past RAM: the callback's value lands, one position. */
Test(kvmstep, mmio_read_is_one_instruction)
{
    static const uint8_t c[] = {0x8b, 0x03, 0x90, 0xf4}; /* mov eax,[rbx] */
    start(c, sizeof c, 0);
    struct vmm_regs r = regs();
    r.rbx = 16ull << 20;
    set_regs(&r);
    struct vcpu_exit e = run(1);
    cr_assert_eq(e.reason, VCPU_EXIT_LIMIT);
    r = regs();
    cr_assert_eq(r.rip, CODE + 2);
    cr_assert_eq(r.rax, 0x77);
}

static struct {
    int n;
    uint64_t icount[8];
    int ret;
} hits;

static int on_hit(void *ctx, const struct vcpu_hit *h)
{
    (void)ctx;
    if (hits.n < 8)
        hits.icount[hits.n] = h->icount;
    hits.n++;
    return hits.ret;
}

Test(kvmstep, breakpoints_and_hit_filter)
{
    /* 0: nop; 1: rep stosb (3); 3: nop; 4: jmp 0 (2 bytes, loops) */
    static const uint8_t c[] = {0x90, 0xf3, 0xaa, 0x90, 0xeb, 0xfa};
    start(c, sizeof c, 0);
    struct vmm_regs r = regs();
    r.rcx = 3;
    r.rdi = 0x210000;
    set_regs(&r);
    uint64_t bp = CODE + 1;
    cr_assert_eq(vcpu_set_breakpoints(cpu, &bp, 1), 0);
    struct vcpu_exit e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_BREAKPOINT);
    cr_assert_eq(vcpu_icount(cpu), 1);
    cr_assert_eq(regs().rip, bp);
    /* from the breakpoint: not again at once; next time round, RCX = 0 */
    e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_BREAKPOINT);
    cr_assert_eq(vcpu_icount(cpu), 1 + 3 + 2 + 1, "3 iterations, nop, jmp, "
                 "nop: at %llu", (unsigned long long)vcpu_icount(cpu));
    /* a filter that lets hits go: the rep's first iteration only */
    start(c, sizeof c, 0);
    r = regs();
    r.rcx = 3;
    r.rdi = 0x210000;
    set_regs(&r);
    vcpu_set_hit_filter(cpu, on_hit, NULL);
    memset(&hits, 0, sizeof hits);
    e = run(20);
    cr_assert_eq(e.reason, VCPU_EXIT_LIMIT);
    /* 1; then 3 iterations, nop, jmp, nop: 7 (the rep is one position
     * with RCX = 0); then every 4: 11, 15, 19 */
    cr_assert_eq(hits.n, 5, "hits %d", hits.n);
    cr_assert_eq(hits.icount[0], 1);
    cr_assert_eq(hits.icount[1], 7);
    cr_assert_eq(hits.icount[4], 19);
    vcpu_set_hit_filter(cpu, NULL, NULL);
    vcpu_set_breakpoints(cpu, NULL, 0);
}

/* mov [rbx],rax writes DATA through its second mapping: the watchpoint
 * on DATA stops before the mov (old value in memory, RIP at it), and
 * running on executes it once without stopping again. */
Test(kvmstep, write_watch_stops_before_the_writer)
{
    static const uint8_t c[] = {0x90, 0x48, 0x89, 0x03, 0x90, 0xf4};
    start(c, sizeof c, 0);
    uint8_t *ram = vmm_ram(vm);
    uint64_t old = 0x1234, now;
    memcpy(ram + DATA, &old, 8);
    struct vmm_regs r = regs();
    r.rbx = ALIAS;
    r.rax = 0xfeedull;
    set_regs(&r);
    struct vcpu_watch w = {DATA + 1, 4, VCPU_WATCH_WRITE};
    cr_assert_eq(vcpu_set_watchpoints(cpu, &w, 1), 0);
    struct vcpu_exit e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_WATCH, "exit %d: %s", e.reason,
                 e.detail);
    cr_assert_eq(vcpu_icount(cpu), 1);
    cr_assert_eq(regs().rip, CODE + 1);
    cr_assert_eq(e.watch.addr, DATA + 1, "first byte changed: %#llx",
                 (unsigned long long)e.watch.addr);
    cr_assert_eq(e.watch.kind, VCPU_WATCH_WRITE);
    memcpy(&now, ram + DATA, 8);
    cr_assert_eq(now, old, "memory is as before the write");
    e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_HLT);
    memcpy(&now, ram + DATA, 8);
    cr_assert_eq(now, 0xfeed);
    cr_assert_eq(vcpu_icount(cpu), 4);
    struct vcpu_watch rw = {DATA, 4, VCPU_WATCH_READ};
    cr_assert_eq(vcpu_set_watchpoints(cpu, &rw, 1), VMM_E_UNSUPPORTED);
    cr_assert_eq(vcpu_set_watchpoints(cpu, NULL, 0), 0);
}

/* A logging filter sees the state before the write; the run goes on. */
static int on_watch(void *ctx, const struct vcpu_hit *h)
{
    uint64_t *seen = ctx;
    struct vmm_regs r;
    vcpu_get_regs(cpu, &r);
    seen[0] = h->icount;
    seen[1] = r.rip;
    memcpy(&seen[2], vmm_ram(vm) + DATA, 8);
    return 0;
}

Test(kvmstep, watch_filter_sees_before_and_runs_on)
{
    static const uint8_t c[] = {0x90, 0x48, 0x89, 0x03, 0x90, 0xf4};
    start(c, sizeof c, 0);
    uint64_t old = 0x1234, now, seen[3] = {0};
    memcpy(vmm_ram(vm) + DATA, &old, 8);
    struct vmm_regs r = regs();
    r.rbx = DATA;
    r.rax = 0xfeedull;
    set_regs(&r);
    struct vcpu_watch w = {DATA, 8, VCPU_WATCH_WRITE};
    vcpu_set_watchpoints(cpu, &w, 1);
    vcpu_set_hit_filter(cpu, on_watch, seen);
    struct vcpu_exit e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_HLT);
    cr_assert_eq(seen[0], 1);
    cr_assert_eq(seen[1], CODE + 1);
    cr_assert_eq(seen[2], old);
    memcpy(&now, vmm_ram(vm) + DATA, 8);
    cr_assert_eq(now, 0xfeed);
    cr_assert_eq(vcpu_icount(cpu), 4);
    vcpu_set_hit_filter(cpu, NULL, NULL);
    vcpu_set_watchpoints(cpu, NULL, 0);
}

/* A load from an unmapped address: one position, then the handler. */
Test(kvmstep, fault_counts_one_and_stops_at_the_handler)
{
    static const uint8_t c[] = {0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0x40};
    start(c, sizeof c, 0); /* mov rax,[0x40000000] */
    struct vcpu_exit e = run(1);
    cr_assert_eq(e.reason, VCPU_EXIT_LIMIT, "exit %d: %s", e.reason,
                 e.detail);
    struct vmm_cpu_state s;
    vcpu_get_state(cpu, &s);
    cr_assert_eq(s.regs.rip, HANDLER, "at %#llx", (unsigned long long)
                 s.regs.rip);
    cr_assert_eq(s.sregs.cr2, 0x40000000);
    uint64_t frame[2];
    memcpy(frame, vmm_ram(vm) + s.regs.rsp, sizeof frame);
    cr_assert_eq(frame[1], CODE, "the frame holds the faulting RIP");
    e = run(1);
    cr_assert_eq(regs().rip, HANDLER + 1);
    cr_assert_eq(vcpu_icount(cpu), 2);
}

Test(kvmstep, injected_interrupt_is_delivered_at_once)
{
    static const uint8_t c[] = {0x90, 0x90, 0xf4};
    start(c, sizeof c, 0);
    struct vmm_regs r = regs();
    r.rflags = 0x202;
    set_regs(&r);
    cr_assert_eq(vcpu_irq_ready(cpu), 1);
    cr_assert_eq(vcpu_inject_irq(cpu, 0x20), 0);
    r = regs();
    cr_assert_eq(r.rip, HANDLER);
    cr_assert_eq(r.rsp, 0x80000 - 40);
    cr_assert_eq(vcpu_icount(cpu), 0, "delivery is not an instruction");
    struct vcpu_exit e = run(1);
    cr_assert_eq(e.reason, VCPU_EXIT_LIMIT);
    cr_assert_eq(regs().rip, HANDLER + 1);
}

/* Under kvm-pvm single steps at CPL3 go wrong: refused before anything
 * runs, at CPL3 and at an iretq back there. */
Test(kvmstep, cpl3_refused_where_the_host_cannot_step_it)
{
    if (vmm_host_probe()->step_cpl3)
        cr_skip_test("this host single-steps CPL3");
    static const uint8_t c[] = {0x90, 0xf4};
    start(c, sizeof c, 3);
    struct vcpu_run_opts o = {0};
    struct vcpu_exit e;
    cr_assert_eq(vcpu_run(cpu, &o, &e), VMM_E_NOSTEP);
    cr_assert(strstr(e.detail, "CPL3"), "%s", e.detail);
    cr_assert_eq(vcpu_icount(cpu), 0);
    cr_assert_eq(regs().rip, CODE);
    /* iretq to a CPL3 frame: stops before it */
    static const uint8_t ir[] = {0x90, 0x48, 0xcf};
    start(ir, sizeof ir, 0);
    uint64_t frame[5] = {CODE, 0x1b, 0x202, 0x70000, 0x23};
    memcpy(vmm_ram(vm) + 0x80000 - 40, frame, sizeof frame);
    struct vmm_regs r = regs();
    r.rsp = 0x80000 - 40;
    set_regs(&r);
    cr_assert_eq(vcpu_run(cpu, &o, &e), VMM_E_NOSTEP);
    cr_assert(strstr(e.detail, "iret") && strstr(e.detail, "CPL3"), "%s",
              e.detail);
    cr_assert_eq(vcpu_icount(cpu), 1);
    cr_assert_eq(regs().rip, CODE + 1);
}

Test(kvmstep, kick_and_dirty_log)
{
    static const uint8_t c[] = {0x88, 0x03, 0xeb, 0xfe}; /* mov [rbx],al */
    start(c, sizeof c, 0);
    cr_assert(vcpu_caps(cpu) & VCPU_CAP_ICOUNT);
    cr_assert_eq(vcpu_coverage(cpu, true), VMM_E_UNSUPPORTED);
    vcpu_kick(cpu);
    struct vcpu_exit e = run(0);
    cr_assert_eq(e.reason, VCPU_EXIT_KICK);
    cr_assert_eq(vcpu_icount(cpu), 0);
    if (!(vcpu_caps(cpu) & VCPU_CAP_DIRTY_LOG))
        return;
    uint64_t pages = vmm_ram_size(vm) / 4096;
    uint64_t *bm = calloc((pages + 63) / 64, 8);
    cr_assert_eq(vcpu_dirty_log(cpu, bm), 0);
    struct vmm_regs r = regs();
    r.rbx = 0x234567;
    set_regs(&r);
    run(3);
    memset(bm, 0, (pages + 63) / 64 * 8);
    cr_assert_eq(vcpu_dirty_log(cpu, bm), 0);
    cr_assert(bm[0x234 / 64] & (1ull << (0x234 % 64)));
    free(bm);
}
