/*
 * recorder.c — rec_record: the live run loop (vmm_run) observed through
 * its hooks, and the guest's I/O observed on its way to the devices (one
 * event per access the backend serves: each element of a string
 * instruction is one).  Snapshots are taken at exits once the interval
 * has passed, and a small kicker thread stops a guest that runs too long
 * without exiting so that snapshots stay regular even in pure ring-3
 * compute.  Everything written goes through the writer thread (writer.c);
 * the vCPU thread only copies.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "recorder/recorder_int.h"

_Static_assert(sizeof(struct vmm_regs) == STORE_NREGS * sizeof(uint64_t),
               "an event's registers are struct vmm_regs, word for word");

#define EVENT_BATCH 4096              /* events per hand-off to the writer */
#define WRITER_QUEUE (256u << 20)     /* bytes waiting for the writer */

struct rec {
    struct vmm *vm;
    struct vcpu *cpu;
    struct store *st;
    struct rec_writer *w;
    struct rec_capture *cap;
    uint64_t interval_ns;
    const struct vmm_io_ops *bus; /* the live devices, behind rec_io */
    void *bus_ctx;
    bool exit_fresh;           /* no access served since the last exit */

    struct store_event *batch; /* events not yet handed to the writer */
    size_t nbatch;
    bool access_open;          /* the last exit's access is not complete */
    bool kick_open;            /* stopped at a kick no event names yet */
    struct vmm_regs kick_regs; /* its registers */
    uint64_t next_event;       /* index of the next event */
    uint32_t next_snap;        /* id of the next snapshot */
    uint64_t t0_ns;
    uint64_t last_snap_ns;     /* shared with the kicker (atomic) */

    double *pause_us;
    size_t npause, pause_cap;
    struct rec_stats *stats;
    int err;

    /* kicker thread */
    pthread_t kicker;
    pthread_mutex_t klock;
    pthread_cond_t kcond;
    bool kstop, kicker_started;
};

static __thread char detail[512];

const char *rec_error_detail(void) { return detail; }

void rec_set_detail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
}

const char *rec_strerror(int err)
{
    switch (err) {
    case REC_E_STATE: return "machine cannot be recorded in this state";
    case REC_E_WRITER: return "trace writer failed";
    case REC_E_ARG: return "invalid recorder argument";
    }
    if (err <= -5100 && err > -5200)
        return store_strerror(err);
    return vmm_strerror(err);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- events ------------------------------------------------------------ */

static int flush_events(struct rec *r)
{
    if (!r->nbatch)
        return 0;
    struct rec_job *job = calloc(1, sizeof *job);
    if (!job)
        return -ENOMEM;
    job->kind = REC_JOB_EVENTS;
    job->ev = r->batch;
    job->nev = r->nbatch;
    r->batch = NULL;
    r->nbatch = 0;
    return rec_writer_submit(r->w, job);
}

static int log_event(struct rec *r, const struct store_event *ev)
{
    if (!r->batch) {
        r->batch = malloc(EVENT_BATCH * sizeof *r->batch);
        if (!r->batch)
            return -ENOMEM;
    }
    r->batch[r->nbatch++] = *ev;
    r->next_event++;
    if (r->stats && ev->kind < STORE_EV_KIND_MAX)
        r->stats->events_by_kind[ev->kind]++;
    return r->nbatch == EVENT_BATCH ? flush_events(r) : 0;
}

static void event_init(struct store_event *ev, uint8_t kind,
                       const struct vmm_regs *regs)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = kind;
    memcpy(ev->regs, regs, sizeof ev->regs);
}

static int log_simple(struct rec *r, uint8_t kind, uint32_t aux,
                      const struct vmm_regs *regs)
{
    struct store_event ev;
    event_init(&ev, kind, regs);
    ev.aux = aux;
    return log_event(r, &ev);
}

/* ---- snapshots --------------------------------------------------------- */

static int note_pause(struct rec *r, double us)
{
    if (r->npause == r->pause_cap) {
        size_t cap = r->pause_cap ? 2 * r->pause_cap : 256;
        double *p = realloc(r->pause_us, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        r->pause_us = p;
        r->pause_cap = cap;
    }
    r->pause_us[r->npause++] = us;
    return 0;
}

/* Takes the next snapshot at the current point: everything logged so far
 * precedes it. */
static int take_snapshot(struct rec *r, uint32_t reason)
{
    uint64_t t = now_ns();
    struct rec_job *job;
    int rc = rec_capture_incremental(r->cap, &job);
    if (rc) {
        rec_set_detail("snapshot %u: capturing state: %s", r->next_snap,
                       vmm_strerror(rc));
        return rc;
    }
    job->info.id = r->next_snap++;
    job->info.reason = reason;
    job->info.event_index = r->next_event;
    job->info.icount = UINT64_MAX;
    job->info.time_ns = t - r->t0_ns;
    job->info.npages = (uint32_t)job->npages;
    if (r->stats) {
        r->stats->pages_saved += job->npages;
        r->stats->snapshots++;
    }
    rc = flush_events(r);
    /* The pause stored with it: the vCPU held so far.  Handing the
     * snapshot over can still wait for room in the writer's queue (a
     * guest dirtying memory faster than the disk takes it); the summary's
     * pause figures count that wait too. */
    uint64_t held_us = (now_ns() - t) / 1000;
    job->info.pause_us = held_us > UINT32_MAX ? UINT32_MAX : (uint32_t)held_us;
    if (!rc)
        rc = rec_writer_submit(r->w, job);
    else
        rec_job_free(job);
    uint64_t done = now_ns();
    __atomic_store_n(&r->last_snap_ns, done, __ATOMIC_RELEASE);
    if (!rc)
        rc = note_pause(r, (double)(done - t) / 1e3);
    return rc;
}

static bool snapshot_due(const struct rec *r)
{
    return now_ns() - __atomic_load_n(&r->last_snap_ns, __ATOMIC_ACQUIRE) >=
           r->interval_ns;
}

/* ---- I/O: every access, as the backend serves it -------------------- */

/* Before an access is served: a snapshot due at this exit is taken first,
 * so its state is "before this access" (the backend shows the registers
 * before the instruction, or before the element of a string one).  Only
 * at the exit's first access: the later elements of a KVM string exit are
 * not stored in RAM yet. */
static int before_access(struct rec *r)
{
    bool first = r->exit_fresh;
    r->exit_fresh = false;
    return first && snapshot_due(r) ? take_snapshot(r, STORE_SNAP_PERIODIC)
                                    : 0;
}

static int log_access(struct rec *r, uint8_t kind, uint64_t addr,
                      unsigned size, uint64_t value)
{
    struct vmm_regs regs;
    int rc = vcpu_get_regs(r->cpu, &regs);
    if (rc)
        return rc;
    r->access_open = true;
    struct store_event ev;
    event_init(&ev, kind, &regs);
    ev.addr = addr;
    ev.size = (uint8_t)size;
    ev.value = value;
    return log_event(r, &ev);
}

static int rec_pio(void *ctx, uint16_t port, unsigned size, bool write,
                   uint32_t *val)
{
    struct rec *r = ctx;
    int rc = before_access(r);
    int served = rc ? rc : r->bus->pio(r->bus_ctx, port, size, write, val);
    if (served >= 0)
        rc = log_access(r, write ? STORE_EV_PIO_OUT : STORE_EV_PIO_IN, port,
                        size, *val);
    if (rc && !r->err)
        r->err = rc;
    return rc ? rc : served;
}

static int rec_mmio(void *ctx, uint64_t gpa, unsigned size, bool write,
                    uint64_t *val)
{
    struct rec *r = ctx;
    int rc = before_access(r);
    int served = rc ? rc : r->bus->mmio(r->bus_ctx, gpa, size, write, val);
    if (served >= 0)
        rc = log_access(r, write ? STORE_EV_MMIO_WRITE : STORE_EV_MMIO_READ,
                        gpa, size, *val);
    if (rc && !r->err)
        r->err = rc;
    return rc ? rc : served;
}

static const struct vmm_io_ops rec_io = {
    .pio = rec_pio,
    .mmio = rec_mmio,
};

/* ---- arbitrary stopping points ------------------------------------------ */

/* The rep string instruction (MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS) at
 * the vCPU's RIP whose count register (by its address size) is 0: its
 * length, else 0. */
static unsigned rep_done_len(struct rec *r, const struct vmm_regs *regs)
{
    struct vmm_cpu_state st;
    uint8_t b[15];
    struct vmm_insn_prefix p;
    if (vcpu_get_state(r->cpu, &st))
        return 0;
    unsigned n = vmm_code_read(r->vm, &st.sregs, regs->rip, b, sizeof b);
    if (!vmm_insn_prefixes(b, n, &st.sregs, &p) || !p.str || !p.rep)
        return 0;
    return (regs->rcx & vmm_asz_mask(p.asz)) == 0 ? p.len + 1u : 0;
}

/* At a kick, window or injection point.  KVM's instruction emulator
 * (guest ring 0 on kvm-pvm; string I/O on every host) leaves a rep string
 * instruction whose last iteration is done at the instruction with its
 * count at 0, and steps past it only when it next enters it.  Stopped in
 * between, the vCPU is in a state that no instruction count names:
 * Unicorn, like the hardware, is past the instruction once its last
 * iteration is.  Finish it here (RIP past it, RF clear, as the emulator
 * would), so that events, snapshots and interrupt frames hold the state a
 * replay reaches.  *regs is updated. */
static int finish_rep(struct rec *r, struct vmm_regs *regs)
{
    if ((uint16_t)regs->rcx != 0) /* cheap first: most points are not */
        return 0;
    unsigned len = rep_done_len(r, regs);
    if (!len)
        return 0;
    regs->rip += len;
    regs->rflags &= ~0x10000ull;
    return vcpu_set_regs(r->cpu, regs);
}

/* ---- run-loop hooks ---------------------------------------------------- */

/* An arbitrary point (kick, interrupt window): its event, then the
 * snapshot a replay restores to reach it. */
static int log_point(struct rec *r, uint8_t kind, const struct vmm_regs *regs)
{
    struct vmm_regs here = *regs;
    int rc = finish_rep(r, &here);
    if (!rc)
        rc = log_simple(r, kind, r->next_snap, &here);
    if (!rc && kind == STORE_EV_KICK && r->stats)
        r->stats->kicks++;
    return rc ? rc : take_snapshot(r, STORE_SNAP_KICK);
}

static int hook_exit(void *ctx, struct vmm *vm, const struct vcpu_exit *e,
                     const struct vmm_regs *regs)
{
    struct rec *r = ctx;
    int rc = 0;
    (void)vm;
    r->exit_fresh = true;
    r->kick_open = false; /* the guest ran on from it: nothing happened */
    if (e->reason != VCPU_EXIT_IO)
        r->access_open = false; /* completed by the entry since */
    switch (e->reason) {
    case VCPU_EXIT_IO:
        break; /* its accesses are logged already (rec_io) */
    case VCPU_EXIT_HLT:
        rc = log_simple(r, STORE_EV_HLT, 0, regs);
        if (!rc && snapshot_due(r))
            rc = take_snapshot(r, STORE_SNAP_PERIODIC);
        break;
    case VCPU_EXIT_KICK:
        /* The kicker's kicks are for snapshots; the run loop's (an
         * interrupt waited too long, serial input to look for, every
         * millisecond while the receive interrupt is on) matter only if
         * an interrupt is injected here (hook_inject).  A kick that
         * neither snapshots nor injects changes nothing the guest can see,
         * so it needs no event. */
        if (vcpu_after_user_soft_int(r->cpu))
            break; /* no point to name here (vmm.h); a later kick is */
        if (snapshot_due(r)) {
            rc = log_point(r, STORE_EV_KICK, regs);
        } else {
            r->kick_open = true;
            r->kick_regs = *regs;
        }
        break;
    case VCPU_EXIT_IRQ_WINDOW:
        /* KVM reports the window only after the guest's next exit inside
         * KVM, so the point is as arbitrary as a kick's: snapshot it. */
        rc = log_point(r, STORE_EV_WINDOW, regs);
        break;
    default:
        break; /* the run ends; the EXIT event describes it */
    }
    if (rc && !r->err)
        r->err = rc;
    return rc;
}

/* The registers where an interrupt injected now is delivered: after the
 * access of this exit, which KVM completes only at the next entry (an IN
 * or MMIO read writes its destination then; a rep INS its elements),
 * so finish it now (one KVM_RUN that returns before the guest runs);
 * after the hlt; at the kick or window point.  A rep string instruction
 * whose last iteration that was is finished too (finish_rep): delivered
 * by KVM at the instruction, the interrupt frame would hold its address,
 * where Unicorn (and the hardware) save the next one. */
static int inject_regs(struct rec *r, struct vmm_regs *regs)
{
    if (r->access_open) {
        struct vcpu_exit e;
        vcpu_kick(r->cpu);
        int rc = vcpu_run(r->cpu, NULL, &e);
        if (rc)
            return rc;
        if (e.reason != VCPU_EXIT_KICK) {
            rec_set_detail("completing an access before an interrupt: the "
                           "vCPU stopped with exit %d", (int)e.reason);
            return REC_E_STATE;
        }
        r->access_open = false;
    }
    int rc = vcpu_get_regs(r->cpu, regs);
    return rc ? rc : finish_rep(r, regs);
}

static int hook_inject(void *ctx, struct vmm *vm, uint8_t vector)
{
    struct rec *r = ctx;
    struct vmm_regs regs;
    (void)vm;
    int rc = 0;
    if (r->kick_open) {
        r->kick_open = false;
        rc = log_point(r, STORE_EV_KICK, &r->kick_regs);
    }
    if (!rc)
        rc = inject_regs(r, &regs);
    if (!rc)
        rc = log_simple(r, STORE_EV_IRQ, vector, &regs);
    if (rc && !r->err)
        r->err = rc;
    return rc;
}

static const struct vmm_run_hooks rec_hooks = {
    .on_exit = hook_exit,
    .on_inject = hook_inject,
};

/* ---- kicker: keeps snapshots regular when the guest never exits ------- */

static void *kicker_main(void *arg)
{
    struct rec *r = arg;
    uint64_t kicked = 0; /* the last kick that has not been answered */
    pthread_mutex_lock(&r->klock);
    while (!r->kstop) {
        uint64_t last = __atomic_load_n(&r->last_snap_ns, __ATOMIC_ACQUIRE);
        /* A snapshot is due an interval after the last one.  Exits
         * usually take it (the first one after that); a guest that makes
         * none by then is kicked, and its kick takes it.  A kick can go
         * unanswered only while the guest halts (nothing to snapshot):
         * look again an interval after it, not at once. */
        uint64_t deadline = (last > kicked ? last : kicked) + r->interval_ns;
        struct timespec ts = { (time_t)(deadline / 1000000000ull),
                               (long)(deadline % 1000000000ull) };
        int rc = 0;
        while (!r->kstop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&r->kcond, &r->klock, &ts);
        if (r->kstop)
            break;
        if (__atomic_load_n(&r->last_snap_ns, __ATOMIC_ACQUIRE) == last) {
            vcpu_kick(r->cpu);
            kicked = now_ns();
        }
    }
    pthread_mutex_unlock(&r->klock);
    return NULL;
}

static int kicker_start(struct rec *r)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->kcond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&r->klock, NULL);
    int rc = pthread_create(&r->kicker, NULL, kicker_main, r);
    if (rc)
        return -rc;
    r->kicker_started = true;
    return 0;
}

static void kicker_stop(struct rec *r)
{
    if (!r->kicker_started)
        return;
    pthread_mutex_lock(&r->klock);
    r->kstop = true;
    pthread_cond_broadcast(&r->kcond);
    pthread_mutex_unlock(&r->klock);
    pthread_join(r->kicker, NULL);
    pthread_cond_destroy(&r->kcond);
    pthread_mutex_destroy(&r->klock);
    r->kicker_started = false;
}

/* ---- setup and finish -------------------------------------------------- */

static int put_metadata(struct rec *r, const void *img, size_t img_len,
                        const struct rec_opts *o)
{
    const struct vmm_host_caps *host = vmm_host_probe();
    char hostdesc[160];
    snprintf(hostdesc, sizeof hostdesc, "%s%s", host->kvm_module,
             host->pvm ? " (kvm-pvm)" : "");
    int rc = store_image_put(r->st, img, img_len);
    if (!rc)
        rc = store_meta_put_str(r->st, "guest.name",
                                o->guest_name ? o->guest_name : "");
    if (!rc)
        rc = store_meta_put_str(r->st, "guest.cmdline",
                                o->guest_cmdline ? o->guest_cmdline : "");
    if (!rc)
        rc = store_meta_put_u64(r->st, "guest.boot_mode", o->boot_mode);
    if (!rc)
        rc = store_meta_put_u64(r->st, "vm.mem_size", vmm_ram_size(r->vm));
    if (!rc)
        rc = store_meta_put(r->st, "vm.cpuid", vmm_cpuid(r->vm),
                            sizeof(struct vmm_cpuid));
    if (!rc)
        rc = store_meta_put_u64(r->st, "vm.state_version", VMM_STATE_VERSION);
    if (!rc)
        rc = store_meta_put_str(r->st, "record.argv",
                                o->argv_line ? o->argv_line : "");
    if (!rc)
        rc = store_meta_put_str(r->st, "record.host", hostdesc);
    if (!rc)
        rc = store_meta_put_u64(r->st, "record.snapshot_interval_ns",
                                r->interval_ns);
    if (rc)
        rec_set_detail("writing trace metadata: %s: %s", store_strerror(rc),
                       store_error_detail(r->st));
    return rc;
}

static int boot_snapshot(struct rec *r)
{
    struct rec_job *job;
    int rc = rec_capture_boot(r->cap, &job);
    if (rc) {
        rec_set_detail("snapshot 0: %s%s", vmm_strerror(rc),
                       rc == VMM_E_UNSUPPORTED
                           ? " (this host's KVM has no dirty-page log)"
                           : "");
        return rc;
    }
    job->info.id = r->next_snap++;
    job->info.reason = STORE_SNAP_BOOT;
    job->info.icount = UINT64_MAX;
    job->info.npages = (uint32_t)job->npages;
    if (r->stats) {
        r->stats->pages_saved += job->npages;
        r->stats->snapshots++;
    }
    return rec_writer_submit(r->w, job);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void pause_stats(struct rec *r, struct rec_stats *st)
{
    if (!r->npause)
        return;
    qsort(r->pause_us, r->npause, sizeof *r->pause_us, cmp_double);
    st->pause_median_us = r->pause_us[r->npause / 2];
    size_t p99 = (r->npause * 99 + 99) / 100;
    st->pause_p99_us = r->pause_us[p99 ? p99 - 1 : 0];
    st->pause_max_us = r->pause_us[r->npause - 1];
}

static int log_exit(struct rec *r, const struct vmm_run_result *res)
{
    struct store_event ev;
    event_init(&ev, STORE_EV_EXIT, &res->regs);
    ev.aux = (uint32_t)res->kind;
    ev.value = (uint64_t)(int64_t)res->exit_status;
    int rc = log_event(r, &ev);
    return rc ? rc : flush_events(r);
}

/* After the writer is gone: final metadata, the completion mark. */
static int finish_trace(struct rec *r, const struct vmm_run_result *res,
                        uint64_t wall_ns)
{
    int rc = store_meta_put_u64(r->st, "final.kind", (uint64_t)res->kind);
    if (!rc)
        rc = store_meta_put_u64(r->st, "final.status",
                                (uint64_t)(int64_t)res->exit_status);
    if (!rc)
        rc = store_meta_put_str(r->st, "final.detail", res->detail);
    if (!rc)
        rc = store_meta_put_u64(r->st, "final.wall_ns", wall_ns);
    if (!rc)
        rc = store_mark_complete(r->st);
    if (!rc)
        rc = store_commit(r->st);
    if (rc)
        rec_set_detail("finishing the trace: %s: %s", store_strerror(rc),
                       store_error_detail(r->st));
    return rc;
}

static int open_trace(struct rec *r, const struct rec_opts *o)
{
    struct store_create_opts so = { .force = o->force, .key = o->key };
    int rc = store_create(o->trace, &so, &r->st);
    if (rc) /* storage's detail names the trace and says what to do */
        rec_set_detail("%s", *store_error_detail(NULL)
                                 ? store_error_detail(NULL)
                                 : store_strerror(rc));
    return rc;
}

static int run_recorded(struct rec *r, const struct rec_opts *o,
                        struct vmm_run_result *res)
{
    struct vmm_run_opts ro = {
        .timeout_s = o->timeout_s,
        .irq_latency_ns = o->max_irq_latency_ns
                              ? o->max_irq_latency_ns
                              : REC_DEFAULT_MAX_IRQ_LATENCY_NS,
        .hooks = &rec_hooks,
        .hooks_ctx = r,
    };
    int rc = kicker_start(r);
    if (rc)
        return rc;
    r->bus = vmm_bus_io(r->vm, &r->bus_ctx);
    r->exit_fresh = true;
    vcpu_set_io(r->cpu, &rec_io, r);
    rc = vmm_run(r->vm, &ro, res);
    vcpu_set_io(r->cpu, r->bus, r->bus_ctx);
    kicker_stop(r);
    if (r->err && !*detail)
        rec_set_detail("%s%s%s", rec_strerror(r->err),
                       *rec_writer_detail(r->w) ? ": " : "",
                       rec_writer_detail(r->w));
    if (r->err)
        return r->err;
    if (rc)
        rec_set_detail("run: %s", vmm_strerror(rc));
    return rc;
}

int rec_record(struct vmm *vm, const void *img, size_t img_len,
               const struct rec_opts *o, struct vmm_run_result *res,
               struct rec_stats *st)
{
    struct rec r = { .vm = vm, .cpu = vmm_vcpu(vm), .stats = st };
    detail[0] = '\0';
    if (!o || !o->trace || !img || !res)
        return REC_E_ARG;
    if (st)
        memset(st, 0, sizeof *st);
    r.interval_ns = o->snapshot_interval_ns ? o->snapshot_interval_ns
                                            : REC_DEFAULT_SNAPSHOT_INTERVAL_NS;
    int rc = open_trace(&r, o);
    if (rc)
        return rc;
    if (o->on_created)
        o->on_created(o->on_created_ctx, o->trace);
    rc = put_metadata(&r, img, img_len, o);
    if (!rc)
        rc = rec_writer_start(r.st, WRITER_QUEUE, &r.w);
    if (!rc)
        rc = rec_capture_init(vm, r.w, &r.cap);
    if (rc)
        goto out;
    r.t0_ns = now_ns();
    r.last_snap_ns = r.t0_ns;
    rc = boot_snapshot(&r);
    if (!rc)
        rc = run_recorded(&r, o, res);
    uint64_t wall = now_ns() - r.t0_ns;
    if (!rc)
        rc = log_exit(&r, res);
    int wrc = rec_writer_flush(r.w); /* everything queued is written */
    if (wrc && !rc) {
        rc = wrc;
        rec_set_detail("trace writer: %s", rec_writer_detail(r.w));
    }
    rec_writer_stop(r.w);
    r.w = NULL;
    if (!rc)
        rc = finish_trace(&r, res, wall);
    if (st) {
        st->events = r.next_event;
        st->wall_s = (double)wall / 1e9;
        pause_stats(&r, st);
        store_stats(r.st, &st->store);
    }
out:
    if (r.w)
        rec_writer_stop(r.w);
    rec_capture_fini(r.cap);
    free(r.batch);
    free(r.pause_us);
    store_close(r.st);
    return rc;
}
