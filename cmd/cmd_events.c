/*
 * cmd_events.c — `ttvm events TRACE`: the recorded I/O log (port and MMIO
 * accesses, interrupts, halts, kicks, the exit), as text or JSON lines, for
 * people and scripts.  Reads the trace only; positions are shown when the
 * trace is indexed.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"

#define BATCH 1024

static const char *const kind_name[STORE_EV_KIND_MAX] = {
    [STORE_EV_PIO_IN] = "in",         [STORE_EV_PIO_OUT] = "out",
    [STORE_EV_MMIO_READ] = "mmio_read", [STORE_EV_MMIO_WRITE] = "mmio_write",
    [STORE_EV_IRQ] = "irq",           [STORE_EV_HLT] = "hlt",
    [STORE_EV_KICK] = "kick",         [STORE_EV_WINDOW] = "irq_window",
    [STORE_EV_EMU] = "emulated",      [STORE_EV_EXIT] = "exit",
};

struct events_args {
    const char *trace;
    uint64_t from, count;
    unsigned kinds; /* bitmask of kinds to show; 0 = all */
    long port;      /* only this port/address; -1 = all */
    bool json;
    const uint8_t *key;
    uint8_t keybuf[STORE_KEY_BYTES];
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: ttvm events TRACE [--from N] [--count M] [--kind K,...]\n"
        "                   [--port P] [--json] [--key-file FILE]\n"
        "\n"
        "Prints the recorded events: every port and MMIO read (with the value\n"
        "the guest got) and write, each interrupt with its vector, halts,\n"
        "kicks and interrupt windows (with their snapshot), and the exit; with\n"
        "the instruction position of each when the trace is indexed.\n"
        "\n"
        "  --from N        first event index (default 0)\n"
        "  --count M       at most M events (default: all)\n"
        "  --kind K,...    only these kinds: in, out, mmio_read, mmio_write,\n"
        "                  irq, hlt, kick, irq_window, exit\n"
        "  --port P        only accesses to port (or MMIO address) P\n"
        "  --json          one JSON object per line\n"
        "  --key-file FILE key of an encrypted trace\n");
}

static int parse_kinds(const char *s, unsigned *mask)
{
    char *copy = strdup(s), *save = NULL;
    if (!copy)
        return -ENOMEM;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t && !rc;
         t = strtok_r(NULL, ",", &save)) {
        int k;
        for (k = 1; k < STORE_EV_KIND_MAX; k++)
            if (kind_name[k] && !strcmp(t, kind_name[k]))
                break;
        if (k == STORE_EV_KIND_MAX)
            rc = -EINVAL;
        else
            *mask |= 1u << k;
    }
    free(copy);
    return rc;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 0);
    return errno || end == s || *end || *s == '-' ? -EINVAL : 0;
}

static int parse(int argc, char **argv, struct events_args *a)
{
    static const struct option opts[] = {
        { "from", required_argument, NULL, 'f' },
        { "count", required_argument, NULL, 'n' },
        { "kind", required_argument, NULL, 'k' },
        { "port", required_argument, NULL, 'p' },
        { "json", no_argument, NULL, 'j' },
        { "key-file", required_argument, NULL, 'K' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t v;
    int c;
    a->count = UINT64_MAX;
    a->port = -1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (parse_u64(optarg, &a->from))
                return cmd_usage_error("events", "bad --from", optarg);
            break;
        case 'n':
            if (parse_u64(optarg, &a->count))
                return cmd_usage_error("events", "bad --count", optarg);
            break;
        case 'k':
            if (parse_kinds(optarg, &a->kinds))
                return cmd_usage_error("events", "unknown event kind in",
                                       optarg);
            break;
        case 'p':
            if (parse_u64(optarg, &v) || v > (uint64_t)LONG_MAX)
                return cmd_usage_error("events", "bad --port", optarg);
            a->port = (long)v;
            break;
        case 'j': a->json = true; break;
        case 'K':
            if (cmd_read_key(optarg, a->keybuf))
                return TTVM_EXIT_USAGE;
            a->key = a->keybuf;
            break;
        case 'h': usage(stdout); return TTVM_EXIT_OK;
        default:
            return cmd_usage_error("events", "unknown or incomplete option",
                                   argv[optind - 1] ? argv[optind - 1] : "");
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return TTVM_EXIT_USAGE;
    }
    a->trace = argv[optind];
    return -1;
}

static bool wanted(const struct events_args *a, const struct store_event *e)
{
    if (a->kinds && !(a->kinds & (1u << e->kind)))
        return false;
    return a->port < 0 || (e->addr == (uint64_t)a->port &&
                           e->kind >= STORE_EV_PIO_IN &&
                           e->kind <= STORE_EV_MMIO_WRITE);
}

static bool is_access(unsigned kind)
{
    return kind >= STORE_EV_PIO_IN && kind <= STORE_EV_MMIO_WRITE;
}

static void print_event(const struct events_args *a, uint64_t idx,
                        const struct store_event *e, bool have_pos,
                        uint64_t pos)
{
    const char *name = e->kind < STORE_EV_KIND_MAX && kind_name[e->kind]
                           ? kind_name[e->kind] : "unknown";
    unsigned long long rip = (unsigned long long)e->regs[16];
    if (a->json) {
        printf("{\"index\": %llu, ", (unsigned long long)idx);
        if (have_pos)
            printf("\"icount\": %llu, ", (unsigned long long)pos);
        printf("\"kind\": \"%s\", \"rip\": %llu", name, rip);
        if (is_access(e->kind))
            printf(", \"addr\": %llu, \"size\": %u, \"value\": %llu",
                   (unsigned long long)e->addr, e->size,
                   (unsigned long long)e->value);
        else if (e->kind == STORE_EV_EXIT)
            printf(", \"stop\": %u, \"status\": %lld", e->aux,
                   (long long)(int64_t)e->value);
        else if (e->kind != STORE_EV_HLT)
            printf(", \"%s\": %u",
                   e->kind == STORE_EV_IRQ ? "vector" : "snapshot", e->aux);
        printf("}\n");
        return;
    }
    printf("%10llu ", (unsigned long long)idx);
    if (have_pos)
        printf("%14llu ", (unsigned long long)pos);
    printf("%-10s rip %#-10llx", name, rip);
    if (is_access(e->kind))
        printf(" %s %#llx/%u = %#llx",
               e->kind == STORE_EV_PIO_IN || e->kind == STORE_EV_PIO_OUT
                   ? "port" : "gpa",
               (unsigned long long)e->addr, e->size,
               (unsigned long long)e->value);
    else if (e->kind == STORE_EV_IRQ)
        printf(" vector %#x", e->aux);
    else if (e->kind == STORE_EV_KICK || e->kind == STORE_EV_WINDOW)
        printf(" snapshot %u", e->aux);
    else if (e->kind == STORE_EV_EXIT)
        printf(" stop kind %u, status %lld", e->aux,
               (long long)(int64_t)e->value);
    printf("\n");
}

static int list(struct store *st, const struct events_args *a)
{
    uint64_t end_icount, n = store_event_count(st);
    bool indexed = store_index_complete(st, &end_icount);
    struct store_event *buf = malloc(BATCH * sizeof *buf);
    if (!buf)
        return -ENOMEM;
    if (!a->json)
        printf("%10s %s%-10s\n", "event", indexed ? "      position " : "",
               "kind");
    uint64_t shown = 0;
    int rc = 0;
    for (uint64_t i = a->from; i < n && shown < a->count && !rc;) {
        size_t got = 0;
        rc = store_events_read(st, i, buf, BATCH, &got);
        if (!rc && !got)
            rc = STORE_E_CORRUPT;
        for (size_t k = 0; !rc && k < got && shown < a->count; k++) {
            uint64_t pos = 0;
            if (!wanted(a, &buf[k]))
                continue;
            bool have = indexed && !store_index_get(st, i + k, &pos);
            print_event(a, i + k, &buf[k], have, pos);
            shown++;
        }
        i += got;
    }
    free(buf);
    return rc;
}

int cmd_events(int argc, char **argv)
{
    struct events_args a = { 0 };
    int code = parse(argc, argv, &a);
    if (code >= 0)
        return code;
    struct store *st;
    int rc = store_open(a.trace, false, a.key, &st);
    if (rc) {
        cmd_trace_error("events", a.trace, rc, store_error_detail(NULL));
        return TTVM_EXIT_TRACE;
    }
    rc = list(st, &a);
    if (rc)
        cmd_trace_error("events", a.trace, rc, store_error_detail(st));
    store_close(st);
    return rc ? TTVM_EXIT_TRACE : TTVM_EXIT_OK;
}
