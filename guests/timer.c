/*
 * timer — IRQ0 from the PIT, taken while idling in HLT (ring 0) and while
 * a ring-3 task computes without making system calls.
 *
 * Parameters: hz=N (PIT rate, default 100), ticks=N (how many ticks each
 * phase waits for, default 20), sse=N (terms of the SSE series, default
 * 2000000).
 * Output (fixed for given parameters: each phase waits for an exact count,
 * and only pass/fail is printed about the counts that depend on timing):
 *   timer: hz=100 ticks=20
 *   timer: idle: 20 ticks in hlt, one wakeup per tick: yes
 *   timer: ring 3: 20 ticks while computing, loop ran: yes
 *   timer: sse: sum 1/k^2 for k<=2000000 = 1.644933566848 (same twice: yes)
 *   timer: ok
 * Exit value 0 (status 1), 1 when a check fails.
 */
#include "timer.h"

#include "sdk.h"

static uint64_t hlt_wakeups;

static bool idle_phase(uint64_t ticks)
{
    uint64_t end = sdk_ticks() + ticks;

    while (sdk_ticks() < end) {
        sdk_wait_for_interrupt();
        hlt_wakeups++;
    }
    /* Only IRQ0 is unmasked, so each wakeup is a tick. */
    sdk_printf("timer: idle: %lu ticks in hlt, one wakeup per tick: %s\n",
               ticks, hlt_wakeups == ticks ? "yes" : "no");
    return hlt_wakeups == ticks;
}

int guest_main(void)
{
    struct timer_job job = {
        .ticks = sdk_arg_u64("ticks", 20),
        .sse_terms = sdk_arg_u64("sse", 2000000),
    };
    unsigned hz = (unsigned)sdk_arg_u64("hz", 100);
    bool ok;

    sdk_printf("timer: hz=%u ticks=%lu\n", hz, job.ticks);
    sdk_timer_start(hz);
    ok = idle_phase(job.ticks);
    ok &= sdk_task_run(timer_ring3_task, &job) == 0;
    sdk_printf("timer: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
