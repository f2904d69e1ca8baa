/*
 * monitor.c — `monitor` commands (qRcmd): where we are in the recording,
 * jumping to an icount, listing events and snapshots.  Output is plain
 * text; gdbstub.c carries it to gdb.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "debugger/debugger_int.h"
#include "storage/store.h"

#define LIST_MAX 200    /* longest listing one command prints */
#define LIST_DEFAULT 20 /* events shown by a bare `info events` */

static const char help_text[] =
    "ttvm monitor commands:\n"
    "  monitor when                  current icount, end of the recording,\n"
    "                                and the next event at or after it\n"
    "  monitor goto N                go to icount N (then run\n"
    "                                `maint flush register-cache` so gdb\n"
    "                                rereads the registers)\n"
    "  monitor info events [A[-B]]   events A..B (default: around here)\n"
    "  monitor info snapshots        snapshots and their icounts\n"
    "  monitor help                  this text\n"
    "Register and memory writes change only the current replay state; they\n"
    "are discarded when you move in time (step, continue, goto).\n"
    "At the end of the recording gdb says \"No more reverse-execution\n"
    "history.\"; reverse commands still work there, and continuing again\n"
    "past a guest exit reports the exit and ends the session.\n";

static const char *kind_name(uint32_t kind)
{
    static const char *const names[STORE_EV_KIND_MAX] = {
        [STORE_EV_PIO_IN] = "pio-in",
        [STORE_EV_PIO_OUT] = "pio-out",
        [STORE_EV_MMIO_READ] = "mmio-read",
        [STORE_EV_MMIO_WRITE] = "mmio-write",
        [STORE_EV_IRQ] = "irq",
        [STORE_EV_HLT] = "hlt",
        [STORE_EV_KICK] = "kick",
        [STORE_EV_WINDOW] = "irq-window",
        [STORE_EV_EMU] = "emulated",
        [STORE_EV_EXIT] = "exit",
    };
    return kind < STORE_EV_KIND_MAX && names[kind] ? names[kind] : "?";
}

static void put_event(struct dbg_buf *out, const struct replay_event *e)
{
    dbg_buf_printf(out, "#%-6" PRIu64 " icount %-12" PRIu64 " %-10s", e->index,
                   e->icount, kind_name(e->kind));
    switch (e->kind) {
    case STORE_EV_PIO_IN:
    case STORE_EV_PIO_OUT:
    case STORE_EV_MMIO_READ:
    case STORE_EV_MMIO_WRITE:
        dbg_buf_printf(out, " addr %#" PRIx64 " value %#" PRIx64 " size %u",
                       e->addr, e->value, e->size);
        break;
    case STORE_EV_IRQ:
        dbg_buf_printf(out, " vector %u", e->aux);
        break;
    case STORE_EV_KICK:
        dbg_buf_printf(out, " snapshot %u", e->aux);
        break;
    case STORE_EV_EXIT:
        dbg_buf_printf(out, " status %" PRId64, (int64_t)e->value);
        break;
    default:
        break;
    }
    dbg_buf_putc(out, '\n');
}

static void err_line(struct dbg_stub *s, struct dbg_buf *out, const char *what,
                     int rc)
{
    const char *d = s->ops->error_detail ? s->ops->error_detail(s->t) : NULL;
    dbg_buf_printf(out, "error: %s: %s%s%s\n", what, dbg_stub_strerror(s, rc),
                   d && *d ? ": " : "", d ? d : "");
}

static void cmd_when(struct dbg_stub *s, struct dbg_buf *out)
{
    uint64_t ic = s->ops->icount(s->t), end = s->ops->end(s->t);
    dbg_buf_printf(out, "icount %" PRIu64 " of %" PRIu64 "%s", ic, end,
                   ic == end ? " (end of the recording)" : "");
    if (s->ops->engine)
        dbg_buf_printf(out, ", engine %s", s->ops->engine(s->t));
    dbg_buf_putc(out, '\n');

    uint64_t next = s->ops->next_event(s->t);
    struct replay_event e;
    size_t got = 0;
    if (next < s->ops->event_count(s->t) &&
        s->ops->events(s->t, next, &e, 1, &got) == 0 && got == 1) {
        dbg_buf_puts(out, e.icount == ic ? "event here: " : "next event: ");
        put_event(out, &e);
    } else {
        dbg_buf_puts(out, "no event at or after this position\n");
    }
}

static bool parse_u64(const char *str, const char **end, uint64_t *v)
{
    char *e;
    if (*str < '0' || *str > '9')
        return false;
    errno = 0;
    unsigned long long x = strtoull(str, &e, 0);
    if (errno)
        return false;
    *v = x;
    *end = e;
    return true;
}

static void cmd_goto(struct dbg_stub *s, const char *arg, struct dbg_buf *out)
{
    uint64_t n;
    const char *e;
    if (!parse_u64(arg, &e, &n) || *e) {
        dbg_buf_puts(out, "usage: monitor goto ICOUNT\n");
        return;
    }
    int rc = atomic_load(&s->interrupted) ? REPLAY_E_INTERRUPTED
                                          : s->ops->goto_icount(s->t, n);
    if (rc < 0)
        return err_line(s, out, "goto", rc);
    struct vmm_cpu_state st = {0};
    s->ops->get_state(s->t, &st);
    dbg_buf_printf(out,
                   "now at icount %" PRIu64 ", rip %#" PRIx64 "\n"
                   "(run `maint flush register-cache` so gdb rereads the "
                   "registers)\n",
                   s->ops->icount(s->t), st.regs.rip);
}

/* "", "A", "A-B" or "A B" (inclusive).  Bare: a few events before the
 * current position and some after. */
static bool parse_range(struct dbg_stub *s, const char *arg, uint64_t *a,
                        uint64_t *b)
{
    const char *e;
    if (!*arg) {
        uint64_t next = s->ops->next_event(s->t);
        *a = next > LIST_DEFAULT / 4 ? next - LIST_DEFAULT / 4 : 0;
        *b = *a + LIST_DEFAULT - 1;
        return true;
    }
    if (!parse_u64(arg, &e, a))
        return false;
    if (!*e) {
        *b = *a + LIST_DEFAULT - 1;
        return true;
    }
    if (*e != '-' && *e != ' ')
        return false;
    e++;
    while (*e == ' ')
        e++;
    return parse_u64(e, &e, b) && !*e && *b >= *a;
}

static void cmd_events(struct dbg_stub *s, const char *arg, struct dbg_buf *out)
{
    uint64_t a, b, count = s->ops->event_count(s->t);
    if (!parse_range(s, arg, &a, &b)) {
        dbg_buf_puts(out, "usage: monitor info events [FIRST[-LAST]]\n");
        return;
    }
    if (b >= count)
        b = count ? count - 1 : 0;
    if (a >= count) {
        dbg_buf_printf(out, "no events there (the recording has %" PRIu64 ")\n",
                       count);
        return;
    }
    uint64_t want = b - a + 1, shown = want > LIST_MAX ? LIST_MAX : want;
    struct replay_event ev[16];
    for (uint64_t i = a; i < a + shown;) {
        size_t n = a + shown - i < 16 ? (size_t)(a + shown - i) : 16, got = 0;
        int rc = s->ops->events(s->t, i, ev, n, &got);
        if (rc < 0)
            return err_line(s, out, "reading events", rc);
        if (got == 0)
            break;
        for (size_t k = 0; k < got; k++)
            put_event(out, &ev[k]);
        i += got;
    }
    if (shown < want)
        dbg_buf_printf(out, "... %" PRIu64 " more (ask for a range)\n",
                       want - shown);
}

static void cmd_snapshots(struct dbg_stub *s, struct dbg_buf *out)
{
    static const char *const reasons[] = {"boot", "periodic", "kick"};
    uint32_t count = s->ops->snapshot_count(s->t);
    struct replay_snapshot snap[16];
    uint32_t shown = count > LIST_MAX ? LIST_MAX : count;
    dbg_buf_printf(out, "%u snapshots\n", count);
    for (uint32_t i = 0; i < shown;) {
        size_t n = shown - i < 16 ? shown - i : 16, got = 0;
        int rc = s->ops->snapshots(s->t, i, snap, n, &got);
        if (rc < 0)
            return err_line(s, out, "reading snapshots", rc);
        if (got == 0)
            break;
        for (size_t k = 0; k < got; k++)
            dbg_buf_printf(out,
                           "snapshot %-5u icount %-12" PRIu64
                           " event %-8" PRIu64 " pages %-8" PRIu64 " %s\n",
                           snap[k].id, snap[k].icount, snap[k].event_index,
                           snap[k].npages,
                           snap[k].reason < 3 ? reasons[snap[k].reason] : "?");
        i += (uint32_t)got;
    }
    if (shown < count)
        dbg_buf_printf(out, "... %u more\n", count - shown);
}

/* Skips the word w (and the spaces after it) at *p; false if absent. */
static bool word(const char **p, const char *w)
{
    size_t n = strlen(w);
    if (strncmp(*p, w, n) || ((*p)[n] && (*p)[n] != ' '))
        return false;
    *p += n;
    while (**p == ' ')
        (*p)++;
    return true;
}

void dbg_monitor(struct dbg_stub *s, const char *cmd, struct dbg_buf *out)
{
    const char *p = cmd;
    while (*p == ' ')
        p++;
    if (!*p || word(&p, "help"))
        dbg_buf_puts(out, help_text);
    else if (word(&p, "when"))
        cmd_when(s, out);
    else if (word(&p, "goto"))
        cmd_goto(s, p, out);
    else if (word(&p, "info")) {
        if (word(&p, "events"))
            cmd_events(s, p, out);
        else if (word(&p, "snapshots"))
            cmd_snapshots(s, out);
        else
            dbg_buf_puts(out, "usage: monitor info events|snapshots\n");
    } else
        dbg_buf_printf(
            out, "unknown monitor command '%s' (see `monitor help`)\n", cmd);
}
