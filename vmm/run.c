/*
 * run.c — the run loop (`ttvm run`, and the recorder through its hooks).
 *
 * Interrupts reach the guest only while the vCPU is stopped at an exit
 * (I/O, MMIO, HLT, interrupt window, kick): that is what lets a recording
 * name the exact point of each injection without counting instructions.
 * When an interrupt is due (the PIT's next edge) and the guest does not
 * exit on its own within irq_latency_ns, a POSIX timer signals this thread
 * and the signal handler kicks the vCPU (immediate_exit), which stops it
 * at an instruction boundary where the interrupt is then injected.  The
 * timer is re-armed only when its deadline changes, so an exit costs no
 * syscall beyond KVM_RUN in the common case.
 *
 * HLT with IF=0 ends the run (VMM_STOP_HALTED): nothing can wake it.  HLT
 * with IF=1 sleeps until the next device event (PIT edge, serial input)
 * or the timeout, without spinning; if no enabled interrupt source can
 * ever fire, that is a halt too.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vmm/vmm_int.h"

#define POLL_NS 1000000ull /* serial input check while RX irq is enabled */
#define NEVER UINT64_MAX

struct runner {
    struct vmm *vm;
    const struct vmm_run_opts *o;
    struct vmm_run_result *res;
    timer_t timer;
    bool have_timer;
    uint64_t armed_at;  /* deadline the timer is armed for, NEVER if not */
    uint64_t timeout_at;
    uint64_t next_pit, next_poll;
    bool uart_wants;
    bool window;        /* interrupt window requested */
    bool halted;        /* at a HLT with IF=1, waiting for an interrupt */
    bool stopped;
};

static __thread struct vcpu *kick_cpu;

static void timer_handler(int sig)
{
    (void)sig;
    struct vcpu *cpu = kick_cpu;
    if (cpu)
        vcpu_kick(cpu);
}

static int timer_signal(void) { return SIGRTMIN + 3; }

static pthread_once_t sig_once = PTHREAD_ONCE_INIT;
static void sig_install(void) { vmm_signal_install(timer_signal(), timer_handler); }

static uint64_t now_ns(struct runner *r)
{
    return r->vm->host->clock_ns(r->vm->host_ctx);
}

static uint64_t min64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > NEVER - b ? NEVER : a + b;
}

static int timer_setup(struct runner *r)
{
    pthread_once(&sig_once, sig_install);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, timer_signal());
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = timer_signal();
    ev._sigev_un._tid = gettid();
    if (timer_create(CLOCK_MONOTONIC, &ev, &r->timer) < 0)
        return -errno;
    r->have_timer = true;
    r->armed_at = NEVER;
    return 0;
}

/* Arms the kick timer for host time `at` (relative to now, so it works
 * with any host clock); NEVER disarms. */
static void timer_arm(struct runner *r, uint64_t at, uint64_t now)
{
    if (at == r->armed_at)
        return;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (at != NEVER) {
        uint64_t d = at > now ? at - now : 1;
        its.it_value.tv_sec = (time_t)(d / 1000000000ull);
        its.it_value.tv_nsec = (long)(d % 1000000000ull);
    }
    timer_settime(r->timer, 0, &its, NULL);
    r->armed_at = at;
}

static void stop(struct runner *r, enum vmm_stop_kind kind, const char *fmt,
                 ...) __attribute__((format(printf, 3, 4)));
static void stop(struct runner *r, enum vmm_stop_kind kind, const char *fmt,
                 ...)
{
    struct vmm_run_result *res = r->res;
    struct vmm_cpu_state st;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(res->detail, sizeof res->detail, fmt, ap);
    va_end(ap);
    res->kind = kind;
    r->stopped = true;
    if (vcpu_get_state(r->vm->cpu, &st) == 0) {
        res->regs = st.regs;
        res->sregs = st.sregs;
    }
    if (kind == VMM_STOP_EXIT || n < 0 || (size_t)n + 3 >= sizeof res->detail)
        return;
    memcpy(res->detail + n, ": ", 3);
    vmm_format_regs(res->detail + n + 2, sizeof res->detail - n - 2,
                    &res->regs, &res->sregs);
}

static void service_devices(struct runner *r, uint64_t now)
{
    struct dev_bus *b = &r->vm->bus;
    r->next_pit = dev_pit_update(b, now);
    if (now >= r->next_poll || !r->uart_wants) {
        r->uart_wants = dev_uart_poll(b);
        r->next_poll = add_sat(now, POLL_NS);
    }
}

/* Injects the PIC's interrupt if the vCPU can take it now; otherwise asks
 * for an interrupt-window exit.  Returns <0 on error, >0 to stop. */
static int deliver_irq(struct runner *r)
{
    struct vmm *vm = r->vm;
    bool pending = dev_pic_pending(&vm->bus);
    if (!pending) {
        if (r->window) {
            vcpu_request_irq_window(vm->cpu, false);
            r->window = false;
        }
        return 0;
    }
    int ready = vcpu_irq_ready(vm->cpu);
    if (ready < 0)
        return ready;
    if (!ready) {
        if (!r->window && !r->halted) {
            int rc = vcpu_request_irq_window(vm->cpu, true);
            if (rc && rc != VMM_E_UNSUPPORTED)
                return rc;
            r->window = true;
        }
        return 0;
    }
    uint8_t vec = dev_pic_ack(&vm->bus);
    const struct vmm_run_hooks *h = r->o->hooks;
    if (h && h->on_inject) {
        int rc = h->on_inject(r->o->hooks_ctx, vm, vec);
        if (rc)
            return rc;
    }
    r->halted = false;
    return vcpu_inject_irq(vm->cpu, vec);
}

/* Can an interrupt ever end this HLT? (PIT on IRQ0 or serial RX on IRQ4,
 * unmasked at the master PIC.) */
static bool can_wake(struct runner *r)
{
    const struct dev_pic_chip *m = &r->vm->bus.pic[0];
    return (r->next_pit != NEVER && !(m->imr & 0x01)) ||
           (r->uart_wants && !(m->imr & 0x10));
}

/* Sleeps until the next device event or the timeout. */
static void halt_wait(struct runner *r, uint64_t now)
{
    struct vmm *vm = r->vm;
    uint64_t wake = min64(r->next_pit, r->timeout_at);
    timer_arm(r, NEVER, now);
    if (vm->real)
        vmm_host_real_flush(vm->real);
    if (r->uart_wants) {
        wake = min64(wake, add_sat(now, POLL_NS * 10));
        if (vm->real && vm->serial_in_fd >= 0) {
            uint64_t ms = wake > now ? (wake - now + 999999) / 1000000 : 0;
            struct pollfd p = { .fd = vm->serial_in_fd, .events = POLLIN };
            poll(&p, 1, ms > 1000 ? 1000 : (int)ms);
            r->next_poll = 0; /* look at the UART right away */
            return;
        }
    }
    if (wake > now) {
        uint64_t d = min64(wake - now, 1000000000ull);
        struct timespec ts = { (time_t)(d / 1000000000ull),
                               (long)(d % 1000000000ull) };
        nanosleep(&ts, NULL);
    }
}

static int on_exit_hook(struct runner *r, const struct vcpu_exit *e)
{
    const struct vmm_run_hooks *h = r->o->hooks;
    if (!h || !h->on_exit)
        return 0;
    struct vmm_regs regs;
    int rc = vcpu_get_regs(r->vm->cpu, &regs);
    if (rc)
        return rc;
    return h->on_exit(r->o->hooks_ctx, r->vm, e, &regs);
}

static void handle_hlt(struct runner *r)
{
    struct vmm_regs regs;
    if (vcpu_get_regs(r->vm->cpu, &regs)) {
        stop(r, VMM_STOP_ERROR, "cannot read registers at HLT");
        return;
    }
    if (!(regs.rflags & 0x200)) {
        stop(r, VMM_STOP_HALTED, "guest halted with interrupts disabled");
        return;
    }
    r->halted = true;
}

/* Turns one exit into loop state.  Returns <0 on error. */
static int handle_exit(struct runner *r, const struct vcpu_exit *e)
{
    struct vmm *vm = r->vm;
    switch (e->reason) {
    case VCPU_EXIT_IO:
    case VCPU_EXIT_STOP: /* Unicorn: the bus asked to stop after an access */
    case VCPU_EXIT_IRQ_WINDOW:
    case VCPU_EXIT_KICK:
        if (e->reason == VCPU_EXIT_IRQ_WINDOW) {
            /* the request stays armed in the backend until cleared:
             * left on, every entry with IF=1 would exit again */
            vcpu_request_irq_window(vm->cpu, false);
            r->window = false;
        }
        break;
    case VCPU_EXIT_HLT:
        handle_hlt(r);
        break;
    case VCPU_EXIT_SHUTDOWN:
        stop(r, VMM_STOP_SHUTDOWN, "guest triple-faulted (shutdown)");
        return 0;
    case VCPU_EXIT_EMU_FAIL:
        stop(r, VMM_STOP_EMU_FAIL, "%s", e->detail);
        return 0;
    case VCPU_EXIT_ERROR:
        stop(r, VMM_STOP_ERROR, "%s", e->detail);
        return 0;
    default:
        stop(r, VMM_STOP_ERROR, "unexpected vCPU exit %d", (int)e->reason);
        return 0;
    }
    int rc = on_exit_hook(r, e);
    if (rc > 0)
        stop(r, VMM_STOP_HOOK, "stopped by a run hook");
    else if (rc < 0)
        return rc;
    if (!r->stopped && vm->bus.exit.requested) {
        r->res->exit_status = (int)vm->bus.exit.status;
        stop(r, VMM_STOP_EXIT, "guest exited with status %u",
             vm->bus.exit.status);
    }
    return 0;
}

/* Kick deadline: the PIT's next edge plus the allowed latency, the
 * timeout, and the next serial input check. */
static uint64_t kick_deadline(struct runner *r)
{
    uint64_t at = min64(add_sat(r->next_pit, r->o->irq_latency_ns),
                        r->timeout_at);
    if (r->uart_wants)
        at = min64(at, r->next_poll);
    return at;
}

static int loop(struct runner *r)
{
    struct vmm *vm = r->vm;
    while (!r->stopped) {
        uint64_t now = now_ns(r);
        if (now >= r->timeout_at) {
            stop(r, VMM_STOP_TIMEOUT, "timeout");
            break;
        }
        service_devices(r, now);
        int rc = deliver_irq(r);
        if (rc > 0) {
            stop(r, VMM_STOP_HOOK, "stopped by a run hook");
            break;
        }
        if (rc < 0)
            return rc;
        if (r->halted) {
            if (!can_wake(r)) {
                stop(r, VMM_STOP_HALTED, "guest halted with interrupts "
                                         "enabled but no interrupt source "
                                         "armed");
                break;
            }
            halt_wait(r, now);
            continue;
        }
        timer_arm(r, kick_deadline(r), now);
        struct vcpu_exit e;
        rc = vcpu_run(vm->cpu, NULL, &e);
        if (rc < 0) {
            stop(r, VMM_STOP_ERROR, "running the vCPU: %s",
                 vmm_strerror(rc));
            break;
        }
        if ((rc = handle_exit(r, &e)) < 0)
            return rc;
    }
    return 0;
}

int vmm_run(struct vmm *vm, const struct vmm_run_opts *o,
            struct vmm_run_result *res)
{
    static const struct vmm_run_opts defaults;
    struct runner r;
    memset(&r, 0, sizeof r);
    memset(res, 0, sizeof *res);
    r.vm = vm;
    r.o = o ? o : &defaults;
    r.res = res;
    int rc = timer_setup(&r);
    if (rc)
        return rc;
    uint64_t t0 = now_ns(&r);
    r.timeout_at = r.o->timeout_s > 0
                       ? add_sat(t0, (uint64_t)(r.o->timeout_s * 1e9))
                       : NEVER;
    r.next_pit = NEVER;
    kick_cpu = vm->cpu;
    rc = loop(&r);
    kick_cpu = NULL;
    timer_delete(r.timer);
    if (rc < 0 && !r.stopped)
        stop(&r, VMM_STOP_ERROR, "run loop: %s", vmm_strerror(rc));
    if (vm->real)
        vmm_host_real_flush(vm->real);
    vcpu_request_irq_window(vm->cpu, false);
    return rc < 0 ? rc : 0;
}
