/*
 * cmd_info.c — `ttvm info TRACE [--json] [--snapshots]`: what a trace
 * holds, for people (text) and scripts (JSON), and where a trace whose
 * recorder died ends.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "storage/store.h"
#include "vmm/vmm.h"

struct info {
    char *guest, *cmdline, *argv, *host, *detail;
    char *engine; /* index.engine: the replayer's engine (absent: unicorn) */
    uint64_t mem, kind, status, wall_ns, end_icount;
    bool have_final, indexed;
    struct store_stats s;
    uint64_t snap_pages_max, snap_bytes, kicks_snaps;
    struct store_snapshot_info *snaps; /* every snapshot, by id */
    uint32_t nsnaps;
};

static const char *const reason_label[] = {
    [STORE_SNAP_BOOT] = "boot",
    [STORE_SNAP_PERIODIC] = "periodic",
    [STORE_SNAP_KICK] = "kick",
};

static const char *reason_of(uint32_t reason)
{
    return reason < sizeof reason_label / sizeof *reason_label
               ? reason_label[reason] : "?";
}

static const char *const kind_label[STORE_EV_KIND_MAX] = {
    [STORE_EV_PIO_IN] = "pio_in",     [STORE_EV_PIO_OUT] = "pio_out",
    [STORE_EV_MMIO_READ] = "mmio_read", [STORE_EV_MMIO_WRITE] = "mmio_write",
    [STORE_EV_IRQ] = "irq",           [STORE_EV_HLT] = "hlt",
    [STORE_EV_KICK] = "kick",         [STORE_EV_WINDOW] = "irq_window",
    [STORE_EV_EMU] = "emulated",      [STORE_EV_EXIT] = "exit",
};

static const char *stop_label(uint64_t kind)
{
    switch (kind) {
    case VMM_STOP_EXIT: return "debug-exit";
    case VMM_STOP_SHUTDOWN: return "triple fault";
    case VMM_STOP_TIMEOUT: return "timeout";
    case VMM_STOP_HALTED: return "halted for good";
    case VMM_STOP_EMU_FAIL: return "instruction could not be executed";
    case VMM_STOP_ERROR: return "error";
    case VMM_STOP_HOOK: return "stopped by the recorder";
    }
    return "unknown";
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ttvm info TRACE [--json] [--snapshots] [--key-file "
               "FILE]\n\n"
               "Describe a trace: guest, memory, how the run ended (or, for "
               "a trace whose\nrecorder stopped early, where it ends), "
               "events by kind, snapshots, pages,\nbytes on disk, "
               "compression and deduplication, whether the instruction\n"
               "index exists.\n\n"
               "  --json            one JSON object on stdout instead of "
               "text\n"
               "  --snapshots       list every snapshot: id, reason, event "
               "index, time,\n"
               "                    pages, stored bytes, pause (JSON: "
               "\"snapshot_list\")\n"
               "  --key-file FILE   key of an encrypted trace\n\n"
               "exit status: 0, 2 usage, 18 trace missing, corrupt or "
               "unreadable.\n");
}

static int gather(struct store *st, struct info *in)
{
    void *img = NULL;
    size_t img_len = 0;
    int rc = store_image_get(st, &img, &img_len);
    free(img);
    if (!rc)
        rc = store_stats(st, &in->s);
    if (rc)
        return rc;
    store_meta_get_str(st, "guest.name", &in->guest);
    store_meta_get_str(st, "guest.cmdline", &in->cmdline);
    store_meta_get_str(st, "record.argv", &in->argv);
    store_meta_get_str(st, "record.host", &in->host);
    store_meta_get_u64(st, "vm.mem_size", &in->mem);
    in->have_final = !store_meta_get_u64(st, "final.kind", &in->kind);
    store_meta_get_u64(st, "final.status", &in->status);
    store_meta_get_u64(st, "final.wall_ns", &in->wall_ns);
    store_meta_get_str(st, "final.detail", &in->detail);
    in->indexed = store_index_complete(st, &in->end_icount);
    store_meta_get_str(st, "index.engine", &in->engine);
    in->snaps = calloc(in->s.snapshots ? in->s.snapshots : 1,
                       sizeof *in->snaps);
    if (!in->snaps)
        return -ENOMEM;
    for (uint32_t id = 0; id < in->s.snapshots; id++) {
        struct store_snapshot_info *si = &in->snaps[in->nsnaps];
        if ((rc = store_snapshot_get(st, id, si, NULL, NULL, NULL, NULL)))
            return rc;
        in->nsnaps++;
        if (si->npages > in->snap_pages_max)
            in->snap_pages_max = si->npages;
        in->snap_bytes += si->stored_bytes;
        in->kicks_snaps += si->reason == STORE_SNAP_KICK;
    }
    return 0;
}

/* The last snapshot of an incomplete trace: where a replay can restart
 * from, and how far into the run it was taken. */
static const struct store_snapshot_info *last_snap(const struct info *in)
{
    return in->nsnaps ? &in->snaps[in->nsnaps - 1] : NULL;
}

static double ratio(uint64_t a, uint64_t b) { return b ? (double)a / b : 0; }

static void print_text(const char *path, const struct info *in, bool list)
{
    const struct store_stats *s = &in->s;
    printf("trace        %s%s%s\n", path, s->complete ? "" : "  (INCOMPLETE: "
           "the recorder stopped early; usable up to its last snapshot)",
           s->encrypted ? "  (encrypted)" : "");
    printf("guest        %s%s%s%s\n", in->guest ? in->guest : "?",
           in->cmdline && *in->cmdline ? "  cmdline \"" : "",
           in->cmdline && *in->cmdline ? in->cmdline : "",
           in->cmdline && *in->cmdline ? "\"" : "");
    printf("memory       %llu MiB\n", (unsigned long long)(in->mem >> 20));
    const struct store_snapshot_info *ls = last_snap(in);
    if (!s->complete && ls)
        printf("ends         after event %llu (the last commit); last "
               "snapshot %u at event %llu, %.3f s into the run\n",
               (unsigned long long)s->events, ls->id,
               (unsigned long long)ls->event_index,
               (double)ls->time_ns / 1e9);
    if (in->have_final) {
        printf("ended        %s", stop_label(in->kind));
        if (in->kind == VMM_STOP_EXIT)
            printf(", exit status %d", (int)(int64_t)in->status);
        printf("\n");
        if (in->detail && *in->detail && in->kind != VMM_STOP_EXIT)
            printf("             %s\n", in->detail);
        printf("duration     %.3f s\n", (double)in->wall_ns / 1e9);
    }
    printf("events       %llu\n", (unsigned long long)s->events);
    for (int k = 1; k < STORE_EV_KIND_MAX; k++)
        if (s->events_by_kind[k])
            printf("  %-11s %llu\n", kind_label[k],
                   (unsigned long long)s->events_by_kind[k]);
    printf("event bytes  %llu (%.2f per event)\n",
           (unsigned long long)s->event_bytes, ratio(s->event_bytes, s->events));
    printf("snapshots    %u (%llu at kicks), largest %llu pages, %llu bytes "
           "of new page data\n", s->snapshots,
           (unsigned long long)in->kicks_snaps,
           (unsigned long long)in->snap_pages_max,
           (unsigned long long)in->snap_bytes);
    if (list) {
        printf("  %6s %-8s %12s %10s %8s %12s %9s\n", "id", "reason",
               "event", "time s", "pages", "stored", "pause us");
        for (uint32_t i = 0; i < in->nsnaps; i++) {
            const struct store_snapshot_info *si = &in->snaps[i];
            printf("  %6u %-8s %12llu %10.3f %8u %12llu ", si->id,
                   reason_of(si->reason),
                   (unsigned long long)si->event_index,
                   (double)si->time_ns / 1e9, si->npages,
                   (unsigned long long)si->stored_bytes);
            if (si->pause_us)
                printf("%9u\n", si->pause_us);
            else
                printf("%9s\n", "-");
        }
    }
    printf("pages        %llu versions, %llu zero, %llu distinct stored\n",
           (unsigned long long)s->page_versions,
           (unsigned long long)s->zero_pages,
           (unsigned long long)s->unique_pages);
    printf("compression  %.2fx (zstd), deduplication %.2fx\n",
           ratio(s->page_bytes_raw, s->page_bytes_stored),
           ratio(s->page_versions - s->zero_pages, s->unique_pages));
    printf("on disk      %llu bytes\n", (unsigned long long)s->file_bytes);
    if (in->indexed)
        printf("index        yes, %llu instructions (engine %s)\n",
               (unsigned long long)in->end_icount,
               in->engine ? in->engine : "unicorn");
    else
        printf("index        no (built on first replay, or `ttvm index`)\n");
}

static void json_str(const char *key, const char *v, bool comma)
{
    printf("  \"%s\": \"", key);
    for (const unsigned char *p = (const unsigned char *)(v ? v : ""); *p;
         p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    printf("\"%s\n", comma ? "," : "");
}

static void print_json(const char *path, const struct info *in, bool list)
{
    const struct store_stats *s = &in->s;
    printf("{\n");
    json_str("trace", path, true);
    json_str("guest", in->guest, true);
    json_str("cmdline", in->cmdline, true);
    json_str("recorded_with", in->argv, true);
    json_str("host", in->host, true);
    printf("  \"complete\": %s,\n  \"encrypted\": %s,\n",
           s->complete ? "true" : "false", s->encrypted ? "true" : "false");
    printf("  \"memory_bytes\": %llu,\n", (unsigned long long)in->mem);
    const struct store_snapshot_info *ls = last_snap(in);
    if (!s->complete && ls)
        printf("  \"ends\": {\"events\": %llu, \"last_snapshot\": %u, "
               "\"last_snapshot_event\": %llu, \"last_snapshot_time_s\": "
               "%.6f},\n", (unsigned long long)s->events, ls->id,
               (unsigned long long)ls->event_index,
               (double)ls->time_ns / 1e9);
    if (in->have_final) {
        json_str("ended", stop_label(in->kind), true);
        printf("  \"exit_status\": %d,\n  \"duration_s\": %.6f,\n",
               (int)(int64_t)in->status, (double)in->wall_ns / 1e9);
    }
    printf("  \"events\": %llu,\n  \"events_by_kind\": {",
           (unsigned long long)s->events);
    const char *sep = "";
    for (int k = 1; k < STORE_EV_KIND_MAX; k++) {
        printf("%s\"%s\": %llu", sep, kind_label[k],
               (unsigned long long)s->events_by_kind[k]);
        sep = ", ";
    }
    printf("},\n  \"event_bytes\": %llu,\n", (unsigned long long)s->event_bytes);
    printf("  \"snapshots\": %u,\n  \"kick_snapshots\": %llu,\n"
           "  \"largest_snapshot_pages\": %llu,\n"
           "  \"snapshot_bytes\": %llu,\n",
           s->snapshots, (unsigned long long)in->kicks_snaps,
           (unsigned long long)in->snap_pages_max,
           (unsigned long long)in->snap_bytes);
    if (list) {
        printf("  \"snapshot_list\": [");
        for (uint32_t i = 0; i < in->nsnaps; i++) {
            const struct store_snapshot_info *si = &in->snaps[i];
            printf("%s\n    {\"id\": %u, \"reason\": \"%s\", \"event\": %llu, "
                   "\"time_s\": %.6f, \"pages\": %u, \"stored_bytes\": %llu, "
                   "\"pause_us\": %u}", i ? "," : "", si->id,
                   reason_of(si->reason),
                   (unsigned long long)si->event_index,
                   (double)si->time_ns / 1e9, si->npages,
                   (unsigned long long)si->stored_bytes, si->pause_us);
        }
        printf("\n  ],\n");
    }
    printf("  \"page_versions\": %llu,\n  \"zero_pages\": %llu,\n"
           "  \"unique_pages\": %llu,\n  \"page_bytes_raw\": %llu,\n"
           "  \"page_bytes_stored\": %llu,\n",
           (unsigned long long)s->page_versions,
           (unsigned long long)s->zero_pages,
           (unsigned long long)s->unique_pages,
           (unsigned long long)s->page_bytes_raw,
           (unsigned long long)s->page_bytes_stored);
    printf("  \"compression_ratio\": %.3f,\n  \"dedup_ratio\": %.3f,\n",
           ratio(s->page_bytes_raw, s->page_bytes_stored),
           ratio(s->page_versions - s->zero_pages, s->unique_pages));
    printf("  \"file_bytes\": %llu,\n", (unsigned long long)s->file_bytes);
    printf("  \"indexed\": %s", in->indexed ? "true" : "false");
    if (in->indexed)
        printf(",\n  \"instructions\": %llu,\n  \"index_engine\": \"%s\"",
               (unsigned long long)in->end_icount,
               in->engine ? in->engine : "unicorn");
    printf("\n}\n");
}

int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "snapshots", no_argument, NULL, 's' },
        { "key-file", required_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bool json = false, list = false;
    uint8_t key[STORE_KEY_BYTES];
    const char *key_file = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j') {
            json = true;
        } else if (c == 's') {
            list = true;
        } else if (c == 'k') {
            key_file = optarg;
            if (cmd_read_key(key_file, key))
                return TTVM_EXIT_USAGE;
        } else if (c == 'h') {
            usage(stdout);
            return TTVM_EXIT_OK;
        } else {
            usage(stderr);
            return TTVM_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return TTVM_EXIT_USAGE;
    }
    const char *path = argv[optind];
    struct store *st;
    int rc = store_open(path, false, key_file ? key : NULL, &st);
    if (rc) {
        cmd_trace_error("info", path, rc, store_error_detail(NULL));
        return TTVM_EXIT_TRACE;
    }
    struct info in = { 0 };
    rc = gather(st, &in);
    if (rc)
        cmd_trace_error("info", path, rc, store_error_detail(st));
    else if (json)
        print_json(path, &in, list);
    else
        print_text(path, &in, list);
    store_close(st);
    free(in.snaps);
    free(in.guest);
    free(in.engine);
    free(in.cmdline);
    free(in.argv);
    free(in.host);
    free(in.detail);
    return rc ? TTVM_EXIT_TRACE : TTVM_EXIT_OK;
}
