/*
 * replay_target.c — dbg_replay_ops: the stub's target ops over the real
 * replayer (replayer.h), one call each.  Kept in its own file so that
 * programs which never use it (the unit tests, the fake stub) do not pull
 * the replayer in from the static library.
 */
#include "debugger/debugger.h"

static uint64_t r_icount(void *t)
{
    return replay_icount(t);
}
static uint64_t r_end(void *t)
{
    return replay_end(t);
}

static int r_get_state(void *t, struct vmm_cpu_state *s)
{
    return replay_get_state(t, s);
}

static int r_set_state(void *t, const struct vmm_cpu_state *s)
{
    return replay_set_state(t, s);
}

static int r_read_mem(void *t, uint64_t gva, void *buf, size_t len,
                      size_t *done)
{
    return replay_read_mem(t, gva, buf, len, done);
}

static int r_write_mem(void *t, uint64_t gva, const void *buf, size_t len,
                       size_t *done)
{
    return replay_write_mem(t, gva, buf, len, done);
}

static int r_goto(void *t, uint64_t icount)
{
    return replay_goto(t, icount);
}

static int r_step(void *t, int64_t n, bool honour_breaks,
                  struct replay_stop *st)
{
    return replay_step(t, n, honour_breaks, st);
}

static int r_cont(void *t, bool backward, struct replay_stop *st)
{
    return replay_continue(t, backward, st);
}

static int r_break_add(void *t, uint64_t a)
{
    return replay_break_add(t, a);
}

static int r_break_remove(void *t, uint64_t a)
{
    return replay_break_remove(t, a);
}

static int r_watch_add(void *t, uint64_t a, uint32_t len,
                       enum vcpu_watch_kind k)
{
    return replay_watch_add(t, a, len, k);
}

static int r_watch_remove(void *t, uint64_t a, uint32_t len,
                          enum vcpu_watch_kind k)
{
    return replay_watch_remove(t, a, len, k);
}

static int r_events(void *t, uint64_t first, struct replay_event *ev, size_t n,
                    size_t *got)
{
    return replay_events(t, first, ev, n, got);
}

static uint64_t r_event_count(void *t)
{
    return replay_event_count(t);
}
static uint64_t r_next_event(void *t)
{
    return replay_next_event(t);
}

static int r_snapshots(void *t, uint32_t first, struct replay_snapshot *s,
                       size_t n, size_t *got)
{
    return replay_snapshots(t, first, s, n, got);
}

static uint32_t r_snapshot_count(void *t)
{
    return replay_snapshot_count(t);
}
static void r_interrupt(void *t)
{
    replay_interrupt(t);
}
static const char *r_error_detail(void *t)
{
    return replay_error_detail(t);
}
static const char *r_engine(void *t)
{
    return replay_engine(t);
}

const struct dbg_target_ops dbg_replay_ops = {
    .icount = r_icount,
    .end = r_end,
    .get_state = r_get_state,
    .set_state = r_set_state,
    .read_mem = r_read_mem,
    .write_mem = r_write_mem,
    .goto_icount = r_goto,
    .step = r_step,
    .cont = r_cont,
    .break_add = r_break_add,
    .break_remove = r_break_remove,
    .watch_add = r_watch_add,
    .watch_remove = r_watch_remove,
    .events = r_events,
    .event_count = r_event_count,
    .next_event = r_next_event,
    .snapshots = r_snapshots,
    .snapshot_count = r_snapshot_count,
    .interrupt = r_interrupt,
    .strerror = replay_strerror,
    .error_detail = r_error_detail,
    .engine = r_engine,
};
