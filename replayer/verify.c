/*
 * verify.c — `ttvm replay --verify`: re-execute a trace on the KVM backend
 * and check it against the recording, event by event.
 *
 * The machine's devices are not used: the vCPU's I/O goes to the trace
 * (reads return the logged values, writes are compared with them), and
 * interrupts are injected where the log says.  KVM cannot stop at an
 * arbitrary instruction without a PMU, so a kick point is reached the way
 * DESIGN.md says: by restoring the snapshot taken there (its pages are
 * exactly the ones written since the previous snapshot).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replayer/replayer_int.h"

#define EVBUF 1024
#define COM1 0x3f8
#define UART_LCR (COM1 + 3)
#define LCR_DLAB 0x80

struct verify {
    const char *path;
    struct store *st;
    struct vmm *vm;
    struct vcpu *cpu;
    struct replay_verify_result *res;
    const struct replay_verify_opts *o;
    uint64_t nevents;
    uint64_t next;              /* next event to consume */
    struct store_event buf[EVBUF];
    uint64_t buf_first;
    size_t buf_n;
    bool dlab;
};

/* What a store error was about: storage's detail (it names the record),
 * else the error's name. */
static const char *store_why(const struct verify *v, int rc)
{
    const char *d = store_error_detail(v->st);
    return d && *d ? d : store_strerror(rc);
}

/* Register and event names are the replayer's (replayer_int.h). */
static const char *kind_name(unsigned k)
{
    return rp_kind_name(k);
}

static int diverge(struct verify *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int diverge(struct verify *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    v->res->diverged = true;
    v->res->event_index = v->next;
    vsnprintf(v->res->detail, sizeof v->res->detail, fmt, ap);
    va_end(ap);
    return REPLAY_E_DIVERGED;
}

/* The next event, or NULL at the end of the trace. */
static const struct store_event *peek(struct verify *v, int *err)
{
    *err = 0;
    if (v->next >= v->nevents)
        return NULL;
    if (v->next < v->buf_first || v->next >= v->buf_first + v->buf_n) {
        size_t got = 0;
        *err = store_events_read(v->st, v->next, v->buf, EVBUF, &got);
        if (*err || !got) {
            if (!*err)
                *err = STORE_E_CORRUPT;
            return NULL;
        }
        v->buf_first = v->next;
        v->buf_n = got;
    }
    return &v->buf[v->next - v->buf_first];
}

static void consume(struct verify *v)
{
    v->next++;
    v->res->events_checked++;
    if (v->o->progress && !(v->next & 0xffff))
        v->o->progress(v->o->progress_ctx, "verify", v->next, v->nevents);
}

/* Compares the vCPU's registers with an event's; fills a diff. */
static int check_regs(struct verify *v, const struct store_event *ev)
{
    struct vmm_regs now;
    int rc = vcpu_get_regs(v->cpu, &now);
    if (rc)
        return rc;
    char diff[1024] = "";
    if (!rp_regs_diff(ev->regs, (const uint64_t *)&now, false, diff,
                      sizeof diff))
        return 0;
    return diverge(v, "event %llu (%s, rip %#llx): registers differ:%s",
                   (unsigned long long)v->next, kind_name(ev->kind),
                   (unsigned long long)ev->regs[16], diff);
}

static void echo_console(struct verify *v, uint16_t port, uint32_t val)
{
    if (port == UART_LCR)
        v->dlab = val & LCR_DLAB;
    if (port == COM1 && !v->dlab && v->o->console_fd >= 0) {
        unsigned char c = (unsigned char)val;
        if (write(v->o->console_fd, &c, 1) < 0) {
            /* The console is best effort; verification goes on. */
        }
    }
}

/* I/O of the re-executed guest: served from, and checked against, the log. */
static int verify_pio(void *ctx, uint16_t port, unsigned size, bool write,
                      uint32_t *val)
{
    struct verify *v = ctx;
    int err;
    const struct store_event *ev = peek(v, &err);
    if (err)
        return err;
    uint8_t want = write ? STORE_EV_PIO_OUT : STORE_EV_PIO_IN;
    if (!ev || ev->kind != want || ev->addr != port || ev->size != size)
        return diverge(v, "event %llu: recording has %s, replay does a "
                          "%u-byte port %s of %#x",
                       (unsigned long long)v->next,
                       ev ? kind_name(ev->kind) : "the end", size,
                       write ? "write" : "read", port);
    int rc = check_regs(v, ev);
    if (rc)
        return rc;
    if (write && (uint32_t)ev->value != *val)
        return diverge(v, "event %llu: port %#x written with %#x, recording "
                          "has %#llx",
                       (unsigned long long)v->next, port, *val,
                       (unsigned long long)ev->value);
    if (write)
        echo_console(v, port, *val);
    else
        *val = (uint32_t)ev->value;
    consume(v);
    return 0;
}

static int verify_mmio(void *ctx, uint64_t gpa, unsigned size, bool write,
                       uint64_t *val)
{
    struct verify *v = ctx;
    int err;
    const struct store_event *ev = peek(v, &err);
    if (err)
        return err;
    uint8_t want = write ? STORE_EV_MMIO_WRITE : STORE_EV_MMIO_READ;
    if (!ev || ev->kind != want || ev->addr != gpa || ev->size != size)
        return diverge(v, "event %llu: recording has %s, replay does a "
                          "%u-byte MMIO %s of %#llx",
                       (unsigned long long)v->next,
                       ev ? kind_name(ev->kind) : "the end", size,
                       write ? "write" : "read", (unsigned long long)gpa);
    int rc = check_regs(v, ev);
    if (rc)
        return rc;
    if (write && ev->value != *val)
        return diverge(v, "event %llu: MMIO %#llx written with %#llx, "
                          "recording has %#llx",
                       (unsigned long long)v->next, (unsigned long long)gpa,
                       (unsigned long long)*val,
                       (unsigned long long)ev->value);
    if (!write)
        *val = ev->value;
    consume(v);
    return 0;
}

static const struct vmm_io_ops verify_io = {
    .pio = verify_pio,
    .mmio = verify_mmio,
};

/* ---- restoring snapshots --------------------------------------------- */

static int load_cpu_state(struct verify *v, uint32_t id)
{
    void *cpu = NULL;
    size_t len = 0;
    int rc = store_snapshot_get(v->st, id, NULL, &cpu, &len, NULL, NULL);
    if (rc)
        return rc;
    struct vmm_cpu_state s;
    if (len != sizeof s) {
        free(cpu);
        snprintf(v->res->detail, sizeof v->res->detail,
                 "snapshot %u: CPU state of %zu bytes, expected %zu", id,
                 len, sizeof s);
        return VMM_E_STATE;
    }
    memcpy(&s, cpu, sizeof s);
    free(cpu);
    rc = vcpu_set_state(v->cpu, &s);
    if (rc)
        snprintf(v->res->detail, sizeof v->res->detail,
                 "snapshot %u: restoring CPU state: %s", id,
                 vmm_strerror(rc));
    return rc;
}

/* All of RAM as of snapshot id (used once, at the start). */
static int load_all_pages(struct verify *v, uint32_t id)
{
    uint8_t *ram = vmm_ram(v->vm);
    uint64_t npages = vmm_ram_size(v->vm) / STORE_PAGE_SIZE;
    for (uint64_t gfn = 0; gfn < npages; gfn++) {
        int rc = store_page_read(v->st, id, gfn, ram + gfn * STORE_PAGE_SIZE);
        if (rc)
            return rc;
    }
    vcpu_ram_changed(v->cpu, 0, vmm_ram_size(v->vm));
    return 0;
}

/* The pages saved with snapshot id: those written since the one before. */
static int load_snapshot_pages(struct verify *v, uint32_t id)
{
    uint64_t *gfns = NULL;
    size_t n = 0;
    int rc = store_snapshot_pages(v->st, id, &gfns, &n);
    uint8_t *ram = vmm_ram(v->vm);
    for (size_t i = 0; !rc && i < n; i++) {
        if (!vmm_gpa_ptr(v->vm, gfns[i] * STORE_PAGE_SIZE, STORE_PAGE_SIZE))
            rc = STORE_E_CORRUPT;
        else
            rc = store_page_read(v->st, id, gfns[i],
                                 ram + gfns[i] * STORE_PAGE_SIZE);
        if (!rc)
            vcpu_ram_changed(v->cpu, gfns[i] * STORE_PAGE_SIZE,
                             STORE_PAGE_SIZE);
    }
    free(gfns);
    return rc;
}

/* A kick or window point: KVM cannot stop there by itself, so jump to
 * it. */
static int reach_kick(struct verify *v, const struct store_event *ev)
{
    uint32_t id = ev->aux;
    struct store_snapshot_info info;
    int rc = store_snapshot_get(v->st, id, &info, NULL, NULL, NULL, NULL);
    if (!rc && info.event_index != v->next + 1)
        rc = STORE_E_CORRUPT;
    if (!rc)
        rc = load_snapshot_pages(v, id);
    if (!rc)
        rc = load_cpu_state(v, id);
    if (rc)
        return rc;
    rc = check_regs(v, ev);
    if (!rc)
        consume(v);
    return rc;
}

/* ---- the loop --------------------------------------------------------- */

/* Runs the vCPU until it stops at something the log must explain. */
static int run_to_exit(struct verify *v, struct vcpu_exit *e)
{
    int rc = vcpu_run(v->cpu, NULL, e);
    if (rc == REPLAY_E_DIVERGED || v->res->diverged)
        return REPLAY_E_DIVERGED;
    if (rc)
        snprintf(v->res->detail, sizeof v->res->detail,
                 "event %llu: running on KVM: %s",
                 (unsigned long long)v->next, vmm_strerror(rc));
    return rc;
}

static int expect_exit_event(struct verify *v, const struct store_event *ev,
                             const struct vcpu_exit *e, uint8_t kind)
{
    if (!ev || ev->kind != kind)
        return diverge(v, "event %llu: recording has %s, replay stopped "
                          "with %s%s%s",
                       (unsigned long long)v->next,
                       ev ? kind_name(ev->kind) : "the end", kind_name(kind),
                       *e->detail ? ": " : "", e->detail);
    return check_regs(v, ev);
}

/* The final EXIT event: how the recording ended.  Where the run ended at
 * a point KVM reaches by itself the final registers must match too (a
 * timeout or an error stopped the recording anywhere).  Returns 1 (done),
 * or REPLAY_E_DIVERGED. */
static int finish(struct verify *v, const struct store_event *ev)
{
    if (ev->aux == VMM_STOP_EXIT || ev->aux == VMM_STOP_HALTED ||
        ev->aux == VMM_STOP_SHUTDOWN) {
        int rc = check_regs(v, ev);
        if (rc)
            return rc;
    }
    v->res->exit_kind = ev->aux;
    v->res->exit_status = (int)(int64_t)ev->value;
    consume(v);
    return 1;
}

/* One step of the loop: act on the next event.  1 = done. */
static int step(struct verify *v)
{
    int err;
    const struct store_event *ev = peek(v, &err);
    if (err)
        return err;
    if (!ev)
        return 1; /* the trace ends here (recorder died): checked so far */
    switch (ev->kind) {
    case STORE_EV_IRQ:
        err = vcpu_inject_irq(v->cpu, (uint8_t)ev->aux);
        if (!err)
            consume(v);
        return err;
    case STORE_EV_KICK:
    case STORE_EV_WINDOW:
        return reach_kick(v, ev);
    case STORE_EV_EXIT:
        if (ev->aux != VMM_STOP_SHUTDOWN)
            return finish(v, ev);
        break;
    default:
        break;
    }
    struct vcpu_exit e;
    err = run_to_exit(v, &e);
    if (err)
        return err;
    ev = peek(v, &err); /* the I/O callback may have moved on */
    if (err)
        return err;
    switch (e.reason) {
    case VCPU_EXIT_IO:
    case VCPU_EXIT_KICK:
        return 0;
    case VCPU_EXIT_HLT:
        err = expect_exit_event(v, ev, &e, STORE_EV_HLT);
        break;
    case VCPU_EXIT_SHUTDOWN:
        err = expect_exit_event(v, ev, &e, STORE_EV_EXIT);
        if (!err && ev->aux != VMM_STOP_SHUTDOWN)
            err = diverge(v, "event %llu: replay triple-faulted; the "
                             "recording did not",
                          (unsigned long long)v->next);
        if (!err)
            return finish(v, ev);
        return err;
    default:
        return diverge(v, "event %llu: replay stopped unexpectedly (exit "
                          "%d)%s%s",
                       (unsigned long long)v->next, (int)e.reason,
                       *e.detail ? ": " : "", e.detail);
    }
    if (!err)
        consume(v);
    return err;
}

static int setup_machine(struct verify *v, const char *trace)
{
    uint64_t mem = 0;
    void *cpuid = NULL;
    size_t cpuid_len = 0;
    int rc = store_meta_get_u64(v->st, "vm.mem_size", &mem);
    if (!rc)
        rc = store_meta_get(v->st, "vm.cpuid", &cpuid, &cpuid_len);
    if (!rc && cpuid_len != sizeof(struct vmm_cpuid))
        rc = STORE_E_CORRUPT;
    if (rc) {
        free(cpuid);
        snprintf(v->res->detail, sizeof v->res->detail,
                 "%s: machine description: %s", trace, store_why(v, rc));
        return rc;
    }
    struct vmm_config cfg = {
        .mem_size = mem,
        .backend = "kvm",
        .serial_out_fd = -1,
        .serial_in_fd = -1,
        .cpuid = cpuid,
    };
    rc = vmm_create(&cfg, &v->vm);
    free(cpuid);
    if (rc) {
        snprintf(v->res->detail, sizeof v->res->detail,
                 "creating the machine: %s", vmm_strerror(rc));
        return rc;
    }
    v->cpu = vmm_vcpu(v->vm);
    vcpu_set_io(v->cpu, &verify_io, v);
    return 0;
}

static int start_at_snapshot(struct verify *v, uint32_t id)
{
    struct store_snapshot_info info;
    int rc = store_snapshot_get(v->st, id, &info, NULL, NULL, NULL, NULL);
    if (rc) {
        snprintf(v->res->detail, sizeof v->res->detail,
                 "%s: snapshot %u: %s (the trace has %u)", v->path, id,
                 rc == STORE_E_NOTFOUND ? store_strerror(rc)
                                        : store_why(v, rc),
                 store_snapshot_count(v->st));
        return rc;
    }
    rc = load_all_pages(v, id);
    if (!rc)
        rc = load_cpu_state(v, id);
    v->next = v->res->first_event = info.event_index;
    return rc;
}

int replay_verify(const char *trace, const struct replay_verify_opts *o,
                  struct replay_verify_result *res)
{
    struct verify v = { .o = o, .res = res };
    memset(res, 0, sizeof *res);
    int rc = store_open(trace, false, o->key, &v.st);
    if (rc) {
        /* storage's detail of a failed open names the trace already */
        const char *d = store_error_detail(NULL);
        size_t n = strlen(trace);
        if (d && !strncmp(d, trace, n) && d[n] == ':')
            snprintf(res->detail, sizeof res->detail, "%s", d);
        else
            snprintf(res->detail, sizeof res->detail, "%s: %s", trace,
                     d && *d ? d : store_strerror(rc));
        return rc;
    }
    v.path = trace;
    /* The machine comes from snapshot 0, but a trace whose embedded image
     * was tampered with is not trustworthy either. */
    void *img = NULL;
    size_t img_len = 0;
    rc = store_image_get(v.st, &img, &img_len);
    free(img);
    if (rc) {
        snprintf(res->detail, sizeof res->detail, "%s: guest image: %s",
                 trace, store_why(&v, rc));
        store_close(v.st);
        return rc;
    }
    res->trace_complete = store_is_complete(v.st);
    v.nevents = store_event_count(v.st);
    rc = setup_machine(&v, trace);
    if (!rc)
        rc = start_at_snapshot(&v, o->from_snapshot);
    while (!rc)
        rc = step(&v);
    if (rc == 1 || rc == REPLAY_E_DIVERGED)
        rc = 0;
    else if (rc < 0 && !res->detail[0])
        snprintf(res->detail, sizeof res->detail, "%s: event %llu: %s",
                 trace, (unsigned long long)v.next,
                 rc <= -5100 && rc > -5200 ? store_why(&v, rc)
                                           : vmm_strerror(rc));
    if (v.vm)
        vmm_destroy(v.vm);
    store_close(v.st);
    return rc;
}
