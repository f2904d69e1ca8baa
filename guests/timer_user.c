/*
 * timer_user.c — the ring-3 half of the timer guest, compiled with normal
 * code generation: it computes with SSE while IRQ0 interrupts it, which
 * only works if the kernel (and the VMM) leave the vector registers alone.
 */
#include "timer.h"
#include "user.h"

/* sum 1/k^2 for k = 1..n, in double precision. */
static double basel(uint64_t n)
{
    double s = 0.0;

    for (uint64_t k = 1; k <= n; k++)
        s += 1.0 / ((double)k * (double)k);
    return s;
}

long timer_ring3_task(void *arg)
{
    const struct timer_job *job = arg;
    uint64_t start = user_ticks_now(), spins = 0;
    double a, b;

    /* The tick counter moves only because IRQ0 interrupts this loop. */
    while (user_ticks_now() - start < job->ticks)
        spins++;
    user_printf("timer: ring 3: %lu ticks while computing, loop ran: %s\n",
                job->ticks, spins ? "yes" : "no");
    a = basel(job->sse_terms);
    b = basel(job->sse_terms);
    user_printf("timer: sse: sum 1/k^2 for k<=%lu = %lu.%012lu "
                "(same twice: %s)\n",
                job->sse_terms, (uint64_t)a,
                (uint64_t)((a - (double)(uint64_t)a) * 1e12),
                a == b ? "yes" : "no");
    return spins && a == b ? 0 : 1;
}
