/*
 * syscalls — ring-3 tasks using the SDK's system calls: write, getpid,
 * ticks, sleep, yield, exit, and the errors for a bad number and a bad
 * pointer.
 *
 * Parameters: sleep=N ticks to sleep (default 5); spin=N more getpid()
 * calls in task 2, back to back (default 0: a stream of ring-3 software
 * interrupts, for the recorder's kicks to land among).
 * Output (fixed for given parameters):
 *   syscalls: task 1 starting
 *   syscalls: [pid 1] getpid() = 1
 *   syscalls: [pid 1] hello through write()
 *   syscalls: [pid 1] write() = 40
 *   syscalls: [pid 1] sleep(5) = 0, ticks advanced by at least 5: yes
 *   syscalls: [pid 1] yield() x3 = 0 0 0, ticks advanced: yes
 *   syscalls: [pid 1] syscall 99 = -38 (ENOSYS)
 *   syscalls: [pid 1] write(unmapped buffer) = -14 (EFAULT)
 *   syscalls: [pid 1] exit(42)
 *   syscalls: task 1 exited with 42
 *   syscalls: [pid 2] getpid() = 2, returning 7
 *   syscalls: task 2 exited with 7
 *   syscalls: ok
 * Exit value 0 (status 1), 1 when a result is not the expected one.
 */
#include "sdk.h"
#include "user.h"

#define BAD_POINTER 0xdead0000000ull

static long task_one(void *arg)
{
    uint64_t sleep = *(const uint64_t *)arg, t0, t1, t2;
    static const char msg[] = "syscalls: [pid 1] hello through write()\n";
    long pid = user_getpid(), w, s, y[3], bad, efault;
    bool ok = true;

    user_printf("syscalls: [pid %ld] getpid() = %ld\n", pid, pid);
    w = user_write(msg, sizeof(msg) - 1);
    user_printf("syscalls: [pid %ld] write() = %ld\n", pid, w);
    t0 = user_ticks();
    s = user_sleep(sleep);
    t1 = user_ticks();
    user_printf("syscalls: [pid %ld] sleep(%lu) = %ld, ticks advanced by at "
                "least %lu: %s\n",
                pid, sleep, s, sleep, t1 - t0 >= sleep ? "yes" : "no");
    for (int i = 0; i < 3; i++)
        y[i] = user_yield();
    t2 = user_ticks();
    user_printf("syscalls: [pid %ld] yield() x3 = %ld %ld %ld, ticks "
                "advanced: %s\n",
                pid, y[0], y[1], y[2], t2 > t1 ? "yes" : "no");
    bad = user_syscall(99, 0, 0, 0);
    user_printf("syscalls: [pid %ld] syscall 99 = %ld (ENOSYS)\n", pid, bad);
    efault = user_write((const void *)BAD_POINTER, 8);
    user_printf("syscalls: [pid %ld] write(unmapped buffer) = %ld (EFAULT)\n",
                pid, efault);
    ok = pid == 1 && w == (long)sizeof(msg) - 1 && s == 0 && t1 - t0 >= sleep &&
         !(y[0] | y[1] | y[2]) && t2 > t1 && bad == -SDK_ENOSYS &&
         efault == -SDK_EFAULT;
    user_printf("syscalls: [pid %ld] exit(%d)\n", pid, ok ? 42 : 1);
    user_exit(ok ? 42 : 1);
}

static long task_two(void *arg)
{
    uint64_t spin = *(const uint64_t *)arg;
    long pid = user_getpid();

    for (uint64_t i = 0; i < spin; i++)
        if (user_getpid() != pid)
            return 1;
    user_printf("syscalls: [pid %ld] getpid() = %ld, returning 7\n", pid, pid);
    return pid == 2 ? 7 : 1;
}

int guest_main(void)
{
    uint64_t sleep = sdk_arg_u64("sleep", 5);
    uint64_t spin = sdk_arg_u64("spin", 0);
    long a, b;

    sdk_printf("syscalls: task 1 starting\n");
    a = sdk_task_run(task_one, &sleep);
    sdk_printf("syscalls: task 1 exited with %ld\n", a);
    b = sdk_task_run(task_two, &spin);
    sdk_printf("syscalls: task 2 exited with %ld\n", b);
    sdk_printf("syscalls: %s\n", a == 42 && b == 7 ? "ok" : "FAILED");
    return a == 42 && b == 7 ? 0 : 1;
}
