/*
 * kernel.c — the SDK kernel's core: start-up after boot.S, the trap
 * dispatcher (exceptions, IRQs, system calls) and ring-3 tasks.
 *
 * An exception in ring 3 is reported on the console and then resumed:
 * at the fixup of a matching .extable entry (RAX = vector), after the
 * int3 for #BP, or else the task is ended with TASK_KILLED | vector.  An
 * exception in ring 0 is a panic.
 */
#include "sdk_int.h"

#define USER_STACK_BYTES (64 * 1024)

static uint8_t user_stack[USER_STACK_BYTES] __attribute__((aligned(16)));
static uint64_t next_pid = 1, current_pid;

extern const struct sdk_extable __start_extable[], __stop_extable[];

static const char *const exc_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
    "#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
    "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

void sdk_kmain(uint64_t info, uint64_t magic, uint64_t path)
{
    const char *warning = sdk_boot_info_parse(info, magic, path);

    sdk_unmap_page0();
    sdk_cpu_init();
    sdk_pic_init();
    sdk_serial_init();
    if (*warning)
        sdk_printf("sdk: warning: %s\n", warning);
    sdk_exit((unsigned)guest_main());
}

static const struct sdk_extable *extable_find(uint64_t insn)
{
    for (const struct sdk_extable *e = __start_extable; e < __stop_extable; e++)
        if (e->insn == insn)
            return e;
    return NULL;
}

static void report_exception(const struct sdk_trap_frame *f, const char *who)
{
    sdk_printf("[kernel] %s: %s (vector %lu) at rip=%#lx err=%#lx", who,
               exc_names[f->vector], f->vector, f->rip, f->error);
    if (f->vector == 14)
        sdk_printf(" cr2=%#lx", sdk_read_cr2());
}

static void user_exception(struct sdk_trap_frame *f)
{
    /* int3 is a trap: RIP is already past the 1-byte instruction. */
    uint64_t insn = f->vector == 3 ? f->rip - 1 : f->rip;
    const struct sdk_extable *e = extable_find(insn);
    char who[32];

    sdk_snprintf(who, sizeof(who), "task %lu", current_pid);
    report_exception(f, who);
    if (e) {
        sdk_printf(" -> resumed at fixup\n");
        f->rip = e->fixup;
        f->rax = f->vector;
        return;
    }
    if (f->vector == 3) {
        sdk_printf(" -> resumed\n");
        return;
    }
    sdk_printf(" -> task killed\n");
    sdk_leave_user(TASK_KILLED | (long)f->vector);
}

static _Noreturn void kernel_exception(const struct sdk_trap_frame *f)
{
    report_exception(f, "ring 0");
    sdk_printf("\n  rax=%#lx rbx=%#lx rcx=%#lx rdx=%#lx\n"
               "  rsi=%#lx rdi=%#lx rbp=%#lx rsp=%#lx\n",
               f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi, f->rbp, f->rsp);
    sdk_panic("unexpected exception in the kernel");
}

static bool is_syscall(const struct sdk_trap_frame *f)
{
    return f->vector == 3 && (f->cs & 3) == 3 &&
           f->rip - 1 == (uint64_t)sdk_syscall_gate;
}

void sdk_trap(struct sdk_trap_frame *f)
{
    if (is_syscall(f)) {
        f->rax = (uint64_t)sdk_syscall_dispatch(f);
    } else if (f->vector >= IRQ_BASE && f->vector < IRQ_BASE + 16) {
        sdk_irq_dispatch((unsigned)(f->vector - IRQ_BASE));
    } else if (f->vector < 32 && (f->cs & 3) == 3) {
        user_exception(f);
    } else if (f->vector < 32) {
        kernel_exception(f);
    } else {
        sdk_panic("unexpected vector %lu", f->vector);
    }
}

uint64_t sdk_task_pid(void)
{
    return current_pid;
}

long sdk_task_run(long (*fn)(void *arg), void *arg)
{
    long code;

    current_pid = next_pid++;
    code = sdk_enter_user((uint64_t)sdk_user_task_start, arg, (void *)fn,
                          (uint64_t)(user_stack + sizeof(user_stack)));
    current_pid = 0;
    return code;
}
