/*
 * test_vcpu_kvm.c — the KVM backend against the vmm.h contract, on tiny
 * code placed in RAM: at port and MMIO exits the registers are those
 * *before* the accessing instruction (RIP at it), for writes as for reads
 * and at CPL0 as at CPL3; HLT leaves RIP after it; state survives a
 * get/set round trip; a kick stops the vCPU.  Skipped without /dev/kvm.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/vmm_testlib.h"
#include "vmm/vmm_int.h"

#define CODE 0x100000ull

static struct vmm *vm;
static struct vcpu *cpu;

struct seen {
    int n;
    uint16_t port[8];
    uint32_t val[8];
};

static void setup(void)
{
    if (access("/dev/kvm", R_OK | W_OK))
        return;
    static int devnull = -1;
    if (devnull < 0)
        devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    struct vmm_config cfg = { .mem_size = 4 << 20, .serial_in_fd = -1,
                              .serial_out_fd = devnull };
    cr_assert_eq(vmm_create(&cfg, &vm), 0);
    vm->bus.report = NULL; /* the unknown ports here are on purpose */
    cpu = vmm_vcpu(vm);
}

static void teardown(void) { vmm_destroy(vm); }

TestSuite(kvm, .init = setup, .fini = teardown);

/* Long-mode boot state at CPL0 or, with a TSS whose I/O bitmap allows
 * every port, at CPL3 (user segments 0x18/0x20 in the GDT below). */
static void start(const uint8_t *code, size_t n, int cpl)
{
    if (!vm)
        cr_skip_test("no usable /dev/kvm");
    uint8_t *ram = vmm_ram(vm);
    struct vmm_cpu_state st;
    struct vmm_image_info info;
    static const uint8_t empty[1];
    cr_assert_eq(vmm_load(ram, vmm_ram_size(vm), empty, 0, VMM_BOOT_AUTO, "",
                          true, &st, &info), VMM_E_IMAGE);
    st = testlib_long_mode(ram, vmm_ram_size(vm), CODE);
    memcpy(ram + CODE, code, n);
    uint64_t pde = (16ull << 20) | 0xe7; /* map the MMIO page past RAM */
    memcpy(ram + VMM_BOOT_PML4 + 0x2000 + 8 * 8, &pde, 8);
    if (cpl) {
        uint64_t gdt[6] = { 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull,
                            0x00affb000000ffffull, 0x00cff3000000ffffull, 0 };
        memcpy(ram + VMM_BOOT_GDT, gdt, sizeof gdt);
        st.sregs.gdt.limit = sizeof gdt - 1;
        st.sregs.cs.selector = 0x1b;
        st.sregs.cs.dpl = 3;
        st.sregs.ds.selector = 0x23;
        st.sregs.ds.dpl = 3;
        st.sregs.es = st.sregs.fs = st.sregs.gs = st.sregs.ss = st.sregs.ds;
        uint8_t *tss = ram + 0x60000;
        memset(tss, 0, 104 + 8192 + 1);
        tss[102] = 104;
        tss[104 + 8192] = 0xff;
        st.sregs.tr.base = 0x60000;
        st.sregs.tr.limit = 104 + 8192;
        st.sregs.tr.type = 11;
        st.sregs.tr.present = 1;
        st.regs.rflags = 0x202; /* CPL3 runs with IF=1 under kvm-pvm */
    }
    st.regs.rip = CODE;
    st.regs.rdx = 0x3f8;
    st.regs.rbx = 16ull << 20; /* past RAM: MMIO */
    cr_assert_eq(vcpu_set_state(cpu, &st), 0);
}

static void expect_io(uint16_t port, bool write, uint64_t rip)
{
    struct vcpu_exit e;
    struct vmm_regs r;
    cr_assert_eq(vcpu_run(cpu, NULL, &e), 0);
    cr_assert_eq(e.reason, VCPU_EXIT_IO, "exit %d: %s", e.reason, e.detail);
    cr_assert(!e.is_mmio);
    cr_assert_eq(e.io.port, port);
    cr_assert_eq(e.io.write, write);
    cr_assert_eq(vcpu_get_regs(cpu, &r), 0);
    cr_assert_eq(r.rip, rip, "port %x %s: RIP 0x%llx, want 0x%llx", port,
                 write ? "write" : "read", (unsigned long long)r.rip,
                 (unsigned long long)rip);
}

static void expect_mmio(bool write, uint64_t rip)
{
    struct vcpu_exit e;
    struct vmm_regs r;
    cr_assert_eq(vcpu_run(cpu, NULL, &e), 0);
    cr_assert_eq(e.reason, VCPU_EXIT_IO, "exit %d: %s", e.reason, e.detail);
    cr_assert(e.is_mmio);
    cr_assert_eq(e.mmio.gpa, 16ull << 20);
    cr_assert_eq(e.mmio.write, write);
    cr_assert_eq(vcpu_get_regs(cpu, &r), 0);
    cr_assert_eq(r.rip, rip, "mmio %s: RIP 0x%llx, want 0x%llx",
                 write ? "write" : "read", (unsigned long long)r.rip,
                 (unsigned long long)rip);
}

/*  0: out dx,al      1: in al,dx      2: out 0x80,al   4: in al,0x81
 *  6: out dx,ax (66) 8: mov [rbx],eax 10: mov eax,[rbx+0]
 * 13: mov qword [rbx],rcx (48 89 0b) 16: out dx,al */
static const uint8_t code[] = {
    0xee, 0xec, 0xe6, 0x80, 0xe4, 0x81, 0x66, 0xef, 0x89, 0x03,
    0x8b, 0x43, 0x00, 0x48, 0x89, 0x0b, 0xee, 0xeb, 0xfe,
};

static void io_sequence(int cpl)
{
    start(code, sizeof code, cpl);
    expect_io(0x3f8, true, CODE + 0);
    expect_io(0x3f8, false, CODE + 1);
    expect_io(0x80, true, CODE + 2);
    expect_io(0x81, false, CODE + 4);
    expect_io(0x3f8, true, CODE + 6);
    expect_mmio(true, CODE + 8);
    expect_mmio(false, CODE + 10);
    expect_mmio(true, CODE + 13);
    expect_io(0x3f8, true, CODE + 16);
}

Test(kvm, rip_before_io_cpl0) { io_sequence(0); }
Test(kvm, rip_before_io_cpl3) { io_sequence(3); }

Test(kvm, hlt_rip_after_and_state_round_trip)
{
    static const uint8_t c[] = { 0x48, 0xc7, 0xc0, 0x2a, 0, 0, 0, /* mov rax,42 */
                                 0xf4, 0xee, 0xeb, 0xfe };
    start(c, sizeof c, 0);
    struct vcpu_exit e;
    cr_assert_eq(vcpu_run(cpu, NULL, &e), 0);
    cr_assert_eq(e.reason, VCPU_EXIT_HLT);
    struct vmm_cpu_state a, b;
    cr_assert_eq(vcpu_get_state(cpu, &a), 0);
    cr_assert_eq(a.regs.rip, CODE + 8);
    cr_assert_eq(a.regs.rax, 42);
    a.regs.rax = 7;
    a.msrs.lstar = 0xffff800000001234ull;
    a.fpu.xmm[3][5] = 0x77;
    cr_assert_eq(vcpu_set_state(cpu, &a), 0);
    cr_assert_eq(vcpu_get_state(cpu, &b), 0);
    cr_assert_eq(b.regs.rax, 7);
    cr_assert_eq(b.msrs.lstar, a.msrs.lstar);
    cr_assert_eq(b.fpu.xmm[3][5], 0x77);
    cr_assert_eq(memcmp(&a.sregs, &b.sregs, sizeof a.sregs), 0);
    expect_io(0x3f8, true, CODE + 8);
    struct vmm_regs r;
    vcpu_get_regs(cpu, &r);
    cr_assert_eq(r.rax, 7, "the state set is the state run");
}

/* SSE state set on a vCPU that never used SSE is the state it runs with
 * (at CPL3, where SSE runs natively under kvm-pvm too): XMM2 reaches RAX,
 * and STMXCSR stores the MXCSR that was set. */
Test(kvm, sse_state_set_is_the_state_run)
{
    static const uint8_t c[] = {
        0x66, 0x48, 0x0f, 0x7e, 0xd0,                   /* movq rax, xmm2 */
        0x0f, 0xae, 0x1c, 0x25, 0x00, 0x02, 0x10, 0x00, /* stmxcsr [CODE+0x200] */
        0xee, 0xeb, 0xfe,                               /* out dx, al */
    };
    start(c, sizeof c, 3);
    struct vmm_cpu_state a;
    cr_assert_eq(vcpu_get_state(cpu, &a), 0);
    uint64_t x = 0x1122334455667788ull;
    memcpy(a.fpu.xmm[2], &x, sizeof x);
    a.fpu.mxcsr = 0x7f80; /* round toward zero, all exceptions masked */
    cr_assert_eq(vcpu_set_state(cpu, &a), 0);
    struct vmm_cpu_state b;
    cr_assert_eq(vcpu_get_state(cpu, &b), 0);
    cr_assert_eq(b.fpu.mxcsr, 0x7f80);
    expect_io(0x3f8, true, CODE + 13);
    struct vmm_regs r;
    vcpu_get_regs(cpu, &r);
    cr_assert_eq(r.rax, x, "xmm2 ran as 0x%llx", (unsigned long long)r.rax);
    uint32_t m;
    memcpy(&m, vmm_ram(vm) + CODE + 0x200, sizeof m);
    cr_assert_eq(m, 0x7f80, "mxcsr ran as 0x%x", m);
}

Test(kvm, kick_and_set_state_at_io_exit)
{
    static const uint8_t c[] = { 0xec, 0xeb, 0xfe }; /* in al,dx; jmp $ */
    start(c, sizeof c, 0);
    struct vcpu_exit e;
    expect_io(0x3f8, false, CODE);
    vcpu_kick(cpu);
    cr_assert_eq(vcpu_run(cpu, NULL, &e), 0);
    cr_assert_eq(e.reason, VCPU_EXIT_KICK, "kick stops at once");
    struct vmm_regs r;
    vcpu_get_regs(cpu, &r);
    cr_assert_eq(r.rip, CODE + 1, "the pending IN completed");
    /* at a fresh IN exit, set_state wins over the pending completion */
    start(c, sizeof c, 0);
    expect_io(0x3f8, false, CODE);
    struct vmm_cpu_state st;
    vcpu_get_state(cpu, &st);
    st.regs.rax = 0x1111;
    cr_assert_eq(vcpu_set_state(cpu, &st), 0);
    vcpu_get_regs(cpu, &r);
    cr_assert_eq(r.rip, CODE);
    cr_assert_eq(r.rax, 0x1111);
    expect_io(0x3f8, false, CODE); /* executes the IN again */
}

Test(kvm, dirty_log_sees_guest_writes)
{
    /* mov [rbx],al with rbx = 0x234567; out dx,al; jmp $ */
    static const uint8_t c[] = { 0x88, 0x03, 0xee, 0xeb, 0xfe };
    start(c, sizeof c, 0);
    if (!(vcpu_caps(cpu) & VCPU_CAP_DIRTY_LOG))
        cr_skip_test("no dirty log on this host");
    uint64_t pages = vmm_ram_size(vm) / 4096;
    uint64_t *bm = calloc((pages + 63) / 64, 8);
    cr_assert_eq(vcpu_dirty_log(cpu, bm), 0, "first call starts logging");
    struct vmm_regs r;
    vcpu_get_regs(cpu, &r);
    r.rbx = 0x234567;
    vcpu_set_regs(cpu, &r);
    expect_io(0x3f8, true, CODE + 2);
    memset(bm, 0, (pages + 63) / 64 * 8);
    cr_assert_eq(vcpu_dirty_log(cpu, bm), 0);
    cr_assert(bm[0x234 / 64] & (1ull << (0x234 % 64)), "written page dirty");
    cr_assert_eq(bm[0x300 / 64] & (1ull << (0x300 % 64)), 0, "untouched clean");
    memset(bm, 0xff, (pages + 63) / 64 * 8);
    cr_assert_eq(vcpu_dirty_log(cpu, bm), 0);
    cr_assert_eq(bm[0x234 / 64] & (1ull << (0x234 % 64)), 0,
                 "cleared by the previous call");
    free(bm);
}

Test(kvm, single_step_and_breakpoint_at_cpl0)
{
    static const uint8_t c[] = { 0x90, 0x90, 0x90, 0xee, 0xeb, 0xfe };
    start(c, sizeof c, 0);
    if (!(vcpu_caps(cpu) & VCPU_CAP_STEP))
        cr_skip_test("no single-step on this host");
    struct vcpu_run_opts step = { .single_step = true };
    struct vcpu_exit e;
    struct vmm_regs r;
    for (unsigned i = 1; i <= 2; i++) {
        cr_assert_eq(vcpu_run(cpu, &step, &e), 0);
        cr_assert_eq(e.reason, VCPU_EXIT_STEP, "exit %d", e.reason);
        vcpu_get_regs(cpu, &r);
        cr_assert_eq(r.rip, CODE + i);
    }
    if (!(vcpu_caps(cpu) & VCPU_CAP_BREAK))
        return;
    uint64_t bp = CODE + 3;
    cr_assert_eq(vcpu_set_breakpoints(cpu, &bp, 1), 0);
    cr_assert_eq(vcpu_run(cpu, NULL, &e), 0);
    cr_assert_eq(e.reason, VCPU_EXIT_BREAKPOINT, "exit %d", e.reason);
    vcpu_get_regs(cpu, &r);
    cr_assert_eq(r.rip, CODE + 3);
    cr_assert_eq(vcpu_set_breakpoints(cpu, NULL, 0), 0);
    expect_io(0x3f8, true, CODE + 3);
}

/* A single step over an instruction KVM cannot emulate at CPL0 under
 * kvm-pvm (SSE: the Unicorn fallback completes it) is one instruction,
 * as it is where the CPU runs it natively. */
Test(kvm, single_step_over_a_fallback_instruction)
{
    static const uint8_t c[] = {
        0x66, 0x48, 0x0f, 0x6e, 0xc0, /* movq xmm0, rax */
        0x90,                         /* nop */
        0xee, 0xeb, 0xfe,             /* out dx, al; jmp $ */
    };
    start(c, sizeof c, 0);
    if (!(vcpu_caps(cpu) & VCPU_CAP_STEP))
        cr_skip_test("no single-step on this host");
    struct vmm_regs r;
    vcpu_get_regs(cpu, &r);
    r.rax = 0x1234;
    vcpu_set_regs(cpu, &r);
    struct vcpu_run_opts step = { .single_step = true };
    struct vcpu_exit e;
    cr_assert_eq(vcpu_run(cpu, &step, &e), 0);
    cr_assert_eq(e.reason, VCPU_EXIT_STEP, "exit %d: %s", e.reason, e.detail);
    vcpu_get_regs(cpu, &r);
    cr_assert_eq(r.rip, CODE + 5, "one step ran to 0x%llx",
                 (unsigned long long)r.rip);
    struct vmm_cpu_state st;
    vcpu_get_state(cpu, &st);
    uint64_t x;
    memcpy(&x, st.fpu.xmm[0], sizeof x);
    cr_assert_eq(x, 0x1234, "the SSE instruction ran");
    cr_assert_eq(vcpu_run(cpu, &step, &e), 0);
    cr_assert_eq(e.reason, VCPU_EXIT_STEP, "exit %d", e.reason);
    vcpu_get_regs(cpu, &r);
    cr_assert_eq(r.rip, CODE + 6);
    expect_io(0x3f8, true, CODE + 6);
}

/* The breakpoint caps are the probe's per-CPL findings (not "guest debug
 * works", which single-step alone satisfies), and they hold: at CPL3 a
 * breakpoint fires exactly when VCPU_CAP_BREAK_CPL3 says so (kvm-pvm:
 * never; the nops run on to the port write). */
Test(kvm, breakpoint_caps_follow_the_probe_per_cpl)
{
    static const uint8_t c[] = { 0x90, 0x90, 0x90, 0xee, 0xeb, 0xfe };
    start(c, sizeof c, 3);
    const struct vmm_host_caps *h = vmm_host_probe();
    unsigned caps = vcpu_caps(cpu);
    cr_assert_eq(!!(caps & VCPU_CAP_BREAK), h->hw_break_cpl0);
    cr_assert_eq(!!(caps & VCPU_CAP_BREAK_CPL3), h->hw_break_cpl3);
    uint64_t bp = CODE + 1;
    cr_assert_eq(vcpu_set_breakpoints(cpu, &bp, 1), 0);
    struct vcpu_exit e;
    cr_assert_eq(vcpu_run(cpu, NULL, &e), 0);
    struct vmm_regs r;
    vcpu_get_regs(cpu, &r);
    if (caps & VCPU_CAP_BREAK_CPL3) {
        cr_assert_eq(e.reason, VCPU_EXIT_BREAKPOINT, "exit %d", e.reason);
        cr_assert_eq(r.rip, CODE + 1);
    } else {
        cr_assert_eq(e.reason, VCPU_EXIT_IO, "exit %d", e.reason);
        cr_assert_eq(r.rip, CODE + 3, "ran past the breakpoint");
    }
    cr_assert_eq(vcpu_set_breakpoints(cpu, NULL, 0), 0);
}
