/* timer.h — what timer.c (ring 0) and timer_user.c (ring 3) share. */
#ifndef GUEST_TIMER_H
#define GUEST_TIMER_H

#include <stdint.h>

struct timer_job {
    uint64_t ticks;     /* ticks to compute through */
    uint64_t sse_terms; /* terms of the floating-point series */
};

/* Ring 3; returns 0 when every check passed, else 1. */
long timer_ring3_task(void *job);

#endif /* GUEST_TIMER_H */
