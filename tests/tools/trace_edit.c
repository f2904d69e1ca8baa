/*
 * trace_edit.c — look into a recorded trace and alter one event, for the
 * replayer's tests (a divergence must be reported at the altered event).
 *
 *   trace_edit dump TRACE [FIRST [N]]
 *       Prints events FIRST.. (index, icount if indexed, kind, aux, addr,
 *       size, value, rip) and every snapshot (id, event index, icount,
 *       reason, pages).
 *   trace_edit set TRACE EVENT FIELD VALUE
 *       Rewrites event EVENT with FIELD (value, addr, aux, or a register
 *       name: rax..r15, rip, rflags) set to VALUE, in place: run it on a
 *       copy.  The event's chunk is re-encoded and sealed as the writer
 *       would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

static const char *const regs[STORE_NREGS] = {
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8",
    "r9",  "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
};

static int fail(struct store *st, int rc, const char *what)
{
    fprintf(stderr, "trace_edit: %s: %s: %s\n", what, store_strerror(rc),
            store_error_detail(st));
    return 1;
}

static int dump(struct store *st, uint64_t first, uint64_t n)
{
    uint64_t count = store_event_count(st);
    for (uint64_t i = first; i < count && i < first + n; i++) {
        struct store_event e;
        size_t got;
        int rc = store_events_read(st, i, &e, 1, &got);
        if (rc || got != 1)
            return fail(st, rc, "reading events");
        uint64_t ic = UINT64_MAX;
        store_index_get(st, i, &ic);
        printf("event %llu icount %lld kind %u aux %u addr %#llx size %u "
               "value %#llx rip %#llx\n",
               (unsigned long long)i, ic == UINT64_MAX ? -1LL : (long long)ic,
               e.kind, e.aux, (unsigned long long)e.addr, e.size,
               (unsigned long long)e.value, (unsigned long long)e.regs[16]);
    }
    for (uint32_t k = 0; k < store_snapshot_count(st); k++) {
        struct store_snapshot_info si;
        int rc = store_snapshot_get(st, k, &si, NULL, NULL, NULL, NULL);
        if (rc)
            return fail(st, rc, "reading snapshots");
        printf("snapshot %u event %llu icount %lld reason %u pages %u\n", k,
               (unsigned long long)si.event_index,
               si.icount == UINT64_MAX ? -1LL : (long long)si.icount,
               si.reason, si.npages);
    }
    return 0;
}

static int set_field(struct store_event *e, const char *field, uint64_t v)
{
    if (!strcmp(field, "value"))
        e->value = v;
    else if (!strcmp(field, "addr"))
        e->addr = v;
    else if (!strcmp(field, "aux"))
        e->aux = (uint32_t)v;
    else {
        for (int i = 0; i < STORE_NREGS; i++)
            if (!strcmp(field, regs[i])) {
                e->regs[i] = v;
                return 0;
            }
        return -1;
    }
    return 0;
}

static int set(struct store *st, uint64_t ev, const char *field, uint64_t v)
{
    uint64_t first = ev - ev % STORE_CHUNK_EVENTS;
    struct store_event *chunk = calloc(STORE_CHUNK_EVENTS, sizeof *chunk);
    size_t n = 0;
    int rc = store_events_read(st, first, chunk, STORE_CHUNK_EVENTS, &n);
    if (rc || ev >= first + n) {
        free(chunk);
        return rc ? fail(st, rc, "reading events")
                  : (fprintf(stderr, "trace_edit: no event %llu\n",
                             (unsigned long long)ev), 1);
    }
    if (set_field(&chunk[ev - first], field, v)) {
        free(chunk);
        fprintf(stderr, "trace_edit: unknown field '%s'\n", field);
        return 2;
    }
    struct buf raw = {0};
    uint8_t key[8], *val = NULL;
    size_t vlen = 0;
    be64_put(key, first);
    rc = chunk_encode(chunk, n, &raw);
    if (!rc)
        rc = val_seal(st, DB_EVENTS, key, 8, VT_CHUNK, (uint32_t)n, raw.p,
                      raw.len, 3, &val, &vlen);
    if (!rc)
        rc = store__raw_put(st, DB_EVENTS, key, 8, val, vlen);
    free(val);
    buf_free(&raw);
    free(chunk);
    return rc ? fail(st, rc, "rewriting the chunk") : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "dump") && strcmp(argv[1], "set")) ||
        (!strcmp(argv[1], "set") && argc != 6)) {
        fprintf(stderr, "usage: trace_edit dump TRACE [FIRST [N]] | "
                        "set TRACE EVENT FIELD VALUE\n");
        return 2;
    }
    bool write = !strcmp(argv[1], "set");
    struct store *st;
    int rc = store_open(argv[2], write, NULL, &st);
    if (rc)
        return fail(NULL, rc, argv[2]);
    if (write)
        rc = set(st, strtoull(argv[3], NULL, 0), argv[4],
                 strtoull(argv[5], NULL, 0));
    else
        rc = dump(st, argc > 3 ? strtoull(argv[3], NULL, 0) : 0,
                  argc > 4 ? strtoull(argv[4], NULL, 0) : UINT64_MAX);
    store_close(st);
    return rc;
}
