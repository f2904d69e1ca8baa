/*
 * syscall.c — the system calls ring-3 tasks make (numbers in abi.h).
 * They run on the trap stack with interrupts off; the blocking ones wait
 * with sti; hlt, so interrupts nest on that stack meanwhile.
 */
#include "sdk_int.h"

/* Whether [p, p + len) is mapped RAM a task may pass to a system call. */
static bool user_range_ok(uint64_t p, uint64_t len)
{
    uint64_t top = sdk_mem_bytes();

    if (!top || top > SDK_MAPPED_BYTES)
        top = SDK_MAPPED_BYTES;
    return p >= 4096 && p < top && len <= top - p; /* page 0 is unmapped */
}

static long sys_write(uint64_t buf, uint64_t len)
{
    if (!user_range_ok(buf, len))
        return -SDK_EFAULT;
    sdk_write((const void *)(uintptr_t)buf, len);
    return (long)len;
}

static long sys_read(uint64_t buf, uint64_t len)
{
    if (!user_range_ok(buf, len))
        return -SDK_EFAULT;
    return (long)sdk_serial_read((void *)(uintptr_t)buf, len);
}

static long sys_yield(void)
{
    sdk_timer_start(SDK_TIMER_HZ); /* so that an interrupt will come */
    sdk_wait_for_interrupt();
    return 0;
}

long sdk_syscall_dispatch(struct sdk_trap_frame *f)
{
    switch (f->rax) {
    case SYS_WRITE:
        return sys_write(f->rdi, f->rsi);
    case SYS_READ:
        return sys_read(f->rdi, f->rsi);
    case SYS_GETPID:
        return (long)sdk_task_pid();
    case SYS_YIELD:
        return sys_yield();
    case SYS_SLEEP:
        sdk_sleep_ticks(f->rdi);
        return 0;
    case SYS_TICKS:
        return (long)sdk_ticks();
    case SYS_EXIT:
        sdk_leave_user((long)(f->rdi & 0xff));
    default:
        return -SDK_ENOSYS;
    }
}
