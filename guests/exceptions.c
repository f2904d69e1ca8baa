/*
 * exceptions — a ring-3 task raises int3, #DE, #PF, #GP (twice: a
 * privileged instruction and a port outside its I/O bitmap) and #UD; the
 * kernel reports each and resumes the task at the fault site's fixup
 * (SDK_EXTABLE), which hands the vector back.  A second task then faults
 * without a fixup and is killed.
 *
 * Parameters: none.
 * Output: for each case a kernel line
 *   [kernel] task 1: #DE (vector 0) at rip=0x... err=0x0 -> resumed at fixup
 * then "exceptions: <what>: caught <name> (vector V)"; then
 *   exceptions: 6/6 caught
 *   [kernel] task 2: #PF (vector 14) at rip=0x... err=0x6 cr2=0x0 -> task
 *            killed                                       (one line)
 *   exceptions: task 2 killed by vector 14
 *   exceptions: ok
 * RIP values depend on the build, not the run.  Exit value 0 (status 1),
 * 1 when a case is not caught as expected.
 */
#include "sdk.h"
#include "user.h"

/* Defines long name(void), which runs insn with its faulting instruction
 * at label 1 and the fixup at label 2: returns the vector when the kernel
 * resumed at 2, else -1.  Operand %0 is RAX (the result); the optional
 * rest of the asm operands (": inputs : clobbers") follow. */
#define FAULT_SITE(name, insn, ...)                                            \
    static long name(void)                                                     \
    {                                                                          \
        long v;                                                                \
        __asm__ volatile(insn                                                  \
                         "\n\tmov $-1, %0\n2:\n\t" SDK_EXTABLE("1b", "2b")     \
                         : "=a"(v)__VA_ARGS__);                                \
        return v;                                                              \
    }

FAULT_SITE(raise_bp, "1: int3")
FAULT_SITE(raise_de, "xor %%edx, %%edx\n\tmov $1, %%eax\n1: divl %1",
           : "c"(0u)
           : "rdx")
/* Page 0 is not mapped (sdk_unmap_page0). */
FAULT_SITE(raise_pf, "1: movq (%1), %0", : "r"(0ul) : "memory")
FAULT_SITE(raise_gp_hlt, "1: hlt")
/* Port 0x80 is not in the task's I/O bitmap. */
FAULT_SITE(raise_gp_port, "1: inb $0x80, %%al")
FAULT_SITE(raise_ud, "1: ud2")

static const struct fault_case {
    const char *what, *name;
    long vector;
    long (*raise)(void);
} cases[] = {
    {"int3", "#BP", 3, raise_bp},
    {"divide by zero", "#DE", 0, raise_de},
    {"load from NULL", "#PF", 14, raise_pf},
    {"hlt in ring 3", "#GP", 13, raise_gp_hlt},
    {"inb from a port outside the I/O bitmap", "#GP", 13, raise_gp_port},
    {"ud2", "#UD", 6, raise_ud},
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static long fault_task(void *arg)
{
    unsigned caught = 0;

    (void)arg;
    for (unsigned i = 0; i < N_CASES; i++) {
        long v = cases[i].raise();

        if (v == cases[i].vector) {
            caught++;
            user_printf("exceptions: %s: caught %s (vector %ld)\n",
                        cases[i].what, cases[i].name, v);
        } else {
            user_printf("exceptions: %s: expected %s, got %ld\n", cases[i].what,
                        cases[i].name, v);
        }
    }
    user_printf("exceptions: %u/%u caught\n", caught, (unsigned)N_CASES);
    return caught == N_CASES ? 0 : 1;
}

/* Stores to NULL with no fixup: the kernel ends the task.  (In asm: a
 * NULL dereference in C is undefined, and gcc would emit ud2 instead.) */
static long doomed_task(void *arg)
{
    (void)arg;
    __asm__ volatile("movq $1, (%0)" : : "r"(0ul) : "memory");
    return 0;
}

int guest_main(void)
{
    long a = sdk_task_run(fault_task, NULL);
    long b = sdk_task_run(doomed_task, NULL);
    bool ok = a == 0 && b == (TASK_KILLED | 14);

    if (b & TASK_KILLED)
        sdk_printf("exceptions: task 2 killed by vector %ld\n",
                   b & ~TASK_KILLED);
    else
        sdk_printf("exceptions: task 2 returned %ld\n", b);
    sdk_printf("exceptions: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
